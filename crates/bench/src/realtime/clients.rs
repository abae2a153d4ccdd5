//! The WebSocket clients of the real-time benchmark: subscribers, which
//! time every message they receive, and publishers, which send `publish`
//! frames at a paced rate.
//!
//! A published message's data is `{"t":<µs since the epoch at sending>,
//! "s":<step>}`: subscribers find both numbers in the frame text without
//! parsing the JSON, so the load generator spends little of the machine it
//! shares with the server.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _, Result};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt as _, StreamExt as _};
use hdrhistogram::Histogram;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A client's read buffer: frames here are small, and longer ones arrive
/// over several reads.
const READ_BUFFER: usize = 4 * 1024;
type Sink = SplitSink<Socket, Message>;

/// Microseconds since the Unix epoch (sender and receiver share the clock).
pub fn micros_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A latency histogram in microseconds, from 1 µs to 60 s, 2 significant
/// digits (small enough for one per connection).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 2).expect("1 µs to 60 s at 2 digits is a valid histogram")
}

/// What every client reports into.
#[derive(Debug)]
pub struct Shared {
    /// The measured window, in µs since the epoch: deliveries received in
    /// it are counted and timed.
    pub window_start: AtomicU64,
    pub window_end: AtomicU64,
    /// Deliveries received in the window.
    pub in_window: AtomicU64,
    /// Deliveries of the messages published in each step, whenever received.
    pub delivered: Vec<AtomicU64>,
    /// Deliveries each step's publishes should make (fan-out of each).
    pub expected: Vec<AtomicU64>,
    /// Publishes sent in each step.
    pub published: Vec<AtomicU64>,
    /// `subscribed` / `unsubscribed` answers.
    pub acks: AtomicUsize,
    /// `error` frames, and connections the server closed.
    pub errors: AtomicU64,
    pub closed: AtomicU64,
    /// The first error frame or close reason, for the report.
    pub first_problem: Mutex<Option<String>>,
}

impl Shared {
    pub fn new(steps: usize) -> Self {
        let zeros = || (0..steps).map(|_| AtomicU64::new(0)).collect();
        Self {
            window_start: AtomicU64::new(u64::MAX),
            window_end: AtomicU64::new(u64::MAX),
            in_window: AtomicU64::new(0),
            delivered: zeros(),
            expected: zeros(),
            published: zeros(),
            acks: AtomicUsize::new(0),
            errors: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            first_problem: Mutex::new(None),
        }
    }

    pub fn problem(&self, what: String) {
        if let Ok(mut first) = self.first_problem.lock() {
            first.get_or_insert(what);
        }
    }
}

/// How a client connects: an API key, or a user's access token.
#[derive(Debug, Clone)]
pub enum Credential {
    ApiKey(String),
    Bearer(String),
}

/// Opens a WebSocket to the gateway.
async fn open(base_url: &str, credential: &Credential) -> Result<Socket> {
    let url = format!("{}/v1/realtime/ws", base_url.replacen("http", "ws", 1));
    let mut request = url.into_client_request()?;
    match credential {
        Credential::ApiKey(key) => request.headers_mut().insert("x-api-key", key.parse()?),
        Credential::Bearer(token) => request.headers_mut().insert("authorization", format!("Bearer {token}").parse()?),
    };
    // tungstenite zero-fills its whole read buffer (128 KiB by default)
    // before every read: at 100,000 frames a second that alone would take
    // a good part of a core from the machine the server shares.
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let (socket, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
        .await
        .context("opening a WebSocket")?;
    Ok(socket)
}

/// Reads a client's frames until the connection ends: times messages,
/// counts acknowledgements, errors and the server's close.
async fn read(mut stream: SplitStream<Socket>, shared: Arc<Shared>, latencies: Arc<Mutex<Histogram<u64>>>) {
    while let Some(frame) = stream.next().await {
        match frame {
            Ok(Message::Text(text)) => {
                let text = text.as_str();
                if let Some((sent, step)) = stamp(text) {
                    let now = micros_now();
                    if let Some(counter) = usize::try_from(step).ok().and_then(|s| shared.delivered.get(s)) {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    let start = shared.window_start.load(Ordering::Relaxed);
                    if now >= start && now < shared.window_end.load(Ordering::Relaxed) {
                        shared.in_window.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut latencies) = latencies.lock() {
                            latencies.saturating_record(now.saturating_sub(sent).max(1));
                        }
                    }
                } else if text.contains(r#""type":"subscribed""#) || text.contains(r#""type":"unsubscribed""#) {
                    shared.acks.fetch_add(1, Ordering::Relaxed);
                } else if text.starts_with(r#"{"type":"presence""#) {
                    // Room members coming online: not what is measured.
                } else {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                    shared.problem(text.chars().take(200).collect());
                }
            }
            Ok(Message::Close(close)) => {
                shared.closed.fetch_add(1, Ordering::Relaxed);
                shared.problem(close.map_or_else(|| "closed".into(), |c| format!("closed {}: {}", c.code, c.reason)));
                return;
            }
            Ok(_) => {}
            Err(error) => {
                shared.closed.fetch_add(1, Ordering::Relaxed);
                shared.problem(format!("connection failed: {error}"));
                return;
            }
        }
    }
}

/// The send time and step of a benchmark message frame, found in its text:
/// `"t":<µs>,"s":<step>` in a published message's data, or
/// `t=<µs> s=<step>` in a chat message's text.
fn stamp(frame: &str) -> Option<(u64, u64)> {
    if !frame.starts_with(r#"{"type":"message""#) {
        return None;
    }
    let number_after = |key: &str| -> Option<u64> {
        let at = frame.rfind(key)? + key.len();
        let digits = frame[at..].bytes().take_while(u8::is_ascii_digit).count();
        frame[at..at + digits].parse().ok()
    };
    match (number_after(r#""t":"#), number_after(r#""s":"#)) {
        (Some(sent), Some(step)) => Some((sent, step)),
        _ => Some((number_after(" t=")?, number_after(" s=")?)),
    }
}

/// A chat message's text carrying its send time and step.
pub fn chat_text(step: usize) -> String {
    format!("bench t={} s={step}", micros_now())
}

/// One connected subscriber: its write half, its latencies and the task
/// reading its frames.
#[derive(Debug)]
pub struct Subscriber {
    sink: Sink,
    pub latencies: Arc<Mutex<Histogram<u64>>>,
    channel: Option<String>,
}

impl Subscriber {
    pub async fn connect(base_url: &str, credential: &Credential, shared: &Arc<Shared>) -> Result<Self> {
        let (sink, stream) = open(base_url, credential).await?.split();
        let latencies = Arc::new(Mutex::new(histogram()));
        tokio::spawn(read(stream, shared.clone(), latencies.clone()));
        Ok(Self { sink, latencies, channel: None })
    }

    /// Sends `subscribe` (after `unsubscribe` from the previous channel);
    /// the answers are counted in [`Shared::acks`].
    pub async fn subscribe(&mut self, channel: &str) -> Result<usize> {
        let mut frames = 0;
        if let Some(previous) = self.channel.take() {
            let frame = serde_json::json!({"type": "unsubscribe", "channel": previous});
            self.sink.feed(Message::text(frame.to_string())).await?;
            frames += 1;
        }
        let frame = serde_json::json!({"type": "subscribe", "channel": channel});
        self.sink.send(Message::text(frame.to_string())).await?;
        self.channel = Some(channel.to_owned());
        Ok(frames + 1)
    }
}

/// Waits until `shared.acks` reaches `target` (at most `limit`).
pub async fn await_acks(shared: &Shared, target: usize, limit: Duration) -> Result<()> {
    let started = Instant::now();
    while shared.acks.load(Ordering::Relaxed) < target {
        if started.elapsed() > limit {
            bail!(
                "only {} of {target} subscribe answers in {limit:?} (first problem: {:?})",
                shared.acks.load(Ordering::Relaxed),
                shared.first_problem.lock().ok().and_then(|p| p.clone())
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// A publishing connection (it subscribes to nothing; its reader only
/// counts error frames).
#[derive(Debug)]
pub struct Publisher {
    sink: Sink,
}

/// What one publisher sends in one step.
#[derive(Debug, Clone)]
pub struct Plan {
    pub step: usize,
    /// Publishes per second from this publisher.
    pub rate: f64,
    /// The channels it cycles through, with each one's subscriber count.
    pub channels: Arc<Vec<(String, u64)>>,
    /// Its first channel (publishers start at different ones).
    pub offset: usize,
    /// Channels between two of its consecutive publishes.
    pub stride: usize,
}

/// How often a publisher sends what is due (several frames, one flush).
const PACE: Duration = Duration::from_millis(2);

impl Publisher {
    pub async fn connect(base_url: &str, credential: &Credential, shared: &Arc<Shared>) -> Result<Self> {
        let (sink, stream) = open(base_url, credential).await?.split();
        tokio::spawn(read(stream, shared.clone(), Arc::new(Mutex::new(histogram()))));
        Ok(Self { sink })
    }

    /// Publishes at `plan.rate` until `stop`.
    pub async fn run(&mut self, plan: Plan, shared: Arc<Shared>, stop: CancellationToken) -> Result<()> {
        let mut next = plan.offset % plan.channels.len().max(1);
        let mut pacer = Pacer::new(plan.rate);
        while let Some(due) = pacer.due(&stop).await {
            if due == 0 {
                continue;
            }
            let (mut published, mut expected) = (0, 0);
            for _ in 0..due {
                let (channel, members) = &plan.channels[next];
                next = (next + plan.stride) % plan.channels.len();
                let frame = format!(
                    r#"{{"type":"publish","channel":"{channel}","data":{{"t":{},"s":{}}}}}"#,
                    micros_now(),
                    plan.step
                );
                self.sink.feed(Message::text(frame)).await?;
                published += 1;
                expected += members;
            }
            self.sink.flush().await?;
            shared.published[plan.step].fetch_add(published, Ordering::Relaxed);
            shared.expected[plan.step].fetch_add(expected, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Paces a sender at a rate: every [`PACE`], how many sends have come due
/// since it started.
#[derive(Debug)]
pub struct Pacer {
    started: Instant,
    rate: f64,
    counted: u64,
    ticks: tokio::time::Interval,
}

impl Pacer {
    pub fn new(rate: f64) -> Self {
        let mut ticks = tokio::time::interval(PACE);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self { started: Instant::now(), rate, counted: 0, ticks }
    }

    /// Waits for the next tick and answers the sends due since the last
    /// answer; `None` once `stop` is cancelled.
    pub async fn due(&mut self, stop: &CancellationToken) -> Option<u64> {
        tokio::select! {
            () = stop.cancelled() => return None,
            _ = self.ticks.tick() => {}
        }
        let due = (self.started.elapsed().as_secs_f64() * self.rate) as u64;
        let now_due = due.saturating_sub(self.counted);
        self.counted = self.counted.max(due);
        Some(now_due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_found_in_message_frames_only() {
        let frame = r#"{"type":"message","channel":"app:bench-1","id":"1-0","event":"message","data":{"t":1700000000123456,"s":3}}"#;
        assert_eq!(stamp(frame), Some((1_700_000_000_123_456, 3)));
        assert_eq!(stamp(r#"{"type":"subscribed","channel":"app:bench-1"}"#), None);
        assert_eq!(stamp(r#"{"type":"message","data":{"x":1}}"#), None);
        let chat = format!(r#"{{"type":"message","data":{{"text":"{}","n":1}}}}"#, chat_text(4));
        assert_eq!(stamp(&chat).map(|(_, step)| step), Some(4));
    }
}
