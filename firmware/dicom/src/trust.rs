//! Whose certificates DICOM TLS trusts (PS3.15 B.1), both ways. Two schemes, usable together:
//! a peer entry pins the SHA-256 fingerprint of its device's certificate (`cert = "AB:CD:…"`,
//! the same fingerprint the admin reads off the device or `openssl x509 -fingerprint`), or
//! says `cert = "ca"`: any valid certificate issued by the clinic CA (`dicom_tls_ca`).
//!
//! On the TLS port the acceptor asks every client for a certificate but does not insist:
//! peers whose entry needs none still connect without one. A certificate that is presented
//! must be valid now (dates) and either pinned by some peer or issued by the clinic CA, else
//! the handshake ends with a TLS alert (`certificate_expired`, `unknown_ca`, ...). Which peer
//! the certificate belongs to is only known from the A-ASSOCIATE-RQ that follows;
//! `access.rs` then compares the AE's entry with the [`Transport`] found here.
//!
//! Outgoing (C-MOVE to a peer whose entry says `tls`), the peer's server certificate must
//! have its pinned fingerprint (dates checked, name not: the pin is the identity), or, with
//! `cert = "ca"` or no pin, be issued by the clinic CA for the host name we dial. We present
//! the box's own certificate as client certificate.

use std::collections::HashSet;
use std::sync::Arc;

use pacsbox_archive::peers::CertRule;
use tokio_rustls::rustls;

use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ResolvesServerCert;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

use crate::access::Transport;

/// SHA-256 of a DER certificate as 64 upper-case hex digits ([`CertRule::Sha256`]'s form).
pub fn fingerprint(cert: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, cert)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// The box's side of DICOM TLS: its certificate and key, the clinic CA and the pinned
/// fingerprints of the peer table.
pub struct PeerTrust {
    /// Our certificate as a client (an admin may replace it while the box runs).
    own_client: Arc<dyn ResolvesClientCert>,
    ca: Option<Arc<rustls::RootCertStore>>,
    /// Verifies client chains against the clinic CA (dates, key usage, signatures).
    ca_clients: Option<Arc<dyn ClientCertVerifier>>,
    provider: Arc<CryptoProvider>,
    server: Arc<rustls::ServerConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("the clinic CA file holds no usable certificate: {0}")]
    Ca(String),
    #[error("the DICOM TLS settings: {0}")]
    Config(#[from] rustls::Error),
}

impl PeerTrust {
    /// `ca`: the clinic CA's certificates (may be empty); `pinned`: every fingerprint a peer
    /// entry pins ([`CertRule::Sha256`]'s form).
    /// `own_server`/`own_client`: the box's certificate, as served and as shown when calling.
    pub fn new(
        own_server: Arc<dyn ResolvesServerCert>,
        own_client: Arc<dyn ResolvesClientCert>,
        ca: Vec<CertificateDer<'static>>,
        pinned: HashSet<String>,
    ) -> Result<PeerTrust, TrustError> {
        // The process-wide provider (ring, the only one built in), as the web's settings use.
        let provider = rustls::ServerConfig::builder().crypto_provider().clone();
        let (ca, ca_clients, subjects) = if ca.is_empty() {
            (None, None, Vec::new())
        } else {
            let mut roots = rustls::RootCertStore::empty();
            for c in ca {
                roots.add(c).map_err(|e| TrustError::Ca(format!("{e}")))?;
            }
            let roots = Arc::new(roots);
            let subjects = roots.subjects();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                roots.clone(),
                provider.clone(),
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| TrustError::Ca(e.to_string()))?;
            (Some(roots), Some(verifier), subjects)
        };
        let clients = ClientTrust {
            pinned,
            ca: ca_clients.clone(),
            subjects,
            provider: provider.clone(),
        };
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(Arc::new(clients))
            .with_cert_resolver(own_server);
        Ok(PeerTrust {
            own_client,
            ca,
            ca_clients,
            provider,
            server: Arc::new(server),
        })
    }

    /// The TLS port's settings: TLS 1.2/1.3 with rustls' (BCP 195) suites, a client
    /// certificate asked for and checked when given.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server.clone()
    }

    /// What a finished handshake established about the client (`chain`: the certificates it
    /// presented, already verified by the acceptor).
    pub fn identify(&self, chain: Option<&[CertificateDer<'static>]>) -> Transport {
        let Some((leaf, rest)) = chain.and_then(|c| c.split_first()) else {
            return Transport::Tls {
                fingerprint: None,
                ca_issued: false,
            };
        };
        let ca_issued = self
            .ca_clients
            .as_ref()
            .is_some_and(|v| v.verify_client_cert(leaf, rest, UnixTime::now()).is_ok());
        Transport::Tls {
            fingerprint: Some(fingerprint(leaf)),
            ca_issued,
        }
    }

    /// Settings for an association we open to a peer over TLS, trusting what `rule` says (no
    /// rule: the clinic CA). The error says what the peer entry lacks.
    pub fn client_config(
        &self,
        rule: Option<&CertRule>,
    ) -> Result<Arc<rustls::ClientConfig>, String> {
        let verifier: Arc<dyn ServerCertVerifier> = match (rule, &self.ca) {
            (Some(CertRule::Sha256(fp)), _) => Arc::new(PinnedServer {
                fingerprint: fp.clone(),
                provider: self.provider.clone(),
            }),
            (_, Some(roots)) => rustls::client::WebPkiServerVerifier::builder_with_provider(
                roots.clone(),
                self.provider.clone(),
            )
            .build()
            .map_err(|e| format!("the clinic CA: {e}"))?,
            (_, None) => {
                return Err(
                    "no certificate to trust: pin its fingerprint (cert) or set dicom_tls_ca"
                        .into(),
                );
            }
        };
        let config = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(self.own_client.clone());
        Ok(Arc::new(config))
    }
}

/// The name a TLS client sends and (with the clinic CA) checks: the host as dialled.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.trim().to_owned()).map_err(|e| format!("host {host:?}: {e}"))
}

/// `Expired`/`NotValidYet` unless `cert` is valid at `now`; a certificate that does not
/// parse is refused as such.
fn check_dates(cert: &CertificateDer<'_>, now: UnixTime) -> Result<(), Error> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let v = parsed.validity();
    if now < v.not_before.timestamp() {
        return Err(Error::InvalidCertificate(CertificateError::NotValidYet));
    }
    if now > v.not_after.timestamp() {
        return Err(Error::InvalidCertificate(CertificateError::Expired));
    }
    Ok(())
}

fn is_date_error(e: &Error) -> bool {
    matches!(
        e,
        Error::InvalidCertificate(
            CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. }
        )
    )
}

/// `AB:CD:…` for logs, as the admin pastes it into a peer entry.
fn colons(hex: &str) -> String {
    CertRule::Sha256(hex.to_owned()).to_string()
}

/// The handshake signature checks both verifiers share: with the provider's algorithms, as
/// rustls' own verifiers do (the peer proves it holds the certificate's key).
macro_rules! signature_checks {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}

/// The TLS port's client certificate check (see the module comment).
#[derive(Debug)]
struct ClientTrust {
    pinned: HashSet<String>,
    ca: Option<Arc<dyn ClientCertVerifier>>,
    subjects: Vec<DistinguishedName>,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for ClientTrust {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.subjects
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let fp = fingerprint(end_entity);
        let by_ca = self
            .ca
            .as_ref()
            .map(|v| v.verify_client_cert(end_entity, intermediates, now));
        let refusal = match by_ca {
            Some(Ok(v)) => return Ok(v),
            Some(Err(e)) if is_date_error(&e) => e,
            _ if self.pinned.contains(&fp) => match check_dates(end_entity, now) {
                Ok(()) => return Ok(ClientCertVerified::assertion()),
                Err(e) => e,
            },
            _ => check_dates(end_entity, now)
                .err()
                .unwrap_or(Error::InvalidCertificate(CertificateError::UnknownIssuer)),
        };
        // The admin's next step: pin this fingerprint, or issue the device a CA certificate.
        tracing::info!(fingerprint = colons(&fp), error = %refusal, "DICOM TLS client certificate refused");
        Err(refusal)
    }

    signature_checks!();
}

/// A peer's server certificate checked against its pinned fingerprint (and dates).
#[derive(Debug)]
struct PinnedServer {
    fingerprint: String,
    provider: Arc<CryptoProvider>,
}

#[derive(thiserror::Error)]
#[error("certificate SHA-256 {got} is not the pinned {want}")]
struct NotPinned {
    got: String,
    want: String,
}

/// rustls shows `Other` errors with `Debug`: the log line then reads as the message.
impl std::fmt::Debug for NotPinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let got = fingerprint(end_entity);
        if got != self.fingerprint {
            return Err(Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(NotPinned {
                    got: colons(&got),
                    want: colons(&self.fingerprint),
                })),
            )));
        }
        check_dates(end_entity, now)?;
        Ok(ServerCertVerified::assertion())
    }

    signature_checks!();
}
