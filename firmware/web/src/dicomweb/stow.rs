//! STOW-RS (PS3.18 10.5): `POST /dicom-web/studies[/{study}]` with a
//! `multipart/related; type="application/dicom"` body. Each part is a Part-10 file; its File
//! Meta names the SOP Instance, class and syntax, and the rest streams through
//! [`Archive::begin_store`] — the same validation, durability and duplicate handling as a
//! C-STORE — straight from the request body, one part at a time. A part that is not DICOM, is
//! cut short or breaks the multipart framing fails alone, and the ingest path keeps nothing of
//! it. The answer lists what was stored (ReferencedSOPSequence) and what failed
//! (FailedSOPSequence with a Failure Reason, C-STORE's status codes): 200 all stored, 202
//! some, 409 none.
//!
//! [`Archive::begin_store`]: pacsbox_archive::Archive::begin_store

use std::collections::BTreeMap;
use std::io::{BufReader, Read};

use pacsbox_archive::{StoreError, StoreRequest, part10};
use pacsbox_audit::Event;
use serde_json::{Value, json};

use super::multipart::Multipart;
use super::{Caller, accept, error, patient_of_study, xml};
use crate::Web;
use crate::reply::{Reply, Req};

/// What the archive records as the Source AE of an instance that came over STOW-RS.
pub const STOW_AE: &str = "DICOMWEB";

// C-STORE's failure statuses, which PS3.18 uses as Failure Reasons.
const OUT_OF_RESOURCES: u16 = 0xA700;
const MAX_BOUNDARY: usize = 200;
const DATASET_MISMATCH: u16 = 0xA900;
const CANNOT_UNDERSTAND: u16 = 0xC000;
/// The part is not `application/dicom` (PS3.18: SOP Class not supported would mislead).
const NOT_DICOM: u16 = 0xC000;

fn reason(e: &StoreError) -> u16 {
    match e {
        StoreError::OutOfSpace { .. }
        | StoreError::ConflictsFull { .. }
        | StoreError::Io(_)
        | StoreError::Index(_)
        | StoreError::ShuttingDown => OUT_OF_RESOURCES,
        StoreError::CannotUnderstand(_) => CANNOT_UNDERSTAND,
        StoreError::Mismatch(_) => DATASET_MISMATCH,
    }
}

struct Outcome {
    class: String,
    sop: String,
    failure: Option<(u16, String)>,
}

/// The boundary of a `multipart/related; type="application/dicom"` body.
fn boundary_of(content_type: &str) -> Result<String, Reply> {
    let mut parts = content_type.split(';');
    let media = parts.next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("multipart/related") {
        return Err(error(
            415,
            format!("STOW-RS takes multipart/related; type=\"application/dicom\", not {media:?}"),
        ));
    }
    let mut boundary = None;
    for p in parts {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"');
        match k.trim().to_ascii_lowercase().as_str() {
            "type" if !v.eq_ignore_ascii_case("application/dicom") => {
                return Err(error(
                    415,
                    format!("only application/dicom parts are stored, not {v:?}"),
                ));
            }
            "boundary" => boundary = Some(v.to_owned()),
            _ => {}
        }
    }
    // RFC 2046 caps a boundary at 70 characters, but Orthanc's DICOMweb client (1.7) sends
    // two UUIDs joined by a dash, 73: a bound stays (the boundary is searched for in every
    // part), generous enough for what real clients send.
    match boundary {
        Some(b) if !b.is_empty() && b.len() <= MAX_BOUNDARY => Ok(b),
        Some(b) if !b.is_empty() => Err(error(
            400,
            format!(
                "the multipart boundary is {} characters long: at most {MAX_BOUNDARY} are taken",
                b.len()
            ),
        )),
        _ => Err(error(400, "the multipart Content-Type has no boundary")),
    }
}

pub fn store(
    web: &Web,
    req: &Req,
    caller: &Caller,
    study: Option<&str>,
    body: &mut dyn Read,
) -> Reply {
    let boundary = match boundary_of(&req.content_type) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut parts = Multipart::new(body, &boundary);
    let mut outcomes: Vec<Outcome> = Vec::new();
    loop {
        let headers = match parts.next_part() {
            Ok(Some(h)) => h,
            Ok(None) => break,
            Err(e) if outcomes.is_empty() => {
                return error(400, format!("malformed multipart body: {e}"));
            }
            Err(e) => {
                tracing::warn!(error = %e, "STOW-RS body ended badly");
                break;
            }
        };
        let part_type = headers.content_type.split(';').next().unwrap_or("").trim();
        if !part_type.is_empty() && !part_type.eq_ignore_ascii_case("application/dicom") {
            outcomes.push(Outcome {
                class: String::new(),
                sop: String::new(),
                failure: Some((NOT_DICOM, format!("a part of type {part_type:?}"))),
            });
            if parts.skip_part().is_err() {
                break;
            }
            continue;
        }
        let outcome = store_part(web, study, &mut parts);
        let broken = parts.skip_part().is_err();
        if let Some((_, why)) = &outcome.failure {
            tracing::warn!(sop = outcome.sop, reason = why, "STOW-RS part not stored");
        }
        outcomes.push(outcome);
        if broken {
            break;
        }
    }
    if outcomes.is_empty() {
        return error(400, "the multipart body has no parts");
    }
    audit(web, req, caller, &outcomes);
    answer(study, &outcomes, wants_xml(&req.accept))
}

fn store_part(web: &Web, study: Option<&str>, parts: &mut Multipart<'_>) -> Outcome {
    let mut reader = BufReader::with_capacity(256 << 10, parts.part());
    let meta = match part10::read_header(&mut reader) {
        Ok(m) => m,
        Err(e) => {
            return Outcome {
                class: String::new(),
                sop: String::new(),
                failure: Some((CANNOT_UNDERSTAND, format!("not a DICOM Part-10 file: {e}"))),
            };
        }
    };
    let mut outcome = Outcome {
        class: meta.sop_class_uid.clone(),
        sop: meta.sop_instance_uid.clone(),
        failure: None,
    };
    let incoming = web.archive.begin_store(StoreRequest {
        sop_class_uid: meta.sop_class_uid,
        sop_instance_uid: meta.sop_instance_uid,
        transfer_syntax: meta.transfer_syntax,
        source_ae: STOW_AE.into(),
    });
    let result = incoming.and_then(|i| match study {
        Some(s) => i.expect_study(s).receive(reader),
        None => i.receive(reader),
    });
    if let Err(e) = result {
        outcome.failure = Some((reason(&e), e.to_string()));
    }
    outcome
}

fn sop_item(o: &Outcome) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    let ui = |v: &str| {
        if v.is_empty() {
            json!({"vr": "UI"})
        } else {
            json!({"vr": "UI", "Value": [v]})
        }
    };
    m.insert("00081150".into(), ui(&o.class));
    m.insert("00081155".into(), ui(&o.sop));
    m
}

/// Whether the client asks for the answer as DICOM XML (`application/dicom+xml`, PS3.18
/// 10.5.3) ahead of JSON; anything else, or nothing, gets the DICOM JSON default. The
/// answer is one document, so the multipart form a search answers in is taken as asking
/// for XML too.
fn wants_xml(accept: &str) -> bool {
    accept::media_ranges(accept)
        .iter()
        .find_map(|r| match r.media.as_str() {
            "application/dicom+xml" => Some(true),
            "multipart/related"
                if r.param("type")
                    .is_some_and(|t| t.eq_ignore_ascii_case("application/dicom+xml")) =>
            {
                Some(true)
            }
            "application/dicom+json" | "application/json" | "application/*" | "*/*" => Some(false),
            _ => None,
        })
        .unwrap_or(false)
}

fn answer(study: Option<&str>, outcomes: &[Outcome], as_xml: bool) -> Reply {
    let mut stored = Vec::new();
    let mut failed = Vec::new();
    for o in outcomes {
        let mut item = sop_item(o);
        match &o.failure {
            None => stored.push(Value::Object(item)),
            Some((code, _)) => {
                item.insert("00081197".into(), json!({"vr": "US", "Value": [code]}));
                failed.push(Value::Object(item));
            }
        }
    }
    let mut body = serde_json::Map::new();
    if let Some(s) = study {
        body.insert(
            "00081190".into(),
            json!({"vr": "UR", "Value": [format!("/dicom-web/studies/{s}")]}),
        );
    }
    let status = match (stored.is_empty(), failed.is_empty()) {
        (false, true) => 200,
        (false, false) => 202,
        (true, _) => 409,
    };
    if !stored.is_empty() {
        body.insert("00081199".into(), json!({"vr": "SQ", "Value": stored}));
    }
    if !failed.is_empty() {
        body.insert("00081198".into(), json!({"vr": "SQ", "Value": failed}));
    }
    if as_xml {
        return Reply::bytes(
            status,
            "application/dicom+xml",
            xml::document(&body).into_bytes(),
        );
    }
    Reply::bytes(
        status,
        "application/dicom+json",
        serde_json::to_vec(&Value::Object(body)).unwrap_or_default(),
    )
}

/// One `dicom.store` per study, as an association's stores are recorded, and one for the
/// parts that failed before their study was known.
fn audit(web: &Web, req: &Req, caller: &Caller, outcomes: &[Outcome]) {
    let mut per_study: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let index = web.archive.index();
    for o in outcomes {
        let study = match (&o.failure, index.instance(&o.sop)) {
            (None, Ok(Some(rec))) => rec.study_uid,
            _ => String::new(),
        };
        let e = per_study.entry(study).or_default();
        if o.failure.is_none() {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }
    for (study, (ok, bad)) in per_study {
        let outcome = if bad == 0 {
            "ok".to_owned()
        } else {
            format!("failed: {bad} of {} instance(s)", ok + bad)
        };
        web.audit.record(
            Event::new("dicom.store", &caller.user, &req.client)
                .study(&study)
                .patient(patient_of_study(web, &study))
                .detail(format!("STOW-RS: {ok} instance(s) stored"))
                .outcome(outcome),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_answer_when_asked_before_json() {
        assert!(wants_xml("application/dicom+xml"));
        assert!(wants_xml(
            "application/dicom+xml, application/dicom+json;q=0.5"
        ));
        assert!(wants_xml(
            "multipart/related; type=\"application/dicom+xml\""
        ));
        assert!(!wants_xml(""));
        assert!(!wants_xml("application/dicom+json, application/dicom+xml"));
        assert!(!wants_xml("*/*"));
        assert!(!wants_xml("application/dicom+xml;q=0"));
    }

    #[test]
    fn boundaries_as_real_clients_send_them() {
        // Orthanc 1.7's STOW-RS client: two UUIDs and a dash, 73 characters.
        let orthanc = "5650a2bf-96f3-48b1-8459-86e0e26a339f-5650a2bf-96f3-48b1-8459-86e0e26a339f";
        let ct = format!("multipart/related; type=\"application/dicom\"; boundary={orthanc}");
        assert_eq!(boundary_of(&ct).ok().as_deref(), Some(orthanc));
        let quoted = "multipart/related; type=application/dicom; boundary=\"a b\"";
        assert_eq!(boundary_of(quoted).ok().as_deref(), Some("a b"));
        for bad in [
            "multipart/related; type=\"application/dicom\"",
            "multipart/related; type=\"application/dicom\"; boundary=",
        ] {
            assert!(boundary_of(bad).is_err(), "{bad}");
        }
        let long = format!(
            "multipart/related; boundary={}",
            "x".repeat(MAX_BOUNDARY + 1)
        );
        assert!(boundary_of(&long).is_err());
    }
}
