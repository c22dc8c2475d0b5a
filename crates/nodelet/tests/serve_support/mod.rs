//! A running `nodelet serve` for kubectl tests: free port, its own data, root and kubectl cache
//! directories, stopped when dropped; and the real kubectl clients to drive it with.
// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nodelet_testbed::BedInfo;

/// The client tests use unless they run once per client.
pub const KUBECTL: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";
/// `/usr/bin/kubectl`: the SDK's dispatcher (1.32) that runs the client matching the server
/// (against nodelet, 1.33).
pub const KUBECTL_DEFAULT: &str = "/usr/bin/kubectl";
pub const KUBECTL_1_32: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.32";
pub const KUBECTL_1_33: &str = KUBECTL;
/// Debian's kubernetes-client, unpacked by `scripts/install-deps`.
pub const KUBECTL_1_20: &str = "/usr/local/lib/nodelet-test/kubectl-1.20/usr/bin/kubectl";

/// Whether `bin` exists; prints a skip note when it does not.
pub fn installed(bin: &str) -> bool {
    let there = Path::new(bin).exists();
    if !there {
        eprintln!("skipped: {bin} is not installed");
    }
    there
}

/// The node's name as `nodelet serve` registers it.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_lowercase()
}

/// A running `nodelet serve` with its own root directory, stopped when dropped.
pub struct Server {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    /// How many manifests [`Server::create_from_yaml`] wrote (their file names).
    manifests: AtomicUsize,
}

impl Server {
    /// [`Server::start`] (no bed) when the default client ([`KUBECTL`]) is installed; else
    /// `None`, with a skip note.
    pub fn start_if_kubectl_installed() -> Option<Server> {
        installed(KUBECTL).then(|| Server::start(None))
    }

    /// Starts `nodelet serve` with the handlers `runc` (the default), `crun` and the seed's
    /// `myconfiguration` (crun with its own state directory); with a bed, its config trusts the bed's registries (A as
    /// insecure, B and C through the bed's CA). Node credential files are looked up in the
    /// root dir, the server's directory (cwd) and `$HOME`, all inside the test's directory.
    pub fn start(bed: Option<&BedInfo>) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("nodelet-serve-")
            .tempdir()
            .expect("temp dir");
        Server::start_in(dir, bed, &[], "")
    }

    /// [`Server::start`] with more `nodelet serve` flags (`--enable-admission-plugins=...`);
    /// a [`Server::restart`] drops them.
    pub fn start_with_serve_args(bed: Option<&BedInfo>, serve_args: &[&str]) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("nodelet-serve-")
            .tempdir()
            .expect("temp dir");
        Server::start_in(dir, bed, serve_args, "")
    }

    /// [`Server::start`] with more lines in its config file (top-level keys only).
    #[allow(dead_code)] // Not every test binary changes the config.
    pub fn start_with_config(bed: Option<&BedInfo>, extra_config: &str) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("nodelet-serve-")
            .tempdir()
            .expect("temp dir");
        Server::start_in(dir, bed, &[], extra_config)
    }

    /// SIGKILLs `nodelet serve`; its shims and containers go on.
    #[allow(dead_code)] // Not every test binary restarts its server.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts `nodelet serve` again on the same data, root and log directories.
    #[allow(dead_code)] // Not every test binary restarts its server.
    pub fn restart(mut self, bed: Option<&BedInfo>) -> Server {
        self.kill();
        let dir = tempfile::Builder::new()
            .prefix("unused-")
            .tempdir()
            .expect("temp dir");
        let dir = std::mem::replace(&mut self.dir, dir);
        drop(self);
        Server::start_in(dir, bed, &[], "")
    }

    /// `--root-dir`: pods are under `pods/<uid>`.
    #[allow(dead_code)] // Not every test binary restarts its server.
    pub fn root_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Where the containers' CRI logs go.
    #[allow(dead_code)] // Not every test binary restarts its server.
    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    fn start_in(
        dir: tempfile::TempDir,
        bed: Option<&BedInfo>,
        serve_args: &[&str],
        extra_config: &str,
    ) -> Server {
        let config = dir.path().join("config.toml");
        let state = dir.path().join("runtimes");
        let registries = bed.map_or(String::new(), |bed| {
            let ca = bed.ca_cert.display();
            format!(
                "[registries.\"{a}\"]\ninsecure = true\n\
                 [registries.\"{b}\"]\nca_file = \"{ca}\"\n\
                 [registries.\"{c}\"]\nca_file = \"{ca}\"\n",
                a = bed.plain.host,
                b = bed.basic.host,
                c = bed.token.host
            )
        });
        std::fs::write(
            &config,
            format!(
                "default_runtime = \"runc\"\n\
                 log_dir = \"{logs}\"\n\
                 {extra_config}\n\
                 [runtimes.runc]\nroot = \"{s}/runc\"\n\
                 [runtimes.crun]\nroot = \"{s}/crun\"\n\
                 [runtimes.myconfiguration]\nruntime_path = \"crun\"\nroot = \"{s}/myconfiguration\"\n\
                 {registries}",
                logs = dir.path().join("logs").display(),
                s = state.display()
            ),
        )
        .unwrap();
        let port = {
            let probe = TcpListener::bind("127.0.0.1:0").expect("free port");
            probe.local_addr().unwrap().port()
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_nodelet"))
            .arg("--config")
            .arg(&config)
            .arg("--root-dir")
            .arg(dir.path().join("state"))
            .args(["serve", "--data-dir"])
            .arg(dir.path().join("server"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(serve_args)
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nodelet serve");
        let want = format!(
            "export KUBECONFIG={}",
            dir.path().join("server/kubeconfig").display()
        );
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = Vec::new();
        loop {
            match lines.next() {
                Some(Ok(line)) if line == want => break,
                Some(Ok(line)) => seen.push(line),
                _ => panic!("nodelet serve ended before printing {want:?}: {seen:?}"),
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            dir,
            port,
            manifests: AtomicUsize::new(0),
        }
    }

    /// The test's directory (the server's cwd and `$HOME`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("server/kubeconfig")
    }

    /// kubectl `bin` against this server.
    pub fn client<'a>(&'a self, bin: &'a str) -> Kubectl<'a> {
        Kubectl { server: self, bin }
    }

    /// Runs the default client ([`KUBECTL`]) and expects success.
    pub fn kubectl(&self, args: &[&str]) -> String {
        self.client(KUBECTL).ok(args)
    }

    /// `binary` (a kubectl) with this server's kubeconfig and cache, not yet run.
    #[allow(dead_code)]
    pub fn kubectl_command(&self, binary: &str, args: &[&str]) -> Command {
        let mut command = Command::new(binary);
        command
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(
                self.dir
                    .path()
                    .join(format!("cache-{}", binary.replace('/', "_"))),
            )
            .args(args)
            .env("HOME", self.dir.path());
        command
    }

    /// Runs `binary` with `stdin` (none: /dev/null), whatever its exit status.
    #[allow(dead_code)]
    pub fn run_kubectl(
        &self,
        binary: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> std::process::Output {
        use std::io::Write as _;
        let mut child = self
            .kubectl_command(binary, args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(input).unwrap();
        }
        child.wait_with_output().expect("kubectl output")
    }

    pub fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// Writes `yaml` to a file in the test's directory and creates its objects with the
    /// default client's `kubectl create -f`; returns its output.
    pub fn create_from_yaml(&self, yaml: &str) -> String {
        let n = self.manifests.fetch_add(1, Ordering::Relaxed) + 1;
        let file = self.write(&format!("manifest-{n}.yaml"), yaml);
        self.kubectl(&["create", "-f", &file])
    }

    /// `kubectl get pod POD -o jsonpath=JSONPATH` (default namespace) with the default client.
    pub fn pod_jsonpath(&self, pod: &str, jsonpath: &str) -> String {
        self.kubectl(&["get", "pod", pod, "-o", &format!("jsonpath={jsonpath}")])
    }

    /// Polls `check` on [`Server::pod_jsonpath`] for up to `secs`; returns the last value.
    pub fn wait_for_jsonpath(
        &self,
        secs: u64,
        pod: &str,
        jsonpath: &str,
        check: impl Fn(&str) -> bool,
    ) -> String {
        let output = format!("jsonpath={jsonpath}");
        self.wait_for(secs, &["get", "pod", pod, "-o", &output], check)
    }

    /// `kubectl wait --for=condition=Ready pod/POD --timeout=SECSs` with the default client.
    pub fn wait_ready(&self, pod: &str, secs: u64) -> String {
        let pod = format!("pod/{pod}");
        let timeout = format!("--timeout={secs}s");
        self.kubectl(&["wait", "--for=condition=Ready", &pod, &timeout])
    }

    /// `(type, reason, message)` of the pod's events (default namespace), as listed.
    pub fn pod_events(&self, pod: &str) -> Vec<(String, String, String)> {
        let selector = format!("involvedObject.name={pod}");
        let out = self.kubectl(&["get", "events", "--field-selector", &selector, "-o", "json"]);
        let list: serde_json::Value = serde_json::from_str(&out).unwrap();
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
                (text("type"), text("reason"), text("message"))
            })
            .collect()
    }

    /// Polls `check` on the default client's output of `args` for up to `secs`.
    pub fn wait_for(&self, secs: u64, args: &[&str], check: impl Fn(&str) -> bool) -> String {
        self.client(KUBECTL).wait_for(secs, args, check)
    }

    /// Waits until the node has registered itself.
    pub fn wait_for_node(&self) {
        let node = hostname();
        self.wait_for(
            10,
            &["get", "nodes", "-o", "jsonpath={.items[*].metadata.name}"],
            |out| out == node,
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Containers outlive a killed nodelet (by design): let the kubelet stop and remove
        // whatever pods the test left (also when it failed midway), then kill the server.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self
                .kubectl_command(
                    KUBECTL,
                    &[
                        "delete",
                        "pods",
                        "--all",
                        "--all-namespaces",
                        "--grace-period=0",
                        "--wait=true",
                        "--timeout=30s",
                    ],
                )
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            // A pod deleted at once (grace 0) is gone from the API while its worker still
            // stops it: wait for every worker to have removed its pod directory.
            let pods = self.root_dir().join("pods");
            let deadline = Instant::now() + Duration::from_secs(30);
            while std::fs::read_dir(&pods).is_ok_and(|mut d| d.next().is_some())
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One kubectl client against one server.
pub struct Kubectl<'a> {
    server: &'a Server,
    pub bin: &'a str,
}

/// What one kubectl run printed.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Kubectl<'_> {
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.bin);
        cmd.arg("--kubeconfig")
            .arg(self.server.kubeconfig())
            .arg("--cache-dir")
            .arg(self.server.dir.path().join("cache"))
            .args(args)
            .current_dir(self.server.dir.path())
            .env("HOME", self.server.dir.path());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Ran {
        self.run_with_stdin(args, "")
    }

    /// Runs with `stdin` as standard input (`kubectl apply -f - <<EOF`).
    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Ran {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).unwrap();
        drop(input);
        let out = child.wait_with_output().expect("kubectl output");
        Ran {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let ran = self.run(args);
        assert_eq!(ran.code, Some(0), "{} {args:?}: {ran:?}", self.bin);
        ran.stdout
    }

    /// Runs with standard input and expects success; returns stdout.
    pub fn ok_with_stdin(&self, args: &[&str], stdin: &str) -> String {
        let ran = self.run_with_stdin(args, stdin);
        assert_eq!(ran.code, Some(0), "{} {args:?}: {ran:?}", self.bin);
        ran.stdout
    }

    /// Runs and expects failure (exit 1); returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let ran = self.run(args);
        assert_eq!(
            ran.code,
            Some(1),
            "{} {args:?} should fail: {ran:?}",
            self.bin
        );
        ran.stderr
    }

    /// Polls `check` on the output of `args` for up to `secs`; returns the last output.
    pub fn wait_for(&self, secs: u64, args: &[&str], check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let out = self.ok(args);
            if check(&out) {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "{} {args:?} never matched:\n{out}",
                self.bin
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

mod per_kubectl;
