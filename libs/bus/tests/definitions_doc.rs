//! `nats/definitions.json` is the JetStream configuration the bus provisions, generated from
//! the code. This test fails when they differ; `JT_BLESS=1 cargo test -p jt-bus --test
//! definitions_doc` rewrites the file.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::path::Path;

use jt_bus::{Definitions, Namespace};

#[test]
fn nats_definitions_json_matches_the_code() {
    let topology = Definitions::new(&Namespace::production()).topology();
    let generated =
        serde_json::to_string_pretty(&jt_bus::jetstream::describe(&topology)).unwrap() + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../nats/definitions.json");
    if std::env::var_os("JT_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let documented = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        documented == generated,
        "{} is out of date: run `JT_BLESS=1 cargo test -p jt-bus --test definitions_doc` and commit it",
        path.display()
    );
}
