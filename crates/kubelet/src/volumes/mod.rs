//! A pod's `spec.volumes` resolved against the objects they name (ConfigMaps, Secrets, the pod
//! itself for the downward API) into [`VolumePlan`]s that `nodelet_runtime::volumes` makes
//! real, and each container's `volumeMounts` into bind mounts ([`mounts`]).
//!
//! Pure: the objects, the node's allocatable resources and the pod are arguments. Failures
//! carry upstream's texts: a volume that cannot be set up is a Warning `FailedMount`
//! `MountVolume.SetUp failed for volume "x" : configmap "y" not found` (the pod stays in
//! `ContainerCreating` and the kubelet retries), a bad mount is a container's
//! `CreateContainerConfigError`.
//!
//! Upstream's rules kept here:
//! - configMap and secret: every key as a file (configMap `data` then `binaryData`), or only
//!   `items` (`key` → `path`, `mode`); `defaultMode` (API default 0644) for files without a
//!   mode; a missing object or key fails the volume unless `optional`, when the object is
//!   treated as empty and missing keys are skipped.
//! - downwardAPI: `fieldRef` (metadata paths, whole `labels`/`annotations` as `k="v"` lines)
//!   and `resourceFieldRef` (`containerName`'s requests/limits, limits defaulting to the
//!   node's allocatable).
//! - projected: the same per source, with the projected volume's `defaultMode`.
//! - secret, downwardAPI and projected volumes are memory-backed (tmpfs), configMap on disk;
//!   a memory-backed volume is sized `min(node allocatable memory, pod memory limit,
//!   sizeLimit)` (upstream's `SizeMemoryBackedVolumes`).
//! - `fsGroup` of the pod's security context applies to every volume but hostPath.

pub mod mounts;
mod payload;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nodelet_api::field_errors::go_quote;
use nodelet_api::k8s::api::core::v1::{Pod, Volume};
use nodelet_api::k8s::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use nodelet_api::quantity::Quantity;
use nodelet_runtime::volumes::{
    FileSource, HostPathType, Medium, PodVolumes, VolumeError, VolumeKind, VolumePlan,
};

use crate::events::Event;
use crate::sources::file::PodObjects;

pub use nodelet_runtime::volumes::{MountedVolume, ProjectedFile};

/// The event reason of a volume that could not be set up.
pub const FAILED_MOUNT: &str = "FailedMount";

/// Upstream's `defaultMode` when the pod leaves it unset (the API defaults it to this too).
pub const DEFAULT_MODE: u32 = 0o644;

/// What volumes are resolved against.
#[derive(Debug, Clone, Copy)]
pub struct VolumeContext<'a> {
    pub pod: &'a Pod,
    pub objects: &'a PodObjects,
    /// The node's allocatable resources (downward API limits, tmpfs sizes).
    pub allocatable: &'a BTreeMap<String, ApiQuantity>,
}

/// A volume that cannot be set up, as upstream's mount operation reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("MountVolume.SetUp failed for volume {} : {message}", go_quote(.volume))]
pub struct MountFailure {
    pub volume: String,
    pub message: String,
}

impl MountFailure {
    pub fn new(volume: &str, message: impl Into<String>) -> MountFailure {
        MountFailure {
            volume: volume.to_owned(),
            message: message.into(),
        }
    }

    /// The Warning `FailedMount` event.
    pub fn event(&self) -> Event {
        Event::warning(FAILED_MOUNT, self.to_string())
    }
}

/// Every volume of the pod, in `spec.volumes` order; the first failure stops.
pub fn plan_pod_volumes(ctx: VolumeContext<'_>) -> Result<Vec<VolumePlan>, MountFailure> {
    ctx.pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default()
        .iter()
        .map(|volume| plan_volume(ctx, volume))
        .collect()
}

/// Resolves every volume of the pod and makes it real under `{pod_dir}/volumes` (the pod
/// worker's one call per sync, before starting containers; idempotent, and file volumes pick
/// up changed ConfigMaps and Secrets). A failure is the pod's `FailedMount` event; the worker
/// keeps the pod's containers waiting (`ContainerCreating`) and tries again on a later sync.
pub fn set_up_pod_volumes(
    ctx: VolumeContext<'_>,
    pod_dir: &Path,
) -> Result<Vec<MountedVolume>, MountFailure> {
    let volumes = PodVolumes::new(pod_dir);
    plan_pod_volumes(ctx)?
        .iter()
        .map(|plan| {
            volumes
                .set_up(plan)
                .map_err(|err| MountFailure::new(&plan.name, err.to_string()))
        })
        .collect()
}

/// What [`refresh_file_volumes`] did.
#[derive(Debug, Default)]
pub struct Refreshed {
    /// Volumes whose files were rewritten.
    pub updated: Vec<String>,
    /// Volumes that could not be resolved or written; each is left as it was.
    pub failures: Vec<MountFailure>,
}

/// Rewrites the pod's configMap, secret, downwardAPI and projected volumes that are already
/// set up from the current objects and pod metadata, atomically and only where the content
/// changed. A volume that fails (a non-optional source is gone) keeps its files, as
/// upstream's; emptyDir and hostPath volumes are never touched.
pub fn refresh_file_volumes(ctx: VolumeContext<'_>, pod_dir: &Path) -> Refreshed {
    let volumes = PodVolumes::new(pod_dir);
    let mut refreshed = Refreshed::default();
    let file_volumes = ctx
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default()
        .iter()
        .filter(|v| {
            v.config_map.is_some()
                || v.secret.is_some()
                || v.downward_api.is_some()
                || v.projected.is_some()
        });
    for volume in file_volumes {
        let plan = match plan_volume(ctx, volume) {
            Ok(plan) => plan,
            Err(failure) => {
                refreshed.failures.push(failure);
                continue;
            }
        };
        let VolumeKind::Files { files, .. } = &plan.kind else {
            continue;
        };
        let dir = volumes.host_path(&plan);
        // Not set up yet: the next container start does it.
        if !dir.join(nodelet_runtime::volumes::DATA_DIR_LINK).exists() {
            continue;
        }
        match nodelet_runtime::volumes::write_atomically(&dir, files, plan.fs_group) {
            Ok(true) => refreshed.updated.push(plan.name.clone()),
            Ok(false) => {}
            Err(err) => refreshed
                .failures
                .push(MountFailure::new(&plan.name, err.to_string())),
        }
    }
    refreshed
}

/// Unmounts and removes every volume of the pod (before its directory is removed).
pub fn tear_down_pod_volumes(pod_dir: &Path) -> Result<(), VolumeError> {
    PodVolumes::new(pod_dir).tear_down()
}

/// One volume.
pub fn plan_volume(ctx: VolumeContext<'_>, volume: &Volume) -> Result<VolumePlan, MountFailure> {
    let fail = |message: String| MountFailure::new(&volume.name, message);
    let fs_group = ctx
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|sc| sc.fs_group)
        .and_then(|gid| u32::try_from(gid).ok());
    let memory = |size_limit: Option<&ApiQuantity>| Medium::Memory {
        size_bytes: memory_backed_size(ctx, size_limit),
    };
    let files = |source, files: BTreeMap<String, ProjectedFile>, medium| VolumeKind::Files {
        source,
        files: files.into_values().collect(),
        medium,
    };
    let kind = if let Some(dir) = &volume.empty_dir {
        let medium = match dir.medium.as_deref().unwrap_or("") {
            "" => Medium::Disk,
            "Memory" => memory(dir.size_limit.as_ref()),
            other => return Err(fail(format!("emptyDir medium {other} is not supported"))),
        };
        VolumeKind::EmptyDir { medium }
    } else if let Some(host) = &volume.host_path {
        VolumeKind::HostPath {
            path: PathBuf::from(&host.path),
            path_type: host_path_type(host.type_.as_deref()).map_err(fail)?,
        }
    } else if let Some(source) = &volume.config_map {
        let payload = payload::config_map_volume(ctx, source).map_err(fail)?;
        files(FileSource::ConfigMap, payload, Medium::Disk)
    } else if let Some(source) = &volume.secret {
        let payload = payload::secret_volume(ctx, source).map_err(fail)?;
        files(FileSource::Secret, payload, memory(None))
    } else if let Some(source) = &volume.downward_api {
        let payload = payload::downward_api_volume(ctx, source).map_err(fail)?;
        files(FileSource::DownwardApi, payload, memory(None))
    } else if let Some(source) = &volume.projected {
        let payload = payload::projected_volume(ctx, source).map_err(fail)?;
        files(FileSource::Projected, payload, memory(None))
    } else {
        return Err(fail(
            "volume type not supported by nodelet (it has emptyDir, hostPath, configMap, \
             secret, downwardAPI and projected)"
                .to_owned(),
        ));
    };
    let fs_group = match kind {
        VolumeKind::HostPath { .. } => None,
        _ => fs_group,
    };
    Ok(VolumePlan {
        name: volume.name.clone(),
        kind,
        fs_group,
    })
}

/// `hostPath.type`, with upstream's text for an unknown one.
fn host_path_type(value: Option<&str>) -> Result<HostPathType, String> {
    Ok(match value.unwrap_or("") {
        "" => HostPathType::Unchecked,
        "DirectoryOrCreate" => HostPathType::DirectoryOrCreate,
        "Directory" => HostPathType::Directory,
        "FileOrCreate" => HostPathType::FileOrCreate,
        "File" => HostPathType::File,
        "Socket" => HostPathType::Socket,
        "CharDevice" => HostPathType::CharDevice,
        "BlockDevice" => HostPathType::BlockDevice,
        other => return Err(format!("{other} is an invalid volume type")),
    })
}

/// upstream's `calculateEmptyDirMemorySize`: node allocatable memory, lowered to the pod's
/// memory limit and then to `sizeLimit` when those are positive and smaller. `None` when the
/// node's allocatable memory is unknown and nothing else bounds it (the kernel's default).
fn memory_backed_size(ctx: VolumeContext<'_>, size_limit: Option<&ApiQuantity>) -> Option<u64> {
    let bytes = |q: &ApiQuantity| {
        Quantity::from_api(q)
            .ok()
            .and_then(|q| u64::try_from(q.value()).ok())
            .filter(|b| *b > 0)
    };
    let mut size = ctx.allocatable.get("memory").and_then(bytes);
    for bound in [pod_memory_limit(ctx.pod), size_limit.and_then(bytes)]
        .into_iter()
        .flatten()
    {
        if size.is_none_or(|s| bound <= s) {
            size = Some(bound);
        }
    }
    size
}

/// The pod's memory limit as its cgroup gets it: the pod-level limit when set; else, when every
/// app container has one, the larger of their sum and the largest init container's, plus the
/// pod overhead.
fn pod_memory_limit(pod: &Pod) -> Option<u64> {
    let spec = pod.spec.as_ref()?;
    let memory_of = |limits: Option<&BTreeMap<String, ApiQuantity>>| {
        limits
            .and_then(|l| l.get("memory"))
            .and_then(|q| Quantity::from_api(q).ok())
            .and_then(|q| u64::try_from(q.value()).ok())
    };
    if let Some(pod_level) = memory_of(spec.resources.as_ref().and_then(|r| r.limits.as_ref())) {
        return Some(pod_level);
    }
    let container_limit = |c: &nodelet_api::k8s::api::core::v1::Container| {
        memory_of(c.resources.as_ref().and_then(|r| r.limits.as_ref()))
    };
    let mut sum = 0u64;
    for container in &spec.containers {
        sum = sum.saturating_add(container_limit(container)?);
    }
    let init_max = spec
        .init_containers
        .iter()
        .flatten()
        .filter_map(container_limit)
        .max()
        .unwrap_or(0);
    let overhead = memory_of(spec.overhead.as_ref()).unwrap_or(0);
    Some(sum.max(init_max).saturating_add(overhead))
}

#[cfg(test)]
mod tests;
