//! ProjectX's SignalR JSON protocol: a frame split into records, each record decoded, each
//! gateway invocation's arguments decoded into events. Never a panic, whatever the bytes.
#![no_main]

use jt_projectx::hub::codec::{ServerMessage, decode, records};
use jt_projectx::hub::messages;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = std::str::from_utf8(data) else {
        return;
    };
    for record in records(frame) {
        if let Ok(ServerMessage::Invocation { target, arguments }) = decode(record) {
            let _ = messages::decode(&target, &arguments);
        }
    }
});
