//! Responses and buffers that cannot grow with the data or the client:
//! paged lists, capped WebSocket messages, short echoes of bad ids.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{TestApp, spawn_app};

/// Follows `next_cursor` from `first_url` (which already has a query
/// string), returning every page's items in order.
async fn all_pages(app: &TestApp, first_url: &str) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut url = first_url.to_owned();
    for _ in 0..100 {
        let (status, page) = app.get(&url).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages.push(page["items"].as_array().expect("items").clone());
        match page["next_cursor"].as_str() {
            Some(cursor) => url = format!("{first_url}&cursor={cursor}"),
            None => return pages,
        }
    }
    panic!("{first_url}: still more pages after 100");
}

fn ids(items: &[Value]) -> Vec<&str> {
    items.iter().map(|i| i["id"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn projects_and_agents_are_listed_a_page_at_a_time() {
    let app = spawn_app().await;
    let mut created = Vec::new();
    for name in ["a", "b", "c"] {
        created.push(app.create_project(name).await["id"].as_str().unwrap().to_owned());
    }
    let pages = all_pages(&app, "/api/v1/projects?limit=2").await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1]);
    assert_eq!(ids(&pages.concat()), created, "oldest first, each once");

    let (_, everyone) = app.get("/api/v1/agents?limit=500").await;
    let everyone = everyone["items"].as_array().unwrap().clone();
    assert!(everyone.len() >= 2, "the in-process agents: {everyone:?}");
    let pages = all_pages(&app, "/api/v1/agents?limit=1").await;
    assert!(pages.iter().all(|p| p.len() == 1));
    assert_eq!(ids(&pages.concat()), ids(&everyone));

    let (status, body) = app.get("/api/v1/projects?limit=501").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_query"))
    );
    app.stop().await;
}

#[tokio::test]
async fn board_columns_and_histories_are_paged() {
    let app = spawn_app().await;
    let project = app.create_project("paged").await;
    let pid = project["id"].as_str().unwrap();
    let mut todo = Vec::new();
    for _ in 0..3 {
        todo.push(
            app.create_task(&project["id"], json!({ "dispatch": false }))
                .await,
        );
    }
    let (_, board) = app.get(&format!("/api/v1/projects/{pid}/board?limit=2")).await;
    let column = &board["columns"][0];
    assert_eq!(column["status"], "todo");
    assert_eq!(ids(column["tasks"].as_array().unwrap()), ids(&todo[..2]));
    let cursor = column["next_cursor"]
        .as_str()
        .expect("a fuller column has a cursor");
    let (_, rest) = app
        .get(&format!(
            "/api/v1/tasks?project_id={pid}&status=todo&cursor={cursor}"
        ))
        .await;
    assert_eq!(ids(rest["items"].as_array().unwrap()), ids(&todo[2..]));
    assert_eq!(board["columns"][1]["next_cursor"], Value::Null);

    // todo → queued → running → done: four changes in all.
    let id = todo[0]["id"].as_str().unwrap();
    let (status, _) = app
        .patch(&format!("/api/v1/tasks/{id}"), &json!({ "status": "queued" }))
        .await;
    assert_eq!(status, StatusCode::OK);
    app.wait_for_status(&todo[0]["id"], "done").await;
    let (_, whole) = app.get(&format!("/api/v1/tasks/{id}/history")).await;
    let whole = whole["transitions"].as_array().unwrap().clone();
    assert_eq!(whole.len(), 4, "{whole:?}");
    let mut pages = Vec::new();
    let mut url = format!("/api/v1/tasks/{id}/history?limit=3");
    for _ in 0..10 {
        let (status, page) = app.get(&url).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages.push(page["transitions"].as_array().unwrap().clone());
        match page["next_cursor"].as_str() {
            Some(cursor) => url = format!("/api/v1/tasks/{id}/history?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [3, 1],
        "{pages:?}"
    );
    assert_eq!(pages.concat(), whole);
    app.stop().await;
}

#[tokio::test]
async fn a_huge_websocket_message_is_refused_before_it_is_buffered() {
    let app = spawn_app().await;
    let mut ws = app.websocket("").await.ws;
    // The first of twelve 4 MiB fragments of a 48 MiB binary message (each
    // under the library's default frame limit): the header, then 64 KiB.
    let tokio_tungstenite::MaybeTlsStream::Plain(stream) = ws.get_mut() else {
        panic!("a plain TCP connection")
    };
    let mut header = vec![0x02, 0x80 | 127];
    header.extend_from_slice(&(4u64 * 1024 * 1024).to_be_bytes());
    header.extend_from_slice(&[0, 0, 0, 0]); // masking key
    stream.write_all(&header).await.unwrap();
    let _ = stream.write_all(&vec![0u8; 64 * 1024]).await;

    // The server hangs up (a close frame, end of stream or a reset) at
    // once, rather than waiting for 48 MiB.
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(_)) => assert_eq!(buf[0] & 0x0f, 0x8, "only a close frame may come back"),
        Err(_) => panic!("the server kept reading the oversized message"),
    }
    app.stop().await;
}

#[tokio::test]
async fn a_10_kb_bogus_id_is_not_echoed_back_in_full() {
    let app = spawn_app().await;
    let bogus = "x".repeat(10 * 1024);
    for (path, status, code) in [
        (
            format!("/api/v1/projects/{bogus}"),
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            format!("/api/v1/tasks/{bogus}/history"),
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            format!("/api/v1/agents/{bogus}"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (format!("/api/v1/{bogus}"), StatusCode::NOT_FOUND, "not_found"),
    ] {
        let response = app.http.get(app.url(&path)).send().await.unwrap();
        assert_eq!(response.status(), status, "{}", &path[..20]);
        let body = response.text().await.unwrap();
        assert!(body.len() < 300, "{} bytes: {}…", body.len(), &body[..100]);
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["code"], code);
    }
    app.stop().await;
}

#[tokio::test]
async fn an_oversized_request_head_is_refused_with_431() {
    let app = spawn_app().await;
    let huge = "v".repeat(vapora_backend::server::MAX_HEAD_BYTES);
    let response = app
        .http
        .get(app.url("/api/v1/me"))
        .header("x-padding", huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let mut many = app.http.get(app.url("/api/v1/me"));
    for i in 0..=vapora_backend::server::MAX_HEADERS {
        many = many.header(format!("x-h{i}"), "v");
    }
    assert_eq!(
        many.send().await.unwrap().status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    // Ordinary requests are unaffected.
    assert_eq!(app.get("/api/v1/me").await.0, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn a_history_cursor_past_any_history_is_refused_as_bad_input() {
    let app = spawn_app().await;
    let project = app.create_project("p").await;
    let task = app
        .create_task(&project["id"], json!({ "dispatch": false }))
        .await;
    let id = task["id"].as_str().unwrap();
    for cursor in ["18446744073709551615", "4294967296", "-1"] {
        let (status, body) = app
            .get(&format!("/api/v1/tasks/{id}/history?cursor={cursor}"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{cursor}: {body}");
    }
    let (status, _) = app
        .get(&format!("/api/v1/tasks/{id}/history?cursor=4294967295"))
        .await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}
