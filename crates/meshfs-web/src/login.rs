//! `POST /api/login`, `POST /api/logout`, `GET /api/session`: password login for this node's
//! protected files (the share password, or an offered file's own password).
//!
//! The password is checked by [`Access::authenticate`](meshfs_core::access::Access) (keyed
//! digests, constant-time comparison), never logged, never echoed: failures are logged with
//! the client's address only. Attempts are throttled per address ([`Throttle`](meshfs_core::throttle::Throttle), the node's one for every door), counted
//! from their start, so concurrent guesses are bounded like sequential ones. Each successful
//! login answers with a new session token ([`Sessions::login`]).
//! With `"node"` naming a remote node, the password is proven to that node (`auth` on a new
//! connection); the session then reaches it through connections that said it.
//!
//! Passwords are taken over HTTPS only: over plain HTTP, which anyone on the LAN reads, a
//! login is refused before its body is read ([`WebError::HttpsRequired`]), and the session
//! JSON says so (`secure`, `https`), so the page explains where the form is instead of
//! showing it. Over HTTPS the session cookie is `Secure`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use meshfs_core::access::Keys;
use meshfs_core::proto::Code;
use meshfs_core::{Credentials, Pool};
use serde::{Deserialize, Serialize};

use crate::error::WebError;
use crate::json_body;
use crate::listener::{Conn, Https};
use crate::session::clear_cookie;
use crate::state::{AppState, pool_config};
use crate::transport::Transport;

#[cfg(doc)]
use crate::session::Sessions;

/// Longest password accepted, in bytes.
pub const MAX_PASSWORD: usize = 1024;

#[derive(Deserialize)]
struct LoginBody {
    password: String,
    /// The node the password is for (a name or `host:port`); this node when absent.
    #[serde(default)]
    node: Option<String>,
}

/// What `GET /api/session` and a successful login answer.
#[derive(Debug, Serialize)]
pub struct SessionJson {
    /// Does this node protect anything with a password?
    pub protected: bool,
    /// Does the request carry a live session?
    pub logged_in: bool,
    /// May it list this node's share (false while a share password is not given)?
    pub may_browse: bool,
    /// This node's ID, as `meshfs id --node` prints it (to compare).
    pub node_id: Option<String>,
    /// The same hash in the form `curl --pinnedpubkey` takes (`sha256//BASE64`).
    pub pin: Option<String>,
    /// Did this request come over HTTPS? The login form is offered only then.
    pub secure: bool,
    /// Does this port speak HTTPS (where a plain HTTP page sends those who would log in)?
    pub https: bool,
}

fn session_json(state: &AppState, logged_in: bool, keys: &Keys, via: Transport) -> SessionJson {
    SessionJson {
        protected: state.access.is_protected(),
        logged_in,
        may_browse: state.access.may_browse(keys),
        node_id: state.node_id.map(|id| id.to_string()),
        pin: state.node_id.map(|id| id.pinned_pubkey()),
        secure: via.secure,
        https: state.https != Https::Off,
    }
}

/// `GET /api/session`.
pub async fn session(
    State(state): State<AppState>,
    via: Transport,
    headers: HeaderMap,
) -> Json<SessionJson> {
    let keys = state.sessions.grant(&headers).keys;
    Json(session_json(
        &state,
        state.sessions.is_live(&headers),
        &keys,
        via,
    ))
}

/// A password found right, and what it adds to the session.
enum Proven {
    /// One of this node's passwords (proven again on the session's own keys).
    Local(String),
    /// A remote node's, with the pool whose connection proved it.
    Remote(String, Pool),
}

/// `POST /api/login` with `{"password": "…"}` (this node) or `{"password": "…", "node": "…"}`.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Conn>,
    via: Transport,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, WebError> {
    if !via.secure {
        return Err(WebError::HttpsRequired(state.https != Https::Off));
    }
    let ip = peer.addr.ip();
    // Counted from here: a remote node's round trip below cannot be raced by more guesses.
    // Dropped without a verdict (bad request, unreachable node), the attempt is given back.
    let attempt = state
        .access
        .throttle()
        .begin_at("web", ip)
        .map_err(|wait| WebError::LockedOut(wait.as_secs().max(1)))?;
    let LoginBody { password, node } =
        json_body::parse(&headers, body, r#"{"password": "…", "node": "…"}"#)?;
    // A remote node gets it on one protocol line: no line breaks, no overlong line.
    if password.len() > MAX_PASSWORD || password.chars().any(char::is_control) {
        return Err(WebError::BadRequest(format!(
            "a password is at most {MAX_PASSWORD} bytes, without control characters"
        )));
    }
    let remote = match node {
        Some(key) => {
            let n = state
                .nodes
                .find(&key)
                .ok_or_else(|| WebError::NotFound(format!("no node named {key:?}")))?;
            (!n.local).then_some(n.addr)
        }
        None => None,
    };
    let proven = match remote {
        Some(addr) => {
            if password.is_empty() {
                None
            } else {
                let password = Credentials::password(password);
                let pool = Pool::with_credentials(&addr, pool_config(), password);
                remote_login(&pool)
                    .await?
                    .then_some(Proven::Remote(addr, pool))
            }
        }
        None => {
            if !state.access.is_protected() {
                return Err(WebError::BadRequest(
                    "this node has no password to give".into(),
                ));
            }
            // One BLAKE3 derivation and a few comparisons: cheap enough to run here (and once
            // more on the session's own keys when it is right).
            let ok =
                !password.is_empty() && state.access.authenticate(&password, &mut Keys::default());
            ok.then_some(Proven::Local(password))
        }
    };
    let Some(proven) = proven else {
        attempt.failed_at("web");
        return Err(WebError::WrongPassword);
    };
    let (token, grant) = state
        .sessions
        .login(&headers, ip, |grant| match proven {
            Proven::Local(password) => {
                state.access.authenticate(&password, &mut grant.keys);
            }
            Proven::Remote(addr, pool) => grant.add_remote(&addr, pool),
        })
        .ok_or_else(|| WebError::Internal("no randomness for a session token".into()))?;
    attempt.succeeded();
    tracing::info!(%ip, "web login");
    let mut response = Json(session_json(&state, true, &grant.keys, via)).into_response();
    set_cookie(&mut response, &token.cookie(via.secure));
    Ok(response)
}

/// `POST /api/logout`: ends the session (if any) and clears the cookie. JSON only, like the
/// other `POST`s, so a foreign page's plain form cannot log a browser out.
pub async fn logout(
    State(state): State<AppState>,
    via: Transport,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    json_body::require_json(&headers)?;
    state.sessions.end(&headers);
    let mut response = Json(session_json(&state, false, &Keys::default(), via)).into_response();
    set_cookie(&mut response, &clear_cookie(via.secure));
    Ok(response)
}

/// Prove a remote node's password on a new connection of `pool` (kept for the session's
/// requests). `Ok(false)`: the node refused the password.
async fn remote_login(pool: &Pool) -> Result<bool, WebError> {
    match pool.fresh().await {
        Ok(mut conn) => {
            conn.done();
            Ok(true)
        }
        Err(e) => match e.remote_code() {
            Some(Code::AuthFailed) => Ok(false),
            Some(Code::BadRequest) => Err(WebError::BadRequest(
                "that node has no password to give".into(),
            )),
            _ => Err(WebError::from(e)),
        },
    }
}

fn set_cookie(response: &mut Response, cookie: &str) {
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(cookie) {
        h.insert(header::SET_COOKIE, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}
