//! TradingView webhook bodies (DOMAIN.md §2: "Never a 500 for any body"). The first byte picks
//! the recorder's context, the rest is the body. Every outcome is a signal that survives the
//! wire (JSON round trip) and the dedup key, or a 400/413/422 with a text a person can act on.
#![no_main]

use jt_alerts::{AlertContext, DedupKey, Signal, parse_alert};
use libfuzzer_sys::fuzz_target;

const SYMBOLS: [Option<&str>; 3] = [None, Some("MNQ1!"), Some("GCJ6")];
const CUSTOM: [Option<&str>; 3] = [None, Some("MESZ5"), Some("AAPL")];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let ctx = AlertContext {
        recorder_symbol: SYMBOLS[usize::from(selector % 3)],
        custom_ticker: CUSTOM[usize::from((selector / 3) % 3)],
        inverse: selector & 0x80 != 0,
    };
    match parse_alert(body, &ctx) {
        Ok(signal) => {
            let json = serde_json::to_string(&signal).expect("an accepted signal serialises");
            let back: Signal = serde_json::from_str(&json).expect("and reads back");
            assert_eq!(back, signal, "wire round trip of {json}");
            assert_eq!(signal.instrument.is_none(), signal.action.is_control());
            let now = chrono::DateTime::from_timestamp(1_767_623_400, 0).expect("a valid instant");
            assert!(
                !DedupKey::for_signal(&signal, "token", body, now)
                    .msg_id()
                    .is_empty()
            );
        }
        Err(e) => {
            assert!(matches!(e.http_status(), 400 | 413 | 422), "{e:?}");
            assert!(!e.to_string().is_empty());
        }
    }
});
