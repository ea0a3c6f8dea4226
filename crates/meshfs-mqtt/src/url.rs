//! `mqtt://HOST[:PORT]` broker addresses.

use std::str::FromStr;

/// Where the broker listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddr {
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a broker URL; expected mqtt://HOST[:PORT] (TLS is not supported)")]
pub struct BadBrokerUrl(String);

impl FromStr for BrokerAddr {
    type Err = BadBrokerUrl;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadBrokerUrl(s.to_owned());
        let rest = s.strip_prefix("mqtt://").ok_or_else(bad)?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h, p.parse().ok().filter(|p| *p != 0).ok_or_else(bad)?)
            }
            _ => (rest, 1883),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains('/') {
            return Err(bad());
        }
        Ok(BrokerAddr {
            host: host.to_owned(),
            port,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(
            "mqtt://127.0.0.1:1884".parse(),
            Ok(BrokerAddr {
                host: "127.0.0.1".into(),
                port: 1884
            })
        );
        assert_eq!("mqtt://broker".parse::<BrokerAddr>().unwrap().port, 1883);
        assert!("mqtts://x".parse::<BrokerAddr>().is_err());
        assert!("mqtt://:1".parse::<BrokerAddr>().is_err());
        assert!("mqtt://h:0".parse::<BrokerAddr>().is_err());
    }
}
