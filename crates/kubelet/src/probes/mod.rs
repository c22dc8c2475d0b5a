//! Container probes (liveness, readiness, startup) as the kubelet's prober runs them.
//!
//! - [`state`]: the pure per-container, per-kind state machine (time is an argument): when the
//!   next run is due, thresholds, startup gating, which events to record, when to kill.
//! - [`http`], [`tcp`], [`exec`], [`grpc`]: one probe run each, with the upstream outputs and
//!   error texts (`httpGet` with `scheme: HTTPS` over unverified TLS).
//! - [`prober`]: threads that drive the state machines for one running container and report
//!   [`ProbeEvent`](prober::ProbeEvent)s to the pod worker through a callback.
//!
//! Upstream: `pkg/kubelet/prober` (worker, prober, results) and `pkg/probe/{http,tcp,exec,grpc}`.

use std::time::Duration;

use nodelet_api::k8s::api::core::v1::Probe;

pub use crate::events::ProbeKind;
use crate::events::{Event, reason};

pub mod exec;
pub mod grpc;
pub mod http;
pub mod prober;
pub mod state;
pub mod tcp;

/// The published result of a probe (`proberesults.Result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeResult {
    Unknown,
    Success,
    Failure,
}

/// What one probe run saw (`probe.Result` with its output or error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Passed; the output (an HTTP body, exec output) is only logged upstream.
    Success(String),
    /// Passed with a warning (an HTTP redirect not followed): `ProbeWarning` event.
    Warning(String),
    /// Failed: `Unhealthy` `<Kind> probe failed: <output>`.
    Failure(String),
    /// The probe could not be run (no pod IP, a bad port, exec not possible): `Unhealthy`
    /// `<Kind> probe errored: <error>`, and the result is thrown away.
    Error(String),
}

/// A probe's timing and thresholds with the API defaults applied (`periodSeconds` 10,
/// `timeoutSeconds` 1, `successThreshold` 1, `failureThreshold` 3, `initialDelaySeconds` 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSettings {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl ProbeSettings {
    /// Zero or missing values take the API default (the API server defaults them and
    /// validation rejects negatives; this keeps pods from other sources safe).
    /// `successThreshold` is always 1 for liveness and startup (validation: `must be 1`).
    pub fn new(kind: ProbeKind, probe: &Probe) -> ProbeSettings {
        let positive = |v: Option<i32>, default: u32| {
            v.and_then(|v| u32::try_from(v).ok())
                .filter(|&v| v > 0)
                .unwrap_or(default)
        };
        let success_threshold = match kind {
            ProbeKind::Readiness => positive(probe.success_threshold, 1),
            ProbeKind::Liveness | ProbeKind::Startup => 1,
        };
        ProbeSettings {
            initial_delay: Duration::from_secs(
                probe
                    .initial_delay_seconds
                    .and_then(|v| u64::try_from(v).ok())
                    .unwrap_or(0),
            ),
            period: Duration::from_secs(positive(probe.period_seconds, 10).into()),
            timeout: Duration::from_secs(positive(probe.timeout_seconds, 1).into()),
            success_threshold,
            failure_threshold: positive(probe.failure_threshold, 3),
        }
    }
}

/// `Liveness`, `Readiness`, `Startup`: how messages name a probe kind.
pub fn kind_name(kind: ProbeKind) -> &'static str {
    match kind {
        ProbeKind::Liveness => "Liveness",
        ProbeKind::Readiness => "Readiness",
        ProbeKind::Startup => "Startup",
    }
}

/// Warning `ProbeWarning` `<Kind> probe warning: <output>`.
pub fn probe_warning(kind: ProbeKind, output: &str) -> Event {
    Event::warning(
        reason::PROBE_WARNING,
        format!("{} probe warning: {output}", kind_name(kind)),
    )
}

/// Warning `Unhealthy` `<Kind> probe errored: <error>` (the probe could not run).
pub fn probe_errored(kind: ProbeKind, error: &str) -> Event {
    Event::warning(
        reason::UNHEALTHY,
        format!("{} probe errored: {error}", kind_name(kind)),
    )
}

/// At most this much of an exec probe's output or an HTTP body is kept (10 KiB).
pub const MAX_OUTPUT: usize = 10 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_take_api_defaults() {
        let defaults = ProbeSettings::new(ProbeKind::Readiness, &Probe::default());
        assert_eq!(
            defaults,
            ProbeSettings {
                initial_delay: Duration::ZERO,
                period: Duration::from_secs(10),
                timeout: Duration::from_secs(1),
                success_threshold: 1,
                failure_threshold: 3,
            }
        );
        let probe = Probe {
            initial_delay_seconds: Some(5),
            period_seconds: Some(2),
            timeout_seconds: Some(0),
            success_threshold: Some(3),
            failure_threshold: Some(-1),
            ..Probe::default()
        };
        let readiness = ProbeSettings::new(ProbeKind::Readiness, &probe);
        assert_eq!(readiness.initial_delay, Duration::from_secs(5));
        assert_eq!(readiness.period, Duration::from_secs(2));
        assert_eq!(readiness.timeout, Duration::from_secs(1));
        assert_eq!(readiness.success_threshold, 3);
        assert_eq!(readiness.failure_threshold, 3);
        for kind in [ProbeKind::Liveness, ProbeKind::Startup] {
            assert_eq!(ProbeSettings::new(kind, &probe).success_threshold, 1);
        }
    }

    #[test]
    fn event_texts() {
        let warning = probe_warning(ProbeKind::Readiness, "Probe terminated redirects");
        assert_eq!(
            (warning.reason, warning.message.as_str()),
            (
                "ProbeWarning",
                "Readiness probe warning: Probe terminated redirects"
            )
        );
        let errored = probe_errored(ProbeKind::Startup, "boom");
        assert_eq!(
            (errored.reason, errored.message.as_str()),
            ("Unhealthy", "Startup probe errored: boom")
        );
    }
}
