//! `pacsbox`: the appliance binary. Parses the command line, loads settings, and wires the
//! archive, the DICOM services, the web page and the front panel together. Nothing else lives
//! here.

mod appliance;
mod config;
mod errlog;
mod status;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use pacsbox_archive::{Archive, ArchiveConfig, DuplicatePolicy, InstanceRecord, SyncMode};
use pacsbox_dicom::{DicomServer, ScpConfig};

use crate::config::Config;

#[derive(Parser)]
#[command(name = "pacsbox", version, about = "DICOM archive appliance")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct DataArgs {
    /// TOML settings file (see README for every key).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data folder (overrides data_dir of the config file).
    #[arg(long)]
    data: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance: DICOM SCP and HTTP status.
    Serve {
        #[command(flatten)]
        data: DataArgs,
        /// Our AE title.
        #[arg(long)]
        ae: Option<String>,
        #[arg(long)]
        dicom_port: Option<u16>,
        #[arg(long)]
        http_port: Option<u16>,
        /// Address to listen on.
        #[arg(long)]
        bind: Option<String>,
        #[arg(long)]
        max_associations: Option<usize>,
        /// Free space to keep on the data volume, MiB.
        #[arg(long)]
        reserve_mb: Option<u64>,
        /// keep | overwrite
        #[arg(long)]
        duplicates: Option<String>,
        /// zstd level for uncompressed syntaxes (0 = store plain .dcm).
        #[arg(long)]
        zstd_level: Option<i32>,
        /// auto | syncfs | fsync
        #[arg(long)]
        durability: Option<String>,
        /// Front panel display: none | png:DIR | ssd1306:/dev/i2c-1.
        #[arg(long)]
        panel: Option<String>,
    },
    /// Print every indexed instance as TSV: SOP UID, study UID, series UID, transfer syntax,
    /// file, patient name.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Print the indexed instances of patients whose name matches (wildcards * ?).
    Find {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        name: String,
    },
    /// Check that index and files agree; exit 1 if not.
    Verify {
        #[command(flatten)]
        data: DataArgs,
        /// Also re-hash every file and compare with the hash recorded at ingest.
        #[arg(long)]
        checksums: bool,
    },
    /// Rebuild the index from the files alone.
    Reindex {
        #[command(flatten)]
        data: DataArgs,
    },
}

fn main() -> ExitCode {
    use tracing_subscriber::prelude::*;
    let errors = errlog::ErrorLog::default();
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        // OpenJPEG narrates every tile at info level.
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,jpeg2k=warn")),
                ),
        )
        .with(errors.clone())
        .init();
    match run(Cli::parse(), errors) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pacsbox: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn settings(data: &DataArgs) -> anyhow::Result<Config> {
    let mut c = Config::load(data.config.as_deref())?;
    if let Some(d) = &data.data {
        c.data_dir = d.clone();
    }
    Ok(c)
}

fn archive_config(c: &Config) -> ArchiveConfig {
    ArchiveConfig {
        reserve_bytes: c.reserve_mb << 20,
        duplicates: c.duplicates,
        zstd_level: c.zstd_level,
        sync: c.durability,
    }
}

fn open(c: &Config) -> anyhow::Result<Archive> {
    let (archive, report) = Archive::open(&c.data_dir, archive_config(c))
        .with_context(|| format!("opening archive in {}", c.data_dir.display()))?;
    if report.journal_records_replayed + report.temp_files_removed > 0 {
        tracing::warn!(?report, "recovered after an unclean shutdown");
    }
    Ok(archive)
}

fn run(cli: Cli, errors: errlog::ErrorLog) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve {
            data,
            ae,
            dicom_port,
            http_port,
            bind,
            max_associations,
            reserve_mb,
            duplicates,
            zstd_level,
            durability,
            panel,
        } => {
            let mut c = settings(&data)?;
            if let Some(v) = ae {
                c.ae_title = v;
            }
            if let Some(v) = dicom_port {
                c.dicom_port = v;
            }
            if let Some(v) = http_port {
                c.http_port = v;
            }
            if let Some(v) = bind {
                c.bind = v;
            }
            if let Some(v) = max_associations {
                c.max_associations = v;
            }
            if let Some(v) = reserve_mb {
                c.reserve_mb = v;
            }
            if let Some(v) = zstd_level {
                c.zstd_level = v;
            }
            if let Some(v) = durability {
                c.durability = match v.as_str() {
                    "auto" => SyncMode::Auto,
                    "syncfs" => SyncMode::Syncfs,
                    "fsync" => SyncMode::Fsync,
                    other => {
                        anyhow::bail!("--durability must be auto, syncfs or fsync, not {other:?}")
                    }
                };
            }
            if let Some(v) = panel {
                c.panel.display = v;
            }
            if let Some(v) = duplicates {
                c.duplicates = match v.as_str() {
                    "keep" => DuplicatePolicy::Keep,
                    "overwrite" => DuplicatePolicy::Overwrite,
                    other => anyhow::bail!("--duplicates must be keep or overwrite, not {other:?}"),
                };
            }
            c.validate()?;
            serve(c, errors)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::List { data } => {
            let archive = open(&settings(&data)?)?;
            let mut rows = Vec::new();
            archive
                .index()
                .for_each_instance(|sop, rec| rows.push((sop.to_owned(), rec)))?;
            print_rows(rows)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Find { data, name } => {
            let archive = open(&settings(&data)?)?;
            print_rows(archive.index().instances_by_name(&name)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { data, checksums } => {
            let archive = open(&settings(&data)?)?;
            let report = archive.verify(checksums)?;
            println!(
                "indexed {}  files {}  missing {}  unindexed {}  checksum mismatches {}",
                report.indexed,
                report.files,
                report.missing_files.len(),
                report.unindexed_files.len(),
                report.checksum_mismatches.len()
            );
            for m in &report.missing_files {
                println!("missing file: {m}");
            }
            for u in &report.unindexed_files {
                println!("unindexed file: {u}");
            }
            for c in &report.checksum_mismatches {
                println!("checksum mismatch: {c}");
            }
            Ok(if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Reindex { data } => {
            let c = settings(&data)?;
            let n = pacsbox_archive::reindex(&c.data_dir)
                .map_err(|e| anyhow::anyhow!("reindexing {}: {e}", c.data_dir.display()))?;
            println!("indexed {n} instances");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_rows(rows: Vec<(String, InstanceRecord)>) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (sop, rec) in rows {
        writeln!(
            out,
            "{sop}\t{}\t{}\t{}\t{}\t{}",
            rec.study_uid, rec.series_uid, rec.transfer_syntax, rec.rel_path, rec.patient_name
        )?;
    }
    out.flush()?;
    Ok(())
}

fn serve(c: Config, errors: errlog::ErrorLog) -> anyhow::Result<()> {
    raise_open_file_limit();
    if appliance::data_volume_missing(&c) {
        wait_for_volume_with_panel(&c)?;
    }
    std::fs::create_dir_all(&c.data_dir)
        .with_context(|| format!("creating data folder {}", c.data_dir.display()))?;
    let archive = open(&c)?;
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
    let scp = DicomServer::new(
        archive.clone(),
        ScpConfig {
            ae_title: c.ae_title.clone(),
            max_associations: c.max_associations,
            max_pdu: c.max_pdu,
            idle_timeout: Duration::from_secs(c.idle_timeout_s),
            artim_timeout: Duration::from_secs(c.artim_timeout_s),
            max_pending: c.max_pending_connections,
            check_called_ae: c.check_called_ae,
            peers: c.peers.clone(),
        },
    );
    let http = pacsbox_web::listen(&http_addr, Default::default())?.server;
    let dicom_accepting = Arc::new(AtomicBool::new(false));
    let source = Arc::new(status::Status {
        archive: archive.clone(),
        scp: scp.status(),
        config: c.clone(),
        started: Instant::now(),
        health: (&c.health).into(),
        dicom_accepting: dicom_accepting.clone(),
        errors,
    });
    let (web, initial_password) = pacsbox_web::Web::new(
        archive.clone(),
        source.clone(),
        pacsbox_web::WebConfig {
            session_idle_timeout: Duration::from_secs(c.web.session_idle_minutes * 60),
            workers: c.web.workers,
            initial_password_file: Some(c.initial_password_file()),
        },
    )
    .context("setting up the web page")?;
    if let Some(p) = &initial_password {
        tracing::info!(
            user = "admin",
            password = p.as_str(),
            file = %c.initial_password_file().display(),
            "first start: web login created; the password must be changed at first login"
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
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(dicom_addr)
            .await
            .with_context(|| format!("listening for DICOM on {dicom_addr}"))?;
        tracing::info!(
            ae_title = c.ae_title,
            dicom = %dicom_addr,
            http = %http_addr,
            data = %data_dir.display(),
            "pacsbox serving"
        );
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down: finishing running associations");
            let _ = tx.send(true);
        });
        dicom_accepting.store(true, Ordering::Relaxed);
        let presence = appliance::Presence::start(&c);
        tokio::spawn(appliance::watchdog());
        let served = scp.serve(listener, rx).await;
        presence.stop();
        dicom_accepting.store(false, Ordering::Relaxed);
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
    drop(archive);
    tracing::info!("stopped cleanly");
    Ok(())
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

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}
