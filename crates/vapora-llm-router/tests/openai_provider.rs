//! The OpenAI-protocol provider against a real local server speaking it.

use std::time::Duration;

use futures::StreamExt;
use vapora_llm_router::providers::Endpoint;
use vapora_llm_router::providers::openai::{OpenAiProvider, openai};
use vapora_llm_router::testing::{FakeProvider, Script, collect_stream};
use vapora_llm_router::{ChatMessage, ChatRequest, LlmClient, LlmError, Pricing, StreamEvent};

fn provider(server: &FakeProvider) -> OpenAiProvider {
    let pricing = Pricing {
        input_per_mtok: 1.0,
        output_per_mtok: 2.0,
    };
    openai(Endpoint {
        name: "fake".into(),
        base_url: server.base_url(),
        api_key: Some("sk-test".into()),
        model: "fake-model".into(),
        pricing,
        timeout: Duration::from_secs(5),
    })
    .unwrap()
}

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::system("be brief"), ChatMessage::user("hi")],
        ..Default::default()
    }
}

#[tokio::test]
async fn complete_reads_text_usage_and_prices_it() {
    let server = FakeProvider::start(Script {
        usage: Some((1_000, 500)),
        ..Script::text(&["Hi ", "there"])
    })
    .await;
    let done = provider(&server).complete(&request()).await.unwrap();
    assert_eq!(done.text, "Hi there");
    assert_eq!(
        (
            done.usage.input_tokens,
            done.usage.output_tokens,
            done.usage.estimated
        ),
        (1_000, 500, false)
    );
    assert!((done.cost_usd - 0.002).abs() < 1e-12, "{}", done.cost_usd);
    assert_eq!(done.provider, "fake");
    let sent = &server.requests()[0];
    assert_eq!(sent["model"], "fake-model");
    assert_eq!(sent["messages"][1]["content"], "hi");
    assert_eq!(sent["stream"], false);
}

#[tokio::test]
async fn stream_yields_deltas_then_one_finished_with_usage() {
    let server = FakeProvider::start(Script {
        usage: Some((7, 3)),
        ..Script::text(&["a", "b", "c"])
    })
    .await;
    let (text, events) = collect_stream(provider(&server).stream(&request()).await.unwrap()).await;
    assert_eq!(text, "abc");
    let Some(Ok(StreamEvent::Finished(done))) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(
        (
            done.text.as_str(),
            done.usage.input_tokens,
            done.usage.output_tokens
        ),
        ("abc", 7, 3)
    );
    assert!(!done.usage.estimated);
    assert_eq!(server.requests()[0]["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn stream_without_usage_is_estimated_not_zero() {
    let server = FakeProvider::start(Script {
        usage: None,
        ..Script::text(&["some output text"])
    })
    .await;
    let (_, events) = collect_stream(provider(&server).stream(&request()).await.unwrap()).await;
    let Some(Ok(StreamEvent::Finished(done))) = events.last() else {
        panic!("{events:?}")
    };
    assert!(done.usage.estimated);
    assert!(done.usage.input_tokens > 0 && done.usage.output_tokens > 0);
}

#[tokio::test]
async fn cut_stream_is_an_error_not_a_clean_finish() {
    let server = FakeProvider::start(Script {
        disconnect_after: Some(2),
        ..Script::text(&["a", "b", "c", "d"])
    })
    .await;
    let (text, events) = collect_stream(provider(&server).stream(&request()).await.unwrap()).await;
    assert_eq!(text, "ab");
    assert!(
        matches!(events.last(), Some(Err(e)) if e.is_retryable()),
        "{events:?}"
    );
    assert!(!events.iter().any(|e| matches!(e, Ok(StreamEvent::Finished(_)))));
}

#[tokio::test]
async fn http_errors_carry_status_and_retry_after() {
    let server = FakeProvider::start(Script {
        retry_after: Some(7),
        ..Script::status(429)
    })
    .await;
    let err = provider(&server).complete(&request()).await.unwrap_err();
    let LlmError::Status {
        status, retry_after, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!((*status, *retry_after), (429, Some(Duration::from_secs(7))));
    assert!(err.is_retryable());

    server.push(Script::status(400));
    let Err(err) = provider(&server).stream(&request()).await else {
        panic!("a 400 must fail")
    };
    assert!(!err.is_retryable(), "a 400 would fail anywhere: {err:?}");
}

#[tokio::test]
async fn dropping_a_stream_closes_the_connection() {
    let server = FakeProvider::start(Script {
        chunk_delay: Duration::from_millis(50),
        ..Script::text(&["a", "b", "c", "d", "e", "f", "g", "h"])
    })
    .await;
    let mut stream = provider(&server).stream(&request()).await.unwrap();
    assert!(matches!(stream.next().await, Some(Ok(StreamEvent::Delta(_)))));
    drop(stream);
    tokio::time::timeout(Duration::from_secs(5), async {
        while server.dropped_streams() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the server saw the client go away");
}

#[tokio::test]
async fn unreachable_server_is_a_retryable_connect_error() {
    let server = FakeProvider::start(Script::default()).await;
    let url = server.base_url();
    drop(server);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let p = openai(Endpoint {
        name: "gone".into(),
        base_url: url,
        api_key: None,
        model: "m".into(),
        pricing: Pricing::default(),
        timeout: Duration::from_secs(1),
    })
    .unwrap();
    let err = p.complete(&request()).await.unwrap_err();
    assert!(matches!(err, LlmError::Connect { .. }), "{err:?}");
}
