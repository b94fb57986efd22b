//! Every URL of the web page, and the two gates in front of them: a session (except for the
//! login page, static assets and the public status document) and, for every POST, the
//! session's CSRF token.

use pacsbox_archive::accounts::Right;

use crate::Web;
use crate::auth::{COOKIE, Session, clear_cookie};
use crate::i18n::Lang;
use crate::pages;
use crate::reply::{HttpError, Reply, Req, check_uid};

/// Routes answered without a session, as (method, path pattern); GET also answers HEAD.
pub const PUBLIC_ROUTES: &[(&str, &str)] = &[
    ("GET", "/static/{name}"),
    ("GET", "/status.json"),
    ("GET", "/status.txt"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/favicon.ico"),
];

/// Every route behind the session gate, as (method, path pattern): `{uid}` a study UID,
/// `{series}` a series UID, `{sop}` a SOP Instance UID, `{n}` a frame number. Listed so that
/// tests can probe each one without a session; `firmware/web/tests/http.rs` fails when an arm
/// of the matches below (or of `pixels::instance_api`) is missing here.
pub const SESSION_ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("POST", "/logout"),
    ("GET", "/account/password"),
    ("POST", "/account/password"),
    ("POST", "/account/language"),
    ("GET", "/admin/users"),
    ("POST", "/admin/users"),
    ("GET", "/admin/conflicts"),
    ("GET", "/admin/audit"),
    ("GET", "/admin/peers"),
    ("GET", "/admin/certificate"),
    ("POST", "/admin/certificate"),
    ("POST", "/admin/peers"),
    ("GET", "/admin/forwarding"),
    ("POST", "/admin/forwarding"),
    ("POST", "/study/{uid}/send"),
    ("GET", "/remote"),
    ("POST", "/remote/fetch"),
    ("GET", "/remote/fetches"),
    ("GET", "/remote/fetches.json"),
    ("POST", "/admin/conflicts"),
    ("GET", "/admin/operations"),
    ("POST", "/admin/operations"),
    ("POST", "/study/{uid}/edit"),
    ("GET", "/status"),
    ("GET", "/search"),
    ("GET", "/study/{uid}"),
    ("GET", "/study/{uid}/download.zip"),
    ("POST", "/study/{uid}/anonymize"),
    ("GET", "/anonymize/{n}"),
    ("GET", "/anonymize/{n}/progress"),
    ("GET", "/study/{uid}/media"),
    ("GET", "/admin/import"),
    ("POST", "/admin/import"),
    ("GET", "/admin/import/progress"),
    ("POST", "/admin/import/media"),
    ("GET", "/study/{uid}/media.zip"),
    ("GET", "/instance/{sop}/header"),
    ("GET", "/viewer/{uid}"),
    ("GET", "/api/studies/{uid}/series"),
    ("GET", "/api/studies/{uid}/priors"),
    ("GET", "/api/studies/{uid}/key-images"),
    ("POST", "/api/studies/{uid}/key-images"),
    ("GET", "/api/instances/{sop}/file"),
    ("GET", "/api/instances/{sop}/info"),
    ("GET", "/api/instances/{sop}/frames/{n}/preview.png"),
    ("GET", "/api/instances/{sop}/frames/{n}/pixels"),
    ("GET", "/api/series/{series}/thumbnail.png"),
    ("GET", "/register"),
    ("POST", "/register"),
    ("GET", "/worklist"),
    ("POST", "/worklist"),
    ("GET", "/worklist.json"),
    ("GET", "/study/{uid}/report"),
    ("POST", "/study/{uid}/report"),
    ("GET", "/account/tokens"),
    ("POST", "/account/tokens"),
];

pub fn route(web: &Web, req: &Req) -> Reply {
    match route_inner(web, req) {
        Ok(r) => r,
        // The two a person meets by following a link or typing a URL, in their language.
        Err(HttpError::NotFound) => Reply::text(404, req.t().error_not_found),
        Err(HttpError::Forbidden) => Reply::text(403, req.t().error_forbidden),
        Err(e) => e.into(),
    }
}

fn route_inner(web: &Web, req: &Req) -> Result<Reply, HttpError> {
    let segs: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    // DICOMweb has its own gates (tokens, 401 challenges, CORS): `dicomweb/mod.rs`.
    if crate::dicomweb::is_dicomweb(&segs) {
        return Ok(crate::dicomweb::route(web, req, &segs));
    }
    let get = req.method == "GET" || req.method == "HEAD";
    let post = req.method == "POST";
    if !get && !post {
        return Ok(Reply::text(405, "method not allowed"));
    }
    if post && req.cross_site {
        // Another site's page posting here (login CSRF, or a form aimed at a logged-in user).
        return Err(HttpError::Forbidden);
    }
    // Public.
    match (get, segs.as_slice()) {
        (true, ["static", name]) => return Ok(crate::pages::asset(name)),
        (true, ["status.json"]) => return pages::status_json(web, req),
        (true, ["status.txt"]) => return pages::status_txt(web),
        (true, ["login"]) => return pages::login_form(web, req, ""),
        (false, ["login"]) => return pages::login_post(web, req),
        (true, ["favicon.ico"]) => return Ok(Reply::text(404, "not found")),
        _ => {}
    }
    // A path that is no page at all is 404 with or without a session.
    let known = [
        "",
        "search",
        "study",
        "instance",
        "viewer",
        "api",
        "status",
        "account",
        "admin",
        "logout",
        "remote",
        "register",
        "worklist",
        "worklist.json",
        "ohif",
        "anonymize",
    ];
    if !segs.first().is_some_and(|s| known.contains(s)) {
        return Err(HttpError::NotFound);
    }
    let token = req.cookies.get(COOKIE).map(String::as_str).unwrap_or("");
    let Some(mut session) = web.sessions.get(token) else {
        if segs.first() == Some(&"api") || post {
            return Ok(Reply::text(401, "log in first"));
        }
        // With its query: a link to `/viewer/…?series=…` comes back to that series.
        let next =
            form_urlencoded::byte_serialize(req.path_and_query().as_bytes()).collect::<String>();
        return Ok(Reply::redirect(&format!("/login?next={next}")));
    };
    session.lang = Lang::choose(session.language, &req.accept_language);
    if post && req.field("csrf") != session.csrf {
        return Err(HttpError::Forbidden);
    }
    if session.must_change_password
        && !matches!(segs.as_slice(), ["account", "password"] | ["logout"])
    {
        if segs.first() == Some(&"api") {
            return Ok(Reply::text(403, "change your password first"));
        }
        return Ok(Reply::redirect("/account/password"));
    }
    let result = answer(web, req, token, &session, &segs, post);
    let status = match &result {
        Ok(r) => r.status,
        Err(e) => e.status(),
    };
    crate::audit::access(web, &session, req, &segs, status);
    result
}

/// The pages behind the session gate.
fn answer(
    web: &Web,
    req: &Req,
    token: &str,
    session: &Session,
    segs: &[&str],
    post: bool,
) -> Result<Reply, HttpError> {
    let need = |s: &Session, right: Right| {
        if s.group.allows(right) {
            Ok(())
        } else {
            Err(HttpError::Forbidden)
        }
    };
    let admin = |s: &Session| need(s, Right::Administer);
    let session = session.clone();
    match (post, segs) {
        (false, [""]) => Ok(Reply::redirect("/search")),
        (true, ["logout"]) => {
            web.sessions.logout(token);
            Ok(Reply::redirect("/login").header("Set-Cookie", clear_cookie(req)))
        }
        (false, ["account", "password"]) => pages::password_form(&session, "", ""),
        (true, ["account", "password"]) => pages::password_post(web, token, &session, req),
        (true, ["account", "language"]) => pages::language_post(web, &session, req),
        (false, ["account", "tokens"]) => crate::dicomweb::tokens::page(web, &session, "", "", ""),
        (true, ["account", "tokens"]) => crate::dicomweb::tokens::post(web, &session, req),
        (false, ["admin", "users"]) => {
            admin(&session)?;
            pages::users_page(web, &session, "", "")
        }
        (true, ["admin", "users"]) => {
            admin(&session)?;
            pages::users_post(web, &session, req)
        }
        (false, ["admin", "conflicts"]) => {
            need(&session, Right::Edit)?;
            crate::conflicts::page(web, &session, "", "")
        }
        (true, ["admin", "conflicts"]) => {
            need(&session, Right::Edit)?;
            crate::conflicts::post(web, &session, req)
        }
        (false, ["admin", "operations"]) => {
            need(&session, Right::Edit)?;
            crate::edit::operations_page(web, &session, "", "")
        }
        (true, ["admin", "operations"]) => {
            need(&session, Right::Edit)?;
            crate::edit::operations_post(web, &session, req)
        }
        (false, ["remote"]) => {
            need(&session, Right::View)?;
            pages::remote_page(web, &session, req)
        }
        (true, ["remote", "fetch"]) => {
            need(&session, Right::View)?;
            pages::fetch_post(web, &session, req)
        }
        (false, ["remote", "fetches"]) => {
            need(&session, Right::View)?;
            pages::fetches_page(web, &session, req)
        }
        (false, ["remote", "fetches.json"]) => {
            need(&session, Right::View)?;
            pages::fetches_json(web)
        }
        (true, ["study", uid, "edit"]) => {
            need(&session, Right::Edit)?;
            crate::edit::study_post(web, &session, req, check_uid(uid)?)
        }
        (false, ["admin", "peers"]) => {
            admin(&session)?;
            pages::peers_page(web, &session, "", "")
        }
        (true, ["admin", "peers"]) => {
            admin(&session)?;
            pages::peers_post(web, &session, req)
        }
        (false, ["admin", "forwarding"]) => {
            admin(&session)?;
            pages::forwarding_page(web, &session, "", "")
        }
        (true, ["admin", "forwarding"]) => {
            admin(&session)?;
            pages::forwarding_post(web, &session, req)
        }
        // Any user who may download the study may send it to a peer the admin configured.
        (true, ["study", uid, "send"]) => {
            need(&session, Right::View)?;
            pages::send_post(web, &session, check_uid(uid)?, req)
        }
        (false, ["admin", "certificate"]) => {
            admin(&session)?;
            pages::certificate_page(web, &session, "", "")
        }
        (true, ["admin", "certificate"]) => {
            admin(&session)?;
            pages::certificate_post(web, &session, req)
        }
        (false, ["admin", "audit"]) => {
            admin(&session)?;
            pages::audit_page(web, &session, req)
        }
        (false, ["status"]) => pages::status_page(web, &session),
        (false, ["search"]) => pages::search_page(web, &session, req),
        (false, ["study", uid]) => pages::study_page(web, &session, check_uid(uid)?),
        (false, ["study", uid, "download.zip"]) => pages::study_zip(web, check_uid(uid)?),
        (true, ["study", uid, "anonymize"]) => {
            need(&session, Right::Edit)?;
            pages::anonymize_post(web, &session, req, check_uid(uid)?)
        }
        (false, ["anonymize", n]) => {
            need(&session, Right::Edit)?;
            pages::anonymize_job_page(&session, n)
        }
        (false, ["anonymize", n, "progress"]) => {
            need(&session, Right::Edit)?;
            pages::anonymize_job_progress(&session, n)
        }
        // Importing media adds patients' data, as corrections change it. The upload itself
        // (`server::UPLOAD_PATH`) is answered by `server.rs` before its body is read.
        (false, ["admin", "import"]) => {
            need(&session, Right::Edit)?;
            pages::import_page(&session, req)
        }
        // Media inserted into the box (`[media] watch`), listed like an upload.
        (true, ["admin", "import", "media"]) => {
            need(&session, Right::Edit)?;
            pages::import_media(web, req)
        }
        (true, ["admin", "import"]) => {
            need(&session, Right::Edit)?;
            pages::import_start(web, &session, req)
        }
        (false, ["admin", "import", "progress"]) => {
            need(&session, Right::Edit)?;
            pages::import_progress(&session, req)
        }
        // Media carry what a ZIP download does: the same right.
        (false, ["study", uid, "media"]) => pages::media_page(web, &session, check_uid(uid)?),
        (false, ["study", uid, "media.zip"]) => pages::media_zip(web, req, check_uid(uid)?),
        (false, ["instance", sop, "header"]) => pages::header_page(web, &session, check_uid(sop)?),
        (false, ["viewer", uid]) => pages::viewer_page(web, &session, check_uid(uid)?, req),
        (false, ["api", "studies", uid, "series"]) => pages::series_json(web, check_uid(uid)?),
        (false, ["api", "studies", uid, "priors"]) => pages::priors_json(web, check_uid(uid)?),
        // Key images (`pages/key_images.rs`): whoever may view the study sees them; marking
        // writes a document into the study in the user's name, a part of reading it, so it
        // takes the report right as signing the report does.
        (false, ["api", "studies", uid, "key-images"]) => {
            pages::key_images_json(web, &session, check_uid(uid)?)
        }
        (true, ["api", "studies", uid, "key-images"]) => {
            need(&session, Right::Report)?;
            pages::key_images_post(web, &session, req, check_uid(uid)?)
        }
        (false, ["api", "instances", sop, "file"]) => pages::instance_file(web, check_uid(sop)?),
        (false, ["api", "instances", sop, rest @ ..]) => {
            crate::pixels::instance_api(web, req, check_uid(sop)?, rest)
        }
        (false, ["api", "series", uid, "thumbnail.png"]) => {
            crate::pixels::thumbnail(web, check_uid(uid)?)
        }
        // The front desk: any logged-in user (reception staff register patients).
        (false, ["register"]) => {
            need(&session, Right::View)?;
            pages::register_page(web, &session, req)
        }
        (true, ["register"]) => {
            need(&session, Right::View)?;
            pages::register_post(web, &session, req)
        }
        (false, ["worklist"]) => {
            need(&session, Right::View)?;
            pages::worklist_page(web, &session, req, "")
        }
        (true, ["worklist"]) => {
            need(&session, Right::View)?;
            pages::worklist_post(web, &session, req)
        }
        (false, ["worklist.json"]) => {
            need(&session, Right::View)?;
            pages::worklist_json(web, req)
        }
        // The physician's report (`pages/report.rs`): anyone who may view the study reads
        // and prints it; writing and signing takes the report right.
        (false, ["study", uid, "report"]) => {
            pages::report_print(web, &session, req, check_uid(uid)?)
        }
        (true, ["study", uid, "report"]) => {
            need(&session, Right::Report)?;
            pages::report_post(web, &session, req, check_uid(uid)?)
        }
        // The OHIF viewer's files (`ohif.rs`): any logged-in user, as our own viewer.
        (false, ["ohif", rest @ ..]) => crate::ohif::serve(web, rest),
        _ => Err(HttpError::NotFound),
    }
}
