//! Logs and traces: `tracing` to structured JSON (or human-readable text in `jt dev`), filtered
//! by `RUST_LOG`, and — when `OTEL_EXPORTER_OTLP_ENDPOINT` is set — spans exported over OTLP/HTTP
//! so one alert can be followed from the webhook to every broker order it caused. The W3C trace
//! context propagator is installed globally; [`inject_context`] and [`extract_context`] carry it
//! across NATS headers, and [`http_server_span`] opens the server span of every HTTP request.
//!
//! Spans are exported whatever `RUST_LOG` says: the log filter applies to log lines only, and
//! the exporter takes every `info` span of ours (an operator quietening logs to `warn` must not
//! lose the traces with them).

use std::collections::HashMap;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (production; what log shippers parse).
    Json,
    /// Human-readable lines (`jt dev`, operator commands).
    Pretty,
}

/// Telemetry settings of one process.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// `service.name` of exported spans (e.g. `jt-executor`).
    pub service_name: String,
    /// Log line format.
    pub format: LogFormat,
    /// Filter directives when `RUST_LOG` is unset (e.g. `info`).
    pub default_filter: String,
    /// OTLP/HTTP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`); `None` = no span export.
    pub otlp_endpoint: Option<String>,
}

/// Keeps the span exporter alive; dropping it flushes buffered spans.
#[derive(Debug)]
#[must_use = "dropping the guard stops span export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(err) = provider.shutdown()
        {
            eprintln!("telemetry: flushing spans at exit failed: {err}");
        }
    }
}

/// Installs the global subscriber and propagator. Call once, at the start of a binary.
///
/// # Errors
/// An invalid `RUST_LOG`, an OTLP exporter that cannot be built, or a subscriber already set.
pub fn init(config: &TelemetryConfig) -> anyhow::Result<TelemetryGuard> {
    crate::tls::install_crypto_provider();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(directives)
            .map_err(|e| anyhow::anyhow!("RUST_LOG is invalid: {e}"))?,
        _ => EnvFilter::try_new(&config.default_filter)?,
    };

    let provider = match &config.otlp_endpoint {
        Some(endpoint) => Some(otlp_provider(&config.service_name, endpoint)?),
        None => None,
    };
    let otel_layer = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(config.service_name.clone()))
            .with_filter(EnvFilter::new(TRACE_FILTER))
    });

    // Each layer its own filter: `RUST_LOG` chooses log lines, not which spans are exported.
    let registry = tracing_subscriber::registry().with(otel_layer);
    match config.format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_filter(filter),
            )
            .try_init()?,
        LogFormat::Pretty => {
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .compact()
                        .with_target(false)
                        .with_filter(filter),
                )
                .try_init()?;
        }
    }
    Ok(TelemetryGuard { provider })
}

/// What the span exporter takes: our `info` spans (and their events), not the chatter of the
/// database, NATS and HTTP libraries, which would turn one alert's trace into hundreds of spans.
/// Nor the bus consumer's own `bus.message` span: the handler's span continues the producer's
/// trace (from the message's headers), so that span would only be a one-span trace per message.
const TRACE_FILTER: &str = "info,jt_bus::consume=warn,sqlx=warn,sea_orm=warn,async_nats=warn,\
                            h2=warn,hyper=warn,hyper_util=warn,reqwest=warn,rustls=warn,tower=warn";

fn otlp_provider(service_name: &str, endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    let traces = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(traces)
        .with_headers(HashMap::new())
        .build()
        .map_err(|e| anyhow::anyhow!("OTEL_EXPORTER_OTLP_ENDPOINT={endpoint:?}: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service_name.to_string())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

struct MapInjector<'a>(&'a mut Vec<(String, String)>);

impl Injector for MapInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_string(), value));
    }
}

struct MapExtractor<'a>(&'a [(String, String)]);

impl Extractor for MapExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// The current span's W3C trace context as header pairs (`traceparent`, `tracestate`), empty
/// when there is no sampled OpenTelemetry context (no exporter configured).
#[must_use]
pub fn inject_context() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let cx = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&cx, &mut MapInjector(&mut out));
    out
}

/// Makes `span` a child of the trace context carried in `headers` (if any).
pub fn extract_context(span: &tracing::Span, headers: &[(String, String)]) {
    let parent = TraceContextPropagator::new().extract(&MapExtractor(headers));
    // An error only means the span is disabled by the filter; nothing to attach to.
    let _ = span.set_parent(parent);
}

/// Axum middleware (`axum::middleware::from_fn(http_server_span)`, added with
/// `Router::layer`): one server span per request, after OpenTelemetry's HTTP semantic
/// conventions — named `{method} {route}`, with `http.request.method`, `http.route`,
/// `server.address`, `server.port` and `http.response.status_code`; a 5xx marks it an error.
///
/// The span is a root: a `traceparent` sent by the caller is ignored, because the listener faces
/// the internet (TradingView, browsers) and a stranger must not choose our trace ids or
/// sampling. The concrete path is left out on purpose: a webhook URL carries its secret token
/// (`/webhook/{token}` is the route, the path would be the secret).
pub async fn http_server_span(request: Request, next: Next) -> Response {
    let method = known_method(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let name = match &route {
        Some(route) => format!("{method} {route}"),
        None => method.to_owned(),
    };
    let (address, port) = request
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(split_host)
        .unwrap_or_default();
    let span = tracing::info_span!(
        "http_server",
        otel.name = %name,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        http.route = route.as_deref(),
        server.address = address.as_deref(),
        server.port = port,
        http.response.status_code = tracing::field::Empty,
    );
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "error");
    }
    response
}

/// The method as OpenTelemetry names it: one of the standard methods, or `_OTHER` (a client
/// can send any token as a method; span names and attributes stay bounded).
fn known_method(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// `host[:port]` (or `[v6]:port`) of a `Host` header.
fn split_host(host: &str) -> (Option<String>, Option<u16>) {
    match host.rsplit_once(':') {
        Some((name, port)) if !name.is_empty() && !port.contains(']') => {
            (Some(name.to_owned()), port.parse().ok())
        }
        _ => (Some(host.to_owned()), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_headers_split_into_address_and_port() {
        assert_eq!(
            split_host("example.com:8443"),
            (Some("example.com".into()), Some(8443))
        );
        assert_eq!(
            split_host("example.com"),
            (Some("example.com".into()), None)
        );
        assert_eq!(split_host("[::1]:80"), (Some("[::1]".into()), Some(80)));
        assert_eq!(split_host("[::1]"), (Some("[::1]".into()), None));
    }

    #[test]
    fn unknown_methods_are_bounded() {
        assert_eq!(known_method(&axum::http::Method::POST), "POST");
        let odd = axum::http::Method::from_bytes(b"BREW").unwrap();
        assert_eq!(known_method(&odd), "_OTHER");
    }

    #[test]
    fn extracting_a_context_without_headers_is_harmless() {
        let span = tracing::info_span!("test");
        extract_context(&span, &[]);
        assert!(inject_context().is_empty(), "no exporter, no context");
    }

    #[test]
    fn extractor_reads_headers_case_insensitively() {
        let h = vec![("TraceParent".to_string(), "00-abc".to_string())];
        assert_eq!(MapExtractor(&h).get("traceparent"), Some("00-abc"));
    }
}
