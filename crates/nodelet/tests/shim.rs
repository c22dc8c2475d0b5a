//! The per-container shim, run as it runs on a node: this crate's `nodelet` binary
//! re-executed as `nodelet shim <state-dir>`, for every installed OCI runtime (runc, crun,
//! and youki when present). Privileged: run as root.
//!
//! `NODELET_SHIM_BIN=<path>` runs another build of the binary as the shim (the release
//! build, to measure its memory).

#[path = "../../runtime/tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Harness, WAIT, assert_nothing_left, container_id};
use nodelet_runtime::bundle::Bundle;
use nodelet_runtime::container::Exit;
use nodelet_runtime::handlers::Handler;
use nodelet_runtime::logs::{self, ContainerLogs, LogOptions, LogReader, Stream};
use nodelet_runtime::shim::{ShimConfig, ShimError, ShimExit, ShimHandle, ShimLauncher};
use nodelet_runtime::spec::{self, ContainerSpec};
use nodelet_sys::process::ExitStatus;

/// Set (to a JSON `[state_dir, config]`) for the helper process that launches a shim.
const LAUNCH_ENV: &str = "NODELET_SHIM_TEST_LAUNCH";

fn shim_program() -> PathBuf {
    std::env::var_os("NODELET_SHIM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_nodelet")))
}

/// A bundle ready to run, and the shim configuration for it (state in the bundle directory,
/// the log under this test's directory).
struct Prepared {
    bundle: Bundle,
    config: ShimConfig,
    cgroup: String,
}

fn prepare(
    harness: &Harness,
    handler: &Handler,
    id: &str,
    args: &[&str],
    configure: impl FnOnce(&mut ContainerSpec),
) -> Prepared {
    let bundle = Bundle::create(
        &harness.tmp.path().join("containers").join(id),
        &harness.layers("tiny"),
    )
    .unwrap();
    let mut spec = harness.spec_for("tiny", &bundle.rootfs(), args);
    spec.hostname = Some("web-0".into());
    let cgroup = format!("/nodelet-test/{id}");
    spec.cgroup_path = Some(cgroup.clone());
    configure(&mut spec);
    bundle.write_spec(&spec::generate(&spec).unwrap()).unwrap();
    let log = ContainerLogs::new(
        &harness.tmp.path().join("pods"),
        "default",
        "web-0",
        "0b5e-uid",
        id,
    )
    .file(0);
    let config = ShimConfig::new(handler, id, bundle.dir(), &log);
    Prepared {
        bundle,
        config,
        cgroup,
    }
}

fn spawn(prepared: &Prepared) -> ShimHandle {
    ShimHandle::spawn(
        &ShimLauncher::new(&shim_program()),
        prepared.bundle.dir(),
        &prepared.config,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", prepared.config.id))
}

/// Deletes the container through the shim-backed `Container`, removes the bundle, and checks
/// that nothing (shim, container process, mounts, cgroups, runtime state) is left.
fn remove(harness: &Harness, handler: &Handler, prepared: Prepared, handle: ShimHandle) -> Exit {
    let shim_pid = handle.pid().unwrap();
    let init_pid = handle.started().map_or(u32::MAX, |s| s.init_pid);
    let container = handle.into_container().unwrap();
    let exit = container.delete().unwrap();
    prepared.bundle.remove().unwrap();
    assert_nothing_left(
        harness,
        handler,
        &prepared.config.id,
        init_pid,
        &prepared.cgroup,
    );
    // The shim exits just after writing its exit record; when the test is not its subreaper,
    // init reaps it, on its own time: give that the shim's exit grace before calling it left.
    let proc_dir = format!("/proc/{shim_pid}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while Path::new(&proc_dir).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        !Path::new(&proc_dir).exists(),
        "{}: the shim {shim_pid} is still there",
        handler.name
    );
    exit
}

fn wait_exit(handler: &Handler, handle: &ShimHandle) -> ShimExit {
    handle
        .wait_exit(Some(WAIT))
        .unwrap()
        .unwrap_or_else(|| panic!("{}: still running after {WAIT:?}", handler.name))
}

/// `2026-11-25T16:16:03.123Z`: RFC 3339 in UTC, up to nine fractional digits, none trailing 0.
fn assert_rfc3339nano(text: &str) {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| bytes[range].iter().all(u8::is_ascii_digit);
    let ok = bytes.len() >= 20
        && digits(0..4)
        && bytes[4] == b'-'
        && digits(5..7)
        && bytes[7] == b'-'
        && digits(8..10)
        && bytes[10] == b'T'
        && digits(11..13)
        && bytes[13] == b':'
        && digits(14..16)
        && bytes[16] == b':'
        && digits(17..19)
        && text.ends_with('Z')
        && match &text[19..text.len() - 1] {
            "" => true,
            fraction => {
                let digits = &fraction[1..];
                fraction.starts_with('.')
                    && (1..=9).contains(&digits.len())
                    && digits.bytes().all(|b| b.is_ascii_digit())
                    && !digits.ends_with('0')
            }
        };
    assert!(ok, "not RFC3339Nano: {text:?}");
}

#[test]
fn output_becomes_cri_log_lines_and_the_exit_code_is_recorded() {
    let harness = Harness::new(&["tiny"]);
    for handler in harness.installed() {
        let name = &handler.name;
        let id = container_id(&handler, "logs");
        let script = "echo one; echo err-one >&2; printf '%20000s\\n' x; echo two; \
                      printf 'no newline'; exit 3";
        let prepared = prepare(&harness, &handler, &id, &["/bin/sh", "-c", script], |_| {});
        let handle = spawn(&prepared);
        let exit = wait_exit(&handler, &handle);
        assert_eq!(
            (exit.exit_code, exit.signal, exit.oom_killed, exit.reason()),
            (3, None, false, "Error"),
            "{name}: {exit:?}"
        );
        assert!(exit.started_at <= exit.finished_at, "{name}: {exit:?}");
        assert_eq!(handle.started().map(|s| s.init_pid), Some(exit.init_pid));

        use std::os::unix::fs::PermissionsExt;
        let log_path = &prepared.config.log_path;
        let mode = std::fs::metadata(log_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640, "{name}");
        assert!(log_path.ends_with(format!("default_web-0_0b5e-uid/{id}/0.log")));
        let text = std::fs::read_to_string(log_path).unwrap();
        let mut records: Vec<(String, String, String)> = Vec::new();
        for line in text.split_inclusive('\n') {
            let line = line.strip_suffix('\n').expect("every record ends a line");
            let mut fields = line.splitn(4, ' ');
            let (time, stream, tag, content) = (
                fields.next().unwrap(),
                fields.next().unwrap(),
                fields.next().unwrap(),
                fields.next().unwrap_or_else(|| panic!("{name}: {line:?}")),
            );
            assert_rfc3339nano(time);
            records.push((stream.into(), tag.into(), content.into()));
        }
        let of = |stream: &str| -> Vec<(String, String)> {
            records
                .iter()
                .filter(|r| r.0 == stream)
                .map(|r| (r.1.clone(), r.2.clone()))
                .collect()
        };
        let owned = |pairs: &[(&str, String)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(t, c)| (t.to_string(), c.clone()))
                .collect()
        };
        let long = format!("{}x", " ".repeat(19_999));
        assert_eq!(
            of("stdout"),
            owned(&[
                ("F", "one".into()),
                ("P", long[..logs::DEFAULT_MAX_LINE].to_string()),
                ("F", long[logs::DEFAULT_MAX_LINE..].to_string()),
                ("F", "two".into()),
                ("P", "no newline".into()),
            ]),
            "{name}"
        );
        assert_eq!(of("stderr"), owned(&[("F", "err-one".into())]), "{name}");

        // And read back as `kubectl logs` shows it.
        let lines: Vec<_> = LogReader::open(
            log_path,
            LogOptions {
                stream: Some(Stream::Stdout),
                ..Default::default()
            },
            None,
        )
        .unwrap()
        .map(|l| String::from_utf8(l.unwrap().content).unwrap())
        .collect();
        assert_eq!(lines, ["one", long.as_str(), "two", "no newline"], "{name}");

        let exit = remove(&harness, &handler, prepared, handle);
        assert_eq!(exit, Exit::Status(ExitStatus::Exited(3)), "{name}");
    }
}

#[test]
fn the_log_rotates_and_a_follower_sees_every_line_across_rotations() {
    const LINES: usize = 300;
    let harness = Harness::new(&["tiny"]);
    for handler in harness.installed() {
        let name = &handler.name;
        let id = container_id(&handler, "rotate");
        // About 90 bytes a record: a rotation every ~45 lines, slow enough for a follower
        // polling every 100 ms to see each file before the next rotation.
        let script = format!(
            "i=0; while [ $i -lt {LINES} ]; do printf 'line %04d %040d\\n' $i 0; \
             i=$((i+1)); sleep 0.01; done"
        );
        let mut prepared = prepare(&harness, &handler, &id, &["/bin/sh", "-c", &script], |_| {});
        prepared.config.log_rotation = logs::LogRotation::new(4096, 3).unwrap();
        let handle = spawn(&prepared);
        let log_path = prepared.config.log_path.clone();
        let exit_file = prepared.bundle.dir().join("exit.json");
        let follower = {
            let log_path = log_path.clone();
            std::thread::spawn(move || {
                LogReader::open(
                    &log_path,
                    LogOptions {
                        follow: true,
                        ..Default::default()
                    },
                    Some(logs::polled_writer_done(move || exit_file.exists())),
                )
                .unwrap()
                .map(|l| String::from_utf8(l.unwrap().content).unwrap())
                .collect::<Vec<_>>()
            })
        };
        let exit = wait_exit(&handler, &handle);
        assert_eq!(exit.exit_code, 0, "{name}: {exit:?}");
        let seen = follower.join().unwrap();
        let expected: Vec<String> = (0..LINES)
            .map(|n| format!("line {n:04} {:040}", 0))
            .collect();
        assert_eq!(seen.len(), LINES, "{name}");
        assert!(seen == expected, "{name}: lines out of order or changed");

        // At most max_files files: the current one, the newest rotated one as it was
        // written, the older compressed.
        let rotated = logs::rotated_files(&log_path).unwrap();
        let names: Vec<String> = rotated
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(rotated.len(), 2, "{name}: {names:?}");
        let stamp = |n: &str| -> bool {
            let rest = n.strip_prefix("0.log.").unwrap_or("");
            let b = rest.as_bytes();
            b.len() >= 15
                && b[..8].iter().all(u8::is_ascii_digit)
                && b[8] == b'-'
                && b[9..15].iter().all(u8::is_ascii_digit)
        };
        assert!(names.iter().all(|n| stamp(n)), "{name}: {names:?}");
        assert!(
            names[0].ends_with(".gz") && !names[1].ends_with(".gz"),
            "{name}: {names:?}"
        );
        let dir_entries = std::fs::read_dir(log_path.parent().unwrap())
            .unwrap()
            .count();
        assert_eq!(dir_entries, 3, "{name}: only the log's files");
        for file in [&log_path, &rotated[1]] {
            let size = std::fs::metadata(file).unwrap().len();
            assert!(size <= 4096, "{name}: {} has {size} bytes", file.display());
        }
        // `kubectl logs` without follow shows the current file only: the end of the output.
        let current: Vec<String> = LogReader::open(&log_path, LogOptions::default(), None)
            .unwrap()
            .map(|l| String::from_utf8(l.unwrap().content).unwrap())
            .collect();
        assert!(
            !current.is_empty() && expected.ends_with(&current),
            "{name}: {current:?}"
        );
        remove(&harness, &handler, prepared, handle);
    }
}

#[test]
fn an_oom_killed_container_is_reported_as_such() {
    if !Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()
        && !Path::new("/sys/fs/cgroup/memory.max").exists()
        && !Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
    {
        println!("SKIPPED: no memory cgroup on this host");
        return;
    }
    let harness = Harness::new(&["tiny"]);
    for handler in harness.installed() {
        let name = &handler.name;
        let id = container_id(&handler, "oom");
        // `tail` keeps the last lines; 100 MiB without a newline is one line it must hold.
        let prepared = prepare(
            &harness,
            &handler,
            &id,
            &[
                "/bin/sh",
                "-c",
                "echo filling; head -c 100m /dev/zero | tail",
            ],
            |spec| {
                spec.resources =
                    nodelet_runtime::spec::Resources::from_kubernetes(None, None, Some(16 << 20));
            },
        );
        let handle = spawn(&prepared);
        let exit = wait_exit(&handler, &handle);
        assert!(exit.oom_killed, "{name}: {exit:?}");
        assert_eq!(
            (exit.reason(), exit.exit_code),
            ("OOMKilled", 137),
            "{name}: {exit:?}"
        );
        remove(&harness, &handler, prepared, handle);
    }
}

#[test]
fn a_failed_create_is_reported_with_the_runtime_message() {
    let harness = Harness::new(&["tiny"]);
    for handler in harness.installed() {
        let id = container_id(&handler, "bad");
        let prepared = prepare(&harness, &handler, &id, &["/bin/does-not-exist"], |_| {});
        let err = ShimHandle::spawn(
            &ShimLauncher::new(&shim_program()),
            prepared.bundle.dir(),
            &prepared.config,
        )
        .unwrap_err();
        assert!(
            matches!(err, ShimError::Failed { .. }),
            "{}: {err}",
            handler.name
        );
        let text = err.to_string();
        assert!(
            text.contains(&id) && text.contains("/bin/does-not-exist"),
            "{}: {text}",
            handler.name
        );
        let shim_pid: u32 = std::fs::read_to_string(prepared.bundle.dir().join("shim.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        prepared.bundle.remove().unwrap();
        assert_nothing_left(&harness, &handler, &id, u32::MAX, &prepared.cgroup);
        assert!(
            process_ends_within(shim_pid, Duration::from_secs(5)),
            "shim {shim_pid} still runs"
        );
    }
}

/// The shim reports a failed create before it exits: give it a moment to go (a zombie waiting
/// for its reaper counts as gone).
fn process_ends_within(pid: u32, limit: Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next());
        if stat.is_empty() || state == Some("Z") {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Not a test on its own: the process that launches a shim and is then SIGKILLed (run by
/// [`the_container_outlives_its_launcher_and_is_found_again`] with [`LAUNCH_ENV`] set).
#[test]
fn helper_launches_a_shim_and_waits_to_be_killed() {
    let Ok(request) = std::env::var(LAUNCH_ENV) else {
        return;
    };
    let (state_dir, config): (PathBuf, ShimConfig) = serde_json::from_str(&request).unwrap();
    let handle =
        ShimHandle::spawn(&ShimLauncher::new(&shim_program()), &state_dir, &config).unwrap();
    let mut stdout = std::io::stdout();
    writeln!(stdout, "SHIM_PID={}", handle.pid().unwrap()).unwrap();
    stdout.flush().unwrap();
    std::thread::sleep(Duration::from_secs(600));
}

fn log_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .count()
}

#[test]
fn the_container_outlives_its_launcher_and_is_found_again() {
    let harness = Harness::new(&["tiny"]);
    for handler in harness.installed() {
        let name = &handler.name;
        let id = container_id(&handler, "survive");
        let script = "trap 'echo bye; exit 0' TERM; while :; do echo tick; sleep 0.1; done";
        let prepared = prepare(&harness, &handler, &id, &["/bin/sh", "-c", script], |_| {});
        let state_dir = prepared.bundle.dir().to_path_buf();

        let mut launcher = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "helper_launches_a_shim_and_waits_to_be_killed",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(
                LAUNCH_ENV,
                serde_json::to_string(&(&state_dir, &prepared.config)).unwrap(),
            )
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut shim_pid = None;
        for line in BufReader::new(launcher.stdout.take().unwrap()).lines() {
            // After the harness's "test <name> ... " on the same line.
            let line = line.unwrap();
            if let Some((_, pid)) = line.split_once("SHIM_PID=") {
                shim_pid = Some(pid.trim().parse::<u32>().unwrap());
                break;
            }
        }
        let shim_pid = shim_pid.unwrap_or_else(|| panic!("{name}: the launcher reported no shim"));
        launcher.kill().unwrap();
        launcher.wait().unwrap();

        // Found again, running, and the log keeps growing.
        let handle = ShimHandle::attach(&state_dir).unwrap();
        assert_eq!(handle.pid(), Some(shim_pid), "{name}");
        assert!(
            handle.is_running(),
            "{name}: the shim died with its launcher"
        );
        assert_eq!(handle.wait_exit(Some(Duration::ZERO)).unwrap(), None);
        let status = std::fs::read_to_string(format!("/proc/{shim_pid}/status")).unwrap();
        let rss = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .unwrap_or("VmRSS: ?");
        let pss = std::fs::read_to_string(format!("/proc/{shim_pid}/smaps_rollup"))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("Pss:"))
            .unwrap_or("Pss: ?")
            .to_string();
        println!(
            "SHIM MEMORY {name}: {rss}, {pss} ({}, test build: {})",
            shim_program().display(),
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
        );
        let log = &prepared.config.log_path;
        let before = log_lines(log);
        let deadline = Instant::now() + WAIT;
        while log_lines(log) < before + 3 {
            assert!(Instant::now() < deadline, "{name}: no more log lines");
            std::thread::sleep(Duration::from_millis(100));
        }

        // A new "nodelet" stops it through the runtime; the shim records the end.
        let container = handle.into_container().unwrap();
        let stopped = container.stop(Duration::from_secs(10)).unwrap();
        assert_eq!(
            (stopped.exit, stopped.killed),
            (Exit::Status(ExitStatus::Exited(0)), false),
            "{name}"
        );
        let exit = container.shim().unwrap().exit().unwrap().unwrap();
        assert_eq!((exit.exit_code, exit.reason()), (0, "Completed"), "{name}");
        let text = std::fs::read_to_string(log).unwrap();
        assert!(text.ends_with(" stdout F bye\n"), "{name}: {text}");
        drop(container);
        let handle = ShimHandle::attach(&state_dir).unwrap();
        assert!(!handle.is_running());
        remove(&harness, &handler, prepared, handle);
    }
}
