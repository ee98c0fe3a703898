//! What each source's intent comes to at the broker: the decision read against the account's
//! real position, as a [`jt_trading::Choreography`] with what the store records about it.
//!
//! One module per source: [`signal`] (a trader's share of a signal: the domain's decision,
//! per-alert overrides, filters, risk sizing, resting entries), [`sources`] (control, manual,
//! copy, repair). The plan is stored with the intent before the first broker call
//! ([`Stored`]): a resumed intent performs the same steps, never decides again. A signal's plan
//! keeps the shape it was stored in before sources existed, so an intent sent before a deploy
//! resumes after it.

mod rules;
pub(crate) mod signal;
pub(crate) mod sources;

use jt_broker::{AccountId, Broker, BrokerError};
use jt_domain::Side;
use jt_messages::{IntentAction, IntentMessage};
use jt_store::repo::accounts::{BrokerAccount, SubAccount};
use jt_store::{IntentKind, Store, StoreError};
use jt_trading::{Choreography, Done, Step};
use serde::{Deserialize, Serialize};

/// What a decision reads.
pub(crate) struct Inputs<'a> {
    /// The intent.
    pub msg: &'a IntentMessage,
    /// The store (filter state, kill switches, breaches).
    pub store: &'a Store,
    /// The broker login.
    pub broker: &'a dyn Broker,
    /// The broker's id of the sub-account.
    pub account: &'a AccountId,
    /// The sub-account.
    pub sub: &'a SubAccount,
    /// Its login's record (`require_brackets`).
    pub login: &'a BrokerAccount,
}

/// What a decision came to before anything is sent.
pub(crate) enum Choice {
    /// Nothing to send; the reason is recorded (`skipped`).
    Skip(String),
    /// The plan to store and perform.
    Plan(Box<Plan>),
}

/// Why there is no plan.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// A broker read failed: the lifecycle maps it (retry, wait, fail).
    Broker(BrokerError),
    /// A store read failed.
    Store(StoreError),
    /// The intent cannot be carried out as asked (the reason, for the trader).
    Failed(String),
}

impl From<BrokerError> for Refusal {
    fn from(e: BrokerError) -> Self {
        Refusal::Broker(e)
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::Store(e)
    }
}

/// A decided plan: what is stored with the intent, and the row's description of it.
pub(crate) struct Plan {
    /// Stored with the intent (`plan`), read back on resume.
    pub stored: Stored,
    /// What the intent does.
    pub kind: IntentKind,
    /// The broker contract's name, when it trades one.
    pub contract: Option<String>,
    /// The side of the main order.
    pub side: Option<Side>,
    /// The quantity of the main order.
    pub quantity: u32,
    /// It places a resting entry (cancelled by the trader's next signal).
    pub resting_entry: bool,
}

/// The plan as stored with an intent.
#[derive(Debug, Clone)]
pub(crate) enum Stored {
    /// A signal's plan, in the shape signals always stored.
    Signal(Box<signal::StoredPlan>),
    /// Any other source's: the steps and the words for their success.
    Steps(StepsPlan),
}

/// A plan stored as its steps.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StepsPlan {
    /// The steps.
    pub choreography: Choreography,
    /// The intent's summary when every step is done.
    pub summary: String,
}

impl Stored {
    /// The stored plan of `msg`, as read back on resume.
    pub(crate) fn read(msg: &IntentMessage, json: &serde_json::Value) -> Result<Stored, String> {
        match &msg.action {
            IntentAction::Signal(_) => serde_json::from_value::<signal::StoredPlan>(json.clone())
                .map(|p| Stored::Signal(Box::new(p)))
                .map_err(|e| e.to_string()),
            // A flatten sent before sources existed stored only its kind.
            IntentAction::Control(_)
                if json.get("kind").and_then(|k| k.as_str()) == Some("flatten_account") =>
            {
                Ok(Stored::Steps(sources::flatten_account_plan()))
            }
            _ => serde_json::from_value::<StepsPlan>(json.clone())
                .map(Stored::Steps)
                .map_err(|e| e.to_string()),
        }
    }

    /// What is written with the intent.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        // Serialising plain data types cannot fail; `Null` would only lose the resume data.
        match self {
            Stored::Signal(p) => serde_json::to_value(p.as_ref()),
            Stored::Steps(p) => serde_json::to_value(p),
        }
        .unwrap_or(serde_json::Value::Null)
    }

    /// The steps to perform.
    ///
    /// # Errors
    /// A signal's plan missing the order of one of its steps.
    pub(crate) fn choreography(&self, msg: &IntentMessage) -> Result<Choreography, String> {
        match self {
            Stored::Signal(p) => p.choreography(&msg.client_order_id()),
            Stored::Steps(p) => Ok(p.choreography.clone()),
        }
    }

    /// The intent's summary once the steps are done.
    pub(crate) fn summary(&self, done: &Done) -> String {
        let mut summary = match self {
            Stored::Signal(p) => p.summary(done),
            Stored::Steps(p) => p.summary.clone(),
        };
        for note in &done.notes {
            summary.push_str("; ");
            summary.push_str(note);
        }
        summary
    }
}

/// Decides `inputs.msg` by its source; an entry is then held against the account's prop-firm
/// rules ([`rules`]).
pub(crate) async fn decide(inputs: &Inputs<'_>) -> Result<Choice, Refusal> {
    let choice = match &inputs.msg.action {
        IntentAction::Signal(s) => signal::decide(inputs, s).await,
        IntentAction::Control(c) => sources::control(inputs, c).await,
        IntentAction::Manual(m) => sources::manual(inputs, m).await,
        IntentAction::Copy(c) => sources::copy(inputs, c).await,
        IntentAction::Repair(r) => sources::repair(inputs, r).await,
    }?;
    rules::check(inputs, choice).await
}

/// A plan of `steps` on `contract`, stored as its steps.
pub(crate) fn steps_plan(
    contract: Option<&jt_broker::Contract>,
    steps: Vec<Step>,
    main: Option<String>,
    summary: String,
) -> StepsPlan {
    StepsPlan {
        choreography: Choreography {
            contract: contract.cloned(),
            steps,
            main,
        },
        summary,
    }
}
