//! The last warnings and errors, kept in memory for the status page: the clinic's IT person
//! sees what went wrong without a shell on the box. A `tracing` layer beside the normal log.

use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

use pacsbox_web::LogLine;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

const KEEP: usize = 20;

#[derive(Clone, Default)]
pub struct ErrorLog {
    lines: Arc<Mutex<VecDeque<LogLine>>>,
}

impl ErrorLog {
    /// Newest first.
    pub fn recent(&self) -> Vec<LogLine> {
        self.lines
            .lock()
            .map(|l| l.iter().rev().cloned().collect())
            .unwrap_or_default()
    }
}

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

/// A logged value can come from the network (a 14 KB user name); the status page keeps a
/// readable line of each.
const MAX_LINE: usize = 400;

fn capped(mut s: String) -> String {
    if s.len() > MAX_LINE {
        let mut end = MAX_LINE;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

impl<S: Subscriber> Layer<S> for ErrorLog {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        // Our own warnings only: a library's chatter (a file with an odd character set) is not
        // something the clinic's IT person can act on.
        if level > Level::WARN || !event.metadata().target().starts_with("pacsbox") {
            return;
        }
        let mut line = Line(String::new());
        event.record(&mut line);
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if let Ok(mut l) = self.lines.lock() {
            if l.len() == KEEP {
                l.pop_front();
            }
            l.push_back(LogLine {
                unix,
                level: level.to_string(),
                message: capped(line.0),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::prelude::*;

    #[test]
    fn keeps_warnings_and_errors_newest_first_and_bounded() {
        let log = ErrorLog::default();
        let subscriber = tracing_subscriber::registry().with(log.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("not kept");
            tracing::warn!(target: "dicom_parser", "a library's warning: not kept");
            tracing::warn!(peer = "CT1", "first");
            for i in 0..KEEP {
                tracing::error!(i, "again");
            }
        });
        let lines = log.recent();
        assert_eq!(lines.len(), KEEP);
        assert_eq!(lines[0].message, format!("again i={}", KEEP - 1));
        assert!(
            lines.iter().all(|l| l.level == "ERROR"),
            "the warning aged out"
        );
    }

    #[test]
    fn a_huge_value_is_kept_as_one_readable_line() {
        let log = ErrorLog::default();
        let subscriber = tracing_subscriber::registry().with(log.clone());
        let huge = "한".repeat(5000);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(user = huge.as_str(), "failed web login");
        });
        let line = &log.recent()[0].message;
        assert!(line.starts_with("failed web login user=한"), "{line}");
        assert!(line.len() <= MAX_LINE + '…'.len_utf8(), "{}", line.len());
        assert!(line.ends_with('…'));
    }
}
