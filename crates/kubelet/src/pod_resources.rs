//! Requests and limits → cgroup settings, as upstream's kubelet computes them (cgroupfs
//! driver): the pod's QoS class, the pod cgroup's limits (`ResourceConfigForPod`) and each
//! container's (`cpu.shares` from the request, CFS quota from the CPU limit over a 100 ms
//! period, the memory limit).
//!
//! Pod level: requests are the larger of the app containers' sum (with sidecars) and the
//! largest init container (plus the sidecars started before it), plus `spec.overhead`;
//! limits likewise, the overhead added to those present. CPU shares always come from the
//! requests; the CFS quota and memory limit apply only when *every* container (init ones
//! too) declares that limit. BestEffort pods get the minimum shares and nothing else.

use std::collections::BTreeMap;

use nodelet_api::k8s::api::core::v1::{Container, PodSpec};
use nodelet_api::k8s::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use nodelet_api::quantity::Quantity;
use nodelet_runtime::pod_cgroup::QosClass;
use nodelet_runtime::spec::{CPU_PERIOD_US, Resources};

const CPU: &str = "cpu";
const MEMORY: &str = "memory";
const MIN_SHARES: u64 = 2;
const MAX_SHARES: u64 = 262_144;
const MIN_QUOTA_US: i64 = 1_000;

/// cpu in millicores, memory in bytes (zero or unset entries left out).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Amounts {
    cpu_milli: Option<i128>,
    memory: Option<i128>,
}

impl Amounts {
    fn of(list: Option<&BTreeMap<String, ApiQuantity>>) -> Amounts {
        let get = |name: &str, milli: bool| {
            let q = Quantity::from_api(list?.get(name)?).ok()?;
            let v = if milli { q.milli_value() } else { q.value() };
            (v > 0).then_some(v)
        };
        Amounts {
            cpu_milli: get(CPU, true),
            memory: get(MEMORY, false),
        }
    }

    fn combine(self, other: Amounts, f: fn(i128, i128) -> i128) -> Amounts {
        let one = |a: Option<i128>, b: Option<i128>| match (a, b) {
            (Some(a), Some(b)) => Some(f(a, b)),
            (a, b) => a.or(b),
        };
        Amounts {
            cpu_milli: one(self.cpu_milli, other.cpu_milli),
            memory: one(self.memory, other.memory),
        }
    }

    fn plus(self, other: Amounts) -> Amounts {
        self.combine(other, |a, b| a.saturating_add(b))
    }

    fn max(self, other: Amounts) -> Amounts {
        self.combine(other, i128::max)
    }

    /// The overhead added only to the amounts present (upstream's `PodLimits`).
    fn plus_where_present(self, overhead: Amounts) -> Amounts {
        Amounts {
            cpu_milli: self.cpu_milli.map(|v| v + overhead.cpu_milli.unwrap_or(0)),
            memory: self.memory.map(|v| v + overhead.memory.unwrap_or(0)),
        }
    }
}

fn requests(c: &Container) -> Amounts {
    Amounts::of(c.resources.as_ref().and_then(|r| r.requests.as_ref()))
}

fn limits(c: &Container) -> Amounts {
    Amounts::of(c.resources.as_ref().and_then(|r| r.limits.as_ref()))
}

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// Upstream's aggregation of one kind of amount over the pod's containers.
fn aggregate(spec: &PodSpec, of: fn(&Container) -> Amounts) -> Amounts {
    let mut sum = spec
        .containers
        .iter()
        .fold(Amounts::default(), |acc, c| acc.plus(of(c)));
    let mut sidecars = Amounts::default();
    let mut init_max = Amounts::default();
    for c in spec.init_containers.iter().flatten() {
        if is_sidecar(c) {
            sidecars = sidecars.plus(of(c));
            init_max = init_max.max(sidecars);
        } else {
            init_max = init_max.max(of(c).plus(sidecars));
        }
    }
    sum = sum.plus(sidecars);
    sum.max(init_max)
}

fn all_containers(spec: &PodSpec) -> impl Iterator<Item = &Container> {
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
}

/// Upstream's `GetPodQOS` over cpu and memory: BestEffort without any request or limit;
/// Guaranteed when every container limits both and the requests add up to the limits.
pub fn qos_class(spec: &PodSpec) -> QosClass {
    let mut any = false;
    let mut every_limit = true;
    let (mut sum_requests, mut sum_limits) = (Amounts::default(), Amounts::default());
    for c in all_containers(spec) {
        let (req, lim) = (requests(c), limits(c));
        any |= req != Amounts::default() || lim != Amounts::default();
        every_limit &= lim.cpu_milli.is_some() && lim.memory.is_some();
        sum_requests = sum_requests.plus(req);
        sum_limits = sum_limits.plus(lim);
    }
    if !any {
        QosClass::BestEffort
    } else if every_limit && sum_requests == sum_limits {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    }
}

/// The pod cgroup's settings (upstream's `ResourceConfigForPod`, CFS quota enforced).
pub fn pod_resources(spec: &PodSpec) -> Resources {
    let qos = qos_class(spec);
    if qos == QosClass::BestEffort {
        return Resources {
            cpu_shares: Some(MIN_SHARES),
            cpu_quota_us: None,
            memory_limit_bytes: None,
        };
    }
    let overhead = Amounts::of(spec.overhead.as_ref());
    let pod_requests = aggregate(spec, requests).plus(overhead);
    let pod_limits = aggregate(spec, limits).plus_where_present(overhead);
    let cpu_limits_declared = all_containers(spec).all(|c| limits(c).cpu_milli.is_some());
    let memory_limits_declared = all_containers(spec).all(|c| limits(c).memory.is_some());
    let guaranteed = qos == QosClass::Guaranteed;
    Resources {
        cpu_shares: Some(milli_cpu_to_shares(pod_requests.cpu_milli)),
        cpu_quota_us: (guaranteed || cpu_limits_declared)
            .then(|| milli_cpu_to_quota(pod_limits.cpu_milli))
            .flatten(),
        memory_limit_bytes: (guaranteed || memory_limits_declared)
            .then(|| pod_limits.memory.map(clamp_i64))
            .flatten(),
    }
}

/// One container's settings.
pub fn container_resources(c: &Container) -> Resources {
    let (req, lim) = (requests(c), limits(c));
    Resources {
        cpu_shares: Some(milli_cpu_to_shares(req.cpu_milli)),
        cpu_quota_us: milli_cpu_to_quota(lim.cpu_milli),
        memory_limit_bytes: lim.memory.map(clamp_i64),
    }
}

/// `milli × 1024 / 1000`, between 2 and 262144 (none → 2).
fn milli_cpu_to_shares(milli: Option<i128>) -> u64 {
    let shares = milli.unwrap_or(0).saturating_mul(1024) / 1000;
    u64::try_from(shares)
        .unwrap_or(MAX_SHARES)
        .clamp(MIN_SHARES, MAX_SHARES)
}

/// `milli × period / 1000` microseconds, at least 1 ms (none → no quota).
fn milli_cpu_to_quota(milli: Option<i128>) -> Option<i64> {
    let milli = milli?;
    let quota = milli.saturating_mul(i128::from(CPU_PERIOD_US)) / 1000;
    Some(clamp_i64(quota).max(MIN_QUOTA_US))
}

fn clamp_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: serde_json::Value) -> PodSpec {
        serde_json::from_value(value).unwrap()
    }

    fn c(name: &str, requests: serde_json::Value, limits: serde_json::Value) -> serde_json::Value {
        json!({"name": name, "image": "i", "resources": {"requests": requests, "limits": limits}})
    }

    const MI: i64 = 1 << 20;

    #[test]
    fn pod_level_settings() {
        // (what, spec, qos, shares, quota, memory)
        let cases = [
            (
                "best effort: minimum shares, nothing else (overhead or not)",
                json!({"containers": [{"name": "a", "image": "i"}],
                       "overhead": {"cpu": "250m", "memory": "120Mi"}}),
                QosClass::BestEffort,
                2,
                None,
                None,
            ),
            (
                "burstable with every limit: sums plus overhead",
                json!({"containers": [
                    c("a", json!({"cpu": "100m", "memory": "32Mi"}), json!({"cpu": "500m", "memory": "64Mi"})),
                    c("b", json!({"cpu": "200m", "memory": "16Mi"}), json!({"cpu": "1", "memory": "64Mi"})),
                ], "overhead": {"cpu": "250m", "memory": "120Mi"}}),
                QosClass::Burstable,
                (550 * 1024) / 1000,
                Some(175_000),
                Some(248 * MI),
            ),
            (
                "burstable, one container without limits: shares only",
                json!({"containers": [
                    c("a", json!({"cpu": "100m"}), json!({"cpu": "500m", "memory": "64Mi"})),
                    {"name": "b", "image": "i"},
                ], "overhead": {"memory": "10Mi"}}),
                QosClass::Burstable,
                102,
                None,
                None,
            ),
            (
                "guaranteed: limits plus overhead",
                json!({"containers": [
                    c("a", json!({"cpu": "1", "memory": "100Mi"}), json!({"cpu": "1", "memory": "100Mi"})),
                ], "overhead": {"cpu": "100m", "memory": "20Mi"}}),
                QosClass::Guaranteed,
                1126,
                Some(110_000),
                Some(120 * MI),
            ),
            (
                "an init container larger than the app containers wins",
                json!({"initContainers": [
                    c("init", json!({"cpu": "2", "memory": "200Mi"}), json!({"cpu": "2", "memory": "200Mi"})),
                ], "containers": [
                    c("a", json!({"cpu": "500m", "memory": "50Mi"}), json!({"cpu": "500m", "memory": "50Mi"})),
                    c("b", json!({"cpu": "500m", "memory": "50Mi"}), json!({"cpu": "500m", "memory": "50Mi"})),
                ]}),
                QosClass::Guaranteed,
                2048,
                Some(200_000),
                Some(200 * MI),
            ),
            (
                "an init container without limits: no quota, no memory limit",
                json!({"initContainers": [{"name": "init", "image": "i"}],
                       "containers": [
                    c("a", json!({"cpu": "500m"}), json!({"cpu": "500m", "memory": "50Mi"})),
                ]}),
                QosClass::Burstable,
                512,
                None,
                None,
            ),
            (
                "a sidecar adds to the app containers",
                json!({"initContainers": [
                    {"name": "side", "image": "i", "restartPolicy": "Always",
                     "resources": {"limits": {"cpu": "100m", "memory": "10Mi"}}},
                ], "containers": [
                    c("a", json!({"cpu": "500m", "memory": "50Mi"}), json!({"cpu": "500m", "memory": "50Mi"})),
                ]}),
                QosClass::Burstable,
                512,
                Some(60_000),
                Some(60 * MI),
            ),
        ];
        for (what, value, qos, shares, quota, memory) in cases {
            let spec = spec(value);
            assert_eq!(qos_class(&spec), qos, "{what}");
            assert_eq!(
                pod_resources(&spec),
                Resources {
                    cpu_shares: Some(shares),
                    cpu_quota_us: quota,
                    memory_limit_bytes: memory,
                },
                "{what}"
            );
        }
    }

    #[test]
    fn container_level_settings() {
        let container = |v: serde_json::Value| -> Container { serde_json::from_value(v).unwrap() };
        let cases = [
            (c("a", json!({}), json!({})), 2, None, None),
            (
                c("a", json!({"cpu": "1m"}), json!({"cpu": "1m"})),
                2,
                Some(1_000),
                None,
            ),
            (
                c(
                    "a",
                    json!({"cpu": "250m"}),
                    json!({"cpu": "1500m", "memory": "1Gi"}),
                ),
                256,
                Some(150_000),
                Some(1 << 30),
            ),
        ];
        for (value, shares, quota, memory) in cases {
            let text = value.to_string();
            assert_eq!(
                container_resources(&container(value)),
                Resources {
                    cpu_shares: Some(shares),
                    cpu_quota_us: quota,
                    memory_limit_bytes: memory,
                },
                "{text}"
            );
        }
    }
}
