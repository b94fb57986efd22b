//! The admins' DICOM peers page: the access mode (and closing the learning period), the AEs
//! that were refused with one click to allow them, and the peer table with the rights of the
//! learned peers to change or remove. Fixed peers (settings file, `--peer`) are shown only,
//! with what they need over DICOM TLS: they are changed where they were given. Learning, once
//! over, can be opened again for some days (a new modality).

use askama::Template;
use pacsbox_archive::peers::{
    AccessMode, CertRule, MAX_RELEARN_DAYS, PeerAddress, PeerEntry, PeerError, PeerRights,
    PeerSource,
};

use super::{Nav, form_page, nav};
use crate::Web;
use crate::auth::Session;
use crate::reply::{HttpError, Reply, Req};

struct PeerRow {
    ae: String,
    host: String,
    /// It has host and port: "Test" can reach it.
    reachable: bool,
    rights: String,
    /// What it needs over DICOM TLS, in words; empty: plain is fine.
    tls: String,
    source: &'static str,
    learned: bool,
    first_seen: String,
    last_seen: String,
    last_address: String,
    /// The address form's values (learned or added peers).
    host_only: String,
    port: String,
    tls_on: bool,
}

struct RefusedRow {
    ae: String,
    address: String,
    last: String,
    count: u64,
}

#[derive(Template)]
#[template(path = "peers.html")]
struct PeersPage<'a> {
    nav: Option<Nav>,
    t: &'static crate::i18n::Strings,
    csrf: &'a str,
    mode: &'static str,
    configured: &'static str,
    learning_until: String,
    learning: bool,
    /// Learning is over but the settings ask for it: it can be opened again.
    can_relearn: bool,
    max_days: u32,
    peers: Vec<PeerRow>,
    refused: Vec<RefusedRow>,
    error: &'a str,
    message: &'a str,
}

fn mode_name(m: AccessMode) -> &'static str {
    match m {
        AccessMode::Learning => "learning",
        AccessMode::Closed => "closed",
        AccessMode::Open => "open",
    }
}

fn tls_need(p: &PeerEntry) -> String {
    match &p.cert {
        Some(CertRule::Ca) => "TLS, certificate from the clinic CA".to_owned(),
        Some(rule @ CertRule::Sha256(_)) => format!("TLS, certificate SHA-256 {rule}"),
        None if p.tls => "TLS".to_owned(),
        None => String::new(),
    }
}

fn when(unix: Option<i64>) -> String {
    unix.map(crate::conflicts::utc).unwrap_or_default()
}

pub fn peers_page(web: &Web, s: &Session, error: &str, message: &str) -> Result<Reply, HttpError> {
    let report = web.archive.access_report()?;
    let peers = report
        .peers
        .into_iter()
        .map(|p| PeerRow {
            reachable: p.host.is_some() && p.port.is_some(),
            host: match (&p.host, p.port) {
                (Some(h), Some(port)) => format!("{h}:{port}"),
                (Some(h), None) => h.clone(),
                (None, _) => String::new(),
            },
            rights: p.rights.to_string(),
            tls: tls_need(&p),
            host_only: p.host.clone().unwrap_or_default(),
            port: p.port.map(|n| n.to_string()).unwrap_or_default(),
            tls_on: p.tls,
            source: match p.source {
                PeerSource::Config => "settings file",
                PeerSource::Cli => "command line",
                PeerSource::Learned => "learned or added here",
            },
            learned: p.source == PeerSource::Learned,
            first_seen: when(p.first_seen_unix),
            last_seen: when(p.last_seen_unix),
            last_address: p.last_address.unwrap_or_default(),
            ae: p.ae_title,
        })
        .collect();
    let refused = report
        .refused
        .into_iter()
        .map(|r| RefusedRow {
            last: crate::conflicts::utc(r.last_unix),
            ae: r.ae_title,
            address: r.address,
            count: r.count,
        })
        .collect();
    form_page(
        &PeersPage {
            nav: nav(s),
            t: s.t(),
            csrf: &s.csrf,
            mode: mode_name(report.state.effective),
            configured: mode_name(report.state.configured),
            learning_until: when(report.state.learning_deadline_unix),
            learning: report.state.effective == AccessMode::Learning,
            can_relearn: report.state.configured == AccessMode::Learning
                && report.state.effective != AccessMode::Learning,
            max_days: MAX_RELEARN_DAYS,
            peers,
            refused,
            error,
            message,
        },
        error,
    )
}

pub fn peers_post(web: &Web, s: &Session, req: &Req) -> Result<Reply, HttpError> {
    let ae = req.field("ae").trim();
    let outcome = match req.field("action") {
        "allow" => match (PeerRights::parse(req.field("rights")), address(req)) {
            (Err(e), _) | (_, Err(e)) => Err(e),
            (Ok(rights), Ok(addr)) => web
                .archive
                .allow_peer(ae, rights)
                .and_then(|()| match req.field("with_address") {
                    "1" => web.archive.set_peer_address(ae, addr),
                    _ => Ok(()),
                })
                .map(|()| format!("{ae} may now: {rights}."))
                .map_err(peer_error),
        },
        "address" => match address(req) {
            Err(e) => Err(e),
            Ok(addr) => {
                let said = match &addr {
                    Some(a) => format!("{ae} is reached at {}:{}.", a.host, a.port),
                    None => format!("{ae} has no address now."),
                };
                web.archive
                    .set_peer_address(ae, addr)
                    .map(|()| said)
                    .map_err(peer_error)
            }
        },
        "remove" => web
            .archive
            .remove_peer(ae)
            .map(|()| format!("{ae} removed; it is unknown again."))
            .map_err(peer_error),
        "close-learning" => {
            web.archive.close_learning()?;
            Ok("Learning closed: unknown AEs are refused from now on.".to_owned())
        }
        "learn-again" => match req.field("days").trim().parse::<u32>() {
            Err(_) => Err(format!("days: a number from 1 to {MAX_RELEARN_DAYS}")),
            Ok(days) => web
                .archive
                .reopen_learning(days)
                .map(|until| {
                    format!(
                        "Learning again until {}: devices that store are added as store-only peers.",
                        crate::conflicts::utc(until)
                    )
                })
                .map_err(peer_error),
        },
        "echo" => match &web.echo {
            None => Err("C-ECHO is not available here".to_owned()),
            Some(e) => e
                .echo(ae)
                .map(|rtt| format!("{ae}: C-ECHO success in {:.1} ms.", rtt.as_secs_f64() * 1000.0))
                .map_err(|why| format!("{ae}: C-ECHO failed: {why}")),
        },
        _ => return Err(HttpError::BadRequest("unknown action".into())),
    };
    match outcome {
        Ok(message) => {
            tracing::info!(
                admin = s.user,
                ae,
                action = req.field("action"),
                "DICOM peers changed"
            );
            peers_page(web, s, "", &message)
        }
        Err(e) => peers_page(web, s, &e, ""),
    }
}

/// The host and port of the form (none when the host is empty), checked.
fn address(req: &Req) -> Result<Option<PeerAddress>, String> {
    let host = req.field("host").trim();
    if host.is_empty() {
        return Ok(None);
    }
    if host.len() > 253
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'))
    {
        return Err(format!("host {host:?}: a name or an IP address"));
    }
    let port = match req.field("port").trim().parse::<u16>() {
        Ok(p) if p > 0 => p,
        _ => return Err("port: a number from 1 to 65535".into()),
    };
    Ok(Some(PeerAddress {
        host: host.to_owned(),
        port,
        tls: req.field("tls") == "on",
    }))
}

fn peer_error(e: PeerError) -> String {
    if let PeerError::Index(i) = &e {
        tracing::error!(error = %i, "changing DICOM peers");
    }
    e.to_string()
}
