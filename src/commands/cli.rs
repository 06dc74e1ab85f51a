//! The command line's shape (clap): what `main.rs` parses. Kept in the library so the
//! subcommands and their help text are one place, and `main.rs` only parses and
//! dispatches.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "concession-agent",
    version,
    about = "Redeems Ticketmaster Archtics loaded value at concession stands"
)]
pub struct Cli {
    /// Configuration file (default: config/agent.toml, or the built-in demo config).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Board profile (boards/*.toml): scanner, outputs, GPIO.
    #[arg(long, global = true)]
    pub board: Option<PathBuf>,
    /// Decision output on stdout when running: console text or JSON lines.
    #[arg(long, value_enum, global = true)]
    pub pos: Option<PosFormat>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
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
pub enum StatusFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum VenueAction {
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
    /// Every terminal's last heartbeat: last seen, state (a terminal not heard from for
    /// `--silent-after-s` is silent), mode, pending uploads, offline exposure, today's
    /// totals, overdrafts since the venue day began, ATS budget.
    Status {
        /// text (for people) or json.
        #[arg(long, value_enum, default_value = "text")]
        format: StatusFormat,
        /// Seconds without a heartbeat after which a terminal is silent.
        #[arg(long, default_value_t = 15)]
        silent_after_s: u64,
    },
    /// Serve the venue status as a self-refreshing web page; prints
    /// `listening on http://HOST:PORT` first. Loopback by default; any other address
    /// needs --token-file (open the page as http://HOST:PORT/#token=TOKEN).
    Dashboard {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8088")]
        listen: String,
        /// A file holding the secret every request for data must carry (at least 16
        /// printable characters). Required for a non-loopback address.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Seconds without a heartbeat after which a terminal is silent.
        #[arg(long, default_value_t = 15)]
        silent_after_s: u64,
    },
}

#[derive(Subcommand)]
pub enum StoreAction {
    /// Make a store that another machine recorded this terminal's own (a replaced
    /// board, a restored backup): new decision ids get a new issuer tag, so they differ
    /// from every id any other copy of the store issued. Never for a store that another
    /// running terminal also uses: give that terminal its own store instead.
    Adopt,
}

#[derive(Subcommand)]
pub enum CacheAction {
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
pub enum JournalAction {
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
pub enum PosFormat {
    Console,
    Jsonl,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}
