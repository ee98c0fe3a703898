//! Live trade records on both engines: a fill recorded and applied in one transaction (the
//! same fill twice changes nothing), adds, partial exits, a flip, the exit reason resolved by
//! an order stored after its fill, reconciliation's close behind its time guard, and two
//! fills opening one contract's record at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::TestStore;
use jt_domain::{Direction, Side};
use jt_store::repo::broker::{Fill, FillRecorded};
use jt_store::repo::trades::FillContext;
use jt_store::{StoreError, SubAccountId, TradeExitReason, TradeStatus};
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

on_both_engines!(
    a_fill_is_recorded_and_applied_once,
    adds_partial_exits_and_a_flip,
    an_order_stored_after_its_fill_resolves_the_exit_reason,
    reconciliation_closes_only_records_untouched_since_its_snapshot,
    two_fills_opening_one_contract_at_once_make_one_record,
);
