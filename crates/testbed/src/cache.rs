//! Images built and pushed once, then shared by every bed: a registry storage tree holding all
//! images (`storage-all`, served by B and C) and a hard-linked copy without the private one
//! (`storage-public`, served by A). Beds serve these trees read-only, so no test can change
//! what another sees. A file lock makes concurrent test processes build it once.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::images::{self, TestImage, WireFormat};
use crate::registry::{Auth, RegistryProcess, RegistrySpec};
use crate::{Error, RECIPE_VERSION};

/// What a prepared cache holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prepared {
    /// The OCI image layout the images were pushed from.
    pub layout: PathBuf,
    pub storage_all: PathBuf,
    pub storage_public: PathBuf,
    pub images: BTreeMap<String, TestImage>,
}

/// Returns the cached images, building and pushing them first if this recipe was never built.
pub fn prepare(cache: &Path) -> Result<Prepared, Error> {
    let root = cache.join(RECIPE_VERSION);
    fs::create_dir_all(&root)?;
    let manifest = root.join("prepared.json");
    let lock = File::create(root.join("lock"))?;
    lock.lock()?;
    if let Ok(bytes) = fs::read(&manifest)
        && let Ok(prepared) = serde_json::from_slice::<Prepared>(&bytes)
    {
        return Ok(prepared);
    }
    let prepared = build(&root)?;
    let tmp = root.join("prepared.json.tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(&prepared)?)?;
    fs::rename(tmp, manifest)?;
    Ok(prepared)
}

fn build(root: &Path) -> Result<Prepared, Error> {
    let layout = root.join("layout");
    let storage_all = root.join("storage-all");
    let storage_public = root.join("storage-public");
    for dir in [&layout, &storage_all, &storage_public] {
        if dir.exists() {
            fs::remove_dir_all(dir)?;
        }
    }
    let mut images = images::build_layout(&layout, Path::new(crate::BUSYBOX))?;

    let pusher = RegistryProcess::start(&RegistrySpec {
        name: "populate".into(),
        dir: root.to_path_buf(),
        storage: storage_all.clone(),
        read_only: false,
        tls: None,
        auth: Auth::Anonymous,
    })?;
    let host = pusher.addr().to_string();
    for image in images.values_mut() {
        for tag in &image.tags {
            push(&layout, image, &host, tag)?;
        }
        let raw = skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{host}/{}:{}", image.repository, image.tags[0]),
        ])?;
        image.digest = format!("sha256:{}", images::sha256_hex(&raw));
        image.media_type = serde_json::from_slice::<serde_json::Value>(&raw)?["mediaType"]
            .as_str()
            .unwrap_or_default()
            .to_string();
    }
    drop(pusher);

    // Blobs are immutable and the beds never write: hard links make the copy free.
    run(Command::new("cp")
        .arg("-al")
        .arg(&storage_all)
        .arg(&storage_public))?;
    for image in images.values().filter(|i| i.private) {
        fs::remove_dir_all(
            storage_public
                .join("docker/registry/v2/repositories")
                .join(&image.repository),
        )?;
    }
    Ok(Prepared {
        layout,
        storage_all,
        storage_public,
        images,
    })
}

fn push(layout: &Path, image: &TestImage, host: &str, tag: &str) -> Result<(), Error> {
    let source = format!("oci:{}:{}", layout.display(), image.repository);
    let destination = format!("docker://{host}/{}:{tag}", image.repository);
    let mut args = vec!["copy", "--quiet", "--dest-tls-verify=false"];
    if !image.platforms.is_empty() {
        args.push("--all");
    }
    if image.format == WireFormat::DockerSchema2 {
        args.extend(["--format", "v2s2"]);
    }
    args.extend([source.as_str(), destination.as_str()]);
    skopeo(&args).map(drop)
}

pub(crate) fn skopeo(args: &[&str]) -> Result<Vec<u8>, Error> {
    run(Command::new("skopeo").args(args))
}

fn run(command: &mut Command) -> Result<Vec<u8>, Error> {
    let output = command
        .output()
        .map_err(|e| Error::setup(format!("running {:?}: {e}", command.get_program())))?;
    if !output.status.success() {
        return Err(Error::setup(format!(
            "{:?} {:?} failed ({}): {}",
            command.get_program(),
            command.get_args().collect::<Vec<_>>(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(output.stdout)
}
