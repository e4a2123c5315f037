//! The event feed survives a dropped connection: it reconnects with the
//! last sequence number it saw. Against a scripted SSE server, since the
//! real one cannot be made to drop a connection on cue.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::support::{command_in, run, start};

const HEAD: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n";

/// Reads a request's head and returns its request line.
async fn request_line(socket: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        socket.read_exact(&mut byte).await.expect("a request");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).expect("an ASCII head");
    head.lines().next().unwrap_or_default().to_owned()
}

fn event(seq: u64) -> String {
    format!(
        ": keep-alive\n\nid: {seq}\ndata: {{\"seq\":{seq},\"type\":\"test.event\",\"data\":{{\"n\":{seq}}}}}\n\n"
    )
}

#[tokio::test]
async fn a_dropped_feed_resumes_after_the_last_event() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (requests, mut seen) = mpsc::channel::<String>(4);
    tokio::spawn(async move {
        // First connection: one event, then the connection drops.
        let (mut socket, _) = listener.accept().await.unwrap();
        requests.send(request_line(&mut socket).await).await.unwrap();
        socket
            .write_all(format!("{HEAD}{}", event(41)).as_bytes())
            .await
            .unwrap();
        drop(socket);
        // Second: the next event, then held open.
        let (mut socket, _) = listener.accept().await.unwrap();
        requests.send(request_line(&mut socket).await).await.unwrap();
        socket
            .write_all(format!("{HEAD}{}", event(42)).as_bytes())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
    });

    let home = tempfile::tempdir().unwrap();
    let mut feed = start(command_in(
        home.path(),
        &["--json", "events", "--url", &url, "--key", "k"],
    ));
    let mut lines = feed.stdout();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("a line in time")
            .expect("stdout reads")
            .expect("the feed is open")
    };
    assert_eq!(next().await, r#"{"seq":41,"type":"test.event","data":{"n":41}}"#);
    assert_eq!(next().await, r#"{"seq":42,"type":"test.event","data":{"n":42}}"#);

    let first = seen.recv().await.unwrap();
    assert!(first.starts_with("GET /api/v1/events HTTP/1.1"), "{first}");
    let second = seen.recv().await.unwrap();
    assert!(second.starts_with("GET /api/v1/events?since=41 "), "{second}");
    feed.wait_for_stderr("re-opened").await;
    feed.kill().await;
}

/// A task as the API shows it.
fn task(id: &str, project: &str, status: &str, output: Option<&str>, updated: &str) -> String {
    let result = output.map(|output| {
        serde_json::json!({
            "output": output, "provider": "fake", "model": "m",
            "tokens_in": 1, "tokens_out": 2, "cost_usd": 0.0
        })
    });
    serde_json::json!({
        "id": id, "project_id": project, "title": "t", "description": "", "role": "developer",
        "priority": "medium", "status": status, "requires_approval": false, "attempt": 1,
        "assigned_agent": "developer-1", "result": result, "error": null,
        "created_at": "2025-01-01T00:00:00Z", "updated_at": updated,
        "started_at": "2025-01-01T00:00:01Z", "finished_at": null
    })
    .to_string()
}

#[tokio::test]
async fn a_watch_rereads_the_task_after_a_drop_and_prints_what_it_missed() {
    const TASK: &str = "01900000-0000-7000-8000-000000000001";
    const PROJECT: &str = "01900000-0000-7000-8000-000000000002";
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (feeds, mut feed_requests) = mpsc::channel::<String>(4);
    tokio::spawn(async move {
        let mut task_reads = 0;
        let mut feed_opens = 0;
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let line = request_line(&mut socket).await;
            if line.starts_with(&format!("GET /api/v1/tasks/{TASK} ")) {
                // Running for the first two reads (before and after the
                // feed opens), done with its whole output afterwards.
                task_reads += 1;
                let body = if task_reads <= 2 {
                    task(TASK, PROJECT, "running", None, "2025-01-01T00:00:01Z")
                } else {
                    task(TASK, PROJECT, "done", Some("Hello world"), "2025-01-01T00:00:02Z")
                };
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                socket.write_all(answer.as_bytes()).await.unwrap();
            } else if line.starts_with("GET /api/v1/events") {
                feeds.send(line).await.unwrap();
                feed_opens += 1;
                if feed_opens == 1 {
                    // The first chunk, then the connection drops.
                    let progress = serde_json::json!({
                        "seq": 7, "type": "task.progress",
                        "data": { "task_id": TASK, "project_id": PROJECT, "attempt": 1,
                                  "agent_id": "developer-1", "seq": 0, "chunk": "Hello" }
                    });
                    let frame = format!("{HEAD}id: 7\ndata: {progress}\n\n");
                    socket.write_all(frame.as_bytes()).await.unwrap();
                } else {
                    socket.write_all(HEAD.as_bytes()).await.unwrap();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        drop(socket);
                    });
                }
            }
        }
    });

    let home = tempfile::tempdir().unwrap();
    let run = run(command_in(
        home.path(),
        &["task", "watch", TASK, "--url", &url, "--key", "k"],
    ))
    .await;
    // "Hello" came from the stream; " world" from the task read again after
    // the reconnect, which found it done.
    assert_eq!(run.ok(), "Hello world\n", "{run:#?}");
    assert!(run.stderr.contains(&format!("task {TASK} done")), "{run:#?}");

    let first = feed_requests.recv().await.unwrap();
    assert!(first.contains(&format!("project_id={PROJECT}")), "{first}");
    let second = feed_requests.recv().await.unwrap();
    assert!(second.contains("since=7"), "{second}");
}
