//! The pure parts of container lifecycle hooks (spec §7; the seed's "Hooks de Ciclo de Vida do
//! Contêiner"): failure texts, the `httpGet` request a hook makes, and how
//! `terminationGracePeriodSeconds` is shared between PreStop and the stop signal.
//!
//! Events deliberately carry no details (`PostStartHook failed`, `PreStopHook failed`) so a
//! hook's output cannot leak secrets into events; the detailed text ([`HookFailure::message`])
//! goes to the container's waiting message (`PostStartHookError`) and the log.

use std::time::Duration;

use nodelet_api::field_errors::go_quote;
use nodelet_api::k8s::api::core::v1::{Container, HTTPGetAction, LifecycleHandler, Pod};
use nodelet_api::k8s::apimachinery::pkg::util::intstr::IntOrString;

use crate::events::{Event, KillReason, format_pod, reason};
use crate::service_env::join_host_port;

/// The `FailedPostStartHook` Warning (the container is then killed with a `Killing` event whose
/// message is `FailedPostStartHook`).
pub fn failed_post_start_hook() -> Event {
    Event::warning(reason::FAILED_POST_START_HOOK, "PostStartHook failed")
}

/// The `FailedPreStopHook` Warning.
pub fn failed_pre_stop_hook() -> Event {
    Event::warning(reason::FAILED_PRE_STOP_HOOK, "PreStopHook failed")
}

/// The waiting reason of a container whose PostStart hook failed.
pub const POST_START_HOOK_ERROR: &str = "PostStartHookError";

/// What a sleep hook reports when the container is stopped first.
pub const SLEEP_INTERRUPTED: &str = "container terminated before sleep hook finished";

/// A hook that failed, with what the handler saw.
#[derive(Debug, Clone, PartialEq)]
pub enum HookFailure<'a> {
    /// The command exited non-zero or could not run; `output` is stdout then stderr.
    Exec {
        command: &'a [String],
        error: &'a str,
        output: &'a str,
    },
    /// The request failed in transport (HTTP status codes never fail a hook).
    Http {
        path: &'a str,
        error: &'a str,
    },
    Sleep {
        seconds: i64,
        error: &'a str,
    },
    /// No handler the kubelet runs (`tcpSocket` is accepted by the API but never run).
    Invalid {
        handler: &'a LifecycleHandler,
    },
}

impl HookFailure<'_> {
    /// The handler runner's message, e.g. `Exec lifecycle hook ([sh -c exit 1]) for Container
    /// "main" in Pod "web_default(uid)" failed - error: command 'sh -c exit 1' exited with 1: ,
    /// message: ""`.
    pub fn message(&self, container_name: &str, pod: &Pod) -> String {
        let tail = format!(
            "for Container {} in Pod {} failed - error:",
            go_quote(container_name),
            go_quote(&format_pod(pod))
        );
        match self {
            HookFailure::Exec {
                command,
                error,
                output,
            } => format!(
                "Exec lifecycle hook ([{}]) {tail} {error}, message: {}",
                command.join(" "),
                go_quote(output)
            ),
            HookFailure::Http { path, error } => {
                format!("HTTP lifecycle hook ({path}) {tail} {error}")
            }
            HookFailure::Sleep { seconds, error } => {
                format!("Sleep lifecycle hook ({seconds}) {tail} {error}")
            }
            HookFailure::Invalid { handler } => {
                format!(
                    "Cannot run handler: invalid handler: {}",
                    go_handler(handler)
                )
            }
        }
    }
}

/// The error of an exec whose command exited non-zero, as the CRI client words it.
pub fn exec_exit_error(command: &[String], exit_code: i32, stderr: &str) -> String {
    format!(
        "command '{}' exited with {exit_code}: {stderr}",
        command.join(" ")
    )
}

/// Go's `%v` of a `*LifecycleHandler` (generated `String()`), enough for the `tcpSocket` case
/// that reaches it (M: layout from the generated code's pattern).
fn go_handler(handler: &LifecycleHandler) -> String {
    let tcp = match &handler.tcp_socket {
        None => "nil".to_owned(),
        Some(t) => format!(
            "&TCPSocketAction{{Port:{},Host:{},}}",
            go_int_or_string(&t.port),
            t.host.as_deref().unwrap_or("")
        ),
    };
    let set = |present: bool, name: &str| {
        if present {
            format!("&{name}{{...}}")
        } else {
            "nil".to_owned()
        }
    };
    format!(
        "&LifecycleHandler{{Exec:{},HTTPGet:{},TCPSocket:{tcp},Sleep:{},}}",
        set(handler.exec.is_some(), "ExecAction"),
        set(handler.http_get.is_some(), "HTTPGetAction"),
        set(handler.sleep.is_some(), "SleepAction"),
    )
}

fn go_int_or_string(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => format!("{{0 {i} }}"),
        IntOrString::String(s) => format!("{{1 0 {s}}}"),
    }
}

/// Why an `httpGet` hook (or probe) request could not be formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpTargetError {
    /// No `host` and the sandbox has no IP yet.
    #[error("failed to find networking container: the pod has no IP address")]
    NoPodIp,
    #[error("invalid port number: {0}")]
    InvalidPort(i64),
    /// A port string that names no container port and is not a number (Go's `strconv.Atoi`
    /// error is what upstream reports).
    #[error("strconv.Atoi: parsing {}: invalid syntax", go_quote(.0))]
    PortSyntax(String),
    #[error("strconv.Atoi: parsing {}: value out of range", go_quote(.0))]
    PortRange(String),
}

/// The request an `httpGet` handler makes: always `GET`, TLS unverified for `https`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// `scheme://host:port` + path (query included), IPv6 hosts in brackets.
    pub url: String,
    pub scheme: String,
    pub host: String,
    pub port: u16,
    /// The request's `Host` (from a `Host` header), when it differs from the URL's.
    pub host_header: Option<String>,
    /// Headers in order, names canonical (`x-custom` → `X-Custom`), `User-Agent` and `Accept`
    /// defaulted; without `Host`.
    pub headers: Vec<(String, String)>,
}

/// `kube-<purpose>/<major>.<minor>` of the served Kubernetes version (`purpose` is `lifecycle`
/// for hooks, `probe` for probes).
pub fn user_agent(purpose: &str) -> String {
    let version = nodelet_api::kubernetes_version();
    let mut parts = version.trim_start_matches('v').split('.');
    let major = parts.next().unwrap_or("1");
    let minor = parts.next().unwrap_or("0");
    format!("kube-{purpose}/{major}.{minor}")
}

/// Forms the request of `action` for `container` (spec §7.2): host = `action.host` or the pod's
/// first IP; scheme lower-cased, `http` by default; port a number, a numeric string or the name
/// of one of the container's ports, within 1–65535; path as given (a missing leading `/` is
/// added, as Go's URL printing does); headers as given with `User-Agent: kube-lifecycle/x.y`
/// and `Accept: */*` added unless present (an explicitly empty `Accept` is removed).
pub fn http_target(
    action: &HTTPGetAction,
    container: &Container,
    pod_ips: &[String],
    purpose: &str,
) -> Result<HttpTarget, HttpTargetError> {
    let scheme = match action.scheme.as_deref().unwrap_or("") {
        "" => "http".to_owned(),
        s => s.to_lowercase(),
    };
    let host = match action.host.as_deref().filter(|h| !h.is_empty()) {
        Some(h) => h.to_owned(),
        None => pod_ips.first().cloned().ok_or(HttpTargetError::NoPodIp)?,
    };
    let port = resolve_port(&action.port, container)?;
    let path = action.path.as_deref().unwrap_or("");
    let sep = if path.is_empty() || path.starts_with(['/', '?', '#']) {
        ""
    } else {
        "/"
    };
    let url = format!("{scheme}://{}{sep}{path}", join_host_port(&host, port));

    let mut headers: Vec<(String, String)> = action
        .http_headers
        .iter()
        .flatten()
        .map(|h| (canonical_header_name(&h.name), h.value.clone()))
        .collect();
    let first = |headers: &[(String, String)], name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    if first(&headers, "User-Agent").is_none() {
        headers.push(("User-Agent".into(), user_agent(purpose)));
    }
    match first(&headers, "Accept") {
        None => headers.push(("Accept".into(), "*/*".into())),
        Some(v) if v.is_empty() => headers.retain(|(n, _)| n != "Accept"),
        Some(_) => {}
    }
    let host_header = first(&headers, "Host").filter(|h| !h.is_empty());
    headers.retain(|(n, _)| n != "Host");
    Ok(HttpTarget {
        url,
        scheme,
        host,
        port,
        host_header,
        headers,
    })
}

/// A port by number, by numeric string, or by the name of a container port.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, HttpTargetError> {
    let number: i64 = match port {
        IntOrString::Int(i) => i64::from(*i),
        IntOrString::String(name) => {
            let named = container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()));
            match named {
                Some(p) => i64::from(p.container_port),
                None => go_atoi(name)?,
            }
        }
    };
    u16::try_from(number)
        .ok()
        .filter(|&p| p > 0)
        .ok_or(HttpTargetError::InvalidPort(number))
}

/// Go's `strconv.Atoi`: optional sign, decimal digits, 64-bit range.
fn go_atoi(s: &str) -> Result<i64, HttpTargetError> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HttpTargetError::PortSyntax(s.to_owned()));
    }
    s.trim_start_matches('+')
        .parse::<i64>()
        .map_err(|_| HttpTargetError::PortRange(s.to_owned()))
}

/// Go's `CanonicalMIMEHeaderKey`: each `-`-separated word capitalised; names holding a byte
/// that is not a token character are left alone.
pub fn canonical_header_name(name: &str) -> String {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return name.to_owned();
    }
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

/// Warning on the pod when an `https` hook only worked over plain HTTP (`host_port` as in the
/// URL).
pub fn http_fallback(host_port: &str) -> Event {
    Event::warning(
        reason::LIFECYCLE_HTTP_FALLBACK,
        format!(
            "request to HTTPS lifecycle hook {host_port} got HTTP response, retry with HTTP succeeded"
        ),
    )
}

/// The stop timeout the runtime always gets at least, however much PreStop used.
pub const MINIMUM_GRACE_PERIOD_SECONDS: i64 = 2;
/// The kubelet never terminates a pod with less than this.
pub const MINIMUM_POD_GRACE_PERIOD_SECONDS: i64 = 1;
/// `terminationGracePeriodSeconds` when the pod does not say (API default).
pub const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS: i64 = 30;

/// A container's grace period before any override (spec §7.6 step 1): the pod's
/// `deletionGracePeriodSeconds`, else — for a liveness or startup probe kill — the probe's own
/// `terminationGracePeriodSeconds` when set, else `spec.terminationGracePeriodSeconds`, else 2.
pub fn container_grace_period(pod: &Pod, container: &Container, why: KillReason) -> i64 {
    if let Some(g) = pod.metadata.deletion_grace_period_seconds {
        return g;
    }
    let Some(spec_grace) = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
    else {
        return MINIMUM_GRACE_PERIOD_SECONDS;
    };
    let probe = match why {
        KillReason::LivenessProbe => container.liveness_probe.as_ref(),
        KillReason::StartupProbe => container.startup_probe.as_ref(),
        _ => None,
    };
    probe
        .and_then(|p| p.termination_grace_period_seconds)
        .unwrap_or(spec_grace)
}

/// How a container stop begins: the grace period in force (an override — pod termination's
/// effective grace, eviction — replaces the container's) and whether PreStop runs, which it does
/// only with time left. The kubelet waits for PreStop at most `grace` seconds
/// ([`StopPlan::pre_stop_deadline`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopPlan {
    pub grace: i64,
    pub run_pre_stop: bool,
}

impl StopPlan {
    pub fn new(
        pod: &Pod,
        container: &Container,
        why: KillReason,
        grace_override: Option<i64>,
    ) -> StopPlan {
        let grace = grace_override.unwrap_or_else(|| container_grace_period(pod, container, why));
        let has_pre_stop = container
            .lifecycle
            .as_ref()
            .is_some_and(|l| l.pre_stop.is_some());
        StopPlan {
            grace,
            run_pre_stop: has_pre_stop && grace > 0,
        }
    }

    /// How long PreStop may run before the stop goes ahead anyway (only logged upstream).
    pub fn pre_stop_deadline(&self) -> Option<Duration> {
        self.run_pre_stop
            .then(|| Duration::from_secs(self.grace.max(0).unsigned_abs()))
    }

    /// The stop timeout handed to the runtime (signal, wait this many seconds, then SIGKILL):
    /// the grace less the whole seconds PreStop and termination ordering used, but never below
    /// [`MINIMUM_GRACE_PERIOD_SECONDS`] (the docs' "one-off 2 second extension").
    pub fn stop_timeout(
        &self,
        pre_stop_elapsed: Option<Duration>,
        ordering_wait: Option<Duration>,
    ) -> i64 {
        let mut grace = self.grace;
        if self.run_pre_stop {
            grace -= whole_seconds(pre_stop_elapsed);
        }
        if grace > 0 {
            grace -= whole_seconds(ordering_wait);
        }
        grace.max(MINIMUM_GRACE_PERIOD_SECONDS)
    }
}

fn whole_seconds(d: Option<Duration>) -> i64 {
    d.map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The grace period the pod worker terminates a pod with (spec §7.7; upstream's
/// `calculateEffectiveGracePeriod`): it can only shrink — the previous value, lowered by
/// `deletionGracePeriodSeconds` and by a kubelet override (eviction); the spec's value only
/// when neither lowered it; never below 1. A force deletion (`deletionGracePeriodSeconds: 0`)
/// is therefore 1 s, not the spec's grace (upstream fixed that in kubernetes#115819).
pub fn effective_pod_grace_period(
    previous: Option<i64>,
    deletion_grace: Option<i64>,
    kubelet_override: Option<i64>,
    spec_grace: Option<i64>,
) -> i64 {
    let mut grace = previous.unwrap_or(0);
    let mut overridden = false;
    for lower in [deletion_grace, kubelet_override].into_iter().flatten() {
        if grace == 0 || lower < grace {
            grace = lower;
            overridden = true;
        }
    }
    if !overridden && grace == 0 {
        grace = spec_grace.unwrap_or(0);
    }
    grace.max(MINIMUM_POD_GRACE_PERIOD_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodelet_api::k8s::api::core::v1::{
        ContainerPort, HTTPHeader, Lifecycle, PodSpec, Probe, TCPSocketAction,
    };
    use nodelet_api::k8s::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("pod-with-poststart-exec-hook".into()),
                namespace: Some("e2e".into()),
                uid: Some("1234".into()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec::default()),
            ..Pod::default()
        }
    }

    #[test]
    fn failure_messages() {
        let command: Vec<String> = ["sh", "-c", "exit 1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let exec_error = exec_exit_error(&command, 1, "");
        let tcp = LifecycleHandler {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(8080),
                host: None,
            }),
            ..LifecycleHandler::default()
        };
        let cases: Vec<(HookFailure, &str)> = vec![
            (
                HookFailure::Exec {
                    command: &command,
                    error: &exec_error,
                    output: "",
                },
                r#"Exec lifecycle hook ([sh -c exit 1]) for Container "main" in Pod "pod-with-poststart-exec-hook_e2e(1234)" failed - error: command 'sh -c exit 1' exited with 1: , message: """#,
            ),
            (
                HookFailure::Exec {
                    command: &command,
                    error: "boom",
                    output: "line1\n\"quoted\"",
                },
                r#"Exec lifecycle hook ([sh -c exit 1]) for Container "main" in Pod "pod-with-poststart-exec-hook_e2e(1234)" failed - error: boom, message: "line1\n\"quoted\"""#,
            ),
            (
                HookFailure::Http {
                    path: "/echo?msg=poststart",
                    error: "Get \"http://10.0.0.1:8080/echo?msg=poststart\": dial tcp 10.0.0.1:8080: connect: connection refused",
                },
                r#"HTTP lifecycle hook (/echo?msg=poststart) for Container "main" in Pod "pod-with-poststart-exec-hook_e2e(1234)" failed - error: Get "http://10.0.0.1:8080/echo?msg=poststart": dial tcp 10.0.0.1:8080: connect: connection refused"#,
            ),
            (
                HookFailure::Sleep {
                    seconds: 10,
                    error: SLEEP_INTERRUPTED,
                },
                r#"Sleep lifecycle hook (10) for Container "main" in Pod "pod-with-poststart-exec-hook_e2e(1234)" failed - error: container terminated before sleep hook finished"#,
            ),
            (
                HookFailure::Invalid { handler: &tcp },
                "Cannot run handler: invalid handler: &LifecycleHandler{Exec:nil,HTTPGet:nil,TCPSocket:&TCPSocketAction{Port:{0 8080 },Host:,},Sleep:nil,}",
            ),
        ];
        for (failure, want) in cases {
            assert_eq!(failure.message("main", &pod()), want);
        }
        assert_eq!(failed_post_start_hook().message, "PostStartHook failed");
        assert_eq!(failed_post_start_hook().reason, "FailedPostStartHook");
        assert_eq!(failed_pre_stop_hook().message, "PreStopHook failed");
        assert_eq!(failed_pre_stop_hook().reason, "FailedPreStopHook");
        assert_eq!(
            http_fallback("10.0.0.1:9090").message,
            "request to HTTPS lifecycle hook 10.0.0.1:9090 got HTTP response, retry with HTTP succeeded"
        );
    }

    fn action(
        host: Option<&str>,
        scheme: Option<&str>,
        port: IntOrString,
        path: Option<&str>,
    ) -> HTTPGetAction {
        HTTPGetAction {
            host: host.map(Into::into),
            scheme: scheme.map(Into::into),
            port,
            path: path.map(Into::into),
            http_headers: None,
        }
    }

    #[test]
    fn http_targets() {
        let c = Container {
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..ContainerPort::default()
            }]),
            ..Container::default()
        };
        let ips = vec!["10.244.0.9".to_owned()];
        let v6 = vec!["fd00::9".to_owned()];
        let cases: Vec<(HTTPGetAction, &[String], Result<&str, HttpTargetError>)> = vec![
            // the e2e hooks: explicit host, path with a query
            (
                action(
                    Some("10.0.0.1"),
                    None,
                    IntOrString::Int(8080),
                    Some("/echo?msg=poststart"),
                ),
                &ips,
                Ok("http://10.0.0.1:8080/echo?msg=poststart"),
            ),
            (
                action(
                    Some("10.0.0.1"),
                    Some("HTTPS"),
                    IntOrString::Int(9090),
                    Some("/echo?msg=prestop"),
                ),
                &ips,
                Ok("https://10.0.0.1:9090/echo?msg=prestop"),
            ),
            // host defaults to the pod IP; named, numeric-string ports
            (
                action(
                    None,
                    Some("HTTP"),
                    IntOrString::String("http".into()),
                    Some("/"),
                ),
                &ips,
                Ok("http://10.244.0.9:8080/"),
            ),
            (
                action(None, None, IntOrString::String("81".into()), None),
                &ips,
                Ok("http://10.244.0.9:81"),
            ),
            (
                action(None, None, IntOrString::Int(80), Some("bar")),
                &v6,
                Ok("http://[fd00::9]:80/bar"),
            ),
            // errors
            (
                action(None, None, IntOrString::Int(80), None),
                &[],
                Err(HttpTargetError::NoPodIp),
            ),
            (
                action(None, None, IntOrString::Int(0), None),
                &ips,
                Err(HttpTargetError::InvalidPort(0)),
            ),
            (
                action(None, None, IntOrString::Int(65536), None),
                &ips,
                Err(HttpTargetError::InvalidPort(65536)),
            ),
            (
                action(None, None, IntOrString::String("web".into()), None),
                &ips,
                Err(HttpTargetError::PortSyntax("web".into())),
            ),
            (
                action(
                    None,
                    None,
                    IntOrString::String("99999999999999999999".into()),
                    None,
                ),
                &ips,
                Err(HttpTargetError::PortRange("99999999999999999999".into())),
            ),
            (
                action(None, None, IntOrString::String("-1".into()), None),
                &ips,
                Err(HttpTargetError::InvalidPort(-1)),
            ),
        ];
        for (a, ips, want) in cases {
            let got = http_target(&a, &c, ips, "lifecycle").map(|t| t.url);
            assert_eq!(got.as_deref().map_err(Clone::clone), want, "{a:?}");
        }
        assert_eq!(
            HttpTargetError::PortSyntax("web".into()).to_string(),
            r#"strconv.Atoi: parsing "web": invalid syntax"#
        );
        assert_eq!(
            HttpTargetError::InvalidPort(0).to_string(),
            "invalid port number: 0"
        );
    }

    #[test]
    fn http_headers() {
        let ua = user_agent("lifecycle");
        assert!(ua.starts_with("kube-lifecycle/1."), "{ua}");
        let with = |headers: &[(&str, &str)]| {
            let mut a = action(Some("h"), None, IntOrString::Int(80), None);
            a.http_headers = Some(
                headers
                    .iter()
                    .map(|(n, v)| HTTPHeader {
                        name: n.to_string(),
                        value: v.to_string(),
                    })
                    .collect(),
            );
            http_target(&a, &Container::default(), &[], "lifecycle").unwrap()
        };
        let strs = |t: &HttpTarget| {
            t.headers
                .iter()
                .map(|(n, v)| format!("{n}: {v}"))
                .collect::<Vec<_>>()
        };
        let t = with(&[]);
        assert_eq!(
            strs(&t),
            vec![format!("User-Agent: {ua}"), "Accept: */*".into()]
        );
        let t = with(&[
            ("x-custom-header", "a"),
            ("X-CUSTOM-HEADER", "b"),
            ("user-agent", "mine"),
        ]);
        assert_eq!(
            strs(&t),
            vec![
                "X-Custom-Header: a".to_owned(),
                "X-Custom-Header: b".into(),
                "User-Agent: mine".into(),
                "Accept: */*".into()
            ]
        );
        let t = with(&[("Accept", ""), ("host", "example.com")]);
        assert_eq!(strs(&t), vec![format!("User-Agent: {ua}")]);
        assert_eq!(t.host_header.as_deref(), Some("example.com"));
        assert_eq!(canonical_header_name("bad header"), "bad header");
        assert_eq!(canonical_header_name("content-TYPE"), "Content-Type");
    }

    fn container(pre_stop: bool, liveness_grace: Option<i64>) -> Container {
        Container {
            name: "c".into(),
            lifecycle: pre_stop.then(|| Lifecycle {
                pre_stop: Some(LifecycleHandler::default()),
                ..Lifecycle::default()
            }),
            liveness_probe: Some(Probe {
                termination_grace_period_seconds: liveness_grace,
                ..Probe::default()
            }),
            ..Container::default()
        }
    }

    #[test]
    fn grace_periods() {
        let mut p = pod();
        let c = container(true, Some(5));
        // nothing set: the 2 s minimum
        assert_eq!(container_grace_period(&p, &c, KillReason::Stop), 2);
        p.spec.as_mut().unwrap().termination_grace_period_seconds = Some(60);
        assert_eq!(container_grace_period(&p, &c, KillReason::Stop), 60);
        assert_eq!(container_grace_period(&p, &c, KillReason::LivenessProbe), 5);
        assert_eq!(container_grace_period(&p, &c, KillReason::StartupProbe), 60);
        assert_eq!(
            container_grace_period(&p, &container(true, None), KillReason::LivenessProbe),
            60
        );
        p.metadata.deletion_grace_period_seconds = Some(15);
        assert_eq!(
            container_grace_period(&p, &c, KillReason::LivenessProbe),
            15
        );
    }

    #[test]
    fn stop_budget() {
        let mut p = pod();
        p.spec.as_mut().unwrap().termination_grace_period_seconds = Some(60);
        struct Case {
            pre_stop: bool,
            grace_override: Option<i64>,
            /// seconds PreStop took, and seconds waited for termination ordering
            elapsed: Option<f64>,
            ordering: Option<f64>,
            run: bool,
            deadline: Option<u64>,
            timeout: i64,
        }
        let case = |pre_stop, grace_override, elapsed, ordering, run, deadline, timeout| Case {
            pre_stop,
            grace_override,
            elapsed,
            ordering,
            run,
            deadline,
            timeout,
        };
        let cases = vec![
            // docs example: grace 60, hook 55 s → 5 s left for the stop signal
            case(true, None, Some(55.0), None, true, Some(60), 5),
            // partial seconds are not charged
            case(true, None, Some(10.9), None, true, Some(60), 50),
            // a hook that used the whole budget (or timed out) still leaves 2 s
            case(true, None, Some(60.0), None, true, Some(60), 2),
            case(true, None, Some(59.5), None, true, Some(60), 2),
            // no hook: full grace
            case(false, None, None, None, false, None, 60),
            // an override replaces the grace before PreStop
            case(true, Some(30), Some(12.0), None, true, Some(30), 18),
            // grace 0: PreStop skipped, minimum stop timeout
            case(true, Some(0), None, None, false, None, 2),
            case(false, Some(1), None, None, false, None, 2),
            // sidecar ordering eats into what is left
            case(true, None, Some(20.0), Some(30.0), true, Some(60), 10),
        ];
        let secs = |s: Option<f64>| s.map(Duration::from_secs_f64);
        for c in cases {
            let plan = StopPlan::new(
                &p,
                &container(c.pre_stop, None),
                KillReason::Stop,
                c.grace_override,
            );
            let what = format!("{} {:?} {:?}", c.pre_stop, c.grace_override, c.elapsed);
            assert_eq!(plan.run_pre_stop, c.run, "{what}");
            assert_eq!(
                plan.pre_stop_deadline(),
                c.deadline.map(Duration::from_secs),
                "{what}"
            );
            assert_eq!(
                plan.stop_timeout(secs(c.elapsed), secs(c.ordering)),
                c.timeout,
                "{what}"
            );
        }
    }

    #[test]
    fn pod_grace_only_shrinks() {
        // (previous, deletion, override, spec, want)
        let cases = [
            (None, None, None, Some(30), 30),
            (None, Some(15), None, Some(30), 15),
            (Some(15), Some(30), None, Some(30), 15),
            (Some(30), Some(10), None, Some(30), 10),
            (None, Some(30), Some(5), Some(30), 5),
            // force deletion: the minimum, not the spec's grace
            (None, Some(0), None, Some(30), 1),
            (None, None, Some(0), Some(30), 1),
            (None, None, None, None, 1),
            (None, None, None, Some(0), 1),
        ];
        for (prev, del, ov, spec, want) in cases {
            assert_eq!(
                effective_pod_grace_period(prev, del, ov, spec),
                want,
                "{prev:?} {del:?} {ov:?} {spec:?}"
            );
        }
    }
}
