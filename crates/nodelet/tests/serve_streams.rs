//! `kubectl exec` and `kubectl logs` through `nodelet serve`, with the real kubectl 1.32 and
//! 1.33 (WebSocket, v5.channel.k8s.io) and 1.20 (SPDY/3.1, v4.channel.k8s.io) against a real
//! pod under runc.
//!
//! The logs are what the container writes, kept by its shim in the CRI file serve reads
//! (`{log_dir}/<ns>_<pod>_<uid>/<container>/<restart>.log`).

mod serve_support;

use std::io::Read as _;
use std::process::Stdio;

use nodelet_testbed::{Bed, BedInfo};
use serve_support::{KUBECTL, Server};

const KUBECTL_1_32: &str = "/usr/bin/kubectl";
const KUBECTL_1_20: &str = "/usr/local/lib/nodelet-test/kubectl-1.20/usr/bin/kubectl";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn exec_and_logs_through_kubectl() {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    let image = BedInfo::reference(&bed.plain, "tiny");
    let file = server.write(
        "shell.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: shell\nspec:\n  terminationGracePeriodSeconds: 1\n  restartPolicy: Never\n  containers:\n  - name: main\n    image: {image}\n    command: [\"sh\", \"-c\", \"echo one; echo two; sleep 0.3; echo three >&2; while [ ! -f /tmp/more ]; do sleep 0.1; done; echo four; while [ ! -f /tmp/stop ]; do sleep 0.1; done\"]\n  - name: side\n    image: {image}\n    command: [\"sleep\", \"1000\"]\n"
        ),
    );
    server.kubectl(&["create", "-f", &file]);
    server.wait_for(
        30,
        &["get", "pod", "shell", "-o", "jsonpath={.status.phase}"],
        |out| out == "Running",
    );

    let kubectl_1_20 = std::path::Path::new(KUBECTL_1_20)
        .exists()
        .then_some(KUBECTL_1_20);
    for kubectl in [KUBECTL, KUBECTL_1_32].into_iter().chain(kubectl_1_20) {
        let out = server.run_kubectl(
            kubectl,
            &[
                "exec",
                "shell",
                "-c",
                "main",
                "--",
                "sh",
                "-c",
                "echo out; echo err >&2; exit 3",
            ],
            None,
        );
        assert_eq!(
            out.status.code(),
            Some(3),
            "{kubectl}: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), "out\n", "{kubectl}");
        let stderr = text(&out.stderr);
        assert!(stderr.starts_with("err\n"), "{kubectl}: {stderr}");
        assert!(
            stderr.contains("command terminated with exit code 3"),
            "{kubectl}: {stderr}"
        );

        let out = server.run_kubectl(
            kubectl,
            &["exec", "-i", "shell", "-c", "side", "--", "cat"],
            Some(b"hi\nthere\n"),
        );
        assert!(out.status.success(), "{kubectl}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "hi\nthere\n", "{kubectl}");

        // More than one flow-control window (64 KiB) of output.
        let out = server.run_kubectl(
            kubectl,
            &[
                "exec",
                "shell",
                "-c",
                "side",
                "--",
                "sh",
                "-c",
                "dd if=/dev/zero bs=1024 count=200 2>/dev/null",
            ],
            None,
        );
        assert!(out.status.success(), "{kubectl}: {}", text(&out.stderr));
        assert_eq!(out.stdout.len(), 200 * 1024, "{kubectl}");
        assert!(out.stdout.iter().all(|b| *b == 0), "{kubectl}");

        // -it: a terminal (kubectl needs one too: `script` gives it a pty).
        let command = server.kubectl_command(
            kubectl,
            &[
                "exec",
                "-it",
                "shell",
                "-c",
                "side",
                "--",
                "sh",
                "-c",
                "test -t 0 && echo is-a-tty; read line; echo got-$line; exit 4",
            ],
        );
        let line = std::iter::once(command.get_program())
            .chain(command.get_args())
            .map(|a| format!("'{}'", a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ");
        let mut script = std::process::Command::new("script");
        script.args(["-qec", &line, "/dev/null"]);
        for (key, value) in command.get_envs() {
            if let Some(value) = value {
                script.env(key, value);
            }
        }
        let mut child = script
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        std::io::Write::write_all(&mut input, b"typed\n").unwrap();
        let out = child.wait_with_output().unwrap();
        drop(input);
        let shown = text(&out.stdout);
        assert!(
            shown.contains("is-a-tty"),
            "{kubectl}: {shown:?} {}",
            text(&out.stderr)
        );
        assert!(shown.contains("got-typed"), "{kubectl}: {shown:?}");
        assert_eq!(out.status.code(), Some(4), "{kubectl}: {shown:?}");

        let out = server.run_kubectl(
            kubectl,
            &["exec", "shell", "-c", "nope", "--", "true"],
            None,
        );
        assert!(!out.status.success(), "{kubectl}");
        assert!(
            text(&out.stderr).contains("container nope is not valid for pod shell"),
            "{kubectl}: {}",
            text(&out.stderr)
        );

        let out = server.run_kubectl(
            kubectl,
            &["exec", "shell", "-c", "main", "--", "/no/such/binary"],
            None,
        );
        assert!(!out.status.success(), "{kubectl}");
        assert!(
            text(&out.stderr).contains("/no/such/binary"),
            "{kubectl}: {}",
            text(&out.stderr)
        );
    }
    // Logs: what the container wrote, from the CRI file its shim keeps.
    server.wait_for(30, &["logs", "shell", "-c", "main"], |out| {
        out == "one\ntwo\nthree\n"
    });
    assert_eq!(
        server.kubectl(&["logs", "shell", "-c", "main", "--tail=1"]),
        "three\n"
    );
    assert_eq!(
        server.kubectl(&["logs", "shell", "-c", "main", "--limit-bytes=5"]),
        "one\nt"
    );
    let stamped = server.kubectl(&["logs", "shell", "-c", "main", "--timestamps"]);
    let lines: Vec<&str> = stamped.lines().collect();
    assert_eq!(lines.len(), 3, "{stamped}");
    for (line, expected) in lines.iter().zip(["one", "two", "three"]) {
        let (stamp, rest) = line.split_once(' ').unwrap();
        assert_eq!(rest, expected, "{stamped}");
        stamp
            .parse::<jiff::Timestamp>()
            .unwrap_or_else(|e| panic!("{stamp}: {e}"));
    }
    let out = server.run_kubectl(
        KUBECTL,
        &["logs", "shell", "-c", "main", "--previous"],
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(
            "Error from server (BadRequest): previous terminated container \"main\" in pod \"shell\" not found"
        ),
        "{}",
        text(&out.stderr)
    );
    let out = server.run_kubectl(
        KUBECTL,
        &["get", "--raw", "/api/v1/namespaces/default/pods/shell/log"],
        None,
    );
    assert!(
        text(&out.stderr).contains(
            "a container name must be specified for pod shell, choose one of: [main side]"
        ),
        "{}",
        text(&out.stderr)
    );
    let out = server.run_kubectl(KUBECTL, &["logs", "nosuch"], None);
    assert!(
        text(&out.stderr).contains("pods \"nosuch\" not found"),
        "{}",
        text(&out.stderr)
    );

    // Following: lines as they are written, and the end when the container ends.
    let mut follow = server
        .kubectl_command(KUBECTL, &["logs", "-f", "shell", "-c", "main"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = follow.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !text(&seen).contains("three\n") {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "logs -f ended early: {}", text(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    server.kubectl(&["exec", "shell", "-c", "main", "--", "touch", "/tmp/more"]);
    while !text(&seen).contains("four\n") {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "logs -f ended early: {}", text(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    server.kubectl(&["exec", "shell", "-c", "main", "--", "touch", "/tmp/stop"]);
    stdout.read_to_end(&mut seen).unwrap();
    let status = follow.wait().unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(text(&seen), "one\ntwo\nthree\nfour\n");
}
