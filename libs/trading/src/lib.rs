//! Order choreography: the sequences of broker calls that carry out a trading decision on one
//! sub-account, over `&dyn Broker` — used by the executor for every intent source (signal,
//! copy, manual, control, repair) and meant for every service that trades (risk, reconciler,
//! copier, API).
//!
//! - [`Desk`]: one sub-account at its broker, with one method per operation — an entry with its
//!   bracket (or resting), a DCA add's protection replaced for the whole position with the
//!   fill-price retries of DOMAIN §5.5 ([`StepError::Unprotected`] when the average never
//!   comes), close (and wait until flat before a flip's entry), a partial exit's protection
//!   resized ([`protection`]) and restored when the reduction is refused, flatten, cancel
//!   working orders, place once by client order id, the trailing → fixed stop fallback, and a
//!   missing take-profit or stop repaired for the position held.
//! - [`Choreography`]: the steps of one intent as plain data (stored with the intent before the
//!   first call), and [`run`], which performs them in order and *resumes* them: when the main
//!   order's client order id is found at the broker, every step up to it was done and is never
//!   repeated (a flip's close is never sent again after its new entry exists); every other step
//!   is safe to repeat.
//!
//! Outcomes are typed: [`Done`] with what was placed, [`Failed`] with a [`StepError`] and the
//! steps already done. What an error means for an intent (retry, wait, reject, give up) is the
//! caller's decision.
//!
//! What this crate must not do: touch the store or the bus (it neither records nor publishes;
//! `scripts/check-layers` holds the rule), know a venue (only the `Broker` trait), decide what
//! to trade (quantities and distances come from `jt-domain`), or send a money-moving call twice
//! blindly (an ambiguous outcome is returned as the broker's `UnknownOutcome`).

mod desk;
mod plan;
pub mod protection;

pub use desk::{Desk, Moved, Protected, Repaired, Timing, check_entry, check_time_in_force};
pub use plan::{Choreography, Done, Failed, Step, run};

use jt_broker::BrokerError;

/// Why a step could not be done.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StepError {
    /// The broker said no, or could not be reached: the caller maps it (throttled, unknown
    /// outcome, rejected…).
    #[error(transparent)]
    Broker(BrokerError),
    /// A reduction was refused after the protection had been resized for it; the stops were
    /// restored to the position the broker still holds, or could not be (`restored` says
    /// which, in words for the trader).
    #[error("{error}; {restored}")]
    ReduceRefused {
        /// The refusal.
        error: BrokerError,
        /// What happened to the protection.
        restored: String,
        /// The position may be left with less stop than it holds.
        under_protected: bool,
    },
    /// A close has not shown as flat within the wait: the entry that follows it waits.
    #[error("the close has not shown as flat yet; the new entry waits")]
    NotFlat,
    /// The position's average price never came: no take-profit or stop was placed.
    #[error("{0}")]
    Unprotected(String),
    /// Part of a flatten or a batch cancel failed (the rest was done): try again.
    #[error("{0}")]
    Incomplete(String),
    /// The choreography cannot be carried out as written (a bug, or a setting that cannot make
    /// the order).
    #[error("{0}")]
    Invalid(String),
    /// The caller asked to stop (the account's execution lock was lost).
    #[error("the account's execution lock was lost; another replica may run it")]
    Interrupted,
}

impl From<BrokerError> for StepError {
    fn from(e: BrokerError) -> Self {
        StepError::Broker(e)
    }
}
