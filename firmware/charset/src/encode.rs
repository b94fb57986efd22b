//! Encoding text for a response in the requester's character set: Korean in ISO 2022 IR 149
//! (KS X 1001 as G1, PS3.5 Annex I), the set Korean modalities ask in. Anything KS X 1001
//! cannot carry gives `None`, and the caller answers in UTF-8 instead.

use crate::TextVr;

/// ESC $ ) C: KS X 1001 designated to G1.
const DESIGNATE_KSX1001: &[u8] = b"\x1b$)C";

/// `text` in ISO 2022 IR 149 (initial state ASCII, as `\ISO 2022 IR 149` declares), the
/// designation repeated after each delimiter of `vr` where the decoder returns to the initial
/// state; `None` when a character is outside ASCII and KS X 1001.
pub fn encode_iso2022_ir149(text: &str, vr: TextVr) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() + 8);
    let mut designated = false;
    for c in text.chars() {
        if c.is_ascii() {
            let b = c as u8;
            out.push(b);
            if vr.resets_at(b) {
                designated = false;
            }
            continue;
        }
        let mut buf = [0u8; 4];
        let (bytes, _, unmappable) = encoding_rs::EUC_KR.encode(c.encode_utf8(&mut buf));
        // Windows-949's extra Hangul syllables lie outside KS X 1001's GR rows: not ours to send.
        if unmappable || bytes.len() != 2 || !bytes.iter().all(|b| (0xA1..=0xFE).contains(b)) {
            return None;
        }
        if !designated {
            out.extend_from_slice(DESIGNATE_KSX1001);
            designated = true;
        }
        out.extend_from_slice(&bytes);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SpecificCharacterSet;

    #[test]
    fn korean_names_round_trip_through_ir_149() {
        let set = SpecificCharacterSet::from_value("\\ISO 2022 IR 149");
        for name in ["Hong^Gildong=洪^吉洞=홍^길동", "김^민수", "ASCII^ONLY"] {
            let bytes = encode_iso2022_ir149(name, TextVr::PersonName).unwrap();
            assert_eq!(set.decode(&bytes, TextVr::PersonName), name);
        }
        // PS3.5 I.2's example, byte for byte.
        assert_eq!(
            encode_iso2022_ir149("Hong^Gildong=洪^吉洞=홍^길동", TextVr::PersonName).unwrap(),
            b"Hong^Gildong=\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7=\x1b$)C\xc8\xab^\x1b$)C\xb1\xe6\xb5\xbf"
        );
        // A syllable only windows-949 has, and an emoji: not KS X 1001 text.
        assert!(encode_iso2022_ir149("똠", TextVr::PersonName).is_none());
        assert!(encode_iso2022_ir149("😀", TextVr::ShortText).is_none());
    }
}
