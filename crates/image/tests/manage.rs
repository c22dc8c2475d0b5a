//! Image management: OCI layouts round-trip with skopeo, pruning and threshold GC.

mod service_support;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nodelet_image::digest::Digest;
use nodelet_image::gc::{DiskUsage, GcPolicy};
use nodelet_image::oci::Platform;
use nodelet_image::pull::{ImageService, NoProgress};
use nodelet_image::reference::Reference;
use nodelet_testbed::{Bed, BedInfo};
use service_support::service;

async fn pull(
    images: &ImageService,
    bed: &BedInfo,
    image: &str,
) -> nodelet_image::images::ImageRecord {
    let reference = Reference::parse_normalized(&format!("{}/{image}:v1", bed.plain.host)).unwrap();
    images
        .pull(&reference, &Platform::host(), &[], Arc::new(NoProgress))
        .await
        .unwrap()
}

fn skopeo(args: &[&str]) -> std::process::Output {
    let output = Command::new("skopeo").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[tokio::test(flavor = "multi_thread")]
async fn oci_layouts_round_trip_with_skopeo() {
    let bed = Bed::shared().unwrap();
    let work = tempfile::tempdir().unwrap();
    let from_skopeo = work.path().join("from-skopeo");
    skopeo(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{}/tiny:v1", bed.plain.host),
        &format!("oci:{}:tiny", from_skopeo.display()),
    ]);

    let root = work.path().join("store");
    let images = service(&bed, &root);
    let record = images
        .import_layout(
            &from_skopeo,
            Some("tiny"),
            Some("example.com/imported:v1"),
            &Platform::host(),
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
    assert_eq!(record.name, "example.com/imported:v1");
    assert_eq!(record.manifest_digest, bed.images["tiny"].digest);
    assert!(
        record.pulled_with.contains("node"),
        "imported images are the node's own"
    );
    let layer = root
        .join("snapshots")
        .join(Digest::parse(&record.layers[0].diff_id).unwrap().hex());
    assert!(layer.join("bin/busybox").is_file());

    let exported = work.path().join("exported");
    images.export_layout(&record.name, &exported, "v1").unwrap();
    let raw = skopeo(&[
        "inspect",
        "--raw",
        &format!("oci:{}:v1", exported.display()),
    ]);
    assert_eq!(
        Digest::sha256_of(&raw.stdout).to_string(),
        record.manifest_digest
    );
    skopeo(&[
        "copy",
        "--quiet",
        &format!("oci:{}:v1", exported.display()),
        &format!("dir:{}", work.path().join("dir").display()),
    ]);
}

#[tokio::test(flavor = "multi_thread")]
async fn imports_the_requested_platform_from_a_multi_arch_layout() {
    let bed = Bed::shared().unwrap();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    skopeo(&[
        "copy",
        "--quiet",
        "--all",
        "--src-tls-verify=false",
        &format!("docker://{}/multi:v1", bed.plain.host),
        &format!("oci:{}:multi", layout.display()),
    ]);
    let images = service(&bed, &work.path().join("store"));
    let record = images
        .import_layout(
            &layout,
            None,
            Some("example.com/multi:v1"),
            &Platform::parse("linux/arm64/v8").unwrap(),
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
    assert_eq!(record.platform, "linux/arm64/v8");
    assert_eq!(record.digest, bed.images["multi"].digest);
    let err = images
        .import_layout(
            &layout,
            Some("nope"),
            Some("x/y:z"),
            &Platform::host(),
            Arc::new(NoProgress),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no image named \"nope\"") && err.to_string().contains("multi"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_layout_blob_is_refused_and_nothing_is_recorded() {
    let bed = Bed::shared().unwrap();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    skopeo(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{}/tiny:v1", bed.plain.host),
        &format!("oci:{}:tiny", layout.display()),
    ]);
    let manifest: serde_json::Value = serde_json::from_slice(
        &skopeo(&[
            "inspect",
            "--raw",
            &format!("oci:{}:tiny", layout.display()),
        ])
        .stdout,
    )
    .unwrap();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let blob = layout.join("blobs/sha256").join(&layer);
    let mut bytes = std::fs::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();

    let root = work.path().join("store");
    let images = service(&bed, &root);
    let err = images
        .import_layout(
            &layout,
            Some("tiny"),
            Some("example.com/corrupt:v1"),
            &Platform::host(),
            Arc::new(NoProgress),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
    assert!(images.records().list().is_empty());
    assert!(!root.join("content/blobs/sha256").join(&layer).exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn pruning_removes_only_what_no_image_uses() {
    let bed = Bed::shared().unwrap();
    let root = tempfile::tempdir().unwrap();
    let images = service(&bed, root.path());
    let tiny = pull(&images, &bed, "tiny").await;
    let medium = pull(&images, &bed, "medium").await;
    assert!(
        images
            .prune_unreferenced(Duration::ZERO)
            .unwrap()
            .blobs_removed
            == 0
    );

    images.records().remove(&medium.name).unwrap();
    let report = images.prune_unreferenced(Duration::ZERO).unwrap();
    assert_eq!(
        report.snapshots_removed, 4,
        "medium's own layers go, the shared busybox layer stays"
    );
    assert!(report.bytes_freed > 200_000_000, "{report:?}");
    let snapshots = root.path().join("snapshots");
    assert!(
        snapshots
            .join(Digest::parse(&tiny.layers[0].diff_id).unwrap().hex())
            .join("bin/busybox")
            .exists()
    );
    assert!(
        !snapshots
            .join(Digest::parse(&medium.layers[1].diff_id).unwrap().hex())
            .exists()
    );
    // The kept image still pulls as "already present".
    assert_eq!(pull(&images, &bed, "tiny").await.digest, tiny.digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn threshold_gc_removes_unused_images_oldest_first_until_below_low() {
    let bed = Bed::shared().unwrap();
    let root = tempfile::tempdir().unwrap();
    let images = service(&bed, root.path());
    let whiteout = pull(&images, &bed, "whiteout").await;
    let config = pull(&images, &bed, "config").await;
    let tiny = pull(&images, &bed, "tiny").await;
    // Make the pull order unambiguous (pulled_at has second resolution).
    for (record, at) in [(&whiteout, 1), (&config, 2), (&tiny, 3)] {
        let mut record = record.clone();
        record.pulled_at = at;
        images.records().save(&record).unwrap();
    }

    // 90% used until one image is gone, then 79%.
    let calls = AtomicU64::new(0);
    let policy = GcPolicy {
        min_age: Duration::ZERO,
        ..GcPolicy::default()
    };
    let in_use: BTreeSet<String> = [whiteout.name.clone()].into();
    let report = images
        .garbage_collect(&policy, &in_use, || {
            let removed = images.records().list().len() < 3;
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(DiskUsage {
                capacity: 100,
                available: if removed { 21 } else { 10 },
            })
        })
        .unwrap();
    assert_eq!(
        report.images_removed,
        vec![config.name.clone()],
        "the oldest unused image goes first"
    );
    assert!(
        images.records().get(&whiteout.name).is_some(),
        "an image in use is never removed"
    );
    assert!(images.records().get(&tiny.name).is_some());

    let quiet = images
        .garbage_collect(&policy, &BTreeSet::new(), || {
            Ok(DiskUsage {
                capacity: 100,
                available: 50,
            })
        })
        .unwrap();
    assert!(
        quiet.images_removed.is_empty(),
        "below the high threshold nothing is removed"
    );
}
