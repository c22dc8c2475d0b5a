//! `kubectl exec -t`: the runtime can hand the pty master of an exec'd process over a console
//! socket only when it detaches (`runc exec --detach --tty --console-socket S`: runc refuses
//! a console socket otherwise), and a detached process is orphaned when the runtime exits.
//! So the runtime runs under this small reaper, our binary re-executed as
//! `nodelet exec-reaper <runtime> <args...>`: a child subreaper, it runs the runtime, then
//! collects the orphaned process and exits with its exit code (128 + the signal when a signal
//! ended it), which is what the caller waits for. When the runtime itself fails, the reaper
//! exits with the runtime's code and the runtime's log says why.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use nodelet_sys::process::ExitStatus;

/// The subcommand of our binary that runs the reaper.
pub const SUBCOMMAND: &str = "exec-reaper";

/// The program that runs a reaper: `program exec-reaper <runtime> <args...>`.
pub fn program() -> std::io::Result<PathBuf> {
    std::env::current_exe()
}

/// The exit code for a status, as a shell reports it.
fn code(status: ExitStatus) -> u8 {
    match status {
        ExitStatus::Exited(code) => (code & 0xff) as u8,
        ExitStatus::Killed(signal) => (128 + signal).clamp(0, 255) as u8,
    }
}

/// `nodelet exec-reaper <runtime> <args...>`.
pub fn main(args: Vec<OsString>) -> u8 {
    let Some((runtime, args)) = args.split_first() else {
        eprintln!("usage: nodelet {SUBCOMMAND} <runtime> <args...>");
        return 2;
    };
    if let Err(err) = nodelet_sys::process::become_child_subreaper() {
        eprintln!("{SUBCOMMAND}: becoming a child subreaper: {err}");
        return 255;
    }
    let mut child = match Command::new(runtime).args(args).spawn() {
        Ok(child) => child,
        Err(err) => {
            eprintln!(
                "{SUBCOMMAND}: starting {}: {err}",
                runtime.to_string_lossy()
            );
            return 255;
        }
    };
    let runtime_pid = child.id();
    // The runtime exits once the process runs; the process is then ours to wait for (it may
    // also end first: it is re-parented to us as soon as the runtime's intermediate exits).
    match nodelet_sys::daemon::wait_for_any_child() {
        Ok(Some((pid, status))) if pid == runtime_pid => {
            // Already reaped: `child` is not waited for again.
            drop(child);
            if status != ExitStatus::Exited(0) {
                return code(status);
            }
        }
        Ok(Some((_, status))) => {
            let _ = child.wait();
            return code(status);
        }
        Ok(None) => return 255,
        Err(err) => {
            eprintln!("{SUBCOMMAND}: waiting: {err}");
            return 255;
        }
    }
    match nodelet_sys::daemon::wait_for_any_child() {
        Ok(Some((_, status))) => code(status),
        Ok(None) => {
            eprintln!("{SUBCOMMAND}: the exec'd process was not re-parented to the reaper");
            255
        }
        Err(err) => {
            eprintln!("{SUBCOMMAND}: waiting: {err}");
            255
        }
    }
}
