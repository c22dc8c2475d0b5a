//! The node side of `kubectl logs` and `kubectl exec` inside `nodelet serve`: the API server's
//! [`PodStreams`], served from what is on disk. Logs are the containers' CRI files
//! (`{log_dir}/<ns>_<pod>_<uid>/<container>/<restart>.log`, read with `LogReader`); exec finds
//! the pod worker's running container (`{root_dir}/pods/<uid>/containers/<name>_<n>_<uid>/`,
//! the highest run `n` that some handler's runtime reports running) and runs the command
//! there with `runc exec` (or the handler's runtime), its pipes pumped by threads.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use nodelet_api::k8s::api::core::v1::Pod;
use nodelet_apiserver::ApiError;
use nodelet_apiserver::streams::{ExecIo, ExecRequest, LogRequest, LogStream, PodStreams};
use nodelet_runtime::bundle::Bundle;
use nodelet_runtime::container::Container;
use nodelet_runtime::handlers::HandlerTable;
use nodelet_runtime::logs::{ContainerLogs, LogOptions, LogReader};
use nodelet_runtime::oci;
use nodelet_runtime::oci_runtime::ExecStreams;
use tokio::sync::mpsc;

type ApiResult<T> = Result<T, ApiError>;

/// Bytes per log chunk sent to the client.
const LOG_CHUNK: usize = 32 * 1024;

/// The node's logs and exec.
#[derive(Debug, Clone)]
pub struct NodeStreams {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `{root_dir}/pods`, where the pod workers keep their containers.
    pods_dir: PathBuf,
    log_dir: PathBuf,
    handlers: HandlerTable,
}

impl NodeStreams {
    pub fn new(root_dir: &Path, log_dir: &Path, handlers: HandlerTable) -> NodeStreams {
        NodeStreams {
            inner: Arc::new(Inner {
                pods_dir: std::path::absolute(root_dir.join("pods"))
                    .unwrap_or_else(|_| root_dir.join("pods")),
                log_dir: log_dir.to_owned(),
                handlers,
            }),
        }
    }
}

struct PodNames {
    namespace: String,
    name: String,
    uid: String,
}

fn names(pod: &Pod) -> PodNames {
    let m = &pod.metadata;
    PodNames {
        namespace: m.namespace.clone().unwrap_or_else(|| "default".into()),
        name: m.name.clone().unwrap_or_default(),
        uid: m.uid.clone().unwrap_or_default(),
    }
}

/// The container's `restartCount` from the pod's status (0 when it has none yet).
fn restart_count(pod: &Pod, container: &str) -> u32 {
    let Some(status) = pod.status.as_ref() else {
        return 0;
    };
    [&status.container_statuses, &status.init_container_statuses]
        .into_iter()
        .flatten()
        .flatten()
        .find(|s| s.name == container)
        .map_or(0, |s| s.restart_count.max(0) as u32)
}

impl Inner {
    /// The pod worker's runs of `container`, newest first: (run number, id, directory).
    fn runs(&self, pod: &PodNames, container: &str) -> Vec<(u32, String, PathBuf)> {
        let dir = self.pods_dir.join(&pod.uid).join("containers");
        let suffix = format!("_{}", pod.uid);
        let mut runs: Vec<(u32, String, PathBuf)> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let id = entry.file_name().to_str()?.to_owned();
                let run = id
                    .strip_suffix(&suffix)?
                    .strip_prefix(container)?
                    .strip_prefix('_')?
                    .parse()
                    .ok()?;
                Some((run, id, entry.path()))
            })
            .collect();
        runs.sort_by_key(|run| std::cmp::Reverse(run.0));
        runs
    }

    /// The running container: the newest run that a handler's runtime reports running (the
    /// default handler asked first).
    fn running_container(&self, pod: &PodNames, container: &str) -> Option<Container> {
        let default = self.handlers.default_handler();
        let handlers: Vec<_> = std::iter::once(default)
            .chain(self.handlers.handlers().filter(|h| h.name != default.name))
            .collect();
        for (_, id, dir) in self.runs(pod, container) {
            for handler in &handlers {
                let runtime = handler.runtime();
                let Ok(state) = runtime.state(&id) else {
                    continue;
                };
                if state.status == oci::Status::Running {
                    return Container::open(&runtime, &id, &Bundle::open(&dir)).ok();
                }
            }
        }
        None
    }

    /// The pid and start time of the container's first process, to tell when it has ended
    /// without reaping it (the pod worker does that).
    fn init_process(&self, pod: &PodNames, container: &str, run: u32) -> Option<(u32, String)> {
        let id = format!("{container}_{run}_{}", pod.uid);
        self.handlers.handlers().find_map(|handler| {
            let state = handler.runtime().state(&id).ok()?;
            (state.status == oci::Status::Running && state.pid != 0)
                .then_some(state.pid)
                .and_then(|pid| Some((pid, process_start(pid)?)))
        })
    }
}

/// `/proc/<pid>/stat`'s start time while the process is alive (not a zombie).
fn process_start(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: the fields after it follow its closing parenthesis.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = *fields.first()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.get(19).map(|s| (*s).to_owned())
}

impl PodStreams for NodeStreams {
    fn logs(&self, pod: Pod, request: LogRequest) -> BoxFuture<'static, ApiResult<LogStream>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let names = names(&pod);
            let restart = restart_count(&pod, &request.container);
            let run = if request.previous {
                restart.saturating_sub(1)
            } else {
                restart
            };
            let logs = ContainerLogs::new(
                &inner.log_dir,
                &names.namespace,
                &names.name,
                &names.uid,
                &request.container,
            );
            let path = logs.file(run);
            let since = request.since_seconds.and_then(|s| {
                jiff::Timestamp::now()
                    .checked_sub(jiff::SignedDuration::from_secs(s as i64))
                    .ok()
            });
            let options = LogOptions {
                follow: request.follow,
                tail_lines: request.tail_lines.map(|t| t as usize),
                since,
                timestamps: request.timestamps,
                limit_bytes: request.limit_bytes,
                stream: None,
            };
            // Following ends when the container's first process has ended.
            let writer_done: Option<nodelet_runtime::logs::WriterDone> = if request.follow {
                let init = tokio::task::spawn_blocking({
                    let inner = inner.clone();
                    let container = request.container.clone();
                    move || inner.init_process(&names, &container, run)
                })
                .await
                .map_err(ApiError::internal)?;
                Some(match init {
                    None => Box::new(|_| true),
                    Some((pid, start)) => nodelet_runtime::logs::polled_writer_done(move || {
                        process_start(pid).as_deref() != Some(start.as_str())
                    }),
                })
            } else {
                None
            };
            let reader = LogReader::open(&path, options, writer_done).map_err(|err| {
                ApiError::bad_request(format!(
                    "container \"{}\" in pod \"{}\" has no log at {}: {err}",
                    request.container,
                    pod.metadata.name.as_deref().unwrap_or(""),
                    path.display()
                ))
            })?;
            let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(8);
            let limit = request.limit_bytes;
            let timestamps = request.timestamps;
            std::thread::spawn(move || pump_log(reader, timestamps, limit, &tx));
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            });
            Ok(Box::pin(stream) as LogStream)
        })
    }

    fn exec(
        &self,
        pod: Pod,
        request: ExecRequest,
        io: ExecIo,
    ) -> BoxFuture<'static, ApiResult<i32>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let ExecIo {
                stdin,
                stdout,
                stderr,
                resize,
                gone,
            } = io;
            let streams = ExecStreams {
                stdin: stdin.is_some(),
                stdout: stdout.is_some(),
                stderr: stderr.is_some(),
                tty: request.tty,
            };
            let names = names(&pod);
            let command = request.command.clone();
            let mut session = tokio::task::spawn_blocking(move || {
                let container = inner
                    .running_container(&names, &request.container)
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "container \"{}\" in pod \"{}\" is not running",
                            request.container, names.name
                        ))
                    })?;
                container
                    .spawn_exec(&command, streams)
                    .map_err(|e| exec_error(&e))
            })
            .await
            .map_err(ApiError::internal)??;
            let killer = session.killer();
            let watchdog = tokio::spawn(async move {
                if gone.await.is_ok() {
                    killer.kill();
                }
            });
            // A terminal is the process's stdin and stdout in one.
            let terminal = session.terminal.take();
            let clone = |t: &nodelet_runtime::oci_runtime::Terminal| t.try_clone().ok();
            let input = match &terminal {
                Some(t) => clone(t).map(|f| Box::new(f) as Box<dyn Write + Send>),
                None => session
                    .stdin
                    .take()
                    .map(|p| Box::new(p) as Box<dyn Write + Send>),
            };
            let output = match &terminal {
                Some(t) => clone(t).map(|f| Box::new(f) as Box<dyn Read + Send>),
                None => session
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn Read + Send>),
            };
            if let (Some(mut rx), Some(mut pipe)) = (stdin, input) {
                std::thread::spawn(move || {
                    while let Some(data) = rx.blocking_recv() {
                        if pipe.write_all(&data).is_err() {
                            break;
                        }
                    }
                });
            }
            if let (Some(mut rx), Some(terminal)) = (resize, terminal) {
                std::thread::spawn(move || {
                    while let Some(size) = rx.blocking_recv() {
                        let _ = terminal.resize(size.width, size.height);
                    }
                });
            }
            let pumps: Vec<_> = [
                (output, stdout),
                (
                    session
                        .stderr
                        .take()
                        .map(|p| Box::new(p) as Box<dyn Read + Send>),
                    stderr,
                ),
            ]
            .into_iter()
            .filter_map(|(pipe, tx)| Some((pipe?, tx?)))
            .map(|(pipe, tx)| std::thread::spawn(move || pump_output(pipe, &tx)))
            .collect();
            let result = tokio::task::spawn_blocking(move || {
                let code = session.wait();
                for pump in pumps {
                    let _ = pump.join();
                }
                code
            })
            .await
            .map_err(ApiError::internal)?;
            watchdog.abort();
            result.map_err(|e| exec_error(&e))
        })
    }
}

fn exec_error(err: &dyn std::fmt::Display) -> ApiError {
    ApiError::internal(format!("error executing command in container: {err}"))
}

/// Copies a process's output to the client until it ends (or the client is gone).
fn pump_output(mut pipe: Box<dyn Read + Send>, tx: &mpsc::Sender<Bytes>) {
    let mut buf = vec![0u8; LOG_CHUNK];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if tx.blocking_send(Bytes::copy_from_slice(&buf[..n])).is_err() {
                    break;
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

/// Sends the log's lines to the client as they come (one chunk each, so `kubectl logs -f`
/// shows them at once), up to `limit` bytes.
fn pump_log(
    reader: LogReader,
    timestamps: bool,
    limit: Option<u64>,
    tx: &mpsc::Sender<std::io::Result<Bytes>>,
) {
    let mut left = limit.unwrap_or(u64::MAX);
    for line in reader {
        if left == 0 {
            break;
        }
        let mut out = Vec::new();
        match line {
            Ok(line) => line.render(timestamps, &mut out),
            Err(err) => {
                let _ = tx.blocking_send(Err(err));
                return;
            }
        }
        out.truncate(out.len().min(usize::try_from(left).unwrap_or(usize::MAX)));
        left -= out.len() as u64;
        if tx.blocking_send(Ok(Bytes::from(out))).is_err() {
            return;
        }
    }
}
