//! Like `decode`, but seals the input in a valid version byte and checksum first, so every input
//! reaches the body parser and the batch checks instead of stopping at the CRC.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nimbus_sync::frame::{FrameLimits, VERSION, decode, encode};

fuzz_target!(|body: &[u8]| {
    let mut frame = Vec::with_capacity(body.len() + 5);
    frame.push(VERSION);
    frame.extend_from_slice(body);
    let crc = crc32fast::hash(&frame);
    frame.extend_from_slice(&crc.to_le_bytes());
    for limits in [FrameLimits::default(), FrameLimits { max_frame_bytes: usize::MAX, max_events: usize::MAX }] {
        if let Ok(msg) = decode(&frame, limits) {
            // Semantic, not byte, equality: postcard accepts some non-canonical varints.
            assert_eq!(decode(&encode(&msg), limits).as_ref(), Ok(&msg));
        }
    }
});
