//! The web page over a real socket: a real archive with instances stored through the ingest
//! path, the real worker pool, and raw HTTP requests (so nothing a browser would smooth over,
//! such as `../` in paths, is hidden from the server).

// The helpers outside #[test] functions unwrap too, and clippy.toml's allow-*-in-tests
// covers only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use pacsbox_archive::{Archive, ArchiveConfig, StoreRequest};
use pacsbox_web::{StatusDoc, StatusSource, Web, WebConfig};

const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

fn element(out: &mut Vec<u8>, group: u16, elem: u16, vr: &[u8; 2], value: &[u8]) {
    let mut v = value.to_vec();
    if v.len() % 2 == 1 {
        v.push(if vr == b"UI" { 0 } else { b' ' });
    }
    out.extend(group.to_le_bytes());
    out.extend(elem.to_le_bytes());
    out.extend(vr);
    if vr == b"OW" || vr == b"OB" {
        out.extend([0, 0]);
        out.extend((v.len() as u32).to_le_bytes());
    } else {
        out.extend((v.len() as u16).to_le_bytes());
    }
    out.extend(v);
}

struct Study<'a> {
    uid: String,
    /// Specific Character Set of `name`'s bytes.
    charset: &'a str,
    name: &'a [u8],
    id: &'a str,
    date: &'a str,
}

/// An explicit VR little endian CT data set, as a C-STORE would carry it.
fn dataset(s: &Study, sop: &str) -> Vec<u8> {
    let mut d = Vec::new();
    element(&mut d, 0x0008, 0x0005, b"CS", s.charset.as_bytes());
    element(&mut d, 0x0008, 0x0016, b"UI", CT.as_bytes());
    element(&mut d, 0x0008, 0x0018, b"UI", sop.as_bytes());
    element(&mut d, 0x0008, 0x0020, b"DA", s.date.as_bytes());
    element(&mut d, 0x0008, 0x0060, b"CS", b"CT");
    element(&mut d, 0x0008, 0x1030, b"LO", b"CHEST <b>bold</b>");
    element(&mut d, 0x0010, 0x0010, b"PN", s.name);
    element(&mut d, 0x0010, 0x0020, b"LO", s.id.as_bytes());
    element(&mut d, 0x0020, 0x000D, b"UI", s.uid.as_bytes());
    element(
        &mut d,
        0x0020,
        0x000E,
        b"UI",
        format!("{}.1", s.uid).as_bytes(),
    );
    element(&mut d, 0x0028, 0x0002, b"US", &1u16.to_le_bytes());
    element(&mut d, 0x0028, 0x0004, b"CS", b"MONOCHROME2");
    element(&mut d, 0x0028, 0x0010, b"US", &8u16.to_le_bytes());
    element(&mut d, 0x0028, 0x0011, b"US", &8u16.to_le_bytes());
    element(&mut d, 0x0028, 0x0100, b"US", &16u16.to_le_bytes());
    element(&mut d, 0x0028, 0x0101, b"US", &12u16.to_le_bytes());
    element(&mut d, 0x0028, 0x0102, b"US", &11u16.to_le_bytes());
    element(&mut d, 0x0028, 0x0103, b"US", &0u16.to_le_bytes());
    let pixels: Vec<u8> = (0..64u16).flat_map(|i| (i * 60).to_le_bytes()).collect();
    element(&mut d, 0x7FE0, 0x0010, b"OW", &pixels);
    d
}

fn store(archive: &Archive, s: &Study, sop: &str) {
    archive
        .begin_store(StoreRequest {
            sop_class_uid: CT.into(),
            sop_instance_uid: sop.into(),
            transfer_syntax: EXPLICIT_LE.into(),
            source_ae: "CT1".into(),
        })
        .unwrap()
        .receive(dataset(s, sop).as_slice())
        .unwrap();
}

/// The status document the binary would build, from the archive's own counts.
struct ArchiveStatus(Archive);

impl StatusSource for ArchiveStatus {
    fn collect(&self) -> anyhow::Result<StatusDoc> {
        let c = self.0.counts()?;
        let a = self.0.activity();
        Ok(StatusDoc {
            version: "test",
            uptime_s: 1,
            ae_title: "PACSBOX".into(),
            dicom_port: 11112,
            http_port: 8080,
            https_port: 0,
            dicom_tls_port: 0,
            tls_fingerprint: String::new(),
            data_dir: self.0.root().display().to_string(),
            patients: c.patients,
            studies: c.studies,
            series: c.series,
            instances: c.instances,
            instances_today: a.instances_today,
            studies_today: a.studies_today,
            last_received: a.last,
            recent_studies: a.recent,
            active_associations: 0,
            associations_total: 0,
            associations_rejected: 0,
            instances_stored: 0,
            stores_failed: 0,
            disk_total_bytes: 1 << 30,
            disk_free_bytes: 1 << 29,
            reserve_bytes: 0,
            refusing_stores: false,
            hostname: "pacsbox-test.local".into(),
            addresses: vec![],
            dicom_accepting: true,
            raid: vec![],
            disks: vec![],
            alarms: vec![],
            conflicts: self.0.conflict_stats().count,
            conflicts_bytes: self.0.conflict_stats().bytes,
            conflicts_max_bytes: self.0.conflict_stats().max_bytes,
            compression_pending: self.0.compression_pending(),
            plain_waiting_instances: self.0.plain_waiting().0,
            plain_waiting_bytes: self.0.plain_waiting().1,
            recent_errors: vec![],
            audit_forwarding: None,
            forwarding: Vec::new(),
            backup: None,
            media_found: Vec::new(),
        })
    }
}

struct Server {
    port: u16,
    archive: Archive,
    _dir: tempfile::TempDir,
    password_file: std::path::PathBuf,
    korean_study: String,
    script_study: String,
}

const SCRIPT_NAME: &str = "<script>alert(1)</script>";

fn start() -> Server {
    start_with(Default::default())
}

fn start_with(guard: pacsbox_web::guard::GuardConfig) -> Server {
    start_configured(guard, WebConfig::default())
}

fn start_configured(guard: pacsbox_web::guard::GuardConfig, config: WebConfig) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let (archive, _) = Archive::open(
        &dir.path().join("data"),
        ArchiveConfig {
            reserve_bytes: 0,
            ..ArchiveConfig::default()
        },
    )
    .unwrap();
    let korean = Study {
        uid: "1.2.410.1".into(),
        charset: "ISO_IR 192",
        name: "Kim^Minsu=金^民秀=김^민수".as_bytes(),
        id: "K1",
        date: "20240105",
    };
    let script = Study {
        uid: "1.2.666.1".into(),
        charset: "ISO_IR 192",
        name: SCRIPT_NAME.as_bytes(),
        id: "X1",
        date: "20240106",
    };
    store(&archive, &korean, "1.2.410.1.1.1");
    store(&archive, &korean, "1.2.410.1.1.2");
    store(&archive, &script, "1.2.666.1.1.1");
    // Names in cased scripts, each in its own single-byte character set (pydicom's chrGerm,
    // chrGreek and chrRuss), older than everything else so the paging below is unchanged.
    for (i, (charset, name)) in CASED_NAMES.iter().enumerate() {
        let s = Study {
            uid: format!("1.2.30.{i}"),
            charset,
            name,
            id: "C1",
            date: "20220101",
        };
        store(&archive, &s, &format!("1.2.30.{i}.1.1"));
    }
    // A name written in Hangul only, as Korean modalities often send it (for romanised search).
    let hangul = Study {
        uid: "1.2.410.2".into(),
        charset: "ISO_IR 192",
        name: "박^지성".as_bytes(),
        id: "K2",
        date: "20220101",
    };
    store(&archive, &hangul, "1.2.410.2.1.1");
    // 60 more studies, one per day, for paging and order.
    for i in 0..60u32 {
        let s = Study {
            uid: format!("1.2.9.{i}"),
            charset: "ISO_IR 192",
            name: b"DOE^JOHN",
            id: "D1",
            date: &format!("2023{:02}{:02}", 1 + i / 28, 1 + i % 28),
        };
        store(&archive, &s, &format!("1.2.9.{i}.1.1"));
    }
    let password_file = dir.path().join("initial-admin-password");
    let web_archive = archive.clone();
    let (web, initial) = Web::new(
        archive.clone(),
        Arc::new(ArchiveStatus(archive)),
        WebConfig {
            initial_password_file: Some(password_file.clone()),
            ..config
        },
        pacsbox_audit::Audit::open(&dir.path().join("audit"), 0).unwrap(),
    )
    .unwrap();
    let initial = initial.expect("a first admin password on first start");
    assert_eq!(
        std::fs::read_to_string(&password_file).unwrap().trim(),
        initial
    );
    let listener = pacsbox_web::listen("127.0.0.1:0", guard, None).unwrap();
    let port = listener.local_addr.port();
    pacsbox_web::serve(listener.server, Arc::new(web)).unwrap();
    Server {
        port,
        archive: web_archive,
        _dir: dir,
        password_file,
        korean_study: korean.uid,
        script_study: script.uid,
    }
}

struct Resp {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Resp {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            if !k.trim().eq_ignore_ascii_case("set-cookie") {
                return None;
            }
            let (n, rest) = v.trim().split_once('=')?;
            (n == name).then(|| rest.split(';').next().unwrap_or("").to_owned())
        })
    }
    /// The value of the first hidden `csrf` field.
    fn csrf(&self) -> String {
        let t = self.text();
        let i = t.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
        t[i..].split('"').next().unwrap().to_owned()
    }
}

fn request(port: u16, raw: &[u8]) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(raw).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let headers = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status = headers[9..12].parse().unwrap();
    let mut body = buf[split + 4..].to_vec();
    if headers
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 4 + n..];
    }
}

fn get(port: u16, path: &str, cookie: &str) -> Resp {
    request(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
}

fn post(port: u16, path: &str, cookie: &str, form: &[(&str, &str)]) -> Resp {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    request(
        port,
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

/// Logs in; returns the session cookie.
fn login(port: u16, user: &str, password: &str) -> Resp {
    login_to(port, user, password, "/search")
}

/// Logs in with `next` as the form's redirect target.
fn login_to(port: u16, user: &str, password: &str, next: &str) -> Resp {
    let form = get(port, "/login", "");
    let login_cookie = format!("pacsbox_login={}", form.cookie("pacsbox_login").unwrap());
    post(
        port,
        "/login",
        &login_cookie,
        &[
            ("user", user),
            ("password", password),
            ("csrf", &form.csrf()),
            ("next", next),
        ],
    )
}

fn session(r: &Resp) -> String {
    format!(
        "pacsbox_session={}",
        r.cookie("pacsbox_session").expect("a session cookie")
    )
}

/// Posts the password form of the session `cookie`.
fn change_password(port: u16, cookie: &str, current: &str, new: &str) -> Resp {
    let page = get(port, "/account/password", cookie);
    post(
        port,
        "/account/password",
        cookie,
        &[
            ("csrf", &page.csrf()),
            ("current", current),
            ("new", new),
            ("confirm", new),
        ],
    )
}

/// An admin (session `admin`) adds a user of the group `user` through the users page.
fn create_user(port: u16, admin: &str, name: &str, password: &str) -> Resp {
    create_user_as(port, admin, name, password, "user")
}

/// An admin (session `admin`) adds a user of the role `group` through the users page.
fn create_user_as(port: u16, admin: &str, name: &str, password: &str, group: &str) -> Resp {
    let page = get(port, "/admin/users", admin);
    assert_eq!(page.status, 200);
    post(
        port,
        "/admin/users",
        admin,
        &[
            ("csrf", &page.csrf()),
            ("action", "create"),
            ("name", name),
            ("group", group),
            ("password", password),
        ],
    )
}

/// Logs in as the first admin and changes the generated password; returns the session.
fn admin_session(s: &Server) -> String {
    let initial = std::fs::read_to_string(&s.password_file).unwrap();
    let r = login(s.port, "admin", initial.trim());
    assert_eq!(r.status, 303, "{}", r.text());
    let cookie = session(&r);
    let r = change_password(s.port, &cookie, initial.trim(), "a-long-new-password");
    assert_eq!(r.status, 303, "{}", r.text());
    cookie
}

/// A route pattern of `pacsbox_web::routes` with its parameters replaced by things the test
/// archive holds, so that with a session every route has something to answer.
fn sample_path(s: &Server, pattern: &str) -> String {
    pattern
        .replace("{uid}", &s.korean_study)
        .replace("{series}", &format!("{}.1", s.korean_study))
        .replace("{sop}", &format!("{}.1.1", s.korean_study))
        .replace("{n}", "1")
}

fn head(port: u16, path: &str) -> u16 {
    request(
        port,
        format!("HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .status
}

/// The route arms of a `match` in `source`: `(bool, [segments])` arms (or `[segments] =>` arms
/// when `bool_first` is None), as "METHOD /seg/{}/seg" with parameters as `{}`.
fn arms(source: &str, bool_means_post: Option<bool>) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = source;
    let open = if bool_means_post.is_some() {
        ", ["
    } else {
        "["
    };
    while let Some(i) = rest.find(open) {
        let before = &rest[..i];
        let after = &rest[i + open.len()..];
        let Some(end) = after.find(']') else { break };
        let segs = &after[..end];
        rest = &after[end..];
        let method = match bool_means_post {
            Some(post_if_true) => {
                let flag = before.rsplit('(').next().unwrap_or("").trim();
                let is_true = match flag {
                    "true" => true,
                    "false" => false,
                    _ => continue,
                };
                if is_true == post_if_true {
                    "POST"
                } else {
                    "GET"
                }
            }
            None => {
                if !before.ends_with(|c: char| c.is_whitespace())
                    || !rest[1..].trim_start().starts_with("=>")
                {
                    continue;
                }
                "GET"
            }
        };
        let path: Vec<String> = segs
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                if p.starts_with('"') {
                    p.trim_matches('"').to_string()
                } else if p.ends_with("..") {
                    "..".to_string()
                } else {
                    "{}".to_string()
                }
            })
            .collect();
        out.push(format!("{method} /{}", path.join("/")));
    }
    out
}

fn normalized(routes: &[(&str, &str)]) -> std::collections::BTreeSet<String> {
    routes
        .iter()
        .map(|(m, p)| {
            let segs: Vec<&str> = p
                .split('/')
                .map(|s| if s.starts_with('{') { "{}" } else { s })
                .collect();
            format!("{m} {}", segs.join("/"))
        })
        .collect()
}

/// The route table the probes below walk is the router's: an arm added to `routes.rs` (or to
/// the instance API in `pixels.rs`) without an entry in the table fails here.
#[test]
fn the_route_table_lists_every_arm_of_the_router() {
    let routes = include_str!("../src/routes.rs");
    let pixels = include_str!("../src/pixels.rs");
    let section = |src: &'static str, from: &str, to: &str| -> &'static str {
        let a = src
            .find(from)
            .unwrap_or_else(|| panic!("{from:?} not found"));
        let b = a + src[a..]
            .find(to)
            .unwrap_or_else(|| panic!("{to:?} not found"));
        &src[a..b]
    };
    let public = arms(section(routes, "// Public.", "_ => {}"), Some(false));
    let gated = arms(
        section(
            routes,
            "match (post, segs) {",
            "_ => Err(HttpError::NotFound)",
        ),
        Some(true),
    );
    let api = arms(
        section(
            pixels,
            "pub fn instance_api",
            "_ => Err(HttpError::NotFound)",
        ),
        None,
    );
    assert!(
        public.len() >= 6 && gated.len() >= 15 && api.len() >= 3,
        "{public:?} {gated:?} {api:?}"
    );
    let mut found: std::collections::BTreeSet<String> =
        gated.into_iter().filter(|a| !a.ends_with("/..")).collect();
    for a in &api {
        found.insert(a.replacen("GET /", "GET /api/instances/{}/", 1));
    }
    assert_eq!(
        found,
        normalized(pacsbox_web::routes::SESSION_ROUTES),
        "the router (left) and routes::SESSION_ROUTES (right) disagree: list a new route in the table"
    );
    assert_eq!(
        public
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>(),
        normalized(pacsbox_web::routes::PUBLIC_ROUTES),
        "routes::PUBLIC_ROUTES and the router disagree"
    );
}

/// With a session every route of the table answers (the table names real routes, and the
/// parameters above are real), so a 303/401 in the probe without a session is the gate's.
#[test]
fn every_route_of_the_table_answers_with_a_session() {
    let s = start();
    let cookie = admin_session(&s);
    let r = get(s.port, "/account/password", &cookie);
    let csrf = r.csrf();
    // An anonymization job's pages exist once a job does: one started from the sample study.
    let job = post(
        s.port,
        &sample_path(&s, "/study/{uid}/anonymize"),
        &cookie,
        &[
            ("csrf", &csrf),
            ("name", "PROBE^ANON"),
            ("id", "PROBE-1"),
            ("target", "archive"),
        ],
    );
    assert_eq!(job.status, 303, "{}", job.text());
    let job = job.header("location").expect("the job's page");
    let mut routes = pacsbox_web::routes::SESSION_ROUTES.to_vec();
    // Logging out ends the session the others need.
    routes.sort_by_key(|(_, p)| *p == "/logout");
    for (method, pattern) in routes {
        let path = match pattern.strip_prefix("/anonymize/{n}") {
            Some(rest) => format!("{job}{rest}"),
            None => sample_path(&s, pattern),
        };
        let r = if method == "POST" {
            post(s.port, &path, &cookie, &[("csrf", &csrf)])
        } else {
            get(s.port, &path, &cookie)
        };
        let ok = match (method, pattern) {
            ("GET", "/") | ("POST", "/logout") => r.status == 303,
            ("POST", _) => ![401, 403, 404, 405].contains(&r.status),
            _ => r.status == 200,
        };
        assert!(ok, "{method} {path}: {} {}", r.status, r.text());
    }
    for (method, pattern) in pacsbox_web::routes::PUBLIC_ROUTES {
        let path = pattern.replace("{name}", "viewer.js");
        let r = if *method == "POST" {
            post(s.port, &path, "", &[])
        } else {
            get(s.port, &path, "")
        };
        let want: &[u16] = match *pattern {
            "/favicon.ico" => &[404],
            "/login" if *method == "POST" => &[200, 400, 401, 403],
            _ => &[200],
        };
        assert!(
            want.contains(&r.status),
            "{method} {path} without a session: {}",
            r.status
        );
    }
}

#[test]
fn nothing_with_patient_data_is_reachable_without_a_session() {
    let s = start();
    let r = get(s.port, "/search?name=kim", "");
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location").unwrap(),
        "/login?next=%2Fsearch%3Fname%3Dkim"
    );
    let routes = pacsbox_web::routes::SESSION_ROUTES;
    assert!(routes.len() >= 18, "{routes:?}");
    for (method, pattern) in routes {
        let path = sample_path(&s, pattern);
        let (r, head) = if *method == "POST" {
            (post(s.port, &path, "", &[("csrf", "")]), None)
        } else {
            (get(s.port, &path, ""), Some(head(s.port, &path)))
        };
        let expected = if *method == "POST" || path.starts_with("/api/") {
            401
        } else {
            303
        };
        assert_eq!(r.status, expected, "{method} {path}");
        if expected == 303 {
            let next: String = form_urlencoded::byte_serialize(path.as_bytes()).collect();
            assert_eq!(
                r.header("location").as_deref(),
                Some(format!("/login?next={next}").as_str()),
                "{method} {path}"
            );
        }
        let text = r.text();
        assert!(
            !text.contains("Kim") && !text.contains("김") && !text.contains("DOE"),
            "{method} {path}: {text}"
        );
        if let Some(h) = head {
            assert_eq!(h, expected, "HEAD {path}");
        }
    }
    assert_eq!(get(s.port, "/search", "pacsbox_session=forged").status, 303);
    // The public status document has counts but no names.
    let r = get(s.port, "/status.json", "");
    assert_eq!(r.status, 200);
    let doc: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(doc["studies"], 66);
    assert!(!r.text().contains("Kim") && !r.text().contains("script"));
}

#[test]
fn first_login_must_change_the_generated_password() {
    let s = start();
    let initial = std::fs::read_to_string(&s.password_file).unwrap();
    let r = login(s.port, "admin", initial.trim());
    let cookie = session(&r);
    // Every page leads to the password form until it is changed.
    let r = get(s.port, "/search", &cookie);
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location").unwrap(), "/account/password");
    assert_eq!(
        get(s.port, "/api/studies/1.2.410.1/series", &cookie).status,
        403
    );
    let page = get(s.port, "/account/password", &cookie);
    assert!(page.text().contains("generated password"));
    let too_short = change_password(s.port, &cookie, initial.trim(), "short");
    assert_eq!(too_short.status, 400);
    assert!(too_short.text().contains("at least 10"));
    let ok = change_password(s.port, &cookie, initial.trim(), "a-long-new-password");
    assert_eq!(ok.status, 303);
    assert!(
        !s.password_file.exists(),
        "the generated password file is removed"
    );
    assert_eq!(get(s.port, "/search", &cookie).status, 200);
    // The old password no longer works; the new one does.
    assert_eq!(login(s.port, "admin", initial.trim()).status, 401);
    assert_eq!(login(s.port, "admin", "a-long-new-password").status, 303);
}

#[test]
fn a_login_redirect_goes_to_a_path_of_this_site_and_carries_no_headers_of_its_own() {
    let s = start();
    let initial = std::fs::read_to_string(&s.password_file).unwrap();
    for (next, expect) in [
        ("/study/1.2.410.1", "/study/1.2.410.1"),
        ("/search\r\nSet-Cookie: pacsbox_session=attacker", "/search"),
        ("/x\nLocation: https://evil.example/", "/search"),
        (
            "/search%0d%0aSet-Cookie:%20a=b",
            "/search%0d%0aSet-Cookie:%20a=b",
        ),
        ("//evil.example/", "/search"),
        ("https://evil.example/", "/search"),
        ("/\\evil.example", "/search"),
    ] {
        let r = login_to(s.port, "admin", initial.trim(), next);
        assert_eq!(r.status, 303, "next={next:?}");
        assert_eq!(
            r.header("location").as_deref(),
            Some(expect),
            "next={next:?}"
        );
        let raw = r.headers.to_lowercase();
        assert!(
            !raw.contains("attacker") && !raw.contains("evil.example"),
            "next={next:?} reached the response head:\n{raw}"
        );
    }
}

#[test]
fn wrong_passwords_are_refused_and_then_slowed_down() {
    let s = start();
    for _ in 0..5 {
        let r = login(s.port, "admin", "guess");
        assert_eq!(r.status, 401);
        assert!(r.text().contains("wrong user name or password"));
        assert!(r.cookie("pacsbox_session").is_none());
    }
    let initial = std::fs::read_to_string(&s.password_file).unwrap();
    let r = login(s.port, "admin", initial.trim());
    assert_eq!(r.status, 401, "locked even with the right password");
    assert!(r.text().contains("too many failed logins"));
    assert_eq!(login(s.port, "nobody", "x").status, 401);
}

#[test]
fn every_post_needs_the_csrf_token() {
    let s = start();
    let cookie = admin_session(&s);
    // Logging out (a state change) without the token is refused and the session lives on.
    let r = post(s.port, "/logout", &cookie, &[]);
    assert_eq!(r.status, 403);
    assert_eq!(get(s.port, "/search", &cookie).status, 200);
    let r = post(
        s.port,
        "/admin/users",
        &cookie,
        &[
            ("csrf", "0000"),
            ("action", "create"),
            ("name", "eve"),
            ("password", "12345678"),
        ],
    );
    assert_eq!(r.status, 403);
    // A login post without the login form's cookie is refused too.
    let r = post(
        s.port,
        "/login",
        "",
        &[
            ("user", "admin"),
            ("password", "a-long-new-password"),
            ("csrf", "x"),
        ],
    );
    assert_eq!(r.status, 401);
    assert!(r.cookie("pacsbox_session").is_none());
    // With the token: logout ends the session.
    let page = get(s.port, "/search", &cookie);
    assert_eq!(
        post(s.port, "/logout", &cookie, &[("csrf", &page.csrf())]).status,
        303
    );
    assert_eq!(get(s.port, "/search", &cookie).status, 303);
}

#[test]
fn admins_manage_users_and_users_cannot() {
    let s = start();
    let cookie = admin_session(&s);
    let r = create_user(s.port, &cookie, "nurse", "first-password");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("User nurse added"));
    let nurse = session(&login(s.port, "nurse", "first-password"));
    assert_eq!(
        get(s.port, "/admin/users", &nurse).status,
        303,
        "must change first"
    );
    let r = change_password(s.port, &nurse, "first-password", "Quiet-Orchard-31");
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(get(s.port, "/search", &nurse).status, 200);
    assert_eq!(get(s.port, "/admin/users", &nurse).status, 403);
}

/// A user of `role`, created by the admin session, past the first-login password change.
fn member(s: &Server, admin: &str, name: &str, role: &str) -> String {
    let r = create_user_as(s.port, admin, name, "first-password", role);
    assert_eq!(r.status, 200, "{}", r.text());
    let cookie = session(&login(s.port, name, "first-password"));
    let r = change_password(s.port, &cookie, "first-password", "Quiet-Orchard-31");
    assert_eq!(r.status, 303, "{}", r.text());
    cookie
}

#[test]
fn each_role_reaches_what_it_may_and_no_more() {
    let s = start();
    let admin = admin_session(&s);
    let staff = member(&s, &admin, "reception", "user");
    let doctor = member(&s, &admin, "drkim", "physician");
    let editor = member(&s, &admin, "fixer", "editor");
    let page = get(s.port, "/admin/users", &admin).text();
    for (name, role) in [
        ("reception", "user"),
        ("drkim", "physician"),
        ("fixer", "editor"),
    ] {
        assert!(
            page.contains(&format!("<td>{name}</td><td>{role}</td>")),
            "{name} listed as {role}"
        );
    }
    let admin_only = [
        "/admin/users",
        "/admin/peers",
        "/admin/audit",
        "/admin/forwarding",
    ];
    for (cookie, edits, role) in [
        (&staff, false, "user"),
        (&doctor, false, "physician"),
        (&editor, true, "editor"),
    ] {
        // Everyone searches and views.
        assert_eq!(get(s.port, "/search", cookie).status, 200);
        let study = format!("/study/{}", s.korean_study);
        assert_eq!(get(s.port, &study, cookie).status, 200);
        for path in admin_only {
            assert_eq!(get(s.port, path, cookie).status, 403, "{role} at {path}");
        }
        let conflicts = get(s.port, "/admin/conflicts", cookie);
        assert_eq!(
            conflicts.status == 200,
            edits,
            "{role} at the conflicts page"
        );
        // The menu offers what the role may open, and nothing else.
        let menu = get(s.port, "/search", cookie).text();
        assert_eq!(
            menu.contains("href=\"/admin/conflicts\""),
            edits,
            "{role}'s menu"
        );
        assert!(!menu.contains("href=\"/admin/users\""), "{role}'s menu");
        let account = get(s.port, "/account/password", cookie).text();
        assert!(
            account.contains(&format!("<strong>{role}</strong>")),
            "{account}"
        );
    }
    // Resolving a conflict is a post of the conflicts page: refused before any lookup for a
    // physician, let through (to "no such conflict") for an editor.
    for (cookie, want) in [(&doctor, 403), (&editor, 404)] {
        let csrf = get(s.port, "/search", cookie).csrf();
        let r = post(
            s.port,
            "/admin/conflicts",
            cookie,
            &[
                ("csrf", &csrf),
                ("name", "nothing.dcm"),
                ("action", "discard"),
            ],
        );
        assert_eq!(r.status, want, "{}", r.text());
    }
    // A role the box does not have is refused, not turned into "user".
    let r = create_user_as(s.port, &admin, "root2", "first-password", "superuser");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("Choose one of the roles"));
    assert_eq!(
        login(s.port, "root2", "first-password").status,
        401,
        "root2 was not created"
    );
}

#[test]
fn an_admin_changes_a_role_and_it_counts_from_the_next_login() {
    let s = start();
    let admin = admin_session(&s);
    let staff = member(&s, &admin, "reception", "user");
    assert_eq!(get(s.port, "/admin/conflicts", &staff).status, 403);
    let set = |name: &str, role: &str| {
        let csrf = get(s.port, "/admin/users", &admin).csrf();
        post(
            s.port,
            "/admin/users",
            &admin,
            &[
                ("csrf", &csrf),
                ("action", "set-role"),
                ("name", name),
                ("group", role),
            ],
        )
    };
    let r = set("reception", "editor");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("reception is now editor"));
    // The old session carried the old role: it is over.
    assert_eq!(get(s.port, "/search", &staff).status, 303);
    let again = session(&login(s.port, "reception", "Quiet-Orchard-31"));
    assert_eq!(get(s.port, "/admin/conflicts", &again).status, 200);
    // An admin cannot demote themselves (the box could be left without one), nor give a
    // role that does not exist, nor touch a user that does not exist.
    assert_eq!(set("admin", "user").status, 400);
    assert_eq!(get(s.port, "/admin/users", &admin).status, 200);
    assert_eq!(set("reception", "root").status, 400);
    assert_eq!(set("nobody", "editor").status, 400);
    // The change is kept, and the trail says who gave which role to whom.
    assert_eq!(
        s.archive
            .index()
            .user("reception")
            .unwrap()
            .unwrap()
            .group
            .as_str(),
        "editor"
    );
    let filter = pacsbox_audit::Filter {
        action: "user.set-role".into(),
        ..Default::default()
    };
    let all = audit_records(&s, &filter, 1);
    assert!(
        all.iter().any(|r| r.action == "user.set-role"
            && r.actor == "admin"
            && r.detail == "reception editor"
            && r.outcome == "ok"),
        "{all:#?}"
    );
}

#[test]
fn admins_reset_passwords_see_last_logins_and_confirm_deletes() {
    let s = start();
    let admin = admin_session(&s);
    let staff = member(&s, &admin, "reception", "user");
    let _never = create_user_as(s.port, &admin, "newbie", "first-password", "user");
    let page = get(s.port, "/admin/users", &admin).text();
    assert!(
        page.contains("<td>newbie</td><td>user</td><td>never</td>"),
        "{page}"
    );
    let today = page
        .split("<td>reception</td><td>user</td><td>")
        .nth(1)
        .and_then(|t| t.split("</td>").next())
        .unwrap_or_default()
        .to_owned();
    assert!(!today.is_empty() && today != "never", "{page}");

    let post_users = |form: &[(&str, &str)]| {
        let csrf = get(s.port, "/admin/users", &admin).csrf();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(form);
        post(s.port, "/admin/users", &admin, &all)
    };
    // The reset password follows the same rules, ends the user's sessions, and must be
    // changed at the next login.
    let weak = post_users(&[
        ("action", "reset-password"),
        ("name", "reception"),
        ("password", "12345678"),
    ]);
    assert_eq!(weak.status, 400);
    assert_eq!(
        get(s.port, "/search", &staff).status,
        200,
        "a refused reset changes nothing"
    );
    let r = post_users(&[
        ("action", "reset-password"),
        ("name", "reception"),
        ("password", "Amber-Lantern-77"),
    ]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        get(s.port, "/search", &staff).status,
        303,
        "old session ended"
    );
    assert_eq!(login(s.port, "reception", "Quiet-Orchard-31").status, 401);
    let again = session(&login(s.port, "reception", "Amber-Lantern-77"));
    assert_eq!(
        get(s.port, "/search", &again).status,
        303,
        "must choose their own first"
    );
    assert_eq!(
        post_users(&[
            ("action", "reset-password"),
            ("name", "admin"),
            ("password", "Amber-Lantern-77")
        ])
        .status,
        400
    );

    // Delete asks first; only the confirmed post deletes (and only that is in the trail).
    let ask = post_users(&[("action", "delete"), ("name", "newbie")]);
    assert_eq!(ask.status, 200);
    assert!(ask.text().contains("Yes, delete newbie"), "{}", ask.text());
    assert!(s.archive.index().user("newbie").unwrap().is_some());
    let done = post_users(&[("action", "delete"), ("name", "newbie"), ("confirm", "yes")]);
    assert!(
        done.text().contains("User newbie deleted"),
        "{}",
        done.text()
    );
    assert!(s.archive.index().user("newbie").unwrap().is_none());
    // The trail is written by its own thread: wait for the records themselves.
    let by_action = |action: &str| pacsbox_audit::Filter {
        action: action.into(),
        ..Default::default()
    };
    let deletes = audit_records(&s, &by_action("user.delete"), 1);
    let all = audit_records(&s, &by_action("user.reset-password"), 1);
    assert_eq!(deletes.len(), 1, "{deletes:#?}");
    assert!(all.iter().any(|r| r.action == "user.reset-password"
        && r.detail == "reception"
        && r.outcome == "ok"));
}

#[test]
fn a_failed_login_keeps_the_name_and_a_login_link_keeps_its_query() {
    let s = start();
    let _ = admin_session(&s);
    let r = login(s.port, "admin", "not-the-password");
    assert_eq!(r.status, 401);
    assert!(
        r.text()
            .contains(r#"name="user" autocomplete="username" required value="admin""#),
        "{}",
        r.text()
    );
    // What does not look like a user name (a password typed in the wrong box) is not shown.
    let r = login(s.port, "secret password!", "x");
    assert!(!r.text().contains("secret password!"));
    // A viewer link with its series comes back with it after the login.
    let path = format!("/viewer/{}?series={}.1", s.korean_study, s.korean_study);
    let r = get(s.port, &path, "");
    assert_eq!(r.status, 303);
    let to_login = r.header("Location").unwrap();
    let next: String = to_login
        .split("next=")
        .nth(1)
        .map(|n| {
            form_urlencoded::parse(format!("n={n}").as_bytes())
                .next()
                .unwrap()
                .1
                .into_owned()
        })
        .unwrap();
    assert_eq!(next, path);
    let r = login_to(s.port, "admin", "a-long-new-password", &next);
    assert_eq!(r.status, 303);
    assert_eq!(r.header("Location").unwrap(), path);
}

#[test]
fn patient_strings_are_escaped() {
    let s = start();
    let cookie = admin_session(&s);
    for path in [
        "/search?id=X1".to_owned(),
        format!("/study/{}", s.script_study),
        "/instance/1.2.666.1.1.1/header".to_owned(),
        format!("/viewer/{}", s.script_study),
    ] {
        let r = get(s.port, &path, &cookie);
        assert_eq!(r.status, 200, "{path}");
        let t = r.text();
        assert!(!t.contains(SCRIPT_NAME), "{path} has the raw script tag");
        assert!(!t.contains("<b>bold</b>"), "{path}");
        assert!(
            t.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
                || t.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{path}: {t}"
        );
    }
    // Search terms echoed back into the form are escaped too.
    let r = get(s.port, "/search?name=%22%3E%3Cimg%20src%3Dx%3E", &cookie);
    assert!(!r.text().contains("<img src=x>"));
    assert!(
        r.header("content-security-policy")
            .unwrap()
            .contains("default-src 'self'")
    );
}

#[test]
fn bad_uids_and_dot_dot_never_reach_a_file() {
    let s = start();
    let cookie = admin_session(&s);
    for (path, status) in [
        ("/study/..%2F..%2Fetc%2Fpasswd", 400),
        ("/study/../../etc/passwd", 404),
        ("/instance/..%2Findex.redb/header", 400),
        ("/api/instances/1.2.3.4%00/file", 400),
        ("/api/instances/abc/file", 400),
        ("/static/../../Cargo.toml", 404),
        ("/static/..%2F..%2FCargo.toml", 404),
        ("/api/instances/9.9.9/file", 404),
        ("/study/9.9.9", 404),
    ] {
        let r = get(s.port, path, &cookie);
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert!(!r.text().contains("[workspace]"));
    }
}

#[test]
fn korean_names_are_found_by_hangul_and_by_latin_prefix() {
    let s = start();
    let cookie = admin_session(&s);
    for q in ["%EA%B9%80", "kim", "KIM%5EMIN", "%E9%87%91"] {
        let r = get(s.port, &format!("/search?name={q}"), &cookie);
        assert_eq!(r.status, 200);
        let t = r.text();
        assert!(t.contains(&format!("/study/{}", s.korean_study)), "{q}");
        assert!(t.contains("김민수"), "{q}");
        assert!(!t.contains("DOE JOHN"), "{q}");
    }
    let r = get(s.port, "/search?name=lee", &cookie);
    assert!(r.text().contains("No studies match"));
    // A name stored in Hangul only is found from a Latin keyboard: by the Revised spelling,
    // by the spellings people use for the family name, with or without a space, any case.
    for q in [
        "bak",
        "park",
        "Pak",
        "PARK%20JI",
        "parkjis*",
        "bakjiseong",
        "%EB%B0%95",
    ] {
        let t = get(s.port, &format!("/search?name={q}"), &cookie).text();
        assert!(t.contains("/study/1.2.410.2"), "{q}");
        assert!(t.contains("박지성"), "{q}");
        assert!(!t.contains(&format!("/study/{}", s.korean_study)), "{q}");
    }
    for q in ["kimji", "parkminsu", "jisung"] {
        let t = get(s.port, &format!("/search?name={q}"), &cookie).text();
        assert!(!t.contains("/study/1.2.410.2"), "{q}");
    }
}

/// Äneas^Rüdiger (ISO_IR 100), Διονυσιος (ISO_IR 126), Люкceмбypг (ISO_IR 144; c, e, y, p Latin).
const CASED_NAMES: [(&str, &[u8]); 3] = [
    ("ISO_IR 100", b"\xc4neas^R\xfcdiger "),
    ("ISO_IR 126", b"\xc4\xe9\xef\xed\xf5\xf3\xe9\xef\xf2 "),
    ("ISO_IR 144", b"\xbb\xee\xdace\xdc\xd1yp\xd3"),
];

#[test]
fn names_in_cased_scripts_are_found_by_either_case() {
    let s = start();
    let cookie = admin_session(&s);
    for (q, study, shown) in [
        ("%C3%A4neas", 0, "Äneas Rüdiger"),                       // äneas
        ("%C3%84NEAS%5ER%C3%9CD", 0, "Äneas Rüdiger"),            // ÄNEAS^RÜD
        ("%CE%94%CE%99%CE%9F%CE%9D", 1, "Διονυσιος"),             // ΔΙΟΝ
        ("%CE%B4%CE%B9%CE%BF%CE%BD%CF%85%CF%83", 1, "Διονυσιος"), // διονυσ
        ("%D0%BB%D1%8E%D0%BA", 2, "Люкceмбypг"),                  // люк
        ("%D0%9B%D0%AE%D0%9A", 2, "Люкceмбypг"),                  // ЛЮК
    ] {
        let r = get(s.port, &format!("/search?name={q}"), &cookie);
        assert_eq!(r.status, 200);
        let t = r.text();
        assert_eq!(t.matches("href=\"/study/").count(), 1, "{q}: {t}");
        assert!(t.contains(&format!("/study/1.2.30.{study}")), "{q}");
        assert!(t.contains(shown), "{q}");
    }
}

#[test]
fn search_pages_newest_first_and_filters_by_date() {
    let s = start();
    let cookie = admin_session(&s);
    let first = get(s.port, "/search", &cookie).text();
    let rows = first.matches("href=\"/study/").count();
    assert_eq!(rows, 50);
    let dates: Vec<&str> = first
        .split("<td")
        .filter_map(|c| c.split_once('>').and_then(|(_, text)| text.get(..10)))
        .filter(|d| d.len() == 10 && d.as_bytes()[4] == b'-' && d.starts_with("20"))
        .collect();
    let mut sorted = dates.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(dates, sorted, "newest first");
    assert_eq!(dates.first(), Some(&"2024-01-06"));
    assert!(first.contains("rel=\"next\""));
    let second = get(s.port, "/search?page=1", &cookie).text();
    assert_eq!(second.matches("href=\"/study/").count(), 16);
    assert!(!second.contains("rel=\"next\""));
    let r = get(
        s.port,
        "/search?when=range&from=2024-01-01&to=2024-01-05",
        &cookie,
    );
    assert_eq!(r.text().matches("href=\"/study/").count(), 1);
    assert!(r.text().contains(&s.korean_study));
    let r = get(s.port, "/search?when=range&from=bogus", &cookie);
    assert_eq!(r.status, 400);
    let r = get(s.port, "/search?id=D1&modality=ct", &cookie);
    assert_eq!(r.text().matches("href=\"/study/").count(), 50);
}

#[test]
fn a_study_downloads_as_a_zip_of_its_files() {
    let s = start();
    let cookie = admin_session(&s);
    let r = get(
        s.port,
        &format!("/study/{}/download.zip", s.korean_study),
        &cookie,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type").unwrap(), "application/zip");
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(r.body)).unwrap();
    assert_eq!(zip.len(), 2);
    let mut first = Vec::new();
    zip.by_index(0).unwrap().read_to_end(&mut first).unwrap();
    assert_eq!(&first[128..132], b"DICM", "a Part-10 file, zstd undone");
    let series: serde_json::Value = serde_json::from_slice(
        &get(
            s.port,
            &format!("/api/studies/{}/series", s.korean_study),
            &cookie,
        )
        .body,
    )
    .unwrap();
    assert_eq!(series[0]["instances"].as_array().unwrap().len(), 2);
}

#[test]
fn oversized_and_slow_requests_do_not_block_other_users() {
    let s = start();
    let cookie = admin_session(&s);
    let big = "x".repeat(64 << 10);
    let r = request(
        s.port,
        format!(
            "POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{big}",
            big.len()
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 413);
    // Clients that announce a body and never send it, and clients that never finish their
    // request head, hold no worker: pages still come back. (tiny_http alone starves every
    // second new connection once five such clients are connected.)
    let mut stuck = Vec::new();
    for i in 0..300 {
        let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        if i % 2 == 0 {
            c.write_all(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nuser=")
                .unwrap();
        } else {
            c.write_all(b"GET /search HTTP/1.1\r\nHo").unwrap();
        }
        stuck.push(c);
    }
    for _ in 0..10 {
        assert_eq!(get(s.port, "/search", &cookie).status, 200);
    }
}

#[test]
fn at_the_connection_cap_the_longest_stalled_client_makes_room() {
    let s = start_with(pacsbox_web::guard::GuardConfig {
        max_connections: 8,
        request_timeout: Duration::from_secs(2),
        io_timeout: Duration::from_secs(10),
        ..Default::default()
    });
    let mut stalled: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
            c.write_all(b"GET /status.json HTTP/1.1\r\nHo").unwrap();
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // The cap is full of stalled clients; a real one still gets its answer.
    assert_eq!(get(s.port, "/status.json", "").status, 200);
    // The first stalled client was dropped to make room; the others get 408 at the deadline.
    let mut first = Vec::new();
    stalled[0]
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stalled[0].read_to_end(&mut first);
    assert!(first.is_empty(), "dropped without an answer");
    let mut last = Vec::new();
    stalled[7]
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stalled[7].read_to_end(&mut last);
    assert!(
        String::from_utf8_lossy(&last).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&last)
    );
}

#[test]
fn a_password_made_at_first_boot_becomes_the_first_admin_password() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, _) = Archive::open(&dir.path().join("data"), ArchiveConfig::default()).unwrap();
    let file = dir.path().join("state-initial-admin-password");
    std::fs::write(&file, "made-on-the-box-1234\n").unwrap();
    let (_web, initial) = Web::new(
        archive.clone(),
        Arc::new(ArchiveStatus(archive.clone())),
        WebConfig {
            initial_password_file: Some(file.clone()),
            ..WebConfig::default()
        },
        pacsbox_audit::Audit::disabled(),
    )
    .unwrap();
    assert_eq!(initial.as_deref(), Some("made-on-the-box-1234"));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "made-on-the-box-1234\n",
        "the first boot's file is left for the panel and console"
    );
    let user = archive.index().user("admin").unwrap().unwrap();
    assert!(pacsbox_web::auth::verify_password(
        "made-on-the-box-1234",
        &user.password_hash
    ));
    assert!(user.must_change_password);
    // A second start with users present creates nothing.
    let (_web, again) = Web::new(
        archive.clone(),
        Arc::new(ArchiveStatus(archive)),
        WebConfig {
            initial_password_file: Some(file),
            ..WebConfig::default()
        },
        pacsbox_audit::Audit::disabled(),
    )
    .unwrap();
    assert_eq!(again, None);
}

/// Three conflicting copies of one archived instance: the admin lists them, replaces the
/// archived instance with one (served afterwards, checksums clean), keeps the archived copy
/// over another and discards the third; a user sees none of it.
#[test]
fn admins_resolve_conflicts_keep_replace_discard() {
    let s = start();
    let sop = "1.2.9.0.1.1";
    let conflicting = |name: &'static str| Study {
        uid: "1.2.9.0".into(),
        charset: "ISO_IR 192",
        name: name.as_bytes(),
        id: "D1",
        date: "20230101",
    };
    store(&s.archive, &conflicting("DOE^JANE"), sop);
    let jane = s.archive.conflicts().unwrap()[0].name.clone();
    for name in ["DOE^JIM", "DOE^JOAN"] {
        store(&s.archive, &conflicting(name), sop);
    }
    let newcomer = dataset(&conflicting("DOE^JANE"), sop);
    let cookie = admin_session(&s);
    let page = get(s.port, "/admin/conflicts", &cookie);
    assert_eq!(page.status, 200, "{}", page.text());
    let text = page.text();
    assert_eq!(text.matches("<tr data-name=").count(), 3, "{text}");
    assert!(text.contains(sop) && text.contains("DOE JOHN") && text.contains("CT1"));
    let names: Vec<String> = s
        .archive
        .conflicts()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    let others: Vec<&String> = names.iter().filter(|n| **n != jane).collect();
    // no token, no change
    let r = post(
        s.port,
        "/admin/conflicts",
        &cookie,
        &[("action", "replace"), ("name", &jane)],
    );
    assert_eq!(r.status, 403);
    let csrf = page.csrf();
    let resolve = |action: &str, name: &str| {
        post(
            s.port,
            "/admin/conflicts",
            &cookie,
            &[("csrf", &csrf), ("action", action), ("name", name)],
        )
    };
    let r = resolve("replace", &jane);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text().matches("<tr data-name=").count(), 2);
    let served = get(s.port, &format!("/api/instances/{sop}/file"), &cookie);
    assert_eq!(served.status, 200);
    assert!(served.body.ends_with(&newcomer), "the newcomer is served");
    let report = s.archive.verify(true).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(resolve("keep", others[0]).status, 200);
    assert_eq!(resolve("discard", others[1]).status, 200);
    assert!(s.archive.conflicts().unwrap().is_empty());
    assert_eq!(s.archive.conflict_stats().count, 0);
    let served_again = get(s.port, &format!("/api/instances/{sop}/file"), &cookie);
    assert_eq!(
        served_again.body, served.body,
        "keep and discard leave the archive alone"
    );
    assert_eq!(resolve("keep", others[0]).status, 404);
    assert_eq!(resolve("keep", "../index.redb").status, 404);
    assert_eq!(resolve("explode", &jane).status, 400);
    let status = get(s.port, "/status.json", "");
    let doc: serde_json::Value = serde_json::from_slice(&status.body).unwrap();
    assert_eq!(doc["conflicts"], 0, "{doc}");
    // users: no list, no resolving
    let r = create_user(s.port, &cookie, "clerk", "first-password");
    assert_eq!(r.status, 200);
    let clerk = session(&login(s.port, "clerk", "first-password"));
    let r = change_password(s.port, &clerk, "first-password", "Quiet-Orchard-31");
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(get(s.port, "/admin/conflicts", &clerk).status, 403);
}

/// A login form post with its own cookie/field pair and extra request headers.
fn login_raw(port: u16, csrf: &str, user: &str, password: &str, extra: &str) -> Resp {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("user", user),
            ("password", password),
            ("csrf", csrf),
            ("next", "/search"),
        ])
        .finish();
    request(
        port,
        format!(
            "POST /login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: pacsbox_login={csrf}\r\n{extra}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

#[test]
fn login_forms_count_only_when_this_box_made_them_and_no_other_site_posts_them() {
    let s = start();
    let other = start();
    let initial = std::fs::read_to_string(&s.password_file).unwrap();
    // A pair an attacker made up (planted as a cookie from another port of the same host).
    let r = login_raw(s.port, "abc", "admin", initial.trim(), "");
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.text().contains("form expired"), "{}", r.text());
    assert!(r.cookie("pacsbox_session").is_none());
    // A real form, but from another box (another key).
    let foreign = get(other.port, "/login", "").csrf();
    let r = login_raw(s.port, &foreign, "admin", initial.trim(), "");
    assert!(r.cookie("pacsbox_session").is_none(), "{}", r.text());
    // A tampered expiry keeps the MAC of the old one.
    let real = get(s.port, "/login", "").csrf();
    let (expires, rest) = real.split_at(16);
    let later = format!(
        "{:016x}{rest}",
        i64::from_str_radix(expires, 16).unwrap() + 100_000
    );
    let r = login_raw(s.port, &later, "admin", initial.trim(), "");
    assert!(r.cookie("pacsbox_session").is_none(), "{}", r.text());
    // Another site's page posting the form, with a token it fetched itself.
    for extra in [
        "Origin: http://evil.example\r\n".to_owned(),
        "Sec-Fetch-Site: cross-site\r\n".to_owned(),
        format!("Origin: http://127.0.0.1:{}\r\n", s.port + 1),
    ] {
        let token = get(s.port, "/login", "").csrf();
        let r = login_raw(s.port, &token, "admin", initial.trim(), &extra);
        assert_eq!(r.status, 403, "{extra:?}");
        assert!(r.cookie("pacsbox_session").is_none());
    }
    // The box's own form, posted from its own page, works.
    let token = get(s.port, "/login", "").csrf();
    let origin = format!(
        "Origin: http://127.0.0.1:{}\r\nSec-Fetch-Site: same-origin\r\n",
        s.port
    );
    let r = login_raw(s.port, &token, "admin", initial.trim(), &origin);
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(r.cookie("pacsbox_session").is_some());
}

#[test]
fn clients_trickling_a_form_body_are_dropped_like_those_trickling_a_head() {
    let s = start_with(pacsbox_web::guard::GuardConfig {
        max_connections: 8,
        request_timeout: Duration::from_secs(2),
        io_timeout: Duration::from_secs(30),
        ..Default::default()
    });
    // The cap is full of clients that sent a login head announcing 16000 bytes and then one.
    let mut slow: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
            c.write_all(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 16000\r\n\r\nu")
                .unwrap();
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(s.port, "/status.json", "").status, 200);
    assert_eq!(get(s.port, "/login", "").status, 200);
    // Those left get 408 at the deadline, however politely they keep trickling.
    let last = slow.last_mut().unwrap();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(400));
        let _ = last.write_all(b"x");
    }
    last.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = Vec::new();
    let _ = last.read_to_end(&mut answer);
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[test]
fn the_public_status_has_health_and_counts_only_and_a_session_sees_the_rest() {
    let s = start();
    let public: serde_json::Value =
        serde_json::from_slice(&get(s.port, "/status.json", "").body).unwrap();
    assert!(
        public["instances"].as_u64().is_some_and(|n| n > 60),
        "{public}"
    );
    assert!(public.get("compression_pending").is_some());
    assert!(public.get("plain_waiting_bytes").is_some());
    for private in [
        "recent_studies",
        "last_received",
        "data_dir",
        "recent_errors",
        "addresses",
        "audit_forwarding",
    ] {
        assert!(
            public.get(private).is_none(),
            "{private} is public: {public}"
        );
    }
    let cookie = admin_session(&s);
    let full: serde_json::Value =
        serde_json::from_slice(&get(s.port, "/status.json", &cookie).body).unwrap();
    assert!(
        full["recent_studies"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    );
    assert!(full["data_dir"].as_str().is_some());
}

#[test]
fn a_password_spray_from_one_address_is_slowed_across_user_names() {
    let s = start();
    let initial = std::fs::read_to_string(&s.password_file).unwrap();
    let mut wrong = 0;
    let mut locked_at = None;
    for i in 0..30 {
        let r = login(s.port, &format!("user{i}"), "Spring2026!");
        assert_eq!(r.status, 401);
        if r.text().contains("too many failed logins") {
            locked_at.get_or_insert(i);
        } else {
            wrong += 1;
        }
    }
    assert_eq!(
        wrong, 20,
        "passwords checked before the address was slowed down"
    );
    assert_eq!(locked_at, Some(20));
    // The address is locked for every name, even with the right password.
    let r = login(s.port, "admin", initial.trim());
    assert!(r.text().contains("too many failed logins"), "{}", r.text());
}

#[test]
fn parallel_guesses_at_one_name_check_no_more_passwords_than_the_limit() {
    let s = start();
    let port = s.port;
    let forms: Vec<(String, String)> = (0..40)
        .map(|_| {
            let f = get(port, "/login", "");
            (f.cookie("pacsbox_login").unwrap(), f.csrf())
        })
        .collect();
    let answers: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = forms
            .iter()
            .enumerate()
            .map(|(i, (cookie, csrf))| {
                scope.spawn(move || {
                    post(
                        port,
                        "/login",
                        &format!("pacsbox_login={cookie}"),
                        &[
                            ("user", "admin"),
                            ("password", &format!("guess-{i}")),
                            ("csrf", csrf),
                        ],
                    )
                    .text()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let checked = answers
        .iter()
        .filter(|t| t.contains("wrong user name or password"))
        .count();
    assert!(checked <= 5, "{checked} passwords checked in one window");
    assert!(
        answers.iter().any(|t| t.contains("too many failed logins")),
        "{answers:?}"
    );
}

#[test]
fn easy_passwords_and_the_first_boot_password_are_refused() {
    let s = start();
    let initial = std::fs::read_to_string(&s.password_file).unwrap();
    let initial = initial.trim();
    let cookie = session(&login(s.port, "admin", initial));
    for (weak, why) in [
        ("12345678", "at least 10"),
        ("1234567890", "counted-up"),
        ("aaaaaaaaaaaa", "run of one character"),
        ("Password123!", "common password"),
        ("qwerty2026", "common password"),
        ("admin-at-the-clinic", "user name"),
    ] {
        let r = change_password(s.port, &cookie, initial, weak);
        assert_eq!(r.status, 400, "{weak}");
        assert!(r.text().contains(why), "{weak}: {}", r.text());
    }
    let r = change_password(s.port, &cookie, initial, "Tulip-Harbour-42");
    assert_eq!(r.status, 303, "{}", r.text());
    // Going back to the generated password (shown on the panel, kept in a file) is refused.
    let r = change_password(s.port, &cookie, "Tulip-Harbour-42", initial);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("first-boot password"), "{}", r.text());
}

#[test]
fn patient_images_are_not_kept_in_the_browser_cache() {
    let s = start();
    let cookie = admin_session(&s);
    for pattern in [
        "/api/instances/{sop}/info",
        "/api/instances/{sop}/frames/{n}/preview.png",
        "/api/series/{series}/thumbnail.png",
        "/study/{uid}",
    ] {
        let r = get(s.port, &sample_path(&s, pattern), &cookie);
        assert_eq!(r.status, 200, "{pattern}");
        assert_eq!(
            r.header("cache-control").as_deref(),
            Some("no-store"),
            "{pattern}"
        );
    }
}

#[test]
fn sessions_end_at_their_absolute_lifetime_however_busy() {
    let s = start_configured(
        Default::default(),
        WebConfig {
            session_max_age: Duration::from_secs(2),
            ..WebConfig::default()
        },
    );
    let cookie = admin_session(&s);
    let until = std::time::Instant::now() + Duration::from_millis(1500);
    while std::time::Instant::now() < until {
        assert_eq!(get(s.port, "/search", &cookie).status, 200);
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(get(s.port, "/search", &cookie).status, 303);
}

#[test]
fn an_admin_sees_who_is_logged_in_from_where_and_ends_a_session() {
    let s = start();
    let admin = admin_session(&s);
    let r = create_user(s.port, &admin, "nurse", "Lantern-Meadow-7");
    assert_eq!(r.status, 200, "{}", r.text());
    // The nurse claims another address; only the guard's word counts.
    let form = get(s.port, "/login", "");
    let csrf = form.csrf();
    let r = login_raw(
        s.port,
        &csrf,
        "nurse",
        "Lantern-Meadow-7",
        "X-Pacsbox-Client: 10.9.9.9\r\n",
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let nurse = session(&r);
    let page = get(s.port, "/admin/users", &admin);
    let text = page.text();
    assert!(
        text.contains("nurse") && text.contains("127.0.0.1"),
        "{text}"
    );
    assert!(!text.contains("10.9.9.9"), "{text}");
    // The nurse's session id is in the end-session form next to her name.
    let row = text
        .split("<tr>")
        .find(|r| r.contains("<td>nurse</td>") && r.contains("end-session"))
        .expect("a session row for nurse");
    let id = row
        .split("name=\"session\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap();
    assert_eq!(get(s.port, "/account/password", &nurse).status, 200);
    let r = post(
        s.port,
        "/admin/users",
        &admin,
        &[
            ("csrf", &page.csrf()),
            ("action", "end-session"),
            ("session", id),
        ],
    );
    assert!(r.text().contains("Session of nurse ended"), "{}", r.text());
    let r = get(s.port, "/account/password", &nurse);
    assert_eq!(r.status, 303);
    assert!(r.header("location").unwrap().starts_with("/login"));
    assert_eq!(get(s.port, "/search", &admin).status, 200);
}

/// The trail's records once `want` of them match `filter` (the writer is a thread).
fn audit_records(
    s: &Server,
    filter: &pacsbox_audit::Filter,
    want: usize,
) -> Vec<pacsbox_audit::Record> {
    let dir = s._dir.path().join("audit");
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = pacsbox_audit::read(&dir, filter, 10_000).unwrap();
        if r.len() >= want || std::time::Instant::now() > until {
            return r;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn logins_searches_views_downloads_and_changes_are_in_the_audit_trail() {
    let s = start();
    assert_eq!(login(s.port, "admin", "wrong-guess").status, 401);
    let admin = admin_session(&s);
    assert_eq!(get(s.port, "/search?name=kim&when=any", &admin).status, 200);
    let study = s.korean_study.clone();
    assert_eq!(get(s.port, &format!("/study/{study}"), &admin).status, 200);
    assert_eq!(
        get(s.port, &format!("/study/{study}/download.zip"), &admin).status,
        200
    );
    assert_eq!(
        get(s.port, &format!("/instance/{study}.1.1/header"), &admin).status,
        200
    );
    let all = audit_records(&s, &Default::default(), 7);
    let find = |action: &str| {
        all.iter()
            .find(|r| r.action == action)
            .unwrap_or_else(|| panic!("no {action} in {all:#?}"))
    };
    let failed = find("web.login");
    assert!(
        all.iter()
            .any(|r| r.action == "web.login" && r.outcome == "ok")
    );
    assert!(
        all.iter()
            .any(|r| r.action == "web.login" && r.outcome.contains("wrong user name")),
        "{failed:?}"
    );
    assert_eq!(find("web.password").outcome, "ok");
    assert!(find("web.search").detail.contains("name=kim"));
    for action in ["study.view", "study.download", "instance.header"] {
        let r = find(action);
        assert_eq!(
            (r.actor.as_str(), r.client.as_str()),
            ("admin", "127.0.0.1")
        );
        assert_eq!(r.study, study, "{action}");
        assert!(r.patient.starts_with("K1 ("), "{action}: {}", r.patient);
    }
    // The admin page filters by patient and exports CSV; a user may not see it.
    let page = get(s.port, "/admin/audit?patient=K1", &admin);
    assert_eq!(page.status, 200);
    assert!(page.text().contains("study.download") && !page.text().contains("web.search"));
    let csv = get(s.port, "/admin/audit?patient=K1&format=csv", &admin);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    let actions: std::collections::BTreeSet<String> = csv
        .text()
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(4).map(str::to_owned))
        .collect();
    assert!(
        ["study.view", "study.download", "instance.header"]
            .iter()
            .all(|a| actions.contains(*a))
            && !actions.contains("web.search"),
        "{}",
        csv.text()
    );
    assert_eq!(
        get(s.port, "/admin/audit?from=tomorrow", &admin).status,
        400
    );
    // Viewing the trail is itself recorded, and the chain holds.
    audit_records(
        &s,
        &pacsbox_audit::Filter {
            action: "audit.view".into(),
            ..Default::default()
        },
        2,
    );
    let report = pacsbox_audit::verify(&s._dir.path().join("audit")).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.records >= 9);
}

#[test]
fn admins_allow_change_and_remove_dicom_peers_and_close_learning() {
    let s = start();
    let admin = admin_session(&s);
    let page = get(s.port, "/admin/peers", &admin);
    assert_eq!(page.status, 200);
    assert!(page.text().contains("Learning until"), "{}", page.text());
    let csrf = page.csrf();
    let act = |form: &[(&str, &str)]| {
        let mut f = vec![("csrf", csrf.as_str())];
        f.extend_from_slice(form);
        post(s.port, "/admin/peers", &admin, &f)
    };
    let r = act(&[("action", "allow"), ("ae", "CT1"), ("rights", "store")]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("CT1 may now: store"), "{}", r.text());
    let r = act(&[
        ("action", "allow"),
        ("ae", "CT1"),
        ("rights", "store,query"),
    ]);
    assert!(
        r.text().contains("CT1 may now: store,query"),
        "{}",
        r.text()
    );
    let rec = s.archive.peer("CT1").unwrap().unwrap();
    assert!(rec.rights.store && rec.rights.query && !rec.rights.retrieve);
    let r = act(&[("action", "allow"), ("ae", "CT1"), ("rights", "fly")]);
    assert_eq!(r.status, 400);
    let r = act(&[("action", "allow"), ("ae", "BAD\\AE"), ("rights", "store")]);
    assert_eq!(r.status, 400);
    let r = act(&[("action", "remove"), ("ae", "CT1")]);
    assert!(r.text().contains("CT1 removed"), "{}", r.text());
    assert!(s.archive.peer("CT1").unwrap().is_none());
    let r = act(&[("action", "close-learning")]);
    assert!(r.text().contains("Learning closed"), "{}", r.text());
    let closed = get(s.port, "/admin/peers", &admin).text();
    assert!(closed.contains("Closed: only the peers"), "{closed}");
    assert!(closed.contains("id=\"learn-again\""), "{closed}");
    let r = act(&[("action", "learn-again"), ("days", "0")]);
    assert_eq!(r.status, 400);
    assert_eq!(
        s.archive.access_state().unwrap().effective,
        pacsbox_archive::peers::AccessMode::Closed
    );
    let r = act(&[("action", "learn-again"), ("days", "3")]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("Learning again until"), "{}", r.text());
    let st = s.archive.access_state().unwrap();
    assert_eq!(st.effective, pacsbox_archive::peers::AccessMode::Learning);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let until = st.learning_deadline_unix.unwrap();
    assert!((until - now - 3 * 86_400).abs() < 120, "{until} vs {now}");
    assert!(
        get(s.port, "/admin/peers", &admin)
            .text()
            .contains("Learning until")
    );
    // Each change is in the audit trail.
    let recs = audit_records(
        &s,
        &pacsbox_audit::Filter {
            action: "peer.".into(),
            ..Default::default()
        },
        8,
    );
    assert!(
        recs.iter()
            .any(|r| r.action == "peer.learn-again" && r.detail == "3 days" && r.outcome == "ok")
    );
    assert!(
        recs.iter().any(|r| r.action == "peer.allow"
            && r.detail == "CT1 store,query"
            && r.outcome == "ok")
    );
    assert!(recs.iter().any(|r| r.action == "peer.close-learning"));
}

/// "Send to…" queues a study for a peer with an address (and refuses one without); the admin
/// page lists it with its count, Retry keeps and Cancel removes it; each step is audited.
#[test]
fn send_to_queues_a_study_and_admins_retry_and_cancel_it() {
    use pacsbox_archive::peers::{AccessMode, AccessSettings, PeerEntry, PeerRights, PeerSource};
    let s = start();
    let peer = |ae: &str, host: Option<&str>| PeerEntry {
        ae_title: ae.into(),
        host: host.map(str::to_owned),
        port: host.map(|_| 104),
        rights: PeerRights::NONE,
        tls: false,
        cert: None,
        source: PeerSource::Config,
        first_seen_unix: None,
        last_seen_unix: None,
        last_address: None,
    };
    s.archive
        .configure_access(AccessSettings {
            mode: AccessMode::Learning,
            learning_period_s: 3600,
            fixed: vec![peer("HOSPITAL", Some("127.0.0.1")), peer("CT1", None)],
        })
        .unwrap();
    let admin = admin_session(&s);
    let study_path = format!("/study/{}", s.korean_study);
    let page = get(s.port, &study_path, &admin);
    let text = page.text();
    assert!(text.contains("<option>HOSPITAL</option>"), "{text}");
    assert!(
        !text.contains("<option>CT1</option>"),
        "no address, no choice"
    );
    let send = |to: &str| {
        post(
            s.port,
            &format!("{study_path}/send"),
            &admin,
            &[("csrf", &page.csrf()), ("peer", to), ("series", "")],
        )
    };
    assert_eq!(send("CT1").status, 400);
    let sent = send("HOSPITAL");
    assert_eq!(sent.status, 200, "{}", sent.text());
    let instances = s
        .archive
        .index()
        .study(&s.korean_study)
        .unwrap()
        .unwrap()
        .instances;
    assert!(
        sent.text()
            .contains(&format!("{instances} image(s) queued for HOSPITAL")),
        "{}",
        sent.text()
    );
    let q = get(s.port, "/admin/forwarding", &admin);
    assert_eq!(q.status, 200);
    assert!(q.text().contains(&s.korean_study), "{}", q.text());
    let act = |action: &str| {
        post(
            s.port,
            "/admin/forwarding",
            &admin,
            &[
                ("csrf", &q.csrf()),
                ("action", action),
                ("peer", "HOSPITAL"),
                ("study", &s.korean_study),
            ],
        )
    };
    assert!(act("retry").text().contains("due now"));
    assert_eq!(
        s.archive.index().forward_summary(5).unwrap()[0].pending,
        instances
    );
    assert!(act("cancel").text().contains("cancelled"));
    assert!(s.archive.index().forward_summary(5).unwrap().is_empty());
    assert!(
        get(s.port, "/admin/forwarding", &admin)
            .text()
            .contains("Nothing waiting")
    );
    let by_action = |action: &str| pacsbox_audit::Filter {
        action: action.into(),
        ..Default::default()
    };
    let enqueued = audit_records(&s, &by_action("forward.enqueue"), 2);
    assert!(enqueued.iter().any(|r| r.outcome == "ok"
        && r.study == s.korean_study
        && r.detail == "to HOSPITAL whole study"));
    assert!(enqueued.iter().any(|r| r.outcome == "failed: HTTP 400"));
    let cancelled = audit_records(&s, &by_action("forward.cancel"), 1);
    assert_eq!(cancelled[0].detail, "HOSPITAL study", "{cancelled:#?}");
}

/// DICOMweb's CORS: only an origin the admin listed gets a preflight answer and
/// `Access-Control-Allow-Origin`, and even it cannot ride on a user's session cookie; the
/// page's own (same-origin) requests need no CORS and may use the session.
#[test]
fn dicomweb_cors_only_for_listed_origins_and_never_with_the_cookie() {
    let s = start_configured(
        Default::default(),
        WebConfig {
            dicomweb_cors_origins: vec!["https://viewer.example".into()],
            ..WebConfig::default()
        },
    );
    let cookie = admin_session(&s);
    let ask = |method: &str, origin: &str| {
        request(
            s.port,
            format!(
                "{method} /dicom-web/studies HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nOrigin: {origin}\r\n\
                 Cookie: {cookie}\r\nConnection: close\r\n\r\n",
                s.port
            )
            .as_bytes(),
        )
    };
    let pre = ask("OPTIONS", "https://viewer.example");
    assert_eq!(pre.status, 204, "{}", pre.text());
    assert_eq!(
        pre.header("access-control-allow-origin").as_deref(),
        Some("https://viewer.example")
    );
    assert!(
        pre.header("access-control-allow-headers")
            .is_some_and(|h| h.contains("Authorization"))
    );
    let other = ask("OPTIONS", "https://evil.example");
    assert_eq!(other.status, 403);
    assert_eq!(other.header("access-control-allow-origin"), None);
    // Cross-origin with only the cookie: a token is needed, from any origin.
    let listed = ask("GET", "https://viewer.example");
    assert_eq!(listed.status, 401, "{}", listed.text());
    assert!(listed.header("www-authenticate").is_some());
    assert_eq!(ask("GET", "https://evil.example").status, 403);
    // Same origin: the session is enough.
    let own = ask("GET", &format!("http://127.0.0.1:{}", s.port));
    assert_eq!(own.status, 200, "{}", own.text());
    assert_eq!(
        own.header("content-type").as_deref(),
        Some("application/dicom+json")
    );
    let studies: serde_json::Value = serde_json::from_slice(&own.body).unwrap();
    assert!(studies.as_array().is_some_and(|a| a.len() > 60));
}

/// An OHIF folder as `web-ui/ohif/install.sh` leaves it (the files the tests ask for), and a
/// file beside it that a request must never reach.
fn ohif_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ohif = dir.path().join("ohif");
    std::fs::create_dir_all(ohif.join("assets")).unwrap();
    std::fs::write(
        ohif.join("index.html"),
        "<!doctype html><title>OHIF Viewer</title>",
    )
    .unwrap();
    std::fs::write(ohif.join("codec.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(ohif.join("assets/icon.png"), b"\x89PNG").unwrap();
    std::fs::write(
        ohif.join("app-config.js"),
        "window.config = 'the package default';",
    )
    .unwrap();
    std::fs::write(ohif.join(".pacsbox-ohif"), "3.13.2 prep 1").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "outside the OHIF folder").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), ohif.join("link.txt")).unwrap();
    dir
}

#[test]
fn ohif_is_served_from_its_folder_behind_the_login_with_its_own_policy() {
    let folder = ohif_folder();
    let s = start_configured(
        Default::default(),
        WebConfig {
            ohif_dir: Some(folder.path().join("ohif")),
            ..WebConfig::default()
        },
    );
    // Without a session: to the login, and back here after it.
    let r = get(s.port, "/ohif/viewer?StudyInstanceUIDs=1.2.410.1", "");
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("Location").as_deref(),
        Some("/login?next=%2Fohif%2Fviewer%3FStudyInstanceUIDs%3D1.2.410.1")
    );
    assert_eq!(get(s.port, "/ohif/codec.wasm", "").status, 303);
    let cookie = admin_session(&s);

    let r = get(s.port, "/ohif/", &cookie);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("OHIF Viewer"));
    assert_eq!(
        r.header("Content-Type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    let csp = r.header("Content-Security-Policy").unwrap();
    assert_eq!(csp, pacsbox_web::ohif::CSP, "one policy header, OHIF's");
    assert_eq!(
        r.headers
            .lines()
            .filter(|l| l
                .to_ascii_lowercase()
                .starts_with("content-security-policy"))
            .count(),
        1
    );
    assert!(csp.contains("'wasm-unsafe-eval'") && !csp.contains("'unsafe-eval'"));
    assert!(!csp.contains("script-src 'self' 'unsafe-inline'"));
    // Our pages keep theirs.
    let search = get(s.port, "/search", &cookie);
    assert!(
        search
            .header("Content-Security-Policy")
            .is_some_and(|p| !p.contains("wasm"))
    );

    // A client-side route of OHIF is its index.html.
    let r = get(s.port, "/ohif/viewer?StudyInstanceUIDs=1.2.410.1", &cookie);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("OHIF Viewer"));
    assert_eq!(get(s.port, "/ohif/studies/list", &cookie).text(), r.text());

    let r = get(s.port, "/ohif/codec.wasm", &cookie);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Type").as_deref(),
        Some("application/wasm")
    );
    assert_eq!(r.body, b"\0asm\x01\0\0\0");
    let r = get(s.port, "/ohif/assets/icon.png", &cookie);
    assert_eq!(r.header("Content-Type").as_deref(), Some("image/png"));

    // The configuration is always ours: this box's DICOMweb, never the package's default.
    let r = get(s.port, "/ohif/app-config.js", &cookie);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("'/dicom-web'") && r.text().contains("routerBasename: '/ohif'"));
    assert!(!r.text().contains("package default"));

    // A missing file is 404, not the index; nothing outside the folder or hidden in it.
    assert_eq!(get(s.port, "/ohif/missing.js", &cookie).status, 404);
    for path in [
        "/ohif/../secret.txt",
        "/ohif/%2e%2e/secret.txt",
        "/ohif/assets/../../secret.txt",
        "/ohif/link.txt",
        "/ohif/.pacsbox-ohif",
        "/ohif/..%2fsecret.txt",
    ] {
        let r = get(s.port, path, &cookie);
        assert!(
            !r.text().contains("outside the OHIF folder") && !r.text().contains("prep 1"),
            "{path}: {} {}",
            r.status,
            r.text()
        );
        assert_ne!(r.status, 200, "{path}");
    }

    // The study page offers OHIF with the study's UID.
    let page = get(s.port, &format!("/study/{}", s.korean_study), &cookie).text();
    assert!(
        page.contains(&format!(
            "href=\"/ohif/viewer?StudyInstanceUIDs={}\"",
            s.korean_study
        )),
        "{page}"
    );
}

#[test]
fn without_an_ohif_folder_ohif_is_404_and_the_study_page_does_not_offer_it() {
    let s = start_configured(
        Default::default(),
        WebConfig {
            ohif_dir: Some(std::path::PathBuf::from("/nonexistent/ohif")),
            ..WebConfig::default()
        },
    );
    let cookie = admin_session(&s);
    let r = get(s.port, "/ohif/", &cookie);
    assert_eq!(r.status, 404);
    assert!(r.text().contains("ohif_dir"), "{}", r.text());
    let page = get(s.port, &format!("/study/{}", s.korean_study), &cookie);
    assert_eq!(page.status, 200);
    assert!(page.text().contains("Open viewer"));
    assert!(!page.text().contains("Open in OHIF"));
}

#[test]
fn priors_are_the_patients_other_studies_newest_first_and_only_the_embedded_viewer_may_be_framed() {
    let s = start();
    let cookie = admin_session(&s);
    let study = |uid: &str, id: &'static str, date: &'static str| Study {
        uid: uid.to_owned(),
        charset: "ISO_IR 100",
        name: b"PRIOR^TEST",
        id,
        date,
    };
    let studies = [
        study("1.2.826.0.1.77.1", "PRI-1", "20260301"),
        study("1.2.826.0.1.77.2", "PRI-1", "20240101"),
        study("1.2.826.0.1.77.3", "PRI-1", "20250301"),
        study("1.2.826.0.1.77.4", "PRI-OTHER", "20250601"),
    ];
    for (n, st) in studies.iter().enumerate() {
        store(&s.archive, st, &format!("{}.1.{n}", st.uid));
    }
    let r = get(s.port, "/api/studies/1.2.826.0.1.77.1/priors", &cookie);
    assert_eq!(r.status, 200);
    let list: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let uids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["uid"].as_str().unwrap())
        .collect();
    assert_eq!(uids, ["1.2.826.0.1.77.3", "1.2.826.0.1.77.2"]);
    assert_eq!(list[0]["date"], "20250301");
    assert_eq!(list[0]["modalities"][0], "CT");
    assert_eq!(list[0]["instances"], 1);
    assert_eq!(
        get(s.port, "/api/studies/1.2.826.0.1.77.9/priors", &cookie).status,
        404
    );
    assert_eq!(
        get(s.port, "/api/studies/1.2.826.0.1.77.1/priors", "").status,
        401
    );
    let plain = get(s.port, "/viewer/1.2.826.0.1.77.1", &cookie);
    assert_eq!(plain.header("x-frame-options").as_deref(), Some("DENY"));
    assert!(plain.text().contains("id=\"compare-btn\""));
    let embedded = get(s.port, "/viewer/1.2.826.0.1.77.3?embed=1", &cookie);
    assert_eq!(embedded.status, 200);
    assert_eq!(
        embedded.header("x-frame-options").as_deref(),
        Some("SAMEORIGIN")
    );
    let csp = embedded.header("content-security-policy").unwrap();
    assert!(csp.contains("frame-ancestors 'self'"), "{csp}");
    assert!(!embedded.text().contains("id=\"compare-btn\""));
    assert!(embedded.text().contains("data-embed=\"1\""));
}

/// A GET as a browser that prefers the languages `accept_language`.
fn get_in(port: u16, path: &str, cookie: &str, accept_language: &str) -> Resp {
    request(
        port,
        format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nAccept-Language: {accept_language}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
}

/// Posts the account page's language form (`""`: the browser's).
fn set_language(port: u16, cookie: &str, language: &str) -> Resp {
    let page = get(port, "/account/password", cookie);
    post(
        port,
        "/account/language",
        cookie,
        &[("csrf", &page.csrf()), ("language", language)],
    )
}

const KOREAN: &str = "ko-KR,ko;q=0.9,en-US;q=0.8";

#[test]
fn pages_follow_the_browser_language_until_the_user_chooses_one() {
    let s = start();
    let t = get_in(s.port, "/login", "", KOREAN).text();
    assert!(t.contains(r#"<html lang="ko">"#), "{t}");
    assert!(t.contains("사용자 이름") && t.contains("비밀번호"), "{t}");
    assert!(!t.contains("User name"), "{t}");
    let t = get_in(s.port, "/login", "", "en-US,en;q=0.9").text();
    assert!(t.contains(r#"<html lang="en">"#) && t.contains("User name"));
    assert!(!t.contains("사용자 이름"));

    let cookie = admin_session(&s);
    let ko = get_in(s.port, "/search?name=%EA%B9%80", &cookie, KOREAN);
    assert_eq!(ko.status, 200);
    let t = ko.text();
    assert!(t.contains(r#"<html lang="ko">"#));
    assert!(t.contains("환자 이름") && t.contains("검사일") && t.contains("로그아웃"));
    assert!(
        t.contains("김민수"),
        "a Korean name is found from the Korean page"
    );
    assert!(!t.contains("Patient name") && !t.contains("Log out"));
    let t = get_in(s.port, "/search", &cookie, "en-US").text();
    assert!(t.contains(r#"<html lang="en">"#) && t.contains("Patient name"));
    assert!(!t.contains("환자 이름"));
    // Korean words for relative dates; the dates themselves stay ISO in both.
    let t = get_in(s.port, "/search?when=today", &cookie, KOREAN).text();
    assert!(t.contains("오늘") && t.contains("최근 7일"));

    // The user's own setting wins over the browser's, and is shown selected.
    let r = set_language(s.port, &cookie, "en");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text()
            .contains(r#"<option value="en" lang="en" selected>"#)
    );
    let t = get_in(s.port, "/search", &cookie, KOREAN).text();
    assert!(t.contains(r#"<html lang="en">"#) && t.contains("Patient name"));
    let r = set_language(s.port, &cookie, "ko");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("언어가 저장되었습니다"));
    // The server's own messages too: a form error made by the password check.
    let r = change_password(s.port, &cookie, "not-the-password", "another-long-password");
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("현재 비밀번호가 올바르지 않습니다"),
        "{}",
        r.text()
    );
    let r = get_in(s.port, "/no-such-page", "", KOREAN);
    assert_eq!((r.status, r.text().trim()), (404, "찾을 수 없습니다"));
    // It is kept with the account: after logging out and in again, still Korean.
    let r = post(
        s.port,
        "/logout",
        &cookie,
        &[("csrf", &get(s.port, "/account/password", &cookie).csrf())],
    );
    assert_eq!(r.status, 303);
    let again = session(&login(s.port, "admin", "a-long-new-password"));
    let t = get_in(s.port, "/search", &again, "en-US").text();
    assert!(
        t.contains(r#"<html lang="ko">"#) && t.contains("환자 이름"),
        "{t}"
    );
    // Back to the browser's choice; a language we do not have is refused.
    assert_eq!(set_language(s.port, &again, "").status, 200);
    let t = get_in(s.port, "/search", &again, "en-US").text();
    assert!(t.contains("Patient name"));
    assert_eq!(set_language(s.port, &again, "de").status, 400);
}

#[test]
fn every_page_renders_in_korean_with_no_english_label_left() {
    let s = start();
    let cookie = admin_session(&s);
    assert_eq!(set_language(s.port, &cookie, "ko").status, 200);
    // The English texts the catalogue translates, as whole element texts.
    let english: Vec<&str> = pacsbox_web::i18n::ALL
        .iter()
        .filter(|(_, en, ko)| en != ko && en.chars().any(char::is_alphabetic))
        .map(|(_, en, _)| *en)
        .collect();
    let mut pages = 0;
    for (method, pattern) in pacsbox_web::routes::SESSION_ROUTES {
        if *method != "GET" || pattern.starts_with("/anonymize/") || *pattern == "/" {
            continue;
        }
        let path = sample_path(&s, pattern);
        for (lang, header) in [("ko", KOREAN), ("en", "en-US")] {
            let r = get_in(s.port, &path, &cookie, header);
            assert_eq!(r.status, 200, "{path} in {lang}: {}", r.text());
            if !r
                .header("content-type")
                .is_some_and(|c| c.starts_with("text/html"))
            {
                continue;
            }
            let mut t = r.text();
            if path.ends_with("/header")
                && let (Some(a), Some(b)) = (t.find("<tbody>"), t.find("</tbody>"))
            {
                // The header's rows are the data dictionary's names (`Modality`…): data.
                t.replace_range(a..b, "");
            }
            // Every `<` opens a tag: a text put where a tag name was would leave `<환자 …`.
            let stray = t
                .match_indices('<')
                .find(|(i, _)| {
                    !t[i + 1..]
                        .starts_with(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '!')
                })
                .map(|(i, _)| t[i..].chars().take(40).collect::<String>());
            assert_eq!(stray, None, "{path}: a broken tag");
            // The setting (Korean) wins over either browser.
            assert!(t.contains(r#"<html lang="ko">"#), "{path} with {header}");
            for en in &english {
                let shown = format!(">{en}<");
                assert!(
                    !t.contains(&shown),
                    "{path}: English {shown} in the Korean page"
                );
            }
            pages += 1;
        }
    }
    assert!(pages >= 20, "only {pages} HTML pages walked");
    // And in English, the English texts.
    assert_eq!(set_language(s.port, &cookie, "en").status, 200);
    let t = get_in(s.port, "/status", &cookie, KOREAN).text();
    assert!(t.contains(r#"<html lang="en">"#) && t.contains(">Storage<"));
}

/// The viewer and the import page carry the texts their scripts write, for the user's language,
/// as a JSON block (`web-ui/static/i18n.js` reads it): Korean for a Korean browser, none for an
/// English one.
#[test]
fn pages_with_scripts_carry_the_scripts_texts() {
    let s = start();
    let cookie = admin_session(&s);
    let block = |t: &str| -> serde_json::Value {
        let start = t
            .find(r#"<script type="application/json" id="i18n">"#)
            .expect("the block");
        let rest = &t[start..];
        let body = &rest[rest.find('>').expect("tag") + 1..rest.find("</script>").expect("end")];
        serde_json::from_str(body).expect("JSON")
    };
    for path in [
        format!("/viewer/{}", s.korean_study),
        "/admin/import".to_owned(),
    ] {
        let ko = block(&get_in(s.port, &path, &cookie, KOREAN).text());
        assert_eq!(ko["Image {} / {}"], "영상 {} / {}", "{path}");
        assert_eq!(
            ko["{} / {} files, {} MB/s, {} failed"],
            "파일 {} / {}개, {} MB/s, 실패 {}개"
        );
        let en = block(&get_in(s.port, &path, &cookie, "en-US").text());
        assert_eq!(en, serde_json::json!({}), "{path}");
    }
    let t = get_in(
        s.port,
        &format!("/viewer/{}", s.korean_study),
        &cookie,
        KOREAN,
    )
    .text();
    assert!(t.contains(">길이<") && t.contains(r#"title="윈도우/레벨 (드래그)""#));
}
