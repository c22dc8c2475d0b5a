//! Resource requirements (container `resources`, pod `overhead`, RuntimeClass
//! `overhead.podFixed`): resource names, non-negative quantities, requests ≤ limits.

use std::collections::BTreeMap;

use crate::field_errors::{FieldError, FieldErrors, Path};
use crate::k8s::api::core::v1::ResourceRequirements;
use crate::k8s::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use crate::names;
use crate::quantity::Quantity;

const STANDARD_CONTAINER_RESOURCES: [&str; 3] = ["cpu", "memory", "ephemeral-storage"];
const STANDARD_RESOURCES: [&str; 21] = [
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "quota",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "storage",
    "requests.storage",
    "services.nodeports",
    "services.loadbalancers",
];

fn is_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

/// Unprefixed or `kubernetes.io/`-prefixed names are native resources.
fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// Native resources other than huge pages may be overcommitted (requests < limits).
fn overcommit_allowed(name: &str) -> bool {
    is_native(name) && !is_hugepages(name)
}

/// Extended resources (`example.com/gpu`) are counted in whole units.
fn integer_resource(name: &str) -> bool {
    !is_native(name)
}

fn validate_container_resource_name(name: &str, path: &Path) -> FieldErrors {
    let mut errs: FieldErrors = names::is_qualified_name(name)
        .into_iter()
        .map(|m| FieldError::invalid(path, name, m))
        .collect::<Vec<_>>()
        .into();
    if !name.contains('/') {
        if !(STANDARD_RESOURCES.contains(&name) || is_hugepages(name)) {
            errs.push(FieldError::invalid(
                path,
                name,
                "must be a standard resource type or fully qualified",
            ));
            return errs;
        }
        if !(STANDARD_CONTAINER_RESOURCES.contains(&name) || is_hugepages(name)) {
            errs.push(FieldError::invalid(
                path,
                name,
                "must be a standard resource for containers",
            ));
        }
    } else if !is_native(name) && (name.starts_with("requests.") || name.contains("kubernetes.io/"))
    {
        errs.push(FieldError::invalid(
            path,
            name,
            "doesn't follow extended resource name standard",
        ));
    }
    errs
}

/// Parses a quantity for validation; a value that does not parse (upstream would refuse
/// the request body) is reported as `Invalid` with the parser's message.
fn parsed(q: &ApiQuantity, path: &Path, errs: &mut FieldErrors) -> Option<Quantity> {
    match Quantity::from_api(q) {
        Ok(v) => Some(v),
        Err(e) => {
            errs.push(FieldError::invalid(path, q.0.as_str(), e.to_string()));
            None
        }
    }
}

fn validate_quantity_value(name: &str, q: &Quantity, path: &Path) -> FieldErrors {
    let mut errs = FieldErrors::new();
    if q.is_negative() {
        errs.push(FieldError::invalid(
            path,
            q.to_string(),
            super::meta::IS_NEGATIVE_MSG,
        ));
    }
    if integer_resource(name) && q.milli_value() % 1000 != 0 {
        errs.push(FieldError::invalid(
            path,
            q.to_string(),
            "must be an integer",
        ));
    }
    errs
}

/// `ValidateContainerResourceRequirements` for `limits` and `requests` maps.
pub fn validate_resource_lists(
    limits: Option<&BTreeMap<String, ApiQuantity>>,
    requests: Option<&BTreeMap<String, ApiQuantity>>,
    path: &Path,
) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let lim_path = path.child("limits");
    let req_path = path.child("requests");
    let mut lim_cpu_mem = false;
    let mut req_cpu_mem = false;
    let mut hugepages = false;
    let mut parsed_limits: BTreeMap<&str, Quantity> = BTreeMap::new();
    for (name, q) in limits.into_iter().flatten() {
        let p = lim_path.key(name);
        errs.extend(validate_container_resource_name(name, &p));
        if let Some(v) = parsed(q, &p, &mut errs) {
            errs.extend(validate_quantity_value(name, &v, &p));
            parsed_limits.insert(name, v);
        }
        hugepages |= is_hugepages(name);
        lim_cpu_mem |= name == "cpu" || name == "memory";
    }
    for (name, q) in requests.into_iter().flatten() {
        let p = req_path.key(name);
        errs.extend(validate_container_resource_name(name, &p));
        let Some(v) = parsed(q, &p, &mut errs) else {
            continue;
        };
        errs.extend(validate_quantity_value(name, &v, &p));
        match parsed_limits.get(name.as_str()) {
            Some(limit) => {
                if v != *limit && !overcommit_allowed(name) {
                    errs.push(FieldError::invalid(
                        &req_path,
                        v.to_string(),
                        format!("must be equal to {name} limit of {limit}"),
                    ));
                } else if v > *limit {
                    errs.push(FieldError::invalid(
                        &req_path,
                        v.to_string(),
                        format!("must be less than or equal to {name} limit of {limit}"),
                    ));
                }
            }
            None if !overcommit_allowed(name) && !limits.is_some_and(|l| l.contains_key(name)) => {
                errs.push(FieldError::required(
                    &lim_path,
                    "Limit must be set for non overcommitable resources",
                ));
            }
            None => {}
        }
        hugepages |= is_hugepages(name);
        req_cpu_mem |= name == "cpu" || name == "memory";
    }
    if !lim_cpu_mem && !req_cpu_mem && hugepages {
        errs.push(FieldError::forbidden(
            path,
            "HugePages require cpu or memory",
        ));
    }
    errs
}

/// A container's `resources`.
pub fn validate_resource_requirements(
    r: Option<&ResourceRequirements>,
    path: &Path,
) -> FieldErrors {
    match r {
        Some(r) => validate_resource_lists(r.limits.as_ref(), r.requests.as_ref(), path),
        None => FieldErrors::new(),
    }
}

/// Pod or RuntimeClass overhead: validated as a limits map (so paths read
/// `spec.overhead.limits[cpu]`, as upstream's do).
pub fn validate_overhead(overhead: &BTreeMap<String, ApiQuantity>, path: &Path) -> FieldErrors {
    validate_resource_lists(Some(overhead), None, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(pairs: &[(&str, &str)]) -> BTreeMap<String, ApiQuantity> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), ApiQuantity(v.to_string())))
            .collect()
    }

    #[test]
    fn requests_limits_and_names() {
        let p = Path::new("spec")
            .child("containers")
            .index(0)
            .child("resources");
        type Pairs = Vec<(&'static str, &'static str)>;
        let cases: Vec<(Pairs, Pairs, Vec<&str>)> = vec![
            (
                vec![("cpu", "1"), ("memory", "1Gi")],
                vec![("cpu", "500m"), ("memory", "1Gi")],
                vec![],
            ),
            (
                vec![("cpu", "1")],
                vec![("cpu", "2")],
                vec![
                    "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
                ],
            ),
            (
                vec![("memory", "64Mi")],
                vec![("memory", "128Mi")],
                vec![
                    "spec.containers[0].resources.requests: Invalid value: \"128Mi\": must be less than or equal to memory limit of 64Mi",
                ],
            ),
            (
                vec![],
                vec![("cpu", "-1")],
                vec![
                    "spec.containers[0].resources.requests[cpu]: Invalid value: \"-1\": must be greater than or equal to 0",
                ],
            ),
            (
                vec![],
                vec![("gpu", "1")],
                vec![
                    "spec.containers[0].resources.requests[gpu]: Invalid value: \"gpu\": must be a standard resource type or fully qualified",
                ],
            ),
            (
                vec![],
                vec![("pods", "1")],
                vec![
                    "spec.containers[0].resources.requests[pods]: Invalid value: \"pods\": must be a standard resource for containers",
                ],
            ),
            (
                vec![("example.com/gpu", "1")],
                vec![("example.com/gpu", "2")],
                vec![
                    "spec.containers[0].resources.requests: Invalid value: \"2\": must be equal to example.com/gpu limit of 1",
                ],
            ),
            (
                vec![],
                vec![("example.com/gpu", "1")],
                vec![
                    "spec.containers[0].resources.limits: Required value: Limit must be set for non overcommitable resources",
                ],
            ),
            (
                vec![("example.com/gpu", "500m")],
                vec![],
                vec![
                    "spec.containers[0].resources.limits[example.com/gpu]: Invalid value: \"500m\": must be an integer",
                ],
            ),
            (
                vec![],
                vec![("cpu", "1Q")],
                vec![
                    "spec.containers[0].resources.requests[cpu]: Invalid value: \"1Q\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                ],
            ),
            (
                vec![("hugepages-2Mi", "2Mi")],
                vec![],
                vec!["spec.containers[0].resources: Forbidden: HugePages require cpu or memory"],
            ),
        ];
        for (limits, requests, want) in cases {
            let got: Vec<String> =
                validate_resource_lists(Some(&list(&limits)), Some(&list(&requests)), &p)
                    .messages();
            assert_eq!(got, want, "{limits:?} {requests:?}");
        }
    }

    #[test]
    fn overhead_uses_limit_paths() {
        let errs = validate_overhead(&list(&[("cpu", "-10m")]), &Path::new("overhead"));
        assert_eq!(
            errs.aggregate().unwrap(),
            "overhead.limits[cpu]: Invalid value: \"-10m\": must be greater than or equal to 0"
        );
        assert!(
            validate_overhead(
                &list(&[("cpu", "250m"), ("memory", "120Mi")]),
                &Path::new("overhead")
            )
            .is_empty()
        );
    }
}
