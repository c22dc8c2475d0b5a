//! Server-side `Table` output (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`): what
//! `kubectl get` prints, cell by cell. kubectl prints the cells as sent, so the formatting
//! (ages, the pod STATUS column, `443/TCP`) is done here, following kubectl's printers.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::resources::{Kind, ResourceType, meta};

/// What each row's `object` holds (`includeObject`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IncludeObject {
    /// None at all.
    None,
    /// `PartialObjectMetadata` (the default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses the query parameter.
    pub fn parse(s: &str) -> IncludeObject {
        match s {
            "None" => IncludeObject::None,
            "Object" => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// Whether an Accept header asks for a meta.k8s.io Table (v1 or v1beta1).
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|entry| {
        let mut parts = entry.split(';').map(str::trim);
        let _media = parts.next();
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let get = |k: &str| params.iter().find(|(pk, _)| *pk == k).map(|(_, v)| *v);
        get("as") == Some("Table")
            && get("g") == Some("meta.k8s.io")
            && matches!(get("v"), Some("v1") | Some("v1beta1"))
    })
}

fn col(name: &str, ty: &str, format: &str, description: &str, priority: i32) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
}

const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated.";
const AGE_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.";

fn name_col() -> Value {
    col("Name", "string", "name", NAME_DESC, 0)
}

fn age_col() -> Value {
    col("Age", "string", "", AGE_DESC, 0)
}

/// The column definitions of a kind.
pub fn columns(rt: &ResourceType) -> Vec<Value> {
    match rt.id {
        Kind::Pod => vec![
            name_col(),
            col(
                "Ready",
                "string",
                "",
                "The aggregate readiness state of this pod for accepting traffic.",
                0,
            ),
            col(
                "Status",
                "string",
                "",
                "The aggregate status of the containers in this pod.",
                0,
            ),
            col(
                "Restarts",
                "string",
                "",
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
                0,
            ),
            age_col(),
            col(
                "IP",
                "string",
                "",
                "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
                1,
            ),
            col(
                "Node",
                "string",
                "",
                "NodeName is a request to schedule this pod onto a specific node.",
                1,
            ),
            col(
                "Nominated Node",
                "string",
                "",
                "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods.",
                1,
            ),
            col(
                "Readiness Gates",
                "string",
                "",
                "If specified, all readiness gates will be evaluated for pod readiness.",
                1,
            ),
        ],
        Kind::Node => vec![
            name_col(),
            col("Status", "string", "", "The status of the node", 0),
            col("Roles", "string", "", "The roles of the node", 0),
            age_col(),
            col(
                "Version",
                "string",
                "",
                "Kubelet Version reported by the node.",
                0,
            ),
            col(
                "Internal-IP",
                "string",
                "",
                "List of addresses reachable to the node. Queried from cloud provider, if available.",
                1,
            ),
            col(
                "External-IP",
                "string",
                "",
                "List of addresses reachable to the node. Queried from cloud provider, if available.",
                1,
            ),
            col(
                "OS-Image",
                "string",
                "",
                "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
                1,
            ),
            col(
                "Kernel-Version",
                "string",
                "",
                "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
                1,
            ),
            col(
                "Container-Runtime",
                "string",
                "",
                "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
                1,
            ),
        ],
        Kind::Event | Kind::EventV1 => vec![
            col(
                "Last Seen",
                "string",
                "",
                "Time when last event occurred",
                0,
            ),
            col(
                "Type",
                "string",
                "",
                "Type of this event (Normal, Warning), new types could be added in the future.",
                0,
            ),
            col(
                "Reason",
                "string",
                "",
                "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
                0,
            ),
            col(
                "Object",
                "string",
                "",
                "The object that this event is about.",
                0,
            ),
            col(
                "Message",
                "string",
                "",
                "A human-readable description of the status of this operation.",
                0,
            ),
            col(
                "Source",
                "string",
                "",
                "The component reporting this event. Should be a short machine understandable string.",
                1,
            ),
            col(
                "Subobject",
                "string",
                "",
                "The subobject that this event is about.",
                1,
            ),
            col(
                "First Seen",
                "string",
                "",
                "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
                1,
            ),
            col(
                "Count",
                "integer",
                "",
                "The number of times this event has occurred.",
                1,
            ),
            col("Name", "string", "name", NAME_DESC, 1),
        ],
        Kind::Service => vec![
            name_col(),
            col(
                "Type",
                "string",
                "",
                "type determines how the Service is exposed.",
                0,
            ),
            col(
                "Cluster-IP",
                "string",
                "",
                "clusterIP is the IP address of the service and is usually assigned randomly.",
                0,
            ),
            col(
                "External-IP",
                "string",
                "",
                "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
                0,
            ),
            col(
                "Port(s)",
                "string",
                "",
                "The list of ports that are exposed by this service.",
                0,
            ),
            age_col(),
            col(
                "Selector",
                "string",
                "",
                "Route service traffic to pods with label keys and values matching this selector.",
                1,
            ),
        ],
        Kind::Namespace => vec![
            name_col(),
            col("Status", "string", "", "The status of the namespace", 0),
            age_col(),
        ],
        Kind::Secret => vec![
            name_col(),
            col(
                "Type",
                "string",
                "",
                "Used to facilitate programmatic handling of secret data.",
                0,
            ),
            col("Data", "string", "", "Data contains the secret data.", 0),
            age_col(),
        ],
        Kind::ServiceAccount => vec![
            name_col(),
            col(
                "Secrets",
                "string",
                "",
                "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
                0,
            ),
            age_col(),
        ],
        Kind::Endpoints => vec![
            name_col(),
            col(
                "Endpoints",
                "string",
                "",
                "Endpoints is the list of endpoints.",
                0,
            ),
            age_col(),
        ],
        Kind::EndpointSlice => vec![
            name_col(),
            col(
                "AddressType",
                "string",
                "",
                "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation. The following address types are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. * FQDN: Represents a Fully Qualified Domain Name. (Deprecated) The EndpointSlice controller only generates, and kube-proxy only processes, slices of addressType \"IPv4\" and \"IPv6\". No semantics are defined for the \"FQDN\" type.",
                0,
            ),
            col(
                "Ports",
                "string",
                "",
                "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must have a unique name. Each slice may include a maximum of 100 ports. Services always have at least 1 port, so EndpointSlices generated by the EndpointSlice controller will likewise always have at least 1 port. EndpointSlices used for other purposes may have an empty ports list.",
                0,
            ),
            col(
                "Endpoints",
                "string",
                "",
                "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints.",
                0,
            ),
            age_col(),
        ],
        Kind::ConfigMap => vec![
            name_col(),
            col(
                "Data",
                "string",
                "",
                "Data contains the configuration data.",
                0,
            ),
            age_col(),
        ],
        Kind::Lease => vec![
            name_col(),
            col(
                "Holder",
                "string",
                "",
                "holderIdentity contains the identity of the holder of a current lease.",
                0,
            ),
            age_col(),
        ],
        Kind::RuntimeClass => vec![
            name_col(),
            col(
                "Handler",
                "string",
                "",
                "handler specifies the underlying runtime and configuration that the CRI implementation will use to handle pods of this class.",
                0,
            ),
            age_col(),
        ],
    }
}

fn s<'a>(v: &'a Value, path: &str) -> &'a str {
    meta::path(v, path).and_then(Value::as_str).unwrap_or("")
}

fn or_none(v: &str) -> String {
    if v.is_empty() {
        "<none>".into()
    } else {
        v.to_owned()
    }
}

fn created_age(obj: &Value, now: jiff::Timestamp) -> String {
    meta::age(meta::meta_str(obj, "creationTimestamp"), now)
}

/// The cells of one object (storage or client form of `rt`).
pub fn cells(rt: &ResourceType, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let name = json!(meta::name(obj));
    let age = json!(created_age(obj, now));
    match rt.id {
        Kind::Pod => pod_cells(obj, now),
        Kind::Node => node_cells(obj, now),
        Kind::Event => event_cells(obj, now),
        Kind::EventV1 => event_cells(&crate::resources::events::to_core(obj.clone()), now),
        Kind::Service => service_cells(obj, now),
        Kind::Namespace => vec![name, json!(s(obj, "status.phase")), age],
        Kind::Secret => {
            let data = obj["data"].as_object().map_or(0, |d| d.len());
            vec![name, json!(s(obj, "type")), json!(data.to_string()), age]
        }
        Kind::ServiceAccount => {
            let n = obj["secrets"].as_array().map_or(0, Vec::len);
            vec![name, json!(n.to_string()), age]
        }
        Kind::ConfigMap => {
            let n = obj["data"].as_object().map_or(0, |d| d.len())
                + obj["binaryData"].as_object().map_or(0, |d| d.len());
            vec![name, json!(n.to_string()), age]
        }
        Kind::Endpoints => vec![name, json!(endpoints_summary(obj)), age],
        Kind::EndpointSlice => vec![
            name,
            json!(s(obj, "addressType")),
            json!(slice_ports(obj)),
            json!(slice_endpoints(obj)),
            age,
        ],
        Kind::Lease => vec![name, json!(s(obj, "spec.holderIdentity")), age],
        Kind::RuntimeClass => vec![name, json!(s(obj, "handler")), age],
    }
}

fn status_entries<'a>(pod: &'a Value, field: &str) -> Vec<&'a Value> {
    pod["status"][field]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

fn condition_true(obj: &Value, ty: &str) -> bool {
    obj["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == ty && c["status"] == "True"))
}

/// The pod printer of kubectl: READY, STATUS (with init progress, waiting and terminated
/// reasons, Completed/NotReady, Terminating), RESTARTS with the last restart's age.
pub fn pod_cells(pod: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let init_specs = pod["spec"]["initContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let restartable: Vec<String> = init_specs
        .iter()
        .filter(|c| c["restartPolicy"] == "Always")
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect();
    let mut total = pod["spec"]["containers"].as_array().map_or(0, Vec::len) + restartable.len();
    let mut ready = 0usize;
    let mut restarts: i64 = 0;
    let mut last_restart: Option<jiff::Timestamp> = None;
    let mut note_restart = |c: &Value, restarts: &mut i64| {
        let count = c["restartCount"].as_i64().unwrap_or(0);
        *restarts += count;
        if count > 0
            && let Some(ts) = c["lastState"]["terminated"]["finishedAt"]
                .as_str()
                .and_then(meta::parse_time)
            && last_restart.is_none_or(|l| ts > l)
        {
            last_restart = Some(ts);
        }
    };
    let mut reason = s(pod, "status.phase").to_owned();
    if !s(pod, "status.reason").is_empty() {
        reason = s(pod, "status.reason").to_owned();
    }
    if pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "PodScheduled" && c["reason"] == "SchedulingGated")
    }) {
        reason = "SchedulingGated".into();
    }
    let mut initializing = false;
    let init_statuses = status_entries(pod, "initContainerStatuses");
    let n_init = init_specs.len();
    for (i, c) in init_statuses.iter().enumerate() {
        note_restart(c, &mut restarts);
        let name = c["name"].as_str().unwrap_or("");
        if restartable.iter().any(|r| r == name) {
            if c["started"] == true && c["ready"] == true {
                ready += 1;
            }
            if c["started"] == true {
                continue;
            }
        }
        let term = &c["state"]["terminated"];
        let wait = &c["state"]["waiting"];
        if term.is_object() && term["exitCode"].as_i64() == Some(0) {
            continue;
        }
        if term.is_object() {
            reason = match term["reason"].as_str().filter(|r| !r.is_empty()) {
                Some(r) => format!("Init:{r}"),
                None => match term["signal"].as_i64().filter(|s| *s != 0) {
                    Some(sig) => format!("Init:Signal:{sig}"),
                    None => format!("Init:ExitCode:{}", term["exitCode"].as_i64().unwrap_or(0)),
                },
            };
        } else if let Some(r) = wait["reason"]
            .as_str()
            .filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            reason = format!("Init:{r}");
        } else {
            reason = format!("Init:{i}/{n_init}");
        }
        initializing = true;
        break;
    }
    if !initializing || condition_true(pod, "Initialized") {
        restarts = 0;
        let mut has_running = false;
        for c in status_entries(pod, "containerStatuses").iter().rev() {
            note_restart(c, &mut restarts);
            let term = &c["state"]["terminated"];
            let wait = &c["state"]["waiting"];
            if let Some(r) = wait["reason"].as_str().filter(|r| !r.is_empty()) {
                reason = r.to_owned();
            } else if let Some(r) = term["reason"].as_str().filter(|r| !r.is_empty()) {
                reason = r.to_owned();
            } else if term.is_object() {
                reason = match term["signal"].as_i64().filter(|s| *s != 0) {
                    Some(sig) => format!("Signal:{sig}"),
                    None => format!("ExitCode:{}", term["exitCode"].as_i64().unwrap_or(0)),
                };
            } else if c["ready"] == true && c["state"]["running"].is_object() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(pod, "Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }
    let phase = s(pod, "status.phase");
    let deleting = pod["metadata"]["deletionTimestamp"].is_string();
    if deleting && s(pod, "status.reason") == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".into();
    }
    if total == 0 {
        total = 0;
    }
    let restarts_cell = match last_restart {
        Some(ts) => format!(
            "{restarts} ({} ago)",
            meta::human_duration(now.as_second() - ts.as_second())
        ),
        None => restarts.to_string(),
    };
    let ip = {
        let ip = s(pod, "status.podIP");
        or_none(ip)
    };
    let gates = pod["spec"]["readinessGates"]
        .as_array()
        .filter(|g| !g.is_empty());
    let gates_cell = match gates {
        Some(gates) => {
            let passing = gates
                .iter()
                .filter(|g| condition_true(pod, g["conditionType"].as_str().unwrap_or("")))
                .count();
            format!("{passing}/{}", gates.len())
        }
        None => "<none>".into(),
    };
    vec![
        json!(meta::name(pod)),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_cell),
        json!(created_age(pod, now)),
        json!(ip),
        json!(or_none(s(pod, "spec.nodeName"))),
        json!(or_none(s(pod, "status.nominatedNodeName"))),
        json!(gates_cell),
    ]
}

fn node_cells(node: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let mut status: Vec<String> = Vec::new();
    if let Some(ready) = node["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
    {
        status.push(match ready["status"].as_str() {
            Some("True") => "Ready".into(),
            Some("False") => "NotReady".into(),
            _ => "Unknown".into(),
        });
    } else {
        status.push("Unknown".into());
    }
    if node["spec"]["unschedulable"] == true {
        status.push("SchedulingDisabled".into());
    }
    let labels = meta::labels(node);
    let mut roles: Vec<String> = labels
        .iter()
        .filter_map(|(k, v)| {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                (!role.is_empty()).then(|| role.to_owned())
            } else if k == "kubernetes.io/role" && !v.is_empty() {
                Some(v.clone())
            } else {
                None
            }
        })
        .collect();
    roles.sort();
    roles.dedup();
    let address = |ty: &str| -> String {
        node["status"]["addresses"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["type"] == ty))
            .and_then(|x| x["address"].as_str())
            .map_or_else(|| "<none>".into(), str::to_owned)
    };
    vec![
        json!(meta::name(node)),
        json!(status.join(",")),
        json!(if roles.is_empty() {
            "<none>".into()
        } else {
            roles.join(",")
        }),
        json!(created_age(node, now)),
        json!(s(node, "status.nodeInfo.kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(or_none(s(node, "status.nodeInfo.osImage"))),
        json!(or_none(s(node, "status.nodeInfo.kernelVersion"))),
        json!(or_none(s(node, "status.nodeInfo.containerRuntimeVersion"))),
    ]
}

fn event_cells(ev: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let since = |field: &str| -> Option<String> {
        ev[field]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(|t| meta::age(Some(t), now))
    };
    let first = since("firstTimestamp")
        .or_else(|| since("eventTime"))
        .unwrap_or_else(|| "<unknown>".into());
    let mut last = since("lastTimestamp").unwrap_or_else(|| first.clone());
    let mut count = ev["count"].as_i64().unwrap_or(0);
    if ev["series"].is_object() {
        last = ev["series"]["lastObservedTime"]
            .as_str()
            .map(|t| meta::age(Some(t), now))
            .unwrap_or_else(|| last.clone());
        count = ev["series"]["count"].as_i64().unwrap_or(count);
    } else if count > 1 {
        last = format!("{last} (x{count} over {first})");
    }
    let object = format!(
        "{}/{}",
        s(ev, "involvedObject.kind").to_lowercase(),
        s(ev, "involvedObject.name")
    );
    let mut source = s(ev, "source.component").to_owned();
    if source.is_empty() {
        source = s(ev, "reportingComponent").to_owned();
    }
    if !s(ev, "source.host").is_empty() {
        source = format!("{source}, {}", s(ev, "source.host"));
    }
    vec![
        json!(last),
        json!(s(ev, "type")),
        json!(s(ev, "reason")),
        json!(object),
        json!(s(ev, "message")),
        json!(source),
        json!(s(ev, "involvedObject.fieldPath")),
        json!(first),
        json!(count),
        json!(meta::name(ev)),
    ]
}

/// kubectl's ENDPOINTS column: `ip:port` for each port of each subset, the first three, then
/// ` + N more...`; `<none>` when empty.
fn endpoints_summary(ep: &Value) -> String {
    const SHOWN: usize = 3;
    let mut shown = Vec::new();
    let mut total = 0usize;
    for subset in ep["subsets"].as_array().into_iter().flatten() {
        let ips: Vec<&str> = subset["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["ip"].as_str())
            .collect();
        let ports: Vec<Option<i64>> = match subset["ports"].as_array() {
            Some(ports) if !ports.is_empty() => ports.iter().map(|p| p["port"].as_i64()).collect(),
            _ => vec![None],
        };
        for port in ports {
            for ip in &ips {
                if shown.len() < SHOWN {
                    shown.push(match port {
                        Some(port) => join_host_port(ip, port),
                        None => (*ip).to_owned(),
                    });
                }
                total += 1;
            }
        }
    }
    if shown.is_empty() {
        return "<none>".into();
    }
    let mut out = shown.join(",");
    if total > SHOWN {
        out.push_str(&format!(" + {} more...", total - SHOWN));
    }
    out
}

/// kubectl's list cells: the first three, then ` + N more...`; `<unset>` when empty.
fn first_three_and_more(items: Vec<String>) -> String {
    const SHOWN: usize = 3;
    if items.is_empty() {
        return "<unset>".into();
    }
    let mut out = items[..items.len().min(SHOWN)].join(",");
    if items.len() > SHOWN {
        out.push_str(&format!(" + {} more...", items.len() - SHOWN));
    }
    out
}

/// kubectl's EndpointSlice PORTS column: each port's number (else its name, else `*`).
fn slice_ports(slice: &Value) -> String {
    let ports = slice["ports"].as_array().into_iter().flatten().map(|p| {
        match (p["port"].as_i64(), p["name"].as_str()) {
            (Some(n), _) => n.to_string(),
            (None, Some(name)) => name.to_owned(),
            (None, None) => "*".into(),
        }
    });
    first_three_and_more(ports.collect())
}

/// kubectl's EndpointSlice ENDPOINTS column: every endpoint's addresses.
fn slice_endpoints(slice: &Value) -> String {
    let addresses = slice["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["addresses"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .map(str::to_owned);
    first_three_and_more(addresses.collect())
}

/// `host:port`, IPv6 hosts bracketed.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn service_cells(svc: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let ty = match s(svc, "spec.type") {
        "" => "ClusterIP",
        t => t,
    };
    let cluster_ip = or_none(s(svc, "spec.clusterIP"));
    let external_ips: Vec<String> = svc["spec"]["externalIPs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let external = match ty {
        "ExternalName" => s(svc, "spec.externalName").to_owned(),
        "LoadBalancer" => {
            let mut ips: Vec<String> = svc["status"]["loadBalancer"]["ingress"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|i| {
                            i["ip"]
                                .as_str()
                                .or(i["hostname"].as_str())
                                .map(str::to_owned)
                        })
                        .collect()
                })
                .unwrap_or_default();
            ips.extend(external_ips.iter().cloned());
            if ips.is_empty() {
                "<pending>".into()
            } else {
                ips.join(",")
            }
        }
        _ if !external_ips.is_empty() => external_ips.join(","),
        _ => "<none>".into(),
    };
    let ports: Vec<String> = svc["spec"]["ports"]
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .map(|p| {
                    let proto = p["protocol"].as_str().unwrap_or("TCP");
                    match p["nodePort"].as_i64().filter(|n| *n > 0) {
                        Some(np) => format!("{}:{np}/{proto}", p["port"]),
                        None => format!("{}/{proto}", p["port"]),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let selector: BTreeMap<String, String> = svc["spec"]["selector"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let selector_cell = if selector.is_empty() {
        "<none>".into()
    } else {
        selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    vec![
        json!(meta::name(svc)),
        json!(ty),
        json!(cluster_ip),
        json!(external),
        json!(if ports.is_empty() {
            "<none>".into()
        } else {
            ports.join(",")
        }),
        json!(created_age(svc, now)),
        json!(selector_cell),
    ]
}

/// One row: cells and the object as `include` asks.
pub fn row(rt: &ResourceType, obj: &Value, include: IncludeObject, now: jiff::Timestamp) -> Value {
    let mut row = json!({"cells": cells(rt, obj, now)});
    match include {
        IncludeObject::None => {}
        IncludeObject::Object => row["object"] = obj.clone(),
        IncludeObject::Metadata => {
            let mut metadata = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
            if let Some(m) = metadata.as_object_mut() {
                m.remove("managedFields");
            }
            row["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": metadata,
            });
        }
    }
    row
}

/// A Table of `objects`.
pub fn table(
    rt: &ResourceType,
    objects: &[Value],
    resource_version: Option<String>,
    continue_token: Option<String>,
    include: IncludeObject,
) -> Value {
    let now = jiff::Timestamp::now();
    let mut metadata = json!({});
    if let Some(rv) = resource_version {
        metadata["resourceVersion"] = json!(rv);
    }
    if let Some(c) = continue_token {
        metadata["continue"] = json!(c);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns(rt),
        "rows": objects.iter().map(|o| row(rt, o, include, now)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::of;

    fn now() -> jiff::Timestamp {
        "2024-01-01T01:00:00Z".parse().unwrap()
    }

    fn status(pod: Value) -> String {
        pod_cells(&pod, now())[2].as_str().unwrap().to_owned()
    }

    #[test]
    fn pod_status_column() {
        let base = json!({"metadata": {"name": "p", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Pending"}});
        let cells = pod_cells(&base, now());
        assert_eq!(cells[0], "p");
        assert_eq!(cells[1], "0/1");
        assert_eq!(cells[2], "Pending");
        assert_eq!(cells[3], "0");
        assert_eq!(cells[4], "60m");
        assert_eq!(cells[5], "<none>");

        let mut waiting = base.clone();
        waiting["status"]["containerStatuses"] = json!([{"name": "c", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ContainerCreating"}}}]);
        assert_eq!(status(waiting), "ContainerCreating");

        let mut running = base.clone();
        running["status"]["phase"] = json!("Running");
        running["status"]["containerStatuses"] = json!([{"name": "c", "ready": true, "restartCount": 2,
            "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-01-01T00:55:00Z"}}}]);
        let cells = pod_cells(&running, now());
        assert_eq!(cells[1], "1/1");
        assert_eq!(cells[2], "Running");
        assert_eq!(cells[3], "2 (5m ago)");

        let mut crash = base.clone();
        crash["status"]["containerStatuses"] = json!([{"name": "c", "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]);
        assert_eq!(status(crash), "CrashLoopBackOff");

        let mut done = base.clone();
        done["status"]["phase"] = json!("Succeeded");
        done["status"]["containerStatuses"] =
            json!([{"name": "c", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]);
        assert_eq!(status(done), "Completed");

        let mut failed = base.clone();
        failed["status"]["containerStatuses"] =
            json!([{"name": "c", "state": {"terminated": {"exitCode": 2}}}]);
        assert_eq!(status(failed), "ExitCode:2");

        let mut init = base.clone();
        init["spec"]["initContainers"] = json!([{"name": "i1"}, {"name": "i2"}]);
        init["status"]["initContainerStatuses"] = json!([
            {"name": "i1", "state": {"terminated": {"exitCode": 0}}},
            {"name": "i2", "state": {"running": {}}}]);
        assert_eq!(status(init), "Init:1/2");

        let mut pull = base.clone();
        pull["spec"]["initContainers"] = json!([{"name": "i1"}]);
        pull["status"]["initContainerStatuses"] =
            json!([{"name": "i1", "state": {"waiting": {"reason": "ErrImagePull"}}}]);
        assert_eq!(status(pull), "Init:ErrImagePull");

        let mut deleting = running.clone();
        deleting["metadata"]["deletionTimestamp"] = json!("2024-01-01T01:00:30Z");
        assert_eq!(status(deleting), "Terminating");
    }

    #[test]
    fn node_service_event_rows() {
        let node = json!({"metadata": {"name": "n1", "creationTimestamp": "2024-01-01T00:59:55Z",
                "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                "nodeInfo": {"kubeletVersion": "v1.33.0"}, "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}});
        let cells = node_cells(&node, now());
        assert_eq!(
            cells[..5],
            [
                json!("n1"),
                json!("Ready"),
                json!("control-plane"),
                json!("5s"),
                json!("v1.33.0")
            ]
        );
        assert_eq!(cells[5], "10.0.0.1");

        let svc = json!({"metadata": {"name": "kubernetes"}, "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1",
            "ports": [{"port": 443, "protocol": "TCP"}]}});
        let cells = service_cells(&svc, now());
        assert_eq!(
            cells[..5],
            [
                json!("kubernetes"),
                json!("ClusterIP"),
                json!("10.96.0.1"),
                json!("<none>"),
                json!("443/TCP")
            ]
        );

        let ev = json!({"metadata": {"name": "web.1"}, "type": "Normal", "reason": "Pulled", "message": "ok",
            "involvedObject": {"kind": "Pod", "name": "web"}, "source": {"component": "kubelet"},
            "firstTimestamp": "2024-01-01T00:50:00Z", "lastTimestamp": "2024-01-01T00:59:00Z", "count": 3});
        let cells = event_cells(&ev, now());
        assert_eq!(cells[0], "60s (x3 over 10m)");
        assert_eq!(cells[3], "pod/web");
        assert_eq!(cells[5], "kubelet");
    }

    #[test]
    fn tables_carry_partial_metadata() {
        let rc = json!({"metadata": {"name": "myclass", "creationTimestamp": "2024-01-01T00:00:00Z"}, "handler": "myconfiguration"});
        let t = table(
            of(Kind::RuntimeClass),
            &[rc],
            Some("7".into()),
            None,
            IncludeObject::Metadata,
        );
        assert_eq!(t["columnDefinitions"][1]["name"], "Handler");
        assert_eq!(t["rows"][0]["cells"][1], "myconfiguration");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["metadata"]["resourceVersion"], "7");
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }

    #[test]
    fn endpoints_column_lists_three_then_counts() {
        let one = json!({"subsets": [{"addresses": [{"ip": "192.0.2.7"}],
            "ports": [{"name": "https", "port": 6443}]}]});
        assert_eq!(endpoints_summary(&one), "192.0.2.7:6443");
        let many = json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::2"}],
            "ports": [{"port": 80}, {"port": 81}]}]});
        assert_eq!(
            endpoints_summary(&many),
            "10.0.0.1:80,[fd00::2]:80,10.0.0.1:81 + 1 more..."
        );
        assert_eq!(endpoints_summary(&json!({})), "<none>");
    }

    #[test]
    fn endpoint_slice_columns() {
        let slice = json!({"addressType": "IPv4",
            "ports": [{"name": "https", "port": 6443}, {"name": "named"}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3"]},
                          {"addresses": ["10.0.0.4"]}]});
        assert_eq!(slice_ports(&slice), "6443,named");
        assert_eq!(
            slice_endpoints(&slice),
            "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more..."
        );
        assert_eq!(slice_ports(&json!({})), "<unset>");
        assert_eq!(slice_endpoints(&json!({"endpoints": []})), "<unset>");
    }
}
