//! The API's semantics through the in-process client (same router, admission and store as
//! HTTPS): conflicts, paging, selectors, graceful deletion, namespaces, watches and 410 Gone.

use std::sync::Arc;
use std::time::Duration;

use nodelet_apiserver::resources::{Kind, of};
use nodelet_apiserver::selectors::Selection;
use nodelet_apiserver::watch::{self, WatchParams};
use nodelet_apiserver::{ApiServer, LocalClient, ServerConfig, User};
use nodelet_store::{SqliteStorage, Storage};
use serde_json::{Value, json};

struct Fixture {
    _dir: tempfile::TempDir,
    server: ApiServer,
    store: Arc<dyn Storage>,
    client: LocalClient,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Storage> =
        Arc::new(SqliteStorage::open(dir.path().join("store.db")).unwrap());
    let config = ServerConfig::new(dir.path().join("server"), "127.0.0.1:0".parse().unwrap());
    let server = ApiServer::start_with_store(config, store.clone())
        .await
        .unwrap();
    let client = server.client(User::admin());
    Fixture {
        _dir: dir,
        server,
        store,
        client,
    }
}

fn pod(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
           "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}})
}

const PODS: &str = "/api/v1/namespaces/default/pods";

#[tokio::test]
async fn stale_resource_versions_conflict() {
    let f = fixture().await;
    let created = f.client.create(PODS, &pod("a", json!({}))).await.unwrap();
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut first = created.clone();
    first["metadata"]["labels"] = json!({"x": "1"});
    let updated = f
        .client
        .replace(&format!("{PODS}/a"), &first)
        .await
        .unwrap();
    assert_ne!(updated["metadata"]["resourceVersion"], json!(rv));
    // The same resourceVersion again is stale now.
    let mut second = created.clone();
    second["metadata"]["labels"] = json!({"x": "2"});
    let err = f
        .client
        .replace(&format!("{PODS}/a"), &second)
        .await
        .unwrap_err();
    assert_eq!(err.code(), 409);
    assert_eq!(
        err.status.message.as_deref(),
        Some(
            "Operation cannot be fulfilled on pods \"a\": the object has been modified; please apply your changes to the latest version and try again"
        )
    );
    // An update that changes nothing keeps the resourceVersion.
    let again = f
        .client
        .replace(&format!("{PODS}/a"), &updated)
        .await
        .unwrap();
    assert_eq!(
        again["metadata"]["resourceVersion"],
        updated["metadata"]["resourceVersion"]
    );
}

#[tokio::test]
async fn lists_page_and_filter() {
    let f = fixture().await;
    for i in 0..5 {
        let tier = if i % 2 == 0 { "front" } else { "back" };
        f.client
            .create(PODS, &pod(&format!("p{i}"), json!({"tier": tier})))
            .await
            .unwrap();
    }
    let first = f.client.get(&format!("{PODS}?limit=2")).await.unwrap();
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let token = first["metadata"]["continue"].as_str().unwrap().to_owned();
    let second = f
        .client
        .get(&format!("{PODS}?limit=3&continue={token}"))
        .await
        .unwrap();
    let names: Vec<&str> = second["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["p2", "p3", "p4"]);
    assert!(second["metadata"].get("continue").is_none());
    assert_eq!(
        first["metadata"]["resourceVersion"],
        second["metadata"]["resourceVersion"]
    );

    let front = f
        .client
        .get(&format!("{PODS}?labelSelector=tier%3Dfront"))
        .await
        .unwrap();
    assert_eq!(front["items"].as_array().unwrap().len(), 3);
    let one = f
        .client
        .get(&format!("{PODS}?fieldSelector=metadata.name%3Dp1"))
        .await
        .unwrap();
    assert_eq!(one["items"][0]["metadata"]["name"], "p1");
    let err = f
        .client
        .get(&format!("{PODS}?fieldSelector=spec.bogus%3Dx"))
        .await
        .unwrap_err();
    assert_eq!(
        err.status.message.as_deref(),
        Some("field label not supported: spec.bogus")
    );
}

#[tokio::test]
async fn bound_pods_are_deleted_gracefully_unbound_at_once() {
    let f = fixture().await;
    f.client
        .create(PODS, &pod("bound", json!({})))
        .await
        .unwrap();
    f.client
        .create(
            &format!("{PODS}/bound/binding"),
            &json!({"metadata": {"name": "bound"}, "target": {"kind": "Node", "name": "n1"}}),
        )
        .await
        .unwrap();
    let deleted = f
        .client
        .request(
            axum::http::Method::DELETE,
            &format!("{PODS}/bound"),
            None,
            "",
        )
        .await
        .unwrap();
    assert!(deleted["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(deleted["metadata"]["deletionGracePeriodSeconds"], 30);
    // Still there until the kubelet deletes it with grace 0.
    f.client.get(&format!("{PODS}/bound")).await.unwrap();
    f.client
        .request(
            axum::http::Method::DELETE,
            &format!("{PODS}/bound"),
            Some(&json!({"gracePeriodSeconds": 0})),
            "application/json",
        )
        .await
        .unwrap();
    assert_eq!(
        f.client
            .get(&format!("{PODS}/bound"))
            .await
            .unwrap_err()
            .code(),
        404
    );

    f.client
        .create(PODS, &pod("free", json!({})))
        .await
        .unwrap();
    f.client
        .request(
            axum::http::Method::DELETE,
            &format!("{PODS}/free"),
            None,
            "",
        )
        .await
        .unwrap();
    assert_eq!(
        f.client
            .get(&format!("{PODS}/free"))
            .await
            .unwrap_err()
            .code(),
        404
    );
}

#[tokio::test]
async fn namespaces_get_a_default_account_and_lifecycle_rules() {
    let f = fixture().await;
    let err = f
        .client
        .create("/api/v1/namespaces/nope/pods", &pod("a", json!({})))
        .await
        .unwrap_err();
    assert_eq!(
        err.status.message.as_deref(),
        Some("namespaces \"nope\" not found")
    );
    f.client
        .create("/api/v1/namespaces", &json!({"metadata": {"name": "team"}}))
        .await
        .unwrap();
    f.client
        .get("/api/v1/namespaces/team/serviceaccounts/default")
        .await
        .unwrap();
    f.client
        .create("/api/v1/namespaces/team/pods", &pod("a", json!({})))
        .await
        .unwrap();
    f.client
        .request(
            axum::http::Method::DELETE,
            "/api/v1/namespaces/team",
            None,
            "",
        )
        .await
        .unwrap();
    for _ in 0..50 {
        if f.client.get("/api/v1/namespaces/team").await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        f.client
            .get("/api/v1/namespaces/team")
            .await
            .unwrap_err()
            .code(),
        404
    );
    let err = f
        .client
        .request(
            axum::http::Method::DELETE,
            "/api/v1/namespaces/default",
            None,
            "",
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.status.message.as_deref(),
        Some("namespaces \"default\" is forbidden: this namespace may not be deleted")
    );
}

#[tokio::test]
async fn services_get_cluster_ips() {
    let f = fixture().await;
    let svc = json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}}});
    let created = f
        .client
        .create("/api/v1/namespaces/default/services", &svc)
        .await
        .unwrap();
    assert_eq!(created["spec"]["clusterIP"], "10.96.0.2");
    let k = f
        .client
        .get("/api/v1/namespaces/default/services/kubernetes")
        .await
        .unwrap();
    assert_eq!(k["spec"]["clusterIP"], "10.96.0.1");
}

const MASTER_SERVICE: &str = "/api/v1/namespaces/default/services/kubernetes";
const MASTER_ENDPOINTS: &str = "/api/v1/namespaces/default/endpoints/kubernetes";
const MASTER_SLICE: &str = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes";

async fn reconcile(f: &Fixture) {
    nodelet_apiserver::bootstrap::reconcile_kubernetes_service(
        f.server.resources(),
        f.server.advertised_addr(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn the_kubernetes_service_and_endpoints_exist_and_come_back() {
    let f = fixture().await;
    let port = f.server.local_addr().port();
    let svc = f.client.get(MASTER_SERVICE).await.unwrap();
    assert_eq!(
        svc["metadata"]["labels"],
        json!({"component": "apiserver", "provider": "kubernetes"})
    );
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(svc["spec"]["clusterIP"], "10.96.0.1");
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}])
    );
    let ep = f.client.get(MASTER_ENDPOINTS).await.unwrap();
    let advertised = f.server.advertised_addr();
    assert_eq!(advertised.port(), port);
    // Listening on loopback advertises the host's address (loopback is no endpoint).
    assert!(!advertised.ip().is_unspecified(), "{advertised}");
    assert_eq!(
        ep["subsets"],
        json!([{
            "addresses": [{"ip": advertised.ip().to_string()}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        }])
    );

    let slice = f.client.get(MASTER_SLICE).await.unwrap();
    assert_eq!(
        slice["metadata"]["labels"],
        json!({"kubernetes.io/service-name": "kubernetes"})
    );
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(
        slice["endpoints"],
        json!([{"addresses": [advertised.ip().to_string()], "conditions": {"ready": true}}])
    );
    assert_eq!(slice["ports"], ep["subsets"][0]["ports"]);

    // Altered ports and addresses are put back; deleted objects are recreated.
    f.client
        .merge_patch(
            MASTER_SLICE,
            &json!({"endpoints": [{"addresses": ["10.0.0.9"]}]}),
        )
        .await
        .unwrap();
    f.client
        .merge_patch(
            MASTER_SERVICE,
            &json!({"spec": {"ports": [{"name": "https", "port": 8443, "targetPort": 1}]}}),
        )
        .await
        .unwrap();
    f.client
        .merge_patch(
            MASTER_ENDPOINTS,
            &json!({"subsets": [{"addresses": [{"ip": "10.0.0.9"}], "ports": [{"port": 1}]}]}),
        )
        .await
        .unwrap();
    reconcile(&f).await;
    assert_eq!(
        f.client.get(MASTER_SERVICE).await.unwrap()["spec"]["ports"],
        svc["spec"]["ports"]
    );
    assert_eq!(
        f.client.get(MASTER_ENDPOINTS).await.unwrap()["subsets"],
        ep["subsets"]
    );
    f.client.delete(MASTER_SERVICE, None).await.unwrap();
    assert_eq!(
        f.client.get(MASTER_SLICE).await.unwrap()["endpoints"],
        slice["endpoints"]
    );
    f.client.delete(MASTER_ENDPOINTS, None).await.unwrap();
    f.client.delete(MASTER_SLICE, None).await.unwrap();
    assert_eq!(f.client.get(MASTER_SERVICE).await.unwrap_err().code(), 404);
    reconcile(&f).await;
    let back = f.client.get(MASTER_SERVICE).await.unwrap();
    assert_eq!(back["spec"]["clusterIP"], "10.96.0.1");
    assert_ne!(back["metadata"]["uid"], svc["metadata"]["uid"]);
    assert_eq!(
        f.client.get(MASTER_ENDPOINTS).await.unwrap()["subsets"],
        ep["subsets"]
    );
    assert_eq!(
        f.client.get(MASTER_SLICE).await.unwrap()["ports"],
        slice["ports"]
    );
}

#[tokio::test]
async fn no_other_service_gets_the_first_address() {
    let f = fixture().await;
    f.client
        .create(
            "/api/v1/namespaces",
            &json!({"metadata": {"name": "other"}}),
        )
        .await
        .unwrap();
    let asking = json!({"metadata": {"name": "kubernetes"},
        "spec": {"clusterIP": "10.96.0.1", "ports": [{"port": 443}]}});
    let err = f
        .client
        .create("/api/v1/namespaces/other/services", &asking)
        .await
        .unwrap_err();
    assert_eq!(err.code(), 422);
    assert_eq!(
        err.status.message.as_deref(),
        Some(
            "Service \"kubernetes\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.96.0.1\"}: failed to allocate IP 10.96.0.1: provided IP is already allocated"
        )
    );
    // Not even while the kubernetes Service is gone.
    f.client.delete(MASTER_SERVICE, None).await.unwrap();
    let err = f
        .client
        .create("/api/v1/namespaces/other/services", &asking)
        .await
        .unwrap_err();
    assert_eq!(err.code(), 422);
    let plain = json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}});
    let created = f
        .client
        .create("/api/v1/namespaces/other/services", &plain)
        .await
        .unwrap();
    assert_eq!(created["spec"]["clusterIP"], "10.96.0.2");
    reconcile(&f).await;
    assert_eq!(
        f.client.get(MASTER_SERVICE).await.unwrap()["spec"]["clusterIP"],
        "10.96.0.1"
    );
}

async fn next_line(rx: &mut watch::Lines) -> Value {
    let line = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("watch event")
        .expect("stream open");
    serde_json::from_slice(&line).unwrap()
}

#[tokio::test]
async fn watches_resume_filter_and_expire() {
    let f = fixture().await;
    let res = f.server.resources();
    let created = f
        .client
        .create(PODS, &pod("w", json!({"app": "x"})))
        .await
        .unwrap();
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let params = WatchParams {
        resource_version: rv.clone(),
        selection: Selection {
            labels: nodelet_apiserver::selectors::parse_labels("app=x").unwrap(),
            ..Default::default()
        },
        bookmarks: true,
        ..Default::default()
    };
    let mut rx = watch::start(
        res,
        of(Kind::Pod),
        Some("default".into()),
        params,
        Duration::from_millis(300),
    )
    .await
    .unwrap();
    // Relabelled out of the selection: DELETED for this watcher.
    f.client
        .merge_patch(
            &format!("{PODS}/w"),
            &json!({"metadata": {"labels": {"app": "y"}}}),
        )
        .await
        .unwrap();
    let ev = next_line(&mut rx).await;
    assert_eq!(ev["type"], "DELETED");
    assert_eq!(ev["object"]["kind"], "Pod");
    let ev = next_line(&mut rx).await;
    assert_eq!(ev["type"], "BOOKMARK");

    // After compaction, an old resourceVersion is 410 Expired in the stream.
    let now = f.store.current_revision().await.unwrap();
    f.store.compact(now).await.unwrap();
    let params = WatchParams {
        resource_version: rv,
        ..Default::default()
    };
    let mut rx = watch::start(
        res,
        of(Kind::Pod),
        Some("default".into()),
        params,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let ev = next_line(&mut rx).await;
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(ev["object"]["code"], 410);
    assert!(
        ev["object"]["message"]
            .as_str()
            .unwrap()
            .starts_with("too old resource version: ")
    );
}
