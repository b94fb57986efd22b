//! `pacsbox`: the appliance binary. Parses the command line and runs one command; `serve.rs`
//! wires the archive, the DICOM services, the web page and the front panel together,
//! `config.rs` turns the settings file and the flags into settings.

mod appliance;
mod config;
mod errlog;
mod serve;
mod status;
mod tls;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pacsbox_archive::InstanceRecord;

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
    /// Rebuild the index from the files alone.
    Reindex {
        #[command(flatten)]
        data: DataArgs,
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
    /// The audit trail: check its hash chain, or export records as CSV.
    Audit {
        #[command(subcommand)]
        action: AuditCommand,
    },
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
        Command::Reindex { data } => {
            let c = Config::from_args(&data)?;
            let n = pacsbox_archive::reindex(&c.data_dir)
                .map_err(|e| anyhow::anyhow!("reindexing {}: {e}", c.data_dir.display()))?;
            println!("indexed {n} instances");
            Ok(ExitCode::SUCCESS)
        }
    }
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
    let archive = c.open_archive_offline()?;
    // Opened after the archive: while `serve` runs, the archive's lock has refused us already,
    // and the trail has one writer.
    let audit = pacsbox_audit::Audit::open(&c.audit_dir(), c.audit_keep_days)
        .context("opening the audit trail")?;
    let actor = format!("cli:{}", std::env::var("USER").unwrap_or_default());
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
