use super::*;

const IMP: Implementation<'static> = Implementation {
    class_uid: "1.2.3.4",
    version_name: "TEST",
};

fn t(tag: u32, vr: &[u8; 2], s: &[u8]) -> Elem<'static> {
    bytes_elem(tag, *vr, padded(s.to_vec(), *vr))
}

fn seq(tag: u32, items: Vec<Vec<Elem<'static>>>, enc: Enc) -> Elem<'static> {
    Elem {
        tag,
        vr: *b"SQ",
        value: Value::Seq { items, enc },
    }
}

const PIXELS: &[u8] = &[1, 2, 3, 4, 5, 6, 7, 8];
// Hong^Gildong=洪^吉洞=홍^길동 in ISO 2022 IR 149, the PS3.5 H.3.1 example's shape.
const KOREAN: &[u8] =
    b"Hong^Gildong=\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7=\x1b$)C\xc8\xab^\x1b$)C\xb1\xe6\xb5\xbf";

fn sample(enc: Enc, ts: &str) -> Vec<u8> {
    let ds = vec![
        t(0x0008_0005, b"CS", b"\\ISO 2022 IR 149"),
        t(0x0008_0016, b"UI", b"1.2.840.10008.5.1.4.1.1.7"),
        t(0x0008_0018, b"UI", b"1.2.3.100.1"),
        t(0x0008_0020, b"DA", b"20240102"),
        t(0x0008_0060, b"CS", b"OT"),
        t(0x0008_0090, b"PN", b"Kim^Doctor"),
        t(0x0008_1030, b"LO", b"Chest for Hong 12345"),
        seq(
            0x0008_1140,
            vec![vec![
                t(0x0008_1150, b"UI", b"1.2.840.10008.5.1.4.1.1.7"),
                t(0x0008_1155, b"UI", b"1.2.3.100.2"),
            ]],
            enc,
        ),
        t(0x0009_0010, b"LO", b"PRIVATE CREATOR"),
        t(0x0009_1001, b"LO", b"secret"),
        t(0x0010_0010, b"PN", KOREAN),
        t(0x0010_0020, b"LO", b"12345"),
        t(0x0010_0030, b"DA", b"19700101"),
        t(0x0018_1000, b"LO", b"SN-77"),
        t(0x0020_000D, b"UI", b"1.2.3.1"),
        t(0x0020_000E, b"UI", b"1.2.3.10"),
        t(0x0020_0052, b"UI", b"1.2.3.99"),
        t(0x0028_0301, b"CS", b"YES"),
        bytes_elem(0x6000_0010, *b"US", vec![8, 0]),
        bytes_elem(0x6000_3000, *b"OW", vec![0xFF; 8]),
        bytes_elem(0x7FE0_0010, *b"OW", PIXELS.to_vec()),
    ];
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    write_meta(
        &mut out,
        "1.2.840.10008.5.1.4.1.1.7",
        "1.2.3.100.1",
        ts,
        IMP,
    )
    .unwrap();
    let mut body = Vec::new();
    dataset::write(&mut body, &ds, enc).unwrap();
    out.extend_from_slice(&body);
    out
}

fn opts() -> Options {
    Options {
        patient_name: "PSEUDO^ONE".into(),
        patient_id: "P001".into(),
        ..Options::default()
    }
}

fn parsed(a: &Anonymized, enc: Enc) -> Vec<Elem<'_>> {
    dataset::read(&a.part10[a.dataset_offset..], enc).unwrap()
}

fn value<'a>(elems: &'a [Elem<'a>], tag: u32) -> Option<String> {
    elems
        .iter()
        .find(|e| e.tag == tag)
        .and_then(Elem::bytes)
        .map(text)
}

#[test]
fn table_is_the_whole_of_e1_1() {
    // 621 rows in 2024b: 617 single tags, 3 repeating groups, and the private-attributes row;
    // 35 single tags added by 2026c.
    assert_eq!(table::EXACT.len(), 617 + 35);
    assert_eq!(table::MASKED.len(), 3);
    assert!(table::EXACT.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(row_of(0x0010_0010).map(|r| r.basic), Some(Basic::Z));
    assert_eq!(row_of(0x6002_3000).map(|r| r.basic), Some(Basic::X));
    assert_eq!(row_of(0x0070_0006).map(|r| r.basic), Some(Basic::D));
}

#[test]
fn basic_profile_on_explicit_le() {
    let input = sample(Enc::EXPLICIT_LE, "1.2.840.10008.1.2.1");
    let map = UidMap::with_key([7; 32]);
    let a = anonymize(&input, &opts(), &map, IMP).unwrap();
    let e = parsed(&a, Enc::EXPLICIT_LE);
    assert_eq!(value(&e, PATIENT_NAME).as_deref(), Some("PSEUDO^ONE"));
    assert_eq!(value(&e, PATIENT_ID).as_deref(), Some("P001"));
    assert_eq!(
        value(&e, 0x0008_0090).as_deref(),
        Some(""),
        "referring physician Z"
    );
    assert_eq!(value(&e, 0x0008_0020).as_deref(), Some(""), "study date Z");
    assert_eq!(value(&e, 0x0010_0030).as_deref(), Some(""));
    assert_eq!(value(&e, 0x0008_1030), None, "description X");
    assert_eq!(value(&e, 0x0018_1000).as_deref(), Some("ANONYMIZED"));
    assert!(
        e.iter().all(|x| x.tag >> 16 & 1 == 0),
        "private attributes gone"
    );
    assert_eq!(value(&e, PATIENT_IDENTITY_REMOVED).as_deref(), Some("YES"));
    assert_eq!(
        value(&e, LONGITUDINAL_TEMPORAL_MODIFIED).as_deref(),
        Some("REMOVED")
    );
    assert_eq!(value(&e, 0x0008_0005).as_deref(), Some("\\ISO 2022 IR 149"));
    // UIDs: new, of the map, and the same for the same original.
    let study = value(&e, STUDY_INSTANCE_UID).unwrap();
    assert!(study.starts_with("2.25.") && study != "1.2.3.1");
    assert_eq!(study, map.map("1.2.3.1"));
    assert_eq!(a.sop_instance_uid, map.map("1.2.3.100.1"));
    assert_eq!(value(&e, 0x0020_0052).unwrap(), map.map("1.2.3.99"));
    let Some(Value::Seq { items, .. }) = e.iter().find(|x| x.tag == 0x0008_1140).map(|x| &x.value)
    else {
        panic!("referenced image sequence kept")
    };
    assert_eq!(
        value(&items[0], 0x0008_1155).unwrap(),
        map.map("1.2.3.100.2")
    );
    assert_eq!(
        value(&items[0], 0x0008_1150).as_deref(),
        Some("1.2.840.10008.5.1.4.1.1.7")
    );
    assert_eq!(e.last().and_then(Elem::bytes), Some(PIXELS));
    assert_eq!(a.burned_in, BurnedIn::Yes);
    // File Meta names the new instance.
    let (meta, _) = read_meta(&a.part10).unwrap();
    assert_eq!(text(meta[&0x0002_0003]), a.sop_instance_uid);
    assert!(
        !a.part10.windows(5).any(|w| w == b"Hong^"),
        "no trace of the name"
    );
    assert!(
        !a.part10.windows(2).any(|w| w == b"\xc8\xab"),
        "no Hangul left"
    );
}

#[test]
fn options_keep_dates_device_and_cleaned_descriptions() {
    let input = sample(Enc::EXPLICIT_LE, "1.2.840.10008.1.2.1");
    let o = Options {
        retain_dates: true,
        retain_device: true,
        clean_descriptors: true,
        ..opts()
    };
    let a = anonymize(&input, &o, &UidMap::with_key([1; 32]), IMP).unwrap();
    let e = parsed(&a, Enc::EXPLICIT_LE);
    assert_eq!(value(&e, 0x0008_0020).as_deref(), Some("20240102"));
    assert_eq!(value(&e, 0x0018_1000).as_deref(), Some("SN-77"));
    assert_eq!(value(&e, 0x0008_1030).as_deref(), Some("Chest for"));
    assert_eq!(
        value(&e, 0x0010_0030).as_deref(),
        Some(""),
        "birth date is no study date"
    );
    assert_eq!(
        value(&e, LONGITUDINAL_TEMPORAL_MODIFIED).as_deref(),
        Some("UNMODIFIED")
    );
    let Some(Value::Seq { items, .. }) = e
        .iter()
        .find(|x| x.tag == DEIDENTIFICATION_METHOD_CODES)
        .map(|x| &x.value)
    else {
        panic!("method codes")
    };
    let codes: Vec<String> = items.iter().filter_map(|i| value(i, 0x0008_0100)).collect();
    assert_eq!(codes, ["113100", "113105", "113106", "113109"]);
}

#[test]
fn implicit_and_big_endian_and_deflated_round_trip() {
    for (enc, ts) in [
        (Enc::IMPLICIT_LE, "1.2.840.10008.1.2"),
        (
            Enc {
                explicit: true,
                big: true,
            },
            "1.2.840.10008.1.2.2",
        ),
    ] {
        let input = sample(enc, ts);
        let a = anonymize(&input, &opts(), &UidMap::with_key([2; 32]), IMP).unwrap();
        assert_eq!(a.transfer_syntax, ts);
        let e = parsed(&a, enc);
        assert_eq!(value(&e, PATIENT_ID).as_deref(), Some("P001"), "{ts}");
        assert_eq!(e.last().and_then(Elem::bytes), Some(PIXELS), "{ts}");
        assert!(
            e.iter()
                .any(|x| x.tag == 0x0008_1140 && matches!(x.value, Value::Seq { .. }))
        );
    }
    // Deflated: the sample's explicit LE body deflated.
    let plain = sample(Enc::EXPLICIT_LE, "1.2.840.10008.1.2.1.99");
    let (_, start) = read_meta(&plain).unwrap();
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(&plain[start..]).unwrap();
    let mut input = plain[..start].to_vec();
    input.extend(z.finish().unwrap());
    let a = anonymize(&input, &opts(), &UidMap::with_key([2; 32]), IMP).unwrap();
    let mut body = Vec::new();
    flate2::read::DeflateDecoder::new(&a.part10[a.dataset_offset..])
        .read_to_end(&mut body)
        .unwrap();
    let e = dataset::read(&body, Enc::EXPLICIT_LE).unwrap();
    assert_eq!(value(&e, PATIENT_NAME).as_deref(), Some("PSEUDO^ONE"));
}

#[test]
fn encapsulated_pixel_data_is_copied_verbatim() {
    let mut input = sample(Enc::EXPLICIT_LE, "1.2.840.10008.1.2.4.50");
    // Replace the native pixel data (last element) by two fragments.
    let cut = input.len() - (12 + PIXELS.len());
    input.truncate(cut);
    let mut frags = Vec::new();
    for (tag, data) in [(ITEM_OF, &[][..]), (ITEM_OF, &[0xFF, 0xD8, 0xFF, 0xD9][..])] {
        frags.extend_from_slice(&tag);
        frags.extend_from_slice(&(data.len() as u32).to_le_bytes());
        frags.extend_from_slice(data);
    }
    frags.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
    input.extend_from_slice(&[
        0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
    ]);
    input.extend_from_slice(&frags);
    let a = anonymize(&input, &opts(), &UidMap::with_key([3; 32]), IMP).unwrap();
    assert!(a.part10.ends_with(&frags));
}
const ITEM_OF: [u8; 4] = [0xFE, 0xFF, 0x00, 0xE0];

#[test]
fn bad_input_and_pseudonyms_are_refused() {
    let input = sample(Enc::EXPLICIT_LE, "1.2.840.10008.1.2.1");
    let map = UidMap::with_key([0; 32]);
    for bad in ["", "Name\\Two", "홍길동", &"x".repeat(65)] {
        let o = Options {
            patient_name: bad.into(),
            ..opts()
        };
        assert!(
            matches!(
                anonymize(&input, &o, &map, IMP),
                Err(DeidError::Pseudonym(_))
            ),
            "{bad:?}"
        );
    }
    for n in [0, 131, 140, input.len() - 3] {
        assert!(
            anonymize(&input[..n], &opts(), &map, IMP).is_err(),
            "cut at {n}"
        );
    }
    assert!(matches!(
        anonymize(&[0; 200], &opts(), &map, IMP),
        Err(DeidError::NotPart10)
    ));
}

/// The fuzzer's first finding (`tests/fuzz/regressions/deid/meta-without-transfer-syntax`):
/// File Meta ended before its Transfer Syntax, the data set began with group 0002 elements,
/// and reading the output back took those for File Meta. Now refused, and group 0002 never
/// stays in a data set.
#[test]
fn file_meta_without_transfer_syntax_is_refused() {
    let map = UidMap::with_key([0; 32]);
    let mut f = vec![0u8; 128];
    f.extend_from_slice(b"DICM");
    f.extend_from_slice(&[2, 0, 1, 0, b'O', b'B', 0, 0, 2, 0, 0, 0, 0, 1]);
    f.extend_from_slice(&[2, 0x40, 2, 0, b'U', b'I', 2, 0, b'1', 0]);
    assert!(matches!(
        anonymize(&f, &opts(), &map, IMP),
        Err(DeidError::Malformed(..))
    ));
    assert_eq!(action_of(0x0002_0010, *b"UI", &opts()), Action::Remove);
}

#[test]
fn uid_map_is_stable_within_a_run_and_differs_across_runs() {
    let a = UidMap::with_key([1; 32]);
    let b = UidMap::with_key([2; 32]);
    assert_eq!(a.map("1.2.3\0"), a.map("1.2.3"));
    assert_ne!(a.map("1.2.3"), b.map("1.2.3"));
    assert!(a.map("1.2.3").len() <= 64);
    assert_eq!(a.map(""), "");
    assert_eq!(a.len(), 1);
}
