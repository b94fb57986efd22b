//! The panel's own thread: reads the buttons, asks for the health model once per refresh,
//! advances [`FrontPanel`], and hands the screen to the configured output. It never blocks the
//! DICOM service — it only calls the `status` closure it was given — and a display or GPIO
//! chip that cannot be opened is a logged warning: the archive keeps running without a panel.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pacsbox_health::Health;

use crate::buttons::{Button, Buttons, Millis};
use crate::front::{Effect, FrontPanel};
use crate::gpio::ButtonLines;
use crate::output::{Oled, PngPages, render};
use crate::{PanelError, PanelSettings};

/// Which display the panel draws on: `none`, `png:DIR`, `ssd1306:/dev/i2c-1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PanelOutput {
    None,
    Png(PathBuf),
    Ssd1306(PathBuf),
}

impl FromStr for PanelOutput {
    type Err = PanelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            _ if s == "none" => Ok(PanelOutput::None),
            Some(("png", dir)) if !dir.is_empty() => Ok(PanelOutput::Png(dir.into())),
            Some(("ssd1306", dev)) if !dev.is_empty() => Ok(PanelOutput::Ssd1306(dev.into())),
            _ => Err(PanelError::BadOutput(s.to_owned())),
        }
    }
}

enum Sink {
    None,
    Png(PngPages),
    Oled(Box<Oled>),
}

fn open_sink(output: &PanelOutput, settings: &PanelSettings) -> Sink {
    let opened = match output {
        PanelOutput::None => return Sink::None,
        PanelOutput::Png(dir) => PngPages::new(dir.clone(), settings.language).map(Sink::Png),
        PanelOutput::Ssd1306(dev) => {
            Oled::open(dev, settings.i2c_address).map(|o| Sink::Oled(Box::new(o)))
        }
    };
    opened.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "front panel display unavailable; running without it");
        Sink::None
    })
}

fn open_buttons(settings: &PanelSettings) -> Option<ButtonLines> {
    if !settings.buttons {
        return None;
    }
    let pins = [
        (Button::Next, settings.pin_next),
        (Button::Select, settings.pin_select),
        (Button::Power, settings.pin_power),
    ];
    match ButtonLines::open(&settings.gpio_chip, &pins, settings.active_low) {
        Ok(lines) => Some(lines),
        Err(e) => {
            tracing::warn!(error = %e, "front panel buttons unavailable; running without them");
            None
        }
    }
}

/// Runs `shutdown_command` (e.g. `systemctl poweroff`).
pub fn run_shutdown_command(command: &[String]) {
    let Some((program, args)) = command.split_first() else {
        tracing::error!("shutdown requested but no shutdown command is configured");
        return;
    };
    tracing::warn!(?command, "shutting down from the front panel");
    match std::process::Command::new(program).args(args).status() {
        Ok(s) if s.success() => {}
        Ok(s) => tracing::error!(?command, status = %s, "shutdown command failed"),
        Err(e) => tracing::error!(?command, error = %e, "cannot run shutdown command"),
    }
}

/// Starts the panel thread. It stops when `stop` turns true.
pub fn spawn(
    output: PanelOutput,
    settings: PanelSettings,
    status: impl Fn() -> Option<Health> + Send + 'static,
    mut shutdown: impl FnMut() + Send + 'static,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("front-panel".into())
        .spawn(move || {
            let mut sink = open_sink(&output, &settings);
            let lines = open_buttons(&settings);
            if matches!(sink, Sink::None) && lines.is_none() {
                return;
            }
            let started = Instant::now();
            let now = || Millis(started.elapsed().as_millis() as u64);
            let mut buttons = Buttons::new(settings.button_timing());
            let mut panel = FrontPanel::new(settings.panel_timing(), now());
            let refresh = Duration::from_millis(settings.refresh_ms.max(50));
            let mut health = Health::default();
            let mut alarms = Vec::new();
            let mut last_refresh: Option<Instant> = None;
            let mut shown = None;
            while !stop.load(Ordering::Relaxed) {
                if last_refresh.is_none_or(|t| t.elapsed() >= refresh) {
                    if let Some(h) = status() {
                        alarms = h.alarms();
                        health = h;
                    }
                    last_refresh = Some(Instant::now());
                }
                let t = now();
                let mut gestures = match &lines {
                    Some(l) => l
                        .read()
                        .into_iter()
                        .flat_map(|(b, pressed)| buttons.sample(b, pressed, t))
                        .collect(),
                    None => Vec::new(),
                };
                gestures.extend(buttons.tick(t));
                for g in gestures {
                    panel.on_gesture(g, &alarms, t);
                }
                if panel.tick(&alarms, t) == Some(Effect::Shutdown) {
                    shutdown();
                }
                let screen = panel.screen(&alarms, t);
                let state = (screen.clone(), health.clone(), panel.dimmed());
                if shown.as_ref() != Some(&state) {
                    let result = match &mut sink {
                        Sink::None => Ok(()),
                        Sink::Png(p) => p.show(&screen, &health),
                        Sink::Oled(o) => {
                            o.show(&render(&screen, &health, settings.language), panel.dimmed())
                        }
                    };
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "front panel update failed");
                    }
                    shown = Some(state);
                }
                let poll = if lines.is_some() { 10 } else { 100 };
                std::thread::sleep(Duration::from_millis(poll));
            }
        })
}
