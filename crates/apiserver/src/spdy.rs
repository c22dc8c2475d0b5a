//! SPDY/3.1 framing (draft-mbelshe-httpbis-spdy / the chromium "SPDY Protocol - Draft 3.1"),
//! as much as the server side of `kubectl exec` over SPDY needs (kubectl < 1.30): control
//! frames (SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE)
//! and DATA frames, with header blocks compressed by one zlib stream per direction seeded
//! with the spec's fixed dictionary. Malformed input is a [`SpdyError`], never a panic.

use std::io;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The protocol version in every control frame.
pub const VERSION: u16 = 3;
/// DATA, SYN_STREAM, SYN_REPLY, HEADERS: the sender's last frame on the stream.
pub const FLAG_FIN: u8 = 0x01;
/// SYN_STREAM: the recipient may not send on the stream.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// SETTINGS: forget persisted settings.
pub const FLAG_SETTINGS_CLEAR: u8 = 0x01;
/// The window every stream (and, in 3.1, the session) starts with.
pub const DEFAULT_WINDOW: u32 = 64 * 1024;
/// SETTINGS id of the initial stream window size.
pub const SETTINGS_INITIAL_WINDOW_SIZE: u32 = 7;

/// RST_STREAM status codes.
pub const RST_PROTOCOL_ERROR: u32 = 1;
pub const RST_INVALID_STREAM: u32 = 2;
pub const RST_REFUSED_STREAM: u32 = 3;
pub const RST_CANCEL: u32 = 5;
pub const RST_FLOW_CONTROL_ERROR: u32 = 7;
pub const RST_STREAM_IN_USE: u32 = 8;
/// GOAWAY status codes.
pub const GOAWAY_OK: u32 = 0;
pub const GOAWAY_PROTOCOL_ERROR: u32 = 1;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

const STREAM_ID_MASK: u32 = 0x7fff_ffff;
/// The largest header block accepted once decompressed (exec's headers are a few bytes).
const MAX_HEADER_BLOCK: usize = 256 * 1024;
/// The frame header: 8 bytes, then `length` bytes of payload (24 bits).
pub const FRAME_HEADER_LEN: usize = 8;
/// The largest DATA payload we send in one frame.
pub const MAX_DATA_PAYLOAD: usize = 16 * 1024;

/// SPDY/3's header compression dictionary (the spec's "Compression" section of the header
/// block), 1423 bytes, fixed by the spec.
pub const HEADER_DICTIONARY: &[u8] = &[
    0x00, 0x00, 0x00, 0x07, 0x6f, 0x70, 0x74, 0x69, 0x6f, 0x6e, 0x73, 0x00, 0x00, 0x00, 0x04, 0x68,
    0x65, 0x61, 0x64, 0x00, 0x00, 0x00, 0x04, 0x70, 0x6f, 0x73, 0x74, 0x00, 0x00, 0x00, 0x03, 0x70,
    0x75, 0x74, 0x00, 0x00, 0x00, 0x06, 0x64, 0x65, 0x6c, 0x65, 0x74, 0x65, 0x00, 0x00, 0x00, 0x05,
    0x74, 0x72, 0x61, 0x63, 0x65, 0x00, 0x00, 0x00, 0x06, 0x61, 0x63, 0x63, 0x65, 0x70, 0x74, 0x00,
    0x00, 0x00, 0x0e, 0x61, 0x63, 0x63, 0x65, 0x70, 0x74, 0x2d, 0x63, 0x68, 0x61, 0x72, 0x73, 0x65,
    0x74, 0x00, 0x00, 0x00, 0x0f, 0x61, 0x63, 0x63, 0x65, 0x70, 0x74, 0x2d, 0x65, 0x6e, 0x63, 0x6f,
    0x64, 0x69, 0x6e, 0x67, 0x00, 0x00, 0x00, 0x0f, 0x61, 0x63, 0x63, 0x65, 0x70, 0x74, 0x2d, 0x6c,
    0x61, 0x6e, 0x67, 0x75, 0x61, 0x67, 0x65, 0x00, 0x00, 0x00, 0x0d, 0x61, 0x63, 0x63, 0x65, 0x70,
    0x74, 0x2d, 0x72, 0x61, 0x6e, 0x67, 0x65, 0x73, 0x00, 0x00, 0x00, 0x03, 0x61, 0x67, 0x65, 0x00,
    0x00, 0x00, 0x05, 0x61, 0x6c, 0x6c, 0x6f, 0x77, 0x00, 0x00, 0x00, 0x0d, 0x61, 0x75, 0x74, 0x68,
    0x6f, 0x72, 0x69, 0x7a, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0x00, 0x00, 0x00, 0x0d, 0x63, 0x61, 0x63,
    0x68, 0x65, 0x2d, 0x63, 0x6f, 0x6e, 0x74, 0x72, 0x6f, 0x6c, 0x00, 0x00, 0x00, 0x0a, 0x63, 0x6f,
    0x6e, 0x6e, 0x65, 0x63, 0x74, 0x69, 0x6f, 0x6e, 0x00, 0x00, 0x00, 0x0c, 0x63, 0x6f, 0x6e, 0x74,
    0x65, 0x6e, 0x74, 0x2d, 0x62, 0x61, 0x73, 0x65, 0x00, 0x00, 0x00, 0x10, 0x63, 0x6f, 0x6e, 0x74,
    0x65, 0x6e, 0x74, 0x2d, 0x65, 0x6e, 0x63, 0x6f, 0x64, 0x69, 0x6e, 0x67, 0x00, 0x00, 0x00, 0x10,
    0x63, 0x6f, 0x6e, 0x74, 0x65, 0x6e, 0x74, 0x2d, 0x6c, 0x61, 0x6e, 0x67, 0x75, 0x61, 0x67, 0x65,
    0x00, 0x00, 0x00, 0x0e, 0x63, 0x6f, 0x6e, 0x74, 0x65, 0x6e, 0x74, 0x2d, 0x6c, 0x65, 0x6e, 0x67,
    0x74, 0x68, 0x00, 0x00, 0x00, 0x10, 0x63, 0x6f, 0x6e, 0x74, 0x65, 0x6e, 0x74, 0x2d, 0x6c, 0x6f,
    0x63, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0x00, 0x00, 0x00, 0x0b, 0x63, 0x6f, 0x6e, 0x74, 0x65, 0x6e,
    0x74, 0x2d, 0x6d, 0x64, 0x35, 0x00, 0x00, 0x00, 0x0d, 0x63, 0x6f, 0x6e, 0x74, 0x65, 0x6e, 0x74,
    0x2d, 0x72, 0x61, 0x6e, 0x67, 0x65, 0x00, 0x00, 0x00, 0x0c, 0x63, 0x6f, 0x6e, 0x74, 0x65, 0x6e,
    0x74, 0x2d, 0x74, 0x79, 0x70, 0x65, 0x00, 0x00, 0x00, 0x04, 0x64, 0x61, 0x74, 0x65, 0x00, 0x00,
    0x00, 0x04, 0x65, 0x74, 0x61, 0x67, 0x00, 0x00, 0x00, 0x06, 0x65, 0x78, 0x70, 0x65, 0x63, 0x74,
    0x00, 0x00, 0x00, 0x07, 0x65, 0x78, 0x70, 0x69, 0x72, 0x65, 0x73, 0x00, 0x00, 0x00, 0x04, 0x66,
    0x72, 0x6f, 0x6d, 0x00, 0x00, 0x00, 0x04, 0x68, 0x6f, 0x73, 0x74, 0x00, 0x00, 0x00, 0x08, 0x69,
    0x66, 0x2d, 0x6d, 0x61, 0x74, 0x63, 0x68, 0x00, 0x00, 0x00, 0x11, 0x69, 0x66, 0x2d, 0x6d, 0x6f,
    0x64, 0x69, 0x66, 0x69, 0x65, 0x64, 0x2d, 0x73, 0x69, 0x6e, 0x63, 0x65, 0x00, 0x00, 0x00, 0x0d,
    0x69, 0x66, 0x2d, 0x6e, 0x6f, 0x6e, 0x65, 0x2d, 0x6d, 0x61, 0x74, 0x63, 0x68, 0x00, 0x00, 0x00,
    0x08, 0x69, 0x66, 0x2d, 0x72, 0x61, 0x6e, 0x67, 0x65, 0x00, 0x00, 0x00, 0x13, 0x69, 0x66, 0x2d,
    0x75, 0x6e, 0x6d, 0x6f, 0x64, 0x69, 0x66, 0x69, 0x65, 0x64, 0x2d, 0x73, 0x69, 0x6e, 0x63, 0x65,
    0x00, 0x00, 0x00, 0x0d, 0x6c, 0x61, 0x73, 0x74, 0x2d, 0x6d, 0x6f, 0x64, 0x69, 0x66, 0x69, 0x65,
    0x64, 0x00, 0x00, 0x00, 0x08, 0x6c, 0x6f, 0x63, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0x00, 0x00, 0x00,
    0x0c, 0x6d, 0x61, 0x78, 0x2d, 0x66, 0x6f, 0x72, 0x77, 0x61, 0x72, 0x64, 0x73, 0x00, 0x00, 0x00,
    0x06, 0x70, 0x72, 0x61, 0x67, 0x6d, 0x61, 0x00, 0x00, 0x00, 0x12, 0x70, 0x72, 0x6f, 0x78, 0x79,
    0x2d, 0x61, 0x75, 0x74, 0x68, 0x65, 0x6e, 0x74, 0x69, 0x63, 0x61, 0x74, 0x65, 0x00, 0x00, 0x00,
    0x13, 0x70, 0x72, 0x6f, 0x78, 0x79, 0x2d, 0x61, 0x75, 0x74, 0x68, 0x6f, 0x72, 0x69, 0x7a, 0x61,
    0x74, 0x69, 0x6f, 0x6e, 0x00, 0x00, 0x00, 0x05, 0x72, 0x61, 0x6e, 0x67, 0x65, 0x00, 0x00, 0x00,
    0x07, 0x72, 0x65, 0x66, 0x65, 0x72, 0x65, 0x72, 0x00, 0x00, 0x00, 0x0b, 0x72, 0x65, 0x74, 0x72,
    0x79, 0x2d, 0x61, 0x66, 0x74, 0x65, 0x72, 0x00, 0x00, 0x00, 0x06, 0x73, 0x65, 0x72, 0x76, 0x65,
    0x72, 0x00, 0x00, 0x00, 0x02, 0x74, 0x65, 0x00, 0x00, 0x00, 0x07, 0x74, 0x72, 0x61, 0x69, 0x6c,
    0x65, 0x72, 0x00, 0x00, 0x00, 0x11, 0x74, 0x72, 0x61, 0x6e, 0x73, 0x66, 0x65, 0x72, 0x2d, 0x65,
    0x6e, 0x63, 0x6f, 0x64, 0x69, 0x6e, 0x67, 0x00, 0x00, 0x00, 0x07, 0x75, 0x70, 0x67, 0x72, 0x61,
    0x64, 0x65, 0x00, 0x00, 0x00, 0x0a, 0x75, 0x73, 0x65, 0x72, 0x2d, 0x61, 0x67, 0x65, 0x6e, 0x74,
    0x00, 0x00, 0x00, 0x04, 0x76, 0x61, 0x72, 0x79, 0x00, 0x00, 0x00, 0x03, 0x76, 0x69, 0x61, 0x00,
    0x00, 0x00, 0x07, 0x77, 0x61, 0x72, 0x6e, 0x69, 0x6e, 0x67, 0x00, 0x00, 0x00, 0x10, 0x77, 0x77,
    0x77, 0x2d, 0x61, 0x75, 0x74, 0x68, 0x65, 0x6e, 0x74, 0x69, 0x63, 0x61, 0x74, 0x65, 0x00, 0x00,
    0x00, 0x06, 0x6d, 0x65, 0x74, 0x68, 0x6f, 0x64, 0x00, 0x00, 0x00, 0x03, 0x67, 0x65, 0x74, 0x00,
    0x00, 0x00, 0x06, 0x73, 0x74, 0x61, 0x74, 0x75, 0x73, 0x00, 0x00, 0x00, 0x06, 0x32, 0x30, 0x30,
    0x20, 0x4f, 0x4b, 0x00, 0x00, 0x00, 0x07, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x00, 0x00,
    0x00, 0x08, 0x48, 0x54, 0x54, 0x50, 0x2f, 0x31, 0x2e, 0x31, 0x00, 0x00, 0x00, 0x03, 0x75, 0x72,
    0x6c, 0x00, 0x00, 0x00, 0x06, 0x70, 0x75, 0x62, 0x6c, 0x69, 0x63, 0x00, 0x00, 0x00, 0x0a, 0x73,
    0x65, 0x74, 0x2d, 0x63, 0x6f, 0x6f, 0x6b, 0x69, 0x65, 0x00, 0x00, 0x00, 0x0a, 0x6b, 0x65, 0x65,
    0x70, 0x2d, 0x61, 0x6c, 0x69, 0x76, 0x65, 0x00, 0x00, 0x00, 0x06, 0x6f, 0x72, 0x69, 0x67, 0x69,
    0x6e, 0x31, 0x30, 0x30, 0x31, 0x30, 0x31, 0x32, 0x30, 0x31, 0x32, 0x30, 0x32, 0x32, 0x30, 0x35,
    0x32, 0x30, 0x36, 0x33, 0x30, 0x30, 0x33, 0x30, 0x32, 0x33, 0x30, 0x33, 0x33, 0x30, 0x34, 0x33,
    0x30, 0x35, 0x33, 0x30, 0x36, 0x33, 0x30, 0x37, 0x34, 0x30, 0x32, 0x34, 0x30, 0x35, 0x34, 0x30,
    0x36, 0x34, 0x30, 0x37, 0x34, 0x30, 0x38, 0x34, 0x30, 0x39, 0x34, 0x31, 0x30, 0x34, 0x31, 0x31,
    0x34, 0x31, 0x32, 0x34, 0x31, 0x33, 0x34, 0x31, 0x34, 0x34, 0x31, 0x35, 0x34, 0x31, 0x36, 0x34,
    0x31, 0x37, 0x35, 0x30, 0x32, 0x35, 0x30, 0x34, 0x35, 0x30, 0x35, 0x32, 0x30, 0x33, 0x20, 0x4e,
    0x6f, 0x6e, 0x2d, 0x41, 0x75, 0x74, 0x68, 0x6f, 0x72, 0x69, 0x74, 0x61, 0x74, 0x69, 0x76, 0x65,
    0x20, 0x49, 0x6e, 0x66, 0x6f, 0x72, 0x6d, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0x32, 0x30, 0x34, 0x20,
    0x4e, 0x6f, 0x20, 0x43, 0x6f, 0x6e, 0x74, 0x65, 0x6e, 0x74, 0x33, 0x30, 0x31, 0x20, 0x4d, 0x6f,
    0x76, 0x65, 0x64, 0x20, 0x50, 0x65, 0x72, 0x6d, 0x61, 0x6e, 0x65, 0x6e, 0x74, 0x6c, 0x79, 0x34,
    0x30, 0x30, 0x20, 0x42, 0x61, 0x64, 0x20, 0x52, 0x65, 0x71, 0x75, 0x65, 0x73, 0x74, 0x34, 0x30,
    0x31, 0x20, 0x55, 0x6e, 0x61, 0x75, 0x74, 0x68, 0x6f, 0x72, 0x69, 0x7a, 0x65, 0x64, 0x34, 0x30,
    0x33, 0x20, 0x46, 0x6f, 0x72, 0x62, 0x69, 0x64, 0x64, 0x65, 0x6e, 0x34, 0x30, 0x34, 0x20, 0x4e,
    0x6f, 0x74, 0x20, 0x46, 0x6f, 0x75, 0x6e, 0x64, 0x35, 0x30, 0x30, 0x20, 0x49, 0x6e, 0x74, 0x65,
    0x72, 0x6e, 0x61, 0x6c, 0x20, 0x53, 0x65, 0x72, 0x76, 0x65, 0x72, 0x20, 0x45, 0x72, 0x72, 0x6f,
    0x72, 0x35, 0x30, 0x31, 0x20, 0x4e, 0x6f, 0x74, 0x20, 0x49, 0x6d, 0x70, 0x6c, 0x65, 0x6d, 0x65,
    0x6e, 0x74, 0x65, 0x64, 0x35, 0x30, 0x33, 0x20, 0x53, 0x65, 0x72, 0x76, 0x69, 0x63, 0x65, 0x20,
    0x55, 0x6e, 0x61, 0x76, 0x61, 0x69, 0x6c, 0x61, 0x62, 0x6c, 0x65, 0x4a, 0x61, 0x6e, 0x20, 0x46,
    0x65, 0x62, 0x20, 0x4d, 0x61, 0x72, 0x20, 0x41, 0x70, 0x72, 0x20, 0x4d, 0x61, 0x79, 0x20, 0x4a,
    0x75, 0x6e, 0x20, 0x4a, 0x75, 0x6c, 0x20, 0x41, 0x75, 0x67, 0x20, 0x53, 0x65, 0x70, 0x74, 0x20,
    0x4f, 0x63, 0x74, 0x20, 0x4e, 0x6f, 0x76, 0x20, 0x44, 0x65, 0x63, 0x20, 0x30, 0x30, 0x3a, 0x30,
    0x30, 0x3a, 0x30, 0x30, 0x20, 0x4d, 0x6f, 0x6e, 0x2c, 0x20, 0x54, 0x75, 0x65, 0x2c, 0x20, 0x57,
    0x65, 0x64, 0x2c, 0x20, 0x54, 0x68, 0x75, 0x2c, 0x20, 0x46, 0x72, 0x69, 0x2c, 0x20, 0x53, 0x61,
    0x74, 0x2c, 0x20, 0x53, 0x75, 0x6e, 0x2c, 0x20, 0x47, 0x4d, 0x54, 0x63, 0x68, 0x75, 0x6e, 0x6b,
    0x65, 0x64, 0x2c, 0x74, 0x65, 0x78, 0x74, 0x2f, 0x68, 0x74, 0x6d, 0x6c, 0x2c, 0x69, 0x6d, 0x61,
    0x67, 0x65, 0x2f, 0x70, 0x6e, 0x67, 0x2c, 0x69, 0x6d, 0x61, 0x67, 0x65, 0x2f, 0x6a, 0x70, 0x67,
    0x2c, 0x69, 0x6d, 0x61, 0x67, 0x65, 0x2f, 0x67, 0x69, 0x66, 0x2c, 0x61, 0x70, 0x70, 0x6c, 0x69,
    0x63, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0x2f, 0x78, 0x6d, 0x6c, 0x2c, 0x61, 0x70, 0x70, 0x6c, 0x69,
    0x63, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0x2f, 0x78, 0x68, 0x74, 0x6d, 0x6c, 0x2b, 0x78, 0x6d, 0x6c,
    0x2c, 0x74, 0x65, 0x78, 0x74, 0x2f, 0x70, 0x6c, 0x61, 0x69, 0x6e, 0x2c, 0x74, 0x65, 0x78, 0x74,
    0x2f, 0x6a, 0x61, 0x76, 0x61, 0x73, 0x63, 0x72, 0x69, 0x70, 0x74, 0x2c, 0x70, 0x75, 0x62, 0x6c,
    0x69, 0x63, 0x70, 0x72, 0x69, 0x76, 0x61, 0x74, 0x65, 0x6d, 0x61, 0x78, 0x2d, 0x61, 0x67, 0x65,
    0x3d, 0x67, 0x7a, 0x69, 0x70, 0x2c, 0x64, 0x65, 0x66, 0x6c, 0x61, 0x74, 0x65, 0x2c, 0x73, 0x64,
    0x63, 0x68, 0x63, 0x68, 0x61, 0x72, 0x73, 0x65, 0x74, 0x3d, 0x75, 0x74, 0x66, 0x2d, 0x38, 0x63,
    0x68, 0x61, 0x72, 0x73, 0x65, 0x74, 0x3d, 0x69, 0x73, 0x6f, 0x2d, 0x38, 0x38, 0x35, 0x39, 0x2d,
    0x31, 0x2c, 0x75, 0x74, 0x66, 0x2d, 0x2c, 0x2a, 0x2c, 0x65, 0x6e, 0x71, 0x3d, 0x30, 0x2e,
];

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    #[error("spdy: {0}")]
    Io(#[from] io::Error),
    #[error("spdy: unsupported version {0} (only SPDY/3 is spoken)")]
    UnsupportedVersion(u16),
    #[error("spdy: {kind} frame too short: {len} bytes")]
    TooShort { kind: &'static str, len: usize },
    #[error("spdy: malformed header block: {0}")]
    HeaderBlock(String),
    #[error("spdy: header compression: {0}")]
    Compression(String),
}

/// Header names and values as the block carries them (names lowercase; several values of one
/// name are joined with NUL).
pub type Headers = Vec<(String, String)>;

/// One SETTINGS entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub flags: u8,
    pub id: u32,
    pub value: u32,
}

/// A frame, either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Data {
        stream_id: u32,
        fin: bool,
        data: Vec<u8>,
    },
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings {
        flags: u8,
        entries: Vec<Setting>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    /// A control frame type we do not know: the spec says to ignore it.
    Unknown {
        kind: u16,
    },
}

impl Frame {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One connection's framing state: the two zlib streams of the header blocks (each direction
/// is one stream for the connection's life, flushed after every block).
pub struct Codec {
    deflate: Compress,
    inflate: Decompress,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec").finish_non_exhaustive()
    }
}

impl Default for Codec {
    fn default() -> Self {
        Self::new()
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn need(kind: &'static str, payload: &[u8], len: usize) -> Result<(), SpdyError> {
    if payload.len() < len {
        return Err(SpdyError::TooShort {
            kind,
            len: payload.len(),
        });
    }
    Ok(())
}

impl Codec {
    pub fn new() -> Codec {
        let mut deflate = Compress::new(Compression::default(), true);
        // Before any input: the dictionary only primes the window (and goes in the zlib header).
        deflate
            .set_dictionary(HEADER_DICTIONARY)
            .expect("a fresh deflate stream takes a dictionary");
        Codec {
            deflate,
            inflate: Decompress::new(true),
        }
    }

    /// Reads the next frame; `Ok(None)` when the connection ended between frames.
    pub async fn read_frame<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
    ) -> Result<Option<Frame>, SpdyError> {
        let mut head = [0u8; FRAME_HEADER_LEN];
        match io.read_exact(&mut head).await {
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(err) => return Err(err.into()),
        }
        let len = (u32_at(&head, 4) & 0x00ff_ffff) as usize;
        let mut payload = vec![0u8; len];
        io.read_exact(&mut payload).await?;
        self.parse(head, &payload).map(Some)
    }

    /// One whole frame from `bytes` (header and payload): the frame and the bytes it took;
    /// `Ok(None)` when `bytes` holds only part of it.
    pub fn decode(&mut self, bytes: &[u8]) -> Result<Option<(Frame, usize)>, SpdyError> {
        if bytes.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let mut head = [0u8; FRAME_HEADER_LEN];
        head.copy_from_slice(&bytes[..FRAME_HEADER_LEN]);
        let len = (u32_at(&head, 4) & 0x00ff_ffff) as usize;
        let Some(payload) = bytes.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + len) else {
            return Ok(None);
        };
        Ok(Some((self.parse(head, payload)?, FRAME_HEADER_LEN + len)))
    }

    fn parse(&mut self, head: [u8; FRAME_HEADER_LEN], payload: &[u8]) -> Result<Frame, SpdyError> {
        let flags = head[4];
        if head[0] & 0x80 == 0 {
            return Ok(Frame::Data {
                stream_id: u32_at(&head, 0) & STREAM_ID_MASK,
                fin: flags & FLAG_FIN != 0,
                data: payload.to_vec(),
            });
        }
        let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
        if version != VERSION {
            return Err(SpdyError::UnsupportedVersion(version));
        }
        let kind = u16::from_be_bytes([head[2], head[3]]);
        let fin = flags & FLAG_FIN != 0;
        Ok(match kind {
            TYPE_SYN_STREAM => {
                need("SYN_STREAM", payload, 10)?;
                Frame::SynStream {
                    stream_id: u32_at(payload, 0) & STREAM_ID_MASK,
                    associated_to: u32_at(payload, 4) & STREAM_ID_MASK,
                    priority: payload[8] >> 5,
                    flags,
                    headers: self.inflate_headers(&payload[10..])?,
                }
            }
            TYPE_SYN_REPLY => {
                need("SYN_REPLY", payload, 4)?;
                Frame::SynReply {
                    stream_id: u32_at(payload, 0) & STREAM_ID_MASK,
                    fin,
                    headers: self.inflate_headers(&payload[4..])?,
                }
            }
            TYPE_HEADERS => {
                need("HEADERS", payload, 4)?;
                Frame::Headers {
                    stream_id: u32_at(payload, 0) & STREAM_ID_MASK,
                    fin,
                    headers: self.inflate_headers(&payload[4..])?,
                }
            }
            TYPE_RST_STREAM => {
                need("RST_STREAM", payload, 8)?;
                Frame::RstStream {
                    stream_id: u32_at(payload, 0) & STREAM_ID_MASK,
                    status: u32_at(payload, 4),
                }
            }
            TYPE_SETTINGS => {
                need("SETTINGS", payload, 4)?;
                let count = u32_at(payload, 0) as usize;
                let body = &payload[4..];
                if count.checked_mul(8) != Some(body.len()) {
                    return Err(SpdyError::TooShort {
                        kind: "SETTINGS",
                        len: payload.len(),
                    });
                }
                let entries = body
                    .chunks_exact(8)
                    .map(|e| Setting {
                        flags: e[0],
                        id: u32_at(e, 0) & 0x00ff_ffff,
                        value: u32_at(e, 4),
                    })
                    .collect();
                Frame::Settings { flags, entries }
            }
            TYPE_PING => {
                need("PING", payload, 4)?;
                Frame::Ping {
                    id: u32_at(payload, 0),
                }
            }
            TYPE_GOAWAY => {
                need("GOAWAY", payload, 8)?;
                Frame::GoAway {
                    last_good_stream_id: u32_at(payload, 0) & STREAM_ID_MASK,
                    status: u32_at(payload, 4),
                }
            }
            TYPE_WINDOW_UPDATE => {
                need("WINDOW_UPDATE", payload, 8)?;
                Frame::WindowUpdate {
                    stream_id: u32_at(payload, 0) & STREAM_ID_MASK,
                    delta: u32_at(payload, 4) & STREAM_ID_MASK,
                }
            }
            kind => Frame::Unknown { kind },
        })
    }

    /// The frame's bytes on the wire.
    pub fn encode(&mut self, frame: &Frame) -> Result<Vec<u8>, SpdyError> {
        let (kind, flags, payload) = match frame {
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                let mut out = Vec::with_capacity(FRAME_HEADER_LEN + data.len());
                out.extend_from_slice(&(stream_id & STREAM_ID_MASK).to_be_bytes());
                push_flags_and_length(&mut out, u8::from(*fin), data.len())?;
                out.extend_from_slice(data);
                return Ok(out);
            }
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                flags,
                headers,
            } => {
                let mut p = Vec::new();
                p.extend_from_slice(&(stream_id & STREAM_ID_MASK).to_be_bytes());
                p.extend_from_slice(&(associated_to & STREAM_ID_MASK).to_be_bytes());
                p.push((priority & 0x07) << 5);
                p.push(0);
                p.extend(self.deflate_headers(headers)?);
                (TYPE_SYN_STREAM, *flags, p)
            }
            Frame::SynReply {
                stream_id,
                fin,
                headers,
            }
            | Frame::Headers {
                stream_id,
                fin,
                headers,
            } => {
                let mut p = (stream_id & STREAM_ID_MASK).to_be_bytes().to_vec();
                p.extend(self.deflate_headers(headers)?);
                let kind = if matches!(frame, Frame::SynReply { .. }) {
                    TYPE_SYN_REPLY
                } else {
                    TYPE_HEADERS
                };
                (kind, u8::from(*fin), p)
            }
            Frame::RstStream { stream_id, status } => (
                TYPE_RST_STREAM,
                0,
                two_words(stream_id & STREAM_ID_MASK, *status),
            ),
            Frame::Settings { flags, entries } => {
                let mut p = (entries.len() as u32).to_be_bytes().to_vec();
                for e in entries {
                    p.extend_from_slice(
                        &((u32::from(e.flags) << 24) | (e.id & 0x00ff_ffff)).to_be_bytes(),
                    );
                    p.extend_from_slice(&e.value.to_be_bytes());
                }
                (TYPE_SETTINGS, *flags, p)
            }
            Frame::Ping { id } => (TYPE_PING, 0, id.to_be_bytes().to_vec()),
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => (
                TYPE_GOAWAY,
                0,
                two_words(last_good_stream_id & STREAM_ID_MASK, *status),
            ),
            Frame::WindowUpdate { stream_id, delta } => (
                TYPE_WINDOW_UPDATE,
                0,
                two_words(stream_id & STREAM_ID_MASK, delta & STREAM_ID_MASK),
            ),
            Frame::Unknown { kind } => (*kind, 0, Vec::new()),
        };
        let mut out = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
        out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
        out.extend_from_slice(&kind.to_be_bytes());
        push_flags_and_length(&mut out, flags, payload.len())?;
        out.extend(payload);
        Ok(out)
    }

    /// The uncompressed block: the pair count, then each name and value with its length.
    fn deflate_headers(&mut self, headers: &Headers) -> Result<Vec<u8>, SpdyError> {
        let mut block = (headers.len() as u32).to_be_bytes().to_vec();
        for (name, value) in headers {
            for text in [name.to_ascii_lowercase().as_str(), value.as_str()] {
                block.extend_from_slice(&(text.len() as u32).to_be_bytes());
                block.extend_from_slice(text.as_bytes());
            }
        }
        let mut out = Vec::with_capacity(block.len() + 64);
        let mut input = &block[..];
        loop {
            out.reserve(256);
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Compression(e.to_string()))?;
            input = &input[(self.deflate.total_in() - before) as usize..];
            // Done when all input is in and the flush left spare room in `out`.
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }

    fn inflate_headers(&mut self, compressed: &[u8]) -> Result<Headers, SpdyError> {
        let mut block = Vec::with_capacity(compressed.len() * 4 + 64);
        let mut input = compressed;
        loop {
            if block.len() == block.capacity() {
                if block.len() >= MAX_HEADER_BLOCK {
                    return Err(SpdyError::HeaderBlock("larger than 256 KiB".into()));
                }
                block.reserve(block.len().max(256));
            }
            let before = self.inflate.total_in();
            let result = self
                .inflate
                .decompress_vec(input, &mut block, FlushDecompress::Sync);
            input = &input[(self.inflate.total_in() - before) as usize..];
            match result {
                Ok(Status::StreamEnd) => break,
                Ok(_) if input.is_empty() && block.len() < block.capacity() => break,
                Ok(_) => {}
                Err(err) if err.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(HEADER_DICTIONARY)
                        .map_err(|e| SpdyError::Compression(e.to_string()))?;
                }
                Err(err) => return Err(SpdyError::Compression(err.to_string())),
            }
        }
        parse_header_block(&block)
    }
}

fn two_words(a: u32, b: u32) -> Vec<u8> {
    let mut p = a.to_be_bytes().to_vec();
    p.extend_from_slice(&b.to_be_bytes());
    p
}

fn push_flags_and_length(out: &mut Vec<u8>, flags: u8, len: usize) -> Result<(), SpdyError> {
    if len > 0x00ff_ffff {
        return Err(SpdyError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "frame payload over 16 MiB",
        )));
    }
    out.push(flags);
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    Ok(())
}

/// Reads the pairs of an uncompressed header block.
fn parse_header_block(block: &[u8]) -> Result<Headers, SpdyError> {
    let malformed = |why: &str| SpdyError::HeaderBlock(why.to_owned());
    let mut rest = block;
    let take = |rest: &mut &[u8], what: &str| -> Result<String, SpdyError> {
        if rest.len() < 4 {
            return Err(malformed(&format!("{what} length cut short")));
        }
        let len = u32_at(rest, 0) as usize;
        let text = rest
            .get(4..4usize.saturating_add(len))
            .ok_or_else(|| malformed(&format!("{what} longer than the block")))?;
        let text = String::from_utf8(text.to_vec())
            .map_err(|_| malformed(&format!("{what} is not UTF-8")))?;
        *rest = &rest[4 + len..];
        Ok(text)
    };
    if rest.len() < 4 {
        return Err(malformed("no pair count"));
    }
    let count = u32_at(rest, 0) as usize;
    rest = &rest[4..];
    // Each pair takes at least 8 bytes: a count beyond that is a lie.
    if count > rest.len() / 8 {
        return Err(malformed("more pairs than bytes"));
    }
    let mut headers = Vec::with_capacity(count);
    for _ in 0..count {
        let name = take(&mut rest, "name")?;
        if name.is_empty() {
            return Err(malformed("empty header name"));
        }
        let value = take(&mut rest, "value")?;
        headers.push((name, value));
    }
    if !rest.is_empty() {
        return Err(malformed("bytes after the last pair"));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(frame: Frame) {
        let mut ours = Codec::new();
        let mut theirs = Codec::new();
        let bytes = ours.encode(&frame).unwrap();
        let (back, used) = theirs.decode(&bytes).unwrap().unwrap();
        assert_eq!(back, frame);
        assert_eq!(used, bytes.len());
        assert!(theirs.decode(&bytes[..bytes.len() - 1]).unwrap().is_none());
    }

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn dictionary_is_the_specs() {
        assert_eq!(HEADER_DICTIONARY.len(), 1423);
        assert!(HEADER_DICTIONARY.starts_with(b"\0\0\0\x07options\0\0\0\x04head"));
        assert!(HEADER_DICTIONARY.ends_with(b"charset=iso-8859-1,utf-,*,enq=0."));
    }

    #[test]
    fn every_frame_round_trips() {
        round_trip(Frame::Data {
            stream_id: 3,
            fin: true,
            data: b"hello".to_vec(),
        });
        round_trip(Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 0,
            flags: FLAG_FIN,
            headers: headers(&[("streamtype", "error")]),
        });
        round_trip(Frame::SynReply {
            stream_id: 1,
            fin: false,
            headers: Vec::new(),
        });
        round_trip(Frame::Headers {
            stream_id: 5,
            fin: true,
            headers: headers(&[("a", "b\0c")]),
        });
        round_trip(Frame::RstStream {
            stream_id: 7,
            status: RST_CANCEL,
        });
        round_trip(Frame::Settings {
            flags: 0,
            entries: vec![Setting {
                flags: 0,
                id: SETTINGS_INITIAL_WINDOW_SIZE,
                value: 1 << 20,
            }],
        });
        round_trip(Frame::Ping { id: 2 });
        round_trip(Frame::GoAway {
            last_good_stream_id: 9,
            status: GOAWAY_OK,
        });
        round_trip(Frame::WindowUpdate {
            stream_id: 0,
            delta: 4096,
        });
    }

    #[test]
    fn header_blocks_share_one_zlib_stream_per_direction() {
        let mut ours = Codec::new();
        let mut theirs = Codec::new();
        let first = Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 0,
            flags: 0,
            headers: headers(&[("streamtype", "stdout"), ("content-type", "text/html")]),
        };
        let second = Frame::SynStream {
            stream_id: 3,
            associated_to: 0,
            priority: 0,
            flags: 0,
            headers: headers(&[("streamtype", "stderr")]),
        };
        let (a, b) = (ours.encode(&first).unwrap(), ours.encode(&second).unwrap());
        // The first block's zlib header names the dictionary (FDICT) with its Adler-32.
        let zlib = &a[FRAME_HEADER_LEN + 10..];
        assert_eq!(zlib[1] & 0x20, 0x20);
        let adler = u32_at(zlib, 2);
        let mut check = flate2::Decompress::new(true);
        let mut sink = Vec::with_capacity(64);
        let err = check
            .decompress_vec(zlib, &mut sink, FlushDecompress::Sync)
            .unwrap_err();
        assert_eq!(err.needs_dictionary(), Some(adler));
        // "content-type" and "text/html" come from the dictionary: the block is small.
        assert!(a.len() < FRAME_HEADER_LEN + 10 + 40, "{}", a.len());
        assert_eq!(theirs.decode(&a).unwrap().unwrap().0, first);
        assert_eq!(theirs.decode(&b).unwrap().unwrap().0, second);
        // The second block alone means nothing to a fresh stream.
        assert!(Codec::new().decode(&b).is_err());
    }

    fn control(kind: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0x80, 3];
        out.extend_from_slice(&kind.to_be_bytes());
        out.push(flags);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn malformed_frames_are_clear_errors() {
        let err = |bytes: Vec<u8>| Codec::new().decode(&bytes).unwrap_err().to_string();
        let mut v2 = control(TYPE_PING, 0, &[0, 0, 0, 1]);
        v2[1] = 2;
        assert_eq!(
            err(v2),
            "spdy: unsupported version 2 (only SPDY/3 is spoken)"
        );
        assert_eq!(
            err(control(TYPE_PING, 0, &[1])),
            "spdy: PING frame too short: 1 bytes"
        );
        assert!(err(control(TYPE_SETTINGS, 0, &[0, 0, 0, 9, 1, 2])).contains("SETTINGS"));
        assert!(
            err(control(
                TYPE_SYN_STREAM,
                0,
                &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3]
            ))
            .contains("header compression")
        );
        // A valid zlib stream whose block lies about its lengths.
        let mut deflate = Codec::new();
        let mut lying = 5u32.to_be_bytes().to_vec();
        lying.extend_from_slice(&100u32.to_be_bytes());
        lying.extend_from_slice(b"ab");
        let mut compressed = Vec::with_capacity(256);
        deflate
            .deflate
            .compress_vec(&lying, &mut compressed, FlushCompress::Sync)
            .unwrap();
        let mut payload = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        payload.extend(compressed);
        assert!(err(control(TYPE_SYN_STREAM, 0, &payload)).contains("malformed header block"));
        assert!(parse_header_block(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(parse_header_block(&[0, 0]).is_err());
    }

    #[test]
    fn unknown_control_frames_are_ignored_and_garbage_never_panics() {
        let mut codec = Codec::new();
        let (frame, _) = codec.decode(&control(42, 0, b"xyz")).unwrap().unwrap();
        assert_eq!(frame, Frame::Unknown { kind: 42 });
        let mut seed = 7u32;
        for len in 0..400 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (seed >> 16) as u8
                })
                .collect();
            let _ = Codec::new().decode(&bytes);
            let _ = parse_header_block(&bytes);
        }
    }
}
