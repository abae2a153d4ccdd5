//! Prometheus metrics: the process-wide recorder, the HTTP request metrics
//! middleware, and pool gauges refreshed at scrape time.
//!
//! Route labels are axum's route templates (`/v1/users/{id}`), never raw
//! paths, so label cardinality stays bounded; unmatched requests share one
//! `unmatched` label.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{OnceLock, PoisonError, RwLock};
use std::task::{ready, Context, Poll};
use std::time::Instant;

use axum::extract::MatchedPath;
use axum::http::{Method, Request, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use sqlx::PgPool;
use switchyard_kit::{Keyspace, RedisConnection};

const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The process-wide Prometheus recorder, installed on first use.
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .expect("static bucket list is non-empty");
            let handle = match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is already global (an embedding program):
                // keep a private one so /metrics still renders ours.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            };
            spawn_upkeep(handle.clone());
            handle
        })
        .clone()
}

/// Histogram samples pile up in the recorder until something drains them;
/// without this, a process nobody scrapes grows by every request it serves
/// (about 40 bytes each, measured). A plain thread, not a task: the
/// recorder is process-wide and outlives any one runtime.
fn spawn_upkeep(handle: PrometheusHandle) {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(5);
    let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || loop {
        std::thread::sleep(EVERY);
        handle.run_upkeep();
    });
    if let Err(error) = spawned {
        tracing::warn!(%error, "could not start the metrics upkeep thread; histograms are drained only by scrapes");
    }
}

/// Layer recording `http_requests_total` and
/// `http_request_duration_seconds` by method, route template and status.
///
/// A tower layer rather than `axum::middleware::from_fn`: that one clones
/// the rest of the stack into a boxed service and boxes a future on every
/// request, which is measurable at the rate-limit check's request rates.
#[derive(Clone, Copy, Debug, Default)]
pub struct HttpMetricsLayer;

impl<S> Layer<S> for HttpMetricsLayer {
    type Service = HttpMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpMetrics { inner }
    }
}

/// See [`HttpMetricsLayer`].
#[derive(Clone, Debug)]
pub struct HttpMetrics<S> {
    inner: S,
}

impl<S, B, ResBody> Service<Request<B>> for HttpMetrics<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = HttpMetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let method = request.method().clone();
        let route = request.extensions().get::<MatchedPath>().cloned();
        HttpMetricsFuture { inner: self.inner.call(request), started: Instant::now(), method, route }
    }
}

pin_project! {
    /// The response future of [`HttpMetrics`]: records once the response is ready.
    pub struct HttpMetricsFuture<F> {
        #[pin]
        inner: F,
        started: Instant,
        method: Method,
        route: Option<MatchedPath>,
    }
}

impl<F, ResBody, E> Future for HttpMetricsFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        // An error here never reaches a client as a status (the stack's
        // error type is `Infallible`); only responses are counted.
        if let Ok(response) = &result {
            let route = this.route.as_ref().map_or("unmatched", MatchedPath::as_str);
            let (requests, duration) = http_series(this.method, route, response.status().as_u16());
            requests.increment(1);
            duration.record(this.started.elapsed().as_secs_f64());
        }
        Poll::Ready(result)
    }
}

/// Per route template: (method, status, counter, histogram).
type Series = HashMap<String, Vec<(Method, u16, metrics::Counter, metrics::Histogram)>>;

/// The counter and histogram of one (method, route, status), registered
/// once: building label sets per request cost allocations on the hot path.
fn http_series(method: &Method, route: &str, status: u16) -> (metrics::Counter, metrics::Histogram) {
    static SERIES: OnceLock<RwLock<Series>> = OnceLock::new();
    let series = SERIES.get_or_init(RwLock::default);
    let find = |all: &Series| {
        all.get(route)?.iter().find(|(m, s, ..)| m == method && *s == status).map(|(_, _, c, h)| (c.clone(), h.clone()))
    };
    if let Some(found) = find(&series.read().unwrap_or_else(PoisonError::into_inner)) {
        return found;
    }
    let mut all = series.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(found) = find(&all) {
        return found;
    }
    let labels = [("method", method.as_str().to_owned()), ("route", route.to_owned()), ("status", status.to_string())];
    let counter = metrics::counter!("http_requests_total", &labels);
    let histogram = metrics::histogram!("http_request_duration_seconds", &labels);
    all.entry(route.to_owned()).or_default().push((method.clone(), status, counter.clone(), histogram.clone()));
    (counter, histogram)
}

/// Sets the connection-pool gauges from the pools' current state; called
/// just before rendering so a scrape sees fresh values.
pub fn record_pool_gauges(db: &PgPool, max_connections: u32) {
    let size = db.size();
    let idle = db.num_idle() as u32;
    metrics::gauge!("db_pool_connections", "state" => "idle").set(f64::from(idle));
    metrics::gauge!("db_pool_connections", "state" => "in_use").set(f64::from(size.saturating_sub(idle)));
    metrics::gauge!("db_pool_max_connections").set(f64::from(max_connections));
}

/// Cache families whose hit/miss counts (kept in Redis, across instances)
/// are exported.
pub const CACHE_FAMILIES: &[&str] = &["last-action", "reports"];

/// Sets `cache_hits_total` / `cache_misses_total` from the counts in Redis;
/// called at scrape time. A Redis error leaves the previous values.
pub async fn record_cache_stats(redis: &RedisConnection, keys: &Keyspace) {
    for family in CACHE_FAMILIES {
        let cache = switchyard_kit::Cache::new(redis.clone(), keys.clone(), family);
        if let Ok((hits, misses)) = cache.stats().await {
            metrics::counter!("cache_hits_total", "family" => *family).absolute(hits);
            metrics::counter!("cache_misses_total", "family" => *family).absolute(misses);
        }
    }
}
