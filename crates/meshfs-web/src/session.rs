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
//! Only tokens are stored, never a password.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use meshfs_core::access::Keys;

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

#[derive(Debug)]
struct Session {
    keys: Keys,
    expires: Instant,
}

/// The sessions of one web UI. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Sessions {
    inner: Arc<Mutex<HashMap<Token, Session>>>,
}

impl Sessions {
    /// The passwords a request has proven (none without a live session).
    pub fn keys(&self, headers: &HeaderMap) -> Keys {
        Token::from_headers(headers)
            .and_then(|t| self.keys_of(&t, Instant::now()))
            .unwrap_or_default()
    }

    /// Is this request's session live?
    pub fn is_live(&self, headers: &HeaderMap) -> bool {
        Token::from_headers(headers).is_some_and(|t| self.keys_of(&t, Instant::now()).is_some())
    }

    fn keys_of(&self, token: &Token, now: Instant) -> Option<Keys> {
        let mut map = self.lock();
        match map.get(token) {
            Some(s) if s.expires > now => Some(s.keys.clone()),
            Some(_) => {
                map.remove(token);
                None
            }
            None => None,
        }
    }

    /// The keys to extend on login: the request's live session's, or none.
    pub fn current(&self, headers: &HeaderMap) -> (Option<Token>, Keys) {
        match Token::from_headers(headers) {
            Some(t) => match self.keys_of(&t, Instant::now()) {
                Some(keys) => (Some(t), keys),
                None => (None, Keys::default()),
            },
            None => (None, Keys::default()),
        }
    }

    /// Store `keys` under `token` (a live session of this request) or under a new token;
    /// returns the token. `None` if no random token could be made.
    pub fn save(&self, token: Option<Token>, keys: Keys) -> Option<Token> {
        self.save_at(token, keys, Instant::now())
    }

    fn save_at(&self, token: Option<Token>, keys: Keys, now: Instant) -> Option<Token> {
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
                keys,
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
        let token = sessions.save_at(None, Keys::default(), t0).unwrap();
        assert!(sessions.keys_of(&token, t0).is_some());
        assert!(sessions.keys_of(&token, t0 + SESSION_TTL).is_none());
        assert_eq!(sessions.len(), 0, "an expired session is dropped when seen");

        // Full: the session closest to expiry makes room.
        let first = sessions.save_at(None, Keys::default(), t0).unwrap();
        for i in 1..MAX_SESSIONS + 10 {
            sessions
                .save_at(None, Keys::default(), t0 + Duration::from_secs(i as u64))
                .unwrap();
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(sessions.keys_of(&first, t0).is_none());

        let live = sessions.save(None, Keys::default()).unwrap();
        let h = with_cookie(&live.cookie());
        assert!(sessions.is_live(&h));
        // Saving again under a live token keeps it; an unknown token is never adopted.
        assert_eq!(
            sessions.save(Some(live.clone()), Keys::default()),
            Some(live)
        );
        let forged = Token("0".repeat(64));
        assert_ne!(
            sessions.save(Some(forged.clone()), Keys::default()),
            Some(forged)
        );
        sessions.end(&h);
        assert!(!sessions.is_live(&h));
    }
}
