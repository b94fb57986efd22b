//! Every file of pydicom's test files and the pydicom-data wheel through `Instance::read`,
//! `info` and `preview`: each either renders a valid PNG of the expected size or fails with a
//! typed reason, never a panic. The outcome list goes to target/imaging-corpus.tsv (the counts
//! and lists quoted in the notes) and the files known to decode are pinned below.

// The helpers outside #[test] functions unwrap too, and clippy.toml's allow-*-in-tests
// covers only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;

use pacsbox_imaging::{ImagingError, Instance};

fn png_size(png: &[u8]) -> (u32, u32, png::ColorType) {
    let dec = png::Decoder::new(std::io::Cursor::new(png));
    let mut r = dec.read_info().expect("a valid PNG header");
    let mut buf = vec![0; r.output_buffer_size().expect("size")];
    let info = r.next_frame(&mut buf).expect("valid PNG data");
    (info.width, info.height, info.color_type)
}

#[test]
fn every_corpus_file_renders_or_says_why() {
    let files = common::corpus_files();
    assert!(files.len() > 200, "only {} corpus files", files.len());
    let mut outcome: BTreeMap<String, (String, String)> = BTreeMap::new();
    // pydicom lists the DICOMDIR test tree's folders too; only files can be instances.
    for (key, path) in files.iter().filter(|(_, p)| p.is_file()) {
        let t0 = std::time::Instant::now();
        let f = File::open(path).expect("open corpus file");
        let (kind, detail) = match Instance::read(BufReader::new(f)) {
            Err(e) => ("unreadable".to_string(), e.to_string()),
            Ok(inst) => {
                let info = inst.info();
                let preview = inst.preview(0, 256);
                if common::refused_for_lack_of_codecs(key, &info, &preview) {
                    ("no-codecs".into(), info.transfer_syntax.clone())
                } else {
                    match preview {
                        Ok(png) => {
                            let (w, h, _) = png_size(&png);
                            let scale = (256.0 / info.columns.max(info.rows) as f64).min(1.0);
                            let ew = ((info.columns as f64 * scale).round() as u32).max(1);
                            let eh = ((info.rows as f64 * scale).round() as u32).max(1);
                            assert_eq!((w, h), (ew, eh), "{key}: preview size");
                            (
                                "decoded".into(),
                                format!(
                                    "{} {}x{} {}",
                                    info.transfer_syntax,
                                    info.columns,
                                    info.rows,
                                    info.photometric_interpretation
                                ),
                            )
                        }
                        Err(ImagingError::NoPixelData) => {
                            assert!(
                                !info.has_pixel_data,
                                "{key}: NoPixelData but info says it has some"
                            );
                            ("no-pixel-data".into(), info.transfer_syntax)
                        }
                        Err(e @ ImagingError::Unsupported { .. }) => {
                            ("unsupported".into(), e.to_string())
                        }
                        Err(e @ ImagingError::Corrupt(_)) => ("corrupt".into(), e.to_string()),
                        Err(e) => ("error".into(), e.to_string()),
                    }
                }
            }
        };
        let ms = t0.elapsed().as_millis();
        outcome.insert(key.clone(), (kind, format!("{detail}\t{ms} ms")));
    }
    let mut tsv = String::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (k, (kind, detail)) in &outcome {
        *counts.entry(kind.as_str()).or_default() += 1;
        tsv.push_str(&format!("{kind}\t{k}\t{detail}\n"));
    }
    let out =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/imaging-corpus.tsv");
    std::fs::write(&out, &tsv).expect("write outcome list");
    eprintln!("{counts:?} (list in {})", out.display());
    // No file may end in an untyped error (I/O on a local file, frame 0 missing).
    assert_eq!(counts.get("error"), None, "\n{tsv}");
    // Without the opt-in C codecs their files are refused by name (and only those).
    let no_codecs = counts.get("no-codecs").copied().unwrap_or(0);
    if cfg!(feature = "native-codecs") {
        assert_eq!(no_codecs, 0, "\n{tsv}");
    } else {
        assert!(
            no_codecs >= 5,
            "only {no_codecs} files need the C codecs?\n{tsv}"
        );
    }
    // The formats the viewer promises: each of these must render.
    for key in [
        "CT_small.dcm",
        "MR_small.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "JPEG2000.dcm",
        "SC_rgb.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",
        "SC_rgb_rle.dcm",
        "SC_ybr_full_422_uncompressed.dcm",
        "US1_J2KR.dcm",
        "emri_small_jpeg_ls_lossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "JPEGLSNearLossless_16.dcm",
        "JPGExtended.dcm",
        "JPEG-LL.dcm",
        "image_dfl.dcm",
        "OBXXXX1A.dcm",
        "rtdose.dcm",
        "MR-SIEMENS-DICOM-WithOverlays.dcm",
    ] {
        let got = outcome
            .iter()
            .find(|(k, _)| k.ends_with(&format!("/{key}")) || k.ends_with(&format!(":{key}")))
            .map(|(_, (k, d))| format!("{k} {d}"));
        let want = if cfg!(feature = "native-codecs") || !needs_codecs(key) {
            "decoded"
        } else {
            "no-codecs"
        };
        assert!(
            got.as_deref().is_some_and(|g| g.starts_with(want)),
            "{key}: {got:?}"
        );
    }
}

/// The pinned files whose decoding takes the C codecs (JPEG-LS, 12-bit JPEG), by name, so that
/// a no-codecs build is held to refusing exactly these.
fn needs_codecs(key: &str) -> bool {
    key.contains("jpeg_ls") || key.starts_with("JPEGLS") || key == "JPGExtended.dcm"
}
