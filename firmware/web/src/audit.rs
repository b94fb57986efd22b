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
        (false, ["viewer", uid]) => on_study("study.viewer", uid),
        (false, ["instance", sop, "header"]) => {
            on_study("instance.header", &study_of_instance(web, sop)).detail(*sop)
        }
        (false, ["api", "instances", sop, "file"]) => {
            on_study("instance.download", &study_of_instance(web, sop)).detail(*sop)
        }
        (false, ["admin", "audit"]) => event("audit.view").detail(terms(req)),
        (true, ["logout"]) => event("web.logout"),
        (true, ["account", "password"]) => event("web.password"),
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
                _ => format!("{} {}", req.field("ae"), req.field("rights")),
            }
            .trim()
            .to_owned(),
        ),
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
        _ => return,
    };
    let outcome = if status < 400 {
        "ok".to_owned()
    } else {
        format!("failed: HTTP {status}")
    };
    web.audit.record(e.outcome(outcome));
}
