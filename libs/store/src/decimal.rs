//! Exact decimals on both engines.
//!
//! sea-orm binds a `Decimal` to SQLite as text (exact) but reads it back through `f64`
//! (inexact: `21433.333333333` would come back changed). [`DbDecimal`] is the column type of
//! every money, price and ratio field: it is written as a decimal value (PostgreSQL `NUMERIC`;
//! text on SQLite, whose columns are declared `TEXT`, see `jt_migrations::columns`) and read
//! back as text on SQLite and as `NUMERIC` on PostgreSQL, so nothing ever passes through a
//! binary float. Repositories convert to and from [`rust_decimal::Decimal`] at their boundary.
//!
//! Never compare or add money in SQL: on SQLite the values are text, so `ORDER BY`, `SUM` and
//! `<` would be textual. Load the rows and compute in Rust.

use std::str::FromStr;

use rust_decimal::Decimal;
use sea_orm::sea_query::{ArrayType, ColumnType, Nullable, ValueType, ValueTypeErr};
use sea_orm::{ColIdx, QueryResult, TryGetError, TryGetable, Value};

/// An exact decimal column value; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct DbDecimal(pub Decimal);

impl From<Decimal> for DbDecimal {
    fn from(d: Decimal) -> Self {
        Self(d)
    }
}

impl From<DbDecimal> for Decimal {
    fn from(d: DbDecimal) -> Self {
        d.0
    }
}

impl From<DbDecimal> for Value {
    fn from(d: DbDecimal) -> Self {
        // sea-query's SQLite binder sends `Value::Decimal` as its exact string form.
        Value::Decimal(Some(d.0))
    }
}

impl Nullable for DbDecimal {
    fn null() -> Value {
        Value::Decimal(None)
    }
}

impl ValueType for DbDecimal {
    fn try_from(v: Value) -> Result<Self, ValueTypeErr> {
        match v {
            Value::Decimal(Some(d)) => Ok(Self(d)),
            Value::String(Some(s)) => parse_exact(&s).ok_or(ValueTypeErr),
            _ => Err(ValueTypeErr),
        }
    }

    fn type_name() -> String {
        "DbDecimal".to_string()
    }

    fn array_type() -> ArrayType {
        ArrayType::Decimal
    }

    fn column_type() -> ColumnType {
        ColumnType::Decimal(None)
    }
}

impl TryGetable for DbDecimal {
    fn try_get_by<I: ColIdx>(res: &QueryResult, idx: I) -> Result<Self, TryGetError> {
        // SQLite: the column holds text. PostgreSQL: decoding NUMERIC as text is refused
        // (mismatched types), so fall back to the driver's exact NUMERIC decoding. A NULL is
        // reported as such and never retried through the lossy path.
        match String::try_get_by(res, idx) {
            Ok(s) => parse_exact(&s).ok_or_else(|| {
                TryGetError::DbErr(sea_orm::DbErr::Type(format!(
                    "column {idx:?} holds {s:?}, which is not an exact decimal"
                )))
            }),
            Err(TryGetError::Null(col)) => Err(TryGetError::Null(col)),
            Err(TryGetError::DbErr(_)) => Decimal::try_get_by(res, idx).map(Self),
        }
    }
}

fn parse_exact(s: &str) -> Option<DbDecimal> {
    Decimal::from_str_exact(s.trim())
        .or_else(|_| Decimal::from_str(s.trim()))
        .ok()
        .map(DbDecimal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn value_round_trip_is_exact() {
        for d in [
            dec!(21433.333333333),
            dec!(0.00390625),
            dec!(12345678.90),
            dec!(-3.5),
        ] {
            let v: Value = DbDecimal(d).into();
            assert_eq!(<DbDecimal as ValueType>::try_from(v).unwrap().0, d);
            let s = Value::String(Some(d.to_string()));
            assert_eq!(<DbDecimal as ValueType>::try_from(s).unwrap().0, d);
        }
    }

    #[test]
    fn scale_is_preserved_in_text() {
        // 12345678.90 keeps its trailing zero: what was written is what is read.
        assert_eq!(
            parse_exact("12345678.90").unwrap().0.to_string(),
            "12345678.90"
        );
        assert!(parse_exact("12.3.4").is_none());
        assert!(parse_exact("1e400").is_none());
    }
}
