//! TLS to the broker (`mqtts://`): rustls with the *ring* provider the rest of meshfs uses,
//! trusting the system's roots, or only the certificates of `--mqtt-ca FILE` (a broker with a
//! certificate of its own, or of a private CA, as home brokers often have).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

/// Why no TLS configuration could be made for the broker.
#[derive(Debug, thiserror::Error)]
pub enum MqttTlsError {
    #[error("cannot read the broker's CA file {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("the broker's CA file {0} holds no certificate (expected PEM `BEGIN CERTIFICATE`)")]
    NoCertificate(PathBuf),
    #[error(
        "no trusted root certificates on this system (install ca-certificates, or give --mqtt-ca FILE)"
    )]
    NoSystemRoots,
    #[error("cannot set up TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The client configuration for `mqtts://`: roots from `ca` (PEM), or the system's.
pub fn client_config(ca: Option<&Path>) -> Result<Arc<ClientConfig>, MqttTlsError> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            let bad = |reason: String| MqttTlsError::CaFile {
                path: path.to_owned(),
                reason,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| bad(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(MqttTlsError::NoCertificate(path.to_owned()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| bad(e.to_string()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::debug!(error = %e, "a system root certificate was not read");
            }
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(MqttTlsError::NoSystemRoots);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("ca.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = client_config(Some(&empty)).unwrap_err().to_string();
        assert!(e.contains("ca.pem") && e.contains("no certificate"), "{e}");
        let missing = dir.path().join("missing.pem");
        let e = client_config(Some(&missing)).unwrap_err().to_string();
        assert!(e.contains("missing.pem"), "{e}");
    }
}
