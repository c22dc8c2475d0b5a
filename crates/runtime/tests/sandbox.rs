//! Pod sandboxes with real namespaces and Debian's CNI plugins, and containers of the
//! test-bed `tiny` image (busybox) in them under every installed OCI runtime. Privileged: run
//! as root, under `scripts/with-testbed`.
//!
//! Each test has a bridge and a /24 of its own, so tests running in parallel do not meet.

mod common;

use std::cell::RefCell;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::{Harness, Launched, PATH_ENV, WAIT, launch, our_mounts};
use nodelet_runtime::cni::{Attachment, Network, NetworkSettings, PortMapping};
use nodelet_runtime::container::Exit;
use nodelet_runtime::handlers::Handler;
use nodelet_runtime::pause::PauseLauncher;
use nodelet_runtime::sandbox::{Sandbox, SandboxConfig};
use nodelet_sys::process::ExitStatus;

/// A CNI network private to one test. At the end (also after a failure) the sandboxes made
/// through it are removed (CNI DEL: addresses and masquerade rules) and its bridge deleted.
struct TestNetwork {
    settings: NetworkSettings,
    network: Network,
    sandboxes: RefCell<Vec<PathBuf>>,
}

impl TestNetwork {
    fn new(root: &Path, bridge: &str, cidr: &str) -> TestNetwork {
        let mut settings = NetworkSettings::under_root(&root.join("root"));
        settings.bridge = bridge.into();
        settings.pod_cidr = cidr.into();
        // Its own name, so its own record in the host-wide IPAM directory: in nodelet's, the
        // other CIDR would reset host-local's round robin for the real pod network, which then
        // hands out addresses the host still has stale neighbour entries for.
        settings.network_name = bridge.into();
        let network = Network::load_or_write_default(&settings).unwrap();
        TestNetwork {
            settings,
            network,
            sandboxes: RefCell::new(Vec::new()),
        }
    }

    fn create(&self, dir: &Path, config: &SandboxConfig) -> Sandbox {
        self.sandboxes.borrow_mut().push(dir.to_path_buf());
        let network = (!config.host_network).then_some(&self.network);
        Sandbox::create(dir, config, network).unwrap()
    }

    /// host-local's record of an address in use.
    fn lease(&self, ip: IpAddr) -> PathBuf {
        self.settings
            .ipam_data_dir
            .join(&self.settings.network_name)
            .join(ip.to_string())
    }
}

impl Drop for TestNetwork {
    fn drop(&mut self) {
        for dir in self.sandboxes.borrow().iter() {
            let _ = Sandbox::remove(dir);
        }
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.settings.bridge])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn config(id: &str, hostname: &str) -> SandboxConfig {
    SandboxConfig {
        id: format!("{id}-{}", std::process::id()),
        hostname: hostname.into(),
        resolv_conf: "nameserver 192.0.2.53\nsearch example.test\n".into(),
        ..Default::default()
    }
}

fn inode(path: impl AsRef<Path>) -> u64 {
    std::fs::metadata(path).unwrap().ino()
}

/// `ns:[inode]` as `readlink /proc/self/ns/<kind>` prints it inside a container.
fn ns_link(kind: &str, file: &Path) -> String {
    format!("{kind}:[{}]", inode(file))
}

fn run_in(
    harness: &Harness,
    handler: &Handler,
    sandbox: &Sandbox,
    id: &str,
    script: &str,
) -> (Exit, String, String) {
    let launched = launch_in(harness, handler, sandbox, id, script);
    let exit = launched
        .container
        .wait(Some(WAIT))
        .unwrap()
        .unwrap_or_else(|| panic!("{}: {id} still running after {WAIT:?}", handler.name));
    let (stdout, stderr) = (
        std::fs::read_to_string(&launched.stdout).unwrap(),
        std::fs::read_to_string(&launched.stderr).unwrap(),
    );
    delete(launched);
    (exit, stdout, stderr)
}

fn launch_in(
    harness: &Harness,
    handler: &Handler,
    sandbox: &Sandbox,
    id: &str,
    script: &str,
) -> Launched {
    let id = format!("{id}-{}-{}", handler.name, std::process::id());
    launch(
        harness,
        handler,
        &id,
        "tiny",
        &["/bin/sh", "-c", script],
        |spec| {
            spec.env = vec![PATH_ENV.into()];
            sandbox.join(spec);
        },
    )
}

fn delete(launched: Launched) {
    launched.container.delete().unwrap();
    launched.bundle.remove().unwrap();
}

/// Lines of `ip -4 -o addr show eth0`: the address of eth0.
fn eth0_address(output: &str) -> Option<String> {
    output.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        (words.nth(1) == Some("eth0")).then(|| {
            words
                .skip_while(|w| *w != "inet")
                .nth(1)
                .map(|a| a.split('/').next().unwrap_or_default().to_string())
        })?
    })
}

#[test]
fn containers_share_their_sandbox_and_reach_another_pod() {
    let harness = Harness::new(&["tiny"]);
    let net = TestNetwork::new(harness.tmp.path(), "nlt-share", "10.250.1.0/24");
    for handler in harness.installed() {
        let name = handler.name.clone();
        let dir_a = harness.tmp.path().join(format!("sandbox-a-{name}"));
        let dir_b = harness.tmp.path().join(format!("sandbox-b-{name}"));
        let a = net.create(&dir_a, &config("a", "pod-a"));
        let b = net.create(&dir_b, &config("b", "pod-b"));
        let ip_a = a.ips()[0];
        let ip_b = b.ips()[0];
        assert_ne!(ip_a, ip_b, "{name}");
        assert!(ip_a.to_string().starts_with("10.250.1."), "{ip_a}");

        let server = launch_in(
            &harness,
            &handler,
            &a,
            "server",
            "mkdir -p /tmp/www && echo served-by-a > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www",
        );
        let script = "hostname; ip -4 -o addr show eth0; ip -o link show lo; \
             for k in net ipc uts; do readlink /proc/self/ns/$k; done; cat /etc/resolv.conf; \
             echo shared > /dev/shm/from-sidecar; \
             for i in $(seq 100); do wget -q -O - http://127.0.0.1:8080/ && exit 0; sleep 0.1; done; exit 9";
        let (exit, out, err) = run_in(&harness, &handler, &a, "sidecar", script);
        assert_eq!(
            exit,
            Exit::Status(ExitStatus::Exited(0)),
            "{name}: {out}{err}"
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "pod-a", "{name}: {out}");
        assert_eq!(eth0_address(&out), Some(ip_a.to_string()), "{name}: {out}");
        assert!(
            lines[2].contains("lo:") && lines[2].contains("UP"),
            "{name}: loopback down: {out}"
        );
        for kind in ["net", "ipc", "uts"] {
            let pinned = ns_link(kind, &dir_a.join("ns").join(kind));
            assert!(
                lines.contains(&pinned.as_str()),
                "{name}: {pinned} not in {out}"
            );
            let server_ns = std::fs::read_link(format!("/proc/{}/ns/{kind}", server.pid)).unwrap();
            assert_eq!(
                server_ns.to_string_lossy(),
                pinned,
                "{name}: the server shares {kind}"
            );
        }
        assert!(
            out.contains("nameserver 192.0.2.53\nsearch example.test\n"),
            "{name}: {out}"
        );
        assert!(
            out.ends_with("served-by-a\n"),
            "{name}: localhost in the pod: {out}"
        );
        let shm = std::fs::read_to_string(dir_a.join("shm/from-sidecar"));
        assert_eq!(shm.unwrap(), "shared\n", "{name}: the pod's /dev/shm");

        let script = format!(
            "hostname; ip -4 -o addr show eth0; \
             for i in $(seq 100); do wget -q -O - http://{ip_a}:8080/ && exit 0; sleep 0.1; done; exit 9"
        );
        let (exit, out, err) = run_in(&harness, &handler, &b, "client", &script);
        assert_eq!(
            exit,
            Exit::Status(ExitStatus::Exited(0)),
            "{name}: {out}{err}"
        );
        assert!(out.starts_with("pod-b\n"), "{name}: {out}");
        assert_eq!(eth0_address(&out), Some(ip_b.to_string()), "{name}: {out}");
        assert!(
            out.ends_with("served-by-a\n"),
            "{name}: across the bridge: {out}"
        );

        delete(server);
        for (sandbox, dir) in [(a, &dir_a), (b, &dir_b)] {
            let veth = host_veth(&sandbox);
            let ip = sandbox.ips()[0];
            assert!(net.lease(ip).exists(), "{name}: host-local records {ip}");
            let netns = inode(dir.join("ns/net"));
            Sandbox::remove(dir).unwrap();
            Sandbox::remove(dir).unwrap();
            assert!(!dir.exists(), "{name}");
            assert!(!net.lease(ip).exists(), "{name}: {ip} released");
            // The kernel deletes the veth pair with the namespace, in its own time.
            let veth_path = Path::new("/sys/class/net").join(&veth);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while veth_path.exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            assert!(!veth_path.exists(), "{name}: {veth} left");
            assert!(
                !namespace_in_use("net", netns),
                "{name}: the pod netns is still held"
            );
            assert!(
                !iptables_nat().contains(sandbox.id()),
                "{name}: masquerade rules left"
            );
        }
        assert_eq!(our_mounts(&harness), 0, "{name}: mounts left");
        assert!(handler.runtime().list().unwrap().is_empty(), "{name}");
    }
}

#[test]
fn a_host_port_reaches_the_pod() {
    let harness = Harness::new(&["tiny"]);
    let net = TestNetwork::new(harness.tmp.path(), "nlt-port", "10.250.5.0/24");
    let node_ip = node_ipv4();
    for (n, handler) in harness.installed().into_iter().enumerate() {
        let name = handler.name.clone();
        let host_port = 31480 + u16::try_from(n).unwrap();
        let dir = harness.tmp.path().join(format!("sandbox-port-{name}"));
        let mut ported = config("port", "pod-port");
        ported.port_mappings = vec![PortMapping {
            host_port,
            container_port: 8080,
            protocol: "tcp".into(),
            host_ip: String::new(),
        }];
        let sandbox = net.create(&dir, &ported);
        let server = launch_in(
            &harness,
            &handler,
            &sandbox,
            "ported",
            "mkdir -p /tmp/www && echo through-the-host-port > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www",
        );
        let body = http_get(&format!("{node_ip}:{host_port}"));
        assert_eq!(body.as_deref(), Some("through-the-host-port\n"), "{name}");
        delete(server);
        Sandbox::remove(&dir).unwrap();
        let rules = iptables_nat();
        assert!(
            !rules.contains(&format!("--dport {host_port}")),
            "{name}: {rules}"
        );
    }
}

/// The node's first global IPv4 address.
fn node_ipv4() -> String {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "route", "get", "192.0.2.254"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut words = text.split_whitespace();
    words
        .find(|w| *w == "src")
        .and_then(|_| words.next())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no source address in {text:?}"))
}

/// The body of `GET /` at `address`, retried while the server starts.
fn http_get(address: &str) -> Option<String> {
    use std::io::{Read, Write};
    for _ in 0..100 {
        if let Ok(mut stream) = std::net::TcpStream::connect(address) {
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let request = format!("GET / HTTP/1.0\r\nHost: {address}\r\n\r\n");
            let mut response = String::new();
            if stream.write_all(request.as_bytes()).is_ok()
                && stream.read_to_string(&mut response).is_ok()
                && let Some((_, body)) = response.split_once("\r\n\r\n")
            {
                return Some(body.to_string());
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    None
}

#[test]
fn a_host_network_container_sees_the_node() {
    let harness = Harness::new(&["tiny"]);
    let net = TestNetwork::new(harness.tmp.path(), "nlt-host", "10.250.3.0/24");
    let node_hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let node_links: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        // Other tests' bridges and veths come and go meanwhile.
        .filter(|l| !l.starts_with("veth") && !l.starts_with("nlt-"))
        .collect();
    for handler in harness.installed() {
        let name = handler.name.clone();
        let dir = harness.tmp.path().join(format!("sandbox-host-{name}"));
        let mut host = config("host", "ignored");
        host.host_network = true;
        let sandbox = net.create(&dir, &host);
        assert!(
            sandbox.ips().is_empty(),
            "{name}: the kubelet reports the node's IPs"
        );
        assert!(!dir.join("ns/net").exists() && !dir.join("ns/uts").exists());
        let (exit, out, err) = run_in(
            &harness,
            &handler,
            &sandbox,
            "hostnet",
            "hostname; ls /sys/class/net; readlink /proc/self/ns/ipc",
        );
        assert_eq!(exit, Exit::Status(ExitStatus::Exited(0)), "{name}: {err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], node_hostname.trim(), "{name}");
        for link in &node_links {
            assert!(
                lines.contains(&link.as_str()),
                "{name}: {link} not seen in {out}"
            );
        }
        let pinned_ipc = ns_link("ipc", &dir.join("ns/ipc"));
        assert!(
            lines.contains(&pinned_ipc.as_str()),
            "{name}: IPC still the pod's: {out}"
        );
        Sandbox::remove(&dir).unwrap();
        assert!(!dir.exists());
        assert_eq!(our_mounts(&harness), 0, "{name}");
    }
}

#[test]
fn a_shared_process_namespace_has_a_pause_process_as_pid_1() {
    let harness = Harness::new(&["tiny"]);
    let net = TestNetwork::new(harness.tmp.path(), "nlt-pid", "10.250.4.0/24");
    for handler in harness.installed() {
        let name = handler.name.clone();
        let dir = harness.tmp.path().join(format!("sandbox-pid-{name}"));
        let mut shared = config("pid", "pod-p");
        shared.share_process_namespace = true;
        // The host's busybox stands in for `nodelet pause` (this test has no nodelet binary).
        shared.pause = Some(PauseLauncher {
            program: "/bin/busybox".into(),
            args: ["sh", "-c", "while :; do sleep 1; done"]
                .map(String::from)
                .to_vec(),
        });
        let sandbox = net.create(&dir, &shared);
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("sandbox.json")).unwrap()).unwrap();
        let pause_pid = state["pause"]["pid"].as_u64().unwrap();
        let sleeper = launch_in(&harness, &handler, &sandbox, "sleeper", "exec sleep 1000");
        let (exit, out, err) = run_in(
            &harness,
            &handler,
            &sandbox,
            "looker",
            "tr '\\0' ' ' </proc/1/cmdline; echo; ps -o pid,args",
        );
        assert_eq!(exit, Exit::Status(ExitStatus::Exited(0)), "{name}: {err}");
        assert!(
            out.starts_with("sh -c while"),
            "{name}: PID 1 is the pause: {out}"
        );
        assert!(
            out.contains("sleep 1000"),
            "{name}: the other container's process: {out}"
        );
        delete(sleeper);
        Sandbox::remove(&dir).unwrap();
        assert!(
            !Path::new(&format!("/proc/{pause_pid}")).exists(),
            "{name}: the pause process is gone"
        );
        assert!(!dir.exists());
        assert_eq!(our_mounts(&harness), 0, "{name}");
    }
}

#[test]
fn reopened_and_half_removed_sandboxes_are_torn_down() {
    common::require_root();
    let tmp = tempfile::Builder::new()
        .prefix("nodelet-sb-")
        .tempdir()
        .unwrap();
    let net = TestNetwork::new(tmp.path(), "nlt-reopen", "10.250.2.0/24");
    let ours = tmp.path().to_string_lossy().into_owned();
    let mounts = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&ours))
            .count()
    };

    // A restarted nodelet finds the sandbox, and creating it again changes nothing.
    let dir = tmp.path().join("sandbox");
    let made = net.create(&dir, &config("reopen", "pod-r"));
    assert_eq!(mounts(), 4, "net, ipc and uts pinned, shm");
    assert!(made.is_intact());
    made.check_network().unwrap();
    let opened = Sandbox::open(&dir).unwrap();
    assert_eq!(opened, made);
    assert_eq!(opened.hostname(), Some("pod-r"));
    let again = Sandbox::create(&dir, &config("reopen", "pod-r"), Some(&net.network)).unwrap();
    assert_eq!(again.ips(), made.ips());
    assert_eq!(mounts(), 4);

    // A crash in the middle of a removal: DEL done, namespaces still pinned.
    let ip = made.ips()[0];
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("sandbox.json")).unwrap()).unwrap();
    let netns = dir.join("ns/net");
    let attachment = Attachment {
        container_id: made.id(),
        netns: Some(&netns),
        ifname: "eth0",
        args: &[],
        port_mappings: &[],
    };
    net.network
        .del(&attachment, Some(&state["cni_result"]))
        .unwrap();
    assert!(!net.lease(ip).exists());
    Sandbox::remove(&dir).unwrap();
    assert!(!dir.exists() && !net.lease(ip).exists());
    assert!(!iptables_nat().contains(made.id()));

    // A crash in the middle of a creation: state written, nothing attached yet.
    let dir = tmp.path().join("half");
    let made = net.create(&dir, &config("half", "pod-h"));
    let made_ips = made.ips().to_vec();
    let state = std::fs::read_to_string(dir.join("sandbox.json")).unwrap();
    let mut state: serde_json::Value = serde_json::from_str(&state).unwrap();
    state["ready"] = false.into();
    state["cni_result"] = serde_json::Value::Null;
    std::fs::write(dir.join("sandbox.json"), state.to_string()).unwrap();
    // Creating it again replaces the half-made one.
    let remade = Sandbox::create(&dir, &config("half", "pod-h"), Some(&net.network)).unwrap();
    assert_eq!(remade.ips().len(), 1);
    let remade_ips = remade.ips().to_vec();
    assert!(Sandbox::open(&dir).unwrap().ips() == remade.ips());
    drop(made);
    Sandbox::remove(&dir).unwrap();
    Sandbox::remove(&dir).unwrap();
    assert!(!dir.exists());
    assert_eq!(mounts(), 0);
    // The record of addresses is host-wide (other tests' pods are in it): ours are gone.
    for ip in made_ips.iter().chain(&remade_ips) {
        assert!(!net.lease(*ip).exists(), "address {ip} left");
    }
}

#[test]
fn a_failing_network_leaves_nothing() {
    common::require_root();
    let tmp = tempfile::Builder::new()
        .prefix("nodelet-sb-")
        .tempdir()
        .unwrap();
    let mut settings = NetworkSettings::under_root(&tmp.path().join("root"));
    settings.bridge = "nlt-fail".into();
    let mut network = Network::load_or_write_default(&settings).unwrap();
    // A subnet the bridge plugin's IPAM refuses.
    let bridge = network
        .list
        .plugins
        .iter_mut()
        .find(|p| p.get("type").and_then(|t| t.as_str()) == Some("bridge"))
        .unwrap();
    bridge["ipam"]["ranges"][0][0]["subnet"] = "not-a-cidr".into();
    let dir = tmp.path().join("sandbox");
    let err = Sandbox::create(&dir, &config("fail", "pod-f"), Some(&network)).unwrap_err();
    let text = err.to_string();
    println!("{text}");
    assert!(text.contains("CNI plugin bridge ADD failed"), "{text}");
    assert!(text.contains("not-a-cidr"), "the plugin's message: {text}");
    assert!(!dir.exists(), "a failed creation is undone");
    let _ = std::process::Command::new("ip")
        .args(["link", "del", "nlt-fail"])
        .stderr(std::process::Stdio::null())
        .status();
}

/// The host end of the sandbox's veth, from the CNI result kept in its state.
fn host_veth(sandbox: &Sandbox) -> String {
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sandbox.dir().join("sandbox.json")).unwrap())
            .unwrap();
    state["cni_result"]["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| {
            i["name"].as_str().is_some_and(|n| n.starts_with("veth")) && i.get("sandbox").is_none()
        })
        .and_then(|i| i["name"].as_str())
        .expect("a host veth in the result")
        .to_string()
}

/// Whether any process is in the namespace, or any mount pins it.
fn namespace_in_use(kind: &str, inode: u64) -> bool {
    let link = format!("{kind}:[{inode}]");
    let held = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| {
            std::fs::read_link(e.path().join("ns").join(kind))
                .is_ok_and(|l| l.to_string_lossy() == link)
        });
    let pinned = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(&link);
    held || pinned
}

fn iptables_nat() -> String {
    let out = std::process::Command::new("iptables")
        .args(["-t", "nat", "-S"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}
