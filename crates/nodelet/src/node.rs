//! The node as every pod source sees it: its services (images, runtime handlers, shims, pod
//! network, credentials) and its facts (name, IPs, allocatable, directories), made once from
//! the configuration and shared by `run`, `agent` and `serve`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use nodelet_api::k8s::apimachinery::pkg::api::resource::Quantity;
use nodelet_image::keyring::{NodeCredentialFiles, NodeCredentials};
use nodelet_image::oci::Platform;
use nodelet_kubelet::pod_worker::{DEFAULT_CLUSTER_DOMAIN, NodeContext, NodeServices};
use nodelet_runtime::pause::PauseLauncher;
use nodelet_runtime::shim::ShimLauncher;

/// What every pod worker of this node drives.
pub fn services(
    config: &crate::config::Config,
    root_dir: &Path,
    runtime: &tokio::runtime::Handle,
) -> anyhow::Result<NodeServices> {
    std::thread::scope(|scope| {
        // The network's iptables check is the slow part: the rest is made meanwhile.
        let network = scope.spawn(|| pod_network(root_dir));
        let images = crate::images::open_service(config, root_dir);
        let handlers = config.runtime_handlers();
        let network = network
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        Ok(NodeServices {
            images: Arc::new(images?),
            handlers: handlers?,
            node_credentials: Arc::new(NodeCredentials::new(NodeCredentialFiles::from_process(
                root_dir,
            ))),
            platform: Platform::host(),
            runtime: runtime.clone(),
            shim: ShimLauncher::this_binary()
                .context("finding the nodelet binary for the shims")?,
            network,
            pause: PauseLauncher::this_binary().ok(),
            node_resolv_conf: node_resolv_conf(),
        })
    })
}

/// The node named `node_name`, with its pods under `{root_dir}/pods`.
pub fn context(
    config: &crate::config::Config,
    root_dir: &Path,
    node_name: String,
) -> anyhow::Result<NodeContext> {
    Ok(NodeContext {
        node_name,
        host_ip: host_ip(),
        allocatable: allocatable(),
        // Bind-mount sources must be absolute.
        pods_dir: std::path::absolute(root_dir.join("pods")).context("the root directory")?,
        log_dir: config.log_dir()?,
        cluster_domain: DEFAULT_CLUSTER_DOMAIN.into(),
        cgroup_parent: config.cgroup_parent(),
        log_rotation: config.log_rotation()?,
    })
}

/// The node's pod network: nodelet's CNI configuration under the root dir (written with the
/// defaults when there is none). Without it only host-network pods can run; say why.
fn pod_network(root_dir: &Path) -> Option<Arc<nodelet_runtime::cni::Network>> {
    let settings = nodelet_runtime::cni::NetworkSettings::under_root(
        &std::path::absolute(root_dir).unwrap_or_else(|_| root_dir.to_owned()),
    );
    match nodelet_runtime::cni::Network::load_or_write_default(&settings) {
        Ok(network) => Some(Arc::new(network)),
        Err(err) => {
            eprintln!("nodelet: no pod network, only hostNetwork pods can run: {err}");
            None
        }
    }
}

/// The node's `/etc/resolv.conf`, which pods with host DNS get (as the kubelet's
/// `--resolv-conf` default).
fn node_resolv_conf() -> Option<String> {
    std::fs::read_to_string("/etc/resolv.conf").ok()
}

/// The node's primary IPv4 address (the source address of its default route), or
/// 127.0.0.1 without one: the address the API server advertises when it listens on
/// loopback, found the same way.
pub fn host_ip() -> String {
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    nodelet_apiserver::bootstrap::advertise_address(loopback).to_string()
}

/// CPUs and memory of the node (no reservations yet).
pub fn allocatable() -> BTreeMap<String, Quantity> {
    let mut out = BTreeMap::new();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    out.insert("cpu".into(), Quantity(cpus.to_string()));
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    if let Some(kib) = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
    {
        out.insert("memory".into(), Quantity(format!("{kib}Ki")));
    }
    out
}
