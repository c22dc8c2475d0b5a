//! OCI `config.json` generation from a CRI-like description of one container
//! ([`ContainerSpec`]), as the `oci-spec` crate's [`Spec`]. Nothing comes from a template:
//! every field of every oci-spec struct is set here from the input (the crate's `Default`s
//! are a template and are always overwritten), with containerd's defaults for what
//! Kubernetes leaves to the runtime (the default capability set, masked paths, the standard
//! mounts). Capability lists come out in no fixed order (oci-spec keeps them in a `HashSet`).
//!
//! What is not in the OCI spec, such as the signal that stops the container, is carried in
//! [`ContainerMetadata`], which the bundle stores beside `config.json`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{
    Capabilities, Capability, Linux, LinuxCapabilities, LinuxCpu, LinuxDeviceCgroup, LinuxMemory,
    LinuxNamespace, LinuxNamespaceType, LinuxResources, LinuxSeccomp, Mount, PosixRlimit,
    PosixRlimitBuilder, PosixRlimitType, Process, Root, Spec, User,
};
use serde::{Deserialize, Serialize};

use crate::seccomp::{self, HostArch, Seccomp};
use crate::signal::Signal;
use crate::user::ResolvedUser;

/// The capabilities a container has unless its security context adds or drops some
/// (Docker's and containerd's default set).
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability Linux defines (0 to 40), in number order: what a privileged container gets.
pub const ALL_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Paths hidden from unprivileged containers (an empty file or directory is mounted over them).
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths made read-only in unprivileged containers.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The runtime-spec version our `config.json` follows (what runc 1.1 and crun 1.8 implement).
pub const OCI_VERSION: &str = "1.0.2";

/// The CFS period Kubernetes uses for CPU limits (100 ms).
pub const CPU_PERIOD_US: u64 = 100_000;
const MIN_CPU_SHARES: u64 = 2;
const MAX_CPU_SHARES: u64 = 262_144;
const MIN_CPU_QUOTA_US: i64 = 1_000;

/// One container, as the kubelet has assembled it (CRI's `ContainerConfig` plus what the
/// sandbox contributes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// The final argv (command and args already combined with the image's).
    pub args: Vec<String>,
    /// The final environment, `NAME=value` each.
    pub env: Vec<String>,
    /// Absolute working directory inside the container.
    pub cwd: String,
    pub user: ResolvedUser,
    /// Set in a new UTS namespace; `None` when the container joins the sandbox's.
    pub hostname: Option<String>,
    pub privileged: bool,
    pub capabilities: CapabilityChanges,
    pub no_new_privileges: bool,
    /// `seccompProfile`; privileged containers run without a filter whatever it says.
    pub seccomp: Seccomp,
    pub read_only_rootfs: bool,
    pub rlimits: Vec<PosixRlimit>,
    /// Bind mounts (volumes, `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`, ...).
    pub mounts: Vec<BindMount>,
    pub namespaces: Namespaces,
    /// The container's cgroup (cgroupfs form, e.g. `/kubepods/burstable/pod<uid>/<id>`);
    /// `None` leaves the choice to the runtime.
    pub cgroup_path: Option<String>,
    pub resources: Resources,
    pub oom_score_adj: Option<i32>,
    /// What stops the container before SIGKILL (image `STOPSIGNAL` or the pod's).
    pub stop_signal: Signal,
    pub annotations: BTreeMap<String, String>,
}

impl ContainerSpec {
    /// A container running `args` as `user` with everything else at its usual value: private
    /// namespaces, default capabilities, no limits, `RLIMIT_NOFILE` 1024/1024, SIGTERM.
    pub fn new(args: Vec<String>, user: ResolvedUser) -> ContainerSpec {
        ContainerSpec {
            args,
            env: Vec::new(),
            cwd: "/".into(),
            user,
            hostname: None,
            privileged: false,
            capabilities: CapabilityChanges::default(),
            no_new_privileges: false,
            seccomp: Seccomp::Unconfined,
            read_only_rootfs: false,
            rlimits: vec![nofile_rlimit(1024, 1024)],
            mounts: Vec::new(),
            namespaces: Namespaces::default(),
            cgroup_path: None,
            resources: Resources::default(),
            oom_score_adj: None,
            stop_signal: Signal::TERM,
            annotations: BTreeMap::new(),
        }
    }
}

/// `securityContext.capabilities`: names with or without `CAP_`, any case; `ALL` for all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapabilityChanges {
    pub add: Vec<String>,
    pub drop: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// On the host.
    pub source: PathBuf,
    /// Absolute, inside the container.
    pub destination: PathBuf,
    pub read_only: bool,
    pub propagation: MountPropagation,
}

/// `volumeMounts[].mountPropagation`: whether mounts made later under the source (host) or
/// destination (container) show up on the other side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MountPropagation {
    /// `None`: neither way (`rprivate`).
    #[default]
    Private,
    /// `HostToContainer`: the host's new mounts reach the container (`rslave`). The source
    /// must sit on a shared (or slave) mount of the host for anything to propagate.
    HostToContainer,
    /// `Bidirectional`: both ways (`rshared`); privileged containers only (API validation).
    Bidirectional,
}

impl MountPropagation {
    /// The bind mount's propagation option.
    pub fn option(self) -> &'static str {
        match self {
            MountPropagation::Private => "rprivate",
            MountPropagation::HostToContainer => "rslave",
            MountPropagation::Bidirectional => "rshared",
        }
    }
}

/// Where a namespace of the container comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NamespaceMode {
    /// A new one of its own.
    #[default]
    Private,
    /// Join an existing one, e.g. the pod sandbox's `/proc/<pid>/ns/net` or a bind-mounted
    /// namespace file.
    Join(PathBuf),
    /// The node's (hostNetwork, hostPID, hostIPC).
    Node,
}

/// The container's namespaces (a mount namespace is always its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespaces {
    pub pid: NamespaceMode,
    pub ipc: NamespaceMode,
    pub uts: NamespaceMode,
    pub network: NamespaceMode,
    pub cgroup: NamespaceMode,
}

impl Default for Namespaces {
    /// Private pid, IPC, UTS and network namespaces; the node's cgroup namespace, as
    /// containerd does on cgroup v1 hosts (on v2 it makes a private one: set `cgroup`).
    fn default() -> Namespaces {
        Namespaces {
            pid: NamespaceMode::Private,
            ipc: NamespaceMode::Private,
            uts: NamespaceMode::Private,
            network: NamespaceMode::Private,
            cgroup: NamespaceMode::Node,
        }
    }
}

/// cgroup limits, already converted from Kubernetes quantities (see [`Resources::from_kubernetes`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_shares: Option<u64>,
    /// Microseconds per [`CPU_PERIOD_US`].
    pub cpu_quota_us: Option<i64>,
    pub memory_limit_bytes: Option<i64>,
}

impl Resources {
    /// The kubelet's conversion: requests → shares (`milli × 1024 / 1000`, at least 2: a
    /// container without a request still gets 2), a CPU limit → a CFS quota over a 100 ms
    /// period (at least 1 ms), a memory limit → the memory limit.
    pub fn from_kubernetes(
        cpu_request_milli: Option<u64>,
        cpu_limit_milli: Option<u64>,
        memory_limit_bytes: Option<i64>,
    ) -> Resources {
        let shares = cpu_request_milli
            .map_or(MIN_CPU_SHARES, |milli| milli.saturating_mul(1024) / 1000)
            .clamp(MIN_CPU_SHARES, MAX_CPU_SHARES);
        let quota = cpu_limit_milli.map(|milli| {
            let quota = milli.saturating_mul(CPU_PERIOD_US) / 1000;
            i64::try_from(quota)
                .unwrap_or(i64::MAX)
                .max(MIN_CPU_QUOTA_US)
        });
        Resources {
            cpu_shares: Some(shares),
            cpu_quota_us: quota,
            memory_limit_bytes,
        }
    }
}

/// What nodelet keeps about a container beside its `config.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerMetadata {
    pub stop_signal: Signal,
    /// Whether killing must reach every process in the container's cgroup (`kill --all`):
    /// when it shares a pid namespace, killing its first process does not end the others.
    pub kill_all: bool,
}

/// The generated `config.json` and our metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedSpec {
    pub spec: Spec,
    pub metadata: ContainerMetadata,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    /// containerd's wording, which users meet as a `CreateContainerError` message.
    #[error("no command specified")]
    NoCommand,
    #[error("working directory {0:?} is not an absolute path")]
    RelativeWorkingDir(String),
    #[error("environment entry {0:?} is not NAME=value")]
    InvalidEnv(String),
    #[error("unknown capability {0:?}")]
    UnknownCapability(String),
    #[error("mount destination {0:?} is not a clean absolute path")]
    InvalidMountDestination(PathBuf),
    #[error("hostname {0:?} is empty or longer than 64 characters")]
    InvalidHostname(String),
    #[error("a hostname needs a private UTS namespace; the container joins another one")]
    HostnameWithoutUtsNamespace,
    #[error("{0} contains a NUL byte")]
    NulByte(String),
}

/// Generates the OCI spec for `container`; the root filesystem is the bundle's `rootfs`.
pub fn generate(container: &ContainerSpec) -> Result<GeneratedSpec, SpecError> {
    validate(container)?;
    let capability_names = capability_set(container)?;
    let filter = seccomp::filter(
        &container.seccomp,
        container.privileged,
        &capability_names,
        HostArch::current(),
    );
    let capabilities = capability_names
        .into_iter()
        .map(oci_capability)
        .collect::<Result<Capabilities, SpecError>>()?;
    let spec = config(container, process(container, capabilities), filter);
    let metadata = ContainerMetadata {
        stop_signal: container.stop_signal,
        kill_all: container.namespaces.pid != NamespaceMode::Private,
    };
    Ok(GeneratedSpec { spec, metadata })
}

/// The `process.json` of an `exec` in a container whose init process is `init`: the same
/// user, environment, working directory, capabilities and limits, running `args`.
pub fn exec_process(init: &Process, args: &[String], terminal: bool) -> Process {
    let mut process = init.clone();
    process
        .set_args(Some(args.to_vec()))
        .set_terminal(Some(terminal))
        .set_console_size(None)
        .set_command_line(None);
    process
}

fn validate(container: &ContainerSpec) -> Result<(), SpecError> {
    if container.args.is_empty() {
        return Err(SpecError::NoCommand);
    }
    if !container.cwd.starts_with('/') {
        return Err(SpecError::RelativeWorkingDir(container.cwd.clone()));
    }
    for entry in &container.env {
        if entry
            .split_once('=')
            .is_none_or(|(name, _)| name.is_empty())
        {
            return Err(SpecError::InvalidEnv(entry.clone()));
        }
    }
    let texts = container
        .args
        .iter()
        .map(|a| ("an argument", a.as_str()))
        .chain(
            container
                .env
                .iter()
                .map(|e| ("an environment entry", e.as_str())),
        );
    for (what, text) in texts.chain([("the working directory", container.cwd.as_str())]) {
        if text.contains('\0') {
            return Err(SpecError::NulByte(what.into()));
        }
    }
    if let Some(hostname) = &container.hostname {
        if hostname.is_empty() || hostname.len() > 64 {
            return Err(SpecError::InvalidHostname(hostname.clone()));
        }
        if container.namespaces.uts != NamespaceMode::Private {
            return Err(SpecError::HostnameWithoutUtsNamespace);
        }
    }
    for mount in &container.mounts {
        let clean = mount.destination.is_absolute()
            && mount
                .destination
                .components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        if !clean {
            return Err(SpecError::InvalidMountDestination(
                mount.destination.clone(),
            ));
        }
    }
    Ok(())
}

/// `CAP_NET_ADMIN` from `net_admin`, `NET_ADMIN` or `CAP_NET_ADMIN`; `None` for `ALL`.
fn capability_name(name: &str) -> Result<Option<&'static str>, SpecError> {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(None);
    }
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    ALL_CAPABILITIES
        .iter()
        .find(|c| **c == full)
        .map(|c| Some(*c))
        .ok_or_else(|| SpecError::UnknownCapability(name.to_string()))
}

/// Privileged: everything. Otherwise the defaults; dropping `ALL` empties the set before
/// additions, adding `ALL` fills it before drops (containerd's order).
fn capability_set(container: &ContainerSpec) -> Result<Vec<&'static str>, SpecError> {
    if container.privileged {
        return Ok(ALL_CAPABILITIES.to_vec());
    }
    let parse = |names: &[String]| -> Result<(bool, BTreeSet<&'static str>), SpecError> {
        let mut all = false;
        let mut set = BTreeSet::new();
        for name in names {
            match capability_name(name)? {
                None => all = true,
                Some(cap) => {
                    set.insert(cap);
                }
            }
        }
        Ok((all, set))
    };
    let (add_all, add) = parse(&container.capabilities.add)?;
    let (drop_all, drop) = parse(&container.capabilities.drop)?;
    let mut caps: BTreeSet<&'static str> = if drop_all {
        BTreeSet::new()
    } else {
        DEFAULT_CAPABILITIES.iter().copied().collect()
    };
    if add_all {
        caps.extend(ALL_CAPABILITIES);
    }
    caps.extend(add);
    if !drop_all {
        caps.retain(|c| !drop.contains(c));
    }
    // Number order, as `capsh` and `/proc/<pid>/status` list them.
    Ok(ALL_CAPABILITIES
        .iter()
        .copied()
        .filter(|c| caps.contains(c))
        .collect())
}

// Below, every oci-spec value starts from the type's `Default` only to have each of its fields
// set: the crate's defaults are a template (hostname `youki`, its own mounts, namespaces,
// masked paths, ambient capabilities, `RLIMIT_NOFILE`...) that must never reach `config.json`.
// A field added by a newer oci-spec shows up in the `nothing_from_the_crate_defaults` test.

/// `config.json`.
#[allow(deprecated)] // Spec's top-level uid/gid mappings, set to None like the rest.
fn config(container: &ContainerSpec, process: Process, filter: Option<LinuxSeccomp>) -> Spec {
    let annotations = (!container.annotations.is_empty()).then(|| {
        container
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<HashMap<_, _>>()
    });
    let mut root = Root::default();
    root.set_path("rootfs".into())
        .set_readonly(Some(container.read_only_rootfs));
    let mut spec = Spec::default();
    spec.set_version(OCI_VERSION.into())
        .set_root(Some(root))
        .set_mounts(Some(mounts(container)))
        .set_process(Some(process))
        .set_hostname(container.hostname.clone())
        .set_domainname(None)
        .set_hooks(None)
        .set_annotations(annotations)
        .set_linux(Some(linux(container, filter)))
        .set_solaris(None)
        .set_windows(None)
        .set_vm(None)
        .set_zos(None)
        .set_uid_mappings(None)
        .set_gid_mappings(None);
    spec
}

fn process(container: &ContainerSpec, capabilities: Capabilities) -> Process {
    let mut user = User::default();
    user.set_uid(container.user.uid)
        .set_gid(container.user.gid)
        // The image's, applied by the runtime's own umask (0022) otherwise.
        .set_umask(None)
        .set_additional_gids(non_empty(container.user.additional_gids.clone()))
        .set_username(None);
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(capabilities.clone()))
        .set_effective(Some(capabilities.clone()))
        .set_permitted(Some(capabilities))
        // Nothing inheritable or ambient: a non-root process starts without capabilities
        // (containerd's behaviour since the CVE-2022-24769 fix).
        .set_inheritable(Some(Capabilities::new()))
        .set_ambient(Some(Capabilities::new()));
    let mut process = Process::default();
    process
        .set_terminal(Some(false))
        .set_console_size(None)
        .set_user(user)
        .set_args(Some(container.args.clone()))
        .set_command_line(None)
        .set_env(Some(container.env.clone()))
        .set_cwd(PathBuf::from(&container.cwd))
        .set_capabilities(Some(caps))
        .set_rlimits(non_empty(container.rlimits.clone()))
        .set_no_new_privileges(Some(container.no_new_privileges))
        .set_apparmor_profile(None)
        .set_oom_score_adj(container.oom_score_adj)
        .set_selinux_label(None)
        .set_io_priority(None)
        .set_scheduler(None)
        .set_exec_cpu_affinity(None);
    process
}

fn linux(container: &ContainerSpec, filter: Option<LinuxSeccomp>) -> Linux {
    let (masked_paths, readonly_paths) = if container.privileged {
        (None, None)
    } else {
        (
            Some(MASKED_PATHS.iter().map(|p| p.to_string()).collect()),
            Some(READONLY_PATHS.iter().map(|p| p.to_string()).collect()),
        )
    };
    let mut linux = Linux::default();
    linux
        .set_net_devices(None)
        .set_uid_mappings(None)
        .set_gid_mappings(None)
        .set_sysctl(None)
        .set_resources(Some(resources(container)))
        .set_cgroups_path(container.cgroup_path.as_ref().map(PathBuf::from))
        .set_namespaces(Some(namespaces(&container.namespaces)))
        // The runtime's standard devices (null, zero, full, random, urandom, tty, ptmx).
        .set_devices(None)
        .set_seccomp(filter)
        .set_rootfs_propagation(rootfs_propagation(container))
        .set_masked_paths(masked_paths)
        .set_readonly_paths(readonly_paths)
        .set_mount_label(None)
        .set_intel_rdt(None)
        .set_memory_policy(None)
        .set_personality(None)
        .set_time_offsets(None);
    linux
}

/// containerd's rule: the root's propagation must let a volume's propagate (`rshared` for a
/// Bidirectional volume, `rslave` for HostToContainer); otherwise the runtime's default
/// (runc's and youki's `rslave`, crun's `rprivate`). youki 0.7 refuses these `r`-prefixed
/// values (it spells them `slave`/`shared`, which runc would apply to `/` alone), so a
/// container with such a volume does not start under youki.
fn rootfs_propagation(container: &ContainerSpec) -> Option<String> {
    let strongest = container
        .mounts
        .iter()
        .map(|m| m.propagation)
        .max_by_key(|p| match p {
            MountPropagation::Private => 0,
            MountPropagation::HostToContainer => 1,
            MountPropagation::Bidirectional => 2,
        })?;
    match strongest {
        MountPropagation::Private => None,
        MountPropagation::HostToContainer => Some("rslave".into()),
        MountPropagation::Bidirectional => Some("rshared".into()),
    }
}

/// `Some(items)`, or `None` (the key left out) when there are none.
fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}

/// oci-spec's capability for a name of [`ALL_CAPABILITIES`].
fn oci_capability(name: &'static str) -> Result<Capability, SpecError> {
    name.strip_prefix("CAP_")
        .and_then(|bare| bare.parse().ok())
        .ok_or_else(|| SpecError::UnknownCapability(name.into()))
}

/// `RLIMIT_NOFILE` (open files). 1024/1024 is what containerd sets and, unlike larger
/// defaults, needs no `CAP_SYS_RESOURCE` on hosts whose hard limit is lower.
pub fn nofile_rlimit(soft: u64, hard: u64) -> PosixRlimit {
    // The one oci-spec type without setters; its builder has no validation to fail.
    PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .soft(soft)
        .hard(hard)
        .build()
        .expect("every field of the rlimit is given")
}

fn mount(destination: &str, kind: &str, source: &str, options: &[&str]) -> Mount {
    let mut mount = Mount::default();
    mount
        .set_destination(destination.into())
        .set_typ(Some(kind.into()))
        .set_source(Some(source.into()))
        .set_options(Some(options.iter().map(|o| o.to_string()).collect()))
        .set_uid_mappings(None)
        .set_gid_mappings(None);
    mount
}

/// The standard mounts, then the input's binds; a bind replaces a standard mount at the same
/// place (e.g. the sandbox's `/dev/shm`). Binds are ordered parents first, so a volume inside
/// another volume is mounted on top of it.
fn mounts(container: &ContainerSpec) -> Vec<Mount> {
    let sys_mode = if container.privileged { "rw" } else { "ro" };
    let mut standard = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_mode],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", sys_mode],
        ),
    ];
    if container.namespaces.ipc == NamespaceMode::Node {
        // The host's message queues are not the container's to mount.
        standard.retain(|m| m.destination() != Path::new("/dev/mqueue"));
    }
    let replaced: BTreeSet<&Path> = container
        .mounts
        .iter()
        .map(|m| m.destination.as_path())
        .collect();
    standard.retain(|m| !replaced.contains(m.destination().as_path()));
    let mut binds: Vec<&BindMount> = container.mounts.iter().collect();
    binds.sort_by_key(|m| m.destination.components().count());
    standard.extend(binds.into_iter().map(|b| {
        let mut bind = Mount::default();
        bind.set_destination(b.destination.clone())
            .set_typ(Some("bind".into()))
            .set_source(Some(b.source.clone()))
            .set_options(Some(vec![
                "rbind".into(),
                b.propagation.option().into(),
                if b.read_only { "ro" } else { "rw" }.into(),
            ]))
            .set_uid_mappings(None)
            .set_gid_mappings(None);
        bind
    }));
    standard
}

fn namespaces(modes: &Namespaces) -> Vec<LinuxNamespace> {
    let namespace = |kind, path: Option<&PathBuf>| {
        let mut namespace = LinuxNamespace::default();
        namespace.set_typ(kind).set_path(path.cloned());
        namespace
    };
    let mut out = vec![namespace(LinuxNamespaceType::Mount, None)];
    for (kind, mode) in [
        (LinuxNamespaceType::Pid, &modes.pid),
        (LinuxNamespaceType::Ipc, &modes.ipc),
        (LinuxNamespaceType::Uts, &modes.uts),
        (LinuxNamespaceType::Network, &modes.network),
        (LinuxNamespaceType::Cgroup, &modes.cgroup),
    ] {
        match mode {
            NamespaceMode::Private => out.push(namespace(kind, None)),
            NamespaceMode::Join(path) => out.push(namespace(kind, Some(path))),
            NamespaceMode::Node => {}
        }
    }
    out
}

fn resources(container: &ContainerSpec) -> LinuxResources {
    let r = &container.resources;
    let cpu = (r.cpu_shares.is_some() || r.cpu_quota_us.is_some()).then(|| {
        let mut cpu = LinuxCpu::default();
        cpu.set_shares(r.cpu_shares)
            .set_quota(r.cpu_quota_us)
            .set_idle(None)
            .set_burst(None)
            .set_period(r.cpu_quota_us.map(|_| CPU_PERIOD_US))
            .set_realtime_runtime(None)
            .set_realtime_period(None)
            .set_cpus(None)
            .set_mems(None);
        cpu
    });
    let memory = r.memory_limit_bytes.map(|limit| {
        let mut memory = LinuxMemory::default();
        memory
            .set_limit(Some(limit))
            .set_reservation(None)
            .set_swap(None)
            .set_kernel(None)
            .set_kernel_tcp(None)
            .set_swappiness(None)
            .set_disable_oom_killer(None)
            .set_use_hierarchy(None)
            .set_check_before_update(None);
        memory
    });
    // Unprivileged: deny every device; the runtime then allows its standard few
    // (null, zero, full, random, urandom, tty, ptmx).
    let mut devices = LinuxDeviceCgroup::default();
    devices
        .set_allow(container.privileged)
        .set_typ(None)
        .set_major(None)
        .set_minor(None)
        .set_access(Some("rwm".into()));
    let mut resources = LinuxResources::default();
    resources
        .set_devices(Some(vec![devices]))
        .set_memory(memory)
        .set_cpu(cpu)
        .set_pids(None)
        .set_block_io(None)
        .set_hugepage_limits(None)
        .set_network(None)
        .set_rdma(None)
        .set_unified(None);
    resources
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn user() -> ResolvedUser {
        ResolvedUser {
            uid: 1000,
            gid: 1000,
            additional_gids: vec![10],
            name: Some("app".into()),
        }
    }

    fn base() -> ContainerSpec {
        let mut c = ContainerSpec::new(vec!["/bin/sh".into(), "-c".into(), "true".into()], user());
        c.env = vec!["PATH=/bin".into(), "EMPTY=".into()];
        c.cwd = "/srv/app".into();
        c.hostname = Some("web-0".into());
        c
    }

    fn json_of(container: &ContainerSpec) -> Value {
        serde_json::to_value(generate(container).unwrap().spec).unwrap()
    }

    fn destinations(mounts: &[Value]) -> Vec<&str> {
        mounts
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect()
    }

    fn strings(value: &Value) -> Vec<&str> {
        value
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect()
    }

    fn sorted(value: &Value) -> Vec<&str> {
        let mut items = strings(value);
        items.sort_unstable();
        items
    }

    /// The whole `config.json` of a minimal container: every key is one we chose, none is
    /// oci-spec's template (hostname `youki`, its mounts, namespaces, masked paths, ambient
    /// capabilities, `RLIMIT_NOFILE`, `noNewPrivileges: true`, empty annotations...).
    #[test]
    fn nothing_from_the_crate_defaults() {
        let root = ResolvedUser {
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
            name: None,
        };
        let mut c = ContainerSpec::new(vec!["/app".into()], root);
        c.rlimits.clear();
        let mut spec = json_of(&c);
        let caps = &mut spec["process"]["capabilities"];
        for set in ["bounding", "effective", "permitted"] {
            assert_eq!(sorted(&caps[set]), {
                let mut defaults = DEFAULT_CAPABILITIES.to_vec();
                defaults.sort_unstable();
                defaults
            });
            caps[set] = json!("checked");
        }
        let masked: Vec<&str> = MASKED_PATHS.to_vec();
        let readonly: Vec<&str> = READONLY_PATHS.to_vec();
        let mount = |destination: &str, kind: &str, options: &[&str]| json!({"destination": destination, "type": kind, "source": kind, "options": options});
        let expected = json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs", "readonly": false},
            "mounts": [
                mount("/proc", "proc", &["nosuid", "noexec", "nodev"]),
                mount("/dev", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
                mount("/dev/pts", "devpts", &["nosuid", "noexec", "newinstance",
                    "ptmxmode=0666", "mode=0620", "gid=5"]),
                {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                    "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
                mount("/dev/mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
                mount("/sys", "sysfs", &["nosuid", "noexec", "nodev", "ro"]),
                mount("/sys/fs/cgroup", "cgroup", &["nosuid", "noexec", "nodev", "relatime", "ro"]),
            ],
            "process": {
                "terminal": false,
                "user": {"uid": 0, "gid": 0},
                "args": ["/app"],
                "env": [],
                "cwd": "/",
                "capabilities": {
                    "bounding": "checked",
                    "effective": "checked",
                    "permitted": "checked",
                    "inheritable": [],
                    "ambient": [],
                },
                "noNewPrivileges": false,
            },
            "linux": {
                "namespaces": [
                    {"type": "mount"}, {"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
                    {"type": "network"},
                ],
                "resources": {"devices": [{"allow": false, "access": "rwm"}]},
                "maskedPaths": masked,
                "readonlyPaths": readonly,
            },
        });
        assert_eq!(spec, expected);
    }

    #[test]
    fn every_capability_name_is_one_oci_spec_knows() {
        for name in ALL_CAPABILITIES {
            let capability = oci_capability(name).unwrap();
            assert_eq!(serde_json::to_value(capability).unwrap(), json!(name));
        }
    }

    #[test]
    fn an_exec_runs_as_the_init_process_does() {
        let mut c = base();
        c.oom_score_adj = Some(-997);
        let spec = generate(&c).unwrap().spec;
        let init = spec.process().clone().unwrap();
        let exec = exec_process(&init, &["ls".into(), "-l".into()], true);
        let mut json = serde_json::to_value(&exec).unwrap();
        assert_eq!(json["args"], json!(["ls", "-l"]));
        assert_eq!(json["terminal"], true);
        let mut init_json = serde_json::to_value(&init).unwrap();
        for changed in ["args", "terminal"] {
            json.as_object_mut().unwrap().remove(changed);
            init_json.as_object_mut().unwrap().remove(changed);
        }
        assert_eq!(json, init_json);
        assert_eq!(json["oomScoreAdj"], -997);
    }

    #[test]
    fn a_plain_container() {
        let spec = json_of(&base());
        assert_eq!(spec["ociVersion"], "1.0.2");
        assert_eq!(spec["root"], json!({"path": "rootfs", "readonly": false}));
        assert_eq!(spec["hostname"], "web-0");
        let process = &spec["process"];
        assert_eq!(process["terminal"], false);
        assert_eq!(process["args"], json!(["/bin/sh", "-c", "true"]));
        assert_eq!(process["env"], json!(["PATH=/bin", "EMPTY="]));
        assert_eq!(process["cwd"], "/srv/app");
        assert_eq!(
            process["user"],
            json!({"uid": 1000, "gid": 1000, "additionalGids": [10]})
        );
        assert_eq!(
            process["rlimits"],
            json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}])
        );
        assert_eq!(process["noNewPrivileges"], false);
        let caps = &process["capabilities"];
        assert_eq!(strings(&caps["bounding"]).len(), 14);
        // oci-spec keeps capabilities in a HashSet: compare them as sets.
        assert_eq!(sorted(&caps["bounding"]), sorted(&caps["effective"]));
        assert_eq!(sorted(&caps["bounding"]), sorted(&caps["permitted"]));
        assert_eq!(caps["inheritable"], json!([]));
        assert_eq!(caps["ambient"], json!([]));
        assert!(strings(&caps["bounding"]).contains(&"CAP_NET_BIND_SERVICE"));
        assert!(!strings(&caps["bounding"]).contains(&"CAP_SYS_ADMIN"));

        let linux = &spec["linux"];
        let kinds: Vec<&str> = linux["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["mount", "pid", "ipc", "uts", "network"]);
        assert!(strings(&linux["maskedPaths"]).contains(&"/proc/kcore"));
        assert!(strings(&linux["readonlyPaths"]).contains(&"/proc/sys"));
        assert_eq!(
            linux["resources"]["devices"],
            json!([{"allow": false, "access": "rwm"}])
        );
        assert!(linux.get("cgroupsPath").is_none());

        let mounts = spec["mounts"].as_array().unwrap();
        assert_eq!(
            destinations(mounts),
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup"
            ]
        );
        assert!(strings(&mounts[5]["options"]).contains(&"ro"));
        assert!(spec.get("annotations").is_none());

        let metadata = generate(&base()).unwrap().metadata;
        assert_eq!(
            metadata,
            ContainerMetadata {
                stop_signal: Signal::TERM,
                kill_all: false
            }
        );
    }

    #[test]
    fn privileged_gets_everything_and_nothing_masked() {
        let mut c = base();
        c.privileged = true;
        let spec = json_of(&c);
        assert_eq!(
            strings(&spec["process"]["capabilities"]["bounding"]).len(),
            41
        );
        assert!(spec["linux"].get("maskedPaths").is_none());
        assert!(spec["linux"].get("readonlyPaths").is_none());
        assert_eq!(
            spec["linux"]["resources"]["devices"],
            json!([{"allow": true, "access": "rwm"}])
        );
        assert!(strings(&spec["mounts"][5]["options"]).contains(&"rw"));
    }

    #[test]
    fn capability_changes() {
        let caps_of = |add: &[&str], drop: &[&str]| -> Result<Vec<&'static str>, SpecError> {
            let mut c = base();
            c.capabilities = CapabilityChanges {
                add: add.iter().map(|s| s.to_string()).collect(),
                drop: drop.iter().map(|s| s.to_string()).collect(),
            };
            capability_set(&c)
        };
        let caps = caps_of(&["NET_ADMIN", "cap_sys_time"], &["KILL", "CAP_MKNOD"]).unwrap();
        assert!(caps.contains(&"CAP_NET_ADMIN") && caps.contains(&"CAP_SYS_TIME"));
        assert!(!caps.contains(&"CAP_KILL") && !caps.contains(&"CAP_MKNOD"));
        assert_eq!(caps.len(), 14);
        assert_eq!(
            caps_of(&["NET_BIND_SERVICE"], &["ALL"]).unwrap(),
            ["CAP_NET_BIND_SERVICE"]
        );
        assert_eq!(caps_of(&[], &["all"]).unwrap(), Vec::<&str>::new());
        assert_eq!(caps_of(&["ALL"], &["SYS_ADMIN"]).unwrap().len(), 40);
        assert_eq!(
            caps_of(&["NET_MAGIC"], &[]).unwrap_err(),
            SpecError::UnknownCapability("NET_MAGIC".into())
        );
    }

    #[test]
    fn binds_replace_standard_mounts_and_go_parents_first() {
        let mut c = base();
        let bind = |source: &str, destination: &str, read_only| BindMount {
            source: source.into(),
            destination: destination.into(),
            read_only,
            propagation: MountPropagation::Private,
        };
        c.mounts = vec![
            bind("/var/lib/pod/vol/data/cache", "/data/cache", false),
            bind("/var/lib/pod/etc-hosts", "/etc/hosts", false),
            bind("/var/lib/pod/vol/data", "/data", true),
            bind("/var/lib/pod/shm", "/dev/shm", false),
        ];
        let spec = json_of(&c);
        let mounts = spec["mounts"].as_array().unwrap();
        assert_eq!(
            destinations(mounts),
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup",
                "/data",
                "/data/cache",
                "/etc/hosts",
                "/dev/shm"
            ]
        );
        let data = &mounts[6];
        assert_eq!(data["type"], "bind");
        assert_eq!(data["source"], "/var/lib/pod/vol/data");
        assert_eq!(data["options"], json!(["rbind", "rprivate", "ro"]));
        c.mounts = vec![bind("/x", "/data/../etc", false)];
        assert!(matches!(
            generate(&c),
            Err(SpecError::InvalidMountDestination(_))
        ));
    }

    #[test]
    fn mount_propagation_sets_the_bind_and_the_root() {
        let mut c = base();
        let bind = |destination: &str, propagation| BindMount {
            source: "/var/lib/vol".into(),
            destination: destination.into(),
            read_only: false,
            propagation,
        };
        c.mounts = vec![bind("/private", MountPropagation::Private)];
        let spec = json_of(&c);
        assert!(spec["linux"].get("rootfsPropagation").is_none());
        c.mounts
            .push(bind("/from-host", MountPropagation::HostToContainer));
        let spec = json_of(&c);
        assert_eq!(spec["linux"]["rootfsPropagation"], "rslave");
        let options: Vec<&Value> = spec["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["type"] == "bind")
            .map(|m| &m["options"])
            .collect();
        assert_eq!(
            options,
            [
                &json!(["rbind", "rprivate", "rw"]),
                &json!(["rbind", "rslave", "rw"])
            ]
        );
        c.privileged = true;
        c.mounts
            .push(bind("/both", MountPropagation::Bidirectional));
        let spec = json_of(&c);
        assert_eq!(spec["linux"]["rootfsPropagation"], "rshared");
        assert_eq!(
            spec["mounts"].as_array().unwrap().last().unwrap()["options"],
            json!(["rbind", "rshared", "rw"])
        );
    }

    #[test]
    fn seccomp_profiles() {
        let mut c = base();
        assert!(json_of(&c)["linux"].get("seccomp").is_none(), "Unconfined");
        c.seccomp = Seccomp::RuntimeDefault;
        let spec = json_of(&c);
        let filter = &spec["linux"]["seccomp"];
        assert_eq!(filter["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(filter["defaultErrnoRet"], 1);
        // The container's capabilities decide: the default set has no CAP_SYS_ADMIN.
        let allowed = strings(&filter["syscalls"][0]["names"]);
        assert!(allowed.contains(&"read") && !allowed.contains(&"mount"));
        c.capabilities.add = vec!["SYS_ADMIN".into()];
        let spec = json_of(&c);
        assert!(strings(&spec["linux"]["seccomp"]["syscalls"][0]["names"]).contains(&"mount"));
        c.privileged = true;
        assert!(json_of(&c)["linux"].get("seccomp").is_none(), "privileged");
        let profile = crate::seccomp::ProfileFile::parse(
            br#"{"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}"#,
        )
        .unwrap();
        let mut c = base();
        c.seccomp = Seccomp::Localhost(Box::new(profile));
        assert_eq!(
            json_of(&c)["linux"]["seccomp"],
            json!({"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]})
        );
    }

    #[test]
    fn joined_and_node_namespaces() {
        let mut c = base();
        c.hostname = None;
        c.namespaces = Namespaces {
            pid: NamespaceMode::Join("/proc/42/ns/pid".into()),
            ipc: NamespaceMode::Node,
            uts: NamespaceMode::Join("/proc/42/ns/uts".into()),
            network: NamespaceMode::Join("/run/netns/pod".into()),
            cgroup: NamespaceMode::Node,
        };
        let generated = generate(&c).unwrap();
        let spec = serde_json::to_value(&generated.spec).unwrap();
        assert_eq!(
            spec["linux"]["namespaces"],
            json!([
                {"type": "mount"},
                {"type": "pid", "path": "/proc/42/ns/pid"},
                {"type": "uts", "path": "/proc/42/ns/uts"},
                {"type": "network", "path": "/run/netns/pod"},
            ])
        );
        assert!(
            generated.metadata.kill_all,
            "a shared pid namespace needs kill --all"
        );
        assert!(
            !spec["mounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["destination"] == "/dev/mqueue")
        );
        c.hostname = Some("web-0".into());
        assert_eq!(
            generate(&c).unwrap_err(),
            SpecError::HostnameWithoutUtsNamespace
        );
    }

    #[test]
    fn resources_from_requests_and_limits() {
        assert_eq!(
            Resources::from_kubernetes(Some(250), Some(500), Some(64 << 20)),
            Resources {
                cpu_shares: Some(256),
                cpu_quota_us: Some(50_000),
                memory_limit_bytes: Some(64 << 20)
            }
        );
        assert_eq!(
            Resources::from_kubernetes(None, None, None).cpu_shares,
            Some(2)
        );
        assert_eq!(
            Resources::from_kubernetes(Some(1), Some(1), None).cpu_quota_us,
            Some(1_000)
        );
        let mut c = base();
        c.resources = Resources::from_kubernetes(Some(100), Some(200), Some(1 << 30));
        c.cgroup_path = Some("/kubepods/pod1/c1".into());
        let spec = json_of(&c);
        assert_eq!(spec["linux"]["cgroupsPath"], "/kubepods/pod1/c1");
        assert_eq!(
            spec["linux"]["resources"]["cpu"],
            json!({"shares": 102, "quota": 20_000, "period": 100_000})
        );
        assert_eq!(
            spec["linux"]["resources"]["memory"],
            json!({"limit": 1 << 30})
        );
    }

    #[test]
    fn invalid_inputs_are_named() {
        let mut c = base();
        c.args.clear();
        assert_eq!(
            generate(&c).unwrap_err().to_string(),
            "no command specified"
        );
        let mut c = base();
        c.cwd = "srv".into();
        assert_eq!(
            generate(&c).unwrap_err(),
            SpecError::RelativeWorkingDir("srv".into())
        );
        let mut c = base();
        c.env.push("=oops".into());
        assert_eq!(
            generate(&c).unwrap_err(),
            SpecError::InvalidEnv("=oops".into())
        );
        let mut c = base();
        c.hostname = Some("x".repeat(65));
        assert!(matches!(generate(&c), Err(SpecError::InvalidHostname(_))));
    }

    #[test]
    fn read_only_rootfs_stop_signal_and_annotations() {
        let mut c = base();
        c.read_only_rootfs = true;
        c.no_new_privileges = true;
        c.stop_signal = Signal::parse("SIGUSR1").unwrap();
        c.annotations
            .insert("io.kubernetes.pod.name".into(), "web-0".into());
        let generated = generate(&c).unwrap();
        let spec = serde_json::to_value(&generated.spec).unwrap();
        assert_eq!(spec["root"]["readonly"], true);
        assert_eq!(spec["process"]["noNewPrivileges"], true);
        assert_eq!(
            spec["annotations"],
            json!({"io.kubernetes.pod.name": "web-0"})
        );
        assert_eq!(
            serde_json::to_value(&generated.metadata).unwrap(),
            json!({"stop_signal": "SIGUSR1", "kill_all": false})
        );
        // The stop signal is ours, not the OCI spec's.
        assert!(
            !serde_json::to_string(&generated.spec)
                .unwrap()
                .contains("SIGUSR1")
        );
    }
}
