//! Discovery: `/version`, `/api`, `/apis`, the per-group-version resource lists, and the
//! aggregated documents (`apidiscovery.k8s.io` v2 and v2beta1) that kubectl ≥ 1.26 asks for
//! first, answered with the exact Content-Type parameters client-go checks to recognise them.

use serde_json::{Value, json};

use crate::resources::{GROUPS, RESOURCES, ResourceType, in_group_version};

/// Which aggregated-discovery version a client accepts, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregated {
    /// `apidiscovery.k8s.io/v2`.
    V2,
    /// `apidiscovery.k8s.io/v2beta1`.
    V2Beta1,
}

impl Aggregated {
    /// Picks the first aggregated form named in an Accept header.
    pub fn from_accept(accept: &str) -> Option<Aggregated> {
        for entry in accept.split(',') {
            let params: Vec<(String, String)> = entry
                .split(';')
                .skip(1)
                .filter_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    Some((k.trim().to_owned(), v.trim().to_owned()))
                })
                .collect();
            let get = |k: &str| {
                params
                    .iter()
                    .find(|(pk, _)| pk == k)
                    .map(|(_, v)| v.as_str())
            };
            if get("g") == Some("apidiscovery.k8s.io") && get("as") == Some("APIGroupDiscoveryList")
            {
                match get("v") {
                    Some("v2") => return Some(Aggregated::V2),
                    Some("v2beta1") => return Some(Aggregated::V2Beta1),
                    _ => {}
                }
            }
        }
        None
    }

    fn version(self) -> &'static str {
        match self {
            Aggregated::V2 => "v2",
            Aggregated::V2Beta1 => "v2beta1",
        }
    }

    /// The response Content-Type.
    pub fn content_type(self) -> String {
        format!(
            "application/json;g=apidiscovery.k8s.io;v={};as=APIGroupDiscoveryList",
            self.version()
        )
    }
}

/// `/version`.
pub fn version() -> Value {
    let git_version = format!("{}-nodelet", nodelet_api::kubernetes_version());
    let minor = git_version
        .trim_start_matches('v')
        .split('.')
        .nth(1)
        .unwrap_or("0")
        .to_owned();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    json!({
        "major": "1",
        "minor": minor,
        "gitVersion": git_version,
        "gitCommit": format!("nodelet-{}", env!("CARGO_PKG_VERSION")),
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("linux/{arch}"),
    })
}

/// `/api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_entry(group: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/v1"), "version": "v1"});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

/// `/apis`.
pub fn groups() -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": GROUPS.iter().map(|g| group_entry(g)).collect::<Vec<_>>(),
    })
}

/// `/apis/<group>`; `None` for groups we do not serve.
pub fn group(group: &str) -> Option<Value> {
    GROUPS.contains(&group).then(|| {
        let mut entry = group_entry(group);
        entry["kind"] = json!("APIGroup");
        entry["apiVersion"] = json!("v1");
        entry
    })
}

fn resource_entry(r: &ResourceType) -> Value {
    let mut entry = json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": r.verbs(),
    });
    if !r.short_names.is_empty() {
        entry["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        entry["categories"] = json!(r.categories);
    }
    entry
}

/// `/api/v1` or `/apis/<group>/<version>`; `None` when nothing is served there.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for r in in_group_version(group, version) {
        resources.push(resource_entry(r));
        for sub in r.subresources {
            let mut entry = json!({
                "name": format!("{}/{}", r.plural, sub.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": sub.kind,
                "verbs": sub.verbs,
            });
            if let Some((group, version)) = sub.kind_group_version {
                entry["group"] = json!(group);
                entry["version"] = json!(version);
            }
            resources.push(entry);
        }
    }
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

fn aggregated_group(group: &str, form: Aggregated) -> Value {
    let resources: Vec<Value> = in_group_version(group, "v1")
        .map(|r| {
            let response_kind = json!({"group": r.group, "version": r.version, "kind": r.kind});
            let mut entry = json!({
                "resource": r.plural,
                "responseKind": response_kind,
                "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": r.singular,
                "verbs": r.verbs(),
            });
            if !r.short_names.is_empty() {
                entry["shortNames"] = json!(r.short_names);
            }
            if !r.categories.is_empty() {
                entry["categories"] = json!(r.categories);
            }
            let subs: Vec<Value> = r
                .subresources
                .iter()
                .map(|s| {
                    let (group, version) = s.kind_group_version.unwrap_or((r.group, r.version));
                    json!({
                        "subresource": s.name,
                        "responseKind": {"group": group, "version": version, "kind": s.kind},
                        "verbs": s.verbs,
                    })
                })
                .collect();
            if !subs.is_empty() {
                entry["subresources"] = Value::Array(subs);
            }
            entry
        })
        .collect();
    let _ = form;
    let mut metadata = json!({"creationTimestamp": null});
    if !group.is_empty() {
        metadata["name"] = json!(group);
    }
    json!({
        "metadata": metadata,
        "versions": [{"version": "v1", "resources": resources, "freshness": "Current"}],
    })
}

/// The aggregated document of `/api` (`core`: true) or `/apis`.
pub fn aggregated(core: bool, form: Aggregated) -> Value {
    let items: Vec<Value> = if core {
        vec![aggregated_group("", form)]
    } else {
        GROUPS.iter().map(|g| aggregated_group(g, form)).collect()
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{}", form.version()),
        "metadata": {},
        "items": items,
    })
}

/// Every resource type (used to check that discovery covers the registry).
pub fn all() -> &'static [ResourceType] {
    RESOURCES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_aggregated_accept_of_kubectl() {
        let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(Aggregated::from_accept(accept), Some(Aggregated::V2));
        assert_eq!(Aggregated::from_accept("application/json, */*"), None);
    }

    #[test]
    fn core_list_has_short_names_categories_and_subresources() {
        let list = resource_list("", "v1").unwrap();
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        for want in [
            "pods",
            "pods/log",
            "pods/exec",
            "pods/status",
            "pods/binding",
            "pods/eviction",
            "nodes/status",
            "namespaces",
            "events",
            "secrets",
            "serviceaccounts",
            "services",
            "configmaps",
        ] {
            assert!(names.contains(&want), "{want}");
        }
        let pods = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods")
            .unwrap();
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        // kubectl drain evicts only when pods/eviction names policy/v1 (else it deletes).
        let eviction = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods/eviction")
            .unwrap();
        assert_eq!(
            (&eviction["group"], &eviction["version"], &eviction["kind"]),
            (&json!("policy"), &json!("v1"), &json!("Eviction"))
        );
        assert!(resource_list("node.k8s.io", "v1").is_some());
        assert!(resource_list("apps", "v1").is_none());
        let agg = aggregated(false, Aggregated::V2);
        assert_eq!(agg["items"].as_array().unwrap().len(), GROUPS.len());
        assert!(all().len() > 10);
    }
}
