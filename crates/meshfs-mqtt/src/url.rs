//! `mqtt://[USER[:PASSWORD]@]HOST[:PORT]` and `mqtts://…` broker URLs.
//!
//! The user and password are credentials for the broker, never part of the host name (a URL
//! like `mqtt://user:pw@host` used to be taken as the host `user:pw@host`, retried silently
//! forever). A password in the URL is visible to `ps`: `--mqtt-password-file` is the other way.
//! Neither `Debug` nor `Display` shows the password.

use std::fmt;
use std::str::FromStr;

/// Where the broker listens, and who we are to it.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerAddr {
    pub host: String,
    pub port: u16,
    /// `mqtts://`: TLS to the broker.
    pub tls: bool,
    /// The user name to log in with, when the URL gives one.
    pub user: Option<String>,
    /// The password of `user` (the URL's, or `--mqtt-password-file`'s).
    pub password: Option<String>,
}

/// Plain MQTT's port.
pub const MQTT_PORT: u16 = 1883;
/// MQTT over TLS's port.
pub const MQTTS_PORT: u16 = 8883;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a broker URL; expected mqtt://[USER[:PASSWORD]@]HOST[:PORT] or mqtts://… \
     (TLS, port 8883 by default)"
)]
pub struct BadBrokerUrl(String);

impl BrokerAddr {
    /// The same broker, with `password` for its user (from `--mqtt-password-file`).
    pub fn with_password(mut self, password: String) -> BrokerAddr {
        self.password = Some(password);
        self
    }

    /// `HOST:PORT`, for messages.
    pub fn endpoint(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for BrokerAddr {
    /// The URL without its password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        match &self.user {
            Some(user) => write!(f, "{scheme}://{user}@{}", self.endpoint()),
            None => write!(f, "{scheme}://{}", self.endpoint()),
        }
    }
}

impl fmt::Debug for BrokerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerAddr")
            .field("url", &self.to_string())
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

/// `%XX` escapes decoded (so a password may hold `@`, `:` or `/`); `None` when malformed.
fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            let hex = std::str::from_utf8(&hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

impl FromStr for BrokerAddr {
    type Err = BadBrokerUrl;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadBrokerUrl(s.to_owned());
        let (tls, rest) = match (s.strip_prefix("mqtt://"), s.strip_prefix("mqtts://")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => return Err(bad()),
        };
        let rest = rest.trim_end_matches('/');
        // The last `@` ends the credentials: a host name holds none.
        let (user, password, rest) = match rest.rsplit_once('@') {
            Some((creds, host)) => {
                let (user, password) = match creds.split_once(':') {
                    Some((u, p)) => (u, Some(percent_decode(p).ok_or_else(bad)?)),
                    None => (creds, None),
                };
                let user = percent_decode(user).filter(|u| !u.is_empty());
                (Some(user.ok_or_else(bad)?), password, host)
            }
            None => (None, None, rest),
        };
        let default_port = if tls { MQTTS_PORT } else { MQTT_PORT };
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h, p.parse().ok().filter(|p| *p != 0).ok_or_else(bad)?)
            }
            _ => (rest, default_port),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains(['/', '@']) {
            return Err(bad());
        }
        Ok(BrokerAddr {
            host: host.to_owned(),
            port,
            tls,
            user,
            password,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> BrokerAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses() {
        let b = parse("mqtt://127.0.0.1:1884");
        assert_eq!((b.host.as_str(), b.port, b.tls), ("127.0.0.1", 1884, false));
        assert_eq!((b.user, b.password), (None, None));
        assert_eq!(parse("mqtt://broker").port, 1883);
        assert_eq!(parse("mqtts://broker").port, 8883);
        assert!(parse("mqtts://broker:8884").tls);
        assert_eq!(parse("mqtt://[::1]:7").host, "::1");
        for bad in [
            "mqtt://:1",
            "mqtt://h:0",
            "http://h",
            "mqtt://@h",
            "mqtt://u:%zz@h",
        ] {
            assert!(bad.parse::<BrokerAddr>().is_err(), "{bad}");
        }
    }

    /// `mqtt://user:pw@host` names credentials, not a host called `user:pw@host`.
    #[test]
    fn credentials_are_not_a_host_name() {
        let b = parse("mqtt://cam:s%40cret:x@broker.lan:1884");
        assert_eq!((b.host.as_str(), b.port), ("broker.lan", 1884));
        assert_eq!(b.user.as_deref(), Some("cam"));
        assert_eq!(b.password.as_deref(), Some("s@cret:x"));
        let b = parse("mqtts://cam@broker");
        assert_eq!(
            (b.user.as_deref(), b.password.as_deref()),
            (Some("cam"), None)
        );
        // Shown without the password, anywhere.
        let b = parse("mqtt://cam:hunter2@broker");
        assert_eq!(b.to_string(), "mqtt://cam@broker:1883");
        assert!(!format!("{b:?}").contains("hunter2"));
        assert_eq!(
            b.with_password("new".into()).password.as_deref(),
            Some("new")
        );
    }
}
