//! ServiceAccount validation: only its metadata (a DNS-subdomain name in a namespace).

use super::meta::{validate_object_meta, validate_object_meta_update};
use crate::field_errors::{FieldErrors, Path};
use crate::k8s::api::core::v1::ServiceAccount;
use crate::names;

pub fn validate_service_account(sa: &ServiceAccount) -> FieldErrors {
    validate_object_meta(
        &sa.metadata,
        true,
        names::name_is_dns_subdomain,
        &Path::new("metadata"),
    )
}

pub fn validate_service_account_update(new: &ServiceAccount, old: &ServiceAccount) -> FieldErrors {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    errs.extend(validate_service_account(new));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_account_rules() {
        let ok: ServiceAccount = serde_json::from_value(json!({"metadata":{"name":"default","namespace":"d"},"imagePullSecrets":[{"name":"myregistrykey"}]})).unwrap();
        assert!(validate_service_account(&ok).is_empty());
        let bad: ServiceAccount =
            serde_json::from_value(json!({"metadata":{"name":"Bad_Name","namespace":"d"}}))
                .unwrap();
        assert_eq!(validate_service_account(&bad).len(), 1);
    }
}
