//! Concurrency of the shared state: the `RwLock` agent registry, the `Mutex`
//! task queue, and the whole API under concurrent requests. These are the
//! checks named in the shared-state design record; each runs many tasks on
//! the multi-threaded runtime and asserts invariants, not timings.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tokio::sync::Barrier;
use vapora_backend::api::task_queue::SharedTaskQueue;
use vapora_backend::swarm::registry::{Activity, AgentRegistry};
use vapora_shared::{AgentId, AgentStatus, Priority, Role, TaskId};

use crate::support::spawn_app;

fn role(i: usize) -> Role {
    Role::parse(["developer", "tester", "reviewer", "architect"][i % 4]).unwrap()
}

/// Registry writers and readers, queue producers and consumers, all at once:
/// every reader sees a consistent agent, and every queued id comes out once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_concurrent_state_access() {
    let registry = AgentRegistry::default();
    let queue = SharedTaskQueue::new(10_000);
    for i in 0..8 {
        registry
            .register(AgentId(format!("agent-{i}")), role(i), "test")
            .await;
    }
    let mut handles = Vec::new();
    // Writers flip agents between busy (with a task) and idle (without).
    for w in 0..8 {
        let registry = registry.clone();
        handles.push(tokio::spawn(async move {
            let id = AgentId(format!("agent-{w}"));
            for _ in 0..200 {
                let task = TaskId::new();
                registry
                    .note_activity(&id, task, Activity::Started)
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
                registry
                    .note_activity(&id, task, Activity::Succeeded)
                    .await
                    .unwrap();
            }
        }));
    }
    // Readers check the busy <=> has-a-task invariant on every snapshot.
    let inconsistent = Arc::new(AtomicUsize::new(0));
    for _ in 0..8 {
        let (registry, inconsistent) = (registry.clone(), inconsistent.clone());
        handles.push(tokio::spawn(async move {
            for _ in 0..200 {
                for agent in registry.list().await {
                    if (agent.status == AgentStatus::Busy) != agent.current_task.is_some() {
                        inconsistent.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    // Producers and consumers of the queue.
    let produced: Vec<TaskId> = (0..2_000).map(|_| TaskId::new()).collect();
    for (c, chunk) in produced.chunks(250).enumerate() {
        let (queue, chunk) = (queue.clone(), chunk.to_vec());
        handles.push(tokio::spawn(async move {
            // 500 entries per role in all, matching the consumers below.
            for (i, id) in chunk.into_iter().enumerate().map(|(i, id)| (c * 250 + i, id)) {
                let admission = queue.admit().unwrap();
                queue.push(id, 1, role(i), Priority::ALL[i % 4], admission).await;
            }
        }));
    }
    let consumed = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let mut consumers = Vec::new();
    for c in 0..8 {
        let (queue, consumed) = (queue.clone(), consumed.clone());
        consumers.push(tokio::spawn(async move {
            for _ in 0..250 {
                let entry = queue.pop_wait(&role(c)).await;
                consumed.lock().await.push(entry.task_id);
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(30), futures::future::join_all(consumers))
        .await
        .expect("no lost entries");

    assert_eq!(
        inconsistent.load(Ordering::SeqCst),
        0,
        "a reader saw a half-updated agent"
    );
    let consumed = consumed.lock().await;
    let unique: HashSet<_> = consumed.iter().collect();
    assert_eq!(consumed.len(), produced.len(), "every entry consumed");
    assert_eq!(unique.len(), produced.len(), "no entry consumed twice");
    assert!(queue.queue.lock().await.is_empty());
    for agent in registry.list().await {
        assert_eq!((agent.tasks_completed, agent.status), (200, AgentStatus::Idle));
    }
}

/// Readers share the registry lock: 16 readers all hold it at the same time
/// (they meet at a barrier *inside* the read guard — impossible if reads
/// were exclusive, so this would time out).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_rwlock_concurrent_reads() {
    let registry = AgentRegistry::default();
    registry
        .register(AgentId::from("architect-1"), role(3), "test")
        .await;
    let readers = 16;
    let barrier = Arc::new(Barrier::new(readers));
    let handles: Vec<_> = (0..readers)
        .map(|_| {
            let (registry, barrier) = (registry.clone(), barrier.clone());
            tokio::spawn(async move {
                let agents = registry.agents.read().await;
                barrier.wait().await;
                agents.len()
            })
        })
        .collect();
    let sizes = tokio::time::timeout(Duration::from_secs(10), futures::future::join_all(handles))
        .await
        .expect("all readers held the read lock at once");
    assert!(sizes.into_iter().all(|s| s.unwrap() == 1));

    // And a writer waits for readers: it never observes a reader's guard.
    let guard = registry.agents.read().await;
    let writer = {
        let registry = registry.clone();
        tokio::spawn(async move { registry.set_offline(&AgentId::from("architect-1")).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !writer.is_finished(),
        "a writer got in while a reader held the lock"
    );
    drop(guard);
    assert_eq!(writer.await.unwrap().unwrap().status, AgentStatus::Offline);
}

/// The queue mutex is exclusive: no two tasks are ever inside it together,
/// even when they yield while holding it, and no write is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_mutex_exclusive_writes() {
    let queue = SharedTaskQueue::new(100_000);
    let inside = Arc::new(AtomicUsize::new(0));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let writers = 32;
    let per_writer = 200;
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let (queue, inside, overlaps) = (queue.clone(), inside.clone(), overlaps.clone());
            tokio::spawn(async move {
                for _ in 0..per_writer {
                    let guard = queue.queue.lock().await;
                    if inside.fetch_add(1, Ordering::SeqCst) != 0 {
                        overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::task::yield_now().await; // let others try to get in
                    inside.fetch_sub(1, Ordering::SeqCst);
                    drop(guard);
                    let admission = queue.admit().unwrap();
                    queue
                        .push(TaskId::new(), 1, role(w), Priority::Medium, admission)
                        .await;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(overlaps.load(Ordering::SeqCst), 0, "two holders inside the mutex");
    assert_eq!(
        queue.queue.lock().await.len(),
        writers * per_writer,
        "a push was lost"
    );
}

/// Through the HTTP API: concurrent clients create tasks, read agents and
/// the board; every task runs exactly once, and the registry agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_shared_state_integration() {
    let app = spawn_app().await;
    let project = app.create_project("integration").await;
    let clients = 10;
    let per_client = 10;
    let mut handles = Vec::new();
    for c in 0..clients {
        let http = app.http.clone();
        let url = app.url("/api/v1/tasks");
        let agents_url = app.url("/api/v1/agents");
        let pid = project["id"].clone();
        handles.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..per_client {
                let role = ["developer", "tester", "reviewer"][(c + i) % 3];
                let body = json!({ "project_id": pid, "title": format!("c{c} t{i}"), "role": role });
                let response = http.post(&url).json(&body).send().await.unwrap();
                assert_eq!(response.status(), StatusCode::CREATED);
                ids.push(response.json::<serde_json::Value>().await.unwrap()["id"].clone());
                let agents = http.get(&agents_url).send().await.unwrap();
                assert_eq!(agents.status(), StatusCode::OK);
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for h in handles {
        ids.extend(h.await.unwrap());
    }
    for id in &ids {
        let done = app.wait_for_status(id, "done").await;
        assert_eq!(done["attempt"], 1, "ran exactly once");
    }
    assert_eq!(
        app.llm.request_count(),
        clients * per_client,
        "one LLM call per task"
    );
    assert_eq!(
        app.tasks_completed_by_agents().await as usize,
        clients * per_client
    );
    let (_, agents) = app.get("/api/v1/agents").await;
    assert!(
        agents["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["status"] == "idle")
    );
    let (_, board) = app
        .get(&format!(
            "/api/v1/projects/{}/board?limit=500",
            project["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        board["columns"][4]["tasks"].as_array().unwrap().len(),
        clients * per_client
    );
    app.stop().await;
}

/// A long random mix of every queue operation from many tasks at once; the
/// queue's length and its admission permits always add up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_shared_state_stress() {
    let capacity = 500;
    let queue = SharedTaskQueue::new(capacity);
    let registry = AgentRegistry::default();
    let pushed = Arc::new(AtomicUsize::new(0));
    let taken = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..64)
        .map(|t| {
            let (queue, registry) = (queue.clone(), registry.clone());
            let (pushed, taken, refused) = (pushed.clone(), taken.clone(), refused.clone());
            tokio::spawn(async move {
                let agent = AgentId(format!("stress-{t}"));
                registry.register(agent.clone(), role(t), "test").await;
                let mut mine = Vec::new();
                // A small deterministic generator: replayable, no dependency.
                let mut x = (t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                for _ in 0..500 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    match x % 6 {
                        0 | 1 => match queue.admit() {
                            Ok(admission) => {
                                let id = TaskId::new();
                                queue
                                    .push(id, 1, role(t), Priority::ALL[(x % 4) as usize], admission)
                                    .await;
                                mine.push(id);
                                pushed.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(_) => {
                                refused.fetch_add(1, Ordering::SeqCst);
                            }
                        },
                        2 => {
                            if let Some(id) = mine.pop()
                                && queue.remove(id).await
                            {
                                taken.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        3 => {
                            if let Some(id) = mine.last() {
                                queue.requeue_as(*id, role(t + 1), Priority::Critical).await;
                            }
                        }
                        4 => {
                            let popped = queue.queue.lock().await.pop(&role(t));
                            if popped.is_some() {
                                taken.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        _ => {
                            let task = TaskId::new();
                            registry.note_activity(&agent, task, Activity::Started).await;
                            let outcome = if x.is_multiple_of(2) {
                                Activity::Succeeded
                            } else {
                                Activity::Failed
                            };
                            registry.note_activity(&agent, task, outcome).await;
                            assert!(registry.get(&agent).await.is_some());
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let len = queue.queue.lock().await.len();
    assert_eq!(
        len,
        pushed.load(Ordering::SeqCst) - taken.load(Ordering::SeqCst),
        "entries lost or duplicated"
    );
    assert!(len <= capacity);
    // Exactly the free capacity can still be admitted.
    let free: Vec<_> = std::iter::from_fn(|| queue.admit().ok()).collect();
    assert_eq!(free.len(), capacity - len, "admission permits leaked");
    assert!(
        refused.load(Ordering::SeqCst) > 0,
        "the stress never reached capacity"
    );
    assert_eq!(registry.list().await.len(), 64);
}

/// Hundreds of concurrent requests of every kind: all answered, none 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_concurrent_requests() {
    let app = spawn_app().await;
    let project = app.create_project("load").await;
    let pid = project["id"].as_str().unwrap().to_owned();
    let handles: Vec<_> = (0..300)
        .map(|i| {
            let http = app.http.clone();
            let base = app.url("");
            let pid = pid.clone();
            tokio::spawn(async move {
                let response = match i % 5 {
                    0 => http.get(format!("{base}/health")).send().await,
                    1 => {
                        let body = json!({ "project_id": pid, "title": format!("t{i}"), "role": "developer", "dispatch": false });
                        http.post(format!("{base}/api/v1/tasks")).json(&body).send().await
                    }
                    2 => http.get(format!("{base}/api/v1/tasks?project_id={pid}&limit=20")).send().await,
                    3 => http.get(format!("{base}/api/v1/agents")).send().await,
                    _ => http.get(format!("{base}/api/v1/projects/{pid}/board")).send().await,
                };
                response.unwrap().status()
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let status = h.await.unwrap();
        assert!(status.is_success(), "request {i} answered {status}");
    }
    let (_, page) = app
        .get(&format!("/api/v1/tasks?project_id={pid}&limit=500"))
        .await;
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        60,
        "every create stored once"
    );
    app.stop().await;
}
