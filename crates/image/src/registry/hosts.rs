//! Per-registry settings: plain HTTP for registries configured insecure, extra CAs from
//! `certs.d` directories and the config file, and mirrors tried before the registry itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `[registries."host:port"]` in the configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySettings {
    /// Plain HTTP is allowed (and used) for this registry.
    #[serde(default)]
    pub insecure: bool,
    /// An extra CA certificate (PEM) trusted for this registry.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Base URLs tried in order before the registry, e.g. `https://mirror.example:5000`.
    #[serde(default)]
    pub mirrors: Vec<String>,
}

/// Where one request can go: a mirror or the registry itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://host:port` (no trailing slash).
    pub base_url: String,
    /// `host[:port]` of the endpoint, the key for its certs.d directory.
    pub host: String,
    /// Mirrors get no credentials: those belong to the registry the image names.
    pub is_mirror: bool,
}

/// The settings of every registry, and the `certs.d` roots searched for CAs.
#[derive(Debug, Clone, Default)]
pub struct RegistryHosts {
    settings: BTreeMap<String, RegistrySettings>,
    cert_dirs: Vec<PathBuf>,
}

impl RegistryHosts {
    /// The `certs.d` roots Docker and containers/image use.
    pub fn system_cert_dirs() -> Vec<PathBuf> {
        vec![
            "/etc/docker/certs.d".into(),
            "/etc/containers/certs.d".into(),
        ]
    }

    pub fn new(
        settings: BTreeMap<String, RegistrySettings>,
        cert_dirs: Vec<PathBuf>,
    ) -> RegistryHosts {
        RegistryHosts {
            settings,
            cert_dirs,
        }
    }

    pub fn settings(&self, registry: &str) -> RegistrySettings {
        self.settings.get(registry).cloned().unwrap_or_default()
    }

    /// Mirrors first, then the registry. `docker.io` is served by `registry-1.docker.io`.
    pub fn endpoints(&self, registry: &str) -> Vec<Endpoint> {
        let settings = self.settings(registry);
        let mut endpoints: Vec<Endpoint> = settings
            .mirrors
            .iter()
            .map(|mirror| {
                let base_url = mirror.trim_end_matches('/').to_string();
                let host = base_url
                    .split_once("://")
                    .map_or(base_url.as_str(), |(_, h)| h);
                let host = host.split('/').next().unwrap_or_default().to_string();
                Endpoint {
                    base_url,
                    host,
                    is_mirror: true,
                }
            })
            .collect();
        let host = if registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            registry
        };
        let scheme = if settings.insecure { "http" } else { "https" };
        endpoints.push(Endpoint {
            base_url: format!("{scheme}://{host}"),
            host: host.to_string(),
            is_mirror: false,
        });
        endpoints
    }

    /// CA files trusted for `host` in addition to the system roots: every `*.crt` in
    /// `<certs.d>/<host>/`, plus the configured `ca_file`.
    pub fn extra_ca_files(&self, registry: &str, host: &str) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for root in &self.cert_dirs {
            files.extend(crt_files(&root.join(host)));
        }
        if let Some(ca) = self.settings(registry).ca_file {
            files.push(ca);
        }
        files
    }
}

fn crt_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "crt"))
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_come_first_and_get_no_credentials() {
        let mut settings = BTreeMap::new();
        settings.insert(
            "reg.example:5443".to_string(),
            RegistrySettings {
                mirrors: vec!["https://mirror.example:5000/".into()],
                ..Default::default()
            },
        );
        let hosts = RegistryHosts::new(settings, Vec::new());
        let endpoints = hosts.endpoints("reg.example:5443");
        assert_eq!(endpoints[0].base_url, "https://mirror.example:5000");
        assert_eq!(endpoints[0].host, "mirror.example:5000");
        assert!(endpoints[0].is_mirror);
        assert_eq!(endpoints[1].base_url, "https://reg.example:5443");
        assert!(!endpoints[1].is_mirror);
    }

    #[test]
    fn only_insecure_registries_use_plain_http() {
        let mut settings = BTreeMap::new();
        settings.insert(
            "127.0.0.1:5000".to_string(),
            RegistrySettings {
                insecure: true,
                ..Default::default()
            },
        );
        let hosts = RegistryHosts::new(settings, Vec::new());
        assert_eq!(
            hosts.endpoints("127.0.0.1:5000")[0].base_url,
            "http://127.0.0.1:5000"
        );
        assert_eq!(
            hosts.endpoints("127.0.0.1:5001")[0].base_url,
            "https://127.0.0.1:5001"
        );
        assert_eq!(
            hosts.endpoints("docker.io")[0].base_url,
            "https://registry-1.docker.io"
        );
    }

    #[test]
    fn finds_ca_files_in_certs_d() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("reg:5000")).unwrap();
        std::fs::write(dir.path().join("reg:5000/ca.crt"), "x").unwrap();
        std::fs::write(dir.path().join("reg:5000/client.key"), "x").unwrap();
        let hosts = RegistryHosts::new(BTreeMap::new(), vec![dir.path().to_path_buf()]);
        assert_eq!(
            hosts.extra_ca_files("reg:5000", "reg:5000"),
            vec![dir.path().join("reg:5000/ca.crt")]
        );
        assert!(hosts.extra_ca_files("other", "other").is_empty());
    }
}
