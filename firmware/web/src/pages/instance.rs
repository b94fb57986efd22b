//! One instance: its DICOM header as a table, and its stored Part-10 file.

use askama::Template;

use super::{Nav, nav, page};
use crate::Web;
use crate::auth::Session;
use crate::header::{HeaderRow, header_rows};
use crate::reply::{HttpError, Reply};

#[derive(Template)]
#[template(path = "header.html")]
struct HeaderPage {
    nav: Option<Nav>,
    t: &'static crate::i18n::Strings,
    sop: String,
    study_uid: String,
    rows: Vec<HeaderRow>,
}

pub fn header_page(web: &Web, s: &Session, sop: &str) -> Result<Reply, HttpError> {
    let rec = web
        .archive
        .index()
        .instance(sop)?
        .ok_or(HttpError::NotFound)?;
    let rows = header_rows(web.archive.open_part10(&rec)?)?;
    page(&HeaderPage {
        nav: nav(s),
        t: s.t(),
        sop: sop.to_owned(),
        study_uid: rec.study_uid,
        rows,
    })
}

pub fn instance_file(web: &Web, sop: &str) -> Result<Reply, HttpError> {
    let rec = web
        .archive
        .index()
        .instance(sop)?
        .ok_or(HttpError::NotFound)?;
    let body = web.archive.open_part10(&rec)?;
    Ok(Reply::stream("application/dicom", body).header(
        "Content-Disposition",
        format!("attachment; filename=\"{sop}.dcm\""),
    ))
}
