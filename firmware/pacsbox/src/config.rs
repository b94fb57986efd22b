//! Settings: built-in defaults, overridden by a TOML file (`--config`), overridden by flags.

use std::path::{Path, PathBuf};

use anyhow::Context;
use pacsbox_archive::{DuplicatePolicy, SyncMode};
use pacsbox_dicom::KnownPeer;
use serde::Deserialize;

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
    /// Concurrent DICOM associations; beyond it, A-ASSOCIATE-RJ (transient, local limit).
    pub max_associations: usize,
    /// Free space (MiB) kept on the data volume; below it C-STORE answers A700.
    pub reserve_mb: u64,
    /// Same SOP Instance UID with different content: "keep" the first (newcomer aside under
    /// conflicts/) or "overwrite".
    pub duplicates: DuplicatePolicy,
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
    /// Largest PDU we accept, bytes.
    pub max_pdu: u32,
    /// How commit batches are made durable: "auto" (syncfs when the data directory is its own
    /// file system, else fsync), "syncfs" or "fsync".
    pub durability: SyncMode,
    /// DICOM nodes C-MOVE may send to: `[[peers]]` tables with `ae_title`, `host`, `port`.
    pub peers: Vec<KnownPeer>,
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
}

#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSettings {
    /// Minutes without a request after which a web session ends.
    pub session_idle_minutes: u64,
    /// Threads answering web requests.
    pub workers: usize,
    /// Where the first admin password is read from (made by the appliance's first boot) or
    /// written to, and removed once changed; default `<data_dir>/initial-admin-password`.
    pub initial_password_file: Option<PathBuf>,
}

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings {
            session_idle_minutes: 30,
            workers: 4,
            initial_password_file: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            ae_title: "PACSBOX".into(),
            bind: "0.0.0.0".into(),
            dicom_port: 11112,
            http_port: 8080,
            max_associations: 16,
            reserve_mb: 512,
            duplicates: DuplicatePolicy::Keep,
            idle_timeout_s: 120,
            artim_timeout_s: 30,
            max_pending_connections: 64,
            check_called_ae: false,
            zstd_level: 2,
            max_pdu: 128 * 1024,
            durability: SyncMode::Auto,
            peers: Vec::new(),
            panel: pacsbox_panel::PanelSettings::default(),
            health: pacsbox_health::HealthSettings::default(),
            web: WebSettings::default(),
            require_mount: false,
            mdns: false,
        }
    }
}

impl Config {
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
        for p in &self.peers {
            anyhow::ensure!(
                !p.ae_title.trim().is_empty() && p.ae_title.len() <= 16 && p.port > 0,
                "peer {:?}: AE title must be 1-16 characters and port non-zero",
                p.ae_title
            );
        }
        self.panel
            .output()
            .map_err(|e| anyhow::anyhow!("panel.display: {e}"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn known_peers_for_c_move() {
        let c: Config =
            toml::from_str("[[peers]]\nae_title = \"WS1\"\nhost = \"10.0.0.5\"\nport = 104\n")
                .unwrap();
        assert_eq!(c.peers.len(), 1);
        assert_eq!(c.peers[0].host, "10.0.0.5");
        assert!(c.validate().is_ok());
        let bad: Config =
            toml::from_str("[[peers]]\nae_title = \"\"\nhost = \"h\"\nport = 0\n").unwrap();
        assert!(bad.validate().is_err());
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
        assert_eq!(c.health.mdstat_path, PathBuf::from("/tmp/mdstat"));
        assert!(c.validate().is_ok());
        assert!(toml::from_str::<Config>("[panel]\npin_nxt = 5\n").is_err());
        let bad: Config = toml::from_str("[panel]\ndisplay = \"hdmi\"\n").unwrap();
        assert!(bad.validate().is_err());
    }
}
