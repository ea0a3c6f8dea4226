//! End-to-end: identities and pins from the command line (`meshfs id`, `meshfs trust`), with
//! the user's and the node's folders in a temporary home.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{assert_success, bin};

/// `meshfs <args>` with XDG folders under `home`.
fn meshfs(home: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_STATE_HOME", home.join("state"))
        .output()
        .expect("run meshfs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn id_is_made_once_and_printed_both_ways() {
    let home = tempfile::tempdir().unwrap();
    let out = meshfs(home.path(), &["id"]);
    assert_success(&out);
    let id = stdout(&out).trim().to_owned();
    assert_eq!(id.len(), 64, "{id}");
    assert!(home.path().join("config/meshfs/key.pem").exists());
    // Stable across runs.
    assert_eq!(stdout(&meshfs(home.path(), &["id"])).trim(), id);

    // The node's ID is another key, kept in the state folder.
    let out = meshfs(home.path(), &["id", "--node", "--cert"]);
    assert_success(&out);
    let text = stdout(&out);
    let mut lines = text.lines();
    let node_id = lines.next().unwrap();
    assert_ne!(node_id, id);
    let cert = lines.next().unwrap();
    assert!(cert.ends_with("state/meshfs/identity/cert.pem"), "{cert}");
    assert!(Path::new(cert).exists());

    // --curl prints the same hash in curl's form: trust accepts either.
    let out = meshfs(home.path(), &["id", "--node", "--curl"]);
    let pin = stdout(&out).trim().to_owned();
    assert!(pin.starts_with("sha256//"), "{pin}");
    assert_success(&meshfs(home.path(), &["trust", "cam1", &pin]));
    assert_eq!(
        stdout(&meshfs(home.path(), &["trust", "cam1"])).trim(),
        format!("cam1 {node_id}")
    );
}

#[test]
fn a_key_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().unwrap();
    assert_success(&meshfs(home.path(), &["id"]));
    let key = home.path().join("config/meshfs/key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = meshfs(home.path(), &["id"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
}

#[test]
fn trust_pins_lists_replaces_and_forgets() {
    let home = tempfile::tempdir().unwrap();
    let a = "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA";
    let b = "BBBB-BBBB-BBBB-BBBB-BBBB-BBBB-BBBB-BBBB-BBBB-BBBB-BBBB-BBBB-BBBA";
    let out = meshfs(home.path(), &["trust", "cam1", a]);
    assert_success(&out);
    assert_eq!(stdout(&out).trim(), format!("pinned cam1 {a}"));
    let out = meshfs(home.path(), &["trust", "cam1", b]);
    assert_eq!(stdout(&out).trim(), format!("pinned cam1 {b} (was {a})"));
    assert_success(&meshfs(home.path(), &["trust", "cam2", a]));
    assert_eq!(
        stdout(&meshfs(home.path(), &["trust"])),
        format!("cam1 {b}\ncam2 {a}\n")
    );
    let file = home.path().join("config/meshfs/known_nodes");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(&format!("cam1 {b}\n")), "{text}");
    assert_success(&meshfs(home.path(), &["trust", "--forget", "cam1"]));
    assert_eq!(
        stdout(&meshfs(home.path(), &["trust"])),
        format!("cam2 {a}\n")
    );

    let out = meshfs(home.path(), &["trust", "cam3", "not-an-id"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not a node ID"), "{}", stderr(&out));
}
