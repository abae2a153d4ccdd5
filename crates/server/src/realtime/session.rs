//! One WebSocket connection: the frame protocol, its subscriptions, and
//! its bounded outbound queue.
//!
//! Invariants:
//! - every frame to the client goes through one queue of
//!   `RT_OUTBOUND_BUFFER` frames; a producer never waits on it
//!   (`try_send`), and a full queue (or a hub lag) closes the connection
//!   with 1008, so a slow reader delays nobody but itself;
//! - a subscription's frames keep their order: `subscribed`, then the
//!   replay, then live messages, all from the subscription's own task;
//! - a connection's `publish` frames are published in the order they
//!   arrived: one task per connection sends whatever has queued up as one
//!   pipeline, never two at once;
//! - a malformed frame is answered with an `error` frame; more than
//!   `RT_MAX_BAD_FRAMES` of them close the connection (1008, with the
//!   reason);
//! - when the server starts shutting down every connection is closed with
//!   1001 so clients reconnect elsewhere;
//! - a user's connection keeps them online (presence) until it ends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::SinkExt as _;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::channel::{Channel, StreamId};
use super::service::{FeedItem, Outgoing, Realtime, RealtimeError};
use crate::domain::Principal;

/// Channels one connection may hold at once.
pub const MAX_CHANNELS: usize = 100;

/// 1001: the server is going away.
const GOING_AWAY: u16 = 1001;
/// 1008: policy violation (too slow, too many malformed frames).
const POLICY: u16 = 1008;
/// How long a close frame may take to go out to a reader that stalls.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// The same for a reader closed for being too slow: its close frame waits
/// behind what the network already holds, and a reader that is slow rather
/// than gone gets to read why it was closed.
const SLOW_CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Queued frames written together at most (then flushed).
const WRITE_BATCH: usize = 64;
/// Publishes of one connection sent in one pipeline at most.
const PUBLISH_BATCH: usize = 64;
/// Publishes of one connection waiting for the pipeline in flight; past
/// this the connection's frames are not read until it drains.
const PUBLISH_QUEUE: usize = 256;
/// The reason a slow reader is closed with.
const TOO_SLOW: &str = "reader too slow";

/// A frame from the client.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientFrame {
    Subscribe {
        channel: String,
        since: Option<String>,
    },
    Unsubscribe {
        channel: String,
    },
    Publish {
        channel: String,
        #[serde(default)]
        event: Option<String>,
        data: serde_json::Value,
    },
    Typing {
        room: String,
    },
    Ping,
}

/// Why the connection is being closed by the server.
#[derive(Debug, Clone)]
struct Closing {
    code: u16,
    reason: &'static str,
}

/// The connection's state shared with its subscription tasks.
#[derive(Clone, Debug)]
struct Outbound {
    frames: mpsc::Sender<Utf8Bytes>,
    /// Cancelled with the reason set when a producer finds the queue full.
    slow: CancellationToken,
}

impl Outbound {
    /// Queues a frame; a full queue marks the reader too slow.
    fn push(&self, frame: impl Into<Utf8Bytes>) -> bool {
        match self.frames.try_send(frame.into()) {
            Ok(()) => true,
            Err(_) => {
                self.slow.cancel();
                false
            }
        }
    }
}

/// What was wrong with a frame, in words that never echo its content.
fn malformed(error: &serde_json::Error) -> String {
    use crate::http::described::{describe, Described};
    if error.is_syntax() || error.is_eof() {
        return "not a JSON object".into();
    }
    match describe(&error.to_string()) {
        Described::Missing(field) => format!("{field} is required"),
        Described::Unknown(field) => format!("unknown field {field}"),
        Described::Invalid(what) => what,
    }
}

fn error_frame(code: &str, message: &str, channel: Option<&str>) -> String {
    let mut frame = serde_json::json!({"type": "error", "code": code, "message": message});
    if let Some(channel) = channel {
        frame["channel"] = channel.into();
    }
    frame.to_string()
}

fn refusal_frame(error: &RealtimeError, channel: &str) -> String {
    match error {
        RealtimeError::Refused { code, message } => error_frame(code, message, Some(channel)),
        RealtimeError::HistoryGone => error_frame("history_gone", &error.to_string(), Some(channel)),
        RealtimeError::BadTicket => error_frame("unauthorized", "invalid ticket", Some(channel)),
        RealtimeError::Redis(_) | RealtimeError::Internal(_) => {
            tracing::warn!(%error, channel, "a real-time request failed");
            error_frame("unavailable", "try again shortly", Some(channel))
        }
    }
}

/// Runs one connection until either side closes it.
pub async fn run(mut socket: WebSocket, realtime: Arc<Realtime>, principal: Principal) {
    let settings = realtime.settings().clone();
    let (frames, mut queue) = mpsc::channel::<Utf8Bytes>(settings.outbound_buffer);
    let out = Outbound { frames, slow: CancellationToken::new() };
    let closing = realtime.closing().clone();
    let mut subscriptions: HashMap<String, JoinHandle<()>> = HashMap::new();
    let mut publisher = Publisher::default();
    let mut bad_frames: u32 = 0;
    // Held for the connection's life: the user is online meanwhile.
    let _presence = realtime.connected(&principal).await;
    // Made once, not per frame: creating and dropping them takes the
    // tokens' locks.
    let going_away = closing.cancelled();
    let too_slow = out.slow.cancelled();
    tokio::pin!(going_away, too_slow);
    let ending = loop {
        tokio::select! {
            biased;
            () = &mut going_away => break Some(Closing { code: GOING_AWAY, reason: "server shutting down" }),
            () = &mut too_slow => break Some(Closing { code: POLICY, reason: TOO_SLOW }),
            Some(frame) = queue.recv() => {
                // Frames already waiting go out with this one, in one write.
                let sending = async {
                    socket.feed(Message::Text(frame)).await?;
                    for _ in 0..WRITE_BATCH {
                        let Ok(frame) = queue.try_recv() else { break };
                        socket.feed(Message::Text(frame)).await?;
                    }
                    socket.flush().await
                };
                // A reader that stops reading stalls this send: watch for
                // the verdict meanwhile.
                tokio::select! {
                    sent = sending => if sent.is_err() { break None },
                    () = &mut too_slow => break Some(Closing { code: POLICY, reason: TOO_SLOW }),
                    () = &mut going_away => break Some(Closing { code: GOING_AWAY, reason: "server shutting down" }),
                }
            }
            incoming = socket.recv() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Binary(_))) => {
                        bad_frames += 1;
                        out.push(error_frame("bad_frame", "frames are JSON text", None));
                        if bad_frames > settings.max_bad_frames {
                            break Some(Closing { code: POLICY, reason: "too many malformed frames" });
                        }
                        continue;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break None,
                };
                match serde_json::from_str::<ClientFrame>(&text) {
                    Ok(frame) => {
                        let connection = Connection { realtime: &realtime, principal: &principal, out: &out };
                        handle(frame, &connection, &mut subscriptions, &mut publisher).await
                    }
                    Err(error) => {
                        bad_frames += 1;
                        let message = format!("malformed frame: {}", malformed(&error));
                        out.push(error_frame("bad_frame", &message, None));
                        if bad_frames > settings.max_bad_frames {
                            break Some(Closing { code: POLICY, reason: "too many malformed frames" });
                        }
                    }
                }
            }
        }
    };
    for (_, task) in subscriptions.drain() {
        task.abort();
    }
    if let Some(Closing { code, reason }) = ending {
        let grace = if reason == TOO_SLOW {
            metrics::counter!("realtime_slow_readers_total").increment(1);
            SLOW_CLOSE_GRACE
        } else {
            CLOSE_GRACE
        };
        // What was already answered (the error frame of the last bad
        // frame) goes out first, unless the reader is the problem.
        if reason != TOO_SLOW {
            let flush = async {
                while let Ok(frame) = queue.try_recv() {
                    if socket.send(Message::Text(frame)).await.is_err() {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(CLOSE_GRACE, flush).await;
        }
        let close = Message::Close(Some(CloseFrame { code, reason: reason.into() }));
        let _ = tokio::time::timeout(grace, socket.send(close)).await;
    }
}

/// What a frame is handled with.
struct Connection<'a> {
    realtime: &'a Arc<Realtime>,
    principal: &'a Principal,
    out: &'a Outbound,
}

/// The connection's publishing task, started by its first `publish`.
#[derive(Default)]
struct Publisher {
    queue: Option<mpsc::Sender<Outgoing>>,
}

impl Publisher {
    /// Queues a publish, waiting while the queue is full (the client's
    /// frames are not read meanwhile: TCP pushes back on it).
    async fn send(&mut self, connection: &Connection<'_>, message: Outgoing) {
        let queue = self.queue.get_or_insert_with(|| {
            let (queue, requests) = mpsc::channel(PUBLISH_QUEUE);
            let (realtime, principal, out) =
                (connection.realtime.clone(), connection.principal.clone(), connection.out.clone());
            // Ends when the connection drops its sender, after publishing
            // what was accepted.
            tokio::spawn(publishing(realtime, principal, out, requests));
            queue
        });
        let _ = queue.send(message).await;
    }
}

/// Publishes a connection's messages: everything queued goes out as one
/// pipeline, one pipeline at a time (so in order); a refusal answers an
/// `error` frame naming the channel.
async fn publishing(
    realtime: Arc<Realtime>,
    principal: Principal,
    out: Outbound,
    mut requests: mpsc::Receiver<Outgoing>,
) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    while requests.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
        let results = realtime.publish_many(&principal, &batch).await;
        for (message, result) in batch.drain(..).zip(results) {
            if let Err(error) = result {
                out.push(refusal_frame(&error, &message.channel.to_string()));
            }
        }
    }
}

async fn handle(
    frame: ClientFrame,
    connection: &Connection<'_>,
    subscriptions: &mut HashMap<String, JoinHandle<()>>,
    publisher: &mut Publisher,
) {
    let &Connection { realtime, principal, out } = connection;
    match frame {
        ClientFrame::Ping => {
            out.push(r#"{"type":"pong"}"#);
        }
        ClientFrame::Subscribe { channel: name, since } => {
            let Ok(channel) = Channel::parse(&name) else {
                out.push(error_frame("bad_channel", &super::channel::BadChannel.to_string(), Some(&name)));
                return;
            };
            let since = match since.as_deref().map(StreamId::parse) {
                None => None,
                Some(Some(id)) => Some(id),
                Some(None) => {
                    out.push(error_frame("bad_since", "since is a message id (digits-digits)", Some(&name)));
                    return;
                }
            };
            if let Some(previous) = subscriptions.remove(&name) {
                previous.abort();
            } else if subscriptions.len() >= MAX_CHANNELS {
                out.push(error_frame("too_many_channels", "at most 100 channels per connection", Some(&name)));
                return;
            }
            let (realtime, principal, out, key) = (realtime.clone(), principal.clone(), out.clone(), name.clone());
            // Its own task: replaying a history never holds up the
            // connection's other frames.
            let task = tokio::spawn(async move {
                let mut feed = match realtime.open(&principal, &channel, since).await {
                    Ok(feed) => feed,
                    Err(error) => {
                        out.push(refusal_frame(&error, &name));
                        return;
                    }
                };
                let subscribed = serde_json::json!({"type": "subscribed", "channel": name}).to_string();
                if !out.push(subscribed) {
                    return;
                }
                while let Some(item) = feed.next().await {
                    match item {
                        FeedItem::Frame { json, .. } => {
                            // Shared with the channel's other subscribers, not copied.
                            let Ok(frame) = Utf8Bytes::try_from(json.into_bytes()) else { continue };
                            if !out.push(frame) {
                                return;
                            }
                        }
                        FeedItem::Lagged(_) => {
                            out.slow.cancel();
                            return;
                        }
                        FeedItem::Revoked(why) => {
                            out.push(error_frame("not_found", why, Some(&name)));
                            return;
                        }
                    }
                }
            });
            subscriptions.insert(key, task);
        }
        ClientFrame::Unsubscribe { channel } => {
            if let Some(task) = subscriptions.remove(&channel) {
                task.abort();
            }
            // Answered either way: the client's view is "not subscribed".
            out.push(serde_json::json!({"type": "unsubscribed", "channel": channel}).to_string());
        }
        ClientFrame::Publish { channel: name, event, data } => {
            let channel = match Channel::parse(&name) {
                Ok(channel) => channel,
                Err(error) => {
                    out.push(error_frame("bad_channel", &error.to_string(), Some(&name)));
                    return;
                }
            };
            let event = event.unwrap_or_else(|| "message".into());
            if event.is_empty() || event.len() > 64 {
                out.push(error_frame("bad_event", "event is 1-64 characters", Some(&name)));
                return;
            }
            publisher.send(connection, Outgoing { channel, event, data }).await;
        }
        ClientFrame::Typing { room } => {
            let Ok(room) = uuid::Uuid::parse_str(&room) else {
                out.push(error_frame("bad_room", "room is a room id", None));
                return;
            };
            // Throttled signals are dropped silently: nothing to answer.
            if let Err(error) = realtime.typing(principal, room).await {
                out.push(refusal_frame(&error, &format!("room:{room}")));
            }
        }
    }
}
