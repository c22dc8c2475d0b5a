//! A running pod's container images changed (`kubectl set image`): the only container fields
//! a pod update may change. A pod source that sees the API sends the worker the pod's images
//! ([`ContainerImages`]); the worker takes each into its container's spec. As upstream's
//! `computePodActions` does for a container whose spec hash changed, a running app container
//! is then killed on the next sync (`Killing` "Container <c> definition changed, will be
//! restarted", PreStop, the stop within the pod's grace period) and started again with the new
//! image at once, whatever the restart policy and without crash back-off (its back-off key
//! holds the spec's hash). Init containers only take the image for their next start.
//!
//! Each container's directory keeps the image it was started from (`image.json`, upstream
//! keeps the spec's hash in the container's labels), so a worker that adopts a container
//! after a nodelet restart sees a change it missed meanwhile, and the status keeps its
//! `imageID`.

use std::path::Path;

use nodelet_api::k8s::api::core::v1::{Container, Pod};
use serde::{Deserialize, Serialize};

use super::{KillReason, PodWorker};
use crate::events::ContainerList;

/// The image of each container and init container of a pod, by container name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerImages(Vec<(String, String)>);

impl ContainerImages {
    pub fn of(pod: &Pod) -> ContainerImages {
        let Some(spec) = &pod.spec else {
            return ContainerImages::default();
        };
        let containers = spec
            .init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter());
        ContainerImages(
            containers
                .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
                .collect(),
        )
    }

    fn image_of(&self, container: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| name == container)
            .map(|(_, image)| image.as_str())
    }
}

/// The image a container was started from, kept in its directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StartedImage {
    /// As the spec named it.
    image: String,
    /// `status.containerStatuses[].imageID`.
    image_id: String,
}

const STARTED_IMAGE_FILE: &str = "image.json";

/// Records in container directory `dir` the image it starts from.
pub(super) fn save_started_image(dir: &Path, image: &str, image_id: &str) -> std::io::Result<()> {
    let started = StartedImage {
        image: image.to_owned(),
        image_id: image_id.to_owned(),
    };
    let text = serde_json::to_vec(&started).map_err(std::io::Error::other)?;
    std::fs::write(dir.join(STARTED_IMAGE_FILE), text)
}

fn load_started_image(dir: &Path) -> Option<StartedImage> {
    let bytes = std::fs::read(dir.join(STARTED_IMAGE_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Sets the image of the containers of `containers` named in `images`.
fn set_images(containers: &mut [Container], images: &ContainerImages) {
    for container in containers {
        if let Some(image) = images.image_of(&container.name) {
            container.image = Some(image.to_owned());
        }
    }
}

impl PodWorker {
    /// Takes in the pod's current images; a running app container whose image changed is
    /// marked for the restart on the next sync.
    pub(super) fn take_images(&mut self, images: ContainerImages) {
        if let Some(spec) = self.pod.spec.as_mut() {
            set_images(&mut spec.containers, &images);
            set_images(
                spec.init_containers.as_deref_mut().unwrap_or_default(),
                &images,
            );
        }
        for slot in &mut self.slots {
            let Some(image) = images.image_of(&slot.spec.name) else {
                continue;
            };
            if slot.spec.image.as_deref() == Some(image) {
                continue;
            }
            self.reporter.log(&format!(
                "container {} image changed to {image:?}",
                slot.spec.name
            ));
            slot.spec.image = Some(image.to_owned());
            if slot.list == ContainerList::Regular && slot.running.is_some() {
                slot.definition_changed = true;
            }
        }
    }

    /// Container `i` was adopted from directory `dir` (running when `alive`): its status's
    /// `imageID`, and whether it runs an image the spec no longer names.
    pub(super) fn adopted_image(&mut self, i: usize, dir: &Path, alive: bool) {
        let Some(started) = load_started_image(dir) else {
            return;
        };
        let slot = &mut self.slots[i];
        if alive
            && slot.list == ContainerList::Regular
            && slot.spec.image.as_deref() != Some(started.image.as_str())
        {
            self.reporter.log(&format!(
                "container {} runs {:?}, the pod names {:?} now",
                slot.spec.name,
                started.image,
                slot.spec.image.as_deref().unwrap_or_default()
            ));
            slot.definition_changed = true;
        }
        slot.image_id = Some(started.image_id);
    }

    /// Kills app container `i` when its definition changed while it ran (see the module
    /// docs) and collects it, so the sync starts it again in the same pass. Whether it is no
    /// longer running.
    pub(super) fn kill_if_definition_changed(&mut self, i: usize) -> bool {
        let slot = &self.slots[i];
        let Some(running) = slot.running.as_ref().filter(|_| slot.definition_changed) else {
            return false;
        };
        if running.stop_in_progress.is_some() {
            // A probe's kill is stopping it: started again once collected.
            return false;
        }
        let pod_ips = self.pod_ips();
        super::stop_with_pre_stop(
            &self.pod,
            slot,
            running,
            (KillReason::DefinitionChanged, None),
            &pod_ips,
            &*self.reporter,
        );
        let Some(exit) = running.exit.get() else {
            return false;
        };
        self.collect(i, exit);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn images_of_init_and_app_containers_by_name() {
        let pod = pod(r#"
metadata: {name: p}
spec:
  initContainers: [{name: init, image: "a:1"}]
  containers: [{name: main, image: "b:1"}, {name: side}]
"#);
        let images = ContainerImages::of(&pod);
        assert_eq!(images.image_of("init"), Some("a:1"));
        assert_eq!(images.image_of("main"), Some("b:1"));
        assert_eq!(images.image_of("side"), Some(""));
        assert_eq!(images.image_of("other"), None);
    }

    #[test]
    fn the_started_image_is_read_back_from_the_container_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_started_image(dir.path()), None);
        save_started_image(dir.path(), "reg/app:v1", "reg/app@sha256:ab").unwrap();
        assert_eq!(
            load_started_image(dir.path()),
            Some(StartedImage {
                image: "reg/app:v1".into(),
                image_id: "reg/app@sha256:ab".into(),
            })
        );
    }

    #[test]
    fn setting_images_changes_only_the_named_containers() {
        let mut pod = pod(r#"
metadata: {name: p}
spec:
  containers: [{name: main, image: "b:1", command: [sleep]}, {name: side, image: "c:1"}]
"#);
        let mut changed = pod.clone();
        changed.spec.as_mut().unwrap().containers[0].image = Some("b:2".into());
        let images = ContainerImages(vec![("main".into(), "b:2".into())]);
        set_images(&mut pod.spec.as_mut().unwrap().containers, &images);
        assert_eq!(pod, changed);
        assert_ne!(ContainerImages::of(&pod), images);
    }
}
