//! The gateway under a reader that stops reading: that connection is closed
//! (1008, with the reason) while every other subscriber of the channel
//! keeps receiving every message, in order, exactly once.
//!
//! The stalled client keeps its TCP connection open with a small receive
//! buffer and never polls it, so the server's writes to it back up. The
//! publisher goes in chunks: a chunk is published only once every healthy
//! client has received the one before, so the fan-out is shown to go on
//! while the stalled client is still connected, and after it is closed.

use futures::StreamExt as _;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;

use crate::helpers::{spawn_app_with, TestApp};
use crate::realtime::{connect, publish, subscribe, ws_url, Socket};

const CHANNEL: &str = "app:load";
const HEALTHY: usize = 20;
/// Messages published between two checks that everyone is up to date.
const CHUNK: u64 = 25;
/// More than the stalled connection's buffers can hold (4 KiB each; the
/// server's socket send buffer alone may grow to a few MiB).
const MAX_MESSAGES: u64 = 4_000;
/// Chunks still published after the stalled client is closed.
const CHUNKS_AFTER_CLOSE: u64 = 4;

/// A WebSocket whose socket receive buffer is a few KiB, so a reader that
/// stops polling it backs the server's writes up quickly.
async fn stalling_socket(address: &str, token: &str) -> Socket {
    let url = ws_url(address, "");
    let mut request = url.as_str().into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let host = address.trim_start_matches("http://");
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.set_recv_buffer_size(4096).unwrap();
    let stream = tcp.connect(host.parse().unwrap()).await.unwrap();
    tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)).await.expect("upgrade").0
}

/// `realtime_slow_readers_total` as the server reports it.
async fn slow_readers_closed(app: &TestApp) -> u64 {
    let metrics = app.get("/metrics").await.text().await.unwrap();
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("realtime_slow_readers_total "))
        .map_or(0, |value| value.trim().parse::<f64>().unwrap() as u64)
}

/// Reads message frames (their `n`, in arrival order) until `{"end":true}`,
/// reporting how many arrived on `progress`.
fn healthy_reader(mut socket: Socket, progress: watch::Sender<u64>) -> JoinHandle<Vec<(u64, String)>> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            let frame = crate::realtime::next(&mut socket).await;
            assert_eq!(frame["type"], "message", "{frame}");
            if frame["data"]["end"] == true {
                return seen;
            }
            let n = frame["data"]["n"].as_u64().expect("n");
            seen.push((n, frame["id"].as_str().expect("id").to_owned()));
            progress.send_replace(seen.len() as u64);
        }
    })
}

/// Reads what the stalled client was sent: message frames until the close
/// frame (or the end of the connection, as `None`).
async fn drain(mut socket: Socket) -> (Vec<u64>, Option<CloseFrame>) {
    let mut seen = Vec::new();
    loop {
        let next = tokio::time::timeout(std::time::Duration::from_secs(30), socket.next()).await;
        match next.expect("the stalled client's frames within 30 s") {
            Some(Ok(Message::Text(text))) => {
                let frame: Value = serde_json::from_str(&text).unwrap();
                seen.push(frame["data"]["n"].as_u64().expect("n"));
            }
            Some(Ok(Message::Close(close))) => return (seen, close),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return (seen, None),
        }
    }
}

#[tokio::test]
async fn a_reader_that_stops_reading_is_closed_while_the_others_receive_everything_in_order() {
    let app = spawn_app_with(&[("rt_outbound_buffer", "32")], Default::default()).await;
    let user = app.new_user().await;
    let mut readers = Vec::new();
    let mut progress = Vec::new();
    for _ in 0..HEALTHY {
        let mut socket = connect(&app.address, &user.access_token).await;
        subscribe(&mut socket, CHANNEL, None).await;
        let (sender, receiver) = watch::channel(0);
        readers.push(healthy_reader(socket, sender));
        progress.push(receiver);
    }
    let mut stalled = stalling_socket(&app.address, &user.access_token).await;
    subscribe(&mut stalled, CHANNEL, None).await;
    let mut stalled = Some(stalled);
    // From here nothing polls `stalled` until it has been closed.
    let mut publisher = connect(&app.address, &user.access_token).await;
    let pad = "x".repeat(4000);

    let mut published = 0;
    let mut closed_at = None;
    let mut drained = None;
    while closed_at.is_none_or(|at| published < at + CHUNKS_AFTER_CLOSE * CHUNK) {
        assert!(published < MAX_MESSAGES, "the stalled reader was still connected after {published} messages");
        for n in published..published + CHUNK {
            publish(&mut publisher, CHANNEL, json!({"n": n, "pad": pad})).await;
        }
        published += CHUNK;
        for (client, receiver) in progress.iter_mut().enumerate() {
            let caught_up = receiver.wait_for(|&seen| seen >= published);
            let waited = tokio::time::timeout(std::time::Duration::from_secs(10), caught_up).await;
            assert!(waited.is_ok(), "healthy client {client} stalled before message {published}");
        }
        if closed_at.is_none() && slow_readers_closed(&app).await >= 1 {
            closed_at = Some(published);
            // Read at once: its close frame waits behind what it was sent.
            drained = stalled.take().map(|socket| tokio::spawn(drain(socket)));
        }
    }
    publish(&mut publisher, CHANNEL, json!({"end": true})).await;

    let closed_at = closed_at.expect("closed");
    assert!(closed_at < published, "messages went out after the stalled reader was closed");
    for reader in readers {
        let seen = reader.await.expect("a healthy reader");
        let order: Vec<u64> = seen.iter().map(|(n, _)| *n).collect();
        assert_eq!(order, (0..published).collect::<Vec<_>>(), "every message once, in order");
        let ids: Vec<(u64, u64)> = seen
            .iter()
            .map(|(_, id)| {
                let (ms, seq) = id.split_once('-').unwrap();
                (ms.parse().unwrap(), seq.parse().unwrap())
            })
            .collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "ids increase");
    }
    let (seen, close) = drained.expect("drained").await.expect("the stalled client's frames");
    let close = close.expect("a close frame, not just the end of the connection");
    assert_eq!(close.code, CloseCode::Policy);
    assert_eq!(close.reason.as_str(), "reader too slow");
    assert!((seen.len() as u64) < closed_at, "the stalled client got {} of {closed_at}", seen.len());
    assert_eq!(seen, (0..seen.len() as u64).collect::<Vec<_>>(), "what it did get is a gapless prefix");
    assert_eq!(slow_readers_closed(&app).await, 1, "no healthy client was closed");
}
