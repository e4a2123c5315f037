//! The bounded priority queue of tasks waiting for an agent.
//!
//! Tasks wait per role, in four lanes: `critical` before `high` before
//! `medium` before `low`, first in first out within a lane. The queue only
//! holds references (id, attempt); the task itself is in the database, which
//! stays the source of truth — a worker that pops an entry claims the task
//! with a compare-and-set, so a stale entry (cancelled, re-prioritised) is
//! harmless.
//!
//! Capacity is enforced by admission *before* the task is stored: a request
//! takes an [`Admission`] (a semaphore permit), and the permit travels with
//! the entry until a worker takes it (an entry waiting in a dispatcher's
//! hand-off slot still counts). A full queue therefore refuses new
//! work up front (the API answers 503) instead of growing without bound.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tokio::sync::{Mutex, Notify, OwnedSemaphorePermit, Semaphore};
use vapora_shared::{Priority, Role, TaskId};

/// One dispatch attempt waiting in the queue.
#[derive(Debug)]
pub struct QueuedTask {
    pub task_id: TaskId,
    pub attempt: u32,
    pub role: Role,
    pub priority: Priority,
    /// The W3C trace context of the request that queued it (when traces are
    /// exported), so that its dispatch joins the same trace.
    pub trace: Option<String>,
    seq: u64,
    /// Holds one unit of queue capacity until the entry is dropped.
    _admission: Option<OwnedSemaphorePermit>,
}

/// Proof that the queue had room when the request was admitted.
#[derive(Debug)]
pub struct Admission(OwnedSemaphorePermit);

/// The queue is at capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("task queue is full")]
pub struct QueueFull;

#[derive(Debug, Default)]
struct RoleLanes {
    /// Indexed by `Priority as usize`; popped from the highest index.
    lanes: [VecDeque<QueuedTask>; 4],
}

impl RoleLanes {
    fn lane(&mut self, priority: Priority) -> &mut VecDeque<QueuedTask> {
        &mut self.lanes[priority as usize]
    }
}

/// The queue itself: plain data, always used behind [`SharedTaskQueue`]'s mutex.
#[derive(Debug, Default)]
pub struct TaskQueue {
    roles: HashMap<Role, RoleLanes>,
    len: usize,
    next_seq: u64,
}

impl TaskQueue {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn len_for_role(&self, role: &Role) -> usize {
        self.roles
            .get(role)
            .map_or(0, |r| r.lanes.iter().map(VecDeque::len).sum())
    }

    fn push(
        &mut self,
        task_id: TaskId,
        attempt: u32,
        role: Role,
        priority: Priority,
        admission: Option<Admission>,
    ) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let entry = QueuedTask {
            task_id,
            attempt,
            role: role.clone(),
            priority,
            trace: vapora_telemetry::trace_context::traceparent_of(&tracing::Span::current()),
            seq,
            _admission: admission.map(|a| a.0),
        };
        self.roles
            .entry(role)
            .or_default()
            .lane(priority)
            .push_back(entry);
        self.len += 1;
    }

    /// The most urgent, oldest entry for `role`.
    pub fn pop(&mut self, role: &Role) -> Option<QueuedTask> {
        let lanes = self.roles.get_mut(role)?;
        let entry = lanes.lanes.iter_mut().rev().find_map(VecDeque::pop_front)?;
        self.len -= 1;
        Some(entry)
    }

    /// Takes a task out of the queue (cancelled, moved back to `todo`).
    pub fn remove(&mut self, task_id: TaskId) -> Option<QueuedTask> {
        for lanes in self.roles.values_mut() {
            for lane in &mut lanes.lanes {
                if let Some(pos) = lane.iter().position(|e| e.task_id == task_id) {
                    self.len -= 1;
                    return lane.remove(pos);
                }
            }
        }
        None
    }

    /// Moves a waiting task to another role or priority, keeping its place
    /// in line relative to the tasks that arrived before it.
    pub fn requeue_as(&mut self, task_id: TaskId, role: Role, priority: Priority) -> bool {
        let Some(mut entry) = self.remove(task_id) else {
            return false;
        };
        entry.role = role;
        entry.priority = priority;
        self.put_back(entry);
        true
    }

    /// Returns a popped entry to its place in line (a dispatch that could
    /// not be completed); it keeps its admission.
    pub fn put_back(&mut self, entry: QueuedTask) {
        let lane = self
            .roles
            .entry(entry.role.clone())
            .or_default()
            .lane(entry.priority);
        let pos = lane.partition_point(|e| e.seq < entry.seq);
        lane.insert(pos, entry);
        self.len += 1;
    }

    pub fn contains(&self, task_id: TaskId) -> bool {
        self.roles
            .values()
            .flat_map(|r| r.lanes.iter())
            .flatten()
            .any(|e| e.task_id == task_id)
    }
}

/// The queue as the rest of the backend shares it: the `Mutex`-protected
/// data, the admission semaphore that bounds it, and the wake-up for
/// dispatchers waiting on an empty role.
#[derive(Debug, Clone)]
pub struct SharedTaskQueue {
    pub queue: Arc<Mutex<TaskQueue>>,
    admission: Arc<Semaphore>,
    capacity: usize,
    pushed: Arc<Notify>,
}

impl SharedTaskQueue {
    pub fn new(capacity: usize) -> Self {
        Self {
            queue: Arc::new(Mutex::new(TaskQueue::default())),
            admission: Arc::new(Semaphore::new(capacity)),
            capacity,
            pushed: Arc::new(Notify::new()),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries waiting now.
    pub async fn depth(&self) -> usize {
        self.queue.lock().await.len()
    }

    /// Reserves room for one task, or fails at once when the queue is full.
    pub fn admit(&self) -> Result<Admission, QueueFull> {
        self.admission
            .clone()
            .try_acquire_owned()
            .map(Admission)
            .map_err(|_| QueueFull)
    }

    pub async fn push(
        &self,
        task_id: TaskId,
        attempt: u32,
        role: Role,
        priority: Priority,
        admission: Admission,
    ) {
        self.queue
            .lock()
            .await
            .push(task_id, attempt, role, priority, Some(admission));
        self.pushed.notify_waiters();
    }

    /// Re-queues work found in the database at start-up. It was admitted
    /// before the restart, so it is not refused now even if the configured
    /// capacity shrank; it does count against new admissions while it can.
    pub async fn push_recovered(&self, task_id: TaskId, attempt: u32, role: Role, priority: Priority) {
        let admission = self.admit().ok();
        self.queue
            .lock()
            .await
            .push(task_id, attempt, role, priority, admission);
        self.pushed.notify_waiters();
    }

    /// Waits for and pops the next entry for `role`.
    pub async fn pop_wait(&self, role: &Role) -> QueuedTask {
        loop {
            // Register interest before looking, so a push that lands between
            // the look and the wait still wakes us.
            let pushed = self.pushed.notified();
            tokio::pin!(pushed);
            pushed.as_mut().enable();
            if let Some(entry) = self.queue.lock().await.pop(role) {
                return entry;
            }
            pushed.await;
        }
    }

    /// Waits for the next entry for `role`, then takes up to `max` in all
    /// of those waiting, most urgent first.
    pub async fn pop_batch(&self, role: &Role, max: usize) -> Vec<QueuedTask> {
        let mut batch = vec![self.pop_wait(role).await];
        let mut queue = self.queue.lock().await;
        while batch.len() < max {
            match queue.pop(role) {
                Some(entry) => batch.push(entry),
                None => break,
            }
        }
        batch
    }

    pub async fn put_back(&self, entry: QueuedTask) {
        self.queue.lock().await.put_back(entry);
        self.pushed.notify_waiters();
    }

    pub async fn remove(&self, task_id: TaskId) -> bool {
        self.queue.lock().await.remove(task_id).is_some()
    }

    pub async fn requeue_as(&self, task_id: TaskId, role: Role, priority: Priority) -> bool {
        let moved = self.queue.lock().await.requeue_as(task_id, role, priority);
        if moved {
            self.pushed.notify_waiters();
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(s: &str) -> Role {
        Role::parse(s).unwrap()
    }

    #[tokio::test]
    async fn pops_by_priority_then_fifo_per_role() {
        let q = SharedTaskQueue::new(10);
        let ids: Vec<TaskId> = (0..4).map(|_| TaskId::new()).collect();
        let dev = role("developer");
        q.push(ids[0], 1, dev.clone(), Priority::Low, q.admit().unwrap())
            .await;
        q.push(ids[1], 1, dev.clone(), Priority::High, q.admit().unwrap())
            .await;
        q.push(ids[2], 1, dev.clone(), Priority::High, q.admit().unwrap())
            .await;
        q.push(ids[3], 1, role("tester"), Priority::Critical, q.admit().unwrap())
            .await;
        let order: Vec<TaskId> = [
            q.pop_wait(&dev).await,
            q.pop_wait(&dev).await,
            q.pop_wait(&dev).await,
        ]
        .into_iter()
        .map(|e| e.task_id)
        .collect();
        assert_eq!(order, vec![ids[1], ids[2], ids[0]]);
        assert_eq!(q.queue.lock().await.len(), 1);
    }

    #[tokio::test]
    async fn capacity_is_released_when_entries_leave() {
        let q = SharedTaskQueue::new(2);
        let dev = role("developer");
        let (a, b) = (TaskId::new(), TaskId::new());
        q.push(a, 1, dev.clone(), Priority::Medium, q.admit().unwrap())
            .await;
        q.push(b, 1, dev.clone(), Priority::Medium, q.admit().unwrap())
            .await;
        assert_eq!(q.admit().unwrap_err(), QueueFull);
        assert!(q.remove(a).await);
        let admission = q.admit().expect("removal frees a slot");
        drop(admission);
        drop(q.pop_wait(&dev).await);
        assert!(q.admit().is_ok());
    }

    #[tokio::test]
    async fn requeue_keeps_place_in_line() {
        let q = SharedTaskQueue::new(10);
        let dev = role("developer");
        let ids: Vec<TaskId> = (0..3).map(|_| TaskId::new()).collect();
        q.push(ids[0], 1, dev.clone(), Priority::Low, q.admit().unwrap())
            .await;
        q.push(ids[1], 1, dev.clone(), Priority::High, q.admit().unwrap())
            .await;
        q.push(ids[2], 1, dev.clone(), Priority::High, q.admit().unwrap())
            .await;
        assert!(q.requeue_as(ids[0], dev.clone(), Priority::High).await);
        assert_eq!(q.pop_wait(&dev).await.task_id, ids[0]);
        assert!(!q.queue.lock().await.contains(ids[0]));
    }
}
