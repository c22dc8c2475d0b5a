//! The test images, built offline from busybox-static into one OCI image layout.
//!
//! Everything is deterministic (fixed mtimes and owners, sorted entries, a seeded generator
//! for the "random" data), so the digests are the same on every machine and a cached build
//! can be trusted by its recipe version alone.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;

use aws_lc_rs::digest;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::Error;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Applets linked to `/bin/busybox` in every image.
const APPLETS: &[&str] = &[
    "cat", "chmod", "cp", "date", "dd", "echo", "env", "false", "grep", "head", "hostname", "id",
    "kill", "ln", "ls", "mkdir", "mv", "nc", "printenv", "ps", "pwd", "rm", "sh", "sleep", "stat",
    "tail", "test", "touch", "true", "uname", "wc", "wget", "whoami",
];

/// How an image reaches the registries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireFormat {
    /// Pushed as built: OCI manifest or index media types.
    Oci,
    /// Converted on push to Docker schema2 (manifest, or manifest list for an index).
    DockerSchema2,
}

/// One image of the bed, as the registries serve it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestImage {
    /// Repository name inside each registry, e.g. `tiny`.
    pub repository: String,
    /// Tags it is pushed under.
    pub tags: Vec<String>,
    /// Media types on the wire.
    pub format: WireFormat,
    /// Only on the registries that require credentials.
    pub private: bool,
    /// Digest of the manifest (or index) the registries serve.
    pub digest: String,
    /// Its media type, e.g. `application/vnd.docker.distribution.manifest.v2+json`.
    pub media_type: String,
    /// Digest of the manifest (or index) in the OCI layout; it differs from [`Self::digest`]
    /// for images converted to Docker schema2 on push.
    pub layout_digest: String,
    /// Total compressed layer bytes of the (first) manifest.
    pub compressed_bytes: u64,
    /// `os/arch[/variant]` of each manifest an index offers (empty for a single manifest).
    pub platforms: Vec<String>,
}

/// Which images exist and how they are built. Bump [`crate::RECIPE_VERSION`] when changing it.
pub fn build_layout(dir: &Path, busybox: &Path) -> Result<BTreeMap<String, TestImage>, Error> {
    let busybox_bytes = fs::read(busybox).map_err(|e| {
        Error::setup(format!(
            "reading {} (apt-get install busybox-static): {e}",
            busybox.display()
        ))
    })?;
    let mut layout = Layout::create(dir)?;
    let base = layout.layer(&busybox_root(&busybox_bytes)?)?;
    let mut images = BTreeMap::new();
    let mut add = |name: &str, format: WireFormat, private: bool, built: Built| {
        images.insert(
            name.to_string(),
            TestImage {
                repository: name.to_string(),
                tags: vec!["v1".into(), "latest".into()],
                format,
                private,
                digest: built.digest.clone(),
                media_type: built.media_type.to_string(),
                layout_digest: built.digest,
                compressed_bytes: built.compressed_bytes,
                platforms: built.platforms,
            },
        );
    };

    let tiny = layout.image("amd64", None, &basic_config(), std::slice::from_ref(&base))?;
    layout.tag("tiny", &tiny)?;
    add("tiny", WireFormat::Oci, false, tiny);

    let medium = medium_layers(&mut layout, &base)?;
    let medium = layout.image("amd64", None, &basic_config(), &medium)?;
    layout.tag("medium", &medium)?;
    add("medium", WireFormat::Oci, false, medium);

    let multi = multi_arch(&mut layout, &base)?;
    for (name, format) in [
        ("multi", WireFormat::Oci),
        ("multi-docker", WireFormat::DockerSchema2),
    ] {
        layout.tag(name, &multi)?;
        add(name, format, false, multi.clone());
    }

    let app = layout.layer(&Tree::new().dir("srv/app", 0o755).file(
        "srv/app/README",
        0o644,
        b"served from the config image\n",
    ))?;
    let config = layout.image("amd64", None, &rich_config(), &[base.clone(), app])?;
    layout.tag("config", &config)?;
    add("config", WireFormat::DockerSchema2, false, config);

    let lower = layout.layer(
        &Tree::new()
            .dir("data", 0o755)
            .file("data/keep", 0o644, b"kept\n")
            .file("data/gone", 0o644, b"deleted by the upper layer\n")
            .dir("data/opaque", 0o755)
            .file(
                "data/opaque/old",
                0o644,
                b"hidden by the opaque directory\n",
            )
            .dir("data/opaque/sub", 0o755)
            .file("data/opaque/sub/older", 0o644, b"hidden too\n"),
    )?;
    let upper = layout.layer(
        &Tree::new()
            .dir("data", 0o755)
            .file("data/.wh.gone", 0o644, b"")
            .dir("data/opaque", 0o755)
            .file("data/opaque/.wh..wh..opq", 0o644, b"")
            .file("data/opaque/new", 0o644, b"only file left in data/opaque\n"),
    )?;
    let whiteout = layout.image(
        "amd64",
        None,
        &basic_config(),
        &[base.clone(), lower, upper],
    )?;
    layout.tag("whiteout", &whiteout)?;
    add("whiteout", WireFormat::Oci, false, whiteout);

    let secret = layout.layer(&Tree::new().dir("etc", 0o755).file(
        "etc/private-image",
        0o644,
        b"this image is private\n",
    ))?;
    let private = layout.image("amd64", None, &basic_config(), &[base, secret])?;
    layout.tag("private", &private)?;
    add("private", WireFormat::Oci, true, private);

    layout.finish()?;
    Ok(images)
}

/// busybox with a few dozen applets, `/etc/passwd` with root, an `app` user (1000) and nobody.
fn busybox_root(busybox: &[u8]) -> Result<Tree, Error> {
    let mut tree = Tree::new()
        .dir("bin", 0o755)
        .file("bin/busybox", 0o755, busybox)
        .dir("dev", 0o755)
        .dir("etc", 0o755)
        .file(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )
        .file("etc/group", 0o644, b"root:x:0:\napp:x:1000:\nnogroup:x:65534:\n")
        .dir("home", 0o755)
        .dir("home/app", 0o755)
        .dir("proc", 0o755)
        .dir("root", 0o700)
        .dir("sys", 0o755)
        .dir("tmp", 0o1777)
        .dir("var", 0o755);
    for applet in APPLETS {
        tree = tree.symlink(&format!("bin/{applet}"), "busybox");
    }
    Ok(tree)
}

/// 2 x 40 MiB of incompressible data and 2 x 60 MiB of repetitive log text over busybox:
/// about 200 MiB unpacked, as the anchor measurements use.
fn medium_layers(layout: &mut Layout, base: &Layer) -> Result<Vec<Layer>, Error> {
    const MIB: usize = 1024 * 1024;
    let mut layers = vec![base.clone()];
    for n in 1..=2u64 {
        let data = pseudo_random_bytes(40 * MIB, n);
        layers.push(layout.layer(&Tree::new().dir("data", 0o755).file(
            &format!("data/random{n}.bin"),
            0o644,
            &data,
        ))?);
    }
    for n in 1..=2 {
        let text = log_text(60 * MIB, n);
        layers.push(layout.layer(&Tree::new().dir("data", 0o755).file(
            &format!("data/text{n}.log"),
            0o644,
            &text,
        ))?);
    }
    Ok(layers)
}

/// An index offering linux/amd64 and linux/arm64/v8; each image carries `/etc/architecture`
/// naming its platform, so a test can tell which one was unpacked.
fn multi_arch(layout: &mut Layout, base: &Layer) -> Result<Built, Error> {
    let mut manifests = Vec::new();
    for (arch, variant) in [("amd64", None), ("arm64", Some("v8"))] {
        let platform = match variant {
            Some(v) => format!("linux/{arch}/{v}"),
            None => format!("linux/{arch}"),
        };
        let marker = layout.layer(&Tree::new().dir("etc", 0o755).file(
            "etc/architecture",
            0o644,
            format!("{platform}\n").as_bytes(),
        ))?;
        let image = layout.image(arch, variant, &basic_config(), &[base.clone(), marker])?;
        manifests.push((image, arch, variant, platform));
    }
    let entries: Vec<_> = manifests
        .iter()
        .map(|(image, arch, variant, _)| {
            let mut platform = json!({"architecture": arch, "os": "linux"});
            if let Some(v) = variant {
                platform["variant"] = json!(v);
            }
            json!({"mediaType": OCI_MANIFEST, "digest": image.digest, "size": image.size, "platform": platform})
        })
        .collect();
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries});
    let (digest, size) = layout.blob(&serde_json::to_vec(&index)?)?;
    Ok(Built {
        digest,
        size,
        media_type: OCI_INDEX,
        compressed_bytes: manifests[0].0.compressed_bytes,
        platforms: manifests.into_iter().map(|m| m.3).collect(),
    })
}

fn basic_config() -> serde_json::Value {
    json!({"Env": [PATH_ENV], "Cmd": ["/bin/sh"], "WorkingDir": "/"})
}

/// Every image-config field the kubelet and runtime must honour.
fn rich_config() -> serde_json::Value {
    json!({
        "Env": [PATH_ENV, "GREETING=hello from the image config", "EMPTY=", "OVERRIDE_ME=image"],
        "Entrypoint": ["/bin/echo", "entrypoint"],
        "Cmd": ["from", "cmd"],
        "WorkingDir": "/srv/app",
        "User": "1000:1000",
        "StopSignal": "SIGUSR1",
        "ExposedPorts": {"8080/tcp": {}, "5353/udp": {}},
        "Labels": {"org.opencontainers.image.title": "config", "io.nodelet.testbed": "config-image"},
    })
}

/// splitmix64: fast, seeded, and good enough that gzip cannot shrink it.
fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn log_text(len: usize, layer: u32) -> Vec<u8> {
    const WORDS: [&str; 10] = [
        "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
    ];
    let mut out = Vec::with_capacity(len + 256);
    let mut i: u64 = 1;
    while out.len() < len {
        let _ = writeln!(
            out,
            "{i:09} layer{layer} {} INFO the quick brown fox jumps over the lazy dog; request ok status=200 bytes={}",
            WORDS[(i % 10) as usize],
            (i * 7919) % 65536
        );
        i += 1;
    }
    out.truncate(len);
    out
}

/// A file tree to turn into one layer tar (entries in insertion order, which callers keep
/// sorted by writing parents first).
#[derive(Debug, Default)]
struct Tree {
    entries: Vec<Entry>,
}

#[derive(Debug)]
enum Entry {
    Dir {
        path: String,
        mode: u32,
    },
    File {
        path: String,
        mode: u32,
        data: Vec<u8>,
    },
    Symlink {
        path: String,
        target: String,
    },
}

impl Tree {
    fn new() -> Tree {
        Tree::default()
    }
    fn dir(mut self, path: &str, mode: u32) -> Tree {
        self.entries.push(Entry::Dir {
            path: path.into(),
            mode,
        });
        self
    }
    fn file(mut self, path: &str, mode: u32, data: &[u8]) -> Tree {
        self.entries.push(Entry::File {
            path: path.into(),
            mode,
            data: data.to_vec(),
        });
        self
    }
    fn symlink(mut self, path: &str, target: &str) -> Tree {
        self.entries.push(Entry::Symlink {
            path: path.into(),
            target: target.into(),
        });
        self
    }

    fn to_tar(&self) -> Result<Vec<u8>, Error> {
        let mut tar = tar::Builder::new(Vec::new());
        for entry in &self.entries {
            let mut header = tar::Header::new_ustar();
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            match entry {
                Entry::Dir { path, mode } => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(*mode);
                    header.set_size(0);
                    tar.append_data(&mut header, format!("{path}/"), std::io::empty())?;
                }
                Entry::File { path, mode, data } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_size(data.len() as u64);
                    tar.append_data(&mut header, path, data.as_slice())?;
                }
                Entry::Symlink { path, target } => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_size(0);
                    tar.append_link(&mut header, path, target)?;
                }
            }
        }
        Ok(tar.into_inner()?)
    }
}

/// A layer blob in the layout.
#[derive(Debug, Clone)]
struct Layer {
    digest: String,
    size: u64,
    diff_id: String,
}

/// A manifest or index blob in the layout.
#[derive(Debug, Clone)]
struct Built {
    digest: String,
    size: u64,
    media_type: &'static str,
    compressed_bytes: u64,
    platforms: Vec<String>,
}

/// Writes an OCI image layout: blobs by digest plus `index.json` naming each image.
#[derive(Debug)]
struct Layout {
    dir: std::path::PathBuf,
    refs: Vec<serde_json::Value>,
}

impl Layout {
    fn create(dir: &Path) -> Result<Layout, Error> {
        fs::create_dir_all(dir.join("blobs/sha256"))?;
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        Ok(Layout {
            dir: dir.to_path_buf(),
            refs: Vec::new(),
        })
    }

    fn blob(&mut self, bytes: &[u8]) -> Result<(String, u64), Error> {
        let hex = sha256_hex(bytes);
        fs::write(self.dir.join("blobs/sha256").join(&hex), bytes)?;
        Ok((format!("sha256:{hex}"), bytes.len() as u64))
    }

    fn layer(&mut self, tree: &Tree) -> Result<Layer, Error> {
        let tar = tree.to_tar()?;
        let diff_id = format!("sha256:{}", sha256_hex(&tar));
        let mut gz = GzEncoder::new(Vec::with_capacity(tar.len() / 2), Compression::new(6));
        gz.write_all(&tar)?;
        let (digest, size) = self.blob(&gz.finish()?)?;
        Ok(Layer {
            digest,
            size,
            diff_id,
        })
    }

    fn image(
        &mut self,
        arch: &str,
        variant: Option<&str>,
        config: &serde_json::Value,
        layers: &[Layer],
    ) -> Result<Built, Error> {
        let mut image_config = json!({
            "created": "1970-01-01T00:00:00Z",
            "architecture": arch,
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| &l.diff_id).collect::<Vec<_>>()},
            "history": layers.iter().map(|_| json!({"created": "1970-01-01T00:00:00Z", "created_by": "nodelet-testbed"})).collect::<Vec<_>>(),
        });
        if let Some(v) = variant {
            image_config["variant"] = json!(v);
        }
        let (config_digest, config_size) = self.blob(&serde_json::to_vec(&image_config)?)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
            "layers": layers.iter().map(|l| json!({"mediaType": OCI_LAYER_GZIP, "digest": l.digest, "size": l.size})).collect::<Vec<_>>(),
        });
        let (digest, size) = self.blob(&serde_json::to_vec(&manifest)?)?;
        Ok(Built {
            digest,
            size,
            media_type: OCI_MANIFEST,
            compressed_bytes: layers.iter().map(|l| l.size).sum(),
            platforms: Vec::new(),
        })
    }

    fn tag(&mut self, name: &str, built: &Built) -> Result<(), Error> {
        self.refs.push(json!({
            "mediaType": built.media_type,
            "digest": built.digest,
            "size": built.size,
            "annotations": {"org.opencontainers.image.ref.name": name},
        }));
        Ok(())
    }

    fn finish(self) -> Result<(), Error> {
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.refs});
        fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec_pretty(&index)?,
        )?;
        Ok(())
    }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = digest::digest(&digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_data_is_deterministic_and_does_not_repeat_early() {
        let a = pseudo_random_bytes(4096, 1);
        assert_eq!(a, pseudo_random_bytes(4096, 1));
        assert_ne!(a, pseudo_random_bytes(4096, 2));
        assert_ne!(a[..2048], a[2048..]);
    }

    #[test]
    fn layer_tars_are_reproducible() {
        let tree = || {
            Tree::new()
                .dir("a", 0o755)
                .file("a/b", 0o600, b"x")
                .symlink("a/c", "b")
        };
        assert_eq!(tree().to_tar().unwrap(), tree().to_tar().unwrap());
    }
}
