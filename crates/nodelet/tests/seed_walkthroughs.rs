//! The seed's walkthroughs (pt-BR "Contêineres": images, private registries, RuntimeClass,
//! lifecycle hooks) run as a user runs them against `nodelet serve`, with the seed's commands
//! and object names; only the image references point at the test bed's registries (B: basic
//! auth, C: bearer tokens) instead of `$PRIVATE_IMAGE_NAME` and `janedoe/awesomeapp:v1`.
//! Each walkthrough runs once per kubectl client (1.32, 1.33, 1.20).

mod serve_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine;
use nodelet_testbed::{Bed, BedInfo, Login, RegistryInfo};
use serve_support::{Kubectl, Server};

/// The seed's `private-image-test-1`, with `$PRIVATE_IMAGE_NAME` filled in.
fn private_image_test(image: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: private-image-test-1
spec:
  containers:
    - name: uses-private-image
      image: {image}
      imagePullPolicy: Always
      command: [ \"echo\", \"SUCCESS\" ]
"
    )
}

/// A docker `config.json` with one login, as `docker login` writes it.
fn docker_config(registry: &RegistryInfo, login: &Login) -> String {
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", login.username, login.password));
    format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, registry.host)
}

fn phase(k: &Kubectl, secs: u64, pod: &str, ns: &str, want: &str) {
    k.wait_for(
        secs,
        &[
            "get",
            "pod",
            pod,
            "-n",
            ns,
            "-o",
            "jsonpath={.status.phase}",
        ],
        |out| out == want,
    );
}

/// Lines of `text` containing `word`, as `| grep word` prints them.
fn grep<'a>(text: &'a str, word: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.contains(word)).collect()
}

/// Deletes what a walkthrough left running, with a short grace period (the default is 30 s).
fn delete_all_pods(k: &Kubectl, ns: &str) {
    k.ok(&["delete", "pods", "--all", "-n", ns, "--grace-period=1"]);
}

/// The service account appears shortly after its namespace.
fn wait_for_service_account(k: &Kubectl, ns: &str) {
    k.wait_for(
        10,
        &["get", "serviceaccounts", "-n", ns, "-o", "name"],
        |out| out.contains("serviceaccount/default"),
    );
}

/// What the node-credentials walkthrough checks beyond the pull.
#[derive(Clone, Copy, PartialEq)]
enum Then {
    Nothing,
    /// The seed's `kubectl logs private-image-test-1` prints `SUCCESS`.
    Logs,
    /// The seed's pod restarts `echo` (restartPolicy Always): phase Running, STATUS
    /// CrashLoopBackOff, as upstream reports it.
    Status,
}

/// `{--root-dir}/config.json` holds the node's credentials for every pod: the seed's
/// `private-image-test-1` (image on B, basic auth) pulls and runs.
fn node_credentials_walkthrough(bin: &str, then: Then) {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    let k = server.client(bin);
    std::fs::create_dir_all(server.root_dir()).unwrap();
    std::fs::write(
        server.root_dir().join("config.json"),
        docker_config(&bed.basic, &bed.puller),
    )
    .unwrap();
    let image = BedInfo::reference(&bed.basic, "private");
    assert_eq!(
        k.ok_with_stdin(&["apply", "-f", "-"], &private_image_test(&image)),
        "pod/private-image-test-1 created\n"
    );
    let describe = k.wait_for(60, &["describe", "pods/private-image-test-1"], |out| {
        out.contains("Started container uses-private-image")
    });
    assert!(grep(&describe, "Failed").is_empty(), "{describe}");
    assert!(
        describe.contains(&format!("Successfully pulled image \"{image}\"")),
        "{describe}"
    );
    match then {
        Then::Nothing => {}
        Then::Logs => assert_eq!(k.ok(&["logs", "private-image-test-1"]), "SUCCESS\n"),
        Then::Status => {
            k.wait_for(
                60,
                &["get", "pod", "private-image-test-1", "--no-headers"],
                |out| out.contains("CrashLoopBackOff"),
            );
            phase(&k, 10, "private-image-test-1", "default", "Running");
        }
    }
    delete_all_pods(&k, "default");
}

fn node_credentials_let_a_private_image_run(bin: &str) {
    node_credentials_walkthrough(bin, Then::Nothing);
}

/// The seed's search list for node credentials, each place on its own (the ones under `/`
/// are the host's and left alone): `{--root-dir}/config.json`, `{cwd}/config.json`,
/// `${HOME}/.docker/config.json`, `{--root-dir}/.dockercfg`, `{cwd}/.dockercfg` (the harness
/// runs the server with its directory as both cwd and `$HOME`).
#[test]
fn node_credentials_are_found_in_each_searched_place() {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    let k = server.client(serve_support::KUBECTL);
    let config_json = docker_config(&bed.basic, &bed.puller);
    // `.dockercfg` is the bare registry map.
    let dockercfg = {
        let v: serde_json::Value = serde_json::from_str(&config_json).unwrap();
        v["auths"].to_string()
    };
    let image = BedInfo::reference(&bed.basic, "private");
    let places = [
        (server.root_dir().join("config.json"), &config_json),
        (server.dir().join("config.json"), &config_json),
        (server.dir().join(".docker/config.json"), &config_json),
        (server.root_dir().join(".dockercfg"), &dockercfg),
        (server.dir().join(".dockercfg"), &dockercfg),
    ];
    for (i, (path, text)) in places.iter().enumerate() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        let name = format!("private-image-test-{}", i + 1);
        let pod = private_image_test(&image)
            .replace("private-image-test-1", &name)
            .replace("spec:\n", "spec:\n  restartPolicy: Never\n");
        k.ok_with_stdin(&["apply", "-f", "-"], &pod);
        phase(&k, 60, &name, "default", "Succeeded");
        std::fs::remove_file(path).unwrap();
    }
    // And with none of them, the same pod cannot pull.
    let pod = private_image_test(&image)
        .replace("private-image-test-1", "private-image-test-none")
        .replace("spec:\n", "spec:\n  restartPolicy: Never\n");
    k.ok_with_stdin(&["apply", "-f", "-"], &pod);
    k.wait_for(60, &["describe", "pods/private-image-test-none"], |out| {
        out.contains("Failed to pull image")
    });
    delete_all_pods(&k, "default");
}

/// Without credentials the pull fails, and the seed's
/// `kubectl describe pods/private-image-test-1 | grep 'Failed'` finds why.
fn a_failed_pull_is_found_with_describe_and_grep(bin: &str) {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    let k = server.client(bin);
    let image = BedInfo::reference(&bed.basic, "private");
    k.ok_with_stdin(&["apply", "-f", "-"], &private_image_test(&image));
    let want = format!("Failed to pull image \"{image}\": ");
    let describe = k.wait_for(60, &["describe", "pods/private-image-test-1"], |out| {
        out.contains(&want)
    });
    let failed = grep(&describe, "Failed");
    assert!(
        failed
            .iter()
            .any(|l| l.contains("Warning") && l.contains(" Failed ") && l.contains(&want)),
        "{failed:#?}"
    );
    // The container waits, with the pull's reason.
    let row = k.wait_for(
        30,
        &["get", "pod", "private-image-test-1", "--no-headers"],
        |out| out.contains("ErrImagePull") || out.contains("ImagePullBackOff"),
    );
    assert!(row.contains("0/1"), "{row}");
    assert!(!describe.contains(&bed.puller.password));
    delete_all_pods(&k, "default");
}

/// The seed's `kubectl create secret docker-registry` and a pod in `awesomeapps` naming it
/// in `imagePullSecrets`, applied through the seed's `kustomization.yaml`.
fn a_pull_secret_in_namespace_awesomeapps(bin: &str) {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    let k = server.client(bin);
    assert_eq!(
        k.ok(&["create", "namespace", "awesomeapps"]),
        "namespace/awesomeapps created\n"
    );
    let server_flag = format!("--docker-server={}", bed.basic.host);
    let user_flag = format!("--docker-username={}", bed.puller.username);
    let password_flag = format!("--docker-password={}", bed.puller.password);
    assert_eq!(
        k.ok(&[
            "create",
            "secret",
            "docker-registry",
            "myregistrykey",
            &server_flag,
            &user_flag,
            &password_flag,
            "--docker-email=janedoe@example.com",
            "-n",
            "awesomeapps",
        ]),
        "secret/myregistrykey created\n"
    );
    let image = BedInfo::reference(&bed.basic, "private");
    // The seed's pod; the image runs a shell by default, so it gets something to do.
    server.write(
        "app/pod.yaml",
        &format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: foo
  namespace: awesomeapps
spec:
  containers:
    - name: foo
      image: {image}
      command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do sleep 1; done\"]
  imagePullSecrets:
    - name: myregistrykey
"
        ),
    );
    server.write("app/kustomization.yaml", "resources:\n- pod.yaml\n");
    assert_eq!(k.ok(&["apply", "-k", "app"]), "pod/foo created\n");
    phase(&k, 60, "foo", "awesomeapps", "Running");
    let row = k.wait_for(
        10,
        &["get", "pod", "foo", "-n", "awesomeapps", "--no-headers"],
        |out| out.contains("1/1"),
    );
    assert!(row.contains("Running"), "{row}");
    // The same pod elsewhere, without the secret, cannot pull.
    k.ok(&["create", "namespace", "others"]);
    let other = std::fs::read_to_string(server.dir().join("app/pod.yaml"))
        .unwrap()
        .replace("namespace: awesomeapps", "namespace: others");
    k.ok_with_stdin(&["apply", "-f", "-"], &other);
    k.wait_for(60, &["describe", "pod", "foo", "-n", "others"], |out| {
        out.contains("Failed to pull image")
    });
    delete_all_pods(&k, "awesomeapps");
    delete_all_pods(&k, "others");
}

/// ServiceAccount `imagePullSecrets`: patched onto `default`, copied into new pods by
/// admission, and used for the pull (registry C, bearer tokens).
fn service_account_pull_secrets(bin: &str) {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    let k = server.client(bin);
    let server_flag = format!("--docker-server={}", bed.token.host);
    let user_flag = format!("--docker-username={}", bed.puller.username);
    let password_flag = format!("--docker-password={}", bed.puller.password);
    k.ok(&[
        "create",
        "secret",
        "docker-registry",
        "myregistrykey",
        &server_flag,
        &user_flag,
        &password_flag,
    ]);
    wait_for_service_account(&k, "default");
    assert_eq!(
        k.ok(&[
            "patch",
            "serviceaccount",
            "default",
            "-p",
            r#"{"imagePullSecrets": [{"name": "myregistrykey"}]}"#,
        ]),
        "serviceaccount/default patched\n"
    );
    let image = BedInfo::reference(&bed.token, "private");
    let pod = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: sa-pull
spec:
  restartPolicy: Never
  containers:
    - name: main
      image: {image}
      command: [\"cat\", \"/etc/private-image\"]
"
    );
    assert_eq!(
        k.ok_with_stdin(&["create", "-f", "-"], &pod),
        "pod/sa-pull created\n"
    );
    assert_eq!(
        k.ok(&[
            "get",
            "pod",
            "sa-pull",
            "-o=jsonpath={.spec.imagePullSecrets[0].name}{\"\\n\"}",
        ]),
        "myregistrykey\n"
    );
    phase(&k, 60, "sa-pull", "default", "Succeeded");
}

/// The seed's RuntimeClass `myclass` with handler `myconfiguration` (a configured handler
/// here: crun with its own state directory) runs `mypod`; a class whose handler the node
/// lacks fails its pod with an event naming both; a class that does not exist is refused.
fn runtime_classes(bin: &str) {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    let k = server.client(bin);
    let class = "apiVersion: node.k8s.io/v1  # RuntimeClass is defined in the node.k8s.io API group
kind: RuntimeClass
metadata:
  name: myclass  # The name the RuntimeClass will be referenced by
  # RuntimeClass is a non-namespaced resource
handler: myconfiguration  # The name of the corresponding CRI configuration
";
    assert_eq!(
        k.ok_with_stdin(&["apply", "-f", "-"], class),
        "runtimeclass.node.k8s.io/myclass created\n"
    );
    let image = BedInfo::reference(&bed.plain, "tiny");
    let pod = |name: &str, class: &str| {
        format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  runtimeClassName: {class}
  restartPolicy: Never
  containers:
    - name: main
      image: {image}
      command: [\"echo\", \"SUCCESS\"]
"
        )
    };
    k.ok_with_stdin(&["apply", "-f", "-"], &pod("mypod", "myclass"));
    phase(&k, 60, "mypod", "default", "Succeeded");
    // The handler's runtime kept its state in its own directory.
    assert!(server.dir().join("runtimes/myconfiguration").exists());
    assert!(!server.dir().join("runtimes/runc").exists());

    k.ok_with_stdin(
        &["apply", "-f", "-"],
        "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: sandboxed\nhandler: runsc\n",
    );
    k.ok_with_stdin(&["apply", "-f", "-"], &pod("sandboxed-pod", "sandboxed"));
    phase(&k, 60, "sandboxed-pod", "default", "Failed");
    let describe = k.wait_for(10, &["describe", "pod", "sandboxed-pod"], |out| {
        out.contains("FailedCreatePodSandBox")
    });
    let event = describe
        .lines()
        .find(|l| l.contains("FailedCreatePodSandBox"))
        .unwrap();
    assert!(
        event.contains("Warning")
            && event.contains("Failed to create pod sandbox: ")
            && event.contains("\"runsc\"")
            && event.contains("\"sandboxed\""),
        "{describe}"
    );
    assert!(grep(&describe, "Pulling").is_empty(), "{describe}");

    let ran = k.run_with_stdin(&["apply", "-f", "-"], &pod("lost", "nosuchclass"));
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert!(
        ran.stderr.contains(
            "pods \"lost\" is forbidden: pod rejected: RuntimeClass \"nosuchclass\" not found"
        ),
        "{ran:?}"
    );
}

/// The seed's RuntimeClass scheduling and Pod overhead: the class's nodeSelector and
/// tolerations are merged into the pod at admission (a conflict is refused), the scheduler
/// places the pod only where they fit, and the overhead counts with the pod's requests.
fn runtime_class_scheduling_and_overhead(bin: &str) {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    let k = server.client(bin);
    let node = serve_support::hostname();
    server.wait_for_node();
    let classes = "apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: kata-fc
handler: myconfiguration
overhead:
  podFixed:
    memory: \"120Mi\"
    cpu: \"250m\"
scheduling:
  nodeSelector:
    kubernetes.io/os: linux
---
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: gpu-only
handler: runc
scheduling:
  nodeSelector:
    accelerator: gpu
  tolerations:
  - key: gpu
    operator: Exists
    effect: NoSchedule
";
    assert_eq!(
        k.ok_with_stdin(&["apply", "-f", "-"], classes),
        "runtimeclass.node.k8s.io/kata-fc created\nruntimeclass.node.k8s.io/gpu-only created\n"
    );
    let image = BedInfo::reference(&bed.plain, "tiny");
    let pod = |name: &str, extra_spec: &str| {
        format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
{extra_spec}  terminationGracePeriodSeconds: 5
  containers:
  - name: main
    image: {image}
    resources:
      limits:
        cpu: 500m
        memory: 100Mi
    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do sleep 1; done\"]
"
        )
    };
    k.ok_with_stdin(
        &["apply", "-f", "-"],
        &pod("with-overhead", "  runtimeClassName: kata-fc\n"),
    );
    assert_eq!(
        k.ok(&[
            "get",
            "pod",
            "with-overhead",
            "-o",
            "jsonpath={.spec.overhead} {.spec.nodeSelector}"
        ]),
        r#"{"cpu":"250m","memory":"120Mi"} {"kubernetes.io/os":"linux"}"#
    );
    phase(&k, 60, "with-overhead", "default", "Running");
    // The node's view: the pod's requests (defaulted from its limits) plus the overhead.
    let describe = k.ok(&["describe", "node", &node]);
    let row: Vec<&str> = describe
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("with-overhead"))
        .unwrap_or_else(|| panic!("{describe}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        (row[0], row[2], row[4], row[6], row[8]),
        ("default", "750m", "750m", "220Mi", "220Mi"),
        "{describe}"
    );

    let ran = k.run_with_stdin(
        &["apply", "-f", "-"],
        &pod(
            "conflict",
            "  runtimeClassName: kata-fc\n  nodeSelector:\n    kubernetes.io/os: windows\n",
        ),
    );
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert!(
        ran.stderr.contains(
            "pods \"conflict\" is forbidden: conflict: runtimeClass.scheduling.nodeSelector[kubernetes.io/os] = linux; pod.spec.nodeSelector[kubernetes.io/os] = windows"
        ),
        "{ran:?}"
    );

    k.ok_with_stdin(
        &["apply", "-f", "-"],
        &pod("needs-gpu", "  runtimeClassName: gpu-only\n"),
    );
    let tolerations = k.ok(&[
        "get",
        "pod",
        "needs-gpu",
        "-o",
        "jsonpath={.spec.tolerations[*].key}",
    ]);
    assert!(tolerations.split(' ').any(|t| t == "gpu"), "{tolerations}");
    let describe = k.wait_for(30, &["describe", "pod", "needs-gpu"], |out| {
        out.contains("FailedScheduling")
    });
    assert!(
        describe.contains(
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
        ),
        "{describe}"
    );
    assert_eq!(
        k.ok(&["get", "pod", "needs-gpu", "-o", "jsonpath={.status.phase}"]),
        "Pending"
    );
    delete_all_pods(&k, "default");
}

/// Collects the paths of HTTP requests to a loopback port (the hooks' `httpGet` target:
/// containers share the node's network here).
fn hook_listener() -> (u16, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut request_line = String::new();
            let _ = BufReader::new(&stream).read_line(&mut request_line);
            let path = request_line.split(' ').nth(1).unwrap_or("").to_owned();
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            if tx.send(path).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

/// The `lifecycle-demo` pod: PostStart writes a message in the container (read back with
/// `kubectl exec` when `exec`); HTTP PostStart and PreStop hooks reach the node; a failing
/// PostStart is a `FailedPostStartHook` warning in `kubectl describe pod`.
fn hooks_walkthrough(bin: &str, exec: bool) {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    let k = server.client(bin);
    let image = BedInfo::reference(&bed.plain, "tiny");
    let (port, requests) = hook_listener();
    let demo = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: lifecycle-demo
spec:
  terminationGracePeriodSeconds: 10
  containers:
  - name: lifecycle-demo-container
    image: {image}
    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do sleep 1; done\"]
    lifecycle:
      postStart:
        exec:
          command: [\"/bin/sh\", \"-c\", \"mkdir -p /usr/share && echo Hello from the postStart handler > /usr/share/message\"]
      preStop:
        httpGet:
          host: 127.0.0.1
          port: {port}
          path: /prestop
  - name: http-hooks
    image: {image}
    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do sleep 1; done\"]
    lifecycle:
      postStart:
        httpGet:
          host: 127.0.0.1
          port: {port}
          path: /poststart
"
    );
    assert_eq!(
        k.ok_with_stdin(&["apply", "-f", "-"], &demo),
        "pod/lifecycle-demo created\n"
    );
    phase(&k, 60, "lifecycle-demo", "default", "Running");
    assert_eq!(
        requests.recv_timeout(Duration::from_secs(30)).unwrap(),
        "/poststart"
    );
    if exec {
        assert_eq!(
            k.ok(&[
                "exec",
                "lifecycle-demo",
                "-c",
                "lifecycle-demo-container",
                "--",
                "cat",
                "/usr/share/message"
            ]),
            "Hello from the postStart handler\n"
        );
    }
    assert_eq!(
        k.ok(&["delete", "pod", "lifecycle-demo"]),
        "pod \"lifecycle-demo\" deleted\n"
    );
    assert_eq!(
        requests.recv_timeout(Duration::from_secs(5)).unwrap(),
        "/prestop"
    );

    let failing = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: failing-hook
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: {image}
    command: [\"sh\", \"-c\", \"while true; do sleep 1; done\"]
    lifecycle:
      postStart:
        exec:
          command: [\"sh\", \"-c\", \"exit 1\"]
"
    );
    k.ok_with_stdin(&["apply", "-f", "-"], &failing);
    let describe = k.wait_for(60, &["describe", "pod", "failing-hook"], |out| {
        out.contains("FailedPostStartHook")
    });
    assert!(
        describe
            .lines()
            .any(|l| l.contains("Warning") && l.contains("FailedPostStartHook")),
        "{describe}"
    );
    phase(&k, 30, "failing-hook", "default", "Failed");
}

fn post_start_and_pre_stop_hooks(bin: &str) {
    hooks_walkthrough(bin, false);
}

per_kubectl! {
    node_credentials_let_a_private_image_run;
    a_failed_pull_is_found_with_describe_and_grep;
    a_pull_secret_in_namespace_awesomeapps;
    service_account_pull_secrets;
    runtime_classes;
    runtime_class_scheduling_and_overhead;
    post_start_and_pre_stop_hooks;
}

/// The walkthroughs' steps that read a container's output.
mod needs_logs {
    fn the_private_image_prints_success(bin: &str) {
        super::node_credentials_walkthrough(bin, super::Then::Logs);
    }

    crate::per_kubectl! {
        the_private_image_prints_success;
    }
}

/// The walkthroughs' steps that read container states upstream's way.
mod needs_status {
    fn a_restarting_pod_is_running_in_crash_loop_back_off(bin: &str) {
        super::node_credentials_walkthrough(bin, super::Then::Status);
    }

    /// The pod of a class whose handler is missing is Failed; its container never ran, so
    /// it must not look as if it were still being created.
    fn a_failed_sandbox_leaves_no_container_waiting(bin: &str) {
        let bed = super::Bed::shared().unwrap();
        let server = super::Server::start(Some(&bed));
        let k = server.client(bin);
        k.ok_with_stdin(
            &["apply", "-f", "-"],
            "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: sandboxed\nhandler: runsc\n",
        );
        let image = super::BedInfo::reference(&bed.plain, "tiny");
        k.ok_with_stdin(
            &["apply", "-f", "-"],
            &format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: sandboxed-pod\nspec:\n  runtimeClassName: sandboxed\n  containers:\n  - name: main\n    image: {image}\n"
            ),
        );
        super::phase(&k, 60, "sandboxed-pod", "default", "Failed");
        let row = k.ok(&["get", "pod", "sandboxed-pod", "--no-headers"]);
        assert!(!row.contains("ContainerCreating"), "{row}");
        let state = k.ok(&[
            "get",
            "pod",
            "sandboxed-pod",
            "-o",
            "jsonpath={.status.containerStatuses[0].state}",
        ]);
        assert!(state.contains("terminated"), "{state}");
    }

    crate::per_kubectl! {
        a_restarting_pod_is_running_in_crash_loop_back_off;
        a_failed_sandbox_leaves_no_container_waiting;
    }
}

/// The walkthroughs' steps that run a command in a container.
mod needs_exec {
    fn post_start_wrote_its_message(bin: &str) {
        super::hooks_walkthrough(bin, true);
    }

    crate::per_kubectl! {
        post_start_wrote_its_message;
    }
}
