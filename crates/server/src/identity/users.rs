//! User management: admins list and search users, and change or delete any
//! of them; a user reads, changes (not their role) and deletes themself.
//!
//! Invariants: every change commits with its `user.*` event (the outbox);
//! a deletion keeps an anonymised row, and takes the user's API keys down
//! in the same transaction and their sessions right after the commit (a
//! repeated deletion of a deleted user repeats that step, so one cut short
//! by a Redis outage can be finished); a role change signs the user out
//! everywhere, since sessions and cached keys carry the role.

use serde_json::json;
use uuid::Uuid;

use super::domain::{DisplayName, Username};
use super::service::{Identity, IdentityError, User};
use super::store::{self, UserChange};
use crate::domain::{PageCursor, PageRequest, Principal, Role};
use crate::validation::{FieldError, Violations};

/// Default and largest page of `GET /v1/users`.
pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 100;

/// Who is asking: their account, and whether they are an operator.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub account: Uuid,
    pub admin: bool,
}

impl From<&Principal> for Caller {
    fn from(principal: &Principal) -> Self {
        Self { account: principal.account().uuid(), admin: principal.is_operator() }
    }
}

impl Caller {
    /// Admins act on anyone; a user on themself; anyone else's id is
    /// `NotFound`, like an id that does not exist.
    fn may_act_on(&self, id: Uuid) -> Result<(), IdentityError> {
        if self.admin || self.account == id {
            Ok(())
        } else {
            Err(IdentityError::NotFound)
        }
    }
}

/// A change as asked for; `display_name: Some(None)` clears it.
#[derive(Debug, Default, Clone)]
pub struct UserPatch {
    pub username: Option<String>,
    pub display_name: Option<Option<String>>,
    pub role: Option<Role>,
}

/// One page of users, newest first.
#[derive(Debug, Clone)]
pub struct UserPage {
    pub users: Vec<User>,
    pub next_cursor: Option<String>,
}

impl Identity {
    /// Users newest first (deleted ones too, anonymised), filtered by
    /// `query` on username, email and display name. Admins only (checked
    /// by the caller's extractor).
    pub async fn list_users(
        &self,
        query: Option<&str>,
        cursor: Option<&str>,
        limit: Option<u64>,
    ) -> Result<UserPage, IdentityError> {
        let query = query.map(str::trim).filter(|q| !q.is_empty());
        let query_error = query
            .filter(|q| q.chars().count() > 100 || q.chars().any(char::is_control))
            .map(|_| FieldError::new("query", "must be at most 100 characters, no control characters"));
        let page = match (PageRequest::parse(cursor, limit, DEFAULT_PAGE, MAX_PAGE), query_error) {
            (Ok(page), None) => page,
            (page, query_error) => {
                let errors = query_error.into_iter().chain(page.err().into_iter().flatten()).collect();
                return Err(IdentityError::Validation(errors));
            }
        };
        let mut rows = store::page(&self.db, query, page.before.map(|c| (c.at, c.id)), page.fetch()).await?;
        let next_cursor = page.finish(&mut rows, |row| PageCursor::new(row.created_at, row.id));
        Ok(UserPage { users: rows.into_iter().map(User::from).collect(), next_cursor })
    }

    /// One user, to an admin or to themself.
    pub async fn get_user(&self, caller: Caller, id: Uuid) -> Result<User, IdentityError> {
        caller.may_act_on(id)?;
        let user = self.user(id).await?;
        if user.deleted_at.is_some() && !caller.admin {
            return Err(IdentityError::NotFound);
        }
        Ok(user)
    }

    /// Changes a user's username or display name (an admin or themself)
    /// or role (admins only: `Forbidden` otherwise), with `user.updated`.
    pub async fn update_user(&self, caller: Caller, id: Uuid, patch: &UserPatch) -> Result<User, IdentityError> {
        caller.may_act_on(id)?;
        if patch.role.is_some() && !caller.admin {
            return Err(IdentityError::Forbidden("only admins may change a role"));
        }
        let mut v = Violations::default();
        let username = patch.username.as_deref().and_then(|u| v.check(Username::parse(u)));
        let display_name = match &patch.display_name {
            Some(Some(name)) => v.check(DisplayName::parse(name)).map(Some),
            Some(None) => Some(None),
            None => None,
        };
        if !v.is_empty() {
            return Err(IdentityError::Validation(v.into_errors()));
        }
        // Nothing to change (`{"role": null}` names no change): the user as
        // they are, and no event.
        if patch.username.is_none() && patch.display_name.is_none() && patch.role.is_none() {
            return self.get_user(caller, id).await;
        }
        let change = UserChange {
            username: username.as_ref().map(Username::as_str),
            display_name: display_name.as_ref().map(|d| d.as_ref().map(DisplayName::as_str)),
            role: patch.role.map(Role::as_str),
        };
        let changed: Vec<&str> = [
            ("username", change.username.is_some()),
            ("display_name", change.display_name.is_some()),
            ("role", change.role.is_some()),
        ]
        .into_iter()
        .filter_map(|(field, set)| set.then_some(field))
        .collect();
        let mut tx = self.db.begin().await?;
        let before = store::find_by_id(&mut *tx, id).await?;
        let row = store::update_user(&mut tx, id, &change).await?.ok_or(IdentityError::NotFound)?;
        self.emit(&mut tx, "user.updated", &row, json!({ "changed": changed, "updated_by": caller.account })).await?;
        tx.commit().await?;
        if before.is_some_and(|b| b.role != row.role) {
            let revoked = self.sessions.revoke_all(id).await?;
            self.account_keys.forget(id).await?;
            tracing::info!(user_id = %id, revoked, "role changed; sessions revoked");
        }
        Ok(row.into())
    }

    /// Deletes a user (an admin or themself): anonymises the row, revokes
    /// every API key in the same transaction as `user.deleted`, then every
    /// session and the keys' cached answers. Deleting a deleted user (an
    /// admin) repeats the second step.
    pub async fn delete_user(&self, caller: Caller, id: Uuid) -> Result<(), IdentityError> {
        caller.may_act_on(id)?;
        let mut tx = self.db.begin().await?;
        match store::anonymise_user(&mut tx, id).await? {
            Some(row) => {
                self.account_keys.revoke_all(&mut tx, id).await?;
                self.emit(&mut tx, "user.deleted", &row, json!({ "deleted_by": caller.account })).await?;
                tx.commit().await?;
            }
            None => {
                drop(tx);
                let deleted = store::find_by_id(&self.db, id).await?.is_some_and(|row| row.deleted_at.is_some());
                if !deleted || !caller.admin {
                    return Err(IdentityError::NotFound);
                }
            }
        }
        let revoked = self.sessions.revoke_all(id).await?;
        self.account_keys.forget(id).await?;
        tracing::info!(user_id = %id, revoked, "user deleted; sessions and API keys revoked");
        Ok(())
    }
}
