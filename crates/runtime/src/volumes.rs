//! Pod volumes on the node: what the kubelet resolved from `spec.volumes` (a [`VolumePlan`])
//! made real under the pod's directory, and taken down again.
//!
//! Layout, as upstream's: `{pod_dir}/volumes/<plugin>/<name>` with the plugin names
//! `kubernetes.io~empty-dir`, `~configmap`, `~secret`, `~downward-api`, `~projected`.
//! `{pod_dir}/volumes` is mode 0700, owned by root: only the node reaches the volumes from
//! the host side (a container sees its volume through its bind mount, whose root keeps its
//! own mode), which is what keeps secret data private on the host.
//!
//! - emptyDir: a directory of mode 0777 (disk), or a tmpfs (`medium: Memory`, root 1777 as
//!   the kernel makes it) with `size=` when the plan gives one.
//! - hostPath: the node's path itself, after upstream's `type` checks; `DirectoryOrCreate`
//!   makes a 0755 directory, `FileOrCreate` an empty 0644 file (not its parents).
//! - configMap (on disk), secret, downwardAPI, projected (each on a tmpfs of its own, as
//!   upstream's memory-backed wrapper): files written by the *atomic writer* scheme. The
//!   payload goes into a fresh `..<UTC time>.<suffix>` directory (0755), `..data` is swapped
//!   to point at it with one `rename(2)`, and each top-level name is a symbolic link
//!   `name -> ..data/name`; so a container reading during a re-sync sees the old or the new
//!   content, never a mix. File modes are the plan's, exactly (not subject to the umask).
//! - `fsGroup`: group ownership on the volume's tree, files `|0440` (`|0660` for emptyDir),
//!   directories setgid `|0550` (`|0770`), as upstream's `SetVolumeOwnership`. Applied to an
//!   emptyDir only when it is created (it is empty then), to file volumes on every write.
//!
//! Teardown unmounts every mount under `{pod_dir}/volumes` (deepest first) and removes the
//! tree; it is idempotent.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nodelet_sys::mount::{self, MountError};

/// The atomic writer's link to the current payload directory.
pub const DATA_DIR_LINK: &str = "..data";
const DATA_DIR_TMP_LINK: &str = "..data_tmp";

/// Where an emptyDir (or a file volume) keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medium {
    /// A directory on the node's disk.
    Disk,
    /// A tmpfs of its own, of at most `size_bytes` when given (else the kernel's default).
    Memory { size_bytes: Option<u64> },
}

/// `hostPath.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPathType {
    /// `""`: no check.
    Unchecked,
    DirectoryOrCreate,
    Directory,
    FileOrCreate,
    File,
    Socket,
    CharDevice,
    BlockDevice,
}

/// Which volume source produced a file volume (it names the plugin directory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileSource {
    ConfigMap,
    Secret,
    DownwardApi,
    Projected,
}

impl FileSource {
    /// Upstream's plugin directory name.
    pub fn plugin(self) -> &'static str {
        match self {
            FileSource::ConfigMap => "kubernetes.io~configmap",
            FileSource::Secret => "kubernetes.io~secret",
            FileSource::DownwardApi => "kubernetes.io~downward-api",
            FileSource::Projected => "kubernetes.io~projected",
        }
    }
}

/// The emptyDir plugin directory name.
pub const EMPTY_DIR_PLUGIN: &str = "kubernetes.io~empty-dir";

/// One file of a file volume.
#[derive(Clone, PartialEq, Eq)]
pub struct ProjectedFile {
    /// Relative to the volume (`a/b/c`).
    pub path: String,
    pub data: Vec<u8>,
    /// Permission bits (e.g. `0o644`).
    pub mode: u32,
}

impl fmt::Debug for ProjectedFile {
    /// Never the data: it may be a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProjectedFile")
            .field("path", &self.path)
            .field("bytes", &self.data.len())
            .field("mode", &format_args!("{:#o}", self.mode))
            .finish()
    }
}

/// What to materialise for one volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeKind {
    EmptyDir {
        medium: Medium,
    },
    HostPath {
        path: PathBuf,
        path_type: HostPathType,
    },
    /// configMap, secret, downwardAPI, projected.
    Files {
        source: FileSource,
        files: Vec<ProjectedFile>,
        medium: Medium,
    },
}

/// One of the pod's volumes, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumePlan {
    pub name: String,
    pub kind: VolumeKind,
    /// The pod's `securityContext.fsGroup` (not applied to hostPath).
    pub fs_group: Option<u32>,
}

/// A volume ready to be bind-mounted into containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountedVolume {
    pub name: String,
    /// On the host.
    pub host_path: PathBuf,
    /// The plugin mounts it read-only whatever the volumeMount says (file volumes).
    pub read_only: bool,
}

/// Why a volume could not be set up or taken down. Texts follow upstream's where it has one.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("hostPath type check failed: {} is not a {what}", .path.display())]
    HostPathType { path: PathBuf, what: &'static str },
    /// Go's `*PathError` form: `mkdir /x: permission denied`.
    #[error("{op} {}: {}", .path.display(), go_error_text(.source))]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error("invalid path: {0}")]
    InvalidPath(String),
    /// The subPath does not exist and could not be made (the kubelet reports this without
    /// details, which could describe the host's filesystem).
    #[error("creating subPath {sub_path:?} in {}: {source}", .volume.display())]
    SubPathCreate {
        sub_path: String,
        volume: PathBuf,
        source: io::Error,
    },
    #[error("subpath {:?} not within volume path {:?}", .path.display().to_string(), .volume.display().to_string())]
    SubPathOutside { path: PathBuf, volume: PathBuf },
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> VolumeError + use<> {
    let path = path.to_path_buf();
    move |source| VolumeError::Io { op, path, source }
}

/// `No such file or directory (os error 2)` → `no such file or directory`, as Go prints it.
fn go_error_text(err: &io::Error) -> String {
    let text = err.to_string();
    let text = match text.find(" (os error ") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A pod's volumes under `{pod_dir}/volumes`.
#[derive(Debug, Clone)]
pub struct PodVolumes {
    root: PathBuf,
}

impl PodVolumes {
    pub fn new(pod_dir: &Path) -> PodVolumes {
        PodVolumes {
            root: pod_dir.join("volumes"),
        }
    }

    /// `{pod_dir}/volumes`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where `plan`'s data lives on the host.
    pub fn host_path(&self, plan: &VolumePlan) -> PathBuf {
        match &plan.kind {
            VolumeKind::EmptyDir { .. } => self.root.join(EMPTY_DIR_PLUGIN).join(&plan.name),
            VolumeKind::HostPath { path, .. } => path.clone(),
            VolumeKind::Files { source, .. } => self.root.join(source.plugin()).join(&plan.name),
        }
    }

    /// Makes `plan` real, or brings it up to date (file volumes are rewritten atomically when
    /// their content or modes changed). May run any number of times.
    pub fn set_up(&self, plan: &VolumePlan) -> Result<MountedVolume, VolumeError> {
        let host_path = self.host_path(plan);
        let read_only = match &plan.kind {
            VolumeKind::HostPath { path, path_type } => {
                check_host_path(path, *path_type)?;
                false
            }
            VolumeKind::EmptyDir { medium } => {
                self.make_root()?;
                let created = make_volume_dir(&host_path, *medium)?;
                if let (true, Some(gid)) = (created, plan.fs_group) {
                    set_ownership(&host_path, gid, false)?;
                }
                false
            }
            VolumeKind::Files { files, medium, .. } => {
                self.make_root()?;
                make_volume_dir(&host_path, *medium)?;
                write_atomically(&host_path, files, plan.fs_group)?;
                true
            }
        };
        Ok(MountedVolume {
            name: plan.name.clone(),
            host_path,
            read_only,
        })
    }

    /// Unmounts and removes every volume of the pod. Idempotent.
    pub fn tear_down(&self) -> Result<(), VolumeError> {
        if fs::symlink_metadata(&self.root).is_err() {
            return Ok(());
        }
        for point in mounts_under(&self.root)? {
            unmount(&point)?;
        }
        match fs::remove_dir_all(&self.root) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => {
                Err(io_err("removing", &self.root)(err))
            }
            _ => Ok(()),
        }
    }

    fn make_root(&self) -> Result<(), VolumeError> {
        fs::create_dir_all(&self.root).map_err(io_err("mkdir", &self.root))?;
        fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700))
            .map_err(io_err("chmod", &self.root))
    }
}

/// Creates the volume's directory (0777, as upstream's emptyDir) and mounts its tmpfs when the
/// medium is memory and none is there yet. Returns whether the directory was new.
fn make_volume_dir(dir: &Path, medium: Medium) -> Result<bool, VolumeError> {
    let created = match fs::create_dir(dir) {
        Ok(()) => true,
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => false,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            let parent = dir.parent().unwrap_or(dir);
            fs::create_dir_all(parent).map_err(io_err("mkdir", parent))?;
            fs::create_dir(dir).map_err(io_err("mkdir", dir))?;
            true
        }
        Err(err) => return Err(io_err("mkdir", dir)(err)),
    };
    if let Medium::Memory { size_bytes } = medium {
        if !is_mount_point(dir)? {
            let options = size_bytes.map(|s| format!("size={s}")).unwrap_or_default();
            mount::mount_tmpfs(dir, &options)?;
            return Ok(created);
        }
    } else if created {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o777))
            .map_err(io_err("chmod", dir))?;
    }
    Ok(created)
}

/// Whether `dir` is the root of a filesystem other than its parent's.
fn is_mount_point(dir: &Path) -> Result<bool, VolumeError> {
    let own = fs::symlink_metadata(dir).map_err(io_err("lstat", dir))?;
    let parent = dir.parent().unwrap_or(dir);
    let up = fs::symlink_metadata(parent).map_err(io_err("lstat", parent))?;
    Ok(own.dev() != up.dev())
}

/// Upstream's `checkType` (pkg/volume/hostpath), with its texts.
fn check_host_path(path: &Path, path_type: HostPathType) -> Result<(), VolumeError> {
    let kind = fs::metadata(path).ok().map(|m| m.file_type());
    let not_a = |what| {
        Err(VolumeError::HostPathType {
            path: path.to_path_buf(),
            what,
        })
    };
    match path_type {
        HostPathType::Unchecked => Ok(()),
        HostPathType::DirectoryOrCreate if kind.is_none() => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(path)
                .map_err(io_err("mkdir", path))?;
            fs::set_permissions(path, fs::Permissions::from_mode(0o755))
                .map_err(io_err("chmod", path))
        }
        HostPathType::DirectoryOrCreate | HostPathType::Directory => match kind {
            Some(k) if k.is_dir() => Ok(()),
            _ => not_a("directory"),
        },
        HostPathType::FileOrCreate if kind.is_none() => {
            let file = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(path)
                .map_err(io_err("open", path))?;
            file.set_permissions(fs::Permissions::from_mode(0o644))
                .map_err(io_err("chmod", path))
        }
        HostPathType::FileOrCreate | HostPathType::File => match kind {
            Some(k) if k.is_file() => Ok(()),
            _ => not_a("file"),
        },
        HostPathType::Socket => match kind {
            Some(k) if k.is_socket() => Ok(()),
            _ => not_a("socket file"),
        },
        HostPathType::CharDevice => match kind {
            Some(k) if k.is_char_device() => Ok(()),
            _ => not_a("character device"),
        },
        HostPathType::BlockDevice => match kind {
            Some(k) if k.is_block_device() => Ok(()),
            _ => not_a("block device"),
        },
    }
}

/// Upstream's atomic writer's path rules (the API validates the same; this guards the host).
pub fn validate_file_path(path: &str) -> Result<(), VolumeError> {
    let invalid = |why: &str| Err(VolumeError::InvalidPath(format!("{why}: {path}")));
    if path.is_empty() {
        return Err(VolumeError::InvalidPath(
            "must not be empty: \"\"".to_owned(),
        ));
    }
    if Path::new(path).is_absolute() {
        return invalid("must be relative path");
    }
    if path.split('/').any(|part| part == "..") {
        return invalid("must not contain '..'");
    }
    if path
        .split('/')
        .next()
        .is_some_and(|first| first.starts_with("..") && first.len() > 2)
    {
        return invalid("must not start with '..'");
    }
    Ok(())
}

/// The payload as a map (the last file of a path wins, as upstream's map does).
fn payload_map(files: &[ProjectedFile]) -> Result<BTreeMap<&str, &ProjectedFile>, VolumeError> {
    let mut map = BTreeMap::new();
    for file in files {
        validate_file_path(&file.path)?;
        map.insert(file.path.trim_end_matches('/'), file);
    }
    Ok(map)
}

fn effective_mode(mode: u32, fs_group: Option<u32>) -> u32 {
    if fs_group.is_some() {
        (mode & 0o7777) | 0o440
    } else {
        mode & 0o7777
    }
}

/// Writes `files` into `dir` by the atomic writer scheme (module documentation). Returns
/// whether anything changed.
pub fn write_atomically(
    dir: &Path,
    files: &[ProjectedFile],
    fs_group: Option<u32>,
) -> Result<bool, VolumeError> {
    let payload = payload_map(files)?;
    let data_link = dir.join(DATA_DIR_LINK);
    let old_dir = fs::read_link(&data_link).ok();
    if let Some(old) = &old_dir
        && payload_matches(&dir.join(old), &payload, fs_group)
    {
        return Ok(false);
    }

    let new_dir_name = make_timestamped_dir(dir)?;
    let new_dir = dir.join(&new_dir_name);
    for (path, file) in &payload {
        let target = new_dir.join(path);
        if let Some(parent) = target.parent().filter(|p| *p != new_dir) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(io_err("mkdir", parent))?;
        }
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&target)
            .map_err(io_err("open", &target))?;
        out.write_all(&file.data)
            .map_err(io_err("write", &target))?;
        out.set_permissions(fs::Permissions::from_mode(file.mode & 0o7777))
            .map_err(io_err("chmod", &target))?;
    }
    if let Some(gid) = fs_group {
        set_ownership(&new_dir, gid, true)?;
        set_ownership_one(dir, gid, true)?;
    }

    // The swap: `..data_tmp` → new dir, renamed over `..data` in one step.
    let tmp_link = dir.join(DATA_DIR_TMP_LINK);
    match fs::remove_file(&tmp_link) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => {
            return Err(io_err("removing", &tmp_link)(err));
        }
        _ => {}
    }
    std::os::unix::fs::symlink(&new_dir_name, &tmp_link).map_err(io_err("symlink", &tmp_link))?;
    fs::rename(&tmp_link, &data_link).map_err(io_err("rename", &tmp_link))?;

    // The user-visible names: one link per top-level component.
    let visible: BTreeSet<&str> = payload
        .keys()
        .map(|p| p.split('/').next().unwrap_or(p))
        .collect();
    for name in &visible {
        let link = dir.join(name);
        if fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new(DATA_DIR_LINK).join(name), &link)
                .map_err(io_err("symlink", &link))?;
        }
    }
    for entry in fs::read_dir(dir).map_err(io_err("reading", dir))? {
        let entry = entry.map_err(io_err("reading", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") || visible.contains(name.as_str()) {
            continue;
        }
        let points_into_data =
            fs::read_link(entry.path()).is_ok_and(|target| target.starts_with(DATA_DIR_LINK));
        if points_into_data {
            fs::remove_file(entry.path()).map_err(io_err("removing", &entry.path()))?;
        }
    }
    if let Some(old) = old_dir.filter(|old| *old != Path::new(&new_dir_name)) {
        let old = dir.join(old);
        fs::remove_dir_all(&old).map_err(io_err("removing", &old))?;
    }
    Ok(true)
}

/// Whether `current` holds exactly `payload` (bytes and modes), so no write is needed.
fn payload_matches(
    current: &Path,
    payload: &BTreeMap<&str, &ProjectedFile>,
    fs_group: Option<u32>,
) -> bool {
    let mut found = Vec::new();
    if collect_files(current, current, &mut found).is_err() || found.len() != payload.len() {
        return false;
    }
    found.iter().all(|relative| {
        let Some(file) = payload.get(relative.as_str()) else {
            return false;
        };
        let path = current.join(relative);
        let same_mode = fs::symlink_metadata(&path)
            .is_ok_and(|m| m.mode() & 0o7777 == effective_mode(file.mode, fs_group));
        same_mode && fs::read(&path).is_ok_and(|data| data == file.data)
    })
}

fn collect_files(base: &Path, dir: &Path, out: &mut Vec<String>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect_files(base, &entry.path(), out)?;
        } else {
            let relative = entry.path();
            let relative = relative.strip_prefix(base).unwrap_or(&relative);
            out.push(relative.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

/// `..2006_01_02_15_04_05.<suffix>` (upstream's name format), mode 0755.
fn make_timestamped_dir(dir: &Path) -> Result<String, VolumeError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let stamp = jiff::Timestamp::now().strftime("%Y_%m_%d_%H_%M_%S");
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = jiff::Timestamp::now().subsec_nanosecond();
        let name = format!("..{stamp}.{}{nanos:09}{n}", std::process::id());
        let path = dir.join(&name);
        match fs::DirBuilder::new().mode(0o755).create(&path) {
            Ok(()) => {
                fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
                    .map_err(io_err("chmod", &path))?;
                return Ok(name);
            }
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(io_err("mkdir", &path)(err)),
        }
    }
}

/// Upstream's `SetVolumeOwnership` on `dir`'s whole tree (symbolic links only re-grouped).
fn set_ownership(dir: &Path, gid: u32, read_only: bool) -> Result<(), VolumeError> {
    set_ownership_one(dir, gid, read_only)?;
    let entries = fs::read_dir(dir).map_err(io_err("reading", dir))?;
    for entry in entries {
        let entry = entry.map_err(io_err("reading", dir))?;
        let path = entry.path();
        if entry.file_type().map_err(io_err("lstat", &path))?.is_dir() {
            set_ownership(&path, gid, read_only)?;
        } else {
            set_ownership_one(&path, gid, read_only)?;
        }
    }
    Ok(())
}

fn set_ownership_one(path: &Path, gid: u32, read_only: bool) -> Result<(), VolumeError> {
    std::os::unix::fs::lchown(path, None, Some(gid)).map_err(io_err("lchown", path))?;
    let meta = fs::symlink_metadata(path).map_err(io_err("lstat", path))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mut mask = if read_only { 0o440 } else { 0o660 };
    if meta.is_dir() {
        mask |= 0o2000 | 0o110;
    }
    fs::set_permissions(
        path,
        fs::Permissions::from_mode((meta.mode() & 0o7777) | mask),
    )
    .map_err(io_err("chmod", path))
}

/// The host path a `subPath` of `volume` names, made (as a directory with the volume's mode)
/// when missing; it must resolve inside the volume (a container may have planted symbolic
/// links there).
pub fn prepare_sub_path(volume: &Path, sub_path: &str) -> Result<PathBuf, VolumeError> {
    let outside = |path: &Path| VolumeError::SubPathOutside {
        path: path.to_path_buf(),
        volume: volume.to_path_buf(),
    };
    if Path::new(sub_path)
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(outside(&volume.join(sub_path)));
    }
    let base = fs::canonicalize(volume).map_err(io_err("resolving", volume))?;
    let wanted = volume.join(sub_path);
    if fs::metadata(&wanted).is_err() {
        // Make it only below an existing ancestor that is itself inside the volume.
        let mut existing = wanted.as_path();
        while fs::metadata(existing).is_err() {
            existing = existing.parent().unwrap_or(volume);
        }
        let resolved = fs::canonicalize(existing).map_err(io_err("resolving", existing))?;
        if !resolved.starts_with(&base) {
            return Err(outside(&wanted));
        }
        let mode = fs::metadata(volume)
            .map_err(io_err("lstat", volume))?
            .mode();
        let create_failed = |source| VolumeError::SubPathCreate {
            sub_path: sub_path.to_owned(),
            volume: volume.to_path_buf(),
            source,
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(mode & 0o7777)
            .create(&wanted)
            .map_err(create_failed)?;
        fs::set_permissions(&wanted, fs::Permissions::from_mode(mode & 0o7777))
            .map_err(create_failed)?;
    }
    let resolved = fs::canonicalize(&wanted).map_err(io_err("resolving", &wanted))?;
    if !resolved.starts_with(&base) {
        return Err(outside(&wanted));
    }
    Ok(resolved)
}

/// Mount points at or below `root`, deepest first (from `/proc/self/mountinfo`).
fn mounts_under(root: &Path) -> Result<Vec<PathBuf>, VolumeError> {
    let table = Path::new("/proc/self/mountinfo");
    let text = fs::read_to_string(table).map_err(io_err("reading", table))?;
    let mut points: Vec<PathBuf> = text
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_mountinfo(field)))
        .filter(|point| point.starts_with(root))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points.dedup();
    Ok(points)
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(digits) => {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                out.push(value as u8);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn unmount(point: &Path) -> Result<(), VolumeError> {
    match mount::unmount(point, false) {
        Ok(()) => Ok(()),
        Err(err) if mount::is_not_mounted(&err) => Ok(()),
        // Still in use (a container being torn down): detach it; the memory goes with the
        // last user.
        Err(err) if err.raw_os_error() == Some(16) => match mount::unmount(point, true) {
            Err(err) if !mount::is_not_mounted(&err) => Err(err.into()),
            _ => Ok(()),
        },
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_paths_follow_the_atomic_writers_rules() {
        for (path, want) in [
            ("a", None),
            ("a/b/c.txt", None),
            ("..a", Some("invalid path: must not start with '..': ..a")),
            (
                "a/../b",
                Some("invalid path: must not contain '..': a/../b"),
            ),
            ("..", Some("invalid path: must not contain '..': ..")),
            (
                "/etc/passwd",
                Some("invalid path: must be relative path: /etc/passwd"),
            ),
            ("", Some("invalid path: must not be empty: \"\"")),
        ] {
            let got = validate_file_path(path).err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), want, "{path:?}");
        }
    }

    #[test]
    fn host_path_type_errors_are_upstreams() {
        let dir = std::env::temp_dir();
        for (path_type, want) in [
            (HostPathType::File, "is not a file"),
            (HostPathType::Socket, "is not a socket file"),
            (HostPathType::CharDevice, "is not a character device"),
            (HostPathType::BlockDevice, "is not a block device"),
        ] {
            let err = check_host_path(&dir, path_type).unwrap_err().to_string();
            assert_eq!(
                err,
                format!("hostPath type check failed: {} {want}", dir.display())
            );
        }
        let missing = dir.join("nodelet-no-such-path-for-sure");
        let err = check_host_path(&missing, HostPathType::Directory).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "hostPath type check failed: {} is not a directory",
                missing.display()
            )
        );
        check_host_path(&missing, HostPathType::Unchecked).unwrap();
    }

    #[test]
    fn io_errors_read_like_gos() {
        let err = VolumeError::Io {
            op: "mkdir",
            path: "/x".into(),
            source: io::Error::from_raw_os_error(13),
        };
        assert_eq!(err.to_string(), "mkdir /x: permission denied");
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mountinfo(r"/a\040b\134c"), r"/a b\c");
        assert_eq!(unescape_mountinfo(r"/plain\x"), r"/plain\x");
    }

    #[test]
    fn secret_bytes_stay_out_of_debug() {
        let file = ProjectedFile {
            path: "token".into(),
            data: b"hunter2".to_vec(),
            mode: 0o600,
        };
        let shown = format!("{file:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("0o600"), "{shown}");
    }
}
