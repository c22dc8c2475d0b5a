//! Containers from test-bed images under every installed OCI runtime (runc, crun, and youki
//! when present). Privileged: run as root.

mod common;

use std::time::{Duration, Instant};

use common::{Harness, PATH_ENV, container_id, finish, launch, our_mounts, remove, run_to_end};
use nodelet_runtime::container::ContainerError;
use nodelet_runtime::container::Exit;
use nodelet_runtime::handlers::{HandlerError, HandlerTable, RuntimeHandlerConfig};
use nodelet_runtime::oci_runtime::RuntimeError;
use nodelet_runtime::signal::Signal;
use nodelet_sys::process::ExitStatus;

#[test]
fn hostname_user_working_dir_and_env_inside() {
    let harness = Harness::new(&["tiny"]);
    for handler in harness.installed() {
        let mounts_before = our_mounts(&harness);
        let finished = run_to_end(
            &harness,
            &handler,
            "env",
            "tiny",
            &["/bin/sh", "-c", "hostname; id; pwd; env"],
            |spec| {
                spec.env = vec![
                    PATH_ENV.into(),
                    "GREETING=hello there".into(),
                    "EMPTY=".into(),
                ];
                spec.cwd = "/tmp".into();
            },
        );
        let name = &handler.name;
        assert_eq!(
            finished.exit,
            Exit::Status(ExitStatus::Exited(0)),
            "{name}: {}",
            finished.stderr
        );
        let lines: Vec<&str> = finished.stdout.lines().collect();
        assert_eq!(lines.first(), Some(&"web-0"), "{name}: {}", finished.stdout);
        assert_eq!(
            lines.get(1).copied(),
            Some("uid=0(root) gid=0(root) groups=0(root)"),
            "{name}: {}",
            finished.stdout
        );
        assert_eq!(lines.get(2), Some(&"/tmp"), "{name}: {}", finished.stdout);
        for expected in ["GREETING=hello there", "EMPTY=", PATH_ENV] {
            assert!(
                lines.contains(&expected),
                "{name}: {expected} missing from {}",
                finished.stdout
            );
        }
        assert_eq!(our_mounts(&harness), mounts_before, "{name}");
    }
}

#[test]
fn exit_codes_propagate() {
    let harness = Harness::new(&["tiny"]);
    for handler in harness.installed() {
        for (script, expected) in [
            ("exit 3", ExitStatus::Exited(3)),
            ("exit 255", ExitStatus::Exited(255)),
        ] {
            let finished = run_to_end(
                &harness,
                &handler,
                "exit",
                "tiny",
                &["/bin/sh", "-c", script],
                |_| {},
            );
            assert_eq!(
                finished.exit,
                Exit::Status(expected),
                "{}: {script}",
                handler.name
            );
        }
    }
}

#[test]
fn the_config_image_runs_as_its_user_in_its_working_dir() {
    let harness = Harness::new(&["config"]);
    for handler in harness.installed() {
        let finished = run_to_end(
            &harness,
            &handler,
            "config",
            "config",
            &[
                "/bin/sh",
                "-c",
                "id -u; id -g; pwd; cat README; echo $GREETING",
            ],
            |_| {},
        );
        assert_eq!(
            finished.exit.code(),
            Some(0),
            "{}: {}",
            handler.name,
            finished.stderr
        );
        assert_eq!(
            finished.stdout,
            "1000\n1000\n/srv/app\nserved from the config image\nhello from the image config\n",
            "{}",
            handler.name
        );
    }
}

#[test]
fn a_read_only_rootfs_refuses_writes() {
    let harness = Harness::new(&["tiny"]);
    for handler in harness.installed() {
        let finished = run_to_end(
            &harness,
            &handler,
            "ro",
            "tiny",
            &["/bin/sh", "-c", "touch /written || exit 42"],
            |spec| {
                spec.read_only_rootfs = true;
            },
        );
        assert_eq!(
            finished.exit.code(),
            Some(42),
            "{}: {}",
            handler.name,
            finished.stderr
        );
        assert!(
            finished.stderr.contains("Read-only file system"),
            "{}: {}",
            handler.name,
            finished.stderr
        );
    }
}

#[test]
fn stop_sends_the_stop_signal_then_kills_at_the_deadline() {
    let harness = Harness::new(&["tiny", "config"]);
    for handler in harness.installed() {
        let name = &handler.name;
        // A process that ends on SIGTERM: stopped by it, well before the deadline.
        let id = container_id(&handler, "term");
        let launched = launch(
            &harness,
            &handler,
            &id,
            "tiny",
            &["/bin/sh", "-c", "trap 'exit 7' TERM; sleep 1000 & wait"],
            |_| {},
        );
        std::thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        let stopped = launched.container.stop(Duration::from_secs(10)).unwrap();
        assert!(
            !stopped.killed && started.elapsed() < Duration::from_secs(5),
            "{name}: {stopped:?}"
        );
        assert_eq!(stopped.exit, Exit::Status(ExitStatus::Exited(7)), "{name}");
        remove(&harness, &handler, launched, stopped.exit);

        // The image's STOPSIGNAL (SIGUSR1 in `config`) is what stop sends.
        let id = container_id(&handler, "usr1");
        let launched = launch(
            &harness,
            &handler,
            &id,
            "config",
            &["/bin/sh", "-c", "trap 'exit 10' USR1; sleep 1000 & wait"],
            |_| {},
        );
        assert_eq!(
            launched.container.metadata().stop_signal,
            Signal::parse("SIGUSR1").unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
        let stopped = launched.container.stop(Duration::from_secs(10)).unwrap();
        assert_eq!(
            (stopped.exit, stopped.killed),
            (Exit::Status(ExitStatus::Exited(10)), false),
            "{name}"
        );
        remove(&harness, &handler, launched, stopped.exit);

        // A process that ignores SIGTERM: SIGKILL when the grace period ends.
        let id = container_id(&handler, "kill");
        let launched = launch(
            &harness,
            &handler,
            &id,
            "tiny",
            &["/bin/sh", "-c", "trap '' TERM; sleep 1000"],
            |_| {},
        );
        std::thread::sleep(Duration::from_millis(200));
        let grace = Duration::from_secs(2);
        let started = Instant::now();
        let stopped = launched.container.stop(grace).unwrap();
        let took = started.elapsed();
        assert!(stopped.killed, "{name}: {stopped:?}");
        assert_eq!(stopped.exit, Exit::Status(ExitStatus::Killed(9)), "{name}");
        assert!(
            took >= grace && took < grace + Duration::from_secs(5),
            "{name}: stop took {took:?}"
        );
        remove(&harness, &handler, launched, stopped.exit);
    }
}

#[test]
fn exec_runs_in_the_container_with_a_timeout() {
    let harness = Harness::new(&["config"]);
    for handler in harness.installed() {
        let name = &handler.name;
        let id = container_id(&handler, "exec");
        let launched = launch(
            &harness,
            &handler,
            &id,
            "config",
            &["/bin/sh", "-c", "trap 'exit 0' USR1; sleep 1000 & wait"],
            |_| {},
        );
        let args = |script: &str| vec!["/bin/sh".to_string(), "-c".to_string(), script.to_string()];
        let output = launched
            .container
            .exec(
                &args("id -u; pwd; echo oops >&2; exit 4"),
                Duration::from_secs(10),
            )
            .unwrap();
        assert_eq!(output.exit_code, 4, "{name}: {output:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "1000\n/srv/app\n",
            "{name}"
        );
        assert_eq!(String::from_utf8_lossy(&output.stderr), "oops\n", "{name}");

        let started = Instant::now();
        let err = launched
            .container
            .exec(&args("sleep 100"), Duration::from_secs(1))
            .unwrap_err();
        assert!(
            matches!(err, ContainerError::Runtime(RuntimeError::Timeout { .. })),
            "{name}: {err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{name}: {:?}",
            started.elapsed()
        );
        let text = err.to_string();
        assert!(text.contains(name.as_str()) && text.contains(&id), "{text}");

        let err = launched
            .container
            .exec(&args("exec /no/such/binary"), Duration::from_secs(10));
        match err {
            // The shell reports it: the exec itself worked.
            Ok(output) => assert_eq!(output.exit_code, 127, "{name}: {output:?}"),
            Err(err) => panic!("{name}: {err}"),
        }
        let err = launched
            .container
            .exec(&["/no/such/binary".to_string()], Duration::from_secs(10))
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(name.as_str()) && text.contains(&id) && text.contains("/no/such/binary"),
            "{name}: {text}"
        );

        let stopped = launched.container.stop(Duration::from_secs(10)).unwrap();
        assert!(!stopped.killed, "{name}");
        remove(&harness, &handler, launched, stopped.exit);
    }
}

#[test]
fn streaming_exec_pipes_stdin_through_and_reports_the_exit_code() {
    use nodelet_runtime::oci_runtime::ExecStreams;
    use std::io::{Read, Write};
    let harness = Harness::new(&["tiny"]);
    for handler in harness.installed() {
        let name = &handler.name;
        let id = container_id(&handler, "stream");
        let launched = launch(&harness, &handler, &id, "tiny", &["sleep", "1000"], |_| {});
        let args: Vec<String> = ["/bin/sh", "-c", "cat; echo err >&2; exit 3"]
            .map(String::from)
            .to_vec();
        let streams = ExecStreams {
            stdin: true,
            stdout: true,
            stderr: true,
            tty: false,
        };
        let mut session = launched.container.spawn_exec(&args, streams).unwrap();
        let mut stdin = session.stdin.take().unwrap();
        stdin.write_all(b"hello\n").unwrap();
        drop(stdin);
        let mut stderr = session.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            stderr.read_to_string(&mut text).map(|_| text)
        });
        let mut stdout = String::new();
        session
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        assert_eq!(stdout, "hello\n", "{name}");
        assert_eq!(reader.join().unwrap().unwrap(), "err\n", "{name}");
        assert_eq!(session.wait().unwrap(), 3, "{name}");

        // A command that does not exist is the runtime's error, with its cause.
        let session = launched
            .container
            .spawn_exec(&["/no/such/binary".to_string()], ExecStreams::default())
            .unwrap();
        let err = session.wait().unwrap_err();
        assert!(err.to_string().contains("/no/such/binary"), "{name}: {err}");

        let stopped = launched.container.stop(Duration::from_secs(10)).unwrap();
        remove(&harness, &handler, launched, stopped.exit);
    }
}

#[test]
fn a_failed_create_names_the_handler_container_and_cause() {
    let harness = Harness::new(&["tiny"]);
    for handler in harness.installed() {
        let id = container_id(&handler, "bad");
        let bundle = nodelet_runtime::bundle::Bundle::create(
            &harness.tmp.path().join("containers").join(&id),
            &harness.layers("tiny"),
        )
        .unwrap();
        let spec = harness.spec_for("tiny", &bundle.rootfs(), &["/bin/does-not-exist"]);
        bundle
            .write_spec(&nodelet_runtime::spec::generate(&spec).unwrap())
            .unwrap();
        let err = nodelet_runtime::container::Container::create(
            &handler.runtime(),
            &id,
            &bundle,
            nodelet_runtime::oci_runtime::ContainerStdio::null(),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("{:?}", handler.name)) && text.contains(&id),
            "{text}"
        );
        assert!(
            text.contains("/bin/does-not-exist"),
            "{}: the runtime's message is missing: {text}",
            handler.name
        );
        bundle.remove().unwrap();
        common::assert_nothing_left(&harness, &handler, &id, u32::MAX, &common::test_cgroup(&id));
    }
}

#[test]
fn an_unknown_handler_is_an_error_naming_it() {
    let runtimes = [("runc".to_string(), RuntimeHandlerConfig::default())].into();
    let table = HandlerTable::from_config(None, &runtimes).unwrap();
    let err = table.get("kata-fc").unwrap_err();
    assert!(
        matches!(&err, HandlerError::Unknown { name, .. } if name == "kata-fc"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("no runtime for \"kata-fc\" is configured"),
        "{err}"
    );
}

/// Not a pass/fail check: prints how long a container of `/bin/true` takes per handler
/// (run with `--no-capture` to see it).
#[test]
fn start_latency() {
    let harness = Harness::new(&["tiny"]);
    for handler in harness.installed() {
        let mut runtime_ms = Vec::new();
        let mut total_ms = Vec::new();
        for run in 0..5 {
            let id = container_id(&handler, &format!("lat{run}"));
            let begin = Instant::now();
            let bundle = nodelet_runtime::bundle::Bundle::create(
                &harness.tmp.path().join("containers").join(&id),
                &harness.layers("tiny"),
            )
            .unwrap();
            let spec = harness.spec_for("tiny", &bundle.rootfs(), &["/bin/true"]);
            bundle
                .write_spec(&nodelet_runtime::spec::generate(&spec).unwrap())
                .unwrap();
            let created = Instant::now();
            let runtime = handler.runtime();
            let container = nodelet_runtime::container::Container::create(
                &runtime,
                &id,
                &bundle,
                nodelet_runtime::oci_runtime::ContainerStdio::null(),
            )
            .unwrap();
            container.start().unwrap();
            let exit = container.wait(Some(common::WAIT)).unwrap();
            assert_eq!(exit.and_then(Exit::code), Some(0), "{}", handler.name);
            container.delete().unwrap();
            runtime_ms.push(created.elapsed().as_secs_f64() * 1000.0);
            bundle.remove().unwrap();
            total_ms.push(begin.elapsed().as_secs_f64() * 1000.0);
        }
        let show = |ms: &[f64]| {
            ms.iter()
                .map(|m| format!("{m:.0}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "LATENCY {} ({} build): create+start+wait+delete ms: {}; with rootfs mount/unmount and spec: {}",
            handler.name,
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            show(&runtime_ms),
            show(&total_ms)
        );
    }
}

/// On a hybrid cgroup host with controllers on the cgroup2 mount, crun refuses to run unless
/// that mount is hidden from it: the handler table's automatic `hide_cgroup2` is what makes
/// crun work here (every other test runs crun with it).
#[test]
fn crun_on_a_hybrid_host_needs_the_cgroup2_mount_hidden() {
    let layout = nodelet_sys::cgroup::host_cgroup_layout().unwrap();
    let nodelet_sys::cgroup::CgroupLayout::Hybrid { controllers, .. } = &layout else {
        println!("SKIPPED: this host's cgroups are {layout:?}, not hybrid");
        return;
    };
    if controllers.is_empty() {
        println!("SKIPPED: the cgroup2 mount has no controllers, so crun runs without hiding it");
        return;
    }
    let harness = Harness::new(&["tiny"]);
    let Some(crun) = harness.installed().into_iter().find(|h| h.name == "crun") else {
        println!("SKIPPED: crun is not installed");
        return;
    };
    assert!(crun.hidden_cgroup2.is_some(), "hidden by default: {crun:?}");
    let exposed = nodelet_runtime::handlers::Handler {
        hidden_cgroup2: None,
        ..crun.clone()
    };
    let id = container_id(&crun, "hybrid");
    let bundle = nodelet_runtime::bundle::Bundle::create(
        &harness.tmp.path().join("containers").join(&id),
        &harness.layers("tiny"),
    )
    .unwrap();
    let spec = harness.spec_for("tiny", &bundle.rootfs(), &["/bin/true"]);
    bundle
        .write_spec(&nodelet_runtime::spec::generate(&spec).unwrap())
        .unwrap();
    let err = nodelet_runtime::container::Container::create(
        &exposed.runtime(),
        &id,
        &bundle,
        nodelet_runtime::oci_runtime::ContainerStdio::null(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("hybrid"), "{err}");
    nodelet_runtime::container::delete_if_present(&crun.runtime(), &id).unwrap();
    bundle.remove().unwrap();
}

/// Requests and limits reach the container's cgroup (read from inside it, cgroup v1 paths).
#[test]
fn cpu_and_memory_limits_apply() {
    if !std::path::Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists() {
        println!("SKIPPED: no cgroup v1 memory hierarchy on this host");
        return;
    }
    let harness = Harness::new(&["tiny"]);
    for handler in harness.installed() {
        let id = container_id(&handler, "limits");
        let script = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.shares \
                      /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us";
        let launched = launch(
            &harness,
            &handler,
            &id,
            "tiny",
            &["/bin/sh", "-c", script],
            |spec| {
                spec.resources = nodelet_runtime::spec::Resources::from_kubernetes(
                    Some(250),
                    Some(500),
                    Some(64 << 20),
                );
            },
        );
        let finished = finish(&harness, &handler, launched);
        assert_eq!(
            finished.exit.code(),
            Some(0),
            "{}: {}",
            handler.name,
            finished.stderr
        );
        assert_eq!(
            finished.stdout, "67108864\n256\n50000\n100000\n",
            "{}",
            handler.name
        );
    }
}
