//! API clients and their keys: creation, listing, rotation with a grace
//! period and retention, revocation, and authentication by key.
//!
//! Invariants: a key is shown once and stored only as a keyed hash; the hot
//! path (authenticating a key) costs nothing but a memory lookup while the
//! key is in the process's short-lived local cache (`API_KEY_LOCAL_CACHE_MS`),
//! one Redis round trip while it is in the shared cache, and no SQL either
//! way; every revocation and rotation invalidates both caches of the
//! client's keys (another instance's local cache within its short TTL),
//! and an answer read from Redis before an invalidation is never left in
//! this process's local cache after it (an invalidation counter); two
//! rotations of one client never interleave (a distributed lock, then one
//! PostgreSQL transaction).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use switchyard_kit::{Keyspace, KitError, Locks, RedisConnection};
use uuid::Uuid;

use super::keys;
use super::store::{self, ClientRow, KeyRow};
use crate::config::IdentitySettings;
use crate::domain::{AuthenticatedClient, Role};
use crate::secrets::KeyedHasher;
use crate::validation::{FieldError, Violations};

#[derive(Debug, thiserror::Error)]
pub enum ClientsError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("not found")]
    NotFound,
    #[error("another rotation of this client is in progress")]
    RotationInProgress,
    #[error(transparent)]
    Redis(#[from] KitError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Cache(#[from] serde_json::Error),
}

/// A client with its keys (newest first).
#[derive(Debug, Clone)]
pub struct ClientWithKeys {
    pub client: ClientRow,
    pub keys: Vec<KeyRow>,
}

#[derive(Debug, Clone)]
pub struct NewKey {
    pub api_key: String,
    pub key: KeyRow,
}

#[derive(Debug, Clone)]
pub struct Rotation {
    pub api_key: String,
    pub key_id: Uuid,
    pub previous_key_expires_at: Option<DateTime<Utc>>,
}

/// What the key cache holds: the owner, or a remembered miss.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum CachedKey {
    Valid { client: AuthenticatedClient, expires_at_ms: Option<i64> },
    Invalid,
}

#[derive(Clone, Debug)]
pub struct Clients {
    db: PgPool,
    redis: RedisConnection,
    keys: Keyspace,
    locks: Locks,
    hasher: KeyedHasher,
    grace: Duration,
    retention: u32,
    cache_ttl: Duration,
    /// Resolved keys by hash, for `API_KEY_LOCAL_CACHE_MS` (None: off).
    local: Option<moka::sync::Cache<Vec<u8>, CachedKey>>,
    /// Bumped by every invalidation, after the shared cache was written and
    /// before the local one is cleared: a lookup that saw it change since
    /// it read Redis drops what it put in the local cache.
    invalidations: Arc<AtomicU64>,
}

impl Clients {
    pub fn new(
        db: PgPool,
        redis: RedisConnection,
        keyspace: Keyspace,
        hasher: KeyedHasher,
        settings: &IdentitySettings,
    ) -> Self {
        Self {
            locks: Locks::new(redis.clone(), keyspace.clone()),
            db,
            redis,
            keys: keyspace,
            hasher,
            grace: settings.api_key_grace_period,
            retention: settings.api_key_retention,
            cache_ttl: settings.api_key_cache_ttl,
            local: (!settings.api_key_local_cache.is_zero()).then(|| {
                moka::sync::Cache::builder().max_capacity(100_000).time_to_live(settings.api_key_local_cache).build()
            }),
            invalidations: Arc::new(AtomicU64::new(0)),
        }
    }

    fn key_hash(&self, api_key: &str) -> Vec<u8> {
        self.hasher.hash("api-key", api_key)
    }

    fn cache_key(&self, key_hash: &[u8]) -> String {
        self.keys.tagged(&format!("apikey:{}", hex::encode(&key_hash[..16])), &["auth"])
    }

    pub async fn create(
        &self,
        owner_id: Uuid,
        name: &str,
        rate_limit: Option<i64>,
    ) -> Result<(ClientRow, NewKey), ClientsError> {
        let mut violations = Violations::default();
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            violations.push(FieldError::new("name", "must be 1-100 printable characters"));
        }
        let rate_limit = match rate_limit {
            None => None,
            Some(n) if (1..=i64::from(i32::MAX)).contains(&n) => Some(n as i32),
            Some(_) => {
                violations.push(FieldError::new("rate_limit", "must be a positive number of requests per minute"));
                None
            }
        };
        let errors = violations.into_errors();
        if !errors.is_empty() {
            return Err(ClientsError::Validation(errors));
        }
        let api_key = keys::generate();
        let mut tx = self.db.begin().await?;
        let client = store::insert_client(&mut *tx, owner_id, name, rate_limit).await?;
        let key =
            store::insert_key(&mut *tx, client.id, &self.key_hash(&api_key), &keys::display_prefix(&api_key)).await?;
        tx.commit().await?;
        Ok((client, NewKey { api_key, key }))
    }

    pub async fn list(&self, owner_id: Uuid) -> Result<Vec<ClientWithKeys>, ClientsError> {
        let clients = store::clients_of(&self.db, owner_id).await?;
        self.with_keys(clients).await
    }

    pub async fn get(&self, owner_id: Uuid, client_id: Uuid) -> Result<ClientWithKeys, ClientsError> {
        let client = store::owned_client(&self.db, owner_id, client_id).await?.ok_or(ClientsError::NotFound)?;
        Ok(self.with_keys(vec![client]).await?.remove(0))
    }

    async fn with_keys(&self, clients: Vec<ClientRow>) -> Result<Vec<ClientWithKeys>, ClientsError> {
        let ids: Vec<Uuid> = clients.iter().map(|c| c.id).collect();
        let mut keys = store::keys_of(&self.db, &ids).await?;
        Ok(clients
            .into_iter()
            .map(|client| {
                let (mine, rest): (Vec<KeyRow>, Vec<KeyRow>) = keys.drain(..).partition(|k| k.client_id == client.id);
                keys = rest;
                ClientWithKeys { client, keys: mine }
            })
            .collect())
    }

    /// Issues a new key; the previous keys keep working for the grace
    /// period, and only the newest `API_KEY_RETENTION` stay valid.
    pub async fn rotate(&self, owner_id: Uuid, client_id: Uuid) -> Result<Rotation, ClientsError> {
        store::owned_client(&self.db, owner_id, client_id).await?.ok_or(ClientsError::NotFound)?;
        let resource = format!("client-rotation:{client_id}");
        let lease = self
            .locks
            .acquire(&resource, Duration::from_secs(30), None)
            .await?
            .ok_or(ClientsError::RotationInProgress)?;
        let outcome = self.rotate_locked(client_id).await;
        if let Err(error) = self.locks.release(&resource, &lease.token).await {
            tracing::warn!(%error, "could not release the rotation lock; it expires on its own");
        }
        outcome
    }

    async fn rotate_locked(&self, client_id: Uuid) -> Result<Rotation, ClientsError> {
        let api_key = keys::generate();
        let mut tx = self.db.begin().await?;
        let key =
            store::insert_key(&mut *tx, client_id, &self.key_hash(&api_key), &keys::display_prefix(&api_key)).await?;
        let previous_key_expires_at = store::start_grace(&mut *tx, client_id, key.id, self.grace).await?;
        let revoked = store::enforce_retention(&mut *tx, client_id, i64::from(self.retention)).await?;
        let all = store::key_hashes_of(&mut *tx, client_id).await?;
        tx.commit().await?;
        let changed: Vec<Vec<u8>> = all.into_iter().filter(|h| !revoked.contains(h)).collect();
        self.invalidate(&revoked, &changed).await?;
        Ok(Rotation { api_key, key_id: key.id, previous_key_expires_at })
    }

    pub async fn revoke_key(&self, owner_id: Uuid, client_id: Uuid, key_id: Uuid) -> Result<(), ClientsError> {
        let hash = store::revoke_key(&self.db, owner_id, client_id, key_id).await?.ok_or(ClientsError::NotFound)?;
        self.invalidate(&[hash], &[]).await
    }

    /// Revoked keys are cached as invalid (the cache is filled with SET NX,
    /// so a lookup racing the revocation cannot put a stale "valid" back);
    /// keys whose expiry changed are dropped from the cache.
    async fn invalidate(&self, revoked: &[Vec<u8>], changed: &[Vec<u8>]) -> Result<(), ClientsError> {
        if revoked.is_empty() && changed.is_empty() {
            return Ok(());
        }
        let invalid = serde_json::to_string(&CachedKey::Invalid)?;
        let ttl_ms = u64::try_from(self.cache_ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut pipe = redis::pipe();
        for hash in revoked {
            pipe.cmd("SET").arg(self.cache_key(hash)).arg(&invalid).arg("PX").arg(ttl_ms).ignore();
        }
        for hash in changed {
            pipe.del(self.cache_key(hash)).ignore();
        }
        let mut conn = self.redis.clone();
        let written = pipe.query_async::<()>(&mut conn).await.map_err(KitError::from);
        // Whether or not Redis took it, this process stops answering from
        // memory for these keys.
        self.invalidations.fetch_add(1, Ordering::SeqCst);
        if let Some(local) = &self.local {
            for hash in revoked.iter().chain(changed) {
                local.invalidate(hash);
            }
        }
        written?;
        Ok(())
    }

    /// Revokes every key of every client of `owner_id` on the caller's
    /// transaction (a deleted user's); [`Clients::forget_owner`] after the
    /// commit clears the caches.
    pub async fn revoke_owner_keys(conn: &mut PgConnection, owner_id: Uuid) -> Result<u64, ClientsError> {
        Ok(store::revoke_owner_keys(conn, owner_id).await?)
    }

    /// Drops the cached answers for every key of `owner_id`'s clients:
    /// revoked ones are cached as invalid, the others re-read (their
    /// owner's role may have changed).
    pub async fn forget_owner(&self, owner_id: Uuid) -> Result<(), ClientsError> {
        let hashes = store::owner_key_hashes(&self.db, owner_id).await?;
        let (revoked, changed): (Vec<_>, Vec<_>) = hashes.into_iter().partition(|(_, revoked)| *revoked);
        let revoked: Vec<Vec<u8>> = revoked.into_iter().map(|(hash, _)| hash).collect();
        let changed: Vec<Vec<u8>> = changed.into_iter().map(|(hash, _)| hash).collect();
        self.invalidate(&revoked, &changed).await
    }

    /// Resolves an API key: from the cache (one Redis round trip), else
    /// from PostgreSQL, caching the answer (also a miss) for a short time.
    pub async fn authenticate(&self, api_key: &str) -> Result<Option<AuthenticatedClient>, ClientsError> {
        if !keys::well_formed(api_key) {
            return Ok(None);
        }
        let hash = self.key_hash(api_key);
        let now_ms = Utc::now().timestamp_millis();
        let usable = |entry: CachedKey| match entry {
            CachedKey::Valid { client, expires_at_ms } if expires_at_ms.is_none_or(|at| at > now_ms) => Some(client),
            _ => None,
        };
        if let Some(entry) = self.local.as_ref().and_then(|local| local.get(&hash)) {
            return Ok(usable(entry));
        }
        let cache_key = self.cache_key(&hash);
        let mut conn = self.redis.clone();
        let seen = self.invalidations.load(Ordering::SeqCst);
        let cached: Option<String> =
            redis::cmd("GET").arg(&cache_key).query_async(&mut conn).await.map_err(KitError::from)?;
        if let Some(cached) = cached {
            let entry: CachedKey = serde_json::from_str(&cached)?;
            if let Some(local) = &self.local {
                local.insert(hash.clone(), entry.clone());
                // An invalidation since the read may have cleared the local
                // cache before this insert: undo it, the next lookup reads
                // Redis again.
                if self.invalidations.load(Ordering::SeqCst) != seen {
                    local.invalidate(&hash);
                }
            }
            return Ok(usable(entry));
        }
        let owner = store::use_key(&self.db, &hash).await?;
        let (entry, ttl) = match &owner {
            Some(owner) => {
                let client = AuthenticatedClient {
                    client_id: owner.client_id,
                    key_id: owner.key_id,
                    owner_id: owner.owner_id,
                    rate_limit: owner.rate_limit,
                    owner_role: Role::from_stored(&owner.owner_role),
                };
                let expires_at_ms = owner.expires_at.map(|at| at.timestamp_millis());
                (CachedKey::Valid { client, expires_at_ms }, self.cache_ttl)
            }
            None => (CachedKey::Invalid, self.cache_ttl.min(Duration::from_secs(10))),
        };
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        redis::cmd("SET")
            .arg(&cache_key)
            .arg(serde_json::to_string(&entry)?)
            .arg("PX")
            .arg(ttl_ms)
            .arg("NX")
            .query_async::<()>(&mut conn)
            .await
            .map_err(KitError::from)?;
        // Not into the local cache: the shared one may hold a revocation
        // that won the SET NX race, and the next lookup will read it.
        Ok(match entry {
            CachedKey::Valid { client, .. } => Some(client),
            CachedKey::Invalid => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_entry_written_before_owner_roles_reads_as_a_members_client() {
        let id = Uuid::nil();
        let old = format!(
            r#"{{"Valid":{{"client":{{"client_id":"{id}","key_id":"{id}","owner_id":"{id}","rate_limit":null}},"expires_at_ms":null}}}}"#
        );
        let CachedKey::Valid { client, .. } = serde_json::from_str(&old).unwrap() else { panic!("a valid entry") };
        assert_eq!(client.owner_role, Role::User);

        let admins = AuthenticatedClient { owner_role: Role::Admin, ..client };
        let entry = serde_json::to_string(&CachedKey::Valid { client: admins.clone(), expires_at_ms: None }).unwrap();
        assert!(entry.contains(r#""owner_role":"admin""#), "{entry}");
        let CachedKey::Valid { client, .. } = serde_json::from_str(&entry).unwrap() else { panic!("a valid entry") };
        assert_eq!(client, admins);
    }
}
