//! The `AlwaysPullImages` admission plugin (enabled with
//! `--enable-admission-plugins=AlwaysPullImages`): every container of a new pod, or of an
//! update that introduces an image, gets `imagePullPolicy: Always`, so a cached private
//! image is only used after a pull with the pod's own credentials.

use std::collections::BTreeSet;

use super::Rejection;
use crate::field_errors::{FieldError, Path};
use crate::k8s::api::core::v1::Pod;

/// Every container image with its path, init containers first (upstream's visiting order).
fn images(pod: &Pod) -> Vec<(Path, Option<String>, Option<String>)> {
    let mut out = Vec::new();
    let Some(spec) = &pod.spec else { return out };
    let sp = Path::new("spec");
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        out.push((
            sp.child("initContainers").index(i),
            c.image.clone(),
            c.image_pull_policy.clone(),
        ));
    }
    for (i, c) in spec.containers.iter().enumerate() {
        out.push((
            sp.child("containers").index(i),
            c.image.clone(),
            c.image_pull_policy.clone(),
        ));
    }
    for (i, c) in spec.ephemeral_containers.iter().flatten().enumerate() {
        out.push((
            sp.child("ephemeralContainers").index(i),
            c.image.clone(),
            c.image_pull_policy.clone(),
        ));
    }
    out
}

/// Whether the plugin acts on this request: always on create (`old` is `None`), on update
/// only when some image is not already in the old pod.
pub fn applies(pod: &Pod, old: Option<&Pod>) -> bool {
    let Some(old) = old else { return true };
    let old_images: BTreeSet<Option<String>> = images(old).into_iter().map(|(_, i, _)| i).collect();
    images(pod)
        .into_iter()
        .any(|(_, i, _)| !old_images.contains(&i))
}

/// Sets `imagePullPolicy: Always` on every container.
pub fn admit(pod: &mut Pod) {
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    for c in spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut())
    {
        c.image_pull_policy = Some("Always".into());
    }
    for c in spec.ephemeral_containers.iter_mut().flatten() {
        c.image_pull_policy = Some("Always".into());
    }
}

/// Refuses a pod with a container not set to `Always` (possible only if something changed
/// the policy after [`admit`]); one reason per container, e.g.
/// `spec.containers[0].imagePullPolicy: Unsupported value: "IfNotPresent": supported values: "Always"`.
pub fn validate(pod: &Pod) -> Result<(), Vec<Rejection>> {
    let bad: Vec<Rejection> = images(pod)
        .into_iter()
        .filter(|(_, _, policy)| policy.as_deref() != Some("Always"))
        .map(|(p, _, policy)| {
            Rejection(
                FieldError::not_supported(
                    &p.child("imagePullPolicy"),
                    policy.unwrap_or_default(),
                    &["Always"],
                )
                .to_string(),
            )
        })
        .collect();
    if bad.is_empty() { Ok(()) } else { Err(bad) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata":{"name":"p"},"spec":v})).unwrap()
    }

    #[test]
    fn forces_always() {
        let mut p = pod(
            json!({"initContainers":[{"name":"i","image":"a:1","imagePullPolicy":"Never"}],
                               "containers":[{"name":"c","image":"b:1","imagePullPolicy":"IfNotPresent"}]}),
        );
        let errs = validate(&p).unwrap_err();
        assert_eq!(
            errs.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
            vec![
                "spec.initContainers[0].imagePullPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
                "spec.containers[0].imagePullPolicy: Unsupported value: \"IfNotPresent\": supported values: \"Always\"",
            ]
        );
        admit(&mut p);
        assert!(validate(&p).is_ok());
    }

    #[test]
    fn updates_without_new_images_are_ignored() {
        let old = pod(json!({"containers":[{"name":"c","image":"b:1"}]}));
        let same =
            pod(json!({"containers":[{"name":"c","image":"b:1"}],"activeDeadlineSeconds":5}));
        let changed = pod(json!({"containers":[{"name":"c","image":"b:2"}]}));
        let cases = [
            (&same, Some(&old), false),
            (&changed, Some(&old), true),
            (&old, None, true),
        ];
        for (new, old, want) in cases {
            assert_eq!(applies(new, old), want);
        }
    }
}
