//! `nodelet images` as a user runs it: the real binary against the test bed's registries.

use std::path::Path;
use std::process::{Command, Output};

use nodelet_testbed::Bed;

struct Node {
    root: tempfile::TempDir,
    config: std::path::PathBuf,
}

impl Node {
    /// A node whose config trusts the bed: registry A insecure, B and C through their CA.
    fn new(bed: &nodelet_testbed::BedInfo) -> Node {
        let root = tempfile::tempdir().unwrap();
        let config = root.path().join("config.toml");
        let ca = bed.ca_cert.display();
        std::fs::write(
            &config,
            format!(
                "[registries.\"{}\"]\ninsecure = true\n[registries.\"{}\"]\nca_file = \"{ca}\"\n[registries.\"{}\"]\nca_file = \"{ca}\"\n",
                bed.plain.host, bed.basic.host, bed.token.host
            ),
        )
        .unwrap();
        Node { root, config }
    }

    fn images(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_nodelet"))
            .arg("--config")
            .arg(&self.config)
            .arg("--root-dir")
            .arg(self.root.path().join("state"))
            .arg("images")
            .args(args)
            // Node credentials are looked up in cwd and $HOME too: keep those empty.
            .current_dir(self.root.path())
            .env("HOME", self.root.path())
            .output()
            .unwrap()
    }

    fn write_node_credentials(&self, host: &str, login: &nodelet_testbed::Login) {
        use base64::Engine;
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", login.username, login.password));
        let state = self.root.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(
            state.join("config.json"),
            format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#),
        )
        .unwrap();
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn pull_list_inspect_and_remove() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let image = format!("{}/tiny:v1", bed.plain.host);
    let pulled = node.images(&["pull", &image]);
    assert!(pulled.status.success(), "{}", text(&pulled));
    assert!(
        text(&pulled).contains(&bed.images["tiny"].digest),
        "{}",
        text(&pulled)
    );

    let listed = node.images(&["ls"]);
    assert!(text(&listed).contains(&image), "{}", text(&listed));

    let inspected = node.images(&["inspect", &image]);
    let record: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(record["digest"], bed.images["tiny"].digest);
    assert_eq!(record["platform"], "linux/amd64");

    let removed = node.images(&["rm", &image]);
    assert!(removed.status.success(), "{}", text(&removed));
    let pruned = node.images(&["prune"]);
    assert!(
        text(&pruned).contains("Removed 3 blobs and 1 unpacked layers"),
        "{}",
        text(&pruned)
    );
    let again = node.images(&["rm", &image]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again).contains("is not on this node"),
        "{}",
        text(&again)
    );
}

#[test]
fn private_registries_use_the_node_credentials_file() {
    let bed = Bed::shared().unwrap();
    for registry in [&bed.basic, &bed.token] {
        let node = Node::new(&bed);
        let image = format!("{}/private:v1", registry.host);
        let refused = node.images(&["pull", &image]);
        assert_eq!(refused.status.code(), Some(1));
        let message = text(&refused);
        assert!(
            message.contains(&image) && message.contains("401"),
            "{message}"
        );

        node.write_node_credentials(&registry.host, &bed.puller);
        let pulled = node.images(&["pull", &image]);
        assert!(pulled.status.success(), "{}", text(&pulled));
        assert!(
            !text(&pulled).contains(&bed.puller.password),
            "a password was printed"
        );
    }
}

#[test]
fn errors_name_the_image_and_the_cause() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let cases = [
        (format!("{}/tiny:missing", bed.plain.host), "not found"),
        (format!("{}/multi:v1", bed.plain.host), "linux/s390x"),
        ("UPPER/Case".to_string(), "must be lowercase"),
    ];
    for (image, cause) in cases {
        let mut args = vec!["pull", image.as_str()];
        if image.contains("multi") {
            args.extend(["--platform", "linux/s390x"]);
        }
        let output = node.images(&args);
        assert_eq!(output.status.code(), Some(1), "{image}");
        assert!(text(&output).contains(cause), "{image}: {}", text(&output));
    }
    // A registry whose CA is not trusted: the error says TLS and names the registry.
    let untrusted = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_nodelet"))
        .args(["--root-dir"])
        .arg(untrusted.path())
        .args(["images", "pull", &format!("{}/tiny:v1", bed.basic.host)])
        .env("HOME", untrusted.path())
        .current_dir(untrusted.path())
        .output()
        .unwrap();
    assert!(
        text(&output).contains("TLS") && text(&output).contains(&bed.basic.host),
        "{}",
        text(&output)
    );
}

#[test]
fn export_and_import_round_trip() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let image = format!("{}/config:v1", bed.plain.host);
    assert!(node.images(&["pull", &image]).status.success());
    let layout = node.root.path().join("layout");
    let exported = node.images(&["export", &image, layout.to_str().unwrap()]);
    assert!(exported.status.success(), "{}", text(&exported));
    assert!(Path::new(&layout).join("index.json").is_file());

    let other = Node::new(&bed);
    let imported = other.images(&["import", layout.to_str().unwrap()]);
    assert!(imported.status.success(), "{}", text(&imported));
    assert!(
        text(&imported).contains(&image),
        "the layout carries the image name: {}",
        text(&imported)
    );
    let inspected = other.images(&["inspect", &image]);
    let record: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(record["config"]["WorkingDir"], "/srv/app");
}
