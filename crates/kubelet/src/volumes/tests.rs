use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nodelet_api::k8s::api::core::v1::{ConfigMap, Container, Pod, Secret};
use nodelet_api::k8s::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use nodelet_runtime::spec::BindMount;
use nodelet_runtime::volumes::VolumeError;
use serde_json::json;

use super::mounts::{MountConfigError, SubPaths, container_mounts};
use super::*;

fn pod(volumes: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "ns", "uid": "u-1",
                     "labels": {"app": "web", "tier": "front"}},
        "spec": {
            "containers": [{"name": "app", "image": "busybox",
                "resources": {"limits": {"cpu": "1250m", "memory": "64Mi"},
                              "requests": {"cpu": "250m", "memory": "32Mi"}}}],
            "volumes": volumes,
        }
    }))
    .unwrap()
}

fn objects() -> PodObjects {
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "settings", "namespace": "ns"},
        "data": {"app.conf": "debug=1", "other": "o"},
        "binaryData": {"blob": "AAEC"},
    }))
    .unwrap();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "creds", "namespace": "ns"},
        "data": {"password": "aHVudGVyMg=="},
    }))
    .unwrap();
    PodObjects {
        config_maps: vec![cm],
        secrets: vec![secret],
        ..Default::default()
    }
}

fn allocatable() -> BTreeMap<String, ApiQuantity> {
    BTreeMap::from([
        ("memory".to_owned(), ApiQuantity("1Gi".into())),
        ("cpu".to_owned(), ApiQuantity("2".into())),
    ])
}

fn plan_of(volume: serde_json::Value) -> Result<VolumePlan, MountFailure> {
    let pod = pod(json!([volume]));
    let objects = objects();
    let allocatable = allocatable();
    plan_pod_volumes(VolumeContext {
        pod: &pod,
        objects: &objects,
        allocatable: &allocatable,
    })
    .map(|mut plans| plans.remove(0))
}

/// A file as `(path, data, mode)`.
type FileView = (String, String, u32);

/// The plan's files.
fn files_of(plan: &VolumePlan) -> Vec<FileView> {
    match &plan.kind {
        VolumeKind::Files { files, .. } => files
            .iter()
            .map(|f| {
                (
                    f.path.clone(),
                    String::from_utf8_lossy(&f.data).into_owned(),
                    f.mode,
                )
            })
            .collect(),
        other => panic!("not a file volume: {other:?}"),
    }
}

fn f(path: &str, data: &str, mode: u32) -> FileView {
    (path.to_owned(), data.to_owned(), mode)
}

#[test]
fn file_volumes_resolve_keys_items_and_modes() {
    let cases: Vec<(&str, serde_json::Value, Vec<FileView>)> = vec![
        (
            "configMap: every key, data and binaryData, defaultMode 0644",
            json!({"name": "v", "configMap": {"name": "settings"}}),
            vec![
                f("app.conf", "debug=1", 0o644),
                f("blob", "\0\x01\x02", 0o644),
                f("other", "o", 0o644),
            ],
        ),
        (
            "configMap: items with paths and modes, defaultMode for the rest",
            json!({"name": "v", "configMap": {"name": "settings", "defaultMode": 0o400,
                "items": [{"key": "app.conf", "path": "conf/app.conf", "mode": 0o600},
                          {"key": "other", "path": "o.txt"}]}}),
            vec![f("conf/app.conf", "debug=1", 0o600), f("o.txt", "o", 0o400)],
        ),
        (
            "optional configMap that is missing: an empty volume",
            json!({"name": "v", "configMap": {"name": "absent", "optional": true,
                "items": [{"key": "k", "path": "k"}]}}),
            vec![],
        ),
        (
            "optional configMap: a missing item key is skipped",
            json!({"name": "v", "configMap": {"name": "settings", "optional": true,
                "items": [{"key": "nope", "path": "n"}, {"key": "other", "path": "o"}]}}),
            vec![f("o", "o", 0o644)],
        ),
        (
            "secret: the spec's modes (0644 by default), bytes decoded",
            json!({"name": "v", "secret": {"secretName": "creds"}}),
            vec![f("password", "hunter2", 0o644)],
        ),
        (
            "secret: defaultMode 0400",
            json!({"name": "v", "secret": {"secretName": "creds", "defaultMode": 0o400}}),
            vec![f("password", "hunter2", 0o400)],
        ),
        (
            "optional secret that is missing",
            json!({"name": "v", "secret": {"secretName": "absent", "optional": true}}),
            vec![],
        ),
        (
            "downwardAPI: fields, whole labels, resources with divisors",
            json!({"name": "v", "downwardAPI": {"items": [
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}, "mode": 0o400},
                {"path": "app", "fieldRef": {"fieldPath": "metadata.labels['app']"}},
                {"path": "./cpu_limit", "resourceFieldRef": {"containerName": "app",
                    "resource": "limits.cpu"}},
                {"path": "mem_request", "resourceFieldRef": {"containerName": "app",
                    "resource": "requests.memory", "divisor": "1Mi"}},
            ]}}),
            vec![
                f("app", "web", 0o644),
                f("cpu_limit", "2", 0o644),
                f("labels", "app=\"web\"\ntier=\"front\"", 0o400),
                f("mem_request", "32", 0o644),
                f("name", "web", 0o644),
            ],
        ),
        (
            "projected: sources merged under the projected defaultMode",
            json!({"name": "v", "projected": {"defaultMode": 0o440, "sources": [
                {"configMap": {"name": "settings", "items": [{"key": "other", "path": "cm/other"}]}},
                {"secret": {"name": "creds", "items": [{"key": "password", "path": "s/pw", "mode": 0o400}]}},
                {"secret": {"name": "absent", "optional": true}},
                {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
            ]}}),
            vec![
                f("cm/other", "o", 0o440),
                f("ns", "ns", 0o440),
                f("s/pw", "hunter2", 0o400),
            ],
        ),
    ];
    for (what, volume, want) in cases {
        let plan = plan_of(volume).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(files_of(&plan), want, "{what}");
    }
}

#[test]
fn failures_are_failed_mount_events_in_upstreams_words() {
    let cases = [
        (
            json!({"name": "cfg", "configMap": {"name": "absent"}}),
            r#"MountVolume.SetUp failed for volume "cfg" : configmap "absent" not found"#,
        ),
        (
            json!({"name": "s", "secret": {"secretName": "absent"}}),
            r#"MountVolume.SetUp failed for volume "s" : secret "absent" not found"#,
        ),
        (
            json!({"name": "cfg", "configMap": {"name": "settings",
                "items": [{"key": "nope", "path": "n"}]}}),
            r#"MountVolume.SetUp failed for volume "cfg" : configmap references non-existent config key: nope"#,
        ),
        (
            json!({"name": "s", "secret": {"secretName": "creds",
                "items": [{"key": "nope", "path": "n"}]}}),
            r#"MountVolume.SetUp failed for volume "s" : references non-existent secret key: nope"#,
        ),
        (
            json!({"name": "p", "projected": {"sources": [
                {"configMap": {"name": "a"}}, {"secret": {"name": "b"}}]}}),
            r#"MountVolume.SetUp failed for volume "p" : [configmap "a" not found, secret "b" not found]"#,
        ),
        (
            json!({"name": "h", "hostPath": {"path": "/x", "type": "Pipe"}}),
            r#"MountVolume.SetUp failed for volume "h" : Pipe is an invalid volume type"#,
        ),
        (
            json!({"name": "d", "downwardAPI": {"items": [{"path": "r",
                "resourceFieldRef": {"containerName": "ghost", "resource": "limits.cpu"}}]}}),
            r#"MountVolume.SetUp failed for volume "d" : container ghost not found"#,
        ),
    ];
    for (volume, want) in cases {
        let err = plan_of(volume).unwrap_err();
        assert_eq!(err.to_string(), want);
        let event = err.event();
        assert_eq!((event.reason, event.message.as_str()), (FAILED_MOUNT, want));
    }
}

#[test]
fn empty_dirs_host_paths_media_and_sizes() {
    let cases = [
        (
            json!({"name": "v", "emptyDir": {}}),
            VolumeKind::EmptyDir {
                medium: Medium::Disk,
            },
        ),
        // The pod's memory limit (64Mi) bounds node allocatable (1Gi).
        (
            json!({"name": "v", "emptyDir": {"medium": "Memory"}}),
            VolumeKind::EmptyDir {
                medium: Medium::Memory {
                    size_bytes: Some(64 << 20),
                },
            },
        ),
        (
            json!({"name": "v", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}),
            VolumeKind::EmptyDir {
                medium: Medium::Memory {
                    size_bytes: Some(1 << 20),
                },
            },
        ),
        // A sizeLimit above what the pod may use does not raise it.
        (
            json!({"name": "v", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}}),
            VolumeKind::EmptyDir {
                medium: Medium::Memory {
                    size_bytes: Some(64 << 20),
                },
            },
        ),
        (
            json!({"name": "v", "hostPath": {"path": "/var/log"}}),
            VolumeKind::HostPath {
                path: "/var/log".into(),
                path_type: HostPathType::Unchecked,
            },
        ),
        (
            json!({"name": "v", "hostPath": {"path": "/data", "type": "DirectoryOrCreate"}}),
            VolumeKind::HostPath {
                path: "/data".into(),
                path_type: HostPathType::DirectoryOrCreate,
            },
        ),
    ];
    for (volume, want) in cases {
        let what = volume.to_string();
        assert_eq!(plan_of(volume).unwrap().kind, want, "{what}");
    }
    let secret = plan_of(json!({"name": "v", "secret": {"secretName": "creds"}})).unwrap();
    let config = plan_of(json!({"name": "v", "configMap": {"name": "settings"}})).unwrap();
    assert!(matches!(
        secret.kind,
        VolumeKind::Files {
            medium: Medium::Memory { .. },
            ..
        }
    ));
    assert!(matches!(
        config.kind,
        VolumeKind::Files {
            medium: Medium::Disk,
            ..
        }
    ));
}

#[test]
fn fs_group_applies_to_all_but_host_paths() {
    let mut p = pod(json!([
        {"name": "e", "emptyDir": {}},
        {"name": "h", "hostPath": {"path": "/tmp"}},
    ]));
    p.spec.as_mut().unwrap().security_context =
        Some(serde_json::from_value(json!({"fsGroup": 2000})).unwrap());
    let objects = objects();
    let allocatable = allocatable();
    let plans = plan_pod_volumes(VolumeContext {
        pod: &p,
        objects: &objects,
        allocatable: &allocatable,
    })
    .unwrap();
    let groups: Vec<Option<u32>> = plans.iter().map(|p| p.fs_group).collect();
    assert_eq!(groups, vec![Some(2000), None]);
}

/// Sub-paths joined without touching a disk.
struct JoinedSubPaths;

impl SubPaths for JoinedSubPaths {
    fn prepare(&self, volume: &Path, sub_path: &str) -> Result<PathBuf, VolumeError> {
        if sub_path == "unmakeable" {
            return Err(VolumeError::SubPathCreate {
                sub_path: sub_path.into(),
                volume: volume.into(),
                source: std::io::Error::from_raw_os_error(13),
            });
        }
        Ok(volume.join(sub_path))
    }
}

fn mounts_for(volume_mounts: serde_json::Value) -> Result<Vec<BindMount>, MountConfigError> {
    let container: Container = serde_json::from_value(json!({
        "name": "app", "image": "busybox", "volumeMounts": volume_mounts,
    }))
    .unwrap();
    let volumes = [
        MountedVolume {
            name: "scratch".into(),
            host_path: "/pods/u/volumes/kubernetes.io~empty-dir/scratch".into(),
            read_only: false,
        },
        MountedVolume {
            name: "cfg".into(),
            host_path: "/pods/u/volumes/kubernetes.io~configmap/cfg".into(),
            read_only: true,
        },
    ];
    let env = [
        ("POD_NAME".to_owned(), "web-0".to_owned()),
        ("EMPTY".to_owned(), String::new()),
        ("UP".to_owned(), "..".to_owned()),
        ("ABS".to_owned(), "/tmp".to_owned()),
    ];
    container_mounts(&container, &volumes, &env, &JoinedSubPaths)
}

fn bind(source: &str, destination: &str, read_only: bool) -> BindMount {
    BindMount {
        source: source.into(),
        destination: destination.into(),
        read_only,
        propagation: nodelet_runtime::spec::MountPropagation::Private,
    }
}

#[test]
fn volume_mounts_become_bind_mounts() {
    let scratch = "/pods/u/volumes/kubernetes.io~empty-dir/scratch";
    let cfg = "/pods/u/volumes/kubernetes.io~configmap/cfg";
    let cases = [
        (
            json!([{"name": "scratch", "mountPath": "/data"}]),
            vec![bind(scratch, "/data", false)],
        ),
        (
            json!([{"name": "scratch", "mountPath": "/data", "readOnly": true}]),
            vec![bind(scratch, "/data", true)],
        ),
        // File volumes are read-only whatever the mount says.
        (
            json!([{"name": "cfg", "mountPath": "/etc/cfg", "readOnly": false}]),
            vec![bind(cfg, "/etc/cfg", true)],
        ),
        (
            json!([{"name": "scratch", "mountPath": "/logs", "subPath": "a/b"}]),
            vec![bind(&format!("{scratch}/a/b"), "/logs", false)],
        ),
        (
            json!([{"name": "scratch", "mountPath": "/logs", "subPathExpr": "$(POD_NAME)/x"}]),
            vec![bind(&format!("{scratch}/web-0/x"), "/logs", false)],
        ),
    ];
    for (volume_mounts, want) in cases {
        let what = volume_mounts.to_string();
        assert_eq!(mounts_for(volume_mounts).unwrap(), want, "{what}");
    }
}

#[test]
fn bad_volume_mounts_fail_the_container_in_upstreams_words() {
    let cases = [
        (
            json!([{"name": "ghost", "mountPath": "/x"}]),
            r#"cannot find volume "ghost" to mount into container "app""#,
        ),
        (
            json!([{"name": "scratch", "mountPath": "/x", "subPathExpr": "$(EMPTY)/$(NOPE)"}]),
            "missing value for EMPTY, NOPE",
        ),
        (
            json!([{"name": "scratch", "mountPath": "/x", "subPathExpr": "$(UP)"}]),
            "unable to provision SubPath `..`: must not contain '..'",
        ),
        (
            json!([{"name": "scratch", "mountPath": "/x", "subPathExpr": "$(ABS)"}]),
            "error SubPath `/tmp` must not be an absolute path",
        ),
        (
            json!([{"name": "scratch", "mountPath": "/x", "subPath": "unmakeable"}]),
            r#"failed to create subPath directory for volumeMount "scratch" of container "app""#,
        ),
    ];
    for (volume_mounts, want) in cases {
        let err = mounts_for(volume_mounts).unwrap_err();
        assert_eq!(err.to_string(), want);
    }
}

/// A configMap volume (on disk, so no mount is needed) set up, then refreshed as the worker
/// does when its source changes: rewritten only on a change, kept when its source is gone.
#[test]
fn refreshing_rewrites_changed_file_volumes_only_and_keeps_them_when_the_source_is_gone() {
    let pod_dir = tempfile::tempdir().unwrap();
    let pod = pod(json!([
        {"name": "conf", "configMap": {"name": "settings", "items": [{"key": "other", "path": "o"}]}},
        {"name": "scratch", "emptyDir": {}},
    ]));
    let allocatable = allocatable();
    let mut objects = objects();
    fn context<'a>(
        pod: &'a Pod,
        objects: &'a PodObjects,
        allocatable: &'a BTreeMap<String, ApiQuantity>,
    ) -> VolumeContext<'a> {
        VolumeContext {
            pod,
            objects,
            allocatable,
        }
    }
    set_up_pod_volumes(context(&pod, &objects, &allocatable), pod_dir.path()).unwrap();
    let file = pod_dir
        .path()
        .join("volumes/kubernetes.io~configmap/conf/o");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "o");

    let unchanged = refresh_file_volumes(context(&pod, &objects, &allocatable), pod_dir.path());
    assert!(unchanged.updated.is_empty() && unchanged.failures.is_empty());

    objects.config_maps[0]
        .data
        .as_mut()
        .unwrap()
        .insert("other".into(), "changed".into());
    let changed = refresh_file_volumes(context(&pod, &objects, &allocatable), pod_dir.path());
    assert_eq!(changed.updated, ["conf"]);
    assert!(changed.failures.is_empty());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "changed");

    objects.config_maps.clear();
    let gone = refresh_file_volumes(context(&pod, &objects, &allocatable), pod_dir.path());
    assert!(gone.updated.is_empty());
    assert_eq!(
        gone.failures
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["MountVolume.SetUp failed for volume \"conf\" : configmap \"settings\" not found"]
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "changed");
}

/// A volume not set up yet is left for the next container start.
#[test]
fn refreshing_leaves_volumes_that_are_not_set_up() {
    let pod_dir = tempfile::tempdir().unwrap();
    let pod = pod(json!([{"name": "conf", "configMap": {"name": "settings"}}]));
    let allocatable = allocatable();
    let objects = objects();
    let ctx = VolumeContext {
        pod: &pod,
        objects: &objects,
        allocatable: &allocatable,
    };
    let refreshed = refresh_file_volumes(ctx, pod_dir.path());
    assert!(refreshed.updated.is_empty() && refreshed.failures.is_empty());
    assert!(!pod_dir.path().join("volumes").exists());
}
