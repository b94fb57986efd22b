//! A user's own password: the form, and the change (forced at first login).

use askama::Template;

use super::{Nav, nav, page};
use crate::Web;
use crate::auth::{self, Session};
use crate::reply::{HttpError, Reply, Req};

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage<'a> {
    nav: Option<Nav>,
    csrf: &'a str,
    must_change: bool,
    error: &'a str,
    message: &'a str,
    min_len: usize,
    role: &'static str,
    role_means: &'static str,
}

pub fn password_form(s: &Session, error: &str, message: &str) -> Result<Reply, HttpError> {
    page(&PasswordPage {
        nav: nav(s),
        csrf: &s.csrf,
        must_change: s.must_change_password,
        error,
        message,
        min_len: auth::MIN_PASSWORD_LEN,
        role: s.group.as_str(),
        role_means: s.group.describe(),
    })
}

pub fn password_post(web: &Web, token: &str, s: &Session, req: &Req) -> Result<Reply, HttpError> {
    match auth::change_password(
        &web.archive,
        &s.user,
        req.field("current"),
        req.field("new"),
        req.field("confirm"),
    )? {
        Ok(()) => {
            web.sessions.password_changed(token, &s.user);
            if let Some(f) = &web.config.initial_password_file {
                // The generated password is no longer valid; do not leave it lying around.
                let _ = std::fs::remove_file(f);
            }
            tracing::info!(user = s.user, "password changed");
            if s.must_change_password {
                Ok(Reply::redirect("/search"))
            } else {
                password_form(s, "", "Password changed.")
            }
        }
        Err(msg) => {
            let mut r = password_form(s, &msg, "")?;
            r.status = 400;
            Ok(r)
        }
    }
}
