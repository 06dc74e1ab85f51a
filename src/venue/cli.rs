//! The `concession-agent venue ...` commands, for `main.rs` to call.
//!
//! - `venue migrate`: applies the migrations (advisory lock), prints what it did.
//! - `venue sync`: uploads this terminal's pending decisions; `Ok` only when none is left.
//!   It opens the store, so run it while the agent is stopped (the running agent uploads
//!   by itself as soon as the database answers).
//! - `venue export`: every decision and void of every terminal (`db::export`).

use std::io::Write;

use super::config::VenueSettings;
use super::error::VenueError;
use super::worker::VenueHandle;
use crate::store::{Format, Store};

fn app(terminal: &str) -> String {
    format!("concession-agent {terminal} (cli)")
}

/// `venue migrate`: a line for stdout.
pub fn migrate(settings: &VenueSettings, terminal: &str) -> Result<String, VenueError> {
    let applied = migrate_now(settings, &app(terminal))?;
    Ok(if applied.is_empty() {
        format!("venue schema current (version {})", super::schema::LATEST)
    } else {
        format!(
            "venue schema migrated: applied {}",
            applied
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// `venue sync`: uploads everything pending. `Ok` with a summary when nothing is left;
/// `Err` with the reason otherwise.
pub fn sync(settings: &VenueSettings, store: Store) -> Result<String, VenueError> {
    let wait = settings.start_timeout;
    let handle = VenueHandle::start(settings.clone(), store)?;
    let r = handle.start_up(true, wait);
    let status = handle.status();
    handle.shutdown(std::time::Duration::from_millis(500));
    let r = r?;
    if r.pending > 0 {
        return Err(VenueError::Away(format!(
            "{} entries still pending{}",
            r.pending,
            status
                .last_error
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        )));
    }
    Ok(format!(
        "venue sync: {} entries uploaded ({} overdrafts), none pending",
        r.uploaded, r.overdrafts
    ))
}

/// `venue export`: returns how many rows.
pub fn export(
    settings: &VenueSettings,
    terminal: &str,
    format: Format,
    since: Option<&str>,
    out: &mut dyn Write,
) -> Result<u64, VenueError> {
    export_now(settings, &app(terminal), format, since, out)
}

/// Connects from a `venue` CLI command (blocking is fine there) and applies the
/// migrations. Returns the versions applied.
pub fn migrate_now(settings: &VenueSettings, app: &str) -> Result<Vec<i32>, VenueError> {
    let mut client = super::connect::connect(settings, app)?;
    super::schema::migrate(&mut client)
}

/// `venue export` from a CLI command.
pub fn export_now(
    settings: &VenueSettings,
    app: &str,
    format: crate::store::Format,
    since: Option<&str>,
    out: &mut dyn std::io::Write,
) -> Result<u64, VenueError> {
    let mut client = super::connect::connect(settings, app)?;
    let v = super::schema::current_version(&mut client)?;
    if v > super::schema::LATEST {
        return Err(VenueError::FutureSchema {
            found: v,
            known: super::schema::LATEST,
        });
    }
    super::db::export(&mut client, format, since, out)
}
