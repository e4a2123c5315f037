//! A small load generator for the gateway benchmark.
//!
//! `loadgen URL RATE SECONDS` sends `POST URL` (an OpenAI chat request) at a
//! fixed RATE per second, open loop: requests start on schedule whether or
//! not earlier ones finished, so a slow server shows up as latency instead
//! of silently lowering the rate. Prints one line:
//! `sent=N ok=N errors=N rate=R/s p50_us=.. p90_us=.. p99_us=.. max_us=..`.
//! `VAPORA_BENCH_GATEWAY_KEY` is sent as the bearer token.

use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, rate, seconds] = &args[..] else {
        eprintln!("usage: loadgen URL RATE SECONDS");
        std::process::exit(2);
    };
    let rate: u64 = rate.parse().expect("RATE is a number");
    let seconds: u64 = seconds.parse().expect("SECONDS is a number");
    let body =
        serde_json::json!({ "model": "bench", "messages": [{ "role": "user", "content": "Say hello." }] });
    let body = Arc::new(serde_json::to_vec(&body).expect("json"));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()
        .expect("client");

    let total = rate * seconds;
    let key = std::env::var("VAPORA_BENCH_GATEWAY_KEY").unwrap_or_default();
    let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let start = Instant::now();
    let mut handles = Vec::with_capacity(total as usize);
    for i in 0..total {
        tokio::time::sleep_until((start + interval * i as u32).into()).await;
        let (http, url, body, key) = (http.clone(), url.clone(), body.clone(), key.clone());
        handles.push(tokio::spawn(async move {
            let sent = Instant::now();
            let ok = match http
                .post(&url)
                .header("content-type", "application/json")
                // The gateway's key; the fake upstream ignores it.
                .bearer_auth(&key)
                .body(body.to_vec())
                .send()
                .await
            {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            };
            (ok, sent.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(handles.len());
    let mut errors = 0;
    for h in handles {
        let (ok, latency) = h.await.expect("request task");
        if ok {
            latencies.push(latency.as_micros() as u64);
        } else {
            errors += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "sent={total} ok={} errors={errors} rate={:.0}/s p50_us={} p90_us={} p99_us={} max_us={}",
        latencies.len(),
        total as f64 / elapsed,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        latencies.last().copied().unwrap_or(0)
    );
}
