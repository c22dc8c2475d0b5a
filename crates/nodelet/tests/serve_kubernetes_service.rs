//! Under `nodelet serve` the API server keeps the `kubernetes` Service and Endpoints in
//! `default` (as kube-apiserver's bootstrap controller), through the real kubectl: the
//! Service has the first ClusterIP of the range and port 443, the Endpoints and EndpointSlice
//! the node's address and the secure port, every pod in any namespace gets the `KUBERNETES_*` variables, and a
//! deleted Service comes back.

mod serve_support;

use nodelet_testbed::{Bed, BedInfo};
use serve_support::Server;

#[test]
fn every_pod_gets_the_kubernetes_service_variables_and_the_service_is_kept() {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    server.wait_for_node();

    let row = server.kubectl(&["get", "svc", "kubernetes", "-n", "default", "--no-headers"]);
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells[..5],
        ["kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP"],
        "{row}"
    );
    let target = server.kubectl(&[
        "get",
        "svc",
        "kubernetes",
        "-n",
        "default",
        "-o",
        "jsonpath={.spec.ports[0].name}/{.spec.ports[0].targetPort}/{.metadata.labels.component}/{.metadata.labels.provider}",
    ]);
    assert_eq!(
        target,
        format!("https/{}/apiserver/kubernetes", server.port())
    );
    // The Endpoints advertise the node's address (a loopback listen address is no endpoint).
    let node_ip = server.kubectl(&[
        "get",
        "nodes",
        "-o",
        "jsonpath={.items[0].status.addresses[?(@.type==\"InternalIP\")].address}",
    ]);
    let row = server.kubectl(&[
        "get",
        "endpoints",
        "kubernetes",
        "-n",
        "default",
        "--no-headers",
    ]);
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells[..2],
        ["kubernetes", &format!("{node_ip}:{}", server.port())],
        "{row}"
    );

    let row = server.kubectl(&["get", "endpointslices", "-n", "default", "--no-headers"]);
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells[..4],
        ["kubernetes", "IPv4", &server.port().to_string(), &node_ip],
        "{row}"
    );
    // kubectl ≥ 1.32 describes a Service's endpoints from its EndpointSlices.
    let described = server.kubectl(&["describe", "svc", "kubernetes", "-n", "default"]);
    assert!(
        described.lines().any(|l| l.starts_with("Endpoints:")
            && l.ends_with(&format!(" {node_ip}:{}", server.port()))),
        "{described}"
    );

    server.kubectl(&["create", "namespace", "apps"]);
    let image = BedInfo::reference(&bed.plain, "tiny");
    server.create_from_yaml(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: printenv, namespace: apps}}
spec:
  restartPolicy: Never
  enableServiceLinks: false
  containers:
  - name: main
    image: {image}
    command: [env]
"#
    ));
    server.wait_for(
        120,
        &[
            "get",
            "pod",
            "printenv",
            "-n",
            "apps",
            "-o",
            "jsonpath={.status.phase}",
        ],
        |phase| phase == "Succeeded",
    );
    let env = server.kubectl(&["logs", "printenv", "-n", "apps"]);
    let lines: Vec<&str> = env.lines().collect();
    for want in [
        "KUBERNETES_SERVICE_HOST=10.96.0.1",
        "KUBERNETES_SERVICE_PORT=443",
        "KUBERNETES_SERVICE_PORT_HTTPS=443",
        "KUBERNETES_PORT=tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP=tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP_PROTO=tcp",
        "KUBERNETES_PORT_443_TCP_PORT=443",
        "KUBERNETES_PORT_443_TCP_ADDR=10.96.0.1",
    ] {
        assert!(lines.contains(&want), "{want} missing from:\n{env}");
    }

    // A user Service never gets the first address; a deleted kubernetes Service comes back.
    let refused = server.client(serve_support::KUBECTL).fails(&[
        "create",
        "service",
        "clusterip",
        "grab",
        "-n",
        "apps",
        "--tcp=443:443",
        "--clusterip=10.96.0.1",
    ]);
    assert!(
        refused.contains("failed to allocate IP 10.96.0.1: provided IP is already allocated"),
        "{refused}"
    );
    server.kubectl(&["delete", "svc", "kubernetes", "-n", "default"]);
    server.wait_for(
        30,
        &[
            "get",
            "svc",
            "-n",
            "default",
            "-o",
            "jsonpath={.items[*].spec.clusterIP}",
        ],
        |ips| ips == "10.96.0.1",
    );
    server.kubectl(&["delete", "pod", "printenv", "-n", "apps"]);
}
