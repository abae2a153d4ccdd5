//! Chat: rooms, membership, messages through the gateway (two real
//! `switchyard serve` processes), retries, unread counts and read
//! receipts, history pages, and notifications for offline members.

use std::process::Stdio;
use std::time::Duration;

use reqwest::Method;
use secrecy::ExposeSecret as _;
use serde_json::{json, Value};

use crate::binary::{switchyard, Running};
use crate::helpers::{assert_problem, redis_url, spawn_app, spawn_app_with_policies, TestApp, TestUser};
use crate::realtime::{connect, next, send, subscribe, Socket};

/// A group room of `owner` with `members`; its id.
pub(crate) async fn group(app: &TestApp, owner: &TestUser, members: &[&TestUser]) -> String {
    let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
    let body = json!({"name": "team", "member_ids": ids});
    let response = app.authed(Method::POST, "/v1/rooms", &owner.access_token).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

/// The direct room of two users; its id.
pub(crate) async fn direct(app: &TestApp, me: &TestUser, other: &TestUser) -> String {
    let response = app
        .authed(Method::POST, "/v1/rooms/direct", &me.access_token)
        .json(&json!({"user_id": other.id}))
        .send()
        .await
        .unwrap();
    assert!(response.status() == 201 || response.status() == 200);
    response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

/// Posts a message at `address`; the response.
async fn post(address: &str, user: &TestUser, room: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{address}/v1/rooms/{room}/messages"))
        .bearer_auth(&user.access_token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The next `message` frame carrying `event`, skipping other frames
/// (presence, typing).
pub(crate) async fn next_event(socket: &mut Socket, event: &str) -> Value {
    loop {
        let frame = next(socket).await;
        if frame["type"] == "message" && frame["event"] == event {
            return frame;
        }
    }
}

/// Every frame that arrives before the answer to a ping sent now.
pub(crate) async fn frames_until_pong(socket: &mut Socket) -> Vec<Value> {
    send(socket, json!({"type": "ping"})).await;
    let mut frames = Vec::new();
    loop {
        let frame = next(socket).await;
        if frame == json!({"type": "pong"}) {
            return frames;
        }
        frames.push(frame);
    }
}

/// A `switchyard serve` process on the test app's database and key prefix
/// (a second instance behind a load balancer); its base address.
pub(crate) async fn serve(app: &TestApp, env: &[(&str, &str)]) -> (Running, String) {
    let port = switchyard_kit::testing::free_port().unwrap().to_string();
    let settings = &app.state.settings;
    let mut vars = vec![
        ("DATABASE_URL", settings.database_url.expose_secret().to_owned()),
        ("REDIS_URL", redis_url()),
        ("REDIS_KEY_PREFIX", settings.redis_key_prefix.clone()),
        ("JWT_SECRET", settings.jwt_secret.expose_secret().to_owned()),
        ("PORT", port.clone()),
    ];
    vars.extend(env.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let running =
        Running::new(switchyard(&["serve"], &vars).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    let address = format!("http://127.0.0.1:{port}");
    for _ in 0..400 {
        if app.client.get(format!("{address}/health")).send().await.is_ok_and(|r| r.status() == 200) {
            return (running, address);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("serve did not answer /health");
}

async fn stored_messages(app: &TestApp, room: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM messages WHERE room_id = $1::uuid")
        .bind(room)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// Entries in a room channel's history stream.
pub(crate) async fn history_len(app: &TestApp, room: &str) -> u64 {
    let mut conn = app.redis.clone();
    redis::cmd("XLEN")
        .arg(app.keys.tagged(&format!("rt:room:{room}"), &["history"]))
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn two_users_chat_through_two_serve_processes_and_each_message_is_stored_and_seen_once() {
    let app = spawn_app().await;
    let (alice, bob) = (app.new_user().await, app.new_user().await);
    let room = direct(&app, &alice, &bob).await;
    let (_a, a) = serve(&app, &[]).await;
    let (_b, b) = serve(&app, &[]).await;
    let channel = format!("room:{room}");
    let mut on_a = connect(&a, &alice.access_token).await;
    let mut on_b = connect(&b, &bob.access_token).await;
    subscribe(&mut on_a, &channel, None).await;
    subscribe(&mut on_b, &channel, None).await;

    let sent = post(&a, &alice, &room, json!({"text": "hello from a"})).await;
    assert_eq!(sent.status(), 201);
    let sent: Value = sent.json().await.unwrap();
    for socket in [&mut on_a, &mut on_b] {
        let frame = next_event(socket, "message.created").await;
        assert_eq!(frame["channel"], channel);
        assert_eq!(frame["data"]["id"], sent["id"]);
        assert_eq!(frame["data"]["text"], "hello from a");
        assert_eq!(frame["data"]["sender_id"], alice.id.as_str());
    }
    assert_eq!(post(&b, &bob, &room, json!({"text": "hi from b"})).await.status(), 201);
    for socket in [&mut on_a, &mut on_b] {
        assert_eq!(next_event(socket, "message.created").await["data"]["text"], "hi from b");
        let later = frames_until_pong(socket).await;
        assert!(later.iter().all(|f| f["event"] != "message.created"), "delivered once: {later:?}");
    }
    assert_eq!(stored_messages(&app, &room).await, 2);
    assert_eq!(history_len(&app, &room).await, 2);
}

/// A member removed while subscribed sees their removal, then an error
/// frame ending the subscription, and no message after it; the others
/// keep receiving.
#[tokio::test]
async fn a_removed_member_stops_receiving_the_room_at_once() {
    let app = spawn_app().await;
    let (owner, kept, removed) = (app.new_user().await, app.new_user().await, app.new_user().await);
    let room = group(&app, &owner, &[&kept, &removed]).await;
    let channel = format!("room:{room}");
    let mut kept_socket = connect(&app.address, &kept.access_token).await;
    let mut removed_socket = connect(&app.address, &removed.access_token).await;
    subscribe(&mut kept_socket, &channel, None).await;
    subscribe(&mut removed_socket, &channel, None).await;
    assert_eq!(post(&app.address, &owner, &room, json!({"text": "before"})).await.status(), 201);
    assert_eq!(next_event(&mut removed_socket, "message.created").await["data"]["text"], "before");
    let path = format!("/v1/rooms/{room}/members/{}", removed.id);
    assert_eq!(app.authed(Method::DELETE, &path, &owner.access_token).send().await.unwrap().status(), 204);
    assert_eq!(next_event(&mut removed_socket, "member.left").await["data"]["user_id"], removed.id.to_string());
    let ended = next(&mut removed_socket).await;
    assert_eq!((ended["type"].as_str(), ended["code"].as_str()), (Some("error"), Some("not_found")), "{ended}");
    assert_eq!(ended["channel"], channel);
    assert_eq!(post(&app.address, &owner, &room, json!({"text": "after"})).await.status(), 201);
    assert_eq!(next_event(&mut kept_socket, "message.created").await["data"]["text"], "before");
    assert_eq!(next_event(&mut kept_socket, "message.created").await["data"]["text"], "after");
    let late = frames_until_pong(&mut removed_socket).await;
    assert!(late.iter().all(|f| f["event"] != "message.created"), "nothing after the removal: {late:?}");
}

#[tokio::test]
async fn a_non_member_can_neither_subscribe_to_nor_post_in_a_room() {
    let app = spawn_app().await;
    let (owner, member, stranger) = (app.new_user().await, app.new_user().await, app.new_user().await);
    let room = group(&app, &owner, &[&member]).await;
    let sent = post(&app.address, &owner, &room, json!({"text": "members only"})).await;
    let message_id = sent.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let token = &stranger.access_token;
    let attempts = [
        app.authed(Method::POST, &format!("/v1/rooms/{room}/messages"), token).json(&json!({"text": "let me in"})),
        app.authed(Method::GET, &format!("/v1/rooms/{room}/messages"), token),
        app.authed(Method::POST, &format!("/v1/rooms/{room}/read"), token).json(&json!({"message_id": message_id})),
        app.authed(Method::POST, &format!("/v1/rooms/{room}/members"), token).json(&json!({"user_id": stranger.id})),
        app.authed(Method::DELETE, &format!("/v1/rooms/{room}/members/{}", stranger.id), token),
    ];
    for attempt in attempts {
        assert_problem(attempt.send().await.unwrap(), 404).await;
    }
    let mut socket = connect(&app.address, token).await;
    let channel = format!("room:{room}");
    send(&mut socket, json!({"type": "subscribe", "channel": channel})).await;
    let refused = next(&mut socket).await;
    assert_eq!((refused["type"].as_str(), refused["code"].as_str()), (Some("error"), Some("not_found")));
    assert_eq!(refused["channel"], channel);
    send(&mut socket, json!({"type": "typing", "room": room})).await;
    assert_eq!(next(&mut socket).await["code"], "not_found");
    // A member who is not the owner may not add anyone; the owner may.
    let add = json!({"user_id": stranger.id});
    let path = format!("/v1/rooms/{room}/members");
    assert_problem(app.authed(Method::POST, &path, &member.access_token).json(&add).send().await.unwrap(), 403).await;
    assert_eq!(app.authed(Method::POST, &path, &owner.access_token).json(&add).send().await.unwrap().status(), 201);
    assert_eq!(app.authed(Method::POST, &path, &owner.access_token).json(&add).send().await.unwrap().status(), 200);
    assert_eq!(post(&app.address, &stranger, &room, json!({"text": "in now"})).await.status(), 201);
    // A member removes themself; then they are a stranger again.
    let leave = format!("/v1/rooms/{room}/members/{}", stranger.id);
    assert_eq!(app.authed(Method::DELETE, &leave, token).send().await.unwrap().status(), 204);
    assert_problem(post(&app.address, &stranger, &room, json!({"text": "still?"})).await, 404).await;
    // API clients do not chat.
    let client = app.create_client(&owner, json!({"name": "bot"})).await;
    let key = client["api_key"].as_str().unwrap();
    assert_problem(app.keyed(Method::GET, "/v1/rooms", key).send().await.unwrap(), 403).await;
}

#[tokio::test]
async fn unknown_users_and_bad_messages_are_422s_naming_the_field() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let nobody = uuid::Uuid::new_v4();
    let create = app.authed(Method::POST, "/v1/rooms", &user.access_token);
    let problem =
        assert_problem(create.json(&json!({"name": "x", "member_ids": [nobody]})).send().await.unwrap(), 422).await;
    assert_eq!(problem["errors"][0]["field"], "member_ids");
    let direct = app.authed(Method::POST, "/v1/rooms/direct", &user.access_token);
    let problem = assert_problem(direct.json(&json!({"user_id": nobody})).send().await.unwrap(), 422).await;
    assert_eq!(problem["errors"][0]["field"], "user_id");
    let create = app.authed(Method::POST, "/v1/rooms", &user.access_token);
    let problem =
        assert_problem(create.json(&json!({"name": "a\u{0}", "member_ids": []})).send().await.unwrap(), 422).await;
    assert_eq!(problem["errors"][0]["field"], "name");
    let room = group(&app, &user, &[]).await;
    for (body, field) in [
        (json!({"text": ""}), "text"),
        (json!({"text": "x".repeat(4001)}), "text"),
        (json!({"text": "a\u{0}b"}), "text"),
        (json!({"text": " \n "}), "text"),
        (json!({"text": "ok", "client_msg_id": ""}), "client_msg_id"),
    ] {
        let problem = assert_problem(post(&app.address, &user, &room, body).await, 422).await;
        assert_eq!(problem["errors"][0]["field"], field);
    }
    assert_eq!(post(&app.address, &user, &room, json!({"text": "é".repeat(4000)})).await.status(), 201);
}

/// How many answered 201 (the others must be 200), and how many distinct
/// ids they carry.
async fn created_and_distinct(responses: Vec<reqwest::Response>) -> (usize, usize) {
    let mut created = 0;
    let mut ids = std::collections::HashSet::new();
    for response in responses {
        match response.status().as_u16() {
            201 => created += 1,
            200 => {}
            other => panic!("unexpected status {other}"),
        }
        ids.insert(response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    (created, ids.len())
}

#[tokio::test]
async fn the_direct_room_of_a_pair_is_one_room_under_concurrent_requests_from_both_sides() {
    // No rate-limit policies: the per-user burst limit would refuse
    // most of the concurrent requests.
    let app = spawn_app_with_policies(&[], json!([])).await;
    let (alice, bob) = (app.new_user().await, app.new_user().await);
    let requests = (0..100).map(|n| {
        let (me, other) = if n % 2 == 0 { (&alice, &bob) } else { (&bob, &alice) };
        app.authed(Method::POST, "/v1/rooms/direct", &me.access_token).json(&json!({"user_id": other.id})).send()
    });
    let responses = futures::future::join_all(requests).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(created_and_distinct(responses).await, (1, 1));
    let rooms: i64 = sqlx::query_scalar("SELECT count(*) FROM rooms").fetch_one(&app.db).await.unwrap();
    assert_eq!(rooms, 1);
    let room: Value = json_of(&app, &bob, "/v1/rooms").await["rooms"][0].clone();
    assert_eq!(room["kind"], "direct");
    assert_eq!(room["member_ids"].as_array().unwrap().len(), 2);
}

async fn json_of(app: &TestApp, user: &TestUser, path: &str) -> Value {
    let response = app.authed(Method::GET, path, &user.access_token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_retry_with_the_same_client_msg_id_returns_the_first_message_and_publishes_nothing_new() {
    // No rate-limit policies: the per-user burst limit would refuse
    // most of the concurrent requests.
    let app = spawn_app_with_policies(&[], json!([])).await;
    let (alice, bob) = (app.new_user().await, app.new_user().await);
    let room = direct(&app, &alice, &bob).await;
    let mut watcher = connect(&app.address, &bob.access_token).await;
    subscribe(&mut watcher, &format!("room:{room}"), None).await;
    let body = json!({"text": "exactly once", "client_msg_id": "m-1"});
    let responses = futures::future::join_all((0..100).map(|_| post(&app.address, &alice, &room, body.clone()))).await;
    assert_eq!(created_and_distinct(responses).await, (1, 1));
    assert_eq!(stored_messages(&app, &room).await, 1);
    assert_eq!(history_len(&app, &room).await, 1);
    // One `message.sent` business event, written with the message.
    let sent: Vec<(String, Value)> =
        sqlx::query_as("SELECT stream, data FROM outbox WHERE kind = 'message.sent' AND data->>'room_id' = $1")
            .bind(&room)
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0, "sys:chat");
    assert_eq!(sent[0].1["sender_id"], alice.id.as_str());
    next_event(&mut watcher, "message.created").await;
    let later = frames_until_pong(&mut watcher).await;
    assert!(later.iter().all(|f| f["event"] != "message.created"), "{later:?}");
    // Another sender's same key is another message.
    assert_eq!(post(&app.address, &bob, &room, body).await.status(), 201);
}

#[tokio::test]
async fn unread_counts_follow_read_receipts_which_never_move_back() {
    let app = spawn_app().await;
    let (alice, bob) = (app.new_user().await, app.new_user().await);
    let room = direct(&app, &alice, &bob).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let sent = post(&app.address, &alice, &room, json!({"text": format!("m{n}")})).await;
        ids.push(sent.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    let listed = json_of(&app, &bob, "/v1/rooms").await;
    assert_eq!(listed["rooms"][0]["unread"], 3);
    assert_eq!(listed["rooms"][0]["last_message"]["text"], "m2");
    assert_eq!(json_of(&app, &alice, "/v1/rooms").await["rooms"][0]["unread"], 0, "one's own messages are read");
    let mut watcher = connect(&app.address, &alice.access_token).await;
    subscribe(&mut watcher, &format!("room:{room}"), None).await;
    let read = |id: &str| {
        app.authed(Method::POST, &format!("/v1/rooms/{room}/read"), &bob.access_token)
            .json(&json!({"message_id": id}))
            .send()
    };
    let state: Value = read(&ids[1]).await.unwrap().json().await.unwrap();
    assert_eq!(state, json!({"last_read_message_id": ids[1], "unread": 1}));
    let receipt = next_event(&mut watcher, "read").await;
    assert_eq!(receipt["data"]["user_id"], bob.id.as_str());
    assert_eq!(receipt["data"]["message_id"], ids[1].as_str());
    // An older message leaves the position, and publishes nothing.
    let state: Value = read(&ids[0]).await.unwrap().json().await.unwrap();
    assert_eq!(state, json!({"last_read_message_id": ids[1], "unread": 1}));
    assert!(frames_until_pong(&mut watcher).await.iter().all(|f| f["event"] != "read"));
    assert_eq!(json_of(&app, &bob, "/v1/rooms").await["rooms"][0]["unread"], 1);
    let problem = assert_problem(read(&uuid::Uuid::new_v4().to_string()).await.unwrap(), 422).await;
    assert_eq!(problem["errors"][0]["field"], "message_id");
}

#[tokio::test]
async fn history_pages_newest_first_with_before() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let room = group(&app, &user, &[]).await;
    for n in 0..5 {
        assert_eq!(post(&app.address, &user, &room, json!({"text": format!("m{n}")})).await.status(), 201);
    }
    let mut seen = Vec::new();
    let mut path = format!("/v1/rooms/{room}/messages?limit=2");
    loop {
        let page = json_of(&app, &user, &path).await;
        seen.extend(page["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap().to_owned()));
        match page["next_before"].as_str() {
            Some(before) => path = format!("/v1/rooms/{room}/messages?limit=2&before={before}"),
            None => break,
        }
    }
    assert_eq!(seen, ["m4", "m3", "m2", "m1", "m0"]);
    let bad = app.authed(Method::GET, &format!("/v1/rooms/{room}/messages?limit=0"), &user.access_token);
    assert_eq!(assert_problem(bad.send().await.unwrap(), 422).await["errors"][0]["field"], "limit");
}

#[tokio::test]
async fn a_member_with_no_live_connection_gets_a_notification_delivered_on_their_channel() {
    let app = spawn_app().await;
    let (alice, away, here) = (app.new_user().await, app.new_user().await, app.new_user().await);
    let room = group(&app, &alice, &[&away, &here]).await;
    let mut present = connect(&app.address, &here.access_token).await;
    subscribe(&mut present, &format!("room:{room}"), None).await;
    let sent = post(&app.address, &alice, &room, json!({"text": "are you there?"})).await;
    let message_id = sent.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    next_event(&mut present, "message.created").await;
    let inbox = json_of(&app, &away, "/v1/notifications").await;
    assert_eq!(inbox["notifications"].as_array().unwrap().len(), 1, "{inbox}");
    assert_eq!(inbox["notifications"][0]["data"]["message_id"], message_id.as_str());
    assert_eq!(inbox["notifications"][0]["body"], "are you there?");
    assert_eq!(json_of(&app, &here, "/v1/notifications").await["notifications"], json!([]), "online: no notification");
    assert_eq!(json_of(&app, &alice, "/v1/notifications").await["notifications"], json!([]));
    // Connecting later, the member finds it on their channel.
    let mut back = connect(&app.address, &away.access_token).await;
    subscribe(&mut back, &format!("user:{}", away.id), Some("0-0")).await;
    let delivered = next_event(&mut back, "notification").await;
    assert_eq!(delivered["data"]["data"]["message_id"], message_id.as_str());
}
