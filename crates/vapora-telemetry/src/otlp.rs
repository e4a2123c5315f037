//! Exporting spans over OTLP/HTTP, configured by the standard
//! `OTEL_EXPORTER_OTLP_*` and `OTEL_BSP_*` variables. Only Vapora's own
//! spans go out (targets `vapora*`), whatever `RUST_LOG` says: the libraries'
//! spans would multiply the volume without telling more about a task.
//!
//! The encoding is JSON (`http/json`), which every OTLP/HTTP receiver
//! accepts (the OpenTelemetry Collector, Jaeger, Tempo): protobuf would add
//! prost and generated code to every binary for no difference a collector
//! sees.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::registry::LookupSpan;

use crate::UnknownLogFormat;

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error(transparent)]
    LogFormat(#[from] UnknownLogFormat),
    #[error("OTEL_EXPORTER_OTLP_PROTOCOL must be http/json (or unset), not {0:?}")]
    Protocol(String),
    #[error("OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("installing the logger: {0}")]
    Subscriber(#[from] tracing_subscriber::util::TryInitError),
}

/// The layer that hands spans to the exporter.
pub(crate) type SpanLayer<S> = Box<dyn Layer<S> + Send + Sync>;

/// Holds the span exporter, when there is one.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// The exporter and the layer feeding it, if an endpoint is configured.
    pub(crate) fn from_env<S>(service: &str) -> Result<(Self, Option<SpanLayer<S>>), TelemetryError>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        let configured = [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ]
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()));
        if !configured {
            return Ok((Self { provider: None }, None));
        }
        let protocol = match std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL")
            .ok()
            .as_deref()
            .map(str::trim)
        {
            None | Some("" | "http/json") => Protocol::HttpJson,
            Some(other) => return Err(TelemetryError::Protocol(other.to_owned())),
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .build()?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(service.to_owned()).build())
            .build();
        let tracer = provider.tracer(service.to_owned());
        let layer = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(filter_fn(|meta| meta.target().starts_with("vapora")))
            .boxed();
        Ok((
            Self {
                provider: Some(provider),
            },
            Some(layer),
        ))
    }

    /// Whether spans are exported.
    pub fn exports_traces(&self) -> bool {
        self.provider.is_some()
    }

    /// Sends the spans still waiting and stops the exporter.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            tracing::info!(error = %e, "trace exporter did not shut down cleanly");
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.stop();
    }
}
