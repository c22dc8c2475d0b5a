//! The `nodelet run -f FILE` source: one YAML stream holding a Pod and the objects it refers
//! to (Secrets, ConfigMaps, ServiceAccounts, Services, RuntimeClasses), read without an API
//! server. The Pod gets what the API server and the kubelet's file source would give it:
//! namespace `default` when none is set, a name from `generateName`, a uid, the node's name,
//! the `kubernetes.io/config.source: file` annotation, API defaults; then it is validated as a
//! create would be, so an invalid pod fails with the API server's message.

use std::collections::BTreeMap;

use nodelet_api::k8s::api::core::v1::{ConfigMap, Pod, Secret, Service, ServiceAccount};
use nodelet_api::k8s::api::node::v1::RuntimeClass;
use nodelet_api::validation::PodValidationOptions;
use serde_json::Value;

/// The annotation that names where a pod came from (`file`, `http`, `api`).
pub const CONFIG_SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";

/// Why the file gave no runnable pod.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {message}")]
    Yaml { path: String, message: String },
    #[error("{path}: document {index}: {message}")]
    Document {
        path: String,
        index: usize,
        message: String,
    },
    #[error("{path}: no Pod in the file")]
    NoPod { path: String },
    #[error("{path}: {count} Pods in the file; nodelet run takes exactly one")]
    SeveralPods { path: String, count: usize },
    /// The API server's 422 text: `Pod "x" is invalid: ...`.
    #[error("{0}")]
    Invalid(String),
}

/// Everything the file holds, by kind (under an API server: what the pod's namespace holds).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodObjects {
    pub secrets: Vec<Secret>,
    pub config_maps: Vec<ConfigMap>,
    pub service_accounts: Vec<ServiceAccount>,
    pub services: Vec<Service>,
    pub runtime_classes: Vec<RuntimeClass>,
}

impl PodObjects {
    pub fn runtime_class(&self, name: &str) -> Option<&RuntimeClass> {
        self.runtime_classes
            .iter()
            .find(|rc| rc.metadata.name.as_deref() == Some(name))
    }

    pub fn secret(&self, namespace: &str, name: &str) -> Option<&Secret> {
        self.secrets.iter().find(|s| {
            in_namespace(&s.metadata, namespace) && s.metadata.name.as_deref() == Some(name)
        })
    }

    pub fn config_map(&self, namespace: &str, name: &str) -> Option<&ConfigMap> {
        self.config_maps.iter().find(|c| {
            in_namespace(&c.metadata, namespace) && c.metadata.name.as_deref() == Some(name)
        })
    }

    pub fn service_account(&self, namespace: &str, name: &str) -> Option<&ServiceAccount> {
        self.service_accounts.iter().find(|s| {
            in_namespace(&s.metadata, namespace) && s.metadata.name.as_deref() == Some(name)
        })
    }
}

fn in_namespace(
    meta: &nodelet_api::k8s::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ns: &str,
) -> bool {
    meta.namespace.as_deref().unwrap_or("default") == ns
}

/// The pod and its objects.
#[derive(Debug, Clone)]
pub struct PodManifest {
    pub pod: Pod,
    pub objects: PodObjects,
}

/// How the pod is completed before validation.
#[derive(Debug, Clone)]
pub struct FileSourceOptions {
    /// `spec.nodeName` when the file sets none.
    pub node_name: String,
    /// `metadata.uid` (the caller makes a fresh one).
    pub uid: String,
    /// Appended to `generateName` when the pod has no name.
    pub name_suffix: String,
}

/// Parses `text` (from `path`, for messages) into a prepared, validated pod and its objects.
pub fn read_manifest(
    path: &str,
    text: &str,
    options: &FileSourceOptions,
) -> Result<PodManifest, ManifestError> {
    let documents = parse_documents(path, text)?;
    let mut pods = Vec::new();
    let mut objects = PodObjects::default();
    for (index, doc) in documents.into_iter().enumerate() {
        let index = index + 1;
        let kind = doc
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let bad = |message: String| ManifestError::Document {
            path: path.to_owned(),
            index,
            message,
        };
        let decode_error = |e: serde_json::Error| bad(format!("decoding {kind}: {e}"));
        match kind.as_str() {
            "Pod" => pods.push(serde_json::from_value::<Pod>(doc).map_err(decode_error)?),
            "Secret" => {
                let mut secret: Secret = serde_json::from_value(doc).map_err(decode_error)?;
                nodelet_api::defaults::objects::default_secret(&mut secret);
                fold_string_data(&mut secret);
                objects.secrets.push(secret);
            }
            "ConfigMap" => objects
                .config_maps
                .push(serde_json::from_value(doc).map_err(decode_error)?),
            "ServiceAccount" => objects
                .service_accounts
                .push(serde_json::from_value(doc).map_err(decode_error)?),
            "Service" => {
                let mut service: Service = serde_json::from_value(doc).map_err(decode_error)?;
                nodelet_api::defaults::objects::default_service(&mut service);
                objects.services.push(service);
            }
            "RuntimeClass" => {
                let mut rc: RuntimeClass = serde_json::from_value(doc).map_err(decode_error)?;
                nodelet_api::defaults::objects::default_runtime_class(&mut rc);
                objects.runtime_classes.push(rc);
            }
            "" => return Err(bad("no kind".into())),
            other => {
                return Err(bad(format!(
                    "kind {other} is not supported here (Pod, Secret, ConfigMap, ServiceAccount, Service, RuntimeClass)"
                )));
            }
        }
    }
    let pod = match pods.len() {
        0 => {
            return Err(ManifestError::NoPod {
                path: path.to_owned(),
            });
        }
        1 => pods.pop().unwrap_or_default(),
        count => {
            return Err(ManifestError::SeveralPods {
                path: path.to_owned(),
                count,
            });
        }
    };
    let mut pod = prepare_pod(pod, options)?;
    set_class_overhead(&mut pod, &objects);
    Ok(PodManifest { pod, objects })
}

/// The RuntimeClass's `overhead.podFixed` as the pod's `spec.overhead`, as the API server's
/// RuntimeClass admission sets it (the file has no API server); one the pod sets stays.
fn set_class_overhead(pod: &mut Pod, objects: &PodObjects) {
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    if spec.overhead.as_ref().is_some_and(|o| !o.is_empty()) {
        return;
    }
    let fixed = spec
        .runtime_class_name
        .as_deref()
        .and_then(|name| objects.runtime_class(name))
        .and_then(|class| class.overhead.as_ref())
        .and_then(|overhead| overhead.pod_fixed.clone());
    if fixed.is_some() {
        spec.overhead = fixed;
    }
}

/// The YAML stream's documents as JSON values; empty documents are skipped and `kind: List`
/// is flattened into its items. Octal `0644` reads as kubectl reads it; duplicate keys are
/// errors.
pub fn parse_documents(path: &str, text: &str) -> Result<Vec<Value>, ManifestError> {
    let mut options = serde_saphyr::Options::default();
    options.legacy_octal_numbers = true;
    options.duplicate_keys = serde_saphyr::options::DuplicateKeyPolicy::Error;
    let docs: Vec<Value> =
        serde_saphyr::from_multiple_with_options(text, options).map_err(|e| {
            ManifestError::Yaml {
                path: path.to_owned(),
                message: e.to_string(),
            }
        })?;
    let mut out = Vec::new();
    for doc in docs {
        match doc {
            Value::Null => {}
            Value::Object(ref map) if map.get("kind").and_then(Value::as_str) == Some("List") => {
                if let Some(Value::Array(items)) = map.get("items") {
                    out.extend(items.iter().cloned());
                }
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

/// `stringData` folded into `data`, as the API server does on write.
fn fold_string_data(secret: &mut Secret) {
    if let Some(string_data) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(BTreeMap::new);
        for (k, v) in string_data {
            data.insert(k, nodelet_api::k8s::ByteString(v.into_bytes()));
        }
    }
}

/// Namespace, name, uid, node name and source annotation; API defaults; create validation.
pub fn prepare_pod(mut pod: Pod, options: &FileSourceOptions) -> Result<Pod, ManifestError> {
    let meta = &mut pod.metadata;
    if meta.namespace.as_deref().is_none_or(str::is_empty) {
        meta.namespace = Some("default".into());
    }
    if meta.name.as_deref().is_none_or(str::is_empty)
        && let Some(prefix) = meta.generate_name.as_deref().filter(|p| !p.is_empty())
    {
        meta.name = Some(format!("{prefix}{}", options.name_suffix));
    }
    meta.uid = Some(options.uid.clone());
    meta.annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(CONFIG_SOURCE_ANNOTATION.into(), "file".into());
    nodelet_api::defaults::pod::default_pod(&mut pod);
    if let Some(spec) = pod.spec.as_mut()
        && spec.node_name.as_deref().is_none_or(str::is_empty)
    {
        spec.node_name = Some(options.node_name.clone());
    }
    let errors =
        nodelet_api::validation::pod::validate_pod_create(&pod, &PodValidationOptions::default());
    if !errors.is_empty() {
        let name = pod.metadata.name.as_deref().unwrap_or("");
        return Err(ManifestError::Invalid(errors.invalid_message("Pod", name)));
    }
    Ok(pod)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> FileSourceOptions {
        FileSourceOptions {
            node_name: "node-1".into(),
            uid: "0b1c2d3e-0000-4000-8000-000000000001".into(),
            name_suffix: "abcde".into(),
        }
    }

    #[test]
    fn reads_a_pod_and_its_objects() {
        let text = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: fast}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {token: s3cret}
---
---
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: fast}
handler: crun
---
apiVersion: v1
kind: Pod
metadata: {generateName: demo-}
spec:
  runtimeClassName: fast
  restartPolicy: Never
  containers:
  - name: main
    image: busybox:1.36
    command: ["sh", "-c", "echo hi"]
"#;
        let manifest = read_manifest("pod.yaml", text, &options()).unwrap();
        let pod = &manifest.pod;
        assert_eq!(pod.metadata.name.as_deref(), Some("demo-abcde"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("node-1"));
        assert_eq!(spec.enable_service_links, Some(true));
        assert_eq!(
            spec.containers[0].image_pull_policy.as_deref(),
            Some("IfNotPresent")
        );
        assert_eq!(manifest.objects.config_maps.len(), 1);
        assert_eq!(
            manifest.objects.runtime_class("fast").unwrap().handler,
            "crun"
        );
        let secret = manifest.objects.secret("default", "creds").unwrap();
        assert_eq!(secret.data.as_ref().unwrap()["token"].0, b"s3cret");
    }

    #[test]
    fn the_runtime_class_overhead_becomes_the_pods() {
        let text = "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: fast}\nhandler: crun\noverhead:\n  podFixed: {cpu: 250m, memory: 120Mi}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  runtimeClassName: fast\n  containers:\n  - name: main\n    image: busybox\n";
        let manifest = read_manifest("pod.yaml", text, &options()).unwrap();
        let overhead = manifest.pod.spec.unwrap().overhead.unwrap();
        assert_eq!(overhead["cpu"].0, "250m");
        assert_eq!(overhead["memory"].0, "120Mi");
    }

    #[test]
    fn an_invalid_pod_gets_the_api_message() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec:\n  containers:\n  - name: main\n    image: busybox\n";
        let err = read_manifest("pod.yaml", text, &options())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("Pod \"Bad_Name\" is invalid: metadata.name: Invalid value"),
            "{err}"
        );
    }

    #[test]
    fn exactly_one_pod_and_known_kinds() {
        let err =
            read_manifest("f", "kind: ConfigMap\nmetadata: {name: x}\n", &options()).unwrap_err();
        assert!(matches!(err, ManifestError::NoPod { .. }), "{err}");
        let err =
            read_manifest("f", "kind: Deployment\nmetadata: {name: x}\n", &options()).unwrap_err();
        assert!(
            err.to_string().contains("kind Deployment is not supported"),
            "{err}"
        );
        let err = read_manifest("f", "a: 1\na: 2\n", &options()).unwrap_err();
        assert!(matches!(err, ManifestError::Yaml { .. }), "{err}");
    }
}
