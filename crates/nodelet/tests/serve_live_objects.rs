//! Under `nodelet serve` a pod's worker reads the objects its pod refers to as they are now,
//! not as they were when it started, through the real kubectl: a Service created after the
//! first start is in the environment of the next start (service variables are made at
//! container creation), a `configMapKeyRef` gives a restarted container the current value, a
//! missing one that is created later lets the container start (`CreateContainerConfigError`,
//! then `Running`, as upstream's e2e), and a pull Secret created after `ErrImagePull` is used
//! on the next try.

mod serve_support;

use std::time::{Duration, Instant};

use nodelet_testbed::{Bed, BedInfo};
use serve_support::{KUBECTL, Server};

/// Generous: the container's restart waits for the crash-loop back-off (10 s, then 20 s…),
/// an image pull for the pull back-off.
const WITHIN_SECS: u64 = 120;

/// Polls `kubectl logs POD` until `check` holds (a container waiting to start has no log:
/// kubectl fails then, and the poll goes on).
fn logs_when(server: &Server, pod: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(WITHIN_SECS);
    loop {
        let ran = server.client(KUBECTL).run(&["logs", pod]);
        if ran.code == Some(0) && check(&ran.stdout) {
            return ran.stdout;
        }
        assert!(
            Instant::now() < deadline,
            "logs of {pod} never matched: {ran:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn waiting_reason(server: &Server, pod: &str) -> String {
    server.pod_jsonpath(pod, "{.status.containerStatuses[0].state.waiting.reason}")
}

/// Creates `pod`, which runs the bed's `private` image (registry B, basic auth) with
/// `pull_fields` in its spec (YAML lines), and waits until its pull has failed.
fn create_failing_private_pod(server: &Server, bed: &BedInfo, pod: &str, pull_fields: &str) {
    let image = BedInfo::reference(&bed.basic, "private");
    server.create_from_yaml(&format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {pod}
spec:
  terminationGracePeriodSeconds: 1
{pull_fields}  containers:
  - name: main
    image: {image}
    command: [sh, -c, "trap 'exit 0' TERM; while true; do sleep 1; done"]
"#
    ));
    server.wait_for_jsonpath(
        WITHIN_SECS,
        pod,
        "{.status.containerStatuses[0].state.waiting.reason}",
        |out| out == "ErrImagePull" || out == "ImagePullBackOff",
    );
}

/// `kubectl create secret docker-registry NAME` with the bed's puller login to registry B.
fn create_pull_secret(server: &Server, bed: &BedInfo, name: &str) {
    let server_flag = format!("--docker-server={}", bed.basic.host);
    let user_flag = format!("--docker-username={}", bed.puller.username);
    let password_flag = format!("--docker-password={}", bed.puller.password);
    server.kubectl(&[
        "create",
        "secret",
        "docker-registry",
        name,
        &server_flag,
        &user_flag,
        &password_flag,
    ]);
}

#[test]
fn a_restarted_container_sees_the_services_and_config_values_of_its_start() {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    let image = BedInfo::reference(&bed.plain, "tiny");
    server.kubectl(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=mode=first",
    ]);
    server.create_from_yaml(&format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: crashing
spec:
  restartPolicy: Always
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {image}
    env:
    - name: MODE
      valueFrom:
        configMapKeyRef:
          name: settings
          key: mode
    command: [sh, -c, 'echo started; env | sort; sleep 1; exit 1']
"#
    ));
    let first = logs_when(&server, "crashing", |out| out.contains("MODE="));
    assert!(first.contains("MODE=first\n"), "{first}");
    assert!(!first.contains("LATE_SERVICE_HOST="), "{first}");

    server.kubectl(&["create", "service", "clusterip", "late", "--tcp=80:8080"]);
    let cluster_ip =
        server.kubectl(&["get", "service", "late", "-o", "jsonpath={.spec.clusterIP}"]);
    assert!(!cluster_ip.is_empty());
    let manifest = server.kubectl(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=mode=second",
        "--dry-run=client",
        "-o",
        "yaml",
    ]);
    server
        .client(KUBECTL)
        .ok_with_stdin(&["apply", "-f", "-"], &manifest);

    let expected_host = format!("LATE_SERVICE_HOST={cluster_ip}\n");
    let later = logs_when(&server, "crashing", |out| {
        out.contains(&expected_host) && out.contains("MODE=second\n")
    });
    assert!(later.contains("LATE_SERVICE_PORT=80\n"), "{later}");
    let restarts = server.pod_jsonpath("crashing", "{.status.containerStatuses[0].restartCount}");
    assert!(restarts.parse::<u32>().unwrap() >= 1, "{restarts}");
}

/// expansion.go / configmap.go e2e: a container whose `configMapKeyRef` names a ConfigMap
/// that does not exist waits in `CreateContainerConfigError`, and runs once it is created.
#[test]
fn a_missing_config_map_key_created_later_lets_the_container_start() {
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
  containers:
  - name: main
    image: {image}
    env:
    - name: GREETING
      valueFrom:
        configMapKeyRef:
          name: not-yet
          key: greeting
    command: [sh, -c, 'echo "greeting=$GREETING"; sleep 3600']
"#
    ));
    server.wait_for_jsonpath(
        WITHIN_SECS,
        "waits",
        "{.status.containerStatuses[0].state.waiting.reason}",
        |out| out == "CreateContainerConfigError",
    );
    let message = server.pod_jsonpath(
        "waits",
        "{.status.containerStatuses[0].state.waiting.message}",
    );
    assert_eq!(message, r#"configmap "not-yet" not found"#);

    server.kubectl(&[
        "create",
        "configmap",
        "not-yet",
        "--from-literal=greeting=finally",
    ]);
    server.wait_ready("waits", 120);
    logs_when(&server, "waits", |out| out == "greeting=finally\n");
    assert_eq!(waiting_reason(&server, "waits"), "");
}

/// A pod naming a pull Secret that does not exist yet cannot pull from the registry that
/// asks for a login; once `kubectl create secret docker-registry` made it, the next try after
/// the back-off pulls and the pod runs.
#[test]
fn a_pull_secret_created_after_err_image_pull_is_used_on_the_next_try() {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    create_failing_private_pod(
        &server,
        &bed,
        "private",
        "  imagePullSecrets:\n  - name: late-cred\n",
    );

    create_pull_secret(&server, &bed, "late-cred");
    server.wait_ready("private", 120);
    assert_eq!(server.pod_jsonpath("private", "{.status.phase}"), "Running");
}

/// The same with the pod's ServiceAccount: it had no pull Secrets when the pod was made, and
/// `kubectl patch serviceaccount` gives it one; the kubelet reads the account's Secrets when
/// the pod lists none, so the next try pulls.
#[test]
fn a_pull_secret_added_to_the_service_account_later_is_used_on_the_next_try() {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    server.kubectl(&["create", "serviceaccount", "puller"]);
    create_failing_private_pod(
        &server,
        &bed,
        "by-account",
        "  serviceAccountName: puller\n",
    );

    create_pull_secret(&server, &bed, "account-cred");
    server.kubectl(&[
        "patch",
        "serviceaccount",
        "puller",
        "-p",
        r#"{"imagePullSecrets":[{"name":"account-cred"}]}"#,
    ]);
    server.wait_ready("by-account", 120);
}
