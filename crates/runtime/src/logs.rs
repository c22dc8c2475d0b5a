//! Container logs in the CRI format, the one the kubelet, `crictl` and log collectors read:
//!
//! ```text
//! 2026-11-25T16:16:03.123456789Z stdout F a whole line
//! 2026-11-25T16:16:03.2Z stderr P the first 16 KiB of a longer li
//! 2026-11-25T16:16:03.2Z stderr F ne, and its end
//! ```
//!
//! One record per line: the time the bytes were read (RFC 3339 in UTC with up to nine
//! fractional digits, trailing zeros dropped, as Go's `RFC3339Nano` prints it), the stream, a
//! tag (`F`: the record ends a line; `P`: a partial line, continued by the next record of the
//! same stream) and the content without its newline. A line longer than the maximum record
//! size ([`DEFAULT_MAX_LINE`]) is cut into `P` records; output that ends without a newline
//! ends with a `P` record.
//!
//! Files: `{log_dir}/<namespace>_<pod>_<uid>/<container>/<restart>.log` ([`ContainerLogs`]),
//! mode 0640, written only by the container's shim ([`CriLogWriter`]). [`LogReader`] reads
//! them back for `kubectl logs` (tail, since, follow, timestamps, limit), and
//! [`termination_message_from_log`] is `terminationMessagePolicy: FallbackToLogsOnError`.

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

mod rotation;

pub use rotation::{
    DEFAULT_MAX_FILES, DEFAULT_MAX_SIZE, LogRotation, MIN_MAX_FILES, RotatingFile, RotationError,
    rotated_files,
};

/// Where pod logs go unless configured otherwise.
pub const DEFAULT_LOG_DIR: &str = "/var/log/pods";
/// The longest record content; longer lines are split into `P` records of this size.
pub const DEFAULT_MAX_LINE: usize = 16 * 1024;
/// Log files are readable by their group (log collectors), writable by root only.
pub const LOG_FILE_MODE: u32 = 0o640;
/// The kubelet's limits for a termination message taken from the log.
pub const TERMINATION_MESSAGE_LINES: usize = 80;
pub const TERMINATION_MESSAGE_BYTES: usize = 2048;
/// How often a following reader looks for more.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(100);

/// A container's output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The log files of one container of one pod: `{log_dir}/<namespace>_<pod>_<uid>/<container>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLogs {
    dir: PathBuf,
}

impl ContainerLogs {
    pub fn new(
        log_dir: &Path,
        namespace: &str,
        pod: &str,
        pod_uid: &str,
        container: &str,
    ) -> ContainerLogs {
        ContainerLogs {
            dir: pod_log_dir(log_dir, namespace, pod, pod_uid).join(container),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log of the container's run number `restart` (0 for the first).
    pub fn file(&self, restart: u32) -> PathBuf {
        self.dir.join(format!("{restart}.log"))
    }

    /// The log of the run before `restart` (`kubectl logs --previous`), if there was one.
    pub fn previous(&self, restart: u32) -> Option<PathBuf> {
        restart.checked_sub(1).map(|r| self.file(r))
    }
}

/// `{log_dir}/<namespace>_<pod>_<uid>`: the directory of a pod's logs, removed with the pod.
pub fn pod_log_dir(log_dir: &Path, namespace: &str, pod: &str, pod_uid: &str) -> PathBuf {
    log_dir.join(format!("{namespace}_{pod}_{pod_uid}"))
}

/// Appends one record to `out`.
pub fn format_record(
    out: &mut Vec<u8>,
    timestamp: Timestamp,
    stream: Stream,
    partial: bool,
    content: &[u8],
) {
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "{timestamp} {stream} {} ",
        if partial { 'P' } else { 'F' }
    );
    out.extend_from_slice(content);
    out.push(b'\n');
}

/// Turns the bytes of both streams into records and appends them to one file (or any
/// writer): each [`CriLogWriter::write`] becomes one `write` of whole records, so a reader
/// never sees half a record from us.
#[derive(Debug)]
pub struct CriLogWriter<W: Write> {
    out: W,
    max_line: usize,
    /// The unfinished line of each stream (at most `max_line` bytes).
    pending: [Vec<u8>; 2],
    records: Vec<u8>,
}

impl CriLogWriter<File> {
    /// Opens `path` for appending (creating it with mode 0640 and its directories).
    pub fn create(path: &Path, max_line: usize) -> io::Result<CriLogWriter<File>> {
        Ok(CriLogWriter::new(open_log_file(path)?, max_line))
    }
}

impl CriLogWriter<RotatingFile> {
    /// Like [`CriLogWriter::create`], rotating the file by `rotation` (the shim's writer).
    pub fn create_rotating(
        path: &Path,
        max_line: usize,
        rotation: LogRotation,
    ) -> io::Result<CriLogWriter<RotatingFile>> {
        Ok(CriLogWriter::new(
            RotatingFile::open(path, rotation)?,
            max_line,
        ))
    }
}

/// Opens a log file for appending, creating it (mode 0640) and its directories.
fn open_log_file(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)?;
    }
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(LOG_FILE_MODE)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(LOG_FILE_MODE))?;
    Ok(file)
}

/// Creates (or truncates) a file beside the logs with their mode.
fn create_log_file(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(LOG_FILE_MODE)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(LOG_FILE_MODE))?;
    Ok(file)
}

impl<W: Write> CriLogWriter<W> {
    pub fn new(out: W, max_line: usize) -> CriLogWriter<W> {
        CriLogWriter {
            out,
            max_line: max_line.max(1),
            pending: [Vec::new(), Vec::new()],
            records: Vec::new(),
        }
    }

    /// Frames `bytes`, read from `stream` at `now`, and writes the records they complete.
    pub fn write(&mut self, stream: Stream, bytes: &[u8], now: Timestamp) -> io::Result<()> {
        let pending = &mut self.pending[stream.index()];
        let mut rest = bytes;
        while !rest.is_empty() {
            let line_end = rest.iter().position(|b| *b == b'\n');
            let segment = &rest[..line_end.unwrap_or(rest.len())];
            let mut segment_rest = segment;
            while !segment_rest.is_empty() {
                if pending.len() == self.max_line {
                    // More content for a line already at the maximum: cut it here.
                    format_record(&mut self.records, now, stream, true, pending);
                    pending.clear();
                }
                let take = segment_rest.len().min(self.max_line - pending.len());
                pending.extend_from_slice(&segment_rest[..take]);
                segment_rest = &segment_rest[take..];
            }
            match line_end {
                Some(end) => {
                    format_record(&mut self.records, now, stream, false, pending);
                    pending.clear();
                    rest = &rest[end + 1..];
                }
                None => rest = &[],
            }
        }
        if pending.capacity() > 2 * self.max_line {
            pending.shrink_to(self.max_line);
        }
        self.flush_records()
    }

    /// The stream has ended: what is left of its last line becomes a `P` record.
    pub fn finish(&mut self, stream: Stream, now: Timestamp) -> io::Result<()> {
        let pending = &mut self.pending[stream.index()];
        if !pending.is_empty() {
            format_record(&mut self.records, now, stream, true, pending);
            pending.clear();
        }
        self.flush_records()
    }

    pub fn get_ref(&self) -> &W {
        &self.out
    }

    fn flush_records(&mut self) -> io::Result<()> {
        if self.records.is_empty() {
            return Ok(());
        }
        let result = self.out.write_all(&self.records);
        self.records.clear();
        if self.records.capacity() > 4 * self.max_line {
            self.records.shrink_to(self.max_line);
        }
        result
    }
}

/// One record of a log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub timestamp: Timestamp,
    pub stream: Stream,
    /// `P`: continued by the stream's next record.
    pub partial: bool,
    pub content: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a CRI log record ({problem}): {line:?}")]
pub struct ParseError {
    pub problem: &'static str,
    pub line: String,
}

/// Parses one line of a log file (without its newline).
pub fn parse_record(line: &[u8]) -> Result<LogRecord, ParseError> {
    let fail = |problem| ParseError {
        problem,
        line: String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned(),
    };
    let mut fields = line.splitn(4, |b| *b == b' ');
    let (Some(time), Some(stream), Some(tag)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(fail("too few fields"));
    };
    let content = fields.next().unwrap_or_default();
    let timestamp = std::str::from_utf8(time)
        .ok()
        .and_then(|t| t.parse::<Timestamp>().ok())
        .ok_or_else(|| fail("bad timestamp"))?;
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return Err(fail("bad stream")),
    };
    let partial = match tag {
        b"P" => true,
        b"F" => false,
        _ => return Err(fail("bad tag")),
    };
    Ok(LogRecord {
        timestamp,
        stream,
        partial,
        content: content.to_vec(),
    })
}

/// What `kubectl logs` asks for (`PodLogOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep reading as the container writes, until the writer is done.
    pub follow: bool,
    /// Only the last this many lines (before following).
    pub tail_lines: Option<usize>,
    /// Only lines written at or after this time.
    pub since: Option<Timestamp>,
    /// Prefix each line with its timestamp.
    pub timestamps: bool,
    /// Stop after this many bytes of output ([`write_logs`]).
    pub limit_bytes: Option<u64>,
    /// Only this stream (both when `None`).
    pub stream: Option<Stream>,
}

/// One line of output: the stream's `P` records joined with the `F` record that ends them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When its first record was written.
    pub timestamp: Timestamp,
    pub stream: Stream,
    pub content: Vec<u8>,
    /// Ended by a newline (false for output that ended without one).
    pub complete: bool,
}

impl LogLine {
    /// The line as `kubectl logs` prints it.
    pub fn render(&self, timestamps: bool, out: &mut Vec<u8>) {
        if timestamps {
            let _ = write!(out, "{} ", self.timestamp);
        }
        out.extend_from_slice(&self.content);
        if self.complete {
            out.push(b'\n');
        }
    }
}

/// Waits up to the given time for the writer of a followed log to finish (the container to
/// exit); true once it has. Returning early on the exit keeps the end of a follow prompt.
pub type WriterDone = Box<dyn Fn(Duration) -> bool + Send>;

/// A [`WriterDone`] from a check that cannot wait: looks, sleeps, looks again.
pub fn polled_writer_done(done: impl Fn() -> bool + Send + 'static) -> WriterDone {
    Box::new(move |pause| {
        if done() {
            return true;
        }
        std::thread::sleep(pause);
        done()
    })
}

/// Reads a log file as lines: a blocking iterator (wrap it in a blocking task for async use).
/// Malformed records are skipped.
pub struct LogReader {
    /// The log's name: a follower reopens it when the writer rotates the file.
    path: PathBuf,
    file: File,
    options: LogOptions,
    /// Bytes read but not yet ending in a newline.
    buffer: Vec<u8>,
    /// The unfinished line of each stream.
    partial: [Option<LogLine>; 2],
    ready: VecDeque<LogLine>,
    writer_done: Option<WriterDone>,
    at_end: bool,
    /// Looks at the end of the file in a row that found nothing new: following backs off
    /// from [`FOLLOW_INTERVAL`] to ten times it, so idle containers cost (almost) nothing.
    idle_looks: u32,
}

impl fmt::Debug for LogReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogReader")
            .field("options", &self.options)
            .field("buffered", &self.buffer.len())
            .field("ready", &self.ready.len())
            .finish_non_exhaustive()
    }
}

impl LogReader {
    /// Opens `path`. With `options.follow`, the iterator waits for more at the end of the
    /// file until `writer_done` says the writer has finished (without it, following never
    /// ends by itself: drop the reader).
    pub fn open(
        path: &Path,
        options: LogOptions,
        writer_done: Option<WriterDone>,
    ) -> io::Result<LogReader> {
        let file = File::open(path)?;
        let mut reader = LogReader {
            path: path.to_owned(),
            file,
            options,
            buffer: Vec::new(),
            partial: [None, None],
            ready: VecDeque::new(),
            writer_done,
            at_end: false,
            idle_looks: 0,
        };
        if let Some(tail) = reader.options.tail_lines {
            // Everything there is now, keeping the last `tail` lines.
            let mut kept = VecDeque::with_capacity(tail.min(4096));
            while reader.fill(&mut kept, tail)? {}
            reader.ready = kept;
            if !reader.options.follow {
                // An unfinished last line counts as one of the last lines.
                reader.take_unfinished();
                while reader.ready.len() > tail {
                    reader.ready.pop_front();
                }
            }
        }
        Ok(reader)
    }

    /// Reads what the file has now into `into`, keeping at most `keep` lines (the latest).
    /// False at the end of the file.
    fn fill(&mut self, into: &mut VecDeque<LogLine>, keep: usize) -> io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let n = loop {
            match self.file.read(&mut chunk) {
                Ok(n) => break n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        };
        if n == 0 {
            return Ok(false);
        }
        self.buffer.extend_from_slice(&chunk[..n]);
        let mut consumed = 0;
        while let Some(end) = self.buffer[consumed..].iter().position(|b| *b == b'\n') {
            let line = &self.buffer[consumed..consumed + end];
            consumed += end + 1;
            let Ok(record) = parse_record(line) else {
                continue;
            };
            if let Some(line) = join(&mut self.partial, record)
                && self.wanted(&line)
            {
                if into.len() == keep {
                    into.pop_front();
                }
                if keep > 0 {
                    into.push_back(line);
                }
            }
        }
        self.buffer.drain(..consumed);
        Ok(true)
    }

    /// Reads everything the file has now into `ready`.
    fn drain(&mut self) -> io::Result<()> {
        let mut got = std::mem::take(&mut self.ready);
        let drained = (|| {
            while self.fill(&mut got, usize::MAX)? {}
            Ok::<(), io::Error>(())
        })();
        self.ready = got;
        drained
    }

    /// At the end of the file while following: when the log's name now holds another file
    /// (the writer renamed ours aside: [`RotatingFile`]) reads the rest of ours, then
    /// continues with the new one from its start; a file cut shorter than what was read
    /// (truncated in place) is read again from its start. True when it switched.
    /// A follower slower than two rotations misses the files in between, as upstream's.
    fn follow_rotation(&mut self) -> io::Result<bool> {
        use std::io::{Seek, SeekFrom};
        use std::os::unix::fs::MetadataExt;
        // Missing between the writer's rename and its new file: look again later.
        let Ok(named) = std::fs::metadata(&self.path) else {
            return Ok(false);
        };
        let ours = self.file.metadata()?;
        if (named.dev(), named.ino()) != (ours.dev(), ours.ino()) {
            self.drain()?;
            match File::open(&self.path) {
                Ok(file) => self.file = file,
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(err) => return Err(err),
            }
            // A record is never split across files; drop what cannot be completed.
            self.buffer.clear();
            return Ok(true);
        }
        if named.len() < self.file.stream_position()? {
            self.file.seek(SeekFrom::Start(0))?;
            self.buffer.clear();
            return Ok(true);
        }
        Ok(false)
    }

    fn wanted(&self, line: &LogLine) -> bool {
        self.options.stream.is_none_or(|s| s == line.stream)
            && self
                .options
                .since
                .is_none_or(|since| line.timestamp >= since)
    }

    /// Lines that ended without a newline at the very end of the log (the writer is done).
    fn take_unfinished(&mut self) {
        for slot in &mut self.partial {
            if let Some(line) = slot.take() {
                let wanted = self.options.stream.is_none_or(|s| s == line.stream)
                    && self
                        .options
                        .since
                        .is_none_or(|since| line.timestamp >= since);
                if wanted {
                    self.ready.push_back(line);
                }
            }
        }
    }
}

/// Adds `record` to its stream's unfinished line; returns the line it completes.
fn join(partial: &mut [Option<LogLine>; 2], record: LogRecord) -> Option<LogLine> {
    let slot = &mut partial[record.stream.index()];
    let line = match slot.take() {
        Some(mut line) => {
            line.content.extend_from_slice(&record.content);
            line
        }
        None => LogLine {
            timestamp: record.timestamp,
            stream: record.stream,
            content: record.content,
            complete: false,
        },
    };
    if record.partial {
        *slot = Some(line);
        None
    } else {
        Some(LogLine {
            complete: true,
            ..line
        })
    }
}

impl Iterator for LogReader {
    type Item = io::Result<LogLine>;

    fn next(&mut self) -> Option<io::Result<LogLine>> {
        loop {
            if let Some(line) = self.ready.pop_front() {
                self.idle_looks = 0;
                return Some(Ok(line));
            }
            if self.at_end {
                return None;
            }
            let mut got = std::mem::take(&mut self.ready);
            let more = self.fill(&mut got, usize::MAX);
            self.ready = got;
            match more {
                Err(err) => {
                    self.at_end = true;
                    return Some(Err(err));
                }
                Ok(true) => continue,
                Ok(false) if !self.ready.is_empty() => continue,
                Ok(false) => {}
            }
            // At the end of what has been written so far.
            if !self.options.follow {
                self.take_unfinished();
                self.at_end = true;
                continue;
            }
            match self.follow_rotation() {
                Ok(true) => {
                    self.idle_looks = 0;
                    continue;
                }
                Ok(false) => {}
                Err(err) => {
                    self.at_end = true;
                    return Some(Err(err));
                }
            }
            // Reading on from the same offset then shows what was appended meanwhile.
            self.idle_looks = self.idle_looks.saturating_add(1);
            let pause = FOLLOW_INTERVAL * self.idle_looks.min(10);
            let finished = match &self.writer_done {
                Some(done) => done(pause),
                None => {
                    std::thread::sleep(pause);
                    false
                }
            };
            if finished {
                // One last look: the writer may have written (and rotated) more before
                // finishing.
                let drained = (|| {
                    self.drain()?;
                    while self.follow_rotation()? {
                        self.drain()?;
                    }
                    Ok::<(), io::Error>(())
                })();
                if let Err(err) = drained {
                    self.at_end = true;
                    return Some(Err(err));
                }
                self.take_unfinished();
                self.at_end = true;
                continue;
            }
        }
    }
}

/// Writes the log at `path` to `out` as `kubectl logs` shows it (with `options.limit_bytes`
/// applied). Returns the number of bytes written.
pub fn write_logs(
    path: &Path,
    options: &LogOptions,
    writer_done: Option<WriterDone>,
    out: &mut dyn Write,
) -> io::Result<u64> {
    let reader = LogReader::open(path, options.clone(), writer_done)?;
    let mut written = 0u64;
    let mut rendered = Vec::new();
    for line in reader {
        rendered.clear();
        line?.render(options.timestamps, &mut rendered);
        let allowed = options.limit_bytes.map_or(rendered.len() as u64, |limit| {
            (rendered.len() as u64).min(limit.saturating_sub(written))
        });
        let allowed = usize::try_from(allowed).unwrap_or(usize::MAX);
        out.write_all(&rendered[..allowed])?;
        out.flush()?;
        written += allowed as u64;
        if options.limit_bytes.is_some_and(|limit| written >= limit) {
            break;
        }
    }
    Ok(written)
}

/// The termination message of a container that failed with an empty message file
/// (`FallbackToLogsOnError`): its last `max_lines` lines of output, of which at most the
/// last `max_bytes` bytes. A missing log is an empty message.
pub fn termination_message_from_log(
    path: &Path,
    max_lines: usize,
    max_bytes: usize,
) -> io::Result<String> {
    let options = LogOptions {
        tail_lines: Some(max_lines),
        ..LogOptions::default()
    };
    let reader = match LogReader::open(path, options, None) {
        Ok(reader) => reader,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(String::new()),
        Err(err) => return Err(err),
    };
    let mut text = Vec::new();
    for line in reader {
        line?.render(false, &mut text);
    }
    let mut start = text.len().saturating_sub(max_bytes);
    // Do not begin inside a UTF-8 sequence.
    while start < text.len() && (text[start] & 0b1100_0000) == 0b1000_0000 {
        start += 1;
    }
    Ok(String::from_utf8_lossy(&text[start..]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64, nanos: i32) -> Timestamp {
        Timestamp::new(seconds, nanos).unwrap()
    }

    fn text(writer: &CriLogWriter<Vec<u8>>) -> String {
        String::from_utf8(writer.get_ref().clone()).unwrap()
    }

    #[test]
    fn paths_follow_the_kubelet_layout() {
        let logs = ContainerLogs::new(
            Path::new(DEFAULT_LOG_DIR),
            "default",
            "web-0",
            "8a1f-uid",
            "nginx",
        );
        assert_eq!(
            logs.file(2),
            Path::new("/var/log/pods/default_web-0_8a1f-uid/nginx/2.log")
        );
        assert_eq!(
            logs.previous(2).unwrap(),
            Path::new("/var/log/pods/default_web-0_8a1f-uid/nginx/1.log")
        );
        assert_eq!(logs.previous(0), None);
    }

    #[test]
    fn timestamps_print_as_go_rfc3339nano() {
        let mut out = Vec::new();
        format_record(
            &mut out,
            at(1_764_087_363, 123_456_789),
            Stream::Stdout,
            false,
            b"hi",
        );
        format_record(
            &mut out,
            at(1_764_087_363, 200_000_000),
            Stream::Stderr,
            true,
            b"",
        );
        format_record(
            &mut out,
            at(1_764_087_363, 0),
            Stream::Stdout,
            false,
            b"a b",
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2025-11-25T16:16:03.123456789Z stdout F hi\n\
             2025-11-25T16:16:03.2Z stderr P \n\
             2025-11-25T16:16:03Z stdout F a b\n"
        );
    }

    #[test]
    fn lines_are_framed_across_reads_and_cut_at_the_maximum() {
        let now = at(0, 0);
        let mut writer = CriLogWriter::new(Vec::new(), 4);
        writer.write(Stream::Stdout, b"ab", now).unwrap();
        assert_eq!(text(&writer), "", "nothing until a line ends");
        writer.write(Stream::Stdout, b"c\n\nabcd", now).unwrap();
        writer.write(Stream::Stderr, b"e1\n", now).unwrap();
        // Exactly the maximum then a newline: one whole record.
        writer.write(Stream::Stdout, b"\n", now).unwrap();
        writer
            .write(Stream::Stdout, b"0123456789\nxy", now)
            .unwrap();
        writer.finish(Stream::Stdout, now).unwrap();
        writer.finish(Stream::Stderr, now).unwrap();
        let t = "1970-01-01T00:00:00Z";
        assert_eq!(
            text(&writer),
            format!(
                "{t} stdout F abc\n{t} stdout F \n{t} stderr F e1\n{t} stdout F abcd\n\
                 {t} stdout P 0123\n{t} stdout P 4567\n{t} stdout F 89\n{t} stdout P xy\n"
            )
        );
    }

    #[test]
    fn records_parse_back() {
        let record = parse_record(b"2025-11-25T16:16:03.5Z stderr P  two  spaces ").unwrap();
        assert_eq!(
            record,
            LogRecord {
                timestamp: at(1_764_087_363, 500_000_000),
                stream: Stream::Stderr,
                partial: true,
                content: b" two  spaces ".to_vec(),
            }
        );
        // Other offsets and an empty content.
        let record = parse_record(b"2025-11-25T17:16:03+01:00 stdout F").unwrap();
        assert_eq!(record.timestamp, at(1_764_087_363, 0));
        assert!(record.content.is_empty());
        for bad in [
            &b"garbage"[..],
            b"2025-11-25T16:16:03Z stdin F x",
            b"2025-11-25T16:16:03Z stdout X x",
            b"yesterday stdout F x",
        ] {
            assert!(parse_record(bad).is_err(), "{bad:?}");
        }
    }

    /// A log with partial lines, both streams, a malformed line and an unfinished end.
    fn sample_log(dir: &Path) -> PathBuf {
        let path = dir.join("0.log");
        let mut writer = CriLogWriter::create(&path, 4).unwrap();
        writer.write(Stream::Stdout, b"one\n", at(10, 0)).unwrap();
        writer
            .write(Stream::Stdout, b"longline", at(11, 0))
            .unwrap();
        writer.write(Stream::Stderr, b"err\n", at(12, 0)).unwrap();
        writer
            .write(Stream::Stdout, b"!\nthree\n", at(13, 0))
            .unwrap();
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"not a record\n").unwrap();
        writer
            .write(Stream::Stdout, b"four\nend", at(14, 0))
            .unwrap();
        writer.finish(Stream::Stdout, at(15, 0)).unwrap();
        path
    }

    fn render(path: &Path, options: LogOptions) -> String {
        let mut out = Vec::new();
        write_logs(path, &options, None, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn reads_like_kubectl_logs() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = sample_log(&dir.path().join("ns_pod_uid/c"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);

        assert_eq!(
            render(&path, LogOptions::default()),
            "one\nerr\nlongline!\nthree\nfour\nend"
        );
        assert_eq!(
            render(
                &path,
                LogOptions {
                    tail_lines: Some(3),
                    timestamps: true,
                    ..Default::default()
                }
            ),
            "1970-01-01T00:00:13Z three\n1970-01-01T00:00:14Z four\n1970-01-01T00:00:15Z end"
        );
        assert_eq!(
            render(
                &path,
                LogOptions {
                    since: Some(at(12, 0)),
                    stream: Some(Stream::Stdout),
                    ..Default::default()
                }
            ),
            "three\nfour\nend"
        );
        assert_eq!(
            render(
                &path,
                LogOptions {
                    limit_bytes: Some(6),
                    ..Default::default()
                }
            ),
            "one\ner"
        );
        assert_eq!(
            render(
                &path,
                LogOptions {
                    tail_lines: Some(0),
                    ..Default::default()
                }
            ),
            ""
        );
        let lines: Vec<LogLine> = LogReader::open(&path, LogOptions::default(), None)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            lines[2],
            LogLine {
                timestamp: at(11, 0),
                stream: Stream::Stdout,
                content: b"longline!".to_vec(),
                complete: true,
            }
        );
        assert!(!lines[5].complete);
    }

    #[test]
    fn follow_sees_new_lines_until_the_writer_is_done() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut writer = CriLogWriter::create(&path, 100).unwrap();
        writer.write(Stream::Stdout, b"before\n", at(1, 0)).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let seen_done = done.clone();
        let mut reader = LogReader::open(
            &path,
            LogOptions {
                follow: true,
                tail_lines: Some(1),
                ..Default::default()
            },
            Some(polled_writer_done(move || seen_done.load(Ordering::SeqCst))),
        )
        .unwrap();
        assert_eq!(reader.next().unwrap().unwrap().content, b"before");
        let feeder = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            writer
                .write(Stream::Stderr, b"after\nhalf", at(2, 0))
                .unwrap();
            std::thread::sleep(Duration::from_millis(150));
            writer
                .write(Stream::Stderr, b"-done\nlast", at(3, 0))
                .unwrap();
            writer.finish(Stream::Stderr, at(3, 0)).unwrap();
            done.store(true, Ordering::SeqCst);
        });
        let rest: Vec<String> = reader
            .map(|l| String::from_utf8(l.unwrap().content).unwrap())
            .collect();
        feeder.join().unwrap();
        assert_eq!(rest, ["after", "half-done", "last"]);
    }

    #[test]
    fn follow_continues_across_rotations_in_order() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        // Three records per file: a rotation every few lines, two files kept.
        let rotation = LogRotation::new(100, 2).unwrap();
        let mut writer = CriLogWriter::create_rotating(&path, 100, rotation).unwrap();
        writer
            .write(Stream::Stdout, b"line 000\n", at(1, 0))
            .unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let seen_done = done.clone();
        let reader = LogReader::open(
            &path,
            LogOptions {
                follow: true,
                ..Default::default()
            },
            Some(polled_writer_done(move || seen_done.load(Ordering::SeqCst))),
        )
        .unwrap();
        let feeder = std::thread::spawn(move || {
            for n in 1..40 {
                // One line at a time, a partial one across a rotation now and then.
                let text = format!("line {n:03}\n");
                let (head, tail) = text.split_at(if n % 7 == 0 { 3 } else { text.len() });
                writer
                    .write(Stream::Stdout, head.as_bytes(), at(n, 0))
                    .unwrap();
                writer
                    .write(Stream::Stdout, tail.as_bytes(), at(n, 0))
                    .unwrap();
                std::thread::sleep(Duration::from_millis(60));
            }
            done.store(true, Ordering::SeqCst);
        });
        let seen: Vec<String> = reader
            .map(|l| String::from_utf8(l.unwrap().content).unwrap())
            .collect();
        feeder.join().unwrap();
        let expected: Vec<String> = (0..40).map(|n| format!("line {n:03}")).collect();
        assert_eq!(seen, expected);
        assert_eq!(rotated_files(&path).unwrap().len(), 1, "two files in all");
    }

    #[test]
    fn termination_message_is_the_end_of_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut writer = CriLogWriter::create(&path, DEFAULT_MAX_LINE).unwrap();
        for n in 0..100 {
            writer
                .write(Stream::Stderr, format!("line {n}\n").as_bytes(), at(n, 0))
                .unwrap();
        }
        let message = termination_message_from_log(&path, TERMINATION_MESSAGE_LINES, 2048).unwrap();
        assert!(message.starts_with("line 20\n") && message.ends_with("line 99\n"));
        let message = termination_message_from_log(&path, 80, 16).unwrap();
        assert_eq!(message, "line 98\nline 99\n");
        // Never starts inside a character.
        let utf8 = dir.path().join("1.log");
        let mut writer = CriLogWriter::create(&utf8, DEFAULT_MAX_LINE).unwrap();
        writer
            .write(Stream::Stdout, "héé\n".as_bytes(), at(0, 0))
            .unwrap();
        assert_eq!(termination_message_from_log(&utf8, 80, 4).unwrap(), "é\n");
        assert_eq!(
            termination_message_from_log(&dir.path().join("none.log"), 80, 10).unwrap(),
            ""
        );
    }
}
