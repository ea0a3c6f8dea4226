//! `Order`: the relay's own replies, kept in their place among libunftp's.
//!
//! The relay ([`crate::relay`]) answers a few commands itself (`AUTH TLS`, a login refused in
//! clear, an anonymous upload). FTP clients may pipeline commands, and every command gets its
//! replies in the order the commands were sent (RFC 959 §4.2). Written at once, the relay's
//! `530` to an anonymous `STOR` would reach a client before libunftp's replies to the commands
//! sent before it, and the client would take it for the answer to one of those. So the relay
//! counts the commands it passed on; a reply of its own waits behind the replies still owed
//! for them, and goes out as soon as the last of those has passed.
//!
//! libunftp answers each command line with exactly one *completion* reply (its last line:
//! three digits, first one `2` to `5`, then a space or the line end), preceded by any number of
//! `1xx` preliminary replies (`150` before a transfer) and continuation lines of a multi-line
//! reply (which it indents when they start with a digit). It also greets a new connection
//! with `220` before any command, which counts as one reply owed.
//!
//! libunftp itself does not keep that order: it answers some commands (`PASS`, `CWD`, `SIZE`,
//! `DELE`…) from a task of their own, after a command pipelined behind them. So the relay
//! passes a command on only once every command before it was heard from ([`Order::all_heard`]:
//! a completion, or a `150` that starts a transfer, so `ABOR` still reaches a running one).

use std::collections::VecDeque;

/// One reply owed to the client, in the order of its commands.
#[derive(Debug, PartialEq, Eq)]
enum Slot {
    /// libunftp's completion reply to a command passed on to it; `heard` once a preliminary
    /// `1xx` reply to it came.
    Theirs { heard: bool },
    /// The relay's own reply, held until every reply before it has passed.
    Ours(Vec<u8>),
}

/// The replies owed to one client, oldest first. Never starts with [`Slot::Ours`]: a reply of
/// the relay's own at the front is sent at once.
#[derive(Debug, Default)]
pub(crate) struct Order {
    owed: VecDeque<Slot>,
}

impl Order {
    /// Nothing owed yet; with `greeting`, libunftp's `220` is owed first.
    pub(crate) fn new(greeting: bool) -> Order {
        let mut order = Order::default();
        if greeting {
            order.owed.push_back(Slot::Theirs { heard: false });
        }
        order
    }

    /// True when every reply owed so far has been sent: the relay may act on session state
    /// (who is logged in) that libunftp's earlier replies settle.
    pub(crate) fn settled(&self) -> bool {
        self.owed.is_empty()
    }

    /// True when libunftp has started answering every command passed on to it: the next
    /// one may go.
    pub(crate) fn all_heard(&self) -> bool {
        !self
            .owed
            .iter()
            .any(|s| *s == Slot::Theirs { heard: false })
    }

    /// A command line was passed on to libunftp: its completion reply is owed.
    pub(crate) fn passed_on(&mut self) {
        self.owed.push_back(Slot::Theirs { heard: false });
    }

    /// The relay answers a command itself with `reply`: returned to be sent now when nothing
    /// is owed before it, else held (and `None`).
    pub(crate) fn ours(&mut self, reply: &[u8]) -> Option<Vec<u8>> {
        if self.owed.is_empty() {
            Some(reply.to_vec())
        } else {
            self.owed.push_back(Slot::Ours(reply.to_vec()));
            None
        }
    }

    /// A reply line from libunftp went to the client; when it completes a command, the
    /// relay's replies that were waiting for it are appended to `out`.
    pub(crate) fn answered(&mut self, line: &[u8], out: &mut Vec<u8>) {
        if preliminary(line) {
            if let Some(Slot::Theirs { heard }) = self
                .owed
                .iter_mut()
                .find(|s| **s == Slot::Theirs { heard: false })
            {
                *heard = true;
            }
            return;
        }
        if !completes(line) {
            return;
        }
        // A completion nothing was owed for (a `421` before closing) has no slot.
        if matches!(self.owed.front(), Some(Slot::Theirs { .. })) {
            self.owed.pop_front();
        }
        while let Some(Slot::Ours(_)) = self.owed.front() {
            if let Some(Slot::Ours(reply)) = self.owed.pop_front() {
                out.extend_from_slice(&reply);
            }
        }
    }
}

/// A preliminary reply line: `1DD` then a space or the line end.
fn preliminary(line: &[u8]) -> bool {
    matches!(
        line,
        [b'1', b'0'..=b'9', b'0'..=b'9', b' ' | b'\r' | b'\n', ..]
    )
}

/// A completion reply line: `DDD` with `D` a digit, the first `2`..=`5`, then a space or the
/// end of the line (libunftp writes a reply without text as `226\r\n`).
fn completes(line: &[u8]) -> bool {
    matches!(
        line,
        [
            b'2'..=b'5',
            b'0'..=b'9',
            b'0'..=b'9',
            b' ' | b'\r' | b'\n',
            ..
        ]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transfer's `150` lets the next command go (an `ABOR`), before its completion.
    #[test]
    fn a_started_transfer_lets_the_next_command_go() {
        let mut order = Order::new(false);
        order.passed_on();
        assert!(!order.all_heard());
        let mut out = Vec::new();
        order.answered(b"150 Sending\r\n", &mut out);
        assert!(order.all_heard() && !order.settled());
        order.passed_on();
        assert!(!order.all_heard());
        order.answered(b"226 Sent\r\n", &mut out);
        order.answered(b"226 Aborted\r\n", &mut out);
        assert!(order.settled() && out.is_empty());
    }

    #[test]
    fn completion_lines() {
        assert!(completes(b"226 Transfer complete\r\n"));
        assert!(completes(b"226\r\n"));
        assert!(completes(b"530 Not logged in\n"));
        assert!(!completes(b"150 Ready\r\n"));
        assert!(!completes(b"211-Features:\r\n"));
        assert!(!completes(b" 211 indented\r\n"));
        assert!(!completes(b"22\r\n"));
        assert!(!completes(b"\r\n"));
        assert!(preliminary(b"150 Ready\r\n") && !preliminary(b"226 Done\r\n"));
    }

    /// The greeting and two commands owed: the relay's reply waits for all three, then goes
    /// out right behind the last; one with nothing owed goes out at once.
    #[test]
    fn our_reply_waits_for_the_replies_owed_before_it() {
        let mut order = Order::new(true);
        order.passed_on();
        order.passed_on();
        assert_eq!(order.ours(b"530 no\r\n"), None);
        order.passed_on();
        let mut out = Vec::new();
        order.answered(b"220 Welcome\r\n", &mut out);
        order.answered(b"331 Password\r\n", &mut out);
        assert!(!order.all_heard());
        order.answered(b"150 Preliminary\r\n", &mut out);
        assert!(!order.all_heard(), "the last command was not heard from");
        assert!(out.is_empty());
        assert!(!order.settled());
        order.answered(b"230 Logged in\r\n", &mut out);
        assert_eq!(out, b"530 no\r\n");
        assert!(!order.settled(), "the command after ours is still owed");
        order.answered(b"200 OK\r\n", &mut out);
        assert!(order.settled());
        order.answered(b"421 Bye\r\n", &mut out);
        assert!(order.settled());
        assert_eq!(order.ours(b"503 x\r\n").as_deref(), Some(&b"503 x\r\n"[..]));
    }
}
