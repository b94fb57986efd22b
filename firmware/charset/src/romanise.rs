//! Latin spellings of Korean names, so that staff on a Latin keyboard find `김^민수` by typing
//! `kim` or `gim minsu`. Revised Romanisation (2000) per syllable, as passports and hospital
//! records write given names, and for the family name also the spellings people actually use
//! (Kim, Lee/Yi/Rhee, Park/Bak, Choi/Choe, Jung/Jeong/Chung, …), which the Revised system alone
//! misses. For search keys only: nothing here is shown or stored as a name.

/// Initial consonants, in Unicode's syllable order.
const INITIAL: [&str; 19] = [
    "g", "kk", "n", "d", "tt", "r", "m", "b", "pp", "s", "ss", "", "j", "jj", "ch", "k", "t", "p",
    "h",
];
const VOWEL: [&str; 21] = [
    "a", "ae", "ya", "yae", "eo", "e", "yeo", "ye", "o", "wa", "wae", "oe", "yo", "u", "wo", "we",
    "wi", "yu", "eu", "ui", "i",
];
/// Final consonants as pronounced at the end of a syllable (none first).
const FINAL: [&str; 28] = [
    "", "k", "k", "k", "n", "n", "n", "t", "l", "k", "m", "l", "l", "l", "p", "l", "m", "p", "p",
    "t", "t", "ng", "t", "t", "k", "t", "p", "t",
];

/// Family names and their common Latin spellings besides the Revised one (which is always
/// made). Two-syllable family names are listed so a name written without `^` splits right.
const FAMILY: &[(&str, &[&str])] = &[
    ("김", &["kim"]),
    ("이", &["lee", "yi", "rhee", "ri", "rhie"]),
    ("리", &["lee", "ri"]),
    ("박", &["park", "pak"]),
    ("최", &["choi", "choe"]),
    ("정", &["jung", "chung", "jeong"]),
    ("강", &["kang"]),
    ("조", &["cho", "jo"]),
    ("윤", &["yoon"]),
    ("장", &["chang"]),
    ("임", &["lim", "rim"]),
    ("림", &["lim", "rim"]),
    ("한", &[]),
    ("오", &["oh"]),
    ("서", &["suh"]),
    ("신", &["shin"]),
    ("권", &["kwon"]),
    ("황", &[]),
    ("안", &["ahn"]),
    ("송", &[]),
    ("류", &["ryu", "yoo", "yu", "ryoo"]),
    ("유", &["yoo", "you"]),
    ("전", &["jun", "chun", "chon"]),
    ("홍", &[]),
    ("고", &["ko", "koh"]),
    ("문", &["moon"]),
    ("양", &[]),
    ("손", &["sohn"]),
    ("배", &["bai", "pae"]),
    ("백", &["paik", "baik", "paek"]),
    ("허", &["huh", "hur"]),
    ("노", &["noh", "roh", "ro"]),
    ("남", &[]),
    ("심", &["shim"]),
    ("하", &[]),
    ("곽", &["kwak"]),
    ("성", &["sung"]),
    ("차", &[]),
    ("주", &["joo", "chu", "choo"]),
    ("우", &["woo"]),
    ("구", &["koo", "ku"]),
    ("민", &[]),
    ("진", &["chin"]),
    ("지", &["chi"]),
    ("엄", &["um", "uhm"]),
    ("채", &["chai"]),
    ("원", &[]),
    ("천", &["chun", "chon"]),
    ("방", &["pang"]),
    ("공", &["kong"]),
    ("현", &["hyun"]),
    ("변", &["byun", "pyun"]),
    ("염", &["yum", "yeom"]),
    ("여", &["yuh"]),
    ("추", &["choo", "chu"]),
    ("도", &["doh"]),
    ("석", &["suk"]),
    ("선", &["sun"]),
    ("설", &["sul"]),
    ("길", &["kil"]),
    ("연", &["yun"]),
    ("위", &["wee"]),
    ("명", &["myung"]),
    ("기", &["ki"]),
    ("라", &["la", "na"]),
    ("나", &["ra"]),
    ("금", &["keum", "kum"]),
    ("경", &["kyung", "kyoung"]),
    ("국", &["kook", "kuk"]),
    ("형", &["hyung"]),
    ("두", &["doo"]),
    ("부", &["boo", "pu"]),
    ("가", &["ka"]),
    ("감", &["kam"]),
    ("제갈", &["jegal"]),
    ("남궁", &["namkung", "namgoong"]),
    ("선우", &["sunwoo"]),
    ("황보", &["hwangbo"]),
    ("독고", &["dokko"]),
    ("사공", &["sakong"]),
    ("서문", &["suhmoon"]),
];

fn is_syllable(c: char) -> bool {
    ('\u{AC00}'..='\u{D7A3}').contains(&c)
}

/// Revised Romanisation, syllable by syllable; any other character is kept as it is.
pub fn revised(hangul: &str) -> String {
    let mut out = String::new();
    for c in hangul.chars() {
        if is_syllable(c) {
            let i = c as u32 - 0xAC00;
            // The indices are bounded by the syllable block's layout (19 × 21 × 28).
            out.push_str(INITIAL[(i / (21 * 28)) as usize]);
            out.push_str(VOWEL[(i / 28 % 21) as usize]);
            out.push_str(FINAL[(i % 28) as usize]);
        } else {
            out.push(c);
        }
    }
    out
}

/// Latin keys for one component group of a person name (`family^given^…`) that is written in
/// Hangul: each spelling of the family name followed by the given name's Revised spelling.
/// Empty for a group without Hangul syllables.
pub fn name_spellings(group: &str) -> Vec<String> {
    if !group.chars().any(is_syllable) {
        return Vec::new();
    }
    let mut parts = group.split('^');
    let first = parts.next().unwrap_or_default().trim();
    let rest: String = parts.collect::<Vec<_>>().concat();
    let (family, given) = if rest.trim().is_empty() {
        // Written whole ("김민수"): a two-syllable family name if it is a known one.
        let two: String = first.chars().take(2).collect();
        let n = if first.chars().count() > 2 && FAMILY.iter().any(|(f, _)| *f == two) {
            2
        } else {
            1
        };
        let split = first.char_indices().nth(n).map_or(first.len(), |(i, _)| i);
        (&first[..split], first[split..].to_owned())
    } else {
        (first, rest)
    };
    let given = revised(given.trim());
    let mut spellings = vec![revised(family)];
    for (_, known) in FAMILY.iter().filter(|(f, _)| *f == family) {
        spellings.extend(known.iter().map(|s| (*s).to_owned()));
    }
    let mut out: Vec<String> = Vec::new();
    for s in spellings {
        let key = format!("{s}{given}");
        if !out.contains(&key) {
            out.push(key);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syllables_follow_the_revised_romanisation() {
        assert_eq!(revised("홍길동"), "honggildong");
        assert_eq!(revised("김민수"), "gimminsu");
        assert_eq!(revised("정은지"), "jeongeunji");
        assert_eq!(revised("최"), "choe");
        assert_eq!(revised("꽃"), "kkot");
        assert_eq!(revised("x김"), "xgim");
    }

    #[test]
    fn family_names_get_the_spellings_people_use() {
        assert_eq!(name_spellings("김^민수"), ["gimminsu", "kimminsu"]);
        assert_eq!(name_spellings("김민수"), ["gimminsu", "kimminsu"]);
        let lee = name_spellings("이^서연");
        for want in ["iseoyeon", "leeseoyeon", "yiseoyeon", "rheeseoyeon"] {
            assert!(lee.contains(&want.to_owned()), "{lee:?}");
        }
        assert!(name_spellings("박지성").contains(&"parkjiseong".to_owned()));
        assert!(name_spellings("최^민").contains(&"choimin".to_owned()));
        // A two-syllable family name written whole is split after both syllables.
        assert!(name_spellings("남궁민수").contains(&"namgoongminsu".to_owned()));
        assert!(name_spellings("남궁^민수").contains(&"namgungminsu".to_owned()));
        // Other scripts give nothing (their own keys find them).
        assert!(name_spellings("Kim^Minsu").is_empty());
        assert!(name_spellings("金^民秀").is_empty());
    }
}
