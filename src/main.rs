//! `concession-agent`: the command line. Parsing and dispatch only; the work is in the
//! library (`app` for the agent's start-up and shutdown, `commands` for the rest).

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use concession_agent::commands;
use concession_agent::config::StdoutFormat;
use concession_agent::store::Format;
use concession_agent::{app, clock};

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
    /// This terminal's status: mode, today's decisions, offline exposure, ATS budget,
    /// prefetch, cache, free disk, clock. Works while the agent runs (it reads what the
    /// agent publishes) and when it does not (it reads the store).
    Status {
        /// text (for people) or json.
        #[arg(long, value_enum, default_value = "text")]
        format: StatusFormat,
    },
    /// Venue mode: the stands' shared ledger on PostgreSQL (docs/venue.md).
    Venue {
        #[command(subcommand)]
        action: VenueAction,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum StatusFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum VenueAction {
    /// Apply the venue schema's migrations (under an advisory lock).
    Migrate,
    /// Upload this terminal's pending decisions; exit 0 when none is left. Run it with
    /// the agent stopped (a running agent uploads by itself).
    Sync,
    /// Every decision and void of every terminal in the venue ledger, exactly once, in
    /// recorded order: the fields of `journal export` plus `venue_seq`,
    /// `overdraft_cents`, `overdraft_items`, `uploaded`. Holds full barcodes.
    Export {
        /// jsonl or csv.
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// Rows after this decision id (the last id of an earlier venue export).
        #[arg(long)]
        since: Option<String>,
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
    /// full and never writes the store; while the agent runs, the agent exports.
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

fn main() -> ExitCode {
    app::run::init_process();
    run(Cli::parse()).unwrap_or_else(|e| commands::failed(&*e))
}

fn run(cli: Cli) -> Result<ExitCode, Box<dyn Error>> {
    let config = app::run::load_config(cli.config.as_deref())?;
    let clock = clock::system();
    let _temp_store = app::run::TempStore::for_config(&config);
    let stdout = cli.pos.map(|p| match p {
        PosFormat::Console => StdoutFormat::Console,
        PosFormat::Jsonl => StdoutFormat::JsonLines,
    });
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => app::run::run_agent(config, cli.board.as_deref(), stdout, clock),
        Command::Ping => commands::ping(&config, clock),
        Command::Call { cmd, fields } => commands::call(&config, clock, &cmd, &fields),
        Command::Lookup {
            barcode,
            amount_cents,
        } => commands::lookup(config, clock, &barcode, amount_cents),
        Command::Cache { action } => match action {
            CacheAction::Stats => commands::cache_stats(&config),
            CacheAction::Clear => commands::cache_clear(&config),
            CacheAction::Prefetch { event } => commands::cache_prefetch(&config, clock, event),
        },
        Command::Journal {
            action:
                JournalAction::Export {
                    format,
                    since,
                    mask_barcodes,
                    scratch,
                },
        } => {
            let format = match format {
                ExportFormat::Jsonl => Format::Jsonl,
                ExportFormat::Csv => Format::Csv,
            };
            commands::journal_export(&config, format, since, mask_barcodes, scratch)
        }
        Command::Store {
            action: StoreAction::Adopt,
        } => commands::store_adopt(&config),
        Command::Status { format } => {
            commands::status(&config, clock, matches!(format, StatusFormat::Json))
        }
        Command::Venue { action } => venue(&config, action),
    }
}

/// `venue migrate|sync|export` (src/venue/cli.rs).
fn venue(
    config: &concession_agent::config::Config,
    action: VenueAction,
) -> Result<ExitCode, Box<dyn Error>> {
    let Some(settings) = &config.venue else {
        return Err(
            "no venue database configured: add [venue] url = \"postgres://...\" or \
                    set CONCESSION_VENUE_URL (docs/venue.md)"
                .into(),
        );
    };
    #[cfg(feature = "venue")]
    {
        use concession_agent::venue::{cli, VenueError};
        let failed = |e: VenueError| -> Box<dyn Error> {
            match e {
                VenueError::Io(e)
                | VenueError::Store(concession_agent::store::StoreError::Io(e)) => {
                    Box::new(commands::StdoutError(e))
                }
                e => e.into(),
            }
        };
        match action {
            VenueAction::Migrate => {
                println!(
                    "{}",
                    cli::migrate(settings, &config.terminal_id).map_err(failed)?
                )
            }
            VenueAction::Sync => {
                let store = app::open_store(config)?;
                eprintln!("{}", cli::sync(settings, store).map_err(failed)?);
            }
            VenueAction::Export { format, since } => {
                let format = match format {
                    ExportFormat::Jsonl => Format::Jsonl,
                    ExportFormat::Csv => Format::Csv,
                };
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::new(stdout.lock());
                let n = cli::export(
                    settings,
                    &config.terminal_id,
                    format,
                    since.as_deref(),
                    &mut out,
                )
                .map_err(failed)?;
                std::io::Write::flush(&mut out).map_err(commands::StdoutError)?;
                log::info!("exported {n} venue entries");
            }
        }
        Ok(ExitCode::SUCCESS)
    }
    #[cfg(not(feature = "venue"))]
    {
        let _ = (settings, action);
        Err("this build has no venue mode (the `venue` feature)".into())
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
