//! Pod volumes: unique DNS-label names, exactly one source, and the checks of the sources
//! nodelet can mount (emptyDir, hostPath, secret, configMap, downwardAPI, projected,
//! persistentVolumeClaim). Other sources are accepted as upstream accepts them; their
//! internal fields are not checked here.

use std::collections::BTreeSet;

use crate::field_errors::{FieldError, FieldErrors, Path};
use crate::k8s::api::core::v1::{KeyToPath, Volume};
use crate::names;
use crate::quantity::Quantity;

const FILE_MODE_MSG: &str = "must be a number between 0 and 0777 (octal), both inclusive";

/// The source fields of a volume in upstream's checking order, with the name used in the
/// "more than 1 volume type" path (upstream's own spelling, typos included).
fn sources(v: &Volume) -> Vec<(&'static str, bool)> {
    vec![
        ("emptyDir", v.empty_dir.is_some()),
        ("hostPath", v.host_path.is_some()),
        ("gitRepo", v.git_repo.is_some()),
        ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
        ("awsElasticBlockStore", v.aws_elastic_block_store.is_some()),
        ("secret", v.secret.is_some()),
        ("nfs", v.nfs.is_some()),
        ("iscsi", v.iscsi.is_some()),
        ("glusterfs", v.glusterfs.is_some()),
        ("flocker", v.flocker.is_some()),
        ("persistentVolumeClaim", v.persistent_volume_claim.is_some()),
        ("rbd", v.rbd.is_some()),
        ("cinder", v.cinder.is_some()),
        ("cephFS", v.cephfs.is_some()),
        ("quobyte", v.quobyte.is_some()),
        ("downwarAPI", v.downward_api.is_some()),
        ("fc", v.fc.is_some()),
        ("flexVolume", v.flex_volume.is_some()),
        ("configMap", v.config_map.is_some()),
        ("azureFile", v.azure_file.is_some()),
        ("vsphereVolume", v.vsphere_volume.is_some()),
        ("photonPersistentDisk", v.photon_persistent_disk.is_some()),
        ("portworxVolume", v.portworx_volume.is_some()),
        ("azureDisk", v.azure_disk.is_some()),
        ("storageos", v.storageos.is_some()),
        ("projected", v.projected.is_some()),
        ("scaleIO", v.scale_io.is_some()),
        ("csi", v.csi.is_some()),
        ("ephemeral", v.ephemeral.is_some()),
        ("image", v.image.is_some()),
    ]
}

/// Checks every volume; returns the names of the valid ones (mounts may refer only to
/// those) and the errors.
pub fn validate_volumes(volumes: &[Volume], path: &Path) -> (BTreeSet<String>, FieldErrors) {
    let mut errs = FieldErrors::new();
    let mut names_ok = BTreeSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let p = path.index(i);
        let name_path = p.child("name");
        let mut el = validate_source(v, &p);
        if v.name.is_empty() {
            el.push(FieldError::required(&name_path, ""));
        } else {
            for msg in names::is_dns1123_label(&v.name) {
                el.push(FieldError::invalid(&name_path, &v.name, msg));
            }
        }
        if names_ok.contains(&v.name) {
            el.push(FieldError::duplicate(&name_path, &v.name));
        }
        if el.is_empty() {
            names_ok.insert(v.name.clone());
        } else {
            errs.extend(el);
        }
    }
    (names_ok, errs)
}

fn validate_source(v: &Volume, p: &Path) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let mut count = 0;
    for (name, present) in sources(v) {
        if !present {
            continue;
        }
        if count > 0 {
            errs.push(FieldError::forbidden(
                &p.child(name),
                "may not specify more than 1 volume type",
            ));
            continue;
        }
        count += 1;
        errs.extend(validate_one_source(v, name, p));
    }
    if count == 0 {
        errs.push(FieldError::required(p, "must specify a volume type"));
    }
    errs
}

fn validate_mode(mode: Option<i32>, path: &Path) -> FieldErrors {
    match mode {
        Some(m) if !(0..=0o777).contains(&m) => {
            vec![FieldError::invalid(path, m, FILE_MODE_MSG)].into()
        }
        _ => FieldErrors::new(),
    }
}

fn validate_items(items: Option<&Vec<KeyToPath>>, path: &Path) -> FieldErrors {
    let mut errs = FieldErrors::new();
    for (i, kp) in items.into_iter().flatten().enumerate() {
        let p = path.index(i);
        if kp.key.is_empty() {
            errs.push(FieldError::required(&p.child("key"), ""));
        }
        if kp.path.is_empty() {
            errs.push(FieldError::required(&p.child("path"), ""));
        }
        errs.extend(validate_local_non_reserved_path(&kp.path, &p.child("path")));
        errs.extend(validate_mode(kp.mode, &p.child("mode")));
    }
    errs
}

/// Checks the one source of a volume; `vol` is the volume's path (upstream reports the
/// downward API under `downwardAPI` here but under `downwarAPI` in the "more than 1" error).
fn validate_one_source(v: &Volume, kind: &str, vol: &Path) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let p = &vol.child(if kind == "downwarAPI" {
        "downwardAPI"
    } else {
        kind
    });
    match kind {
        "emptyDir" => {
            let limit = v.empty_dir.as_ref().and_then(|e| e.size_limit.as_ref());
            if limit
                .and_then(|q| Quantity::from_api(q).ok())
                .is_some_and(|q| q.is_negative())
            {
                errs.push(FieldError::forbidden(
                    &p.child("sizeLimit"),
                    "SizeLimit field must be a valid resource quantity",
                ));
            }
        }
        "hostPath" => {
            let Some(h) = v.host_path.as_ref() else {
                return errs;
            };
            if h.path.is_empty() {
                errs.push(FieldError::required(&p.child("path"), ""));
                return errs;
            }
            errs.extend(validate_path_no_backsteps(&h.path, &p.child("path")));
            let ty = h.type_.as_deref().unwrap_or("");
            let known = [
                "",
                "DirectoryOrCreate",
                "Directory",
                "FileOrCreate",
                "File",
                "Socket",
                "CharDevice",
                "BlockDevice",
            ];
            if !known.contains(&ty) {
                errs.push(FieldError::not_supported(&p.child("type"), ty, &known));
            }
        }
        "secret" => {
            let Some(s) = v.secret.as_ref() else {
                return errs;
            };
            if s.secret_name.as_deref().is_none_or(str::is_empty) {
                errs.push(FieldError::required(&p.child("secretName"), ""));
            }
            errs.extend(validate_mode(s.default_mode, &p.child("defaultMode")));
            errs.extend(validate_items(s.items.as_ref(), &p.child("items")));
        }
        "configMap" => {
            let Some(c) = v.config_map.as_ref() else {
                return errs;
            };
            if c.name.is_empty() {
                errs.push(FieldError::required(&p.child("name"), ""));
            }
            errs.extend(validate_mode(c.default_mode, &p.child("defaultMode")));
            errs.extend(validate_items(c.items.as_ref(), &p.child("items")));
        }
        "persistentVolumeClaim"
            if v.persistent_volume_claim
                .as_ref()
                .is_some_and(|c| c.claim_name.is_empty()) =>
        {
            errs.push(FieldError::required(&p.child("claimName"), ""));
        }
        "downwarAPI" => {
            let Some(d) = v.downward_api.as_ref() else {
                return errs;
            };
            errs.extend(validate_mode(d.default_mode, &p.child("defaultMode")));
            for (i, item) in d.items.iter().flatten().enumerate() {
                let ip = p.child("items").index(i);
                if item.path.is_empty() {
                    errs.push(FieldError::required(&ip.child("path"), ""));
                }
                errs.extend(validate_local_non_reserved_path(
                    &item.path,
                    &ip.child("path"),
                ));
                errs.extend(validate_mode(item.mode, &ip.child("mode")));
                match (&item.field_ref, &item.resource_field_ref) {
                    (Some(_), Some(_)) => errs.push(FieldError::invalid(
                        &ip,
                        "resource",
                        "fieldRef and resourceFieldRef can not be specified simultaneously",
                    )),
                    (None, None) => errs.push(FieldError::required(
                        &ip,
                        "one of fieldRef and resourceFieldRef is required",
                    )),
                    _ => {}
                }
            }
        }
        "projected" => {
            let Some(pr) = v.projected.as_ref() else {
                return errs;
            };
            errs.extend(validate_mode(pr.default_mode, &p.child("defaultMode")));
            for (i, s) in pr.sources.iter().flatten().enumerate() {
                let sp = p.child("sources").index(i);
                let set = [
                    s.secret.is_some(),
                    s.config_map.is_some(),
                    s.downward_api.is_some(),
                    s.service_account_token.is_some(),
                    s.cluster_trust_bundle.is_some(),
                ];
                if set.iter().filter(|b| **b).count() > 1 {
                    errs.push(FieldError::forbidden(
                        &sp,
                        "may not specify more than 1 volume type per source",
                    ));
                }
                if let Some(t) = &s.service_account_token {
                    let tp = sp.child("serviceAccountToken");
                    if t.path.is_empty() {
                        errs.push(FieldError::required(&tp.child("path"), ""));
                    }
                    if let Some(secs) = t.expiration_seconds {
                        if secs < 600 {
                            errs.push(FieldError::invalid(
                                &tp.child("expirationSeconds"),
                                secs,
                                "may not specify a duration less than 10 minutes",
                            ));
                        } else if secs > 1 << 32 {
                            errs.push(FieldError::invalid(
                                &tp.child("expirationSeconds"),
                                secs,
                                "may not specify a duration larger than 2^32 seconds",
                            ));
                        }
                    }
                }
            }
        }
        _ => {}
    }
    errs
}

/// `must not contain '..'` for any `..` path segment.
pub fn validate_path_no_backsteps(target: &str, path: &Path) -> FieldErrors {
    if target.split('/').any(|s| s == "..") {
        vec![FieldError::invalid(path, target, "must not contain '..'")].into()
    } else {
        FieldErrors::new()
    }
}

/// A relative path that does not climb out (`subPath`, `items[].path`).
pub fn validate_local_descending_path(target: &str, path: &Path) -> FieldErrors {
    let mut errs = FieldErrors::new();
    if target.starts_with('/') {
        errs.push(FieldError::invalid(path, target, "must be a relative path"));
    }
    errs.extend(validate_path_no_backsteps(target, path));
    errs
}

fn validate_local_non_reserved_path(target: &str, path: &Path) -> FieldErrors {
    let mut errs = validate_local_descending_path(target, path);
    let first = target.split('/').next().unwrap_or("");
    if first.starts_with("..") && first.len() > 2 {
        errs.push(FieldError::invalid(
            path,
            target,
            "must not start with '..'",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn volume_rules() {
        let cases = [
            (json!([{"name":"data","emptyDir":{}}]), vec![]),
            (
                json!([{"name":"data"}]),
                vec!["spec.volumes[0]: Required value: must specify a volume type"],
            ),
            (
                json!([{"name":"data","emptyDir":{},"hostPath":{"path":"/x"}}]),
                vec![
                    "spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type",
                ],
            ),
            (
                json!([{"name":"a","emptyDir":{}},{"name":"a","emptyDir":{}}]),
                vec!["spec.volumes[1].name: Duplicate value: \"a\""],
            ),
            (
                json!([{"name":"","emptyDir":{}}]),
                vec!["spec.volumes[0].name: Required value"],
            ),
            (
                json!([{"name":"Data","emptyDir":{}}]),
                vec![
                    "spec.volumes[0].name: Invalid value: \"Data\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                ],
            ),
            (
                json!([{"name":"h","hostPath":{"path":""}}]),
                vec!["spec.volumes[0].hostPath.path: Required value"],
            ),
            (
                json!([{"name":"h","hostPath":{"path":"/a/../b"}}]),
                vec![
                    "spec.volumes[0].hostPath.path: Invalid value: \"/a/../b\": must not contain '..'",
                ],
            ),
            (
                json!([{"name":"h","hostPath":{"path":"/a","type":"Dir"}}]),
                vec![
                    "spec.volumes[0].hostPath.type: Unsupported value: \"Dir\": supported values: \"\", \"DirectoryOrCreate\", \"Directory\", \"FileOrCreate\", \"File\", \"Socket\", \"CharDevice\", \"BlockDevice\"",
                ],
            ),
            (
                json!([{"name":"s","secret":{}}]),
                vec!["spec.volumes[0].secret.secretName: Required value"],
            ),
            (
                json!([{"name":"s","secret":{"secretName":"x","defaultMode":4095}}]),
                vec![
                    "spec.volumes[0].secret.defaultMode: Invalid value: 4095: must be a number between 0 and 0777 (octal), both inclusive",
                ],
            ),
            (
                json!([{"name":"c","configMap":{"name":"x","items":[{"key":"k","path":"../x"}]}}]),
                vec![
                    "spec.volumes[0].configMap.items[0].path: Invalid value: \"../x\": must not contain '..'",
                ],
            ),
            (
                json!([{"name":"p","persistentVolumeClaim":{"claimName":""}}]),
                vec!["spec.volumes[0].persistentVolumeClaim.claimName: Required value"],
            ),
            (
                json!([{"name":"d","downwardAPI":{"items":[{"path":"n"}]}}]),
                vec![
                    "spec.volumes[0].downwardAPI.items[0]: Required value: one of fieldRef and resourceFieldRef is required",
                ],
            ),
        ];
        for (vols, want) in cases {
            let vols: Vec<Volume> = serde_json::from_value(vols).unwrap();
            let (_, errs) = validate_volumes(&vols, &Path::new("spec").child("volumes"));
            let got: Vec<String> = errs.messages();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn only_valid_volumes_can_be_mounted() {
        let vols: Vec<Volume> =
            serde_json::from_value(json!([{"name":"ok","emptyDir":{}},{"name":"bad"}])).unwrap();
        let (names, _) = validate_volumes(&vols, &Path::new("v"));
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            vec!["ok".to_string()]
        );
    }
}
