//! The one-shot subcommands of `concession-agent`, one function each (`run` is
//! [`app::run::run_agent`]). `main.rs` parses the command line and
//! calls one of these; each writes its answer to stdout and returns the exit code.
//!
//! A write to stdout that fails is a [`StdoutError`]; its reader gone (`... | head -1`)
//! is [`StdoutError::is_broken_pipe`], which `main` ends quietly on (status 141).

pub mod cli;
mod stdout;
pub mod venue;

pub use stdout::StdoutError;

use std::error::Error;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::agent::prefetch::{self, events_to_prefetch};
use crate::agent::{local_date, Agent, Outputs};
use crate::app;
use crate::app::run::{start_up_ping, EXIT_UNAUTHORIZED, UNAUTHORIZED};
use crate::app::tty_line;
use crate::ats::AtsError;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::scan::barcode::classify;
use crate::status::{self, StatusError, StatusSnapshot};
use crate::store::{self, Format, StoreError};

/// Exit status when stdout is a pipe whose reader has gone: 128 + SIGPIPE, what a
/// shell shows for tools that die by the signal (Rust ignores SIGPIPE, so the write
/// fails with EPIPE instead, and `println!` would panic: abort, 134).
pub const BROKEN_PIPE_STATUS: u8 = 141;

/// Exit status of a `cache prefetch` ended by SIGINT or SIGTERM: `EX_TEMPFAIL` of
/// sysexits(3), "try again later". Not a failure: every page written is kept (durable)
/// and the next prefetch, or the running agent, resumes after the last one; the final
/// line on stderr says how far it got.
pub const EXIT_INTERRUPTED: u8 = 75;

/// How a command that failed ends: its error on stderr and status 1, or, when the
/// reader of stdout went away (`... | head -1`), quietly with the status a shell
/// reports for a command killed by SIGPIPE ([`BROKEN_PIPE_STATUS`]).
pub fn failed(e: &(dyn Error + 'static)) -> ExitCode {
    if e.downcast_ref::<StdoutError>()
        .is_some_and(StdoutError::is_broken_pipe)
    {
        return ExitCode::from(BROKEN_PIPE_STATUS);
    }
    let _ = writeln!(io::stderr(), "concession-agent: {e}");
    ExitCode::FAILURE
}

/// Writes `text` and a newline to stdout.
fn out(text: &str) -> Result<(), StdoutError> {
    let mut stdout = io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.write_all(b"\n")?;
    stdout.flush()?;
    Ok(())
}

/// Writes a JSON value, pretty-printed, to stdout.
fn out_json(value: &serde_json::Value) -> Result<(), StdoutError> {
    out(&serde_json::to_string_pretty(value).unwrap_or_default())
}

/// `ping`: checks connectivity to ATS and prints its answer.
pub fn ping(config: &Config, clock: SharedClock) -> Result<ExitCode, Box<dyn Error>> {
    let link = app::connect_ats(config, clock)?;
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

/// `call CMD key=value...`: any ATS command; prints the response JSON. A value that
/// reads as an integer (without a leading zero) is sent as a number.
pub fn call(
    config: &Config,
    clock: SharedClock,
    cmd: &str,
    fields: &[String],
) -> Result<ExitCode, Box<dyn Error>> {
    let link = app::connect_ats(config, clock)?;
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
        .call_raw(cmd, map)
        .map_err(|e| format!("{cmd}: {e}"))?;
    out_json(&answer)?;
    Ok(ExitCode::SUCCESS)
}

/// `lookup BARCODE`: what the agent would decide, redeeming nothing.
pub fn lookup(
    config: Config,
    clock: SharedClock,
    barcode: &str,
    amount_cents: Option<u64>,
) -> Result<ExitCode, Box<dyn Error>> {
    refuse_if_held(&config, "lookup", status::LOOKUP_WHILE_RUNNING)?;
    let link = app::connect_ats(&config, clock.clone())?;
    // A refused key would otherwise show as an offline decision.
    if let Err(e @ AtsError::Unauthorized { .. }) = start_up_ping(&link, &clock) {
        eprintln!("concession-agent: lookup: {UNAUTHORIZED} ({e})");
        return Ok(ExitCode::from(EXIT_UNAUTHORIZED));
    }
    let store = app::open_store(&config)?;
    let mut agent = Agent::new(
        config,
        Arc::clone(&link.client),
        store,
        clock.clone(),
        Outputs::default(),
    );
    let eval = agent.evaluate(&classify(barcode.trim()), amount_cents, clock.wall_ms());
    let d = &eval.decision;
    let answer = serde_json::json!({
        "barcode": crate::redact::mask_barcode(&eval.barcode),
        "decision": d.verdict.as_str(),
        "reason": d.reason.as_str(),
        "approved_cents": d.approved_cents,
        "items": d.item_names(),
        "source": d.source.as_str(),
        "offline": d.offline,
        "ticket": eval.record,
    });
    agent.shutdown();
    out_json(&answer)?;
    Ok(ExitCode::SUCCESS)
}

/// `cache stats`: entries, size on disk, oldest and newest.
pub fn cache_stats(config: &Config) -> Result<ExitCode, Box<dyn Error>> {
    if held(config) {
        return cache_stats_from_agent(config);
    }
    let store = app::open_store(config)?;
    out_json(&crate::agent::control::cache_stats_json(&store)?)?;
    Ok(ExitCode::SUCCESS)
}

/// `cache clear`: removes every cached record (the ledger and journal stay).
pub fn cache_clear(config: &Config) -> Result<ExitCode, Box<dyn Error>> {
    refuse_if_held(config, "cache clear", "Stop the agent first.")?;
    let store = app::open_store(config)?;
    store.cache_clear()?;
    store.flush()?;
    out("cache cleared")?;
    Ok(ExitCode::SUCCESS)
}

/// `cache prefetch [--event NAME]`: loads one event's (else the configured events', else
/// today's) loaded value into the cache, page by page, resumable. One line per event
/// on stdout; progress and summaries on stderr.
pub fn cache_prefetch(
    config: &Config,
    clock: SharedClock,
    event: Option<String>,
) -> Result<ExitCode, Box<dyn Error>> {
    refuse_if_held(
        config,
        "cache prefetch",
        "The running agent prefetches by itself (cache.prefetch_at_start, \
         cache.refresh_interval_ms); `concession-agent status` shows how far.",
    )?;
    let store = app::open_store(config)?;
    let link = app::connect_ats(config, clock.clone())?;
    let today = local_date(clock.wall_ms(), config.utc_offset_minutes);
    // One named event, else every event the stand serves (else today's).
    let names: Vec<String> = match event {
        Some(e) => vec![e],
        None => config.events.clone(),
    };
    // Venue mode: through the event's lease, never paging ATS beside its holder.
    #[cfg(feature = "venue")]
    if config.venue.is_some() {
        return venue::cache_prefetch_via_venue(config, &link.client, &store, clock, names);
    }
    // Ctrl-C ends between pages: what was written stays, and the next
    // `cache prefetch` (or the running agent) resumes after it.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| format!("signal handler: {e}"))?;
    }
    let tty = io::stderr().is_terminal();
    let max_wait = Duration::from_secs(15 * 60);
    let events = match prefetch::retry_rate_limited(
        &clock,
        &stop,
        max_wait,
        |left| {
            if tty {
                tty_line::show(&format!(
                    "event_search: rate budget spent: waiting {} s",
                    left.as_secs()
                ));
            }
        },
        || events_to_prefetch(&link.client, &names, &today),
    ) {
        Err(prefetch::PrefetchError::Stopped) => {
            tty_line::finish();
            eprintln!(
                "interrupted before the first page (0 tickets kept); the next prefetch resumes"
            );
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        }
        other => other?,
    };
    tty_line::finish();
    if events.is_empty() {
        out("no events today")?;
    }
    let progress = prefetch::Progress::default();
    for ev in &events {
        let started = Instant::now();
        let mut show = |p: &prefetch::PrefetchProgress| {
            if tty {
                tty_line::show(&progress_line(p));
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
        let done = prefetch::prefetch_event_paged(&link.client, &store, ev, &mut run);
        tty_line::finish();
        let p = progress.snapshot();
        let (minute, day) = link.client.budget_remaining();
        match done {
            Ok(s) => {
                // stdout keeps its one line per event (scripts read it);
                // the summary goes with the progress, to stderr.
                out(&format!("{}: {} tickets cached", ev.event_name, s.tickets))?;
                let mut how = Vec::new();
                if s.resumed {
                    how.push("resumed".to_string());
                }
                if !s.waited.is_zero() {
                    how.push(format!(
                        "{:.1} s of it waiting for the rate budget",
                        s.waited.as_secs_f64()
                    ));
                }
                let how = if how.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", how.join(", "))
                };
                eprintln!(
                    "{}: {} pages in {:.1} s{how}; calls left: {minute} this \
                     minute, {day} today",
                    ev.event_name,
                    s.pages,
                    started.elapsed().as_secs_f64(),
                );
            }
            Err(prefetch::PrefetchError::Stopped) => {
                // The last page's cursor is durable with the next page's sync: there
                // is none, so sync it now (else the next pass re-fetches that page).
                store.sync_cache()?;
                eprintln!(
                    "{}: interrupted after page {} ({} tickets kept); the next prefetch \
                     resumes",
                    ev.event_name, p.pages, p.tickets
                );
                return Ok(ExitCode::from(EXIT_INTERRUPTED));
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
    Ok(ExitCode::SUCCESS)
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

/// What `journal export` and `store adopt` say for the demo's store, which is gone.
const NO_DEMO_STORE: &str = "the demo configuration keeps no store between runs \
    (store_dir is unset and ats.url is \"sandbox\"): set store_dir in the config, or \
    CONCESSION_STORE_DIR, for the run and for this command";

/// Refuses commands that read a kept store when the configuration keeps none.
fn kept_store(config: &Config) -> Result<(), Box<dyn Error>> {
    if config.store_temporary {
        return Err(NO_DEMO_STORE.into());
    }
    Ok(())
}

/// `journal export`: every entry after `since`, once, in order (full barcodes unless
/// `mask_barcodes`), from a copy of the store made under `scratch` (default: the
/// system's temporary directory).
pub fn journal_export(
    config: &Config,
    format: Format,
    since: Option<String>,
    mask_barcodes: bool,
    scratch: Option<PathBuf>,
) -> Result<ExitCode, Box<dyn Error>> {
    let opts = &store::ExportOptions {
        since,
        mask_barcodes,
    };
    kept_store(config)?;
    if held(config) {
        return export_via_agent(config, format, opts);
    }
    let scratch = scratch.unwrap_or_else(std::env::temp_dir);
    let snap = store::Snapshot::open(&config.store_dir, &scratch, app::store_options(config))?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let n = match store::export_with(snap.store(), format, opts, &mut out) {
        Ok(n) => n,
        Err(StoreError::Io(e)) => return Err(StdoutError(e).into()),
        Err(e) => return Err(e.into()),
    };
    // BufWriter's drop would swallow a failed final write: flush it here.
    out.flush().map_err(StdoutError)?;
    drop(out);
    log::info!("exported {n} entries");
    Ok(ExitCode::SUCCESS)
}

/// `store adopt`: makes a store another machine recorded this terminal's own.
pub fn store_adopt(config: &Config) -> Result<ExitCode, Box<dyn Error>> {
    kept_store(config)?;
    refuse_if_held(config, "store adopt", "Stop the agent first.")?;
    let (store, prefix) = store::Store::adopt(&config.store_dir, app::store_options(config))?;
    drop(store);
    println!(
        "store {} adopted by this machine: new decision ids are {prefix}-NNNNNNNNNNNN",
        config.store_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

// While the agent runs (issue 14): it holds the store (sled allows one process).

/// `status [--format text|json]`: this terminal's status, from what the running agent
/// publishes, else from the store.
pub fn status(config: &Config, clock: SharedClock, json: bool) -> Result<ExitCode, Box<dyn Error>> {
    kept_store(config)?;
    let snap = current_status(config, clock.wall_ms())?;
    if json {
        // The same serializer as the status file's (one copy of its code in the build).
        out(&serde_json::to_string_pretty(&snap)?)?;
    } else {
        out(status::render_text(&snap, clock.wall_ms()).trim_end())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// True when another process holds the store (see `store::snapshot::is_held`).
fn held(config: &Config) -> bool {
    store::snapshot::is_held(&config.store_dir).unwrap_or(false)
}

/// Refuses `command` plainly, at once, while another process holds the store (sled
/// would refuse it after 3 s with `could not acquire lock ... WouldBlock`).
fn refuse_if_held(config: &Config, command: &str, instead: &str) -> Result<(), Box<dyn Error>> {
    if held(config) {
        return Err(status::held_message(&config.store_dir, command, instead).into());
    }
    Ok(())
}

/// `journal export` while the agent runs: the agent reads its own store and streams
/// the rows (`agent::control`); an agent without the socket is refused plainly.
fn export_via_agent(
    config: &Config,
    format: Format,
    opts: &store::ExportOptions,
) -> Result<ExitCode, Box<dyn Error>> {
    use crate::agent::control::{self, ControlError, ExportRequest};
    let req = ExportRequest {
        cmd: "export".into(),
        format: match format {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
        }
        .into(),
        since: opts.since.clone(),
        mask_barcodes: opts.mask_barcodes,
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    match control::export_via_agent(&config.store_dir, &req, &mut out) {
        Ok(()) => {}
        Err(ControlError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
            return Err(StdoutError(e).into())
        }
        Err(ControlError::Connect(_)) => {
            return Err(status::held_message(
                &config.store_dir,
                "journal export",
                status::EXPORT_WHILE_RUNNING,
            )
            .into())
        }
        Err(e) => return Err(format!("journal export: {e}").into()),
    }
    out.flush().map_err(StdoutError)?;
    Ok(ExitCode::SUCCESS)
}

/// `cache stats` while the agent runs: the agent counts its cache now (over its
/// socket, `agent::control`); an agent without the socket: its last published count.
fn cache_stats_from_agent(config: &Config) -> Result<ExitCode, Box<dyn Error>> {
    use crate::agent::control::{self, ControlError, ExportRequest};
    let ask = ExportRequest {
        cmd: "cache_stats".into(),
        format: String::new(),
        since: None,
        mask_barcodes: false,
    };
    let mut answer = Vec::new();
    match control::export_via_agent(&config.store_dir, &ask, &mut answer) {
        Ok(()) => {
            let v: serde_json::Value = serde_json::from_slice(&answer)
                .map_err(|e| format!("cache stats: the agent's answer: {e}"))?;
            out_json(&v)?;
            return Ok(ExitCode::SUCCESS);
        }
        Err(ControlError::Connect(_)) => {}
        Err(e) => return Err(format!("cache stats: {e}").into()),
    }
    let snap = match status::read(&config.store_dir)? {
        Some(s) => s,
        None => {
            return Err(status::held_message(
                &config.store_dir,
                "cache stats",
                "It publishes no status (an older agent?): stop it first.",
            )
            .into())
        }
    };
    let Some(c) = snap.cache else {
        return Err(
            "cache stats: the running agent has not counted its cache yet: try again".into(),
        );
    };
    eprintln!(
        "concession-agent: the running agent holds the store; these are its figures, counted at {}",
        c.counted_at
    );
    out_json(&serde_json::json!({
        "entries": c.entries,
        "bytes_on_disk": c.bytes_on_disk,
        "oldest_fetched": c.oldest_fetched,
        "newest_fetched": c.newest_fetched,
        "journal_entries": snap.journal_entries,
        "counted_at": c.counted_at,
    }))?;
    Ok(ExitCode::SUCCESS)
}

/// The status of the terminal whose store is `config.store_dir`, judged at `now_ms`:
/// what the running agent last published while one holds the store, else what the
/// store itself says (`status::from_store`).
fn current_status(config: &Config, now_ms: u64) -> Result<StatusSnapshot, StatusError> {
    let dir = &config.store_dir;
    if crate::store::snapshot::is_held(dir)? {
        // The file may be a previous agent's, with the store now held by a command
        // (`cache prefetch`): only a living publisher's snapshot answers.
        return match status::read(dir)? {
            Some(s) if s.pid.is_some_and(status::pid_alive) => Ok(s),
            _ => Err(StatusError::HeldSilent(dir.clone())),
        };
    }
    if !dir.join("db").is_file() {
        return Err(StatusError::NoStore(dir.clone()));
    }
    // Opening writes (recovery, a checkpoint): on a full disk, or a store this
    // machine refuses, read a private copy instead, as `journal export` does.
    let opts = app::store_options(config);
    let own;
    let copy;
    let store: &store::Store = match store::Store::open(dir, opts.clone()) {
        Ok(s) => {
            own = s;
            &own
        }
        Err(e) => {
            log::info!("status: {e}; reading a copy of the store instead");
            copy = crate::store::Snapshot::open(dir, &std::env::temp_dir(), opts)?;
            copy.store()
        }
    };
    let o = &config.offline;
    let snap = status::from_store(&status::FromStore {
        store,
        store_dir: dir,
        terminal: &config.terminal_id,
        caps: status::OfflineExposure {
            cap_cents: o.total_cents,
            cap_count: o.total_count.into(),
            per_transaction_cents: o.per_transaction_cents,
            per_ticket_cents: o.per_ticket_cents,
            ..status::OfflineExposure::default()
        },
        min_free_bytes: config.store_min_free_bytes,
        utc_offset_minutes: config.utc_offset_minutes,
        now_ms,
    })?;
    let mut snap = snap;
    // What the store keeps of the last agent's work: its prefetch cursors and, in venue
    // mode, how much of its journal the venue had not acknowledged.
    snap.prefetch = status::stored_prefetch(store, &config.events);
    #[cfg(feature = "venue")]
    if config.venue.is_some() {
        snap.venue_mode = true;
        snap.pending_uploads = Some(crate::venue::pending_in_store(
            dir,
            store.id_prefix(),
            snap.journal_entries,
        ));
    }
    Ok(snap)
}
