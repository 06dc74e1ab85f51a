//! The process around the agent: loading the configuration, logging, the demo's
//! throw-away store, and the agent's start-up and shutdown (`concession-agent run`).

use std::error::Error;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{connect_ats, open_store, start_io, AtsLink, Wiring};
use crate::agent::prefetch::{self, RefreshPlan};
use crate::agent::{Agent, AgentError};
use crate::ats::AtsError;
use crate::board::BoardProfile;
use crate::clock::SharedClock;
use crate::config::{Config, RawConfig, ScannerKind, StdoutFormat};
use crate::decide::Mode;
use crate::pos::JournalLookup;

/// The demo configuration, used when `config/agent.toml` is not where it is looked for.
const BUILTIN_CONFIG: &str = include_str!("../../config/agent.toml");
const DEFAULT_CONFIG: &str = "config/agent.toml";

/// What the agent says when ATS refuses its key.
pub const UNAUTHORIZED: &str = "unauthorized: check ats.apikey / CONCESSION_ATS_APIKEY";
/// The exit code when ATS refuses the key (sysexits' EX_NOPERM): the unit does not
/// restart on it (`RestartPreventExitStatus=77`), since a restart cannot fix a key.
pub const EXIT_UNAUTHORIZED: u8 = 77;

/// The configuration at `path`, else `config/agent.toml`, else the built-in demo; the
/// environment (`CONCESSION_*`) applied on top.
pub fn load_config(path: Option<&Path>) -> Result<Config, Box<dyn Error>> {
    let mut raw = match path {
        Some(p) => RawConfig::load(p)?,
        None if Path::new(DEFAULT_CONFIG).is_file() => RawConfig::load(Path::new(DEFAULT_CONFIG))?,
        None => RawConfig::parse(BUILTIN_CONFIG, Path::new("<built-in config>"))?,
    };
    raw.apply_env(|k| std::env::var(k).ok());
    Ok(Config::from_raw(raw)?)
}

/// The log filter for a `RUST_LOG` value. A bare `debug` is scoped to this crate (the
/// library and the binaries), other crates staying at `info`: at debug, ureq's and
/// sled's internals were nine lines in ten. Anything else is taken as written
/// (env_logger syntax: `trace` is everything, `debug,ureq=debug` adds ureq).
pub fn log_filter(rust_log: Option<&str>) -> String {
    match rust_log.map(str::trim) {
        None | Some("") => "info".into(),
        Some(l) if l.eq_ignore_ascii_case("debug") => {
            "info,concession_agent=debug,ats_sandbox=debug".into()
        }
        Some(other) => other.into(),
    }
}

/// What every command does first: logs to stderr at the level `RUST_LOG` asks for
/// ([`log_filter`]), and makes the process non-dumpable.
pub fn init_process() {
    init_logging();
    // Before anything reads the API key: a core dump (or a ptrace attach by the same
    // user) would otherwise hold it and the barcodes in memory (issue 11, item 8).
    crate::hardening::set_non_dumpable();
}

/// Logs to stderr at the level `RUST_LOG` asks for ([`log_filter`]).
pub fn init_logging() {
    let filter = log_filter(std::env::var("RUST_LOG").ok().as_deref());
    let inner = env_logger::Builder::new()
        .parse_filters(&filter)
        // At trace level ureq dumps every byte on the wire, the apikey header and
        // full barcodes included: never, whatever RUST_LOG says.
        .filter_module("ureq_proto::util", log::LevelFilter::Off)
        // ureq prints a request's query (where the Presence key travels) only when its
        // `ureq::util` target logs at trace: keep that target off too.
        .filter_module("ureq::util", log::LevelFilter::Off)
        .target(env_logger::Target::Stderr)
        .build();
    let max = inner.filter();
    // Records around a live progress line (`cache prefetch` on a terminal) go on lines
    // of their own (app/tty_line.rs).
    if log::set_boxed_logger(Box::new(super::tty_line::KeepLine { inner })).is_ok() {
        log::set_max_level(max);
    }
}

/// The demo's throw-away store directory, removed when the command ends.
#[derive(Debug)]
pub struct TempStore(PathBuf);

impl TempStore {
    /// Removes `config.store_dir` when dropped, if the configuration made it up for
    /// this run (the demo: no `store_dir` and the in-process sandbox).
    pub fn for_config(config: &Config) -> Option<TempStore> {
        config
            .store_temporary
            .then(|| TempStore(config.store_dir.clone()))
    }
}

impl Drop for TempStore {
    fn drop(&mut self) {
        match std::fs::remove_dir_all(&self.0) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("could not remove the demo store {}: {e}", self.0.display()),
        }
    }
}

/// One `ping` before the first scan, bounded so that a black-holed ATS delays the
/// start by at most the connect and read timeouts.
pub fn start_up_ping(link: &AtsLink, clock: &SharedClock) -> Result<(), AtsError> {
    let bound = Duration::from_secs(2);
    link.client
        .ping_with_deadline(clock.now() + bound)
        .map(drop)
}

/// Runs the agent until its scanners end or SIGINT/SIGTERM: checks the key, opens the
/// store, starts the outputs, sources and refresher, runs the loop, and shuts them
/// down in order. `stdout` overrides the configured stdout output.
pub fn run_agent(
    config: Config,
    board: Option<&Path>,
    stdout: Option<StdoutFormat>,
    clock: SharedClock,
) -> Result<ExitCode, Box<dyn Error>> {
    let board = board.map(BoardProfile::load).transpose()?;
    let mut wiring = Wiring::plan(&config, board.as_ref())?;
    match stdout {
        Some(StdoutFormat::JsonLines) => wiring.stdout_jsonl(),
        Some(StdoutFormat::Console) => {
            wiring.console = true;
            wiring.jsonl_stdout = false;
        }
        None => {}
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| format!("signal handler: {e}"))?;
    }
    // A hang-up must not kill the agent mid-shift (src/hardening.rs).
    crate::hardening::ignore_hangup().map_err(|e| format!("signal handler: {e}"))?;
    let link: AtsLink = connect_ats(&config, clock.clone())?;
    // Venue mode: every ATS call, the start-up ping included, keeps to the key's budget.
    let venue_budget = super::attach_venue_budget(&config, &link.client);
    // Credentials first: a wrong key used to look like "every ticket unknown".
    let online_at_start = match start_up_ping(&link, &clock) {
        Ok(()) => Ok(()),
        Err(e @ AtsError::Unauthorized { .. }) => {
            let msg = format!("{UNAUTHORIZED} (ATS refused the key: {e})");
            if wiring.jsonl_stdout {
                println!(
                    "{}",
                    serde_json::json!({"type": "status", "status": "unauthorized", "message": msg})
                );
            }
            eprintln!("concession-agent: {msg}");
            return Ok(ExitCode::from(EXIT_UNAUTHORIZED));
        }
        Err(e) => Err(e),
    };
    let store = open_store(&config)?;
    // Venue mode: migrate and upload what is pending before serving (docs/venue.md).
    let venue = super::start_venue_with(&config, &store, venue_budget)?;
    // Void ownership on the POS link: ids it never saw are checked against the journal.
    let journal = store.clone();
    wiring.pos_link.journal = Some(JournalLookup(Arc::new(move |id| {
        journal.journal_entry(id).is_ok_and(|e| e.is_some())
    })));
    let (tx, rx) = crossbeam_channel::bounded(256);
    let (running, outputs) = start_io(&wiring, &tx, clock.clone(), Arc::clone(&stop))?;
    // Only the sources hold senders now: the channel closes when they all end.
    drop(tx);
    let prefetch_progress = prefetch::Progress::default();
    // Venue mode: one fetch per event, through the venue's lease, instead of this
    // terminal's own refresher (venue/background.rs).
    #[cfg(feature = "venue")]
    let venue_fetch = super::start_venue_fetch(&config, &link.client, &store, &clock, &stop)?;
    #[cfg(not(feature = "venue"))]
    let venue_fetch: Option<()> = None;
    let refresher = match venue_fetch {
        Some(_) => None,
        None => Some(
            prefetch::spawn_refresher(
                Arc::clone(&link.client),
                store.clone(),
                clock.clone(),
                RefreshPlan {
                    events: config.events.clone(),
                    utc_offset_minutes: config.utc_offset_minutes,
                    at_start: config.cache.prefetch_at_start,
                    interval: config.cache.refresh_interval,
                    reserve_per_minute: config.cache.budget_reserve_per_minute,
                    progress: prefetch_progress.clone(),
                },
                Arc::clone(&stop),
            )
            .map_err(|e| format!("prefetch thread: {e}"))?,
        ),
    };
    let demo = link.is_sandbox();
    let config_store_temporary = config.store_temporary;
    let store_dir = config.store_dir.clone();
    let mut agent = Agent::new(config, Arc::clone(&link.client), store, clock, outputs);
    agent.set_prefetch_progress(prefetch_progress);
    agent.set_venue(venue);
    #[cfg(feature = "venue")]
    if let Some(f) = &venue_fetch {
        agent.set_venue_share(f.share());
    }
    // The start-up ping also compared the wall clock with ATS's (`server_date`).
    let clock_state = agent.clock_state();
    match online_at_start {
        Ok(()) if clock_state.is_trusted() => {
            log::info!("ready (clock {})", clock_state.describe())
        }
        Ok(()) => log::warn!(
            "ready, but the clock is {}: cached records are not trusted (clock_unsure) \
             until it agrees with ATS",
            clock_state.describe()
        ),
        Err(e) => {
            // Known offline before the first scan: no `ready` until ATS answers.
            log::warn!("ATS did not answer at start ({e}): offline rules apply until it does");
            agent.force_mode(Mode::Offline);
        }
    }
    if wiring.console && wiring.scanner.kind == ScannerKind::Stdin && std::io::stdin().is_terminal()
    {
        eprintln!("Scan or type a barcode and press Enter; Ctrl-D or Ctrl-C ends.");
        if config_store_temporary {
            eprintln!(
                "Demo store: fresh for this run, removed at exit ({}). To keep one, set \
                 CONCESSION_STORE_DIR (e.g. /tmp/demo-store).",
                store_dir.display()
            );
        }
        if demo {
            eprintln!(
                "Sandbox barcodes: 100000000001 ($20), 100000000002 (pizza and a coke), \
                 100000000003 ($15 + hot dog), 100000000005 (void), 100000000006 (other event), \
                 999999999999 (unknown). More in docs/sandbox.md."
            );
        }
    }
    let ended = agent.run(&rx, &stop);
    // Closed at once: a POS request sent while the rest shuts down is answered "agent
    // stopped" instead of waiting in a queue nobody reads any more.
    drop(rx);
    stop.store(true, Ordering::SeqCst);
    drop(running);
    // The refresher may be inside a long ATS call; it holds nothing that needs saving.
    drop(refresher);
    #[cfg(feature = "venue")]
    if let Some(f) = venue_fetch {
        f.shutdown(Duration::from_millis(500));
    }
    agent.shutdown();
    match ended {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e @ AgentError::OutputLost(_)) => {
            log::error!("stopping: {e}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            log::error!("stopping: {e}; a restart recovers the store from its redo log");
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 16.6: `RUST_LOG=debug` was 90% ureq and sled internals.
    #[test]
    fn a_bare_debug_log_level_is_scoped_to_this_crate() {
        assert_eq!(log_filter(None), "info");
        assert_eq!(
            log_filter(Some("debug")),
            "info,concession_agent=debug,ats_sandbox=debug"
        );
        assert_eq!(log_filter(Some("trace")), "trace");
        assert_eq!(log_filter(Some("debug,ureq=debug")), "debug,ureq=debug");
        let mut b = env_logger::Builder::new();
        b.parse_filters(&log_filter(Some("debug")));
        let logger = b.build();
        let enabled = |target: &str| {
            log::Log::enabled(
                &logger,
                &log::Metadata::builder()
                    .level(log::Level::Debug)
                    .target(target)
                    .build(),
            )
        };
        assert!(enabled("concession_agent::agent"));
        assert!(!enabled("ureq::unversioned::transport"));
        assert!(!enabled("sled::pagecache"));
    }
}
