//! Where pydicom's test files and the pydicom-data wheel's files live (tests/install_deps.sh
//! installs both): asked of pydicom itself, so the tests read exactly the files pydicom reads.

use std::path::PathBuf;
use std::process::Command;

/// Every test and charset file pydicom knows, as `(key, path)`, keys like
/// `pydicom:test_files/CT_small.dcm` or `data:JPEG-lossy.dcm`, sorted.
pub fn corpus_files() -> Vec<(String, PathBuf)> {
    // Asking Python costs a fraction of a second; tests ask per case.
    static FILES: std::sync::OnceLock<Vec<(String, PathBuf)>> = std::sync::OnceLock::new();
    FILES.get_or_init(ask_python).clone()
}

fn ask_python() -> Vec<(String, PathBuf)> {
    let script = "import os, pydicom, pydicom.data, data_store\n\
        a = os.path.join(os.path.dirname(pydicom.__file__), 'data')\n\
        b = os.path.join(os.path.dirname(data_store.__file__), 'data')\n\
        fs = set(pydicom.data.get_testdata_files()) | set(pydicom.data.get_charset_files())\n\
        for f in sorted(fs):\n\
        \x20   f = os.path.realpath(f)\n\
        \x20   key = 'data:' + os.path.relpath(f, b) if f.startswith(os.path.realpath(b)) else 'pydicom:' + os.path.relpath(f, a)\n\
        \x20   print(key + '\\t' + f)\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "pydicom and pydicom-data must be installed (tests/install_deps.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("paths are UTF-8");
    let mut files: Vec<(String, PathBuf)> = text
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, p)| (k.to_string(), PathBuf::from(p)))
        .collect();
    files.sort();
    files
}

/// The path of a corpus key as used in expected.json.
#[allow(dead_code)]
pub fn resolve(key: &str) -> PathBuf {
    corpus_files()
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("{key} is not in the corpus"))
}

/// Whether decoding this file's pixels takes the opt-in C codecs (feature `native-codecs`):
/// JPEG-LS, or JPEG with more than 8 bits per sample.
#[allow(dead_code)]
pub fn needs_native_codecs(info: &pacsbox_imaging::ImageInfo) -> bool {
    let ts = info.transfer_syntax.as_str();
    matches!(ts, "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81")
        || (matches!(ts, "1.2.840.10008.1.2.4.50" | "1.2.840.10008.1.2.4.51")
            && info.bits_stored > 8)
}

/// True when this build lacks the codecs the file needs; then `result` must be the typed
/// refusal that names them (asserted here), never pixels or a "corrupt".
#[allow(dead_code)]
pub fn refused_for_lack_of_codecs<T>(
    key: &str,
    info: &pacsbox_imaging::ImageInfo,
    result: &Result<T, pacsbox_imaging::ImagingError>,
) -> bool {
    if cfg!(feature = "native-codecs") || !needs_native_codecs(info) {
        return false;
    }
    match result {
        Err(e @ pacsbox_imaging::ImagingError::Unsupported { reason, .. }) => {
            assert!(reason.contains("native-codecs"), "{key}: {e}");
        }
        Err(e) => panic!("{key}: expected the no-codecs refusal, got {e}"),
        Ok(_) => panic!("{key}: decoded without the codecs it needs"),
    }
    true
}
