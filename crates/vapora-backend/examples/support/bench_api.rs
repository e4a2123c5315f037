//! What the benchmarks ask of running backends over HTTP: create projects
//! and tasks, read them back, count finished tasks, wait for agents; and
//! percentiles of what they measured.

use serde_json::{Value, json};

pub fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let index = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[index]
}

/// A client sending `key` with every request, keeping enough idle
/// connections for the benchmarks' parallel requests.
pub fn keyed_client(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let bearer = format!("Bearer {key}");
    headers.insert(reqwest::header::AUTHORIZATION, bearer.parse().unwrap());
    reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .default_headers(headers)
        .build()
        .unwrap()
}

/// The JSON body of the answer to `request`.
pub async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

pub async fn create_project(http: &reqwest::Client, base: &str) -> String {
    let project = json_of(
        http.post(format!("{base}/api/v1/projects"))
            .json(&json!({"name": "bench"})),
    )
    .await;
    project["id"].as_str().unwrap().to_owned()
}

pub async fn create_task(http: &reqwest::Client, base: &str, project: &str, role: &str, i: usize) {
    let response = http
        .post(format!("{base}/api/v1/tasks"))
        .json(&json!({"project_id": project, "role": role, "title": format!("bench {i}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

pub async fn all_tasks(http: &reqwest::Client, base: &str, project: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = json_of(http.get(format!(
            "{base}/api/v1/tasks?project_id={project}&limit=500{cursor}"
        )))
        .await;
        all.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return all,
        }
    }
}

/// Tasks moved to `done` since the backends started, summed over them
/// (each counts the moves it applied itself; `/metrics`).
pub async fn done_count(http: &reqwest::Client, backends: &[String]) -> u64 {
    let mut sum = 0;
    for base in backends {
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        sum += text
            .lines()
            .find_map(|l| l.strip_prefix("vapora_task_transitions_total{status=\"done\"} "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    sum
}

/// Waits until the backend lists `agents` agent servers.
pub async fn wait_for_agents(http: &reqwest::Client, base: &str, agents: usize) {
    for _ in 0..600 {
        let listed = json_of(http.get(format!("{base}/api/v1/agents"))).await;
        if listed["items"].as_array().is_some_and(|a| a.len() == agents) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("agent servers did not show up");
}
