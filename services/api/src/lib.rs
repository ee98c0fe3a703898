//! The REST API (`/api/v1`): what the dashboard and users' scripts use to run the platform —
//! logins and API tokens, broker accounts, recorders and their webhook URLs, traders and their
//! settings, history with reasons, and manual controls — with its OpenAPI 3.1 document at
//! `/api/openapi.json`, generated from the handlers — and the dashboard that uses it, served
//! at `/` ([`dashboard`]).
//!
//! - Every route is tenant-scoped: the caller's [`auth::Caller`] is the owner passed to the
//!   store's repositories, so another user's id answers 404 exactly like a missing one.
//! - Every error is one JSON body ([`error::ErrorBody`]); bad input is a 4xx naming the field.
//! - Live updates (`GET /api/v1/events`, [`events`]) are Server-Sent Events fed by one poll
//!   of the store per user per replica.
//! - Manual trades, flattens and kill switches go through ORDERS as intents of their source
//!   (manual, control): this service never calls a broker to trade. The one broker call it
//!   makes is the login test of a broker account ([`probe::AccountProbe`]).
//!
//! This crate must not hold trading rules (they are `jt-domain`'s), must not write SQL (the
//! store's repositories do), and must not send an order around the executor.

pub mod auth;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod mailer;
pub mod metrics;
pub mod probe;
pub mod routes;
pub mod state;
pub mod whop;

use std::sync::Arc;

use axum::Router;
use jt_service::{Context, Running};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;

pub use config::ApiConfig;
pub use mailer::{FileMailer, Mail, Mailer};
pub use probe::{AccessProbe, AccountProbe, ProbeError};
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

/// The API's routes with `state`: `/api/v1/…`, `/api/openapi.json` and the dashboard (`/`,
/// its pages and `/assets/…`, [`dashboard`]). Unknown routes under `/api/` and wrong methods
/// answer with the error body. The router has no fallback of its own, so it merges with the
/// other services' routers on one listener (`jt dev`).
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
        // Outside the OpenAPI document: a never-ending answer (`events` says why).
        .route("/api/v1/events", axum::routing::get(events::stream))
        .route("/api/{*rest}", axum::routing::any(error::fallback))
        .layer(axum::middleware::from_fn(error::method_not_allowed))
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.max_body_bytes,
        ))
        .with_state(state)
        .merge(dashboard::router())
        .route_layer(axum::middleware::from_fn(metrics::track))
}

/// Starts the API as a service of the common skeleton: its routes (`/api/v1/…`,
/// `/api/openapi.json`) for the process's listener, over the context's store, bus and broker
/// access. Readiness: the store is required (every route needs it); the bus is not — a bus
/// outage answers controls with 503 and leaves the rest usable.
///
/// # Errors
/// When the mailer cannot be set up.
pub async fn start(config: ApiConfig, ctx: &Context) -> anyhow::Result<Running> {
    let store = ctx.store.clone();
    ctx.health
        .register("store", move || {
            let store = store.clone();
            async move { store.ping().await.map_err(|e| e.to_string()) }
        })
        .await;
    let mailer = mailer::from_config(&config)?;
    let probe = AccessProbe::new(ctx.brokers.clone()).shared();
    let whop_sync = config
        .whop
        .clone()
        .and_then(|w| w.api_key.clone().map(|k| (w, k)));
    let state = ApiState::new(config, ctx.store.clone(), ctx.bus.clone(), probe, mailer);
    // The only background work: Whop's periodic sync, when its API key is set.
    let sync = match whop_sync {
        Some((w, key)) => {
            let source = whop::WhopHttp::new(&w.api_url, key).map_err(anyhow::Error::msg)?;
            Some(tokio::spawn(whop::run_sync(
                state.clone(),
                w,
                Box::new(source),
                ctx.shutdown.clone(),
            )))
        }
        None => None,
    };
    let stop = ctx.shutdown.clone();
    let hub = state.events.clone();
    let task = tokio::spawn(async move {
        stop.cancelled().await;
        // Open live streams end now, or the listener's graceful shutdown would wait on them.
        hub.close();
        if let Some(s) = sync {
            let _ = s.await;
        }
        Ok(())
    });
    Ok(Running::new("api", router(state), task))
}
