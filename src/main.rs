//! `concession-agent`: the command line. Parsing only; the work is in the library.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use concession_agent::agent::health::Mode;
use concession_agent::agent::prefetch::{self, events_to_prefetch, RefreshPlan};
use concession_agent::agent::{local_date, Agent, AgentError, Outputs};
use concession_agent::app::{self, AtsLink, Wiring};
use concession_agent::ats::AtsError;
use concession_agent::board::BoardProfile;
use concession_agent::clock::{self, SharedClock};
use concession_agent::config::{Config, RawConfig, ScannerKind};
use concession_agent::pos::JournalLookup;
use concession_agent::scan::barcode::classify;
use concession_agent::store::{self, Format};

/// The demo configuration, used when `config/agent.toml` is not where it is looked for.
const BUILTIN_CONFIG: &str = include_str!("../config/agent.toml");
const DEFAULT_CONFIG: &str = "config/agent.toml";

#[derive(Parser)]
#[command(
    name = "concession-agent",
    version,
    about = "Redeems Ticketmaster Archtics loaded value at concession stands"
)]
struct Cli {
    /// Configuration file (default: config/agent.toml, or the built-in demo config).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Board profile (boards/*.toml): scanner, outputs, GPIO.
    #[arg(long, global = true)]
    board: Option<PathBuf>,
    /// Decision output on stdout when running: console text or JSON lines.
    #[arg(long, value_enum, global = true)]
    pos: Option<PosFormat>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent: read scans, decide, journal, signal (the default).
    Run,
    /// Check connectivity to ATS (`ping`).
    Ping,
    /// Call any ATS command and print the response JSON: `call event_search start_date=2026-11-27`.
    Call {
        /// The command (`cmd`).
        cmd: String,
        /// `key=value` fields of `command1` (numbers stay numbers).
        fields: Vec<String>,
    },
    /// What the agent would decide for a barcode, redeeming nothing.
    Lookup {
        /// The barcode as scanned.
        barcode: String,
        /// A POS amount in cents.
        #[arg(long)]
        amount_cents: Option<u64>,
    },
    /// The ticket cache.
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
    /// The decision journal.
    Journal {
        #[command(subcommand)]
        action: JournalAction,
    },
    /// The store itself.
    Store {
        #[command(subcommand)]
        action: StoreAction,
    },
}

#[derive(Subcommand)]
enum StoreAction {
    /// Make a store that another machine recorded this terminal's own (a replaced
    /// board, a restored backup): new decision ids get a new issuer tag, so they differ
    /// from every id any other copy of the store issued. Never for a store that another
    /// running terminal also uses: give that terminal its own store instead.
    Adopt,
}

#[derive(Subcommand)]
enum CacheAction {
    /// Load an event's (or the configured events') loaded value into the cache.
    Prefetch {
        /// Event name (default: the configured `events`; every event today when that
        /// list is empty).
        #[arg(long)]
        event: Option<String>,
    },
    /// Entries, size on disk, oldest and newest.
    Stats,
    /// Remove every cached record (the ledger and journal stay).
    Clear,
}

#[derive(Subcommand)]
enum JournalAction {
    /// Every entry after `--since`, exactly once, in order. Holds full barcodes
    /// (customer data) unless `--mask-barcodes`. Sum `net_cents` for the takings
    /// (void rows are negative). Reads a copy of the store, so it works with the disk
    /// full and never writes the store.
    Export {
        /// jsonl or csv.
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// Export entries after this decision id of this journal (the last id of the
        /// previous export).
        #[arg(long)]
        since: Option<String>,
        /// Leave the full barcode out (the masked one stays).
        #[arg(long)]
        mask_barcodes: bool,
        /// Where the temporary copy of the store goes (default: the system's
        /// temporary directory). Must have room for the store.
        #[arg(long)]
        scratch: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum PosFormat {
    Console,
    Jsonl,
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    Jsonl,
    Csv,
}

fn load_config(path: Option<&Path>) -> Result<Config, String> {
    let mut raw = match path {
        Some(p) => RawConfig::load(p).map_err(|e| e.to_string())?,
        None if Path::new(DEFAULT_CONFIG).is_file() => {
            RawConfig::load(Path::new(DEFAULT_CONFIG)).map_err(|e| e.to_string())?
        }
        None => RawConfig::parse(BUILTIN_CONFIG, Path::new("<built-in config>"))
            .map_err(|e| e.to_string())?,
    };
    raw.apply_env(|k| std::env::var(k).ok());
    Config::from_raw(raw).map_err(|e| e.to_string())
}

/// The log filter for a `RUST_LOG` value. A bare `debug` is scoped to this crate (the
/// library and the binaries), other crates staying at `info`: at debug, ureq's and
/// sled's internals were nine lines in ten. Anything else is taken as written
/// (env_logger syntax: `trace` is everything, `debug,ureq=debug` adds ureq).
fn log_filter(rust_log: Option<&str>) -> String {
    match rust_log.map(str::trim) {
        None | Some("") => "info".into(),
        Some(l) if l.eq_ignore_ascii_case("debug") => {
            "info,concession_agent=debug,ats_sandbox=debug".into()
        }
        Some(other) => other.into(),
    }
}

fn main() -> ExitCode {
    let filter = log_filter(std::env::var("RUST_LOG").ok().as_deref());
    env_logger::Builder::new()
        .parse_filters(&filter)
        // At trace level ureq dumps every byte on the wire, the apikey header and
        // full barcodes included: never, whatever RUST_LOG says.
        .filter_module("ureq_proto::util", log::LevelFilter::Off)
        // ureq prints a request's query (where the Presence key travels) only when its
        // `ureq::util` target logs at trace: keep that target off too.
        .filter_module("ureq::util", log::LevelFilter::Off)
        .target(env_logger::Target::Stderr)
        .init();
    // Before anything reads the API key: a core dump (or a ptrace attach by the same
    // user) would otherwise hold it and the barcodes in memory (issue 11, item 8).
    concession_agent::hardening::set_non_dumpable();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        // The reader of stdout went away (`... | head -1`): end quietly, with the status
        // a shell reports for a command killed by SIGPIPE.
        Err(Failure::BrokenPipe) => ExitCode::from(BROKEN_PIPE_STATUS),
        Err(Failure::Message(e)) => {
            let _ = writeln!(std::io::stderr(), "concession-agent: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Exit status when stdout is a pipe whose reader has gone: 128 + SIGPIPE, what a
/// shell shows for tools that die by the signal (Rust ignores SIGPIPE, so the write
/// fails with EPIPE instead, and `println!` would panic: abort, 134).
const BROKEN_PIPE_STATUS: u8 = 141;

/// Why a command ended without success.
enum Failure {
    /// A message for stderr.
    Message(String),
    /// Stdout's reader is gone: nothing more to say to anyone.
    BrokenPipe,
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Failure::Message(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Failure::BrokenPipe
        } else {
            Failure::Message(format!("write stdout: {e}"))
        }
    }
}

/// The demo's throw-away store directory, removed when the command ends.
struct TempStore(PathBuf);

impl Drop for TempStore {
    fn drop(&mut self) {
        match std::fs::remove_dir_all(&self.0) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("could not remove the demo store {}: {e}", self.0.display()),
        }
    }
}

/// Writes `text` and a newline to stdout; a closed pipe is [`Failure::BrokenPipe`].
fn out(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.write_all(b"\n")?;
    stdout.flush()?;
    Ok(())
}

/// Writes a JSON value, pretty-printed, to stdout.
fn out_json(value: &serde_json::Value) -> Result<(), Failure> {
    out(&serde_json::to_string_pretty(value).unwrap_or_default())
}

/// What `journal export` and `store adopt` say for the demo's store, which is gone.
const NO_DEMO_STORE: &str = "the demo configuration keeps no store between runs \
    (store_dir is unset and ats.url is \"sandbox\"): set store_dir in the config, or \
    CONCESSION_STORE_DIR, for the run and for this command";

fn run(cli: Cli) -> Result<ExitCode, Failure> {
    let config = load_config(cli.config.as_deref())?;
    let clock = clock::system();
    let _temp_store = config
        .store_temporary
        .then(|| TempStore(config.store_dir.clone()));
    let command = cli.command.unwrap_or(Command::Run);
    if config.store_temporary && matches!(command, Command::Journal { .. } | Command::Store { .. })
    {
        return Err(Failure::Message(NO_DEMO_STORE.into()));
    }
    match command {
        Command::Run => Ok(run_agent(config, cli.board.as_deref(), cli.pos, clock)?),
        Command::Ping => {
            let link = app::connect_ats(&config, clock).map_err(|e| e.to_string())?;
            let answer = match link.client.ping() {
                Ok(a) => a,
                Err(e @ AtsError::Unauthorized { .. }) => {
                    eprintln!("concession-agent: ping: {UNAUTHORIZED} ({e})");
                    return Ok(ExitCode::from(EXIT_UNAUTHORIZED));
                }
                Err(e) => return Err(format!("ping: {e}").into()),
            };
            out_json(&answer)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Call { cmd, fields } => {
            let link = app::connect_ats(&config, clock).map_err(|e| e.to_string())?;
            let mut map = serde_json::Map::new();
            for f in fields {
                let (k, v) = f
                    .split_once('=')
                    .ok_or_else(|| format!("field {f:?} is not key=value"))?;
                let value = match v.parse::<i64>() {
                    Ok(n) if !v.starts_with('0') || v == "0" => serde_json::Value::from(n),
                    _ => serde_json::Value::from(v),
                };
                map.insert(k.to_string(), value);
            }
            let answer = link
                .client
                .call_raw(&cmd, map)
                .map_err(|e| format!("{cmd}: {e}"))?;
            out_json(&answer)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Lookup {
            barcode,
            amount_cents,
        } => {
            let link = app::connect_ats(&config, clock.clone()).map_err(|e| e.to_string())?;
            // A refused key would otherwise show as an offline decision.
            if let Err(e @ AtsError::Unauthorized { .. }) = start_up_ping(&link, &clock) {
                eprintln!("concession-agent: lookup: {UNAUTHORIZED} ({e})");
                return Ok(ExitCode::from(EXIT_UNAUTHORIZED));
            }
            let store = app::open_store(&config).map_err(|e| e.to_string())?;
            let mut agent = Agent::new(
                config,
                Arc::clone(&link.client),
                store,
                clock.clone(),
                Outputs::default(),
            );
            let eval = agent.evaluate(&classify(barcode.trim()), amount_cents, clock.wall_ms());
            let d = &eval.decision;
            let out = serde_json::json!({
                "barcode": concession_agent::redact::mask_barcode(&eval.barcode),
                "decision": d.verdict.as_str(),
                "reason": d.reason.as_str(),
                "approved_cents": d.approved_cents,
                "items": d.item_names(),
                "source": d.source.as_str(),
                "offline": d.offline,
                "ticket": eval.record,
            });
            agent.shutdown();
            out_json(&out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Cache { action } => {
            let store = app::open_store(&config).map_err(|e| e.to_string())?;
            match action {
                CacheAction::Stats => {
                    let s = store.cache_stats().map_err(|e| e.to_string())?;
                    let out = serde_json::json!({
                        "entries": s.entries,
                        "bytes_on_disk": s.bytes_on_disk,
                        "oldest_fetched": s.oldest_fetched_ms.map(store::rfc3339_ms),
                        "newest_fetched": s.newest_fetched_ms.map(store::rfc3339_ms),
                        "journal_entries": store.journal_len(),
                    });
                    out_json(&out)?;
                }
                CacheAction::Clear => {
                    store.cache_clear().map_err(|e| e.to_string())?;
                    store.flush().map_err(|e| e.to_string())?;
                    out("cache cleared")?;
                }
                CacheAction::Prefetch { event } => {
                    let link =
                        app::connect_ats(&config, clock.clone()).map_err(|e| e.to_string())?;
                    let today = local_date(clock.wall_ms(), config.utc_offset_minutes);
                    // One named event, else every event the stand serves (else today's).
                    let names: Vec<String> = match event {
                        Some(e) => vec![e],
                        None => config.events.clone(),
                    };
                    // Ctrl-C ends between pages: what was written stays, and the next
                    // `cache prefetch` (or the running agent) resumes after it.
                    let stop = Arc::new(AtomicBool::new(false));
                    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                        signal_hook::flag::register(sig, Arc::clone(&stop))
                            .map_err(|e| format!("signal handler: {e}"))?;
                    }
                    let tty = std::io::stderr().is_terminal();
                    let max_wait = std::time::Duration::from_secs(15 * 60);
                    let events = prefetch::retry_rate_limited(
                        &clock,
                        &stop,
                        max_wait,
                        |left| {
                            if tty {
                                eprint!(
                                    "\r\x1b[Kevent_search: rate budget spent: waiting {} s",
                                    left.as_secs()
                                );
                            }
                        },
                        || events_to_prefetch(&link.client, &names, &today),
                    )
                    .map_err(|e| e.to_string())?;
                    if events.is_empty() {
                        out("no events today")?;
                    }
                    let progress = prefetch::Progress::default();
                    for ev in &events {
                        let started = std::time::Instant::now();
                        let mut show = |p: &prefetch::PrefetchProgress| {
                            if tty {
                                eprint!("\r\x1b[K{}", progress_line(p));
                            }
                        };
                        let mut run = prefetch::PrefetchRun {
                            reserve_per_minute: None,
                            stop: &stop,
                            progress: &progress,
                            // The minute window or a server closure is waited out;
                            // the day's budget is not (the pass resumes tomorrow).
                            max_wait,
                            stamp_ms: None,
                            on_progress: Some(&mut show),
                        };
                        let done =
                            prefetch::prefetch_event_paged(&link.client, &store, ev, &mut run);
                        if tty {
                            eprintln!();
                        }
                        let p = progress.snapshot();
                        let (minute, day) = link.client.budget_remaining();
                        match done {
                            Ok(s) => {
                                // stdout keeps its one line per event (scripts read it);
                                // the summary goes with the progress, to stderr.
                                out(&format!("{}: {} tickets cached", ev.event_name, s.tickets))?;
                                eprintln!(
                                    "{}: {} pages in {:.1} s{}; calls left: {minute} this \
                                     minute, {day} today",
                                    ev.event_name,
                                    s.pages,
                                    started.elapsed().as_secs_f64(),
                                    if s.resumed { " (resumed)" } else { "" },
                                );
                            }
                            Err(e) => {
                                return Err(format!(
                                    "{}: {e}; {} tickets in {} pages kept, the next prefetch \
                                     resumes after them",
                                    ev.event_name, p.tickets, p.pages
                                )
                                .into())
                            }
                        }
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Journal {
            action:
                JournalAction::Export {
                    format,
                    since,
                    mask_barcodes,
                    scratch,
                },
        } => {
            let scratch = scratch.unwrap_or_else(std::env::temp_dir);
            let snap =
                store::Snapshot::open(&config.store_dir, &scratch, app::store_options(&config))
                    .map_err(|e| e.to_string())?;
            let format = match format {
                ExportFormat::Jsonl => Format::Jsonl,
                ExportFormat::Csv => Format::Csv,
            };
            let opts = store::ExportOptions {
                since,
                mask_barcodes,
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let n = match store::export_with(snap.store(), format, &opts, &mut out) {
                Ok(n) => n,
                Err(store::StoreError::Io(e)) => return Err(e.into()),
                Err(e) => return Err(e.to_string().into()),
            };
            // BufWriter's drop would swallow a failed final write: flush it here.
            out.flush()?;
            drop(out);
            log::info!("exported {n} entries");
            Ok(ExitCode::SUCCESS)
        }
        Command::Store {
            action: StoreAction::Adopt,
        } => {
            let (store, prefix) =
                store::Store::adopt(&config.store_dir, app::store_options(&config))
                    .map_err(|e| e.to_string())?;
            drop(store);
            println!(
                "store {} adopted by this machine: new decision ids are {prefix}-NNNNNNNNNNNN",
                config.store_dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What the agent says when ATS refuses its key.
const UNAUTHORIZED: &str = "unauthorized: check ats.apikey / CONCESSION_ATS_APIKEY";
/// The exit code when ATS refuses the key (sysexits' EX_NOPERM): the unit does not
/// restart on it (`RestartPreventExitStatus=77`), since a restart cannot fix a key.
const EXIT_UNAUTHORIZED: u8 = 77;

/// One `ping` before the first scan, bounded so that a black-holed ATS delays the
/// start by at most the connect and read timeouts.
fn start_up_ping(link: &AtsLink, clock: &SharedClock) -> Result<(), AtsError> {
    let bound = Duration::from_secs(2);
    link.client
        .ping_with_deadline(clock.now() + bound)
        .map(drop)
}

/// One line of `cache prefetch` progress for the terminal.
fn progress_line(p: &prefetch::PrefetchProgress) -> String {
    let (minute, day) = p.calls_left;
    let head = format!("{}: page {}, {} tickets", p.event, p.pages, p.tickets);
    if p.state == prefetch::PrefetchState::Waiting {
        // While the budget is closed the client reports no calls left at all.
        format!(
            "{head}, rate budget spent: waiting {} s",
            p.wait_ms.div_ceil(1000)
        )
    } else {
        format!("{head}, calls left {minute} this minute, {day} today")
    }
}

fn run_agent(
    config: Config,
    board: Option<&Path>,
    pos: Option<PosFormat>,
    clock: SharedClock,
) -> Result<ExitCode, String> {
    let board = board
        .map(BoardProfile::load)
        .transpose()
        .map_err(|e| e.to_string())?;
    let mut wiring = Wiring::plan(&config, board.as_ref()).map_err(|e| e.to_string())?;
    match pos {
        Some(PosFormat::Jsonl) => wiring.stdout_jsonl(),
        Some(PosFormat::Console) => {
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
    concession_agent::hardening::ignore_hangup().map_err(|e| format!("signal handler: {e}"))?;
    let link: AtsLink = app::connect_ats(&config, clock.clone()).map_err(|e| e.to_string())?;
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
    let store = app::open_store(&config).map_err(|e| e.to_string())?;
    // Void ownership on the POS link: ids it never saw are checked against the journal.
    let journal = store.clone();
    wiring.pos_link.journal = Some(JournalLookup(Arc::new(move |id| {
        journal.journal_entry(id).is_ok_and(|e| e.is_some())
    })));
    let (tx, rx) = crossbeam_channel::bounded(256);
    let (running, outputs) =
        app::start_io(&wiring, &tx, clock.clone(), Arc::clone(&stop)).map_err(|e| e.to_string())?;
    // Only the sources hold senders now: the channel closes when they all end.
    drop(tx);
    let prefetch_progress = prefetch::Progress::default();
    let refresher = prefetch::spawn_refresher(
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
    .map_err(|e| format!("prefetch thread: {e}"))?;
    let demo = link.is_sandbox();
    let config_store_temporary = config.store_temporary;
    let store_dir = config.store_dir.clone();
    let mut agent = Agent::new(config, Arc::clone(&link.client), store, clock, outputs);
    agent.set_prefetch_progress(prefetch_progress);
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
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    drop(running);
    // The refresher may be inside a long ATS call; it holds nothing that needs saving.
    drop(refresher);
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

    #[test]
    fn pos_jsonl_works_with_and_without_the_run_subcommand() {
        for args in [
            vec!["concession-agent", "--pos", "jsonl"],
            vec!["concession-agent", "run", "--pos", "jsonl"],
        ] {
            let cli = Cli::try_parse_from(&args).expect("parses");
            assert!(matches!(cli.pos, Some(PosFormat::Jsonl)), "{args:?}");
            assert!(matches!(cli.command.unwrap_or(Command::Run), Command::Run));
        }
    }
}
