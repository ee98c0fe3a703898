//! The REST API (`/api/v1`): what the dashboard and users' scripts use to run the platform —
//! logins and API tokens, broker accounts, recorders and their webhook URLs, traders and their
//! settings, history with reasons, and manual controls — with its OpenAPI 3.1 document at
//! `/api/openapi.json`, generated from the handlers.
//!
//! - Every route is tenant-scoped: the caller's [`auth::Caller`] is the owner passed to the
//!   store's repositories, so another user's id answers 404 exactly like a missing one.
//! - Every error is one JSON body ([`error::ErrorBody`]); bad input is a 4xx naming the field.
//! - Manual trades, flattens and kill switches go through ORDERS as intents of their source
//!   (manual, control): this service never calls a broker to trade. The one broker call it
//!   makes is the login test of a broker account ([`probe::AccountProbe`]).
//!
//! This crate must not hold trading rules (they are `jt-domain`'s), must not write SQL (the
//! store's repositories do), and must not send an order around the executor.

pub mod auth;
pub mod config;
pub mod error;
pub mod mailer;
pub mod probe;
pub mod routes;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use jt_bus::Bus;
use jt_runtime::health::Health;
use jt_store::Store;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;

pub use config::ApiConfig;
pub use mailer::{FileMailer, Mail, Mailer};
pub use probe::{AccountProbe, ProbeError, RegistryProbe};
pub use state::ApiState;

/// The OpenAPI document's frame (title, version, security schemes); the paths come from the
/// routes themselves ([`routes::api`]).
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Just Trades API",
        description = "Users, broker accounts, recorders, traders, history and controls. \
                       Authenticate with the session cookie of `POST /api/v1/auth/login` (writes \
                       then need the `X-CSRF-Token` header) or with `Authorization: Bearer` and \
                       an API token."
    ),
    modifiers(&SecuritySchemes),
    components(schemas(error::ErrorBody, error::ErrorDetail))
)]
struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(auth::SESSION_COOKIE))),
        );
    }
}

/// The routes and their OpenAPI document, before state is attached.
pub fn api_router() -> (Router<ApiState>, utoipa::openapi::OpenApi) {
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", routes::api())
        .split_for_parts();
    (router, doc)
}

/// The OpenAPI document (what `/api/openapi.json` serves).
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().1
}

/// The API's routes with `state`: `/api/v1/…` and `/api/openapi.json`. Unknown routes under
/// `/api/` and wrong methods answer with the error body. The router has no fallback of its
/// own, so it merges with the other services' routers on one listener (`jt dev`).
pub fn router(state: ApiState) -> Router {
    let (router, doc) = api_router();
    let doc = Arc::new(doc);
    router
        .route(
            "/api/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json((*doc).clone()) }
            }),
        )
        .route("/api/{*rest}", axum::routing::any(error::fallback))
        .layer(axum::middleware::from_fn(error::method_not_allowed))
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.max_body_bytes,
        ))
        .with_state(state)
}

/// Registers the API's readiness check: the store (every route needs it). The bus is needed
/// by controls only; a bus outage answers those with 503 and leaves the rest usable.
pub async fn register_health(health: &Health, store: &Store) {
    let store = store.clone();
    health
        .register("store", move || {
            let store = store.clone();
            async move { store.ping().await.map_err(|e| e.to_string()) }
        })
        .await;
}

/// Serves the API (with `/healthz`, `/readyz`, `/metrics`) on `config.listen` until `shutdown`
/// is cancelled, then lets in-flight requests finish.
///
/// # Errors
/// When the listener cannot bind, or the server fails.
pub async fn run(
    config: ApiConfig,
    store: Store,
    bus: Bus,
    health: Health,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    register_health(&health, &store).await;
    let listen = config.listen;
    let probe = Arc::new(RegistryProbe::new(
        store.clone(),
        config.sim_url.clone(),
        config.projectx_url.clone(),
    ));
    let mailer = mailer::from_config(&config)?;
    let state = ApiState::new(config, store, bus, probe, mailer);
    let app = router(state)
        .merge(jt_runtime::health::router(health))
        .fallback(error::fallback);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding JT_HTTP_ADDR={listen}"))?;
    tracing::info!(addr = %listen, "API listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await
    .context("API HTTP server")
}
