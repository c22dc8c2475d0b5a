//! `nodelet run -f FILE`: one pod with no server. The file's Pod (with the objects it refers
//! to) runs under a `nodelet_kubelet` pod worker; its events and the containers' output go to
//! the terminal, SIGINT/SIGTERM terminate it gracefully, and the exit status is the pod's: 0
//! when it succeeded, the failing container's exit code otherwise, 1 when it could not start.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use nodelet_api::k8s::apimachinery::pkg::api::resource::Quantity;
use nodelet_image::keyring::{NodeCredentialFiles, NodeCredentials};
use nodelet_image::oci::Platform;
use nodelet_kubelet::events::Event;
use nodelet_kubelet::pod_worker::{
    DEFAULT_CLUSTER_DOMAIN, NodeContext, NodeServices, PodReporter, PodWorker, Stream,
    WorkerOptions,
};
use nodelet_kubelet::sources::file::{FileSourceOptions, ManifestError, read_manifest};
use nodelet_runtime::shim::ShimLauncher;

use crate::config::Config;

pub fn run(file: &Path, config: &Config, root_dir: &Path) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let node_name = crate::serve::hostname();
    let options = FileSourceOptions {
        node_name: node_name.clone(),
        uid: new_uid()?,
        name_suffix: random_suffix()?,
    };
    let manifest = match read_manifest(&file.display().to_string(), &text, &options) {
        Ok(m) => m,
        Err(ManifestError::Invalid(message)) => {
            eprintln!("The {message}");
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e.into()),
    };
    let pod_name = format!(
        "{}/{}",
        manifest
            .pod
            .metadata
            .namespace
            .as_deref()
            .unwrap_or("default"),
        manifest.pod.metadata.name.as_deref().unwrap_or("")
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let images = crate::images::open_service(config, root_dir)?;
    let handlers = config.runtime_handlers()?;
    let services = NodeServices {
        images: Arc::new(images),
        handlers,
        node_credentials: NodeCredentials::new(NodeCredentialFiles::from_process(root_dir)),
        platform: Platform::host(),
        runtime: runtime.handle().clone(),
        shim: ShimLauncher::this_binary().context("finding the nodelet binary for the shims")?,
        network: pod_network(root_dir),
        pause: nodelet_runtime::pause::PauseLauncher::this_binary().ok(),
        node_resolv_conf: node_resolv_conf(),
    };
    let node = NodeContext {
        node_name,
        host_ip: host_ip(),
        allocatable: allocatable(),
        // Bind-mount sources must be absolute.
        pods_dir: std::path::absolute(root_dir.join("pods")).context("the root directory")?,
        log_dir: config.log_dir()?,
        cluster_domain: DEFAULT_CLUSTER_DOMAIN.into(),
        cgroup_parent: config.cgroup_parent(),
    };
    let reporter: Arc<dyn PodReporter> = Arc::new(TerminalReporter);
    let worker = PodWorker::new(
        manifest.pod,
        manifest.objects,
        services,
        node,
        reporter,
        WorkerOptions {
            give_up_on_start_failure: true,
            keep_logs_when_finished: false,
        },
    );
    let stop = worker.stop_handle();
    runtime.spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut interrupt), Ok(mut terminate)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        eprintln!("nodelet: {name}: terminating the pod");
        stop.stop();
    });

    let outcome = worker.run();
    runtime.shutdown_background();
    for (name, exit) in &outcome.last_exits {
        if !exit.message.is_empty() {
            eprintln!(
                "nodelet: container {name} ({}, exit code {}) termination message: {}",
                exit.reason,
                exit.code,
                exit.message.trim_end()
            );
        }
    }
    if outcome.exit_code != 0 && outcome.phase == nodelet_kubelet::status::Phase::Failed {
        eprintln!(
            "nodelet: pod {pod_name} {}: {}",
            outcome.phase.as_str(),
            outcome.message
        );
    } else {
        eprintln!("nodelet: pod {pod_name} {}", outcome.phase.as_str());
    }
    Ok(ExitCode::from(u8::try_from(outcome.exit_code).unwrap_or(1)))
}

/// Events as `Type  Reason  Message` on stderr; container output as `[name] line` on stdout
/// (the container's stderr on stderr).
#[derive(Debug)]
struct TerminalReporter;

impl PodReporter for TerminalReporter {
    fn event(&self, _field_path: Option<&str>, event: &Event) {
        eprintln!(
            "{}  {}  {}",
            event.kind.as_str(),
            event.reason,
            event.message
        );
    }

    fn output(&self, container: &str, stream: Stream, line: &[u8]) {
        let mut text = format!("[{container}] ").into_bytes();
        text.extend_from_slice(line);
        text.push(b'\n');
        let _ = match stream {
            Stream::Stdout => std::io::stdout().lock().write_all(&text),
            Stream::Stderr => std::io::stderr().lock().write_all(&text),
        };
    }

    fn log(&self, message: &str) {
        eprintln!("nodelet: {message}");
    }
}

/// A random (version 4) UUID for the pod.
fn new_uid() -> anyhow::Result<String> {
    let mut b = random_bytes::<16>()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

/// Five characters for `generateName`, from the API server's alphabet.
fn random_suffix() -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    Ok(random_bytes::<5>()?
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect())
}

fn random_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    use std::io::Read;
    let mut out = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut out))
        .context("reading /dev/urandom")?;
    Ok(out)
}

/// The node's pod network: nodelet's CNI configuration under the root dir (written with the
/// defaults when there is none). Without it only host-network pods can run; say why.
pub(crate) fn pod_network(root_dir: &Path) -> Option<Arc<nodelet_runtime::cni::Network>> {
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
pub(crate) fn node_resolv_conf() -> Option<String> {
    std::fs::read_to_string("/etc/resolv.conf").ok()
}

/// The node's primary IPv4 address (the source address of its default route), or
/// 127.0.0.1 without one. Connecting a UDP socket sends nothing.
pub(crate) fn host_ip() -> String {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("192.0.2.1:9")?;
            s.local_addr()
        })
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| "127.0.0.1".into())
}

/// CPUs and memory of the node (no reservations yet).
pub(crate) fn allocatable() -> BTreeMap<String, Quantity> {
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
