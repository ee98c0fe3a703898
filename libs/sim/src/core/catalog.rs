//! Products and contracts: the front and next month of every root of the project's instrument
//! table, named the way Tradovate names them (`MNQZ6`: root, month code, last digit of the year).
//!
//! Listing cycles follow the exchanges' calendars (quarterly for equity index, FX and Treasury
//! futures; bi-monthly for gold; monthly for energy; the softs' own cycles). Roll dates are
//! simplified: equity index and FX contracts stop being "front" eight days before their third
//! Friday (the usual roll week), everything else on the 20th of the month before delivery
//! (ahead of first notice). Ids are fixed by position in the table, so they are stable across
//! restarts on the same date.

use std::collections::HashMap;

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use jt_domain::instrument::{Exchange, Instrument, instruments};
use rust_decimal::Decimal;

use super::model::Id;

const MONTH_CODES: [char; 12] = ['F', 'G', 'H', 'J', 'K', 'M', 'N', 'Q', 'U', 'V', 'X', 'Z'];

/// USD's currency id.
pub const USD: Id = 1;

/// A product (one root).
#[derive(Debug, Clone)]
pub struct Product {
    /// Id.
    pub id: Id,
    /// Root (`MNQ`).
    pub name: String,
    /// Human description.
    pub description: String,
    /// Exchange id.
    pub exchange_id: Id,
    /// Contract group id.
    pub contract_group_id: Id,
    /// Listed months as codes (`HMUZ`).
    pub months: String,
    /// The domain instrument (tick size, tick value).
    pub instrument: &'static Instrument,
    /// Decimal places of the price format.
    pub price_format: i32,
}

impl Product {
    /// Dollar value of one point.
    #[must_use]
    pub fn value_per_point(&self) -> Decimal {
        self.instrument.point_value()
    }
}

/// One contract month of a product.
#[derive(Debug, Clone)]
pub struct Contract {
    /// Index in [`Catalog::contracts`] (used for per-contract runtime state).
    pub index: usize,
    /// Id.
    pub id: Id,
    /// Name (`MNQZ6`).
    pub name: String,
    /// Maturity id.
    pub maturity_id: Id,
    /// Index of the product in [`Catalog::products`].
    pub product_index: usize,
    /// `YYMM` as an integer (Tradovate's `expirationMonth`).
    pub expiration_month: i64,
    /// Last trading day.
    pub expiration_date: NaiveDate,
    /// Whether this is the front month.
    pub is_front: bool,
}

/// A named static entity (exchange, currency, contract group, order strategy type).
#[derive(Debug, Clone)]
pub struct Named {
    /// Id.
    pub id: Id,
    /// Name.
    pub name: String,
}

/// Every static entity the simulator serves.
#[derive(Debug)]
pub struct Catalog {
    /// Products, in instrument-table order.
    pub products: Vec<Product>,
    /// Contracts: front then next month of each product.
    pub contracts: Vec<Contract>,
    /// Exchanges.
    pub exchanges: Vec<Named>,
    /// Currencies.
    pub currencies: Vec<Named>,
    /// Contract groups.
    pub contract_groups: Vec<Named>,
    /// Order strategy types (2 = multibracket).
    pub order_strategy_types: Vec<Named>,
    by_name: HashMap<String, usize>,
    by_id: HashMap<Id, usize>,
    product_by_id: HashMap<Id, usize>,
}

struct Cycle {
    months: &'static [u32],
    index_style: bool,
}

fn cycle(root: &str, exchange: Exchange) -> Cycle {
    const QUARTERLY: &[u32] = &[3, 6, 9, 12];
    const MONTHLY: &[u32] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
    match root {
        "ES" | "MES" | "NQ" | "MNQ" | "YM" | "MYM" | "RTY" | "M2K" | "6E" | "M6E" | "6J" | "6B"
        | "M6B" => Cycle {
            months: QUARTERLY,
            index_style: true,
        },
        "ZB" | "ZN" | "ZF" | "ZT" => Cycle {
            months: QUARTERLY,
            index_style: false,
        },
        "GC" | "MGC" => Cycle {
            months: &[2, 4, 6, 8, 10, 12],
            index_style: false,
        },
        "SI" | "SIL" | "HG" | "MHG" | "KC" => Cycle {
            months: &[3, 5, 7, 9, 12],
            index_style: false,
        },
        "CT" => Cycle {
            months: &[3, 5, 7, 10, 12],
            index_style: false,
        },
        "SB" => Cycle {
            months: &[3, 5, 7, 10],
            index_style: false,
        },
        "PL" => Cycle {
            months: &[1, 4, 7, 10],
            index_style: false,
        },
        _ => match exchange {
            Exchange::Nymex => Cycle {
                months: MONTHLY,
                index_style: false,
            },
            _ => Cycle {
                months: QUARTERLY,
                index_style: true,
            },
        },
    }
}

fn third_friday(year: i32, month: u32) -> NaiveDate {
    let mut d = NaiveDate::from_ymd_opt(year, month, 1).unwrap_or(NaiveDate::MIN);
    while d.weekday() != Weekday::Fri {
        d += Duration::days(1);
    }
    d + Duration::days(14)
}

fn day_before_month(year: i32, month: u32, day: u32) -> NaiveDate {
    let (y, m) = if month == 1 {
        (year - 1, 12)
    } else {
        (year, month - 1)
    };
    NaiveDate::from_ymd_opt(y, m, day).unwrap_or(NaiveDate::MIN)
}

/// (expiration date, last day it is the front month) of a contract month.
fn dates(cycle: &Cycle, year: i32, month: u32) -> (NaiveDate, NaiveDate) {
    if cycle.index_style {
        let expiry = third_friday(year, month);
        (expiry, expiry - Duration::days(8))
    } else {
        let cutoff = day_before_month(year, month, 20);
        (cutoff, cutoff)
    }
}

/// The next `n` listed months, front first, as (year, month, expiry, front-until).
fn next_months(cycle: &Cycle, today: NaiveDate, n: usize) -> Vec<(i32, u32, NaiveDate)> {
    let mut out = Vec::with_capacity(n);
    let mut year = today.year();
    while out.len() < n {
        for &m in cycle.months {
            let (expiry, front_until) = dates(cycle, year, m);
            if front_until >= today && out.len() < n {
                out.push((year, m, expiry));
            }
        }
        year += 1;
    }
    out
}

fn exchange_id(e: Exchange) -> Id {
    match e {
        Exchange::Cme => 1,
        Exchange::Cbot => 2,
        Exchange::Nymex => 3,
        Exchange::Comex => 4,
        Exchange::IceUs => 5,
    }
}

fn contract_group(root: &str, e: Exchange) -> Id {
    match root {
        "ES" | "MES" | "NQ" | "MNQ" | "YM" | "MYM" | "RTY" | "M2K" => 1,
        "ZB" | "ZN" | "ZF" | "ZT" => 4,
        "6E" | "M6E" | "6J" | "6B" | "M6B" => 5,
        _ => match e {
            Exchange::Comex => 2,
            Exchange::Nymex if root == "PL" => 2,
            Exchange::Nymex => 3,
            Exchange::IceUs => 6,
            _ => 1,
        },
    }
}

fn decimals(d: Decimal) -> i32 {
    i32::try_from(d.normalize().scale()).unwrap_or(2)
}

impl Catalog {
    /// Builds the catalog for the trading day `today`.
    #[must_use]
    pub fn build(today: NaiveDate) -> Self {
        let mut table: Vec<&'static Instrument> = instruments().iter().collect();
        // Stable ids: order by root, not by the table's longest-first order.
        table.sort_by_key(|i| i.root);
        let mut products = Vec::new();
        let mut contracts = Vec::new();
        for (pi, inst) in table.iter().enumerate() {
            let cyc = cycle(inst.root, inst.exchange);
            let pid = 1_000 + Id::try_from(pi).unwrap_or(0);
            products.push(Product {
                id: pid,
                name: inst.root.to_string(),
                description: inst.name.to_string(),
                exchange_id: exchange_id(inst.exchange),
                contract_group_id: contract_group(inst.root, inst.exchange),
                months: cyc
                    .months
                    .iter()
                    .map(|m| MONTH_CODES[(*m as usize) - 1])
                    .collect(),
                instrument: inst,
                price_format: -decimals(inst.tick_size),
            });
            for (k, (year, month, expiry)) in next_months(&cyc, today, 2).into_iter().enumerate() {
                let slot = Id::try_from(pi * 2 + k).unwrap_or(0);
                let index = contracts.len();
                contracts.push(Contract {
                    index,
                    id: 3_000_000 + slot,
                    name: format!(
                        "{}{}{}",
                        inst.root,
                        MONTH_CODES[(month as usize) - 1],
                        year.rem_euclid(10)
                    ),
                    maturity_id: 50_000 + slot,
                    product_index: pi,
                    expiration_month: i64::from(year.rem_euclid(100)) * 100 + i64::from(month),
                    expiration_date: expiry,
                    is_front: k == 0,
                });
            }
        }
        let by_name = contracts
            .iter()
            .map(|c| (c.name.to_ascii_uppercase(), c.index))
            .collect();
        let by_id = contracts.iter().map(|c| (c.id, c.index)).collect();
        let product_by_id = products
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id, i))
            .collect();
        let named = |v: &[(Id, &str)]| {
            v.iter()
                .map(|(id, name)| Named {
                    id: *id,
                    name: (*name).to_string(),
                })
                .collect::<Vec<_>>()
        };
        Catalog {
            products,
            contracts,
            exchanges: named(&[
                (1, "CME"),
                (2, "CBOT"),
                (3, "NYMEX"),
                (4, "COMEX"),
                (5, "ICEUS"),
            ]),
            currencies: named(&[(USD, "USD")]),
            contract_groups: named(&[
                (1, "Equity Index"),
                (2, "Metals"),
                (3, "Energy"),
                (4, "Interest Rates"),
                (5, "Currencies"),
                (6, "Softs"),
            ]),
            order_strategy_types: named(&[(2, "multibracket")]),
            by_name,
            by_id,
            product_by_id,
        }
    }

    /// The contract with this name (any case).
    #[must_use]
    pub fn contract_by_name(&self, name: &str) -> Option<&Contract> {
        self.by_name
            .get(&name.trim().to_ascii_uppercase())
            .map(|&i| &self.contracts[i])
    }

    /// The contract with this id.
    #[must_use]
    pub fn contract(&self, id: Id) -> Option<&Contract> {
        self.by_id.get(&id).map(|&i| &self.contracts[i])
    }

    /// The product of a contract.
    #[must_use]
    pub fn product_of(&self, c: &Contract) -> &Product {
        &self.products[c.product_index]
    }

    /// The product with this id.
    #[must_use]
    pub fn product(&self, id: Id) -> Option<&Product> {
        self.product_by_id.get(&id).map(|&i| &self.products[i])
    }

    /// The front-month contract of a root (any case).
    #[must_use]
    pub fn front(&self, root: &str) -> Option<&Contract> {
        let root = root.trim().to_ascii_uppercase();
        self.contracts
            .iter()
            .find(|c| c.is_front && self.products[c.product_index].name == root)
    }

    /// Resolves a contract name, a contract id written as digits, a root (front month) or an
    /// alert-style ticker (`MNQ1!`) to contracts: a root names all of its listed months.
    #[must_use]
    pub fn resolve_symbol(&self, symbol: &str) -> Vec<&Contract> {
        if let Some(c) = self.contract_by_name(symbol) {
            return vec![c];
        }
        if let Ok(id) = symbol.trim().parse::<Id>()
            && let Some(c) = self.contract(id)
        {
            return vec![c];
        }
        let root = match jt_domain::instrument::resolve_ticker(symbol) {
            Ok(i) => i.root,
            Err(_) => return Vec::new(),
        };
        self.contracts
            .iter()
            .filter(|c| self.products[c.product_index].name == root)
            .collect()
    }
}

/// A plausible starting price for a root (on its tick grid).
#[must_use]
pub fn default_price(inst: &Instrument) -> Decimal {
    let raw = match inst.root {
        "ES" | "MES" => "6000",
        "NQ" | "MNQ" => "21000",
        "YM" | "MYM" => "44000",
        "RTY" | "M2K" => "2300",
        "GC" | "MGC" => "2650",
        "SI" | "SIL" => "31",
        "HG" | "MHG" => "4.5",
        "CL" | "MCL" => "70",
        "NG" | "MNG" => "3.2",
        "PL" => "980",
        "HO" => "2.3",
        "RB" => "2",
        "ZB" => "118",
        "ZN" => "110",
        "ZF" => "106",
        "ZT" => "102.5",
        "6E" | "M6E" => "1.08",
        "6J" => "0.0067",
        "6B" | "M6B" => "1.27",
        "KC" => "320",
        "CT" => "70",
        "SB" => "20",
        _ => "100",
    };
    inst.round_to_tick(raw.parse().unwrap_or(Decimal::ONE_HUNDRED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_months_use_the_listing_cycles() {
        let cat = Catalog::build(NaiveDate::from_ymd_opt(2026, 11, 21).unwrap());
        // Dec 2026 equity index expires 2026-12-18; roll 12-10: still front on 11-21.
        assert_eq!(cat.front("MNQ").unwrap().name, "MNQZ6");
        assert_eq!(cat.front("es").unwrap().name, "ESZ6");
        // Gold: Dec cutoff 11-20 has passed, so February 2027.
        assert_eq!(cat.front("GC").unwrap().name, "GCG7");
        // Crude: monthly; January's cutoff is 12-20.
        assert_eq!(cat.front("CL").unwrap().name, "CLF7");
        // Every root has a front and a next month.
        assert_eq!(cat.contracts.len(), instruments().len() * 2);
        for p in &cat.products {
            assert!(cat.front(&p.name).is_some(), "{}", p.name);
        }
    }

    #[test]
    fn after_the_roll_the_next_quarter_is_front() {
        let cat = Catalog::build(NaiveDate::from_ymd_opt(2026, 12, 11).unwrap());
        assert_eq!(cat.front("MNQ").unwrap().name, "MNQH7");
    }

    #[test]
    fn symbols_resolve_by_name_id_root_and_ticker() {
        let cat = Catalog::build(NaiveDate::from_ymd_opt(2026, 11, 21).unwrap());
        let front = cat.front("MNQ").unwrap();
        assert_eq!(cat.resolve_symbol("mnqz6")[0].id, front.id);
        assert_eq!(cat.resolve_symbol(&front.id.to_string())[0].id, front.id);
        assert_eq!(cat.resolve_symbol("MNQ").len(), 2);
        assert_eq!(cat.resolve_symbol("CME_MINI:MNQ1!").len(), 2);
        assert!(cat.resolve_symbol("XYZ").is_empty());
    }

    #[test]
    fn default_prices_are_on_tick() {
        for i in instruments() {
            assert!(i.is_on_tick(default_price(i)), "{}", i.root);
        }
    }
}
