//! Group commit for the action log: concurrent requests' inserts share one
//! multi-row INSERT (one transaction, one fsync), and their "published"
//! marks share one UPDATE.
//!
//! Invariant: a request still gets its answer only after its own row is
//! durable — the batcher replies to each waiting request once the INSERT
//! holding its row has committed. Batches form naturally: while one INSERT
//! runs, newly arriving rows queue and go together in the next; a lone
//! request waits for nobody.

use std::collections::HashMap;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::store::{self, ActionRow, NewAction};

const MAX_BATCH: usize = 500;

struct Pending {
    action: NewAction,
    reply: oneshot::Sender<Result<ActionRow, String>>,
}

/// Hands rows to the insert and mark tasks.
#[derive(Clone, Debug)]
pub struct Batcher {
    inserts: mpsc::Sender<PendingInsert>,
    published: mpsc::UnboundedSender<Uuid>,
}

/// Opaque queue entry (keeps `Pending` private).
pub struct PendingInsert(Pending);

impl std::fmt::Debug for PendingInsert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingInsert")
    }
}

impl Batcher {
    /// Starts the two background tasks on the current runtime; they end
    /// when every `Batcher` clone is dropped.
    pub fn start(db: PgPool) -> Self {
        let (inserts, insert_rx) = mpsc::channel(4 * MAX_BATCH);
        let (published, published_rx) = mpsc::unbounded_channel();
        tokio::spawn(run_inserts(db.clone(), insert_rx));
        tokio::spawn(run_marks(db, published_rx));
        Self { inserts, published }
    }

    /// Inserts one action, returning once it is committed.
    pub async fn insert(&self, action: NewAction) -> Result<ActionRow, String> {
        let (reply, answer) = oneshot::channel();
        self.inserts
            .send(PendingInsert(Pending { action, reply }))
            .await
            .map_err(|_| "the action writer has stopped".to_owned())?;
        answer.await.map_err(|_| "the action writer has stopped".to_owned())?
    }

    /// Marks an action's side effects done, soon (not awaited: if it is
    /// lost, the repair redoes the side effects once more).
    pub fn mark_published(&self, id: Uuid) {
        let _ = self.published.send(id);
    }
}

async fn run_inserts(db: PgPool, mut rx: mpsc::Receiver<PendingInsert>) {
    while let Some(PendingInsert(first)) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(PendingInsert(next)) => batch.push(next),
                Err(_) => break,
            }
        }
        let actions: Vec<NewAction> = batch.iter().map(|p| p.action.clone()).collect();
        match store::insert_many(&db, &actions).await {
            Ok(rows) => {
                let mut by_id: HashMap<Uuid, ActionRow> = rows.into_iter().map(|r| (r.id, r)).collect();
                for pending in batch {
                    let row = by_id.remove(&pending.action.id).ok_or_else(|| "the row was not returned".to_owned());
                    let _ = pending.reply.send(row);
                }
            }
            Err(error) => {
                tracing::error!(%error, rows = batch.len(), "inserting actions failed");
                let message = error.to_string();
                for pending in batch {
                    let _ = pending.reply.send(Err(message.clone()));
                }
            }
        }
    }
}

async fn run_marks(db: PgPool, mut rx: mpsc::UnboundedReceiver<Uuid>) {
    while let Some(first) = rx.recv().await {
        let mut ids = vec![first];
        while ids.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(id) => ids.push(id),
                Err(_) => break,
            }
        }
        if let Err(error) = store::mark_published(&db, &ids).await {
            tracing::warn!(%error, rows = ids.len(), "could not mark actions published; the repair will redo them");
        }
    }
}
