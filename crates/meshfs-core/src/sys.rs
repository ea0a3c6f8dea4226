//! The few file-system system calls std does not offer, as safe functions: `openat2` and the
//! `*at` family relative to a directory descriptor, `readlinkat`, `fstatat`, listing a
//! directory from a descriptor, and `poll` (the share's watch waits on its inotify instance).
//!
//! This is the only module of `meshfs-core` with `unsafe` code: everything above it
//! ([`crate::dir`], the share's resolver) works with owned descriptors and checked names only.
#![allow(unsafe_code)] // the crate's system calls std does not wrap; each call has a SAFETY comment

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// A name or relative path as a C string; a NUL inside is refused.
pub(crate) fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Take ownership of a descriptor a system call just returned.
fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    let fd = check(fd)?;
    // SAFETY: `fd` was just returned by the kernel, is open, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The current directory as a descriptor argument (`AT_FDCWD`).
pub(crate) fn cwd() -> BorrowedFd<'static> {
    // SAFETY: AT_FDCWD is not a descriptor but a constant every `*at` call reads as "the
    // current directory"; it is never closed, and it is not -1 (the value BorrowedFd forbids).
    unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) }
}

/// `struct open_how` of `openat2(2)` (libc's is `non_exhaustive`, so it cannot be built).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(dir, path, {flags, mode, resolve})`. `ENOSYS` on kernels before 5.6 (and `EPERM`
/// under some seccomp filters): callers fall back to a walk.
pub(crate) fn openat2(
    dir: BorrowedFd<'_>,
    path: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: u64::from(mode),
        resolve,
    };
    // SAFETY: `path` is a valid C string, `how` a fully initialised `open_how` whose size we
    // pass, and `dir` a descriptor borrowed for the duration of the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    owned(ret as libc::c_int)
}

/// `openat(dir, name, flags, mode)`, always close-on-exec.
pub(crate) fn openat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    // SAFETY: valid C string and a borrowed, open descriptor.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_CLOEXEC,
            libc::c_uint::from(mode),
        )
    };
    owned(fd)
}

/// `mkdirat(dir, name, mode)`.
pub(crate) fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: valid C string and a borrowed, open descriptor.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) }).map(drop)
}

/// `mkfifoat(dir, name, mode)` (tests make FIFOs to prove a share never blocks on one).
#[cfg(test)]
pub(crate) fn mkfifoat(dir: BorrowedFd<'_>, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: valid C string and a borrowed, open descriptor.
    check(unsafe { libc::mkfifoat(dir.as_raw_fd(), name.as_ptr(), mode) }).map(drop)
}

/// `unlinkat(dir, name, flags)` (`AT_REMOVEDIR` for a folder). Never follows `name`.
pub(crate) fn unlinkat(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: valid C string and a borrowed, open descriptor.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(drop)
}

/// `linkat(dir, from, dir, to, 0)`: a second name for a file in one folder, failing if `to`
/// exists. `from` is not followed.
pub(crate) fn linkat(dir: BorrowedFd<'_>, from: &CStr, to: &CStr) -> io::Result<()> {
    // SAFETY: valid C strings and a borrowed, open descriptor.
    check(unsafe {
        libc::linkat(
            dir.as_raw_fd(),
            from.as_ptr(),
            dir.as_raw_fd(),
            to.as_ptr(),
            0,
        )
    })
    .map(drop)
}

/// How [`renameat`] treats a name already at the destination.
#[derive(Clone, Copy)]
pub(crate) enum Replace {
    /// Replace it (`renameat`).
    Yes,
    /// Fail with `EEXIST` instead, in one step (`RENAME_NOREPLACE`): a look before a plain
    /// rename leaves a gap in which a file made there is replaced and lost.
    No,
}

/// `renameat2(from_dir, from, to_dir, to, flags)`. Neither name is followed.
pub(crate) fn renameat(
    from_dir: BorrowedFd<'_>,
    from: &CStr,
    to_dir: BorrowedFd<'_>,
    to: &CStr,
    replace: Replace,
) -> io::Result<()> {
    let flags = match replace {
        Replace::Yes => 0,
        Replace::No => libc::RENAME_NOREPLACE,
    };
    // SAFETY: valid C strings and borrowed, open descriptors.
    check(unsafe {
        libc::renameat2(
            from_dir.as_raw_fd(),
            from.as_ptr(),
            to_dir.as_raw_fd(),
            to.as_ptr(),
            flags,
        )
    })
    .map(drop)
}

/// `readlinkat(dir, name)`; with an empty `name`, the link `dir` itself was opened on (an
/// `O_PATH | O_NOFOLLOW` descriptor), so what is read is the link that was opened.
pub(crate) fn readlinkat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: `buf` is writable for `buf.len()` bytes; valid C string and descriptor.
        let n = unsafe {
            libc::readlinkat(
                dir.as_raw_fd(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        if n < buf.len() {
            buf.truncate(n);
            return Ok(buf);
        }
        if buf.len() >= libc::PATH_MAX as usize * 2 {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        buf.resize(buf.len() * 4, 0);
    }
}

/// `fstatat(dir, name, flags)` (`AT_SYMLINK_NOFOLLOW` to see a link itself). The 64-bit
/// variant: on 32-bit ARM (armhf Raspberry Pi OS) plain `stat` has 32-bit sizes and fails
/// with `EOVERFLOW` on any recording over 2 GiB; on 64-bit targets the two are the same.
pub(crate) fn fstatat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
) -> io::Result<libc::stat64> {
    let mut st = std::mem::MaybeUninit::<libc::stat64>::uninit();
    // SAFETY: `st` is writable storage for one `stat64`; valid C string and descriptor.
    check(unsafe { libc::fstatat64(dir.as_raw_fd(), name.as_ptr(), st.as_mut_ptr(), flags) })?;
    // SAFETY: fstatat succeeded, so it filled `st`.
    Ok(unsafe { st.assume_init() })
}

/// The name of every entry of the directory `fd` (opened `O_RDONLY | O_DIRECTORY`) but `.` and `..`.
/// Takes the descriptor: `closedir` closes it.
pub(crate) fn read_dir(fd: OwnedFd) -> io::Result<Vec<Vec<u8>>> {
    use std::os::fd::IntoRawFd;
    let raw = fd.into_raw_fd();
    // SAFETY: `raw` is an open directory descriptor we own; on success the DIR owns it.
    let dir = unsafe { libc::fdopendir(raw) };
    if dir.is_null() {
        let err = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so we still own `raw`.
        drop(unsafe { OwnedFd::from_raw_fd(raw) });
        return Err(err);
    }
    let mut out = Vec::new();
    let result = loop {
        // readdir reports errors only through errno: clear it first.
        // SAFETY: errno is thread-local.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `dir` is a valid DIR stream until closedir below.
        let ent = unsafe { libc::readdir64(dir) };
        if ent.is_null() {
            let err = io::Error::last_os_error();
            break match err.raw_os_error() {
                Some(0) | None => Ok(()),
                Some(_) => Err(err),
            };
        }
        // SAFETY: readdir returned a valid entry whose `d_name` is NUL-terminated and which
        // stays valid until the next readdir on this stream; we copy it out at once.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()).to_bytes() };
        if name != b"." && name != b".." {
            out.push(name.to_vec());
        }
    };
    // SAFETY: `dir` came from fdopendir and is closed exactly once.
    unsafe { libc::closedir(dir) };
    result.map(|()| out)
}

/// `fstatvfs`: the size and free space of the file system holding `fd` (64-bit block counts
/// on every target, as for [`fstatat`]).
pub(crate) fn fstatvfs(fd: BorrowedFd<'_>) -> io::Result<libc::statvfs64> {
    let mut st = std::mem::MaybeUninit::<libc::statvfs64>::uninit();
    // SAFETY: `st` is a valid out-pointer; the kernel fills it on success.
    check(unsafe { libc::fstatvfs64(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: initialised by the successful call above.
    Ok(unsafe { st.assume_init() })
}

/// Wait until `a` or `b` is readable (or hung up): which of them are. Retried on `EINTR`.
pub(crate) fn wait_readable(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> io::Result<(bool, bool)> {
    let mut fds = [a, b].map(|fd| libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    });
    loop {
        // SAFETY: `fds` is a valid array of two pollfd for the duration of the call, and both
        // descriptors are borrowed open for it.
        let ret = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        match check(ret) {
            Ok(_) => return Ok((fds[0].revents != 0, fds[1].revents != 0)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}
