use super::*;
use nodelet_api::k8s::ByteString;
use nodelet_api::k8s::api::core::v1::{
    ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVar, ObjectFieldSelector, PodSpec,
    ResourceFieldSelector, ResourceRequirements, SecretEnvSource, SecretKeySelector, ServicePort,
    ServiceSpec,
};
use nodelet_api::k8s::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn meta(ns: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(ns.into()),
        ..ObjectMeta::default()
    }
}

fn config_map(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: meta("app", name),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..ConfigMap::default()
    }
}

fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: meta("app", name),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Secret::default()
    }
}

fn service(ns: &str, name: &str, ip: &str, port: i32) -> Service {
    Service {
        metadata: meta(ns, name),
        spec: Some(ServiceSpec {
            cluster_ip: Some(ip.into()),
            ports: Some(vec![ServicePort {
                port,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn val(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn from(name: &str, source: EnvVarSource) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(source),
    }
}

fn cm_key(name: &str, key: &str, optional: Option<bool>) -> EnvVarSource {
    EnvVarSource {
        config_map_key_ref: Some(ConfigMapKeySelector {
            name: name.into(),
            key: key.into(),
            optional,
        }),
        ..EnvVarSource::default()
    }
}

fn secret_key(name: &str, key: &str, optional: Option<bool>) -> EnvVarSource {
    EnvVarSource {
        secret_key_ref: Some(SecretKeySelector {
            name: name.into(),
            key: key.into(),
            optional,
        }),
        ..EnvVarSource::default()
    }
}

fn field(path: &str) -> EnvVarSource {
    EnvVarSource {
        field_ref: Some(ObjectFieldSelector {
            api_version: Some("v1".into()),
            field_path: path.into(),
        }),
        ..EnvVarSource::default()
    }
}

fn env_from_cm(name: &str, prefix: Option<&str>, optional: Option<bool>) -> EnvFromSource {
    EnvFromSource {
        config_map_ref: Some(ConfigMapEnvSource {
            name: name.into(),
            optional,
        }),
        prefix: prefix.map(Into::into),
        secret_ref: None,
    }
}

fn env_from_secret(name: &str, prefix: Option<&str>, optional: Option<bool>) -> EnvFromSource {
    EnvFromSource {
        secret_ref: Some(SecretEnvSource {
            name: name.into(),
            optional,
        }),
        prefix: prefix.map(Into::into),
        config_map_ref: None,
    }
}

fn pod(env: Vec<EnvVar>, env_from: Vec<EnvFromSource>, links: Option<bool>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            uid: Some("uid-1".into()),
            ..meta("app", "dapi-test-pod")
        },
        spec: Some(PodSpec {
            enable_service_links: links,
            node_name: Some("node-1".into()),
            containers: vec![Container {
                name: "dapi-container".into(),
                env: Some(env),
                env_from: Some(env_from),
                resources: Some(ResourceRequirements::default()),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

fn sources() -> StaticSources {
    let mut s = StaticSources::new()
        .with_config_map(config_map(
            "configmap-test",
            &[
                ("data-1", "value-1"),
                ("data-2", "value-2"),
                ("data-3", "value-3"),
            ],
        ))
        .with_config_map(config_map("override", &[("data-1", "overridden")]))
        .with_config_map(config_map(
            "bad-keys",
            &[("1badkey", "x"), ("good", "y"), ("a=b", "z")],
        ))
        .with_secret(secret(
            "secret-test",
            &[("data-1", "value-1"), ("password", "s3cr3t")],
        ))
        .with_service(service("default", "kubernetes", "10.96.0.1", 443))
        .with_service(service("app", "fooservice", "10.96.0.20", 8765))
        .with_service(service("other", "hidden", "10.96.0.30", 80));
    s.pod_ips = vec!["10.244.1.7".into()];
    s.host_ips = vec!["192.168.1.10".into()];
    s.allocatable = [("cpu", "4"), ("memory", "8Gi")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), ApiQuantity(v.to_owned())))
        .collect();
    s
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// The user's variables: the kubelet list without the service variables appended after them.
fn user_vars(env: &Environment) -> Vec<(String, String)> {
    let all = sources();
    let ServiceList::Listed(services) = all.services() else {
        unreachable!()
    };
    let service_names: Vec<String> = crate::service_env::service_env_vars("app", true, &services)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let tail = env
        .kubelet
        .iter()
        .rev()
        .take_while(|(k, _)| service_names.contains(k))
        .count();
    env.kubelet[..env.kubelet.len() - tail].to_vec()
}

fn make(pod: &Pod, image_env: &[&str], sources: &StaticSources) -> Result<Environment, EnvError> {
    let image_env: Vec<String> = image_env.iter().map(|s| s.to_string()).collect();
    make_environment(
        pod,
        &pod.spec.as_ref().unwrap().containers[0],
        &image_env,
        sources,
    )
}

#[test]
fn user_variables() {
    struct Case {
        name: &'static str,
        env: Vec<EnvVar>,
        env_from: Vec<EnvFromSource>,
        want: Vec<(String, String)>,
    }
    let cases = vec![
        Case {
            name: "e2e: composing env vars into new env vars",
            env: vec![
                val("FOO", "foo-value"),
                val("BAR", "bar-value"),
                val("FOOBAR", "$(FOO);;$(BAR)"),
            ],
            env_from: vec![],
            want: pairs(&[
                ("FOO", "foo-value"),
                ("BAR", "bar-value"),
                ("FOOBAR", "foo-value;;bar-value"),
            ]),
        },
        Case {
            name: "forward references and undefined stay literal, escapes",
            env: vec![
                val("A", "$(B)-$(NOPE)"),
                val("B", "b"),
                val("C", "$$(B) $$$(B)"),
            ],
            env_from: vec![],
            want: pairs(&[("A", "$(B)-$(NOPE)"), ("B", "b"), ("C", "$(B) $b")]),
        },
        Case {
            name: "expansion sees service variables, user variables first",
            env: vec![
                val(
                    "SVC",
                    "$(FOOSERVICE_SERVICE_HOST):$(FOOSERVICE_SERVICE_PORT)",
                ),
                val("KUBERNETES_SERVICE_PORT", "1"),
                val("K", "$(KUBERNETES_SERVICE_PORT)"),
            ],
            env_from: vec![],
            want: pairs(&[
                ("SVC", "10.96.0.20:8765"),
                ("KUBERNETES_SERVICE_PORT", "1"),
                ("K", "1"),
            ]),
        },
        Case {
            name: "e2e: configmap consumable via the environment, with a prefix",
            env: vec![],
            env_from: vec![
                env_from_cm("configmap-test", None, None),
                env_from_cm("configmap-test", Some("p-"), None),
            ],
            want: pairs(&[
                ("data-1", "value-1"),
                ("data-2", "value-2"),
                ("data-3", "value-3"),
                ("p-data-1", "value-1"),
                ("p-data-2", "value-2"),
                ("p-data-3", "value-3"),
            ]),
        },
        Case {
            name: "later envFrom overrides earlier, env overrides envFrom in place",
            env: vec![val("data-2", "from-env"), val("data-2", "last-env")],
            env_from: vec![
                env_from_cm("configmap-test", None, None),
                env_from_cm("override", None, None),
                env_from_secret("secret-test", Some("S_"), None),
            ],
            want: pairs(&[
                ("data-1", "overridden"),
                ("data-2", "last-env"),
                ("data-3", "value-3"),
                ("S_data-1", "value-1"),
                ("S_password", "s3cr3t"),
            ]),
        },
        Case {
            name: "e2e: configmap and secret keys as env vars",
            env: vec![
                from("CONFIG_DATA_1", cm_key("configmap-test", "data-1", None)),
                from("SECRET_DATA", secret_key("secret-test", "data-1", None)),
            ],
            env_from: vec![],
            want: pairs(&[("CONFIG_DATA_1", "value-1"), ("SECRET_DATA", "value-1")]),
        },
        Case {
            name: "valueFrom is not expanded; empty value and no source is empty",
            env: vec![
                val("X", "x"),
                from("LITERAL", cm_key("raw", "v", None)),
                EnvVar {
                    name: "EMPTY".into(),
                    value: Some(String::new()),
                    value_from: None,
                },
            ],
            env_from: vec![],
            want: pairs(&[("X", "x"), ("LITERAL", "$(X)"), ("EMPTY", "")]),
        },
        Case {
            name: "optional missing objects and keys leave the variable out",
            env: vec![
                val("KEEP", "kept"),
                from("KEEP", cm_key("nope", "k", Some(true))),
                from("A", cm_key("configmap-test", "nope", Some(true))),
                from("B", secret_key("nope", "k", Some(true))),
                from("C", secret_key("secret-test", "nope", Some(true))),
            ],
            env_from: vec![
                env_from_cm("nope", None, Some(true)),
                env_from_secret("nope", None, Some(true)),
            ],
            want: pairs(&[("KEEP", "kept")]),
        },
        Case {
            name: "downward API",
            env: vec![
                from("POD_NAME", field("metadata.name")),
                from("POD_NAMESPACE", field("metadata.namespace")),
                from("POD_UID", field("metadata.uid")),
                from("POD_IP", field("status.podIP")),
                from("HOST_IP", field("status.hostIP")),
                from("NODE", field("spec.nodeName")),
                from(
                    "CPU_LIMIT",
                    EnvVarSource {
                        resource_field_ref: Some(ResourceFieldSelector {
                            resource: "limits.cpu".into(),
                            ..ResourceFieldSelector::default()
                        }),
                        ..EnvVarSource::default()
                    },
                ),
            ],
            env_from: vec![],
            want: pairs(&[
                ("POD_NAME", "dapi-test-pod"),
                ("POD_NAMESPACE", "app"),
                ("POD_UID", "uid-1"),
                ("POD_IP", "10.244.1.7"),
                ("HOST_IP", "192.168.1.10"),
                ("NODE", "node-1"),
                ("CPU_LIMIT", "4"),
            ]),
        },
    ];
    let sources = sources().with_config_map(config_map("raw", &[("v", "$(X)")]));
    for case in cases {
        let pod = pod(case.env, case.env_from, Some(true));
        let env = make(&pod, &[], &sources).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(user_vars(&env), case.want, "{}", case.name);
        assert!(env.warnings.is_empty(), "{}", case.name);
    }
}

#[test]
fn missing_references_give_upstream_errors() {
    let cases: Vec<(Vec<EnvVar>, Vec<EnvFromSource>, &str)> = vec![
        (
            vec![],
            vec![env_from_cm("x", None, None)],
            r#"configmap "x" not found"#,
        ),
        (
            vec![],
            vec![env_from_cm("x", None, Some(false))],
            r#"configmap "x" not found"#,
        ),
        (
            vec![],
            vec![env_from_secret("s", None, None)],
            r#"secret "s" not found"#,
        ),
        (
            vec![from("A", cm_key("x", "k", None))],
            vec![],
            r#"configmap "x" not found"#,
        ),
        (
            vec![from("A", secret_key("s", "k", None))],
            vec![],
            r#"secret "s" not found"#,
        ),
        (
            vec![from("A", cm_key("configmap-test", "k", None))],
            vec![],
            "couldn't find key k in ConfigMap app/configmap-test",
        ),
        (
            vec![from("A", secret_key("secret-test", "k", Some(false)))],
            vec![],
            "couldn't find key k in Secret app/secret-test",
        ),
        (
            vec![from("A", field("spec.containers"))],
            vec![],
            "field label not supported: spec.containers",
        ),
    ];
    for (env, env_from, want) in cases {
        let pod = pod(env, env_from, Some(true));
        let err = make(&pod, &[], &sources()).unwrap_err();
        assert_eq!(err.to_string(), want);
    }
}

#[test]
fn service_variables_and_links() {
    let env = make(&pod(vec![], vec![], Some(true)), &[], &sources()).unwrap();
    let names: Vec<&str> = env.kubelet.iter().map(|(k, _)| k.as_str()).collect();
    for want in [
        "FOOSERVICE_SERVICE_HOST",
        "FOOSERVICE_SERVICE_PORT",
        "FOOSERVICE_PORT",
        "FOOSERVICE_PORT_8765_TCP_PORT",
        "FOOSERVICE_PORT_8765_TCP_PROTO",
        "FOOSERVICE_PORT_8765_TCP",
        "FOOSERVICE_PORT_8765_TCP_ADDR",
        "KUBERNETES_SERVICE_HOST",
    ] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    assert!(!names.iter().any(|n| n.starts_with("HIDDEN_")));

    let env = make(&pod(vec![], vec![], Some(false)), &[], &sources()).unwrap();
    assert!(
        env.kubelet
            .iter()
            .all(|(k, _)| k.starts_with("KUBERNETES_"))
    );
    assert_eq!(env.kubelet.len(), 7);

    // a user variable shadows the service one, and comes first
    let env = make(
        &pod(
            vec![val("KUBERNETES_SERVICE_HOST", "mine")],
            vec![],
            Some(false),
        ),
        &[],
        &sources(),
    )
    .unwrap();
    assert_eq!(
        env.kubelet[0],
        ("KUBERNETES_SERVICE_HOST".into(), "mine".into())
    );
    assert_eq!(
        env.kubelet
            .iter()
            .filter(|(k, _)| k == "KUBERNETES_SERVICE_HOST")
            .count(),
        1
    );

    // no API server: no service variables at all
    let env = make(&pod(vec![], vec![], Some(true)), &[], &StaticSources::new()).unwrap();
    assert!(env.kubelet.is_empty());
}

struct Unsynced;
impl EnvSources for Unsynced {
    fn config_map(&self, _: &str, _: &str) -> Result<Option<Cow<'_, ConfigMap>>, SourceError> {
        Err(SourceError("configmaps \"x\" is forbidden".into()))
    }
    fn secret(&self, _: &str, _: &str) -> Result<Option<Cow<'_, Secret>>, SourceError> {
        Ok(None)
    }
    fn services(&self) -> ServiceList<'_> {
        ServiceList::NotYetSynced
    }
    fn node_allocatable(&self) -> Cow<'_, BTreeMap<String, ApiQuantity>> {
        Cow::Owned(BTreeMap::new())
    }
    fn pod_ips(&self) -> Cow<'_, [String]> {
        Cow::Owned(vec![])
    }
    fn host_ips(&self) -> Result<Cow<'_, [String]>, SourceError> {
        Err(SourceError("node \"n\" not found".into()))
    }
}

#[test]
fn preconditions_and_source_errors() {
    let err = make(&pod(vec![], vec![], None), &[], &sources()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "nil pod.spec.enableServiceLinks encountered, cannot construct envvars"
    );

    let p = pod(vec![], vec![], Some(true));
    let c = &p.spec.as_ref().unwrap().containers[0];
    let err = make_environment(&p, c, &[], &Unsynced).unwrap_err();
    assert_eq!(
        err.to_string(),
        "services have not yet been read at least once, cannot construct envvars"
    );

    // static pods do not wait for Services
    let mut p = pod(vec![from("H", field("status.hostIP"))], vec![], Some(true));
    p.metadata.annotations =
        Some([("kubernetes.io/config.source".to_owned(), "file".to_owned())].into());
    let c = p.spec.as_ref().unwrap().containers[0].clone();
    let err = make_environment(&p, &c, &[], &Unsynced).unwrap_err();
    assert_eq!(err.to_string(), "node \"n\" not found");

    let mut p = pod(vec![], vec![env_from_cm("x", None, Some(true))], Some(true));
    p.metadata.annotations =
        Some([("kubernetes.io/config.source".to_owned(), "file".to_owned())].into());
    let c = p.spec.as_ref().unwrap().containers[0].clone();
    // a lookup error is not "not found": optional does not excuse it
    let err = make_environment(&p, &c, &[], &Unsynced).unwrap_err();
    assert_eq!(err.to_string(), "configmaps \"x\" is forbidden");
}

#[test]
fn invalid_env_from_keys_are_skipped_with_a_warning() {
    let env = make(
        &pod(
            vec![],
            vec![env_from_cm("bad-keys", None, None)],
            Some(true),
        ),
        &[],
        &sources(),
    )
    .unwrap();
    // the relaxed grammar (GA in 1.34) accepts a leading digit; `=` can never be in a name
    assert_eq!(user_vars(&env), pairs(&[("1badkey", "x"), ("good", "y")]));
    assert_eq!(
        env.warnings,
        vec![EnvWarning {
            reason: "InvalidEnvironmentVariableNames",
            message: "Keys [a=b] from the EnvFrom configMap app/bad-keys were skipped since they are considered invalid environment variable names.".into(),
        }]
    );
    let w = EnvWarning::invalid_keys(
        "secret",
        "default",
        "mysecret",
        vec!["2alsobad".into(), "1badkey".into()],
    );
    assert_eq!(
        w.message,
        "Keys [1badkey, 2alsobad] from the EnvFrom secret default/mysecret were skipped since they are considered invalid environment variable names."
    );
}

#[test]
fn process_environment_overlays_the_image_env() {
    let pod = pod(
        vec![val("PATH", "/custom"), val("NEW", "n"), val("P", "$(PATH)")],
        vec![],
        Some(false),
    );
    let env = make(
        &pod,
        &[
            "PATH=/usr/bin:/bin",
            "LANG=C.UTF-8",
            "BROKEN",
            "KUBERNETES_SERVICE_HOST=img",
        ],
        &sources(),
    )
    .unwrap();
    // $(PATH) refers to the user PATH defined before it, never to the image's
    assert_eq!(env.kubelet[2], ("P".into(), "/custom".into()));
    let process = env.process_strings();
    assert_eq!(
        &process[..5],
        &[
            "PATH=/custom",
            "LANG=C.UTF-8",
            "KUBERNETES_SERVICE_HOST=10.96.0.1",
            "NEW=n",
            "P=/custom",
        ]
    );
    // PATH, LANG, KUBERNETES_SERVICE_HOST (image order), NEW, P, six more KUBERNETES_ ones
    assert_eq!(process.len(), 11);

    let image_only = make(&pod_with_no_env(), &["A=1", "B=2"], &StaticSources::new()).unwrap();
    assert_eq!(image_only.process, pairs(&[("A", "1"), ("B", "2")]));
}

fn pod_with_no_env() -> Pod {
    pod(vec![], vec![], Some(true))
}

#[test]
fn hostname_goes_under_everything() {
    let env = pairs(&[("A", "1")]);
    assert_eq!(
        with_hostname("web-0", env.clone()),
        pairs(&[("HOSTNAME", "web-0"), ("A", "1")])
    );
    let own = pairs(&[("HOSTNAME", "mine")]);
    assert_eq!(with_hostname("web-0", own.clone()), own);
}

#[test]
fn static_sources_fold_string_data_and_default_namespace() {
    let s = StaticSources::new().with_secret(Secret {
        metadata: ObjectMeta {
            name: Some("s".into()),
            ..ObjectMeta::default()
        },
        string_data: Some([("k".to_owned(), "v".to_owned())].into()),
        ..Secret::default()
    });
    let secret = s.secret("default", "s").unwrap().unwrap();
    assert_eq!(secret.data.as_ref().unwrap()["k"].0, b"v");
    assert!(s.secret("other", "s").unwrap().is_none());
}
