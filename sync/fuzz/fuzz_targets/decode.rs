//! Feeds arbitrary bytes to the frame decoder: it must never panic, and whatever it accepts must
//! survive re-encoding unchanged (so a decoded frame is always a well-formed message).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nimbus_sync::frame::{FrameLimits, decode, encode};

fuzz_target!(|data: &[u8]| {
    let limits = FrameLimits::default();
    if let Ok(msg) = decode(data, limits) {
        let again = encode(&msg);
        assert_eq!(decode(&again, limits).as_ref(), Ok(&msg));
    }
    // Without size limits only the input length bounds memory.
    let _ = decode(data, FrameLimits { max_frame_bytes: usize::MAX, max_events: usize::MAX });
});
