//! Shared set-up for the privileged runtime tests: images pulled from the test bed into a
//! temporary content store, a handler table of every installed runtime with private state
//! directories, and helpers to run a container to its end and check nothing is left behind.

#![allow(dead_code, reason = "each test binary uses part of this")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nodelet_image::digest::Digest;
use nodelet_image::images::ImageRecord;
use nodelet_image::oci::Platform;
use nodelet_image::pull::{ImageService, NoProgress};
use nodelet_image::reference::Reference;
use nodelet_image::registry::{ClientOptions, RegistryClient, RegistryHosts, RegistrySettings};
use nodelet_image::store::ContentStore;
use nodelet_runtime::bundle::Bundle;
use nodelet_runtime::container::{Container, Exit};
use nodelet_runtime::handlers::{Handler, HandlerTable, RuntimeHandlerConfig};
use nodelet_runtime::oci_runtime::ContainerStdio;
use nodelet_runtime::spec::{self, ContainerSpec};
use nodelet_runtime::user::{self, UserRequest};
use nodelet_testbed::Bed;

/// The runtimes tests try, by handler name (= binary name in PATH).
pub const RUNTIMES: [&str; 3] = ["runc", "crun", "youki"];
/// No single wait in these tests may take longer.
pub const WAIT: Duration = Duration::from_secs(20);
pub const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Fails clearly when not root: these tests mount filesystems and run OCI runtimes.
pub fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .unwrap_or("?");
    assert_eq!(
        euid, "0",
        "the runtime tests need root (mounts, namespaces, cgroups); CI runs them as root"
    );
}

pub struct Harness {
    pub tmp: tempfile::TempDir,
    pub table: HandlerTable,
    pub images: BTreeMap<String, ImageRecord>,
    store_root: PathBuf,
}

impl Harness {
    /// Pulls `images` and builds the handler table of the installed runtimes.
    pub fn new(images: &[&str]) -> Harness {
        require_root();
        nodelet_sys::process::become_child_subreaper().expect("becoming a child subreaper");
        let tmp = tempfile::Builder::new()
            .prefix("nodelet-rt-")
            .tempdir()
            .unwrap();
        let store_root = tmp.path().join("store");
        let bed = Bed::shared().expect("test bed");
        let mut settings = BTreeMap::new();
        settings.insert(
            bed.plain.host.clone(),
            RegistrySettings {
                insecure: true,
                ..Default::default()
            },
        );
        let hosts = RegistryHosts::new(settings, vec![bed.certs_d.clone()]);
        let service = ImageService::new(
            ContentStore::open(&store_root).unwrap(),
            RegistryClient::new(hosts, ClientOptions::default()),
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut records = BTreeMap::new();
        for image in images {
            let reference =
                Reference::parse_normalized(&format!("{}/{image}:v1", bed.plain.host)).unwrap();
            let record = runtime
                .block_on(async {
                    tokio::time::timeout(
                        Duration::from_secs(120),
                        service.pull(&reference, &Platform::host(), &[], Arc::new(NoProgress)),
                    )
                    .await
                })
                .expect("pull timed out")
                .expect("pull");
            records.insert(image.to_string(), record);
        }
        let mut runtimes = BTreeMap::new();
        for name in RUNTIMES {
            runtimes.insert(
                name.to_string(),
                RuntimeHandlerConfig {
                    root: Some(tmp.path().join(format!("state-{name}"))),
                    ..Default::default()
                },
            );
        }
        let table = HandlerTable::from_config(Some("runc"), &runtimes).unwrap();
        Harness {
            tmp,
            table,
            images: records,
            store_root,
        }
    }

    /// The installed handlers; prints which are skipped.
    pub fn installed(&self) -> Vec<Handler> {
        let mut found = Vec::new();
        for handler in self.table.handlers() {
            match handler.probe() {
                Ok(version) => {
                    println!("{}: {version}", handler.name);
                    found.push(handler.clone());
                }
                Err(err) => println!(
                    "SKIPPED handler {}: not installed or not runnable ({err})",
                    handler.name
                ),
            }
        }
        assert!(
            found.iter().any(|h| h.name == "runc"),
            "runc must be installed (apt-get install runc)"
        );
        found
    }

    /// The image's layer snapshots, base first.
    pub fn layers(&self, image: &str) -> Vec<PathBuf> {
        self.images[image]
            .layers
            .iter()
            .map(|l| {
                self.store_root
                    .join("snapshots")
                    .join(Digest::parse(&l.diff_id).unwrap().hex())
            })
            .collect()
    }

    /// A container spec for `image`: its env and working dir, its user resolved in `rootfs`.
    pub fn spec_for(&self, image: &str, rootfs: &Path, args: &[&str]) -> ContainerSpec {
        let config = &self.images[image].config;
        let request = UserRequest {
            image_user: config.user.clone(),
            ..Default::default()
        };
        let resolved = user::resolve(rootfs, &request).unwrap();
        let mut spec = ContainerSpec::new(args.iter().map(|a| a.to_string()).collect(), resolved);
        spec.env = config.env.clone().unwrap_or_default();
        spec.cwd = config
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into());
        if let Some(signal) = &config.stop_signal {
            spec.stop_signal = nodelet_runtime::signal::Signal::parse(signal).unwrap();
        }
        spec
    }

    pub fn out_dir(&self) -> PathBuf {
        self.tmp.path().to_path_buf()
    }
}

impl Drop for Harness {
    /// After a failed test too: delete what the runtimes still have and detach what is still
    /// mounted here, so a failure leaves no containers or mounts behind on the machine.
    fn drop(&mut self) {
        for handler in self.table.handlers() {
            let runtime = handler.runtime();
            for container in runtime.list().unwrap_or_default() {
                let _ = runtime.delete(&container.id, true);
            }
        }
        let ours = self.tmp.path().to_string_lossy().into_owned();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<&str> = mountinfo
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4))
            .filter(|point| point.starts_with(&ours))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for point in points {
            let _ = nodelet_sys::mount::unmount(Path::new(point), true);
        }
    }
}

/// A container set up and started, with its output going to files.
pub struct Launched {
    pub container: Container,
    pub bundle: Bundle,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    pub pid: u32,
    pub cgroup: String,
}

/// Mounts the rootfs, writes the spec (`configure` adjusts it), creates and starts.
pub fn launch(
    harness: &Harness,
    handler: &Handler,
    id: &str,
    image: &str,
    args: &[&str],
    configure: impl FnOnce(&mut ContainerSpec),
) -> Launched {
    let bundle = Bundle::create(
        &harness.tmp.path().join("containers").join(id),
        &harness.layers(image),
    )
    .unwrap();
    let mut spec = harness.spec_for(image, &bundle.rootfs(), args);
    spec.hostname = Some("web-0".into());
    // One level under the root: a shared parent would be left behind empty (and removing
    // it races with tests creating containers in it).
    let cgroup = test_cgroup(id);
    spec.cgroup_path = Some(cgroup.clone());
    configure(&mut spec);
    bundle.write_spec(&spec::generate(&spec).unwrap()).unwrap();
    let stdout = harness.out_dir().join(format!("{id}.out"));
    let stderr = harness.out_dir().join(format!("{id}.err"));
    let stdio = ContainerStdio {
        stdin: Stdio::null(),
        stdout: std::fs::File::create(&stdout).unwrap().into(),
        stderr: std::fs::File::create(&stderr).unwrap().into(),
    };
    let container = Container::create(&handler.runtime(), id, &bundle, stdio)
        .unwrap_or_else(|e| panic!("{}: creating {id}: {e}", handler.name));
    let pid = container.pid().unwrap();
    container
        .start()
        .unwrap_or_else(|e| panic!("{}: starting {id}: {e}", handler.name));
    Launched {
        container,
        bundle,
        stdout,
        stderr,
        pid,
        cgroup,
    }
}

/// What a finished container left.
pub struct Finished {
    pub exit: Exit,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `args` in a new container of `image` (`what` names it, `configure` adjusts the spec)
/// to its end, then removes it as [`finish`] does.
pub fn run_to_end(
    harness: &Harness,
    handler: &Handler,
    what: &str,
    image: &str,
    args: &[&str],
    configure: impl FnOnce(&mut ContainerSpec),
) -> Finished {
    let id = container_id(handler, what);
    let launched = launch(harness, handler, &id, image, args, configure);
    finish(harness, handler, launched)
}

/// Waits for the container to end, deletes it and its bundle, and checks nothing is left.
pub fn finish(harness: &Harness, handler: &Handler, launched: Launched) -> Finished {
    let exit = launched
        .container
        .wait(Some(WAIT))
        .unwrap()
        .unwrap_or_else(|| {
            panic!(
                "{}: {} still running after {WAIT:?}",
                handler.name,
                launched.container.id()
            )
        });
    remove(harness, handler, launched, exit)
}

/// Deletes a container (killing it if needed) and its bundle, then checks for leftovers.
pub fn remove(harness: &Harness, handler: &Handler, launched: Launched, exit: Exit) -> Finished {
    let id = launched.container.id().to_string();
    launched
        .container
        .delete()
        .unwrap_or_else(|e| panic!("{}: deleting {id}: {e}", handler.name));
    launched.bundle.remove().unwrap();
    assert_nothing_left(harness, handler, &id, launched.pid, &launched.cgroup);
    Finished {
        exit,
        stdout: std::fs::read_to_string(&launched.stdout).unwrap(),
        stderr: std::fs::read_to_string(&launched.stderr).unwrap(),
    }
}

/// Mounts under this test's directory (other tests run in parallel, so the whole table's
/// line count is not ours to compare).
pub fn our_mounts(harness: &Harness) -> usize {
    let ours = harness.tmp.path().to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&ours))
        .count()
}

pub fn assert_nothing_left(harness: &Harness, handler: &Handler, id: &str, pid: u32, cgroup: &str) {
    assert_eq!(our_mounts(harness), 0, "{}: {id} left mounts", handler.name);
    let listed = handler.runtime().list().unwrap();
    assert!(
        listed.is_empty(),
        "{}: runtime still lists {listed:?}",
        handler.name
    );
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok();
    assert!(
        status.is_none(),
        "{}: process {pid} of {id} still exists: {status:?}",
        handler.name
    );
    let hierarchies = nodelet_runtime::pod_cgroup::Hierarchies::host().unwrap();
    let roots = hierarchies
        .v1
        .iter()
        .chain(hierarchies.unified.iter().map(|(root, _)| root));
    for root in roots {
        let dir = root.join(cgroup.trim_start_matches('/'));
        assert!(
            !dir.exists(),
            "{}: {id} left its cgroup {}",
            handler.name,
            dir.display()
        );
    }
    assert!(
        !harness.tmp.path().join("containers").join(id).exists(),
        "{}: {id} left its bundle",
        handler.name
    );
}

/// The cgroup path a test container gets (`cgroupsPath`).
pub fn test_cgroup(id: &str) -> String {
    format!("/nodelet-test-{id}")
}

/// A container id unique to this test process.
pub fn container_id(handler: &Handler, what: &str) -> String {
    format!("{what}-{}-{}", handler.name, std::process::id())
}
