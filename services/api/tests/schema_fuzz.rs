//! Property-based test of the whole API against its own OpenAPI document: Schemathesis (PyPI,
//! pinned and installed on first use by `scripts/schemathesis`) generates valid and invalid
//! requests for every operation of `/api/openapi.json`, as a logged-in user with an API token
//! and some data of their own, on PostgreSQL. Every answer must be no 5xx and match the schema.
//!
//! `make test` runs a short version (`JT_API_FUZZ_EXAMPLES`, default 8 per operation); `make
//! api-fuzz` runs the long one. A run that finds a failure prints Schemathesis' report with a
//! `curl` line reproducing it. Python 3 with venv and pip is required: without it the test fails
//! and says so.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use jt_api::{AccessProbe, ApiConfig, ApiState, FileMailer};
use jt_bus::{Bus, Definitions, Namespace};
use jt_connect::{AccessConfig, BrokerAccess};
use jt_domain::Settings;
use jt_store::repo::accounts::{BrokerCredentials, NewBrokerAccount};
use jt_store::repo::auth::NewUser;
use jt_store::repo::recorders::NewRecorder;
use jt_store::{BrokerKind, Environment, Role, Secret, SecretKey, Store, StoreConfig};
use jt_testkit::TestDatabase;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/schemathesis")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_without_a_server_error_and_as_its_schema_says() {
    jt_runtime::tls::install_crypto_provider();
    let db = TestDatabase::create().await;
    let store = Store::connect(
        &StoreConfig::new(db.url().to_string()).with_secret_key(SecretKey::generate()),
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let bus = Bus::embedded(Namespace::unique());
    bus.provision(&Definitions::new(bus.namespace()).topology())
        .await
        .unwrap();

    // A user with data of their own, so generated ids and bodies also reach real rows.
    let user = store
        .users()
        .register(NewUser {
            email: "fuzz@example.com".into(),
            display_name: Some("Fuzz".into()),
            password: Secret::new("correct horse battery"),
            role: Role::User,
            approved: true,
        })
        .await
        .unwrap();
    let (_, token) = store
        .api_tokens()
        .create(user.id, "schemathesis", None)
        .await
        .unwrap();
    store
        .accounts()
        .create(
            user.id,
            NewBrokerAccount {
                label: "simulator".into(),
                broker: BrokerKind::Sim,
                environment: Environment::Demo,
                username: Some("fuzz".into()),
                credentials: BrokerCredentials {
                    password: Some(Secret::new("sim-password")),
                    ..BrokerCredentials::default()
                },
                require_brackets: false,
            },
        )
        .await
        .unwrap();
    store
        .recorders()
        .create(
            user.id,
            NewRecorder {
                name: "Fuzz MNQ".into(),
                symbol: Some("MNQ1!".into()),
                settings: Settings::default(),
                commission_per_contract: rust_decimal::Decimal::ZERO,
            },
        )
        .await
        .unwrap();

    let mail = tempfile_dir();
    let config = ApiConfig {
        public_url: "https://jt.example.com".into(),
        mail_dir: Some(mail.clone()),
        ..ApiConfig::default()
    };
    // No simulator address: a connection test answers the reason, as for an unreachable broker.
    let probe = Arc::new(AccessProbe::new(Arc::new(BrokerAccess::new(
        store.clone(),
        AccessConfig::default(),
    ))));
    let state = ApiState::new(
        config,
        store.clone(),
        bus,
        probe,
        Arc::new(FileMailer::new(&mail, "jt <no-reply@jt.test>")),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            jt_api::router(state).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    let examples = std::env::var("JT_API_FUZZ_EXAMPLES").unwrap_or_else(|_| "8".into());
    let report = tempfile_dir();
    let run = tokio::task::spawn_blocking(move || {
        Command::new(script())
            .args([
                "run",
                &format!("http://{addr}/api/openapi.json"),
                "--checks",
                "not_a_server_error,response_schema_conformance",
                "--max-examples",
                &examples,
                "--seed",
                "20261206",
                "--workers",
                "1",
                "--request-timeout",
                "20",
                // Nothing kept between runs (no example database in the source tree).
                "--generation-database",
                "none",
                "--header",
                &format!("Authorization: Bearer {}", token.expose()),
                "--report",
                "junit",
                "--report-dir",
            ])
            .arg(&report)
            // Schemathesis keeps a cache in its working directory: a temporary one.
            .current_dir(&report)
            .output()
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| {
        panic!(
            "cannot run {} (needs python3 with venv and pip): {e}",
            script().display()
        )
    });
    server.abort();
    let out = String::from_utf8_lossy(&run.stdout);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "Schemathesis found failures (or could not run):\n{out}\n{err}"
    );
    // It really exercised the API: the summary names the operations it tested.
    assert!(
        out.contains("passed") && !out.contains("No operations"),
        "{out}\n{err}"
    );
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("jt-api-fuzz-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
