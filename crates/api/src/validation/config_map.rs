//! ConfigMap validation: keys, no key in both `data` and `binaryData`, 1 MiB in total.

use super::meta::{FIELD_IMMUTABLE_MSG, validate_object_meta, validate_object_meta_update};
use super::secret::MAX_SECRET_SIZE;
use crate::field_errors::{FieldError, FieldErrors, Path};
use crate::k8s::api::core::v1::ConfigMap;
use crate::names;

pub fn validate_config_map(cm: &ConfigMap) -> FieldErrors {
    let mut errs = validate_object_meta(
        &cm.metadata,
        true,
        names::name_is_dns_subdomain,
        &Path::new("metadata"),
    );
    let data = cm.data.clone().unwrap_or_default();
    let binary = cm.binary_data.clone().unwrap_or_default();
    let mut total = 0;
    for (k, v) in &data {
        let p = Path::new("data").key(k);
        for m in names::is_config_map_key(k) {
            errs.push(FieldError::invalid(&p, k, m));
        }
        if binary.contains_key(k) {
            errs.push(FieldError::invalid(
                &p,
                k,
                "duplicate of key present in binaryData",
            ));
        }
        total += v.len();
    }
    for (k, v) in &binary {
        for m in names::is_config_map_key(k) {
            errs.push(FieldError::invalid(&Path::new("binaryData").key(k), k, m));
        }
        total += v.0.len();
    }
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long(&Path::root(), MAX_SECRET_SIZE));
    }
    errs
}

/// Update: metadata rules; nothing changes once `immutable: true`.
pub fn validate_config_map_update(new: &ConfigMap, old: &ConfigMap) -> FieldErrors {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    if old.immutable == Some(true) {
        let msg = format!("{FIELD_IMMUTABLE_MSG} when `immutable` is set");
        if new.immutable != Some(true) {
            errs.push(FieldError::forbidden(&Path::new("immutable"), msg.clone()));
        }
        if new.data.clone().unwrap_or_default() != old.data.clone().unwrap_or_default() {
            errs.push(FieldError::forbidden(&Path::new("data"), msg.clone()));
        }
        if new.binary_data.clone().unwrap_or_default()
            != old.binary_data.clone().unwrap_or_default()
        {
            errs.push(FieldError::forbidden(&Path::new("binaryData"), msg));
        }
    }
    errs.extend(validate_config_map(new));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_map_rules() {
        let cases = [
            (
                json!({"metadata":{"name":"c","namespace":"d"},"data":{"data-1":"value-1","game.properties":"x"}}),
                vec![],
            ),
            (
                json!({"metadata":{"name":"c","namespace":"d"},"data":{"k":"v"},"binaryData":{"k":"AA=="}}),
                vec!["data[k]: Invalid value: \"k\": duplicate of key present in binaryData"],
            ),
            (
                json!({"metadata":{"name":"c","namespace":"d"},"data":{"..x":"v"}}),
                vec!["data[..x]: Invalid value: \"..x\": must not start with '..'"],
            ),
        ];
        for (input, want) in cases {
            let cm: ConfigMap = serde_json::from_value(input.clone()).unwrap();
            let got: Vec<String> = validate_config_map(&cm).messages();
            assert_eq!(got, want, "{input}");
        }
    }

    #[test]
    fn immutable_config_maps() {
        let old: ConfigMap = serde_json::from_value(json!({"metadata":{"name":"c","namespace":"d","resourceVersion":"1"},"immutable":true,"data":{"a":"1"}})).unwrap();
        let mut new = old.clone();
        new.data = Some([("a".to_string(), "2".to_string())].into());
        assert_eq!(
            validate_config_map_update(&new, &old).aggregate().unwrap(),
            "data: Forbidden: field is immutable when `immutable` is set"
        );
    }
}
