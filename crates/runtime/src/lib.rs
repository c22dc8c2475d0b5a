//! # nodelet-runtime
//!
//! Everything between "this pod's container, with this image" and a process under a real OCI
//! runtime: the RuntimeClass handler table (runc, crun, youki, ...), OCI spec generation, root
//! filesystem snapshots, the per-container shim and its CRI-format logs, pod sandboxes
//! (namespaces, `/etc/hosts`, CNI networking) and volumes.
//!
//! **May not:** talk to the API server or pull images; raw syscalls go through `nodelet-sys`.
//!
//! How a container comes to run:
//! 1. [`handlers::HandlerTable`] turns the RuntimeClass handler name into a runtime
//!    ([`oci_runtime::OciRuntime`], the OCI command-line driver);
//! 2. [`bundle::Bundle::create`] makes the container's directory and mounts its root
//!    filesystem ([`rootfs`]: overlayfs over the image's layer snapshots);
//! 3. [`user::resolve`] finds the uid and gids in the image's `/etc/passwd` and `/etc/group`;
//! 4. [`spec::generate`] turns a [`spec::ContainerSpec`] into `config.json`, which the bundle
//!    stores with our metadata (the stop signal);
//! 5. [`container::Container`] creates, starts, waits for, stops, execs in and deletes it;
//!    for pods, [`shim::ShimHandle::spawn`] has a per-container shim process create and start
//!    it, copy its output into a CRI log file ([`logs`]) and record its exit, surviving
//!    nodelet restarts ([`shim::ShimHandle::attach`]).
//!
//! A pod's containers share a [`sandbox::Sandbox`]: its network, IPC and UTS namespaces
//! pinned in its directory, its CNI attachment ([`cni`]: the pod's IPs) and its
//! `/etc/resolv.conf`; [`sandbox::Sandbox::join`] puts a container spec into it.

pub mod bundle;
pub mod cni;
pub mod command;
pub mod container;
pub mod exec_reaper;
pub mod handlers;
pub mod logs;
pub mod oci;
pub mod oci_runtime;
pub mod pause;
pub mod pod_cgroup;
pub mod propagation;
pub mod rootfs;
pub mod sandbox;
pub mod seccomp;
pub mod shim;
pub mod signal;
pub mod spec;
pub mod user;
pub mod volumes;
