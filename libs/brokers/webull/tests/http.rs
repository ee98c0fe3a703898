//! The signed Webull client against the simulator: signing accepted, orders by client order
//! id, Webull's error classes (rate limit, expired credentials, a refused body), and an
//! ambiguous placement resolved by client order id without a second order.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use jt_broker::BrokerError;
use jt_net::http::HostPools;
use jt_sim::admin::NewUser;
use jt_sim::core::model::Protocol;
use jt_sim::faults::{AmbiguousMode, FaultKind, FaultSpec};
use jt_sim::{Sim, SimConfig};
use jt_webull::http::client::{WebullHttpClient, WebullHttpConfig};
use jt_webull::http::models::{WbModify, WbNewOrder, WbStatus};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

async fn sim() -> Sim {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Sim::start(SimConfig::default())
        .await
        .expect("the simulator starts on loopback")
}

/// A Webull login on the simulator and its signed client; the account id.
fn login(sim: &Sim, name: &str, secret: &str) -> (WebullHttpClient, String) {
    let created = sim
        .admin()
        .create_user(&NewUser {
            name: name.into(),
            password: "pw".into(),
            accounts: vec![format!("{name}-1")],
            sec: Some("app-secret".into()),
            protocol: Protocol::Webull,
            ..NewUser::default()
        })
        .unwrap();
    let mut config = WebullHttpConfig::new(
        sim.webull_url().parse().unwrap(),
        created.api_key.clone().unwrap(),
        secret,
    );
    config.http.lookup_interval = Duration::from_millis(50);
    config.http.read_retry_backoff = Duration::from_millis(10);
    config.http.write_timeout = Duration::from_secs(2);
    let client = WebullHttpClient::new(config, &HostPools::new()).unwrap();
    (client, created.accounts[0].id.to_string())
}

fn order(sim: &Sim, id: &str, side: &'static str, kind: &'static str, qty: u32) -> WbNewOrder {
    WbNewOrder {
        client_order_id: id.into(),
        instrument_type: "FUTURES",
        symbol: sim.exchange().catalog.front("MNQ").unwrap().name.clone(),
        market: "US",
        side,
        order_type: kind,
        quantity: qty.to_string(),
        limit_price: None,
        stop_price: None,
        time_in_force: "DAY",
        entrust_type: "QTY",
    }
}

fn fault(kind: FaultKind, endpoint: &str) -> FaultSpec {
    FaultSpec {
        kind,
        user: None,
        account: None,
        endpoint: Some(endpoint.into()),
        count: Some(1),
    }
}

#[tokio::test]
async fn signed_calls_place_read_replace_and_cancel_by_client_order_id() {
    let sim = sim().await;
    let (wb, acct) = login(&sim, "wbc-a", "app-secret");
    let accounts = wb.accounts().await.unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].account_id, acct);
    let sym = sim.exchange().catalog.front("MNQ").unwrap().name.clone();
    sim.admin().set_price(&sym, dec!(20000)).unwrap();

    let mut limit = order(&sim, "c-lim", "BUY", "LIMIT", 2);
    limit.limit_price = Some("19990.25".into());
    let placed = wb.place(&acct, &limit).await.unwrap();
    assert!(!placed.recovered);
    let open = wb.open_orders(&acct).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].limit_price, Some(dec!(19990.25)));
    wb.replace(
        &acct,
        &WbModify {
            client_order_id: "c-lim".into(),
            quantity: Some("1".into()),
            limit_price: None,
            stop_price: None,
        },
    )
    .await
    .unwrap();
    let o = wb.order(&acct, "c-lim").await.unwrap().unwrap();
    assert_eq!((o.quantity, o.status), (Decimal::ONE, WbStatus::Submitted));
    wb.cancel(&acct, "c-lim").await.unwrap();
    let o = wb.order(&acct, "c-lim").await.unwrap().unwrap();
    assert_eq!(o.status, WbStatus::Cancelled);
    assert_eq!(wb.order(&acct, "never-sent").await.unwrap(), None);

    wb.place(&acct, &order(&sim, "c-mkt", "SELL", "MARKET", 3))
        .await
        .unwrap();
    let positions = wb.positions(&acct).await.unwrap();
    assert_eq!(positions.len(), 1);
    assert_eq!(positions[0].net(), dec!(-3));
    assert_eq!(positions[0].cost_price, Some(dec!(20000)));

    // A refused body: Webull's error code is the rejection's code.
    match wb
        .place(&acct, &order(&sim, "c-mkt", "BUY", "MARKET", 1))
        .await
    {
        Err(BrokerError::Rejected { code, .. }) => {
            assert_eq!(code.as_deref(), Some("DUPLICATE_CLIENT_ORDER_ID"));
        }
        other => panic!("{other:?}"),
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn a_wrong_secret_is_an_expired_session_and_expired_keys_need_reauthentication() {
    let sim = sim().await;
    let (bad, _) = login(&sim, "wbc-b", "not-the-secret");
    match bad.accounts().await {
        Err(BrokerError::AuthExpired { detail }) => {
            assert!(detail.contains("INVALID_SIGNATURE"), "{detail}");
        }
        other => panic!("{other:?}"),
    }

    let (wb, _) = login(&sim, "wbc-c", "app-secret");
    wb.accounts().await.unwrap();
    sim.admin()
        .add_fault(FaultSpec {
            kind: FaultKind::ExpireToken,
            user: Some("wbc-c".into()),
            account: None,
            endpoint: None,
            count: None,
        })
        .unwrap();
    assert!(matches!(
        wb.accounts().await,
        Err(BrokerError::NeedsReauth { .. })
    ));
    let before = sim.admin().request_counts();
    // Dead keys send nothing more.
    assert!(matches!(
        wb.accounts().await,
        Err(BrokerError::NeedsReauth { .. })
    ));
    assert_eq!(sim.admin().request_counts(), before);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_rate_limit_cools_the_login_down() {
    let sim = sim().await;
    let (wb, acct) = login(&sim, "wbc-d", "app-secret");
    sim.admin()
        .add_fault(fault(FaultKind::TooManyRequests, "account/positions"))
        .unwrap();
    match wb.positions(&acct).await {
        Err(BrokerError::RateLimited { retry_after }) => {
            assert_eq!(retry_after, Duration::from_secs(5));
        }
        other => panic!("{other:?}"),
    }
    // Cooling down: refused at once, nothing sent.
    assert!(matches!(
        wb.positions(&acct).await,
        Err(BrokerError::RateLimited { .. })
    ));
    sim.shutdown().await;
}

#[tokio::test]
async fn an_ambiguous_placement_is_found_by_client_order_id_and_never_sent_twice() {
    let sim = sim().await;
    let (wb, acct) = login(&sim, "wbc-e", "app-secret");
    let sym = sim.exchange().catalog.front("MNQ").unwrap().name.clone();
    sim.admin().set_price(&sym, dec!(20000)).unwrap();
    sim.admin()
        .add_fault(fault(
            FaultKind::Ambiguous {
                mode: AmbiguousMode::Drop,
            },
            "account/orders/place",
        ))
        .unwrap();
    let placed = wb
        .place(&acct, &order(&sim, "amb-1", "BUY", "MARKET", 1))
        .await
        .unwrap();
    assert!(placed.recovered);
    let positions = wb.positions(&acct).await.unwrap();
    assert_eq!(positions[0].net(), Decimal::ONE, "one order, not two");

    // A placement whose answer is lost and that never reached the book: UnknownOutcome,
    // then the same id is looked up before anything is sent again.
    sim.admin()
        .add_fault(fault(
            FaultKind::Error {
                status: 500,
                rate: 1.0,
            },
            "account/orders/place",
        ))
        .unwrap();
    match wb
        .place(&acct, &order(&sim, "amb-2", "BUY", "MARKET", 1))
        .await
    {
        Err(BrokerError::UnknownOutcome {
            client_order_id, ..
        }) => assert_eq!(client_order_id.as_deref(), Some("amb-2")),
        other => panic!("{other:?}"),
    }
    let again = wb
        .place(&acct, &order(&sim, "amb-2", "BUY", "MARKET", 1))
        .await
        .unwrap();
    assert!(!again.recovered, "not found: sent once now");
    assert_eq!(wb.positions(&acct).await.unwrap()[0].net(), dec!(2));
    sim.shutdown().await;
}

#[tokio::test]
async fn two_clients_of_one_app_key_claim_from_one_shared_ledger() {
    use std::sync::Arc;

    use jt_net::budget::{BudgetStore, CHUNK, Ledger, MemoryStore, ledger_key};

    let sim = sim().await;
    let created = sim
        .admin()
        .create_user(&NewUser {
            name: "shared".into(),
            password: "pw".into(),
            accounts: vec!["shared-1".into()],
            sec: Some("app-secret".into()),
            protocol: Protocol::Webull,
            ..NewUser::default()
        })
        .unwrap();
    let key = created.api_key.clone().unwrap();
    let account = created.accounts[0].id.to_string();
    // Two processes' clients of one app key over one store.
    let memory = Arc::new(MemoryStore::default());
    let store: Arc<dyn BudgetStore> = memory.clone();
    let base: url::Url = sim.webull_url().parse().unwrap();
    let client = || {
        let config = WebullHttpConfig::new(base.clone(), &key, "app-secret");
        WebullHttpClient::with_budgets(config, &HostPools::new(), Some(&store)).unwrap()
    };
    let (a, b) = (client(), client());
    a.positions(&account).await.unwrap();
    b.positions(&account).await.unwrap();
    // Each claimed a chunk from the app key's one ledger.
    let (value, _) = memory
        .load(&ledger_key("webull", base.as_str(), &key))
        .await
        .unwrap()
        .expect("the app key's ledger");
    let ledger: Ledger = serde_json::from_slice(&value).unwrap();
    assert_eq!(ledger.used(), 2 * CHUNK);
}
