//! The POS link: JSON lines, both ways, over TCP (docs/pos-protocol.md).
//!
//! The POS connects to the agent's `pos_listen` address and sends one request per line:
//! `{"type":"scan","barcode":"...","amount_cents":500,"request_id":"r1"}`,
//! `{"type":"void","decision_id":"...","request_id":"r2"}`, `{"type":"ping"}`, or a
//! plain barcode line (a scan without amount). [`PosServer`] turns requests into
//! [`AgentRequest`](crate::scan::AgentRequest)s on the agent's channel; [`PosSignal`] writes the answers back
//! (`decision`, `void_result`, `status` lines) to the client that asked, or to every
//! client for scans made at the stand's own scanner. A malformed request gets an
//! `{"type":"error",...}` line; the connection stays open.
//!
//! Routing: every forwarded request carries a request id (the client's, or one the
//! server assigns: `pos<conn>-<n>`), remembered with the connection it came from. The
//! agent puts it in `DecisionEvent::request` / `VoidEvent::request_id`, and
//! [`PosSignal`] sends the line to that connection (first-in first-out when two clients
//! reuse the same id: the agent loop answers in the order requests arrive). A request
//! whose client has gone is answered nowhere (and logged).
//!
//! Threads: one accept thread, and per client a reader and a writer. Signals never
//! block: lines go to the writer through a bounded queue, and a client whose queue is
//! full (it stopped reading) is disconnected.
//!
//! Hostile clients (issue 11): a void is taken only from a connection that was told of
//! the decision, or one that presented the link's token (`auth`); a non-loopback
//! address needs a token; a request line (and, with a token, `auth`) must come within
//! the line timeout; a client idle that long may be closed to make room at the cap; and
//! each connection's scans go through its own token bucket, so one client cannot spend
//! the stand's ATS budget.

mod link;
mod options;
mod request;
mod routing;
mod server;
mod signal;

pub use options::{JournalLookup, PosOptions};
pub use request::{
    auth_line, error_line, parse_line, pong_line, pong_line_with, PosRequest, Rejected,
    RequestError, MAX_AMOUNT_CENTS, MAX_BARCODE_FIELD, MAX_DECISION_ID, MAX_LINE, MAX_REQUEST_ID,
    MAX_TOKEN,
};
pub use routing::OWNERS_KEPT;
pub use server::{PosError, PosServer};
pub use signal::PosSignal;
