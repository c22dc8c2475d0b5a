//! Which nodes a pod fits on, and why not when none does: the filters of the default profile
//! that a single-node cluster meets (NodeUnschedulable, TaintToleration, NodeAffinity with the
//! pod's nodeSelector, NodeResourcesFit), in that order, the first failing one giving a node's
//! reasons; then the least-allocated node among those that fit.
//!
//! The failure text is the scheduler's `FailedScheduling` message as 1.33 writes it:
//! `0/N nodes are available: <count> <reason>, ... preemption: 0/N nodes are available: ...`,
//! reasons counted over nodes and sorted as text. There is no preemption here, so the second
//! part says what upstream says when no pod could be evicted: nodes rejected for resources have
//! `No preemption victims found for incoming pod`, the others `Preemption is not helpful for
//! scheduling`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use nodelet_api::k8s::api::core::v1::{
    Container, Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, Taint, Toleration,
};
use nodelet_api::k8s::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use nodelet_api::quantity::Quantity;

/// The scheduler name pods get by default.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";

/// A node's reason when it is cordoned (`spec.unschedulable`).
pub const REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
/// A node's reason when the nodeSelector or required node affinity does not match.
pub const REASON_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
/// A node's reason when every affinity term names other nodes (`matchFields` on
/// `metadata.name`), so the node is not even considered.
pub const REASON_NOT_IN_PREFILTER: &str = "node(s) didn't satisfy plugin(s) [NodeAffinity]";
/// The message when the terms name nodes that cannot all hold at once.
pub const MSG_AFFINITY_CONFLICT: &str = "pod affinity terms conflict";
/// The message when there are no nodes at all.
pub const MSG_NO_NODES: &str = "no nodes available to schedule pods";
/// The preemption reason of a node whose rejection eviction could not change.
pub const PREEMPTION_NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
/// The preemption reason of a node rejected for resources, with no pod to evict.
pub const PREEMPTION_NO_VICTIMS: &str = "No preemption victims found for incoming pod";

/// The taint key a cordoned node is treated as having.
const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// What the scheduler assumes a container asks for when it names no cpu or memory request
/// (only for scoring, as upstream).
const DEFAULT_MILLI_CPU: i128 = 100;
const DEFAULT_MEMORY: i128 = 200 * 1024 * 1024;

/// Whether the scheduler should place this pod: it names the default scheduler (or none), has
/// no node yet, is not being deleted and has not finished.
pub fn needs_scheduling(pod: &Pod) -> bool {
    let Some(spec) = &pod.spec else { return false };
    let scheduler = spec.scheduler_name.as_deref().unwrap_or("");
    (scheduler.is_empty() || scheduler == DEFAULT_SCHEDULER)
        && spec.node_name.as_deref().unwrap_or("").is_empty()
        && pod.metadata.deletion_timestamp.is_none()
        && !is_finished(pod)
}

/// Whether the pod's phase is Succeeded or Failed: its resources are free again.
pub fn is_finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The node a pod is bound to, if any.
pub fn assigned_node(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// Resource amounts in the units the scheduler compares: millicores, bytes, counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// `cpu`, in millicores.
    pub milli_cpu: i128,
    /// `memory`, in bytes.
    pub memory: i128,
    /// `ephemeral-storage`, in bytes.
    pub ephemeral_storage: i128,
    /// Everything else (extended resources, hugepages), in whole units.
    pub scalar: BTreeMap<String, i128>,
}

impl Resources {
    /// From a resource list (`requests`, `overhead`, `allocatable`); unparsable amounts count
    /// as zero.
    pub fn from_list(list: Option<&BTreeMap<String, ApiQuantity>>) -> Resources {
        let mut r = Resources::default();
        for (name, q) in list.into_iter().flatten() {
            let Ok(q) = Quantity::from_api(q) else {
                continue;
            };
            match name.as_str() {
                "cpu" => r.milli_cpu += q.milli_value(),
                "memory" => r.memory += q.value(),
                "ephemeral-storage" => r.ephemeral_storage += q.value(),
                "pods" => {}
                other => *r.scalar.entry(other.to_owned()).or_default() += q.value(),
            }
        }
        r
    }

    fn add(&mut self, other: &Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }

    fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.values().all(|v| *v == 0)
    }
}

fn container_requests(c: &Container, non_zero: bool) -> Resources {
    let list = c.resources.as_ref().and_then(|r| r.requests.as_ref());
    let mut r = Resources::from_list(list);
    if non_zero {
        let has = |name: &str| list.is_some_and(|l| l.contains_key(name));
        if !has("cpu") {
            r.milli_cpu = DEFAULT_MILLI_CPU;
        }
        if !has("memory") {
            r.memory = DEFAULT_MEMORY;
        }
    }
    r
}

fn requests(pod: &Pod, non_zero: bool) -> Resources {
    let Some(spec) = &pod.spec else {
        return Resources::default();
    };
    let mut total = Resources::default();
    for c in &spec.containers {
        total.add(&container_requests(c, non_zero));
    }
    // Sidecars (init containers that restart) run beside the app containers and beside every
    // init container that starts after them; a plain init container runs alone with them.
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let own = container_requests(c, non_zero);
        let during = if c.restart_policy.as_deref() == Some("Always") {
            total.add(&own);
            sidecars.add(&own);
            sidecars.clone()
        } else {
            let mut during = own;
            during.add(&sidecars);
            during
        };
        init_peak.max_with(&during);
    }
    total.max_with(&init_peak);
    total.add(&Resources::from_list(spec.overhead.as_ref()));
    total
}

/// What a pod takes from a node: the larger of its app containers' requests (with sidecars)
/// and its largest init container's (with the sidecars started before it), plus its overhead.
pub fn pod_requests(pod: &Pod) -> Resources {
    requests(pod, false)
}

/// A node with the pods bound to it that have not finished.
#[derive(Clone, Debug)]
pub struct NodeInfo<'a> {
    pub node: &'a Node,
    pub pods: Vec<&'a Pod>,
}

impl NodeInfo<'_> {
    fn name(&self) -> &str {
        self.node.metadata.name.as_deref().unwrap_or("")
    }

    fn requested(&self, non_zero: bool) -> Resources {
        let mut r = Resources::default();
        for pod in &self.pods {
            r.add(&requests(pod, non_zero));
        }
        r
    }
}

/// Groups pods by the node they are bound to, leaving out finished pods and pods of nodes not
/// in `nodes`; nodes keep their order.
pub fn node_infos<'a>(
    nodes: &'a [Node],
    pods: impl IntoIterator<Item = &'a Pod>,
) -> Vec<NodeInfo<'a>> {
    let mut infos: Vec<NodeInfo<'a>> = nodes
        .iter()
        .map(|node| NodeInfo {
            node,
            pods: Vec::new(),
        })
        .collect();
    let index: BTreeMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| (node.metadata.name.as_deref().unwrap_or(""), i))
        .collect();
    for pod in pods {
        if is_finished(pod) {
            continue;
        }
        if let Some(i) = assigned_node(pod).and_then(|n| index.get(n)) {
            infos[*i].pods.push(pod);
        }
    }
    infos
}

/// Whether eviction could make a node fit (upstream's `Unschedulable`) or not
/// (`UnschedulableAndUnresolvable`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    Unschedulable,
    Unresolvable,
}

/// Why one node does not fit: the reasons of the first filter that rejected it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    pub code: Code,
    pub reasons: Vec<String>,
}

impl NodeStatus {
    fn unresolvable(reason: &str) -> NodeStatus {
        NodeStatus {
            code: Code::Unresolvable,
            reasons: vec![reason.to_owned()],
        }
    }
}

/// Why a pod fits no node; `Display` is the `FailedScheduling` message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FitError {
    /// How many nodes there are.
    pub num_nodes: usize,
    /// A rejection before any node was looked at (it applies to every node).
    pub pre_filter: Option<String>,
    /// Each rejected node's status, by node name.
    pub nodes: BTreeMap<String, NodeStatus>,
    /// `preemptionPolicy: Never`: the pod may not preempt.
    pub never_preempt: bool,
}

fn histogram(counts: &BTreeMap<&str, usize>) -> String {
    let mut parts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    parts.join(", ")
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.num_nodes == 0 {
            return f.write_str(MSG_NO_NODES);
        }
        write!(f, "0/{} nodes are available:", self.num_nodes)?;
        if let Some(msg) = &self.pre_filter {
            write!(f, " {msg}.")?;
        } else {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for status in self.nodes.values() {
                for reason in &status.reasons {
                    *counts.entry(reason).or_default() += 1;
                }
            }
            if !counts.is_empty() {
                write!(f, " {}.", histogram(&counts))?;
            }
        }
        if self.never_preempt {
            return f.write_str(" preemption: not eligible due to preemptionPolicy=Never.");
        }
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for status in self.nodes.values() {
            let reason = if self.pre_filter.is_none() && status.code == Code::Unschedulable {
                PREEMPTION_NO_VICTIMS
            } else {
                PREEMPTION_NOT_HELPFUL
            };
            *counts.entry(reason).or_default() += 1;
        }
        let unlisted = self.num_nodes.saturating_sub(self.nodes.len());
        if unlisted > 0 {
            *counts.entry(PREEMPTION_NOT_HELPFUL).or_default() += unlisted;
        }
        write!(
            f,
            " preemption: 0/{} nodes are available: {}.",
            self.num_nodes,
            histogram(&counts)
        )
    }
}

impl std::error::Error for FitError {}

fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let s = |v: &Option<String>| v.as_deref().unwrap_or("").to_owned();
    let effect = s(&t.effect);
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = s(&t.key);
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("") {
        "" | "Equal" => s(&t.value) == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

fn tolerated(pod: &Pod, taint: &Taint) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_ref())
        .is_some_and(|ts| ts.iter().any(|t| tolerates(t, taint)))
}

fn filter_unschedulable(pod: &Pod, node: &Node) -> Option<NodeStatus> {
    let cordoned = node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    let taint = Taint {
        key: TAINT_UNSCHEDULABLE.to_owned(),
        effect: "NoSchedule".to_owned(),
        ..Default::default()
    };
    (cordoned && !tolerated(pod, &taint)).then(|| NodeStatus::unresolvable(REASON_UNSCHEDULABLE))
}

fn filter_taints(pod: &Pod, node: &Node) -> Option<NodeStatus> {
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_ref())?;
    let taint = taints
        .iter()
        .find(|t| (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerated(pod, t))?;
    Some(NodeStatus::unresolvable(&format!(
        "node(s) had untolerated taint {{{}: {}}}",
        taint.key,
        taint.value.as_deref().unwrap_or("")
    )))
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|w| w == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|w| w == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        op @ ("Gt" | "Lt") => {
            let [want] = values else { return false };
            let (Some(have), Ok(want)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                want.parse::<i64>(),
            ) else {
                return false;
            };
            if op == "Gt" { have > want } else { have < want }
        }
        _ => false,
    }
}

fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node.metadata.labels.as_ref();
    exprs.iter().all(|r| {
        let value = labels.and_then(|l| l.get(&r.key)).map(String::as_str);
        requirement_matches(r, value)
    }) && fields.iter().all(|r| {
        r.key == "metadata.name"
            && matches!(r.operator.as_str(), "In" | "NotIn")
            && requirement_matches(r, node.metadata.name.as_deref())
    })
}

fn required_terms(pod: &Pod) -> Option<&[NodeSelectorTerm]> {
    pod.spec
        .as_ref()?
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .map(|s| s.node_selector_terms.as_slice())
}

fn filter_affinity(pod: &Pod, node: &Node) -> Option<NodeStatus> {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let selector_ok = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_selector.as_ref())
        .is_none_or(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)));
    let affinity_ok =
        required_terms(pod).is_none_or(|terms| terms.iter().any(|t| term_matches(t, node)));
    (!(selector_ok && affinity_ok)).then(|| NodeStatus::unresolvable(REASON_NODE_AFFINITY))
}

/// The node names the required affinity restricts the pod to, when every term names nodes
/// with `matchFields` `metadata.name In` (upstream's NodeAffinity PreFilter); `None` when any
/// term leaves all nodes possible.
fn pre_filter_names(pod: &Pod) -> Option<BTreeSet<String>> {
    let terms = required_terms(pod)?;
    let mut names: Option<BTreeSet<String>> = None;
    for term in terms {
        let mut term_names: Option<BTreeSet<String>> = None;
        for r in term.match_fields.iter().flatten() {
            if r.key == "metadata.name" && r.operator == "In" {
                let set: BTreeSet<String> = r.values.iter().flatten().cloned().collect();
                term_names = Some(match term_names {
                    None => set,
                    Some(prev) => prev.intersection(&set).cloned().collect(),
                });
            }
        }
        let term_names = term_names?;
        names.get_or_insert_with(BTreeSet::new).extend(term_names);
    }
    names
}

fn allocatable_pods(node: &Node) -> i128 {
    node.status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .and_then(|a| a.get("pods"))
        .and_then(|q| Quantity::from_api(q).ok())
        .map_or(0, |q| q.value())
}

fn allocatable(node: &Node) -> Resources {
    Resources::from_list(node.status.as_ref().and_then(|s| s.allocatable.as_ref()))
}

fn filter_resources(pod: &Pod, info: &NodeInfo<'_>) -> Option<NodeStatus> {
    let mut reasons = Vec::new();
    if info.pods.len() as i128 + 1 > allocatable_pods(info.node) {
        reasons.push("Too many pods".to_owned());
    }
    let want = pod_requests(pod);
    if !want.is_zero() {
        let have = allocatable(info.node);
        let used = info.requested(false);
        if want.milli_cpu > 0 && want.milli_cpu > have.milli_cpu - used.milli_cpu {
            reasons.push("Insufficient cpu".to_owned());
        }
        if want.memory > 0 && want.memory > have.memory - used.memory {
            reasons.push("Insufficient memory".to_owned());
        }
        if want.ephemeral_storage > 0
            && want.ephemeral_storage > have.ephemeral_storage - used.ephemeral_storage
        {
            reasons.push("Insufficient ephemeral-storage".to_owned());
        }
        for (name, amount) in &want.scalar {
            let free = have.scalar.get(name).copied().unwrap_or(0)
                - used.scalar.get(name).copied().unwrap_or(0);
            if *amount > 0 && *amount > free {
                reasons.push(format!("Insufficient {name}"));
            }
        }
    }
    (!reasons.is_empty()).then_some(NodeStatus {
        code: Code::Unschedulable,
        reasons,
    })
}

/// Runs the filters on one node, in upstream's order; `None` when the pod fits.
pub fn filter(pod: &Pod, info: &NodeInfo<'_>) -> Option<NodeStatus> {
    filter_unschedulable(pod, info.node)
        .or_else(|| filter_taints(pod, info.node))
        .or_else(|| filter_affinity(pod, info.node))
        .or_else(|| filter_resources(pod, info))
}

/// Least-allocated score (0–100) of a node for a pod: the free share of cpu and memory left
/// after placing it, averaged, counting containers without requests as upstream's defaults.
pub fn score(pod: &Pod, info: &NodeInfo<'_>) -> i128 {
    let have = allocatable(info.node);
    let mut used = info.requested(true);
    used.add(&requests(pod, true));
    let free_share = |cap: i128, req: i128| {
        if cap <= 0 || req > cap {
            0
        } else {
            (cap - req) * 100 / cap
        }
    };
    (free_share(have.milli_cpu, used.milli_cpu) + free_share(have.memory, used.memory)) / 2
}

/// Picks the node for a pod: the best-scoring node that passes every filter (ties go to the
/// first in `nodes`), or why none does.
pub fn schedule(pod: &Pod, nodes: &[NodeInfo<'_>]) -> Result<String, FitError> {
    let never_preempt = pod
        .spec
        .as_ref()
        .and_then(|s| s.preemption_policy.as_deref())
        == Some("Never");
    let mut error = FitError {
        num_nodes: nodes.len(),
        pre_filter: None,
        nodes: BTreeMap::new(),
        never_preempt,
    };
    if nodes.is_empty() {
        return Err(error);
    }
    let allowed = pre_filter_names(pod);
    if allowed.as_ref().is_some_and(BTreeSet::is_empty) {
        error.pre_filter = Some(MSG_AFFINITY_CONFLICT.to_owned());
        return Err(error);
    }
    let mut best: Option<(i128, &str)> = None;
    for info in nodes {
        if let Some(allowed) = &allowed
            && !allowed.contains(info.name())
        {
            error.nodes.insert(
                info.name().to_owned(),
                NodeStatus::unresolvable(REASON_NOT_IN_PREFILTER),
            );
            continue;
        }
        match filter(pod, info) {
            Some(status) => {
                error.nodes.insert(info.name().to_owned(), status);
            }
            None => {
                let s = score(pod, info);
                if best.is_none_or(|(b, _)| s > b) {
                    best = Some((s, info.name()));
                }
            }
        }
    }
    best.map(|(_, name)| name.to_owned()).ok_or(error)
}

#[cfg(test)]
mod tests;
