//! `pacsbox serve`: wires the archive, the DICOM services, the web page and the front panel
//! together, runs them until SIGTERM/SIGINT, and stops them in order (DICOM first, so no
//! association is cut mid-instance, then the web workers and the panel).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context;
use pacsbox_archive::peers::AccessMode;
use pacsbox_dicom::DicomServer;

use crate::config::Config;
use crate::{appliance, errlog, status};

pub fn serve(c: Config, errors: errlog::ErrorLog) -> anyhow::Result<()> {
    raise_open_file_limit();
    if appliance::data_volume_missing(&c) {
        wait_for_volume_with_panel(&c)?;
    }
    std::fs::create_dir_all(&c.data_dir)
        .with_context(|| format!("creating data folder {}", c.data_dir.display()))?;
    let archive = c.open_archive()?;
    archive
        .configure_access(c.access_settings()?)
        .context("reading the learning period from the index")?;
    match archive.access_state() {
        Ok(s) if s.effective == AccessMode::Open => {
            tracing::warn!("DICOM access is open: any AE may query, retrieve and store")
        }
        Ok(s) => {
            tracing::info!(mode = ?s.effective, learning_deadline_unix = s.learning_deadline_unix, "DICOM access")
        }
        Err(e) => tracing::error!(error = %e, "reading the access state"),
    }
    let audit = pacsbox_audit::Audit::open(&c.audit_dir(), c.audit_keep_days)
        .context("opening the audit trail")?;
    audit.record(
        pacsbox_audit::Event::new("appliance.start", "pacsbox", "")
            .detail(format!("version {}", env!("CARGO_PKG_VERSION"))),
    );
    let forwarder = start_audit_forwarding(&c, &audit)?;
    let backup =
        crate::backup_schedule::Schedule::start(&c.backup, c.data_dir.clone(), audit.clone())
            .context("starting the backup schedule")?
            .map(Arc::new);
    let media = crate::media_watch::Watcher::start(&c.media).context("watching for media")?;
    let dicom_addr: SocketAddr = format!("{}:{}", c.bind, c.dicom_port)
        .parse()
        .with_context(|| format!("bad bind address {}", c.bind))?;
    let http_addr = format!("{}:{}", c.bind, c.http_port);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(32)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let scp = DicomServer::new(archive.clone(), c.scp_config()).with_audit(audit.clone());
    let access = c.access_settings()?;
    let tls_peers = access.fixed.iter().any(|p| p.needs_tls());
    let tls = if c.https_port == 0 && c.dicom_tls_port == 0 && !tls_peers {
        None
    } else {
        Some(
            crate::tls::load_or_create(&c.tls_dir(), &certificate_names())
                .context("setting up TLS (HTTPS, DICOM TLS)")?,
        )
    };
    let https = tls
        .as_ref()
        .filter(|_| c.https_port != 0)
        .map(|t| pacsbox_web::Https {
            addr: format!("{}:{}", c.bind, c.https_port),
            tls: t.web.clone(),
        });
    let certificate = tls.as_ref().map(|t| t.certificate.clone());
    let trust = match tls.as_ref().filter(|_| c.dicom_tls_port != 0 || tls_peers) {
        Some(t) => Some(Arc::new(peer_trust(&c, t, &access)?)),
        None => None,
    };
    let scp = match &trust {
        Some(t) => scp.with_trust(t.clone()),
        None => scp,
    };
    let dicom_tls = (c.dicom_tls_port != 0 && tls.is_some())
        .then(|| format!("{}:{}", c.bind, c.dicom_tls_port));
    let guard = pacsbox_web::guard::GuardConfig {
        max_upload: c.web_config().max_upload,
        ..Default::default()
    };
    let http = pacsbox_web::listen(&http_addr, guard, https)?.server;
    let dicom_accepting = Arc::new(AtomicBool::new(false));
    let source = Arc::new(status::Status {
        archive: archive.clone(),
        scp: scp.status(),
        config: c.clone(),
        started: Instant::now(),
        health: (&c.health).into(),
        dicom_accepting: dicom_accepting.clone(),
        errors,
        certificate: certificate.clone(),
        audit_forwarding: forwarder.as_ref().map(|f| f.status_handle()),
        forward_queue: Default::default(),
        backup: backup.clone(),
        media: media.clone(),
    });
    let (mut web, initial_password) = pacsbox_web::Web::new(
        archive.clone(),
        source.clone(),
        c.web_config(),
        audit.clone(),
    )
    .context("setting up the web page")?;
    web.certificates = certificate.map(|c| c as Arc<dyn pacsbox_web::Certificates>);
    web.echo = Some(Arc::new(BoxEcho {
        archive: archive.clone(),
        trust: trust.clone(),
        scp: c.scp_config(),
        runtime: runtime.handle().clone(),
    }));
    // The web page's fetches and the prefetches share one list (the page shows both).
    let fetches = pacsbox_dicom::fetch::Fetches::default();
    if !c.fetch.from.is_empty() {
        web.remote = Some(Arc::new(BoxRemote {
            archive: archive.clone(),
            trust: trust.clone(),
            scp: c.scp_config(),
            runtime: runtime.handle().clone(),
            from: c.fetch.from.clone(),
            fetches: fetches.clone(),
        }));
    }
    let prefetch = (c.fetch.prefetch_priors > 0 && !c.fetch.from.is_empty()).then(|| {
        pacsbox_dicom::fetch::Prefetch {
            archive: archive.clone(),
            from: c.fetch.from.clone(),
            priors: c.fetch.prefetch_priors,
            trust: trust.clone(),
            config: c.scp_config(),
            fetches,
            audit: audit.clone(),
        }
    });
    if initial_password.is_some() {
        // The password itself stays out of the log (journals are kept and copied around);
        // it is in the file (mode 0600) and on the panel's identity page.
        tracing::info!(
            user = "admin",
            file = %c.initial_password_file().display(),
            "first start: web login created; its password is in the file and must be changed at first login"
        );
    }
    let web_workers = c.web.workers.max(1);
    let workers =
        pacsbox_web::serve(http.clone(), Arc::new(web)).context("starting HTTP workers")?;
    let panel_stop = Arc::new(AtomicBool::new(false));
    let panel = start_panel(
        &c,
        move || {
            source
                .health()
                .inspect_err(|e| tracing::warn!(error = %e, "panel: collecting health"))
                .ok()
        },
        panel_stop.clone(),
    )?;
    let data_dir = c.data_dir.clone();
    let (forward_archive, forward_audit) = (archive.clone(), audit.clone());
    let (purge_archive, purge_audit) = (archive.clone(), audit.clone());
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(dicom_addr)
            .await
            .with_context(|| format!("listening for DICOM on {dicom_addr}"))?;
        let scp = match dicom_tls {
            Some(addr) => {
                let l = tokio::net::TcpListener::bind(&addr)
                    .await
                    .with_context(|| format!("listening for DICOM TLS on {addr}"))?;
                tracing::info!(dicom_tls = addr, "DICOM TLS");
                scp.with_tls(l)
            }
            None => scp,
        };
        tracing::info!(
            ae_title = c.ae_title,
            dicom = %dicom_addr,
            http = %http_addr,
            data = %data_dir.display(),
            "pacsbox serving"
        );
        if !cfg!(feature = "native-codecs") {
            // A plain `cargo build` leaves the C codecs out (README); say what that costs.
            tracing::warn!(
                "built without the C codecs (feature native-codecs): JPEG-LS and 12-bit JPEG \
                 are stored and retrieved as they are, but not previewed or decompressed"
            );
        }
        let (tx, rx) = tokio::sync::watch::channel(false);
        // Installed here, before READY: a handler installed by the spawned task could come
        // after systemd (or a test) already sent SIGTERM, which would then kill us unclean.
        let signals = Signals::install();
        tokio::spawn(async move {
            signals.wait().await;
            tracing::info!("shutting down: finishing running associations");
            let _ = tx.send(true);
        });
        // The forwarding senders also work "Send to…" jobs, so they run without rules too.
        let forwarding = pacsbox_dicom::forward::Forwarding {
            archive: forward_archive,
            rules: c.forward.clone(),
            settings: c.forwarding.clone(),
            scp: c.scp_config(),
            trust,
            audit: forward_audit,
        }
        .start(rx.clone());
        let prefetching = prefetch.map(|p| p.start(rx.clone()));
        dicom_accepting.store(true, Ordering::Relaxed);
        let presence = appliance::Presence::start(&c);
        tokio::spawn(appliance::watchdog());
        tokio::spawn(purge_trash_periodically(purge_archive, purge_audit));
        let served = scp.serve(listener, rx).await;
        presence.stop();
        dicom_accepting.store(false, Ordering::Relaxed);
        if let Err(e) = forwarding.await {
            tracing::error!(error = %e, "forwarding task");
        }
        if let Some(Err(e)) = match prefetching {
            Some(p) => Some(p.await),
            None => None,
        } {
            tracing::error!(error = %e, "prefetch task");
        }
        served?;
        anyhow::Ok(())
    })?;
    for _ in 0..web_workers {
        http.unblock();
    }
    panel_stop.store(true, Ordering::Relaxed);
    if let Some(p) = panel {
        let _ = p.join();
    }
    for w in workers {
        let _ = w.join();
    }
    if let Some(b) = &backup {
        b.stop();
    }
    if let Some(m) = &media {
        m.stop();
    }
    audit.record(pacsbox_audit::Event::new("appliance.stop", "pacsbox", ""));
    audit.flush();
    if let Some(f) = forwarder {
        // Sends what is left (the stop record too) if the collector is there; anything it
        // misses waits in the trail for the next start.
        f.stop();
    }
    if let Err(e) = archive.flush_refused() {
        tracing::warn!(error = %e, "writing the refused AEs");
    }
    drop(archive);
    tracing::info!("stopped cleanly");
    Ok(())
}

/// The peers page's "Test": a C-ECHO on the DICOM runtime, from a web worker thread.
struct BoxEcho {
    archive: pacsbox_archive::Archive,
    trust: Option<Arc<pacsbox_dicom::trust::PeerTrust>>,
    scp: pacsbox_dicom::ScpConfig,
    runtime: tokio::runtime::Handle,
}

impl pacsbox_web::PeerEcho for BoxEcho {
    fn echo(&self, ae_title: &str) -> Result<std::time::Duration, String> {
        let peer = self
            .archive
            .peer(ae_title)
            .map_err(|e| format!("reading the peer table: {e}"))?
            .ok_or_else(|| format!("{ae_title} is not in the peer table"))?;
        // Bounded: the admin waits for the page.
        let echo = pacsbox_dicom::forward::echo(peer, self.trust.as_deref(), &self.scp);
        self.runtime.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(15), echo)
                .await
                .map_err(|_| "no answer within 15 s".to_owned())?
        })
    }
}

/// The remote search page's C-FIND and C-MOVE on the DICOM runtime (`[fetch] from`).
struct BoxRemote {
    archive: pacsbox_archive::Archive,
    trust: Option<Arc<pacsbox_dicom::trust::PeerTrust>>,
    scp: pacsbox_dicom::ScpConfig,
    runtime: tokio::runtime::Handle,
    from: Vec<String>,
    fetches: pacsbox_dicom::fetch::Fetches,
}

impl BoxRemote {
    fn peer(&self, ae_title: &str) -> Result<pacsbox_archive::peers::PeerEntry, String> {
        if !self.from.iter().any(|p| p == ae_title) {
            return Err(format!("{ae_title} is not in [fetch] from"));
        }
        self.archive
            .peer(ae_title)
            .map_err(|e| format!("reading the peer table: {e}"))?
            .ok_or_else(|| format!("{ae_title} is not in the peer table"))
    }
}

impl pacsbox_web::RemotePacs for BoxRemote {
    fn peers(&self) -> Vec<String> {
        self.from.clone()
    }

    fn find(
        &self,
        peer: &str,
        q: &pacsbox_archive::remote::RemoteQuery,
    ) -> Result<Vec<pacsbox_archive::remote::RemoteStudy>, String> {
        let peer = self.peer(peer)?;
        // Bounded: a person waits for the page; past 500 matches the query is cancelled.
        let find =
            pacsbox_dicom::fetch::find_studies(peer, self.trust.as_deref(), &self.scp, q, 500);
        self.runtime.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(30), find)
                .await
                .map_err(|_| "no answer within 30 s".to_owned())?
        })
    }

    fn fetch(&self, peer: &str, study_uid: &str, requested_by: &str) -> Result<u64, String> {
        let peer = self.peer(peer)?;
        Ok(self.fetches.start(
            &self.runtime,
            peer,
            self.trust.clone(),
            self.scp.clone(),
            study_uid.to_owned(),
            requested_by.to_owned(),
        ))
    }

    fn fetches(&self) -> Vec<pacsbox_archive::remote::FetchJob> {
        self.fetches.list()
    }
}

/// The copy of the trail for the clinic's syslog collector (`[audit] syslog`), if configured.
fn start_audit_forwarding(
    c: &Config,
    audit: &pacsbox_audit::Audit,
) -> anyhow::Result<Option<pacsbox_atna::Forwarder>> {
    let Some(target) = &c.audit.syslog else {
        return Ok(None);
    };
    let ca_file = c
        .audit
        .syslog_ca
        .clone()
        .context("[audit] syslog needs syslog_ca")?;
    let client_cert = if c.audit.syslog_client_cert {
        // The box's own certificate, made now if HTTPS and DICOM TLS are both off.
        crate::tls::load_or_create(&c.tls_dir(), &certificate_names())
            .context("the certificate for the syslog collector")?;
        Some((c.tls_dir().join("cert.pem"), c.tls_dir().join("key.pem")))
    } else {
        None
    };
    let mdns = pacsbox_health::host::mdns_name();
    let settings = pacsbox_atna::Settings {
        target: target.clone(),
        ca_file,
        client_cert,
        audit_dir: c.audit_dir(),
        source: pacsbox_atna::Source {
            host: mdns.trim_end_matches(".local").to_owned(),
            ae_title: c.ae_title.clone(),
        },
    };
    let f = pacsbox_atna::Forwarder::start(settings, audit.next_seq())
        .context("starting audit forwarding")?;
    tracing::info!(collector = target, "audit trail forwarded over syslog/TLS");
    Ok(Some(f))
}

/// DICOM TLS's certificates: the box's own, the clinic CA (`dicom_tls_ca`), and every
/// fingerprint the fixed peers pin.
pub(crate) fn peer_trust(
    c: &Config,
    own: &crate::tls::TlsIdentity,
    access: &pacsbox_archive::peers::AccessSettings,
) -> anyhow::Result<pacsbox_dicom::trust::PeerTrust> {
    use pacsbox_archive::peers::CertRule;
    let ca = match &c.dicom_tls_ca {
        Some(path) => crate::tls::read_certs(path).context("dicom_tls_ca")?,
        None => Vec::new(),
    };
    let pinned = access
        .fixed
        .iter()
        .filter_map(|p| match &p.cert {
            Some(CertRule::Sha256(fp)) => Some(fp.clone()),
            _ => None,
        })
        .collect();
    for p in access.fixed.iter().filter(|p| p.needs_tls()) {
        if c.dicom_tls_port == 0 {
            tracing::warn!(
                peer = p.ae_title,
                "peer must associate over TLS but dicom_tls_port is 0: only C-MOVE to it works"
            );
        }
    }
    pacsbox_dicom::trust::PeerTrust::new(
        own.certificate.clone(),
        own.certificate.clone(),
        ca,
        pinned,
    )
    .context("setting up DICOM TLS")
}

/// Waits for the data volume (appliance.rs) with the front panel running meanwhile, so the
/// technician sees why nothing works; the panel is stopped again before the archive opens.
fn wait_for_volume_with_panel(c: &Config) -> anyhow::Result<()> {
    let sources: pacsbox_health::HealthSources = (&c.health).into();
    let waiting: Arc<dyn Fn() -> pacsbox_health::Health + Send + Sync> = {
        let c = c.clone();
        Arc::new(move || status::waiting_for_volume(&c, &sources))
    };
    let stop = Arc::new(AtomicBool::new(false));
    let panel = {
        let waiting = waiting.clone();
        start_panel(c, move || Some(waiting()), stop.clone())?
    };
    let waited = appliance::wait_for_data_volume(c, &*waiting);
    stop.store(true, Ordering::Relaxed);
    if let Some(p) = panel {
        let _ = p.join();
    }
    waited
}

/// Starts the front panel on its own thread, reading the same health model as `/status.json`.
/// It only reads status: a slow or absent display can never hold up the DICOM service.
fn start_panel(
    c: &Config,
    health: impl Fn() -> Option<pacsbox_health::Health> + Send + 'static,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Option<std::thread::JoinHandle<()>>> {
    let output = c.panel.output()?;
    if output == pacsbox_panel::PanelOutput::None && !c.panel.buttons {
        return Ok(None);
    }
    tracing::info!(
        display = c.panel.display,
        buttons = c.panel.buttons,
        "front panel"
    );
    let command = c.panel.shutdown_command.clone();
    let handle = pacsbox_panel::spawn(
        output,
        c.panel.clone(),
        health,
        move || pacsbox_panel::run_shutdown_command(&command),
        stop,
    )
    .context("starting the front panel thread")?;
    Ok(Some(handle))
}

/// Every web client and association is a file descriptor; the default soft limit (1024) is
/// what a crowd of clients exhausts first: take the hard limit we are allowed.
/// The names a self-signed certificate is made for: what staff type into the address bar.
fn certificate_names() -> Vec<String> {
    let mdns = pacsbox_health::host::mdns_name();
    let mut names = vec![
        mdns.trim_end_matches(".local").to_owned(),
        mdns,
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    names.extend(pacsbox_health::host::addresses());
    names.retain(|n| !n.is_empty());
    names.dedup();
    names
}

fn raise_open_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                tracing::warn!("could not raise the open-file limit");
            }
        }
    }
}

/// The maintenance tick: expired trash purged at start and then every hour — or, with a trash
/// time of under four hours, every quarter of it, so that nothing stays much past its time —
/// audited like an admin's purge, as the "system" user.
async fn purge_trash_periodically(archive: pacsbox_archive::Archive, audit: pacsbox_audit::Audit) {
    let every = std::time::Duration::from_secs_f64(
        (archive.trash_seconds() as f64 / 4.0).clamp(1.0, 3600.0),
    );
    loop {
        let a = archive.clone();
        match tokio::task::spawn_blocking(move || a.purge_trash(None)).await {
            Ok(Ok(report)) if report.operations > 0 => {
                tracing::info!(
                    operations = report.operations,
                    files = report.files,
                    bytes = report.bytes,
                    "expired trash purged"
                );
                audit.record(pacsbox_web::audit::purge_event(&report, "system", ""));
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "purging the expired trash"),
            Err(e) => tracing::error!(error = %e, "the trash purge task failed"),
        }
        tokio::time::sleep(every).await;
    }
}

/// SIGTERM (systemd's stop) and SIGINT (a terminal's Ctrl-C), registered as soon as made.
struct Signals(Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>);

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => Signals(Some((term, int))),
            _ => {
                tracing::error!("cannot install signal handlers; stop with SIGKILL");
                Signals(None)
            }
        }
    }

    async fn wait(self) {
        let Some((mut term, mut int)) = self.0 else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    }
}
