//! `venue migrate|sync|export|status|dashboard`: the venue database's subcommands
//! (src/venue/cli.rs, heartbeat.rs and dashboard.rs do the work; docs/venue.md).

use std::error::Error;
use std::process::ExitCode;

#[cfg(feature = "venue")]
use super::cli::ExportFormat;
use super::cli::VenueAction;
#[cfg(feature = "venue")]
use crate::app;
#[cfg(feature = "venue")]
use crate::store::Format;

/// `venue migrate|sync|export` (src/venue/cli.rs).
pub fn venue(
    config: &crate::config::Config,
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
        use crate::venue::{cli, VenueError};
        let failed = |e: VenueError| -> Box<dyn Error> {
            match e {
                VenueError::Io(e) | VenueError::Store(crate::store::StoreError::Io(e)) => {
                    Box::new(super::stdout::StdoutError(e))
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
                std::io::Write::flush(&mut out).map_err(super::stdout::StdoutError)?;
                log::info!("exported {n} venue entries");
            }
            VenueAction::Status {
                format,
                silent_after_s,
            } => {
                use crate::venue::heartbeat;
                let report = heartbeat::status_now(
                    settings,
                    &format!("concession-agent {} (venue status)", config.terminal_id),
                    std::time::Duration::from_secs(silent_after_s),
                    config.utc_offset_minutes,
                )
                .map_err(failed)?;
                let text = match format {
                    super::cli::StatusFormat::Text => heartbeat::render_report(&report),
                    super::cli::StatusFormat::Json => {
                        let mut t = serde_json::to_string_pretty(&report)?;
                        t.push('\n');
                        t
                    }
                };
                let stdout = std::io::stdout();
                let mut out = stdout.lock();
                std::io::Write::write_all(&mut out, text.as_bytes())
                    .and_then(|()| std::io::Write::flush(&mut out))
                    .map_err(super::stdout::StdoutError)?;
            }
            VenueAction::Dashboard {
                listen,
                token_file,
                silent_after_s,
            } => {
                use crate::venue::dashboard;
                let listen: std::net::SocketAddr = listen.parse().map_err(|e| {
                    format!("--listen {listen:?}: {e} (an address such as 127.0.0.1:8088)")
                })?;
                let token = token_file
                    .as_deref()
                    .map(dashboard::read_token)
                    .transpose()?;
                let opts = dashboard::DashboardOptions {
                    listen,
                    token,
                    silent_after: std::time::Duration::from_secs(silent_after_s),
                    utc_offset_minutes: config.utc_offset_minutes,
                };
                let listener = dashboard::bind(&opts)?;
                let addr = listener.local_addr()?;
                println!("listening on http://{addr}");
                std::io::Write::flush(&mut std::io::stdout())
                    .map_err(super::stdout::StdoutError)?;
                dashboard::serve(
                    listener,
                    settings.clone(),
                    format!("concession-agent {} (venue dashboard)", config.terminal_id),
                    opts,
                )?;
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

/// `cache prefetch` in venue mode: the cache gets the venue's copy of the events, through
/// each event's lease (venue/background.rs): this terminal pages ATS only when it takes
/// the lease, else it waits for the holder's pass and copies it. No event named and none
/// configured: refused (the lease is per event).
#[cfg(feature = "venue")]
pub fn cache_prefetch_via_venue(
    config: &crate::config::Config,
    ats: &std::sync::Arc<crate::ats::AtsClient>,
    store: &crate::store::Store,
    clock: crate::clock::SharedClock,
    events: Vec<String>,
) -> Result<ExitCode, Box<dyn Error>> {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::time::Duration;

    use crate::venue::background::FetchPlan;
    use crate::venue::prefetch::prefetch_via_venue;
    let Some(settings) = &config.venue else {
        return Err("no venue database configured".into());
    };
    if events.is_empty() {
        return Err(
            "venue mode fetches by event: name one (--event NAME) or set events = [...]".into(),
        );
    }
    crate::venue::migrate_now(settings, "concession-agent cache prefetch")?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| format!("signal handler: {e}"))?;
    }
    let plan = FetchPlan {
        events: events.clone(),
        at_start: true,
        refresh_interval: config.cache.refresh_interval,
        // The operator's prefetch takes the budget freely, as without the venue.
        reserve_per_minute: 0,
        lease: settings.lease,
        sync_interval: settings.sync_interval,
    };
    let status = prefetch_via_venue(
        settings,
        plan,
        Arc::clone(ats),
        store.clone(),
        clock,
        stop,
        Duration::from_secs(15 * 60),
    )?;
    store.flush()?;
    for e in &events {
        println!("{e}: copied from the venue");
    }
    eprintln!(
        "{} ticket rows copied from the venue ticket table; {} pages fetched from ATS by \
         this terminal",
        status.copied_rows, status.pages
    );
    Ok(ExitCode::SUCCESS)
}
