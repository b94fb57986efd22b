//! The OHIF viewer at `/ohif/`: the prebuilt `@ohif/app` folder named by `[web] ohif_dir`
//! (prepared for the `/ohif/` prefix by `web-ui/ohif/install.sh`), served as static files
//! behind the same session as every page, with its own Content-Security-Policy. OHIF reads
//! studies from our DICOMweb (`dicomweb/`) on the same origin, so the session cookie rides
//! along; `/ohif/app-config.js` is always ours (`web-ui/static/ohif-app-config.js`), never the
//! folder's, so the viewer can only talk to this box.
//!
//! OHIF routes on the client (`/ohif/viewer?StudyInstanceUIDs=…`): a path under `/ohif/`
//! whose last segment has no file extension and names no file is answered with `index.html`.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::Web;
use crate::reply::{HttpError, Reply};

/// OHIF's own policy, as tight as it runs: its code only from here (no inline scripts — the
/// install step moved them to a file), WebAssembly codecs compiled in the page and its workers
/// (`'wasm-unsafe-eval'`), workers from here or from blobs it builds, styles inline (React sets
/// them), images and fetches from here, blobs and data URLs (thumbnails, decoded frames).
pub const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval' blob:; \
     worker-src 'self' blob:; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; \
     font-src 'self' data:; connect-src 'self' blob: data:; object-src 'none'; \
     base-uri 'self'; frame-ancestors 'none'; form-action 'self'";

/// Files up to this size are read whole (the server's inline reply size).
const SMALL_FILE: u64 = 128 << 10;

/// The folder OHIF is served from, when one is set and holds an `index.html`.
pub fn folder(web: &Web) -> Option<&Path> {
    let dir = web.config.ohif_dir.as_deref()?;
    dir.join("index.html").is_file().then_some(dir)
}

/// Whether the study page offers "Open in OHIF".
pub fn available(web: &Web) -> bool {
    folder(web).is_some()
}

/// `GET /ohif/{rest…}` for a logged-in user.
pub fn serve(web: &Web, rest: &[&str]) -> Result<Reply, HttpError> {
    let Some(root) = folder(web) else {
        return Ok(Reply::text(
            404,
            "OHIF is not installed on this box: set [web] ohif_dir to a folder prepared by \
             web-ui/ohif/install.sh (see docs/ohif.md)",
        ));
    };
    let rest: Vec<&str> = rest.iter().copied().filter(|s| !s.is_empty()).collect();
    if rest == ["app-config.js"] {
        return Ok(crate::pages::asset("ohif-app-config.js").header("Cache-Control", "no-cache"));
    }
    if !rest.iter().all(|s| safe_segment(s)) {
        return Err(HttpError::NotFound);
    }
    let path = rest.iter().fold(root.to_path_buf(), |p, s| p.join(s));
    let (path, spa) = if path.is_file() {
        (path, false)
    } else if rest.last().is_none_or(|s| !s.contains('.')) {
        (root.join("index.html"), true)
    } else {
        return Err(HttpError::NotFound);
    };
    let path = confined(root, &path)?;
    let mut file = std::fs::File::open(&path)
        .map_err(|e| HttpError::Internal(format!("opening {}: {e}", path.display())))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
    let name = if spa {
        "index.html"
    } else {
        rest.last().copied().unwrap_or("index.html")
    };
    // The bundles' names carry their content hash; index.html names them, so it is the one
    // file a browser must ask again for after OHIF is updated.
    let cache = if name == "index.html" {
        "no-cache"
    } else {
        "max-age=86400"
    };
    // Small files (most of the bundles) go out whole from the worker; only the large ones
    // take one of the server's few sender threads.
    let reply = if len <= SMALL_FILE {
        let mut body = Vec::with_capacity(len as usize);
        file.read_to_end(&mut body)
            .map_err(|e| HttpError::Internal(format!("reading {}: {e}", path.display())))?;
        Reply::bytes(200, mime_of(name), body)
    } else {
        Reply::stream(mime_of(name), Box::new(file))
    };
    Ok(reply
        .header("Cache-Control", cache)
        .header("Content-Security-Policy", CSP))
}

/// A path segment that can only name an entry inside its folder: no `.`/`..`, no hidden
/// files, no separators or NUL (the URL's `%2F` is not decoded by tiny_http, so `%` is
/// refused too).
fn safe_segment(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'@' | b'+'))
}

/// The file's real path, refused (404) when a symbolic link leads out of the OHIF folder.
fn confined(root: &Path, path: &Path) -> Result<PathBuf, HttpError> {
    let real_root = root
        .canonicalize()
        .map_err(|e| HttpError::Internal(format!("resolving {}: {e}", root.display())))?;
    let real = path.canonicalize().map_err(|_| HttpError::NotFound)?;
    if real.starts_with(&real_root) {
        Ok(real)
    } else {
        tracing::warn!(path = %path.display(), "OHIF file outside its folder refused");
        Err(HttpError::NotFound)
    }
}

/// Content types by extension; browsers compile WebAssembly by streaming only when it is
/// `application/wasm`, and with `nosniff` a script must be declared as one.
fn mime_of(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    match ext.to_ascii_lowercase().as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "webapp" => "application/json",
        "jsonc" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "xml" => "application/xml",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_that_could_leave_the_folder_are_refused() {
        for bad in ["..", ".", ".env", "a/b", "a\\b", "%2e%2e", "a\0b", ""] {
            assert!(!safe_segment(bad), "{bad:?} accepted");
        }
        for good in [
            "index.html",
            "app.bundle.0f6159c501addfe9.js",
            "assets",
            "x-y_z@2.png",
        ] {
            assert!(safe_segment(good), "{good:?} refused");
        }
    }

    #[test]
    fn webassembly_is_served_as_application_wasm() {
        assert_eq!(mime_of("37fa160cc3a47cfd.wasm"), "application/wasm");
        assert_eq!(mime_of("app.bundle.js"), "text/javascript; charset=utf-8");
        assert_eq!(mime_of("INDEX.HTML"), "text/html; charset=utf-8");
        assert_eq!(mime_of("noext"), "application/octet-stream");
    }
}
