//! What the panel draws: the four pages (identity, storage, activity, alarms), the full-screen
//! alarm that takes over, and the shutdown countdown — each a function of the health model
//! only, drawn on any `embedded-graphics` [`DrawTarget`] of [`BinaryColor`]. The layout is for
//! 128×64 (the SSD1306): an inverted title bar and, in English, five lines of the 6×10 font
//! (21 characters); in Korean (`[panel] language = "ko"`) a taller bar and lines of 12 px
//! Hangul (about ten syllables) or 10 px ASCII, fewer of them, so some pages say things in
//! fewer lines (see docs/panel/README.md). Lines are laid out by height and cut by pixel
//! width; what does not fit is reported, and the tests require that nothing is. A colour display is a driver swap: wrap it with
//! `DrawTargetExt::color_converted()` and these functions draw unchanged. Patient data is
//! never drawn: the box stands in a corridor.

use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::mono_font::ascii::{FONT_6X10, FONT_9X15_BOLD};
use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Alignment, Baseline, Text, TextStyleBuilder};
use pacsbox_health::{Alarm, Health, RaidState};

use crate::text;
use crate::texts::{Language, Texts, alarm_action, alarm_title, fill};

pub const WIDTH: u32 = 128;
pub const HEIGHT: u32 = 64;
const LINE: i32 = 10;
const BODY_TOP: i32 = 13;

/// The pages a technician cycles through with NEXT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    Identity,
    Certificate,
    Storage,
    Activity,
    Alarms,
}

impl Page {
    pub const ALL: [Page; 5] = [
        Page::Identity,
        Page::Certificate,
        Page::Storage,
        Page::Activity,
        Page::Alarms,
    ];

    pub fn next(self) -> Page {
        let i = Page::ALL.iter().position(|p| *p == self).unwrap_or(0);
        Page::ALL[(i + 1) % Page::ALL.len()]
    }

    /// File-name and log name: `identity`, `storage`, …
    pub fn name(self) -> &'static str {
        match self {
            Page::Identity => "identity",
            Page::Certificate => "certificate",
            Page::Storage => "storage",
            Page::Activity => "activity",
            Page::Alarms => "alarms",
        }
    }

    fn title(self, t: &Texts) -> &'static str {
        match self {
            Page::Identity => t.title_identity,
            Page::Certificate => t.title_certificate,
            Page::Storage => t.title_storage,
            Page::Activity => t.title_activity,
            Page::Alarms => t.title_alarms,
        }
    }
}

/// Everything the panel can show at one moment.
#[derive(Clone, Debug, PartialEq)]
pub enum Screen {
    Page(Page),
    /// An unacknowledged alarm, with how many others are waiting behind it.
    Alarm {
        alarm: Alarm,
        others: usize,
    },
    /// Shutdown requested; seconds left to cancel.
    ShutdownCountdown {
        seconds_left: u64,
    },
    /// The shutdown command has been run.
    ShuttingDown,
}

/// What did not fit: texts cut at the right edge or lines left out for lack of room (lines
/// meant to give way, like the backup age on a crowded storage page, are not counted).
pub type Cut = Vec<String>;

/// One line of a page's body.
enum Item {
    Text(String),
    /// A label on the left and a figure flush right.
    Right(String, String),
    /// The storage bar, filled to a percentage.
    Gauge(u8),
    /// An empty line: in English, a line keeps its row whatever comes before it.
    Blank,
}

struct Line {
    item: Item,
    /// 0: must show; otherwise, when the page is too full, the highest goes first.
    give_way: u8,
}

fn must(s: impl Into<String>) -> Line {
    Line {
        item: Item::Text(s.into()),
        give_way: 0,
    }
}

/// English keeps each line in its row (the AE title is always the fourth line); Korean,
/// short of height, closes up.
fn blank_in(t: &Texts) -> Option<Line> {
    (t.lang == Language::En).then_some(Line {
        item: Item::Blank,
        give_way: 0,
    })
}

fn optional(s: impl Into<String>, give_way: u8) -> Line {
    Line {
        item: Item::Text(s.into()),
        give_way,
    }
}

fn title_height(t: &Texts) -> i32 {
    match t.lang {
        Language::En => 11,
        // A syllable (its top row is blank) and a pixel of bar under it.
        Language::Ko => 13,
    }
}

fn body_top(t: &Texts) -> i32 {
    match t.lang {
        Language::En => BODY_TOP,
        Language::Ko => title_height(t) + 1,
    }
}

fn line_height(item: &Item, t: &Texts) -> i32 {
    match item {
        Item::Text(s) => text::height(s) as i32,
        Item::Right(l, r) => text::height(l).max(text::height(r)) as i32,
        Item::Gauge(_) => match t.lang {
            Language::En => LINE,
            Language::Ko => 9,
        },
        Item::Blank => LINE,
    }
}

/// Draws `s` at the left margin, cut to the panel's width.
fn text_at<D: DrawTarget<Color = BinaryColor>>(
    d: &mut D,
    y: i32,
    s: &str,
    cut: &mut Cut,
) -> Result<(), D::Error> {
    let (shown, was_cut) = text::fit(s, WIDTH - 2);
    if was_cut {
        cut.push(s.to_owned());
    }
    text::draw(d, &shown, Point::new(1, y), BinaryColor::On)?;
    Ok(())
}

/// Lays the lines out from `top` down: lines that give way are left out (highest first)
/// until the rest fits; what still does not fit is recorded in `cut`.
fn body<D: DrawTarget<Color = BinaryColor>>(
    d: &mut D,
    t: &Texts,
    mut lines: Vec<Line>,
    cut: &mut Cut,
) -> Result<(), D::Error> {
    let top = body_top(t);
    let room = HEIGHT as i32 - top;
    while lines.iter().map(|l| line_height(&l.item, t)).sum::<i32>() > room {
        let Some(worst) = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.give_way > 0)
            .max_by_key(|(i, l)| (l.give_way, *i))
            .map(|(i, _)| i)
        else {
            break;
        };
        lines.remove(worst);
    }
    let mut y = top;
    for l in &lines {
        let h = line_height(&l.item, t);
        if y + h > HEIGHT as i32 {
            cut.push(match &l.item {
                Item::Text(s) => s.clone(),
                Item::Right(a, b) => format!("{a} {b}"),
                Item::Gauge(p) => format!("gauge {p}%"),
                Item::Blank => String::new(),
            });
            continue;
        }
        match &l.item {
            Item::Blank => {}
            Item::Text(s) => text_at(d, y, s, cut)?,
            Item::Right(left, right) => {
                if text::width(left) + text::width(right) + text::ASCII_WIDTH > WIDTH - 2 {
                    cut.push(format!("{left} {right}"));
                }
                text::draw(d, left, Point::new(1, y), BinaryColor::On)?;
                let x = WIDTH as i32 - 1 - text::width(right) as i32;
                // A figure in a line with Hangul drops to the syllables' baseline.
                let drop = (h - text::height(right) as i32).max(0);
                text::draw(d, right, Point::new(x, y + drop), BinaryColor::On)?;
            }
            Item::Gauge(used) => {
                // The bar: outline the volume, fill the used share.
                let bar = Rectangle::new(Point::new(1, y + 1), Size::new(WIDTH - 2, 7));
                bar.into_styled(PrimitiveStyle::with_stroke(BinaryColor::On, 1))
                    .draw(d)?;
                let fill = (WIDTH - 4) * u32::from(*used) / 100;
                Rectangle::new(bar.top_left + Point::new(1, 1), Size::new(fill, 5))
                    .into_styled(PrimitiveStyle::with_fill(BinaryColor::On))
                    .draw(d)?;
            }
        }
        y += h;
    }
    Ok(())
}

/// The inverted bar at the top, `height` pixels.
fn bar<D: DrawTarget<Color = BinaryColor>>(d: &mut D, height: i32) -> Result<(), D::Error> {
    Rectangle::new(Point::zero(), Size::new(WIDTH, height as u32))
        .into_styled(PrimitiveStyle::with_fill(BinaryColor::On))
        .draw(d)
}

fn top_aligned(alignment: Alignment) -> embedded_graphics::text::TextStyle {
    TextStyleBuilder::new()
        .alignment(alignment)
        .baseline(Baseline::Top)
        .build()
}

fn title_bar<D: DrawTarget<Color = BinaryColor>>(
    d: &mut D,
    t: &Texts,
    title: &str,
    right: &str,
) -> Result<(), D::Error> {
    bar(d, title_height(t))?;
    let inverted = MonoTextStyle::new(&FONT_6X10, BinaryColor::Off);
    let right_aligned = top_aligned(Alignment::Right);
    if t.lang == Language::En {
        Text::with_baseline(title, Point::new(2, 1), inverted, Baseline::Top).draw(d)?;
        Text::with_text_style(
            right,
            Point::new(WIDTH as i32 - 2, 1),
            inverted,
            right_aligned,
        )
        .draw(d)?;
        return Ok(());
    }
    // A syllable's top row is blank (its ink is rows 1..=11 of the cell): drawn at the top,
    // it keeps a pixel of bar below; an ASCII title is centred in the taller bar.
    let y = if text::height(title) == text::HANGUL_HEIGHT {
        0
    } else {
        2
    };
    text::draw(d, title, Point::new(2, y), BinaryColor::Off)?;
    Text::with_text_style(
        right,
        Point::new(WIDTH as i32 - 2, 2),
        inverted,
        right_aligned,
    )
    .draw(d)?;
    Ok(())
}

/// 1.4T, 512G, 37M: three significant characters are enough at a glance.
pub fn short_bytes(b: u64) -> String {
    const UNITS: [&str; 6] = ["B", "K", "M", "G", "T", "P"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if v < 10.0 && u > 0 {
        format!("{v:.1}{}", UNITS[u])
    } else {
        format!("{v:.0}{}", UNITS[u])
    }
}

/// Local HH:MM of a Unix time.
fn clock_time(unix: i64, utc_offset_s: i32) -> String {
    let local = unix + i64::from(utc_offset_s);
    let minutes = local.div_euclid(60).rem_euclid(24 * 60);
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// Draws one screen in `lang`; the target is cleared first. Returns what did not fit (empty
/// for every screen the tests draw, in both languages).
pub fn draw<D: DrawTarget<Color = BinaryColor>>(
    screen: &Screen,
    health: &Health,
    lang: Language,
    d: &mut D,
) -> Result<Cut, D::Error> {
    let t = lang.texts();
    let mut cut = Cut::new();
    d.clear(BinaryColor::Off)?;
    match screen {
        Screen::Page(page) => draw_page(*page, health, t, d, &mut cut)?,
        Screen::Alarm { alarm, others } => draw_alarm(alarm, *others, t, d, &mut cut)?,
        Screen::ShutdownCountdown { seconds_left } => {
            draw_countdown(*seconds_left, t, d, &mut cut)?
        }
        Screen::ShuttingDown => {
            big_title(d, t, t.shutdown_title, &mut cut)?;
            for (row, l) in t.shutdown_lines.iter().enumerate() {
                big_body_line(d, t, row as i32, l, &mut cut)?;
            }
        }
    }
    Ok(cut)
}

fn draw_page<D: DrawTarget<Color = BinaryColor>>(
    page: Page,
    h: &Health,
    t: &Texts,
    d: &mut D,
    cut: &mut Cut,
) -> Result<(), D::Error> {
    let number = Page::ALL.iter().position(|p| *p == page).unwrap_or(0) + 1;
    let alarms = h.alarms();
    // The alarm count stays visible on every page, even after acknowledgement.
    let right = if alarms.is_empty() {
        format!("{number}/{}", Page::ALL.len())
    } else {
        format!("!{} {number}/{}", alarms.len(), Page::ALL.len())
    };
    title_bar(d, t, page.title(t), &right)?;
    let lines = match page {
        Page::Identity => identity(h, t),
        Page::Certificate => certificate(h, t),
        Page::Storage => storage(h, t),
        Page::Activity => activity(h, t),
        Page::Alarms => alarm_list(&alarms, t),
    };
    body(d, t, lines, cut)
}

fn identity(h: &Health, t: &Texts) -> Vec<Line> {
    let id = &h.identity;
    let first = id.addresses.first();
    let url = first.map(|a| fill(t.web_url, &[a, &id.http_port]));
    let url = url.filter(|u| text::width(u) <= WIDTH - 2);
    let mut lines = Vec::new();
    // Korean lines are taller: the host name gives way first (the address reaches the box).
    lines.push(optional(
        id.hostname.clone(),
        u8::from(t.lang == Language::Ko),
    ));
    match (&url, t.lang) {
        // Korean: the address and the web port in one line, as one types it.
        (Some(u), Language::Ko) => lines.push(must(u.clone())),
        _ => lines.push(must(
            first.map(String::as_str).unwrap_or(t.no_network).to_owned(),
        )),
    }
    if let Some(pw) = &id.initial_password {
        // Until the first login changes it, the installer needs this more than a 2nd address.
        lines.push(must(fill(t.admin_password, &[pw])));
    } else {
        match id.addresses.len() {
            0 | 1 => lines.extend(blank_in(t)),
            2 => lines.push(must(id.addresses[1].clone())),
            n => lines.push(must(format!("{} +{}", id.addresses[1], n - 2))),
        }
    }
    lines.push(must(format!("AE {} :{}", id.ae_title, id.dicom_port)));
    match (url, t.lang) {
        (Some(_), Language::Ko) => {}
        (Some(u), Language::En) => lines.push(must(u)),
        (None, _) => lines.push(must(fill(t.web_port, &[&id.http_port]))),
    }
    lines
}

/// The certificate's fingerprint (HTTPS and DICOM TLS share it), for staff to compare with what
/// their browser or a modality's TLS setup shows before trusting a self-signed certificate:
/// all 64 hex digits, in groups of four.
fn certificate(h: &Health, t: &Texts) -> Vec<Line> {
    let id = &h.identity;
    let Some(fp) = id.tls_fingerprint.as_deref() else {
        return vec![must(t.tls_off), must(fill(t.web_port, &[&id.http_port]))];
    };
    let port = |p: u16| {
        if p == 0 {
            t.port_off.to_owned()
        } else {
            p.to_string()
        }
    };
    let mut lines = vec![must(fill(
        t.ports,
        &[&port(id.https_port), &port(id.dicom_tls_port)],
    ))];
    let hex: Vec<char> = fp.chars().filter(char::is_ascii_hexdigit).collect();
    for chunk in hex.chunks(16).take(4) {
        let groups: Vec<String> = chunk.chunks(4).map(|g| g.iter().collect()).collect();
        lines.push(must(groups.join(" ")));
    }
    lines
}

fn storage(h: &Health, t: &Texts) -> Vec<Line> {
    let v = &h.volume;
    let used = v.used_percent();
    let mut lines = vec![
        must(fill(t.used, &[&used, &short_bytes(v.free_bytes)])),
        Line {
            item: Item::Gauge(used),
            give_way: 0,
        },
    ];
    if h.arrays.is_empty() {
        lines.push(must(t.raid_none));
    }
    for a in h.arrays.iter().take(2) {
        let state = match a.state() {
            RaidState::Clean => t.raid_clean.to_owned(),
            RaidState::Resyncing { percent, .. } => fill(t.raid_sync, &[&format!("{percent:.0}")]),
            RaidState::Rebuilding { percent } => fill(t.raid_rebuild, &[&format!("{percent:.0}")]),
            RaidState::Degraded { .. } => t.raid_degraded.to_owned(),
            RaidState::Failed => t.raid_failed.to_owned(),
        };
        let level = if a.level.is_empty() { "md" } else { &a.level };
        lines.push(must(format!("{} {level} {state}", a.name)));
    }
    // In English there is room for both; Korean lines are taller, and then the second copy's
    // age matters more than the disk names (a RAID is not a backup; its line names trouble).
    let (disks_give_way, backup_give_way) = match t.lang {
        Language::En => (1, 2),
        Language::Ko => (2, 1),
    };
    let disks: Vec<String> = h
        .disks
        .iter()
        .map(|disk| match disk.smart_passed {
            Some(false) => format!("{}!", disk.device),
            _ => disk.device.clone(),
        })
        .collect();
    if !disks.is_empty() {
        lines.push(optional(fill(t.disks, &[&disks.join(" ")]), disks_give_way));
    }
    let b = h.traffic.backup;
    if b.configured {
        let age = match b.last_complete_unix {
            None => t.backup_never.to_owned(),
            Some(at) => {
                let hours = (h.clock.now_unix - at).max(0) / 3600;
                let old = if b.overdue_hours.is_some() {
                    t.backup_old
                } else {
                    ""
                };
                if hours < 48 {
                    fill(t.backup_hours, &[&hours, &old])
                } else {
                    fill(t.backup_days, &[&(hours / 24), &old])
                }
            }
        };
        lines.push(optional(age, backup_give_way));
    }
    lines
}

fn activity(h: &Health, t: &Texts) -> Vec<Line> {
    let tr = &h.traffic;
    let mut lines = Vec::new();
    match t.lang {
        Language::En => {
            lines.push(must(format!("Studies {:>13}", tr.studies_today)));
            lines.push(must(format!("Images {:>14}", tr.instances_today)));
        }
        // One line for both counts: Korean lines are taller, five would not fit.
        Language::Ko => lines.push(must(fill(
            t.counts,
            &[&tr.studies_today, &tr.instances_today],
        ))),
    }
    match &tr.last_study {
        Some(last) => {
            let at = clock_time(last.received_unix, h.clock.utc_offset_s);
            lines.push(must(fill(t.last, &[&at, &last.modality])));
            if tr.media_studies.is_none() {
                lines.push(must(fill(t.from, &[&last.calling_ae])));
            }
        }
        None => {
            lines.push(must(t.nothing_yet));
            if tr.media_studies.is_none() {
                lines.extend(blank_in(t));
            }
        }
    }
    // Media inserted into the box take the sender's line: the person who just plugged a
    // stick in is looking for this, and the web page's status names the sender anyway.
    if let Some(n) = tr.media_studies {
        lines.push(must(fill(t.media_in, &[&n])));
    }
    if !tr.dicom_accepting {
        lines.push(must(t.not_accepting));
    } else if t.lang == Language::En {
        lines.push(must(format!(
            "{} {:>9}",
            t.receiving, tr.active_associations
        )));
    } else {
        lines.push(Line {
            item: Item::Right(t.receiving.to_owned(), tr.active_associations.to_string()),
            give_way: 0,
        });
    }
    lines
}

fn alarm_list(alarms: &[Alarm], t: &Texts) -> Vec<Line> {
    if alarms.is_empty() {
        return vec![must(t.all_well), must(t.nothing_needs_you)];
    }
    let room = match t.lang {
        Language::En => 5,
        Language::Ko => 4,
    };
    let shown = if alarms.len() > room { room - 1 } else { room };
    let mut lines: Vec<Line> = alarms
        .iter()
        .take(shown)
        .map(|a| {
            let mark = match a.severity() {
                pacsbox_health::Severity::Critical => '!',
                pacsbox_health::Severity::Warning => '-',
            };
            must(format!("{mark} {}", alarm_title(a, t.lang)))
        })
        .collect();
    if alarms.len() > room {
        lines.push(must(fill(t.more_alarms, &[&(alarms.len() - shown)])));
    }
    lines
}

/// The full-screen title of an alarm, the countdown and the shutdown.
fn big_title<D: DrawTarget<Color = BinaryColor>>(
    d: &mut D,
    t: &Texts,
    title: &str,
    cut: &mut Cut,
) -> Result<(), D::Error> {
    if t.lang == Language::En {
        bar(d, 17)?;
        let style = MonoTextStyle::new(&FONT_9X15_BOLD, BinaryColor::Off);
        let centred = top_aligned(Alignment::Center);
        Text::with_text_style(title, Point::new(WIDTH as i32 / 2, 1), style, centred).draw(d)?;
        return Ok(());
    }
    // Regular weight: NanumGothic's bold at 12 px merges the strokes of dense syllables.
    bar(d, BIG_TITLE_KO)?;
    let (shown, was_cut) = text::fit(title, WIDTH - 4);
    if was_cut {
        cut.push(title.to_owned());
    }
    let x = (WIDTH as i32 - text::width(&shown) as i32) / 2;
    let y = if text::height(title) == text::HANGUL_HEIGHT {
        1
    } else {
        3
    };
    text::draw(d, &shown, Point::new(x, y), BinaryColor::Off)?;
    Ok(())
}

/// Height of the Korean full-screen title bar: a syllable and a margin; the lines under it
/// start a pixel lower (`BIG_TITLE_KO + 1`), three of them end where the footer begins.
const BIG_TITLE_KO: i32 = 15;

/// Row `row` (0..3) under a big title.
fn big_body_line<D: DrawTarget<Color = BinaryColor>>(
    d: &mut D,
    t: &Texts,
    row: i32,
    s: &str,
    cut: &mut Cut,
) -> Result<(), D::Error> {
    let y = match t.lang {
        Language::En => 19 + row * LINE,
        Language::Ko => BIG_TITLE_KO + 1 + row * text::HANGUL_HEIGHT as i32,
    };
    text_at(d, y, s, cut)
}

/// Greedy word wrap to the panel's width in pixels.
fn wrap(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(l) if text::width(l) + text::ASCII_WIDTH + text::width(word) <= WIDTH - 2 => {
                l.push(' ');
                l.push_str(word);
            }
            _ => lines.push(word.to_owned()),
        }
    }
    lines
}

fn draw_alarm<D: DrawTarget<Color = BinaryColor>>(
    alarm: &Alarm,
    others: usize,
    t: &Texts,
    d: &mut D,
    cut: &mut Cut,
) -> Result<(), D::Error> {
    big_title(d, t, alarm_title(alarm, t.lang), cut)?;
    let advice = wrap(&alarm_action(alarm, t.lang));
    if advice.len() > 3 {
        cut.extend(advice[3..].iter().cloned());
    }
    for (row, l) in advice.iter().take(3).enumerate() {
        big_body_line(d, t, row as i32, l, cut)?;
    }
    let footer = if others > 0 {
        fill(t.select_more, &[&others])
    } else {
        t.select_ack.to_owned()
    };
    let y = match t.lang {
        Language::En => 53,
        Language::Ko => HEIGHT as i32 - text::HANGUL_HEIGHT as i32,
    };
    text_at(d, y, &footer, cut)
}

fn draw_countdown<D: DrawTarget<Color = BinaryColor>>(
    seconds_left: u64,
    t: &Texts,
    d: &mut D,
    cut: &mut Cut,
) -> Result<(), D::Error> {
    big_title(d, t, t.countdown_title, cut)?;
    if t.lang == Language::En {
        let style = MonoTextStyle::new(&FONT_9X15_BOLD, BinaryColor::On);
        let centred = top_aligned(Alignment::Center);
        Text::with_text_style(
            &fill(t.countdown_in, &[&seconds_left]),
            Point::new(WIDTH as i32 / 2, 21),
            style,
            centred,
        )
        .draw(d)?;
        return text_at(d, BODY_TOP + 3 * LINE, t.countdown_cancel, cut);
    }
    for (y, s) in [
        (24, fill(t.countdown_in, &[&seconds_left])),
        (44, t.countdown_cancel.to_owned()),
    ] {
        let x = (WIDTH as i32 - text::width(&s) as i32) / 2;
        text::draw(d, &s, Point::new(x.max(1), y), BinaryColor::On)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_at_a_glance() {
        assert_eq!(short_bytes(0), "0B");
        assert_eq!(short_bytes(37 << 20), "37M");
        assert_eq!(short_bytes(1536 << 30), "1.5T");
        assert_eq!(short_bytes(512 << 30), "512G");
    }

    #[test]
    fn alarm_advice_wraps_on_words() {
        assert_eq!(
            wrap("md0 offline. Do not pull disks. Call service."),
            ["md0 offline. Do not", "pull disks. Call", "service."]
        );
    }

    #[test]
    fn local_times_use_the_offset() {
        assert_eq!(clock_time(1_800_000_000, 0), "08:00");
        assert_eq!(clock_time(1_800_000_000, 9 * 3600), "17:00");
    }
}
