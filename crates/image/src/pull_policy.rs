//! Image pull policy: defaulting, the pull-or-use-local decision, the kubelet's event texts for
//! it, and the per-pod image pull back-off.
//!
//! Everything here is pure logic. Time is passed in (`now: Instant`), so back-off behaviour can be
//! tested without sleeping and the caller owns the clock.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use nodelet_goquote::go_quote;

use crate::reference::{DEFAULT_TAG, ImageNameError, default_tag_failure_message};

/// Event reasons the kubelet's image manager emits (`reason` of the Event object).
pub mod event_reason {
    /// Normal: the image is usable (already present, or just pulled).
    pub const PULLED: &str = "Pulled";
    /// Normal: a pull is starting.
    pub const PULLING: &str = "Pulling";
    /// Warning: a pull failed.
    pub const FAILED: &str = "Failed";
    /// Normal: the pull was skipped because of back-off.
    pub const BACK_OFF: &str = "BackOff";
    /// Warning: the image name is invalid or the runtime could not inspect the image.
    pub const INSPECT_FAILED: &str = "InspectFailed";
    /// Warning: the image is absent and the policy forbids pulling.
    pub const ERR_IMAGE_NEVER_PULL: &str = "ErrImageNeverPull";
}

/// `state.waiting.reason` values a container gets from image handling.
pub mod waiting_reason {
    /// The last pull attempt failed.
    pub const ERR_IMAGE_PULL: &str = "ErrImagePull";
    /// A pull is being held back by the back-off.
    pub const IMAGE_PULL_BACK_OFF: &str = "ImagePullBackOff";
    /// The runtime could not report whether the image is present.
    pub const IMAGE_INSPECT_ERROR: &str = "ImageInspectError";
    /// `container.image` could not be parsed.
    pub const INVALID_IMAGE_NAME: &str = "InvalidImageName";
    /// The image is absent (or not usable by the pod) and the policy is `Never`.
    pub const ERR_IMAGE_NEVER_PULL: &str = "ErrImageNeverPull";
    /// The runtime reported the registry as unavailable.
    pub const REGISTRY_UNAVAILABLE: &str = "RegistryUnavailable";
    /// The runtime rejected the image's signature.
    pub const SIGNATURE_VALIDATION_FAILED: &str = "SignatureValidationFailed";
}

/// `imagePullPolicy` of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PullPolicy {
    /// Pull on every container start (the registry decides whether anything is downloaded).
    Always,
    /// Pull only when the image is not on the node (or the pod may not use the local copy).
    IfNotPresent,
    /// Never pull; fail when the image is not usable locally.
    Never,
}

/// A string that is not one of the Kubernetes pull policy values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Unsupported value: {}: supported values: \"Always\", \"IfNotPresent\", \"Never\"",
    go_quote(.value)
)]
pub struct UnsupportedPullPolicy {
    value: String,
}

impl UnsupportedPullPolicy {
    /// The rejected value.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl PullPolicy {
    /// Every policy, in the order the API documents them.
    pub const ALL: [PullPolicy; 3] = [
        PullPolicy::Always,
        PullPolicy::IfNotPresent,
        PullPolicy::Never,
    ];

    /// The API string (`Always`, `IfNotPresent`, `Never`).
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }

    /// Resolves the `imagePullPolicy` field as stored: empty means "not set" and gets the API
    /// server's default for `image`; anything else must be a valid policy.
    pub fn from_field(value: &str, image: &str) -> Result<PullPolicy, UnsupportedPullPolicy> {
        if value.is_empty() {
            Ok(default_pull_policy(image))
        } else {
            value.parse()
        }
    }

    /// Whether the kubelet asks the runtime for the local image before deciding. `Always` skips
    /// that lookup entirely, so callers need not (and should not) inspect the image for it.
    pub fn checks_local_image(self) -> bool {
        !matches!(self, PullPolicy::Always)
    }
}

impl FromStr for PullPolicy {
    type Err = UnsupportedPullPolicy;

    /// Exact, case-sensitive match, as the API validates it.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        PullPolicy::ALL
            .into_iter()
            .find(|policy| policy.as_str() == value)
            .ok_or_else(|| UnsupportedPullPolicy {
                value: value.to_owned(),
            })
    }
}

impl fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The policy the API server fills in when `imagePullPolicy` is empty: `Always` when the
/// effective tag is `latest` (including "no tag and no digest" and `:latest@sha256:…`),
/// otherwise `IfNotPresent` — also for names that do not parse, which then fail later anyway.
pub fn default_pull_policy(image: &str) -> PullPolicy {
    match crate::reference::parse_image_name(image) {
        Ok(parsed) if parsed.tag() == Some(DEFAULT_TAG) => PullPolicy::Always,
        _ => PullPolicy::IfNotPresent,
    }
}

/// What the node knows about its local copy of the image when the decision is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocalImage {
    /// Not on the node, or not looked up because the policy is `Always`.
    Absent,
    /// On the node, and the secret-pulled-image check (`KubeletEnsureSecretPulledImages`) is
    /// off, so presence alone makes it usable.
    Present,
    /// On the node, and the pull records show this pod's credentials may use it.
    PresentAndAccessible,
    /// On the node, but this pod has not shown credentials that may use it. Treated exactly
    /// like [`LocalImage::Absent`], so a pod cannot learn that someone else pulled the image.
    PresentButInaccessible,
}

/// The outcome of [`decide_pull`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PullDecision {
    /// Start the container from the local image. `access_verified` says whether the pod's
    /// credentials were checked, which changes the wording of the `Pulled` event.
    UseLocal {
        /// True when the secret-pulled-image check confirmed access.
        access_verified: bool,
    },
    /// Pull the image (subject to [`PullBackOff`]).
    Pull,
    /// Fail the container with `ErrImageNeverPull`.
    NeverPull,
}

/// Decides between using the local image, pulling, and failing, as the kubelet's
/// `EnsureImageExists` does once the image name has been parsed and the image inspected.
pub fn decide_pull(policy: PullPolicy, local: LocalImage) -> PullDecision {
    if policy == PullPolicy::Always {
        return PullDecision::Pull;
    }
    match local {
        LocalImage::Present => PullDecision::UseLocal {
            access_verified: false,
        },
        LocalImage::PresentAndAccessible => PullDecision::UseLocal {
            access_verified: true,
        },
        LocalImage::Absent | LocalImage::PresentButInaccessible => match policy {
            PullPolicy::Never => PullDecision::NeverPull,
            PullPolicy::Always | PullPolicy::IfNotPresent => PullDecision::Pull,
        },
    }
}

impl PullDecision {
    /// The event to record for this decision; `None` for [`PullDecision::Pull`], whose event
    /// (`Pulling` or `BackOff`) depends on the back-off state.
    pub fn event(&self, image: &str) -> Option<ImageEvent> {
        match self {
            PullDecision::UseLocal { access_verified } => {
                Some(ImageEvent::already_present(image, *access_verified))
            }
            PullDecision::Pull => None,
            PullDecision::NeverPull => Some(ImageEvent::never_pull(image)),
        }
    }

    /// The container's waiting reason when the decision is a failure.
    pub fn waiting_reason(&self) -> Option<&'static str> {
        match self {
            PullDecision::NeverPull => Some(waiting_reason::ERR_IMAGE_NEVER_PULL),
            PullDecision::UseLocal { .. } | PullDecision::Pull => None,
        }
    }
}

/// Kubernetes event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Routine progress.
    Normal,
    /// Something the user should look at.
    Warning,
}

impl EventKind {
    /// The API string (`Normal`, `Warning`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Normal => "Normal",
            EventKind::Warning => "Warning",
        }
    }
}

/// An event about a container's image, with the kubelet's exact reason and message. Pass
/// `container.image` verbatim as `image` (not the default-tagged or normalised form): that is
/// the string the kubelet prints and also the one in the back-off key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageEvent {
    /// Normal or Warning.
    pub kind: EventKind,
    /// One of [`event_reason`].
    pub reason: &'static str,
    /// Human-readable text.
    pub message: String,
}

impl ImageEvent {
    fn new(kind: EventKind, reason: &'static str, message: String) -> ImageEvent {
        ImageEvent {
            kind,
            reason,
            message,
        }
    }

    /// `container.image` did not parse; the container waits with `InvalidImageName`.
    pub fn invalid_image_name(image: &str, error: &ImageNameError) -> ImageEvent {
        ImageEvent::new(
            EventKind::Warning,
            event_reason::INSPECT_FAILED,
            default_tag_failure_message(image, error),
        )
    }

    /// The runtime could not say whether the image is present; the container waits with
    /// `ImageInspectError`. Upstream formats the image *ref* the failed lookup returned, which
    /// is always empty, so real events read `Failed to inspect image "": …`; pass `""` to match.
    pub fn inspect_failed(image_ref: &str, error: &str) -> ImageEvent {
        ImageEvent::new(
            EventKind::Warning,
            event_reason::INSPECT_FAILED,
            format!("Failed to inspect image {}: {error}", go_quote(image_ref)),
        )
    }

    /// The image is not usable locally and the policy is `Never`. Also used when the image is
    /// present but the pod may not use it, deliberately with the same words.
    pub fn never_pull(image: &str) -> ImageEvent {
        ImageEvent::new(
            EventKind::Warning,
            event_reason::ERR_IMAGE_NEVER_PULL,
            format!(
                "Container image {} is not present with pull policy of Never",
                go_quote(image)
            ),
        )
    }

    /// The local image will be used (emitted on every container start).
    pub fn already_present(image: &str, access_verified: bool) -> ImageEvent {
        let suffix = if access_verified {
            " and can be accessed by the pod"
        } else {
            ""
        };
        ImageEvent::new(
            EventKind::Normal,
            event_reason::PULLED,
            format!(
                "Container image {} already present on machine{suffix}",
                go_quote(image)
            ),
        )
    }

    /// A pull is skipped because the back-off window is still open.
    pub fn back_off(image: &str) -> ImageEvent {
        ImageEvent::new(
            EventKind::Normal,
            event_reason::BACK_OFF,
            back_off_message(image),
        )
    }

    /// A pull is starting.
    pub fn pulling(image: &str) -> ImageEvent {
        ImageEvent::new(
            EventKind::Normal,
            event_reason::PULLING,
            format!("Pulling image {}", go_quote(image)),
        )
    }

    /// A pull failed with the runtime's error text.
    pub fn pull_failed(image: &str, error: &str) -> ImageEvent {
        ImageEvent::new(
            EventKind::Warning,
            event_reason::FAILED,
            format!("Failed to pull image {}: {error}", go_quote(image)),
        )
    }

    /// A pull succeeded. `pull_duration` is the time the runtime spent; `total_duration`
    /// includes waiting in the pull queue. Both are truncated to milliseconds like upstream.
    pub fn pulled(
        image: &str,
        pull_duration: Duration,
        total_duration: Duration,
        image_size_bytes: u64,
    ) -> ImageEvent {
        ImageEvent::new(
            EventKind::Normal,
            event_reason::PULLED,
            format!(
                "Successfully pulled image {} in {} ({} including waiting). Image size: {image_size_bytes} bytes.",
                go_quote(image),
                go_duration(truncate_to_millis(pull_duration)),
                go_duration(truncate_to_millis(total_duration)),
            ),
        )
    }
}

fn back_off_message(image: &str) -> String {
    format!("Back-off pulling image {}", go_quote(image))
}

/// The container's waiting message while in `ImagePullBackOff`: the `BackOff` event text, plus
/// the previous failure (`<reason>: <message>`, see [`PullFailure::summary`]) when known.
pub fn back_off_waiting_message(image: &str, previous_failure: Option<&str>) -> String {
    match previous_failure {
        Some(previous) => format!("{}: {previous}", back_off_message(image)),
        None => back_off_message(image),
    }
}

/// A failed pull, classified the way the kubelet reports it in the container's waiting state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PullFailure {
    /// One of `ErrImagePull`, `RegistryUnavailable`, `SignatureValidationFailed`.
    pub reason: &'static str,
    /// The waiting message.
    pub message: String,
}

impl PullFailure {
    /// Classifies the runtime's error text. Runtimes signal two special cases only by prefixing
    /// the text with the reason name (gRPC errors carry no typed cause), so that is what we look
    /// for; the prefix is replaced by a sentence and the rest of the text kept.
    pub fn classify(image: &str, error: &str) -> PullFailure {
        let special = [
            (
                waiting_reason::REGISTRY_UNAVAILABLE,
                "because the registry is unavailable",
            ),
            (
                waiting_reason::SIGNATURE_VALIDATION_FAILED,
                "because the signature validation failed",
            ),
        ];
        for (reason, explanation) in special {
            if let Some(rest) = error.strip_prefix(reason) {
                return PullFailure {
                    reason,
                    message: format!("image pull failed for {image} {explanation}{rest}"),
                };
            }
        }
        PullFailure {
            reason: waiting_reason::ERR_IMAGE_PULL,
            message: error.to_owned(),
        }
    }

    /// `<reason>: <message>`: what the kubelet remembers for the back-off waiting message.
    pub fn summary(&self) -> String {
        format!("{}: {}", self.reason, self.message)
    }
}

/// Drops everything below a millisecond (Go's `d.Truncate(time.Millisecond)`).
pub fn truncate_to_millis(duration: Duration) -> Duration {
    Duration::new(duration.as_secs(), duration.subsec_millis() * 1_000_000)
}

/// Formats a duration like Go's `time.Duration.String()`: `0s`, `750ns`, `1.5µs`, `393ms`,
/// `1.561s`, `1m0s`, `5m39.656s`, `1h0m0s`. Kubernetes messages embed this form.
pub fn go_duration(duration: Duration) -> String {
    const NANOS_PER_MICRO: u128 = 1_000;
    const NANOS_PER_MILLI: u128 = 1_000_000;
    const NANOS_PER_SECOND: u128 = 1_000_000_000;

    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < NANOS_PER_MICRO {
        return format!("{nanos}ns");
    }
    if nanos < NANOS_PER_MILLI {
        let fraction = decimal_fraction(nanos % NANOS_PER_MICRO, 3);
        return format!("{}{fraction}µs", nanos / NANOS_PER_MICRO);
    }
    if nanos < NANOS_PER_SECOND {
        let fraction = decimal_fraction(nanos % NANOS_PER_MILLI, 6);
        return format!("{}{fraction}ms", nanos / NANOS_PER_MILLI);
    }
    let fraction = decimal_fraction(nanos % NANOS_PER_SECOND, 9);
    let whole_seconds = nanos / NANOS_PER_SECOND;
    let (hours, minutes, seconds) = (
        whole_seconds / 3600,
        whole_seconds / 60 % 60,
        whole_seconds % 60,
    );
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}{fraction}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}{fraction}s")
    } else {
        format!("{seconds}{fraction}s")
    }
}

/// `.ddd` with trailing zeros removed, or nothing when `value` is zero.
fn decimal_fraction(value: u128, digits: usize) -> String {
    if value == 0 {
        return String::new();
    }
    let padded = format!("{value:0digits$}");
    format!(".{}", padded.trim_end_matches('0'))
}

/// Per pod-and-image pull back-off, with the kubelet's numbers and client-go's rules: the first
/// failure opens a 10 s window, each further failure doubles it up to 300 s, and an entry not
/// updated for twice the maximum (600 s) counts as forgotten.
///
/// Keys are `<podUID>_<image>` (see [`PullBackOff::key`]), so two pods pulling the same image
/// back off independently, while restarts of one pod's container share the window.
#[derive(Debug, Clone)]
pub struct PullBackOff {
    initial: Duration,
    max: Duration,
    entries: HashMap<String, BackOffEntry>,
}

#[derive(Debug, Clone)]
struct BackOffEntry {
    delay: Duration,
    last_update: Instant,
    last_failure: Option<String>,
}

impl Default for PullBackOff {
    fn default() -> Self {
        PullBackOff::new()
    }
}

impl PullBackOff {
    /// The kubelet's `imageBackOffPeriod`.
    pub const INITIAL_DELAY: Duration = Duration::from_secs(10);
    /// The kubelet's `MaxImageBackOff`.
    pub const MAX_DELAY: Duration = Duration::from_secs(300);

    /// A back-off with the kubelet's 10 s / 300 s limits.
    pub fn new() -> PullBackOff {
        PullBackOff::with_limits(PullBackOff::INITIAL_DELAY, PullBackOff::MAX_DELAY)
    }

    /// A back-off with other limits (tests, or a configurable node).
    pub fn with_limits(initial: Duration, max: Duration) -> PullBackOff {
        PullBackOff {
            initial,
            max,
            entries: HashMap::new(),
        }
    }

    /// The back-off key for a pod and the image string it asked for.
    pub fn key(pod_uid: &str, image: &str) -> String {
        format!("{pod_uid}_{image}")
    }

    /// Whether a pull for `key` must be skipped at `now` (client-go `IsInBackOffSinceUpdate`).
    pub fn is_in_back_off(&self, key: &str, now: Instant) -> bool {
        self.entries.get(key).is_some_and(|entry| {
            let idle = now.saturating_duration_since(entry.last_update);
            !self.has_expired(idle) && idle < entry.delay
        })
    }

    /// Records a failed pull at `now` and widens the window (client-go `Next`). `failure` is what
    /// the waiting message should quote while backing off, usually [`PullFailure::summary`].
    pub fn record_failure(&mut self, key: &str, now: Instant, failure: Option<String>) {
        let (initial, max) = (self.initial, self.max);
        let expired = self
            .entries
            .get(key)
            .is_none_or(|entry| self.has_expired(now.saturating_duration_since(entry.last_update)));
        let delay = match self.entries.get(key) {
            Some(entry) if !expired => entry.delay.saturating_mul(2).min(max),
            _ => initial,
        };
        self.entries.insert(
            key.to_owned(),
            BackOffEntry {
                delay,
                last_update: now,
                last_failure: failure,
            },
        );
    }

    /// The failure recorded with the last [`PullBackOff::record_failure`] for `key`.
    pub fn last_failure(&self, key: &str) -> Option<&str> {
        self.entries.get(key)?.last_failure.as_deref()
    }

    /// The current window length for `key`; zero when there is no entry (client-go `Get`).
    pub fn delay(&self, key: &str) -> Duration {
        self.entries
            .get(key)
            .map_or(Duration::ZERO, |entry| entry.delay)
    }

    /// Forgets `key` (client-go `Reset`).
    pub fn reset(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Drops entries idle for more than twice the maximum delay. The kubelet runs this after
    /// every successful pull so the table cannot grow without bound.
    pub fn gc(&mut self, now: Instant) {
        let limit = self.expiry();
        self.entries
            .retain(|_, entry| now.saturating_duration_since(entry.last_update) <= limit);
    }

    /// Number of keys currently tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn expiry(&self) -> Duration {
        self.max.saturating_mul(2)
    }

    fn has_expired(&self, idle: Duration) -> bool {
        idle > self.expiry()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::apply_default_image_tag;

    const HEX64: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn policy_strings_round_trip() {
        for policy in PullPolicy::ALL {
            assert_eq!(policy.as_str().parse::<PullPolicy>(), Ok(policy));
            assert_eq!(policy.to_string(), policy.as_str());
        }
    }

    #[test]
    fn unknown_policy_strings_are_rejected_with_the_supported_values() {
        for value in ["always", "ALWAYS", "", " Never", "Sometimes"] {
            let error = value.parse::<PullPolicy>().unwrap_err();
            assert_eq!(error.value(), value);
        }
        assert_eq!(
            "Sometimes".parse::<PullPolicy>().unwrap_err().to_string(),
            "Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\""
        );
    }

    #[test]
    fn empty_field_gets_the_default() {
        assert_eq!(PullPolicy::from_field("", "nginx"), Ok(PullPolicy::Always));
        assert_eq!(
            PullPolicy::from_field("", "nginx:1"),
            Ok(PullPolicy::IfNotPresent)
        );
        assert_eq!(
            PullPolicy::from_field("Never", "nginx"),
            Ok(PullPolicy::Never)
        );
        assert!(PullPolicy::from_field("never", "nginx").is_err());
    }

    #[test]
    fn default_policy_follows_the_effective_tag() {
        let cases = [
            ("nginx".to_owned(), PullPolicy::Always),
            ("nginx:latest".to_owned(), PullPolicy::Always),
            ("docker.io/library/nginx".to_owned(), PullPolicy::Always),
            ("localhost:5000/app".to_owned(), PullPolicy::Always),
            (format!("nginx:latest@sha256:{HEX64}"), PullPolicy::Always),
            ("nginx:1.27".to_owned(), PullPolicy::IfNotPresent),
            ("nginx:Latest".to_owned(), PullPolicy::IfNotPresent),
            ("localhost:5000".to_owned(), PullPolicy::IfNotPresent),
            (format!("nginx@sha256:{HEX64}"), PullPolicy::IfNotPresent),
            (
                format!("nginx:3.5@sha256:{HEX64}"),
                PullPolicy::IfNotPresent,
            ),
            ("Nginx".to_owned(), PullPolicy::IfNotPresent),
            ("nginx::1".to_owned(), PullPolicy::IfNotPresent),
            ("".to_owned(), PullPolicy::IfNotPresent),
        ];
        for (image, expected) in cases {
            assert_eq!(default_pull_policy(&image), expected, "image {image:?}");
        }
    }

    #[test]
    fn only_always_skips_the_local_lookup() {
        assert!(!PullPolicy::Always.checks_local_image());
        assert!(PullPolicy::IfNotPresent.checks_local_image());
        assert!(PullPolicy::Never.checks_local_image());
    }

    #[test]
    fn decision_table() {
        use LocalImage::*;
        use PullDecision::*;
        use PullPolicy::*;
        let used = |verified| UseLocal {
            access_verified: verified,
        };
        let cases = [
            (Always, Absent, Pull),
            (Always, Present, Pull),
            (Always, PresentAndAccessible, Pull),
            (Always, PresentButInaccessible, Pull),
            (IfNotPresent, Absent, Pull),
            (IfNotPresent, Present, used(false)),
            (IfNotPresent, PresentAndAccessible, used(true)),
            (IfNotPresent, PresentButInaccessible, Pull),
            (Never, Absent, NeverPull),
            (Never, Present, used(false)),
            (Never, PresentAndAccessible, used(true)),
            (Never, PresentButInaccessible, NeverPull),
        ];
        for (policy, local, expected) in cases {
            assert_eq!(decide_pull(policy, local), expected, "{policy} {local:?}");
        }
    }

    #[test]
    fn decision_events() {
        let image = "busybox:latest";
        assert_eq!(
            PullDecision::NeverPull.event(image),
            Some(ImageEvent {
                kind: EventKind::Warning,
                reason: "ErrImageNeverPull",
                message:
                    "Container image \"busybox:latest\" is not present with pull policy of Never"
                        .to_owned(),
            })
        );
        assert_eq!(
            PullDecision::NeverPull.waiting_reason(),
            Some("ErrImageNeverPull")
        );
        let unverified = PullDecision::UseLocal {
            access_verified: false,
        }
        .event(image)
        .unwrap();
        assert_eq!(
            (unverified.kind, unverified.reason),
            (EventKind::Normal, "Pulled")
        );
        assert_eq!(
            unverified.message,
            "Container image \"busybox:latest\" already present on machine"
        );
        let verified = PullDecision::UseLocal {
            access_verified: true,
        }
        .event(image)
        .unwrap();
        assert_eq!(
            verified.message,
            "Container image \"busybox:latest\" already present on machine and can be accessed by the pod"
        );
        assert_eq!(PullDecision::Pull.event(image), None);
        assert_eq!(PullDecision::Pull.waiting_reason(), None);
    }

    #[test]
    fn pull_events() {
        let image = "busybox:latest";
        let pulling = ImageEvent::pulling(image);
        assert_eq!(
            (pulling.kind, pulling.reason),
            (EventKind::Normal, "Pulling")
        );
        assert_eq!(pulling.message, "Pulling image \"busybox:latest\"");
        let back_off = ImageEvent::back_off(image);
        assert_eq!(
            (back_off.kind, back_off.reason),
            (EventKind::Normal, "BackOff")
        );
        assert_eq!(
            back_off.message,
            "Back-off pulling image \"busybox:latest\""
        );
        let failed = ImageEvent::pull_failed(image, "pull QPS exceeded");
        assert_eq!((failed.kind, failed.reason), (EventKind::Warning, "Failed"));
        assert_eq!(
            failed.message,
            "Failed to pull image \"busybox:latest\": pull QPS exceeded"
        );
        let pulled = ImageEvent::pulled(
            image,
            Duration::from_micros(1_561_999),
            Duration::from_nanos(339_656_400_000),
            4_276_098,
        );
        assert_eq!((pulled.kind, pulled.reason), (EventKind::Normal, "Pulled"));
        assert_eq!(
            pulled.message,
            "Successfully pulled image \"busybox:latest\" in 1.561s (5m39.656s including waiting). Image size: 4276098 bytes."
        );
        let inspect = ImageEvent::inspect_failed("", "rpc error: code = Unavailable desc = x");
        assert_eq!(
            (inspect.kind, inspect.reason),
            (EventKind::Warning, "InspectFailed")
        );
        assert_eq!(
            inspect.message,
            "Failed to inspect image \"\": rpc error: code = Unavailable desc = x"
        );
    }

    #[test]
    fn invalid_image_name_event() {
        let error = apply_default_image_tag("ACTOKEY").unwrap_err();
        let event = ImageEvent::invalid_image_name("ACTOKEY", &error);
        assert_eq!(
            (event.kind, event.reason),
            (EventKind::Warning, "InspectFailed")
        );
        assert_eq!(
            event.message,
            "Failed to apply default image tag \"ACTOKEY\": couldn't parse image name \"ACTOKEY\": invalid reference format: repository name (library/ACTOKEY) must be lowercase"
        );
    }

    #[test]
    fn pull_failures_are_classified_by_prefix() {
        let image = "example.com/app:1";
        let plain = PullFailure::classify(image, "rpc error: code = NotFound desc = nope");
        assert_eq!(plain.reason, "ErrImagePull");
        assert_eq!(plain.message, "rpc error: code = NotFound desc = nope");
        assert_eq!(
            plain.summary(),
            "ErrImagePull: rpc error: code = NotFound desc = nope"
        );
        let registry = PullFailure::classify(image, "RegistryUnavailable: connection refused");
        assert_eq!(registry.reason, "RegistryUnavailable");
        assert_eq!(
            registry.message,
            "image pull failed for example.com/app:1 because the registry is unavailable: connection refused"
        );
        let signature = PullFailure::classify(image, "SignatureValidationFailed");
        assert_eq!(signature.reason, "SignatureValidationFailed");
        assert_eq!(
            signature.message,
            "image pull failed for example.com/app:1 because the signature validation failed"
        );
        assert_eq!(
            back_off_waiting_message(image, Some(&plain.summary())),
            "Back-off pulling image \"example.com/app:1\": ErrImagePull: rpc error: code = NotFound desc = nope"
        );
        assert_eq!(
            back_off_waiting_message(image, None),
            "Back-off pulling image \"example.com/app:1\""
        );
    }

    #[test]
    fn go_duration_matches_go() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_nanos(999), "999ns"),
            (Duration::from_nanos(1_000), "1µs"),
            (Duration::from_nanos(1_500), "1.5µs"),
            (Duration::from_nanos(999_999), "999.999µs"),
            (Duration::from_millis(1), "1ms"),
            (Duration::from_micros(1_500), "1.5ms"),
            (Duration::from_nanos(1_000_001), "1.000001ms"),
            (Duration::from_millis(393), "393ms"),
            (Duration::from_millis(999), "999ms"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_millis(1_561), "1.561s"),
            (Duration::from_nanos(1_000_000_001), "1.000000001s"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_secs(59), "59s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_millis(339_656), "5m39.656s"),
            (Duration::from_secs(300), "5m0s"),
            (Duration::from_secs(3_599), "59m59s"),
            (Duration::from_secs(3_600), "1h0m0s"),
            (Duration::from_millis(3_723_500), "1h2m3.5s"),
            (Duration::from_secs(100 * 3_600), "100h0m0s"),
        ];
        for (duration, expected) in cases {
            assert_eq!(go_duration(duration), expected, "{duration:?}");
        }
        // Far beyond Go's range: still formatted, never a panic.
        assert!(go_duration(Duration::MAX).ends_with('s'));
    }

    #[test]
    fn truncation_drops_sub_millisecond_parts() {
        assert_eq!(
            truncate_to_millis(Duration::from_nanos(393_999_999)),
            Duration::from_millis(393)
        );
        assert_eq!(
            go_duration(truncate_to_millis(Duration::from_nanos(999_999))),
            "0s"
        );
        assert_eq!(
            truncate_to_millis(Duration::from_secs(5)),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn back_off_key_joins_pod_uid_and_image() {
        assert_eq!(
            PullBackOff::key("f3d9379b-1", "busybox:latest"),
            "f3d9379b-1_busybox:latest"
        );
    }

    #[test]
    fn back_off_doubles_up_to_the_cap() {
        let start = Instant::now();
        let mut back_off = PullBackOff::new();
        let key = PullBackOff::key("uid", "img:latest");
        assert!(!back_off.is_in_back_off(&key, start));
        assert_eq!(back_off.delay(&key), Duration::ZERO);

        let mut now = start;
        let expected = [10, 20, 40, 80, 160, 300, 300, 300];
        for seconds in expected {
            back_off.record_failure(&key, now, Some("ErrImagePull: boom".to_owned()));
            assert_eq!(back_off.delay(&key), Duration::from_secs(seconds));
            assert!(back_off.is_in_back_off(&key, now));
            let window_end = now + Duration::from_secs(seconds);
            assert!(back_off.is_in_back_off(&key, window_end - Duration::from_millis(1)));
            assert!(!back_off.is_in_back_off(&key, window_end));
            now = window_end;
        }
        assert_eq!(back_off.last_failure(&key), Some("ErrImagePull: boom"));
    }

    #[test]
    fn back_off_is_per_key() {
        let now = Instant::now();
        let mut back_off = PullBackOff::new();
        let first = PullBackOff::key("pod-a", "img:1");
        let second = PullBackOff::key("pod-b", "img:1");
        back_off.record_failure(&first, now, None);
        assert!(back_off.is_in_back_off(&first, now));
        assert!(!back_off.is_in_back_off(&second, now));
        assert_eq!(back_off.last_failure(&first), None);
        back_off.reset(&first);
        assert!(!back_off.is_in_back_off(&first, now));
        assert!(back_off.is_empty());
    }

    #[test]
    fn idle_entries_expire_after_twice_the_cap() {
        let start = Instant::now();
        let mut back_off = PullBackOff::new();
        let key = "uid_img:latest";
        for step in 0..6 {
            back_off.record_failure(key, start + Duration::from_secs(step), None);
        }
        assert_eq!(back_off.delay(key), Duration::from_secs(300));
        let last = start + Duration::from_secs(5);

        // Exactly 600 s idle is not yet expired: the next failure keeps the 300 s cap.
        let mut kept = back_off.clone();
        kept.record_failure(key, last + Duration::from_secs(600), None);
        assert_eq!(kept.delay(key), Duration::from_secs(300));

        // Past 600 s the entry counts as fresh: the next failure starts over at 10 s.
        let mut fresh = back_off.clone();
        fresh.record_failure(key, last + Duration::from_millis(600_001), None);
        assert_eq!(fresh.delay(key), Duration::from_secs(10));

        // An expired entry never reports back-off, even with a huge configured window.
        let mut long =
            PullBackOff::with_limits(Duration::from_secs(1_000), Duration::from_secs(10));
        long.record_failure(key, start, None);
        assert!(long.is_in_back_off(key, start + Duration::from_secs(20)));
        assert!(!long.is_in_back_off(key, start + Duration::from_secs(21)));
    }

    #[test]
    fn gc_removes_only_idle_entries() {
        let start = Instant::now();
        let mut back_off = PullBackOff::default();
        back_off.record_failure("old", start, None);
        back_off.record_failure("recent", start + Duration::from_secs(500), None);
        back_off.gc(start + Duration::from_secs(600));
        assert_eq!(back_off.len(), 2);
        back_off.gc(start + Duration::from_secs(601));
        assert_eq!(back_off.len(), 1);
        assert_eq!(back_off.delay("recent"), Duration::from_secs(10));
        assert_eq!(back_off.delay("old"), Duration::ZERO);
    }

    #[test]
    fn clock_going_backwards_does_not_panic() {
        let start = Instant::now();
        let later = start + Duration::from_secs(30);
        let mut back_off = PullBackOff::new();
        back_off.record_failure("k", later, None);
        assert!(back_off.is_in_back_off("k", start));
        back_off.record_failure("k", start, None);
        back_off.gc(start);
        assert_eq!(back_off.delay("k"), Duration::from_secs(20));
    }

    #[test]
    fn odd_inputs_never_panic() {
        for image in crate::reference::tests::odd_strings() {
            let policy = default_pull_policy(&image);
            let _ = PullPolicy::from_field(&image, &image);
            let _ = image.parse::<PullPolicy>();
            for local in [
                LocalImage::Absent,
                LocalImage::Present,
                LocalImage::PresentAndAccessible,
                LocalImage::PresentButInaccessible,
            ] {
                let _ = decide_pull(policy, local).event(&image);
            }
            let _ = ImageEvent::pulled(&image, Duration::MAX, Duration::ZERO, u64::MAX);
            let failure = PullFailure::classify(&image, &image);
            let _ = back_off_waiting_message(&image, Some(&failure.summary()));
        }
    }
}
