//! What a pod's containers leave on disk, read back when a worker starts (after a nodelet
//! restart) and when a container ends:
//!
//! ```text
//! {pods_dir}/<uid>/containers/<name>_<attempt>_<uid>/   the bundle and the shim's state
//!     termination-log                                   bind-mounted at terminationMessagePath
//!     image.json                                        the image it started from (image_update)
//! {pods_dir}/<uid>/exits/<name>.json                    the last exit of a collected container
//! {log_dir}/<namespace>_<pod>_<uid>/<name>/<attempt>.log
//! ```
//!
//! `attempt` is the container's restart count for that run.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use nodelet_api::k8s::api::core::v1::Container;
use nodelet_api::k8s::jiff::Timestamp;
use nodelet_runtime::logs::{self, ContainerLogs};
use nodelet_runtime::spec::BindMount;
use serde_json::{Value, json};

use super::LastExit;
use crate::termination_message::{self as tm, MessageFile, Outcome, Policy};

/// The host file behind `terminationMessagePath`, in the container's directory.
const TERMINATION_MESSAGE_FILE: &str = "termination-log";

/// A container directory of the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerDir {
    pub name: String,
    pub attempt: u32,
    pub path: PathBuf,
}

/// The container directories under `{pod_dir}/containers` that belong to pod `uid`.
pub fn container_dirs(pod_dir: &Path, uid: &str) -> Vec<ContainerDir> {
    let Ok(entries) = std::fs::read_dir(pod_dir.join("containers")) else {
        return Vec::new();
    };
    let mut dirs: Vec<ContainerDir> = entries
        .flatten()
        .filter_map(|entry| {
            let file_name = entry.file_name();
            let (name, attempt) = parse_container_id(file_name.to_str()?, uid)?;
            Some(ContainerDir {
                name,
                attempt,
                path: entry.path(),
            })
        })
        .collect();
    dirs.sort_by(|a, b| (&a.name, a.attempt).cmp(&(&b.name, b.attempt)));
    dirs
}

/// `<name>_<attempt>_<uid>` → name and attempt (names are DNS labels: no `_`).
fn parse_container_id(id: &str, uid: &str) -> Option<(String, u32)> {
    let mut parts = id.splitn(3, '_');
    let (name, attempt, rest) = (parts.next()?, parts.next()?, parts.next()?);
    (rest == uid && !name.is_empty())
        .then(|| attempt.parse().ok().map(|a| (name.to_owned(), a)))
        .flatten()
}

/// The highest `<n>` of the container's `<n>.log` files.
pub fn last_logged_attempt(logs: &ContainerLogs) -> Option<u32> {
    std::fs::read_dir(logs.dir())
        .ok()?
        .flatten()
        .filter_map(|entry| {
            entry
                .file_name()
                .to_str()?
                .strip_suffix(".log")?
                .parse::<u32>()
                .ok()
        })
        .max()
}

/// Creates the (empty, world-writable: the container's user may be anyone) host file for
/// `terminationMessagePath` in `dir` and returns its bind mount; `None` without a path.
pub fn termination_message_mount(
    spec: &Container,
    dir: &Path,
) -> std::io::Result<Option<BindMount>> {
    use std::os::unix::fs::PermissionsExt;
    let destination = spec
        .termination_message_path
        .clone()
        .unwrap_or_else(|| tm::DEFAULT_PATH.to_owned());
    if destination.is_empty() {
        return Ok(None);
    }
    let source = dir.join(TERMINATION_MESSAGE_FILE);
    std::fs::write(&source, b"")?;
    std::fs::set_permissions(&source, std::fs::Permissions::from_mode(0o666))?;
    Ok(Some(BindMount {
        source,
        destination: destination.into(),
        read_only: false,
        propagation: nodelet_runtime::spec::MountPropagation::Private,
    }))
}

/// The message file of a container directory, if the container has one.
pub fn termination_message_file(dir: &Path) -> Option<PathBuf> {
    let file = dir.join(TERMINATION_MESSAGE_FILE);
    file.exists().then_some(file)
}

/// The termination message of an ended container (spec §5.8).
pub fn termination_message(
    spec: &Container,
    file: Option<&Path>,
    log_path: &Path,
    exit_code: i32,
    reason: &str,
) -> String {
    let policy = Policy::parse(spec.termination_message_policy.as_deref());
    let file = file.map_or(MessageFile::Missing, read_message_file);
    match tm::decide(policy, exit_code, reason, &file) {
        Outcome::Message(message) => message,
        Outcome::ReadLogs => {
            logs::termination_message_from_log(log_path, tm::MAX_LOG_LINES, tm::MAX_LOG_BYTES)
                .unwrap_or_else(|e| tm::log_read_error(&e.to_string()))
        }
    }
}

/// The last [`tm::MAX_FILE_BYTES`] bytes of the message file.
fn read_message_file(path: &Path) -> MessageFile {
    let read = || -> std::io::Result<Vec<u8>> {
        let mut file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        let keep = tm::MAX_FILE_BYTES as u64;
        file.seek(SeekFrom::Start(len.saturating_sub(keep)))?;
        let mut data = Vec::new();
        file.take(keep).read_to_end(&mut data)?;
        Ok(data)
    };
    match read() {
        Ok(data) => MessageFile::Read(data),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => MessageFile::Missing,
        Err(e) => MessageFile::Error {
            path: path.display().to_string(),
            error: e.to_string(),
        },
    }
}

fn last_exit_path(pod_dir: &Path, name: &str) -> PathBuf {
    pod_dir.join("exits").join(format!("{name}.json"))
}

/// Keeps container `name`'s last exit once its directory is gone.
pub fn save_last_exit(pod_dir: &Path, name: &str, exit: &LastExit) -> std::io::Result<()> {
    let path = last_exit_path(pod_dir, name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let value = json!({
        "exitCode": exit.code,
        "reason": exit.reason,
        "message": exit.message,
        "startedAt": exit.started_at.map(|t| t.to_string()),
        "finishedAt": exit.finished_at.to_string(),
    });
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, value.to_string())?;
    std::fs::rename(&tmp, &path)
}

/// Container `name`'s last exit saved by [`save_last_exit`].
pub fn load_last_exit(pod_dir: &Path, name: &str) -> Option<LastExit> {
    let bytes = std::fs::read(last_exit_path(pod_dir, name)).ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    let time = |key: &str| {
        value[key]
            .as_str()
            .and_then(|t| t.parse::<Timestamp>().ok())
    };
    Some(LastExit {
        code: i32::try_from(value["exitCode"].as_i64()?).ok()?,
        reason: value["reason"].as_str()?.to_owned(),
        message: value["message"].as_str().unwrap_or_default().to_owned(),
        started_at: time("startedAt"),
        finished_at: time("finishedAt")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_name_the_container_and_its_attempt() {
        assert_eq!(
            parse_container_id("main_3_0b5e-uid", "0b5e-uid"),
            Some(("main".into(), 3))
        );
        assert_eq!(parse_container_id("main_3_other", "0b5e-uid"), None);
        assert_eq!(parse_container_id("main_x_0b5e-uid", "0b5e-uid"), None);
        assert_eq!(parse_container_id("_1_0b5e-uid", "0b5e-uid"), None);
        assert_eq!(parse_container_id("main", "0b5e-uid"), None);
    }

    #[test]
    fn disk_layout_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let pod_dir = dir.path();
        for id in ["web_0_u1", "web_1_u1", "side_0_u1", "web_2_u2", "junk"] {
            std::fs::create_dir_all(pod_dir.join("containers").join(id)).unwrap();
        }
        let found: Vec<(String, u32)> = container_dirs(pod_dir, "u1")
            .into_iter()
            .map(|d| (d.name, d.attempt))
            .collect();
        assert_eq!(
            found,
            vec![("side".into(), 0), ("web".into(), 0), ("web".into(), 1)]
        );

        let logs = ContainerLogs::new(&pod_dir.join("logs"), "default", "p", "u1", "web");
        assert_eq!(last_logged_attempt(&logs), None);
        std::fs::create_dir_all(logs.dir()).unwrap();
        for n in [0, 4, 2] {
            std::fs::write(logs.file(n), "").unwrap();
        }
        assert_eq!(last_logged_attempt(&logs), Some(4));

        let exit = LastExit {
            code: 3,
            reason: "Error".into(),
            message: "bye".into(),
            started_at: Some(Timestamp::new(10, 0).unwrap()),
            finished_at: Timestamp::new(12, 5).unwrap(),
        };
        assert_eq!(load_last_exit(pod_dir, "web"), None);
        save_last_exit(pod_dir, "web", &exit).unwrap();
        assert_eq!(load_last_exit(pod_dir, "web"), Some(exit));
    }

    #[test]
    fn termination_messages_come_from_the_file_or_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let spec = |policy: Option<&str>, path: Option<&str>| Container {
            name: "main".into(),
            termination_message_policy: policy.map(str::to_owned),
            termination_message_path: path.map(str::to_owned),
            ..Container::default()
        };
        let mount = termination_message_mount(&spec(None, None), dir.path())
            .unwrap()
            .unwrap();
        assert_eq!(mount.destination, PathBuf::from(tm::DEFAULT_PATH));
        assert!(
            termination_message_mount(&spec(None, Some("")), dir.path())
                .unwrap()
                .is_none()
        );
        let file = termination_message_file(dir.path()).unwrap();
        let log = dir.path().join("0.log");
        std::fs::write(
            &log,
            "2026-11-25T16:16:03Z stdout F first\n2026-11-25T16:16:04Z stderr F last words\n",
        )
        .unwrap();
        let fallback = spec(Some("FallbackToLogsOnError"), None);
        assert_eq!(
            termination_message(&fallback, Some(&file), &log, 1, "Error"),
            "first\nlast words\n"
        );
        assert_eq!(
            termination_message(&fallback, Some(&file), &log, 0, "Completed"),
            ""
        );
        std::fs::write(&file, format!("{}END", "x".repeat(5000))).unwrap();
        let message = termination_message(&spec(None, None), Some(&file), &log, 0, "Completed");
        assert_eq!(message.len(), tm::MAX_FILE_BYTES);
        assert!(message.ends_with("END"));
        assert_eq!(
            termination_message(&spec(None, None), None, &log, 1, "Error"),
            ""
        );
    }
}
