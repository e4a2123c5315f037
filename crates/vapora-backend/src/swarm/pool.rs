//! The in-process agent pool: the default execution path when no broker is
//! configured.
//!
//! Per role, a dispatcher moves entries from the shared priority queue into a
//! bounded channel, and a fixed number of workers (each registered as an
//! agent) take them from it. The workers share the receiver behind a tokio
//! `Mutex`: an idle worker holds it while it waits, so exactly one idle
//! worker is next in line and the others wait their turn. The channel holds one entry, so the dispatcher
//! only pops from the priority queue when a worker is about to be free:
//! urgent work that arrives later still overtakes, and a stale entry
//! never piles up.
//!
//! Shutdown has two steps: `stop_taking` stops dispatchers and idle workers;
//! `abort` (after the grace period) cuts in-flight LLM calls, whose tasks are
//! put back in `queued` for the next start.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vapora_agents::{ExecutionError, RoleCatalog, execute};
use vapora_llm_router::LlmClient;
use vapora_shared::{AgentId, Event, Role, TaskProgress};

use crate::api::task_queue::{QueuedTask, SharedTaskQueue};
use crate::events::EventBus;
use crate::services::TaskService;
use crate::swarm::cancellations::RunningTasks;
use crate::swarm::registry::AgentRegistry;

/// Everything a worker needs; cloned into each one.
#[derive(Debug, Clone)]
pub struct PoolContext {
    pub tasks: TaskService,
    pub queue: SharedTaskQueue,
    pub registry: AgentRegistry,
    pub events: EventBus,
    pub llm: Arc<dyn LlmClient>,
    pub roles: RoleCatalog,
    pub running: RunningTasks,
}

/// Shutdown controls of a running pool.
#[derive(Debug, Clone)]
pub struct PoolShutdown {
    /// Stop taking new tasks.
    pub stop_taking: CancellationToken,
    /// Abort in-flight tasks (they are re-queued).
    pub abort: CancellationToken,
}

/// Starts `workers_per_role` workers and one dispatcher for every role.
pub async fn spawn(ctx: PoolContext, workers_per_role: usize, tracker: &TaskTracker) -> PoolShutdown {
    let shutdown = PoolShutdown {
        stop_taking: CancellationToken::new(),
        abort: CancellationToken::new(),
    };
    let roles: Vec<Role> = ctx.roles.roles().cloned().collect();
    for role in roles {
        let (tx, rx) = mpsc::channel::<QueuedTask>(1);
        tracker.spawn(dispatch(
            ctx.queue.clone(),
            role.clone(),
            tx,
            shutdown.stop_taking.clone(),
        ));
        let rx = Arc::new(Mutex::new(rx));
        for n in 1..=workers_per_role.max(1) {
            let id = AgentId(format!("{role}-{n}"));
            let agent = ctx
                .registry
                .register(id.clone(), role.clone(), "in-process")
                .await;
            ctx.events.publish(&Event::AgentUpdated(agent));
            tracker.spawn(work(ctx.clone(), id, rx.clone(), shutdown.clone()));
        }
    }
    shutdown
}

async fn dispatch(queue: SharedTaskQueue, role: Role, tx: mpsc::Sender<QueuedTask>, stop: CancellationToken) {
    loop {
        // Wait for a free slot first, then pop: see the module docs.
        let permit = tokio::select! {
            permit = tx.reserve() => match permit { Ok(p) => p, Err(_) => return },
            () = stop.cancelled() => return,
        };
        let entry = tokio::select! {
            entry = queue.pop_wait(&role) => entry,
            () = stop.cancelled() => return,
        };
        permit.send(entry);
    }
}

async fn work(
    ctx: PoolContext,
    id: AgentId,
    rx: Arc<Mutex<mpsc::Receiver<QueuedTask>>>,
    shutdown: PoolShutdown,
) {
    loop {
        let next = tokio::select! {
            // Checked first: once stopping, take nothing more even if an
            // entry is waiting in the hand-off slot.
            biased;
            () = shutdown.stop_taking.cancelled() => None,
            next = async { rx.lock().await.recv().await } => next,
        };
        let Some(entry) = next else { break };
        // Dropping the entry returns its queue slot: the task has left the queue.
        let (task_id, attempt) = (entry.task_id, entry.attempt);
        drop(entry);
        run_attempt(&ctx, &id, task_id, attempt, &shutdown.abort).await;
    }
    if let Some(agent) = ctx.registry.set_offline(&id).await {
        ctx.events.publish(&Event::AgentUpdated(agent));
    }
}

async fn run_attempt(
    ctx: &PoolContext,
    agent_id: &AgentId,
    task_id: vapora_shared::TaskId,
    attempt: u32,
    abort: &CancellationToken,
) {
    // Register before claiming, so a cancel that lands right after the claim
    // already finds the token.
    let cancel = ctx.running.register(task_id, abort);
    let task = match ctx.tasks.start_attempt(task_id, attempt, agent_id).await {
        Ok(Some(task)) => task,
        Ok(None) => {
            ctx.running.remove(task_id);
            return;
        }
        Err(e) => {
            tracing::error!(task = %task_id, error = %e, "could not claim task; it stays queued for recovery");
            ctx.running.remove(task_id);
            return;
        }
    };
    if let Some(agent) = ctx.registry.start_task(agent_id, task_id).await {
        ctx.events.publish(&Event::AgentUpdated(agent));
    }

    let mut seq = 0;
    let outcome = execute(ctx.llm.as_ref(), &ctx.roles, (&task).into(), &cancel, |chunk| {
        ctx.events.publish(&Event::TaskProgress(TaskProgress {
            task_id,
            project_id: task.project_id,
            attempt,
            agent_id: agent_id.clone(),
            seq,
            chunk: chunk.to_owned(),
        }));
        seq += 1;
    })
    .await;
    ctx.running.remove(task_id);

    let succeeded = outcome.is_ok();
    let recorded = match outcome {
        Ok(result) => ctx.tasks.finish_attempt(task_id, attempt, Ok(result)).await,
        // Our own shutdown cut the call: hand the task back.
        Err(ExecutionError::Cancelled) if abort.is_cancelled() => {
            ctx.tasks.interrupt_attempt(task_id, attempt).await
        }
        // Cancelled through the API, which already moved the task.
        Err(ExecutionError::Cancelled) => Ok(None),
        Err(e) => {
            ctx.tasks
                .finish_attempt(task_id, attempt, Err(e.to_string()))
                .await
        }
    };
    if let Err(e) = recorded {
        tracing::error!(task = %task_id, attempt, error = %e, "could not record the outcome; the task is re-queued at next start");
    }
    if let Some(agent) = ctx.registry.finish_task(agent_id, succeeded).await {
        ctx.events.publish(&Event::AgentUpdated(agent));
    }
}
