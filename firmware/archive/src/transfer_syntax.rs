//! The transfer syntaxes pacsbox accepts, and how each is kept on disk.
//!
//! Ingest never transcodes: a dataset is stored in the syntax it arrived in. Native
//! (uncompressed) syntaxes are wrapped in one zstd frame (`.dcm.zst`) because CT/MR pixels
//! compress ~2.5x; encapsulated syntaxes are already compressed and are stored as plain `.dcm`.

pub const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
pub const DEFLATED_EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1.99";
pub const EXPLICIT_VR_BE: &str = "1.2.840.10008.1.2.2";

/// Every transfer syntax the acceptor offers, in order of preference when a peer proposes
/// several in one presentation context (the peer's first acceptable choice wins in dicom-ul,
/// so the order here only documents the set).
pub const ACCEPTED: &[&str] = &[
    EXPLICIT_VR_LE,
    IMPLICIT_VR_LE,
    EXPLICIT_VR_BE,
    DEFLATED_EXPLICIT_VR_LE,
    "1.2.840.10008.1.2.4.50", // JPEG baseline (process 1)
    "1.2.840.10008.1.2.4.51", // JPEG extended (process 2 & 4)
    "1.2.840.10008.1.2.4.57", // JPEG lossless, non-hierarchical (process 14)
    "1.2.840.10008.1.2.4.70", // JPEG lossless, first-order prediction (process 14 SV1)
    "1.2.840.10008.1.2.4.80", // JPEG-LS lossless
    "1.2.840.10008.1.2.4.81", // JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90", // JPEG 2000 lossless only
    "1.2.840.10008.1.2.4.91", // JPEG 2000
    "1.2.840.10008.1.2.5",    // RLE lossless
];

/// How the dataset bytes after the File Meta group are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetEncoding {
    ImplicitLittle,
    ExplicitLittle,
    ExplicitBig,
    /// Explicit VR little endian inside a raw deflate stream.
    Deflated,
}

impl DatasetEncoding {
    pub fn of(ts: &str) -> DatasetEncoding {
        match ts {
            IMPLICIT_VR_LE => DatasetEncoding::ImplicitLittle,
            EXPLICIT_VR_BE => DatasetEncoding::ExplicitBig,
            DEFLATED_EXPLICIT_VR_LE => DatasetEncoding::Deflated,
            // every encapsulated syntax encodes its dataset as explicit VR little endian
            _ => DatasetEncoding::ExplicitLittle,
        }
    }
}

/// True when the file is worth wrapping in zstd: native pixel data, not already compressed.
pub fn store_zstd(ts: &str) -> bool {
    matches!(ts, IMPLICIT_VR_LE | EXPLICIT_VR_LE | EXPLICIT_VR_BE)
}

pub fn is_accepted(ts: &str) -> bool {
    ACCEPTED.contains(&ts)
}
