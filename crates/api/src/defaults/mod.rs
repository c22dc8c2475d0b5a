//! Defaulting: the values the API server fills in when an object arrives, so that what is
//! stored (and shown by `kubectl get -o yaml`) matches a real cluster.

pub mod image;
pub mod objects;
pub mod pod;

pub use image::default_pull_policy;
pub use objects::{
    default_namespace, default_node, default_runtime_class, default_secret, default_service,
};
pub use pod::{
    canonicalize_resource_list, default_container, default_pod, prepare_pod_for_create, qos_class,
};
