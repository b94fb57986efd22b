//! `[media] watch`: media inserted into the box itself. The image's udev rule mounts a USB
//! stick or disc read-only in a folder of its own under the watched folder
//! (`image-build/overlay/etc/udev/rules.d/80-pacsbox-media.rules`); this thread looks at that
//! folder every few seconds, surveys each new mount (its DICOMDIR, or its tree when there is
//! none: read only, nothing stored) and keeps "media found: N studies" for the status page,
//! `/status.json` and the front panel. Nothing is imported until a user confirms on the web
//! page (`/admin/import?media=NAME`). A folder that goes away (unplugged) drops its notice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use pacsbox_media::import::{self, Source};
use pacsbox_web::status::MediaFound;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MediaSettings {
    /// The folder under which inserted media are mounted, one sub-folder each (the image:
    /// `/run/pacsbox/media`); absent: nothing is watched.
    pub watch: Option<PathBuf>,
}

/// How often the folder is looked at: a person who just plugged in a stick looks at the
/// panel within seconds.
const EVERY: Duration = Duration::from_secs(2);

/// Files of a tree without DICOMDIR read for the notice's study count at most.
const SCAN_AT_MOST: usize = 5000;

/// What identifies a mount's contents without reading them: its top-level names, sizes and
/// modification times. A change (a mount replacing the empty mount point, a copy finishing)
/// means a new survey.
type Signature = Vec<(String, u64, Option<SystemTime>)>;

fn signature(dir: &Path) -> std::io::Result<Signature> {
    let mut sig = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let m = e.metadata()?;
        sig.push((
            e.file_name().to_string_lossy().into_owned(),
            m.len(),
            m.modified().ok(),
        ));
    }
    sig.sort();
    Ok(sig)
}

pub struct Watcher {
    found: Mutex<BTreeMap<String, (Signature, MediaFound)>>,
    stop: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Watcher {
    pub fn start(settings: &MediaSettings) -> anyhow::Result<Option<Arc<Watcher>>> {
        let Some(dir) = settings.watch.clone() else {
            return Ok(None);
        };
        let w = Arc::new(Watcher {
            found: Mutex::new(BTreeMap::new()),
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
        });
        let me = w.clone();
        let t = std::thread::Builder::new()
            .name("media-watch".into())
            .spawn(move || {
                while !me.stop.load(Ordering::Relaxed) {
                    me.look(&dir);
                    std::thread::park_timeout(EVERY);
                }
            })?;
        *w.thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(t);
        Ok(Some(w))
    }

    /// The media in the box now, by folder name.
    pub fn found(&self) -> Vec<MediaFound> {
        let g = self.found.lock().unwrap_or_else(|p| p.into_inner());
        g.values().map(|(_, m)| m.clone()).collect()
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }

    fn look(&self, dir: &Path) {
        // A missing folder (nothing ever mounted, /run not yet made) is no media, not an error.
        let mut now: BTreeMap<String, (PathBuf, Signature)> = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let path = e.path();
                if !path.is_dir() {
                    continue;
                }
                // An empty folder is a mount point without media.
                match signature(&path) {
                    Ok(sig) if !sig.is_empty() => {
                        now.insert(e.file_name().to_string_lossy().into_owned(), (path, sig));
                    }
                    _ => {}
                }
            }
        }
        let mut to_survey = Vec::new();
        {
            let mut g = self.found.lock().unwrap_or_else(|p| p.into_inner());
            g.retain(|name, (sig, m)| {
                let keep = now.get(name).is_some_and(|(_, s)| s == sig);
                if !keep && !now.contains_key(name) {
                    tracing::info!(media = %m.name, "media removed");
                }
                keep
            });
            for (name, (path, sig)) in now {
                if !g.contains_key(&name) {
                    to_survey.push((name, path, sig));
                }
            }
        }
        // Surveyed without the lock held: a tree without DICOMDIR is read whole.
        for (name, path, sig) in to_survey {
            let m = survey(&name, &path);
            tracing::info!(media = %name, studies = m.studies, files = m.files, error = %m.error, "media found");
            self.found
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name, (sig, m));
        }
    }
}

fn survey(name: &str, path: &Path) -> MediaFound {
    let mut m = MediaFound {
        name: name.to_owned(),
        path: path.display().to_string(),
        ..MediaFound::default()
    };
    // Bounded: a stick without a DICOMDIR has every file's header read to count its studies,
    // which on a large disk would keep the box reading for minutes for a notice; past
    // `SCAN_AT_MOST` files only the files are counted (the import page reads them on demand).
    let quick = Source::open(path).and_then(|s| import::survey(&s, false).map(|q| (s, q)));
    let surveyed = quick.and_then(|(s, q)| {
        if q.listing == import::Listing::Dicomdir || q.files.len() > SCAN_AT_MOST {
            Ok(q)
        } else {
            import::survey(&s, true)
        }
    });
    match surveyed {
        Ok(s) => {
            m.studies = s.studies.len();
            m.files = s.files.len();
            m.patients = s
                .studies
                .iter()
                .map(|st| st.patient_name.clone())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
        }
        Err(e) => m.error = e.to_string(),
    }
    m
}
