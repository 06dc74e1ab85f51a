//! `venue migrate|sync|export`: the venue database's subcommands (src/venue/cli.rs
//! does the work; docs/venue.md).

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
                    Box::new(super::StdoutError(e))
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
                std::io::Write::flush(&mut out).map_err(super::StdoutError)?;
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
