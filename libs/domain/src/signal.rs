//! What an alert asks for, after interpretation (DOMAIN.md §2): the vocabulary shared by the
//! alert parser, the executor and the paper record.

use serde::{Deserialize, Serialize};

use crate::types::Direction;

/// DOMAIN.md §2: the same webhook token and a byte-identical body less than this many
/// milliseconds apart is one signal (TradingView sometimes delivers an alert twice). The ingest's
/// message ids catch the copies inside one second of the clock, the fan-out's conditional insert
/// those across a second boundary (`jt_alerts::dedup`).
pub const DUPLICATE_INTERVAL_MS: i64 = 1_000;

/// The action of a parsed signal, after `inverse_strategy` and the position → action mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalAction {
    /// Go or stay long (entry, add, or flip from short).
    Long,
    /// Go or stay short (entry, add, or flip from long).
    Short,
    /// Close whatever is open on the symbol.
    Close,
    /// Close a long position (a sell with position flat); nothing if short or flat.
    CloseLong,
    /// Close a short position (a buy with position flat); nothing if long or flat.
    CloseShort,
    /// Reduce a long position by the fraction the signal carries (a partial exit: the strategy
    /// sold part of its long); never past flat.
    ReduceLong,
    /// Reduce a short position by the fraction the signal carries; never past flat.
    ReduceShort,
    /// Cancel working orders on the symbol without touching the position.
    Cancel,
    /// Control: flatten every trader of the recorder (cancel orders, close positions).
    Flatten,
    /// Control: the kill switch — cancel, flatten and refuse new entries until resumed.
    Kill,
    /// Control: lift the kill switch.
    Resume,
}

impl SignalAction {
    /// The direction of an entry action (`Long`/`Short`), `None` for every other action.
    #[must_use]
    pub fn entry_direction(self) -> Option<Direction> {
        match self {
            SignalAction::Long => Some(Direction::Long),
            SignalAction::Short => Some(Direction::Short),
            _ => None,
        }
    }

    /// Whether this is a recorder-level control command rather than a trade.
    #[must_use]
    pub fn is_control(self) -> bool {
        matches!(
            self,
            SignalAction::Flatten | SignalAction::Kill | SignalAction::Resume
        )
    }

    /// Whether the action can only reduce exposure (closes pass every entry filter).
    #[must_use]
    pub fn is_exit(self) -> bool {
        matches!(
            self,
            SignalAction::Close
                | SignalAction::CloseLong
                | SignalAction::CloseShort
                | SignalAction::ReduceLong
                | SignalAction::ReduceShort
        )
    }

    /// The direction of the position a partial exit reduces, `None` for every other action.
    #[must_use]
    pub fn reduced_direction(self) -> Option<Direction> {
        match self {
            SignalAction::ReduceLong => Some(Direction::Long),
            SignalAction::ReduceShort => Some(Direction::Short),
            _ => None,
        }
    }

    /// Swaps long ↔ short and close_long ↔ close_short (`inverse_strategy`).
    #[must_use]
    pub fn inverted(self) -> Self {
        match self {
            SignalAction::Long => SignalAction::Short,
            SignalAction::Short => SignalAction::Long,
            SignalAction::CloseLong => SignalAction::CloseShort,
            SignalAction::CloseShort => SignalAction::CloseLong,
            SignalAction::ReduceLong => SignalAction::ReduceShort,
            SignalAction::ReduceShort => SignalAction::ReduceLong,
            other => other,
        }
    }

    /// The wire name (`long`, `close_long`, …).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            SignalAction::Long => "long",
            SignalAction::Short => "short",
            SignalAction::Close => "close",
            SignalAction::CloseLong => "close_long",
            SignalAction::CloseShort => "close_short",
            SignalAction::ReduceLong => "reduce_long",
            SignalAction::ReduceShort => "reduce_short",
            SignalAction::Cancel => "cancel",
            SignalAction::Flatten => "flatten",
            SignalAction::Kill => "kill",
            SignalAction::Resume => "resume",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inversion_swaps_directions_and_is_an_involution() {
        for a in [
            SignalAction::Long,
            SignalAction::Short,
            SignalAction::Close,
            SignalAction::CloseLong,
            SignalAction::CloseShort,
            SignalAction::ReduceLong,
            SignalAction::ReduceShort,
            SignalAction::Cancel,
            SignalAction::Flatten,
            SignalAction::Kill,
            SignalAction::Resume,
        ] {
            assert_eq!(a.inverted().inverted(), a);
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
        assert_eq!(SignalAction::Long.inverted(), SignalAction::Short);
        assert_eq!(SignalAction::CloseLong.inverted(), SignalAction::CloseShort);
        assert_eq!(SignalAction::Close.inverted(), SignalAction::Close);
        assert_eq!(
            SignalAction::ReduceLong.inverted(),
            SignalAction::ReduceShort
        );
        assert!(SignalAction::ReduceShort.is_exit());
        assert_eq!(
            SignalAction::ReduceShort.reduced_direction(),
            Some(Direction::Short)
        );
        assert_eq!(SignalAction::ReduceLong.entry_direction(), None);
    }
}
