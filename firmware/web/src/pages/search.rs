//! The search page: the form (`crate::search`) to a query, one page of studies newest first.

use askama::Template;

use super::{Nav, nav, page};
use crate::Web;
use crate::auth::Session;
use crate::reply::{HttpError, Reply, Req};
use crate::search::{self, PAGE_SIZE, SearchForm, StudyRow};

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    nav: Option<Nav>,
    t: &'static crate::i18n::Strings,
    f: SearchForm,
    from_value: String,
    to_value: String,
    whens: Vec<(&'static str, &'static str)>,
    /// Each study with its report state ("reported", "draft" or empty).
    rows: Vec<(StudyRow, &'static str)>,
    summary: String,
    prev: Option<String>,
    next: Option<String>,
    /// "Not here?": the same name and ID searched on each PACS of `[fetch] from`.
    remote_links: Vec<(String, String)>,
}

pub fn search_page(web: &Web, s: &Session, req: &Req) -> Result<Reply, HttpError> {
    let f = SearchForm::from_req(req);
    let q = f.query(search::local_today())?;
    let started = std::time::Instant::now();
    let found = web
        .archive
        .index()
        .study_page(&q, f.page * PAGE_SIZE, PAGE_SIZE)?;
    let rows: Vec<(StudyRow, &'static str)> = found
        .rows
        .iter()
        .map(StudyRow::from)
        .map(|r| {
            let state = web
                .archive
                .report_state(&r.study_uid)
                .map(|s| s.as_str())
                .unwrap_or_default();
            (r, state)
        })
        .collect();
    let first = f.page * PAGE_SIZE;
    let t = s.t();
    let summary = if rows.is_empty() {
        String::new()
    } else {
        crate::i18n::fill(
            t.search_summary,
            &[
                t.num(first + 1),
                t.num(first + rows.len()),
                (if found.more { t.search_of_more } else { "" }).to_owned(),
                started.elapsed().as_millis().to_string(),
            ],
        )
    };
    let date_input = |d: &str| {
        let da: String = d.chars().filter(|c| *c != '-').collect();
        search::show_date(&da)
    };
    let remote_links = web
        .remote
        .as_ref()
        .map(|r| r.peers())
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let q = form_urlencoded::Serializer::new(String::new())
                .append_pair("peer", &p)
                .append_pair("name", &f.name)
                .append_pair("id", &f.id)
                .finish();
            (p, format!("/remote?{q}"))
        })
        .collect();
    page(&SearchPage {
        nav: nav(s),
        t: s.t(),
        remote_links,
        from_value: date_input(&f.from),
        to_value: date_input(&f.to),
        whens: vec![
            ("any", t.when_any),
            ("today", t.when_today),
            ("yesterday", t.when_yesterday),
            ("7d", t.when_7d),
            ("30d", t.when_30d),
            ("range", t.when_range),
        ],
        prev: (f.page > 0).then(|| f.page_link(f.page - 1)),
        next: found.more.then(|| f.page_link(f.page + 1)),
        rows,
        summary,
        f,
    })
}
