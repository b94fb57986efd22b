//! The box's certificate for HTTPS and DICOM TLS, and rustls' settings for the web page (DICOM
//! TLS builds its own around the same certificate, with the peers' certificates:
//! `pacsbox_dicom::trust`). At
//! first start a self-signed certificate is made (names: the host name, `<host>.local`,
//! `localhost`, the box's addresses) and kept in the TLS folder; a clinic that has its own
//! certificate installs it at `/admin/certificate` (checked, kept durably, served to the next
//! handshake without a restart) or puts `cert.pem` and `key.pem` there before a start. Staff check the SHA-256
//! fingerprint shown on the panel's HTTPS page and the status page against what their browser
//! (or a modality's TLS setup) shows.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::Context;
use pacsbox_archive::peers::CertRule;
use pacsbox_web::{CertificateView, Certificates};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use x509_parser::extensions::GeneralName;

pub struct TlsIdentity {
    /// HTTP/1.1 over TLS (ALPN `http/1.1`).
    pub web: Arc<rustls::ServerConfig>,
    /// What HTTPS and DICOM TLS serve, and what the box shows peers it calls over TLS; an admin
    /// can replace it while the box runs.
    pub certificate: Arc<BoxCertificate>,
}

/// `AB:CD:…` of a certificate's SHA-256, as browsers show it.
pub fn fingerprint(cert: &[u8]) -> String {
    // The peers' pins are written the same way, so an admin can paste either.
    CertRule::Sha256(pacsbox_dicom::trust::fingerprint(cert)).to_string()
}

/// Loads `dir/cert.pem` and `dir/key.pem`, making a self-signed pair for `names` first when
/// there is none, and finishing an install a crash interrupted.
pub fn load_or_create(dir: &Path, names: &[String]) -> anyhow::Result<TlsIdentity> {
    let certificate = Arc::new(BoxCertificate::open(dir, names)?);
    let web = server_config(certificate.clone(), vec![b"http/1.1".to_vec()]);
    Ok(TlsIdentity {
        web: Arc::new(web),
        certificate,
    })
}

/// The certificate and key in the TLS folder, served to every new handshake. Replacing them
/// (an admin's install, a new self-signed pair) swaps what new connections get; connections
/// already open keep theirs.
pub struct BoxCertificate {
    dir: PathBuf,
    names: Vec<String>,
    current: RwLock<Arc<Served>>,
    /// One replacement at a time: two admins installing at once must not mix files.
    replacing: Mutex<()>,
}

struct Served {
    key: Arc<CertifiedKey>,
    view: CertificateView,
}

const CERT: &str = "cert.pem";
const KEY: &str = "key.pem";
/// A pair being put in place: present only between the commit and the end of an install.
const INSTALLING: &str = ".installing";
const STAGING: &str = ".install";

impl std::fmt::Debug for BoxCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoxCertificate")
            .field("dir", &self.dir)
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl ResolvesServerCert for BoxCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.served().key.clone())
    }
}

/// The same certificate as our side of an association we open (C-MOVE to a peer over TLS).
impl ResolvesClientCert for BoxCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.served().key.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl BoxCertificate {
    fn open(dir: &Path, names: &[String]) -> anyhow::Result<BoxCertificate> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        finish_install(dir)?;
        if !dir.join(CERT).exists() && !dir.join(KEY).exists() {
            let (cert, key) = self_signed(names)?;
            write_private(&dir.join(KEY), key.as_bytes())?;
            write_file(&dir.join(CERT), cert.as_bytes())?;
            sync_dir(dir)?;
        }
        let cert = std::fs::read_to_string(dir.join(CERT))
            .with_context(|| format!("reading {}", dir.join(CERT).display()))?;
        let key = std::fs::read_to_string(dir.join(KEY))
            .with_context(|| format!("reading {}", dir.join(KEY).display()))?;
        // At start an expired certificate is still served (better than no HTTPS page at all);
        // the page shows its dates. Only an install refuses one.
        let served = check_pair(&cert, &key, None)
            .map_err(|e| anyhow::anyhow!("{} in {}: {e}", CERT, dir.display()))?;
        tracing::info!(
            fingerprint = served.view.fingerprint,
            subject = served.view.subject,
            "TLS certificate"
        );
        Ok(BoxCertificate {
            dir: dir.to_owned(),
            names: names.to_vec(),
            current: RwLock::new(Arc::new(served)),
            replacing: Mutex::new(()),
        })
    }

    fn served(&self) -> Arc<Served> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn fingerprint(&self) -> String {
        self.served().view.fingerprint.clone()
    }

    /// Keeps the pair durably (the old one as `*.previous`), then serves it.
    fn replace(&self, cert: &str, key: &str, served: Served) -> anyhow::Result<CertificateView> {
        let _one = self.replacing.lock().unwrap_or_else(|p| p.into_inner());
        let dir = &self.dir;
        for name in [CERT, KEY] {
            let from = dir.join(name);
            if from.exists() {
                let old =
                    std::fs::read(&from).with_context(|| format!("reading {}", from.display()))?;
                let to = dir.join(format!("{name}.previous"));
                let _ = std::fs::remove_file(&to);
                write_private(&to, &old)?;
            }
        }
        let staging = dir.join(STAGING);
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir(&staging).with_context(|| format!("creating {}", staging.display()))?;
        write_private(&staging.join(KEY), key.as_bytes())?;
        write_file(&staging.join(CERT), cert.as_bytes())?;
        sync_dir(&staging)?;
        // The commit: from here a restart finishes the install (`finish_install`).
        std::fs::rename(&staging, dir.join(INSTALLING))
            .with_context(|| format!("committing the new certificate in {}", dir.display()))?;
        sync_dir(dir)?;
        finish_install(dir)?;
        let view = served.view.clone();
        match self.current.write() {
            Ok(mut g) => *g = Arc::new(served),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(served),
        }
        Ok(view)
    }
}

impl Certificates for BoxCertificate {
    fn current(&self) -> CertificateView {
        self.served().view.clone()
    }

    fn install(&self, chain_pem: &str, key_pem: &str) -> Result<CertificateView, String> {
        let served = check_pair(chain_pem, key_pem, Some(pacsbox_audit::now_unix()))?;
        self.replace(chain_pem, key_pem, served)
            .map_err(|e| format!("could not keep the certificate: {e:#}"))
    }

    fn renew_self_signed(&self) -> Result<CertificateView, String> {
        let (cert, key) = self_signed(&self.names).map_err(|e| format!("{e:#}"))?;
        let served = check_pair(&cert, &key, Some(pacsbox_audit::now_unix()))?;
        self.replace(&cert, &key, served)
            .map_err(|e| format!("could not keep the certificate: {e:#}"))
    }
}

/// Moves a committed pair (`.installing/`) into place; nothing to do without one.
fn finish_install(dir: &Path) -> anyhow::Result<()> {
    let installing = dir.join(INSTALLING);
    if !installing.exists() {
        return Ok(());
    }
    for name in [KEY, CERT] {
        let from = installing.join(name);
        if from.exists() {
            std::fs::rename(&from, dir.join(name))
                .with_context(|| format!("putting {} in place", from.display()))?;
        }
    }
    sync_dir(dir)?;
    std::fs::remove_dir(&installing)
        .with_context(|| format!("removing {}", installing.display()))?;
    sync_dir(dir)
}

/// A new self-signed pair for `names`, as PEM (certificate, key).
fn self_signed(names: &[String]) -> anyhow::Result<(String, String)> {
    let made = rcgen::generate_simple_self_signed(names.to_vec())
        .context("making a self-signed certificate")?;
    tracing::info!(
        fingerprint = %fingerprint(made.cert.der()),
        names = ?names,
        "made a self-signed certificate"
    );
    Ok((made.cert.pem(), made.signing_key.serialize_pem()))
}

/// Parses a PEM chain (leaf first) and key, checks that they belong together and, given a
/// time, that the leaf is valid then. Errors are for the admin who pasted them.
fn check_pair(chain_pem: &str, key_pem: &str, valid_at: Option<i64>) -> Result<Served, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the certificate is not PEM: {e}"))?;
    let leaf = chain
        .first()
        .ok_or("no certificate (-----BEGIN CERTIFICATE-----) in the chain")?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| {
        format!("no private key (-----BEGIN PRIVATE KEY-----, unencrypted) found: {e}")
    })?;
    // The provider the server configs use (the process default: ring).
    let provider = rustls::ServerConfig::builder().crypto_provider().clone();
    let certified = CertifiedKey::from_der(chain.clone(), key, &provider)
        .map_err(|e| format!("the key does not fit the certificate: {e}"))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| format!("the certificate cannot be read: {e}"))?;
    let not_before_unix = parsed.validity().not_before.timestamp();
    let not_after_unix = parsed.validity().not_after.timestamp();
    if let Some(now) = valid_at {
        if now > not_after_unix {
            return Err(format!(
                "the certificate expired at {} (Unix time {not_after_unix})",
                parsed.validity().not_after
            ));
        }
        if now < not_before_unix {
            return Err(format!(
                "the certificate is valid only from {} — check the box's clock",
                parsed.validity().not_before
            ));
        }
    }
    let names = parsed
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some((*d).to_owned()),
                    GeneralName::IPAddress(b) => ip_text(b),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let view = CertificateView {
        subject: parsed.subject().to_string(),
        issuer: parsed.issuer().to_string(),
        not_before_unix,
        not_after_unix,
        names,
        fingerprint: fingerprint(leaf.as_ref()),
        self_signed: parsed.subject() == parsed.issuer(),
        chain_len: chain.len(),
    };
    Ok(Served {
        key: Arc::new(certified),
        view,
    })
}

fn ip_text(b: &[u8]) -> Option<String> {
    match b.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(b).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?).to_string()),
        _ => None,
    }
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

/// TLS 1.2 and 1.3 with rustls' default (BCP 195) cipher suites; no client certificates.
fn server_config(certificate: Arc<BoxCertificate>, alpn: Vec<Vec<u8>>) -> rustls::ServerConfig {
    // The process-wide provider: ring, the only one built in.
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    config.alpn_protocols = alpn;
    config
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
    use std::io::Write;
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .with_context(|| format!("writing {}", path.display()))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// PEM (certificate, key) valid from `from` to `until` (years), for `localhost`.
    fn pair(from: i32, until: i32) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(until, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn names() -> Vec<String> {
        vec!["box.local".to_owned()]
    }

    #[test]
    fn an_installed_pair_is_served_at_once_and_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let first = BoxCertificate::open(dir.path(), &names()).unwrap();
        let made = first.current();
        assert!(made.self_signed);
        assert_eq!(made.names, names());
        let (cert, key) = pair(2020, 2090);
        let view = first.install(&cert, &key).unwrap();
        assert_ne!(view.fingerprint, made.fingerprint);
        assert_eq!(first.fingerprint(), view.fingerprint);
        assert_eq!(view.names, vec!["localhost"]);
        // The old pair is kept beside it, and the folder holds nothing half-done.
        let previous = std::fs::read_to_string(dir.path().join("cert.pem.previous")).unwrap();
        assert_eq!(
            check_pair(
                &previous,
                &std::fs::read_to_string(dir.path().join("key.pem.previous")).unwrap(),
                None
            )
            .unwrap()
            .view
            .fingerprint,
            made.fingerprint
        );
        assert!(!dir.path().join(INSTALLING).exists() && !dir.path().join(STAGING).exists());
        drop(first);
        let again = BoxCertificate::open(dir.path(), &names()).unwrap();
        assert_eq!(again.fingerprint(), view.fingerprint);
        let renewed = again.renew_self_signed().unwrap();
        assert!(renewed.self_signed && renewed.fingerprint != view.fingerprint);
    }

    #[test]
    fn wrong_expired_or_future_pairs_are_refused_and_the_served_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        let served = BoxCertificate::open(dir.path(), &names()).unwrap();
        let before = served.fingerprint();
        let (cert, _) = pair(2020, 2090);
        let (_, other_key) = pair(2020, 2090);
        let e = served.install(&cert, &other_key).unwrap_err();
        assert!(e.contains("does not fit"), "{e}");
        let (old, old_key) = pair(2001, 2002);
        let e = served.install(&old, &old_key).unwrap_err();
        assert!(e.contains("expired"), "{e}");
        let (future, future_key) = pair(2090, 2095);
        let e = served.install(&future, &future_key).unwrap_err();
        assert!(e.contains("valid only from"), "{e}");
        let e = served.install("hello", &old_key).unwrap_err();
        assert!(e.contains("no certificate"), "{e}");
        let e = served
            .install(
                &cert,
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            )
            .unwrap_err();
        assert!(!e.is_empty());
        assert_eq!(served.fingerprint(), before);
        assert!(
            !dir.path().join("cert.pem.previous").exists(),
            "nothing written"
        );
    }

    #[test]
    fn a_crash_after_the_commit_finishes_the_install_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let old = BoxCertificate::open(dir.path(), &names())
            .unwrap()
            .fingerprint();
        let (cert, key) = pair(2020, 2090);
        let new = check_pair(&cert, &key, None).unwrap().view.fingerprint;
        // As `replace` leaves it when the power goes after the commit: the pair in
        // `.installing/`, the key already moved, the certificate not yet.
        let installing = dir.path().join(INSTALLING);
        std::fs::create_dir(&installing).unwrap();
        std::fs::write(installing.join(CERT), &cert).unwrap();
        std::fs::write(dir.path().join(KEY), &key).unwrap();
        let after = BoxCertificate::open(dir.path(), &names()).unwrap();
        assert_eq!(after.fingerprint(), new);
        assert_ne!(new, old);
        assert!(!installing.exists());
        // A staging folder from a crash before the commit is ignored and cleared by the next install.
        std::fs::create_dir(dir.path().join(STAGING)).unwrap();
        std::fs::write(dir.path().join(STAGING).join(CERT), "junk").unwrap();
        let again = BoxCertificate::open(dir.path(), &names()).unwrap();
        assert_eq!(again.fingerprint(), new);
        again.renew_self_signed().unwrap();
        assert!(!dir.path().join(STAGING).exists());
    }
}
