//! The panel's behaviour, apart from drawing and hardware: which screen shows, when pages turn
//! by themselves, which alarms were acknowledged, when to dim against OLED burn-in, and the
//! shutdown countdown. Pure: gestures and the time come in, a [`Screen`] and effects go out.
//!
//! - NEXT turns the page (and restarts the idle timer); idle, pages turn every `page_every`.
//! - An alarm nobody acknowledged takes the whole screen and wakes the display; SELECT
//!   acknowledges it. An acknowledged alarm that clears and comes back is new again.
//! - POWER held starts a countdown; any button cancels it; at zero, [`Effect::Shutdown`].
//! - The first press on a dimmed display only wakes it.

use std::collections::BTreeSet;
use std::time::Duration;

use pacsbox_health::Alarm;

use crate::buttons::{Button, Gesture, Millis};
use crate::pages::{Page, Screen};

#[derive(Clone, Copy, Debug)]
pub struct PanelTiming {
    pub page_every: Duration,
    pub dim_after: Duration,
    pub countdown: Duration,
}

impl Default for PanelTiming {
    fn default() -> Self {
        PanelTiming {
            page_every: Duration::from_secs(5),
            dim_after: Duration::from_secs(60),
            countdown: Duration::from_secs(10),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Run the shutdown command now.
    Shutdown,
}

pub struct FrontPanel {
    timing: PanelTiming,
    page: Page,
    page_since: Millis,
    last_touch: Millis,
    acknowledged: BTreeSet<String>,
    countdown_from: Option<Millis>,
    shutting_down: bool,
    dimmed: bool,
    /// The press that woke the display or cancelled the countdown does nothing else.
    swallow: Option<Button>,
}

impl FrontPanel {
    pub fn new(timing: PanelTiming, now: Millis) -> FrontPanel {
        FrontPanel {
            timing,
            page: Page::Identity,
            page_since: now,
            last_touch: now,
            acknowledged: BTreeSet::new(),
            countdown_from: None,
            shutting_down: false,
            dimmed: false,
            swallow: None,
        }
    }

    pub fn dimmed(&self) -> bool {
        self.dimmed
    }

    fn unacknowledged<'a>(&self, alarms: &'a [Alarm]) -> Vec<&'a Alarm> {
        alarms
            .iter()
            .filter(|a| !self.acknowledged.contains(&a.key()))
            .collect()
    }

    pub fn on_gesture(&mut self, gesture: Gesture, alarms: &[Alarm], now: Millis) {
        if self.shutting_down {
            return;
        }
        match gesture {
            Gesture::Down(button) => {
                self.last_touch = now;
                self.swallow = None;
                if self.countdown_from.take().is_some() {
                    tracing::info!("shutdown cancelled from the panel");
                    self.swallow = Some(button);
                } else if self.dimmed {
                    self.swallow = Some(button);
                }
                self.dimmed = false;
            }
            Gesture::Click(button) | Gesture::Hold(button) if self.swallow == Some(button) => {}
            Gesture::Click(Button::Next) => {
                // While an alarm holds the screen, NEXT waits: SELECT first, so that an alarm
                // is never paged away unread.
                if self.unacknowledged(alarms).is_empty() {
                    self.page = self.page.next();
                    self.page_since = now;
                }
            }
            Gesture::Click(Button::Select) => {
                if let Some(top) = self.unacknowledged(alarms).first() {
                    tracing::info!(alarm = top.key(), "alarm acknowledged on the panel");
                    self.acknowledged.insert(top.key());
                }
            }
            Gesture::Hold(Button::Power) => {
                tracing::warn!("shutdown requested from the panel; counting down");
                self.countdown_from = Some(now);
            }
            Gesture::Click(_) | Gesture::Hold(_) => {}
        }
    }

    /// Advances time: countdown, automatic page turning, dimming, forgetting cleared alarms.
    pub fn tick(&mut self, alarms: &[Alarm], now: Millis) -> Option<Effect> {
        if self.shutting_down {
            return None;
        }
        if let Some(from) = self.countdown_from
            && now.since(from) >= self.timing.countdown
        {
            self.countdown_from = None;
            self.shutting_down = true;
            self.dimmed = false;
            return Some(Effect::Shutdown);
        }
        let keys: BTreeSet<String> = alarms.iter().map(Alarm::key).collect();
        self.acknowledged.retain(|k| keys.contains(k));
        let alarm_showing = !self.unacknowledged(alarms).is_empty();
        if alarm_showing || self.countdown_from.is_some() {
            self.dimmed = false;
            return None;
        }
        if now.since(self.last_touch) >= self.timing.page_every
            && now.since(self.page_since) >= self.timing.page_every
        {
            self.page = self.page.next();
            self.page_since = now;
        }
        if now.since(self.last_touch) >= self.timing.dim_after {
            self.dimmed = true;
        }
        None
    }

    pub fn screen(&self, alarms: &[Alarm], now: Millis) -> Screen {
        if self.shutting_down {
            return Screen::ShuttingDown;
        }
        if let Some(from) = self.countdown_from {
            let left = self.timing.countdown.saturating_sub(now.since(from));
            return Screen::ShutdownCountdown {
                seconds_left: left.as_millis().div_ceil(1000) as u64,
            };
        }
        let waiting = self.unacknowledged(alarms);
        match waiting.first() {
            Some(top) => Screen::Alarm {
                alarm: (*top).clone(),
                others: waiting.len() - 1,
            },
            None => Screen::Page(self.page),
        }
    }
}
