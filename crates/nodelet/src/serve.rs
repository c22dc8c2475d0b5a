//! `nodelet serve`: the API server (with its store, PKI and admission), the node's own Node
//! object and its Lease heart-beat and the scheduler (off with `NODELET_SCHEDULER=0`), both
//! through `ApiServer::client` (the same router, no socket), and the kubelet (`serve_kubelet`)
//! on `kube::Client` over HTTPS with the admin kubeconfig.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use nodelet_api::k8s::api::core::v1::ObjectReference;
use nodelet_api::k8s::apimachinery::pkg::api::resource::Quantity;
use nodelet_apiserver::{ApiServer, LocalClient, ServerConfig, User};
use nodelet_kubelet::events::NodeSchedulableTracker;
use nodelet_kubelet::sources::api::events::EventRecorder;
use serde_json::{Value, json};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// API server state: the store, certificates and the admin kubeconfig.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/nodelet/server")]
    pub data_dir: PathBuf,
    /// Address the HTTPS API listens on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Admission plugins to enable besides the defaults (as kube-apiserver's flag); only
    /// `AlwaysPullImages` is optional here.
    #[arg(long, value_name = "PLUGINS", value_delimiter = ',')]
    pub enable_admission_plugins: Vec<String>,
}

/// How often the node's Lease is renewed (the kubelet's default).
const LEASE_RENEW: Duration = Duration::from_secs(10);
/// How long the Lease is valid.
const LEASE_DURATION_SECONDS: i64 = 40;
/// How often the Node's conditions are re-posted when nothing changed.
const STATUS_REPORT: Duration = Duration::from_secs(60);

pub fn run(
    args: ServeArgs,
    config: &crate::config::Config,
    root_dir: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    for plugin in &args.enable_admission_plugins {
        if plugin != "AlwaysPullImages" {
            anyhow::bail!(
                "unknown admission plugin {plugin:?} (only AlwaysPullImages is optional)"
            );
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args, config, root_dir))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(
    args: ServeArgs,
    node_config: &crate::config::Config,
    root_dir: &std::path::Path,
) -> anyhow::Result<()> {
    let node_name = hostname();
    let mut config = ServerConfig::new(&args.data_dir, args.listen);
    config.extra_names.push(node_name.clone());
    config.always_pull_images = args
        .enable_admission_plugins
        .iter()
        .any(|p| p == "AlwaysPullImages");
    let server = ApiServer::start(config).await.with_context(|| {
        format!(
            "starting the API server (data dir {})",
            args.data_dir.display()
        )
    })?;
    println!(
        "nodelet: API server listening on {}",
        nodelet_apiserver::server_url(server.local_addr())
    );
    println!("export KUBECONFIG={}", server.kubeconfig_path().display());

    let node_client = server.client(User {
        name: format!("system:node:{node_name}"),
        groups: vec!["system:nodes".into(), "system:authenticated".into()],
    });
    match node_config.runtime_handlers() {
        Ok(handlers) => server.set_pod_streams(std::sync::Arc::new(
            crate::serve_streams::NodeStreams::new(root_dir, &node_config.log_dir()?, handlers),
        )),
        Err(err) => eprintln!("nodelet: not serving pod logs and exec: {err:#}"),
    }
    let kubelet = match crate::serve_kubelet::api_source(
        server.kubeconfig_path(),
        &node_name,
        node_config,
        root_dir,
    )
    .await
    {
        Ok(source) => Some(source),
        Err(err) => {
            eprintln!("nodelet: not running pods: {err:#}");
            None
        }
    };
    // The Node's events are the kubelet's: written by its recorder, with its de-duplication.
    let node_events = kubelet
        .as_ref()
        .map(|source| EventRecorder::start(source.client.clone(), node_name.clone()));
    let heartbeat = tokio::spawn(heartbeat(node_client, node_name.clone(), node_events));
    let kubelet = kubelet.map(|source| tokio::spawn(source.run()));
    let scheduler = nodelet_scheduler::Scheduler::new(
        server.client(User {
            name: "system:kube-scheduler".into(),
            groups: vec!["system:authenticated".into()],
        }),
        nodelet_scheduler::Config {
            instance: format!("default-scheduler-{node_name}"),
            ..Default::default()
        },
    );
    // On unless `NODELET_SCHEDULER=0`: the kubelet above finishes the pods it binds.
    let scheduler = std::env::var_os("NODELET_SCHEDULER")
        .is_none_or(|v| v != "0")
        .then(|| tokio::spawn(scheduler.run()));
    server.run(shutdown_signal()).await;
    heartbeat.abort();
    if let Some(kubelet) = kubelet {
        kubelet.abort();
    }
    if let Some(scheduler) = scheduler {
        scheduler.abort();
    }
    Ok(())
}

/// Resolves at SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Registers the Node, then renews its Lease every 10 s and re-posts its status every minute;
/// at each round, a change of its `spec.unschedulable` is recorded as an event on it (when the
/// kubelet runs: `events`).
async fn heartbeat(client: LocalClient, node: String, events: Option<EventRecorder>) {
    let mut last_status = tokio::time::Instant::now();
    let mut registered = false;
    let mut schedulable = NodeSchedulableTracker::default();
    let mut ticker = tokio::time::interval(LEASE_RENEW);
    loop {
        ticker.tick().await;
        if !registered {
            match register_node(&client, &node).await {
                Ok(()) => {
                    registered = true;
                    last_status = tokio::time::Instant::now();
                }
                Err(err) => eprintln!("nodelet: registering node {node}: {err}"),
            }
        } else if last_status.elapsed() >= STATUS_REPORT {
            match post_status(&client, &node).await {
                Ok(()) => last_status = tokio::time::Instant::now(),
                Err(err) if err.reason() == "NotFound" => registered = false,
                Err(err) => eprintln!("nodelet: updating node {node} status: {err}"),
            }
        }
        if registered && let Err(err) = renew_lease(&client, &node).await {
            eprintln!("nodelet: renewing the lease of node {node}: {err}");
        }
        if registered && let Some(events) = &events {
            record_schedulable_change(&client, &node, &mut schedulable, events).await;
        }
    }
}

/// Upstream's `recordNodeSchedulableEvent`: `NodeNotSchedulable` when the Node was cordoned
/// since the last round, `NodeSchedulable` when uncordoned.
async fn record_schedulable_change(
    client: &LocalClient,
    node: &str,
    tracker: &mut NodeSchedulableTracker,
    events: &EventRecorder,
) {
    let unschedulable = match client.get(&format!("/api/v1/nodes/{node}")).await {
        Ok(object) => object["spec"]["unschedulable"].as_bool().unwrap_or(false),
        Err(err) => {
            eprintln!("nodelet: reading node {node}: {err}");
            return;
        }
    };
    if let Some(event) = tracker.observe(node, unschedulable) {
        // Upstream's node reference: uid = the node's name.
        let involved = ObjectReference {
            kind: Some("Node".into()),
            name: Some(node.into()),
            uid: Some(node.into()),
            ..ObjectReference::default()
        };
        events.record(involved, &event);
    }
}

pub(crate) fn now() -> String {
    jiff_now(false)
}

fn now_micro() -> String {
    jiff_now(true)
}

/// RFC 3339 UTC time (seconds, or microseconds for MicroTime fields), from the system clock.
fn jiff_now(micro: bool) -> String {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    if micro {
        format!(
            "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{:06}Z",
            since.subsec_micros()
        )
    } else {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// The node name: the hostname, lower-cased (as the kubelet does).
pub fn hostname() -> String {
    let name = read_trimmed("/proc/sys/kernel/hostname").to_lowercase();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn os_image() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| "Linux".into())
}

fn node_status(node: &str) -> Value {
    // The same CPUs and memory the kubelet's pod workers take as allocatable.
    let mut resources = crate::node::allocatable();
    resources.insert("pods".into(), Quantity("110".into()));
    let resources = json!(resources);
    let t = now();
    let condition = |ty: &str, status: &str, reason: &str, message: &str| {
        json!({"type": ty, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": t, "lastTransitionTime": t})
    };
    json!({
        "capacity": resources,
        "allocatable": resources,
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": crate::node::host_ip()},
            {"type": "Hostname", "address": node},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": read_trimmed("/etc/machine-id"),
            "systemUUID": read_trimmed("/sys/class/dmi/id/product_uuid"),
            "bootID": read_trimmed("/proc/sys/kernel/random/boot_id"),
            "kernelVersion": read_trimmed("/proc/sys/kernel/osrelease"),
            "osImage": os_image(),
            "containerRuntimeVersion": format!("nodelet://{}", env!("CARGO_PKG_VERSION")),
            "kubeletVersion": nodelet_api::kubernetes_version(),
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": arch(),
        },
    })
}

/// Creates the Node (or takes over an existing one) with a fresh status.
async fn register_node(
    client: &LocalClient,
    node: &str,
) -> Result<(), nodelet_apiserver::ApiError> {
    let body = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node,
            "labels": {
                "kubernetes.io/hostname": node,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch(),
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": arch(),
            },
        },
        "spec": {},
        "status": node_status(node),
    });
    match client.create("/api/v1/nodes", &body).await {
        Ok(_) => Ok(()),
        Err(err) if err.reason() == "AlreadyExists" => post_status(client, node).await,
        Err(err) => Err(err),
    }
}

async fn post_status(client: &LocalClient, node: &str) -> Result<(), nodelet_apiserver::ApiError> {
    let patch = json!({"status": node_status(node)});
    client
        .merge_patch(&format!("/api/v1/nodes/{node}/status"), &patch)
        .await
        .map(|_| ())
}

async fn renew_lease(client: &LocalClient, node: &str) -> Result<(), nodelet_apiserver::ApiError> {
    let path = format!("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}");
    let renew = now_micro();
    match client.get(&path).await {
        Ok(_) => client
            .merge_patch(
                &path,
                &json!({"spec": {"renewTime": renew, "holderIdentity": node}}),
            )
            .await
            .map(|_| ()),
        Err(err) if err.reason() == "NotFound" => {
            let owner = client.get(&format!("/api/v1/nodes/{node}")).await?;
            let body = json!({
                "metadata": {
                    "name": node,
                    "ownerReferences": [{
                        "apiVersion": "v1", "kind": "Node", "name": node,
                        "uid": owner["metadata"]["uid"],
                    }],
                },
                "spec": {
                    "holderIdentity": node,
                    "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                    "renewTime": renew,
                },
            });
            client
                .create(
                    "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                    &body,
                )
                .await
                .map(|_| ())
        }
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn node_status_has_capacity_and_ready() {
        let status = node_status("n1");
        assert_eq!(status["capacity"]["pods"], "110");
        assert!(
            status["capacity"]["memory"]
                .as_str()
                .unwrap()
                .ends_with("Ki")
        );
        assert_eq!(status["conditions"][3]["type"], "Ready");
        assert_eq!(
            status["nodeInfo"]["containerRuntimeVersion"],
            "nodelet://0.1.0"
        );
    }
}
