//! Reading the trail back for the admin page and its CSV export: filter by user or AE, patient,
//! action and date range; newest first.

use std::io::{BufRead, BufReader};
use std::path::Path;

use crate::chain::{Record, files};
use crate::{Result, day_of, io_err};

/// What to look for; empty fields match everything. Text matches are case-insensitive
/// substrings.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// The web user or calling AE title.
    pub actor: String,
    /// Matched against the patient, the study and the detail (so a search for the patient,
    /// by name or ID, is found too).
    pub patient: String,
    pub action: String,
    /// `YYYY-MM-DD` (UTC), inclusive.
    pub from: String,
    pub to: String,
}

fn has(hay: &str, needle: &str) -> bool {
    needle.is_empty() || hay.to_lowercase().contains(&needle.to_lowercase())
}

impl Filter {
    fn matches(&self, r: &Record) -> bool {
        let day = day_of(r.unix);
        has(&r.actor, &self.actor)
            && (has(&r.patient, &self.patient)
                || has(&r.study, &self.patient)
                || has(&r.detail, &self.patient))
            && has(&r.action, &self.action)
            && (self.from.is_empty() || day.as_str() >= self.from.as_str())
            && (self.to.is_empty() || day.as_str() <= self.to.as_str())
    }
}

/// Matching records, newest first, at most `limit`.
pub fn read(dir: &Path, filter: &Filter, limit: usize) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    for path in files(dir)?.iter().rev() {
        let day = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        // Files are named by the day of their records: skip whole days outside the range.
        if (!filter.from.is_empty() && day < filter.from.as_str())
            || (!filter.to.is_empty() && day > filter.to.as_str())
        {
            continue;
        }
        let f = std::fs::File::open(path).map_err(io_err(path))?;
        let mut day_records = Vec::new();
        for line in BufReader::new(f).split(b'\n') {
            let line = line.map_err(io_err(path))?;
            if let Ok(r) = serde_json::from_slice::<Record>(&line)
                && filter.matches(&r)
            {
                day_records.push(r);
            }
        }
        for r in day_records.into_iter().rev() {
            if out.len() == limit {
                return Ok(out);
            }
            out.push(r);
        }
    }
    Ok(out)
}

/// RFC 4180 CSV with a header row; fields that a spreadsheet would run as a formula are
/// prefixed with `'`.
pub fn to_csv(records: &[Record]) -> String {
    fn field(s: &str) -> String {
        let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{s}")
        } else {
            s.to_owned()
        };
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s
        }
    }
    let mut out = String::from("seq,time_utc,actor,client,action,outcome,patient,study,detail\r\n");
    for r in records {
        let time = time::OffsetDateTime::from_unix_timestamp(r.unix)
            .ok()
            .and_then(|t| {
                t.format(&time::macros::format_description!(
                    "[year]-[month]-[day] [hour]:[minute]:[second]"
                ))
                .ok()
            })
            .unwrap_or_else(|| r.unix.to_string());
        let row = [
            r.seq.to_string(),
            time,
            r.actor.clone(),
            r.client.clone(),
            r.action.clone(),
            r.outcome.clone(),
            r.patient.clone(),
            r.study.clone(),
            r.detail.clone(),
        ];
        let row: Vec<String> = row.iter().map(|s| field(s)).collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}
