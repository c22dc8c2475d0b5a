//! # nodelet-image
//!
//! The image half of the Kubernetes Containers section: image references and their
//! normalisation, pull policy, the credential keyring (node files, pod secrets, exec plugins),
//! the registry client, the content-addressed store, layer unpacking into snapshots, and
//! image garbage collection.
//!
//! **May not:** know about pods, the API server or runtimes. Callers hand it a reference, a
//! policy and the credentials they are allowed to use; it never reads secrets on its own and
//! never runs a credential helper named by pod data.

pub mod digest;
pub mod gc;
pub mod images;
pub mod keyring;
pub mod layout;
pub mod oci;
pub mod pull;
pub mod pull_policy;
pub mod pull_queue;
pub mod reference;
pub mod registry;
pub mod store;
pub mod unpack;
