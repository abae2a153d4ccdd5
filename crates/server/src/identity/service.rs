//! The identity service: signup, login, tokens, sessions, one-time codes
//! and password resets. It knows nothing of HTTP: callers pass plain
//! values and get [`IdentityError`]s back.
//!
//! Invariants: answers never reveal whether an email has an account (login
//! failures look and take alike; OTP and reset requests always succeed);
//! every authenticated request re-checks its session in Redis, so a
//! revocation takes effect at once; a change to a user (created, updated,
//! deleted) and its event on `sys:users` commit together (the outbox).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use switchyard_kit::{Attempts, Keyspace, KitError, RedisConnection};
use uuid::Uuid;

use super::domain::{Email, Password, Username};
use super::otp::OtpStore;
use super::password::Passwords;
use super::sessions::{NewSession, RefreshOutcome, SessionInfo, SessionStore};
use super::store::{self, InsertUserError, UserRow};
use super::tokens::AccessTokens;
use crate::config::Settings;
use crate::domain::{AuthenticatedUser, ClientMeta, Rejection, Role};
use crate::mail::Email as Mail;
use crate::outbox;
use crate::secrets::{self, KeyedHasher};
use crate::validation::{FieldError, Violations};

/// Where identity's mail goes to be delivered with retries, apart from the
/// request (the job queue, wired in by the composition root).
pub trait MailOutbox: std::fmt::Debug + Send + Sync + 'static {
    fn enqueue<'a>(&'a self, message: &'a Mail) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>>;
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("email or password is incorrect")]
    InvalidCredentials,
    #[error("the code is invalid or expired")]
    InvalidCode,
    #[error("the token is invalid, expired or already used")]
    InvalidToken,
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("this username is taken")]
    UsernameTaken,
    #[error("too many attempts")]
    TooManyAttempts { retry_after: Duration },
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error(transparent)]
    Redis(#[from] KitError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<InsertUserError> for IdentityError {
    fn from(error: InsertUserError) -> Self {
        match error {
            InsertUserError::EmailTaken => IdentityError::EmailTaken,
            InsertUserError::UsernameTaken => IdentityError::UsernameTaken,
            InsertUserError::Database(e) => IdentityError::Database(e),
        }
    }
}

impl From<Vec<FieldError>> for IdentityError {
    fn from(errors: Vec<FieldError>) -> Self {
        Self::Validation(errors)
    }
}

/// API keys are the clients capability's: what identity needs of them
/// when a user is deleted or changes role (wired by the composition root).
pub trait AccountKeys: std::fmt::Debug + Send + Sync + 'static {
    /// Revokes every API key of the user's clients on the caller's
    /// transaction (so they stop working exactly when the deletion commits).
    fn revoke_all<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        owner_id: Uuid,
    ) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>>;

    /// After the commit: drops every cached answer for the user's keys, so
    /// the next use reads the database (revoked: fails; role changed: the
    /// new role).
    fn forget<'a>(&'a self, owner_id: Uuid) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>>;
}

/// The operator stream user events go to.
pub const USERS_STREAM: &str = "sys:users";

/// A user as the API shows it.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub display_name: Option<String>,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        Self {
            id: row.id,
            username: row.username,
            email: row.email,
            display_name: row.display_name,
            role: Role::from_stored(&row.role),
            created_at: row.created_at,
            deleted_at: row.deleted_at,
        }
    }
}

/// What a successful login, OTP verification or refresh returns.
#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: String,
    pub session_id: Uuid,
}

#[derive(Clone, Debug)]
pub struct Identity {
    pub(super) db: PgPool,
    pub(super) sessions: SessionStore,
    passwords: Passwords,
    tokens: AccessTokens,
    hasher: KeyedHasher,
    login_failures: Attempts,
    otp_requests: Attempts,
    otp: OtpStore,
    outbox: Arc<dyn MailOutbox>,
    pub(super) account_keys: Arc<dyn AccountKeys>,
    settings: crate::config::IdentitySettings,
}

impl Identity {
    pub fn new(
        settings: &Settings,
        db: PgPool,
        redis: RedisConnection,
        keys: Keyspace,
        outbox: Arc<dyn MailOutbox>,
        account_keys: Arc<dyn AccountKeys>,
    ) -> anyhow::Result<Self> {
        let identity = &settings.identity;
        let hasher = KeyedHasher::new(identity.api_key_pepper.clone());
        Ok(Self {
            sessions: SessionStore::new(redis.clone(), keys.clone(), identity.refresh_token_ttl),
            passwords: Passwords::new(identity).map_err(|e| anyhow::anyhow!("argon2 parameters: {e:#}"))?,
            tokens: AccessTokens::new(&settings.jwt_secret, identity.access_token_ttl),
            login_failures: Attempts::new(redis.clone(), keys.clone(), "login-failures"),
            otp_requests: Attempts::new(redis.clone(), keys.clone(), "otp-requests"),
            otp: OtpStore::new(redis, keys, hasher.clone(), identity.otp_ttl, identity.otp_max_attempts),
            hasher,
            outbox,
            account_keys,
            db,
            settings: identity.clone(),
        })
    }

    pub fn hasher(&self) -> &KeyedHasher {
        &self.hasher
    }

    pub async fn signup(&self, username: &str, email: &str, password: &str) -> Result<User, IdentityError> {
        self.create_user(username, email, password, Role::User).await
    }

    /// Creates a user with any role (signup makes users; the admin CLI
    /// makes admins), and its `user.created` event with it.
    pub async fn create_user(
        &self,
        username: &str,
        email: &str,
        password: &str,
        role: Role,
    ) -> Result<User, IdentityError> {
        let mut violations = Violations::default();
        let username = violations.check(Username::parse(username));
        let email = violations.check(Email::parse(email));
        let password = violations.check(Password::parse("password", password));
        let (Some(username), Some(email), Some(password)) = (username, email, password) else {
            return Err(IdentityError::Validation(violations.into_errors()));
        };
        let hash = self.passwords.hash(password.expose().to_owned()).await?;
        let mut tx = self.db.begin().await?;
        let row = store::insert_user(&mut tx, username.as_str(), email.as_str(), &hash, role.as_str()).await?;
        self.emit(&mut tx, "user.created", &row, json!({})).await?;
        tx.commit().await?;
        Ok(row.into())
    }

    /// Writes a `user.*` event about `row` on the caller's transaction;
    /// `extra` adds fields to its data.
    pub(super) async fn emit(
        &self,
        conn: &mut PgConnection,
        kind: &str,
        row: &UserRow,
        extra: serde_json::Value,
    ) -> Result<(), IdentityError> {
        let mut data = json!({
            "user_id": row.id,
            "username": row.username,
            "display_name": row.display_name,
            "role": row.role,
            "occurred_at": Utc::now(),
        });
        if let (Some(data), serde_json::Value::Object(extra)) = (data.as_object_mut(), extra) {
            data.extend(extra);
        }
        outbox::enqueue(conn, USERS_STREAM, &row.id.to_string(), kind, &data).await?;
        Ok(())
    }

    pub async fn login(&self, email: &str, password: &str, meta: &ClientMeta) -> Result<TokenPair, IdentityError> {
        let subject_email = format!("email:{}", email.trim().to_lowercase());
        let subject_ip = format!("ip:{}", meta.ip);
        let limits = [
            (subject_email.as_str(), self.settings.login_max_failures_per_email),
            (subject_ip.as_str(), self.settings.login_max_failures_per_ip),
        ];
        if let Some(retry_after) = self.login_failures.blocked(&limits).await? {
            return Err(IdentityError::TooManyAttempts { retry_after });
        }
        let user = match Email::parse(email) {
            Ok(email) => store::find_by_email(&self.db, email.as_str()).await?,
            Err(_) => None,
        };
        // Verify even when there is no such user, against a dummy hash, so
        // both failures cost the same.
        let verified =
            self.passwords.verify(password.to_owned(), user.as_ref().map(|u| u.password_hash.clone())).await?;
        match user {
            Some(user) if verified => {
                self.login_failures.clear(&subject_email).await?;
                self.start_session(&user, meta).await
            }
            _ => {
                self.login_failures.record(&[&subject_email, &subject_ip], self.settings.login_failure_window).await?;
                Err(IdentityError::InvalidCredentials)
            }
        }
    }

    async fn start_session(&self, user: &UserRow, meta: &ClientMeta) -> Result<TokenPair, IdentityError> {
        let secret = secrets::random_secret();
        let session_id = self
            .sessions
            .create(&NewSession {
                user_id: user.id,
                role: user.role.clone(),
                ip: meta.ip.clone(),
                user_agent: meta.user_agent.chars().take(256).collect(),
                refresh_hash: secrets::sha256_hex(&secret),
            })
            .await?;
        self.token_pair(user.id, session_id, &user.role, &secret)
    }

    fn token_pair(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        role: &str,
        secret: &str,
    ) -> Result<TokenPair, IdentityError> {
        Ok(TokenPair {
            access_token: self.tokens.issue(user_id, session_id, role)?,
            expires_in: self.tokens.ttl().as_secs(),
            refresh_token: format!("{user_id}.{session_id}.{secret}"),
            session_id,
        })
    }

    /// Exchanges a refresh token for a new pair; the old one stops working,
    /// and presenting it again revokes the session.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, IdentityError> {
        let mut parts = refresh_token.splitn(3, '.');
        let (Some(user), Some(session), Some(secret)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(IdentityError::InvalidToken);
        };
        let (Ok(user_id), Ok(session_id)) = (user.parse::<Uuid>(), session.parse::<Uuid>()) else {
            return Err(IdentityError::InvalidToken);
        };
        let new_secret = secrets::random_secret();
        let outcome = self
            .sessions
            .refresh(user_id, session_id, &secrets::sha256_hex(secret), &secrets::sha256_hex(&new_secret))
            .await?;
        match outcome {
            RefreshOutcome::Rotated => {
                let role = self.sessions.role(user_id, session_id).await?.ok_or(IdentityError::InvalidToken)?;
                self.token_pair(user_id, session_id, &role, &new_secret)
            }
            RefreshOutcome::ReuseDetected => {
                tracing::warn!(user_id = %user_id, session_id = %session_id, "refresh token reused; session revoked");
                Err(IdentityError::InvalidToken)
            }
            RefreshOutcome::Unknown => Err(IdentityError::InvalidToken),
        }
    }

    /// Verifies an access token and that its session still exists (sliding
    /// the session's expiry); the inner `Err` says why it is not accepted.
    pub async fn authenticate(
        &self,
        access_token: &str,
    ) -> Result<Result<AuthenticatedUser, Rejection>, IdentityError> {
        let claims = match self.tokens.verify(access_token) {
            Ok(claims) => claims,
            Err(rejection) => return Ok(Err(rejection)),
        };
        let role = self.sessions.touch(claims.sub, claims.sid).await?;
        Ok(role
            .map(|role| AuthenticatedUser {
                user_id: claims.sub,
                session_id: claims.sid,
                role: Role::from_stored(&role),
            })
            .ok_or(Rejection::Invalid))
    }

    pub async fn logout(&self, user: &AuthenticatedUser) -> Result<(), IdentityError> {
        self.sessions.revoke(user.user_id, &[user.session_id]).await?;
        Ok(())
    }

    pub async fn sessions(&self, user: &AuthenticatedUser) -> Result<Vec<SessionInfo>, IdentityError> {
        Ok(self.sessions.list(user.user_id).await?)
    }

    /// Revokes one of the caller's own sessions; another user's id is
    /// `NotFound`, like an id that never existed.
    pub async fn revoke_session(&self, user: &AuthenticatedUser, session_id: Uuid) -> Result<(), IdentityError> {
        match self.sessions.revoke(user.user_id, &[session_id]).await? {
            0 => Err(IdentityError::NotFound),
            _ => Ok(()),
        }
    }

    pub async fn user(&self, user_id: Uuid) -> Result<User, IdentityError> {
        store::find_by_id(&self.db, user_id).await?.map(User::from).ok_or(IdentityError::NotFound)
    }

    /// Sends a login code when the address has an account. Always succeeds
    /// for well-formed addresses (no enumeration); requests per address are
    /// limited whether or not it has an account.
    pub async fn request_otp(&self, email: &str) -> Result<(), IdentityError> {
        let email = Email::parse(email).map_err(|e| IdentityError::Validation(vec![e]))?;
        let normalized = email.normalized();
        let limit = self.settings.otp_requests_per_window;
        let subject = format!("email:{}", self.hasher.hash_hex("otp-subject", &normalized));
        if let Some(retry_after) = self.otp_requests.hit(&subject, limit, self.settings.otp_request_window).await? {
            return Err(IdentityError::TooManyAttempts { retry_after });
        }
        let Some(user) = store::find_by_email(&self.db, email.as_str()).await? else {
            return Ok(());
        };
        let code = self.otp.issue(&normalized).await?;
        let minutes = self.otp.ttl().as_secs().div_ceil(60);
        self.deliver(Mail::otp_code(&user.email, &code, minutes));
        Ok(())
    }

    pub async fn verify_otp(&self, email: &str, code: &str, meta: &ClientMeta) -> Result<TokenPair, IdentityError> {
        let email = Email::parse(email).map_err(|e| IdentityError::Validation(vec![e]))?;
        let well_formed = code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit());
        if !well_formed {
            return Err(IdentityError::Validation(vec![FieldError::new("code", "must be 6 digits")]));
        }
        if !self.otp.verify(&email.normalized(), code).await? {
            return Err(IdentityError::InvalidCode);
        }
        let user = store::find_by_email(&self.db, email.as_str()).await?.ok_or(IdentityError::InvalidCode)?;
        self.start_session(&user, meta).await
    }

    /// Sends a single-use reset token when the address has an account;
    /// always succeeds for well-formed addresses.
    pub async fn forgot_password(&self, email: &str) -> Result<(), IdentityError> {
        let email = Email::parse(email).map_err(|e| IdentityError::Validation(vec![e]))?;
        let subject = format!("reset:{}", self.hasher.hash_hex("otp-subject", &email.normalized()));
        let limit = self.settings.otp_requests_per_window;
        if let Some(retry_after) = self.otp_requests.hit(&subject, limit, self.settings.otp_request_window).await? {
            return Err(IdentityError::TooManyAttempts { retry_after });
        }
        let Some(user) = store::find_by_email(&self.db, email.as_str()).await? else {
            return Ok(());
        };
        let token = secrets::random_secret();
        let valid_for = self.settings.password_reset_ttl;
        store::insert_reset(&self.db, &self.hasher.hash("reset", &token), user.id, valid_for).await?;
        self.deliver(Mail::password_reset(&user.email, &token, valid_for.as_secs().div_ceil(60)));
        Ok(())
    }

    /// Sets a new password with a reset token (once) and revokes every
    /// session of the user.
    pub async fn reset_password(&self, token: &str, new_password: &str) -> Result<(), IdentityError> {
        let password = Password::parse("new_password", new_password).map_err(|e| IdentityError::Validation(vec![e]))?;
        let hash = self.passwords.hash(password.expose().to_owned()).await?;
        let mut tx = self.db.begin().await?;
        let user_id = store::consume_reset(&mut *tx, &self.hasher.hash("reset", token))
            .await?
            .ok_or(IdentityError::InvalidToken)?;
        store::set_password(&mut *tx, user_id, &hash).await?;
        tx.commit().await?;
        let revoked = self.sessions.revoke_all(user_id).await?;
        tracing::info!(user_id = %user_id, revoked, "password reset; sessions revoked");
        Ok(())
    }

    /// Mail is queued beside the request: its duration must not tell
    /// whether the address has an account, and an outage must not fail it.
    fn deliver(&self, message: Mail) {
        let outbox = self.outbox.clone();
        tokio::spawn(async move {
            if let Err(error) = outbox.enqueue(&message).await {
                tracing::error!(error = format!("{error:#}"), subject = %message.subject, "enqueueing mail failed");
            }
        });
    }
}
