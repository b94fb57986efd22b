//! The status document as JSON and text (public, for monitoring) and as the status page.

use askama::Template;

use super::{Nav, nav, page};
use crate::Web;
use crate::auth::Session;
use crate::reply::{HttpError, Reply, Req};
use crate::search;

/// The whole document for a logged-in user; without a session only its health part
/// ([`crate::StatusDoc::public`]), since anyone on the LAN may ask.
pub fn status_json(web: &Web, req: &Req) -> Result<Reply, HttpError> {
    let doc = web.status.collect()?;
    let token = req
        .cookies
        .get(crate::auth::COOKIE)
        .map_or("", String::as_str);
    if web.sessions.get(token).is_some() {
        Ok(Reply::json(&doc))
    } else {
        Ok(Reply::json(&doc.public()))
    }
}

pub fn status_txt(web: &Web) -> Result<Reply, HttpError> {
    Ok(Reply::text(200, web.status.collect()?.as_text()))
}

struct RecentRow {
    when: String,
    study_uid: String,
    patient: String,
    modality: String,
    calling_ae: String,
}

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage {
    nav: Option<Nav>,
    t: &'static crate::i18n::Strings,
    s: crate::StatusDoc,
    uptime: String,
    total: String,
    used: String,
    used_pct: u64,
    free: String,
    raid: Vec<String>,
    recent: Vec<RecentRow>,
    errors: Vec<(String, String, String)>,
    backup_last: Option<String>,
    backup_next: Option<String>,
}

pub(super) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

pub(crate) fn local_time(unix: i64) -> String {
    let offset = pacsbox_health::host::utc_offset_s(unix);
    match time::OffsetDateTime::from_unix_timestamp(unix + i64::from(offset)) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ),
        Err(_) => unix.to_string(),
    }
}

pub fn status_page(web: &Web, s: &Session) -> Result<Reply, HttpError> {
    let doc = web.status.collect()?;
    let used = doc.disk_total_bytes.saturating_sub(doc.disk_free_bytes);
    let recent = doc
        .recent_studies
        .iter()
        // Names from the index now, not from when they arrived: a correction shows at once,
        // and a deleted study is not listed.
        .filter_map(|r| {
            let patient = match web.archive.index().study(&r.study_uid) {
                Ok(Some(st)) => search::show_name(&st.patient_name),
                Ok(None) => return None,
                Err(_) => String::new(),
            };
            Some(RecentRow {
                when: local_time(r.received_unix),
                study_uid: r.study_uid.clone(),
                patient,
                modality: r.modality.clone(),
                calling_ae: r.calling_ae.clone(),
            })
        })
        .collect();
    let up = doc.uptime_s;
    page(&StatusPage {
        nav: nav(s),
        t: s.t(),
        uptime: format!("{}d {}h {}m", up / 86400, up / 3600 % 24, up / 60 % 60),
        total: bytes(doc.disk_total_bytes),
        used: bytes(used),
        used_pct: (used * 100).checked_div(doc.disk_total_bytes).unwrap_or(0),
        free: bytes(doc.disk_free_bytes),
        raid: doc
            .raid
            .iter()
            .map(|r| {
                format!(
                    "{}: {}",
                    r.array.name,
                    serde_json::to_string(&r.state).unwrap_or_default()
                )
            })
            .collect(),
        recent,
        errors: doc
            .recent_errors
            .iter()
            .map(|e| (local_time(e.unix), e.level.clone(), e.message.clone()))
            .collect(),
        backup_last: doc
            .backup
            .as_ref()
            .and_then(|b| b.last_complete_unix)
            .map(local_time),
        backup_next: doc
            .backup
            .as_ref()
            .and_then(|b| b.next_unix)
            .map(local_time),
        s: doc,
    })
}
