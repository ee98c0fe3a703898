//! What a broker adapter can do natively, declared up front so that a caller refuses or falls
//! back explicitly instead of an adapter silently dropping a protective order.

use std::fmt;

use jt_domain::order::{BracketOrder, OrderKind, StopKind};
use serde::{Deserialize, Serialize};

/// One capability a request may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// Entry plus protective orders in one broker call.
    NativeBracket,
    /// More than one take-profit leg inside that call.
    MultipleTakeProfits,
    /// A trailing stop (trailing from the start).
    TrailingStop,
    /// A trailing stop that starts after a profit trigger (Tradovate `autoTrail`).
    TrailingTrigger,
    /// Break-even move of the stop, done by the broker.
    BreakEven,
    /// Break-even together with a trailing stop in the same bracket.
    BreakEvenWithTrailingStop,
    /// A bracket whose entry is not a market order.
    NonMarketBracketEntry,
    /// Stop-limit orders.
    StopLimitOrder,
    /// Looking an order up by the client order id we sent.
    ClientOrderIdLookup,
    /// A live event stream (fills, positions, orders, cash balance).
    EventStream,
    /// Closing one contract's position (cancel its orders, market out) in one call.
    NativeClosePosition,
    /// A standalone trailing stop order (outside a bracket; the DCA replacement stop).
    StandaloneTrailingStop,
    /// A standalone trailing stop that starts after a profit trigger.
    StandaloneTrailingTrigger,
    /// A resting entry that the broker cancels at the end of the trading day (`Day`).
    DayOrders,
    /// A market-data feed (quotes) over the login.
    MarketData,
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NativeBracket => "native bracket (entry and protection in one call)",
            Self::MultipleTakeProfits => "several take-profit legs in one bracket",
            Self::TrailingStop => "trailing stop",
            Self::TrailingTrigger => "trailing stop that starts after a profit trigger",
            Self::BreakEven => "break-even stop move",
            Self::BreakEvenWithTrailingStop => "break-even together with a trailing stop",
            Self::NonMarketBracketEntry => "bracket with a non-market entry",
            Self::StopLimitOrder => "stop-limit order",
            Self::ClientOrderIdLookup => "order look-up by client order id",
            Self::EventStream => "live event stream",
            Self::NativeClosePosition => "close a position in one call",
            Self::StandaloneTrailingStop => "standalone trailing stop order",
            Self::StandaloneTrailingTrigger => {
                "standalone trailing stop that starts after a profit trigger"
            }
            Self::DayOrders => "resting order that expires at the end of the trading day",
            Self::MarketData => "market-data feed (quotes)",
        })
    }
}

/// The capabilities an adapter declares. Every flag is a promise: when it is `true` the adapter
/// carries the feature to the broker or fails the call; it never drops it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::struct_excessive_bools)] // a flat set of independent yes/no promises
pub struct Capabilities {
    /// [`Feature::NativeBracket`].
    pub native_bracket: bool,
    /// [`Feature::MultipleTakeProfits`].
    pub multiple_take_profits: bool,
    /// [`Feature::TrailingStop`].
    pub trailing_stop: bool,
    /// [`Feature::TrailingTrigger`].
    pub trailing_trigger: bool,
    /// [`Feature::BreakEven`].
    pub break_even: bool,
    /// [`Feature::BreakEvenWithTrailingStop`].
    pub break_even_with_trailing_stop: bool,
    /// [`Feature::NonMarketBracketEntry`].
    pub non_market_bracket_entry: bool,
    /// [`Feature::StopLimitOrder`].
    pub stop_limit_order: bool,
    /// [`Feature::ClientOrderIdLookup`].
    pub client_order_id_lookup: bool,
    /// [`Feature::EventStream`].
    pub event_stream: bool,
    /// [`Feature::NativeClosePosition`].
    pub native_close_position: bool,
    /// [`Feature::StandaloneTrailingStop`].
    pub standalone_trailing_stop: bool,
    /// [`Feature::StandaloneTrailingTrigger`].
    pub standalone_trailing_trigger: bool,
    /// [`Feature::DayOrders`].
    pub day_orders: bool,
    /// [`Feature::MarketData`].
    pub market_data: bool,
}

impl Capabilities {
    /// Whether the adapter declares `feature`.
    #[must_use]
    pub fn supports(&self, feature: Feature) -> bool {
        match feature {
            Feature::NativeBracket => self.native_bracket,
            Feature::MultipleTakeProfits => self.multiple_take_profits,
            Feature::TrailingStop => self.trailing_stop,
            Feature::TrailingTrigger => self.trailing_trigger,
            Feature::BreakEven => self.break_even,
            Feature::BreakEvenWithTrailingStop => self.break_even_with_trailing_stop,
            Feature::NonMarketBracketEntry => self.non_market_bracket_entry,
            Feature::StopLimitOrder => self.stop_limit_order,
            Feature::ClientOrderIdLookup => self.client_order_id_lookup,
            Feature::EventStream => self.event_stream,
            Feature::NativeClosePosition => self.native_close_position,
            Feature::StandaloneTrailingStop => self.standalone_trailing_stop,
            Feature::StandaloneTrailingTrigger => self.standalone_trailing_trigger,
            Feature::DayOrders => self.day_orders,
            Feature::MarketData => self.market_data,
        }
    }

    /// The features `bracket` needs, in the order a caller should report them.
    #[must_use]
    pub fn required_for(bracket: &BracketOrder) -> Vec<Feature> {
        let mut needed = vec![Feature::NativeBracket];
        if bracket.take_profits.len() > 1 {
            needed.push(Feature::MultipleTakeProfits);
        }
        let trailing = bracket.stop.as_ref().and_then(|s| match s.kind {
            StopKind::Trailing { trigger, .. } => Some(trigger),
            StopKind::Fixed => None,
        });
        if let Some(trigger) = trailing {
            needed.push(Feature::TrailingStop);
            if !trigger.is_zero() {
                needed.push(Feature::TrailingTrigger);
            }
        }
        if bracket.break_even.is_some() {
            needed.push(Feature::BreakEven);
            if trailing.is_some() {
                needed.push(Feature::BreakEvenWithTrailingStop);
            }
        }
        if !matches!(bracket.entry, OrderKind::Market) {
            needed.push(Feature::NonMarketBracketEntry);
        }
        needed
    }

    /// The features a standalone stop of `kind` needs.
    #[must_use]
    pub fn required_for_stop(kind: &StopKind) -> Vec<Feature> {
        match kind {
            StopKind::Fixed => Vec::new(),
            StopKind::Trailing { trigger, .. } if trigger.is_zero() => {
                vec![Feature::StandaloneTrailingStop]
            }
            StopKind::Trailing { .. } => vec![
                Feature::StandaloneTrailingStop,
                Feature::StandaloneTrailingTrigger,
            ],
        }
    }

    /// The features `bracket` needs that this adapter lacks; empty means it can be placed as one
    /// native bracket. A caller with a non-empty answer refuses the intent or places the entry
    /// and the protective orders separately — explicitly, never by dropping one.
    #[must_use]
    pub fn missing_for(&self, bracket: &BracketOrder) -> Vec<Feature> {
        Self::required_for(bracket)
            .into_iter()
            .filter(|f| !self.supports(*f))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jt_domain::order::{BreakEven, StopSpec, TakeProfitLeg};
    use jt_domain::types::Side;
    use rust_decimal_macros::dec;

    fn bracket() -> BracketOrder {
        BracketOrder {
            client_order_id: "c".into(),
            side: Side::Buy,
            qty: 2,
            entry: OrderKind::Market,
            take_profits: vec![
                TakeProfitLeg {
                    qty: 1,
                    distance: dec!(5),
                },
                TakeProfitLeg {
                    qty: 1,
                    distance: dec!(10),
                },
            ],
            stop: Some(StopSpec {
                distance: dec!(4),
                kind: StopKind::Trailing {
                    trigger: dec!(2),
                    step: dec!(0),
                },
            }),
            break_even: Some(BreakEven {
                trigger: dec!(3),
                offset: dec!(0),
            }),
        }
    }

    #[test]
    fn every_needed_feature_is_listed_and_missing_ones_are_reported() {
        let b = bracket();
        assert_eq!(
            Capabilities::required_for(&b),
            vec![
                Feature::NativeBracket,
                Feature::MultipleTakeProfits,
                Feature::TrailingStop,
                Feature::TrailingTrigger,
                Feature::BreakEven,
                Feature::BreakEvenWithTrailingStop,
            ]
        );
        let caps = Capabilities {
            native_bracket: true,
            multiple_take_profits: true,
            trailing_stop: true,
            trailing_trigger: true,
            break_even: true,
            break_even_with_trailing_stop: false,
            non_market_bracket_entry: true,
            stop_limit_order: true,
            client_order_id_lookup: true,
            event_stream: true,
            native_close_position: true,
            standalone_trailing_stop: true,
            standalone_trailing_trigger: false,
            day_orders: true,
            market_data: false,
        };
        assert_eq!(
            caps.missing_for(&b),
            vec![Feature::BreakEvenWithTrailingStop]
        );
    }
}
