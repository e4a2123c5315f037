//! Deadlines on the HTTP server: half-sent requests and trickled bodies are
//! cut after the configured time; ordinary requests and long-lived
//! WebSockets are not.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use vapora_llm_router::testing::{FakeProvider, Script};

use crate::support::{TestApp, spawn_app_with, test_settings};

const TIMEOUT: Duration = Duration::from_secs(1);
/// What "promptly after the timeout" allows for a loaded test machine.
const SLACK: Duration = Duration::from_millis(1500);

async fn spawn_strict_app() -> TestApp {
    let llm = FakeProvider::start(Script::default()).await;
    let settings = vapora_backend::Settings {
        header_read_timeout: TIMEOUT,
        request_timeout: TIMEOUT,
        ..test_settings(&llm)
    };
    spawn_app_with(llm, settings).await
}

/// Reads until the server closes the connection (or resets it) or has sent
/// a whole response, for at most `within`; returns what it sent, or `None`
/// if it neither answered nor closed.
async fn read_answer(stream: &mut (impl AsyncReadExt + Unpin), within: Duration) -> Option<String> {
    let mut received = Vec::new();
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&received).into_owned()),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
        let text = String::from_utf8_lossy(&received).into_owned();
        if is_whole_response(&text) {
            return Some(text);
        }
    }
}

/// Whether `text` holds a response head and as much body as it announces.
fn is_whole_response(text: &str) -> bool {
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    body.len() >= length
}

#[tokio::test]
async fn half_sent_requests_are_closed_after_the_header_read_timeout() {
    let app = spawn_strict_app().await;
    for sent in [
        "GET /api/v1/projects HTTP/1.1\r\nHost: vapora\r\nAccept:",
        "GET /api/v1/pro",
        "",
    ] {
        let started = Instant::now();
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        stream.write_all(sent.as_bytes()).await.unwrap();
        let answer = read_answer(&mut stream, TIMEOUT + SLACK).await;
        let answer = answer.unwrap_or_else(|| panic!("{sent:?} held the connection open"));
        assert!(
            started.elapsed() >= TIMEOUT - Duration::from_millis(100),
            "{sent:?}"
        );
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{sent:?}: {answer}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_trickled_body_is_answered_408_after_the_request_timeout() {
    let app = spawn_strict_app().await;
    let body = json!({ "name": "x".repeat(80) }).to_string();
    let head = format!(
        "POST /api/v1/projects HTTP/1.1\r\nHost: vapora\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        app.admin_key,
        body.len()
    );
    let started = Instant::now();
    let (mut reader, mut writer) = TcpStream::connect(app.addr).await.unwrap().into_split();
    writer.write_all(head.as_bytes()).await.unwrap();
    // A byte every 200 ms: the whole body would take 18 s.
    let trickle = tokio::spawn(async move {
        for byte in body.into_bytes() {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let answer = read_answer(&mut reader, TIMEOUT + SLACK)
        .await
        .expect("the server gave up on the trickled body");
    assert!(started.elapsed() >= TIMEOUT - Duration::from_millis(100));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    trickle.abort();
    let (_, projects) = app.get("/api/v1/projects").await;
    assert_eq!(projects["items"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn ordinary_requests_and_long_lived_websockets_still_work() {
    let app = spawn_strict_app().await;
    let mut ws = app.websocket("").await;
    // Longer than both timeouts.
    tokio::time::sleep(TIMEOUT * 2 + Duration::from_millis(500)).await;
    let (status, health) = app.get("/health").await;
    assert_eq!((status, health), (StatusCode::OK, json!({ "status": "ok" })));
    let project = app.create_project("still here").await;
    let event = ws.next_event().await;
    assert_eq!(event["type"], "project.created");
    assert_eq!(event["data"]["id"], project["id"]);
    let task = app.create_task(&project["id"], json!({})).await;
    app.wait_for_status(&task["id"], "done").await;
    ws.close().await;
    app.stop().await;
}
