//! The registry client against a misbehaving registry: the test bed's registry A behind our
//! fault proxy, which resets, truncates, corrupts, throttles, fails, stalls and ignores `Range`
//! on request. Every failure must end in a verified result or a clear error, quickly.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use nodelet_image::digest::Digest;
use nodelet_image::oci::{Descriptor, Manifest, ManifestKind};
use nodelet_image::registry::{
    ClientOptions, RegistryClient, RegistryError, RegistryHosts, RegistrySettings, RepositoryRef,
    verify_blob,
};
use nodelet_testbed::Bed;
use nodelet_testbed::fault_proxy::{Fault, FaultProxy, Rule};
use reqwest::StatusCode;
use tokio::sync::mpsc;

/// No test may take longer than this, whatever the proxy does.
const TEST_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_ATTEMPTS: u32 = 3;

async fn within<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .expect("test timed out")
}

/// Registry A behind a fresh proxy, and a client with short timeouts pointed at the proxy.
struct Setup {
    _bed: Bed,
    proxy: FaultProxy,
    client: RegistryClient,
    repo: RepositoryRef,
}

fn setup(repository: &str) -> Setup {
    let bed = Bed::shared().unwrap();
    let proxy = FaultProxy::start(&bed.plain.host).unwrap();
    let settings = BTreeMap::from([(
        proxy.host(),
        RegistrySettings {
            insecure: true,
            ..Default::default()
        },
    )]);
    let client = RegistryClient::new(
        RegistryHosts::new(settings, Vec::new()),
        ClientOptions {
            connect_timeout: Duration::from_secs(2),
            read_timeout: Duration::from_secs(1),
            max_attempts: MAX_ATTEMPTS,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
            max_retry_after: Duration::from_secs(5),
        },
    );
    let repo = RepositoryRef {
        registry: proxy.host(),
        repository: repository.into(),
    };
    Setup {
        _bed: bed,
        proxy,
        client,
        repo,
    }
}

impl Setup {
    /// The `tiny` manifest, fetched before any fault is injected.
    async fn manifest(&self) -> Manifest {
        let fetched = self
            .client
            .fetch_manifest(&self.repo, "v1", None)
            .await
            .unwrap();
        match fetched.kind {
            ManifestKind::Image(manifest) => manifest,
            ManifestKind::Index(_) => panic!("expected an image manifest"),
        }
    }

    /// The largest layer (the busybox base): big enough to be cut in the middle.
    async fn layer(&self) -> Descriptor {
        let manifest = self.manifest().await;
        let layer = manifest.layers.into_iter().max_by_key(|l| l.size).unwrap();
        assert!(layer.size > 200_000, "{}", layer.size);
        layer
    }

    async fn fetch_blob(&self, descriptor: &Descriptor) -> Result<Vec<u8>, RegistryError> {
        let (tx, mut rx) = mpsc::channel::<Bytes>(16);
        let collect = async {
            let mut bytes = Vec::new();
            while let Some(chunk) = rx.recv().await {
                bytes.extend_from_slice(&chunk);
            }
            bytes
        };
        let (fetched, bytes) = tokio::join!(
            self.client.fetch_blob(&self.repo, descriptor, None, tx),
            collect
        );
        let count = fetched?;
        assert_eq!(count, bytes.len() as u64);
        Ok(bytes)
    }

    /// `(Range header, status)` of each request for a path containing `needle`.
    fn ranges(&self, needle: &str) -> Vec<(Option<String>, u16)> {
        self.proxy
            .requests_to(needle)
            .into_iter()
            .map(|r| (r.range, r.status))
            .collect()
    }
}

fn assert_verified(bytes: &[u8], layer: &Descriptor) {
    assert_eq!(bytes.len() as u64, layer.size);
    assert_eq!(Digest::sha256_of(bytes).to_string(), layer.digest);
    verify_blob("proxy", layer, bytes).unwrap();
}

/// One full request, then one resume asking for the bytes after those received. A reset may
/// drop bytes still in flight, so the resume offset is at most the 100 000 sent, not exactly.
fn assert_resumed(requests: &[(Option<String>, u16)], resume_status: u16) {
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0], (None, 200), "{requests:?}");
    let offset: u64 = requests[1]
        .0
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("not an open range: {requests:?}"));
    assert!(offset > 0 && offset <= 100_000, "{requests:?}");
    assert_eq!(requests[1].1, resume_status, "{requests:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_mid_blob_resumes_with_range() {
    let s = setup("tiny");
    within(async {
        let layer = s.layer().await;
        s.proxy
            .inject(Rule::new(&layer.digest, Fault::ResetAfter(100_000)));
        let bytes = s.fetch_blob(&layer).await.unwrap();
        assert_verified(&bytes, &layer);
        assert_resumed(&s.ranges(&layer.digest), 206);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_body_resumes_with_range() {
    let s = setup("tiny");
    within(async {
        let layer = s.layer().await;
        // Cut twice: the second resume starts where the first one ended.
        s.proxy
            .inject(Rule::new(&layer.digest, Fault::TruncateAfter(50_000)));
        s.proxy
            .inject(Rule::new(&layer.digest, Fault::TruncateAfter(20_000)).nth(2));
        let bytes = s.fetch_blob(&layer).await.unwrap();
        assert_verified(&bytes, &layer);
        assert_eq!(
            s.ranges(&layer.digest),
            [
                (None, 200),
                (Some("bytes=50000-".into()), 206),
                (Some("bytes=70000-".into()), 206),
            ]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ignored_range_is_skipped_and_the_blob_still_verifies() {
    let s = setup("tiny");
    within(async {
        let layer = s.layer().await;
        s.proxy
            .inject(Rule::new(&layer.digest, Fault::ResetAfter(100_000)));
        s.proxy
            .inject(Rule::new(&layer.digest, Fault::IgnoreRange).nth(2));
        let bytes = s.fetch_blob(&layer).await.unwrap();
        assert_verified(&bytes, &layer);
        // The resume asked for a range and got the whole blob (200), of which the client
        // dropped what it already had.
        assert_resumed(&s.ranges(&layer.digest), 200);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_resets_end_in_an_error_naming_the_blob() {
    let s = setup("tiny");
    within(async {
        let layer = s.layer().await;
        s.proxy
            .inject(Rule::new(&layer.digest, Fault::ResetAfter(10_000)).always());
        let err = s.fetch_blob(&layer).await.unwrap_err();
        assert!(
            matches!(&err, RegistryError::Unreachable { registry, .. } if registry == &s.proxy.host()),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&s.proxy.host())
                && text.contains(&layer.digest)
                && text.contains(&format!("interrupted {MAX_ATTEMPTS} times"))
                && text.contains("reset by peer"),
            "{text}"
        );
        assert_eq!(s.ranges(&layer.digest).len(), MAX_ATTEMPTS as usize);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_manifest_body_is_fetched_again() {
    let s = setup("tiny");
    within(async {
        s.proxy
            .inject(Rule::new("/manifests/v1", Fault::TruncateAfter(100)));
        s.proxy
            .inject(Rule::new("/manifests/latest", Fault::ResetAfter(100)));
        let v1 = s.client.fetch_manifest(&s.repo, "v1", None).await.unwrap();
        let latest = s
            .client
            .fetch_manifest(&s.repo, "latest", None)
            .await
            .unwrap();
        assert_eq!(v1.digest, latest.digest);
        assert_eq!(Digest::sha256_of(&v1.bytes), v1.digest);
        assert_eq!(s.ranges("/manifests/v1"), [(None, 200), (None, 200)]);
        assert_eq!(s.ranges("/manifests/latest"), [(None, 200), (None, 200)]);

        // Broken every time: an error naming the manifest, after the allowed attempts.
        s.proxy
            .inject(Rule::new(v1.digest.to_string(), Fault::TruncateAfter(100)).always());
        let err = s
            .client
            .fetch_manifest(&s.repo, &v1.digest.to_string(), None)
            .await
            .unwrap_err();
        assert!(matches!(err, RegistryError::Unreachable { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains(&s.proxy.host()) && text.contains(&format!("manifest {}", v1.digest)),
            "{text}"
        );
        assert_eq!(
            s.proxy.requests_to(&v1.digest.to_string()).len(),
            MAX_ATTEMPTS as usize
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_body_fails_verification_never_silently() {
    let s = setup("tiny");
    within(async {
        let manifest = s.manifest().await;
        let layer = manifest.layers.iter().max_by_key(|l| l.size).unwrap();

        // A streamed layer: the size is right, so fetch_blob hands it over; the caller's
        // digest check refuses it.
        s.proxy.inject(Rule::new(&layer.digest, Fault::Corrupt));
        let bytes = s.fetch_blob(layer).await.unwrap();
        assert_eq!(bytes.len() as u64, layer.size);
        let err = verify_blob(&s.repo.registry, layer, &bytes).unwrap_err();
        assert!(
            matches!(&err, RegistryError::DigestMismatch { expected, .. } if expected == &layer.digest),
            "{err:?}"
        );
        assert!(err.to_string().contains(&s.proxy.host()), "{err}");

        // A config fetched whole is verified by the client itself.
        s.proxy
            .inject(Rule::new(&manifest.config.digest, Fault::Corrupt));
        let err = s
            .client
            .fetch_blob_bytes(&s.repo, &manifest.config, None)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, RegistryError::DigestMismatch { expected, .. } if expected == &manifest.config.digest),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&s.proxy.host()) && text.contains(&manifest.config.digest),
            "{text}"
        );

        // Manifests: by tag against Docker-Content-Digest, by digest against the digest.
        let digest = s
            .client
            .fetch_manifest(&s.repo, "v1", None)
            .await
            .unwrap()
            .digest
            .to_string();
        for reference in ["v1", digest.as_str()] {
            s.proxy.inject(Rule::new(
                format!("/manifests/{reference}"),
                Fault::Corrupt,
            ));
            let err = s
                .client
                .fetch_manifest(&s.repo, reference, None)
                .await
                .unwrap_err();
            assert!(
                matches!(&err, RegistryError::DigestMismatch { expected, .. } if expected == &digest),
                "{reference}: {err:?}"
            );
            assert!(err.to_string().contains(&s.proxy.host()), "{err}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn too_many_requests_waits_for_retry_after() {
    let s = setup("tiny");
    within(async {
        s.proxy.inject(Rule::new(
            "/manifests/v1",
            Fault::TooManyRequests {
                retry_after_secs: 1,
            },
        ));
        let started = Instant::now();
        let fetched = s.client.fetch_manifest(&s.repo, "v1", None).await.unwrap();
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(950), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        let statuses: Vec<u16> = s.ranges("/manifests/v1").iter().map(|r| r.1).collect();
        assert_eq!(statuses, [429, 200]);

        // Twice in a row: two waits, still within the attempts.
        s.proxy.inject(
            Rule::new(
                "/manifests/latest",
                Fault::TooManyRequests {
                    retry_after_secs: 1,
                },
            )
            .times(2),
        );
        let started = Instant::now();
        let latest = s
            .client
            .fetch_manifest(&s.repo, "latest", None)
            .await
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(1900));
        assert_eq!(latest.digest, fetched.digest);
        let statuses: Vec<u16> = s.ranges("/manifests/latest").iter().map(|r| r.1).collect();
        assert_eq!(statuses, [429, 429, 200]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_are_retried_then_reported() {
    let s = setup("tiny");
    within(async {
        s.proxy
            .inject(Rule::new("/manifests/v1", Fault::ServerError).times(2));
        s.client.fetch_manifest(&s.repo, "v1", None).await.unwrap();
        let statuses: Vec<u16> = s.ranges("/manifests/v1").iter().map(|r| r.1).collect();
        assert_eq!(statuses, [500, 500, 200]);

        s.proxy
            .inject(Rule::new("/manifests/latest", Fault::ServerError).always());
        let err = s
            .client
            .fetch_manifest(&s.repo, "latest", None)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, RegistryError::Status { registry, status, .. }
                if registry == &s.proxy.host() && *status == StatusCode::INTERNAL_SERVER_ERROR),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&s.proxy.host())
                && text.contains("500")
                && text.contains("manifest latest")
                && text.contains(&format!("after {MAX_ATTEMPTS} attempts"))
                && text.contains("injected: internal server error"),
            "{text}"
        );
        assert_eq!(
            s.proxy.requests_to("/manifests/latest").len(),
            MAX_ATTEMPTS as usize
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_peer_is_an_error_within_bounded_time() {
    let s = setup("tiny");
    within(async {
        let manifest = s.manifest().await;
        let layer = manifest.layers.iter().max_by_key(|l| l.size).unwrap();
        let stall = Fault::Stall(Duration::from_secs(120));

        s.proxy
            .inject(Rule::new(&layer.digest, stall.clone()).always());
        let started = Instant::now();
        let err = s.fetch_blob(layer).await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert!(matches!(err, RegistryError::Unreachable { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains(&s.proxy.host()) && text.contains(&layer.digest),
            "{text}"
        );

        s.proxy
            .inject(Rule::new("/manifests/latest", stall).always());
        let started = Instant::now();
        let err = s
            .client
            .fetch_manifest(&s.repo, "latest", None)
            .await
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        let text = err.to_string();
        assert!(
            text.contains(&s.proxy.host()) && text.contains("manifest latest"),
            "{text}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_token_is_renewed_once_and_a_refused_one_reported() {
    let s = setup("tiny");
    within(async {
        // The first answer is a bearer challenge: the client fetches a token and retries.
        s.proxy
            .inject(Rule::new("/manifests/", Fault::Unauthorized));
        s.client.fetch_manifest(&s.repo, "v1", None).await.unwrap();
        assert_eq!(s.proxy.tokens_issued(), 1);
        let token1 = Some("Bearer fault-proxy-token-1".to_string());
        let auth: Vec<_> = s
            .proxy
            .requests_to("/manifests/")
            .into_iter()
            .map(|r| r.authorization)
            .collect();
        assert_eq!(auth, [None, token1.clone()]);

        // The token is cached: the next requests carry it without asking again.
        let manifest = s.manifest().await;
        s.client
            .fetch_blob_bytes(&s.repo, &manifest.config, None)
            .await
            .unwrap();
        assert_eq!(s.proxy.tokens_issued(), 1);
        assert!(
            s.proxy
                .requests_to("/v2/tiny/")
                .iter()
                .skip(2)
                .all(|r| r.authorization == token1),
            "{:?}",
            s.proxy.requests()
        );

        // The registry now refuses it (expired): one new token, one retry.
        s.proxy
            .inject(Rule::new("/manifests/latest", Fault::Unauthorized));
        s.client
            .fetch_manifest(&s.repo, "latest", None)
            .await
            .unwrap();
        assert_eq!(s.proxy.tokens_issued(), 2);
        let auth: Vec<_> = s
            .proxy
            .requests_to("/manifests/latest")
            .into_iter()
            .map(|r| r.authorization)
            .collect();
        assert_eq!(
            auth,
            [token1, Some("Bearer fault-proxy-token-2".to_string())]
        );

        // Refused whatever the token: an Unauthorized error, not a loop.
        s.proxy
            .inject(Rule::new(&manifest.config.digest, Fault::Unauthorized).always());
        let err = s
            .client
            .fetch_blob_bytes(&s.repo, &manifest.config, None)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, RegistryError::Unauthorized { registry, .. } if registry == &s.proxy.host()),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains(&s.proxy.host()) && text.contains("401"), "{text}");
        assert!(s.proxy.requests_to(&manifest.config.digest).len() <= 4);
    })
    .await;
}
