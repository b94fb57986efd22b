//! The front desk's pages: Register (find the patient in the archive or type a new one, then
//! schedule an exam for a modality) and Worklist (a day's exams with their state, refreshed by
//! `worklist.js` from `/worklist.json`, cancel or discontinue). Any logged-in user may use them
//! (`Right::View`): reception staff register patients. Exams live in the archive
//! (`pacsbox_archive::worklist`); modalities read them over DICOM (Modality Worklist).

use askama::Template;
use pacsbox_archive::query::{Attr, Level, Matcher, Query, Row};
use pacsbox_archive::worklist::{Exam, ExamState, Mpps, NewExam, WorklistError};
use pacsbox_audit::Event;
use serde::Serialize;

use super::{Nav, form_page, nav, page};
use crate::Web;
use crate::auth::Session;
use crate::reply::{HttpError, Reply, Req};
use crate::search::{local_today, show_date, show_name, show_time};

/// A patient found in the archive, to register an exam for.
struct PatientHit {
    id: String,
    name: String,
    birth: String,
    sex: String,
}

/// The register form's values (shown again after an error).
#[derive(Default)]
struct RegisterForm {
    patient_id: String,
    issuer: String,
    family: String,
    given: String,
    hanja_family: String,
    hanja_given: String,
    hangul_family: String,
    hangul_given: String,
    birth: String,
    sex: String,
    modality: String,
    station_ae: String,
    date: String,
    time: String,
    description: String,
    accession: String,
    referring: String,
    performing: String,
}

#[derive(Template)]
#[template(path = "register.html")]
struct RegisterPage<'a> {
    nav: Option<Nav>,
    t: &'static crate::i18n::Strings,
    csrf: &'a str,
    q: String,
    hits: Vec<PatientHit>,
    f: RegisterForm,
    error: &'a str,
}

/// `YYYY-MM-DD` (a date input) → `YYYYMMDD`.
fn da(s: &str) -> String {
    s.trim().chars().filter(|c| *c != '-').collect()
}

/// `HH:MM` (a time input) → `HHMM`.
fn tm(s: &str) -> String {
    s.trim().chars().filter(|c| *c != ':').collect()
}

fn today_da() -> String {
    let d = local_today();
    format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day())
}

/// One PN group from family and given names ('' when both are empty).
fn group(family: &str, given: &str) -> String {
    let (f, g) = (family.trim(), given.trim());
    if g.is_empty() {
        f.to_owned()
    } else {
        format!("{f}^{g}")
    }
}

/// The PN of the form: Latin = Hanja (ideographic) = Hangul (phonetic), as PS3.5 Annex I's
/// Korean example writes it; trailing empty groups dropped.
fn person_name(f: &RegisterForm) -> String {
    let groups = [
        group(&f.family, &f.given),
        group(&f.hanja_family, &f.hanja_given),
        group(&f.hangul_family, &f.hangul_given),
    ];
    let mut pn = groups.join("=");
    while pn.ends_with('=') {
        pn.pop();
    }
    pn
}

fn split_name(pn: &str, f: &mut RegisterForm) {
    let mut groups = pn.split('=');
    let parts = |g: Option<&str>| {
        let mut c = g.unwrap_or("").split('^');
        (
            c.next().unwrap_or("").to_owned(),
            c.next().unwrap_or("").to_owned(),
        )
    };
    (f.family, f.given) = parts(groups.next());
    (f.hanja_family, f.hanja_given) = parts(groups.next());
    (f.hangul_family, f.hangul_given) = parts(groups.next());
}

fn patients(web: &Web, filters: Vec<(Attr, Matcher)>) -> Result<Vec<PatientHit>, HttpError> {
    let mut hits = Vec::new();
    web.archive.index().query(
        &Query {
            level: Level::Patient,
            filters,
        },
        |r: Row| {
            let v = |a| r.value(a).unwrap_or_default();
            hits.push(PatientHit {
                id: v(Attr::PatientId),
                name: v(Attr::PatientName),
                birth: v(Attr::PatientBirthDate),
                sex: v(Attr::PatientSex),
            });
            if hits.len() >= 50 {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        },
    )?;
    Ok(hits)
}

pub fn register_page(web: &Web, s: &Session, req: &Req) -> Result<Reply, HttpError> {
    let q = req.query.get("q").cloned().unwrap_or_default();
    let mut f = RegisterForm {
        date: show_date(&today_da()),
        ..RegisterForm::default()
    };
    let mut hits = Vec::new();
    if !q.trim().is_empty() {
        let pattern = format!("{}*", q.trim().trim_end_matches('*'));
        hits = patients(
            web,
            vec![(Attr::PatientName, Matcher::Romanised(pattern.clone()))],
        )?;
        for h in patients(web, vec![(Attr::PatientId, Matcher::Wildcard(pattern))])? {
            if !hits.iter().any(|x| x.id == h.id) {
                hits.push(h);
            }
        }
    }
    if let Some(id) = req.query.get("patient").filter(|p| !p.is_empty()) {
        let found = patients(web, vec![(Attr::PatientId, Matcher::Single(id.clone()))])?;
        if let Some(p) = found.first() {
            f.patient_id = p.id.clone();
            split_name(&p.name, &mut f);
            f.birth = show_date(&p.birth);
            f.sex = p.sex.clone();
        }
    }
    let hits = hits
        .into_iter()
        .map(|h| PatientHit {
            name: show_name(&h.name),
            birth: show_date(&h.birth),
            ..h
        })
        .collect();
    page(&RegisterPage {
        nav: nav(s),
        t: s.t(),
        csrf: &s.csrf,
        q,
        hits,
        f,
        error: "",
    })
}

fn form_of(req: &Req) -> RegisterForm {
    let v = |k: &str| req.field(k).trim().to_owned();
    RegisterForm {
        patient_id: v("patient_id"),
        issuer: v("issuer"),
        family: v("family"),
        given: v("given"),
        hanja_family: v("hanja_family"),
        hanja_given: v("hanja_given"),
        hangul_family: v("hangul_family"),
        hangul_given: v("hangul_given"),
        birth: v("birth"),
        sex: v("sex"),
        modality: v("modality").to_ascii_uppercase(),
        station_ae: v("station_ae"),
        date: v("date"),
        time: v("time"),
        description: v("description"),
        accession: v("accession"),
        referring: v("referring"),
        performing: v("performing"),
    }
}

pub fn register_post(web: &Web, s: &Session, req: &Req) -> Result<Reply, HttpError> {
    let f = form_of(req);
    let new = NewExam {
        patient_id: f.patient_id.clone(),
        issuer: f.issuer.clone(),
        patient_name: person_name(&f),
        birth_date: da(&f.birth),
        sex: f.sex.clone(),
        accession: f.accession.clone(),
        procedure_description: f.description.clone(),
        modality: f.modality.clone(),
        station_ae: f.station_ae.clone(),
        date: da(&f.date),
        time: tm(&f.time),
        referring_physician: f.referring.clone(),
        performing_physician: f.performing.clone(),
        ..NewExam::default()
    };
    let event = Event::new("exam.schedule", &s.user, &req.client)
        .patient(format!("{} ({})", new.patient_id, new.patient_name));
    match web.archive.index().schedule_exam(
        &new,
        crate::auth::unix_seconds(std::time::SystemTime::now()),
    ) {
        Ok(exam) => {
            web.audit.record(
                event
                    .study(&exam.study_uid)
                    .detail(format!(
                        "accession {} {} {} {} station {}",
                        exam.accession,
                        exam.modality,
                        exam.date,
                        exam.time,
                        if exam.station_ae.is_empty() {
                            "any"
                        } else {
                            &exam.station_ae
                        }
                    ))
                    .outcome("ok"),
            );
            Ok(Reply::redirect(&format!(
                "/worklist?date={}&new={}",
                show_date(&exam.date),
                form_urlencoded::byte_serialize(exam.accession.as_bytes()).collect::<String>()
            )))
        }
        Err(e @ (WorklistError::Invalid(_) | WorklistError::DuplicateAccession(_))) => {
            web.audit.record(event.outcome(format!("refused: {e}")));
            form_page(
                &RegisterPage {
                    nav: nav(s),
                    t: s.t(),
                    csrf: &s.csrf,
                    q: String::new(),
                    hits: Vec::new(),
                    f,
                    error: &e.to_string(),
                },
                &e.to_string(),
            )
        }
        Err(e) => {
            web.audit.record(event.outcome(format!("failed: {e}")));
            Err(HttpError::Internal(e.to_string()))
        }
    }
}

/// One exam as the worklist page and its JSON show it.
#[derive(Serialize)]
pub struct ExamRow {
    accession: String,
    patient_id: String,
    patient_name: String,
    birth_date: String,
    sex: String,
    modality: String,
    station: String,
    date: String,
    time: String,
    description: String,
    referring: String,
    state: &'static str,
    study_uid: String,
    has_images: bool,
    /// What the modality said it performed (MPPS), in words.
    performed: String,
    /// The person may cancel (scheduled) or discontinue (in progress) it.
    can_stop: bool,
}

/// An MPPS in words: status, series and images reported.
pub fn performed_text(m: &Mpps) -> String {
    let images: usize = m.attrs.series.iter().map(|s| s.images.len()).sum();
    let mut t = format!(
        "{} by {}: {} series, {} image(s)",
        m.attrs.status,
        m.calling_ae,
        m.attrs.series.len(),
        images
    );
    if !m.attrs.description.is_empty() {
        t.push_str(&format!(" — {}", m.attrs.description));
    }
    t
}

fn row(web: &Web, e: Exam) -> ExamRow {
    let index = web.archive.index();
    let has_images = index.exam_has_images(&e).unwrap_or(false);
    let performed = match &e.mpps_uid {
        u if u.is_empty() => String::new(),
        u => index
            .mpps(u)
            .ok()
            .flatten()
            .map(|m| performed_text(&m))
            .unwrap_or_default(),
    };
    ExamRow {
        patient_name: show_name(&e.patient_name),
        birth_date: show_date(&e.birth_date),
        station: if e.station_ae.is_empty() {
            "any".to_owned()
        } else {
            e.station_ae
        },
        date: show_date(&e.date),
        time: show_time(&e.time),
        description: e.procedure_description,
        referring: show_name(&e.referring_physician),
        state: e.state.name(),
        can_stop: matches!(e.state, ExamState::Scheduled | ExamState::InProgress),
        accession: e.accession,
        patient_id: e.patient_id,
        sex: e.sex,
        modality: e.modality,
        study_uid: e.study_uid,
        has_images,
        performed,
    }
}

fn day_of(req: &Req) -> Result<String, HttpError> {
    let d = da(req.query.get("date").map(String::as_str).unwrap_or(""));
    if d.is_empty() {
        return Ok(today_da());
    }
    if d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()) {
        Ok(d)
    } else {
        Err(HttpError::BadRequest("date: YYYY-MM-DD".into()))
    }
}

fn rows_of(web: &Web, day: &str) -> Result<Vec<ExamRow>, HttpError> {
    let exams = web
        .archive
        .index()
        .exams_between(day, day)
        .map_err(HttpError::from)?;
    Ok(exams.into_iter().map(|e| row(web, e)).collect())
}

#[derive(Template)]
#[template(path = "worklist.html")]
struct WorklistPage<'a> {
    nav: Option<Nav>,
    t: &'static crate::i18n::Strings,
    csrf: &'a str,
    day: String,
    rows: Vec<ExamRow>,
    error: &'a str,
    message: String,
}

pub fn worklist_page(web: &Web, s: &Session, req: &Req, error: &str) -> Result<Reply, HttpError> {
    let day = day_of(req)?;
    let message = match req.query.get("new") {
        Some(a) if !a.is_empty() => crate::i18n::fill(s.t().msg_exam_scheduled, &[a.to_owned()]),
        _ => String::new(),
    };
    form_page(
        &WorklistPage {
            nav: nav(s),
            t: s.t(),
            csrf: &s.csrf,
            rows: rows_of(web, &day)?,
            day: show_date(&day),
            error,
            message,
        },
        error,
    )
}

#[derive(Serialize)]
struct WorklistJson {
    date: String,
    exams: Vec<ExamRow>,
}

pub fn worklist_json(web: &Web, req: &Req) -> Result<Reply, HttpError> {
    let day = day_of(req)?;
    Ok(Reply::json(&WorklistJson {
        exams: rows_of(web, &day)?,
        date: show_date(&day),
    })
    .header("Cache-Control", "no-store"))
}

/// Cancel (a scheduled exam) or discontinue (one in progress).
pub fn worklist_post(web: &Web, s: &Session, req: &Req) -> Result<Reply, HttpError> {
    let accession = req.field("accession").trim();
    if accession.is_empty() {
        return Err(HttpError::BadRequest("which exam? (accession)".into()));
    }
    let index = web.archive.index();
    let exam = index
        .exam(accession)
        .map_err(HttpError::from)?
        .ok_or(HttpError::NotFound)?;
    let to = match exam.state {
        ExamState::InProgress => ExamState::Discontinued,
        _ => ExamState::Cancelled,
    };
    let event = Event::new("exam.cancel", &s.user, &req.client)
        .patient(format!("{} ({})", exam.patient_id, exam.patient_name))
        .study(&exam.study_uid);
    let now = crate::auth::unix_seconds(std::time::SystemTime::now());
    let day = show_date(&exam.date);
    match index.set_exam_state(accession, to, now) {
        Ok(e) => {
            web.audit.record(
                event
                    .detail(format!("accession {accession} -> {}", e.state.name()))
                    .outcome("ok"),
            );
            Ok(Reply::redirect(&format!("/worklist?date={day}")))
        }
        Err(e @ WorklistError::WrongState(..)) => {
            web.audit.record(
                event
                    .detail(format!("accession {accession}"))
                    .outcome(format!("refused: {e}")),
            );
            let mut r = req.clone();
            r.query.insert("date".into(), day);
            worklist_page(web, s, &r, &e.to_string())
        }
        Err(e) => Err(HttpError::Internal(e.to_string())),
    }
}
