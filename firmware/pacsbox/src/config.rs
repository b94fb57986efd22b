//! Settings: built-in defaults, overridden by a TOML file (`--config`), overridden by flags.
//!
//! Each default is written once, in the crate that uses the setting (`ArchiveConfig`,
//! `ScpConfig`, `WebConfig`, the panel's and health's settings); `Config::default` reads them
//! from there and only holds the binary's own (data folder, listeners, appliance switches).
//! Flags are parsed by clap into typed values (`ServeFlags`) and applied here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use pacsbox_archive::peers::{
    AccessMode, AccessSettings, CertRule, PeerEntry, PeerRights, PeerSource,
};
use pacsbox_archive::{Archive, ArchiveConfig, CompressAt, DuplicatePolicy, SyncMode};
use pacsbox_dicom::ScpConfig;
use pacsbox_dicom::forward::{ForwardRule, ForwardSettings};
use pacsbox_web::WebConfig;
use serde::Deserialize;

/// Where the settings come from; every command takes these.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct DataArgs {
    /// TOML settings file (see README for every key).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data folder (overrides data_dir of the config file).
    #[arg(long)]
    pub data: Option<PathBuf>,
}

/// `pacsbox serve`'s flags: each overrides the key of the same meaning in the settings file.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ServeFlags {
    /// Our AE title.
    #[arg(long)]
    pub ae: Option<String>,
    #[arg(long)]
    pub dicom_port: Option<u16>,
    #[arg(long)]
    pub http_port: Option<u16>,
    /// HTTPS port of the web page; 0 switches HTTPS off (plain HTTP then serves every page).
    #[arg(long)]
    pub https_port: Option<u16>,
    /// DICOM TLS port (PS3.15 B.1, the same certificate as HTTPS); 0 switches it off.
    #[arg(long)]
    pub dicom_tls_port: Option<u16>,
    /// PEM file of the clinic CA: DICOM TLS trusts certificates it issued (peers with
    /// cert=ca, and TLS move destinations without a pinned fingerprint).
    #[arg(long)]
    pub dicom_tls_ca: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long)]
    pub bind: Option<String>,
    #[arg(long)]
    pub max_associations: Option<usize>,
    /// Free space to keep on the data volume, MiB.
    #[arg(long)]
    pub reserve_mb: Option<u64>,
    /// Same SOP Instance UID with different content: keep the first or overwrite it.
    #[arg(long, value_enum)]
    pub duplicates: Option<DuplicatePolicy>,
    /// zstd level for uncompressed syntaxes (0 = store plain .dcm).
    #[arg(long)]
    pub zstd_level: Option<i32>,
    /// When uncompressed syntaxes are compressed: when idle (after acknowledging) or while
    /// receiving.
    #[arg(long, value_enum)]
    pub compress: Option<CompressAt>,
    /// With --compress idle: how long an uncompressed-syntax instance stays a plain .dcm
    /// after it was received (30d, 12h, 90m, 0s = at the first quiet spell).
    #[arg(long)]
    pub compress_after: Option<Span>,
    /// How commit batches are made durable.
    #[arg(long, value_enum)]
    pub durability: Option<SyncMode>,
    /// Front panel display: none | png:DIR | ssd1306:/dev/i2c-1.
    #[arg(long)]
    pub panel: Option<String>,
    /// Front panel language: en | ko.
    #[arg(long)]
    pub panel_language: Option<pacsbox_panel::Language>,
    /// A DICOM peer, repeatable: AE[@host[:port]]:rights[:tls][:cert=SHA256|ca], rights a
    /// comma list of store, query, retrieve, move (or all, none); e.g.
    /// WS1@10.0.0.5:104:query,retrieve,move. `tls`: it must associate over DICOM TLS, and a
    /// C-MOVE reaches it over TLS (port = its TLS port); `cert=`: the SHA-256 fingerprint of
    /// its certificate (colons allowed), or `ca` for any from dicom_tls_ca; implies tls.
    #[arg(long = "peer", value_parser = parse_peer)]
    pub peers: Vec<PeerEntry>,
    /// Who may associate: learning (unknown AEs may store and are recorded, until the
    /// learning period ends), closed (known peers only) or open (anyone may do anything).
    #[arg(long, value_enum)]
    pub access: Option<AccessMode>,
    /// Length of the learning period after the first start of a data folder, seconds.
    #[arg(long)]
    pub learning_period_s: Option<u64>,
    /// Forward the audit trail to this syslog collector (host:port) over TLS (IHE ATNA).
    #[arg(long)]
    pub audit_syslog: Option<String>,
    /// PEM file of the CA that signed the collector's certificate (required with
    /// --audit-syslog).
    #[arg(long)]
    pub audit_syslog_ca: Option<PathBuf>,
    /// Present the box's own certificate (DATA/tls) to the collector (mutual TLS).
    #[arg(long)]
    pub audit_syslog_client_cert: bool,
}

/// Parses `--peer AE[@host[:port]]:rights[:tls][:cert=FINGERPRINT|ca]` (the rights after
/// the last colon before the options; an IPv6 host in brackets; the fingerprint may hold
/// colons, so `cert=` runs to the end or to a final `:tls`).
pub fn parse_peer(text: &str) -> Result<PeerEntry, String> {
    let mut rest = text;
    let mut tls = false;
    let mut cert = None;
    if let Some(r) = rest.strip_suffix(":tls") {
        (rest, tls) = (r, true);
    }
    if let Some(pos) = rest.find(":cert=") {
        let rule = CertRule::parse(&rest[pos + ":cert=".len()..])
            .map_err(|e| format!("--peer {text:?}: {e}"))?;
        (rest, cert) = (&rest[..pos], Some(rule));
    }
    if let Some(r) = rest.strip_suffix(":tls") {
        (rest, tls) = (r, true);
    }
    let (left, rights) = rest.rsplit_once(':').ok_or_else(|| {
        format!("--peer {text:?}: expected AE[@host[:port]]:rights, e.g. CT1:store")
    })?;
    let rights = PeerRights::parse(rights).map_err(|e| format!("--peer {text:?}: {e}"))?;
    let (ae, host, port) = match left.split_once('@') {
        None => (left, None, None),
        Some((ae, hostport)) => {
            let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
                let (h, after) = rest
                    .split_once(']')
                    .ok_or_else(|| format!("--peer {text:?}: missing ] after IPv6 address"))?;
                (h, after.strip_prefix(':'))
            } else {
                match hostport.split_once(':') {
                    Some((h, p)) => (h, Some(p)),
                    None => (hostport, None),
                }
            };
            if host.is_empty() {
                return Err(format!("--peer {text:?}: empty host after @"));
            }
            let port = port
                .map(|p| {
                    p.parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| format!("--peer {text:?}: port {p:?} is not 1-65535"))
                })
                .transpose()?;
            (ae, Some(host.to_owned()), port)
        }
    };
    let entry = PeerEntry {
        ae_title: ae.trim().to_owned(),
        host,
        port,
        rights,
        tls,
        cert,
        source: PeerSource::Cli,
        first_seen_unix: None,
        last_seen_unix: None,
        last_address: None,
    };
    check_peer(&entry).map_err(|e| format!("--peer {text:?}: {e}"))?;
    Ok(entry)
}

/// What every peer entry must satisfy, wherever it comes from.
fn check_peer(p: &PeerEntry) -> Result<(), String> {
    if !pacsbox_archive::peers::valid_ae_title(&p.ae_title) {
        return Err(format!(
            "AE title {:?} must be 1-16 printable ASCII characters without backslash",
            p.ae_title
        ));
    }
    // `move` without host and port is allowed (`all` is handy for a client that never is a
    // destination); a C-MOVE to such a peer is refused with A801 and says why.
    Ok(())
}

/// A `[[peers]]` table. Without `rights` an entry means what it meant before peers had
/// rights: a C-MOVE destination (`move`) — so old settings files keep working and grant no
/// query or retrieve.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub ae_title: String,
    /// Host or IP address: associations of this AE must come from it; C-MOVE sends there.
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    /// "store,query,retrieve,move", "all" or "none"; absent: "move".
    #[serde(default)]
    pub rights: Option<String>,
    /// Associations must arrive over DICOM TLS; C-MOVE reaches it over TLS (`port` is then
    /// its TLS port).
    #[serde(default)]
    pub tls: bool,
    /// The certificate it must present: its SHA-256 fingerprint ("AB:CD:…"), or "ca" for any
    /// issued by `dicom_tls_ca`. Implies `tls`.
    #[serde(default)]
    pub cert: Option<String>,
}

impl PeerConfig {
    fn entry(&self) -> anyhow::Result<PeerEntry> {
        let rights = match &self.rights {
            Some(r) => PeerRights::parse(r)
                .map_err(|e| anyhow::anyhow!("peer {:?}: {e}", self.ae_title))?,
            None => PeerRights::MOVE_DEST,
        };
        let entry = PeerEntry {
            ae_title: self.ae_title.trim().to_owned(),
            host: self.host.clone().filter(|h| !h.trim().is_empty()),
            port: self.port.filter(|p| *p > 0),
            rights,
            tls: self.tls,
            cert: self
                .cert
                .as_deref()
                .map(CertRule::parse)
                .transpose()
                .map_err(|e| anyhow::anyhow!("peer {:?}: {e}", self.ae_title))?,
            source: PeerSource::Config,
            first_seen_unix: None,
            last_seen_unix: None,
            last_address: None,
        };
        check_peer(&entry).map_err(|e| anyhow::anyhow!("peer {:?}: {e}", self.ae_title))?;
        Ok(entry)
    }
}

#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Folder holding the archive, its index and temp files.
    pub data_dir: PathBuf,
    /// Our DICOM AE title.
    pub ae_title: String,
    /// Address both listeners bind to.
    pub bind: String,
    pub dicom_port: u16,
    pub http_port: u16,
    /// The web page over HTTPS; plain HTTP then only redirects here (and answers the status
    /// documents for scripts). 0: no HTTPS.
    pub https_port: u16,
    /// DICOM over TLS (PS3.15 B.1) with the same peers and rights as `dicom_port`. 0: none.
    pub dicom_tls_port: u16,
    /// PEM file of the clinic CA whose certificates DICOM TLS trusts (peers with
    /// `cert = "ca"`; TLS move destinations without a pinned fingerprint). None: pins only.
    pub dicom_tls_ca: Option<PathBuf>,
    /// Concurrent DICOM associations; beyond it, A-ASSOCIATE-RJ (transient, local limit).
    pub max_associations: usize,
    /// Free space (MiB) kept on the data volume; below it C-STORE answers A700.
    pub reserve_mb: u64,
    /// Same SOP Instance UID with different content: "keep" the first (newcomer aside under
    /// conflicts/) or "overwrite".
    pub duplicates: DuplicatePolicy,
    /// MiB the conflicting duplicates under conflicts/ may take; past it a conflicting
    /// newcomer is refused (A700) until an admin resolves conflicts.
    pub conflicts_max_mb: u64,
    /// Days the previous versions of edited or deleted instances stay in trash/ (undo works
    /// that long), then they are purged (at start and by an hourly tick while serving). A
    /// fraction is allowed (tests use seconds).
    pub trash_days: f64,
    /// Seconds of silence after which an association is closed.
    pub idle_timeout_s: u64,
    /// ARTIM, seconds: a new DICOM connection has this long to send its A-ASSOCIATE-RQ.
    pub artim_timeout_s: u64,
    /// DICOM connections not yet associated (awaiting their A-ASSOCIATE-RQ or being
    /// rejected) held at once; beyond it the oldest is closed.
    pub max_pending_connections: usize,
    /// Reject associations whose Called AE Title is not ours.
    pub check_called_ae: bool,
    /// zstd level for uncompressed transfer syntaxes; 0 stores them as plain `.dcm`.
    pub zstd_level: i32,
    /// When: "idle" (acknowledge the plain file, compress after 2 s without stores) or
    /// "ingest" (compress while receiving; slower ingest on a small CPU, never a plain copy).
    pub compress: CompressAt,
    /// With "idle": how long after it was received an instance stays a plain `.dcm` (recent
    /// studies are exported and read at the disk's speed), e.g. "30d", "12h", "0s".
    pub compress_after: Span,
    /// Largest PDU we accept, bytes.
    pub max_pdu: u32,
    /// How commit batches are made durable: "auto" (syncfs when the data directory is its own
    /// file system, else fsync), "syncfs" or "fsync".
    pub durability: SyncMode,
    /// DICOM peers: `[[peers]]` tables with `ae_title`, optional `host`, `port`, `rights`.
    pub peers: Vec<PeerConfig>,
    /// Peers given with `--peer` (not a settings-file key).
    #[serde(skip)]
    pub cli_peers: Vec<PeerEntry>,
    /// "learning" (default), "closed" or "open"; see README, "Who may connect".
    pub access: AccessMode,
    /// Seconds the learning period lasts after the data folder's first start (7 days).
    pub learning_period_s: u64,
    /// `[panel]`: front panel display and buttons (see README, "Front panel").
    pub panel: pacsbox_panel::PanelSettings,
    /// `[health]`: where RAID and SMART health are read.
    pub health: pacsbox_health::HealthSettings,
    /// `[web]`: the web page.
    pub web: WebSettings,
    /// Refuse to touch `data_dir` until it is a mount point (the RAID or USB disk), so a missing
    /// volume never fills the SD card; the image sets it.
    pub require_mount: bool,
    /// Announce `_dicom._tcp` and `_http._tcp` over mDNS; off by default so development runs
    /// and tests stay quiet on the LAN, on in the image.
    pub mdns: bool,
    /// Days the audit trail (`DATA/audit/`) is kept; whole days older are removed at start.
    /// 0 keeps everything.
    pub audit_keep_days: u32,
    /// `[audit]`: forwarding of the trail to a syslog collector (docs/audit.md).
    pub audit: AuditSettings,
    /// `[[forward]]` rules: which stored instances go to which peers (docs/forwarding.md).
    pub forward: Vec<ForwardRule>,
    /// `[forwarding]`: associations per peer, the alarm threshold, the longest backoff.
    pub forwarding: ForwardSettings,
    /// `[backup]`: a scheduled `pacsbox backup` while serving (README, "Backup").
    pub backup: crate::backup_schedule::BackupSettings,
    /// `[fetch]`: the other PACS staff may search and fetch from on the web page.
    pub fetch: FetchSettings,
    /// `[media]`: media inserted into the box (docs/media.md).
    pub media: crate::media_watch::MediaSettings,
}

/// `[fetch]`: the clinic's other PACS (a hospital PACS, the previous archive) whose studies
/// the web page searches (C-FIND) and pulls here (C-MOVE to this box's AE title).
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FetchSettings {
    /// AE titles of `[[peers]]` entries with host and port; they must also be allowed to
    /// store here (their C-STOREs bring the studies).
    pub from: Vec<String>,
    /// When a study arrives, fetch this many of the patient's newest earlier studies from
    /// them (0: no prefetch).
    pub prefetch_priors: usize,
}

/// `[audit]`: the trail's copy for the clinic's audit repository (IHE ATNA).
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    /// `host:port` of a syslog collector taking RFC 5425 (syslog over TLS, usually port
    /// 6514); absent: no forwarding.
    pub syslog: Option<String>,
    /// PEM: the CA (or CAs) that signed the collector's certificate. Required with `syslog`:
    /// patient-related records never go to a server that was not verified.
    pub syslog_ca: Option<PathBuf>,
    /// Present the box's own certificate (`DATA/tls/cert.pem`) for mutual TLS.
    pub syslog_client_cert: bool,
}

#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSettings {
    /// Minutes without a request after which a web session ends.
    pub session_idle_minutes: u64,
    /// Hours after login at which a web session ends however busy it is.
    pub session_max_hours: u64,
    /// Threads answering web requests.
    pub workers: usize,
    /// Where the first admin password is read from (made by the appliance's first boot) or
    /// written to, and removed once changed; default `<data_dir>/initial-admin-password`.
    pub initial_password_file: Option<PathBuf>,
    /// Web origins (`https://viewer.clinic.lan`) whose pages may call DICOMweb with a token
    /// (CORS); none by default: only the box's own pages and non-browser clients.
    pub dicomweb_cors_origins: Vec<String>,
    /// Largest STOW-RS upload in MiB (one request; larger ones are refused with 413 before
    /// their body is read).
    pub dicomweb_max_upload_mb: u64,
    /// The prebuilt OHIF viewer (prepared by `web-ui/ohif/install.sh`), served at `/ohif/`;
    /// absent: no OHIF, the study page offers only our own viewer.
    pub ohif_dir: Option<PathBuf>,
}

impl Default for WebSettings {
    fn default() -> Self {
        let web = WebConfig::default();
        WebSettings {
            session_idle_minutes: web.session_idle_timeout.as_secs() / 60,
            session_max_hours: web.session_max_age.as_secs() / 3600,
            workers: web.workers,
            initial_password_file: web.initial_password_file,
            dicomweb_cors_origins: web.dicomweb_cors_origins,
            dicomweb_max_upload_mb: web.max_upload >> 20,
            ohif_dir: web.ohif_dir,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        let scp = ScpConfig::default();
        let archive = ArchiveConfig::default();
        Config {
            data_dir: PathBuf::from("./data"),
            ae_title: scp.ae_title,
            bind: "0.0.0.0".into(),
            dicom_port: 11112,
            http_port: 8080,
            https_port: 8443,
            dicom_tls_port: 2762,
            dicom_tls_ca: None,
            max_associations: scp.max_associations,
            reserve_mb: archive.reserve_bytes >> 20,
            duplicates: archive.duplicates,
            conflicts_max_mb: archive.conflicts_max_bytes >> 20,
            trash_days: archive.trash_days,
            idle_timeout_s: scp.idle_timeout.as_secs(),
            artim_timeout_s: scp.artim_timeout.as_secs(),
            max_pending_connections: scp.max_pending,
            check_called_ae: scp.check_called_ae,
            zstd_level: archive.zstd_level,
            compress: archive.compress,
            compress_after: Span(archive.compress_after),
            max_pdu: scp.max_pdu,
            durability: archive.sync,
            peers: Vec::new(),
            cli_peers: Vec::new(),
            access: AccessMode::default(),
            learning_period_s: 7 * 86_400,
            panel: pacsbox_panel::PanelSettings::default(),
            health: pacsbox_health::HealthSettings::default(),
            web: WebSettings::default(),
            require_mount: false,
            mdns: false,
            // Six years: the longest of the usual rules for access records (HIPAA's
            // documentation retention; Korea's medical records act asks for less).
            audit_keep_days: 6 * 365,
            audit: AuditSettings::default(),
            forward: Vec::new(),
            forwarding: ForwardSettings::default(),
            backup: Default::default(),
            fetch: FetchSettings::default(),
            media: Default::default(),
        }
    }
}

impl Config {
    /// The settings file named by `--config` (or the defaults), with `--data` applied.
    pub fn from_args(args: &DataArgs) -> anyhow::Result<Config> {
        let mut c = Config::load(args.config.as_deref())?;
        if let Some(d) = &args.data {
            c.data_dir = d.clone();
        }
        Ok(c)
    }

    /// Flags win over the file.
    pub fn apply(&mut self, flags: ServeFlags) {
        let ServeFlags {
            ae,
            dicom_port,
            http_port,
            https_port,
            dicom_tls_port,
            dicom_tls_ca,
            bind,
            max_associations,
            reserve_mb,
            duplicates,
            zstd_level,
            compress,
            compress_after,
            durability,
            panel,
            panel_language,
            peers,
            access,
            learning_period_s,
            audit_syslog,
            audit_syslog_ca,
            audit_syslog_client_cert,
        } = flags;
        fn set<T>(slot: &mut T, flag: Option<T>) {
            if let Some(v) = flag {
                *slot = v;
            }
        }
        set(&mut self.ae_title, ae);
        set(&mut self.dicom_port, dicom_port);
        set(&mut self.http_port, http_port);
        set(&mut self.https_port, https_port);
        set(&mut self.dicom_tls_port, dicom_tls_port);
        if dicom_tls_ca.is_some() {
            self.dicom_tls_ca = dicom_tls_ca;
        }
        set(&mut self.bind, bind);
        set(&mut self.max_associations, max_associations);
        set(&mut self.reserve_mb, reserve_mb);
        set(&mut self.duplicates, duplicates);
        set(&mut self.zstd_level, zstd_level);
        set(&mut self.compress, compress);
        set(&mut self.compress_after, compress_after);
        set(&mut self.durability, durability);
        set(&mut self.panel.display, panel);
        set(&mut self.panel.language, panel_language);
        set(&mut self.access, access);
        set(&mut self.learning_period_s, learning_period_s);
        if audit_syslog.is_some() {
            self.audit.syslog = audit_syslog;
        }
        if audit_syslog_ca.is_some() {
            self.audit.syslog_ca = audit_syslog_ca;
        }
        self.audit.syslog_client_cert |= audit_syslog_client_cert;
        self.cli_peers.extend(peers);
    }

    /// The access mode and the fixed peers for the archive's peer table: the settings file's,
    /// then the command line's; a title given twice is an error (which one would apply?).
    pub fn access_settings(&self) -> anyhow::Result<AccessSettings> {
        let mut fixed: Vec<PeerEntry> = Vec::new();
        let from_file = self.peers.iter().map(PeerConfig::entry);
        for entry in from_file.chain(self.cli_peers.iter().cloned().map(Ok)) {
            let entry = entry?;
            anyhow::ensure!(
                !fixed.iter().any(|p| p.ae_title == entry.ae_title),
                "peer {:?} is given twice",
                entry.ae_title
            );
            fixed.push(entry);
        }
        Ok(AccessSettings {
            mode: self.access,
            learning_period_s: self.learning_period_s,
            fixed,
        })
    }

    pub fn archive_config(&self) -> ArchiveConfig {
        ArchiveConfig {
            reserve_bytes: self.reserve_mb << 20,
            duplicates: self.duplicates,
            zstd_level: self.zstd_level,
            compress: self.compress,
            compress_after: self.compress_after.0,
            sync: self.durability,
            conflicts_max_bytes: self.conflicts_max_mb << 20,
            trash_days: self.trash_days,
            forwarding: !self.forward.is_empty(),
        }
    }

    pub fn scp_config(&self) -> ScpConfig {
        ScpConfig {
            ae_title: self.ae_title.clone(),
            max_associations: self.max_associations,
            max_pdu: self.max_pdu,
            idle_timeout: Duration::from_secs(self.idle_timeout_s),
            artim_timeout: Duration::from_secs(self.artim_timeout_s),
            max_pending: self.max_pending_connections,
            check_called_ae: self.check_called_ae,
        }
    }

    pub fn web_config(&self) -> WebConfig {
        WebConfig {
            session_idle_timeout: Duration::from_secs(self.web.session_idle_minutes * 60),
            session_max_age: Duration::from_secs(self.web.session_max_hours.max(1) * 3600),
            workers: self.web.workers,
            initial_password_file: Some(self.initial_password_file()),
            forward_alarm_after: self.forwarding.alarm_after,
            dicomweb_cors_origins: self.web.dicomweb_cors_origins.clone(),
            max_upload: self.web.dicomweb_max_upload_mb.saturating_mul(1 << 20),
            ohif_dir: self.web.ohif_dir.clone(),
        }
    }

    /// Opens (and if need be recovers) the archive these settings describe.
    pub fn open_archive(&self) -> anyhow::Result<Archive> {
        let (archive, report) = Archive::open(&self.data_dir, self.archive_config())
            .with_context(|| format!("opening archive in {}", self.data_dir.display()))?;
        if report.journal_records_replayed + report.temp_files_removed > 0 {
            tracing::warn!(?report, "recovered after an unclean shutdown");
        }
        Ok(archive)
    }

    /// The archive for a one-off command (list, verify, conflicts): without the compression
    /// thread, which would otherwise swap `.dcm` files for `.dcm.zst` under a `verify` that is
    /// walking them after 2 s (a power-cut check on a slow board takes minutes).
    pub fn open_archive_offline(&self) -> anyhow::Result<Archive> {
        let mut c = self.clone();
        c.compress = CompressAt::Ingest;
        c.open_archive()
    }

    /// The web page's certificate (`cert.pem`, `key.pem`; made at first start).
    pub fn tls_dir(&self) -> PathBuf {
        self.data_dir.join("tls")
    }

    /// Where the audit trail is kept.
    pub fn audit_dir(&self) -> PathBuf {
        self.data_dir.join("audit")
    }

    /// The first admin password's file (see `WebSettings::initial_password_file`).
    pub fn initial_password_file(&self) -> PathBuf {
        self.web
            .initial_password_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("initial-admin-password"))
    }

    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let ae = self.ae_title.trim();
        anyhow::ensure!(
            !ae.is_empty()
                && ae.len() <= 16
                && ae.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\\'),
            "AE title {:?} must be 1-16 printable ASCII characters without backslash",
            self.ae_title
        );
        anyhow::ensure!(
            self.max_associations > 0,
            "max_associations must be at least 1"
        );
        anyhow::ensure!(
            (1..=120).contains(&self.artim_timeout_s),
            "artim_timeout_s must be between 1 and 120"
        );
        anyhow::ensure!(
            self.max_pending_connections > 0,
            "max_pending_connections must be at least 1"
        );
        anyhow::ensure!(
            (4096..=16 << 20).contains(&self.max_pdu),
            "max_pdu must be between 4096 and 16 MiB"
        );
        anyhow::ensure!(
            (0..=19).contains(&self.zstd_level),
            "zstd_level must be 0 (store uncompressed) to 19"
        );
        if let Some(target) = &self.audit.syslog {
            anyhow::ensure!(
                self.audit.syslog_ca.is_some(),
                "[audit] syslog = {target:?} needs syslog_ca (--audit-syslog-ca): the CA that \
                 signed the collector's certificate; audit records are never sent unverified"
            );
            anyhow::ensure!(
                target
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0)),
                "[audit] syslog = {target:?}: expected host:port, e.g. audit.clinic.lan:6514"
            );
        }
        let access = self.access_settings()?;
        for p in &access.fixed {
            anyhow::ensure!(
                p.cert != Some(CertRule::Ca) || self.dicom_tls_ca.is_some(),
                "peer {:?} says cert = \"ca\", but no dicom_tls_ca names the clinic CA",
                p.ae_title
            );
        }
        for rule in &self.forward {
            rule.check().map_err(|e| anyhow::anyhow!(e))?;
            for to in &rule.to {
                let reachable = access
                    .fixed
                    .iter()
                    .any(|p| p.ae_title == *to && p.host.is_some() && p.port.is_some());
                anyhow::ensure!(
                    reachable,
                    "forward rule {:?} sends to {to:?}, which is no [[peers]] entry (or --peer) \
                     with host and port",
                    rule.name
                );
            }
        }
        anyhow::ensure!(
            (1..=8).contains(&self.forwarding.associations_per_peer),
            "[forwarding] associations_per_peer must be 1 to 8"
        );
        self.backup.check()?;
        for ae in &self.fetch.from {
            anyhow::ensure!(
                access
                    .fixed
                    .iter()
                    .any(|p| p.ae_title == *ae && p.host.is_some() && p.port.is_some()),
                "[fetch] from names {ae:?}, which is no [[peers]] entry (or --peer) with host \
                 and port"
            );
        }
        self.panel
            .output()
            .map_err(|e| anyhow::anyhow!("panel.display: {e}"))?;
        Ok(())
    }
}

/// A span of time in the settings file and on the command line: a whole number and a unit,
/// `s`, `m`, `h`, `d` or `w` ("30d", "12h", "0s").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Span(pub Duration);

impl std::str::FromStr for Span {
    type Err = String;

    fn from_str(text: &str) -> Result<Span, String> {
        let t = text.trim();
        let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (number, unit) = t.split_at(digits);
        let bad = || format!("{text:?}: expected a number and a unit (s, m, h, d, w), e.g. 30d");
        let n: u64 = number.parse().map_err(|_| bad())?;
        let unit_s = match unit.trim() {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            _ => return Err(bad()),
        };
        n.checked_mul(unit_s)
            .map(|s| Span(Duration::from_secs(s)))
            .ok_or_else(|| format!("{text:?} is too long"))
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0.as_secs();
        // The largest unit that divides it: a default prints as it is written.
        let (n, unit) = [(7 * 86_400, "w"), (86_400, "d"), (3600, "h"), (60, "m")]
            .into_iter()
            .find(|(u, _)| s > 0 && s.is_multiple_of(*u))
            .map_or((s, "s"), |(u, name)| (s / u, name));
        write!(f, "{n}{unit}")
    }
}

impl TryFrom<String> for Span {
    type Error = String;
    fn try_from(s: String) -> Result<Span, String> {
        s.parse()
    }
}

impl From<Span> for String {
    fn from(s: Span) -> String {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn spans_parse_with_a_unit_and_print_back() {
        for (text, secs) in [
            ("30d", 30 * 86_400),
            ("12h", 43_200),
            ("90m", 5400),
            ("0s", 0),
            (" 3s ", 3),
            ("2w", 14 * 86_400),
        ] {
            assert_eq!(text.parse::<Span>(), Ok(Span(Duration::from_secs(secs))));
        }
        for bad in [
            "",
            "30",
            "d",
            "-1d",
            "1.5h",
            "3 days",
            "99999999999999999999w",
        ] {
            assert!(bad.parse::<Span>().is_err(), "{bad:?} accepted");
        }
        assert_eq!(Span(Duration::from_secs(30 * 86_400)).to_string(), "30d");
        assert_eq!(Span(Duration::from_secs(5400)).to_string(), "90m");
        assert_eq!(Span(Duration::ZERO).to_string(), "0s");
        let c: Config = toml::from_str("compress_after = \"12h\"").unwrap();
        assert_eq!(
            c.archive_config().compress_after,
            Duration::from_secs(43_200)
        );
        assert!(toml::from_str::<Config>("compress_after = \"soon\"").is_err());
        assert!(toml::from_str::<Config>("compress_after = 3600").is_err());
        let flags = Serve::try_parse_from(["serve", "--compress-after", "0s"])
            .unwrap()
            .flags;
        let mut c = c;
        c.apply(flags);
        assert_eq!(c.archive_config().compress_after, Duration::ZERO);
        assert!(Serve::try_parse_from(["serve", "--compress-after", "1 month"]).is_err());
    }

    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        flags: ServeFlags,
    }

    #[test]
    fn defaults_are_the_library_crates_defaults() {
        let c = Config::default();
        let archive = ArchiveConfig::default();
        assert_eq!(c.archive_config().reserve_bytes, archive.reserve_bytes);
        assert_eq!(c.archive_config().zstd_level, archive.zstd_level);
        assert_eq!(c.archive_config().sync, archive.sync);
        assert_eq!(c.archive_config().duplicates, archive.duplicates);
        assert_eq!(c.archive_config().compress_after, archive.compress_after);
        let scp = ScpConfig::default();
        assert_eq!(c.scp_config().ae_title, scp.ae_title);
        assert_eq!(c.scp_config().max_pdu, scp.max_pdu);
        assert_eq!(c.scp_config().idle_timeout, scp.idle_timeout);
        assert_eq!(c.scp_config().max_associations, scp.max_associations);
        let web = WebConfig::default();
        assert_eq!(
            c.web_config().session_idle_timeout,
            web.session_idle_timeout
        );
        assert_eq!(c.web_config().workers, web.workers);
    }

    #[test]
    fn flags_override_the_file_with_the_files_spellings() {
        let mut c: Config =
            toml::from_str("durability = \"syncfs\"\nduplicates = \"overwrite\"\nreserve_mb = 7")
                .unwrap();
        let flags = Serve::try_parse_from([
            "serve",
            "--durability",
            "fsync",
            "--duplicates",
            "keep",
            "--ae",
            "CT2",
            "--panel",
            "png:/tmp/p",
            "--panel-language",
            "ko",
        ])
        .unwrap()
        .flags;
        c.apply(flags);
        assert_eq!(c.durability, SyncMode::Fsync);
        assert_eq!(c.duplicates, DuplicatePolicy::Keep);
        assert_eq!(c.ae_title, "CT2");
        assert_eq!(c.panel.display, "png:/tmp/p");
        assert_eq!(c.panel.language, pacsbox_panel::Language::Ko);
        assert!(Serve::try_parse_from(["serve", "--panel-language", "de"]).is_err());
        assert_eq!(c.reserve_mb, 7, "a flag not given leaves the file's value");
        for mode in ["auto", "syncfs", "fsync"] {
            assert!(Serve::try_parse_from(["serve", "--durability", mode]).is_ok());
        }
        let err = Serve::try_parse_from(["serve", "--durability", "sometimes"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("auto") && err.contains("fsync"), "{err}");
        assert!(Serve::try_parse_from(["serve", "--duplicates", "merge"]).is_err());
    }

    #[test]
    fn file_overrides_defaults_and_typos_are_refused() {
        let c: Config =
            toml::from_str("ae_title = \"CTARCH\"\ndicom_port = 104\nduplicates = \"overwrite\"")
                .unwrap();
        assert_eq!(c.ae_title, "CTARCH");
        assert_eq!(c.dicom_port, 104);
        assert_eq!(c.http_port, 8080);
        assert_eq!(c.duplicates, DuplicatePolicy::Overwrite);
        assert!(toml::from_str::<Config>("dicom_prot = 104").is_err());
        let bad = Config {
            ae_title: "MUCH_TOO_LONG_AE_TITLE".into(),
            ..Config::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn forward_rules_need_a_peer_with_an_address() {
        let text = "[[peers]]\nae_title = \"PACS\"\nhost = \"10.0.0.9\"\nport = 104\n\
                    [[peers]]\nae_title = \"CT\"\nrights = \"store\"\n\
                    [[forward]]\nname = \"ct\"\nto = [\"PACS\"]\nmodality = [\"CT\"]\n\
                    mode = \"study\"\nstable_s = 30\n[forwarding]\nalarm_after = 3\n";
        let c: Config = toml::from_str(text).unwrap();
        c.validate().unwrap();
        assert!(
            c.archive_config().forwarding,
            "rules switch the arrivals queue on"
        );
        assert_eq!(c.forwarding.alarm_after, 3);
        assert_eq!(c.forwarding.associations_per_peer, 1, "default");
        let to_ct: Config =
            toml::from_str(&text.replace("to = [\"PACS\"]", "to = [\"CT\"]")).unwrap();
        let err = to_ct.validate().unwrap_err().to_string();
        assert!(err.contains("host and port"), "{err}");
        assert!(!Config::default().archive_config().forwarding);
    }

    #[test]
    fn known_peers_for_c_move() {
        let c: Config =
            toml::from_str("[[peers]]\nae_title = \"WS1\"\nhost = \"10.0.0.5\"\nport = 104\n")
                .unwrap();
        assert_eq!(c.peers.len(), 1);
        assert_eq!(c.peers[0].host.as_deref(), Some("10.0.0.5"));
        assert!(c.validate().is_ok());
        let fixed = c.access_settings().unwrap().fixed;
        assert_eq!(
            fixed[0].rights,
            PeerRights::MOVE_DEST,
            "no rights: a move destination"
        );
        assert_eq!(fixed[0].source, PeerSource::Config);
        let bad: Config =
            toml::from_str("[[peers]]\nae_title = \"\"\nhost = \"h\"\nport = 0\n").unwrap();
        assert!(bad.validate().is_err());
        let dup: Config =
            toml::from_str("[[peers]]\nae_title = \"CT\"\n[[peers]]\nae_title = \"CT\"\n").unwrap();
        assert!(dup.validate().is_err(), "one title twice");
        let ct: Config = toml::from_str(
            "access = \"closed\"\n[[peers]]\nae_title = \"CT\"\nrights = \"store\"\n",
        )
        .unwrap();
        let s = ct.access_settings().unwrap();
        assert_eq!(s.mode, AccessMode::Closed);
        assert_eq!(s.fixed[0].rights, PeerRights::STORE);
        assert!(
            toml::from_str::<Config>("[[peers]]\nae_title = \"CT\"\nright = \"all\"\n").is_err()
        );
    }

    #[test]
    fn peer_flags_parse_and_bad_ones_say_why() {
        let p = parse_peer("WS1@127.0.0.1:11113:query,retrieve,move").unwrap();
        assert_eq!(p.ae_title, "WS1");
        assert_eq!(p.host.as_deref(), Some("127.0.0.1"));
        assert_eq!(p.port, Some(11113));
        assert_eq!(p.rights.to_string(), "query,retrieve,move");
        let p = parse_peer("CT1:store").unwrap();
        assert_eq!((p.host, p.port, p.rights), (None, None, PeerRights::STORE));
        let p = parse_peer("WS2@ws2.clinic.lan:all").unwrap();
        assert_eq!(p.rights, PeerRights::ALL);
        let p = parse_peer("WS2@ws2.clinic.lan:query").unwrap();
        assert_eq!((p.host.as_deref(), p.port), (Some("ws2.clinic.lan"), None));
        let p = parse_peer("V6@[::1]:104:all").unwrap();
        assert_eq!((p.host.as_deref(), p.port), (Some("::1"), Some(104)));
        assert!(!p.tls && p.cert.is_none());
        let p = parse_peer("WS3@10.0.0.7:2762:move:tls").unwrap();
        assert_eq!((p.port, p.tls, p.cert), (Some(2762), true, None));
        let fp = vec!["ab"; 32].join(":");
        let p = parse_peer(&format!("CT2:store:cert={fp}")).unwrap();
        assert_eq!(p.rights, PeerRights::STORE);
        assert_eq!(p.cert, Some(CertRule::Sha256("AB".repeat(32))));
        assert!(p.needs_tls() && !p.tls);
        let p = parse_peer(&format!("CT2@h:104:all:cert={}:tls", "0F".repeat(32))).unwrap();
        assert_eq!((p.port, p.tls), (Some(104), true));
        assert_eq!(p.cert, Some(CertRule::Sha256("0F".repeat(32))));
        let p = parse_peer("CT3:all:tls:cert=ca").unwrap();
        assert_eq!((p.tls, p.cert), (true, Some(CertRule::Ca)));
        for (bad, why) in [
            ("CT1:store:cert=abcd", "SHA-256 fingerprint"),
            ("CT1:tls", "expected AE[@host[:port]]:rights"),
            ("CT1", "expected AE[@host[:port]]:rights"),
            ("CT1:delete", "unknown right \"delete\""),
            (":store", "AE title"),
            ("MUCH_TOO_LONG_AE_TITLE:store", "AE title"),
            ("WS1@h:0:move", "port \"0\""),
            ("WS1@h:http:move", "port \"http\""),
            ("WS1@:store", "empty host"),
            ("CT1:", "no rights"),
        ] {
            let err = parse_peer(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        let flags = Serve::try_parse_from([
            "serve",
            "--peer",
            "A:store",
            "--peer",
            "B:query",
            "--access",
            "closed",
            "--learning-period-s",
            "5",
        ])
        .unwrap()
        .flags;
        let mut c = Config::default();
        c.apply(flags);
        let s = c.access_settings().unwrap();
        assert_eq!(s.mode, AccessMode::Closed);
        assert_eq!(s.learning_period_s, 5);
        assert_eq!(s.fixed.len(), 2);
        assert_eq!(s.fixed[1].source, PeerSource::Cli);
        let err = Serve::try_parse_from(["serve", "--peer", "A:delete"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("unknown right"), "{err}");
        c.cli_peers.push(parse_peer("A:all").unwrap());
        assert!(
            c.access_settings()
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
        assert!(Serve::try_parse_from(["serve", "--access", "ajar"]).is_err());
    }

    #[test]
    fn audit_forwarding_needs_a_ca_and_a_port() {
        let c: Config =
            toml::from_str("[audit]\nsyslog = \"127.0.0.1:6514\"\nsyslog_ca = \"/etc/ca.pem\"\n")
                .unwrap();
        assert!(c.validate().is_ok());
        assert!(!c.audit.syslog_client_cert);
        let no_ca: Config = toml::from_str("[audit]\nsyslog = \"h:6514\"\n").unwrap();
        assert!(
            no_ca
                .validate()
                .unwrap_err()
                .to_string()
                .contains("syslog_ca")
        );
        let no_port: Config =
            toml::from_str("[audit]\nsyslog = \"h\"\nsyslog_ca = \"c\"\n").unwrap();
        assert!(no_port.validate().is_err());
        assert!(toml::from_str::<Config>("[audit]\nsyslg = \"h:1\"\n").is_err());
        let flags = Serve::try_parse_from([
            "serve",
            "--audit-syslog",
            "[::1]:6514",
            "--audit-syslog-ca",
            "/tmp/ca.pem",
            "--audit-syslog-client-cert",
        ])
        .unwrap()
        .flags;
        let mut c = Config::default();
        c.apply(flags);
        assert_eq!(c.audit.syslog.as_deref(), Some("[::1]:6514"));
        assert_eq!(c.audit.syslog_ca, Some(PathBuf::from("/tmp/ca.pem")));
        assert!(c.audit.syslog_client_cert);
        assert!(c.validate().is_ok());
        assert!(Config::default().validate().is_ok(), "off by default");
    }

    #[test]
    fn panel_and_health_tables_have_defaults_and_refuse_typos() {
        let c: Config = toml::from_str(
            "[panel]\ndisplay = \"ssd1306:/dev/i2c-1\"\nbuttons = true\npin_next = 5\n\
             [health]\nmdstat_path = \"/tmp/mdstat\"\nsmartctl = \"\"\n",
        )
        .unwrap();
        assert_eq!(c.panel.pin_next, 5);
        assert_eq!(c.panel.pin_select, 27);
        assert_eq!(c.panel.shutdown_command, ["systemctl", "poweroff"]);
        assert_eq!(
            c.panel.language,
            pacsbox_panel::Language::En,
            "English by default"
        );
        let ko: Config = toml::from_str("[panel]\nlanguage = \"ko\"\n").unwrap();
        assert_eq!(ko.panel.language, pacsbox_panel::Language::Ko);
        assert!(toml::from_str::<Config>("[panel]\nlanguage = \"kr\"\n").is_err());
        assert_eq!(c.health.mdstat_path, PathBuf::from("/tmp/mdstat"));
        assert!(c.validate().is_ok());
        assert!(toml::from_str::<Config>("[panel]\npin_nxt = 5\n").is_err());
        let bad: Config = toml::from_str("[panel]\ndisplay = \"hdmi\"\n").unwrap();
        assert!(bad.validate().is_err());
    }
}
