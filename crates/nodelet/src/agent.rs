//! `nodelet agent`: the kubelet without a control plane of its own. Built so far: standalone
//! mode (`--pod-manifest-path DIR`, or `pod_manifest_path` in the config file), which runs the
//! directory's static pods with no API server, prints their events and output on the terminal,
//! and on SIGINT/SIGTERM stops them all gracefully and exits 0. Joining a cluster
//! (`--kubeconfig`) is not built yet.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use nodelet_api::k8s::api::core::v1::Pod;
use nodelet_kubelet::pod_worker::PodReporter;
use nodelet_kubelet::sources::static_dir::{FILE_CHECK_FREQUENCY, StaticDirSource, StaticPodSink};

use crate::config::Config;
use crate::terminal::PodTerminalReporter;

/// Exit status when what was asked for is not built yet.
const EXIT_NOT_BUILT: u8 = 2;

#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// Run the static pods of this directory with no API server (the kubelet's standalone
    /// mode): one Pod per file, YAML or JSON, files starting with `.` ignored; re-read on
    /// changes and every 20 s.
    #[arg(long, value_name = "DIR")]
    pub pod_manifest_path: Option<PathBuf>,
    /// Join the API server of this kubeconfig as a node (not built yet).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

pub fn run(args: AgentArgs, config: &Config, root_dir: &Path) -> anyhow::Result<ExitCode> {
    if args.kubeconfig.is_some() {
        eprintln!(
            "nodelet agent --kubeconfig: joining a cluster is not built yet (tracked in issue 6)"
        );
        return Ok(ExitCode::from(EXIT_NOT_BUILT));
    }
    let Some(dir) = args
        .pod_manifest_path
        .or_else(|| config.pod_manifest_path.clone())
    else {
        eprintln!(
            "nodelet agent: nothing to run: give --pod-manifest-path DIR (or pod_manifest_path \
             in the config file); joining a cluster is not built yet (tracked in issue 6)"
        );
        return Ok(ExitCode::from(EXIT_NOT_BUILT));
    };
    if !dir.is_dir() {
        anyhow::bail!(
            "pod manifest path {}: not a directory (a single manifest file is not supported; \
             put it in a directory)",
            dir.display()
        );
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // Handlers first: a signal before the source runs must not kill us with pods half made.
    let (mut interrupt, mut terminate) = runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        anyhow::Ok((
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        ))
    })?;
    let source = StaticDirSource {
        dir: dir.clone(),
        node: crate::node::context(config, root_dir, crate::serve::hostname())?,
        services: crate::node::services(config, root_dir, runtime.handle())?,
        sink: Arc::new(TerminalSink),
        check_frequency: FILE_CHECK_FREQUENCY,
    }
    .watch()?;
    let stop = source.stop_handle();
    runtime.spawn(async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        eprintln!("nodelet: {name}: stopping all static pods");
        stop.stop();
    });
    eprintln!("nodelet: running the static pods of {}", dir.display());
    source.run();
    runtime.shutdown_background();
    eprintln!("nodelet: all static pods stopped");
    Ok(ExitCode::SUCCESS)
}

/// Every pod's events and output on the terminal, prefixed with its name.
#[derive(Debug)]
struct TerminalSink;

impl StaticPodSink for TerminalSink {
    fn pod_reporter(&self, pod: &Pod) -> Arc<dyn PodReporter> {
        Arc::new(PodTerminalReporter::new(pod))
    }

    fn notice(&self, message: &str) {
        eprintln!("nodelet: {message}");
    }
}
