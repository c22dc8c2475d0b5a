//! JSON patch (RFC 6902) with JSON pointers (RFC 6901): `add`, `remove`, `replace`, `move`,
//! `copy`, `test`, applied in order; the first failing operation fails the whole patch and
//! the document is left untouched.

use serde_json::Value;

use super::PatchError;

/// Applies a JSON patch document (an array of operations) to `doc`.
pub fn apply(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Array(ops) = patch else {
        return Err(PatchError::Invalid(
            "a JSON patch must be an array of operations".into(),
        ));
    };
    let mut doc = doc.clone();
    for op in ops {
        apply_op(&mut doc, op)?;
    }
    Ok(doc)
}

fn member<'a>(op: &'a Value, name: &str) -> Result<&'a Value, PatchError> {
    op.get(name)
        .ok_or_else(|| PatchError::Invalid(format!("operation {op} is missing {name:?}")))
}

fn string_member<'a>(op: &'a Value, name: &str) -> Result<&'a str, PatchError> {
    member(op, name)?
        .as_str()
        .ok_or_else(|| PatchError::Invalid(format!("operation {op}: {name:?} must be a string")))
}

fn apply_op(doc: &mut Value, op: &Value) -> Result<(), PatchError> {
    if !op.is_object() {
        return Err(PatchError::Invalid(format!(
            "operation {op} is not an object"
        )));
    }
    let kind = string_member(op, "op")?;
    let path = string_member(op, "path")?;
    let tokens = parse_pointer(path)?;
    match kind {
        "add" => add(doc, &tokens, path, member(op, "value")?.clone(), "add"),
        "remove" => remove(doc, &tokens, path, "remove").map(|_| ()),
        "replace" => {
            let value = member(op, "value")?.clone();
            let target = get_mut(doc, &tokens).ok_or_else(|| PatchError::MissingPath {
                op: "replace",
                path: path.into(),
            })?;
            *target = value;
            Ok(())
        }
        "move" => {
            let from = string_member(op, "from")?;
            let from_tokens = parse_pointer(from)?;
            if tokens.len() > from_tokens.len() && tokens[..from_tokens.len()] == from_tokens[..] {
                return Err(PatchError::Invalid(format!(
                    "cannot move {from:?} into its own child {path:?}"
                )));
            }
            let value = remove(doc, &from_tokens, from, "move")?;
            add(doc, &tokens, path, value, "move")
        }
        "copy" => {
            let from = string_member(op, "from")?;
            let value = get(doc, &parse_pointer(from)?).cloned().ok_or_else(|| {
                PatchError::MissingPath {
                    op: "copy",
                    path: from.into(),
                }
            })?;
            add(doc, &tokens, path, value, "copy")
        }
        "test" => {
            let want = member(op, "value")?;
            match get(doc, &tokens) {
                Some(have) if json_equal(have, want) => Ok(()),
                _ => Err(PatchError::TestFailed { path: path.into() }),
            }
        }
        other => Err(PatchError::Invalid(format!("unknown operation {other:?}"))),
    }
}

/// Splits a JSON pointer into unescaped reference tokens (`~1` → `/`, `~0` → `~`).
pub fn parse_pointer(pointer: &str) -> Result<Vec<String>, PatchError> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(PatchError::Invalid(format!(
            "JSON pointer {pointer:?} must start with '/'"
        )));
    };
    rest.split('/')
        .map(|t| {
            let mut out = String::new();
            let mut chars = t.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => {
                            return Err(PatchError::Invalid(format!(
                                "bad escape in JSON pointer {pointer:?}"
                            )));
                        }
                    }
                } else {
                    out.push(c);
                }
            }
            Ok(out)
        })
        .collect()
}

/// An array index token: digits without leading zeros.
fn array_index(token: &str) -> Option<usize> {
    let ok = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    if ok { token.parse().ok() } else { None }
}

fn get<'a>(doc: &'a Value, tokens: &[String]) -> Option<&'a Value> {
    tokens.iter().try_fold(doc, |v, t| match v {
        Value::Object(m) => m.get(t),
        Value::Array(a) => array_index(t).and_then(|i| a.get(i)),
        _ => None,
    })
}

fn get_mut<'a>(doc: &'a mut Value, tokens: &[String]) -> Option<&'a mut Value> {
    tokens.iter().try_fold(doc, |v, t| match v {
        Value::Object(m) => m.get_mut(t),
        Value::Array(a) => array_index(t).and_then(move |i| a.get_mut(i)),
        _ => None,
    })
}

fn add(
    doc: &mut Value,
    tokens: &[String],
    path: &str,
    value: Value,
    op: &'static str,
) -> Result<(), PatchError> {
    let Some((last, parent_tokens)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    let parent = get_mut(doc, parent_tokens).ok_or_else(|| PatchError::MissingPath {
        op,
        path: path.into(),
    })?;
    match parent {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
                return Ok(());
            }
            match array_index(last) {
                Some(i) if i <= a.len() => {
                    a.insert(i, value);
                    Ok(())
                }
                _ => Err(PatchError::OutOfBounds {
                    op,
                    path: path.into(),
                    index: last.clone(),
                }),
            }
        }
        _ => Err(PatchError::MissingPath {
            op,
            path: path.into(),
        }),
    }
}

fn remove(
    doc: &mut Value,
    tokens: &[String],
    path: &str,
    op: &'static str,
) -> Result<Value, PatchError> {
    let Some((last, parent_tokens)) = tokens.split_last() else {
        return Ok(std::mem::replace(doc, Value::Null));
    };
    let missing = || PatchError::MissingPath {
        op,
        path: path.into(),
    };
    match get_mut(doc, parent_tokens).ok_or_else(missing)? {
        Value::Object(m) => m.remove(last).ok_or_else(missing),
        Value::Array(a) => match array_index(last) {
            Some(i) if i < a.len() => Ok(a.remove(i)),
            _ => Err(PatchError::OutOfBounds {
                op,
                path: path.into(),
                index: last.clone(),
            }),
        },
        _ => Err(missing()),
    }
}

/// JSON equality with numbers compared by value (`1` equals `1.0`), as RFC 6902 asks for
/// `test`.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc6902_operations() {
        let cases = [
            (
                json!({"foo":"bar"}),
                json!([{"op":"add","path":"/baz","value":"qux"}]),
                json!({"foo":"bar","baz":"qux"}),
            ),
            (
                json!({"foo":["bar","baz"]}),
                json!([{"op":"add","path":"/foo/1","value":"qux"}]),
                json!({"foo":["bar","qux","baz"]}),
            ),
            (
                json!({"foo":["bar"]}),
                json!([{"op":"add","path":"/foo/-","value":"x"}]),
                json!({"foo":["bar","x"]}),
            ),
            (
                json!({"baz":"qux","foo":"bar"}),
                json!([{"op":"remove","path":"/baz"}]),
                json!({"foo":"bar"}),
            ),
            (
                json!({"foo":["bar","qux","baz"]}),
                json!([{"op":"remove","path":"/foo/1"}]),
                json!({"foo":["bar","baz"]}),
            ),
            (
                json!({"baz":"qux","foo":"bar"}),
                json!([{"op":"replace","path":"/baz","value":"boo"}]),
                json!({"baz":"boo","foo":"bar"}),
            ),
            (
                json!({"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}}),
                json!([{"op":"move","from":"/foo/waldo","path":"/qux/thud"}]),
                json!({"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}}),
            ),
            (
                json!({"foo":["all","grass","cows","eat"]}),
                json!([{"op":"move","from":"/foo/1","path":"/foo/3"}]),
                json!({"foo":["all","cows","eat","grass"]}),
            ),
            (
                json!({"a":{"b":1}}),
                json!([{"op":"copy","from":"/a","path":"/c"}]),
                json!({"a":{"b":1},"c":{"b":1}}),
            ),
            (
                json!({"baz":"qux","foo":["a",2,"c"]}),
                json!([{"op":"test","path":"/baz","value":"qux"},{"op":"test","path":"/foo/1","value":2.0}]),
                json!({"baz":"qux","foo":["a",2,"c"]}),
            ),
            (
                json!({"a/b":1,"m~n":2}),
                json!([{"op":"replace","path":"/a~1b","value":3},{"op":"remove","path":"/m~0n"}]),
                json!({"a/b":3}),
            ),
            (
                json!({"a":1}),
                json!([{"op":"add","path":"","value":[1]}]),
                json!([1]),
            ),
            (
                json!({"metadata":{"labels":{"app":"web"}}}),
                json!([{"op":"add","path":"/metadata/labels/tier","value":"db"},{"op":"replace","path":"/metadata/labels/app","value":"api"}]),
                json!({"metadata":{"labels":{"app":"api","tier":"db"}}}),
            ),
        ];
        for (doc, patch, want) in cases {
            assert_eq!(apply(&doc, &patch).unwrap(), want, "{patch}");
        }
    }

    #[test]
    fn failures_name_the_operation_and_path() {
        let cases = [
            (
                json!({"a":1}),
                json!([{"op":"remove","path":"/b"}]),
                "remove operation does not apply: doc is missing path: \"/b\": missing value",
            ),
            (
                json!({"a":1}),
                json!([{"op":"replace","path":"/b","value":1}]),
                "replace operation does not apply: doc is missing path: \"/b\": missing value",
            ),
            (
                json!({"a":1}),
                json!([{"op":"add","path":"/x/y","value":1}]),
                "add operation does not apply: doc is missing path: \"/x/y\": missing value",
            ),
            (
                json!({"a":[1]}),
                json!([{"op":"add","path":"/a/5","value":1}]),
                "add operation does not apply: index 5 out of bounds at \"/a/5\"",
            ),
            (
                json!({"a":[1]}),
                json!([{"op":"remove","path":"/a/01"}]),
                "remove operation does not apply: index 01 out of bounds at \"/a/01\"",
            ),
            (
                json!({"a":1}),
                json!([{"op":"test","path":"/a","value":2}]),
                "testing value /a failed: test failed",
            ),
            (
                json!({"a":1}),
                json!([{"op":"frob","path":"/a"}]),
                "invalid patch: unknown operation \"frob\"",
            ),
            (
                json!({"a":1}),
                json!({"op":"add"}),
                "invalid patch: a JSON patch must be an array of operations",
            ),
            (
                json!({"a":1}),
                json!([{"op":"add","path":"a","value":1}]),
                "invalid patch: JSON pointer \"a\" must start with '/'",
            ),
            (
                json!({"a":{"b":1}}),
                json!([{"op":"move","from":"/a","path":"/a/b/c"}]),
                "invalid patch: cannot move \"/a\" into its own child \"/a/b/c\"",
            ),
        ];
        for (doc, patch, want) in cases {
            assert_eq!(
                apply(&doc, &patch).unwrap_err().to_string(),
                want,
                "{patch}"
            );
        }
    }

    #[test]
    fn a_failing_operation_leaves_the_document_unchanged() {
        let doc = json!({"a":1});
        let patch = json!([{"op":"add","path":"/b","value":2},{"op":"test","path":"/a","value":3}]);
        assert!(apply(&doc, &patch).is_err());
        assert_eq!(doc, json!({"a":1}));
    }
}
