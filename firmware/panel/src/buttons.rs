//! The three front buttons as a pure state machine: raw levels in (from GPIO polling or a
//! test), debounced gestures out. Time is passed in as [`Millis`] rather than read from a
//! clock, so tests drive it with a fake one.
//!
//! Debounce: a level counts only once it has stayed put for `debounce` (contacts bounce for a
//! few milliseconds; a bounce never lasts that long). Then a press gives [`Gesture::Down`] at
//! once (to wake the display or cancel a countdown without delay), and either
//! [`Gesture::Click`] on release, or [`Gesture::Hold`] once when held for `long_press` (and
//! no click on that release).

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Button {
    /// Cycle the pages.
    Next,
    /// Acknowledge the alarm shown.
    Select,
    /// Held: clean shutdown after a countdown.
    Power,
}

impl Button {
    pub const ALL: [Button; 3] = [Button::Next, Button::Select, Button::Power];

    fn index(self) -> usize {
        match self {
            Button::Next => 0,
            Button::Select => 1,
            Button::Power => 2,
        }
    }
}

/// Milliseconds since the panel started: the panel's own clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Millis(pub u64);

impl Millis {
    pub fn since(self, earlier: Millis) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gesture {
    Down(Button),
    Click(Button),
    Hold(Button),
}

#[derive(Clone, Copy, Debug)]
pub struct ButtonTiming {
    pub debounce: Duration,
    pub long_press: Duration,
}

impl Default for ButtonTiming {
    fn default() -> Self {
        ButtonTiming {
            debounce: Duration::from_millis(30),
            long_press: Duration::from_secs(3),
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Contact {
    raw: bool,
    raw_since: Millis,
    pressed: bool,
    pressed_at: Millis,
    held: bool,
}

pub struct Buttons {
    timing: ButtonTiming,
    contacts: [Contact; 3],
}

impl Buttons {
    pub fn new(timing: ButtonTiming) -> Buttons {
        Buttons {
            timing,
            contacts: [Contact::default(); 3],
        }
    }

    /// A raw level read at `now` (`true`: pressed), then whatever gestures are due.
    pub fn sample(&mut self, button: Button, pressed: bool, now: Millis) -> Vec<Gesture> {
        let c = &mut self.contacts[button.index()];
        if c.raw != pressed {
            c.raw = pressed;
            c.raw_since = now;
        }
        self.tick(now)
    }

    /// Gestures due at `now` with no new level: settled presses and long holds.
    pub fn tick(&mut self, now: Millis) -> Vec<Gesture> {
        let mut out = Vec::new();
        for button in Button::ALL {
            let c = &mut self.contacts[button.index()];
            if c.raw != c.pressed && now.since(c.raw_since) >= self.timing.debounce {
                c.pressed = c.raw;
                if c.pressed {
                    c.pressed_at = c.raw_since;
                    c.held = false;
                    out.push(Gesture::Down(button));
                } else if !c.held {
                    out.push(Gesture::Click(button));
                }
            }
            if c.pressed && !c.held && now.since(c.pressed_at) >= self.timing.long_press {
                c.held = true;
                out.push(Gesture::Hold(button));
            }
        }
        out
    }
}
