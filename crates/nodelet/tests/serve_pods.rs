//! The kubelet inside `nodelet serve`, seen through the real kubectl: a pod created with
//! `kubectl create -f` is scheduled, pulled from the test bed's registry and run; its status
//! and events come back through the API, and `kubectl delete pod` terminates it.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nodelet_testbed::{Bed, BedInfo};

const KUBECTL: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";

/// A running `nodelet serve` with its own root directory, stopped when dropped.
struct Server {
    child: Child,
    dir: tempfile::TempDir,
}

impl Server {
    fn start(bed: &BedInfo) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("nodelet-serve-")
            .tempdir()
            .expect("temp dir");
        let config = dir.path().join("config.toml");
        let state = dir.path().join("runtimes");
        std::fs::write(
            &config,
            format!(
                "default_runtime = \"runc\"\n\
                 [runtimes.runc]\nroot = \"{s}/runc\"\n\
                 [registries.\"{a}\"]\ninsecure = true\n",
                s = state.display(),
                a = bed.plain.host,
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

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("server/kubeconfig")
    }

    fn kubectl(&self, args: &[&str]) -> String {
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

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// Polls `check` on kubectl's output of `args` for up to `secs`; returns the last output.
    fn wait_for(&self, secs: u64, args: &[&str], check: impl Fn(&str) -> bool) -> String {
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

fn pod(name: &str, image: &str, command: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 5\n  containers:\n  - name: main\n    image: {image}\n    command: {command}\n"
    )
}

#[test]
fn pods_run_to_completion_and_are_deleted() {
    let bed = Bed::shared().unwrap();
    let server = Server::start(&bed);
    let image = BedInfo::reference(&bed.plain, "tiny");

    let file = server.write(
        "done.yaml",
        &pod("done", &image, r#"["sh", "-c", "echo SUCCESS"]"#),
    );
    assert_eq!(
        server.kubectl(&["create", "-f", &file]),
        "pod/done created\n"
    );
    server.wait_for(
        20,
        &["get", "pod", "done", "-o", "jsonpath={.status.phase}"],
        |out| out == "Succeeded",
    );
    let status = server.kubectl(&["get", "pod", "done", "-o", "json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(
        status["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"], 0,
        "{status:#}"
    );
    assert!(status["status"]["podIP"].is_string(), "{status:#}");
    server.wait_for(10, &["get", "events"], |out| {
        out.contains("Pulled") && out.contains("Created") && out.contains("Started")
    });
    server.wait_for(10, &["get", "pods"], |out| out.contains("Completed"));

    let file = server.write("long.yaml", &pod("long", &image, r#"["sleep", "1000"]"#));
    server.kubectl(&["create", "-f", &file]);
    server.wait_for(
        20,
        &["get", "pod", "long", "-o", "jsonpath={.status.phase}"],
        |out| out == "Running",
    );
    let started = Instant::now();
    assert_eq!(
        server.kubectl(&["delete", "pod", "long"]),
        "pod \"long\" deleted\n"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "delete took {:?}",
        started.elapsed()
    );
    server.wait_for(5, &["get", "pods", "-o", "name"], |out| {
        !out.contains("pod/long")
    });

    // A pod whose image cannot be pulled does not hold up its deletion.
    let file = server.write(
        "missing.yaml",
        &pod(
            "missing",
            &format!("{}/nosuch:v1", bed.plain.host),
            r#"["true"]"#,
        ),
    );
    server.kubectl(&["create", "-f", &file]);
    server.wait_for(20, &["get", "events"], |out| out.contains("Failed"));
    let started = Instant::now();
    server.kubectl(&["delete", "pod", "missing"]);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "delete took {:?}",
        started.elapsed()
    );
}
