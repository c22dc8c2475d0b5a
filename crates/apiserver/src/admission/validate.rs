//! Validation, the last admission step: upstream's rules from `nodelet_api::validation`
//! (object metadata for every kind, pods in full), answered as `422 Invalid` with the
//! upstream field paths and messages.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use nodelet_api::field_errors::{FieldError, FieldErrors, Path};
use nodelet_api::names;
use nodelet_api::validation::PodValidationOptions;
use nodelet_api::validation::meta::{NameFn, validate_object_meta, validate_object_meta_update};
use nodelet_api::validation::pod::{validate_pod_create, validate_pod_update};
use serde_json::Value;

use super::{Operation, typed};
use crate::errors::{ApiError, ApiResult};
use crate::resources::{Kind, ResourceType, meta};

/// The name rule of each kind (upstream's `ValidateXName`).
fn name_rule(kind: Kind) -> NameFn {
    match kind {
        Kind::Namespace => names::name_is_dns_label,
        Kind::Service => names::name_is_dns1035_label,
        _ => names::name_is_dns_subdomain,
    }
}

/// Validates `obj` (defaulted, storage form) for `op`.
pub fn validate(
    rt: &ResourceType,
    op: Operation,
    obj: &Value,
    old: Option<&Value>,
) -> ApiResult<()> {
    let mut errs = FieldErrors::new();
    if rt.id == Kind::Pod {
        let pod: Pod = typed(obj)?;
        let opts = PodValidationOptions::default();
        match (op, old) {
            (Operation::Update, Some(old)) => {
                let old: Pod = typed(old)?;
                errs.extend(validate_pod_update(&pod, &old, &opts));
            }
            _ => errs.extend(validate_pod_create(&pod, &opts)),
        }
    } else {
        let object_meta: ObjectMeta = typed(&obj["metadata"])?;
        errs.extend(validate_object_meta(
            &object_meta,
            rt.namespaced,
            name_rule(rt.id),
            &Path::new("metadata"),
        ));
        if let (Operation::Update, Some(old)) = (op, old) {
            let old_meta: ObjectMeta = typed(&old["metadata"])?;
            errs.extend(validate_object_meta_update(
                &object_meta,
                &old_meta,
                &Path::new("metadata"),
            ));
        }
        errs.extend(kind_rules(rt.id, obj, old));
    }
    if errs.is_empty() {
        return Ok(());
    }
    let status = nodelet_api::status::invalid(rt.group, rt.kind, meta::name(obj), &errs);
    Err(ApiError {
        status: Box::new(status),
    })
}

/// The few per-kind rules beyond metadata that kubectl users meet.
fn kind_rules(kind: Kind, obj: &Value, old: Option<&Value>) -> FieldErrors {
    let mut errs = FieldErrors::new();
    match kind {
        Kind::RuntimeClass => {
            let path = Path::new("handler");
            match obj["handler"].as_str().filter(|h| !h.is_empty()) {
                None => errs.push(FieldError::required(&path, "")),
                Some(handler) => {
                    for msg in names::is_dns1123_label(handler) {
                        errs.push(FieldError::invalid(&path, handler, msg));
                    }
                    if let Some(before) = old.and_then(|o| o["handler"].as_str())
                        && before != handler
                    {
                        errs.push(FieldError::invalid(&path, handler, "field is immutable"));
                    }
                }
            }
        }
        Kind::Secret => {
            let ty = obj["type"].as_str().unwrap_or("");
            if let Some(before) = old.and_then(|o| o["type"].as_str())
                && before != ty
            {
                errs.push(FieldError::invalid(
                    &Path::new("type"),
                    ty,
                    "field is immutable",
                ));
            }
            let need = match ty {
                "kubernetes.io/dockerconfigjson" => Some(".dockerconfigjson"),
                "kubernetes.io/dockercfg" => Some(".dockercfg"),
                _ => None,
            };
            if let Some(key) = need
                && obj["data"][key].is_null()
            {
                errs.push(FieldError::required(&Path::new("data").key(key), ""));
            }
        }
        _ => {}
    }
    errs
}
