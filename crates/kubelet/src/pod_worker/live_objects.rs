//! The objects a pod refers to, as they are now: under an API server a worker reads its
//! namespace's Secrets, ConfigMaps, ServiceAccounts and Services and the RuntimeClasses from
//! the node's watches each time it is about to pull an image or create a container, as
//! upstream's kubelet reads its informer caches. So a container restarted after a crash gets
//! the Services created since (their variables are made at creation), a pull Secret created
//! after an `ErrImagePull` is used on the next try, and a missing `configMapKeyRef` that
//! appears lets the container start on the next sync. `nodelet run` has no such source: its
//! objects are the file's, fixed.

use std::sync::Arc;

use crate::sources::file::PodObjects;

use super::PodWorker;

/// Where a worker reads the current objects of a namespace.
pub trait LiveObjects: Send + Sync + std::fmt::Debug {
    /// Everything `namespace` holds that a pod there may refer to (with the RuntimeClasses
    /// and the `default` namespace's Services, whose master Services every pod sees); `None`
    /// while the source has not read them all once (the worker keeps what it has).
    fn namespace_objects(&self, namespace: &str) -> Option<PodObjects>;
}

impl PodWorker {
    /// Reads the pod's objects from `source` before each image pull and container creation.
    pub fn with_live_objects(mut self, source: Arc<dyn LiveObjects>) -> PodWorker {
        self.live_objects = Some(source);
        self
    }

    /// Takes in the current objects. The pod's keyring is made again when what it comes from
    /// (Secrets, ServiceAccounts) changed, so a pull Secret created since is used.
    pub(super) fn take_live_objects(&mut self) {
        let Some(source) = &self.live_objects else {
            return;
        };
        let namespace = self.pod.metadata.namespace.as_deref().unwrap_or("default");
        let Some(current) = source.namespace_objects(namespace) else {
            return;
        };
        if keyring_sources_differ(&self.objects, &current) {
            self.keyring = None;
        }
        self.objects = current;
    }
}

fn keyring_sources_differ(old: &PodObjects, new: &PodObjects) -> bool {
    old.secrets != new.secrets || old.service_accounts != new.service_accounts
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodelet_api::k8s::api::core::v1::{Secret, Service};
    use nodelet_api::k8s::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn only_secret_or_service_account_changes_remake_the_keyring() {
        let base = PodObjects::default();
        let with_service = PodObjects {
            services: vec![Service {
                metadata: meta("svc"),
                ..Service::default()
            }],
            ..PodObjects::default()
        };
        let with_secret = PodObjects {
            secrets: vec![Secret {
                metadata: meta("pull"),
                ..Secret::default()
            }],
            ..PodObjects::default()
        };
        assert!(!keyring_sources_differ(&base, &with_service));
        assert!(keyring_sources_differ(&base, &with_secret));
        assert!(!keyring_sources_differ(&with_secret, &with_secret.clone()));
    }
}
