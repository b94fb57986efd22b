//! The hash chain: a record's hash covers its content and its predecessor's hash, so changing,
//! removing or inserting a record breaks every link after it. [`verify`] walks the files and
//! names the first record of each break.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Event, Result, io_err};

/// The `prev` of the very first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One line of the trail. Field order is the serialised order, which the hash covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    pub unix: i64,
    pub actor: String,
    pub client: String,
    pub action: String,
    pub outcome: String,
    pub patient: String,
    pub study: String,
    pub detail: String,
    /// The hash of the record before this one ([`GENESIS`] for the first).
    pub prev: String,
    /// BLAKE2b (256 bits, hex) of this record serialised with `hash` empty.
    pub hash: String,
}

/// Longest value kept per field: values come from the network (a 14 KB "user name").
const MAX_FIELD: usize = 256;
const MAX_DETAIL: usize = 2048;

/// A value from the network as it may be recorded or logged: at most `max` characters (then
/// `…`), control characters shown as `?`.
pub fn printable(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

pub(crate) fn hash_bytes(parts: &[&[u8]]) -> String {
    use blake2::Digest;
    let mut h = blake2::Blake2b512::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
        .iter()
        .take(32)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Record {
    pub(crate) fn chained(seq: u64, unix: i64, e: &Event, prev: &str) -> Record {
        let mut r = Record {
            seq,
            unix,
            actor: printable(&e.actor, MAX_FIELD),
            client: printable(&e.client, MAX_FIELD),
            action: printable(&e.action, MAX_FIELD),
            outcome: printable(&e.outcome, MAX_FIELD),
            patient: printable(&e.patient, MAX_FIELD),
            study: printable(&e.study, MAX_FIELD),
            detail: printable(&e.detail, MAX_DETAIL),
            prev: prev.to_owned(),
            hash: String::new(),
        };
        r.hash = r.expected_hash();
        r
    }

    /// What `hash` must be for this content.
    pub fn expected_hash(&self) -> String {
        let body = Record {
            hash: String::new(),
            ..self.clone()
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        hash_bytes(&[&json])
    }
}

/// The trail's files (`YYYY-MM-DD.jsonl`), oldest first.
pub fn files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_err(dir)(e)),
    };
    v.sort();
    Ok(v)
}

/// Cuts a last line without its newline (a write a crash interrupted). Returns the bytes cut
/// and the last whole line: parsed, or as text when it does not parse.
pub(crate) fn cut_torn_tail(
    path: &Path,
) -> Result<(u64, Option<std::result::Result<Record, String>>)> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(io_err(path))?;
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let cut = (bytes.len() - keep) as u64;
    if cut > 0 {
        f.set_len(keep as u64).map_err(io_err(path))?;
        f.seek(SeekFrom::End(0)).map_err(io_err(path))?;
        f.sync_all().map_err(io_err(path))?;
    }
    let last = bytes[..keep]
        .split(|&b| b == b'\n')
        .rfind(|l| !l.is_empty())
        .map(|l| {
            let text = String::from_utf8_lossy(l).into_owned();
            serde_json::from_str::<Record>(&text).map_err(|_| text)
        });
    Ok((cut, last))
}

/// The sequence number of a file's first record.
pub(crate) fn first_seq(path: &Path) -> Result<Option<u64>> {
    let f = std::fs::File::open(path).map_err(io_err(path))?;
    let mut line = String::new();
    BufReader::new(f)
        .read_line(&mut line)
        .map_err(io_err(path))?;
    Ok(serde_json::from_str::<Record>(&line).ok().map(|r| r.seq))
}

/// A break in the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based line in `file`.
    pub line: usize,
    /// The record's sequence number, when it could be read.
    pub seq: Option<u64>,
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.seq {
            Some(s) => write!(
                f,
                "{} line {} (record {s}): {}",
                self.file.display(),
                self.line,
                self.what
            ),
            None => write!(
                f,
                "{} line {}: {}",
                self.file.display(),
                self.line,
                self.what
            ),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    pub files: usize,
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub problems: Vec<Problem>,
}

/// Walks every file in order and checks each record's hash, its link to the one before, and
/// that no sequence number is missing or repeated; also that no more was removed at the start
/// than the last `audit.pruned` record says.
pub fn verify(dir: &Path) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let mut prev: Option<Record> = None;
    let mut kept_from: Option<u64> = None;
    for path in files(dir)? {
        report.files += 1;
        let f = std::fs::File::open(&path).map_err(io_err(&path))?;
        for (i, line) in BufReader::new(f).split(b'\n').enumerate() {
            let line = line.map_err(io_err(&path))?;
            let problem = |seq, what: String| Problem {
                file: path.clone(),
                line: i + 1,
                seq,
                what,
            };
            let Ok(r) = serde_json::from_slice::<Record>(&line) else {
                report
                    .problems
                    .push(problem(None, "not a record of the trail".into()));
                continue;
            };
            report.records += 1;
            report.first_seq.get_or_insert(r.seq);
            report.last_seq = Some(r.seq);
            if r.hash != r.expected_hash() {
                report.problems.push(problem(
                    Some(r.seq),
                    "edited: its hash does not match its content".into(),
                ));
            }
            match &prev {
                Some(p) if r.seq != p.seq + 1 => {
                    let what = if r.seq > p.seq + 1 {
                        format!("records {}..{} are missing", p.seq + 1, r.seq - 1)
                    } else {
                        format!("out of order: follows record {}", p.seq)
                    };
                    report.problems.push(problem(Some(r.seq), what));
                }
                Some(p) if r.prev != p.hash => report.problems.push(problem(
                    Some(r.seq),
                    format!("does not link to record {} before it", p.seq),
                )),
                None if r.seq == 0 && r.prev != GENESIS => report.problems.push(problem(
                    Some(0),
                    "the first record does not start the chain".into(),
                )),
                _ => {}
            }
            if r.action == "audit.pruned"
                && let Some(n) = r
                    .detail
                    .rsplit_once("kept from seq ")
                    .and_then(|(_, n)| n.trim().parse::<u64>().ok())
            {
                kept_from = Some(n);
            }
            prev = Some(r);
        }
    }
    if let Some(first) = report.first_seq {
        let allowed = kept_from.unwrap_or(0);
        if first > allowed {
            let path = files(dir)?.first().cloned().unwrap_or_default();
            report.problems.insert(
                0,
                Problem {
                    file: path,
                    line: 1,
                    seq: Some(first),
                    what: format!(
                        "records {allowed}..{} were removed (retention kept from {allowed})",
                        first - 1
                    ),
                },
            );
        }
    }
    Ok(report)
}
