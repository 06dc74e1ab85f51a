//! JSON helpers of the sandbox: scalar text, command maps and the response envelope.

use serde_json::{json, Map, Value};

/// The ATS version string the sandbox reports in `header.ats_version`.
pub const ATS_VERSION: &str = "4.23.3";

/// Text of a JSON scalar (strings as-is, numbers printed).
pub(crate) fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.trim().to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A command1 map from `(key, value)` pairs.
pub(crate) fn obj(pairs: Vec<(&str, Value)>) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Builds the response envelope around command output.
pub(crate) fn envelope(
    header: Option<&Value>,
    cmd1: &Map<String, Value>,
    out: Map<String, Value>,
) -> Value {
    let mut h = match header {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    h.insert("ats_version".into(), json!(ATS_VERSION));
    h.insert("result".into(), json!(0));
    let mut c = Map::new();
    c.insert(
        "cmd".into(),
        cmd1.get("cmd").cloned().unwrap_or(Value::Null),
    );
    if let Some(r) = cmd1.get("ref") {
        c.insert("ref".into(), r.clone());
    }
    c.extend(out);
    json!({"header": Value::Object(h), "command1": Value::Object(c)})
}
