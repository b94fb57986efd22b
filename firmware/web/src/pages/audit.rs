//! The admins' view of the audit trail: filter by user or AE, patient or study, action and
//! dates; export the matches as CSV.

use askama::Template;
use pacsbox_audit::{Filter, Record};

use super::{Nav, nav, page};
use crate::Web;
use crate::auth::Session;
use crate::reply::{HttpError, Reply, Req};

/// Rows shown on the page; the CSV export goes further.
const PAGE_ROWS: usize = 500;
const CSV_ROWS: usize = 200_000;

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    nav: Option<Nav>,
    t: &'static crate::i18n::Strings,
    f: Filter,
    rows: Vec<(String, Record)>,
    more: bool,
}

/// A date field: `YYYY-MM-DD` or nothing (anything else would compare oddly with file names).
fn date(s: &str) -> Result<String, HttpError> {
    let ok = s.is_empty()
        || (s.len() == 10
            && s.bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            }));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(HttpError::BadRequest(format!("not a date: {s:?}")))
    }
}

pub fn audit_page(web: &Web, s: &Session, req: &Req) -> Result<Reply, HttpError> {
    let f = Filter {
        actor: req.param("actor").to_owned(),
        patient: req.param("patient").to_owned(),
        action: req.param("action").to_owned(),
        from: date(req.param("from"))?,
        to: date(req.param("to"))?,
    };
    let dir = web.audit.dir();
    if req.param("format") == "csv" {
        let rows = pacsbox_audit::read(dir, &f, CSV_ROWS)?;
        return Ok(Reply::bytes(
            200,
            "text/csv; charset=utf-8",
            pacsbox_audit::to_csv(&rows).into_bytes(),
        )
        .header(
            "Content-Disposition",
            "attachment; filename=\"pacsbox-audit.csv\"",
        ));
    }
    let mut rows = pacsbox_audit::read(dir, &f, PAGE_ROWS + 1)?;
    let more = rows.len() > PAGE_ROWS;
    rows.truncate(PAGE_ROWS);
    page(&AuditPage {
        nav: nav(s),
        t: s.t(),
        f,
        rows: rows
            .into_iter()
            .map(|r| (crate::conflicts::utc(r.unix), r))
            .collect(),
        more,
    })
}
