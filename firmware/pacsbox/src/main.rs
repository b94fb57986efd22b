//! `pacsbox`: the appliance binary. Parses the command line and runs one command; `serve.rs`
//! wires the archive, the DICOM services, the web page and the front panel together,
//! `config.rs` turns the settings file and the flags into settings.

mod appliance;
mod backup_schedule;
mod config;
mod errlog;
mod media;
mod media_watch;
mod serve;
mod status;
mod tls;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pacsbox_archive::InstanceRecord;
use pacsbox_archive::edit::{Actor, PatientFields, Request, StudyFields, Target};

use crate::config::{Config, DataArgs, ServeFlags};

#[derive(Parser)]
#[command(name = "pacsbox", version, about = "DICOM archive appliance")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance: DICOM SCP and HTTP status.
    Serve {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        flags: ServeFlags,
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
    /// Print the conflicting duplicates kept aside as TSV: file in conflicts/, SOP UID, bytes,
    /// received (Unix seconds), sender AE, archived study UID, archived patient name.
    Conflicts {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Write studies as DICOM media (PS3.10 file-set with DICOMDIR) into DIR, optionally also
    /// as a ZIP and an ISO 9660 image (xorriso); box stopped. Exit 1 if an instance was left out.
    Export {
        #[command(flatten)]
        data: DataArgs,
        /// Study Instance UIDs.
        #[arg(long, required = true, num_args = 1..)]
        study: Vec<String>,
        /// An empty or new folder.
        #[arg(long)]
        to: PathBuf,
        #[arg(long)]
        zip: Option<PathBuf>,
        #[arg(long)]
        iso: Option<PathBuf>,
        /// keep (as stored) or uncompressed (explicit VR little endian).
        #[arg(long, default_value = "keep")]
        syntax: pacsbox_media::Syntax,
    },
    /// Import DICOM media: a folder (mounted CD/DVD/USB) or a ZIP, through the store path;
    /// box stopped. Exit 1 if any file failed.
    Import {
        #[command(flatten)]
        data: DataArgs,
        path: PathBuf,
        /// Only these studies (Study Instance UIDs).
        #[arg(long)]
        study: Vec<String>,
        /// List the studies found and import nothing.
        #[arg(long)]
        list: bool,
        /// The clinic's Patient ID for these studies; the original is kept in Other Patient
        /// IDs Sequence (0010,1002).
        #[arg(long)]
        reconcile_patient_id: Option<String>,
    },
    /// Rebuild the index from the files alone.
    Reindex {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Correct a patient's demographics in every study of that patient (stopped box).
    EditPatient {
        #[command(flatten)]
        data: DataArgs,
        /// The patient, by Patient ID.
        #[arg(long)]
        patient: String,
        #[command(flatten)]
        fields: PatientArgs,
    },
    /// Correct a study's attributes (stopped box).
    EditStudy {
        #[command(flatten)]
        data: DataArgs,
        /// Study Instance UID.
        #[arg(long)]
        study: String,
        #[command(flatten)]
        fields: StudyArgs,
    },
    /// Move a study to another patient (it takes that patient's ID, name, birth date, sex).
    Move {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        study: String,
        /// Patient ID of the patient it belongs to.
        #[arg(long)]
        to_patient: String,
    },
    /// Merge two patients: every study of --from moves to --into.
    Merge {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        from: String,
        #[arg(long)]
        into: String,
    },
    /// Split a series out of its study into a new study (new Study Instance UID), optionally
    /// under another patient.
    Split {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        series: String,
        /// Patient ID of the patient the new study belongs to (default: the same patient).
        #[arg(long)]
        to_patient: Option<String>,
    },
    /// Delete an instance, series, study or patient to the trash (restorable until purged).
    Delete {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Undo an operation: the exact previous files come back from the trash.
    Undo {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        operation: u64,
    },
    /// Print the operations history as TSV, newest first: number, time (Unix), user, address,
    /// kind, target, instances, undone by, changes.
    History {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Remove expired previous versions from the trash (or, with --all, every one now).
    Purge {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        all: bool,
    },
    /// Anonymize a study (PS3.15 Annex E Basic Profile) into a ZIP or as a new study in the
    /// archive (with `serve` stopped: the archive is opened here). Exit 1 if any instance could
    /// not be anonymized or may still show the patient in its pixels.
    Anonymize {
        #[command(flatten)]
        data: DataArgs,
        /// Study Instance UID of the study to anonymize.
        #[arg(long)]
        study: String,
        /// Write the anonymized study to this ZIP file.
        #[arg(
            long,
            conflicts_with = "into_archive",
            required_unless_present = "into_archive"
        )]
        out: Option<std::path::PathBuf>,
        /// Store the anonymized study in the archive as a new study.
        #[arg(long)]
        into_archive: bool,
        /// Pseudonym: the new Patient's Name (printable ASCII, `^` between components).
        #[arg(long)]
        name: String,
        /// Pseudonym: the new Patient ID.
        #[arg(long)]
        id: String,
        /// Retain Longitudinal Temporal Information with Full Dates Option.
        #[arg(long)]
        retain_dates: bool,
        /// Retain Device Identity Option.
        #[arg(long)]
        retain_device: bool,
        /// Clean Descriptors Option: descriptions kept, cleaned of the patient's name and IDs.
        #[arg(long)]
        keep_descriptions: bool,
    },
    /// C-ECHO a DICOM peer (an AE of the peer table, or AE@host:port) and print the round
    /// trip; exit 1 if it does not answer success.
    Echo {
        #[command(flatten)]
        data: DataArgs,
        peer: String,
    },
    /// Another PACS's studies: without --study, a study-level C-FIND there (TSV: study UID,
    /// patient ID, name, study date, modalities, description, images); with --study, a C-MOVE
    /// of each to this box's AE title, so `serve` must be running to receive them (and PEER
    /// allowed to store here). PEER: a [[peers]] entry with host and port, or AE@host:port.
    Fetch {
        #[command(flatten)]
        data: DataArgs,
        peer: String,
        /// Study Instance UID to pull (repeatable).
        #[arg(long)]
        study: Vec<String>,
        /// C-FIND matching: `KIM*`, `^Gil*`.
        #[arg(long, default_value = "")]
        patient_name: String,
        #[arg(long, default_value = "")]
        patient_id: String,
        /// `YYYYMMDD` or a range `YYYYMMDD-YYYYMMDD`.
        #[arg(long, default_value = "")]
        date: String,
        #[arg(long, default_value = "")]
        accession: String,
        #[arg(long, default_value = "")]
        modality: String,
    },
    /// The forwarding queue: per peer from the running box's /status.json, or, when it is
    /// not running, per study from the index (TSV: peer, study UID, instances, attempts, next
    /// try, last error).
    ForwardStatus {
        #[command(flatten)]
        data: DataArgs,
        /// The running box's HTTP port, if not the settings file's.
        #[arg(long)]
        http_port: Option<u16>,
    },
    /// Copy the archive's files to DIR (a USB disk, a mounted share): incremental, each copy
    /// read back and compared by hash, resumable; DIR/COMPLETE is written only when the copy
    /// is whole. Runs while `serve` runs.
    Backup {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        to: PathBuf,
    },
    /// Bring back what a delete operation took (`--operation N`, box stopped), or restore a
    /// complete backup onto an empty data folder (`--from DIR`: hashes checked, then the index
    /// rebuilt from the files).
    Restore {
        #[command(flatten)]
        data: DataArgs,
        /// The delete's operation number (`pacsbox history`).
        #[arg(long, conflicts_with = "from", required_unless_present = "from")]
        operation: Option<u64>,
        /// A backup folder made by `pacsbox backup`.
        #[arg(long)]
        from: Option<PathBuf>,
    },
    /// The audit trail: check its hash chain, or export records as CSV.
    Audit {
        #[command(subcommand)]
        action: AuditCommand,
    },
}

/// Patient attributes to set; absent ones stay, an empty one is cleared.
#[derive(clap::Args)]
struct PatientArgs {
    /// Patient's Name as DICOM writes it: FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX, with up to three
    /// groups (alphabetic=ideographic=phonetic).
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    id: Option<String>,
    #[arg(long)]
    issuer: Option<String>,
    /// YYYYMMDD
    #[arg(long)]
    birth_date: Option<String>,
    /// M, F or O
    #[arg(long)]
    sex: Option<String>,
}

/// Study attributes to set; absent ones stay, an empty one is cleared.
#[derive(clap::Args)]
struct StudyArgs {
    #[arg(long)]
    accession: Option<String>,
    #[arg(long)]
    description: Option<String>,
    #[arg(long)]
    referring_physician: Option<String>,
    /// YYYYMMDD
    #[arg(long)]
    date: Option<String>,
    /// HHMMSS
    #[arg(long)]
    time: Option<String>,
    #[arg(long)]
    study_id: Option<String>,
}

/// Exactly one of these.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct TargetArgs {
    #[arg(long)]
    instance: Option<String>,
    #[arg(long)]
    series: Option<String>,
    #[arg(long)]
    study: Option<String>,
    /// Patient ID.
    #[arg(long)]
    patient: Option<String>,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every record's hash and link; name each edited, removed or inserted record and
    /// exit 1 if there is one.
    Verify {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Print matching records as CSV, newest first.
    Export {
        #[command(flatten)]
        data: DataArgs,
        /// Web user or calling AE title (substring, any case).
        #[arg(long, default_value = "")]
        actor: String,
        /// Patient ID or name, or study UID (substring, any case).
        #[arg(long, default_value = "")]
        patient: String,
        #[arg(long, default_value = "")]
        action: String,
        /// First day, YYYY-MM-DD (UTC).
        #[arg(long, default_value = "")]
        from: String,
        /// Last day, YYYY-MM-DD (UTC).
        #[arg(long, default_value = "")]
        to: String,
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

fn run(cli: Cli, errors: errlog::ErrorLog) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { data, flags } => {
            let mut c = Config::from_args(&data)?;
            c.apply(flags);
            c.validate()?;
            serve::serve(c, errors)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::List { data } => {
            let archive = Config::from_args(&data)?.open_archive_offline()?;
            let mut rows = Vec::new();
            archive
                .index()
                .for_each_instance(|sop, rec| rows.push((sop.to_owned(), rec)))?;
            print_rows(rows)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Find { data, name } => {
            let archive = Config::from_args(&data)?.open_archive_offline()?;
            print_rows(archive.index().instances_by_name(&name)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { data, checksums } => {
            let archive = Config::from_args(&data)?.open_archive_offline()?;
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
        Command::Conflicts { data } => {
            use std::io::Write;
            let archive = Config::from_args(&data)?.open_archive_offline()?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for k in archive.conflicts()? {
                let (study, patient) = k
                    .archived
                    .map(|a| (a.study_uid, a.patient_name))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}\t{study}\t{patient}",
                    k.name, k.sop_instance_uid, k.size, k.received_unix, k.source_ae
                )?;
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit {
            action: AuditCommand::Verify { data },
        } => {
            let dir = Config::from_args(&data)?.audit_dir();
            let report = pacsbox_audit::verify(&dir)?;
            println!(
                "{} records in {} files (seq {}..{})",
                report.records,
                report.files,
                report.first_seq.map_or("-".into(), |s| s.to_string()),
                report.last_seq.map_or("-".into(), |s| s.to_string()),
            );
            for p in &report.problems {
                println!("{p}");
            }
            Ok(if report.problems.is_empty() {
                println!("chain intact");
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Audit {
            action:
                AuditCommand::Export {
                    data,
                    actor,
                    patient,
                    action,
                    from,
                    to,
                },
        } => {
            let dir = Config::from_args(&data)?.audit_dir();
            let filter = pacsbox_audit::Filter {
                actor,
                patient,
                action,
                from,
                to,
            };
            let rows = pacsbox_audit::read(&dir, &filter, usize::MAX)?;
            print!("{}", pacsbox_audit::to_csv(&rows));
            Ok(ExitCode::SUCCESS)
        }
        Command::EditPatient {
            data,
            patient,
            fields: f,
        } => operate(
            &data,
            Request::EditPatient {
                patient,
                fields: PatientFields {
                    name: f.name,
                    id: f.id,
                    issuer: f.issuer,
                    birth_date: f.birth_date,
                    sex: f.sex,
                },
            },
        ),
        Command::EditStudy {
            data,
            study,
            fields: f,
        } => operate(
            &data,
            Request::EditStudy {
                study,
                fields: StudyFields {
                    accession: f.accession,
                    description: f.description,
                    referring_physician: f.referring_physician,
                    date: f.date,
                    time: f.time,
                    study_id: f.study_id,
                },
            },
        ),
        Command::Move {
            data,
            study,
            to_patient,
        } => operate(&data, Request::MoveStudy { study, to_patient }),
        Command::Merge { data, from, into } => operate(&data, Request::Merge { from, into }),
        Command::Split {
            data,
            series,
            to_patient,
        } => operate(&data, Request::SplitSeries { series, to_patient }),
        Command::Delete { data, target: t } => {
            let target = match (t.instance, t.series, t.study, t.patient) {
                (Some(u), ..) => Target::Instance(u),
                (_, Some(u), ..) => Target::Series(u),
                (_, _, Some(u), _) => Target::Study(u),
                (_, _, _, Some(p)) => Target::Patient(p),
                _ => {
                    anyhow::bail!("name what to delete: --instance, --series, --study or --patient")
                }
            };
            operate(&data, Request::Delete(target))
        }
        Command::Restore {
            data,
            operation: Some(operation),
            ..
        } => {
            let archive = Config::from_args(&data)?.open_archive_offline()?;
            match archive.operation(operation)? {
                Some(op) if op.request.kind() == "delete" => {}
                Some(op) => anyhow::bail!(
                    "operation {operation} is a {}, not a delete: use `pacsbox undo`",
                    op.request.kind()
                ),
                None => anyhow::bail!("no operation {operation}"),
            }
            drop(archive);
            operate(&data, Request::Undo(operation))
        }
        Command::Undo { data, operation } => operate(&data, Request::Undo(operation)),
        Command::History { data, limit } => {
            use std::io::Write;
            let archive = Config::from_args(&data)?.open_archive_offline()?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for op in archive.operations(limit)? {
                let changes: Vec<String> = op
                    .values
                    .iter()
                    .map(|(n, b, a)| format!("{n}: {b} -> {a}"))
                    .collect();
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    op.id,
                    op.unix,
                    op.user,
                    op.address,
                    op.kind,
                    op.target,
                    op.instances,
                    op.undone_by.map(|u| u.to_string()).unwrap_or_default(),
                    changes.join("; ")
                )?;
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Purge { data, all } => {
            let c = Config::from_args(&data)?;
            let archive = c.open_archive_offline()?;
            let audit = pacsbox_audit::Audit::open(&c.audit_dir(), c.audit_keep_days)?;
            let report = archive.purge_trash(all.then_some(0))?;
            audit.record(pacsbox_web::audit::purge_event(
                &report,
                &cli_user(),
                "local",
            ));
            audit.flush();
            println!(
                "purged {} operation(s): {} file(s), {} bytes",
                report.operations, report.files, report.bytes
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Anonymize {
            data,
            study,
            out,
            into_archive,
            name,
            id,
            retain_dates,
            retain_device,
            keep_descriptions,
        } => {
            let opts = pacsbox_archive::deid::Options {
                retain_dates,
                retain_device,
                clean_descriptors: keep_descriptions,
                patient_name: name,
                patient_id: id,
            };
            anonymize(&data, &study, out, into_archive, &opts)
        }
        Command::Backup { data, to } => {
            let c = Config::from_args(&data)?;
            let r = pacsbox_archive::backup::backup(&c.data_dir, &to, pacsbox_audit::now_unix())
                .with_context(|| {
                    format!(
                        "backing up to {} (not complete; run it again)",
                        to.display()
                    )
                })?;
            println!(
                "backup complete: {} files, {} copied ({} bytes), {} removed",
                r.files, r.copied, r.bytes_copied, r.removed
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore {
            data,
            operation: None,
            from,
        } => {
            let from = from.context("give --operation N or --from DIR")?;
            let c = Config::from_args(&data)?;
            std::fs::create_dir_all(&c.data_dir)
                .with_context(|| format!("creating {}", c.data_dir.display()))?;
            let r = pacsbox_archive::backup::restore(&from, &c.data_dir)
                .map_err(|e| anyhow::anyhow!("restoring from {}: {e}", from.display()))?;
            println!(
                "restored {} files ({} bytes), indexed {} instances",
                r.files, r.bytes, r.indexed
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Echo { data, peer } => echo(&Config::from_args(&data)?, &peer),
        Command::Fetch {
            data,
            peer,
            study,
            patient_name,
            patient_id,
            date,
            accession,
            modality,
        } => {
            let q = pacsbox_archive::remote::RemoteQuery {
                patient_name,
                patient_id,
                study_date: date,
                accession,
                modality,
                study_uid: String::new(),
            };
            fetch(&Config::from_args(&data)?, &peer, &study, &q)
        }
        Command::ForwardStatus { data, http_port } => {
            let mut c = Config::from_args(&data)?;
            c.http_port = http_port.unwrap_or(c.http_port);
            forward_status(&c)
        }
        Command::Export {
            data,
            study,
            to,
            zip,
            iso,
            syntax,
        } => media::export(&data, &study, &to, zip, iso, syntax),
        Command::Import {
            data,
            path,
            study,
            list,
            reconcile_patient_id,
        } => media::import(&data, &path, &study, list, reconcile_patient_id),
        Command::Reindex { data } => {
            let c = Config::from_args(&data)?;
            let n = pacsbox_archive::reindex(&c.data_dir)
                .map_err(|e| anyhow::anyhow!("reindexing {}: {e}", c.data_dir.display()))?;
            println!("indexed {n} instances");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `cli:<unix user>`: who ran a command, for the history and the audit trail.
pub(crate) fn cli_user() -> String {
    let name = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .or_else(|_| std::env::var("LOGNAME"))
        // SAFETY: getuid cannot fail.
        .unwrap_or_else(|_| format!("uid {}", unsafe { libc::getuid() }));
    format!("cli:{name}")
}

/// Runs one correction on a stopped box and records it in the audit trail, done or refused.
fn operate(data: &DataArgs, request: Request) -> anyhow::Result<ExitCode> {
    let c = Config::from_args(data)?;
    let archive = c.open_archive_offline()?;
    let audit = pacsbox_audit::Audit::open(&c.audit_dir(), c.audit_keep_days)?;
    let user = cli_user();
    let actor = Actor {
        user: user.clone(),
        address: "local".into(),
    };
    let result = archive.operate(request.clone(), actor, None);
    let code = match &result {
        Ok(op) => {
            audit.record(pacsbox_web::audit::operation_event(op, &user, "local"));
            println!(
                "operation {}: {} {}, {} instance(s)",
                op.id, op.kind, op.target, op.instances
            );
            for (n, b, a) in &op.values {
                println!("  {n}: {b} -> {a}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            audit.record(pacsbox_web::audit::operation_refused_event(
                &request, &user, "local", e,
            ));
            eprintln!("pacsbox: {e}");
            ExitCode::FAILURE
        }
    };
    audit.flush();
    Ok(code)
}

fn anonymize(
    data: &DataArgs,
    study: &str,
    out: Option<std::path::PathBuf>,
    into_archive: bool,
    opts: &pacsbox_archive::deid::Options,
) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    let c = Config::from_args(data)?;
    // A copy into the archive is stored as `serve` stores a C-STORE: plain, compressed by a
    // `serve` when idle once `compress_after` old (its compactor sweeps the index at start). zstd on the way
    // in was most of a run's CPU (bench/README.md, "Anonymize a 500-instance CT study").
    let archive = if into_archive {
        c.open_archive()?
    } else {
        c.open_archive_offline()?
    };
    // Opened after the archive: while `serve` runs, the archive's lock has refused us already,
    // and the trail has one writer.
    let audit = pacsbox_audit::Audit::open(&c.audit_dir(), c.audit_keep_days)
        .context("opening the audit trail")?;
    let actor = cli_user();
    let patient = match archive.index().study(study)? {
        Some(s) => format!("{} ({})", s.patient_id, s.patient_name),
        None => String::new(),
    };
    let event = pacsbox_audit::Event::new("study.anonymize", &actor, "")
        .study(study)
        .patient(patient);
    let result = match (&out, into_archive) {
        (Some(path), _) => {
            let tmp = path.with_extension("zip.part");
            let file = std::fs::File::create(&tmp)
                .with_context(|| format!("creating {}", tmp.display()))?;
            let mut w = std::io::BufWriter::new(file);
            pacsbox_web::study_zip::write_anonymized(&archive, study, opts, &mut w)
                .and_then(|r| {
                    use std::io::Write;
                    w.flush()?;
                    w.get_ref().sync_all()?;
                    std::fs::rename(&tmp, path)?;
                    Ok(r)
                })
                .map(|r| ("zip".to_owned(), r))
                .inspect_err(|_| {
                    let _ = std::fs::remove_file(&tmp);
                })
        }
        (None, true) => archive
            .anonymize_into_archive(study, opts)
            .map(|r| (r.new_study.clone(), r))
            .map_err(anyhow::Error::from),
        (None, false) => Err(anyhow::anyhow!("give --out FILE or --into-archive")),
    };
    let (target, report) = match result {
        Ok(r) => r,
        Err(e) => {
            audit.record(event.outcome(format!("failed: {e:#}")));
            audit.flush();
            return Err(e.context(format!("anonymizing study {study}")));
        }
    };
    audit.record(
        event
            .detail(format!("into {target}: {}", report.summary()))
            .outcome("ok"),
    );
    audit.flush();
    println!("new study {}", report.new_study);
    println!("{}", report.summary());
    for sop in &report.burned_in {
        println!("NOT de-identified (Burned In Annotation YES): {sop}");
    }
    if report.possibly_burned_in > 0 {
        println!(
            "{} image(s) of a modality that burns in text do not say whether they do: check them",
            report.possibly_burned_in
        );
    }
    for (sop, why) in &report.failed {
        println!("failed: {sop}: {why}");
    }
    Ok(
        if report.failed.is_empty() && report.burned_in.is_empty() && report.possibly_burned_in == 0
        {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        },
    )
}

/// `pacsbox echo`: the peer from the settings (or given as AE@host:port), our AE title and PDU
/// size, TLS as its entry says.
/// A peer named on the command line (a `[[peers]]` entry, or `AE@host:port`) and, when it
/// needs TLS, whom to trust.
fn peer_and_trust(
    c: &Config,
    peer: &str,
) -> anyhow::Result<(
    pacsbox_archive::peers::PeerEntry,
    Option<pacsbox_dicom::trust::PeerTrust>,
)> {
    let entry = if peer.contains('@') {
        config::parse_peer(&format!("{peer}:none")).map_err(|e| anyhow::anyhow!(e))?
    } else {
        let access = c.access_settings()?;
        access
            .fixed
            .into_iter()
            .find(|p| p.ae_title == peer)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{peer} is not a [[peers]] entry of the settings; give AE@host:port instead"
                )
            })?
    };
    let trust = if entry.needs_tls() {
        let own = tls::load_or_create(&c.tls_dir(), &[])
            .context("the box's certificate for DICOM TLS")?;
        Some(serve::peer_trust(c, &own, &c.access_settings()?)?)
    } else {
        None
    };
    Ok((entry, trust))
}

fn cli_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// `pacsbox fetch`: see the command's help.
fn fetch(
    c: &Config,
    peer: &str,
    studies: &[String],
    q: &pacsbox_archive::remote::RemoteQuery,
) -> anyhow::Result<ExitCode> {
    let (entry, trust) = peer_and_trust(c, peer)?;
    let runtime = cli_runtime()?;
    let scp = c.scp_config();
    if studies.is_empty() {
        let found = runtime
            .block_on(pacsbox_dicom::fetch::find_studies(
                entry,
                trust.as_ref(),
                &scp,
                q,
                usize::MAX,
            ))
            .map_err(|e| anyhow::anyhow!(e))?;
        for s in &found {
            println!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                s.study_uid,
                s.patient_id,
                s.patient_name,
                s.study_date,
                s.modalities,
                s.description,
                s.instances.map(|n| n.to_string()).unwrap_or_default()
            );
        }
        eprintln!("{} studies on {}", found.len(), peer);
        return Ok(ExitCode::SUCCESS);
    }
    let mut failed = false;
    for study in studies {
        let moved = runtime.block_on(pacsbox_dicom::fetch::move_study(
            entry.clone(),
            trust.as_ref(),
            &scp,
            study,
            &c.ae_title,
            |p| {
                eprintln!(
                    "{study}: {} received, {} failed{}",
                    p.completed,
                    p.failed,
                    p.remaining
                        .map(|n| format!(", {n} to go"))
                        .unwrap_or_default()
                )
            },
        ));
        match moved {
            Ok(p) => println!("{study}: {} instances received from {peer}", p.completed),
            Err(e) => {
                println!("{study}: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn echo(c: &Config, peer: &str) -> anyhow::Result<ExitCode> {
    let (entry, trust) = peer_and_trust(c, peer)?;
    let runtime = cli_runtime()?;
    let ae = entry.ae_title.clone();
    let scp = c.scp_config();
    match runtime.block_on(pacsbox_dicom::forward::echo(entry, trust.as_ref(), &scp)) {
        Ok(rtt) => {
            println!(
                "{ae}: C-ECHO success in {:.1} ms",
                rtt.as_secs_f64() * 1000.0
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("{ae}: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `pacsbox forward-status`: the running box answers over HTTP (the index is its while it
/// runs); otherwise the index is read directly.
fn forward_status(c: &Config) -> anyhow::Result<ExitCode> {
    let host = if c.bind == "0.0.0.0" || c.bind == "::" {
        "127.0.0.1"
    } else {
        c.bind.as_str()
    };
    if let Some(doc) = http_status(host, c.http_port) {
        let queues = doc
            .get("forwarding")
            .and_then(|f| f.as_array())
            .cloned()
            .unwrap_or_default();
        println!("peer\tpending\tfailing\toldest_enqueued_unix");
        for q in queues {
            let s = |k: &str| {
                q.get(k)
                    .map(|v| match v {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Null => "-".into(),
                        other => other.to_string(),
                    })
                    .unwrap_or_default()
            };
            println!(
                "{}\t{}\t{}\t{}",
                s("peer"),
                s("pending"),
                s("failing"),
                s("oldest_enqueued_unix"),
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let archive = c.open_archive_offline()?;
    println!("peer\tstudy\tinstances\tattempts\tnext_try_unix\tlast_error");
    for q in archive.index().forward_studies(10_000)? {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            q.peer, q.study_uid, q.instances, q.attempts, q.next_try_unix, q.last_error
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `/status.json` of a box running on this machine, if one answers.
fn http_status(host: &str, port: u16) -> Option<serde_json::Value> {
    use std::io::{Read, Write};
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .ok()?
        .next()?;
    let timeout = std::time::Duration::from_secs(10);
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    write!(
        s,
        "GET /status.json HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = Vec::new();
    s.take(16 << 20).read_to_end(&mut body).ok()?;
    let text = String::from_utf8_lossy(&body);
    let (_, json) = text.split_once("\r\n\r\n")?;
    serde_json::from_str(json).ok()
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
