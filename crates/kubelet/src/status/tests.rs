use super::*;
use nodelet_api::k8s::api::core::v1::{PodReadinessGate, PodStatus};
use nodelet_api::k8s::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap()
}

fn spec(policy: &str, init: &[&str], sidecars: &[&str], containers: &[&str]) -> PodSpec {
    let c = |name: &&str, restart: Option<&str>| Container {
        name: name.to_string(),
        restart_policy: restart.map(Into::into),
        ..Container::default()
    };
    let mut init_containers: Vec<Container> = init.iter().map(|n| c(n, None)).collect();
    init_containers.extend(sidecars.iter().map(|n| c(n, Some("Always"))));
    PodSpec {
        restart_policy: Some(policy.into()),
        init_containers: (!init_containers.is_empty()).then_some(init_containers),
        containers: containers.iter().map(|n| c(n, None)).collect(),
        ..PodSpec::default()
    }
}

fn waiting(name: &str, reason: &str) -> ContainerObservation {
    ContainerObservation::waiting(name, reason)
}

fn running(name: &str, ready: bool) -> ContainerObservation {
    ContainerObservation {
        state: State::Running { started_at: ts(0) },
        ready,
        started: Some(true),
        ..waiting(name, "")
    }
}

fn exited(code: i32) -> Terminated {
    Terminated {
        exit_code: code,
        reason: runtime_terminated_reason(code, false, false).to_owned(),
        started_at: Some(ts(0)),
        finished_at: Some(ts(1)),
        ..Terminated::default()
    }
}

fn terminated(name: &str, code: i32) -> ContainerObservation {
    ContainerObservation {
        state: State::Terminated(exited(code)),
        ready: false,
        started: Some(false),
        ..waiting(name, "")
    }
}

/// Waiting to be restarted after an exit (CrashLoopBackOff).
fn backing_off(name: &str, code: i32, restarts: i32) -> ContainerObservation {
    ContainerObservation {
        last_termination: Some(exited(code)),
        restart_count: restarts,
        ..waiting(name, "CrashLoopBackOff")
    }
}

fn done_init(name: &str) -> ContainerObservation {
    ContainerObservation {
        ready: true,
        ..terminated(name, 0)
    }
}

fn sidecar(name: &str, started: bool) -> ContainerObservation {
    ContainerObservation {
        started: Some(started),
        ..running(name, started)
    }
}

#[test]
fn phases() {
    use Phase::*;
    struct Case {
        name: &'static str,
        spec: PodSpec,
        init: Vec<ContainerObservation>,
        containers: Vec<ContainerObservation>,
        terminal: bool,
        want: Phase,
    }
    let case = |name, spec, init, containers, want| Case {
        name,
        spec,
        init,
        containers,
        terminal: false,
        want,
    };
    let one = |policy| spec(policy, &[], &[], &["c"]);
    let two = |policy| spec(policy, &[], &[], &["a", "b"]);
    let with_init = |policy| spec(policy, &["i"], &[], &["c"]);
    let with_sidecar = |policy| spec(policy, &[], &["s"], &["c"]);
    let mut cases = vec![
        case("no status yet", one("Always"), vec![], vec![], Pending),
        case(
            "creating",
            one("Always"),
            vec![],
            vec![waiting("c", "ContainerCreating")],
            Pending,
        ),
        case(
            "image pull back-off",
            one("Always"),
            vec![],
            vec![waiting("c", "ImagePullBackOff")],
            Pending,
        ),
        case(
            "config error",
            one("Never"),
            vec![],
            vec![waiting("c", "CreateContainerConfigError")],
            Pending,
        ),
        case(
            "running",
            one("Always"),
            vec![],
            vec![running("c", true)],
            Running,
        ),
        case(
            "running and unknown",
            two("Always"),
            vec![],
            vec![running("a", true)],
            Pending,
        ),
        case(
            "running and exited",
            two("Never"),
            vec![],
            vec![running("a", true), terminated("b", 1)],
            Running,
        ),
        // e2e "Container Runtime" blackbox: rpa / rpof / rpn
        case(
            "Always: exit 1 → restarting",
            one("Always"),
            vec![],
            vec![terminated("c", 1)],
            Running,
        ),
        case(
            "Always: exit 0 → restarting",
            one("Always"),
            vec![],
            vec![terminated("c", 0)],
            Running,
        ),
        case(
            "Always: crash loop",
            one("Always"),
            vec![],
            vec![backing_off("c", 1, 3)],
            Running,
        ),
        case(
            "OnFailure: exit 0",
            one("OnFailure"),
            vec![],
            vec![terminated("c", 0)],
            Succeeded,
        ),
        case(
            "OnFailure: exit 1",
            one("OnFailure"),
            vec![],
            vec![terminated("c", 1)],
            Running,
        ),
        case(
            "OnFailure: backing off",
            one("OnFailure"),
            vec![],
            vec![backing_off("c", 1, 1)],
            Running,
        ),
        case(
            "Never: exit 0",
            one("Never"),
            vec![],
            vec![terminated("c", 0)],
            Succeeded,
        ),
        case(
            "Never: exit 1",
            one("Never"),
            vec![],
            vec![terminated("c", 1)],
            Failed,
        ),
        case(
            "Never: one failed, one succeeded",
            two("Never"),
            vec![],
            vec![terminated("a", 0), terminated("b", 2)],
            Failed,
        ),
        // init containers
        case(
            "init not started",
            with_init("Always"),
            vec![waiting("i", "PodInitializing")],
            vec![waiting("c", "PodInitializing")],
            Pending,
        ),
        case(
            "init running",
            with_init("Always"),
            vec![running("i", false)],
            vec![waiting("c", "PodInitializing")],
            Pending,
        ),
        case(
            "init failed, Never",
            with_init("Never"),
            vec![terminated("i", 1)],
            vec![waiting("c", "PodInitializing")],
            Failed,
        ),
        case(
            "init crash looping, Never (waiting with a failed last state)",
            with_init("Never"),
            vec![backing_off("i", 1, 0)],
            vec![waiting("c", "PodInitializing")],
            Failed,
        ),
        case(
            "init failed, Always: retried",
            with_init("Always"),
            vec![backing_off("i", 1, 2)],
            vec![waiting("c", "PodInitializing")],
            Pending,
        ),
        case(
            "init done, app running",
            with_init("Always"),
            vec![done_init("i")],
            vec![running("c", true)],
            Running,
        ),
        case(
            "init unknown",
            with_init("Always"),
            vec![],
            vec![running("c", true)],
            Pending,
        ),
        // sidecars
        case(
            "sidecar not started yet",
            with_sidecar("Never"),
            vec![sidecar("s", false)],
            vec![waiting("c", "PodInitializing")],
            Pending,
        ),
        case(
            "sidecar started, app running",
            with_sidecar("Never"),
            vec![sidecar("s", true)],
            vec![running("c", true)],
            Running,
        ),
        case(
            "sidecar restarting after app started",
            with_sidecar("Never"),
            vec![sidecar("s", false)],
            vec![running("c", true)],
            Running,
        ),
        case(
            "app done, sidecar still up",
            with_sidecar("Never"),
            vec![sidecar("s", true)],
            vec![terminated("c", 0)],
            Running,
        ),
        case(
            "app done, sidecar stopped",
            with_sidecar("Never"),
            vec![terminated("s", 137)],
            vec![terminated("c", 0)],
            Succeeded,
        ),
    ];
    for (name, containers, want) in [
        (
            "terminal: all exited 0",
            vec![terminated("c", 0)],
            Succeeded,
        ),
        ("terminal: killed", vec![terminated("c", 137)], Failed),
    ] {
        cases.push(Case {
            name,
            spec: one("Always"),
            init: vec![],
            containers,
            terminal: true,
            want,
        });
    }
    for c in cases {
        assert_eq!(
            pod_phase(&c.spec, &c.init, &c.containers, c.terminal, false),
            c.want,
            "{}",
            c.name
        );
    }
    // static pods are not given a terminal phase by termination
    assert_eq!(
        pod_phase(&one("Always"), &[], &[terminated("c", 0)], true, true),
        Running
    );
}

#[test]
fn reasons() {
    let cases = [
        ((0, false, false), "Completed"),
        ((1, false, false), "Error"),
        ((137, true, false), "OOMKilled"),
        ((0, true, false), "OOMKilled"),
        ((128, false, true), "StartError"),
    ];
    for ((code, oom, start), want) in cases {
        assert_eq!(runtime_terminated_reason(code, oom, start), want);
    }
    assert_eq!(default_waiting_reason(true), "PodInitializing");
    assert_eq!(default_waiting_reason(false), "ContainerCreating");
    let unknown = Terminated::status_unknown(false);
    assert_eq!(
        (unknown.exit_code, unknown.reason.as_str()),
        (137, "ContainerStatusUnknown")
    );
    assert_eq!(
        unknown.message,
        "The container could not be located when the pod was terminated"
    );
    assert_eq!(
        Terminated::status_unknown(true).message,
        "The container could not be located when the pod was deleted.  The container used to be Running"
    );
}

fn pod_of(spec: PodSpec) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("p".into()),
            namespace: Some("default".into()),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        ..Pod::default()
    }
}

type Cond = (String, String, Option<String>, Option<String>);

fn conds(list: &[PodCondition]) -> Vec<Cond> {
    list.iter()
        .map(|c| {
            (
                c.type_.clone(),
                c.status.clone(),
                c.reason.clone(),
                c.message.clone(),
            )
        })
        .collect()
}

fn c(t: &str, ok: bool, reason: Option<&str>, message: Option<&str>) -> Cond {
    (
        t.into(),
        if ok { "True" } else { "False" }.into(),
        reason.map(Into::into),
        message.map(Into::into),
    )
}

#[test]
fn conditions() {
    use Phase::*;
    let two = spec("Always", &[], &[], &["a", "b"]);
    let with_init = spec("Always", &["init-1", "init-2"], &[], &["app"]);
    struct Case {
        name: &'static str,
        spec: PodSpec,
        init: Vec<ContainerObservation>,
        containers: Vec<ContainerObservation>,
        phase: Phase,
        sandbox: bool,
        want: Vec<Cond>,
    }
    let cases = vec![
        Case {
            name: "all ready",
            spec: two.clone(),
            init: vec![],
            containers: vec![running("a", true), running("b", true)],
            phase: Running,
            sandbox: true,
            want: vec![
                c("PodReadyToStartContainers", true, None, None),
                c("Initialized", true, None, None),
                c("Ready", true, None, None),
                c("ContainersReady", true, None, None),
                c("PodScheduled", true, None, None),
            ],
        },
        Case {
            name: "unready and unknown",
            spec: spec("Always", &[], &[], &["a", "b", "c"]),
            init: vec![],
            containers: vec![running("a", false), waiting("b", "ContainerCreating")],
            phase: Pending,
            sandbox: false,
            want: vec![
                c("PodReadyToStartContainers", false, None, None),
                c("Initialized", true, None, None),
                c(
                    "Ready",
                    false,
                    Some("ContainersNotReady"),
                    Some(
                        "containers with unknown status: [c], containers with unready status: [a b]",
                    ),
                ),
                c(
                    "ContainersReady",
                    false,
                    Some("ContainersNotReady"),
                    Some(
                        "containers with unknown status: [c], containers with unready status: [a b]",
                    ),
                ),
                c("PodScheduled", true, None, None),
            ],
        },
        Case {
            name: "failed",
            spec: two.clone(),
            init: vec![],
            containers: vec![terminated("a", 1), terminated("b", 0)],
            phase: Failed,
            sandbox: false,
            want: vec![
                c("PodReadyToStartContainers", false, None, None),
                c("Initialized", true, None, None),
                c("Ready", false, Some("PodFailed"), None),
                c("ContainersReady", false, Some("PodFailed"), None),
                c("PodScheduled", true, None, None),
            ],
        },
        Case {
            name: "completed",
            spec: with_init.clone(),
            init: vec![done_init("init-1"), done_init("init-2")],
            containers: vec![terminated("app", 0)],
            phase: Succeeded,
            sandbox: false,
            want: vec![
                c("PodReadyToStartContainers", false, None, None),
                c("Initialized", true, Some("PodCompleted"), None),
                c("Ready", false, Some("PodCompleted"), None),
                c("ContainersReady", false, Some("PodCompleted"), None),
                c("PodScheduled", true, None, None),
            ],
        },
        Case {
            name: "initializing",
            spec: with_init.clone(),
            init: vec![done_init("init-1"), running("init-2", false)],
            containers: vec![waiting("app", "PodInitializing")],
            phase: Pending,
            sandbox: true,
            want: vec![
                c("PodReadyToStartContainers", true, None, None),
                c(
                    "Initialized",
                    false,
                    Some("ContainersNotInitialized"),
                    Some("containers with incomplete status: [init-2]"),
                ),
                c(
                    "Ready",
                    false,
                    Some("ContainersNotReady"),
                    Some("containers with unready status: [app]"),
                ),
                c(
                    "ContainersReady",
                    false,
                    Some("ContainersNotReady"),
                    Some("containers with unready status: [app]"),
                ),
                c("PodScheduled", true, None, None),
            ],
        },
        Case {
            name: "no statuses at all",
            spec: with_init.clone(),
            init: vec![],
            containers: vec![],
            phase: Pending,
            sandbox: false,
            want: vec![
                c("PodReadyToStartContainers", false, None, None),
                c("Initialized", false, Some("UnknownContainerStatuses"), None),
                c("Ready", false, Some("UnknownContainerStatuses"), None),
                c(
                    "ContainersReady",
                    false,
                    Some("UnknownContainerStatuses"),
                    None,
                ),
                c("PodScheduled", true, None, None),
            ],
        },
    ];
    for case in cases {
        let pod = pod_of(case.spec);
        let got = pod_conditions(&pod, &case.init, &case.containers, case.phase, case.sandbox);
        assert_eq!(conds(&got), case.want, "{}", case.name);
    }
}

#[test]
fn readiness_gates() {
    let mut pod = pod_of(spec("Always", &[], &[], &["a"]));
    pod.spec.as_mut().unwrap().readiness_gates = Some(vec![
        PodReadinessGate {
            condition_type: "k8s.io/test-condition1".into(),
        },
        PodReadinessGate {
            condition_type: "k8s.io/test-condition2".into(),
        },
    ]);
    let gate = |t: &str, s: &str| PodCondition {
        type_: t.into(),
        status: s.into(),
        ..PodCondition::default()
    };
    let cases = vec![
        (
            vec![],
            c(
                "Ready",
                false,
                Some("ReadinessGatesNotReady"),
                Some(
                    "corresponding condition of pod readiness gate \"k8s.io/test-condition1\" does not exist., corresponding condition of pod readiness gate \"k8s.io/test-condition2\" does not exist.",
                ),
            ),
        ),
        (
            vec![
                gate("k8s.io/test-condition1", "True"),
                gate("k8s.io/test-condition2", "False"),
            ],
            c(
                "Ready",
                false,
                Some("ReadinessGatesNotReady"),
                Some(
                    "the status of pod readiness gate \"k8s.io/test-condition2\" is not \"True\", but False",
                ),
            ),
        ),
        (
            vec![
                gate("k8s.io/test-condition1", "True"),
                gate("k8s.io/test-condition2", "True"),
            ],
            c("Ready", true, None, None),
        ),
    ];
    for (existing, want) in cases {
        pod.status = Some(PodStatus {
            conditions: Some(existing),
            ..PodStatus::default()
        });
        let got = pod_conditions(&pod, &[], &[running("a", true)], Phase::Running, true);
        assert_eq!(conds(&got[2..3]), vec![want]);
        // ContainersReady ignores the gates
        assert_eq!(got[3].status, "True");
    }
}

#[test]
fn merging_keeps_transition_times() {
    let old = vec![
        PodCondition {
            type_: "k8s.io/gate".into(),
            status: "True".into(),
            ..PodCondition::default()
        },
        PodCondition {
            type_: "Ready".into(),
            status: "False".into(),
            last_transition_time: Some(Time(ts(10))),
            ..PodCondition::default()
        },
        PodCondition {
            type_: "PodScheduled".into(),
            status: "True".into(),
            last_transition_time: Some(Time(ts(1))),
            ..PodCondition::default()
        },
    ];
    let generated = vec![
        cond("Ready", true, None, None),
        cond("PodScheduled", true, None, None),
        cond("Initialized", true, None, None),
    ];
    let merged = merge_conditions(&old, generated, ts(99));
    let summary: Vec<(&str, Option<Timestamp>)> = merged
        .iter()
        .map(|c| {
            (
                c.type_.as_str(),
                c.last_transition_time.as_ref().map(|t| t.0),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("k8s.io/gate", None),
            ("Ready", Some(ts(99))),
            ("PodScheduled", Some(ts(1))),
            ("Initialized", Some(ts(99))),
        ]
    );
}

#[test]
fn api_container_status() {
    let obs = ContainerObservation {
        last_termination: Some(Terminated {
            container_id: Some("containerd://old".into()),
            ..exited(1)
        }),
        restart_count: 1,
        ..running("c", true)
    };
    let api = obs.to_api(
        "busybox:1.36",
        "docker.io/library/busybox@sha256:ab",
        Some("containerd://new"),
    );
    assert_eq!(api.name, "c");
    assert!(api.ready);
    assert_eq!(api.restart_count, 1);
    assert_eq!(
        api.state
            .as_ref()
            .unwrap()
            .running
            .as_ref()
            .unwrap()
            .started_at,
        Some(Time(ts(0)))
    );
    let last = api
        .last_state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
    assert_eq!(last.message, None);
    assert_eq!(api.container_id.as_deref(), Some("containerd://new"));
    let w = waiting("c", "ContainerCreating").to_api("i", "", None);
    let ws = w.state.unwrap().waiting.unwrap();
    assert_eq!(
        (ws.reason.as_deref(), ws.message),
        (Some("ContainerCreating"), None)
    );
}

/// A pod as the API shows it, for the kubectl column.
struct ApiPod {
    spec: PodSpec,
    phase: &'static str,
    reason: Option<&'static str>,
    init: Vec<ContainerObservation>,
    containers: Vec<ContainerObservation>,
    conditions: Vec<(&'static str, bool)>,
    deleting: bool,
}

impl ApiPod {
    fn new(spec: PodSpec, phase: &'static str, containers: Vec<ContainerObservation>) -> ApiPod {
        ApiPod {
            spec,
            phase,
            reason: None,
            init: vec![],
            containers,
            conditions: vec![],
            deleting: false,
        }
    }

    fn build(&self) -> Pod {
        let to_api = |o: &ContainerObservation| o.to_api("img", "", None);
        let mut pod = pod_of(self.spec.clone());
        if self.deleting {
            pod.metadata.deletion_timestamp = Some(Time(ts(5)));
        }
        pod.status = Some(PodStatus {
            phase: Some(self.phase.into()),
            reason: self.reason.map(Into::into),
            init_container_statuses: Some(self.init.iter().map(to_api).collect()),
            container_statuses: Some(self.containers.iter().map(to_api).collect()),
            conditions: Some(
                self.conditions
                    .iter()
                    .map(|(t, ok)| cond(t, *ok, None, None))
                    .collect(),
            ),
            ..PodStatus::default()
        });
        pod
    }
}

fn with_signal(name: &str, code: i32, signal: Option<i32>) -> ContainerObservation {
    ContainerObservation {
        state: State::Terminated(Terminated {
            exit_code: code,
            signal,
            ..Terminated::default()
        }),
        ..waiting(name, "")
    }
}

#[test]
fn kubectl_status_column() {
    let one = spec("Always", &[], &[], &["c"]);
    let with_init = spec("Always", &["i"], &[], &["c"]);
    let with_sidecar = spec("Always", &[], &["s"], &["c"]);
    let mut cases: Vec<(&str, ApiPod, &str, &str, i32)> = vec![
        (
            "pending",
            ApiPod::new(one.clone(), "Pending", vec![]),
            "Pending",
            "0/1",
            0,
        ),
        (
            "creating",
            ApiPod::new(
                one.clone(),
                "Pending",
                vec![waiting("c", "ContainerCreating")],
            ),
            "ContainerCreating",
            "0/1",
            0,
        ),
        (
            "running",
            ApiPod::new(one.clone(), "Running", vec![running("c", true)]),
            "Running",
            "1/1",
            0,
        ),
        (
            "running unready",
            ApiPod::new(one.clone(), "Running", vec![running("c", false)]),
            "Running",
            "0/1",
            0,
        ),
        (
            "crash loop",
            ApiPod::new(one.clone(), "Running", vec![backing_off("c", 1, 3)]),
            "CrashLoopBackOff",
            "0/1",
            3,
        ),
        (
            "image pull back-off",
            ApiPod::new(
                one.clone(),
                "Pending",
                vec![waiting("c", "ImagePullBackOff")],
            ),
            "ImagePullBackOff",
            "0/1",
            0,
        ),
        (
            "config error",
            ApiPod::new(
                one.clone(),
                "Pending",
                vec![waiting("c", "CreateContainerConfigError")],
            ),
            "CreateContainerConfigError",
            "0/1",
            0,
        ),
        (
            "completed",
            ApiPod::new(one.clone(), "Succeeded", vec![terminated("c", 0)]),
            "Completed",
            "0/1",
            0,
        ),
        (
            "error",
            ApiPod::new(one.clone(), "Failed", vec![terminated("c", 1)]),
            "Error",
            "0/1",
            0,
        ),
        (
            "exit code without reason",
            ApiPod::new(one.clone(), "Failed", vec![with_signal("c", 2, None)]),
            "ExitCode:2",
            "0/1",
            0,
        ),
        (
            "signal without reason",
            ApiPod::new(one.clone(), "Failed", vec![with_signal("c", 137, Some(9))]),
            "Signal:9",
            "0/1",
            0,
        ),
    ];

    let mut p = ApiPod::new(
        with_init.clone(),
        "Pending",
        vec![waiting("c", "PodInitializing")],
    );
    p.init = vec![waiting("i", "PodInitializing")];
    cases.push(("init not started", p, "Init:0/1", "0/1", 0));
    let mut p = ApiPod::new(
        with_init.clone(),
        "Pending",
        vec![waiting("c", "PodInitializing")],
    );
    p.init = vec![running("i", false)];
    cases.push(("init running", p, "Init:0/1", "0/1", 0));
    let mut p = ApiPod::new(
        with_init.clone(),
        "Pending",
        vec![waiting("c", "PodInitializing")],
    );
    p.init = vec![backing_off("i", 1, 2)];
    cases.push(("init crash loop", p, "Init:CrashLoopBackOff", "0/1", 2));
    let mut p = ApiPod::new(
        with_init.clone(),
        "Failed",
        vec![waiting("c", "PodInitializing")],
    );
    p.init = vec![terminated("i", 1)];
    cases.push(("init failed", p, "Init:Error", "0/1", 0));
    let mut p = ApiPod::new(
        with_init.clone(),
        "Failed",
        vec![waiting("c", "PodInitializing")],
    );
    p.init = vec![with_signal("i", 3, None)];
    cases.push(("init exit code", p, "Init:ExitCode:3", "0/1", 0));
    let mut p = ApiPod::new(
        with_init.clone(),
        "Failed",
        vec![waiting("c", "PodInitializing")],
    );
    p.init = vec![with_signal("i", 137, Some(9))];
    cases.push(("init signal", p, "Init:Signal:9", "0/1", 0));
    let mut p = ApiPod::new(
        with_init.clone(),
        "Pending",
        vec![waiting("c", "PodInitializing")],
    );
    p.init = vec![done_init("i")];
    cases.push((
        "initialized, app not started",
        p,
        "PodInitializing",
        "0/1",
        0,
    ));

    let mut p = ApiPod::new(
        spec("Always", &[], &[], &["a", "b"]),
        "Running",
        vec![terminated("a", 0), running("b", true)],
    );
    p.conditions = vec![("Ready", true)];
    cases.push((
        "completed with a running container, ready",
        p,
        "Running",
        "1/2",
        0,
    ));
    let p = ApiPod::new(
        spec("Always", &[], &[], &["a", "b"]),
        "Running",
        vec![terminated("a", 0), running("b", true)],
    );
    cases.push((
        "completed with a running container, not ready",
        p,
        "NotReady",
        "1/2",
        0,
    ));

    let mut p = ApiPod::new(with_sidecar.clone(), "Running", vec![running("c", true)]);
    p.init = vec![sidecar("s", true)];
    cases.push(("sidecar counts as a container", p, "Running", "2/2", 0));

    let mut p = ApiPod::new(one.clone(), "Running", vec![running("c", true)]);
    p.deleting = true;
    cases.push(("terminating", p, "Terminating", "1/1", 0));
    let mut p = ApiPod::new(one.clone(), "Succeeded", vec![terminated("c", 0)]);
    p.deleting = true;
    cases.push(("deleted after completing", p, "Completed", "0/1", 0));
    let mut p = ApiPod::new(one.clone(), "Running", vec![running("c", true)]);
    p.deleting = true;
    p.reason = Some("NodeLost");
    cases.push(("node lost", p, "Unknown", "1/1", 0));
    let mut p = ApiPod::new(one.clone(), "Failed", vec![]);
    p.reason = Some("Evicted");
    cases.push(("evicted", p, "Evicted", "0/1", 0));
    let mut p = ApiPod::new(
        one.clone(),
        "Failed",
        vec![waiting("c", "CreatePodSandboxError")],
    );
    p.reason = Some("CreatePodSandboxError");
    cases.push((
        "missing RuntimeClass handler",
        p,
        "CreatePodSandboxError",
        "0/1",
        0,
    ));

    for (name, pod, status, ready, restarts) in cases {
        let row = kubectl_row(&pod.build());
        assert_eq!(
            (row.status.as_str(), row.ready.as_str(), row.restarts),
            (status, ready, restarts),
            "{name}"
        );
    }
}
