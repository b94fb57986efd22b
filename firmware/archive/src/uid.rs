//! DICOM UIDs as a type of their own.
//!
//! UIDs become directory and file names in the archive, so a value that is not a well-formed
//! UID (digits and dots, at most 64 characters) must never reach the file system: that is the
//! whole defence against `../` in a hostile dataset.

use std::fmt;

#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Uid(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a valid DICOM UID: {0:?}")]
pub struct InvalidUid(pub String);

impl Uid {
    /// Parse a UID value as found in a dataset: DICOM pads UI values with a NUL (and some
    /// implementations with a space) to even length, so trailing padding is dropped.
    pub fn parse(raw: &str) -> Result<Uid, InvalidUid> {
        let s = raw.trim_end_matches(['\0', ' ']).trim_start_matches(' ');
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && !s.starts_with('.')
            && !s.ends_with('.')
            && !s.contains("..");
        if ok {
            Ok(Uid(s.to_owned()))
        } else {
            Err(InvalidUid(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Uid {
    type Error = InvalidUid;
    fn try_from(s: String) -> Result<Uid, InvalidUid> {
        Uid::parse(&s)
    }
}

impl From<Uid> for String {
    fn from(u: Uid) -> String {
        u.0
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Uid {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_is_dropped_and_paths_are_refused() {
        assert_eq!(Uid::parse("1.2.3\0").unwrap().as_str(), "1.2.3");
        assert!(Uid::parse("../etc").is_err());
        assert!(Uid::parse("1.2/3").is_err());
        assert!(Uid::parse("").is_err());
        assert!(Uid::parse("1..2").is_err());
        assert!(Uid::parse(&"1".repeat(65)).is_err());
    }
}
