//! History pages for the API: signals filtered by recorder, time and outcome, newest first,
//! with keyset cursors that neither skip nor repeat a signal, scoped to the owner; and the
//! one conditional insert that records a copy of an alert body as a `duplicate`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{Duration, TimeZone, Utc};
use jt_domain::SignalAction;
use jt_store::repo::signals::{NewSignal, SignalQuery};
use jt_store::{RecorderId, SignalId, SignalOutcome, UserId};

use common::TestStore;

async fn record(
    t: &TestStore,
    owner: UserId,
    recorder: RecorderId,
    at: chrono::DateTime<Utc>,
    outcome: SignalOutcome,
) -> SignalId {
    let id = SignalId::new();
    t.signals()
        .record(NewSignal {
            id,
            owner,
            recorder,
            received_at: at,
            alert_time: None,
            action: SignalAction::Long,
            ticker: Some("MNQ1!".into()),
            quantity: None,
            price: None,
            market_position: None,
            prev_market_position: None,
            payload: serde_json::json!({}),
            outcome,
            outcome_reason: None,
            age_ms: None,
            body_digest: None,
        })
        .await
        .unwrap();
    id
}

/// Records a signal of `recorder` at `at` with `digest`, as the fan-out does (outcome
/// accepted); returns its id and the outcome it was stored with.
async fn record_digest(
    t: &TestStore,
    owner: UserId,
    recorder: RecorderId,
    at: chrono::DateTime<Utc>,
    digest: Option<&str>,
) -> (SignalId, SignalOutcome) {
    let id = SignalId::new();
    let stored = t
        .signals()
        .record(signal_at(id, owner, recorder, at, digest))
        .await
        .unwrap();
    (id, stored)
}

fn signal_at(
    id: SignalId,
    owner: UserId,
    recorder: RecorderId,
    at: chrono::DateTime<Utc>,
    digest: Option<&str>,
) -> NewSignal {
    NewSignal {
        id,
        owner,
        recorder,
        received_at: at,
        alert_time: None,
        action: SignalAction::Long,
        ticker: Some("MNQ1!".into()),
        quantity: None,
        price: None,
        market_position: None,
        prev_market_position: None,
        payload: serde_json::json!({}),
        outcome: SignalOutcome::Accepted,
        outcome_reason: None,
        age_ms: Some(4),
        body_digest: digest.map(str::to_owned),
    }
}

async fn the_same_body_less_than_a_second_apart_is_recorded_as_a_duplicate(t: &TestStore) {
    let owner = t.user("dupes@example.com").await;
    let (r1, _) = t.recorder(&owner, "one").await;
    let (r2, _) = t.recorder(&owner, "two").await;
    let (o, r) = (owner.id, r1.id);
    let ms = Duration::milliseconds;
    // x.900 and (x+1).100: the ingest published both (two second buckets); one signal.
    let x = Utc.with_ymd_and_hms(2026, 12, 1, 14, 0, 0).unwrap() + ms(900);
    let (first, stored) = record_digest(t, o, r, x, Some("jt1b-a")).await;
    assert_eq!(stored, SignalOutcome::Accepted);
    let (copy, stored) = record_digest(t, o, r, x + ms(200), Some("jt1b-a")).await;
    assert_eq!(stored, SignalOutcome::Duplicate);
    let row = t.signals().get(o, copy).await.unwrap();
    assert_eq!(row.outcome, SignalOutcome::Duplicate);
    assert!(
        row.outcome_reason
            .as_deref()
            .unwrap()
            .contains("less than 1 s"),
        "{row:?}"
    );
    assert_eq!(row.age_ms, Some(4), "the rest of the row as given");

    // Redeliveries change nothing and learn what the first recording stored.
    for (id, at, outcome) in [
        (copy, x + ms(200), SignalOutcome::Duplicate),
        (first, x, SignalOutcome::Accepted),
    ] {
        let stored = t
            .signals()
            .record(signal_at(id, o, r, at, Some("jt1b-a")))
            .await
            .unwrap();
        assert_eq!(stored, outcome, "redelivered");
    }

    // Fanned out before the one received first (two ingest replicas): still one signal.
    let (_, stored) = record_digest(t, o, r, x - ms(999), Some("jt1b-a")).await;
    assert_eq!(stored, SignalOutcome::Duplicate, "0.999 s earlier");

    // Not copies: another body, another recorder, an alert with `time` (no digest).
    for (recorder, digest) in [(r, Some("jt1b-b")), (r2.id, Some("jt1b-a")), (r, None)] {
        let (_, stored) = record_digest(t, o, recorder, x + ms(50), digest).await;
        assert_eq!(stored, SignalOutcome::Accepted, "{recorder:?} {digest:?}");
    }

    // A copy is compared with the signal kept, not with another copy: 0.9 s after a copy but
    // 1.8 s after the kept one is a signal of its own.
    let (_, stored) = record_digest(t, o, r, x + ms(900), Some("jt1b-a")).await;
    assert_eq!(stored, SignalOutcome::Duplicate, "0.9 s after the kept one");
    let (_, stored) = record_digest(t, o, r, x + ms(1_800), Some("jt1b-a")).await;
    assert_eq!(stored, SignalOutcome::Accepted, "1.8 s after the kept one");

    // Exactly 1 s apart is two signals (DCA adds are at least a second apart).
    let y = x + Duration::seconds(60);
    assert_eq!(
        record_digest(t, o, r, y, Some("jt1b-c")).await.1,
        SignalOutcome::Accepted
    );
    assert_eq!(
        record_digest(t, o, r, y + ms(1_000), Some("jt1b-c"))
            .await
            .1,
        SignalOutcome::Accepted
    );
    assert_eq!(
        record_digest(t, o, r, y + ms(1_999), Some("jt1b-c"))
            .await
            .1,
        SignalOutcome::Duplicate,
        "0.999 s after the second"
    );
}

async fn signal_pages_filter_and_continue_without_gaps(t: &TestStore) {
    let owner = t.user("pages@example.com").await;
    let other = t.user("other-pages@example.com").await;
    let (r1, _) = t.recorder(&owner, "one").await;
    let (r2, _) = t.recorder(&owner, "two").await;
    let (foreign, _) = t.recorder(&other, "theirs").await;
    let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 14, 0, 0).unwrap();
    let mut mine = Vec::new();
    // Five signals at one instant (a page boundary inside a tie), then five spread out.
    for i in 0..10 {
        let at = if i < 5 { t0 } else { t0 + Duration::seconds(i) };
        let outcome = if i % 3 == 0 {
            SignalOutcome::Filtered
        } else {
            SignalOutcome::Accepted
        };
        mine.push((at, record(t, owner.id, r1.id, at, outcome).await, outcome));
    }
    record(t, owner.id, r2.id, t0, SignalOutcome::Accepted).await;
    record(t, other.id, foreign.id, t0, SignalOutcome::Accepted).await;

    let mut seen = Vec::new();
    let mut q = SignalQuery {
        recorder: Some(r1.id),
        limit: 3,
        ..SignalQuery::default()
    };
    loop {
        let page = t.signals().page(owner.id, &q).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 3);
        let last = page.last().unwrap();
        q.after = Some((last.received_at, last.id));
        seen.extend(page.into_iter().map(|s| s.id));
    }
    let mut expected = mine.clone();
    expected.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.0.cmp(&a.1.0)));
    assert_eq!(
        seen,
        expected.iter().map(|e| e.1).collect::<Vec<_>>(),
        "every signal once, newest first"
    );

    let filtered = t
        .signals()
        .page(
            owner.id,
            &SignalQuery {
                outcome: Some(SignalOutcome::Filtered),
                limit: 50,
                ..SignalQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(filtered.len(), 4);
    assert!(
        filtered
            .iter()
            .all(|s| s.outcome == SignalOutcome::Filtered)
    );

    let window = t
        .signals()
        .page(
            owner.id,
            &SignalQuery {
                since: Some(t0 + Duration::seconds(6)),
                until: Some(t0 + Duration::seconds(9)),
                limit: 50,
                ..SignalQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(window.len(), 3, "since inclusive, until exclusive");

    let all = t
        .signals()
        .page(
            owner.id,
            &SignalQuery {
                limit: 500,
                ..SignalQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 11, "both recorders, never the other user's");
    assert!(all.iter().all(|s| s.owner == owner.id));
}

/// The user's switch on a sub-account survives the account test's re-sync (which only keeps
/// `active` in line with the broker).
async fn a_sub_accounts_switch_survives_a_resync(t: &TestStore) {
    let owner = t.user("switch@example.com").await;
    let (account, sub) = t.account(&owner, "sw").await;
    assert!(sub.enabled, "new sub-accounts are enabled");
    let off = t
        .accounts()
        .set_sub_account_enabled(owner.id, sub.id, false)
        .await
        .unwrap();
    assert!(!off.enabled);
    let listed = vec![jt_store::repo::accounts::BrokerSubAccount {
        broker_sub_account_id: sub.broker_sub_account_id.clone(),
        name: "renamed".into(),
    }];
    let synced = t
        .accounts()
        .sync_sub_accounts(owner.id, account, &listed)
        .await
        .unwrap();
    assert_eq!(
        (synced[0].name.as_str(), synced[0].enabled),
        ("renamed", false)
    );
    let (s, _) = t
        .accounts()
        .sub_account_with_account(owner.id, sub.id)
        .await
        .unwrap();
    assert!(!s.enabled, "the executor's read sees the switch");
    let on = t
        .accounts()
        .set_sub_account_enabled(owner.id, sub.id, true)
        .await
        .unwrap();
    assert!(on.enabled);
}

on_both_engines!(
    signal_pages_filter_and_continue_without_gaps,
    the_same_body_less_than_a_second_apart_is_recorded_as_a_duplicate,
    a_sub_accounts_switch_survives_a_resync,
);
