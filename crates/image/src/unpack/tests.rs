//! Unit tests of the unpacking logic against the in-memory [`FakeFs`] (no root needed).

use std::path::Path;

use nodelet_sys::fs::Kind;
use tar::{EntryType, Header};

use super::fake::FakeFs;
use super::{Cause, Compression, UnpackLimits, unpack_into};

fn tar(entries: &[(EntryType, &str, &str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (kind, name, link, data) in entries {
        let mut h = Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(if *kind == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_mtime(1000);
        h.set_size(data.len() as u64);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn run(layer: &[u8]) -> (FakeFs, Result<super::UnpackStats, super::UnpackError>) {
    let mut fs = FakeFs::default();
    let result = unpack_into(layer, Compression::None, &mut fs, &UnpackLimits::default());
    (fs, result)
}

fn position(log: &[String], line: &str) -> usize {
    log.iter()
        .position(|l| l == line)
        .unwrap_or_else(|| panic!("{line} not in {log:#?}"))
}

#[test]
fn directory_times_come_after_their_children() {
    let layer = tar(&[
        (EntryType::Directory, "d/", "", b""),
        (EntryType::Regular, "d/x", "", b"x"),
        (EntryType::Directory, "d/e/", "", b""),
        (EntryType::Regular, "d/e/y", "", b"y"),
    ]);
    let (fs, result) = run(&layer);
    result.unwrap();
    let log = &fs.log;
    assert!(position(log, "times d") > position(log, "create d/e/y"));
    assert!(position(log, "times d/e") > position(log, "create d/e/y"));
    assert_eq!(fs.nodes[Path::new("d")].mtime, Some(1000));
    assert_eq!(fs.nodes[Path::new("d/e/y")].data, b"y");
}

#[test]
fn whiteouts_become_devices_and_opaque_markers_xattrs() {
    let layer = tar(&[
        (EntryType::Directory, "a/", "", b""),
        (EntryType::Regular, "a/.wh.gone", "", b""),
        (EntryType::Regular, "a/.wh..wh..opq", "", b""),
        (EntryType::Regular, "b/c/.wh.x", "", b""),
    ]);
    let (fs, result) = run(&layer);
    let stats = result.unwrap();
    let gone = &fs.nodes[Path::new("a/gone")];
    assert_eq!((gone.kind, gone.rdev), (Kind::CharDevice, Some((0, 0))));
    assert_eq!(
        fs.nodes[Path::new("a")].xattrs[b"trusted.overlay.opaque".as_slice()],
        b"y"
    );
    // Implied parents of a whiteout.
    assert_eq!(fs.nodes[Path::new("b/c")].kind, Kind::Dir);
    assert_eq!(fs.nodes[Path::new("b")].mode, 0o755);
    assert_eq!(
        (stats.whiteouts, stats.opaque_dirs, stats.implied_dirs),
        (2, 1, 2)
    );
}

#[test]
fn replacement_rules() {
    let layer = tar(&[
        (EntryType::Regular, "f", "", b"file"),
        (EntryType::Directory, "f/", "", b""),
        (EntryType::Directory, "d/", "", b""),
        (EntryType::Regular, "d/keep", "", b"k"),
        (EntryType::Directory, "d/", "", b""),
        (EntryType::Regular, "x", "", b"x"),
        (EntryType::Regular, ".wh.x", "", b""),
    ]);
    let (fs, result) = run(&layer);
    let stats = result.unwrap();
    assert_eq!(fs.nodes[Path::new("f")].kind, Kind::Dir);
    assert!(fs.log.contains(&"remove f".to_string()));
    // A directory over a directory merges.
    assert_eq!(fs.nodes[Path::new("d/keep")].data, b"k");
    assert!(!fs.log.contains(&"remove d".to_string()));
    // A whiteout of this layer's own entry is dropped.
    assert_eq!(fs.nodes[Path::new("x")].kind, Kind::File);
    assert_eq!(stats.skipped, 1);
}

#[test]
fn hardlinks_only_to_this_layers_files() {
    let layer = tar(&[
        (EntryType::Regular, "f", "", b"data"),
        (EntryType::Link, "g", "f", b""),
        (EntryType::Link, "h", "/f", b""),
    ]);
    let (fs, result) = run(&layer);
    result.unwrap();
    assert_eq!(fs.nodes[Path::new("h")].data, b"data");

    let layer = tar(&[(EntryType::Link, "g", "lower/file", b"")]);
    let (_, result) = run(&layer);
    let err = result.unwrap_err();
    assert!(matches!(err.cause(), Cause::HardlinkTarget { .. }), "{err}");
    assert_eq!(err.entry_name(), Some("g"));
}

#[test]
fn global_headers_are_skipped_and_entries_counted() {
    let layer = tar(&[
        (
            EntryType::XGlobalHeader,
            "pax_global_header",
            "",
            b"9 a=bcd\n",
        ),
        (EntryType::Regular, "f", "", b"x"),
    ]);
    let (fs, result) = run(&layer);
    let stats = result.unwrap();
    assert_eq!((stats.entries, stats.skipped, stats.files), (2, 1, 1));
    assert!(!fs.nodes.contains_key(Path::new("pax_global_header")));
}

#[test]
fn sockets_and_unknown_types_are_errors() {
    let layer = tar(&[(EntryType::new(b'S' + 1), "odd", "", b"")]);
    let (_, result) = run(&layer);
    let err = result.unwrap_err();
    assert!(matches!(err.cause(), Cause::UnsupportedType(b'T')), "{err}");
}

#[test]
fn errors_cross_threads() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<super::UnpackError>();
    send_sync::<super::UnpackStats>();
}
