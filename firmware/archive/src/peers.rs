//! The DICOM peer table and the access mode's state, kept here so the web page and the DICOM
//! service read one source. Peers named in the settings or on the command line are fixed and
//! live in memory; peers learned while the box was in its learning period, and the learning
//! period's start and end, live in the index database so a restart keeps them. This module
//! only stores: whether an association may do something is decided in `pacsbox-dicom`
//! (`access.rs`), and addresses are kept as the text the caller gave (no networking here).

use std::collections::VecDeque;
use std::fmt;
use std::sync::Mutex;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::index::{Index, Result, dec, enc};

pub(crate) const LEARNED_PEERS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("learned_peers");
/// Where an admin said a learned (or web-added) peer listens: AE → [`PeerAddress`] (postcard).
/// A table of its own, so the learned peers' records keep their encoding.
pub(crate) const PEER_ADDRESSES: TableDefinition<&str, &[u8]> =
    TableDefinition::new("peer_addresses");
pub(crate) const ACCESS: TableDefinition<&str, i64> = TableDefinition::new("access");
/// Refused calling AEs, keyed by (AE, address) as postcard; bounded by [`MAX_REFUSED`].
pub(crate) const REFUSED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("refused_aes");
const LEARNING_STARTED: &str = "learning_started_unix";
const LEARNING_CLOSED: &str = "learning_closed_unix";
/// Set when an admin reopens learning: the period then ends here instead of at the first
/// start's deadline.
const LEARNING_UNTIL: &str = "learning_until_unix";

/// Refused associations remembered for the status page; the oldest goes first.
pub const MAX_REFUSED: usize = 32;
/// A repeat refusal of a listed AE updates its row on disk at most this often (seconds), so a
/// device retrying in a loop does not cost an index write per try.
const REFUSED_PERSIST_EVERY_S: i64 = 60;
/// An admin reopens learning for 1 to this many days.
pub const MAX_RELEARN_DAYS: u32 = 90;

/// What a peer may do. Verification (C-ECHO) needs no right.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRights {
    /// C-STORE to us.
    pub store: bool,
    /// C-FIND.
    pub query: bool,
    /// C-GET, and C-MOVE as the requestor.
    pub retrieve: bool,
    /// Be the destination of a C-MOVE.
    pub move_dest: bool,
}

impl PeerRights {
    pub const NONE: PeerRights = PeerRights {
        store: false,
        query: false,
        retrieve: false,
        move_dest: false,
    };
    pub const ALL: PeerRights = PeerRights {
        store: true,
        query: true,
        retrieve: true,
        move_dest: true,
    };
    pub const STORE: PeerRights = PeerRights {
        store: true,
        ..PeerRights::NONE
    };
    pub const MOVE_DEST: PeerRights = PeerRights {
        move_dest: true,
        ..PeerRights::NONE
    };

    /// Parses `store,query,retrieve,move`, `all` or `none` (commas, any order, case-insensitive).
    pub fn parse(text: &str) -> std::result::Result<PeerRights, String> {
        let mut r = PeerRights::NONE;
        if text.trim().is_empty() {
            return Err("no rights given (use none, all, or store,query,retrieve,move)".into());
        }
        for word in text.split(',').map(str::trim) {
            match word.to_ascii_lowercase().as_str() {
                "store" => r.store = true,
                "query" => r.query = true,
                "retrieve" => r.retrieve = true,
                "move" => r.move_dest = true,
                "all" => r = PeerRights::ALL,
                "none" => {}
                other => {
                    return Err(format!(
                        "unknown right {other:?} (expected store, query, retrieve, move, all or none)"
                    ));
                }
            }
        }
        Ok(r)
    }
}

impl fmt::Display for PeerRights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<&str> = [
            (self.store, "store"),
            (self.query, "query"),
            (self.retrieve, "retrieve"),
            (self.move_dest, "move"),
        ]
        .into_iter()
        .filter_map(|(on, w)| on.then_some(w))
        .collect();
        if words.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&words.join(","))
        }
    }
}

/// Who may associate. `Learning` records unknown AEs that store as store-only peers until the
/// learning period ends, then acts as `Closed`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum AccessMode {
    #[default]
    Learning,
    Closed,
    Open,
}

/// Where a peer entry comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerSource {
    Config,
    Cli,
    Learned,
}

/// Which client certificate a peer must present on the DICOM TLS port, and which server
/// certificate it must show when we open an association to it over TLS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertRule {
    /// The certificate whose SHA-256 is this (64 upper-case hex digits, no colons).
    Sha256(String),
    /// Any valid certificate issued by the clinic CA (`dicom_tls_ca`).
    Ca,
}

impl CertRule {
    /// Parses `ca` or a SHA-256 fingerprint as browsers and `openssl x509 -fingerprint
    /// -sha256` show it (colons, spaces and case do not matter).
    pub fn parse(text: &str) -> std::result::Result<CertRule, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("ca") {
            return Ok(CertRule::Ca);
        }
        // `openssl x509 -fingerprint` prints `sha256 Fingerprint=AB:CD…`.
        let t = t.rsplit_once('=').map_or(t, |(_, v)| v);
        let hex: String = t
            .chars()
            .filter(|c| !matches!(c, ':' | ' '))
            .collect::<String>()
            .to_ascii_uppercase();
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(CertRule::Sha256(hex))
        } else {
            Err(format!(
                "certificate {text:?}: expected \"ca\" or a SHA-256 fingerprint (64 hex digits, colons allowed)"
            ))
        }
    }
}

impl fmt::Display for CertRule {
    /// `AB:CD:…`, as the status page and browsers show fingerprints; or `ca`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertRule::Ca => f.write_str("ca"),
            CertRule::Sha256(hex) => {
                let pairs: Vec<&str> = hex
                    .as_bytes()
                    .chunks(2)
                    .filter_map(|c| std::str::from_utf8(c).ok())
                    .collect();
                f.write_str(&pairs.join(":"))
            }
        }
    }
}

/// One row of the peer table as the web page lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerEntry {
    pub ae_title: String,
    /// The host or IP address associations of this AE must come from (and C-MOVE sends to).
    pub host: Option<String>,
    /// Where C-MOVE sends to.
    pub port: Option<u16>,
    pub rights: PeerRights,
    /// Associations of this AE must arrive on the DICOM TLS port, and C-MOVE reaches it over
    /// TLS (its `port` then being its TLS port).
    #[serde(default)]
    pub tls: bool,
    /// The certificate it must present (implies `tls`).
    #[serde(default)]
    pub cert: Option<CertRule>,
    pub source: PeerSource,
    /// Learned peers only.
    pub first_seen_unix: Option<i64>,
    pub last_seen_unix: Option<i64>,
    /// The address a learned peer last associated from (information; not enforced).
    pub last_address: Option<String>,
}

impl PeerEntry {
    /// Whether this peer is reached and must arrive over TLS.
    pub fn needs_tls(&self) -> bool {
        self.tls || self.cert.is_some()
    }
}

/// What the index keeps of a learned peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnedPeer {
    pub rights: PeerRights,
    pub first_seen_unix: i64,
    pub last_seen_unix: i64,
    pub last_address: String,
}

/// A host and port an admin gave a peer on the web page: C-MOVE, forwarding and fetching
/// reach it there, and its associations must come from that host (as with the settings'
/// `host`). Over TLS, it is trusted through the clinic CA (pins are the settings' business).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerAddress {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl LearnedPeer {
    /// Its row in the peer table: bound to a host only when an admin gave it an address.
    pub(crate) fn entry(self, ae_title: String, address: Option<PeerAddress>) -> PeerEntry {
        let (host, port, tls) = match address {
            Some(a) => (Some(a.host), Some(a.port), a.tls),
            None => (None, None, false),
        };
        PeerEntry {
            ae_title,
            host,
            port,
            rights: self.rights,
            tls,
            cert: None,
            source: PeerSource::Learned,
            first_seen_unix: Some(self.first_seen_unix),
            last_seen_unix: Some(self.last_seen_unix),
            last_address: Some(self.last_address),
        }
    }
}

/// An association refused because its calling AE was not known (or came from the wrong host).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedAe {
    pub ae_title: String,
    pub address: String,
    pub first_unix: i64,
    pub last_unix: i64,
    pub count: u64,
}

/// The access mode now, for the status page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessState {
    /// As configured.
    pub configured: AccessMode,
    /// What applies now (`Learning` turns into `Closed` when its period is over).
    pub effective: AccessMode,
    /// When the learning period ends (or ended) by itself.
    pub learning_deadline_unix: Option<i64>,
    /// When an admin closed it, or when it was found over.
    pub learning_closed_unix: Option<i64>,
}

/// Everything the authenticated status page shows about DICOM access (never part of the
/// public `/status.json`: it names AEs and addresses).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessReport {
    pub state: AccessState,
    pub peers: Vec<PeerEntry>,
    /// Newest first.
    pub refused: Vec<RefusedAe>,
}

/// The settings the registry is started with.
#[derive(Clone, Debug, Default)]
pub struct AccessSettings {
    pub mode: AccessMode,
    /// How long learning lasts after the first start of this data folder.
    pub learning_period_s: u64,
    /// Peers from the settings file and the command line.
    pub fixed: Vec<PeerEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("{0} is a peer from the settings or the command line; change it there")]
    Fixed(String),
    #[error("no learned peer {0}")]
    Unknown(String),
    #[error("AE title {0:?} must be 1-16 printable ASCII characters without backslash")]
    BadTitle(String),
    #[error("learning can be reopened only where the settings say access = \"learning\"")]
    NotLearning,
    #[error("learn for 1 to {MAX_RELEARN_DAYS} days, not {0}")]
    BadDays(u32),
    #[error(transparent)]
    Index(#[from] crate::IndexError),
}

/// Whether `ae` can be an AE title (PS3.5 AE: 16 characters, no backslash or control).
pub fn valid_ae_title(ae: &str) -> bool {
    let t = ae.trim();
    !t.is_empty() && t.len() <= 16 && t.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\\')
}

impl Index {
    pub(crate) fn learned_peers(&self) -> Result<Vec<(String, LearnedPeer)>> {
        let txn = self.db().begin_read()?;
        let t = txn.open_table(LEARNED_PEERS)?;
        let mut out = Vec::new();
        for r in t.iter()? {
            let (k, v) = r?;
            out.push((k.value().to_owned(), dec(v.value())?));
        }
        Ok(out)
    }

    pub(crate) fn learned_peer(&self, ae: &str) -> Result<Option<LearnedPeer>> {
        let txn = self.db().begin_read()?;
        let t = txn.open_table(LEARNED_PEERS)?;
        Ok(match t.get(ae)? {
            Some(v) => Some(dec(v.value())?),
            None => None,
        })
    }

    pub(crate) fn put_learned_peer(&self, ae: &str, p: &LearnedPeer) -> Result<()> {
        let txn = self.begin_write()?;
        txn.open_table(LEARNED_PEERS)?
            .insert(ae, enc(p)?.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    pub(crate) fn delete_learned_peer(&self, ae: &str) -> Result<bool> {
        let txn = self.begin_write()?;
        let existed = txn.open_table(LEARNED_PEERS)?.remove(ae)?.is_some();
        txn.open_table(PEER_ADDRESSES)?.remove(ae)?;
        txn.commit()?;
        Ok(existed)
    }

    pub(crate) fn peer_address(&self, ae: &str) -> Result<Option<PeerAddress>> {
        let txn = self.db().begin_read()?;
        let t = txn.open_table(PEER_ADDRESSES)?;
        Ok(match t.get(ae)? {
            Some(v) => Some(dec(v.value())?),
            None => None,
        })
    }

    /// Sets (or, with `None`, removes) a peer's address.
    pub(crate) fn put_peer_address(&self, ae: &str, a: Option<&PeerAddress>) -> Result<()> {
        let txn = self.begin_write()?;
        {
            let mut t = txn.open_table(PEER_ADDRESSES)?;
            match a {
                Some(a) => {
                    t.insert(ae, enc(a)?.as_slice())?;
                }
                None => {
                    t.remove(ae)?;
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn refused_rows(&self) -> Result<Vec<RefusedAe>> {
        let txn = self.db().begin_read()?;
        let t = txn.open_table(REFUSED)?;
        let mut out = Vec::new();
        for r in t.iter()? {
            let (_, v) = r?;
            out.push(dec(v.value())?);
        }
        Ok(out)
    }

    /// Replaces the stored refused list with `rows` (at most [`MAX_REFUSED`], so whole).
    pub(crate) fn put_refused(&self, rows: &VecDeque<RefusedAe>) -> Result<()> {
        let txn = self.begin_write()?;
        {
            let mut t = txn.open_table(REFUSED)?;
            t.retain(|_, _| false)?;
            for r in rows {
                t.insert(
                    enc(&(&r.ae_title, &r.address))?.as_slice(),
                    enc(r)?.as_slice(),
                )?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn access_value(&self, key: &str) -> Result<Option<i64>> {
        let txn = self.db().begin_read()?;
        let t = txn.open_table(ACCESS)?;
        Ok(t.get(key)?.map(|v| v.value()))
    }

    /// Sets `key` unless it is set; returns the value it has.
    fn access_value_once(&self, key: &str, value: i64) -> Result<i64> {
        let txn = self.begin_write()?;
        let v = {
            let mut t = txn.open_table(ACCESS)?;
            let existing = t.get(key)?.map(|v| v.value());
            match existing {
                Some(v) => v,
                None => {
                    t.insert(key, value)?;
                    value
                }
            }
        };
        txn.commit()?;
        Ok(v)
    }

    /// Sets `set` to `value` and removes `clear`, in one transaction.
    fn access_swap(&self, set: &str, value: i64, clear: &str) -> Result<()> {
        let txn = self.begin_write()?;
        {
            let mut t = txn.open_table(ACCESS)?;
            t.insert(set, value)?;
            t.remove(clear)?;
        }
        txn.commit()?;
        Ok(())
    }
}

/// The peer table and access state; one per archive (see `Archive::peers`).
pub struct PeerRegistry {
    settings: AccessSettings,
    /// The learning period's start, read (or set, on the first start) at `configure`.
    learning_started: Mutex<Option<i64>>,
    refused: Mutex<RefusedList>,
}

/// The refused AEs in memory (oldest first) and when they were last written to the index.
#[derive(Default)]
struct RefusedList {
    rows: VecDeque<RefusedAe>,
    /// A row was added since the last write.
    new_rows: bool,
    /// Counts or times changed since the last write.
    dirty: bool,
    last_write_unix: Option<i64>,
}

impl Default for PeerRegistry {
    fn default() -> Self {
        PeerRegistry {
            settings: AccessSettings {
                mode: AccessMode::Learning,
                learning_period_s: 7 * 86_400,
                fixed: Vec::new(),
            },
            learning_started: Mutex::new(None),
            refused: Mutex::new(RefusedList::default()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update leaves the value whole, so a panic elsewhere cannot spoil it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PeerRegistry {
    /// The registry for `settings`; the first start of a data folder starts its learning
    /// period (recorded in the index, so a restart does not restart it). The refused AEs of
    /// earlier runs come back from the index.
    pub(crate) fn configure(
        index: &Index,
        settings: AccessSettings,
        now_unix: i64,
    ) -> Result<PeerRegistry> {
        let started = index.access_value_once(LEARNING_STARTED, now_unix)?;
        let mut rows = index.refused_rows()?;
        rows.sort_by_key(|r| r.last_unix);
        let skip = rows.len().saturating_sub(MAX_REFUSED);
        Ok(PeerRegistry {
            settings,
            learning_started: Mutex::new(Some(started)),
            refused: Mutex::new(RefusedList {
                rows: rows.into_iter().skip(skip).collect(),
                ..Default::default()
            }),
        })
    }

    pub(crate) fn fixed(&self, ae: &str) -> Option<&PeerEntry> {
        self.settings.fixed.iter().find(|p| p.ae_title == ae)
    }

    pub(crate) fn state(&self, index: &Index, now_unix: i64) -> Result<AccessState> {
        let configured = self.settings.mode;
        let reopened_until = index.access_value(LEARNING_UNTIL)?;
        let deadline = reopened_until.or_else(|| {
            lock(&self.learning_started)
                .map(|s| s.saturating_add(self.settings.learning_period_s as i64))
        });
        let closed = index.access_value(LEARNING_CLOSED)?;
        let over = closed.is_some() || deadline.is_some_and(|d| now_unix >= d);
        let effective = match configured {
            AccessMode::Learning if over => AccessMode::Closed,
            m => m,
        };
        Ok(AccessState {
            configured,
            effective,
            learning_deadline_unix: deadline,
            learning_closed_unix: closed,
        })
    }

    pub(crate) fn close_learning(&self, index: &Index, now_unix: i64) -> Result<i64> {
        index.access_value_once(LEARNING_CLOSED, now_unix)
    }

    /// Opens the learning period again until `now + days` (an admin's decision, e.g. when a
    /// new modality is installed). Only where the settings ask for learning: `closed` and
    /// `open` are the settings' word and stay so.
    pub(crate) fn reopen_learning(
        &self,
        index: &Index,
        days: u32,
        now_unix: i64,
    ) -> std::result::Result<i64, PeerError> {
        if self.settings.mode != AccessMode::Learning {
            return Err(PeerError::NotLearning);
        }
        if !(1..=MAX_RELEARN_DAYS).contains(&days) {
            return Err(PeerError::BadDays(days));
        }
        let until = now_unix.saturating_add(i64::from(days) * 86_400);
        index.access_swap(LEARNING_UNTIL, until, LEARNING_CLOSED)?;
        Ok(until)
    }

    /// Notes a refused association. Returns the list to write to the index when a write is
    /// due (at most once a second for new rows, once a minute for repeats), else `None`:
    /// the caller writes it off the async workers.
    pub(crate) fn record_refused(
        &self,
        ae: &str,
        address: &str,
        now_unix: i64,
    ) -> Option<VecDeque<RefusedAe>> {
        // Titles and addresses come from the network: capped before they are kept.
        let ae: String = ae.chars().take(16).collect();
        let address: String = address.chars().take(64).collect();
        let mut list = lock(&self.refused);
        if let Some(pos) = list
            .rows
            .iter()
            .position(|r| r.ae_title == ae && r.address == address)
            && let Some(mut r) = list.rows.remove(pos)
        {
            r.last_unix = now_unix;
            r.count = r.count.saturating_add(1);
            list.rows.push_back(r);
            list.dirty = true;
        } else {
            if list.rows.len() >= MAX_REFUSED {
                list.rows.pop_front();
            }
            list.rows.push_back(RefusedAe {
                ae_title: ae,
                address,
                first_unix: now_unix,
                last_unix: now_unix,
                count: 1,
            });
            list.new_rows = true;
        }
        let since = list
            .last_write_unix
            .map_or(i64::MAX, |t| now_unix.saturating_sub(t));
        let due = (list.new_rows && since >= 1) || (list.dirty && since >= REFUSED_PERSIST_EVERY_S);
        if !due {
            return None;
        }
        list.new_rows = false;
        list.dirty = false;
        list.last_write_unix = Some(now_unix);
        Some(list.rows.clone())
    }

    /// The list when it has changes not yet in the index (for an orderly stop).
    pub(crate) fn unwritten_refused(&self) -> Option<VecDeque<RefusedAe>> {
        let mut list = lock(&self.refused);
        if !(list.new_rows || list.dirty) {
            return None;
        }
        list.new_rows = false;
        list.dirty = false;
        Some(list.rows.clone())
    }

    pub(crate) fn refused(&self) -> Vec<RefusedAe> {
        lock(&self.refused).rows.iter().rev().cloned().collect()
    }

    /// Drops `ae` from the refused list, in memory and in the index.
    pub(crate) fn forget_refused(&self, index: &Index, ae: &str) -> Result<()> {
        let mut list = lock(&self.refused);
        let before = list.rows.len();
        list.rows.retain(|r| r.ae_title != ae);
        if list.rows.len() != before {
            index.put_refused(&list.rows)?;
        }
        Ok(())
    }

    pub(crate) fn list(&self, index: &Index) -> Result<Vec<PeerEntry>> {
        let mut out = self.settings.fixed.clone();
        for (ae, p) in index.learned_peers()? {
            if self.fixed(&ae).is_some() {
                continue;
            }
            let address = index.peer_address(&ae)?;
            out.push(p.entry(ae, address));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_parse_and_print() {
        assert_eq!(PeerRights::parse("all").unwrap(), PeerRights::ALL);
        assert_eq!(PeerRights::parse("Store").unwrap(), PeerRights::STORE);
        let r = PeerRights::parse("query, retrieve,move").unwrap();
        assert_eq!(r.to_string(), "query,retrieve,move");
        assert_eq!(PeerRights::parse("none").unwrap().to_string(), "none");
        let err = PeerRights::parse("store,delete").unwrap_err();
        assert!(err.contains("delete"), "{err}");
        assert!(PeerRights::parse("").is_err());
    }

    #[test]
    fn learning_started_once_and_closes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.redb");
        let settings = AccessSettings {
            mode: AccessMode::Learning,
            learning_period_s: 100,
            fixed: Vec::new(),
        };
        {
            let index = Index::open(&path).unwrap();
            let reg = PeerRegistry::configure(&index, settings.clone(), 1000).unwrap();
            let st = reg.state(&index, 1050).unwrap();
            assert_eq!(st.effective, AccessMode::Learning);
            assert_eq!(st.learning_deadline_unix, Some(1100));
            assert_eq!(
                reg.state(&index, 1100).unwrap().effective,
                AccessMode::Closed
            );
        }
        let index = Index::open(&path).unwrap();
        // A restart later keeps the first start's deadline.
        let reg = PeerRegistry::configure(&index, settings, 5000).unwrap();
        assert_eq!(
            reg.state(&index, 1010).unwrap().learning_deadline_unix,
            Some(1100)
        );
        assert_eq!(reg.close_learning(&index, 1020).unwrap(), 1020);
        assert_eq!(reg.close_learning(&index, 1030).unwrap(), 1020);
        assert_eq!(
            reg.state(&index, 1030).unwrap().effective,
            AccessMode::Closed
        );
    }

    #[test]
    fn refused_list_is_bounded_merges_repeats_and_outlives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.redb");
        let settings = AccessSettings::default();
        {
            let index = Index::open(&path).unwrap();
            let reg = PeerRegistry::configure(&index, settings.clone(), 0).unwrap();
            let mut writes = 0;
            for i in 0..(MAX_REFUSED + 5) {
                if let Some(rows) = reg.record_refused(&format!("AE{i}"), "10.0.0.1", i as i64) {
                    index.put_refused(&rows).unwrap();
                    writes += 1;
                }
            }
            assert_eq!(
                writes,
                MAX_REFUSED + 5,
                "one new row a second: each written"
            );
            // A repeat is written when a minute has passed since the last write, not sooner.
            let rows = reg.record_refused("AE10", "10.0.0.1", 999).unwrap();
            index.put_refused(&rows).unwrap();
            assert!(reg.record_refused("AE10", "10.0.0.1", 1000).is_none());
            let list = reg.refused();
            assert_eq!(list.len(), MAX_REFUSED);
            assert_eq!(list[0].ae_title, "AE10");
            assert_eq!(list[0].count, 3);
            assert!(!list.iter().any(|r| r.ae_title == "AE0"));
            // Many new titles in one second: one write, the rest when due or at the stop.
            assert!(reg.record_refused("FLOOD1", "h", 2000).is_some());
            assert!(reg.record_refused("FLOOD2", "h", 2000).is_none());
            let rows = reg.unwritten_refused().unwrap();
            index.put_refused(&rows).unwrap();
            assert!(reg.unwritten_refused().is_none());
            reg.forget_refused(&index, "AE20").unwrap();
        }
        let index = Index::open(&path).unwrap();
        let reg = PeerRegistry::configure(&index, settings, 3000).unwrap();
        let list = reg.refused();
        assert_eq!(list.len(), MAX_REFUSED - 1);
        assert_eq!(list[0].ae_title, "FLOOD2");
        assert_eq!(list[2].ae_title, "AE10");
        assert_eq!(list[2].count, 3);
        assert!(!list.iter().any(|r| r.ae_title == "AE20"));
        reg.record_refused(&"X".repeat(100), "h", 3001);
        assert_eq!(reg.refused()[0].ae_title.len(), 16);
    }

    #[test]
    fn learning_reopens_for_days_and_closes_again() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("index.redb")).unwrap();
        let settings = AccessSettings {
            mode: AccessMode::Learning,
            learning_period_s: 100,
            fixed: Vec::new(),
        };
        let reg = PeerRegistry::configure(&index, settings.clone(), 0).unwrap();
        reg.close_learning(&index, 50).unwrap();
        assert_eq!(reg.state(&index, 60).unwrap().effective, AccessMode::Closed);
        assert_eq!(
            reg.reopen_learning(&index, 2, 1000).unwrap(),
            1000 + 2 * 86_400
        );
        let st = reg.state(&index, 1001).unwrap();
        assert_eq!(st.effective, AccessMode::Learning);
        assert_eq!(st.learning_closed_unix, None);
        assert_eq!(st.learning_deadline_unix, Some(1000 + 2 * 86_400));
        assert_eq!(
            reg.state(&index, 1000 + 2 * 86_400).unwrap().effective,
            AccessMode::Closed
        );
        assert_eq!(reg.close_learning(&index, 2000).unwrap(), 2000);
        assert_eq!(
            reg.state(&index, 2001).unwrap().effective,
            AccessMode::Closed
        );
        assert!(matches!(
            reg.reopen_learning(&index, 0, 3000),
            Err(PeerError::BadDays(0))
        ));
        let closed = PeerRegistry::configure(
            &index,
            AccessSettings {
                mode: AccessMode::Closed,
                ..settings
            },
            0,
        )
        .unwrap();
        assert!(matches!(
            closed.reopen_learning(&index, 3, 3000),
            Err(PeerError::NotLearning)
        ));
    }

    #[test]
    fn certificate_rules_parse_as_openssl_and_browsers_print_them() {
        let hex = "AB".repeat(32);
        let colons = vec!["ab"; 32].join(":");
        assert_eq!(
            CertRule::parse(&colons).unwrap(),
            CertRule::Sha256(hex.clone())
        );
        assert_eq!(
            CertRule::parse(&format!("sha256 Fingerprint={colons}")).unwrap(),
            CertRule::Sha256(hex.clone())
        );
        assert_eq!(CertRule::parse("CA").unwrap(), CertRule::Ca);
        assert_eq!(
            CertRule::Sha256(hex).to_string(),
            colons.to_ascii_uppercase()
        );
        assert!(CertRule::parse("abcd").is_err());
        assert!(CertRule::parse(&"g".repeat(64)).is_err());
    }
}
