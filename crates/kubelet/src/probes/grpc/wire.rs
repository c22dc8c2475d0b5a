//! The pure parts of a `grpc` probe: the health check's protobuf messages in gRPC's
//! length-prefixed framing, status and code names, `grpc-message` decoding, and Go's
//! duration text.

use std::time::Duration;

/// `HealthCheckResponse.ServingStatus.SERVING`.
pub const SERVING: i32 = 1;

/// gRPC status codes the probe treats specially.
pub mod code {
    pub const UNKNOWN: u32 = 2;
    pub const DEADLINE_EXCEEDED: u32 = 4;
    pub const UNIMPLEMENTED: u32 = 12;
    pub const INTERNAL: u32 = 13;
    pub const UNAVAILABLE: u32 = 14;
}

/// Go's `time.Duration` text for whole seconds and more (`1s`, `1m30s`, `1h0m0s`).
pub fn go_duration(d: Duration) -> String {
    let millis = d.subsec_millis();
    let total = d.as_secs();
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    let seconds = if millis == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{}s", format!("{millis:03}").trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) if total == 0 && millis > 0 => format!("{millis}ms"),
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

/// `HealthCheckResponse.ServingStatus` names; an unknown value prints as its number (Go).
pub fn serving_status_name(status: i32) -> String {
    match status {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        other => other.to_string(),
    }
}

/// grpc-go's `codes.Code` names.
pub fn code_name(code: u32) -> String {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| format!("Code({code})"), |n| (*n).to_owned())
}

/// The gRPC code of a non-gRPC HTTP answer (gRPC's HTTP-to-gRPC status mapping).
pub fn code_of_http_status(status: u16) -> u32 {
    match status {
        400 => code::INTERNAL,
        401 => 16,
        403 => 7,
        404 => code::UNIMPLEMENTED,
        429 | 502..=504 => code::UNAVAILABLE,
        _ => code::UNKNOWN,
    }
}

/// The request body: one uncompressed message, `HealthCheckRequest { service = 1 }` (an empty
/// service is the field's default, so it is left out).
pub fn encode_request(service: &str) -> Vec<u8> {
    let mut message = Vec::new();
    if !service.is_empty() {
        message.push(0x0a); // field 1, length-delimited
        push_varint(&mut message, service.len() as u64);
        message.extend_from_slice(service.as_bytes());
    }
    let mut framed = Vec::with_capacity(5 + message.len());
    framed.push(0); // not compressed
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    framed
}

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The `status` of the one `HealthCheckResponse` in a response body (0 when absent, the
/// protobuf default); `Err` is why the body is unusable.
pub fn decode_response(body: &[u8]) -> Result<i32, String> {
    let Some((header, rest)) = body.split_first_chunk::<5>() else {
        return Err(if body.is_empty() {
            "cardinality violation: received no response message from non-streaming RPC".into()
        } else {
            "grpc: received an incomplete message".into()
        });
    };
    if header[0] != 0 {
        return Err("grpc: compressed message received, but no compression was requested".into());
    }
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let message = rest
        .get(..len)
        .ok_or("grpc: received an incomplete message")?;
    if rest.len() > len {
        return Err(
            "cardinality violation: expected <EOF> for non-streaming RPCs, but received another message"
                .into(),
        );
    }
    let unmarshal = |what: &str| format!("grpc: failed to unmarshal the received message: {what}");
    let mut status = 0;
    let mut input = message;
    while !input.is_empty() {
        let key = read_varint(&mut input).ok_or_else(|| unmarshal("bad field key"))?;
        let (field, wire_type) = (key >> 3, key & 7);
        match wire_type {
            0 => {
                let value = read_varint(&mut input).ok_or_else(|| unmarshal("bad varint"))?;
                if field == 1 {
                    // int32 enums travel sign-extended to 64 bits
                    status = value as i64 as i32;
                }
            }
            1 | 5 => {
                let width = if wire_type == 1 { 8 } else { 4 };
                input = input.get(width..).ok_or_else(|| unmarshal("truncated"))?;
            }
            2 => {
                let len = read_varint(&mut input).ok_or_else(|| unmarshal("bad length"))?;
                let len = usize::try_from(len).map_err(|_| unmarshal("bad length"))?;
                input = input.get(len..).ok_or_else(|| unmarshal("truncated"))?;
            }
            _ => return Err(unmarshal("unsupported wire type")),
        }
    }
    Ok(status)
}

fn read_varint(input: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, &byte) in input.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *input = &input[i + 1..];
            return Some(value);
        }
    }
    None
}

/// `grpc-message` is percent-encoded (RFC 3986 style, invalid escapes kept as they are).
pub fn decode_grpc_message(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if raw[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                raw.get(i + 1).copied().and_then(hex),
                raw.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
