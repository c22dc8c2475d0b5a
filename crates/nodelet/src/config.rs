//! The configuration file. Each section belongs to the crate that owns the concept
//! (`registries` to the image service, `runtimes` to the runtime's handler table); this module
//! only finds, reads and parses the file.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::Context;
use nodelet_runtime::handlers::{HandlerTable, RuntimeHandlerConfig};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Handler used when a pod names no RuntimeClass (default `runc`).
    pub default_runtime: Option<String>,
    /// RuntimeClass handlers by name; none means `runc` from PATH.
    #[serde(default)]
    pub runtimes: BTreeMap<String, RuntimeHandlerConfig>,
    /// Per-registry settings (insecure, CA file, mirrors) by `host[:port]`.
    #[serde(default)]
    pub registries: BTreeMap<String, nodelet_image::registry::RegistrySettings>,
    /// Where containers' CRI log files go (default `/var/log/pods`).
    pub log_dir: Option<std::path::PathBuf>,
    /// `nodelet agent`'s static pod manifest directory when `--pod-manifest-path` is not given.
    pub pod_manifest_path: Option<PathBuf>,
    /// Where pod cgroups go in each hierarchy (default `nodelet/kubepods`).
    pub cgroup_parent: Option<String>,
    /// The kubelet's `containerLogMaxSize`: a container's log is rotated when it would grow
    /// past this, bytes or a quantity such as `"10Mi"` (the default).
    pub container_log_max_size: Option<ByteSize>,
    /// The kubelet's `containerLogMaxFiles`: log files kept per container, the current one
    /// included (default 5, at least 2).
    pub container_log_max_files: Option<i64>,
    /// The kubelet's `serializeImagePulls`: one image pull at a time on the node, the others
    /// queued (default true).
    pub serialize_image_pulls: Option<bool>,
    /// The kubelet's `maxParallelImagePulls`: at most this many pulls at once when they are
    /// not serialized (default: no limit); above 1 needs `serialize_image_pulls = false`.
    pub max_parallel_image_pulls: Option<i64>,
}

/// A size in the configuration: a number of bytes or a Kubernetes quantity (`"10Mi"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ByteSize {
    Bytes(i64),
    Quantity(String),
}

impl ByteSize {
    fn bytes(&self) -> anyhow::Result<i128> {
        match self {
            ByteSize::Bytes(bytes) => Ok(i128::from(*bytes)),
            ByteSize::Quantity(text) => nodelet_api::quantity::Quantity::parse(text)
                .map(|q| q.value())
                .with_context(|| format!("container_log_max_size {text:?}")),
        }
    }
}

impl Config {
    pub const DEFAULT_PATH: &'static str = "/etc/nodelet/config.toml";

    /// Reads `path`. A missing file means built-in defaults, unless the user named it.
    pub fn load(path: &Path, explicit: bool) -> anyhow::Result<Config> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == ErrorKind::NotFound && !explicit => {
                return Ok(Config::default());
            }
            Err(err) => {
                return Err(err).with_context(|| format!("reading config {}", path.display()));
            }
        };
        let config: Config =
            toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))?;
        // Handler names and default_runtime are checked now, not when the first pod needs them.
        config
            .runtime_handlers()
            .with_context(|| format!("config {}", path.display()))?;
        config
            .log_rotation()
            .with_context(|| format!("config {}", path.display()))?;
        config
            .pull_concurrency()
            .with_context(|| format!("config {}", path.display()))?;
        Ok(config)
    }

    /// How many image pulls run at once (the kubelet's defaults for what is not set).
    pub fn pull_concurrency(
        &self,
    ) -> Result<
        nodelet_image::pull_queue::PullConcurrency,
        nodelet_image::pull_queue::PullConcurrencyError,
    > {
        nodelet_image::pull_queue::PullConcurrency::from_settings(
            self.serialize_image_pulls.unwrap_or(true),
            self.max_parallel_image_pulls,
        )
    }

    /// The pod log directory, absolute (the shims run with `/` as their working directory).
    pub fn log_dir(&self) -> anyhow::Result<std::path::PathBuf> {
        let dir = self
            .log_dir
            .clone()
            .unwrap_or_else(|| nodelet_runtime::logs::DEFAULT_LOG_DIR.into());
        std::path::absolute(&dir).with_context(|| format!("the log directory {}", dir.display()))
    }

    /// When the shims rotate container logs (the kubelet's defaults for what is not set).
    pub fn log_rotation(&self) -> anyhow::Result<nodelet_runtime::logs::LogRotation> {
        use nodelet_runtime::logs::{DEFAULT_MAX_FILES, DEFAULT_MAX_SIZE, LogRotation};
        let max_size = match &self.container_log_max_size {
            Some(size) => size.bytes()?,
            None => i128::from(DEFAULT_MAX_SIZE),
        };
        let max_files = self
            .container_log_max_files
            .unwrap_or(i64::from(DEFAULT_MAX_FILES));
        Ok(LogRotation::new(max_size, max_files)?)
    }

    /// The parent of pod cgroups, relative to each hierarchy's root.
    pub fn cgroup_parent(&self) -> String {
        self.cgroup_parent
            .clone()
            .unwrap_or_else(|| nodelet_runtime::pod_cgroup::DEFAULT_PARENT.into())
    }

    /// The RuntimeClass handler table of `default_runtime` and `[runtimes.*]`.
    pub fn runtime_handlers(
        &self,
    ) -> Result<HandlerTable, nodelet_runtime::handlers::HandlerError> {
        HandlerTable::from_config(self.default_runtime.as_deref(), &self.runtimes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_default_file_means_defaults() {
        let config = Config::load(Path::new("/nonexistent/nodelet.toml"), false).unwrap();
        assert!(config.runtimes.is_empty());
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let err = Config::load(Path::new("/nonexistent/nodelet.toml"), true).unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/nodelet.toml"));
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "default_runtme = \"runc\"\n").unwrap();
        let err = Config::load(&path, true).unwrap_err();
        assert!(format!("{err:#}").contains("default_runtme"), "{err:#}");
    }

    #[test]
    fn reads_runtime_and_registry_sections() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            r#"
default_runtime = "runc"
[runtimes.runc]
runtime_path = "/usr/sbin/runc"
[registries."127.0.0.1:5000"]
insecure = true
"#,
        )
        .unwrap();
        let config = Config::load(&path, true).unwrap();
        assert_eq!(config.default_runtime.as_deref(), Some("runc"));
        assert!(config.runtimes.contains_key("runc"));
        assert!(config.registries.contains_key("127.0.0.1:5000"));
        let runc = &config.runtimes["runc"];
        assert_eq!(
            runc.runtime_path.as_deref(),
            Some(Path::new("/usr/sbin/runc"))
        );
        assert_eq!(config.runtime_handlers().unwrap().default_name(), "runc");
    }

    #[test]
    fn reads_the_pod_manifest_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "pod_manifest_path = \"/etc/nodelet/manifests\"\n").unwrap();
        let config = Config::load(&path, true).unwrap();
        assert_eq!(
            config.pod_manifest_path.as_deref(),
            Some(Path::new("/etc/nodelet/manifests"))
        );
    }

    #[test]
    fn reads_and_checks_the_container_log_rotation() {
        use nodelet_runtime::logs::LogRotation;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let load = |text: &str| {
            std::fs::write(&path, text).unwrap();
            Config::load(&path, true)
        };
        let rotation = |text: &str| load(text).unwrap().log_rotation().unwrap();
        assert_eq!(rotation(""), LogRotation::default());
        assert_eq!(
            rotation("container_log_max_size = \"10Mi\"\ncontainer_log_max_files = 2\n"),
            LogRotation::new(10 * 1024 * 1024, 2).unwrap()
        );
        assert_eq!(rotation("container_log_max_size = 4096\n").max_size, 4096);
        let err = |text: &str| format!("{:#}", load(text).unwrap_err());
        let message = err("container_log_max_files = 1\n");
        assert!(
            message.contains("container_log_max_files must be at least 2"),
            "{message}"
        );
        let message = err("container_log_max_size = \"ten megs\"\n");
        assert!(
            message.contains("container_log_max_size \"ten megs\""),
            "{message}"
        );
        let message = err("container_log_max_size = 0\n");
        assert!(
            message.contains("must be a positive number of bytes"),
            "{message}"
        );
    }

    #[test]
    fn reads_and_checks_the_image_pull_settings() {
        use nodelet_image::pull_queue::PullConcurrency;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let load = |text: &str| {
            std::fs::write(&path, text).unwrap();
            Config::load(&path, true)
        };
        let concurrency = |text: &str| load(text).unwrap().pull_concurrency().unwrap();
        assert_eq!(concurrency(""), PullConcurrency::Serial);
        assert_eq!(
            concurrency("max_parallel_image_pulls = 1\n"),
            PullConcurrency::Serial
        );
        assert_eq!(
            concurrency("serialize_image_pulls = false\n"),
            PullConcurrency::Parallel { limit: None }
        );
        assert_eq!(
            concurrency("serialize_image_pulls = false\nmax_parallel_image_pulls = 3\n"),
            PullConcurrency::Parallel {
                limit: std::num::NonZeroUsize::new(3)
            }
        );
        let err = |text: &str| format!("{:#}", load(text).unwrap_err());
        let message = err("max_parallel_image_pulls = 2\n");
        assert!(
            message.contains(&format!("config {}", path.display()))
                && message.contains(
                    "max_parallel_image_pulls cannot be larger than 1 unless serialize_image_pulls is set to false"
                ),
            "{message}"
        );
        let message = err("serialize_image_pulls = false\nmax_parallel_image_pulls = 0\n");
        assert!(
            message.contains("max_parallel_image_pulls 0 must be a positive number"),
            "{message}"
        );
        let message = err("serialize_image_pulls = \"no\"\n");
        assert!(message.contains("serialize_image_pulls"), "{message}");
    }

    #[test]
    fn runtime_handler_names_and_default_are_checked_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "default_runtime = \"runc\"\n[runtimes.Runc_2]\n").unwrap();
        let err = format!("{:#}", Config::load(&path, true).unwrap_err());
        assert!(
            err.contains("\"Runc_2\"") && err.contains("DNS-1123 label"),
            "{err}"
        );
        std::fs::write(&path, "default_runtime = \"kata\"\n[runtimes.runc]\n").unwrap();
        let err = format!("{:#}", Config::load(&path, true).unwrap_err());
        assert!(err.contains("default_runtime \"kata\""), "{err}");
        std::fs::write(&path, "[runtimes.runc]\nruntime_pth = \"/x\"\n").unwrap();
        let err = format!("{:#}", Config::load(&path, true).unwrap_err());
        assert!(err.contains("runtime_pth"), "{err}");
    }
}
