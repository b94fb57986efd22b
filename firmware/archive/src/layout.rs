//! Where things live in the data directory.
//!
//! ```text
//! DATA/index.redb                       the index (rebuildable from archive/)
//! DATA/journal                          paths renamed by the commit batch in flight
//! DATA/tmp/                             instances being received (cleared at start-up)
//! DATA/archive/<bb>/<study>/<series>/<sop>.dcm[.zst]
//! DATA/conflicts/<sop>.<hash>.dcm[.zst]      same SOP UID, different content (hash of the data
//!                                       set: each content once), kept aside for an admin
//! DATA/ops/<id>.op, DATA/ops/<id>/      an edit in flight: its commit record, its new files
//! DATA/trash/<id>/archive/...           previous versions an edit or delete replaced (undo)
//! ```
//! `<bb>` is two hex digits of a hash of the Study Instance UID, so no directory holds more
//! than a few hundred studies even at the seed clinic's 12 000; a rescue script needs only
//! `find` and `zstd -d`.

use std::path::{Path, PathBuf};

use crate::DiskSpace;
use crate::uid::Uid;

pub fn index_path(root: &Path) -> PathBuf {
    root.join("index.redb")
}
pub fn journal_path(root: &Path) -> PathBuf {
    root.join("journal")
}
pub fn tmp_dir(root: &Path) -> PathBuf {
    root.join("tmp")
}
pub fn archive_dir(root: &Path) -> PathBuf {
    root.join("archive")
}
pub fn conflicts_dir(root: &Path) -> PathBuf {
    root.join("conflicts")
}

pub fn extension(zstd: bool) -> &'static str {
    if zstd { "dcm.zst" } else { "dcm" }
}

fn bucket(study: &Uid) -> String {
    format!(
        "{:02x}",
        xxhash_rust::xxh3::xxh3_64(study.as_str().as_bytes()) & 0xff
    )
}

/// Path of an instance relative to the data directory, `/`-separated.
pub fn instance_rel_path(study: &Uid, series: &Uid, sop: &Uid, zstd: bool) -> String {
    format!(
        "archive/{}/{}/{}/{}.{}",
        bucket(study),
        study,
        series,
        sop,
        extension(zstd)
    )
}

/// The SOP Instance UID a file in archive/ claims by its name.
pub fn sop_uid_of_file(path: &Path) -> Option<&str> {
    let name = path.file_name()?.to_str()?;
    name.strip_suffix(".dcm.zst")
        .or_else(|| name.strip_suffix(".dcm"))
}

pub fn disk_space(root: &Path) -> std::io::Result<DiskSpace> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(root.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized out-parameter.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let frsize = st.f_frsize as u64;
    Ok(DiskSpace {
        total_bytes: st.f_blocks as u64 * frsize,
        free_bytes: st.f_bavail as u64 * frsize,
    })
}

/// True when `dir` is the root of its own file system (a different device from its parent).
pub fn is_mount_point(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(canon) = dir.canonicalize() else {
        return false;
    };
    match (
        std::fs::metadata(&canon),
        canon.parent().map(std::fs::metadata),
    ) {
        (Ok(me), Some(Ok(parent))) => me.dev() != parent.dev(),
        (Ok(_), None) => true,
        _ => false,
    }
}
