//! The downward API for environment variables (spec §5.4): `fieldRef` paths into the pod and
//! `resourceFieldRef` values of a container's requests and limits.
//!
//! Pod and host IPs come from the node (the sandbox's addresses, the node's addresses), not from
//! `pod.status`, because the first start of a container happens before the status carrying them
//! is written.

use std::collections::BTreeMap;
use std::net::IpAddr;

use nodelet_api::k8s::api::core::v1::{Container, ObjectFieldSelector, Pod, ResourceFieldSelector};
use nodelet_api::k8s::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use nodelet_api::names::is_qualified_name;
use nodelet_api::quantity::Quantity;

/// Why a downward API reference has no value. Texts are upstream's (apimachinery `fieldpath`,
/// `pods.ConvertDownwardAPIFieldLabel`, `resource` helpers) (M: re-derived, not re-read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownwardError {
    #[error("unsupported pod version: {0}")]
    UnsupportedVersion(String),
    #[error("field label does not support subscript: {0}")]
    SubscriptNotSupported(String),
    #[error("field label not supported: {0}")]
    FieldLabelNotSupported(String),
    #[error("invalid key subscript in {path}: {errors}")]
    InvalidSubscript { path: String, errors: String },
    #[error("unsupported fieldPath: {0}")]
    UnsupportedFieldPath(String),
    /// The node's addresses could not be found (`status.hostIP`, `status.hostIPs`).
    #[error("{0}")]
    HostIps(String),
    #[error("unsupported container resource : {0}")]
    UnsupportedResource(String),
    #[error("container {0} not found")]
    ContainerNotFound(String),
    #[error("invalid quantity {value:?} for {resource}: {error}")]
    Quantity {
        resource: String,
        value: String,
        error: String,
    },
    #[error("divisor for {0} must not be zero")]
    ZeroDivisor(String),
}

/// Splits `metadata.labels['key']` into `("metadata.labels", "key")`.
pub fn split_subscripted_path(path: &str) -> Option<(&str, &str)> {
    let inner = path.strip_suffix("']")?;
    let (base, key) = inner.split_once("['")?;
    (!base.is_empty()).then_some((base, key))
}

/// The internal field path for an API one, as the API's conversion accepts it (`spec.host` is
/// the v1 alias of `spec.nodeName`). `api_version` defaults to `v1`.
pub fn convert_field_label(api_version: Option<&str>, path: &str) -> Result<String, DownwardError> {
    let version = api_version.filter(|v| !v.is_empty()).unwrap_or("v1");
    if version != "v1" {
        return Err(DownwardError::UnsupportedVersion(version.to_owned()));
    }
    if let Some((base, _)) = split_subscripted_path(path) {
        return match base {
            "metadata.annotations" | "metadata.labels" => Ok(path.to_owned()),
            _ => Err(DownwardError::SubscriptNotSupported(path.to_owned())),
        };
    }
    match path {
        "metadata.annotations"
        | "metadata.labels"
        | "metadata.name"
        | "metadata.namespace"
        | "metadata.uid"
        | "spec.nodeName"
        | "spec.restartPolicy"
        | "spec.serviceAccountName"
        | "spec.schedulerName"
        | "status.phase"
        | "status.hostIP"
        | "status.hostIPs"
        | "status.podIP"
        | "status.podIPs" => Ok(path.to_owned()),
        "spec.host" => Ok("spec.nodeName".to_owned()),
        _ => Err(DownwardError::FieldLabelNotSupported(path.to_owned())),
    }
}

/// The value of `selector` for `pod`. `pod_ips` must already be in the node's family order
/// ([`sort_pod_ips`]); `host_ips` is asked only for the `status.hostIP(s)` paths.
pub fn pod_field_value(
    pod: &Pod,
    selector: &ObjectFieldSelector,
    pod_ips: &[String],
    host_ips: impl FnOnce() -> Result<Vec<String>, String>,
) -> Result<String, DownwardError> {
    let path = convert_field_label(selector.api_version.as_deref(), &selector.field_path)?;
    let spec = pod.spec.as_ref();
    match path.as_str() {
        "spec.nodeName" => {
            return Ok(spec.and_then(|s| s.node_name.clone()).unwrap_or_default());
        }
        "spec.serviceAccountName" => {
            return Ok(spec
                .and_then(|s| s.service_account_name.clone())
                .unwrap_or_default());
        }
        "status.hostIP" | "status.hostIPs" => {
            let ips = host_ips().map_err(DownwardError::HostIps)?;
            let Some(first) = ips.first() else {
                return Err(DownwardError::HostIps(
                    "node has no IP addresses".to_owned(),
                ));
            };
            return Ok(if path == "status.hostIP" {
                first.clone()
            } else {
                ips.join(",")
            });
        }
        "status.podIP" => return Ok(pod_ips.first().cloned().unwrap_or_default()),
        "status.podIPs" => return Ok(pod_ips.join(",")),
        _ => {}
    }
    metadata_field_value(pod, &path)
}

/// apimachinery's `ExtractFieldPathAsString` for the metadata paths.
fn metadata_field_value(pod: &Pod, path: &str) -> Result<String, DownwardError> {
    let meta = &pod.metadata;
    let empty = BTreeMap::new();
    let labels = meta.labels.as_ref().unwrap_or(&empty);
    let annotations = meta.annotations.as_ref().unwrap_or(&empty);
    if let Some((base, key)) = split_subscripted_path(path) {
        let (map, checked) = match base {
            // annotation keys are checked case-insensitively, label keys as they are
            "metadata.annotations" => (annotations, key.to_lowercase()),
            "metadata.labels" => (labels, key.to_owned()),
            _ => return Err(DownwardError::SubscriptNotSupported(path.to_owned())),
        };
        let errs = is_qualified_name(&checked);
        if !errs.is_empty() {
            return Err(DownwardError::InvalidSubscript {
                path: path.to_owned(),
                errors: errs.join(";"),
            });
        }
        return Ok(map.get(key).cloned().unwrap_or_default());
    }
    match path {
        "metadata.annotations" => Ok(format_map(annotations)),
        "metadata.labels" => Ok(format_map(labels)),
        "metadata.name" => Ok(meta.name.clone().unwrap_or_default()),
        "metadata.namespace" => Ok(meta.namespace.clone().unwrap_or_default()),
        "metadata.uid" => Ok(meta.uid.clone().unwrap_or_default()),
        _ => Err(DownwardError::UnsupportedFieldPath(path.to_owned())),
    }
}

/// `key="value"` lines in key order (what a whole-map path yields).
pub fn format_map(map: &BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={}", nodelet_api::field_errors::go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn parse_ip(ip: &str) -> Option<IpAddr> {
    match ip.trim().parse::<IpAddr>().ok()? {
        IpAddr::V6(v6) => Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)),
        v4 => Some(v4),
    }
}

/// The pod's IPs as the kubelet reports them: the first one of the node's family (IPv4 when the
/// node's is unknown), then the first one of the other family; re-printed in canonical form.
pub fn sort_pod_ips(pod_ips: &[String], node_ip: Option<&str>) -> Vec<String> {
    let node_v6 = node_ip.and_then(parse_ip).is_some_and(|ip| ip.is_ipv6());
    let parsed: Vec<IpAddr> = pod_ips.iter().filter_map(|ip| parse_ip(ip)).collect();
    let mut out = Vec::with_capacity(2);
    for want_v6 in [node_v6, !node_v6] {
        if let Some(ip) = parsed.iter().find(|ip| ip.is_ipv6() == want_v6) {
            out.push(ip.to_string());
        }
    }
    out
}

/// The resources the downward API may name for env (`limits.*`, `requests.*`).
pub const DEFAULTED_FROM_ALLOCATABLE: [&str; 3] = ["cpu", "memory", "ephemeral-storage"];

/// The container's limits with every unset (or zero) cpu, memory and ephemeral-storage limit
/// taken from node allocatable — or, for cpu and memory, from the pod-level limits when the pod
/// sets them (PodLevelResources). Hugepages are never defaulted: they cannot be overcommitted.
pub fn limits_for_downward_api(
    pod: &Pod,
    container: &Container,
    allocatable: &BTreeMap<String, ApiQuantity>,
) -> BTreeMap<String, ApiQuantity> {
    let mut limits = container
        .resources
        .as_ref()
        .and_then(|r| r.limits.clone())
        .unwrap_or_default();
    let pod_limits = pod
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.limits.as_ref());
    for name in DEFAULTED_FROM_ALLOCATABLE {
        let unset = limits.get(name).is_none_or(is_zero);
        if !unset {
            continue;
        }
        let Some(node) = allocatable.get(name) else {
            continue;
        };
        let pod_level = pod_limits
            .filter(|_| name != "ephemeral-storage")
            .and_then(|l| l.get(name))
            .filter(|q| !is_zero(q));
        limits.insert(name.to_owned(), pod_level.unwrap_or(node).clone());
    }
    limits
}

fn is_zero(q: &ApiQuantity) -> bool {
    Quantity::from_api(q).is_ok_and(|q| q.is_zero())
}

/// The value of `selector` (spec §5.4): `ceil(quantity / divisor)` as an integer, CPU in
/// milli-units so `1250m` with divisor `1` gives `2`, memory in bytes. The referenced container
/// is `container` unless the selector names another one in the pod; its unset limits default to
/// `allocatable` (see [`limits_for_downward_api`]).
pub fn container_resource_value(
    selector: &ResourceFieldSelector,
    pod: &Pod,
    container: &Container,
    allocatable: &BTreeMap<String, ApiQuantity>,
) -> Result<String, DownwardError> {
    let target = match selector.container_name.as_deref().filter(|n| !n.is_empty()) {
        None => container,
        Some(name) => find_container(pod, name)?,
    };
    let limits = limits_for_downward_api(pod, target, allocatable);
    let requests = target
        .resources
        .as_ref()
        .and_then(|r| r.requests.clone())
        .unwrap_or_default();

    let resource = selector.resource.as_str();
    let (list, name) = if let Some(name) = resource.strip_prefix("limits.") {
        (&limits, name)
    } else if let Some(name) = resource.strip_prefix("requests.") {
        (&requests, name)
    } else {
        return Err(DownwardError::UnsupportedResource(resource.to_owned()));
    };
    let milli = match name {
        "cpu" => true,
        "memory" | "ephemeral-storage" => false,
        _ if name.starts_with("hugepages-") => false,
        _ => return Err(DownwardError::UnsupportedResource(resource.to_owned())),
    };
    let quantity = match list.get(name) {
        Some(q) => parse(resource, q)?,
        None => Quantity::from_units(0),
    };
    let divisor = match selector.divisor.as_ref() {
        Some(d) if !is_zero(d) => parse(resource, d)?,
        _ => Quantity::from_units(1),
    };
    let (n, d) = if milli {
        (quantity.milli_value(), divisor.milli_value())
    } else {
        (quantity.value(), divisor.value())
    };
    if d == 0 {
        return Err(DownwardError::ZeroDivisor(resource.to_owned()));
    }
    Ok(ceil_div(n, d).to_string())
}

fn parse(resource: &str, q: &ApiQuantity) -> Result<Quantity, DownwardError> {
    Quantity::from_api(q).map_err(|e| DownwardError::Quantity {
        resource: resource.to_owned(),
        value: q.0.clone(),
        error: e.to_string(),
    })
}

fn ceil_div(n: i128, d: i128) -> i128 {
    let q = n / d;
    if n % d != 0 && ((n < 0) == (d < 0)) {
        q + 1
    } else {
        q
    }
}

fn find_container<'p>(pod: &'p Pod, name: &str) -> Result<&'p Container, DownwardError> {
    let spec = pod.spec.as_ref();
    spec.into_iter()
        .flat_map(|s| s.containers.iter())
        .chain(
            spec.into_iter()
                .flat_map(|s| s.init_containers.iter().flatten()),
        )
        .find(|c| c.name == name)
        .ok_or_else(|| DownwardError::ContainerNotFound(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodelet_api::k8s::api::core::v1::{PodSpec, ResourceRequirements};
    use nodelet_api::k8s::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn q(s: &str) -> ApiQuantity {
        ApiQuantity(s.to_owned())
    }

    fn list(items: &[(&str, &str)]) -> BTreeMap<String, ApiQuantity> {
        items.iter().map(|(k, v)| (k.to_string(), q(v))).collect()
    }

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("downward-api-1".into()),
                namespace: Some("e2e".into()),
                uid: Some("0b6a5b8e-2a4c-4d5e-9f00-1234567890ab".into()),
                labels: Some(
                    [("app", "web"), ("tier", "front end")]
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                ),
                annotations: Some([("Build".to_owned(), "42".to_owned())].into()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some("node-1".into()),
                service_account_name: Some("default".into()),
                containers: vec![container(
                    "main",
                    &[("cpu", "1250m"), ("memory", "64Mi")],
                    &[("cpu", "250m"), ("memory", "32Mi")],
                )],
                init_containers: Some(vec![container("init", &[], &[])]),
                ..PodSpec::default()
            }),
            ..Pod::default()
        }
    }

    fn container(name: &str, limits: &[(&str, &str)], requests: &[(&str, &str)]) -> Container {
        Container {
            name: name.into(),
            resources: Some(ResourceRequirements {
                limits: (!limits.is_empty()).then(|| list(limits)),
                requests: (!requests.is_empty()).then(|| list(requests)),
                ..ResourceRequirements::default()
            }),
            ..Container::default()
        }
    }

    fn field(path: &str) -> ObjectFieldSelector {
        ObjectFieldSelector {
            field_path: path.into(),
            api_version: None,
        }
    }

    fn hosts() -> Result<Vec<String>, String> {
        Ok(vec!["192.168.1.10".into(), "fd00::10".into()])
    }

    #[test]
    fn field_paths() {
        let pod = pod();
        let ips = vec!["10.244.0.5".to_owned(), "fd00:10:244::5".to_owned()];
        let cases: &[(&str, Result<&str, DownwardError>)] = &[
            ("metadata.name", Ok("downward-api-1")),
            ("metadata.namespace", Ok("e2e")),
            ("metadata.uid", Ok("0b6a5b8e-2a4c-4d5e-9f00-1234567890ab")),
            ("metadata.labels['app']", Ok("web")),
            ("metadata.labels['missing']", Ok("")),
            ("metadata.annotations['Build']", Ok("42")),
            ("metadata.labels", Ok("app=\"web\"\ntier=\"front end\"")),
            ("spec.nodeName", Ok("node-1")),
            ("spec.host", Ok("node-1")),
            ("spec.serviceAccountName", Ok("default")),
            ("status.hostIP", Ok("192.168.1.10")),
            ("status.hostIPs", Ok("192.168.1.10,fd00::10")),
            ("status.podIP", Ok("10.244.0.5")),
            ("status.podIPs", Ok("10.244.0.5,fd00:10:244::5")),
            (
                "spec.containers",
                Err(DownwardError::FieldLabelNotSupported(
                    "spec.containers".into(),
                )),
            ),
            (
                "spec.nodeName['x']",
                Err(DownwardError::SubscriptNotSupported(
                    "spec.nodeName['x']".into(),
                )),
            ),
            (
                "status.phase",
                Err(DownwardError::UnsupportedFieldPath("status.phase".into())),
            ),
            (
                "metadata.labels['bad key']",
                Err(DownwardError::InvalidSubscript {
                    path: "metadata.labels['bad key']".into(),
                    errors: is_qualified_name("bad key").join(";"),
                }),
            ),
        ];
        for (path, want) in cases {
            let got = pod_field_value(&pod, &field(path), &ips, hosts);
            assert_eq!(got.as_deref().map_err(Clone::clone), want.clone(), "{path}");
        }
    }

    #[test]
    fn field_api_version_and_host_ip_errors() {
        let pod = pod();
        let sel = ObjectFieldSelector {
            api_version: Some("v2".into()),
            field_path: "metadata.name".into(),
        };
        assert_eq!(
            pod_field_value(&pod, &sel, &[], hosts)
                .unwrap_err()
                .to_string(),
            "unsupported pod version: v2"
        );
        let err = pod_field_value(&pod, &field("status.hostIP"), &[], || {
            Err("node \"n\" not found".into())
        });
        assert_eq!(err.unwrap_err().to_string(), "node \"n\" not found");
        // no pod IP yet: empty
        assert_eq!(
            pod_field_value(&pod, &field("status.podIP"), &[], hosts).unwrap(),
            ""
        );
    }

    #[test]
    fn pod_ips_follow_the_node_family() {
        let v4 = "10.0.0.5".to_owned();
        let v6 = "fd00::0005".to_owned();
        let cases: [(Vec<String>, Option<&str>, Vec<&str>); 5] = [
            (
                vec![v4.clone(), v6.clone()],
                Some("192.168.0.1"),
                vec!["10.0.0.5", "fd00::5"],
            ),
            (
                vec![v4.clone(), v6.clone()],
                Some("fd00::1"),
                vec!["fd00::5", "10.0.0.5"],
            ),
            (
                vec![v6.clone(), v4.clone()],
                None,
                vec!["10.0.0.5", "fd00::5"],
            ),
            (
                vec![v6.clone(), "10.0.0.6".into(), v4.clone()],
                None,
                vec!["10.0.0.6", "fd00::5"],
            ),
            (
                vec!["::ffff:10.1.2.3".into(), "junk".into()],
                None,
                vec!["10.1.2.3"],
            ),
        ];
        for (ips, node, want) in cases {
            assert_eq!(sort_pod_ips(&ips, node), want, "{ips:?} {node:?}");
        }
    }

    fn rsel(resource: &str, divisor: Option<&str>) -> ResourceFieldSelector {
        ResourceFieldSelector {
            container_name: None,
            resource: resource.into(),
            divisor: divisor.map(q),
        }
    }

    #[test]
    fn resource_values() {
        let pod = pod();
        let main = &pod.spec.as_ref().unwrap().containers[0];
        let alloc = list(&[
            ("cpu", "4"),
            ("memory", "8Gi"),
            ("ephemeral-storage", "100Gi"),
        ]);
        let cases: &[(&str, Option<&str>, &str)] = &[
            // the e2e "Downward API" expectations
            ("limits.cpu", None, "2"),
            ("limits.memory", None, "67108864"),
            ("requests.cpu", None, "1"),
            ("requests.memory", None, "33554432"),
            // divisors
            ("limits.cpu", Some("1m"), "1250"),
            ("requests.cpu", Some("1m"), "250"),
            ("limits.memory", Some("1Mi"), "64"),
            ("limits.memory", Some("1M"), "68"),
            ("requests.memory", Some("1Ki"), "32768"),
            ("limits.cpu", Some("0"), "2"),
            // unset limits: node allocatable
            ("limits.ephemeral-storage", None, "107374182400"),
            ("limits.ephemeral-storage", Some("1Gi"), "100"),
            // unset request: zero
            ("requests.ephemeral-storage", None, "0"),
            ("limits.hugepages-2Mi", None, "0"),
        ];
        for (resource, divisor, want) in cases {
            let got = container_resource_value(&rsel(resource, *divisor), &pod, main, &alloc);
            assert_eq!(got.as_deref(), Ok(*want), "{resource} / {divisor:?}");
        }
        assert_eq!(
            container_resource_value(&rsel("limits.gpu", None), &pod, main, &alloc)
                .unwrap_err()
                .to_string(),
            "unsupported container resource : limits.gpu"
        );
    }

    #[test]
    fn limits_default_to_allocatable_or_pod_level() {
        let mut pod = pod();
        let init = pod.spec.as_ref().unwrap().init_containers.as_ref().unwrap()[0].clone();
        let alloc = list(&[("cpu", "3"), ("memory", "2Gi")]);
        let named = ResourceFieldSelector {
            container_name: Some("init".into()),
            ..rsel("limits.memory", Some("1Mi"))
        };
        let main = pod.spec.as_ref().unwrap().containers[0].clone();
        assert_eq!(
            container_resource_value(&named, &pod, &main, &alloc).as_deref(),
            Ok("2048")
        );
        assert_eq!(
            container_resource_value(&rsel("limits.cpu", None), &pod, &init, &alloc).as_deref(),
            Ok("3")
        );
        // pod-level limits replace allocatable for cpu and memory
        pod.spec.as_mut().unwrap().resources = Some(ResourceRequirements {
            limits: Some(list(&[("cpu", "1250m"), ("memory", "64Mi")])),
            ..ResourceRequirements::default()
        });
        assert_eq!(
            container_resource_value(&rsel("limits.cpu", None), &pod, &init, &alloc).as_deref(),
            Ok("2")
        );
        assert_eq!(
            container_resource_value(&rsel("limits.memory", None), &pod, &init, &alloc).as_deref(),
            Ok("67108864")
        );
        let missing = ResourceFieldSelector {
            container_name: Some("nope".into()),
            ..rsel("limits.cpu", None)
        };
        assert_eq!(
            container_resource_value(&missing, &pod, &init, &alloc)
                .unwrap_err()
                .to_string(),
            "container nope not found"
        );
    }
}
