//! One-time login codes in Redis: six digits, valid for `OTP_TTL_SECS`,
//! single use, voided after `OTP_MAX_ATTEMPTS` wrong tries. Only a keyed
//! hash of the code is stored, and a new request replaces the old code.

use std::sync::LazyLock;
use std::time::Duration;

use rand::Rng;
use redis::Script;
use switchyard_kit::{Keyspace, KitError, RedisConnection};

use crate::secrets::KeyedHasher;

static VERIFY: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/otp_verify.lua")));

#[derive(Clone, Debug)]
pub struct OtpStore {
    conn: RedisConnection,
    keys: Keyspace,
    hasher: KeyedHasher,
    ttl: Duration,
    max_attempts: u32,
}

impl OtpStore {
    pub fn new(conn: RedisConnection, keys: Keyspace, hasher: KeyedHasher, ttl: Duration, max_attempts: u32) -> Self {
        Self { conn, keys, hasher, ttl, max_attempts }
    }

    /// Keys name a hash of the address, not the address itself.
    fn key(&self, normalized_email: &str) -> String {
        let subject = self.hasher.hash_hex("otp-subject", normalized_email);
        self.keys.tagged(&format!("otp:{}", &subject[..32]), &["code"])
    }

    /// Makes a new code for the address, replacing any pending one.
    pub async fn issue(&self, normalized_email: &str) -> Result<String, KitError> {
        let code = format!("{:06}", rand::rng().random_range(0..1_000_000));
        let key = self.key(normalized_email);
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .del(&key)
            .hset_multiple(&key, &[("code_hash", self.hasher.hash_hex("otp", &code)), ("attempts", "0".into())])
            .pexpire(&key, i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX))
            .query_async::<()>(&mut conn)
            .await?;
        Ok(code)
    }

    /// Whether `code` is the pending code of the address (consuming it).
    pub async fn verify(&self, normalized_email: &str, code: &str) -> Result<bool, KitError> {
        let mut conn = self.conn.clone();
        let matched: i64 = VERIFY
            .key(self.key(normalized_email))
            .arg(self.hasher.hash_hex("otp", code))
            .arg(self.max_attempts)
            .invoke_async(&mut conn)
            .await?;
        Ok(matched == 1)
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}
