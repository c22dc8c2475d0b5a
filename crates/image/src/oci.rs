//! The image formats a registry serves: OCI and Docker schema2 manifests, OCI indexes and
//! Docker manifest lists, image configs, and platforms. Our own small serde types: they cover
//! both media-type families and keep the raw bytes' digest the only identity.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// Every manifest type we can use, most preferred first, for the `Accept` header (some
/// registries answer 404 for a manifest whose type the client did not list).
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// A content descriptor: what a manifest says about a blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image manifest (OCI or Docker schema2: the same shape).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// An OCI index or Docker manifest list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// What a manifest document turned out to be.
#[derive(Debug, Clone)]
pub enum ManifestKind {
    Image(Manifest),
    Index(Index),
}

impl ManifestKind {
    /// Parses by the media type the registry sent, falling back to the document's own
    /// `mediaType` and finally its shape (OCI allows the field to be absent).
    pub fn parse(content_type: &str, bytes: &[u8]) -> Result<ManifestKind, String> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format!("manifest is not JSON: {e}"))?;
        let declared = value
            .get("mediaType")
            .and_then(|m| m.as_str())
            .unwrap_or("");
        let media_type = match content_type.split(';').next().unwrap_or("").trim() {
            t @ (OCI_MANIFEST
            | OCI_INDEX
            | DOCKER_MANIFEST
            | DOCKER_MANIFEST_LIST
            | DOCKER_SCHEMA1
            | DOCKER_SCHEMA1_SIGNED) => t,
            _ => declared,
        };
        let is_index = match media_type {
            OCI_INDEX | DOCKER_MANIFEST_LIST => true,
            OCI_MANIFEST | DOCKER_MANIFEST => false,
            DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED => {
                return Err("Docker schema 1 manifests are not supported".into());
            }
            _ => value.get("manifests").is_some(),
        };
        if is_index {
            serde_json::from_value(value)
                .map(ManifestKind::Index)
                .map_err(|e| format!("invalid index: {e}"))
        } else {
            serde_json::from_value(value)
                .map(ManifestKind::Image)
                .map_err(|e| format!("invalid manifest: {e}"))
        }
    }
}

/// The image configuration blob (OCI and Docker share it).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageConfigFile {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default)]
    pub config: ContainerConfig,
    #[serde(default)]
    pub rootfs: RootFs,
}

/// The runtime defaults an image carries (Docker's capitalised field names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerConfig {
    #[serde(rename = "User", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(rename = "Env", default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(
        rename = "Entrypoint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub working_dir: Option<String>,
    #[serde(
        rename = "StopSignal",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_signal: Option<String>,
    #[serde(
        rename = "ExposedPorts",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(rename = "Labels", default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// `os/architecture[/variant]`, normalised the way container runtimes compare them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

impl Platform {
    /// The platform of this machine, e.g. `linux/amd64`.
    pub fn host() -> Platform {
        let (architecture, variant) = normalize_arch(std::env::consts::ARCH, None);
        Platform {
            os: std::env::consts::OS.into(),
            architecture,
            variant,
            os_version: None,
        }
    }

    /// Parses `os/arch[/variant]` (as `--platform` takes it), normalising aliases.
    pub fn parse(text: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let (os, arch, variant) = match parts.as_slice() {
            [os, arch] => (*os, *arch, None),
            [os, arch, variant] => (*os, *arch, Some(*variant)),
            _ => {
                return Err(format!(
                    "invalid platform {text:?}: expected os/arch[/variant]"
                ));
            }
        };
        if os.is_empty() || arch.is_empty() || variant == Some("") {
            return Err(format!(
                "invalid platform {text:?}: expected os/arch[/variant]"
            ));
        }
        let (architecture, variant) = normalize_arch(arch, variant);
        Ok(Platform {
            os: os.to_ascii_lowercase(),
            architecture,
            variant,
            os_version: None,
        })
    }

    /// Whether an index entry for `offered` can run here, when `self` is what we want.
    /// An unspecified wanted variant accepts any; arm64's default variant is v8.
    pub fn matches(&self, offered: &Platform) -> bool {
        let (arch, variant) = normalize_arch(&offered.architecture, offered.variant.as_deref());
        if self.os != offered.os.to_ascii_lowercase() || self.architecture != arch {
            return false;
        }
        match (&self.variant, &variant) {
            (None, _) => true,
            (Some(wanted), Some(got)) => wanted == got,
            (Some(wanted), None) => default_variant(&arch) == Some(wanted.as_str()),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

fn default_variant(arch: &str) -> Option<&'static str> {
    match arch {
        "arm64" => Some("v8"),
        "arm" => Some("v7"),
        _ => None,
    }
}

/// Maps architecture aliases (`x86_64`, `aarch64`, `armhf`, ...) to the OCI names.
fn normalize_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.map(str::to_ascii_lowercase);
    match arch.as_str() {
        "x86_64" | "x86-64" | "amd64" => ("amd64".into(), variant),
        "i386" | "i486" | "i586" | "i686" | "386" => ("386".into(), None),
        "aarch64" | "arm64" => {
            let variant = match variant.as_deref() {
                Some("8") | Some("v8") => Some("v8".into()),
                other => other.map(String::from),
            };
            ("arm64".into(), variant)
        }
        "armhf" => ("arm".into(), Some("v7".into())),
        "armel" => ("arm".into(), Some("v6".into())),
        "arm" => {
            let variant = match variant.as_deref() {
                Some(v @ ("5" | "6" | "7" | "8")) => Some(format!("v{v}")),
                Some(v) => Some(v.into()),
                None => Some("v7".into()),
            };
            ("arm".into(), variant)
        }
        _ => (arch, variant),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Platform {
        Platform::parse(text).unwrap()
    }

    #[test]
    fn platforms_normalise_aliases() {
        assert_eq!(p("linux/x86_64").to_string(), "linux/amd64");
        assert_eq!(p("linux/aarch64").to_string(), "linux/arm64");
        assert_eq!(p("linux/arm64/8").to_string(), "linux/arm64/v8");
        assert_eq!(p("linux/armhf").to_string(), "linux/arm/v7");
        assert_eq!(p("linux/arm").to_string(), "linux/arm/v7");
        assert_eq!(p("linux/i686").to_string(), "linux/386");
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux/").is_err());
        assert!(Platform::parse("linux/arm/").is_err());
    }

    #[test]
    fn matching_honours_variants_and_defaults() {
        assert!(p("linux/arm64/v8").matches(&p("linux/arm64")));
        assert!(p("linux/arm64").matches(&p("linux/arm64/v8")));
        assert!(!p("linux/arm/v6").matches(&p("linux/arm/v7")));
        assert!(p("linux/arm/v7").matches(&p("linux/arm")));
        assert!(!p("linux/amd64").matches(&p("linux/arm64/v8")));
        assert!(!p("linux/amd64").matches(&p("windows/amd64")));
    }

    #[test]
    fn manifests_parse_by_content_type_then_shape() {
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(
            ManifestKind::parse("", index),
            Ok(ManifestKind::Index(_))
        ));
        let image = br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:00","size":1},"layers":[]}"#;
        assert!(matches!(
            ManifestKind::parse(DOCKER_MANIFEST, image),
            Ok(ManifestKind::Image(_))
        ));
        let v1 = br#"{"schemaVersion":1}"#;
        let err = ManifestKind::parse(
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            v1,
        )
        .unwrap_err();
        assert!(err.contains("schema 1"), "{err}");
        assert!(ManifestKind::parse(OCI_MANIFEST, b"not json").is_err());
    }
}
