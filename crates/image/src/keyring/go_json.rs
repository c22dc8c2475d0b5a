//! JSON reading with the two Go `encoding/json` habits that docker configs rely on, and
//! error texts that never quote the document (it holds passwords).

use serde_json::{Map, Value};

/// A JSON document that could not be parsed. Only the position and the kind of problem are
/// kept: serde's own messages may quote string values, which here would be secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON: {kind} at line {line} column {column}")]
pub struct JsonSyntaxError {
    pub kind: &'static str,
    pub line: usize,
    pub column: usize,
}

impl From<serde_json::Error> for JsonSyntaxError {
    fn from(error: serde_json::Error) -> Self {
        let kind = match error.classify() {
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Eof => "unexpected end of input",
            serde_json::error::Category::Data => "unexpected value",
            serde_json::error::Category::Io => "read error",
        };
        Self {
            kind,
            line: error.line(),
            column: error.column(),
        }
    }
}

pub fn parse_document(bytes: &[u8]) -> Result<Value, JsonSyntaxError> {
    Ok(serde_json::from_slice(bytes)?)
}

/// Looks a field up the way Go fills struct fields: an exact key first, otherwise any key that
/// differs only in ASCII case (`"Auths"` fills `auths`).
pub fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).or_else(|| {
        object
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    })
}

/// A value of another JSON type than the Go field it fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrongJsonType;

/// A string field: absent and `null` read as empty (Go's zero value); any other JSON type is
/// an error, as in Go.
pub fn string_field(object: &Map<String, Value>, name: &str) -> Result<String, WrongJsonType> {
    match field(object, name) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(_) => Err(WrongJsonType),
    }
}
