//! Decoding checked against pydicom's ground truth and the edge cases the archive depends on:
//! Korean above all, jamo normalisation, the non-standard ISO_IR 149, and hostile input.

mod pydicom_cases;

use pacsbox_charset::{
    SpecificCharacterSet, TextVr, normalize_search_text, person_name_search_keys,
};

#[test]
fn matches_pydicom_on_its_charset_files() {
    for &(origin, charset, vr, raw, expected) in pydicom_cases::CASES {
        let decoded = SpecificCharacterSet::from_value(charset).decode(raw, vr);
        // pydicom drops empty trailing PN component groups ("A=B=" becomes "A=B"); we keep the
        // value as sent, since only spaces and NULs are padding.
        let decoded = match vr {
            TextVr::PersonName => decoded.trim_end_matches('='),
            _ => &decoded,
        };
        assert_eq!(decoded, expected, "{origin} with {charset:?}");
    }
}

#[test]
fn korean_ksx1001_in_g1() {
    let set = SpecificCharacterSet::from_value("\\ISO 2022 IR 149");
    let raw = b"Hong^Gildong=\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7=\x1b$)C\xc8\xab^\x1b$)C\xb1\xe6\xb5\xbf";
    let name = set.decode(raw, TextVr::PersonName);
    assert_eq!(name, "Hong^Gildong=洪^吉洞=홍^길동");
    assert_eq!(
        person_name_search_keys(&name),
        ["honggildong", "洪吉洞", "홍길동"]
    );
    assert!(!set.is_ascii_only());
}

#[test]
fn korean_without_escapes_as_iso_ir_149() {
    let set = SpecificCharacterSet::from_value("ISO_IR 149");
    assert_eq!(
        set.decode(b"\xb1\xe8\xc8\xf1\xc1\xdf ", TextVr::PersonName),
        "김희중"
    );
    // 똠 is not in KS X 1001; Korean modalities send its CP949 (UHC) code.
    assert_eq!(set.decode(b"\x8c\x63", TextVr::PersonName), "똠");
}

#[test]
fn chinese_gb2312_in_g1() {
    // PS3.5 Annex J example for ISO 2022 IR 58, which pydicom cannot decode.
    let set = SpecificCharacterSet::from_value("\\ISO 2022 IR 58");
    let raw = b"Zhang^XiaoDong=\x1b$)A\xd5\xc5^\x1b$)A\xd0\xa1\xb6\xab=";
    assert_eq!(
        set.decode(raw, TextVr::PersonName),
        "Zhang^XiaoDong=张^小东="
    );
}

#[test]
fn decomposed_hangul_becomes_nfc() {
    let set = SpecificCharacterSet::from_value("ISO_IR 192");
    let decomposed = "\u{1112}\u{1169}\u{11BC}^\u{1100}\u{1175}\u{11AF}\u{1103}\u{1169}\u{11BC}";
    assert_eq!(
        set.decode(decomposed.as_bytes(), TextVr::PersonName),
        "홍^길동"
    );
    // Latin too: e + combining acute becomes é.
    assert_eq!(
        set.decode("Je\u{301}ro\u{302}me".as_bytes(), TextVr::LongText),
        "Jérôme"
    );
}

#[test]
fn padding_is_trimmed_but_inner_spaces_kept() {
    let set = SpecificCharacterSet::default_repertoire();
    assert_eq!(
        set.decode(b"KIM^MIN SU \0 \0", TextVr::PersonName),
        "KIM^MIN SU"
    );
    assert_eq!(set.decode(b"   ", TextVr::ShortText), "");
    assert!(set.is_ascii_only());
    assert!(SpecificCharacterSet::from_value("ISO 2022 IR 6").is_ascii_only());
}

#[test]
fn delimiters_reset_state_per_vr() {
    let set = SpecificCharacterSet::from_value("ISO 2022 IR 100\\ISO 2022 IR 126");
    // After '\\' the initial G1 (Latin-1) is back in force for a multi-valued string,
    // but a long text keeps Greek because '\\' is just a character there.
    let raw = b"\x1b-F\xc4\\\xc4";
    assert_eq!(set.decode(raw, TextVr::ShortText), "Δ\\Ä");
    assert_eq!(set.decode(raw, TextVr::LongText), "Δ\\Δ");
    assert_eq!(set.decode(b"\x1b-F\xc4^\xc4", TextVr::PersonName), "Δ^Ä");
    assert_eq!(
        set.decode(b"\x1b-F\xc4\r\n\xc4", TextVr::LongText),
        "Δ\r\nÄ"
    );
}

#[test]
fn backslash_inside_a_jis_character_is_not_a_delimiter() {
    // 0x5C is a valid byte of a JIS X 0208 pair: 0x30 0x5C is 移 (as Python's iso2022_jp says).
    let set = SpecificCharacterSet::from_value("\\ISO 2022 IR 87");
    assert_eq!(set.decode(b"\x1b$B0\\\x1b(B", TextVr::ShortText), "移");
}

#[test]
fn unknown_terms_fall_back_to_latin1() {
    let set = SpecificCharacterSet::from_value("ISO_IR 999");
    assert_eq!(set.decode(b"J\xe9r\xf4me", TextVr::PersonName), "Jérôme");
    assert!(!set.is_ascii_only());
    assert_eq!(set.terms(), ["ISO_IR 999"]);
}

#[test]
fn bad_bytes_become_replacement_characters() {
    let set = SpecificCharacterSet::from_value("\\ISO 2022 IR 87\\ISO 2022 IR 149");
    // Truncated and unknown escapes, an odd JIS byte, a lone KS X 1001 lead byte.
    assert_eq!(set.decode(b"A\x1b$", TextVr::LongText), "A\u{FFFD}");
    assert_eq!(set.decode(b"A\x1b$)Zb", TextVr::LongText), "A\u{FFFD}b");
    assert_eq!(set.decode(b"\x1b$B0", TextVr::LongText), "\u{FFFD}");
    assert_eq!(
        set.decode(b"\x1b$)C\xb1^x", TextVr::PersonName),
        "\u{FFFD}^x"
    );
    let utf8 = SpecificCharacterSet::from_value("ISO_IR 192");
    assert_eq!(
        utf8.decode(b"\xff\xc3", TextVr::LongText),
        "\u{FFFD}\u{FFFD}"
    );
}

#[test]
fn search_keys_and_search_text() {
    assert_eq!(person_name_search_keys("KIM^MINSU"), ["kimminsu"]);
    assert_eq!(person_name_search_keys("Kim^Min su"), ["kimminsu"]);
    assert_eq!(person_name_search_keys("김희중\\김희중"), ["김희중"]);
    assert_eq!(person_name_search_keys("=^="), Vec::<String>::new());
    assert_eq!(normalize_search_text("HONG^gil*"), "honggil*");
    assert_eq!(normalize_search_text("\u{1112}\u{1169}\u{11BC} ?"), "홍?");
}

/// Terms covering every table row and decoding mode, for the no-panic sweep.
const ALL_TERMS: &[&str] = &[
    "",
    "ISO_IR 100",
    "ISO_IR 101",
    "ISO_IR 109",
    "ISO_IR 110",
    "ISO_IR 144",
    "ISO_IR 127",
    "ISO_IR 126",
    "ISO_IR 138",
    "ISO_IR 148",
    "ISO_IR 203",
    "ISO_IR 13",
    "ISO_IR 166",
    "ISO_IR 192",
    "GB18030",
    "GBK",
    "ISO_IR 149",
    "ISO 2022 IR 6\\ISO 2022 IR 87\\ISO 2022 IR 159",
    "ISO 2022 IR 13\\ISO 2022 IR 87",
    "\\ISO 2022 IR 149",
    "\\ISO 2022 IR 58",
    "ISO 2022 IR 100\\ISO 2022 IR 101\\ISO 2022 IR 109\\ISO 2022 IR 110\\ISO 2022 IR 144",
    "ISO 2022 IR 127\\ISO 2022 IR 126\\ISO 2022 IR 138\\ISO 2022 IR 148\\ISO 2022 IR 203",
    "ISO 2022 IR 166\\ISO 2022 IR 87",
    "ISO 2022 IR 87",
    "garbage\\\\ISO_IR 192\\ISO 2022 IR 149",
];

#[test]
fn random_bytes_never_panic() {
    // xorshift64: deterministic, so a failure reproduces, and no extra dependency.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // Bias towards the bytes the state machine cares about so escapes and delimiters get hit.
    const INTERESTING: &[u8] = b"\x1b$()-BCADJI@b^=\\\r\n \0\xa4\xd4\xa1\xfe\x8f\x80";
    let sets: Vec<_> = ALL_TERMS
        .iter()
        .map(|t| SpecificCharacterSet::from_value(t))
        .collect();
    let vrs = [TextVr::PersonName, TextVr::ShortText, TextVr::LongText];
    for _ in 0..2000 {
        let len = (next() % 40) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                let r = next();
                if r % 3 == 0 {
                    INTERESTING[(r >> 8) as usize % INTERESTING.len()]
                } else {
                    (r >> 16) as u8
                }
            })
            .collect();
        for set in &sets {
            for vr in vrs {
                let text = set.decode(&bytes, vr);
                // Each byte yields at most one character before NFC, which at most triples it.
                assert!(text.chars().count() <= 3 * bytes.len(), "{set:?} {bytes:?}");
                let _ = person_name_search_keys(&text);
            }
        }
    }
}
