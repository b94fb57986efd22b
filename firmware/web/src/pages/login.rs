//! The login form and its POST. The form has no session yet, so its CSRF token is a
//! double-submit cookie (`auth::login_cookie`).

use askama::Template;

use super::{Nav, page};
use crate::Web;
use crate::auth;
use crate::reply::{HttpError, Reply, Req};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    nav: Option<Nav>,
    t: &'static crate::i18n::Strings,
    error: &'a str,
    csrf: String,
    next: String,
    /// The name typed before a failed login, so only the password is typed again.
    user: &'a str,
}

/// Only a local path may follow a login (no open redirect).
/// Where to go after logging in: a path on this site only. No other host (`//…`, `\\`), and
/// no control character: a CR/LF would end the Location header and start the sender's own
/// (a crafted login link could set a cookie).
fn safe_next(next: &str) -> String {
    if next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control)
        && next.len() <= 2048
    {
        next.to_owned()
    } else {
        "/search".to_owned()
    }
}

pub fn login_form(web: &Web, req: &Req, error: &str) -> Result<Reply, HttpError> {
    // The login form has no session yet: its CSRF token is a double-submit cookie, signed so
    // that only a form this box handed out counts.
    let token = web.sessions.login_token()?;
    let next = if req.form.contains_key("next") {
        req.field("next")
    } else {
        req.param("next")
    };
    let status = if error.is_empty() { 200 } else { 401 };
    let mut r = page(&LoginPage {
        nav: None,
        t: req.t(),
        error,
        csrf: token.clone(),
        next: safe_next(next),
        // Only a name that could be a user's: people type passwords into this field too.
        user: Some(req.field("user"))
            .filter(|u| auth::acceptable_user_name(u))
            .unwrap_or(""),
    })?;
    r.status = status;
    Ok(r.header("Set-Cookie", auth::login_cookie(req, &token)))
}

pub fn login_post(web: &Web, req: &Req) -> Result<Reply, HttpError> {
    let csrf = req.field("csrf");
    let user = req.field("user");
    if !auth::login_cookie_matches(req, csrf) || !web.sessions.login_token_valid(csrf) {
        crate::audit::login(web, req, user, "refused: login form not from this box");
        return login_form(web, req, req.t().login_expired);
    }
    match web
        .sessions
        .login(&web.archive, user, req.field("password"), &req.client)?
    {
        Ok(token) => {
            crate::audit::login(web, req, user, "ok");
            Ok(Reply::redirect(&safe_next(req.field("next")))
                .header("Set-Cookie", auth::session_cookie(req, &token)))
        }
        Err(e) => {
            crate::audit::login(web, req, user, &format!("failed: {e}"));
            let t = req.t();
            let shown = match e {
                auth::LoginError::Wrong => t.login_wrong.to_owned(),
                auth::LoginError::Locked(s) => crate::i18n::fill(t.login_locked, &[s.to_string()]),
            };
            login_form(web, req, &shown)
        }
    }
}
