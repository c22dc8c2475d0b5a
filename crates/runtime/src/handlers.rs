//! The RuntimeClass handler table: which OCI runtime, with which flags, a handler name means.
//!
//! From the configuration file:
//! ```toml
//! default_runtime = "runc"          # the handler for pods without a RuntimeClass
//! [runtimes.runc]                   # the name a RuntimeClass's `handler` uses
//! runtime_path = "/usr/sbin/runc"   # absolute, or a name looked up in PATH (default: the handler's name)
//! [runtimes.crun]
//! runtime_path = "crun"
//! root = "/run/nodelet/crun"        # the runtime's state directory (--root); default: its own
//! hide_cgroup2 = true               # see below; default: automatic
//! [runtimes.runc-debug]
//! runtime_path = "/usr/sbin/runc"
//! runtime_args = ["--debug"]        # extra global flags, before the subcommand
//! ```
//! With no `[runtimes.*]` table at all the table holds `runc` and `crun`, those found in PATH
//! (`runc` alone when neither is), and the default is `crun` when it is there: its `create`
//! is a C program's few milliseconds where runc's Go start-up and re-exec take tens (podman
//! and CRI-O default to it too). With tables, `default_runtime` defaults to `runc`; either
//! way it must name a configured handler.
//!
//! `hide_cgroup2`: crun refuses to run on a hybrid cgroup host (v1 hierarchies plus a cgroup2
//! mount at `/sys/fs/cgroup/unified`) when controllers are enabled on the cgroup2 mount ("drop
//! all controllers from cgroupv2"). With `hide_cgroup2` every invocation of the runtime runs in
//! a private mount namespace of its own where that cgroup2 mount is unmounted, so crun sees a
//! plain v1 host and manages the container's cgroups there; nothing changes for the host or
//! other processes. Unset, it is on exactly when the binary is named `crun*` and the host is
//! hybrid with controllers on its cgroup2 mount; `false` turns it off, `true` forces it
//! (for a crun under another name) wherever the host is hybrid.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nodelet_sys::cgroup::CgroupLayout;
use serde::Deserialize;

use crate::oci_runtime::{OciRuntime, RuntimeError};

/// The handler used when the configuration names none.
pub const DEFAULT_HANDLER: &str = "runc";
/// The built-in table's choice when it is installed ([module docs](self)).
pub const PREFERRED_BUILTIN_HANDLER: &str = "crun";

/// One `[runtimes.<name>]` table of the configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeHandlerConfig {
    /// The runtime binary: an absolute path or a name looked up in `PATH`; default: the
    /// handler's name.
    #[serde(default)]
    pub runtime_path: Option<PathBuf>,
    /// Extra global flags, put before the subcommand on every invocation.
    #[serde(default)]
    pub runtime_args: Vec<String>,
    /// The runtime's state directory (`--root`); default: the runtime's own (`/run/runc`, ...).
    #[serde(default)]
    pub root: Option<PathBuf>,
    /// Run the runtime where the hybrid host's cgroup2 mount is hidden (module docs);
    /// default: automatic.
    #[serde(default)]
    pub hide_cgroup2: Option<bool>,
}

/// A configured handler, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handler {
    pub name: String,
    /// The binary: absolute when found in `PATH`, else as configured (it fails when run).
    pub binary: PathBuf,
    pub global_args: Vec<String>,
    pub root: Option<PathBuf>,
    /// The cgroup2 mount to hide from the runtime, if any.
    pub hidden_cgroup2: Option<PathBuf>,
}

impl Handler {
    /// A driver for this handler's runtime.
    pub fn runtime(&self) -> OciRuntime {
        OciRuntime::new(self)
    }

    /// Checks that the runtime runs: its `--version` output's first line.
    pub fn probe(&self) -> Result<String, RuntimeError> {
        self.runtime().version()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HandlerError {
    #[error(
        "runtime handler {name:?}: the name must be a DNS-1123 label (at most 63 characters: lowercase letters, \
         digits and '-', starting and ending with a letter or digit): {problem}"
    )]
    InvalidName { name: String, problem: String },
    /// containerd's wording, which the kubelet's `FailedCreatePodSandBox` event carries.
    #[error("no runtime for {name:?} is configured (configured: {})", .configured.join(", "))]
    Unknown {
        name: String,
        configured: Vec<String>,
    },
    #[error("default_runtime {name:?} is not one of the configured runtimes ({})", .configured.join(", "))]
    UnknownDefault {
        name: String,
        configured: Vec<String>,
    },
    #[error("runtime handler {name:?}: runtime_path is empty")]
    EmptyPath { name: String },
}

/// Handlers by name, and the default one.
#[derive(Debug, Clone)]
pub struct HandlerTable {
    default: String,
    handlers: BTreeMap<String, Handler>,
}

impl HandlerTable {
    /// Builds the table from the configuration file's `default_runtime` and `runtimes`,
    /// looking at this host's cgroups for the `hide_cgroup2` default.
    pub fn from_config(
        default_runtime: Option<&str>,
        runtimes: &BTreeMap<String, RuntimeHandlerConfig>,
    ) -> Result<HandlerTable, HandlerError> {
        // Unknown layouts (no /sys/fs/cgroup) hide nothing.
        let layout = nodelet_sys::cgroup::host_cgroup_layout().unwrap_or(CgroupLayout::Legacy);
        HandlerTable::from_config_on(default_runtime, runtimes, &layout, &search_path())
    }

    /// [`HandlerTable::from_config`] for a given cgroup layout and `PATH`.
    pub fn from_config_on(
        default_runtime: Option<&str>,
        runtimes: &BTreeMap<String, RuntimeHandlerConfig>,
        layout: &CgroupLayout,
        path: &[PathBuf],
    ) -> Result<HandlerTable, HandlerError> {
        let builtin;
        let (runtimes, default) = if runtimes.is_empty() {
            builtin = builtin_runtimes(path);
            let preferred = if builtin.contains_key(PREFERRED_BUILTIN_HANDLER) {
                PREFERRED_BUILTIN_HANDLER
            } else {
                DEFAULT_HANDLER
            };
            (&builtin, default_runtime.unwrap_or(preferred))
        } else {
            (runtimes, default_runtime.unwrap_or(DEFAULT_HANDLER))
        };
        let mut handlers = BTreeMap::new();
        for (name, config) in runtimes {
            validate_handler_name(name)?;
            let configured = config
                .runtime_path
                .clone()
                .unwrap_or_else(|| PathBuf::from(name));
            if configured.as_os_str().is_empty() {
                return Err(HandlerError::EmptyPath { name: name.clone() });
            }
            let binary = find_in_path(&configured, path).unwrap_or(configured);
            let hidden_cgroup2 = cgroup2_to_hide(config.hide_cgroup2, &binary, layout);
            handlers.insert(
                name.clone(),
                Handler {
                    name: name.clone(),
                    binary,
                    global_args: config.runtime_args.clone(),
                    root: config.root.clone(),
                    hidden_cgroup2,
                },
            );
        }
        let default = default.to_string();
        if !handlers.contains_key(&default) {
            return Err(HandlerError::UnknownDefault {
                name: default,
                configured: handlers.keys().cloned().collect(),
            });
        }
        Ok(HandlerTable { default, handlers })
    }

    /// The built-in table: `runc` and `crun` from `PATH`, `crun` the default when there.
    pub fn builtin() -> Result<HandlerTable, HandlerError> {
        HandlerTable::from_config(None, &BTreeMap::new())
    }

    pub fn default_name(&self) -> &str {
        &self.default
    }

    pub fn default_handler(&self) -> &Handler {
        &self.handlers[&self.default]
    }

    /// The handler a RuntimeClass names; empty means the default (CRI's convention).
    pub fn get(&self, name: &str) -> Result<&Handler, HandlerError> {
        if name.is_empty() {
            return Ok(self.default_handler());
        }
        self.handlers
            .get(name)
            .ok_or_else(|| HandlerError::Unknown {
                name: name.to_string(),
                configured: self.handlers.keys().cloned().collect(),
            })
    }

    pub fn handlers(&self) -> impl Iterator<Item = &Handler> {
        self.handlers.values()
    }

    /// Runs every handler's `--version`, for start-up checks and logs: a handler whose
    /// runtime is missing is reported, not fatal (pods naming it fail with its error).
    pub fn probe_all(&self) -> BTreeMap<String, Result<String, RuntimeError>> {
        self.handlers
            .iter()
            .map(|(name, h)| (name.clone(), h.probe()))
            .collect()
    }
}

/// A RuntimeClass `handler` must be a DNS-1123 label, so a configured name that is not one
/// could never be selected.
pub fn validate_handler_name(name: &str) -> Result<(), HandlerError> {
    let problem = if name.is_empty() {
        Some("it is empty".to_string())
    } else if name.len() > 63 {
        Some(format!("it is {} characters long", name.len()))
    } else if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        Some(format!("it contains {c:?}"))
    } else if name.starts_with('-') || name.ends_with('-') {
        Some("it starts or ends with '-'".to_string())
    } else {
        None
    };
    match problem {
        Some(problem) => Err(HandlerError::InvalidName {
            name: name.to_string(),
            problem,
        }),
        None => Ok(()),
    }
}

fn cgroup2_to_hide(setting: Option<bool>, binary: &Path, layout: &CgroupLayout) -> Option<PathBuf> {
    let CgroupLayout::Hybrid {
        cgroup2,
        controllers,
    } = layout
    else {
        return None;
    };
    let is_crun = binary
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("crun"));
    let hide = setting.unwrap_or(is_crun && !controllers.is_empty());
    hide.then(|| cgroup2.clone())
}

fn search_path() -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default()
}

/// The table without `[runtimes.*]`: runc and crun, those on `path`; runc (which then fails
/// when run) when neither is.
fn builtin_runtimes(path: &[PathBuf]) -> BTreeMap<String, RuntimeHandlerConfig> {
    let mut installed: BTreeMap<String, RuntimeHandlerConfig> =
        [DEFAULT_HANDLER, PREFERRED_BUILTIN_HANDLER]
            .into_iter()
            .filter(|name| find_in_path(Path::new(name), path).is_some())
            .map(|name| (name.to_string(), RuntimeHandlerConfig::default()))
            .collect();
    if installed.is_empty() {
        installed.insert(DEFAULT_HANDLER.to_string(), RuntimeHandlerConfig::default());
    }
    installed
}

/// `name` itself when it has a `/`, else the first executable `dir/name` on `path`.
fn find_in_path(name: &Path, path: &[PathBuf]) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if name.components().count() > 1 {
        return None;
    }
    path.iter().map(|dir| dir.join(name)).find(|candidate| {
        candidate
            .metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hybrid(controllers: &[&str]) -> CgroupLayout {
        CgroupLayout::Hybrid {
            cgroup2: "/sys/fs/cgroup/unified".into(),
            controllers: controllers.iter().map(|c| c.to_string()).collect(),
        }
    }

    fn parse(text: &str) -> (Option<String>, BTreeMap<String, RuntimeHandlerConfig>) {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            default_runtime: Option<String>,
            #[serde(default)]
            runtimes: BTreeMap<String, RuntimeHandlerConfig>,
        }
        let file: File = toml::from_str(text).unwrap();
        (file.default_runtime, file.runtimes)
    }

    fn table(text: &str, layout: &CgroupLayout) -> Result<HandlerTable, HandlerError> {
        let (default, runtimes) = parse(text);
        HandlerTable::from_config_on(default.as_deref(), &runtimes, layout, &[])
    }

    #[test]
    fn no_configuration_means_runc_when_nothing_is_installed() {
        let table = table("", &CgroupLayout::Legacy).unwrap();
        assert_eq!(table.default_name(), "runc");
        assert_eq!(table.default_handler().binary, Path::new("runc"));
        assert_eq!(table.get("").unwrap().name, "runc");
        assert_eq!(table.handlers().count(), 1);
    }

    /// A `PATH` holding executables named `names`.
    fn path_with(names: &[&str]) -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for name in names {
            let file = dir.path().join(name);
            std::fs::write(&file, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        dir
    }

    #[test]
    fn no_configuration_prefers_an_installed_crun() {
        let builtin = |names: &[&str], default: Option<&str>| {
            let dir = path_with(names);
            let path = [dir.path().to_path_buf()];
            let table = HandlerTable::from_config_on(
                default,
                &BTreeMap::new(),
                &CgroupLayout::Legacy,
                &path,
            );
            table.map(|t| (t.default_name().to_string(), t.handlers().count()))
        };
        assert_eq!(
            builtin(&["runc", "crun"], None).unwrap(),
            ("crun".into(), 2)
        );
        assert_eq!(builtin(&["runc"], None).unwrap(), ("runc".into(), 1));
        assert_eq!(builtin(&["crun"], None).unwrap(), ("crun".into(), 1));
        assert_eq!(
            builtin(&["runc", "crun"], Some("runc")).unwrap(),
            ("runc".into(), 2)
        );
        assert!(builtin(&["crun"], Some("runc")).is_err());
        // Configured tables keep runc as their default.
        let dir = path_with(&["runc", "crun"]);
        let (_, runtimes) = parse("[runtimes.runc]\n[runtimes.crun]\n");
        let path = [dir.path().to_path_buf()];
        let table =
            HandlerTable::from_config_on(None, &runtimes, &CgroupLayout::Legacy, &path).unwrap();
        assert_eq!(table.default_name(), "runc");
    }

    #[test]
    fn reads_the_issue_example() {
        let table = table(
            r#"
default_runtime = "crun"
[runtimes.runc]
runtime_path = "/usr/sbin/runc"
[runtimes.crun]
runtime_path = "/usr/bin/crun"
root = "/run/nodelet/crun"
[runtimes.youki]
runtime_path = "/usr/local/bin/youki"
[runtimes.runc-debug]
runtime_path = "/usr/sbin/runc"
runtime_args = ["--debug"]
"#,
            &hybrid(&["hugetlb"]),
        )
        .unwrap();
        assert_eq!(table.default_name(), "crun");
        let crun = table.get("crun").unwrap();
        assert_eq!(crun.root.as_deref(), Some(Path::new("/run/nodelet/crun")));
        assert_eq!(
            crun.hidden_cgroup2.as_deref(),
            Some(Path::new("/sys/fs/cgroup/unified"))
        );
        let debug = table.get("runc-debug").unwrap();
        assert_eq!(
            (debug.binary.as_path(), debug.global_args.as_slice()),
            (Path::new("/usr/sbin/runc"), &["--debug".to_string()][..])
        );
        assert_eq!(table.get("runc").unwrap().hidden_cgroup2, None);
    }

    #[test]
    fn unknown_handlers_are_named() {
        let table = table("[runtimes.runc]\n[runtimes.crun]\n", &CgroupLayout::Legacy).unwrap();
        let err = table.get("kata").unwrap_err();
        assert_eq!(
            err.to_string(),
            "no runtime for \"kata\" is configured (configured: crun, runc)"
        );
        let err = self::table(
            "default_runtime = \"kata\"\n[runtimes.crun]\n",
            &CgroupLayout::Legacy,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "default_runtime \"kata\" is not one of the configured runtimes (crun)"
        );
        // Configured runtimes replace the built-in runc, so the default must be named.
        let err = self::table("[runtimes.crun]\n", &CgroupLayout::Legacy).unwrap_err();
        assert!(matches!(err, HandlerError::UnknownDefault { .. }), "{err}");
    }

    #[test]
    fn handler_names_are_dns_labels() {
        for name in ["runc", "runc-debug", "a", "0x", &"a".repeat(63)] {
            validate_handler_name(name).unwrap();
        }
        for (name, problem) in [
            ("", "it is empty"),
            ("Runc", "it contains 'R'"),
            ("runc_debug", "it contains '_'"),
            ("runc.v2", "it contains '.'"),
            ("-runc", "starts or ends"),
            ("runc-", "starts or ends"),
            (&"a".repeat(64), "64 characters"),
        ] {
            let err = validate_handler_name(name).unwrap_err().to_string();
            assert!(
                err.contains(&format!("{name:?}"))
                    && err.contains("DNS-1123 label")
                    && err.contains(problem),
                "{err}"
            );
        }
        let err = table(
            "default_runtime = \"Big\"\n[runtimes.Big]\n",
            &CgroupLayout::Legacy,
        )
        .unwrap_err();
        assert!(err.to_string().contains("\"Big\""), "{err}");
    }

    #[test]
    fn hide_cgroup2_defaults() {
        let crun = Path::new("/usr/bin/crun");
        let runc = Path::new("/usr/sbin/runc");
        let unified = Some(PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(cgroup2_to_hide(None, crun, &hybrid(&["hugetlb"])), unified);
        assert_eq!(
            cgroup2_to_hide(None, crun, &hybrid(&[])),
            None,
            "crun accepts an empty cgroup2 mount"
        );
        assert_eq!(cgroup2_to_hide(None, runc, &hybrid(&["hugetlb"])), None);
        assert_eq!(cgroup2_to_hide(Some(true), runc, &hybrid(&[])), unified);
        assert_eq!(
            cgroup2_to_hide(Some(false), crun, &hybrid(&["hugetlb"])),
            None
        );
        assert_eq!(
            cgroup2_to_hide(Some(true), crun, &CgroupLayout::Unified),
            None
        );
        assert_eq!(cgroup2_to_hide(None, crun, &CgroupLayout::Legacy), None);
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = toml::from_str::<RuntimeHandlerConfig>("runtime_pth = \"/x\"").unwrap_err();
        assert!(err.to_string().contains("runtime_pth"), "{err}");
    }

    #[test]
    fn finds_binaries_in_path() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake-runtime");
        std::fs::write(&fake, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = [PathBuf::from("/nonexistent"), dir.path().to_path_buf()];
        assert_eq!(find_in_path(Path::new("fake-runtime"), &path), Some(fake));
        assert_eq!(find_in_path(Path::new("./fake-runtime"), &path), None);
        assert_eq!(find_in_path(Path::new("missing"), &path), None);
    }
}
