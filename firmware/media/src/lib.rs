//! Patient media (`docs/media.md`): studies exported as a PS3.10 file-set — a `DICOM/` tree of
//! Part-10 files, a DICOMDIR, `README.TXT` and `INDEX.HTM` — to a folder, a ZIP or an ISO 9660
//! image, and media (a CD/DVD/USB folder, a ZIP) imported through the archive's store path.
//! Reads and writes files only: no network, like the archive beneath it.

pub mod dicomdir;
pub mod export;
pub mod import;
pub mod records;

pub use export::{ExportError, ExportReport, Sink, Syntax, export};
pub use import::{Found, FoundStudy, ImportReport, Progress, Source, Survey, import, survey};
