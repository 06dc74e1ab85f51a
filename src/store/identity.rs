//! Which machine a store belongs to, so that a copied store cannot issue the ids of
//! another terminal.
//!
//! A decision id (`{terminal}-{seq}`) is the idempotency key of reconciliation. A store
//! directory copied to a second terminal (an SD card image, a restored backup) goes on
//! counting from the same sequence number, so both would issue `stand-7-000000000003`
//! for different sales and reconciliation would keep one of them.
//!
//! # The rule
//!
//! - A store records the machine it was created on (`meta/identity`): the configured
//!   `machine_id` (env `CONCESSION_MACHINE_ID`), else `/etc/machine-id`, else
//!   `/var/lib/dbus/machine-id`.
//! - Opening it on another machine is refused ([`StoreError::Cloned`]): nothing is
//!   decided, nothing is written. `journal export` still reads it (it reads a copy).
//! - `concession-agent store adopt` makes it this machine's store deliberately (a
//!   replacement board, a restored backup): it records this machine and gives the
//!   store a new random *issuer tag*, so that every id issued from then on is
//!   `{terminal}.{tag}-{seq}`, which no other copy of the store has issued or will
//!   issue. Ids already in the journal do not change.
//! - A restored backup on the *same* machine cannot be told from the original: adopt
//!   it after restoring (docs/deploy.md says so), or its ids after the backup point
//!   are issued twice.
//! - No machine id at all (no file, an empty or `uninitialized` one): the check is
//!   off and the agent says so in its log. A board whose `/etc/machine-id` is
//!   regenerated at every boot (read-only images) would be refused at every boot: set
//!   `machine_id` in the configuration to a name that stays with the board.

use serde::{Deserialize, Serialize};

use super::error::StoreError;

/// What the store records about who may write it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The machine the store belongs to; `None` when that machine had no id.
    pub machine_id: Option<String>,
    /// Set by adoption: every new decision id carries it (`{terminal}.{tag}-{seq}`).
    pub tag: Option<String>,
}

/// Where the machine id is read from when the configuration names none, in order.
pub const MACHINE_ID_FILES: [&str; 2] = ["/etc/machine-id", "/var/lib/dbus/machine-id"];

/// This machine's id from [`MACHINE_ID_FILES`], or `None` when none is usable.
pub fn this_machine() -> Option<String> {
    MACHINE_ID_FILES.iter().find_map(|p| {
        let text = std::fs::read_to_string(p).ok()?;
        usable(&text)
    })
}

/// A machine id as written in a file or the configuration, trimmed; `None` when empty
/// or systemd's `uninitialized` placeholder.
pub fn usable(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty() && t != "uninitialized").then(|| t.to_string())
}

/// What opening does about the identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// The agent and its commands: refuse a store of another machine.
    Own,
    /// `store adopt`: make the store this machine's, with a new issuer tag.
    Adopt,
    /// A private copy opened to read (export): no check.
    ReadCopy,
}

/// What to do with the recorded identity, given this machine's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Keep it as it is.
    Keep,
    /// Record this (a store that had none: created by an older agent, or adopted).
    Record(Identity),
}

/// The rule of the module docs.
pub(crate) fn judge(
    dir: &std::path::Path,
    recorded: Option<&Identity>,
    machine: Option<&str>,
    access: Access,
    new_tag: impl FnOnce() -> String,
) -> Result<Verdict, StoreError> {
    let machine = machine.map(str::to_string);
    match (access, recorded) {
        (Access::ReadCopy, _) => Ok(Verdict::Keep),
        (Access::Adopt, _) => Ok(Verdict::Record(Identity {
            machine_id: machine,
            tag: Some(new_tag()),
        })),
        (Access::Own, None) => Ok(Verdict::Record(Identity {
            machine_id: machine,
            tag: None,
        })),
        (Access::Own, Some(id)) => match (&id.machine_id, &machine) {
            (Some(was), Some(now)) if was != now => Err(StoreError::Cloned {
                dir: dir.to_path_buf(),
                recorded: was.clone(),
                found: now.clone(),
            }),
            // The store was made where no id was known, and now one is: record it.
            (None, Some(_)) => Ok(Verdict::Record(Identity {
                machine_id: machine,
                tag: id.tag.clone(),
            })),
            _ => Ok(Verdict::Keep),
        },
    }
}

/// A random issuer tag: 6 hex digits (one in 16 million that two adoptions match).
pub(crate) fn random_tag() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    h.write_u128(now.as_nanos());
    h.write_u32(std::process::id());
    format!("{:06x}", h.finish() & 0xff_ffff)
}

/// The prefix of new decision ids: the terminal id, with the issuer tag once adopted.
pub(crate) fn issuer(terminal: &str, identity: Option<&Identity>) -> String {
    match identity.and_then(|i| i.tag.as_deref()) {
        Some(tag) => format!("{terminal}.{tag}"),
        None => terminal.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn id(m: Option<&str>) -> Identity {
        Identity {
            machine_id: m.map(str::to_string),
            tag: None,
        }
    }

    #[test]
    fn another_machines_store_is_refused_and_naming_both_ids() {
        let err = judge(
            Path::new("/s"),
            Some(&id(Some("a"))),
            Some("b"),
            Access::Own,
            || "t".into(),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/s") && msg.contains("store adopt"), "{msg}");
    }

    #[test]
    fn the_same_machine_or_an_unknown_one_keeps_the_identity() {
        for (rec, now) in [(Some("a"), Some("a")), (Some("a"), None), (None, None)] {
            let v = judge(Path::new("/s"), Some(&id(rec)), now, Access::Own, || {
                "t".into()
            });
            assert_eq!(v.unwrap(), Verdict::Keep, "{rec:?} {now:?}");
        }
    }

    #[test]
    fn adoption_records_this_machine_and_a_new_tag() {
        let v = judge(
            Path::new("/s"),
            Some(&id(Some("a"))),
            Some("b"),
            Access::Adopt,
            || "abc123".into(),
        )
        .unwrap();
        let Verdict::Record(i) = v else {
            panic!("{v:?}")
        };
        assert_eq!(i.machine_id.as_deref(), Some("b"));
        assert_eq!(issuer("stand-7", Some(&i)), "stand-7.abc123");
    }

    #[test]
    fn empty_and_uninitialized_machine_ids_are_not_ids() {
        assert_eq!(usable(" \n"), None);
        assert_eq!(usable("uninitialized\n"), None);
        assert_eq!(usable("0123abc\n").as_deref(), Some("0123abc"));
        assert_eq!(random_tag().len(), 6);
    }
}
