//! API tokens for DICOMweb: made by a user on `/account/tokens` (shown once), kept in the
//! archive's index only as a BLAKE2b hash, revoked there. A token acts as its user with the
//! user's current role; a deleted user's tokens are refused.

use askama::Template;
use blake2::Digest;
use pacsbox_archive::api_tokens::ApiToken;

use super::Caller;
use crate::Web;
use crate::auth::{Session, now_unix, random_token};
use crate::pages::{Nav, form_page, nav};
use crate::reply::{HttpError, Reply, Req};

/// Tokens a user may hold at once (each a row the lookup never scans, but the page lists).
const MAX_TOKENS_PER_USER: usize = 20;
const MAX_LABEL: usize = 80;

/// The stored key of a token: 256 bits of randomness need no slow hash, only a one-way one.
pub(crate) fn hash(token: &str) -> String {
    let d = blake2::Blake2b512::new()
        .chain_update(b"pacsbox-api-token\0")
        .chain_update(token.as_bytes())
        .finalize();
    d.iter().take(32).map(|b| format!("{b:02x}")).collect()
}

/// The user a token stands for, with the role the user has now.
pub(crate) fn user_of(web: &Web, token: &str) -> Result<Option<Caller>, HttpError> {
    if token.is_empty() || token.len() > 200 {
        return Ok(None);
    }
    let index = web.archive.index();
    let Some(t) = index.api_token(&hash(token))? else {
        return Ok(None);
    };
    Ok(index.user(&t.user)?.map(|u| Caller {
        user: t.user,
        group: u.group,
    }))
}

struct Row {
    id: String,
    label: String,
    prefix: String,
    created: String,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage<'a> {
    nav: Option<Nav>,
    t: &'static crate::i18n::Strings,
    csrf: &'a str,
    tokens: Vec<Row>,
    /// The token just made: shown this once.
    new_token: &'a str,
    error: &'a str,
    message: &'a str,
}

pub fn page(
    web: &Web,
    s: &Session,
    new_token: &str,
    error: &str,
    message: &str,
) -> Result<Reply, HttpError> {
    let tokens = web
        .archive
        .index()
        .api_tokens_of(&s.user)?
        .into_iter()
        .map(|(h, t)| Row {
            id: h,
            label: t.label,
            prefix: t.prefix,
            created: crate::conflicts::utc(t.created_unix),
        })
        .collect();
    form_page(
        &TokensPage {
            nav: nav(s),
            t: s.t(),
            csrf: &s.csrf,
            tokens,
            new_token,
            error,
            message,
        },
        error,
    )
}

/// `action=create` (with `label`) or `action=revoke` (with `id`, the token's hash).
pub fn post(web: &Web, s: &Session, req: &Req) -> Result<Reply, HttpError> {
    let index = web.archive.index();
    match req.field("action") {
        "create" => {
            let label = req.field("label").trim();
            if label.is_empty() || label.chars().count() > MAX_LABEL {
                return page(
                    web,
                    s,
                    "",
                    "Give the token a name (up to 80 characters).",
                    "",
                );
            }
            if index.api_tokens_of(&s.user)?.len() >= MAX_TOKENS_PER_USER {
                return page(web, s, "", "Too many tokens: revoke one first.", "");
            }
            let token = format!("pbx_{}", random_token(32)?);
            let record = ApiToken {
                user: s.user.clone(),
                label: label.to_owned(),
                created_unix: now_unix(),
                prefix: token.chars().take(10).collect(),
            };
            index.put_api_token(&hash(&token), &record)?;
            tracing::info!(user = s.user, label, "API token created");
            page(
                web,
                s,
                &token,
                "",
                "Token created. Copy it now: it is not shown again.",
            )
        }
        "revoke" => {
            if index.revoke_api_token(&s.user, req.field("id"))? {
                page(web, s, "", "", "Token revoked.")
            } else {
                page(web, s, "", "No such token.", "")
            }
        }
        _ => Err(HttpError::BadRequest("unknown action".into())),
    }
}

/// The label of the user's token `id`, for the audit record of its revocation.
pub fn label_of(web: &Web, id: &str) -> String {
    match web.archive.index().api_token(id) {
        Ok(Some(t)) => format!("{} ({})", t.label, t.prefix),
        _ => id.chars().take(12).collect(),
    }
}
