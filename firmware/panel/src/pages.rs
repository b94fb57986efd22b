//! What the panel draws: the four pages (identity, storage, activity, alarms), the full-screen
//! alarm that takes over, and the shutdown countdown — each a function of the health model
//! only, drawn on any `embedded-graphics` [`DrawTarget`] of [`BinaryColor`]. The layout is for
//! 128×64 (the SSD1306): an inverted title bar and five lines of the 6×10 font (21
//! characters). A colour display is a driver swap: wrap it with
//! `DrawTargetExt::color_converted()` and these functions draw unchanged. Patient data is
//! never drawn: the box stands in a corridor.

use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::mono_font::ascii::{FONT_6X10, FONT_9X15_BOLD};
use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Alignment, Baseline, Text, TextStyleBuilder};
use pacsbox_health::{Alarm, Health, RaidState};

pub const WIDTH: u32 = 128;
pub const HEIGHT: u32 = 64;
/// Characters per line of the body font.
const COLUMNS: usize = 21;
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

    fn title(self) -> &'static str {
        match self {
            Page::Identity => "PACSBOX",
            Page::Certificate => "TLS SHA-256",
            Page::Storage => "STORAGE",
            Page::Activity => "TODAY",
            Page::Alarms => "ALARMS",
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

fn body() -> MonoTextStyle<'static, BinaryColor> {
    MonoTextStyle::new(&FONT_6X10, BinaryColor::On)
}

/// Cuts to the line width: the panel has no room for wrapping by accident.
fn fit(s: &str) -> String {
    s.chars().take(COLUMNS).collect()
}

fn line<D: DrawTarget<Color = BinaryColor>>(d: &mut D, row: i32, s: &str) -> Result<(), D::Error> {
    Text::with_baseline(
        &fit(s),
        Point::new(1, BODY_TOP + row * LINE),
        body(),
        Baseline::Top,
    )
    .draw(d)?;
    Ok(())
}

fn title_bar<D: DrawTarget<Color = BinaryColor>>(
    d: &mut D,
    title: &str,
    right: &str,
) -> Result<(), D::Error> {
    Rectangle::new(Point::zero(), Size::new(WIDTH, 11))
        .into_styled(PrimitiveStyle::with_fill(BinaryColor::On))
        .draw(d)?;
    let inverted = MonoTextStyle::new(&FONT_6X10, BinaryColor::Off);
    Text::with_baseline(title, Point::new(2, 1), inverted, Baseline::Top).draw(d)?;
    let right_aligned = TextStyleBuilder::new()
        .alignment(Alignment::Right)
        .baseline(Baseline::Top)
        .build();
    Text::with_text_style(
        right,
        Point::new(WIDTH as i32 - 2, 1),
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

/// Draws one screen; the target is cleared first.
pub fn draw<D: DrawTarget<Color = BinaryColor>>(
    screen: &Screen,
    health: &Health,
    d: &mut D,
) -> Result<(), D::Error> {
    d.clear(BinaryColor::Off)?;
    match screen {
        Screen::Page(page) => draw_page(*page, health, d),
        Screen::Alarm { alarm, others } => draw_alarm(alarm, *others, d),
        Screen::ShutdownCountdown { seconds_left } => draw_countdown(*seconds_left, d),
        Screen::ShuttingDown => {
            big_title(d, "SHUTDOWN")?;
            line(d, 1, "Powering off.")?;
            line(d, 2, "Wait for the green")?;
            line(d, 3, "light to stop.")
        }
    }
}

fn draw_page<D: DrawTarget<Color = BinaryColor>>(
    page: Page,
    h: &Health,
    d: &mut D,
) -> Result<(), D::Error> {
    let number = Page::ALL.iter().position(|p| *p == page).unwrap_or(0) + 1;
    let alarms = h.alarms();
    // The alarm count stays visible on every page, even after acknowledgement.
    let right = if alarms.is_empty() {
        format!("{number}/{}", Page::ALL.len())
    } else {
        format!("!{} {number}/{}", alarms.len(), Page::ALL.len())
    };
    title_bar(d, page.title(), &right)?;
    match page {
        Page::Identity => identity(h, d),
        Page::Certificate => certificate(h, d),
        Page::Storage => storage(h, d),
        Page::Activity => activity(h, d),
        Page::Alarms => alarm_list(&alarms, d),
    }
}

fn identity<D: DrawTarget<Color = BinaryColor>>(h: &Health, d: &mut D) -> Result<(), D::Error> {
    let id = &h.identity;
    line(d, 0, &id.hostname)?;
    let first = id
        .addresses
        .first()
        .map(String::as_str)
        .unwrap_or("no network");
    line(d, 1, first)?;
    if let Some(pw) = &id.initial_password {
        // Until the first login changes it, the installer needs this more than a 2nd address.
        line(d, 2, &format!("admin pw {pw}"))?;
    } else {
        match id.addresses.len() {
            0 | 1 => {}
            2 => line(d, 2, &id.addresses[1])?,
            n => line(d, 2, &format!("{} +{}", id.addresses[1], n - 2))?,
        }
    }
    line(d, 3, &format!("AE {} :{}", id.ae_title, id.dicom_port))?;
    let host = id
        .addresses
        .first()
        .map(String::as_str)
        .unwrap_or(&id.hostname);
    let url = format!("web {host}:{}", id.http_port);
    if url.len() <= COLUMNS {
        line(d, 4, &url)
    } else {
        line(d, 4, &format!("web port {}", id.http_port))
    }
}

/// The certificate's fingerprint (HTTPS and DICOM TLS share it), for staff to compare with what
/// their browser or a modality's TLS setup shows before trusting a self-signed certificate:
/// all 64 hex digits, in groups of four.
fn certificate<D: DrawTarget<Color = BinaryColor>>(h: &Health, d: &mut D) -> Result<(), D::Error> {
    let id = &h.identity;
    let Some(fp) = id.tls_fingerprint.as_deref() else {
        line(d, 0, "TLS is off")?;
        return line(d, 1, &format!("web port {}", id.http_port));
    };
    let port = |p: u16| {
        if p == 0 {
            "off".to_owned()
        } else {
            p.to_string()
        }
    };
    line(
        d,
        0,
        &format!(
            "web {}  DICOM {}",
            port(id.https_port),
            port(id.dicom_tls_port)
        ),
    )?;
    let hex: Vec<char> = fp.chars().filter(char::is_ascii_hexdigit).collect();
    for (row, chunk) in hex.chunks(16).take(4).enumerate() {
        let groups: Vec<String> = chunk.chunks(4).map(|g| g.iter().collect()).collect();
        line(d, row as i32 + 1, &groups.join(" "))?;
    }
    Ok(())
}

fn storage<D: DrawTarget<Color = BinaryColor>>(h: &Health, d: &mut D) -> Result<(), D::Error> {
    let v = &h.volume;
    let used = v.used_percent();
    line(
        d,
        0,
        &format!("{used}% used {} free", short_bytes(v.free_bytes)),
    )?;
    // The bar: outline the volume, fill the used share.
    let bar = Rectangle::new(Point::new(1, BODY_TOP + LINE + 1), Size::new(WIDTH - 2, 7));
    bar.into_styled(PrimitiveStyle::with_stroke(BinaryColor::On, 1))
        .draw(d)?;
    let fill = (WIDTH - 4) * u32::from(used) / 100;
    Rectangle::new(bar.top_left + Point::new(1, 1), Size::new(fill, 5))
        .into_styled(PrimitiveStyle::with_fill(BinaryColor::On))
        .draw(d)?;
    let mut row = 2;
    if h.arrays.is_empty() {
        line(d, row, "RAID: none found")?;
        row += 1;
    }
    for a in h.arrays.iter().take(2) {
        let state = match a.state() {
            RaidState::Clean => "clean".to_owned(),
            RaidState::Resyncing { percent, .. } => format!("sync {percent:.0}%"),
            RaidState::Rebuilding { percent } => format!("REBUILD {percent:.0}%"),
            RaidState::Degraded { .. } => "DEGRADED".to_owned(),
            RaidState::Failed => "FAILED".to_owned(),
        };
        let level = if a.level.is_empty() { "md" } else { &a.level };
        line(d, row, &format!("{} {level} {state}", a.name))?;
        row += 1;
    }
    if row <= 4 {
        let disks: Vec<String> = h
            .disks
            .iter()
            .map(|disk| match disk.smart_passed {
                Some(false) => format!("{}!", disk.device),
                _ => disk.device.clone(),
            })
            .collect();
        if !disks.is_empty() {
            line(d, row, &format!("disks {}", disks.join(" ")))?;
            row += 1;
        }
    }
    // The second copy's age, where there is room (a RAID is not a backup).
    let b = h.traffic.backup;
    if b.configured && row <= 4 {
        let age = match b.last_complete_unix {
            None => "backup: NEVER".to_owned(),
            Some(t) => {
                let hours = (h.clock.now_unix - t).max(0) / 3600;
                let old = if b.overdue_hours.is_some() {
                    " OLD"
                } else {
                    ""
                };
                if hours < 48 {
                    format!("backup {hours}h ago{old}")
                } else {
                    format!("backup {}d ago{old}", hours / 24)
                }
            }
        };
        line(d, row, &age)?;
    }
    Ok(())
}

fn activity<D: DrawTarget<Color = BinaryColor>>(h: &Health, d: &mut D) -> Result<(), D::Error> {
    let t = &h.traffic;
    line(d, 0, &format!("Studies {:>13}", t.studies_today))?;
    line(d, 1, &format!("Images {:>14}", t.instances_today))?;
    match &t.last_study {
        Some(last) => {
            let at = clock_time(last.received_unix, h.clock.utc_offset_s);
            line(d, 2, &format!("Last {at} {}", last.modality))?;
            if t.media_studies.is_none() {
                line(d, 3, &format!("from {}", last.calling_ae))?;
            }
        }
        None => line(d, 2, "Nothing received yet")?,
    }
    // Media inserted into the box take the sender's line: the person who just plugged a
    // stick in is looking for this, and the web page's status names the sender anyway.
    if let Some(n) = t.media_studies {
        line(d, 3, &format!("Media in: {n} studies"))?;
    }
    let sending = if t.dicom_accepting {
        format!("Sending now {:>9}", t.active_associations)
    } else {
        "DICOM not accepting".to_owned()
    };
    line(d, 4, &sending)
}

fn alarm_list<D: DrawTarget<Color = BinaryColor>>(
    alarms: &[Alarm],
    d: &mut D,
) -> Result<(), D::Error> {
    if alarms.is_empty() {
        line(d, 0, "All well.")?;
        return line(d, 1, "Nothing needs you.");
    }
    for (row, a) in alarms.iter().take(5).enumerate() {
        let mark = match a.severity() {
            pacsbox_health::Severity::Critical => '!',
            pacsbox_health::Severity::Warning => '-',
        };
        line(d, row as i32, &format!("{mark} {}", a.title()))?;
    }
    Ok(())
}

fn big_title<D: DrawTarget<Color = BinaryColor>>(d: &mut D, title: &str) -> Result<(), D::Error> {
    Rectangle::new(Point::zero(), Size::new(WIDTH, 17))
        .into_styled(PrimitiveStyle::with_fill(BinaryColor::On))
        .draw(d)?;
    let style = MonoTextStyle::new(&FONT_9X15_BOLD, BinaryColor::Off);
    let centred = TextStyleBuilder::new()
        .alignment(Alignment::Center)
        .baseline(Baseline::Top)
        .build();
    Text::with_text_style(title, Point::new(WIDTH as i32 / 2, 1), style, centred).draw(d)?;
    Ok(())
}

/// Greedy word wrap to the panel's line width.
fn wrap(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(l) if l.len() + 1 + word.len() <= COLUMNS => {
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
    d: &mut D,
) -> Result<(), D::Error> {
    big_title(d, alarm.title())?;
    for (row, l) in wrap(&alarm.action()).iter().take(3).enumerate() {
        Text::with_baseline(
            &fit(l),
            Point::new(1, 19 + row as i32 * LINE),
            body(),
            Baseline::Top,
        )
        .draw(d)?;
    }
    let footer = if others > 0 {
        format!("SELECT=ok  +{others} more")
    } else {
        "SELECT = acknowledge".to_owned()
    };
    Text::with_baseline(&fit(&footer), Point::new(1, 53), body(), Baseline::Top).draw(d)?;
    Ok(())
}

fn draw_countdown<D: DrawTarget<Color = BinaryColor>>(
    seconds_left: u64,
    d: &mut D,
) -> Result<(), D::Error> {
    big_title(d, "SHUT DOWN?")?;
    let style = MonoTextStyle::new(&FONT_9X15_BOLD, BinaryColor::On);
    let centred = TextStyleBuilder::new()
        .alignment(Alignment::Center)
        .baseline(Baseline::Top)
        .build();
    Text::with_text_style(
        &format!("in {seconds_left} s"),
        Point::new(WIDTH as i32 / 2, 21),
        style,
        centred,
    )
    .draw(d)?;
    line(d, 3, "Any button cancels")?;
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
