//! What exists in every cluster from the first start: the namespaces `default`,
//! `kube-system`, `kube-public` and `kube-node-lease` (each with its `default`
//! ServiceAccount), and the `kubernetes` Service (10.96.0.1:443) in `default`. Idempotent:
//! a restart creates only what is missing.

use serde_json::json;

use crate::admission::KUBERNETES_SERVICE_IP;
use crate::errors::ApiResult;
use crate::namespaces::{self, SYSTEM};
use crate::resources::generic::{Resources, WriteOptions};
use crate::resources::{Kind, of};

async fn create_if_missing(
    res: &Resources,
    kind: Kind,
    ns: Option<&str>,
    name: &str,
    body: serde_json::Value,
) -> ApiResult<()> {
    let rt = of(kind);
    if res.get_stored(rt, ns, name).await?.is_some() {
        return Ok(());
    }
    match res.create(rt, ns, body, &WriteOptions::default()).await {
        Ok(_) => Ok(()),
        Err(err) if err.reason() == "AlreadyExists" => Ok(()),
        Err(err) => Err(err),
    }
}

/// Creates the system namespaces and the `kubernetes` Service. `https_port` is the port the
/// API listens on (the Service's targetPort).
pub async fn run(res: &Resources, https_port: u16) -> ApiResult<()> {
    for ns in SYSTEM {
        create_if_missing(
            res,
            Kind::Namespace,
            None,
            ns,
            json!({"metadata": {"name": ns}}),
        )
        .await?;
        namespaces::created(res, ns).await?;
    }
    let service = json!({
        "metadata": {
            "name": "kubernetes",
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": KUBERNETES_SERVICE_IP.to_string(),
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": https_port}],
            "sessionAffinity": "None",
        },
    });
    create_if_missing(res, Kind::Service, Some("default"), "kubernetes", service).await?;
    namespaces::resume_finalizers(res).await
}
