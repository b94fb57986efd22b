//! DICOMweb (PS3.18) under `/dicom-web/`: QIDO-RS search (`qido.rs`, answered from the index
//! with the C-FIND matching and streamed), WADO-RS retrieve (`wado.rs`, multipart parts written
//! one stored file at a time) and WADO-URI at `/wado`.
//!
//! Who may: a logged-in session of this page (same origin; POST also needs the session's CSRF
//! token in `X-CSRF-Token`), or a per-user API token (`Authorization: Bearer …`, made on the
//! account page, stored hashed). Without either every path answers 401 with
//! `WWW-Authenticate: Bearer`. Search and retrieve need `Right::View`. Cross-origin pages may
//! call only from the origins an admin listed (`[web] dicomweb_cors_origins`), and only with a
//! token: no credentials are allowed cross-origin, so a session cookie never rides along.

mod accept;
mod json;
mod multipart;
mod qido;
mod stow;
pub(crate) mod tokens;
mod wado;
mod xml;

use pacsbox_archive::accounts::{Group, Right};

use crate::Web;
use crate::auth::COOKIE;
use crate::reply::{Reply, Req};

/// Whether a request is a STOW-RS upload (its body is streamed to [`stow`], not read as a
/// form).
pub fn is_upload(req: &Req) -> bool {
    req.method == "POST" && stow_target(&req.path).is_some()
}

/// `Some(study in the path)` for `/dicom-web/studies[/{study}]`.
fn stow_target(path: &str) -> Option<Option<&str>> {
    match path
        .trim_start_matches('/')
        .split('/')
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["dicom-web", "studies"] => Some(None),
        ["dicom-web", "studies", s] => Some(Some(s)),
        _ => None,
    }
}

/// STOW-RS: authenticates before a byte of the body is read, then stores part by part.
/// Storing needs `Right::Edit`: it adds patient data every user then sees, which staff
/// accounts (and their tokens) cannot do through the page either.
pub fn stow(web: &Web, req: &Req, body: &mut dyn std::io::Read) -> Reply {
    let cors = cors_origin(web, req);
    let reply = (|| {
        let caller = authenticate(web, req, cors.is_some())?;
        if !req
            .authorization
            .trim()
            .to_ascii_lowercase()
            .starts_with("bearer ")
        {
            // A session: the page's CSRF token must come along (no form field here).
            let cookie = req.cookies.get(COOKIE).map(String::as_str).unwrap_or("");
            let csrf_ok = web
                .sessions
                .get(cookie)
                .is_some_and(|s| !s.csrf.is_empty() && s.csrf == req.csrf_header);
            if !csrf_ok {
                return Err(error(
                    403,
                    "a session's upload needs its X-CSRF-Token header",
                ));
            }
        }
        if !caller.group.allows(Right::Edit) {
            return Err(error(
                403,
                "storing needs the edit right (editors and admins)",
            ));
        }
        let study = match stow_target(&req.path).flatten() {
            Some(s) => Some(crate::reply::check_uid(s).map_err(|e| error(400, e.to_string()))?),
            None => None,
        };
        Ok(stow::store(web, req, &caller, study, body))
    })()
    .unwrap_or_else(|r| r);
    match cors {
        Some(origin) => reply
            .header("Access-Control-Allow-Origin", origin)
            .header("Vary", "Origin"),
        None => reply,
    }
}

/// Who is calling, from a token or a session.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub user: String,
    pub group: Group,
}

/// A PS3.18-style error: the status and a short explanation, as JSON so that scripts can show
/// it (there is no standard error body; dcm4chee and Orthanc also answer with a message).
pub(crate) fn error(status: u16, message: impl Into<String>) -> Reply {
    let body = serde_json::json!({ "errorMessage": message.into() });
    Reply::bytes(
        status,
        "application/json",
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}

/// A header quoted back in an error message, cut to a length a person reads (a hostile
/// `Accept` may be kilobytes).
pub(crate) fn clipped(s: &str) -> String {
    const MAX: usize = 200;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Whether the path is DICOMweb's (answered by [`route`] before the page's own gates).
pub fn is_dicomweb(segs: &[&str]) -> bool {
    matches!(segs.first(), Some(&"dicom-web")) || segs == ["wado"]
}

pub fn route(web: &Web, req: &Req, segs: &[&str]) -> Reply {
    let cors = cors_origin(web, req);
    let reply = if req.method == "OPTIONS" {
        match &cors {
            Some(_) => Reply::bytes(204, "text/plain", Vec::new())
                .header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
                .header(
                    "Access-Control-Allow-Headers",
                    "Authorization, Accept, Content-Type",
                )
                .header("Access-Control-Max-Age", "600"),
            None => error(403, "this origin may not call DICOMweb here"),
        }
    } else {
        answer(web, req, segs, cors.is_some())
    };
    match cors {
        Some(origin) => reply
            .header("Access-Control-Allow-Origin", origin)
            .header("Vary", "Origin")
            .header("Access-Control-Expose-Headers", "Content-Type, Warning"),
        None => reply,
    }
}

/// The request's `Origin` when an admin allowed it.
fn cors_origin(web: &Web, req: &Req) -> Option<String> {
    let o = req.origin.trim();
    (!o.is_empty() && web.config.dicomweb_cors_origins.iter().any(|a| a == o)).then(|| o.to_owned())
}

fn answer(web: &Web, req: &Req, segs: &[&str], cors_allowed: bool) -> Reply {
    let get = req.method == "GET" || req.method == "HEAD";
    if !get {
        return error(405, "method not allowed").header("Allow", "GET, POST, OPTIONS");
    }
    let caller = match authenticate(web, req, cors_allowed) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !caller.group.allows(Right::View) {
        return error(403, "your role may not search or retrieve");
    }
    let result = match segs {
        ["wado"] => wado::wado_uri(web, req, &caller),
        ["dicom-web", rest @ ..] => match qido::resource(rest) {
            Some(search) => qido::search(web, req, &caller, search),
            None => wado::retrieve(web, req, &caller, rest),
        },
        _ => Err(error(404, "not found")),
    };
    result.unwrap_or_else(|r| r)
}

/// The caller, or the reply refusing them: 401 with a Bearer challenge without credentials.
fn authenticate(web: &Web, req: &Req, cors_allowed: bool) -> Result<Caller, Reply> {
    let challenge = |msg: &str, err: &str| {
        let value = if err.is_empty() {
            "Bearer realm=\"pacsbox\"".to_owned()
        } else {
            format!("Bearer realm=\"pacsbox\", error=\"{err}\"")
        };
        error(401, msg).header("WWW-Authenticate", value)
    };
    let auth = req.authorization.trim();
    if let Some(token) = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))
    {
        return match tokens::user_of(web, token.trim()) {
            Ok(Some(c)) => Ok(c),
            Ok(None) => Err(challenge(
                "the token is unknown or revoked",
                "invalid_token",
            )),
            Err(e) => Err(error(500, format!("checking the token: {e}"))),
        };
    }
    if req.cross_site && !cors_allowed {
        return Err(error(
            403,
            "cross-site requests need an allowed origin and a token",
        ));
    }
    let cookie = req.cookies.get(COOKIE).map(String::as_str).unwrap_or("");
    match web.sessions.get(cookie) {
        // Another site's page must not ride on the user's cookie.
        Some(_) if req.cross_site => Err(challenge("cross-origin calls need a token", "")),
        Some(s) if s.must_change_password => Err(error(403, "change your password first")),
        Some(s) => Ok(Caller {
            user: s.user,
            group: s.group,
        }),
        None => Err(challenge("log in or send an API token", "")),
    }
}

/// Audit helper: `ID (NAME)` of a study's patient.
pub(crate) fn patient_of_study(web: &Web, study: &str) -> String {
    match web.archive.index().study(study) {
        Ok(Some(s)) => format!("{} ({})", s.patient_id, s.patient_name),
        _ => String::new(),
    }
}
