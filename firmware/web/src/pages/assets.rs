//! The static assets of `web-ui/static`, compiled in so the appliance stays one file.

use crate::reply::Reply;

pub fn asset(name: &str) -> Reply {
    let (ct, body): (&'static str, &'static [u8]) = match name {
        "app.css" => (
            "text/css; charset=utf-8",
            include_bytes!("../../../../web-ui/static/app.css"),
        ),
        "viewer.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../../../web-ui/static/viewer.js"),
        ),
        "viewer-pixels.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../../../web-ui/static/viewer-pixels.js"),
        ),
        "viewer-net.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../../../web-ui/static/viewer-net.js"),
        ),
        "viewer-cache.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../../../web-ui/static/viewer-cache.js"),
        ),
        "viewer-view.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../../../web-ui/static/viewer-view.js"),
        ),
        "viewer-input.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../../../web-ui/static/viewer-input.js"),
        ),
        "viewer-measure.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../../../web-ui/static/viewer-measure.js"),
        ),
        "viewer-sync.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../../../web-ui/static/viewer-sync.js"),
        ),
        "viewer-compare.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../../../web-ui/static/viewer-compare.js"),
        ),
        "viewer-keys.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../../../web-ui/static/viewer-keys.js"),
        ),
        "i18n.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../../../web-ui/static/i18n.js"),
        ),
        "report.css" => (
            "text/css; charset=utf-8",
            include_bytes!("../../../../web-ui/static/report.css"),
        ),
        "anonymize.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../../../web-ui/static/anonymize.js"),
        ),
        "import.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../../../web-ui/static/import.js"),
        ),
        "viewer.css" => (
            "text/css; charset=utf-8",
            include_bytes!("../../../../web-ui/static/viewer.css"),
        ),
        "ohif-app-config.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../../../web-ui/static/ohif-app-config.js"),
        ),
        "worklist.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../../../web-ui/static/worklist.js"),
        ),
        _ => return Reply::text(404, "not found"),
    };
    Reply::bytes(200, ct, body.to_vec()).header("Cache-Control", "max-age=300")
}
