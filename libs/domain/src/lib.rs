//! Pure trading logic: instruments, prices, settings, intents, filters, sessions, copy deltas
//! and paper P&L (`shared/design/DOMAIN.md` §2–§6, §10).
//!
//! This crate must stay free of I/O, async and clocks: every function takes the instant or
//! state it needs as an argument, so every rule can be tested exactly. Money and prices are
//! [`rust_decimal::Decimal`], never binary floats. No input can make it panic: arithmetic on
//! user-supplied figures is checked and answered with typed errors.
//!
//! The executor's path through it: [`settings::Settings::resolve`] → [`decision::decide`]
//! (which runs [`filters::check_entry`]) → for each [`decision::PlanStep`],
//! [`bracket::build_entry`] or [`bracket::dca_protection`] (built on [`quantity`] and
//! [`prices`]). [`session`] labels trading days and market hours, [`copy`] sizes followers,
//! [`paper`] keeps the recorder's paper record. A parsed alert and its per-alert instructions
//! are [`alert`] (parsed by `jt-alerts`), applied to a trader's settings by [`overrides`];
//! [`freshness`] says when an alert is too old to execute. Decisions taken where the design is
//! silent are in `docs/domain.md`.

pub mod alert;
pub mod bracket;
pub mod copy;
pub mod decision;
pub mod exact;
pub mod filters;
pub mod freshness;
pub mod instrument;
pub mod order;
pub mod overrides;
pub mod paper;
pub mod prices;
pub mod propfirm;
pub mod quantity;
pub mod session;
pub mod settings;
pub mod signal;
pub mod skip;
pub mod tolerant;
pub mod types;

pub use alert::{
    AlertRisk, EntryKind, EntryOrderSpec, ExitLevel, MarketPosition, PositionChange, RiskSizing,
    Signal, StopOverride,
};
pub use bracket::{BracketBuildError, DcaProtection, EntryOrder, StopOrder};
pub use copy::{CopyAction, FollowerSizing};
pub use decision::{AlertSize, BrokerPosition, Decision, DecisionInput, IntentPlan, PlanStep};
pub use filters::FilterState;
pub use freshness::{AgeFrom, Freshness};
pub use instrument::{Instrument, InstrumentError};
pub use order::{BracketOrder, OrderKind, OrderRequest};
pub use overrides::OverrideError;
pub use paper::{ClosedTrade, PaperContext, PaperError, PaperPosition};
pub use prices::PriceError;
pub use quantity::{QuantityError, SizedEntry};
pub use settings::{Settings, SettingsOverrides};
pub use signal::SignalAction;
pub use skip::SkipReason;
pub use types::{Contracts, Direction, Price, Side};
