//! Text on the panel in both languages: ASCII in embedded-graphics' `FONT_6X10` (6 px a
//! character, 10 px a line), Hangul syllables from the generated 12×12 table
//! (`hangul_glyphs.rs`, 12 px a syllable). A line holding any Hangul is 12 px high and its
//! ASCII sits 2 px lower, so that digits and syllables share a baseline; an ASCII-only line is
//! drawn exactly as before Korean existed (the English golden images did not change). Widths
//! are counted in pixels, not characters: a Korean line holds about ten syllables against
//! twenty-one ASCII characters.

use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::mono_font::ascii::FONT_6X10;
use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Baseline, Text};

use crate::hangul_glyphs::{CELL, GLYPHS};

pub const ASCII_WIDTH: u32 = 6;
pub const ASCII_HEIGHT: u32 = 10;
pub const HANGUL_WIDTH: u32 = CELL;
pub const HANGUL_HEIGHT: u32 = CELL;
/// How far ASCII moves down in a line that also holds Hangul.
const ASCII_DROP: i32 = 2;

pub fn is_hangul(c: char) -> bool {
    ('\u{ac00}'..='\u{d7a3}').contains(&c)
}

/// The syllable's 12 rows, if the generated table has it.
pub fn glyph(c: char) -> Option<&'static [u16; CELL as usize]> {
    GLYPHS
        .binary_search_by_key(&c, |(g, _)| *g)
        .ok()
        .map(|i| &GLYPHS[i].1)
}

pub fn char_width(c: char) -> u32 {
    if is_hangul(c) {
        HANGUL_WIDTH
    } else {
        ASCII_WIDTH
    }
}

/// Width in pixels.
pub fn width(s: &str) -> u32 {
    s.chars().map(char_width).sum()
}

/// Height of a line holding `s`.
pub fn height(s: &str) -> u32 {
    if s.chars().any(is_hangul) {
        HANGUL_HEIGHT
    } else {
        ASCII_HEIGHT
    }
}

/// The longest start of `s` that is at most `max` pixels wide, and whether anything was cut.
pub fn fit(s: &str, max: u32) -> (String, bool) {
    let mut w = 0;
    let mut out = String::new();
    for c in s.chars() {
        w += char_width(c);
        if w > max {
            return (out, true);
        }
        out.push(c);
    }
    (out, false)
}

/// Draws `s` with its top-left corner at `at`, in `color`; returns the width drawn. A
/// syllable missing from the table is drawn as an empty box (and fails the tests).
pub fn draw<D: DrawTarget<Color = BinaryColor>>(
    d: &mut D,
    s: &str,
    at: Point,
    color: BinaryColor,
) -> Result<u32, D::Error> {
    let mixed = s.chars().any(is_hangul);
    let ascii_top = if mixed { at.y + ASCII_DROP } else { at.y };
    let style = MonoTextStyle::new(&FONT_6X10, color);
    let mut x = at.x;
    let mut run = String::new();
    let mut run_x = x;
    for c in s.chars() {
        if !is_hangul(c) {
            if run.is_empty() {
                run_x = x;
            }
            run.push(c);
            x += ASCII_WIDTH as i32;
            continue;
        }
        if !run.is_empty() {
            Text::with_baseline(&run, Point::new(run_x, ascii_top), style, Baseline::Top)
                .draw(d)?;
            run.clear();
        }
        match glyph(c) {
            Some(rows) => {
                let pixels = rows.iter().enumerate().flat_map(|(y, bits)| {
                    (0..CELL)
                        .filter(move |col| bits & (0x8000 >> col) != 0)
                        .map(move |col| Pixel(Point::new(x + col as i32, at.y + y as i32), color))
                });
                d.draw_iter(pixels)?;
            }
            None => {
                Rectangle::new(Point::new(x + 1, at.y + 1), Size::new(CELL - 2, CELL - 2))
                    .into_styled(PrimitiveStyle::with_stroke(color, 1))
                    .draw(d)?;
            }
        }
        x += HANGUL_WIDTH as i32;
    }
    if !run.is_empty() {
        Text::with_baseline(&run, Point::new(run_x, ascii_top), style, Baseline::Top).draw(d)?;
    }
    Ok((x - at.x) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_korean_text_of_the_panel_has_its_glyphs() {
        // The texts and the alarm advice live in texts.rs; the generator reads that file.
        let source = include_str!("texts.rs");
        let missing: std::collections::BTreeSet<char> = source
            .chars()
            .filter(|c| is_hangul(*c) && glyph(*c).is_none())
            .collect();
        assert!(
            missing.is_empty(),
            "no glyph for {missing:?}: run python3 firmware/panel/tools/hangul_font.py"
        );
        // And the table is what the script makes of texts.rs: nothing stale kept in it.
        let used: std::collections::BTreeSet<char> =
            source.chars().filter(|c| is_hangul(*c)).collect();
        let table: std::collections::BTreeSet<char> = GLYPHS.iter().map(|(c, _)| *c).collect();
        assert_eq!(used, table);
        assert!(GLYPHS.windows(2).all(|w| w[0].0 < w[1].0), "sorted");
    }

    #[test]
    fn a_syllable_outside_the_table_is_noticed() {
        // 뷁 is in no panel text: it has no glyph, and is drawn as a box, not skipped.
        assert!(glyph('뷁').is_none());
        assert!(glyph('저').is_some());
        assert_eq!(width("뷁 A"), 12 + 6 + 6);
        assert_eq!(height("AE 11112"), 10);
        assert_eq!(height("웹 8080"), 12);
    }

    #[test]
    fn lines_are_cut_by_pixels_not_characters() {
        assert_eq!(
            fit("녹색 불이 꺼질 때까지", 126),
            ("녹색 불이 꺼질 때까지".into(), false)
        );
        let (cut, was) = fit("녹색 불이 꺼질 때까지 기다리세요", 126);
        assert!(was);
        assert_eq!(cut, "녹색 불이 꺼질 때까지");
        assert_eq!(fit(&"x".repeat(30), 126).0.len(), 21);
    }
}
