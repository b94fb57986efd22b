//! A structural pre-check of a Part-10 file before dicom-object parses it: every defined
//! length must fit in the bytes that follow. dicom-parser allocates and zero-fills a value's
//! declared length before reading it, so one corrupt length field (pydicom's UN_sequence.dcm
//! claims 3.7 GB) would cost gigabytes of memory on a board that has one or two; here it costs
//! a walk over the element headers.

const UNDEFINED: u32 = 0xFFFF_FFFF;
const ITEM: (u16, u16) = (0xFFFE, 0xE000);
const ITEM_END: (u16, u16) = (0xFFFE, 0xE00D);
const SEQ_END: (u16, u16) = (0xFFFE, 0xE0DD);
/// Deeper nesting than this is not a real data set, and would exhaust the stack.
const MAX_DEPTH: usize = 64;

#[derive(Clone, Copy)]
struct Syntax {
    explicit: bool,
    big_endian: bool,
}

struct Walker<'a> {
    b: &'a [u8],
    pos: usize,
    s: Syntax,
}

impl Walker<'_> {
    fn u16(&self, at: usize) -> Option<u16> {
        let x = self.b.get(at..at + 2)?;
        Some(if self.s.big_endian {
            u16::from_be_bytes([x[0], x[1]])
        } else {
            u16::from_le_bytes([x[0], x[1]])
        })
    }

    fn u32(&self, at: usize) -> Option<u32> {
        let x = self.b.get(at..at + 4)?;
        let a = [x[0], x[1], x[2], x[3]];
        Some(if self.s.big_endian {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        })
    }

    fn tag(&self) -> Option<(u16, u16)> {
        // Item and delimiter tags are encoded in the data set's byte order like any other.
        Some((self.u16(self.pos)?, self.u16(self.pos + 2)?))
    }

    fn skip(&mut self, len: u32, what: (u16, u16)) -> Result<(), String> {
        let remain = self.b.len() - self.pos;
        if len as usize > remain {
            return Err(format!(
                "element ({:04X},{:04X}) at byte {} declares {len} bytes, only {remain} follow",
                what.0, what.1, self.pos
            ));
        }
        self.pos += len as usize;
        Ok(())
    }

    /// Elements until the end of the input or an item delimiter.
    fn elements(&mut self, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("sequences nested more than 64 deep".into());
        }
        while self.b.len() - self.pos >= 8 {
            let Some(tag) = self.tag() else { break };
            if tag == ITEM_END || tag == SEQ_END {
                self.pos += 8;
                return Ok(());
            }
            let (len, header) = if self.s.explicit && tag.0 != 0xFFFE {
                let vr = [self.b[self.pos + 4], self.b[self.pos + 5]];
                if matches!(
                    &vr,
                    b"OB"
                        | b"OW"
                        | b"OF"
                        | b"OD"
                        | b"OL"
                        | b"OV"
                        | b"SQ"
                        | b"UT"
                        | b"UN"
                        | b"UC"
                        | b"UR"
                        | b"SV"
                        | b"UV"
                ) {
                    let len = self.u32(self.pos + 8).ok_or("truncated element header")?;
                    (len, 12)
                } else {
                    (self.u16(self.pos + 6).unwrap_or(0) as u32, 8)
                }
            } else {
                (self.u32(self.pos + 4).unwrap_or(0), 8)
            };
            self.pos += header;
            if len == UNDEFINED {
                self.items(depth + 1)?;
            } else {
                self.skip(len, tag)?;
            }
        }
        Ok(())
    }

    /// Items of an undefined-length sequence or encapsulated pixel data, through its delimiter.
    fn items(&mut self, depth: usize) -> Result<(), String> {
        while self.b.len() - self.pos >= 8 {
            let tag = self.tag().ok_or("truncated item")?;
            let len = self.u32(self.pos + 4).ok_or("truncated item")?;
            self.pos += 8;
            if tag == SEQ_END {
                return Ok(());
            }
            if tag != ITEM {
                // Not an item: a sequence whose content this walk cannot follow (e.g. UN of
                // unknown encoding); dicom-object decides what to make of it.
                self.pos = self.b.len();
                return Ok(());
            }
            if len == UNDEFINED {
                self.elements(depth)?;
            } else {
                self.skip(len, tag)?;
            }
        }
        Ok(())
    }
}

/// Checks `b` (a Part-10 file, preamble optional) for lengths that overrun the file.
pub(crate) fn check(b: &[u8]) -> Result<(), String> {
    let start = if b.get(128..132) == Some(b"DICM") {
        132
    } else if b.get(..4) == Some(b"DICM") {
        4
    } else {
        // No File Meta: dicom-object will refuse it on its own, cheaply.
        return Ok(());
    };
    let mut w = Walker {
        b,
        pos: start,
        s: Syntax {
            explicit: true,
            big_endian: false,
        },
    };
    // File Meta: explicit VR little endian, group 0002 only; remember the transfer syntax.
    let mut ts = String::new();
    while b.len() - w.pos >= 8 && w.u16(w.pos) == Some(0x0002) {
        let at = w.pos;
        let elem = w.u16(at + 2).unwrap_or(0);
        let vr = &b[at + 4..at + 6];
        let (len, header) = if matches!(vr, b"OB" | b"OW" | b"UN" | b"UT" | b"SQ") {
            (w.u32(at + 8).ok_or("truncated meta")?, 12)
        } else {
            (w.u16(at + 6).ok_or("truncated meta")? as u32, 8)
        };
        w.pos = at + header;
        let value_at = w.pos;
        w.skip(len, (0x0002, elem))?;
        if elem == 0x0010 {
            ts = String::from_utf8_lossy(&b[value_at..w.pos])
                .trim_end_matches(['\0', ' '])
                .to_string();
        }
    }
    w.s = match ts.as_str() {
        "1.2.840.10008.1.2" => Syntax {
            explicit: false,
            big_endian: false,
        },
        "1.2.840.10008.1.2.2" => Syntax {
            explicit: true,
            big_endian: true,
        },
        // Deflated data sets are inflated by dicom-object; their lengths cannot be seen here.
        "1.2.840.10008.1.2.1.99" => return Ok(()),
        _ => Syntax {
            explicit: true,
            big_endian: false,
        },
    };
    w.elements(0)
}
