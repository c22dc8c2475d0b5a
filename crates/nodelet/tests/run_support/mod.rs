//! The `nodelet run` harness shared by test binaries: a node directory with its config, the
//! real binary started on a pod file, its output collected.
#![allow(dead_code)] // Each test binary uses part of it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nodelet_testbed::BedInfo;

/// No test's pod may take longer.
pub const LIMIT: Duration = Duration::from_secs(90);

pub struct Node {
    pub root: tempfile::TempDir,
    pub config: PathBuf,
}

impl Node {
    /// A node whose config trusts the bed (A insecure, B and C through the CA), with runc
    /// (the default) and crun, each keeping its state in the node's directory.
    pub fn new(bed: &BedInfo) -> Node {
        let root = tempfile::Builder::new()
            .prefix("nodelet-run-")
            .tempdir()
            .unwrap();
        let config = root.path().join("config.toml");
        let ca = bed.ca_cert.display();
        let state = root.path().join("runtimes");
        std::fs::write(
            &config,
            format!(
                "default_runtime = \"runc\"\n\
                 log_dir = \"{logs}\"\n\
                 [runtimes.runc]\nroot = \"{s}/runc\"\n\
                 [runtimes.crun]\nroot = \"{s}/crun\"\n\
                 [registries.\"{a}\"]\ninsecure = true\n\
                 [registries.\"{b}\"]\nca_file = \"{ca}\"\n\
                 [registries.\"{c}\"]\nca_file = \"{ca}\"\n",
                s = state.display(),
                logs = root.path().join("logs").display(),
                a = bed.plain.host,
                b = bed.basic.host,
                c = bed.token.host
            ),
        )
        .unwrap();
        Node { root, config }
    }

    pub fn write_pod(&self, yaml: &str) -> PathBuf {
        let path = self.root.path().join("pod.yaml");
        std::fs::write(&path, yaml).unwrap();
        path
    }

    pub fn start(&self, yaml: &str) -> Running {
        let pod = self.write_pod(yaml);
        let mut command = nodelet(&self.config, self.root.path());
        command.args(["run", "-f"]).arg(&pod);
        Running::spawn(command)
    }

    /// Runs the pod to its end.
    pub fn run(&self, yaml: &str) -> Finished {
        self.start(yaml).finish()
    }

    /// Nothing left: no containers in either runtime, no mounts, no pod directories.
    pub fn assert_clean(&self) {
        assert_clean(self.root.path());
    }
}

/// The nodelet binary with `config`, its state under `root/state`, and `root` as its working
/// directory and `$HOME` (node credentials are looked up there too: keep those empty).
pub fn nodelet(config: &Path, root: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nodelet"));
    command
        .arg("--config")
        .arg(config)
        .arg("--root-dir")
        .arg(root.join("state"))
        .current_dir(root)
        .env("HOME", root);
    command
}

/// Nothing left of a node rooted at `root`: no containers in either runtime (state under
/// `runtimes/`), no mounts, no pod directories, no pod log directories.
pub fn assert_clean(root: &Path) {
    for runtime in ["runc", "crun"] {
        let state = root.join("runtimes").join(runtime);
        if !state.exists() {
            continue;
        }
        let out = Command::new(runtime)
            .arg("--root")
            .arg(&state)
            .args(["list", "-q"])
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(listed.trim().is_empty(), "{runtime} still lists {listed}");
    }
    let ours = root.to_string_lossy().into_owned();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let left: Vec<&str> = mounts.lines().filter(|l| l.contains(&ours)).collect();
    assert!(left.is_empty(), "mounts left: {left:#?}");
    let pods = root.join("state/pods");
    let entries: Vec<_> = std::fs::read_dir(&pods)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(entries.is_empty(), "pod directories left: {entries:?}");
    let logs: Vec<_> = std::fs::read_dir(root.join("logs"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(logs.is_empty(), "pod log directories left: {logs:?}");
}

pub fn collect(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    text
}

pub struct Running {
    pub child: Child,
    pub stdout: Arc<Mutex<String>>,
    pub stderr: Arc<Mutex<String>>,
    pub started: Instant,
}

pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn all(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}", self.stdout, self.stderr)
    }
}

impl Running {
    /// Starts `command` (a nodelet) with its output collected.
    pub fn spawn(mut command: Command) -> Running {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Running {
            child,
            stdout,
            stderr,
            started: Instant::now(),
        }
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn all(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}", self.stdout(), self.stderr())
    }

    /// Waits until `done` holds, within [`LIMIT`] of the start.
    pub fn wait_until(&mut self, what: &str, done: impl Fn(&Running) -> bool) {
        while !done(self) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("nodelet ended ({status}) before {what}: {}", self.all());
            }
            assert!(
                self.started.elapsed() < LIMIT,
                "no {what} after {LIMIT:?}: {}",
                self.all()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until stdout contains `text`.
    pub fn wait_for(&mut self, text: &str) {
        self.wait_until(&format!("{text:?} on stdout"), |r| {
            r.stdout().contains(text)
        });
    }

    /// Waits until stderr contains `text`.
    pub fn wait_for_stderr(&mut self, text: &str) {
        self.wait_until(&format!("{text:?} on stderr"), |r| {
            r.stderr().contains(text)
        });
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the end, within [`LIMIT`] of the start.
    pub fn finish(self) -> Finished {
        let since = self.started;
        self.finish_within_limit_of(since)
    }

    /// SIGTERM, then the end within [`LIMIT`] of the signal.
    pub fn terminate(self) -> Finished {
        self.signal("TERM");
        self.finish_within_limit_of(Instant::now())
    }

    fn finish_within_limit_of(mut self, since: Instant) -> Finished {
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if since.elapsed() > LIMIT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("nodelet still running after {LIMIT:?}: {}", self.all());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The readers end with the pipes.
        std::thread::sleep(Duration::from_millis(100));
        Finished {
            code: status.code(),
            stdout: self.stdout(),
            stderr: self.stderr(),
        }
    }
}

pub fn image(bed: &BedInfo, name: &str) -> String {
    BedInfo::reference(&bed.plain, name)
}

pub fn pod(name: &str, body: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{body}")
}
