//! Strategic merge patch, as the API server applies it (apimachinery `strategicpatch` with
//! `MergeParallelList` and `IgnoreUnmatchedNulls`).
//!
//! Objects merge member by member and `null` deletes a member. Lists with a merge key
//! (`containers` by `name`, `ports` by `containerPort`, ...) merge element by element; other
//! lists are replaced. Directives:
//! - `{"$patch": "replace"}` in an object replaces it; in a keyed list, replaces the list;
//! - `{"$patch": "delete"}` in an object empties it; in a keyed list with the key, removes
//!   that element;
//! - `"$retainKeys": [..]` drops every member of the original object not listed;
//! - `"$setElementOrder/<field>": [..]` gives the final order of `<field>` (kubectl apply
//!   sends it with every keyed list it touches);
//! - `"$deleteFromPrimitiveList/<field>": [..]` removes values from a primitive list.
//!
//! Order of merged lists, as upstream: elements named in the patch take the patch's order,
//! the others keep theirs, and the two runs interleave by their order in the original list.

use serde_json::{Map, Value};

use super::PatchError;
use super::schema::{FieldKind, PLAIN, Schema};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE: &str = "$deleteFromPrimitiveList/";

/// Applies a strategic merge patch to `original` (both JSON objects), using `schema` for the
/// list metadata of the kind (see [`super::schema::for_kind`]).
pub fn strategic_merge_patch(
    original: &Value,
    patch: &Value,
    schema: &Schema,
) -> Result<Value, PatchError> {
    let Value::Object(original) = original else {
        return Err(PatchError::Invalid(
            "the object to patch must be a JSON object".into(),
        ));
    };
    let Value::Object(patch) = patch else {
        return Err(PatchError::Invalid(
            "a strategic merge patch must be a JSON object".into(),
        ));
    };
    Ok(Value::Object(merge_map(
        original.clone(),
        patch.clone(),
        schema,
    )?))
}

fn sub_schema(kind: Option<FieldKind>) -> &'static Schema {
    match kind {
        Some(FieldKind::Struct(s)) => s,
        _ => &PLAIN,
    }
}

fn merge_key(kind: Option<FieldKind>) -> Option<&'static str> {
    match kind {
        Some(FieldKind::MergeByKey { key, .. }) => Some(key),
        _ => None,
    }
}

fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    schema: &Schema,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(directive) = patch.get(PATCH) {
        match directive.as_str() {
            Some("replace") => {
                patch.remove(PATCH);
                return merge_map(Map::new(), patch, schema);
            }
            Some("delete") => return Ok(Map::new()),
            _ => {
                return Err(PatchError::BadPatchType {
                    kind: directive
                        .as_str()
                        .map_or_else(|| directive.to_string(), str::to_owned),
                    element: Value::Object(patch).to_string(),
                });
            }
        }
    }

    if let Some(retain) = patch.remove(RETAIN_KEYS) {
        let keys = string_list(&retain)
            .ok_or_else(|| PatchError::Invalid("$retainKeys must be a list of strings".into()))?;
        original.retain(|k, _| keys.iter().any(|r| r == k));
    }

    let order_directives: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ORDER))
        .cloned()
        .collect();
    for directive in order_directives {
        let Some(Value::Array(order)) = patch.remove(&directive) else {
            return Err(PatchError::Invalid(format!("{directive} must be a list")));
        };
        let field = directive[SET_ORDER.len()..].to_owned();
        let kind = schema.field(&field);
        let original_list = match original.get(&field) {
            Some(Value::Array(a)) => Some(a.clone()),
            _ => None,
        };
        let merged = match (original_list.clone(), patch.remove(&field)) {
            (Some(o), None) => o,
            (None, Some(Value::Array(p))) => merge_list(Vec::new(), p, kind)?,
            (Some(o), Some(Value::Array(p))) => merge_list(o, p, kind)?,
            (_, Some(Value::Null)) => {
                original.remove(&field);
                continue;
            }
            (_, Some(other)) => {
                original.insert(field, clean(other, kind)?);
                continue;
            }
            (None, None) => continue,
        };
        let key = merge_key(kind);
        let (named, others) = partition(merged, &order, key);
        let server_order = original_list.unwrap_or_default();
        original.insert(
            field,
            Value::Array(normalize_order(named, others, &order, &server_order, key)),
        );
    }

    for (k, v) in patch {
        if let Some(field) = k.strip_prefix(DELETE_FROM_PRIMITIVE) {
            if let (Some(Value::Array(list)), Value::Array(remove)) = (original.get_mut(field), &v)
            {
                list.retain(|x| !remove.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            original.remove(&k);
            continue;
        }
        let kind = schema.field(&k);
        let merged = match (original.remove(&k), v) {
            (Some(Value::Object(o)), Value::Object(p)) => {
                Value::Object(merge_map(o, p, sub_schema(kind))?)
            }
            (Some(Value::Array(o)), Value::Array(p)) => Value::Array(merge_list(o, p, kind)?),
            (_, v) => clean(v, kind)?,
        };
        original.insert(k, merged);
    }
    Ok(original)
}

/// A value that has nothing to merge with: directives are applied to nothing and nulls are
/// dropped (upstream discards unmatched nulls).
fn clean(v: Value, kind: Option<FieldKind>) -> Result<Value, PatchError> {
    Ok(match v {
        Value::Object(m) => Value::Object(merge_map(Map::new(), m, sub_schema(kind))?),
        Value::Array(a) => Value::Array(merge_list(Vec::new(), a, kind)?),
        other => other,
    })
}

fn string_list(v: &Value) -> Option<Vec<String>> {
    v.as_array()?
        .iter()
        .map(|x| x.as_str().map(str::to_owned))
        .collect()
}

fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    kind: Option<FieldKind>,
) -> Result<Vec<Value>, PatchError> {
    match kind {
        Some(FieldKind::MergeByKey { key, elem, .. }) => merge_keyed(original, patch, key, elem),
        Some(FieldKind::MergePrimitives) => Ok(merge_primitives(original, patch)),
        _ => patch
            .into_iter()
            .filter(|e| e.get(PATCH).is_none())
            .map(|e| clean(e, None))
            .collect(),
    }
}

fn merge_primitives(original: Vec<Value>, patch: Vec<Value>) -> Vec<Value> {
    let mut merged: Vec<Value> = Vec::new();
    for v in original.iter().chain(patch.iter()) {
        if !merged.contains(v) {
            merged.push(v.clone());
        }
    }
    let (named, others) = partition(merged, &patch, None);
    normalize_order(named, others, &patch, &original, None)
}

fn merge_keyed(
    original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
    elem: &'static Schema,
) -> Result<Vec<Value>, PatchError> {
    let mut merged = original;
    let mut plain = Vec::new();
    let mut replace = false;
    for v in patch {
        let Some(directive) = v.get(PATCH) else {
            plain.push(v);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let Some(kv) = v.get(key) else {
                    return Err(PatchError::NoMergeKey {
                        element: v.to_string(),
                        key: key.to_owned(),
                    });
                };
                merged.retain(|e| e.get(key) != Some(kv));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(PatchError::Invalid(
                    "merging lists cannot yet be specified in the patch".into(),
                ));
            }
            _ => {
                return Err(PatchError::BadPatchType {
                    kind: directive
                        .as_str()
                        .map_or_else(|| directive.to_string(), str::to_owned),
                    element: v.to_string(),
                });
            }
        }
    }
    if replace {
        return plain
            .into_iter()
            .map(|e| clean(e, Some(FieldKind::Struct(elem))))
            .collect();
    }
    let server_order = merged.clone();
    for p in &plain {
        let Value::Object(pm) = p else {
            return Err(PatchError::Invalid(format!(
                "list element {p} must be an object with {key:?}"
            )));
        };
        let Some(kv) = pm.get(key) else {
            return Err(PatchError::NoMergeKey {
                element: p.to_string(),
                key: key.to_owned(),
            });
        };
        match merged.iter().position(|e| e.get(key) == Some(kv)) {
            Some(i) => {
                let base = match merged[i].take() {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                merged[i] = Value::Object(merge_map(base, pm.clone(), elem)?);
            }
            None => merged.push(Value::Object(merge_map(Map::new(), pm.clone(), elem)?)),
        }
    }
    let (named, others) = partition(merged, &plain, Some(key));
    Ok(normalize_order(
        named,
        others,
        &plain,
        &server_order,
        Some(key),
    ))
}

/// Where `item` is in `list` (by merge key, or by value for primitives).
fn index_of(list: &[Value], item: &Value, key: Option<&str>) -> Option<usize> {
    match key {
        Some(k) => {
            let kv = item.get(k)?;
            list.iter().position(|e| e.get(k) == Some(kv))
        }
        None => list.iter().position(|e| e == item),
    }
}

/// Splits `merged` into the items named in `order` and the rest.
fn partition(merged: Vec<Value>, order: &[Value], key: Option<&str>) -> (Vec<Value>, Vec<Value>) {
    merged
        .into_iter()
        .partition(|item| index_of(order, item, key).is_some())
}

fn sort_by_order(mut items: Vec<Value>, order: &[Value], key: Option<&str>) -> Vec<Value> {
    items.sort_by_key(|item| index_of(order, item, key).unwrap_or(usize::MAX));
    items
}

/// Sorts the named items by `patch_order` and the others by `server_order`, then interleaves
/// them: an original-only item goes before a named item that follows it in the original.
fn normalize_order(
    named: Vec<Value>,
    others: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    let right = sort_by_order(named, patch_order, key);
    let left = sort_by_order(others, server_order, key);
    let mut out = Vec::with_capacity(left.len() + right.len());
    let (mut i, mut j) = (0, 0);
    while i < left.len() || j < right.len() {
        if i >= left.len() {
            out.push(right[j].clone());
            j += 1;
        } else if j >= right.len() {
            out.push(left[i].clone());
            i += 1;
        } else {
            let li = index_of(server_order, &left[i], key);
            let ri = index_of(server_order, &right[j], key);
            match (li, ri) {
                (Some(a), Some(b)) if a < b => {
                    out.push(left[i].clone());
                    i += 1;
                }
                _ => {
                    out.push(right[j].clone());
                    j += 1;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::schema::{self, for_kind};
    use serde_json::json;

    fn apply(kind: &str, original: Value, patch: Value) -> Value {
        strategic_merge_patch(&original, &patch, for_kind(kind)).unwrap()
    }

    /// The three PATCH bodies kubectl 1.20 sent in the probe of `kubectl apply`
    /// (`shared/spec/kubectl-probe/logs/apply-*.out`), applied to the stored pod.
    #[test]
    fn kubectl_apply_patches_on_pods() {
        let lac = "kubectl.kubernetes.io/last-applied-configuration";
        let cases = [
            (
                "image change and a new label",
                json!({"metadata":{"name":"demo","labels":{"app":"demo"},"annotations":{lac:"old"}},
                       "spec":{"containers":[{"name":"main","image":"busybox:1.33","command":["sleep","3600"],"imagePullPolicy":"IfNotPresent"}],"restartPolicy":"Always"}}),
                json!({"metadata":{"annotations":{lac:"new"},"labels":{"tier":"backend"}},
                       "spec":{"$setElementOrder/containers":[{"name":"main"}],"containers":[{"image":"busybox:1.34","name":"main"}]}}),
                json!({"metadata":{"name":"demo","labels":{"app":"demo","tier":"backend"},"annotations":{lac:"new"}},
                       "spec":{"containers":[{"name":"main","image":"busybox:1.34","command":["sleep","3600"],"imagePullPolicy":"IfNotPresent"}],"restartPolicy":"Always"}}),
            ),
            (
                "label removed, command removed, env and a second container added",
                json!({"metadata":{"labels":{"app":"demo","tier":"backend"}},
                       "spec":{"containers":[{"name":"main","image":"busybox:1.34","command":["sleep","3600"]}]}}),
                json!({"metadata":{"labels":{"tier":null}},
                       "spec":{"$setElementOrder/containers":[{"name":"main"},{"name":"side"}],
                               "containers":[{"command":null,"env":[{"name":"A","value":"1"}],"name":"main"},{"image":"busybox:1.34","name":"side"}]}}),
                json!({"metadata":{"labels":{"app":"demo"}},
                       "spec":{"containers":[{"name":"main","image":"busybox:1.34","env":[{"name":"A","value":"1"}]},{"name":"side","image":"busybox:1.34"}]}}),
            ),
            (
                "container deleted with $patch: delete",
                json!({"spec":{"containers":[{"name":"main","image":"busybox:1.34","env":[{"name":"A","value":"1"}]},{"name":"side","image":"busybox:1.34"}]}}),
                json!({"spec":{"$setElementOrder/containers":[{"name":"main"}],
                               "containers":[{"command":["sleep","3600"],"env":null,"image":"busybox:1.33","name":"main"},{"$patch":"delete","name":"side"}]}}),
                json!({"spec":{"containers":[{"name":"main","image":"busybox:1.33","command":["sleep","3600"]}]}}),
            ),
        ];
        for (name, original, patch, want) in cases {
            assert_eq!(apply("Pod", original, patch), want, "{name}");
        }
    }

    #[test]
    fn kubectl_patch_and_apply_on_other_kinds() {
        let cases = [
            (
                "patch serviceaccount replaces imagePullSecrets (no patch strategy)",
                "ServiceAccount",
                json!({"metadata":{"name":"default"},"secrets":[{"name":"tok"}],"imagePullSecrets":[{"name":"old"}]}),
                json!({"imagePullSecrets":[{"name":"myregistrykey"}]}),
                json!({"metadata":{"name":"default"},"secrets":[{"name":"tok"}],"imagePullSecrets":[{"name":"myregistrykey"}]}),
            ),
            (
                "serviceaccount secrets merge by name (a new element not in the original goes first, as upstream)",
                "ServiceAccount",
                json!({"secrets":[{"name":"a"}]}),
                json!({"secrets":[{"name":"b"}]}),
                json!({"secrets":[{"name":"b"},{"name":"a"}]}),
            ),
            (
                "apply runtimeclass adds overhead and a label",
                "RuntimeClass",
                json!({"metadata":{"name":"gvisor","annotations":{"a":"1"}},"handler":"runsc"}),
                json!({"metadata":{"annotations":{"a":"2"},"labels":{"sandbox":"true"}},"overhead":{"podFixed":{"memory":"64Mi"}}}),
                json!({"metadata":{"name":"gvisor","annotations":{"a":"2"},"labels":{"sandbox":"true"}},"handler":"runsc","overhead":{"podFixed":{"memory":"64Mi"}}}),
            ),
            (
                "runtimeclass tolerations are atomic",
                "RuntimeClass",
                json!({"scheduling":{"tolerations":[{"key":"a","operator":"Exists"}],"nodeSelector":{"x":"1"}}}),
                json!({"scheduling":{"tolerations":[{"key":"b","operator":"Exists"}]}}),
                json!({"scheduling":{"tolerations":[{"key":"b","operator":"Exists"}],"nodeSelector":{"x":"1"}}}),
            ),
            (
                "secret data merges per key and null removes",
                "Secret",
                json!({"type":"Opaque","data":{"a":"MQ==","b":"Mg=="}}),
                json!({"data":{"b":null,"c":"Mw=="}}),
                json!({"type":"Opaque","data":{"a":"MQ==","c":"Mw=="}}),
            ),
            (
                "service ports merge by port",
                "Service",
                json!({"spec":{"ports":[{"port":80,"targetPort":8080,"protocol":"TCP"}],"selector":{"app":"web"}}}),
                json!({"spec":{"$setElementOrder/ports":[{"port":80},{"port":443}],"ports":[{"port":80,"targetPort":9090},{"port":443,"name":"https"}]}}),
                json!({"spec":{"ports":[{"port":80,"targetPort":9090,"protocol":"TCP"},{"port":443,"name":"https"}],"selector":{"app":"web"}}}),
            ),
            (
                "configmap data",
                "ConfigMap",
                json!({"data":{"k":"v"}}),
                json!({"data":{"k2":"v2"}}),
                json!({"data":{"k":"v","k2":"v2"}}),
            ),
        ];
        for (name, kind, original, patch, want) in cases {
            assert_eq!(apply(kind, original, patch), want, "{name}");
        }
    }

    #[test]
    fn directives() {
        let cases = [
            (
                "$patch: replace on a keyed list",
                json!({"spec":{"containers":[{"name":"a","image":"x"},{"name":"b","image":"y"}]}}),
                json!({"spec":{"containers":[{"name":"c","image":"z"},{"$patch":"replace"}]}}),
                json!({"spec":{"containers":[{"name":"c","image":"z"}]}}),
            ),
            (
                "$patch: replace on an object",
                json!({"spec":{"nodeSelector":{"a":"1","b":"2"}}}),
                json!({"spec":{"nodeSelector":{"c":"3","$patch":"replace"}}}),
                json!({"spec":{"nodeSelector":{"c":"3"}}}),
            ),
            (
                "$patch: delete on an object",
                json!({"spec":{"securityContext":{"runAsUser":1}}}),
                json!({"spec":{"securityContext":{"$patch":"delete"}}}),
                json!({"spec":{"securityContext":{}}}),
            ),
            (
                "$retainKeys on a volume switches its source",
                json!({"spec":{"volumes":[{"name":"v","hostPath":{"path":"/x"}}]}}),
                json!({"spec":{"volumes":[{"name":"v","$retainKeys":["emptyDir","name"],"emptyDir":{}}]}}),
                json!({"spec":{"volumes":[{"name":"v","emptyDir":{}}]}}),
            ),
            (
                "$deleteFromPrimitiveList on finalizers",
                json!({"metadata":{"finalizers":["a","b","c"]}}),
                json!({"metadata":{"$deleteFromPrimitiveList/finalizers":["b"]}}),
                json!({"metadata":{"finalizers":["a","c"]}}),
            ),
            (
                "finalizers merge as a set",
                json!({"metadata":{"finalizers":["a","b"]}}),
                json!({"metadata":{"finalizers":["c","a"]}}),
                json!({"metadata":{"finalizers":["c","a","b"]}}),
            ),
            (
                "$setElementOrder reorders without other changes",
                json!({"spec":{"containers":[{"name":"a"},{"name":"b"}]}}),
                json!({"spec":{"$setElementOrder/containers":[{"name":"b"},{"name":"a"}]}}),
                json!({"spec":{"containers":[{"name":"b"},{"name":"a"}]}}),
            ),
            (
                "unnamed original elements keep their place",
                json!({"spec":{"containers":[{"name":"a"},{"name":"b"},{"name":"c"}]}}),
                json!({"spec":{"containers":[{"name":"c","image":"x"},{"name":"d"}]}}),
                json!({"spec":{"containers":[{"name":"a"},{"name":"b"},{"name":"c","image":"x"},{"name":"d"}]}}),
            ),
            (
                "env merges by name inside a container",
                json!({"spec":{"containers":[{"name":"a","env":[{"name":"X","value":"1"},{"name":"Y","value":"2"}]}]}}),
                json!({"spec":{"containers":[{"name":"a","env":[{"name":"Y","value":"3"},{"name":"X","$patch":"delete"}]}]}}),
                json!({"spec":{"containers":[{"name":"a","env":[{"name":"Y","value":"3"}]}]}}),
            ),
            (
                "ports merge by containerPort, volumeMounts by mountPath",
                json!({"spec":{"containers":[{"name":"a","ports":[{"containerPort":80}],"volumeMounts":[{"name":"v","mountPath":"/d"}]}]}}),
                json!({"spec":{"containers":[{"name":"a","ports":[{"containerPort":80,"name":"http"}],"volumeMounts":[{"mountPath":"/d","readOnly":true}]}]}}),
                json!({"spec":{"containers":[{"name":"a","ports":[{"containerPort":80,"name":"http"}],"volumeMounts":[{"name":"v","mountPath":"/d","readOnly":true}]}]}}),
            ),
            (
                "tolerations are replaced",
                json!({"spec":{"tolerations":[{"key":"a","operator":"Exists"}]}}),
                json!({"spec":{"tolerations":[{"key":"b","operator":"Exists"}]}}),
                json!({"spec":{"tolerations":[{"key":"b","operator":"Exists"}]}}),
            ),
            (
                "nulls in new values are dropped",
                json!({"spec":{}}),
                json!({"spec":{"containers":[{"name":"a","command":null}],"nodeSelector":{"x":null,"y":"1"}}}),
                json!({"spec":{"containers":[{"name":"a"}],"nodeSelector":{"y":"1"}}}),
            ),
            (
                "pod status conditions merge by type",
                json!({"status":{"conditions":[{"type":"Ready","status":"False"},{"type":"PodScheduled","status":"True"}]}}),
                json!({"status":{"$setElementOrder/conditions":[{"type":"Ready"},{"type":"PodScheduled"}],"conditions":[{"type":"Ready","status":"True"}]}}),
                json!({"status":{"conditions":[{"type":"Ready","status":"True"},{"type":"PodScheduled","status":"True"}]}}),
            ),
            (
                "type change replaces",
                json!({"spec":{"nodeSelector":"weird"}}),
                json!({"spec":{"nodeSelector":{"a":"1"}}}),
                json!({"spec":{"nodeSelector":{"a":"1"}}}),
            ),
        ];
        for (name, original, patch, want) in cases {
            assert_eq!(apply("Pod", original, patch), want, "{name}");
        }
    }

    #[test]
    fn errors() {
        let cases = [
            (
                json!({"spec":{"containers":[{"name":"a"}]}}),
                json!({"spec":{"containers":[{"image":"x"}]}}),
                "map: {\"image\":\"x\"} does not contain declared merge key: name",
            ),
            (
                json!({"spec":{"containers":[{"name":"a"}]}}),
                json!({"spec":{"containers":[{"$patch":"delete"}]}}),
                "map: {\"$patch\":\"delete\"} does not contain declared merge key: name",
            ),
            (
                json!({"spec":{}}),
                json!({"spec":{"$patch":"bogus"}}),
                "unknown patch type: bogus in map: {\"$patch\":\"bogus\"}",
            ),
            (
                json!({"spec":{"containers":[]}}),
                json!({"spec":{"containers":[{"$patch":"merge"}]}}),
                "invalid patch: merging lists cannot yet be specified in the patch",
            ),
            (
                json!({}),
                json!([1]),
                "invalid patch: a strategic merge patch must be a JSON object",
            ),
        ];
        for (original, patch, want) in cases {
            let err = strategic_merge_patch(&original, &patch, &schema::POD).unwrap_err();
            assert_eq!(err.to_string(), want);
        }
    }
}
