//! Seccomp filters (`linux.seccomp` of `config.json`) for `securityContext.seccompProfile`.
//!
//! - `RuntimeDefault` is our own allow-list, in the spirit of Docker's and containerd's default
//!   profile: every syscall not listed fails with `EPERM`; the filter covers the host's
//!   architecture and its compat ones (x86_64: x86 and x32; aarch64: arm); some syscalls are
//!   allowed only with the capability that makes them useful (`mount` with `CAP_SYS_ADMIN`,
//!   `ptrace`'s relatives with `CAP_SYS_PTRACE`...); without `CAP_SYS_ADMIN`, `clone` may not
//!   create namespaces and `clone3` (whose flags a filter cannot read) fails with `ENOSYS` so
//!   that libcs fall back to `clone`. `io_uring` is left out, as Docker and containerd now do.
//! - `Localhost` profiles are JSON files in the OCI form (`architectures`) or Docker's
//!   (`archMap`, `includes`/`excludes` on capabilities and architectures), resolved here against
//!   the container's capabilities and the host's architecture. `minKernel` conditions are
//!   treated as met.
//! - Privileged containers get no filter (containerd's rule); neither does `Unconfined`.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompFilterFlag, LinuxSeccompOperator, LinuxSyscall,
};
use serde::Deserialize;

/// `EPERM`: what a syscall outside the profile returns.
const EPERM: u32 = 1;
/// `ENOSYS`: `clone3` without `CAP_SYS_ADMIN` (libcs then use `clone`).
const ENOSYS: u32 = 38;
/// `CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET`.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// Which filter a container runs under (`securityContext.seccompProfile`, the container's
/// over the pod's; unset is `Unconfined`, the kubelet's default without `SeccompDefault`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Seccomp {
    #[default]
    Unconfined,
    RuntimeDefault,
    /// A `Localhost` profile, read and parsed by the caller ([`ProfileFile::parse`]).
    Localhost(Box<ProfileFile>),
}

/// Syscalls allowed to every container.
#[rustfmt::skip]
const ALWAYS_ALLOWED: &[&str] = &[
    // Files, directories and their metadata.
    "access", "faccessat", "faccessat2", "chdir", "fchdir", "getcwd", "chmod", "fchmod",
    "fchmodat", "fchmodat2", "chown", "chown32", "fchown", "fchown32", "fchownat", "lchown",
    "lchown32", "creat", "open", "openat", "openat2", "close", "close_range", "link", "linkat",
    "symlink", "symlinkat", "unlink", "unlinkat", "rename", "renameat", "renameat2", "mkdir",
    "mkdirat", "rmdir", "mknod", "mknodat", "readlink", "readlinkat", "stat", "stat64", "lstat",
    "lstat64", "fstat", "fstat64", "fstatat64", "newfstatat", "statx", "statfs", "statfs64",
    "fstatfs", "fstatfs64", "truncate", "truncate64", "ftruncate", "ftruncate64", "getdents",
    "getdents64", "umask", "utime", "utimes", "utimensat", "utimensat_time64", "futimesat",
    "getxattr", "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr", "setxattr",
    "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr", "flock",
    "fallocate", "fadvise64", "fadvise64_64", "sync", "syncfs", "fsync", "fdatasync",
    "sync_file_range", "cachestat", "landlock_create_ruleset", "landlock_add_rule",
    "landlock_restrict_self",
    // Reading and writing.
    "read", "readv", "pread64", "preadv", "preadv2", "write", "writev", "pwrite64", "pwritev",
    "pwritev2", "lseek", "_llseek", "sendfile", "sendfile64", "splice", "tee", "vmsplice",
    "copy_file_range", "readahead", "ioctl", "fcntl", "fcntl64", "dup", "dup2", "dup3", "pipe",
    "pipe2", "memfd_create", "io_setup", "io_destroy", "io_submit", "io_cancel",
    "io_getevents", "io_pgetevents", "io_pgetevents_time64",
    // Waiting for events.
    "select", "_newselect", "pselect6", "pselect6_time64", "poll", "ppoll", "ppoll_time64",
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_wait",
    "epoll_wait_old", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "signalfd",
    "signalfd4", "timerfd_create", "timerfd_settime", "timerfd_settime64", "timerfd_gettime",
    "timerfd_gettime64", "inotify_init", "inotify_init1", "inotify_add_watch",
    "inotify_rm_watch", "fanotify_mark",
    // Memory.
    "brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync",
    "mlock", "mlock2", "mlockall", "munlock", "munlockall", "membarrier", "remap_file_pages",
    "pkey_alloc", "pkey_free", "pkey_mprotect", "map_shadow_stack",
    // Processes, threads and signals.
    "execve", "execveat", "fork", "vfork", "exit", "exit_group", "wait4", "waitid", "waitpid",
    "kill", "tkill", "tgkill", "pidfd_open", "pidfd_send_signal", "rt_sigaction",
    "rt_sigprocmask", "rt_sigpending", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "rt_sigreturn",
    "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64", "sigaltstack", "signal",
    "sigprocmask", "sigreturn", "sigsuspend", "pause", "restart_syscall", "futex",
    "futex_time64", "futex_wait", "futex_waitv", "futex_wake", "futex_requeue",
    "set_robust_list", "get_robust_list", "set_tid_address", "set_thread_area",
    "get_thread_area", "rseq", "prctl", "seccomp", "capget", "capset", "ptrace", "getpid",
    "getppid", "gettid", "getpgid", "setpgid", "getpgrp", "getsid", "setsid", "getpriority",
    "setpriority", "ioprio_get", "ioprio_set", "getrlimit", "ugetrlimit", "setrlimit",
    "prlimit64", "getrusage", "times", "sched_yield", "sched_getaffinity", "sched_setaffinity",
    "sched_getattr", "sched_setattr", "sched_getparam", "sched_setparam", "sched_getscheduler",
    "sched_setscheduler", "sched_get_priority_max", "sched_get_priority_min",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "getcpu",
    // Credentials.
    "getuid", "getuid32", "geteuid", "geteuid32", "getgid", "getgid32", "getegid",
    "getegid32", "getresuid", "getresuid32", "getresgid", "getresgid32", "getgroups",
    "getgroups32", "setuid", "setuid32", "setgid", "setgid32", "setreuid", "setreuid32",
    "setregid", "setregid32", "setresuid", "setresuid32", "setresgid", "setresgid32",
    "setfsuid", "setfsuid32", "setfsgid", "setfsgid32", "setgroups", "setgroups32",
    // Time and system information (setting the clock needs CAP_SYS_TIME: the kernel checks).
    "time", "gettimeofday", "clock_gettime", "clock_gettime64", "clock_getres",
    "clock_getres_time64", "clock_nanosleep", "clock_nanosleep_time64", "nanosleep",
    "adjtimex", "clock_adjtime", "clock_adjtime64", "alarm", "getitimer", "setitimer",
    "timer_create", "timer_delete", "timer_settime", "timer_settime64", "timer_gettime",
    "timer_gettime64", "timer_getoverrun", "uname", "sysinfo", "getrandom",
    // System V and POSIX IPC.
    "ipc", "msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop", "semtimedop",
    "semtimedop_time64", "semctl", "shmget", "shmat", "shmdt", "shmctl", "mq_open", "mq_unlink",
    "mq_timedsend", "mq_timedsend_time64", "mq_timedreceive", "mq_timedreceive_time64",
    "mq_notify", "mq_getsetattr",
    // Sockets.
    "socket", "socketpair", "socketcall", "bind", "connect", "listen", "accept", "accept4",
    "getsockname", "getpeername", "getsockopt", "setsockopt", "send", "sendto", "sendmsg",
    "sendmmsg", "recv", "recvfrom", "recvmsg", "recvmmsg", "recvmmsg_time64", "shutdown",
];

/// Syscalls allowed only with a capability, which the kernel checks too: without it they
/// are of no use to the container but widen what it can reach in the kernel.
#[rustfmt::skip]
const WITH_CAPABILITY: &[(&str, &[&str])] = &[
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
            "lookup_dcookie", "mount", "mount_setattr", "move_mount", "name_to_handle_at",
            "open_tree", "perf_event_open", "quotactl", "quotactl_fd", "setdomainname",
            "sethostname", "setns", "syslog", "umount", "umount2", "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    ("CAP_SYS_MODULE", &["init_module", "finit_module", "delete_module"]),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev"],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    ("CAP_SYS_TIME", &["settimeofday", "stime", "clock_settime", "clock_settime64"]),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    ("CAP_SYS_NICE", &["get_mempolicy", "set_mempolicy", "set_mempolicy_home_node", "mbind"]),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// `personality` values a container may set: Linux, 32-bit Linux, `UNAME26` of each, and
/// `0xffffffff` (which only reads the current one).
const PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// The host's architecture, as far as filters care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostArch {
    X86_64,
    Aarch64,
    /// Anything else: the filter covers the native architecture only.
    Other,
}

impl HostArch {
    pub const fn current() -> HostArch {
        if cfg!(target_arch = "x86_64") {
            HostArch::X86_64
        } else if cfg!(target_arch = "aarch64") {
            HostArch::Aarch64
        } else {
            HostArch::Other
        }
    }

    /// The native architecture and the compat ones its kernel also runs.
    fn architectures(self) -> Option<Vec<Arch>> {
        match self {
            HostArch::X86_64 => Some(vec![
                Arch::ScmpArchX86_64,
                Arch::ScmpArchX86,
                Arch::ScmpArchX32,
            ]),
            HostArch::Aarch64 => Some(vec![Arch::ScmpArchArm, Arch::ScmpArchAarch64]),
            HostArch::Other => None,
        }
    }

    fn native(self) -> Option<Arch> {
        match self {
            HostArch::X86_64 => Some(Arch::ScmpArchX86_64),
            HostArch::Aarch64 => Some(Arch::ScmpArchAarch64),
            HostArch::Other => None,
        }
    }

    /// Names Docker-format profiles use in `includes.arches` / `excludes.arches` (Go's and
    /// the kernel's names).
    fn names(self) -> &'static [&'static str] {
        match self {
            HostArch::X86_64 => &["amd64", "x86_64", "x32", "386"],
            HostArch::Aarch64 => &["arm64", "aarch64", "arm"],
            HostArch::Other => &[],
        }
    }

    fn specific_syscalls(self) -> &'static [&'static str] {
        match self {
            HostArch::X86_64 => &["arch_prctl", "modify_ldt"],
            HostArch::Aarch64 => &[
                "arm_fadvise64_64",
                "arm_sync_file_range",
                "sync_file_range2",
                "breakpoint",
                "cacheflush",
                "set_tls",
            ],
            HostArch::Other => &[],
        }
    }
}

/// The filter for a container with `capabilities` (its bounding set), `None` for no filter.
pub fn filter(
    seccomp: &Seccomp,
    privileged: bool,
    capabilities: &[&str],
    arch: HostArch,
) -> Option<LinuxSeccomp> {
    if privileged {
        return None;
    }
    match seccomp {
        Seccomp::Unconfined => None,
        Seccomp::RuntimeDefault => Some(runtime_default(capabilities, arch)),
        Seccomp::Localhost(profile) => Some(profile.resolve(capabilities, arch)),
    }
}

/// Our default profile for a container with `capabilities`.
pub fn runtime_default(capabilities: &[&str], arch: HostArch) -> LinuxSeccomp {
    let has = |cap: &str| capabilities.contains(&cap);
    let mut allowed: Vec<&str> = ALWAYS_ALLOWED.to_vec();
    allowed.extend(arch.specific_syscalls());
    for (cap, names) in WITH_CAPABILITY {
        if has(cap) {
            allowed.extend(names.iter().copied());
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    allowed.retain(|name| seen.insert(*name));
    let mut syscalls = vec![syscall(
        &allowed,
        LinuxSeccompAction::ScmpActAllow,
        None,
        None,
    )];
    for personality in PERSONALITIES {
        syscalls.push(syscall(
            &["personality"],
            LinuxSeccompAction::ScmpActAllow,
            None,
            Some(vec![arg(
                0,
                personality,
                None,
                LinuxSeccompOperator::ScmpCmpEq,
            )]),
        ));
    }
    if !has("CAP_SYS_ADMIN") {
        syscalls.push(syscall(
            &["clone"],
            LinuxSeccompAction::ScmpActAllow,
            None,
            Some(vec![arg(
                0,
                CLONE_NAMESPACE_FLAGS,
                Some(0),
                LinuxSeccompOperator::ScmpCmpMaskedEq,
            )]),
        ));
        syscalls.push(syscall(
            &["clone3"],
            LinuxSeccompAction::ScmpActErrno,
            Some(ENOSYS),
            None,
        ));
    }
    seccomp(
        LinuxSeccompAction::ScmpActErrno,
        Some(EPERM),
        arch.architectures(),
        None,
        syscalls,
    )
}

fn seccomp(
    default_action: LinuxSeccompAction,
    default_errno_ret: Option<u32>,
    architectures: Option<Vec<Arch>>,
    flags: Option<Vec<LinuxSeccompFilterFlag>>,
    syscalls: Vec<LinuxSyscall>,
) -> LinuxSeccomp {
    let mut seccomp = LinuxSeccomp::default();
    seccomp
        .set_default_action(default_action)
        .set_default_errno_ret(default_errno_ret)
        .set_architectures(architectures)
        .set_flags(flags)
        .set_listener_path(None)
        .set_listener_metadata(None)
        .set_syscalls(Some(syscalls));
    seccomp
}

fn syscall(
    names: &[&str],
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    args: Option<Vec<LinuxSeccompArg>>,
) -> LinuxSyscall {
    let mut syscall = LinuxSyscall::default();
    syscall
        .set_names(names.iter().map(|n| n.to_string()).collect())
        .set_action(action)
        .set_errno_ret(errno_ret)
        .set_args(args);
    syscall
}

fn arg(
    index: usize,
    value: u64,
    value_two: Option<u64>,
    op: LinuxSeccompOperator,
) -> LinuxSeccompArg {
    // The type has no setters; its builder has no validation to fail.
    let builder = LinuxSeccompArgBuilder::default()
        .index(index)
        .value(value)
        .op(op);
    match value_two {
        Some(two) => builder.value_two(two),
        None => builder,
    }
    .build()
    .expect("every field of the argument is given")
}

/// Why a `Localhost` profile cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProfileError {
    #[error("{0}")]
    Json(String),
    #[error(
        "'architectures' and 'archMap' were specified in the seccomp profile, use either 'architectures' or 'archMap'"
    )]
    ArchitecturesAndArchMap,
    #[error(
        "'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names'"
    )]
    NameAndNames,
}

/// A seccomp profile file, in the OCI form or Docker's.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileFile {
    default_action: LinuxSeccompAction,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Option<Vec<Arch>>,
    #[serde(default)]
    arch_map: Option<Vec<ArchMapEntry>>,
    #[serde(default)]
    flags: Option<Vec<LinuxSeccompFilterFlag>>,
    #[serde(default)]
    syscalls: Option<Vec<ProfileRule>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMapEntry {
    architecture: Arch,
    #[serde(default)]
    sub_architectures: Option<Vec<Arch>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileRule {
    #[serde(default)]
    names: Option<Vec<String>>,
    /// Docker's older one-name form.
    #[serde(default)]
    name: Option<String>,
    action: LinuxSeccompAction,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<LinuxSeccompArg>>,
    #[serde(default)]
    includes: Option<Condition>,
    #[serde(default)]
    excludes: Option<Condition>,
}

/// Docker's `includes` / `excludes` of a rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Condition {
    #[serde(default)]
    caps: Option<Vec<String>>,
    #[serde(default)]
    arches: Option<Vec<String>>,
}

impl ProfileFile {
    /// Parses and checks a profile file's contents.
    pub fn parse(json: &[u8]) -> Result<ProfileFile, ProfileError> {
        let profile: ProfileFile =
            serde_json::from_slice(json).map_err(|e| ProfileError::Json(e.to_string()))?;
        if profile
            .architectures
            .as_ref()
            .is_some_and(|a| !a.is_empty())
            && profile.arch_map.as_ref().is_some_and(|a| !a.is_empty())
        {
            return Err(ProfileError::ArchitecturesAndArchMap);
        }
        if profile
            .syscalls
            .iter()
            .flatten()
            .any(|r| r.name.is_some() && r.names.as_ref().is_some_and(|n| !n.is_empty()))
        {
            return Err(ProfileError::NameAndNames);
        }
        Ok(profile)
    }

    /// The OCI filter for a container with `capabilities` on `arch`.
    fn resolve(&self, capabilities: &[&str], arch: HostArch) -> LinuxSeccomp {
        let architectures = match &self.arch_map {
            Some(map) if !map.is_empty() => {
                let native = arch.native();
                let chosen: Vec<Arch> = map
                    .iter()
                    .filter(|entry| Some(entry.architecture) == native)
                    .flat_map(|entry| {
                        std::iter::once(entry.architecture)
                            .chain(entry.sub_architectures.iter().flatten().copied())
                    })
                    .collect();
                (!chosen.is_empty()).then_some(chosen)
            }
            _ => self.architectures.clone().filter(|a| !a.is_empty()),
        };
        let has = |cap: &String| capabilities.contains(&cap.as_str());
        let on_arch =
            |arches: &Vec<String>| arches.iter().any(|a| arch.names().contains(&a.as_str()));
        let syscalls = self
            .syscalls
            .iter()
            .flatten()
            .filter(|rule| {
                let included = rule.includes.as_ref().is_none_or(|inc| {
                    inc.caps.as_ref().is_none_or(|caps| caps.iter().all(has))
                        && inc
                            .arches
                            .as_ref()
                            .is_none_or(|a| a.is_empty() || on_arch(a))
                });
                let excluded = rule.excludes.as_ref().is_some_and(|exc| {
                    exc.caps.as_ref().is_some_and(|caps| caps.iter().any(has))
                        || exc.arches.as_ref().is_some_and(on_arch)
                });
                included && !excluded
            })
            .map(|rule| {
                let names: Vec<&str> = match (&rule.names, &rule.name) {
                    (Some(names), _) if !names.is_empty() => {
                        names.iter().map(String::as_str).collect()
                    }
                    (_, Some(name)) => vec![name.as_str()],
                    _ => Vec::new(),
                };
                syscall(&names, rule.action, rule.errno_ret, rule.args.clone())
            })
            .filter(|s| !s.names().is_empty())
            .collect();
        seccomp(
            self.default_action,
            self.default_errno_ret,
            architectures,
            self.flags.clone(),
            syscalls,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn json_of(seccomp: &LinuxSeccomp) -> Value {
        serde_json::to_value(seccomp).unwrap()
    }

    fn allowed(profile: &Value) -> Vec<&str> {
        profile["syscalls"][0]["names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect()
    }

    const DEFAULTS: [&str; 3] = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

    #[test]
    fn runtime_default_denies_with_eperm_on_every_x86_architecture() {
        let profile = json_of(&runtime_default(&DEFAULTS, HostArch::X86_64));
        assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(profile["defaultErrnoRet"], 1);
        assert_eq!(
            profile["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        let names = allowed(&profile);
        for name in ["read", "execve", "openat", "arch_prctl", "socket"] {
            assert!(names.contains(&name), "{name}");
        }
        for denied in [
            "mount",
            "unshare",
            "setns",
            "reboot",
            "chroot",
            "io_uring_setup",
            "clone",
        ] {
            assert!(!names.contains(&denied), "{denied}");
        }
        assert!(!names.contains(&"personality"), "only some personalities");
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "no name twice");
        let arm = json_of(&runtime_default(&DEFAULTS, HostArch::Aarch64));
        assert_eq!(
            arm["architectures"],
            json!(["SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64"])
        );
        assert!(allowed(&arm).contains(&"set_tls") && !allowed(&arm).contains(&"arch_prctl"));
    }

    #[test]
    fn clone_may_not_make_namespaces_without_cap_sys_admin() {
        let profile = json_of(&runtime_default(&DEFAULTS, HostArch::X86_64));
        let rules = profile["syscalls"].as_array().unwrap();
        assert!(rules.contains(&json!({
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 2114060288u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
        })));
        assert!(rules.contains(&json!({
            "names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
        })));
        assert!(rules.contains(&json!({
            "names": ["personality"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}],
        })));
        let admin = json_of(&runtime_default(
            &["CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_CHROOT"],
            HostArch::X86_64,
        ));
        let names = allowed(&admin);
        for name in [
            "clone", "clone3", "mount", "unshare", "setns", "kcmp", "chroot",
        ] {
            assert!(names.contains(&name), "{name}");
        }
        assert!(
            !admin["syscalls"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["names"] == json!(["clone3"]))
        );
    }

    #[test]
    fn privileged_and_unconfined_have_no_filter() {
        assert_eq!(
            filter(&Seccomp::Unconfined, false, &DEFAULTS, HostArch::X86_64),
            None
        );
        assert_eq!(
            filter(&Seccomp::RuntimeDefault, true, &DEFAULTS, HostArch::X86_64),
            None
        );
        assert!(filter(&Seccomp::RuntimeDefault, false, &DEFAULTS, HostArch::X86_64).is_some());
    }

    #[test]
    fn an_oci_form_profile_is_taken_as_written() {
        let file = br#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#;
        let profile = ProfileFile::parse(file).unwrap();
        let resolved = json_of(&profile.resolve(&DEFAULTS, HostArch::X86_64));
        assert_eq!(
            resolved,
            json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}],
            })
        );
    }

    #[test]
    fn a_docker_form_profile_is_resolved_for_this_container() {
        let file = br#"{
            "defaultAction": "SCMP_ACT_ERRNO",
            "archMap": [
                {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
            ],
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "comment": "always"},
                {"name": "mount", "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
                {"names": ["set_tls"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_KILL"]}}
            ]}"#;
        let profile = ProfileFile::parse(file).unwrap();
        let resolved = json_of(&profile.resolve(&DEFAULTS, HostArch::X86_64));
        assert_eq!(
            resolved["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"])
        );
        let names: Vec<&Value> = resolved["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["names"])
            .collect();
        assert_eq!(names, [&json!(["read", "write"]), &json!(["arch_prctl"])]);
    }

    #[test]
    fn bad_profiles_are_refused() {
        assert!(matches!(
            ProfileFile::parse(b"{"),
            Err(ProfileError::Json(_))
        ));
        assert!(matches!(
            ProfileFile::parse(br#"{"defaultAction": "SCMP_ACT_MAYBE"}"#),
            Err(ProfileError::Json(_))
        ));
        assert_eq!(
            ProfileFile::parse(
                br#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"],
                "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}"#
            ),
            Err(ProfileError::ArchitecturesAndArchMap)
        );
        assert_eq!(
            ProfileFile::parse(
                br#"{"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ERRNO"}]}"#
            ),
            Err(ProfileError::NameAndNames)
        );
    }
}
