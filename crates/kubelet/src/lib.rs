//! # nodelet-kubelet
//!
//! What a node does with a pod: per-pod workers that re-run an idempotent sync against what
//! they observe (so a restart of nodelet recovers through the same code), image pulls with
//! back-off, the container environment (env, envFrom, downward API, service variables),
//! RuntimeClass resolution, lifecycle hooks, restarts, events and pod status.
//!
//! **May not:** reach the API server except through `kube::Client`, touch the store directly,
//! or run syscalls itself (that is `nodelet-runtime`'s and `nodelet-sys`'s job).
