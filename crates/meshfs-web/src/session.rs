//! `Sessions`: who logged in to this node's web UI, and with which passwords.
//!
//! A successful `POST /api/login` makes a session: a random 256-bit token (OS CSPRNG through
//! `getrandom`) sent back as an `HttpOnly; SameSite=Strict; Path=/` cookie, mapped here to the
//! [`Keys`] that password proved. A session unlocks exactly what its passwords unlock (the
//! whole share, or one offered file), for this node's own files only. Logging in again with
//! the cookie adds the new password to what the session unlocks, under a *new* token: every
//! successful login mints a token and ends the old one, so a token planted in a browser
//! before its login (session fixation) never becomes a logged-in session.
//!
//! Sessions live in memory only (a restart logs everyone out), expire [`SESSION_TTL`] after
//! login, and are bounded in number: past [`MAX_SESSIONS`], the one closest to expiry goes,
//! and past [`MAX_PER_CLIENT`] from one client address ([`client_key`]), that client's oldest.
//! This node's passwords are kept only as the digests in [`Keys`]. A password given for a
//! *remote* node has to be said again on each new connection to it, so the session keeps it
//! (in memory, inside that node's connection [`Pool`]) until the session ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use meshfs_core::access::Keys;

use meshfs_core::Pool;
use meshfs_core::throttle::client_key;

/// Name of the session cookie.
pub const COOKIE: &str = "meshfs_session";
/// How long a session lasts after its login.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Most sessions held at once.
pub const MAX_SESSIONS: usize = 1024;
/// Most sessions held for one client address: a client logging in in a loop only pushes out
/// its own sessions, not everyone else's.
pub const MAX_PER_CLIENT: usize = 16;
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

    /// `Set-Cookie` for this token; `secure` (over HTTPS) adds `Secure`, so the browser
    /// never sends it over plain HTTP.
    pub fn cookie(&self, secure: bool) -> String {
        format!(
            "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
            self.0,
            SESSION_TTL.as_secs(),
            secure_attr(secure)
        )
    }
}

/// `Set-Cookie` that makes the browser forget the session.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
        secure_attr(secure)
    )
}

fn secure_attr(secure: bool) -> &'static str {
    if secure { "; Secure" } else { "" }
}

/// Most remote nodes one session holds a password for.
pub const MAX_REMOTE: usize = 64;

/// What a session unlocks: this node's files its passwords open, and, per remote node
/// (by address), a connection pool that proved that node's password.
#[derive(Debug, Clone, Default)]
pub struct Grant {
    pub keys: Keys,
    pub remote: HashMap<String, Pool>,
}

impl Grant {
    /// Add a remote node's authenticated pool (replacing an older one for that node).
    pub fn add_remote(&mut self, addr: &str, pool: Pool) {
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
    /// The [`client_key`] of the address that logged in.
    client: IpAddr,
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

    /// A successful login from `client`: `add` extends what the request's live session (if
    /// any) unlocks, and the result is stored under a new token, the old one ended. Returns
    /// the new token and its grant; `None` (nothing changed) if no random token could be made.
    pub fn login(
        &self,
        headers: &HeaderMap,
        client: IpAddr,
        add: impl FnOnce(&mut Grant),
    ) -> Option<(Token, Grant)> {
        let old = Token::from_headers(headers);
        self.login_at(old.as_ref(), client, Instant::now(), add)
    }

    fn login_at(
        &self,
        old: Option<&Token>,
        client: IpAddr,
        now: Instant,
        add: impl FnOnce(&mut Grant),
    ) -> Option<(Token, Grant)> {
        let token = Token::random()?;
        let client = client_key(client);
        let mut map = self.lock();
        // Taken from the map while it is locked: a logout during a remote login's round trip
        // ends the session for good.
        let mut grant = old
            .and_then(|t| map.remove(t))
            .filter(|s| s.expires > now)
            .map(|s| s.grant)
            .unwrap_or_default();
        add(&mut grant);
        map.retain(|_, s| s.expires > now);
        let theirs: Vec<(Instant, Token)> = map
            .iter()
            .filter(|(_, s)| s.client == client)
            .map(|(t, s)| (s.expires, t.clone()))
            .collect();
        if theirs.len() >= MAX_PER_CLIENT
            && let Some((_, oldest)) = theirs.into_iter().min_by_key(|(expires, _)| *expires)
        {
            map.remove(&oldest);
        }
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(t, _)| t.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            token.clone(),
            Session {
                grant: grant.clone(),
                expires: now + SESSION_TTL,
                client,
            },
        );
        Some((token, grant))
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
        let cookie = a.cookie(false);
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(cookie.contains("Path=/"));
        // Over HTTPS the browser is told never to send it in clear.
        assert!(!cookie.contains("Secure"));
        assert!(a.cookie(true).ends_with("; Secure"));
        assert!(
            clear_cookie(true).ends_with("; Secure") && !clear_cookie(false).contains("Secure")
        );
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

    fn ip(i: u32) -> IpAddr {
        IpAddr::from(i.to_be_bytes())
    }

    fn login(sessions: &Sessions, old: Option<&Token>, client: IpAddr, now: Instant) -> Token {
        sessions.login_at(old, client, now, |_| {}).unwrap().0
    }

    fn with_remote(addr: &str) -> impl FnOnce(&mut Grant) {
        let addr = addr.to_owned();
        move |g: &mut Grant| g.add_remote(&addr, Pool::new(&addr, Default::default()))
    }

    #[test]
    fn sessions_expire_are_bounded_and_end() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let token = login(&sessions, None, ip(1), t0);
        assert!(sessions.grant_of(&token, t0).is_some());
        assert!(sessions.grant_of(&token, t0 + SESSION_TTL).is_none());
        assert_eq!(sessions.len(), 0, "an expired session is dropped when seen");

        // Full: the session closest to expiry makes room.
        let first = login(&sessions, None, ip(0), t0);
        for i in 1..MAX_SESSIONS as u32 + 10 {
            login(&sessions, None, ip(i), t0 + Duration::from_secs(i.into()));
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(sessions.grant_of(&first, t0).is_none());

        let live = sessions.login(&HeaderMap::new(), ip(1), |_| {}).unwrap().0;
        let h = with_cookie(&live.cookie(true));
        assert!(sessions.is_live(&h));
        sessions.end(&h);
        assert!(!sessions.is_live(&h));
    }

    /// Every login mints a new token: the old one ends, its grants move to the new one.
    #[test]
    fn a_login_always_mints_a_new_token_and_carries_the_grants() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let (t1, g1) = sessions
            .login_at(None, ip(1), t0, with_remote("a:1"))
            .unwrap();
        assert_eq!(g1.remote.len(), 1);
        let (t2, g2) = sessions
            .login_at(Some(&t1), ip(1), t0, with_remote("b:2"))
            .unwrap();
        assert_ne!(t1, t2);
        assert!(
            sessions.grant_of(&t1, t0).is_none(),
            "the old token is dead"
        );
        let held = sessions.grant_of(&t2, t0).unwrap();
        for g in [&g2, &held] {
            assert!(g.remote.contains_key("a:1") && g.remote.contains_key("b:2"));
        }
        assert_eq!(sessions.len(), 1);

        // A token the server never issued (planted by someone else) is never adopted, and
        // carries nothing.
        let forged = Token("0".repeat(64));
        let (t3, g3) = sessions
            .login_at(Some(&forged), ip(1), t0, with_remote("c:3"))
            .unwrap();
        assert_ne!(t3, forged);
        assert_eq!(g3.remote.len(), 1);
        assert!(sessions.grant_of(&forged, t0).is_none());

        // An expired session's grants are not carried over.
        let (_, g4) = sessions
            .login_at(Some(&t2), ip(1), t0 + SESSION_TTL, with_remote("d:4"))
            .unwrap();
        assert_eq!(g4.remote.keys().collect::<Vec<_>>(), ["d:4"]);
    }

    /// One client address holds at most MAX_PER_CLIENT sessions (an IPv6 one per /64): its
    /// oldest goes, other clients' sessions stay.
    #[test]
    fn sessions_per_client_are_capped() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let bystander = login(&sessions, None, ip(99), t0);
        let looping: Vec<Token> = (0..MAX_PER_CLIENT as u64 + 4)
            .map(|i| login(&sessions, None, ip(7), t0 + Duration::from_secs(i)))
            .collect();
        let now = t0 + Duration::from_secs(100);
        assert_eq!(sessions.len(), MAX_PER_CLIENT + 1);
        for (i, t) in looping.iter().enumerate() {
            assert_eq!(sessions.grant_of(t, now).is_some(), i >= 4, "session {i}");
        }
        assert!(sessions.grant_of(&bystander, now).is_some());

        let v6 = Sessions::default();
        for i in 0..MAX_PER_CLIENT as u32 + 3 {
            let ip: IpAddr = format!("2001:db8:1:1::{:x}", i + 1).parse().unwrap();
            login(&v6, None, ip, t0 + Duration::from_secs(i.into()));
        }
        assert_eq!(v6.len(), MAX_PER_CLIENT);
    }
}
