//! Pod networking through CNI plugins (Debian's `containernetworking-plugins` by default):
//! nodelet's own default network configuration, and running a network's plugin chain per
//! the CNI specification (`CNI_COMMAND` ADD/CHECK/DEL, the configuration on stdin with
//! `cniVersion`, `name` and the previous plugin's `prevResult`).
//!
//! The default network (`nodelet`) is a `bridge` (the pod's gateway) with `host-local`
//! addresses from the pod CIDR (one host-wide record, [`DEFAULT_IPAM_DATA_DIR`]) and
//! `portmap` for `hostPort`s; traffic leaving the pod CIDR is masqueraded by one node-wide
//! iptables rule added when the network is loaded (not a chain per pod). Every sandbox also
//! gets `lo` up through the `loopback` plugin.
//!
//! Each plugin run has a deadline; a failure names the plugin, the command and what the
//! plugin said (its JSON error `msg` and `details`, and its standard error).

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::command::{Running, exit_code};

/// The CNI version of the configurations nodelet writes.
pub const CNI_VERSION: &str = "1.0.0";
/// Where Debian installs the plugins.
pub const DEFAULT_BIN_DIR: &str = "/usr/lib/cni";
/// The pod CIDR unless configured: not podman's default (10.88.0.0/16), so both can run.
pub const DEFAULT_POD_CIDR: &str = "10.244.0.0/16";
/// The default network's name and bridge.
pub const DEFAULT_NETWORK_NAME: &str = "nodelet";
pub const DEFAULT_BRIDGE: &str = "nodelet0";
/// The file nodelet writes its default network into, in the configuration directory.
pub const DEFAULT_CONFLIST_FILE: &str = "10-nodelet.conflist";
/// The interface name of the pod's network inside its sandbox.
pub const POD_INTERFACE: &str = "eth0";
/// How long one plugin may run (bridge and portmap call iptables, slow on a busy node).
pub const DEFAULT_PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Where CNI configuration and plugins are, and the default network's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSettings {
    /// `*.conflist` files; the first by name is the pod network. nodelet writes its default
    /// there when there is none.
    pub conf_dir: PathBuf,
    /// The plugin binaries (`CNI_PATH`).
    pub bin_dir: PathBuf,
    /// `host-local`'s records of the addresses in use.
    pub ipam_data_dir: PathBuf,
    pub pod_cidr: String,
    pub network_name: String,
    pub bridge: String,
    pub plugin_timeout: Duration,
}

/// Where `host-local` keeps the addresses of nodelet's bridge network, host-wide.
pub const DEFAULT_IPAM_DATA_DIR: &str = "/var/lib/nodelet/cni/ipam";

impl NetworkSettings {
    /// The defaults for a node whose state lives in `root_dir`: configuration in
    /// `<root>/cni/net.d`, plugins in `/usr/lib/cni`, and the addresses in use in
    /// [`DEFAULT_IPAM_DATA_DIR`]: the bridge is the host's, so every nodelet on the host (one
    /// per root dir, as tests run them) must draw from one record of its addresses, or two
    /// pods get the same IP.
    pub fn under_root(root_dir: &Path) -> NetworkSettings {
        NetworkSettings {
            conf_dir: root_dir.join("cni").join("net.d"),
            bin_dir: DEFAULT_BIN_DIR.into(),
            ipam_data_dir: DEFAULT_IPAM_DATA_DIR.into(),
            pod_cidr: DEFAULT_POD_CIDR.into(),
            network_name: DEFAULT_NETWORK_NAME.into(),
            bridge: DEFAULT_BRIDGE.into(),
            plugin_timeout: DEFAULT_PLUGIN_TIMEOUT,
        }
    }

    /// nodelet's default network: bridge + host-local, then portmap.
    pub fn default_conflist(&self) -> Value {
        json!({
            "cniVersion": CNI_VERSION,
            "name": self.network_name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": true,
                    // One node-wide masquerade rule instead of a chain per pod (the
                    // bridge's ipMasq costs two iptables runs per pod start and stop).
                    "ipMasq": false,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": self.pod_cidr}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": self.ipam_data_dir,
                    }
                },
                {"type": "portmap", "capabilities": {"portMappings": true}}
            ]
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("CNI configuration {}: {problem}", .path.display())]
    Config { path: PathBuf, problem: String },
    #[error("CNI: {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("CNI plugin {plugin:?} not found in {}", .bin_dir.display())]
    PluginNotFound { plugin: String, bin_dir: PathBuf },
    #[error("CNI plugin {plugin} {command} failed: {message}")]
    PluginFailed {
        plugin: String,
        command: &'static str,
        message: String,
    },
    #[error("CNI plugin {plugin} {command} did not finish within {after:?}")]
    Timeout {
        plugin: String,
        command: &'static str,
        after: Duration,
    },
    #[error("masquerading the pod network {cidr}: {message}")]
    Masquerade { cidr: String, message: String },
    #[error("CNI plugin {plugin} {command} returned an unusable result: {problem}")]
    BadResult {
        plugin: String,
        command: &'static str,
        problem: String,
    },
}

/// A network configuration list (`.conflist`), as run: kept in a sandbox's state so its
/// removal runs DEL with the configuration ADD used, whatever the files say by then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkList {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    pub name: String,
    pub plugins: Vec<Map<String, Value>>,
}

impl NetworkList {
    /// Parses a `.conflist`: `cniVersion`, `name` and plugins each with a `type`.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<NetworkList, CniError> {
        let config = |problem: String| CniError::Config {
            path: path.to_path_buf(),
            problem,
        };
        let list: NetworkList =
            serde_json::from_slice(bytes).map_err(|e| config(format!("not a conflist: {e}")))?;
        if list.plugins.is_empty() {
            return Err(config("no plugins".into()));
        }
        if list.name.is_empty() {
            return Err(config("no network name".into()));
        }
        for (n, plugin) in list.plugins.iter().enumerate() {
            if !plugin.get("type").is_some_and(|t| t.is_string()) {
                return Err(config(format!("plugin {n} has no type")));
            }
        }
        Ok(list)
    }

    /// Whether DEL must run while the sandbox's network namespace still exists. The plugins
    /// of nodelet's default network need nothing from it: `bridge` (without `ipMasq` or
    /// `macspoofchk`, whose rules are per address) then only releases the address through
    /// `host-local`, and `portmap` works on the host's tables; the kernel deletes the veth
    /// pair with the namespace. Any other plugin may read the interface, so it gets it.
    pub fn del_needs_namespace(&self) -> bool {
        let flag = |plugin: &Map<String, Value>, key: &str| {
            plugin.get(key).and_then(Value::as_bool) == Some(true)
        };
        !self.plugins.iter().all(|plugin| match plugin_type(plugin) {
            "bridge" => {
                let ipam = plugin.get("ipam").and_then(|i| i.get("type"));
                !flag(plugin, "ipMasq")
                    && !flag(plugin, "macspoofchk")
                    && ipam.and_then(Value::as_str) == Some("host-local")
            }
            "portmap" => true,
            _ => false,
        })
    }

    /// The network that brings up `lo` in every sandbox.
    pub fn loopback() -> NetworkList {
        let mut plugin = Map::new();
        plugin.insert("type".into(), "loopback".into());
        NetworkList {
            cni_version: CNI_VERSION.into(),
            name: "cni-loopback".into(),
            plugins: vec![plugin],
        }
    }
}

/// A `hostPort` for the `portmap` plugin (`runtimeConfig.portMappings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    #[serde(rename = "hostIP", default, skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

/// One sandbox's attachment to a network.
#[derive(Debug, Clone)]
pub struct Attachment<'a> {
    /// `CNI_CONTAINERID`: the sandbox's id.
    pub container_id: &'a str,
    /// `CNI_NETNS`; `None` on a DEL after the namespace is gone.
    pub netns: Option<&'a Path>,
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
    /// `CNI_ARGS` (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`, ...).
    pub args: &'a [(String, String)],
    pub port_mappings: &'a [PortMapping],
}

/// A network with its plugins found: what sandboxes attach to.
#[derive(Debug, Clone)]
pub struct Network {
    pub list: NetworkList,
    pub bin_dir: PathBuf,
    pub plugin_timeout: Duration,
    /// The node-wide masquerade rule (two iptables runs), checked on a thread started at
    /// load: an ADD waits for it after its own plugins ran, so loading the network costs a pod
    /// start nothing.
    masquerade: Arc<Mutex<Masquerade>>,
}

/// The masquerade rule's check: running, or its failure (kept, so every ADD fails with it,
/// not only the first).
#[derive(Debug, Default)]
enum Masquerade {
    #[default]
    NotNeeded,
    Checking {
        cidr: String,
        check: JoinHandle<Result<(), String>>,
    },
    Failed {
        cidr: String,
        message: String,
    },
}

impl Network {
    /// The pod network of `settings`: the first `*.conflist` in the configuration
    /// directory, after writing nodelet's default there if it has none.
    pub fn load_or_write_default(settings: &NetworkSettings) -> Result<Network, CniError> {
        let io = |what: String| move |source| CniError::Io { what, source };
        std::fs::create_dir_all(&settings.conf_dir)
            .map_err(io(format!("creating {}", settings.conf_dir.display())))?;
        let mut files = conflists_in(&settings.conf_dir)?;
        if files.is_empty() {
            let path = settings.conf_dir.join(DEFAULT_CONFLIST_FILE);
            let tmp = settings
                .conf_dir
                .join(format!(".{DEFAULT_CONFLIST_FILE}.tmp"));
            let bytes = serde_json::to_vec_pretty(&settings.default_conflist())
                .map_err(|e| io("encoding".into())(std::io::Error::other(e)))?;
            std::fs::write(&tmp, bytes)
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(io(format!("writing {}", path.display())))?;
            files.push(path);
        }
        let path = &files[0];
        let bytes = std::fs::read(path).map_err(io(format!("reading {}", path.display())))?;
        let list = NetworkList::parse(path, &bytes)?;
        let mut network = Network::new(list, settings.bin_dir.clone(), settings.plugin_timeout);
        if network.list.name == settings.network_name && !masquerades_per_pod(&network.list) {
            let (cidr, bridge) = (settings.pod_cidr.clone(), settings.bridge.clone());
            let check = std::thread::spawn(move || ensure_masquerade(&cidr, &bridge));
            let cidr = settings.pod_cidr.clone();
            network.masquerade = Arc::new(Mutex::new(Masquerade::Checking { cidr, check }));
        }
        Ok(network)
    }

    /// Waits for the masquerade rule's check started at load (joined once). A failure fails
    /// this ADD and every later one: pods would have no way out.
    fn masquerade_ready(&self) -> Result<(), CniError> {
        let mut state = self
            .masquerade
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Masquerade::Checking { .. } = &*state
            && let Masquerade::Checking { cidr, check } = std::mem::take(&mut *state)
        {
            let outcome = check
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            if let Err(message) = outcome {
                *state = Masquerade::Failed { cidr, message };
            }
        }
        match &*state {
            Masquerade::Failed { cidr, message } => Err(CniError::Masquerade {
                cidr: cidr.clone(),
                message: message.clone(),
            }),
            Masquerade::NotNeeded | Masquerade::Checking { .. } => Ok(()),
        }
    }

    /// `list` with plugins from `bin_dir` (nothing checked on the node).
    pub fn new(list: NetworkList, bin_dir: PathBuf, plugin_timeout: Duration) -> Network {
        Network {
            list,
            bin_dir,
            plugin_timeout,
            masquerade: Arc::default(),
        }
    }

    /// The loopback network, with plugins from `bin_dir`.
    pub fn loopback(bin_dir: &Path, plugin_timeout: Duration) -> Network {
        Network::new(
            NetworkList::loopback(),
            bin_dir.to_path_buf(),
            plugin_timeout,
        )
    }

    pub fn name(&self) -> &str {
        &self.list.name
    }

    /// ADD: every plugin in order, each given the previous one's result.
    pub fn add(&self, attachment: &Attachment<'_>) -> Result<CniResult, CniError> {
        let mut previous: Option<Value> = None;
        let mut last_plugin = String::new();
        for plugin in self.active_plugins(attachment) {
            last_plugin = plugin_type(plugin).to_string();
            let result = self.run(plugin, "ADD", attachment, previous.as_ref())?;
            previous = Some(result.ok_or_else(|| CniError::BadResult {
                plugin: last_plugin.clone(),
                command: "ADD",
                problem: "no result on standard output".into(),
            })?);
        }
        self.masquerade_ready()?;
        let raw = previous.unwrap_or(Value::Null);
        let ips = parse_ips(&raw).map_err(|problem| CniError::BadResult {
            plugin: last_plugin,
            command: "ADD",
            problem,
        })?;
        Ok(CniResult { raw, ips })
    }

    /// CHECK: every plugin in order, against the result ADD returned.
    pub fn check(&self, attachment: &Attachment<'_>, added: &Value) -> Result<(), CniError> {
        for plugin in self.active_plugins(attachment) {
            self.run(plugin, "CHECK", attachment, Some(added))?;
        }
        Ok(())
    }

    /// DEL: every plugin in reverse order. Plugins make DEL idempotent (a second one, or one
    /// without a prior ADD, succeeds); `added` is ADD's result when known. Without one (ADD
    /// never finished), a plugin that is not installed is skipped: it set nothing up.
    pub fn del(&self, attachment: &Attachment<'_>, added: Option<&Value>) -> Result<(), CniError> {
        for plugin in self.active_plugins(attachment).rev() {
            match self.run(plugin, "DEL", attachment, added) {
                Ok(_) => {}
                Err(CniError::PluginNotFound { .. }) if added.is_none() => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// The plugins that act for `attachment`: all but a `portmap` given no port mappings,
    /// which the reference plugin documents as a pass-through (ADD prints `prevResult`, CHECK
    /// and DEL return at once). Leaving it out spares a plugin run on each ADD and DEL of
    /// the pods without `hostPort`s, the most.
    fn active_plugins<'a>(
        &'a self,
        attachment: &'a Attachment<'_>,
    ) -> impl DoubleEndedIterator<Item = &'a Map<String, Value>> + 'a {
        self.list.plugins.iter().filter(move |plugin| {
            !(plugin_type(plugin) == "portmap" && attachment.port_mappings.is_empty())
        })
    }

    /// Runs one plugin; its parsed standard output (ADD's result, or nothing).
    fn run(
        &self,
        plugin: &Map<String, Value>,
        command: &'static str,
        attachment: &Attachment<'_>,
        previous: Option<&Value>,
    ) -> Result<Option<Value>, CniError> {
        let kind = plugin_type(plugin).to_string();
        let binary = self.bin_dir.join(&kind);
        if kind.contains('/') || !binary.is_file() {
            return Err(CniError::PluginNotFound {
                plugin: kind,
                bin_dir: self.bin_dir.clone(),
            });
        }
        let stdin = plugin_config(&self.list, plugin, previous, attachment.port_mappings);
        let failed = |message: String| CniError::PluginFailed {
            plugin: kind.clone(),
            command,
            message,
        };
        let mut process = Command::new(&binary);
        process
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", attachment.container_id)
            .env(
                "CNI_NETNS",
                attachment.netns.map(Path::as_os_str).unwrap_or_default(),
            )
            .env("CNI_IFNAME", attachment.ifname)
            .env("CNI_PATH", &self.bin_dir)
            .env("CNI_ARGS", cni_args(attachment.args))
            .stdin(Stdio::piped());
        let mut running =
            Running::spawn(process, true).map_err(|e| failed(format!("starting: {e}")))?;
        if let Some(mut pipe) = running.take_stdin() {
            let bytes = serde_json::to_vec(&stdin).unwrap_or_default();
            // A thread: a plugin that does not read its input must not block us.
            std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            });
        }
        let finished = running
            .wait(self.plugin_timeout)
            .map_err(|e| failed(format!("waiting: {e}")))?
            .ok_or_else(|| CniError::Timeout {
                plugin: kind.clone(),
                command,
                after: self.plugin_timeout,
            })?;
        if !finished.status.success() {
            return Err(failed(plugin_failure(
                exit_code(&finished.status),
                &finished.stdout,
                &finished.stderr,
            )));
        }
        if finished.stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&finished.stdout)
            .map(Some)
            .map_err(|e| CniError::BadResult {
                plugin: kind.clone(),
                command,
                problem: format!("not JSON: {e}"),
            })
    }
}

/// What ADD returned: the last plugin's result, and the pod's addresses in it.
#[derive(Debug, Clone, PartialEq)]
pub struct CniResult {
    pub raw: Value,
    pub ips: Vec<IpAddr>,
}

fn plugin_type(plugin: &Map<String, Value>) -> &str {
    plugin.get("type").and_then(Value::as_str).unwrap_or("")
}

/// The `.conflist` files of a directory, sorted by name.
fn conflists_in(dir: &Path) -> Result<Vec<PathBuf>, CniError> {
    let entries = std::fs::read_dir(dir).map_err(|source| CniError::Io {
        what: format!("reading {}", dir.display()),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "conflist"))
        .collect();
    files.sort();
    Ok(files)
}

/// One plugin's stdin: its own configuration with the list's `cniVersion` and `name`, the
/// previous result and, if it declares the capability, the port mappings.
pub fn plugin_config(
    list: &NetworkList,
    plugin: &Map<String, Value>,
    previous: Option<&Value>,
    port_mappings: &[PortMapping],
) -> Value {
    let mut config = plugin.clone();
    config.insert("cniVersion".into(), list.cni_version.clone().into());
    config.insert("name".into(), list.name.clone().into());
    if let Some(previous) = previous {
        config.insert("prevResult".into(), previous.clone());
    }
    let wants_ports = plugin
        .get("capabilities")
        .and_then(|c| c.get("portMappings"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if wants_ports && !port_mappings.is_empty() {
        config.insert(
            "runtimeConfig".into(),
            json!({ "portMappings": port_mappings }),
        );
    }
    Value::Object(config)
}

fn cni_args(args: &[(String, String)]) -> String {
    let mut pairs = vec!["IgnoreUnknown=1".to_string()];
    pairs.extend(args.iter().map(|(k, v)| format!("{k}={v}")));
    pairs.join(";")
}

/// The message of a failed plugin: its JSON error (`msg`, `details`, `code`) when it printed
/// one, else its output, and its standard error.
pub fn plugin_failure(exit_code: i32, stdout: &[u8], stderr: &[u8]) -> String {
    let mut message = match serde_json::from_slice::<Value>(stdout) {
        Ok(error) if error.get("msg").is_some() => {
            let mut text = error["msg"].as_str().unwrap_or_default().to_string();
            if let Some(details) = error.get("details").and_then(Value::as_str)
                && !details.is_empty()
            {
                text.push_str(&format!(": {details}"));
            }
            if let Some(code) = error.get("code").and_then(Value::as_u64) {
                text.push_str(&format!(" (CNI error code {code})"));
            }
            text
        }
        _ => {
            let out = String::from_utf8_lossy(stdout).trim().to_string();
            if out.is_empty() {
                format!("exit code {exit_code}")
            } else {
                format!("exit code {exit_code}: {out}")
            }
        }
    };
    let stderr = String::from_utf8_lossy(stderr);
    let stderr = stderr.trim();
    if !stderr.is_empty() {
        message.push_str(&format!("; stderr: {stderr}"));
    }
    message
}

/// The pod's addresses in an ADD result: `ips[].address` (CNI 0.3 and later; those on an
/// interface inside the sandbox when the result says which), or `ip4.ip`/`ip6.ip` (0.2).
pub fn parse_ips(result: &Value) -> Result<Vec<IpAddr>, String> {
    let address = |text: &str| -> Result<IpAddr, String> {
        let ip = text.split_once('/').map_or(text, |(ip, _)| ip);
        ip.parse()
            .map_err(|_| format!("{text:?} is not an IP address"))
    };
    let mut found = Vec::new();
    if let Some(ips) = result.get("ips").and_then(Value::as_array) {
        let interfaces = result.get("interfaces").and_then(Value::as_array);
        let in_sandbox = |index: &Value| -> bool {
            let Some(interfaces) = interfaces else {
                return true;
            };
            let Some(index) = index.as_u64() else {
                return true;
            };
            interfaces
                .get(usize::try_from(index).unwrap_or(usize::MAX))
                .and_then(|i| i.get("sandbox"))
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
        };
        for ip in ips {
            let text = ip
                .get("address")
                .and_then(Value::as_str)
                .ok_or("an entry of ips has no address")?;
            if ip.get("interface").is_none_or(in_sandbox) {
                found.push(address(text)?);
            }
        }
    } else {
        for key in ["ip4", "ip6"] {
            if let Some(text) = result
                .get(key)
                .and_then(|v| v.get("ip"))
                .and_then(Value::as_str)
            {
                found.push(address(text)?);
            }
        }
    }
    if found.is_empty() {
        return Err("no IP address for the pod".into());
    }
    Ok(found)
}

/// Whether the list's bridge masquerades its pods itself (`ipMasq`, as an older nodelet
/// wrote it).
fn masquerades_per_pod(list: &NetworkList) -> bool {
    list.plugins
        .iter()
        .any(|p| p.get("ipMasq").and_then(Value::as_bool) == Some(true))
}

/// The one rule that lets pods reach beyond the node: traffic from the pod network leaving
/// by another interface than the bridge is masqueraded. Added once (checked first), never
/// removed: it is the node's, like the bridge.
/// `Err` is what went wrong, for [`CniError::Masquerade`].
fn ensure_masquerade(cidr: &str, bridge: &str) -> Result<(), String> {
    let rule = [
        "POSTROUTING",
        "-s",
        cidr,
        "!",
        "-o",
        bridge,
        "-m",
        "comment",
        "--comment",
        "nodelet pod network",
        "-j",
        "MASQUERADE",
    ];
    let iptables = |action: &str| {
        std::process::Command::new("iptables")
            .args(["-w", "10", "-t", "nat", action])
            .args(rule)
            .stdin(std::process::Stdio::null())
            .output()
    };
    let check = iptables("-C").map_err(|e| format!("running iptables: {e}"))?;
    if check.status.success() {
        return Ok(());
    }
    let add = iptables("-A").map_err(|e| format!("running iptables: {e}"))?;
    if add.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&add.stderr).trim().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_default_networks_plugins_give_up_the_namespace_before_del() {
        let default = NetworkSettings::under_root(Path::new("/r")).default_conflist();
        let list = |value: Value| {
            NetworkList::parse(Path::new("x"), &serde_json::to_vec(&value).unwrap()).unwrap()
        };
        assert!(!list(default.clone()).del_needs_namespace());
        let mut masquerading = default.clone();
        masquerading["plugins"][0]["ipMasq"] = true.into();
        assert!(list(masquerading).del_needs_namespace());
        let mut other_ipam = default.clone();
        other_ipam["plugins"][0]["ipam"]["type"] = "dhcp".into();
        assert!(list(other_ipam).del_needs_namespace());
        let mut chained = default;
        chained["plugins"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "tuning"}));
        assert!(list(chained).del_needs_namespace());
    }

    #[test]
    fn ips_from_a_1_0_result_on_the_sandbox_interface() {
        let result = json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "nodelet0", "mac": "aa:bb:cc:dd:ee:ff"},
                {"name": "veth1234", "mac": "aa:bb:cc:dd:ee:01"},
                {"name": "eth0", "mac": "aa:bb:cc:dd:ee:02", "sandbox": "/run/netns/x"}
            ],
            "ips": [
                {"interface": 2, "address": "10.244.0.7/16", "gateway": "10.244.0.1"},
                {"interface": 0, "address": "10.244.0.1/16"},
                {"interface": 2, "address": "fd00:10:244::7/64"}
            ],
            "dns": {}
        });
        assert_eq!(
            parse_ips(&result).unwrap(),
            [
                "10.244.0.7".parse::<IpAddr>().unwrap(),
                "fd00:10:244::7".parse().unwrap()
            ]
        );
    }

    #[test]
    fn ips_without_interfaces_and_from_0_2_results() {
        assert_eq!(
            parse_ips(&json!({"ips": [{"address": "192.168.5.3/24"}]})).unwrap(),
            ["192.168.5.3".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            parse_ips(&json!({"cniVersion": "0.2.0", "ip4": {"ip": "10.1.2.3/24"}})).unwrap(),
            ["10.1.2.3".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            parse_ips(&json!({"ips": []})).unwrap_err(),
            "no IP address for the pod"
        );
        assert_eq!(
            parse_ips(&json!({"ips": [{"address": "banana/24"}]})).unwrap_err(),
            "\"banana/24\" is not an IP address"
        );
    }

    #[test]
    fn plugin_errors_carry_msg_details_and_stderr() {
        let stdout = br#"{"cniVersion":"1.0.0","code":11,"msg":"failed to allocate","details":"range is full"}"#;
        assert_eq!(
            plugin_failure(1, stdout, b"iptables: missing\n"),
            "failed to allocate: range is full (CNI error code 11); stderr: iptables: missing"
        );
        assert_eq!(plugin_failure(2, b"", b""), "exit code 2");
        assert_eq!(plugin_failure(1, b"oops", b""), "exit code 1: oops");
    }

    #[test]
    fn plugin_config_chains_results_and_port_mappings() {
        let settings = NetworkSettings::under_root(Path::new("/var/lib/nodelet"));
        let list: NetworkList = serde_json::from_value(settings.default_conflist()).unwrap();
        assert_eq!(list.name, "nodelet");
        let previous = json!({"cniVersion": "1.0.0", "ips": []});
        let ports = [PortMapping {
            host_port: 8080,
            container_port: 80,
            protocol: "tcp".into(),
            host_ip: String::new(),
        }];
        let bridge = plugin_config(&list, &list.plugins[0], None, &ports);
        assert_eq!(bridge["name"], "nodelet");
        assert_eq!(bridge["cniVersion"], "1.0.0");
        assert_eq!(bridge["type"], "bridge");
        assert_eq!(
            bridge["ipam"]["dataDir"], "/var/lib/nodelet/cni/ipam",
            "addresses are recorded under the root dir"
        );
        assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], "10.244.0.0/16");
        assert!(bridge.get("prevResult").is_none() && bridge.get("runtimeConfig").is_none());
        let portmap = plugin_config(&list, &list.plugins[1], Some(&previous), &ports);
        assert_eq!(portmap["prevResult"], previous);
        assert_eq!(
            portmap["runtimeConfig"],
            json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]})
        );
    }

    #[test]
    fn invalid_conflists_are_named() {
        let path = Path::new("/etc/cni/net.d/bad.conflist");
        let err = NetworkList::parse(path, br#"{"cniVersion":"1.0.0","name":"x","plugins":[]}"#)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "CNI configuration /etc/cni/net.d/bad.conflist: no plugins"
        );
        let err = NetworkList::parse(path, br#"{"cniVersion":"1.0.0","name":"x","plugins":[{}]}"#)
            .unwrap_err();
        assert!(err.to_string().ends_with("plugin 0 has no type"), "{err}");
        assert!(NetworkList::parse(path, b"{").is_err());
    }

    #[test]
    fn writes_the_default_once_and_loads_the_first_conflist() {
        let tmp = tempfile::tempdir().unwrap();
        let mut settings = NetworkSettings::under_root(tmp.path());
        settings.pod_cidr = "10.99.0.0/24".into();
        let network = Network::load_or_write_default(&settings).unwrap();
        assert_eq!(network.name(), "nodelet");
        let written = settings.conf_dir.join(DEFAULT_CONFLIST_FILE);
        assert!(written.is_file());
        std::fs::write(
            settings.conf_dir.join("00-mine.conflist"),
            r#"{"cniVersion":"1.0.0","name":"mine","plugins":[{"type":"ptp"}]}"#,
        )
        .unwrap();
        assert_eq!(
            Network::load_or_write_default(&settings).unwrap().name(),
            "mine"
        );
    }

    #[test]
    fn a_missing_plugin_is_named() {
        let network = Network::loopback(Path::new("/nonexistent/cni"), Duration::from_secs(5));
        let err = network
            .add(&Attachment {
                container_id: "x",
                netns: None,
                ifname: "lo",
                args: &[],
                port_mappings: &[],
            })
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "CNI plugin \"loopback\" not found in /nonexistent/cni"
        );
        let attachment = Attachment {
            container_id: "x",
            netns: None,
            ifname: "lo",
            args: &[],
            port_mappings: &[],
        };
        network.del(&attachment, None).unwrap();
        assert!(network.del(&attachment, Some(&json!({}))).is_err());
    }

    fn script_plugin(dir: &Path, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn one_plugin(dir: &Path, kind: &str, timeout: Duration) -> Network {
        let mut plugin = Map::new();
        plugin.insert("type".into(), kind.into());
        let list = NetworkList {
            cni_version: CNI_VERSION.into(),
            name: "test".into(),
            plugins: vec![plugin],
        };
        Network::new(list, dir.to_path_buf(), timeout)
    }

    #[test]
    fn a_failed_masquerade_check_fails_every_add_after_it() {
        let mut network = Network::new(
            NetworkList::loopback(),
            "/nonexistent".into(),
            Duration::from_secs(1),
        );
        let check = std::thread::spawn(|| Err("iptables: no chain".to_string()));
        network.masquerade = Arc::new(Mutex::new(Masquerade::Checking {
            cidr: "10.244.0.0/16".into(),
            check,
        }));
        for _ in 0..2 {
            assert_eq!(
                network.masquerade_ready().unwrap_err().to_string(),
                "masquerading the pod network 10.244.0.0/16: iptables: no chain"
            );
        }
        let fine = Network::new(
            NetworkList::loopback(),
            "/nonexistent".into(),
            Duration::from_secs(1),
        );
        assert!(fine.masquerade_ready().is_ok());
    }

    #[test]
    fn portmap_runs_only_for_sandboxes_with_port_mappings() {
        let tmp = tempfile::tempdir().unwrap();
        script_plugin(
            tmp.path(),
            "addressing",
            r#"cat >/dev/null; echo '{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.9/8"}]}'"#,
        );
        // Stands in for portmap: says so in a file, and passes the previous result on.
        let ran = tmp.path().join("portmap-ran");
        script_plugin(
            tmp.path(),
            "portmap",
            &format!(
                r#"echo "$CNI_COMMAND" >>{}; cat >/dev/null; echo '{{"cniVersion":"1.0.0","ips":[{{"address":"10.0.0.9/8"}}]}}'"#,
                ran.display()
            ),
        );
        let mut network = one_plugin(tmp.path(), "addressing", Duration::from_secs(20));
        network.list.plugins.push(
            json!({"type": "portmap", "capabilities": {"portMappings": true}})
                .as_object()
                .unwrap()
                .clone(),
        );
        let mut attachment = Attachment {
            container_id: "pod-1",
            netns: Some(Path::new("/proc/self/ns/net")),
            ifname: "eth0",
            args: &[],
            port_mappings: &[],
        };
        let added = network.add(&attachment).unwrap();
        network.del(&attachment, Some(&added.raw)).unwrap();
        assert!(!ran.exists(), "portmap ran without port mappings");
        let ports = [PortMapping {
            host_port: 8080,
            container_port: 80,
            protocol: "tcp".into(),
            host_ip: String::new(),
        }];
        attachment.port_mappings = &ports;
        let added = network.add(&attachment).unwrap();
        network.del(&attachment, Some(&added.raw)).unwrap();
        assert_eq!(std::fs::read_to_string(&ran).unwrap(), "ADD\nDEL\n");
    }

    #[test]
    fn plugins_get_the_cni_environment_and_a_deadline() {
        let tmp = tempfile::tempdir().unwrap();
        script_plugin(
            tmp.path(),
            "echoing",
            r#"cat >/dev/null; printf '{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.9/8"}],"env":"%s %s %s %s"}' "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_IFNAME" "$CNI_ARGS""#,
        );
        script_plugin(tmp.path(), "slow", "sleep 30");
        script_plugin(
            tmp.path(),
            "failing",
            r#"echo '{"code":7,"msg":"bad config"}'; echo 'details on stderr' >&2; exit 1"#,
        );
        let attachment = Attachment {
            container_id: "pod-1",
            netns: Some(Path::new("/proc/self/ns/net")),
            ifname: "eth0",
            args: &[("K8S_POD_NAME".into(), "web".into())],
            port_mappings: &[],
        };
        let added = one_plugin(tmp.path(), "echoing", Duration::from_secs(20))
            .add(&attachment)
            .unwrap();
        assert_eq!(added.ips, ["10.0.0.9".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            added.raw["env"],
            "ADD pod-1 eth0 IgnoreUnknown=1;K8S_POD_NAME=web"
        );
        let err = one_plugin(tmp.path(), "slow", Duration::from_millis(200))
            .del(&attachment, None)
            .unwrap_err();
        assert!(
            matches!(err, CniError::Timeout { command: "DEL", .. }),
            "{err}"
        );
        let err = one_plugin(tmp.path(), "failing", Duration::from_secs(20))
            .add(&attachment)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "CNI plugin failing ADD failed: bad config (CNI error code 7); stderr: details on stderr"
        );
    }
}
