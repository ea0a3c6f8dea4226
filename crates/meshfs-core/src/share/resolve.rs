//! Resolving a share-relative path to an open descriptor *beneath the root*, in one step.
//!
//! The root folder is held open; every path is resolved relative to that descriptor, so no
//! path is ever judged in one system call and used in another. Where the kernel has
//! `openat2` (Linux 5.6+), one call with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS` does it:
//! the kernel follows symlinks but refuses any step that would leave the root. Elsewhere (or
//! when `openat2` refuses something only the walk can judge, see below), a walk opens one
//! component at a time with `O_PATH | O_NOFOLLOW` relative to the folder opened before it,
//! reading each symlink it meets through the descriptor of that very link.
//!
//! The rules are today's share rules, the same both ways: symlinks are followed while they
//! stay inside the share (a relative link, or an absolute one into the share's canonical
//! root), anything that would leave it is refused; `..` inside a link target goes up the
//! folders actually opened, never above the root (a link that goes out by `..` and comes back
//! by the root's own name is refused: its path passes outside). `openat2` refuses absolute links outright
//! (`EXDEV`), so those paths are handed to the walk, which judges them.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::ShareError;
use crate::sys;

/// Symlinks followed in one resolution before giving up (the kernel's own limit).
const MAX_LINKS: u32 = 40;

/// A path resolved beneath the root.
pub(crate) struct Resolved {
    pub fd: OwnedFd,
    /// The path relative to the root once every link is followed, when the walk found it
    /// (`openat2` does not say; [`Resolver::canonical`] asks the kernel).
    pub canonical: Option<String>,
}

/// The root descriptor and how to resolve beneath it.
#[derive(Debug)]
pub(crate) struct Resolver {
    root_fd: OwnedFd,
    /// Canonical absolute path of the root (absolute symlinks are judged against it).
    root: PathBuf,
    /// False once `openat2` proved missing (or when forced off).
    openat2: AtomicBool,
    /// Whether `/proc/self/fd` tells where an open file lies (else the walk is always used,
    /// because it knows).
    proc_fd: bool,
}

fn c(name: &OsStr) -> Result<CString, ShareError> {
    sys::cstr(name).map_err(|_| ShareError::Denied("NUL byte in path"))
}

/// Where an open descriptor lies, as the kernel names it.
fn proc_path(fd: BorrowedFd<'_>) -> io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

impl Resolver {
    /// Hold `root` (canonical, a folder) open. `use_openat2` false forces the walk.
    pub fn new(root: PathBuf, use_openat2: bool) -> io::Result<Resolver> {
        let croot = sys::cstr(root.as_os_str())?;
        let root_fd = sys::openat(sys::cwd(), &croot, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        let proc_fd = proc_path(root_fd.as_fd()).is_ok_and(|p| p == root);
        let openat2 = use_openat2
            && proc_fd
            && match sys::openat2(
                root_fd.as_fd(),
                c".",
                libc::O_PATH,
                0,
                libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
            ) {
                Ok(_) => true,
                // Missing (before 5.6), or filtered by seccomp: walk instead.
                Err(e) => {
                    tracing::debug!(error = %e, "openat2 unavailable: resolving by walking");
                    false
                }
            };
        Ok(Resolver {
            root_fd,
            root,
            openat2: AtomicBool::new(openat2),
            proc_fd,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn root_fd(&self) -> BorrowedFd<'_> {
        self.root_fd.as_fd()
    }

    /// Whether this resolver uses `openat2` (tests check both ways are exercised).
    pub fn uses_openat2(&self) -> bool {
        self.openat2.load(Ordering::Relaxed)
    }

    /// Open `rel` (normalised: `a/b/c`, empty for the root) with `flags`, every symlink
    /// followed while it stays beneath the root.
    pub fn open(&self, rel: &str, flags: libc::c_int) -> Result<Resolved, ShareError> {
        if rel.is_empty() {
            let fd = sys::openat(self.root_fd(), c".", flags, 0).map_err(ShareError::from_os)?;
            return Ok(Resolved {
                fd,
                canonical: Some(String::new()),
            });
        }
        if self.openat2.load(Ordering::Relaxed) {
            let path = c(OsStr::new(rel))?;
            match sys::openat2(
                self.root_fd(),
                &path,
                flags,
                0,
                libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
            ) {
                Ok(fd) => {
                    return Ok(Resolved {
                        fd,
                        canonical: None,
                    });
                }
                Err(e) => match e.raw_os_error() {
                    Some(libc::ENOSYS) => {
                        self.openat2.store(false, Ordering::Relaxed);
                    }
                    // An escape, an absolute link (perhaps into the share), a loop, or a
                    // concurrent rename: the walk judges each precisely.
                    Some(libc::EXDEV) | Some(libc::ELOOP) | Some(libc::EAGAIN) => {}
                    _ => return Err(ShareError::from_os(e)),
                },
            }
        }
        self.walk(rel, flags)
    }

    /// The component-by-component resolution (see the module doc).
    pub fn walk(&self, rel: &str, flags: libc::c_int) -> Result<Resolved, ShareError> {
        // Folders opened below the root, with their names: the canonical path so far.
        let mut chain: Vec<(OwnedFd, OsString)> = Vec::new();
        // Components still to resolve, next one last.
        let mut pending: Vec<OsString> = split(rel.as_bytes());
        let mut links = 0u32;
        while let Some(comp) = pending.pop() {
            if comp == ".." {
                if chain.pop().is_none() {
                    return Err(ShareError::Denied("outside the share"));
                }
                continue;
            }
            let here = chain.last().map_or(self.root_fd(), |(fd, _)| fd.as_fd());
            let name = c(&comp)?;
            let fd = sys::openat(here, &name, libc::O_PATH | libc::O_NOFOLLOW, 0)
                .map_err(ShareError::from_os)?;
            let st =
                sys::fstatat(fd.as_fd(), c"", libc::AT_EMPTY_PATH).map_err(ShareError::from_os)?;
            let kind = st.st_mode & libc::S_IFMT;
            if kind == libc::S_IFLNK {
                links += 1;
                if links > MAX_LINKS {
                    return Err(ShareError::Denied("symbolic link loop"));
                }
                // The link we opened, read through its own descriptor.
                let target = sys::readlinkat(fd.as_fd(), c"").map_err(ShareError::from_os)?;
                if target.first() == Some(&b'/') {
                    let rest = Path::new(OsStr::from_bytes(&target))
                        .strip_prefix(&self.root)
                        .map_err(|_| ShareError::Denied("outside the share"))?;
                    chain.clear();
                    pending.extend(split(rest.as_os_str().as_bytes()));
                } else {
                    pending.extend(split(&target));
                }
                continue;
            }
            if !pending.is_empty() {
                // More to come below (or `..` back up from) this one: it must be a folder.
                if kind != libc::S_IFDIR {
                    return Err(ShareError::NotFound);
                }
                chain.push((fd, comp));
                continue;
            }
            // The last component: reopen it with the wanted flags, relative to the same
            // folder and never following (were it swapped for a link meanwhile, this fails).
            let fd = if flags == libc::O_PATH {
                fd
            } else {
                sys::openat(here, &name, flags | libc::O_NOFOLLOW, 0)
                    .map_err(ShareError::from_os)?
            };
            let mut names: Vec<&OsStr> = chain.iter().map(|(_, n)| n.as_os_str()).collect();
            names.push(&comp);
            return Ok(Resolved {
                fd,
                canonical: join(&names),
            });
        }
        // Everything resolved to a folder already opened (the root, or via `..`/a link).
        let here = chain.last().map_or(self.root_fd(), |(fd, _)| fd.as_fd());
        let fd = sys::openat(here, c".", flags, 0).map_err(ShareError::from_os)?;
        let names: Vec<&OsStr> = chain.iter().map(|(_, n)| n.as_os_str()).collect();
        Ok(Resolved {
            fd,
            canonical: join(&names),
        })
    }

    /// The canonical share-relative path of what `resolved` opened.
    pub fn canonical(&self, resolved: &Resolved) -> Result<String, ShareError> {
        if let Some(c) = &resolved.canonical {
            return Ok(c.clone());
        }
        self.canonical_of(resolved.fd.as_fd())
    }

    /// Where an open descriptor of the share lies now, relative to the root. Fails closed:
    /// a file no longer inside the share (moved out, deleted) has no share path.
    pub fn canonical_of(&self, fd: BorrowedFd<'_>) -> Result<String, ShareError> {
        const UNKNOWN: ShareError = ShareError::Denied("cannot tell where the file lies");
        if !self.proc_fd {
            return Err(UNKNOWN);
        }
        let st = sys::fstatat(fd, c"", libc::AT_EMPTY_PATH).map_err(ShareError::from_os)?;
        if st.st_nlink == 0 && st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(UNKNOWN);
        }
        let path = proc_path(fd).map_err(|_| UNKNOWN)?;
        let rel = path.strip_prefix(&self.root).map_err(|_| UNKNOWN)?;
        rel.to_str().map(str::to_owned).ok_or(ShareError::NotFound)
    }
}

/// Components of a relative path, next one last; empty and `.` components dropped.
fn split(path: &[u8]) -> Vec<OsString> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .rev()
        .map(|c| OsString::from_vec(c.to_vec()))
        .collect()
}

/// `a/b/c` from names, if it is text (a path a request can name).
fn join(names: &[&OsStr]) -> Option<String> {
    let mut out = String::new();
    for n in names {
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(n.to_str()?);
    }
    Some(out)
}
