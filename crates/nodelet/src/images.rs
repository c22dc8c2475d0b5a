//! `nodelet images`: pull, list, inspect and remove the node's images.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Subcommand;
use nodelet_image::keyring::{NodeCredentialFiles, NodeCredentials};
use nodelet_image::oci::Platform;
use nodelet_image::pull::{ImageService, PullProgress};
use nodelet_image::reference::Reference;
use nodelet_image::registry::{ClientOptions, RegistryClient, RegistryHosts};
use nodelet_image::store::ContentStore;

use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Pull an image (credentials from the node's docker config files, as the kubelet finds
    /// them: {root-dir}/config.json, ./config.json, ~/.docker/config.json, ...).
    Pull {
        /// e.g. `busybox:1.36`, `127.0.0.1:5000/app@sha256:...`
        image: String,
        /// Platform to pick from a multi-arch index: os/arch[/variant]; default: this machine's.
        #[arg(long)]
        platform: Option<String>,
    },
    /// List the images on this node.
    #[command(alias = "list")]
    Ls,
    /// Show an image's record: digests, platform, layers, config.
    Inspect { image: String },
    /// Remove images from the node's list (their content is reclaimed by `prune`).
    Rm {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Import an image from an OCI image layout directory (as `skopeo copy ... oci:DIR:REF`
    /// writes one); every blob is verified.
    Import {
        dir: PathBuf,
        /// The layout entry to import (its `org.opencontainers.image.ref.name`); needed when
        /// the layout holds several images.
        #[arg(long = "ref")]
        ref_name: Option<String>,
        /// The name to record, e.g. `example.com/app:v1` (default: the entry's
        /// `io.containerd.image.name` annotation).
        #[arg(long)]
        name: Option<String>,
        /// Platform to pick when the entry is a multi-arch index.
        #[arg(long)]
        platform: Option<String>,
    },
    /// Export an image as an OCI image layout directory (readable by `skopeo ... oci:DIR:REF`).
    Export {
        image: String,
        dir: PathBuf,
        /// Name of the entry in the layout (default: the image's tag, else `latest`).
        #[arg(long = "ref")]
        ref_name: Option<String>,
    },
    /// Remove blobs and unpacked layers no image uses.
    Prune {
        /// Keep content younger than this many seconds (protects pulls running in other
        /// processes that have not recorded their image yet).
        #[arg(long, default_value_t = 0)]
        min_age: u64,
    },
}

pub fn run(command: ImagesCommand, config: &Config, root_dir: &Path) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(command, config, root_dir))
}

async fn run_async(
    command: ImagesCommand,
    config: &Config,
    root_dir: &Path,
) -> anyhow::Result<ExitCode> {
    let service = open_service(config, root_dir)?;
    match command {
        ImagesCommand::Import {
            dir,
            ref_name,
            name,
            platform,
        } => {
            let platform = parse_platform(platform)?;
            let record = service
                .import_layout(
                    &dir,
                    ref_name.as_deref(),
                    name.as_deref(),
                    &platform,
                    progress(),
                )
                .await?;
            println!(
                "Imported {} ({}, {})",
                record.name, record.digest, record.platform
            );
            Ok(ExitCode::SUCCESS)
        }
        ImagesCommand::Export {
            image,
            dir,
            ref_name,
        } => {
            let reference = parse_reference(&image)?;
            let ref_name =
                ref_name.unwrap_or_else(|| reference.tag().unwrap_or("latest").to_string());
            service.export_layout(&reference.to_string(), &dir, &ref_name)?;
            println!("Exported {reference} to oci:{}:{ref_name}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        ImagesCommand::Prune { min_age } => {
            let report = service.prune_unreferenced(Duration::from_secs(min_age))?;
            println!(
                "Removed {} blobs and {} unpacked layers, {} freed",
                report.blobs_removed,
                report.snapshots_removed,
                human_size(report.bytes_freed)
            );
            Ok(ExitCode::SUCCESS)
        }
        ImagesCommand::Pull { image, platform } => {
            let reference = parse_reference(&image)?;
            let platform = parse_platform(platform)?;
            let node_credentials =
                NodeCredentials::new(NodeCredentialFiles::from_process(root_dir));
            let credentials = node_credentials.lookup(&reference.name(), Instant::now());
            let started = Instant::now();
            let record = service
                .pull(&reference, &platform, &credentials, progress())
                .await?;
            println!(
                "Pulled {} ({}, {}) in {:.3}s",
                record.name,
                record.digest,
                record.platform,
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        ImagesCommand::Ls => {
            println!(
                "{:<60} {:<19} {:<16} {:>10}",
                "IMAGE", "IMAGE ID", "PLATFORM", "SIZE"
            );
            for record in service.records().list() {
                let id = record.config_digest.trim_start_matches("sha256:");
                println!(
                    "{:<60} {:<19} {:<16} {:>10}",
                    record.name,
                    &id[..id.len().min(12)],
                    record.platform,
                    human_size(record.size)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ImagesCommand::Inspect { image } => {
            let name = parse_reference(&image)?.to_string();
            let Some(record) = service.records().get(&name) else {
                bail!("image {name} is not on this node");
            };
            println!("{}", serde_json::to_string_pretty(&record)?);
            Ok(ExitCode::SUCCESS)
        }
        ImagesCommand::Rm { images } => {
            let mut missing = false;
            for image in images {
                let name = parse_reference(&image)?.to_string();
                if service.records().remove(&name)? {
                    println!("Untagged {name}");
                } else {
                    eprintln!("nodelet: image {name} is not on this node");
                    missing = true;
                }
            }
            Ok(if missing {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

/// The image service rooted at `{root-dir}/image`, with the registries' settings.
pub fn open_service(config: &Config, root_dir: &Path) -> anyhow::Result<ImageService> {
    let store_root: PathBuf = root_dir.join("image");
    let store = ContentStore::open(&store_root)
        .with_context(|| format!("opening the image store {}", store_root.display()))?;
    let hosts = RegistryHosts::new(config.registries.clone(), RegistryHosts::system_cert_dirs());
    Ok(
        ImageService::new(store, RegistryClient::new(hosts, ClientOptions::default()))
            .with_pull_concurrency(config.pull_concurrency()?),
    )
}

fn parse_platform(platform: Option<String>) -> anyhow::Result<Platform> {
    match platform {
        Some(text) => Platform::parse(&text).map_err(anyhow::Error::msg),
        None => Ok(Platform::host()),
    }
}

/// Bars redrawn in place on a terminal, plain lines otherwise.
fn progress() -> Arc<dyn PullProgress> {
    if std::io::stderr().is_terminal() {
        Arc::new(TerminalProgress::default())
    } else {
        Arc::new(LineProgress)
    }
}

/// The reference with its default tag, as the kubelet normalises it.
fn parse_reference(image: &str) -> anyhow::Result<Reference> {
    let reference = nodelet_image::reference::parse_image_name(image)?;
    Ok(reference)
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// One line per event, for logs and pipes.
#[derive(Debug)]
struct LineProgress;

impl PullProgress for LineProgress {
    fn resolved(&self, image: &str, digest: &str) {
        eprintln!("resolved {image} to {digest}");
    }
    fn layer_started(&self, digest: &str, size: u64) {
        eprintln!("layer {} fetching {}", short(digest), human_size(size));
    }
    fn layer_done(&self, digest: &str, already_present: bool) {
        let what = if already_present {
            "already present"
        } else {
            "done"
        };
        eprintln!("layer {} {what}", short(digest));
    }
}

/// A line per layer, redrawn in place at most every 100 ms.
#[derive(Debug, Default)]
struct TerminalProgress {
    state: Mutex<TerminalState>,
}

#[derive(Debug, Default)]
struct TerminalState {
    layers: Vec<(String, u64, u64, &'static str)>,
    drawn_lines: usize,
    last_draw: Option<Instant>,
}

impl TerminalProgress {
    fn update(
        &self,
        digest: &str,
        change: impl FnOnce(&mut (String, u64, u64, &'static str)),
        force: bool,
    ) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let index = match state.layers.iter().position(|l| l.0 == digest) {
            Some(index) => index,
            None => {
                state.layers.push((digest.to_string(), 0, 0, "waiting"));
                state.layers.len() - 1
            }
        };
        change(&mut state.layers[index]);
        let due = state
            .last_draw
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        if force || due {
            let mut out = String::new();
            if state.drawn_lines > 0 {
                out.push_str(&format!("\x1b[{}A", state.drawn_lines));
            }
            for (digest, size, done, status) in &state.layers {
                let bar_width = 30;
                let filled = if *size == 0 {
                    bar_width
                } else {
                    ((*done).min(*size) * bar_width as u64 / size) as usize
                };
                out.push_str(&format!(
                    "\x1b[2K{} [{}{}] {:>9} / {:<9} {status}\n",
                    short(digest),
                    "=".repeat(filled),
                    " ".repeat(bar_width - filled),
                    human_size(*done),
                    human_size(*size)
                ));
            }
            eprint!("{out}");
            state.drawn_lines = state.layers.len();
            state.last_draw = Some(Instant::now());
        }
    }
}

impl PullProgress for TerminalProgress {
    fn layer_started(&self, digest: &str, size: u64) {
        self.update(digest, |l| (l.1, l.3) = (size, "fetching"), true);
    }
    fn layer_progress(&self, digest: &str, bytes: u64) {
        self.update(digest, |l| l.2 += bytes, false);
    }
    fn layer_done(&self, digest: &str, already_present: bool) {
        let status = if already_present {
            "already present"
        } else {
            "done"
        };
        self.update(
            digest,
            |l| {
                l.2 = l.1;
                l.3 = status;
            },
            true,
        );
    }
}

fn short(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    &hex[..hex.len().min(12)]
}
