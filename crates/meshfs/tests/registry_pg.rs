//! `meshfs registry --store postgres://…` end to end, with the real binary and a real
//! PostgreSQL (started per test in a temporary folder): two instances serving one directory,
//! one `REGISTER OK` for a name registered on both at once, `kill -9` of an instance under
//! load losing no acknowledged operation, and a PostgreSQL restart failing operations cleanly
//! while the instances reconnect by themselves.

mod common;

#[path = "../../meshfs-registry/tests/support/postgres.rs"]
mod pg;

use std::collections::HashSet;
use std::sync::{Arc, Barrier, mpsc};
use std::time::{Duration, Instant};

use common::directory::{call, fields_of, try_call};
use common::{Proc, spawn};
use pg::TempPostgres;

const WAIT: Duration = Duration::from_secs(20);

/// `meshfs registry` on a free loopback port, its state in `db`; returns its address.
fn instance(db: &TempPostgres) -> (Proc, String) {
    let url = db.url();
    let (proc, line) = spawn(&["registry", "--listen", "127.0.0.1:0", "--store", &url]);
    let addr = line
        .strip_prefix("s> init server ")
        .unwrap_or_else(|| panic!("unexpected readiness line {line:?}"))
        .to_owned();
    (proc, addr)
}

#[test]
fn two_instances_serve_one_directory() {
    let db = TempPostgres::start();
    let (_one, a) = instance(&db);
    let (_two, b) = instance(&db);
    assert_eq!(call(&a, &["REGISTER", "cam1"]), [0]);
    assert_eq!(call(&b, &["REGISTER", "cam1"]), [1], "seen at once on B");
    assert_eq!(call(&b, &["CONNECT", "cam1", "4051"]), [0]);
    assert_eq!(
        call(
            &a,
            &[
                "PUBLISH",
                "cam1",
                "clips/front door.mp4",
                "9 bytes video/mp4"
            ]
        ),
        [0]
    );
    assert_eq!(
        fields_of(&call(&b, &["LIST_CONTENT", "cam1", "cam1"])),
        ["1", "clips/front door.mp4"]
    );
    assert_eq!(
        fields_of(&call(&a, &["LIST_USERS", "cam1"])),
        ["1", "cam1", "127.0.0.1", "4051"]
    );
    assert_eq!(call(&a, &["DISCONNECT", "cam1"]), [0]);
    assert_eq!(
        call(&b, &["DISCONNECT", "cam1"]),
        [2],
        "not connected, seen on B"
    );
}

#[test]
fn one_name_registered_on_two_instances_at_once_is_registered_once() {
    let db = TempPostgres::start();
    let (_one, a) = instance(&db);
    let (_two, b) = instance(&db);
    const ROUNDS: usize = 30;
    const CALLERS: usize = 6;
    for round in 0..ROUNDS {
        let name = format!("cam{round}");
        let start = Arc::new(Barrier::new(CALLERS));
        let callers: Vec<_> = (0..CALLERS)
            .map(|i| {
                let addr = if i % 2 == 0 { a.clone() } else { b.clone() };
                let (start, name) = (start.clone(), name.clone());
                std::thread::spawn(move || {
                    start.wait();
                    call(&addr, &["REGISTER", &name])
                })
            })
            .collect();
        let mut replies: Vec<Vec<u8>> = callers.into_iter().map(|c| c.join().unwrap()).collect();
        replies.sort();
        let mut want = vec![vec![1u8]; CALLERS - 1];
        want.insert(0, vec![0]);
        assert_eq!(replies, want, "round {round}: exactly one REGISTER OK");
    }
}

#[test]
fn kill_9_of_an_instance_under_load_loses_no_acknowledged_operation() {
    let db = TempPostgres::start();
    let (mut one, a) = instance(&db);
    let (_two, b) = instance(&db);
    assert_eq!(call(&a, &["REGISTER", "writer"]), [0]);
    assert_eq!(call(&a, &["CONNECT", "writer", "4321"]), [0]);

    // Four clients publish through instance A as fast as they can, reporting what was acked.
    let (acked_tx, acked) = mpsc::channel::<String>();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (addr, acked_tx) = (a.clone(), acked_tx.clone());
            std::thread::spawn(move || {
                for i in 0..1_000_000u32 {
                    let name = format!("w{w}/file{i}");
                    match try_call(&addr, &["PUBLISH", "writer", &name, "d"]) {
                        Ok(reply) if reply == [0] => {
                            if acked_tx.send(name).is_err() {
                                return;
                            }
                        }
                        _ => return, // the instance is gone
                    }
                }
            })
        })
        .collect();
    drop(acked_tx);
    let mut confirmed = Vec::new();
    while confirmed.len() < 200 {
        confirmed.push(
            acked
                .recv_timeout(WAIT)
                .expect("acknowledgements keep coming"),
        );
    }
    one.child.kill().unwrap(); // SIGKILL, in the middle of the stream of operations
    one.wait_exit(WAIT);
    for w in writers {
        w.join().unwrap();
    }
    confirmed.extend(acked.try_iter());

    // The other instance, never restarted, has every acknowledged operation.
    let listed: HashSet<String> = fields_of(&call(&b, &["LIST_CONTENT", "writer", "writer"]))
        .into_iter()
        .skip(1)
        .collect();
    let lost: Vec<&String> = confirmed.iter().filter(|n| !listed.contains(*n)).collect();
    assert!(
        lost.is_empty(),
        "acknowledged but lost after kill -9: {lost:?}"
    );
    assert!(
        listed.len() <= confirmed.len() + 4,
        "at most the operations in flight were added unacknowledged"
    );
    // And a new instance takes over where A stopped.
    let (_three, c) = instance(&db);
    assert_eq!(call(&c, &["REGISTER", "writer"]), [1]);
}

#[test]
fn a_postgres_restart_fails_operations_cleanly_and_instances_recover_by_themselves() {
    let db = TempPostgres::start();
    let (_one, a) = instance(&db);
    let (_two, b) = instance(&db);
    assert_eq!(call(&a, &["REGISTER", "cam"]), [0]);
    assert_eq!(call(&a, &["CONNECT", "cam", "4051"]), [0]);

    db.stop("fast");
    // Each operation gets its own error code, promptly: no hang, no crash of the instance.
    let started = Instant::now();
    assert_eq!(call(&a, &["REGISTER", "other"]), [2]);
    assert_eq!(call(&b, &["PUBLISH", "cam", "f", "d"]), [4]);
    assert_eq!(call(&a, &["LIST_USERS", "cam"]), [3]);
    assert_eq!(call(&b, &["CONNECT", "cam", "1"]), [3]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "failures took {:?}",
        started.elapsed()
    );
    db.start_again();

    // Both instances, never restarted, serve again once PostgreSQL is back.
    let back = Instant::now();
    while call(&a, &["PUBLISH", "cam", "after", "d"]) != [0] {
        assert!(
            back.elapsed() < WAIT,
            "instance A never recovered\n{}",
            db.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        fields_of(&call(&b, &["LIST_CONTENT", "cam", "cam"])),
        ["1", "after"],
        "nothing of the failed PUBLISH was applied"
    );
    assert_eq!(
        call(&b, &["REGISTER", "other"]),
        [0],
        "the failed REGISTER left no trace"
    );
}

#[test]
fn a_store_that_is_not_postgres_or_cannot_be_reached_stops_the_start_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::run(
        &[
            "registry",
            "--listen",
            "127.0.0.1:0",
            "--store",
            "mysql://u@h/db",
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--store takes postgres://"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing listens on a port just freed: refused at once, reported, no hang.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let out = common::run(
        &[
            "registry",
            "--listen",
            "127.0.0.1:0",
            "--store",
            &format!("postgres://meshfs:secret@127.0.0.1:{port}/postgres"),
        ],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cannot open the directory's PostgreSQL database"),
        "{stderr}"
    );
    assert!(!stderr.contains("secret"), "the password leaked: {stderr}");
    assert!(started.elapsed() < WAIT);
}
