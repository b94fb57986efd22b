//! The buttons and what the panel does with them, driven by injected levels and a fake clock:
//! contact bounce is ignored, NEXT turns pages, SELECT acknowledges an alarm, holding POWER
//! counts down to a clean shutdown that any button cancels, and idle pages turn and dim.

use pacsbox_health::Alarm;
use pacsbox_panel::{
    Button, ButtonTiming, Buttons, Effect, FrontPanel, Gesture, Millis, Page, PanelTiming, Screen,
};

/// A panel with its buttons and a fake clock, as the panel thread wires them.
struct Bench {
    buttons: Buttons,
    panel: FrontPanel,
    now: u64,
    alarms: Vec<Alarm>,
    shutdowns: u32,
}

impl Bench {
    fn new() -> Bench {
        Bench {
            buttons: Buttons::new(ButtonTiming::default()),
            panel: FrontPanel::new(PanelTiming::default(), Millis(0)),
            now: 0,
            alarms: Vec::new(),
            shutdowns: 0,
        }
    }

    fn apply(&mut self, gestures: Vec<Gesture>) {
        for g in gestures {
            self.panel.on_gesture(g, &self.alarms, Millis(self.now));
        }
        if self.panel.tick(&self.alarms, Millis(self.now)) == Some(Effect::Shutdown) {
            self.shutdowns += 1;
        }
    }

    /// Time passes, polled every 10 ms like the real thread.
    fn wait(&mut self, ms: u64) {
        for _ in 0..ms / 10 {
            self.now += 10;
            let g = self.buttons.tick(Millis(self.now));
            self.apply(g);
        }
    }

    fn level(&mut self, b: Button, pressed: bool) {
        let g = self.buttons.sample(b, pressed, Millis(self.now));
        self.apply(g);
    }

    fn click(&mut self, b: Button) {
        self.level(b, true);
        self.wait(100);
        self.level(b, false);
        self.wait(100);
    }

    fn screen(&self) -> Screen {
        self.panel.screen(&self.alarms, Millis(self.now))
    }
}

#[test]
fn a_bouncing_contact_gives_one_click() {
    let mut b = Buttons::new(ButtonTiming::default());
    let mut seen = Vec::new();
    // Bounces 1-2 ms apart for 8 ms, then held, then released with bounce.
    for (t, level) in [(0, true), (2, false), (3, true), (5, false), (8, true)] {
        seen.extend(b.sample(Button::Next, level, Millis(t)));
    }
    for t in (10..=200).step_by(10) {
        seen.extend(b.tick(Millis(t)));
    }
    for (t, level) in [(201, false), (203, true), (204, false)] {
        seen.extend(b.sample(Button::Next, level, Millis(t)));
    }
    for t in (210..=400).step_by(10) {
        seen.extend(b.tick(Millis(t)));
    }
    assert_eq!(
        seen,
        [Gesture::Down(Button::Next), Gesture::Click(Button::Next)]
    );
}

#[test]
fn a_spike_shorter_than_the_debounce_is_no_press() {
    let mut b = Buttons::new(ButtonTiming::default());
    let mut seen = b.sample(Button::Select, true, Millis(0));
    seen.extend(b.sample(Button::Select, false, Millis(20)));
    for t in (30..=500).step_by(10) {
        seen.extend(b.tick(Millis(t)));
    }
    assert!(seen.is_empty(), "{seen:?}");
}

#[test]
fn next_turns_the_pages_round() {
    let mut bench = Bench::new();
    assert_eq!(bench.screen(), Screen::Page(Page::Identity));
    let mut seen = Vec::new();
    for _ in 0..5 {
        bench.click(Button::Next);
        seen.push(bench.screen());
    }
    assert_eq!(
        seen,
        [
            Screen::Page(Page::Certificate),
            Screen::Page(Page::Storage),
            Screen::Page(Page::Activity),
            Screen::Page(Page::Alarms),
            Screen::Page(Page::Identity),
        ]
    );
}

#[test]
fn idle_pages_turn_by_themselves_and_the_display_dims() {
    let mut bench = Bench::new();
    bench.wait(4_900);
    assert_eq!(bench.screen(), Screen::Page(Page::Identity));
    bench.wait(200);
    assert_eq!(bench.screen(), Screen::Page(Page::Certificate));
    assert!(!bench.panel.dimmed());
    bench.wait(60_000);
    assert!(bench.panel.dimmed());
    // The first press only wakes: the page does not turn.
    let before = bench.screen();
    bench.click(Button::Next);
    assert!(!bench.panel.dimmed());
    assert_eq!(bench.screen(), before);
}

#[test]
fn an_alarm_takes_over_wakes_the_display_and_select_acknowledges_it() {
    let mut bench = Bench::new();
    bench.wait(61_000);
    assert!(bench.panel.dimmed());
    bench.alarms = vec![
        Alarm::DiskFailed {
            array: "md0".into(),
            disk: "sdd".into(),
        },
        Alarm::ClockUnset,
    ];
    bench.wait(10);
    assert!(!bench.panel.dimmed(), "an alarm wakes the display");
    assert_eq!(
        bench.screen(),
        Screen::Alarm {
            alarm: bench.alarms[0].clone(),
            others: 1
        }
    );
    // NEXT does not page an alarm away unread; it stays until acknowledged.
    bench.click(Button::Next);
    bench.wait(30_000);
    assert!(matches!(bench.screen(), Screen::Alarm { others: 1, .. }));
    bench.click(Button::Select);
    assert_eq!(
        bench.screen(),
        Screen::Alarm {
            alarm: Alarm::ClockUnset,
            others: 0
        }
    );
    bench.click(Button::Select);
    assert!(matches!(bench.screen(), Screen::Page(_)));
    // The alarm clears, then comes back: it is new again.
    let failed = bench.alarms.remove(0);
    bench.wait(10);
    bench.alarms.insert(0, failed.clone());
    bench.wait(10);
    assert_eq!(
        bench.screen(),
        Screen::Alarm {
            alarm: failed,
            others: 0
        }
    );
}

#[test]
fn holding_power_counts_down_and_shuts_down() {
    let mut bench = Bench::new();
    bench.level(Button::Power, true);
    bench.wait(2_900);
    assert_eq!(bench.screen(), Screen::Page(Page::Identity), "not yet long");
    bench.wait(200);
    assert_eq!(
        bench.screen(),
        Screen::ShutdownCountdown { seconds_left: 10 }
    );
    bench.level(Button::Power, false);
    bench.wait(3_000);
    assert!(matches!(
        bench.screen(),
        Screen::ShutdownCountdown {
            seconds_left: 7 | 8
        }
    ));
    assert_eq!(bench.shutdowns, 0);
    bench.wait(7_500);
    assert_eq!(bench.shutdowns, 1, "the shutdown command runs once");
    assert_eq!(bench.screen(), Screen::ShuttingDown);
    bench.wait(20_000);
    bench.click(Button::Power);
    assert_eq!(bench.shutdowns, 1);
}

#[test]
fn any_button_cancels_the_countdown_without_doing_anything_else() {
    let mut bench = Bench::new();
    bench.level(Button::Power, true);
    bench.wait(3_100);
    bench.level(Button::Power, false);
    bench.wait(2_000);
    assert!(matches!(bench.screen(), Screen::ShutdownCountdown { .. }));
    bench.click(Button::Next);
    assert_eq!(
        bench.screen(),
        Screen::Page(Page::Identity),
        "cancelled, and NEXT did not also turn the page"
    );
    bench.wait(20_000);
    assert_eq!(bench.shutdowns, 0);
    // Cancelling by holding POWER again does not restart the countdown on the same press.
    bench.level(Button::Power, true);
    bench.wait(3_100);
    assert!(matches!(bench.screen(), Screen::ShutdownCountdown { .. }));
    bench.level(Button::Power, false);
    bench.wait(100);
    bench.level(Button::Power, true);
    bench.wait(5_000);
    bench.level(Button::Power, false);
    bench.wait(20_000);
    assert_eq!(bench.shutdowns, 0);
    assert!(matches!(bench.screen(), Screen::Page(_)));
}
