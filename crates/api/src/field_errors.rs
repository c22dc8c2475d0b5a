//! Field-level validation errors, printed exactly as the Kubernetes API server prints them.
//!
//! kubectl shows the server's text verbatim (`The Pod "x" is invalid: spec.containers[0].image:
//! Required value`), and scripts grep for it, so the wording, the quoting (Go's `%q`) and the
//! aggregation (`[a, b]`, duplicates dropped) follow apimachinery's `field.Error` and
//! `utilerrors.Aggregate`.

use std::fmt;

use crate::k8s::apimachinery::pkg::apis::meta::v1::StatusCause;

/// A field path such as `spec.containers[0].image`, built the way apimachinery's
/// `field.Path` builds it: children joined with `.`, list indexes and map keys in brackets
/// (keys are not quoted).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Path(String);

impl Path {
    /// A path starting at `name` (e.g. `spec`).
    pub fn new(name: &str) -> Path {
        Path(name.to_owned())
    }

    /// The empty path; upstream uses it for errors about a whole object.
    pub fn root() -> Path {
        Path(String::new())
    }

    /// `self.name`.
    pub fn child(&self, name: &str) -> Path {
        if self.0.is_empty() {
            Path(name.to_owned())
        } else {
            Path(format!("{}.{name}", self.0))
        }
    }

    /// `self[index]`.
    pub fn index(&self, index: usize) -> Path {
        Path(format!("{}[{index}]", self.0))
    }

    /// `self[key]` (map keys are printed bare, like upstream).
    pub fn key(&self, key: &str) -> Path {
        Path(format!("{}[{key}]", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kind of a field error; each has a fixed label in messages and a `reason` in
/// `Status.details.causes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    NotFound,
    Required,
    Duplicate,
    Invalid,
    NotSupported,
    Forbidden,
    TooLong,
    TooMany,
    Internal,
}

impl ErrorKind {
    /// The text in messages, e.g. `Required value`.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "Not found",
            ErrorKind::Required => "Required value",
            ErrorKind::Duplicate => "Duplicate value",
            ErrorKind::Invalid => "Invalid value",
            ErrorKind::NotSupported => "Unsupported value",
            ErrorKind::Forbidden => "Forbidden",
            ErrorKind::TooLong => "Too long",
            ErrorKind::TooMany => "Too many",
            ErrorKind::Internal => "Internal error",
        }
    }

    /// The machine-readable cause type, e.g. `FieldValueRequired`.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "FieldValueNotFound",
            ErrorKind::Required => "FieldValueRequired",
            ErrorKind::Duplicate => "FieldValueDuplicate",
            ErrorKind::Invalid => "FieldValueInvalid",
            ErrorKind::NotSupported => "FieldValueNotSupported",
            ErrorKind::Forbidden => "FieldValueForbidden",
            ErrorKind::TooLong => "FieldValueTooLong",
            ErrorKind::TooMany => "FieldValueTooMany",
            ErrorKind::Internal => "InternalError",
        }
    }
}

/// The offending value. Upstream prints strings with `%q`, numbers and booleans bare, and
/// structs with `%#v`; `Raw` carries text that is already formatted (e.g. a Go struct dump).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadValue {
    /// Not shown at all (Required, Forbidden, TooLong, Internal, or omitted on purpose).
    Omitted,
    /// A nil pointer: printed `null`.
    Null,
    Str(String),
    Int(i64),
    Bool(bool),
    Raw(String),
}

impl From<&str> for BadValue {
    fn from(v: &str) -> Self {
        BadValue::Str(v.to_owned())
    }
}
impl From<String> for BadValue {
    fn from(v: String) -> Self {
        BadValue::Str(v)
    }
}
impl From<&String> for BadValue {
    fn from(v: &String) -> Self {
        BadValue::Str(v.clone())
    }
}
impl From<i64> for BadValue {
    fn from(v: i64) -> Self {
        BadValue::Int(v)
    }
}
impl From<i32> for BadValue {
    fn from(v: i32) -> Self {
        BadValue::Int(v.into())
    }
}
impl From<bool> for BadValue {
    fn from(v: bool) -> Self {
        BadValue::Bool(v)
    }
}

/// One field error: `<field>: <label>[: <value>][: <detail>]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub kind: ErrorKind,
    pub field: String,
    pub value: BadValue,
    pub detail: String,
}

impl FieldError {
    fn new(kind: ErrorKind, field: &Path, value: BadValue, detail: impl Into<String>) -> Self {
        FieldError {
            kind,
            field: field.0.clone(),
            value,
            detail: detail.into(),
        }
    }

    pub fn required(field: &Path, detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Required, field, BadValue::Omitted, detail)
    }

    pub fn invalid(field: &Path, value: impl Into<BadValue>, detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, field, value.into(), detail)
    }

    /// `Unsupported value: "x": supported values: "a", "b"` (each supported value `%q`-quoted).
    pub fn not_supported(field: &Path, value: impl Into<BadValue>, supported: &[&str]) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(ErrorKind::NotSupported, field, value.into(), detail)
    }

    pub fn forbidden(field: &Path, detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, field, BadValue::Omitted, detail)
    }

    pub fn duplicate(field: &Path, value: impl Into<BadValue>) -> Self {
        Self::new(ErrorKind::Duplicate, field, value.into(), "")
    }

    pub fn not_found(field: &Path, value: impl Into<BadValue>) -> Self {
        Self::new(ErrorKind::NotFound, field, value.into(), "")
    }

    /// `Too long: may not be more than N bytes` (the 1.3x wording; older servers said
    /// `must have at most N bytes`).
    pub fn too_long(field: &Path, max_bytes: usize) -> Self {
        let unit = if max_bytes == 1 { "byte" } else { "bytes" };
        Self::new(
            ErrorKind::TooLong,
            field,
            BadValue::Omitted,
            format!("may not be more than {max_bytes} {unit}"),
        )
    }

    /// `Too many: <actual>: must have at most N items`.
    pub fn too_many(field: &Path, actual: usize, max: usize) -> Self {
        let unit = if max == 1 { "item" } else { "items" };
        Self::new(
            ErrorKind::TooMany,
            field,
            BadValue::Int(actual as i64),
            format!("must have at most {max} {unit}"),
        )
    }

    pub fn internal(field: &Path, detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, field, BadValue::Omitted, detail)
    }

    /// The message without the field, as used in `StatusCause.message`.
    pub fn body(&self) -> String {
        let mut s = String::from(self.kind.label());
        let show_value = !matches!(
            self.kind,
            ErrorKind::Required | ErrorKind::Forbidden | ErrorKind::TooLong | ErrorKind::Internal
        );
        if show_value {
            match &self.value {
                BadValue::Omitted => {}
                BadValue::Null => s.push_str(": null"),
                BadValue::Str(v) => {
                    s.push_str(": ");
                    s.push_str(&go_quote(v));
                }
                BadValue::Int(v) => s.push_str(&format!(": {v}")),
                BadValue::Bool(v) => s.push_str(&format!(": {v}")),
                BadValue::Raw(v) => {
                    s.push_str(": ");
                    s.push_str(v);
                }
            }
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }

    /// The `details.causes` entry for this error.
    pub fn to_cause(&self) -> StatusCause {
        StatusCause {
            reason: Some(self.kind.reason().to_owned()),
            message: Some(self.body()),
            field: Some(self.field.clone()),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

impl std::error::Error for FieldError {}

/// An ordered list of field errors (apimachinery's `field.ErrorList`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    pub fn new() -> Self {
        FieldErrors(Vec::new())
    }

    pub fn push(&mut self, e: FieldError) {
        self.0.push(e);
    }

    pub fn extend(&mut self, other: FieldErrors) {
        self.0.extend(other.0);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, FieldError> {
        self.0.iter()
    }

    /// Each error's text, in order (repeats kept, unlike [`FieldErrors::aggregate`]).
    pub fn messages(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    /// The aggregate text: one error bare, several as `[e1, e2]`, repeated texts once.
    /// `None` when empty.
    pub fn aggregate(&self) -> Option<String> {
        let mut seen: Vec<String> = Vec::new();
        for e in &self.0 {
            let s = e.to_string();
            if !seen.contains(&s) {
                seen.push(s);
            }
        }
        match seen.len() {
            0 => None,
            1 => seen.pop(),
            _ => Some(format!("[{}]", seen.join(", "))),
        }
    }

    /// The 422 message: `Pod "x" is invalid: <aggregate>`. `qualified_kind` is the kind, with
    /// `.group` appended for non-core groups (`RuntimeClass.node.k8s.io`).
    pub fn invalid_message(&self, qualified_kind: &str, name: &str) -> String {
        match self.aggregate() {
            Some(agg) => format!("{qualified_kind} {} is invalid: {agg}", go_quote(name)),
            None => format!("{qualified_kind} {} is invalid", go_quote(name)),
        }
    }

    /// The `details.causes` entries, one per error (not de-duplicated, as upstream).
    pub fn causes(&self) -> Vec<StatusCause> {
        self.0.iter().map(FieldError::to_cause).collect()
    }
}

impl From<Vec<FieldError>> for FieldErrors {
    fn from(v: Vec<FieldError>) -> Self {
        FieldErrors(v)
    }
}

impl FromIterator<FieldError> for FieldErrors {
    fn from_iter<I: IntoIterator<Item = FieldError>>(iter: I) -> Self {
        FieldErrors(iter.into_iter().collect())
    }
}

impl IntoIterator for FieldErrors {
    type Item = FieldError;
    type IntoIter = std::vec::IntoIter<FieldError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a FieldErrors {
    type Item = &'a FieldError;
    type IntoIter = std::slice::Iter<'a, FieldError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.aggregate().unwrap_or_default())
    }
}

impl std::error::Error for FieldErrors {}

/// Go's `strconv.Quote` (`%q`), as the API's messages quote names and values.
pub use nodelet_goquote::go_quote;

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Path {
        let mut path = Path::root();
        for part in s.split('.') {
            path = path.child(part);
        }
        path
    }

    #[test]
    fn paths_are_built_like_upstream() {
        let cases = [
            (
                Path::new("spec")
                    .child("containers")
                    .index(0)
                    .child("image"),
                "spec.containers[0].image",
            ),
            (
                Path::new("metadata").child("labels").key("app"),
                "metadata.labels[app]",
            ),
            (Path::root().child("handler"), "handler"),
            (
                Path::new("data").key(".dockerconfigjson"),
                "data[.dockerconfigjson]",
            ),
        ];
        for (path, want) in cases {
            assert_eq!(path.to_string(), want);
        }
    }

    #[test]
    fn errors_print_like_upstream() {
        let cases: Vec<(FieldError, &str)> = vec![
            (
                FieldError::required(&p("spec.containers").index(0).child("image"), ""),
                "spec.containers[0].image: Required value",
            ),
            (
                FieldError::required(
                    &p("spec").child("volumes").index(0),
                    "must specify a volume type",
                ),
                "spec.volumes[0]: Required value: must specify a volume type",
            ),
            (
                FieldError::invalid(&p("metadata.name"), "Foo", "bad"),
                "metadata.name: Invalid value: \"Foo\": bad",
            ),
            (
                FieldError::not_supported(
                    &p("spec.restartPolicy"),
                    "Sometimes",
                    &["Always", "OnFailure", "Never"],
                ),
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            ),
            (
                FieldError::invalid(
                    &p("spec.containers")
                        .index(0)
                        .child("ports")
                        .index(0)
                        .child("containerPort"),
                    70000,
                    "must be between 1 and 65535, inclusive",
                ),
                "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            ),
            (
                FieldError::duplicate(&p("spec.containers").index(1).child("name"), "a"),
                "spec.containers[1].name: Duplicate value: \"a\"",
            ),
            (
                FieldError::not_found(
                    &p("spec.containers")
                        .index(0)
                        .child("volumeMounts")
                        .index(0)
                        .child("name"),
                    "data",
                ),
                "spec.containers[0].volumeMounts[0].name: Not found: \"data\"",
            ),
            (
                FieldError::forbidden(&p("spec"), "pod updates may not change fields"),
                "spec: Forbidden: pod updates may not change fields",
            ),
            (
                FieldError::too_long(&p("data"), 1048576),
                "data: Too long: may not be more than 1048576 bytes",
            ),
            (
                FieldError::too_many(&p("x"), 5, 3),
                "x: Too many: 5: must have at most 3 items",
            ),
            (
                FieldError::invalid(&p("x"), BadValue::Null, "must not be nil"),
                "x: Invalid value: null: must not be nil",
            ),
            (
                FieldError::invalid(&p("x"), true, "no"),
                "x: Invalid value: true: no",
            ),
            (
                FieldError::invalid(&p("x"), "a\"b\n", "q"),
                "x: Invalid value: \"a\\\"b\\n\": q",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn aggregate_brackets_several_and_drops_repeats() {
        let one: FieldErrors = vec![FieldError::required(&p("a"), "")].into();
        assert_eq!(one.aggregate().unwrap(), "a: Required value");
        assert_eq!(
            one.invalid_message("Pod", "x"),
            "Pod \"x\" is invalid: a: Required value"
        );

        let two: FieldErrors = vec![
            FieldError::required(&p("a"), ""),
            FieldError::required(&p("a"), ""),
            FieldError::forbidden(&p("b"), "no"),
        ]
        .into();
        assert_eq!(
            two.aggregate().unwrap(),
            "[a: Required value, b: Forbidden: no]"
        );
        assert_eq!(
            two.invalid_message("RuntimeClass.node.k8s.io", "rc"),
            "RuntimeClass.node.k8s.io \"rc\" is invalid: [a: Required value, b: Forbidden: no]"
        );
        assert_eq!(two.causes().len(), 3);
        assert_eq!(
            FieldErrors::new().invalid_message("Pod", "x"),
            "Pod \"x\" is invalid"
        );
    }

    #[test]
    fn causes_carry_reason_field_and_body() {
        let cases = [
            (
                FieldError::required(&p("a.b"), ""),
                "FieldValueRequired",
                "Required value",
            ),
            (
                FieldError::invalid(&p("a.b"), "v", "d"),
                "FieldValueInvalid",
                "Invalid value: \"v\": d",
            ),
            (
                FieldError::not_supported(&p("a.b"), "v", &["x"]),
                "FieldValueNotSupported",
                "Unsupported value: \"v\": supported values: \"x\"",
            ),
            (
                FieldError::forbidden(&p("a.b"), "d"),
                "FieldValueForbidden",
                "Forbidden: d",
            ),
            (
                FieldError::duplicate(&p("a.b"), "v"),
                "FieldValueDuplicate",
                "Duplicate value: \"v\"",
            ),
            (
                FieldError::too_long(&p("a.b"), 1),
                "FieldValueTooLong",
                "Too long: may not be more than 1 byte",
            ),
            (
                FieldError::too_many(&p("a.b"), 2, 1),
                "FieldValueTooMany",
                "Too many: 2: must have at most 1 item",
            ),
            (
                FieldError::not_found(&p("a.b"), "v"),
                "FieldValueNotFound",
                "Not found: \"v\"",
            ),
        ];
        for (err, reason, message) in cases {
            let cause = err.to_cause();
            assert_eq!(cause.reason.as_deref(), Some(reason));
            assert_eq!(cause.message.as_deref(), Some(message));
            assert_eq!(cause.field.as_deref(), Some("a.b"));
        }
    }
}
