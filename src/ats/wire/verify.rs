//! `verify_barcode` (modeled): what one ticket is.

use serde_json::{json, Map, Value};

use super::fields::{Fields, MAX_BARCODE, MAX_TEXT};
use crate::ats::error::AtsError;
use crate::ticket::{TicketInfo, TicketStatus};

/// `verify_barcode` (modeled).
pub const CMD_VERIFY_BARCODE: &str = "verify_barcode";
/// `verify_barcode`: barcode not found.
pub const VERIFY_NOT_FOUND: i64 = 5301;

/// `verify_barcode` input fields.
pub fn verify_fields(barcode: &str, event_name: Option<&str>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("barcode".into(), json!(barcode));
    if let Some(e) = event_name {
        m.insert("event_name".into(), json!(e));
    }
    m
}

/// The answer to `verify_barcode`.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyAnswer {
    /// The ticket, in the domain model.
    pub info: TicketInfo,
    /// Every `command1` field this mapping does not read (and the envelope fields).
    pub extra: Map<String, Value>,
}

/// Decodes a successful `verify_barcode` `command1`. `requested` fills a missing
/// `barcode`.
pub fn decode_verify(c1: &Map<String, Value>, requested: &str) -> Result<VerifyAnswer, AtsError> {
    let mut f = Fields::new(c1, "command1");
    let barcode = f
        .text("barcode", MAX_BARCODE)?
        .unwrap_or_else(|| requested.to_string());
    let event_name = f.required_text("event_name", MAX_TEXT)?;
    let event_date = f.text("event_date", MAX_TEXT)?;
    let event_time = f.text("event_time", MAX_TEXT)?;
    let acct_id = f.unsigned("acct_id")?;
    let section_name = f.text("section_name", MAX_TEXT)?;
    let row_name = f.text("row_name", MAX_TEXT)?;
    let seat_num = f.text("seat_num", MAX_TEXT)?;
    let price_code = f.text("price_code", MAX_TEXT)?;
    let status = ticket_status(&f.required_text("ticket_status", MAX_TEXT)?);
    Ok(VerifyAnswer {
        info: TicketInfo {
            barcode,
            event_name,
            event_date,
            event_time,
            acct_id,
            section_name,
            row_name,
            seat_num,
            price_code,
            status,
        },
        extra: f.rest(),
    })
}

/// `ticket_status` text to the domain status.
pub fn ticket_status(s: &str) -> TicketStatus {
    match s.to_ascii_uppercase().as_str() {
        "ACTIVE" => TicketStatus::Active,
        "VOID" | "VOIDED" => TicketStatus::Void,
        "REISSUED" => TicketStatus::Reissued,
        "RETURNED" => TicketStatus::Returned,
        _ => TicketStatus::Other(s.to_string()),
    }
}
