//! A study as a ZIP of its DICOM files, streamed: a thread writes the archive into a pipe that
//! the response reads, so a 2 GB study never sits in memory. Entries are stored, not deflated
//! (images are compressed already or zstd-expanded on the way out, and the Pi's CPU is better
//! spent elsewhere). The same for an anonymized copy of a study (`write_anonymized`, also the
//! command line's `pacsbox anonymize --out`).

use std::io::{Read, Write};

use pacsbox_archive::deid::Options;
use pacsbox_archive::{AnonymizeReport, Archive, InstanceRecord};
use zip::write::SimpleFileOptions;

use crate::reply::{ChunkWriter, HttpError, chunk_pipe};

pub fn instances_of_study(
    archive: &Archive,
    study_uid: &str,
) -> Result<Vec<(String, InstanceRecord)>, HttpError> {
    Ok(archive.study_instances(study_uid)?)
}

/// Starts writing the ZIP; the returned reader yields it.
pub fn stream(
    archive: Archive,
    instances: Vec<(String, InstanceRecord)>,
) -> Result<Box<dyn Read + Send>, HttpError> {
    spawn_into_pipe(move |writer| write_zip(&archive, &instances, writer))
}

/// Runs `write` on a thread that writes into a [`chunk_pipe`]; the returned reader yields
/// what it wrote (in 256 KiB blocks, not an OS pipe's 64 KiB thread switches).
pub(crate) fn spawn_into_pipe(
    write: impl FnOnce(&mut ChunkWriter) -> anyhow::Result<()> + Send + 'static,
) -> Result<Box<dyn Read + Send>, HttpError> {
    let (mut writer, reader) = chunk_pipe();
    std::thread::Builder::new()
        .name("study-zip".into())
        .spawn(move || {
            if let Err(e) = write(&mut writer).and_then(|_| Ok(writer.flush()?)) {
                // The client sees a ZIP without its central directory: unzip reports it.
                tracing::warn!(error = %e, "study download ended early");
            }
        })?;
    Ok(Box::new(reader))
}

fn entry_options() -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true)
}

/// `S001/`… in the order series first appear.
#[derive(Default)]
struct SeriesDirs(Vec<String>);

impl SeriesDirs {
    fn name(&mut self, series: &str, sop: &str) -> String {
        let dir = match self.0.iter().position(|s| s == series) {
            Some(i) => i + 1,
            None => {
                self.0.push(series.to_owned());
                self.0.len()
            }
        };
        format!("S{dir:03}/{sop}.dcm")
    }
}

fn write_zip(
    archive: &Archive,
    instances: &[(String, InstanceRecord)],
    out: &mut ChunkWriter,
) -> anyhow::Result<()> {
    let mut zip = zip::ZipWriter::new_stream(out);
    let mut dirs = SeriesDirs::default();
    for (sop, rec) in instances {
        zip.start_file(dirs.name(&rec.series_uid, sop), entry_options())?;
        let mut src = archive.open_part10(rec)?;
        std::io::copy(&mut src, &mut zip)?;
    }
    zip.finish()?;
    Ok(())
}

/// Starts writing the anonymized ZIP of `study_uid`; `done` gets the run's report (or why it
/// stopped) when the last byte is written.
pub fn stream_anonymized(
    archive: Archive,
    study_uid: String,
    opts: Options,
    done: impl FnOnce(Result<AnonymizeReport, String>) + Send + 'static,
) -> Result<Box<dyn Read + Send>, HttpError> {
    spawn_into_pipe(move |writer| {
        let result = write_anonymized(&archive, &study_uid, &opts, writer);
        done(result.as_ref().map(Clone::clone).map_err(|e| e.to_string()));
        result.map(|_| ())
    })
}

/// Writes the anonymized study as a ZIP into `out`. Instances whose pixels may still show
/// the patient are listed in the ZIP's `NOT-DEIDENTIFIED.txt`.
pub fn write_anonymized<W: Write>(
    archive: &Archive,
    study_uid: &str,
    opts: &Options,
    out: W,
) -> anyhow::Result<AnonymizeReport> {
    let mut zip = zip::ZipWriter::new_stream(out);
    let mut dirs = SeriesDirs::default();
    let mut burned: Vec<String> = Vec::new();
    let report = archive.anonymize_study(study_uid, opts, |_, a| {
        let name = dirs.name(&a.series_uid, &a.sop_instance_uid);
        if a.burned_in != pacsbox_archive::deid::BurnedIn::No {
            burned.push(format!("{name}: {:?}", a.burned_in));
        }
        zip.start_file(name, entry_options())?;
        zip.write_all(&a.part10)?;
        Ok::<(), anyhow::Error>(())
    })?;
    if !burned.is_empty() {
        zip.start_file("NOT-DEIDENTIFIED.txt", entry_options())?;
        writeln!(
            zip,
            "These images have (Yes) or may have (Possible) patient data burned into their \
             pixels, which anonymization does not remove. Check them before sharing.\n"
        )?;
        for b in &burned {
            writeln!(zip, "{b}")?;
        }
    }
    zip.finish()?;
    Ok(report)
}
