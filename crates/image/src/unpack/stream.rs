//! The reader stack under the tar parser: count the compressed bytes, decompress, hash and
//! count the tar bytes (the diff_id and the size limit), buffer, and bound the metadata read
//! between two entries.
//!
//! ```text
//! source ─▶ Counted ─▶ (sniffed head) ─▶ gzip | zstd | plain ─▶ Tee ─▶ BufReader ─▶ Guard ─▶ tar
//! ```
//!
//! The readers share a [`Shared`] record: the first fault any of them meets (the source
//! failing, corrupt compression, a limit) is recorded there, because the tar crate wraps the
//! errors it passes on and the unpacker needs to name the real cause.

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::io::{self, BufReader, Read};
use std::rc::Rc;

use aws_lc_rs::digest;

use super::{Cause, Compression};

/// Input buffer of the decompressors: large reads from a pipe or socket.
const SOURCE_BUFFER: usize = 256 * 1024;
/// Buffer between the decompressed stream and the tar parser (which reads headers 512 bytes
/// at a time; larger data reads go around it).
const TAR_BUFFER: usize = 128 * 1024;

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// State shared by the readers and the unpacker.
#[derive(Debug)]
pub(crate) struct Shared {
    source_bytes: Cell<u64>,
    tar_bytes: Cell<u64>,
    max_bytes: u64,
    max_header_bytes: u64,
    header_budget: Cell<Option<u64>>,
    fault: RefCell<Option<Cause>>,
}

impl Shared {
    pub(crate) fn new(max_bytes: u64, max_header_bytes: u64) -> Shared {
        Shared {
            source_bytes: Cell::new(0),
            tar_bytes: Cell::new(0),
            max_bytes,
            max_header_bytes,
            header_budget: Cell::new(None),
            fault: RefCell::new(None),
        }
    }

    /// Records `cause` unless an earlier fault is already recorded, and returns an error for
    /// the reader to pass up.
    fn fault(&self, cause: Cause) -> io::Error {
        let err = io::Error::other(cause.to_string());
        let mut fault = self.fault.borrow_mut();
        if fault.is_none() {
            *fault = Some(cause);
        }
        err
    }

    fn has_fault(&self) -> bool {
        self.fault.borrow().is_some()
    }

    /// The cause of `err`, which came out of the tar parser: the recorded fault if a reader
    /// met one, else a malformed archive (with the whole chain of messages).
    pub(crate) fn classify(&self, err: io::Error) -> Cause {
        if let Some(cause) = self.fault.borrow_mut().take() {
            return cause;
        }
        let mut message = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(inner) = source {
            let _ = write!(message, ": {inner}");
            source = inner.source();
        }
        Cause::Malformed(io::Error::new(err.kind(), message))
    }

    /// From now until [`Shared::end_headers`], the tar parser reads headers: at most
    /// `max_header_bytes` of them.
    pub(crate) fn begin_headers(&self) {
        self.header_budget.set(Some(self.max_header_bytes));
    }

    pub(crate) fn end_headers(&self) {
        self.header_budget.set(None);
    }

    pub(crate) fn source_bytes(&self) -> u64 {
        self.source_bytes.get()
    }

    pub(crate) fn tar_bytes(&self) -> u64 {
        self.tar_bytes.get()
    }
}

/// Counts the compressed bytes and marks the source's own errors.
struct Counted<R> {
    inner: R,
    shared: Rc<Shared>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                let total = self.shared.source_bytes.get() + n as u64;
                self.shared.source_bytes.set(total);
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let _ = self
                    .shared
                    .fault(Cause::Source(io::Error::new(e.kind(), e.to_string())));
                Err(e)
            }
        }
    }
}

/// Hashes and counts the uncompressed tar stream, enforcing `max_bytes`; marks errors of the
/// decompressor.
pub(crate) struct Tee<'a> {
    inner: Box<dyn Read + 'a>,
    hash: digest::Context,
    shared: Rc<Shared>,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                if !self.shared.has_fault() {
                    let copy = io::Error::new(e.kind(), e.to_string());
                    let _ = self.shared.fault(Cause::Decompress(copy));
                }
                return Err(e);
            }
        };
        let total = self.shared.tar_bytes.get() + n as u64;
        self.shared.tar_bytes.set(total);
        if total > self.shared.max_bytes {
            return Err(self.shared.fault(Cause::LayerTooLarge {
                limit: self.shared.max_bytes,
            }));
        }
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// Enforces the header budget while the tar parser looks for the next entry.
pub(crate) struct Guard<'a> {
    inner: BufReader<Tee<'a>>,
    shared: Rc<Shared>,
}

impl Read for Guard<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(budget) = self.shared.header_budget.get() else {
            return self.inner.read(buf);
        };
        if budget == 0 && !buf.is_empty() {
            return Err(self.shared.fault(Cause::HeadersTooLarge {
                limit: self.shared.max_header_bytes,
            }));
        }
        let len = buf.len().min(usize::try_from(budget).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..len])?;
        self.shared.header_budget.set(Some(budget - n as u64));
        Ok(n)
    }
}

impl Guard<'_> {
    /// Reads the rest of the stream (the end-of-archive blocks and any padding after them,
    /// which the diff_id covers) and returns the digest, `sha256:<hex>`.
    pub(crate) fn finish(mut self, buf: &mut [u8]) -> Result<String, Cause> {
        self.shared.end_headers();
        loop {
            match self.read(buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.shared.classify(e)),
            }
        }
        let tee = self.inner.into_inner();
        let digest = tee.hash.finish();
        let mut out = String::with_capacity(7 + 64);
        out.push_str("sha256:");
        for byte in digest.as_ref() {
            let _ = write!(out, "{byte:02x}");
        }
        Ok(out)
    }
}

/// Builds the stack over `source`. With [`Compression::Detect`] the first bytes decide:
/// gzip and zstd by their magic numbers, anything else is taken as a plain tar. Returns the
/// compression applied.
pub(crate) fn open<'a, R: Read + 'a>(
    source: R,
    compression: Compression,
    shared: &Rc<Shared>,
) -> Result<(Guard<'a>, Compression), Cause> {
    let mut counted = Counted {
        inner: source,
        shared: Rc::clone(shared),
    };
    let mut head = [0u8; 4];
    let mut filled = 0;
    if compression == Compression::Detect {
        while filled < head.len() {
            match counted.read(&mut head[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(shared.classify(e)),
            }
        }
    }
    let head = &head[..filled];
    let compression = match compression {
        Compression::Detect if head.starts_with(GZIP_MAGIC) => Compression::Gzip,
        Compression::Detect if head.starts_with(ZSTD_MAGIC) => Compression::Zstd,
        Compression::Detect => Compression::None,
        other => other,
    };
    let raw = io::Cursor::new(head.to_vec()).chain(counted);
    let decoded: Box<dyn Read + 'a> = match compression {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(
            BufReader::with_capacity(SOURCE_BUFFER, raw),
        )),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(SOURCE_BUFFER, raw))
                .map_err(Cause::Decompress)?,
        ),
        Compression::None | Compression::Detect => Box::new(raw),
    };
    let tee = Tee {
        inner: decoded,
        hash: digest::Context::new(&digest::SHA256),
        shared: Rc::clone(shared),
    };
    let guard = Guard {
        inner: BufReader::with_capacity(TAR_BUFFER, tee),
        shared: Rc::clone(shared),
    };
    Ok((guard, compression))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(data: &[u8], compression: Compression, max: u64) -> (Result<String, Cause>, u64) {
        let shared = Rc::new(Shared::new(max, 1024));
        let (guard, _) = open(data, compression, &shared).unwrap();
        let mut buf = vec![0; 4096];
        (guard.finish(&mut buf), shared.tar_bytes())
    }

    #[test]
    fn digest_of_plain_and_gzip_is_of_the_uncompressed_bytes() {
        let plain = b"hello world".repeat(1000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(plain.as_slice(), 1).unwrap();
        let want = {
            let d = digest::digest(&digest::SHA256, &plain);
            let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
            format!("sha256:{hex}")
        };
        for (data, c) in [
            (&plain[..], Compression::None),
            (&plain[..], Compression::Detect),
            (&gz[..], Compression::Gzip),
            (&gz[..], Compression::Detect),
            (&zst[..], Compression::Zstd),
            (&zst[..], Compression::Detect),
        ] {
            let (got, bytes) = read_all(data, c, u64::MAX);
            assert_eq!(got.unwrap(), want, "{c:?}");
            assert_eq!(bytes, plain.len() as u64);
        }
    }

    #[test]
    fn detection() {
        let shared = Rc::new(Shared::new(u64::MAX, 1024));
        let zst = zstd::encode_all(&b"x"[..], 1).unwrap();
        assert_eq!(
            open(&zst[..], Compression::Detect, &shared).unwrap().1,
            Compression::Zstd
        );
        assert_eq!(
            open(&b"ab"[..], Compression::Detect, &shared).unwrap().1,
            Compression::None
        );
        assert_eq!(
            open(&b""[..], Compression::Detect, &shared).unwrap().1,
            Compression::None
        );
    }

    #[test]
    fn byte_limit() {
        let (got, _) = read_all(&[0u8; 10_000], Compression::None, 9_999);
        assert!(matches!(got, Err(Cause::LayerTooLarge { limit: 9_999 })));
    }

    #[test]
    fn header_budget() {
        let shared = Rc::new(Shared::new(u64::MAX, 100));
        let (mut guard, _) = open(&[7u8; 1000][..], Compression::None, &shared).unwrap();
        shared.begin_headers();
        let mut buf = [0u8; 512];
        assert_eq!(guard.read(&mut buf).unwrap(), 100);
        let err = guard.read(&mut buf).unwrap_err();
        assert!(matches!(
            shared.classify(err),
            Cause::HeadersTooLarge { limit: 100 }
        ));
        shared.end_headers();
        assert_eq!(guard.read(&mut buf).unwrap(), 512);
    }

    #[test]
    fn corrupt_gzip_is_a_decompression_error() {
        let (got, _) = read_all(&[0x1f, 0x8b, 0, 0, 1, 2, 3], Compression::Detect, u64::MAX);
        assert!(matches!(got, Err(Cause::Decompress(_))), "{got:?}");
    }

    #[test]
    fn source_errors_are_marked() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "peer went away",
                ))
            }
        }
        let shared = Rc::new(Shared::new(u64::MAX, 1024));
        let (guard, _) = open(Failing, Compression::Gzip, &shared).unwrap();
        let got = guard.finish(&mut [0; 64]);
        assert!(matches!(got, Err(Cause::Source(_))), "{got:?}");
    }
}
