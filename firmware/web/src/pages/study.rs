//! One study: its page (series with thumbnails), its series as JSON for the viewer, and the
//! whole study as a streamed ZIP.

use askama::Template;
use pacsbox_archive::query::{Attr, Level, Matcher, Query};
use serde::Serialize;

use super::{Nav, nav};
use crate::Web;
use crate::auth::Session;
use crate::reply::{HttpError, Reply};
use crate::search::{self, StudyRow};

struct SeriesView {
    uid: String,
    number: String,
    modality: String,
    description: String,
    body_part: String,
    instances: u64,
    first_sop: Option<String>,
}

#[derive(Template)]
#[template(path = "study.html")]
struct StudyPage {
    nav: Option<Nav>,
    t: &'static crate::i18n::Strings,
    st: StudyRow,
    referring: String,
    series: Vec<SeriesView>,
    /// The correction forms, for editors and admins.
    edit: Option<crate::edit::EditForms>,
    /// The outcome of a posted correction form (an error is answered 400).
    error: String,
    message: String,
    /// The anonymize form's error, shown in that form (answered 400 too).
    anon_error: String,
    /// The study's modalities that often burn text into the pixels (empty: none).
    burn_in: String,
    /// "Send to…" choices: peers with an address.
    send_to: Vec<String>,
    /// The scheduled exam this study was made for (state, accession), and what the modality
    /// said it performed (MPPS).
    exam: String,
    performed: Vec<String>,
    /// The physician's report (`report.rs`).
    report: super::report::ReportSection,
    /// The study's key images (every KOS's, `pacsbox_archive::kos`).
    key_images: usize,
    /// OHIF is installed (`[web] ohif_dir`): the page offers "Open in OHIF".
    ohif: bool,
}

fn study_query(uid: &str) -> Query {
    Query {
        level: Level::Study,
        filters: vec![(Attr::StudyInstanceUid, Matcher::Single(uid.to_owned()))],
    }
}

pub(super) fn study_row(web: &Web, uid: &str) -> Result<(StudyRow, String), HttpError> {
    let page = web.archive.index().study_page(&study_query(uid), 0, 1)?;
    let row = page.rows.first().ok_or(HttpError::NotFound)?;
    let referring = row
        .study
        .as_ref()
        .map(|s| search::show_name(&s.referring_physician))
        .unwrap_or_default();
    Ok((StudyRow::from(row), referring))
}

/// A series UID, its record, and its instances (SOP UID, instance number).
pub type SeriesListing = (
    String,
    pacsbox_archive::record::SeriesRecord,
    Vec<(String, Option<i32>)>,
);

/// The study's series (by series number) with their instances (by instance number).
pub fn series_of(web: &Web, study_uid: &str) -> Result<Vec<SeriesListing>, HttpError> {
    let index = web.archive.index();
    let mut out = Vec::new();
    for (uid, rec) in index.series_of(study_uid)? {
        let instances = index
            .instances_of(&uid)?
            .into_iter()
            .map(|(sop, i)| (sop, i.instance_number))
            .collect();
        out.push((uid, rec, instances));
    }
    Ok(out)
}

pub fn study_page(web: &Web, s: &Session, uid: &str) -> Result<Reply, HttpError> {
    study_page_with(web, s, uid, "", "")
}

/// The study page after a correction form was posted: its outcome on top (400 with an error).
pub fn study_page_with(
    web: &Web,
    s: &Session,
    uid: &str,
    error: &str,
    message: &str,
) -> Result<Reply, HttpError> {
    render(web, s, uid, error, message, "", None)
}

/// The study page with an error in its anonymize form (answered 400).
pub(super) fn study_page_anonymize_error(
    web: &Web,
    s: &Session,
    uid: &str,
    error: &str,
) -> Result<Reply, HttpError> {
    render(web, s, uid, "", "", error, None)
}

/// The study page with the posted report text and why it was refused (answered 400).
pub(super) fn study_page_report_error(
    web: &Web,
    s: &Session,
    uid: &str,
    text: pacsbox_archive::report::ReportText,
    error: &str,
) -> Result<Reply, HttpError> {
    let mut r = render(web, s, uid, "", "", "", Some((text, error.to_owned())))?;
    r.status = 400;
    Ok(r)
}

fn render(
    web: &Web,
    s: &Session,
    uid: &str,
    error: &str,
    message: &str,
    anon_error: &str,
    report: Option<(pacsbox_archive::report::ReportText, String)>,
) -> Result<Reply, HttpError> {
    let (st, referring) = study_row(web, uid)?;
    let series = series_of(web, uid)?
        .into_iter()
        .map(|(uid, rec, inst)| SeriesView {
            uid,
            number: rec.series_number.map(|n| n.to_string()).unwrap_or_default(),
            modality: rec.modality,
            description: rec.description,
            body_part: rec.body_part,
            instances: rec.instances,
            first_sop: inst.first().map(|i| i.0.clone()),
        })
        .collect::<Vec<SeriesView>>();
    let mut burn_in: Vec<&str> = series
        .iter()
        .map(|s| s.modality.as_str())
        .filter(|m| pacsbox_archive::deid::BURN_IN_MODALITIES.contains(m))
        .collect();
    burn_in.sort_unstable();
    burn_in.dedup();
    let burn_in = burn_in.join(", ");
    super::form_page(
        &StudyPage {
            nav: nav(s),
            t: s.t(),
            st,
            referring,
            series,
            edit: crate::edit::forms(web, s, uid)?,
            error: error.to_owned(),
            message: message.to_owned(),
            anon_error: anon_error.to_owned(),
            burn_in,
            send_to: super::forwarding::send_targets(web),
            exam: web
                .archive
                .index()
                .exam_of_study(uid)?
                .map(|e| format!("{} ({})", e.accession, e.state.name()))
                .unwrap_or_default(),
            performed: web
                .archive
                .index()
                .mpps_of_study(uid)?
                .iter()
                .map(super::performed_text)
                .collect(),
            report: super::report::section(web, s, uid, report)?,
            key_images: web.archive.key_images(uid)?.all.len(),
            ohif: crate::ohif::available(web),
        },
        if error.is_empty() { anon_error } else { error },
    )
}

#[derive(Serialize)]
struct SeriesJson {
    uid: String,
    number: Option<i32>,
    modality: String,
    description: String,
    instances: Vec<InstanceJson>,
}

#[derive(Serialize)]
struct InstanceJson {
    sop: String,
    number: Option<i32>,
}

pub fn series_json(web: &Web, study_uid: &str) -> Result<Reply, HttpError> {
    if web.archive.index().study(study_uid)?.is_none() {
        return Err(HttpError::NotFound);
    }
    let list: Vec<SeriesJson> = series_of(web, study_uid)?
        .into_iter()
        .map(|(uid, rec, inst)| SeriesJson {
            uid,
            number: rec.series_number,
            modality: rec.modality,
            description: rec.description,
            instances: inst
                .into_iter()
                .map(|(sop, number)| InstanceJson { sop, number })
                .collect(),
        })
        .collect();
    Ok(Reply::json(&list))
}

#[derive(Serialize)]
struct PriorJson {
    uid: String,
    date: String,
    time: String,
    modalities: Vec<String>,
    description: String,
    accession: String,
    series: u64,
    instances: u64,
}

/// The patient's other studies, newest first, for the viewer's "Compare": the index files a
/// patient under its Patient ID (the issuer is one per patient key, `Archive::patient_issuer`),
/// so these are the studies of the same ID and issuer. Each opens through `/viewer/{uid}`,
/// with that page's checks and audit record.
pub fn priors_json(web: &Web, study_uid: &str) -> Result<Reply, HttpError> {
    let index = web.archive.index();
    let st = index.study(study_uid)?.ok_or(HttpError::NotFound)?;
    let list: Vec<PriorJson> = index
        .studies_of_patient(&st.patient_key)?
        .into_iter()
        .filter(|(uid, _)| uid != study_uid)
        .map(|(uid, r)| PriorJson {
            uid,
            date: r.study_date,
            time: r.study_time,
            modalities: r.modalities,
            description: r.description,
            accession: r.accession_number,
            series: r.series,
            instances: r.instances,
        })
        .collect();
    Ok(Reply::json(&list))
}

pub fn study_zip(web: &Web, uid: &str) -> Result<Reply, HttpError> {
    let instances = crate::study_zip::instances_of_study(&web.archive, uid)?;
    if instances.is_empty() {
        return Err(HttpError::NotFound);
    }
    let body = crate::study_zip::stream(web.archive.clone(), instances)?;
    Ok(Reply::stream("application/zip", body).header(
        "Content-Disposition",
        format!("attachment; filename=\"study-{uid}.zip\""),
    ))
}
