//! Shared test support: an agent wired to an in-process sandbox on loopback.
#![allow(dead_code)]

pub mod fixtures;
pub mod pg;
pub mod venue;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use concession_agent::agent::{Agent, Outputs};
use concession_agent::app;
use concession_agent::clock::{self, SharedClock};
use concession_agent::config::{Config, RawConfig};
use concession_agent::sandbox::{Sandbox, SandboxConfig, SandboxHandle, Stats};
use concession_agent::scan::barcode::classify;
use concession_agent::scan::{Origin, ScanEvent};
use concession_agent::signal::{AgentStatus, DecisionEvent, Signal, SignalError, VoidEvent};

/// What an output saw.
#[derive(Default, Debug)]
pub struct Seen {
    pub decisions: Vec<DecisionEvent>,
    pub statuses: Vec<AgentStatus>,
    pub voids: Vec<VoidEvent>,
}

/// An output that records everything.
#[derive(Clone, Default)]
pub struct Recorder(pub Arc<Mutex<Seen>>);

impl Signal for Recorder {
    fn decision(&mut self, e: &DecisionEvent) -> Result<(), SignalError> {
        self.0.lock().unwrap().decisions.push(e.clone());
        Ok(())
    }
    fn status(&mut self, s: AgentStatus) -> Result<(), SignalError> {
        self.0.lock().unwrap().statuses.push(s);
        Ok(())
    }
    fn void_result(&mut self, e: &VoidEvent) -> Result<(), SignalError> {
        self.0.lock().unwrap().voids.push(e.clone());
        Ok(())
    }
    /// Stands in for stdout: answers every scan not made over the POS link.
    fn answers(&self, origin: &Origin) -> bool {
        !origin.is_pos()
    }
}

/// A sandbox on 127.0.0.1:0 with the built-in data set and the system clock.
pub fn sandbox() -> SandboxHandle {
    sandbox_with(SandboxConfig::default())
}

/// A sandbox on 127.0.0.1:0 from `cfg` (listen address overridden).
pub fn sandbox_with(cfg: SandboxConfig) -> SandboxHandle {
    Sandbox::start(SandboxConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..cfg
    })
    .expect("sandbox starts")
}

/// Builds a validated config: `extra` TOML (top-level keys first, then tables), the
/// store in `dir`, ATS at `url`. Prefetch at start is off unless `extra` says so.
pub fn config(url: &str, dir: &Path, extra: &str) -> Config {
    let text = format!(
        "store_dir = {dir:?}\nterminal_id = \"test-stand\"\n{extra}\n",
        dir = dir.display().to_string()
    );
    let mut raw = RawConfig::parse(&text, Path::new("test")).expect("test config parses");
    raw.ats.url = Some(url.to_string());
    raw.ats.apikey.get_or_insert_with(|| "sandbox-key".into());
    if raw.cache.prefetch_at_start.is_none() {
        raw.cache.prefetch_at_start = Some(false);
    }
    Config::from_raw(raw).expect("test config validates")
}

/// An agent on a sandbox, recording its outputs.
pub struct Harness {
    pub sandbox: SandboxHandle,
    pub agent: Agent,
    pub seen: Recorder,
    pub clock: SharedClock,
    pub dir: tempfile::TempDir,
    pub config: Config,
}

impl Harness {
    /// Agent + fresh sandbox; `extra` is TOML as for [`config`].
    pub fn start(extra: &str) -> Harness {
        Harness::on(sandbox(), extra)
    }

    /// Agent on a given sandbox.
    pub fn on(sandbox: SandboxHandle, extra: &str) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let config = config(&sandbox.base_url(), &dir.path().join("store"), extra);
        Harness::build(sandbox, dir, config)
    }

    fn build(sandbox: SandboxHandle, dir: tempfile::TempDir, config: Config) -> Harness {
        let clock = clock::system();
        let link = app::connect_ats(&config, clock.clone()).expect("client builds");
        let store = app::open_store(&config).expect("store opens");
        let seen = Recorder::default();
        let outputs = Outputs {
            signals: vec![Box::new(seen.clone())],
        };
        let agent = Agent::new(config.clone(), link.client, store, clock.clone(), outputs);
        Harness {
            sandbox,
            agent,
            seen,
            clock,
            dir,
            config,
        }
    }

    /// Drops the agent (closing the store) and starts a new one on the same store and
    /// sandbox, as after a restart.
    pub fn restart(self) -> Harness {
        let Harness {
            sandbox,
            agent,
            dir,
            config,
            ..
        } = self;
        agent.shutdown();
        Harness::build(sandbox, dir, config)
    }

    /// A scan event as a scanner would produce it now.
    pub fn event(&self, text: &str, amount_cents: Option<u64>) -> ScanEvent {
        ScanEvent {
            input: classify(text),
            amount_cents,
            request_id: None,
            received_at_ms: self.clock.wall_ms(),
            origin: Origin::Stdin,
        }
    }

    /// Scans a barcode (bare scan: the whole balance).
    pub fn scan(&mut self, text: &str) -> DecisionEvent {
        let ev = self.event(text, None);
        self.agent.handle_scan(&ev).expect("decision journaled")
    }

    /// A POS scan with an amount.
    pub fn scan_amount(&mut self, text: &str, cents: u64) -> DecisionEvent {
        let ev = self.event(text, Some(cents));
        self.agent.handle_scan(&ev).expect("decision journaled")
    }

    /// Voids a decision.
    pub fn void(&mut self, id: &str) -> VoidEvent {
        self.agent.handle_void(id, None)
    }

    /// The sandbox's call statistics.
    pub fn stats(&self) -> Stats {
        self.sandbox.stats()
    }

    /// ATS calls made so far (polls included).
    pub fn calls(&self) -> u64 {
        let s = self.stats();
        s.calls_by_command.values().sum::<u64>() + s.polls
    }
}

pub use pg::{output_within, COMMAND_WAIT};

/// Polls `f` every 10 ms until it returns `Some`, for at most `timeout` (for background
/// work with no channel to wait on: a late cache write, a probe, a child process).
pub fn wait_for<T>(timeout: std::time::Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let until = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if std::time::Instant::now() >= until {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

impl Harness {
    /// Loads `event`'s value into the cache the way the agent's prefetch does (the
    /// operator's command: no pacing). `fetched_at_ms` stamps the records (use an old
    /// time to make the cache stale). Returns the number of tickets cached.
    pub fn prefetch_at(&self, event: &str, fetched_at_ms: u64) -> usize {
        use concession_agent::agent::{local_date, prefetch};
        let today = local_date(self.clock.wall_ms(), self.config.utc_offset_minutes);
        let events = prefetch::events_to_prefetch(self.agent.ats(), &[event.to_string()], &today)
            .expect("event_search answers");
        events
            .iter()
            .map(|ev| {
                prefetch::prefetch_event(
                    self.agent.ats(),
                    self.agent.store(),
                    ev,
                    fetched_at_ms,
                    None,
                )
                .expect("prefetch succeeds")
            })
            .sum()
    }

    /// Prefetches `event` now.
    pub fn prefetch(&self, event: &str) -> usize {
        self.prefetch_at(event, self.clock.wall_ms())
    }

    /// The statuses signalled so far.
    pub fn statuses(&self) -> Vec<AgentStatus> {
        self.seen.0.lock().unwrap().statuses.clone()
    }

    /// Every journal entry, in order.
    pub fn journal(&self) -> Vec<concession_agent::store::JournalEntry> {
        self.agent
            .store()
            .journal_since(None)
            .expect("journal readable")
            .map(|e| e.expect("entry decodes"))
            .collect()
    }
}

/// The real `concession-agent` binary with every `CONCESSION_*` override removed from
/// its environment (so the test's config file decides) and `RUST_LOG` set.
pub fn agent_command(rust_log: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_concession-agent"));
    for k in [
        "CONCESSION_ATS_URL",
        "CONCESSION_ATS_APIKEY",
        "CONCESSION_ATS_DSN",
        "CONCESSION_STORE_DIR",
        "CONCESSION_TERMINAL_ID",
        "CONCESSION_VENUE_URL",
        "CONCESSION_VENUE_PASSWORD",
    ] {
        c.env_remove(k);
    }
    c.env("RUST_LOG", rust_log);
    c
}

/// The real binary running `run --pos jsonl` on a config file of its own (issue 14:
/// status and metrics while the agent runs). Scans go in on stdin; its stdout lines are
/// collected by a thread. Dropping it kills the child.
pub struct RunningAgent {
    pub dir: tempfile::TempDir,
    pub config: std::path::PathBuf,
    pub child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    pub lines: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl RunningAgent {
    /// Writes a config (terminal `status-stand`, the store in a temp dir, ATS at `url`,
    /// event EVENT01, no prefetch at start) plus `extra` TOML (tables only; `{dir}` is
    /// replaced by the temp dir), and starts the agent.
    pub fn start(url: &str, extra: &str) -> RunningAgent {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("agent.toml");
        let text = format!(
            "terminal_id = \"status-stand\"\nstore_dir = {store:?}\nevents = [\"EVENT01\"]\n\
             [ats]\nurl = {url:?}\napikey = \"sandbox-key\"\n\
             [cache]\nprefetch_at_start = false\n{extra}\n",
            store = dir.path().join("store").display().to_string(),
            extra = extra.replace("{dir}", &dir.path().display().to_string()),
        );
        std::fs::write(&config, text).unwrap();
        let mut child = agent_command("warn")
            .arg("--config")
            .arg(&config)
            .args(["run", "--pos", "jsonl"])
            .current_dir(dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str(&line) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        RunningAgent {
            dir,
            config,
            child,
            stdin,
            lines,
        }
    }

    /// The store directory.
    pub fn store_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("store")
    }

    /// Sends one scan line.
    pub fn scan(&mut self, barcode: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{barcode}").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits (at most 20 s) until `n` decision lines have come out; returns them.
    pub fn wait_decisions(&self, n: usize) -> Vec<serde_json::Value> {
        wait_for(std::time::Duration::from_secs(20), || {
            let ds: Vec<serde_json::Value> = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l["type"] == "decision")
                .cloned()
                .collect();
            (ds.len() >= n).then_some(ds)
        })
        .unwrap_or_else(|| panic!("no {n} decisions: {:?}", self.lines.lock().unwrap()))
    }

    /// Runs another command of the binary on the same config; returns its output.
    pub fn command(&self, args: &[&str]) -> std::process::Output {
        self.command_env(args, &[])
    }

    /// [`RunningAgent::command`] with environment variables set.
    pub fn command_env(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let mut c = agent_command("warn");
        c.arg("--config")
            .arg(&self.config)
            .args(args)
            .current_dir(self.dir.path())
            .stdin(std::process::Stdio::null());
        for (k, v) in env {
            c.env(k, v);
        }
        output_within(
            c,
            COMMAND_WAIT,
            &format!("concession-agent {}", args.join(" ")),
        )
        .unwrap()
    }

    /// Closes stdin (the agent decides what it read and exits) and waits for the exit
    /// (at most 30 s).
    pub fn stop(&mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        let status = wait_for(std::time::Duration::from_secs(30), || {
            self.child.try_wait().unwrap()
        });
        status.unwrap_or_else(|| panic!("agent pid {} did not stop", self.child.id()))
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
