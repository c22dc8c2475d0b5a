//! `nodelet run -f pod.yaml` as a user runs it: the real binary, the test bed's registries and
//! the installed OCI runtimes. Privileged: run as root.

mod run_support;

use std::process::Command;
use std::time::{Duration, Instant};

use nodelet_testbed::{Bed, BedInfo};
use run_support::{Node, image, pod};

#[test]
fn a_busybox_pod_echoes_success() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let yaml = pod(
        "hello",
        &format!(
            "  restartPolicy: Never\n  containers:\n  - name: main\n    image: {}\n    command: [\"sh\", \"-c\", \"echo SUCCESS; hostname; cat /etc/hostname; grep -c hello /etc/hosts\"]\n",
            image(&bed, "tiny")
        ),
    );
    let done = node.run(&yaml);
    assert_eq!(done.code, Some(0), "{}", done.all());
    assert!(done.stdout.contains("[main] SUCCESS\n"), "{}", done.all());
    // hostname = the pod's name, in the UTS namespace, /etc/hostname and /etc/hosts.
    assert!(
        done.stdout
            .contains("[main] hello\n[main] hello\n[main] 1\n"),
        "{}",
        done.all()
    );
    for event in [
        "Normal  Pulling  Pulling image",
        "Normal  Pulled  Successfully pulled image",
        "Normal  Created  Created container: main",
        "Normal  Started  Started container main",
    ] {
        assert!(done.stderr.contains(event), "{event}: {}", done.all());
    }
    assert!(
        done.stderr.contains("including waiting). Image size: "),
        "{}",
        done.all()
    );
    node.assert_clean();

    // Again: the image is on the node now.
    let again = node.run(&yaml);
    assert_eq!(again.code, Some(0), "{}", again.all());
    assert!(
        again.stderr.contains(&format!(
            "Normal  Pulled  Container image \"{}\" already present on machine",
            image(&bed, "tiny")
        )),
        "{}",
        again.all()
    );
    node.assert_clean();
}

#[test]
fn environment_from_image_env_expansion_downward_api_and_config_map() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let yaml = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: team\ndata:\n  mode: fast\n---\n{}",
        pod(
            "env-demo",
            &format!(
                r#"  restartPolicy: Never
  containers:
  - name: main
    image: {}
    command: ["/bin/sh", "-c"]
    args: ["echo GREETING=$GREETING; echo OVERRIDE_ME=$OVERRIDE_ME; echo MSG=$MSG; echo POD=$POD_NAME/$POD_NS; echo MODE=$MODE; echo ESC=$ESC; echo USER=$(id -u) PWD=$(pwd); echo 'ARG=$(MSG)'"]
    env:
    - {{name: OVERRIDE_ME, value: pod}}
    - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
    - {{name: POD_NS, valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}}}
    - {{name: MODE, valueFrom: {{configMapKeyRef: {{name: settings, key: mode}}}}}}
    - {{name: MSG, value: "$(POD_NAME) says $(GREETING) in $(MODE) $(UNDEFINED)"}}
    - {{name: ESC, value: "$$(POD_NAME)"}}
"#,
                image(&bed, "config")
            )
        )
        .replace("  name: env-demo\n", "  name: env-demo\n  namespace: team\n")
    );
    let done = node.run(&yaml);
    assert_eq!(done.code, Some(0), "{}", done.all());
    for line in [
        "[main] GREETING=hello from the image config",
        "[main] OVERRIDE_ME=pod",
        // $(GREETING) is the image's: not visible to the kubelet's expansion.
        "[main] MSG=env-demo says $(GREETING) in fast $(UNDEFINED)",
        "[main] POD=env-demo/team",
        "[main] MODE=fast",
        "[main] ESC=$(POD_NAME)",
        "[main] USER=1000 PWD=/srv/app",
        "[main] ARG=env-demo says $(GREETING) in fast $(UNDEFINED)",
    ] {
        assert!(
            done.stdout.contains(&format!("{line}\n")),
            "{line}: {}",
            done.all()
        );
    }
    node.assert_clean();

    // A key the ConfigMap lacks: the container cannot be configured.
    let missing = yaml.replace("key: mode", "key: nope");
    let done = node.run(&missing);
    assert_eq!(done.code, Some(1), "{}", done.all());
    assert!(
        done.stderr
            .contains("Warning  Failed  Error: couldn't find key nope in ConfigMap team/settings"),
        "{}",
        done.all()
    );
    node.assert_clean();
}

#[test]
fn a_failing_container_gives_its_exit_code() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let yaml = pod(
        "fails",
        &format!(
            "  restartPolicy: Never\n  containers:\n  - name: main\n    image: {}\n    command: [\"sh\", \"-c\", \"echo about to fail; exit 3\"]\n",
            image(&bed, "tiny")
        ),
    );
    let done = node.run(&yaml);
    assert_eq!(done.code, Some(3), "{}", done.all());
    assert!(
        done.stdout.contains("[main] about to fail"),
        "{}",
        done.all()
    );
    node.assert_clean();
}

#[test]
fn on_failure_restarts_a_failed_container() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    // No volumes yet: the pod's /etc/hostname (one file per pod, mounted read-write into
    // every start) carries the mark from the first run to the restart.
    let yaml = pod(
        "retry",
        &format!(
            "  restartPolicy: OnFailure\n  containers:\n  - name: main\n    image: {}\n    command: [\"sh\", \"-c\", \"if grep -q tried /etc/hostname; then echo second run; exit 0; fi; echo tried >> /etc/hostname; echo first run; exit 1\"]\n",
            image(&bed, "tiny")
        ),
    );
    let done = node.run(&yaml);
    assert_eq!(done.code, Some(0), "{}", done.all());
    let first = done.stdout.find("[main] first run").expect("first run");
    let second = done.stdout.find("[main] second run").expect("restarted");
    assert!(first < second, "{}", done.all());
    node.assert_clean();
}

#[test]
fn always_restarts_with_crash_loop_back_off_until_interrupted() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let yaml = pod(
        "crashy",
        &format!(
            "  containers:\n  - name: main\n    image: {}\n    command: [\"sh\", \"-c\", \"echo attempt; exit 2\"]\n",
            image(&bed, "tiny")
        ),
    );
    let mut running = node.start(&yaml);
    // The first restart is immediate; the second waits 10 s.
    running.wait_for_stderr(
        "Warning  BackOff  Back-off restarting failed container main in pod crashy_default(",
    );
    running.signal("INT");
    let done = running.finish();
    assert_eq!(done.code, Some(2), "{}", done.all());
    assert_eq!(
        done.stdout.matches("[main] attempt").count(),
        2,
        "{}",
        done.all()
    );
    node.assert_clean();
}

#[test]
fn init_containers_run_in_order_and_a_failed_one_fails_the_pod() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let yaml = pod(
        "inits",
        &format!(
            "  restartPolicy: Never\n  initContainers:\n  - name: first\n    image: {img}\n    command: [\"sh\", \"-c\", \"sleep 0.3; echo first\"]\n  - name: second\n    image: {img}\n    command: [\"sh\", \"-c\", \"echo second\"]\n  containers:\n  - name: main\n    image: {img}\n    command: [\"sh\", \"-c\", \"echo main\"]\n",
            img = image(&bed, "tiny")
        ),
    );
    let done = node.run(&yaml);
    assert_eq!(done.code, Some(0), "{}", done.all());
    let order: Vec<usize> = ["[first] first", "[second] second", "[main] main"]
        .iter()
        .map(|l| {
            done.stdout
                .find(l)
                .unwrap_or_else(|| panic!("{l}: {}", done.all()))
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{}", done.all());
    node.assert_clean();

    let failing = yaml.replace("echo second", "echo second; exit 5");
    let done = node.run(&failing);
    assert_eq!(done.code, Some(5), "{}", done.all());
    assert!(
        !done.stdout.contains("[main]"),
        "main must not start: {}",
        done.all()
    );
    node.assert_clean();
}

#[test]
fn an_image_that_does_not_exist_fails_to_start() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let missing = format!("{}/tiny:missing", bed.plain.host);
    let yaml = pod(
        "no-image",
        &format!("  restartPolicy: Never\n  containers:\n  - name: main\n    image: {missing}\n"),
    );
    let done = node.run(&yaml);
    assert_eq!(done.code, Some(1), "{}", done.all());
    assert!(
        done.stderr.contains(&format!(
            "Warning  Failed  Failed to pull image \"{missing}\": "
        )),
        "{}",
        done.all()
    );
    assert!(
        done.stderr.contains("Warning  Failed  Error: ErrImagePull"),
        "{}",
        done.all()
    );
    node.assert_clean();
}

#[test]
fn pull_policy_never_with_the_image_absent() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let img = image(&bed, "tiny");
    let yaml = pod(
        "never",
        &format!(
            "  restartPolicy: Never\n  containers:\n  - name: main\n    image: {img}\n    imagePullPolicy: Never\n"
        ),
    );
    let done = node.run(&yaml);
    assert_eq!(done.code, Some(1), "{}", done.all());
    assert!(
        done.stderr.contains(&format!(
            "Warning  ErrImageNeverPull  Container image \"{img}\" is not present with pull policy of Never"
        )),
        "{}",
        done.all()
    );
    assert!(
        done.stderr.contains("Error: ErrImageNeverPull"),
        "{}",
        done.all()
    );
    node.assert_clean();
}

#[test]
fn a_private_image_pulls_with_the_pods_pull_secret() {
    use base64::Engine;
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let img = BedInfo::reference(&bed.basic, "private");
    let body = format!(
        "  restartPolicy: Never\n  containers:\n  - name: main\n    image: {img}\n    command: [\"cat\", \"/etc/private-image\"]\n"
    );
    let without = node.run(&pod("private", &body));
    assert_eq!(without.code, Some(1), "{}", without.all());
    assert!(
        without.stderr.contains("Error: ErrImagePull"),
        "{}",
        without.all()
    );

    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", bed.puller.username, bed.puller.password));
    let config = format!(
        r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
        bed.basic.host
    );
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: regcred\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {}\n---\n",
        base64::engine::general_purpose::STANDARD.encode(config)
    );
    let with = format!(
        "{secret}{}",
        pod(
            "private",
            &format!("  imagePullSecrets:\n  - name: regcred\n{body}")
        )
    );
    let done = node.run(&with);
    assert_eq!(done.code, Some(0), "{}", done.all());
    assert!(
        done.stdout.contains("[main] this image is private"),
        "{}",
        done.all()
    );
    assert!(
        !done.all().contains(&bed.puller.password),
        "a password was printed"
    );
    node.assert_clean();
}

fn crun_installed() -> bool {
    Command::new("crun")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn a_runtime_class_picks_its_handler() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let class = "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: fast\nhandler: crun\n---\n";
    let yaml = format!(
        "{class}{}",
        pod(
            "classy",
            &format!(
                "  runtimeClassName: fast\n  restartPolicy: Never\n  containers:\n  - name: main\n    image: {}\n    command: [\"echo\", \"SUCCESS\"]\n",
                image(&bed, "tiny")
            )
        )
    );
    if !crun_installed() {
        println!("SKIPPED: crun is not installed");
        return;
    }
    let done = node.run(&yaml);
    assert_eq!(done.code, Some(0), "{}", done.all());
    assert!(done.stdout.contains("[main] SUCCESS"), "{}", done.all());
    assert!(
        done.stderr.contains("runtime handler \"crun\""),
        "{}",
        done.all()
    );
    // crun kept its state where the config says; runc was never asked.
    assert!(node.root.path().join("runtimes/crun").exists());
    assert!(!node.root.path().join("runtimes/runc").exists());
    node.assert_clean();
}

#[test]
fn a_missing_runtime_class_or_handler_fails_the_pod() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let body = format!(
        "  runtimeClassName: gvisor\n  restartPolicy: Never\n  containers:\n  - name: main\n    image: {}\n",
        image(&bed, "tiny")
    );
    let class = "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: gvisor\nhandler: runsc\n---\n";
    let done = node.run(&format!("{class}{}", pod("sandboxed", &body)));
    assert_eq!(done.code, Some(1), "{}", done.all());
    assert!(
        done.stderr
            .contains("Warning  FailedCreatePodSandBox  Failed to create pod sandbox: ")
            && done.stderr.contains("\"runsc\"")
            && done.stderr.contains("\"gvisor\""),
        "{}",
        done.all()
    );
    assert!(
        done.stderr.contains("pod default/sandboxed Failed"),
        "{}",
        done.all()
    );
    assert!(
        !done.stderr.contains("Pulling"),
        "nothing is pulled: {}",
        done.all()
    );

    let done = node.run(&pod("sandboxed", &body));
    assert_eq!(done.code, Some(1), "{}", done.all());
    assert!(
        done.stderr
            .contains("runtimeclass.node.k8s.io \"gvisor\" not found"),
        "{}",
        done.all()
    );
    node.assert_clean();
}

#[test]
fn post_start_runs_before_the_container_counts_as_running() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let yaml = pod(
        "hooked",
        &format!(
            r#"  restartPolicy: Never
  containers:
  - name: main
    image: {}
    command: ["sh", "-c", "while [ ! -f /tmp/started ]; do sleep 0.1; done; cat /tmp/started"]
    lifecycle:
      postStart:
        exec:
          command: ["sh", "-c", "echo poststart ran > /tmp/started"]
"#,
            image(&bed, "tiny")
        ),
    );
    let done = node.run(&yaml);
    assert_eq!(done.code, Some(0), "{}", done.all());
    assert!(
        done.stdout.contains("[main] poststart ran"),
        "{}",
        done.all()
    );
    node.assert_clean();

    // A failing hook: FailedPostStartHook, the container is killed, the pod fails.
    // (sh as pid 1 ignores SIGTERM: a short grace period keeps the kill quick.)
    let failing = yaml
        .replace("echo poststart ran > /tmp/started", "exit 1")
        .replace(
            "  restartPolicy: Never\n",
            "  restartPolicy: Never\n  terminationGracePeriodSeconds: 2\n",
        );
    let done = node.run(&failing);
    assert_ne!(done.code, Some(0), "{}", done.all());
    for text in [
        "Warning  FailedPostStartHook  PostStartHook failed",
        "Normal  Killing  FailedPostStartHook",
        "Exec lifecycle hook ([sh -c exit 1]) for Container \"main\" in Pod \"hooked_default(",
    ] {
        assert!(done.stderr.contains(text), "{text}: {}", done.all());
    }
    node.assert_clean();
}

#[test]
fn sigterm_runs_pre_stop_then_stops_the_container() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let yaml = pod(
        "stopper",
        &format!(
            r#"  restartPolicy: Always
  containers:
  - name: main
    image: {}
    command: ["sh", "-c", "trap 'echo got TERM; exit 0' TERM; echo ready; sleep 1000 & wait"]
    lifecycle:
      preStop:
        exec:
          command: ["sh", "-c", "echo prestop ran > /proc/1/fd/1"]
"#,
            image(&bed, "tiny")
        ),
    );
    let mut running = node.start(&yaml);
    running.wait_for("[main] ready");
    running.signal("TERM");
    let done = running.finish();
    assert_eq!(done.code, Some(0), "{}", done.all());
    let pre_stop = done
        .stdout
        .find("[main] prestop ran")
        .unwrap_or_else(|| panic!("{}", done.all()));
    let term = done
        .stdout
        .find("[main] got TERM")
        .unwrap_or_else(|| panic!("{}", done.all()));
    assert!(
        pre_stop < term,
        "PreStop runs before the stop signal: {}",
        done.all()
    );
    assert!(
        done.stderr
            .contains("Normal  Killing  Stopping container main"),
        "{}",
        done.all()
    );
    node.assert_clean();
}

#[test]
fn the_grace_period_covers_pre_stop_and_the_stop_with_two_seconds_after_a_slow_hook() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    // The container ignores SIGTERM and PreStop outlasts the 3 s grace period: PreStop gets
    // 3 s, the stop signal then 2 s more (the minimum), then SIGKILL: about 5 s in all.
    let yaml = pod(
        "slow",
        &format!(
            r#"  restartPolicy: Never
  terminationGracePeriodSeconds: 3
  containers:
  - name: main
    image: {}
    command: ["sh", "-c", "trap '' TERM; echo ready; while true; do sleep 1; done"]
    lifecycle:
      preStop:
        exec:
          command: ["sleep", "30"]
"#,
            image(&bed, "tiny")
        ),
    );
    let mut running = node.start(&yaml);
    running.wait_for("[main] ready");
    let signalled = Instant::now();
    running.signal("INT");
    let done = running.finish();
    let took = signalled.elapsed();
    assert_eq!(done.code, Some(137), "{}", done.all());
    assert!(
        took >= Duration::from_millis(4500) && took < Duration::from_secs(12),
        "termination took {took:?}: {}",
        done.all()
    );
    node.assert_clean();
}

#[test]
fn an_invalid_pod_is_refused_with_the_api_message() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let done = node.run(&pod(
        "Bad_Name",
        &format!(
            "  containers:\n  - name: main\n    image: {}\n",
            image(&bed, "tiny")
        ),
    ));
    assert_eq!(done.code, Some(1), "{}", done.all());
    assert!(
        done.stderr.contains(
            "The Pod \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\""
        ),
        "{}",
        done.all()
    );
}

#[test]
fn termination_messages_come_from_the_file_or_the_log_tail() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let tiny = image(&bed, "tiny");
    let done = node.run(&pod(
        "messages",
        &format!(
            "  restartPolicy: Never
  containers:
  - name: file
    image: {tiny}
    command: [\"sh\", \"-c\", \"printf DONE > /dev/termination-log\"]
  - name: custom
    image: {tiny}
    terminationMessagePath: /tmp/why
    command: [\"sh\", \"-c\", \"echo custom path > /tmp/why\"]
  - name: logs
    image: {tiny}
    terminationMessagePolicy: FallbackToLogsOnError
    command: [\"sh\", \"-c\", \"echo first; echo last words >&2; exit 3\"]
"
        ),
    ));
    assert_eq!(done.code, Some(3), "{}", done.all());
    for expected in [
        "nodelet: container file (Completed, exit code 0) termination message: DONE\n",
        "nodelet: container custom (Completed, exit code 0) termination message: custom path\n",
        "nodelet: container logs (Error, exit code 3) termination message: first\nlast words\n",
    ] {
        assert!(
            done.stderr.contains(expected),
            "{expected:?} in {}",
            done.all()
        );
    }
    // Output is still passed on as the containers write it.
    assert!(done.stdout.contains("[logs] first\n"), "{}", done.all());
    assert!(
        done.stderr.contains("[logs] last words\n"),
        "{}",
        done.all()
    );
    node.assert_clean();
}

#[test]
fn volumes_are_mounted_with_their_contents_and_modes() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let yaml = format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{mode: fast, color: blue}}
---
apiVersion: v1
kind: Secret
metadata: {{name: creds}}
stringData: {{password: s3cret}}
---
{}"#,
        pod(
            "volumes",
            &format!(
                r#"  restartPolicy: Never
  initContainers:
  - name: init
    image: {image}
    command: ["sh", "-c", "echo from-init > /shared/note"]
    volumeMounts: [{{name: shared, mountPath: /shared}}]
  containers:
  - name: main
    image: {image}
    command: ["sh", "-c"]
    args:
    - |
      echo "note=$(cat /shared/note)"
      echo "mode=$(cat /etc/settings/mode) color=$(cat /etc/settings/color)"
      echo "password=$(cat /etc/creds/password)"
      ls -lL /etc/creds/password | cut -c1-10 | sed 's/^/secret-perm=/'
      echo "pod=$(cat /etc/podinfo/name)"
      grep -q ' /scratch tmpfs' /proc/mounts && echo scratch=tmpfs
      touch /etc/settings/x 2>/dev/null || echo settings=read-only
    volumeMounts:
    - {{name: shared, mountPath: /shared}}
    - {{name: settings, mountPath: /etc/settings}}
    - {{name: creds, mountPath: /etc/creds}}
    - {{name: podinfo, mountPath: /etc/podinfo}}
    - {{name: scratch, mountPath: /scratch}}
  volumes:
  - {{name: shared, emptyDir: {{}}}}
  - {{name: scratch, emptyDir: {{medium: Memory}}}}
  - {{name: settings, configMap: {{name: settings}}}}
  - {{name: creds, secret: {{secretName: creds, defaultMode: 0400}}}}
  - name: podinfo
    downwardAPI:
      items: [{{path: name, fieldRef: {{fieldPath: metadata.name}}}}]
"#,
                image = image(&bed, "tiny")
            )
        )
    );
    let done = node.run(&yaml);
    assert_eq!(done.code, Some(0), "{}", done.all());
    for line in [
        "[main] note=from-init",
        "[main] mode=fast color=blue",
        "[main] password=s3cret",
        "[main] secret-perm=-r--------",
        "[main] pod=volumes",
        "[main] scratch=tmpfs",
        "[main] settings=read-only",
    ] {
        assert!(
            done.stdout.contains(&format!("{line}\n")),
            "{line}: {}",
            done.all()
        );
    }
    node.assert_clean();

    // A ConfigMap that does not exist: FailedMount naming it, and nothing left behind.
    let missing = yaml.replace("configMap: {name: settings}", "configMap: {name: absent}");
    let done = node.run(&missing);
    assert_eq!(done.code, Some(1), "{}", done.all());
    assert!(
        done.stderr.contains(
            "FailedMount  MountVolume.SetUp failed for volume \"settings\" : configmap \"absent\" not found"
        ),
        "{}",
        done.all()
    );
    node.assert_clean();
}

#[test]
fn a_pod_has_its_own_network_hostname_and_ip() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let body = format!(
        r#"  restartPolicy: Never
  containers:
  - name: main
    image: {}
    command: ["sh", "-c"]
    args:
    - |
      echo "hostname=$(hostname)"
      echo "env-ip=$POD_IP"
      busybox ip -4 -o addr show eth0 | sed 's/^/eth0=/'
      busybox ip -o link show lo | grep -q 'UP' && echo lo=up
      grep -q '^nameserver' /etc/resolv.conf && echo resolv=ok
    env:
    - {{name: POD_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}
"#,
        image(&bed, "tiny")
    );
    let done = node.run(&pod("netpod", &body));
    assert_eq!(done.code, Some(0), "{}", done.all());
    assert!(
        done.stdout.contains("[main] hostname=netpod\n"),
        "{}",
        done.all()
    );
    let env_ip = done
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("[main] env-ip="))
        .unwrap_or_else(|| panic!("{}", done.all()));
    assert!(env_ip.starts_with("10.244."), "{}", done.all());
    let eth0 = done
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("[main] eth0="))
        .unwrap_or_else(|| panic!("no eth0: {}", done.all()));
    assert!(eth0.contains(&format!("inet {env_ip}/")), "{}", done.all());
    for line in ["[main] lo=up", "[main] resolv=ok"] {
        assert!(done.stdout.contains(line), "{line}: {}", done.all());
    }
    node.assert_clean();

    // hostNetwork: the node's hostname and interfaces, no pod network.
    let node_hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host = body.replace(
        "  restartPolicy: Never\n",
        "  restartPolicy: Never\n  hostNetwork: true\n",
    );
    let done = node.run(&pod("hostnet", &host));
    assert_eq!(done.code, Some(0), "{}", done.all());
    assert!(
        done.stdout
            .contains(&format!("[main] hostname={}\n", node_hostname.trim())),
        "{}",
        done.all()
    );
    assert!(!done.stdout.contains("env-ip=10.244."), "{}", done.all());
    node.assert_clean();
}

#[test]
fn run_as_non_root_refuses_a_root_image_and_allows_a_non_root_user() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let body = format!(
        r#"  restartPolicy: Never
  securityContext: {{runAsNonRoot: true}}
  containers:
  - name: main
    image: {}
    command: ["sh", "-c", "echo uid=$(id -u)"]
"#,
        image(&bed, "tiny")
    );
    let done = node.run(&pod("nonroot", &body));
    assert_eq!(done.code, Some(1), "{}", done.all());
    assert!(
        done.stderr.contains(
            "Warning  Failed  Error: container has runAsNonRoot and image will run as root (pod: \"nonroot_default("
        ),
        "{}",
        done.all()
    );
    node.assert_clean();

    let allowed = body.replace(
        "{runAsNonRoot: true}",
        "{runAsNonRoot: true, runAsUser: 1000}",
    );
    let done = node.run(&pod("nonroot", &allowed));
    assert_eq!(done.code, Some(0), "{}", done.all());
    assert!(done.stdout.contains("[main] uid=1000\n"), "{}", done.all());
    node.assert_clean();
}

#[test]
fn seccomp_profiles_runtime_default_localhost_and_a_missing_file() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let tiny = image(&bed, "tiny");
    // The pod's RuntimeDefault applies to `confined`; `free` overrides it with Unconfined.
    let body = format!(
        r#"  restartPolicy: Never
  securityContext:
    seccompProfile: {{type: RuntimeDefault}}
  containers:
  - name: confined
    image: {tiny}
    command: ["sh", "-c", "echo ls=$(ls / | grep -c etc); busybox unshare -U true; echo unshare=$?"]
  - name: free
    image: {tiny}
    command: ["sh", "-c", "busybox unshare -U true; echo unshare=$?"]
    securityContext:
      seccompProfile: {{type: Unconfined}}
"#
    );
    let done = node.run(&pod("filtered", &body));
    assert_eq!(done.code, Some(0), "{}", done.all());
    for line in [
        "[confined] ls=1\n",
        "[confined] unshare=1\n",
        "[free] unshare=0\n",
    ] {
        assert!(done.stdout.contains(line), "{line}: {}", done.all());
    }
    node.assert_clean();

    let profiles = node.root.path().join("state/seccomp/profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    std::fs::write(
        profiles.join("no-mkdir.json"),
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let local = |file: &str| {
        format!(
            r#"  restartPolicy: Never
  containers:
  - name: main
    image: {tiny}
    command: ["sh", "-c", "mkdir /tmp/d; echo mkdir=$?"]
    securityContext:
      seccompProfile: {{type: Localhost, localhostProfile: {file}}}
"#
        )
    };
    let done = node.run(&pod("local", &local("profiles/no-mkdir.json")));
    assert_eq!(done.code, Some(0), "{}", done.all());
    assert!(done.stdout.contains("[main] mkdir=1\n"), "{}", done.all());
    node.assert_clean();

    let done = node.run(&pod("local", &local("profiles/absent.json")));
    assert_eq!(done.code, Some(1), "{}", done.all());
    let missing = profiles.join("absent.json");
    assert!(
        done.stderr.contains(&format!(
            "Warning  Failed  Error: cannot load seccomp profile \"{0}\": open {0}: no such file or directory",
            missing.display()
        )),
        "{}",
        done.all()
    );
    node.assert_clean();
}

/// A hostPath on the host's private root mount, mounted HostToContainer: the kubelet makes it
/// a shared mount, so a mount the host makes under it later shows up in the container.
#[test]
fn host_to_container_propagation_shows_a_later_host_mount() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let host = tempfile::Builder::new()
        .prefix("nodelet-run-propagation-")
        .tempdir()
        .unwrap();
    let later = host.path().join("later");
    std::fs::create_dir_all(&later).unwrap();
    let body = format!(
        r#"  restartPolicy: Never
  volumes:
  - name: host
    hostPath: {{path: {dir}}}
  containers:
  - name: main
    image: {tiny}
    command: ["sh", "-c", "echo waiting; while [ ! -e /host/later/marker ]; do sleep 0.1; done; cat /host/later/marker"]
    volumeMounts:
    - {{name: host, mountPath: /host, mountPropagation: HostToContainer}}
"#,
        dir = host.path().display(),
        tiny = image(&bed, "tiny")
    );
    let mut running = node.start(&pod("propagation", &body));
    running.wait_for("[main] waiting\n");
    nodelet_sys::mount::mount_shm(&later, "size=64k").unwrap();
    std::fs::write(later.join("marker"), "from the host\n").unwrap();
    let done = running.finish();
    nodelet_sys::mount::unmount(&later, true).unwrap();
    // The kubelet's bind of the hostPath onto itself stays (see runtime::propagation).
    nodelet_sys::mount::unmount(host.path(), true).unwrap();
    assert_eq!(done.code, Some(0), "{}", done.all());
    assert!(
        done.stdout.contains("[main] from the host\n"),
        "{}",
        done.all()
    );
    node.assert_clean();
}
