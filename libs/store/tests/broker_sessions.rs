//! Shared broker sessions on both engines: the stored session round-trips sealed, an older
//! session never replaces a newer one, the renewal/login claim admits exactly one of many
//! concurrent claimants, and three Tradovate "processes" sharing one account's row log in once
//! at the simulator.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use common::TestStore;
use jt_broker::session_store::{Acquired, claim_or_adopt};
use jt_broker::{Broker, ClaimAttempt, ClaimConfig, ClaimHolder, SessionOutcome, StoredSession};
use jt_store::repo::accounts::BrokerCredentials;
use jt_store::repo::auth::User;
use jt_store::repo::broker_sessions::{BrokerSession, SessionSaved};
use jt_store::{BrokerAccountId, Secret, StoreError, StoreSessions};
use jt_tradovate::{
    Brand, Credentials, Environment as TvEnvironment, LoginRegistry, TradovateBroker,
    TradovateConfig,
};

fn session(token: &str, obtained_at: DateTime<Utc>) -> BrokerSession {
    BrokerSession {
        access_token: Secret::new(format!("access-{token}-plaintext")),
        md_access_token: Some(Secret::new(format!("md-{token}-plaintext"))),
        obtained_at,
        expires_at: obtained_at + chrono::Duration::minutes(90),
        broker_user_id: Some("2468".into()),
    }
}

async fn raw_bytes(t: &TestStore, column: &str) -> Vec<u8> {
    use sea_orm::{ConnectionTrait, Statement};
    let db = t.connection();
    db.query_one_raw(Statement::from_string(
        db.get_database_backend(),
        format!("SELECT {column} FROM broker_accounts"),
    ))
    .await
    .unwrap()
    .expect("one account")
    .try_get_by_index::<Vec<u8>>(0)
    .unwrap()
}

async fn stored_access(t: &TestStore, owner: &User, account: BrokerAccountId) -> Secret {
    t.broker_sessions()
        .load(owner.id, account)
        .await
        .unwrap()
        .expect("a stored session")
        .access_token
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

async fn a_session_round_trips_sealed_and_never_goes_back_in_time(t: &TestStore) {
    let owner = t.user("sess@example.com").await;
    let (account, _) = t.account(&owner, "shared").await;
    let sessions = t.broker_sessions();
    assert_eq!(sessions.load(owner.id, account).await.unwrap(), None);

    t.accounts()
        .mark_needs_reauth(owner.id, account, "Incorrect username or password")
        .await
        .unwrap();
    let before = t.accounts().get(owner.id, account).await.unwrap();
    let now = Utc::now();
    let first = session("first", now);
    assert_eq!(
        sessions.save(owner.id, account, &first).await.unwrap(),
        SessionSaved::Stored
    );
    let loaded = sessions.load(owner.id, account).await.unwrap().unwrap();
    assert_eq!(loaded.access_token, first.access_token);
    assert_eq!(loaded.md_access_token, first.md_access_token);
    assert_eq!(loaded.obtained_at, now.trunc_subsecs(6));
    assert_eq!(loaded.expires_at, first.expires_at.trunc_subsecs(6));
    assert_eq!(loaded.broker_user_id.as_deref(), Some("2468"));

    let after = t.accounts().get(owner.id, account).await.unwrap();
    assert!(!after.needs_reauth, "a working login clears the mark");
    assert!(after.reauth_reason.is_none());
    assert!(after.has_access_token);
    assert_eq!(after.token_expires_at, Some(loaded.expires_at));
    assert_eq!(
        after.updated_at, before.updated_at,
        "a new token is not a change of the account (the executor rebuilds brokers on it)"
    );

    // Sealed at rest.
    assert!(!contains(
        &raw_bytes(t, "access_token_enc").await,
        "access-first-plaintext"
    ));
    assert!(!contains(
        &raw_bytes(t, "md_access_token_enc").await,
        "md-first-plaintext"
    ));

    // A session obtained earlier (a slow process saving late) leaves the newer one.
    let older = session("older", now - chrono::Duration::seconds(30));
    assert_eq!(
        sessions.save(owner.id, account, &older).await.unwrap(),
        SessionSaved::Superseded
    );
    assert_eq!(stored_access(t, &owner, account).await, first.access_token);
    let newer = session("newer", now + chrono::Duration::seconds(1));
    sessions.save(owner.id, account, &newer).await.unwrap();
    assert_eq!(stored_access(t, &owner, account).await, newer.access_token);

    // A token stored through the older call has no market-data token but a usable age.
    let legacy = Secret::new("legacy-token");
    t.accounts()
        .store_access_token(
            owner.id,
            account,
            &legacy,
            Some(Utc::now() + chrono::Duration::minutes(80)),
        )
        .await
        .unwrap();
    let loaded = sessions.load(owner.id, account).await.unwrap().unwrap();
    assert_eq!(loaded.access_token, legacy);
    assert_eq!(loaded.md_access_token, None);

    // New credentials forget the session.
    t.accounts()
        .set_credentials(owner.id, account, &BrokerCredentials::default())
        .await
        .unwrap();
    assert_eq!(sessions.load(owner.id, account).await.unwrap(), None);

    // Another owner sees nothing and writes nothing.
    let other = t.user("other@example.com").await;
    assert!(matches!(
        sessions.load(other.id, account).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        sessions.save(other.id, account, &first).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        sessions
            .try_claim(other.id, account, "x", Duration::from_secs(1))
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn the_claim_is_exclusive_lapses_and_respects_a_lock_out(t: &TestStore) {
    let owner = t.user("claim@example.com").await;
    let (account, _) = t.account(&owner, "claimed").await;
    let s = t.broker_sessions();
    let ttl = Duration::from_secs(30);
    let ClaimAttempt::Granted { until: a_until } =
        s.try_claim(owner.id, account, "a", ttl).await.unwrap()
    else {
        panic!("a free claim is granted");
    };
    assert_eq!(
        s.try_claim(owner.id, account, "b", ttl).await.unwrap(),
        ClaimAttempt::Busy { until: a_until }
    );
    // The holder may extend its own claim.
    assert!(matches!(
        s.try_claim(owner.id, account, "a", ttl).await.unwrap(),
        ClaimAttempt::Granted { until } if until >= a_until
    ));
    assert!(
        !s.release_claim(owner.id, account, "b").await.unwrap(),
        "b holds nothing"
    );
    assert!(s.release_claim(owner.id, account, "a").await.unwrap());
    // A claim that is not released lapses by itself.
    assert!(matches!(
        s.try_claim(owner.id, account, "b", Duration::from_millis(50))
            .await
            .unwrap(),
        ClaimAttempt::Granted { .. }
    ));
    assert!(matches!(
        s.try_claim(owner.id, account, "c", ttl).await.unwrap(),
        ClaimAttempt::Busy { .. }
    ));
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(matches!(
        s.try_claim(owner.id, account, "c", ttl).await.unwrap(),
        ClaimAttempt::Granted { .. }
    ));
    s.release_claim(owner.id, account, "c").await.unwrap();

    // A captcha lock-out stops every claim until it ends.
    let locked = (Utc::now() + chrono::Duration::minutes(60)).trunc_subsecs(6);
    t.accounts()
        .lock_until(owner.id, account, locked, "captcha")
        .await
        .unwrap();
    assert_eq!(
        s.try_claim(owner.id, account, "a", ttl).await.unwrap(),
        ClaimAttempt::LockedOut { until: locked }
    );
    t.accounts()
        .lock_until(
            owner.id,
            account,
            Utc::now() - chrono::Duration::seconds(1),
            "over",
        )
        .await
        .unwrap();
    assert!(matches!(
        s.try_claim(owner.id, account, "a", ttl).await.unwrap(),
        ClaimAttempt::Granted { .. }
    ));
}

async fn of_many_concurrent_claimants_exactly_one_wins(t: &TestStore) {
    let owner = t.user("race@example.com").await;
    let (account, _) = t.account(&owner, "raced").await;
    for round in 0..5 {
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = t.store.clone();
                tokio::spawn(async move {
                    store
                        .broker_sessions()
                        .try_claim(
                            owner.id,
                            account,
                            &format!("holder-{round}-{i}"),
                            Duration::from_secs(30),
                        )
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut winners = Vec::new();
        for (i, task) in tasks.into_iter().enumerate() {
            if let ClaimAttempt::Granted { .. } = task.await.unwrap() {
                winners.push(i);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let winner = format!("holder-{round}-{}", winners[0]);
        assert!(
            t.broker_sessions()
                .release_claim(owner.id, account, &winner)
                .await
                .unwrap()
        );
    }
}

async fn processes_sharing_the_row_log_in_once_and_adopt_the_winners_token(t: &TestStore) {
    let owner = t.user("procs@example.com").await;
    let (account, _) = t.account(&owner, "procs").await;
    let acc = t.accounts().get(owner.id, account).await.unwrap();
    let config = ClaimConfig {
        ttl: Duration::from_secs(5),
        poll_interval: Duration::from_millis(20),
        max_wait: Duration::from_secs(6),
    };
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let store = StoreSessions::for_account(&t.store, &acc);
            let config = config.clone();
            tokio::spawn(async move {
                let holder = ClaimHolder::new();
                match claim_or_adopt(&store, &holder, &config, true, |s| s.is_live(Utc::now()))
                    .await
                    .unwrap()
                {
                    Acquired::Claimed { claim, stored } => {
                        assert!(stored.is_none());
                        // The "login" takes a while; the others must wait for it.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        let now = Utc::now();
                        store
                            .save(&StoredSession {
                                access_token: format!("won-by-{holder}"),
                                md_access_token: None,
                                obtained_at: now,
                                expires_at: now + chrono::Duration::minutes(90),
                                user_id: None,
                            })
                            .await
                            .unwrap();
                        claim.release().await;
                        (true, format!("won-by-{holder}"))
                    }
                    Acquired::Adopt(s) => (false, s.access_token),
                    Acquired::Busy { until } => panic!("gave up waiting (claim until {until})"),
                }
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    assert_eq!(
        results.iter().filter(|(won, _)| *won).count(),
        1,
        "{results:?}"
    );
    let token = &results[0].1;
    assert!(results.iter().all(|(_, t)| t == token), "{results:?}");

    // What the trait reports lands on the account.
    let shared = StoreSessions::for_account(&t.store, &acc);
    shared
        .report_auth_failure("Incorrect username or password")
        .await
        .unwrap();
    let a = t.accounts().get(owner.id, account).await.unwrap();
    assert!(a.needs_reauth);
    assert_eq!(
        a.reauth_reason.as_deref(),
        Some("Incorrect username or password")
    );
    let until = (Utc::now() + chrono::Duration::minutes(60)).trunc_subsecs(6);
    shared.report_locked_out(until, "captcha").await.unwrap();
    assert_eq!(
        shared
            .try_claim(&ClaimHolder::new(), Duration::from_secs(1))
            .await
            .unwrap(),
        ClaimAttempt::LockedOut { until }
    );
}

async fn three_tradovate_processes_on_one_account_log_in_once(t: &TestStore) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = jt_sim::Sim::start(jt_sim::SimConfig::default())
        .await
        .expect("the simulator (jt-sim) must start on loopback for this test");
    sim.admin()
        .create_user(&jt_sim::admin::NewUser {
            name: "rowan".into(),
            password: "rowan-pw".into(),
            accounts: vec!["ROWAN1".into()],
            ..jt_sim::admin::NewUser::default()
        })
        .unwrap();
    // A slow token request keeps the winner's claim held while the others arrive.
    sim.admin()
        .add_fault(jt_sim::faults::FaultSpec {
            kind: jt_sim::faults::FaultKind::Latency { ms: 300 },
            user: Some("rowan".into()),
            account: None,
            endpoint: Some("auth/accesstokenrequest".into()),
            count: None,
        })
        .unwrap();
    let owner = t.user("rowan@example.com").await;
    let (account, _) = t.account(&owner, "rowan").await;
    let acc = t.accounts().get(owner.id, account).await.unwrap();
    let brokers: Vec<TradovateBroker> = (0..3)
        .map(|_| {
            let mut config = TradovateConfig::new(
                Brand::Tradovate,
                TvEnvironment::Demo,
                Credentials {
                    name: "rowan".into(),
                    password: "rowan-pw".into(),
                    ..Credentials::default()
                },
            )
            .with_base_url(&sim.base_url())
            .unwrap()
            .with_session_store(StoreSessions::for_account(&t.store, &acc));
            config.session.claim = ClaimConfig {
                ttl: Duration::from_secs(5),
                poll_interval: Duration::from_millis(20),
                max_wait: Duration::from_secs(6),
            };
            TradovateBroker::with(config, &LoginRegistry::isolated()).unwrap()
        })
        .collect();
    let (a, b, c) = tokio::join!(brokers[0].login(), brokers[1].login(), brokers[2].login());
    let outcomes: Vec<SessionOutcome> = [a, b, c].into_iter().map(|r| r.unwrap().outcome).collect();
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == SessionOutcome::LoggedIn)
            .count(),
        1,
        "{outcomes:?}"
    );
    let stored = t
        .broker_sessions()
        .load(owner.id, account)
        .await
        .unwrap()
        .expect("the winner stored its session");
    for b in &brokers {
        assert_eq!(
            b.http().session().current().unwrap().access,
            stored.access_token.expose()
        );
        assert_eq!(b.accounts().await.unwrap()[0].name, "ROWAN1");
    }
    assert!(stored.md_access_token.is_some());
    sim.shutdown().await;
}

on_both_engines!(
    a_session_round_trips_sealed_and_never_goes_back_in_time,
    the_claim_is_exclusive_lapses_and_respects_a_lock_out,
    of_many_concurrent_claimants_exactly_one_wins,
    processes_sharing_the_row_log_in_once_and_adopt_the_winners_token,
    three_tradovate_processes_on_one_account_log_in_once,
);
