//! Group commit of new tasks: creates that arrive together share one
//! transaction.
//!
//! A SurrealDB statement costs far more than the record it writes. Measured
//! in a release build (`examples/create_cost.rs`): a create in a transaction
//! of its own (project check, guard write, record) takes 600–850 µs of CPU
//! on the embedded engines, while in a transaction of 16 a create takes
//! ~210 µs, as the check, the guard write and the commit are paid once per
//! project per batch. So a create
//! that arrives while a batch is being written waits for the next batch,
//! and under load each transaction carries many tasks; a create alone is
//! written at once, as it would be without batching.
//!
//! Batches are written by a spawned task, not by one of the callers: a
//! caller that gives up (its client went away) cannot strand the creates
//! that share its batch. That task runs only while creates wait.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;
use vapora_shared::{ProjectId, Task};

use super::{Database, StorageError, TaskInsert};

/// Most tasks written in one transaction.
const MAX_BATCH: usize = 64;

type Reply = oneshot::Sender<Result<bool, StorageError>>;

/// Stores new tasks, batching concurrent creates; cheap to clone.
#[derive(Debug, Clone)]
pub struct TaskInserts {
    db: Database,
    replica: Arc<str>,
    pending: Arc<Mutex<Pending>>,
}

#[derive(Debug, Default)]
struct Pending {
    waiting: Vec<(Task, Reply)>,
    /// Whether a writer task is running (and will see `waiting`).
    writing: bool,
}

impl TaskInserts {
    /// Inserts whose queued tasks are queued on `replica`.
    pub fn new(db: Database, replica: Arc<str>) -> Self {
        Self {
            db,
            replica,
            pending: Arc::default(),
        }
    }

    /// Stores a new task of an existing project, in the same transaction as
    /// the creates waiting with it; `Ok(false)` when the project does not
    /// exist.
    pub async fn insert(&self, task: Task) -> Result<bool, StorageError> {
        let (reply, answer) = oneshot::channel();
        let start_writer = {
            let mut pending = lock(&self.pending);
            pending.waiting.push((task, reply));
            !std::mem::replace(&mut pending.writing, true)
        };
        if start_writer {
            // Armed before the spawn: a writer dropped before it first runs
            // still hands the work on.
            let unfinished = Unfinished {
                pending: self.pending.clone(),
                armed: true,
            };
            tokio::spawn(write_batches(
                self.db.clone(),
                self.replica.clone(),
                self.pending.clone(),
                unfinished,
            ));
        }
        answer.await.unwrap_or(Err(StorageError::WriterStopped))
    }
}

fn lock(pending: &Mutex<Pending>) -> MutexGuard<'_, Pending> {
    // Nothing panics while holding the lock; a poisoned one holds valid data.
    pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Writes batches until no create waits.
async fn write_batches(
    db: Database,
    replica: Arc<str>,
    pending: Arc<Mutex<Pending>>,
    mut unfinished: Unfinished,
) {
    loop {
        let batch: Vec<(Task, Reply)> = {
            let mut pending = lock(&pending);
            if pending.waiting.is_empty() {
                pending.writing = false;
                unfinished.armed = false;
                return;
            }
            let n = pending.waiting.len().min(MAX_BATCH);
            pending.waiting.drain(..n).collect()
        };
        write(&db, &replica, batch).await;
    }
}

async fn write(db: &Database, replica: &str, batch: Vec<(Task, Reply)>) {
    let (tasks, replies): (Vec<Task>, Vec<Reply>) = batch.into_iter().unzip();
    match db.insert_tasks(&tasks, replica).await {
        Ok(TaskInsert::Stored) => replies.into_iter().for_each(|r| drop(r.send(Ok(true)))),
        // Only an insert that claims a schedule slot can lose it; batches claim none.
        Ok(TaskInsert::SlotTaken) => replies
            .into_iter()
            .for_each(|r| drop(r.send(Err(StorageError::Conflict)))),
        Ok(TaskInsert::UnknownProject) if by_project(&tasks).len() == 1 => {
            replies.into_iter().for_each(|r| drop(r.send(Ok(false))));
        }
        // Some project is missing: the others' tasks go in again, each
        // project on its own.
        Ok(TaskInsert::UnknownProject) => {
            let mut replies: Vec<Option<Reply>> = replies.into_iter().map(Some).collect();
            for indices in by_project(&tasks).into_values() {
                let group: Vec<Task> = indices.iter().map(|&i| tasks[i].clone()).collect();
                let outcome = db.insert_tasks(&group, replica).await;
                for i in indices {
                    if let Some(reply) = replies[i].take() {
                        drop(reply.send(match &outcome {
                            Ok(inserted) => Ok(*inserted == TaskInsert::Stored),
                            Err(e) => Err(e.duplicate()),
                        }));
                    }
                }
            }
        }
        Err(e) => replies.into_iter().for_each(|r| drop(r.send(Err(e.duplicate())))),
    }
}

/// Positions of each project's tasks.
fn by_project(tasks: &[Task]) -> HashMap<ProjectId, Vec<usize>> {
    let mut groups: HashMap<ProjectId, Vec<usize>> = HashMap::new();
    for (i, task) in tasks.iter().enumerate() {
        groups.entry(task.project_id).or_default().push(i);
    }
    groups
}

/// Should the writer task end other than by running out of work (a panic,
/// or dropped before it ran), lets the next create start a new writer
/// instead of waiting for ever; the creates that were waiting are answered
/// [`StorageError::WriterStopped`].
struct Unfinished {
    pending: Arc<Mutex<Pending>>,
    armed: bool,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if self.armed {
            let mut pending = lock(&self.pending);
            pending.writing = false;
            pending.waiting.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::future::join_all;
    use vapora_shared::TaskStatus;

    use super::*;
    use crate::storage::TaskFilter;
    use crate::storage::tasks::tests::setup;

    async fn stored_tasks(db: &Database, project: ProjectId) -> usize {
        let filter = TaskFilter {
            project_id: Some(project),
            limit: 1_000,
            ..TaskFilter::default()
        };
        db.list_tasks(&filter).await.unwrap().len()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_creates_each_get_their_own_answer_when_a_batch_names_a_missing_project() {
        let (db, queued_task) = setup().await;
        let project = queued_task().project_id;
        let missing = ProjectId::new();
        let inserts = TaskInserts::new(db.clone(), "replica-a".into());

        // Interleaved, so that most batches mix the two projects.
        let tasks: Vec<Task> = (0..120)
            .map(|i| {
                let mut task = queued_task();
                if i % 4 == 0 {
                    task.project_id = missing;
                }
                task
            })
            .collect();
        let answers = join_all(tasks.iter().map(|t| {
            let inserts = inserts.clone();
            let task = t.clone();
            tokio::spawn(async move { inserts.insert(task).await.unwrap() })
        }))
        .await;

        for (task, answer) in tasks.iter().zip(answers) {
            assert_eq!(answer.unwrap(), task.project_id == project, "task {}", task.id);
        }
        assert_eq!(stored_tasks(&db, project).await, 90);
        assert_eq!(stored_tasks(&db, missing).await, 0);
        let one = db.get_task(tasks[1].id).await.unwrap().unwrap();
        assert_eq!(
            (one.task.project_id, one.task.status, one.rev),
            (project, TaskStatus::Queued, 1)
        );
        assert_eq!(one.history.len(), 1);
        // The writer stopped with the work, and the next create starts another.
        assert!(!lock(&inserts.pending).writing);
        assert!(inserts.insert(queued_task()).await.unwrap());
    }
}
