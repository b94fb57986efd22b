//! What a DICOMweb client says it takes: the media ranges of `Accept` (with their q-values,
//! best first) and the content codings of `Accept-Encoding`. Both headers come from anyone
//! who can reach the port, so the parsing is bounded: at most [`MAX_RANGES`] ranges and
//! [`MAX_PARAMS`] parameters per range are looked at, whatever the header holds (the guard
//! already caps a request head's size).

/// Media ranges looked at in one `Accept`: clients send a handful, and a longer list is read
/// no further rather than refused (HTTP lets a server ignore what it cannot use).
const MAX_RANGES: usize = 64;
const MAX_PARAMS: usize = 8;

/// One media range: its type and parameters (lower-case names, unquoted values).
#[derive(Debug)]
pub struct MediaRange {
    pub media: String,
    pub params: Vec<(String, String)>,
    /// Thousandths, as HTTP's q-values have at most three decimals.
    q: u16,
}

impl MediaRange {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A q-value in thousandths; anything unreadable counts as 0 (not acceptable), as a client
/// that garbles its preference is better refused than guessed at.
fn qvalue(s: &str) -> u16 {
    match s.trim().parse::<f32>() {
        Ok(q) if (0.0..=1.0).contains(&q) => (q * 1000.0).round() as u16,
        _ => 0,
    }
}

/// The ranges of an `Accept` header, highest q first (ties in the client's order), those with
/// `q=0` left out.
pub fn media_ranges(accept: &str) -> Vec<MediaRange> {
    // Split on commas outside quotes.
    let mut parts = Vec::new();
    let (mut cur, mut quoted) = (String::new(), false);
    for c in accept.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => {
                if !cur.trim().is_empty() {
                    parts.push(std::mem::take(&mut cur));
                    if parts.len() == MAX_RANGES {
                        break;
                    }
                }
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    if parts.len() < MAX_RANGES && !cur.trim().is_empty() {
        parts.push(cur);
    }
    let mut ranges: Vec<MediaRange> = parts
        .iter()
        .map(|p| {
            let mut it = p.split(';');
            let media = it.next().unwrap_or("").trim().to_ascii_lowercase();
            let mut q = 1000;
            let mut params = Vec::new();
            for (k, v) in it.filter_map(|kv| kv.split_once('=')).take(MAX_PARAMS) {
                let k = k.trim().to_ascii_lowercase();
                let v = v.trim().trim_matches('"').to_owned();
                if k == "q" {
                    q = qvalue(&v);
                } else {
                    params.push((k, v));
                }
            }
            MediaRange { media, params, q }
        })
        .filter(|r| r.q > 0)
        .collect();
    ranges.sort_by_key(|r| std::cmp::Reverse(r.q));
    ranges
}

/// The representations of metadata and search results this box writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `application/dicom+json` (PS3.18 F.2), an array of objects.
    Json,
    /// `multipart/related; type="application/dicom+xml"` (PS3.18 F.3, PS3.19 A.1), one
    /// Native DICOM Model document per part.
    Xml,
}

/// The format the client prefers, `None` when it takes neither (406).
pub fn format(accept: &str) -> Option<Format> {
    // No Accept at all: the JSON PS3.18 makes the default. (Only `q=0` ranges refuse all.)
    if accept.trim().is_empty() {
        return Some(Format::Json);
    }
    media_ranges(accept)
        .iter()
        .find_map(|r| match r.media.as_str() {
            "application/dicom+json" | "application/json" | "application/*" | "*/*" => {
                Some(Format::Json)
            }
            "multipart/related" | "multipart/*"
                if r.param("type")
                    .is_some_and(|t| t.eq_ignore_ascii_case("application/dicom+xml")) =>
            {
                Some(Format::Xml)
            }
            _ => None,
        })
}

/// A content coding this box can put on an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    Zstd,
    Gzip,
}

impl Coding {
    pub fn name(self) -> &'static str {
        match self {
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
        }
    }
}

/// The q-value (thousandths) `Accept-Encoding` gives the coding `name`; 0 when it is not
/// named (`*` is not taken as consent: a client that says only that rarely has a zstd
/// decoder, and an answer it cannot read is worse than a larger one).
pub fn coding_q(accept_encoding: &str, name: &str) -> u16 {
    accept_encoding
        .split(',')
        .take(MAX_RANGES)
        .filter_map(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let n = parts.next().unwrap_or("");
            let named = n.eq_ignore_ascii_case(name)
                || (name == "gzip" && n.eq_ignore_ascii_case("x-gzip"));
            named.then(|| {
                parts
                    .find_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
                    .map_or(1000, qvalue)
            })
        })
        .max()
        .unwrap_or(0)
}

/// The coding to put on a compressible answer: the one of zstd and gzip the client rates
/// higher (zstd on a tie: a third of gzip's CPU for the same size on the box's cores).
pub fn coding(accept_encoding: &str) -> Option<Coding> {
    let (z, g) = (
        coding_q(accept_encoding, "zstd"),
        coding_q(accept_encoding, "gzip"),
    );
    match (z, g) {
        (0, 0) => None,
        (z, g) if z >= g => Some(Coding::Zstd),
        _ => Some(Coding::Gzip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_sorted_by_q_and_bounded() {
        let r = media_ranges("a/a;q=0.2, b/b, c/c;q=0, d/d;q=0.9;x=\"1,2\"");
        let media: Vec<&str> = r.iter().map(|m| m.media.as_str()).collect();
        assert_eq!(media, ["b/b", "d/d", "a/a"]);
        assert_eq!(r[1].param("x"), Some("1,2"));
        let many = vec!["x/y;q=0.5"; 5000].join(",");
        assert_eq!(media_ranges(&many).len(), MAX_RANGES);
    }

    #[test]
    fn metadata_formats() {
        assert_eq!(format(""), Some(Format::Json));
        assert_eq!(format("application/dicom+json"), Some(Format::Json));
        assert_eq!(
            format("multipart/related; type=\"application/dicom+xml\""),
            Some(Format::Xml)
        );
        assert_eq!(
            format("application/dicom+json;q=0.5, multipart/related; type=application/dicom+xml"),
            Some(Format::Xml)
        );
        assert_eq!(format("application/dicom+json;q=0"), None);
        assert_eq!(format("text/html"), None);
    }

    #[test]
    fn codings_by_q() {
        assert_eq!(coding("gzip, deflate, br, zstd"), Some(Coding::Zstd));
        assert_eq!(coding("gzip, deflate"), Some(Coding::Gzip));
        assert_eq!(coding("zstd;q=0.5, gzip"), Some(Coding::Gzip));
        assert_eq!(coding("zstd;q=0, gzip;q=0"), None);
        assert_eq!(coding("*"), None);
        assert_eq!(coding(""), None);
        assert_eq!(coding_q("ZSTD;q=0.5", "zstd"), 500);
        assert_eq!(coding_q("x-zstd", "zstd"), 0);
        assert_eq!(coding_q("x-gzip", "gzip"), 1000);
    }
}
