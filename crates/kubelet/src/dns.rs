//! A pod's `/etc/resolv.conf` from its `dnsPolicy` and `dnsConfig`, as the kubelet builds it
//! on a node without cluster DNS (nodelet runs none yet):
//!
//! - `Default`, and `ClusterFirst` (which falls back to `Default`, with upstream's
//!   `MissingClusterDNS` warning unless the pod uses the host network, where upstream falls
//!   back silently): the node's nameservers, search domains and options;
//! - `ClusterFirstWithHostNet`: as `ClusterFirst` (no cluster DNS: the node's, with the warning);
//! - `None`: nothing from the node, only `dnsConfig`;
//! - `dnsConfig`, when set, is merged in: nameservers and searches appended without
//!   duplicates, options by name (the pod's value wins).
//!
//! Then upstream's limits: at most 3 nameservers, 32 search domains and 2048 characters of
//! search line; what is cut is reported with upstream's `DNSConfigForming` texts.
//!
//! The sandbox (`nodelet_runtime::sandbox`) writes the result into its directory and every
//! container bind-mounts it.

use nodelet_api::k8s::api::core::v1::{PodDNSConfig, PodSpec};

/// Upstream's limits (`k8s.io/kubernetes/pkg/apis/core/validation`).
pub const MAX_NAMESERVERS: usize = 3;
pub const MAX_SEARCH_PATHS: usize = 32;
pub const MAX_SEARCH_LINE_CHARS: usize = 2048;

/// Event reasons the kubelet uses for DNS.
pub const REASON_MISSING_CLUSTER_DNS: &str = "MissingClusterDNS";
pub const REASON_DNS_CONFIG_FORMING: &str = "DNSConfigForming";

/// The resolver settings of a pod (or parsed from a node's `resolv.conf`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsSettings {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    /// `name` or `name:value`.
    pub options: Vec<String>,
}

impl DnsSettings {
    /// The file: `search`, then one `nameserver` line each, then `options` (containerd's
    /// layout).
    pub fn to_resolv_conf(&self) -> String {
        let mut out = String::new();
        if !self.searches.is_empty() {
            out.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        for server in &self.nameservers {
            out.push_str(&format!("nameserver {server}\n"));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }
}

/// A warning event the kubelet posts about the pod's DNS (reason, message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsWarning {
    pub reason: &'static str,
    pub message: String,
}

/// The pod's resolver settings and the warnings to post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodDns {
    pub settings: DnsSettings,
    pub warnings: Vec<DnsWarning>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// Upstream's text (validation normally refuses such a pod first).
    #[error("invalid DNSPolicy={0}")]
    InvalidPolicy(String),
}

/// The pod's DNS. `node_resolv_conf` is the node's file's contents (the kubelet's
/// `--resolv-conf`); `None` when that is configured empty, in which case a host-DNS pod
/// gets the local resolver (`127.0.0.1`, search `.`) as upstream does. `pod_name` is
/// `namespace/name`, for the warning text.
pub fn pod_dns(
    spec: &PodSpec,
    pod_name: &str,
    node_resolv_conf: Option<&str>,
) -> Result<PodDns, DnsError> {
    let host_network = spec.host_network.unwrap_or(false);
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let mut warnings = Vec::new();
    let use_node = match policy {
        "None" => false,
        "Default" => true,
        "ClusterFirst" | "ClusterFirstWithHostNet" => {
            // ClusterFirst on the host network is Default upstream, before cluster DNS is
            // looked at; otherwise the missing cluster DNS makes it Default, with a warning.
            if policy == "ClusterFirstWithHostNet" || !host_network {
                warnings.push(DnsWarning {
                    reason: REASON_MISSING_CLUSTER_DNS,
                    message: format!(
                        "pod: {pod_name:?}. kubelet does not have ClusterDNS IP configured and \
                         cannot create Pod using \"ClusterFirst\" policy. Falling back to \
                         \"Default\" policy."
                    ),
                });
            }
            true
        }
        other => return Err(DnsError::InvalidPolicy(other.to_string())),
    };
    let mut settings = if !use_node {
        DnsSettings::default()
    } else if let Some(contents) = node_resolv_conf {
        parse_resolv_conf(contents)
    } else {
        DnsSettings {
            nameservers: vec!["127.0.0.1".into()],
            searches: vec![".".into()],
            options: Vec::new(),
        }
    };
    if let Some(config) = &spec.dns_config {
        merge(&mut settings, config);
    }
    apply_limits(&mut settings, &mut warnings);
    Ok(PodDns { settings, warnings })
}

/// The nameservers, search domains (the last `search` line; `.` dropped, trailing dots
/// trimmed) and options (the last `options` line) of a `resolv.conf`.
pub fn parse_resolv_conf(contents: &str) -> DnsSettings {
    let mut settings = DnsSettings::default();
    for line in contents.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("nameserver") => {
                if let Some(server) = fields.next() {
                    settings.nameservers.push(server.to_string());
                }
            }
            Some("search") => {
                settings.searches = fields
                    .filter(|d| *d != ".")
                    .map(|d| d.trim_end_matches('.').to_string())
                    .collect();
            }
            Some("options") => settings.options = fields.map(str::to_string).collect(),
            _ => {}
        }
    }
    settings
}

fn merge(settings: &mut DnsSettings, config: &PodDNSConfig) {
    let push_new = |list: &mut Vec<String>, more: &Option<Vec<String>>| {
        for item in more.iter().flatten() {
            if !list.contains(item) {
                list.push(item.clone());
            }
        }
    };
    push_new(&mut settings.nameservers, &config.nameservers);
    push_new(&mut settings.searches, &config.searches);
    // By name, the first position kept; the pod's value replaces the node's.
    let mut options: Vec<(String, String)> = Vec::new();
    let mut set = |name: &str, value: &str| match options.iter_mut().find(|(n, _)| n == name) {
        Some(existing) => existing.1 = value.to_string(),
        None => options.push((name.to_string(), value.to_string())),
    };
    for option in &settings.options {
        let (name, value) = option.split_once(':').unwrap_or((option, ""));
        set(name, value);
    }
    for option in config.options.iter().flatten() {
        let name = option.name.as_deref().unwrap_or_default();
        set(name, option.value.as_deref().unwrap_or_default());
    }
    settings.options = options
        .into_iter()
        .map(|(name, value)| {
            if value.is_empty() {
                name
            } else {
                format!("{name}:{value}")
            }
        })
        .collect();
}

fn apply_limits(settings: &mut DnsSettings, warnings: &mut Vec<DnsWarning>) {
    let mut searches_cut = false;
    if settings.searches.len() > MAX_SEARCH_PATHS {
        settings.searches.truncate(MAX_SEARCH_PATHS);
        searches_cut = true;
    }
    while settings.searches.join(" ").len() > MAX_SEARCH_LINE_CHARS {
        settings.searches.pop();
        searches_cut = true;
    }
    if searches_cut {
        warnings.push(DnsWarning {
            reason: REASON_DNS_CONFIG_FORMING,
            message: format!(
                "Search Line limits were exceeded, some search paths have been omitted, the \
                 applied search line is: {}",
                settings.searches.join(" ")
            ),
        });
    }
    if settings.nameservers.len() > MAX_NAMESERVERS {
        settings.nameservers.truncate(MAX_NAMESERVERS);
        warnings.push(DnsWarning {
            reason: REASON_DNS_CONFIG_FORMING,
            message: format!(
                "Nameserver limits were exceeded, some nameservers have been omitted, the \
                 applied nameserver line is: {}",
                settings.nameservers.join(" ")
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodelet_api::k8s::api::core::v1::PodDNSConfigOption;

    const NODE: &str = "# generated\nnameserver 10.255.255.53\nnameserver 1.1.1.1\n\
                        search corp.example. lab.example .\noptions ndots:2 edns0\n";

    fn spec(policy: Option<&str>, host_network: bool, config: Option<PodDNSConfig>) -> PodSpec {
        PodSpec {
            dns_policy: policy.map(str::to_string),
            host_network: Some(host_network),
            dns_config: config,
            ..Default::default()
        }
    }

    fn option(name: &str, value: Option<&str>) -> PodDNSConfigOption {
        PodDNSConfigOption {
            name: Some(name.into()),
            value: value.map(str::to_string),
        }
    }

    #[test]
    fn default_is_the_nodes_resolver() {
        let dns = pod_dns(&spec(Some("Default"), false, None), "ns/p", Some(NODE)).unwrap();
        assert!(dns.warnings.is_empty());
        assert_eq!(
            dns.settings.to_resolv_conf(),
            "search corp.example lab.example\nnameserver 10.255.255.53\nnameserver 1.1.1.1\n\
             options ndots:2 edns0\n"
        );
    }

    #[test]
    fn cluster_first_without_cluster_dns_falls_back_with_a_warning() {
        let dns = pod_dns(&spec(None, false, None), "ns/p", Some(NODE)).unwrap();
        assert_eq!(dns.settings, parse_resolv_conf(NODE));
        assert_eq!(
            dns.warnings,
            [DnsWarning {
                reason: "MissingClusterDNS",
                message: "pod: \"ns/p\". kubelet does not have ClusterDNS IP configured and \
                          cannot create Pod using \"ClusterFirst\" policy. Falling back to \
                          \"Default\" policy."
                    .into()
            }]
        );
        let host = pod_dns(&spec(Some("ClusterFirst"), true, None), "ns/p", Some(NODE)).unwrap();
        assert!(host.warnings.is_empty(), "host network: Default, silently");
        let with_host_net = pod_dns(
            &spec(Some("ClusterFirstWithHostNet"), true, None),
            "ns/p",
            Some(NODE),
        )
        .unwrap();
        assert_eq!(with_host_net.warnings.len(), 1);
    }

    #[test]
    fn none_takes_only_dns_config() {
        let config = PodDNSConfig {
            nameservers: Some(vec!["192.0.2.1".into()]),
            searches: Some(vec!["ns1.svc.cluster-domain.example".into()]),
            options: Some(vec![option("ndots", Some("2")), option("edns0", None)]),
        };
        let dns = pod_dns(&spec(Some("None"), false, Some(config)), "ns/p", Some(NODE)).unwrap();
        assert_eq!(
            dns.settings.to_resolv_conf(),
            "search ns1.svc.cluster-domain.example\nnameserver 192.0.2.1\noptions ndots:2 edns0\n"
        );
        let empty = pod_dns(&spec(Some("None"), false, None), "ns/p", Some(NODE)).unwrap();
        assert_eq!(empty.settings.to_resolv_conf(), "");
    }

    #[test]
    fn dns_config_merges_into_the_nodes() {
        let config = PodDNSConfig {
            nameservers: Some(vec!["1.1.1.1".into(), "9.9.9.9".into()]),
            searches: Some(vec!["lab.example".into(), "pods.example".into()]),
            options: Some(vec![
                option("ndots", Some("5")),
                option("single-request", None),
            ]),
        };
        let dns = pod_dns(
            &spec(Some("Default"), false, Some(config)),
            "ns/p",
            Some(NODE),
        )
        .unwrap();
        assert_eq!(
            dns.settings,
            DnsSettings {
                nameservers: vec!["10.255.255.53".into(), "1.1.1.1".into(), "9.9.9.9".into()],
                searches: vec![
                    "corp.example".into(),
                    "lab.example".into(),
                    "pods.example".into()
                ],
                options: vec!["ndots:5".into(), "edns0".into(), "single-request".into()],
            }
        );
    }

    #[test]
    fn limits_cut_nameservers_and_searches_with_upstream_texts() {
        let config = PodDNSConfig {
            nameservers: Some((1..=5).map(|n| format!("192.0.2.{n}")).collect()),
            searches: Some((0..40).map(|n| format!("s{n}.example")).collect()),
            options: None,
        };
        let dns = pod_dns(&spec(Some("None"), false, Some(config)), "ns/p", None).unwrap();
        assert_eq!(dns.settings.nameservers.len(), 3);
        assert_eq!(dns.settings.searches.len(), 32);
        let messages: Vec<&str> = dns.warnings.iter().map(|w| w.message.as_str()).collect();
        assert!(messages[0].starts_with(
            "Search Line limits were exceeded, some search paths have been omitted, the applied \
             search line is: s0.example s1.example"
        ));
        assert_eq!(
            messages[1],
            "Nameserver limits were exceeded, some nameservers have been omitted, the applied \
             nameserver line is: 192.0.2.1 192.0.2.2 192.0.2.3"
        );
    }

    #[test]
    fn without_a_node_file_the_local_resolver_and_bad_policies() {
        let dns = pod_dns(&spec(Some("Default"), false, None), "ns/p", None).unwrap();
        assert_eq!(
            dns.settings.to_resolv_conf(),
            "search .\nnameserver 127.0.0.1\n"
        );
        assert_eq!(
            pod_dns(&spec(Some("Sometimes"), false, None), "ns/p", None)
                .unwrap_err()
                .to_string(),
            "invalid DNSPolicy=Sometimes"
        );
    }
}
