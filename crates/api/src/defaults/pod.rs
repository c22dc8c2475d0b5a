//! Pod defaulting as the API server applies it when a pod is decoded (`SetDefaults_Pod`,
//! `SetDefaults_PodSpec`, `SetDefaults_Container`, … in `pkg/apis/core/v1/defaults.go`),
//! plus what the pod registry fills in on create (`status.phase: Pending`, `status.qosClass`).
//!
//! Users see all of these in `kubectl get pod -o yaml`, and later rules rely on them (the
//! kubelet reads `imagePullPolicy`, `terminationGracePeriodSeconds`, `enableServiceLinks`).
//! Every default is applied only where the field is unset, so defaulting twice is harmless.

use std::collections::BTreeMap;

use super::image::default_pull_policy;
use crate::k8s::api::core::v1::{
    Container, ContainerResizePolicy, EphemeralContainer, HTTPGetAction, LifecycleHandler,
    ObjectFieldSelector, Pod, PodSecurityContext, PodSpec, PodStatus, Probe, ResourceRequirements,
    Volume,
};
use crate::k8s::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use crate::quantity::Quantity;

pub const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS: i64 = 30;
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";
pub const TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// 0644, the default mode of secret, configMap, downwardAPI and projected volumes.
pub const DEFAULT_VOLUME_MODE: i32 = 0o644;

fn set_if_none<T>(field: &mut Option<T>, value: impl FnOnce() -> T) {
    if field.is_none() {
        *field = Some(value());
    }
}

/// Sets an unset or empty string field (Go treats `""` as unset).
fn set_if_empty(field: &mut Option<String>, value: &str) {
    if field.as_deref().is_none_or(str::is_empty) {
        *field = Some(value.to_owned());
    }
}

/// Rounds every quantity up to milli-units and writes it back in canonical form
/// (`SetDefaults_ResourceList` plus the decoder's canonical re-encoding): `1000m` → `1`,
/// `0.5` → `500m`, `1024Mi` → `1Gi`. Unparsable values are left for validation to report.
pub fn canonicalize_resource_list(list: &mut BTreeMap<String, ApiQuantity>) {
    for q in list.values_mut() {
        if let Ok(parsed) = Quantity::from_api(q) {
            *q = parsed.round_up(-3).to_api();
        }
    }
}

fn default_resources(r: &mut ResourceRequirements) {
    for list in [&mut r.limits, &mut r.requests].into_iter().flatten() {
        canonicalize_resource_list(list);
    }
}

fn default_http_get(h: &mut HTTPGetAction) {
    set_if_empty(&mut h.path, "/");
    set_if_empty(&mut h.scheme, "HTTP");
}

fn default_probe(p: &mut Probe) {
    for (field, value) in [
        (&mut p.timeout_seconds, 1),
        (&mut p.period_seconds, 10),
        (&mut p.success_threshold, 1),
        (&mut p.failure_threshold, 3),
    ] {
        if field.unwrap_or(0) == 0 {
            *field = Some(value);
        }
    }
    if let Some(h) = p.http_get.as_mut() {
        default_http_get(h);
    }
}

fn default_handler(h: &mut LifecycleHandler) {
    if let Some(g) = h.http_get.as_mut() {
        default_http_get(g);
    }
}

fn default_field_selector(f: &mut ObjectFieldSelector) {
    set_if_empty(&mut f.api_version, "v1");
}

/// `SetDefaults_Container` and the defaults of everything inside a container.
pub fn default_container(c: &mut Container) {
    if c.image_pull_policy.as_deref().is_none_or(str::is_empty) {
        c.image_pull_policy =
            Some(default_pull_policy(c.image.as_deref().unwrap_or("")).to_owned());
    }
    set_if_empty(&mut c.termination_message_path, TERMINATION_MESSAGE_PATH);
    set_if_empty(&mut c.termination_message_policy, "File");
    for port in c.ports.iter_mut().flatten() {
        set_if_empty(&mut port.protocol, "TCP");
    }
    for env in c.env.iter_mut().flatten() {
        if let Some(f) = env.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            default_field_selector(f);
        }
    }
    for probe in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        default_probe(probe);
    }
    if let Some(l) = c.lifecycle.as_mut() {
        for h in [&mut l.post_start, &mut l.pre_stop].into_iter().flatten() {
            default_handler(h);
        }
    }
    if let Some(r) = c.resources.as_mut() {
        default_resources(r);
    }
}

/// The same defaults for an ephemeral container (its fields mirror a container's).
pub fn default_ephemeral_container(c: &mut EphemeralContainer) {
    if c.image_pull_policy.as_deref().is_none_or(str::is_empty) {
        c.image_pull_policy =
            Some(default_pull_policy(c.image.as_deref().unwrap_or("")).to_owned());
    }
    set_if_empty(&mut c.termination_message_path, TERMINATION_MESSAGE_PATH);
    set_if_empty(&mut c.termination_message_policy, "File");
    for env in c.env.iter_mut().flatten() {
        if let Some(f) = env.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            default_field_selector(f);
        }
    }
}

/// A volume with no source becomes `emptyDir: {}`; sources get their default modes.
pub fn default_volume(v: &mut Volume) {
    let has_source = v.aws_elastic_block_store.is_some()
        || v.azure_disk.is_some()
        || v.azure_file.is_some()
        || v.cephfs.is_some()
        || v.cinder.is_some()
        || v.config_map.is_some()
        || v.csi.is_some()
        || v.downward_api.is_some()
        || v.empty_dir.is_some()
        || v.ephemeral.is_some()
        || v.fc.is_some()
        || v.flex_volume.is_some()
        || v.flocker.is_some()
        || v.gce_persistent_disk.is_some()
        || v.git_repo.is_some()
        || v.glusterfs.is_some()
        || v.host_path.is_some()
        || v.image.is_some()
        || v.iscsi.is_some()
        || v.nfs.is_some()
        || v.persistent_volume_claim.is_some()
        || v.photon_persistent_disk.is_some()
        || v.portworx_volume.is_some()
        || v.projected.is_some()
        || v.quobyte.is_some()
        || v.rbd.is_some()
        || v.scale_io.is_some()
        || v.secret.is_some()
        || v.storageos.is_some()
        || v.vsphere_volume.is_some();
    if !has_source {
        v.empty_dir = Some(Default::default());
    }
    if let Some(s) = v.secret.as_mut() {
        set_if_none(&mut s.default_mode, || DEFAULT_VOLUME_MODE);
    }
    if let Some(c) = v.config_map.as_mut() {
        set_if_none(&mut c.default_mode, || DEFAULT_VOLUME_MODE);
    }
    if let Some(d) = v.downward_api.as_mut() {
        set_if_none(&mut d.default_mode, || DEFAULT_VOLUME_MODE);
        for item in d.items.iter_mut().flatten() {
            if let Some(f) = item.field_ref.as_mut() {
                default_field_selector(f);
            }
        }
    }
    if let Some(p) = v.projected.as_mut() {
        set_if_none(&mut p.default_mode, || DEFAULT_VOLUME_MODE);
        for source in p.sources.iter_mut().flatten() {
            if let Some(t) = source.service_account_token.as_mut() {
                set_if_none(&mut t.expiration_seconds, || 3600);
            }
            if let Some(d) = source.downward_api.as_mut() {
                for item in d.items.iter_mut().flatten() {
                    if let Some(f) = item.field_ref.as_mut() {
                        default_field_selector(f);
                    }
                }
            }
        }
    }
    if let Some(h) = v.host_path.as_mut() {
        set_if_none(&mut h.type_, String::new);
    }
}

/// Requests default to limits (pods only, not templates), and with in-place resize (beta
/// and on in 1.33) each regular container requesting cpu or memory gets a `NotRequired`
/// resize policy for it.
fn default_pod_resources(spec: &mut PodSpec) {
    let fill_requests = |c: &mut Container| {
        let Some(r) = c.resources.as_mut() else {
            return;
        };
        let Some(limits) = r.limits.as_ref().filter(|l| !l.is_empty()) else {
            return;
        };
        let requests = r.requests.get_or_insert_with(BTreeMap::new);
        for (k, v) in limits {
            requests.entry(k.clone()).or_insert_with(|| v.clone());
        }
    };
    for c in spec.init_containers.iter_mut().flatten() {
        fill_requests(c);
    }
    for c in &mut spec.containers {
        fill_requests(c);
        let requested: Vec<String> = c
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .map(|r| {
                ["cpu", "memory"]
                    .iter()
                    .filter(|k| r.contains_key(**k))
                    .map(|k| k.to_string())
                    .collect()
            })
            .unwrap_or_default();
        for resource in requested {
            let policies = c.resize_policy.get_or_insert_with(Vec::new);
            if !policies.iter().any(|p| p.resource_name == resource) {
                policies.push(ContainerResizePolicy {
                    resource_name: resource,
                    restart_policy: "NotRequired".into(),
                });
            }
        }
    }
}

/// All pod defaults. Idempotent.
pub fn default_pod(pod: &mut Pod) {
    let spec = pod.spec.get_or_insert_with(Default::default);
    default_pod_resources(spec);
    set_if_none(&mut spec.enable_service_links, || true);
    if spec.host_network == Some(true) {
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            for port in c.ports.iter_mut().flatten() {
                if port.host_port.unwrap_or(0) == 0 {
                    port.host_port = Some(port.container_port);
                }
            }
        }
    }
    set_if_empty(&mut spec.dns_policy, "ClusterFirst");
    set_if_empty(&mut spec.restart_policy, "Always");
    set_if_none(&mut spec.security_context, PodSecurityContext::default);
    set_if_none(&mut spec.termination_grace_period_seconds, || {
        DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS
    });
    set_if_empty(&mut spec.scheduler_name, DEFAULT_SCHEDULER_NAME);
    for c in spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut())
    {
        default_container(c);
    }
    for c in spec.ephemeral_containers.iter_mut().flatten() {
        default_ephemeral_container(c);
    }
    for v in spec.volumes.iter_mut().flatten() {
        default_volume(v);
    }
    if let Some(o) = spec.overhead.as_mut() {
        canonicalize_resource_list(o);
    }
    // v1 keeps the deprecated `serviceAccount` in step with `serviceAccountName`
    if spec
        .service_account_name
        .as_deref()
        .is_none_or(str::is_empty)
        && let Some(old) = spec.service_account.clone().filter(|s| !s.is_empty())
    {
        spec.service_account_name = Some(old);
    }
    if let Some(name) = spec.service_account_name.clone().filter(|s| !s.is_empty()) {
        spec.service_account = Some(name);
    }
}

/// The pod's QoS class (`Guaranteed`, `Burstable`, `BestEffort`) from its containers' cpu and
/// memory requests and limits, computed as upstream's `ComputePodQOS` (after defaulting).
pub fn qos_class(spec: &PodSpec) -> &'static str {
    let mut requests: BTreeMap<&str, Quantity> = BTreeMap::new();
    let mut limits: BTreeMap<&str, Quantity> = BTreeMap::new();
    let mut guaranteed = true;
    let positive = |q: &ApiQuantity| Quantity::from_api(q).ok().filter(|q| q.nanos() > 0);
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let r = c.resources.clone().unwrap_or_default();
        for (name, q) in r.requests.iter().flatten() {
            let name = name.as_str();
            if let (true, Some(q)) = (name == "cpu" || name == "memory", positive(q)) {
                let key = if name == "cpu" { "cpu" } else { "memory" };
                let sum = requests.get(key).map_or(q, |s| s.add(&q));
                requests.insert(key, sum);
            }
        }
        let mut found = (false, false);
        for (name, q) in r.limits.iter().flatten() {
            let name = name.as_str();
            if let (true, Some(q)) = (name == "cpu" || name == "memory", positive(q)) {
                let key = if name == "cpu" { "cpu" } else { "memory" };
                if key == "cpu" {
                    found.0 = true;
                } else {
                    found.1 = true;
                }
                let sum = limits.get(key).map_or(q, |s| s.add(&q));
                limits.insert(key, sum);
            }
        }
        if found != (true, true) {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed
        && requests.iter().all(|(k, r)| limits.get(k) == Some(r))
        && requests.len() == limits.len()
    {
        return "Guaranteed";
    }
    "Burstable"
}

/// What the pod registry sets on create: `status` becomes `{phase: Pending, qosClass}`
/// (whatever status the client sent is dropped).
pub fn prepare_pod_for_create(pod: &mut Pod) {
    let qos = pod.spec.as_ref().map_or("BestEffort", qos_class);
    pod.status = Some(PodStatus {
        phase: Some("Pending".into()),
        qos_class: Some(qos.into()),
        ..Default::default()
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::api::core::v1::{
        ContainerPort, EnvVar, EnvVarSource, Lifecycle, SecretVolumeSource, TCPSocketAction,
    };
    use crate::k8s::apimachinery::pkg::util::intstr::IntOrString;
    use serde_json::json;

    fn pod_from(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_minimal_pod_gets_the_visible_defaults() {
        let mut pod = pod_from(json!({
            "apiVersion":"v1","kind":"Pod","metadata":{"name":"demo"},
            "spec":{"containers":[{"name":"main","image":"busybox:1.33","command":["sleep","3600"],
                    "ports":[{"containerPort":80}],
                    "livenessProbe":{"httpGet":{"port":8080}},
                    "lifecycle":{"preStop":{"httpGet":{"port":80}}},
                    "env":[{"name":"N","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}]}],
                    "volumes":[{"name":"v"}]}
        }));
        default_pod(&mut pod);
        prepare_pod_for_create(&mut pod);
        let got = serde_json::to_value(&pod).unwrap();
        let want = json!({
            "apiVersion":"v1","kind":"Pod","metadata":{"name":"demo"},
            "spec":{
                "containers":[{"name":"main","image":"busybox:1.33","command":["sleep","3600"],
                    "imagePullPolicy":"IfNotPresent",
                    "terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File",
                    "ports":[{"containerPort":80,"protocol":"TCP"}],
                    "livenessProbe":{"httpGet":{"port":8080,"path":"/","scheme":"HTTP"},
                        "timeoutSeconds":1,"periodSeconds":10,"successThreshold":1,"failureThreshold":3},
                    "lifecycle":{"preStop":{"httpGet":{"port":80,"path":"/","scheme":"HTTP"}}},
                    "env":[{"name":"N","valueFrom":{"fieldRef":{"apiVersion":"v1","fieldPath":"metadata.name"}}}]}],
                "volumes":[{"name":"v","emptyDir":{}}],
                "restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst",
                "securityContext":{},"schedulerName":"default-scheduler","enableServiceLinks":true
            },
            "status":{"phase":"Pending","qosClass":"BestEffort"}
        });
        assert_eq!(got, want);
    }

    #[test]
    fn pull_policy_defaults_per_container() {
        let cases = [
            ("busybox", "Always"),
            ("busybox:latest", "Always"),
            ("busybox:1.36", "IfNotPresent"),
            ("", "IfNotPresent"),
        ];
        for (image, want) in cases {
            let mut c = Container {
                name: "c".into(),
                image: Some(image.into()),
                ..Default::default()
            };
            default_container(&mut c);
            assert_eq!(c.image_pull_policy.as_deref(), Some(want), "{image}");
        }
        let mut c = Container {
            name: "c".into(),
            image: Some("busybox".into()),
            image_pull_policy: Some("Never".into()),
            ..Default::default()
        };
        default_container(&mut c);
        assert_eq!(c.image_pull_policy.as_deref(), Some("Never"));
    }

    #[test]
    fn requests_default_to_limits_and_quantities_are_canonical() {
        let mut pod = pod_from(json!({
            "metadata":{"name":"p"},
            "spec":{"containers":[{"name":"a","image":"x","resources":{"limits":{"cpu":"1000m","memory":"1024Mi"},"requests":{"cpu":"0.5"}}}],
                    "overhead":{"cpu":"250m","memory":"120Mi"}}
        }));
        default_pod(&mut pod);
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let r = c.resources.as_ref().unwrap();
        let s =
            |m: &Option<BTreeMap<String, ApiQuantity>>, k: &str| m.as_ref().unwrap()[k].0.clone();
        assert_eq!(s(&r.limits, "cpu"), "1");
        assert_eq!(s(&r.limits, "memory"), "1Gi");
        assert_eq!(s(&r.requests, "cpu"), "500m");
        assert_eq!(s(&r.requests, "memory"), "1Gi");
        let policies: Vec<(String, String)> = c
            .resize_policy
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| (p.resource_name.clone(), p.restart_policy.clone()))
            .collect();
        assert_eq!(
            policies,
            vec![
                ("cpu".into(), "NotRequired".into()),
                ("memory".into(), "NotRequired".into())
            ]
        );
        assert_eq!(
            pod.spec.as_ref().unwrap().overhead.as_ref().unwrap()["memory"].0,
            "120Mi"
        );
        assert_eq!(qos_class(pod.spec.as_ref().unwrap()), "Burstable");
    }

    #[test]
    fn qos_classes() {
        let spec = |res: serde_json::Value| -> PodSpec {
            serde_json::from_value(json!({"containers":[{"name":"a","resources":res}]})).unwrap()
        };
        let cases = [
            (json!({}), "BestEffort"),
            (json!({"requests":{"cpu":"100m"}}), "Burstable"),
            (
                json!({"limits":{"cpu":"1","memory":"1Gi"},"requests":{"cpu":"1","memory":"1Gi"}}),
                "Guaranteed",
            ),
            (
                json!({"limits":{"cpu":"1","memory":"1Gi"},"requests":{"cpu":"500m","memory":"1Gi"}}),
                "Burstable",
            ),
            (
                json!({"limits":{"cpu":"1"},"requests":{"cpu":"1"}}),
                "Burstable",
            ),
            (
                json!({"requests":{"ephemeral-storage":"1Gi"}}),
                "BestEffort",
            ),
        ];
        for (res, want) in cases {
            assert_eq!(qos_class(&spec(res.clone())), want, "{res}");
        }
    }

    #[test]
    fn host_network_ports_volumes_and_service_account() {
        let mut pod = Pod {
            spec: Some(PodSpec {
                host_network: Some(true),
                service_account: Some("legacy".into()),
                containers: vec![Container {
                    name: "a".into(),
                    image: Some("x:1".into()),
                    ports: Some(vec![ContainerPort {
                        container_port: 8080,
                        ..Default::default()
                    }]),
                    env: Some(vec![EnvVar {
                        name: "A".into(),
                        value_from: Some(EnvVarSource {
                            field_ref: Some(ObjectFieldSelector {
                                field_path: "spec.nodeName".into(),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }]),
                    lifecycle: Some(Lifecycle {
                        post_start: Some(LifecycleHandler {
                            tcp_socket: Some(TCPSocketAction {
                                port: IntOrString::Int(1),
                                host: None,
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                volumes: Some(vec![Volume {
                    name: "s".into(),
                    secret: Some(SecretVolumeSource {
                        secret_name: Some("x".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        default_pod(&mut pod);
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(
            spec.containers[0].ports.as_ref().unwrap()[0].host_port,
            Some(8080)
        );
        assert_eq!(
            spec.volumes.as_ref().unwrap()[0]
                .secret
                .as_ref()
                .unwrap()
                .default_mode,
            Some(420)
        );
        assert_eq!(spec.service_account_name.as_deref(), Some("legacy"));
        assert_eq!(spec.service_account.as_deref(), Some("legacy"));
        let before = serde_json::to_value(&pod).unwrap();
        default_pod(&mut pod);
        assert_eq!(
            serde_json::to_value(&pod).unwrap(),
            before,
            "defaulting is idempotent"
        );
    }
}
