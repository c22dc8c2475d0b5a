//! Pod volumes made real on the host (emptyDir on disk and tmpfs, hostPath checks, atomic
//! file volumes, fsGroup, teardown), and a container reading a configMap file and writing an
//! emptyDir through its bind mounts. Privileged: run as root.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::{Harness, PATH_ENV, container_id, finish, launch};
use nodelet_runtime::container::Exit;
use nodelet_runtime::spec::BindMount;
use nodelet_runtime::volumes::{
    FileSource, HostPathType, Medium, PodVolumes, ProjectedFile, VolumeKind, VolumePlan,
    prepare_sub_path,
};
use nodelet_sys::process::ExitStatus;

fn pod_dir() -> tempfile::TempDir {
    common::require_root();
    tempfile::Builder::new()
        .prefix("nodelet-vol-")
        .tempdir()
        .unwrap()
}

/// Mount points under `dir`, from our mount table.
fn mounts_under(dir: &Path) -> Vec<(String, String)> {
    let ours = dir.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let point = fields.get(4)?;
            let sep = fields.iter().position(|f| *f == "-")?;
            let fstype = fields.get(sep + 1)?;
            let options = fields.get(sep + 3)?;
            point
                .starts_with(&ours)
                .then(|| (format!("{point} {fstype}"), options.to_string()))
        })
        .collect()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().mode() & 0o7777
}

fn file(path: &str, data: &str, mode: u32) -> ProjectedFile {
    ProjectedFile {
        path: path.into(),
        data: data.as_bytes().to_vec(),
        mode,
    }
}

fn plan(name: &str, kind: VolumeKind) -> VolumePlan {
    VolumePlan {
        name: name.into(),
        kind,
        fs_group: None,
    }
}

#[test]
fn empty_dirs_on_disk_and_in_memory_then_teardown_leaves_nothing() {
    let tmp = pod_dir();
    let volumes = PodVolumes::new(tmp.path());
    let disk = volumes
        .set_up(&plan(
            "scratch",
            VolumeKind::EmptyDir {
                medium: Medium::Disk,
            },
        ))
        .unwrap();
    assert_eq!(
        disk.host_path,
        tmp.path().join("volumes/kubernetes.io~empty-dir/scratch")
    );
    assert!(!disk.read_only);
    assert_eq!(mode(&disk.host_path), 0o777);
    assert_eq!(mode(volumes.root()), 0o700);
    fs::write(disk.host_path.join("kept"), "x").unwrap();

    let memory = volumes
        .set_up(&plan(
            "cache",
            VolumeKind::EmptyDir {
                medium: Medium::Memory {
                    size_bytes: Some(4 << 20),
                },
            },
        ))
        .unwrap();
    let mounts = mounts_under(tmp.path());
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    assert_eq!(mounts[0].0, format!("{} tmpfs", memory.host_path.display()));
    assert!(mounts[0].1.contains("size=4096k"), "{mounts:?}");

    // A second sync changes nothing: same data, still one mount.
    volumes
        .set_up(&plan(
            "cache",
            VolumeKind::EmptyDir {
                medium: Medium::Memory { size_bytes: None },
            },
        ))
        .unwrap();
    volumes
        .set_up(&plan(
            "scratch",
            VolumeKind::EmptyDir {
                medium: Medium::Disk,
            },
        ))
        .unwrap();
    assert_eq!(mounts_under(tmp.path()).len(), 1);
    assert_eq!(
        fs::read_to_string(disk.host_path.join("kept")).unwrap(),
        "x"
    );

    volumes.tear_down().unwrap();
    assert!(mounts_under(tmp.path()).is_empty());
    assert!(!volumes.root().exists());
    volumes.tear_down().unwrap();
}

#[test]
fn host_path_types_are_checked_and_created() {
    let tmp = pod_dir();
    let volumes = PodVolumes::new(tmp.path());
    let host = |path: PathBuf, path_type| {
        volumes.set_up(&plan("host", VolumeKind::HostPath { path, path_type }))
    };
    let dir = tmp.path().join("made/deep/dir");
    let mounted = host(dir.clone(), HostPathType::DirectoryOrCreate).unwrap();
    assert_eq!(mounted.host_path, dir);
    assert!(dir.is_dir());
    assert_eq!(mode(&dir), 0o755);
    host(dir.clone(), HostPathType::Directory).unwrap();

    let made = tmp.path().join("made/file");
    host(made.clone(), HostPathType::FileOrCreate).unwrap();
    assert!(made.is_file());
    assert_eq!(mode(&made), 0o644);
    host(made.clone(), HostPathType::File).unwrap();

    let err = host(made.clone(), HostPathType::Directory).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "hostPath type check failed: {} is not a directory",
            made.display()
        )
    );
    let err = host(dir.clone(), HostPathType::FileOrCreate).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "hostPath type check failed: {} is not a file",
            dir.display()
        )
    );
    let orphan = tmp.path().join("no/parent/file");
    let err = host(orphan.clone(), HostPathType::FileOrCreate).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("open {}: no such file or directory", orphan.display())
    );
    host(PathBuf::from("/dev/null"), HostPathType::CharDevice).unwrap();
    // hostPath data is the node's: teardown leaves it.
    volumes.tear_down().unwrap();
    assert!(dir.is_dir() && made.is_file());
}

#[test]
fn file_volumes_are_written_atomically_and_resynced() {
    let tmp = pod_dir();
    let volumes = PodVolumes::new(tmp.path());
    let config = |files| {
        plan(
            "config",
            VolumeKind::Files {
                source: FileSource::ConfigMap,
                files,
                medium: Medium::Disk,
            },
        )
    };
    let mounted = volumes
        .set_up(&config(vec![
            file("app.conf", "v1", 0o644),
            file("nested/dir/key", "deep", 0o400),
            file("gone", "soon", 0o644),
        ]))
        .unwrap();
    let dir = &mounted.host_path;
    assert!(mounted.read_only, "file volumes are always read-only");
    assert_eq!(
        dir,
        &tmp.path().join("volumes/kubernetes.io~configmap/config")
    );
    assert_eq!(fs::read_to_string(dir.join("app.conf")).unwrap(), "v1");
    assert_eq!(
        fs::read_to_string(dir.join("nested/dir/key")).unwrap(),
        "deep"
    );
    assert_eq!(mode(&dir.join("nested/dir/key")), 0o400);
    assert_eq!(mode(&dir.join("app.conf")), 0o644);
    assert_eq!(
        fs::read_link(dir.join("app.conf")).unwrap(),
        Path::new("..data/app.conf")
    );
    assert_eq!(
        fs::read_link(dir.join("nested")).unwrap(),
        Path::new("..data/nested")
    );
    let first = fs::read_link(dir.join("..data")).unwrap();
    let first_name = first.to_string_lossy().into_owned();
    assert!(first_name.starts_with(".."), "{first_name}");
    assert_eq!(mode(&dir.join(&first)), 0o755);
    assert!(
        mounts_under(tmp.path()).is_empty(),
        "configMaps live on disk"
    );

    // Same payload: nothing is rewritten.
    volumes
        .set_up(&config(vec![
            file("app.conf", "v1", 0o644),
            file("nested/dir/key", "deep", 0o400),
            file("gone", "soon", 0o644),
        ]))
        .unwrap();
    assert_eq!(fs::read_link(dir.join("..data")).unwrap(), first);

    // New payload: a new timestamped directory, old names dropped, the old dir removed.
    volumes
        .set_up(&config(vec![
            file("app.conf", "v2", 0o600),
            file("nested/dir/key", "deep", 0o400),
        ]))
        .unwrap();
    let second = fs::read_link(dir.join("..data")).unwrap();
    assert_ne!(second, first);
    assert!(!dir.join(&first).exists());
    assert!(fs::symlink_metadata(dir.join("gone")).is_err());
    assert_eq!(fs::read_to_string(dir.join("app.conf")).unwrap(), "v2");
    assert_eq!(mode(&dir.join("app.conf")), 0o600);
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want = vec![
        "..data".to_string(),
        second.to_string_lossy().into_owned(),
        "app.conf".into(),
        "nested".into(),
    ];
    want.sort();
    assert_eq!(names, want);

    let err = volumes
        .set_up(&config(vec![file("../escape", "x", 0o644)]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid path: must not contain '..': ../escape"
    );
    volumes.tear_down().unwrap();
    assert!(!volumes.root().exists());
}

#[test]
fn secrets_live_on_a_tmpfs_with_the_asked_modes_and_fs_group() {
    let tmp = pod_dir();
    let volumes = PodVolumes::new(tmp.path());
    let mut secret = plan(
        "creds",
        VolumeKind::Files {
            source: FileSource::Secret,
            files: vec![file("password", "hunter2", 0o644), file("key", "k", 0o400)],
            medium: Medium::Memory { size_bytes: None },
        },
    );
    secret.fs_group = Some(1234);
    let mounted = volumes.set_up(&secret).unwrap();
    let dir = &mounted.host_path;
    let mounts = mounts_under(tmp.path());
    assert_eq!(
        mounts.iter().map(|m| m.0.clone()).collect::<Vec<_>>(),
        vec![format!("{} tmpfs", dir.display())]
    );
    assert_eq!(mode(volumes.root()), 0o700);
    assert_eq!(fs::metadata(volumes.root()).unwrap().uid(), 0);
    assert_eq!(fs::read_to_string(dir.join("password")).unwrap(), "hunter2");
    // fsGroup: group-owned, files |0440, directories setgid.
    assert_eq!(mode(&dir.join("password")), 0o644);
    assert_eq!(mode(&dir.join("key")), 0o440);
    assert_eq!(fs::metadata(dir.join("key")).unwrap().gid(), 1234);
    let data = dir.join(fs::read_link(dir.join("..data")).unwrap());
    assert_eq!(mode(&data), 0o2755);
    assert_eq!(fs::metadata(&data).unwrap().gid(), 1234);

    // A re-sync with the same payload is a no-op even with fsGroup's modes.
    let before = fs::read_link(dir.join("..data")).unwrap();
    volumes.set_up(&secret).unwrap();
    assert_eq!(fs::read_link(dir.join("..data")).unwrap(), before);
    assert_eq!(mounts_under(tmp.path()).len(), 1);

    volumes.tear_down().unwrap();
    assert!(mounts_under(tmp.path()).is_empty());
    assert!(!volumes.root().exists());
}

#[test]
fn sub_paths_are_made_inside_the_volume_only() {
    let tmp = pod_dir();
    let volumes = PodVolumes::new(tmp.path());
    let scratch = volumes
        .set_up(&plan(
            "scratch",
            VolumeKind::EmptyDir {
                medium: Medium::Disk,
            },
        ))
        .unwrap();
    let made = prepare_sub_path(&scratch.host_path, "a/b").unwrap();
    assert_eq!(made, scratch.host_path.join("a/b"));
    assert_eq!(mode(&made), 0o777);
    std::os::unix::fs::symlink("/etc", scratch.host_path.join("evil")).unwrap();
    let err = prepare_sub_path(&scratch.host_path, "evil").unwrap_err();
    assert!(err.to_string().contains("not within volume path"), "{err}");
    let err = prepare_sub_path(&scratch.host_path, "evil/new").unwrap_err();
    assert!(err.to_string().contains("not within volume path"), "{err}");
    assert!(!Path::new("/etc/new").exists());
    volumes.tear_down().unwrap();
}

#[test]
fn a_container_reads_a_config_map_file_and_writes_an_empty_dir() {
    let harness = Harness::new(&["tiny"]);
    let handler = harness
        .installed()
        .into_iter()
        .find(|h| h.name == "runc")
        .unwrap();
    // Not under the harness's directory: it checks that no mount is left there while ours
    // are still up.
    let pod_tmp = pod_dir();
    let pod = pod_tmp.path();
    let volumes = PodVolumes::new(pod);
    let config = volumes
        .set_up(&plan(
            "config",
            VolumeKind::Files {
                source: FileSource::ConfigMap,
                files: vec![file("greeting", "hello from a configMap", 0o644)],
                medium: Medium::Disk,
            },
        ))
        .unwrap();
    let scratch = volumes
        .set_up(&plan(
            "scratch",
            VolumeKind::EmptyDir {
                medium: Medium::Memory { size_bytes: None },
            },
        ))
        .unwrap();
    let id = container_id(&handler, "volumes");
    let launched = launch(
        &harness,
        &handler,
        &id,
        "tiny",
        &[
            "/bin/sh",
            "-c",
            "cat /etc/config/greeting; echo; echo written > /scratch/out; \
             touch /etc/config/nope 2>/dev/null || echo read-only",
        ],
        |spec| {
            spec.env = vec![PATH_ENV.into()];
            spec.mounts = vec![
                BindMount {
                    source: config.host_path.clone(),
                    destination: "/etc/config".into(),
                    read_only: config.read_only,
                    propagation: nodelet_runtime::spec::MountPropagation::Private,
                },
                BindMount {
                    source: scratch.host_path.clone(),
                    destination: "/scratch".into(),
                    read_only: false,
                    propagation: nodelet_runtime::spec::MountPropagation::Private,
                },
            ];
        },
    );
    let finished = finish(&harness, &handler, launched);
    assert_eq!(
        finished.exit,
        Exit::Status(ExitStatus::Exited(0)),
        "{}",
        finished.stderr
    );
    assert_eq!(finished.stdout, "hello from a configMap\nread-only\n");
    assert_eq!(
        fs::read_to_string(scratch.host_path.join("out")).unwrap(),
        "written\n"
    );
    volumes.tear_down().unwrap();
    assert!(mounts_under(pod).is_empty());
    assert!(!volumes.root().exists());
}
