//! `vapora-backend`: reads settings from the environment and serves until
//! SIGINT or SIGTERM.

use tracing_subscriber::EnvFilter;
use vapora_backend::{Application, Settings, shutdown_signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,surrealkv=warn,surrealdb=warn")),
        )
        .init();
    let settings = Settings::from_env()?;
    Application::build(settings)
        .await?
        .run_until(shutdown_signal())
        .await?;
    Ok(())
}
