//! API behaviours the control-plane issue names, seen through the real kubectl against
//! `nodelet serve` (pods that never need to run): server-side field validation (Strict, Warn,
//! Ignore), 409 on a stale resourceVersion, delete with `--cascade`, events in core/v1 and
//! events.k8s.io/v1 (`kubectl get events`, `kubectl events`), the data directory's modes, and
//! secret data kept out of error messages.

mod serve_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serve_support::{KUBECTL, KUBECTL_1_20, Server, hostname, installed};

/// A pod with two fields no Pod has.
const POD_WITH_UNKNOWN_FIELDS: &str = "apiVersion: v1
kind: Pod
metadata:
  name: odd
spec:
  bogus: 1
  containers:
  - name: main
    image: busybox:1.36
    extra: yes
";

fn field_validation(bin: &str) {
    let server = Server::start(None);
    let k = server.client(bin);
    let file = server.write("odd.yaml", POD_WITH_UNKNOWN_FIELDS);
    let warnings = [
        "Warning: unknown field \"spec.bogus\"",
        "Warning: unknown field \"spec.containers[0].extra\"",
    ];
    if bin == KUBECTL_1_20 {
        // 1.20 sends no fieldValidation: the server's default is Warn.
        let ran = k.run(&["create", "-f", &file]);
        assert_eq!(ran.code, Some(0), "{ran:?}");
        assert_eq!(ran.stdout, "pod/odd created\n");
        for want in warnings {
            assert!(ran.stderr.contains(want), "{want}: {ran:?}");
        }
        return;
    }
    // --validate=strict (kubectl's default) is the server's Strict.
    let err = k.fails(&["create", "-f", &file]);
    assert_eq!(
        err.trim_end(),
        format!(
            "Error from server (BadRequest): error when creating \"{file}\": Pod in version \"v1\" \
             cannot be handled as a Pod: strict decoding error: unknown field \"spec.bogus\", \
             unknown field \"spec.containers[0].extra\""
        ),
    );
    let err = k.fails(&["apply", "-f", &file]);
    assert!(
        err.contains("strict decoding error: unknown field \"spec.bogus\""),
        "{err}"
    );
    k.fails(&["get", "pod", "odd"]);

    let ran = k.run(&["create", "-f", &file, "--validate=warn"]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert_eq!(ran.stdout, "pod/odd created\n");
    for want in warnings {
        assert!(ran.stderr.contains(want), "{want}: {ran:?}");
    }
    // The unknown fields were dropped, not stored.
    let json = k.ok(&["get", "pod", "odd", "-o", "json"]);
    assert!(!json.contains("bogus") && !json.contains("extra"), "{json}");
    k.ok(&["delete", "pod", "odd", "--force", "--grace-period=0"]);

    let ran = k.run(&["create", "-f", &file, "--validate=false"]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert!(!ran.stderr.contains("unknown field"), "{ran:?}");
}

per_kubectl! {
    field_validation;
}

#[test]
fn stale_writes_conflict_and_cascading_deletes_finish() {
    let Some(server) = Server::start_if_kubectl_installed() else {
        return;
    };
    let k = server.client(KUBECTL);
    k.ok(&["create", "configmap", "settings", "--from-literal=mode=a"]);
    let saved = k.ok(&["get", "configmap", "settings", "-o", "yaml"]);
    k.ok(&["label", "configmap", "settings", "changed=yes"]);
    // A replace that carries the resourceVersion read before the label is refused.
    let file = server.write("settings.yaml", &saved.replace("mode: a", "mode: b"));
    let err = k.fails(&["replace", "-f", &file]);
    assert_eq!(
        err.trim_end(),
        format!(
            "Error from server (Conflict): error when replacing \"{file}\": Operation cannot be \
             fulfilled on configmaps \"settings\": the object has been modified; please apply \
             your changes to the latest version and try again"
        )
    );
    assert_eq!(
        k.ok(&[
            "get",
            "configmap",
            "settings",
            "-o",
            "jsonpath={.data.mode}"
        ]),
        "a"
    );

    // Every propagation policy deletes an object nothing depends on; kubectl waits for it.
    for (name, cascade) in [
        ("settings", "foreground"),
        ("other", "background"),
        ("third", "orphan"),
    ] {
        if name != "settings" {
            k.ok(&["create", "configmap", name, "--from-literal=k=v"]);
        }
        assert_eq!(
            k.ok(&["delete", "configmap", name, &format!("--cascade={cascade}")]),
            format!("configmap \"{name}\" deleted\n")
        );
    }
    assert_eq!(k.ok(&["get", "configmaps", "-o", "name"]), "");
    // A scheduled pod, deleted in the foreground, is gone once its worker has stopped it.
    k.ok(&["run", "fg", "--image=busybox:1.36", "--", "sleep", "3600"]);
    k.wait_for(
        10,
        &["get", "pod", "fg", "-o", "jsonpath={.spec.nodeName}"],
        |n| n == hostname(),
    );
    assert_eq!(
        k.ok(&[
            "delete",
            "pod",
            "fg",
            "--cascade=foreground",
            "--timeout=60s"
        ]),
        "pod \"fg\" deleted\n"
    );
    k.fails(&["get", "pod", "fg"]);
}

#[test]
fn events_in_both_apis() {
    let Some(server) = Server::start_if_kubectl_installed() else {
        return;
    };
    let k = server.client(KUBECTL);
    server.wait_for_node();
    let node = hostname();
    k.ok(&["run", "seen", "--image=busybox:1.36", "--", "sleep", "3600"]);
    let assigned = format!("Successfully assigned default/seen to {node}");

    // core/v1 through `kubectl get events`, and `kubectl events` (which names the kind).
    let out = k.wait_for(10, &["get", "events"], |out| out.contains(&assigned));
    assert!(
        out.lines()
            .any(|l| l.contains("Normal") && l.contains("Scheduled") && l.contains("pod/seen")),
        "{out}"
    );
    let out = k.ok(&["events", "--for", "pod/seen"]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("Scheduled") && l.contains("Pod/seen") && l.contains(&assigned)),
        "{out}"
    );
    // The same event through events.k8s.io/v1: regarding and note.
    assert!(
        k.ok(&[
            "get",
            "events.v1.events.k8s.io",
            "-o",
            "jsonpath={range .items[?(@.reason==\"Scheduled\")]}{.regarding.name}: {.note}{\"\\n\"}{end}",
        ])
        .contains(&format!("seen: {assigned}")),
    );

    // An event written through events.k8s.io/v1 reads back through core/v1.
    let file = server.write(
        "event.yaml",
        "apiVersion: events.k8s.io/v1
kind: Event
metadata:
  name: seen.manual
eventTime: \"2026-01-02T03:04:05.000000Z\"
reportingController: example.com/checker
reportingInstance: checker-1
action: Checking
reason: ManualCheck
note: written through events.k8s.io
type: Normal
regarding:
  apiVersion: v1
  kind: Pod
  name: seen
  namespace: default
",
    );
    assert_eq!(
        k.ok(&["create", "-f", &file]),
        "event.events.k8s.io/seen.manual created\n"
    );
    assert_eq!(
        k.ok(&[
            "get",
            "event",
            "seen.manual",
            "-o",
            "jsonpath={.message}|{.involvedObject.name}|{.reportingComponent}",
        ]),
        "written through events.k8s.io|seen|example.com/checker"
    );
    let out = k.ok(&["events", "--for", "pod/seen", "--types=Normal"]);
    assert!(
        out.lines()
            .any(|l| l.contains("ManualCheck") && l.contains("written through events.k8s.io")),
        "{out}"
    );
    // events.k8s.io's strict rules, with upstream's message.
    let bad = server.write(
        "bad-event.yaml",
        &std::fs::read_to_string(&file)
            .unwrap()
            .replace("type: Normal", "type: Odd")
            .replace("seen.manual", "seen.bad"),
    );
    let err = k.fails(&["create", "-f", &bad]);
    assert_eq!(
        err.trim_end(),
        "The Event \"seen.bad\" is invalid: type: Invalid value: \"\": has invalid value: Odd"
    );
}

fn modes_under(dir: &Path, out: &mut Vec<(String, u32, bool)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        let path = entry.path();
        out.push((
            path.display().to_string(),
            meta.permissions().mode() & 0o777,
            meta.is_dir(),
        ));
        if meta.is_dir() {
            modes_under(&path, out);
        }
    }
}

#[test]
fn the_data_dir_is_private_and_secret_data_stays_out_of_errors() {
    let Some(server) = Server::start_if_kubectl_installed() else {
        return;
    };
    let k = server.client(KUBECTL);
    k.ok(&[
        "create",
        "secret",
        "generic",
        "token",
        "--from-literal=password=hunter2secret",
    ]);

    // Values that fail to decode or validate are not echoed back.
    let patched = k.run(&[
        "patch",
        "secret",
        "token",
        "-p",
        r#"{"data":{"password":"hunter2secret!!"}}"#,
    ]);
    assert_eq!(patched.code, Some(1), "{patched:?}");
    assert_eq!(
        patched.stderr.trim_end(),
        "Error from server (BadRequest): Secret in version \"v1\" cannot be handled as a Secret: \
         illegal base64 data at input byte 13"
    );
    let config = server.write(
        "dockercfg.yaml",
        "apiVersion: v1
kind: Secret
metadata:
  name: broken
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: '{\"auths\": hunter2secret'
",
    );
    let err = k.fails(&["create", "-f", &config]);
    assert!(
        err.contains("data[.dockerconfigjson]: Invalid value: \"<secret contents redacted>\""),
        "{err}"
    );
    let tested = k.run(&[
        "patch",
        "secret",
        "token",
        "--type=json",
        "-p",
        r#"[{"op":"test","path":"/data/password","value":"aHVudGVyMnNlY3JldA=="},{"op":"test","path":"/data/password","value":"bm9wZQ=="}]"#,
    ]);
    assert_eq!(tested.code, Some(1), "{tested:?}");
    let events = k.ok(&["get", "events", "-A", "-o", "json"]);
    for text in [&patched.stderr, &err, &tested.stderr, &events] {
        assert!(
            !text.contains("hunter2secret") && !text.contains("aHVudGVyMnNlY3JldA"),
            "{text}"
        );
    }

    // Everything in the data dir is the server's alone.
    let data_dir = server.dir().join("server");
    let mut modes = vec![(data_dir.display().to_string(), 0, true)];
    modes[0].1 = std::fs::metadata(&data_dir).unwrap().permissions().mode() & 0o777;
    modes_under(&data_dir, &mut modes);
    assert!(modes.len() > 5, "{modes:?}");
    for (path, mode, is_dir) in &modes {
        let want = if *is_dir { 0o700 } else { 0o600 };
        assert_eq!(*mode, want, "{path}: {mode:o}");
    }
}

#[test]
fn the_node_and_the_bootstrap_objects_are_registered() {
    let Some(server) = Server::start_if_kubectl_installed() else {
        return;
    };
    let k = server.client(KUBECTL);
    server.wait_for_node();
    let node = hostname();
    let field = |path: &str| k.ok(&["get", "node", &node, "-o", &format!("jsonpath={path}")]);
    assert_eq!(
        field("{.metadata.labels['kubernetes\\.io/hostname']}"),
        node
    );
    assert_eq!(field("{.metadata.labels['kubernetes\\.io/os']}"), "linux");
    assert_eq!(
        field("{.metadata.labels['kubernetes\\.io/arch']}"),
        match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        }
    );
    let cpus = std::thread::available_parallelism()
        .unwrap()
        .get()
        .to_string();
    for of in ["capacity", "allocatable"] {
        assert_eq!(field(&format!("{{.status.{of}.pods}}")), "110");
        assert!(
            !field(&format!("{{.status.{of}.memory}}")).is_empty(),
            "{of} memory"
        );
        // Capacity is the machine's; allocatable may be less (a CPU set).
        let cpu: usize = field(&format!("{{.status.{of}.cpu}}")).parse().unwrap();
        assert!(cpu >= 1 && cpu <= cpus.parse().unwrap(), "{of} cpu {cpu}");
    }
    assert_eq!(
        field("{.status.conditions[?(@.type==\"Ready\")].status}"),
        "True"
    );

    // The heart-beat: a Lease in kube-node-lease, renewed while the node runs.
    let lease = |path: &str| {
        k.ok(&[
            "get",
            "lease",
            "-n",
            "kube-node-lease",
            &node,
            "-o",
            &format!("jsonpath={path}"),
        ])
    };
    assert_eq!(
        lease("{.spec.holderIdentity} {.spec.leaseDurationSeconds}"),
        format!("{node} 40")
    );
    let first = lease("{.spec.renewTime}");
    k.wait_for(
        30,
        &[
            "get",
            "lease",
            "-n",
            "kube-node-lease",
            &node,
            "-o",
            "jsonpath={.spec.renewTime}",
        ],
        |now| !now.is_empty() && now != first,
    );

    // The `kubernetes` Service holds the first ClusterIP of the service range.
    let out = k.ok(&["get", "service", "kubernetes", "--no-headers"]);
    let row: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        row[..5],
        ["kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP"],
        "{out}"
    );
}

#[test]
fn patches_of_every_type() {
    let Some(server) = Server::start_if_kubectl_installed() else {
        return;
    };
    let k = server.client(KUBECTL);
    k.ok(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=a=1",
        "--from-literal=b=2",
    ]);
    assert_eq!(
        k.ok(&[
            "patch",
            "configmap",
            "settings",
            "--type=merge",
            "-p",
            r#"{"data":{"a":null,"c":"3"}}"#
        ]),
        "configmap/settings patched\n"
    );
    assert_eq!(
        k.ok(&[
            "patch",
            "configmap",
            "settings",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/data/b","value":"two"},{"op":"add","path":"/metadata/labels","value":{"tier":"web"}}]"#,
        ]),
        "configmap/settings patched\n"
    );
    assert_eq!(
        k.ok(&[
            "patch",
            "configmap",
            "settings",
            "-p",
            r#"{"metadata":{"labels":{"more":"yes"}}}"#
        ]),
        "configmap/settings patched\n"
    );
    assert_eq!(
        k.ok(&[
            "get",
            "configmap",
            "settings",
            "-o",
            "jsonpath={.data} {.metadata.labels}"
        ]),
        r#"{"b":"two","c":"3"} {"more":"yes","tier":"web"}"#
    );
    // A patch that changes nothing says so.
    assert_eq!(
        k.ok(&[
            "patch",
            "configmap",
            "settings",
            "--type=merge",
            "-p",
            r#"{"data":{"c":"3"}}"#
        ]),
        "configmap/settings patched (no change)\n"
    );
}

#[test]
fn always_pull_images_when_enabled() {
    if !installed(KUBECTL) {
        return;
    }
    let server =
        Server::start_with_serve_args(None, &["--enable-admission-plugins=AlwaysPullImages"]);
    let k = server.client(KUBECTL);
    let file = server.write(
        "pod.yaml",
        "apiVersion: v1
kind: Pod
metadata:
  name: cached
spec:
  containers:
  - name: main
    image: busybox:1.36
    imagePullPolicy: Never
",
    );
    k.ok(&["create", "-f", &file]);
    assert_eq!(
        k.ok(&[
            "get",
            "pod",
            "cached",
            "-o",
            "jsonpath={.spec.containers[0].imagePullPolicy}"
        ]),
        "Always"
    );
}
