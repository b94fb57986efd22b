//! Query/retrieve as SCU, for fetching from the clinic's other PACS (`[fetch] from`): a
//! study-level C-FIND on the remote ([`find_studies`]) and a C-MOVE of one study from it to
//! this box ([`move_study`]), the remote sending the instances to our own SCP, so they are
//! stored, indexed and audited exactly as any C-STORE (the remote's AE needs the store right
//! in the peer table, or learning mode). C-MOVE rather than C-GET: every PACS supports it, and
//! the instances take the one ingest path there is.
//!
//! Responses are read as whole messages ([`Messages`]): a command and, when it says so, its
//! data set, each possibly cut over several P-DATA PDUs, several messages possibly sharing one.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dicom_ul::Pdu;
use dicom_ul::pdu::{PDataValue, PDataValueType};
use pacsbox_archive::Archive;
use pacsbox_archive::peers::PeerEntry;
pub use pacsbox_archive::remote::{FetchJob, FetchState, RemoteQuery, RemoteStudy};
use pacsbox_archive::scan::{self, Tag};
use pacsbox_archive::transfer_syntax::{self, DatasetEncoding};
use pacsbox_charset::{SpecificCharacterSet, TextVr};
use tokio::sync::watch;

use crate::association::Association;
use crate::dimse::{Command, CommandField, Status};
use crate::identifier::encode_elements;
use crate::scu::Destination;
use crate::trust::PeerTrust;

const STUDY_ROOT_FIND: &str = "1.2.840.10008.5.1.4.1.2.2.1";
const STUDY_ROOT_MOVE: &str = "1.2.840.10008.5.1.4.1.2.2.2";
/// The largest response identifier or message we take from a remote (a study-level answer is
/// a few hundred bytes).
const MAX_MESSAGE: usize = 1 << 20;

/// Sub-operation counts of a C-MOVE as the remote reported them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MoveProgress {
    pub remaining: Option<u16>,
    pub completed: u16,
    pub failed: u16,
    pub warning: u16,
}

fn native_syntaxes() -> Vec<String> {
    vec![
        transfer_syntax::EXPLICIT_VR_LE.to_owned(),
        transfer_syntax::IMPLICIT_VR_LE.to_owned(),
    ]
}

async fn open(
    peer: PeerEntry,
    trust: Option<&PeerTrust>,
    config: &crate::ScpConfig,
    abstract_syntax: &str,
) -> Result<(Association, u8, String), String> {
    let peer_ae = peer.ae_title.clone();
    let dest = Destination::of(peer).map_err(|why| format!("{peer_ae} {why}"))?;
    let proposals = [(abstract_syntax.to_owned(), native_syntaxes())];
    let mut assoc = dest
        .connect(trust, &config.ae_title, &proposals, config)
        .await?;
    let Some((ctx, ts)) = assoc
        .contexts
        .iter()
        .find(|(_, c)| c.abstract_syntax == abstract_syntax)
        .map(|(id, c)| (*id, c.transfer_syntax.clone()))
    else {
        assoc.release().await;
        return Err(format!("{peer_ae} refused {abstract_syntax}"));
    };
    Ok((assoc, ctx, ts))
}

/// Whole DIMSE messages from an association's P-DATA PDUs.
struct Messages {
    queued: VecDeque<PDataValue>,
}

impl Messages {
    fn new() -> Messages {
        Messages {
            queued: VecDeque::new(),
        }
    }

    async fn next(&mut self, assoc: &mut Association) -> Result<(Command, Vec<u8>), String> {
        let mut command: Vec<u8> = Vec::new();
        let mut decoded: Option<Command> = None;
        let mut data: Vec<u8> = Vec::new();
        loop {
            while let Some(pdv) = self.queued.pop_front() {
                let buf = match pdv.value_type {
                    PDataValueType::Command if decoded.is_none() => &mut command,
                    PDataValueType::Data if decoded.is_some() => &mut data,
                    kind => return Err(format!("unexpected {kind:?} fragment from the remote")),
                };
                buf.extend_from_slice(&pdv.data);
                if buf.len() > MAX_MESSAGE {
                    return Err("remote sent a message over 1 MiB".into());
                }
                if !pdv.is_last {
                    continue;
                }
                if let Some(c) = decoded.take() {
                    return Ok((c, data));
                }
                let c = Command::decode(&command).map_err(|e| format!("remote's command: {e}"))?;
                if !c.has_dataset() {
                    return Ok((c, Vec::new()));
                }
                decoded = Some(c);
            }
            match assoc.receive().await.map_err(|e| e.to_string())? {
                Pdu::PData { data } => self.queued.extend(data),
                Pdu::AbortRQ { source } => return Err(format!("remote aborted: {source:?}")),
                other => return Err(format!("remote sent {}", other.short_description())),
            }
        }
    }
}

fn identifier(q: &RemoteQuery) -> Vec<(Tag, [u8; 2], String)> {
    let mut e = vec![
        ((0x0008, 0x0005), *b"CS", "ISO_IR 192".to_owned()),
        ((0x0008, 0x0020), *b"DA", q.study_date.clone()),
        ((0x0008, 0x0030), *b"TM", String::new()),
        ((0x0008, 0x0050), *b"SH", q.accession.clone()),
        ((0x0008, 0x0052), *b"CS", "STUDY".to_owned()),
        ((0x0008, 0x0061), *b"CS", q.modality.clone()),
        ((0x0008, 0x1030), *b"LO", String::new()),
        ((0x0010, 0x0010), *b"PN", q.patient_name.clone()),
        ((0x0010, 0x0020), *b"LO", q.patient_id.clone()),
        ((0x0010, 0x0030), *b"DA", String::new()),
        ((0x0020, 0x000D), *b"UI", q.study_uid.clone()),
        ((0x0020, 0x1208), *b"IS", String::new()),
    ];
    e.sort_by_key(|(t, _, _)| *t);
    e
}

/// A response identifier as a study, its text decoded in the response's own character set.
fn study_of(bytes: &[u8], ts: &str) -> Result<RemoteStudy, String> {
    let elements = scan::scan_elements(bytes, DatasetEncoding::of(ts))
        .map_err(|e| format!("remote's identifier: {e}"))?;
    let charset = elements
        .iter()
        .find(|e| e.tag == (0x0008, 0x0005))
        .map(|e| SpecificCharacterSet::from_value(&String::from_utf8_lossy(&e.value)))
        .unwrap_or_default();
    let text = |tag: Tag, vr: TextVr| {
        elements
            .iter()
            .find(|e| e.tag == tag)
            .map(|e| charset.decode(&e.value, vr))
            .unwrap_or_default()
    };
    let short = |tag| text(tag, TextVr::ShortText);
    Ok(RemoteStudy {
        study_uid: short((0x0020, 0x000D)).trim_end_matches('\0').to_owned(),
        patient_name: text((0x0010, 0x0010), TextVr::PersonName),
        patient_id: short((0x0010, 0x0020)),
        birth_date: short((0x0010, 0x0030)),
        study_date: short((0x0008, 0x0020)),
        study_time: short((0x0008, 0x0030)),
        accession: short((0x0008, 0x0050)),
        modalities: short((0x0008, 0x0061)),
        description: short((0x0008, 0x1030)),
        instances: short((0x0020, 0x1208)).trim().parse().ok(),
    })
}

/// Studies on `peer` matching `q`, at most `limit` (past it the query is cancelled with
/// C-CANCEL, as a person scrolling a list would want). The error is for people.
pub async fn find_studies(
    peer: PeerEntry,
    trust: Option<&PeerTrust>,
    config: &crate::ScpConfig,
    q: &RemoteQuery,
    limit: usize,
) -> Result<Vec<RemoteStudy>, String> {
    let peer_ae = peer.ae_title.clone();
    let (mut assoc, ctx, ts) = open(peer, trust, config, STUDY_ROOT_FIND).await?;
    let result = find_on(&mut assoc, ctx, &ts, q, limit).await;
    match &result {
        Ok(_) => assoc.release().await,
        Err(_) => assoc.close().await,
    }
    result.map_err(|e| format!("C-FIND on {peer_ae}: {e}"))
}

async fn find_on(
    assoc: &mut Association,
    ctx: u8,
    ts: &str,
    q: &RemoteQuery,
    limit: usize,
) -> Result<Vec<RemoteStudy>, String> {
    let mut rq = Command::request(CommandField::CFindRq, 1);
    rq.affected_sop_class_uid = Some(STUDY_ROOT_FIND.to_owned());
    rq.priority = Some(0);
    rq.data_set_type = 0x0000;
    let err = |e: crate::association::AssocError| e.to_string();
    assoc.send_command(ctx, rq.encode()).await.map_err(err)?;
    let id = encode_elements(&identifier(q), DatasetEncoding::of(ts));
    assoc.send_data(ctx, id).await.map_err(err)?;
    let mut messages = Messages::new();
    let mut studies = Vec::new();
    let mut cancelled = false;
    loop {
        let (rsp, data) = messages.next(assoc).await?;
        if rsp.field != CommandField::CFindRsp || rsp.message_id_responded_to != Some(1) {
            return Err(format!("unexpected {:?}", rsp.field));
        }
        match rsp.status.unwrap_or(Status::PROCESSING_FAILURE) {
            Status(0xFF00) | Status(0xFF01) => {
                if studies.len() < limit {
                    studies.push(study_of(&data, ts)?);
                } else if !cancelled {
                    let mut cancel = Command::request(CommandField::CCancelRq, 2);
                    cancel.message_id = None;
                    cancel.message_id_responded_to = Some(1);
                    assoc
                        .send_command(ctx, cancel.encode())
                        .await
                        .map_err(err)?;
                    cancelled = true;
                }
            }
            Status::SUCCESS | Status::CANCEL => return Ok(studies),
            st => {
                return Err(format!(
                    "status {st:?}{}",
                    rsp.error_comment
                        .map(|c| format!(" ({c})"))
                        .unwrap_or_default()
                ));
            }
        }
    }
}

/// Moves `study_uid` from `peer` to `destination_ae` (this box), reporting each pending
/// response's counts; returns the final counts. Warnings and failed sub-operations are an
/// error naming the counts, since part of the study did not arrive.
pub async fn move_study(
    peer: PeerEntry,
    trust: Option<&PeerTrust>,
    config: &crate::ScpConfig,
    study_uid: &str,
    destination_ae: &str,
    mut on_progress: impl FnMut(MoveProgress),
) -> Result<MoveProgress, String> {
    let peer_ae = peer.ae_title.clone();
    let (mut assoc, ctx, ts) = open(peer, trust, config, STUDY_ROOT_MOVE).await?;
    let mut rq = Command::request(CommandField::CMoveRq, 1);
    rq.affected_sop_class_uid = Some(STUDY_ROOT_MOVE.to_owned());
    rq.priority = Some(0);
    rq.move_destination = Some(destination_ae.to_owned());
    rq.data_set_type = 0x0000;
    let id = encode_elements(
        &[
            ((0x0008, 0x0052), *b"CS", "STUDY".to_owned()),
            ((0x0020, 0x000D), *b"UI", study_uid.to_owned()),
        ],
        DatasetEncoding::of(&ts),
    );
    let sent = async {
        assoc.send_command(ctx, rq.encode()).await?;
        assoc.send_data(ctx, id).await
    }
    .await;
    if let Err(e) = sent {
        assoc.close().await;
        return Err(format!("C-MOVE on {peer_ae}: {e}"));
    }
    let mut messages = Messages::new();
    let result = loop {
        let (rsp, _) = match messages.next(&mut assoc).await {
            Ok(m) => m,
            Err(e) => break Err(e),
        };
        if rsp.field != CommandField::CMoveRsp {
            break Err(format!("unexpected {:?}", rsp.field));
        }
        let p = MoveProgress {
            remaining: rsp.remaining,
            completed: rsp.completed.unwrap_or(0),
            failed: rsp.failed.unwrap_or(0),
            warning: rsp.warning.unwrap_or(0),
        };
        match rsp.status.unwrap_or(Status::PROCESSING_FAILURE) {
            Status::PENDING => on_progress(p),
            Status::SUCCESS => break Ok(p),
            st => {
                break Err(format!(
                    "status {st:?}: {} completed, {} failed, {} warning{}",
                    p.completed,
                    p.failed,
                    p.warning,
                    rsp.error_comment
                        .map(|c| format!(" ({c})"))
                        .unwrap_or_default()
                ));
            }
        }
    };
    match &result {
        Ok(_) => assoc.release().await,
        Err(_) => assoc.close().await,
    }
    result.map_err(|e| format!("C-MOVE of {study_uid} from {peer_ae}: {e}"))
}

/// Fetches kept for the page after they end.
const KEEP_JOBS: usize = 100;

/// The fetches started since the box started (the last [`KEEP_JOBS`]), each a task on the
/// DICOM runtime; the web page lists them and polls their counts.
#[derive(Clone, Default)]
pub struct Fetches {
    jobs: Arc<Mutex<VecDeque<FetchJob>>>,
    next_id: Arc<AtomicU64>,
}

impl Fetches {
    /// Newest first.
    pub fn list(&self) -> Vec<FetchJob> {
        self.jobs
            .lock()
            .map(|j| j.iter().rev().cloned().collect())
            .unwrap_or_default()
    }

    fn update(&self, id: u64, f: impl FnOnce(&mut FetchJob)) {
        if let Ok(mut jobs) = self.jobs.lock()
            && let Some(j) = jobs.iter_mut().find(|j| j.id == id)
        {
            f(j);
        }
    }

    /// Starts pulling `study_uid` from `peer` to this box (`config.ae_title`); a study already
    /// being fetched from that peer is not asked for twice. Returns the job's id.
    pub fn start(
        &self,
        runtime: &tokio::runtime::Handle,
        peer: PeerEntry,
        trust: Option<Arc<PeerTrust>>,
        config: crate::ScpConfig,
        study_uid: String,
        requested_by: String,
    ) -> u64 {
        let Ok(mut jobs) = self.jobs.lock() else {
            return 0;
        };
        if let Some(j) = jobs.iter().find(|j| {
            j.state == FetchState::Running && j.peer == peer.ae_title && j.study_uid == study_uid
        }) {
            return j.id;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        jobs.push_back(FetchJob {
            id,
            peer: peer.ae_title.clone(),
            study_uid: study_uid.clone(),
            requested_by,
            started_unix: pacsbox_audit::now_unix(),
            state: FetchState::Running,
            completed: 0,
            failed: 0,
            remaining: None,
            error: String::new(),
        });
        while jobs.len() > KEEP_JOBS {
            jobs.pop_front();
        }
        drop(jobs);
        let me = self.clone();
        runtime.spawn(async move {
            let progress = |p: MoveProgress| {
                me.update(id, |j| {
                    j.completed = p.completed.into();
                    j.failed = p.failed.into();
                    j.remaining = p.remaining.map(u32::from);
                })
            };
            let dest = config.ae_title.clone();
            let result =
                move_study(peer, trust.as_deref(), &config, &study_uid, &dest, progress).await;
            me.update(id, |j| match result {
                Ok(p) => {
                    tracing::info!(
                        study_uid,
                        peer = j.peer,
                        completed = p.completed,
                        "fetch complete"
                    );
                    j.state = FetchState::Done;
                    j.completed = p.completed.into();
                    j.failed = p.failed.into();
                    j.remaining = Some(0);
                }
                Err(e) => {
                    tracing::warn!(study_uid, peer = j.peer, error = e, "fetch failed");
                    j.state = FetchState::Failed;
                    j.error = e;
                }
            });
        });
        id
    }
}

/// `[fetch] prefetch_priors`: when a study arrives (from anyone but the PACS fetched from), the
/// patient's newest earlier studies on each `[fetch] from` PACS are fetched, so the
/// radiologist finds the priors here when the new one is read. Arrivals are read from the
/// archive's recent-studies list every two seconds (a clinic receives a few studies an hour);
/// studies already here are not asked for, and a fetch already running is not repeated.
pub struct Prefetch {
    pub archive: Archive,
    pub from: Vec<String>,
    /// How many of the patient's newest earlier studies to have here.
    pub priors: usize,
    pub trust: Option<Arc<PeerTrust>>,
    pub config: crate::ScpConfig,
    pub fetches: Fetches,
    pub audit: pacsbox_audit::Audit,
}

impl Prefetch {
    pub fn start(self, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            // What arrived before the start is not new.
            let mut seen: HashSet<String> = self
                .archive
                .activity()
                .recent
                .into_iter()
                .map(|r| r.study_uid)
                .collect();
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
                if *stop.borrow() {
                    break;
                }
                if seen.len() > 100_000 {
                    seen.clear();
                }
                for r in self.archive.activity().recent {
                    if seen.insert(r.study_uid.clone()) && !self.from.contains(&r.calling_ae) {
                        self.priors_of(&r.study_uid).await;
                    }
                }
            }
        })
    }

    async fn priors_of(&self, study_uid: &str) {
        let patient_id = match self.archive.index().study(study_uid) {
            Ok(Some(s)) if !s.patient_id.trim().is_empty() => s.patient_id,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(study_uid, error = %e, "prefetch: reading the new study");
                return;
            }
        };
        for ae in &self.from {
            let peer = match self.archive.peer(ae) {
                Ok(Some(p)) => p,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(peer = ae, error = %e, "prefetch: reading the peer table");
                    continue;
                }
            };
            let q = RemoteQuery {
                patient_id: patient_id.clone(),
                ..RemoteQuery::default()
            };
            let mut found = match find_studies(
                peer.clone(),
                self.trust.as_deref(),
                &self.config,
                &q,
                500,
            )
            .await
            {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(peer = ae, error = e, "prefetch: searching for priors");
                    continue;
                }
            };
            // The patient ID must match exactly: C-FIND matching may be looser on the remote.
            found.retain(|s| s.study_uid != study_uid && s.patient_id == patient_id);
            found.sort_by(|a, b| {
                (&b.study_date, &b.study_time).cmp(&(&a.study_date, &a.study_time))
            });
            for prior in found.into_iter().take(self.priors) {
                if self
                    .archive
                    .index()
                    .study(&prior.study_uid)
                    .is_ok_and(|s| s.is_some())
                {
                    continue;
                }
                tracing::info!(
                    peer = ae,
                    study_uid = prior.study_uid,
                    "prefetching a prior study"
                );
                self.audit.record(
                    pacsbox_audit::Event::new("remote.prefetch", "pacsbox", "")
                        .study(&prior.study_uid)
                        .patient(format!("{} ({})", prior.patient_id, prior.patient_name))
                        .detail(format!("from {ae}, prior of {study_uid}")),
                );
                self.fetches.start(
                    &tokio::runtime::Handle::current(),
                    peer.clone(),
                    self.trust.clone(),
                    self.config.clone(),
                    prior.study_uid,
                    "prefetch".into(),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_identifier_reads_in_its_own_character_set() {
        // EUC-KR in ISO 2022 IR 149: 홍길동 in the ideographic group.
        let name = b"Hong^Gildong=\x1b$)C\xc8\xab\x1b(B^\x1b$)C\xb1\xe6\xb5\xbf\x1b(B";
        let elements = [
            ((0x0008, 0x0005), *b"CS", "\\ISO 2022 IR 149".to_owned()),
            ((0x0020, 0x000D), *b"UI", "1.2.3".to_owned()),
            ((0x0020, 0x1208), *b"IS", "12".to_owned()),
        ];
        // (0010,0010) in tag order between them, its bytes as a Korean modality sends them.
        let mut bytes = encode_elements(&elements[..1], DatasetEncoding::ExplicitLittle);
        bytes.extend_from_slice(&[0x10, 0x00, 0x10, 0x00, b'P', b'N']);
        bytes.extend_from_slice(&(name.len() as u16).to_le_bytes());
        bytes.extend_from_slice(name);
        bytes.extend(encode_elements(
            &elements[1..],
            DatasetEncoding::ExplicitLittle,
        ));
        let s = study_of(&bytes, transfer_syntax::EXPLICIT_VR_LE).unwrap();
        assert_eq!(s.study_uid, "1.2.3");
        assert_eq!(s.instances, Some(12));
        assert!(
            s.patient_name.starts_with("Hong^Gildong="),
            "{}",
            s.patient_name
        );
        assert!(s.patient_name.contains('홍'), "{}", s.patient_name);
    }

    #[test]
    fn the_query_asks_for_every_key_in_tag_order() {
        let q = RemoteQuery {
            patient_name: "KIM*".into(),
            ..RemoteQuery::default()
        };
        let e = identifier(&q);
        assert!(e.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(
            e.iter()
                .any(|(t, _, v)| *t == (0x0010, 0x0010) && v == "KIM*")
        );
        assert!(
            e.iter()
                .any(|(t, _, v)| *t == (0x0008, 0x0052) && v == "STUDY")
        );
    }
}
