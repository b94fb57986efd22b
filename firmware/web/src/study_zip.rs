//! A study as a ZIP of its DICOM files, streamed: a thread writes the archive into a pipe that
//! the response reads, so a 2 GB study never sits in memory. Entries are stored, not deflated
//! (images are compressed already or zstd-expanded on the way out, and the Pi's CPU is better
//! spent elsewhere).

use std::io::Read;

use pacsbox_archive::query::{Attr, Level, Matcher, Query};
use pacsbox_archive::{Archive, InstanceRecord};
use zip::write::SimpleFileOptions;

use crate::reply::HttpError;

pub fn instances_of_study(
    archive: &Archive,
    study_uid: &str,
) -> Result<Vec<(String, InstanceRecord)>, HttpError> {
    let q = Query {
        level: Level::Study,
        filters: vec![(
            Attr::StudyInstanceUid,
            Matcher::Single(study_uid.to_owned()),
        )],
    };
    let mut set = archive.index().retrieve_set(&q)?;
    set.sort_by(|a, b| {
        (&a.1.series_uid, a.1.instance_number, &a.0).cmp(&(
            &b.1.series_uid,
            b.1.instance_number,
            &b.0,
        ))
    });
    Ok(set)
}

/// Starts writing the ZIP; the returned reader yields it.
pub fn stream(
    archive: Archive,
    instances: Vec<(String, InstanceRecord)>,
) -> Result<Box<dyn Read + Send>, HttpError> {
    let (reader, writer) = std::io::pipe()?;
    std::thread::Builder::new()
        .name("study-zip".into())
        .spawn(move || {
            if let Err(e) = write_zip(&archive, &instances, writer) {
                // The client sees a ZIP without its central directory: unzip reports it.
                tracing::warn!(error = %e, "study download ended early");
            }
        })?;
    Ok(Box::new(reader))
}

fn write_zip(
    archive: &Archive,
    instances: &[(String, InstanceRecord)],
    out: std::io::PipeWriter,
) -> anyhow::Result<()> {
    let mut zip = zip::ZipWriter::new_stream(out);
    let opts = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    let mut series_dirs: Vec<String> = Vec::new();
    for (sop, rec) in instances {
        if !series_dirs.contains(&rec.series_uid) {
            series_dirs.push(rec.series_uid.clone());
        }
        let dir = series_dirs
            .iter()
            .position(|s| *s == rec.series_uid)
            .unwrap_or(0)
            + 1;
        let name = format!("S{dir:03}/{sop}.dcm");
        zip.start_file(name, opts)?;
        let mut src = archive.open_part10(rec)?;
        std::io::copy(&mut src, &mut zip)?;
    }
    zip.finish()?;
    Ok(())
}
