//! Importing patient media from the web page (editors and admins, `Right::Edit`: it adds
//! patients' data, like the corrections): a ZIP uploaded as the raw request body (the only
//! body the guard streams, up to [`crate::server::MAX_UPLOAD`]) into `DATA/uploads/`, its
//! studies listed (`pacsbox_media::survey`), the chosen ones imported on a thread through the
//! archive's store path, progress polled as JSON. One import at a time; the upload is deleted
//! when its import ends or another upload replaces it.

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use askama::Template;
use pacsbox_archive::accounts::Right;
use pacsbox_media::import::{self, Found, Progress, Source, Survey};

use super::{Nav, nav, page};
use crate::Web;
use crate::auth::Session;
use crate::reply::{HttpError, Reply, Req};

#[derive(Template)]
#[template(path = "import.html")]
struct ImportPage {
    nav: Option<Nav>,
    t: &'static crate::i18n::Strings,
    max_mb: u64,
    /// Media inserted into the box to list at once (`?media=NAME`, the status page's link).
    media: String,
}

/// The upload being looked at or imported.
struct Job {
    id: u64,
    /// The uploaded ZIP, or the folder of media inserted into the box.
    zip: PathBuf,
    /// Where it came from, for the audit record; `None`: an upload, deleted after import.
    inserted: Option<String>,
    survey: Survey,
    progress: Arc<Progress>,
    started: Option<Instant>,
    /// Set when the import thread ends: what it did, or why it stopped. Kept as the report,
    /// not its English line, so each reader gets the summary in their own language.
    finished: Option<Result<import::ImportReport, String>>,
}

static JOB: Mutex<Option<Job>> = Mutex::new(None);

fn job() -> std::sync::MutexGuard<'static, Option<Job>> {
    JOB.lock().unwrap_or_else(|p| p.into_inner())
}

fn uploads_dir(web: &Web) -> PathBuf {
    web.archive.root().join("uploads")
}

pub fn import_page(s: &Session, req: &Req) -> Result<Reply, HttpError> {
    page(&ImportPage {
        nav: nav(s),
        t: s.t(),
        max_mb: (crate::server::MAX_UPLOAD >> 20) as u64,
        media: req.param("media").to_owned(),
    })
}

/// Lists media inserted into the box (`media`: its folder's name, as the status document
/// has it), the way an upload is listed. The folder is the one the watcher found: a name the
/// status document does not list is refused, so no other path can be read through this.
pub fn import_media(web: &Web, req: &Req) -> Result<Reply, HttpError> {
    if job()
        .as_ref()
        .is_some_and(|j| j.started.is_some() && j.finished.is_none())
    {
        return Ok(Reply::text(
            409,
            "an import is running; wait for it to finish",
        ));
    }
    let name = req.field("media");
    let found = web
        .status
        .collect()?
        .media_found
        .into_iter()
        .find(|m| m.name == name)
        .ok_or_else(|| {
            HttpError::BadRequest(format!("no media {name:?} in the box (taken out?)"))
        })?;
    let folder = PathBuf::from(&found.path);
    let source = Source::open(&folder).map_err(|e| HttpError::BadRequest(e.to_string()))?;
    let survey = import::survey(&source, true).map_err(|e| HttpError::BadRequest(e.to_string()))?;
    let id = u64::from(std::process::id()) << 32 | u64::from(rand_u32());
    Ok(listed(id, folder, Some(found.name), survey))
}

/// Answers the listing of `survey` and makes it the job a user may start.
fn listed(id: u64, zip: PathBuf, inserted: Option<String>, survey: Survey) -> Reply {
    let reply = Reply::json(&Listed {
        job: id,
        listing: &survey.listing,
        files: survey.files.len(),
        ignored: survey.ignored,
        missing: &survey.missing,
        studies: &survey.studies,
    });
    let mut g = job();
    // A listed upload this replaces is deleted (never media inserted into the box).
    if let Some(old) = g.as_ref().filter(|j| j.inserted.is_none() && j.zip != zip) {
        let _ = std::fs::remove_file(&old.zip);
    }
    *g = Some(Job {
        id,
        zip,
        inserted,
        survey,
        progress: Arc::new(Progress::default()),
        started: None,
        finished: None,
    });
    reply
}

#[derive(serde::Serialize)]
struct Listed<'a> {
    job: u64,
    listing: &'a import::Listing,
    files: usize,
    ignored: usize,
    missing: &'a [String],
    studies: &'a [import::FoundStudy],
}

/// The upload: session, right and CSRF (header `X-CSRF-Token`, put in `req.form` by the
/// server) checked here, before a byte of the body is read (this path bypasses `routes.rs`).
pub fn import_upload(web: &Web, req: &Req, body: &mut dyn Read) -> Reply {
    let token = req
        .cookies
        .get(crate::auth::COOKIE)
        .map(String::as_str)
        .unwrap_or("");
    let Some(s) = web.sessions.get(token) else {
        return Reply::text(401, "log in first");
    };
    if req.cross_site || req.field("csrf") != s.csrf || s.must_change_password {
        return HttpError::Forbidden.into();
    }
    if !s.group.allows(Right::Edit) {
        return HttpError::Forbidden.into();
    }
    if job()
        .as_ref()
        .is_some_and(|j| j.started.is_some() && j.finished.is_none())
    {
        return Reply::text(409, "an import is running; wait for it to finish");
    }
    match receive(web, body) {
        Ok(r) => r,
        Err(e) => e.into(),
    }
}

fn receive(web: &Web, body: &mut dyn Read) -> Result<Reply, HttpError> {
    let dir = uploads_dir(web);
    // Earlier uploads (an abandoned choice, a crash) go first.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let id = u64::from(std::process::id()) << 32 | u64::from(rand_u32());
    let zip = dir.join(format!("upload-{id}.zip"));
    let mut f = std::fs::File::create(&zip)?;
    let n = std::io::copy(&mut body.take(crate::server::MAX_UPLOAD as u64 + 1), &mut f)?;
    if n > crate::server::MAX_UPLOAD as u64 {
        let _ = std::fs::remove_file(&zip);
        return Ok(Reply::text(413, "upload larger than the cap"));
    }
    drop(f);
    let source = Source::open(&zip).map_err(|e| {
        let _ = std::fs::remove_file(&zip);
        HttpError::BadRequest(format!("not a readable ZIP: {e}"))
    })?;
    let survey = import::survey(&source, true).map_err(|e| HttpError::BadRequest(e.to_string()))?;
    Ok(listed(id, zip, None, survey))
}

fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    u32::from_le_bytes(b)
}

/// Starts importing the chosen studies (`studies`: Study UIDs separated by spaces) of the
/// upload `job`.
pub fn import_start(web: &Web, s: &Session, req: &Req) -> Result<Reply, HttpError> {
    let id: u64 = req
        .field("job")
        .parse()
        .map_err(|_| HttpError::BadRequest("no upload given".into()))?;
    let chosen: Vec<String> = req
        .field("studies")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let mut g = job();
    let Some(j) = g.as_mut().filter(|j| j.id == id) else {
        return Err(HttpError::BadRequest(
            "that upload is gone (replaced by another): upload it again".into(),
        ));
    };
    if j.started.is_some() {
        return Ok(Reply::text(409, "already started"));
    }
    let files: Vec<Found> = j
        .survey
        .files
        .iter()
        .filter(|f| f.study_uid.as_ref().is_some_and(|u| chosen.contains(u)))
        .cloned()
        .collect();
    if files.is_empty() {
        return Err(HttpError::BadRequest("choose at least one study".into()));
    }
    j.started = Some(Instant::now());
    let (zip, progress, inserted) = (j.zip.clone(), j.progress.clone(), j.inserted.clone());
    let reconcile = Some(req.field("reconcile_patient_id").trim())
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let opts = import::Options {
        reconcile_patient_id: reconcile.clone(),
    };
    drop(g);
    let (archive, audit) = (web.archive.clone(), web.audit.clone());
    let event = pacsbox_audit::Event::new("media.import", &s.user, &req.client)
        .study(chosen.join(" "))
        .patient(patients(web, &chosen));
    std::thread::Builder::new()
        .name("media-import".into())
        .spawn(move || {
            let result = Source::open(&zip)
                .map_err(|e| e.to_string())
                .and_then(|src| {
                    import::import(&archive, &src, &files, &opts, &progress)
                        .map_err(|e| e.to_string())
                });
            if inserted.is_none() {
                let _ = std::fs::remove_file(&zip);
            }
            // The audit trail and logs stay English, whoever imported.
            let (outcome, summary) = match &result {
                Ok(r) if r.failed.is_empty() => ("ok".to_owned(), Ok(r.summary())),
                Ok(r) => ("partial".to_owned(), Ok(r.summary())),
                Err(e) => (format!("failed: {e}"), Err(e.clone())),
            };
            let from = match &inserted {
                Some(name) => format!("media inserted into the box ({name})"),
                None => "web upload".to_owned(),
            };
            let from = match &reconcile {
                Some(id) => format!("{from}, patient ID reconciled to {id}"),
                None => from,
            };
            let detail = match &summary {
                Ok(s) => format!("{from}: {s}"),
                Err(_) => from,
            };
            audit.record(event.detail(detail).outcome(outcome));
            if let Some(j) = job().as_mut().filter(|j| j.id == id) {
                j.finished = Some(result);
            }
        })?;
    Ok(Reply::json(&serde_json::json!({ "job": id })))
}

/// Patients of the chosen studies as the upload's survey names them (they are not in the
/// index yet).
fn patients(_web: &Web, chosen: &[String]) -> String {
    let g = job();
    let mut p: Vec<String> = g
        .as_ref()
        .map(|j| {
            j.survey
                .studies
                .iter()
                .filter(|s| chosen.contains(&s.study_uid))
                .map(|s| format!("{} ({})", s.patient_id, s.patient_name))
                .collect()
        })
        .unwrap_or_default();
    p.sort();
    p.dedup();
    p.join("; ")
}

/// `ImportReport::summary` in the reader's language (the same words in English).
fn summary(t: &crate::i18n::Strings, r: &import::ImportReport) -> String {
    let n = [
        r.files,
        r.stored,
        r.duplicates,
        r.failed.len(),
        r.studies.len(),
    ];
    crate::i18n::fill(t.imp_summary, &n.map(|v| v.to_string()))
}

/// The progress of upload `job` (without `job`: of the latest upload, `{"job": null}` when
/// there is none). The summary and the per-file reasons are in the user's language; the
/// archive made them in English (`summary`, `Strings::tr_lead`).
pub fn import_progress(s: &Session, req: &Req) -> Result<Reply, HttpError> {
    let t = s.t();
    let want: Option<u64> = match req.param("job") {
        "" => None,
        s => Some(s.parse().map_err(|_| HttpError::NotFound)?),
    };
    let g = job();
    let Some(j) = g.as_ref().filter(|j| want.is_none_or(|id| j.id == id)) else {
        return match want {
            None => Ok(Reply::json(&serde_json::json!({ "job": null }))),
            Some(_) => Err(HttpError::NotFound),
        };
    };
    let p = &j.progress;
    let secs = j
        .started
        .map_or(0.0, |t| t.elapsed().as_secs_f64())
        .max(1e-3);
    let bytes = p.bytes.load(Ordering::Relaxed);
    let failed: Vec<(String, String)> = p
        .failed
        .lock()
        .map(|f| {
            f.iter()
                .map(|(file, why)| (file.clone(), t.tr_lead(why)))
                .collect()
        })
        .unwrap_or_default();
    Ok(Reply::json(&serde_json::json!({
        "job": j.id,
        "done": p.done.load(Ordering::Relaxed),
        "total": p.total.load(Ordering::Relaxed),
        "stored": p.stored.load(Ordering::Relaxed),
        "duplicates": p.duplicates.load(Ordering::Relaxed),
        "bytes": bytes,
        "mb_per_s": bytes as f64 / 1e6 / secs,
        "failed": failed,
        "finished": j.finished.is_some(),
        "summary": j.finished.as_ref().map(|r| match r {
            Ok(r) => summary(t, r),
            Err(e) => t.tr_lead(e),
        }),
        "error": j.finished.as_ref().and_then(|r| r.as_ref().err().cloned()),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::{EN, KO};
    use pacsbox_archive::StoreError;

    #[test]
    fn the_summary_reads_as_the_archive_writes_it_and_in_korean() {
        let r = import::ImportReport {
            files: 12,
            stored: 9,
            duplicates: 2,
            bytes: 0,
            failed: vec![("a.dcm".into(), "reading: eof".into())],
            studies: ["1.2.3".to_owned()].into(),
        };
        assert_eq!(summary(&EN, &r), r.summary());
        assert_eq!(
            summary(&KO, &r),
            "파일 12개: 가져옴 9개, 중복 2개, 실패 1개, 검사 1건"
        );
    }

    #[test]
    fn the_archives_reasons_have_their_korean_lead() {
        // The leads are the archive's own words: if it rewords them, this fails.
        let not_understood = StoreError::CannotUnderstand("no SOP Class UID".into()).to_string();
        let mismatch = StoreError::Mismatch("SOP Class differs".into()).to_string();
        assert_eq!(
            KO.tr_lead(&not_understood),
            "데이터셋을 해석할 수 없습니다: no SOP Class UID"
        );
        assert_eq!(
            KO.tr_lead(&mismatch),
            "데이터셋이 요청과 맞지 않습니다: SOP Class differs"
        );
    }
}
