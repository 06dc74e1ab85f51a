//! The terminal's status: what venue IT asks of a stand (`concession-agent status`,
//! the metrics textfile, the POS link's status line).
//!
//! sled lets one process open the store, and the running agent is that process. So the
//! agent publishes what it knows as a [`StatusSnapshot`], a small JSON file next to the
//! store's files (`STORE_DIR/status.json`), replaced atomically (written to a temporary
//! file, then renamed) about once a second and on every change of mode. `status` reads
//! that file while the agent holds the store, and the store itself (a read of the
//! journal, the offline usage and the cache) when no agent does. The file holds no
//! barcode but the masked one of the last decision, and no secret.
//!
//! Pure apart from [`write_replacing`], [`read`] and [`from_store`]: the agent builds
//! the snapshot from its own state (`agent::publish`), the text view is
//! [`render_text`].
//!
//! Files: `snapshot` (the types, the file, [`from_store`]), `text` ([`render_text`]),
//! `link` ([`VenueLink`]: the snapshot for the venue heartbeat, the pending uploads).

mod link;
mod snapshot;
mod text;

pub use link::VenueLink;
pub use snapshot::*;
pub use text::{ago, dollars, render_text};
