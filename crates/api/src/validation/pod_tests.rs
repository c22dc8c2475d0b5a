use serde_json::{Value, json};

use super::*;
use crate::defaults::default_pod;

const LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// A defaulted pod in namespace `default` with one valid container, with `patch` merged
/// into it (JSON merge patch, so tests state only what they change).
fn pod(patch: Value) -> Pod {
    let base = json!({
        "metadata":{"name":"demo","namespace":"default"},
        "spec":{"containers":[{"name":"main","image":"busybox:1.36","command":["sleep","3600"]}]}
    });
    let merged = crate::patch::merge_patch(&base, &patch);
    let mut p: Pod = serde_json::from_value(merged).unwrap();
    default_pod(&mut p);
    p
}

fn errors(p: &Pod) -> Vec<String> {
    validate_pod_create(p, &PodValidationOptions::default()).messages()
}

fn with_container(c: Value) -> Value {
    json!({"spec":{"containers":[crate::patch::merge_patch(&json!({"name":"main","image":"busybox:1.36"}), &c)]}})
}

#[test]
fn pod_create_rules() {
    let cases: Vec<(&str, Value, Vec<String>)> = vec![
        ("valid", json!({}), vec![]),
        (
            "bad name",
            json!({"metadata":{"name":"Foo"}}),
            vec![format!("metadata.name: Invalid value: \"Foo\": {SUBDOMAIN_ERR}")],
        ),
        ("no containers", json!({"spec":{"containers":[]}}), vec!["spec.containers: Required value".into()]),
        ("image required", with_container(json!({"image":""})), vec!["spec.containers[0].image: Required value".into()]),
        (
            "image whitespace",
            with_container(json!({"image":" nginx"})),
            vec!["spec.containers[0].image: Invalid value: \" nginx\": must not have leading or trailing whitespace".into()],
        ),
        (
            "container name",
            with_container(json!({"name":"Main"})),
            vec![format!("spec.containers[0].name: Invalid value: \"Main\": {LABEL_ERR}")],
        ),
        (
            "duplicate container",
            json!({"spec":{"containers":[{"name":"a","image":"x:1"},{"name":"a","image":"x:1"}]}}),
            vec!["spec.containers[1].name: Duplicate value: \"a\"".into()],
        ),
        (
            "restart policy",
            json!({"spec":{"restartPolicy":"Sometimes"}}),
            vec!["spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"".into()],
        ),
        (
            "pull policy",
            with_container(json!({"imagePullPolicy":"Sometimes"})),
            vec!["spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"".into()],
        ),
        (
            "ports",
            with_container(json!({"ports":[{"containerPort":70000},{"containerPort":80,"name":"8080","protocol":"HTTP"},{"containerPort":81,"name":"web"},{"containerPort":82,"name":"web"}]})),
            vec![
                "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive".into(),
                "spec.containers[0].ports[1].name: Invalid value: \"8080\": must contain at least one letter (a-z)".into(),
                "spec.containers[0].ports[1].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"".into(),
                "spec.containers[0].ports[3].name: Duplicate value: \"web\"".into(),
            ],
        ),
        (
            "host port conflict",
            json!({"spec":{"containers":[{"name":"a","image":"x:1","ports":[{"containerPort":80,"hostPort":8080}]},{"name":"b","image":"x:1","ports":[{"containerPort":81,"hostPort":8080}]}]}}),
            vec!["spec.containers[1].ports[0].hostPort: Duplicate value: \"TCP//8080\"".into()],
        ),
        (
            "env names (relaxed rule of 1.33)",
            with_container(json!({"env":[{"name":"1OK","value":"x"},{"name":"A=B"},{"name":""}]})),
            vec![
                "spec.containers[0].env[1].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='".into(),
                "spec.containers[0].env[2].name: Required value".into(),
            ],
        ),
        (
            "valueFrom rules",
            with_container(json!({"env":[
                {"name":"A","valueFrom":{}},
                {"name":"B","value":"x","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}},
                {"name":"C","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"},"secretKeyRef":{"name":"s","key":"k"}}},
                {"name":"D","valueFrom":{"fieldRef":{"fieldPath":"spec.restartPolicy"}}},
                {"name":"E","valueFrom":{"fieldRef":{"fieldPath":"bogus"}}},
                {"name":"F","valueFrom":{"fieldRef":{"fieldPath":"metadata.labels['app']"}}},
                {"name":"G","valueFrom":{"configMapKeyRef":{"name":"cm","key":""}}},
                {"name":"H","valueFrom":{"resourceFieldRef":{"resource":"limits.gpu"}}}
            ]})),
            vec![
                "spec.containers[0].env[0].valueFrom: Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`".into(),
                "spec.containers[0].env[1].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty".into(),
                "spec.containers[0].env[2].valueFrom: Invalid value: \"\": may not have more than one field specified at a time".into(),
                "spec.containers[0].env[3].valueFrom.fieldRef.fieldPath: Unsupported value: \"spec.restartPolicy\": supported values: \"metadata.name\", \"metadata.namespace\", \"metadata.uid\", \"spec.nodeName\", \"spec.serviceAccountName\", \"status.hostIP\", \"status.hostIPs\", \"status.podIP\", \"status.podIPs\"".into(),
                "spec.containers[0].env[4].valueFrom.fieldRef.fieldPath: Invalid value: \"bogus\": error converting fieldPath: field label not supported: bogus".into(),
                "spec.containers[0].env[6].valueFrom.configMapKeyRef.key: Required value".into(),
                "spec.containers[0].env[7].valueFrom.resourceFieldRef.resource: Unsupported value: \"limits.gpu\": supported values: \"limits.cpu\", \"limits.ephemeral-storage\", \"limits.memory\", \"requests.cpu\", \"requests.ephemeral-storage\", \"requests.memory\"".into(),
            ],
        ),
        (
            "volume mounts",
            json!({"spec":{"volumes":[{"name":"data","emptyDir":{}}],"containers":[{"name":"main","image":"x:1","volumeMounts":[
                {"name":"data","mountPath":"/d"},{"name":"nope","mountPath":"/e"},{"name":"data","mountPath":"/d"},{"name":"data","mountPath":"/f","subPath":"../x"}]}]}}),
            vec![
                "spec.containers[0].volumeMounts[1].name: Not found: \"nope\"".into(),
                "spec.containers[0].volumeMounts[2].mountPath: Invalid value: \"/d\": must be unique".into(),
                "spec.containers[0].volumeMounts.subPath: Invalid value: \"../x\": must not contain '..'".into(),
            ],
        ),
        (
            "lifecycle handlers",
            with_container(json!({"lifecycle":{"postStart":{},"preStop":{"exec":{"command":["x"]},"sleep":{"seconds":1}}}})),
            vec![
                "spec.containers[0].lifecycle.postStart: Required value: must specify a handler type".into(),
                "spec.containers[0].lifecycle.preStop.sleep: Forbidden: may not specify more than 1 handler type".into(),
            ],
        ),
        (
            "hook details",
            with_container(json!({"lifecycle":{"postStart":{"exec":{"command":[]}},"preStop":{"httpGet":{"port":0,"scheme":"FTP"}}}})),
            vec![
                "spec.containers[0].lifecycle.postStart.exec.command: Required value".into(),
                "spec.containers[0].lifecycle.preStop.httpGet.port: Invalid value: 0: must be between 1 and 65535, inclusive".into(),
                "spec.containers[0].lifecycle.preStop.httpGet.scheme: Unsupported value: \"FTP\": supported values: \"HTTP\", \"HTTPS\"".into(),
            ],
        ),
        (
            "sleep longer than the grace period",
            json!({"spec":{"terminationGracePeriodSeconds":10,"containers":[{"name":"main","image":"x:1","lifecycle":{"preStop":{"sleep":{"seconds":20}}}}]}}),
            vec!["spec.containers[0].lifecycle.preStop.sleep: Invalid value: 20: must be non-negative and less than terminationGracePeriodSeconds (10)".into()],
        ),
        ("sleep zero is allowed in 1.33", with_container(json!({"lifecycle":{"preStop":{"sleep":{"seconds":0}}}})), vec![]),
        (
            "probes",
            with_container(json!({"livenessProbe":{"tcpSocket":{"port":"http-web-port-xy"},"successThreshold":2,"initialDelaySeconds":-1},
                                  "readinessProbe":{"exec":{"command":["true"]},"terminationGracePeriodSeconds":5}})),
            vec![
                "spec.containers[0].livenessProbe.tcpSocket.port: Invalid value: \"http-web-port-xy\": must be no more than 15 characters".into(),
                "spec.containers[0].livenessProbe.initialDelaySeconds: Invalid value: -1: must be greater than or equal to 0".into(),
                "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1".into(),
                "spec.containers[0].readinessProbe.terminationGracePeriodSeconds: Invalid value: 5: must not be set for readinessProbes".into(),
            ],
        ),
        (
            "resources",
            with_container(json!({"resources":{"limits":{"cpu":"1"},"requests":{"cpu":"2"}}})),
            vec!["spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1".into()],
        ),
        (
            "runtimeClassName",
            json!({"spec":{"runtimeClassName":"My_Class"}}),
            vec![format!("spec.runtimeClassName: Invalid value: \"My_Class\": {SUBDOMAIN_ERR}")],
        ),
        (
            "node selector and tolerations",
            json!({"spec":{"nodeSelector":{"disk":"-ssd"},"tolerations":[{"key":"a","operator":"Bogus"}]}}),
            vec![
                "spec.nodeSelector: Invalid value: \"-ssd\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".into(),
                "spec.tolerations[0].operator: Unsupported value: \"Bogus\": supported values: \"Equal\", \"Exists\"".into(),
            ],
        ),
        (
            "negative grace period is accepted (warning only)",
            json!({"spec":{"terminationGracePeriodSeconds":-1}}),
            vec![],
        ),
        (
            "ephemeral containers on create",
            json!({"spec":{"ephemeralContainers":[{"name":"dbg","image":"busybox"}]}}),
            vec!["spec.ephemeralContainers: Forbidden: cannot be set on create".into()],
        ),
        (
            "init containers without restartPolicy may not have hooks",
            json!({"spec":{"initContainers":[{"name":"init","image":"x:1","lifecycle":{"postStart":{"exec":{"command":["x"]}}}},{"name":"main","image":"x:1"}]}}),
            vec![
                "spec.initContainers[0].lifecycle: Forbidden: may not be set for init containers without restartPolicy=Always".into(),
                "spec.initContainers[1].name: Duplicate value: \"main\"".into(),
            ],
        ),
        (
            "dnsPolicy None needs a config",
            json!({"spec":{"dnsPolicy":"None"}}),
            vec!["spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None".into()],
        ),
        (
            "mirror pod needs a node",
            json!({"metadata":{"annotations":{"kubernetes.io/config.mirror":"x"}}}),
            vec!["metadata.annotations[kubernetes.io/config.mirror]: Invalid value: \"x\": must set spec.nodeName if mirror pod annotation is set".into()],
        ),
    ];
    for (name, patch, want) in cases {
        assert_eq!(errors(&pod(patch)), want, "{name}");
    }
}

#[test]
fn strict_env_names_before_1_32() {
    let p = pod(with_container(json!({"env":[{"name":"1FOO"}]})));
    let opts = PodValidationOptions {
        relaxed_env_var_names: false,
        ..Default::default()
    };
    let got: Vec<String> = validate_pod_create(&p, &opts).messages();
    assert_eq!(
        got,
        vec![
            "spec.containers[0].env[0].name: Invalid value: \"1FOO\": a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"
        ]
    );
    let p = pod(with_container(
        json!({"lifecycle":{"preStop":{"sleep":{"seconds":0}}}}),
    ));
    let opts = PodValidationOptions {
        allow_sleep_zero: false,
        ..Default::default()
    };
    assert_eq!(validate_pod_create(&p, &opts).len(), 1);
}

#[test]
fn aggregate_message_as_kubectl_prints_it() {
    let p = pod(
        json!({"spec":{"restartPolicy":"Sometimes","containers":[{"name":"main","image":""}]}}),
    );
    let errs = validate_pod_create(&p, &PodValidationOptions::default());
    assert_eq!(
        errs.invalid_message("Pod", "demo"),
        "Pod \"demo\" is invalid: [spec.containers[0].image: Required value, spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"]"
    );
}

fn stored(patch: Value) -> Pod {
    let mut p = pod(patch);
    p.metadata.resource_version = Some("7".into());
    p
}

fn update_errors(new: &Pod, old: &Pod) -> Vec<String> {
    validate_pod_update(new, old, &PodValidationOptions::default()).messages()
}

#[test]
fn pod_update_rules() {
    let old = stored(
        json!({"spec":{"activeDeadlineSeconds":100,"tolerations":[{"key":"a","operator":"Exists","effect":"NoExecute","tolerationSeconds":10}]}}),
    );
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        ("no change", json!({}), vec![]),
        (
            "image change",
            json!({"spec":{"containers":[{"name":"main","image":"busybox:1.37","command":["sleep","3600"]}]}}),
            vec![],
        ),
        (
            "lower deadline",
            json!({"spec":{"activeDeadlineSeconds":50}}),
            vec![],
        ),
        (
            "raise deadline",
            json!({"spec":{"activeDeadlineSeconds":500}}),
            vec![
                "spec.activeDeadlineSeconds: Invalid value: 500: must be less than or equal to previous value",
            ],
        ),
        (
            "drop deadline",
            json!({"spec":{"activeDeadlineSeconds":null}}),
            vec![
                "spec.activeDeadlineSeconds: Invalid value: null: must not update from a positive integer to nil value",
            ],
        ),
        (
            "add a toleration and change tolerationSeconds",
            json!({"spec":{"tolerations":[{"key":"a","operator":"Exists","effect":"NoExecute","tolerationSeconds":5},{"key":"b","operator":"Exists"}]}}),
            vec![],
        ),
        (
            "remove a toleration",
            json!({"spec":{"tolerations":null}}),
            vec![
                "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds",
            ],
        ),
        (
            "add a container",
            json!({"spec":{"containers":[{"name":"main","image":"busybox:1.36","command":["sleep","3600"]},{"name":"b","image":"x:1"}]}}),
            vec!["spec.containers: Forbidden: pod updates may not add or remove containers"],
        ),
        (
            "empty image",
            json!({"spec":{"containers":[{"name":"main","image":"","command":["sleep","3600"]}]}}),
            vec![
                "spec.containers[0].image: Required value",
                "spec.containers[0].image: Required value",
            ],
        ),
    ];
    for (name, patch, want) in cases {
        let new_value = crate::patch::merge_patch(&serde_json::to_value(&old).unwrap(), &patch);
        let mut new: Pod = serde_json::from_value(new_value).unwrap();
        default_pod(&mut new);
        assert_eq!(update_errors(&new, &old), want, "{name}");
    }
}

#[test]
fn forbidden_spec_change_names_the_field() {
    let old = stored(json!({}));
    let new_value = crate::patch::merge_patch(
        &serde_json::to_value(&old).unwrap(),
        &json!({"spec":{"containers":[{"name":"main","image":"busybox:1.36","command":["sleep","10"]}]}}),
    );
    let mut new: Pod = serde_json::from_value(new_value).unwrap();
    default_pod(&mut new);
    let errs = validate_pod_update(&new, &old, &PodValidationOptions::default());
    let msg = errs.invalid_message("Pod", "demo");
    let want_start = "Pod \"demo\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n";
    assert!(msg.starts_with(want_start), "{msg}");
    assert!(
        msg.contains(
            "- spec.containers[0].command[1]: \"3600\"\n+ spec.containers[0].command[1]: \"10\""
        ),
        "{msg}"
    );
}

#[test]
fn warnings() {
    let p = pod(json!({"spec":{
        "terminationGracePeriodSeconds":-1,
        "imagePullSecrets":[{"name":""},{"name":"a"},{"name":"a"}],
        "containers":[{"name":"main","image":"x:1","env":[{"name":"A","value":"1"},{"name":"A","value":"2"}],
                       "ports":[{"containerPort":80},{"containerPort":80}],
                       "resources":{"requests":{"memory":"100m"}}}]}}));
    assert_eq!(
        pod_warnings(&p),
        vec![
            "spec.imagePullSecrets[2].name: duplicate name \"a\"",
            "spec.imagePullSecrets[0].name: invalid empty name \"\"",
            "spec.containers[0].resources.requests[memory]: fractional byte value \"100m\" is invalid, must be an integer",
            "spec.containers[0].env[1]: hides previous definition of \"A\", which may be dropped when using apply",
            "spec.containers[0].ports[1]: duplicate port definition with spec.containers[0].ports[0]",
            "spec.terminationGracePeriodSeconds: must be >= 0; negative values are invalid and will be treated as 1",
        ]
    );
}

#[test]
fn seccomp_profile_rules() {
    let pod_level =
        |profile: Value| pod(json!({"spec":{"securityContext":{"seccompProfile": profile}}}));
    let container_level = |profile: Value| {
        pod(with_container(
            json!({"securityContext":{"seccompProfile": profile}}),
        ))
    };
    assert!(errors(&pod_level(json!({"type":"RuntimeDefault"}))).is_empty());
    assert!(
        errors(&container_level(
            json!({"type":"Localhost","localhostProfile":"profiles/a.json"})
        ))
        .is_empty()
    );
    assert_eq!(
        errors(&pod_level(json!({"type":""}))),
        [
            "spec.securityContext.seccompProfile.type: Required value: type is required when seccompProfile is set"
        ]
    );
    assert_eq!(
        errors(&container_level(json!({"type":"Strict"}))),
        [
            "spec.containers[0].securityContext.seccompProfile.type: Unsupported value: \"Strict\": supported values: \"Localhost\", \"RuntimeDefault\", \"Unconfined\""
        ]
    );
    assert_eq!(
        errors(&container_level(json!({"type":"Localhost"}))),
        [
            "spec.containers[0].securityContext.seccompProfile.localhostProfile: Required value: must be set when seccomp type is Localhost"
        ]
    );
    assert_eq!(
        errors(&pod_level(
            json!({"type":"Localhost","localhostProfile":"../etc/x.json"})
        )),
        [
            "spec.securityContext.seccompProfile.localhostProfile: Invalid value: \"../etc/x.json\": must not contain '..'"
        ]
    );
    assert_eq!(
        errors(&pod_level(
            json!({"type":"RuntimeDefault","localhostProfile":"a.json"})
        )),
        [
            "spec.securityContext.seccompProfile.localhostProfile: Invalid value: core.SeccompProfile{Type:\"RuntimeDefault\", LocalhostProfile:\"a.json\"}: can only be set when seccomp type is Localhost"
        ]
    );
}
