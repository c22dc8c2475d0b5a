//! What exists in every cluster from the first start: the namespaces `default`,
//! `kube-system`, `kube-public` and `kube-node-lease` (each with its `default`
//! ServiceAccount), and in `default` the `kubernetes` Service (the first address of the
//! service CIDR, port 443 `https`) with its Endpoints (the advertised address and the secure
//! port), as kube-apiserver's bootstrap controller keeps them. Idempotent: a restart creates
//! only what is missing; [`reconcile_periodically`] brings a deleted or altered one back.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use serde_json::{Value, json};

use crate::admission::KUBERNETES_SERVICE_IP;
use crate::errors::ApiResult;
use crate::namespaces::{self, SYSTEM};
use crate::resources::generic::{Resources, WriteOptions};
use crate::resources::{Kind, of};

/// The namespace and name of the API server's own Service and Endpoints.
pub const KUBERNETES_SERVICE: (&str, &str) = ("default", "kubernetes");

/// How often the `kubernetes` Service and Endpoints are checked (kube-apiserver's
/// `--endpoint-reconciler` interval).
pub const RECONCILE_INTERVAL: Duration = Duration::from_secs(10);

async fn create_if_missing(
    res: &Resources,
    kind: Kind,
    ns: Option<&str>,
    name: &str,
    body: Value,
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

/// The address other parties reach the API at, as kube-apiserver defaults
/// `--advertise-address`: the listen address when it is a specific non-loopback one,
/// otherwise the address of the host's default route (loopback addresses are not valid
/// endpoints).
pub fn advertise_address(listen: SocketAddr) -> IpAddr {
    let ip = listen.ip();
    if !ip.is_unspecified() && !ip.is_loopback() {
        return ip;
    }
    // Connecting a UDP socket sends nothing; it only picks the route's source address.
    UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("192.0.2.1:9")?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or(ip)
}

fn https_ports(port: u16, target: bool) -> Value {
    if target {
        json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}])
    } else {
        json!([{"name": "https", "port": port, "protocol": "TCP"}])
    }
}

fn kubernetes_service(advertised: SocketAddr) -> Value {
    json!({
        "metadata": {
            "name": KUBERNETES_SERVICE.1,
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": KUBERNETES_SERVICE_IP.to_string(),
            "ports": https_ports(advertised.port(), true),
            "sessionAffinity": "None",
        },
    })
}

fn kubernetes_subsets(advertised: SocketAddr) -> Value {
    json!([{
        "addresses": [{"ip": advertised.ip().to_string()}],
        "ports": https_ports(advertised.port(), false),
    }])
}

fn kubernetes_endpoints(advertised: SocketAddr) -> Value {
    json!({
        "metadata": {
            "name": KUBERNETES_SERVICE.1,
            // Upstream marks it so the EndpointSlice mirroring controller leaves it alone.
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
        },
        "subsets": kubernetes_subsets(advertised),
    })
}

/// Stores `changed` over `stored` (whose resourceVersion it keeps); a concurrent write wins
/// and the next round looks again.
async fn replace(res: &Resources, kind: Kind, changed: Value) -> ApiResult<()> {
    let (ns, name) = KUBERNETES_SERVICE;
    match res
        .update(
            of(kind),
            Some(ns),
            name,
            changed,
            None,
            &WriteOptions::default(),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(err) if matches!(err.reason(), "Conflict" | "NotFound") => Ok(()),
        Err(err) => Err(err),
    }
}

/// Creates the `kubernetes` Service and Endpoints when missing, and puts back their ports
/// (Service) and address (Endpoints) when they differ from `advertised`. The ClusterIP is
/// immutable, so a Service that lost it stays as it is until deleted.
pub async fn reconcile_kubernetes_service(
    res: &Resources,
    advertised: SocketAddr,
) -> ApiResult<()> {
    let (ns, name) = KUBERNETES_SERVICE;
    match res.get_stored(of(Kind::Service), Some(ns), name).await? {
        None => {
            let body = kubernetes_service(advertised);
            create_if_missing(res, Kind::Service, Some(ns), name, body).await?;
        }
        Some(stored) => {
            let want = kubernetes_service(advertised);
            let mut svc = stored.object;
            if svc["spec"]["ports"] != want["spec"]["ports"]
                || svc["spec"]["type"] != want["spec"]["type"]
            {
                svc["spec"]["ports"] = want["spec"]["ports"].clone();
                svc["spec"]["type"] = want["spec"]["type"].clone();
                replace(res, Kind::Service, svc).await?;
            }
        }
    }
    match res.get_stored(of(Kind::Endpoints), Some(ns), name).await? {
        None => {
            let body = kubernetes_endpoints(advertised);
            create_if_missing(res, Kind::Endpoints, Some(ns), name, body).await?;
        }
        Some(stored) => {
            let mut ep = stored.object;
            let want = kubernetes_subsets(advertised);
            if ep["subsets"] != want {
                ep["subsets"] = want;
                replace(res, Kind::Endpoints, ep).await?;
            }
        }
    }
    Ok(())
}

/// Re-runs [`reconcile_kubernetes_service`] every `interval`, for ever.
pub async fn reconcile_periodically(res: Resources, advertised: SocketAddr, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(err) = reconcile_kubernetes_service(&res, advertised).await {
            tracing::warn!(error = %err, "reconciling the kubernetes Service");
        }
    }
}

/// Creates the system namespaces and the `kubernetes` Service and Endpoints pointing at
/// `advertised` (the advertised address and the secure port).
pub async fn run(res: &Resources, advertised: SocketAddr) -> ApiResult<()> {
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
    reconcile_kubernetes_service(res, advertised).await?;
    namespaces::resume_finalizers(res).await
}
