//! Every wire mapping of the ATS envelope and of the modeled commands, in one place.
//!
//! `verify_barcode` and `get_av_barcodes` are not publicly documented (see
//! `docs/ats-wire.md` section 6): an integrator holding the partner documentation
//! adjusts field names, codes and quirks here and nowhere else.
//!
//! Decoding is lenient about form and strict about meaning: numbers may arrive as
//! strings and the reverse, keys are matched case-insensitively (`count`/`Count`),
//! unknown fields are kept (`extra`), but negative or malformed amounts, wrong types
//! and absurd lengths are a typed [`AtsError::Decode`](crate::ats::AtsError::Decode), never a panic and never value.
//!
//! One file per part: `envelope` (request body, response `header`/`command1`, result
//! codes), `fields` (lenient reading and plausibility limits), and one per command
//! family: `verify`, `av`, `events`, `ping`. Their items are re-exported here, so
//! callers name them `wire::ITEM`.

mod av;
mod envelope;
mod events;
pub(crate) mod fields;
mod ping;
mod verify;

#[cfg(test)]
mod tests;

pub use av::{
    av_barcode_fields, av_event_fields, decode_av_chunk, AvChunk, AvRow, AV_EVENT_NOT_FOUND,
    AV_NOT_FOUND, CMD_GET_AV_BARCODES,
};
pub use envelope::{
    check_result, is_no_data_for_token, parse_envelope, request_body, Envelope,
    HEADER_ARCHTICS_VERSION, HEADER_SRC_SYS_TYPE, HEADER_VER, NO_DATA_FOR_TOKEN, SQL_NO_ROWS,
};
pub use events::{
    decode_events, event_search_fields, EventSummary, CMD_EVENT_SEARCH, EVENT_SEARCH_NONE,
};
pub use fields::{
    get_ci, shorten, MAX_BARCODE, MAX_ITEM_UNITS, MAX_MONEY_CENTS, MAX_ROWS_PER_ANSWER, MAX_TEXT,
};
pub use ping::{server_clock_ms, CMD_PING, CMD_TEST_POLLING};
pub use verify::{
    decode_verify, ticket_status, verify_fields, VerifyAnswer, CMD_VERIFY_BARCODE, VERIFY_NOT_FOUND,
};

/// True when a non-zero `result` means "no such barcode" (the lookup commands answer
/// an unknown barcode with their not-found code or with `sql_code` 100).
pub fn is_not_found(code: i64, sql_code: i64) -> bool {
    code == VERIFY_NOT_FOUND || code == AV_NOT_FOUND || sql_code == SQL_NO_ROWS
}
