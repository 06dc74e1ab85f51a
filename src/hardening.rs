//! Process-wide protections set once at start-up (issue 11, items 7 and 8).
//!
//! - **Not dumpable** ([`set_non_dumpable`]): the API key and full barcodes live in the
//!   agent's memory, so a core dump (a crash, `gcore`, a debugger attached by the same
//!   user) must not copy them to disk. Linux only; the systemd unit also sets
//!   `LimitCORE=0`.
//! - **SIGHUP ignored** ([`ignore_hangup`]): a hang-up (a closed terminal or SSH session,
//!   `systemctl kill -s HUP`, a `kill -HUP` meant as "reload") would otherwise end the
//!   process at once, without the `stopping` status and with the outputs left on, and
//!   systemd's `Restart=on-failure` does not restart a death by SIGHUP. The agent has no
//!   live reload: a changed configuration takes a restart (SIGTERM, or
//!   `systemctl restart`). Each SIGHUP is logged and otherwise changes nothing.

use std::io;

/// Marks the process not dumpable: no core file, no `ptrace` attach without
/// `CAP_SYS_PTRACE`, `/proc/<pid>/mem` closed to the user. A no-op off Linux.
pub fn set_non_dumpable() {
    #[cfg(target_os = "linux")]
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        // Nothing to do about it but say so: the unit's LimitCORE=0 still holds.
        log::warn!("cannot mark the process non-dumpable: {e}");
    }
}

/// True when the process may be dumped (always true off Linux: nothing was changed).
pub fn is_dumpable() -> bool {
    #[cfg(target_os = "linux")]
    {
        !matches!(
            rustix::process::dumpable_behavior(),
            Ok(rustix::process::DumpableBehavior::NotDumpable)
        )
    }
    #[cfg(not(target_os = "linux"))]
    {
        true
    }
}

/// Replaces SIGHUP's default action (terminate) with a log line, from a small
/// background thread that lives as long as the process.
pub fn ignore_hangup() -> io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
    std::thread::Builder::new()
        .name("sighup".into())
        .spawn(move || {
            for _ in signals.forever() {
                log::warn!(
                    "SIGHUP ignored: the agent does not reload its configuration; \
                     restart it (SIGTERM, systemctl restart) to apply changes"
                );
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn the_process_is_not_dumpable_after_set_non_dumpable() {
        set_non_dumpable();
        assert!(!is_dumpable());
    }
}
