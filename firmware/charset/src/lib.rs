//! DICOM text decoding per PS3.5 §6.1: turns the bytes of a text VR into a `String` under the
//! Specific Character Set (0008,0005) of its data set, ISO 2022 code extensions included (dicom-rs
//! does not handle those, its issue #443). The archive index, C-FIND and the web UI all decode
//! through this crate so that a name is spelled, normalised and searched the same way everywhere.
//! Decoding never fails and never panics: bytes that make no sense become U+FFFD.

mod encode;
mod romanise;

pub use encode::encode_iso2022_ir149;

use encoding_rs::Encoding;
use unicode_normalization::UnicodeNormalization;

const ESC: u8 = 0x1b;
const REPLACEMENT: char = '\u{FFFD}';

/// A graphic character set that a defined term or an escape sequence puts into G0 or G1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Graphic {
    /// ISO IR 6, and also JIS X 0201 romaji (ISO IR 14): DICOM keeps 0x5C as its value delimiter
    /// even where JIS calls it YEN SIGN, and pydicom reads it as ASCII too.
    Ascii,
    /// JIS X 0208 (ESC $ B) in G0: pairs of bytes 0x21-0x7E.
    JisX0208,
    /// JIS X 0212 (ESC $ ( D) in G0.
    JisX0212,
    /// ISO 8859-1 in G1, done by hand because encoding_rs maps that label to windows-1252.
    Latin1,
    /// Any other single-byte upper half in G1.
    Upper(&'static Encoding),
    /// JIS X 0201 katakana (ESC ) I) in G1.
    Katakana,
    /// KS X 1001 (ESC $ ) C) in G1: EUC-KR byte pairs.
    KsX1001,
    /// GB 2312 (ESC $ ) A) in G1: EUC-CN byte pairs.
    Gb2312,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    G0,
    G1,
}

use Graphic::*;
use Slot::{G0, G1};

/// PS3.3 Tables C.12-2 to C.12-4, keyed by ISO-IR number so that "ISO_IR n" and "ISO 2022 IR n"
/// share a row: the escape sequence that designates each set, and where it goes. A term's initial
/// state is made of its rows; escape sequences are honoured whatever the declared terms, because
/// data in the wild often forgets to declare what it uses and the escape is unambiguous.
static SETS: &[(&str, &[u8], Slot, Graphic)] = &[
    ("6", b"\x1b(B", G0, Ascii),
    ("13", b"\x1b)I", G1, Katakana),
    ("13", b"\x1b(J", G0, Ascii),
    ("100", b"\x1b-A", G1, Latin1),
    ("101", b"\x1b-B", G1, Upper(encoding_rs::ISO_8859_2)),
    ("109", b"\x1b-C", G1, Upper(encoding_rs::ISO_8859_3)),
    ("110", b"\x1b-D", G1, Upper(encoding_rs::ISO_8859_4)),
    ("144", b"\x1b-L", G1, Upper(encoding_rs::ISO_8859_5)),
    ("127", b"\x1b-G", G1, Upper(encoding_rs::ISO_8859_6)),
    ("126", b"\x1b-F", G1, Upper(encoding_rs::ISO_8859_7)),
    ("138", b"\x1b-H", G1, Upper(encoding_rs::ISO_8859_8)),
    // encoding_rs has ISO 8859-9 and TIS-620 only as their Windows supersets, which differ
    // from them solely in 0x80-0x9F, where DICOM data has no business anyway.
    ("148", b"\x1b-M", G1, Upper(encoding_rs::WINDOWS_1254)),
    ("203", b"\x1b-b", G1, Upper(encoding_rs::ISO_8859_15)),
    ("166", b"\x1b-T", G1, Upper(encoding_rs::WINDOWS_874)),
    ("87", b"\x1b$B", G0, JisX0208),
    ("159", b"\x1b$(D", G0, JisX0212),
    ("149", b"\x1b$)C", G1, KsX1001),
    ("58", b"\x1b$)A", G1, Gb2312),
    // Not a DICOM term: JIS C 6226-1978, which older Japanese encoders still designate.
    ("-", b"\x1b$@", G0, JisX0208),
];

/// Terms that are one encoding for the whole value, with no code extensions.
fn whole_encoding(term: &str) -> Option<&'static Encoding> {
    match term {
        "ISO_IR 192" => Some(encoding_rs::UTF_8),
        "GB18030" => Some(encoding_rs::GB18030),
        "GBK" => Some(encoding_rs::GBK),
        // Not a DICOM term, yet common from Korean modalities: raw EUC-KR with no escapes.
        // encoding_rs's EUC-KR is really CP949, which also covers the UHC syllables they send.
        "ISO_IR 149" => {
            tracing::warn!("non-standard Specific Character Set ISO_IR 149, decoding as EUC-KR");
            Some(encoding_rs::EUC_KR)
        }
        _ => None,
    }
}

/// The ISO-IR number of a term that [`SETS`] knows, e.g. "100" for both "ISO_IR 100" and
/// "ISO 2022 IR 100".
fn set_number(term: &str) -> Option<&str> {
    let number = term
        .strip_prefix("ISO_IR ")
        .or_else(|| term.strip_prefix("ISO 2022 IR "))?;
    SETS.iter().any(|row| row.0 == number).then_some(number)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct State {
    g0: Graphic,
    g1: Option<Graphic>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Whole(&'static Encoding),
    Iso2022(State),
}

/// Parsed value of (0008,0005).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecificCharacterSet {
    terms: Vec<String>,
    mode: Mode,
}

/// How a text VR delimits its parts, which decides where ISO 2022 state returns to the initial one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextVr {
    /// PN: '^' and '=' delimit components and groups, '\\' values.
    PersonName,
    /// SH, LO, CS, AE, UC and other multi-valued strings, delimited by '\\'.
    ShortText,
    /// ST, LT, UT: single-valued, so '\\' is an ordinary character.
    LongText,
}

impl TextVr {
    /// PS3.5 6.1.2.5.3: encoders must return to the initial state before these, so we do too;
    /// that keeps one broken component from garbling the rest of the value.
    fn resets_at(self, byte: u8) -> bool {
        match byte {
            b'\r' | b'\n' | 0x0c | b'\t' => true,
            b'\\' => self != TextVr::LongText,
            b'^' | b'=' => self == TextVr::PersonName,
            _ => false,
        }
    }
}

impl Default for SpecificCharacterSet {
    fn default() -> Self {
        Self::default_repertoire()
    }
}

impl SpecificCharacterSet {
    /// Parse the raw value (backslash-separated defined terms; first may be empty = default
    /// repertoire). Unknown terms fall back to ISO_IR 6/Latin-1 with a warning, never an error.
    pub fn from_value(value: &str) -> Self {
        let terms: Vec<String> = value
            .trim_end_matches(['\0', ' '])
            .split('\\')
            .map(|term| term.trim().to_ascii_uppercase())
            .collect();
        let mut initial = State {
            g0: Ascii,
            g1: None,
        };
        let mut whole = None;
        let mut extended = false;
        for (index, term) in terms.iter().enumerate() {
            if term.is_empty() {
                continue;
            }
            if let Some(encoding) = whole_encoding(term) {
                whole = whole.or(Some(encoding));
            } else if let Some(number) = set_number(term) {
                extended |= term.starts_with("ISO 2022");
                // Only the first term sets the initial state; a multi-byte G0 there would make
                // the delimiters unreadable, so PS3.5 does not allow it and neither do we.
                let rows = SETS.iter().filter(|row| row.0 == number);
                for &(_, _, slot, set) in rows.take_while(|_| index == 0) {
                    match slot {
                        G0 if set == Ascii => initial.g0 = set,
                        G0 => {}
                        G1 => initial.g1 = Some(set),
                    }
                }
            } else {
                tracing::warn!(
                    term,
                    "unknown Specific Character Set term, decoding as Latin-1"
                );
            }
        }
        let mode = match whole {
            Some(encoding) if !extended => Mode::Whole(encoding),
            Some(_) => {
                tracing::warn!(
                    value,
                    "ISO 2022 terms mixed with UTF-8/GB18030/GBK, ignoring the latter"
                );
                Mode::Iso2022(initial)
            }
            None => Mode::Iso2022(initial),
        };
        Self { terms, mode }
    }

    /// The default repertoire (ISO IR 6, ASCII), which applies when (0008,0005) is absent.
    pub fn default_repertoire() -> Self {
        Self {
            terms: vec![String::new()],
            mode: Mode::Iso2022(State {
                g0: Ascii,
                g1: None,
            }),
        }
    }

    /// The defined terms as parsed (trimmed, upper-cased), e.g. to echo (0008,0005) back.
    pub fn terms(&self) -> &[String] {
        &self.terms
    }

    /// True if the set is plain ASCII, i.e. a C-FIND response need not carry (0008,0005).
    pub fn is_ascii_only(&self) -> bool {
        self.terms
            .iter()
            .all(|term| matches!(term.as_str(), "" | "ISO_IR 6" | "ISO 2022 IR 6"))
    }

    /// Decode a value of a text VR. ISO 2022 state returns to the initial G0/G1 at the delimiters
    /// of `vr` (see [`TextVr`]). Output is NFC-normalised, with KS X 1001 jamo-composed syllables
    /// made into precomposed Hangul, and DICOM padding (trailing spaces/NULs) removed.
    pub fn decode(&self, bytes: &[u8], vr: TextVr) -> String {
        let end = bytes
            .iter()
            .rposition(|&b| b != b' ' && b != 0)
            .map_or(0, |last| last + 1);
        let bytes = &bytes[..end];
        let text = match self.mode {
            Mode::Whole(encoding) => encoding.decode_without_bom_handling(bytes).0.into_owned(),
            Mode::Iso2022(initial) => decode_iso2022(bytes, vr, initial),
        };
        compose_ksx1001_syllables(&text).nfc().collect()
    }
}

/// The ISO 2022 state machine: escape sequences switch G0/G1, delimiters reset both.
fn decode_iso2022(bytes: &[u8], vr: TextVr, initial: State) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut state = initial;
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let rest = &bytes[i..];
        let is_g0_multibyte = matches!(state.g0, JisX0208 | JisX0212);
        let len = if byte == ESC {
            let (len, designation) = parse_escape(rest);
            match designation {
                Some((G0, set)) => state.g0 = set,
                Some((G1, set)) => state.g1 = Some(set),
                None => out.push(REPLACEMENT),
            }
            len
        } else if byte >= 0x80 {
            let len = rest.iter().take_while(|&&b| b >= 0x80).count();
            decode_g1(state.g1, &rest[..len], &mut out);
            len
        } else if is_g0_multibyte && (0x21..=0x7e).contains(&byte) {
            let len = rest
                .iter()
                .take_while(|b| (0x21..=0x7e).contains(*b))
                .count();
            decode_g0_multibyte(state.g0, &rest[..len], &mut out);
            len
        } else {
            out.push(char::from(byte));
            if vr.resets_at(byte) {
                state = initial;
            }
            1
        };
        // Every branch consumes at least one byte, so the loop always ends.
        i += len.max(1);
    }
    out
}

/// Recognise the escape sequence at the start of `bytes` (which begins with ESC). Returns how many
/// bytes it spans (at least one) and what it designates, if it is one we know. Unknown sequences
/// are skipped as ISO 2022 frames them (ESC, intermediates 0x20-0x2F, one final byte), so that
/// their final byte does not turn up as a stray letter.
fn parse_escape(bytes: &[u8]) -> (usize, Option<(Slot, Graphic)>) {
    if let Some(&(_, escape, slot, set)) = SETS.iter().find(|row| bytes.starts_with(row.1)) {
        return (escape.len(), Some((slot, set)));
    }
    let intermediates = bytes
        .iter()
        .skip(1)
        .take_while(|b| (0x20..=0x2f).contains(*b))
        .count();
    let has_final = bytes
        .get(1 + intermediates)
        .is_some_and(|b| (0x30..=0x7e).contains(b));
    (1 + intermediates + usize::from(has_final), None)
}

/// Decode a run of bytes >= 0x80 with the set in G1.
fn decode_g1(set: Option<Graphic>, run: &[u8], out: &mut String) {
    match set {
        // Without a G1 set the bytes are illegal; pydicom and most viewers read them as
        // Latin-1, which is what mislabelled European data usually is.
        None | Some(Latin1 | Ascii | JisX0208 | JisX0212) => {
            out.extend(run.iter().map(|&b| char::from(b)));
        }
        Some(Upper(encoding)) => out.push_str(&encoding.decode_without_bom_handling(run).0),
        Some(KsX1001) => out.push_str(&encoding_rs::EUC_KR.decode_without_bom_handling(run).0),
        Some(Gb2312) => out.push_str(&encoding_rs::GBK.decode_without_bom_handling(run).0),
        Some(Katakana) => out.extend(run.iter().map(|&b| match b {
            0xa1..=0xdf => char::from_u32(0xff61 + u32::from(b - 0xa1)).unwrap_or(REPLACEMENT),
            _ => REPLACEMENT,
        })),
    }
}

/// Decode a run of bytes 0x21-0x7E in a 94x94 G0 set by shifting it to EUC-JP, whose tables
/// encoding_rs has (JIS X 0212 there is prefixed by SS3, 0x8F).
fn decode_g0_multibyte(set: Graphic, run: &[u8], out: &mut String) {
    let mut euc = Vec::with_capacity(run.len() * 3 / 2 + 1);
    let pairs = run.chunks_exact(2);
    let odd = !pairs.remainder().is_empty();
    for pair in pairs {
        if set == JisX0212 {
            euc.push(0x8f);
        }
        euc.extend(pair.iter().map(|b| b | 0x80));
    }
    out.push_str(&encoding_rs::EUC_JP.decode_without_bom_handling(&euc).0);
    if odd {
        out.push(REPLACEMENT);
    }
}

/// KS X 1001 spells the syllables missing from its 2,350 precomposed ones as the HANGUL FILLER
/// followed by initial, medial and final compatibility jamo (a filler where one is absent). NFC
/// leaves compatibility jamo alone, so such sequences are composed here.
fn compose_ksx1001_syllables(text: &str) -> std::borrow::Cow<'_, str> {
    const FILLER: char = '\u{3164}';
    const INITIALS: &str = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ";
    const FINALS: &str = "ㄱㄲㄳㄴㄵㄶㄷㄹㄺㄻㄼㄽㄾㄿㅀㅁㅂㅄㅅㅆㅇㅈㅊㅋㅌㅍㅎ";
    if !text.contains(FILLER) {
        return text.into();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        if let [FILLER, initial, medial, last, ..] = chars[i..] {
            let l = INITIALS.chars().position(|j| j == initial);
            let v = ('\u{314f}'..='\u{3163}')
                .contains(&medial)
                .then(|| u32::from(medial) - 0x314f);
            let t = match last {
                FILLER => Some(0),
                _ => FINALS.chars().position(|j| j == last).map(|p| p + 1),
            };
            if let (Some(l), Some(v), Some(t)) = (l, v, t) {
                // Indices are bounded by the tables above, so the casts and the sum cannot overflow.
                let syllable = 0xac00 + (l as u32 * 21 + v) * 28 + t as u32;
                out.push(char::from_u32(syllable).unwrap_or(REPLACEMENT));
                i += 4;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out.into()
}

/// Keys for searching person names: one per non-empty component group (alphabetic, ideographic,
/// phonetic) of every value, without duplicates. Each key is [`normalize_search_text`] of its
/// group, so "Hong^Gildong=洪^吉洞=홍^길동" gives ["honggildong", "洪吉洞", "홍길동"] and
/// "Äneas^Rüdiger" gives ["äneasrüdiger"].
pub fn person_name_search_keys(decoded_pn: &str) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for group in decoded_pn.split('\\').flat_map(|value| value.split('=')) {
        let key = normalize_search_text(group);
        if !key.is_empty() && !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys
}

/// Latin keys of the Hangul groups of a person name (`kim` finds `김^민수`): for a search
/// that asks for them (the web page; C-FIND matches the value as PS3.4 says and never uses
/// them). Normalised like [`person_name_search_keys`].
pub fn romanised_name_keys(decoded_pn: &str) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for group in decoded_pn.split('\\').flat_map(|value| value.split('=')) {
        for spelling in romanise::name_spellings(group) {
            let key = normalize_search_text(&spelling);
            if !key.is_empty() && !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys
}

/// The version of the keys [`normalize_search_text`] makes. Stored search keys made under another
/// version no longer meet a query's key, so the index rebuilds them when this changes.
/// 1: NFC, ASCII upper-cased. 2: canonical caseless (full Unicode case folding). 3: with the
/// romanised keys of Hangul names ([`romanised_name_keys`]).
pub const SEARCH_KEY_VERSION: u64 = 3;

/// Normalise person-name text for case-insensitive search, the same for a stored name and a
/// user's pattern: '^' and spaces dropped, then Unicode canonical caseless form (NFD, full case
/// folding, back to NFC so Hangul stays composed). Full folding, not `to_lowercase`, because
/// lower-casing leaves the classic pairs apart: "ß"/"ẞ"/"SS" all fold to "ss", and Greek final
/// "ς" and "Σ" both fold to "σ". Wildcards '*' and '?' survive (a '?' stands for one folded
/// character, so "straße" needs "stra??e").
pub fn normalize_search_text(s: &str) -> String {
    use caseless::Caseless;
    s.nfd()
        .filter(|&c| c != '^' && c != ' ')
        .default_case_fold()
        .nfc()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filler_sequences_compose_to_syllables() {
        // KS X 1001 bytes for filler, ㄸ, ㅗ, ㅁ: 똠, which is not among the precomposed syllables.
        let set = SpecificCharacterSet::from_value("\\ISO 2022 IR 149");
        let bytes = b"\x1b$)C\xa4\xd4\xa4\xa8\xa4\xc7\xa4\xb1";
        assert_eq!(set.decode(bytes, TextVr::PersonName), "똠");
        // With a filler as final consonant: 따.
        let bytes = b"\x1b$)C\xa4\xd4\xa4\xa8\xa4\xbf\xa4\xd4";
        assert_eq!(set.decode(bytes, TextVr::PersonName), "따");
        // A lone filler or a broken sequence is left as it is.
        let bytes = b"\x1b$)C\xa4\xd4\xa4\xbf";
        assert_eq!(set.decode(bytes, TextVr::PersonName), "\u{3164}ㅏ");
    }

    #[test]
    fn search_keys_fold_case_in_every_cased_script() {
        let key = |s: &str| normalize_search_text(s);
        assert_eq!(key("Äneas^Rüdiger"), key("äneas rüdiger"));
        assert_eq!(key("ÄNEAS^RÜDIGER"), "äneasrüdiger");
        assert_eq!(key("Buc^Jérôme"), key("BUC^JÉRÔME"));
        // Decomposed input (e + combining acute) meets the precomposed letter.
        assert_eq!(key("BUC^JE\u{301}RO\u{302}ME"), key("buc^jérôme"));
        // Greek: final sigma, capital sigma and sigma are one letter to a search.
        assert_eq!(key("Διονυσιος"), key("ΔΙΟΝΥΣΙΟΣ"));
        assert_eq!(key("Διονυσιος"), key("διονυσιοσ"));
        // Cyrillic.
        assert_eq!(key("Люкceмбypг"), key("ЛЮКCEМБYPГ"));
        // German sharp s, small and capital, and its traditional upper-case spelling.
        assert_eq!(key("Strauß"), key("STRAUSS"));
        assert_eq!(key("STRAUẞ"), key("strauss"));
        // Scripts without case and wildcards are untouched.
        assert_eq!(key("홍^길동"), "홍길동");
        assert_eq!(key("山田^太郎"), "山田太郎");
        assert_eq!(key("Kim*^M?n"), "kim*m?n");
        assert_eq!(
            person_name_search_keys("Hong^Gildong=洪^吉洞=홍^길동"),
            ["honggildong", "洪吉洞", "홍길동"]
        );
    }

    #[test]
    fn escape_parsing_always_advances() {
        assert_eq!(parse_escape(b"\x1b"), (1, None));
        assert_eq!(parse_escape(b"\x1b$"), (2, None));
        assert_eq!(parse_escape(b"\x1b$)"), (3, None));
        assert_eq!(parse_escape(b"\x1b$)Z"), (4, None));
        assert_eq!(parse_escape(b"\x1b\xff"), (1, None));
        assert_eq!(parse_escape(b"\x1b$)C\xb1"), (4, Some((G1, KsX1001))));
    }
}
