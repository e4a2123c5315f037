//! One span per HTTP request, continuing the caller's trace when the
//! request carries a `traceparent`.

use http::Request;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{MakeSpan, TraceLayer};

use crate::trace_context::{TRACEPARENT, continue_trace};

/// Makes the `http.request` span of a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &Request<B>) -> tracing::Span {
        // At debug: the span is for traces; at the usual `info` it does not
        // prefix every log line written while handling the request.
        let span = tracing::debug_span!(
            "http.request",
            http.request.method = %request.method(),
            url.path = %request.uri().path(),
        );
        let parent = request.headers().get(TRACEPARENT).and_then(|v| v.to_str().ok());
        continue_trace(&span, parent);
        span
    }
}

/// A layer that runs every request in its [`RequestSpan`]. It logs nothing
/// of its own: failures are the handlers' to report (a 503 while storage
/// is away is not an ERROR line per request).
pub fn http_spans() -> TraceLayer<SharedClassifier<ServerErrorsAsFailures>, RequestSpan, (), (), (), (), ()> {
    TraceLayer::new_for_http()
        .make_span_with(RequestSpan)
        .on_request(())
        .on_response(())
        .on_body_chunk(())
        .on_eos(())
        .on_failure(())
}
