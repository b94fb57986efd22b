//! QIDO-RS (PS3.18 10.6): the search resources, their query parameters turned into the same
//! archive [`Query`] a C-FIND identifier becomes (same matching: wildcards, date ranges, UID
//! lists, caseless Korean-aware names; `fuzzymatching=true` adds the romanised matching of the
//! web page's search), and the matches written as DICOM JSON (or DICOM XML parts, when the
//! client's `Accept` prefers them) while the index yields them: a
//! thread walks the index into a pipe the response reads, so 100 000 matches never sit in
//! memory. Searches below the study level that the path does not pin to one study
//! (`/series`, `/instances`, `/studies/{s}/instances`) walk study → series → instance, each
//! level a query of its own. `orderby` (keys the index holds, `-` for descending) is the one
//! exception: the matches, at most [`ORDERBY_MAX`], are collected and sorted before the first
//! byte goes out.

use std::io::Write;
use std::ops::ControlFlow;

use dicom_core::dictionary::DataDictionary;
use dicom_dictionary_std::StandardDataDictionary;
use pacsbox_archive::Archive;
use pacsbox_archive::query::{ATTRIBUTE_TAGS, Attr, Level, Matcher, Query, QueryError, Row};
use pacsbox_audit::Event;
use serde_json::{Map, Value};

use super::accept;
use super::wado::{Payload, encode_all, encoded, with_coding};
use super::xml::ListWriter;
use super::{Caller, error, json};
use crate::Web;
use crate::auth::random_token;
use crate::reply::{Reply, Req, check_uid, chunk_pipe};

/// A search resource: the level searched and the UIDs its path fixes.
#[derive(Clone, Debug)]
pub struct Search {
    level: Level,
    study: Option<String>,
    series: Option<String>,
}

/// The search resource a path (after `/dicom-web/`) names, if it is one.
pub fn resource(rest: &[&str]) -> Option<Search> {
    let s = |level, study: Option<&&str>, series: Option<&&str>| {
        Some(Search {
            level,
            study: study.map(|u| (*u).to_owned()),
            series: series.map(|u| (*u).to_owned()),
        })
    };
    match rest {
        ["studies"] => s(Level::Study, None, None),
        ["series"] => s(Level::Series, None, None),
        ["instances"] => s(Level::Image, None, None),
        ["studies", st, "series"] => s(Level::Series, Some(st), None),
        ["studies", st, "instances"] => s(Level::Image, Some(st), None),
        ["studies", st, "series", se, "instances"] => s(Level::Image, Some(st), Some(se)),
        _ => None,
    }
}

const SPECIFIC_CHARACTER_SET: (u16, u16) = (0x0008, 0x0005);
const INSTANCE_AVAILABILITY: (u16, u16) = (0x0008, 0x0056);

/// What a search returns besides its matching keys (PS3.18 Tables 10.6.3-3 to -5, as far as
/// the index holds them; the relational UIDs always, so a client can go one level down).
fn defaults(level: Level) -> &'static [Attr] {
    use Attr::*;
    match level {
        Level::Patient | Level::Study => &[
            StudyDate,
            StudyTime,
            AccessionNumber,
            ModalitiesInStudy,
            ReferringPhysicianName,
            PatientName,
            PatientId,
            PatientBirthDate,
            PatientSex,
            StudyInstanceUid,
            StudyId,
            StudyDescription,
            NumberOfStudyRelatedSeries,
            NumberOfStudyRelatedInstances,
        ],
        Level::Series => &[
            StudyInstanceUid,
            Modality,
            SeriesDescription,
            SeriesNumber,
            SeriesInstanceUid,
            BodyPartExamined,
            NumberOfSeriesRelatedInstances,
        ],
        Level::Image => &[
            StudyInstanceUid,
            SeriesInstanceUid,
            SopClassUid,
            SopInstanceUid,
            InstanceNumber,
        ],
    }
}

/// A search's parameters, checked.
#[derive(Debug, Default)]
struct Params {
    filters: Vec<(Attr, Matcher)>,
    /// Attributes to return besides the defaults (known to the index).
    include: Vec<Attr>,
    /// Asked for but not held by the index: returned with their VR and no value.
    include_empty: Vec<((u16, u16), [u8; 2])>,
    include_all: bool,
    limit: Option<usize>,
    offset: usize,
    fuzzy: bool,
    /// Matching keys the index cannot match on (ignored, said in a `Warning` header).
    ignored: Vec<String>,
    terms: Vec<String>,
    /// `orderby` keys in order of precedence; `true` = descending.
    order: Vec<(Attr, bool)>,
}

/// The most matches a sorted search collects (a sorted answer cannot be streamed: the last
/// match found may sort first). ~0.5 KiB each; beyond it the search must be narrowed.
pub const ORDERBY_MAX: usize = 50_000;

/// A parameter name (keyword or `GGGGEEEE`) → its tag and dictionary VR.
fn attribute_tag(name: &str) -> Option<((u16, u16), [u8; 2])> {
    let entry = if name.len() == 8 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
        let g = u16::from_str_radix(&name[..4], 16).ok()?;
        let e = u16::from_str_radix(&name[4..], 16).ok()?;
        return Some((
            (g, e),
            StandardDataDictionary
                .by_tag(dicom_core::Tag(g, e))
                .and_then(|e| vr_bytes(e.vr.relaxed().to_string()))
                .unwrap_or(*b"UN"),
        ));
    } else {
        StandardDataDictionary.by_name(name)?
    };
    Some((
        (entry.tag.inner().group(), entry.tag.inner().element()),
        vr_bytes(entry.vr.relaxed().to_string()).unwrap_or(*b"UN"),
    ))
}

fn vr_bytes(s: &str) -> Option<[u8; 2]> {
    let b = s.as_bytes();
    (b.len() == 2).then(|| [b[0], b[1]])
}

fn known(tag: (u16, u16)) -> Option<(&'static [u8; 2], Attr)> {
    ATTRIBUTE_TAGS
        .iter()
        .find(|(t, _, _)| *t == tag)
        .map(|(_, vr, a)| (*vr, *a))
}

fn is_uid(attr: Attr) -> bool {
    matches!(
        attr,
        Attr::StudyInstanceUid | Attr::SeriesInstanceUid | Attr::SopInstanceUid | Attr::SopClassUid
    )
}

fn parse(raw_query: &str, level: Level) -> Result<Params, String> {
    let mut p = Params::default();
    let mut raw: Vec<(Attr, String)> = Vec::new();
    for (k, v) in form_urlencoded::parse(raw_query.as_bytes()) {
        let (k, v) = (k.trim(), v.trim());
        match k {
            "limit" => {
                p.limit = Some(
                    v.parse()
                        .map_err(|_| format!("limit must be a number, not {v:?}"))?,
                )
            }
            "offset" => {
                p.offset = v
                    .parse()
                    .map_err(|_| format!("offset must be a number, not {v:?}"))?
            }
            "fuzzymatching" => {
                p.fuzzy = match v {
                    "true" => true,
                    "false" => false,
                    _ => return Err(format!("fuzzymatching must be true or false, not {v:?}")),
                }
            }
            "includefield" => {
                for f in v.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                    if f == "all" {
                        p.include_all = true;
                        continue;
                    }
                    let (tag, vr) = attribute_tag(f)
                        .ok_or_else(|| format!("includefield: unknown attribute {f:?}"))?;
                    match known(tag) {
                        Some((_, a)) => p.include.push(a),
                        None => p.include_empty.push((tag, vr)),
                    }
                }
            }
            // dcm4chee's form, which OHIF and other viewers send: `orderby=-StudyDate,PatientName`.
            // A key the index does not hold, or one below the searched level, cannot sort
            // anything here: ignored and said in the Warning header, like such a matching key.
            "orderby" => {
                for f in v.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                    let (desc, name) = match f.strip_prefix('-') {
                        Some(n) => (true, n),
                        None => (false, f.strip_prefix('+').unwrap_or(f)),
                    };
                    match attribute_tag(name).and_then(|(tag, _)| known(tag)) {
                        Some((_, a)) if a.level() <= level.max(Level::Study) => {
                            p.order.push((a, desc))
                        }
                        _ => p.ignored.push(format!("orderby {name}")),
                    }
                }
            }
            _ => {
                let Some((tag, _)) = attribute_tag(k) else {
                    return Err(format!("unknown query parameter {k:?}"));
                };
                match known(tag) {
                    Some((_, attr)) if attr.level() > level => {
                        return Err(format!("{k} is not a key at this level"));
                    }
                    Some((_, attr)) => {
                        p.terms.push(format!("{k}={v}"));
                        raw.push((attr, v.to_owned()));
                    }
                    None => p.ignored.push(k.to_owned()),
                }
            }
        }
    }
    for (attr, v) in raw {
        let v = if is_uid(attr) {
            v.replace(',', "\\")
        } else {
            v
        };
        if is_uid(attr) {
            for u in v.split('\\') {
                check_uid(u.trim()).map_err(|e| e.to_string())?;
            }
        }
        let m = match Matcher::parse(attr, &v) {
            Matcher::Single(s) | Matcher::Wildcard(s) if p.fuzzy && attr == Attr::PatientName => {
                Matcher::Romanised(s)
            }
            m => m,
        };
        p.filters.push((attr, m));
    }
    Ok(p)
}

pub fn search(web: &Web, req: &Req, caller: &Caller, s: Search) -> Result<Reply, Reply> {
    for uid in s.study.iter().chain(s.series.iter()) {
        check_uid(uid).map_err(|e| error(400, e.to_string()))?;
    }
    let params = parse(&req.raw_query, s.level).map_err(|e| error(400, e))?;
    let format = accept::format(&req.accept).ok_or_else(|| {
        error(
            406,
            format!(
                "cannot answer {:?}: search results are application/dicom+json or \
                 multipart/related; type=\"application/dicom+xml\"",
                super::clipped(&req.accept)
            ),
        )
    })?;
    let boundary = format!(
        "pacsbox-{}",
        random_token(16).map_err(|e| error(500, e.to_string()))?
    );
    let mut list = ListWriter::new(format, boundary);
    let content_type = list.content_type();
    let level_name = match s.level {
        Level::Patient | Level::Study => "studies",
        Level::Series => "series",
        Level::Image => "instances",
    };
    web.audit.record(
        Event::new("web.search", &caller.user, &req.client)
            .detail(
                format!("QIDO-RS {level_name} {}", params.terms.join(" "))
                    .trim_end()
                    .to_owned(),
            )
            .outcome("ok"),
    );
    let warning = (!params.ignored.is_empty()).then(|| {
        format!(
            "299 pacsbox \"ignored (the index does not hold them): {}\"",
            params.ignored.join(", ")
        )
    });
    // A study list is the same few attributes row after row: gzip takes it to a tenth.
    let coding = accept::coding(&req.accept_encoding);
    if !params.order.is_empty() {
        let mut body = sorted(&web.archive, &s, &params, &mut list)?;
        if let Some(c) = coding {
            body = encode_all(c, Payload::Text, &body).map_err(|e| error(500, e.to_string()))?;
        }
        let mut reply =
            Reply::bytes(200, "application/dicom+json", body).header("Content-Type", content_type);
        if let Some(w) = warning {
            reply = reply.header("Warning", w);
        }
        return Ok(with_coding(reply, coding));
    }
    let archive = web.archive.clone();
    let (mut out, reader) = chunk_pipe();
    std::thread::Builder::new()
        .name("qido".into())
        .spawn(move || {
            // The encoder writes into the pipe as the rows come: 10^5 matches are never
            // held, compressed or not.
            let r = encoded(coding, Payload::Text, &mut out, |out| {
                Ok(stream(&archive, &s, &params, &mut list, out)?)
            });
            if let Err(e) = r {
                // The client sees JSON (or a compressed stream) cut short, which no parser
                // accepts.
                tracing::warn!(error = %e, "QIDO-RS answer ended early");
            }
        })
        .map_err(|e| error(500, e.to_string()))?;
    let mut reply = Reply::stream("application/dicom+json", Box::new(reader))
        .header("Content-Type", content_type);
    if let Some(w) = warning {
        reply = reply.header("Warning", w);
    }
    Ok(with_coding(reply, coding))
}

#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("{0}")]
    Query(#[from] QueryError),
    #[error("writing: {0}")]
    Io(#[from] std::io::Error),
}

/// Writes the matches (`[row, row, …]` or their XML parts), walking the index level by level.
fn stream(
    archive: &Archive,
    s: &Search,
    p: &Params,
    list: &mut ListWriter,
    out: &mut dyn Write,
) -> Result<(), StreamError> {
    list.begin(out)?;
    let mut seen = 0usize;
    let mut written = 0usize;
    let mut failure: Option<StreamError> = None;
    let mut emit = |row: &Row| -> ControlFlow<()> {
        if p.limit.is_some_and(|l| written >= l) {
            return ControlFlow::Break(());
        }
        seen += 1;
        if seen <= p.offset {
            return ControlFlow::Continue(());
        }
        let r = list.item(&encode(row, s.level, p), out);
        written += 1;
        match r {
            Ok(()) if p.limit.is_some_and(|l| written >= l) => ControlFlow::Break(()),
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                failure = Some(e.into());
                ControlFlow::Break(())
            }
        }
    };
    walk(archive, s, p, &mut emit)?;
    if let Some(e) = failure {
        return Err(e);
    }
    list.end(out)?;
    out.flush()?;
    Ok(())
}

/// A search with `orderby`: every match collected (up to [`ORDERBY_MAX`]), sorted stably by
/// the keys (numbers as numbers, the rest as their DICOM text: dates and times sort as
/// written), then `offset` and `limit` applied.
fn sorted(
    archive: &Archive,
    s: &Search,
    p: &Params,
    list: &mut ListWriter,
) -> Result<Vec<u8>, Reply> {
    let mut rows: Vec<Row> = Vec::new();
    let mut too_many = false;
    walk(archive, s, p, &mut |row: &Row| {
        if rows.len() == ORDERBY_MAX {
            too_many = true;
            return ControlFlow::Break(());
        }
        rows.push(row.clone());
        ControlFlow::Continue(())
    })
    .map_err(|e| error(500, e.to_string()))?;
    if too_many {
        return Err(error(
            400,
            format!("orderby sorts at most {ORDERBY_MAX} matches: narrow the search"),
        ));
    }
    let mut keyed: Vec<(Vec<SortKey>, Row)> = rows
        .into_iter()
        .map(|r| (p.order.iter().map(|(a, _)| sort_key(&r, *a)).collect(), r))
        .collect();
    keyed.sort_by(|(a, _), (b, _)| {
        for (i, (_, desc)) in p.order.iter().enumerate() {
            let o = a[i].cmp(&b[i]);
            let o = if *desc { o.reverse() } else { o };
            if o.is_ne() {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
    let mut out = Vec::with_capacity(keyed.len().min(p.limit.unwrap_or(usize::MAX)) * 512 + 2);
    let page = keyed
        .iter()
        .skip(p.offset)
        .take(p.limit.unwrap_or(usize::MAX));
    let fail = |e: std::io::Error| error(500, e.to_string());
    list.begin(&mut out).map_err(fail)?;
    for (_, row) in page {
        list.item(&encode(row, s.level, p), &mut out)
            .map_err(fail)?;
    }
    list.end(&mut out).map_err(fail)?;
    Ok(out)
}

/// A value to sort by: numbers before text so that a missing count does not sort as "".
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum SortKey {
    Missing,
    Number(u64),
    Text(String),
}

fn sort_key(row: &Row, attr: Attr) -> SortKey {
    use Attr::*;
    let numeric = matches!(
        attr,
        NumberOfPatientRelatedStudies
            | NumberOfPatientRelatedSeries
            | NumberOfPatientRelatedInstances
            | NumberOfStudyRelatedSeries
            | NumberOfStudyRelatedInstances
            | NumberOfSeriesRelatedInstances
            | SeriesNumber
            | InstanceNumber
    );
    match row.value(attr) {
        None => SortKey::Missing,
        Some(v) if v.trim().is_empty() => SortKey::Missing,
        Some(v) if numeric => v
            .trim()
            .parse()
            .map(SortKey::Number)
            .unwrap_or(SortKey::Text(v)),
        // Names sort caselessly, the way a person reads a list.
        Some(v) => SortKey::Text(v.to_lowercase()),
    }
}

fn of_level(p: &Params, pred: impl Fn(Level) -> bool) -> Vec<(Attr, Matcher)> {
    p.filters
        .iter()
        .filter(|(a, _)| pred(a.level()))
        .cloned()
        .collect()
}

/// Studies (matching the patient and study keys), then under each its series, then their
/// instances, down to the level searched.
fn walk(
    archive: &Archive,
    s: &Search,
    p: &Params,
    emit: &mut dyn FnMut(&Row) -> ControlFlow<()>,
) -> Result<(), QueryError> {
    let index = archive.index();
    let mut study_filters = of_level(p, |l| l <= Level::Study);
    if let Some(st) = &s.study {
        study_filters.push((Attr::StudyInstanceUid, Matcher::Single(st.clone())));
    }
    let mut series_filters = of_level(p, |l| l == Level::Series);
    if let Some(se) = &s.series {
        series_filters.push((Attr::SeriesInstanceUid, Matcher::Single(se.clone())));
    }
    let image_filters = of_level(p, |l| l == Level::Image);
    let mut inner: Result<(), QueryError> = Ok(());
    let studies = Query {
        level: Level::Study,
        filters: study_filters,
    };
    index.query(&studies, |study| {
        if s.level <= Level::Study {
            return emit(&study);
        }
        let mut series_q = series_filters.clone();
        series_q.push((
            Attr::StudyInstanceUid,
            Matcher::Single(study.study_uid.clone()),
        ));
        let mut stop = false;
        let r = index.query(
            &Query {
                level: Level::Series,
                filters: series_q,
            },
            |series| {
                let series = merge(&study, series);
                if s.level == Level::Series {
                    let f = emit(&series);
                    stop = f.is_break();
                    return f;
                }
                let mut image_q = image_filters.clone();
                image_q.push((
                    Attr::SeriesInstanceUid,
                    Matcher::Single(series.series_uid.clone()),
                ));
                let r = index.query(
                    &Query {
                        level: Level::Image,
                        filters: image_q,
                    },
                    |image| {
                        let f = emit(&merge(&series, image));
                        stop = f.is_break();
                        f
                    },
                );
                settle(r, &mut inner, stop)
            },
        );
        settle(r, &mut inner, stop)
    })?;
    inner
}

/// After a nested query: keeps its error for the caller and stops the outer walk on an
/// error or when the emitter had enough.
fn settle(
    r: Result<(), QueryError>,
    inner: &mut Result<(), QueryError>,
    stop: bool,
) -> ControlFlow<()> {
    match r {
        Err(e) => {
            *inner = Err(e);
            ControlFlow::Break(())
        }
        Ok(()) if stop => ControlFlow::Break(()),
        Ok(()) => ControlFlow::Continue(()),
    }
}

/// A lower level's row keeps the upper rows' records where its own query left them out.
fn merge(upper: &Row, mut lower: Row) -> Row {
    if lower.patient.is_none() {
        lower.patient = upper.patient.clone();
    }
    if lower.study.is_none() {
        lower.study = upper.study.clone();
        lower.study_uid = upper.study_uid.clone();
    }
    if lower.series.is_none() && lower.series_uid.is_empty() {
        lower.series = upper.series.clone();
        lower.series_uid = upper.series_uid.clone();
    }
    lower
}

/// One match as a DICOM JSON object.
fn encode(row: &Row, level: Level, p: &Params) -> Map<String, Value> {
    let mut obj = Map::new();
    obj.insert(
        json::key(SPECIFIC_CHARACTER_SET),
        json::attribute(b"CS", "ISO_IR 192"),
    );
    obj.insert(
        json::key(INSTANCE_AVAILABILITY),
        json::attribute(b"CS", "ONLINE"),
    );
    let mut put = |attr: Attr| {
        if let Some((tag, vr, _)) = ATTRIBUTE_TAGS.iter().find(|(_, _, a)| *a == attr) {
            let v = row.value(attr).unwrap_or_default();
            obj.insert(json::key(*tag), json::attribute(vr, &v));
        }
    };
    for a in defaults(level) {
        put(*a);
    }
    for (a, _) in &p.filters {
        put(*a);
    }
    for a in &p.include {
        put(*a);
    }
    if p.include_all {
        for (_, _, a) in ATTRIBUTE_TAGS {
            if a.level() <= level.max(Level::Study) {
                put(*a);
            }
        }
    }
    for (tag, vr) in &p.include_empty {
        obj.entry(json::key(*tag))
            .or_insert_with(|| json::attribute(vr, ""));
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_by_keyword_and_tag() {
        let p = parse(
            "PatientName=KIM*&00100020=P1&StudyDate=20240101-20241231&StudyInstanceUID=1.2,1.3\
             &includefield=StudyDescription,00081030&includefield=00291010&limit=5&offset=2",
            Level::Study,
        )
        .unwrap();
        assert_eq!(
            p.filters,
            [
                (Attr::PatientName, Matcher::Wildcard("KIM*".into())),
                (Attr::PatientId, Matcher::Single("P1".into())),
                (
                    Attr::StudyDate,
                    Matcher::Range("20240101".into(), "20241231".into())
                ),
                (
                    Attr::StudyInstanceUid,
                    Matcher::List(vec!["1.2".into(), "1.3".into()])
                ),
            ]
        );
        assert_eq!(p.include, [Attr::StudyDescription, Attr::StudyDescription]);
        assert_eq!(p.include_empty.len(), 1);
        assert_eq!((p.limit, p.offset), (Some(5), 2));
        let fuzzy = parse("PatientName=kim&fuzzymatching=true", Level::Study).unwrap();
        assert_eq!(
            fuzzy.filters,
            [(Attr::PatientName, Matcher::Romanised("kim".into()))]
        );
    }

    #[test]
    fn bad_parameters_are_refused() {
        for q in [
            "NoSuchKeyword=1",
            "limit=x",
            "fuzzymatching=maybe",
            "StudyInstanceUID=1.2.abc",
            "includefield=Nonsense",
            "SOPInstanceUID=1.2",
        ] {
            assert!(parse(q, Level::Study).is_err(), "{q}");
        }
        // Keys the index cannot match are ignored (and said so in a Warning).
        let p = parse("InstitutionName=X", Level::Study).unwrap();
        assert_eq!(p.ignored, ["InstitutionName"]);
    }

    #[test]
    fn orderby_keys_the_index_holds_and_the_rest_ignored() {
        let p = parse(
            "orderby=-StudyDate,PatientName&orderby=+00080050,InstitutionName,SeriesNumber",
            Level::Study,
        )
        .unwrap();
        assert_eq!(
            p.order,
            [
                (Attr::StudyDate, true),
                (Attr::PatientName, false),
                (Attr::AccessionNumber, false)
            ]
        );
        assert_eq!(
            p.ignored,
            ["orderby InstitutionName", "orderby SeriesNumber"]
        );
        let p = parse("orderby=SeriesNumber,-StudyDate", Level::Series).unwrap();
        assert_eq!(
            p.order,
            [(Attr::SeriesNumber, false), (Attr::StudyDate, true)]
        );
    }

    #[test]
    fn sort_keys_numbers_as_numbers_names_caselessly_missing_first() {
        assert!(SortKey::Number(9) < SortKey::Number(10));
        assert!(SortKey::Missing < SortKey::Number(0));
        assert!(SortKey::Text("doe^jane".into()) < SortKey::Text("kim^min".into()));
    }
}
