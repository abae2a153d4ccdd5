//! Sessions in Redis: one hash per session (user, role, created_at,
//! last_seen, ip, user agent, current refresh-token hash) with a sliding TTL
//! equal to the refresh lifetime, plus a per-user index (sorted set) to list
//! and revoke a user's sessions.
//!
//! Invariants: every key of a user's sessions carries the user's hash tag,
//! so each change below is one Lua script; a refresh token is valid exactly
//! once, and presenting a used one revokes its session (reuse detection).

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use switchyard_kit::{Keyspace, KitError, RedisConnection};
use uuid::Uuid;

use crate::domain::PrincipalId;

static CREATE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/session_create.lua")));
static TOUCH: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/session_touch.lua")));
static REFRESH: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/session_refresh.lua")));
static REVOKE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/session_revoke.lua")));

/// What a session records about where it came from.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub user_id: Uuid,
    pub role: String,
    pub ip: String,
    pub user_agent: String,
    pub refresh_hash: String,
}

/// A session as listed to its owner.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: Uuid,
    pub created_at: String,
    pub last_seen: String,
    pub ip: String,
    pub user_agent: String,
}

/// Outcome of presenting a refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    Rotated,
    Unknown,
    ReuseDetected,
}

#[derive(Clone, Debug)]
pub struct SessionStore {
    conn: RedisConnection,
    keys: Keyspace,
    ttl: Duration,
}

impl SessionStore {
    pub fn new(conn: RedisConnection, keys: Keyspace, ttl: Duration) -> Self {
        Self { conn, keys, ttl }
    }

    fn tag(user_id: Uuid) -> String {
        PrincipalId::User(user_id).to_string()
    }

    fn session_key(&self, user_id: Uuid, session_id: Uuid) -> String {
        self.keys.tagged(&Self::tag(user_id), &["session", &session_id.to_string()])
    }

    fn used_key(&self, user_id: Uuid, session_id: Uuid) -> String {
        self.keys.tagged(&Self::tag(user_id), &["session", &session_id.to_string(), "used"])
    }

    fn index_key(&self, user_id: Uuid) -> String {
        self.keys.tagged(&Self::tag(user_id), &["sessions"])
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX)
    }

    pub async fn create(&self, session: &NewSession) -> Result<Uuid, KitError> {
        let id = Uuid::now_v7();
        let now = now_rfc3339();
        let mut invocation = CREATE.key(self.session_key(session.user_id, id));
        invocation.key(self.index_key(session.user_id)).arg(id.to_string()).arg(self.ttl_ms());
        for (field, value) in [
            ("user_id", session.user_id.to_string()),
            ("role", session.role.clone()),
            ("created_at", now.clone()),
            ("last_seen", now),
            ("ip", session.ip.clone()),
            ("user_agent", session.user_agent.clone()),
            ("refresh_hash", session.refresh_hash.clone()),
        ] {
            invocation.arg(field).arg(value);
        }
        let mut conn = self.conn.clone();
        invocation.invoke_async::<()>(&mut conn).await?;
        Ok(id)
    }

    /// Marks the session used now and slides its expiry; returns its role,
    /// or `None` when it was revoked or expired.
    pub async fn touch(&self, user_id: Uuid, session_id: Uuid) -> Result<Option<String>, KitError> {
        let mut conn = self.conn.clone();
        Ok(TOUCH
            .key(self.session_key(user_id, session_id))
            .key(self.index_key(user_id))
            .arg(self.ttl_ms())
            .arg(now_rfc3339())
            .invoke_async(&mut conn)
            .await?)
    }

    pub async fn refresh(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        presented_hash: &str,
        new_hash: &str,
    ) -> Result<RefreshOutcome, KitError> {
        let mut conn = self.conn.clone();
        let outcome: i64 = REFRESH
            .key(self.session_key(user_id, session_id))
            .key(self.used_key(user_id, session_id))
            .key(self.index_key(user_id))
            .arg(presented_hash)
            .arg(new_hash)
            .arg(self.ttl_ms())
            .arg(session_id.to_string())
            .arg(now_rfc3339())
            .invoke_async(&mut conn)
            .await?;
        Ok(match outcome {
            1 => RefreshOutcome::Rotated,
            -1 => RefreshOutcome::ReuseDetected,
            _ => RefreshOutcome::Unknown,
        })
    }

    /// The role stored in a session, when it exists.
    pub async fn role(&self, user_id: Uuid, session_id: Uuid) -> Result<Option<String>, KitError> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("HGET").arg(self.session_key(user_id, session_id)).arg("role").query_async(&mut conn).await?)
    }

    /// Revokes the given sessions of one user; returns how many existed.
    pub async fn revoke(&self, user_id: Uuid, session_ids: &[Uuid]) -> Result<u64, KitError> {
        if session_ids.is_empty() {
            return Ok(0);
        }
        let mut invocation = REVOKE.key(self.index_key(user_id));
        for sid in session_ids {
            invocation.key(self.session_key(user_id, *sid)).key(self.used_key(user_id, *sid)).arg(sid.to_string());
        }
        let mut conn = self.conn.clone();
        Ok(invocation.invoke_async(&mut conn).await?)
    }

    /// Revokes every session of the user; returns how many there were.
    pub async fn revoke_all(&self, user_id: Uuid) -> Result<u64, KitError> {
        let ids = self.ids(user_id).await?;
        self.revoke(user_id, &ids).await
    }

    async fn ids(&self, user_id: Uuid) -> Result<Vec<Uuid>, KitError> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> =
            redis::cmd("ZRANGE").arg(self.index_key(user_id)).arg(0).arg(-1).query_async(&mut conn).await?;
        Ok(ids.iter().filter_map(|id| id.parse().ok()).collect())
    }

    /// The user's live sessions, oldest first. Index entries whose session
    /// expired are pruned on the way.
    pub async fn list(&self, user_id: Uuid) -> Result<Vec<SessionInfo>, KitError> {
        let ids = self.ids(user_id).await?;
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(self.session_key(user_id, *id));
        }
        let mut conn = self.conn.clone();
        let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
        let mut live = Vec::new();
        let mut expired = Vec::new();
        for (id, mut fields) in ids.into_iter().zip(hashes) {
            if fields.is_empty() {
                expired.push(id);
                continue;
            }
            let mut take = |name: &str| fields.remove(name).unwrap_or_default();
            live.push(SessionInfo {
                id,
                created_at: take("created_at"),
                last_seen: take("last_seen"),
                ip: take("ip"),
                user_agent: take("user_agent"),
            });
        }
        if !expired.is_empty() {
            let mut zrem = redis::cmd("ZREM");
            zrem.arg(self.index_key(user_id));
            for id in &expired {
                zrem.arg(id.to_string());
            }
            zrem.query_async::<()>(&mut conn).await?;
        }
        Ok(live)
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
