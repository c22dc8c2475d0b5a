use serde_json::{Value, json};

use super::*;

fn pod(spec: Value) -> Pod {
    let mut spec = spec;
    if spec.get("containers").is_none() {
        spec["containers"] = json!([{"name": "c", "image": "busybox"}]);
    }
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "default"},
        "spec": spec,
    }))
    .unwrap()
}

fn requesting(requests: Value) -> Pod {
    pod(
        json!({"containers": [{"name": "c", "image": "busybox", "resources": {"requests": requests}}]}),
    )
}

fn node(name: &str, extra: Value) -> Node {
    let mut n = json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "zone": "a", "rank": "5"}},
        "spec": {},
        "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "ephemeral-storage": "10Gi", "pods": "110"}},
    });
    merge(&mut n, extra);
    serde_json::from_value(n).unwrap()
}

fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

fn bound(name: &str, node: &str, requests: Value, phase: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox", "resources": {"requests": requests}}]},
        "status": {"phase": phase},
    }))
    .unwrap()
}

/// Schedules `p` on one node `n1` (with `extra` merged in) carrying `others`.
fn one(p: &Pod, extra: Value, others: &[Pod]) -> Result<String, String> {
    let nodes = vec![node("n1", extra)];
    let infos = node_infos(&nodes, others);
    schedule(p, &infos).map_err(|e| e.to_string())
}

const NOT_HELPFUL_1: &str =
    "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.";
const NO_VICTIMS_1: &str =
    "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.";

#[test]
fn predicates_on_one_node() {
    let affinity = |terms: Value| {
        pod(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}),
        )
    };
    let expr = |key: &str, op: &str, values: Value| {
        affinity(json!([{"matchExpressions": [{"key": key, "operator": op, "values": values}]}]))
    };
    let affinity_msg =
        format!("0/1 nodes are available: 1 {REASON_NODE_AFFINITY}. {NOT_HELPFUL_1}");
    let taint = |key: &str, value: &str, effect: &str| json!({"spec": {"taints": [{"key": key, "value": value, "effect": effect}]}});
    let tolerations = |t: Value| pod(json!({"tolerations": t}));
    let fits = Ok("n1".to_owned());
    // (case, pod, node fields, pods bound already, node or message)
    type Case<'a> = (&'a str, Pod, Value, Vec<Pod>, Result<String, String>);
    let cases: Vec<Case> = vec![
        ("no constraints", pod(json!({})), json!({}), vec![], fits.clone()),
        ("nodeSelector matches", pod(json!({"nodeSelector": {"zone": "a"}})), json!({}), vec![], fits.clone()),
        ("nodeSelector mismatch", pod(json!({"nodeSelector": {"zone": "b"}})), json!({}), vec![], Err(affinity_msg.clone())),
        ("nodeSelector missing label", pod(json!({"nodeSelector": {"disk": "ssd"}})), json!({}), vec![], Err(affinity_msg.clone())),
        ("In", expr("zone", "In", json!(["a", "b"])), json!({}), vec![], fits.clone()),
        ("In mismatch", expr("zone", "In", json!(["b"])), json!({}), vec![], Err(affinity_msg.clone())),
        ("NotIn", expr("zone", "NotIn", json!(["b"])), json!({}), vec![], fits.clone()),
        ("NotIn absent label", expr("disk", "NotIn", json!(["ssd"])), json!({}), vec![], fits.clone()),
        ("NotIn mismatch", expr("zone", "NotIn", json!(["a"])), json!({}), vec![], Err(affinity_msg.clone())),
        ("Exists", expr("zone", "Exists", json!(null)), json!({}), vec![], fits.clone()),
        ("Exists mismatch", expr("disk", "Exists", json!(null)), json!({}), vec![], Err(affinity_msg.clone())),
        ("DoesNotExist", expr("disk", "DoesNotExist", json!(null)), json!({}), vec![], fits.clone()),
        ("DoesNotExist mismatch", expr("zone", "DoesNotExist", json!(null)), json!({}), vec![], Err(affinity_msg.clone())),
        ("Gt", expr("rank", "Gt", json!(["4"])), json!({}), vec![], fits.clone()),
        ("Gt equal", expr("rank", "Gt", json!(["5"])), json!({}), vec![], Err(affinity_msg.clone())),
        ("Lt", expr("rank", "Lt", json!(["6"])), json!({}), vec![], fits.clone()),
        ("Lt not a number", expr("zone", "Lt", json!(["6"])), json!({}), vec![], Err(affinity_msg.clone())),
        (
            "terms are ORed",
            affinity(json!([
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
            ])),
            json!({}), vec![], fits.clone(),
        ),
        (
            "expressions are ANDed",
            affinity(json!([{"matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["a"]},
                {"key": "rank", "operator": "Lt", "values": ["3"]},
            ]}])),
            json!({}), vec![], Err(affinity_msg.clone()),
        ),
        ("an empty term matches nothing", affinity(json!([{}])), json!({}), vec![], Err(affinity_msg.clone())),
        (
            "matchFields metadata.name",
            affinity(json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}])),
            json!({}), vec![], fits.clone(),
        ),
        (
            "matchFields names another node",
            affinity(json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}])),
            json!({}), vec![],
            Err(format!("0/1 nodes are available: 1 node(s) didn't satisfy plugin(s) [NodeAffinity]. {NOT_HELPFUL_1}")),
        ),
        (
            "matchFields NotIn",
            affinity(json!([{"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}])),
            json!({}), vec![], Err(affinity_msg.clone()),
        ),
        (
            "matchFields that cannot hold together",
            affinity(json!([{"matchFields": [
                {"key": "metadata.name", "operator": "In", "values": ["n1"]},
                {"key": "metadata.name", "operator": "In", "values": ["n2"]},
            ]}])),
            json!({}), vec![],
            Err(format!("0/1 nodes are available: pod affinity terms conflict. {NOT_HELPFUL_1}")),
        ),
        (
            "untolerated NoSchedule taint",
            pod(json!({})), taint("dedicated", "gpu", "NoSchedule"), vec![],
            Err(format!("0/1 nodes are available: 1 node(s) had untolerated taint {{dedicated: gpu}}. {NOT_HELPFUL_1}")),
        ),
        (
            "untolerated NoExecute taint without value",
            pod(json!({})), taint("node-role.kubernetes.io/control-plane", "", "NoExecute"), vec![],
            Err(format!("0/1 nodes are available: 1 node(s) had untolerated taint {{node-role.kubernetes.io/control-plane: }}. {NOT_HELPFUL_1}")),
        ),
        ("PreferNoSchedule is only a preference", pod(json!({})), taint("k", "v", "PreferNoSchedule"), vec![], fits.clone()),
        (
            "Equal toleration",
            tolerations(json!([{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}])),
            taint("dedicated", "gpu", "NoSchedule"), vec![], fits.clone(),
        ),
        (
            "operator defaults to Equal",
            tolerations(json!([{"key": "dedicated", "value": "gpu"}])),
            taint("dedicated", "gpu", "NoSchedule"), vec![], fits.clone(),
        ),
        (
            "Equal with another value",
            tolerations(json!([{"key": "dedicated", "operator": "Equal", "value": "cpu"}])),
            taint("dedicated", "gpu", "NoSchedule"), vec![],
            Err(format!("0/1 nodes are available: 1 node(s) had untolerated taint {{dedicated: gpu}}. {NOT_HELPFUL_1}")),
        ),
        (
            "Exists toleration",
            tolerations(json!([{"key": "dedicated", "operator": "Exists"}])),
            taint("dedicated", "gpu", "NoExecute"), vec![], fits.clone(),
        ),
        (
            "toleration for another effect",
            tolerations(json!([{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}])),
            taint("dedicated", "gpu", "NoSchedule"), vec![],
            Err(format!("0/1 nodes are available: 1 node(s) had untolerated taint {{dedicated: gpu}}. {NOT_HELPFUL_1}")),
        ),
        (
            "empty key with Exists tolerates everything",
            tolerations(json!([{"operator": "Exists"}])),
            taint("anything", "x", "NoSchedule"), vec![], fits.clone(),
        ),
        (
            "cordoned",
            pod(json!({})), json!({"spec": {"unschedulable": true}}), vec![],
            Err(format!("0/1 nodes are available: 1 node(s) were unschedulable. {NOT_HELPFUL_1}")),
        ),
        (
            "cordoned, tolerated",
            tolerations(json!([{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}])),
            json!({"spec": {"unschedulable": true}}), vec![], fits.clone(),
        ),
        (
            "cordoned is checked before taints",
            pod(json!({})),
            json!({"spec": {"unschedulable": true, "taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}}),
            vec![],
            Err(format!("0/1 nodes are available: 1 node(s) were unschedulable. {NOT_HELPFUL_1}")),
        ),
        (
            "taints are checked before affinity",
            pod(json!({"nodeSelector": {"zone": "b"}})), taint("k", "v", "NoSchedule"), vec![],
            Err(format!("0/1 nodes are available: 1 node(s) had untolerated taint {{k: v}}. {NOT_HELPFUL_1}")),
        ),
        ("cpu fits", requesting(json!({"cpu": "2"})), json!({}), vec![], fits.clone()),
        (
            "more cpu than allocatable",
            requesting(json!({"cpu": "2001m"})), json!({}), vec![],
            Err(format!("0/1 nodes are available: 1 Insufficient cpu. {NO_VICTIMS_1}")),
        ),
        (
            "cpu taken by bound pods",
            requesting(json!({"cpu": "1500m"})), json!({}),
            vec![bound("a", "n1", json!({"cpu": "500m"}), "Running"), bound("b", "n1", json!({"cpu": "100m"}), "Pending")],
            Err(format!("0/1 nodes are available: 1 Insufficient cpu. {NO_VICTIMS_1}")),
        ),
        (
            "finished pods free their requests",
            requesting(json!({"cpu": "1500m"})), json!({}),
            vec![bound("a", "n1", json!({"cpu": "1"}), "Succeeded"), bound("b", "n1", json!({"cpu": "1"}), "Failed")],
            fits.clone(),
        ),
        (
            "pods of other nodes do not count",
            requesting(json!({"cpu": "1500m"})), json!({}),
            vec![bound("a", "n2", json!({"cpu": "1"}), "Running")],
            fits.clone(),
        ),
        (
            "every insufficient resource is a reason",
            requesting(json!({"cpu": "3", "memory": "5Gi", "ephemeral-storage": "11Gi", "example.com/gpu": "1"})),
            json!({}), vec![],
            Err(format!("0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient ephemeral-storage, 1 Insufficient example.com/gpu, 1 Insufficient memory. {NO_VICTIMS_1}")),
        ),
        (
            "extended resource on the node",
            requesting(json!({"example.com/gpu": "1"})), json!({"status": {"allocatable": {"example.com/gpu": "1"}}}), vec![],
            fits.clone(),
        ),
        (
            "pod count",
            pod(json!({})), json!({"status": {"allocatable": {"pods": "1"}}}),
            vec![bound("a", "n1", json!({}), "Running")],
            Err(format!("0/1 nodes are available: 1 Too many pods. {NO_VICTIMS_1}")),
        ),
        (
            "overhead counts",
            pod(json!({"overhead": {"cpu": "250m"}, "containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "1800m"}}}]})),
            json!({}), vec![],
            Err(format!("0/1 nodes are available: 1 Insufficient cpu. {NO_VICTIMS_1}")),
        ),
        (
            "overhead of bound pods counts",
            requesting(json!({"cpu": "1"})), json!({}),
            vec![serde_json::from_value(json!({
                "metadata": {"name": "a"},
                "spec": {"nodeName": "n1", "overhead": {"cpu": "100m"}, "containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "1"}}}]},
            })).unwrap()],
            Err(format!("0/1 nodes are available: 1 Insufficient cpu. {NO_VICTIMS_1}")),
        ),
        (
            "a big init container",
            pod(json!({
                "initContainers": [{"name": "i", "image": "i", "resources": {"requests": {"memory": "5Gi"}}}],
                "containers": [{"name": "c", "image": "i", "resources": {"requests": {"memory": "1Gi"}}}],
            })),
            json!({}), vec![],
            Err(format!("0/1 nodes are available: 1 Insufficient memory. {NO_VICTIMS_1}")),
        ),
        (
            "preemptionPolicy Never",
            pod(json!({"preemptionPolicy": "Never", "containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "3"}}}]})),
            json!({}), vec![],
            Err("0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.".to_owned()),
        ),
    ];
    for (name, p, extra, others, want) in cases {
        assert_eq!(one(&p, extra, &others), want, "{name}");
    }
}

#[test]
fn effective_requests() {
    let q = |v: &str| ApiQuantity(v.to_owned());
    let cases: Vec<(&str, Value, i128, i128)> = vec![
        ("nothing", json!({}), 0, 0),
        (
            "sum of app containers",
            json!({"containers": [
                {"name": "a", "image": "i", "resources": {"requests": {"cpu": "100m", "memory": "1Mi"}}},
                {"name": "b", "image": "i", "resources": {"requests": {"cpu": "0.2", "memory": "1Mi"}}},
            ]}),
            300,
            2 << 20,
        ),
        (
            "max of init and sum of app, per resource",
            json!({
                "initContainers": [
                    {"name": "i1", "image": "i", "resources": {"requests": {"cpu": "1"}}},
                    {"name": "i2", "image": "i", "resources": {"requests": {"memory": "64Mi"}}},
                ],
                "containers": [{"name": "a", "image": "i", "resources": {"requests": {"cpu": "200m", "memory": "128Mi"}}}],
            }),
            1000,
            128 << 20,
        ),
        (
            "plus overhead",
            json!({
                "overhead": {"cpu": "250m", "memory": "120Mi"},
                "initContainers": [{"name": "i1", "image": "i", "resources": {"requests": {"cpu": "1"}}}],
                "containers": [{"name": "a", "image": "i", "resources": {"requests": {"cpu": "200m"}}}],
            }),
            1250,
            120 << 20,
        ),
        (
            "sidecars run beside the app and later init containers",
            json!({
                "initContainers": [
                    {"name": "side", "image": "i", "restartPolicy": "Always", "resources": {"requests": {"cpu": "300m"}}},
                    {"name": "i1", "image": "i", "resources": {"requests": {"cpu": "1"}}},
                ],
                "containers": [{"name": "a", "image": "i", "resources": {"requests": {"cpu": "200m"}}}],
            }),
            1300,
            0,
        ),
    ];
    for (name, spec, cpu, memory) in cases {
        let r = pod_requests(&pod(spec));
        assert_eq!((r.milli_cpu, r.memory), (cpu, memory), "{name}");
    }
    let list = BTreeMap::from([
        ("cpu".to_owned(), q("1.5")),
        ("memory".to_owned(), q("1Gi")),
        ("pods".to_owned(), q("3")),
    ]);
    let r = Resources::from_list(Some(&list));
    assert_eq!((r.milli_cpu, r.memory, r.scalar.len()), (1500, 1 << 30, 0));
}

#[test]
fn messages_count_reasons_over_nodes() {
    let nodes = vec![
        node(
            "a",
            json!({"spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}}),
        ),
        node("b", json!({"metadata": {"labels": {"zone": "b"}}})),
        node("c", json!({"status": {"allocatable": {"cpu": "1"}}})),
        node("d", json!({"status": {"allocatable": {"cpu": "1"}}})),
        node("e", json!({"spec": {"unschedulable": true}})),
    ];
    let p = pod(json!({
        "nodeSelector": {"zone": "a"},
        "containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "1500m"}}}],
    }));
    let infos = node_infos(&nodes, []);
    let err = schedule(&p, &infos).unwrap_err();
    assert_eq!(
        err.to_string(),
        "0/5 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, \
         1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) were unschedulable, \
         2 Insufficient cpu. preemption: 0/5 nodes are available: \
         2 No preemption victims found for incoming pod, 3 Preemption is not helpful for scheduling."
    );
    assert_eq!(schedule(&p, &[]).unwrap_err().to_string(), MSG_NO_NODES);
}

#[test]
fn least_allocated_node_wins() {
    let nodes = vec![
        node("busy", json!({})),
        node("idle", json!({})),
        node("idle2", json!({})),
    ];
    let others = vec![bound(
        "x",
        "busy",
        json!({"cpu": "1", "memory": "1Gi"}),
        "Running",
    )];
    let infos = node_infos(&nodes, &others);
    // The busy node comes first but has less left; of the equal idle ones the first wins.
    assert_eq!(
        schedule(&requesting(json!({"cpu": "100m"})), &infos).unwrap(),
        "idle"
    );
    assert!(score(&requesting(json!({})), &infos[0]) < score(&requesting(json!({})), &infos[1]));
    // Placing a pod fills the node for the next one (what the loop's assumed binding does).
    let first = bound("y", "idle", json!({"cpu": "1500m"}), "Pending");
    let others = vec![others[0].clone(), first];
    let infos = node_infos(&nodes, &others);
    assert_eq!(
        schedule(&requesting(json!({"cpu": "1500m"})), &infos).unwrap(),
        "idle2"
    );
}

#[test]
fn who_needs_scheduling() {
    let cases: Vec<(&str, Value, bool)> = vec![
        (
            "defaults",
            json!({"metadata": {"name": "p"}, "spec": {"containers": []}}),
            true,
        ),
        (
            "default scheduler",
            json!({"metadata": {"name": "p"}, "spec": {"schedulerName": "default-scheduler", "containers": []}}),
            true,
        ),
        (
            "another scheduler",
            json!({"metadata": {"name": "p"}, "spec": {"schedulerName": "custom", "containers": []}}),
            false,
        ),
        (
            "nodeName set",
            json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "containers": []}}),
            false,
        ),
        (
            "being deleted",
            json!({"metadata": {"name": "p", "deletionTimestamp": "2024-01-01T00:00:00Z"}, "spec": {"containers": []}}),
            false,
        ),
        (
            "finished",
            json!({"metadata": {"name": "p"}, "spec": {"containers": []}, "status": {"phase": "Failed"}}),
            false,
        ),
    ];
    for (name, v, want) in cases {
        let p: Pod = serde_json::from_value(v).unwrap();
        assert_eq!(needs_scheduling(&p), want, "{name}");
    }
}
