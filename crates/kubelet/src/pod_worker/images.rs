//! Making sure a container's image is on the node (spec §2.3, `EnsureImageExists`): the pull
//! policy decision, the pod's credentials (its `imagePullSecrets`, then its ServiceAccount's,
//! then the node's), the pull, and the events on the way.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use nodelet_api::k8s::api::core::v1::{Container, Pod};
use nodelet_image::images::{ANONYMOUS, ImageRecord, NODE};
use nodelet_image::keyring::{
    CredentialLookup, CredentialProviderPlugins, Keyring, PullSecret, UnionKeyring,
    pod_secrets_keyring,
};
use nodelet_image::pull::NoProgress;
use nodelet_image::pull_policy::{
    ImageEvent, LocalImage, PullBackOff, PullDecision, PullFailure, PullPolicy, decide_pull,
    waiting_reason,
};
use nodelet_image::reference::parse_image_name;

use super::NodeServices;
use crate::events::{self, Event};
use crate::sources::file::PodObjects;

/// Why the image is not usable: the container's waiting reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFailure {
    pub reason: &'static str,
    pub message: String,
}

/// The pod's pull secrets merged into one keyring (all from the pod's namespace): its
/// `imagePullSecrets`, or — when it lists none — its ServiceAccount's, as the API server's
/// ServiceAccount admission copies them (a file given to `nodelet run` has not been through
/// it). Entries without a name are skipped. Missing secrets give the
/// `FailedToRetrieveImagePullSecret` Warning; malformed ones fail the pull.
pub fn pod_keyring(
    pod: &Pod,
    objects: &PodObjects,
    emit: &dyn Fn(Event),
) -> Result<Keyring, ImageFailure> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let spec = pod.spec.as_ref();
    let own = spec
        .and_then(|s| s.image_pull_secrets.as_deref())
        .unwrap_or_default();
    let references = if own.is_empty() {
        spec.and_then(|s| s.service_account_name.as_deref())
            .filter(|n| !n.is_empty())
            .and_then(|n| objects.service_account(namespace, n))
            .and_then(|sa| sa.image_pull_secrets.as_deref())
            .unwrap_or_default()
    } else {
        own
    };
    let mut names: Vec<&str> = Vec::new();
    for name in references.iter().map(|r| r.name.as_str()) {
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    let mut missing: Vec<&str> = Vec::new();
    let mut found = Vec::new();
    for name in names {
        match objects.secret(namespace, name) {
            Some(secret) => found.push(secret),
            None => missing.push(name),
        }
    }
    if !missing.is_empty() {
        emit(events::failed_to_retrieve_image_pull_secret(&missing));
    }
    let data: Vec<BTreeMap<String, Vec<u8>>> = found
        .iter()
        .map(|s| {
            s.data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect()
        })
        .collect();
    let secrets = found.iter().zip(&data).map(|(s, data)| PullSecret {
        namespace,
        name: s.metadata.name.as_deref().unwrap_or(""),
        uid: s.metadata.uid.as_deref(),
        secret_type: s.type_.as_deref().unwrap_or("Opaque"),
        data,
    });
    match pod_secrets_keyring(secrets) {
        Ok(keyring) => Ok(keyring.keyring),
        Err(e) => Err(ImageFailure {
            reason: waiting_reason::ERR_IMAGE_PULL,
            message: e.to_string(),
        }),
    }
}

/// Ensures `container.image` is on the node for this pod, emitting the kubelet's events.
pub fn ensure_image(
    services: &NodeServices,
    pod: &Pod,
    container: &Container,
    keyring: &Keyring,
    back_off: &mut PullBackOff,
    emit: &dyn Fn(Event),
) -> Result<ImageRecord, ImageFailure> {
    let image = container.image.as_deref().unwrap_or("");
    let fail = |reason: &'static str, message: String| {
        emit(events::failed(reason));
        Err(ImageFailure { reason, message })
    };
    let reference = match parse_image_name(image) {
        Ok(r) => r,
        Err(e) => {
            // Upstream's waiting message is the event's text.
            let event = ImageEvent::invalid_image_name(image, &e);
            let message = event.message.clone();
            emit(event.into());
            return fail(waiting_reason::INVALID_IMAGE_NAME, message);
        }
    };
    let policy =
        match PullPolicy::from_field(container.image_pull_policy.as_deref().unwrap_or(""), image) {
            Ok(p) => p,
            Err(e) => return fail(waiting_reason::ERR_IMAGE_PULL, e.to_string()),
        };
    let name = reference.to_string();
    let plugins = CredentialProviderPlugins::default();
    let union = UnionKeyring::for_pod_pull(keyring, &services.node_credentials, &plugins);
    let credentials = union.lookup_credentials(&reference.name(), Instant::now());

    let local = if policy.checks_local_image() {
        match services.images.records().get(&name) {
            None => LocalImage::Absent,
            Some(r) if r.pulled_with.contains(ANONYMOUS) || r.pulled_with.contains(NODE) => {
                LocalImage::Present
            }
            Some(r) if r.accessible_with(&credentials) => LocalImage::PresentAndAccessible,
            Some(_) => LocalImage::PresentButInaccessible,
        }
    } else {
        LocalImage::Absent
    };
    let decision = decide_pull(policy, local);
    if let Some(event) = decision.event(image) {
        emit(event.into());
    }
    match decision {
        PullDecision::UseLocal { .. } => {
            return services
                .images
                .records()
                .get(&name)
                .ok_or_else(|| ImageFailure {
                    reason: waiting_reason::ERR_IMAGE_PULL,
                    message: format!("image {name} disappeared from the node"),
                });
        }
        PullDecision::NeverPull => {
            let message = ImageEvent::never_pull(image).message;
            emit(events::failed(waiting_reason::ERR_IMAGE_NEVER_PULL));
            return Err(ImageFailure {
                reason: waiting_reason::ERR_IMAGE_NEVER_PULL,
                message,
            });
        }
        PullDecision::Pull => {}
    }
    let uid = pod.metadata.uid.as_deref().unwrap_or("");
    let key = PullBackOff::key(uid, image);
    if back_off.is_in_back_off(&key, Instant::now()) {
        emit(ImageEvent::back_off(image).into());
        let message = nodelet_image::pull_policy::back_off_waiting_message(
            image,
            back_off.last_failure(&key),
        );
        return fail(waiting_reason::IMAGE_PULL_BACK_OFF, message);
    }
    emit(ImageEvent::pulling(image).into());
    // Through the node's pull queue: `times.total` includes the wait for other pods' pulls.
    let (pulled, times) = services.runtime.block_on(services.images.pull_queued(
        &reference,
        &services.platform,
        &credentials,
        Arc::new(NoProgress),
    ));
    match pulled {
        Ok(record) => {
            emit(ImageEvent::pulled(image, times.pull, times.total, record.size).into());
            back_off.gc(Instant::now());
            Ok(record)
        }
        Err(e) => {
            let text = e.to_string();
            emit(ImageEvent::pull_failed(image, &text).into());
            let failure = PullFailure::classify(image, &text);
            back_off.record_failure(&key, Instant::now(), Some(failure.summary()));
            fail(failure.reason, failure.message)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use nodelet_api::k8s::api::core::v1::{LocalObjectReference, PodSpec, ServiceAccount};
    use nodelet_api::k8s::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn references(names: &[&str]) -> Option<Vec<LocalObjectReference>> {
        Some(
            names
                .iter()
                .map(|n| LocalObjectReference {
                    name: (*n).to_owned(),
                })
                .collect(),
        )
    }

    /// The secrets the keyring looked for, read from the missing-secrets warning (none of
    /// them exists here).
    fn looked_for(own: &[&str]) -> Option<String> {
        let pod = Pod {
            metadata: ObjectMeta {
                namespace: Some("team".into()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                service_account_name: Some("robot".into()),
                image_pull_secrets: references(own),
                ..PodSpec::default()
            }),
            ..Pod::default()
        };
        let objects = PodObjects {
            service_accounts: vec![ServiceAccount {
                metadata: ObjectMeta {
                    name: Some("robot".into()),
                    namespace: Some("team".into()),
                    ..ObjectMeta::default()
                },
                image_pull_secrets: references(&["sa-one", "sa-two"]),
                ..ServiceAccount::default()
            }],
            ..PodObjects::default()
        };
        let warning = RefCell::new(None);
        pod_keyring(&pod, &objects, &|e| *warning.borrow_mut() = Some(e.message)).unwrap();
        warning.into_inner()
    }

    #[test]
    fn the_service_accounts_secrets_only_when_the_pod_names_none() {
        let message = |names: &str| {
            Some(format!(
                "Unable to retrieve some image pull secrets ({names}); attempting to pull the image may not succeed."
            ))
        };
        assert_eq!(looked_for(&[]), message("sa-one, sa-two"));
        assert_eq!(looked_for(&["own", "own"]), message("own"));
        // An entry without a name still counts as the pod's own list, and is skipped.
        assert_eq!(looked_for(&[""]), None);
    }
}
