//! The page's two languages, English and Korean (the seed clinics' staff read Korean). A
//! language is chosen per request: the user's own setting (account page) if they made one,
//! else the browser's `Accept-Language`. Every text a page shows is a field of [`Strings`];
//! the `catalogue!` rows give each field its English and Korean text side by side, so a text
//! without its translation does not compile. Templates get the chosen catalogue as `t`.

/// A language the pages are written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Ko,
}

impl Lang {
    /// The BCP 47 tag: `<html lang>`, and what the account stores.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ko => "ko",
        }
    }

    /// A stored or posted tag; anything else is no choice.
    pub fn parse(tag: &str) -> Option<Lang> {
        match tag {
            "en" => Some(Lang::En),
            "ko" => Some(Lang::Ko),
            _ => None,
        }
    }

    pub fn strings(self) -> &'static Strings {
        match self {
            Lang::En => &EN,
            Lang::Ko => &KO,
        }
    }

    /// The user's setting if any, else the browser's.
    pub fn choose(setting: Option<Lang>, accept_language: &str) -> Lang {
        setting.unwrap_or_else(|| Lang::from_accept_language(accept_language))
    }

    /// The browser's preference (RFC 9110 `Accept-Language`): the highest-q range we speak,
    /// the earlier one on a tie; `ko`, `ko-KR`… are Korean, `en…` and `*` English. A header
    /// naming neither gives English, the page's original language.
    pub fn from_accept_language(header: &str) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let range = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|v| v.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = range.split('-').next().unwrap_or("");
            let lang = match primary {
                "ko" => Lang::Ko,
                "en" | "*" => Lang::En,
                _ => continue,
            };
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::En, |(_, l)| l)
    }
}

/// Digits grouped by thousands as both languages write them (`12,345`: Korean uses the
/// comma too).
pub fn group_thousands(n: impl std::fmt::Display) -> String {
    let text = n.to_string();
    let (sign, digits) = match text.strip_prefix('-') {
        Some(d) => ("-", d),
        None => ("", text.as_str()),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return text;
    }
    let mut out = String::from(sign);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A text with `{}` places filled in order by `args` (extra places stay empty).
pub fn fill(text: &str, args: &[String]) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut args = args.iter();
    let mut rest = text;
    while let Some(at) = rest.find("{}") {
        out.push_str(&rest[..at]);
        if let Some(a) = args.next() {
            out.push_str(a);
        }
        rest = &rest[at + 2..];
    }
    out.push_str(rest);
    out
}

macro_rules! catalogue {
    ($($name:ident: $en:literal, $ko:literal;)*) => {
        /// Every text of the pages, one field each (see the module comment).
        pub struct Strings {
            $(pub $name: &'static str,)*
        }
        pub static EN: Strings = Strings { $($name: $en,)* };
        pub static KO: Strings = Strings { $($name: $ko,)* };
        /// (field, English, Korean) of every text, for tests.
        pub const ALL: &[(&str, &str, &str)] = &[$((stringify!($name), $en, $ko),)*];
    };
}

include!("i18n_catalogue.rs");

/// Rows whose texts page scripts write too (see [`Strings::script_texts`]).
fn is_script_text(name: &str) -> bool {
    name.starts_with("viewer_") || name.starts_with("js_")
}

impl Strings {
    /// A message made below the page layer in English (a form check, the archive's answer):
    /// its Korean text when the catalogue has the same English text, else as it is.
    pub fn tr<'a>(&'static self, english: &'a str) -> &'a str {
        if !std::ptr::eq(self, &KO) {
            return english;
        }
        ALL.iter()
            .find(|(_, en, _)| *en == english)
            .map_or(english, |(_, _, ko)| ko)
    }

    /// A message made below the pages as `lead: detail` (the import's per-file reasons, an
    /// archive error): the whole text if a row has it, else its lead translated and the
    /// detail (a library's words, a file name) kept as it is.
    pub fn tr_lead(&'static self, english: &str) -> String {
        let whole = self.tr(english);
        if whole != english {
            return whole.to_owned();
        }
        match english.split_once(": ") {
            Some((lead, detail)) if self.tr(lead) != lead => {
                format!("{}: {detail}", self.tr(lead))
            }
            _ => english.to_owned(),
        }
    }

    /// The texts the page scripts write (`web-ui/static/i18n.js`), for a `<script
    /// type="application/json" id="i18n">` block: a JSON object from each English text to this
    /// language's, for the rows named `viewer_…` (the viewer's page and scripts) and `js_…`
    /// (other scripts). The scripts' own texts are the English ones, so English sends `{}`:
    /// a text missing here stays English. `<`, `>` and `&` are escaped so the block cannot end
    /// early whatever a text holds.
    pub fn script_texts(&'static self) -> String {
        if !std::ptr::eq(self, &KO) {
            return "{}".to_owned();
        }
        let map: serde_json::Map<String, serde_json::Value> = ALL
            .iter()
            .filter(|(name, en, ko)| is_script_text(name) && en != ko)
            .map(|(_, en, ko)| ((*en).to_owned(), serde_json::Value::from(*ko)))
            .collect();
        serde_json::Value::Object(map)
            .to_string()
            .replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026")
    }

    /// A count as this language writes it.
    pub fn num(&self, n: impl std::fmt::Display) -> String {
        group_thousands(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_korean_only_when_preferred() {
        assert_eq!(Lang::from_accept_language("ko-KR,ko;q=0.9"), Lang::Ko);
        assert_eq!(Lang::from_accept_language("KO"), Lang::Ko);
        assert_eq!(
            Lang::from_accept_language("en-US,en;q=0.9,ko;q=0.8"),
            Lang::En
        );
        assert_eq!(
            Lang::from_accept_language("de-DE,ko;q=0.5,en;q=0.4"),
            Lang::Ko
        );
        assert_eq!(Lang::from_accept_language("ko;q=0,en;q=0.1"), Lang::En);
        assert_eq!(Lang::from_accept_language("fr"), Lang::En);
        assert_eq!(Lang::from_accept_language(""), Lang::En);
        assert_eq!(Lang::from_accept_language("kok,ko-KR;q=0.2"), Lang::Ko);
    }

    #[test]
    fn the_setting_overrides_the_browser() {
        assert_eq!(Lang::choose(Some(Lang::En), "ko-KR"), Lang::En);
        assert_eq!(Lang::choose(Some(Lang::Ko), "en-US"), Lang::Ko);
        assert_eq!(Lang::choose(None, "ko-KR"), Lang::Ko);
        assert_eq!(Lang::parse("ko"), Some(Lang::Ko));
        assert_eq!(Lang::parse("de"), None);
    }

    #[test]
    fn places_are_filled_in_order() {
        assert_eq!(fill("a {} b {}", &["1".into(), "2".into()]), "a 1 b 2");
        assert_eq!(fill("{}초", &["5".into()]), "5초");
        assert_eq!(fill("no place", &["x".into()]), "no place");
    }

    #[test]
    fn english_messages_from_below_are_translated_when_catalogued() {
        assert_eq!(KO.tr(EN.password_changed), KO.password_changed);
        assert_eq!(EN.tr(EN.password_changed), EN.password_changed);
        assert_eq!(KO.tr("not in the catalogue"), "not in the catalogue");
    }

    #[test]
    fn script_texts_are_json_of_english_to_korean() {
        assert_eq!(EN.script_texts(), "{}");
        let json = KO.script_texts();
        assert!(!json.contains('<') && !json.contains('>') && !json.contains('&'));
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(
            map.get(EN.viewer_sync).and_then(|v| v.as_str()),
            Some(KO.viewer_sync)
        );
        assert!(!map.contains_key(EN.search_title), "only the scripts' rows");
    }

    /// The scripts look texts up by their English: one English text must have one Korean.
    #[test]
    fn script_texts_have_one_translation_each() {
        for (name, en, ko) in ALL.iter().filter(|(n, _, _)| is_script_text(n)) {
            for (other, en2, ko2) in ALL {
                if en == en2 {
                    assert_eq!(ko, ko2, "{name} and {other} translate {en:?} differently");
                }
            }
        }
    }

    /// Every `t('…')` in the page scripts has its row (else it would stay English for a
    /// Korean user), and every `js_` row is used by a script.
    #[test]
    fn every_text_the_scripts_look_up_is_catalogued() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../web-ui/static");
        let mut used = Vec::new();
        for entry in std::fs::read_dir(dir).expect("web-ui/static") {
            let path = entry.expect("dir entry").path();
            if path.extension().is_none_or(|e| e != "js") {
                continue;
            }
            let src = std::fs::read_to_string(&path).expect("a script");
            used.extend(looked_up(&src).into_iter().map(|t| (path.clone(), t)));
        }
        assert!(used.len() > 40, "the scripts' lookups were not found");
        for (path, text) in &used {
            assert!(
                ALL.iter().any(|(n, en, _)| is_script_text(n) && en == text),
                "{}: t({text:?}) has no viewer_/js_ row in i18n_catalogue.rs",
                path.display()
            );
        }
        for (name, en, _) in ALL.iter().filter(|(n, _, _)| n.starts_with("js_")) {
            assert!(
                used.iter().any(|(_, t)| t == en),
                "{name} is used by no script"
            );
        }
    }

    /// The literal first arguments of `t(` calls: `t('…'`, `t("…"`.
    fn looked_up(src: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = src;
        while let Some(at) = rest.find("t(") {
            let before = rest[..at].chars().next_back();
            rest = &rest[at + 2..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
                continue;
            }
            let Some(q) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') else {
                continue;
            };
            if let Some(end) = rest[1..].find(q) {
                out.push(rest[1..1 + end].replace("\\'", "'"));
            }
        }
        out
    }

    #[test]
    fn messages_made_below_translate_their_lead_only() {
        assert_eq!(
            KO.tr_lead("not a DICOM file (too short for a Part-10 header)"),
            KO.imp_why_short
        );
        assert_eq!(
            KO.tr_lead("reading: unexpected end of file"),
            "읽기 실패: unexpected end of file"
        );
        assert_eq!(
            KO.tr_lead("not a DICOM Part-10 file: no DICM prefix"),
            "DICOM Part-10 파일이 아닙니다: no DICM prefix"
        );
        // English, and a lead without a row, stay as they were made.
        assert_eq!(EN.tr_lead("reading: x"), "reading: x");
        assert_eq!(KO.tr_lead("disk full: 3 MB free"), "disk full: 3 MB free");
        assert_eq!(KO.tr_lead("no colon here"), "no colon here");
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1000), "1,000");
        assert_eq!(group_thousands(1234567), "1,234,567");
        assert_eq!(group_thousands(-1234), "-1,234");
        assert_eq!(KO.num(12345u32), "12,345");
    }

    #[test]
    fn korean_texts_are_translated_and_keep_placeholders() {
        for (name, en, ko) in ALL {
            assert!(!ko.is_empty(), "{name} has no Korean text");
            // Texts that are names (pacsbox, DICOM, AE…) may stay the same; sentences may not.
            if en.split_whitespace().count() > 2 {
                assert_ne!(en, ko, "{name} is not translated");
            }
        }
    }
}
