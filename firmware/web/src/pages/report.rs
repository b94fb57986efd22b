//! The physician's report on the study page: the section (signed versions, the draft, the
//! form for users with `Right::Report`), its post (save a draft, sign or amend — the archive
//! stores the SR, `pacsbox_archive::report`), and the printable view of one version. The
//! audit records (`report.draft`, `report.sign`, `report.amend`) are written here because
//! whether a signature amended is known only here.

use askama::Template;
use pacsbox_archive::accounts::Right;
use pacsbox_archive::report::{Draft, ReportError, ReportText, ReportVersion};
use pacsbox_audit::Event;

use super::{Nav, nav, page};
use crate::Web;
use crate::auth::Session;
use crate::reply::{HttpError, Reply, Req};

/// The study page's report section.
pub struct ReportSection {
    /// Signed versions, newest first.
    pub versions: Vec<ReportVersion>,
    pub draft: Option<Draft>,
    pub may_report: bool,
    /// The form's text: what was posted (after an error), else the draft, else the latest
    /// signed version (an amendment starts from it).
    pub text: ReportText,
    pub state: &'static str,
    pub error: String,
}

pub(super) fn section(
    web: &Web,
    s: &Session,
    uid: &str,
    posted: Option<(ReportText, String)>,
) -> Result<ReportSection, HttpError> {
    let archive = &web.archive;
    let mut versions = archive.reports(uid)?;
    versions.reverse();
    let draft = archive.report_draft(uid)?;
    let state = archive.report_state(uid)?.as_str();
    let (text, error) = match posted {
        Some(p) => p,
        None => (
            draft
                .as_ref()
                .map(|d| d.text.clone())
                .or_else(|| versions.first().map(|v| v.text.clone()))
                .unwrap_or_default(),
            String::new(),
        ),
    };
    Ok(ReportSection {
        versions,
        draft,
        may_report: s.group.allows(Right::Report),
        text,
        state,
        error,
    })
}

fn record(
    web: &Web,
    s: &Session,
    req: &Req,
    uid: &str,
    action: &str,
    outcome: &str,
    detail: String,
) {
    let patient = match web.archive.index().study(uid) {
        Ok(Some(st)) => format!("{} ({})", st.patient_id, st.patient_name),
        _ => String::new(),
    };
    web.audit.record(
        Event::new(action, &s.user, &req.client)
            .study(uid)
            .patient(patient)
            .outcome(outcome)
            .detail(detail),
    );
}

/// `POST /study/{uid}/report`: `action` = `draft` or `sign`, with `findings` and `impression`.
pub fn report_post(web: &Web, s: &Session, req: &Req, uid: &str) -> Result<Reply, HttpError> {
    let text = ReportText::cleaned(req.field("findings"), req.field("impression"));
    let back = format!("/study/{uid}#report");
    match req.field("action") {
        "draft" => {
            let draft = Draft {
                text: text.clone(),
                author: s.user.clone(),
                saved_unix: pacsbox_audit::now_unix(),
            };
            match web.archive.save_report_draft(uid, &draft) {
                Ok(()) => {
                    record(web, s, req, uid, "report.draft", "ok", String::new());
                    Ok(Reply::redirect(&back))
                }
                Err(e) => refused(web, s, req, uid, "report.draft", text, e),
            }
        }
        "sign" => match web.archive.sign_report(uid, &text, &s.user) {
            Ok(signed) => {
                let (action, detail) = match &signed.amends {
                    Some(prev) => ("report.amend", format!("{} amends {prev}", signed.sop_uid)),
                    None => ("report.sign", signed.sop_uid.clone()),
                };
                record(web, s, req, uid, action, "ok", detail);
                Ok(Reply::redirect(&back))
            }
            Err(e) => refused(web, s, req, uid, "report.sign", text, e),
        },
        _ => Err(HttpError::BadRequest("action is draft or sign".into())),
    }
}

/// A refused draft or signature: recorded, and the study page again with the text and why.
fn refused(
    web: &Web,
    s: &Session,
    req: &Req,
    uid: &str,
    action: &str,
    text: ReportText,
    e: ReportError,
) -> Result<Reply, HttpError> {
    let outcome = match &e {
        ReportError::Empty | ReportError::TooLong => format!("refused: {e}"),
        _ => format!("failed: {e}"),
    };
    record(web, s, req, uid, action, &outcome, String::new());
    match e {
        ReportError::NoStudy => Err(HttpError::NotFound),
        ReportError::Empty | ReportError::TooLong => {
            super::study::study_page_report_error(web, s, uid, text, &e.to_string())
        }
        other => Err(HttpError::Internal(other.to_string())),
    }
}

#[derive(Template)]
#[template(path = "report.html")]
struct PrintPage {
    nav: Option<Nav>,
    t: &'static crate::i18n::Strings,
    st: crate::search::StudyRow,
    /// None: no signed report yet.
    v: Option<ReportVersion>,
    /// Later versions exist: this one was amended.
    superseded: bool,
}

/// `GET /study/{uid}/report[?sop=…]`: one signed version (default the latest, or a page
/// saying there is none yet), to print; 404 for a version not in the study.
pub fn report_print(web: &Web, s: &Session, req: &Req, uid: &str) -> Result<Reply, HttpError> {
    let (st, _) = super::study::study_row(web, uid)?;
    let versions = web.archive.reports(uid)?;
    let wanted = req.param("sop");
    let pos = if wanted.is_empty() {
        versions.len().checked_sub(1)
    } else {
        Some(
            versions
                .iter()
                .position(|v| v.sop_uid == wanted)
                .ok_or(HttpError::NotFound)?,
        )
    };
    let superseded = pos.is_some_and(|p| p + 1 < versions.len());
    let v = pos.and_then(|p| versions.into_iter().nth(p));
    page(&PrintPage {
        nav: nav(s),
        t: s.t(),
        st,
        v,
        superseded,
    })
}
