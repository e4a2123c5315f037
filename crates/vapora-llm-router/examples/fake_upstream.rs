//! Benchmark upstream: the scriptable fake OpenAI server, answering every
//! request at once. `bench/gateway.sh` measures load sent straight to it
//! against the same load sent through the gateway.

use vapora_llm_router::testing::{FakeProvider, Script};

#[tokio::main]
async fn main() {
    let server = FakeProvider::start(Script {
        usage: Some((12, 4)),
        ..Script::text(&["Hello", ", ", "world"])
    })
    .await;
    // The benchmark script reads this line to find the server.
    println!("{}", server.base_url());
    tokio::signal::ctrl_c().await.expect("signal handler");
}
