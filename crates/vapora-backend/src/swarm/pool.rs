//! The in-process agent pool: the default execution path when no broker is
//! configured.
//!
//! Per role, a dispatcher moves entries from the shared priority queue into a
//! bounded channel, and a fixed number of workers (each registered as an
//! agent) take them from it. The workers share the receiver behind a tokio
//! `Mutex`: an idle worker holds it while it waits, so exactly one idle
//! worker is next in line and the others wait their turn. The channel holds
//! one entry, so the dispatcher only pops from the priority queue when a worker is about to be free:
//! urgent work that arrives later still overtakes, and a stale entry
//! never piles up.
//!
//! Each attempt runs through [`vapora_agents::run_attempt`], the runner agent
//! servers use too; its reports go straight to the attempt fence
//! ([`crate::swarm::reports`]).
//!
//! Shutdown has two steps: `stop_taking` stops dispatchers and idle workers;
//! `abort` (after the grace period) cuts in-flight LLM calls, whose tasks are
//! put back in `queued` for the next start.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vapora_agents::attempt::AgentContext;
use vapora_agents::{AttemptOutcome, Claim, OutputLimits, ReportSink, RoleCatalog, SinkError, run_attempt};
use vapora_llm_router::LlmClient;
use vapora_shared::wire::TaskReport;
use vapora_shared::{AgentId, Event, Role, TaskId, TaskStatus};

use crate::queue::{QueuedTask, SharedTaskQueue};
use crate::services::ReportOutcome;
use crate::swarm::reports::ReportIntake;

/// Everything a worker needs; cloned into each one.
#[derive(Debug, Clone)]
pub struct PoolContext {
    pub intake: ReportIntake,
    pub queue: SharedTaskQueue,
    pub llm: Arc<dyn LlmClient>,
    pub roles: RoleCatalog,
    pub limits: OutputLimits,
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
                .intake
                .registry
                .register(id.clone(), role.clone(), "in-process")
                .await;
            ctx.intake.events.publish(&Event::AgentUpdated(agent));
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
        take_attempt(&ctx, &id, task_id, attempt, &shutdown.abort).await;
    }
    if let Some(agent) = ctx.intake.registry.set_offline(&id).await {
        ctx.intake.events.publish(&Event::AgentUpdated(agent));
    }
}

/// Runs one queued attempt through the shared attempt runner, reporting
/// straight to the attempt fence.
async fn take_attempt(
    ctx: &PoolContext,
    agent_id: &AgentId,
    task_id: TaskId,
    attempt: u32,
    abort: &CancellationToken,
) {
    let tasks = &ctx.intake.tasks;
    // What goes into the prompt; the fence re-checks the attempt when
    // `started` is applied, so a change in between is caught there.
    let task = match tasks.get(task_id).await {
        Ok(task) if task.attempt == attempt && task.status == TaskStatus::Queued => task,
        Ok(_) => return,
        Err(e) => {
            return tracing::error!(task = %task_id, error = %e, "could not read a queued task; it stays queued for recovery");
        }
    };
    // Registered before `started` is applied, so a cancel that lands right
    // after the claim already finds the token.
    let cancel = tasks.running_tasks().register(task_id);
    let agent = AgentContext {
        id: agent_id,
        llm: ctx.llm.as_ref(),
        roles: &ctx.roles,
        limits: ctx.limits,
    };
    let sink = LocalSink(&ctx.intake);
    let outcome = run_attempt(agent, (&task).into(), &sink, &cancel, abort).await;
    tasks.running_tasks().remove(task_id);
    match outcome {
        AttemptOutcome::Reported { .. } | AttemptOutcome::Superseded => return,
        AttemptOutcome::Cancelled => {}
        // Our own shutdown cut the call: hand the task back for the next start.
        AttemptOutcome::Interrupted => {
            if let Err(e) = tasks.interrupt_attempt(task_id, attempt).await {
                tracing::error!(task = %task_id, attempt, error = %e, "could not hand back an interrupted attempt; recovery re-queues it at next start");
            }
        }
        AttemptOutcome::Undelivered(e) => {
            tracing::error!(task = %task_id, attempt, error = %e, "could not record the attempt; recovery re-queues it at next start");
        }
    }
    ctx.intake.attempt_stopped(agent_id, task_id).await;
}

/// In-process reports go straight to the attempt fence, so the pool knows
/// at once whether its `started` was accepted.
struct LocalSink<'a>(&'a ReportIntake);

impl LocalSink<'_> {
    async fn apply(&self, report: TaskReport) -> Result<ReportOutcome, SinkError> {
        let outcome = self.0.apply(std::slice::from_ref(&report)).await.pop();
        outcome
            .unwrap_or(Ok(ReportOutcome::Unchanged))
            .map_err(SinkError::new)
    }
}

impl ReportSink for LocalSink<'_> {
    async fn started(&self, report: TaskReport) -> Result<Claim, SinkError> {
        Ok(match self.apply(report).await? {
            ReportOutcome::Applied(_) => Claim::Proceed,
            // Cancelled, superseded or already taken: not ours to run.
            _ => Claim::Superseded,
        })
    }

    fn progress(&self, report: TaskReport) {
        self.0.tasks.publish_progress(&report);
    }

    async fn finished(&self, report: TaskReport) -> Result<(), SinkError> {
        self.apply(report).await.map(drop)
    }
}
