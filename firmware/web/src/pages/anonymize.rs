//! Anonymizing a study from its page (editors and admins): the form's options and pseudonym,
//! then either a new study in the archive (a result page with the counts and the burned-in
//! warning) or a ZIP streamed to the browser. The archive does the work
//! ([`pacsbox_archive::Archive::anonymize_into_archive`], `study_zip::stream_anonymized`); the
//! audit record (`study.anonymize`) is written here because its counts are known only here.

use askama::Template;
use pacsbox_archive::deid::Options;
use pacsbox_archive::{AnonymizeError, AnonymizeReport};

use super::{Nav, nav, page};
use crate::Web;
use crate::auth::Session;
use crate::reply::{HttpError, Reply, Req};

#[derive(Template)]
#[template(path = "anonymized.html")]
struct AnonymizedPage {
    nav: Option<Nav>,
    r: AnonymizeReport,
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
        "archive" => match web.archive.anonymize_into_archive(uid, &opts) {
            Ok(r) => {
                crate::audit::anonymize(web, s, req, uid, &r.new_study, "ok".into(), r.summary());
                page(&AnonymizedPage { nav: nav(s), r })
            }
            Err(AnonymizeError::NoStudy) => Err(HttpError::NotFound),
            Err(e) => Err(HttpError::Internal(e.to_string())),
        },
        _ => Err(HttpError::BadRequest("target is archive or zip".into())),
    }
}
