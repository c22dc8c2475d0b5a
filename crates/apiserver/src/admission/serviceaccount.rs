//! ServiceAccount admission for pods (create only): an empty `serviceAccountName` becomes
//! `default`, the account must exist, and a pod without `imagePullSecrets` gets the
//! account's, verbatim and in order (a pod that names any keeps exactly its own).
//!
//! Upstream a controller creates each namespace's `default` account asynchronously; here the
//! namespace create writes it at once, and this plugin recreates it if it was deleted, so a
//! pod never races the controller. (Token volumes are not mounted: no token issuer yet.)

use serde_json::{Value, json};

use crate::errors::{ApiError, ApiResult};
use crate::resources::generic::{Resources, WriteOptions};
use crate::resources::{Kind, ResourceType, meta, of};

/// The name of every namespace's own ServiceAccount.
pub const DEFAULT: &str = "default";

/// Creates the `default` ServiceAccount of `ns` unless it exists.
pub async fn ensure_default(res: &Resources, ns: &str) -> ApiResult<()> {
    let sa = of(Kind::ServiceAccount);
    if res.get_stored(sa, Some(ns), DEFAULT).await?.is_some() {
        return Ok(());
    }
    let body = json!({"metadata": {"name": DEFAULT, "namespace": ns}});
    match Box::pin(res.create(sa, Some(ns), body, &WriteOptions::default())).await {
        Ok(_) => Ok(()),
        Err(err) if err.reason() == "AlreadyExists" => Ok(()),
        Err(err) => Err(err),
    }
}

pub async fn admit(res: &Resources, rt: &'static ResourceType, pod: &mut Value) -> ApiResult<()> {
    let ns = meta::namespace(pod).unwrap_or("").to_owned();
    let spec = &mut pod["spec"];
    let name = match spec["serviceAccountName"].as_str() {
        Some(n) if !n.is_empty() => n.to_owned(),
        _ => DEFAULT.to_owned(),
    };
    spec["serviceAccountName"] = json!(name);
    spec["serviceAccount"] = json!(name);
    let sa_type = of(Kind::ServiceAccount);
    let mut account = res.get_stored(sa_type, Some(&ns), &name).await?;
    if account.is_none() && name == DEFAULT {
        ensure_default(res, &ns).await?;
        account = res.get_stored(sa_type, Some(&ns), &name).await?;
    }
    let Some(account) = account else {
        return Err(ApiError::forbidden(
            rt,
            meta::name(pod),
            &format!(
                "error looking up service account {ns}/{name}: serviceaccount {} not found",
                crate::errors::quote(&name)
            ),
        ));
    };
    let has_own = pod["spec"]["imagePullSecrets"]
        .as_array()
        .is_some_and(|s| !s.is_empty());
    if !has_own
        && let Some(secrets) = account.object["imagePullSecrets"].as_array()
        && !secrets.is_empty()
    {
        let names: Vec<Value> = secrets
            .iter()
            .map(|s| json!({"name": s["name"].as_str().unwrap_or("")}))
            .collect();
        pod["spec"]["imagePullSecrets"] = Value::Array(names);
    }
    Ok(())
}
