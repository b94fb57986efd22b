//! Spare inodes for the temp files of incoming instances, made ahead of need by a thread of
//! their own. Creating a file is an inode allocation, and on ext4 that scans the block group
//! past every recently deleted inode (`recently_deleted`): a quarter of the server's CPU in a
//! 1-association large-image ingest, on the path between a C-STORE's command and its data.
//! A spare is an unnamed file in `tmp/` (`O_TMPFILE`): a crash leaves nothing behind, and
//! `tmp/` shows only the instances being received. Taking one gives it its name there with
//! `linkat`, which allocates no inode. Where the file system has no `O_TMPFILE`, or linking
//! fails, ingest creates its file as before.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// Spares kept ready: more than the associations that commonly store at once.
const SPARES: usize = 8;

#[derive(Default)]
struct State {
    files: Vec<File>,
    closed: bool,
}

#[derive(Default)]
pub(crate) struct Spares {
    state: Mutex<State>,
    wanted: Condvar,
    /// The file system refused `O_TMPFILE`: no spares, ever.
    unsupported: AtomicBool,
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
            spares.unsupported.store(true, Ordering::Relaxed);
        }
        spares
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn keep(&self, tmp_dir: &Path) {
        loop {
            {
                let mut st = self.lock();
                while !st.closed && st.files.len() >= SPARES {
                    st = self.wanted.wait(st).unwrap_or_else(|p| p.into_inner());
                }
                if st.closed {
                    return;
                }
            }
            match unnamed_file(tmp_dir) {
                Ok(f) => self.lock().files.push(f),
                Err(e) => {
                    tracing::info!(error = %e, dir = %tmp_dir.display(), "no O_TMPFILE here: temp files are created on demand");
                    self.unsupported.store(true, Ordering::Relaxed);
                    return;
                }
            }
        }
    }

    /// A spare, named `path` (a new name in the spares' directory), or `None`: then the
    /// caller creates the file itself.
    pub(crate) fn take(&self, path: &Path) -> Option<File> {
        if self.unsupported.load(Ordering::Relaxed) {
            return None;
        }
        let file = self.lock().files.pop();
        self.wanted.notify_one();
        let file = file?;
        match link(&file, path) {
            Ok(()) => Some(file),
            Err(e) => {
                tracing::warn!(error = %e, file = %path.display(), "naming a spare temp file failed: creating it instead");
                None
            }
        }
    }

    /// Ends the keeper thread; spares left are closed and vanish.
    pub(crate) fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        st.files.clear();
        self.wanted.notify_all();
    }
}

fn unnamed_file(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o644)
        .open(dir)
}

/// Gives an `O_TMPFILE` file its name, through its /proc/self/fd link: `AT_EMPTY_PATH` on the
/// descriptor itself would need CAP_DAC_READ_SEARCH.
fn link(file: &File, path: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    let from = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    let to = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: both paths are NUL-terminated C strings that outlive the call.
    let r = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

    #[test]
    fn a_spare_becomes_a_named_file_and_tmp_shows_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let spares = Spares::start(dir.path().to_path_buf());
        let path = dir.path().join("1-1.part");
        // the keeper makes the first spares right away; wait for one (bounded)
        let mut file = None;
        for _ in 0..500 {
            file = spares.take(&path);
            if file.is_some() || spares.unsupported.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let mut file = file.expect("tempdir's file system has O_TMPFILE");
        file.write_all(b"data set").unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["1-1.part"]);
        let mut back = String::new();
        File::open(&path)
            .unwrap()
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, "data set");
        file.rewind().unwrap();
        spares.close();
        assert!(spares.take(&dir.path().join("1-2.part")).is_none());
        assert!(!dir.path().join("1-2.part").exists());
    }
}
