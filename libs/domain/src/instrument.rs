//! The instrument table and ticker → root resolution (DOMAIN.md §3).
//!
//! Figures are the exchanges' published contract specifications (CME Group contract
//! specification pages for CME, CBOT, NYMEX and COMEX products; ICE Futures U.S. product
//! specifications for KC, CT and SB), read 2026-11:
//!
//! | root | contract unit | minimum fluctuation | source |
//! |---|---|---|---|
//! | ES / MES | $50 / $5 × S&P 500 | 0.25 = $12.50 / $1.25 | cmegroup.com E-mini / Micro E-mini S&P 500 contract specs |
//! | NQ / MNQ | $20 / $2 × Nasdaq-100 | 0.25 = $5.00 / $0.50 | cmegroup.com E-mini / Micro E-mini Nasdaq-100 |
//! | YM / MYM | $5 / $0.50 × DJIA | 1.0 = $5.00 / $0.50 | cmegroup.com E-mini / Micro E-mini Dow ($5) |
//! | RTY / M2K | $50 / $5 × Russell 2000 | 0.10 = $5.00 / $0.50 | cmegroup.com E-mini / Micro E-mini Russell 2000 |
//! | GC / MGC | 100 / 10 troy oz | 0.10 = $10.00 / $1.00 | cmegroup.com Gold / Micro Gold |
//! | SI / SIL | 5,000 / 1,000 troy oz | 0.005 = $25.00 / $5.00 | cmegroup.com Silver / Micro Silver |
//! | HG / MHG | 25,000 / 2,500 lb | 0.0005 = $12.50 / $1.25 | cmegroup.com Copper / Micro Copper |
//! | CL / MCL | 1,000 / 100 bbl | 0.01 = $10.00 / $1.00 | cmegroup.com Crude Oil / Micro WTI Crude Oil |
//! | NG / MNG | 10,000 / 1,000 MMBtu | 0.001 = $10.00 / $1.00 | cmegroup.com Henry Hub Natural Gas / Micro Henry Hub |
//! | PL | 50 troy oz | 0.10 = $5.00 | cmegroup.com Platinum |
//! | HO | 42,000 gal | 0.0001 = $4.20 | cmegroup.com NY Harbor ULSD |
//! | RB | 42,000 gal | 0.0001 = $4.20 | cmegroup.com RBOB Gasoline |
//! | ZB | $100,000 face | 1/32 = $31.25 | cmegroup.com U.S. Treasury Bond |
//! | ZN | $100,000 face | 1/64 = $15.625 | cmegroup.com 10-Year T-Note (half of 1/32) |
//! | ZF | $100,000 face | 1/4 of 1/32 = $7.8125 | cmegroup.com 5-Year T-Note |
//! | ZT | $200,000 face | 1/8 of 1/32 = $7.8125 | cmegroup.com 2-Year T-Note |
//! | 6E / M6E | €125,000 / €12,500 | 0.00005 = $6.25 / 0.0001 = $1.25 | cmegroup.com Euro FX / Micro EUR/USD |
//! | 6J | ¥12,500,000 | 0.0000005 = $6.25 | cmegroup.com Japanese Yen |
//! | 6B / M6B | £62,500 / £6,250 | 0.0001 = $6.25 / $0.625 | cmegroup.com British Pound / Micro GBP/USD |
//! | KC | 37,500 lb | 0.05 ¢/lb = $18.75 | theice.com Coffee "C" |
//! | CT | 50,000 lb | 0.01 ¢/lb = $5.00 | theice.com Cotton No. 2 |
//! | SB | 112,000 lb | 0.01 ¢/lb = $11.20 | theice.com Sugar No. 11 |
//!
//! A root that is not in this table is an error ([`InstrumentError::UnknownRoot`]): a silent
//! default tick size is how the replaced platform sent GC stops on a 0.25 grid.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The exchange an instrument trades on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Exchange {
    /// Chicago Mercantile Exchange.
    Cme,
    /// Chicago Board of Trade.
    Cbot,
    /// New York Mercantile Exchange.
    Nymex,
    /// Commodity Exchange (metals).
    Comex,
    /// ICE Futures U.S. (softs).
    IceUs,
}

impl fmt::Display for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Exchange::Cme => "CME",
            Exchange::Cbot => "CBOT",
            Exchange::Nymex => "NYMEX",
            Exchange::Comex => "COMEX",
            Exchange::IceUs => "ICEUS",
        })
    }
}

/// The other size of the same underlying (E-mini ↔ Micro), with the quantity ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Partner {
    /// Root of the partner contract.
    pub root: &'static str,
    /// How many of the smaller contract make one of the larger (10 for every pair listed).
    pub ratio: u32,
    /// Whether the partner is the smaller (micro) contract.
    pub partner_is_micro: bool,
}

/// One futures product: the figures every price and P&L computation needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instrument {
    /// Product root, e.g. `MNQ`.
    pub root: &'static str,
    /// Human name.
    pub name: &'static str,
    /// Exchange.
    pub exchange: Exchange,
    /// Minimum price fluctuation.
    pub tick_size: Decimal,
    /// Dollar value of one tick for one contract.
    pub tick_value: Decimal,
    /// Micro/mini partner, if any.
    pub partner: Option<Partner>,
}

impl Instrument {
    /// Dollar value of one full point for one contract (`tick_value / tick_size`).
    #[must_use]
    pub fn point_value(&self) -> Decimal {
        self.tick_value / self.tick_size
    }

    /// Rounds a price to the nearest tick, half away from zero, exactly.
    #[must_use]
    pub fn round_to_tick(&self, price: Decimal) -> Decimal {
        round_to_increment(price, self.tick_size)
    }

    /// Whether `price` lies exactly on this instrument's tick grid.
    #[must_use]
    pub fn is_on_tick(&self, price: Decimal) -> bool {
        (price % self.tick_size).is_zero()
    }

    /// Converts a number of ticks to a price distance.
    #[must_use]
    pub fn ticks_to_points(&self, ticks: Decimal) -> Decimal {
        ticks * self.tick_size
    }

    /// Converts a price distance to (fractional) ticks.
    #[must_use]
    pub fn points_to_ticks(&self, points: Decimal) -> Decimal {
        points / self.tick_size
    }
}

/// Rounds `value` to the nearest multiple of `increment` (half away from zero).
///
/// `increment` must be positive; a non-positive increment returns `value` unchanged. Never
/// panics: a value so large that the division overflows (beyond 10²⁸ ticks, far outside any
/// price) is returned unchanged; use [`checked_round_to_increment`] to detect that case.
#[must_use]
pub fn round_to_increment(value: Decimal, increment: Decimal) -> Decimal {
    checked_round_to_increment(value, increment).unwrap_or(value)
}

/// [`round_to_increment`], or `None` when `increment` is not positive or the arithmetic
/// overflows.
#[must_use]
pub fn checked_round_to_increment(value: Decimal, increment: Decimal) -> Option<Decimal> {
    if increment <= Decimal::ZERO {
        return None;
    }
    let steps = value
        .checked_div(increment)?
        .round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    steps.checked_mul(increment).map(|v| v.normalize())
}

/// Errors of ticker resolution.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
pub enum InstrumentError {
    /// The ticker was empty after trimming.
    #[error("the ticker is empty")]
    EmptyTicker,
    /// No known root matches the ticker.
    #[error(
        "unknown instrument root in ticker {ticker:?}: not in the instrument table \
         (see `jt instruments` for the supported roots)"
    )]
    UnknownRoot {
        /// The ticker as given.
        ticker: String,
    },
}

/// Parses one of the table's decimal literals (fixed text, covered by the tests below).
#[allow(clippy::expect_used)]
fn table_decimal(s: &str) -> Decimal {
    s.parse()
        .expect("instrument table literal is a valid decimal")
}

struct Row {
    root: &'static str,
    name: &'static str,
    exchange: Exchange,
    tick_size: &'static str,
    tick_value: &'static str,
    partner: Option<Partner>,
}

const fn micro(root: &'static str) -> Option<Partner> {
    Some(Partner {
        root,
        ratio: 10,
        partner_is_micro: true,
    })
}
const fn mini(root: &'static str) -> Option<Partner> {
    Some(Partner {
        root,
        ratio: 10,
        partner_is_micro: false,
    })
}

use Exchange::{Cbot, Cme, Comex, IceUs, Nymex};

#[rustfmt::skip]
const ROWS: &[Row] = &[
    Row { root: "ES",  name: "E-mini S&P 500",            exchange: Cme,   tick_size: "0.25",      tick_value: "12.50",  partner: micro("MES") },
    Row { root: "MES", name: "Micro E-mini S&P 500",      exchange: Cme,   tick_size: "0.25",      tick_value: "1.25",   partner: mini("ES") },
    Row { root: "NQ",  name: "E-mini Nasdaq-100",         exchange: Cme,   tick_size: "0.25",      tick_value: "5.00",   partner: micro("MNQ") },
    Row { root: "MNQ", name: "Micro E-mini Nasdaq-100",   exchange: Cme,   tick_size: "0.25",      tick_value: "0.50",   partner: mini("NQ") },
    Row { root: "YM",  name: "E-mini Dow ($5)",           exchange: Cbot,  tick_size: "1",         tick_value: "5.00",   partner: micro("MYM") },
    Row { root: "MYM", name: "Micro E-mini Dow",          exchange: Cbot,  tick_size: "1",         tick_value: "0.50",   partner: mini("YM") },
    Row { root: "RTY", name: "E-mini Russell 2000",       exchange: Cme,   tick_size: "0.10",      tick_value: "5.00",   partner: micro("M2K") },
    Row { root: "M2K", name: "Micro E-mini Russell 2000", exchange: Cme,   tick_size: "0.10",      tick_value: "0.50",   partner: mini("RTY") },
    Row { root: "GC",  name: "Gold",                      exchange: Comex, tick_size: "0.10",      tick_value: "10.00",  partner: micro("MGC") },
    Row { root: "MGC", name: "Micro Gold",                exchange: Comex, tick_size: "0.10",      tick_value: "1.00",   partner: mini("GC") },
    Row { root: "SI",  name: "Silver",                    exchange: Comex, tick_size: "0.005",     tick_value: "25.00",  partner: Some(Partner { root: "SIL", ratio: 5, partner_is_micro: true }) },
    Row { root: "SIL", name: "Micro Silver",              exchange: Comex, tick_size: "0.005",     tick_value: "5.00",   partner: Some(Partner { root: "SI", ratio: 5, partner_is_micro: false }) },
    Row { root: "HG",  name: "Copper",                    exchange: Comex, tick_size: "0.0005",    tick_value: "12.50",  partner: micro("MHG") },
    Row { root: "MHG", name: "Micro Copper",              exchange: Comex, tick_size: "0.0005",    tick_value: "1.25",   partner: mini("HG") },
    Row { root: "CL",  name: "Crude Oil (WTI)",           exchange: Nymex, tick_size: "0.01",      tick_value: "10.00",  partner: micro("MCL") },
    Row { root: "MCL", name: "Micro WTI Crude Oil",       exchange: Nymex, tick_size: "0.01",      tick_value: "1.00",   partner: mini("CL") },
    Row { root: "NG",  name: "Henry Hub Natural Gas",     exchange: Nymex, tick_size: "0.001",     tick_value: "10.00",  partner: micro("MNG") },
    Row { root: "MNG", name: "Micro Henry Hub Natural Gas", exchange: Nymex, tick_size: "0.001",   tick_value: "1.00",   partner: mini("NG") },
    Row { root: "PL",  name: "Platinum",                  exchange: Nymex, tick_size: "0.10",      tick_value: "5.00",   partner: None },
    Row { root: "HO",  name: "NY Harbor ULSD",            exchange: Nymex, tick_size: "0.0001",    tick_value: "4.20",   partner: None },
    Row { root: "RB",  name: "RBOB Gasoline",             exchange: Nymex, tick_size: "0.0001",    tick_value: "4.20",   partner: None },
    Row { root: "ZB",  name: "U.S. Treasury Bond",        exchange: Cbot,  tick_size: "0.03125",   tick_value: "31.25",  partner: None },
    Row { root: "ZN",  name: "10-Year T-Note",            exchange: Cbot,  tick_size: "0.015625",  tick_value: "15.625", partner: None },
    Row { root: "ZF",  name: "5-Year T-Note",             exchange: Cbot,  tick_size: "0.0078125", tick_value: "7.8125", partner: None },
    Row { root: "ZT",  name: "2-Year T-Note",             exchange: Cbot,  tick_size: "0.00390625", tick_value: "7.8125", partner: None },
    Row { root: "6E",  name: "Euro FX",                   exchange: Cme,   tick_size: "0.00005",   tick_value: "6.25",   partner: Some(Partner { root: "M6E", ratio: 10, partner_is_micro: true }) },
    Row { root: "M6E", name: "Micro EUR/USD",             exchange: Cme,   tick_size: "0.0001",    tick_value: "1.25",   partner: Some(Partner { root: "6E", ratio: 10, partner_is_micro: false }) },
    Row { root: "6J",  name: "Japanese Yen",              exchange: Cme,   tick_size: "0.0000005", tick_value: "6.25",   partner: None },
    Row { root: "6B",  name: "British Pound",             exchange: Cme,   tick_size: "0.0001",    tick_value: "6.25",   partner: micro("M6B") },
    Row { root: "M6B", name: "Micro GBP/USD",             exchange: Cme,   tick_size: "0.0001",    tick_value: "0.625",  partner: mini("6B") },
    Row { root: "KC",  name: "Coffee \"C\"",              exchange: IceUs, tick_size: "0.05",      tick_value: "18.75",  partner: None },
    Row { root: "CT",  name: "Cotton No. 2",              exchange: IceUs, tick_size: "0.01",      tick_value: "5.00",   partner: None },
    Row { root: "SB",  name: "Sugar No. 11",              exchange: IceUs, tick_size: "0.01",      tick_value: "11.20",  partner: None },
];

/// The instrument table, built once.
static TABLE: std::sync::LazyLock<Vec<Instrument>> = std::sync::LazyLock::new(|| {
    let mut rows: Vec<Instrument> = ROWS
        .iter()
        .map(|r| Instrument {
            root: r.root,
            name: r.name,
            exchange: r.exchange,
            tick_size: table_decimal(r.tick_size),
            tick_value: table_decimal(r.tick_value),
            partner: r.partner,
        })
        .collect();
    // Longest root first, so that MNQ is tried before NQ and MGC before GC.
    rows.sort_by(|a, b| b.root.len().cmp(&a.root.len()).then(a.root.cmp(b.root)));
    rows
});

/// Every known instrument, longest root first.
#[must_use]
pub fn instruments() -> &'static [Instrument] {
    &TABLE
}

/// The instrument with exactly this root (case-insensitive).
///
/// # Errors
/// [`InstrumentError::UnknownRoot`] when the root is not in the table.
pub fn by_root(root: &str) -> Result<&'static Instrument, InstrumentError> {
    let upper = root.trim().to_ascii_uppercase();
    TABLE
        .iter()
        .find(|i| i.root == upper)
        .ok_or(InstrumentError::UnknownRoot {
            ticker: root.to_string(),
        })
}

const MONTH_CODES: &[u8] = b"FGHJKMNQUVXZ";

/// Whether `rest` is empty or a futures month code followed by a 1-, 2- or 4-digit year.
fn is_contract_suffix(rest: &str) -> bool {
    let bytes = rest.as_bytes();
    match bytes.split_first() {
        None => true,
        Some((month, year)) => {
            MONTH_CODES.contains(month)
                && matches!(year.len(), 1 | 2 | 4)
                && year.iter().all(u8::is_ascii_digit)
        }
    }
}

/// Strips an exchange prefix (`CME_MINI:`) and a continuous-contract suffix (`1!`, `2!`).
fn strip_decorations(ticker: &str) -> String {
    let mut t = ticker.trim().to_ascii_uppercase();
    if let Some(pos) = t.rfind(':') {
        t = t[pos + 1..].to_string();
    }
    if let Some(body) = t.strip_suffix('!') {
        let digits = body.bytes().rev().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            t = body[..body.len() - digits].to_string();
        }
    }
    t
}

/// Resolves an alert ticker (`MNQ1!`, `CME_MINI:MNQ1!`, `MNQZ2025`, `MNQZ25`, `NQH6`, `MGCJ6`)
/// to its instrument: the longest known root followed by nothing or a month code and year.
///
/// # Errors
/// [`InstrumentError::EmptyTicker`] or [`InstrumentError::UnknownRoot`].
pub fn resolve_ticker(ticker: &str) -> Result<&'static Instrument, InstrumentError> {
    let t = strip_decorations(ticker);
    if t.is_empty() {
        return Err(InstrumentError::EmptyTicker);
    }
    TABLE
        .iter()
        .find(|i| t.strip_prefix(i.root).is_some_and(is_contract_suffix))
        .ok_or(InstrumentError::UnknownRoot {
            ticker: ticker.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[rstest]
    #[case("MNQ1!", "MNQ")]
    #[case("NQ1!", "NQ")]
    #[case("CME_MINI:MNQ1!", "MNQ")]
    #[case("CME_MINI:NQ2!", "NQ")]
    #[case("MNQZ2025", "MNQ")]
    #[case("MNQZ25", "MNQ")]
    #[case("MNQZ5", "MNQ")]
    #[case("NQH6", "NQ")]
    #[case("GCJ6", "GC")]
    #[case("MGCJ6", "MGC")]
    #[case("COMEX:GC1!", "GC")]
    #[case("mes1!", "MES")]
    #[case("ES", "ES")]
    #[case("M2KZ5", "M2K")]
    #[case("6EH26", "6E")]
    #[case("M6EH6", "M6E")]
    #[case("SILZ25", "SIL")]
    #[case("SIZ25", "SI")]
    #[case("NYMEX:CL1!", "CL")]
    #[case(" ZN1! ", "ZN")]
    fn ticker_forms_resolve_to_the_longest_known_root(#[case] ticker: &str, #[case] root: &str) {
        assert_eq!(resolve_ticker(ticker).unwrap().root, root);
    }

    #[rstest]
    #[case("AAPL")]
    #[case("XYZ1!")]
    #[case("MNQZ2025X")]
    #[case("MNQ1")] // a bare digit is not a month code and year
    #[case("NQZ123")] // 3-digit year is not a contract form
    #[case("NQA5")] // A is not a month code
    fn unknown_roots_are_errors_never_a_default(#[case] ticker: &str) {
        assert!(matches!(
            resolve_ticker(ticker),
            Err(InstrumentError::UnknownRoot { .. })
        ));
    }

    #[test]
    fn empty_ticker_is_an_error() {
        assert_eq!(resolve_ticker("  "), Err(InstrumentError::EmptyTicker));
        assert_eq!(resolve_ticker("CME:"), Err(InstrumentError::EmptyTicker));
    }

    #[test]
    fn table_covers_every_listed_root_with_positive_figures() {
        for root in [
            "ES", "MES", "NQ", "MNQ", "YM", "MYM", "RTY", "M2K", "GC", "MGC", "SI", "SIL", "HG",
            "CL", "MCL", "NG", "PL", "HO", "RB", "ZB", "ZN", "ZF", "ZT", "6E", "6J", "6B", "KC",
            "CT", "SB",
        ] {
            let i = by_root(root).unwrap();
            assert!(
                i.tick_size > Decimal::ZERO && i.tick_value > Decimal::ZERO,
                "{root}"
            );
        }
    }

    #[test]
    fn partners_point_both_ways() {
        for i in instruments() {
            if let Some(p) = i.partner {
                let other = by_root(p.root).unwrap();
                let back = other.partner.unwrap();
                assert_eq!(back.root, i.root);
                assert_eq!(back.ratio, p.ratio);
                assert_ne!(back.partner_is_micro, p.partner_is_micro);
            }
        }
    }

    #[rstest]
    #[case("MNQ", "0.25", "0.50", "2")]
    #[case("MES", "0.25", "1.25", "5")]
    #[case("NQ", "0.25", "5.00", "20")]
    #[case("ES", "0.25", "12.50", "50")]
    #[case("GC", "0.10", "10.00", "100")]
    #[case("CL", "0.01", "10.00", "1000")]
    #[case("SI", "0.005", "25.00", "5000")]
    #[case("HG", "0.0005", "12.50", "25000")]
    #[case("NG", "0.001", "10.00", "10000")]
    fn known_tick_sizes_values_and_point_values(
        #[case] root: &str,
        #[case] tick: &str,
        #[case] value: &str,
        #[case] point: &str,
    ) {
        let i = by_root(root).unwrap();
        assert_eq!(i.tick_size, dec(tick));
        assert_eq!(i.tick_value, dec(value));
        assert_eq!(i.point_value(), dec(point));
    }

    #[rstest]
    #[case("GC", "2034.57", "2034.6")]
    #[case("GC", "2034.55", "2034.6")] // half away from zero
    #[case("GC", "2034.54", "2034.5")]
    #[case("CL", "71.234", "71.23")]
    #[case("CL", "71.235", "71.24")]
    #[case("MNQ", "21433.333333333333333333333333", "21433.25")]
    #[case("MNQ", "21433.375", "21433.5")]
    #[case("ZN", "110.0100", "110.015625")]
    #[case("SI", "30.1226", "30.125")]
    fn rounding_to_tick(#[case] root: &str, #[case] raw: &str, #[case] rounded: &str) {
        let i = by_root(root).unwrap();
        let r = i.round_to_tick(dec(raw));
        assert_eq!(r, dec(rounded));
        assert!(i.is_on_tick(r));
    }

    #[test]
    fn gc_rounds_to_tenths_and_cl_to_hundredths() {
        // Regression: the replaced platform rounded every root to the index futures' 0.25.
        assert_eq!(
            by_root("GC").unwrap().round_to_tick(dec("2400.13")),
            dec("2400.1")
        );
        assert_eq!(
            by_root("CL").unwrap().round_to_tick(dec("78.126")),
            dec("78.13")
        );
    }
}
