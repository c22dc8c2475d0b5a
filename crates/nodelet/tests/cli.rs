//! The command line as a user meets it: the real binary, its help, exit codes and messages.

use std::process::{Command, Output};

fn nodelet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nodelet"))
        .args(args)
        .output()
        .expect("run nodelet")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_lists_every_subcommand_and_global_flag() {
    let out = nodelet(&["--help"]);
    assert!(out.status.success());
    let text = stdout(&out);
    for word in [
        "serve",
        "run",
        "images",
        "agent",
        "version",
        "--config",
        "--root-dir",
    ] {
        assert!(text.contains(word), "--help lacks {word}:\n{text}");
    }
}

#[test]
fn version_names_the_kubernetes_version() {
    let out = nodelet(&["version"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("nodelet 0."), "{text}");
    assert!(text.contains("Kubernetes v1.33"), "{text}");
}

#[test]
fn commands_not_built_yet_say_so_and_exit_2() {
    let out = nodelet(&["agent"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not built yet"), "{}", stderr(&out));
}

#[test]
fn an_explicit_config_that_does_not_exist_is_an_error() {
    let out = nodelet(&["--config", "/nonexistent/config.toml", "version"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("/nonexistent/config.toml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_config_with_a_syntax_error_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "[runtimes.runc\n").unwrap();
    let out = nodelet(&["--config", path.to_str().unwrap(), "version"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("parsing config"), "{}", stderr(&out));
}

#[test]
fn parallel_image_pulls_above_one_need_serialized_pulls_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "max_parallel_image_pulls = 4\n").unwrap();
    let out = nodelet(&["--config", path.to_str().unwrap(), "version"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "invalid configuration: max_parallel_image_pulls cannot be larger than 1 unless serialize_image_pulls is set to false"
        ),
        "{}",
        stderr(&out)
    );
    std::fs::write(
        &path,
        "serialize_image_pulls = false\nmax_parallel_image_pulls = 4\n",
    )
    .unwrap();
    let out = nodelet(&["--config", path.to_str().unwrap(), "version"]);
    assert!(out.status.success(), "{}", stderr(&out));
}
