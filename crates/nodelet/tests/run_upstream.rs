//! `nodelet run` against what upstream's node conformance tests assert (spec §9): the
//! "Containers" (command/args against the image), "Variable Expansion", "Downward API",
//! ConfigMap/Secret env, service environment variables, image names the kubelet cannot parse,
//! and lifecycle hooks (HTTP at the pod IP, sleep, failures). Privileged: run as root.

mod run_support;

use std::net::IpAddr;

use nodelet_testbed::Bed;
use run_support::{Finished, Node, image, pod};

/// The value of `NAME=` in container `container`'s output of `env`.
fn env_value<'a>(done: &'a Finished, container: &str, name: &str) -> Option<&'a str> {
    let prefix = format!("[{container}] {name}=");
    done.stdout.lines().find_map(|l| l.strip_prefix(&prefix))
}

fn assert_lines(done: &Finished, lines: &[&str]) {
    for line in lines {
        assert!(
            done.stdout.contains(&format!("{line}\n")),
            "{line}: {}",
            done.all()
        );
    }
}

/// The event lines `nodelet run` printed (`Type  Reason  Message`).
fn events(done: &Finished) -> Vec<&str> {
    done.stderr
        .lines()
        .filter(|l| l.starts_with("Normal  ") || l.starts_with("Warning  "))
        .collect()
}

/// containers.go: the image's Entrypoint and Cmd against the container's command and args.
#[test]
fn command_and_args_combine_with_the_image_entrypoint_and_cmd() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    // The `config` image: Entrypoint [/bin/echo, entrypoint], Cmd [from, cmd].
    let yaml = pod(
        "client-containers",
        &r#"  restartPolicy: Never
  containers:
  - name: defaults
    image: IMAGE
  - name: args
    image: IMAGE
    args: [override, arguments]
  - name: command
    image: IMAGE
    command: [/bin/echo, command]
  - name: both
    image: IMAGE
    command: [/bin/echo, command]
    args: [override, arguments]
"#
        .replace("IMAGE", &image(&bed, "config")),
    );
    let done = node.run(&yaml);
    assert_eq!(done.code, Some(0), "{}", done.all());
    assert_lines(
        &done,
        &[
            "[defaults] entrypoint from cmd",
            "[args] entrypoint override arguments",
            "[command] command",
            "[both] command override arguments",
        ],
    );
    node.assert_clean();
}

/// expansion.go 1–3 and the expansion rules: composed variables, `$$` escapes, references
/// to undefined or later variables left as written, command and args expanded by the
/// kubelet rather than the shell.
#[test]
fn variables_expand_into_env_command_and_args() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let yaml = pod(
        "var-expansion",
        &r#"  restartPolicy: Never
  containers:
  - name: compose
    image: IMAGE
    command: [env]
    env:
    - {name: FOO, value: foo-value}
    - {name: BAR, value: bar-value}
    - {name: FOOBAR, value: "$(FOO);;$(BAR)"}
    - {name: ESCAPED, value: "$$(FOO)"}
    - {name: DOLLAR_THEN_VALUE, value: "$$$(FOO)"}
    - {name: UNCLOSED, value: "$(FOO"}
    - {name: UNDEFINED, value: "$(NOT_DEFINED)"}
    - {name: FORWARD, value: "$(LATER)"}
    - {name: LATER, value: later}
    - {name: EMPTY}
    - {name: FROM_EMPTY, value: "[$(EMPTY)]"}
  - name: command
    image: IMAGE
    command: [sh, -c, 'TEST_VAR=wrong echo "$(TEST_VAR) $(LATE)"']
    env:
    - {name: TEST_VAR, value: test-value}
    - {name: LATE, value: late-value}
  - name: args
    image: IMAGE
    command: [sh, -c]
    args: ['TEST_VAR=wrong echo "$(TEST_VAR)"']
    env:
    - {name: TEST_VAR, value: test-value}
"#
        .replace("IMAGE", &image(&bed, "tiny")),
    );
    let done = node.run(&yaml);
    assert_eq!(done.code, Some(0), "{}", done.all());
    assert_lines(
        &done,
        &[
            "[compose] FOO=foo-value",
            "[compose] BAR=bar-value",
            "[compose] FOOBAR=foo-value;;bar-value",
            "[compose] ESCAPED=$(FOO)",
            "[compose] DOLLAR_THEN_VALUE=$foo-value",
            "[compose] UNCLOSED=$(FOO",
            "[compose] UNDEFINED=$(NOT_DEFINED)",
            "[compose] FORWARD=$(LATER)",
            "[compose] EMPTY=",
            "[compose] FROM_EMPTY=[]",
            // command and args see the whole env list, later variables included.
            "[command] test-value late-value",
            "[args] test-value",
        ],
    );
    node.assert_clean();
}

/// configmap.go / secrets.go env cases: keys by reference, whole objects through envFrom
/// (with a prefix), and `optional` references to what does not exist left out; a required
/// one stops the container with the API's text.
#[test]
fn config_maps_and_secrets_become_variables() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let objects = r#"apiVersion: v1
kind: ConfigMap
metadata: {name: configmap-test}
data: {data-1: value-1, data-2: value-2, data-3: value-3}
---
apiVersion: v1
kind: Secret
metadata: {name: secret-test}
data: {data-1: dmFsdWUtMQ==}
---
"#;
    let body = r#"  restartPolicy: Never
  containers:
  - name: main
    image: IMAGE
    command: [env]
    envFrom:
    - configMapRef: {name: configmap-test}
    - prefix: p-
      secretRef: {name: secret-test}
    - configMapRef: {name: no-such-map, optional: true}
    env:
    - name: CONFIG_DATA_1
      valueFrom: {configMapKeyRef: {name: configmap-test, key: data-1}}
    - name: SECRET_DATA
      valueFrom: {secretKeyRef: {name: secret-test, key: data-1}}
    - name: OPTIONAL_MISSING_MAP
      valueFrom: {configMapKeyRef: {name: no-such-map, key: data-1, optional: true}}
    - name: OPTIONAL_MISSING_KEY
      valueFrom: {secretKeyRef: {name: secret-test, key: no-such-key, optional: true}}
"#
    .replace("IMAGE", &image(&bed, "tiny"));
    let done = node.run(&format!("{objects}{}", pod("env-refs", &body)));
    assert_eq!(done.code, Some(0), "{}", done.all());
    assert_lines(
        &done,
        &[
            "[main] CONFIG_DATA_1=value-1",
            "[main] SECRET_DATA=value-1",
            "[main] data-1=value-1",
            "[main] data-2=value-2",
            "[main] data-3=value-3",
            "[main] p-data-1=value-1",
        ],
    );
    assert!(!done.stdout.contains("OPTIONAL_MISSING"), "{}", done.all());
    node.assert_clean();

    let required = body.replace(
        "{name: no-such-map, key: data-1, optional: true}",
        "{name: no-such-map, key: data-1}",
    );
    let done = node.run(&format!("{objects}{}", pod("env-refs", &required)));
    assert_eq!(done.code, Some(1), "{}", done.all());
    assert!(
        events(&done).contains(&"Warning  Failed  Error: configmap \"no-such-map\" not found"),
        "{}",
        done.all()
    );
    assert!(!done.stdout.contains("[main]"), "{}", done.all());
    node.assert_clean();
}

/// downwardapi.go: the pod's name, namespace, UID and IPs, the node's IP, and the
/// container's resources (limits defaulting to the node's allocatable).
#[test]
fn the_downward_api_gives_pod_fields_and_resources() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let objects =
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: robot, namespace: dapi}\n---\n";
    let field = |name: &str, path: &str| {
        format!("    - {{name: {name}, valueFrom: {{fieldRef: {{fieldPath: \"{path}\"}}}}}}\n")
    };
    let resource = |name: &str, what: &str, divisor: &str| {
        format!(
            "    - {{name: {name}, valueFrom: {{resourceFieldRef: {{resource: {what}{divisor}}}}}}}\n"
        )
    };
    let mut env = String::new();
    for (name, path) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
        ("POD_UID", "metadata.uid"),
        ("POD_LABEL", "metadata.labels['tier']"),
        ("POD_ANNOTATION", "metadata.annotations['note']"),
        ("ABSENT_LABEL", "metadata.labels['absent']"),
        ("NODE_NAME", "spec.nodeName"),
        ("SERVICE_ACCOUNT", "spec.serviceAccountName"),
        ("POD_IP", "status.podIP"),
        ("POD_IPS", "status.podIPs"),
        ("HOST_IP", "status.hostIP"),
        ("HOST_IPS", "status.hostIPs"),
    ] {
        env.push_str(&field(name, path));
    }
    let mut limited = env.clone();
    for (name, what, divisor) in [
        ("CPU_LIMIT", "limits.cpu", ""),
        ("MEMORY_LIMIT", "limits.memory", ""),
        ("CPU_REQUEST", "requests.cpu", ""),
        ("MEMORY_REQUEST", "requests.memory", ""),
        ("MEMORY_LIMIT_MI", "limits.memory", ", divisor: 1Mi"),
        ("CPU_LIMIT_MILLIS", "limits.cpu", ", divisor: 1m"),
    ] {
        limited.push_str(&resource(name, what, divisor));
    }
    let defaults = format!(
        "{}{}",
        resource("CPU_LIMIT", "limits.cpu", ""),
        resource("MEMORY_LIMIT", "limits.memory", "")
    );
    let yaml = format!(
        "{objects}apiVersion: v1
kind: Pod
metadata:
  name: downward-api
  namespace: dapi
  labels: {{tier: web}}
  annotations: {{note: from-the-annotation}}
spec:
  restartPolicy: Never
  serviceAccountName: robot
  containers:
  - name: dapi
    image: {image}
    command: [env]
    resources:
      requests: {{cpu: 250m, memory: 32Mi}}
      limits: {{cpu: 1250m, memory: 64Mi}}
    env:
{limited}  - name: defaults
    image: {image}
    command: [env]
    env:
{defaults}",
        image = image(&bed, "tiny")
    );
    let done = node.run(&yaml);
    assert_eq!(done.code, Some(0), "{}", done.all());
    assert_lines(
        &done,
        &[
            "[dapi] POD_NAME=downward-api",
            "[dapi] POD_NAMESPACE=dapi",
            "[dapi] POD_LABEL=web",
            "[dapi] POD_ANNOTATION=from-the-annotation",
            "[dapi] ABSENT_LABEL=",
            "[dapi] SERVICE_ACCOUNT=robot",
            "[dapi] CPU_LIMIT=2",
            "[dapi] MEMORY_LIMIT=67108864",
            "[dapi] CPU_REQUEST=1",
            "[dapi] MEMORY_REQUEST=33554432",
            "[dapi] MEMORY_LIMIT_MI=64",
            "[dapi] CPU_LIMIT_MILLIS=1250",
        ],
    );
    let uid = env_value(&done, "dapi", "POD_UID").unwrap_or_default();
    let groups: Vec<usize> = uid.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12], "{uid}: {}", done.all());
    let node_name = env_value(&done, "dapi", "NODE_NAME").unwrap_or_default();
    assert!(!node_name.is_empty(), "{}", done.all());
    for name in ["POD_IP", "HOST_IP"] {
        let value = env_value(&done, "dapi", name).unwrap_or_default();
        assert!(
            value.parse::<IpAddr>().is_ok(),
            "{name}={value}: {}",
            done.all()
        );
    }
    let pod_ip = env_value(&done, "dapi", "POD_IP").unwrap();
    let host_ip = env_value(&done, "dapi", "HOST_IP").unwrap();
    assert_ne!(pod_ip, host_ip, "{}", done.all());
    assert_eq!(
        env_value(&done, "dapi", "POD_IPS")
            .unwrap()
            .split(',')
            .next(),
        Some(pod_ip),
        "{}",
        done.all()
    );
    assert_eq!(
        env_value(&done, "dapi", "HOST_IPS")
            .unwrap()
            .split(',')
            .next(),
        Some(host_ip),
        "{}",
        done.all()
    );
    // No limits: the node's allocatable.
    for name in ["CPU_LIMIT", "MEMORY_LIMIT"] {
        let value: u64 = env_value(&done, "defaults", name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name}: {}", done.all()));
        assert!(value >= 1, "{name}={value}");
    }
    node.assert_clean();
}

/// pods.go "should contain environment variables for services": every Service of the pod's
/// namespace (and `kubernetes` from `default`) with the docker-link set; none of another
/// namespace nor headless ones; `enableServiceLinks: false` keeps only `kubernetes`.
#[test]
fn services_of_the_namespace_become_variables() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let services = r#"apiVersion: v1
kind: Service
metadata: {name: fooservice, namespace: shop}
spec:
  clusterIP: 10.96.10.11
  ports:
  - {port: 8765, targetPort: 8080}
  - {name: metrics-port, port: 9100, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: kubernetes, namespace: default}
spec:
  clusterIP: 10.96.0.1
  ports:
  - {name: https, port: 443}
---
apiVersion: v1
kind: Service
metadata: {name: elsewhere, namespace: other}
spec:
  clusterIP: 10.96.10.12
  ports:
  - {port: 80}
---
apiVersion: v1
kind: Service
metadata: {name: headless, namespace: shop}
spec:
  clusterIP: None
  ports:
  - {port: 80}
---
"#;
    let yaml = format!(
        "{services}apiVersion: v1
kind: Pod
metadata: {{name: env3, namespace: shop}}
spec:
  restartPolicy: Never
  containers:
  - name: env3cont
    image: {}
    command: [env]
    env:
    - {{name: FOO_URL, value: \"http://$(FOOSERVICE_SERVICE_HOST):$(FOOSERVICE_SERVICE_PORT)\"}}
    - {{name: FOOSERVICE_PORT, value: shadowed}}
",
        image(&bed, "tiny")
    );
    let done = node.run(&yaml);
    assert_eq!(done.code, Some(0), "{}", done.all());
    let c = "[env3cont] ";
    let expected: Vec<String> = [
        "FOOSERVICE_SERVICE_HOST=10.96.10.11",
        "FOOSERVICE_SERVICE_PORT=8765",
        "FOOSERVICE_SERVICE_PORT_METRICS_PORT=9100",
        "FOOSERVICE_PORT_8765_TCP=tcp://10.96.10.11:8765",
        "FOOSERVICE_PORT_8765_TCP_PROTO=tcp",
        "FOOSERVICE_PORT_8765_TCP_PORT=8765",
        "FOOSERVICE_PORT_8765_TCP_ADDR=10.96.10.11",
        "FOOSERVICE_PORT_9100_UDP=udp://10.96.10.11:9100",
        "FOOSERVICE_PORT_9100_UDP_PROTO=udp",
        "FOOSERVICE_PORT_9100_UDP_PORT=9100",
        "FOOSERVICE_PORT_9100_UDP_ADDR=10.96.10.11",
        "KUBERNETES_SERVICE_HOST=10.96.0.1",
        "KUBERNETES_SERVICE_PORT=443",
        "KUBERNETES_SERVICE_PORT_HTTPS=443",
        "KUBERNETES_PORT=tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP=tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP_PROTO=tcp",
        "KUBERNETES_PORT_443_TCP_PORT=443",
        "KUBERNETES_PORT_443_TCP_ADDR=10.96.0.1",
        // A variable of the pod may use a service's, and hides one of the same name.
        "FOO_URL=http://10.96.10.11:8765",
        "FOOSERVICE_PORT=shadowed",
    ]
    .iter()
    .map(|l| format!("{c}{l}"))
    .collect();
    assert_lines(
        &done,
        &expected.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    for absent in ["ELSEWHERE_", "HEADLESS_", "FOOSERVICE_PORT=tcp://"] {
        assert!(!done.stdout.contains(absent), "{absent}: {}", done.all());
    }
    node.assert_clean();

    let unlinked = yaml.replace(
        "  restartPolicy: Never\n",
        "  restartPolicy: Never\n  enableServiceLinks: false\n",
    );
    let done = node.run(&unlinked);
    assert_eq!(done.code, Some(0), "{}", done.all());
    assert_lines(
        &done,
        &[
            "[env3cont] KUBERNETES_SERVICE_HOST=10.96.0.1",
            "[env3cont] KUBERNETES_PORT_443_TCP_ADDR=10.96.0.1",
            // Without the service variable the reference stays as written.
            "[env3cont] FOO_URL=http://$(FOOSERVICE_SERVICE_HOST):$(FOOSERVICE_SERVICE_PORT)",
        ],
    );
    assert!(
        !done.stdout.contains("FOOSERVICE_SERVICE_HOST="),
        "{}",
        done.all()
    );
    node.assert_clean();
}

/// An image name the kubelet cannot parse: `InspectFailed` with upstream's text, the
/// container waits with `InvalidImageName`, nothing is pulled, and the pod cannot start.
#[test]
fn an_unparsable_image_name_is_inspect_failed_and_invalid_image_name() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let done = node.run(&pod(
        "bad-image",
        "  restartPolicy: Never\n  containers:\n  - name: main\n    image: ACTOKEY\n",
    ));
    assert_eq!(done.code, Some(1), "{}", done.all());
    let events = events(&done);
    for event in [
        "Warning  InspectFailed  Failed to apply default image tag \"ACTOKEY\": couldn't parse image name \"ACTOKEY\": invalid reference format: repository name (library/ACTOKEY) must be lowercase",
        "Warning  Failed  Error: InvalidImageName",
    ] {
        assert!(events.contains(&event), "{event}: {}", done.all());
    }
    assert!(
        !events.iter().any(|e| e.contains("Pulling")),
        "{}",
        done.all()
    );
    node.assert_clean();
}

/// A failing PreStop hook: `FailedPreStopHook` with upstream's short message (the hook's
/// output stays out of events, as it may hold secrets), then the stop goes on. A failing
/// PostStart hook's output stays out of events too.
#[test]
fn failed_hooks_are_events_without_the_hooks_output() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let yaml = pod(
        "prestop-fails",
        &r#"  restartPolicy: Always
  containers:
  - name: main
    image: IMAGE
    command: ["sh", "-c", "trap 'echo got TERM; exit 0' TERM; echo ready; sleep 1000 & wait"]
    lifecycle:
      preStop:
        exec:
          command: ["sh", "-c", "echo hook-secret-output; exit 7"]
"#
        .replace("IMAGE", &image(&bed, "tiny")),
    );
    let mut running = node.start(&yaml);
    running.wait_for("[main] ready");
    running.signal("INT");
    let done = running.finish();
    assert_eq!(done.code, Some(0), "{}", done.all());
    let events = events(&done);
    assert!(
        events.contains(&"Warning  FailedPreStopHook  PreStopHook failed"),
        "{}",
        done.all()
    );
    assert!(done.stdout.contains("[main] got TERM"), "{}", done.all());
    assert!(
        !events.iter().any(|e| e.contains("hook-secret-output")),
        "{}",
        done.all()
    );
    node.assert_clean();

    let post_start = yaml
        .replace("preStop:", "postStart:")
        .replace("restartPolicy: Always", "restartPolicy: Never")
        .replace(
            "  containers:\n",
            "  terminationGracePeriodSeconds: 2\n  containers:\n",
        );
    // The hook fails, the container is stopped (its TERM trap exits 0) and not restarted.
    let done = node.run(&post_start);
    assert_eq!(done.code, Some(0), "{}", done.all());
    let events = crate::events(&done);
    assert!(
        events.contains(&"Warning  FailedPostStartHook  PostStartHook failed")
            && events.contains(&"Normal  Killing  FailedPostStartHook"),
        "{}",
        done.all()
    );
    assert!(
        !events.iter().any(|e| e.contains("hook-secret-output")),
        "{}",
        done.all()
    );
    node.assert_clean();
}

/// lifecycle_hook.go's HTTP cases against a server in the pod: with no `host` the hooks go
/// to the pod's IP, the port by number or by the container port's name, with the given
/// headers; a sleep PreStop hook passes without a failure.
#[test]
fn http_hooks_reach_the_pod_ip_and_sleep_hooks_wait() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    // busybox httpd with a CGI script that writes the request to the server's output; the
    // server's own PostStart holds the next container until httpd listens.
    let yaml = pod(
        "hooks",
        &r#"  restartPolicy: Always
  terminationGracePeriodSeconds: 10
  containers:
  - name: server
    image: IMAGE
    ports:
    - {name: http, containerPort: 8080}
    command:
    - sh
    - -c
    - |
      mkdir -p /www/cgi-bin
      printf '#!/bin/sh\necho "hook $QUERY_STRING $HTTP_X_HOOK" > /proc/1/fd/1\nprintf "Content-Type: text/plain\\r\\n\\r\\nok"\n' > /www/cgi-bin/hook
      chmod +x /www/cgi-bin/hook
      busybox httpd -p 8080 -h /www
      touch /tmp/listening
      trap 'echo server got TERM; exit 0' TERM
      sleep 1000 & wait
    lifecycle:
      postStart:
        exec:
          command: ["sh", "-c", "while [ ! -f /tmp/listening ]; do sleep 0.1; done"]
      preStop:
        httpGet:
          path: /cgi-bin/hook?prestop
          port: http
          httpHeaders:
          - {name: X-Hook, value: named-port}
  - name: client
    image: IMAGE
    command: ["sh", "-c", "trap 'exit 0' TERM; echo client ready; sleep 1000 & wait"]
    lifecycle:
      postStart:
        httpGet:
          path: /cgi-bin/hook?poststart
          port: 8080
          httpHeaders:
          - {name: X-Hook, value: by-number}
      preStop:
        sleep:
          seconds: 1
"#
        .replace("IMAGE", &image(&bed, "tiny")),
    );
    let mut running = node.start(&yaml);
    running.wait_for("[server] hook poststart by-number");
    running.wait_for("[client] client ready");
    running.signal("INT");
    let done = running.finish();
    assert_eq!(done.code, Some(0), "{}", done.all());
    let pre_stop = done
        .stdout
        .find("[server] hook prestop named-port")
        .unwrap_or_else(|| panic!("{}", done.all()));
    let term = done
        .stdout
        .find("[server] server got TERM")
        .unwrap_or_else(|| panic!("{}", done.all()));
    assert!(pre_stop < term, "{}", done.all());
    assert!(
        !events(&done).iter().any(|e| e.contains("Hook")),
        "no hook failed: {}",
        done.all()
    );
    node.assert_clean();
}

/// downwardapi.go "should provide host IP and pod IP as an env var if pod uses host network".
#[test]
fn a_host_network_pod_has_the_node_ip_as_its_own() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let yaml = pod(
        "dapi-hostnet",
        &r#"  restartPolicy: Never
  hostNetwork: true
  containers:
  - name: main
    image: IMAGE
    command: ["sh", "-c", "[ \"${HOST_IP:?}\" = \"${POD_IP:?}\" ] && echo OK; echo pod=$POD_IP host=$HOST_IP"]
    env:
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: HOST_IP, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}
"#
        .replace("IMAGE", &image(&bed, "tiny")),
    );
    let done = node.run(&yaml);
    assert_eq!(done.code, Some(0), "{}", done.all());
    assert_lines(&done, &["[main] OK"]);
    node.assert_clean();
}
