//! An intent message as the store records it: its row before anything is decided (`pending`,
//! or `skipped` at the fan-out), with the source, idempotency key and kind the message says.

use jt_domain::SignalAction;
use jt_messages::{
    ControlAction, ControlScope, IntentAction, IntentMessage, ManualTrade, SourceKind,
};
use jt_store::repo::intents::NewIntent;
use jt_store::{IntentKind, IntentSource};

/// The store's source of an intent.
pub(crate) fn source_of(msg: &IntentMessage) -> IntentSource {
    match msg.source() {
        SourceKind::Signal => IntentSource::Signal,
        SourceKind::Copy => IntentSource::Copy,
        SourceKind::Manual => IntentSource::Manual,
        SourceKind::Control => IntentSource::Control,
        SourceKind::Repair => IntentSource::Reconcile,
    }
}

/// The row of an intent about to be decided (`skip`: recorded as skipped with that reason).
pub(crate) fn new_intent(msg: &IntentMessage, skip: Option<String>) -> NewIntent {
    NewIntent {
        id: msg.intent_id,
        owner: msg.owner_id,
        sub_account: msg.sub_account_id,
        trader: msg.trader_id(),
        signal: msg.signal_id(),
        source: source_of(msg),
        idempotency_key: msg.idempotency_key(),
        kind: kind_of(msg),
        symbol: msg.symbol().unwrap_or("*").to_string(),
        contract: None,
        side: None,
        quantity: 0,
        settings: msg.settings(),
        plan: serde_json::Value::Null,
        skip_reason: skip,
    }
}

/// The intent kind recorded before the broker's position is known (the execution records the
/// real one with its decision).
pub(crate) fn kind_of(msg: &IntentMessage) -> IntentKind {
    match &msg.action {
        IntentAction::Signal(s) => kind_of_action(s.action),
        IntentAction::Copy(c) if c.protection.is_some() => IntentKind::Protect,
        IntentAction::Copy(c) => match c.step {
            jt_domain::CopyAction::Entry { .. } => IntentKind::Entry,
            jt_domain::CopyAction::Increase { .. } => IntentKind::Add,
            jt_domain::CopyAction::Reduce { .. } => IntentKind::Reduce,
            jt_domain::CopyAction::Close { .. } => IntentKind::Close,
            jt_domain::CopyAction::Reverse { .. } => IntentKind::Flip,
            jt_domain::CopyAction::Nothing => IntentKind::Cancel,
        },
        IntentAction::Manual(m) => match m.trade {
            ManualTrade::Entry { .. } => IntentKind::Entry,
            ManualTrade::Exit { qty: None } => IntentKind::Close,
            ManualTrade::Exit { qty: Some(_) } => IntentKind::Reduce,
        },
        IntentAction::Control(c) => match (c.action, &c.scope) {
            (ControlAction::Flatten, ControlScope::Account) => IntentKind::Flatten,
            (ControlAction::Flatten, ControlScope::Symbol { .. }) => IntentKind::Close,
            (ControlAction::CancelOrders, _) => IntentKind::Cancel,
        },
        IntentAction::Repair(_) => IntentKind::Protect,
    }
}

/// The kind of a signal's action.
pub(crate) fn kind_of_action(action: SignalAction) -> IntentKind {
    match action {
        SignalAction::Long | SignalAction::Short => IntentKind::Entry,
        SignalAction::Close | SignalAction::CloseLong | SignalAction::CloseShort => {
            IntentKind::Close
        }
        SignalAction::ReduceLong | SignalAction::ReduceShort => IntentKind::Reduce,
        SignalAction::Cancel => IntentKind::Cancel,
        SignalAction::Flatten | SignalAction::Kill => IntentKind::Flatten,
        SignalAction::Resume => IntentKind::Cancel,
    }
}
