//! Logs and traces: `tracing` to structured JSON (or human-readable text in `jt dev`), filtered
//! by `RUST_LOG`, and — when `OTEL_EXPORTER_OTLP_ENDPOINT` is set — spans exported over OTLP/HTTP
//! so one alert can be followed from the webhook to every broker order it caused. The W3C trace
//! context propagator is installed globally; [`inject_context`] and [`extract_context`] carry it
//! across NATS headers.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
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
    let otel_layer = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(config.service_name.clone())));

    let registry = tracing_subscriber::registry().with(filter).with(otel_layer);
    match config.format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init()?,
        LogFormat::Pretty => {
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .compact()
                        .with_target(false),
                )
                .try_init()?;
        }
    }
    Ok(TelemetryGuard { provider })
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
