//! The registry client against the test bed's real registries: anonymous, basic and bearer
//! auth, token caching per credential, TLS trust, plain HTTP only when configured insecure,
//! platform selection in OCI and Docker indexes, and mirrors.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use nodelet_image::digest::Digest;
use nodelet_image::keyring::Credential;
use nodelet_image::oci::{
    DOCKER_CONFIG, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, Descriptor, ImageConfigFile, Manifest,
    ManifestKind, OCI_INDEX, OCI_MANIFEST, Platform,
};
use nodelet_image::registry::{
    ClientOptions, FetchedManifest, RegistryClient, RegistryError, RegistryHosts, RegistrySettings,
    RepositoryRef,
};
use nodelet_testbed::{Bed, BedInfo, Contents, Login, RegistryInfo};
use tokio::sync::mpsc;

/// No test may take longer than this, whatever the registries do.
const TEST_TIMEOUT: Duration = Duration::from_secs(90);

async fn within<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .expect("test timed out")
}

fn insecure(registry: &str) -> BTreeMap<String, RegistrySettings> {
    BTreeMap::from([(
        registry.to_string(),
        RegistrySettings {
            insecure: true,
            ..Default::default()
        },
    )])
}

/// The client as the node builds it: registry A insecure, the bed's `certs.d` trusted.
fn client(bed: &BedInfo) -> RegistryClient {
    RegistryClient::new(
        RegistryHosts::new(insecure(&bed.plain.host), vec![bed.certs_d.clone()]),
        ClientOptions::default(),
    )
}

/// Short timeouts and back-off, for tests that expect failures.
fn quick_options() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(2),
        max_attempts: 2,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(1),
    }
}

fn repo(registry: &RegistryInfo, repository: &str) -> RepositoryRef {
    RepositoryRef {
        registry: registry.host.clone(),
        repository: repository.into(),
    }
}

fn login(login: &Login) -> Credential {
    Credential::basic(&login.username, &login.password)
}

fn image_manifest(fetched: &FetchedManifest) -> &Manifest {
    match &fetched.kind {
        ManifestKind::Image(manifest) => manifest,
        ManifestKind::Index(_) => panic!("expected an image manifest, got an index"),
    }
}

/// Streams a blob through `fetch_blob` and returns the bytes received.
async fn fetch_blob(
    client: &RegistryClient,
    repo: &RepositoryRef,
    descriptor: &Descriptor,
    credential: Option<&Credential>,
) -> Result<Vec<u8>, RegistryError> {
    let (tx, mut rx) = mpsc::channel::<Bytes>(16);
    let collect = async {
        let mut bytes = Vec::new();
        while let Some(chunk) = rx.recv().await {
            bytes.extend_from_slice(&chunk);
        }
        bytes
    };
    let (fetched, bytes) =
        tokio::join!(client.fetch_blob(repo, descriptor, credential, tx), collect);
    let count = fetched?;
    assert_eq!(count, bytes.len() as u64, "fetch_blob's count");
    Ok(bytes)
}

/// Fetches the manifest, the config and every layer, checking each against its descriptor.
async fn pull_whole_image(
    client: &RegistryClient,
    repo: &RepositoryRef,
    reference: &str,
    credential: Option<&Credential>,
) -> Result<FetchedManifest, RegistryError> {
    let fetched = client.fetch_manifest(repo, reference, credential).await?;
    let manifest = image_manifest(&fetched).clone();
    let config = client
        .fetch_blob_bytes(repo, &manifest.config, credential)
        .await?;
    assert_eq!(
        Digest::sha256_of(&config).to_string(),
        manifest.config.digest
    );
    let config: ImageConfigFile = serde_json::from_slice(&config).expect("config parses");
    assert_eq!(config.os, "linux");
    assert_eq!(config.rootfs.diff_ids.len(), manifest.layers.len());
    for layer in &manifest.layers {
        let bytes = fetch_blob(client, repo, layer, credential).await?;
        assert_eq!(bytes.len() as u64, layer.size, "{}", layer.digest);
        assert_eq!(Digest::sha256_of(&bytes).to_string(), layer.digest);
    }
    Ok(fetched)
}

#[tokio::test(flavor = "multi_thread")]
async fn pulls_anonymously_from_the_plain_registry_by_tag_and_by_digest() {
    let bed = Bed::shared().unwrap();
    within(async {
        let client = client(&bed);
        let tiny = &bed.images["tiny"];
        let repo = repo(&bed.plain, "tiny");

        let by_tag = pull_whole_image(&client, &repo, "v1", None).await.unwrap();
        assert_eq!(by_tag.digest.to_string(), tiny.digest);
        assert_eq!(by_tag.media_type, OCI_MANIFEST);
        assert_eq!(Digest::sha256_of(&by_tag.bytes), by_tag.digest);

        let by_digest = pull_whole_image(&client, &repo, &tiny.digest, None)
            .await
            .unwrap();
        assert_eq!(by_digest.digest.to_string(), tiny.digest);
        assert_eq!(by_digest.bytes, by_tag.bytes);

        // The `latest` tag names the same manifest.
        let latest = client.fetch_manifest(&repo, "latest", None).await.unwrap();
        assert_eq!(latest.digest, by_tag.digest);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_registry_serves_the_puller() {
    let bed = Bed::shared().unwrap();
    within(async {
        let client = client(&bed);
        let puller = login(&bed.puller);
        let private = &bed.images["private"];
        let fetched = pull_whole_image(&client, &repo(&bed.basic, "private"), "v1", Some(&puller))
            .await
            .unwrap();
        assert_eq!(fetched.digest.to_string(), private.digest);
        // The same client, the same credential, another repository.
        let tiny = client
            .fetch_manifest(&repo(&bed.basic, "tiny"), "v1", Some(&puller))
            .await
            .unwrap();
        assert_eq!(tiny.digest.to_string(), bed.images["tiny"].digest);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_registry_refuses_anonymous_pulls_and_wrong_passwords() {
    let bed = Bed::shared().unwrap();
    within(async {
        let client = client(&bed);
        let repo = repo(&bed.basic, "private");

        let anonymous = client.fetch_manifest(&repo, "v1", None).await.unwrap_err();
        assert!(
            matches!(&anonymous, RegistryError::Unauthorized { registry, repository, .. }
                if registry == &bed.basic.host && repository == "private"),
            "{anonymous:?}"
        );
        let text = anonymous.to_string();
        assert!(
            text.contains(&bed.basic.host) && text.contains("private") && text.contains("401"),
            "{text}"
        );

        let wrong = Credential::basic(&bed.puller.username, "not-the-password");
        let refused = client
            .fetch_manifest(&repo, "v1", Some(&wrong))
            .await
            .unwrap_err();
        assert!(
            matches!(refused, RegistryError::Unauthorized { .. }),
            "{refused:?}"
        );
        let text = refused.to_string();
        assert!(
            text.contains(&bed.basic.host) && text.contains("401"),
            "{text}"
        );
        assert!(
            !text.contains("not-the-password")
                && !format!("{refused:?}").contains("not-the-password"),
            "the password leaked: {text}"
        );

        // A refused credential does not spoil the right one on the same client.
        let right = client
            .fetch_manifest(&repo, "v1", Some(&login(&bed.puller)))
            .await
            .unwrap();
        assert_eq!(right.digest.to_string(), bed.images["private"].digest);
    })
    .await;
}

/// Lines of the token server's log for one user and scope.
fn token_requests(bed: &BedInfo, user: &str, scope: &str) -> usize {
    let log = std::fs::read_to_string(&bed.token_log).unwrap_or_default();
    let prefix = format!("user={user} scope={scope} ");
    log.lines().filter(|line| line.starts_with(&prefix)).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn token_registry_fetches_one_token_per_credential_and_scope() {
    // A bed of our own, so no other test's token requests land in the log we count.
    let bed = Bed::start(None, Contents::Images).unwrap();
    within(async {
        let client = client(&bed);
        let puller = login(&bed.puller);
        let pusher = login(&bed.pusher);
        let private = repo(&bed.token, "private");
        let tiny = repo(&bed.token, "tiny");
        let private_scope = "repository:private:pull";

        // Manifest, config and layers: several requests, one token.
        let fetched = pull_whole_image(&client, &private, "v1", Some(&puller))
            .await
            .unwrap();
        assert_eq!(fetched.digest.to_string(), bed.images["private"].digest);
        assert_eq!(token_requests(&bed, "puller", private_scope), 1);

        // Another credential never rides on the puller's token: it asks for its own.
        let as_pusher = client
            .fetch_manifest(&private, "v1", Some(&pusher))
            .await
            .unwrap();
        assert_eq!(as_pusher.digest, fetched.digest);
        assert_eq!(token_requests(&bed, "pusher", private_scope), 1);

        // Back to the puller: still cached.
        client
            .fetch_manifest(&private, &bed.images["private"].digest, Some(&puller))
            .await
            .unwrap();
        assert_eq!(token_requests(&bed, "puller", private_scope), 1);
        assert_eq!(token_requests(&bed, "pusher", private_scope), 1);

        // Another repository is another scope: one more token for it.
        pull_whole_image(&client, &tiny, "v1", Some(&puller))
            .await
            .unwrap();
        client
            .fetch_manifest(&tiny, "latest", Some(&puller))
            .await
            .unwrap();
        assert_eq!(token_requests(&bed, "puller", "repository:tiny:pull"), 1);

        let log = std::fs::read_to_string(&bed.token_log).unwrap();
        assert!(!log.contains("rejected"), "{log}");
        assert_eq!(log.lines().count(), 3, "{log}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn token_registry_refuses_anonymous_pulls() {
    let bed = Bed::shared().unwrap();
    within(async {
        let client = client(&bed);
        let err = client
            .fetch_manifest(&repo(&bed.token, "tiny"), "v1", None)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, RegistryError::Unauthorized { registry, repository, .. }
                if registry == &bed.token.host && repository == "tiny"),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&bed.token.host) && text.contains("401"),
            "{text}"
        );

        // A wrong password is refused by the token server itself, and said so.
        let wrong = Credential::basic(&bed.puller.username, "not-the-password");
        let err = client
            .fetch_manifest(&repo(&bed.token, "tiny"), "v1", Some(&wrong))
            .await
            .unwrap_err();
        assert!(matches!(&err, RegistryError::Token { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains(&bed.token_realm) && text.contains("401"),
            "{text}"
        );
        assert!(!text.contains("not-the-password"), "{text}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_tag_is_not_found_and_named() {
    let bed = Bed::shared().unwrap();
    within(async {
        let client = client(&bed);
        let err = client
            .fetch_manifest(&repo(&bed.plain, "tiny"), "no-such-tag", None)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, RegistryError::NotFound { registry, repository, what }
                if registry == &bed.plain.host && repository == "tiny" && what.contains("no-such-tag")),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("no-such-tag") && text.contains(&bed.plain.host) && text.contains("404"),
            "{text}"
        );

        // The same behind auth: B and C answer 404 once the credential is accepted.
        for registry in [&bed.basic, &bed.token] {
            let err = client
                .fetch_manifest(&repo(registry, "tiny"), "no-such-tag", Some(&login(&bed.puller)))
                .await
                .unwrap_err();
            assert!(matches!(err, RegistryError::NotFound { .. }), "{err:?}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_untrusted_ca_is_a_tls_error() {
    let bed = Bed::shared().unwrap();
    within(async {
        // No certs.d: the bed's CA is not trusted.
        let client = RegistryClient::new(
            RegistryHosts::new(insecure(&bed.plain.host), Vec::new()),
            quick_options(),
        );
        for registry in [&bed.basic, &bed.token] {
            let err = client
                .fetch_manifest(&repo(registry, "tiny"), "v1", Some(&login(&bed.puller)))
                .await
                .unwrap_err();
            assert!(
                matches!(&err, RegistryError::Tls { registry: r, .. } if r == &registry.host),
                "{err:?}"
            );
            let text = err.to_string();
            assert!(
                text.contains(&registry.host) && text.to_lowercase().contains("certificate"),
                "{text}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_registry_not_marked_insecure_is_refused() {
    let bed = Bed::shared().unwrap();
    within(async {
        let client = RegistryClient::new(
            RegistryHosts::new(BTreeMap::new(), vec![bed.certs_d.clone()]),
            ClientOptions::default(),
        );
        let started = std::time::Instant::now();
        let err = client
            .fetch_manifest(&repo(&bed.plain, "tiny"), "v1", None)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, RegistryError::Tls { registry, .. } if registry == &bed.plain.host),
            "{err:?}"
        );
        let text = err.to_string();
        // Refused at once, not retried, and the message says what to do.
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(
            text.contains(&bed.plain.host)
                && text.contains("does not speak TLS")
                && text.contains("insecure"),
            "{text}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn resolve_picks_the_platform_from_oci_and_docker_indexes() {
    let bed = Bed::shared().unwrap();
    within(async {
        let client = client(&bed);
        for (name, index_type, manifest_type) in [
            ("multi", OCI_INDEX, OCI_MANIFEST),
            ("multi-docker", DOCKER_MANIFEST_LIST, DOCKER_MANIFEST),
        ] {
            let repo = repo(&bed.plain, name);
            let image = &bed.images[name];
            assert_eq!(image.platforms, ["linux/amd64", "linux/arm64/v8"]);
            let mut chosen = Vec::new();
            for (platform, architecture, variant) in [
                ("linux/amd64", "amd64", None),
                ("linux/arm64/v8", "arm64", Some("v8")),
                ("linux/arm64", "arm64", Some("v8")),
            ] {
                let (index, manifest) = client
                    .resolve(&repo, "v1", &Platform::parse(platform).unwrap(), None)
                    .await
                    .unwrap();
                let index = index.expect("an index");
                assert_eq!(index.digest.to_string(), image.digest, "{name}");
                assert_eq!(index.media_type, index_type, "{name}");
                let ManifestKind::Index(entries) = &index.kind else {
                    panic!("{name}: not an index");
                };
                let entry = entries
                    .manifests
                    .iter()
                    .find(|d| d.digest == manifest.digest.to_string())
                    .expect("the chosen manifest is an index entry");
                let offered = entry.platform.as_ref().unwrap();
                assert_eq!(offered.architecture, architecture, "{name} {platform}");
                assert_eq!(offered.variant.as_deref(), variant, "{name} {platform}");
                assert_eq!(manifest.media_type, manifest_type, "{name} {platform}");

                // The config agrees with the index about the platform.
                let config = client
                    .fetch_blob_bytes(&repo, &image_manifest(&manifest).config, None)
                    .await
                    .unwrap();
                let config: ImageConfigFile = serde_json::from_slice(&config).unwrap();
                assert_eq!(config.architecture, architecture, "{name} {platform}");
                chosen.push(manifest.digest);
            }
            assert_ne!(chosen[0], chosen[1], "{name}: amd64 and arm64 differ");
            assert_eq!(chosen[1], chosen[2], "{name}: arm64 defaults to v8");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unoffered_platform_names_the_offered_ones() {
    let bed = Bed::shared().unwrap();
    within(async {
        let client = client(&bed);
        for name in ["multi", "multi-docker"] {
            let err = client
                .resolve(
                    &repo(&bed.plain, name),
                    "v1",
                    &Platform::parse("linux/s390x").unwrap(),
                    None,
                )
                .await
                .unwrap_err();
            assert!(
                matches!(&err, RegistryError::NoMatchingPlatform { wanted, offered, .. }
                    if wanted == "linux/s390x" && offered == "linux/amd64, linux/arm64/v8"),
                "{err:?}"
            );
            let text = err.to_string();
            assert!(
                text.contains("linux/s390x")
                    && text.contains("linux/amd64, linux/arm64/v8")
                    && text.contains(&format!("{}/{name}", bed.plain.host)),
                "{text}"
            );
        }
        // A single manifest resolves to itself, whatever the platform.
        let (index, manifest) = client
            .resolve(
                &repo(&bed.plain, "tiny"),
                "v1",
                &Platform::parse("linux/s390x").unwrap(),
                None,
            )
            .await
            .unwrap();
        assert!(index.is_none());
        assert_eq!(manifest.digest.to_string(), bed.images["tiny"].digest);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_config_image_is_docker_schema2() {
    let bed = Bed::shared().unwrap();
    within(async {
        let client = client(&bed);
        let repo = repo(&bed.plain, "config");
        let fetched = pull_whole_image(&client, &repo, "v1", None).await.unwrap();
        assert_eq!(fetched.media_type, DOCKER_MANIFEST);
        assert_eq!(fetched.digest.to_string(), bed.images["config"].digest);
        let manifest = image_manifest(&fetched);
        assert_eq!(manifest.media_type.as_deref(), Some(DOCKER_MANIFEST));
        assert_eq!(manifest.config.media_type, DOCKER_CONFIG);
        let config = client
            .fetch_blob_bytes(&repo, &manifest.config, None)
            .await
            .unwrap();
        let config: ImageConfigFile = serde_json::from_slice(&config).unwrap();
        assert_eq!(
            config.config.entrypoint.as_deref(),
            Some(&["/bin/echo".to_string(), "entrypoint".to_string()][..])
        );
        assert_eq!(config.config.working_dir.as_deref(), Some("/srv/app"));
    })
    .await;
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_mirror_falls_back_to_the_registry() {
    let bed = Bed::shared().unwrap();
    within(async {
        let dead = format!("http://127.0.0.1:{}", closed_port());
        let settings = BTreeMap::from([(
            bed.plain.host.clone(),
            RegistrySettings {
                insecure: true,
                mirrors: vec![dead],
                ..Default::default()
            },
        )]);
        let client = RegistryClient::new(
            RegistryHosts::new(settings, vec![bed.certs_d.clone()]),
            ClientOptions::default(),
        );
        let started = std::time::Instant::now();
        let fetched = pull_whole_image(&client, &repo(&bed.plain, "tiny"), "v1", None)
            .await
            .unwrap();
        assert_eq!(fetched.digest.to_string(), bed.images["tiny"].digest);
        // A refused connection is not worth retrying: the registry itself is the remedy.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "falling back took {:?}",
            started.elapsed()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mirror_serves_a_registry_that_does_not_exist() {
    let bed = Bed::shared().unwrap();
    within(async {
        let origin = "mirror-only.invalid:5000";
        let settings = BTreeMap::from([(
            origin.to_string(),
            RegistrySettings {
                mirrors: vec![bed.plain.url.clone()],
                ..Default::default()
            },
        )]);
        let client = RegistryClient::new(
            RegistryHosts::new(settings, vec![bed.certs_d.clone()]),
            quick_options(),
        );
        let repo = RepositoryRef {
            registry: origin.into(),
            repository: "tiny".into(),
        };
        let fetched = pull_whole_image(&client, &repo, "v1", None).await.unwrap();
        assert_eq!(fetched.digest.to_string(), bed.images["tiny"].digest);
        let (_, manifest) = client
            .resolve(
                &RepositoryRef {
                    repository: "multi".into(),
                    ..repo.clone()
                },
                "v1",
                &Platform::parse("linux/arm64").unwrap(),
                None,
            )
            .await
            .unwrap();
        assert_eq!(manifest.media_type, OCI_MANIFEST);

        // What the mirror lacks falls through to the origin, which does not exist: the error
        // names the origin.
        let err = client
            .fetch_manifest(&repo, "no-such-tag", None)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, RegistryError::Unreachable { registry, .. } if registry == origin),
            "{err:?}"
        );
        assert!(err.to_string().contains(origin), "{err}");
    })
    .await;
}
