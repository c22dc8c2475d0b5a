//! A pod's hostname, domain and `/etc/hosts` (spec §5.1; the seed: "O hostname de um contêiner
//! é o nome do Pod em que o contêiner está executando").
//!
//! The kubelet decides the names and the file's content; `nodelet-runtime` sets the UTS
//! hostname and bind-mounts the file (read-write, mode 0644, mount name
//! [`HOSTS_MOUNT_NAME`]).

use nodelet_api::field_errors::go_quote;
use nodelet_api::k8s::api::core::v1::{HostAlias, Pod};
use nodelet_api::names::is_dns1123_label;

/// Longest hostname: the kernel's 64-byte field less the terminating NUL.
pub const HOSTNAME_MAX_LEN: usize = 63;
/// Longest FQDN used as the kernel hostname (`setHostnameAsFQDN`).
pub const FQDN_MAX_LEN: usize = 64;
/// The kubelet's name for the `/etc/hosts` mount.
pub const HOSTS_MOUNT_NAME: &str = "k8s-managed-etc-hosts";
/// First line of the file the kubelet writes for pods on the pod network.
pub const MANAGED_HOSTS_HEADER: &str = "# Kubernetes-managed hosts file.\n";
/// First line for host-network pods (the node's own file follows).
pub const MANAGED_HOSTS_HEADER_HOST_NETWORK: &str =
    "# Kubernetes-managed hosts file (host network).\n";

/// Why a pod has no usable hostname; texts are upstream's. The last one fails sandbox creation
/// (`FailedCreatePodSandBox`, the pod stays Pending).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostnameError {
    #[error("pod Hostname {} is not a valid DNS label: {}", go_quote(.hostname), .errors.join(";"))]
    InvalidHostname {
        hostname: String,
        errors: Vec<String>,
    },
    #[error("pod Subdomain {} is not a valid DNS label: {}", go_quote(.subdomain), .errors.join(";"))]
    InvalidSubdomain {
        subdomain: String,
        errors: Vec<String>,
    },
    #[error("hostname for pod {} was invalid: {}", go_quote(.pod), go_quote(.hostname))]
    EmptyAfterTruncation { pod: String, hostname: String },
    #[error(
        "failed to construct FQDN from pod hostname and cluster domain, FQDN {fqdn} is too long ({FQDN_MAX_LEN} characters is the max, {} characters requested)",
        .fqdn.len()
    )]
    FqdnTooLong { fqdn: String },
}

/// The pod's short hostname and its domain (`<subdomain>.<namespace>.svc.<clusterDomain>`,
/// only when `spec.subdomain` is set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodHostname {
    pub hostname: String,
    pub domain: Option<String>,
}

impl PodHostname {
    /// `<hostname>.<domain>`, or the hostname alone without a domain (what `hostname -f`
    /// prints).
    pub fn fqdn(&self) -> String {
        match &self.domain {
            Some(domain) => format!("{}.{domain}", self.hostname),
            None => self.hostname.clone(),
        }
    }
}

/// `spec.hostname` (a DNS label) or the pod's name, cut to 63 characters with trailing `-` and
/// `.` removed; and the domain from `spec.subdomain`.
pub fn pod_hostname(pod: &Pod, cluster_domain: &str) -> Result<PodHostname, HostnameError> {
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let spec = pod.spec.as_ref();
    let mut hostname = name;
    if let Some(h) = spec
        .and_then(|s| s.hostname.as_deref())
        .filter(|h| !h.is_empty())
    {
        let errors = is_dns1123_label(h);
        if !errors.is_empty() {
            return Err(HostnameError::InvalidHostname {
                hostname: h.to_owned(),
                errors,
            });
        }
        hostname = h;
    }
    let hostname = truncate_hostname(name, hostname)?;
    let domain = match spec
        .and_then(|s| s.subdomain.as_deref())
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(sub) => {
            let errors = is_dns1123_label(sub);
            if !errors.is_empty() {
                return Err(HostnameError::InvalidSubdomain {
                    subdomain: sub.to_owned(),
                    errors,
                });
            }
            let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
            Some(format!("{sub}.{namespace}.svc.{cluster_domain}"))
        }
    };
    Ok(PodHostname { hostname, domain })
}

/// Cuts `hostname` to [`HOSTNAME_MAX_LEN`] bytes and trims trailing `-` and `.` (which a cut
/// can expose); only a name made of nothing else is an error.
pub fn truncate_hostname(pod_name: &str, hostname: &str) -> Result<String, HostnameError> {
    if hostname.len() <= HOSTNAME_MAX_LEN {
        return Ok(hostname.to_owned());
    }
    // Names are ASCII (DNS labels or object names); stay on a character boundary regardless.
    let mut end = HOSTNAME_MAX_LEN;
    while !hostname.is_char_boundary(end) {
        end -= 1;
    }
    let truncated = hostname[..end].trim_end_matches(['-', '.']);
    if truncated.is_empty() {
        return Err(HostnameError::EmptyAfterTruncation {
            pod: pod_name.to_owned(),
            hostname: hostname.to_owned(),
        });
    }
    Ok(truncated.to_owned())
}

/// The hostname the sandbox's UTS namespace gets: `None` for host-network pods (they keep the
/// node's); the FQDN when `setHostnameAsFQDN` is true and there is a domain (at most 64
/// characters); otherwise the short hostname.
pub fn sandbox_hostname(pod: &Pod, cluster_domain: &str) -> Result<Option<String>, HostnameError> {
    let spec = pod.spec.as_ref();
    if spec.and_then(|s| s.host_network).unwrap_or(false) {
        return Ok(None);
    }
    let names = pod_hostname(pod, cluster_domain)?;
    let as_fqdn = spec.and_then(|s| s.set_hostname_as_fqdn).unwrap_or(false);
    if as_fqdn && names.domain.is_some() {
        let fqdn = names.fqdn();
        if fqdn.len() > FQDN_MAX_LEN {
            return Err(HostnameError::FqdnTooLong { fqdn });
        }
        return Ok(Some(fqdn));
    }
    Ok(Some(names.hostname))
}

/// Whether the kubelet mounts its `/etc/hosts` into the containers: once the pod has an IP (or
/// uses the host network), and not into a container that mounts something at `/etc/hosts`
/// itself (check that per container with [`mounts_own_etc_hosts`]).
pub fn should_mount_hosts_file(pod: &Pod, pod_ips: &[String]) -> bool {
    !pod_ips.is_empty()
        || pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false)
}

/// Whether the container has a volume mounted at `/etc/hosts`.
pub fn mounts_own_etc_hosts(container: &nodelet_api::k8s::api::core::v1::Container) -> bool {
    container
        .volume_mounts
        .iter()
        .flatten()
        .any(|m| m.mount_path == "/etc/hosts")
}

/// The managed `/etc/hosts` of a pod on the pod network: header, the localhost and IPv6 lines,
/// one line per pod IP (`<ip>\t<hostname>.<domain>\t<hostname>`, or `<ip>\t<hostname>` without
/// a domain), then the `hostAliases` section.
pub fn managed_hosts_file(
    pod_ips: &[String],
    names: &PodHostname,
    host_aliases: &[HostAlias],
) -> String {
    let mut out = String::from(MANAGED_HOSTS_HEADER);
    out.push_str("127.0.0.1\tlocalhost\n");
    out.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    out.push_str("fe00::0\tip6-localnet\n");
    out.push_str("fe00::0\tip6-mcastprefix\n");
    out.push_str("fe00::1\tip6-allnodes\n");
    out.push_str("fe00::2\tip6-allrouters\n");
    for ip in pod_ips {
        match &names.domain {
            Some(domain) => {
                out.push_str(&format!(
                    "{ip}\t{}.{domain}\t{}\n",
                    names.hostname, names.hostname
                ));
            }
            None => out.push_str(&format!("{ip}\t{}\n", names.hostname)),
        }
    }
    out.push_str(&host_alias_entries(host_aliases));
    out
}

/// A host-network pod's `/etc/hosts`: the node's file under its own header, then the aliases.
pub fn host_network_hosts_file(node_hosts: &str, host_aliases: &[HostAlias]) -> String {
    let mut out = String::from(MANAGED_HOSTS_HEADER_HOST_NETWORK);
    out.push_str(node_hosts);
    out.push_str(&host_alias_entries(host_aliases));
    out
}

/// A blank line, `# Entries added by HostAliases.`, and one `<ip>\t<name>\t<name>…` line per
/// alias; nothing without aliases.
pub fn host_alias_entries(host_aliases: &[HostAlias]) -> String {
    if host_aliases.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n# Entries added by HostAliases.\n");
    for alias in host_aliases {
        let names = alias.hostnames.as_deref().unwrap_or(&[]).join("\t");
        out.push_str(&format!("{}\t{names}\n", alias.ip));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodelet_api::k8s::api::core::v1::PodSpec;
    use nodelet_api::k8s::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(name: &str, hostname: Option<&str>, subdomain: Option<&str>, fqdn: Option<bool>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("e2e".into()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                hostname: hostname.map(Into::into),
                subdomain: subdomain.map(Into::into),
                set_hostname_as_fqdn: fqdn,
                ..PodSpec::default()
            }),
            ..Pod::default()
        }
    }

    const DOMAIN: &str = "cluster.local";

    #[test]
    fn hostname_and_domain() {
        let long = format!("{}-{}", "a".repeat(62), "b".repeat(10));
        let dotted = format!("{}.-x", "a".repeat(61));
        type Names<'a> = (String, Option<&'a str>);
        let cases: Vec<(Pod, Result<Names, String>)> = vec![
            (pod("web-0", None, None, None), Ok(("web-0".into(), None))),
            (
                pod("web-0", Some("db"), None, None),
                Ok(("db".into(), None)),
            ),
            (
                pod("web-0", None, Some("t"), None),
                Ok(("web-0".into(), Some("t.e2e.svc.cluster.local"))),
            ),
            // 63 characters then the trailing '-' is trimmed
            (pod(&long, None, None, None), Ok(("a".repeat(62), None))),
            (pod(&dotted, None, None, None), Ok(("a".repeat(61), None))),
            (
                pod("web-0", Some("Bad_Name"), None, None),
                Err(format!(
                    "pod Hostname \"Bad_Name\" is not a valid DNS label: {}",
                    is_dns1123_label("Bad_Name").join(";")
                )),
            ),
            (
                pod("web-0", None, Some("a.b"), None),
                Err("pod Subdomain \"a.b\" is not a valid DNS label: must not contain dots".into()),
            ),
        ];
        for (p, want) in cases {
            let got = pod_hostname(&p, DOMAIN)
                .map(|n| (n.hostname, n.domain))
                .map_err(|e| e.to_string());
            assert_eq!(
                got,
                want.map(|(h, d)| (h, d.map(String::from))),
                "{:?}",
                p.metadata.name
            );
        }
        let all_dashes = "-".repeat(70);
        assert_eq!(
            truncate_hostname("p", &all_dashes).unwrap_err().to_string(),
            format!("hostname for pod \"p\" was invalid: \"{all_dashes}\"")
        );
    }

    #[test]
    fn kernel_hostname() {
        // the e2e pod_hostnamefqdn cases
        let long = "hostfqdnveryveryveryverylongforfqdntobemorethan64bytes-abcde";
        let cases: Vec<(Pod, Result<Option<&str>, String>)> = vec![
            (pod("p", None, None, None), Ok(Some("p"))),
            (pod("p", None, None, Some(true)), Ok(Some("p"))),
            (pod("p", None, Some("t"), None), Ok(Some("p"))),
            (
                pod("p", None, Some("t"), Some(true)),
                Ok(Some("p.t.e2e.svc.cluster.local")),
            ),
            (
                pod(long, None, Some("t"), Some(true)),
                Err(format!(
                    "failed to construct FQDN from pod hostname and cluster domain, FQDN {long}.t.e2e.svc.cluster.local is too long (64 characters is the max, {} characters requested)",
                    long.len() + ".t.e2e.svc.cluster.local".len()
                )),
            ),
        ];
        for (p, want) in cases {
            let got = sandbox_hostname(&p, DOMAIN).map_err(|e| e.to_string());
            assert_eq!(got, want.map(|o| o.map(String::from)));
        }
        let mut host = pod("p", None, Some("t"), Some(true));
        host.spec.as_mut().unwrap().host_network = Some(true);
        assert_eq!(sandbox_hostname(&host, DOMAIN), Ok(None));
    }

    fn alias(ip: &str, names: &[&str]) -> HostAlias {
        HostAlias {
            ip: ip.into(),
            hostnames: Some(names.iter().map(|s| s.to_string()).collect()),
        }
    }

    const LOCAL: &str = "# Kubernetes-managed hosts file.\n\
        127.0.0.1\tlocalhost\n\
        ::1\tlocalhost ip6-localhost ip6-loopback\n\
        fe00::0\tip6-localnet\n\
        fe00::0\tip6-mcastprefix\n\
        fe00::1\tip6-allnodes\n\
        fe00::2\tip6-allrouters\n";

    #[test]
    fn hosts_files() {
        let plain = PodHostname {
            hostname: "web-0".into(),
            domain: None,
        };
        let with_domain = PodHostname {
            hostname: "web-0".into(),
            domain: Some("nginx.default.svc.cluster.local".into()),
        };
        let ips = vec!["10.244.0.5".to_owned(), "fd00::5".to_owned()];
        let aliases = vec![
            alias("127.0.0.1", &["foo.local", "bar.local"]),
            alias("10.1.2.3", &["foo.remote"]),
        ];
        let cases: Vec<(&[String], &PodHostname, &[HostAlias], String)> = vec![
            (
                &ips[..1],
                &plain,
                &[],
                format!("{LOCAL}10.244.0.5\tweb-0\n"),
            ),
            (
                &ips,
                &with_domain,
                &[],
                format!(
                    "{LOCAL}10.244.0.5\tweb-0.nginx.default.svc.cluster.local\tweb-0\n\
                     fd00::5\tweb-0.nginx.default.svc.cluster.local\tweb-0\n"
                ),
            ),
            (
                &ips[..1],
                &plain,
                &aliases,
                format!(
                    "{LOCAL}10.244.0.5\tweb-0\n\n# Entries added by HostAliases.\n\
                     127.0.0.1\tfoo.local\tbar.local\n10.1.2.3\tfoo.remote\n"
                ),
            ),
            (&[], &plain, &[], LOCAL.to_owned()),
        ];
        for (ips, names, aliases, want) in cases {
            assert_eq!(managed_hosts_file(ips, names, aliases), want);
        }
        assert_eq!(
            host_network_hosts_file("127.0.0.1 localhost\n", &aliases[1..]),
            "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n\n# Entries added by HostAliases.\n10.1.2.3\tfoo.remote\n"
        );
    }

    #[test]
    fn when_the_hosts_file_is_mounted() {
        let mut p = pod("p", None, None, None);
        assert!(!should_mount_hosts_file(&p, &[]));
        assert!(should_mount_hosts_file(&p, &["10.0.0.1".into()]));
        p.spec.as_mut().unwrap().host_network = Some(true);
        assert!(should_mount_hosts_file(&p, &[]));
        let c = nodelet_api::k8s::api::core::v1::Container {
            volume_mounts: Some(vec![nodelet_api::k8s::api::core::v1::VolumeMount {
                mount_path: "/etc/hosts".into(),
                name: "h".into(),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert!(mounts_own_etc_hosts(&c));
        assert!(!mounts_own_etc_hosts(&Default::default()));
    }
}
