//! The issue's kubectl list against a `nodelet serve` that runs its pods (images from the
//! test bed): create, apply twice, get in every output format and with `-w`, describe with
//! events, wait for Ready, delete with a grace period and by force, the node list through
//! jsonpath, pull secrets, ServiceAccounts and RuntimeClasses; each step asserts what the user
//! sees, once per kubectl client (1.32, 1.33, 1.20). `kubectl.rs`
//! covers the same commands on pods that never run. Logs and exec are grouped at the end.

mod serve_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nodelet_testbed::{Bed, BedInfo};
use serve_support::{Kubectl, Server, hostname};

/// A pod that runs until told to stop (sh as pid 1 needs the trap to honour SIGTERM).
fn pod(name: &str, image: &str, labels: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels:
    app: {name}
{labels}spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: main
    image: {image}
    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; echo started; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.5; done\"]
"
    )
}

/// Reads a child's stdout lines into a channel.
fn lines_of(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits up to `secs` for a line matching `check`; returns every line seen.
fn until_line(rx: &mpsc::Receiver<String>, secs: u64, check: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            let hit = check(&line);
            seen.push(line);
            if hit {
                return seen;
            }
        }
    }
    panic!("no matching line in {secs} s; saw {seen:#?}");
}

/// Containers the runtime still lists in this server's runc state directory.
fn runc_containers(server: &Server) -> String {
    let root = server.dir().join("runtimes/runc");
    if !root.exists() {
        return String::new();
    }
    let out = Command::new("runc")
        .arg("--root")
        .arg(&root)
        .args(["list", "-q"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn wait_ready(k: &Kubectl, name: &str) {
    assert_eq!(
        k.ok(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{name}"),
            "--timeout=60s"
        ]),
        format!("pod/{name} condition met\n")
    );
}

fn kubectl_suite(bin: &str) {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    let k = server.client(bin);
    let node = hostname();
    server.wait_for_node();
    let image = BedInfo::reference(&bed.plain, "tiny");

    // The seed's node list through jsonpath.
    assert_eq!(
        k.ok(&[
            "get",
            "nodes",
            "-o",
            "jsonpath={range.items[*].metadata}{.name} {end}"
        ]),
        format!("{node} ")
    );
    // This node has no ExternalIP: the seed's address list is empty.
    assert_eq!(
        k.ok(&[
            "get",
            "nodes",
            "-o",
            r#"jsonpath={range .items[*].status.addresses[?(@.type=="ExternalIP")]}{.address} {end}"#,
        ]),
        ""
    );
    let ips = k.ok(&[
        "get",
        "nodes",
        "-o",
        r#"jsonpath={range .items[*].status.addresses[?(@.type=="InternalIP")]}{.address} {end}"#,
    ]);
    assert!(
        ips.trim().parse::<std::net::IpAddr>().is_ok(),
        "InternalIP: {ips:?}"
    );

    // get -w from before the pod exists follows it; create -f, then wait for Ready.
    // A watch prints nothing for an empty list: a pod that never schedules shows when it is
    // listening; unscheduled, it is deleted at once.
    let marker = server.write(
        "marker.yaml",
        &pod("marker", &image, "").replace("spec:\n", "spec:\n  nodeSelector:\n    none: none\n"),
    );
    k.ok(&["create", "-f", &marker]);
    let mut watcher = k
        .command(&["get", "pods", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let watched = lines_of(&mut watcher);
    until_line(&watched, 20, |l| l.starts_with("marker "));
    assert_eq!(
        k.ok(&["delete", "pod", "marker"]),
        "pod \"marker\" deleted\n"
    );
    let web = server.write("web.yaml", &pod("web", &image, ""));
    assert_eq!(k.ok(&["create", "-f", &web]), "pod/web created\n");
    wait_ready(&k, "web");
    let seen = until_line(&watched, 20, |l| {
        l.starts_with("web ") && l.contains("1/1") && l.contains("Running")
    });
    assert!(
        seen.iter()
            .any(|l| l.starts_with("web ") && l.contains("0/1") && l.contains("Pending")),
        "{seen:#?}"
    );

    // get: the table, -o wide, yaml, json, jsonpath.
    let out = k.ok(&["get", "pods"]);
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{out}"
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["web", "1/1", "Running", "0"], "{out}");
    let pod_ip = k.ok(&["get", "pod", "web", "-o", "jsonpath={.status.podIP}"]);
    assert!(pod_ip.parse::<std::net::IpAddr>().is_ok(), "{pod_ip:?}");
    let out = k.ok(&["get", "pods", "-o", "wide"]);
    let header = out.lines().next().unwrap();
    for column in ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"] {
        assert!(header.contains(column), "{column}: {out}");
    }
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..],
        [
            "web", "1/1", "Running", "0", row[4], &pod_ip, &node, "<none>", "<none>"
        ],
        "{out}"
    );
    let yaml = k.ok(&["get", "pod", "web", "-o", "yaml"]);
    for want in [
        "phase: Running",
        &format!("nodeName: {node}"),
        &format!("podIP: {pod_ip}"),
        "    name: main\n",
    ] {
        assert!(yaml.contains(want), "{want}: {yaml}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "pod", "web", "-o", "json"])).unwrap();
    assert_eq!(json["kind"], "Pod");
    assert_eq!(json["status"]["phase"], "Running");
    let ready = json["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "True", "{json:#}");
    assert_eq!(
        k.ok(&[
            "get",
            "pod",
            "web",
            "-o",
            "jsonpath={.spec.containers[0].image} {.spec.containers[0].imagePullPolicy}"
        ]),
        format!("{image} IfNotPresent")
    );

    // apply over create (configured), with a change (configured), unchanged.
    let ran = k.run(&["apply", "-f", &web]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert_eq!(ran.stdout, "pod/web configured\n");
    assert!(
        ran.stderr
            .contains("missing the kubectl.kubernetes.io/last-applied-configuration annotation"),
        "{ran:?}"
    );
    let changed = server.write("web.yaml", &pod("web", &image, "    tier: frontend\n"));
    assert_eq!(k.ok(&["apply", "-f", &changed]), "pod/web configured\n");
    assert_eq!(k.ok(&["apply", "-f", &changed]), "pod/web unchanged\n");
    // A change a running pod cannot take is refused with the API's reason.
    let forbidden = server.write(
        "forbidden.yaml",
        &pod("web", &image, "    tier: frontend\n").replace("sleep 0.5", "sleep 1"),
    );
    let err = k.fails(&["apply", "-f", &forbidden]);
    assert!(
        err.contains(
            "The Pod \"web\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"
        ),
        "{err}"
    );
    assert_eq!(
        k.ok(&["get", "pods", "-l", "tier=frontend", "-o", "name"]),
        "pod/web\n"
    );

    // describe: state and the kubelet's events.
    let describe = k.ok(&["describe", "pod", "web"]);
    // Column widths differ between clients: compare lines with their spaces collapsed.
    let squeezed: Vec<String> = describe
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for want in [
        "Name: web".to_owned(),
        format!("Node: {node}/"),
        "Status: Running".into(),
        format!("IP: {pod_ip}"),
        "Containers:".into(),
        "State: Running".into(),
        "Ready: True".into(),
        "Events:".into(),
    ] {
        assert!(
            squeezed.iter().any(|l| l.starts_with(&want)),
            "{want:?}: {describe}"
        );
    }
    for (reason, message) in [
        (
            "Scheduled",
            format!("Successfully assigned default/web to {node}"),
        ),
        ("Pulled", String::new()),
        ("Created", "Created container".into()),
        ("Started", "Started container".into()),
    ] {
        assert!(
            describe.lines().any(|l| l.contains("Normal")
                && l.split_whitespace().nth(1) == Some(reason)
                && l.contains(&message)),
            "{reason}: {describe}"
        );
    }

    // delete --grace-period: the watch sees it terminate.
    assert_eq!(
        k.ok(&["delete", "pod", "web", "--grace-period=1"]),
        "pod \"web\" deleted\n"
    );
    until_line(&watched, 10, |l| {
        l.starts_with("web ") && l.contains("Terminating")
    });
    let _ = watcher.kill();
    let _ = watcher.wait();
    let err = k.fails(&["get", "pod", "web"]);
    assert!(
        err.contains("Error from server (NotFound): pods \"web\" not found"),
        "{err}"
    );

    // delete --force: gone from the API at once, the kubelet still stops the container.
    let forced = server.write("forced.yaml", &pod("forced", &image, ""));
    k.ok(&["create", "-f", &forced]);
    wait_ready(&k, "forced");
    let ran = k.run(&["delete", "pod", "forced", "--force", "--grace-period=0"]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert_eq!(ran.stdout, "pod \"forced\" force deleted\n");
    assert!(
        ran.stderr.to_lowercase().contains(
            "warning: immediate deletion does not wait for confirmation that the running resource has been terminated"
        ),
        "{ran:?}"
    );
    assert_eq!(k.ok(&["get", "pods", "-o", "name"]), "");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !runc_containers(&server).is_empty() {
        assert!(
            Instant::now() < deadline,
            "still running: {}",
            runc_containers(&server)
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // create secret docker-registry, patch the ServiceAccount, a RuntimeClass applied twice.
    let server_flag = format!("--docker-server={}", bed.basic.host);
    assert_eq!(
        k.ok(&[
            "create",
            "secret",
            "docker-registry",
            "regcred",
            &server_flag,
            "--docker-username=jane",
            "--docker-password=s3cret",
            "--docker-email=jane@example.com",
        ]),
        "secret/regcred created\n"
    );
    let config = k.ok(&[
        "get",
        "secret",
        "regcred",
        "-o",
        r"jsonpath={.data.\.dockerconfigjson}",
    ]);
    use base64::Engine;
    let config: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(config)
            .unwrap(),
    )
    .unwrap();
    let entry = &config["auths"][&bed.basic.host];
    assert_eq!(entry["username"], "jane", "{config}");
    assert_eq!(entry["email"], "jane@example.com", "{config}");
    // An existing docker config imported as a secret; a malformed one is refused.
    let docker_config = server.write(
        "docker/config.json",
        &format!(r#"{{"auths":{{"{}":{{"auth":"dTpw"}}}}}}"#, bed.basic.host),
    );
    let from_file = format!("--from-file=.dockerconfigjson={docker_config}");
    assert_eq!(
        k.ok(&[
            "create",
            "secret",
            "generic",
            "imported",
            &from_file,
            "--type=kubernetes.io/dockerconfigjson",
        ]),
        "secret/imported created\n"
    );
    let broken = server.write("docker/broken.json", "{\"auths\": {bad}}\n");
    let err = k.fails(&[
        "create",
        "secret",
        "generic",
        "broken",
        &format!("--from-file=.dockerconfigjson={broken}"),
        "--type=kubernetes.io/dockerconfigjson",
    ]);
    assert!(
        err.contains(
            "Secret \"broken\" is invalid: data[.dockerconfigjson]: Invalid value: \"<secret contents redacted>\": invalid character 'b' looking for beginning of object key string"
        ),
        "{err}"
    );
    let err = k.fails(&[
        "create",
        "secret",
        "generic",
        "broken",
        "--from-literal=password=x",
        "--type=kubernetes.io/dockerconfigjson",
    ]);
    assert!(
        err.contains("Secret \"broken\" is invalid: data[.dockerconfigjson]: Required value"),
        "{err}"
    );
    k.wait_for(10, &["get", "serviceaccount", "-o", "name"], |out| {
        out.contains("serviceaccount/default")
    });
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
    assert_eq!(
        k.ok(&[
            "patch",
            "serviceaccount",
            "default",
            "-p",
            r#"{"imagePullSecrets":[{"name":"regcred"}]}"#
        ]),
        "serviceaccount/default patched (no change)\n"
    );
    let class = server.write(
        "class.yaml",
        "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: myclass\nhandler: crun\n",
    );
    assert_eq!(
        k.ok(&["apply", "-f", &class]),
        "runtimeclass.node.k8s.io/myclass created\n"
    );
    assert_eq!(
        k.ok(&["apply", "-f", &class]),
        "runtimeclass.node.k8s.io/myclass unchanged\n"
    );
    let out = k.ok(&["get", "runtimeclass", "myclass"]);
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..2], ["myclass", "crun"], "{out}");
}

/// `kubectl logs` and `logs -f` on a running pod.
fn logs_suite(bin: &str) {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    let k = server.client(bin);
    let image = BedInfo::reference(&bed.plain, "tiny");
    let file = server.write("talker.yaml", &pod("talker", &image, ""));
    k.ok(&["create", "-f", &file]);
    wait_ready(&k, "talker");
    let out = k.wait_for(10, &["logs", "talker"], |out| out.contains("tick 2\n"));
    assert!(out.starts_with("started\ntick 1\ntick 2\n"), "{out}");
    assert_eq!(
        k.ok(&["logs", "talker", "-c", "main", "--tail=1"])
            .lines()
            .count(),
        1
    );
    let mut follower = k
        .command(&["logs", "-f", "talker"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut follower);
    let seen = until_line(&lines, 5, |l| l == "started");
    assert_eq!(seen, ["started"]);
    // Lines written after the command started arrive while it runs.
    let now = k.ok(&["logs", "talker"]).lines().count();
    until_line(&lines, 10, |l| l == format!("tick {}", now + 2));
    let _ = follower.kill();
    let _ = follower.wait();
    k.ok(&["delete", "pod", "talker", "--grace-period=1"]);
}

/// `kubectl exec` with output, stdin and an exit code.
fn exec_suite(bin: &str) {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    let k = server.client(bin);
    let image = BedInfo::reference(&bed.plain, "tiny");
    let file = server.write("shell.yaml", &pod("shell", &image, ""));
    k.ok(&["create", "-f", &file]);
    wait_ready(&k, "shell");
    assert_eq!(k.ok(&["exec", "shell", "--", "echo", "hello"]), "hello\n");
    assert_eq!(
        k.ok_with_stdin(&["exec", "-i", "shell", "--", "cat"], "piped\n"),
        "piped\n"
    );
    let ran = k.run(&["exec", "shell", "--", "sh", "-c", "exit 3"]);
    assert_eq!(ran.code, Some(3), "{ran:?}");
    assert!(
        ran.stderr.contains("command terminated with exit code 3"),
        "{ran:?}"
    );
    k.ok(&["delete", "pod", "shell", "--grace-period=1"]);
}

per_kubectl! {
    kubectl_suite;
}

mod needs_logs {
    use super::logs_suite;

    crate::per_kubectl! {
        logs_suite;
    }
}

mod needs_exec {
    use super::exec_suite;

    crate::per_kubectl! {
        exec_suite;
    }
}
