//! What exists in every cluster from the first start: the namespaces `default`,
//! `kube-system`, `kube-public` and `kube-node-lease` (each with its `default`
//! ServiceAccount), and in `default` the `kubernetes` Service (the first address of the
//! service CIDR, port 443 `https`) with its Endpoints and EndpointSlice (the advertised
//! address and the secure port), as kube-apiserver's bootstrap controller and endpoint
//! reconciler keep them. Idempotent: a restart creates
//! only what is missing; [`reconcile_periodically`] brings a deleted or altered one back.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use serde_json::{Value, json};

use crate::admission::KUBERNETES_SERVICE_IP;
use crate::errors::ApiResult;
use crate::namespaces::{self, SYSTEM};
use crate::resources::generic::{DeleteOptions, Resources, WriteOptions};
use crate::resources::{Kind, of};

/// The namespace and name of the API server's own Service, Endpoints and EndpointSlice.
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

fn kubernetes_endpoint_slice(advertised: SocketAddr) -> Value {
    let address_type = if advertised.is_ipv6() { "IPv6" } else { "IPv4" };
    json!({
        "metadata": {
            "name": KUBERNETES_SERVICE.1,
            "labels": {"kubernetes.io/service-name": KUBERNETES_SERVICE.1},
        },
        "addressType": address_type,
        "endpoints": [{
            "addresses": [advertised.ip().to_string()],
            "conditions": {"ready": true},
        }],
        "ports": https_ports(advertised.port(), false),
    })
}

/// Creates `want` when missing; otherwise copies the `fields` of `want` that differ over
/// the stored object and stores it (a concurrent write wins; the next round looks again).
async fn ensure(res: &Resources, kind: Kind, want: Value, fields: &[&str]) -> ApiResult<()> {
    let (ns, name) = KUBERNETES_SERVICE;
    let rt = of(kind);
    let Some(stored) = res.get_stored(rt, Some(ns), name).await? else {
        return create_if_missing(res, kind, Some(ns), name, want).await;
    };
    let mut current = stored.object;
    let mut changed = false;
    for field in fields {
        let wanted = field.split('.').fold(&want, |v, key| &v[key]);
        let now = field.split('.').fold(&mut current, |v, key| &mut v[key]);
        if now != wanted {
            *now = wanted.clone();
            changed = true;
        }
    }
    if !changed {
        return Ok(());
    }
    match res
        .update(rt, Some(ns), name, current, None, &WriteOptions::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(err) if matches!(err.reason(), "Conflict" | "NotFound") => Ok(()),
        Err(err) => Err(err),
    }
}

/// Creates the `kubernetes` Service, Endpoints and EndpointSlice when missing, and puts back
/// what they must say when it differs from `advertised`: the Service's type and ports, the
/// Endpoints' subsets, the slice's endpoints and ports. The ClusterIP is immutable, so a
/// Service that lost it stays as it is until deleted; a slice of the wrong address type is
/// replaced (the type is immutable too).
pub async fn reconcile_kubernetes_service(
    res: &Resources,
    advertised: SocketAddr,
) -> ApiResult<()> {
    let (ns, name) = KUBERNETES_SERVICE;
    ensure(
        res,
        Kind::Service,
        kubernetes_service(advertised),
        &["spec.type", "spec.ports"],
    )
    .await?;
    ensure(
        res,
        Kind::Endpoints,
        kubernetes_endpoints(advertised),
        &["subsets"],
    )
    .await?;
    let slice = kubernetes_endpoint_slice(advertised);
    if let Some(stored) = res
        .get_stored(of(Kind::EndpointSlice), Some(ns), name)
        .await?
        && stored.object["addressType"] != slice["addressType"]
    {
        match res
            .delete(
                of(Kind::EndpointSlice),
                Some(ns),
                name,
                &DeleteOptions::default(),
            )
            .await
        {
            Ok(_) => {}
            Err(err) if err.reason() == "NotFound" => {}
            Err(err) => return Err(err),
        }
    }
    ensure(
        res,
        Kind::EndpointSlice,
        slice,
        &["metadata.labels", "endpoints", "ports"],
    )
    .await
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
