//! The real kubectl against `nodelet serve`: each walkthrough starts the built binary on a free
//! loopback port with a temporary data directory, runs kubectl with the kubeconfig it wrote,
//! and asserts what a user sees. It runs once per kubectl found: `/usr/bin/kubectl` (a
//! dispatcher that picks the client matching the server's minor version) and the pinned
//! 1.32 and 1.33 clients of the Google Cloud SDK; Debian's 1.20 when `scripts/install-deps`
//! unpacked it. Missing clients are skipped with a note.

mod serve_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serve_support::{
    KUBECTL_1_20, KUBECTL_1_32, KUBECTL_1_33, KUBECTL_DEFAULT, Server, hostname, installed,
};

const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: demo
  labels:
    app: demo
spec:
  containers:
  - name: main
    image: busybox:1.36
    command: [\"sleep\", \"3600\"]
";

const RUNTIME_CLASS: &str = "apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: myclass
handler: myconfiguration
";

const BAD_POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: Bad_Name
spec:
  containers:
  - name: main
    image: busybox
";

/// Everything the issue's kubectl list needs from the API core, as one user session.
fn walkthrough(bin: &str) {
    if !installed(bin) {
        return;
    }
    let server = Server::start(None);
    let k = server.client(bin);

    let out = k.ok(&["version"]);
    // 1.20 prints `Server Version: version.Info{... GitVersion:"v1.33.0-nodelet" ...}`.
    let server_line = out
        .lines()
        .find(|l| l.starts_with("Server Version: "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(server_line.contains("v1.33.0-nodelet"), "{out}");

    let out = k.ok(&["get", "ns"]);
    for ns in ["default", "kube-node-lease", "kube-public", "kube-system"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(ns) && l.contains("Active")),
            "namespace {ns} missing:\n{out}"
        );
    }

    // The node registers itself right after start.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = k.ok(&["get", "nodes", "-o", "jsonpath={.items[*].metadata.name}"]);
        if out == hostname() {
            break;
        }
        assert!(Instant::now() < deadline, "node never registered: {out:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = k.ok(&["get", "nodes"]);
    assert!(out.contains("Ready"), "{out}");

    let pod = server.write("pod.yaml", POD);
    assert_eq!(k.ok(&["create", "-f", &pod]), "pod/demo created\n");
    let out = k.ok(&["get", "pods"]);
    let header = out.lines().next().unwrap();
    assert!(
        header.starts_with("NAME")
            && header.contains("READY")
            && header.contains("STATUS")
            && header.contains("RESTARTS")
            && header.contains("AGE"),
        "{out}"
    );
    let row = out
        .lines()
        .find(|l| l.starts_with("demo "))
        .unwrap_or_else(|| panic!("{out}"));
    // Scheduled at once; the kubelet may already be trying to pull (there is no registry).
    assert!(
        row.contains("0/1")
            && [
                "Pending",
                "ContainerCreating",
                "ErrImagePull",
                "ImagePullBackOff"
            ]
            .iter()
            .any(|s| row.contains(s)),
        "{row}"
    );
    let out = k.ok(&["get", "pods", "-o", "wide"]);
    assert!(
        out.lines().next().unwrap().contains("NOMINATED NODE"),
        "{out}"
    );

    let yaml = k.ok(&["get", "pod", "demo", "-o", "yaml"]);
    for want in [
        "name: demo",
        "namespace: default",
        "imagePullPolicy: IfNotPresent",
        "serviceAccountName: default",
        "phase: Pending",
        "uid: ",
        "resourceVersion: ",
    ] {
        assert!(yaml.contains(want), "{want} missing:\n{yaml}");
    }

    // apply over an object made by create: configured (with kubectl's warning), then a change.
    let ran = k.run(&["apply", "-f", &pod]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert_eq!(ran.stdout, "pod/demo configured\n");
    let changed = server.write(
        "pod.yaml",
        &POD.replace("app: demo\n", "app: demo\n    tier: backend\n"),
    );
    assert_eq!(k.ok(&["apply", "-f", &changed]), "pod/demo configured\n");
    assert_eq!(
        k.ok(&[
            "get",
            "pod",
            "demo",
            "-o",
            "jsonpath={.metadata.labels.tier}"
        ]),
        "backend"
    );
    assert_eq!(k.ok(&["apply", "-f", &changed]), "pod/demo unchanged\n");

    assert_eq!(k.ok(&["delete", "pod", "demo"]), "pod \"demo\" deleted\n");
    let err = k.fails(&["get", "pod", "demo"]);
    assert!(
        err.contains("Error from server (NotFound): pods \"demo\" not found"),
        "{err}"
    );

    assert_eq!(
        k.ok(&[
            "create",
            "secret",
            "docker-registry",
            "regcred",
            "--docker-server=registry.example:5000",
            "--docker-username=u",
            "--docker-password=p"
        ]),
        "secret/regcred created\n"
    );
    assert_eq!(
        k.ok(&["get", "secret", "regcred", "-o", "jsonpath={.type}"]),
        "kubernetes.io/dockerconfigjson"
    );
    let err = k.fails(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        "--docker-server=x",
        "--docker-username=u",
        "--docker-password=p",
    ]);
    assert!(err.contains("secrets \"regcred\" already exists"), "{err}");

    assert_eq!(
        k.ok(&[
            "patch",
            "serviceaccount",
            "default",
            "-p",
            r#"{"imagePullSecrets":[{"name":"regcred"}]}"#
        ]),
        "serviceaccount/default patched\n"
    );
    // ServiceAccount admission copies the account's pull secrets into new pods.
    k.ok(&["create", "-f", &pod]);
    assert_eq!(
        k.ok(&[
            "get",
            "pod",
            "demo",
            "-o",
            "jsonpath={.spec.imagePullSecrets[*].name}"
        ]),
        "regcred"
    );

    let rc = server.write("runtimeclass.yaml", RUNTIME_CLASS);
    assert_eq!(
        k.ok(&["apply", "-f", &rc]),
        "runtimeclass.node.k8s.io/myclass created\n"
    );
    let out = k.ok(&["get", "runtimeclass"]);
    assert!(out.lines().next().unwrap().contains("HANDLER"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("myclass") && l.contains("myconfiguration")),
        "{out}"
    );

    // A watch sees a pod created while it runs.
    let mut watcher = k
        .command(&["get", "pods", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get pods -w");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = watcher.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // The first line is the initial list; then create the pod.
    let first = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("watch printed the list");
    assert!(first.starts_with("NAME"), "{first}");
    let watched = server.write("watched.yaml", &POD.replace("name: demo", "name: watched"));
    k.ok(&["create", "-f", &watched]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    let mut found = false;
    while !found && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            found = line.starts_with("watched ") && line.contains("Pending");
            got.push(line);
        }
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert!(found, "no ADDED line for the new pod; saw {got:?}");

    let err = k.fails(&["get", "pod", "nosuch"]);
    assert_eq!(
        err.trim_end(),
        "Error from server (NotFound): pods \"nosuch\" not found"
    );

    let bad = server.write("bad.yaml", BAD_POD);
    let err = k.fails(&["create", "-f", &bad]);
    assert!(
        err.contains("The Pod \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters"),
        "{err}"
    );
}

#[test]
fn kubectl_default() {
    walkthrough(KUBECTL_DEFAULT);
}

#[test]
fn kubectl_1_32() {
    walkthrough(KUBECTL_1_32);
}

#[test]
fn kubectl_1_33() {
    walkthrough(KUBECTL_1_33);
}

#[test]
fn kubectl_1_20() {
    walkthrough(KUBECTL_1_20);
}

#[test]
fn requests_without_credentials_get_401_status() {
    let server = Server::start(None);
    let out = Command::new("curl")
        .args(["-sk", "-w", "\n%{http_code}"])
        .arg(format!(
            "https://127.0.0.1:{}/api/v1/namespaces",
            server.port()
        ))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, code) = text.rsplit_once('\n').unwrap();
    assert_eq!(code, "401", "{text}");
    let status: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Unauthorized");

    // The token written beside the kubeconfig is accepted.
    let token = std::fs::read_to_string(server.dir().join("server/token")).unwrap();
    let out = Command::new("curl")
        .args(["-sk", "-H"])
        .arg(format!("Authorization: Bearer {}", token.trim()))
        .arg(format!(
            "https://127.0.0.1:{}/api/v1/namespaces/default",
            server.port()
        ))
        .output()
        .expect("curl");
    let ns: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ns["metadata"]["name"], "default");
}
