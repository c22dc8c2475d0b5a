//! Unpacking real and synthetic layers: the test bed's images (busybox, whiteouts, the
//! medium image with its diff_ids and a throughput figure), and the metadata a layer carries.

mod unpack_support;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use nodelet_image::unpack::{Compression, UnpackLimits, UnpackStats, unpack_layer};
use nodelet_sys::fs::read_xattr;
use tar::{EntryType, Header};
use unpack_support::{Bed, Tar, dev_numbers, gzip, sha256};

/// One image of the test bed's OCI layout: its layers (media type, blob path) and diff_ids.
struct Image {
    layers: Vec<(String, PathBuf)>,
    diff_ids: Vec<String>,
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap())
}

fn image(name: &str) -> Image {
    let prepared = nodelet_testbed::prepare(&nodelet_testbed::cache_dir()).unwrap();
    let layout = &prepared.layout;
    let manifest: serde_json::Value = serde_json::from_slice(
        &fs::read(blob(layout, &prepared.images[name].layout_digest)).unwrap(),
    )
    .unwrap();
    let config: serde_json::Value = serde_json::from_slice(
        &fs::read(blob(layout, manifest["config"]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let layers = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["mediaType"].as_str().unwrap().to_string(),
                blob(layout, l["digest"].as_str().unwrap()),
            )
        })
        .collect();
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    Image { layers, diff_ids }
}

/// Unpacks every layer of `image` into `dir/<n>`, checking each diff_id.
fn unpack_image(image: &Image, dir: &Path) -> Vec<UnpackStats> {
    let mut all = Vec::new();
    for (n, (media_type, path)) in image.layers.iter().enumerate() {
        let root = dir.join(n.to_string());
        fs::create_dir(&root).unwrap();
        let compression = Compression::from_media_type(media_type).unwrap();
        let file = fs::File::open(path).unwrap();
        let stats = unpack_layer(file, compression, &root, &UnpackLimits::default())
            .unwrap_or_else(|e| panic!("layer {n}: {e}"));
        assert_eq!(stats.diff_id, image.diff_ids[n], "diff_id of layer {n}");
        assert_eq!(stats.compressed_bytes, fs::metadata(path).unwrap().len());
        all.push(stats);
    }
    all
}

#[test]
fn busybox_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let stats = unpack_image(&image("tiny"), tmp.path());
    assert_eq!(stats[0].compression, Compression::Gzip);
    let root = tmp.path().join("0");
    let sh = fs::symlink_metadata(root.join("bin/sh")).unwrap();
    assert!(sh.is_symlink());
    assert_eq!(
        fs::read_link(root.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    let busybox = fs::symlink_metadata(root.join("bin/busybox")).unwrap();
    assert!(busybox.is_file());
    assert_eq!(busybox.mode() & 0o7777, 0o755);
    assert_eq!((busybox.uid(), busybox.gid(), busybox.mtime()), (0, 0, 0));
    assert_eq!(
        fs::symlink_metadata(root.join("tmp")).unwrap().mode() & 0o7777,
        0o1777
    );
    assert_eq!(
        fs::symlink_metadata(root.join("root")).unwrap().mode() & 0o7777,
        0o700
    );
    assert_eq!(fs::symlink_metadata(root.join("bin")).unwrap().mtime(), 0);
    assert!(
        fs::read_to_string(root.join("etc/passwd"))
            .unwrap()
            .starts_with("root:x:0:0:")
    );
    assert!(
        stats[0].symlinks >= 30 && stats[0].files >= 3,
        "{:?}",
        stats[0]
    );
}

#[test]
fn whiteout_image() {
    let tmp = tempfile::tempdir().unwrap();
    let image = image("whiteout");
    assert_eq!(image.layers.len(), 3);
    let stats = unpack_image(&image, tmp.path());
    let upper = tmp.path().join("2");
    let gone = fs::symlink_metadata(upper.join("data/gone")).unwrap();
    assert!(gone.file_type().is_char_device());
    assert_eq!(gone.rdev(), 0);
    assert!(!upper.join("data/.wh.gone").exists());
    assert_eq!(
        read_xattr(&upper.join("data/opaque"), b"trusted.overlay.opaque").unwrap(),
        Some(b"y".to_vec())
    );
    assert!(!upper.join("data/opaque/.wh..wh..opq").exists());
    assert_eq!(
        fs::read(upper.join("data/opaque/new")).unwrap(),
        b"only file left in data/opaque\n"
    );
    assert_eq!(
        read_xattr(&upper.join("data"), b"trusted.overlay.opaque").unwrap(),
        None
    );
    assert_eq!((stats[2].whiteouts, stats[2].opaque_dirs), (1, 1));
    // The lower layer is untouched by the upper one: each has its own directory.
    let lower = tmp.path().join("1");
    assert!(lower.join("data/gone").is_file());
    assert!(lower.join("data/opaque/sub/older").is_file());
}

#[test]
fn medium_image_diff_ids_and_throughput() {
    let image = image("medium");
    let tmp = tempfile::tempdir().unwrap();
    let compressed: u64 = image
        .layers
        .iter()
        .map(|(_, p)| fs::metadata(p).unwrap().len())
        .sum();
    let start = Instant::now();
    let stats = unpack_image(&image, tmp.path());
    let elapsed = start.elapsed();
    let tar: u64 = stats.iter().map(|s| s.tar_bytes).sum();
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    eprintln!(
        "medium image, layers one after another: {:.1} MiB compressed, {:.1} MiB tar in {:.3} s \
         ({:.0} MiB/s of tar)",
        mib(compressed),
        mib(tar),
        elapsed.as_secs_f64(),
        mib(tar) / elapsed.as_secs_f64()
    );
    let data = fs::read(tmp.path().join("1/data/random1.bin")).unwrap();
    assert_eq!(data.len(), 40 << 20);

    // Layers are independent: a puller can unpack them in parallel.
    let tmp = tempfile::tempdir().unwrap();
    let start = Instant::now();
    std::thread::scope(|scope| {
        for (n, (media_type, path)) in image.layers.iter().enumerate() {
            let root = tmp.path().join(n.to_string());
            let want = &image.diff_ids[n];
            scope.spawn(move || {
                fs::create_dir(&root).unwrap();
                let file = fs::File::open(path).unwrap();
                let compression = Compression::from_media_type(media_type).unwrap();
                let stats =
                    unpack_layer(file, compression, &root, &UnpackLimits::default()).unwrap();
                assert_eq!(&stats.diff_id, want);
            });
        }
    });
    let elapsed = start.elapsed();
    eprintln!(
        "medium image, layers in parallel: {:.3} s ({:.0} MiB/s of tar)",
        elapsed.as_secs_f64(),
        mib(tar) / elapsed.as_secs_f64()
    );
}

/// A v2 `security.capability` value granting `cap_net_raw` (13), effective.
fn cap_net_raw() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0x0200_0001u32.to_le_bytes()); // VFS_CAP_REVISION_2 | EFFECTIVE
    v.extend_from_slice(&(1u32 << 13).to_le_bytes()); // permitted, low word
    v.extend_from_slice(&0u32.to_le_bytes()); // inheritable, low word
    v.extend_from_slice(&0u32.to_le_bytes()); // permitted, high word
    v.extend_from_slice(&0u32.to_le_bytes()); // inheritable, high word
    v
}

fn entry(
    kind: EntryType,
    name: &str,
    link: &str,
    data: &[u8],
    edit: impl FnOnce(&mut Header),
) -> impl FnOnce(Tar) -> Tar {
    let (name, link, data) = (name.to_string(), link.to_string(), data.to_vec());
    move |t: Tar| t.raw_with(kind, name.as_bytes(), link.as_bytes(), &data, edit)
}

fn metadata_layer() -> Vec<u8> {
    let mut t = Tar::new();
    let steps: Vec<Box<dyn FnOnce(Tar) -> Tar>> = vec![
        Box::new(entry(EntryType::Directory, "./", "", b"", |h| {
            h.set_mode(0o751);
            h.set_mtime(1_200_000_000);
        })),
        Box::new(entry(EntryType::Directory, "bin/", "", b"", |h| {
            h.set_mtime(1_500_000_000)
        })),
        Box::new(entry(
            EntryType::Regular,
            "bin/suid",
            "",
            b"#!/bin/sh\n",
            |h| {
                h.set_mode(0o4755);
                h.set_uid(1000);
                h.set_gid(1000);
            },
        )),
        Box::new(entry(EntryType::Regular, "bin/sgid", "", b"x", |h| {
            h.set_mode(0o2711);
            h.set_gid(50);
        })),
        Box::new(|t: Tar| t.pax(&[("SCHILY.xattr.security.capability", &cap_net_raw())])),
        Box::new(entry(EntryType::Regular, "bin/ping", "", b"ping", |h| {
            h.set_mode(0o755);
            h.set_uid(1234);
            h.set_gid(1234);
        })),
        Box::new(entry(EntryType::Symlink, "bin/sh", "busybox", b"", |h| {
            h.set_mode(0o777);
            h.set_uid(1000);
            h.set_gid(1001);
            h.set_mtime(1_300_000_000);
        })),
        Box::new(entry(
            EntryType::Link,
            "bin/suid-link",
            "bin/suid",
            b"",
            |_| {},
        )),
        Box::new(|t: Tar| t.pax(&[("SCHILY.xattr.trusted.note", b"dir")])),
        Box::new(entry(EntryType::Directory, "data/", "", b"", |h| {
            h.set_mode(0o700);
            h.set_mtime(1_400_000_000);
        })),
        Box::new(|t: Tar| {
            t.pax(&[
                ("mtime", b"1500000000.123456789"),
                ("atime", b"1400000000.5"),
                ("SCHILY.xattr.user.note", b"hello"),
            ])
        }),
        Box::new(entry(EntryType::Regular, "data/nanos", "", b"n", |_| {})),
        Box::new(entry(EntryType::Directory, "tmp/", "", b"", |h| {
            h.set_mode(0o1777)
        })),
        Box::new(entry(EntryType::Char, "dev/null", "", b"", |h| {
            h.set_mode(0o666);
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        })),
        Box::new(entry(EntryType::Block, "dev/loop0", "", b"", |h| {
            h.set_mode(0o660);
            h.set_gid(6);
            h.set_device_major(7).unwrap();
            h.set_device_minor(0).unwrap();
        })),
        Box::new(entry(EntryType::Fifo, "run/fifo", "", b"", |h| {
            h.set_mode(0o620)
        })),
        Box::new(entry(EntryType::Regular, "gone/.wh.file", "", b"", |_| {})),
        Box::new(entry(EntryType::Directory, "opq/", "", b"", |_| {})),
        Box::new(entry(
            EntryType::Regular,
            "opq/.wh..wh..opq",
            "",
            b"",
            |_| {},
        )),
        Box::new(entry(EntryType::Regular, "opq/kept", "", b"k", |_| {})),
    ];
    for step in steps {
        t = step(t);
    }
    t.bytes()
}

#[test]
fn metadata_is_kept() {
    let layer = metadata_layer();
    let bed = Bed::new();
    let stats = bed.unpack(&layer).unwrap();
    bed.assert_outside_unchanged();
    let meta = |p: &str| fs::symlink_metadata(bed.path(p)).unwrap();

    // The root entry's own attributes.
    let root = fs::symlink_metadata(&bed.root).unwrap();
    assert_eq!((root.mode() & 0o7777, root.mtime()), (0o751, 1_200_000_000));

    let suid = meta("bin/suid");
    assert_eq!(
        (suid.mode() & 0o7777, suid.uid(), suid.gid()),
        (0o4755, 1000, 1000)
    );
    assert_eq!(
        (suid.mtime(), suid.nlink()),
        (unpack_support::MTIME as i64, 2)
    );
    assert_eq!(meta("bin/suid-link").ino(), suid.ino());
    assert_eq!(meta("bin/sgid").mode() & 0o7777, 0o2711);
    assert_eq!(meta("bin/sgid").gid(), 50);

    let ping = meta("bin/ping");
    assert_eq!(
        (ping.uid(), ping.gid(), ping.mode() & 0o7777),
        (1234, 1234, 0o755)
    );
    assert_eq!(
        read_xattr(&bed.path("bin/ping"), b"security.capability").unwrap(),
        Some(cap_net_raw())
    );

    let sh = meta("bin/sh");
    assert!(sh.is_symlink());
    assert_eq!(
        (sh.uid(), sh.gid(), sh.mtime()),
        (1000, 1001, 1_300_000_000)
    );

    // Directory times are set after their children.
    assert_eq!(meta("bin").mtime(), 1_500_000_000);
    let data = meta("data");
    assert_eq!((data.mtime(), data.mode() & 0o7777), (1_400_000_000, 0o700));
    assert_eq!(
        read_xattr(&bed.path("data"), b"trusted.note").unwrap(),
        Some(b"dir".to_vec())
    );

    let nanos = meta("data/nanos");
    assert_eq!(
        (nanos.mtime(), nanos.mtime_nsec()),
        (1_500_000_000, 123_456_789)
    );
    assert_eq!(
        (nanos.atime(), nanos.atime_nsec()),
        (1_400_000_000, 500_000_000)
    );
    assert_eq!(
        read_xattr(&bed.path("data/nanos"), b"user.note").unwrap(),
        Some(b"hello".to_vec())
    );

    assert_eq!(meta("tmp").mode() & 0o7777, 0o1777);

    let null = meta("dev/null");
    assert!(null.file_type().is_char_device());
    assert_eq!(dev_numbers(null.rdev()), (1, 3));
    assert_eq!(null.mode() & 0o7777, 0o666);
    let loop0 = meta("dev/loop0");
    assert!(loop0.file_type().is_block_device());
    assert_eq!(dev_numbers(loop0.rdev()), (7, 0));
    assert_eq!((loop0.mode() & 0o7777, loop0.gid()), (0o660, 6));
    let fifo = meta("run/fifo");
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.mode() & 0o7777, 0o620);

    // Implied parents.
    assert_eq!(meta("dev").mode() & 0o7777, 0o755);
    assert_eq!(stats.implied_dirs, 3); // dev, run, gone

    let wh = meta("gone/file");
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    assert_eq!(
        read_xattr(&bed.path("opq"), b"trusted.overlay.opaque").unwrap(),
        Some(b"y".to_vec())
    );
    assert_eq!(fs::read(bed.path("opq/kept")).unwrap(), b"k");

    assert_eq!(stats.diff_id, sha256(&layer));
    assert_eq!(stats.tar_bytes, layer.len() as u64);
    assert_eq!(
        (stats.files, stats.hardlinks, stats.symlinks, stats.devices),
        (5, 1, 1, 3)
    );
}

/// Hands out a few bytes per read, like a slow network.
struct Trickle<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.chunk).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn streams_in_small_reads_and_through_a_pipe() {
    let tar = metadata_layer();
    let want = sha256(&tar);
    for (layer, compression) in [
        (tar.clone(), Compression::None),
        (gzip(&tar), Compression::Gzip),
        (
            zstd::encode_all(tar.as_slice(), 3).unwrap(),
            Compression::Zstd,
        ),
    ] {
        for asked in [compression, Compression::Detect] {
            let bed = Bed::new();
            let reader = Trickle {
                data: &layer,
                chunk: 7,
            };
            let stats = unpack_layer(reader, asked, &bed.root, &UnpackLimits::default()).unwrap();
            assert_eq!(stats.diff_id, want);
            assert_eq!(stats.compression, compression);
            assert_eq!(stats.compressed_bytes, layer.len() as u64);
            bed.assert_outside_unchanged();
        }

        let bed = Bed::new();
        let (reader, mut writer) = std::io::pipe().unwrap();
        let feeder = std::thread::spawn(move || {
            for chunk in layer.chunks(1000) {
                writer.write_all(chunk).unwrap();
            }
        });
        let stats = unpack_layer(
            reader,
            Compression::Detect,
            &bed.root,
            &UnpackLimits::default(),
        )
        .unwrap();
        feeder.join().unwrap();
        assert_eq!(stats.diff_id, want);
    }
}

#[test]
fn media_types() {
    for (media_type, want) in [
        ("application/vnd.oci.image.layer.v1.tar", Compression::None),
        (
            "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Gzip,
        ),
        (
            "application/vnd.oci.image.layer.v1.tar+zstd",
            Compression::Zstd,
        ),
        (
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            Compression::Gzip,
        ),
        (
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            Compression::Gzip,
        ),
        (
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
            Compression::Gzip,
        ),
    ] {
        assert_eq!(Compression::from_media_type(media_type), Some(want));
    }
    assert_eq!(
        Compression::from_media_type("application/vnd.oci.image.config.v1+json"),
        None
    );
}

/// Many small files: the per-entry cost. Ignored by default; run with
/// `cargo test --release -p nodelet-image --test unpack_layers -- --ignored --nocapture`.
#[test]
#[ignore]
fn many_small_files_throughput() {
    const DIRS: usize = 100;
    const FILES: usize = 500;
    let mut tar = tar::Builder::new(Vec::new());
    let data = vec![b'x'; 1024];
    for d in 0..DIRS {
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        tar.append_data(&mut h, format!("d{d}/"), std::io::empty())
            .unwrap();
        for f in 0..FILES {
            let mut h = Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            tar.append_data(&mut h, format!("d{d}/f{f}"), data.as_slice())
                .unwrap();
        }
    }
    let layer = gzip(&tar.into_inner().unwrap());
    let bed = Bed::new();
    let start = Instant::now();
    let stats = bed.unpack(&layer).unwrap();
    let elapsed = start.elapsed();
    eprintln!(
        "{} entries ({:.1} MiB tar) in {:.3} s: {:.0} entries/s",
        stats.entries,
        stats.tar_bytes as f64 / (1 << 20) as f64,
        elapsed.as_secs_f64(),
        stats.entries as f64 / elapsed.as_secs_f64()
    );
}
