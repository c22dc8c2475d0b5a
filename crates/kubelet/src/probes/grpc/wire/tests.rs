use super::*;

#[test]
fn request_frames() {
    assert_eq!(encode_request(""), vec![0, 0, 0, 0, 0]);
    assert_eq!(
        encode_request("svc"),
        vec![0, 0, 0, 0, 5, 0x0a, 3, b's', b'v', b'c']
    );
    let long = "x".repeat(200);
    let framed = encode_request(&long);
    assert_eq!(&framed[..8], &[0, 0, 0, 0, 203, 0x0a, 0xc8, 0x01]);
}

#[test]
fn response_frames() {
    assert_eq!(decode_response(&[0, 0, 0, 0, 2, 0x08, 0x01]), Ok(SERVING));
    assert_eq!(decode_response(&[0, 0, 0, 0, 2, 0x08, 0x02]), Ok(2));
    // the default (field absent) is UNKNOWN
    assert_eq!(decode_response(&[0, 0, 0, 0, 0]), Ok(0));
    // unknown fields of every wire type are skipped
    let message = [
        0x10, 0x05, // field 2 varint
        0x1a, 0x02, b'h', b'i', // field 3 bytes
        0x25, 1, 2, 3, 4, // field 4 fixed32
        0x29, 1, 2, 3, 4, 5, 6, 7, 8, // field 5 fixed64
        0x08, 0x03, // status SERVICE_UNKNOWN
    ];
    let mut framed = vec![0, 0, 0, 0, message.len() as u8];
    framed.extend_from_slice(&message);
    assert_eq!(decode_response(&framed), Ok(3));
    // a negative enum value travels as ten bytes
    let mut negative = vec![0, 0, 0, 0, 11, 0x08];
    negative.extend_from_slice(&[0xff; 9]);
    negative.push(0x01);
    assert_eq!(decode_response(&negative), Ok(-1));
    assert!(
        decode_response(&[])
            .unwrap_err()
            .contains("no response message")
    );
    assert!(decode_response(&[0, 0, 0, 0, 3, 0x08]).is_err());
    assert!(
        decode_response(&[1, 0, 0, 0, 0])
            .unwrap_err()
            .contains("compressed")
    );
    assert!(decode_response(&[0, 0, 0, 0, 1, 0x08]).is_err());
    assert!(
        decode_response(&[0, 0, 0, 0, 0, 0])
            .unwrap_err()
            .contains("cardinality")
    );
}

#[test]
fn names_and_durations() {
    assert_eq!(serving_status_name(0), "UNKNOWN");
    assert_eq!(serving_status_name(2), "NOT_SERVING");
    assert_eq!(serving_status_name(3), "SERVICE_UNKNOWN");
    assert_eq!(serving_status_name(7), "7");
    assert_eq!(code_name(5), "NotFound");
    assert_eq!(code_name(14), "Unavailable");
    assert_eq!(code_name(99), "Code(99)");
    assert_eq!(code_of_http_status(404), code::UNIMPLEMENTED);
    assert_eq!(code_of_http_status(503), code::UNAVAILABLE);
    assert_eq!(code_of_http_status(500), code::UNKNOWN);
    assert_eq!(go_duration(Duration::from_secs(1)), "1s");
    assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
    assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
    assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
    assert_eq!(go_duration(Duration::from_millis(250)), "250ms");
    assert_eq!(go_duration(Duration::ZERO), "0s");
    assert_eq!(
        decode_grpc_message(b"unknown%20service%3A %zz"),
        "unknown service: %zz"
    );
}
