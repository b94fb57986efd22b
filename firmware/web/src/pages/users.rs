//! The admins' user list: create and delete web users; who is logged in, from where and since
//! when, and ending a session.

use askama::Template;
use pacsbox_archive::accounts::{Group, UserRecord};

use super::{Nav, form_page, nav};
use crate::Web;
use crate::auth::{self, Session};
use crate::reply::{HttpError, Reply, Req};

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage<'a> {
    nav: Option<Nav>,
    nav_user: &'a str,
    csrf: &'a str,
    /// (name, role)
    users: Vec<(String, &'static str)>,
    /// (role, what it may do), for the role choices.
    roles: Vec<(&'static str, &'static str)>,
    /// (id, user, client address, since)
    sessions: Vec<(String, String, String, String)>,
    error: &'a str,
    message: &'a str,
}

pub fn users_page(web: &Web, s: &Session, error: &str, message: &str) -> Result<Reply, HttpError> {
    let users = web
        .archive
        .index()
        .users()?
        .into_iter()
        .map(|(n, r)| (n, r.group.as_str()))
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
            nav_user: &s.user,
            csrf: &s.csrf,
            users,
            roles: Group::ALL
                .iter()
                .map(|g| (g.as_str(), g.describe()))
                .collect(),
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
            users_page(web, s, "", &format!("User {name} added."))
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
                &format!("{name} is now {}; they log in again.", group.as_str()),
            )
        }
        "delete" => {
            if name == s.user {
                return users_page(web, s, "You cannot delete yourself.", "");
            }
            web.archive.index().delete_user(name)?;
            web.sessions.end_user(name);
            tracing::info!(admin = s.user, user = name, "user deleted");
            users_page(web, s, "", &format!("User {name} deleted."))
        }
        "end-session" => {
            let id = req.field("session");
            if id == s.id {
                return users_page(web, s, "Log out to end your own session.", "");
            }
            match web.sessions.end(id) {
                Some(user) => {
                    tracing::info!(admin = s.user, user, "session ended by an admin");
                    users_page(web, s, "", &format!("Session of {user} ended."))
                }
                None => users_page(web, s, "That session has already ended.", ""),
            }
        }
        _ => Err(HttpError::BadRequest("unknown action".into())),
    }
}
