//! Column and constraint builders shared by the migrations, so every table spells money, time,
//! identifiers and delete behaviour the same way on both engines.
//!
//! - Identifiers are UUIDs (v7, made by the application so an intent id exists before it is
//!   stored and can seed the broker's client order id).
//! - Times are `timestamptz` on PostgreSQL; SQLite keeps sqlx's RFC 3339 UTC text, which sorts
//!   chronologically.
//! - Money, prices and other exact decimals are `NUMERIC` on PostgreSQL and `TEXT` on SQLite
//!   (SQLite has no exact decimal: a `REAL`/`NUMERIC` affinity column would turn
//!   `21433.333333333` into a binary float; `TEXT` affinity keeps every value as text).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// The `id` primary key column (UUID).
#[must_use]
pub fn id() -> ColumnDef {
    ColumnDef::new("id").uuid().not_null().primary_key().take()
}

/// A non-null UUID reference column.
#[must_use]
pub fn uuid(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).uuid().not_null().take()
}

/// A nullable UUID reference column.
#[must_use]
pub fn uuid_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).uuid().null().take()
}

/// A non-null text column.
#[must_use]
pub fn text(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).text().not_null().take()
}

/// A nullable text column.
#[must_use]
pub fn text_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).text().null().take()
}

/// A non-null text column restricted to `values` (the `string_value`s of a Rust enum).
#[must_use]
pub fn one_of(name: &'static str, values: &[&'static str]) -> ColumnDef {
    ColumnDef::new(name)
        .text()
        .not_null()
        .check(Expr::col(name).is_in(values.iter().copied()))
        .take()
}

/// A nullable text column restricted to `values` when set.
#[must_use]
pub fn one_of_null(name: &'static str, values: &[&'static str]) -> ColumnDef {
    ColumnDef::new(name)
        .text()
        .null()
        .check(
            Expr::col(name)
                .is_null()
                .or(Expr::col(name).is_in(values.iter().copied())),
        )
        .take()
}

/// A non-null boolean with a default.
#[must_use]
pub fn boolean(name: &'static str, default: bool) -> ColumnDef {
    ColumnDef::new(name)
        .boolean()
        .not_null()
        .default(default)
        .take()
}

/// A non-null 64-bit integer (quantities, counters, milliseconds).
#[must_use]
pub fn int(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).big_integer().not_null().take()
}

/// A non-null 64-bit integer with a default.
#[must_use]
pub fn int_default(name: &'static str, default: i64) -> ColumnDef {
    ColumnDef::new(name)
        .big_integer()
        .not_null()
        .default(default)
        .take()
}

/// A nullable 64-bit integer.
#[must_use]
pub fn int_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).big_integer().null().take()
}

/// A non-null UTC timestamp.
#[must_use]
pub fn time(name: &'static str) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .not_null()
        .take()
}

/// A nullable UTC timestamp.
#[must_use]
pub fn time_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .null()
        .take()
}

/// A non-null calendar date (the trading day).
#[must_use]
pub fn date(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).date().not_null().take()
}

/// A nullable calendar date.
#[must_use]
pub fn date_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).date().null().take()
}

/// A non-null JSON document (`jsonb` on PostgreSQL, text on SQLite).
#[must_use]
pub fn json(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).json_binary().not_null().take()
}

/// A nullable JSON document.
#[must_use]
pub fn json_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).json_binary().null().take()
}

/// Non-null bytes (`bytea` / `blob`): token hashes, ciphertexts.
#[must_use]
pub fn bytes(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).blob().not_null().take()
}

/// Nullable bytes.
#[must_use]
pub fn bytes_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).blob().null().take()
}

/// A non-null exact decimal: `NUMERIC` on PostgreSQL, `TEXT` on SQLite.
#[must_use]
pub fn money(backend: DbBackend, name: &'static str) -> ColumnDef {
    let mut col = ColumnDef::new(name);
    col.not_null();
    exact_decimal(backend, &mut col);
    col
}

/// A nullable exact decimal.
#[must_use]
pub fn money_null(backend: DbBackend, name: &'static str) -> ColumnDef {
    let mut col = ColumnDef::new(name);
    col.null();
    exact_decimal(backend, &mut col);
    col
}

fn exact_decimal(backend: DbBackend, col: &mut ColumnDef) {
    match backend {
        DbBackend::Sqlite => {
            col.text();
        }
        _ => {
            // Unconstrained NUMERIC: exact, any scale (rust_decimal holds up to 28 digits).
            col.decimal();
        }
    }
}

/// A foreign key from `from_table(from_cols)` to `to_table(to_cols)` with the given delete
/// behaviour. `from_cols`/`to_cols` are a column name or a tuple of names (composite keys make
/// the database refuse, for example, a trader whose recorder and sub-account have different
/// owners).
#[must_use]
pub fn foreign_key<C1: IdenList, C2: IdenList>(
    from_table: &'static str,
    from_cols: C1,
    to_table: &'static str,
    to_cols: C2,
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from_table, from_cols)
        .to(to_table, to_cols)
        .on_delete(on_delete)
        .on_update(ForeignKeyAction::Cascade)
        .take()
}

/// A unique index `ux_<table>_<name>` on `cols`.
#[must_use]
pub fn unique_index(
    table: &'static str,
    name: &str,
    cols: &[&'static str],
) -> IndexCreateStatement {
    let mut idx = Index::create();
    idx.name(format!("ux_{table}_{name}")).table(table).unique();
    for c in cols {
        idx.col(*c);
    }
    idx
}

/// A plain index `ix_<table>_<name>` on `cols`.
#[must_use]
pub fn index(table: &'static str, name: &str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut idx = Index::create();
    idx.name(format!("ix_{table}_{name}")).table(table);
    for c in cols {
        idx.col(*c);
    }
    idx
}

/// Drops `tables` in the given order (children before parents).
///
/// # Errors
/// The first failing `DROP TABLE`.
pub async fn drop_tables(
    manager: &SchemaManager<'_>,
    tables: &[&'static str],
) -> Result<(), DbErr> {
    for t in tables {
        manager
            .drop_table(Table::drop().table(*t).if_exists().take())
            .await?;
    }
    Ok(())
}

/// Creates `table` and then its indexes.
///
/// # Errors
/// The first failing statement.
pub async fn create_table_with_indexes(
    manager: &SchemaManager<'_>,
    table: TableCreateStatement,
    indexes: Vec<IndexCreateStatement>,
) -> Result<(), DbErr> {
    manager.create_table(table).await?;
    for idx in indexes {
        manager.create_index(idx).await?;
    }
    Ok(())
}

/// What [`replace_check`] needs to rebuild a table on SQLite.
pub struct Rebuild {
    /// The table as it is, created under `<table>_rebuilt`, with the new CHECK.
    pub table: TableCreateStatement,
    /// Its columns, comma-separated, as SQL (keywords such as `"trigger"` quoted).
    pub columns: &'static str,
    /// Its indexes, created again after the rename.
    pub indexes: Vec<IndexCreateStatement>,
}

/// Replaces the CHECK that limits `column` of `table` to a list of values with one allowing
/// `values`. PostgreSQL drops the column's CHECK in place — found in `pg_constraint` by its
/// definition, not by the generated name — and adds the new one. SQLite cannot alter a CHECK:
/// the table is rebuilt from `rebuild` (created as `<table>_rebuilt`, rows copied, the old
/// table dropped, the new one renamed, the indexes created again) in **one batch on one
/// connection inside one transaction**, so the pool's other connections never see it half
/// rebuilt and a failure leaves the old table as it was. Only for tables nothing references
/// (no foreign key has to follow the rename).
///
/// # Errors
/// The first failing statement.
pub async fn replace_check(
    manager: &SchemaManager<'_>,
    table: &str,
    column: &str,
    values: &[&str],
    rebuild: Rebuild,
) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let list = values
        .iter()
        .map(|v| format!("'{v}'"))
        .collect::<Vec<_>>()
        .join(", ");
    match manager.get_database_backend() {
        DbBackend::Postgres => {
            db.execute_unprepared(&format!(
                "DO $$ DECLARE c text; BEGIN \
                   FOR c IN SELECT conname FROM pg_constraint \
                     WHERE conrelid = '{table}'::regclass AND contype = 'c' \
                       AND pg_get_constraintdef(oid) LIKE '%{column}%' LOOP \
                     EXECUTE format('ALTER TABLE {table} DROP CONSTRAINT %I', c); \
                   END LOOP; \
                 END $$"
            ))
            .await?;
            db.execute_unprepared(&format!(
                "ALTER TABLE {table} ADD CONSTRAINT {table}_{column}_check \
                 CHECK (\"{column}\" IN ({list}))"
            ))
            .await?;
            Ok(())
        }
        _ => {
            let Rebuild {
                table: rebuilt,
                columns,
                indexes,
            } = rebuild;
            let mut sql = vec![
                "BEGIN".to_owned(),
                rebuilt.to_string(SqliteQueryBuilder),
                format!("INSERT INTO {table}_rebuilt ({columns}) SELECT {columns} FROM {table}"),
                format!("DROP TABLE {table}"),
                format!("ALTER TABLE {table}_rebuilt RENAME TO {table}"),
            ];
            sql.extend(indexes.iter().map(|i| i.to_string(SqliteQueryBuilder)));
            sql.push("COMMIT".to_owned());
            db.execute_unprepared(&sql.join(";\n")).await.map(|_| ())
        }
    }
}
