//! The clinic's other PACS (`[fetch] from`): a study search there (C-FIND, through
//! [`crate::RemotePacs`]), "Fetch" to pull a study here (C-MOVE to this box), and the fetches
//! with their progress. Any logged-in user may (`Right::View`, like "Send to…"): pulling a
//! study in shows no more than searching here does, and both are audited.

use askama::Template;
use pacsbox_archive::remote::{FetchJob, FetchState, RemoteQuery};

use super::{Nav, nav, page};
use crate::Web;
use crate::auth::Session;
use crate::reply::{HttpError, Reply, Req, check_uid};
use crate::search::{show_date, show_name};

/// Studies listed at most per search: a person reads a page, not the hospital's archive.
const LIMIT: usize = 200;

struct RemoteRow {
    study_uid: String,
    patient_name: String,
    patient_id: String,
    birth_date: String,
    study_date: String,
    modalities: String,
    description: String,
    instances: String,
    /// Already on this box: a link instead of "Fetch".
    here: bool,
}

#[derive(Template)]
#[template(path = "remote.html")]
struct RemotePage {
    nav: Option<Nav>,
    t: &'static crate::i18n::Strings,
    peers: Vec<String>,
    peer: String,
    name: String,
    id: String,
    date: String,
    accession: String,
    modality: String,
    rows: Vec<RemoteRow>,
    searched: bool,
    error: String,
}

fn peers(web: &Web) -> Vec<String> {
    web.remote.as_ref().map(|r| r.peers()).unwrap_or_default()
}

/// The remote and one of its peers named by a request, or 400.
fn peer_of<'a>(web: &'a Web, peer: &str) -> Result<&'a dyn crate::RemotePacs, HttpError> {
    match web.remote.as_deref() {
        Some(r) if r.peers().iter().any(|p| p == peer) => Ok(r),
        _ => Err(HttpError::BadRequest(
            "not a PACS to search or fetch from".into(),
        )),
    }
}

/// Without `[fetch] from` the page says how to set one up.
pub fn remote_page(web: &Web, s: &Session, req: &Req) -> Result<Reply, HttpError> {
    let peers = peers(web);
    let peer = req.param("peer").trim().to_owned();
    let q = RemoteQuery {
        patient_name: req.param("name").trim().to_owned(),
        patient_id: req.param("id").trim().to_owned(),
        // The form's dates are YYYY-MM-DD; C-FIND wants DA, a range as `from-to`.
        study_date: req.param("date").trim().replace('-', ""),
        accession: req.param("accession").trim().to_owned(),
        modality: req.param("modality").trim().to_uppercase(),
        study_uid: String::new(),
    };
    let mut p = RemotePage {
        nav: nav(s),
        t: s.t(),
        name: q.patient_name.clone(),
        id: q.patient_id.clone(),
        date: req.param("date").trim().to_owned(),
        accession: q.accession.clone(),
        modality: q.modality.clone(),
        rows: Vec::new(),
        searched: false,
        error: String::new(),
        peer: peer.clone(),
        peers,
    };
    if peer.is_empty() {
        return page(&p);
    }
    let r = peer_of(web, &peer)?;
    p.searched = true;
    match r.find(&peer, &q) {
        Ok(studies) => {
            for st in studies.into_iter().take(LIMIT) {
                let here = check_uid(&st.study_uid).is_ok()
                    && web.archive.index().study(&st.study_uid)?.is_some();
                p.rows.push(RemoteRow {
                    patient_name: show_name(&st.patient_name),
                    patient_id: st.patient_id,
                    birth_date: show_date(&st.birth_date),
                    study_date: show_date(&st.study_date),
                    modalities: st.modalities.replace('\\', " "),
                    description: st.description,
                    instances: st.instances.map(|n| n.to_string()).unwrap_or_default(),
                    here,
                    study_uid: st.study_uid,
                });
            }
        }
        Err(e) => p.error = e,
    }
    let mut reply = page(&p)?;
    if !p.error.is_empty() {
        reply.status = 502;
    }
    Ok(reply)
}

/// "Fetch": starts the C-MOVE and shows the fetches; "View" (`then=view`) does the same and
/// opens the viewer once the study is here.
pub fn fetch_post(web: &Web, s: &Session, req: &Req) -> Result<Reply, HttpError> {
    let peer = req.field("peer").trim();
    let r = peer_of(web, peer)?;
    let study = check_uid(req.field("study").trim())?;
    r.fetch(peer, study, &format!("web:{}", s.user))
        .map_err(HttpError::BadRequest)?;
    if req.field("then") == "view" {
        return Ok(Reply::redirect(&format!("/remote/fetches?view={study}")));
    }
    Ok(Reply::redirect("/remote/fetches"))
}

struct FetchRow {
    job: FetchJob,
    started: String,
    state: &'static str,
    here: bool,
}

#[derive(Template)]
#[template(path = "fetches.html")]
struct FetchesPage {
    nav: Option<Nav>,
    t: &'static crate::i18n::Strings,
    rows: Vec<FetchRow>,
    running: bool,
    /// The study the viewer opens once its fetch is done.
    view: String,
}

pub fn fetches_page(web: &Web, s: &Session, req: &Req) -> Result<Reply, HttpError> {
    let jobs = fetches(web);
    let view = match req.param("view").trim() {
        "" => String::new(),
        v => check_uid(v)?.to_owned(),
    };
    if !view.is_empty()
        && let Some(job) = jobs.iter().find(|j| j.study_uid == view)
        && job.state == FetchState::Done
    {
        return Ok(Reply::redirect(&format!("/viewer/{view}")));
    }
    let mut rows = Vec::new();
    for job in jobs {
        rows.push(FetchRow {
            started: super::status::local_time(job.started_unix),
            state: match job.state {
                FetchState::Running => "fetching",
                FetchState::Done => "done",
                FetchState::Failed => "failed",
            },
            here: web.archive.index().study(&job.study_uid)?.is_some(),
            job,
        });
    }
    page(&FetchesPage {
        view,
        nav: nav(s),
        t: s.t(),
        running: rows.iter().any(|r| r.job.state == FetchState::Running),
        rows,
    })
}

fn fetches(web: &Web) -> Vec<FetchJob> {
    web.remote.as_ref().map(|r| r.fetches()).unwrap_or_default()
}

pub fn fetches_json(web: &Web) -> Result<Reply, HttpError> {
    Ok(Reply::json(&fetches(web)))
}
