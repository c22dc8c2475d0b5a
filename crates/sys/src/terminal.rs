//! Terminals for `kubectl exec -t`: the pty master an OCI runtime hands over its console
//! socket (`SCM_RIGHTS`), and its window size.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use rustix::termios::Winsize;

/// Receives the one file descriptor a peer sends on `socket` (the runtime's console socket
/// protocol: one message, the pty master in `SCM_RIGHTS`). Close-on-exec.
pub fn receive_fd(socket: &UnixStream) -> io::Result<OwnedFd> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    // The message's bytes name the terminal; only the descriptor matters.
    let mut name = [0u8; 256];
    let mut iov = [io::IoSliceMut::new(&mut name)];
    rustix::net::recvmsg(socket, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)?;
    let mut received = None;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = message {
            for fd in fds {
                // Extra descriptors are closed as they drop.
                received.get_or_insert(fd);
            }
        }
    }
    received.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "the console socket's message carried no file descriptor",
        )
    })
}

/// Sets the terminal's window size (`TIOCSWINSZ`); the foreground process gets `SIGWINCH`.
pub fn set_window_size(terminal: impl AsFd, columns: u16, rows: u16) -> io::Result<()> {
    let size = Winsize {
        ws_row: rows,
        ws_col: columns,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    Ok(rustix::termios::tcsetwinsize(terminal, size)?)
}

#[cfg(test)]
mod tests {
    use std::io::IoSlice;

    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    use rustix::pty::OpenptFlags;

    use super::*;

    fn open_pty() -> (OwnedFd, OwnedFd) {
        let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        rustix::pty::grantpt(&master).unwrap();
        rustix::pty::unlockpt(&master).unwrap();
        let name = rustix::pty::ptsname(&master, Vec::new()).unwrap();
        let slave = rustix::fs::open(
            name.as_c_str(),
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        (master, slave)
    }

    #[test]
    fn a_sent_pty_master_arrives_and_takes_a_window_size() {
        let (master, slave) = open_pty();
        let (ours, theirs) = UnixStream::pair().unwrap();
        let fds = [master.as_fd()];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
        rustix::net::sendmsg(
            &theirs,
            &[IoSlice::new(b"/dev/pts/x")],
            &mut control,
            SendFlags::empty(),
        )
        .unwrap();
        let received = receive_fd(&ours).unwrap();
        set_window_size(&received, 120, 40).unwrap();
        let size = rustix::termios::tcgetwinsize(&slave).unwrap();
        assert_eq!((size.ws_col, size.ws_row), (120, 40));
    }

    #[test]
    fn a_message_without_a_descriptor_is_an_error() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        std::io::Write::write_all(&mut &theirs, b"x").unwrap();
        let err = receive_fd(&ours).unwrap_err();
        assert!(err.to_string().contains("no file descriptor"), "{err}");
    }
}
