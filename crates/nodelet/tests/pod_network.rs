//! Pod networking through `nodelet serve` and the real kubectl: every pod gets its own IP on
//! the node's bridge (reported in `status.podIP` and `kubectl get -o wide`), pods reach each
//! other by IP.

mod serve_support;

use nodelet_testbed::{Bed, BedInfo};
use serve_support::Server;

#[test]
fn pods_get_their_own_ips_and_reach_each_other() {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    let image = BedInfo::reference(&bed.plain, "tiny");
    let web = server.write(
        "web.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: web}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: httpd
    image: {image}
    command: ["sh", "-c", "mkdir -p /www && echo hello from web > /www/index.html && exec busybox httpd -f -p 8080 -h /www"]
    readinessProbe:
      tcpSocket: {{port: 8080}}
      periodSeconds: 1
"#
        ),
    );
    server.kubectl(&["create", "-f", &web]);
    let ip = server.wait_for(
        30,
        &[
            "get",
            "pod",
            "web",
            "-o",
            "jsonpath={.status.phase} {.status.podIP}",
        ],
        |out| out.starts_with("Running 10.244."),
    );
    let ip = ip.split_whitespace().nth(1).unwrap().to_owned();
    let wide = server.kubectl(&["get", "pod", "web", "-o", "wide"]);
    assert!(wide.contains(&ip), "{wide}");

    let client = server.write(
        "client.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  restartPolicy: Never
  containers:
  - name: wget
    image: {image}
    command: ["sh", "-c", "busybox wget -q -O - http://{ip}:8080/index.html; hostname; echo my-ip=$MY_IP"]
    env:
    - {{name: MY_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}
"#
        ),
    );
    server.kubectl(&["create", "-f", &client]);
    server.wait_for(
        30,
        &["get", "pod", "client", "-o", "jsonpath={.status.phase}"],
        |out| out == "Succeeded",
    );
    let logs = server.kubectl(&["logs", "client"]);
    let mut lines = logs.lines();
    assert_eq!(lines.next(), Some("hello from web"), "{logs}");
    assert_eq!(lines.next(), Some("client"), "{logs}");
    let my_ip = lines.next().unwrap_or_default();
    assert!(my_ip.starts_with("my-ip=10.244."), "{logs}");
    assert_ne!(my_ip, format!("my-ip={ip}"), "{logs}");

    server.kubectl(&["delete", "pod", "web", "client", "--wait=true"]);
}
