//! `Instance::pixels` and `decompress_to_native` against pydicom's decoding (pylibjpeg's
//! libjpeg and OpenJPEG, an independent decoder family) of a representative set of real files:
//! JPEG-LS, 12-bit JPEG Extended, JPEG 2000, RLE, deflate, big endian, MONOCHROME1, signed,
//! 1-bit, RGB 8/16-bit, YBR, palette colour, multi-frame. Expected statistics come from
//! gen_expected.py (committed next to this file) as expected.json.

// The helpers outside #[test] functions unwrap too, and clippy.toml's allow-*-in-tests
// covers only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs::File;
use std::io::BufReader;

use pacsbox_imaging::{Instance, PixelKind};

#[derive(serde::Deserialize)]
struct Case {
    key: String,
    frame: u32,
    kind: String,
    signed: bool,
    tol: i64,
    rows: u32,
    columns: u32,
    why: String,
    count: usize,
    sum: i64,
    wsum: i128,
    min: i64,
    max: i64,
    probe: Vec<(usize, i64)>,
}

#[derive(serde::Deserialize)]
struct Expected {
    pixels: Vec<Case>,
    previews: Vec<Preview>,
}

#[derive(serde::Deserialize)]
struct Preview {
    key: String,
    why: String,
    rows: u32,
    columns: u32,
    tol: i64,
    count: usize,
    sum: i64,
    probe: Vec<(usize, i64)>,
}

fn expected() -> Expected {
    serde_json::from_str(include_str!("expected.json")).expect("expected.json parses")
}

fn cases() -> Vec<Case> {
    expected().pixels
}

fn decode_png(png: &[u8]) -> (u32, u32, png::ColorType, Vec<u8>) {
    let mut r = png::Decoder::new(std::io::Cursor::new(png))
        .read_info()
        .expect("PNG header");
    let mut buf = vec![0; r.output_buffer_size().expect("size")];
    let info = r.next_frame(&mut buf).expect("PNG data");
    buf.truncate(info.buffer_size());
    (info.width, info.height, info.color_type, buf)
}

/// Full-size previews equal pydicom's modality + VOI (window, VOI LUT, or min–max), inverted
/// for MONOCHROME1, within ±1 of rounding.
#[test]
fn previews_apply_the_files_voi_like_pydicom() {
    let previews = expected().previews;
    // gen_expected.py writes 4 (window, VOI LUT, min-max, MONOCHROME1): none may go missing
    assert!(previews.len() >= 4, "{} preview cases", previews.len());
    for p in previews {
        assert!(!p.probe.is_empty(), "{}: no probe pixels", p.key);
        let inst = open(&p.key);
        let png = inst.preview(0, 4096);
        if common::refused_for_lack_of_codecs(&p.key, &inst.info(), &png) {
            continue;
        }
        let png = png.unwrap_or_else(|e| panic!("{}: {e}", p.key));
        let (w, h, color, data) = decode_png(&png);
        assert_eq!(
            (w, h, color),
            (p.columns, p.rows, png::ColorType::Grayscale),
            "{}",
            p.key
        );
        assert_eq!(data.len(), p.count);
        let sum: i64 = data.iter().map(|v| *v as i64).sum();
        let mean_diff = (sum - p.sum).abs() as f64 / p.count as f64;
        assert!(
            mean_diff <= 0.5,
            "{} ({}): mean differs by {mean_diff}",
            p.key,
            p.why
        );
        for (i, want) in &p.probe {
            let got = data[*i] as i64;
            assert!(
                (got - want).abs() <= p.tol,
                "{} ({}): pixel #{i} is {got}, pydicom {want}",
                p.key,
                p.why
            );
        }
    }
}

/// Downscaling keeps the picture: a 1841×1955 CR previewed at 512 has the right size and
/// the same mean brightness as the full-size preview.
#[test]
fn downscaled_preview_keeps_size_ratio_and_brightness() {
    let inst = open("data:RG1_UNCR.dcm");
    let (w, h, _, small) = decode_png(&inst.preview(0, 512).expect("preview"));
    assert_eq!((w, h), (482, 512));
    let (_, _, _, full) = decode_png(&inst.preview(0, 0).expect("full preview"));
    let mean = |v: &[u8]| v.iter().map(|x| *x as f64).sum::<f64>() / v.len() as f64;
    assert!(
        (mean(&small) - mean(&full)).abs() < 1.0,
        "{} vs {}",
        mean(&small),
        mean(&full)
    );
    assert!(
        mean(&full) > 10.0 && mean(&full) < 245.0,
        "not a blank image"
    );
}

#[test]
fn errors_are_typed() {
    use pacsbox_imaging::ImagingError;
    let ct = open("pydicom:test_files/CT_small.dcm");
    assert!(matches!(
        ct.preview(1, 64),
        Err(ImagingError::NoSuchFrame {
            frame: 1,
            frames: 1
        })
    ));
    let plan = open("pydicom:test_files/rtplan.dcm");
    assert!(!plan.info().has_pixel_data);
    assert!(matches!(plan.pixels(0), Err(ImagingError::NoPixelData)));
    let garbage = Instance::read(&b"not dicom at all"[..]);
    assert!(matches!(garbage, Err(ImagingError::Corrupt(_))));
    let mr = open("pydicom:test_files/MR_small.dcm").info();
    assert_eq!(mr.windows.len(), 1);
    assert_eq!((mr.windows[0].center, mr.windows[0].width), (600.0, 1600.0));
    assert!(mr.signed);
    assert_eq!(mr.transfer_syntax, "1.2.840.10008.1.2.1");
    // The web layer serialises ImageInfo as JSON.
    let json = serde_json::to_value(&mr).expect("serialises");
    assert_eq!(json["photometric_interpretation"], "MONOCHROME2");
}

fn open(key: &str) -> Instance {
    let f = File::open(common::resolve(key)).expect("corpus file opens");
    Instance::read(BufReader::new(f)).unwrap_or_else(|e| panic!("{key}: {e}"))
}

/// Values as pydicom's array would hold them, flattened.
fn values(kind: &PixelKind) -> (String, Vec<i64>) {
    match kind {
        PixelKind::Gray16 { signed, data } => (
            "gray16".into(),
            data.chunks_exact(2)
                .map(|c| {
                    let u = u16::from_le_bytes([c[0], c[1]]);
                    if *signed { u as i16 as i64 } else { u as i64 }
                })
                .collect(),
        ),
        PixelKind::Rgb8 { data } => ("rgb8".into(), data.iter().map(|b| *b as i64).collect()),
    }
}

fn check(c: &Case, kind: &str, v: &[i64]) -> Vec<String> {
    let who = format!("{} frame {} ({})", c.key, c.frame, c.why);
    let mut bad = Vec::new();
    if kind != c.kind {
        bad.push(format!("{who}: kind {kind}, pydicom {}", c.kind));
        return bad;
    }
    if v.len() != c.count {
        bad.push(format!("{who}: {} values, pydicom {}", v.len(), c.count));
        return bad;
    }
    let sum: i64 = v.iter().sum();
    let wsum: i128 = v
        .iter()
        .enumerate()
        .map(|(i, x)| *x as i128 * (i % 251 + 1) as i128)
        .sum();
    let (min, max) = (*v.iter().min().unwrap_or(&0), *v.iter().max().unwrap_or(&0));
    if c.tol == 0 {
        if (sum, wsum, min, max) != (c.sum, c.wsum, c.min, c.max) {
            bad.push(format!(
                "{who}: sum/wsum/min/max {sum}/{wsum}/{min}/{max}, pydicom {}/{}/{}/{}",
                c.sum, c.wsum, c.min, c.max
            ));
        }
    } else {
        // Lossy: the mean may move by less than the tolerance, each probe by at most it.
        let mean_diff = (sum - c.sum).abs() as f64 / c.count as f64;
        if mean_diff > c.tol as f64 {
            bad.push(format!(
                "{who}: mean differs by {mean_diff:.3} (tolerance {})",
                c.tol
            ));
        }
        if (min - c.min).abs() > c.tol || (max - c.max).abs() > c.tol {
            bad.push(format!(
                "{who}: min/max {min}/{max}, pydicom {}/{}",
                c.min, c.max
            ));
        }
    }
    for (i, want) in &c.probe {
        if (v[*i] - want).abs() > c.tol {
            bad.push(format!("{who}: value #{i} is {}, pydicom {want}", v[*i]));
            break;
        }
    }
    bad
}

#[test]
fn pixels_equal_pydicom() {
    let cases = cases();
    // gen_expected.py writes 35 cases
    assert!(cases.len() >= 35, "{} cases", cases.len());
    let mut bad = Vec::new();
    let mut refused = 0;
    for c in &cases {
        assert!(!c.probe.is_empty(), "{}: no probe pixels", c.key);
        let inst = open(&c.key);
        let info = inst.info();
        assert_eq!((info.rows, info.columns), (c.rows, c.columns), "{}", c.key);
        assert_eq!(info.signed, c.signed, "{}", c.key);
        let pixels = inst.pixels(c.frame);
        if common::refused_for_lack_of_codecs(&c.key, &info, &pixels) {
            refused += 1;
            continue;
        }
        match pixels {
            Ok(p) => {
                assert_eq!((p.rows, p.columns), (c.rows, c.columns), "{}", c.key);
                let (kind, v) = values(&p.kind);
                bad.extend(check(c, &kind, &v));
            }
            Err(e) => bad.push(format!("{} frame {}: {e}", c.key, c.frame)),
        }
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
    // The JPEG-LS and 12-bit JPEG cases are compared with the codecs, refused without them.
    let need = cases
        .iter()
        .filter(|c| common::needs_native_codecs(&open(&c.key).info()))
        .count();
    assert!(need >= 5, "only {need} cases need the C codecs");
    let want = if cfg!(feature = "native-codecs") {
        0
    } else {
        need
    };
    assert_eq!(refused, want);
}

/// The transcoding path: decompressed data sets carry exactly the pixels `pixels` gives, and
/// say so in their attributes (native syntax readable by dicom-object, RGB interleaved).
#[test]
fn decompressed_data_sets_carry_the_same_pixels() {
    use dicom_dictionary_std::tags;
    use dicom_encoding::TransferSyntaxIndex;
    use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
    let names = [
        "jpeg_ls_lossless.dcm",
        "JPGExtended.dcm",
        "JPEGLSNearLossless_16.dcm",
        "SC_rgb_jls_lossy_sample.dcm",
        "US1_J2KR.dcm",
        "MR_small_RLE.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",
    ];
    let all = cases();
    // every file named must have a case: a renamed one must not drop out of the check
    for n in names {
        assert!(all.iter().any(|c| c.key.ends_with(n)), "no case for {n}");
    }
    for c in all
        .iter()
        .filter(|c| names.iter().any(|n| c.key.ends_with(n)))
    {
        for ts in ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"] {
            let f = File::open(common::resolve(&c.key)).expect("open");
            let ds = pacsbox_imaging::decompress_to_native(BufReader::new(f), ts);
            if common::refused_for_lack_of_codecs(&c.key, &open(&c.key).info(), &ds) {
                continue;
            }
            let ds = ds.unwrap_or_else(|e| panic!("{}: {e}", c.key));
            // C-MOVE/C-GET offer a native syntax only for what this says it can decompress.
            let stored = open(&c.key).transfer_syntax().to_owned();
            assert!(
                pacsbox_imaging::can_decompress(&stored),
                "{}: {stored}",
                c.key
            );
            let syntax = TransferSyntaxRegistry.get(ts).expect("known syntax");
            let obj = dicom_object::InMemDicomObject::read_dataset_with_ts(&ds[..], syntax)
                .unwrap_or_else(|e| panic!("{} re-read as {ts}: {e}", c.key));
            let pd = obj.get(tags::PIXEL_DATA).expect("pixel data");
            let bytes = pd.value().to_bytes().expect("native pixel data");
            let frames = obj
                .get(tags::NUMBER_OF_FRAMES)
                .and_then(|e| e.to_int::<u32>().ok())
                .unwrap_or(1);
            let bits = obj
                .get(tags::BITS_ALLOCATED)
                .and_then(|e| e.to_int::<usize>().ok())
                .expect("bits allocated");
            let pi = obj
                .get(tags::PHOTOMETRIC_INTERPRETATION)
                .and_then(|e| e.to_str().ok())
                .expect("photometric")
                .trim()
                .to_string();
            let samples = if c.kind == "rgb8" { 3 } else { 1 };
            let frame_len = (c.rows * c.columns) as usize * samples * bits / 8;
            assert!(
                bytes.len() >= frame_len * frames as usize,
                "{}: short",
                c.key
            );
            let frame = &bytes[frame_len * c.frame as usize..frame_len * (c.frame as usize + 1)];
            let v: Vec<i64> = if c.kind == "rgb8" {
                assert_eq!(pi, "RGB", "{}", c.key);
                frame.iter().map(|b| *b as i64).collect()
            } else if bits == 16 {
                frame
                    .chunks_exact(2)
                    .map(|b| {
                        let u = u16::from_le_bytes([b[0], b[1]]);
                        if c.signed { u as i16 as i64 } else { u as i64 }
                    })
                    .collect()
            } else {
                frame.iter().map(|b| *b as i64).collect()
            };
            let bad = check(c, &c.kind, &v);
            assert!(bad.is_empty(), "{ts}: {}", bad.join("\n"));
        }
    }
}

/// 32-bit RLE (our own decoder; dicom-pixeldata's stops at 16 bits): pydicom's rtdose_rle.dcm
/// decompresses to exactly the dose grid of its uncompressed twin rtdose.dcm.
#[test]
fn rle_32bit_decompresses_to_the_uncompressed_twin() {
    use dicom_dictionary_std::tags;
    use dicom_encoding::TransferSyntaxIndex;
    use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
    let ts = "1.2.840.10008.1.2";
    let f = File::open(common::resolve("pydicom:test_files/rtdose_rle.dcm")).expect("open");
    let ds = pacsbox_imaging::decompress_to_native(BufReader::new(f), ts).expect("decompresses");
    let syntax = TransferSyntaxRegistry.get(ts).expect("known");
    let got =
        dicom_object::InMemDicomObject::read_dataset_with_ts(&ds[..], syntax).expect("re-read");
    let twin =
        dicom_object::open_file(common::resolve("pydicom:test_files/rtdose.dcm")).expect("twin");
    let px = |e: Option<&dicom_object::mem::InMemElement>| {
        e.expect("pixel data")
            .value()
            .to_bytes()
            .expect("bytes")
            .into_owned()
    };
    let (a, b) = (
        px(got.get(tags::PIXEL_DATA)),
        px(twin.get(tags::PIXEL_DATA)),
    );
    assert_eq!(a.len(), 10 * 10 * 15 * 4);
    assert!(a == b, "decoded dose grid differs from rtdose.dcm");
}
