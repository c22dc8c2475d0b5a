//! A pod's volumes resolved and made real on the host, then its containers' bind mounts, then
//! teardown. Privileged (tmpfs mounts): run as root.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;

use nodelet_api::k8s::api::core::v1::Pod;
use nodelet_kubelet::sources::file::PodObjects;
use nodelet_kubelet::volumes::mounts::{HostSubPaths, container_mounts};
use nodelet_kubelet::volumes::{VolumeContext, set_up_pod_volumes, tear_down_pod_volumes};
use serde_json::json;

fn tmpfs_mounts_under(dir: &std::path::Path) -> usize {
    let ours = dir.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|p| p.starts_with(&ours)))
        .count()
}

#[test]
fn a_pods_volumes_are_set_up_mounted_and_torn_down() {
    let tmp = tempfile::tempdir().unwrap();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "securityContext": {"fsGroup": 3000},
            "containers": [{"name": "app", "image": "busybox",
                "env": [{"name": "POD_NAME", "value": "web"}],
                "volumeMounts": [
                    {"name": "config", "mountPath": "/etc/config"},
                    {"name": "creds", "mountPath": "/etc/creds"},
                    {"name": "info", "mountPath": "/etc/podinfo"},
                    {"name": "scratch", "mountPath": "/logs", "subPathExpr": "$(POD_NAME)"},
                ]}],
            "volumes": [
                {"name": "config", "configMap": {"name": "settings"}},
                {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}},
                {"name": "info", "downwardAPI": {"items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                {"name": "scratch", "emptyDir": {}},
            ],
        }
    }))
    .unwrap();
    let objects = PodObjects {
        config_maps: vec![
            serde_json::from_value(json!({"metadata": {"name": "settings"},
                "data": {"greeting": "hello"}}))
            .unwrap(),
        ],
        secrets: vec![
            serde_json::from_value(json!({"metadata": {"name": "creds"},
                "data": {"password": "aHVudGVyMg=="}}))
            .unwrap(),
        ],
        ..Default::default()
    };
    let allocatable = BTreeMap::new();
    let ctx = VolumeContext {
        pod: &pod,
        objects: &objects,
        allocatable: &allocatable,
    };
    let mounted = set_up_pod_volumes(ctx, tmp.path()).unwrap();
    let volumes = tmp.path().join("volumes");
    let config = volumes.join("kubernetes.io~configmap/config");
    let creds = volumes.join("kubernetes.io~secret/creds");
    let info = volumes.join("kubernetes.io~downward-api/info");
    assert_eq!(
        fs::read_to_string(config.join("greeting")).unwrap(),
        "hello"
    );
    assert_eq!(
        fs::read_to_string(creds.join("password")).unwrap(),
        "hunter2"
    );
    // defaultMode 0400 with fsGroup: group-readable, group-owned.
    let password = fs::metadata(creds.join("password")).unwrap();
    assert_eq!((password.mode() & 0o7777, password.gid()), (0o440, 3000));
    assert_eq!(
        fs::read_to_string(info.join("labels")).unwrap(),
        "app=\"web\""
    );
    assert_eq!(tmpfs_mounts_under(tmp.path()), 2, "secret and downwardAPI");

    // A second sync is a no-op.
    assert_eq!(set_up_pod_volumes(ctx, tmp.path()).unwrap(), mounted);
    assert_eq!(tmpfs_mounts_under(tmp.path()), 2);

    let container = &pod.spec.as_ref().unwrap().containers[0];
    let env = [("POD_NAME".to_owned(), "web".to_owned())];
    let binds = container_mounts(container, &mounted, &env, &HostSubPaths).unwrap();
    let summary: Vec<(String, String, bool)> = binds
        .iter()
        .map(|b| {
            (
                b.source
                    .strip_prefix(&volumes)
                    .unwrap()
                    .display()
                    .to_string(),
                b.destination.display().to_string(),
                b.read_only,
            )
        })
        .collect();
    let expect = |s: &str, d: &str, ro| (s.to_owned(), d.to_owned(), ro);
    assert_eq!(
        summary,
        vec![
            expect("kubernetes.io~configmap/config", "/etc/config", true),
            expect("kubernetes.io~secret/creds", "/etc/creds", true),
            expect("kubernetes.io~downward-api/info", "/etc/podinfo", true),
            expect("kubernetes.io~empty-dir/scratch/web", "/logs", false),
        ]
    );
    assert!(volumes.join("kubernetes.io~empty-dir/scratch/web").is_dir());

    tear_down_pod_volumes(tmp.path()).unwrap();
    assert_eq!(tmpfs_mounts_under(tmp.path()), 0);
    assert!(!volumes.exists());
    tear_down_pod_volumes(tmp.path()).unwrap();
}
