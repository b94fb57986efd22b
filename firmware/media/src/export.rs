//! Studies written as a PS3.10 file-set: `DICOM/Pnnnnnnn/STnnnnnn/SEnnnnnn/Innnnnnn` (each
//! component ≤ 8 upper-case characters, 5 levels: within PS3.10's 8 and ISO 9660 level 1), a
//! `DICOMDIR` at the root, `README.TXT` and `INDEX.HTM`. Files go to a [`Sink`]: a folder, or
//! a ZIP being streamed to a browser.
//!
//! Each file is the stored Part-10 file with zstd undone (`keep`), or its data set re-encoded
//! in explicit VR little endian with pixel data decompressed (`uncompressed`); an instance this
//! build cannot decompress is kept as stored and listed in the report.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use pacsbox_archive::part10::{self, MetaInfo};
use pacsbox_archive::scan::{self, RawHeader, Tag, tags};
use pacsbox_archive::transfer_syntax::DatasetEncoding;
use pacsbox_archive::{Archive, InstanceRecord};

use crate::dicomdir::{self, EXPLICIT_VR_LE, Record};
use crate::records;

/// Transfer syntax of the exported files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Syntax {
    /// As stored (zstd undone).
    Keep,
    /// Explicit VR little endian, pixel data decompressed.
    Uncompressed,
}

impl std::str::FromStr for Syntax {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "keep" => Ok(Syntax::Keep),
            "uncompressed" => Ok(Syntax::Uncompressed),
            other => Err(format!(
                "syntax must be keep or uncompressed, not {other:?}"
            )),
        }
    }
}

/// Where the file-set's files go.
pub trait Sink {
    /// Writes one file at `path` (`/`-separated, relative to the file-set's root).
    fn put(&mut self, path: &str, bytes: &[u8]) -> io::Result<()>;
}

/// A folder on disk (made if missing; must be empty).
pub struct DirSink {
    root: PathBuf,
    /// Folders made so far: each series' folder is made once, not stat'ed for every file.
    made: HashSet<PathBuf>,
}

impl DirSink {
    pub fn new(root: &Path) -> io::Result<DirSink> {
        std::fs::create_dir_all(root)?;
        if std::fs::read_dir(root)?.next().is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} is not empty", root.display()),
            ));
        }
        Ok(DirSink {
            root: root.to_path_buf(),
            made: HashSet::new(),
        })
    }

    /// Makes the file-set durable: one syncfs(2) of the folder's file system for all its
    /// files (a USB stick may be pulled as soon as the command says it is done), rather than
    /// an fsync per file.
    pub fn finish(self) -> io::Result<()> {
        let f = std::fs::File::open(&self.root)?;
        // SAFETY: syncfs takes a valid open descriptor of any file on the file system.
        if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&f)) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

impl Sink for DirSink {
    fn put(&mut self, path: &str, bytes: &[u8]) -> io::Result<()> {
        let p = self.root.join(path);
        if let Some(parent) = p.parent()
            && !self.made.contains(parent)
        {
            std::fs::create_dir_all(parent)?;
            self.made.insert(parent.to_path_buf());
        }
        std::fs::write(&p, bytes)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))
    }
}

/// A ZIP written as a stream (entries stored: images are compressed already or not worth the
/// board's CPU).
pub struct ZipSink<W: Write> {
    zip: zip::ZipWriter<zip::write::StreamWriter<W>>,
}

impl<W: Write> ZipSink<W> {
    pub fn new(out: W) -> ZipSink<W> {
        ZipSink {
            zip: zip::ZipWriter::new_stream(out),
        }
    }

    pub fn finish(self) -> io::Result<()> {
        self.zip.finish().map_err(io::Error::other)?;
        Ok(())
    }
}

impl<W: Write> Sink for ZipSink<W> {
    fn put(&mut self, path: &str, bytes: &[u8]) -> io::Result<()> {
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(bytes.len() as u64 >= u64::from(u32::MAX));
        self.zip.start_file(path, opts).map_err(io::Error::other)?;
        self.zip.write_all(bytes)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("no such study: {0}")]
    NoStudy(String),
    #[error("no study given")]
    Nothing,
    #[error("listing study {0}: {1}")]
    Query(String, String),
    #[error("writing {0}: {1}")]
    Write(String, io::Error),
    #[error("DICOMDIR: {0}")]
    Dicomdir(#[from] dicomdir::DicomdirError),
    #[error("making a UID: {0}")]
    Random(String),
}

/// What one export wrote.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ExportReport {
    pub studies: usize,
    pub instances: u64,
    /// Bytes of the DICOM files written (the DICOMDIR and text files not counted).
    pub bytes: u64,
    /// Transfer syntaxes of the files written.
    pub syntaxes: BTreeSet<String>,
    /// PS3.11 application profile the file-set conforms to (see [`profile_of`]).
    pub profile: String,
    /// Instances kept in their stored syntax under `uncompressed` (SOP UID, syntax, why).
    pub kept: Vec<(String, String, String)>,
    /// Instances left out: unreadable (SOP UID, why).
    pub failed: Vec<(String, String)>,
}

impl ExportReport {
    pub fn summary(&self) -> String {
        format!(
            "{} studies, {} instances, {} bytes, profile {}, {} kept compressed, {} failed",
            self.studies,
            self.instances,
            self.bytes,
            self.profile,
            self.kept.len(),
            self.failed.len()
        )
    }
}

const JPEG_FAMILY: [&str; 4] = [
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
];
const J2K_FAMILY: [&str; 2] = ["1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"];

/// The PS3.11 profile of a file-set holding these syntaxes: STD-GEN-CD when all is explicit VR
/// LE; the general-purpose DVD/USB JPEG or JPEG 2000 profiles when those are added (both media
/// allow the same syntaxes); otherwise none of the standard ones, said as such.
pub fn profile_of(syntaxes: &BTreeSet<String>) -> String {
    let others: Vec<&str> = syntaxes
        .iter()
        .map(String::as_str)
        .filter(|s| *s != EXPLICIT_VR_LE)
        .collect();
    if others.is_empty() {
        "STD-GEN-CD".into()
    } else if others.iter().all(|s| JPEG_FAMILY.contains(s)) {
        "STD-GEN-USB-JPEG / STD-GEN-DVD-JPEG".into()
    } else if others.iter().all(|s| J2K_FAMILY.contains(s)) {
        "STD-GEN-USB-J2K / STD-GEN-DVD-J2K".into()
    } else {
        format!(
            "none of PS3.11's (general purpose; also {})",
            others.join(", ")
        )
    }
}

/// Numbering of the directory tree: patients, their studies, series, images.
#[derive(Default)]
struct Tree {
    patients: Vec<Record>,
    patient_of: HashMap<(Vec<u8>, Vec<u8>), usize>,
    study_of: HashMap<String, (usize, usize)>,
    series_of: HashMap<String, (usize, usize, usize)>,
}

fn get(h: &RawHeader, tag: Tag) -> Vec<u8> {
    let v = h.get(&tag).cloned().unwrap_or_default();
    // Trailing padding is the writer's to add.
    let end = v
        .iter()
        .rposition(|&b| b != 0 && b != b' ')
        .map_or(0, |i| i + 1);
    v[..end].to_vec()
}

fn keys(h: &RawHeader, wanted: &[(Tag, [u8; 2])]) -> Vec<(Tag, [u8; 2], Vec<u8>)> {
    // Each record carries the instance's character set: its text keys are its raw bytes.
    let charset = h.contains_key(&tags::SPECIFIC_CHARACTER_SET).then(|| {
        (
            tags::SPECIFIC_CHARACTER_SET,
            *b"CS",
            get(h, tags::SPECIFIC_CHARACTER_SET),
        )
    });
    charset
        .into_iter()
        .chain(wanted.iter().map(|&(tag, vr)| (tag, vr, get(h, tag))))
        .collect()
}

/// The keys of each record type (PS3.3 F.5: the Type 1 and 2 ones, and the patient's birth
/// date and sex that viewers show in their lists).
const PATIENT_KEYS: &[(Tag, [u8; 2])] = &[
    (tags::PATIENT_NAME, *b"PN"),
    (tags::PATIENT_ID, *b"LO"),
    (tags::PATIENT_BIRTH_DATE, *b"DA"),
    (tags::PATIENT_SEX, *b"CS"),
];
const STUDY_KEYS: &[(Tag, [u8; 2])] = &[
    (tags::STUDY_DATE, *b"DA"),
    (tags::STUDY_TIME, *b"TM"),
    (tags::ACCESSION_NUMBER, *b"SH"),
    (tags::STUDY_DESCRIPTION, *b"LO"),
    (tags::STUDY_INSTANCE_UID, *b"UI"),
    (tags::STUDY_ID, *b"SH"),
];
const SERIES_KEYS: &[(Tag, [u8; 2])] = &[
    (tags::MODALITY, *b"CS"),
    (tags::SERIES_INSTANCE_UID, *b"UI"),
    (tags::SERIES_NUMBER, *b"IS"),
];

fn record(kind: &'static str, h: &RawHeader, wanted: &[(Tag, [u8; 2])]) -> Record {
    Record {
        kind,
        keys: keys(h, wanted),
        children: Vec::new(),
    }
}

impl Tree {
    /// The file ID of the next image of this instance's series, its record added.
    fn add(
        &mut self,
        h: &RawHeader,
        rec: &InstanceRecord,
        sop: &str,
        ts: &str,
        (kind, own): Kind,
    ) -> Vec<String> {
        // A study already placed keeps its patient: its later instances may spell the name in
        // another character set (a report written in UTF-8 in an ISO 2022 study), which must
        // not open a second, empty PATIENT record.
        let p = match self.study_of.get(&rec.study_uid) {
            Some(&(p, _)) => p,
            None => {
                let pkey = (get(h, tags::PATIENT_ID), get(h, tags::PATIENT_NAME));
                *self.patient_of.entry(pkey).or_insert_with(|| {
                    self.patients.push(record("PATIENT", h, PATIENT_KEYS));
                    self.patients.len() - 1
                })
            }
        };
        let (p, s) = *self
            .study_of
            .entry(rec.study_uid.clone())
            .or_insert_with(|| {
                let studies = &mut self.patients[p].children;
                studies.push(record("STUDY", h, STUDY_KEYS));
                (p, studies.len() - 1)
            });
        let (p, s, e) = *self
            .series_of
            .entry(rec.series_uid.clone())
            .or_insert_with(|| {
                let series = &mut self.patients[p].children[s].children;
                series.push(record("SERIES", h, SERIES_KEYS));
                (p, s, series.len() - 1)
            });
        let images = &mut self.patients[p].children[s].children[e].children;
        let file_id = vec![
            "DICOM".to_owned(),
            format!("P{:07}", p + 1),
            format!("ST{:06}", s + 1),
            format!("SE{:06}", e + 1),
            format!("I{:07}", images.len() + 1),
        ];
        let mut k = vec![
            ((0x0004, 0x1500), *b"CS", file_id.join("\\").into_bytes()),
            (
                (0x0004, 0x1510),
                *b"UI",
                rec.sop_class_uid.clone().into_bytes(),
            ),
            ((0x0004, 0x1511), *b"UI", sop.as_bytes().to_vec()),
            ((0x0004, 0x1512), *b"UI", ts.as_bytes().to_vec()),
        ];
        match own {
            None => k.extend(keys(h, &[(tags::INSTANCE_NUMBER, *b"IS")])),
            Some(own) => {
                k.extend(keys(h, &[]));
                k.extend(own);
                k.sort_by_key(|(tag, _, _)| *tag);
            }
        }
        images.push(Record {
            kind,
            keys: k,
            children: Vec::new(),
        });
        file_id
    }
}

/// A new UID under 2.25 (a random 128-bit number, PS3.5 B.2).
pub fn random_uid() -> Result<String, ExportError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| ExportError::Random(e.to_string()))?;
    Ok(format!("2.25.{}", u128::from_be_bytes(b)))
}

/// One stored instance as the file to put on the media and the syntax it has; `kept` is set
/// when `uncompressed` was asked and could not be done.
fn media_file(
    stored: Vec<u8>,
    meta: &part10::ReadMeta,
    syntax: Syntax,
) -> (Vec<u8>, String, Option<String>) {
    if syntax == Syntax::Keep || meta.transfer_syntax == EXPLICIT_VR_LE {
        return (stored, meta.transfer_syntax.clone(), None);
    }
    let native = matches!(
        meta.transfer_syntax.as_str(),
        "1.2.840.10008.1.2" | "1.2.840.10008.1.2.2"
    );
    if !native && !pacsbox_imaging::can_decompress(&meta.transfer_syntax) {
        return (
            stored,
            meta.transfer_syntax.clone(),
            Some("this build cannot decompress it".into()),
        );
    }
    let converted = pacsbox_imaging::decompress_to_native(&stored[..], EXPLICIT_VR_LE)
        .map_err(|e| e.to_string())
        .and_then(|ds| {
            let mut f = part10::encode_header(&MetaInfo {
                sop_class_uid: meta.sop_class_uid.clone(),
                sop_instance_uid: meta.sop_instance_uid.clone(),
                transfer_syntax: EXPLICIT_VR_LE.into(),
                source_ae: meta.source_ae.clone(),
            })
            .map_err(|e| e.to_string())?;
            f.extend_from_slice(&ds);
            Ok(f)
        });
    match converted {
        Ok(f) => (f, EXPLICIT_VR_LE.into(), None),
        Err(e) => (stored, meta.transfer_syntax.clone(), Some(e)),
    }
}

/// One instance made ready for the media: its file, its syntax, why it was kept as stored
/// (when `uncompressed` could not be done), its indexed attributes; or why it is left out.
type Prepared = Result<(Vec<u8>, String, Option<String>, RawHeader, Kind), String>;

/// An instance's directory record type and, for a non-image one, its own keys.
type Kind = (&'static str, Option<Vec<records::Key>>);

fn prepare(archive: &Archive, rec: &InstanceRecord, syntax: Syntax) -> Prepared {
    let stored = read_stored(archive, rec).map_err(|e| e.to_string())?;
    let mut rest = &stored[..];
    let meta = part10::read_header(&mut rest).map_err(|e| e.to_string())?;
    let h = scan::scan_dataset(rest, DatasetEncoding::of(&meta.transfer_syntax))
        .map_err(|e| e.to_string())?;
    let kind = records::kind_of(&meta.sop_class_uid);
    let kind = match records::keys(kind, &stored) {
        Ok(keys) => (kind, keys),
        Err(e) => {
            // Still on the media, under a record every reader lists.
            tracing::warn!(sop = %meta.sop_instance_uid, error = %e, "export: IMAGE record instead");
            ("IMAGE", None)
        }
    };
    let (file, ts, kept) = media_file(stored, &meta, syntax);
    Ok((file, ts, kept, h, kind))
}

/// Threads reading, decompressing and walking instances while the caller's thread writes.
const PREPARE_THREADS: usize = 2;
/// How many instances the readers may be ahead of the writer (each held whole in memory).
const WINDOW: usize = 4;

/// Writes `studies` as a file-set into `sink`. An instance that cannot be read is left out
/// and listed; a study that does not exist, or a write that fails, ends the export. Files are
/// written in study/series/instance order by the calling thread; reading them (zstd undone,
/// decompressed when asked, walked for the DICOMDIR keys) runs on a few threads ahead of it.
pub fn export(
    archive: &Archive,
    studies: &[String],
    syntax: Syntax,
    sink: &mut dyn Sink,
) -> Result<ExportReport, ExportError> {
    if studies.is_empty() {
        return Err(ExportError::Nothing);
    }
    let mut report = ExportReport::default();
    let mut tree = Tree::default();
    let mut listed = Vec::new();
    let mut all = Vec::new();
    for study in studies {
        let instances = archive
            .study_instances(study)
            .map_err(|e| ExportError::Query(study.clone(), e.to_string()))?;
        if instances.is_empty() {
            return Err(ExportError::NoStudy(study.clone()));
        }
        report.studies += 1;
        if let Ok(Some(s)) = archive.index().study(study) {
            listed.push((study.clone(), s));
        }
        all.extend(instances);
    }
    let next = AtomicUsize::new(0);
    let written = (Mutex::new(0usize), Condvar::new());
    let stop = AtomicBool::new(false);
    let lock = || written.0.lock().unwrap_or_else(|p| p.into_inner());
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Prepared)>();
    std::thread::scope(|scope| -> Result<(), ExportError> {
        for _ in 0..PREPARE_THREADS.min(all.len()) {
            let tx = tx.clone();
            let (next, stop, all, written) = (&next, &stop, &all, &written);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((_, rec)) = all.get(i) else { break };
                    let mut w = lock();
                    while i >= *w + WINDOW && !stop.load(Ordering::Relaxed) {
                        w = written.1.wait(w).unwrap_or_else(|p| p.into_inner());
                    }
                    drop(w);
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if tx.send((i, prepare(archive, rec, syntax))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut pending = BTreeMap::new();
        let mut k = 0;
        let mut write_all = || -> Result<(), ExportError> {
            for (i, p) in rx.iter() {
                pending.insert(i, p);
                while let Some(p) = pending.remove(&k) {
                    let (sop, rec) = &all[k];
                    k += 1;
                    *lock() = k;
                    written.1.notify_all();
                    let (file, ts, kept, h, kind) = match p {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::warn!(sop, error = %e, "export: instance left out");
                            report.failed.push((sop.clone(), e));
                            continue;
                        }
                    };
                    if let Some(why) = kept {
                        report.kept.push((sop.clone(), ts.clone(), why));
                    }
                    let path = tree.add(&h, rec, sop, &ts, kind).join("/");
                    sink.put(&path, &file)
                        .map_err(|e| ExportError::Write(path.clone(), e))?;
                    report.instances += 1;
                    report.bytes += file.len() as u64;
                    report.syntaxes.insert(ts);
                }
            }
            Ok(())
        };
        let result = write_all();
        if result.is_err() {
            stop.store(true, Ordering::Relaxed);
            let _w = lock();
            written.1.notify_all();
        }
        result
    })?;
    report.profile = profile_of(&report.syntaxes);
    let dir = dicomdir::write(&tree.patients, "PACSBOX", &random_uid()?)?;
    let put = |sink: &mut dyn Sink, name: &str, b: &[u8]| {
        sink.put(name, b)
            .map_err(|e| ExportError::Write(name.to_owned(), e))
    };
    put(sink, "DICOMDIR", &dir)?;
    put(sink, "README.TXT", readme(&report, syntax).as_bytes())?;
    put(sink, "INDEX.HTM", index_htm(&listed).as_bytes())?;
    Ok(report)
}

fn readme(r: &ExportReport, syntax: Syntax) -> String {
    let mut s = format!(
        "DICOM media written by pacsbox {}\r\n\r\n\
         {} studies, {} images, in DICOM/ (PS3.10 file-set; DICOMDIR at the root).\r\n\
         Application profile: {}.\r\n\
         Transfer syntax asked: {}.\r\n\
         Open it with any DICOM viewer that reads a DICOMDIR; INDEX.HTM lists the studies.\r\n",
        env!("CARGO_PKG_VERSION"),
        r.studies,
        r.instances,
        r.profile,
        match syntax {
            Syntax::Keep => "as stored",
            Syntax::Uncompressed => "explicit VR little endian, uncompressed",
        }
    );
    if !r.kept.is_empty() {
        s.push_str(&format!(
            "{} images could not be decompressed and are as stored.\r\n",
            r.kept.len()
        ));
    }
    s
}

/// HTML-escaped text.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn index_htm(studies: &[(String, pacsbox_archive::record::StudyRecord)]) -> String {
    let mut s = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>DICOM media</title></head>\n\
         <body><h1>Studies on this media</h1>\n<table border=\"1\">\n\
         <tr><th>Patient</th><th>Patient ID</th><th>Date</th><th>Description</th>\
         <th>Modalities</th><th>Images</th><th>Study Instance UID</th></tr>\n",
    );
    for (uid, r) in studies {
        s.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            escape(&r.patient_name),
            escape(&r.patient_id),
            escape(&r.study_date),
            escape(&r.description),
            escape(&r.modalities.join(", ")),
            r.instances,
            escape(uid)
        ));
    }
    s.push_str("</table>\n<p>The images are in DICOM/, listed by DICOMDIR.</p></body></html>\n");
    s
}

/// Zips a folder (a file-set written by [`export`]) into `out`.
pub fn zip_dir(dir: &Path, out: impl Write) -> io::Result<()> {
    let mut zip = ZipSink::new(out);
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(dir.join(&rel))?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let r = rel.join(e.file_name());
            if e.file_type()?.is_dir() {
                stack.push(r);
            } else {
                let bytes = std::fs::read(e.path())?;
                let name = r.to_string_lossy().replace('\\', "/");
                zip.put(&name, &bytes)?;
            }
        }
    }
    zip.finish()
}

/// Makes an ISO 9660 image of a file-set folder with Debian's xorriso (level 1 names, Rock
/// Ridge for the exact case on Linux).
pub fn make_iso(dir: &Path, iso: &Path, label: &str) -> io::Result<()> {
    let out = std::process::Command::new("xorriso")
        .args(["-as", "mkisofs", "-iso-level", "1", "-r", "-V", label, "-o"])
        .arg(iso)
        .arg(dir)
        .output()
        .map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                io::Error::new(
                    e.kind(),
                    "xorriso is not installed (apt-get install xorriso): no ISO image made",
                )
            } else {
                e
            }
        })?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "xorriso failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// What an export of some studies will weigh, told before it runs (the web page's choice).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Sizes {
    pub instances: u64,
    /// The stored files with zstd undone: exact.
    pub keep: u64,
    /// Explicit VR LE with pixel data decompressed: the stored size of native files, and for
    /// encapsulated ones their header plus rows × columns × samples × bytes × frames.
    pub uncompressed: u64,
    /// Instances this build cannot decompress (they stay as stored).
    pub undecompressible: u64,
}

/// The decompressed size of a stored file: its own size, or a zstd frame's content size.
/// Where `rec`'s file is, and whether it is zstd-compressed (a plain `.dcm` not there was
/// compressed meanwhile: its `.dcm.zst` is).
fn stored_path(archive: &Archive, rec: &InstanceRecord) -> (PathBuf, bool) {
    let plain = archive.root().join(&rec.rel_path);
    if rec.rel_path.ends_with(".zst") {
        (plain, true)
    } else if plain.exists() {
        (plain, false)
    } else {
        let mut p = plain.into_os_string();
        p.push(".zst");
        (PathBuf::from(p), true)
    }
}

fn stored_size(archive: &Archive, rec: &InstanceRecord) -> io::Result<u64> {
    let (path, zst) = stored_path(archive, rec);
    if !zst {
        return Ok(std::fs::metadata(&path)?.len());
    }
    let mut head = [0u8; 18];
    let mut f = std::fs::File::open(&path)?;
    let n = f.read(&mut head)?;
    match zstd::zstd_safe::get_frame_content_size(&head[..n]) {
        Ok(Some(size)) => Ok(size),
        // A frame without its size (not what compact.rs writes): read it through.
        _ => io::copy(&mut archive.open_part10(rec)?, &mut io::sink()),
    }
}

/// The stored Part-10 file of `rec`, zstd undone, read whole. Frames that say their size (what
/// `compact.rs` writes) are decompressed in one call into a buffer of that size: no streaming
/// copies, no zeroing of the buffer first (both showed in the export's profile).
fn read_stored(archive: &Archive, rec: &InstanceRecord) -> io::Result<Vec<u8>> {
    let (path, zst) = stored_path(archive, rec);
    let with_path = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    if !zst {
        return match std::fs::read(&path) {
            // Compressed between the look and the read: the archive's reader finds the `.zst`.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut v = Vec::new();
                archive.open_part10(rec)?.read_to_end(&mut v)?;
                Ok(v)
            }
            other => other.map_err(with_path),
        };
    }
    let packed = std::fs::read(&path).map_err(with_path)?;
    match zstd::zstd_safe::get_frame_content_size(&packed) {
        Ok(Some(size)) if size <= usize::MAX as u64 => {
            zstd::bulk::decompress(&packed, size as usize).map_err(with_path)
        }
        _ => {
            let mut v = Vec::new();
            zstd::stream::read::Decoder::new(&packed[..])
                .and_then(|mut d| d.read_to_end(&mut v))
                .map_err(with_path)?;
            Ok(v)
        }
    }
}

/// Bytes read through it.
struct Counting<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// The native size of an encapsulated instance: its header (as far as its Pixel Data, read
/// by dicom-object) and the pixel matrix.
fn decompressed_size(archive: &Archive, rec: &InstanceRecord, keep: u64) -> io::Result<u64> {
    use dicom_dictionary_std::tags as t;
    use dicom_object::OpenFileOptions;
    use dicom_object::file::ReadPreamble;
    let mut r = Counting {
        inner: archive.open_part10(rec)?,
        n: 0,
    };
    let obj = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Always)
        .read_until(t::PIXEL_DATA)
        .from_reader(&mut r)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    let num = |tag| -> u64 {
        obj.element_opt(tag)
            .ok()
            .flatten()
            .and_then(|e| e.to_int::<u64>().ok())
            .unwrap_or(1)
    };
    let pixels = num(t::ROWS)
        * num(t::COLUMNS)
        * num(t::SAMPLES_PER_PIXEL)
        * num(t::BITS_ALLOCATED).div_ceil(8)
        * num(t::NUMBER_OF_FRAMES);
    Ok(r.n.min(keep) + pixels)
}

/// The sizes of both choices for `studies`.
pub fn sizes(archive: &Archive, studies: &[String]) -> Result<Sizes, ExportError> {
    let mut s = Sizes::default();
    for study in studies {
        let instances = archive
            .study_instances(study)
            .map_err(|e| ExportError::Query(study.clone(), e.to_string()))?;
        for (sop, rec) in &instances {
            let keep = stored_size(archive, rec).map_err(|e| ExportError::Write(sop.clone(), e))?;
            s.instances += 1;
            s.keep += keep;
            let ts = rec.transfer_syntax.as_str();
            let native = matches!(
                ts,
                EXPLICIT_VR_LE | "1.2.840.10008.1.2" | "1.2.840.10008.1.2.2"
            );
            s.uncompressed += if native {
                keep
            } else if pacsbox_imaging::can_decompress(ts) {
                decompressed_size(archive, rec, keep).unwrap_or(keep)
            } else {
                s.undecompressible += 1;
                keep
            };
        }
    }
    Ok(s)
}
