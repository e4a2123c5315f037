//! W3C trace context across processes: the `traceparent` of a span, to put
//! in an outgoing HTTP request or NATS message, and a span continuing the
//! trace named by an incoming one.
//!
//! Spans only have a trace context while traces are exported (see
//! [`crate::init`]); otherwise these functions do nothing and cost nothing.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header (HTTP and NATS alike) carrying the trace context.
pub const TRACEPARENT: &str = "traceparent";

/// `span`'s trace context as a `traceparent` value; `None` when traces
/// are not exported.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Makes `span` a child of the remote span `traceparent` names (a request's
/// header, a message's); a missing or malformed one leaves `span` the root
/// of a trace of its own.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent else { return };
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
}
