//! The viewer page: the shell `viewer.js` runs in, for one study (and optionally one series).

use askama::Template;

use super::study::study_row;
use super::{Nav, nav, page};
use crate::Web;
use crate::auth::Session;
use crate::reply::{HttpError, Reply, Req};

#[derive(Template)]
#[template(path = "viewer.html")]
struct ViewerPage {
    nav: Option<Nav>,
    t: &'static crate::i18n::Strings,
    study_uid: String,
    series_uid: String,
    patient: String,
    /// The overlay's corners that name whose images these are, drawn by the server so they
    /// are there before any pixel arrives: patient (name, ID, sex/age, birth date) and study.
    patient_lines: Vec<String>,
    study_lines: Vec<String>,
    /// The second pane of "Compare" (`?embed=1`, framed by the viewer of another study of the
    /// same patient): no header, no series strip, no Compare of its own.
    embed: bool,
}

pub fn viewer_page(web: &Web, s: &Session, uid: &str, req: &Req) -> Result<Reply, HttpError> {
    let (st, _) = study_row(web, uid)?;
    let t = s.t();
    let fill = |text: &str, v: &str| crate::i18n::fill(text, &[v.to_owned()]);
    let series = req.param("series");
    if !series.is_empty() {
        crate::reply::check_uid(series)?;
    }
    let sex_age = [
        st.sex.clone(),
        age(&st.birth_date, &st.date).unwrap_or_default(),
    ]
    .iter()
    .filter(|x| !x.is_empty())
    .cloned()
    .collect::<Vec<_>>()
    .join(" ");
    let patient_lines = [
        st.patient_name.clone(),
        format!("ID {}", st.patient_id),
        sex_age,
        if st.birth_date.is_empty() {
            String::new()
        } else {
            fill(t.viewer_born, &st.birth_date)
        },
    ];
    let study_lines = [
        format!("{} {}", st.date, st.time),
        st.description.clone(),
        if st.accession.is_empty() {
            String::new()
        } else {
            fill(t.viewer_acc, &st.accession)
        },
        st.modalities.clone(),
    ];
    let keep = |v: [String; 4]| {
        v.into_iter()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect()
    };
    let embed = req.param("embed") == "1";
    let reply = page(&ViewerPage {
        nav: nav(s),
        t,
        study_uid: uid.to_owned(),
        series_uid: series.to_owned(),
        patient: st.patient_name,
        patient_lines: keep(patient_lines),
        study_lines: keep(study_lines),
        embed,
    })?;
    Ok(if embed {
        // Only our own pages may frame it (the server's default forbids any framing).
        reply.header("X-Frame-Options", "SAMEORIGIN").header(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'self'; form-action 'self'",
        )
    } else {
        reply
    })
}

/// Age at the study, from dates shown as `YYYY-MM-DD`: years, or months under 2, or days
/// under 2 months, as DICOM's Patient's Age writes them (`45Y`, `18M`, `20D`).
fn age(birth: &str, at: &str) -> Option<String> {
    let ymd = |d: &str| -> Option<(i32, i32, i32)> {
        let mut p = d.split('-').map(|x| x.parse::<i32>().ok());
        Some((p.next()??, p.next()??, p.next()??))
    };
    let (by, bm, bd) = ymd(birth)?;
    let (ay, am, ad) = ymd(at)?;
    let mut months = (ay - by) * 12 + (am - bm);
    if ad < bd {
        months -= 1;
    }
    if months < 0 {
        return None;
    }
    if months >= 24 {
        return Some(format!("{}Y", months / 12));
    }
    if months >= 2 {
        return Some(format!("{months}M"));
    }
    // Days: close enough through a 31-day month for a newborn's label.
    let days = if am == bm && ay == by {
        ad - bd
    } else {
        (31 - bd) + ad + (months.max(0) * 31)
    };
    (days >= 0).then(|| format!("{days}D"))
}

#[cfg(test)]
mod tests {
    use super::age;

    #[test]
    fn ages_are_years_months_or_days_at_the_study() {
        assert_eq!(age("1980-06-15", "2026-06-14").as_deref(), Some("45Y"));
        assert_eq!(age("1980-06-15", "2026-06-15").as_deref(), Some("46Y"));
        assert_eq!(age("2025-01-10", "2026-07-09").as_deref(), Some("17M"));
        assert_eq!(age("2026-03-01", "2026-03-21").as_deref(), Some("20D"));
        assert_eq!(age("2026-03-25", "2026-04-05").as_deref(), Some("11D"));
        assert_eq!(age("2027-01-01", "2026-01-01"), None);
        assert_eq!(age("", "2026-01-01"), None);
        assert_eq!(age("1980", "2026-01-01"), None);
    }
}
