//! Paper record, copy trading, risk breaches, kill switches, notifications, plans and
//! subscriptions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{Duration, NaiveDate, Utc};
use common::TestStore;
use jt_domain::{Direction, Side};
use jt_store::repo::copy::{
    ContractMapping, CopyLogQuery, CopyRecorded, CopyUpdate, FollowerSettings, NewCopy,
};
use jt_store::repo::notifications::NewChannel;
use jt_store::repo::paper::{PaperApplied, PaperEntry, PaperPosition};
use jt_store::repo::plans::{PlanSpec, ProviderSubscription};
use jt_store::repo::risk::{BreachRecorded, NewBreach};
use jt_store::*;
use rust_decimal_macros::dec;

async fn paper_positions_keep_exact_averages_and_one_open_per_symbol(t: &TestStore) {
    let owner = t.user("paper@example.com").await;
    let (recorder, _) = t.recorder(&owner, "paper").await;
    let now = Utc::now();
    let mut p = PaperPosition {
        id: PaperPositionId::new(),
        owner: owner.id,
        recorder: recorder.id,
        symbol: "MNQ".into(),
        direction: Direction::Long,
        quantity: 3,
        average_entry: dec!(21433.333333333333333333333),
        entries: vec![
            PaperEntry {
                price: dec!(21400),
                qty: 2,
                time: now,
            },
            PaperEntry {
                price: dec!(21500),
                qty: 1,
                time: now,
            },
        ],
        current_price: Some(dec!(21420.25)),
        unrealized_pnl: dec!(-78.5),
        worst_unrealized_pnl: dec!(-120.75),
        best_unrealized_pnl: dec!(30.5),
        realized_pnl: dec!(0),
        exit_price: None,
        status: PaperStatus::Open,
        opened_at: now,
        closed_at: None,
        last_signal: None,
        engine_state: None,
    };
    t.paper().save_position(owner.id, &p).await.unwrap();
    let back = t
        .paper()
        .open_position(owner.id, recorder.id, "MNQ")
        .await
        .unwrap()
        .unwrap();
    let mut expected = p.clone();
    expected.opened_at = back.opened_at; // stored at microsecond precision
    expected.entries = back.entries.clone();
    assert_eq!(back, expected);
    assert_eq!(back.average_entry, dec!(21433.333333333333333333333));

    // A second open position on the same symbol is refused by the database.
    let twin = PaperPosition {
        id: PaperPositionId::new(),
        ..p.clone()
    };
    assert!(matches!(
        t.paper().save_position(owner.id, &twin).await,
        Err(StoreError::Conflict { .. })
    ));
    // Closing it and saving again (by id) updates in place, with the signal that closed it.
    let closing = SignalId::new();
    let latest_signal = || async {
        t.paper()
            .latest_position(owner.id, recorder.id, "MNQ")
            .await
            .unwrap()
            .and_then(|l| l.last_signal)
    };
    assert_eq!(latest_signal().await, None);
    p.status = PaperStatus::Closed;
    p.exit_price = Some(dec!(21440.5));
    p.closed_at = Some(now);
    p.last_signal = Some(closing);
    t.paper().save_position(owner.id, &p).await.unwrap();
    assert_eq!(
        latest_signal().await,
        Some(closing),
        "a redelivered signal is recognised on the closed position"
    );
    assert!(
        t.paper()
            .open_position(owner.id, recorder.id, "MNQ")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        t.paper()
            .positions(owner.id, recorder.id, 10)
            .await
            .unwrap()
            .len(),
        1
    );

    // A flip: the open position closes and its successor opens in one write, the close first
    // (the unique index would refuse the open before it); the latest is the new one.
    p.status = PaperStatus::Open;
    p.exit_price = None;
    p.closed_at = None;
    t.paper().save_position(owner.id, &p).await.unwrap();
    let flip = SignalId::new();
    let mut closed = p.clone();
    closed.status = PaperStatus::Closed;
    closed.closed_at = Some(now + Duration::seconds(1));
    closed.last_signal = Some(flip);
    let successor = PaperPosition {
        id: PaperPositionId::new(),
        direction: Direction::Short,
        opened_at: now + Duration::seconds(1),
        last_signal: Some(flip),
        ..p.clone()
    };
    t.paper()
        .save_positions(owner.id, &[&closed, &successor])
        .await
        .unwrap();
    let latest = t
        .paper()
        .latest_position(owner.id, recorder.id, "MNQ")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (latest.id, latest.status, latest.last_signal),
        (successor.id, PaperStatus::Open, Some(flip))
    );
    assert_eq!(
        t.paper()
            .positions(owner.id, recorder.id, 10)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.id, r.status))
            .collect::<Vec<_>>(),
        vec![
            (successor.id, PaperStatus::Open),
            (p.id, PaperStatus::Closed)
        ]
    );
    // One position twice in one write is refused before anything is written.
    assert!(matches!(
        t.paper()
            .save_positions(owner.id, &[&successor, &successor])
            .await,
        Err(StoreError::Invalid { .. })
    ));
    // Two open positions in one write are refused whole.
    let twins = [
        PaperPosition {
            id: PaperPositionId::new(),
            symbol: "ES".into(),
            ..successor.clone()
        },
        PaperPosition {
            id: PaperPositionId::new(),
            symbol: "ES".into(),
            ..successor.clone()
        },
    ];
    assert!(matches!(
        t.paper()
            .save_positions(owner.id, &[&twins[0], &twins[1]])
            .await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(
        t.paper()
            .latest_position(owner.id, recorder.id, "ES")
            .await
            .unwrap()
            .is_none()
    );
    p = closed;

    // Another owner cannot overwrite it by id.
    let other = t.user("paper2@example.com").await;
    let stolen = PaperPosition {
        owner: other.id,
        ..p.clone()
    };
    assert!(t.paper().save_position(other.id, &stolen).await.is_err());
    assert_eq!(
        t.paper()
            .positions(owner.id, recorder.id, 10)
            .await
            .unwrap()[0]
            .owner,
        owner.id
    );
}

async fn copies_are_recorded_once_per_leader_fill(t: &TestStore) {
    let owner = t.user("copy@example.com").await;
    let (_, lead_sub) = t.account(&owner, "leader").await;
    let (_, follow_sub) = t.account(&owner, "follower").await;
    let leader = t
        .copying()
        .create_leader(owner.id, lead_sub.id, Some("main"), true)
        .await
        .unwrap();
    assert!(matches!(
        t.copying()
            .add_follower(
                owner.id,
                leader.id,
                lead_sub.id,
                FollowerSettings::default()
            )
            .await,
        Err(StoreError::Invalid { .. })
    ));
    let follower = t
        .copying()
        .add_follower(
            owner.id,
            leader.id,
            follow_sub.id,
            FollowerSettings {
                multiplier: dec!(0.5),
                max_position_size: Some(4),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        t.copying()
            .leader_of(owner.id, lead_sub.id)
            .await
            .unwrap()
            .unwrap()
            .id,
        leader.id
    );
    t.copying()
        .set_mappings(
            owner.id,
            follower.id,
            &[
                ContractMapping {
                    source_root: "nq".into(),
                    target_root: "mnq".into(),
                    quantity_ratio: dec!(10),
                },
                ContractMapping {
                    source_root: "ES".into(),
                    target_root: "MES".into(),
                    quantity_ratio: dec!(10),
                },
            ],
        )
        .await
        .unwrap();
    let maps = t.copying().mappings(owner.id, follower.id).await.unwrap();
    assert_eq!(maps.len(), 2);
    assert_eq!(
        (maps[1].source_root.as_str(), maps[1].target_root.as_str()),
        ("NQ", "MNQ")
    );

    let copy = |id| NewCopy {
        id,
        leader: leader.id,
        follower: follower.id,
        trigger: CopyTrigger::Auto,
        leader_fill_id: Some("fill-77".into()),
        leader_order_id: Some("o-1".into()),
        leader_symbol: "NQZ6".into(),
        follower_symbol: "MNQZ6".into(),
        leader_side: Some(Side::Buy),
        follower_side: Some(Side::Buy),
        leader_quantity: 1,
        follower_quantity: 5,
        leader_price: Some(dec!(21400.25)),
        status: CopyStatus::Pending,
        error: None,
    };
    let id = CopyLogId::new();
    assert_eq!(
        t.copying().record_copy(owner.id, copy(id)).await.unwrap(),
        CopyRecorded::New
    );
    assert_eq!(
        t.copying()
            .record_copy(owner.id, copy(CopyLogId::new()))
            .await
            .unwrap(),
        CopyRecorded::AlreadyCopied
    );
    t.copying()
        .update_copy(
            owner.id,
            id,
            CopyUpdate {
                status: Some(CopyStatus::Filled),
                follower_price: Some(dec!(21400.5)),
                latency_ms: Some(42),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let log = t
        .copying()
        .copy_log(
            owner.id,
            &CopyLogQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].status, log[0].latency_ms, log[0].follower_quantity),
        (CopyStatus::Filled, Some(42), 5)
    );
    // Auto-sync's correction keeps its own trigger.
    let correction = NewCopy {
        id: CopyLogId::new(),
        trigger: CopyTrigger::Sync,
        leader_fill_id: Some("sync:lead:NQZ6:fill-77:0".into()),
        status: CopyStatus::Pending,
        ..copy(CopyLogId::new())
    };
    assert_eq!(
        t.copying().record_copy(owner.id, correction).await.unwrap(),
        CopyRecorded::New
    );
    let synced = t
        .copying()
        .copy_of(owner.id, follower.id, "sync:lead:NQZ6:fill-77:0")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(synced.trigger, CopyTrigger::Sync);

    t.copying()
        .set_lockout(owner.id, follower.id, Some("daily loss limit"))
        .await
        .unwrap();
    let f = &t.copying().followers(owner.id, leader.id).await.unwrap()[0];
    assert!(f.locked_out && f.lockout_reason.as_deref() == Some("daily loss limit"));
    assert_eq!(f.multiplier, dec!(0.5));
}

async fn a_followers_peak_only_rises_and_starts_afresh_at_an_unlock(t: &TestStore) {
    let owner = t.user("peak@example.com").await;
    let other = t.user("peak-other@example.com").await;
    let (_, lead_sub) = t.account(&owner, "peak-leader").await;
    let (_, follow_sub) = t.account(&owner, "peak-follower").await;
    let leader = t
        .copying()
        .create_leader(owner.id, lead_sub.id, None, true)
        .await
        .unwrap();
    let follower = t
        .copying()
        .add_follower(
            owner.id,
            leader.id,
            follow_sub.id,
            FollowerSettings {
                max_drawdown: Some(dec!(250)),
                ..FollowerSettings::default()
            },
        )
        .await
        .unwrap();
    let risk = t.risk();
    let first = risk.follower_peak(owner.id, follower.id).await.unwrap();
    assert_eq!(first.peak, None, "no equity seen yet");
    assert_eq!(
        risk.follower_peak(owner.id, follower.id).await.unwrap(),
        first,
        "asked again: the same tracking"
    );
    risk.raise_follower_peak(first.tracking, dec!(50100.25), Utc::now())
        .await
        .unwrap();
    risk.raise_follower_peak(first.tracking, dec!(50000), Utc::now())
        .await
        .unwrap();
    let raised = risk.follower_peak(owner.id, follower.id).await.unwrap();
    assert_eq!(
        raised.peak,
        Some(dec!(50100.25)),
        "a lower value never lowers it"
    );
    assert!(raised.peak_at.is_some());

    t.copying()
        .set_lockout(owner.id, follower.id, Some("max drawdown reached"))
        .await
        .unwrap();
    assert!(matches!(
        risk.unlock_follower(other.id, follower.id).await,
        Err(StoreError::NotFound { .. })
    ));
    risk.unlock_follower(owner.id, follower.id).await.unwrap();
    let f = t.copying().follower(owner.id, follower.id).await.unwrap();
    assert!(!f.locked_out && f.lockout_reason.is_none());
    let fresh = risk.follower_peak(owner.id, follower.id).await.unwrap();
    assert_ne!(fresh.tracking, first.tracking, "a new tracking");
    assert_eq!(fresh.peak, None, "the peak starts afresh");
    // A write of the old tracking (started before the unlock) changes nothing.
    risk.raise_follower_peak(first.tracking, dec!(60000), Utc::now())
        .await
        .unwrap();
    assert_eq!(
        risk.follower_peak(owner.id, follower.id)
            .await
            .unwrap()
            .peak,
        None
    );
}

async fn a_paper_record_is_read_for_its_daily_loss_and_breached_once_per_day(t: &TestStore) {
    use jt_store::repo::paper_risk::{NewPaperBreach, PaperBreachRecorded};

    let owner = t.user("paper-risk@example.com").await;
    let (limited, _) = t.recorder(&owner, "limited").await;
    let (unlimited, _) = t.recorder(&owner, "unlimited").await;
    t.recorders()
        .update_settings(
            owner.id,
            limited.id,
            &jt_domain::Settings {
                max_daily_loss: dec!(100),
                ..jt_domain::Settings::default()
            },
        )
        .await
        .unwrap();
    let now = Utc::now();
    for recorder in [limited.id, unlimited.id] {
        let p = PaperPosition {
            id: PaperPositionId::new(),
            owner: owner.id,
            recorder,
            symbol: "MNQ".into(),
            direction: Direction::Long,
            quantity: 1,
            average_entry: dec!(21000),
            entries: Vec::new(),
            current_price: Some(dec!(20990)),
            unrealized_pnl: dec!(-20),
            worst_unrealized_pnl: dec!(-20),
            best_unrealized_pnl: dec!(0),
            realized_pnl: dec!(0),
            exit_price: None,
            status: PaperStatus::Open,
            opened_at: now,
            closed_at: None,
            last_signal: None,
            engine_state: None,
        };
        t.paper().save_position(owner.id, &p).await.unwrap();
    }
    let books = t
        .risk()
        .paper_books(now - Duration::hours(1))
        .await
        .unwrap();
    let mine: Vec<_> = books
        .iter()
        .filter(|b| b.recorder.owner == owner.id)
        .collect();
    assert_eq!(mine.len(), 1, "only the recorder with a limit");
    assert_eq!(mine[0].recorder.id, limited.id);
    assert_eq!(mine[0].realized, dec!(0));
    assert_eq!(mine[0].open.len(), 1);
    assert_eq!(
        t.risk()
            .open_papers(owner.id, limited.id)
            .await
            .unwrap()
            .len(),
        1
    );

    let day = NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
    let breach = NewPaperBreach {
        recorder: limited.id,
        trading_day: day,
        loss_limit: dec!(100),
        realized_pnl: dec!(-30.25),
        unrealized_pnl: dec!(-80),
        breached_at: now,
        details: Some("paper realized -30.25 + open -80 = -110.25 ≤ −100".into()),
    };
    let PaperBreachRecorded::New(first) = t
        .risk()
        .record_paper_breach(owner.id, breach.clone())
        .await
        .unwrap()
    else {
        panic!("new")
    };
    assert!(matches!(
        t.risk().record_paper_breach(owner.id, breach.clone()).await.unwrap(),
        PaperBreachRecorded::Already(b) if b.id == first.id && b.closed_at.is_none()
    ));
    t.risk()
        .mark_paper_closed(owner.id, first.id, Utc::now())
        .await
        .unwrap();
    let back = t
        .risk()
        .paper_breach(owner.id, limited.id, day)
        .await
        .unwrap()
        .unwrap();
    assert!(back.closed_at.is_some());
    assert_eq!(back.realized_pnl, dec!(-30.25));
    assert_eq!(
        t.risk()
            .paper_breach(owner.id, limited.id, day.succ_opt().unwrap())
            .await
            .unwrap(),
        None,
        "a breach is the day's"
    );
}

async fn breaches_are_recorded_once_per_day(t: &TestStore) {
    let owner = t.user("risk@example.com").await;
    let (_, sub) = t.account(&owner, "risk").await;
    let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let breach = |d| NewBreach {
        sub_account: sub.id,
        trading_day: d,
        kind: BreachKind::MaxDailyLoss,
        loss_limit: dec!(500),
        realized_pnl: dec!(-400.25),
        unrealized_pnl: dec!(-100),
        breached_at: Utc::now(),
        details: None,
    };
    let BreachRecorded::New(first) = t.risk().record_breach(owner.id, breach(day)).await.unwrap()
    else {
        panic!("new")
    };
    assert!(
        matches!(t.risk().record_breach(owner.id, breach(day)).await.unwrap(), BreachRecorded::AlreadyBreached(b) if b.id == first.id)
    );
    assert!(matches!(
        t.risk()
            .record_breach(owner.id, breach(day.succ_opt().unwrap()))
            .await
            .unwrap(),
        BreachRecorded::New(_)
    ));
    t.risk()
        .mark_flattened(owner.id, first.id, Utc::now())
        .await
        .unwrap();
    let b = t
        .risk()
        .breach(owner.id, sub.id, day, BreachKind::MaxDailyLoss)
        .await
        .unwrap()
        .unwrap();
    assert!(b.flattened_at.is_some());
    assert_eq!(b.realized_pnl, dec!(-400.25));

    // A prop-firm rule breach is its own kind (m20261206_000004): recorded beside the max
    // daily loss of the same day, once.
    let rule = |d| NewBreach {
        kind: BreachKind::PropFirmRule,
        details: Some("trailing_drawdown: equity at $48750 reached the safety buffer".into()),
        ..breach(d)
    };
    assert!(matches!(
        t.risk().record_breach(owner.id, rule(day)).await.unwrap(),
        BreachRecorded::New(_)
    ));
    assert!(matches!(
        t.risk().record_breach(owner.id, rule(day)).await.unwrap(),
        BreachRecorded::AlreadyBreached(_)
    ));
    let r = t
        .risk()
        .breach(owner.id, sub.id, day, BreachKind::PropFirmRule)
        .await
        .unwrap()
        .unwrap();
    assert!(r.details.unwrap().starts_with("trailing_drawdown:"));
}

async fn kill_switches_apply_by_scope(t: &TestStore) {
    let admin = t.admin_user("ks-admin@example.com").await;
    let owner = t.user("ks@example.com").await;
    let other = t.user("ks2@example.com").await;
    let (_, sub) = t.account(&owner, "ks").await;
    let (_, other_sub) = t.account(&other, "ks2").await;
    assert!(
        !t.risk()
            .kill_state(owner.id, sub.id)
            .await
            .unwrap()
            .engaged()
    );

    t.risk()
        .set_account_kill(owner.id, sub.id, true, Some("manual"))
        .await
        .unwrap();
    assert!(
        t.risk()
            .kill_state(owner.id, sub.id)
            .await
            .unwrap()
            .engaged()
    );
    assert!(
        !t.risk()
            .kill_state(other.id, other_sub.id)
            .await
            .unwrap()
            .engaged()
    );
    assert!(matches!(
        t.risk()
            .set_account_kill(other.id, sub.id, false, None)
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        t.risk().kill_state(other.id, sub.id).await,
        Err(StoreError::NotFound { .. })
    ));
    t.risk()
        .set_account_kill(owner.id, sub.id, false, None)
        .await
        .unwrap();

    t.risk()
        .set_user_kill(owner.id, true, Some("kill alert"))
        .await
        .unwrap();
    let s = t.risk().kill_state(owner.id, sub.id).await.unwrap();
    assert!(s.engaged() && s.user.as_ref().unwrap().reason.as_deref() == Some("kill alert"));
    t.risk().set_user_kill(owner.id, false, None).await.unwrap();
    assert!(
        !t.risk()
            .kill_state(owner.id, sub.id)
            .await
            .unwrap()
            .engaged()
    );

    let scope = t.admin_scope(admin.id).await.unwrap();
    t.admin(&scope)
        .set_global_kill(true, Some("exchange halt"), None)
        .await
        .unwrap();
    assert!(
        t.risk()
            .kill_state(other.id, other_sub.id)
            .await
            .unwrap()
            .engaged()
    );
    assert!(
        t.admin(&scope)
            .audit_log(5, 0)
            .await
            .unwrap()
            .iter()
            .any(|e| e.action == "kill.global.engage")
    );
}

/// The executor's one statement for "may this sub-account take new exposure" answers as the
/// kill state and the breach read, case by case.
async fn exposure_gates_answer_as_the_kill_state_and_the_daily_breach(t: &TestStore) {
    let admin = t.admin_user("gates-admin@example.com").await;
    let owner = t.user("gates@example.com").await;
    let other = t.user("gates2@example.com").await;
    let (_, sub) = t.account(&owner, "gates").await;
    let (_, other_sub) = t.account(&other, "gates2").await;
    let day = NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
    let gates = |sub: &jt_store::repo::accounts::SubAccount| {
        let sub = sub.clone();
        async move {
            let risk = t.risk();
            let gates = risk.exposure_gates(&sub, day).await.unwrap();
            // The same answer as the two reads it replaces on the executor's path.
            let kill = risk.kill_state_of(&sub).await.unwrap().engaged();
            let breached = risk
                .breach(sub.owner, sub.id, day, BreachKind::MaxDailyLoss)
                .await
                .unwrap()
                .is_some();
            assert_eq!(
                (gates.kill_switch, gates.daily_loss_breached),
                (kill, breached)
            );
            (gates.kill_switch, gates.daily_loss_breached)
        }
    };
    assert_eq!(gates(&sub).await, (false, false));

    t.risk()
        .set_account_kill(owner.id, sub.id, true, None)
        .await
        .unwrap();
    assert_eq!(gates(&sub).await, (true, false));
    assert_eq!(gates(&other_sub).await, (false, false));
    // A released switch still has its row: not engaged.
    t.risk()
        .set_account_kill(owner.id, sub.id, false, None)
        .await
        .unwrap();
    assert_eq!(gates(&sub).await, (false, false));
    t.risk().set_user_kill(owner.id, true, None).await.unwrap();
    assert_eq!(gates(&sub).await, (true, false));
    assert_eq!(gates(&other_sub).await, (false, false));
    t.risk().set_user_kill(owner.id, false, None).await.unwrap();

    let breach = |d, kind| NewBreach {
        sub_account: sub.id,
        trading_day: d,
        kind,
        loss_limit: dec!(500),
        realized_pnl: dec!(-500),
        unrealized_pnl: dec!(0),
        breached_at: Utc::now(),
        details: Some("trailing_drawdown: 2000".into()),
    };
    // Another day's breach and a prop-firm rule's are not today's daily loss.
    for b in [
        breach(day.pred_opt().unwrap(), BreachKind::MaxDailyLoss),
        breach(day, BreachKind::PropFirmRule),
    ] {
        t.risk().record_breach(owner.id, b).await.unwrap();
    }
    assert_eq!(gates(&sub).await, (false, false));
    t.risk()
        .record_breach(owner.id, breach(day, BreachKind::MaxDailyLoss))
        .await
        .unwrap();
    assert_eq!(gates(&sub).await, (false, true));

    let scope = t.admin_scope(admin.id).await.unwrap();
    t.admin(&scope)
        .set_global_kill(true, Some("exchange halt"), None)
        .await
        .unwrap();
    assert_eq!(gates(&sub).await, (true, true));
    assert_eq!(gates(&other_sub).await, (true, false));
}

async fn notifications_are_queued_once_per_channel_and_event(t: &TestStore) {
    let owner = t.user("notify@example.com").await;
    let ch = t
        .notifications()
        .create_channel(
            owner.id,
            NewChannel {
                kind: ChannelKind::Webhook,
                label: "ops".into(),
                target: Secret::new("https://example.com/h"),
                events: vec!["needs_reauth".into()],
            },
        )
        .await
        .unwrap();
    let payload = serde_json::json!({"account": "DEMO1"});
    assert_eq!(
        t.notifications()
            .enqueue(owner.id, "needs_reauth", "acct-1:day", &payload)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        t.notifications()
            .enqueue(owner.id, "needs_reauth", "acct-1:day", &payload)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        t.notifications()
            .enqueue(owner.id, "max_loss", "x", &payload)
            .await
            .unwrap(),
        0,
        "not subscribed"
    );
    let due = t.system().due_deliveries(Utc::now(), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].channel, due[0].owner), (ch.id, owner.id));
    t.notifications()
        .record_attempt(
            owner.id,
            due[0].id,
            Err(("503 from target", Some(Utc::now() + Duration::minutes(5)))),
        )
        .await
        .unwrap();
    assert!(
        t.system()
            .due_deliveries(Utc::now(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let later = t
        .system()
        .due_deliveries(Utc::now() + Duration::minutes(6), 10)
        .await
        .unwrap();
    assert_eq!(later[0].attempts, 1);
    t.notifications()
        .record_attempt(owner.id, later[0].id, Ok(()))
        .await
        .unwrap();
    assert!(
        t.system()
            .due_deliveries(Utc::now() + Duration::hours(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn subscriptions_follow_the_provider_in_order(t: &TestStore) {
    let admin = t.admin_user("plans-admin@example.com").await;
    let scope = t.admin_scope(admin.id).await.unwrap();
    let plan = t
        .admin(&scope)
        .upsert_plan(PlanSpec {
            code: "basic".into(),
            name: "Basic".into(),
            max_broker_accounts: Some(2),
            max_recorders: Some(3),
            max_followers: None,
            features: vec![],
        })
        .await
        .unwrap();
    assert_eq!(plan.max_broker_accounts, Some(2));
    let user = t.user("sub@example.com").await;
    let t0 = Utc::now();
    let event = |status, at| ProviderSubscription {
        user: user.id,
        plan_code: "basic".into(),
        provider: "whop".into(),
        provider_subscription_id: "mem_123".into(),
        status,
        current_period_end: None,
        provider_updated_at: at,
    };
    assert!(
        t.plans()
            .apply_subscription(event(SubscriptionStatus::Active, t0))
            .await
            .unwrap()
    );
    assert!(
        t.plans()
            .apply_subscription(event(
                SubscriptionStatus::Canceled,
                t0 + Duration::seconds(5)
            ))
            .await
            .unwrap()
    );
    assert!(
        !t.plans()
            .apply_subscription(event(SubscriptionStatus::Active, t0 + Duration::seconds(1)))
            .await
            .unwrap(),
        "an older event is ignored"
    );
    assert!(
        t.plans()
            .current_subscription(user.id)
            .await
            .unwrap()
            .is_none(),
        "canceled"
    );
    assert!(matches!(
        t.plans()
            .apply_subscription(ProviderSubscription {
                plan_code: "gold".into(),
                ..event(SubscriptionStatus::Active, t0)
            })
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

/// A signal's paper effect as the fan-out writes it: the engine's result (`jt_domain::paper`)
/// handed to `Paper::apply`, which maps it to rows — once, however often it is applied.
async fn a_signals_paper_effect_is_applied_through_domain_types_once(t: &TestStore) {
    use jt_domain::paper::{self as engine, PaperContext};
    use jt_domain::{Price, Settings, SignalAction, instrument};

    let owner = t.user("apply@example.com").await;
    let (recorder, _) = t.recorder(&owner, "apply").await;
    let mnq = instrument::by_root("MNQ").unwrap();
    let settings = Settings::default();
    let ctx = PaperContext {
        instrument: mnq,
        settings: &settings,
        commission_per_contract: dec!(0),
    };
    let paper = t.paper();
    let t0 = Utc::now();
    let (owner, recorder) = (owner.id, recorder.id);
    // One signal: start, the engine, apply.
    let signal = |action: SignalAction, qty: u32, price: rust_decimal::Decimal, secs: i64| {
        let ctx = &ctx;
        async move {
            let id = SignalId::new();
            let start = paper.start(owner, recorder, "MNQ").await.unwrap();
            assert!(!start.applied(id));
            let mut position = start.engine();
            let price = Price::on_tick(mnq, price);
            let at = start.time_for(t0 + Duration::seconds(secs));
            let closed = engine::apply_signal(&mut position, ctx, action, qty, price, at).unwrap();
            let applied = PaperApplied {
                owner,
                recorder,
                signal: id,
                start: &start,
                position: position.as_ref(),
                closed: &closed,
                price,
                at,
            };
            assert!(paper.apply(applied).await.unwrap());
            // A retry of the same write changes nothing: over an open position its version has
            // moved (refused); over none, the same rows again (ids derive from the signal).
            let again = paper.apply(applied).await.unwrap();
            assert_eq!(again, start.open().is_none());
            let after = paper.start(owner, recorder, "MNQ").await.unwrap();
            assert!(after.applied(id), "a redelivery finds the signal applied");
            (id, closed)
        }
    };
    signal(SignalAction::Long, 2, dec!(21400), 0).await;
    let first = paper
        .open_position(owner, recorder, "MNQ")
        .await
        .unwrap()
        .unwrap();
    signal(SignalAction::Long, 1, dec!(21500), 1).await;
    let added = paper
        .open_position(owner, recorder, "MNQ")
        .await
        .unwrap()
        .unwrap();
    // The same position, added to: 2 @ 21400 + 1 @ 21500.
    assert_eq!(added.id, first.id);
    assert_eq!(added.quantity, 3);
    assert_eq!(added.average_entry.round_dp(2), dec!(21433.33));
    assert_eq!(added.entries.len(), 2);
    // A flip: the long closes with its trades, a short opens in the same write.
    let (_, closed) = signal(SignalAction::Short, 1, dec!(21450), 2).await;
    assert!(!closed.is_empty());
    let short = paper
        .open_position(owner, recorder, "MNQ")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((short.direction, short.quantity), (Direction::Short, 1));
    assert_ne!(short.id, first.id);
    let old = paper
        .positions(owner, recorder, 10)
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.id == first.id)
        .unwrap();
    assert_eq!(old.status, PaperStatus::Closed);
    assert_eq!(old.exit_price, Some(dec!(21450)));
    let net: rust_decimal::Decimal = closed.iter().map(|c| c.net_pnl).sum();
    assert_eq!(old.realized_pnl, net);
    let trades = paper.trades(owner, recorder, 10).await.unwrap();
    assert_eq!(trades.len(), closed.len(), "written once, not per apply");
    assert!(trades.iter().all(|t| t.position == Some(first.id)));
}

/// What an entry is checked against, in one statement, answers as the rules read and the
/// prop-firm breach read do: with and without rules, with and without a breach (and one without
/// details), on that day only, for the owner only.
async fn an_entrys_rules_and_prop_firm_breach_are_read_together(t: &TestStore) {
    use jt_domain::propfirm::presets;
    let owner = t.user("entry-rules@example.com").await;
    let other = t.user("entry-rules-other@example.com").await;
    let (_, sub) = t.account(&owner, "entry-rules").await;
    let day = NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
    let rules = t.rules();
    let read = |who: jt_store::UserId, day: NaiveDate| async move {
        let both = rules.for_entry(who, sub.id, day).await.unwrap();
        let alone = rules.get(who, sub.id).await.unwrap();
        let breach = t
            .risk()
            .breach(who, sub.id, day, BreachKind::PropFirmRule)
            .await
            .unwrap()
            .map(|b| b.details.unwrap_or_default());
        assert_eq!((&both.rules, &both.prop_firm_breach), (&alone, &breach));
        both
    };
    let none = read(owner.id, day).await;
    assert_eq!((none.rules, none.prop_firm_breach), (None, None));

    let (_, set) = presets().into_iter().next().unwrap();
    rules.set(owner.id, sub.id, &set).await.unwrap();
    rules
        .raise_mark(sub.id, dec!(50250.75), None)
        .await
        .unwrap();
    let with_rules = read(owner.id, day).await;
    let stored = with_rules.rules.unwrap();
    assert_eq!(
        (stored.rules, stored.high_water_mark),
        (set, Some(dec!(50250.75)))
    );
    assert_eq!(with_rules.prop_firm_breach, None);
    assert_eq!(read(other.id, day).await.rules, None);

    let breach = |d, details: Option<&str>| NewBreach {
        sub_account: sub.id,
        trading_day: d,
        kind: BreachKind::PropFirmRule,
        loss_limit: dec!(2000),
        realized_pnl: dec!(-2000),
        unrealized_pnl: dec!(0),
        breached_at: Utc::now(),
        details: details.map(str::to_string),
    };
    t.risk()
        .record_breach(
            owner.id,
            breach(day, Some("trailing_drawdown: at the floor")),
        )
        .await
        .unwrap();
    t.risk()
        .record_breach(owner.id, breach(day.succ_opt().unwrap(), None))
        .await
        .unwrap();
    assert_eq!(
        read(owner.id, day).await.prop_firm_breach.as_deref(),
        Some("trailing_drawdown: at the floor")
    );
    assert_eq!(
        read(owner.id, day.succ_opt().unwrap())
            .await
            .prop_firm_breach
            .as_deref(),
        Some("")
    );
    assert_eq!(
        read(owner.id, day.pred_opt().unwrap())
            .await
            .prop_firm_breach,
        None
    );
    assert_eq!(read(other.id, day).await.prop_firm_breach, None);
    // Without rules, a breach still shows.
    rules.clear(owner.id, sub.id).await.unwrap();
    let cleared = read(owner.id, day).await;
    assert_eq!(cleared.rules, None);
    assert!(cleared.prop_firm_breach.is_some());
}

async fn prop_firm_rules_are_kept_per_account_with_a_mark_that_only_rises(t: &TestStore) {
    use jt_domain::propfirm::{NewsEvent, presets};
    let owner = t.user("rules@example.com").await;
    let other = t.user("rules-other@example.com").await;
    let (_, sub) = t.account(&owner, "rules").await;
    let rules = t.rules();
    assert_eq!(rules.get(owner.id, sub.id).await.unwrap(), None);
    let (_, mut set) = presets().into_iter().next().unwrap();
    let stored = rules.set(owner.id, sub.id, &set).await.unwrap();
    assert_eq!(stored.rules, set);
    assert!(
        rules.set(other.id, sub.id, &set).await.is_err(),
        "only the owner sets an account's rules"
    );
    assert_eq!(rules.get(other.id, sub.id).await.unwrap(), None);

    rules
        .raise_mark(sub.id, dec!(51000.25), None)
        .await
        .unwrap();
    rules.raise_mark(sub.id, dec!(50500), None).await.unwrap();
    let day = NaiveDate::from_ymd_opt(2026, 12, 8).unwrap();
    rules
        .raise_mark(sub.id, dec!(51000.50), Some(day))
        .await
        .unwrap();
    let back = rules.get(owner.id, sub.id).await.unwrap().unwrap();
    assert_eq!(back.high_water_mark, Some(dec!(51000.50)), "never lowered");
    assert_eq!(back.mark_day, Some(day));

    // An end-of-day close below the mark records the day without lowering the mark; an older
    // day never moves it back.
    let next = day.succ_opt().unwrap();
    rules.close_day(sub.id, dec!(50800), next).await.unwrap();
    let back = rules.get(owner.id, sub.id).await.unwrap().unwrap();
    assert_eq!(
        (back.high_water_mark, back.mark_day),
        (Some(dec!(51000.50)), Some(next))
    );
    rules.close_day(sub.id, dec!(50000), day).await.unwrap();
    assert_eq!(
        rules.get(owner.id, sub.id).await.unwrap().unwrap().mark_day,
        Some(next)
    );

    // Editing a value keeps the mark.
    set.automation_allowed = false;
    let edited = rules.set(owner.id, sub.id, &set).await.unwrap();
    assert!(!edited.rules.automation_allowed);
    assert_eq!(edited.high_water_mark, Some(dec!(51000.50)));
    assert_eq!(
        rules
            .all()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.sub_account == sub.id)
            .count(),
        1
    );
    rules.clear(owner.id, sub.id).await.unwrap();
    assert_eq!(rules.get(owner.id, sub.id).await.unwrap(), None);

    let now = Utc::now();
    let cpi = rules
        .add_news(NewsEvent {
            at: now + Duration::hours(1),
            title: "CPI".into(),
        })
        .await
        .unwrap();
    rules
        .add_news(NewsEvent {
            at: now + Duration::days(3),
            title: "FOMC".into(),
        })
        .await
        .unwrap();
    let soon = rules
        .news_between(now, now + Duration::hours(2))
        .await
        .unwrap();
    assert_eq!(soon.len(), 1);
    assert_eq!(soon[0].event.title, "CPI");
    rules.remove_news(cpi.id).await.unwrap();
    assert!(rules.remove_news(cpi.id).await.is_err());
    assert!(
        rules
            .add_news(NewsEvent {
                at: now,
                title: " ".into()
            })
            .await
            .is_err()
    );
}

/// A price's effect as the positions service writes it: conditional on the version read, so
/// two replicas marking the same state (or a signal moving it meanwhile) write it once.
async fn a_price_mark_is_written_once_and_only_over_the_version_read(t: &TestStore) {
    use jt_domain::paper::{self as engine, PaperContext};
    use jt_domain::{Price, Settings, SignalAction, instrument};
    use jt_store::repo::paper::PaperMarked;

    let owner = t.user("mark@example.com").await;
    let (recorder, _) = t.recorder(&owner, "mark").await;
    let (owner, recorder) = (owner.id, recorder.id);
    let mnq = instrument::by_root("MNQ").unwrap();
    let settings = Settings {
        sl_enabled: true,
        sl_amount: dec!(20),
        ..Settings::default()
    };
    let ctx = PaperContext {
        instrument: mnq,
        settings: &settings,
        commission_per_contract: dec!(0.5),
    };
    let paper = t.paper();
    let signal = SignalId::new();
    let start = paper.start(owner, recorder, "MNQ").await.unwrap();
    let mut position = start.engine();
    let at = start.time_for(Utc::now());
    let entry = Price::on_tick(mnq, dec!(21400));
    engine::apply_signal(&mut position, &ctx, SignalAction::Long, 1, entry, at).unwrap();
    assert!(
        paper
            .apply(PaperApplied {
                owner,
                recorder,
                signal,
                start: &start,
                position: position.as_ref(),
                closed: &[],
                price: entry,
                at,
            })
            .await
            .unwrap()
    );

    // A price that only marks: written, and not again over the same version.
    let opens = paper.open_on("MNQ").await.unwrap();
    let open = opens
        .iter()
        .find(|o| o.position.recorder == recorder)
        .unwrap();
    let mark = |open, price: rust_decimal::Decimal| {
        let ctx = &ctx;
        async move {
            let open: &jt_store::repo::paper::OpenPaper = open;
            let before = open.engine().unwrap();
            let mut p = Some(before.clone());
            let price = Price::on_tick(mnq, price);
            let when = at + Duration::seconds(1);
            let closed = engine::apply_price(&mut p, ctx, price, when).unwrap();
            let unrealized = p.as_ref().map_or_else(
                || {
                    let u = before.unrealized_at(mnq, price);
                    engine::UnrealizedPnl {
                        current: u,
                        best: before.unrealized.best.max(u),
                        worst: before.unrealized.worst.min(u),
                    }
                },
                |p| p.unrealized,
            );
            let written = paper
                .mark(PaperMarked {
                    open,
                    position: p.as_ref(),
                    closed: &closed,
                    unrealized,
                    price,
                    at: when,
                })
                .await
                .unwrap();
            (written, closed)
        }
    };
    assert!(mark(open, dec!(21397)).await.0);
    assert!(
        !mark(open, dec!(21397)).await.0,
        "a stale version writes nothing"
    );
    let marked = paper
        .open_position(owner, recorder, "MNQ")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(marked.current_price, Some(dec!(21397)));
    assert_eq!(marked.unrealized_pnl, dec!(-6));
    assert_eq!(marked.worst_unrealized_pnl, dec!(-6));

    // Through the stop (5 points below): closed at the price seen, its trade written once
    // even when a second replica tries the same state.
    let opens = paper.open_on("MNQ").await.unwrap();
    let open = opens
        .iter()
        .find(|o| o.position.recorder == recorder)
        .unwrap();
    // The executor reads the record for a signal in the same instant.
    let stale = paper.start(owner, recorder, "MNQ").await.unwrap();
    let (written, closed) = mark(open, dec!(21394.5)).await;
    assert!(written);
    assert_eq!(closed.len(), 1);
    assert!(!mark(open, dec!(21394.5)).await.0);
    assert!(
        paper
            .open_on("MNQ")
            .await
            .unwrap()
            .iter()
            .all(|o| o.position.recorder != recorder)
    );
    let closed_row = paper
        .latest_position(owner, recorder, "MNQ")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(closed_row.status, PaperStatus::Closed);
    assert_eq!(closed_row.exit_price, Some(dec!(21394.5)));
    assert_eq!(
        closed_row.last_signal,
        Some(signal),
        "a mark is not a signal"
    );
    let trades = paper.trades(owner, recorder, 10).await.unwrap();
    assert_eq!(trades.len(), 1);
    let trade = &trades[0];
    assert_eq!(trade.exit_reason, Some(ExitReason::StopLoss));
    assert_eq!(trade.realized_ticks, Some(dec!(-22)));
    // 22 ticks × $0.50 + $0.50 a side.
    assert_eq!(trade.realized_pnl, Some(dec!(-12)));
    assert_eq!(trade.max_adverse_excursion, dec!(5.5));
    assert_eq!(closed_row.realized_pnl, dec!(-12));

    // The signal computed from the state read before the stop hit (an add to the open long)
    // is refused: it would re-open what the stop closed. Applied again to the record as it is
    // now (flat), it opens a new position of its own.
    let add = SignalId::new();
    let apply = |start: &'_ jt_store::repo::paper::PaperStart| {
        let mut position = start.engine();
        let at = start.time_for(Utc::now());
        let price = Price::on_tick(mnq, dec!(21395));
        let closed =
            engine::apply_signal(&mut position, &ctx, SignalAction::Long, 1, price, at).unwrap();
        (position, closed, price, at)
    };
    let (position, closed, price, at) = apply(&stale);
    let refused = paper
        .apply(PaperApplied {
            owner,
            recorder,
            signal: add,
            start: &stale,
            position: position.as_ref(),
            closed: &closed,
            price,
            at,
        })
        .await
        .unwrap();
    assert!(
        !refused,
        "a signal over a version a mark replaced is refused"
    );
    let still = paper
        .latest_position(owner, recorder, "MNQ")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        still, closed_row,
        "nothing of the refused signal was written"
    );
    let fresh = paper.start(owner, recorder, "MNQ").await.unwrap();
    assert!(fresh.open().is_none());
    let (position, closed, price, at) = apply(&fresh);
    assert!(
        paper
            .apply(PaperApplied {
                owner,
                recorder,
                signal: add,
                start: &fresh,
                position: position.as_ref(),
                closed: &closed,
                price,
                at,
            })
            .await
            .unwrap()
    );
    let reopened = paper
        .open_position(owner, recorder, "MNQ")
        .await
        .unwrap()
        .unwrap();
    assert_ne!(reopened.id, closed_row.id);
    assert_eq!(reopened.quantity, 1);
    assert_eq!(reopened.last_signal, Some(add));
    assert_eq!(
        paper.trades(owner, recorder, 10).await.unwrap().len(),
        1,
        "the stop's trade alone: a trade is written when it closes"
    );
}

async fn kill_switch_engagements_are_to_do_once_each(t: &TestStore) {
    use jt_store::repo::risk::KillEngagement;
    let admin = t.admin_user("ke-admin@example.com").await;
    let owner = t.user("ke@example.com").await;
    let (_, sub) = t.account(&owner, "ke").await;
    let engagement = |n: u128| KillEngagement {
        id: uuid::Uuid::from_u128(n),
        cause: serde_json::json!({"kind": "api", "n": n.to_string()}),
    };
    // A switch set without an engagement (a release, a test's switch) leaves nothing to do.
    t.risk()
        .set_account_kill(owner.id, sub.id, true, None)
        .await
        .unwrap();
    assert!(t.risk().pending_kills().await.unwrap().is_empty());

    t.risk()
        .engage_account_kill(owner.id, sub.id, Some("news"), &engagement(1))
        .await
        .unwrap();
    let pending = t.risk().pending_kills().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].engagement, engagement(1));
    assert_eq!(
        (pending[0].scope, pending[0].sub_account, pending[0].engaged),
        (KillScope::Account, Some(sub.id), true)
    );
    let targets = t
        .risk()
        .kill_targets(KillScope::Account, None, Some(sub.id))
        .await
        .unwrap();
    assert_eq!(targets.iter().map(|s| s.id).collect::<Vec<_>>(), [sub.id]);

    t.risk()
        .mark_kill_executed(engagement(1).id, Utc::now())
        .await
        .unwrap();
    assert!(t.risk().pending_kills().await.unwrap().is_empty());
    // The same engagement written again (a redelivered alert) is not to do again; nor is it
    // after a release.
    t.risk()
        .engage_account_kill(owner.id, sub.id, Some("news"), &engagement(1))
        .await
        .unwrap();
    t.risk()
        .set_account_kill(owner.id, sub.id, false, None)
        .await
        .unwrap();
    assert!(t.risk().pending_kills().await.unwrap().is_empty());

    // A new engagement is; marking an older one does not mark it. A release before it was
    // carried out leaves it to do (the flatten was asked for).
    t.risk()
        .engage_user_kill(owner.id, None, &engagement(2))
        .await
        .unwrap();
    t.risk().set_user_kill(owner.id, false, None).await.unwrap();
    t.risk()
        .mark_kill_executed(engagement(1).id, Utc::now())
        .await
        .unwrap();
    let pending = t.risk().pending_kills().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].scope, pending[0].user, pending[0].engaged),
        (KillScope::User, Some(owner.id), false)
    );
    let targets = t
        .risk()
        .kill_targets(KillScope::User, Some(owner.id), None)
        .await
        .unwrap();
    assert_eq!(targets.iter().map(|s| s.id).collect::<Vec<_>>(), [sub.id]);
    t.risk()
        .mark_kill_executed(engagement(2).id, Utc::now())
        .await
        .unwrap();

    // The platform's switch: engaged with an engagement, released without one.
    let scope = t.admin_scope(admin.id).await.unwrap();
    t.admin(&scope)
        .set_global_kill(true, Some("halt"), Some(&engagement(3)))
        .await
        .unwrap();
    t.admin(&scope)
        .set_global_kill(false, None, Some(&engagement(4)))
        .await
        .unwrap();
    let pending = t.risk().pending_kills().await.unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|k| (k.scope, k.engagement.id))
            .collect::<Vec<_>>(),
        [(KillScope::Global, engagement(3).id)],
        "a release carries no engagement"
    );
}

on_both_engines!(
    a_price_mark_is_written_once_and_only_over_the_version_read,
    paper_positions_keep_exact_averages_and_one_open_per_symbol,
    a_signals_paper_effect_is_applied_through_domain_types_once,
    copies_are_recorded_once_per_leader_fill,
    a_followers_peak_only_rises_and_starts_afresh_at_an_unlock,
    a_paper_record_is_read_for_its_daily_loss_and_breached_once_per_day,
    breaches_are_recorded_once_per_day,
    kill_switches_apply_by_scope,
    exposure_gates_answer_as_the_kill_state_and_the_daily_breach,
    an_entrys_rules_and_prop_firm_breach_are_read_together,
    kill_switch_engagements_are_to_do_once_each,
    notifications_are_queued_once_per_channel_and_event,
    subscriptions_follow_the_provider_in_order,
    prop_firm_rules_are_kept_per_account_with_a_mark_that_only_rises,
);
