//! `pacsbox export` and `pacsbox import` (patient media, `docs/media.md`): the archive opened
//! here with the box stopped (its lock refuses a second opener), each run audited as
//! `media.export` / `media.import`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use pacsbox_media::export::{self, DirSink, Syntax};
use pacsbox_media::import::{self, Progress, Source};

use crate::config::{Config, DataArgs};

/// Patients and study UIDs of `studies`, for the audit record.
fn who(archive: &pacsbox_archive::Archive, studies: &[String]) -> String {
    let mut p: Vec<String> = studies
        .iter()
        .filter_map(|s| archive.index().study(s).ok().flatten())
        .map(|s| format!("{} ({})", s.patient_id, s.patient_name))
        .collect();
    p.sort();
    p.dedup();
    p.join("; ")
}

pub fn export(
    data: &DataArgs,
    studies: &[String],
    to: &Path,
    zip: Option<PathBuf>,
    iso: Option<PathBuf>,
    syntax: Syntax,
) -> anyhow::Result<ExitCode> {
    let c = Config::from_args(data)?;
    let archive = c.open_archive_offline()?;
    let audit = pacsbox_audit::Audit::open(&c.audit_dir(), c.audit_keep_days)
        .context("opening the audit trail")?;
    let event = pacsbox_audit::Event::new("media.export", &crate::cli_user(), "")
        .study(studies.join(" "))
        .patient(who(&archive, studies));
    let run = || -> anyhow::Result<export::ExportReport> {
        let mut sink = DirSink::new(to).with_context(|| format!("writing to {}", to.display()))?;
        let report = export::export(&archive, studies, syntax, &mut sink)?;
        sink.finish()
            .with_context(|| format!("syncing {}", to.display()))?;
        if let Some(z) = &zip {
            let f =
                std::fs::File::create(z).with_context(|| format!("creating {}", z.display()))?;
            export::zip_dir(to, std::io::BufWriter::new(f))
                .with_context(|| format!("writing {}", z.display()))?;
        }
        if let Some(i) = &iso {
            export::make_iso(to, i, "PACSBOX")
                .with_context(|| format!("making {}", i.display()))?;
        }
        Ok(report)
    };
    let report = match run() {
        Ok(r) => r,
        Err(e) => {
            audit.record(event.outcome(format!("failed: {e:#}")));
            audit.flush();
            return Err(e);
        }
    };
    audit.record(
        event
            .detail(format!(
                "{:?} to {}: {}",
                syntax,
                to.display(),
                report.summary()
            ))
            .outcome("ok"),
    );
    audit.flush();
    println!("{}", report.summary());
    for (sop, ts, why) in &report.kept {
        println!("kept as stored ({ts}): {sop}: {why}");
    }
    for (sop, why) in &report.failed {
        println!("left out: {sop}: {why}");
    }
    Ok(if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn import(
    data: &DataArgs,
    path: &Path,
    studies: &[String],
    list: bool,
    reconcile_patient_id: Option<String>,
) -> anyhow::Result<ExitCode> {
    let source = Source::open(path)?;
    let survey = import::survey(&source, list || !studies.is_empty())
        .with_context(|| format!("reading {}", path.display()))?;
    eprintln!(
        "{}: {} files to import ({:?}), {} others ignored",
        path.display(),
        survey.files.len(),
        survey.listing,
        survey.ignored
    );
    for m in &survey.missing {
        eprintln!("listed in DICOMDIR but missing: {m}");
    }
    if list {
        for s in &survey.studies {
            println!(
                "{}\t{}\t{}\t{}\t{}\t{} files",
                s.study_uid, s.patient_id, s.patient_name, s.study_date, s.description, s.files
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let files: Vec<import::Found> = survey
        .files
        .into_iter()
        .filter(|f| studies.is_empty() || f.study_uid.as_ref().is_some_and(|s| studies.contains(s)))
        .collect();
    let c = Config::from_args(data)?;
    let archive = c.open_archive_offline()?;
    let audit = pacsbox_audit::Audit::open(&c.audit_dir(), c.audit_keep_days)
        .context("opening the audit trail")?;
    let progress = Progress::default();
    let start = Instant::now();
    let done = std::sync::atomic::AtomicBool::new(false);
    let result = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                std::thread::park_timeout(Duration::from_millis(500));
                progress_line(&progress, start, false);
            }
        });
        let opts = import::Options {
            reconcile_patient_id: reconcile_patient_id.clone(),
        };
        let r = import::import(&archive, &source, &files, &opts, &progress);
        done.store(true, Ordering::Relaxed);
        r
    });
    progress_line(&progress, start, true);
    let from = match &reconcile_patient_id {
        Some(id) => format!("from {}, patient ID reconciled to {id}", path.display()),
        None => format!("from {}", path.display()),
    };
    let event =
        pacsbox_audit::Event::new("media.import", &crate::cli_user(), "").detail(from.clone());
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            audit.record(event.outcome(format!("failed: {e}")));
            audit.flush();
            return Err(e).context("import stopped");
        }
    };
    let studies: Vec<String> = report.studies.iter().cloned().collect();
    audit.record(
        event
            .study(studies.join(" "))
            .patient(who(&archive, &studies))
            .detail(format!("{from}: {}", report.summary()))
            .outcome(if report.failed.is_empty() {
                "ok"
            } else {
                "partial"
            }),
    );
    audit.flush();
    for (file, why) in &report.failed {
        println!("failed: {file}: {why}");
    }
    println!("{}", report.summary());
    Ok(if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn progress_line(p: &Progress, start: Instant, last: bool) {
    let secs = start.elapsed().as_secs_f64().max(1e-3);
    let mb = p.bytes.load(Ordering::Relaxed) as f64 / 1e6;
    eprint!(
        "\r{} / {} files, {:.1} MB, {:.1} MB/s, {} failed{}",
        p.done.load(Ordering::Relaxed),
        p.total.load(Ordering::Relaxed),
        mb,
        mb / secs,
        p.failed.lock().map(|f| f.len()).unwrap_or(0),
        if last { "\n" } else { "" }
    );
}
