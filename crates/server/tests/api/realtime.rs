//! The real-time gateway: tickets, the WebSocket frame protocol, SSE,
//! channel authorization, resume with `since`, and two instances sharing
//! one Redis.

use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use reqwest::Method;
use serde_json::{json, Value};
use switchyard::config::Settings;
use switchyard::startup::{self, Application};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::helpers::{read_until, spawn_app, test_settings_with, TestApp, TestDatabase};

pub(crate) type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) fn ws_url(address: &str, query: &str) -> String {
    format!("{}/v1/realtime/ws{query}", address.replacen("http", "ws", 1))
}

/// A WebSocket authenticated with a Bearer token.
pub(crate) async fn connect(address: &str, token: &str) -> Socket {
    let mut request = ws_url(address, "").into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(request).await.expect("upgrade").0
}

pub(crate) async fn send(socket: &mut Socket, frame: Value) {
    socket.send(Message::text(frame.to_string())).await.expect("frame sent");
}

/// The next JSON text frame (10 s at most: a bound, not a measurement).
pub(crate) async fn next(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame within 10 s")
            .expect("the connection is open")
            .expect("a frame");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).expect("JSON frame"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

pub(crate) async fn subscribe(socket: &mut Socket, channel: &str, since: Option<&str>) {
    let mut frame = json!({"type": "subscribe", "channel": channel});
    if let Some(since) = since {
        frame["since"] = since.into();
    }
    send(socket, frame).await;
    assert_eq!(next(socket).await, json!({"type": "subscribed", "channel": channel}));
}

pub(crate) async fn publish(socket: &mut Socket, channel: &str, data: Value) {
    send(socket, json!({"type": "publish", "channel": channel, "data": data})).await;
}

pub(crate) async fn ticket(app: &TestApp, token: &str) -> String {
    let response = app.authed(Method::POST, "/v1/realtime/tickets", token).send().await.unwrap();
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.unwrap()["ticket"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_ticket_connects_once_and_a_bad_one_is_refused_before_the_upgrade() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let ticket = ticket(&app, &user.access_token).await;
    let url = ws_url(&app.address, &format!("?ticket={ticket}"));
    let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.expect("the ticket works");
    send(&mut socket, json!({"type": "ping"})).await;
    assert_eq!(next(&mut socket).await, json!({"type": "pong"}));
    for url in [url, ws_url(&app.address, &format!("?ticket=rtt_{}", "0".repeat(64))), ws_url(&app.address, "")] {
        match tokio_tungstenite::connect_async(&url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
            other => panic!("expected a 401, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn publish_reaches_subscribers_of_the_account_only_and_sse_sees_it_too() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let stranger = app.new_user().await;
    let mut reader = connect(&app.address, &user.access_token).await;
    let mut writer = connect(&app.address, &user.access_token).await;
    let mut other = connect(&app.address, &stranger.access_token).await;
    subscribe(&mut reader, "app:chat", None).await;
    subscribe(&mut other, "app:chat", None).await;
    let mut sse =
        app.authed(Method::GET, "/v1/realtime/sse?channels=app:chat", &user.access_token).send().await.unwrap();
    assert_eq!(sse.status(), 200);
    // The SSE stream's subscription is in place once its headers are sent.
    publish(&mut writer, "app:chat", json!({"text": "hi"})).await;
    let frame = next(&mut reader).await;
    assert_eq!(frame["type"], "message");
    assert_eq!(frame["channel"], "app:chat");
    assert_eq!(frame["event"], "message");
    assert_eq!(frame["data"], json!({"text": "hi"}));
    let id = frame["id"].as_str().expect("a message id").to_owned();
    let seen = read_until(&mut sse, "hi").await;
    assert!(seen.contains(&format!("id: {id}")), "{seen}");
    // Another account's app:chat is another channel.
    send(&mut other, json!({"type": "ping"})).await;
    assert_eq!(next(&mut other).await, json!({"type": "pong"}));
}

/// Publish frames sent back to back, without waiting, by several
/// connections at once: on each channel, each connection's messages
/// arrive in the order it sent them, none lost or doubled, with ids that
/// only grow (two channels are two feeds: their frames may interleave
/// either way); a refused one
/// in the middle is answered with an error frame and holds up nothing.
#[tokio::test]
async fn back_to_back_publishes_keep_each_connections_order() {
    const WRITERS: u64 = 4;
    const EACH: u64 = 250;
    let app = spawn_app().await;
    let user = app.new_user().await;
    let mut reader = connect(&app.address, &user.access_token).await;
    subscribe(&mut reader, "app:a", None).await;
    subscribe(&mut reader, "app:b", None).await;
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let socket = connect(&app.address, &user.access_token).await;
        writers.push(tokio::spawn(async move {
            let mut socket = socket;
            for seq in 0..EACH {
                let channel = if seq % 2 == 0 { "app:a" } else { "app:b" };
                let frame = json!({"type": "publish", "channel": channel, "data": {"writer": writer, "seq": seq}});
                socket.feed(Message::text(frame.to_string())).await.unwrap();
                if seq == EACH / 2 {
                    let refused = json!({"type": "publish", "channel": "actions", "data": {}});
                    socket.feed(Message::text(refused.to_string())).await.unwrap();
                }
            }
            socket.flush().await.unwrap();
            let error = next(&mut socket).await;
            assert_eq!((error["type"].as_str(), error["code"].as_str()), (Some("error"), Some("read_only")), "{error}");
            assert_eq!(error["channel"], "actions");
            socket
        }));
    }
    // Writers send even numbers to app:a and odd ones to app:b.
    let mut last_seq: std::collections::HashMap<(u64, String), u64> = Default::default();
    let mut last_id: std::collections::HashMap<String, (u64, u64)> = Default::default();
    for _ in 0..WRITERS * EACH {
        let frame = next(&mut reader).await;
        assert_eq!(frame["type"], "message", "{frame}");
        let (writer, seq) = (frame["data"]["writer"].as_u64().unwrap(), frame["data"]["seq"].as_u64().unwrap());
        let channel = frame["channel"].as_str().unwrap().to_owned();
        let first = if channel == "app:a" { 0 } else { 1 };
        let expected = last_seq.get(&(writer, channel.clone())).map_or(first, |last| last + 2);
        assert_eq!(seq, expected, "writer {writer} on {channel}: out of order, lost or doubled");
        last_seq.insert((writer, channel.clone()), seq);
        let (ms, n) = frame["id"].as_str().unwrap().split_once('-').unwrap();
        let id = (ms.parse::<u64>().unwrap(), n.parse::<u64>().unwrap());
        if let Some(previous) = last_id.insert(channel.clone(), id) {
            assert!(id > previous, "{channel}: id {id:?} after {previous:?}");
        }
    }
    for writer in writers {
        writer.await.unwrap();
    }
    send(&mut reader, json!({"type": "ping"})).await;
    assert_eq!(next(&mut reader).await, json!({"type": "pong"}), "nothing more than was published");
}

#[tokio::test]
async fn malformed_frames_are_answered_and_too_many_close_the_connection() {
    let app = crate::helpers::spawn_app_with(&[("rt_max_bad_frames", "2")], Default::default()).await;
    let user = app.new_user().await;
    let mut socket = connect(&app.address, &user.access_token).await;
    for bad in ["not json", r#"{"type":"dance"}"#] {
        socket.send(Message::text(bad)).await.unwrap();
        let frame = next(&mut socket).await;
        assert_eq!(frame["type"], "error");
        assert_eq!(frame["code"], "bad_frame");
    }
    // Still open.
    send(&mut socket, json!({"type": "ping"})).await;
    assert_eq!(next(&mut socket).await, json!({"type": "pong"}));
    socket.send(Message::text("{")).await.unwrap();
    assert_eq!(next(&mut socket).await["code"], "bad_frame");
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await.expect("closed within 10 s") {
            Some(Ok(Message::Close(Some(close)))) => {
                assert_eq!(u16::from(close.code), 1008);
                assert!(close.reason.contains("malformed"), "{}", close.reason);
                break;
            }
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn channels_are_refused_to_callers_who_may_not_use_them() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let admin = app.new_admin().await;
    let mut socket = connect(&app.address, &user.access_token).await;
    let refusals = [
        (json!({"type": "subscribe", "channel": "activity"}), "forbidden"),
        (json!({"type": "subscribe", "channel": format!("user:{}", admin.id)}), "forbidden"),
        (json!({"type": "subscribe", "channel": format!("room:{}", uuid::Uuid::new_v4())}), "not_found"),
        (json!({"type": "publish", "channel": "actions", "data": {}}), "read_only"),
        (json!({"type": "subscribe", "channel": "nope"}), "bad_channel"),
    ];
    for (frame, code) in refusals {
        let channel = frame["channel"].clone();
        send(&mut socket, frame).await;
        let answer = next(&mut socket).await;
        assert_eq!((answer["type"].as_str(), answer["code"].as_str()), (Some("error"), Some(code)), "{answer}");
        assert_eq!(answer["channel"], channel);
    }
    subscribe(&mut socket, &format!("user:{}", user.id), None).await;
    let mut admin_socket = connect(&app.address, &admin.access_token).await;
    subscribe(&mut admin_socket, "activity", None).await;
}

#[tokio::test]
async fn resume_with_since_replays_exactly_once_in_order_then_goes_live() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let mut writer = connect(&app.address, &user.access_token).await;
    subscribe(&mut writer, "app:feed", None).await;
    let (mut ids, mut live) = (Vec::new(), Vec::new());
    for n in 1..=3 {
        publish(&mut writer, "app:feed", json!({"n": n, "text": "é \"quoted\" \u{1F600}"})).await;
        let frame = next(&mut writer).await;
        ids.push(frame["id"].as_str().unwrap().to_owned());
        live.push(frame);
    }
    let mut reader = connect(&app.address, &user.access_token).await;
    subscribe(&mut reader, "app:feed", Some(&ids[0])).await;
    publish(&mut writer, "app:feed", json!({"n": 4})).await;
    let got: Vec<(Value, Value)> = {
        let mut got = Vec::new();
        for n in 0..3 {
            let frame = next(&mut reader).await;
            if n < 2 {
                // A replayed frame is the very frame live subscribers got.
                assert_eq!(frame, live[n + 1]);
            }
            got.push((frame["data"]["n"].clone(), frame["id"].clone()));
        }
        got
    };
    assert_eq!(got.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(), vec![json!(2), json!(3), json!(4)]);
    assert_eq!(got[0].1, json!(ids[1]));
    send(&mut reader, json!({"type": "ping"})).await;
    assert_eq!(next(&mut reader).await, json!({"type": "pong"}), "nothing delivered twice");
    // SSE resumes the same way, from Last-Event-ID.
    let mut sse = app
        .authed(Method::GET, "/v1/realtime/sse?channels=app:feed", &user.access_token)
        .header("last-event-id", &ids[1])
        .send()
        .await
        .unwrap();
    let seen = read_until(&mut sse, r#""n":4"#).await;
    assert!(!seen.contains(r#""n":2"#) && seen.contains(r#""n":3"#), "{seen}");
    // A since the history no longer reaches.
    let mut late = connect(&app.address, &user.access_token).await;
    send(&mut late, json!({"type": "subscribe", "channel": "app:never", "since": "1-0"})).await;
    assert_eq!(next(&mut late).await["code"], "history_gone");
}

/// A server sharing another's database and key prefix, as a second
/// instance behind a load balancer.
async fn start(settings: Settings) -> (String, CancellationToken) {
    let state = startup::connect(settings).await.expect("connect");
    startup::migrate(&state.db).await.expect("migrate");
    let app = Application::bind(state).await.expect("bind");
    let address = format!("http://{}", app.local_addr());
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(shutdown.clone()));
    (address, shutdown)
}

#[tokio::test]
async fn two_instances_see_each_others_messages_and_shutdown_closes_with_1001() {
    let (settings, _database): (Settings, TestDatabase) = test_settings_with(&[], None).await;
    let (a, stop_a) = start(settings.clone()).await;
    let (b, stop_b) = start(settings).await;
    let client = reqwest::Client::new();
    let n = uuid::Uuid::new_v4().simple().to_string();
    let email = format!("{}@example.com", &n[..12]);
    let signup = json!({"username": format!("u{}", &n[..12]), "email": email, "password": format!("pw-{n}")});
    assert_eq!(client.post(format!("{a}/v1/auth/signup")).json(&signup).send().await.unwrap().status(), 201);
    let tokens: Value = client
        .post(format!("{a}/v1/auth/login"))
        .json(&json!({"email": email, "password": format!("pw-{n}")}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tokens["access_token"].as_str().unwrap();
    let mut on_a = connect(&a, token).await;
    let mut on_b = connect(&b, token).await;
    subscribe(&mut on_a, "app:x", None).await;
    subscribe(&mut on_b, "app:x", None).await;
    publish(&mut on_b, "app:x", json!({"from": "b"})).await;
    assert_eq!(next(&mut on_a).await["data"], json!({"from": "b"}));
    assert_eq!(next(&mut on_b).await["data"], json!({"from": "b"}));
    stop_a.cancel();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), on_a.next()).await.expect("closed within 10 s") {
            Some(Ok(Message::Close(Some(close)))) => {
                assert_eq!(u16::from(close.code), 1001);
                break;
            }
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
    stop_b.cancel();
}

#[tokio::test]
async fn a_users_channel_and_rooms_are_for_their_sessions_not_their_api_clients() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let key = app.create_client(&user, json!({"name": "bot"})).await["api_key"].as_str().unwrap().to_owned();
    let room = crate::chat::group(&app, &user, &[]).await;
    let mut request = ws_url(&app.address, "").into_client_request().unwrap();
    request.headers_mut().insert("x-api-key", key.parse().unwrap());
    let mut socket = tokio_tungstenite::connect_async(request).await.expect("upgrade").0;
    for channel in [format!("user:{}", user.id), format!("room:{room}")] {
        send(&mut socket, json!({"type": "subscribe", "channel": channel})).await;
        let answer = next(&mut socket).await;
        assert_eq!((answer["type"].as_str(), answer["code"].as_str()), (Some("error"), Some("forbidden")), "{answer}");
    }
    send(&mut socket, json!({"type": "typing", "room": room})).await;
    assert_eq!(next(&mut socket).await["code"], "forbidden");
    // The account's free channels stay the client's too.
    subscribe(&mut socket, "app:bots", None).await;
}
