//! A user with at least one row in every user-owned table.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use chrono::{Duration, NaiveDate, Utc};
use jt_domain::{Direction, Settings, Side, SignalAction};
use jt_store::repo::accounts::BrokerSubAccount;
use jt_store::repo::admin::AdminScope;
use jt_store::repo::auth::User;
use jt_store::repo::broker::{BrokerOrder, BrokerPosition, Fill};
use jt_store::repo::copy::{ContractMapping, FollowerSettings, NewCopy};
use jt_store::repo::intents::{NewExecution, NewIntent};
use jt_store::repo::notifications::NewChannel;
use jt_store::repo::paper::{PaperEntry, PaperPosition, PaperTrade};
use jt_store::repo::plans::{PlanSpec, ProviderSubscription};
use jt_store::repo::risk::NewBreach;
use jt_store::repo::signals::NewSignal;
use jt_store::repo::webhooks::NewWebhookLog;
use jt_store::*;
use rust_decimal_macros::dec;

use super::TestStore;

/// Ids of what [`populate`] created.
pub struct Fixture {
    pub account: BrokerAccountId,
    pub sub: SubAccountId,
    pub follower_sub: SubAccountId,
    pub recorder: RecorderId,
    pub trader: TraderId,
    pub signal: SignalId,
    pub intent: IntentId,
    pub leader: LeaderId,
    pub follower: FollowerId,
}

/// Creates rows in every user-owned table for `owner`; `admin` acts on them (audit rows).
pub async fn populate(t: &TestStore, owner: &User, admin: &AdminScope, tag: &str) -> Fixture {
    let o = owner.id;
    let now = Utc::now();
    let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();

    t.sessions()
        .create(o, Duration::hours(1), Some("test"), None)
        .await
        .unwrap();
    t.api_tokens().create(o, "ci", None).await.unwrap();
    t.users()
        .start_password_reset(&owner.email)
        .await
        .unwrap()
        .unwrap();
    t.admin(admin)
        .upsert_plan(PlanSpec {
            code: "pro".into(),
            name: "Pro".into(),
            max_broker_accounts: Some(5),
            max_recorders: None,
            max_followers: Some(10),
            features: vec!["copy_trading".into()],
        })
        .await
        .unwrap();
    assert!(
        t.plans()
            .apply_subscription(ProviderSubscription {
                user: o,
                plan_code: "pro".into(),
                provider: "whop".into(),
                provider_subscription_id: format!("sub_{tag}"),
                status: SubscriptionStatus::Active,
                current_period_end: Some(now + Duration::days(30)),
                provider_updated_at: now,
            })
            .await
            .unwrap()
    );

    let (account, sub) = t.account(owner, tag).await;
    let subs = t
        .accounts()
        .sync_sub_accounts(
            o,
            account,
            &[
                BrokerSubAccount {
                    broker_sub_account_id: format!("{}", 1000 + tag.len()),
                    name: format!("DEMO-{tag}"),
                },
                BrokerSubAccount {
                    broker_sub_account_id: "999".into(),
                    name: format!("FOLLOW-{tag}"),
                },
            ],
        )
        .await
        .unwrap();
    let follower_sub = subs.iter().find(|s| s.id != sub.id).unwrap().id;
    t.accounts()
        .store_access_token(
            o,
            account,
            &Secret::new("tok"),
            Some(now + Duration::minutes(80)),
        )
        .await
        .unwrap();

    let (recorder, _) = t.recorder(owner, tag).await;
    let trader = t.trader(o, recorder.id, sub.id).await;

    let signal = SignalId::new();
    t.webhooks()
        .log_batch(&[NewWebhookLog {
            id: WebhookLogId::new(),
            received_at: now,
            recorder: Some(recorder.id),
            source_ip: Some("203.0.113.9".into()),
            body: r#"{"action":"buy"}"#.into(),
            status_code: 200,
            result: "queued".into(),
            reason: None,
            signal: Some(signal),
        }])
        .await
        .unwrap();
    t.signals()
        .record(NewSignal {
            id: signal,
            owner: o,
            recorder: recorder.id,
            received_at: now,
            alert_time: Some(now),
            action: SignalAction::Long,
            ticker: Some("MNQ1!".into()),
            quantity: Some(dec!(1)),
            price: Some(dec!(21400.25)),
            market_position: Some("long".into()),
            prev_market_position: Some("flat".into()),
            payload: serde_json::json!({}),
            outcome: SignalOutcome::Accepted,
            outcome_reason: None,
            age_ms: Some(3),
            body_digest: None,
        })
        .await
        .unwrap();
    let intent = IntentId::new();
    t.intents()
        .create(NewIntent {
            id: intent,
            owner: o,
            sub_account: sub.id,
            trader: Some(trader.id),
            signal: Some(signal),
            source: IntentSource::Signal,
            idempotency_key: format!("{signal}:{}", trader.id),
            kind: IntentKind::Entry,
            symbol: "MNQ".into(),
            contract: Some("MNQZ6".into()),
            side: Some(Side::Buy),
            quantity: 1,
            settings: Settings::default(),
            plan: serde_json::json!({}),
            skip_reason: None,
        })
        .await
        .unwrap();
    t.intents()
        .record_execution(NewExecution {
            id: ExecutionId::new(),
            owner: o,
            intent,
            attempt: 1,
            started_at: now,
            finished_at: Some(now + Duration::milliseconds(40)),
            outcome: ExecutionOutcome::Accepted,
            broker_order_ids: vec!["555".into()],
            fill_price: None,
            filled_quantity: None,
            error_kind: None,
            failure_reason: None,
        })
        .await
        .unwrap();
    t.broker()
        .upsert_order(
            o,
            BrokerOrder {
                sub_account: sub.id,
                broker_order_id: "555".into(),
                client_order_id: Some(format!("jt-{intent}")),
                intent: Some(intent),
                contract: "MNQZ6".into(),
                side: Side::Buy,
                order_type: BrokerOrderType::Market,
                role: Some(OrderRole::Entry),
                quantity: 1,
                filled_quantity: 1,
                limit_price: None,
                stop_price: None,
                average_fill_price: Some(dec!(21400.25)),
                status: BrokerOrderStatus::Filled,
                status_reason: None,
                broker_updated_at: now,
            },
        )
        .await
        .unwrap();
    t.broker()
        .record_fill(
            o,
            Fill {
                sub_account: sub.id,
                broker_fill_id: "f-1".into(),
                broker_order_id: "555".into(),
                client_order_id: None,
                contract: "MNQZ6".into(),
                side: Side::Buy,
                quantity: 1,
                price: dec!(21400.25),
                filled_at: now,
                trading_day: day,
            },
        )
        .await
        .unwrap();
    t.trades()
        .apply_fill(
            o,
            Fill {
                sub_account: sub.id,
                broker_fill_id: "f-2".into(),
                broker_order_id: "555".into(),
                client_order_id: None,
                contract: "MNQZ6".into(),
                side: Side::Buy,
                quantity: 1,
                price: dec!(21400.25),
                filled_at: now,
                trading_day: day,
            },
            jt_store::repo::trades::FillContext {
                exit_reason: jt_store::TradeExitReason::Market,
                point_value: None,
            },
        )
        .await
        .unwrap();
    t.broker()
        .upsert_position(
            o,
            BrokerPosition {
                sub_account: sub.id,
                contract: "MNQZ6".into(),
                net_quantity: 1,
                average_price: Some(dec!(21400.25)),
                realized_pnl: None,
                broker_updated_at: now,
            },
        )
        .await
        .unwrap();

    let position = PaperPosition {
        id: PaperPositionId::new(),
        owner: o,
        recorder: recorder.id,
        symbol: "MNQ".into(),
        direction: Direction::Long,
        quantity: 1,
        average_entry: dec!(21400.25),
        entries: vec![PaperEntry {
            price: dec!(21400.25),
            qty: 1,
            time: now,
        }],
        current_price: None,
        unrealized_pnl: dec!(0),
        worst_unrealized_pnl: dec!(0),
        best_unrealized_pnl: dec!(0),
        realized_pnl: dec!(0),
        exit_price: None,
        status: PaperStatus::Open,
        opened_at: now,
        closed_at: None,
        last_signal: None,
        engine_state: None,
    };
    t.paper().save_position(o, &position).await.unwrap();
    t.paper()
        .save_trade(
            o,
            &PaperTrade {
                id: PaperTradeId::new(),
                owner: o,
                recorder: recorder.id,
                position: Some(position.id),
                signal: Some(signal),
                symbol: "MNQ".into(),
                direction: Direction::Long,
                quantity: 1,
                entry_price: dec!(21400.25),
                entry_time: now,
                exit_price: None,
                exit_time: None,
                exit_reason: None,
                tp_price: Some(dec!(21405.25)),
                sl_price: None,
                max_favorable_excursion: dec!(0),
                max_adverse_excursion: dec!(0),
                realized_pnl: None,
                realized_ticks: None,
                commission: dec!(0.62),
                status: PaperStatus::Open,
            },
        )
        .await
        .unwrap();

    let leader = t
        .copying()
        .create_leader(o, sub.id, Some("lead"), true)
        .await
        .unwrap();
    let follower = t
        .copying()
        .add_follower(o, leader.id, follower_sub, FollowerSettings::default())
        .await
        .unwrap();
    t.copying()
        .set_mappings(
            o,
            follower.id,
            &[ContractMapping {
                source_root: "NQ".into(),
                target_root: "MNQ".into(),
                quantity_ratio: dec!(10),
            }],
        )
        .await
        .unwrap();
    t.copying()
        .record_copy(
            o,
            NewCopy {
                id: CopyLogId::new(),
                leader: leader.id,
                follower: follower.id,
                trigger: CopyTrigger::Auto,
                leader_fill_id: Some("f-1".into()),
                leader_order_id: Some("555".into()),
                leader_symbol: "MNQZ6".into(),
                follower_symbol: "MNQZ6".into(),
                leader_side: Some(Side::Buy),
                follower_side: Some(Side::Buy),
                leader_quantity: 1,
                follower_quantity: 1,
                leader_price: Some(dec!(21400.25)),
                status: CopyStatus::Pending,
                error: None,
            },
        )
        .await
        .unwrap();
    t.risk().follower_peak(o, follower.id).await.unwrap();

    t.risk()
        .record_breach(
            o,
            NewBreach {
                sub_account: sub.id,
                trading_day: day,
                kind: BreachKind::MaxDailyLoss,
                loss_limit: dec!(500),
                realized_pnl: dec!(-450.5),
                unrealized_pnl: dec!(-60),
                breached_at: now,
                details: None,
            },
        )
        .await
        .unwrap();
    t.risk()
        .record_paper_breach(
            o,
            jt_store::repo::paper_risk::NewPaperBreach {
                recorder: recorder.id,
                trading_day: day,
                loss_limit: dec!(500),
                realized_pnl: dec!(-450.5),
                unrealized_pnl: dec!(-60),
                breached_at: now,
                details: None,
            },
        )
        .await
        .unwrap();
    t.risk().set_user_kill(o, true, Some("test")).await.unwrap();
    t.risk()
        .set_account_kill(o, sub.id, true, Some("test"))
        .await
        .unwrap();
    t.rules()
        .set(o, sub.id, &jt_domain::propfirm::presets()[0].1)
        .await
        .unwrap();
    t.notifications()
        .create_channel(
            o,
            NewChannel {
                kind: ChannelKind::Webhook,
                label: "hook".into(),
                target: Secret::new("https://example.com/hook"),
                events: vec!["max_loss".into()],
            },
        )
        .await
        .unwrap();
    assert_eq!(
        t.notifications()
            .enqueue(
                o,
                "max_loss",
                &format!("breach-{tag}"),
                &serde_json::json!({"x": 1})
            )
            .await
            .unwrap(),
        1
    );
    t.admin(admin).set_approved(o, true).await.unwrap();

    Fixture {
        account,
        sub: sub.id,
        follower_sub,
        recorder: recorder.id,
        trader: trader.id,
        signal,
        intent,
        leader: leader.id,
        follower: follower.id,
    }
}
