//! A container's `volumeMounts` as bind mounts (upstream's `makeMounts`): the volume's host
//! path, or a `subPath` / `subPathExpr` inside it (made when missing, never outside the
//! volume); read-only when the mount says so or the volume is always read-only (configMap,
//! secret, downwardAPI, projected). Errors are the container's `CreateContainerConfigError`
//! messages, in upstream's words.
//!
//! `mountPropagation` becomes the bind's propagation (`rprivate`, `rslave`, `rshared`); the
//! kubelet makes the source's host mount shared before such a container starts
//! (`nodelet_runtime::propagation`). Not done: `recursiveReadOnly`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use nodelet_api::k8s::api::core::v1::Container;
use nodelet_runtime::spec::{BindMount, MountPropagation};
use nodelet_runtime::volumes::{self, MountedVolume, VolumeError};

use crate::expansion;

/// Why a container's mounts cannot be made (its waiting reason is
/// `CreateContainerConfigError`, its Warning `Failed` event `Error: <this>`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MountConfigError(pub String);

/// Makes (or checks) a `subPath` inside a volume; the real one is [`HostSubPaths`].
pub trait SubPaths {
    fn prepare(&self, volume: &Path, sub_path: &str) -> Result<PathBuf, VolumeError>;
}

/// `nodelet_runtime::volumes::prepare_sub_path` on the host.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostSubPaths;

impl SubPaths for HostSubPaths {
    fn prepare(&self, volume: &Path, sub_path: &str) -> Result<PathBuf, VolumeError> {
        volumes::prepare_sub_path(volume, sub_path)
    }
}

/// `container`'s bind mounts, in `volumeMounts` order. `env` is the kubelet's environment of
/// the container (what `subPathExpr` expands against; a later entry of a name wins).
pub fn container_mounts(
    container: &Container,
    volumes: &[MountedVolume],
    env: &[(String, String)],
    sub_paths: &dyn SubPaths,
) -> Result<Vec<BindMount>, MountConfigError> {
    let env: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut mounts = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let Some(volume) = volumes.iter().find(|v| v.name == mount.name) else {
            return Err(MountConfigError(format!(
                "cannot find volume {} to mount into container {}",
                go_quote(&mount.name),
                go_quote(&container.name)
            )));
        };
        let sub_path = match mount.sub_path_expr.as_deref().filter(|e| !e.is_empty()) {
            Some(expr) => expand_sub_path(expr, &env)?,
            None => mount.sub_path.clone().unwrap_or_default(),
        };
        let source = if sub_path.is_empty() {
            volume.host_path.clone()
        } else {
            check_sub_path(&sub_path)?;
            sub_paths
                .prepare(&volume.host_path, &sub_path)
                .map_err(|err| match err {
                    // Details could describe the host's filesystem: upstream hides them.
                    VolumeError::SubPathCreate { .. } => MountConfigError(format!(
                        "failed to create subPath directory for volumeMount {} of container {}",
                        go_quote(&mount.name),
                        go_quote(&container.name)
                    )),
                    other => MountConfigError(other.to_string()),
                })?
        };
        mounts.push(BindMount {
            source,
            destination: PathBuf::from(&mount.mount_path),
            read_only: mount.read_only.unwrap_or(false) || volume.read_only,
            propagation: propagation(mount.mount_propagation.as_deref()),
        });
    }
    Ok(mounts)
}

/// API validation has refused other values (and Bidirectional outside privileged
/// containers); anything else is the default, `None`.
fn propagation(value: Option<&str>) -> MountPropagation {
    match value {
        Some("HostToContainer") => MountPropagation::HostToContainer,
        Some("Bidirectional") => MountPropagation::Bidirectional,
        _ => MountPropagation::Private,
    }
}

/// upstream's `ExpandContainerVolumeMounts`: an unset or empty variable is an error.
fn expand_sub_path(expr: &str, env: &HashMap<&str, &str>) -> Result<String, MountConfigError> {
    let mut missing = std::collections::BTreeSet::new();
    let expanded = expansion::expand(expr, |name| match env.get(name) {
        Some(value) if !value.is_empty() => Some(*value),
        _ => {
            missing.insert(name.to_owned());
            Some("")
        }
    });
    if missing.is_empty() {
        Ok(expanded)
    } else {
        let names: Vec<String> = missing.into_iter().collect();
        Err(MountConfigError(format!(
            "missing value for {}",
            names.join(", ")
        )))
    }
}

fn check_sub_path(sub_path: &str) -> Result<(), MountConfigError> {
    if Path::new(sub_path).is_absolute() {
        return Err(MountConfigError(format!(
            "error SubPath `{sub_path}` must not be an absolute path"
        )));
    }
    if sub_path.split('/').any(|part| part == "..") {
        return Err(MountConfigError(format!(
            "unable to provision SubPath `{sub_path}`: must not contain '..'"
        )));
    }
    Ok(())
}

fn go_quote(s: &str) -> String {
    nodelet_api::field_errors::go_quote(s)
}
