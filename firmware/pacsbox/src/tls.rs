//! The box's certificate for HTTPS and DICOM TLS, and rustls' settings for the web page (DICOM
//! TLS builds its own from it, with the peers' certificates: `pacsbox_dicom::trust`). At
//! first start a self-signed certificate is made (names: the host name, `<host>.local`,
//! `localhost`, the box's addresses) and kept in the TLS folder; a clinic that has its own
//! certificate puts `cert.pem` and `key.pem` there instead. Staff check the SHA-256
//! fingerprint shown on the panel's HTTPS page and the status page against what their browser
//! (or a modality's TLS setup) shows.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub struct TlsIdentity {
    /// HTTP/1.1 over TLS (ALPN `http/1.1`).
    pub web: Arc<rustls::ServerConfig>,
    /// The certificate chain and key, for DICOM TLS (server, and client towards peers).
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// SHA-256 of the (leaf) certificate, as `AB:CD:…`.
    pub fingerprint: String,
}

/// `AB:CD:…` of a certificate's SHA-256, as browsers show it.
pub fn fingerprint(cert: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, cert)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Loads `dir/cert.pem` and `dir/key.pem`, making a self-signed pair for `names` first when
/// there is none.
pub fn load_or_create(dir: &Path, names: &[String]) -> anyhow::Result<TlsIdentity> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if !cert_path.exists() && !key_path.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let made = rcgen::generate_simple_self_signed(names.to_vec())
            .context("making a self-signed certificate")?;
        write_private(&key_path, made.signing_key.serialize_pem().as_bytes())?;
        write_file(&cert_path, made.cert.pem().as_bytes())?;
        tracing::info!(
            fingerprint = %fingerprint(made.cert.der()),
            names = ?names,
            "made a self-signed HTTPS certificate"
        );
    }
    let certs = read_certs(&cert_path)?;
    let leaf = certs
        .first()
        .with_context(|| format!("no certificate in {}", cert_path.display()))?;
    let fingerprint = fingerprint(leaf.as_ref());
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .with_context(|| format!("reading the key in {}", key_path.display()))?;
    let web = server_config(certs.clone(), key.clone_key(), vec![b"http/1.1".to_vec()])?;
    Ok(TlsIdentity {
        web: Arc::new(web),
        chain: certs,
        key,
        fingerprint,
    })
}

/// TLS 1.2 and 1.3 with rustls' default (BCP 195) cipher suites; no client certificates.
fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: Vec<Vec<u8>>,
) -> anyhow::Result<rustls::ServerConfig> {
    // The process-wide provider: ring, the only one built in.
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the certificate and key do not match")?;
    config.alpn_protocols = alpn;
    Ok(config)
}

/// The certificates of a PEM file (the clinic CA).
pub fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading {}", path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in {}", path.display());
    Ok(certs)
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}
