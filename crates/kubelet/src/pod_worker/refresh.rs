//! Volumes that follow their sources, as upstream's kubelet keeps them: a pod source that
//! sees the API (`sources::api`) sends a running worker the current state of what the pod's
//! files come from ([`PodRefresh`]: its labels and annotations, the ConfigMaps and Secrets it
//! names); the worker takes it in and rewrites, through the same atomic writer, each
//! configMap, secret, downwardAPI and projected volume whose content changed.
//!
//! Upstream's rules kept: subPath mounts keep what they saw at the start (they bind the file
//! of the payload directory of that moment, which the writer unlinks but the mount keeps);
//! environment variables are read at a container's start only (a restarted container gets the
//! new values); an `optional` source that appears later shows up, one that goes away takes
//! its files with it; a non-optional one that goes away leaves the volume as it was and is a
//! Warning `FailedMount` (upstream's `SetUp` fails and the volume stays).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::Sender;

use nodelet_api::k8s::api::core::v1::{ConfigMap, Pod, Secret};

use super::{Msg, PodWorker};

/// The current state of everything a pod's file volumes (and its containers' next
/// environments) read, as the source sees it. Each named object is there with `None` when
/// it does not exist.
#[derive(Clone, Default, PartialEq)]
pub struct PodRefresh {
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
    /// By name, in the pod's namespace.
    pub config_maps: Vec<(String, Option<ConfigMap>)>,
    pub secrets: Vec<(String, Option<Secret>)>,
}

impl std::fmt::Debug for PodRefresh {
    /// Names and presence only: Secrets' data stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodRefresh")
            .field("labels", &self.labels)
            .field("annotations", &self.annotations)
            .field("config_maps", &present_names(&self.config_maps))
            .field("secrets", &present_names(&self.secrets))
            .finish()
    }
}

fn present_names<K>(objects: &[(String, Option<K>)]) -> Vec<String> {
    objects
        .iter()
        .map(|(name, found)| match found {
            Some(_) => name.clone(),
            None => format!("{name} (absent)"),
        })
        .collect()
}

impl PodRefresh {
    /// `pod`'s refresh, with each object it names looked up in its namespace.
    pub fn of(
        pod: &Pod,
        config_map: impl Fn(&str) -> Option<ConfigMap>,
        secret: impl Fn(&str) -> Option<Secret>,
    ) -> PodRefresh {
        let names = ReferencedObjects::of(pod);
        PodRefresh {
            labels: pod.metadata.labels.clone(),
            annotations: pod.metadata.annotations.clone(),
            config_maps: names
                .config_maps
                .into_iter()
                .map(|name| {
                    let found = config_map(&name);
                    (name, found)
                })
                .collect(),
            secrets: names
                .secrets
                .into_iter()
                .map(|name| {
                    let found = secret(&name);
                    (name, found)
                })
                .collect(),
        }
    }
}

/// The ConfigMaps and Secrets a pod names: in its volumes (configMap, secret, projected
/// sources) and its containers' `env`/`envFrom`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReferencedObjects {
    pub config_maps: BTreeSet<String>,
    pub secrets: BTreeSet<String>,
}

impl ReferencedObjects {
    pub fn of(pod: &Pod) -> ReferencedObjects {
        let mut found = ReferencedObjects::default();
        let Some(spec) = &pod.spec else {
            return found;
        };
        for volume in spec.volumes.iter().flatten() {
            if let Some(cm) = &volume.config_map {
                found.config_maps.insert(cm.name.clone());
            }
            if let Some(name) = volume.secret.as_ref().and_then(|s| s.secret_name.clone()) {
                found.secrets.insert(name);
            }
            let projections = volume
                .projected
                .iter()
                .flat_map(|p| p.sources.iter().flatten());
            for projection in projections {
                if let Some(cm) = &projection.config_map {
                    found.config_maps.insert(cm.name.clone());
                }
                if let Some(secret) = &projection.secret {
                    found.secrets.insert(secret.name.clone());
                }
            }
        }
        let containers = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten());
        for container in containers {
            for from in container.env_from.iter().flatten() {
                if let Some(cm) = &from.config_map_ref {
                    found.config_maps.insert(cm.name.clone());
                }
                if let Some(secret) = &from.secret_ref {
                    found.secrets.insert(secret.name.clone());
                }
            }
            let value_from = container
                .env
                .iter()
                .flatten()
                .filter_map(|e| e.value_from.as_ref());
            for source in value_from {
                if let Some(key) = &source.config_map_key_ref {
                    found.config_maps.insert(key.name.clone());
                }
                if let Some(key) = &source.secret_key_ref {
                    found.secrets.insert(key.name.clone());
                }
            }
        }
        found.config_maps.retain(|n| !n.is_empty());
        found.secrets.retain(|n| !n.is_empty());
        found
    }
}

/// Hands a running worker the current state of its pod's sources (see [`PodRefresh`]).
#[derive(Debug, Clone)]
pub struct RefreshHandle(Sender<Msg>);

impl RefreshHandle {
    pub fn refresh(&self, update: PodRefresh) {
        let _ = self.0.send(Msg::Refresh(Box::new(update)));
    }

    /// The pod's current container images (see [`super::image_update`]).
    pub fn images(&self, images: super::ContainerImages) {
        let _ = self.0.send(Msg::Images(images));
    }
}

/// Replaces the objects of `namespace` named in `update` by their current state.
fn replace_named<K: kube::Resource>(
    objects: &mut Vec<K>,
    namespace: &str,
    update: Vec<(String, Option<K>)>,
) {
    for (name, current) in update {
        objects.retain(|o| {
            let meta = o.meta();
            meta.namespace.as_deref().unwrap_or("default") != namespace
                || meta.name.as_deref() != Some(name.as_str())
        });
        objects.extend(current);
    }
}

impl PodWorker {
    pub fn refresh_handle(&self) -> RefreshHandle {
        RefreshHandle(self.tx.clone())
    }

    /// Takes in a [`PodRefresh`]; rewrites the file volumes once a container uses them (before
    /// that, the next start sets them up from the new state anyway).
    pub(super) fn take_refresh(&mut self, update: PodRefresh) {
        let namespace = self
            .pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        self.pod.metadata.labels = update.labels;
        self.pod.metadata.annotations = update.annotations;
        replace_named(
            &mut self.objects.config_maps,
            &namespace,
            update.config_maps,
        );
        replace_named(&mut self.objects.secrets, &namespace, update.secrets);
        if self.stopping || !self.slots.iter().any(|s| s.running.is_some()) {
            return;
        }
        let ctx = crate::volumes::VolumeContext {
            pod: &self.pod,
            objects: &self.objects,
            allocatable: &self.node.allocatable,
        };
        let refreshed = crate::volumes::refresh_file_volumes(ctx, &self.pod_dir());
        for name in &refreshed.updated {
            self.reporter
                .log(&format!("volume {name:?} updated from its sources"));
        }
        for failure in refreshed.failures {
            self.reporter.log(&failure.to_string());
            self.emit(None, failure.event());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodelet_api::k8s::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(yaml: &str) -> Pod {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn config_map(name: &str, ns: &str, value: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..ObjectMeta::default()
            },
            data: Some([("k".to_owned(), value.to_owned())].into()),
            ..ConfigMap::default()
        }
    }

    #[test]
    fn names_every_config_map_and_secret_of_volumes_and_env() {
        let pod = pod(r#"
metadata: {name: p, namespace: ns}
spec:
  volumes:
  - {name: a, configMap: {name: cm-vol}}
  - {name: b, secret: {secretName: s-vol}}
  - name: c
    projected:
      sources:
      - configMap: {name: cm-proj}
      - secret: {name: s-proj}
      - downwardAPI: {items: [{path: l, fieldRef: {fieldPath: metadata.labels}}]}
  - {name: d, emptyDir: {}}
  initContainers:
  - name: i
    image: x
    envFrom: [{secretRef: {name: s-init}}]
  containers:
  - name: c
    image: x
    envFrom: [{configMapRef: {name: cm-from}}]
    env:
    - {name: A, valueFrom: {configMapKeyRef: {name: cm-key, key: k}}}
    - {name: B, valueFrom: {secretKeyRef: {name: s-key, key: k}}}
    - {name: C, value: plain}
"#);
        let found = ReferencedObjects::of(&pod);
        let names = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>();
        assert_eq!(
            names(&found.config_maps),
            ["cm-from", "cm-key", "cm-proj", "cm-vol"]
        );
        assert_eq!(
            names(&found.secrets),
            ["s-init", "s-key", "s-proj", "s-vol"]
        );
    }

    #[test]
    fn a_refresh_carries_the_labels_and_each_named_object_or_its_absence() {
        let mut pod = pod(r#"
metadata: {name: p, namespace: ns, labels: {app: web}}
spec:
  volumes:
  - {name: a, configMap: {name: here}}
  - {name: b, configMap: {name: gone, optional: true}}
  containers: [{name: c, image: x}]
"#);
        let here = config_map("here", "ns", "1");
        let refresh = PodRefresh::of(
            &pod,
            |name| (name == "here").then(|| here.clone()),
            |_| None,
        );
        assert_eq!(
            refresh.labels,
            Some([("app".to_owned(), "web".to_owned())].into())
        );
        assert_eq!(
            refresh.config_maps,
            [("gone".to_owned(), None), ("here".to_owned(), Some(here))]
        );
        // Equal inputs give an equal refresh: the source sends only changes.
        let again = PodRefresh::of(
            &pod,
            |name| (name == "here").then(|| config_map("here", "ns", "1")),
            |_| None,
        );
        assert_eq!(refresh, again);
        let shown = format!("{refresh:?}");
        assert!(shown.contains(r#"["gone (absent)", "here"]"#), "{shown}");
        assert!(!shown.contains("data"), "{shown}");
        pod.metadata.labels = None;
        assert_ne!(refresh, PodRefresh::of(&pod, |_| None, |_| None));
    }

    #[test]
    fn replacing_touches_only_the_named_objects_of_the_namespace() {
        let mut objects = vec![
            config_map("a", "ns", "old"),
            config_map("b", "ns", "kept"),
            config_map("a", "other", "kept"),
            config_map("c", "ns", "deleted"),
        ];
        replace_named(
            &mut objects,
            "ns",
            vec![
                ("a".to_owned(), Some(config_map("a", "ns", "new"))),
                ("c".to_owned(), None),
                ("d".to_owned(), Some(config_map("d", "ns", "created"))),
            ],
        );
        let view: Vec<(String, String, String)> = objects
            .iter()
            .map(|c| {
                (
                    c.metadata.namespace.clone().unwrap(),
                    c.metadata.name.clone().unwrap(),
                    c.data.as_ref().unwrap()["k"].clone(),
                )
            })
            .collect();
        let expected = [
            ("ns", "b", "kept"),
            ("other", "a", "kept"),
            ("ns", "a", "new"),
            ("ns", "d", "created"),
        ]
        .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()));
        assert_eq!(view, expected);
    }
}
