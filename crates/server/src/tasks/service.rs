//! The tasks service: validation, tenancy, and each change with its event
//! in one transaction. No HTTP.

use chrono::Utc;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::store::{self, NewTaskRow, TaskFilter, TaskRow};
use crate::domain::{PageCursor, PageRequest, PrincipalId};
use crate::outbox;
use crate::validation::{FieldError, Violations};

pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 100;
pub const MAX_TITLE: usize = 200;
pub const MAX_DESCRIPTION: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum TasksError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("no such task")]
    NotFound,
    #[error("the task is already complete")]
    AlreadyComplete,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A task to create.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub title: String,
    pub description: Option<String>,
    /// `low`, `normal` or `high` (the edge parses it).
    pub priority: &'static str,
    /// Any live user (the assignee need not belong to the account).
    pub assigned_to: Option<Uuid>,
}

/// One page of tasks, newest first.
#[derive(Debug, Clone)]
pub struct TaskPage {
    pub tasks: Vec<TaskRow>,
    pub next_cursor: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Tasks {
    db: PgPool,
}

/// The account's stream tasks go to, as the events API names it.
pub fn stream_of(account: PrincipalId) -> String {
    format!("{account}/tasks")
}

fn event_data(task: &TaskRow) -> serde_json::Value {
    json!({
        "task_id": task.id,
        "title": task.title,
        "priority": task.priority,
        "status": task.status,
        "assigned_to": task.assigned_to,
        "created_by": task.created_by,
        "completed_by": task.completed_by,
        "occurred_at": Utc::now(),
    })
}

impl Tasks {
    pub fn new(db: PgPool) -> Self {
        Self { db }
    }

    /// Creates a task in `account`, by `creator`, with `task.created`.
    pub async fn create(
        &self,
        account: PrincipalId,
        creator: PrincipalId,
        task: &NewTask,
    ) -> Result<TaskRow, TasksError> {
        let mut v = Violations::default();
        let title = task.title.trim();
        if title.is_empty() || title.chars().count() > MAX_TITLE || title.chars().any(char::is_control) {
            v.push(FieldError::new("title", format!("must be 1-{MAX_TITLE} characters, no control characters")));
        }
        // PostgreSQL text cannot hold NUL.
        if task.description.as_ref().is_some_and(|d| d.chars().count() > MAX_DESCRIPTION || d.contains('\0')) {
            v.push(FieldError::new(
                "description",
                format!("must be at most {MAX_DESCRIPTION} characters, without NUL"),
            ));
        }
        if !v.is_empty() {
            return Err(TasksError::Validation(v.into_errors()));
        }
        let created_by = creator.to_string();
        let row = NewTaskRow {
            account_id: account.uuid(),
            title,
            description: task.description.as_deref(),
            priority: task.priority,
            assigned_to: task.assigned_to,
            created_by: &created_by,
        };
        let mut tx = self.db.begin().await?;
        let created = store::insert(&mut tx, &row)
            .await?
            .ok_or_else(|| TasksError::Validation(vec![FieldError::new("assigned_to", "is not a user")]))?;
        outbox::enqueue(&mut tx, &stream_of(account), &created.id.to_string(), "task.created", &event_data(&created))
            .await?;
        tx.commit().await?;
        Ok(created)
    }

    pub async fn get(&self, account: PrincipalId, id: Uuid) -> Result<TaskRow, TasksError> {
        store::find(&self.db, account.uuid(), id).await?.ok_or(TasksError::NotFound)
    }

    /// The account's tasks newest first; `status` is `open` or `completed`
    /// (the edge parses it).
    pub async fn list(
        &self,
        account: PrincipalId,
        filter: TaskFilter<'_>,
        cursor: Option<&str>,
        limit: Option<u64>,
    ) -> Result<TaskPage, TasksError> {
        let page = PageRequest::parse(cursor, limit, DEFAULT_PAGE, MAX_PAGE).map_err(TasksError::Validation)?;
        let before = page.before.map(|c| (c.at, c.id));
        let mut tasks = store::page(&self.db, account.uuid(), filter, before, page.fetch()).await?;
        let next_cursor = page.finish(&mut tasks, |task| PageCursor::new(task.created_at, task.id));
        Ok(TaskPage { tasks, next_cursor })
    }

    /// Completes an open task, by `completer`, with `task.completed`;
    /// `AlreadyComplete` when it was.
    pub async fn complete(
        &self,
        account: PrincipalId,
        completer: PrincipalId,
        id: Uuid,
    ) -> Result<TaskRow, TasksError> {
        let mut tx = self.db.begin().await?;
        let Some(done) = store::complete(&mut tx, account.uuid(), id, &completer.to_string()).await? else {
            drop(tx);
            return match store::find(&self.db, account.uuid(), id).await? {
                Some(_) => Err(TasksError::AlreadyComplete),
                None => Err(TasksError::NotFound),
            };
        };
        outbox::enqueue(&mut tx, &stream_of(account), &done.id.to_string(), "task.completed", &event_data(&done))
            .await?;
        tx.commit().await?;
        Ok(done)
    }
}
