//! The one error type of every broker call: plain data (`Clone`, `Serialize`) so it can travel
//! in events and be stored with an execution, and each variant says what the caller must do.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::capabilities::Feature;

/// What went wrong with a broker call, and so what the caller does next.
///
/// | variant | the request was executed? | the caller … |
/// |---|---|---|
/// | `AuthExpired` | no | re-authenticates (`Broker::login`) and retries |
/// | `NeedsReauth` | no | marks the account "needs re-authentication" and stops trading it |
/// | `RateLimited` | no | waits `retry_after`, then retries |
/// | `Penalty` | no | waits `wait`, then retries (the adapter resends with the ticket) |
/// | `LockedOut` | no | stops using this login until `until` and alerts |
/// | `Rejected` | no | records the reason; never retries the same request blindly |
/// | `UnknownContract` / `UnknownAccount` | no | fixes the mapping; nothing was sent |
/// | `InvalidRequest` / `Unsupported` | no (never sent) | falls back explicitly or refuses the intent |
/// | `UnknownOutcome` | **maybe** | reconciles (order by client id, position) before anything else |
/// | `Transport` | no for reads; writes are never `Transport` after sending | retries reads later |
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BrokerError {
    /// The session (access token) is expired or was revoked (for example evicted by a third
    /// login: Tradovate keeps at most two sessions per user).
    #[error("broker session expired or revoked: {detail}; re-authenticate and retry")]
    AuthExpired {
        /// What the broker said.
        detail: String,
    },
    /// Renewal and credential login both failed: a person must re-enter the credentials.
    #[error("re-authentication failed ({reason}); the login needs its credentials checked")]
    NeedsReauth {
        /// Why the last attempt failed.
        reason: String,
    },
    /// The broker throttles this login (HTTP 429/423, or our own per-token budget is spent).
    #[error("rate limited; retry after {} ms", retry_after.as_millis())]
    RateLimited {
        /// How long to wait before the next call.
        #[serde(with = "duration_ms")]
        retry_after: Duration,
    },
    /// A penalty ticket (`p-ticket`) that outlasted the adapter's own patience: wait, then call
    /// again; the adapter resends with the ticket.
    #[error("penalty ticket: wait {} ms and retry", wait.as_millis())]
    Penalty {
        /// The ticket the next request must carry.
        ticket: String,
        /// How long the broker asked us to wait.
        #[serde(with = "duration_ms")]
        wait: Duration,
    },
    /// The broker demanded a captcha: this login is locked out; do not call before `until`.
    #[error("login locked out until {until} (captcha demanded); alert and stop trying")]
    LockedOut {
        /// The earliest moment to try again.
        until: DateTime<Utc>,
    },
    /// The broker refused the request (risk check, invalid price, closed session, …).
    #[error("rejected by the broker: {reason}")]
    Rejected {
        /// The broker's reason text.
        reason: String,
        /// The broker's machine-readable code (`failureReason`), if any.
        code: Option<String>,
    },
    /// The symbol does not resolve to a tradable contract at this broker.
    #[error("unknown contract {symbol:?}")]
    UnknownContract {
        /// What was looked up.
        symbol: String,
    },
    /// The account id is not one of this login's accounts.
    #[error("unknown account {account:?} for this login")]
    UnknownAccount {
        /// The account id given.
        account: String,
    },
    /// The request may or may not have been executed (timeout or reset after sending, 5xx) and
    /// looking it up by client order id did not settle it. Reconcile (order by client id,
    /// position) before placing anything else for this account and contract.
    #[error("outcome of {operation} unknown ({detail}); reconcile before placing anything else")]
    UnknownOutcome {
        /// The operation (`place_order`, `place_bracket`, `cancel_order`, …).
        operation: String,
        /// The client order id to look up, when the operation had one.
        client_order_id: Option<String>,
        /// What happened and what the look-up found.
        detail: String,
    },
    /// The call could not reach the broker, or its answer could not be understood. Never used
    /// for a write that may have been executed (that is `UnknownOutcome`).
    #[error("transport: {detail}")]
    Transport {
        /// What failed.
        detail: String,
    },
    /// The request was refused locally before sending: it breaks an invariant.
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// Which invariant.
        reason: String,
    },
    /// The broker cannot do this natively; the caller must refuse or fall back explicitly.
    #[error("not supported by this broker: {feature}")]
    Unsupported {
        /// The missing capability.
        feature: Feature,
    },
}

/// The closed set of error kinds, for metric labels and matching without fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerErrorKind {
    /// [`BrokerError::AuthExpired`].
    AuthExpired,
    /// [`BrokerError::NeedsReauth`].
    NeedsReauth,
    /// [`BrokerError::RateLimited`].
    RateLimited,
    /// [`BrokerError::Penalty`].
    Penalty,
    /// [`BrokerError::LockedOut`].
    LockedOut,
    /// [`BrokerError::Rejected`].
    Rejected,
    /// [`BrokerError::UnknownContract`].
    UnknownContract,
    /// [`BrokerError::UnknownAccount`].
    UnknownAccount,
    /// [`BrokerError::UnknownOutcome`].
    UnknownOutcome,
    /// [`BrokerError::Transport`].
    Transport,
    /// [`BrokerError::InvalidRequest`].
    InvalidRequest,
    /// [`BrokerError::Unsupported`].
    Unsupported,
}

impl BrokerErrorKind {
    /// A stable snake_case name (metric label values).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthExpired => "auth_expired",
            Self::NeedsReauth => "needs_reauth",
            Self::RateLimited => "rate_limited",
            Self::Penalty => "penalty",
            Self::LockedOut => "locked_out",
            Self::Rejected => "rejected",
            Self::UnknownContract => "unknown_contract",
            Self::UnknownAccount => "unknown_account",
            Self::UnknownOutcome => "unknown_outcome",
            Self::Transport => "transport",
            Self::InvalidRequest => "invalid_request",
            Self::Unsupported => "unsupported",
        }
    }
}

impl BrokerError {
    /// The kind of this error.
    #[must_use]
    pub fn kind(&self) -> BrokerErrorKind {
        match self {
            Self::AuthExpired { .. } => BrokerErrorKind::AuthExpired,
            Self::NeedsReauth { .. } => BrokerErrorKind::NeedsReauth,
            Self::RateLimited { .. } => BrokerErrorKind::RateLimited,
            Self::Penalty { .. } => BrokerErrorKind::Penalty,
            Self::LockedOut { .. } => BrokerErrorKind::LockedOut,
            Self::Rejected { .. } => BrokerErrorKind::Rejected,
            Self::UnknownContract { .. } => BrokerErrorKind::UnknownContract,
            Self::UnknownAccount { .. } => BrokerErrorKind::UnknownAccount,
            Self::UnknownOutcome { .. } => BrokerErrorKind::UnknownOutcome,
            Self::Transport { .. } => BrokerErrorKind::Transport,
            Self::InvalidRequest { .. } => BrokerErrorKind::InvalidRequest,
            Self::Unsupported { .. } => BrokerErrorKind::Unsupported,
        }
    }

    /// Whether the request may have been executed at the broker: the caller must reconcile
    /// before doing anything else for that account and contract.
    #[must_use]
    pub fn may_have_executed(&self) -> bool {
        matches!(self, Self::UnknownOutcome { .. })
    }

    /// How long to wait before the same call may succeed, when the broker said so.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => Some(*retry_after),
            Self::Penalty { wait, .. } => Some(*wait),
            Self::LockedOut { until } => Some((*until - Utc::now()).to_std().unwrap_or_default()),
            _ => None,
        }
    }

    /// A [`BrokerError::Transport`] with `detail`.
    #[must_use]
    pub fn transport(detail: impl Into<String>) -> Self {
        Self::Transport {
            detail: detail.into(),
        }
    }

    /// A [`BrokerError::InvalidRequest`] with `reason`.
    #[must_use]
    pub fn invalid(reason: impl Into<String>) -> Self {
        Self::InvalidRequest {
            reason: reason.into(),
        }
    }
}

/// Serialises a [`Duration`] as whole milliseconds (JSON-friendly, exact for our waits).
pub(crate) mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_plain_data_that_round_trip_through_json() {
        let errors = vec![
            BrokerError::RateLimited {
                retry_after: Duration::from_millis(1500),
            },
            BrokerError::Penalty {
                ticket: "t-1".into(),
                wait: Duration::from_secs(3),
            },
            BrokerError::UnknownOutcome {
                operation: "place_order".into(),
                client_order_id: Some("jt-1".into()),
                detail: "timeout".into(),
            },
            BrokerError::Unsupported {
                feature: Feature::BreakEven,
            },
        ];
        for e in errors {
            let json = serde_json::to_string(&e).unwrap();
            let back: BrokerError = serde_json::from_str(&json).unwrap();
            assert_eq!(back, e, "{json}");
        }
        let json = serde_json::to_value(BrokerError::RateLimited {
            retry_after: Duration::from_millis(1500),
        })
        .unwrap();
        assert_eq!(json["kind"], "rate_limited");
        assert_eq!(json["retry_after"], 1500);
    }

    #[test]
    fn only_unknown_outcome_may_have_executed() {
        assert!(
            BrokerError::UnknownOutcome {
                operation: "x".into(),
                client_order_id: None,
                detail: String::new()
            }
            .may_have_executed()
        );
        assert!(!BrokerError::transport("reset").may_have_executed());
        assert!(
            !BrokerError::Rejected {
                reason: "r".into(),
                code: None
            }
            .may_have_executed()
        );
    }
}
