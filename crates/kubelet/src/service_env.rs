//! Docker-link style environment variables for Services (spec §5.6, the seed's "Informação do
//! cluster": `FOO_SERVICE_HOST`, `FOO_SERVICE_PORT`, …).
//!
//! Which Services a pod sees: `default/kubernetes` always (clients find the API server through
//! `KUBERNETES_SERVICE_HOST` even with links off), plus every Service of the pod's own namespace
//! when `enableServiceLinks` is true (the default). Only Services with a cluster IP take part;
//! headless (`None`) and IP-less ones are skipped. A Service named `kubernetes` in the pod's
//! namespace replaces the master one when links are on.

use std::collections::BTreeMap;

use nodelet_api::k8s::api::core::v1::Service;

/// The namespace holding the API server's own Service.
pub const MASTER_SERVICE_NAMESPACE: &str = "default";
/// The master Services every pod gets variables for.
pub const MASTER_SERVICES: &[&str] = &["kubernetes"];

/// Upper-cases and turns `-` into `_` (dots and leading digits are left as they are, as
/// upstream does).
pub fn env_var_name(name: &str) -> String {
    name.to_uppercase().replace('-', "_")
}

/// Whether the Service has a cluster IP (neither empty nor `None`).
pub fn is_service_ip_set(service: &Service) -> bool {
    let ip = cluster_ip(service);
    !ip.is_empty() && ip != "None"
}

fn cluster_ip(service: &Service) -> &str {
    service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .unwrap_or("")
}

/// Picks the Services a pod in `namespace` sees, by name, from every Service the node knows
/// (any namespace): the master Services from `default`, and — when links are enabled — the
/// pod's namespace's, which win over a master Service of the same name.
pub fn visible_services<'s>(
    namespace: &str,
    enable_service_links: bool,
    services: &'s [Service],
) -> BTreeMap<&'s str, &'s Service> {
    let mut chosen: BTreeMap<&str, &Service> = BTreeMap::new();
    for service in services.iter().filter(|s| is_service_ip_set(s)) {
        let name = service.metadata.name.as_deref().unwrap_or("");
        let ns = service.metadata.namespace.as_deref().unwrap_or("");
        if ns == MASTER_SERVICE_NAMESPACE && MASTER_SERVICES.contains(&name) {
            chosen.entry(name).or_insert(service);
        } else if ns == namespace && enable_service_links {
            chosen.insert(name, service);
        }
    }
    chosen
}

/// The variables for every Service a pod in `namespace` sees, Services in name order, each
/// Service's variables in upstream's order. Upstream keeps them in a map; a name two Services
/// produce (`foo-bar` and `FOO_BAR`…) keeps its first position and the last value.
pub fn service_env_vars(
    namespace: &str,
    enable_service_links: bool,
    services: &[Service],
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for service in visible_services(namespace, enable_service_links, services).into_values() {
        for (name, value) in env_vars_for_service(service) {
            match index.get(&name) {
                Some(&i) => out[i].1 = value,
                None => {
                    index.insert(name.clone(), out.len());
                    out.push((name, value));
                }
            }
        }
    }
    out
}

/// The variables of one Service, in upstream's order: `_SERVICE_HOST`, `_SERVICE_PORT` (first
/// port), `_SERVICE_PORT_<NAME>` for each named port, then the Docker link set: `_PORT` (first
/// port), and per port `_PORT_<p>_<PROTO>`, `…_PROTO`, `…_PORT`, `…_ADDR`. Empty for a Service
/// without a cluster IP.
pub fn env_vars_for_service(service: &Service) -> Vec<(String, String)> {
    if !is_service_ip_set(service) {
        return Vec::new();
    }
    let ip = cluster_ip(service);
    let prefix = env_var_name(service.metadata.name.as_deref().unwrap_or(""));
    let ports = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or(&[]);
    let mut vars = vec![(format!("{prefix}_SERVICE_HOST"), ip.to_owned())];
    let Some(first) = ports.first() else {
        // Validation requires a port on every Service with a cluster IP; without one there
        // is nothing more to say.
        return vars;
    };
    let service_port = format!("{prefix}_SERVICE_PORT");
    vars.push((service_port.clone(), first.port.to_string()));
    for port in ports {
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            vars.push((
                format!("{service_port}_{}", env_var_name(name)),
                port.port.to_string(),
            ));
        }
    }
    for (i, port) in ports.iter().enumerate() {
        let protocol = port
            .protocol
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or("TCP");
        let lower = protocol.to_lowercase();
        let url = format!("{lower}://{}", join_host_port(ip, port.port));
        if i == 0 {
            vars.push((format!("{prefix}_PORT"), url.clone()));
        }
        let port_prefix = format!("{prefix}_PORT_{}_{}", port.port, protocol.to_uppercase());
        vars.push((port_prefix.clone(), url));
        vars.push((format!("{port_prefix}_PROTO"), lower));
        vars.push((format!("{port_prefix}_PORT"), port.port.to_string()));
        vars.push((format!("{port_prefix}_ADDR"), ip.to_owned()));
    }
    vars
}

/// `host:port`, with a host holding a `:` (an IPv6 address) in brackets, as Go's
/// `net.JoinHostPort`.
pub fn join_host_port(host: &str, port: impl std::fmt::Display) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodelet_api::k8s::api::core::v1::{ServicePort, ServiceSpec};
    use nodelet_api::k8s::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn service(
        ns: &str,
        name: &str,
        ip: &str,
        ports: &[(Option<&str>, i32, Option<&str>)],
    ) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some(ip.into()),
                ports: Some(
                    ports
                        .iter()
                        .map(|(name, port, proto)| ServicePort {
                            name: name.map(Into::into),
                            port: *port,
                            protocol: proto.map(Into::into),
                            ..ServicePort::default()
                        })
                        .collect(),
                ),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn master_service_set() {
        let svc = service(
            "default",
            "kubernetes",
            "10.96.0.1",
            &[(Some("https"), 443, Some("TCP"))],
        );
        assert_eq!(
            env_vars_for_service(&svc),
            pairs(&[
                ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
                ("KUBERNETES_SERVICE_PORT", "443"),
                ("KUBERNETES_SERVICE_PORT_HTTPS", "443"),
                ("KUBERNETES_PORT", "tcp://10.96.0.1:443"),
                ("KUBERNETES_PORT_443_TCP", "tcp://10.96.0.1:443"),
                ("KUBERNETES_PORT_443_TCP_PROTO", "tcp"),
                ("KUBERNETES_PORT_443_TCP_PORT", "443"),
                ("KUBERNETES_PORT_443_TCP_ADDR", "10.96.0.1"),
            ])
        );
    }

    #[test]
    fn every_port_named_ports_protocols_and_ipv6() {
        let cases: Vec<(Service, Vec<(String, String)>)> = vec![
            (
                // the e2e "fooservice": one unnamed port, protocol defaulted to TCP
                service("ns", "fooservice", "10.0.0.11", &[(None, 8765, None)]),
                pairs(&[
                    ("FOOSERVICE_SERVICE_HOST", "10.0.0.11"),
                    ("FOOSERVICE_SERVICE_PORT", "8765"),
                    ("FOOSERVICE_PORT", "tcp://10.0.0.11:8765"),
                    ("FOOSERVICE_PORT_8765_TCP", "tcp://10.0.0.11:8765"),
                    ("FOOSERVICE_PORT_8765_TCP_PROTO", "tcp"),
                    ("FOOSERVICE_PORT_8765_TCP_PORT", "8765"),
                    ("FOOSERVICE_PORT_8765_TCP_ADDR", "10.0.0.11"),
                ]),
            ),
            (
                service(
                    "ns",
                    "my-dns",
                    "10.0.0.10",
                    &[
                        (Some("dns"), 53, Some("UDP")),
                        (Some("dns-tcp"), 53, Some("TCP")),
                    ],
                ),
                pairs(&[
                    ("MY_DNS_SERVICE_HOST", "10.0.0.10"),
                    ("MY_DNS_SERVICE_PORT", "53"),
                    ("MY_DNS_SERVICE_PORT_DNS", "53"),
                    ("MY_DNS_SERVICE_PORT_DNS_TCP", "53"),
                    ("MY_DNS_PORT", "udp://10.0.0.10:53"),
                    ("MY_DNS_PORT_53_UDP", "udp://10.0.0.10:53"),
                    ("MY_DNS_PORT_53_UDP_PROTO", "udp"),
                    ("MY_DNS_PORT_53_UDP_PORT", "53"),
                    ("MY_DNS_PORT_53_UDP_ADDR", "10.0.0.10"),
                    ("MY_DNS_PORT_53_TCP", "tcp://10.0.0.10:53"),
                    ("MY_DNS_PORT_53_TCP_PROTO", "tcp"),
                    ("MY_DNS_PORT_53_TCP_PORT", "53"),
                    ("MY_DNS_PORT_53_TCP_ADDR", "10.0.0.10"),
                ]),
            ),
            (
                service("ns", "v6", "fd00::1", &[(None, 443, Some("SCTP"))]),
                pairs(&[
                    ("V6_SERVICE_HOST", "fd00::1"),
                    ("V6_SERVICE_PORT", "443"),
                    ("V6_PORT", "sctp://[fd00::1]:443"),
                    ("V6_PORT_443_SCTP", "sctp://[fd00::1]:443"),
                    ("V6_PORT_443_SCTP_PROTO", "sctp"),
                    ("V6_PORT_443_SCTP_PORT", "443"),
                    ("V6_PORT_443_SCTP_ADDR", "fd00::1"),
                ]),
            ),
            (
                service("ns", "headless", "None", &[(None, 80, None)]),
                vec![],
            ),
            (service("ns", "no-ip", "", &[(None, 80, None)]), vec![]),
        ];
        for (svc, want) in cases {
            assert_eq!(env_vars_for_service(&svc), want, "{:?}", svc.metadata.name);
        }
    }

    #[test]
    fn names_are_upper_cased_with_dashes_replaced() {
        for (name, want) in [
            ("foo", "FOO"),
            ("foo-bar", "FOO_BAR"),
            ("a.b-c", "A.B_C"),
            ("1x", "1X"),
        ] {
            assert_eq!(env_var_name(name), want);
        }
    }

    fn names(vars: &[(String, String)]) -> Vec<&str> {
        let mut v: Vec<&str> = vars
            .iter()
            .filter(|(n, _)| n.ends_with("_SERVICE_HOST"))
            .map(|(n, _)| n.as_str())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn which_services_a_pod_sees() {
        let all = vec![
            service(
                "default",
                "kubernetes",
                "10.96.0.1",
                &[(Some("https"), 443, None)],
            ),
            service("default", "other-default", "10.96.0.2", &[(None, 80, None)]),
            service("app", "web", "10.96.0.3", &[(None, 80, None)]),
            service("app", "headless", "None", &[(None, 80, None)]),
            service("elsewhere", "db", "10.96.0.4", &[(None, 5432, None)]),
        ];
        let cases: [(&str, bool, &[&str]); 5] = [
            (
                "app",
                true,
                &["KUBERNETES_SERVICE_HOST", "WEB_SERVICE_HOST"],
            ),
            ("app", false, &["KUBERNETES_SERVICE_HOST"]),
            (
                "default",
                true,
                &["KUBERNETES_SERVICE_HOST", "OTHER_DEFAULT_SERVICE_HOST"],
            ),
            ("default", false, &["KUBERNETES_SERVICE_HOST"]),
            ("empty", true, &["KUBERNETES_SERVICE_HOST"]),
        ];
        for (ns, links, want) in cases {
            assert_eq!(
                names(&service_env_vars(ns, links, &all)),
                want,
                "{ns} {links}"
            );
        }
    }

    #[test]
    fn same_namespace_kubernetes_service_replaces_the_master_one_only_with_links() {
        let master = service("default", "kubernetes", "10.96.0.1", &[(None, 443, None)]);
        let local = service("app", "kubernetes", "10.1.1.1", &[(None, 8443, None)]);
        for order in [
            vec![master.clone(), local.clone()],
            vec![local.clone(), master.clone()],
        ] {
            let with = service_env_vars("app", true, &order);
            assert_eq!(
                with[0],
                ("KUBERNETES_SERVICE_HOST".into(), "10.1.1.1".into())
            );
            let without = service_env_vars("app", false, &order);
            assert_eq!(
                without[0],
                ("KUBERNETES_SERVICE_HOST".into(), "10.96.0.1".into())
            );
        }
        // no master service at all (standalone): nothing
        assert!(service_env_vars("app", false, &[]).is_empty());
    }

    #[test]
    fn join_host_port_brackets_ipv6() {
        assert_eq!(join_host_port("10.0.0.1", 80), "10.0.0.1:80");
        assert_eq!(join_host_port("fd00::1", 80), "[fd00::1]:80");
        assert_eq!(join_host_port("example.com", 8080), "example.com:8080");
    }
}
