//! Modality Performed Procedure Step SCP (1.2.840.10008.3.1.2.3.3, PS3.4 Annex F): N-CREATE
//! (IN PROGRESS) and N-SET (more attributes, then COMPLETED or DISCONTINUED) from a modality,
//! kept in the archive with the exam they move on (`pacsbox_archive::worklist`).
//!
//! Statuses of PS3.4 F.7: an N-CREATE whose UID exists is 0111H Duplicate SOP Instance, an
//! N-SET of an unknown instance 0112H No Such Object Instance, an N-SET after the step was
//! completed or discontinued C310H, a status value not allowed 0106H Invalid Attribute Value.
//! The archive checks and writes in one transaction, so a refusal changes nothing.

use pacsbox_archive::deid::dataset::{self as ds, Elem, Value};
use pacsbox_archive::worklist::{MppsAttributes, PerformedSeries, WorklistError};
use pacsbox_audit::Event;
use pacsbox_charset::{SpecificCharacterSet, TextVr};

use crate::association::{AssocError, Association};
use crate::context::ServiceContext;
use crate::dimse::{Command, Status, respond};

use crate::sop_classes::MPPS as MPPS_CLASS;

const DUPLICATE_INSTANCE: Status = Status(0x0111);
const NO_SUCH_INSTANCE: Status = Status(0x0112);
const INVALID_ATTRIBUTE_VALUE: Status = Status(0x0106);
/// PS3.4 F.7.2.2: the Performed Procedure Step is no longer IN PROGRESS.
const NOT_IN_PROGRESS: Status = Status(0xC310);

/// The attributes of an MPPS data set that are present (an N-SET changes only those).
#[derive(Default, Debug)]
struct Given {
    status: Option<String>,
    modality: Option<String>,
    station_ae: Option<String>,
    description: Option<String>,
    start: Option<String>,
    end_date: Option<String>,
    end_time: Option<String>,
    accession: String,
    study_uid: String,
    step_id: String,
    series: Option<Vec<PerformedSeries>>,
}

fn text(e: &Elem<'_>, cs: &SpecificCharacterSet) -> String {
    e.bytes()
        .map(|b| cs.decode(b, TextVr::ShortText))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn items<'a, 'b>(e: &'b Elem<'a>) -> &'b [Vec<Elem<'a>>] {
    match &e.value {
        Value::Seq { items, .. } => items,
        _ => &[],
    }
}

fn find<'a, 'b>(elems: &'b [Elem<'a>], tag: u32) -> Option<&'b Elem<'a>> {
    elems.iter().find(|e| e.tag == tag)
}

fn read_given(bytes: &[u8], ts: &str) -> Result<Given, String> {
    let enc = crate::mwl::enc_of(ts).ok_or("deflated data sets are not read")?;
    let elems = ds::read(bytes, enc).map_err(|e| e.to_string())?;
    let cs = find(&elems, 0x0008_0005)
        .and_then(|e| e.bytes())
        .map(|b| SpecificCharacterSet::from_value(&String::from_utf8_lossy(b)))
        .unwrap_or_default();
    let get = |tag: u32| find(&elems, tag).map(|e| text(e, &cs));
    let mut g = Given {
        status: get(0x0040_0252),
        modality: get(0x0008_0060),
        station_ae: get(0x0040_0241),
        description: get(0x0040_0254),
        start: match (get(0x0040_0244), get(0x0040_0245)) {
            (None, None) => None,
            (d, t) => Some(format!(
                "{} {}",
                d.unwrap_or_default(),
                t.unwrap_or_default()
            )),
        },
        end_date: get(0x0040_0250),
        end_time: get(0x0040_0251),
        ..Given::default()
    };
    if let Some(step) = find(&elems, 0x0040_0270).and_then(|e| items(e).first()) {
        let sget = |tag: u32| find(step, tag).map(|e| text(e, &cs)).unwrap_or_default();
        g.accession = sget(0x0008_0050);
        g.study_uid = sget(0x0020_000D);
        g.step_id = sget(0x0040_0009);
    }
    if let Some(seq) = find(&elems, 0x0040_0340) {
        g.series = Some(
            items(seq)
                .iter()
                .map(|s| {
                    let sget = |tag: u32| find(s, tag).map(|e| text(e, &cs)).unwrap_or_default();
                    PerformedSeries {
                        series_uid: sget(0x0020_000E),
                        description: sget(0x0008_103E),
                        protocol: sget(0x0018_1030),
                        images: find(s, 0x0008_1140)
                            .map(|r| {
                                items(r)
                                    .iter()
                                    .map(|i| {
                                        find(i, 0x0008_1155)
                                            .map(|e| text(e, &cs))
                                            .unwrap_or_default()
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                    }
                })
                .collect(),
        );
    }
    Ok(g)
}

impl Given {
    fn apply(self, a: &mut MppsAttributes) {
        if let Some(v) = self.status {
            a.status = v;
        }
        if let Some(v) = self.modality {
            a.modality = v;
        }
        if let Some(v) = self.station_ae {
            a.station_ae = v;
        }
        if let Some(v) = self.description {
            a.description = v;
        }
        if let Some(v) = self.start {
            a.start = v;
        }
        if self.end_date.is_some() || self.end_time.is_some() {
            a.end = format!(
                "{} {}",
                self.end_date.unwrap_or_default(),
                self.end_time.unwrap_or_default()
            )
            .trim()
            .to_owned();
        }
        if let Some(s) = self.series {
            a.series = s;
        }
    }
}

/// Logs and records a refused request; the status it gets.
fn refused(
    service: ServiceContext<'_>,
    assoc: &Association,
    action: &str,
    uid: &str,
    e: &WorklistError,
) -> Status {
    let st = status_of(e);
    tracing::warn!(calling_ae = assoc.calling_ae, uid, action, error = %e, "MPPS request refused");
    record(
        service,
        assoc,
        action,
        uid.to_owned(),
        format!("refused: {st:?} {e}"),
    );
    st
}

fn status_of(e: &WorklistError) -> Status {
    match e {
        WorklistError::DuplicateMpps(_) => DUPLICATE_INSTANCE,
        WorklistError::NoSuchMpps(_) => NO_SUCH_INSTANCE,
        WorklistError::MppsFinal(..) => NOT_IN_PROGRESS,
        WorklistError::BadStatus(_) => INVALID_ATTRIBUTE_VALUE,
        _ => Status::PROCESSING_FAILURE,
    }
}

fn record(
    service: ServiceContext<'_>,
    assoc: &Association,
    action: &str,
    detail: String,
    outcome: String,
) {
    service.audit.record(
        Event::new(action, &assoc.calling_ae, &assoc.peer_address)
            .detail(detail)
            .outcome(outcome),
    );
}

/// The request's data set, read; `None` once a refusal was sent (not an MPPS context, or a data
/// set that does not parse).
async fn request_data(
    assoc: &mut Association,
    ctx: u8,
    req: &Command,
    bytes: &[u8],
    service: ServiceContext<'_>,
    action: &str,
) -> Result<Option<Given>, AssocError> {
    let accepted = assoc.context(ctx)?;
    if accepted.abstract_syntax != MPPS_CLASS {
        let st = Status::SOP_CLASS_NOT_SUPPORTED;
        respond(assoc, ctx, req, st, "not an MPPS context").await?;
        return Ok(None);
    }
    match read_given(bytes, &accepted.transfer_syntax) {
        Ok(g) => Ok(Some(g)),
        Err(e) => {
            let uid = req
                .affected_sop_instance_uid
                .clone()
                .or_else(|| req.requested_sop_instance_uid.clone())
                .unwrap_or_default();
            record(service, assoc, action, uid, format!("refused: {e}"));
            respond(assoc, ctx, req, Status::PROCESSING_FAILURE, &e).await?;
            Ok(None)
        }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// N-CREATE: a new MPPS, IN PROGRESS.
pub async fn create(
    assoc: &mut Association,
    ctx: u8,
    req: &Command,
    bytes: &[u8],
    service: ServiceContext<'_>,
) -> Result<(), AssocError> {
    let Some(given) = request_data(assoc, ctx, req, bytes, service, "mpps.create").await? else {
        return Ok(());
    };
    // The SCU may leave the UID to us (PS3.4 F.7.2.1.1); the response then names it.
    let uid = req
        .affected_sop_instance_uid
        .clone()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(pacsbox_archive::edit::new_uid);
    let mut attrs = MppsAttributes {
        accession: given.accession.clone(),
        study_uid: given.study_uid.clone(),
        step_id: given.step_id.clone(),
        ..MppsAttributes::default()
    };
    given.apply(&mut attrs);
    let archive = service.archive.clone();
    let (u, ae) = (uid.clone(), assoc.calling_ae.clone());
    let result =
        tokio::task::spawn_blocking(move || archive.index().mpps_create(&u, &ae, attrs, now()))
            .await
            .map_err(|e| AssocError::Malformed(format!("MPPS task failed: {e}")))?;
    let mut rsp = Command::response_to(req, Status::SUCCESS);
    rsp.affected_sop_class_uid = Some(MPPS_CLASS.to_owned());
    rsp.affected_sop_instance_uid = Some(uid.clone());
    match result {
        Ok(m) => {
            tracing::info!(
                calling_ae = assoc.calling_ae,
                uid,
                exam = m.exam,
                "MPPS created"
            );
            record(
                service,
                assoc,
                "mpps.create",
                format!(
                    "{uid} {} exam {}",
                    m.attrs.status,
                    if m.exam.is_empty() { "-" } else { &m.exam }
                ),
                "ok".into(),
            );
        }
        Err(e) => {
            let st = refused(service, assoc, "mpps.create", &uid, &e);
            rsp.status = Some(st);
            rsp = rsp.with_error_comment(&e.to_string());
        }
    }
    assoc.send_command(ctx, rsp.encode()).await
}

/// N-SET: attributes of an MPPS IN PROGRESS, or its end (COMPLETED, DISCONTINUED).
pub async fn set(
    assoc: &mut Association,
    ctx: u8,
    req: &Command,
    bytes: &[u8],
    service: ServiceContext<'_>,
) -> Result<(), AssocError> {
    let Some(uid) = req
        .requested_sop_instance_uid
        .clone()
        .filter(|u| !u.is_empty())
    else {
        return respond(
            assoc,
            ctx,
            req,
            NO_SUCH_INSTANCE,
            "no Requested SOP Instance UID",
        )
        .await;
    };
    let Some(given) = request_data(assoc, ctx, req, bytes, service, "mpps.set").await? else {
        return Ok(());
    };
    let archive = service.archive.clone();
    let u = uid.clone();
    let result = tokio::task::spawn_blocking(move || {
        archive.index().mpps_set(&u, move |a| given.apply(a), now())
    })
    .await
    .map_err(|e| AssocError::Malformed(format!("MPPS task failed: {e}")))?;
    match result {
        Ok(m) => {
            tracing::info!(
                calling_ae = assoc.calling_ae,
                uid,
                status = m.attrs.status,
                "MPPS set"
            );
            record(
                service,
                assoc,
                "mpps.set",
                format!(
                    "{uid} {} exam {}; {} series",
                    m.attrs.status,
                    if m.exam.is_empty() { "-" } else { &m.exam },
                    m.attrs.series.len()
                ),
                "ok".into(),
            );
            respond(assoc, ctx, req, Status::SUCCESS, "").await
        }
        Err(e) => {
            let st = refused(service, assoc, "mpps.set", &uid, &e);
            respond(assoc, ctx, req, st, &e.to_string()).await
        }
    }
}
