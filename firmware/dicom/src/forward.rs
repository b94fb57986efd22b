//! Forwarding (auto-routing) to other PACS: the rules, the router that turns the archive's
//! arrivals into jobs, and the senders that deliver them with C-STORE (`scu.rs`, the same code
//! as C-MOVE). The queue itself is the archive's (`pacsbox_archive::forward`): durable, so a
//! job survives `kill -9` and power cuts; this module decides what goes where and sends.
//!
//! - Router: every [`ROUTE_POLL`], the arrivals the group commit recorded are matched against the
//!   rules (calling AE, modality, SOP class, tag patterns) and become one job per instance and
//!   peer, in one durable transaction that also removes the arrivals. A `study` rule holds the
//!   study until no instance arrived for `stable_s` seconds.
//! - Senders: per peer up to `associations_per_peer` tasks; each takes the next due study
//!   nobody else is sending, sends its due instances on one association, removes the delivered
//!   jobs and backs the rest off exponentially (capped). A job failing `alarm_after` times
//!   counts towards the FORWARD FAILED alarm and is recorded in the audit trail once.
//! - C-ECHO ([`echo`]): `pacsbox echo PEER`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dicom_core::Tag;
use dicom_ul::Pdu;
use dicom_ul::pdu::{AbortRQServiceProviderReason, PDataValueType};
use pacsbox_archive::Archive;
use pacsbox_archive::forward::ForwardJob;
use pacsbox_archive::index::wildcard_match;
use pacsbox_archive::transfer_syntax;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::association::AssocError;
use crate::dimse::{Command, CommandField, Status};
use crate::scu::{self, Cancel, Destination, SubOperationError};
use crate::trust::PeerTrust;

/// How often the router looks for arrivals (an empty read transaction: cheap), which sets the
/// delay from stored to sent.
const ROUTE_POLL: Duration = Duration::from_millis(50);
/// How often an idle sender looks for due jobs (retries, holds ending, "Send to…"); new jobs
/// from the router wake it at once.
const POLL: Duration = Duration::from_millis(500);
/// Jobs taken per association (a bigger study continues on the next).
const STUDY_BATCH: usize = 2000;
/// Delivered jobs are removed from the queue in groups of this many (a crash resends at most
/// these).
const DELIVERED_BATCH: usize = 64;
const VERIFICATION: &str = "1.2.840.10008.1.1";

/// When a rule's instances go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardMode {
    /// Each instance as soon as it is stored.
    #[default]
    Instance,
    /// A study once no instance of it arrived for `stable_s` seconds.
    Study,
}

fn default_stable_s() -> u64 {
    60
}

/// A `[[forward]]` rule: instances it matches go to every peer in `to`. Empty filters match
/// everything; within a filter any listed value matches; all filters must match.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ForwardRule {
    /// For the queue, the logs and the audit trail.
    pub name: String,
    /// AE titles from the peer table (with host and port).
    pub to: Vec<String>,
    /// Calling AE titles of the sender of the instance.
    #[serde(default)]
    pub calling_ae: Vec<String>,
    /// Modality (0008,0060), case-insensitive.
    #[serde(default)]
    pub modality: Vec<String>,
    /// SOP Class UIDs.
    #[serde(default)]
    pub sop_class: Vec<String>,
    /// Attribute keyword (e.g. `StationName`, `StudyDescription`) or `ggggeeee` → pattern with
    /// `*` and `?`, case-insensitive.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub mode: ForwardMode,
    /// Study mode: seconds without a new instance before the study is sent.
    #[serde(default = "default_stable_s")]
    pub stable_s: u64,
}

/// A tag named by keyword or as 8 hex digits.
fn tag_of(name: &str) -> Option<Tag> {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
    let hex = name.trim_matches(|c| c == '(' || c == ')').replace(',', "");
    if hex.len() == 8
        && let Ok(v) = u32::from_str_radix(&hex, 16)
    {
        return Some(Tag((v >> 16) as u16, v as u16));
    }
    dicom_dictionary_std::StandardDataDictionary
        .by_name(name)
        .map(|e| e.tag())
}

impl ForwardRule {
    /// What makes a rule unusable, for the settings check.
    pub fn check(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("a [[forward]] rule needs a name".into());
        }
        if self.to.is_empty() {
            return Err(format!("forward rule {:?}: `to` names no peer", self.name));
        }
        for k in self.tags.keys() {
            if tag_of(k).is_none() {
                return Err(format!(
                    "forward rule {:?}: {k:?} is no attribute keyword or ggggeeee tag",
                    self.name
                ));
            }
        }
        Ok(())
    }

    /// Whether the rule takes an instance; `tag` reads an attribute of it (only called when
    /// the other filters passed).
    fn wants(&self, f: &Facts, mut tag: impl FnMut(Tag) -> Option<String>) -> bool {
        let any = |list: &[String], v: &str, fold: bool| {
            list.is_empty()
                || list.iter().any(|x| {
                    if fold {
                        x.trim().eq_ignore_ascii_case(v)
                    } else {
                        x.trim() == v
                    }
                })
        };
        if !(any(&self.calling_ae, &f.calling_ae, false)
            && any(&self.modality, &f.modality, true)
            && any(&self.sop_class, &f.sop_class, false))
        {
            return false;
        }
        self.tags.iter().all(|(k, pattern)| {
            let value = tag_of(k).and_then(&mut tag).unwrap_or_default();
            wildcard_match(&pattern.to_uppercase(), &value.trim().to_uppercase())
        })
    }
}

/// What the rules look at, from the index.
struct Facts {
    calling_ae: String,
    modality: String,
    sop_class: String,
}

/// `[forwarding]`: how the queue is worked.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardSettings {
    /// Associations open at once to one peer.
    pub associations_per_peer: usize,
    /// Failed attempts after which a job counts as failing (alarm, audit).
    pub alarm_after: u32,
    /// Longest wait between two attempts, seconds.
    pub max_backoff_s: u64,
}

impl Default for ForwardSettings {
    fn default() -> Self {
        ForwardSettings {
            associations_per_peer: 1,
            alarm_after: pacsbox_archive::forward::DEFAULT_ALARM_AFTER,
            max_backoff_s: 600,
        }
    }
}

impl ForwardSettings {
    /// Seconds before the next try after `attempts` failures: 10 s doubling, capped.
    pub fn retry_in(&self, attempts: u32) -> i64 {
        let exp = attempts.saturating_sub(1).min(20);
        let s = 10u64
            .saturating_mul(1 << exp)
            .min(self.max_backoff_s.max(1));
        i64::try_from(s).unwrap_or(i64::MAX)
    }
}

fn now_unix() -> i64 {
    pacsbox_audit::now_unix()
}

/// Runs an index call off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, pacsbox_archive::IndexError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(format!("index task failed: {e}")),
    }
}

/// What forwarding works with; [`Forwarding::start`] runs it.
pub struct Forwarding {
    pub archive: Archive,
    pub rules: Vec<ForwardRule>,
    pub settings: ForwardSettings,
    /// Our AE title, PDU size and timeouts for the associations opened.
    pub scp: crate::ScpConfig,
    /// DICOM TLS, for peers whose entry says `tls`.
    pub trust: Option<Arc<PeerTrust>>,
    pub audit: pacsbox_audit::Audit,
}

struct Forwarder {
    setup: Forwarding,
    /// Studies being sent, per peer (two senders never take the same one).
    busy: Mutex<HashMap<String, Vec<String>>>,
    /// Shutting down: a study being sent stops after its current instance.
    stop: watch::Receiver<bool>,
    /// The router queued jobs: idle senders look now.
    routed: tokio::sync::Notify,
}

impl std::ops::Deref for Forwarder {
    type Target = Forwarding;
    fn deref(&self) -> &Forwarding {
        &self.setup
    }
}

impl Forwarding {
    /// Starts the router and the senders on the current tokio runtime; they stop when `stop`
    /// turns true (a study being sent stops after its current instance, the rest stays
    /// queued).
    pub fn start(self, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let f = Arc::new(Forwarder {
            setup: self,
            busy: Mutex::default(),
            stop: stop.clone(),
            routed: tokio::sync::Notify::new(),
        });
        spawn_all(f, stop)
    }
}

fn spawn_all(f: Arc<Forwarder>, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tasks = tokio::task::JoinSet::new();
        if !f.rules.is_empty() {
            tasks.spawn(route_loop(f.clone(), stop.clone()));
        }
        let mut started: HashSet<String> = HashSet::new();
        let mut stop_rx = stop.clone();
        loop {
            for peer in f.sendable_peers().await {
                if started.insert(peer.clone()) {
                    for _ in 0..f.settings.associations_per_peer.max(1) {
                        tasks.spawn(send_loop(f.clone(), peer.clone(), stop.clone()));
                    }
                }
            }
            tokio::select! {
                _ = stop_rx.changed() => break,
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
            if *stop_rx.borrow() {
                break;
            }
        }
        while tasks.join_next().await.is_some() {}
    })
}

impl Forwarder {
    /// Peers that may have jobs: every rule's targets, and every peer with an address (a
    /// person's "Send to…").
    async fn sendable_peers(&self) -> Vec<String> {
        let mut out: Vec<String> = self.rules.iter().flat_map(|r| r.to.clone()).collect();
        let archive = self.archive.clone();
        match blocking(move || archive.peers()).await {
            Ok(peers) => out.extend(
                peers
                    .into_iter()
                    .filter(|p| p.host.is_some() && p.port.is_some())
                    .map(|p| p.ae_title),
            ),
            Err(e) => tracing::warn!(error = e, "forwarding: reading the peer table"),
        }
        out.sort();
        out.dedup();
        out
    }

    /// Routes up to 512 arrivals; returns how many there were and whether jobs were queued.
    fn route_once(&self) -> Result<(usize, bool), pacsbox_archive::IndexError> {
        let index = self.archive.index();
        let arrivals = index.forward_arrivals(512)?;
        if arrivals.is_empty() {
            return Ok((0, false));
        }
        let now = now_unix();
        let mut jobs = Vec::new();
        let mut holds: Vec<(String, String, i64)> = Vec::new();
        let mut modality_of: HashMap<String, String> = HashMap::new();
        for (_, sop) in &arrivals {
            let Some(rec) = index.instance(sop)? else {
                continue;
            };
            let modality = match modality_of.get(&rec.series_uid) {
                Some(m) => m.clone(),
                None => {
                    let m = index
                        .series(&rec.series_uid)?
                        .map(|s| s.modality)
                        .unwrap_or_default();
                    modality_of.insert(rec.series_uid.clone(), m.clone());
                    m
                }
            };
            let facts = Facts {
                calling_ae: rec.source_ae.clone(),
                modality,
                sop_class: rec.sop_class_uid.clone(),
            };
            let mut header: Option<Option<dicom_object::DefaultDicomObject>> = None;
            let mut tag = |t: Tag| -> Option<String> {
                let obj = header.get_or_insert_with(|| read_header(&self.archive, &rec));
                obj.as_ref()?
                    .element(t)
                    .ok()?
                    .to_str()
                    .ok()
                    .map(|s| s.into_owned())
            };
            for rule in &self.rules {
                if !rule.wants(&facts, &mut tag) {
                    continue;
                }
                for peer in &rule.to {
                    jobs.push(ForwardJob {
                        peer: peer.clone(),
                        study_uid: rec.study_uid.clone(),
                        series_uid: rec.series_uid.clone(),
                        sop_uid: sop.clone(),
                        origin: format!("rule {}", rule.name),
                        enqueued_unix: now,
                        next_try_unix: now,
                        attempts: 0,
                        last_error: String::new(),
                    });
                    if rule.mode == ForwardMode::Study {
                        let until = now + i64::try_from(rule.stable_s).unwrap_or(i64::MAX / 2);
                        let hold = (peer.clone(), rec.study_uid.clone(), until);
                        if !holds.contains(&hold) {
                            holds.push(hold);
                        }
                    }
                }
            }
        }
        let seqs: Vec<u64> = arrivals.iter().map(|(s, _)| *s).collect();
        index.forward_route(&seqs, &jobs, &holds)?;
        if !jobs.is_empty() {
            tracing::debug!(
                arrivals = arrivals.len(),
                jobs = jobs.len(),
                "forwarding: routed"
            );
        }
        Ok((arrivals.len(), !jobs.is_empty()))
    }

    /// Sends one study's due jobs to `peer`; false when nothing was due.
    async fn send_next(self: &Arc<Self>, peer: &str) -> bool {
        let busy: Vec<String> = self
            .busy
            .lock()
            .map(|b| b.get(peer).cloned().unwrap_or_default())
            .unwrap_or_default();
        let (archive, p) = (self.archive.clone(), peer.to_owned());
        let due = blocking(move || {
            archive
                .index()
                .forward_due(&p, now_unix(), &busy, STUDY_BATCH)
        })
        .await;
        let (study, jobs) = match due {
            Ok(Some(d)) => d,
            Ok(None) => return false,
            Err(e) => {
                tracing::warn!(peer, error = e, "forwarding: reading the queue");
                return false;
            }
        };
        {
            let Ok(mut b) = self.busy.lock() else {
                return false;
            };
            let list = b.entry(peer.to_owned()).or_default();
            if list.contains(&study) {
                // Another sender took it between our read and now.
                return true;
            }
            list.push(study.clone());
        }
        self.send_study(peer, &study, jobs).await;
        if let Ok(mut b) = self.busy.lock()
            && let Some(list) = b.get_mut(peer)
        {
            list.retain(|s| *s != study);
        }
        true
    }

    async fn send_study(&self, peer_ae: &str, study: &str, jobs: Vec<ForwardJob>) {
        let archive = self.archive.clone();
        let (ae, sops): (String, Vec<String>) = (
            peer_ae.to_owned(),
            jobs.iter().map(|j| j.sop_uid.clone()).collect(),
        );
        let looked_up = blocking(move || {
            let peer = archive.peer(&ae)?;
            let mut recs = Vec::with_capacity(sops.len());
            for sop in &sops {
                recs.push(archive.index().instance(sop)?);
            }
            Ok((peer, recs))
        })
        .await;
        let (peer, recs) = match looked_up {
            Ok(v) => v,
            Err(e) => return self.failed(&jobs, &format!("reading the index: {e}")).await,
        };
        let dest = match peer.map(Destination::of) {
            None => return self.failed(&jobs, "not in the peer table").await,
            Some(Err(why)) => return self.failed(&jobs, why).await,
            Some(Ok(d)) => d,
        };
        // Instances deleted since they were queued have nothing left to send.
        let mut gone = Vec::new();
        let mut work = Vec::new();
        for (job, rec) in jobs.into_iter().zip(recs) {
            match rec {
                Some(r) => work.push((job, r)),
                None => gone.push(job),
            }
        }
        if !gone.is_empty() {
            self.delivered(&gone).await;
        }
        if work.is_empty() {
            return;
        }
        let proposals = scu::proposals(work.iter().map(|(_, r)| r));
        let mut assoc = match dest
            .connect(
                self.trust.as_deref(),
                &self.scp.ae_title,
                &proposals,
                &self.scp,
            )
            .await
        {
            Ok(a) => a,
            Err(e) => {
                let jobs: Vec<ForwardJob> = work.into_iter().map(|(j, _)| j).collect();
                return self.failed(&jobs, &format!("cannot associate: {e}")).await;
            }
        };
        let started = Instant::now();
        let (mut sent, mut done, mut failures) = (0usize, Vec::new(), 0usize);
        let mut cancel = Cancel {
            watch_for: None,
            cancelled: false,
        };
        let mut next = work
            .first()
            .map(|(_, r)| scu::prepare(&assoc.contexts, &self.archive, r));
        for (i, (job, rec)) in work.iter().enumerate() {
            // The rest stays queued as it is, for the next start.
            if *self.stop.borrow() {
                break;
            }
            let Some(current) = next.take() else { break };
            next = work
                .get(i + 1)
                .map(|(_, r)| scu::prepare(&assoc.contexts, &self.archive, r));
            let message_id = (i as u16).wrapping_add(1);
            let outcome = scu::store(
                &mut assoc,
                current,
                &job.sop_uid,
                rec,
                message_id,
                None,
                &mut cancel,
            )
            .await;
            match outcome {
                Ok(s) if !s.is_failure() => {
                    sent += 1;
                    done.push(job.clone());
                    if done.len() >= DELIVERED_BATCH {
                        self.delivered(&std::mem::take(&mut done)).await;
                    }
                }
                Ok(s) => {
                    failures += 1;
                    let why = format!("{} answered C-STORE status {s:?}", dest.ae_title);
                    self.failed(std::slice::from_ref(job), &why).await;
                }
                Err(SubOperationError::Association(e)) => {
                    if !matches!(e, AssocError::Closed | AssocError::Aborted(_)) {
                        assoc
                            .abort(AbortRQServiceProviderReason::ReasonNotSpecified)
                            .await;
                    }
                    self.delivered(&std::mem::take(&mut done)).await;
                    let rest: Vec<ForwardJob> = work[i..].iter().map(|(j, _)| j.clone()).collect();
                    let why = format!("{} dropped the association: {e}", dest.ae_title);
                    self.failed(&rest, &why).await;
                    self.audit_study(peer_ae, study, sent, rest.len(), &why);
                    return;
                }
                Err(e) => {
                    failures += 1;
                    self.failed(std::slice::from_ref(job), &e.to_string()).await;
                }
            }
        }
        assoc.release().await;
        self.delivered(&done).await;
        tracing::info!(
            peer = peer_ae,
            study_uid = study,
            sent,
            failed = failures,
            ms = started.elapsed().as_millis() as u64,
            "forwarded"
        );
        let why = if failures > 0 {
            "some instances refused"
        } else {
            ""
        };
        self.audit_study(peer_ae, study, sent, failures, why);
    }

    /// One record per study and association: what reached the peer.
    fn audit_study(&self, peer: &str, study: &str, sent: usize, failed: usize, why: &str) {
        if sent == 0 {
            return;
        }
        let outcome = if failed == 0 {
            "ok".to_owned()
        } else {
            format!("partial: {failed} not sent ({why})")
        };
        self.audit.record(
            pacsbox_audit::Event::new("forward.delivered", &self.scp.ae_title, "")
                .study(study)
                .outcome(outcome)
                .detail(format!("{sent} instances to {peer}")),
        );
    }

    async fn delivered(&self, jobs: &[ForwardJob]) {
        if jobs.is_empty() {
            return;
        }
        let (archive, jobs_owned) = (self.archive.clone(), jobs.to_vec());
        if let Err(e) = blocking(move || archive.index().forward_delivered(&jobs_owned)).await {
            // They stay queued and are sent again: a duplicate, never a loss.
            tracing::error!(error = e, "forwarding: removing delivered jobs");
        }
    }

    /// Backs the jobs off; those reaching `alarm_after` failures are logged and audited (once
    /// per study and failure).
    async fn failed(&self, jobs: &[ForwardJob], why: &str) {
        if jobs.is_empty() {
            return;
        }
        let settings = self.settings.clone();
        let (archive, jobs_owned, reason) = (self.archive.clone(), jobs.to_vec(), why.to_owned());
        let stored = blocking(move || {
            archive
                .index()
                .forward_failed(&jobs_owned, &reason, now_unix(), |n| settings.retry_in(n))
        })
        .await;
        let stored = match stored {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = e, "forwarding: recording a failure");
                return;
            }
        };
        tracing::warn!(
            peer = jobs[0].peer,
            study_uid = jobs[0].study_uid,
            instances = jobs.len(),
            attempts = stored.first().map_or(0, |j| j.attempts),
            error = why,
            "forwarding failed; will retry"
        );
        let mut audited: Vec<(&str, &str)> = Vec::new();
        for j in stored
            .iter()
            .filter(|j| j.attempts == self.settings.alarm_after)
        {
            if audited.contains(&(&j.peer, &j.study_uid)) {
                continue;
            }
            audited.push((&j.peer, &j.study_uid));
            let n = stored
                .iter()
                .filter(|s| s.study_uid == j.study_uid && s.attempts >= self.settings.alarm_after)
                .count();
            self.audit.record(
                pacsbox_audit::Event::new("forward.failed", &self.scp.ae_title, "")
                    .study(&j.study_uid)
                    .outcome(format!("failed: {why}"))
                    .detail(format!(
                        "{n} instances to {} failed {} times",
                        j.peer, j.attempts
                    )),
            );
        }
    }
}

/// The instance's header (up to the pixel data), for tag filters.
fn read_header(
    archive: &Archive,
    rec: &pacsbox_archive::InstanceRecord,
) -> Option<dicom_object::DefaultDicomObject> {
    let reader = archive
        .open_part10(rec)
        .inspect_err(|e| tracing::warn!(file = rec.rel_path, error = %e, "forwarding: reading for a tag filter"))
        .ok()?;
    dicom_object::OpenFileOptions::new()
        .read_preamble(dicom_object::file::ReadPreamble::Always)
        .read_until(dicom_dictionary_std::tags::PIXEL_DATA)
        .from_reader(reader)
        .inspect_err(|e| tracing::warn!(file = rec.rel_path, error = %e, "forwarding: parsing for a tag filter"))
        .ok()
}

async fn route_loop(f: Arc<Forwarder>, mut stop: watch::Receiver<bool>) {
    loop {
        let g = f.clone();
        let routed = tokio::task::spawn_blocking(move || g.route_once()).await;
        let more = match routed {
            Ok(Ok((n, queued))) => {
                if queued {
                    f.routed.notify_waiters();
                }
                n >= 512
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "forwarding: routing arrivals");
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "forwarding: router task failed");
                false
            }
        };
        if *stop.borrow() {
            return;
        }
        if !more {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(ROUTE_POLL) => {}
            }
        }
    }
}

async fn send_loop(f: Arc<Forwarder>, peer: String, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        // Registered before looking, so a wake-up while looking is not lost.
        let woken = f.routed.notified();
        // A stop does not wait for a slow peer (a connect to a host that drops packets takes
        // the idle timeout): what was not answered stays queued and is sent again.
        let sent = tokio::select! {
            _ = stop.changed() => return,
            sent = f.send_next(&peer) => sent,
        };
        if !sent {
            tokio::select! {
                _ = stop.changed() => return,
                _ = woken => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

/// C-ECHO to a peer of the table: the round trip from association request to release.
pub async fn echo(
    peer: pacsbox_archive::peers::PeerEntry,
    trust: Option<&PeerTrust>,
    config: &crate::ScpConfig,
) -> Result<Duration, String> {
    let peer_ae = peer.ae_title.clone();
    let dest = Destination::of(peer).map_err(|why| format!("{peer_ae} {why}"))?;
    let started = Instant::now();
    let proposals = [(
        VERIFICATION.to_owned(),
        vec![
            transfer_syntax::EXPLICIT_VR_LE.to_owned(),
            transfer_syntax::IMPLICIT_VR_LE.to_owned(),
        ],
    )];
    let mut assoc = dest
        .connect(trust, &config.ae_title, &proposals, config)
        .await?;
    let Some(ctx) = assoc.contexts.keys().next().copied() else {
        assoc.release().await;
        return Err(format!("{peer_ae} accepted no Verification context"));
    };
    let mut rq = Command::request(CommandField::CEchoRq, 1);
    rq.affected_sop_class_uid = Some(VERIFICATION.to_owned());
    assoc
        .send_command(ctx, rq.encode())
        .await
        .map_err(|e| e.to_string())?;
    let status = loop {
        match assoc.receive().await.map_err(|e| e.to_string())? {
            Pdu::PData { data } => {
                if let Some(c) = data
                    .iter()
                    .filter(|p| p.value_type == PDataValueType::Command)
                    .find_map(|p| Command::decode(&p.data).ok())
                    .filter(|c| c.field == CommandField::CEchoRsp)
                {
                    break c.status.unwrap_or(Status::PROCESSING_FAILURE);
                }
            }
            other => return Err(format!("{peer_ae} answered {}", other.short_description())),
        }
    };
    assoc.release().await;
    if status != Status::SUCCESS {
        return Err(format!("{peer_ae} answered C-ECHO with status {status:?}"));
    }
    Ok(started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(ae: &str, modality: &str) -> Facts {
        Facts {
            calling_ae: ae.into(),
            modality: modality.into(),
            sop_class: "1.2.840.10008.5.1.4.1.1.2".into(),
        }
    }

    fn rule(toml_text: &str) -> ForwardRule {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn filters_all_must_match_and_tags_are_read_only_when_needed() {
        let r = rule(
            "name = \"ct\"\nto = [\"PACS\"]\nmodality = [\"CT\"]\n\
             tags = { StationName = \"ct*\" }",
        );
        r.check().unwrap();
        let mut reads = 0;
        assert!(!r.wants(&facts("CT1", "MR"), |_| {
            reads += 1;
            None
        }));
        assert_eq!(
            reads, 0,
            "the header is not read when the modality already fails"
        );
        assert!(r.wants(&facts("CT1", "ct"), |t| {
            assert_eq!(t, Tag(0x0008, 0x1010));
            Some("CT_ROOM_2 ".into())
        }));
        assert!(!r.wants(&facts("CT1", "CT"), |_| Some("MR_ROOM".into())));
        let by_ae = rule("name = \"a\"\nto = [\"PACS\"]\ncalling_ae = [\"US1\"]");
        assert!(by_ae.wants(&facts("US1", "US"), |_| None));
        assert!(!by_ae.wants(&facts("US2", "US"), |_| None));
    }

    #[test]
    fn unknown_tags_and_rules_without_peers_are_refused() {
        assert!(
            rule("name = \"x\"\nto = [\"P\"]\ntags = { StationNmae = \"A\" }")
                .check()
                .is_err()
        );
        assert!(rule("name = \"x\"\nto = []").check().is_err());
        assert_eq!(
            tag_of("(0008,1030)"),
            Some(Tag(0x0008, 0x1030)),
            "StudyDescription by number"
        );
    }

    #[test]
    fn backoff_doubles_to_its_cap() {
        let s = ForwardSettings::default();
        let waits: Vec<i64> = (1..=8).map(|n| s.retry_in(n)).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 600, 600]);
        assert_eq!(s.retry_in(u32::MAX), 600);
    }
}
