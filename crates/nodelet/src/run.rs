//! `nodelet run -f FILE`: one pod with no server. The file's Pod (with the objects it refers
//! to) runs under a `nodelet_kubelet` pod worker; its events and the containers' output go to
//! the terminal, SIGINT/SIGTERM terminate it gracefully, and the exit status is the pod's: 0
//! when it succeeded, the failing container's exit code otherwise, 1 when it could not start.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use nodelet_kubelet::pod_worker::{PodReporter, PodWorker, WorkerOptions};
use nodelet_kubelet::sources::file::{FileSourceOptions, ManifestError, read_manifest};

use crate::config::Config;
use crate::terminal::TerminalReporter;

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
    let services = crate::node::services(config, root_dir, runtime.handle())?;
    let node = crate::node::context(config, root_dir, node_name)?;
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
