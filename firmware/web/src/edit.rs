//! Corrections from the web page (editors and admins): the study page's "Edit patient" (issuer
//! included), "Edit study", "Move to patient…", "Merge patient into…" and "Delete" forms, and the operations history
//! (`/admin/operations`) with its Undo buttons and, for admins, "Purge trash now". The archive
//! does the work ([`pacsbox_archive::Archive::operate`]); each form carries the version of the
//! data it showed, so a second editor's change in between is refused as "changed meanwhile".
//! Every operation, done or refused, is written to the audit trail here (`docs/audit.md`).

use askama::Template;
use pacsbox_archive::accounts::Right;
use pacsbox_archive::edit::{
    Actor, EditError, OperationSummary, PatientFields, Request, StudyFields, Target,
};

use crate::Web;
use crate::auth::Session;
use crate::pages::Nav;
use crate::reply::{HttpError, Reply, Req};

/// The edit forms of the study page, filled with the values stored now.
pub struct EditForms {
    pub csrf: String,
    pub patient_version: String,
    pub study_version: String,
    pub name: String,
    pub id: String,
    pub issuer: String,
    pub birth_date: String,
    pub sex: String,
    pub accession: String,
    pub description: String,
    pub referring: String,
    pub date: String,
    pub time: String,
    pub study_id: String,
}

/// The forms for `uid`, or None when the user may not edit.
pub fn forms(web: &Web, s: &Session, uid: &str) -> Result<Option<EditForms>, HttpError> {
    if !s.group.allows(Right::Edit) {
        return Ok(None);
    }
    let index = web.archive.index();
    let Some(st) = index.study(uid)? else {
        return Err(HttpError::NotFound);
    };
    let p = index.patient(&st.patient_key)?.unwrap_or_default();
    let version = |t: Target| {
        web.archive
            .edit_version(&t)
            .map(|v| v.to_string())
            .map_err(|e| HttpError::Internal(e.to_string()))
    };
    Ok(Some(EditForms {
        csrf: s.csrf.clone(),
        patient_version: version(Target::Patient(st.patient_key.clone()))?,
        study_version: version(Target::Study(uid.to_owned()))?,
        name: p.name,
        issuer: web
            .archive
            .patient_issuer(&st.patient_key)
            .map_err(|e| HttpError::Internal(e.to_string()))?,
        id: st.patient_id,
        birth_date: p.birth_date,
        sex: p.sex,
        accession: st.accession_number,
        description: st.description,
        referring: st.referring_physician,
        date: st.study_date,
        time: st.study_time,
        study_id: st.study_id,
    }))
}

/// A form field as an edit: unchanged (None) when it is what the form showed.
fn changed(req: &Req, field: &str, shown: &str) -> Option<String> {
    let v = req.field(field).trim();
    (v != shown.trim()).then(|| v.to_owned())
}

/// POST `/study/{uid}/edit`: `action` = `patient`, `study`, `move`, `merge` (this study's
/// patient into the patient `into`), `split` (with `series`) or `delete`.
pub fn study_post(web: &Web, s: &Session, req: &Req, uid: &str) -> Result<Reply, HttpError> {
    let index = web.archive.index();
    let st = index.study(uid)?.ok_or(HttpError::NotFound)?;
    let p = index.patient(&st.patient_key)?.unwrap_or_default();
    let version = |field: &str| req.field(field).parse::<u64>().ok();
    let (request, expect) = match req.field("action") {
        "patient" => (
            Request::EditPatient {
                patient: st.patient_key.clone(),
                fields: PatientFields {
                    name: changed(req, "name", &p.name),
                    id: changed(req, "id", &st.patient_id),
                    issuer: {
                        let shown = web
                            .archive
                            .patient_issuer(&st.patient_key)
                            .map_err(|e| HttpError::Internal(e.to_string()))?;
                        changed(req, "issuer", &shown)
                    },
                    birth_date: changed(req, "birth_date", &p.birth_date),
                    sex: changed(req, "sex", &p.sex),
                },
            },
            version("version"),
        ),
        "study" => (
            Request::EditStudy {
                study: uid.to_owned(),
                fields: StudyFields {
                    accession: changed(req, "accession", &st.accession_number),
                    description: changed(req, "description", &st.description),
                    referring_physician: changed(req, "referring", &st.referring_physician),
                    date: changed(req, "date", &st.study_date),
                    time: changed(req, "time", &st.study_time),
                    study_id: changed(req, "study_id", &st.study_id),
                },
            },
            version("version"),
        ),
        "move" => (
            Request::MoveStudy {
                study: uid.to_owned(),
                to_patient: req.field("to_patient").trim().to_owned(),
            },
            version("version"),
        ),
        "merge" => (
            Request::Merge {
                from: st.patient_key.clone(),
                into: req.field("into").trim().to_owned(),
            },
            version("version"),
        ),
        "split" => (
            Request::SplitSeries {
                series: crate::reply::check_uid(req.field("series"))?.to_owned(),
                to_patient: Some(req.field("to_patient").trim())
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned),
            },
            version("version"),
        ),
        "delete" if req.field("confirm") == "yes" => (
            Request::Delete(Target::Study(uid.to_owned())),
            version("version"),
        ),
        "delete" => {
            return crate::pages::study_page_with(
                web,
                s,
                uid,
                "Tick \u{201c}yes, delete\u{201d} to delete the study.",
                "",
            );
        }
        other => return Err(HttpError::BadRequest(format!("no action {other:?}"))),
    };
    match run(web, s, req, request, expect) {
        Ok(op) if op.kind == "delete" => Ok(Reply::redirect(&format!(
            "/admin/operations?done={}",
            op.id
        ))),
        Ok(op) => crate::pages::study_page_with(
            web,
            s,
            uid,
            "",
            &format!("Operation {}: {} instance(s) changed.", op.id, op.instances),
        ),
        Err(e) => refused(web, s, uid, e),
    }
}

fn refused(web: &Web, s: &Session, uid: &str, e: EditError) -> Result<Reply, HttpError> {
    match e {
        EditError::Io { .. } | EditError::Index(_) | EditError::Rewrite { .. } => {
            Err(HttpError::Internal(e.to_string()))
        }
        e => crate::pages::study_page_with(web, s, uid, &e.to_string(), ""),
    }
}

/// Runs one operation as the session's user and audits it, done or refused.
fn run(
    web: &Web,
    s: &Session,
    req: &Req,
    request: Request,
    expect: Option<u64>,
) -> Result<OperationSummary, EditError> {
    let actor = Actor {
        user: s.user.clone(),
        address: req.client.clone(),
    };
    let result = web.archive.operate(request.clone(), actor, expect);
    web.audit.record(match &result {
        Ok(op) => crate::audit::operation_event(op, &s.user, &req.client),
        Err(e) => crate::audit::operation_refused_event(&request, &s.user, &req.client, e),
    });
    if let Ok(op) = &result {
        tracing::info!(
            user = s.user,
            operation = op.id,
            kind = op.kind,
            target = op.target,
            "operation done"
        );
    }
    result
}

struct OpRow {
    id: u64,
    when: String,
    user: String,
    kind: &'static str,
    target: String,
    changes: String,
    instances: u64,
    state: String,
    may_undo: bool,
    study: String,
}

#[derive(Template)]
#[template(path = "operations.html")]
struct OperationsPage<'a> {
    nav: Option<Nav>,
    t: &'static crate::i18n::Strings,
    csrf: &'a str,
    rows: Vec<OpRow>,
    is_admin: bool,
    error: &'a str,
    message: &'a str,
}

/// GET `/admin/operations`: the newest 200 operations.
pub fn operations_page(
    web: &Web,
    s: &Session,
    error: &str,
    message: &str,
) -> Result<Reply, HttpError> {
    let ops = web
        .archive
        .operations(200)
        .map_err(|e| HttpError::Internal(e.to_string()))?;
    let rows = ops
        .into_iter()
        .map(|o| OpRow {
            id: o.id,
            when: crate::conflicts::utc(o.unix),
            user: o.user,
            kind: o.kind,
            changes: o
                .values
                .iter()
                .map(|(n, b, a)| format!("{n}: {b} \u{2192} {a}"))
                .collect::<Vec<_>>()
                .join("; "),
            instances: o.instances,
            state: match (o.undone_by, o.purged) {
                (Some(by), _) => format!("undone by {by}"),
                (None, true) => "trash purged".into(),
                (None, false) => String::new(),
            },
            may_undo: o.undone_by.is_none() && !o.purged,
            study: o.studies.first().cloned().unwrap_or_default(),
            target: o.target,
        })
        .collect();
    crate::pages::form_page(
        &OperationsPage {
            nav: crate::pages::nav(s),
            t: s.t(),
            csrf: &s.csrf,
            rows,
            is_admin: s.group.allows(Right::Administer),
            error,
            message,
        },
        error,
    )
}

/// POST `/admin/operations`: `action` = `undo` (with `op`) or, admins only, `purge`.
pub fn operations_post(web: &Web, s: &Session, req: &Req) -> Result<Reply, HttpError> {
    match req.field("action") {
        "undo" => {
            let id: u64 = req
                .field("op")
                .parse()
                .map_err(|_| HttpError::BadRequest("no operation number".into()))?;
            match run(web, s, req, Request::Undo(id), None) {
                Ok(op) => operations_page(
                    web,
                    s,
                    "",
                    &format!("Operation {id} undone (operation {}).", op.id),
                ),
                Err(
                    e @ (EditError::Io { .. } | EditError::Index(_) | EditError::Rewrite { .. }),
                ) => Err(HttpError::Internal(e.to_string())),
                Err(e) => operations_page(web, s, &e.to_string(), ""),
            }
        }
        "purge" => {
            if !s.group.allows(Right::Administer) {
                return Err(HttpError::Forbidden);
            }
            let report = web
                .archive
                .purge_trash(Some(0))
                .map_err(|e| HttpError::Internal(e.to_string()))?;
            web.audit
                .record(crate::audit::purge_event(&report, &s.user, &req.client));
            operations_page(
                web,
                s,
                "",
                &format!(
                    "Trash purged: {} operation(s), {} file(s), {} bytes freed.",
                    report.operations, report.files, report.bytes
                ),
            )
        }
        other => Err(HttpError::BadRequest(format!("no action {other:?}"))),
    }
}
