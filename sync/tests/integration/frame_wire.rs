//! The frame format seen from outside: every message round-trips, and every way a frame can be
//! damaged or forged is refused with a specific error, without panicking or over-allocating.

use nimbus_core::ids::NodeId;
use nimbus_sync::frame::{
    Batch, EdgeEvent, FrameError, FrameLimits, Message, Snapshot, Status, VERSION, decode, encode,
};
use nimbus_sync::topics::SnapshotKind;

fn node() -> NodeId {
    NodeId::new("room-101").unwrap()
}

fn event(seq: u64) -> EdgeEvent {
    EdgeEvent {
        seq,
        event_type: "ATTENDANCE_MARKED".into(),
        topic: "attendance.events".into(),
        priority: 0,
        payload_json: format!(r#"{{"student_id":"s-{seq}","status":"PRESENT"}}"#),
        wall_ms: 1_700_000_000_000 + seq as i64,
        clock_synced: seq % 2 == 0,
        boot_id: "7f1c".into(),
    }
}

fn batch(first: u64, n: u64) -> Batch {
    Batch { node_id: node(), first_seq: first, events: (first..first + n).map(event).collect() }
}

fn every_message() -> Vec<Message> {
    let mut all = vec![
        Message::Batch(batch(1, 3)),
        Message::Batch(batch(1_000_000, 1)),
        Message::Batch(Batch { node_id: node(), first_seq: 42, events: vec![] }),
        Message::Ack { upto_seq: 0 },
        Message::Ack { upto_seq: u64::MAX },
        Message::Resend { from_seq: 17 },
        Message::Reject { reason: "batch from room-102 on room-101's topic".into() },
        Message::Status(Status::Online { node_id: node(), boot_id: "7f1c".into(), version: "0.1.0".into(), at_ms: -5 }),
        Message::Status(Status::Offline { node_id: node() }),
    ];
    for kind in SnapshotKind::ALL {
        all.push(Message::Snapshot(Snapshot { kind, version: 9, body: br#"{"entries":[]}"#.to_vec() }));
    }
    all.push(Message::Snapshot(Snapshot { kind: SnapshotKind::Keys, version: 0, body: vec![] }));
    all
}

/// A frame around a hand-made body, with a correct checksum: the body is what is under test.
fn frame_around(body: &[u8]) -> Vec<u8> {
    let mut frame = vec![VERSION];
    frame.extend_from_slice(body);
    let crc = crc32fast::hash(&frame);
    frame.extend_from_slice(&crc.to_le_bytes());
    frame
}

fn body_of(frame: &[u8]) -> &[u8] {
    &frame[1..frame.len() - 4]
}

/// A postcard varint.
fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// The start of a batch body: variant 0, node id, first seq, then a claimed event count.
fn batch_header(claimed_events: u64) -> Vec<u8> {
    let mut body = vec![0u8];
    body.extend(varint(8));
    body.extend_from_slice(b"room-101");
    body.extend(varint(1));
    body.extend(varint(claimed_events));
    body
}

#[test]
fn every_message_round_trips() {
    for msg in every_message() {
        let frame = encode(&msg);
        assert_eq!(frame[0], VERSION);
        assert_eq!(decode(&frame, FrameLimits::default()), Ok(msg));
    }
}

#[test]
fn the_checksum_is_crc32_of_version_and_body_little_endian() {
    let frame = encode(&Message::Ack { upto_seq: 300 });
    let (covered, crc) = frame.split_at(frame.len() - 4);
    assert_eq!(crc, crc32fast::hash(covered).to_le_bytes());
    assert_eq!(covered, [VERSION, 1, 0xac, 0x02], "variant 1, varint 300");
}

#[test]
fn any_corrupted_byte_anywhere_is_refused() {
    for msg in every_message() {
        let frame = encode(&msg);
        for i in 0..frame.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = frame.clone();
                bad[i] ^= flip;
                let err = decode(&bad, FrameLimits::default()).unwrap_err();
                if i == 0 {
                    assert_eq!(err, FrameError::UnknownVersion(VERSION ^ flip));
                } else {
                    assert_eq!(err, FrameError::Checksum, "byte {i} ^ {flip:#x} of {msg:?}");
                }
            }
        }
    }
}

#[test]
fn every_truncation_is_refused() {
    for msg in every_message() {
        let frame = encode(&msg);
        for len in 0..frame.len() {
            let err = decode(&frame[..len], FrameLimits::default()).unwrap_err();
            let expected = match len {
                0 => FrameError::Empty,
                1..=4 => FrameError::Truncated(len),
                _ => FrameError::Checksum,
            };
            assert_eq!(err, expected, "{len} of {} bytes of {msg:?}", frame.len());
        }
    }
}

#[test]
fn appended_bytes_are_refused() {
    let mut frame = encode(&Message::Resend { from_seq: 3 });
    frame.push(0);
    assert_eq!(decode(&frame, FrameLimits::default()), Err(FrameError::Checksum));
}

#[test]
fn trailing_bytes_under_a_valid_checksum_are_malformed() {
    let frame = encode(&Message::Ack { upto_seq: 3 });
    let mut body = body_of(&frame).to_vec();
    body.push(0);
    assert!(matches!(decode(&frame_around(&body), FrameLimits::default()), Err(FrameError::Malformed(_))));
}

#[test]
fn unknown_versions_are_reported_before_the_checksum() {
    for version in [0u8, 3, 0xff] {
        let mut frame = encode(&Message::Ack { upto_seq: 1 });
        frame[0] = version;
        assert_eq!(decode(&frame, FrameLimits::default()), Err(FrameError::UnknownVersion(version)));
        assert_eq!(decode(&[version], FrameLimits::default()), Err(FrameError::UnknownVersion(version)));
    }
}

#[test]
fn oversize_frames_are_refused_before_anything_else() {
    let limits = FrameLimits { max_frame_bytes: 64, ..FrameLimits::default() };
    let frame = encode(&Message::Batch(batch(1, 5)));
    assert!(frame.len() > 64);
    assert_eq!(decode(&frame, limits), Err(FrameError::TooLarge { len: frame.len(), max: 64 }));
    // Even garbage of that size is refused by length alone.
    assert_eq!(decode(&[9u8; 65], limits), Err(FrameError::TooLarge { len: 65, max: 64 }));
    assert_eq!(decode(&vec![0u8; FrameLimits::DEFAULT_MAX_FRAME_BYTES + 1], FrameLimits::default()).unwrap_err(), {
        FrameError::TooLarge {
            len: FrameLimits::DEFAULT_MAX_FRAME_BYTES + 1,
            max: FrameLimits::DEFAULT_MAX_FRAME_BYTES,
        }
    });
}

#[test]
fn batches_over_the_event_limit_are_refused() {
    let limits = FrameLimits { max_events: 4, ..FrameLimits::default() };
    let frame = encode(&Message::Batch(batch(1, 5)));
    assert_eq!(decode(&frame, limits), Err(FrameError::TooManyEvents { count: 5, max: 4 }));
    assert!(decode(&encode(&Message::Batch(batch(1, 4))), limits).is_ok());
}

#[test]
fn a_claimed_event_count_of_two_to_the_sixty_is_refused_without_allocating() {
    let frame = frame_around(&batch_header(1 << 60));
    assert_eq!(decode(&frame, FrameLimits::default()), Err(FrameError::TooManyEvents { count: 1 << 60, max: 500 }));
}

#[test]
fn huge_length_claims_fail_on_the_input_length_even_without_an_event_limit() {
    // With the event limit out of the way, postcard and serde still cannot be made to allocate for
    // a claim: postcard gives no size hint beyond the remaining input, and serde's Vec pre-allocates
    // only from a hint. Each of these would need exabytes if a claim were trusted.
    let unlimited = FrameLimits { max_frame_bytes: usize::MAX, max_events: usize::MAX };
    let mut claims = vec![batch_header(1 << 60), batch_header(u64::MAX >> 1)];
    // A first event whose event_type claims 2^60 bytes.
    let mut long_string = batch_header(1);
    long_string.extend(varint(1));
    long_string.extend(varint(1 << 60));
    claims.push(long_string);
    // A snapshot body claiming 2^60 bytes: variant 5, kind 0, version 1, length.
    let mut snapshot = vec![5u8, 0, 1];
    snapshot.extend(varint(1 << 60));
    claims.push(snapshot);
    // A reject reason claiming 2^62 bytes, followed by a few real ones.
    let mut reject = vec![3u8];
    reject.extend(varint(1 << 62));
    reject.extend_from_slice(b"abc");
    claims.push(reject);
    for body in claims {
        assert!(matches!(decode(&frame_around(&body), unlimited), Err(FrameError::Malformed(_))), "{body:?}");
    }
}

#[test]
fn non_contiguous_batches_are_refused() {
    let mut gap = batch(1, 3);
    gap.events[2].seq = 4;
    let mut reordered = batch(1, 3);
    reordered.events.swap(0, 1);
    let mut wrong_start = batch(1, 3);
    wrong_start.first_seq = 2;
    let zero = Batch { node_id: node(), first_seq: 0, events: vec![event(0)] };
    let empty_at_zero = Batch { node_id: node(), first_seq: 0, events: vec![] };
    for bad in [gap, reordered, wrong_start, zero, empty_at_zero] {
        assert_eq!(decode(&encode(&Message::Batch(bad)), FrameLimits::default()), Err(FrameError::NonContiguous));
    }
}

#[test]
fn an_invalid_node_id_or_unknown_variant_is_malformed() {
    let mut bad_node = vec![0u8];
    bad_node.extend(varint(8));
    bad_node.extend_from_slice(b"Room/101");
    bad_node.extend(varint(1));
    bad_node.extend(varint(0));
    let unknown_variant = vec![42u8, 1];
    let bad_utf8 = vec![3u8, 2, 0xc3, 0x28];
    for body in [bad_node, unknown_variant, bad_utf8, vec![]] {
        assert!(matches!(decode(&frame_around(&body), FrameLimits::default()), Err(FrameError::Malformed(_))));
    }
}

#[test]
fn errors_have_stable_metric_labels() {
    let labels = [
        FrameError::Empty,
        FrameError::Truncated(1),
        FrameError::UnknownVersion(2),
        FrameError::TooLarge { len: 2, max: 1 },
        FrameError::Checksum,
        FrameError::TooManyEvents { count: 2, max: 1 },
        FrameError::Malformed(String::new()),
        FrameError::NonContiguous,
    ]
    .map(|e| e.reason());
    assert_eq!(
        labels,
        [
            "empty",
            "truncated",
            "unknown_version",
            "too_large",
            "checksum",
            "too_many_events",
            "malformed",
            "non_contiguous"
        ]
    );
}
