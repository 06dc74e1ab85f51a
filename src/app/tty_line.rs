//! One live status line on a terminal (`cache prefetch`'s progress) that log lines do
//! not break: the logger clears it before it writes a record and draws it again after,
//! so a warning lands on a line of its own and the progress stays the last line.

use std::io::Write;
use std::sync::Mutex;

/// The line shown now (`None`: nothing drawn).
static LINE: Mutex<Option<String>> = Mutex::new(None);

fn line() -> std::sync::MutexGuard<'static, Option<String>> {
    // Plain text: a panic while holding it leaves it usable.
    LINE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Draws `text` as the live line (replacing the one shown).
pub fn show(text: &str) {
    let mut l = line();
    eprint!("\r\x1b[K{text}");
    let _ = std::io::stderr().flush();
    *l = Some(text.to_string());
}

/// Ends the live line where it stands (a newline): it stays on screen as drawn.
pub fn finish() {
    let mut l = line();
    if l.take().is_some() {
        eprintln!();
    }
}

/// A logger that keeps the live line intact around `inner`'s records.
pub struct KeepLine<L> {
    /// The logger that writes the records (env_logger's).
    pub inner: L,
}

impl<L: log::Log> log::Log for KeepLine<L> {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.inner.enabled(record.metadata()) {
            return;
        }
        let l = line();
        match &*l {
            Some(text) => {
                eprint!("\r\x1b[K");
                self.inner.log(record);
                self.inner.flush();
                eprint!("{text}");
                let _ = std::io::stderr().flush();
            }
            None => self.inner.log(record),
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Default, Clone)]
    struct Seen(Arc<Mutex<Vec<String>>>);

    impl log::Log for Seen {
        fn enabled(&self, m: &log::Metadata<'_>) -> bool {
            m.level() <= log::Level::Info
        }
        fn log(&self, r: &log::Record<'_>) {
            self.0.lock().unwrap().push(r.args().to_string());
        }
        fn flush(&self) {}
    }

    #[test]
    fn records_pass_through_with_or_without_a_live_line_and_the_filter_holds() {
        use log::Log;
        let seen = Seen::default();
        let keep = KeepLine {
            inner: seen.clone(),
        };
        let rec = |level, text: &'static str| {
            keep.log(
                &log::Record::builder()
                    .level(level)
                    .args(format_args!("{text}"))
                    .build(),
            )
        };
        rec(log::Level::Info, "before");
        show("EVENT01: page 1");
        rec(log::Level::Warn, "during");
        rec(log::Level::Debug, "filtered");
        finish();
        assert!(line().is_none(), "finished");
        assert_eq!(*seen.0.lock().unwrap(), vec!["before", "during"]);
    }
}
