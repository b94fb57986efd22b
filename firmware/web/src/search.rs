//! The search form: what staff type, turned into an index query. A name without wildcards is
//! a prefix (`kim` finds `KIM^MINSU`, `김` finds `김민수`), as the clinic expects; dates come
//! from the browser's date pickers (YYYY-MM-DD) or presets relative to the appliance's day.

use pacsbox_archive::query::{Attr, Level, Matcher, Query, Row};
use serde::Serialize;

use crate::reply::{HttpError, Req};

pub const PAGE_SIZE: usize = 50;

#[derive(Clone, Debug, Default, Serialize)]
pub struct SearchForm {
    pub name: String,
    pub id: String,
    /// any | today | yesterday | 7d | 30d | range
    pub when: String,
    pub from: String,
    pub to: String,
    pub modality: String,
    pub accession: String,
    pub referring: String,
    pub page: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct StudyRow {
    pub study_uid: String,
    pub patient_name: String,
    pub patient_id: String,
    pub birth_date: String,
    pub sex: String,
    pub date: String,
    pub time: String,
    pub modalities: String,
    pub description: String,
    pub accession: String,
    pub series: u64,
    pub instances: u64,
}

impl SearchForm {
    pub fn from_req(req: &Req) -> SearchForm {
        let t = |k: &str| req.param(k).trim().to_owned();
        SearchForm {
            name: t("name"),
            id: t("id"),
            when: match req.param("when") {
                w @ ("today" | "yesterday" | "7d" | "30d" | "range") => w.to_owned(),
                _ => "any".to_owned(),
            },
            from: t("from"),
            to: t("to"),
            modality: t("modality").to_ascii_uppercase(),
            accession: t("accession"),
            referring: t("referring"),
            page: req.param("page").parse().unwrap_or(0).min(10_000),
        }
    }

    /// Whether a filter behind "More filters" is in use (the form then shows them open).
    pub fn has_more(&self) -> bool {
        self.when == "range"
            || [
                &self.from,
                &self.to,
                &self.modality,
                &self.accession,
                &self.referring,
            ]
            .iter()
            .any(|v| !v.is_empty())
    }

    /// The query this form asks for; `today` is the appliance's local date (YYYYMMDD).
    pub fn query(&self, today: time::Date) -> Result<Query, HttpError> {
        let mut filters = Vec::new();
        if !self.name.is_empty() {
            // Staff on a Latin keyboard find Hangul names too (`kim` → 김민수).
            filters.push((Attr::PatientName, Matcher::Romanised(prefix(&self.name))));
        }
        if !self.id.is_empty() {
            filters.push((Attr::PatientId, Matcher::parse(Attr::PatientId, &self.id)));
        }
        if !self.accession.is_empty() {
            filters.push((
                Attr::AccessionNumber,
                Matcher::parse(Attr::AccessionNumber, &self.accession),
            ));
        }
        if !self.modality.is_empty() {
            filters.push((
                Attr::ModalitiesInStudy,
                Matcher::parse(Attr::ModalitiesInStudy, &self.modality),
            ));
        }
        if !self.referring.is_empty() {
            filters.push((
                Attr::ReferringPhysicianName,
                Matcher::Wildcard(prefix(&self.referring)),
            ));
        }
        let da = |d: time::Date| format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day());
        let days_ago = |n: i64| da(today - time::Duration::days(n));
        let range = match self.when.as_str() {
            "today" => Some((da(today), da(today))),
            "yesterday" => Some((days_ago(1), days_ago(1))),
            "7d" => Some((days_ago(6), da(today))),
            "30d" => Some((days_ago(29), da(today))),
            "range" => Some((date_field(&self.from)?, date_field(&self.to)?)),
            _ => None,
        };
        if let Some((lo, hi)) = range
            && !(lo.is_empty() && hi.is_empty())
        {
            filters.push((Attr::StudyDate, Matcher::Range(lo, hi)));
        }
        Ok(Query {
            level: Level::Study,
            filters,
        })
    }

    /// The query string of this form at another page.
    pub fn page_link(&self, page: usize) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("name", &self.name),
            ("id", &self.id),
            ("when", &self.when),
            ("from", &self.from),
            ("to", &self.to),
            ("modality", &self.modality),
            ("accession", &self.accession),
            ("referring", &self.referring),
        ] {
            if !v.is_empty() {
                s.append_pair(k, v);
            }
        }
        s.append_pair("page", &page.to_string());
        format!("/search?{}", s.finish())
    }
}

fn prefix(s: &str) -> String {
    if s.contains('*') || s.contains('?') {
        s.to_owned()
    } else {
        format!("{s}*")
    }
}

/// `2024-01-31` (date picker) or `20240131` to DICOM DA; empty stays empty (open range).
fn date_field(s: &str) -> Result<String, HttpError> {
    let d: String = s.chars().filter(|c| *c != '-').collect();
    if d.is_empty() || (d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit())) {
        Ok(d)
    } else {
        Err(HttpError::BadRequest(format!("not a date: {s:?}")))
    }
}

/// DICOM DA to `YYYY-MM-DD` for display.
pub fn show_date(da: &str) -> String {
    if da.len() == 8 && da.bytes().all(|b| b.is_ascii_digit()) {
        format!("{}-{}-{}", &da[..4], &da[4..6], &da[6..])
    } else {
        da.to_owned()
    }
}

/// DICOM TM to `HH:MM` for display.
pub fn show_time(tm: &str) -> String {
    if tm.len() >= 4 && tm[..4].bytes().all(|b| b.is_ascii_digit()) {
        format!("{}:{}", &tm[..2], &tm[2..4])
    } else {
        tm.to_owned()
    }
}

/// DICOM PN for display: the alphabetic group with `^` as spaces, then the others.
pub fn show_name(pn: &str) -> String {
    pn.split('=')
        .map(|g| {
            // Components in DICOM order (family first), as each script writes them: Korean,
            // Chinese and Japanese put no space between family and given name ("홍길동").
            let mut out = String::new();
            for c in g.split('^').filter(|c| !c.is_empty()) {
                let joins = out.chars().next_back().is_some_and(written_without_spaces)
                    && c.chars().next().is_some_and(written_without_spaces);
                if !out.is_empty() && !joins {
                    out.push(' ');
                }
                out.push_str(c);
            }
            out
        })
        .filter(|g| !g.is_empty())
        .collect::<Vec<_>>()
        .join(" = ")
}

/// Hangul, Han ideographs and kana: scripts whose names run family and given together.
fn written_without_spaces(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x11FF      // Hangul Jamo
        | 0x3040..=0x30FF    // Hiragana, Katakana
        | 0x3130..=0x318F    // Hangul compatibility Jamo
        | 0x31F0..=0x31FF    // Katakana phonetic extensions
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xA960..=0xA97F    // Hangul Jamo extended A
        | 0xAC00..=0xD7FF    // Hangul syllables, Jamo extended B
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0x20000..=0x3FFFF  // CJK extensions B and later
    )
}

impl From<&Row> for StudyRow {
    fn from(r: &Row) -> StudyRow {
        let st = r.study.clone().unwrap_or_default();
        let p = r.patient.clone().unwrap_or_default();
        StudyRow {
            study_uid: r.study_uid.clone(),
            patient_name: show_name(&st.patient_name),
            patient_id: st.patient_id,
            birth_date: show_date(&p.birth_date),
            sex: p.sex,
            date: show_date(&st.study_date),
            time: show_time(&st.study_time),
            modalities: st.modalities.join(", "),
            description: st.description,
            accession: st.accession_number,
            series: st.series,
            instances: st.instances,
        }
    }
}

/// The appliance's local date.
pub fn local_today() -> time::Date {
    local_date_at(std::time::SystemTime::now())
}

/// The local date at `t`, for any clock value: a board without a battery-backed clock can
/// boot in 1960 or, misset, far beyond year 9999, where `time`'s own conversion panics; the
/// date is then clamped into what `time` represents.
fn local_date_at(t: std::time::SystemTime) -> time::Date {
    let unix = crate::auth::unix_seconds(t);
    let offset = pacsbox_health::host::utc_offset_s(unix);
    let local = unix.saturating_add(offset.into());
    let (min, max) = (time::Date::MIN, time::Date::MAX);
    let bound = |d: time::Date| d.midnight().assume_utc().unix_timestamp();
    match time::OffsetDateTime::from_unix_timestamp(local) {
        Ok(dt) => dt.date(),
        Err(_) if local < bound(min) => min,
        Err(_) => max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> SearchForm {
        let mut req = Req::default();
        for (k, v) in pairs {
            req.query.insert((*k).into(), (*v).into());
        }
        SearchForm::from_req(&req)
    }

    #[test]
    fn any_clock_value_gives_a_date() {
        use std::time::{Duration, UNIX_EPOCH};
        let y = |secs_before: u64| local_date_at(UNIX_EPOCH - Duration::from_secs(secs_before));
        // 1960: a board whose clock was never set; the local offset may shift it by a day.
        assert_eq!(y(10 * 365 * 86_400 + 3 * 86_400).year(), 1960);
        assert_eq!(y(1_000_000_000_000), time::Date::MIN);
        let far = UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert_eq!(local_date_at(far), time::Date::MAX);
        // The search form takes it like any other day.
        assert!(form(&[("when", "7d")]).query(y(1)).is_ok());
    }

    #[test]
    fn names_are_prefixes_and_dates_become_ranges() {
        let today = time::macros::date!(2026 - 03 - 01);
        let q = form(&[("name", "kim"), ("when", "7d")])
            .query(today)
            .unwrap();
        assert_eq!(
            q.filters,
            vec![
                (Attr::PatientName, Matcher::Romanised("kim*".into())),
                (
                    Attr::StudyDate,
                    Matcher::Range("20260223".into(), "20260301".into())
                ),
            ]
        );
        let q = form(&[("when", "range"), ("from", "2024-01-01")])
            .query(today)
            .unwrap();
        assert_eq!(
            q.filters,
            vec![(
                Attr::StudyDate,
                Matcher::Range("20240101".into(), "".into())
            )]
        );
        assert!(
            form(&[("when", "range"), ("from", "x/../1")])
                .query(today)
                .is_err()
        );
        assert_eq!(
            show_name("KIM^MINSU=金^民秀=김^민수"),
            "KIM MINSU = 金民秀 = 김민수"
        );
        assert_eq!(
            show_name("山田^太郎=やまだ^たろう"),
            "山田太郎 = やまだたろう"
        );
        // Mixed: a Latin given name after a Hangul family name keeps its space.
        assert_eq!(show_name("김^Minsu^^Dr."), "김 Minsu Dr.");
        assert_eq!(show_name("Äneas^Rüdiger"), "Äneas Rüdiger");
        assert_eq!(show_name("^^"), "");
        assert_eq!(show_name("=洪^吉童"), "洪吉童");
    }
}
