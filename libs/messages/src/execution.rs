//! What the executor did about one intent, on EXECUTIONS (`jt.executions.<sub-account>`): for
//! the history in the API, the copier and operators.

use chrono::{DateTime, Utc};
use jt_bus::{Message, SubjectError, Subjects};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The final state of an intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    /// Every order of the plan was accepted (and the entry filled where it could be checked).
    Done,
    /// A rule or filter said no; nothing was sent.
    Skipped,
    /// The broker refused an order.
    Rejected,
    /// It could not be carried out (broker unreachable, credentials refused, unprotected…).
    Failed,
}

/// The outcome of one intent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionMessage {
    /// The intent.
    pub intent_id: Uuid,
    /// The signal that caused it, if any.
    pub signal_id: Option<Uuid>,
    /// The owner.
    pub owner_id: Uuid,
    /// The trader, if any.
    pub trader_id: Option<Uuid>,
    /// The sub-account.
    pub sub_account_id: Uuid,
    /// Outcome.
    pub status: ExecutionStatus,
    /// What was done (`entry`, `add`, `flip`, `close`, …) or why not.
    pub summary: String,
    /// Symbol traded.
    pub symbol: String,
    /// Broker order ids created.
    pub broker_order_ids: Vec<String>,
    /// Average fill price of the main order, when known.
    pub fill_price: Option<Decimal>,
    /// Milliseconds from the alert's receipt to the broker's acknowledgement of the main
    /// order (or to the decision, for a skip).
    pub latency_ms: i64,
    /// When the outcome was recorded.
    pub at: DateTime<Utc>,
}

impl ExecutionMessage {
    /// The message id: one outcome per intent.
    #[must_use]
    pub fn message_id(&self) -> String {
        format!("execution-{}", self.intent_id.simple())
    }
}

impl Message for ExecutionMessage {
    const TYPE: &'static str = "execution";
    const SCHEMA_VERSION: u32 = 1;

    fn subject(&self, subjects: &Subjects) -> Result<String, SubjectError> {
        subjects.execution(&self.sub_account_id.to_string())
    }
}
