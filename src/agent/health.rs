//! Connectivity mode: online or offline, from a rolling window of recent ATS calls.
//!
//! Pure state: callers report each call's outcome and latency; the tracker says which
//! mode the agent is in. Offline when `failures_to_offline` of the last `window` calls
//! failed or were slower than `slow`; back online after `probes_to_online` consecutive
//! good probes (pings sent while offline). Scan calls that succeed while offline also
//! count as good probes, so a recovered network is noticed on the next scan too.

use std::collections::VecDeque;
use std::time::Duration;

use crate::config::HealthSettings;
use crate::decide::Mode;

/// Rolling-window connectivity tracker.
#[derive(Debug, Clone)]
pub struct Health {
    settings: HealthSettings,
    recent: VecDeque<bool>,
    mode: Mode,
    good_probes: u32,
}

impl Health {
    /// Starts online with an empty window.
    pub fn new(settings: HealthSettings) -> Self {
        Health {
            recent: VecDeque::with_capacity(settings.window),
            settings,
            mode: Mode::Online,
            good_probes: 0,
        }
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Records one call: `ok` is false for a transport error, 5xx, 429 or a missed
    /// deadline. Returns the mode after it.
    pub fn record(&mut self, ok: bool, latency: Duration) -> Mode {
        let good = ok && latency <= self.settings.slow;
        match self.mode {
            Mode::Online => {
                if self.recent.len() == self.settings.window {
                    self.recent.pop_front();
                }
                self.recent.push_back(good);
                let bad = self.recent.iter().filter(|g| !**g).count();
                if bad >= self.settings.failures_to_offline {
                    self.go(Mode::Offline);
                }
            }
            Mode::Offline => self.probe_result(good),
        }
        self.mode
    }

    /// Records a background probe while offline. Returns the mode after it.
    pub fn probe(&mut self, ok: bool, latency: Duration) -> Mode {
        if self.mode == Mode::Offline {
            self.probe_result(ok && latency <= self.settings.slow);
        }
        self.mode
    }

    /// Forces a mode (operator command, tests).
    pub fn force(&mut self, mode: Mode) {
        self.go(mode);
    }

    fn probe_result(&mut self, good: bool) {
        if good {
            self.good_probes += 1;
            if self.good_probes >= self.settings.probes_to_online {
                self.go(Mode::Online);
            }
        } else {
            self.good_probes = 0;
        }
    }

    fn go(&mut self, mode: Mode) {
        self.mode = mode;
        self.recent.clear();
        self.good_probes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> HealthSettings {
        HealthSettings {
            window: 5,
            failures_to_offline: 2,
            slow: Duration::from_millis(1500),
            probe_interval: Duration::from_secs(5),
            probes_to_online: 2,
            max_clock_skew: Duration::from_secs(300),
        }
    }
    const FAST: Duration = Duration::from_millis(20);

    #[test]
    fn goes_offline_after_two_failures_in_five_calls() {
        let mut h = Health::new(settings());
        assert_eq!(h.record(false, FAST), Mode::Online);
        assert_eq!(h.record(true, FAST), Mode::Online);
        assert_eq!(h.record(true, FAST), Mode::Online);
        assert_eq!(h.record(false, FAST), Mode::Offline);
    }

    #[test]
    fn old_failures_slide_out_of_the_window() {
        let mut h = Health::new(settings());
        h.record(false, FAST);
        for _ in 0..5 {
            h.record(true, FAST);
        }
        assert_eq!(h.record(false, FAST), Mode::Online);
    }

    #[test]
    fn slow_calls_count_as_failures() {
        let mut h = Health::new(settings());
        h.record(true, Duration::from_secs(2));
        assert_eq!(h.record(true, Duration::from_secs(2)), Mode::Offline);
    }

    #[test]
    fn returns_online_after_consecutive_good_probes_only() {
        let mut h = Health::new(settings());
        h.force(Mode::Offline);
        assert_eq!(h.probe(true, FAST), Mode::Offline);
        assert_eq!(h.probe(false, FAST), Mode::Offline);
        assert_eq!(h.probe(true, FAST), Mode::Offline);
        assert_eq!(h.probe(true, FAST), Mode::Online);
        // A fresh window after returning: one failure does not flip it back.
        assert_eq!(h.record(false, FAST), Mode::Online);
    }
}
