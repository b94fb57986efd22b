//! The conflicts page (editors and admins): instances that arrived with an archived SOP Instance UID but
//! other content, kept aside by the archive under `conflicts/`, each resolved by keeping the
//! archived copy, replacing it with the newcomer, or discarding the newcomer. The archive does
//! the work ([`pacsbox_archive::Archive::resolve_conflict`]); a replace goes through its group
//! commit like any ingest.

use askama::Template;
use pacsbox_archive::{Resolution, ResolveError};

use crate::Web;
use crate::auth::Session;
use crate::pages::Nav;
use crate::reply::{HttpError, Reply, Req};

struct Row {
    name: String,
    sop: String,
    patient: String,
    study: String,
    received: String,
    size: String,
    source_ae: String,
    same_as_archived: bool,
}

#[derive(Template)]
#[template(path = "conflicts.html")]
struct ConflictsPage<'a> {
    nav: Option<Nav>,
    t: &'static crate::i18n::Strings,
    csrf: &'a str,
    rows: Vec<Row>,
    used: String,
    cap: String,
    error: &'a str,
    message: &'a str,
}

fn mib(n: u64) -> String {
    format!("{:.2} MiB", n as f64 / f64::from(1u32 << 20))
}

/// UTC, so two admins in different zones read the same time as the server log.
pub(crate) fn utc(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            ))
            .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

pub fn page(web: &Web, s: &Session, error: &str, message: &str) -> Result<Reply, HttpError> {
    let rows = web
        .archive
        .conflicts()?
        .into_iter()
        .map(|c| {
            let (patient, study) = c
                .archived
                .map(|a| (crate::search::show_name(&a.patient_name), a.study_uid))
                .unwrap_or_default();
            Row {
                sop: c.sop_instance_uid,
                patient,
                study,
                received: utc(c.received_unix),
                size: mib(c.size),
                source_ae: c.source_ae,
                same_as_archived: c.same_as_archived,
                name: c.name,
            }
        })
        .collect();
    let stats = web.archive.conflict_stats();
    crate::pages::form_page(
        &ConflictsPage {
            nav: crate::pages::nav(s),
            t: s.t(),
            csrf: &s.csrf,
            rows,
            used: mib(stats.bytes),
            cap: if stats.max_bytes == u64::MAX {
                "no cap".into()
            } else {
                mib(stats.max_bytes)
            },
            error,
            message,
        },
        error,
    )
}

pub fn post(web: &Web, s: &Session, req: &Req) -> Result<Reply, HttpError> {
    let name = req.field("name");
    let how: Resolution = req.field("action").parse().map_err(HttpError::BadRequest)?;
    match web.archive.resolve_conflict(name, how) {
        Ok(_) => {
            tracing::info!(user = s.user, conflict = name, resolution = ?how, "conflict resolved");
            let done = match how {
                Resolution::Keep => "archived copy kept, newcomer deleted",
                Resolution::Replace => "newcomer is now the archived instance",
                Resolution::Discard => "newcomer discarded",
            };
            page(web, s, "", &format!("{name}: {done}."))
        }
        Err(ResolveError::NotFound(_)) => Err(HttpError::NotFound),
        Err(e @ ResolveError::Store { .. }) => page(web, s, &e.to_string(), ""),
        Err(e @ ResolveError::Io { .. }) => Err(HttpError::Internal(e.to_string())),
    }
}
