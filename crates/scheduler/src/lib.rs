//! # nodelet-scheduler
//!
//! Binds pending pods to nodes: nodeName, nodeSelector, required node affinity, taints and
//! tolerations, and resource requests plus RuntimeClass overhead against allocatable.
//!
//! **May not:** write anything but bindings, scheduling events and the pod's `PodScheduled`
//! condition, and only through the API.
//!
//! | module | concept |
//! |---|---|
//! | [`fit`] | the filters, the least-allocated choice and the `FailedScheduling` text (pure) |
//! | [`run`] | the loop: list and watch through the in-process client, bind, record events |

pub mod fit;
pub mod run;

pub use run::{Config, Scheduler};
