//! Forwarding to other PACS: the admins' queue page (per peer: waiting, failing, the last
//! error; per study: attempts, next try; Retry and Cancel) and the study page's "Send to…",
//! which queues a study or one series for a peer with an address. The queue is the archive's
//! (`pacsbox_archive::forward`); the senders of `pacsbox_dicom::forward` pick jobs up by
//! themselves, so this page only writes the queue.

use askama::Template;
use pacsbox_archive::forward::{PeerQueue, StudyQueue};

use super::{Nav, form_page, nav};
use crate::Web;
use crate::auth::Session;
use crate::reply::{HttpError, Reply, Req, check_uid};

/// Study rows shown; the peers' totals always count everything.
const MAX_ROWS: usize = 500;

#[derive(Template)]
#[template(path = "forwarding.html")]
struct ForwardingPage<'a> {
    nav: Option<Nav>,
    t: &'static crate::i18n::Strings,
    csrf: &'a str,
    peers: Vec<PeerQueue>,
    studies: Vec<StudyRow>,
    more: bool,
    error: &'a str,
    message: &'a str,
}

struct StudyRow {
    q: StudyQueue,
    next_try: String,
}

pub fn forwarding_page(
    web: &Web,
    s: &Session,
    error: &str,
    message: &str,
) -> Result<Reply, HttpError> {
    let index = web.archive.index();
    let peers = index.forward_summary(web.config.forward_alarm_after)?;
    let mut studies: Vec<StudyRow> = index
        .forward_studies(MAX_ROWS + 1)?
        .into_iter()
        .map(|q| StudyRow {
            next_try: crate::conflicts::utc(q.next_try_unix),
            q,
        })
        .collect();
    let more = studies.len() > MAX_ROWS;
    studies.truncate(MAX_ROWS);
    form_page(
        &ForwardingPage {
            nav: nav(s),
            t: s.t(),
            csrf: &s.csrf,
            peers,
            studies,
            more,
            error,
            message,
        },
        error,
    )
}

pub fn forwarding_post(web: &Web, s: &Session, req: &Req) -> Result<Reply, HttpError> {
    let peer = req.field("peer").trim();
    let study = match req.field("study").trim() {
        "" => None,
        uid => Some(check_uid(uid)?),
    };
    let index = web.archive.index();
    let now = pacsbox_audit::now_unix();
    let (n, what) = match req.field("action") {
        "retry" => (index.forward_retry(peer, study, now)?, "due now"),
        "cancel" => (index.forward_cancel(peer, study)?, "cancelled"),
        _ => return Err(HttpError::BadRequest("unknown action".into())),
    };
    tracing::info!(
        admin = s.user,
        peer,
        study,
        action = req.field("action"),
        jobs = n,
        "forwarding queue changed"
    );
    if n == 0 {
        return forwarding_page(web, s, "Nothing queued there any more.", "");
    }
    forwarding_page(web, s, "", &format!("{n} instance(s) for {peer} {what}."))
}

/// Peers a study can be sent to: those with an address.
pub fn send_targets(web: &Web) -> Vec<String> {
    match web.archive.peers() {
        Ok(peers) => peers
            .into_iter()
            .filter(|p| p.host.is_some() && p.port.is_some())
            .map(|p| p.ae_title)
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "reading the peer table");
            Vec::new()
        }
    }
}

/// "Send to…": queues the study (or the series chosen) for the peer; back to the study page
/// with the outcome.
pub fn send_post(web: &Web, s: &Session, uid: &str, req: &Req) -> Result<Reply, HttpError> {
    let peer = req.field("peer").trim();
    if !send_targets(web).iter().any(|p| p == peer) {
        return Err(HttpError::BadRequest("no such peer with an address".into()));
    }
    let series = match req.field("series").trim() {
        "" => None,
        s => Some(check_uid(s)?),
    };
    if web.archive.index().study(uid)?.is_none() {
        return Err(HttpError::NotFound);
    }
    let n = web.archive.index().forward_enqueue(
        peer,
        uid,
        series,
        &format!("user {}", s.user),
        pacsbox_audit::now_unix(),
    )?;
    tracing::info!(
        user = s.user,
        peer,
        study_uid = uid,
        instances = n,
        "send to peer queued"
    );
    super::study::study_page_with(web, s, uid, "", &format!("{n} image(s) queued for {peer}."))
}
