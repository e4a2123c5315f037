//! Access control: every route needs a key; member and viewer keys reach
//! only their projects (404 elsewhere, never 403, so ids cannot be probed);
//! viewers cannot write; a revoked key stops working on every replica.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{ApiClient, TestApp, client_with_key, spawn_app, spawn_replica};

/// Every keyed route, as the served OpenAPI document lists them (the
/// router serves exactly what it documents), with `{id}` filled in by the
/// kind of resource and a body where the route takes one.
async fn keyed_routes(app: &TestApp, project: &str, task: &str) -> Vec<(Method, String, Option<Value>)> {
    let (status, document) = app.get("/api-docs/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let mut routes = Vec::new();
    for (template, item) in document["paths"].as_object().unwrap() {
        if !template.starts_with("/api/v1/") {
            continue;
        }
        let id = match template.split('/').nth(3) {
            Some("projects") => project,
            Some("tasks") => task,
            Some("agents") => "agent-1",
            _ => "0123456789abcdef",
        };
        let path = template.replace("{id}", id);
        for (method, operation) in item.as_object().unwrap() {
            let body = operation.get("requestBody").map(|_| json!({}));
            routes.push((method.to_uppercase().parse().unwrap(), path.clone(), body));
        }
    }
    assert_eq!(routes.len(), 37, "every keyed route is documented: {routes:?}");
    routes
}

#[tokio::test]
async fn every_route_refuses_a_missing_malformed_unknown_or_revoked_key() {
    let app = spawn_app().await;
    let project = app.create_project("p").await;
    let task = app
        .create_task(&project["id"], json!({ "dispatch": false }))
        .await;
    let (revoked, revoked_id) = app.issue_key("admin", &[]).await;
    let (status, _) = app
        .api()
        .send(Method::DELETE, &format!("/api/v1/keys/{revoked_id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let unknown = vapora_backend::auth::PresentedKey::generate();
    let unknown = secrecy::ExposeSecret::expose_secret(&unknown.reveal()).to_owned();

    let anonymous = reqwest::Client::new();
    let clients = [
        ("no key", anonymous.clone()),
        ("a malformed key", client_with_key("vk_not-a-key")),
        ("another scheme", {
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert("authorization", "Basic YWRtaW46YWRtaW4=".parse().unwrap());
            reqwest::Client::builder()
                .default_headers(headers)
                .build()
                .unwrap()
        }),
        ("an unknown key", client_with_key(&unknown)),
        ("a revoked key", client_with_key(&revoked)),
    ];
    let routes = keyed_routes(
        &app,
        project["id"].as_str().unwrap(),
        task["id"].as_str().unwrap(),
    )
    .await;
    for (who, client) in &clients {
        for (method, path, body) in &routes {
            let mut request = client.request(method.clone(), app.url(path));
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.unwrap();
            let what = format!("{method} {path} with {who}");
            let headers = response.headers().clone();
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
            assert_eq!(body["error"]["code"], "unauthorized", "{what}: {body}");
            let challenge = headers["www-authenticate"].to_str().unwrap();
            assert!(
                challenge.starts_with("Bearer realm=\"vapora\""),
                "{what}: {challenge}"
            );
        }
    }
    // The probes and the rest of the world need none.
    for path in ["/health", "/ready", "/metrics"] {
        let response = anonymous.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    // Nothing was changed by any of it.
    assert_eq!(app.task(&task["id"]).await["status"], "todo");
    let (_, projects) = app.get("/api/v1/projects").await;
    assert_eq!(projects["items"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_websocket_without_a_usable_key_is_refused_at_the_upgrade() {
    let app = spawn_app().await;
    for key in [
        "vk_garbage",
        "vk_0123456789abcdef_0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        assert_eq!(upgrade_refusal(&app, "", key).await, StatusCode::UNAUTHORIZED);
    }
    app.stop().await;
}

/// The status a WebSocket upgrade was refused with.
async fn upgrade_refusal(app: &TestApp, query: &str, key: &str) -> StatusCode {
    match app.websocket_with_key(query, key).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status(),
        Err(other) => panic!("the upgrade failed without an HTTP answer: {other}"),
        Ok(_) => panic!("the upgrade was accepted"),
    }
}

/// Two projects, each with a task, made by the admin.
struct TwoProjects {
    a: Value,
    b: Value,
    task_a: Value,
    task_b: Value,
}

async fn two_projects(app: &TestApp) -> TwoProjects {
    let a = app.create_project("a").await["id"].clone();
    let b = app.create_project("b").await["id"].clone();
    let task_a = app.create_task(&a, json!({ "dispatch": false })).await["id"].clone();
    let task_b = app.create_task(&b, json!({ "dispatch": false })).await["id"].clone();
    TwoProjects { a, b, task_a, task_b }
}

/// Every read and write of project `project` and task `task`.
fn project_routes(project: &Value, task: &Value) -> Vec<(Method, String, Option<Value>)> {
    let (p, t) = (project.as_str().unwrap(), task.as_str().unwrap());
    vec![
        (Method::GET, format!("/api/v1/projects/{p}"), None),
        (Method::GET, format!("/api/v1/projects/{p}/board"), None),
        (
            Method::PATCH,
            format!("/api/v1/projects/{p}"),
            Some(json!({"description": "mine now"})),
        ),
        (Method::GET, format!("/api/v1/tasks/{t}"), None),
        (Method::GET, format!("/api/v1/tasks/{t}/history"), None),
        (
            Method::PATCH,
            format!("/api/v1/tasks/{t}"),
            Some(json!({"title": "mine now"})),
        ),
        (Method::POST, format!("/api/v1/tasks/{t}/cancel"), Some(json!({}))),
        (Method::POST, format!("/api/v1/tasks/{t}/retry"), Some(json!({}))),
        (
            Method::POST,
            format!("/api/v1/tasks/{t}/approve"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/api/v1/tasks/{t}/reject"),
            Some(json!({"comment": "again"})),
        ),
        (Method::GET, format!("/api/v1/budgets?project_id={p}"), None),
        (
            Method::POST,
            "/api/v1/tasks".into(),
            Some(json!({"project_id": p, "title": "t", "role": "developer"})),
        ),
        (Method::DELETE, format!("/api/v1/projects/{p}"), None),
    ]
}

async fn ids_in(api: &ApiClient, path: &str) -> Vec<Value> {
    let (status, page) = api.get(path).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].clone())
        .collect()
}

#[tokio::test]
async fn a_member_key_reaches_only_its_own_projects() {
    let app = spawn_app().await;
    let p = two_projects(&app).await;
    let (key, _) = app.issue_key("member", &[&p.a]).await;
    let member = app.api_as(&key);

    for (method, path, body) in project_routes(&p.b, &p.task_b) {
        let (status, answer) = member.send(method.clone(), &path, body.as_ref()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
        assert_eq!(answer["error"]["code"], "not_found", "{method} {path}");
    }
    // B is untouched, and still the admin's to see.
    assert_eq!(app.task(&p.task_b).await["title"], "Write the parser");
    assert_eq!(
        app.get(&format!("/api/v1/projects/{}", p.b.as_str().unwrap()))
            .await
            .0,
        StatusCode::OK
    );

    // Lists leave B out, even when asked for it by name.
    assert_eq!(
        ids_in(&member, "/api/v1/projects").await,
        std::slice::from_ref(&p.a)
    );
    assert_eq!(
        ids_in(&member, "/api/v1/tasks").await,
        std::slice::from_ref(&p.task_a)
    );
    let b_tasks = format!("/api/v1/tasks?project_id={}", p.b.as_str().unwrap());
    assert!(ids_in(&member, &b_tasks).await.is_empty());
    assert_eq!(ids_in(&app.api(), "/api/v1/tasks").await.len(), 2);

    // On A, everything works.
    for (method, path, body) in project_routes(&p.a, &p.task_a) {
        let (status, answer) = member.send(method.clone(), &path, body.as_ref()).await;
        assert!(
            status.is_success() || status == StatusCode::CONFLICT,
            "{method} {path}: {status} {answer}"
        );
    }

    // Keys and dead letters are the admin's.
    assert_eq!(member.get("/api/v1/keys").await.0, StatusCode::FORBIDDEN);
    assert_eq!(member.get("/api/v1/dead-letters").await.0, StatusCode::FORBIDDEN);
    let (status, me) = member.get("/api/v1/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (me["role"].clone(), me["projects"].clone()),
        (json!("member"), json!([p.a]))
    );
    assert!(me.get("hash").is_none(), "{me}");

    // A project the member creates is its own from then on.
    let (status, c) = member.post("/api/v1/projects", &json!({"name": "c"})).await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    let c_path = format!("/api/v1/projects/{}", c["id"].as_str().unwrap());
    assert_eq!(member.get(&c_path).await.0, StatusCode::OK);
    let (status, _) = member
        .post(
            "/api/v1/tasks",
            &json!({"project_id": c["id"], "title": "t", "role": "developer", "dispatch": false}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    app.stop().await;
}

#[tokio::test]
async fn a_member_event_stream_receives_only_its_projects_events() {
    let app = spawn_app().await;
    let p = two_projects(&app).await;
    let (key, _) = app.issue_key("member", &[&p.a]).await;

    let only_b = format!("?project_id={}", p.b.as_str().unwrap());
    assert_eq!(upgrade_refusal(&app, &only_b, &key).await, StatusCode::NOT_FOUND);
    let (status, _) = app.api_as(&key).get(&format!("/api/v1/events{only_b}")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the member followed B's events over SSE"
    );

    let mut member_ws = app.websocket_with_key("", &key).await.unwrap();
    let mut admin_ws = app.websocket("").await;
    // B's task first, then A's: the member's first task event must be A's.
    let in_b = app.create_task(&p.b, json!({ "dispatch": false })).await;
    let in_a = app.create_task(&p.a, json!({ "dispatch": false })).await;
    let seen = member_ws.events_until(|e| e["data"]["id"] == in_a["id"]).await;
    assert!(
        seen.iter()
            .all(|e| e["data"]["project_id"] != p.b && e["data"]["id"] != p.b),
        "the member saw B: {seen:?}"
    );
    let admin_seen = admin_ws.events_until(|e| e["data"]["id"] == in_a["id"]).await;
    assert!(
        admin_seen.iter().any(|e| e["data"]["id"] == in_b["id"]),
        "the admin sees all"
    );
    member_ws.close().await;
    admin_ws.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_viewer_key_reads_its_projects_and_changes_nothing() {
    let app = spawn_app().await;
    let p = two_projects(&app).await;
    let (key, _) = app.issue_key("viewer", &[&p.a]).await;
    let viewer = app.api_as(&key);
    for (method, path, body) in project_routes(&p.a, &p.task_a) {
        let (status, answer) = viewer.send(method.clone(), &path, body.as_ref()).await;
        let expected = if method == Method::GET {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(status, expected, "{method} {path}: {answer}");
    }
    let (status, _) = viewer.post("/api/v1/projects", &json!({"name": "v"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let task = app.task(&p.task_a).await;
    assert_eq!(
        (task["title"].as_str(), task["status"].as_str()),
        (Some("Write the parser"), Some("todo"))
    );
    // Outside its projects a viewer gets 404s, as a member does.
    for (method, path, body) in project_routes(&p.b, &p.task_b) {
        let (status, _) = viewer.send(method.clone(), &path, body.as_ref()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_revoked_key_fails_on_both_replicas_within_a_second() {
    let a = spawn_app().await;
    let b = spawn_replica(&a).await;
    let project = a.create_project("p").await["id"].clone();
    let (key, id) = a.issue_key("member", &[&project]).await;
    // Both replicas have the key cached.
    for replica in [&a, &b] {
        assert_eq!(replica.api_as(&key).get("/api/v1/me").await.0, StatusCode::OK);
    }
    let mut dashboard = b.websocket_with_key("", &key).await.unwrap();

    let (status, revoked) = a
        .api()
        .send(Method::DELETE, &format!("/api/v1/keys/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    let revoked_at = Instant::now();
    let mut refused_on = [None, None];
    while refused_on.iter().any(Option::is_none) && revoked_at.elapsed() < Duration::from_secs(3) {
        for (i, replica) in [&a, &b].into_iter().enumerate() {
            if refused_on[i].is_none() {
                let response = client_with_key(&key)
                    .get(replica.url("/api/v1/me"))
                    .send()
                    .await
                    .unwrap();
                if response.status() == StatusCode::UNAUTHORIZED {
                    let headers = response.headers().clone();
                    let body: Value = response.json().await.unwrap();
                    assert_eq!(body["error"]["message"], "the API key was revoked");
                    assert!(headers.contains_key("www-authenticate"));
                    refused_on[i] = Some(revoked_at.elapsed());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused_on = refused_on.map(|t| t.expect("the key was refused"));
    assert!(
        refused_on[0] < Duration::from_millis(100),
        "at once where it was revoked: {:?}",
        refused_on[0]
    );
    assert!(
        refused_on[1] <= Duration::from_secs(1),
        "replica B took {:?}",
        refused_on[1]
    );

    // B's open WebSocket for the key is closed too.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        use futures::StreamExt;
        while let Some(Ok(message)) = dashboard.ws.next().await {
            if message.is_close() {
                return;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the revoked key's WebSocket stayed open");

    // Revoking twice is harmless; an unknown id is 404; the list shows the
    // revocation and no secrets.
    let again = a
        .api()
        .send(Method::DELETE, &format!("/api/v1/keys/{id}"), None)
        .await;
    assert_eq!(
        (again.0, &again.1["revoked_at"]),
        (StatusCode::OK, &revoked["revoked_at"])
    );
    let missing = a
        .api()
        .send(Method::DELETE, "/api/v1/keys/0123456789abcdef", None)
        .await;
    assert_eq!(missing.0, StatusCode::NOT_FOUND);
    let (_, keys) = a.get("/api/v1/keys").await;
    let text = keys.to_string();
    assert!(!text.contains("hash") && !text.contains(&key[20..]), "{text}");
    assert_eq!(keys["items"].as_array().unwrap().len(), 2, "{keys}");
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn key_requests_are_validated_and_expired_keys_refused() {
    let app = spawn_app().await;
    let project = app.create_project("p").await["id"].clone();
    let in_the_past = (chrono::Utc::now() - chrono::TimeDelta::hours(1)).to_rfc3339();
    let unknown_project = vapora_shared::ProjectId::new().to_string();
    for bad in [
        json!({"name": "", "role": "member"}),
        json!({"name": "x", "role": "owner"}),
        json!({"name": "x", "role": "admin", "projects": [project]}),
        json!({"name": "x", "role": "member", "projects": [unknown_project]}),
        json!({"name": "x", "role": "member", "expires_at": in_the_past}),
        json!({"name": "x", "role": "member", "secret": "mine"}),
    ] {
        let (status, body) = app.post("/api/v1/keys", &bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
    let soon = (chrono::Utc::now() + chrono::TimeDelta::milliseconds(1500)).to_rfc3339();
    let (status, issued) = app
        .post(
            "/api/v1/keys",
            &json!({"name": "short", "role": "viewer", "projects": [project], "expires_at": soon}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let key = issued["key"].as_str().unwrap();
    assert!(key.starts_with("vk_") && key.len() == 3 + 16 + 1 + 64, "{key}");
    let viewer = app.api_as(key);
    assert_eq!(viewer.get("/api/v1/me").await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let response = client_with_key(key)
        .get(app.url("/api/v1/me"))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("the API key has expired"))
    );
    app.stop().await;
}

#[tokio::test]
async fn a_scoped_key_does_not_learn_which_task_an_agent_runs() {
    let app = spawn_app().await;
    app.llm.set_default(crate::support::slow_script());
    let p = two_projects(&app).await;
    let running = app.create_task(&p.b, json!({})).await;
    app.wait_for_status(&running["id"], "running").await;
    let (key, _) = app.issue_key("viewer", &[&p.a]).await;
    let running_task = |agents: &Value| -> Vec<Value> {
        agents["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["current_task"].clone())
            .filter(|t| !t.is_null())
            .collect()
    };
    let (_, as_admin) = app.get("/api/v1/agents?limit=500").await;
    assert_eq!(running_task(&as_admin), [running["id"].clone()], "{as_admin}");
    let (status, as_viewer) = app.api_as(&key).get("/api/v1/agents?limit=500").await;
    assert_eq!(status, StatusCode::OK);
    assert!(running_task(&as_viewer).is_empty(), "{as_viewer}");
    assert!(!as_viewer.to_string().contains(running["id"].as_str().unwrap()));
    let _ = app.cancel(&running["id"]).await;
    app.stop().await;
}
