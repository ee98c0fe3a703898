//! One held login: its lease renewed, its event connection open, its events republished.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use jt_broker::{AccountId, BrokerEvent, ConnectionState, EventEnvelope, EventSubscription};
use jt_bus::{Envelope, Lease, MessageId, PublishError};
use jt_messages::{BrokerEventMessage, ReportedEvent};
use jt_store::SubAccountId;
use jt_store::repo::accounts::BrokerAccount;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{LinkState, LoginStatus, Shared, metrics};

/// The longest wait between two attempts to open a login's stream (broker access refused it,
/// or the stream ended).
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Holds `account`'s lease while serving its events, until `stop` or the lease is lost; then
/// releases the lease (when still ours) so another replica takes over at once.
pub(crate) async fn run(
    shared: Shared,
    account: BrokerAccount,
    mut lease: Lease,
    stop: CancellationToken,
) {
    let lost = CancellationToken::new();
    let id = account.id;
    lease
        .hold_while(serve(&shared, &account, &stop, &lost), &lost)
        .await;
    shared.drop_status(id).await;
    if lost.is_cancelled() {
        metrics::lease_lost();
        tracing::warn!(login = %id, "lease lost: the login's connection is closed here");
    } else if let Err(e) = lease.release().await {
        tracing::debug!(login = %id, error = %e, "lease not released (it expires on its own)");
    } else {
        tracing::info!(login = %id, "login released");
    }
}

struct Link {
    status: LoginStatus,
    /// Broker account id → the platform's sub-account.
    accounts: HashMap<AccountId, SubAccountId>,
}

async fn serve(
    shared: &Shared,
    account: &BrokerAccount,
    stop: &CancellationToken,
    lost: &CancellationToken,
) {
    let now = Utc::now();
    let mut link = Link {
        status: LoginStatus {
            broker_account_id: account.id,
            owner: shared.owner.clone(),
            state: LinkState::Connecting,
            since: now,
            last_event_at: None,
            reconnects: 0,
            reason: None,
            accounts: 0,
            published: 0,
        },
        accounts: HashMap::new(),
    };
    shared.put_status(&link.status).await;
    let mut failures = 0u32;
    loop {
        let subscription = tokio::select! {
            () = stop.cancelled() => return,
            () = lost.cancelled() => return,
            s = open(shared, account, &mut link) => s,
        };
        let outcome = match subscription {
            Ok(subscription) => {
                failures = 0;
                pump(shared, account, &mut link, subscription, stop, lost).await
            }
            Err(reason) => {
                failures += 1;
                Err(reason)
            }
        };
        let reason = match outcome {
            Ok(()) => return,
            Err(reason) => reason,
        };
        tracing::warn!(login = %account.id, %reason, "event stream not open");
        set_state(shared, &mut link, LinkState::Disconnected, Some(reason)).await;
        let wait = Duration::from_secs(1u64 << failures.min(5)).min(MAX_RETRY);
        tokio::select! {
            () = stop.cancelled() => return,
            () = lost.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Reads the login's sub-accounts and subscribes to them.
async fn open(
    shared: &Shared,
    account: &BrokerAccount,
    link: &mut Link,
) -> Result<EventSubscription, String> {
    let events = shared
        .brokers
        .events_for(account)
        .await
        .map_err(|e| e.to_string())?;
    refresh_accounts(shared, account, link).await?;
    let ids: Vec<AccountId> = link.accounts.keys().cloned().collect();
    events.subscribe(&ids).await.map_err(|e| e.to_string())
}

async fn refresh_accounts(
    shared: &Shared,
    account: &BrokerAccount,
    link: &mut Link,
) -> Result<bool, String> {
    let subs = shared
        .store
        .accounts()
        .sub_accounts(account.owner, account.id)
        .await
        .map_err(|e| format!("cannot read the sub-accounts: {e}"))?;
    let accounts: HashMap<AccountId, SubAccountId> = subs
        .into_iter()
        .filter(|s| s.active)
        .map(|s| (AccountId(s.broker_sub_account_id), s.id))
        .collect();
    let changed = accounts != link.accounts;
    link.accounts = accounts;
    link.status.accounts = link.accounts.len();
    Ok(changed)
}

/// Republishes the subscription's events until it ends (`Err`: why) or `stop`/`lost` (`Ok`).
async fn pump(
    shared: &Shared,
    account: &BrokerAccount,
    link: &mut Link,
    mut subscription: EventSubscription,
    stop: &CancellationToken,
    lost: &CancellationToken,
) -> Result<(), String> {
    let mut refresh = tokio::time::interval(shared.accounts_every);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    refresh.tick().await;
    // The status lives in a bucket with a TTL: rewrite it as often as the lease.
    let every = (shared.leases.ttl().unwrap_or(Duration::from_secs(15)) / 3)
        .max(Duration::from_millis(100));
    let mut keep = tokio::time::interval(every);
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = lost.cancelled() => return Ok(()),
            _ = keep.tick() => shared.put_status(&link.status).await,
            _ = refresh.tick() => {
                // New sub-accounts of the login: subscribe them (the adapter adds them to
                // the live connection).
                if refresh_accounts(shared, account, link).await == Ok(true) {
                    return Err("the login's sub-accounts changed: subscribing again".into());
                }
            }
            next = subscription.recv() => match next {
                Some(envelope) => handle(shared, account, link, &envelope).await,
                None => return Err("the event stream ended".into()),
            },
        }
    }
}

async fn handle(
    shared: &Shared,
    account: &BrokerAccount,
    link: &mut Link,
    envelope: &EventEnvelope,
) {
    match &envelope.event {
        BrokerEvent::Connection(ConnectionState::Connected) => {
            set_state(shared, link, LinkState::Connected, None).await;
        }
        BrokerEvent::Connection(ConnectionState::Connecting) => {
            set_state(shared, link, LinkState::Connecting, None).await;
        }
        BrokerEvent::Connection(ConnectionState::Reconnecting { reason, .. })
        | BrokerEvent::Connection(ConnectionState::Stopped { reason }) => {
            set_state(shared, link, LinkState::Disconnected, Some(reason.clone())).await;
        }
        _ => {
            link.status.last_event_at = Some(envelope.received_at);
        }
    }
    let targets: Vec<(AccountId, SubAccountId)> = match envelope.event.account() {
        Some(a) => match link.accounts.get(a) {
            Some(sub) => vec![(a.clone(), *sub)],
            None => {
                metrics::event(entity(&envelope.event), "unattributed");
                tracing::debug!(login = %account.id, account = %a, "event of an unknown sub-account");
                return;
            }
        },
        // The stream's own state concerns every sub-account of the login.
        None => link.accounts.iter().map(|(a, s)| (a.clone(), *s)).collect(),
    };
    for (broker_account, sub) in targets {
        let message = BrokerEventMessage {
            owner_id: account.owner,
            broker_account_id: account.id,
            sub_account_id: sub,
            account: broker_account,
            broker: account.broker,
            origin: envelope.origin,
            received_at: envelope.received_at,
            event: ReportedEvent::Known(envelope.event.clone()),
        };
        if publish(shared, &message).await {
            link.status.published += 1;
        }
    }
}

/// Publishes one message, again with the same id while the outcome is unknown; `true` when the
/// stream has it (new or a duplicate).
async fn publish(shared: &Shared, message: &BrokerEventMessage) -> bool {
    let entity = message.entity().to_owned();
    let id = match MessageId::new(message.message_id()) {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %e, "broker event without a usable message id");
            metrics::event(&entity, "failed");
            return false;
        }
    };
    // Each broker event starts a trace (a root: nothing upstream of the broker's stream has
    // one, and the login's long life must not make one trace of all its events): what the
    // copier and the risk monitor do about it continues there.
    let span = tracing::info_span!(
        parent: None,
        "broker_event",
        otel.kind = "producer",
        entity = %entity,
        broker = ?message.broker,
        sub_account = %message.sub_account_id,
    );
    let trace = span.in_scope(jt_runtime::telemetry::inject_context);
    let envelope =
        Envelope::new(id, message.clone()).with_trace(jt_bus::TraceContext::from_pairs(&trace));
    async {
        for attempt in 0..5u32 {
            match shared.bus.publish(&envelope).await {
                Ok(receipt) => {
                    metrics::event(
                        &entity,
                        if receipt.duplicate {
                            "duplicate"
                        } else {
                            "published"
                        },
                    );
                    return true;
                }
                Err(PublishError::Unconfirmed { .. }) if attempt < 4 => {
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, entity = %entity, "broker event not published");
                    metrics::event(&entity, "failed");
                    return false;
                }
            }
        }
        false
    }
    .instrument(span)
    .await
}

async fn set_state(shared: &Shared, link: &mut Link, state: LinkState, reason: Option<String>) {
    let was = link.status.state;
    if was == LinkState::Connected && state != LinkState::Connected {
        link.status.reconnects += 1;
        metrics::reconnect();
    }
    if was != state {
        link.status.state = state;
        link.status.since = Utc::now();
    }
    // The last reason stays after a reconnect: why it was last disconnected.
    if reason.is_some() {
        link.status.reason = reason;
    }
    shared.put_status(&link.status).await;
}

fn entity(event: &BrokerEvent) -> &'static str {
    match event {
        BrokerEvent::Fill(_) => "fill",
        BrokerEvent::Order(_) => "order",
        BrokerEvent::Position(_) => "position",
        BrokerEvent::CashBalance(_) => "cash",
        BrokerEvent::Connection(_) => "connection",
        BrokerEvent::Resync { .. } => "resync",
    }
}
