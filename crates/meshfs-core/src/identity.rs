//! `Identity` and `NodeId`: who a node or a user is, as a key pair and a self-signed certificate.
//!
//! Names are claims anyone on the LAN can make (two fresh Raspberry Pi cards are both
//! `raspberrypi`); a key is not. Every node, and every user running client commands, makes an
//! ECDSA P-256 key pair and a self-signed certificate once (P-256 so that browsers accept the
//! same certificate for the web UI), stores them in a folder (a node: its state folder; a user:
//! [`user_dir`]) and loads them thereafter. The private key is written mode 0600 and a key file
//! that others may read is refused, as SSH refuses one.
//!
//! The [`NodeId`] is the SHA-256 of the certificate's SubjectPublicKeyInfo (the DER of the public
//! key with its algorithm). Shown in base32 (RFC 4648, no padding, 52 characters) in groups of 4,
//! it is short enough to read aloud and compare; shown as `sha256//<base64>`
//! ([`NodeId::pinned_pubkey`]) it is exactly what `curl --pinnedpubkey` checks, because curl
//! hashes the same SubjectPublicKeyInfo with the same SHA-256. Since the ID covers only the key,
//! a certificate made anew from the same key (say, after its file was lost) keeps the node's ID.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// File name of the private key (PKCS#8 PEM, mode 0600) inside an identity folder.
pub const KEY_FILE: &str = "key.pem";
/// File name of the self-signed certificate (PEM) inside an identity folder.
pub const CERT_FILE: &str = "cert.pem";
/// Largest key or certificate file we read (ours are well under 1 KiB).
const MAX_PEM: u64 = 64 << 10;
/// Characters per group when a [`NodeId`] is shown for reading aloud.
const GROUP: usize = 4;

/// What can go wrong making or loading an identity, or reading a node ID.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is readable by others (mode {mode:03o}); a private key must be mode 600: \
         run `chmod 600 {path}`"
    )]
    KeyExposed { path: PathBuf, mode: u32 },
    #[error("{path}: {what}")]
    Invalid { path: PathBuf, what: String },
    #[error("cannot make a key pair or certificate: {0}")]
    Generate(String),
    #[error("not a node ID: {0}")]
    BadId(String),
}

/// A node's (or user's) ID: the SHA-256 of its certificate's SubjectPublicKeyInfo.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId([u8; 32]);

impl NodeId {
    /// The ID of the public key in `spki_der` (a DER SubjectPublicKeyInfo).
    pub fn from_spki(spki_der: &[u8]) -> NodeId {
        let d = ring::digest::digest(&ring::digest::SHA256, spki_der);
        let mut id = [0u8; 32];
        id.copy_from_slice(d.as_ref());
        NodeId(id)
    }

    /// The ID of the key a DER certificate carries (the certificate is parsed, not trusted).
    pub fn from_cert(cert: &CertificateDer<'_>) -> Result<NodeId, IdentityError> {
        let parsed = rustls::server::ParsedCertificate::try_from(cert)
            .map_err(|e| IdentityError::BadId(format!("unreadable certificate: {e}")))?;
        Ok(NodeId::from_spki(parsed.subject_public_key_info().as_ref()))
    }

    /// From the raw 32-byte hash.
    pub fn from_bytes(bytes: [u8; 32]) -> NodeId {
        NodeId(bytes)
    }

    /// The raw 32-byte hash.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The form `curl --pinnedpubkey` takes: `sha256//` and the hash in base64. It is the same
    /// hash as the base32 form, so `curl --pinnedpubkey "$(meshfs id --curl)"` checks this node.
    pub fn pinned_pubkey(&self) -> String {
        format!("sha256//{}", data_encoding::BASE64.encode(&self.0))
    }

    /// The first two groups, for narrow displays (a conflict or an error always shows the
    /// whole ID: two keys sharing a prefix are cheap to make).
    pub fn short(&self) -> String {
        let full = self.to_string();
        full[..2 * GROUP + 1].to_owned()
    }
}

impl fmt::Display for NodeId {
    /// Base32 (RFC 4648, no padding) in groups of 4 joined by `-`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b32 = data_encoding::BASE32_NOPAD.encode(&self.0);
        for (i, chunk) in b32.as_bytes().chunks(GROUP).enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            // Base32 output is ASCII.
            f.write_str(std::str::from_utf8(chunk).map_err(|_| fmt::Error)?)?;
        }
        Ok(())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

impl FromStr for NodeId {
    type Err = IdentityError;

    /// Accepts the base32 form with or without dashes and spaces, in either case, or the
    /// `sha256//<base64>` form of [`NodeId::pinned_pubkey`].
    fn from_str(s: &str) -> Result<NodeId, IdentityError> {
        let bad = || IdentityError::BadId(format!("{s:?} (expected 52 base32 characters)"));
        if s.len() > 128 {
            return Err(IdentityError::BadId("too long".into()));
        }
        let bytes = if let Some(b64) = s.trim().strip_prefix("sha256//") {
            data_encoding::BASE64.decode(b64.as_bytes()).map_err(|_| {
                IdentityError::BadId(format!(
                    "{s:?} (expected sha256// and 44 base64 characters)"
                ))
            })?
        } else {
            let compact: String = s
                .chars()
                .filter(|c| *c != '-' && !c.is_whitespace())
                .map(|c| c.to_ascii_uppercase())
                .collect();
            data_encoding::BASE32_NOPAD
                .decode(compact.as_bytes())
                .map_err(|_| bad())?
        };
        let id: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        Ok(NodeId(id))
    }
}

/// A key pair and its self-signed certificate.
pub struct Identity {
    key_der: Vec<u8>,
    cert: CertificateDer<'static>,
    id: NodeId,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("Identity").field("id", &self.id).finish()
    }
}

impl Clone for Identity {
    fn clone(&self) -> Identity {
        Identity {
            key_der: self.key_der.clone(),
            cert: self.cert.clone(),
            id: self.id,
        }
    }
}

impl Identity {
    /// A fresh identity held only in memory (tests, and one-off tools).
    pub fn generate(name: &str) -> Result<Identity, IdentityError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| IdentityError::Generate(e.to_string()))?;
        let cert = self_signed(&key, name)?;
        Ok(Identity::from_parts(key, cert.der().clone()))
    }

    /// Load the identity stored in `dir`, or make and store one (the certificate names `name`;
    /// the ID does not depend on it). `dir` is created mode 0700 when missing. A key file that
    /// group or others may read is refused with [`IdentityError::KeyExposed`].
    pub fn load_or_create(dir: &Path, name: &str) -> Result<Identity, IdentityError> {
        let key_path = dir.join(KEY_FILE);
        let cert_path = dir.join(CERT_FILE);
        let key = match read_key(&key_path)? {
            Some(key) => key,
            None => {
                create_dir_private(dir)?;
                let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                    .map_err(|e| IdentityError::Generate(e.to_string()))?;
                match write_new(&key_path, key.serialize_pem().as_bytes(), 0o600) {
                    Ok(()) => key,
                    // Another process made one meanwhile: use theirs.
                    Err(IdentityError::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::AlreadyExists =>
                    {
                        read_key(&key_path)?.ok_or_else(|| IdentityError::Invalid {
                            path: key_path.clone(),
                            what: "vanished while being made".into(),
                        })?
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        let spki_id = NodeId::from_spki(&key.public_key_der());
        let cert = match read_small(&cert_path)? {
            Some(pem) => {
                let cert =
                    CertificateDer::from_pem_slice(&pem).map_err(|e| IdentityError::Invalid {
                        path: cert_path.clone(),
                        what: format!("not a PEM certificate: {e}"),
                    })?;
                let cert_id = NodeId::from_cert(&cert).map_err(|e| IdentityError::Invalid {
                    path: cert_path.clone(),
                    what: e.to_string(),
                })?;
                if cert_id != spki_id {
                    return Err(IdentityError::Invalid {
                        path: cert_path,
                        what: format!(
                            "certificate is for another key ({cert_id}, the key is {spki_id}); \
                             remove it and it will be made anew from the key"
                        ),
                    });
                }
                cert
            }
            None => {
                let cert = self_signed(&key, name)?;
                replace_file(&cert_path, cert.pem().as_bytes(), 0o644)?;
                cert.der().clone()
            }
        };
        Ok(Identity::from_parts(key, cert))
    }

    fn from_parts(key: rcgen::KeyPair, cert: CertificateDer<'static>) -> Identity {
        Identity {
            id: NodeId::from_spki(&key.public_key_der()),
            key_der: key.serialize_der(),
            cert,
        }
    }

    /// The ID others pin.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The certificate (DER).
    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The private key (PKCS#8 DER), for building TLS configurations.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

/// The folder a user's identity and `known_nodes` live in: `$XDG_CONFIG_HOME/meshfs`, else
/// `$HOME/.config/meshfs`; `None` when neither variable is set (to an absolute path).
pub fn user_dir() -> Option<PathBuf> {
    let abs = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    std::env::var_os("XDG_CONFIG_HOME")
        .and_then(abs)
        .or_else(|| {
            std::env::var_os("HOME")
                .and_then(abs)
                .map(|h| h.join(".config"))
        })
        .map(|base| base.join("meshfs"))
}

fn self_signed(key: &rcgen::KeyPair, name: &str) -> Result<rcgen::Certificate, IdentityError> {
    let mut sans = vec!["localhost".to_owned()];
    if is_dns_label(name) && name != "localhost" {
        sans.push(name.to_owned());
    }
    let mut params =
        rcgen::CertificateParams::new(sans).map_err(|e| IdentityError::Generate(e.to_string()))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let cn: String = format!("meshfs {name}").chars().take(64).collect();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params
        .self_signed(key)
        .map_err(|e| IdentityError::Generate(e.to_string()))
}

/// True for a name usable as a DNS name in the certificate (browsers show it).
fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The key in `path`, `None` when there is no such file; refuses a key others may read.
fn read_key(path: &Path) -> Result<Option<rcgen::KeyPair>, IdentityError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(IdentityError::KeyExposed {
            path: path.to_owned(),
            mode,
        });
    }
    let pem = read_small(path)?.unwrap_or_default();
    let text = String::from_utf8(pem).map_err(|_| IdentityError::Invalid {
        path: path.to_owned(),
        what: "not a PEM file".into(),
    })?;
    let key = rcgen::KeyPair::from_pem(&text).map_err(|e| IdentityError::Invalid {
        path: path.to_owned(),
        what: format!("not a private key: {e}"),
    })?;
    if !key.is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256) {
        return Err(IdentityError::Invalid {
            path: path.to_owned(),
            what: "not an ECDSA P-256 key".into(),
        });
    }
    Ok(Some(key))
}

/// The content of a small file, `None` when it does not exist.
fn read_small(path: &Path) -> Result<Option<Vec<u8>>, IdentityError> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let mut buf = Vec::new();
    file.take(MAX_PEM + 1)
        .read_to_end(&mut buf)
        .map_err(io_err(path))?;
    if buf.len() as u64 > MAX_PEM {
        return Err(IdentityError::Invalid {
            path: path.to_owned(),
            what: format!("larger than {MAX_PEM} bytes"),
        });
    }
    Ok(Some(buf))
}

/// Create `dir` (and parents) when missing; a folder we create is mode 0700.
pub(crate) fn create_dir_private(dir: &Path) -> Result<(), IdentityError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))
}

/// Write a file that must not exist yet, durably, with `mode` from the start (never briefly
/// readable by others). Fails with `AlreadyExists` when it does exist.
fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), IdentityError> {
    let tmp = temp_path(path);
    write_file(&tmp, data, mode)?;
    // A hard link fails if `path` exists, unlike rename: two processes making an identity at
    // once agree on the first one written.
    let res = std::fs::hard_link(&tmp, path).map_err(io_err(path));
    let _ = std::fs::remove_file(&tmp);
    res?;
    sync_parent(path);
    Ok(())
}

/// Atomically replace (or create) `path` with `data`: a temporary file (synced, `mode` from
/// the start), then rename and a sync of the folder, so a crash leaves the old file or the
/// new one, never a torn one. Public for the other state files a node keeps (the retention
/// record in meshfs-cluster).
pub fn replace_file(path: &Path, data: &[u8], mode: u32) -> Result<(), IdentityError> {
    let tmp = temp_path(path);
    write_file(&tmp, data, mode)?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(path)(e));
    }
    sync_parent(path);
    Ok(())
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}", std::process::id()));
    path.with_file_name(name)
}

fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), IdentityError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io_err(path))?;
    // The mode given to open is filtered by the umask; set it exactly.
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io_err(path))?;
    f.write_all(data).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

fn sync_parent(path: &Path) {
    if let Some(parent) = path.parent()
        && let Ok(dir) = std::fs::File::open(parent)
    {
        let _ = dir.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("state/identity");
        let a = Identity::load_or_create(&folder, "cam1").unwrap();
        let key_mode = std::fs::metadata(folder.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(key_mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(&folder).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let b = Identity::load_or_create(&folder, "renamed").unwrap();
        assert_eq!(a.id(), b.id());
        assert_eq!(a.cert(), b.cert());
        assert_eq!(NodeId::from_cert(a.cert()).unwrap(), a.id());

        // A lost certificate is made anew from the key: same ID.
        std::fs::remove_file(folder.join(CERT_FILE)).unwrap();
        let c = Identity::load_or_create(&folder, "cam1").unwrap();
        assert_eq!(c.id(), a.id());
    }

    #[test]
    fn key_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Identity::load_or_create(dir.path(), "cam1").unwrap();
        let key = dir.path().join(KEY_FILE);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Identity::load_or_create(dir.path(), "cam1").unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, IdentityError::KeyExposed { mode: 0o644, .. }),
            "{text}"
        );
        assert!(
            text.contains("chmod 600") && text.contains("key.pem"),
            "{text}"
        );
    }

    #[test]
    fn certificate_of_another_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        Identity::load_or_create(dir.path(), "a").unwrap();
        Identity::load_or_create(other.path(), "b").unwrap();
        std::fs::copy(other.path().join(CERT_FILE), dir.path().join(CERT_FILE)).unwrap();
        let err = Identity::load_or_create(dir.path(), "a").unwrap_err();
        assert!(err.to_string().contains("another key"), "{err}");
    }

    #[test]
    fn id_forms_round_trip() {
        let id = Identity::generate("x").unwrap().id();
        let text = id.to_string();
        assert_eq!(text.len(), 52 + 12, "{text}");
        assert_eq!(text.split('-').count(), 13);
        assert!(text.split('-').all(|g| g.len() == 4));
        assert_eq!(text.parse::<NodeId>().unwrap(), id);
        assert_eq!(
            text.to_lowercase()
                .replace('-', " ")
                .parse::<NodeId>()
                .unwrap(),
            id
        );
        assert_eq!(id.pinned_pubkey().parse::<NodeId>().unwrap(), id);
        assert!(id.pinned_pubkey().starts_with("sha256//") && id.pinned_pubkey().len() == 52);
        assert_eq!(id.short().len(), 9);
        for bad in [
            "",
            "AAAA",
            &text[..text.len() - 1],
            "sha256//AAAA",
            &"A".repeat(200),
        ] {
            assert!(bad.parse::<NodeId>().is_err(), "{bad:?}");
        }
    }

    /// The ID is the SHA-256 of the SubjectPublicKeyInfo, the hash curl's --pinnedpubkey takes
    /// (checked against the DER rcgen wrote, independently of rustls' certificate parser).
    #[test]
    fn id_is_sha256_of_spki() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = self_signed(&key, "cam1").unwrap();
        let spki = key.public_key_der();
        let want = ring::digest::digest(&ring::digest::SHA256, &spki);
        let id = NodeId::from_cert(cert.der()).unwrap();
        assert_eq!(id.as_bytes().as_slice(), want.as_ref());
        // The SPKI appears verbatim inside the certificate.
        let der = cert.der().as_ref();
        assert!(der.windows(spki.len()).any(|w| w == spki.as_slice()));
    }

    #[test]
    fn user_dir_follows_xdg() {
        // Only reads the environment; the tests of this crate do not set these variables.
        if let Some(dir) = user_dir() {
            assert!(dir.ends_with("meshfs") && dir.is_absolute());
        }
    }
}
