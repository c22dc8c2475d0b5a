//! A running `nodelet serve` for kubectl tests: free port, its own data, root and kubectl cache
//! directories, stopped when dropped.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nodelet_testbed::BedInfo;

pub const KUBECTL: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";

/// A running `nodelet serve` with its own root directory, stopped when dropped.
pub struct Server {
    child: Child,
    dir: tempfile::TempDir,
}

impl Server {
    /// Starts `nodelet serve`; with a bed, its config trusts the bed's plain registry.
    pub fn start(bed: Option<&BedInfo>) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("nodelet-serve-")
            .tempdir()
            .expect("temp dir");
        Server::start_in(dir, bed)
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
        Server::start_in(dir, bed)
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

    fn start_in(dir: tempfile::TempDir, bed: Option<&BedInfo>) -> Server {
        let config = dir.path().join("config.toml");
        let state = dir.path().join("runtimes");
        let registries = bed.map_or(String::new(), |bed| {
            format!("[registries.\"{}\"]\ninsecure = true\n", bed.plain.host)
        });
        std::fs::write(
            &config,
            format!(
                "default_runtime = \"runc\"\nlog_dir = \"{}\"\n[runtimes.runc]\nroot = \"{}/runc\"\n{registries}",
                dir.path().join("logs").display(),
                state.display()
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
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nodelet serve");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.starts_with("export KUBECONFIG=") => break,
                Some(Ok(_)) => {}
                _ => panic!("nodelet serve ended before printing the kubeconfig"),
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Server { child, dir }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("server/kubeconfig")
    }

    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = Command::new(KUBECTL)
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env("HOME", self.dir.path())
            .output()
            .expect("run kubectl");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
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
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// Polls `check` on kubectl's output of `args` for up to `secs`; returns the last output.
    pub fn wait_for(&self, secs: u64, args: &[&str], check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let out = self.kubectl(args);
            if check(&out) {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "kubectl {args:?} never matched:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
