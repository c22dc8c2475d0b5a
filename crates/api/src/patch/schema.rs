//! Strategic-merge metadata for the kinds nodelet serves: which lists merge by which key
//! (the `patchStrategy`/`patchMergeKey` tags of the Go API types), which primitive lists are
//! unions, and where `$retainKeys` applies.
//!
//! Only fields that need something other than the default are listed: an unlisted object
//! merges member by member, and an unlisted list is replaced whole (upstream's behaviour for
//! lists without a patch strategy, e.g. `tolerations`, `command`, a ServiceAccount's
//! `imagePullSecrets`).

/// How a field of an object is patched.
#[derive(Clone, Copy, Debug)]
pub enum FieldKind {
    /// A nested object with its own metadata.
    Struct(&'static Schema),
    /// A list of objects merged by `key`; elements follow `elem`.
    MergeByKey {
        key: &'static str,
        elem: &'static Schema,
        retain_keys: bool,
    },
    /// A list of scalars merged as a set union (`metadata.finalizers`).
    MergePrimitives,
}

/// The patch metadata of one object type.
#[derive(Debug)]
pub struct Schema {
    pub fields: &'static [(&'static str, FieldKind)],
}

impl Schema {
    pub fn field(&self, name: &str) -> Option<FieldKind> {
        self.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, k)| *k)
    }
}

/// An object with no list metadata.
pub static PLAIN: Schema = Schema { fields: &[] };

const fn by_key(key: &'static str, elem: &'static Schema) -> FieldKind {
    FieldKind::MergeByKey {
        key,
        elem,
        retain_keys: false,
    }
}

pub static OBJECT_META: Schema = Schema {
    fields: &[
        ("finalizers", FieldKind::MergePrimitives),
        ("ownerReferences", by_key("uid", &PLAIN)),
    ],
};

pub static CONTAINER: Schema = Schema {
    fields: &[
        ("ports", by_key("containerPort", &PLAIN)),
        ("env", by_key("name", &PLAIN)),
        ("volumeMounts", by_key("mountPath", &PLAIN)),
        ("volumeDevices", by_key("devicePath", &PLAIN)),
    ],
};

pub static POD_SPEC: Schema = Schema {
    fields: &[
        (
            "volumes",
            FieldKind::MergeByKey {
                key: "name",
                elem: &PLAIN,
                retain_keys: true,
            },
        ),
        ("initContainers", by_key("name", &CONTAINER)),
        ("containers", by_key("name", &CONTAINER)),
        ("ephemeralContainers", by_key("name", &CONTAINER)),
        ("imagePullSecrets", by_key("name", &PLAIN)),
        ("hostAliases", by_key("ip", &PLAIN)),
        ("topologySpreadConstraints", by_key("topologyKey", &PLAIN)),
        (
            "resourceClaims",
            FieldKind::MergeByKey {
                key: "name",
                elem: &PLAIN,
                retain_keys: true,
            },
        ),
        ("schedulingGates", by_key("name", &PLAIN)),
    ],
};

pub static POD_STATUS: Schema = Schema {
    fields: &[
        ("conditions", by_key("type", &PLAIN)),
        ("podIPs", by_key("ip", &PLAIN)),
        ("hostIPs", by_key("ip", &PLAIN)),
        (
            "resourceClaimStatuses",
            FieldKind::MergeByKey {
                key: "name",
                elem: &PLAIN,
                retain_keys: true,
            },
        ),
    ],
};

pub static POD: Schema = Schema {
    fields: &[
        ("metadata", FieldKind::Struct(&OBJECT_META)),
        ("spec", FieldKind::Struct(&POD_SPEC)),
        ("status", FieldKind::Struct(&POD_STATUS)),
    ],
};

pub static SERVICE_SPEC: Schema = Schema {
    fields: &[("ports", by_key("port", &PLAIN))],
};
pub static WITH_CONDITIONS: Schema = Schema {
    fields: &[("conditions", by_key("type", &PLAIN))],
};

pub static SERVICE: Schema = Schema {
    fields: &[
        ("metadata", FieldKind::Struct(&OBJECT_META)),
        ("spec", FieldKind::Struct(&SERVICE_SPEC)),
        ("status", FieldKind::Struct(&WITH_CONDITIONS)),
    ],
};

pub static SERVICE_ACCOUNT: Schema = Schema {
    fields: &[
        ("metadata", FieldKind::Struct(&OBJECT_META)),
        ("secrets", by_key("name", &PLAIN)),
    ],
};

pub static NAMESPACE: Schema = Schema {
    fields: &[
        ("metadata", FieldKind::Struct(&OBJECT_META)),
        ("status", FieldKind::Struct(&WITH_CONDITIONS)),
    ],
};

pub static NODE_SPEC: Schema = Schema {
    fields: &[("podCIDRs", FieldKind::MergePrimitives)],
};
pub static NODE_STATUS: Schema = Schema {
    fields: &[
        ("conditions", by_key("type", &PLAIN)),
        ("addresses", by_key("type", &PLAIN)),
    ],
};

pub static NODE: Schema = Schema {
    fields: &[
        ("metadata", FieldKind::Struct(&OBJECT_META)),
        ("spec", FieldKind::Struct(&NODE_SPEC)),
        ("status", FieldKind::Struct(&NODE_STATUS)),
    ],
};

/// Kinds whose only list metadata is in `metadata` (Secret, ConfigMap, RuntimeClass, Event,
/// Lease, ...).
pub static META_ONLY: Schema = Schema {
    fields: &[("metadata", FieldKind::Struct(&OBJECT_META))],
};

/// The metadata for a kind; kinds without special lists get [`META_ONLY`].
pub fn for_kind(kind: &str) -> &'static Schema {
    match kind {
        "Pod" => &POD,
        "Service" => &SERVICE,
        "ServiceAccount" => &SERVICE_ACCOUNT,
        "Namespace" => &NAMESPACE,
        "Node" => &NODE,
        _ => &META_ONLY,
    }
}
