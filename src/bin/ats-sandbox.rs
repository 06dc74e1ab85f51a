//! `ats-sandbox`: the ATS emulator as a stand-alone server (see docs/sandbox.md).
//!
//! The first line on stdout is exactly `listening on http://HOST:PORT` (or `https://`),
//! flushed, so scripts can start it on port 0 and read the address.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use concession_agent::sandbox::{write_self_signed, DataSet, Sandbox, SandboxConfig, TlsPem};

/// Emulates Ticketmaster's Archtics Transaction Services (ATS) for development and demos.
#[derive(Debug, Parser)]
#[command(name = "ats-sandbox", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Data set JSON (default: the built-in config/sandbox-data.json).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Add N generated EVENT01 tickets (200000000000 + i, $10.00 each).
    #[arg(long, default_value_t = 0)]
    generate: usize,
    /// Serve HTTPS with this PEM certificate chain (needs --key).
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// The PEM private key for --cert.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Write a demo CA (ca.pem) and server cert (server.pem, server.key) into DIR and
    /// serve HTTPS with them.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["cert", "key"])]
    tls_self_signed: Option<PathBuf>,
    /// Calls allowed per minute.
    #[arg(long, default_value_t = 80)]
    rate_per_minute: u32,
    /// Calls allowed per day.
    #[arg(long, default_value_t = 5000)]
    rate_per_day: u32,
    /// The valid API key.
    #[arg(long, default_value = "sandbox-key")]
    apikey: String,
    /// The DSN the key may use.
    #[arg(long, default_value = "apigee")]
    dsn: String,
    /// Minutes east of UTC used to decide which day is "today".
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    utc_offset_minutes: i32,
    /// Print the SafeTix payload BARCODE's phone shows now and exit (valid for 60 s in
    /// any sandbox, the in-process one of the demo included).
    #[arg(long, value_name = "BARCODE")]
    safetix: Option<String>,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .target(env_logger::Target::Stderr)
        .init();
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ats-sandbox: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut data = match &args.data {
        Some(p) => DataSet::from_file(p)?,
        None => DataSet::builtin(),
    };
    if let Some(barcode) = &args.safetix {
        let now = concession_agent::clock::system().wall_ms();
        let payload = concession_agent::sandbox::payload_for(&data, barcode, now)
            .ok_or_else(|| format!("no ticket {barcode} in the data set"))?;
        println!("{payload}");
        return Ok(());
    }
    if args.generate > 0 {
        let t0 = std::time::Instant::now();
        data.generate(args.generate);
        log::info!(
            "generated {} tickets in {} ms",
            args.generate,
            t0.elapsed().as_millis()
        );
    }
    let tls = match (&args.cert, &args.key, &args.tls_self_signed) {
        (Some(c), Some(k), _) => Some(TlsPem::from_files(c, k)?),
        (_, _, Some(dir)) => {
            let (ca, pem) = write_self_signed(dir)?;
            eprintln!("ats-sandbox: clients should trust {}", ca.display());
            Some(pem)
        }
        _ => None,
    };
    let cfg = SandboxConfig {
        listen: args.listen,
        apikey: args.apikey,
        dsn: args.dsn,
        data,
        tls,
        rate_per_minute: args.rate_per_minute,
        rate_per_day: args.rate_per_day,
        utc_offset_minutes: args.utc_offset_minutes,
        ..SandboxConfig::default()
    };
    let handle = Sandbox::start(cfg)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on {}", handle.base_url())?;
    out.flush()?;
    drop(out);
    loop {
        std::thread::park();
    }
}
