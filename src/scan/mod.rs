//! Scanner input: framing raw bytes into reads, validating barcodes, and the sources
//! (stdin, serial, TCP) that feed the agent loop.
//!
//! Bytes go through [`frame::Framer`] (line ends, prefix/suffix, AIM identifiers, noise),
//! each read through [`barcode::classify`] into a [`ScanInput`], and a source thread
//! wraps it in a [`ScanEvent`] sent as [`AgentRequest::Scan`] into the one channel the
//! agent loop reads. The POS link ([`crate::pos`]) sends into the same channel.
//!
//! Each file imports only its siblings; this file declares them and re-exports their
//! items, so `crate::scan::ScanEvent` and friends keep their paths.

pub mod barcode;
pub mod event;
pub mod frame;
pub mod source;
pub mod unreadable;

pub use barcode::{classify, Barcode, BarcodeError, SafeTix, ScanInput};
pub(crate) use event::next_conn_id;
pub use event::{AgentRequest, ConnId, Origin, ScanEvent};
pub use frame::{FrameConfig, Framer, DEFAULT_MAX_LEN};
pub use source::{SourceEnd, SourceHandle, SourceOptions};
pub use unreadable::{Unreadable, UnreadableReason};
