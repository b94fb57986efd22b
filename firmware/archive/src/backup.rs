//! A second copy of the archive in a folder (a USB disk, a mounted share): `pacsbox backup` and
//! `pacsbox restore`. Files are the truth, so the copy is the `archive/` tree alone; a restore
//! rebuilds the index from it.
//!
//! In the backup folder:
//! - `archive/…` — the files, same relative paths; each copied to `tmp/`, read back and
//!   compared by hash, then renamed into place; every [`SYNC_EVERY`] files one `syncfs` of the
//!   backup's file system makes them durable (a fsync per file made a backup of 10 000 small
//!   files take twice as long), and only then are they written to
//! - `progress.tsv` — what this run copied and made durable so far, so an interrupted run
//!   (disk unplugged, power cut) resumes where it was; a file copied but not yet recorded there
//!   is copied again;
//! - `manifest.tsv` — every file of the last complete run: path, size, mtime, xxh3;
//! - `COMPLETE` — written last, after everything is durable, and removed first by every run:
//!   a folder without it never claims to be a complete copy.
//!
//! Incremental: a file whose size and mtime are those recorded is not copied again (instances
//! arrive by rename and never change in place; an overwrite is a new file with a new mtime).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::layout;
use crate::maintenance::hash_file;

const COMPLETE: &str = "COMPLETE";
const MANIFEST: &str = "manifest.tsv";
const PROGRESS: &str = "progress.tsv";
/// Files copied between two flushes of `progress.tsv` (at most these are copied again after
/// an interruption).
const SYNC_EVERY: usize = 256;

#[derive(Clone, Debug, PartialEq)]
struct Entry {
    size: u64,
    mtime_ns: i128,
    hash: u64,
}

#[derive(Debug, Default, PartialEq)]
pub struct BackupReport {
    pub files: u64,
    pub copied: u64,
    pub bytes_copied: u64,
    pub removed: u64,
}

/// A scheduled backup as the status page shows it (the binary's schedule fills it in).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct BackupStatus {
    /// The backup folder.
    pub to: String,
    pub every_minutes: u64,
    pub running: bool,
    /// When the last complete backup was taken (its `COMPLETE` marker).
    pub last_complete_unix: Option<i64>,
    /// Files in it, and how many the last run copied (the rest were there already).
    pub last_files: u64,
    pub last_copied: u64,
    pub next_unix: Option<i64>,
    /// Why the last run failed; empty after a success.
    pub last_error: String,
    pub last_error_unix: Option<i64>,
    /// Whole hours without a complete backup, once past the alarm threshold (BACKUP OLD).
    pub overdue_hours: Option<u64>,
}

#[derive(Debug, Default, PartialEq)]
pub struct RestoreReport {
    pub files: u64,
    pub bytes: u64,
    pub indexed: u64,
}

fn read_entries(path: &Path, into: &mut HashMap<String, Entry>) -> io::Result<()> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for line in BufReader::new(f).lines() {
        let line = line?;
        let mut cols = line.split('\t');
        let (Some(rel), Some(size), Some(mtime), Some(hash)) =
            (cols.next(), cols.next(), cols.next(), cols.next())
        else {
            // A torn last line of an interrupted run: that file is copied again.
            continue;
        };
        let (Ok(size), Ok(mtime_ns), Ok(hash)) =
            (size.parse(), mtime.parse(), u64::from_str_radix(hash, 16))
        else {
            continue;
        };
        into.insert(
            rel.to_owned(),
            Entry {
                size,
                mtime_ns,
                hash,
            },
        );
    }
    Ok(())
}

fn line(rel: &str, e: &Entry) -> String {
    format!("{rel}\t{}\t{}\t{:016x}\n", e.size, e.mtime_ns, e.hash)
}

fn mtime_ns(m: &std::fs::Metadata) -> i128 {
    i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec())
}

/// Every file under `dir`, as `/`-separated paths relative to `base`.
fn files_under(base: &Path, dir: &Path, out: &mut Vec<String>) -> io::Result<()> {
    let mut paths = Vec::new();
    crate::maintenance::walk_files(dir, &mut paths)?;
    out.extend(paths.iter().filter_map(|p| {
        p.strip_prefix(base)
            .ok()
            .map(|rel| rel.to_string_lossy().into_owned())
    }));
    Ok(())
}

/// Copies `from` to `to` through `tmp` (read back and compared; not yet synced); returns its
/// hash.
fn copy_verified(from: &Path, to: &Path, tmp: &Path) -> io::Result<u64> {
    let mut src = BufReader::with_capacity(256 << 10, File::open(from)?);
    let mut out = File::create(tmp)?;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n])?;
    }
    drop(out);
    let hash = h.digest();
    let copied = hash_file(tmp)?;
    if copied != hash {
        let _ = std::fs::remove_file(tmp);
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "copy of {} reads back differently ({copied:016x}, not {hash:016x})",
                from.display()
            ),
        ));
    }
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::rename(tmp, to)?;
    Ok(hash)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `text` to `dir/name` durably (temp name, fsync, rename, fsync of the folder).
fn write_durably(dir: &Path, name: &str, text: &str) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// Whether `dir` holds a complete backup (its `COMPLETE` marker), and what that says.
pub fn backup_complete(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join(COMPLETE)).ok()
}

/// When the complete backup in `dir` was taken (the `unix` line of its marker), so a schedule
/// knows after a restart how old the copy is.
pub fn completed_unix(dir: &Path) -> Option<i64> {
    backup_complete(dir)?
        .lines()
        .find_map(|l| l.strip_prefix("unix ")?.trim().parse().ok())
}

/// Copies the archive of `root` into `dest` (see the module comment). Reads only files, so it
/// runs while the box serves. An error leaves `dest` without `COMPLETE`; the next run resumes.
pub fn backup(root: &Path, dest: &Path, now_unix: i64) -> io::Result<BackupReport> {
    backup_until(root, dest, now_unix, &AtomicBool::new(false))
}

/// [`backup`], giving up between two files once `stop` is set (the box is shutting down): an
/// [`io::ErrorKind::Interrupted`] error, and the next run resumes from `progress.tsv`.
pub fn backup_until(
    root: &Path,
    dest: &Path,
    now_unix: i64,
    stop: &AtomicBool,
) -> io::Result<BackupReport> {
    let tmp = dest.join("tmp");
    std::fs::create_dir_all(&tmp)?;
    match std::fs::remove_file(dest.join(COMPLETE)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => sync_dir(dest)?,
    }
    let mut known = HashMap::new();
    read_entries(&dest.join(MANIFEST), &mut known)?;
    read_entries(&dest.join(PROGRESS), &mut known)?;
    let mut progress = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dest.join(PROGRESS))?;
    let mut rels = Vec::new();
    files_under(root, &layout::archive_dir(root), &mut rels)?;
    rels.sort();
    let mut report = BackupReport::default();
    let mut now_known: Vec<(String, Entry)> = Vec::with_capacity(rels.len());
    let volume = File::open(dest)?;
    let mut unsynced: Vec<String> = Vec::new();
    for rel in rels {
        if stop.load(Ordering::Relaxed) {
            flush(&volume, &mut unsynced, &mut progress)?;
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "stopped before the end; the next run resumes",
            ));
        }
        let from = root.join(&rel);
        let meta = match std::fs::metadata(&from) {
            Ok(m) => m,
            // Swapped for its .dcm.zst by compression meanwhile: the next run copies that.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let to = dest.join(&rel);
        let (size, mtime) = (meta.len(), mtime_ns(&meta));
        let same = known
            .get(&rel)
            .is_some_and(|e| e.size == size && e.mtime_ns == mtime)
            && std::fs::metadata(&to).is_ok_and(|m| m.len() == size);
        let entry = if same {
            known
                .get(&rel)
                .cloned()
                .ok_or_else(|| io::Error::other("vanished entry"))?
        } else {
            let hash = match copy_verified(&from, &to, &tmp.join("copying")) {
                Err(e) if e.kind() == io::ErrorKind::NotFound && !from.exists() => continue,
                other => other.map_err(|e| io::Error::new(e.kind(), format!("{rel}: {e}")))?,
            };
            report.copied += 1;
            report.bytes_copied += size;
            let e = Entry {
                size,
                mtime_ns: mtime,
                hash,
            };
            unsynced.push(line(&rel, &e));
            if unsynced.len() >= SYNC_EVERY {
                flush(&volume, &mut unsynced, &mut progress)?;
            }
            e
        };
        report.files += 1;
        now_known.push((rel, entry));
    }
    flush(&volume, &mut unsynced, &mut progress)?;
    // Files the archive no longer has (compressed, overwritten elsewhere): the copy mirrors it.
    let mut in_backup = Vec::new();
    files_under(dest, &dest.join("archive"), &mut in_backup)?;
    let keep: std::collections::HashSet<&str> = now_known.iter().map(|(r, _)| r.as_str()).collect();
    for rel in in_backup {
        if !keep.contains(rel.as_str()) {
            std::fs::remove_file(dest.join(&rel))?;
            report.removed += 1;
        }
    }
    let manifest: String = now_known.iter().map(|(r, e)| line(r, e)).collect();
    write_durably(dest, MANIFEST, &manifest)?;
    std::fs::remove_file(dest.join(PROGRESS))?;
    write_durably(
        dest,
        COMPLETE,
        &format!(
            "complete\nunix {now_unix}\nfiles {}\nbytes {}\n",
            report.files,
            now_known.iter().map(|(_, e)| e.size).sum::<u64>()
        ),
    )?;
    Ok(report)
}

/// Makes the files copied since the last flush durable (one `syncfs` of the backup's file
/// system: data, names and folders), then records them in `progress.tsv`.
fn flush(volume: &File, copied: &mut Vec<String>, progress: &mut File) -> io::Result<()> {
    if copied.is_empty() {
        return Ok(());
    }
    crate::commit::sync_volume(volume)?;
    progress.write_all(copied.concat().as_bytes())?;
    copied.clear();
    progress.sync_data()
}

/// Restores a complete backup in `src` into the data folder `root` (whose `archive/` must be
/// empty: a new box), every file checked against the manifest's hash, then rebuilds the index.
pub fn restore(
    src: &Path,
    root: &Path,
) -> Result<RestoreReport, Box<dyn std::error::Error + Send + Sync>> {
    if backup_complete(src).is_none() {
        return Err(format!(
            "{} holds no complete backup (no {COMPLETE}: an interrupted run; run the backup again)",
            src.display()
        )
        .into());
    }
    let mut existing = Vec::new();
    files_under(root, &layout::archive_dir(root), &mut existing)?;
    if !existing.is_empty() || layout::index_path(root).exists() {
        return Err(format!(
            "{} already holds an archive or an index: restore goes onto an empty data folder",
            root.display()
        )
        .into());
    }
    let mut manifest = HashMap::new();
    read_entries(&src.join(MANIFEST), &mut manifest)?;
    let tmp = layout::tmp_dir(root);
    std::fs::create_dir_all(&tmp)?;
    let volume = File::open(root)?;
    let mut report = RestoreReport::default();
    let mut rels: Vec<&String> = manifest.keys().collect();
    rels.sort();
    for rel in rels {
        let e = &manifest[rel];
        let hash = copy_verified(&src.join(rel), &root.join(rel), &tmp.join("restoring"))?;
        if hash != e.hash {
            return Err(
                format!("{rel}: the backup's copy does not match its manifest hash").into(),
            );
        }
        report.files += 1;
        report.bytes += e.size;
    }
    crate::commit::sync_volume(&volume)?;
    report.indexed = crate::maintenance::reindex(root)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(root: &Path, rel: &str, data: &[u8]) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }

    #[test]
    fn incremental_resumable_and_never_complete_when_interrupted() {
        let d = tempfile::tempdir().unwrap();
        let (root, dest) = (d.path().join("data"), d.path().join("usb"));
        put(&root, "archive/1.2/1.3/1.4.dcm", b"first");
        put(&root, "archive/1.2/1.3/1.5.dcm", b"second");
        let r = backup(&root, &dest, 1).unwrap();
        assert_eq!((r.files, r.copied), (2, 2));
        assert!(backup_complete(&dest).unwrap().contains("files 2"));
        assert_eq!(
            std::fs::read(dest.join("archive/1.2/1.3/1.4.dcm")).unwrap(),
            b"first"
        );
        // Nothing new: nothing copied. One new file and one gone: only those.
        assert_eq!(backup(&root, &dest, 2).unwrap().copied, 0);
        put(&root, "archive/1.2/1.3/1.6.dcm", b"third");
        std::fs::remove_file(root.join("archive/1.2/1.3/1.4.dcm")).unwrap();
        let r = backup(&root, &dest, 3).unwrap();
        assert_eq!((r.files, r.copied, r.removed), (2, 1, 1));
        assert!(!dest.join("archive/1.2/1.3/1.4.dcm").exists());
        // An interrupted run: the marker is gone from its start, its progress is kept.
        std::fs::remove_file(dest.join(COMPLETE)).unwrap();
        std::fs::write(dest.join(PROGRESS), "archive/torn\t1").unwrap();
        assert!(backup_complete(&dest).is_none());
        let err = restore(&dest, &d.path().join("new")).unwrap_err();
        assert!(err.to_string().contains("no complete backup"), "{err}");
        let r = backup(&root, &dest, 4).unwrap();
        assert_eq!(r.copied, 0, "the manifest still vouches for the files");
        assert!(backup_complete(&dest).is_some());
        assert!(!dest.join(PROGRESS).exists());
        assert_eq!(completed_unix(&dest), Some(4));
    }

    #[test]
    fn a_stopped_run_claims_nothing_and_the_next_one_completes() {
        let d = tempfile::tempdir().unwrap();
        let (root, dest) = (d.path().join("data"), d.path().join("usb"));
        put(&root, "archive/1.2/1.3/1.4.dcm", b"first");
        let err = backup_until(&root, &dest, 1, &AtomicBool::new(true)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Interrupted);
        assert!(backup_complete(&dest).is_none());
        assert_eq!(completed_unix(&dest), None);
        assert_eq!(backup(&root, &dest, 2).unwrap().copied, 1);
        assert_eq!(completed_unix(&dest), Some(2));
    }
}
