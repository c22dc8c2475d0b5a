//! Namespace lifecycle beyond plain storage: a new namespace gets its `default`
//! ServiceAccount; a deleted one turns `Terminating`, its contents are deleted (pods on a node
//! gracefully, through their kubelet), and only then does the namespace itself go. The
//! system namespaces cannot be deleted.

use std::time::Duration;

use crate::admission::ensure_default_service_account;
use crate::errors::{ApiError, ApiResult};
use crate::resources::generic::{DeleteOptions, ListParams, Resources};
use crate::resources::{Kind, RESOURCES, ResourceType, meta, of};

/// Namespaces that exist from the start and stay.
pub const SYSTEM: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// After a namespace was created.
pub async fn created(res: &Resources, name: &str) -> ApiResult<()> {
    ensure_default_service_account(res, name).await
}

/// Refuses deleting a system namespace, with upstream's message.
pub fn check_deletable(rt: &ResourceType, name: &str) -> ApiResult<()> {
    if SYSTEM[..3].contains(&name) {
        return Err(ApiError::forbidden(
            rt,
            name,
            "this namespace may not be deleted",
        ));
    }
    Ok(())
}

/// Deletes everything in `ns`, then `ns` itself, in the background.
pub fn spawn_finalizer(res: Resources, ns: String) {
    tokio::spawn(async move {
        loop {
            match finalize_once(&res, &ns).await {
                Ok(true) => return,
                Ok(false) => {}
                Err(err) => tracing::warn!(namespace = %ns, error = %err, "namespace cleanup"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
}

/// Resumes the cleanup of namespaces left Terminating by a previous run.
pub async fn resume_finalizers(res: &Resources) -> ApiResult<()> {
    let page = res
        .list(of(Kind::Namespace), None, &ListParams::default())
        .await?;
    for ns in page.items {
        if ns["status"]["phase"] == "Terminating" {
            spawn_finalizer(res.clone(), meta::name(&ns).to_owned());
        }
    }
    Ok(())
}

/// One pass: deletes what is left; `true` once the namespace itself is gone.
async fn finalize_once(res: &Resources, ns: &str) -> ApiResult<bool> {
    let mut left = 0usize;
    for rt in RESOURCES
        .iter()
        .filter(|r| r.namespaced && r.id != Kind::EventV1)
    {
        let page = res.list(rt, Some(ns), &ListParams::default()).await?;
        for item in page.items {
            left += 1;
            let name = meta::name(&item).to_owned();
            match res
                .delete(rt, Some(ns), &name, &DeleteOptions::default())
                .await
            {
                Ok(_) => {}
                Err(err) if err.reason() == "NotFound" => {}
                Err(err) => return Err(err),
            }
        }
    }
    if left > 0 {
        // Check again: graceful pods go when their kubelet is done.
        return Ok(false);
    }
    let namespaces = of(Kind::Namespace);
    let Some(stored) = res.get_stored(namespaces, None, ns).await? else {
        return Ok(true);
    };
    match res
        .store()
        .delete(&namespaces.key(None, ns), Some(stored.revision))
        .await
    {
        Ok(_) => Ok(true),
        Err(nodelet_store::StoreError::NotFound { .. }) => Ok(true),
        Err(nodelet_store::StoreError::Conflict { .. }) => Ok(false),
        Err(other) => Err(ApiError::from_store(other)),
    }
}
