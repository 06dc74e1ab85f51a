//! `concession-agent`: the command line. Parsing only; the work is in the library.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use concession_agent::agent::prefetch::{self, events_to_prefetch, RefreshPlan};
use concession_agent::agent::{local_date, Agent, Outputs};
use concession_agent::app::{self, AtsLink, Wiring};
use concession_agent::board::BoardProfile;
use concession_agent::clock::{self, SharedClock};
use concession_agent::config::{Config, RawConfig, ScannerKind};
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
}

#[derive(Subcommand)]
enum CacheAction {
    /// Load an event's (or today's events') loaded value into the cache.
    Prefetch {
        /// Event name (default: every event today).
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
    /// Every entry after `--since`, exactly once, in order.
    Export {
        /// jsonl or csv.
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// Export entries after this decision id.
        #[arg(long)]
        since: Option<String>,
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

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        // At trace level ureq dumps every byte on the wire, the apikey header and
        // full barcodes included: never, whatever RUST_LOG says.
        .filter_module("ureq_proto::util", log::LevelFilter::Off)
        .target(env_logger::Target::Stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("concession-agent: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    let config = load_config(cli.config.as_deref())?;
    let clock = clock::system();
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run_agent(config, cli.board.as_deref(), cli.pos, clock),
        Command::Ping => {
            let link = app::connect_ats(&config, clock).map_err(|e| e.to_string())?;
            let answer = link.client.ping().map_err(|e| format!("ping: {e}"))?;
            println!(
                "{}",
                serde_json::to_string_pretty(&answer).unwrap_or_default()
            );
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
            println!(
                "{}",
                serde_json::to_string_pretty(&answer).unwrap_or_default()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Lookup {
            barcode,
            amount_cents,
        } => {
            let link = app::connect_ats(&config, clock.clone()).map_err(|e| e.to_string())?;
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
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
            agent.shutdown();
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
                    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
                }
                CacheAction::Clear => {
                    store.cache_clear().map_err(|e| e.to_string())?;
                    store.flush().map_err(|e| e.to_string())?;
                    println!("cache cleared");
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
                        println!("no events today");
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
                                println!("{}: {} tickets cached", ev.event_name, s.tickets);
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
                                ))
                            }
                        }
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Journal {
            action: JournalAction::Export { format, since },
        } => {
            let store = app::open_store(&config).map_err(|e| e.to_string())?;
            let format = match format {
                ExportFormat::Jsonl => Format::Jsonl,
                ExportFormat::Csv => Format::Csv,
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let n = store::export(&store, format, since.as_deref(), &mut out)
                .map_err(|e| e.to_string())?;
            drop(out);
            log::info!("exported {n} entries");
            Ok(ExitCode::SUCCESS)
        }
    }
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
    let link: AtsLink = app::connect_ats(&config, clock.clone()).map_err(|e| e.to_string())?;
    let store = app::open_store(&config).map_err(|e| e.to_string())?;
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
    let mut agent = Agent::new(config, Arc::clone(&link.client), store, clock, outputs);
    agent.set_prefetch_progress(prefetch_progress);
    log::info!("ready");
    if wiring.console && wiring.scanner == ScannerKind::Stdin && std::io::stdin().is_terminal() {
        eprintln!("Scan or type a barcode and press Enter; Ctrl-D or Ctrl-C ends.");
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
        Err(e) => {
            log::error!("stopping: {e}; a restart recovers the store from its redo log");
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
