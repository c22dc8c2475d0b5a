//! # nodelet-store
//!
//! Durable storage of API objects behind one `Storage` trait: a single increasing revision
//! (the resourceVersion), compare-and-swap writes and watches that resume from a revision.
//! Backends: embedded SQLite (default) and etcd, each passing the same conformance suite.
//!
//! **May not:** know Kubernetes semantics beyond keys, revisions and opaque values: validation
//! and admission belong to `nodelet-apiserver`.
