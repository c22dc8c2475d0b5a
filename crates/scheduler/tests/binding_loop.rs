//! The scheduler's loop against a real API server (in process, on a loopback port): pods get
//! bound, or stay pending with `FailedScheduling`, and waiting pods move when a node appears.

use std::time::{Duration, Instant};

use nodelet_apiserver::{ApiServer, LocalClient, ServerConfig, User};
use nodelet_scheduler::{Config, Scheduler};
use serde_json::{Value, json};

struct Cluster {
    admin: LocalClient,
    _dir: tempfile::TempDir,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn cluster(resync: Duration) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig::new(dir.path().join("server"), "127.0.0.1:0".parse().unwrap());
    let server = ApiServer::start(config).await.unwrap();
    let admin = server.client(User {
        name: "admin".into(),
        groups: vec!["system:masters".into(), "system:authenticated".into()],
    });
    let scheduler = Scheduler::new(
        server.client(User {
            name: "system:kube-scheduler".into(),
            groups: vec!["system:authenticated".into()],
        }),
        Config {
            resync,
            instance: "default-scheduler-test".into(),
        },
    );
    let tasks = vec![
        tokio::spawn(server.run(std::future::pending())),
        tokio::spawn(scheduler.run()),
    ];
    Cluster {
        admin,
        _dir: dir,
        tasks,
    }
}

impl Cluster {
    async fn node(&self, name: &str, cpu: &str) {
        let body = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {},
            "status": {
                "capacity": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
                "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
            },
        });
        self.admin.create("/api/v1/nodes", &body).await.unwrap();
    }

    async fn pod(&self, name: &str, spec: Value) {
        let mut spec = spec;
        if spec.get("containers").is_none() {
            spec["containers"] = json!([{"name": "c", "image": "busybox"}]);
        }
        let body =
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec});
        self.admin
            .create("/api/v1/namespaces/default/pods", &body)
            .await
            .unwrap();
    }

    async fn get_pod(&self, name: &str) -> Value {
        self.admin
            .get(&format!("/api/v1/namespaces/default/pods/{name}"))
            .await
            .unwrap()
    }

    async fn events(&self, pod: &str) -> Vec<Value> {
        let list = self
            .admin
            .get(&format!(
                "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3D{pod}"
            ))
            .await
            .unwrap();
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// Waits (up to 10 s) for an event of `pod` with `reason`.
    async fn wait_event(&self, pod: &str, reason: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(e) = self
                .events(pod)
                .await
                .into_iter()
                .find(|e| e["reason"] == reason)
            {
                return e;
            }
            assert!(Instant::now() < deadline, "no {reason} event for {pod}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_node_name(&self, pod: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let p = self.get_pod(pod).await;
            if let Some(n) = p["spec"]["nodeName"].as_str() {
                return n.to_owned();
            }
            assert!(Instant::now() < deadline, "{pod} never bound: {p}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binds_fitting_pods_and_explains_the_others() {
    let c = cluster(Duration::from_secs(10)).await;
    c.node("n1", "2").await;

    c.pod("fits", json!({})).await;
    assert_eq!(c.wait_node_name("fits").await, "n1");
    let e = c.wait_event("fits", "Scheduled").await;
    assert_eq!(e["type"], "Normal");
    assert_eq!(e["message"], "Successfully assigned default/fits to n1");
    assert_eq!(e["source"]["component"], "default-scheduler");
    assert_eq!(e["reportingComponent"], "default-scheduler");
    assert_eq!(e["involvedObject"]["kind"], "Pod");
    let pod = c.get_pod("fits").await;
    let cond = &pod["status"]["conditions"][0];
    assert_eq!(
        (&cond["type"], &cond["status"]),
        (&json!("PodScheduled"), &json!("True"))
    );

    c.pod("nowhere", json!({"nodeSelector": {"disk": "ssd"}}))
        .await;
    let e = c.wait_event("nowhere", "FailedScheduling").await;
    assert_eq!(e["type"], "Warning");
    assert_eq!(
        e["message"],
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. \
         preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    );
    let pod = c.get_pod("nowhere").await;
    assert!(pod["spec"]["nodeName"].is_null(), "{pod}");
    let cond = &pod["status"]["conditions"][0];
    assert_eq!(cond["type"], "PodScheduled");
    assert_eq!(cond["status"], "False");
    assert_eq!(cond["reason"], "Unschedulable");
    assert_eq!(cond["message"], e["message"]);

    // Too big for n1: waits, then lands on a bigger node as soon as one registers.
    c.pod(
        "big",
        json!({"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "3"}}}]}),
    )
    .await;
    let e = c.wait_event("big", "FailedScheduling").await;
    assert_eq!(
        e["message"],
        "0/1 nodes are available: 1 Insufficient cpu. \
         preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
    );
    c.node("n2", "4").await;
    assert_eq!(c.wait_node_name("big").await, "n2");
    assert_eq!(
        c.wait_event("big", "Scheduled").await["message"],
        "Successfully assigned default/big to n2"
    );

    // n2 now has 1 cpu left, n1 has 2: a pod wanting 1500m goes to n1, the next one nowhere.
    let want = json!({"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "1500m"}}}]});
    c.pod("half1", want.clone()).await;
    assert_eq!(c.wait_node_name("half1").await, "n1");
    c.pod("half2", want).await;
    assert_eq!(
        c.wait_event("half2", "FailedScheduling").await["message"],
        "0/2 nodes are available: 2 Insufficient cpu. \
         preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
    );
    // Deleting the pod on n1 makes room.
    c.admin
        .request(
            axum::http::Method::DELETE,
            "/api/v1/namespaces/default/pods/half1?gracePeriodSeconds=0",
            None,
            "",
        )
        .await
        .unwrap();
    assert_eq!(c.wait_node_name("half2").await, "n1");

    // Pods for another scheduler, or already assigned, are left alone.
    c.pod("other", json!({"schedulerName": "custom"})).await;
    c.pod("pinned", json!({"nodeName": "n2"})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(c.get_pod("other").await["spec"]["nodeName"].is_null());
    assert!(c.events("other").await.is_empty());
    assert!(c.events("pinned").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_count_on_one_event() {
    let c = cluster(Duration::from_millis(300)).await;
    c.node("n1", "1").await;
    c.pod(
        "tainted",
        json!({"nodeSelector": {"kubernetes.io/hostname": "n1"}, "tolerations": [{"key": "x", "operator": "Exists"}],
               "containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"memory": "9Gi"}}}]}),
    )
    .await;
    c.wait_event("tainted", "FailedScheduling").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = c.events("tainted").await;
        assert_eq!(events.len(), 1, "{events:?}");
        if events[0]["count"].as_u64().unwrap_or(0) >= 3 {
            assert_eq!(
                events[0]["message"],
                "0/1 nodes are available: 1 Insufficient memory. \
                 preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
            );
            break;
        }
        assert!(Instant::now() < deadline, "{events:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
