//! Where capabilities meet: each port a capability declares (what it needs
//! from outside itself) is implemented here over another capability's
//! service, so no capability imports another.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{json, Value};
use sqlx::PgPool;
use switchyard_kit::{Keyspace, RedisConnection};

use uuid::Uuid;

use crate::analytics::reports::PREWARM_REPORTS;
use crate::analytics::ClientOwners;
use crate::analytics::Reports;
use crate::chat::{Membership, RoomFeed};
use crate::clients::keys::KEY_PREFIX;
use crate::clients::service::ClientsError;
use crate::clients::Clients;
use crate::config::{AnalyticsSettings, CronSetting, MailTransportSetting, Settings};
use crate::domain::{Principal, Rejection};
use crate::http::auth::{Authenticator, Credential};
use crate::http::ApiError;
use crate::identity::{AccountKeys, Identity, MailOutbox};
use crate::jobs::handlers::notify::{Notification, NotificationSink};
use crate::jobs::handlers::{Handlers, JobContext, JobFailure, REPORT_PREWARM, USAGE_ROLLUP};
use crate::jobs::service::{BackoffKind, BackoffSpec, JobSpec};
use crate::jobs::Jobs;
use crate::mail::{Email, MailSettings, MailTransport};
use crate::notifications::service::NotificationsError;
use crate::notifications::Notifications;
use crate::ops::Signals;
use crate::ratelimit::RateLimits;
use crate::realtime::{Channel, Realtime};

/// The queue login codes and reset links are delivered from.
pub const MAIL_QUEUE: &str = "mail";

/// Start-up converts mail configuration, so `mail` never imports `config`.
pub(super) fn mail_settings(settings: &Settings) -> MailSettings {
    MailSettings {
        transport: match settings.mail.transport {
            MailTransportSetting::Outbox => MailTransport::Outbox,
            MailTransportSetting::Smtp => MailTransport::Smtp,
        },
        smtp_url: settings.mail.smtp_url.clone(),
        from: settings.mail.from.clone(),
    }
}

/// Access tokens are identity's, API keys the clients capability's; a key
/// sent as a bearer token is told apart by its prefix.
#[derive(Debug)]
pub(super) struct Gatekeeper {
    pub identity: Arc<Identity>,
    pub clients: Arc<Clients>,
}

impl Authenticator for Gatekeeper {
    async fn authenticate(&self, credential: Credential<'_>) -> Result<Result<Principal, Rejection>, ApiError> {
        Ok(match credential {
            Credential::ApiKey(key) => {
                self.clients.authenticate(key).await?.map(Principal::Client).ok_or(Rejection::Invalid)
            }
            Credential::Bearer(key) if key.starts_with(KEY_PREFIX) => {
                self.clients.authenticate(key).await?.map(Principal::Client).ok_or(Rejection::Invalid)
            }
            Credential::Bearer(token) => self.identity.authenticate(token).await?.map(Principal::User),
        })
    }
}

/// A deleted user's API keys are revoked, and a user's cached keys
/// forgotten, by the clients capability.
#[derive(Debug)]
pub(super) struct ClientKeys(pub Arc<Clients>);

impl AccountKeys for ClientKeys {
    fn revoke_all<'a>(
        &'a self,
        conn: &'a mut sqlx::PgConnection,
        owner_id: uuid::Uuid,
    ) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>> {
        Box::pin(async move {
            Clients::revoke_owner_keys(conn, owner_id).await?;
            Ok(())
        })
    }

    fn forget<'a>(&'a self, owner_id: uuid::Uuid) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>> {
        Box::pin(async move { Ok(self.0.forget_owner(owner_id).await?) })
    }
}

/// Identity's mail goes through the job queue as `mail` jobs (retried on
/// failure, deleted once delivered: they carry codes).
#[derive(Debug)]
pub(super) struct JobsMailOutbox(pub Arc<Jobs>);

impl MailOutbox for JobsMailOutbox {
    fn enqueue<'a>(&'a self, message: &'a Email) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>> {
        Box::pin(async move {
            let spec = JobSpec {
                queue: Some(MAIL_QUEUE.into()),
                kind: "mail".into(),
                payload: crate::jobs::handlers::mail::payload_of(message),
                max_attempts: Some(10),
                backoff: Some(BackoffSpec { kind: BackoffKind::Exponential, base_ms: 2_000, max_ms: 300_000 }),
                ..JobSpec::default()
            };
            self.0.enqueue_system(&spec).await?;
            Ok(())
        })
    }
}

/// The `notify` job stores and publishes through the notifications service.
impl NotificationSink for Notifications {
    fn deliver<'a>(
        &'a self,
        n: Notification<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Value, JobFailure>> + Send + 'a>> {
        Box::pin(async move {
            match Notifications::deliver(self, n.once_key, n.user_id, n.title, n.body, n.data).await {
                Ok(delivered) => Ok(json!({"notification_id": delivered.id, "receivers": delivered.receivers})),
                Err(NotificationsError::NoSuchUser) => Err(JobFailure::fatal("no such user")),
                Err(NotificationsError::Redis(e)) => Err(JobFailure::retry(format!("publishing failed: {e}"))),
                Err(e) => Err(JobFailure::retry(format!("storing the notification failed: {e}"))),
            }
        })
    }
}

/// What the operations endpoints read from the rest of the application.
#[derive(Debug)]
pub(super) struct OpsSignals {
    pub db: PgPool,
    pub max_connections: u32,
    pub redis: RedisConnection,
    pub keys: Keyspace,
    pub jobs: Arc<Jobs>,
    pub rate_limits: Arc<RateLimits>,
}

impl Signals for OpsSignals {
    fn rate_limiting_degraded(&self) -> bool {
        self.rate_limits.degraded()
    }

    fn refresh_gauges(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            crate::telemetry::metrics::record_pool_gauges(&self.db, self.max_connections);
            crate::telemetry::metrics::record_cache_stats(&self.redis, &self.keys).await;
            self.jobs.record_queue_gauges().await;
        })
    }
}

/// The queue the built-in analytics jobs run on.
pub const ANALYTICS_QUEUE: &str = "analytics";

/// Adds the analytics jobs' handlers: the usage roll-up and the report
/// warm-up, over `reports`.
pub(super) fn with_analytics_jobs(handlers: Handlers, reports: Arc<Reports>) -> Handlers {
    let rolling = reports.clone();
    handlers
        .with(USAGE_ROLLUP, move |_job: JobContext| {
            let reports = rolling.clone();
            async move {
                let today = chrono::Utc::now().date_naive();
                match reports.rollup().catch_up(today).await {
                    Ok(days) => Ok(json!({ "rolled": days })),
                    Err(error) => Err(JobFailure::retry(format!("rolling up usage failed: {error}"))),
                }
            }
        })
        .with(REPORT_PREWARM, move |_job: JobContext| {
            let reports = reports.clone();
            async move {
                match reports.prewarm(PREWARM_REPORTS).await {
                    Ok(warmed) => Ok(json!({ "warmed": warmed })),
                    Err(error) => Err(JobFailure::retry(format!("warming reports failed: {error}"))),
                }
            }
        })
}

/// The built-in analytics cron entries: the roll-up hourly (a missed run
/// is caught up: each run rolls every finished day not rolled yet), and
/// the report warm-up every 5 minutes when `CACHE_PREWARM_CRON_ENABLED`.
pub(super) fn analytics_cron(settings: &AnalyticsSettings) -> Vec<CronSetting> {
    let entry = |name: &str, schedule: &str, kind: &str| CronSetting {
        name: name.into(),
        schedule: schedule.into(),
        queue: ANALYTICS_QUEUE.into(),
        kind: kind.into(),
        payload: Value::Null,
        catch_up_secs: 3600,
    };
    let mut entries = vec![entry("usage-rollup", "0 5 * * * *", USAGE_ROLLUP)];
    if settings.cache_prewarm_cron {
        entries.push(entry("report-prewarm", "0 */5 * * * *", REPORT_PREWARM));
    }
    entries
}

/// Activity asks the clients capability who owns an API client.
#[derive(Debug)]
pub(super) struct ClientDirectory(pub Arc<Clients>);

impl ClientOwners for ClientDirectory {
    fn owns(&self, account: uuid::Uuid, client_id: uuid::Uuid) -> futures::future::BoxFuture<'_, anyhow::Result<bool>> {
        Box::pin(async move {
            match self.0.get(account, client_id).await {
                Ok(_) => Ok(true),
                Err(ClientsError::NotFound) => Ok(false),
                Err(error) => Err(error.into()),
            }
        })
    }
}

/// The real-time gateway's view of the other capabilities: the channels
/// they publish on, who owns a client, who is in a room.
#[derive(Debug)]
pub(super) struct GatewayDirectory {
    pub keys: Keyspace,
    /// The action log's all-actions channel.
    pub actions: String,
    pub clients: Arc<Clients>,
    /// Who is in which room (chat).
    pub rooms: Membership,
}

impl crate::realtime::Directory for GatewayDirectory {
    fn actions_channel(&self) -> String {
        self.actions.clone()
    }

    fn activity_channel(&self) -> String {
        crate::analytics::live::channel(&self.keys)
    }

    fn notifications_channel(&self, user_id: uuid::Uuid) -> String {
        crate::notifications::service::channel(&self.keys, user_id)
    }

    fn owns_client(
        &self,
        account: uuid::Uuid,
        client_id: uuid::Uuid,
    ) -> futures::future::BoxFuture<'_, anyhow::Result<bool>> {
        ClientDirectory(self.clients.clone()).owns_boxed(account, client_id)
    }

    fn is_member(&self, room_id: Uuid, user_id: Uuid) -> BoxFuture<'_, anyhow::Result<bool>> {
        Box::pin(async move { Ok(self.rooms.is_member(room_id, user_id).await?) })
    }

    fn rooms_of(&self, user_id: Uuid) -> BoxFuture<'_, anyhow::Result<Vec<Uuid>>> {
        Box::pin(async move { Ok(self.rooms.rooms_of(user_id).await?) })
    }

    fn sharing_a_room(&self, user_id: Uuid, others: Vec<Uuid>) -> BoxFuture<'_, anyhow::Result<Vec<Uuid>>> {
        Box::pin(async move { Ok(self.rooms.sharing_a_room(user_id, &others).await?) })
    }
}

/// Chat publishes on `room:{id}` through the gateway (with history), asks
/// it who is online, and notifies offline members through the inbox; the
/// notification is also kept in `user:{id}`'s history, so the member's
/// next subscription with `since` receives it.
#[derive(Debug)]
pub(super) struct ChatFeed {
    pub realtime: Arc<Realtime>,
    pub notifications: Arc<Notifications>,
}

impl RoomFeed for ChatFeed {
    fn publish(&self, room: Uuid, event: &'static str, data: Value) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            // `account` only scopes `app:*` channels; a room is nobody's.
            self.realtime.publish_unchecked(Uuid::nil(), &Channel::Room(room), event, &data).await?;
            Ok(())
        })
    }

    fn online(&self, users: Vec<Uuid>) -> BoxFuture<'_, anyhow::Result<Vec<bool>>> {
        Box::pin(async move { Ok(self.realtime.presence().status(&users).await?.iter().map(|s| s.online).collect()) })
    }

    fn notify(
        &self,
        user: Uuid,
        once_key: String,
        title: String,
        body: String,
        data: Value,
    ) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            let delivered = self.notifications.deliver(&once_key, user, &title, &body, &data).await?;
            let notification = json!({"id": delivered.id, "title": title, "body": body, "data": data});
            self.realtime.publish_unchecked(Uuid::nil(), &Channel::User(user), "notification", &notification).await?;
            Ok(())
        })
    }
}

impl ClientDirectory {
    fn owns_boxed(
        self,
        account: uuid::Uuid,
        client_id: uuid::Uuid,
    ) -> futures::future::BoxFuture<'static, anyhow::Result<bool>> {
        Box::pin(async move { self.owns(account, client_id).await })
    }
}

/// Events keeps the persistent-stream marks in the event log, which the
/// worker's `event-log` group reads.
#[derive(Debug)]
pub(super) struct EventLogMarks(pub Arc<crate::eventlog::EventLog>);

impl crate::events::service::PersistentStreams for EventLogMarks {
    fn set(&self, account: uuid::Uuid, stream: &str, persist: bool) -> BoxFuture<'_, anyhow::Result<()>> {
        let stream = stream.to_owned();
        Box::pin(async move { Ok(self.0.set_persistent(account, &stream, persist).await?) })
    }

    fn is_persistent(&self, account: uuid::Uuid, stream: &str) -> BoxFuture<'_, anyhow::Result<bool>> {
        let stream = stream.to_owned();
        Box::pin(async move { Ok(self.0.is_persistent(account, &stream).await?) })
    }
}

/// The event log's alerts are notifications to the account's user, stored
/// once per alert key.
#[derive(Debug)]
pub(super) struct NotificationAlerts(pub Arc<Notifications>);

impl crate::eventlog::service::Alerts for NotificationAlerts {
    fn alert<'a>(
        &'a self,
        account: uuid::Uuid,
        once_key: &'a str,
        title: &'a str,
        body: &'a str,
        data: &'a Value,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            match self.0.deliver(once_key, account, title, body, data).await {
                Ok(_) | Err(NotificationsError::NoSuchUser) => Ok(()),
                Err(error) => Err(error.into()),
            }
        })
    }
}
