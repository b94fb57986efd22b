//! The admins' certificate page: what the HTTPS and DICOM TLS ports serve, installing the
//! clinic's own certificate (pasted PEM), or a new self-signed one.

use askama::Template;

use super::{Nav, form_page, nav};
use crate::Web;
use crate::auth::Session;
use crate::certificate::CertificateView;
use crate::reply::{HttpError, Reply, Req};

#[derive(Template)]
#[template(path = "certificate.html")]
struct CertificatePage<'a> {
    nav: Option<Nav>,
    t: &'static crate::i18n::Strings,
    csrf: &'a str,
    cert: Option<CertificateView>,
    valid_from: String,
    valid_until: String,
    error: &'a str,
    message: &'a str,
}

pub fn certificate_page(
    web: &Web,
    s: &Session,
    error: &str,
    message: &str,
) -> Result<Reply, HttpError> {
    let cert = web.certificates.as_ref().map(|c| c.current());
    let (valid_from, valid_until) = cert.as_ref().map_or_else(Default::default, |c| {
        (
            super::status::local_time(c.not_before_unix),
            super::status::local_time(c.not_after_unix),
        )
    });
    form_page(
        &CertificatePage {
            nav: nav(s),
            t: s.t(),
            csrf: &s.csrf,
            cert,
            valid_from,
            valid_until,
            error,
            message,
        },
        error,
    )
}

pub fn certificate_post(web: &Web, s: &Session, req: &Req) -> Result<Reply, HttpError> {
    let Some(certs) = web.certificates.as_ref() else {
        return certificate_page(
            web,
            s,
            "TLS is off on this box (https_port and dicom_tls_port are 0).",
            "",
        );
    };
    let done = match req.field("action") {
        "install" => certs.install(req.field("chain"), req.field("key")),
        "self-signed" => certs.renew_self_signed(),
        _ => return Err(HttpError::BadRequest("unknown action".into())),
    };
    match done {
        Ok(view) => {
            tracing::info!(
                admin = s.user,
                fingerprint = view.fingerprint,
                "certificate replaced"
            );
            certificate_page(
                web,
                s,
                "",
                &format!(
                    "Now serving {} (SHA-256 {}) to every new connection.",
                    view.subject, view.fingerprint
                ),
            )
        }
        Err(e) => certificate_page(web, s, &e, ""),
    }
}
