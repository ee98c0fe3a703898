//! Tradovate's WebSocket frames (`o`, `h`, `a[…]`, `c[…]`) as the connection manager reads them,
//! every message made readable and every `props`/`md` payload decoded; and the client frames
//! the simulator reads. Whatever the bytes, an error or a value, never a panic.
#![no_main]

use jt_tradovate::websocket::codec::{
    ServerFrame, WsMessage, decode_client_frame, decode_server_frame,
};
use jt_tradovate::websocket::messages::{decode_md_quotes, decode_props, readable_message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = decode_client_frame(text);
    let Ok(ServerFrame::Messages(messages)) = decode_server_frame(text) else {
        return;
    };
    for message in messages {
        if let WsMessage::Event {
            name,
            data: Some(data),
        } = &message
        {
            match name.as_str() {
                "props" => drop(decode_props(data)),
                "md" => drop(decode_md_quotes(data)),
                _ => {}
            }
        }
        let _ = readable_message(message);
    }
});
