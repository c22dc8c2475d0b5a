//! `nodelet agent --pod-manifest-path DIR` as a user runs it: the real binary in standalone
//! mode, the test bed's registry and runc. Privileged: run as root.

mod run_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use nodelet_testbed::{Bed, BedInfo};
use run_support::{Finished, Running, image};

/// A node (config, state, runc root) and its manifest directory.
struct Node {
    root: tempfile::TempDir,
    config: PathBuf,
    manifests: PathBuf,
}

impl Node {
    /// The manifest directory is given in the config file (`pod_manifest_path`) when
    /// `in_config`, else on the command line.
    fn new(bed: &BedInfo, in_config: bool) -> Node {
        let root = tempfile::Builder::new()
            .prefix("nodelet-agent-")
            .tempdir()
            .unwrap();
        let manifests = root.path().join("manifests");
        std::fs::create_dir(&manifests).unwrap();
        let config = root.path().join("config.toml");
        let mut text = String::from(
            "default_runtime = \"runc\"
",
        );
        if in_config {
            text.push_str(&format!(
                "pod_manifest_path = \"{}\"\n",
                manifests.display()
            ));
        }
        text.push_str(&format!(
            "[runtimes.runc]\nroot = \"{}\"\n[registries.\"{}\"]\ninsecure = true\n",
            root.path().join("runtimes/runc").display(),
            bed.plain.host
        ));
        std::fs::write(&config, text).unwrap();
        Node {
            root,
            config,
            manifests,
        }
    }

    /// Writes a manifest as editors and config tools should: a dot-file, then a rename.
    fn write(&self, file: &str, text: &str) {
        let temp = self.manifests.join(format!(".{file}.tmp"));
        std::fs::write(&temp, text).unwrap();
        std::fs::rename(&temp, self.manifests.join(file)).unwrap();
    }

    fn start(&self, with_flag: bool) -> Running {
        let mut command = run_support::nodelet(&self.config, self.root.path());
        command.arg("agent");
        if with_flag {
            command.arg("--pod-manifest-path").arg(&self.manifests);
        }
        Running::spawn(command)
    }

    /// Nothing left: no containers, no mounts, no pod directories.
    fn assert_clean(&self) {
        run_support::assert_clean(self.root.path());
    }
}

fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_lowercase()
}

/// A pod whose container prints `<word>` every half second until SIGTERM, and whose PreStop
/// prints `prestop <word>`.
fn talker(bed: &BedInfo, name: &str, word: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 10
  containers:
  - name: main
    image: {image}
    command: ["sh", "-c", "trap 'echo {word} got TERM; exit 0' TERM; while true; do echo {word}; sleep 0.5 & wait; done"]
    lifecycle:
      preStop:
        exec:
          command: ["sh", "-c", "echo prestop {word} > /proc/1/fd/1"]
"#,
        image = image(bed, "tiny")
    )
}

#[test]
fn static_pods_start_restart_when_edited_and_stop_when_removed() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed, false);
    let host = node_name();
    node.write("alpha.yaml", &talker(&bed, "alpha", "alpha-one"));
    node.write("beta.yaml", &talker(&bed, "beta", "beta-one"));
    let mut agent = node.start(true);
    agent.wait_for(&format!("[alpha-{host}/main] alpha-one\n"));
    agent.wait_for(&format!("[beta-{host}/main] beta-one\n"));
    assert!(
        agent.stderr().contains(&format!(
            "[alpha-{host}] Normal  Started  Started container main"
        )),
        "{}",
        agent.all()
    );

    // An edited manifest is a new pod: the old one is stopped (PreStop, then SIGTERM), then
    // the new one starts.
    node.write("alpha.yaml", &talker(&bed, "alpha", "alpha-two"));
    agent.wait_for(&format!("[alpha-{host}/main] alpha-two\n"));
    let out = agent.stdout();
    let pre_stop = out
        .find(&format!("[alpha-{host}/main] prestop alpha-one\n"))
        .unwrap_or_else(|| panic!("no PreStop: {}", agent.all()));
    let term = out
        .find(&format!("[alpha-{host}/main] alpha-one got TERM\n"))
        .unwrap_or_else(|| panic!("no SIGTERM: {}", agent.all()));
    let new = out.find("alpha-two").unwrap();
    assert!(pre_stop < term && term < new, "{}", agent.all());
    assert!(
        agent.stderr().contains(&format!(
            "static pod default/alpha-{host} (alpha.yaml): file changed, stopping the pod"
        )),
        "{}",
        agent.all()
    );

    // A removed manifest stops its pod gracefully; the other pod keeps running.
    std::fs::remove_file(node.manifests.join("beta.yaml")).unwrap();
    agent.wait_for(&format!("[beta-{host}/main] beta-one got TERM\n"));
    agent.wait_for_stderr(&format!("static pod default/beta-{host}: "));
    assert!(
        agent
            .stdout()
            .contains(&format!("[beta-{host}/main] prestop beta-one\n")),
        "{}",
        agent.all()
    );
    let seen = agent.stdout().matches("alpha-two\n").count();
    agent.wait_until("alpha-two still printing", |a| {
        a.stdout().matches("alpha-two\n").count() > seen + 1
    });

    let Finished {
        code,
        stdout,
        stderr,
    } = agent.terminate();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("[alpha-{host}/main] prestop alpha-two\n")),
        "{stdout}"
    );
    assert!(
        stderr.contains("nodelet: SIGTERM: stopping all static pods"),
        "{stderr}"
    );
    assert!(
        stderr.contains("nodelet: all static pods stopped"),
        "{stderr}"
    );
    node.assert_clean();
}

#[test]
fn bad_files_are_reported_and_the_other_pods_run() {
    let bed = Bed::shared().unwrap();
    // The directory comes from the config file this time.
    let node = Node::new(&bed, true);
    let host = node_name();
    let dir = node.manifests.display().to_string();
    // JSON is a manifest too.
    let good = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "good"},
        "spec": {"containers": [{
            "name": "main",
            "image": image(&bed, "tiny"),
            "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do echo good-one; sleep 0.5 & wait; done"],
        }]},
    });
    node.write("good.json", &good.to_string());
    node.write("broken.yaml", "apiVersion: v1\nkind: Pod\nmetadata: [\n");
    node.write(
        "secret.yaml",
        &talker(&bed, "secret", "secret-one").replace(
            "    lifecycle:",
            "    env:\n    - name: TOKEN\n      valueFrom: {secretKeyRef: {name: creds, key: token}}\n    lifecycle:",
        ),
    );
    std::fs::write(
        node.manifests.join(".hidden.yaml"),
        talker(&bed, "hidden", "hidden-one"),
    )
    .unwrap();
    let mut agent = node.start(false);
    agent.wait_for(&format!("[good-{host}/main] good-one\n"));
    agent.wait_for_stderr(&format!("nodelet: {dir}/broken.yaml: "));
    agent.wait_for_stderr(&format!(
        "nodelet: {dir}/secret.yaml: pods \"secret-{host}\" is forbidden: a mirror pod may not reference secrets\n"
    ));

    // A file fixed later is picked up.
    node.write("broken.yaml", &talker(&bed, "fixed", "fixed-one"));
    agent.wait_for(&format!("[fixed-{host}/main] fixed-one\n"));

    let Finished {
        code,
        stdout,
        stderr,
    } = agent.terminate();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        !stdout.contains("hidden-one"),
        "dot-files are ignored: {stdout}"
    );
    assert!(!stdout.contains("secret-one"), "{stdout}");
    assert_eq!(
        stderr.matches("secret.yaml: pods").count(),
        1,
        "a bad file is reported once: {stderr}"
    );
    node.assert_clean();
}

#[test]
fn without_a_manifest_directory_the_agent_says_what_is_missing() {
    let out = Command::new(env!("CARGO_BIN_EXE_nodelet"))
        .args(["--config", "/dev/null", "agent", "--kubeconfig", "/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("joining a cluster is not built yet"),
        "{stderr}"
    );
    let missing = Path::new("/nonexistent/manifests");
    let out = Command::new(env!("CARGO_BIN_EXE_nodelet"))
        .args(["--config", "/dev/null", "agent", "--pod-manifest-path"])
        .arg(missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("pod manifest path /nonexistent/manifests: not a directory"),
        "{stderr}"
    );
}
