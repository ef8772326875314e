//! TLS: the certificate (self-signed by rcgen on first start, or the
//! operator's own), and the rustls server configuration (HTTP/2 and
//! HTTP/1.1 by ALPN).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use crate::datadir::{write_private, DataDir};

/// The certificate in use and a server configuration built from it.
pub struct Tls {
    /// Where the certificate is (what `curl --cacert` wants).
    pub cert_path: PathBuf,
    /// SHA-256 of the certificate, `AB:CD:...`.
    pub fingerprint: String,
    /// The rustls configuration for the listener.
    pub config: Arc<ServerConfig>,
    /// The certificate served (the first of the chain).
    leaf: CertificateDer<'static>,
}

impl Tls {
    /// Whether the served certificate covers `host`, a DNS name or an IP
    /// address, by its subject alternative names (webpki's rules).
    pub fn covers(&self, host: &str) -> bool {
        let Ok(name) = rustls::pki_types::ServerName::try_from(host) else { return false };
        rustls::server::ParsedCertificate::try_from(&self.leaf)
            .is_ok_and(|c| rustls::client::verify_server_name(&c, &name).is_ok())
    }
}

/// The names every self-signed certificate covers.
pub const DEFAULT_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Whether the data dir's self-signed pair must be made (again) for these
/// names: it is missing, or lacks one of them. A start that names fewer
/// (`--tls-san` left off) keeps it, so clients that trust its fingerprint
/// go on doing so. Reads only.
pub fn self_signed_due(dir: &DataDir, extra_names: &[String]) -> bool {
    if !dir.has_tls_pair() {
        return true;
    }
    match recorded_names(dir) {
        Some(covered) => !wanted_names(extra_names).iter().all(|n| covered.contains(n)),
        None => false, // made by hand or by an older authd: keep it
    }
}

/// The names the data dir's self-signed certificate was made for, if authd
/// made it.
fn recorded_names(dir: &DataDir) -> Option<Vec<String>> {
    let listed = std::fs::read_to_string(dir.cert_names()).ok()?;
    Some(listed.lines().map(str::trim).filter(|n| !n.is_empty()).map(str::to_string).collect())
}

/// Loads the operator's certificate, or the self-signed one (made if
/// [`self_signed_due`]). The server calls it to make a pair only once it
/// holds the database, so a second authd on the same data dir never
/// replaces the certificate the first one serves.
pub fn load(dir: &DataDir, extra_names: &[String], own: Option<&(PathBuf, PathBuf)>) -> Result<Tls, String> {
    let (cert_path, key_path) = match own {
        Some((c, k)) => (c.clone(), k.clone()),
        None => {
            ensure_self_signed(dir, extra_names)?;
            check_private(&dir.key())?;
            (dir.cert(), dir.key())
        }
    };
    let certs = read_certs(&cert_path)?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| format!("cannot read the private key {}: {e}", key_path.display()))?;
    let first = certs.first().ok_or_else(|| format!("{} holds no certificate", cert_path.display()))?;
    let fingerprint = fingerprint(first);
    let leaf = first.clone();
    let config = server_config(certs, key).map_err(|e| {
        format!("{} and {} do not make a usable pair: {e}", cert_path.display(), key_path.display())
    })?;
    Ok(Tls { cert_path, fingerprint, config: Arc::new(config), leaf })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Which of the operator's files is unusable, and why.
#[derive(Debug)]
pub struct OwnFileError {
    /// `--cert` or `--key`.
    pub flag: &'static str,
    /// The file given.
    pub path: PathBuf,
    /// What is wrong with it (without the path).
    pub reason: String,
}

/// Checks the operator's `--cert` and `--key` before anything else starts:
/// the certificate file must be readable and hold PEM certificates, the
/// first of which parses; the key file must be readable and hold a private
/// key that the crypto provider can load. Whether the two belong together
/// is left to [`load`].
pub fn check_own(cert: &Path, key: &Path) -> Result<(), OwnFileError> {
    let cert_error = |reason: String| OwnFileError { flag: "--cert", path: cert.to_path_buf(), reason };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect)
        .map_err(|e| cert_error(pem_reason(&e, "certificate")))?;
    let first =
        certs.first().ok_or_else(|| cert_error(pem_reason(&pem::Error::NoItemsFound, "certificate")))?;
    rustls::server::ParsedCertificate::try_from(first)
        .map_err(|e| cert_error(format!("the certificate does not parse: {e}")))?;

    let key_error = |reason: String| OwnFileError { flag: "--key", path: key.to_path_buf(), reason };
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| key_error(pem_reason(&e, "private key")))?;
    provider()
        .key_provider
        .load_private_key(der.clone_key())
        .map_err(|e| key_error(format!("the private key does not parse: {e}")))?;
    server_config(certs, der).map_err(|e| {
        key_error(format!("it is not the private key of the certificate {} ({e})", cert.display()))
    })?;
    Ok(())
}

/// The rustls configuration for a certificate chain and its key.
fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ServerConfig, String> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    // `http/1.0` too: a client that offers only that (`curl --http1.0`)
    // would otherwise fail the handshake instead of getting an answer.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), b"http/1.0".to_vec()];
    Ok(config)
}

/// Why a PEM file of `what` could not be used, in words.
fn pem_reason(e: &pem::Error, what: &str) -> String {
    match e {
        pem::Error::Io(io) => format!("cannot read it: {io}"),
        pem::Error::NoItemsFound => format!("it holds no PEM {what}"),
        other => format!("it is not a PEM {what}: {other}"),
    }
}

/// Refuses a key file that other users could read.
fn check_private(key: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(key).map_err(|e| format!("cannot read the private key {}: {e}", key.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if meta.is_file() && mode & 0o077 != 0 {
        return Err(format!(
            "the private key {} is readable by other users (mode {mode:03o}); run `chmod 600 {}`",
            key.display(),
            key.display()
        ));
    }
    Ok(())
}

/// The certificates in a PEM file.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let iter = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read the certificate {}: {e}", path.display()))?;
    iter.collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot read the certificate {}: {e}", path.display()))
}

/// SHA-256 of a DER certificate as colon-separated upper-case hex.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest.as_ref().iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

fn wanted_names(extra: &[String]) -> Vec<String> {
    let mut names: Vec<String> = DEFAULT_NAMES.iter().map(|s| s.to_string()).collect();
    add_names(&mut names, extra);
    names
}

/// Appends each of `more` that `names` lacks.
fn add_names(names: &mut Vec<String>, more: &[String]) {
    for n in more {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
}

fn ensure_self_signed(dir: &DataDir, extra: &[String]) -> Result<(), String> {
    if !self_signed_due(dir, extra) {
        return Ok(());
    }
    if dir.has_tls_pair() {
        tracing::warn!(
            "the certificate lacks a name given by --tls-san; making a new self-signed certificate"
        );
    }
    // The names the certificate had stay on it, so starts that alternate
    // between --tls-san values do not keep replacing it.
    let mut names = wanted_names(extra);
    add_names(&mut names, &recorded_names(dir).unwrap_or_default());
    let listed = names.join("\n");
    let mut params = rcgen::CertificateParams::new(names)
        .map_err(|e| format!("cannot make a certificate for these names: {e}"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, "authd self-signed certificate");
    let key = rcgen::KeyPair::generate().map_err(|e| format!("cannot make a TLS key: {e}"))?;
    let cert = params.self_signed(&key).map_err(|e| format!("cannot sign the certificate: {e}"))?;
    let write =
        |p: &Path, b: &[u8]| write_private(p, b).map_err(|e| format!("cannot write {}: {e}", p.display()));
    write(&dir.key(), key.serialize_pem().as_bytes())?;
    write(&dir.cert(), cert.pem().as_bytes())?;
    write(&dir.cert_names(), listed.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_pair_is_made_once_and_reused() {
        let t = tempfile::tempdir().unwrap();
        let dir = DataDir::new(t.path().join("db"));
        dir.prepare().unwrap();
        let a = load(&dir, &[], None).unwrap();
        let b = load(&dir, &[], None).unwrap();
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_eq!(a.fingerprint.len(), 32 * 3 - 1);
        let c = load(&dir, &["auth.example".to_string()], None).unwrap();
        assert_ne!(a.fingerprint, c.fingerprint, "a new name must give a new certificate");
        assert_eq!(c.config.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec(), b"http/1.0".to_vec()]);
        // Fewer names (the flag left off) keep it; another new one does not.
        let d = load(&dir, &[], None).unwrap();
        assert_eq!(c.fingerprint, d.fingerprint, "leaving --tls-san off replaced the certificate");
        let e = load(&dir, &["other.example".to_string()], None).unwrap();
        assert_ne!(d.fingerprint, e.fingerprint);
        // It keeps the names it had: back to the first one, nothing is made.
        let f = load(&dir, &["auth.example".to_string()], None).unwrap();
        assert_eq!(e.fingerprint, f.fingerprint, "alternating --tls-san values replaced the certificate");
    }

    #[test]
    fn unreadable_key_names_the_file() {
        let t = tempfile::tempdir().unwrap();
        let dir = DataDir::new(t.path().join("db"));
        dir.prepare().unwrap();
        load(&dir, &[], None).unwrap();
        std::fs::write(dir.key(), "garbage").unwrap();
        let err = load(&dir, &[], None).err().unwrap();
        assert!(err.contains("key.pem"), "{err}");
    }
}
