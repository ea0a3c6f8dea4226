//! The file server's door against a parent folder swapped for a symlink — out of the share, or
//! onto a password-protected folder — before a request, and between the moment the share
//! resolved a path and the moment the file is read or checked. Every case fails closed: the
//! outside file and the protected file are never served under the free name.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use meshfs_core::Share;
use meshfs_core::access::Access;
use meshfs_core::share::testing::{fixture, swap_pub};

mod support;

fn serve(root: &Path, walking: bool) -> (support::TestServer, Share) {
    let share = if walking {
        Share::open_walking(root).unwrap()
    } else {
        Share::open(root).unwrap()
    };
    let access = Access::open();
    access.protect_file("priv/clip.mp4", "pw").unwrap();
    let server = support::start(
        root,
        support::Options {
            access: Some(access),
            share: Some(share.clone()),
            ..Default::default()
        },
    );
    (server, share)
}

/// Send one request; the status line and up to 6 payload bytes.
fn ask(addr: &str, request: &str) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("{request}\nquit\n").as_bytes())
        .unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    let text = String::from_utf8_lossy(&reply).into_owned();
    let (status, rest) = text.split_once('\n').unwrap();
    let payload = if status.starts_with("0 6") {
        rest.as_bytes()[..6].to_vec()
    } else {
        Vec::new()
    };
    (status.to_owned(), payload)
}

#[test]
fn parent_swapped_for_a_symlink_before_the_request_fails_closed() {
    for walking in [false, true] {
        let (dir, root) = fixture();
        let (server, _share) = serve(&root, walking);
        assert_eq!(ask(&server.addr, "pread 0 6 pub/clip.mp4").1, b"public");

        swap_pub(&root, &dir.path().join("outside"));
        for request in [
            "pread 0 6 pub/clip.mp4",
            "open pub/clip.mp4",
            "hash pub/clip.mp4",
        ] {
            let (status, payload) = ask(&server.addr, request);
            assert!(
                status.starts_with("2 "),
                "{request} (walk {walking}): {status}"
            );
            assert!(payload.is_empty());
        }

        std::fs::remove_file(root.join("pub")).unwrap();
        symlink("priv", root.join("pub")).unwrap();
        for request in [
            "pread 0 6 pub/clip.mp4",
            "open pub/clip.mp4",
            "hash pub/clip.mp4",
        ] {
            let (status, _) = ask(&server.addr, request);
            assert!(
                status.starts_with("8 password required:"),
                "{request}: {status}"
            );
        }
    }
}

/// A hook that swaps `pub` on the `k`-th resolution only: a door that resolved a path twice
/// (checked, then opened) would be caught between the two by one of `k = 1, 2`.
fn swap_on(k: usize, root: &Path, target: PathBuf) -> meshfs_core::share::ResolveHook {
    let calls = AtomicUsize::new(0);
    let root = root.to_owned();
    Arc::new(move |_: &str| {
        if calls.fetch_add(1, Ordering::SeqCst) + 1 == k {
            swap_pub(&root, &target);
        }
    })
}

#[test]
fn parent_swapped_between_resolve_and_use_serves_only_what_was_resolved() {
    for walking in [false, true] {
        for to_protected in [false, true] {
            for k in [1, 2] {
                let (dir, root) = fixture();
                let (server, share) = serve(&root, walking);
                let target = if to_protected {
                    PathBuf::from("priv")
                } else {
                    dir.path().join("outside")
                };
                share.set_resolve_hook(Some(swap_on(k, &root, target)));
                let case = format!("walk {walking}, to protected {to_protected}, swap at {k}");
                for request in ["pread 0 6 pub/clip.mp4", "hash pub/clip.mp4"] {
                    let (status, payload) = ask(&server.addr, request);
                    assert!(
                        payload != b"escape" && payload != b"secret",
                        "{case}: {request} leaked"
                    );
                    if request.starts_with("hash") {
                        let leaked = [b"escape", b"secret"]
                            .map(|t| format!("0 {}", blake3::hash(t).to_hex()));
                        assert!(!leaked.contains(&status), "{case}: {request} leaked");
                    } else {
                        // One resolution per request: the file resolved is the one served.
                        assert_eq!(
                            (status.as_str(), payload.as_slice()),
                            ("0 6", &b"public"[..]),
                            "{case}"
                        );
                    }
                }
            }
        }
    }
}
