//! The admins' user list: create and delete web users; who is logged in, from where and since
//! when, and ending a session.

use askama::Template;
use pacsbox_archive::accounts::{Group, UserRecord};

use super::{Nav, form_page, nav};
use crate::Web;
use crate::auth::{self, Session};
use crate::i18n::fill;
use crate::reply::{HttpError, Reply, Req};

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage<'a> {
    nav: Option<Nav>,
    t: &'static crate::i18n::Strings,
    nav_user: &'a str,
    csrf: &'a str,
    /// (name, role, last login)
    users: Vec<(String, &'static str, String)>,
    /// A delete waiting for the admin's yes: the user's name.
    confirm_delete: &'a str,
    /// (role, what it may do), for the role choices.
    roles: Vec<(&'static str, &'static str)>,
    /// (id, user, client address, since)
    sessions: Vec<(String, String, String, String)>,
    error: &'a str,
    message: &'a str,
}

pub fn users_page(web: &Web, s: &Session, error: &str, message: &str) -> Result<Reply, HttpError> {
    users_page_confirming(web, s, error, message, "")
}

fn users_page_confirming(
    web: &Web,
    s: &Session,
    error: &str,
    message: &str,
    confirm_delete: &str,
) -> Result<Reply, HttpError> {
    let last = web.archive.index().last_logins()?;
    let users = web
        .archive
        .index()
        .users()?
        .into_iter()
        .map(|(n, r)| {
            let when = last
                .get(&n)
                .map_or_else(|| "never".to_owned(), |t| super::status::local_time(*t));
            (n, r.group.as_str(), when)
        })
        .collect();
    let sessions = web
        .sessions
        .list()
        .into_iter()
        .map(|x| {
            let since = super::status::local_time(x.since_unix);
            (x.id, x.user, x.client, since)
        })
        .collect();
    form_page(
        &UsersPage {
            nav: nav(s),
            t: s.t(),
            nav_user: &s.user,
            csrf: &s.csrf,
            users,
            roles: Group::ALL
                .iter()
                .map(|g| (g.as_str(), g.describe()))
                .collect(),
            confirm_delete,
            sessions,
            error,
            message,
        },
        error,
    )
}

pub fn users_post(web: &Web, s: &Session, req: &Req) -> Result<Reply, HttpError> {
    let name = req.field("name");
    match req.field("action") {
        "create" => {
            if !auth::acceptable_user_name(name) {
                return users_page(web, s, "User names are 1-32 letters, digits, . _ -", "");
            }
            let password = req.field("password");
            if let Err(e) = auth::acceptable_password(&web.archive, name, password, password)? {
                return users_page(web, s, &e, "");
            }
            let Some(group) = Group::parse(req.field("group")) else {
                return users_page(web, s, "Choose one of the roles listed.", "");
            };
            let rec = UserRecord {
                password_hash: auth::hash_password(password)?,
                group,
                must_change_password: true,
                created_unix: crate::auth::now_unix(),
            };
            if !web.archive.index().create_user_if_absent(name, &rec)? {
                return users_page(web, s, "A user of that name exists.", "");
            }
            tracing::info!(
                admin = s.user,
                user = name,
                role = group.as_str(),
                "user created"
            );
            users_page(web, s, "", &fill(s.t().msg_user_added, &[name.to_owned()]))
        }
        "set-role" => {
            let Some(group) = Group::parse(req.field("group")) else {
                return users_page(web, s, "Choose one of the roles listed.", "");
            };
            if name == s.user {
                // An admin demoting themselves could leave the box without one.
                return users_page(web, s, "Another admin changes your role.", "");
            }
            let Some(mut rec) = web.archive.index().user(name)? else {
                return users_page(web, s, "No user of that name.", "");
            };
            rec.group = group;
            web.archive.index().put_user(name, &rec)?;
            // Sessions carry the role they logged in with: the new one counts from the next login.
            web.sessions.end_user(name);
            tracing::info!(
                admin = s.user,
                user = name,
                role = group.as_str(),
                "role changed"
            );
            users_page(
                web,
                s,
                "",
                &fill(
                    s.t().msg_role_now,
                    &[name.to_owned(), group.as_str().to_owned()],
                ),
            )
        }
        "reset-password" => {
            if name == s.user {
                return users_page(web, s, "Change your own password on your account page.", "");
            }
            let Some(mut rec) = web.archive.index().user(name)? else {
                return users_page(web, s, "No user of that name.", "");
            };
            let password = req.field("password");
            if let Err(e) = auth::acceptable_password(&web.archive, name, password, password)? {
                return users_page(web, s, &e, "");
            }
            rec.password_hash = auth::hash_password(password)?;
            // A password the admin knows is only for the next login.
            rec.must_change_password = true;
            web.archive.index().put_user(name, &rec)?;
            web.sessions.end_user(name);
            tracing::info!(admin = s.user, user = name, "password reset by an admin");
            users_page(web, s, "", &fill(s.t().msg_pw_set, &[name.to_owned()]))
        }
        "delete" => {
            if name == s.user {
                return users_page(web, s, "You cannot delete yourself.", "");
            }
            if web.archive.index().user(name)?.is_none() {
                return users_page(web, s, "No user of that name.", "");
            }
            if req.field("confirm") != "yes" {
                return users_page_confirming(web, s, "", "", name);
            }
            web.archive.index().delete_user(name)?;
            web.sessions.end_user(name);
            tracing::info!(admin = s.user, user = name, "user deleted");
            users_page(
                web,
                s,
                "",
                &fill(s.t().msg_user_deleted, &[name.to_owned()]),
            )
        }
        "end-session" => {
            let id = req.field("session");
            if id == s.id {
                return users_page(web, s, "Log out to end your own session.", "");
            }
            match web.sessions.end(id) {
                Some(user) => {
                    tracing::info!(admin = s.user, user, "session ended by an admin");
                    users_page(web, s, "", &fill(s.t().msg_session_of, &[user]))
                }
                None => users_page(web, s, "That session has already ended.", ""),
            }
        }
        _ => Err(HttpError::BadRequest("unknown action".into())),
    }
}
