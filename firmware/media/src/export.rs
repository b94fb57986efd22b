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

    /// The folder files may be written into directly, from any thread, when the sink is one
    /// (then `export` writes each file on the thread that read it).
    fn root(&self) -> Option<&Path> {
        None
    }
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
    fn root(&self) -> Option<&Path> {
        Some(&self.root)
    }

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

/// Where one instance goes: its patient, study, series and image numbers (from 0), fixed from
/// the index before any file is read, so that any thread may write any file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Slot {
    p: usize,
    s: usize,
    e: usize,
    i: usize,
}

impl Slot {
    fn file_id(self) -> Vec<String> {
        vec![
            "DICOM".to_owned(),
            format!("P{:07}", self.p + 1),
            format!("ST{:06}", self.s + 1),
            format!("SE{:06}", self.e + 1),
            format!("I{:07}", self.i + 1),
        ]
    }
}

/// The slots of `all` (in order): patients told apart by the index's Patient ID and name of
/// each study (a study not in the study table is a patient of its own), series and images
/// numbered in the order they come.
fn plan(
    all: &[(String, InstanceRecord)],
    patient_of_study: &HashMap<String, (String, String)>,
) -> Vec<Slot> {
    let mut patients: HashMap<(String, String), usize> = HashMap::new();
    let mut studies_in: Vec<usize> = Vec::new();
    let mut study_at: HashMap<&str, (usize, usize)> = HashMap::new();
    let mut series_in: HashMap<(usize, usize), usize> = HashMap::new();
    let mut series_at: HashMap<&str, (usize, usize, usize)> = HashMap::new();
    let mut images_in: HashMap<(usize, usize, usize), usize> = HashMap::new();
    all.iter()
        .map(|(_, rec)| {
            let (p, s) = *study_at.entry(&rec.study_uid).or_insert_with(|| {
                let key = patient_of_study
                    .get(&rec.study_uid)
                    .cloned()
                    .unwrap_or_else(|| (rec.study_uid.clone(), "\u{0}study".to_owned()));
                let n = patients.len();
                let p = *patients.entry(key).or_insert(n);
                if p == studies_in.len() {
                    studies_in.push(0);
                }
                studies_in[p] += 1;
                (p, studies_in[p] - 1)
            });
            let (p, s, e) = *series_at.entry(&rec.series_uid).or_insert_with(|| {
                let n = series_in.entry((p, s)).or_insert(0);
                *n += 1;
                (p, s, *n - 1)
            });
            let n = images_in.entry((p, s, e)).or_insert(0);
            *n += 1;
            Slot { p, s, e, i: *n - 1 }
        })
        .collect()
}

/// The directory tree: patients, their studies, series, images; each record made from the
/// first instance read under it.
#[derive(Default)]
struct Tree {
    patients: Vec<Record>,
    patient_at: HashMap<usize, usize>,
    study_at: HashMap<(usize, usize), (usize, usize)>,
    series_at: HashMap<(usize, usize, usize), (usize, usize, usize)>,
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
    /// Adds this instance's IMAGE (or other) record at `slot`, with the records above it that
    /// are not there yet; returns its file ID.
    fn add(
        &mut self,
        h: &RawHeader,
        rec: &InstanceRecord,
        sop: &str,
        ts: &str,
        (kind, own): Kind,
        slot: Slot,
    ) -> Vec<String> {
        let p = *self.patient_at.entry(slot.p).or_insert_with(|| {
            self.patients.push(record("PATIENT", h, PATIENT_KEYS));
            self.patients.len() - 1
        });
        let (p, s) = *self.study_at.entry((slot.p, slot.s)).or_insert_with(|| {
            let studies = &mut self.patients[p].children;
            studies.push(record("STUDY", h, STUDY_KEYS));
            (p, studies.len() - 1)
        });
        let (p, s, e) = *self
            .series_at
            .entry((slot.p, slot.s, slot.e))
            .or_insert_with(|| {
                let series = &mut self.patients[p].children[s].children;
                series.push(record("SERIES", h, SERIES_KEYS));
                (p, s, series.len() - 1)
            });
        let images = &mut self.patients[p].children[s].children[e].children;
        let file_id = slot.file_id();
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

/// One stored instance (`stored`, zstd undone) as the file to put on the media: `None` when
/// it goes as it is, else the re-encoded file; its syntax; and why it was kept as stored when
/// `uncompressed` was asked and could not be done.
fn media_file(
    stored: &[u8],
    meta: &part10::ReadMeta,
    syntax: Syntax,
) -> (Option<Vec<u8>>, String, Option<String>) {
    if syntax == Syntax::Keep || meta.transfer_syntax == EXPLICIT_VR_LE {
        return (None, meta.transfer_syntax.clone(), None);
    }
    let native = matches!(
        meta.transfer_syntax.as_str(),
        "1.2.840.10008.1.2" | "1.2.840.10008.1.2.2"
    );
    if !native && !pacsbox_imaging::can_decompress(&meta.transfer_syntax) {
        return (
            None,
            meta.transfer_syntax.clone(),
            Some("this build cannot decompress it".into()),
        );
    }
    let converted = pacsbox_imaging::decompress_to_native(stored, EXPLICIT_VR_LE)
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
        Ok(f) => (Some(f), EXPLICIT_VR_LE.into(), None),
        Err(e) => (None, meta.transfer_syntax.clone(), Some(e)),
    }
}

/// One instance read and made ready for the media. Its file is the reader's buffer
/// ([`Buffers::file`]) unless it was re-encoded (`converted`).
struct Ready {
    converted: Option<Vec<u8>>,
    ts: String,
    /// Why it was kept as stored when `uncompressed` could not be done.
    kept: Option<String>,
    /// Its indexed attributes (the DICOMDIR keys).
    h: RawHeader,
    kind: Kind,
}

/// What one reading thread reuses from instance to instance: a fresh buffer for each file
/// would be page-faulted and zeroed by the kernel each time (large allocations are mmap'ed),
/// and a zstd context is ~100 KB of tables.
struct Buffers {
    packed: Vec<u8>,
    file: Vec<u8>,
    zstd: Option<zstd::bulk::Decompressor<'static>>,
}

impl Buffers {
    fn new() -> Buffers {
        Buffers {
            packed: Vec::new(),
            file: Vec::new(),
            zstd: None,
        }
    }
}

/// An instance's directory record type and, for a non-image one, its own keys.
type Kind = (&'static str, Option<Vec<records::Key>>);

fn prepare(
    archive: &Archive,
    rec: &InstanceRecord,
    syntax: Syntax,
    b: &mut Buffers,
) -> Result<Ready, String> {
    read_stored(archive, rec, b).map_err(|e| e.to_string())?;
    let stored = &b.file[..];
    let mut rest = stored;
    let meta = part10::read_header(&mut rest).map_err(|e| e.to_string())?;
    let h = scan::scan_dataset(rest, DatasetEncoding::of(&meta.transfer_syntax))
        .map_err(|e| e.to_string())?;
    let kind = records::kind_of(&meta.sop_class_uid);
    let kind = match records::keys(kind, stored) {
        Ok(keys) => (kind, keys),
        Err(e) => {
            // Still on the media, under a record every reader lists.
            tracing::warn!(sop = %meta.sop_instance_uid, error = %e, "export: IMAGE record instead");
            ("IMAGE", None)
        }
    };
    let (converted, ts, kept) = media_file(stored, &meta, syntax);
    Ok(Ready {
        converted,
        ts,
        kept,
        h,
        kind,
    })
}

/// Threads reading ahead of the writer of a stream (a ZIP), and how many instances they may
/// be ahead (each held whole in memory).
const STREAM_THREADS: usize = 2;
const WINDOW: usize = 4;

/// Writes `studies` as a file-set into `sink`. An instance that cannot be read is left out
/// and listed; a study that does not exist, or a write that fails, ends the export.
///
/// Every file's place is fixed from the index first ([`plan`]). Into a folder, each thread
/// (one per core) then reads an instance (zstd undone, decompressed when asked, walked for
/// the DICOMDIR keys) and writes its file itself; into a stream, files go in order from the
/// calling thread while a few threads read ahead. The DICOMDIR is made from what was read, in
/// index order, at the end.
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
    let mut listed = Vec::new();
    let mut all = Vec::new();
    let mut patient_of_study = HashMap::new();
    for study in studies {
        let instances = archive
            .study_instances(study)
            .map_err(|e| ExportError::Query(study.clone(), e.to_string()))?;
        if instances.is_empty() {
            return Err(ExportError::NoStudy(study.clone()));
        }
        report.studies += 1;
        if let Ok(Some(s)) = archive.index().study(study) {
            patient_of_study.insert(
                study.clone(),
                (s.patient_id.clone(), s.patient_name.clone()),
            );
            listed.push((study.clone(), s));
        }
        all.extend(instances);
    }
    let slots = plan(&all, &patient_of_study);
    let done = match sink.root() {
        Some(root) => write_parallel(archive, &all, &slots, syntax, root)?,
        None => write_in_order(archive, &all, &slots, syntax, sink)?,
    };
    let mut tree = Tree::default();
    for (((sop, rec), slot), d) in all.iter().zip(&slots).zip(done) {
        match d {
            Err(e) => {
                tracing::warn!(sop, error = %e, "export: instance left out");
                report.failed.push((sop.clone(), e));
            }
            Ok(Done {
                ts,
                kept,
                h,
                kind,
                len,
            }) => {
                if let Some(why) = kept {
                    report.kept.push((sop.clone(), ts.clone(), why));
                }
                tree.add(&h, rec, sop, &ts, kind, *slot);
                report.instances += 1;
                report.bytes += len;
                report.syntaxes.insert(ts);
            }
        }
    }
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

/// One instance written: what the DICOMDIR and the report need of it.
struct Done {
    ts: String,
    kept: Option<String>,
    h: RawHeader,
    kind: Kind,
    len: u64,
}

impl Ready {
    fn done(self, len: usize) -> Done {
        Done {
            ts: self.ts,
            kept: self.kept,
            h: self.h,
            kind: self.kind,
            len: len as u64,
        }
    }
}

/// Into a folder: every thread reads and writes whole instances, taking the next one not
/// taken. The folders are made first (once each). Returns each instance's outcome in `all`'s
/// order; a failed write stops every thread.
fn write_parallel(
    archive: &Archive,
    all: &[(String, InstanceRecord)],
    slots: &[Slot],
    syntax: Syntax,
    root: &Path,
) -> Result<Vec<Result<Done, String>>, ExportError> {
    let paths: Vec<PathBuf> = slots
        .iter()
        .map(|s| {
            s.file_id()
                .iter()
                .fold(root.to_path_buf(), |p, c| p.join(c))
        })
        .collect();
    let folders: BTreeSet<&Path> = paths.iter().filter_map(|p| p.parent()).collect();
    for f in folders {
        std::fs::create_dir_all(f).map_err(|e| ExportError::Write(f.display().to_string(), e))?;
    }
    let threads = std::thread::available_parallelism()
        .map_or(2, std::num::NonZero::get)
        .clamp(1, 4)
        .min(all.len());
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let failure: Mutex<Option<ExportError>> = Mutex::new(None);
    let mut done: Vec<Option<Result<Done, String>>> =
        std::iter::repeat_with(|| None).take(all.len()).collect();
    let results = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (next, stop, failure, paths) = (&next, &stop, &failure, &paths);
                scope.spawn(move || {
                    let mut b = Buffers::new();
                    let mut out = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((_, rec)) = all.get(i) else { break };
                        let ready = match prepare(archive, rec, syntax, &mut b) {
                            Ok(r) => r,
                            Err(e) => {
                                out.push((i, Err(e)));
                                continue;
                            }
                        };
                        let bytes = ready.converted.as_deref().unwrap_or(&b.file);
                        let len = bytes.len();
                        if let Err(e) = std::fs::write(&paths[i], bytes) {
                            stop.store(true, Ordering::Relaxed);
                            let path = paths[i].display().to_string();
                            failure
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .get_or_insert(ExportError::Write(path, e));
                            break;
                        }
                        out.push((i, Ok(ready.done(len))));
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_default())
            .collect::<Vec<_>>()
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    for (i, r) in results.into_iter().flatten() {
        done[i] = Some(r);
    }
    Ok(done
        .into_iter()
        .map(|d| d.unwrap_or_else(|| Err("not read (a reading thread stopped)".into())))
        .collect())
}

/// Into a stream: files put in `all`'s order by the calling thread while
/// [`STREAM_THREADS`] threads read at most [`WINDOW`] instances ahead of it.
fn write_in_order(
    archive: &Archive,
    all: &[(String, InstanceRecord)],
    slots: &[Slot],
    syntax: Syntax,
    sink: &mut dyn Sink,
) -> Result<Vec<Result<Done, String>>, ExportError> {
    type Got = Result<(Vec<u8>, Ready), String>;
    let next = AtomicUsize::new(0);
    let written = (Mutex::new(0usize), Condvar::new());
    let stop = AtomicBool::new(false);
    let lock = || written.0.lock().unwrap_or_else(|p| p.into_inner());
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Got)>();
    let mut done = Vec::with_capacity(all.len());
    std::thread::scope(|scope| -> Result<(), ExportError> {
        for _ in 0..STREAM_THREADS.min(all.len()) {
            let tx = tx.clone();
            let (next, stop, written) = (&next, &stop, &written);
            scope.spawn(move || {
                let mut b = Buffers::new();
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
                    let r = prepare(archive, rec, syntax, &mut b).map(|mut r| {
                        let file = r
                            .converted
                            .take()
                            .unwrap_or_else(|| std::mem::take(&mut b.file));
                        (file, r)
                    });
                    if tx.send((i, r)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut pending = BTreeMap::new();
        let mut write_all = || -> Result<(), ExportError> {
            for (i, r) in rx.iter() {
                pending.insert(i, r);
                while let Some(r) = pending.remove(&done.len()) {
                    let k = done.len();
                    *lock() = k + 1;
                    written.1.notify_all();
                    done.push(match r {
                        Err(e) => Err(e),
                        Ok((file, ready)) => {
                            let path = slots[k].file_id().join("/");
                            sink.put(&path, &file)
                                .map_err(|e| ExportError::Write(path.clone(), e))?;
                            Ok(ready.done(file.len()))
                        }
                    });
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
    Ok(done)
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

/// Reads the stored Part-10 file of `rec`, zstd undone, whole into `b.file`. Frames that say
/// their size (what `compact.rs` writes) are decompressed in one call into the reused buffer:
/// no streaming copies, no new buffer to fault in (both showed in the export's profile).
fn read_stored(archive: &Archive, rec: &InstanceRecord, b: &mut Buffers) -> io::Result<()> {
    let (path, zst) = stored_path(archive, rec);
    let with_path = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    b.file.clear();
    if !zst {
        return match std::fs::File::open(&path) {
            // Compressed between the look and the read: the archive's reader finds the `.zst`.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                archive.open_part10(rec)?.read_to_end(&mut b.file)?;
                Ok(())
            }
            Err(e) => Err(with_path(e)),
            Ok(mut f) => {
                f.read_to_end(&mut b.file).map_err(with_path)?;
                Ok(())
            }
        };
    }
    b.packed.clear();
    std::fs::File::open(&path)
        .and_then(|mut f| f.read_to_end(&mut b.packed))
        .map_err(with_path)?;
    match zstd::zstd_safe::get_frame_content_size(&b.packed) {
        Ok(Some(size)) if size <= usize::MAX as u64 => {
            let z = match &mut b.zstd {
                Some(z) => z,
                None => b
                    .zstd
                    .insert(zstd::bulk::Decompressor::new().map_err(with_path)?),
            };
            b.file.reserve(size as usize);
            let n = z
                .decompress_to_buffer(&b.packed[..], &mut b.file)
                .map_err(with_path)?;
            if n as u64 != size {
                return Err(with_path(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("zstd frame says {size} bytes, held {n}"),
                )));
            }
            Ok(())
        }
        _ => {
            zstd::stream::read::Decoder::new(&b.packed[..])
                .and_then(|mut d| d.read_to_end(&mut b.file))
                .map_err(with_path)?;
            Ok(())
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
