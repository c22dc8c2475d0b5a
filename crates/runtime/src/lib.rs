//! # nodelet-runtime
//!
//! Everything between "this pod's container, with this image" and a process under a real OCI
//! runtime: the RuntimeClass handler table (runc, crun, youki, ...), OCI spec generation, root
//! filesystem snapshots, the per-container shim and its CRI-format logs, pod sandboxes
//! (namespaces, `/etc/hosts`, CNI networking) and volumes.
//!
//! **May not:** talk to the API server or pull images; raw syscalls go through `nodelet-sys`.
