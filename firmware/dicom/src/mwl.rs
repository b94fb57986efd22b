//! Modality Worklist SCP (C-FIND on 1.2.840.10008.5.1.4.31, PS3.4 Annex K): the scheduled
//! exams of the archive (`pacsbox_archive::worklist`) as worklist items.
//!
//! The identifier is read as a tree (the keys of the Scheduled Procedure Step Sequence are in
//! its item) and its text decoded in the request's Specific Character Set. Matching is PS3.4
//! C.2.2.2 on each non-empty key: names with the archive's person-name matching (wildcards,
//! every component group, Korean included), dates and times with ranges. Every requested key
//! comes back (IHE RAD TF-2 4.5 return keys), empty when unknown; an empty Scheduled Procedure
//! Step Sequence is universal and gets the whole step. Names go out in the request's character
//! set when it can carry them (ISO 2022 IR 149 for Korean), else UTF-8 (ISO_IR 192). Only
//! exams still scheduled are items. Scheduled Procedure Step Start Date and Time that are both
//! ranges are one date-time range (PS3.4 C.2.2.2.5). The candidates come from the archive's
//! narrowest exam index the keys allow (date, patient ID, name, accession, modality, station);
//! matching runs on a blocking thread and the items stream as pendings, C-CANCEL watched
//! between batches (`pendings.rs`, shared with C-FIND).

use std::borrow::Cow;
use std::ops::ControlFlow;

use pacsbox_archive::deid::dataset::{self as ds, Elem, Enc, Value};
use pacsbox_archive::query::{Attr, Matcher, value_matches};
use pacsbox_archive::transfer_syntax::DatasetEncoding;
use pacsbox_archive::worklist::{Exam, ExamKeys, ExamState};
use pacsbox_charset::{SpecificCharacterSet, TextVr, encode_iso2022_ir149};

use crate::association::{AssocError, Association};
use crate::context::ServiceContext;
use crate::dimse::{Command, Status, respond};
use crate::pendings::{self, Streamed};

const SPECIFIC_CHARACTER_SET: u32 = 0x0008_0005;
const SPS_SEQUENCE: u32 = 0x0040_0100;
const SPS_START_DATE: u32 = 0x0040_0002;
const SPS_START_TIME: u32 = 0x0040_0003;
const STATION_AE: u32 = 0x0040_0001;
const REFERENCED_STUDY_SEQUENCE: u32 = 0x0008_1110;
/// Detached Study Management, what Referenced Study Sequence items name (IHE RAD SWF).
const DETACHED_STUDY_CLASS: &str = "1.2.840.10008.3.1.2.3.1";

/// The keys of the Scheduled Procedure Step item we hold, returned whole when the request's
/// sequence is empty.
const SPS_KEYS: &[(u32, [u8; 2])] = &[
    (0x0008_0060, *b"CS"),
    (STATION_AE, *b"AE"),
    (SPS_START_DATE, *b"DA"),
    (SPS_START_TIME, *b"TM"),
    (0x0040_0006, *b"PN"),
    (0x0040_0007, *b"LO"),
    (0x0040_0008, *b"SQ"),
    (0x0040_0009, *b"SH"),
    (0x0040_0010, *b"SH"),
    (0x0040_0011, *b"SH"),
    (0x0040_0020, *b"CS"),
];

/// The data set encoding of a transfer syntax, if it is an uncompressed native one.
pub(crate) fn enc_of(ts: &str) -> Option<Enc> {
    match DatasetEncoding::of(ts) {
        DatasetEncoding::ImplicitLittle => Some(Enc::IMPLICIT_LE),
        DatasetEncoding::ExplicitLittle => Some(Enc::EXPLICIT_LE),
        DatasetEncoding::ExplicitBig => Some(Enc {
            explicit: true,
            big: true,
        }),
        DatasetEncoding::Deflated => None,
    }
}

/// A request key: its tag and VR, the decoded value, and for a sequence its first item's keys.
#[derive(Clone, Debug)]
struct Key {
    tag: u32,
    vr: [u8; 2],
    text: String,
    item: Option<Vec<Key>>,
}

#[derive(Debug)]
pub(crate) struct WorklistRequest {
    charset: SpecificCharacterSet,
    keys: Vec<Key>,
}

fn text_vr(vr: [u8; 2]) -> Option<TextVr> {
    match &vr {
        b"PN" => Some(TextVr::PersonName),
        b"LO" | b"SH" | b"UC" | b"CS" | b"AE" => Some(TextVr::ShortText),
        b"LT" | b"ST" | b"UT" => Some(TextVr::LongText),
        _ => None,
    }
}

fn keys_of(elems: &[Elem<'_>], charset: &SpecificCharacterSet) -> Vec<Key> {
    elems
        .iter()
        .filter(|e| e.tag >> 16 != 0x0002 && e.tag & 0xFFFF != 0 && e.tag != SPECIFIC_CHARACTER_SET)
        .map(|e| {
            let (text, item) = match &e.value {
                Value::Bytes(b) => {
                    let text = match text_vr(e.vr) {
                        Some(vr) => charset.decode(b, vr),
                        None => String::from_utf8_lossy(b)
                            .trim_matches(|c: char| c == '\0' || c == ' ')
                            .to_owned(),
                    };
                    (text, None)
                }
                Value::Seq { items, .. } => (
                    String::new(),
                    Some(
                        items
                            .first()
                            .map(|i| keys_of(i, charset))
                            .unwrap_or_default(),
                    ),
                ),
                Value::Fragments(_) => (String::new(), None),
            };
            Key {
                tag: e.tag,
                vr: if matches!(e.value, Value::Seq { .. }) {
                    *b"SQ"
                } else {
                    e.vr
                },
                text: text.trim().to_owned(),
                item,
            }
        })
        .collect()
}

pub(crate) fn parse(bytes: &[u8], ts: &str) -> Result<WorklistRequest, String> {
    let enc = enc_of(ts).ok_or("deflated identifiers are not read")?;
    let elems = ds::read(bytes, enc).map_err(|e| e.to_string())?;
    let charset = elems
        .iter()
        .find(|e| e.tag == SPECIFIC_CHARACTER_SET)
        .and_then(|e| e.bytes())
        .map(|b| SpecificCharacterSet::from_value(&String::from_utf8_lossy(b)))
        .unwrap_or_default();
    let keys = keys_of(&elems, &charset);
    if keys.is_empty() {
        return Err("empty identifier".into());
    }
    if let Some(k) = keys.iter().find(|k| k.tag == SPS_SEQUENCE)
        && k.vr != *b"SQ"
    {
        return Err("Scheduled Procedure Step Sequence is not a sequence".into());
    }
    Ok(WorklistRequest { charset, keys })
}

/// An exam's value for a top-level key; `None` for a key we do not hold.
fn exam_value(e: &Exam, tag: u32) -> Option<String> {
    Some(match tag {
        0x0008_0050 => e.accession.clone(),
        0x0008_0090 => e.referring_physician.clone(),
        0x0010_0010 => e.patient_name.clone(),
        0x0010_0020 => e.patient_id.clone(),
        0x0010_0021 => e.issuer.clone(),
        0x0010_0030 => e.birth_date.clone(),
        0x0010_0040 => e.sex.clone(),
        0x0020_000D => e.study_uid.clone(),
        0x0032_1060 => e.procedure_description.clone(),
        0x0040_1001 => e.requested_procedure_id.clone(),
        _ => return None,
    })
}

/// An exam's value for a Scheduled Procedure Step key.
fn step_value(e: &Exam, tag: u32) -> Option<String> {
    Some(match tag {
        0x0008_0060 => e.modality.clone(),
        STATION_AE => e.station_ae.clone(),
        SPS_START_DATE => e.date.clone(),
        SPS_START_TIME => e.time.clone(),
        0x0040_0006 => e.performing_physician.clone(),
        0x0040_0007 => e.procedure_description.clone(),
        0x0040_0009 => e.step_id.clone(),
        0x0040_0020 => "SCHEDULED".to_owned(),
        _ => return None,
    })
}

/// `HHMMSS` from a TM value or bound: fractions dropped, missing minutes/seconds as zeros.
fn time6(t: &str) -> String {
    let t = t.split('.').next().unwrap_or("");
    format!("{t:0<6}")
}

/// PS3.4 C.2.2.2 matching of one key's value, by its VR.
fn key_matches(vr: [u8; 2], pattern: &str, value: &str) -> bool {
    match &vr {
        b"PN" => value_matches(
            Attr::PatientName,
            &Matcher::parse(Attr::PatientName, pattern),
            value,
        ),
        b"DA" => value_matches(
            Attr::StudyDate,
            &Matcher::parse(Attr::StudyDate, pattern),
            value,
        ),
        b"TM" => {
            let m = match Matcher::parse(Attr::StudyTime, pattern) {
                Matcher::Range(lo, hi) => Matcher::Range(
                    if lo.is_empty() { lo } else { time6(&lo) },
                    if hi.is_empty() { hi } else { time6(&hi) },
                ),
                Matcher::Single(s) => Matcher::Single(time6(&s)),
                m => m,
            };
            value_matches(Attr::StudyTime, &m, &time6(value))
        }
        b"UI" => value_matches(
            Attr::StudyInstanceUid,
            &Matcher::parse(Attr::StudyInstanceUid, pattern),
            value,
        ),
        _ => value_matches(
            Attr::Modality,
            &Matcher::parse(Attr::Modality, pattern),
            value,
        ),
    }
}

impl WorklistRequest {
    fn step_keys(&self) -> Option<&[Key]> {
        self.keys
            .iter()
            .find(|k| k.tag == SPS_SEQUENCE)
            .and_then(|k| k.item.as_deref())
    }

    /// The scheduled dates to read from the index (`YYYYMMDD` bounds, empty: open).
    fn date_bounds(&self) -> (String, String) {
        let date = self
            .step_keys()
            .and_then(|ks| ks.iter().find(|k| k.tag == SPS_START_DATE))
            .map(|k| Matcher::parse(Attr::StudyDate, &k.text));
        match date {
            Some(Matcher::Single(d)) => (d.clone(), d),
            Some(Matcher::Range(lo, hi)) => (lo, hi),
            _ => (String::new(), String::new()),
        }
    }

    /// The keys the archive can take candidates from: single values (no wildcard) of the IDs,
    /// modality and station, the name pattern, the date bounds. The rest is only matched.
    fn exam_keys(&self) -> ExamKeys {
        let single = |k: Option<&Key>, attr: Attr| match k.map(|k| Matcher::parse(attr, &k.text)) {
            Some(Matcher::Single(v)) => Some(v),
            _ => None,
        };
        let top = |tag: u32| self.keys.iter().find(|k| k.tag == tag && k.item.is_none());
        let step = |tag: u32| {
            self.step_keys()
                .and_then(|ks| ks.iter().find(|k| k.tag == tag && k.item.is_none()))
        };
        let name = match top(0x0010_0010).map(|k| Matcher::parse(Attr::PatientName, &k.text)) {
            Some(Matcher::Single(v) | Matcher::Wildcard(v)) => Some(v),
            _ => None,
        };
        let (lo, hi) = self.date_bounds();
        ExamKeys {
            accession: single(top(0x0008_0050), Attr::AccessionNumber),
            patient_id: single(top(0x0010_0020), Attr::PatientId),
            name,
            dates: (!lo.is_empty() || !hi.is_empty()).then_some((lo, hi)),
            modality: single(step(0x0008_0060), Attr::Modality),
            station: single(step(STATION_AE), Attr::Modality),
        }
    }

    /// PS3.4 C.2.2.2.5: when Scheduled Procedure Step Start Date and Time are both ranges they
    /// are one range of date-times (`YYYYMMDDHHMMSS` bounds, empty: open), so `20261201-20261202`
    /// with `1700-0800` is the night from the 1st at 17:00 to the 2nd at 08:00.
    fn datetime_range(&self) -> Option<(String, String)> {
        let ks = self.step_keys()?;
        let get = |tag: u32, attr: Attr| {
            ks.iter()
                .find(|k| k.tag == tag && k.item.is_none())
                .map(|k| Matcher::parse(attr, &k.text))
        };
        let (Some(Matcher::Range(dlo, dhi)), Some(Matcher::Range(tlo, thi))) = (
            get(SPS_START_DATE, Attr::StudyDate),
            get(SPS_START_TIME, Attr::StudyTime),
        ) else {
            return None;
        };
        let lo = match dlo.as_str() {
            "" => String::new(),
            d => format!("{d}{}", time6(&tlo)),
        };
        let hi = match (dhi.as_str(), thi.as_str()) {
            ("", _) => String::new(),
            (d, "") => format!("{d}999999"),
            (d, t) => format!("{d}{}", time6(t)),
        };
        Some((lo, hi))
    }

    pub(crate) fn matches(&self, e: &Exam) -> bool {
        if e.state != ExamState::Scheduled {
            return false;
        }
        let combined = self.datetime_range();
        if let Some((lo, hi)) = &combined {
            let at = format!("{}{}", e.date, time6(&e.time));
            if e.date.is_empty() || (!lo.is_empty() && at < *lo) || (!hi.is_empty() && at > *hi) {
                return false;
            }
        }
        let top = self
            .keys
            .iter()
            .filter(|k| k.item.is_none() && !k.text.is_empty());
        for k in top {
            if let Some(v) = exam_value(e, k.tag)
                && !key_matches(k.vr, &k.text, &v)
            {
                return false;
            }
        }
        for k in self.step_keys().unwrap_or_default() {
            if k.text.is_empty()
                || k.item.is_some()
                || (combined.is_some() && [SPS_START_DATE, SPS_START_TIME].contains(&k.tag))
            {
                continue;
            }
            // An exam for any station is every station's.
            if k.tag == STATION_AE && e.station_ae.is_empty() {
                continue;
            }
            if let Some(v) = step_value(e, k.tag)
                && !key_matches(k.vr, &k.text, &v)
            {
                return false;
            }
        }
        true
    }

    /// The response identifier for a matching exam, in the syntax `enc`.
    pub(crate) fn encode(&self, e: &Exam, enc: Enc) -> Vec<u8> {
        let mut out: Vec<Out> = Vec::new();
        for k in &self.keys {
            if k.tag == SPS_SEQUENCE {
                let wanted: Vec<(u32, [u8; 2], String)> = match k.item.as_deref() {
                    Some(ks) if !ks.is_empty() => {
                        ks.iter().map(|s| (s.tag, s.vr, s.text.clone())).collect()
                    }
                    _ => SPS_KEYS
                        .iter()
                        .map(|(t, v)| (*t, *v, String::new()))
                        .collect(),
                };
                let item = wanted
                    .into_iter()
                    .map(|(tag, vr, asked)| {
                        let v = match (tag, step_value(e, tag)) {
                            // "Any station": the station that asked for itself is told it is it.
                            (STATION_AE, Some(v))
                                if v.is_empty() && !asked.contains(['*', '?']) =>
                            {
                                asked
                            }
                            (_, v) => v.unwrap_or_default(),
                        };
                        Out::leaf(tag, vr, v)
                    })
                    .collect();
                out.push(Out::seq(SPS_SEQUENCE, vec![item]));
            } else if k.tag == REFERENCED_STUDY_SEQUENCE {
                out.push(Out::seq(
                    k.tag,
                    vec![vec![
                        Out::leaf(0x0008_1150, *b"UI", DETACHED_STUDY_CLASS.to_owned()),
                        Out::leaf(0x0008_1155, *b"UI", e.study_uid.clone()),
                    ]],
                ));
            } else if k.vr == *b"SQ" {
                out.push(Out::seq(k.tag, Vec::new()));
            } else {
                out.push(Out::leaf(
                    k.tag,
                    k.vr,
                    exam_value(e, k.tag).unwrap_or_default(),
                ));
            }
        }
        let charset = self.response_charset(&out);
        if let Some(term) = charset.term() {
            out.push(Out::leaf(SPECIFIC_CHARACTER_SET, *b"CS", term.to_owned()));
        }
        out.sort_by_key(|o| o.tag);
        let elems: Vec<Elem<'static>> = out.iter().map(|o| o.elem(charset, enc)).collect();
        let mut bytes = Vec::new();
        if let Err(err) = ds::write(&mut bytes, &elems, enc) {
            tracing::error!(error = %err, "encoding a worklist item");
        }
        bytes
    }

    /// ASCII when all is; ISO 2022 IR 149 when the request declared it and it carries every
    /// text; else UTF-8.
    fn response_charset(&self, out: &[Out]) -> Charset {
        let mut texts = Vec::new();
        for o in out {
            o.texts(&mut texts);
        }
        if texts.iter().all(|(_, t)| t.is_ascii()) {
            return Charset::Ascii;
        }
        let korean = self.charset.terms().iter().any(|t| t == "ISO 2022 IR 149");
        if korean
            && texts
                .iter()
                .all(|(vr, t)| encode_iso2022_ir149(t, *vr).is_some())
        {
            Charset::Korean
        } else {
            Charset::Utf8
        }
    }
}

#[derive(Clone, Copy)]
enum Charset {
    Ascii,
    Korean,
    Utf8,
}

impl Charset {
    fn term(self) -> Option<&'static str> {
        match self {
            Charset::Ascii => None,
            Charset::Korean => Some("\\ISO 2022 IR 149"),
            Charset::Utf8 => Some("ISO_IR 192"),
        }
    }
}

/// One response element before its text is encoded.
struct Out {
    tag: u32,
    vr: [u8; 2],
    text: String,
    items: Option<Vec<Vec<Out>>>,
}

impl Out {
    fn leaf(tag: u32, vr: [u8; 2], text: String) -> Out {
        Out {
            tag,
            vr,
            text,
            items: None,
        }
    }

    fn seq(tag: u32, items: Vec<Vec<Out>>) -> Out {
        Out {
            tag,
            vr: *b"SQ",
            text: String::new(),
            items: Some(items),
        }
    }

    fn texts(&self, acc: &mut Vec<(TextVr, String)>) {
        match &self.items {
            Some(items) => items.iter().flatten().for_each(|o| o.texts(acc)),
            None => {
                if let Some(vr) = text_vr(self.vr) {
                    acc.push((vr, self.text.clone()));
                }
            }
        }
    }

    fn elem(&self, charset: Charset, enc: Enc) -> Elem<'static> {
        let value = match &self.items {
            Some(items) => Value::Seq {
                items: items
                    .iter()
                    .map(|i| i.iter().map(|o| o.elem(charset, enc)).collect())
                    .collect(),
                enc,
            },
            None => {
                let mut b = match (charset, text_vr(self.vr)) {
                    (Charset::Korean, Some(vr)) if self.tag != SPECIFIC_CHARACTER_SET => {
                        encode_iso2022_ir149(&self.text, vr)
                            .unwrap_or_else(|| self.text.as_bytes().to_vec())
                    }
                    _ => self.text.as_bytes().to_vec(),
                };
                if b.len() % 2 == 1 {
                    b.push(if self.vr == *b"UI" { 0 } else { b' ' });
                }
                Value::Bytes(Cow::Owned(b))
            }
        };
        Elem {
            tag: self.tag,
            vr: self.vr,
            value,
        }
    }
}

/// The keys of a request in words, for the audit trail.
fn describe(req: &WorklistRequest) -> String {
    let mut v: Vec<String> = req
        .keys
        .iter()
        .chain(req.step_keys().unwrap_or_default())
        .filter(|k| !k.text.is_empty())
        .map(|k| format!("({:04X},{:04X})={}", k.tag >> 16, k.tag & 0xFFFF, k.text))
        .collect();
    v.insert(0, "WORKLIST".into());
    v.join(" ")
}

pub async fn serve(
    assoc: &mut Association,
    ctx: u8,
    req: &Command,
    identifier: &[u8],
    service: ServiceContext<'_>,
) -> Result<(), AssocError> {
    let accepted = assoc.context(ctx)?;
    let ts = accepted.transfer_syntax.clone();
    let request = match parse(identifier, &ts) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(calling_ae = assoc.calling_ae, error = %e, "worklist C-FIND refused");
            crate::audit::find(
                service.audit,
                &assoc.calling_ae,
                &assoc.peer_address,
                "WORKLIST".into(),
                0,
                &format!("failed: {e}"),
            );
            return respond(assoc, ctx, req, Status::DATASET_MISMATCH, &e).await;
        }
    };
    let Some(enc) = enc_of(&ts) else {
        return respond(assoc, ctx, req, Status::DATASET_MISMATCH, "deflate").await;
    };
    let keys = describe(&request);
    let archive = service.archive.clone();
    let exam_keys = request.exam_keys();
    let streamed = pendings::stream(assoc, ctx, req, "worklist C-FIND", move |p| {
        archive.index().exams_matching(&exam_keys, |e| {
            if request.matches(&e) {
                p.push(&request.encode(&e, enc))
            } else {
                ControlFlow::Continue(())
            }
        })
    })
    .await?;
    let Streamed {
        outcome,
        matches,
        cancelled,
    } = streamed;
    tracing::info!(
        calling_ae = assoc.calling_ae,
        matches,
        cancelled,
        "worklist C-FIND"
    );
    let (status, outcome_text) = match (&outcome, cancelled) {
        (_, true) => (Status::CANCEL, "cancelled".to_owned()),
        (Ok(()), false) => (Status::SUCCESS, "ok".to_owned()),
        (Err(e), false) => {
            tracing::error!(error = %e, "worklist query failed");
            (Status::UNABLE_TO_PROCESS, format!("failed: {e}"))
        }
    };
    crate::audit::find(
        service.audit,
        &assoc.calling_ae,
        &assoc.peer_address,
        keys,
        matches,
        &outcome_text,
    );
    let comment = if status == Status::UNABLE_TO_PROCESS {
        "index error"
    } else {
        ""
    };
    respond(assoc, ctx, req, status, comment).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exam() -> Exam {
        Exam {
            accession: "A1".into(),
            patient_id: "P1".into(),
            issuer: String::new(),
            patient_name: "Hong^Gildong=洪^吉洞=홍^길동".into(),
            birth_date: "19800101".into(),
            sex: "M".into(),
            requested_procedure_id: "A1".into(),
            procedure_description: "Chest PA".into(),
            step_id: "A1".into(),
            modality: "CR".into(),
            station_ae: String::new(),
            date: "20261205".into(),
            time: "093000".into(),
            referring_physician: String::new(),
            performing_physician: String::new(),
            study_uid: "2.25.1".into(),
            state: ExamState::Scheduled,
            created_unix: 0,
            updated_unix: 0,
            mpps_uid: String::new(),
        }
    }

    fn leaf(tag: u32, vr: &[u8; 2], v: &[u8]) -> Elem<'static> {
        let mut b = v.to_vec();
        if b.len() % 2 == 1 {
            b.push(b' ');
        }
        Elem {
            tag,
            vr: *vr,
            value: Value::Bytes(Cow::Owned(b)),
        }
    }

    fn request(top: Vec<Elem<'static>>, step: Vec<Elem<'static>>) -> Vec<u8> {
        let mut all = top;
        all.push(Elem {
            tag: SPS_SEQUENCE,
            vr: *b"SQ",
            value: Value::Seq {
                items: vec![step],
                enc: Enc::EXPLICIT_LE,
            },
        });
        all.sort_by_key(|e| e.tag);
        let mut out = Vec::new();
        ds::write(&mut out, &all, Enc::EXPLICIT_LE).unwrap();
        out
    }

    const ELE: &str = "1.2.840.10008.1.2.1";

    #[test]
    fn keys_match_with_ranges_wildcards_and_any_station() {
        let bytes = request(
            vec![leaf(0x0010_0010, b"PN", b"HONG*")],
            vec![
                leaf(0x0008_0060, b"CS", b"CR"),
                leaf(STATION_AE, b"AE", b"CR1"),
                leaf(SPS_START_DATE, b"DA", b"20261201-20261205"),
                leaf(SPS_START_TIME, b"TM", b"0900-1000"),
            ],
        );
        let r = parse(&bytes, ELE).unwrap();
        assert_eq!(r.date_bounds(), ("20261201".into(), "20261205".into()));
        let mut e = exam();
        assert!(r.matches(&e));
        e.time = "100001".into();
        assert!(!r.matches(&e));
        e.time = "100000".into();
        assert!(r.matches(&e));
        e.station_ae = "CR2".into();
        assert!(!r.matches(&e));
        e.station_ae = String::new();
        e.modality = "US".into();
        assert!(!r.matches(&e));
        e.modality = "CR".into();
        e.state = ExamState::InProgress;
        assert!(!r.matches(&e));
    }

    #[test]
    fn date_and_time_ranges_combine_into_one_datetime_range() {
        let query = |date: &[u8], time: &[u8]| {
            parse(
                &request(
                    vec![],
                    vec![
                        leaf(SPS_START_DATE, b"DA", date),
                        leaf(SPS_START_TIME, b"TM", time),
                    ],
                ),
                ELE,
            )
            .unwrap()
        };
        let at = |date: &str, time: &str| Exam {
            date: date.into(),
            time: time.into(),
            ..exam()
        };
        // The night shift: from the 1st at 17:00 to the 3rd at 08:00.
        let r = query(b"20261201-20261203", b"1700-0800");
        assert!(r.matches(&at("20261202", "030000")));
        assert!(r.matches(&at("20261202", "120000")));
        assert!(r.matches(&at("20261201", "170000")));
        assert!(r.matches(&at("20261203", "080000")));
        assert!(!r.matches(&at("20261201", "100000")));
        assert!(!r.matches(&at("20261203", "090000")));
        assert!(!r.matches(&at("20261204", "030000")));
        // open bounds
        let r = query(b"20261202-", b"1200-");
        assert!(!r.matches(&at("20261202", "110000")));
        assert!(r.matches(&at("20261202", "120000")));
        assert!(r.matches(&at("20991231", "000000")));
        let r = query(b"-20261202", b"-1200");
        assert!(r.matches(&at("20261202", "115959")));
        assert!(r.matches(&at("20000101", "230000")));
        assert!(!r.matches(&at("20261202", "120001")));
        // A single date with a time range is two separate keys, as before.
        let r = query(b"20261202", b"1700-0800");
        assert!(!r.matches(&at("20261202", "180000")));
        let r = query(b"20261202", b"0800-1700");
        assert!(r.matches(&at("20261202", "090000")));
        assert!(!r.matches(&at("20261203", "090000")));
    }

    #[test]
    fn exam_keys_name_what_the_indexes_answer() {
        let bytes = request(
            vec![
                leaf(0x0008_0050, b"SH", b"A*"),
                leaf(0x0010_0010, b"PN", b"PARK*"),
                leaf(0x0010_0020, b"LO", b"P42"),
            ],
            vec![
                leaf(0x0008_0060, b"CS", b"CR"),
                leaf(STATION_AE, b"AE", b"CR?"),
                leaf(SPS_START_DATE, b"DA", b"20261201-"),
            ],
        );
        let k = parse(&bytes, ELE).unwrap().exam_keys();
        assert_eq!(
            k,
            ExamKeys {
                accession: None,
                patient_id: Some("P42".into()),
                name: Some("PARK*".into()),
                dates: Some(("20261201".into(), String::new())),
                modality: Some("CR".into()),
                station: None,
            }
        );
    }

    #[test]
    fn korean_request_gets_korean_answer_and_every_key_back() {
        let mut name = b"\x1b$)C".to_vec();
        name.extend([0xC8, 0xAB, b'*']);
        let bytes = request(
            vec![
                leaf(SPECIFIC_CHARACTER_SET, b"CS", b"\\ISO 2022 IR 149"),
                leaf(0x0008_0050, b"SH", b""),
                leaf(0x0010_0010, b"PN", &name),
                leaf(0x0010_2000, b"LO", b""),
            ],
            vec![leaf(STATION_AE, b"AE", b"CR1")],
        );
        let r = parse(&bytes, ELE).unwrap();
        assert!(r.matches(&exam()));
        let rsp = r.encode(&exam(), Enc::EXPLICIT_LE);
        let back = ds::read(&rsp, Enc::EXPLICIT_LE).unwrap();
        let get = |tag: u32| back.iter().find(|e| e.tag == tag).unwrap();
        assert_eq!(
            get(SPECIFIC_CHARACTER_SET).bytes().unwrap(),
            b"\\ISO 2022 IR 149"
        );
        let set = SpecificCharacterSet::from_value("\\ISO 2022 IR 149");
        assert_eq!(
            set.decode(get(0x0010_0010).bytes().unwrap(), TextVr::PersonName),
            "Hong^Gildong=洪^吉洞=홍^길동"
        );
        assert_eq!(get(0x0008_0050).bytes().unwrap(), b"A1");
        // an unsupported key comes back empty
        assert_eq!(get(0x0010_2000).bytes().unwrap(), b"");
        let Value::Seq { items, .. } = &get(SPS_SEQUENCE).value else {
            panic!("no step sequence");
        };
        assert_eq!(items[0].len(), 1);
        assert_eq!(items[0][0].bytes().unwrap(), b"CR1 ");
        // a UTF-8 request gets UTF-8
        let bytes = request(
            vec![
                leaf(SPECIFIC_CHARACTER_SET, b"CS", b"ISO_IR 192"),
                leaf(0x0010_0010, b"PN", "홍*".as_bytes()),
            ],
            vec![],
        );
        let r = parse(&bytes, ELE).unwrap();
        assert!(r.matches(&exam()));
        let back_bytes = r.encode(&exam(), Enc::EXPLICIT_LE);
        let back = ds::read(&back_bytes, Enc::EXPLICIT_LE).unwrap();
        let cs = back
            .iter()
            .find(|e| e.tag == SPECIFIC_CHARACTER_SET)
            .unwrap();
        assert_eq!(cs.bytes().unwrap(), b"ISO_IR 192");
        // an empty step sequence is universal: the whole step comes back
        let sps = back.iter().find(|e| e.tag == SPS_SEQUENCE).unwrap();
        let Value::Seq { items, .. } = &sps.value else {
            panic!("no step sequence");
        };
        assert_eq!(items[0].len(), SPS_KEYS.len());
    }

    #[test]
    fn a_broken_identifier_is_an_error_not_a_panic() {
        assert!(parse(b"\x10\x00\x10\x00PN\xff\xff", ELE).is_err());
        assert!(parse(b"", ELE).is_err());
    }
}
