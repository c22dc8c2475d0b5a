//! Pod and container cgroups under `nodelet run`: the pod cgroup carries the summed limits
//! plus the RuntimeClass overhead, a container's own memory limit OOM-kills it, and nothing
//! of the pod's cgroups is left once it ends. Privileged: run as root.

mod run_support;

use std::path::{Path, PathBuf};

use nodelet_testbed::Bed;
use run_support::{Node, image, pod};

/// A v1 hierarchy's directory for a cgroup path (`/nodelet/kubepods/...`).
fn v1_dir(controller: &str, path: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(path.trim_start_matches('/'))
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}

/// Every hierarchy root on this host (v1 ones and the cgroup2 mount).
fn hierarchy_roots() -> Vec<PathBuf> {
    let hierarchies = nodelet_runtime::pod_cgroup::Hierarchies::host().unwrap();
    let mut roots = hierarchies.v1.clone();
    roots.extend(hierarchies.unified.map(|(root, _)| root));
    roots
}

fn v1_host() -> bool {
    matches!(
        nodelet_sys::cgroup::host_cgroup_layout(),
        Ok(nodelet_sys::cgroup::CgroupLayout::Hybrid { .. }
            | nodelet_sys::cgroup::CgroupLayout::Legacy)
    )
}

const MI: u64 = 1 << 20;

/// The pod cgroup the worker reported (`pod cgroup <path>: ...`) is in no hierarchy.
fn assert_no_pod_cgroup_left(stderr: &str) {
    let path = stderr
        .lines()
        .find_map(|l| l.strip_prefix("nodelet: pod cgroup "))
        .and_then(|rest| rest.split_once(':'))
        .map(|(path, _)| path.to_string())
        .unwrap_or_else(|| panic!("no pod cgroup reported: {stderr}"));
    for root in hierarchy_roots() {
        let dir = root.join(path.trim_start_matches('/'));
        assert!(!dir.exists(), "{} left: {stderr}", dir.display());
    }
}

#[test]
fn the_pod_cgroup_has_the_summed_limits_plus_the_runtime_class_overhead() {
    pod_and_container_limits("runc");
}

#[test]
fn the_same_cgroups_under_crun() {
    pod_and_container_limits("crun");
}

fn pod_and_container_limits(handler: &str) {
    if !v1_host() {
        println!("SKIPPED: the checks read cgroup v1 files");
        return;
    }
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let class = format!(
        "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: heavy\nhandler: {handler}\noverhead:\n  podFixed:\n    cpu: 250m\n    memory: 120Mi\n---\n"
    );
    let tiny = image(&bed, "tiny");
    let yaml = format!(
        "{class}{}",
        pod(
            "limited",
            &format!(
                "  runtimeClassName: heavy\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 1\n  containers:\n\
                 \x20 - name: a\n    image: {tiny}\n    command: [\"sh\", \"-c\", \"cat /proc/self/cgroup; echo READY; sleep 60\"]\n\
                 \x20   resources:\n      requests: {{cpu: 100m, memory: 16Mi}}\n      limits: {{cpu: 500m, memory: 64Mi}}\n\
                 \x20 - name: b\n    image: {tiny}\n    command: [\"sleep\", \"60\"]\n\
                 \x20   resources:\n      requests: {{cpu: 100m, memory: 16Mi}}\n      limits: {{cpu: 250m, memory: 32Mi}}\n"
            )
        )
    );
    let mut running = node.start(&yaml);
    running.wait_for("[a] READY");
    // The container's own cgroup, as the host names it (the node's cgroup namespace).
    let stdout = running.stdout();
    let container_path = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("[a] "))
        .find_map(|l| {
            let (_, rest) = l.split_once(':')?;
            let (controllers, path) = rest.split_once(':')?;
            controllers
                .split(',')
                .any(|c| c == "memory")
                .then(|| path.to_string())
        })
        .unwrap_or_else(|| panic!("no memory cgroup in {stdout}"));
    assert!(
        container_path.starts_with("/nodelet/kubepods/burstable/pod"),
        "{container_path}"
    );
    let pod_path = Path::new(&container_path)
        .parent()
        .unwrap()
        .to_string_lossy()
        .into_owned();

    let pod_memory = v1_dir("memory", &pod_path);
    assert_eq!(
        read(&pod_memory, "memory.limit_in_bytes"),
        ((64 + 32 + 120) * MI).to_string()
    );
    let pod_cpu = v1_dir("cpu", &pod_path);
    assert_eq!(read(&pod_cpu, "cpu.cfs_period_us"), "100000");
    // 500m + 250m + 250m overhead.
    assert_eq!(read(&pod_cpu, "cpu.cfs_quota_us"), "100000");
    // Requests 200m + 250m overhead → 460 shares.
    assert_eq!(read(&pod_cpu, "cpu.shares"), "460");
    let container_memory = v1_dir("memory", &container_path);
    assert_eq!(
        read(&container_memory, "memory.limit_in_bytes"),
        (64 * MI).to_string()
    );
    let container_cpu = v1_dir("cpu", &container_path);
    assert_eq!(read(&container_cpu, "cpu.cfs_quota_us"), "50000");
    assert_eq!(read(&container_cpu, "cpu.shares"), "102");

    running.signal("TERM");
    let done = running.finish();
    assert!(
        done.stderr.contains(&format!("pod cgroup {pod_path}:")),
        "{}",
        done.all()
    );
    assert_no_pod_cgroup_left(&done.stderr);
    node.assert_clean();
}

#[test]
fn a_container_past_its_memory_limit_is_oom_killed() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    // `tail` keeps the last line of an endless line: its buffer grows until the limit.
    let yaml = pod(
        "hungry",
        &format!(
            "  restartPolicy: Never\n  containers:\n  - name: main\n    image: {}\n    command: [\"tail\", \"/dev/zero\"]\n    resources:\n      limits: {{memory: 16Mi}}\n",
            image(&bed, "tiny")
        ),
    );
    let done = node.run(&yaml);
    assert_eq!(done.code, Some(137), "{}", done.all());
    assert!(
        done.stderr
            .contains("container main terminated: reason OOMKilled"),
        "{}",
        done.all()
    );
    assert!(
        done.stderr.contains("nodelet: pod default/hungry Failed"),
        "{}",
        done.all()
    );
    assert_no_pod_cgroup_left(&done.stderr);
    node.assert_clean();
}

#[test]
fn the_pause_process_is_in_the_pod_cgroup() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    // With a shared PID namespace, PID 1 is the sandbox's pause.
    let yaml = pod(
        "paused",
        &format!(
            "  restartPolicy: Never\n  shareProcessNamespace: true\n  containers:\n  - name: main\n    image: {}\n    command: [\"cat\", \"/proc/1/cgroup\"]\n",
            image(&bed, "tiny")
        ),
    );
    let done = node.run(&yaml);
    assert_eq!(done.code, Some(0), "{}", done.all());
    let pause_memory = done
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("[main] "))
        .find(|l| l.contains(":memory:"))
        .unwrap_or_else(|| panic!("no memory line: {}", done.all()));
    assert!(
        pause_memory.contains(":/nodelet/kubepods/besteffort/pod"),
        "{}",
        done.all()
    );
    assert_no_pod_cgroup_left(&done.stderr);
    node.assert_clean();
}
