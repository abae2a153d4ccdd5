//! Recording an action, in order: (rate limiting happened in the
//! middleware) insert into PostgreSQL, group-committed with concurrent
//! requests but answered only once the row is durable — if that fails,
//! nothing else happens — then one pipelined Redis round trip for every side effect:
//! XADD to the audit stream (MAXLEN ~), PUBLISH on `actions` and on the
//! actor's channel, ZINCRBY on the global `actions` board and its per-type
//! board, and the last-action cache entry (5 minutes). If that round trip
//! fails, the request still succeeds: the failure is logged and counted and
//! the row stays unpublished until [`Actions::repair_once`] redoes it.

use std::time::Duration;

use sqlx::PgPool;
use switchyard_kit::{Cache, CacheStatus, Keyspace, KitError, Leaderboards, RedisConnection};
use uuid::Uuid;

use super::batch::Batcher;
use super::store::{self, ActionRow, NewAction, Owner};
use crate::domain::Principal;
use crate::validation::{FieldError, Violations};

pub const LAST_ACTION_TTL: Duration = Duration::from_secs(300);
const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Rows younger than this are left to the request that wrote them.
pub const REPAIR_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("the database is unavailable")]
    Database(#[from] sqlx::Error),
    #[error("recording failed: {0}")]
    Store(String),
    #[error("a request with this Idempotency-Key is still in progress")]
    IdempotencyInProgress,
    #[error("this Idempotency-Key was used with other parameters")]
    IdempotencyMismatch,
    #[error(transparent)]
    Redis(#[from] KitError),
}

/// Whether any string or key of `value` holds a NUL character, which
/// PostgreSQL refuses in JSON it stores.
fn holds_nul(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

/// What a bad `Idempotency-Key` is told (the header is named as sent).
pub fn invalid_idempotency_key() -> FieldError {
    FieldError::new("Idempotency-Key", "must be 1-255 printable ASCII characters")
}

/// `value` with every object's keys in order, so that the same parameters
/// sent in another order fingerprint alike.
fn sorted_keys(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), sorted_keys(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted_keys).collect()),
        other => other.clone(),
    }
}

/// What an Idempotency-Key's slot holds: `pending:<fingerprint>` while the
/// first request runs, then `{"fingerprint", "row"}`. Slots written before
/// fingerprints (`pending`, or the row alone) have none and match anything.
#[derive(Debug, Default)]
struct StoredAttempt {
    fingerprint: Option<String>,
    row: Option<ActionRow>,
}

impl StoredAttempt {
    fn parse(stored: &str) -> Self {
        if let Some(rest) = stored.strip_prefix("pending") {
            return Self { fingerprint: rest.strip_prefix(':').map(str::to_owned), row: None };
        }
        #[derive(serde::Deserialize)]
        struct Done {
            fingerprint: String,
            row: ActionRow,
        }
        match serde_json::from_str::<Done>(stored) {
            Ok(done) => Self { fingerprint: Some(done.fingerprint), row: Some(done.row) },
            Err(_) => Self { fingerprint: None, row: serde_json::from_str(stored).ok() },
        }
    }
}

/// How long an Idempotency-Key remembers its first response.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

/// The action log: its store (with group commit), Redis and the stream cap.
#[derive(Clone, Debug)]
pub struct Actions {
    db: PgPool,
    redis: RedisConnection,
    keys: Keyspace,
    audit_maxlen: u64,
    batcher: Batcher,
}

pub fn actor(principal: &Principal) -> (&'static str, Uuid) {
    (principal.kind(), principal.id())
}

fn validate(kind: &str, metadata: &serde_json::Value) -> Result<(), ActionError> {
    let mut violations = Violations::default();
    let kind_ok = (1..=64).contains(&kind.len())
        && kind.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !kind_ok {
        violations.push(FieldError::new("type", "must be 1-64 characters of [A-Za-z0-9_.-]"));
    }
    if !metadata.is_object() {
        violations.push(FieldError::new("metadata", "must be a JSON object"));
    } else {
        let text = metadata.to_string();
        if text.len() > MAX_METADATA_BYTES {
            violations.push(FieldError::new("metadata", "must be at most 16 KiB"));
        } else if holds_nul(metadata) {
            // PostgreSQL cannot hold a NUL character in text or JSON.
            violations.push(FieldError::new("metadata", "must not contain NUL characters (\\u0000)"));
        }
    }
    let errors = violations.into_errors();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ActionError::Validation(errors))
    }
}

impl Actions {
    /// Starts the group-commit tasks on the current runtime.
    pub fn new(db: PgPool, redis: RedisConnection, keys: Keyspace, audit_maxlen: u64) -> Self {
        Self { batcher: Batcher::start(db.clone()), db, redis, keys, audit_maxlen }
    }

    fn last_cache(&self) -> Cache {
        Cache::new(self.redis.clone(), self.keys.clone(), "last-action")
    }

    pub fn audit_key(&self) -> String {
        self.keys.tagged("audit", &["actions"])
    }

    pub fn channel(&self, suffix: Option<(&str, Uuid)>) -> String {
        match suffix {
            Some((kind, id)) => self.keys.key(&["actions", kind, &id.to_string()]),
            None => self.keys.key(&["actions"]),
        }
    }

    pub async fn record(
        &self,
        principal: &Principal,
        kind: &str,
        metadata: serde_json::Value,
    ) -> Result<ActionRow, ActionError> {
        validate(kind, &metadata)?;
        let (actor_kind, actor_id) = actor(principal);
        let new = NewAction {
            id: Uuid::now_v7(),
            actor_kind: actor_kind.to_owned(),
            actor_id,
            account_id: principal.account().id(),
            kind: kind.to_owned(),
            metadata,
        };
        let row = self.batcher.insert(new).await.map_err(ActionError::Store)?;
        match self.publish(std::slice::from_ref(&row)).await {
            Ok(()) => self.batcher.mark_published(row.id),
            Err(error) => {
                metrics::counter!("actions_side_effects_failed_total").increment(1);
                tracing::error!(%error, action = %row.id, "action side effects failed; the worker will repair them");
            }
        }
        Ok(row)
    }

    /// [`Actions::record`], at most once per `idempotency_key` (per actor,
    /// for 24 h): a retry gets the first action back (`true` = replayed).
    pub async fn record_once(
        &self,
        principal: &Principal,
        idempotency_key: Option<&str>,
        kind: &str,
        metadata: serde_json::Value,
    ) -> Result<(ActionRow, bool), ActionError> {
        let Some(key) = idempotency_key else {
            return Ok((self.record(principal, kind, metadata).await?, false));
        };
        if key.is_empty() || key.len() > 255 || key.chars().any(char::is_control) {
            return Err(ActionError::Validation(vec![invalid_idempotency_key()]));
        }
        let (actor_kind, actor_id) = actor(principal);
        let slot = self.keys.tagged(&format!("idem:{actor_kind}:{actor_id}"), &["actions", key]);
        let ttl = IDEMPOTENCY_TTL.as_secs();
        let mut conn = self.redis.clone();
        // What the key was first used for: a retry must ask for the same.
        let fingerprint = crate::secrets::sha256_hex(&format!("{kind}\u{0}{}", sorted_keys(&metadata)));
        let claimed: Option<String> = redis::cmd("SET")
            .arg(&slot)
            .arg(format!("pending:{fingerprint}"))
            .arg("NX")
            .arg("EX")
            .arg(ttl)
            .query_async(&mut conn)
            .await
            .map_err(KitError::from)?;
        if claimed.is_none() {
            let stored: Option<String> =
                redis::cmd("GET").arg(&slot).query_async(&mut conn).await.map_err(KitError::from)?;
            return match stored.as_deref().map(StoredAttempt::parse) {
                Some(StoredAttempt { fingerprint: Some(first), .. }) if first != fingerprint => {
                    Err(ActionError::IdempotencyMismatch)
                }
                Some(StoredAttempt { row: Some(row), .. }) => Ok((row, true)),
                _ => Err(ActionError::IdempotencyInProgress),
            };
        }
        match self.record(principal, kind, metadata).await {
            Ok(row) => {
                let stored = serde_json::json!({"fingerprint": fingerprint, "row": row}).to_string();
                redis::cmd("SET")
                    .arg(&slot)
                    .arg(stored)
                    .arg("EX")
                    .arg(ttl)
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(KitError::from)?;
                Ok((row, false))
            }
            Err(error) => {
                // Free the key so the client's retry can act.
                let _: Result<(), _> = redis::cmd("DEL").arg(&slot).query_async(&mut conn).await;
                Err(error)
            }
        }
    }

    /// Every side effect of `rows` in one pipelined round trip.
    async fn publish(&self, rows: &[ActionRow]) -> Result<(), KitError> {
        let boards = Leaderboards::new(self.redis.clone(), self.keys.clone());
        let cache = self.last_cache();
        let mut pipe = redis::pipe();
        for row in rows {
            let json = serde_json::to_string(row).map_err(|e| KitError::Config(e.to_string()))?;
            let actor = format!("{}:{}", row.actor_kind, row.actor_id);
            pipe.cmd("XADD")
                .arg(self.audit_key())
                .arg("MAXLEN")
                .arg("~")
                .arg(self.audit_maxlen)
                .arg("*")
                .arg("action_id")
                .arg(row.id.to_string())
                .arg("actor")
                .arg(&actor)
                .arg("type")
                .arg(&row.kind)
                .arg("action")
                .arg(&json)
                .ignore();
            pipe.publish(self.channel(None), &json).ignore();
            pipe.publish(self.channel(Some((&row.actor_kind, row.actor_id))), &json).ignore();
            boards.increment_in(&mut pipe, "global/actions", &actor, 1.0);
            boards.increment_in(&mut pipe, &format!("global/actions:{}", row.kind.to_lowercase()), &actor, 1.0);
            cache.put_in(&mut pipe, &actor, row, LAST_ACTION_TTL)?;
        }
        let mut conn = self.redis.clone();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// The actor's last action: from the cache, else from PostgreSQL
    /// (refilling the cache).
    pub async fn last(&self, principal: &Principal) -> Result<(Option<ActionRow>, CacheStatus), ActionError> {
        let (kind, id) = actor(principal);
        let item = format!("{kind}:{id}");
        self.last_cache()
            .get_or_load(&item, LAST_ACTION_TTL, || async {
                Ok::<_, ActionError>(store::page(&self.db, Owner::Actor(kind, id), None, 1).await?.into_iter().next())
            })
            .await
    }

    /// The action log of the caller's account (its user's and every API
    /// client's), newest first.
    pub async fn list(
        &self,
        principal: &Principal,
        cursor: Option<&str>,
        limit: u64,
    ) -> Result<(Vec<ActionRow>, Option<String>), ActionError> {
        if !(1..=100).contains(&limit) {
            return Err(ActionError::Validation(vec![FieldError::new("limit", "must be between 1 and 100")]));
        }
        let before = match cursor {
            None => None,
            Some(c) => Some(Uuid::try_parse(c).map_err(|_| {
                ActionError::Validation(vec![FieldError::new("cursor", "is not a cursor from this API")])
            })?),
        };
        let limit = i64::try_from(limit).unwrap_or(100);
        let account = Owner::Account(principal.account().id());
        let mut rows = store::page(&self.db, account, before, limit + 1).await?;
        let next = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(|r| r.id.simple().to_string())
        } else {
            None
        };
        Ok((rows, next))
    }

    /// Entries of the audit stream from `from` (an entry id, `-` for the
    /// start), for replay: (entry id, action JSON).
    pub async fn audit(&self, from: &str, count: u64) -> Result<Vec<(String, serde_json::Value)>, ActionError> {
        let mut conn = self.redis.clone();
        let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(self.audit_key())
            .arg(from)
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await
            .map_err(KitError::from)?;
        Ok(entries
            .into_iter()
            .map(|(id, fields)| {
                let action = fields
                    .into_iter()
                    .find(|(k, _)| k == "action")
                    .and_then(|(_, v)| serde_json::from_str(&v).ok())
                    .unwrap_or(serde_json::Value::Null);
                (id, action)
            })
            .collect())
    }

    /// Redoes the side effects of actions left unpublished for longer than
    /// [`REPAIR_AFTER`]; returns how many were repaired.
    pub async fn repair_once(&self, older_than: Duration) -> Result<usize, ActionError> {
        let mut tx = self.db.begin().await?;
        let rows = store::unpublished(&mut *tx, older_than, 500).await?;
        if rows.is_empty() {
            return Ok(0);
        }
        self.publish(&rows).await?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        store::mark_published(&mut *tx, &ids).await?;
        tx.commit().await?;
        metrics::counter!("actions_repaired_total").increment(rows.len() as u64);
        Ok(rows.len())
    }
}

/// Whether a string is a well-formed audit stream position.
pub fn valid_stream_id(id: &str) -> bool {
    id == "-" || switchyard_kit::stream::is_entry_id(id, true)
}
