//! `pacsbox-panel`: the front panel — a 128×64 OLED and three buttons that tell a technician
//! walking past whether the box is healthy and how to reach it. It reads only
//! `pacsbox-health`'s model, never the archive or DICOM.
//!
//! - `pages.rs` draws each screen on any embedded-graphics `DrawTarget`, in English or Korean
//!   (`texts.rs` holds the words, `text.rs` draws ASCII and Hangul, `hangul_glyphs.rs` is the
//!   generated Hangul font);
//! - `buttons.rs` debounces and turns levels into clicks and holds;
//! - `front.rs` decides what shows (pages, alarm takeover, acknowledgement, dimming, the
//!   shutdown countdown) — pure, driven by a fake clock in tests;
//! - `output.rs` (PNG files, SSD1306 over I2C) and `gpio.rs` (GPIO character device) touch
//!   the outside world; `run.rs` is the thread that ties them together.

pub mod buttons;
pub mod front;
pub mod gpio;
mod hangul_glyphs;
pub mod output;
pub mod pages;
pub mod run;
pub mod text;
pub mod texts;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use buttons::{Button, ButtonTiming, Buttons, Gesture, Millis};
pub use front::{Effect, FrontPanel, PanelTiming};
pub use pages::{Page, Screen};
pub use run::{PanelOutput, run_shutdown_command, spawn};
pub use texts::Language;

#[derive(Debug, thiserror::Error)]
pub enum PanelError {
    #[error("panel output must be none, png:DIR or ssd1306:DEVICE, not {0:?}")]
    BadOutput(String),
    #[error("{0}: {1}")]
    Device(PathBuf, String),
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("encoding PNG: {0}")]
    PngEncode(#[from] png::EncodingError),
    #[error("decoding PNG: {0}")]
    PngDecode(#[from] png::DecodingError),
    #[error("panel language must be en or ko, not {0:?}")]
    BadLanguage(String),
    #[error("PNG is {0}x{1}, the panel is 128x64")]
    PngSize(u32, u32),
}

/// The `[panel]` table of the settings file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PanelSettings {
    /// `none`, `png:DIR` or `ssd1306:/dev/i2c-1`.
    pub display: String,
    /// The panel's language: `en` or `ko` (one for the box, not per user).
    pub language: Language,
    /// I2C address of the SSD1306 (0x3C on most modules, 0x3D with the address jumper).
    pub i2c_address: u8,
    /// Read the buttons at all.
    pub buttons: bool,
    pub gpio_chip: PathBuf,
    /// Line offsets on `gpio_chip` (BCM GPIO numbers on a Raspberry Pi).
    pub pin_next: u32,
    pub pin_select: u32,
    pub pin_power: u32,
    /// Buttons pull the line to ground (with the pull-up from config.txt).
    pub active_low: bool,
    pub debounce_ms: u64,
    /// Holding POWER this long starts the shutdown countdown.
    pub long_press_ms: u64,
    pub shutdown_countdown_s: u64,
    /// Run when the countdown ends.
    pub shutdown_command: Vec<String>,
    /// Pages turn by themselves after this long without a button.
    pub page_seconds: u64,
    /// Dim the OLED after this long without a button (burn-in); alarms wake it.
    pub dim_after_s: u64,
    /// How often the health model is read and the screen redrawn.
    pub refresh_ms: u64,
}

impl Default for PanelSettings {
    fn default() -> Self {
        PanelSettings {
            display: "none".into(),
            language: Language::En,
            i2c_address: 0x3c,
            buttons: false,
            gpio_chip: "/dev/gpiochip0".into(),
            pin_next: 17,
            pin_select: 27,
            pin_power: 22,
            active_low: true,
            debounce_ms: 30,
            long_press_ms: 3000,
            shutdown_countdown_s: 10,
            shutdown_command: vec!["systemctl".into(), "poweroff".into()],
            page_seconds: 5,
            dim_after_s: 60,
            refresh_ms: 1000,
        }
    }
}

impl PanelSettings {
    pub fn button_timing(&self) -> ButtonTiming {
        ButtonTiming {
            debounce: Duration::from_millis(self.debounce_ms),
            long_press: Duration::from_millis(self.long_press_ms),
        }
    }

    pub fn panel_timing(&self) -> PanelTiming {
        PanelTiming {
            page_every: Duration::from_secs(self.page_seconds.max(1)),
            dim_after: Duration::from_secs(self.dim_after_s),
            countdown: Duration::from_secs(self.shutdown_countdown_s),
        }
    }

    pub fn output(&self) -> Result<PanelOutput, PanelError> {
        self.display.parse()
    }
}
