//! The real kubectl against `nodelet serve`: each walkthrough starts the built binary on a free
//! loopback port with a temporary data directory, runs kubectl with the kubeconfig it wrote,
//! and asserts what a user sees. It runs once per kubectl found: `/usr/bin/kubectl` (a
//! dispatcher that picks the client matching the server's minor version) and the pinned
//! 1.32 and 1.33 clients of the Google Cloud SDK; Debian's 1.20 when `scripts/install-deps`
//! unpacked it. Missing clients are skipped with a note.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running `nodelet serve`, stopped (by its PID) when dropped.
struct Server {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = {
            let probe = TcpListener::bind("127.0.0.1:0").expect("free port");
            probe.local_addr().unwrap().port()
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_nodelet"))
            // The kubelet's state (images, pods) stays in the test's directory.
            .arg("--root-dir")
            .arg(dir.path().join("state"))
            .args(["serve", "--data-dir"])
            .arg(dir.path().join("server"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nodelet serve");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let kubeconfig = dir.path().join("server/kubeconfig");
        let want = format!("export KUBECONFIG={}", kubeconfig.display());
        let mut seen = Vec::new();
        loop {
            match lines.next() {
                Some(Ok(line)) if line == want => break,
                Some(Ok(line)) => seen.push(line),
                _ => panic!("nodelet serve ended before printing {want:?}: {seen:?}"),
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, dir, port }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("server/kubeconfig")
    }

    fn kubectl<'a>(&'a self, bin: &'a Path) -> Kubectl<'a> {
        Kubectl { server: self, bin }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Kubectl<'a> {
    server: &'a Server,
    bin: &'a Path,
}

/// What one kubectl run printed.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Kubectl<'_> {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.bin);
        cmd.arg("--kubeconfig")
            .arg(self.server.kubeconfig())
            .arg("--cache-dir")
            .arg(self.server.dir.path().join("cache"))
            .args(args)
            .env("HOME", self.server.dir.path());
        cmd
    }

    fn run(&self, args: &[&str]) -> Ran {
        let out: Output = self.command(args).output().expect("run kubectl");
        Ran {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs and expects success.
    fn ok(&self, args: &[&str]) -> String {
        let ran = self.run(args);
        assert_eq!(ran.code, Some(0), "kubectl {args:?}: {ran:?}");
        ran.stdout
    }

    /// Runs and expects failure; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let ran = self.run(args);
        assert_eq!(ran.code, Some(1), "kubectl {args:?} should fail: {ran:?}");
        ran.stderr
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_lowercase()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

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
    let bin = Path::new(bin);
    if !bin.exists() {
        eprintln!("skipped: {} is not installed", bin.display());
        return;
    }
    let server = Server::start();
    let k = server.kubectl(bin);
    let files = server.dir.path();

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

    let pod = write(files, "pod.yaml", POD);
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
    // Pending until the kubelet reports its container waiting (ContainerCreating).
    assert!(
        row.contains("0/1") && (row.contains("Pending") || row.contains("ContainerCreating")),
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
    let changed = write(
        files,
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

    let rc = write(files, "runtimeclass.yaml", RUNTIME_CLASS);
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
    let watched = write(
        files,
        "watched.yaml",
        &POD.replace("name: demo", "name: watched"),
    );
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

    let bad = write(files, "bad.yaml", BAD_POD);
    let err = k.fails(&["create", "-f", &bad]);
    assert!(
        err.contains("The Pod \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters"),
        "{err}"
    );
}

#[test]
fn kubectl_default() {
    walkthrough("/usr/bin/kubectl");
}

#[test]
fn kubectl_1_32() {
    walkthrough("/usr/lib/google-cloud-sdk/bin/kubectl.1.32");
}

#[test]
fn kubectl_1_33() {
    walkthrough("/usr/lib/google-cloud-sdk/bin/kubectl.1.33");
}

#[test]
fn kubectl_1_20() {
    // Unpacked from Debian's kubernetes-client package by scripts/install-deps.
    walkthrough("/usr/local/lib/nodelet-test/kubectl-1.20/usr/bin/kubectl");
}

#[test]
fn requests_without_credentials_get_401_status() {
    let server = Server::start();
    let out = Command::new("curl")
        .args(["-sk", "-w", "\n%{http_code}"])
        .arg(format!(
            "https://127.0.0.1:{}/api/v1/namespaces",
            server.port
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
    let token = std::fs::read_to_string(server.dir.path().join("server/token")).unwrap();
    let out = Command::new("curl")
        .args(["-sk", "-H"])
        .arg(format!("Authorization: Bearer {}", token.trim()))
        .arg(format!(
            "https://127.0.0.1:{}/api/v1/namespaces/default",
            server.port
        ))
        .output()
        .expect("curl");
    let ns: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ns["metadata"]["name"], "default");
}
