//! A pod sandbox: the namespaces a pod's containers share, its network attachment and its
//! `/etc/resolv.conf`, all in one directory:
//!
//! ```text
//! <dir>/sandbox.json   state: id, what comes from the node, the CNI network and result, IPs
//! <dir>/ns/net         the pod's network namespace (not with hostNetwork)
//! <dir>/ns/ipc         its IPC namespace (not with hostIPC)
//! <dir>/ns/uts         its UTS namespace with the pod's hostname (not with hostNetwork)
//! <dir>/ns/pid         with shareProcessNamespace: the PID namespace of the pause process
//! <dir>/resolv.conf    bind-mounted into every container
//! <dir>/shm/           the pod's /dev/shm (a tmpfs, 64 MiB, as containerd; not with hostIPC,
//!                      where containers get the node's /dev/shm)
//! ```
//!
//! The namespaces are pinned as bind-mounted nsfs files ([`nodelet_sys::namespace`]), so no
//! process holds them and containers join them by path. A restarted nodelet finds the
//! sandbox again with [`Sandbox::open`]; [`Sandbox::remove`] undoes every step of
//! [`Sandbox::create`] and may run any number of times, also on a half-made sandbox (the
//! state is written before the first step, so removal knows what to undo).
//!
//! Upstream's rules: `hostNetwork` uses the node's network and UTS namespaces (the node's
//! hostname, no CNI); `hostIPC` and `hostPID` the node's IPC and PID namespaces. Without
//! `hostPID` each container has a PID namespace of its own, unless `shareProcessNamespace`
//! asks for one per pod: its first process is the sandbox's pause process ([`crate::pause`],
//! the only process a sandbox keeps), killed on removal.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nodelet_sys::namespace::{
    HostNamespaces, NamespaceError, NamespaceKind, NamespacePinner, PinRequest, is_namespace_file,
    pin_pid_namespace_of, spawn_pid_namespace_init,
};
use nodelet_sys::process::PidFd;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cni::{Attachment, CniError, Network, NetworkList, POD_INTERFACE, PortMapping};
use crate::pause::PauseLauncher;
use crate::signal::Signal;
use crate::spec::{BindMount, ContainerSpec, NamespaceMode, Namespaces};

const STATE: &str = "sandbox.json";
const RESOLV_CONF: &str = "resolv.conf";
const NS_DIR: &str = "ns";
const PID_NS: &str = "pid";
/// The network namespace's file: unpinned beside or before the network's DEL.
const NET_NS: &str = "net";
const SHM: &str = "shm";
/// containerd's pod `/dev/shm`: 64 MiB, world-writable with the sticky bit.
const SHM_OPTIONS: &str = "mode=1777,size=65536k";
const PAUSE_KILL_TIMEOUT: Duration = Duration::from_secs(10);
const PINNED: [(NamespaceKind, &str); 3] = [
    (NamespaceKind::Network, NET_NS),
    (NamespaceKind::Ipc, "ipc"),
    (NamespaceKind::Uts, "uts"),
];

/// What the pod asks of its sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Unique per sandbox (e.g. the pod's uid): the CNI container id.
    pub id: String,
    /// The pod's hostname (unused with `host_network`, which keeps the node's).
    pub hostname: String,
    pub host_network: bool,
    pub host_ipc: bool,
    pub host_pid: bool,
    pub share_process_namespace: bool,
    /// What runs as PID 1 of the shared PID namespace (needed with
    /// `share_process_namespace`): [`PauseLauncher::this_binary`] in nodelet.
    pub pause: Option<PauseLauncher>,
    /// The contents of the pod's `/etc/resolv.conf`.
    pub resolv_conf: String,
    /// `hostPort`s, for the network's `portmap` plugin.
    pub port_mappings: Vec<PortMapping>,
    /// `CNI_ARGS` (upstream passes `K8S_POD_NAMESPACE`, `K8S_POD_NAME`, ...).
    pub cni_args: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("sandbox {}: {what}: {source}", .dir.display())]
    Io {
        dir: PathBuf,
        what: String,
        source: std::io::Error,
    },
    #[error("sandbox {}: {problem}", .dir.display())]
    Invalid { dir: PathBuf, problem: String },
    #[error("sandbox {}: {source}", .dir.display())]
    Namespace {
        dir: PathBuf,
        source: NamespaceError,
    },
    #[error("sandbox {}: {source}", .dir.display())]
    Network { dir: PathBuf, source: CniError },
}

/// What is kept on disk about a sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SandboxState {
    id: String,
    /// `None` with hostNetwork (the node's).
    hostname: Option<String>,
    host_network: bool,
    host_ipc: bool,
    host_pid: bool,
    /// The network ADD was run with (DEL uses the same), and where its plugins are.
    network: Option<NetworkList>,
    #[serde(default)]
    cni_bin_dir: PathBuf,
    #[serde(default)]
    plugin_timeout_ms: u64,
    #[serde(default)]
    cni_args: Vec<(String, String)>,
    #[serde(default)]
    port_mappings: Vec<PortMapping>,
    /// The network's ADD result.
    cni_result: Option<Value>,
    /// The pause process (pid and start time, so a reused pid is never killed).
    #[serde(default)]
    pause: Option<PauseProcess>,
    ips: Vec<IpAddr>,
    /// Every step of creation is done.
    ready: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct PauseProcess {
    pid: u32,
    /// Clock ticks after boot (`/proc/<pid>/stat` field 22).
    start_time: u64,
}

/// Drops the host's neighbour (ARP/NDP) entries for a new pod's addresses. An address freed
/// by an earlier pod can come back while the host still holds a STALE entry with the old
/// pod's MAC, and the host would send to it for seconds (until its delayed probe). Best
/// effort: without `ip`, or without an entry, nothing changes.
fn forget_stale_neighbours(ips: &[IpAddr]) {
    for ip in ips {
        let _ = std::process::Command::new("ip")
            .args(["neigh", "flush", "to", &ip.to_string()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// A created pod sandbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Sandbox {
    dir: PathBuf,
    state: SandboxState,
}

impl Sandbox {
    /// Creates the sandbox in `dir` (made if missing): pins its namespaces, writes its
    /// `resolv.conf` and attaches it to `network` (`lo` through the loopback plugin, `eth0`
    /// through the network's plugins). `network` may be `None` only with `host_network`.
    /// Repeatable: a ready sandbox with the same id is returned as it is; a half-made one is
    /// removed and made again. On failure, what was done is undone.
    pub fn create(
        dir: &Path,
        config: &SandboxConfig,
        network: Option<&Network>,
    ) -> Result<Sandbox, SandboxError> {
        Sandbox::make(dir, config, network, true)
    }

    /// [`Sandbox::create`] without the network's ADD, which [`Sandbox::attach_network`] runs
    /// later (beside the first container's creation). Until then the sandbox is not ready:
    /// found again after a restart, it is made anew.
    pub fn create_unattached(
        dir: &Path,
        config: &SandboxConfig,
        network: Option<&Network>,
    ) -> Result<Sandbox, SandboxError> {
        Sandbox::make(dir, config, network, false)
    }

    fn make(
        dir: &Path,
        config: &SandboxConfig,
        network: Option<&Network>,
        attach: bool,
    ) -> Result<Sandbox, SandboxError> {
        let invalid = |problem: &str| SandboxError::Invalid {
            dir: dir.to_path_buf(),
            problem: problem.into(),
        };
        if config.share_process_namespace && config.host_pid {
            // Upstream's validation text.
            return Err(invalid(
                "ShareProcessNamespace and HostPID cannot both be enabled",
            ));
        }
        if config.share_process_namespace && config.pause.is_none() {
            return Err(invalid(
                "shareProcessNamespace needs a pause program to run as PID 1",
            ));
        }
        let network = if config.host_network {
            None
        } else {
            Some(network.ok_or_else(|| SandboxError::Invalid {
                dir: dir.to_path_buf(),
                problem: "a pod network is needed unless the pod uses the host's network".into(),
            })?)
        };
        if dir.join(STATE).exists() {
            match Sandbox::open(dir) {
                Ok(existing) if existing.state.id == config.id && existing.is_intact() => {
                    return Ok(existing);
                }
                _ => Sandbox::remove(dir)?,
            }
        }
        let io = |what: &str| {
            let what = what.to_string();
            move |source| SandboxError::Io {
                dir: dir.to_path_buf(),
                what,
                source,
            }
        };
        create_private_dir(&dir.join(NS_DIR)).map_err(io("creating the directory"))?;
        let mut sandbox = Sandbox {
            dir: dir.to_path_buf(),
            state: SandboxState {
                id: config.id.clone(),
                hostname: (!config.host_network).then(|| config.hostname.clone()),
                host_network: config.host_network,
                host_ipc: config.host_ipc,
                host_pid: config.host_pid,
                network: network.map(|n| n.list.clone()),
                cni_bin_dir: network.map(|n| n.bin_dir.clone()).unwrap_or_default(),
                plugin_timeout_ms: network.map_or(0, |n| {
                    u64::try_from(n.plugin_timeout.as_millis()).unwrap_or(u64::MAX)
                }),
                cni_args: config.cni_args.clone(),
                port_mappings: config.port_mappings.clone(),
                cni_result: None,
                pause: None,
                ips: Vec::new(),
                ready: false,
            },
        };
        sandbox.save()?;
        let set_up = sandbox.set_up(config).and_then(|()| match network {
            Some(network) if attach => sandbox.attach_network(network),
            Some(_) => Ok(()),
            None => sandbox.mark_ready(),
        });
        match set_up {
            Ok(()) => Ok(sandbox),
            Err(err) => {
                let _ = Sandbox::remove(dir);
                Err(err)
            }
        }
    }

    /// Whether the pod network's ADD is still to run ([`Sandbox::create_unattached`]).
    pub fn needs_network(&self) -> bool {
        self.state.network.is_some() && !self.state.ready
    }

    /// Attaches the sandbox to `network`: `lo` through the loopback plugin, `eth0` through
    /// the network's plugins. On failure the caller removes the sandbox.
    pub fn attach_network(&mut self, network: &Network) -> Result<(), SandboxError> {
        let netns = self.network_namespace_file();
        let cni = |source| SandboxError::Network {
            dir: self.dir.clone(),
            source,
        };
        let loopback = Network::loopback(&network.bin_dir, network.plugin_timeout);
        // `lo` and `eth0` are independent: their plugins run side by side.
        let (lo, eth0) = std::thread::scope(|scope| {
            let lo = scope.spawn(|| loopback.add(&self.attachment(Some(&netns), "lo")));
            let eth0 = network.add(&self.attachment(Some(&netns), POD_INTERFACE));
            (lo.join(), eth0)
        });
        lo.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            .map_err(cni)?;
        let result = eth0.map_err(cni)?;
        forget_stale_neighbours(&result.ips);
        self.state.ips = result.ips;
        self.state.cni_result = Some(result.raw);
        self.mark_ready()
    }

    fn mark_ready(&mut self) -> Result<(), SandboxError> {
        self.state.ready = true;
        self.save()
    }

    /// Everything but the network: namespaces, `/dev/shm`, the pause process, resolv.conf.
    fn set_up(&mut self, config: &SandboxConfig) -> Result<(), SandboxError> {
        let request = PinRequest {
            pins: PINNED
                .iter()
                .filter(|(kind, _)| self.owns(*kind))
                .map(|(kind, name)| (*kind, self.dir.join(NS_DIR).join(name)))
                .collect(),
            hostname: self.state.hostname.clone(),
        };
        let namespace_error = |source| SandboxError::Namespace {
            dir: self.dir.clone(),
            source,
        };
        HostNamespaces.pin_new(&request).map_err(namespace_error)?;
        if !self.state.host_ipc {
            let shm = self.dir.join(SHM);
            create_private_dir(&shm).map_err(|source| SandboxError::Io {
                dir: self.dir.clone(),
                what: "creating shm".into(),
                source,
            })?;
            nodelet_sys::mount::mount_shm(&shm, SHM_OPTIONS).map_err(|e| SandboxError::Io {
                dir: self.dir.clone(),
                what: "mounting shm".into(),
                source: std::io::Error::other(e),
            })?;
        }
        if let Some(pause) = config
            .pause
            .as_ref()
            .filter(|_| config.share_process_namespace)
        {
            self.start_pause(pause)?;
        }
        write_file(&self.dir.join(RESOLV_CONF), config.resolv_conf.as_bytes()).map_err(
            |source| SandboxError::Io {
                dir: self.dir.clone(),
                what: "writing resolv.conf".into(),
                source,
            },
        )?;
        Ok(())
    }

    fn start_pause(&mut self, pause: &PauseLauncher) -> Result<(), SandboxError> {
        let args: Vec<&str> = pause.args.iter().map(String::as_str).collect();
        let process =
            spawn_pid_namespace_init(&pause.program, &args).map_err(|source| SandboxError::Io {
                dir: self.dir.clone(),
                what: format!("starting the pause process {}", pause.program.display()),
                source,
            })?;
        let start_time =
            process_start_time(process.pid()).ok_or_else(|| SandboxError::Invalid {
                dir: self.dir.clone(),
                problem: format!("the pause process {} ended at once", process.pid()),
            })?;
        // Recorded before anything else can fail, so removal finds it.
        self.state.pause = Some(PauseProcess {
            pid: process.pid(),
            start_time,
        });
        self.save()?;
        pin_pid_namespace_of(process.pid(), &self.dir.join(NS_DIR).join(PID_NS)).map_err(|source| {
            SandboxError::Namespace {
                dir: self.dir.clone(),
                source,
            }
        })
    }

    /// The sandbox in `dir` (after a restart).
    pub fn open(dir: &Path) -> Result<Sandbox, SandboxError> {
        let bytes = std::fs::read(dir.join(STATE)).map_err(|source| SandboxError::Io {
            dir: dir.to_path_buf(),
            what: format!("reading {STATE}"),
            source,
        })?;
        let state: SandboxState =
            serde_json::from_slice(&bytes).map_err(|e| SandboxError::Invalid {
                dir: dir.to_path_buf(),
                problem: format!("{STATE}: {e}"),
            })?;
        Ok(Sandbox {
            dir: dir.to_path_buf(),
            state,
        })
    }

    /// Tears down the sandbox in `dir`: CNI DEL, the pinned namespaces, the directory.
    /// Repeatable, and fine on a half-made sandbox or a directory that is gone. A failing
    /// DEL stops the removal (to be retried) only when ADD had succeeded.
    pub fn remove(dir: &Path) -> Result<(), SandboxError> {
        if !dir.exists() {
            return Ok(());
        }
        let sandbox = Sandbox::open(dir).ok();
        let network = sandbox.as_ref().and_then(Sandbox::recorded_network);
        let unpin = |name: &str| {
            HostNamespaces
                .unpin(&dir.join(NS_DIR).join(name))
                .map_err(|source| SandboxError::Namespace {
                    dir: dir.to_path_buf(),
                    source,
                })
        };
        // Every unmount waits for an RCU grace period; run side by side they share one, and
        // the network's DEL runs beside them.
        std::thread::scope(|scope| {
            let network_removed = scope.spawn(|| match (&sandbox, &network) {
                (Some(sandbox), Some(network)) => sandbox.remove_network(network, unpin),
                _ => unpin(NET_NS),
            });
            if let Some(pause) = sandbox.as_ref().and_then(|s| s.state.pause) {
                stop_pause(pause);
            }
            let shm = scope.spawn(|| {
                unmount_all(&dir.join(SHM)).map_err(|e| SandboxError::Io {
                    dir: dir.to_path_buf(),
                    what: "unmounting shm".into(),
                    source: std::io::Error::other(e),
                })
            });
            let others: Vec<_> = PINNED
                .iter()
                .map(|(_, name)| *name)
                .filter(|name| *name != NET_NS)
                .chain([PID_NS])
                .map(|name| scope.spawn(move || unpin(name)))
                .collect();
            let joined = |handle: std::thread::ScopedJoinHandle<'_, Result<(), SandboxError>>| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            };
            joined(network_removed)?;
            joined(shm)?;
            others.into_iter().try_for_each(joined)
        })?;
        match std::fs::remove_dir_all(dir) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(SandboxError::Io {
                dir: dir.to_path_buf(),
                what: "removing the directory".into(),
                source,
            }),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The pause process's pid, when the sandbox has one (for its pod cgroup).
    pub fn pause_pid(&self) -> Option<u32> {
        self.state.pause.map(|p| p.pid)
    }

    /// Whether everything creation made is still there: after a node reboot the directory
    /// survives but its mounts and the pause process do not ([`Sandbox::create`] then makes
    /// the sandbox again).
    pub fn is_intact(&self) -> bool {
        let namespaces = PINNED
            .iter()
            .filter(|(kind, _)| self.owns(*kind))
            .map(|(_, name)| self.dir.join(NS_DIR).join(name))
            .chain(self.state.pause.map(|_| self.dir.join(NS_DIR).join(PID_NS)))
            .all(|file| is_namespace_file(&file));
        let pause_alive = self
            .state
            .pause
            .is_none_or(|p| process_start_time(p.pid) == Some(p.start_time));
        let shm = self.state.host_ipc || is_mount_point(&self.dir.join(SHM));
        self.state.ready && namespaces && pause_alive && shm
    }

    /// CNI CHECK of the pod's network attachment (nothing to check with hostNetwork).
    pub fn check_network(&self) -> Result<(), SandboxError> {
        let (Some(network), Some(added)) = (self.recorded_network(), &self.state.cni_result) else {
            return Ok(());
        };
        let netns = self.network_namespace_file();
        network
            .check(&self.attachment(Some(&netns), POD_INTERFACE), added)
            .map_err(|source| SandboxError::Network {
                dir: self.dir.clone(),
                source,
            })
    }

    pub fn id(&self) -> &str {
        &self.state.id
    }

    /// The pod's IPs from its network (`status.podIPs`); empty with hostNetwork, whose pods
    /// report the node's addresses.
    pub fn ips(&self) -> &[IpAddr] {
        &self.state.ips
    }

    /// The pod's hostname; `None` with hostNetwork (the node's).
    pub fn hostname(&self) -> Option<&str> {
        self.state.hostname.as_deref()
    }

    /// The file to bind-mount at `/etc/resolv.conf`.
    pub fn resolv_conf(&self) -> PathBuf {
        self.dir.join(RESOLV_CONF)
    }

    /// The namespaces a container of this pod runs in: the sandbox's pinned ones or the
    /// node's; its own PID namespace unless hostPID; the node's cgroup namespace.
    pub fn namespaces(&self) -> Namespaces {
        let pinned = |kind: NamespaceKind| {
            if self.owns(kind) {
                let name = PINNED
                    .iter()
                    .find(|(k, _)| *k == kind)
                    .map_or("", |(_, n)| n);
                NamespaceMode::Join(self.dir.join(NS_DIR).join(name))
            } else {
                NamespaceMode::Node
            }
        };
        let pid = if self.state.host_pid {
            NamespaceMode::Node
        } else if self.state.pause.is_some() {
            NamespaceMode::Join(self.dir.join(NS_DIR).join(PID_NS))
        } else {
            NamespaceMode::Private
        };
        Namespaces {
            pid,
            ipc: pinned(NamespaceKind::Ipc),
            uts: pinned(NamespaceKind::Uts),
            network: pinned(NamespaceKind::Network),
            ..Namespaces::default()
        }
    }

    /// Puts a container into this sandbox: its namespaces (the cgroup one is left as it
    /// is), no hostname of its own (the sandbox's UTS namespace has it), and the pod's
    /// `/etc/resolv.conf` and `/dev/shm` unless the container mounts its own there.
    pub fn join(&self, container: &mut ContainerSpec) {
        container.namespaces = Namespaces {
            cgroup: container.namespaces.cgroup.clone(),
            ..self.namespaces()
        };
        container.hostname = None;
        let shm = if self.state.host_ipc {
            PathBuf::from("/dev/shm")
        } else {
            self.dir.join(SHM)
        };
        for (source, destination) in [(self.resolv_conf(), "/etc/resolv.conf"), (shm, "/dev/shm")] {
            if !container
                .mounts
                .iter()
                .any(|m| m.destination == Path::new(destination))
            {
                container.mounts.push(BindMount {
                    source,
                    destination: destination.into(),
                    read_only: false,
                    propagation: crate::spec::MountPropagation::Private,
                });
            }
        }
    }

    fn owns(&self, kind: NamespaceKind) -> bool {
        match kind {
            NamespaceKind::Network | NamespaceKind::Uts => !self.state.host_network,
            NamespaceKind::Ipc => !self.state.host_ipc,
        }
    }

    /// DEL on the recorded network, and the network namespace unpinned. When the network's
    /// DEL needs nothing from the namespace ([`NetworkList::del_needs_namespace`]) the
    /// namespace goes first: the kernel then deletes the pod's interfaces with it, off this
    /// path, and DEL only releases what the host holds (the address).
    fn remove_network(
        &self,
        network: &Network,
        unpin: impl Fn(&str) -> Result<(), SandboxError>,
    ) -> Result<(), SandboxError> {
        let netns = self.network_namespace_file();
        let needs_namespace = network.list.del_needs_namespace();
        if !needs_namespace {
            unpin(NET_NS)?;
        }
        // Without the namespace (removed by hand, never made, or just unpinned) DEL still
        // releases the address; the interface went with the namespace.
        let netns = is_namespace_file(&netns).then_some(netns);
        let attachment = self.attachment(netns.as_deref(), POD_INTERFACE);
        let deleted = network.del(&attachment, self.state.cni_result.as_ref());
        // Without an ADD result, ADD failed or never ran: a DEL that fails as well (the
        // configuration that made ADD fail) must not keep the sandbox forever.
        if self.state.cni_result.is_some() {
            deleted.map_err(|source| SandboxError::Network {
                dir: self.dir.clone(),
                source,
            })?;
        }
        if needs_namespace {
            unpin(NET_NS)
        } else {
            Ok(())
        }
    }

    /// The network ADD ran with, as the state recorded it.
    fn recorded_network(&self) -> Option<Network> {
        Some(Network::new(
            self.state.network.clone()?,
            self.state.cni_bin_dir.clone(),
            Duration::from_millis(self.state.plugin_timeout_ms),
        ))
    }

    fn network_namespace_file(&self) -> PathBuf {
        self.dir.join(NS_DIR).join(NET_NS)
    }

    fn attachment<'a>(&'a self, netns: Option<&'a Path>, ifname: &'a str) -> Attachment<'a> {
        Attachment {
            container_id: &self.state.id,
            netns,
            ifname,
            args: &self.state.cni_args,
            port_mappings: &self.state.port_mappings,
        }
    }

    fn save(&self) -> Result<(), SandboxError> {
        let bytes = serde_json::to_vec_pretty(&self.state).map_err(|e| SandboxError::Invalid {
            dir: self.dir.clone(),
            problem: e.to_string(),
        })?;
        write_file(&self.dir.join(STATE), &bytes).map_err(|source| SandboxError::Io {
            dir: self.dir.clone(),
            what: format!("writing {STATE}"),
            source,
        })
    }
}

/// Kills the pause process if it is still the one started (a reused pid is left alone),
/// and reaps it when it is our child.
fn stop_pause(pause: PauseProcess) {
    if process_start_time(pause.pid) != Some(pause.start_time) {
        return;
    }
    if let Ok(process) = PidFd::open(pause.pid) {
        // SIGKILL: the one signal PID 1 of a namespace cannot refuse from outside it.
        let _ = process.send_signal(Signal::KILL.number());
        let _ = process.wait_exited(Some(PAUSE_KILL_TIMEOUT));
        let _ = process.try_reap();
    }
}

/// A process's start time in clock ticks after boot (`/proc/<pid>/stat` field 22).
fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `path` is a mount point (its device differs from its parent's).
fn is_mount_point(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (
        std::fs::metadata(path),
        path.parent().map(std::fs::metadata),
    ) {
        (Ok(own), Some(Ok(parent))) => own.dev() != parent.dev(),
        _ => false,
    }
}

/// Unmounts everything stacked on `path` (lazily); nothing mounted or no path is fine.
fn unmount_all(path: &Path) -> Result<(), nodelet_sys::mount::MountError> {
    loop {
        match nodelet_sys::mount::unmount(path, true) {
            Ok(()) => continue,
            Err(err) if nodelet_sys::mount::is_not_mounted(&err) => return Ok(()),
            Err(err) => return Err(err),
        }
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes atomically (a temporary file renamed over), mode 0644.
fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::ResolvedUser;

    fn sandbox(host_network: bool, host_ipc: bool) -> Sandbox {
        Sandbox {
            dir: "/var/lib/nodelet/pods/u1/sandbox".into(),
            state: SandboxState {
                id: "u1".into(),
                hostname: (!host_network).then(|| "web-0".into()),
                host_network,
                host_ipc,
                host_pid: false,
                network: None,
                cni_bin_dir: PathBuf::new(),
                plugin_timeout_ms: 0,
                cni_args: Vec::new(),
                port_mappings: Vec::new(),
                cni_result: None,
                pause: None,
                ips: Vec::new(),
                ready: true,
            },
        }
    }

    fn container() -> ContainerSpec {
        let mut spec = ContainerSpec::new(
            vec!["sh".into()],
            ResolvedUser {
                uid: 0,
                gid: 0,
                additional_gids: Vec::new(),
                name: None,
            },
        );
        spec.hostname = Some("web-0".into());
        spec
    }

    #[test]
    fn containers_join_the_pinned_namespaces() {
        let mut spec = container();
        sandbox(false, false).join(&mut spec);
        let ns = |name: &str| {
            NamespaceMode::Join(PathBuf::from("/var/lib/nodelet/pods/u1/sandbox/ns").join(name))
        };
        assert_eq!(spec.namespaces.network, ns("net"));
        assert_eq!(spec.namespaces.ipc, ns("ipc"));
        assert_eq!(spec.namespaces.uts, ns("uts"));
        assert_eq!(spec.namespaces.pid, NamespaceMode::Private);
        assert_eq!(spec.namespaces.cgroup, NamespaceMode::Node);
        assert_eq!(spec.hostname, None);
        assert_eq!(
            spec.mounts,
            [
                BindMount {
                    source: "/var/lib/nodelet/pods/u1/sandbox/resolv.conf".into(),
                    destination: "/etc/resolv.conf".into(),
                    read_only: false,
                    propagation: crate::spec::MountPropagation::Private,
                },
                BindMount {
                    source: "/var/lib/nodelet/pods/u1/sandbox/shm".into(),
                    destination: "/dev/shm".into(),
                    read_only: false,
                    propagation: crate::spec::MountPropagation::Private,
                }
            ]
        );
        crate::spec::generate(&spec).unwrap();
        sandbox(false, false).join(&mut spec);
        assert_eq!(spec.mounts.len(), 2, "joining twice adds no second mount");
    }

    #[test]
    fn host_network_takes_the_node_network_and_uts() {
        let mut spec = container();
        sandbox(true, false).join(&mut spec);
        assert_eq!(spec.namespaces.network, NamespaceMode::Node);
        assert_eq!(spec.namespaces.uts, NamespaceMode::Node);
        assert!(matches!(spec.namespaces.ipc, NamespaceMode::Join(_)));
        let mut spec = container();
        sandbox(false, true).join(&mut spec);
        assert_eq!(spec.namespaces.ipc, NamespaceMode::Node);
        assert_eq!(spec.mounts[1].source, Path::new("/dev/shm"), "the node's");
        assert!(matches!(spec.namespaces.network, NamespaceMode::Join(_)));
    }

    #[test]
    fn a_shared_pid_namespace_needs_a_pause_program_and_no_host_pid() {
        let create = |host_pid, pause: Option<PauseLauncher>| {
            Sandbox::create(
                Path::new("/nonexistent/sandbox"),
                &SandboxConfig {
                    share_process_namespace: true,
                    host_pid,
                    pause,
                    host_network: true,
                    ..Default::default()
                },
                None,
            )
            .unwrap_err()
            .to_string()
        };
        assert_eq!(
            create(false, None),
            "sandbox /nonexistent/sandbox: shareProcessNamespace needs a pause program to run as PID 1"
        );
        assert_eq!(
            create(true, Some(PauseLauncher::this_binary().unwrap())),
            "sandbox /nonexistent/sandbox: ShareProcessNamespace and HostPID cannot both be enabled"
        );
    }

    #[test]
    fn start_times_come_from_proc() {
        let ours = process_start_time(std::process::id()).unwrap();
        assert!(ours > 0);
        assert_eq!(process_start_time(u32::MAX), None);
    }
}
