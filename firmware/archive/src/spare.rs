//! Spare temp files for incoming instances, made ahead of need by a thread of their own, with
//! names that are already durable when a store takes one.
//!
//! Two costs leave a C-STORE's path this way. Creating a file is an inode allocation, and on
//! ext4 that scans the block group past every recently deleted inode (`recently_deleted`): a
//! quarter of the server's CPU in a 1-association large-image ingest, between a C-STORE's
//! command and its data. And a new name in `tmp/` is durable only after an fsync of `tmp/`,
//! which in `fsync` durability mode every commit batch had to pay. The keeper creates a few
//! named files (`tmp/spare-<pid>-<n>`), fsyncs `tmp/` once for all of them and only then
//! hands them out: a store writes into a file whose name is already on disk, so its batch
//! syncs the file's data and the journal, not the directory (`CommitJob::name_durable`).
//!
//! A crash leaves the unused spares in `tmp/`: empty, never named by a journal record, so
//! start-up recovery deletes them with every other leftover there and indexes none. When no
//! spare is ready (a burst of more associations than spares, a keeper that cannot create
//! files), ingest creates its file itself and the batch syncs `tmp/` as before.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Spares kept ready: more than the associations that commonly store at once.
const SPARES: usize = 8;
/// The keeper refills when this few are left, so one fsync of `tmp/` names several spares.
const LOW_WATER: usize = SPARES / 2;
/// Wait before trying again after the keeper failed to create or sync spares (disk full...).
const RETRY: Duration = Duration::from_secs(1);

/// A spare: its open file and its (durable) name in `tmp/`.
pub(crate) struct Spare {
    pub file: File,
    pub path: PathBuf,
}

#[derive(Default)]
struct State {
    files: Vec<Spare>,
    closed: bool,
}

#[derive(Default)]
pub(crate) struct Spares {
    state: Mutex<State>,
    wanted: Condvar,
}

impl Spares {
    /// Starts the thread that keeps spares in `tmp_dir`.
    pub(crate) fn start(tmp_dir: PathBuf) -> Arc<Spares> {
        let spares = Arc::new(Spares::default());
        let keeper = spares.clone();
        let started = std::thread::Builder::new()
            .name("tmp-spares".into())
            .spawn(move || keeper.keep(&tmp_dir));
        if let Err(e) = started {
            tracing::warn!(error = %e, "no spare temp files: creating each on demand");
        }
        spares
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn keep(&self, tmp_dir: &Path) {
        let mut next = 0u64;
        loop {
            let missing = {
                let mut st = self.lock();
                while !st.closed && st.files.len() > LOW_WATER {
                    st = self.wanted.wait(st).unwrap_or_else(|p| p.into_inner());
                }
                if st.closed {
                    return;
                }
                SPARES - st.files.len()
            };
            match make_spares(tmp_dir, missing, &mut next) {
                Ok(made) => {
                    let mut st = self.lock();
                    if st.closed {
                        drop(st);
                        remove(made);
                        return;
                    }
                    st.files.extend(made);
                }
                Err(e) => {
                    tracing::warn!(error = %e, dir = %tmp_dir.display(), "cannot make spare temp files: stores create their own until this works again");
                    let st = self.lock();
                    if st.closed {
                        return;
                    }
                    drop(self.wanted.wait_timeout(st, RETRY));
                }
            }
        }
    }

    /// A spare, or `None`: then the caller creates its file itself.
    pub(crate) fn take(&self) -> Option<Spare> {
        let (spare, left) = {
            let mut st = self.lock();
            let spare = st.files.pop();
            (spare, st.files.len())
        };
        if left <= LOW_WATER {
            self.wanted.notify_one();
        }
        spare
    }

    /// Ends the keeper thread and deletes the spares left.
    pub(crate) fn close(&self) {
        let left = {
            let mut st = self.lock();
            st.closed = true;
            std::mem::take(&mut st.files)
        };
        self.wanted.notify_all();
        remove(left);
    }
}

/// Creates `n` empty files in `dir`, then makes their names durable with one fsync of `dir`.
/// On failure, removes what it created.
fn make_spares(dir: &Path, n: usize, next: &mut u64) -> io::Result<Vec<Spare>> {
    let mut made = Vec::with_capacity(n);
    let result = (|| {
        while made.len() < n {
            let path = dir.join(format!("spare-{}-{next}", std::process::id()));
            *next += 1;
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&path);
            match file {
                Ok(file) => made.push(Spare { file, path }),
                // a leftover of an earlier process with our pid: take the next number
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        File::open(dir)?.sync_all()
    })();
    match result {
        Ok(()) => Ok(made),
        Err(e) => {
            remove(made);
            Err(e)
        }
    }
}

fn remove(spares: Vec<Spare>) {
    for s in spares {
        let _ = std::fs::remove_file(&s.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn take_one(spares: &Spares) -> Spare {
        // the keeper makes the first spares right away; wait for one (bounded)
        for _ in 0..500 {
            if let Some(s) = spares.take() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no spare made within 5 s");
    }

    #[test]
    fn a_spare_is_a_named_empty_file_and_close_deletes_the_unused_ones() {
        let dir = tempfile::tempdir().unwrap();
        let spares = Spares::start(dir.path().to_path_buf());
        let mut spare = take_one(&spares);
        assert_eq!(spare.path.parent(), Some(dir.path()));
        assert_eq!(spare.file.metadata().unwrap().len(), 0);
        spare.file.write_all(b"data set").unwrap();
        let mut back = String::new();
        File::open(&spare.path)
            .unwrap()
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, "data set");
        // every name in tmp/ is a spare's
        assert!(
            names(dir.path())
                .iter()
                .all(|n| n.starts_with(&format!("spare-{}-", std::process::id())))
        );
        spares.close();
        assert!(spares.take().is_none());
        // the taken one stays (its store owns it); the unused ones are gone
        let own = spare
            .path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert_eq!(names(dir.path()), [own]);
    }

    #[test]
    fn spares_are_refilled_in_batches_once_half_are_taken() {
        let dir = tempfile::tempdir().unwrap();
        let spares = Spares::start(dir.path().to_path_buf());
        let mut taken = vec![take_one(&spares)];
        // once full, taking down to the low-water mark refills to full again
        for _ in 0..500 {
            if spares.lock().files.len() == SPARES {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        while spares.lock().files.len() > LOW_WATER {
            taken.push(take_one(&spares));
        }
        for _ in 0..500 {
            if spares.lock().files.len() == SPARES {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(spares.lock().files.len(), SPARES);
        let mut paths: Vec<_> = taken.iter().map(|s| s.path.clone()).collect();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), taken.len());
        assert_eq!(names(dir.path()).len(), SPARES + taken.len());
        spares.close();
        assert_eq!(names(dir.path()).len(), taken.len());
    }
}
