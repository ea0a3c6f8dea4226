//! `Sessions`: who logged in to this node's web UI, and with which passwords.
//!
//! A successful `POST /api/login` makes a session: a random 256-bit token (OS CSPRNG through
//! `getrandom`) sent back as an `HttpOnly; SameSite=Strict; Path=/` cookie, mapped here to the
//! [`Keys`] that password proved. A session unlocks exactly what its passwords unlock (the
//! whole share, or one offered file), for this node's own files only. Logging in again with
//! the cookie adds the new password to the same session.
//!
//! Sessions live in memory only (a restart logs everyone out), expire [`SESSION_TTL`] after
//! login, and are bounded in number: past [`MAX_SESSIONS`], the one closest to expiry goes.
//! This node's passwords are kept only as the digests in [`Keys`]. A password given for a
//! *remote* node has to be said again on each new connection to it, so the session keeps it
//! (in memory, inside that node's connection [`Pool`]) until the session ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use meshfs_core::access::Keys;

use crate::pool::Pool;

/// Name of the session cookie.
pub const COOKIE: &str = "meshfs_session";
/// How long a session lasts after its login.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Most sessions held at once.
pub const MAX_SESSIONS: usize = 1024;
/// Random bytes per token (256 bits), sent as lowercase hex.
const TOKEN_BYTES: usize = 32;

/// A session token: `2 * TOKEN_BYTES` lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Token(String);

impl Token {
    /// A fresh random token; `None` only if the OS has no randomness to give.
    fn random() -> Option<Token> {
        let mut raw = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut raw).ok()?;
        Some(Token(raw.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// A token as a client sent it; anything but the exact shape is no token at all.
    fn parse(s: &str) -> Option<Token> {
        (s.len() == 2 * TOKEN_BYTES && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| Token(s.to_owned()))
    }

    /// The token a request carries in its `Cookie` headers, if any has our shape.
    pub fn from_headers(headers: &HeaderMap) -> Option<Token> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(name, _)| *name == COOKIE)
            .find_map(|(_, value)| Token::parse(value.trim()))
    }

    /// `Set-Cookie` for this token.
    pub fn cookie(&self) -> String {
        format!(
            "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
            self.0,
            SESSION_TTL.as_secs()
        )
    }
}

/// `Set-Cookie` that makes the browser forget the session.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// Most remote nodes one session holds a password for.
pub const MAX_REMOTE: usize = 64;

/// What a session unlocks: this node's files its passwords open, and, per remote node
/// (by address), a connection pool that proved that node's password.
#[derive(Debug, Clone, Default)]
pub struct Grant {
    pub keys: Keys,
    pub remote: HashMap<String, Arc<Pool>>,
}

impl Grant {
    /// Add a remote node's authenticated pool (replacing an older one for that node).
    pub fn add_remote(&mut self, addr: &str, pool: Arc<Pool>) {
        if !self.remote.contains_key(addr) && self.remote.len() >= MAX_REMOTE {
            return;
        }
        self.remote.insert(addr.to_owned(), pool);
    }
}

#[derive(Debug)]
struct Session {
    grant: Grant,
    expires: Instant,
}

/// The sessions of one web UI. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Sessions {
    inner: Arc<Mutex<HashMap<Token, Session>>>,
}

impl Sessions {
    /// What a request's session unlocks (nothing without a live session).
    pub fn grant(&self, headers: &HeaderMap) -> Grant {
        Token::from_headers(headers)
            .and_then(|t| self.grant_of(&t, Instant::now()))
            .unwrap_or_default()
    }

    /// Is this request's session live?
    pub fn is_live(&self, headers: &HeaderMap) -> bool {
        Token::from_headers(headers).is_some_and(|t| self.grant_of(&t, Instant::now()).is_some())
    }

    fn grant_of(&self, token: &Token, now: Instant) -> Option<Grant> {
        let mut map = self.lock();
        match map.get(token) {
            Some(s) if s.expires > now => Some(s.grant.clone()),
            Some(_) => {
                map.remove(token);
                None
            }
            None => None,
        }
    }

    /// The grant to extend on login: the request's live session's, or an empty one.
    pub fn current(&self, headers: &HeaderMap) -> (Option<Token>, Grant) {
        match Token::from_headers(headers) {
            Some(t) => match self.grant_of(&t, Instant::now()) {
                Some(grant) => (Some(t), grant),
                None => (None, Grant::default()),
            },
            None => (None, Grant::default()),
        }
    }

    /// Store `grant` under `token` (a live session of this request) or under a new token;
    /// returns the token. `None` if no random token could be made.
    pub fn save(&self, token: Option<Token>, grant: Grant) -> Option<Token> {
        self.save_at(token, grant, Instant::now())
    }

    fn save_at(&self, token: Option<Token>, grant: Grant, now: Instant) -> Option<Token> {
        let mut map = self.lock();
        let token = match token {
            Some(t) if map.contains_key(&t) => t,
            _ => Token::random()?,
        };
        if !map.contains_key(&token) && map.len() >= MAX_SESSIONS {
            map.retain(|_, s| s.expires > now);
            if map.len() >= MAX_SESSIONS
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, s)| s.expires)
                    .map(|(t, _)| t.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            token.clone(),
            Session {
                grant,
                expires: now + SESSION_TTL,
            },
        );
        Some(token)
    }

    /// End the request's session, if it has one.
    pub fn end(&self, headers: &HeaderMap) {
        if let Some(t) = Token::from_headers(headers) {
            self.lock().remove(&t);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Token, Session>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_cookie(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn tokens_are_random_and_strictly_parsed() {
        let a = Token::random().unwrap();
        let b = Token::random().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.0.len(), 64);
        let cookie = a.cookie();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(cookie.contains("Path=/"));
        let value = &cookie[..cookie.find(';').unwrap()];
        let h = with_cookie(&format!("other=1; {value}; x=y"));
        assert_eq!(Token::from_headers(&h), Some(a.clone()));
        for bad in [
            "meshfs_session=abc",
            "meshfs_session=",
            &format!("meshfs_session={}", a.0.to_uppercase()),
            &format!("meshfs_session={}0", a.0),
            &format!("xmeshfs_session={}", a.0),
        ] {
            assert_eq!(Token::from_headers(&with_cookie(bad)), None, "{bad}");
        }
    }

    #[test]
    fn sessions_expire_are_bounded_and_end() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let token = sessions.save_at(None, Grant::default(), t0).unwrap();
        assert!(sessions.grant_of(&token, t0).is_some());
        assert!(sessions.grant_of(&token, t0 + SESSION_TTL).is_none());
        assert_eq!(sessions.len(), 0, "an expired session is dropped when seen");

        // Full: the session closest to expiry makes room.
        let first = sessions.save_at(None, Grant::default(), t0).unwrap();
        for i in 1..MAX_SESSIONS + 10 {
            sessions
                .save_at(None, Grant::default(), t0 + Duration::from_secs(i as u64))
                .unwrap();
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(sessions.grant_of(&first, t0).is_none());

        let live = sessions.save(None, Grant::default()).unwrap();
        let h = with_cookie(&live.cookie());
        assert!(sessions.is_live(&h));
        // Saving again under a live token keeps it; an unknown token is never adopted.
        assert_eq!(
            sessions.save(Some(live.clone()), Grant::default()),
            Some(live)
        );
        let forged = Token("0".repeat(64));
        assert_ne!(
            sessions.save(Some(forged.clone()), Grant::default()),
            Some(forged)
        );
        sessions.end(&h);
        assert!(!sessions.is_live(&h));
    }
}
