//! Pod events and container output on the terminal, for the commands that run pods without
//! a server (`nodelet run`, `nodelet agent --pod-manifest-path`).

use std::io::Write;

use nodelet_api::k8s::api::core::v1::Pod;
use nodelet_kubelet::events::Event;
use nodelet_kubelet::pod_worker::{PodReporter, Stream};

/// Events as `Type  Reason  Message` on stderr; container output as `[container] line` on
/// stdout (the container's stderr on stderr). With several pods each line names its pod:
/// `[pod] Type  Reason  Message` and `[pod/container] line`.
#[derive(Debug, Default)]
pub(crate) struct TerminalReporter {
    /// `name` in the default namespace, `namespace/name` elsewhere.
    pod: Option<String>,
}

impl TerminalReporter {
    /// For the only pod on the terminal.
    pub(crate) fn single() -> TerminalReporter {
        TerminalReporter { pod: None }
    }

    /// For one of several pods.
    pub(crate) fn for_pod(pod: &Pod) -> TerminalReporter {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let label = match pod.metadata.namespace.as_deref() {
            None | Some("default") => name.to_owned(),
            Some(namespace) => format!("{namespace}/{name}"),
        };
        TerminalReporter { pod: Some(label) }
    }
}

impl PodReporter for TerminalReporter {
    fn event(&self, _field_path: Option<&str>, event: &Event) {
        let prefix = self
            .pod
            .as_ref()
            .map(|pod| format!("[{pod}] "))
            .unwrap_or_default();
        eprintln!(
            "{prefix}{}  {}  {}",
            event.kind.as_str(),
            event.reason,
            event.message
        );
    }

    fn output(&self, container: &str, stream: Stream, line: &[u8]) {
        let prefix = match &self.pod {
            Some(pod) => format!("[{pod}/{container}] "),
            None => format!("[{container}] "),
        };
        let mut text = prefix.into_bytes();
        text.extend_from_slice(line);
        text.push(b'\n');
        let _ = match stream {
            Stream::Stdout => std::io::stdout().lock().write_all(&text),
            Stream::Stderr => std::io::stderr().lock().write_all(&text),
        };
    }

    fn log(&self, message: &str) {
        match &self.pod {
            Some(pod) => eprintln!("nodelet: pod {pod}: {message}"),
            None => eprintln!("nodelet: {message}"),
        }
    }
}
