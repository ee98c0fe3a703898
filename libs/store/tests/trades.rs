//! Live trade records on both engines: a fill recorded and applied in one transaction (the
//! same fill twice changes nothing), adds, partial exits, a flip, the exit reason resolved by
//! an order stored after its fill, reconciliation's close behind its time guard, two fills
//! opening one contract's record at once, and fills applied out of the broker's order rebuilt
//! into the records the broker's order makes (not across a reconciled close).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::TestStore;
use jt_domain::{Direction, Side};
use jt_store::repo::broker::{BrokerOrder, Fill, FillRecorded};
use jt_store::repo::trades::{FillContext, TradeRecord};
use jt_store::{
    BrokerOrderStatus, BrokerOrderType, StoreError, SubAccountId, TradeExitReason, TradeStatus,
    UserId,
};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

fn at(s: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 15, 0, 0).unwrap() + Duration::seconds(s)
}

fn fill(sub: SubAccountId, id: &str, side: Side, qty: u32, price: Decimal, s: i64) -> Fill {
    Fill {
        sub_account: sub,
        broker_fill_id: id.into(),
        broker_order_id: format!("order-{id}"),
        client_order_id: None,
        contract: "MNQZ6".into(),
        side,
        quantity: qty,
        price,
        filled_at: at(s),
        trading_day: at(s).date_naive(),
    }
}

fn ctx(reason: TradeExitReason) -> FillContext {
    FillContext {
        exit_reason: reason,
        point_value: Some(Decimal::TWO),
    }
}

async fn a_fill_is_recorded_and_applied_once(t: &TestStore) {
    let owner = t.user("once@example.com").await;
    let (_, sub) = t.account(&owner, "once").await;
    let trades = t.trades();
    let entry = fill(sub.id, "1", Side::Buy, 2, dec!(21000.25), 0);
    let first = trades
        .apply_fill(owner.id, entry.clone(), ctx(TradeExitReason::Market))
        .await
        .unwrap();
    assert_eq!(first.recorded, FillRecorded::New);
    assert_eq!(first.records.len(), 1);
    let again = trades
        .apply_fill(owner.id, entry.clone(), ctx(TradeExitReason::Market))
        .await
        .unwrap();
    assert_eq!(again.recorded, FillRecorded::AlreadySeen);
    assert!(again.records.is_empty());
    assert_eq!(t.count("fills", "1 = 1").await, 1);
    let listed = trades.for_sub_account(owner.id, sub.id, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0], first.records[0], "read back as written");
    assert_eq!((listed[0].quantity, listed[0].fills), (2, 1));

    // Another owner's sub-account: not found, nothing written.
    let other = t.user("other@example.com").await;
    let err = trades
        .apply_fill(
            other.id,
            fill(sub.id, "2", Side::Sell, 2, dec!(21001), 1),
            ctx(TradeExitReason::Market),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert!(
        trades
            .for_sub_account(other.id, sub.id, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        trades.for_sub_account(owner.id, sub.id, 10).await.unwrap()[0].quantity,
        2
    );
}

async fn adds_partial_exits_and_a_flip(t: &TestStore) {
    let owner = t.user("flip@example.com").await;
    let (_, sub) = t.account(&owner, "flip").await;
    let trades = t.trades();
    let apply = async |f: Fill, reason| trades.apply_fill(owner.id, f, ctx(reason)).await.unwrap();
    apply(
        fill(sub.id, "1", Side::Buy, 1, dec!(21000), 0),
        TradeExitReason::Market,
    )
    .await;
    apply(
        fill(sub.id, "2", Side::Buy, 2, dec!(21003.25), 1),
        TradeExitReason::Market,
    )
    .await;
    let partial = apply(
        fill(sub.id, "3", Side::Sell, 1, dec!(21010), 2),
        TradeExitReason::TakeProfit,
    )
    .await;
    let r = partial.open().unwrap();
    assert_eq!((r.quantity, r.max_quantity, r.exited_quantity), (2, 3, 1));
    assert_eq!(r.average_exit, Some(dec!(21010)));
    assert_eq!(r.realized_pnl, None);
    // Sell 5 against the 2 left: closes them, opens a short of 3 at the same price.
    let flip = apply(
        fill(sub.id, "4", Side::Sell, 5, dec!(20990.5), 3),
        TradeExitReason::Market,
    )
    .await;
    let closed = flip.closed().unwrap();
    let short = flip.open().unwrap();
    assert_eq!(closed.exit_reason, Some(TradeExitReason::Market));
    assert_eq!(closed.exit_order_id.as_deref(), Some("order-4"));
    // Entered 21000 + 2 × 21003.25 = 63006.50; exited 21010 + 2 × 20990.50 = 62991; × $2.
    assert_eq!(closed.realized_pnl, Some(dec!(-31)));
    assert_eq!(closed.average_exit, Some(dec!(20997)));
    assert_eq!(closed.closed_at, Some(at(3)));
    assert_eq!(
        (closed.first_fill_id.as_str(), closed.last_fill_id.as_str()),
        ("1", "4")
    );
    assert_eq!(short.direction, Direction::Short);
    assert_eq!((short.quantity, short.average_entry), (3, dec!(20990.5)));
    assert_eq!(short.first_fill_id, "4");
    let listed = trades.for_sub_account(owner.id, sub.id, 10).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, short.id, "newest first");
    assert_eq!(listed[1], *closed);
    // Covering the short with a stop closes it with a gain.
    let covered = apply(
        fill(sub.id, "5", Side::Buy, 3, dec!(20980), 4),
        TradeExitReason::Stop,
    )
    .await;
    let c = covered.closed().unwrap();
    assert_eq!(c.exit_reason, Some(TradeExitReason::Stop));
    // (62971.50 − 62940) × $2.
    assert_eq!(c.realized_pnl, Some(dec!(63)));
    assert!(covered.open().is_none());
}

async fn an_order_stored_after_its_fill_resolves_the_exit_reason(t: &TestStore) {
    let owner = t.user("late@example.com").await;
    let (_, sub) = t.account(&owner, "late").await;
    let trades = t.trades();
    trades
        .apply_fill(
            owner.id,
            fill(sub.id, "1", Side::Sell, 1, dec!(6000), 0),
            ctx(TradeExitReason::Market),
        )
        .await
        .unwrap();
    let closing = trades
        .apply_fill(
            owner.id,
            fill(sub.id, "2", Side::Buy, 1, dec!(6010), 1),
            ctx(TradeExitReason::Unknown),
        )
        .await
        .unwrap();
    assert_eq!(
        closing.closed().unwrap().exit_reason,
        Some(TradeExitReason::Unknown)
    );
    let resolved = |reason| trades.resolve_exit_reason(owner.id, sub.id, "order-2", reason);
    assert_eq!(resolved(TradeExitReason::Stop).await.unwrap(), 1);
    // Once known, a later event of the order changes nothing.
    assert_eq!(resolved(TradeExitReason::Market).await.unwrap(), 0);
    let r = &trades.for_sub_account(owner.id, sub.id, 1).await.unwrap()[0];
    assert_eq!(r.exit_reason, Some(TradeExitReason::Stop));
    assert_eq!(r.realized_pnl, Some(dec!(-20)));
}

async fn reconciliation_closes_only_records_untouched_since_its_snapshot(t: &TestStore) {
    let owner = t.user("recon@example.com").await;
    let (_, sub) = t.account(&owner, "recon").await;
    let trades = t.trades();
    let mut es = fill(sub.id, "1", Side::Buy, 1, dec!(6000), 0);
    es.contract = "MESZ6".into();
    trades
        .apply_fill(owner.id, es, ctx(TradeExitReason::Market))
        .await
        .unwrap();
    trades
        .apply_fill(
            owner.id,
            fill(sub.id, "2", Side::Buy, 1, dec!(21000), 0),
            ctx(TradeExitReason::Market),
        )
        .await
        .unwrap();
    // A snapshot taken before the records were written judges none of them.
    let early = Utc::now() - Duration::minutes(5);
    assert!(
        trades
            .close_flat(owner.id, sub.id, &[], early)
            .await
            .unwrap()
            .is_empty()
    );
    // The broker holds MNQ (by its contract id or name) but not MES: only MES closes.
    let later = Utc::now() + Duration::seconds(1);
    let closed = trades
        .close_flat(owner.id, sub.id, &["3570918", "MNQZ6"], later)
        .await
        .unwrap();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].contract, "MESZ6");
    assert_eq!(closed[0].exit_reason, Some(TradeExitReason::Reconciled));
    let listed = trades.for_sub_account(owner.id, sub.id, 10).await.unwrap();
    let mes = listed.iter().find(|r| r.contract == "MESZ6").unwrap();
    assert_eq!(*mes, closed[0]);
    assert_eq!(
        (mes.quantity, mes.realized_pnl, mes.average_exit),
        (0, None, None)
    );
    let mnq = listed.iter().find(|r| r.contract == "MNQZ6").unwrap();
    assert_eq!(mnq.status, TradeStatus::Open);
    // The next fill of MES opens a new record.
    let mut again = fill(sub.id, "3", Side::Sell, 1, dec!(6001), 2);
    again.contract = "MESZ6".into();
    let next = trades
        .apply_fill(owner.id, again, ctx(TradeExitReason::Market))
        .await
        .unwrap();
    assert_eq!(next.open().unwrap().direction, Direction::Short);
}

async fn two_fills_opening_one_contract_at_once_make_one_record(t: &TestStore) {
    let owner = t.user("race@example.com").await;
    let (_, sub) = t.account(&owner, "race").await;
    for round in 0..5_i64 {
        let a = fill(
            sub.id,
            &format!("a{round}"),
            Side::Buy,
            1,
            dec!(100),
            round * 10,
        );
        let b = fill(
            sub.id,
            &format!("b{round}"),
            Side::Buy,
            2,
            dec!(103),
            round * 10,
        );
        let trades = t.trades();
        let (ra, rb) = tokio::join!(
            trades.apply_fill(owner.id, a, ctx(TradeExitReason::Market)),
            trades.apply_fill(owner.id, b, ctx(TradeExitReason::Market)),
        );
        ra.unwrap();
        rb.unwrap();
        let open: Vec<_> = t
            .trades()
            .for_sub_account(owner.id, sub.id, 50)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.status == TradeStatus::Open)
            .collect();
        assert_eq!(open.len(), 1, "{open:#?}");
        assert_eq!((open[0].quantity, open[0].fills), (3, 2));
        assert_eq!(open[0].entry_value, dec!(306));
        // Flat again for the next round.
        t.trades()
            .apply_fill(
                owner.id,
                fill(
                    sub.id,
                    &format!("c{round}"),
                    Side::Sell,
                    3,
                    dec!(104),
                    round * 10 + 1,
                ),
                ctx(TradeExitReason::Market),
            )
            .await
            .unwrap();
    }
    let all = t
        .trades()
        .for_sub_account(owner.id, sub.id, 50)
        .await
        .unwrap();
    assert_eq!(all.len(), 5);
    assert!(
        all.iter().all(|r| r.realized_pnl == Some(dec!(12))),
        "{all:#?}"
    );
    // Nothing was lost to the retries: three fills per round.
    assert_eq!(t.count("fills", "1 = 1").await, 15);
}

/// Stores the broker order of a fill (`order-{id}`), so a replay can read its type.
async fn order(t: &TestStore, owner: UserId, f: &Fill, order_type: BrokerOrderType) {
    t.broker()
        .upsert_order(
            owner,
            BrokerOrder {
                sub_account: f.sub_account,
                broker_order_id: f.broker_order_id.clone(),
                client_order_id: None,
                intent: None,
                contract: f.contract.clone(),
                side: f.side,
                order_type,
                role: None,
                quantity: f.quantity,
                filled_quantity: f.quantity,
                limit_price: None,
                stop_price: None,
                average_fill_price: Some(f.price),
                status: BrokerOrderStatus::Filled,
                status_reason: None,
                broker_updated_at: f.filled_at,
            },
        )
        .await
        .unwrap();
}

/// A record without what differs between two sub-accounts or two writes: the id, the
/// sub-account and `updated_at`.
fn content(r: &TradeRecord) -> TradeRecord {
    TradeRecord {
        id: jt_store::TradeRecordId(uuid::Uuid::nil()),
        sub_account: SubAccountId(uuid::Uuid::nil()),
        updated_at: at(0),
        ..r.clone()
    }
}

async fn contents(t: &TestStore, owner: UserId, sub: SubAccountId) -> Vec<TradeRecord> {
    let mut rs = t.trades().for_sub_account(owner, sub, 50).await.unwrap();
    rs.reverse();
    rs.iter().map(content).collect()
}

/// Applies `order` (indexes into `fills`) on `sub`, each fill with the reason its order gives.
async fn apply_in(
    t: &TestStore,
    owner: UserId,
    sub: SubAccountId,
    fills: &[(Fill, BrokerOrderType)],
    order_of_application: &[usize],
) {
    for (f, ty) in fills {
        let f = Fill {
            sub_account: sub,
            ..f.clone()
        };
        order(t, owner, &f, *ty).await;
    }
    for &i in order_of_application {
        let (f, ty) = &fills[i];
        let f = Fill {
            sub_account: sub,
            ..f.clone()
        };
        let applied = t
            .trades()
            .apply_fill(owner, f, ctx(TradeExitReason::of_order(*ty)))
            .await
            .unwrap();
        assert_eq!(applied.recorded, FillRecorded::New);
    }
}

async fn a_take_profit_applied_after_the_next_entry_is_rebuilt_in_broker_order(t: &TestStore) {
    let owner = t.user("tp@example.com").await;
    let (_, broker_order) = t.account(&owner, "in-order").await;
    let (_, reversed) = t.account(&owner, "reversed").await;
    let s = broker_order.id;
    // Entry, its take-profit, the next entry a moment later, and that one's stop.
    let fills = [
        (
            fill(s, "1", Side::Buy, 1, dec!(21000), 0),
            BrokerOrderType::Market,
        ),
        (
            fill(s, "2", Side::Sell, 1, dec!(21010.25), 10),
            BrokerOrderType::Limit,
        ),
        (
            fill(s, "3", Side::Buy, 1, dec!(21012), 10),
            BrokerOrderType::Market,
        ),
        (
            fill(s, "4", Side::Sell, 1, dec!(21001.5), 20),
            BrokerOrderType::Stop,
        ),
    ];
    apply_in(t, owner.id, broker_order.id, &fills, &[0, 1, 2]).await;
    // The next entry's buy first: without a rebuild the long grows to 2, then shrinks to 1.
    apply_in(t, owner.id, reversed.id, &fills, &[0, 2]).await;
    let first_id = t
        .trades()
        .for_sub_account(owner.id, reversed.id, 1)
        .await
        .unwrap()[0]
        .id;
    let late = t
        .trades()
        .apply_fill(
            owner.id,
            Fill {
                sub_account: reversed.id,
                ..fills[1].0.clone()
            },
            ctx(TradeExitReason::TakeProfit),
        )
        .await
        .unwrap();
    let expected = contents(t, owner.id, broker_order.id).await;
    let got = contents(t, owner.id, reversed.id).await;
    assert_eq!(got, expected);
    assert!(late.out_of_order && !late.absorbed);
    assert_eq!(late.records.len(), 2, "both records rewritten: {late:#?}");
    assert_eq!(got.len(), 2);
    let (closed, open) = (&got[0], &got[1]);
    assert_eq!(closed.status, TradeStatus::Closed);
    assert_eq!(closed.exit_reason, Some(TradeExitReason::TakeProfit));
    assert_eq!(closed.exit_order_id.as_deref(), Some("order-2"));
    // (21010.25 − 21000) × $2.
    assert_eq!(closed.realized_pnl, Some(dec!(20.5)));
    assert_eq!((closed.max_quantity, closed.fills), (1, 2));
    assert_eq!(open.status, TradeStatus::Open);
    assert_eq!((open.quantity, open.max_quantity), (1, 1));
    assert_eq!(open.average_entry, dec!(21012));
    assert_eq!(open.first_fill_id, "3");
    let listed = t
        .trades()
        .for_sub_account(owner.id, reversed.id, 10)
        .await
        .unwrap();
    assert_eq!(
        listed[1].id, first_id,
        "the record of the first entry keeps its id"
    );

    // The stop arrives in order and closes the second record with its own reason; applied
    // before the take-profit instead, the replay reads each closing fill's stored order.
    apply_in(t, owner.id, broker_order.id, &fills, &[3]).await;
    let (_, stop_first) = t.account(&owner, "stop-first").await;
    apply_in(t, owner.id, stop_first.id, &fills, &[0, 2, 3, 1]).await;
    let expected = contents(t, owner.id, broker_order.id).await;
    assert_eq!(contents(t, owner.id, stop_first.id).await, expected);
    assert_eq!(
        expected
            .iter()
            .map(|r| (r.exit_reason, r.realized_pnl))
            .collect::<Vec<_>>(),
        [
            (Some(TradeExitReason::TakeProfit), Some(dec!(20.5))),
            // (21001.5 − 21012) × $2.
            (Some(TradeExitReason::Stop), Some(dec!(-21))),
        ]
    );
}

async fn a_flip_applied_in_reverse_is_rebuilt_and_a_fill_applied_twice_changes_nothing(
    t: &TestStore,
) {
    let owner = t.user("flipback@example.com").await;
    let (_, broker_order) = t.account(&owner, "in-order").await;
    let (_, reversed) = t.account(&owner, "reversed").await;
    let s = broker_order.id;
    // Long 2, a sell of 5 flips to short 3, a buy of 3 covers.
    let fills = [
        (
            fill(s, "7", Side::Buy, 2, dec!(100), 0),
            BrokerOrderType::Market,
        ),
        (
            fill(s, "8", Side::Sell, 5, dec!(98), 1),
            BrokerOrderType::Market,
        ),
        (
            fill(s, "9", Side::Buy, 3, dec!(95.25), 2),
            BrokerOrderType::Limit,
        ),
    ];
    apply_in(t, owner.id, broker_order.id, &fills, &[0, 1, 2]).await;
    apply_in(t, owner.id, reversed.id, &fills, &[2, 1, 0]).await;
    let expected = contents(t, owner.id, broker_order.id).await;
    let got = contents(t, owner.id, reversed.id).await;
    assert_eq!(got, expected);
    assert_eq!(
        got.iter()
            .map(|r| (
                r.direction,
                r.status,
                r.exit_reason,
                r.realized_pnl,
                r.fills
            ))
            .collect::<Vec<_>>(),
        [
            (
                Direction::Long,
                TradeStatus::Closed,
                Some(TradeExitReason::Market),
                Some(dec!(-8)),
                2
            ),
            (
                Direction::Short,
                TradeStatus::Closed,
                Some(TradeExitReason::TakeProfit),
                // (98 − 95.25) × 3 × $2.
                Some(dec!(16.5)),
                2
            ),
        ]
    );
    // Every fill again, in any order: recorded already, nothing changes.
    let before = t
        .trades()
        .for_sub_account(owner.id, reversed.id, 10)
        .await
        .unwrap();
    for i in [1, 0, 2] {
        let again = t
            .trades()
            .apply_fill(
                owner.id,
                Fill {
                    sub_account: reversed.id,
                    ..fills[i].0.clone()
                },
                ctx(TradeExitReason::Market),
            )
            .await
            .unwrap();
        assert_eq!(again.recorded, FillRecorded::AlreadySeen);
        assert!(again.records.is_empty() && !again.out_of_order);
    }
    assert_eq!(
        t.trades()
            .for_sub_account(owner.id, reversed.id, 10)
            .await
            .unwrap(),
        before
    );
    assert_eq!(t.count("fills", "1 = 1").await, 6);
}

async fn a_rebuild_does_not_reach_across_a_reconciled_close(t: &TestStore) {
    let owner = t.user("wall@example.com").await;
    let (_, sub) = t.account(&owner, "wall").await;
    let trades = t.trades();
    trades
        .apply_fill(
            owner.id,
            fill(sub.id, "1", Side::Buy, 1, dec!(21000), 0),
            ctx(TradeExitReason::Market),
        )
        .await
        .unwrap();
    // The broker is flat and no fill said so: reconciliation closes the long.
    let closed = trades
        .close_flat(owner.id, sub.id, &[], Utc::now() + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(closed.len(), 1);
    let wall = closed[0].clone();
    // A new long at 20 s, then a sell at 10 s handled after it.
    trades
        .apply_fill(
            owner.id,
            fill(sub.id, "3", Side::Buy, 1, dec!(21020), 20),
            ctx(TradeExitReason::Market),
        )
        .await
        .unwrap();
    let late = trades
        .apply_fill(
            owner.id,
            fill(sub.id, "2", Side::Sell, 1, dec!(21010), 10),
            ctx(TradeExitReason::Stop),
        )
        .await
        .unwrap();
    assert!(late.out_of_order && !late.absorbed);
    let listed = trades.for_sub_account(owner.id, sub.id, 10).await.unwrap();
    // The reconciled record is left as it was; after it the sell (short) and the buy that
    // covers it, replayed in the broker's order.
    assert_eq!(listed.len(), 2, "{listed:#?}");
    assert_eq!(listed[1], wall);
    let r = &listed[0];
    assert_eq!(
        (r.direction, r.status, r.exit_reason, r.realized_pnl),
        (
            Direction::Short,
            TradeStatus::Closed,
            // The buy's order is not stored: its reason is not known (yet).
            Some(TradeExitReason::Unknown),
            Some(dec!(-20))
        )
    );
    assert_eq!(
        (r.first_fill_id.as_str(), r.last_fill_id.as_str()),
        ("2", "3")
    );
    // A fill older than the reconciled record's last one: recorded, no record changed.
    let older = trades
        .apply_fill(
            owner.id,
            fill(sub.id, "0", Side::Sell, 1, dec!(20990), -5),
            ctx(TradeExitReason::Market),
        )
        .await
        .unwrap();
    assert_eq!(older.recorded, FillRecorded::New);
    assert!(older.out_of_order && older.absorbed && older.records.is_empty());
    assert_eq!(
        trades.for_sub_account(owner.id, sub.id, 10).await.unwrap(),
        listed
    );
    assert_eq!(t.count("fills", "1 = 1").await, 4);
}

async fn fills_applied_all_at_once_make_the_records_of_the_broker_order(t: &TestStore) {
    let owner = t.user("burst@example.com").await;
    let (_, in_order) = t.account(&owner, "in-order").await;
    let s = in_order.id;
    let f = |id: &str, side, qty, price, at_s, ty| (fill(s, id, side, qty, price, at_s), ty);
    // Opens, adds, a take-profit, a flip to short, a stop, a new long closed by market.
    let fills = [
        f("11", Side::Buy, 1, dec!(100), 0, BrokerOrderType::Market),
        f("12", Side::Buy, 1, dec!(101), 1, BrokerOrderType::Market),
        f("13", Side::Sell, 2, dec!(104), 2, BrokerOrderType::Limit),
        f("14", Side::Buy, 2, dec!(103), 3, BrokerOrderType::Market),
        f("15", Side::Sell, 3, dec!(102.5), 4, BrokerOrderType::Market),
        f("16", Side::Buy, 1, dec!(104), 5, BrokerOrderType::Stop),
        f("17", Side::Buy, 2, dec!(103.75), 6, BrokerOrderType::Market),
        f("18", Side::Sell, 2, dec!(103), 7, BrokerOrderType::Market),
    ];
    apply_in(t, owner.id, in_order.id, &fills, &[0, 1, 2, 3, 4, 5, 6, 7]).await;
    let expected = contents(t, owner.id, in_order.id).await;
    assert_eq!(expected.len(), 4, "{expected:#?}");
    for round in 0..3 {
        let (_, sub) = t.account(&owner, &format!("burst-{round}")).await;
        for (f, ty) in &fills {
            let f = Fill {
                sub_account: sub.id,
                ..f.clone()
            };
            order(t, owner.id, &f, *ty).await;
        }
        // Two "replicas" each handling half of the fills, newest first, all at once.
        let mut tasks = tokio::task::JoinSet::new();
        for (i, (f, ty)) in fills.iter().enumerate().rev() {
            let store = (**t).clone();
            let f = Fill {
                sub_account: sub.id,
                ..f.clone()
            };
            let reason = TradeExitReason::of_order(*ty);
            tasks.spawn(async move {
                if i % 2 == round % 2 {
                    tokio::task::yield_now().await;
                }
                store.trades().apply_fill(owner.id, f, ctx(reason)).await
            });
        }
        while let Some(r) = tasks.join_next().await {
            assert_eq!(r.unwrap().unwrap().recorded, FillRecorded::New);
        }
        assert_eq!(
            contents(t, owner.id, sub.id).await,
            expected,
            "round {round}"
        );
    }
}

async fn a_fill_landing_between_two_records_at_the_time_of_a_close_rebuilds_only_after_it(
    t: &TestStore,
) {
    let owner = t.user("tie@example.com").await;
    let (_, in_order) = t.account(&owner, "in-order").await;
    let (_, late) = t.account(&owner, "late").await;
    let s = in_order.id;
    // A long closed by fill 5 at 10 s; a short opened by fill 6 at the same time (after it by
    // id) and covered by fill 7. Fill 6 is handled last.
    let fills = [
        (
            fill(s, "1", Side::Buy, 1, dec!(100), 0),
            BrokerOrderType::Market,
        ),
        (
            fill(s, "5", Side::Sell, 1, dec!(101), 10),
            BrokerOrderType::Limit,
        ),
        (
            fill(s, "6", Side::Sell, 1, dec!(101.5), 10),
            BrokerOrderType::Market,
        ),
        (
            fill(s, "7", Side::Buy, 1, dec!(99), 12),
            BrokerOrderType::Stop,
        ),
    ];
    apply_in(t, owner.id, in_order.id, &fills, &[0, 1, 2, 3]).await;
    apply_in(t, owner.id, late.id, &fills, &[0, 1, 3, 2]).await;
    let expected = contents(t, owner.id, in_order.id).await;
    assert_eq!(contents(t, owner.id, late.id).await, expected);
    assert_eq!(
        expected
            .iter()
            .map(|r| (r.direction, r.realized_pnl))
            .collect::<Vec<_>>(),
        [
            (Direction::Long, Some(dec!(2))),
            (Direction::Short, Some(dec!(5))),
        ]
    );
}

on_both_engines!(
    a_fill_is_recorded_and_applied_once,
    adds_partial_exits_and_a_flip,
    an_order_stored_after_its_fill_resolves_the_exit_reason,
    reconciliation_closes_only_records_untouched_since_its_snapshot,
    two_fills_opening_one_contract_at_once_make_one_record,
    a_take_profit_applied_after_the_next_entry_is_rebuilt_in_broker_order,
    a_flip_applied_in_reverse_is_rebuilt_and_a_fill_applied_twice_changes_nothing,
    a_rebuild_does_not_reach_across_a_reconciled_close,
    fills_applied_all_at_once_make_the_records_of_the_broker_order,
    a_fill_landing_between_two_records_at_the_time_of_a_close_rebuilds_only_after_it,
);
