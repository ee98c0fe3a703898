//! The `dead_letter` notification: every message a consumer gave up on is told to the
//! operators — the channels of every approved admin subscribing to `dead_letter` — and to its
//! owner's channels when the subject names one.
//!
//! The durable `notify` consumer of DEAD_LETTERS runs on every replica (the server shares the
//! letters). A letter is read as a [`Letter`]: its `Jt-Dlq-*` headers and the original's type,
//! id and subject, never its body, so the payload carries no order, credential or alert text.
//! The owner is found from the original's subject alone (no decoding, one indexed lookup):
//! SIGNALS → the recorder's owner (`jt.signals.<recorder>`); ORDERS, BROKER_EVENTS,
//! EXECUTIONS → the sub-account's owner (`jt.<kind>.<sub-account>…`); COMMANDS → the
//! sub-account's owner (`jt.cmd.<kind>.<sub-account>`). Any other stream (its own letters, the
//! guards) goes to the operators only. The de-duplication key is the letter's own id,
//! `dlq:<stream>:<consumer>:<sequence>`, so a redelivered letter is queued once per channel.

use jt_bus::subject::SubjectToken;
use jt_bus::{Bus, ConsumeOptions, Definitions, Incoming, Letter, Outcome, Subjects};
use jt_store::{Store, UserId};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The event kind.
pub const DEAD_LETTER_EVENT: &str = "dead_letter";

/// What a letter's subject says its owner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerRef {
    /// A recorder (a signal).
    Recorder(Uuid),
    /// A sub-account (an intent, a broker event, an execution, a command).
    SubAccount(Uuid),
}

/// The owner reference in the original subject of `letter`, for the streams whose subjects
/// name one; `None` otherwise (or when the token is not an id).
#[must_use]
pub fn owner_ref(defs: &Definitions, letter: &Letter) -> Option<OwnerRef> {
    let token = |i| {
        let t = Subjects::token(&letter.original_subject, i)?;
        let raw = SubjectToken::from_escaped(t).ok()?.unescape();
        Uuid::parse_str(&raw).ok()
    };
    let s = letter.stream.as_str();
    if s == defs.signals.name {
        token(2).map(OwnerRef::Recorder)
    } else if s == defs.broker_events.name || s == defs.executions.name {
        token(2).map(OwnerRef::SubAccount)
    } else if s == defs.orders.name || s == defs.commands.name {
        // `jt.orders.<partition>.<account>`, `jt.cmd.<kind>.<account>`.
        token(3).map(OwnerRef::SubAccount)
    } else {
        None
    }
}

/// The notification's payload: where the letter came from, why, and what the original was
/// (type and ids), never its body.
#[must_use]
pub fn payload(letter: &Letter, sequence: u64) -> serde_json::Value {
    let what = letter.original_type.as_deref().unwrap_or("message");
    json!({
        "event": DEAD_LETTER_EVENT,
        "title": format!(
            "A {what} was given up on by {} ({}) after {} attempts",
            letter.consumer, letter.stream, letter.attempts
        ),
        "stream": letter.stream,
        "consumer": letter.consumer,
        "sequence": letter.original_sequence,
        "dead_letter_sequence": sequence,
        "reason": letter.reason,
        "attempts": letter.attempts,
        "message_type": letter.original_type,
        "message_id": letter.original_id,
        "subject": letter.original_subject,
        "action": "list and retry it with `jt dead-letters`",
    })
}

/// Queues the notification of one letter: the admins' channels, then the owner's. Returns the
/// deliveries queued (0 for a redelivered letter).
///
/// # Errors
/// Database errors (the letter is tried again).
pub async fn notify(
    store: &Store,
    defs: &Definitions,
    key: &str,
    letter: &Letter,
    sequence: u64,
) -> jt_store::StoreResult<u64> {
    let n = store.notifications();
    let mut to: Vec<UserId> = n.admins().await?;
    let owner = match owner_ref(defs, letter) {
        Some(OwnerRef::Recorder(id)) => n.recorder_owner(id).await?,
        Some(OwnerRef::SubAccount(id)) => n.sub_account_owner(id).await?,
        None => None,
    };
    if let Some(o) = owner
        && !to.contains(&o)
    {
        to.push(o);
    }
    let body = payload(letter, sequence);
    let mut queued = 0;
    for user in to {
        queued += n.enqueue(user, DEAD_LETTER_EVENT, key, &body).await?;
    }
    Ok(queued)
}

/// Runs the `notify` consumer of DEAD_LETTERS until `stop`.
///
/// # Errors
/// The consumer is not provisioned or the server cannot be reached at start.
pub async fn run(
    store: Store,
    bus: Bus,
    defs: Definitions,
    options: ConsumeOptions,
    stop: CancellationToken,
) -> Result<(), jt_bus::BusError> {
    let consumer = defs.dead_letter_notify.clone();
    bus.consume(&consumer, options, stop, move |msg: Incoming<Letter>| {
        let (store, defs) = (store.clone(), defs.clone());
        async move {
            let letter = &msg.envelope.payload;
            let key = msg.envelope.id.as_str().to_owned();
            match notify(&store, &defs, &key, letter, msg.stream_sequence).await {
                Ok(n) => {
                    tracing::info!(%key, deliveries = n, "dead letter notification queued");
                    Outcome::Ack
                }
                // A letter of this consumer's own is settled after one try: retrying it to its
                // end would dead-letter it again onto the stream it reads.
                Err(e) if letter.stream == defs.dead_letters.name => {
                    tracing::error!(%key, error = %e, "the notification of a dead letter of dead letters could not be queued; dropped");
                    Outcome::Ack
                }
                Err(e) => Outcome::retry(format!("queue the dead_letter notification: {e}")),
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use jt_bus::Namespace;

    use super::*;

    fn letter(defs: &Definitions, stream: &str, subject: String) -> Letter {
        let _ = defs;
        Letter {
            stream: stream.to_owned(),
            consumer: "c".into(),
            reason: "r".into(),
            attempts: 5,
            original_sequence: 1,
            original_subject: subject,
            original_type: Some("order-intent".into()),
            original_id: Some("intent:1".into()),
        }
    }

    #[test]
    fn the_owner_is_read_from_the_subjects_that_name_one() {
        let defs = Definitions::new(&Namespace::isolated("ab12").unwrap());
        let s = defs.namespace.subjects();
        let id = Uuid::now_v7();
        let text = id.to_string();
        let cases = [
            (
                &defs.signals.name,
                s.signal(&text).unwrap(),
                Some(OwnerRef::Recorder(id)),
            ),
            (
                &defs.orders.name,
                s.order(&text).unwrap(),
                Some(OwnerRef::SubAccount(id)),
            ),
            (
                &defs.broker_events.name,
                s.broker_event(&text, "fill").unwrap(),
                Some(OwnerRef::SubAccount(id)),
            ),
            (
                &defs.executions.name,
                s.execution(&text).unwrap(),
                Some(OwnerRef::SubAccount(id)),
            ),
            (
                &defs.commands.name,
                s.command("flatten", &text).unwrap(),
                Some(OwnerRef::SubAccount(id)),
            ),
            // Not an id, or a stream whose subjects name no owner: operators only.
            (&defs.orders.name, s.order("DEMO1").unwrap(), None),
            (
                &defs.dead_letters.name,
                s.dead_letter(&defs.orders.name, "execute"),
                None,
            ),
        ];
        for (stream, subject, want) in cases {
            let l = letter(&defs, stream, subject.clone());
            assert_eq!(owner_ref(&defs, &l), want, "{stream} {subject}");
        }
    }

    #[test]
    fn the_payload_describes_the_letter_without_its_body() {
        let defs = Definitions::new(&Namespace::production());
        let l = letter(&defs, "ORDERS", "jt.orders.x".into());
        let p = payload(&l, 9);
        assert_eq!(p["stream"], "ORDERS");
        assert_eq!(p["dead_letter_sequence"], 9);
        assert_eq!(p["message_id"], "intent:1");
        assert_eq!(
            p["title"],
            "A order-intent was given up on by c (ORDERS) after 5 attempts"
        );
    }
}
