//! The ingest's side of the store: resolving a webhook token to its recorder, and the raw
//! webhook log, written in batches off the hot path.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;

use super::{ReadScope, at, from_json};
use crate::Store;
use crate::auth::token_hash;
use crate::entity::{recorders, webhook_log};
use crate::error::{StoreError, StoreResult, is_foreign_key_violation};
use crate::ids::{RecorderId, SignalId, UserId, WebhookLogId};
use crate::text::{escape_nul, strip_nul};

/// How much of a body the log keeps (DOMAIN.md §2).
pub const LOGGED_BODY_BYTES: usize = 8 * 1024;
/// Rows per INSERT statement (well under both engines' bound-parameter limits).
const BATCH_ROWS: usize = 200;

/// The recorder a webhook token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    /// The recorder.
    pub recorder: RecorderId,
    /// Its owner.
    pub owner: UserId,
    /// Its name (for logs).
    pub name: String,
    /// Its default ticker.
    pub symbol: Option<String>,
    /// Its `custom_ticker` setting: traded instead of the alert's ticker, so the alert's ticker
    /// need not be a futures symbol.
    pub custom_ticker: Option<String>,
}

/// One webhook request, as the ingest saw it.
#[derive(Debug, Clone)]
pub struct NewWebhookLog {
    /// Id made by the ingest (a retried batch does not duplicate rows).
    pub id: WebhookLogId,
    /// Arrival time.
    pub received_at: DateTime<Utc>,
    /// The token's recorder, if the token was known.
    pub recorder: Option<RecorderId>,
    /// Source address.
    pub source_ip: Option<String>,
    /// The raw body (the log keeps the first 8 KiB).
    pub body: String,
    /// HTTP status answered.
    pub status_code: u16,
    /// Short result (`queued`, `duplicate`, `invalid_json`, `unknown_token`…).
    pub result: String,
    /// A reason a person can read.
    pub reason: Option<String>,
    /// The signal it produced, if any.
    pub signal: Option<SignalId>,
}

/// A webhook log row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookLogEntry {
    /// Id.
    pub id: WebhookLogId,
    /// Arrival time.
    pub received_at: DateTime<Utc>,
    /// Recorder.
    pub recorder: Option<RecorderId>,
    /// Source address.
    pub source_ip: Option<String>,
    /// Body (first 8 KiB).
    pub body: String,
    /// Whether the body was cut.
    pub body_truncated: bool,
    /// HTTP status answered.
    pub status_code: u16,
    /// Short result.
    pub result: String,
    /// Reason.
    pub reason: Option<String>,
    /// Signal produced.
    pub signal: Option<SignalId>,
}

impl From<webhook_log::Model> for WebhookLogEntry {
    fn from(m: webhook_log::Model) -> Self {
        Self {
            id: WebhookLogId(m.id),
            received_at: m.received_at,
            recorder: m.recorder_id.map(RecorderId),
            source_ip: m.source_ip,
            body: m.body,
            body_truncated: m.body_truncated,
            status_code: u16::try_from(m.status_code).unwrap_or(0),
            result: m.result,
            reason: m.reason,
            signal: m.signal_id.map(SignalId),
        }
    }
}

/// Cuts `body` to at most [`LOGGED_BODY_BYTES`] on a character boundary.
fn truncate_body(body: &str) -> (String, bool) {
    if body.len() <= LOGGED_BODY_BYTES {
        return (body.to_string(), false);
    }
    let mut end = LOGGED_BODY_BYTES;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    (body[..end].to_string(), true)
}

/// The stored row: the body cut to [`LOGGED_BODY_BYTES`] and its NUL characters escaped, NUL
/// removed from the other texts (PostgreSQL refuses NUL: one such row would fail its batch).
fn row(e: &NewWebhookLog) -> webhook_log::Model {
    let (body, body_truncated) = truncate_body(&e.body);
    webhook_log::Model {
        id: e.id.0,
        received_at: at(e.received_at),
        recorder_id: e.recorder.map(|r| r.0),
        source_ip: e.source_ip.as_deref().map(|s| strip_nul(s).into_owned()),
        body: escape_nul(&body).into_owned(),
        body_truncated,
        status_code: i64::from(e.status_code),
        result: strip_nul(&e.result).into_owned(),
        reason: e.reason.as_deref().map(|s| strip_nul(s).into_owned()),
        signal_id: e.signal.map(|s| s.0),
    }
}

/// Webhook token resolution and the raw webhook log.
#[derive(Debug, Clone, Copy)]
pub struct Webhooks<'a> {
    pub(crate) store: &'a Store,
}

impl Webhooks<'_> {
    /// The recorder of a webhook token, `None` for an unknown token. The lookup is by the
    /// token's SHA-256, so its timing says nothing about stored tokens.
    ///
    /// # Errors
    /// Database errors only.
    pub async fn resolve(&self, token: &str) -> StoreResult<Option<WebhookTarget>> {
        recorders::Entity::find()
            .filter(recorders::Column::WebhookTokenHash.eq(token_hash(token)))
            .one(self.store.db())
            .await
            .map_err(|e| StoreError::db("recorder", e))?
            .map(webhook_target)
            .transpose()
    }

    /// [`Self::resolve`] for many tokens in one statement (the ingest's cache revalidates the
    /// tokens it serves this way): each token with its recorder, or `None` when no recorder has
    /// it (deleted, or its token rotated). At most [`RESOLVE_MANY_MAX`] tokens per call.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for more tokens than that; database errors.
    pub async fn resolve_many(
        &self,
        tokens: &[String],
    ) -> StoreResult<Vec<(String, Option<WebhookTarget>)>> {
        if tokens.len() > RESOLVE_MANY_MAX {
            return Err(StoreError::invalid(
                "tokens",
                format!(
                    "at most {RESOLVE_MANY_MAX} per look-up, not {}",
                    tokens.len()
                ),
            ));
        }
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        let hashes: Vec<Vec<u8>> = tokens.iter().map(|t| token_hash(t)).collect();
        let mut found: HashMap<Vec<u8>, WebhookTarget> = HashMap::with_capacity(tokens.len());
        for m in recorders::Entity::find()
            .filter(recorders::Column::WebhookTokenHash.is_in(hashes.iter().cloned()))
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("recorder", e))?
        {
            let hash = m.webhook_token_hash.clone();
            found.insert(hash, webhook_target(m)?);
        }
        Ok(tokens
            .iter()
            .zip(hashes)
            .map(|(token, hash)| (token.clone(), found.get(&hash).cloned()))
            .collect())
    }

    /// The SHA-256 of every recorder's webhook token (what [`crate::auth::token_hash`] gives):
    /// the ingest keeps them to tell a recorder's token from a probe without a look-up.
    ///
    /// # Errors
    /// Database errors.
    pub async fn token_hashes(&self) -> StoreResult<Vec<Vec<u8>>> {
        recorders::Entity::find()
            .select_only()
            .column(recorders::Column::WebhookTokenHash)
            .into_tuple::<Vec<u8>>()
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("recorder", e))
    }

    /// Writes a batch of log rows in few statements; returns how many were new. Rows already
    /// written (same id) are skipped, so a retried batch is harmless. A row whose recorder was
    /// deleted meanwhile is kept without its recorder rather than failing the batch.
    ///
    /// # Errors
    /// Database errors (retry the batch).
    pub async fn log_batch(&self, entries: &[NewWebhookLog]) -> StoreResult<u64> {
        let mut written = 0;
        for chunk in entries.chunks(BATCH_ROWS) {
            let insert =
                webhook_log::Entity::insert_many(chunk.iter().map(|e| row(e).into_active_model()))
                    .on_conflict(
                        OnConflict::column(webhook_log::Column::Id)
                            .do_nothing()
                            .to_owned(),
                    )
                    .exec_without_returning(self.store.db())
                    .await;
            match insert {
                Ok(n) => written += n,
                Err(e) if is_foreign_key_violation(&e) => {
                    written += self.insert_one_by_one(chunk).await?;
                }
                Err(e) => return Err(StoreError::db("webhook log", e)),
            }
        }
        Ok(written)
    }

    async fn insert_one_by_one(&self, chunk: &[NewWebhookLog]) -> StoreResult<u64> {
        let mut written = 0;
        for e in chunk {
            let mut model = row(e);
            for attempt in 0..2 {
                let r = webhook_log::Entity::insert(model.clone().into_active_model())
                    .on_conflict(
                        OnConflict::column(webhook_log::Column::Id)
                            .do_nothing()
                            .to_owned(),
                    )
                    .exec_without_returning(self.store.db())
                    .await;
                match r {
                    Ok(n) => {
                        written += n;
                        break;
                    }
                    Err(err) if attempt == 0 && is_foreign_key_violation(&err) => {
                        model.recorder_id = None;
                    }
                    Err(err) => return Err(StoreError::db("webhook log", err)),
                }
            }
        }
        Ok(written)
    }

    /// The latest log rows of one of the owner's recorders, newest first.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the owner has no such recorder.
    pub async fn recent(
        &self,
        scope: impl ReadScope,
        recorder: RecorderId,
        limit: u64,
    ) -> StoreResult<Vec<WebhookLogEntry>> {
        super::recorders::Recorders { store: self.store }
            .model(scope.owner(), recorder)
            .await?;
        Ok(webhook_log::Entity::find()
            .filter(webhook_log::Column::RecorderId.eq(recorder.0))
            .order_by_desc(webhook_log::Column::ReceivedAt)
            .limit(limit)
            .all(self.store.db())
            .await
            .map_err(|e| StoreError::db("webhook log", e))?
            .into_iter()
            .map(WebhookLogEntry::from)
            .collect())
    }
}

/// The most tokens one [`Webhooks::resolve_many`] takes (one statement's bind parameters stay
/// far below both engines' limits).
pub const RESOLVE_MANY_MAX: usize = 500;

fn webhook_target(m: recorders::Model) -> StoreResult<WebhookTarget> {
    let settings: jt_domain::Settings = from_json("recorder settings", m.id, m.settings)?;
    Ok(WebhookTarget {
        recorder: RecorderId(m.id),
        owner: UserId(m.user_id),
        name: m.name,
        symbol: m.symbol,
        custom_ticker: settings.custom_ticker,
    })
}

impl Store {
    /// Webhook token resolution and the raw webhook log (the ingest).
    #[must_use]
    pub fn webhooks(&self) -> Webhooks<'_> {
        Webhooks { store: self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_cut_at_8_kib_on_a_character_boundary() {
        let (b, cut) = truncate_body("short");
        assert_eq!((b.as_str(), cut), ("short", false));
        let long = "é".repeat(5000); // 10 000 bytes
        let (b, cut) = truncate_body(&long);
        assert!(cut);
        assert!(b.len() <= LOGGED_BODY_BYTES && b.len() >= LOGGED_BODY_BYTES - 1);
        assert!(b.chars().all(|c| c == 'é'));
    }
}
