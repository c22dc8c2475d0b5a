//! The files of configMap, secret, downwardAPI and projected volumes (upstream's
//! `MakePayload` and `CollectData`), keyed by path: a later file of the same path wins, as in
//! upstream's map.

use std::collections::BTreeMap;

use nodelet_api::k8s::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, DownwardAPIVolumeFile, DownwardAPIVolumeSource, KeyToPath,
    ProjectedVolumeSource, Secret, SecretVolumeSource,
};

use super::{DEFAULT_MODE, ProjectedFile, VolumeContext};
use crate::downward;

pub(super) type Payload = BTreeMap<String, ProjectedFile>;

fn mode_bits(mode: Option<i32>, default_mode: u32) -> u32 {
    mode.and_then(|m| u32::try_from(m).ok())
        .map_or(default_mode, |m| m & 0o7777)
}

fn default_mode(mode: Option<i32>) -> u32 {
    mode_bits(mode, DEFAULT_MODE)
}

pub(super) fn config_map_volume(
    ctx: VolumeContext<'_>,
    source: &ConfigMapVolumeSource,
) -> Result<Payload, String> {
    let optional = source.optional.unwrap_or(false);
    let config_map = find_config_map(ctx, &source.name, optional)?;
    config_map_payload(
        source.items.as_deref(),
        config_map.as_ref(),
        default_mode(source.default_mode),
        optional,
    )
}

pub(super) fn secret_volume(
    ctx: VolumeContext<'_>,
    source: &SecretVolumeSource,
) -> Result<Payload, String> {
    let optional = source.optional.unwrap_or(false);
    let name = source.secret_name.as_deref().unwrap_or("");
    let secret = find_secret(ctx, name, optional)?;
    secret_payload(
        source.items.as_deref(),
        secret.as_ref(),
        default_mode(source.default_mode),
        optional,
    )
}

pub(super) fn downward_api_volume(
    ctx: VolumeContext<'_>,
    source: &DownwardAPIVolumeSource,
) -> Result<Payload, String> {
    downward_payload(
        ctx,
        source.items.as_deref().unwrap_or_default(),
        default_mode(source.default_mode),
    )
}

/// Each source in turn; every failing source is reported (upstream's error aggregate).
pub(super) fn projected_volume(
    ctx: VolumeContext<'_>,
    source: &ProjectedVolumeSource,
) -> Result<Payload, String> {
    let mode = default_mode(source.default_mode);
    let mut payload = Payload::new();
    let mut errors = Vec::new();
    for projection in source.sources.iter().flatten() {
        let part = if let Some(cm) = &projection.config_map {
            let optional = cm.optional.unwrap_or(false);
            find_config_map(ctx, &cm.name, optional).and_then(|found| {
                config_map_payload(cm.items.as_deref(), found.as_ref(), mode, optional)
            })
        } else if let Some(secret) = &projection.secret {
            let optional = secret.optional.unwrap_or(false);
            find_secret(ctx, &secret.name, optional).and_then(|found| {
                secret_payload(secret.items.as_deref(), found.as_ref(), mode, optional)
            })
        } else if let Some(dapi) = &projection.downward_api {
            downward_payload(ctx, dapi.items.as_deref().unwrap_or_default(), mode)
        } else if projection.service_account_token.is_some() {
            Err("serviceAccountToken projections are not supported by nodelet yet".to_owned())
        } else if projection.cluster_trust_bundle.is_some() {
            Err("clusterTrustBundle projections are not supported by nodelet".to_owned())
        } else {
            Err("projection source not supported by nodelet".to_owned())
        };
        match part {
            Ok(files) => payload.extend(files),
            Err(err) => errors.push(err),
        }
    }
    match errors.len() {
        0 => Ok(payload),
        1 => Err(errors.remove(0)),
        _ => {
            errors.dedup();
            Err(format!("[{}]", errors.join(", ")))
        }
    }
}

/// The ConfigMap, `None` when it is missing and optional; the kubelet's cache's NotFound text.
fn find_config_map(
    ctx: VolumeContext<'_>,
    name: &str,
    optional: bool,
) -> Result<Option<ConfigMap>, String> {
    let namespace = ctx.pod.metadata.namespace.as_deref().unwrap_or("default");
    match ctx.objects.config_map(namespace, name) {
        Some(found) => Ok(Some(found.clone())),
        None if optional => Ok(None),
        None => Err(format!("configmap {} not found", go_quote(name))),
    }
}

fn find_secret(
    ctx: VolumeContext<'_>,
    name: &str,
    optional: bool,
) -> Result<Option<Secret>, String> {
    let namespace = ctx.pod.metadata.namespace.as_deref().unwrap_or("default");
    match ctx.objects.secret(namespace, name) {
        Some(found) => Ok(Some(found.clone())),
        None if optional => Ok(None),
        None => Err(format!("secret {} not found", go_quote(name))),
    }
}

fn go_quote(s: &str) -> String {
    nodelet_api::field_errors::go_quote(s)
}

fn file(path: &str, data: Vec<u8>, mode: u32) -> (String, ProjectedFile) {
    (
        path.to_owned(),
        ProjectedFile {
            path: path.to_owned(),
            data,
            mode,
        },
    )
}

/// Keys to files: all of them, or the `items` (a missing key fails unless `optional`).
fn key_payload(
    items: Option<&[KeyToPath]>,
    all: &BTreeMap<String, Vec<u8>>,
    default_mode: u32,
    optional: bool,
    missing: impl Fn(&str) -> String,
) -> Result<Payload, String> {
    let mut payload = Payload::new();
    match items.filter(|i| !i.is_empty()) {
        None => payload.extend(
            all.iter()
                .map(|(key, data)| file(key, data.clone(), default_mode)),
        ),
        Some(items) => {
            for item in items {
                let Some(data) = all.get(&item.key) else {
                    if optional {
                        continue;
                    }
                    return Err(missing(&item.key));
                };
                payload.extend([file(
                    &item.path,
                    data.clone(),
                    mode_bits(item.mode, default_mode),
                )]);
            }
        }
    }
    Ok(payload)
}

fn config_map_payload(
    items: Option<&[KeyToPath]>,
    config_map: Option<&ConfigMap>,
    default_mode: u32,
    optional: bool,
) -> Result<Payload, String> {
    let mut all = BTreeMap::new();
    if let Some(cm) = config_map {
        // `data` wins over `binaryData` for a key in both (the API forbids that anyway).
        for (key, value) in cm.binary_data.iter().flatten() {
            all.insert(key.clone(), value.0.clone());
        }
        for (key, value) in cm.data.iter().flatten() {
            all.insert(key.clone(), value.as_bytes().to_vec());
        }
    }
    key_payload(items, &all, default_mode, optional, |key| {
        format!("configmap references non-existent config key: {key}")
    })
}

fn secret_payload(
    items: Option<&[KeyToPath]>,
    secret: Option<&Secret>,
    default_mode: u32,
    optional: bool,
) -> Result<Payload, String> {
    let mut all = BTreeMap::new();
    if let Some(secret) = secret {
        for (key, value) in secret.data.iter().flatten() {
            all.insert(key.clone(), value.0.clone());
        }
        // A pod file's Secret may still carry `stringData` (the API server folds it).
        for (key, value) in secret.string_data.iter().flatten() {
            all.insert(key.clone(), value.as_bytes().to_vec());
        }
    }
    key_payload(items, &all, default_mode, optional, |key| {
        format!("references non-existent secret key: {key}")
    })
}

/// upstream's downwardAPI `CollectData`: every item, with all extraction errors aggregated.
fn downward_payload(
    ctx: VolumeContext<'_>,
    items: &[DownwardAPIVolumeFile],
    default_mode: u32,
) -> Result<Payload, String> {
    let mut payload = Payload::new();
    let mut errors = Vec::new();
    for item in items {
        let path = clean_path(&item.path);
        let value = if let Some(field) = &item.field_ref {
            downward::pod_field_value(ctx.pod, field, &[], || {
                Err("the node's addresses are not available to volumes".to_owned())
            })
            .map_err(|e| e.to_string())
        } else if let Some(resource) = &item.resource_field_ref {
            let name = resource.container_name.as_deref().unwrap_or("");
            let container = ctx
                .pod
                .spec
                .iter()
                .flat_map(|s| {
                    s.containers
                        .iter()
                        .chain(s.init_containers.iter().flatten())
                })
                .find(|c| c.name == name);
            match container {
                Some(container) => downward::container_resource_value(
                    resource,
                    ctx.pod,
                    container,
                    ctx.allocatable,
                )
                .map_err(|e| e.to_string()),
                None => {
                    Err(downward::DownwardError::ContainerNotFound(name.to_owned()).to_string())
                }
            }
        } else {
            Ok(String::new())
        };
        match value {
            Ok(value) => {
                payload.extend([file(
                    &path,
                    value.into_bytes(),
                    mode_bits(item.mode, default_mode),
                )]);
            }
            Err(err) => errors.push(err),
        }
    }
    match errors.len() {
        0 => Ok(payload),
        1 => Err(errors.remove(0)),
        _ => Err(format!("[{}]", errors.join(", "))),
    }
}

/// Go's `filepath.Clean` for the relative paths the API allows (`a//b/./c/` → `a/b/c`).
fn clean_path(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    }
}
