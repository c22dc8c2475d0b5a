//! The kubelet inside `nodelet serve`: `nodelet_kubelet`'s API pod source on a `kube::Client`
//! made from the admin kubeconfig the API server wrote (HTTPS to itself), so the same code
//! can join any API server.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};
use nodelet_kubelet::pod_worker::{DEFAULT_CLUSTER_DOMAIN, NodeContext};
use nodelet_kubelet::sources::api::ApiSource;

/// The API pod source for `node_name`, talking to the API server of `kubeconfig`.
pub async fn api_source(
    kubeconfig: &Path,
    node_name: &str,
    config: &crate::config::Config,
    root_dir: &Path,
) -> anyhow::Result<ApiSource> {
    let kubeconfig_data = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let client_config =
        kube::Config::from_custom_kubeconfig(kubeconfig_data, &KubeConfigOptions::default())
            .await
            .with_context(|| format!("loading {}", kubeconfig.display()))?;
    let client = kube::Client::try_from(client_config).context("making the API client")?;
    let host_ip = crate::run::host_ip();
    Ok(ApiSource {
        client,
        node: NodeContext {
            node_name: node_name.to_owned(),
            host_ip,
            allocatable: crate::run::allocatable(),
            pods_dir: std::path::absolute(root_dir.join("pods"))
                .unwrap_or_else(|_| root_dir.join("pods")),
            log_dir: config.log_dir()?,
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.into(),
            cgroup_parent: config.cgroup_parent(),
        },
        images: Arc::new(crate::images::open_service(config, root_dir)?),
        handlers: config.runtime_handlers()?,
        root_dir: root_dir.to_owned(),
        shim: nodelet_runtime::shim::ShimLauncher::this_binary()?,
        network: crate::run::pod_network(root_dir),
        pause: nodelet_runtime::pause::PauseLauncher::this_binary().ok(),
        node_resolv_conf: crate::run::node_resolv_conf(),
    })
}
