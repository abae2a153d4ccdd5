//! Presence (online while a connection beats; offline when the last one
//! closes or its instance is killed) and typing (forwarded, throttled,
//! never stored).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::chat::{direct, frames_until_pong, group, history_len, serve};
use crate::helpers::{spawn_app, spawn_app_with, TestApp, TestUser};
use crate::realtime::{connect, next, send, subscribe, Socket};

/// The next presence frame about `user` in `room`; its status.
async fn presence_of(socket: &mut Socket, room: &str, user: &TestUser) -> String {
    loop {
        let frame = next(socket).await;
        if frame["type"] == "presence" && frame["user_id"] == user.id.as_str() {
            assert_eq!(frame["room"], room);
            return frame["status"].as_str().unwrap().to_owned();
        }
    }
}

async fn query(address: &str, caller: &TestUser, ids: &[&str]) -> Value {
    let response = reqwest::Client::new()
        .get(format!("{address}/v1/presence?user_ids={}", ids.join(",")))
        .bearer_auth(&caller.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn presence_frames_reach_room_members_and_the_query_answers_room_mates_only() {
    let app = spawn_app().await;
    let (alice, bob, stranger) = (app.new_user().await, app.new_user().await, app.new_user().await);
    let room = direct(&app, &alice, &bob).await;
    let mut watcher = connect(&app.address, &alice.access_token).await;
    subscribe(&mut watcher, &format!("room:{room}"), None).await;
    let mut first = connect(&app.address, &bob.access_token).await;
    assert_eq!(presence_of(&mut watcher, &room, &bob).await, "online");
    // A second connection is no transition; closing one of two neither.
    let mut second = connect(&app.address, &bob.access_token).await;
    send(&mut second, json!({"type": "ping"})).await;
    assert_eq!(next(&mut second).await, json!({"type": "pong"}));
    drop(second);
    let answer = query(&app.address, &alice, &[&bob.id, &stranger.id]).await;
    let users = answer["users"].as_array().unwrap();
    assert_eq!(users.len(), 1, "only room mates: {answer}");
    assert_eq!((users[0]["user_id"].as_str(), users[0]["online"].as_bool()), (Some(bob.id.as_str()), Some(true)));
    first.close(None).await.unwrap();
    assert_eq!(presence_of(&mut watcher, &room, &bob).await, "offline");
    let later = frames_until_pong(&mut watcher).await;
    assert!(later.iter().all(|f| f["type"] != "presence"), "each transition once: {later:?}");
    let answer = query(&app.address, &alice, &[&bob.id]).await;
    assert_eq!(answer["users"][0]["online"], false);
    assert!(answer["users"][0]["last_seen"].is_string(), "{answer}");
    let bad = app.authed(Method::GET, "/v1/presence?user_ids=nope", &alice.access_token).send().await.unwrap();
    let problem = crate::helpers::assert_problem(bad, 422).await;
    assert_eq!(problem["errors"][0]["field"], "user_ids");
}

#[tokio::test]
async fn presence_goes_offline_within_the_ttl_after_an_instance_is_killed() {
    let app = spawn_app_with(&[("presence_ttl_secs", "2")], Default::default()).await;
    let (alice, bob) = (app.new_user().await, app.new_user().await);
    let room = direct(&app, &alice, &bob).await;
    let ttl = [("PRESENCE_TTL_SECS", "2")];
    let (_a, a) = serve(&app, &ttl).await;
    let (b_process, b) = serve(&app, &ttl).await;
    let mut watcher = connect(&a, &alice.access_token).await;
    subscribe(&mut watcher, &format!("room:{room}"), None).await;
    let mut on_b = connect(&b, &bob.access_token).await;
    send(&mut on_b, json!({"type": "ping"})).await;
    assert_eq!(next(&mut on_b).await, json!({"type": "pong"}));
    assert_eq!(presence_of(&mut watcher, &room, &bob).await, "online");
    // Beats keep bob online past several lifetimes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(query(&a, &alice, &[&bob.id]).await["users"][0]["online"], true);
    let mut child = b_process.take();
    let killed = Instant::now();
    child.kill().unwrap(); // SIGKILL: no clean close, no leave
    child.wait().unwrap();
    assert_eq!(presence_of(&mut watcher, &room, &bob).await, "offline");
    eprintln!("offline announced {:?} after SIGKILL (PRESENCE_TTL_SECS=2)", killed.elapsed());
    assert_eq!(query(&a, &alice, &[&bob.id]).await["users"][0]["online"], false);
    // Three processes sweep; one announced. Give the others a sweep or two.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let later = frames_until_pong(&mut watcher).await;
    assert!(later.iter().all(|f| f["type"] != "presence"), "announced once: {later:?}");
    drop(on_b);
}

/// Frames `socket` receives until `n` messages have arrived.
async fn frames_through_messages(socket: &mut Socket, n: usize) -> Vec<Value> {
    let mut frames = Vec::new();
    let mut messages = 0;
    while messages < n {
        let frame = next(socket).await;
        if frame["event"] == "message.created" {
            messages += 1;
        }
        frames.push(frame);
    }
    frames
}

async fn post(app: &TestApp, user: &TestUser, room: &str, text: &str) {
    let response = app
        .authed(Method::POST, &format!("/v1/rooms/{room}/messages"), &user.access_token)
        .json(&json!({"text": text}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn typing_reaches_the_other_member_once_per_window_and_is_not_stored() {
    let app = spawn_app().await;
    let (alice, bob, stranger) = (app.new_user().await, app.new_user().await, app.new_user().await);
    let room = group(&app, &alice, &[&bob]).await;
    let channel = format!("room:{room}");
    let mut reader = connect(&app.address, &alice.access_token).await;
    let mut typist = connect(&app.address, &bob.access_token).await;
    subscribe(&mut reader, &channel, None).await;
    subscribe(&mut typist, &channel, None).await;
    for _ in 0..3 {
        send(&mut typist, json!({"type": "typing", "room": room})).await;
    }
    // The pong comes after the three typing frames were handled.
    let answered = frames_until_pong(&mut typist).await;
    assert!(answered.iter().all(|f| f["type"] != "error"), "{answered:?}");
    assert!(answered.iter().all(|f| f["type"] != "typing"), "a member's own typing is not echoed");
    post(&app, &alice, &room, "first").await;
    post(&app, &alice, &room, "second").await;
    // Everything the reader got through both messages, and after them.
    let mut frames = frames_through_messages(&mut reader, 2).await;
    frames.extend(frames_until_pong(&mut reader).await);
    let typing: Vec<&Value> = frames.iter().filter(|f| f["type"] == "typing").collect();
    assert_eq!(typing, [&json!({"type": "typing", "room": room, "user_id": bob.id})], "one per window: {frames:?}");
    assert_eq!(history_len(&app, &room).await, 2, "only the messages are stored");
    let mut outsider = connect(&app.address, &stranger.access_token).await;
    send(&mut outsider, json!({"type": "typing", "room": room})).await;
    let refused = next(&mut outsider).await;
    assert_eq!((refused["type"].as_str(), refused["code"].as_str()), (Some("error"), Some("not_found")));
}
