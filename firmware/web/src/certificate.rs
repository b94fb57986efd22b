//! What the web page needs from the box's TLS certificate: show it, install a clinic's own,
//! or make a new self-signed one. The certificate itself (files, rustls) belongs to the
//! binary (`firmware/pacsbox/src/tls.rs`), which implements [`Certificates`]; the page only
//! passes PEM text through and shows the answer.

/// The certificate served on the HTTPS and DICOM TLS ports, as staff check it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertificateView {
    pub subject: String,
    pub issuer: String,
    pub not_before_unix: i64,
    pub not_after_unix: i64,
    /// DNS names and addresses it is valid for.
    pub names: Vec<String>,
    /// SHA-256 of the leaf, `AB:CD:…`.
    pub fingerprint: String,
    pub self_signed: bool,
    /// Certificates in the chain served, the leaf included.
    pub chain_len: usize,
}

pub trait Certificates: Send + Sync {
    fn current(&self) -> CertificateView;
    /// Checks a PEM chain (leaf first) and its PEM private key — they match, the leaf is valid
    /// now — then keeps them durably and serves them to every new connection. The error is
    /// said to the admin as it is.
    fn install(&self, chain_pem: &str, key_pem: &str) -> Result<CertificateView, String>;
    /// Replaces the certificate with a newly made self-signed one (names of the box now).
    fn renew_self_signed(&self) -> Result<CertificateView, String>;
}
