//! `/v1/events`, `/v1/events:batch` and `/v1/events/{stream}/...`.

use std::time::Duration;

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use switchyard_kit::{DeadEvent, Delivery, Event, GroupStats, NewEvent, StreamStats};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::service::{Events, EventsError, Owner, ReadSpec, ReclaimSpec};
use crate::domain::Principal;
use crate::http::{ApiError, ApiJson, ApiPath, ApiQuery, Problem};

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Events>: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(publish))
        .routes(routes!(publish_batch))
        .routes(routes!(replay, set_persist))
        .routes(routes!(stats))
        .routes(routes!(dead))
        .routes(routes!(create_group, delete_group))
        .routes(routes!(read))
        .routes(routes!(ack))
        .routes(routes!(reclaim))
}

impl From<EventsError> for ApiError {
    fn from(error: EventsError) -> Self {
        match error {
            EventsError::Validation(errors) => errors.into(),
            EventsError::NoSuchGroup => ApiError::NotFound("no such group on this stream".into()),
            EventsError::NoSuchStream => ApiError::NotFound("no such stream".into()),
            EventsError::QuotaExceeded { limit } => ApiError::Conflict(format!(
                "this account has {limit} streams, the most EVENTS_MAX_STREAMS_PER_ACCOUNT allows; use an existing stream"
            )),
            EventsError::Redis(e) => e.into(),
            EventsError::Store(e) => ApiError::Internal(e),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventRequest {
    /// What happened, e.g. `user.created` (1-128 characters).
    #[serde(rename = "type")]
    #[schema(pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,128}$")]
    pub kind: String,
    /// Any JSON, at most 64 KiB.
    #[serde(default)]
    pub data: serde_json::Value,
}

impl From<EventRequest> for NewEvent {
    fn from(e: EventRequest) -> Self {
        NewEvent { kind: e.kind, data: e.data.to_string(), key: None }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"stream": "orders", "type": "order.created", "data": {"order_id": 1042, "total_cents": 1999}}))]
pub struct PublishRequest {
    /// The stream, in the caller's account: 1-64 of [a-z0-9_.-].
    #[schema(pattern = r"^[a-z0-9_.-]{1,64}$")]
    pub stream: String,
    /// What happened, e.g. `user.created` (1-128 characters).
    #[serde(rename = "type")]
    #[schema(pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,128}$")]
    pub kind: String,
    /// Any JSON, at most 64 KiB.
    #[serde(default)]
    pub data: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Published {
    /// `<ms>-<seq>`: ordered within the stream; the ms part is the append time.
    pub id: String,
}

/// Append an event to a stream.
#[utoipa::path(post, path = "/v1/events", tag = "events", request_body = PublishRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = Published), (status = 409, description = "A new stream past the account's quota (EVENTS_MAX_STREAMS_PER_ACCOUNT)", body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn publish(
    State(events): State<Arc<Events>>,
    principal: Principal,
    ApiJson(body): ApiJson<PublishRequest>,
) -> Result<(StatusCode, ApiJson<Published>), ApiError> {
    let event = EventRequest { kind: body.kind, data: body.data };
    let id = events.publish(Owner::from(&principal), &body.stream, event.into()).await?;
    Ok((StatusCode::CREATED, ApiJson(Published { id })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"stream": "orders", "events": [{"type": "order.created", "data": {"order_id": 1042}}, {"type": "order.paid", "data": {"order_id": 1042}}]}))]
pub struct PublishBatchRequest {
    #[schema(pattern = r"^[a-z0-9_.-]{1,64}$")]
    pub stream: String,
    /// 1-100 events, appended in order in one round trip; a bad one appends none.
    #[schema(min_items = 1, max_items = 100)]
    pub events: Vec<EventRequest>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PublishedBatch {
    /// In the order given.
    pub ids: Vec<String>,
}

/// Append up to 100 events to a stream at once.
#[utoipa::path(post, path = "/v1/events:batch", tag = "events", request_body = PublishBatchRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = PublishedBatch), (status = 409, description = "A new stream past the account's quota (EVENTS_MAX_STREAMS_PER_ACCOUNT)", body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn publish_batch(
    State(events): State<Arc<Events>>,
    principal: Principal,
    ApiJson(body): ApiJson<PublishBatchRequest>,
) -> Result<(StatusCode, ApiJson<PublishedBatch>), ApiError> {
    let batch: Vec<NewEvent> = body.events.into_iter().map(Into::into).collect();
    let ids = events.publish_batch(Owner::from(&principal), &body.stream, &batch).await?;
    Ok((StatusCode::CREATED, ApiJson(PublishedBatch { ids })))
}

/// An event as readers see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventBody {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The JSON published (a string if it was stored by another writer as
    /// something that is not JSON).
    pub data: serde_json::Value,
    /// When it was appended (RFC 3339, millisecond precision).
    pub timestamp: Option<chrono::DateTime<chrono::Utc>>,
    /// The producer's idempotency key, when it gave one: events the server
    /// relays from its outbox carry their outbox row id (a decimal number),
    /// so a consumer can drop a repeat.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl From<Event> for EventBody {
    fn from(e: Event) -> Self {
        let timestamp =
            e.timestamp_ms().and_then(|ms| i64::try_from(ms).ok()).and_then(chrono::DateTime::from_timestamp_millis);
        let data = serde_json::from_str(&e.data).unwrap_or(serde_json::Value::String(e.data));
        Self { id: e.id, kind: e.kind, data, timestamp, key: e.key }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The previous page's `next_cursor`: only events after this id
    /// (exclusive); none: from the oldest kept. (`after` is accepted as an
    /// older name.)
    #[serde(alias = "after")]
    #[param(pattern = r"^[0-9]{1,19}-[0-9]{1,19}$")]
    pub cursor: Option<String>,
    /// 1-1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// Oldest first.
    pub events: Vec<EventBody>,
    /// Pass as `cursor` for the next page (the last id here; null when empty).
    pub next_cursor: Option<String>,
}

/// Replay a stream from any point.
#[utoipa::path(get, path = "/v1/events/{stream}", tag = "events",
    security(("bearer" = []), ("api_key" = [])), params(("stream" = String, Path, pattern = r"^(sys:)?[a-z0-9_.-]{1,64}$", description = "A stream of the caller's account: 1-64 of [a-z0-9_.-]; operators may also name the operator streams, sys:<name> (to anyone else they do not exist: 404)"), PageQuery),
    responses((status = 200, body = EventPage), (status = 404, description = "An operator stream named by someone else", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn replay(
    State(events): State<Arc<Events>>,
    principal: Principal,
    ApiPath(stream): ApiPath<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<ApiJson<EventPage>, ApiError> {
    let events = events.replay(Owner::from(&principal), &stream, query.cursor.as_deref(), query.limit).await?;
    let next_cursor = events.last().map(|e| e.id.clone());
    Ok(ApiJson(EventPage { events: events.into_iter().map(Into::into).collect(), next_cursor }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupBody {
    pub name: String,
    pub consumers: u64,
    /// Delivered and not yet acknowledged.
    pub pending: u64,
    pub last_delivered_id: String,
    /// Events not yet delivered to the group (null when Redis cannot tell).
    pub lag: Option<u64>,
}

impl From<GroupStats> for GroupBody {
    fn from(g: GroupStats) -> Self {
        Self {
            name: g.name,
            consumers: g.consumers,
            pending: g.pending,
            last_delivered_id: g.last_delivered_id,
            lag: g.lag,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatsBody {
    /// Events kept (streams are capped at about 100,000).
    pub length: u64,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
    pub dead_letters: u64,
    pub groups: Vec<GroupBody>,
    /// Whether the worker stores the stream's events in the event log
    /// (`PUT /v1/events/{stream}`; always, for the operator streams).
    pub persistent: bool,
}

impl StatsBody {
    fn new(s: StreamStats, persistent: bool) -> Self {
        Self {
            length: s.length,
            first_id: s.first_id,
            last_id: s.last_id,
            dead_letters: s.dead_letters,
            groups: s.groups.into_iter().map(Into::into).collect(),
            persistent,
        }
    }
}

/// A stream's length, ends, dead letters and every group's progress.
#[utoipa::path(get, path = "/v1/events/{stream}/stats", tag = "events",
    security(("bearer" = []), ("api_key" = [])), params(("stream" = String, Path, pattern = r"^(sys:)?[a-z0-9_.-]{1,64}$", description = "A stream of the caller's account: 1-64 of [a-z0-9_.-]; operators may also name the operator streams, sys:<name> (to anyone else they do not exist: 404)")),
    responses((status = 200, body = StatsBody), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn stats(
    State(events): State<Arc<Events>>,
    principal: Principal,
    ApiPath(stream): ApiPath<String>,
) -> Result<ApiJson<StatsBody>, ApiError> {
    let owner = Owner::from(&principal);
    let stats = events.stats(owner, &stream).await?;
    Ok(ApiJson(StatsBody::new(stats, events.is_persistent(owner, &stream).await?)))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"persist": true}))]
pub struct PersistRequest {
    /// True: the worker stores every event of the stream in the event log
    /// (`GET /v1/events:processed`); false: it stops.
    pub persist: bool,
}

/// Mark one of the account's streams persistent (its events are stored in
/// the event log by the worker) or not. Marking creates the stream, within
/// the account's quota (`EVENTS_MAX_STREAMS_PER_ACCOUNT`, 409 past it).
#[utoipa::path(put, path = "/v1/events/{stream}", tag = "events", request_body = PersistRequest,
    security(("bearer" = []), ("api_key" = [])), params(("stream" = String, Path, pattern = r"^[a-z0-9_.-]{1,64}$", description = "A stream of the caller's account: 1-64 of [a-z0-9_.-]")),
    responses((status = 200, body = PersistRequest, description = "The stream's setting now"),
        (status = 409, description = "A new stream past the account's quota", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn set_persist(
    State(events): State<Arc<Events>>,
    principal: Principal,
    ApiPath(stream): ApiPath<String>,
    ApiJson(body): ApiJson<PersistRequest>,
) -> Result<ApiJson<PersistRequest>, ApiError> {
    events.set_persist(Owner::from(&principal), &stream, body.persist).await?;
    Ok(ApiJson(body))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadBody {
    /// The dead-letter entry's own id (for paging with `after`).
    pub id: String,
    /// The event as it was published, with its original id.
    pub event: EventBody,
    /// The group that gave up on it.
    pub group: String,
    pub deliveries: u64,
}

impl From<DeadEvent> for DeadBody {
    fn from(d: DeadEvent) -> Self {
        Self { id: d.id, event: d.event.into(), group: d.group, deliveries: d.deliveries }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadPage {
    pub events: Vec<DeadBody>,
    /// Pass as `cursor` for the next page (the last id here; null when empty).
    pub next_cursor: Option<String>,
}

/// Events a group gave up on after too many deliveries.
#[utoipa::path(get, path = "/v1/events/{stream}/dead", tag = "events",
    security(("bearer" = []), ("api_key" = [])), params(("stream" = String, Path, pattern = r"^(sys:)?[a-z0-9_.-]{1,64}$", description = "A stream of the caller's account: 1-64 of [a-z0-9_.-]; operators may also name the operator streams, sys:<name> (to anyone else they do not exist: 404)"), PageQuery),
    responses((status = 200, body = DeadPage), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn dead(
    State(events): State<Arc<Events>>,
    principal: Principal,
    ApiPath(stream): ApiPath<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<ApiJson<DeadPage>, ApiError> {
    let dead = events.dead(Owner::from(&principal), &stream, query.cursor.as_deref(), query.limit).await?;
    let next_cursor = dead.last().map(|d| d.id.clone());
    Ok(ApiJson(DeadPage { events: dead.into_iter().map(Into::into).collect(), next_cursor }))
}

#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"start": "beginning"}))]
pub struct CreateGroupRequest {
    /// `end` (default: only events appended from now on) or `beginning`
    /// (every event still kept).
    #[schema(value_type = Option<GroupStart>)]
    pub start: Option<String>,
}

/// Where a new group starts reading (documentation of `start`; the service
/// checks the value).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum GroupStart {
    Beginning,
    End,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupCreated {
    /// False when the group existed (it keeps its position).
    pub created: bool,
}

/// Create a consumer group (idempotent). The body is optional: without one
/// the group starts at the stream's end.
#[utoipa::path(put, path = "/v1/events/{stream}/groups/{group}", tag = "events", request_body(content = Option<CreateGroupRequest>, description = "Optional"),
    security(("bearer" = []), ("api_key" = [])), params(("stream" = String, Path, pattern = r"^(sys:)?[a-z0-9_.-]{1,64}$", description = "A stream of the caller's account: 1-64 of [a-z0-9_.-]; operators may also name the operator streams, sys:<name> (to anyone else they do not exist: 404)"), ("group" = String, Path, pattern = r"^[a-z0-9_.-]{1,64}$", description = "A consumer group of the stream: 1-64 of [a-z0-9_.-]")),
    responses((status = 201, body = GroupCreated), (status = 200, description = "The group existed", body = GroupCreated),
        (status = 409, description = "A new stream past the account's quota (EVENTS_MAX_STREAMS_PER_ACCOUNT)", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn create_group(
    State(events): State<Arc<Events>>,
    principal: Principal,
    ApiPath((stream, group)): ApiPath<(String, String)>,
    body: Option<ApiJson<CreateGroupRequest>>,
) -> Result<(StatusCode, ApiJson<GroupCreated>), ApiError> {
    let ApiJson(body) = body.unwrap_or_default();
    let created = events.create_group(Owner::from(&principal), &stream, &group, body.start.as_deref()).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, ApiJson(GroupCreated { created })))
}

/// Delete a consumer group and what it had pending (the events stay).
#[utoipa::path(delete, path = "/v1/events/{stream}/groups/{group}", tag = "events",
    security(("bearer" = []), ("api_key" = [])), params(("stream" = String, Path, pattern = r"^(sys:)?[a-z0-9_.-]{1,64}$", description = "A stream of the caller's account: 1-64 of [a-z0-9_.-]; operators may also name the operator streams, sys:<name> (to anyone else they do not exist: 404)"), ("group" = String, Path, pattern = r"^[a-z0-9_.-]{1,64}$", description = "A consumer group of the stream: 1-64 of [a-z0-9_.-]")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such group", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn delete_group(
    State(events): State<Arc<Events>>,
    principal: Principal,
    ApiPath((stream, group)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if events.delete_group(Owner::from(&principal), &stream, &group).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(EventsError::NoSuchGroup.into())
    }
}

/// An event handed to a consumer.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryBody {
    #[serde(flatten)]
    pub event: EventBody,
    /// How many times the group has delivered it, this time included.
    pub deliveries: u64,
}

impl From<Delivery> for DeliveryBody {
    fn from(d: Delivery) -> Self {
        Self { event: d.event.into(), deliveries: d.deliveries }
    }
}

fn deliveries(list: Vec<Delivery>) -> Vec<DeliveryBody> {
    list.into_iter().map(Into::into).collect()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"consumer": "worker-1", "count": 10, "wait_ms": 5000}))]
pub struct ReadRequest {
    /// Who reads (1-64 of [A-Za-z0-9_.-]); what it gets stays pending for
    /// it until acknowledged.
    #[schema(pattern = r"^[A-Za-z0-9_.-]{1,64}$")]
    pub consumer: String,
    /// 1-100, default 10.
    #[schema(minimum = 1, maximum = 100)]
    pub count: Option<u64>,
    /// When nothing is there yet, wait up to this long (at most 20000, and
    /// less than the request timeout) for events. When too many reads are
    /// waiting already, the read answers at once.
    #[schema(minimum = 0, maximum = 20000)]
    pub wait_ms: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Deliveries {
    pub events: Vec<DeliveryBody>,
}

/// Read events never delivered to the group.
#[utoipa::path(post, path = "/v1/events/{stream}/groups/{group}/read", tag = "events", request_body = ReadRequest,
    security(("bearer" = []), ("api_key" = [])), params(("stream" = String, Path, pattern = r"^(sys:)?[a-z0-9_.-]{1,64}$", description = "A stream of the caller's account: 1-64 of [a-z0-9_.-]; operators may also name the operator streams, sys:<name> (to anyone else they do not exist: 404)"), ("group" = String, Path, pattern = r"^[a-z0-9_.-]{1,64}$", description = "A consumer group of the stream: 1-64 of [a-z0-9_.-]")),
    responses((status = 200, body = Deliveries), (status = 404, description = "No such group", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn read(
    State(events): State<Arc<Events>>,
    principal: Principal,
    ApiPath((stream, group)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<ReadRequest>,
) -> Result<ApiJson<Deliveries>, ApiError> {
    let spec = ReadSpec { consumer: body.consumer, count: body.count, wait: body.wait_ms.map(Duration::from_millis) };
    let read = events.read(Owner::from(&principal), &stream, &group, &spec).await?;
    Ok(ApiJson(Deliveries { events: deliveries(read) }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"ids": ["1700000000000-0", "1700000000000-1"]}))]
pub struct AckRequest {
    /// 1-100 event ids (`<ms>-<seq>`).
    #[schema(schema_with = event_ids)]
    pub ids: Vec<String>,
}

/// The schema of `ids`: what the item pattern says cannot be written as an
/// attribute on a `Vec<String>`.
fn event_ids() -> utoipa::openapi::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(ObjectBuilder::new().schema_type(Type::String).pattern(Some(r"^[0-9]{1,19}-[0-9]{1,19}$")))
        .min_items(Some(1))
        .max_items(Some(100))
        .description(Some("1-100 event ids (`<ms>-<seq>`)."))
        .build()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Acknowledged {
    /// How many of the ids were pending (others were acknowledged before).
    pub acknowledged: u64,
}

/// Acknowledge events the group delivered.
#[utoipa::path(post, path = "/v1/events/{stream}/groups/{group}/ack", tag = "events", request_body = AckRequest,
    security(("bearer" = []), ("api_key" = [])), params(("stream" = String, Path, pattern = r"^(sys:)?[a-z0-9_.-]{1,64}$", description = "A stream of the caller's account: 1-64 of [a-z0-9_.-]; operators may also name the operator streams, sys:<name> (to anyone else they do not exist: 404)"), ("group" = String, Path, pattern = r"^[a-z0-9_.-]{1,64}$", description = "A consumer group of the stream: 1-64 of [a-z0-9_.-]")),
    responses((status = 200, body = Acknowledged), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn ack(
    State(events): State<Arc<Events>>,
    principal: Principal,
    ApiPath((stream, group)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<AckRequest>,
) -> Result<ApiJson<Acknowledged>, ApiError> {
    let acknowledged = events.ack(Owner::from(&principal), &stream, &group, &body.ids).await?;
    Ok(ApiJson(Acknowledged { acknowledged }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"consumer": "worker-2", "min_idle_ms": 60000, "count": 10, "max_deliveries": 5}))]
pub struct ReclaimRequest {
    /// Who takes the events over.
    #[schema(pattern = r"^[A-Za-z0-9_.-]{1,64}$")]
    pub consumer: String,
    /// Only events left unacknowledged at least this long (default 60000).
    #[schema(minimum = 0, maximum = 86400000)]
    pub min_idle_ms: Option<u64>,
    /// 1-100, default 10.
    #[schema(minimum = 1, maximum = 100)]
    pub count: Option<u64>,
    /// An event already delivered this often (1-100, default 5) goes to the
    /// dead-letter list instead.
    #[schema(minimum = 1, maximum = 100)]
    pub max_deliveries: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReclaimedBody {
    /// Now delivered to the consumer.
    pub events: Vec<DeliveryBody>,
    /// Ids moved to the dead-letter list.
    pub dead: Vec<String>,
}

/// Take over events another consumer left unacknowledged.
#[utoipa::path(post, path = "/v1/events/{stream}/groups/{group}/reclaim", tag = "events", request_body = ReclaimRequest,
    security(("bearer" = []), ("api_key" = [])), params(("stream" = String, Path, pattern = r"^(sys:)?[a-z0-9_.-]{1,64}$", description = "A stream of the caller's account: 1-64 of [a-z0-9_.-]; operators may also name the operator streams, sys:<name> (to anyone else they do not exist: 404)"), ("group" = String, Path, pattern = r"^[a-z0-9_.-]{1,64}$", description = "A consumer group of the stream: 1-64 of [a-z0-9_.-]")),
    responses((status = 200, body = ReclaimedBody), (status = 404, description = "No such group", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn reclaim(
    State(events): State<Arc<Events>>,
    principal: Principal,
    ApiPath((stream, group)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<ReclaimRequest>,
) -> Result<ApiJson<ReclaimedBody>, ApiError> {
    let spec = ReclaimSpec {
        consumer: body.consumer,
        min_idle: Duration::from_millis(body.min_idle_ms.unwrap_or(60_000)),
        count: body.count,
        max_deliveries: body.max_deliveries,
    };
    let reclaimed = events.reclaim(Owner::from(&principal), &stream, &group, &spec).await?;
    Ok(ApiJson(ReclaimedBody { events: deliveries(reclaimed.claimed), dead: reclaimed.dead }))
}
