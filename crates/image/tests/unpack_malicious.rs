//! A corpus of malicious and tricky layers. Every test unpacks into a fresh root beside a
//! sentinel directory and checks that nothing outside the root changed (the sentinel tree,
//! the temporary directory, the host's `/etc/passwd`), and that a rejection names the entry
//! and the cause.

mod unpack_support;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use nodelet_image::unpack::{Cause, Compression, UnpackError, UnpackLimits, unpack_layer};
use nodelet_sys::fs::FsErrorKind;
use tar::EntryType;
use unpack_support::{Bed, Tar, gzip, header, tree};

/// Unpacks `layer` into a fresh bed, expecting a rejection of `entry` for a cause `want`
/// accepts; checks the outside and returns the bed and error for more checks.
fn rejects(layer: &[u8], entry: &str, want: impl Fn(&Cause) -> bool) -> (Bed, UnpackError) {
    rejects_with(layer, &UnpackLimits::default(), entry, want)
}

fn rejects_with(
    layer: &[u8],
    limits: &UnpackLimits,
    entry: &str,
    want: impl Fn(&Cause) -> bool,
) -> (Bed, UnpackError) {
    let bed = Bed::new();
    let err = bed
        .unpack_with(layer, limits)
        .expect_err("the layer must be rejected");
    assert_eq!(err.entry_name(), Some(entry), "wrong entry in: {err}");
    assert!(want(err.cause()), "unexpected cause: {err}");
    let shown = err.to_string();
    let quoted = if entry.len() <= 256 {
        format!("`{entry}`")
    } else {
        format!("`{}… ({} bytes)`", &entry[..256], entry.len())
    };
    assert!(shown.contains(&quoted), "{shown}");
    bed.assert_outside_unchanged();
    (bed, err)
}

/// Expects a failure between entries (stream, limits on headers).
fn breaks(
    layer: &[u8],
    limits: &UnpackLimits,
    after: Option<&str>,
    want: impl Fn(&Cause) -> bool,
) -> UnpackError {
    let bed = Bed::new();
    let err = bed
        .unpack_with(layer, limits)
        .expect_err("the layer must be rejected");
    assert_eq!(err.entry_name(), None, "{err}");
    assert_eq!(err.after_entry(), after, "{err}");
    assert!(want(err.cause()), "unexpected cause: {err}");
    bed.assert_outside_unchanged();
    err
}

/// Unpacks `layer` successfully into a fresh bed and checks the outside.
fn accepts(layer: &[u8]) -> Bed {
    let bed = Bed::new();
    bed.unpack(layer)
        .unwrap_or_else(|e| panic!("unpack failed: {e}"));
    bed.assert_outside_unchanged();
    bed
}

fn parent_dir(c: &Cause) -> bool {
    matches!(c, Cause::ParentDirComponent)
}

fn fs_kind(kind: FsErrorKind) -> impl Fn(&Cause) -> bool {
    move |c| matches!(c, Cause::Fs(e) if e.kind() == kind)
}

fn invalid_whiteout(c: &Cause) -> bool {
    matches!(c, Cause::InvalidWhiteout { .. })
}

fn hardlink_target(c: &Cause) -> bool {
    matches!(c, Cause::HardlinkTarget { .. })
}

// ---- names with `..` and absolute names -------------------------------------------------

#[test]
fn dotdot_escape() {
    let layer = Tar::new().file("../escape", b"x").bytes();
    rejects(&layer, "../escape", parent_dir);
}

#[test]
fn dotdot_in_the_middle() {
    let layer = Tar::new().dir("a/").file("a/../../escape", b"x").bytes();
    rejects(&layer, "a/../../escape", parent_dir);
}

#[test]
fn dotdot_after_root_and_dot() {
    let layer = Tar::new().file("/../escape", b"x").bytes();
    rejects(&layer, "/../escape", parent_dir);
    let layer = Tar::new().file("./../escape", b"x").bytes();
    rejects(&layer, "./../escape", parent_dir);
}

#[test]
fn harmless_dotdot_is_refused_too() {
    let layer = Tar::new().dir("a/").file("a/../b", b"x").bytes();
    let (bed, _) = rejects(&layer, "a/../b", parent_dir);
    assert!(!bed.path("b").exists());
}

#[test]
fn absolute_names_are_relative_to_the_root() {
    let layer = Tar::new()
        .dir("/abs/")
        .file("/abs/file", b"inside")
        .file("//double", b"inside too")
        .bytes();
    let bed = accepts(&layer);
    assert_eq!(fs::read(bed.path("abs/file")).unwrap(), b"inside");
    assert_eq!(fs::read(bed.path("double")).unwrap(), b"inside too");
}

#[test]
fn absolute_whiteout_is_relative_to_the_root() {
    let layer = Tar::new().file("/.wh.etc", b"").bytes();
    let bed = accepts(&layer);
    let m = fs::symlink_metadata(bed.path("etc")).unwrap();
    assert!(m.file_type().is_char_device());
    assert_eq!(m.rdev(), 0);
}

// ---- symbolic links met on the way --------------------------------------------------------

#[test]
fn symlink_to_outside_then_write_through_it() {
    let bed_probe = Bed::new();
    let outside = bed_probe.outside_str();
    let layer = Tar::new()
        .symlink("evil", &outside)
        .file("evil/sentinel", b"overwritten")
        .bytes();
    rejects(&layer, "evil/sentinel", fs_kind(FsErrorKind::NotFound));
}

#[test]
fn symlink_to_outside_file_then_same_name_file_replaces_the_link() {
    let probe = Bed::new();
    let target = format!("{}/sentinel", probe.outside_str());
    let layer = Tar::new()
        .symlink("evil", &target)
        .file("evil", b"replaced")
        .bytes();
    let bed = accepts(&layer);
    assert!(fs::symlink_metadata(bed.path("evil")).unwrap().is_file());
    assert_eq!(fs::read(bed.path("evil")).unwrap(), b"replaced");
}

#[test]
fn symlink_to_host_root_stays_in_the_root() {
    let layer = Tar::new()
        .symlink("evil", "/")
        .file("evil/etc/passwd", b"root::0:0::/:/bin/sh\n")
        .bytes();
    let bed = accepts(&layer);
    assert_eq!(
        fs::read(bed.path("etc/passwd")).unwrap(),
        b"root::0:0::/:/bin/sh\n"
    );
}

#[test]
fn symlink_dotdot_chain_stays_in_the_root() {
    let layer = Tar::new()
        .symlink("up", "../../../../../../..")
        .file("up/x", b"x")
        .symlink("a", "b")
        .symlink("b", "../../..")
        .file("a/outside/sentinel", b"x")
        .bytes();
    let bed = accepts(&layer);
    assert_eq!(fs::read(bed.path("x")).unwrap(), b"x");
    assert_eq!(fs::read(bed.path("outside/sentinel")).unwrap(), b"x");
    assert!(tree(&bed.root).contains(&"outside".to_string()));
}

#[test]
fn symlink_loop() {
    let layer = Tar::new()
        .symlink("loop1", "loop2")
        .symlink("loop2", "loop1")
        .file("loop1/x", b"x")
        .bytes();
    rejects(&layer, "loop1/x", fs_kind(FsErrorKind::SymlinkLoop));
}

#[test]
fn directory_replaced_by_symlink_then_written_into() {
    let probe = Bed::new();
    let layer = Tar::new()
        .dir("d/")
        .file("d/x", b"x")
        .symlink("d", &probe.outside_str())
        .file("d/sentinel", b"overwritten")
        .bytes();
    let (bed, _) = rejects(&layer, "d/sentinel", fs_kind(FsErrorKind::NotFound));
    assert!(fs::symlink_metadata(bed.path("d")).unwrap().is_symlink());
}

#[test]
fn directory_replaced_by_symlink_to_root() {
    let layer = Tar::new()
        .dir("d/")
        .file("d/x", b"x")
        .symlink("d", "/")
        .file("d/z", b"z")
        .bytes();
    let bed = accepts(&layer);
    assert_eq!(fs::read(bed.path("z")).unwrap(), b"z");
    assert!(!bed.path("x").exists());
}

#[test]
fn metadata_of_a_symlink_to_outside_never_follows() {
    let probe = Bed::new();
    let target = format!("{}/sentinel", probe.outside_str());
    let layer = Tar::new()
        .pax(&[("SCHILY.xattr.trusted.evil", b"1")])
        .raw_with(EntryType::Symlink, b"s", target.as_bytes(), b"", |h| {
            h.set_uid(4242);
            h.set_gid(4242);
            h.set_mtime(1);
            h.set_mode(0o7777);
        })
        .bytes();
    let bed = accepts(&layer);
    let m = fs::symlink_metadata(bed.path("s")).unwrap();
    assert!(m.is_symlink());
    assert_eq!((m.uid(), m.gid(), m.mtime()), (4242, 4242, 1));
    assert_eq!(
        nodelet_sys::fs::read_xattr(&bed.path("s"), b"trusted.evil").unwrap(),
        Some(b"1".to_vec())
    );
}

#[test]
fn special_file_over_a_symlink_to_outside() {
    let probe = Bed::new();
    let target = format!("{}/sentinel", probe.outside_str());
    let layer = Tar::new()
        .symlink("n", &target)
        .raw_with(EntryType::Char, b"n", b"", b"", |h| {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
            h.set_mode(0o666);
        })
        .bytes();
    let bed = accepts(&layer);
    assert!(
        fs::symlink_metadata(bed.path("n"))
            .unwrap()
            .file_type()
            .is_char_device()
    );
}

// ---- hard links ----------------------------------------------------------------------------

#[test]
fn hardlink_to_host_file() {
    let layer = Tar::new().hardlink("passwd", "/etc/passwd").bytes();
    let (bed, err) = rejects(&layer, "passwd", hardlink_target);
    assert!(err.to_string().contains("/etc/passwd"), "{err}");
    assert!(!bed.path("passwd").exists());
}

#[test]
fn hardlink_to_dotdot() {
    let layer = Tar::new().hardlink("s", "../outside/sentinel").bytes();
    let (_, err) = rejects(&layer, "s", hardlink_target);
    assert!(err.to_string().contains("`..`"), "{err}");
}

#[test]
fn hardlink_to_a_symlink_pointing_outside_links_the_symlink() {
    let probe = Bed::new();
    let target = format!("{}/sentinel", probe.outside_str());
    let layer = Tar::new().symlink("s", &target).hardlink("h", "s").bytes();
    let bed = accepts(&layer);
    let h = fs::symlink_metadata(bed.path("h")).unwrap();
    assert!(h.is_symlink());
    assert_eq!(h.nlink(), 2);
    assert_eq!(
        fs::read_link(bed.path("h")).unwrap().to_str().unwrap(),
        target
    );
}

#[test]
fn hardlink_through_a_symlinked_directory_is_refused() {
    let probe = Bed::new();
    let layer = Tar::new()
        .symlink("o", &probe.outside_str())
        .hardlink("h", "o/sentinel")
        .bytes();
    rejects(&layer, "h", hardlink_target);
}

#[test]
fn hardlink_to_a_directory_or_forward_or_itself() {
    let layer = Tar::new().dir("d/").hardlink("h", "d").bytes();
    rejects(&layer, "h", hardlink_target);
    let layer = Tar::new()
        .hardlink("h", "later")
        .file("later", b"x")
        .bytes();
    rejects(&layer, "h", hardlink_target);
    let layer = Tar::new().file("f", b"x").hardlink("f", "f").bytes();
    rejects(&layer, "f", hardlink_target);
}

#[test]
fn gnu_longlink_with_dotdot() {
    let layer = Tar::new()
        .file("f", b"x")
        .long_link(b"../../outside/sentinel")
        .hardlink("h", "f")
        .bytes();
    let (_, err) = rejects(&layer, "h", hardlink_target);
    assert!(err.to_string().contains("../../outside/sentinel"), "{err}");
}

// ---- replacing entries of the same layer ---------------------------------------------------

#[test]
fn file_then_directory_of_the_same_name() {
    let layer = Tar::new()
        .file("f", b"x")
        .dir("f/")
        .file("f/inner", b"y")
        .bytes();
    let bed = accepts(&layer);
    assert!(bed.path("f").is_dir());
    assert_eq!(fs::read(bed.path("f/inner")).unwrap(), b"y");
}

#[test]
fn directory_then_file_of_the_same_name() {
    let layer = Tar::new()
        .dir("d/")
        .dir("d/sub/")
        .file("d/sub/x", b"x")
        .file("d", b"now a file")
        .bytes();
    let bed = accepts(&layer);
    assert_eq!(fs::read(bed.path("d")).unwrap(), b"now a file");
}

#[test]
fn write_through_a_file() {
    let layer = Tar::new().file("f", b"x").file("f/x", b"y").bytes();
    let (_, err) = rejects(&layer, "f/x", fs_kind(FsErrorKind::NotADirectory));
    assert!(err.to_string().contains("not a directory"), "{err}");
}

#[test]
fn duplicate_file_last_wins_and_whiteout_of_own_entry_is_dropped() {
    let layer = Tar::new()
        .file("x", b"first")
        .file("x", b"second")
        .file(".wh.x", b"")
        .bytes();
    let bed = Bed::new();
    let stats = bed.unpack(&layer).unwrap();
    bed.assert_outside_unchanged();
    assert_eq!(fs::read(bed.path("x")).unwrap(), b"second");
    assert_eq!((stats.whiteouts, stats.skipped), (0, 1));
}

// ---- whiteout names ------------------------------------------------------------------------

#[test]
fn whiteout_with_empty_name() {
    let layer = Tar::new().file(".wh.", b"").bytes();
    rejects(&layer, ".wh.", invalid_whiteout);
}

#[test]
fn whiteout_of_dot_and_dotdot() {
    let layer = Tar::new().file("a/.wh..", b"").bytes();
    rejects(&layer, "a/.wh..", invalid_whiteout);
    let layer = Tar::new().file(".wh...", b"").bytes();
    rejects(&layer, ".wh...", invalid_whiteout);
}

#[test]
fn whiteout_directory_entry_with_trailing_slash() {
    let layer = Tar::new().dir(".wh./").bytes();
    rejects(&layer, ".wh./", invalid_whiteout);
}

#[test]
fn whiteout_name_as_directory_component() {
    let layer = Tar::new().file("a/.wh.b/c", b"").bytes();
    rejects(&layer, "a/.wh.b/c", |c| {
        matches!(c, Cause::WhiteoutDirectory)
    });
}

#[test]
fn reserved_aufs_names() {
    let layer = Tar::new().file(".wh..wh.plnk", b"").bytes();
    rejects(&layer, ".wh..wh.plnk", invalid_whiteout);
}

#[test]
fn whiteout_with_dotdot_path() {
    let layer = Tar::new().file("../.wh.x", b"").bytes();
    rejects(&layer, "../.wh.x", parent_dir);
}

#[test]
fn whiteout_through_a_symlink_to_outside() {
    let probe = Bed::new();
    let layer = Tar::new()
        .symlink("s", &probe.outside_str())
        .file("s/.wh.sentinel", b"")
        .bytes();
    rejects(&layer, "s/.wh.sentinel", fs_kind(FsErrorKind::NotFound));
}

#[test]
fn opaque_marker_in_a_file_or_a_symlink_to_outside() {
    let layer = Tar::new()
        .file("f", b"x")
        .file("f/.wh..wh..opq", b"")
        .bytes();
    rejects(&layer, "f/.wh..wh..opq", |c| {
        matches!(c, Cause::OpaqueNotDirectory(_))
    });
    let probe = Bed::new();
    let layer = Tar::new()
        .symlink("o", &format!("{}/dir", probe.outside_str()))
        .file("o/.wh..wh..opq", b"")
        .bytes();
    rejects(&layer, "o/.wh..wh..opq", |c| {
        matches!(c, Cause::OpaqueNotDirectory(_))
    });
}

// ---- devices ------------------------------------------------------------------------------

#[test]
fn device_node_with_traversal_name() {
    let layer = Tar::new()
        .raw_with(EntryType::Char, b"../dev/null", b"", b"", |h| {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        })
        .bytes();
    rejects(&layer, "../dev/null", parent_dir);
}

#[test]
fn device_node_through_a_symlink_to_outside() {
    let probe = Bed::new();
    let layer = Tar::new()
        .symlink("dev", &probe.outside_str())
        .raw_with(EntryType::Block, b"dev/sda", b"", b"", |h| {
            h.set_device_major(8).unwrap();
            h.set_device_minor(0).unwrap();
        })
        .bytes();
    rejects(&layer, "dev/sda", fs_kind(FsErrorKind::NotFound));
}

// ---- limits and bombs -----------------------------------------------------------------------

#[test]
fn huge_declared_size() {
    let layer = Tar::new()
        .raw_with(EntryType::Regular, b"huge", b"", b"", |h| {
            h.set_size(100 << 30)
        })
        .bytes();
    let (bed, _) = rejects(
        &layer,
        "huge",
        |c| matches!(c, Cause::EntryTooLarge { size, .. } if *size == 100 << 30),
    );
    assert!(!bed.path("huge").exists());
}

#[test]
fn files_over_max_bytes() {
    let limits = UnpackLimits {
        max_bytes: 1 << 20,
        ..UnpackLimits::default()
    };
    let layer = Tar::new()
        .file("a", &vec![1; 600 << 10])
        .file("b", &vec![2; 600 << 10])
        .bytes();
    rejects_with(
        &layer,
        &limits,
        "b",
        |c| matches!(c, Cause::EntryTooLarge { limit, .. } if *limit == 1 << 20),
    );
}

#[test]
fn gzip_bomb_entry() {
    // 256 MiB of zeros compress to a few hundred KiB.
    let zeros = vec![0u8; 256 << 20];
    let layer = gzip(&Tar::new().file("bomb", &zeros).bytes());
    assert!(layer.len() * 100 < zeros.len());
    let limits = UnpackLimits {
        max_bytes: 16 << 20,
        ..UnpackLimits::default()
    };
    let (bed, _) = rejects_with(&layer, &limits, "bomb", |c| {
        matches!(c, Cause::EntryTooLarge { .. })
    });
    assert!(!bed.path("bomb").exists());
}

#[test]
fn gzip_bomb_after_the_end_of_archive() {
    let mut tar = Tar::new().file("small", b"x").bytes();
    tar.extend(std::iter::repeat_n(0u8, 64 << 20));
    let layer = gzip(&tar);
    let limits = UnpackLimits {
        max_bytes: 8 << 20,
        ..UnpackLimits::default()
    };
    breaks(
        &layer,
        &limits,
        Some("small"),
        |c| matches!(c, Cause::LayerTooLarge { limit } if *limit == 8 << 20),
    );
}

#[test]
fn zstd_bomb() {
    let zeros = vec![0u8; 64 << 20];
    let layer = zstd::encode_all(Tar::new().file("bomb", &zeros).bytes().as_slice(), 3).unwrap();
    let limits = UnpackLimits {
        max_bytes: 4 << 20,
        ..UnpackLimits::default()
    };
    rejects_with(&layer, &limits, "bomb", |c| {
        matches!(c, Cause::EntryTooLarge { .. })
    });
}

#[test]
fn gnu_long_name_bomb() {
    let layer = gzip(
        &Tar::new()
            .long_name(&vec![b'a'; 8 << 20])
            .file("x", b"")
            .bytes(),
    );
    breaks(&layer, &UnpackLimits::default(), None, |c| {
        matches!(c, Cause::HeadersTooLarge { .. })
    });
}

#[test]
fn pax_record_bomb() {
    let big = vec![b'v'; 4 << 20];
    let layer = Tar::new()
        .file("first", b"1")
        .pax(&[("SCHILY.xattr.user.big", &big)])
        .file("x", b"")
        .bytes();
    breaks(&layer, &UnpackLimits::default(), Some("first"), |c| {
        matches!(c, Cause::HeadersTooLarge { .. })
    });
}

#[test]
fn too_many_files() {
    let mut tar = Tar::new();
    for i in 0..11 {
        tar = tar.file(&format!("f{i}"), b"");
    }
    let limits = UnpackLimits {
        max_files: 10,
        ..UnpackLimits::default()
    };
    rejects_with(&tar.bytes(), &limits, "f10", |c| {
        matches!(c, Cause::TooManyEntries { limit: 10 })
    });
}

#[test]
fn implied_directories_count_as_files() {
    let limits = UnpackLimits {
        max_files: 5,
        ..UnpackLimits::default()
    };
    let layer = Tar::new().file("a/b/c/d/e/f", b"").bytes();
    rejects_with(&layer, &limits, "a/b/c/d/e/f", |c| {
        matches!(c, Cause::TooManyEntries { limit: 5 })
    });
}

#[test]
fn too_deep() {
    let limits = UnpackLimits {
        max_depth: 8,
        ..UnpackLimits::default()
    };
    let name = ["a"; 9].join("/");
    let layer = Tar::new().file(&name, b"").bytes();
    rejects_with(&layer, &limits, &name, |c| {
        matches!(c, Cause::TooDeep { limit: 8 })
    });
}

#[test]
fn very_long_name() {
    let name = "n/".repeat(2500);
    let layer = Tar::new()
        .long_name(name.as_bytes())
        .file("short", b"")
        .bytes();
    rejects(&layer, &name, |c| {
        matches!(
            c,
            Cause::NameTooLong {
                len: 5000,
                limit: 4096
            }
        )
    });
}

#[test]
fn very_long_symlink_target() {
    let target = "t/".repeat(2500);
    let layer = Tar::new()
        .long_link(target.as_bytes())
        .symlink("s", "x")
        .bytes();
    rejects(&layer, "s", |c| matches!(c, Cause::SymlinkTarget(_)));
}

// ---- names from extension headers -----------------------------------------------------------

#[test]
fn nul_in_name() {
    let layer = Tar::new()
        .pax(&[("path", b"a\0/../../b")])
        .file("harmless", b"")
        .bytes();
    rejects(&layer, "a\0/../../b", |c| matches!(c, Cause::NulInName));
    let layer = Tar::new().long_name(b"x\0y").file("harmless", b"").bytes();
    rejects(&layer, "x\0y", |c| matches!(c, Cause::NulInName));
}

#[test]
fn pax_path_overrides_with_dotdot() {
    let layer = Tar::new()
        .pax(&[("path", b"../pax-escape")])
        .file("harmless", b"x")
        .bytes();
    let (bed, _) = rejects(&layer, "../pax-escape", parent_dir);
    assert!(!bed.path("harmless").exists());
}

#[test]
fn gnu_long_name_with_dotdot() {
    let layer = Tar::new()
        .long_name(b"../../gnu-escape")
        .file("harmless", b"x")
        .bytes();
    rejects(&layer, "../../gnu-escape", parent_dir);
}

#[test]
fn pax_linkpath_with_dotdot_on_a_hardlink() {
    let layer = Tar::new()
        .file("f", b"x")
        .pax(&[("linkpath", b"../outside/sentinel")])
        .hardlink("h", "f")
        .bytes();
    rejects(&layer, "h", hardlink_target);
}

#[test]
fn non_directory_naming_the_root() {
    let layer = Tar::new().file("./", b"x").bytes();
    rejects(&layer, "./", |c| matches!(c, Cause::NamesRoot));
    let layer = Tar::new().symlink("/", "/etc").bytes();
    rejects(&layer, "/", |c| matches!(c, Cause::NamesRoot));
}

// ---- attributes -----------------------------------------------------------------------------

#[test]
fn overlay_xattrs_are_refused() {
    let layer = Tar::new()
        .dir("d/")
        .pax(&[("SCHILY.xattr.trusted.overlay.redirect", b"/etc")])
        .dir("e/")
        .bytes();
    rejects(&layer, "e/", |c| matches!(c, Cause::Xattr { .. }));
    let layer = Tar::new()
        .pax(&[("SCHILY.xattr.user.overlay.opaque", b"y")])
        .dir("e/")
        .bytes();
    rejects(&layer, "e/", |c| matches!(c, Cause::Xattr { .. }));
}

#[test]
fn uid_over_32_bits() {
    let layer = Tar::new()
        .pax(&[("uid", b"4294967296")])
        .file("f", b"x")
        .bytes();
    rejects(&layer, "f", |c| {
        matches!(c, Cause::BadHeader { field: "uid", .. })
    });
}

// ---- entry types ----------------------------------------------------------------------------

#[test]
fn unknown_entry_types() {
    let layer = Tar::new()
        .raw(EntryType::new(b'V'), "volume", "", b"")
        .bytes();
    let (_, err) = rejects(&layer, "volume", |c| {
        matches!(c, Cause::UnsupportedType(b'V'))
    });
    assert!(err.to_string().contains("volume header"), "{err}");
    let layer = Tar::new().raw(EntryType::new(b'Z'), "z", "", b"").bytes();
    rejects(&layer, "z", |c| matches!(c, Cause::UnsupportedType(b'Z')));
}

#[test]
fn empty_symlink_target() {
    let layer = Tar::new().symlink("s", "").bytes();
    rejects(&layer, "s", |c| matches!(c, Cause::SymlinkTarget(_)));
}

// ---- broken streams -------------------------------------------------------------------------

#[test]
fn truncated_in_file_data() {
    let tar = Tar::new().file("big", &vec![7u8; 10_000]).bytes();
    let cut = &tar[..512 + 5_000];
    rejects(cut, "big", |c| {
        matches!(
            c,
            Cause::Truncated {
                got: 5_000,
                expected: 10_000
            }
        )
    });
}

#[test]
fn truncated_in_a_header() {
    let tar = Tar::new().file("a", b"x").file("b", b"y").bytes();
    let cut = &tar[..1024 + 256];
    breaks(cut, &UnpackLimits::default(), Some("a"), |c| {
        matches!(c, Cause::Malformed(_))
    });
}

#[test]
fn missing_end_of_archive_is_accepted() {
    let tar = Tar::new().file("a", b"x").unfinished();
    let bed = accepts(&tar);
    assert_eq!(fs::read(bed.path("a")).unwrap(), b"x");
}

#[test]
fn bad_header_checksum() {
    let mut tar = Tar::new().file("a", b"x").file("b", b"y").bytes();
    tar[1024] ^= 0x20; // first byte of the second header's name
    breaks(&tar, &UnpackLimits::default(), Some("a"), |c| {
        matches!(c, Cause::Malformed(_))
    });
}

#[test]
fn corrupt_gzip_trailer() {
    let mut layer = gzip(&Tar::new().file("a", b"x").bytes());
    let n = layer.len();
    layer[n - 8] ^= 0xff; // CRC32
    breaks(&layer, &UnpackLimits::default(), Some("a"), |c| {
        matches!(c, Cause::Decompress(_))
    });
}

#[test]
fn corrupt_gzip_data() {
    let mut layer = gzip(&Tar::new().file("a", &vec![3u8; 100_000]).bytes());
    for b in &mut layer[12..40] {
        *b = 0xff;
    }
    let bed = Bed::new();
    let err = bed.unpack(&layer).expect_err("corrupt gzip must fail");
    assert!(
        matches!(
            err.cause(),
            Cause::Decompress(_) | Cause::Malformed(_) | Cause::Truncated { .. }
        ),
        "{err}"
    );
    bed.assert_outside_unchanged();
}

#[test]
fn truncated_gzip() {
    let layer = gzip(&Tar::new().file("a", &vec![5u8; 100_000]).bytes());
    let cut = &layer[..layer.len() / 2];
    let bed = Bed::new();
    let err = bed.unpack(cut).expect_err("truncated gzip must fail");
    assert!(
        matches!(err.cause(), Cause::Decompress(_) | Cause::Truncated { .. }),
        "{err}"
    );
    bed.assert_outside_unchanged();
}

#[test]
fn declared_gzip_that_is_not() {
    let tar = Tar::new().file("a", b"x").bytes();
    let bed = Bed::new();
    let err = unpack_layer(
        tar.as_slice(),
        Compression::Gzip,
        &bed.root,
        &UnpackLimits::default(),
    )
    .expect_err("not gzip");
    assert!(matches!(err.cause(), Cause::Decompress(_)), "{err}");
    assert_eq!(err.after_entry(), None);
    bed.assert_outside_unchanged();
}

#[test]
fn root_must_be_empty() {
    let bed = Bed::new();
    fs::write(bed.path("already"), b"x").unwrap();
    let err = bed.unpack(&Tar::new().file("a", b"x").bytes()).unwrap_err();
    assert!(matches!(err.cause(), Cause::RootNotEmpty), "{err}");
    assert!(!bed.path("a").exists());
}

#[test]
fn unreadable_directory_modes_are_kept() {
    let layer = Tar::new()
        .raw_with(EntryType::Directory, b"locked/", b"", b"", |h| {
            h.set_mode(0)
        })
        .file("locked/inside", b"x")
        .bytes();
    let bed = accepts(&layer);
    assert_eq!(
        fs::symlink_metadata(bed.path("locked")).unwrap().mode() & 0o7777,
        0
    );
    assert_eq!(fs::read(bed.path("locked/inside")).unwrap(), b"x");
}

#[test]
fn header_of_a_gnu_entry_with_base256_size_is_parsed() {
    // Sanity check of the builder used above: sizes over 8 GiB use base-256.
    let h = header(EntryType::Regular, 0o644, 100 << 30);
    assert_eq!(h.entry_size().unwrap(), 100 << 30);
}
