//! The `ServiceAccount` admission plugin (pods, create): every pod runs as a ServiceAccount
//! (`default` unless named), the account must exist, and a pod without `imagePullSecrets`
//! inherits the account's, in order. Mirror pods (static pods' API copies) are not changed
//! and may not reference accounts or secrets.
//!
//! Token volume projection (`kube-api-access-*`) is not done here.

use super::Rejection;
use crate::field_errors::go_quote;
use crate::k8s::api::core::v1::{LocalObjectReference, Pod, ServiceAccount};
use crate::validation::pod::MIRROR_POD_ANNOTATION;

pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

fn is_mirror(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR_POD_ANNOTATION))
}

/// The account the caller must look up for this pod: its `serviceAccountName`, or
/// `default`. `None` for mirror pods, which are not looked up.
pub fn account_to_look_up(pod: &Pod) -> Option<String> {
    if is_mirror(pod) {
        return None;
    }
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .filter(|n| !n.is_empty());
    Some(name.unwrap_or_else(|| DEFAULT_SERVICE_ACCOUNT.to_owned()))
}

/// Upstream's refusal when the account is missing:
/// `error looking up service account <ns>/<name>: serviceaccount "<name>" not found`.
pub fn not_found(namespace: &str, name: &str) -> Rejection {
    Rejection(format!(
        "error looking up service account {namespace}/{name}: serviceaccount {} not found",
        go_quote(name)
    ))
}

/// Admits a pod being created in `namespace`; `account` is the looked-up account named by
/// [`account_to_look_up`] (`None` if it does not exist).
pub fn admit(
    pod: &mut Pod,
    namespace: &str,
    account: Option<&ServiceAccount>,
) -> Result<(), Rejection> {
    if is_mirror(pod) {
        return validate_mirror_pod(pod);
    }
    let name = account_to_look_up(pod).unwrap_or_default();
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.service_account_name = Some(name.clone());
    spec.service_account = Some(name.clone());
    let Some(account) = account else {
        return Err(not_found(namespace, &name));
    };
    if spec.image_pull_secrets.as_ref().is_none_or(Vec::is_empty) {
        let inherited: Vec<LocalObjectReference> = account
            .image_pull_secrets
            .iter()
            .flatten()
            .map(|r| LocalObjectReference {
                name: r.name.clone(),
            })
            .collect();
        if !inherited.is_empty() {
            spec.image_pull_secrets = Some(inherited);
        }
    }
    Ok(())
}

/// What a mirror pod may not reference.
pub fn validate_mirror_pod(pod: &Pod) -> Result<(), Rejection> {
    let Some(spec) = &pod.spec else { return Ok(()) };
    if spec
        .service_account_name
        .as_deref()
        .is_some_and(|n| !n.is_empty())
    {
        return Err(Rejection(
            "a mirror pod may not reference service accounts".into(),
        ));
    }
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter());
    let mut secrets = spec
        .image_pull_secrets
        .as_ref()
        .is_some_and(|s| !s.is_empty());
    secrets |= spec.volumes.iter().flatten().any(|v| {
        v.secret.is_some()
            || v.projected
                .as_ref()
                .is_some_and(|p| p.sources.iter().flatten().any(|s| s.secret.is_some()))
    });
    for c in containers {
        secrets |= c.env_from.iter().flatten().any(|e| e.secret_ref.is_some());
        secrets |= c.env.iter().flatten().any(|e| {
            e.value_from
                .as_ref()
                .is_some_and(|v| v.secret_key_ref.is_some())
        });
    }
    if secrets {
        return Err(Rejection("a mirror pod may not reference secrets".into()));
    }
    let token = spec.volumes.iter().flatten().any(|v| {
        v.projected.as_ref().is_some_and(|p| {
            p.sources
                .iter()
                .flatten()
                .any(|s| s.service_account_token.is_some())
        })
    });
    if token {
        return Err(Rejection(
            "a mirror pod may not use ServiceAccountToken volume projections".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn service_account_admission() {
        let sa: ServiceAccount = serde_json::from_value(
            json!({"metadata":{"name":"default","namespace":"awesomeapps"},
            "imagePullSecrets":[{"name":"myregistrykey"},{"name":"other"}]}),
        )
        .unwrap();
        let cases: Vec<(
            serde_json::Value,
            Option<&ServiceAccount>,
            Result<serde_json::Value, &str>,
        )> = vec![
            (
                json!({"metadata":{"name":"p"},"spec":{"containers":[]}}),
                Some(&sa),
                Ok(
                    json!({"containers":[],"serviceAccountName":"default","serviceAccount":"default",
                          "imagePullSecrets":[{"name":"myregistrykey"},{"name":"other"}]}),
                ),
            ),
            (
                json!({"metadata":{"name":"p"},"spec":{"containers":[],"imagePullSecrets":[{"name":"mine"}]}}),
                Some(&sa),
                Ok(
                    json!({"containers":[],"serviceAccountName":"default","serviceAccount":"default","imagePullSecrets":[{"name":"mine"}]}),
                ),
            ),
            (
                json!({"metadata":{"name":"p"},"spec":{"containers":[],"serviceAccountName":"x"}}),
                None,
                Err(
                    "error looking up service account awesomeapps/x: serviceaccount \"x\" not found",
                ),
            ),
            (
                json!({"metadata":{"name":"p","annotations":{"kubernetes.io/config.mirror":"h"}},"spec":{"containers":[],"nodeName":"n"}}),
                None,
                Ok(json!({"containers":[],"nodeName":"n"})),
            ),
            (
                json!({"metadata":{"name":"p","annotations":{"kubernetes.io/config.mirror":"h"}},"spec":{"containers":[],"volumes":[{"name":"s","secret":{"secretName":"x"}}]}}),
                None,
                Err("a mirror pod may not reference secrets"),
            ),
        ];
        for (input, account, want) in cases {
            let mut p = pod(input.clone());
            let got = admit(&mut p, "awesomeapps", account)
                .map(|()| serde_json::to_value(p.spec.as_ref().unwrap()).unwrap());
            match want {
                Ok(v) => assert_eq!(got.unwrap(), v, "{input}"),
                Err(m) => assert_eq!(got.unwrap_err().0, m, "{input}"),
            }
        }
        assert_eq!(
            account_to_look_up(&pod(
                json!({"metadata":{"name":"p"},"spec":{"containers":[]}})
            ))
            .as_deref(),
            Some("default")
        );
    }
}
