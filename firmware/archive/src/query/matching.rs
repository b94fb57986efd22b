//! PS3.4 C.2.2.2 matching of one value against one key: single value, universal, wildcard,
//! range, UID list, and person names compared case-folded on each component group.

use super::model::{Attr, Matcher, Query, Row};
use crate::index::wildcard_match;

impl Row {
    /// Whether the row passes every filter of its own and the upper levels.
    pub(super) fn matches(&self, filters: &[(Attr, Matcher)]) -> bool {
        filters.iter().all(|(attr, m)| {
            if *m == Matcher::Universal {
                return true;
            }
            match self.value(*attr) {
                // a key of a level below the row cannot be matched here: the caller checks
                None => true,
                Some(v) => {
                    if attr.is_multi_valued() {
                        v.split('\\').any(|one| value_matches(*attr, m, one))
                    } else {
                        value_matches(*attr, m, &v)
                    }
                }
            }
        })
    }
}

/// One value against one matcher.
pub fn value_matches(attr: Attr, m: &Matcher, value: &str) -> bool {
    if attr.is_person_name() {
        let pattern = match m {
            Matcher::Universal => return true,
            Matcher::Single(s) | Matcher::Wildcard(s) | Matcher::Romanised(s) => s,
            Matcher::Range(..) | Matcher::List(_) => return false,
        };
        // Any component group of the pattern against any of the value's.
        let mut keys = pacsbox_charset::person_name_search_keys(value);
        if matches!(m, Matcher::Romanised(_)) {
            keys.extend(pacsbox_charset::romanised_name_keys(value));
        }
        return pattern
            .split('=')
            .filter(|g| !g.trim().is_empty())
            .map(pacsbox_charset::normalize_search_text)
            .any(|pat| keys.iter().any(|k| wildcard_match(&pat, k)));
    }
    match m {
        Matcher::Universal => true,
        Matcher::Single(s) => value == s,
        Matcher::Wildcard(p) | Matcher::Romanised(p) => wildcard_match(p, value),
        Matcher::Range(lo, hi) => {
            !value.is_empty()
                && (lo.is_empty() || value >= lo.as_str())
                && (hi.is_empty() || value <= hi.as_str())
        }
        Matcher::List(list) => list.iter().any(|u| u == value),
    }
}

/// The non-universal matcher `q` gives for `attr`.
pub(super) fn filter(q: &Query, attr: Attr) -> Option<&Matcher> {
    q.filters
        .iter()
        .find(|(a, m)| *a == attr && *m != Matcher::Universal)
        .map(|(_, m)| m)
}

/// The UIDs a single-value or list matcher names (None: any UID).
pub(super) fn uids_of(m: Option<&Matcher>) -> Option<Vec<String>> {
    match m? {
        Matcher::Single(s) => Some(vec![s.clone()]),
        Matcher::List(l) => Some(l.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::value_matches;

    #[test]
    fn person_names_match_case_insensitively_by_any_group() {
        let m = Matcher::parse(Attr::PatientName, "kim*");
        assert!(value_matches(Attr::PatientName, &m, "KIM^MINSU"));
        // C-FIND matches the value itself; only the web page's romanised pattern reaches a
        // Hangul-only name through its Latin spellings.
        assert!(!value_matches(Attr::PatientName, &m, "김^민수"));
        let web = Matcher::Romanised("kim*".into());
        assert!(value_matches(Attr::PatientName, &web, "김^민수"));
        assert!(value_matches(Attr::PatientName, &web, "KIM^MINSU"));
        assert!(!value_matches(Attr::PatientName, &web, "박^지성"));
        assert!(!value_matches(Attr::PatientName, &m, "LEE^KIM"));
        let m = Matcher::parse(Attr::PatientName, "홍길동");
        assert!(value_matches(
            Attr::PatientName,
            &m,
            "Hong^Gildong=洪^吉洞=홍^길동"
        ));
        let m = Matcher::parse(Attr::PatientName, "DOE^J*");
        assert!(value_matches(Attr::PatientName, &m, "DOE^JOHN"));
        let r = Matcher::parse(Attr::StudyDate, "20240101-20240131");
        assert!(value_matches(Attr::StudyDate, &r, "20240115"));
        assert!(!value_matches(Attr::StudyDate, &r, "20240201"));
        assert!(!value_matches(Attr::StudyDate, &r, ""));
    }

    #[test]
    fn person_names_match_by_unicode_case_folding() {
        for (pattern, value) in [
            ("äneas*", "Äneas^Rüdiger"),
            ("ÄNEAS^RÜDIGER", "Äneas^Rüdiger"),
            ("ΔΙΟΝΥΣΙΟΣ", "Διονυσιος"),
            ("διον*", "Διονυσιος"),
            ("люк*", "Люкceмбypг"),
            ("ЛЮК*", "Люкceмбypг"),
            ("strauss^j*", "Strauß^Johann"),
        ] {
            let m = Matcher::parse(Attr::PatientName, pattern);
            assert!(
                value_matches(Attr::PatientName, &m, value),
                "{pattern} {value}"
            );
        }
        let m = Matcher::parse(Attr::PatientName, "äneas*");
        assert!(!value_matches(Attr::PatientName, &m, "Aneas^Rudiger"));
    }
}
