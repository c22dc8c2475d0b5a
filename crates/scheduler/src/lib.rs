//! # nodelet-scheduler
//!
//! Binds pending pods to nodes: nodeName, nodeSelector, required node affinity, taints and
//! tolerations, and resource requests plus RuntimeClass overhead against allocatable.
//!
//! **May not:** write anything but bindings and scheduling events, and only through the API.
