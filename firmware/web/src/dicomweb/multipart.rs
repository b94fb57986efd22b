//! A `multipart/related` body read part by part as it arrives (RFC 2046 5.1): each part's
//! headers, then its content as a reader that ends at the next delimiter. Only a window of
//! the body is held, so a 2 GB upload streams through in a few hundred kilobytes.

use std::io::{self, Read};

/// Part headers past this are not a part a client meant.
const MAX_PART_HEAD: usize = 16 << 10;
const WINDOW: usize = 256 << 10;

pub struct Multipart<'a> {
    src: &'a mut dyn Read,
    /// `\r\n--boundary`: a delimiter is always preceded by a line break (the body's start
    /// counts as one: `buf` begins with `\r\n`).
    delim: Vec<u8>,
    buf: Vec<u8>,
    start: usize,
    eof: bool,
    /// Inside a part's content (`part()` reads until the next delimiter).
    in_part: bool,
    /// Past the first delimiter (the preamble is behind us).
    started: bool,
    done: bool,
}

#[derive(Debug, Default)]
pub struct PartHeaders {
    pub content_type: String,
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

impl<'a> Multipart<'a> {
    pub fn new(src: &'a mut dyn Read, boundary: &str) -> Multipart<'a> {
        Multipart {
            src,
            delim: format!("\r\n--{boundary}").into_bytes(),
            buf: b"\r\n".to_vec(),
            start: 0,
            eof: false,
            in_part: false,
            started: false,
            done: false,
        }
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Reads more of the body into the window; false at its end.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + WINDOW, 0);
        let n = loop {
            match self.src.read(&mut self.buf[old..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(e);
                }
            }
        };
        self.buf.truncate(old + n);
        if n == 0 {
            self.eof = true;
        }
        Ok(n > 0)
    }

    fn find(&self, needle: &[u8]) -> Option<usize> {
        self.pending()
            .windows(needle.len())
            .position(|w| w == needle)
    }

    /// The next part's headers, or None after the closing delimiter. Skips the preamble
    /// before the first part and whatever is left of the current one.
    pub fn next_part(&mut self) -> io::Result<Option<PartHeaders>> {
        if self.done {
            return Ok(None);
        }
        if self.in_part {
            self.skip_part()?;
        } else if !self.started {
            self.started = true;
            // The preamble: up to and over the first delimiter.
            loop {
                if let Some(i) = self.find(&self.delim.clone()) {
                    self.start += i + self.delim.len();
                    break;
                }
                // Keep what could be the start of a delimiter.
                let keep = self.delim.len() - 1;
                if self.pending().len() > keep {
                    self.start = self.buf.len() - keep;
                }
                if !self.fill()? {
                    return Err(bad("no multipart boundary in the body"));
                }
            }
        }
        // After a delimiter: `--` closes the body; else padding and a line break.
        while self.pending().len() < 2 {
            if !self.fill()? {
                return Err(bad("the body ends right after a boundary"));
            }
        }
        if self.pending().starts_with(b"--") {
            self.done = true;
            return Ok(None);
        }
        let head_end = loop {
            if let Some(i) = self.find(b"\r\n\r\n") {
                break i;
            }
            if self.pending().len() > MAX_PART_HEAD {
                return Err(bad("part headers too long"));
            }
            if !self.fill()? {
                return Err(bad("the body ends inside part headers"));
            }
        };
        let head = String::from_utf8_lossy(&self.pending()[..head_end]).into_owned();
        self.start += head_end + 4;
        let mut headers = PartHeaders::default();
        // The first line is what followed the boundary (transport padding); then headers.
        for line in head.split("\r\n").skip(1) {
            if let Some((k, v)) = line.split_once(':')
                && k.trim().eq_ignore_ascii_case("content-type")
            {
                headers.content_type = v.trim().to_owned();
            }
        }
        self.in_part = true;
        Ok(Some(headers))
    }

    /// The current part's content; ends (0) at the delimiter, an error when the body ends
    /// before one.
    pub fn part(&mut self) -> Part<'_, 'a> {
        Part { m: self }
    }

    /// Reads over the rest of the current part.
    pub fn skip_part(&mut self) -> io::Result<()> {
        std::io::copy(&mut self.part(), &mut std::io::sink())?;
        Ok(())
    }
}

pub struct Part<'m, 'a> {
    m: &'m mut Multipart<'a>,
}

impl Read for Part<'_, '_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let m = &mut *self.m;
        if !m.in_part || out.is_empty() {
            return Ok(0);
        }
        loop {
            let delim = m.delim.clone();
            if let Some(i) = m.find(&delim) {
                let n = i.min(out.len());
                out[..n].copy_from_slice(&m.pending()[..n]);
                m.start += n;
                if n == i {
                    m.start += delim.len();
                    m.in_part = false;
                }
                if n > 0 || !m.in_part {
                    return Ok(n);
                }
            }
            let safe = m.pending().len().saturating_sub(delim.len() - 1);
            if safe > 0 {
                let n = safe.min(out.len());
                out[..n].copy_from_slice(&m.pending()[..n]);
                m.start += n;
                return Ok(n);
            }
            if !m.fill()? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the body ends inside a part (no closing boundary)",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `n` bytes at a time, so delimiters straddle reads.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(out.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn parts(body: &[u8], step: usize) -> io::Result<Vec<(String, Vec<u8>)>> {
        let mut src = Trickle(body, step);
        let mut m = Multipart::new(&mut src, "XyZ");
        let mut out = Vec::new();
        while let Some(h) = m.next_part()? {
            let mut content = Vec::new();
            m.part().read_to_end(&mut content)?;
            out.push((h.content_type, content));
        }
        Ok(out)
    }

    #[test]
    fn parts_split_at_every_read_size() {
        let body = b"preamble\r\n--XyZ\r\nContent-Type: application/dicom\r\n\r\nDICM\r\n--X\r\nyz\
                     \r\n--XyZ  \r\ncontent-type: text/plain\r\n\r\n\r\n--XyZ--\r\nepilogue";
        for step in [1, 2, 3, 7, 64, 1 << 20] {
            let got = parts(body, step).unwrap();
            assert_eq!(
                got,
                [
                    (
                        "application/dicom".to_owned(),
                        b"DICM\r\n--X\r\nyz".to_vec()
                    ),
                    ("text/plain".to_owned(), Vec::new())
                ],
                "step {step}"
            );
        }
    }

    #[test]
    fn a_body_cut_short_is_an_error() {
        let body = b"--XyZ\r\nContent-Type: application/dicom\r\n\r\nDICM and no end";
        let err = parts(body, 5).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(parts(b"no boundary at all", 4).is_err());
    }
}
