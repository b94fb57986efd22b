//! What the web page writes to the audit trail (`pacsbox-audit`): logins and logouts, every
//! search and every view or download of patient data, and every change an admin or user makes.
//! Recorded in one place after the route has answered, so a new page cannot forget it; the
//! previews, pixels and thumbnails a study view loads are covered by that view's record.

use pacsbox_audit::Event;

use crate::Web;
use crate::auth::Session;
use crate::reply::Req;

/// `ID (NAME)` of a study's patient, for the trail's patient column.
fn patient_of_study(web: &Web, study: &str) -> String {
    match web.archive.index().study(study) {
        Ok(Some(s)) => format!("{} ({})", s.patient_id, s.patient_name),
        _ => String::new(),
    }
}

/// The study of an instance.
fn study_of_instance(web: &Web, sop: &str) -> String {
    match web.archive.index().instance(sop) {
        Ok(Some(i)) => i.study_uid,
        _ => String::new(),
    }
}

/// The non-empty query parameters, sorted, as `k=v` words.
fn terms(req: &Req) -> String {
    let mut v: Vec<String> = req
        .query
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    v.sort();
    v.join(" ")
}

/// `study.anonymize` of `study`; the target, counts and outcome are added by the caller.
pub fn anonymize_event(web: &Web, s: &Session, req: &Req, study: &str) -> Event {
    Event::new("study.anonymize", &s.user, &req.client)
        .study(study)
        .patient(patient_of_study(web, study))
}

/// Records a finished (or refused) anonymization run; see `pages/anonymize.rs`.
pub fn anonymize(
    web: &Web,
    s: &Session,
    req: &Req,
    study: &str,
    target: &str,
    outcome: String,
    counts: String,
) {
    let target = if target.is_empty() { "-" } else { target };
    let e = anonymize_event(web, s, req, study);
    web.audit.record(
        e.detail(format!("into {target}: {counts}"))
            .outcome(outcome),
    );
}

pub fn login(web: &Web, req: &Req, user: &str, outcome: &str) {
    web.audit
        .record(Event::new("web.login", user, &req.client).outcome(outcome));
}

/// Records what a request with a session did, once its answer (`status`) is known.
pub fn access(web: &Web, s: &Session, req: &Req, segs: &[&str], status: u16) {
    let post = req.method == "POST";
    let event = |action: &str| Event::new(action, &s.user, &req.client);
    let on_study = |action: &str, study: &str| {
        event(action)
            .study(study)
            .patient(patient_of_study(web, study))
    };
    let e = match (post, segs) {
        (false, ["search"]) => event("web.search").detail(terms(req)),
        (false, ["study", uid]) => on_study("study.view", uid),
        (false, ["study", uid, "download.zip"]) => on_study("study.download", uid),
        (false, ["study", uid, "media.zip"]) => {
            on_study("media.export", uid).detail(format!("web zip, syntax {}", req.param("syntax")))
        }
        (false, ["viewer", uid]) => on_study("study.viewer", uid),
        (false, ["instance", sop, "header"]) => {
            on_study("instance.header", &study_of_instance(web, sop)).detail(*sop)
        }
        (false, ["api", "instances", sop, "file"]) => {
            on_study("instance.download", &study_of_instance(web, sop)).detail(*sop)
        }
        (false, ["admin", "audit"]) => event("audit.view").detail(terms(req)),
        // The search form without a peer asks nothing of anyone.
        (false, ["remote"]) if req.param("peer").is_empty() => return,
        (false, ["remote"]) => event("remote.find").detail(terms(req)),
        (true, ["remote", "fetch"]) => on_study("remote.fetch", req.field("study").trim())
            .detail(format!("from {}", req.field("peer").trim())),
        (false, ["admin", "operations"]) => event("operations.view"),
        (true, ["logout"]) => event("web.logout"),
        (true, ["account", "password"]) => event("web.password"),
        (true, ["account", "tokens"]) => {
            event(&format!("token.{}", req.field("action"))).detail(match req.field("action") {
                "create" => req.field("label").trim().to_owned(),
                _ => crate::dicomweb::tokens::label_of(web, req.field("id")),
            })
        }
        // Asking "delete?" changes nothing; the confirmed post is what is recorded.
        (true, ["admin", "users"])
            if req.field("action") == "delete" && req.field("confirm") != "yes" =>
        {
            return;
        }
        (true, ["admin", "users"]) => {
            let target = match req.field("action") {
                "end-session" => req.field("session").to_owned(),
                "create" | "set-role" => format!("{} {}", req.field("name"), req.field("group")),
                _ => req.field("name").to_owned(),
            };
            event(&format!("user.{}", req.field("action"))).detail(target)
        }
        (true, ["admin", "certificate"]) => event(&format!("certificate.{}", req.field("action"))),
        // A C-ECHO changes nothing and shows no patient data.
        (true, ["admin", "peers"]) if req.field("action") == "echo" => return,
        (true, ["admin", "peers"]) => event(&format!("peer.{}", req.field("action"))).detail(
            match req.field("action") {
                "learn-again" => format!("{} days", req.field("days").trim()),
                "address" => format!(
                    "{} {}:{}",
                    req.field("ae"),
                    req.field("host"),
                    req.field("port")
                ),
                _ => format!(
                    "{} {} {}",
                    req.field("ae"),
                    req.field("rights"),
                    req.field("host")
                ),
            }
            .trim()
            .to_owned(),
        ),
        // Recorded by the page with the run's target and counts (`pages/anonymize.rs`), also
        // when refused or broken off; a request without the right never reaches it.
        (true, ["study", _, "anonymize"]) if status != 403 => return,
        (true, ["study", uid, "anonymize"]) => on_study("study.anonymize", uid),
        (true, ["admin", "forwarding"]) => {
            let study = req.field("study").trim();
            event(&format!("forward.{}", req.field("action")))
                .study(study)
                .patient(patient_of_study(web, study))
                .detail(format!(
                    "{} {}",
                    req.field("peer").trim(),
                    if study.is_empty() { "all" } else { "study" }
                ))
        }
        (true, ["study", uid, "send"]) => {
            let series = req.field("series").trim();
            on_study("forward.enqueue", uid).detail(format!(
                "to {} {}",
                req.field("peer").trim(),
                if series.is_empty() {
                    "whole study".to_owned()
                } else {
                    format!("series {series}")
                }
            ))
        }
        (true, ["admin", "conflicts"]) => {
            event(&format!("conflict.{}", req.field("action"))).detail(req.field("name"))
        }
        // Recorded by the pages with the exam's accession number (`pages/worklist.rs`).
        (true, ["register"] | ["worklist"]) => return,
        // The day's patients and exams; the page's JSON refreshes are covered by this record.
        (false, ["worklist"]) => event("worklist.view").detail(terms(req)),
        // Finding a patient to register is a search of the archive.
        (false, ["register"]) if req.query.get("q").is_some_and(|q| !q.is_empty()) => {
            event("web.search").detail(terms(req))
        }
        // The report page records its drafts, signatures and amendments itself (whether a
        // signature amended is known only there); a request without the right is recorded here.
        (false, ["study", uid, "report"]) => on_study("study.view", uid).detail("report"),
        (true, ["study", _, "report"]) if status != 403 => return,
        (true, ["study", uid, "report"]) => on_study(
            if req.field("action") == "draft" {
                "report.draft"
            } else {
                "report.sign"
            },
            uid,
        ),
        // The save records itself (`pages/key_images.rs`, with the new KOS's UID); a request
        // without the right is recorded here.
        (true, ["api", "studies", _, "key-images"]) if status != 403 => return,
        (true, ["api", "studies", uid, "key-images"]) => on_study("keyimages.save", uid),
        _ => return,
    };
    let outcome = if status < 400 {
        "ok".to_owned()
    } else {
        format!("failed: HTTP {status}")
    };
    web.audit.record(e.outcome(outcome));
}

/// The trail's action for an operation kind (`pacsbox_archive::edit::Request::kind`).
pub fn operation_action(kind: &str) -> &'static str {
    match kind {
        "edit-patient" => "patient.edit",
        "edit-study" => "study.edit",
        "move-study" => "study.move",
        "merge" => "patient.merge",
        "split-series" => "series.split",
        "delete" => "data.delete",
        "undo" => "operation.undo",
        _ => "operation.other",
    }
}

/// An operation done (web page or command line): who, from where, the patient and study,
/// and in `detail` the operation's number, target, each attribute's before and after, and the
/// number of instances.
pub fn operation_event(
    op: &pacsbox_archive::edit::OperationSummary,
    actor: &str,
    client: &str,
) -> Event {
    let changes: Vec<String> = op
        .values
        .iter()
        .map(|(n, b, a)| format!("{n}: {b:?} -> {a:?}"))
        .collect();
    let detail = format!(
        "operation {}: {}; {}{}{} instance(s)",
        op.id,
        op.target,
        changes.join("; "),
        if changes.is_empty() { "" } else { "; " },
        op.instances
    );
    // The trail's patient column holds one `ID (NAME)`: the patient the data is under now
    // (the other one, for a move or merge, is in the detail).
    Event::new(operation_action(op.kind), actor, client)
        .patient(op.patients.last().cloned().unwrap_or_default())
        .study(op.studies.join(" "))
        .detail(detail)
}

/// An operation refused or failed, with the reason.
pub fn operation_refused_event(
    request: &pacsbox_archive::edit::Request,
    actor: &str,
    client: &str,
    error: &pacsbox_archive::edit::EditError,
) -> Event {
    let outcome = match error {
        pacsbox_archive::edit::EditError::Io { .. }
        | pacsbox_archive::edit::EditError::Index(_)
        | pacsbox_archive::edit::EditError::Rewrite { .. } => format!("failed: {error}"),
        _ => format!("refused: {error}"),
    };
    Event::new(operation_action(request.kind()), actor, client)
        .outcome(outcome)
        .detail(format!("{request:?}"))
}

/// An admin's purge of the trash.
pub fn purge_event(
    report: &pacsbox_archive::edit::PurgeReport,
    actor: &str,
    client: &str,
) -> Event {
    Event::new("trash.purge", actor, client).detail(format!(
        "{} operation(s), {} file(s), {} bytes",
        report.operations, report.files, report.bytes
    ))
}
