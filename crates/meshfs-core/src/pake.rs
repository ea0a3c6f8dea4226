//! A password proof that never sends the password: SPAKE2 bound to the TLS session.
//!
//! `auth <password>` hands the password to whoever answers, which on first contact may be an
//! impostor (trust on first use pins whatever key answers first). With SPAKE2 each side only
//! sends a blinded curve point; an active impostor learns nothing it can test offline and gets
//! one online guess per attempt, which the node counts as a failure ([`MAX_FAILURES`]).
//!
//! Binding: both ends mix into SPAKE2's identities the keying material exported from their TLS
//! session ([`tls::session_binding`](crate::tls::session_binding)) and the node's ID. A man in the
//! middle runs two TLS sessions with two different exports, so the two ends derive different
//! keys even though each talks to him, and neither confirmation verifies. A proof that
//! succeeds therefore also confirms that the client's TLS session ends at a holder of the
//! password with the ID the client saw.
//!
//! Key confirmation runs both ways with HMAC-SHA256 under the SPAKE2 key: the node confirms
//! first, so a client talking to an impostor stops there (wrong password, or not the node)
//! without answering; the client's confirmation then proves the password to the node.
//!
//! # Wire form (file-server protocol, over TLS only)
//!
//! ```text
//! C: pake <base64 msgA>[ <path>]        SPAKE2 side A (33 bytes); <path>: prove that file's
//!                                       own password; none: the share's password
//! S: 0 <base64 msgB> <base64 confirmB>  SPAKE2 side B (33 bytes), node's confirmation (32 bytes)
//!    5 bad pake message | 2 TLS required | 1 no password protects <path>
//! C: pake-confirm <base64 confirmA>     client's confirmation (32 bytes)
//! S: 0 OK                               the password is proven on this connection
//!    6 authentication failed | 4 no pake in progress
//! ```
//!
//! base64 is RFC 4648 with padding. confirmB = HMAC(K, "meshfs-pake-v1 node confirm\0" ‖ path),
//! confirmA = HMAC(K, "meshfs-pake-v1 client confirm\0" ‖ path), with K the SPAKE2 key, whose
//! transcript covers both messages, the password and the identities
//! idA = "meshfs-pake-v1 client" ‖ E, idB = "meshfs-pake-v1 node" ‖ nodeID ‖ E, where E is the
//! 32-byte TLS export (label `EXPORTER-meshfs-auth`, no context) and nodeID the node's 32-byte
//! [`NodeId`]. The node counts a failure when it answers `pake` and takes it back when the
//! confirmation verifies, so a client that stops after learning confirmB still spent a guess.
//!
//! The password enters SPAKE2 as a [`Secret`] (a BLAKE3 key derivation of the keyed digest
//! [`Access`](crate::access::Access) keeps), so the node holds no password, only a
//! password-equivalent for this protocol.
//!
//! [`MAX_FAILURES`]: crate::throttle::MAX_FAILURES

use std::fmt;

use spake2::{Ed25519Group, Identity as SpakeId, Password, Spake2};

use crate::identity::NodeId;

/// The request word that starts a proof.
pub const REQUEST: &str = "pake";
/// The request word that finishes it.
pub const CONFIRM: &str = "pake-confirm";

const CONTEXT: &str = "meshfs 2026-12 pake password v1";
const ID_CLIENT: &[u8] = b"meshfs-pake-v1 client";
const ID_NODE: &[u8] = b"meshfs-pake-v1 node";
const CONFIRM_NODE: &[u8] = b"meshfs-pake-v1 node confirm\0";
const CONFIRM_CLIENT: &[u8] = b"meshfs-pake-v1 client confirm\0";
/// SPAKE2 message length over Ed25519: a side byte and a compressed point.
const MSG_LEN: usize = 33;
/// Longest base64 field accepted (a 33- or 32-byte value takes 44 characters).
const MAX_B64: usize = 64;

/// Why a proof failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PakeError {
    /// The peer's message is not a well-formed SPAKE2 message or confirmation.
    #[error("bad pake message: {0}")]
    Malformed(&'static str),
    /// The node's confirmation did not verify (seen by the client).
    #[error(
        "the node did not prove the password: the password is wrong, or this is not the node \
         it claims to be (its connection is not the one we hold)"
    )]
    NodeNotProven,
    /// The client's confirmation did not verify (seen by the node).
    #[error("authentication failed")]
    Failed,
}

/// The password as SPAKE2 takes it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; 32]);

impl Secret {
    /// Derive from a password (what a client does; the node derives the same from the digest
    /// it keeps, [`crate::access::Access::pake_secret`]).
    pub fn from_password(password: &str) -> Secret {
        Secret::from_digest(crate::access::digest(password).as_bytes())
    }

    /// Derive from a password's keyed digest (`access`).
    pub(crate) fn from_digest(digest: &[u8; 32]) -> Secret {
        Secret(blake3::derive_key(CONTEXT, digest))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// What ties a proof to one TLS session and one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// The session's exported keying material (`tls::session_binding`).
    pub session: [u8; 32],
    /// The node's ID: the client uses the one it saw in the handshake, the node its own.
    pub node: NodeId,
}

impl Binding {
    fn ids(&self) -> (SpakeId, SpakeId) {
        let a = [ID_CLIENT, &self.session].concat();
        let b = [ID_NODE, self.node.as_bytes().as_slice(), &self.session].concat();
        (SpakeId::new(&a), SpakeId::new(&b))
    }
}

/// A client's proof in progress, between `pake` and the node's answer.
pub struct ClientProof {
    state: Spake2<Ed25519Group>,
    scope: String,
}

impl fmt::Debug for ClientProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientProof")
            .field("scope", &self.scope)
            .finish()
    }
}

impl ClientProof {
    /// Start proving `secret` for `scope` (`""`: the share's password; else a path whose own
    /// password it is). Returns the proof and the argument of the `pake` request.
    pub fn start(secret: &Secret, binding: &Binding, scope: &str) -> (ClientProof, String) {
        let (a, b) = binding.ids();
        let (state, msg) = Spake2::<Ed25519Group>::start_a(&Password::new(secret.0), &a, &b);
        let mut arg = b64(&msg);
        if !scope.is_empty() {
            arg.push(' ');
            arg.push_str(scope);
        }
        (
            ClientProof {
                state,
                scope: scope.to_owned(),
            },
            arg,
        )
    }

    /// Check the node's answer (the text after `0 `); on success returns the argument of the
    /// `pake-confirm` request. [`PakeError::NodeNotProven`] means: send nothing more.
    pub fn finish(self, reply: &str) -> Result<String, PakeError> {
        let mut fields = reply.split(' ');
        let (Some(msg), Some(confirm), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(PakeError::Malformed("expected two fields"));
        };
        let msg = un_b64(msg, MSG_LEN)?;
        let confirm = un_b64(confirm, 32)?;
        let key = self
            .state
            .finish(&msg)
            .map_err(|_| PakeError::Malformed("not a node's SPAKE2 message"))?;
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
        ring::hmac::verify(&key, &tagged(CONFIRM_NODE, &self.scope), &confirm)
            .map_err(|_| PakeError::NodeNotProven)?;
        Ok(b64(ring::hmac::sign(
            &key,
            &tagged(CONFIRM_CLIENT, &self.scope),
        )
        .as_ref()))
    }
}

/// A parsed `pake` request: what the node needs to pick the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    msg: Vec<u8>,
    /// `""` for the share's password, else the path whose own password is proven.
    pub scope: String,
}

impl Request {
    /// Parse the argument of `pake`.
    pub fn parse(arg: &str) -> Result<Request, PakeError> {
        let (msg, scope) = arg.split_once(' ').unwrap_or((arg, ""));
        Ok(Request {
            msg: un_b64(msg, MSG_LEN)?,
            scope: scope.to_owned(),
        })
    }
}

/// A node's proof in progress, between its answer and `pake-confirm`.
pub struct NodeProof {
    key: ring::hmac::Key,
    scope: String,
}

impl fmt::Debug for NodeProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeProof")
            .field("scope", &self.scope)
            .finish()
    }
}

impl NodeProof {
    /// Answer `request` knowing `secret`: returns the proof to keep and the reply text (after
    /// `0 `).
    pub fn respond(
        secret: &Secret,
        binding: &Binding,
        request: &Request,
    ) -> Result<(NodeProof, String), PakeError> {
        let (a, b) = binding.ids();
        let (state, msg) = Spake2::<Ed25519Group>::start_b(&Password::new(secret.0), &a, &b);
        let key = state
            .finish(&request.msg)
            .map_err(|_| PakeError::Malformed("not a client's SPAKE2 message"))?;
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
        let confirm = ring::hmac::sign(&key, &tagged(CONFIRM_NODE, &request.scope));
        let reply = format!("{} {}", b64(&msg), b64(confirm.as_ref()));
        Ok((
            NodeProof {
                key,
                scope: request.scope.clone(),
            },
            reply,
        ))
    }

    /// Check the argument of `pake-confirm`; `Ok(scope)` when the password is proven.
    pub fn confirm(&self, arg: &str) -> Result<String, PakeError> {
        let got = un_b64(arg, 32).map_err(|_| PakeError::Failed)?;
        // ring's verify compares in constant time.
        ring::hmac::verify(&self.key, &tagged(CONFIRM_CLIENT, &self.scope), &got)
            .map_err(|_| PakeError::Failed)?;
        Ok(self.scope.clone())
    }
}

fn tagged(label: &[u8], scope: &str) -> Vec<u8> {
    [label, scope.as_bytes()].concat()
}

fn b64(bytes: &[u8]) -> String {
    data_encoding::BASE64.encode(bytes)
}

fn un_b64(text: &str, len: usize) -> Result<Vec<u8>, PakeError> {
    if text.len() > MAX_B64 {
        return Err(PakeError::Malformed("field too long"));
    }
    let bytes = data_encoding::BASE64
        .decode(text.as_bytes())
        .map_err(|_| PakeError::Malformed("not base64"))?;
    if bytes.len() != len {
        return Err(PakeError::Malformed("wrong length"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(session: u8, node: u8) -> Binding {
        Binding {
            session: [session; 32],
            node: NodeId::from_bytes([node; 32]),
        }
    }

    /// One full exchange; `Err` says which side refused.
    fn run(
        client_pw: &str,
        node_pw: &str,
        client_b: Binding,
        node_b: Binding,
        scope: &str,
    ) -> Result<String, PakeError> {
        let (proof, arg) = ClientProof::start(&Secret::from_password(client_pw), &client_b, scope);
        let req = Request::parse(&arg)?;
        assert_eq!(req.scope, scope);
        let (node, reply) = NodeProof::respond(&Secret::from_password(node_pw), &node_b, &req)?;
        let confirm = proof.finish(&reply)?;
        node.confirm(&confirm)
    }

    #[test]
    fn right_password_proves_both_ways() {
        let b = binding(7, 1);
        assert_eq!(run("s3cret", "s3cret", b, b, "").unwrap(), "");
        assert_eq!(
            run("s3cret", "s3cret", b, b, "clips/a b.mp4").unwrap(),
            "clips/a b.mp4"
        );
    }

    #[test]
    fn wrong_password_is_caught_by_the_client_first() {
        let b = binding(7, 1);
        assert_eq!(
            run("guess", "s3cret", b, b, ""),
            Err(PakeError::NodeNotProven)
        );
        // A client that ignores the node's confirmation and answers anyway is refused.
        let (_, arg) = ClientProof::start(&Secret::from_password("guess"), &b, "");
        let (node, _) = NodeProof::respond(
            &Secret::from_password("s3cret"),
            &b,
            &Request::parse(&arg).unwrap(),
        )
        .unwrap();
        assert_eq!(node.confirm(&b64(&[0u8; 32])), Err(PakeError::Failed));
    }

    /// A man in the middle holds two TLS sessions: the exports differ, so even the right
    /// password on both ends fails, and the client stops before confirming anything.
    #[test]
    fn another_tls_session_fails() {
        assert_eq!(
            run("s3cret", "s3cret", binding(7, 1), binding(8, 1), ""),
            Err(PakeError::NodeNotProven)
        );
    }

    /// The client saw another node ID than the node's own: fails.
    #[test]
    fn another_node_id_fails() {
        assert_eq!(
            run("s3cret", "s3cret", binding(7, 1), binding(7, 2), ""),
            Err(PakeError::NodeNotProven)
        );
    }

    /// A proof for one file's password does not pass for another scope.
    #[test]
    fn scope_is_bound() {
        let b = binding(7, 1);
        let secret = Secret::from_password("pw");
        let (proof, arg) = ClientProof::start(&secret, &b, "a.mp4");
        let (msg, _) = arg.split_once(' ').unwrap();
        let tampered = Request::parse(&format!("{msg} b.mp4")).unwrap();
        let (_, reply) = NodeProof::respond(&secret, &b, &tampered).unwrap();
        assert_eq!(proof.finish(&reply), Err(PakeError::NodeNotProven));
    }

    /// Replaying a recorded exchange into a new session of the node (even one with the same
    /// binding) fails: the node's fresh randomness changes the key.
    #[test]
    fn replay_fails() {
        let b = binding(7, 1);
        let secret = Secret::from_password("s3cret");
        let (proof, arg) = ClientProof::start(&secret, &b, "");
        let req = Request::parse(&arg).unwrap();
        let (node, reply) = NodeProof::respond(&secret, &b, &req).unwrap();
        let confirm = proof.finish(&reply).unwrap();
        node.confirm(&confirm).unwrap();

        let (again, _) = NodeProof::respond(&secret, &b, &req).unwrap();
        assert_eq!(again.confirm(&confirm), Err(PakeError::Failed));
    }

    #[test]
    fn malformed_messages_are_refused() {
        let b = binding(7, 1);
        let secret = Secret::from_password("pw");
        for bad in ["", "!!!!", "AAAA", &"A".repeat(100), &b64(&[0x41; 32])] {
            assert!(
                matches!(Request::parse(bad), Err(PakeError::Malformed(_))),
                "{bad:?}"
            );
        }
        // The node's own message reflected back (side B where A is expected).
        let (_, arg) = ClientProof::start(&secret, &b, "");
        let req = Request::parse(&arg).unwrap();
        let (_, reply) = NodeProof::respond(&secret, &b, &req).unwrap();
        let reflected = Request::parse(reply.split(' ').next().unwrap()).unwrap();
        assert!(matches!(
            NodeProof::respond(&secret, &b, &reflected),
            Err(PakeError::Malformed(_))
        ));
        let (proof, _) = ClientProof::start(&secret, &b, "");
        for bad in ["", "x", "a b c", &format!("{} x", b64(&[1; 33]))] {
            let (p, _) = ClientProof::start(&secret, &b, "");
            assert!(
                matches!(p.finish(bad), Err(PakeError::Malformed(_))),
                "{bad:?}"
            );
        }
        // The client's message reflected back (side A where B is expected).
        assert!(matches!(
            proof.finish(&format!("{} {}", arg, b64(&[0; 32]))),
            Err(PakeError::Malformed(_))
        ));
        let (node, _) = NodeProof::respond(&secret, &b, &req).unwrap();
        assert_eq!(node.confirm("not base64!"), Err(PakeError::Failed));
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(
            format!("{:?}", Secret::from_password("hunter2")),
            "Secret(..)"
        );
    }
}
