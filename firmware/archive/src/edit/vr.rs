//! Values checked against their VR (PS3.5 6.2) before anything is changed: an edit that would
//! write a value a conforming reader must reject is refused with a message instead.

/// The value representations an edit can set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vr {
    Pn,
    Lo,
    Sh,
    Cs,
    Da,
    Tm,
    Ui,
}

impl Vr {
    pub fn code(self) -> [u8; 2] {
        match self {
            Vr::Pn => *b"PN",
            Vr::Lo => *b"LO",
            Vr::Sh => *b"SH",
            Vr::Cs => *b"CS",
            Vr::Da => *b"DA",
            Vr::Tm => *b"TM",
            Vr::Ui => *b"UI",
        }
    }
}

/// Why a value was refused; the message names the attribute and says what is wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{attribute}: {problem}")]
pub struct InvalidValue {
    pub attribute: String,
    pub problem: String,
}

/// Checks one value (empty is always allowed: it clears the attribute).
pub fn check(attribute: &str, vr: Vr, value: &str) -> Result<(), InvalidValue> {
    let bad = |problem: String| {
        Err(InvalidValue {
            attribute: attribute.to_owned(),
            problem,
        })
    };
    if value.is_empty() {
        return Ok(());
    }
    if value.contains('\\') {
        return bad("a backslash separates values; only one value may be set".into());
    }
    if value.chars().any(|c| c.is_control()) {
        return bad("control characters are not allowed".into());
    }
    let chars = value.chars().count();
    let max_len = |n: usize| {
        if chars > n {
            bad(format!("{chars} characters, at most {n} allowed"))
        } else {
            Ok(())
        }
    };
    match vr {
        Vr::Pn => {
            let groups: Vec<&str> = value.split('=').collect();
            if groups.len() > 3 {
                return bad(
                    "at most three component groups (alphabetic=ideographic=phonetic)".into(),
                );
            }
            for g in groups {
                let comps: Vec<&str> = g.split('^').collect();
                if comps.len() > 5 {
                    return bad(
                        "at most five components (family^given^middle^prefix^suffix)".into(),
                    );
                }
                for c in comps {
                    let n = c.chars().count();
                    if n > 64 {
                        return bad(format!(
                            "component {c:.20}… has {n} characters, at most 64 allowed"
                        ));
                    }
                }
            }
            Ok(())
        }
        Vr::Lo => max_len(64),
        Vr::Sh => max_len(16),
        Vr::Cs => {
            max_len(16)?;
            if !value
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == ' ' || c == '_')
            {
                return bad("only upper-case letters, digits, space and underscore".into());
            }
            Ok(())
        }
        Vr::Da => {
            if value.len() != 8 || !value.bytes().all(|b| b.is_ascii_digit()) {
                return bad(format!("{value:?} is not a date YYYYMMDD"));
            }
            let n = |r: std::ops::Range<usize>| value[r].parse::<u32>().unwrap_or(0);
            let (y, m, d) = (n(0..4), n(4..6), n(6..8));
            if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
                return bad(format!("{value:?} is not a valid date"));
            }
            Ok(())
        }
        Vr::Tm => {
            let (hms, frac) = value.split_once('.').unwrap_or((value, ""));
            let ok_digits = hms.bytes().all(|b| b.is_ascii_digit())
                && frac.bytes().all(|b| b.is_ascii_digit())
                && matches!(hms.len(), 2 | 4 | 6)
                && frac.len() <= 6
                && (frac.is_empty() || hms.len() == 6);
            if !ok_digits {
                return bad(format!("{value:?} is not a time HHMMSS[.FFFFFF]"));
            }
            let n = |r: std::ops::Range<usize>| hms.get(r).and_then(|s| s.parse::<u32>().ok());
            if n(0..2).is_some_and(|h| h > 23)
                || n(2..4).is_some_and(|m| m > 59)
                || n(4..6).is_some_and(|s| s > 60)
            {
                return bad(format!("{value:?} is not a valid time"));
            }
            Ok(())
        }
        Vr::Ui => match crate::uid::Uid::parse(value) {
            Ok(_) => Ok(()),
            Err(e) => bad(format!("{value:?} is not a UID: {e}")),
        },
    }
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        2 => 28,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_the_standard_refuses() {
        assert!(check("PatientName", Vr::Pn, &format!("{}^JOHN", "A".repeat(70))).is_err());
        assert!(check("PatientName", Vr::Pn, "DOE^JOHN=홍^길동=ホン^キルトン").is_ok());
        assert!(check("PatientName", Vr::Pn, "A=B=C=D").is_err());
        assert!(check("PatientBirthDate", Vr::Da, "2024-13-45").is_err());
        assert!(check("PatientBirthDate", Vr::Da, "20241345").is_err());
        assert!(check("PatientBirthDate", Vr::Da, "20230229").is_err());
        assert!(check("PatientBirthDate", Vr::Da, "20240229").is_ok());
        assert!(check("StudyInstanceUID", Vr::Ui, "1.2.abc").is_err());
        assert!(check("StudyInstanceUID", Vr::Ui, &format!("1.{}", "2".repeat(70))).is_err());
        assert!(check("StudyInstanceUID", Vr::Ui, "1.2.840.1").is_ok());
        assert!(check("PatientSex", Vr::Cs, "m").is_err());
        assert!(check("PatientSex", Vr::Cs, "M").is_ok());
        assert!(check("PatientID", Vr::Lo, &"9".repeat(65)).is_err());
        assert!(check("AccessionNumber", Vr::Sh, &"9".repeat(17)).is_err());
        assert!(check("PatientID", Vr::Lo, "A\\B").is_err());
        assert!(check("StudyTime", Vr::Tm, "251000").is_err());
        assert!(check("StudyTime", Vr::Tm, "101500.123").is_ok());
        assert!(check("StudyTime", Vr::Tm, "").is_ok());
    }
}
