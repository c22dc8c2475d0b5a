//! # nodelet-apiserver
//!
//! The Kubernetes REST API that `kubectl` talks to: discovery, CRUD, list and watch,
//! subresources (status, log, exec, binding, eviction), patches, authentication and the
//! admission chain (defaulting, validation, ServiceAccount, RuntimeClass, AlwaysPullImages).
//!
//! **May not:** run containers or pull images; it is the only crate that knows HTTP and the
//! JSON wire formats of the API.
