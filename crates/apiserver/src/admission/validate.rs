//! Validation, the last admission step: upstream's rules from `nodelet_api::validation`
//! (object metadata for every kind; pods, secrets, config maps, service accounts and
//! RuntimeClasses in full), answered as `422 Invalid` with the
//! upstream field paths and messages.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use nodelet_api::field_errors::{FieldErrors, Path};
use nodelet_api::names;
use nodelet_api::validation::meta::{NameFn, validate_object_meta, validate_object_meta_update};
use nodelet_api::validation::pod::{validate_pod_create, validate_pod_update};
use nodelet_api::validation::{
    PodValidationOptions, validate_config_map, validate_config_map_update, validate_runtime_class,
    validate_runtime_class_update, validate_secret, validate_secret_update,
    validate_service_account, validate_service_account_update,
};
use serde::de::DeserializeOwned;
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
    let old = old.filter(|_| op == Operation::Update);
    let errs = match rt.id {
        Kind::Pod => {
            let opts = PodValidationOptions::default();
            let pod: Pod = typed(obj)?;
            match old {
                Some(old) => validate_pod_update(&pod, &typed(old)?, &opts),
                None => validate_pod_create(&pod, &opts),
            }
        }
        Kind::Secret => full(obj, old, validate_secret, validate_secret_update)?,
        Kind::ConfigMap => full(obj, old, validate_config_map, validate_config_map_update)?,
        Kind::ServiceAccount => full(
            obj,
            old,
            validate_service_account,
            validate_service_account_update,
        )?,
        Kind::RuntimeClass => full(
            obj,
            old,
            validate_runtime_class,
            validate_runtime_class_update,
        )?,
        _ => {
            let object_meta: ObjectMeta = typed(&obj["metadata"])?;
            let mut errs = validate_object_meta(
                &object_meta,
                rt.namespaced,
                name_rule(rt.id),
                &Path::new("metadata"),
            );
            if let Some(old) = old {
                let old_meta: ObjectMeta = typed(&old["metadata"])?;
                errs.extend(validate_object_meta_update(
                    &object_meta,
                    &old_meta,
                    &Path::new("metadata"),
                ));
            }
            errs
        }
    };
    if errs.is_empty() {
        return Ok(());
    }
    let status = nodelet_api::status::invalid(rt.group, rt.kind, meta::name(obj), &errs);
    Err(ApiError {
        status: Box::new(status),
    })
}

/// A kind's complete upstream rules (metadata included) from `nodelet_api::validation`.
fn full<T: DeserializeOwned>(
    obj: &Value,
    old: Option<&Value>,
    create: fn(&T) -> FieldErrors,
    update: fn(&T, &T) -> FieldErrors,
) -> ApiResult<FieldErrors> {
    let new: T = typed(obj)?;
    Ok(match old {
        Some(old) => update(&new, &typed(old)?),
        None => create(&new),
    })
}
