//! Building and running the application: the piece `main` and the tests share.

use std::future::Future;
use std::net::SocketAddr;

use std::sync::Arc;

use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;
use vapora_agents::nats_url::redacted;
use vapora_agents::{RoleCatalog, RoleCatalogError};

use tokio_util::sync::CancellationToken;
use vapora_llm_router::{LlmError, RouterConfig};

use crate::api::{AppState, router};
use crate::auth::bootstrap::{BootstrapError, ensure_admin_key};
use crate::broker::{self, BrokerContext, BrokerError};
use crate::config::Settings;
use crate::server;
use crate::services::cancellations::RunningTasks;
use crate::storage::{Database, StorageError};
use crate::swarm::pool::{self, PoolContext, PoolShutdown};
use crate::swarm::reports::ReportIntake;
use crate::workflows::TemplateCatalog;

/// How long aborted workers get to record their interrupted tasks.
const ABORT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long shutdown waits for the storage engine to close.
const STORAGE_CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("roles file {path}: {source}")]
    RolesFile { path: String, source: std::io::Error },
    #[error(transparent)]
    Roles(#[from] RoleCatalogError),
    #[error("workflows file {path}: {reason}")]
    WorkflowsFile { path: String, reason: String },
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("LLM provider: {0}")]
    Llm(#[from] LlmError),
    #[error("could not listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Serve(#[from] std::io::Error),
    #[error(transparent)]
    AdminKey(#[from] BootstrapError),
    #[error("recovering interrupted tasks: {0}")]
    Recovery(#[from] crate::error::AppError),
}

/// A fully wired backend, listening but not yet serving.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// Stops the in-process pool or the broker dispatch.
    work: PoolShutdown,
    workers: TaskTracker,
    settings: Settings,
    /// Renews the replica lease until cancelled (see `crate::replicas`).
    lease: CancellationToken,
    lease_holder: tokio::task::JoinHandle<()>,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let threads = tokio::runtime::Handle::current().metrics().num_workers();
        tracing::info!(worker_threads = threads, "tokio multi-threaded runtime started");

        let password = settings
            .database_pass
            .as_ref()
            .map(|p| p.expose_secret().to_owned());
        let credentials = settings.database_user.clone().zip(password);
        let db = Database::connect_with(&settings.database_url, credentials).await?;
        tracing::info!(url = %settings.database_url, "storage connected, schema defined");
        Self::build_on(settings, db).await
    }

    /// As [`Self::build`], on an already connected database: replicas that
    /// share one (tests run two in one process on one embedded engine).
    pub async fn build_on(settings: Settings, db: Database) -> Result<Self, StartupError> {
        let db = db.with_call_timeout(settings.database_timeout);
        let roles = load_roles(settings.roles_file.as_deref()).await?;
        tracing::info!(roles = roles.roles().count(), "role catalog loaded");

        let running = RunningTasks::default();
        let workflows = load_workflows(settings.workflows_file.as_deref(), &roles).await?;
        tracing::info!(templates = workflows.len(), "workflow templates loaded");
        let mut state = AppState::new(&settings, db.clone(), roles.clone(), running.clone(), workflows);
        match &state.keys {
            Some(keys) => {
                ensure_admin_key(keys, settings.admin_key.as_ref(), &settings.admin_key_file).await?
            }
            None => {
                tracing::warn!("VAPORA_AUTH=off: every request is treated as an admin's; never expose this")
            }
        }
        tokio::spawn(housekeeping(
            state.limits.clone(),
            db.clone(),
            state.shutdown.clone(),
        ));
        let broker = match &settings.nats_url {
            Some(url) => {
                let client = broker::connect(url, &settings.nats_credentials).await?;
                tracing::info!(url = %redacted(url), "broker mode: tasks go to agent servers over NATS JetStream");
                running.reach_remote_workers(client.clone());
                Some(client)
            }
            None => None,
        };
        let requeued = state
            .task_service
            .requeue_interrupted_work(broker.is_some())
            .await?;
        if requeued > 0 {
            tracing::info!(tasks = requeued, "re-queued work interrupted by the last stop");
        }
        let lease = CancellationToken::new();
        let lease_holder = tokio::spawn(crate::replicas::hold_lease(
            state.task_service.clone(),
            lease.clone(),
        ));

        let intake = ReportIntake {
            tasks: state.task_service.clone(),
            registry: state.agent_registry.clone(),
            events: state.events.clone(),
            metrics: state.metrics.clone(),
        };
        let workers = TaskTracker::new();
        // Waiting tasks whose dependencies finished while no backend ran
        // (or whose release was lost) move on now, then every few seconds.
        workers.spawn(state.task_service.clone().sweep_waiting(state.shutdown.clone()));
        // Schedules fire from every replica; each slot once (see `workflows::schedules`).
        workers.spawn(state.schedule_service.clone().run(state.shutdown.clone()));
        let work = match broker {
            Some(client) => {
                let ctx = BrokerContext {
                    js: async_nats::jetstream::new(client.clone()),
                    client,
                    intake,
                    queue: state.task_queue.clone(),
                    roles,
                    delivery: settings.delivery.clone(),
                    stall_timeout: settings.attempt_stall_timeout,
                    reconcile_after: settings.reconcile_after,
                };
                let stop = CancellationToken::new();
                broker::spawn(ctx, &workers, stop.clone());
                // Remote workers' attempts are not ours to abort.
                PoolShutdown {
                    stop_taking: stop,
                    abort: CancellationToken::new(),
                }
            }
            None => {
                let llm = build_llm(&settings, &db).await?;
                // Budget spend is written whenever it changes, and once more at the end.
                workers.spawn(llm.budgets().clone().persist_until(state.shutdown.clone()));
                state.budgets = Some(llm.budgets().clone());
                let ctx = PoolContext {
                    intake,
                    queue: state.task_queue.clone(),
                    llm: Arc::new(llm),
                    roles,
                    limits: settings.output_limits,
                };
                pool::spawn(ctx, settings.workers_per_role, &workers).await
            }
        };

        let addr = SocketAddr::new(settings.host, settings.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartupError::Bind { addr, source })?;
        Ok(Self {
            listener,
            state,
            work,
            workers,
            settings,
            lease,
            lease_holder,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops taking work, lets
    /// in-flight tasks finish within the grace period, and re-queues the rest.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let Self {
            listener,
            state,
            work,
            workers,
            settings,
            lease,
            lease_holder,
        } = self;
        let tasks = state.task_service.clone();
        tracing::info!(addr = %listener.local_addr()?, "vapora-backend listening");
        let stopping = state.shutdown.clone();
        // Outermost, so that every answer has a request id, a timeout's too.
        let (set_request_id, propagate_request_id) = vapora_telemetry::request_ids();
        let app = server::with_request_timeout(
            router(state, settings.metrics_require_key),
            settings.request_timeout,
        )
        .layer(vapora_telemetry::http_spans())
        .layer(propagate_request_id)
        .layer(set_request_id);
        server::serve(listener, app, settings.header_read_timeout, async move {
            shutdown.await;
            tracing::info!("shutdown requested: no new connections");
            stopping.cancel();
        })
        .await;

        work.stop_taking.cancel();
        workers.close();
        if tokio::time::timeout(settings.shutdown_grace, workers.wait())
            .await
            .is_err()
        {
            tracing::warn!(grace = ?settings.shutdown_grace, "in-flight tasks did not finish in time; re-queueing them");
            work.abort.cancel();
            // Aborted workers only write one status each; if storage hangs,
            // stop anyway: start-up recovery re-queues whatever is left.
            if tokio::time::timeout(ABORT_WAIT, workers.wait()).await.is_err() {
                tracing::error!(
                    "workers did not stop after abort; exiting, recovery will re-queue their tasks"
                );
            }
        }
        drop((work, workers));
        // What is still queued here is the other replicas' to dispatch now,
        // not after the lease would have run out.
        lease.cancel();
        let _ = lease_holder.await;
        if let Err(e) = tasks.release_lease().await {
            tracing::info!(error = %e, "replica lease not released; it runs out by itself");
        }
        drop(tasks);
        storage_closed(STORAGE_CLOSE_WAIT).await;
        tracing::info!("shutdown complete");
        Ok(())
    }
}

/// Waits, at most `limit`, until the runtime runs no task. The embedded
/// SurrealDB shuts its datastore down (stopping its maintenance tasks and
/// closing the storage engine) in a task of its own once the last handle is
/// dropped, and offers nothing to await; a process that returned from
/// `main` before that task ended would cut the shutdown short (SurrealDB
/// then logs "Background task did not shut down cleanly").
async fn storage_closed(limit: std::time::Duration) {
    let metrics = tokio::runtime::Handle::current().metrics();
    let deadline = tokio::time::Instant::now() + limit;
    while metrics.num_alive_tasks() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    tracing::debug!(tasks_left = metrics.num_alive_tasks(), "background tasks ended");
}

/// Until shutdown: once a minute, drops the rate buckets of keys idle long
/// enough to be full again; at start and then hourly, deletes expired
/// idempotency records (a failed sweep is tried again an hour later).
async fn housekeeping(limits: crate::limits::Limits, db: Database, stop: CancellationToken) {
    const SWEEP_EVERY_MINUTES: u32 = 60;
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    let mut minute = 0u32;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = stop.cancelled() => return,
        }
        limits.forget_idle();
        if minute.is_multiple_of(SWEEP_EVERY_MINUTES) {
            match db.sweep_idempotency(chrono::Utc::now().timestamp_millis()).await {
                Ok(0) => {}
                Ok(swept) => tracing::info!(records = swept, "expired idempotency records deleted"),
                Err(e) => tracing::debug!(error = %e, "idempotency sweep failed; next in an hour"),
            }
        }
        minute = minute.wrapping_add(1);
    }
}

/// The in-process LLM router: from the router file if one is configured,
/// else from the `VAPORA_LLM_*` single provider.
async fn build_llm(settings: &Settings, db: &Database) -> Result<vapora_llm_router::Router, StartupError> {
    let router_config = match &settings.llm_config_file {
        Some(path) => RouterConfig::load(path).await?,
        None => settings.llm.router_config().await,
    };
    let router = router_config.build(Arc::new(db.clone())).await?;
    for route in router.routes() {
        let targets: Vec<String> = route.targets.iter().map(ToString::to_string).collect();
        tracing::info!(route = %route.name, strategy = ?route.strategy, targets = ?targets, "LLM route ready");
    }
    Ok(router)
}

/// Reads the roles file: the configured one (which must exist), else
/// `config/roles.toml` if present, else the compiled-in copy of it.
async fn load_roles(configured: Option<&std::path::Path>) -> Result<RoleCatalog, StartupError> {
    let path = configured.unwrap_or(std::path::Path::new(DEFAULT_ROLES_FILE));
    match tokio::fs::read_to_string(path).await {
        Ok(text) => Ok(RoleCatalog::from_toml(&text)?),
        Err(e) if configured.is_none() && e.kind() == std::io::ErrorKind::NotFound => {
            Ok(RoleCatalog::builtin())
        }
        Err(source) => Err(StartupError::RolesFile {
            path: path.display().to_string(),
            source,
        }),
    }
}

const DEFAULT_ROLES_FILE: &str = "config/roles.toml";

/// Reads the workflow templates file as [`load_roles`] reads the roles
/// file, and checks each template against the roles.
async fn load_workflows(
    configured: Option<&std::path::Path>,
    roles: &RoleCatalog,
) -> Result<std::collections::BTreeMap<String, vapora_shared::WorkflowTemplate>, StartupError> {
    let path = configured.unwrap_or(std::path::Path::new(DEFAULT_WORKFLOWS_FILE));
    let text = match tokio::fs::read_to_string(path).await {
        Ok(text) => text,
        Err(e) if configured.is_none() && e.kind() == std::io::ErrorKind::NotFound => {
            crate::workflows::templates::DEFAULT_WORKFLOWS_TOML.to_owned()
        }
        Err(e) => {
            return Err(StartupError::WorkflowsFile {
                path: path.display().to_string(),
                reason: e.to_string(),
            });
        }
    };
    TemplateCatalog::parse_file(&text, roles).map_err(|e| StartupError::WorkflowsFile {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

const DEFAULT_WORKFLOWS_FILE: &str = "config/workflows.toml";

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
