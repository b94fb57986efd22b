//! Anonymizing a study from its page (editors and admins): the form's options and pseudonym,
//! then either a new study in the archive or a ZIP streamed to the browser. A new study is made
//! by a job on its own thread: the form's answer is a redirect to the job's page, which shows
//! "n of total" (`anonymize.js` polls `/anonymize/{n}/progress`) and, once the job ended, the
//! result (the counts and the burned-in warning). The archive does the work
//! ([`pacsbox_archive::Archive::anonymize_into_archive_with`], `study_zip::stream_anonymized`);
//! the audit record (`study.anonymize`) is written here because its counts are known only here.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use askama::Template;
use pacsbox_archive::accounts::Right;
use pacsbox_archive::deid::Options;
use pacsbox_archive::{AnonymizeError, AnonymizeProgress, AnonymizeReport};

use super::{Nav, nav, page};
use crate::Web;
use crate::auth::Session;
use crate::reply::{HttpError, Reply, Req};

#[derive(Template)]
#[template(path = "anonymized.html")]
struct AnonymizedPage {
    nav: Option<Nav>,
    t: &'static crate::i18n::Strings,
    r: AnonymizeReport,
}

#[derive(Template)]
#[template(path = "anonymizing.html")]
struct AnonymizingPage {
    nav: Option<Nav>,
    t: &'static crate::i18n::Strings,
    job: u64,
    study: String,
    done: u64,
    total: u64,
}

/// One "anonymize as new study" run.
struct Job {
    id: u64,
    user: String,
    study: String,
    progress: Arc<AnonymizeProgress>,
    /// Set when the run ends.
    finished: Option<Result<AnonymizeReport, String>>,
}

/// The latest runs (their pages stay reachable for a while after they end).
static JOBS: Mutex<Vec<Job>> = Mutex::new(Vec::new());
const KEEP_JOBS: usize = 16;

fn jobs() -> std::sync::MutexGuard<'static, Vec<Job>> {
    JOBS.lock().unwrap_or_else(|p| p.into_inner())
}

fn options(req: &Req) -> Options {
    let on = |k: &str| req.field(k) == "on";
    Options {
        retain_dates: on("retain_dates"),
        retain_device: on("retain_device"),
        clean_descriptors: on("keep_descriptions"),
        patient_name: req.field("name").trim().to_owned(),
        patient_id: req.field("id").trim().to_owned(),
    }
}

pub fn anonymize_post(web: &Web, s: &Session, req: &Req, uid: &str) -> Result<Reply, HttpError> {
    let result = run(web, s, req, uid);
    // What `run` answered with an error (no such study, a bad target, a run broken off) is
    // recorded here; its other answers recorded themselves, with their counts.
    if let Err(e) = &result {
        crate::audit::anonymize(web, s, req, uid, "", format!("failed: {e}"), String::new());
    }
    result
}

fn run(web: &Web, s: &Session, req: &Req, uid: &str) -> Result<Reply, HttpError> {
    let opts = options(req);
    if let Err(e) = opts.validate() {
        crate::audit::anonymize(web, s, req, uid, "", format!("failed: {e}"), String::new());
        return super::study::study_page_anonymize_error(web, s, uid, &e.to_string());
    }
    if web.archive.index().study(uid)?.is_none() {
        return Err(HttpError::NotFound);
    }
    match req.field("target") {
        "zip" => {
            let audit = web.audit.clone();
            let event = crate::audit::anonymize_event(web, s, req, uid);
            let body = crate::study_zip::stream_anonymized(
                web.archive.clone(),
                uid.to_owned(),
                opts,
                move |result| {
                    let e = match result {
                        Ok(r) => event
                            .detail(format!("into zip: {}", r.summary()))
                            .outcome("ok"),
                        Err(why) => event.detail("into zip").outcome(format!("failed: {why}")),
                    };
                    audit.record(e);
                },
            )?;
            Ok(Reply::stream("application/zip", body).header(
                "Content-Disposition",
                format!("attachment; filename=\"anonymized-{uid}.zip\""),
            ))
        }
        "archive" => start(web, s, req, uid, opts),
        _ => Err(HttpError::BadRequest("target is archive or zip".into())),
    }
}

/// Starts the run on its own thread and sends the browser to its page.
fn start(web: &Web, s: &Session, req: &Req, uid: &str, opts: Options) -> Result<Reply, HttpError> {
    let progress = Arc::new(AnonymizeProgress::default());
    let id = {
        let mut g = jobs();
        let id = g.last().map_or(1, |j| j.id + 1);
        if g.len() >= KEEP_JOBS
            && let Some(i) = g.iter().position(|j| j.finished.is_some())
        {
            g.remove(i);
        }
        g.push(Job {
            id,
            user: s.user.clone(),
            study: uid.to_owned(),
            progress: progress.clone(),
            finished: None,
        });
        id
    };
    let (archive, audit) = (web.archive.clone(), web.audit.clone());
    let event = crate::audit::anonymize_event(web, s, req, uid);
    let study = uid.to_owned();
    let spawned = std::thread::Builder::new()
        .name("anonymize".into())
        .spawn(move || {
            let result = archive.anonymize_into_archive_with(&study, &opts, &progress);
            let e = match &result {
                Ok(r) => event
                    .detail(format!("into {}: {}", r.new_study, r.summary()))
                    .outcome("ok"),
                Err(why) => event.detail("into -").outcome(format!("failed: {why}")),
            };
            audit.record(e);
            if let Err(e) = &result {
                tracing::error!(study, error = %e, "anonymize as new study failed");
            }
            if let Some(j) = jobs().iter_mut().find(|j| j.id == id) {
                j.finished = Some(result.map_err(|e| match e {
                    AnonymizeError::NoStudy => "no such study".to_owned(),
                    e => e.to_string(),
                }));
            }
        });
    if let Err(e) = spawned {
        jobs().retain(|j| j.id != id);
        return Err(HttpError::Internal(format!(
            "starting the anonymization: {e}"
        )));
    }
    Ok(Reply::redirect(&format!("/anonymize/{id}")))
}

/// GET `/anonymize/{n}`: the run's progress while it lasts, then its result. Only its own
/// user (or an admin) sees it.
pub fn anonymize_job_page(s: &Session, id: &str) -> Result<Reply, HttpError> {
    let g = jobs();
    let j = visible_job(&g, s, id)?;
    match &j.finished {
        Some(Ok(r)) => page(&AnonymizedPage {
            nav: nav(s),
            t: s.t(),
            r: r.clone(),
        }),
        Some(Err(e)) => Err(HttpError::Internal(e.clone())),
        None => page(&AnonymizingPage {
            nav: nav(s),
            t: s.t(),
            job: j.id,
            study: j.study.clone(),
            done: j.progress.done.load(Ordering::Relaxed),
            total: j.progress.total.load(Ordering::Relaxed),
        }),
    }
}

/// GET `/anonymize/{n}/progress`: `{"done", "total", "finished"}`.
pub fn anonymize_job_progress(s: &Session, id: &str) -> Result<Reply, HttpError> {
    let g = jobs();
    let j = visible_job(&g, s, id)?;
    Ok(Reply::json(&serde_json::json!({
        "job": j.id,
        "done": j.progress.done.load(Ordering::Relaxed),
        "total": j.progress.total.load(Ordering::Relaxed),
        "finished": j.finished.is_some(),
    })))
}

fn visible_job<'a>(g: &'a [Job], s: &Session, id: &str) -> Result<&'a Job, HttpError> {
    let id: u64 = id.parse().map_err(|_| HttpError::NotFound)?;
    g.iter()
        .find(|j| j.id == id && (j.user == s.user || s.group.allows(Right::Administer)))
        .ok_or(HttpError::NotFound)
}
