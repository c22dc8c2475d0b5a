//! Mounted configMap, secret, projected and downwardAPI volumes follow their sources under
//! `nodelet serve`, as upstream's kubelet keeps them (configmap.go / secrets.go /
//! projected.go / downwardapi.go e2e "updates should be reflected in volume"), through the
//! real kubectl: `kubectl apply` of a changed ConfigMap and Secret, `kubectl label pod`, an
//! optional ConfigMap created and deleted later. A subPath mount and the environment keep
//! what the container started with; a non-optional source that is deleted leaves the files
//! as they were and is a Warning `FailedMount`.

mod serve_support;

use nodelet_testbed::{Bed, BedInfo};
use serve_support::{KUBECTL, Server};

/// How long a change may take to show (the kubelet looks every 10 s; upstream promises
/// "about a minute").
const SHOWS_WITHIN_SECS: u64 = 90;

/// The file's contents in the pod, or empty when it does not exist.
fn cat(server: &Server, path: &str) -> String {
    server.kubectl(&[
        "exec",
        "follow",
        "--",
        "sh",
        "-c",
        &format!("cat {path} 2>/dev/null; true"),
    ])
}

fn wait_for_file(server: &Server, path: &str, check: impl Fn(&str) -> bool) -> String {
    let command = format!("cat {path} 2>/dev/null; true");
    server.wait_for(
        SHOWS_WITHIN_SECS,
        &["exec", "follow", "--", "sh", "-c", &command],
        check,
    )
}

/// `kubectl create ... --dry-run=client -o yaml | kubectl apply -f -`.
fn apply_generated(server: &Server, create: &[&str]) {
    let mut args = create.to_vec();
    args.extend(["--dry-run=client", "-o", "yaml"]);
    let manifest = server.kubectl(&args);
    server
        .client(KUBECTL)
        .ok_with_stdin(&["apply", "-f", "-"], &manifest);
}

#[test]
fn file_volumes_follow_their_sources_but_subpaths_and_env_do_not() {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    let image = BedInfo::reference(&bed.plain, "tiny");
    server.kubectl(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=greeting=hello",
    ]);
    server.kubectl(&[
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=password=one",
    ]);
    server.create_from_yaml(&format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: follow
  labels:
    stage: one
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: conf
    configMap:
      name: settings
  - name: later
    configMap:
      name: later
      optional: true
  - name: creds
    secret:
      secretName: creds
  - name: info
    downwardAPI:
      items:
      - path: labels
        fieldRef:
          fieldPath: metadata.labels
  - name: both
    projected:
      sources:
      - configMap:
          name: settings
      - secret:
          name: creds
  containers:
  - name: main
    image: {image}
    env:
    - name: GREETING
      valueFrom:
        configMapKeyRef:
          name: settings
          key: greeting
    command:
    - sh
    - -c
    - while true; do echo "file=$(cat /conf/greeting) env=$GREETING"; sleep 1; done
    volumeMounts:
    - name: conf
      mountPath: /conf
    - name: conf
      mountPath: /pinned/greeting
      subPath: greeting
    - name: later
      mountPath: /later
    - name: creds
      mountPath: /creds
    - name: info
      mountPath: /info
    - name: both
      mountPath: /both
"#
    ));
    server.wait_ready("follow", 90);
    assert_eq!(cat(&server, "/conf/greeting"), "hello");
    assert_eq!(cat(&server, "/pinned/greeting"), "hello");
    assert_eq!(cat(&server, "/creds/password"), "one");
    assert_eq!(cat(&server, "/info/labels"), "stage=\"one\"");
    assert_eq!(cat(&server, "/later/note"), "");

    // Change every source.
    apply_generated(
        &server,
        &[
            "create",
            "configmap",
            "settings",
            "--from-literal=greeting=bonjour",
        ],
    );
    apply_generated(
        &server,
        &[
            "create",
            "secret",
            "generic",
            "creds",
            "--from-literal=password=two",
        ],
    );
    server.kubectl(&["label", "pod", "follow", "stage=two", "--overwrite"]);
    server.kubectl(&[
        "create",
        "configmap",
        "later",
        "--from-literal=note=arrived",
    ]);

    wait_for_file(&server, "/conf/greeting", |out| out == "bonjour");
    wait_for_file(&server, "/both/greeting", |out| out == "bonjour");
    wait_for_file(&server, "/creds/password", |out| out == "two");
    wait_for_file(&server, "/both/password", |out| out == "two");
    wait_for_file(&server, "/info/labels", |out| out == "stage=\"two\"");
    wait_for_file(&server, "/later/note", |out| out == "arrived");
    server.wait_for(SHOWS_WITHIN_SECS, &["logs", "follow", "--tail=1"], |out| {
        out == "file=bonjour env=hello\n"
    });
    // Upstream's rules: a subPath keeps the file it was started with, and the environment
    // is read at the container's start only.
    assert_eq!(cat(&server, "/pinned/greeting"), "hello");
    let env = server.kubectl(&["exec", "follow", "--", "sh", "-c", "echo $GREETING"]);
    assert_eq!(env, "hello\n");

    // An optional source that goes takes its files with it; a required one leaves the
    // volume as it was and is reported.
    server.kubectl(&["delete", "configmap", "later"]);
    server.kubectl(&["delete", "configmap", "settings"]);
    wait_for_file(&server, "/later/note", str::is_empty);
    server.wait_for(
        SHOWS_WITHIN_SECS,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=follow",
            "-o",
            "jsonpath={.items[*].message}",
        ],
        |out| {
            out.contains(
                r#"MountVolume.SetUp failed for volume "conf" : configmap "settings" not found"#,
            )
        },
    );
    assert_eq!(cat(&server, "/conf/greeting"), "bonjour");
    assert_eq!(server.pod_jsonpath("follow", "{.status.phase}"), "Running");
}

/// A pod whose required ConfigMap does not exist waits in `ContainerCreating` with upstream's
/// `FailedMount`, and starts with the files once the ConfigMap is created.
#[test]
fn a_pod_waiting_for_its_config_map_starts_once_it_is_created() {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    let image = BedInfo::reference(&bed.plain, "tiny");
    server.create_from_yaml(&format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: waits
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: conf
    configMap:
      name: not-yet
  containers:
  - name: main
    image: {image}
    command: [sh, -c, 'cat /conf/greeting; echo; sleep 3600']
    volumeMounts:
    - name: conf
      mountPath: /conf
"#
    ));
    server.wait_for(
        SHOWS_WITHIN_SECS,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=waits",
            "-o",
            "jsonpath={.items[*].message}",
        ],
        |out| {
            out.contains(
                r#"MountVolume.SetUp failed for volume "conf" : configmap "not-yet" not found"#,
            )
        },
    );
    assert_eq!(
        server.pod_jsonpath(
            "waits",
            "{.status.containerStatuses[0].state.waiting.reason}"
        ),
        "ContainerCreating"
    );
    server.kubectl(&[
        "create",
        "configmap",
        "not-yet",
        "--from-literal=greeting=finally",
    ]);
    server.wait_ready("waits", 90);
    server.wait_for(SHOWS_WITHIN_SECS, &["logs", "waits"], |out| {
        out == "finally\n"
    });
}
