//! The PostgreSQL store against a real PostgreSQL (started per test in a temporary folder):
//! the same answers as the SQLite store, two stores on one database seeing each other at
//! once, one winner among concurrent `REGISTER`s of one name, a versioned schema, and a
//! database restart that fails operations cleanly and is recovered from without reopening.

#[path = "support/postgres.rs"]
mod pg;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use meshfs_registry::op::Refusal;
use meshfs_registry::{PostgresConfig, PostgresStore, SqliteStore, Store};
use pg::TempPostgres;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn open(pg: &TempPostgres) -> PostgresStore {
    PostgresStore::open(PostgresConfig::new(pg.url())).expect("open the PostgreSQL store")
}

/// The course's rules, run on any store.
fn course_rules(s: &dyn Store) {
    assert_eq!(s.register("a", None).unwrap(), Ok(()));
    assert_eq!(s.register("a", None).unwrap(), Err(Refusal::NameInUse));
    assert_eq!(
        s.publish("a", "f", "d", None).unwrap(),
        Err(Refusal::NotConnected)
    );
    assert_eq!(
        s.publish("nobody", "f", "d", None).unwrap(),
        Err(Refusal::NoSuchUser)
    );
    assert_eq!(s.connect("a", LOCAL, 1, None).unwrap(), Ok(()));
    assert_eq!(
        s.connect("a", LOCAL, 2, None).unwrap(),
        Err(Refusal::AlreadyConnected)
    );
    let users = s.list_users("a", None).unwrap().unwrap();
    assert_eq!((users[0].ip.as_str(), users[0].port), ("127.0.0.1", 1));
    assert_eq!(
        s.publish("a", "f", "d", Some("01/01/2026 00:00:00"))
            .unwrap(),
        Ok(())
    );
    assert_eq!(
        s.publish("a", "f", "e", None).unwrap(),
        Err(Refusal::AlreadyPublished)
    );
    assert_eq!(s.publish("a", "B c", "", None).unwrap(), Ok(()));
    assert_eq!(s.publish("a", "a", "", None).unwrap(), Ok(()));
    // Byte order, whatever the database's locale: "B c" < "a" < "f".
    assert_eq!(
        s.list_content("a", "a", Some("02/01/2026 00:00:00"))
            .unwrap()
            .unwrap(),
        ["B c", "a", "f"]
    );
    assert_eq!(
        s.list_content("a", "zed", None).unwrap(),
        Err(Refusal::NoSuchTarget)
    );
    assert_eq!(s.delete("a", "a", None).unwrap(), Ok(()));
    assert_eq!(
        s.delete("a", "a", None).unwrap(),
        Err(Refusal::NotPublished)
    );
    assert_eq!(s.register("b", None).unwrap(), Ok(()));
    assert_eq!(s.connect("b", LOCAL, 7, None).unwrap(), Ok(()));
    let names: Vec<String> = s
        .list_users("b", None)
        .unwrap()
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(s.disconnect("a", None).unwrap(), Ok(()));
    assert_eq!(s.disconnect("a", None).unwrap(), Err(Refusal::NotConnected));
    // A disconnected user's files are kept, and hidden.
    assert!(s.list_content("b", "a", None).unwrap().unwrap().is_empty());
    assert_eq!(s.list_users("a", None).unwrap(), Err(Refusal::NotConnected));
    assert_eq!(
        s.list_content("a", "b", None).unwrap(),
        Err(Refusal::NotConnected)
    );
    assert_eq!(
        s.list_users("ghost", None).unwrap(),
        Err(Refusal::NoSuchUser)
    );
    assert_eq!(
        s.list_content("ghost", "b", None).unwrap(),
        Err(Refusal::NoSuchUser)
    );
    assert_eq!(s.connect("a", LOCAL, 3, None).unwrap(), Ok(()));
    assert_eq!(
        s.list_content("b", "a", None).unwrap().unwrap(),
        ["B c", "f"]
    );
    assert_eq!(s.unregister("a", None).unwrap(), Ok(()));
    assert_eq!(s.unregister("a", None).unwrap(), Err(Refusal::NoSuchUser));
    assert_eq!(s.register("a", None).unwrap(), Ok(()));
    assert_eq!(s.connect("a", LOCAL, 3, None).unwrap(), Ok(()));
    assert!(s.list_content("a", "a", None).unwrap().unwrap().is_empty());
}

#[test]
fn answers_as_the_sqlite_store_does() {
    let dir = tempfile::tempdir().unwrap();
    course_rules(&SqliteStore::open(&dir.path().join("r.sqlite3")).unwrap());

    let pg = TempPostgres::start();
    let store = open(&pg);
    course_rules(&store);
    assert_eq!(
        store.last_date("a").unwrap(),
        None,
        "re-registered: stamp gone"
    );
    assert_eq!(store.last_date("b").unwrap(), None, "b never sent a stamp");
    store
        .list_users("b", Some("03/01/2026 10:00:00"))
        .unwrap()
        .unwrap();
    assert_eq!(
        store.last_date("b").unwrap().as_deref(),
        Some("03/01/2026 10:00:00")
    );
}

#[test]
fn two_instances_share_one_directory() {
    let pg = TempPostgres::start();
    let (one, two) = (open(&pg), open(&pg));
    assert_eq!(one.register("cam1", None).unwrap(), Ok(()));
    // Visible from the other instance at once: no cache, no delay.
    assert_eq!(two.register("cam1", None).unwrap(), Err(Refusal::NameInUse));
    assert_eq!(two.connect("cam1", LOCAL, 4051, None).unwrap(), Ok(()));
    assert_eq!(
        one.publish("cam1", "clip 1.mp4", "1 bytes video/mp4", None)
            .unwrap(),
        Ok(())
    );
    assert_eq!(
        two.list_content("cam1", "cam1", None).unwrap().unwrap(),
        ["clip 1.mp4"]
    );
    let users = one.list_users("cam1", None).unwrap().unwrap();
    assert_eq!((users.len(), users[0].port), (1, 4051));
    assert_eq!(
        pg.psql("SELECT version FROM meshfs_schema_version"),
        "1",
        "one schema version, migrated once"
    );
}

#[test]
fn concurrent_registers_of_one_name_have_one_winner() {
    let pg = TempPostgres::start();
    let stores: Vec<Arc<PostgresStore>> = (0..2).map(|_| Arc::new(open(&pg))).collect();
    const ROUNDS: usize = 40;
    const RACERS: usize = 8;
    for round in 0..ROUNDS {
        let name = format!("racer{round}");
        let start = Arc::new(Barrier::new(RACERS));
        let racers: Vec<_> = (0..RACERS)
            .map(|i| {
                let (store, start, name) = (stores[i % 2].clone(), start.clone(), name.clone());
                std::thread::spawn(move || {
                    start.wait();
                    store.register(&name, None)
                })
            })
            .collect();
        let results: Vec<_> = racers.into_iter().map(|t| t.join().unwrap()).collect();
        let won = results.iter().filter(|r| matches!(r, Ok(Ok(())))).count();
        let lost = results
            .iter()
            .filter(|r| matches!(r, Ok(Err(Refusal::NameInUse))))
            .count();
        assert_eq!((won, lost), (1, RACERS - 1), "round {round}: {results:?}");
    }
    assert_eq!(
        pg.psql("SELECT count(*) FROM meshfs_users"),
        ROUNDS.to_string()
    );
}

#[test]
fn concurrent_connects_and_publishes_stay_consistent() {
    // CONNECT races on one user: exactly one wins; PUBLISH races on one file: exactly one.
    let pg = TempPostgres::start();
    let stores: Vec<Arc<PostgresStore>> = (0..2).map(|_| Arc::new(open(&pg))).collect();
    for round in 0..20 {
        let user = format!("u{round}");
        assert_eq!(stores[0].register(&user, None).unwrap(), Ok(()));
        let race = |op: fn(&PostgresStore, &str, usize) -> meshfs_registry::store::Outcome| {
            let start = Arc::new(Barrier::new(6));
            let threads: Vec<_> = (0..6)
                .map(|i| {
                    let (store, start, user) = (stores[i % 2].clone(), start.clone(), user.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        op(&store, &user, i)
                    })
                })
                .collect();
            let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
            assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
            results.iter().filter(|r| matches!(r, Ok(Ok(())))).count()
        };
        assert_eq!(
            race(|s, u, i| s.connect(u, LOCAL, 5000 + i as u16, None)),
            1
        );
        assert_eq!(race(|s, u, _| s.publish(u, "same", "d", None)), 1);
    }
}

#[test]
fn schema_is_versioned() {
    let pg = TempPostgres::start();
    // Instances starting together migrate one at a time.
    let url = pg.url();
    let openers: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PostgresStore::open(PostgresConfig::new(url)).map(drop))
        })
        .collect();
    for o in openers {
        o.join().unwrap().expect("concurrent open");
    }
    assert_eq!(pg.psql("SELECT count(*) FROM meshfs_schema_version"), "1");
    // A database written by a newer meshfs is refused, not damaged.
    pg.psql("INSERT INTO meshfs_schema_version (version) VALUES (99)");
    let err = PostgresStore::open(PostgresConfig::new(pg.url()))
        .err()
        .expect("newer schema refused")
        .to_string();
    assert!(err.contains("schema version 99"), "{err}");
}

#[test]
fn a_database_restart_fails_cleanly_and_is_recovered_from() {
    let pg = TempPostgres::start();
    let mut config = PostgresConfig::new(pg.url());
    config.op_timeout = Duration::from_secs(5);
    let store = Arc::new(PostgresStore::open(config).unwrap());
    assert_eq!(store.register("cam", None).unwrap(), Ok(()));
    assert_eq!(store.connect("cam", LOCAL, 1, None).unwrap(), Ok(()));

    // Writers that each stamp their publish: the file and the stamp are one transaction.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let user = format!("w{w}");
                assert_eq!(store.register(&user, None).unwrap(), Ok(()));
                assert_eq!(store.connect(&user, LOCAL, 1, None).unwrap(), Ok(()));
                let (mut acked, mut failed) = (Vec::new(), 0);
                let mut k = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let date = format!("01/01/2026 00:{:02}:{:02}", k / 60 % 60, k % 60);
                    match store.publish(&user, &format!("f{k:05}"), "d", Some(&date)) {
                        Ok(Ok(())) => acked.push(k),
                        Ok(Err(r)) => panic!("refused {r}"),
                        Err(_) => failed += 1,
                    }
                    k += 1;
                }
                (user, acked, failed)
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(300)); // let load build up (not synchronisation)
    pg.stop("fast");
    // While the database is down, operations fail promptly with an error, never hang.
    let started = Instant::now();
    assert!(store.list_users("cam", None).is_err());
    assert!(store.register("down", None).is_err());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    pg.start_again();

    // The same store recovers by itself.
    let recovered = Instant::now();
    loop {
        match store.list_users("cam", None) {
            Ok(Ok(_)) => break,
            _ if recovered.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            other => panic!("no recovery: {other:?}\n{}", pg.log()),
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut failures = 0;
    for w in writers {
        let (user, acked, failed) = w.join().unwrap();
        failures += failed;
        let present: Vec<u32> = store
            .list_content("cam", &user, None)
            .unwrap()
            .unwrap()
            .iter()
            .map(|f| f[1..].parse().unwrap())
            .collect();
        // Every acknowledged publish is there (an unacknowledged one may be, if only its
        // answer was lost).
        for k in &acked {
            assert!(present.contains(k), "{user}: acknowledged f{k:05} lost");
        }
        // Never half applied: the user's stamp is the one of the newest file present.
        let newest = *present.iter().max().unwrap();
        let (_, date) = store
            .file_info(&user, &format!("f{newest:05}"))
            .unwrap()
            .unwrap();
        assert_eq!(store.last_date(&user).unwrap(), date, "{user}");
    }
    assert!(failures > 0, "the restart failed no operation: not tested");
}
