//! Container validation: names, image, ports, environment, mounts, pull policy, resources,
//! lifecycle hooks and probes (upstream `validateContainerCommon` and friends).

use std::collections::BTreeSet;

use super::PodValidationOptions;
use super::meta::{validate_nonnegative, validate_qualified_name};
use super::resources::validate_resource_requirements;
use super::volumes::validate_local_descending_path;
use crate::field_errors::{BadValue, FieldError, FieldErrors, Path};
use crate::k8s::api::core::v1::{
    Container, EnvFromSource, EnvVar, ExecAction, GRPCAction, HTTPGetAction, Lifecycle,
    LifecycleHandler, ObjectFieldSelector, Probe, ResourceFieldSelector, SeccompProfile,
    SleepAction, TCPSocketAction, VolumeMount,
};
use crate::k8s::apimachinery::pkg::util::intstr::IntOrString;
use crate::names;
use crate::quantity::Quantity;

/// The `fieldRef.fieldPath` values environment variables may use (labels and annotations
/// only with a `['key']` subscript).
pub const ENV_FIELD_PATHS: [&str; 9] = [
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// Paths the downward API knows at all (anything else: `field label not supported`).
const DOWNWARD_API_PATHS: [&str; 14] = [
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.serviceAccountName",
    "spec.schedulerName",
    "status.phase",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

const RESOURCE_FIELD_PATHS: [&str; 6] = [
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

fn s(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

/// Regular containers: non-empty list, unique names, hooks and probes allowed.
pub fn validate_containers(
    containers: &[Container],
    volumes: &BTreeSet<String>,
    grace: Option<i64>,
    path: &Path,
    opts: &PodValidationOptions,
) -> FieldErrors {
    let mut errs = FieldErrors::new();
    if containers.is_empty() {
        errs.push(FieldError::required(path, ""));
        return errs;
    }
    let mut seen = BTreeSet::new();
    for (i, c) in containers.iter().enumerate() {
        let p = path.index(i);
        errs.extend(validate_container_common(c, volumes, &p, opts));
        if !seen.insert(c.name.as_str()) {
            errs.push(FieldError::duplicate(&p.child("name"), &c.name));
        }
        if let Some(l) = &c.lifecycle {
            errs.extend(validate_lifecycle(l, grace, &p.child("lifecycle"), opts));
        }
        errs.extend(validate_probes(c, grace, &p, opts));
        if c.restart_policy.is_some() {
            errs.push(FieldError::forbidden(
                &p.child("restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    errs.extend(host_port_conflicts(containers, path));
    errs
}

/// Init containers: names unique across init and regular containers; hooks and probes only
/// on sidecars (`restartPolicy: Always`).
pub fn validate_init_containers(
    init: &[Container],
    regular: &[Container],
    volumes: &BTreeSet<String>,
    grace: Option<i64>,
    path: &Path,
    opts: &PodValidationOptions,
) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let mut seen: BTreeSet<&str> = regular.iter().map(|c| c.name.as_str()).collect();
    for (i, c) in init.iter().enumerate() {
        let p = path.index(i);
        errs.extend(validate_container_common(c, volumes, &p, opts));
        let mut sidecar = false;
        if let Some(rp) = c.restart_policy.as_deref() {
            if rp == "Always" {
                sidecar = true;
            } else {
                errs.push(FieldError::not_supported(
                    &p.child("restartPolicy"),
                    rp,
                    &["Always"],
                ));
            }
        }
        if seen.contains(c.name.as_str()) {
            errs.push(FieldError::duplicate(&p.child("name"), &c.name));
        } else if !c.name.is_empty() {
            seen.insert(&c.name);
        }
        errs.extend(host_port_conflicts(std::slice::from_ref(c), path));
        if sidecar {
            if let Some(l) = &c.lifecycle {
                errs.extend(validate_lifecycle(l, grace, &p.child("lifecycle"), opts));
            }
            errs.extend(validate_probes(c, grace, &p, opts));
        } else {
            let msg = "may not be set for init containers without restartPolicy=Always";
            for (field, set) in [
                ("lifecycle", c.lifecycle.is_some()),
                ("livenessProbe", c.liveness_probe.is_some()),
                ("readinessProbe", c.readiness_probe.is_some()),
                ("startupProbe", c.startup_probe.is_some()),
            ] {
                if set {
                    errs.push(FieldError::forbidden(&p.child(field), msg));
                }
            }
        }
    }
    errs
}

fn validate_probes(
    c: &Container,
    grace: Option<i64>,
    p: &Path,
    opts: &PodValidationOptions,
) -> FieldErrors {
    let mut errs = FieldErrors::new();
    if let Some(probe) = &c.liveness_probe {
        errs.extend(validate_probe(
            probe,
            grace,
            &p.child("livenessProbe"),
            opts,
        ));
        errs.extend(success_threshold_one(probe, &p.child("livenessProbe")));
    }
    if let Some(probe) = &c.readiness_probe {
        errs.extend(validate_probe(
            probe,
            grace,
            &p.child("readinessProbe"),
            opts,
        ));
        if let Some(t) = probe.termination_grace_period_seconds {
            errs.push(FieldError::invalid(
                &p.child("readinessProbe")
                    .child("terminationGracePeriodSeconds"),
                t,
                "must not be set for readinessProbes",
            ));
        }
    }
    if let Some(probe) = &c.startup_probe {
        errs.extend(validate_probe(probe, grace, &p.child("startupProbe"), opts));
        errs.extend(success_threshold_one(probe, &p.child("startupProbe")));
    }
    errs
}

fn success_threshold_one(probe: &Probe, p: &Path) -> FieldErrors {
    let st = probe.success_threshold.unwrap_or(0);
    if st != 1 {
        vec![FieldError::invalid(
            &p.child("successThreshold"),
            st,
            "must be 1",
        )]
        .into()
    } else {
        FieldErrors::new()
    }
}

/// Checks shared by every container kind.
pub fn validate_container_common(
    c: &Container,
    volumes: &BTreeSet<String>,
    p: &Path,
    opts: &PodValidationOptions,
) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let name_path = p.child("name");
    if c.name.is_empty() {
        errs.push(FieldError::required(&name_path, ""));
    } else {
        for msg in names::is_dns1123_label(&c.name) {
            errs.push(FieldError::invalid(&name_path, &c.name, msg));
        }
    }
    if s(&c.image).is_empty() {
        errs.push(FieldError::required(&p.child("image"), ""));
    }
    match s(&c.termination_message_policy) {
        "File" | "FallbackToLogsOnError" => {}
        "" => errs.push(FieldError::required(
            &p.child("terminationMessagePolicy"),
            "",
        )),
        other => errs.push(FieldError::not_supported(
            &p.child("terminationMessagePolicy"),
            other,
            &["File", "FallbackToLogsOnError"],
        )),
    }
    errs.extend(validate_ports(
        c.ports.as_deref().unwrap_or_default(),
        &p.child("ports"),
    ));
    errs.extend(validate_env(
        c.env.as_deref().unwrap_or_default(),
        &p.child("env"),
        opts,
    ));
    errs.extend(validate_env_from(
        c.env_from.as_deref().unwrap_or_default(),
        &p.child("envFrom"),
        opts,
    ));
    errs.extend(validate_volume_mounts(c, volumes, &p.child("volumeMounts")));
    if let Some(profile) = c
        .security_context
        .as_ref()
        .and_then(|sc| sc.seccomp_profile.as_ref())
    {
        errs.extend(validate_seccomp_profile(
            profile,
            &p.child("securityContext").child("seccompProfile"),
        ));
    }
    match s(&c.image_pull_policy) {
        "Always" | "IfNotPresent" | "Never" => {}
        "" => errs.push(FieldError::required(&p.child("imagePullPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            &p.child("imagePullPolicy"),
            other,
            &["Always", "IfNotPresent", "Never"],
        )),
    }
    errs.extend(validate_resource_requirements(
        c.resources.as_ref(),
        &p.child("resources"),
    ));
    errs
}

fn validate_ports(ports: &[crate::k8s::api::core::v1::ContainerPort], path: &Path) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let mut names_seen = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = path.index(i);
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            let msgs = names::is_valid_port_name(name);
            if !msgs.is_empty() {
                for m in msgs {
                    errs.push(FieldError::invalid(&p.child("name"), name, m));
                }
            } else if !names_seen.insert(name) {
                errs.push(FieldError::duplicate(&p.child("name"), name));
            }
        }
        if port.container_port == 0 {
            errs.push(FieldError::required(&p.child("containerPort"), ""));
        } else {
            for m in names::is_valid_port_num(port.container_port.into()) {
                errs.push(FieldError::invalid(
                    &p.child("containerPort"),
                    port.container_port,
                    m,
                ));
            }
        }
        if let Some(hp) = port.host_port.filter(|h| *h != 0) {
            for m in names::is_valid_port_num(hp.into()) {
                errs.push(FieldError::invalid(&p.child("hostPort"), hp, m));
            }
        }
        match s(&port.protocol) {
            "" => errs.push(FieldError::required(&p.child("protocol"), "")),
            "TCP" | "UDP" | "SCTP" => {}
            other => errs.push(FieldError::not_supported(
                &p.child("protocol"),
                other,
                &["SCTP", "TCP", "UDP"],
            )),
        }
    }
    errs
}

/// Host ports may be used once per protocol and host IP across the listed containers:
/// `Duplicate value: "TCP//8080"`.
fn host_port_conflicts(containers: &[Container], path: &Path) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let mut seen = BTreeSet::new();
    for (ci, c) in containers.iter().enumerate() {
        for (pi, port) in c.ports.iter().flatten().enumerate() {
            let hp = port.host_port.unwrap_or(0);
            if hp == 0 {
                continue;
            }
            let key = format!("{}/{}/{}", s(&port.protocol), s(&port.host_ip), hp);
            if !seen.insert(key.clone()) {
                errs.push(FieldError::duplicate(
                    &path.index(ci).child("ports").index(pi).child("hostPort"),
                    key,
                ));
            }
        }
    }
    errs
}

/// Environment variables: names, and `valueFrom` with exactly one source and no `value`.
pub fn validate_env(vars: &[EnvVar], path: &Path, opts: &PodValidationOptions) -> FieldErrors {
    let mut errs = FieldErrors::new();
    for (i, ev) in vars.iter().enumerate() {
        let p = path.index(i);
        if ev.name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        } else {
            let msgs = if opts.relaxed_env_var_names {
                names::is_relaxed_env_var_name(&ev.name)
            } else {
                names::is_env_var_name(&ev.name)
            };
            for m in msgs {
                errs.push(FieldError::invalid(&p.child("name"), &ev.name, m));
            }
        }
        errs.extend(validate_value_from(ev, &p.child("valueFrom")));
    }
    errs
}

fn validate_value_from(ev: &EnvVar, p: &Path) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let Some(from) = &ev.value_from else {
        return errs;
    };
    let mut sources = 0;
    if let Some(f) = &from.field_ref {
        sources += 1;
        errs.extend(validate_object_field_selector(
            f,
            &ENV_FIELD_PATHS,
            &p.child("fieldRef"),
        ));
    }
    if let Some(r) = &from.resource_field_ref {
        sources += 1;
        errs.extend(validate_resource_field_selector(
            r,
            &p.child("resourceFieldRef"),
        ));
    }
    if let Some(c) = &from.config_map_key_ref {
        sources += 1;
        errs.extend(validate_key_selector(
            &c.name,
            &c.key,
            &p.child("configMapKeyRef"),
        ));
    }
    if let Some(sk) = &from.secret_key_ref {
        sources += 1;
        errs.extend(validate_key_selector(
            &sk.name,
            &sk.key,
            &p.child("secretKeyRef"),
        ));
    }
    if sources == 0 {
        errs.push(FieldError::invalid(p, "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"));
    } else if !s(&ev.value).is_empty() {
        errs.push(FieldError::invalid(
            p,
            "",
            "may not be specified when `value` is not empty",
        ));
    } else if sources > 1 {
        errs.push(FieldError::invalid(
            p,
            "",
            "may not have more than one field specified at a time",
        ));
    }
    errs
}

/// `metadata.labels['key']` → `("metadata.labels", "key")`.
fn split_subscript(path: &str) -> Option<(&str, &str)> {
    let inner = path.strip_suffix("']")?;
    let (head, sub) = inner.split_once("['")?;
    (!head.is_empty()).then_some((head, sub))
}

/// A downward-API `fieldRef`, checked against the paths allowed in this context.
pub fn validate_object_field_selector(
    f: &ObjectFieldSelector,
    allowed: &[&str],
    p: &Path,
) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let version = s(&f.api_version);
    if version.is_empty() {
        errs.push(FieldError::required(&p.child("apiVersion"), ""));
        return errs;
    }
    if f.field_path.is_empty() {
        errs.push(FieldError::required(&p.child("fieldPath"), ""));
        return errs;
    }
    let converted = if version != "v1" {
        Err(format!("unsupported pod version: {version}"))
    } else if let Some((head, _)) = split_subscript(&f.field_path) {
        if head == "metadata.annotations" || head == "metadata.labels" {
            Ok(f.field_path.clone())
        } else {
            Err(format!(
                "field label does not support subscript: {}",
                f.field_path
            ))
        }
    } else if f.field_path == "spec.host" {
        Ok("spec.nodeName".to_owned())
    } else if DOWNWARD_API_PATHS.contains(&f.field_path.as_str()) {
        Ok(f.field_path.clone())
    } else {
        Err(format!("field label not supported: {}", f.field_path))
    };
    let internal = match converted {
        Ok(c) => c,
        Err(e) => {
            errs.push(FieldError::invalid(
                &p.child("fieldPath"),
                &f.field_path,
                format!("error converting fieldPath: {e}"),
            ));
            return errs;
        }
    };
    if let Some((head, sub)) = split_subscript(&internal) {
        if head == "metadata.annotations" {
            errs.extend(validate_qualified_name(&sub.to_lowercase(), p));
        } else {
            errs.extend(validate_qualified_name(sub, p));
        }
    } else if !allowed.contains(&internal.as_str()) {
        let mut sorted: Vec<&str> = allowed.to_vec();
        sorted.sort_unstable();
        errs.push(FieldError::not_supported(
            &p.child("fieldPath"),
            internal.as_str(),
            &sorted,
        ));
    }
    errs
}

fn validate_resource_field_selector(r: &ResourceFieldSelector, p: &Path) -> FieldErrors {
    let mut errs = FieldErrors::new();
    if r.resource.is_empty() {
        errs.push(FieldError::required(&p.child("resource"), ""));
    } else if !(RESOURCE_FIELD_PATHS.contains(&r.resource.as_str())
        || r.resource.starts_with("limits.hugepages-")
        || r.resource.starts_with("requests.hugepages-"))
    {
        errs.push(FieldError::not_supported(
            &p.child("resource"),
            r.resource.as_str(),
            &RESOURCE_FIELD_PATHS,
        ));
    }
    let Some(divisor) = r
        .divisor
        .as_ref()
        .and_then(|d| Quantity::from_api(d).ok())
        .filter(|d| !d.is_zero())
    else {
        return errs;
    };
    let d = divisor.to_string();
    let memory_like = [
        "1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei",
    ];
    let res = r.resource.as_str();
    let problem = match res {
        "limits.cpu" | "requests.cpu" if !["1m", "1"].contains(&d.as_str()) => {
            Some("only divisor's values 1m and 1 are supported with the cpu resource")
        }
        "limits.memory" | "requests.memory" if !memory_like.contains(&d.as_str()) => Some(
            "only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the memory resource",
        ),
        "limits.ephemeral-storage" | "requests.ephemeral-storage"
            if !memory_like.contains(&d.as_str()) =>
        {
            Some(
                "only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the local ephemeral storage resource",
            )
        }
        _ => None,
    };
    if let Some(msg) = problem {
        errs.push(FieldError::invalid(&p.child("divisor"), res, msg));
    }
    errs
}

fn validate_key_selector(name: &str, key: &str, p: &Path) -> FieldErrors {
    let mut errs = FieldErrors::new();
    for m in names::name_is_dns_subdomain(name, false) {
        errs.push(FieldError::invalid(&p.child("name"), name, m));
    }
    if key.is_empty() {
        errs.push(FieldError::required(&p.child("key"), ""));
    } else {
        for m in names::is_config_map_key(key) {
            errs.push(FieldError::invalid(&p.child("key"), key, m));
        }
    }
    errs
}

fn validate_env_from(
    sources: &[EnvFromSource],
    path: &Path,
    opts: &PodValidationOptions,
) -> FieldErrors {
    let mut errs = FieldErrors::new();
    for (i, ev) in sources.iter().enumerate() {
        let p = path.index(i);
        if let Some(prefix) = ev.prefix.as_deref().filter(|x| !x.is_empty()) {
            let msgs = if opts.relaxed_env_var_names {
                names::is_relaxed_env_var_name(prefix)
            } else {
                names::is_env_var_name(prefix)
            };
            for m in msgs {
                errs.push(FieldError::invalid(&p.child("prefix"), prefix, m));
            }
        }
        let mut n = 0;
        for (field, name) in [
            (
                "configMapRef",
                ev.config_map_ref.as_ref().map(|c| c.name.as_str()),
            ),
            ("secretRef", ev.secret_ref.as_ref().map(|c| c.name.as_str())),
        ] {
            let Some(name) = name else { continue };
            n += 1;
            let np = p.child(field).child("name");
            if name.is_empty() {
                errs.push(FieldError::required(&np, ""));
            } else {
                for m in names::name_is_dns_subdomain(name, true) {
                    errs.push(FieldError::invalid(&np, name, m));
                }
            }
        }
        if n == 0 {
            errs.push(FieldError::invalid(
                path,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if n > 1 {
            errs.push(FieldError::invalid(
                path,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
    errs
}

fn validate_volume_mounts(c: &Container, volumes: &BTreeSet<String>, path: &Path) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let mut mount_points = BTreeSet::new();
    let mounts: &[VolumeMount] = c.volume_mounts.as_deref().unwrap_or_default();
    let privileged = c
        .security_context
        .as_ref()
        .and_then(|sc| sc.privileged)
        .unwrap_or(false);
    for (i, m) in mounts.iter().enumerate() {
        let p = path.index(i);
        if m.name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        }
        if !volumes.contains(&m.name) {
            errs.push(FieldError::not_found(&p.child("name"), &m.name));
        }
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(&p.child("mountPath"), ""));
        }
        if !mount_points.insert(m.mount_path.as_str()) {
            errs.push(FieldError::invalid(
                &p.child("mountPath"),
                &m.mount_path,
                "must be unique",
            ));
        }
        // upstream reports these under the list path, without the index
        let sub_path = s(&m.sub_path);
        if !sub_path.is_empty() {
            errs.extend(validate_local_descending_path(
                sub_path,
                &path.child("subPath"),
            ));
        }
        let expr = s(&m.sub_path_expr);
        if !expr.is_empty() {
            if !sub_path.is_empty() {
                errs.push(FieldError::invalid(
                    &p.child("subPathExpr"),
                    expr,
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            errs.extend(validate_local_descending_path(
                expr,
                &path.child("subPathExpr"),
            ));
        }
        if let Some(prop) = m.mount_propagation.as_deref() {
            let pp = path.child("mountPropagation");
            if !["Bidirectional", "HostToContainer", "None"].contains(&prop) {
                errs.push(FieldError::not_supported(
                    &pp,
                    prop,
                    &["Bidirectional", "HostToContainer", "None"],
                ));
            }
            if prop == "Bidirectional" && !privileged {
                errs.push(FieldError::forbidden(
                    &pp,
                    "Bidirectional mount propagation is available only to privileged containers",
                ));
            }
        }
    }
    errs
}

/// A pod's or container's `seccompProfile` (upstream's `validateSeccompProfileField`).
pub fn validate_seccomp_profile(profile: &SeccompProfile, path: &Path) -> FieldErrors {
    const TYPES: [&str; 3] = ["Localhost", "RuntimeDefault", "Unconfined"];
    let mut errs = FieldErrors::new();
    match profile.type_.as_str() {
        "" => errs.push(FieldError::required(
            &path.child("type"),
            "type is required when seccompProfile is set",
        )),
        t if !TYPES.contains(&t) => {
            errs.push(FieldError::not_supported(&path.child("type"), t, &TYPES))
        }
        _ => {}
    }
    let local_path = path.child("localhostProfile");
    match (profile.type_.as_str(), profile.localhost_profile.as_deref()) {
        ("Localhost", None) => errs.push(FieldError::required(
            &local_path,
            "must be set when seccomp type is Localhost",
        )),
        ("Localhost", Some(file)) => errs.extend(validate_local_descending_path(file, &local_path)),
        (_, Some(file)) => errs.push(FieldError::invalid(
            &local_path,
            // upstream prints the whole struct (`%#v`), whose pointer field is an address;
            // the two values stand in for it.
            BadValue::Raw(format!(
                "core.SeccompProfile{{Type:{}, LocalhostProfile:{}}}",
                crate::field_errors::go_quote(&profile.type_),
                crate::field_errors::go_quote(file)
            )),
            "can only be set when seccomp type is Localhost",
        )),
        (_, None) => {}
    }
    errs
}

/// The handler fields shared by lifecycle hooks and probes.
struct Handler<'a> {
    exec: Option<&'a ExecAction>,
    http_get: Option<&'a HTTPGetAction>,
    tcp_socket: Option<&'a TCPSocketAction>,
    grpc: Option<&'a GRPCAction>,
    sleep: Option<&'a SleepAction>,
}

/// `postStart` and `preStop`: exactly one handler each.
pub fn validate_lifecycle(
    l: &Lifecycle,
    grace: Option<i64>,
    p: &Path,
    opts: &PodValidationOptions,
) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let hook = |h: &LifecycleHandler, p: &Path| {
        let handler = Handler {
            exec: h.exec.as_ref(),
            http_get: h.http_get.as_ref(),
            tcp_socket: h.tcp_socket.as_ref(),
            grpc: None,
            sleep: h.sleep.as_ref(),
        };
        validate_handler(&handler, grace, p, opts)
    };
    if let Some(h) = &l.post_start {
        errs.extend(hook(h, &p.child("postStart")));
    }
    if let Some(h) = &l.pre_stop {
        errs.extend(hook(h, &p.child("preStop")));
    }
    errs
}

/// A probe: one handler, non-negative timings, a positive probe-level grace period.
pub fn validate_probe(
    probe: &Probe,
    grace: Option<i64>,
    p: &Path,
    opts: &PodValidationOptions,
) -> FieldErrors {
    let handler = Handler {
        exec: probe.exec.as_ref(),
        http_get: probe.http_get.as_ref(),
        tcp_socket: probe.tcp_socket.as_ref(),
        grpc: probe.grpc.as_ref(),
        sleep: None,
    };
    let mut errs = validate_handler(&handler, grace, p, opts);
    for (field, value) in [
        ("initialDelaySeconds", probe.initial_delay_seconds),
        ("timeoutSeconds", probe.timeout_seconds),
        ("periodSeconds", probe.period_seconds),
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ] {
        errs.extend(validate_nonnegative(
            value.unwrap_or(0).into(),
            &p.child(field),
        ));
    }
    if let Some(t) = probe.termination_grace_period_seconds.filter(|t| *t <= 0) {
        errs.push(FieldError::invalid(
            &p.child("terminationGracePeriodSeconds"),
            t,
            "must be greater than 0",
        ));
    }
    errs
}

fn validate_handler(
    h: &Handler<'_>,
    grace: Option<i64>,
    p: &Path,
    opts: &PodValidationOptions,
) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let mut count = 0;
    let mut one = |name: &str,
                   present: bool,
                   check: &dyn Fn(&Path) -> FieldErrors,
                   errs: &mut FieldErrors| {
        if !present {
            return;
        }
        if count > 0 {
            errs.push(FieldError::forbidden(
                &p.child(name),
                "may not specify more than 1 handler type",
            ));
        } else {
            count += 1;
            errs.extend(check(&p.child(name)));
        }
    };
    one(
        "exec",
        h.exec.is_some(),
        &|p| {
            if h.exec
                .is_some_and(|e| e.command.as_deref().unwrap_or_default().is_empty())
            {
                vec![FieldError::required(&p.child("command"), "")].into()
            } else {
                FieldErrors::new()
            }
        },
        &mut errs,
    );
    one(
        "httpGet",
        h.http_get.is_some(),
        &|p| {
            h.http_get
                .map(|g| validate_http_get(g, p))
                .unwrap_or_default()
        },
        &mut errs,
    );
    one(
        "tcpSocket",
        h.tcp_socket.is_some(),
        &|p| {
            h.tcp_socket
                .map(|t| validate_port_num_or_name(&t.port, &p.child("port")))
                .unwrap_or_default()
        },
        &mut errs,
    );
    one(
        "grpc",
        h.grpc.is_some(),
        &|p| {
            h.grpc
                .map(|g| validate_port_num_or_name(&IntOrString::Int(g.port), &p.child("port")))
                .unwrap_or_default()
        },
        &mut errs,
    );
    one(
        "sleep",
        h.sleep.is_some(),
        &|p| {
            h.sleep
                .map(|s| validate_sleep(s, grace, p, opts))
                .unwrap_or_default()
        },
        &mut errs,
    );
    if count == 0 {
        errs.push(FieldError::required(p, "must specify a handler type"));
    }
    errs
}

fn validate_http_get(g: &HTTPGetAction, p: &Path) -> FieldErrors {
    let mut errs = FieldErrors::new();
    if s(&g.path).is_empty() {
        errs.push(FieldError::required(&p.child("path"), ""));
    }
    errs.extend(validate_port_num_or_name(&g.port, &p.child("port")));
    let scheme = s(&g.scheme);
    if scheme != "HTTP" && scheme != "HTTPS" {
        errs.push(FieldError::not_supported(
            &p.child("scheme"),
            scheme,
            &["HTTP", "HTTPS"],
        ));
    }
    for h in g.http_headers.iter().flatten() {
        for m in names::is_http_header_name(&h.name) {
            errs.push(FieldError::invalid(&p.child("httpHeaders"), &h.name, m));
        }
    }
    errs
}

/// A port given as a number (1–65535) or a port name.
pub fn validate_port_num_or_name(port: &IntOrString, p: &Path) -> FieldErrors {
    match port {
        IntOrString::Int(n) => names::is_valid_port_num((*n).into())
            .into_iter()
            .map(|m| FieldError::invalid(p, *n, m))
            .collect::<Vec<_>>()
            .into(),
        IntOrString::String(name) => names::is_valid_port_name(name)
            .into_iter()
            .map(|m| FieldError::invalid(p, name, m))
            .collect::<Vec<_>>()
            .into(),
    }
}

/// `sleep.seconds` within the pod's grace period; zero allowed with
/// `PodLifecycleSleepActionAllowZero` (beta and on in 1.33).
fn validate_sleep(
    sl: &SleepAction,
    grace: Option<i64>,
    p: &Path,
    opts: &PodValidationOptions,
) -> FieldErrors {
    let Some(grace) = grace else {
        return FieldErrors::new();
    };
    let secs = sl.seconds;
    if opts.allow_sleep_zero {
        if secs < 0 || secs > grace {
            return vec![FieldError::invalid(
                p,
                secs,
                format!(
                    "must be non-negative and less than terminationGracePeriodSeconds ({grace})"
                ),
            )]
            .into();
        }
    } else if secs <= 0 || secs > grace {
        return vec![FieldError::invalid(
            p,
            BadValue::Int(secs),
            format!("must be greater than 0 and less than terminationGracePeriodSeconds ({grace}). Enable AllowPodLifecycleSleepActionZeroValue feature gate for zero sleep."),
        )]
        .into();
    }
    FieldErrors::new()
}
