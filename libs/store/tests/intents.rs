//! Order intents: unique idempotency key, guarded state machine, idempotent executions and
//! the trader activity the executor's filters read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{Duration, Utc};
use common::{Engine, TestStore};
use jt_domain::{Settings, Side};
use jt_store::repo::accounts::SubAccount;
use jt_store::repo::auth::User;
use jt_store::repo::intents::{
    Advanced, Created, Decided, IntentUpdate, NewExecution, NewIntent, TraderActivity, Transitioned,
};
use jt_store::{
    ExecutionId, ExecutionOutcome, IntentId, IntentKind, IntentSource, IntentStatus, StoreError,
    TraderId,
};
use rust_decimal_macros::dec;
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement, TransactionTrait};

fn intent(
    owner: &User,
    sub: &SubAccount,
    trader: Option<TraderId>,
    key: &str,
    kind: IntentKind,
) -> NewIntent {
    NewIntent {
        id: IntentId::new(),
        owner: owner.id,
        sub_account: sub.id,
        trader,
        signal: None,
        source: IntentSource::Signal,
        idempotency_key: key.to_string(),
        kind,
        symbol: "MNQ".into(),
        contract: Some("MNQZ6".into()),
        side: Some(Side::Buy),
        quantity: 3,
        settings: Settings::default(),
        plan: serde_json::json!({"bracket": {"qty": 3}}),
        skip_reason: None,
    }
}

async fn idempotency_key_is_unique(t: &TestStore) {
    let owner = t.user("idem@example.com").await;
    let (_, sub) = t.account(&owner, "idem").await;
    let first = t
        .intents()
        .create(intent(
            &owner,
            &sub,
            None,
            "sig-1:trader-1",
            IntentKind::Entry,
        ))
        .await
        .unwrap();
    let Created::New(first) = first else {
        panic!("first create is new")
    };
    // A redelivered signal makes a new intent id with the same key: the first one is returned.
    let again = t
        .intents()
        .create(intent(
            &owner,
            &sub,
            None,
            "sig-1:trader-1",
            IntentKind::Entry,
        ))
        .await
        .unwrap();
    match again {
        // What `create` returned for the new intent is exactly what was stored.
        Created::Existing(i) => assert_eq!(i, first),
        Created::New(_) => panic!("a second intent was created for the same key"),
    }
    assert_eq!(
        t.intents()
            .for_sub_account(owner.id, sub.id, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    // Another owner cannot take over the key.
    let other = t.user("idem2@example.com").await;
    let (_, other_sub) = t.account(&other, "idem2").await;
    let err = t
        .intents()
        .create(intent(
            &other,
            &other_sub,
            None,
            "sig-1:trader-1",
            IntentKind::Entry,
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
}

async fn transitions_are_guarded(t: &TestStore) {
    use IntentStatus::*;
    let owner = t.user("fsm@example.com").await;
    let (_, sub) = t.account(&owner, "fsm").await;
    let id = t
        .intents()
        .create(intent(&owner, &sub, None, "fsm-1", IntentKind::Entry))
        .await
        .unwrap()
        .intent()
        .id;
    let step = |to, u| async move { t.intents().transition(owner.id, id, to, u).await };

    assert!(matches!(
        step(Accepted, IntentUpdate::default()).await,
        Err(StoreError::InvalidTransition {
            from: Pending,
            to: Accepted,
            ..
        })
    ));
    assert_eq!(t.intents().status(owner.id, id).await.unwrap(), Pending);
    let sent = step(Sent, IntentUpdate::default()).await.unwrap();
    assert_eq!(t.intents().status(owner.id, id).await.unwrap(), Sent);
    assert!(
        matches!(sent, Transitioned::Applied(ref i) if i.status == Sent && i.sent_at.is_some())
    );
    // The same event again: no change, no error.
    assert!(matches!(
        step(Sent, IntentUpdate::default()).await.unwrap(),
        Transitioned::AlreadyThere(_)
    ));
    step(
        Unknown,
        IntentUpdate {
            reason: Some("timeout after send".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        t.intents()
            .unfinished(owner.id, sub.id)
            .await
            .unwrap()
            .len(),
        1
    );
    step(Accepted, IntentUpdate::default()).await.unwrap();
    let filled = step(
        Filled,
        IntentUpdate {
            filled_quantity: Some(3),
            average_fill_price: Some(dec!(21433.333333333)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let i = filled.intent();
    assert_eq!(
        (i.status, i.filled_quantity, i.average_fill_price),
        (Filled, 3, Some(dec!(21433.333333333)))
    );
    assert!(i.completed_at.is_some());
    assert_eq!(i.status_reason.as_deref(), Some("timeout after send"));

    // A filled intent never goes back, nor anywhere else.
    for to in [
        Pending, Sent, Accepted, Rejected, Failed, Cancelled, Skipped, Unknown,
    ] {
        match step(to, IntentUpdate::default()).await {
            Err(StoreError::InvalidTransition {
                from: Filled,
                to: got,
                ..
            }) => assert_eq!(got, to),
            other => panic!("filled → {to}: {other:?}"),
        }
    }
    assert_eq!(t.intents().get(owner.id, id).await.unwrap().status, Filled);
    // The narrow state read (the executor's conclude) agrees with the whole row.
    assert_eq!(t.intents().status(owner.id, id).await.unwrap(), Filled);
    assert!(
        t.intents()
            .unfinished(owner.id, sub.id)
            .await
            .unwrap()
            .is_empty()
    );

    // Another owner cannot move it, nor read its state.
    let other = t.user("fsm2@example.com").await;
    assert!(matches!(
        t.intents().status(other.id, id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        t.intents()
            .transition(other.id, id, Failed, IntentUpdate::default())
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Every pair of states: the store allows exactly the moves of `IntentStatus::successors`.
async fn transition_table_is_enforced(t: &TestStore) {
    let owner = t.user("table@example.com").await;
    let (_, sub) = t.account(&owner, "table").await;
    // Paths from pending to every state.
    let path = |s: IntentStatus| -> Vec<IntentStatus> {
        use IntentStatus::*;
        match s {
            Pending => vec![],
            Sent | Skipped => vec![s],
            Failed => vec![Failed],
            Unknown | Accepted | Rejected => vec![Sent, s],
            Filled => vec![Sent, Filled],
            Cancelled => vec![Sent, Accepted, Cancelled],
        }
    };
    let mut n = 0;
    for from in IntentStatus::ALL {
        for to in IntentStatus::ALL {
            n += 1;
            let id = t
                .intents()
                .create(intent(
                    &owner,
                    &sub,
                    None,
                    &format!("tbl-{n}"),
                    IntentKind::Close,
                ))
                .await
                .unwrap()
                .intent()
                .id;
            for s in path(*from) {
                t.intents()
                    .transition(owner.id, id, s, IntentUpdate::default())
                    .await
                    .unwrap();
            }
            let r = t
                .intents()
                .transition(owner.id, id, *to, IntentUpdate::default())
                .await;
            let allowed = from.successors().contains(to);
            match r {
                Ok(Transitioned::Applied(_)) => assert!(allowed, "{from} → {to} was allowed"),
                Ok(Transitioned::AlreadyThere(_)) => assert_eq!(from, to),
                Err(StoreError::InvalidTransition { .. }) => {
                    assert!(!allowed && from != to, "{from} → {to} was refused")
                }
                Err(e) => panic!("{from} → {to}: {e}"),
            }
        }
    }
}

async fn skipped_intents_record_their_reason(t: &TestStore) {
    let owner = t.user("skip@example.com").await;
    let (_, sub) = t.account(&owner, "skip").await;
    let mut new = intent(&owner, &sub, None, "skip-1", IntentKind::Entry);
    new.skip_reason = Some("time_filter: outside 09:30–16:00 America/New_York".into());
    let i = t.intents().create(new).await.unwrap();
    let i = i.intent();
    assert_eq!(i.status, IntentStatus::Skipped);
    assert!(
        i.status_reason
            .as_deref()
            .unwrap()
            .starts_with("time_filter")
    );
    assert!(i.completed_at.is_some());
}

async fn executions_are_recorded_once_per_attempt(t: &TestStore) {
    let owner = t.user("exec@example.com").await;
    let (_, sub) = t.account(&owner, "exec").await;
    let id = t
        .intents()
        .create(intent(&owner, &sub, None, "exec-1", IntentKind::Entry))
        .await
        .unwrap()
        .intent()
        .id;
    let start = Utc::now();
    let exec = |attempt| NewExecution {
        id: ExecutionId::new(),
        owner: owner.id,
        intent: id,
        attempt,
        started_at: start,
        finished_at: Some(start + Duration::milliseconds(87)),
        outcome: if attempt == 1 {
            ExecutionOutcome::Failed
        } else {
            ExecutionOutcome::Filled
        },
        broker_order_ids: vec!["1001".into(), "1002".into()],
        fill_price: (attempt == 2).then_some(dec!(21400.25)),
        filled_quantity: (attempt == 2).then_some(3),
        error_kind: (attempt == 1).then(|| "rate_limited".to_string()),
        failure_reason: (attempt == 1).then(|| "p-ticket, wait 2 s".to_string()),
    };
    t.intents().record_execution(exec(1)).await.unwrap();
    t.intents().record_execution(exec(1)).await.unwrap();
    t.intents().record_execution(exec(2)).await.unwrap();
    let execs = t.intents().executions(owner.id, id).await.unwrap();
    assert_eq!(execs.len(), 2);
    assert_eq!(execs[0].latency_ms, Some(87));
    assert_eq!(execs[0].error_kind.as_deref(), Some("rate_limited"));
    assert_eq!(
        execs[1].broker_order_ids,
        vec!["1001".to_string(), "1002".to_string()]
    );
    assert_eq!(execs[1].fill_price, Some(dec!(21400.25)));
    let other = t.user("exec2@example.com").await;
    let mut foreign = exec(3);
    foreign.owner = other.id;
    assert!(matches!(
        t.intents().record_execution(foreign).await,
        Err(StoreError::NotFound { .. })
    ));
    // Refused means nothing stored under the intent either.
    assert_eq!(t.intents().executions(owner.id, id).await.unwrap().len(), 2);
    // An intent that does not exist at all: the same refusal.
    let mut orphan = exec(4);
    orphan.intent = IntentId::new();
    assert!(matches!(
        t.intents().record_execution(orphan).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn trader_activity_counts_executed_signals(t: &TestStore) {
    let owner = t.user("act@example.com").await;
    let (_, sub) = t.account(&owner, "act").await;
    let (recorder, _) = t.recorder(&owner, "act").await;
    let trader = t.trader(owner.id, recorder.id, sub.id).await;
    let session_start = Utc::now() - Duration::minutes(1);
    // Nothing yet: no count and no times (each read answers NULL, not an error).
    assert_eq!(
        t.intents()
            .trader_activity(owner.id, trader.id, session_start)
            .await
            .unwrap(),
        TraderActivity::default()
    );
    let mut ids = Vec::new();
    for (k, kind) in [IntentKind::Entry, IntentKind::Add, IntentKind::Add]
        .into_iter()
        .enumerate()
    {
        let id = t
            .intents()
            .create(intent(
                &owner,
                &sub,
                Some(trader.id),
                &format!("act-{k}"),
                kind,
            ))
            .await
            .unwrap()
            .intent()
            .id;
        t.intents()
            .transition(owner.id, id, IntentStatus::Sent, IntentUpdate::default())
            .await
            .unwrap();
        ids.push(id);
    }
    // A skipped one does not count.
    let mut skipped = intent(&owner, &sub, Some(trader.id), "act-skip", IntentKind::Entry);
    skipped.skip_reason = Some("cooldown".into());
    t.intents().create(skipped).await.unwrap();

    let a = t
        .intents()
        .trader_activity(owner.id, trader.id, session_start)
        .await
        .unwrap();
    assert_eq!(a.executed_since, 3);
    let last = t.intents().get(owner.id, ids[2]).await.unwrap().created_at;
    assert_eq!(a.last_executed_at, Some(last));
    assert_eq!(a.last_add_at, Some(last));
    let later = t
        .intents()
        .trader_activity(owner.id, trader.id, Utc::now() + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(later.executed_since, 0);

    // A later entry: the last executed moves to it, the last add stays on the add.
    let entry = t
        .intents()
        .create(intent(
            &owner,
            &sub,
            Some(trader.id),
            "act-3",
            IntentKind::Entry,
        ))
        .await
        .unwrap()
        .intent()
        .id;
    t.intents()
        .transition(owner.id, entry, IntentStatus::Sent, IntentUpdate::default())
        .await
        .unwrap();
    let after_entry = t
        .intents()
        .trader_activity(owner.id, trader.id, session_start)
        .await
        .unwrap();
    let entry_at = t.intents().get(owner.id, entry).await.unwrap().created_at;
    assert_eq!(after_entry.executed_since, 4);
    assert_eq!(after_entry.last_executed_at, Some(entry_at));
    assert_eq!(after_entry.last_add_at, Some(last));

    // The executor reads the same with the exposure gates, in one statement.
    let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
    for engaged in [false, true] {
        t.risk()
            .set_account_kill(owner.id, sub.id, engaged, None)
            .await
            .unwrap();
        let (activity, gates) = t
            .intents()
            .signal_filters(trader.id, session_start, &sub, day)
            .await
            .unwrap();
        assert_eq!(activity, after_entry);
        assert_eq!(gates, t.risk().exposure_gates(&sub, day).await.unwrap());
        assert_eq!(
            (gates.kill_switch, gates.daily_loss_breached),
            (engaged, false)
        );
    }
}

async fn the_latest_resting_entry_is_found_until_a_later_intent_follows(t: &TestStore) {
    let owner = t.user("rest@example.com").await;
    let (_, sub) = t.account(&owner, "rest").await;
    let (recorder, _) = t.recorder(&owner, "rest").await;
    let trader = t.trader(owner.id, recorder.id, sub.id).await;
    let since = Utc::now() - Duration::minutes(1);
    let sent = |key: &'static str, resting: bool| {
        let new = intent(&owner, &sub, Some(trader.id), key, IntentKind::Entry);
        async move {
            let id = t.intents().create(new).await.unwrap().intent().id;
            t.intents()
                .advance(
                    owner.id,
                    id,
                    IntentStatus::Sent,
                    IntentUpdate {
                        decided: Some(Decided {
                            kind: IntentKind::Entry,
                            contract: Some("MNQZ6".into()),
                            side: Some(Side::Buy),
                            quantity: 1,
                            plan: serde_json::json!({}),
                            resting_entry: resting,
                        }),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            id
        }
    };
    let activity = || async {
        t.intents()
            .trader_activity(owner.id, trader.id, since)
            .await
            .unwrap()
    };
    sent("rest-1", false).await;
    assert_eq!(activity().await.resting_entry, None);
    let resting = sent("rest-2", true).await;
    assert_eq!(activity().await.resting_entry, Some(resting));
    // A skipped intent does not cancel it: the resting entry is still the latest executed.
    let mut skipped = intent(
        &owner,
        &sub,
        Some(trader.id),
        "rest-skip",
        IntentKind::Entry,
    );
    skipped.skip_reason = Some("cooldown".into());
    t.intents().create(skipped).await.unwrap();
    assert_eq!(activity().await.resting_entry, Some(resting));
    // The next executed intent cancelled it first: nothing is resting any more.
    sent("rest-3", false).await;
    assert_eq!(activity().await.resting_entry, None);
}

/// The trader-activity reads run before every order. With only `(user_id, created_at)` and
/// `(trader_id, created_at)`, PostgreSQL's generic plan intersected both and read every intent
/// of the owner (migration `m20261122_000003`). The statement below has the shape of
/// `Intents::trader_activity`'s "last executed" read, prepared and planned generically as sqlx
/// does after a few executions, over an owner with many intents of another trader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trader_activity_reads_one_traders_rows_on_postgres() {
    let t = TestStore::new(Engine::Postgres).await;
    let owner = t.user("plan@example.com").await;
    let (recorder, _) = t.recorder(&owner, "plan").await;
    let mut traders = Vec::new();
    let mut subs = Vec::new();
    for name in ["plan-a", "plan-b"] {
        let (_, sub) = t.account(&owner, name).await;
        let trader = t.trader(owner.id, recorder.id, sub.id).await;
        traders.push(trader.id);
        subs.push(sub);
    }
    let busy = t
        .intents()
        .create(intent(
            &owner,
            &subs[0],
            Some(traders[0]),
            "plan-0",
            IntentKind::Entry,
        ))
        .await
        .unwrap()
        .intent()
        .id;
    // 5,000 more intents of the owner's other trader, copied from that row.
    t.raw_strings(&format!(
        "WITH copied AS (INSERT INTO order_intents \
           SELECT gen_random_uuid(), user_id, sub_account_id, trader_id, signal_id, source, \
                  'plan-copy-' || n, kind, symbol, contract, side, quantity, filled_quantity, \
                  average_fill_price, settings, plan, 'accepted', status_reason, \
                  created_at - n * interval '1 second', updated_at, sent_at, completed_at \
           FROM order_intents, generate_series(1, 5000) AS n WHERE id = '{}' RETURNING 1) \
         SELECT COUNT(*)::text FROM copied",
        busy.0
    ))
    .await;
    // One connection for the session settings and the prepared statement: a transaction.
    let txn = t.connection().begin().await.unwrap();
    txn.execute_unprepared(
        "SET LOCAL plan_cache_mode = force_generic_plan; \
         PREPARE last_executed(uuid, uuid, text, text, text, text, text) AS \
           SELECT created_at FROM order_intents \
           WHERE user_id = $1 AND trader_id = $2 AND source = $3 \
             AND status IN ($4, $5, $6, $7) ORDER BY created_at DESC LIMIT 1",
    )
    .await
    .unwrap();
    let plan = txn
        .query_all_raw(Statement::from_string(
            DatabaseBackend::Postgres,
            format!(
                "EXPLAIN EXECUTE last_executed('{}', '{}', 'signal', 'sent', 'unknown', \
                 'accepted', 'filled')",
                owner.id.0, traders[1].0
            ),
        ))
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.try_get_by_index::<String>(0).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    txn.execute_unprepared("DEALLOCATE last_executed")
        .await
        .unwrap();
    txn.commit().await.unwrap();
    assert!(
        plan.contains("ix_order_intents_trader_user_time") && !plan.contains("BitmapAnd"),
        "the trader-activity read does not use the (trader_id, user_id, created_at) index:\n{plan}"
    );
}

async fn the_decision_is_stored_with_the_move_to_sent(t: &TestStore) {
    let owner = t.user("decided@example.com").await;
    let (_, sub) = t.account(&owner, "decided").await;
    let mut new = intent(&owner, &sub, None, "sig-d:trader-d", IntentKind::Entry);
    new.contract = None;
    new.side = None;
    new.quantity = 0;
    new.plan = serde_json::Value::Null;
    let id = new.id;
    t.intents().create(new).await.unwrap();
    let plan = serde_json::json!({"kind": "add", "size": {"qty": 2}});
    let sent = t
        .intents()
        .transition(
            owner.id,
            id,
            IntentStatus::Sent,
            IntentUpdate {
                decided: Some(Decided {
                    kind: IntentKind::Add,
                    contract: Some("MNQZ6".into()),
                    side: Some(Side::Sell),
                    quantity: 2,
                    plan: plan.clone(),
                    resting_entry: false,
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let i = sent.intent();
    assert_eq!(i.status, IntentStatus::Sent);
    assert_eq!(
        (i.kind, i.contract.as_deref(), i.side, i.quantity, &i.plan),
        (IntentKind::Add, Some("MNQZ6"), Some(Side::Sell), 2, &plan)
    );
    assert!(i.sent_at.is_some());
}

/// An intent decided on its first delivery is one insert, straight into `sent` with its
/// decision; only the first writer of its id or key may send; `find` says whether it exists.
async fn a_decided_intent_is_inserted_as_sent_once(t: &TestStore) {
    let owner = t.user("sent-once@example.com").await;
    let other = t.user("sent-once-other@example.com").await;
    let (_, sub) = t.account(&owner, "sent-once").await;
    let mut new = intent(&owner, &sub, None, "sig-s:trader-s", IntentKind::Entry);
    new.plan = serde_json::Value::Null;
    let id = new.id;
    assert_eq!(t.intents().find(owner.id, id).await.unwrap(), None);
    let plan = serde_json::json!({"kind": "entry", "size": {"qty": 2}});
    let decided = Decided {
        kind: IntentKind::Flip,
        contract: Some("MNQH7".into()),
        side: Some(Side::Sell),
        quantity: 2,
        plan: plan.clone(),
        resting_entry: true,
    };
    assert!(
        t.intents()
            .create_sent(&new, decided.clone())
            .await
            .unwrap()
    );
    let i = t.intents().find(owner.id, id).await.unwrap().unwrap();
    assert_eq!(i.status, IntentStatus::Sent);
    assert_eq!(
        (i.kind, i.contract.as_deref(), i.side, i.quantity, &i.plan),
        (IntentKind::Flip, Some("MNQH7"), Some(Side::Sell), 2, &plan)
    );
    assert_eq!(i.sent_at, Some(i.created_at));
    assert_eq!(i.settings, Settings::default());
    // A second delivery (same id and key) writes nothing and may not send.
    assert!(
        !t.intents()
            .create_sent(&new, decided.clone())
            .await
            .unwrap()
    );
    // The same key under another id (a conflict on the key alone) neither.
    let mut same_key = new.clone();
    same_key.id = IntentId::new();
    assert!(
        !t.intents()
            .create_sent(&same_key, decided.clone())
            .await
            .unwrap()
    );
    assert_eq!(t.intents().find(owner.id, same_key.id).await.unwrap(), None);
    // An intent recorded `pending` first (it waited) is not inserted over either: it moves on
    // by `advance`.
    let waited = intent(&owner, &sub, None, "sig-w:trader-w", IntentKind::Entry);
    t.intents().create(waited.clone()).await.unwrap();
    assert!(!t.intents().create_sent(&waited, decided).await.unwrap());
    assert_eq!(
        t.intents().status(owner.id, waited.id).await.unwrap(),
        IntentStatus::Pending
    );
    // Another owner does not see it.
    assert_eq!(t.intents().find(other.id, id).await.unwrap(), None);
}

/// The executor's first read of an intent: its sub-account with the account, and the intent's
/// state (none before it is recorded), in one statement under the owner's scope.
async fn the_sub_account_for_an_intent_comes_with_the_intents_state(t: &TestStore) {
    let owner = t.user("for-intent@example.com").await;
    let other = t.user("for-intent-other@example.com").await;
    let (_, sub) = t.account(&owner, "for-intent").await;
    let new = intent(&owner, &sub, None, "sig-f:trader-f", IntentKind::Entry);
    let accounts = t.accounts();
    let (s, a, status) = accounts
        .sub_account_for_intent(owner.id, sub.id, new.id)
        .await
        .unwrap();
    let (s2, a2) = accounts
        .sub_account_with_account(owner.id, sub.id)
        .await
        .unwrap();
    assert_eq!((&s, &a, status), (&s2, &a2, None));
    t.intents().create(new.clone()).await.unwrap();
    let state = |owner: jt_store::UserId| async move {
        accounts
            .sub_account_for_intent(owner, sub.id, new.id)
            .await
            .map(|(_, _, status)| status)
    };
    assert_eq!(state(owner.id).await.unwrap(), Some(IntentStatus::Pending));
    t.intents()
        .advance(
            owner.id,
            new.id,
            IntentStatus::Sent,
            IntentUpdate::default(),
        )
        .await
        .unwrap();
    assert_eq!(state(owner.id).await.unwrap(), Some(IntentStatus::Sent));
    // Another owner reads neither the sub-account nor the intent, not even through a
    // sub-account of their own.
    assert!(matches!(
        state(other.id).await,
        Err(StoreError::NotFound { .. })
    ));
    let (_, other_sub) = t.account(&other, "for-intent-other").await;
    let (_, _, status) = accounts
        .sub_account_for_intent(other.id, other_sub.id, new.id)
        .await
        .unwrap();
    assert_eq!(status, None);
}

/// `advance` is `transition` without the row: same guard, same no-op on a replay, same errors,
/// and the decision it carries is stored.
async fn advance_moves_like_transition_without_the_row(t: &TestStore) {
    use IntentStatus::*;
    let owner = t.user("adv@example.com").await;
    let (_, sub) = t.account(&owner, "adv").await;
    let id = t
        .intents()
        .create(intent(&owner, &sub, None, "adv-1", IntentKind::Entry))
        .await
        .unwrap()
        .intent()
        .id;
    assert!(matches!(
        t.intents()
            .advance(owner.id, id, Accepted, IntentUpdate::default())
            .await,
        Err(StoreError::InvalidTransition {
            from: Pending,
            to: Accepted,
            ..
        })
    ));
    let plan = serde_json::json!({"kind": "entry", "qty": 4});
    let decided = IntentUpdate {
        decided: Some(Decided {
            kind: IntentKind::Flip,
            contract: Some("MNQZ6".into()),
            side: Some(Side::Sell),
            quantity: 4,
            plan: plan.clone(),
            resting_entry: false,
        }),
        ..Default::default()
    };
    assert_eq!(
        t.intents()
            .advance(owner.id, id, Sent, decided.clone())
            .await
            .unwrap(),
        Advanced::Applied
    );
    assert_eq!(
        t.intents()
            .advance(owner.id, id, Sent, decided)
            .await
            .unwrap(),
        Advanced::AlreadyThere
    );
    let i = t.intents().get(owner.id, id).await.unwrap();
    assert_eq!(
        (i.status, i.kind, i.side, i.quantity, &i.plan),
        (Sent, IntentKind::Flip, Some(Side::Sell), 4, &plan)
    );
    assert!(i.sent_at.is_some());
    // Nothing moves back to pending: refused, the row unchanged.
    assert!(matches!(
        t.intents()
            .advance(owner.id, id, Pending, IntentUpdate::default())
            .await,
        Err(StoreError::InvalidTransition {
            from: Sent,
            to: Pending,
            ..
        })
    ));
    assert_eq!(t.intents().status(owner.id, id).await.unwrap(), Sent);
    t.intents()
        .advance(owner.id, id, Accepted, IntentUpdate::default())
        .await
        .unwrap();
    t.intents()
        .advance(
            owner.id,
            id,
            Filled,
            IntentUpdate {
                reason: Some("filled at once".into()),
                average_fill_price: Some(dec!(21000.25)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let i = t.intents().get(owner.id, id).await.unwrap();
    assert_eq!(
        (i.status, i.average_fill_price, i.status_reason.as_deref()),
        (Filled, Some(dec!(21000.25)), Some("filled at once"))
    );
    assert!(i.completed_at.is_some());
    // Another owner's intent is not found, never moved.
    let other = t.user("adv2@example.com").await;
    assert!(matches!(
        t.intents()
            .advance(other.id, id, Cancelled, IntentUpdate::default())
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        t.intents()
            .advance(owner.id, IntentId::new(), Failed, IntentUpdate::default())
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

/// `settle` is `advance` and `record_execution` in one write: both take effect, replays are
/// harmless, a refused move still records the attempt, and another owner's intent is untouched.
async fn settle_moves_and_records_the_attempt(t: &TestStore) {
    use IntentStatus::*;
    let owner = t.user("settle@example.com").await;
    let (_, sub) = t.account(&owner, "settle").await;
    let new_intent = |key: &str| intent(&owner, &sub, None, key, IntentKind::Entry);
    let id = t
        .intents()
        .create(new_intent("settle-1"))
        .await
        .unwrap()
        .intent()
        .id;
    t.intents()
        .advance(owner.id, id, Sent, IntentUpdate::default())
        .await
        .unwrap();
    let start = Utc::now();
    let exec = |intent, attempt, outcome| NewExecution {
        id: ExecutionId::new(),
        owner: owner.id,
        intent,
        attempt,
        started_at: start,
        finished_at: Some(start + Duration::milliseconds(42)),
        outcome,
        broker_order_ids: vec!["7001".into()],
        fill_price: Some(dec!(21400.25)),
        filled_quantity: None,
        error_kind: None,
        failure_reason: None,
    };
    let filled = || {
        Some((
            Filled,
            IntentUpdate {
                reason: Some("filled".into()),
                average_fill_price: Some(dec!(21400.25)),
                ..Default::default()
            },
        ))
    };
    t.intents()
        .settle(
            owner.id,
            id,
            filled(),
            Some(exec(id, 1, ExecutionOutcome::Filled)),
        )
        .await
        .unwrap();
    let i = t.intents().get(owner.id, id).await.unwrap();
    assert_eq!(
        (i.status, i.average_fill_price, i.status_reason.as_deref()),
        (Filled, Some(dec!(21400.25)), Some("filled"))
    );
    assert!(i.completed_at.is_some());
    let execs = t.intents().executions(owner.id, id).await.unwrap();
    assert_eq!(execs.len(), 1);
    assert_eq!(
        (execs[0].attempt, execs[0].outcome, execs[0].latency_ms),
        (1, ExecutionOutcome::Filled, Some(42))
    );
    // The same end again (a redelivery): already there, the attempt already recorded.
    t.intents()
        .settle(
            owner.id,
            id,
            filled(),
            Some(exec(id, 1, ExecutionOutcome::Filled)),
        )
        .await
        .unwrap();
    assert_eq!(t.intents().executions(owner.id, id).await.unwrap().len(), 1);
    // A move the state refuses: the error says so, and the attempt is still recorded.
    assert!(matches!(
        t.intents()
            .settle(
                owner.id,
                id,
                Some((Accepted, IntentUpdate::default())),
                Some(exec(id, 2, ExecutionOutcome::Failed)),
            )
            .await,
        Err(StoreError::InvalidTransition {
            from: Filled,
            to: Accepted,
            ..
        })
    ));
    assert_eq!(t.intents().executions(owner.id, id).await.unwrap().len(), 2);
    assert_eq!(t.intents().status(owner.id, id).await.unwrap(), Filled);
    // A move no state may precede (back to `pending`), alone: refused as such, not a
    // database error.
    assert!(matches!(
        t.intents()
            .settle(owner.id, id, Some((Pending, IntentUpdate::default())), None)
            .await,
        Err(StoreError::InvalidTransition {
            from: Filled,
            to: Pending,
            ..
        })
    ));

    // Each write alone.
    let skipped = t
        .intents()
        .create(new_intent("settle-2"))
        .await
        .unwrap()
        .intent()
        .id;
    t.intents()
        .settle(
            owner.id,
            skipped,
            Some((
                Skipped,
                IntentUpdate {
                    reason: Some("cooldown".into()),
                    ..Default::default()
                },
            )),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        t.intents().status(owner.id, skipped).await.unwrap(),
        Skipped
    );
    assert!(
        t.intents()
            .executions(owner.id, skipped)
            .await
            .unwrap()
            .is_empty()
    );
    t.intents()
        .settle(
            owner.id,
            skipped,
            None,
            Some(exec(skipped, 1, ExecutionOutcome::Failed)),
        )
        .await
        .unwrap();
    assert_eq!(
        t.intents()
            .executions(owner.id, skipped)
            .await
            .unwrap()
            .len(),
        1
    );

    // Another owner's intent: not found, neither moved nor recorded.
    let other = t.user("settle2@example.com").await;
    let pending = t
        .intents()
        .create(new_intent("settle-3"))
        .await
        .unwrap()
        .intent()
        .id;
    let mut foreign = exec(pending, 1, ExecutionOutcome::Failed);
    foreign.owner = other.id;
    assert!(matches!(
        t.intents()
            .settle(
                other.id,
                pending,
                Some((Failed, IntentUpdate::default())),
                Some(foreign),
            )
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        t.intents().status(owner.id, pending).await.unwrap(),
        Pending
    );
    assert!(
        t.intents()
            .executions(owner.id, pending)
            .await
            .unwrap()
            .is_empty()
    );
    // An execution row of another intent is refused before anything is written.
    assert!(matches!(
        t.intents()
            .settle(
                owner.id,
                pending,
                Some((Failed, IntentUpdate::default())),
                Some(exec(id, 3, ExecutionOutcome::Failed)),
            )
            .await,
        Err(StoreError::Invalid { .. })
    ));
    assert_eq!(
        t.intents().status(owner.id, pending).await.unwrap(),
        Pending
    );
}

on_both_engines!(
    a_decided_intent_is_inserted_as_sent_once,
    the_sub_account_for_an_intent_comes_with_the_intents_state,
    an_intent_written_by_a_newer_build_is_read_without_its_unknown_settings,
    the_decision_is_stored_with_the_move_to_sent,
    idempotency_key_is_unique,
    transitions_are_guarded,
    transition_table_is_enforced,
    skipped_intents_record_their_reason,
    executions_are_recorded_once_per_attempt,
    trader_activity_counts_executed_signals,
    the_latest_resting_entry_is_found_until_a_later_intent_follows,
    advance_moves_like_transition_without_the_row,
    settle_moves_and_records_the_attempt,
);

/// A rolling deploy: a newer executor recorded the intent with a setting this build does not
/// know; this build resumes it (its settings are read tolerantly, unlike a recorder's).
async fn an_intent_written_by_a_newer_build_is_read_without_its_unknown_settings(t: &TestStore) {
    let owner = t.user("newer@example.com").await;
    let (_, sub) = t.account(&owner, "newer").await;
    let new = intent(&owner, &sub, None, "newer:1", IntentKind::Entry);
    let id = new.id;
    t.intents().create(new).await.unwrap();
    let db = t.connection();
    let json_set = match t.engine {
        Engine::Postgres => {
            "UPDATE order_intents SET settings = jsonb_set(settings, '{added_later}', 'true')"
        }
        Engine::Sqlite => {
            "UPDATE order_intents SET settings = json_set(settings, '$.added_later', json('true'))"
        }
    };
    db.execute_unprepared(json_set).await.unwrap();
    let read = t.intents().get(owner.id, id).await.unwrap();
    assert_eq!(read.settings, Settings::default());
}
