//! Replica leases, and the adoption of queued tasks whose replica is gone
//! (see `crate::replicas` for why).

use std::time::Duration;

use serde_json::json;
use vapora_shared::TaskId;

use super::{Database, StorageError};

impl Database {
    /// Extends `replica`'s lease to `ttl` from now, by the database's clock.
    pub async fn renew_lease(&self, replica: &str, ttl: Duration) -> Result<(), StorageError> {
        let sql = "UPSERT type::record('replica_lease', $replica)
            SET expires_at = time::now() + type::duration($ttl) RETURN NONE";
        let ttl = format!("{}ms", ttl.as_millis());
        self.execute(sql, json!({ "replica": replica, "ttl": ttl })).await
    }

    /// Ends `replica`'s lease at once: what it still queues is adopted by
    /// the next replica that looks.
    pub async fn release_lease(&self, replica: &str) -> Result<(), StorageError> {
        let sql = "DELETE type::record('replica_lease', $replica)";
        self.execute(sql, json!({ "replica": replica })).await
    }

    /// Moves to `replica` every task waiting for dispatch (queued, not
    /// marked dispatched) whose queue is on no live replica, and returns
    /// their ids. The update is one statement, so one transaction: when two
    /// replicas adopt at once, one of them conflicts and adopts nothing.
    pub async fn adopt_orphans(&self, replica: &str) -> Result<Vec<TaskId>, StorageError> {
        let sql = "LET $live = SELECT VALUE record::id(id) FROM replica_lease WHERE expires_at > time::now();
            UPDATE task SET queued_on = $replica, rev += 1
                WHERE status = 'queued' AND dispatched_at IS NONE
                    AND queued_on != $replica AND queued_on NOT IN $live
                RETURN VALUE record::id(id);";
        let mut response = self
            .call(self.db.query(sql).bind(json!({ "replica": replica })))
            .await?;
        let ids: Vec<serde_json::Value> = match response.take(1) {
            Ok(ids) => ids,
            Err(e) if super::is_conflict(&e) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        ids.into_iter().map(super::codec::from_record).collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use vapora_shared::TaskStatus;

    use super::*;
    use crate::storage::tasks::tests::setup;

    const TTL: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn only_tasks_of_replicas_without_a_live_lease_are_adopted_once() {
        let (db, queued_task) = setup().await;
        db.renew_lease("a", TTL).await.unwrap();
        db.renew_lease("b", TTL).await.unwrap();
        let on_a = queued_task();
        let on_b = queued_task();
        let on_c = queued_task();
        let mut dispatched = queued_task();
        dispatched.dispatched_at = Some(Utc::now());
        let mut running = queued_task();
        running.status = TaskStatus::Running;
        assert!(db.insert_task(&on_a, "a").await.unwrap());
        assert!(db.insert_task(&on_b, "b").await.unwrap());
        assert!(db.insert_task(&on_c, "c").await.unwrap());
        assert!(db.insert_task(&dispatched, "c").await.unwrap());
        assert!(db.insert_task(&running, "c").await.unwrap());

        // c never had a lease: its waiting task goes, to the first asker.
        assert_eq!(db.adopt_orphans("a").await.unwrap(), vec![on_c.id]);
        assert_eq!(db.adopt_orphans("b").await.unwrap(), Vec::<TaskId>::new());
        let adopted = db.get_task(on_c.id).await.unwrap().unwrap();
        assert_eq!(adopted.queued_on.as_deref(), Some("a"));
        assert_eq!(adopted.rev, 2, "adoption is a write other writers must see");

        // b stops: a takes its task; a's own stay where they are.
        db.release_lease("b").await.unwrap();
        let mut taken = db.adopt_orphans("a").await.unwrap();
        taken.sort();
        assert_eq!(taken, vec![on_b.id]);
        assert_eq!(
            db.get_task(on_a.id).await.unwrap().unwrap().queued_on.as_deref(),
            Some("a")
        );
    }

    #[tokio::test]
    async fn a_lease_expires_by_itself() {
        let (db, queued_task) = setup().await;
        db.renew_lease("a", Duration::from_millis(200)).await.unwrap();
        db.renew_lease("b", TTL).await.unwrap();
        let task = queued_task();
        assert!(db.insert_task(&task, "a").await.unwrap());
        assert!(db.adopt_orphans("b").await.unwrap().is_empty());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(db.adopt_orphans("b").await.unwrap(), vec![task.id]);
    }
}
