//! The resource types this server serves, as data: everything discovery, routing, storage keys
//! and kubectl's short names need to know about each one. Behaviour that differs per kind
//! (defaults, validation, Tables, selectable fields) is matched on [`Kind`] elsewhere.

pub mod events;
pub mod generic;
pub mod meta;
pub mod typed;

/// The kinds served; per-kind behaviour matches on this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// core/v1 Namespace.
    Namespace,
    /// core/v1 Pod.
    Pod,
    /// core/v1 Secret.
    Secret,
    /// core/v1 ServiceAccount.
    ServiceAccount,
    /// core/v1 Service.
    Service,
    /// core/v1 ConfigMap.
    ConfigMap,
    /// core/v1 Endpoints (only the `kubernetes` one is maintained; there is no endpoints
    /// controller).
    Endpoints,
    /// core/v1 Node.
    Node,
    /// core/v1 Event.
    Event,
    /// events.k8s.io/v1 Event (stored as core/v1 events, converted at the edge).
    EventV1,
    /// discovery.k8s.io/v1 EndpointSlice (only the `kubernetes` one is maintained).
    EndpointSlice,
    /// coordination.k8s.io/v1 Lease.
    Lease,
    /// node.k8s.io/v1 RuntimeClass.
    RuntimeClass,
}

/// A subresource as discovery lists it.
#[derive(Debug)]
pub struct Subresource {
    /// `status`, `log`, ...
    pub name: &'static str,
    /// The kind its requests and responses use.
    pub kind: &'static str,
    /// Its verbs.
    pub verbs: &'static [&'static str],
    /// The group and version of `kind` when not the resource's own (pods/eviction takes a
    /// policy/v1 Eviction; kubectl drain evicts only when discovery says so).
    pub kind_group_version: Option<(&'static str, &'static str)>,
}

/// One resource type.
#[derive(Debug)]
pub struct ResourceType {
    /// Per-kind behaviour selector.
    pub id: Kind,
    /// API group (`""` for core).
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// Plural resource name (URL segment, storage directory).
    pub plural: &'static str,
    /// Singular name.
    pub singular: &'static str,
    /// The kind.
    pub kind: &'static str,
    /// Namespace-scoped or cluster-scoped.
    pub namespaced: bool,
    /// kubectl short names (they come only from discovery).
    pub short_names: &'static [&'static str],
    /// Categories (`all` makes `kubectl get all` include it).
    pub categories: &'static [&'static str],
    /// Subresources.
    pub subresources: &'static [Subresource],
    /// The storage directory under `/registry/`; resources of two groups that are one object
    /// (core and events.k8s.io events) share it.
    pub storage: &'static str,
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Namespaces have no deletecollection upstream.
const NS_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
const STATUS_VERBS: &[&str] = &["get", "patch", "update"];

impl ResourceType {
    /// `group/version`, or `version` for core.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The list kind (`PodList`).
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Verbs of the main resource.
    pub fn verbs(&self) -> &'static [&'static str] {
        if self.id == Kind::Namespace {
            NS_VERBS
        } else {
            VERBS
        }
    }

    /// Whether the main resource has a `status` subresource (so that updates of the main
    /// resource keep the stored status, and status updates keep everything else).
    pub fn has_status(&self) -> bool {
        self.subresources.iter().any(|s| s.name == "status")
    }

    /// The storage prefix of a namespace (or of everything with `None`), ending in `/`.
    pub fn prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("/registry/{}/{ns}/", self.storage),
            _ => format!("/registry/{}/", self.storage),
        }
    }

    /// The storage key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}{name}", self.prefix(namespace))
    }
}

macro_rules! sub {
    ($name:literal, $kind:literal, $verbs:expr) => {
        Subresource {
            name: $name,
            kind: $kind,
            verbs: $verbs,
            kind_group_version: None,
        }
    };
    ($name:literal, $group:literal / $version:literal, $kind:literal, $verbs:expr) => {
        Subresource {
            name: $name,
            kind: $kind,
            verbs: $verbs,
            kind_group_version: Some(($group, $version)),
        }
    };
}

/// Every served resource, in discovery order.
pub static RESOURCES: &[ResourceType] = &[
    ResourceType {
        id: Kind::ConfigMap,
        group: "",
        version: "v1",
        plural: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        subresources: &[],
        storage: "configmaps",
    },
    ResourceType {
        id: Kind::Endpoints,
        group: "",
        version: "v1",
        plural: "endpoints",
        singular: "endpoints",
        kind: "Endpoints",
        namespaced: true,
        short_names: &["ep"],
        categories: &[],
        subresources: &[],
        storage: "services/endpoints",
    },
    ResourceType {
        id: Kind::Event,
        group: "",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        subresources: &[],
        storage: "events",
    },
    ResourceType {
        id: Kind::Namespace,
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        subresources: &[
            sub!("finalize", "Namespace", &["update"]),
            sub!("status", "Namespace", STATUS_VERBS),
        ],
        storage: "namespaces",
    },
    ResourceType {
        id: Kind::Node,
        group: "",
        version: "v1",
        plural: "nodes",
        singular: "node",
        kind: "Node",
        namespaced: false,
        short_names: &["no"],
        categories: &[],
        subresources: &[sub!("status", "Node", STATUS_VERBS)],
        storage: "minions",
    },
    ResourceType {
        id: Kind::Pod,
        group: "",
        version: "v1",
        plural: "pods",
        singular: "pod",
        kind: "Pod",
        namespaced: true,
        short_names: &["po"],
        categories: &["all"],
        subresources: &[
            sub!("binding", "Binding", &["create"]),
            sub!("eviction", "policy" / "v1", "Eviction", &["create"]),
            sub!("exec", "PodExecOptions", &["create", "get"]),
            sub!("log", "Pod", &["get"]),
            sub!("status", "Pod", STATUS_VERBS),
        ],
        storage: "pods",
    },
    ResourceType {
        id: Kind::Secret,
        group: "",
        version: "v1",
        plural: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        storage: "secrets",
    },
    ResourceType {
        id: Kind::ServiceAccount,
        group: "",
        version: "v1",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        kind: "ServiceAccount",
        namespaced: true,
        short_names: &["sa"],
        categories: &[],
        subresources: &[],
        storage: "serviceaccounts",
    },
    ResourceType {
        id: Kind::Service,
        group: "",
        version: "v1",
        plural: "services",
        singular: "service",
        kind: "Service",
        namespaced: true,
        short_names: &["svc"],
        categories: &["all"],
        subresources: &[sub!("status", "Service", STATUS_VERBS)],
        storage: "services/specs",
    },
    ResourceType {
        id: Kind::EndpointSlice,
        group: "discovery.k8s.io",
        version: "v1",
        plural: "endpointslices",
        singular: "endpointslice",
        kind: "EndpointSlice",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        storage: "endpointslices",
    },
    ResourceType {
        id: Kind::Lease,
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        singular: "lease",
        kind: "Lease",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        storage: "leases",
    },
    ResourceType {
        id: Kind::EventV1,
        group: "events.k8s.io",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        subresources: &[],
        storage: "events",
    },
    ResourceType {
        id: Kind::RuntimeClass,
        group: "node.k8s.io",
        version: "v1",
        plural: "runtimeclasses",
        singular: "runtimeclass",
        kind: "RuntimeClass",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        storage: "runtimeclasses",
    },
];

/// The non-core groups, in discovery order (each serves one version, `v1`).
pub static GROUPS: &[&str] = &[
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "node.k8s.io",
];

/// The resource type of `group` with `plural` (version `v1` for every group we serve).
pub fn by_plural(group: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == plural)
}

/// The resource type of a [`Kind`].
pub fn of(kind: Kind) -> &'static ResourceType {
    RESOURCES
        .iter()
        .find(|r| r.id == kind)
        .expect("every Kind is in RESOURCES")
}

/// The resource types of one group and version.
pub fn in_group_version<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static ResourceType> + 'a {
    RESOURCES
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_registry_layout() {
        let pods = by_plural("", "pods").unwrap();
        assert_eq!(
            pods.key(Some("default"), "web"),
            "/registry/pods/default/web"
        );
        assert_eq!(pods.prefix(None), "/registry/pods/");
        let ns = of(Kind::Namespace);
        assert_eq!(
            ns.key(Some("ignored"), "default"),
            "/registry/namespaces/default"
        );
        assert_eq!(of(Kind::RuntimeClass).api_version(), "node.k8s.io/v1");
        assert!(of(Kind::Pod).has_status());
        assert!(!of(Kind::Secret).has_status());
    }

    #[test]
    fn every_kind_is_registered_once() {
        for r in RESOURCES {
            assert_eq!(of(r.id).plural, r.plural);
            assert!(
                r.group.is_empty() || GROUPS.contains(&r.group),
                "{}",
                r.group
            );
        }
    }
}
