//! The kubelet inside `nodelet serve`: `nodelet_kubelet`'s API pod source on a `kube::Client`
//! made from the admin kubeconfig the API server wrote (HTTPS to itself), so the same code
//! can join any API server.

use std::path::Path;

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};
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
    Ok(ApiSource {
        client,
        node: crate::node::context(config, root_dir, node_name.to_owned())?,
        services: crate::node::services(config, root_dir, &tokio::runtime::Handle::current())?,
    })
}
