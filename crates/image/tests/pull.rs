//! Pulling real images from the test bed's registries into a real content store.

mod service_support;

use std::collections::BTreeMap;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::sync::Arc;

use nodelet_image::digest::Digest;
use nodelet_image::keyring::{Credential, CredentialSource};
use nodelet_image::oci::Platform;
use nodelet_image::pull::{ImageService, NoProgress, PullError};
use nodelet_image::reference::Reference;
use nodelet_image::registry::{
    ClientOptions, RegistryClient, RegistryError, RegistryHosts, RegistrySettings,
};
use nodelet_image::store::ContentStore;
use nodelet_testbed::Bed;
use service_support::service;

fn reference(host: &str, image: &str) -> Reference {
    Reference::parse_normalized(&format!("{host}/{image}:v1")).unwrap()
}

fn pod_secret(login: &nodelet_testbed::Login) -> (Credential, CredentialSource) {
    (
        Credential::basic(&login.username, &login.password),
        CredentialSource::PodSecret {
            namespace: "default".into(),
            name: "regcred".into(),
            uid: None,
        },
    )
}

fn snapshot(root: &Path, diff_id: &str) -> std::path::PathBuf {
    root.join("snapshots")
        .join(Digest::parse(diff_id).unwrap().hex())
}

fn leftovers(root: &Path) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(root.join("content/ingest"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    found.extend(
        std::fs::read_dir(root.join("snapshots"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".tmp")),
    );
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn pulls_and_unpacks_an_image_from_a_plain_registry() {
    let bed = Bed::shared().unwrap();
    let root = tempfile::tempdir().unwrap();
    let images = service(&bed, root.path());
    let record = images
        .pull(
            &reference(&bed.plain.host, "tiny"),
            &Platform::host(),
            &[],
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
    assert_eq!(record.digest, bed.images["tiny"].digest);
    assert_eq!(record.platform, "linux/amd64");
    assert!(record.pulled_with.contains("anonymous"));
    let layer = snapshot(root.path(), &record.layers[0].diff_id);
    assert!(layer.join("bin/busybox").is_file());
    assert_eq!(
        std::fs::read_link(layer.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(images.records().get(&record.name).unwrap(), record);
    assert!(
        images
            .store()
            .has_blob(&Digest::parse(&record.layers[0].digest).unwrap())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unpacks_whiteouts_as_overlay_whiteouts() {
    let bed = Bed::shared().unwrap();
    let root = tempfile::tempdir().unwrap();
    let record = service(&bed, root.path())
        .pull(
            &reference(&bed.plain.host, "whiteout"),
            &Platform::host(),
            &[],
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
    let upper = snapshot(root.path(), &record.layers[2].diff_id);
    let gone = std::fs::symlink_metadata(upper.join("data/gone")).unwrap();
    assert!(gone.file_type().is_char_device(), "{gone:?}");
    let lower = snapshot(root.path(), &record.layers[1].diff_id);
    assert!(lower.join("data/gone").is_file());
    assert!(upper.join("data/opaque/new").is_file());
    let opaque = std::process::Command::new("getfattr")
        .args([
            "--absolute-names",
            "-n",
            "trusted.overlay.opaque",
            "--only-values",
        ])
        .arg(upper.join("data/opaque"))
        .output()
        .expect("getfattr (apt-get install attr)");
    assert_eq!(String::from_utf8_lossy(&opaque.stdout), "y", "{opaque:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn picks_the_requested_platform_from_oci_and_docker_indexes() {
    let bed = Bed::shared().unwrap();
    for image in ["multi", "multi-docker"] {
        for (platform, expected) in [
            ("linux/amd64", "linux/amd64\n"),
            ("linux/arm64", "linux/arm64/v8\n"),
        ] {
            let root = tempfile::tempdir().unwrap();
            let record = service(&bed, root.path())
                .pull(
                    &reference(&bed.plain.host, image),
                    &Platform::parse(platform).unwrap(),
                    &[],
                    Arc::new(NoProgress),
                )
                .await
                .unwrap();
            assert_eq!(record.digest, bed.images[image].digest, "{image}");
            let marker = snapshot(root.path(), &record.layers[1].diff_id);
            assert_eq!(
                std::fs::read_to_string(marker.join("etc/architecture")).unwrap(),
                expected,
                "{image} {platform}"
            );
        }
    }
    let root = tempfile::tempdir().unwrap();
    let err = service(&bed, root.path())
        .pull(
            &reference(&bed.plain.host, "multi"),
            &Platform::parse("linux/s390x").unwrap(),
            &[],
            Arc::new(NoProgress),
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("linux/s390x") && text.contains("linux/amd64, linux/arm64/v8"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_the_image_config_of_a_docker_schema2_image() {
    let bed = Bed::shared().unwrap();
    let root = tempfile::tempdir().unwrap();
    let record = service(&bed, root.path())
        .pull(
            &reference(&bed.plain.host, "config"),
            &Platform::host(),
            &[],
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
    assert_eq!(
        record.media_type,
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        record.config.entrypoint.as_deref(),
        Some(&["/bin/echo".to_string(), "entrypoint".to_string()][..])
    );
    assert_eq!(record.config.working_dir.as_deref(), Some("/srv/app"));
    assert_eq!(record.config.user.as_deref(), Some("1000:1000"));
    assert_eq!(record.config.stop_signal.as_deref(), Some("SIGUSR1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn private_images_need_credentials_and_remember_who_pulled_them() {
    let bed = Bed::shared().unwrap();
    for registry in [&bed.basic, &bed.token] {
        let root = tempfile::tempdir().unwrap();
        let images = service(&bed, root.path());
        let anonymous = images
            .pull(
                &reference(&registry.host, "private"),
                &Platform::host(),
                &[],
                Arc::new(NoProgress),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                &anonymous,
                PullError::Registry {
                    source: RegistryError::Unauthorized { .. },
                    ..
                }
            ),
            "{anonymous}"
        );
        assert!(
            anonymous.to_string().contains(&registry.host),
            "{anonymous}"
        );

        let puller = pod_secret(&bed.puller);
        let record = images
            .pull(
                &reference(&registry.host, "private"),
                &Platform::host(),
                std::slice::from_ref(&puller),
                Arc::new(NoProgress),
            )
            .await
            .unwrap();
        assert!(record.accessible_with(std::slice::from_ref(&puller)));
        assert!(
            !record.accessible_with(&[pod_secret(&bed.pusher)]),
            "another pod's credential must pull for itself"
        );
        assert!(!record.accessible_with(&[]));
        assert!(leftovers(root.path()).is_empty());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tries_each_credential_in_turn_and_reports_all_failures() {
    let bed = Bed::shared().unwrap();
    let root = tempfile::tempdir().unwrap();
    let images = service(&bed, root.path());
    let wrong = |user: &str| {
        (
            Credential::basic(user, "wrong"),
            CredentialSource::NodeFile {
                path: "/root/.docker/config.json".into(),
            },
        )
    };
    let record = images
        .pull(
            &reference(&bed.token.host, "private"),
            &Platform::host(),
            &[wrong("nobody"), pod_secret(&bed.puller)],
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
    assert_eq!(record.digest, bed.images["private"].digest);

    let err = images
        .pull(
            &reference(&bed.basic.host, "private"),
            &Platform::host(),
            &[wrong("a"), wrong("b")],
            Arc::new(NoProgress),
        )
        .await
        .unwrap_err();
    match &err {
        PullError::AllCredentialsFailed { errors, .. } => assert_eq!(errors.len(), 2, "{err}"),
        other => panic!("expected every credential to fail: {other}"),
    }
    assert!(
        !err.to_string().contains("wrong"),
        "a password leaked into {err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_tag_is_a_clear_not_found() {
    let bed = Bed::shared().unwrap();
    let root = tempfile::tempdir().unwrap();
    let missing =
        Reference::parse_normalized(&format!("{}/tiny:no-such-tag", bed.plain.host)).unwrap();
    let err = service(&bed, root.path())
        .pull(&missing, &Platform::host(), &[], Arc::new(NoProgress))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("no-such-tag") && text.contains("not found"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_pulls_of_one_image_share_the_work() {
    let bed = Bed::shared().unwrap();
    let root = tempfile::tempdir().unwrap();
    let first = service(&bed, root.path());
    let second = service(&bed, root.path());
    let image = reference(&bed.plain.host, "medium");
    let platform = Platform::host();
    let (a, b) = tokio::join!(
        first.pull(&image, &platform, &[], Arc::new(NoProgress)),
        second.pull(&image, &platform, &[], Arc::new(NoProgress)),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.digest, b.digest);
    let snapshots = std::fs::read_dir(root.path().join("snapshots"))
        .unwrap()
        .count();
    assert_eq!(snapshots, a.layers.len());
    assert!(leftovers(root.path()).is_empty());
    let data = snapshot(root.path(), &a.layers[1].diff_id).join("data/random1.bin");
    assert_eq!(std::fs::metadata(data).unwrap().len(), 40 * 1024 * 1024);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_registry_is_named_in_the_error() {
    let bed = Bed::shared().unwrap();
    let root = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut settings = BTreeMap::new();
    settings.insert(
        closed.to_string(),
        RegistrySettings {
            insecure: true,
            ..Default::default()
        },
    );
    let options = ClientOptions {
        max_attempts: 2,
        initial_backoff: std::time::Duration::from_millis(10),
        ..Default::default()
    };
    let images = ImageService::new(
        ContentStore::open(root.path()).unwrap(),
        RegistryClient::new(
            RegistryHosts::new(settings, vec![bed.certs_d.clone()]),
            options,
        ),
    );
    let err = images
        .pull(
            &reference(&closed.to_string(), "tiny"),
            &Platform::host(),
            &[],
            Arc::new(NoProgress),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&closed.to_string()), "{err}");
}
