//! The trait's calls that alert instructions need (issue 17), against the simulator's ProjectX
//! surface: the account's balance (risk sizing), a working order's size changed in place, and
//! a resting entry (good till cancelled; a day entry is refused).

#![allow(clippy::expect_used)] // helpers outside #[test] functions

mod common;

use std::time::Duration;

use common::{price, start_sim};
use jt_broker::{AccountId, Broker, BrokerError, Feature};
use jt_domain::bracket::EntryOrder;
use jt_domain::instrument::by_root;
use jt_domain::order::{OrderKind, OrderRequest, TimeInForce};
use jt_domain::types::{Price, Side};
use jt_projectx::config::{HttpConfig, RateLimitConfig};
use jt_projectx::{
    Credentials as PxCredentials, Firm, LoginRegistry, ProjectXBroker, ProjectXConfig,
};
use jt_sim::admin::NewUser;
use jt_sim::core::model::Protocol;
use jt_sim::projectx::ProjectXConfig as SimProjectX;
use jt_sim::projectx::limits::ProjectXLimits;
use jt_sim::{Sim, SimConfig};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

fn mnq(p: Decimal) -> Price {
    Price::on_tick(by_root("MNQ").expect("MNQ is in the table"), p)
}

async fn px_sim() -> Sim {
    start_sim(SimConfig {
        projectx: SimProjectX {
            limits: ProjectXLimits {
                requests: None,
                bars_requests: None,
                ..ProjectXLimits::default()
            },
            ..SimProjectX::default()
        },
        ..SimConfig::default()
    })
    .await
}

fn px(sim: &Sim, name: &str) -> (ProjectXBroker, AccountId) {
    let created = sim
        .admin()
        .create_user(&NewUser {
            name: name.into(),
            password: "pw".into(),
            accounts: vec![format!("{name}-1")],
            protocol: Protocol::ProjectX,
            api_key: Some(format!("{name}-key")),
            balance: Some(dec!(150000)),
            ..NewUser::default()
        })
        .expect("the simulator creates the ProjectX login");
    let mut c = ProjectXConfig::new(
        Firm::TopstepX,
        PxCredentials {
            user_name: name.into(),
            api_key: format!("{name}-key"),
        },
    )
    .with_base_url(&sim.base_url())
    .expect("the simulator's base URL is http");
    c.http = HttpConfig {
        lookup_interval: Duration::from_millis(100),
        ..HttpConfig::default()
    };
    c.limits = RateLimitConfig {
        requests: 10_000,
        ..RateLimitConfig::default()
    };
    let broker = ProjectXBroker::with(c, &LoginRegistry::isolated()).expect("the adapter builds");
    (broker, AccountId::from(created.accounts[0].id))
}

#[tokio::test]
async fn projectx_reports_the_balance_and_changes_a_working_orders_size_and_price() {
    let sim = px_sim().await;
    price(&sim, "MNQ", dec!(21000));
    let (b, acct) = px(&sim, "pxa");
    assert_eq!(b.balance(&acct).await.unwrap(), dec!(150000));
    let c = b.resolve_contract("MNQ").await.unwrap();
    // A good-till-cancelled limit entry: ProjectX has no time in force, so that one works.
    let entry = EntryOrder::Market(OrderRequest {
        client_order_id: "jt-px-rest".into(),
        side: Side::Buy,
        qty: 3,
        kind: OrderKind::Limit {
            price: mnq(dec!(20990)),
        },
    });
    b.place_resting_entry(&acct, &c, &entry, TimeInForce::Gtc)
        .await
        .unwrap();
    let order = b
        .working_orders(&acct)
        .await
        .unwrap()
        .into_iter()
        .find(|o| o.client_order_id.as_deref() == Some("jt-px-rest"))
        .expect("the limit works");
    b.modify_order_qty(&acct, &order, 2).await.unwrap();
    let after = b.find_order(&acct, "jt-px-rest").await.unwrap().unwrap();
    assert_eq!((after.qty, after.price), (Some(2), Some(dec!(20990))));
    // Its price moved in place (`Order/modify {limitPrice}`): the same order, the same size.
    b.modify_order_price(&acct, &after, dec!(20985.25))
        .await
        .unwrap();
    let moved = b.find_order(&acct, "jt-px-rest").await.unwrap().unwrap();
    assert_eq!(
        (moved.id, moved.qty, moved.price),
        (after.id, Some(2), Some(dec!(20985.25)))
    );
    // A day entry cannot be carried: refused before anything is sent.
    let day = EntryOrder::Market(OrderRequest {
        client_order_id: "jt-px-day".into(),
        ..match entry {
            EntryOrder::Market(o) => o,
            EntryOrder::Bracket(_) => unreachable!(),
        }
    });
    assert_eq!(
        b.place_resting_entry(&acct, &c, &day, TimeInForce::Day)
            .await
            .unwrap_err(),
        BrokerError::Unsupported {
            feature: Feature::DayOrders
        }
    );
    assert!(b.find_order(&acct, "jt-px-day").await.unwrap().is_none());
}
