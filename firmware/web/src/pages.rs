//! The HTML pages (askama templates in web-ui/templates, escaped automatically) and the small
//! JSON and file answers that go with them.

use askama::Template;
use pacsbox_archive::accounts::{Group, UserRecord};
use pacsbox_archive::query::{Attr, Level, Matcher, Query};
use serde::Serialize;

use crate::Web;
use crate::auth::{self, Session};
use crate::header::{HeaderRow, header_rows};
use crate::reply::{HttpError, Reply, Req};
use crate::search::{self, PAGE_SIZE, SearchForm, StudyRow};

const LOGIN_COOKIE: &str = "pacsbox_login";

pub struct Nav {
    pub user: String,
    pub is_admin: bool,
    pub csrf: String,
}

fn nav(s: &Session) -> Option<Nav> {
    Some(Nav {
        user: s.user.clone(),
        is_admin: s.group == Group::Admin,
        csrf: s.csrf.clone(),
    })
}

fn page(t: &impl Template) -> Result<Reply, HttpError> {
    Ok(Reply::html(t.render()?))
}

// ---- static assets: compiled in, so the appliance is one file ----

pub fn asset(name: &str) -> Reply {
    let (ct, body): (&'static str, &'static [u8]) = match name {
        "app.css" => (
            "text/css; charset=utf-8",
            include_bytes!("../../../web-ui/static/app.css"),
        ),
        "viewer.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../../web-ui/static/viewer.js"),
        ),
        "viewer.css" => (
            "text/css; charset=utf-8",
            include_bytes!("../../../web-ui/static/viewer.css"),
        ),
        _ => return Reply::text(404, "not found"),
    };
    Reply::bytes(200, ct, body.to_vec()).header("Cache-Control", "max-age=300")
}

// ---- login ----

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    nav: Option<Nav>,
    error: &'a str,
    csrf: String,
    next: String,
}

/// Only a local path may follow a login (no open redirect).
fn safe_next(next: &str) -> String {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next.to_owned()
    } else {
        "/search".to_owned()
    }
}

pub fn login_form(req: &Req, error: &str) -> Result<Reply, HttpError> {
    // The login form has no session yet: its CSRF token is a double-submit cookie.
    let token = auth::random_token(16)?;
    let next = if req.form.contains_key("next") {
        req.field("next")
    } else {
        req.param("next")
    };
    let status = if error.is_empty() { 200 } else { 401 };
    let mut r = page(&LoginPage {
        nav: None,
        error,
        csrf: token.clone(),
        next: safe_next(next),
    })?;
    r.status = status;
    Ok(r.header(
        "Set-Cookie",
        format!("{LOGIN_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict"),
    ))
}

pub fn login_post(web: &Web, req: &Req) -> Result<Reply, HttpError> {
    let cookie = req.cookies.get(LOGIN_COOKIE).map(String::as_str);
    if cookie.is_none_or(|c| c.is_empty() || c != req.field("csrf")) {
        return login_form(req, "The form expired; please log in again.");
    }
    match web
        .sessions
        .login(&web.archive, req.field("user"), req.field("password"))?
    {
        Ok(token) => Ok(Reply::redirect(&safe_next(req.field("next")))
            .header("Set-Cookie", crate::routes::session_cookie(&token))),
        Err(e) => login_form(req, &e.to_string()),
    }
}

// ---- own password ----

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage<'a> {
    nav: Option<Nav>,
    csrf: &'a str,
    must_change: bool,
    error: &'a str,
    message: &'a str,
    min_len: usize,
}

pub fn password_form(s: &Session, error: &str, message: &str) -> Result<Reply, HttpError> {
    page(&PasswordPage {
        nav: nav(s),
        csrf: &s.csrf,
        must_change: s.must_change_password,
        error,
        message,
        min_len: auth::MIN_PASSWORD_LEN,
    })
}

pub fn password_post(web: &Web, token: &str, s: &Session, req: &Req) -> Result<Reply, HttpError> {
    match auth::change_password(
        &web.archive,
        &s.user,
        req.field("current"),
        req.field("new"),
        req.field("confirm"),
    )? {
        Ok(()) => {
            web.sessions.password_changed(token, &s.user);
            if let Some(f) = &web.config.initial_password_file {
                // The generated password is no longer valid; do not leave it lying around.
                let _ = std::fs::remove_file(f);
            }
            tracing::info!(user = s.user, "password changed");
            if s.must_change_password {
                Ok(Reply::redirect("/search"))
            } else {
                password_form(s, "", "Password changed.")
            }
        }
        Err(msg) => {
            let mut r = password_form(s, &msg, "")?;
            r.status = 400;
            Ok(r)
        }
    }
}

// ---- users (admins) ----

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage<'a> {
    nav: Option<Nav>,
    nav_user: &'a str,
    csrf: &'a str,
    users: Vec<(String, &'static str)>,
    error: &'a str,
    message: &'a str,
}

pub fn users_page(web: &Web, s: &Session, error: &str, message: &str) -> Result<Reply, HttpError> {
    let users = web
        .archive
        .index()
        .users()?
        .into_iter()
        .map(|(n, r)| (n, r.group.as_str()))
        .collect();
    let mut r = page(&UsersPage {
        nav: nav(s),
        nav_user: &s.user,
        csrf: &s.csrf,
        users,
        error,
        message,
    })?;
    if !error.is_empty() {
        r.status = 400;
    }
    Ok(r)
}

pub fn users_post(web: &Web, s: &Session, req: &Req) -> Result<Reply, HttpError> {
    let name = req.field("name");
    match req.field("action") {
        "create" => {
            if !auth::acceptable_user_name(name) {
                return users_page(web, s, "User names are 1-32 letters, digits, . _ -", "");
            }
            let password = req.field("password");
            if let Err(e) = auth::acceptable_password(password, password) {
                return users_page(web, s, &e, "");
            }
            let rec = UserRecord {
                password_hash: auth::hash_password(password)?,
                group: if req.field("group") == "admin" {
                    Group::Admin
                } else {
                    Group::User
                },
                must_change_password: true,
                created_unix: crate::auth::now_unix(),
            };
            if !web.archive.index().create_user_if_absent(name, &rec)? {
                return users_page(web, s, "A user of that name exists.", "");
            }
            tracing::info!(admin = s.user, user = name, "user created");
            users_page(web, s, "", &format!("User {name} added."))
        }
        "delete" => {
            if name == s.user {
                return users_page(web, s, "You cannot delete yourself.", "");
            }
            web.archive.index().delete_user(name)?;
            web.sessions.end_user(name);
            tracing::info!(admin = s.user, user = name, "user deleted");
            users_page(web, s, "", &format!("User {name} deleted."))
        }
        _ => Err(HttpError::BadRequest("unknown action".into())),
    }
}

// ---- status ----

pub fn status_json(web: &Web) -> Result<Reply, HttpError> {
    Ok(Reply::json(&web.status.collect()?))
}

pub fn status_txt(web: &Web) -> Result<Reply, HttpError> {
    Ok(Reply::text(200, web.status.collect()?.as_text()))
}

struct RecentRow {
    when: String,
    study_uid: String,
    patient: String,
    modality: String,
    calling_ae: String,
}

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage {
    nav: Option<Nav>,
    s: crate::StatusDoc,
    uptime: String,
    total: String,
    used: String,
    used_pct: u64,
    free: String,
    raid: Vec<String>,
    recent: Vec<RecentRow>,
    errors: Vec<(String, String, String)>,
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

fn local_time(unix: i64) -> String {
    let offset = pacsbox_health::host::utc_offset_s(unix);
    match time::OffsetDateTime::from_unix_timestamp(unix + i64::from(offset)) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ),
        Err(_) => unix.to_string(),
    }
}

pub fn status_page(web: &Web, s: &Session) -> Result<Reply, HttpError> {
    let doc = web.status.collect()?;
    let used = doc.disk_total_bytes.saturating_sub(doc.disk_free_bytes);
    let recent = doc
        .recent_studies
        .iter()
        .map(|r| {
            let patient = web
                .archive
                .index()
                .study(&r.study_uid)
                .ok()
                .flatten()
                .map(|st| search::show_name(&st.patient_name))
                .unwrap_or_default();
            RecentRow {
                when: local_time(r.received_unix),
                study_uid: r.study_uid.clone(),
                patient,
                modality: r.modality.clone(),
                calling_ae: r.calling_ae.clone(),
            }
        })
        .collect();
    let up = doc.uptime_s;
    page(&StatusPage {
        nav: nav(s),
        uptime: format!("{}d {}h {}m", up / 86400, up / 3600 % 24, up / 60 % 60),
        total: bytes(doc.disk_total_bytes),
        used: bytes(used),
        used_pct: (used * 100).checked_div(doc.disk_total_bytes).unwrap_or(0),
        free: bytes(doc.disk_free_bytes),
        raid: doc
            .raid
            .iter()
            .map(|r| {
                format!(
                    "{}: {}",
                    r.array.name,
                    serde_json::to_string(&r.state).unwrap_or_default()
                )
            })
            .collect(),
        recent,
        errors: doc
            .recent_errors
            .iter()
            .map(|e| (local_time(e.unix), e.level.clone(), e.message.clone()))
            .collect(),
        s: doc,
    })
}

// ---- search ----

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    nav: Option<Nav>,
    f: SearchForm,
    from_value: String,
    to_value: String,
    whens: Vec<(&'static str, &'static str)>,
    rows: Vec<StudyRow>,
    summary: String,
    prev: Option<String>,
    next: Option<String>,
}

pub fn search_page(web: &Web, s: &Session, req: &Req) -> Result<Reply, HttpError> {
    let f = SearchForm::from_req(req);
    let q = f.query(search::local_today())?;
    let started = std::time::Instant::now();
    let found = web
        .archive
        .index()
        .study_page(&q, f.page * PAGE_SIZE, PAGE_SIZE)?;
    let rows: Vec<StudyRow> = found.rows.iter().map(StudyRow::from).collect();
    let first = f.page * PAGE_SIZE;
    let summary = if rows.is_empty() {
        String::new()
    } else {
        format!(
            "Studies {}–{}{}, newest first ({} ms)",
            first + 1,
            first + rows.len(),
            if found.more { " of more" } else { "" },
            started.elapsed().as_millis()
        )
    };
    let date_input = |d: &str| {
        let da: String = d.chars().filter(|c| *c != '-').collect();
        search::show_date(&da)
    };
    page(&SearchPage {
        nav: nav(s),
        from_value: date_input(&f.from),
        to_value: date_input(&f.to),
        whens: vec![
            ("any", "any date"),
            ("today", "today"),
            ("yesterday", "yesterday"),
            ("7d", "last 7 days"),
            ("30d", "last 30 days"),
            ("range", "from – to"),
        ],
        prev: (f.page > 0).then(|| f.page_link(f.page - 1)),
        next: found.more.then(|| f.page_link(f.page + 1)),
        rows,
        summary,
        f,
    })
}

// ---- study ----

struct SeriesView {
    uid: String,
    number: String,
    modality: String,
    description: String,
    body_part: String,
    instances: u64,
    first_sop: Option<String>,
}

#[derive(Template)]
#[template(path = "study.html")]
struct StudyPage {
    nav: Option<Nav>,
    st: StudyRow,
    referring: String,
    series: Vec<SeriesView>,
}

fn study_query(uid: &str) -> Query {
    Query {
        level: Level::Study,
        filters: vec![(Attr::StudyInstanceUid, Matcher::Single(uid.to_owned()))],
    }
}

fn study_row(web: &Web, uid: &str) -> Result<(StudyRow, String), HttpError> {
    let page = web.archive.index().study_page(&study_query(uid), 0, 1)?;
    let row = page.rows.first().ok_or(HttpError::NotFound)?;
    let referring = row
        .study
        .as_ref()
        .map(|s| search::show_name(&s.referring_physician))
        .unwrap_or_default();
    Ok((StudyRow::from(row), referring))
}

/// A series UID, its record, and its instances (SOP UID, instance number).
pub type SeriesListing = (
    String,
    pacsbox_archive::record::SeriesRecord,
    Vec<(String, Option<i32>)>,
);

/// The study's series (by series number) with their instances (by instance number).
pub fn series_of(web: &Web, study_uid: &str) -> Result<Vec<SeriesListing>, HttpError> {
    let index = web.archive.index();
    let mut out = Vec::new();
    for (uid, rec) in index.series_of(study_uid)? {
        let instances = index
            .instances_of(&uid)?
            .into_iter()
            .map(|(sop, i)| (sop, i.instance_number))
            .collect();
        out.push((uid, rec, instances));
    }
    Ok(out)
}

pub fn study_page(web: &Web, s: &Session, uid: &str) -> Result<Reply, HttpError> {
    let (st, referring) = study_row(web, uid)?;
    let series = series_of(web, uid)?
        .into_iter()
        .map(|(uid, rec, inst)| SeriesView {
            uid,
            number: rec.series_number.map(|n| n.to_string()).unwrap_or_default(),
            modality: rec.modality,
            description: rec.description,
            body_part: rec.body_part,
            instances: rec.instances,
            first_sop: inst.first().map(|i| i.0.clone()),
        })
        .collect();
    page(&StudyPage {
        nav: nav(s),
        st,
        referring,
        series,
    })
}

#[derive(Serialize)]
struct SeriesJson {
    uid: String,
    number: Option<i32>,
    modality: String,
    description: String,
    instances: Vec<InstanceJson>,
}

#[derive(Serialize)]
struct InstanceJson {
    sop: String,
    number: Option<i32>,
}

pub fn series_json(web: &Web, study_uid: &str) -> Result<Reply, HttpError> {
    if web.archive.index().study(study_uid)?.is_none() {
        return Err(HttpError::NotFound);
    }
    let list: Vec<SeriesJson> = series_of(web, study_uid)?
        .into_iter()
        .map(|(uid, rec, inst)| SeriesJson {
            uid,
            number: rec.series_number,
            modality: rec.modality,
            description: rec.description,
            instances: inst
                .into_iter()
                .map(|(sop, number)| InstanceJson { sop, number })
                .collect(),
        })
        .collect();
    Ok(Reply::json(&list))
}

pub fn study_zip(web: &Web, uid: &str) -> Result<Reply, HttpError> {
    let instances = crate::study_zip::instances_of_study(&web.archive, uid)?;
    if instances.is_empty() {
        return Err(HttpError::NotFound);
    }
    let body = crate::study_zip::stream(web.archive.clone(), instances)?;
    Ok(Reply::stream("application/zip", body).header(
        "Content-Disposition",
        format!("attachment; filename=\"study-{uid}.zip\""),
    ))
}

// ---- one instance ----

#[derive(Template)]
#[template(path = "header.html")]
struct HeaderPage {
    nav: Option<Nav>,
    sop: String,
    study_uid: String,
    rows: Vec<HeaderRow>,
}

pub fn header_page(web: &Web, s: &Session, sop: &str) -> Result<Reply, HttpError> {
    let rec = web
        .archive
        .index()
        .instance(sop)?
        .ok_or(HttpError::NotFound)?;
    let rows = header_rows(web.archive.open_part10(&rec)?)?;
    page(&HeaderPage {
        nav: nav(s),
        sop: sop.to_owned(),
        study_uid: rec.study_uid,
        rows,
    })
}

pub fn instance_file(web: &Web, sop: &str) -> Result<Reply, HttpError> {
    let rec = web
        .archive
        .index()
        .instance(sop)?
        .ok_or(HttpError::NotFound)?;
    let body = web.archive.open_part10(&rec)?;
    Ok(Reply::stream("application/dicom", body).header(
        "Content-Disposition",
        format!("attachment; filename=\"{sop}.dcm\""),
    ))
}

#[derive(Template)]
#[template(path = "viewer.html")]
struct ViewerPage {
    nav: Option<Nav>,
    study_uid: String,
    series_uid: String,
    patient: String,
}

pub fn viewer_page(web: &Web, s: &Session, uid: &str, req: &Req) -> Result<Reply, HttpError> {
    let (st, _) = study_row(web, uid)?;
    let series = req.param("series");
    if !series.is_empty() {
        crate::reply::check_uid(series)?;
    }
    page(&ViewerPage {
        nav: nav(s),
        study_uid: uid.to_owned(),
        series_uid: series.to_owned(),
        patient: st.patient_name,
    })
}
