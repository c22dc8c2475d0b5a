//! Pod create and update validation (`ValidatePodCreate`, `ValidatePodSpec`,
//! `ValidatePodUpdate`) and the warnings upstream returns with an accepted pod.
//!
//! Run on the defaulted pod: several rules read defaults (`terminationGracePeriodSeconds`
//! for sleep hooks, `imagePullPolicy`, `terminationMessagePolicy`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::PodValidationOptions;
use super::container::{validate_containers, validate_init_containers};
use super::meta::{
    NameFn, validate_labels, validate_object_meta, validate_object_meta_update,
    validate_qualified_name,
};
use super::resources::validate_overhead;
use super::tolerations::validate_tolerations;
use super::volumes::validate_volumes;
use crate::field_errors::{FieldError, FieldErrors, Path};
use crate::k8s::api::core::v1::{Container, Pod, PodSpec, Toleration};
use crate::names;

/// Marks a static pod's mirror in the API.
pub const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// The message of a forbidden pod spec change (followed upstream by a `cmp.Diff` of the
/// specs; see [`validate_pod_update`]).
pub const POD_UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

fn s(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

/// Validation of a new pod.
pub fn validate_pod_create(pod: &Pod, opts: &PodValidationOptions) -> FieldErrors {
    let mut errs = validate_pod_metadata_and_spec(pod, opts);
    let spec_path = Path::new("spec");
    let spec = pod.spec.clone().unwrap_or_default();
    if spec
        .ephemeral_containers
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        errs.push(FieldError::forbidden(
            &spec_path.child("ephemeralContainers"),
            "cannot be set on create",
        ));
    }
    if !s(&spec.node_name).is_empty()
        && spec
            .scheduling_gates
            .as_ref()
            .is_some_and(|g| !g.is_empty())
    {
        errs.push(FieldError::forbidden(
            &spec_path.child("nodeName"),
            "cannot be set until all schedulingGates have been cleared",
        ));
    }
    errs
}

fn validate_pod_metadata_and_spec(pod: &Pod, opts: &PodValidationOptions) -> FieldErrors {
    let meta_path = Path::new("metadata");
    let spec_path = Path::new("spec");
    let spec = pod.spec.clone().unwrap_or_default();
    let mut errs = validate_object_meta(
        &pod.metadata,
        true,
        names::name_is_dns_subdomain,
        &meta_path,
    );
    errs.extend(validate_pod_annotations(
        pod,
        &spec,
        &meta_path.child("annotations"),
    ));
    errs.extend(validate_pod_spec(&spec, &spec_path, opts));
    if s(&spec.service_account_name).is_empty() {
        for (vi, v) in spec.volumes.iter().flatten().enumerate() {
            for (si, src) in v
                .projected
                .iter()
                .flat_map(|p| p.sources.iter().flatten())
                .enumerate()
            {
                if src.service_account_token.is_some() {
                    let p = spec_path
                        .child("volumes")
                        .index(vi)
                        .child("projected")
                        .child("sources")
                        .index(si)
                        .child("serviceAccountToken");
                    errs.push(FieldError::forbidden(
                        &p,
                        "must not be specified when serviceAccountName is not set",
                    ));
                }
            }
        }
    }
    errs.extend(image_whitespace(
        &spec.containers,
        &spec_path.child("containers"),
    ));
    errs.extend(image_whitespace(
        spec.init_containers.as_deref().unwrap_or_default(),
        &spec_path.child("initContainers"),
    ));
    errs
}

fn image_whitespace(containers: &[Container], path: &Path) -> FieldErrors {
    let mut errs = FieldErrors::new();
    for (i, c) in containers.iter().enumerate() {
        let image = s(&c.image);
        if image.trim() != image {
            errs.push(FieldError::invalid(
                &path.index(i).child("image"),
                image,
                "must not have leading or trailing whitespace",
            ));
        }
    }
    errs
}

fn validate_pod_annotations(pod: &Pod, spec: &PodSpec, path: &Path) -> FieldErrors {
    let mut errs = FieldErrors::new();
    if let Some(v) = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(MIRROR_POD_ANNOTATION))
        && s(&spec.node_name).is_empty()
    {
        errs.push(FieldError::invalid(
            &path.key(MIRROR_POD_ANNOTATION),
            v,
            "must set spec.nodeName if mirror pod annotation is set",
        ));
    }
    errs
}

fn valid_ip(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok()
}

/// `ValidatePodSpec`.
pub fn validate_pod_spec(spec: &PodSpec, path: &Path, opts: &PodValidationOptions) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let grace = spec.termination_grace_period_seconds;
    if grace.is_none() {
        errs.push(FieldError::required(
            &path.child("terminationGracePeriodSeconds"),
            "",
        ));
    }
    let (volumes, vol_errs) = validate_volumes(
        spec.volumes.as_deref().unwrap_or_default(),
        &path.child("volumes"),
    );
    errs.extend(vol_errs);
    errs.extend(validate_containers(
        &spec.containers,
        &volumes,
        grace,
        &path.child("containers"),
        opts,
    ));
    errs.extend(validate_init_containers(
        spec.init_containers.as_deref().unwrap_or_default(),
        &spec.containers,
        &volumes,
        grace,
        &path.child("initContainers"),
        opts,
    ));
    if spec.host_network == Some(true) {
        for (ci, c) in spec.containers.iter().enumerate() {
            for (pi, port) in c.ports.iter().flatten().enumerate() {
                let hp = port.host_port.unwrap_or(0);
                if hp != port.container_port {
                    let p = path
                        .child("containers")
                        .index(ci)
                        .child("ports")
                        .index(pi)
                        .child("hostPort");
                    errs.push(FieldError::invalid(
                        &p,
                        hp,
                        "must match `containerPort` when `hostNetwork` is true",
                    ));
                }
            }
        }
    }
    match s(&spec.restart_policy) {
        "Always" | "OnFailure" | "Never" => {}
        "" => errs.push(FieldError::required(&path.child("restartPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            &path.child("restartPolicy"),
            other,
            &["Always", "OnFailure", "Never"],
        )),
    }
    let dns_policy = s(&spec.dns_policy);
    match dns_policy {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => {}
        "" => errs.push(FieldError::required(&path.child("dnsPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            &path.child("dnsPolicy"),
            other,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        )),
    }
    errs.extend(validate_labels(
        spec.node_selector.as_ref(),
        &path.child("nodeSelector"),
    ));
    if let Some(sc) = &spec.security_context {
        let sp = path.child("securityContext");
        if let Some(profile) = &sc.seccomp_profile {
            errs.extend(super::container::validate_seccomp_profile(
                profile,
                &sp.child("seccompProfile"),
            ));
        }
        for (field, id) in [
            ("runAsUser", sc.run_as_user),
            ("runAsGroup", sc.run_as_group),
            ("fsGroup", sc.fs_group),
        ] {
            if let Some(id) = id.filter(|id| !(0..=i64::from(i32::MAX)).contains(id)) {
                errs.push(FieldError::invalid(
                    &sp.child(field),
                    id,
                    names::inclusive_range_error(0, i32::MAX.into()),
                ));
            }
        }
    }
    let dns_path = path.child("dnsConfig");
    if dns_policy == "None" {
        match &spec.dns_config {
            None => errs.push(FieldError::required(
                &dns_path,
                "must provide `dnsConfig` when `dnsPolicy` is None",
            )),
            Some(c) if c.nameservers.as_ref().is_none_or(Vec::is_empty) => {
                errs.push(FieldError::required(
                    &dns_path.child("nameservers"),
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                ))
            }
            _ => {}
        }
    }
    if let Some(c) = &spec.dns_config {
        for (i, ns) in c.nameservers.iter().flatten().enumerate() {
            if !valid_ip(ns) {
                errs.push(FieldError::invalid(
                    &dns_path.child("nameservers").index(i),
                    ns,
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                ));
            }
        }
    }
    for (i, g) in spec.readiness_gates.iter().flatten().enumerate() {
        errs.extend(validate_qualified_name(
            &g.condition_type,
            &path.child("readinessGates").index(i).child("conditionType"),
        ));
    }
    let mut gates = BTreeSet::new();
    for (i, g) in spec.scheduling_gates.iter().flatten().enumerate() {
        let gp = path.child("schedulingGates").index(i);
        errs.extend(validate_qualified_name(&g.name, &gp));
        if !gates.insert(g.name.as_str()) {
            errs.push(FieldError::duplicate(&gp, &g.name));
        }
    }
    let name_checks: [(&str, &Option<String>, NameFn); 3] = [
        (
            "serviceAccountName",
            &spec.service_account_name,
            names::name_is_dns_subdomain,
        ),
        ("nodeName", &spec.node_name, names::name_is_dns_subdomain),
        (
            "priorityClassName",
            &spec.priority_class_name,
            names::name_is_dns_subdomain,
        ),
    ];
    for (field, value, check) in name_checks {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            for m in check(v, false) {
                errs.push(FieldError::invalid(&path.child(field), v, m));
            }
        }
    }
    if let Some(ads) = spec.active_deadline_seconds
        && !(1..=i64::from(i32::MAX)).contains(&ads)
    {
        errs.push(FieldError::invalid(
            &path.child("activeDeadlineSeconds"),
            ads,
            names::inclusive_range_error(1, i32::MAX.into()),
        ));
    }
    for (field, value) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            for m in names::is_dns1123_label(v) {
                errs.push(FieldError::invalid(&path.child(field), v, m));
            }
        }
    }
    if let Some(t) = spec.tolerations.as_deref().filter(|t| !t.is_empty()) {
        errs.extend(validate_tolerations(t, &path.child("tolerations")));
    }
    for (i, alias) in spec.host_aliases.iter().flatten().enumerate() {
        let ap = path.child("hostAliases").index(i);
        if !valid_ip(&alias.ip) {
            errs.push(FieldError::invalid(
                &ap.child("ip"),
                &alias.ip,
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ));
        }
        for (j, h) in alias.hostnames.iter().flatten().enumerate() {
            for m in names::is_dns1123_subdomain(h) {
                errs.push(FieldError::invalid(&ap.child("hostnames").index(j), h, m));
            }
        }
    }
    if let Some(rc) = &spec.runtime_class_name {
        for m in names::name_is_dns_subdomain(rc, false) {
            errs.push(FieldError::invalid(&path.child("runtimeClassName"), rc, m));
        }
    }
    if let Some(pp) = spec.preemption_policy.as_deref() {
        match pp {
            "PreemptLowerPriority" | "Never" => {}
            "" => errs.push(FieldError::required(&path.child("preemptionPolicy"), "")),
            other => errs.push(FieldError::not_supported(
                &path.child("preemptionPolicy"),
                other,
                &["PreemptLowerPriority", "Never"],
            )),
        }
    }
    if let Some(o) = &spec.overhead {
        errs.extend(validate_overhead(o, &path.child("overhead")));
    }
    if let Some(os) = &spec.os
        && os.name != "linux"
        && os.name != "windows"
    {
        errs.push(FieldError::not_supported(
            &path.child("os").child("name"),
            os.name.as_str(),
            &["linux", "windows"],
        ));
    }
    errs
}

/// Validation of an update to a pod (`PUT`, or a patch's result). Only container images,
/// `activeDeadlineSeconds` (lowered or set), additions to `tolerations`, removal of
/// scheduling gates and a negative grace period raised to 1 may change; anything else in
/// `spec` is `spec: Forbidden: pod updates may not change fields other than ...` followed by
/// a line per changed field (upstream prints a Go `cmp.Diff` there; the first line is the
/// same, the diff's layout is ours).
pub fn validate_pod_update(new: &Pod, old: &Pod, opts: &PodValidationOptions) -> FieldErrors {
    let meta_path = Path::new("metadata");
    let spec_path = Path::new("spec");
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, &meta_path);
    errs.extend(validate_pod_metadata_and_spec(new, opts));
    errs.extend(validate_mirror_annotation_update(
        new,
        old,
        &meta_path.child("annotations"),
    ));
    let new_spec = new.spec.clone().unwrap_or_default();
    let old_spec = old.spec.clone().unwrap_or_default();

    for (field, n, o) in [
        (
            "containers",
            new_spec.containers.as_slice(),
            old_spec.containers.as_slice(),
        ),
        (
            "initContainers",
            new_spec.init_containers.as_deref().unwrap_or_default(),
            old_spec.init_containers.as_deref().unwrap_or_default(),
        ),
    ] {
        let p = spec_path.child(field);
        if n.len() != o.len() {
            errs.push(FieldError::forbidden(
                &p,
                "pod updates may not add or remove containers",
            ));
            return errs;
        }
        for (i, c) in n.iter().enumerate() {
            let image = s(&c.image);
            if image.is_empty() {
                errs.push(FieldError::required(&p.index(i).child("image"), ""));
            }
            if image.trim() != image {
                errs.push(FieldError::invalid(
                    &p.index(i).child("image"),
                    image,
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }

    let ads_path = spec_path.child("activeDeadlineSeconds");
    match (
        new_spec.active_deadline_seconds,
        old_spec.active_deadline_seconds,
    ) {
        (Some(n), _) if !(0..=i64::from(i32::MAX)).contains(&n) => {
            errs.push(FieldError::invalid(
                &ads_path,
                n,
                names::inclusive_range_error(0, i32::MAX.into()),
            ));
            return errs;
        }
        (Some(n), Some(o)) if o < n => {
            errs.push(FieldError::invalid(
                &ads_path,
                n,
                "must be less than or equal to previous value",
            ));
            return errs;
        }
        (None, Some(_)) => {
            errs.push(FieldError::invalid(
                &ads_path,
                crate::field_errors::BadValue::Null,
                "must not update from a positive integer to nil value",
            ));
        }
        _ => {}
    }

    errs.extend(validate_only_added_tolerations(
        new_spec.tolerations.as_deref().unwrap_or_default(),
        old_spec.tolerations.as_deref().unwrap_or_default(),
        &spec_path.child("tolerations"),
    ));

    let old_gates: BTreeSet<&str> = old_spec
        .scheduling_gates
        .iter()
        .flatten()
        .map(|g| g.name.as_str())
        .collect();
    for (i, g) in new_spec.scheduling_gates.iter().flatten().enumerate() {
        if !old_gates.contains(g.name.as_str()) {
            errs.push(FieldError::forbidden(
                &spec_path.child("schedulingGates").index(i).child("name"),
                format!(
                    "only deletion is allowed, but found new scheduling gate '{}'",
                    g.name
                ),
            ));
        }
    }

    let old_value = serde_json::to_value(&old_spec).unwrap_or(Value::Null);
    let mut munged = new_spec.clone();
    for (c, o) in munged.containers.iter_mut().zip(&old_spec.containers) {
        c.image = o.image.clone();
    }
    if let (Some(n), Some(o)) = (
        munged.init_containers.as_mut(),
        old_spec.init_containers.as_ref(),
    ) {
        for (c, oc) in n.iter_mut().zip(o) {
            c.image = oc.image.clone();
        }
    }
    munged.active_deadline_seconds = old_spec.active_deadline_seconds;
    munged.scheduling_gates = old_spec.scheduling_gates.clone();
    munged.tolerations = old_spec.tolerations.clone();
    if old_spec
        .termination_grace_period_seconds
        .is_some_and(|g| g < 0)
        && munged.termination_grace_period_seconds == Some(1)
    {
        munged.termination_grace_period_seconds = old_spec.termination_grace_period_seconds;
    }
    if !old_gates.is_empty() {
        // gated pods may gain nodeSelector entries (not change or lose them)
        let old_sel = old_spec.node_selector.clone().unwrap_or_default();
        let new_sel = munged.node_selector.clone().unwrap_or_default();
        if old_sel.iter().all(|(k, v)| new_sel.get(k) == Some(v)) {
            munged.node_selector = old_spec.node_selector.clone();
        }
    }
    let new_value = serde_json::to_value(&munged).unwrap_or(Value::Null);
    if new_value != old_value {
        let mut lines = Vec::new();
        json_diff("spec", &old_value, &new_value, &mut lines);
        errs.push(FieldError::forbidden(
            &spec_path,
            format!("{POD_UPDATE_FORBIDDEN}\n{}", lines.join("\n")),
        ));
    }
    errs
}

fn validate_mirror_annotation_update(new: &Pod, old: &Pod, path: &Path) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let get = |p: &Pod| {
        p.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(MIRROR_POD_ANNOTATION))
            .cloned()
    };
    match (get(new), get(old)) {
        (Some(_), None) => errs.push(FieldError::forbidden(
            &path.key(MIRROR_POD_ANNOTATION),
            "may not add mirror pod annotation",
        )),
        (n, Some(o)) if n.as_ref() != Some(&o) => errs.push(FieldError::forbidden(
            &path.key(MIRROR_POD_ANNOTATION),
            "may not remove or update mirror pod annotation",
        )),
        _ => {}
    }
    errs
}

fn validate_only_added_tolerations(
    new: &[Toleration],
    old: &[Toleration],
    path: &Path,
) -> FieldErrors {
    for o in old {
        let kept = new.iter().any(|n| {
            let mut clone = o.clone();
            clone.toleration_seconds = n.toleration_seconds;
            clone == *n
        });
        if !kept {
            return vec![FieldError::forbidden(
                path,
                "existing toleration can not be modified except its tolerationSeconds",
            )]
            .into();
        }
    }
    validate_tolerations(new, path)
}

/// One `-`/`+` line pair per changed leaf, with JSON values.
fn json_diff(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let p = format!("{path}.{k}");
                json_diff(
                    &p,
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                json_diff(&format!("{path}[{i}]"), x, y, out);
            }
        }
        _ if old != new => {
            out.push(format!("- {path}: {old}"));
            out.push(format!("+ {path}: {new}"));
        }
        _ => {}
    }
}

/// The warnings upstream attaches to an accepted pod (`Warning:` lines in kubectl).
pub fn pod_warnings(pod: &Pod) -> Vec<String> {
    let mut w = Vec::new();
    let Some(spec) = &pod.spec else { return w };
    let sp = Path::new("spec");
    let mut seen = BTreeSet::new();
    for (i, ps) in spec.image_pull_secrets.iter().flatten().enumerate() {
        let p = sp.child("imagePullSecrets").index(i).child("name");
        if !seen.insert(ps.name.as_str()) {
            w.push(format!(
                "{p}: duplicate name {}",
                crate::field_errors::go_quote(&ps.name)
            ));
        }
    }
    for (i, ps) in spec.image_pull_secrets.iter().flatten().enumerate() {
        if ps.name.is_empty() {
            w.push(format!(
                "{}: invalid empty name \"\"",
                sp.child("imagePullSecrets").index(i).child("name")
            ));
        }
    }
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| (sp.child("initContainers").index(i), c))
        .chain(
            spec.containers
                .iter()
                .enumerate()
                .map(|(i, c)| (sp.child("containers").index(i), c)),
        );
    let mut ports: BTreeMap<String, Vec<(Path, i32, String)>> = BTreeMap::new();
    for (p, c) in containers {
        let r = c.resources.clone().unwrap_or_default();
        for (kind, list) in [("limits", &r.limits), ("requests", &r.requests)] {
            for res in ["memory", "ephemeral-storage"] {
                if let Some(q) = list.as_ref().and_then(|l| l.get(res))
                    && crate::quantity::Quantity::from_api(q)
                        .is_ok_and(|v| v.milli_value() % 1000 != 0)
                {
                    w.push(format!(
                        "{}: fractional byte value {} is invalid, must be an integer",
                        p.child("resources").child(kind).key(res),
                        crate::field_errors::go_quote(&q.0)
                    ));
                }
            }
        }
        let mut env_seen = BTreeSet::new();
        for (i, e) in c.env.iter().flatten().enumerate() {
            if !env_seen.insert(e.name.as_str()) {
                let reference = format!("$({})", e.name);
                let value = s(&e.value);
                if e.value_from.is_some() || value == reference || !value.contains(&reference) {
                    w.push(format!(
                        "{}: hides previous definition of {}, which may be dropped when using apply",
                        p.child("env").index(i),
                        crate::field_errors::go_quote(&e.name)
                    ));
                }
            }
        }
        for (i, port) in c.ports.iter().flatten().enumerate() {
            let key = format!("{}/{}", port.container_port, s(&port.protocol));
            let here = p.child("ports").index(i);
            let host_ip = s(&port.host_ip).to_owned();
            let host_port = port.host_port.unwrap_or(0);
            for (other, other_hp, other_ip) in ports.get(&key).into_iter().flatten() {
                if host_ip == *other_ip && host_port == *other_hp {
                    w.push(format!("{here}: duplicate port definition with {other}"));
                } else if host_port == 0 || *other_hp == 0 {
                    w.push(format!("{here}: overlapping port definition with {other}"));
                }
            }
            ports
                .entry(key)
                .or_default()
                .push((here, host_port, host_ip));
        }
    }
    if spec.termination_grace_period_seconds.is_some_and(|g| g < 0) {
        w.push(format!(
            "{}: must be >= 0; negative values are invalid and will be treated as 1",
            sp.child("terminationGracePeriodSeconds")
        ));
    }
    w
}

#[cfg(test)]
#[path = "pod_tests.rs"]
mod tests;
