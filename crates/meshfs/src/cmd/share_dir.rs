//! The folder `meshfs node` serves, made ready before the node starts: an existing folder, or a
//! new one made from its last component only, so that a mistyped path (`/srv/clpis/day1`) is
//! an error rather than a new tree, and a new folder is said aloud (issue 20).

use std::io::ErrorKind;
use std::path::Path;

use anyhow::{Context, bail};

/// What [`prepare`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Prepared {
    /// The folder was there.
    Existing,
    /// The folder was made now (an empty folder the node may remove if it cannot start).
    Created,
}

/// Make sure `dir` is a folder to serve: it is one, or its parent is and `dir` is created in
/// it. A regular file, or a missing parent, is a clear error and creates nothing.
pub fn prepare(dir: &Path) -> anyhow::Result<Prepared> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(Prepared::Existing),
        Ok(_) => bail!(
            "cannot serve {}: it is a file, not a folder (name the folder to serve)",
            dir.display()
        ),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("cannot serve {}", dir.display()));
        }
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {
            tracing::info!(dir = %dir.display(), "created the folder to serve (it did not exist)");
            Ok(Prepared::Created)
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let parent = dir.parent().unwrap_or(Path::new("."));
            bail!(
                "cannot serve {}: its parent folder {} does not exist (a typo? meshfs creates \
                 only the last folder of the path; create the others first with mkdir -p)",
                dir.display(),
                parent.display()
            )
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot create {}", dir.display()))),
    }
}

/// Undo [`prepare`]'s `Created` when the node could not start: remove the folder if it is
/// still empty (never anything someone put there meanwhile).
pub fn undo(dir: &Path, prepared: &Prepared) {
    if *prepared == Prepared::Created
        && let Err(e) = std::fs::remove_dir(dir)
    {
        tracing::debug!(dir = %dir.display(), error = %e, "left the folder created at start");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_files_and_typos() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(prepare(t.path()).unwrap(), Prepared::Existing);
        let new = t.path().join("new");
        assert_eq!(prepare(&new).unwrap(), Prepared::Created);
        assert!(new.is_dir());
        undo(&new, &Prepared::Created);
        assert!(!new.exists());

        let file = t.path().join("afile");
        std::fs::write(&file, b"x").unwrap();
        let e = prepare(&file).unwrap_err().to_string();
        assert!(e.contains("it is a file, not a folder"), "{e}");

        let typo = t.path().join("clpis/day1");
        let e = prepare(&typo).unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
        assert!(!t.path().join("clpis").exists());
    }
}
