//! The ProjectX adapter's parsers on payloads shaped like the documented REST examples and
//! the captured live hub traffic (`test_data/`).

use jt_broker::{BrokerEvent, OrderStatus};
use jt_projectx::http::models::{
    AccountsResponse, ContractsResponse, Envelope, OrdersResponse, PositionsResponse,
    TradesResponse,
};
use jt_projectx::hub::codec::{self, ServerMessage};
use jt_projectx::hub::handler::Dispatcher;
use jt_projectx::hub::messages::{self, GatewayEvent};
use rust_decimal_macros::dec;

fn fixture(name: &str) -> String {
    let path = format!("{}/test_data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn documented_rest_answers_decode_exactly() {
    let a: AccountsResponse = serde_json::from_str(&fixture("account_search.json")).unwrap();
    assert!(a.success() && a.error_code() == 0);
    let accounts = a.accounts.unwrap();
    assert_eq!(accounts[1].balance, dec!(149872.5));
    assert!(!accounts[1].can_trade);
    let c: ContractsResponse = serde_json::from_str(&fixture("contract_search.json")).unwrap();
    let c = c.contracts.unwrap();
    assert_eq!((c[1].tick_size, c[1].tick_value), (dec!(0.25), dec!(0.5)));
    assert!(c[1].active_contract && !c[2].active_contract);
    let o: OrdersResponse = serde_json::from_str(&fixture("order_search.json")).unwrap();
    let o = o.orders.unwrap();
    assert_eq!(o[0].filled_price, Some(dec!(5425.25)));
    assert_eq!(o[0].custom_tag.as_deref(), Some("jt-intent-7"));
    assert_eq!(
        (o[1].stop_price, o[1].custom_tag.clone()),
        (Some(dec!(5415.25)), None)
    );
    let p: PositionsResponse = serde_json::from_str(&fixture("position_search.json")).unwrap();
    let p = p.positions.unwrap();
    let short = messages::position_report(&p[1], None).unwrap();
    assert_eq!((short.net_qty, short.avg_price), (-3, Some(dec!(21000.5))));
    let t: TradesResponse = serde_json::from_str(&fixture("trade_search.json")).unwrap();
    let t = t.trades.unwrap();
    assert_eq!(t[0].profit_and_loss, Some(dec!(50)));
    assert_eq!(t[1].profit_and_loss, None, "an opening half-turn");
}

#[test]
fn captured_hub_traffic_becomes_neutral_events_once_each() {
    let text = fixture("user_hub_frames.txt");
    let mut d = Dispatcher::new();
    let mut events = Vec::new();
    let mut shrunk = Vec::new();
    let mut closed = false;
    for frame in text.lines() {
        for record in codec::records(frame) {
            match codec::decode(record).unwrap() {
                ServerMessage::Invocation { target, arguments } => {
                    let e = messages::decode(&target, &arguments).unwrap().unwrap();
                    events.extend(d.on_hub(&e, &mut shrunk));
                    if let GatewayEvent::Trade(_, t) = &e {
                        assert_eq!(t.fees, Some(dec!(5.55)));
                    }
                }
                ServerMessage::Close {
                    allow_reconnect, ..
                } => closed = allow_reconnect,
                ServerMessage::Ping => {}
                other => panic!("{other:?}"),
            }
        }
    }
    assert!(closed);
    let kinds: Vec<String> = events
        .iter()
        .map(|e| match &e.event {
            BrokerEvent::Order(o) => format!("order {:?}", o.status),
            BrokerEvent::Fill(f) => format!("fill {} {:?}", f.qty, f.client_order_id),
            BrokerEvent::Position(p) => format!("position {}", p.net_qty),
            BrokerEvent::CashBalance(c) => format!("cash {}", c.amount),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            "order Pending".to_string(),
            "fill 15 Some(\"jt-intent-9\")".into(),
            "order Filled".into(),
            "position 15".into(),
            "cash 49994.45".into(),
            "order Working".into(),
            "position 0".into(),
            "order Canceled".into(),
        ],
        "the repeated account event is delivered once; the bare documented object is read too"
    );
    assert_eq!(shrunk.len(), 1, "the flat position goes to the exit guard");
    let BrokerEvent::Order(o) = &events[5].event else {
        panic!()
    };
    assert_eq!(
        (o.status, o.stop_price),
        (OrderStatus::Working, Some(dec!(49859)))
    );
}
