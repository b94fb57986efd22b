//! A user's own account page: the password (its change forced at first login) and the
//! language of the pages.

use askama::Template;

use super::{Nav, nav, page};
use crate::Web;
use crate::auth::{self, Session};
use crate::i18n::Lang;
use crate::reply::{HttpError, Reply, Req};

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage<'a> {
    nav: Option<Nav>,
    t: &'static crate::i18n::Strings,
    csrf: &'a str,
    must_change: bool,
    error: &'a str,
    message: &'a str,
    min_len: usize,
    role: &'static str,
    role_means: &'static str,
    /// The user's language setting as stored (`""`: the browser's).
    language: &'static str,
}

pub fn password_form(s: &Session, error: &str, message: &str) -> Result<Reply, HttpError> {
    page(&PasswordPage {
        nav: nav(s),
        t: s.t(),
        csrf: &s.csrf,
        must_change: s.must_change_password,
        error,
        message,
        min_len: auth::MIN_PASSWORD_LEN,
        role: s.group.as_str(),
        role_means: s.group.describe(),
        language: s.language.map_or("", Lang::tag),
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
                password_form(s, "", s.t().password_changed)
            }
        }
        Err(msg) => {
            let mut r = password_form(s, &msg, "")?;
            r.status = 400;
            Ok(r)
        }
    }
}

/// The language setting's POST: `en`, `ko`, or empty for the browser's. Stored with the
/// account (so it survives logout and reboot), and at once in the user's open sessions.
pub fn language_post(web: &Web, s: &Session, req: &Req) -> Result<Reply, HttpError> {
    let posted = req.field("language");
    let language = match posted {
        "" => None,
        tag => match Lang::parse(tag) {
            Some(l) => Some(l),
            None => {
                let mut r = password_form(s, s.t().language_unknown, "")?;
                r.status = 400;
                return Ok(r);
            }
        },
    };
    web.archive
        .index()
        .set_user_language(&s.user, language.map(Lang::tag))?;
    web.sessions.language_changed(&s.user, language);
    tracing::info!(user = s.user, language = posted, "page language set");
    // The page after the change is already in the new language.
    let mut now = s.clone();
    now.language = language;
    now.lang = Lang::choose(language, &req.accept_language);
    password_form(&now, "", now.t().language_saved)
}
