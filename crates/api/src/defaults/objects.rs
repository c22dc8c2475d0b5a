//! Defaults for the other kinds nodelet serves, where kubectl users see them: a Secret's
//! `type: Opaque` and `stringData` folded into `data`, a Namespace's
//! `kubernetes.io/metadata.name` label, `kubernetes` finalizer and `Active` phase, a
//! Service's `type`, `sessionAffinity`, port protocols and target ports, canonical
//! quantities in a RuntimeClass's overhead and a Node's capacity.
//!
//! ServiceAccounts and ConfigMaps have no visible defaults. A Service's cluster IP,
//! `clusterIPs`, `ipFamilies` and `ipFamilyPolicy` come from the API server's allocator.

use std::collections::BTreeMap;

use super::pod::canonicalize_resource_list;
use crate::k8s::ByteString;
use crate::k8s::api::core::v1::{
    ClientIPConfig, Namespace, NamespaceSpec, NamespaceStatus, Node, Secret, Service,
    SessionAffinityConfig,
};
use crate::k8s::api::node::v1::RuntimeClass;
use crate::k8s::apimachinery::pkg::util::intstr::IntOrString;

/// The label every namespace carries with its own name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// `type: Opaque` when unset, and `stringData` merged into `data` (string values win), as
/// the v1 → internal conversion does; `stringData` is never stored.
pub fn default_secret(secret: &mut Secret) {
    if secret.type_.as_deref().is_none_or(str::is_empty) {
        secret.type_ = Some("Opaque".into());
    }
    if let Some(string_data) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(BTreeMap::new);
        for (k, v) in string_data {
            data.insert(k, ByteString(v.into_bytes()));
        }
    }
}

/// The name label (`SetDefaults_Namespace`), and on create the `kubernetes` finalizer and
/// the `Active` phase (the namespace registry's `PrepareForCreate`).
pub fn default_namespace(ns: &mut Namespace, creating: bool) {
    if let Some(name) = ns.metadata.name.clone().filter(|n| !n.is_empty()) {
        ns.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(NAMESPACE_NAME_LABEL.into(), name);
    }
    if creating {
        ns.status = Some(NamespaceStatus {
            phase: Some("Active".into()),
            ..Default::default()
        });
        let spec = ns.spec.get_or_insert_with(NamespaceSpec::default);
        let finalizers = spec.finalizers.get_or_insert_with(Vec::new);
        if !finalizers.iter().any(|f| f == "kubernetes") {
            finalizers.push("kubernetes".into());
        }
    } else {
        let status = ns.status.get_or_insert_with(NamespaceStatus::default);
        if status.phase.as_deref().is_none_or(str::is_empty) {
            status.phase = Some("Active".into());
        }
    }
}

/// `SetDefaults_Service`.
pub fn default_service(svc: &mut Service) {
    let spec = svc.spec.get_or_insert_with(Default::default);
    if spec.session_affinity.as_deref().is_none_or(str::is_empty) {
        spec.session_affinity = Some("None".into());
    }
    match spec.session_affinity.as_deref() {
        Some("None") => spec.session_affinity_config = None,
        Some("ClientIP") => {
            let has_timeout = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .is_some();
            if !has_timeout {
                spec.session_affinity_config = Some(SessionAffinityConfig {
                    client_ip: Some(ClientIPConfig {
                        timeout_seconds: Some(10800),
                    }),
                });
            }
        }
        _ => {}
    }
    if spec.type_.as_deref().is_none_or(str::is_empty) {
        spec.type_ = Some("ClusterIP".into());
    }
    for port in spec.ports.iter_mut().flatten() {
        if port.protocol.as_deref().is_none_or(str::is_empty) {
            port.protocol = Some("TCP".into());
        }
        let unset = match &port.target_port {
            None => true,
            Some(IntOrString::Int(0)) => true,
            Some(IntOrString::String(s)) => s.is_empty(),
            Some(IntOrString::Int(_)) => false,
        };
        if unset {
            port.target_port = Some(IntOrString::Int(port.port));
        }
    }
    let ty = spec.type_.clone().unwrap_or_default();
    let externally_accessible = ty == "NodePort"
        || ty == "LoadBalancer"
        || (ty == "ClusterIP" && spec.external_ips.as_ref().is_some_and(|e| !e.is_empty()));
    if externally_accessible
        && spec
            .external_traffic_policy
            .as_deref()
            .is_none_or(str::is_empty)
    {
        spec.external_traffic_policy = Some("Cluster".into());
    }
    if spec.internal_traffic_policy.is_none()
        && matches!(ty.as_str(), "NodePort" | "LoadBalancer" | "ClusterIP")
    {
        spec.internal_traffic_policy = Some("Cluster".into());
    }
    if ty == "LoadBalancer" && spec.allocate_load_balancer_node_ports.is_none() {
        spec.allocate_load_balancer_node_ports = Some(true);
    }
}

/// RuntimeClass overhead quantities in canonical form (no other defaults exist).
pub fn default_runtime_class(rc: &mut RuntimeClass) {
    if let Some(list) = rc.overhead.as_mut().and_then(|o| o.pod_fixed.as_mut()) {
        canonicalize_resource_list(list);
    }
}

/// A node's `allocatable` defaults to its `capacity`; quantities are canonical.
pub fn default_node(node: &mut Node) {
    if let Some(status) = node.status.as_mut() {
        if status.allocatable.is_none() {
            status.allocatable = status.capacity.clone();
        }
        for list in [&mut status.capacity, &mut status.allocatable]
            .into_iter()
            .flatten()
        {
            canonicalize_resource_list(list);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_default_to_opaque_and_fold_string_data() {
        let cases = [
            (
                json!({"metadata":{"name":"web"}}),
                json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"web"},"type":"Opaque"}),
            ),
            (
                json!({"metadata":{"name":"s"},"data":{"a":"MQ==","b":"Mg=="},"stringData":{"b":"two","c":"3"}}),
                json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"type":"Opaque","data":{"a":"MQ==","b":"dHdv","c":"Mw=="}}),
            ),
            (
                json!({"metadata":{"name":"regcred"},"type":"kubernetes.io/dockerconfigjson","data":{".dockerconfigjson":"e30="}}),
                json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"regcred"},"type":"kubernetes.io/dockerconfigjson","data":{".dockerconfigjson":"e30="}}),
            ),
        ];
        for (input, want) in cases {
            let mut s: Secret = serde_json::from_value(input).unwrap();
            default_secret(&mut s);
            assert_eq!(serde_json::to_value(&s).unwrap(), want);
        }
    }

    #[test]
    fn namespaces_get_label_finalizer_and_phase() {
        let mut ns: Namespace =
            serde_json::from_value(json!({"metadata":{"name":"awesomeapps"}})).unwrap();
        default_namespace(&mut ns, true);
        assert_eq!(
            serde_json::to_value(&ns).unwrap(),
            json!({"apiVersion":"v1","kind":"Namespace",
                   "metadata":{"name":"awesomeapps","labels":{"kubernetes.io/metadata.name":"awesomeapps"}},
                   "spec":{"finalizers":["kubernetes"]},"status":{"phase":"Active"}})
        );
        let before = serde_json::to_value(&ns).unwrap();
        default_namespace(&mut ns, false);
        assert_eq!(serde_json::to_value(&ns).unwrap(), before);
    }

    #[test]
    fn services_get_type_affinity_protocol_and_target_port() {
        let cases = [
            (
                json!({"ports":[{"port":80}],"selector":{"app":"web"}}),
                json!({"ports":[{"port":80,"protocol":"TCP","targetPort":80}],"selector":{"app":"web"},
                       "type":"ClusterIP","sessionAffinity":"None","internalTrafficPolicy":"Cluster"}),
            ),
            (
                json!({"type":"NodePort","sessionAffinity":"ClientIP","ports":[{"port":443,"targetPort":"https","protocol":"UDP"}]}),
                json!({"type":"NodePort","sessionAffinity":"ClientIP","sessionAffinityConfig":{"clientIP":{"timeoutSeconds":10800}},
                       "ports":[{"port":443,"targetPort":"https","protocol":"UDP"}],
                       "externalTrafficPolicy":"Cluster","internalTrafficPolicy":"Cluster"}),
            ),
            (
                json!({"type":"ExternalName","externalName":"example.com"}),
                json!({"type":"ExternalName","externalName":"example.com","sessionAffinity":"None"}),
            ),
        ];
        for (spec, want) in cases {
            let mut svc: Service =
                serde_json::from_value(json!({"metadata":{"name":"s"},"spec":spec})).unwrap();
            default_service(&mut svc);
            assert_eq!(serde_json::to_value(svc.spec.unwrap()).unwrap(), want);
        }
    }

    #[test]
    fn runtime_class_and_node_quantities() {
        let mut rc: RuntimeClass =
            serde_json::from_value(json!({"metadata":{"name":"k"},"handler":"kata","overhead":{"podFixed":{"cpu":"0.25","memory":"122880Ki"}}})).unwrap();
        default_runtime_class(&mut rc);
        let fixed = rc.overhead.unwrap().pod_fixed.unwrap();
        assert_eq!(fixed["cpu"].0, "250m");
        assert_eq!(fixed["memory"].0, "120Mi");

        let mut node: Node = serde_json::from_value(
            json!({"metadata":{"name":"n"},"status":{"capacity":{"cpu":"4","memory":"8192Mi"}}}),
        )
        .unwrap();
        default_node(&mut node);
        let status = node.status.unwrap();
        assert_eq!(status.allocatable.unwrap()["memory"].0, "8Gi");
    }
}
