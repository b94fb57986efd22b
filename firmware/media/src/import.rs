//! Media brought in: a folder (a mounted CD/DVD, a USB stick) or a ZIP. The DICOMDIR, when
//! there is one that reads and whose files exist, says which files to take; otherwise every
//! file of the tree is a candidate. Each file goes through [`Archive::begin_store`] — the same
//! validation, durable commit, index and duplicate handling as a C-STORE — on a few threads,
//! so that one commit batch (one sync) covers several files. A file that is not DICOM or is
//! truncated is reported by name and skipped; the rest is imported.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use pacsbox_archive::part10;
use pacsbox_archive::scan::{self, tags};
use pacsbox_archive::transfer_syntax::DatasetEncoding;
use pacsbox_archive::{Archive, StoreError, StoreOutcome, StoreRequest};

use crate::dicomdir;

/// Source AE (0002,0016) of the instances an import stores.
pub const IMPORT_AE: &str = "PACSBOX-MEDIA";

/// Threads storing at once (as the anonymizer's new-study path, for the same reason).
const STORE_THREADS: usize = 8;

/// Files of a tree that are never DICOM images on media (the media's own viewer, its
/// autorun and text files): not candidates when the tree is scanned.
const NOT_CANDIDATES: [&str; 12] = [
    "txt", "htm", "html", "inf", "js", "css", "exe", "ini", "ico", "png", "jpg", "gif",
];

/// A folder or a ZIP file.
pub enum Source {
    Dir(PathBuf),
    Zip(Box<Mutex<zip::ZipArchive<File>>>),
}

impl Source {
    pub fn open(path: &Path) -> io::Result<Source> {
        let meta = std::fs::metadata(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        if meta.is_dir() {
            return Ok(Source::Dir(path.to_path_buf()));
        }
        let f = File::open(path)?;
        let z = zip::ZipArchive::new(f).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not a folder nor a readable ZIP: {e}", path.display()),
            )
        })?;
        Ok(Source::Zip(Box::new(Mutex::new(z))))
    }

    /// Every file, `/`-separated relative path and size, sorted by path.
    fn files(&self) -> io::Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        match self {
            Source::Dir(root) => {
                let mut stack = vec![PathBuf::new()];
                while let Some(rel) = stack.pop() {
                    let dir = root.join(&rel);
                    let entries = std::fs::read_dir(&dir)
                        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
                    for e in entries {
                        let e = e?;
                        let r = rel.join(e.file_name());
                        let t = e.file_type()?;
                        if t.is_dir() {
                            stack.push(r);
                        } else if t.is_file() {
                            out.push((r.to_string_lossy().into_owned(), e.metadata()?.len()));
                        }
                    }
                }
            }
            Source::Zip(z) => {
                let mut z = z.lock().unwrap_or_else(|p| p.into_inner());
                for i in 0..z.len() {
                    let e = z.by_index_raw(i).map_err(io::Error::other)?;
                    if e.is_file() {
                        let name = e.name().map_err(io::Error::other)?.into_owned();
                        out.push((name, e.size()));
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn read(&self, rel: &str) -> io::Result<Vec<u8>> {
        match self {
            Source::Dir(root) => std::fs::read(root.join(rel)),
            Source::Zip(z) => {
                let mut z = z.lock().unwrap_or_else(|p| p.into_inner());
                let mut e = z.by_name(rel).map_err(io::Error::other)?;
                let mut buf = Vec::with_capacity(usize::try_from(e.size()).unwrap_or(0));
                e.read_to_end(&mut buf)?;
                Ok(buf)
            }
        }
    }
}

/// How the files to import were found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Listing {
    Dicomdir,
    /// No DICOMDIR: the tree was scanned.
    NoDicomdir,
    /// A DICOMDIR that could not be used (why): the tree was scanned.
    BrokenDicomdir(String),
}

/// One file to import.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Found {
    pub path: String,
    pub size: u64,
    /// Its study, when known before reading it (from the DICOMDIR, or a survey's scan).
    pub study_uid: Option<String>,
}

/// A study found on the media.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct FoundStudy {
    pub study_uid: String,
    pub patient_id: String,
    pub patient_name: String,
    pub study_date: String,
    pub description: String,
    pub files: u64,
    pub bytes: u64,
}

/// What is on the media.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Survey {
    pub listing: Listing,
    pub files: Vec<Found>,
    /// Files of the tree that are not candidates (text, web pages, a viewer).
    pub ignored: usize,
    /// Studies found (empty when the tree was listed without reading the files).
    pub studies: Vec<FoundStudy>,
    /// Files the DICOMDIR lists that are not there.
    pub missing: Vec<String>,
}

/// Finds `want` (a DICOMDIR's file ID) among `names` the way disc readers do: case aside and
/// an ISO 9660 version (`;1`) or a lone trailing dot ignored.
fn normal(name: &str) -> String {
    let n = name.split(';').next().unwrap_or(name);
    n.trim_end_matches('.').to_ascii_uppercase()
}

fn is_candidate(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    if normal(name) == "DICOMDIR" {
        return false;
    }
    match name.rsplit_once('.') {
        Some((_, ext)) => !NOT_CANDIDATES.contains(&ext.to_ascii_lowercase().as_str()),
        None => true,
    }
}

/// Lists what `source` holds. With `details`, a tree without a usable DICOMDIR has each
/// file's header read for the studies list (a full read of the media).
pub fn survey(source: &Source, details: bool) -> io::Result<Survey> {
    let all = source.files()?;
    // The shallowest DICOMDIR.
    let dicomdir = all
        .iter()
        .filter(|(p, _)| normal(p.rsplit('/').next().unwrap_or(p)) == "DICOMDIR")
        .min_by_key(|(p, _)| p.matches('/').count());
    let listing = match dicomdir {
        None => Listing::NoDicomdir,
        Some((p, _)) => match from_dicomdir(source, p, &all) {
            Ok(s) => return Ok(s),
            Err(why) => {
                tracing::warn!(dicomdir = %p, why, "import: DICOMDIR not used, scanning the tree");
                Listing::BrokenDicomdir(why)
            }
        },
    };
    let mut files = Vec::new();
    let mut ignored = 0;
    for (path, size) in all {
        if is_candidate(&path) {
            files.push(Found {
                path,
                size,
                study_uid: None,
            });
        } else {
            ignored += 1;
        }
    }
    let mut studies = Vec::new();
    if details {
        let mut by_uid: BTreeMap<String, FoundStudy> = BTreeMap::new();
        for f in &mut files {
            let Ok(bytes) = source.read(&f.path) else {
                continue;
            };
            let Ok((_, h)) = header(&bytes) else { continue };
            let text = |t| {
                h.get(&t)
                    .map(|v| {
                        String::from_utf8_lossy(v)
                            .trim_matches([' ', '\0'])
                            .to_owned()
                    })
                    .unwrap_or_default()
            };
            let uid = text(tags::STUDY_INSTANCE_UID);
            let s = by_uid.entry(uid.clone()).or_insert_with(|| FoundStudy {
                study_uid: uid.clone(),
                patient_id: text(tags::PATIENT_ID),
                patient_name: text(tags::PATIENT_NAME),
                study_date: text(tags::STUDY_DATE),
                description: text(tags::STUDY_DESCRIPTION),
                ..FoundStudy::default()
            });
            s.files += 1;
            s.bytes += f.size;
            f.study_uid = Some(uid);
        }
        studies = by_uid.into_values().collect();
    }
    Ok(Survey {
        listing,
        files,
        ignored,
        studies,
        missing: Vec::new(),
    })
}

/// The files a DICOMDIR lists, resolved against the tree; an error (why) when it does not
/// read or none of its files are there.
fn from_dicomdir(source: &Source, path: &str, all: &[(String, u64)]) -> Result<Survey, String> {
    let bytes = source.read(path).map_err(|e| e.to_string())?;
    let listed = dicomdir::read(&bytes)?;
    let base = path.rsplit_once('/').map_or("", |(d, _)| d);
    let by_normal: std::collections::HashMap<String, (&String, u64)> = all
        .iter()
        .map(|(p, s)| {
            (
                p.split('/').map(normal).collect::<Vec<_>>().join("/"),
                (p, *s),
            )
        })
        .collect();
    let mut files = Vec::new();
    let mut missing = Vec::new();
    let mut studies: BTreeMap<String, FoundStudy> = BTreeMap::new();
    let mut seen = HashSet::new();
    for l in &listed {
        let mut key: Vec<String> = base
            .split('/')
            .filter(|s| !s.is_empty())
            .map(normal)
            .collect();
        key.extend(l.file_id.iter().map(|c| normal(c)));
        let key = key.join("/");
        let Some((real, size)) = by_normal.get(&key) else {
            missing.push(l.file_id.join("\\"));
            continue;
        };
        if !seen.insert(key.clone()) {
            continue;
        }
        let s = studies
            .entry(l.study_uid.clone())
            .or_insert_with(|| FoundStudy {
                study_uid: l.study_uid.clone(),
                patient_id: l.patient_id.clone(),
                patient_name: l.patient_name.clone(),
                study_date: l.study_date.clone(),
                description: l.study_description.clone(),
                ..FoundStudy::default()
            });
        s.files += 1;
        s.bytes += size;
        files.push(Found {
            path: (*real).clone(),
            size: *size,
            study_uid: Some(l.study_uid.clone()),
        });
    }
    if files.is_empty() {
        return Err(if listed.is_empty() {
            "it lists no files".into()
        } else {
            format!("none of its {} files are there", listed.len())
        });
    }
    let listed_paths: HashSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let ignored = all
        .iter()
        .filter(|(p, _)| !listed_paths.contains(p.as_str()))
        .count();
    Ok(Survey {
        listing: Listing::Dicomdir,
        files,
        ignored,
        studies: studies.into_values().collect(),
        missing,
    })
}

/// A Part-10 file's File Meta and indexed attributes (the data set walked to its end: a
/// truncated one is refused here already).
fn header(bytes: &[u8]) -> Result<(part10::ReadMeta, scan::RawHeader), String> {
    let mut rest = bytes;
    let meta = part10::read_header(&mut rest).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            "not a DICOM file (too short for a Part-10 header)".to_owned()
        } else {
            format!("not a DICOM Part-10 file: {e}")
        }
    })?;
    let h = scan::scan_dataset(rest, DatasetEncoding::of(&meta.transfer_syntax))
        .map_err(|e| e.to_string())?;
    Ok((meta, h))
}

/// Progress of a running import, shared with whoever shows it.
#[derive(Debug, Default)]
pub struct Progress {
    pub total: AtomicUsize,
    pub done: AtomicUsize,
    pub bytes: AtomicU64,
    pub stored: AtomicUsize,
    pub duplicates: AtomicUsize,
    /// (file, why), in the order they failed.
    pub failed: Mutex<Vec<(String, String)>>,
}

/// What an import did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ImportReport {
    pub files: usize,
    pub stored: usize,
    pub duplicates: usize,
    pub bytes: u64,
    pub failed: Vec<(String, String)>,
    /// Studies the stored or duplicate instances belong to.
    pub studies: BTreeSet<String>,
}

impl ImportReport {
    pub fn summary(&self) -> String {
        format!(
            "{} files: {} imported, {} duplicates, {} failed, {} studies",
            self.files,
            self.stored,
            self.duplicates,
            self.failed.len(),
            self.studies.len()
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The archive cannot store (disk full, shutting down, …): the import stopped there.
    #[error("{file}: {error}")]
    Archive { file: String, error: StoreError },
}

/// What an import does besides storing.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The clinic's own Patient ID for a patient from another hospital: it replaces Patient ID,
    /// and the original goes into Other Patient IDs Sequence (0010,1002) as a new item (Patient
    /// ID, Type of Patient ID `TEXT`), the items already there kept.
    pub reconcile_patient_id: Option<String>,
}

/// Imports `files` of `source` (a survey's, possibly narrowed to chosen studies).
pub fn import(
    archive: &Archive,
    source: &Source,
    files: &[Found],
    opts: &Options,
    progress: &Progress,
) -> Result<ImportReport, ImportError> {
    progress.total.store(files.len(), Ordering::Relaxed);
    let next = AtomicUsize::new(0);
    let studies = Mutex::new(BTreeSet::new());
    let stop: Mutex<Option<ImportError>> = Mutex::new(None);
    let fail = |path: &str, why: String| {
        tracing::warn!(file = path, why, "import: file skipped");
        progress
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((path.to_owned(), why));
    };
    std::thread::scope(|scope| {
        for _ in 0..STORE_THREADS.min(files.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(f) = files.get(i) else { break };
                    if stop.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
                        break;
                    }
                    match store_one(archive, source, f, opts) {
                        Ok((outcome, study, n)) => {
                            progress.bytes.fetch_add(n, Ordering::Relaxed);
                            if outcome == StoreOutcome::Stored {
                                progress.stored.fetch_add(1, Ordering::Relaxed);
                            } else {
                                progress.duplicates.fetch_add(1, Ordering::Relaxed);
                            }
                            studies
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(study);
                        }
                        Err(One::Skip(why)) => fail(&f.path, why),
                        Err(One::Stop(error)) => {
                            fail(&f.path, error.to_string());
                            *stop.lock().unwrap_or_else(|p| p.into_inner()) =
                                Some(ImportError::Archive {
                                    file: f.path.clone(),
                                    error,
                                });
                        }
                    }
                    progress.done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    if let Some(e) = stop.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let mut failed = progress
        .failed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    failed.sort();
    Ok(ImportReport {
        files: files.len(),
        stored: progress.stored.load(Ordering::Relaxed),
        duplicates: progress.duplicates.load(Ordering::Relaxed),
        bytes: progress.bytes.load(Ordering::Relaxed),
        failed,
        studies: studies.into_inner().unwrap_or_else(|p| p.into_inner()),
    })
}

enum One {
    /// This file is not stored (why); go on.
    Skip(String),
    /// The archive refuses every store now.
    Stop(StoreError),
}

fn store_one(
    archive: &Archive,
    source: &Source,
    f: &Found,
    opts: &Options,
) -> Result<(StoreOutcome, String, u64), One> {
    let bytes = source
        .read(&f.path)
        .map_err(|e| One::Skip(format!("reading: {e}")))?;
    let (meta, h) = header(&bytes).map_err(One::Skip)?;
    let bytes = match &opts.reconcile_patient_id {
        Some(id) => reconcile(&bytes, &meta.transfer_syntax, &h, id).map_err(One::Skip)?,
        None => bytes,
    };
    let study = h
        .get(&tags::STUDY_INSTANCE_UID)
        .map(|v| {
            String::from_utf8_lossy(v)
                .trim_matches([' ', '\0'])
                .to_owned()
        })
        .unwrap_or_default();
    let ds = bytes.len() - {
        let mut rest = &bytes[..];
        part10::read_header(&mut rest).map_err(|e| One::Skip(e.to_string()))?;
        rest.len()
    };
    let req = StoreRequest {
        sop_class_uid: meta.sop_class_uid,
        sop_instance_uid: meta.sop_instance_uid,
        transfer_syntax: meta.transfer_syntax,
        source_ae: IMPORT_AE.to_owned(),
    };
    let result = archive
        .begin_store(req)
        .and_then(|incoming| incoming.receive(&bytes[ds..]));
    match result {
        Ok(o) => Ok((o, study, bytes.len() as u64)),
        Err(e @ (StoreError::CannotUnderstand(_) | StoreError::Mismatch(_))) => {
            Err(One::Skip(e.to_string()))
        }
        Err(e) => Err(One::Stop(e)),
    }
}

/// One Other Patient IDs Sequence item holding `old_id`, in the data set's encoding.
fn other_id_item(old_id: &[u8], enc: DatasetEncoding) -> Vec<u8> {
    let big = enc == DatasetEncoding::ExplicitBig;
    let explicit = enc != DatasetEncoding::ImplicitLittle;
    // `n` low bytes of `v` in the data set's byte order.
    let word = |v: u32, n: usize| -> Vec<u8> {
        if big {
            v.to_be_bytes()[4 - n..].to_vec()
        } else {
            v.to_le_bytes()[..n].to_vec()
        }
    };
    let mut body = Vec::new();
    let mut put = |tag: (u16, u16), vr: &[u8; 2], v: &[u8]| {
        let mut v = v.to_vec();
        if v.len() % 2 == 1 {
            v.push(b' ');
        }
        body.extend(word(tag.0.into(), 2));
        body.extend(word(tag.1.into(), 2));
        if explicit {
            body.extend(vr);
            body.extend(word(v.len() as u32, 2));
        } else {
            body.extend(word(v.len() as u32, 4));
        }
        body.extend(v);
    };
    put(tags::PATIENT_ID, b"LO", old_id);
    // Type of Patient ID (0010,0022): retired in PS3.3 but the Type 1 key of the items that
    // older readers look for.
    put((0x0010, 0x0022), b"CS", b"TEXT");
    let mut item = Vec::with_capacity(body.len() + 8);
    item.extend(word(0xFFFE, 2));
    item.extend(word(0xE000, 2));
    item.extend(word(body.len() as u32, 4));
    item.extend(body);
    item
}

const OTHER_PATIENT_IDS: (u16, u16) = (0x0010, 0x1002);

/// The file with Patient ID `new_id`, the original appended to Other Patient IDs Sequence.
fn reconcile(bytes: &[u8], ts: &str, h: &scan::RawHeader, new_id: &str) -> Result<Vec<u8>, String> {
    use pacsbox_archive::edit::rewrite::{Change, Replacement, rewrite_part10};
    let old_id: Vec<u8> = h
        .get(&tags::PATIENT_ID)
        .map(|v| {
            let end = v
                .iter()
                .rposition(|&b| b != b' ' && b != 0)
                .map_or(0, |i| i + 1);
            v[..end].to_vec()
        })
        .unwrap_or_default();
    if old_id == new_id.as_bytes() {
        return Ok(bytes.to_vec());
    }
    let item = other_id_item(&old_id, DatasetEncoding::of(ts));
    let changes = |seq: Vec<u8>| {
        vec![
            Replacement {
                tag: tags::PATIENT_ID,
                vr: *b"LO",
                change: Change::Text(new_id.to_owned()),
            },
            Replacement {
                tag: OTHER_PATIENT_IDS,
                vr: *b"SQ",
                change: Change::Raw(seq),
            },
        ]
    };
    let why = |e: pacsbox_archive::edit::rewrite::RewriteError| {
        format!("reconciling the patient ID: {e}")
    };
    let mut out = Vec::with_capacity(bytes.len() + 128);
    let rw = rewrite_part10(bytes, &mut out, &changes(item.clone())).map_err(why)?;
    match rw.old.get(&OTHER_PATIENT_IDS) {
        // There were items: written again with ours after them.
        Some(old) if !old.is_empty() => {
            let mut seq = old.clone();
            seq.extend_from_slice(&item);
            out.clear();
            rewrite_part10(bytes, &mut out, &changes(seq)).map_err(why)?;
        }
        // A sequence of undefined length (its items not kept by the walk): not replaced blind.
        Some(_) => {
            return Err(
                "reconciling the patient ID: its Other Patient IDs Sequence has an undefined \
                 length; not rewritten"
                    .into(),
            );
        }
        None => {}
    }
    Ok(out)
}
