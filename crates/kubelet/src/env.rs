//! A container's environment (spec §5.2, §5.3): image `ENV` < service variables < `envFrom` (in
//! list order) < `env` (in list order), with `$(VAR)` expansion and `valueFrom` sources.
//!
//! Two lists come out, because upstream splits the work between the kubelet and the runtime:
//! - the *kubelet* list (what the kubelet sends over CRI): `envFrom`, `env`, then the service
//!   variables no user variable shadows. `command`/`args` and `subPathExpr` expand against this
//!   list only, so `$(PATH)` never sees the image's `PATH`;
//! - the *process* list: the image's `ENV` with the kubelet list applied on top (same-named
//!   entries replaced where they stand, new ones appended), which is what containerd puts in the
//!   OCI spec and what [`make_environment`] hands to the runtime.
//!
//! Upstream builds the kubelet list from a Go map, so its order is random; ours is stable:
//! first definition order, a redefinition keeping the first position and the last value.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use nodelet_api::k8s::api::core::v1::{ConfigMap, Container, EnvVarSource, Pod, Secret, Service};
use nodelet_api::k8s::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use nodelet_api::names::is_relaxed_env_var_name;

use crate::downward::{self, DownwardError};
use crate::expansion::{self, Lookup};
use crate::service_env;

/// A lookup that failed for another reason than "not found" (a cache or API error); its text
/// becomes the container's waiting message as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// What the node knows about Services.
#[derive(Debug, Clone)]
pub enum ServiceList<'a> {
    /// No API server (standalone kubelet, `nodelet run`): no Service variables at all.
    NoApiServer,
    /// The Service informer has not listed once yet.
    NotYetSynced,
    /// Every Service the node has seen, in any namespace.
    Listed(Cow<'a, [Service]>),
}

/// Where the environment's inputs come from. The kubelet implements it over its caches and the
/// runtime's view of the sandbox; [`StaticSources`] holds plain objects (`nodelet run`, tests).
pub trait EnvSources {
    /// The ConfigMap `namespace/name`; `Ok(None)` when it does not exist.
    fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Cow<'_, ConfigMap>>, SourceError>;
    /// The Secret `namespace/name` (with `data` filled); `Ok(None)` when it does not exist.
    fn secret(&self, namespace: &str, name: &str) -> Result<Option<Cow<'_, Secret>>, SourceError>;
    /// The Services for the docker-link variables.
    fn services(&self) -> ServiceList<'_>;
    /// The node's allocatable resources (`status.allocatable`), the default of unset limits.
    fn node_allocatable(&self) -> Cow<'_, BTreeMap<String, ApiQuantity>>;
    /// The pod sandbox's IPs as the network plugin reported them, in any order.
    fn pod_ips(&self) -> Cow<'_, [String]>;
    /// The node's IPs, primary first.
    fn host_ips(&self) -> Result<Cow<'_, [String]>, SourceError>;
}

/// Why no environment could be made: the container waits with `CreateContainerConfigError`
/// and this text (prefixed `Error: ` in the `Failed` event). Texts are upstream's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// The pod was not defaulted (`enableServiceLinks` is always set by the API server).
    #[error("nil pod.spec.enableServiceLinks encountered, cannot construct envvars")]
    NilEnableServiceLinks,
    #[error("services have not yet been read at least once, cannot construct envvars")]
    ServicesNotSynced,
    #[error("configmap {} not found", go_quote(.name))]
    ConfigMapNotFound { name: String },
    #[error("secret {} not found", go_quote(.name))]
    SecretNotFound { name: String },
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKeyNotFound {
        key: String,
        namespace: String,
        name: String,
    },
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKeyNotFound {
        key: String,
        namespace: String,
        name: String,
    },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Downward(#[from] DownwardError),
}

fn go_quote(s: &str) -> String {
    nodelet_api::field_errors::go_quote(s)
}

/// Event reason for skipped `envFrom` keys (a Warning on the pod).
pub const INVALID_ENV_VAR_NAMES_REASON: &str = "InvalidEnvironmentVariableNames";

/// A Warning event to record on the pod while the environment was still made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvWarning {
    pub reason: &'static str,
    pub message: String,
}

impl EnvWarning {
    /// `Keys [a, b] from the EnvFrom configMap ns/name were skipped since they are considered
    /// invalid environment variable names.` (`kind` is `configMap` or `secret`; keys sorted).
    pub fn invalid_keys(
        kind: &str,
        namespace: &str,
        name: &str,
        mut keys: Vec<String>,
    ) -> EnvWarning {
        keys.sort();
        EnvWarning {
            reason: INVALID_ENV_VAR_NAMES_REASON,
            message: format!(
                "Keys [{}] from the EnvFrom {kind} {namespace}/{name} were skipped since they are considered invalid environment variable names.",
                keys.join(", ")
            ),
        }
    }
}

/// The assembled environment (see the module docs for the two lists).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// What the kubelet computes: the list `command`, `args` and `subPathExpr` expand against.
    pub kubelet: Vec<(String, String)>,
    /// The process's final environment: image `ENV` overlaid with [`Environment::kubelet`].
    pub process: Vec<(String, String)>,
    /// Events to record on the pod.
    pub warnings: Vec<EnvWarning>,
}

impl Environment {
    /// The process environment as `NAME=value` strings (the OCI spec form).
    pub fn process_strings(&self) -> Vec<String> {
        self.process
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }
}

/// An insertion-ordered map: a redefinition keeps the first position and takes the new value.
#[derive(Debug, Default)]
struct OrderedVars {
    entries: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl OrderedVars {
    fn set(&mut self, name: String, value: String) {
        match self.index.get(&name) {
            Some(&i) => self.entries[i].1 = value,
            None => {
                self.index.insert(name.clone(), self.entries.len());
                self.entries.push((name, value));
            }
        }
    }

    fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }
}

impl Lookup for OrderedVars {
    fn get_var(&self, name: &str) -> Option<&str> {
        self.index.get(name).map(|&i| self.entries[i].1.as_str())
    }
}

/// Whether the pod came from a file or URL rather than the API server (its
/// `kubernetes.io/config.source` annotation says so).
pub fn is_static_pod(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("kubernetes.io/config.source"))
        .is_some_and(|source| source != "api")
}

/// Builds `container`'s environment exactly as spec §5.2 orders it. `image_env` is the image
/// config's `Env` (`NAME=value` entries; entries without `=` are ignored).
///
/// Service variables are computed first (§5.6); then `envFrom` sources in order (missing
/// `optional` objects skipped; keys that are not environment variable names under the relaxed
/// grammar skipped with an [`EnvWarning`]); then `env` in order, where a non-empty `value` is
/// expanded against the variables so far and then the service variables, a `valueFrom` is
/// resolved without expansion (an `optional` reference that is missing leaves the variable out
/// entirely), and anything else is the empty string.
pub fn make_environment<S: EnvSources + ?Sized>(
    pod: &Pod,
    container: &Container,
    image_env: &[String],
    sources: &S,
) -> Result<Environment, EnvError> {
    let spec = pod.spec.as_ref();
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let enable_service_links = spec
        .and_then(|s| s.enable_service_links)
        .ok_or(EnvError::NilEnableServiceLinks)?;

    let service_vars: Vec<(String, String)> = match sources.services() {
        ServiceList::NoApiServer => Vec::new(),
        ServiceList::NotYetSynced if is_static_pod(pod) => Vec::new(),
        ServiceList::NotYetSynced => return Err(EnvError::ServicesNotSynced),
        ServiceList::Listed(services) => {
            service_env::service_env_vars(namespace, enable_service_links, &services)
        }
    };
    let service_map: HashMap<String, String> = service_vars.iter().cloned().collect();

    let mut objects = ObjectCache::new(sources, namespace);
    let mut vars = OrderedVars::default();
    let mut warnings = Vec::new();

    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or("");
        let (kind, name, data): (&str, &str, Vec<(String, String)>) =
            if let Some(r) = &from.config_map_ref {
                match objects.config_map(&r.name, r.optional.unwrap_or(false))? {
                    None => continue,
                    Some(cm) => ("configMap", &r.name, config_map_data(cm)),
                }
            } else if let Some(r) = &from.secret_ref {
                match objects.secret(&r.name, r.optional.unwrap_or(false))? {
                    None => continue,
                    Some(secret) => ("secret", &r.name, secret_data(secret)),
                }
            } else {
                continue;
            };
        let mut invalid = Vec::new();
        for (key, value) in data {
            let key = format!("{prefix}{key}");
            if is_relaxed_env_var_name(&key).is_empty() {
                vars.set(key, value);
            } else {
                invalid.push(key);
            }
        }
        if !invalid.is_empty() {
            warnings.push(EnvWarning::invalid_keys(kind, namespace, name, invalid));
        }
    }

    let mut sorted_pod_ips: Option<Vec<String>> = None;
    for var in container.env.iter().flatten() {
        let value = match (var.value.as_deref(), &var.value_from) {
            (Some(v), _) if !v.is_empty() => {
                let scopes: [&dyn Lookup; 2] = [&vars, &service_map];
                expansion::expand(v, |name| expansion::lookup_in(&scopes, name))
            }
            (_, Some(from)) => {
                let pod_ips = sorted_pod_ips.get_or_insert_with(|| {
                    let node_ip = sources.host_ips().ok().and_then(|ips| ips.first().cloned());
                    downward::sort_pod_ips(&sources.pod_ips(), node_ip.as_deref())
                });
                match value_from(pod, container, from, pod_ips, sources, &mut objects)? {
                    Some(v) => v,
                    None => continue,
                }
            }
            _ => String::new(),
        };
        vars.set(var.name.clone(), value);
    }

    let mut kubelet = vars.entries.clone();
    kubelet.extend(
        service_vars
            .into_iter()
            .filter(|(name, _)| !vars.contains(name)),
    );
    let process = overlay(image_env, &kubelet);
    Ok(Environment {
        kubelet,
        process,
        warnings,
    })
}

/// Resolves one `valueFrom`; `None` when an optional reference is missing.
fn value_from<S: EnvSources + ?Sized>(
    pod: &Pod,
    container: &Container,
    from: &EnvVarSource,
    pod_ips: &[String],
    sources: &S,
    objects: &mut ObjectCache<'_, S>,
) -> Result<Option<String>, EnvError> {
    if let Some(field) = &from.field_ref {
        let host_ips = || {
            sources
                .host_ips()
                .map(|ips| ips.into_owned())
                .map_err(|e| e.0)
        };
        return Ok(Some(downward::pod_field_value(
            pod, field, pod_ips, host_ips,
        )?));
    }
    if let Some(resource) = &from.resource_field_ref {
        let allocatable = sources.node_allocatable();
        return Ok(Some(downward::container_resource_value(
            resource,
            pod,
            container,
            &allocatable,
        )?));
    }
    let namespace = objects.namespace.to_owned();
    if let Some(r) = &from.config_map_key_ref {
        let optional = r.optional.unwrap_or(false);
        let Some(cm) = objects.config_map(&r.name, optional)? else {
            return Ok(None);
        };
        return match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
            Some(v) => Ok(Some(v.clone())),
            None if optional => Ok(None),
            None => Err(EnvError::ConfigMapKeyNotFound {
                key: r.key.clone(),
                namespace,
                name: r.name.clone(),
            }),
        };
    }
    if let Some(r) = &from.secret_key_ref {
        let optional = r.optional.unwrap_or(false);
        let Some(secret) = objects.secret(&r.name, optional)? else {
            return Ok(None);
        };
        return match secret.data.as_ref().and_then(|d| d.get(&r.key)) {
            Some(v) => Ok(Some(String::from_utf8_lossy(&v.0).into_owned())),
            None if optional => Ok(None),
            None => Err(EnvError::SecretKeyNotFound {
                key: r.key.clone(),
                namespace,
                name: r.name.clone(),
            }),
        };
    }
    // An empty source (the API rejects it): the variable is the empty string.
    Ok(Some(String::new()))
}

fn config_map_data(cm: &ConfigMap) -> Vec<(String, String)> {
    cm.data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn secret_data(secret: &Secret) -> Vec<(String, String)> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
}

/// Each referenced object fetched once per environment, as upstream does, so one container
/// never sees two versions of a ConfigMap.
struct ObjectCache<'s, S: EnvSources + ?Sized> {
    sources: &'s S,
    namespace: &'s str,
    config_maps: HashMap<String, Cow<'s, ConfigMap>>,
    secrets: HashMap<String, Cow<'s, Secret>>,
}

impl<'s, S: EnvSources + ?Sized> ObjectCache<'s, S> {
    fn new(sources: &'s S, namespace: &'s str) -> Self {
        ObjectCache {
            sources,
            namespace,
            config_maps: HashMap::new(),
            secrets: HashMap::new(),
        }
    }

    /// `Ok(None)` only for a missing optional object.
    fn config_map(&mut self, name: &str, optional: bool) -> Result<Option<&ConfigMap>, EnvError> {
        if !self.config_maps.contains_key(name) {
            match self.sources.config_map(self.namespace, name)? {
                Some(cm) => {
                    self.config_maps.insert(name.to_owned(), cm);
                }
                None if optional => return Ok(None),
                None => {
                    return Err(EnvError::ConfigMapNotFound {
                        name: name.to_owned(),
                    });
                }
            }
        }
        Ok(self.config_maps.get(name).map(|c| &**c))
    }

    fn secret(&mut self, name: &str, optional: bool) -> Result<Option<&Secret>, EnvError> {
        if !self.secrets.contains_key(name) {
            match self.sources.secret(self.namespace, name)? {
                Some(s) => {
                    self.secrets.insert(name.to_owned(), s);
                }
                None if optional => return Ok(None),
                None => {
                    return Err(EnvError::SecretNotFound {
                        name: name.to_owned(),
                    });
                }
            }
        }
        Ok(self.secrets.get(name).map(|s| &**s))
    }
}

/// The image's `ENV` overlaid with `vars`: a variable the image defines is replaced where it
/// stands, others are appended in order (containerd's rule). Image entries without `=` are
/// dropped.
pub fn overlay(image_env: &[String], vars: &[(String, String)]) -> Vec<(String, String)> {
    let mut out = OrderedVars::default();
    for entry in image_env {
        if let Some((k, v)) = entry.split_once('=') {
            out.set(k.to_owned(), v.to_owned());
        }
    }
    for (k, v) in vars {
        out.set(k.clone(), v.clone());
    }
    out.entries
}

/// Puts `HOSTNAME=<hostname>` under everything else, as containerd does before applying the
/// image's and the kubelet's variables (M): an image or user `HOSTNAME` wins.
pub fn with_hostname(hostname: &str, env: Vec<(String, String)>) -> Vec<(String, String)> {
    if env.iter().any(|(k, _)| k == "HOSTNAME") {
        return env;
    }
    let mut out = Vec::with_capacity(env.len() + 1);
    out.push(("HOSTNAME".to_owned(), hostname.to_owned()));
    out.extend(env);
    out
}

/// Plain objects: what `nodelet run -f` reads from its file, and what tests use.
#[derive(Debug, Clone, Default)]
pub struct StaticSources {
    config_maps: Vec<ConfigMap>,
    secrets: Vec<Secret>,
    /// `None`: no API server.
    services: Option<Vec<Service>>,
    pub allocatable: BTreeMap<String, ApiQuantity>,
    pub pod_ips: Vec<String>,
    pub host_ips: Vec<String>,
}

impl StaticSources {
    /// No objects, no API server, no addresses.
    pub fn new() -> StaticSources {
        StaticSources::default()
    }

    pub fn with_config_map(mut self, cm: ConfigMap) -> Self {
        self.config_maps.push(cm);
        self
    }

    /// Adds a Secret, folding `stringData` into `data` as the API server does on write (a file
    /// given to `nodelet run` has not been through one).
    pub fn with_secret(mut self, mut secret: Secret) -> Self {
        if let Some(string_data) = secret.string_data.take() {
            let data = secret.data.get_or_insert_with(BTreeMap::new);
            for (k, v) in string_data {
                data.insert(k, nodelet_api::k8s::ByteString(v.into_bytes()));
            }
        }
        self.secrets.push(secret);
        self
    }

    /// Adds a Service (and marks the Service list as known).
    pub fn with_service(mut self, service: Service) -> Self {
        self.services.get_or_insert_with(Vec::new).push(service);
        self
    }

    /// Marks the Service list as known even with no Services in it.
    pub fn with_api_server(mut self) -> Self {
        self.services.get_or_insert_with(Vec::new);
        self
    }
}

fn matches(
    meta: &nodelet_api::k8s::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ns: &str,
    name: &str,
) -> bool {
    meta.name.as_deref() == Some(name) && meta.namespace.as_deref().unwrap_or("default") == ns
}

impl EnvSources for StaticSources {
    fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Cow<'_, ConfigMap>>, SourceError> {
        Ok(self
            .config_maps
            .iter()
            .find(|c| matches(&c.metadata, namespace, name))
            .map(Cow::Borrowed))
    }

    fn secret(&self, namespace: &str, name: &str) -> Result<Option<Cow<'_, Secret>>, SourceError> {
        Ok(self
            .secrets
            .iter()
            .find(|s| matches(&s.metadata, namespace, name))
            .map(Cow::Borrowed))
    }

    fn services(&self) -> ServiceList<'_> {
        match &self.services {
            None => ServiceList::NoApiServer,
            Some(s) => ServiceList::Listed(Cow::Borrowed(s)),
        }
    }

    fn node_allocatable(&self) -> Cow<'_, BTreeMap<String, ApiQuantity>> {
        Cow::Borrowed(&self.allocatable)
    }

    fn pod_ips(&self) -> Cow<'_, [String]> {
        Cow::Borrowed(&self.pod_ips)
    }

    fn host_ips(&self) -> Result<Cow<'_, [String]>, SourceError> {
        Ok(Cow::Borrowed(&self.host_ips))
    }
}

#[cfg(test)]
mod tests;
