//! The `loadtest` phase: seed 004's `loadTest.js N DELAY` through the real
//! routes (see the module documentation of `events`), then the count of
//! every event in the event log.

use std::collections::BTreeMap;

use anyhow::{ensure, Result};
use chrono::Utc;
use hdrhistogram::Histogram;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::log_count::wait_for;
use super::session::{Auth, Session};
use super::{histogram, percentiles_ms, record, run_tag, EventsArgs};

/// What one generated event is: the route it goes through and the event
/// (stream as the account names it, type) it should produce.
#[derive(Debug, Clone, PartialEq)]
struct Step {
    label: &'static str,
    method: Method,
    path: String,
    auth: Auth,
    body: Value,
    expect: StatusCode,
    stream: &'static str,
    kind: &'static str,
}

/// loadTest.js's priorities (its `medium` is the API's `normal`).
const PRIORITIES: [&str; 3] = ["low", "normal", "high"];

/// Event `i` of the run, as loadTest.js chooses it (`i % 4`, and the log
/// level `i % 3`).
fn step(i: u64, tag: &str, room: &str) -> Step {
    let now = Utc::now().to_rfc3339();
    match i % 4 {
        0 => Step {
            label: "user.created (POST /v1/auth/signup)",
            method: Method::POST,
            path: "/v1/auth/signup".into(),
            auth: Auth::None,
            body: json!({"username": format!("lt{tag}u{i}"), "email": format!("lt{tag}u{i}@example.com"),
                         "password": format!("load-test-{tag}-{i}")}),
            expect: StatusCode::CREATED,
            stream: "sys:users",
            kind: "user.created",
        },
        1 => Step {
            label: "message.sent (POST /v1/rooms/{id}/messages)",
            method: Method::POST,
            path: format!("/v1/rooms/{room}/messages"),
            auth: Auth::Session,
            body: json!({"text": format!("Test message {i}")}),
            expect: StatusCode::CREATED,
            stream: "sys:chat",
            kind: "message.sent",
        },
        2 => Step {
            label: "task.created (POST /v1/tasks)",
            method: Method::POST,
            path: "/v1/tasks".into(),
            auth: Auth::Key,
            body: json!({"title": format!("Task {i}"), "description": format!("Description for task {i}"),
                         "priority": PRIORITIES[(i % 3) as usize]}),
            expect: StatusCode::CREATED,
            stream: "tasks",
            kind: "task.created",
        },
        _ => {
            let context = json!({"iteration": i, "timestamp": now});
            match i % 3 {
                1 => Step {
                    label: "system.warn (POST /v1/events, custom)",
                    method: Method::POST,
                    path: "/v1/events".into(),
                    auth: Auth::Key,
                    body: json!({"stream": "logs", "type": "system.warn",
                                 "data": {"message": format!("Load test message {i}"), "context": context}}),
                    expect: StatusCode::CREATED,
                    stream: "logs",
                    kind: "system.warn",
                },
                level => Step {
                    label: if level == 0 { "system.info (POST /v1/logs)" } else { "system.error (POST /v1/logs)" },
                    method: Method::POST,
                    path: "/v1/logs".into(),
                    auth: Auth::Key,
                    body: json!({"level": if level == 0 { "info" } else { "error" },
                                 "message": format!("Load test message {i}"), "context": context}),
                    expect: StatusCode::CREATED,
                    stream: "logs",
                    kind: if level == 0 { "system.info" } else { "system.error" },
                },
            }
        }
    }
}

/// Per route: requests, failures, latency.
#[derive(Debug)]
struct RouteStats {
    sent: u64,
    failed: u64,
    first_failure: Option<String>,
    latency: Histogram<u64>,
}

pub async fn run(session: &Session, args: &EventsArgs) -> Result<()> {
    let tag = run_tag();
    session.persist("tasks").await?;
    session.persist("logs").await?;
    let room = session
        .expect(
            Method::POST,
            "/v1/rooms",
            Auth::Session,
            Some(&json!({"name": "general", "member_ids": []})),
            StatusCode::CREATED,
        )
        .await?;
    let room = room["id"].as_str().unwrap_or_default().to_owned();
    println!(
        "## loadtest: {} events with {} delay (seed 004's `loadTest.js {} {}`)",
        args.events,
        humantime::format_duration(args.delay),
        args.events,
        args.delay.as_millis()
    );
    let from = Utc::now();
    let started = Instant::now();
    let mut routes: BTreeMap<&'static str, RouteStats> = BTreeMap::new();
    let mut expected: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut generated = 0u64;
    let mut last_done = started;
    for i in 0..args.events {
        let step = step(i, &tag, &room);
        let sent = Instant::now();
        let answer = session.call(step.method.clone(), &step.path, step.auth, Some(&step.body)).await;
        last_done = Instant::now();
        let took = u64::try_from((last_done - sent).as_micros()).unwrap_or(u64::MAX);
        let stats = routes.entry(step.label).or_insert_with(|| RouteStats {
            sent: 0,
            failed: 0,
            first_failure: None,
            latency: histogram(),
        });
        stats.sent += 1;
        match answer {
            Ok((status, _)) if status == step.expect => {
                record(&mut stats.latency, took);
                generated += 1;
                *expected.entry(step.stream.to_owned()).or_default().entry(step.kind.to_owned()).or_default() += 1;
            }
            other => {
                stats.failed += 1;
                let failure = match other {
                    Ok((status, body)) => format!("{status}: {body}"),
                    Err(e) => format!("{e:#}"),
                };
                stats.first_failure.get_or_insert(failure);
            }
        }
        if i % 100 == 0 {
            eprintln!("generated {}/{} events", i + 1, args.events);
        }
        if !args.delay.is_zero() {
            tokio::time::sleep(args.delay).await;
        }
    }
    let elapsed = started.elapsed();
    println!(
        "generated {generated} of {} events in {:.1} s ({:.1} events/s with the delay), {} failed",
        args.events,
        elapsed.as_secs_f64(),
        generated as f64 / elapsed.as_secs_f64(),
        args.events - generated
    );
    println!();
    println!("| route | requests | failed | latency p50 / p99 / max (ms) |");
    println!("| --- | --- | --- | --- |");
    for (label, stats) in &routes {
        println!("| {label} | {} | {} | {} |", stats.sent, stats.failed, percentiles_ms(&stats.latency));
        if let Some(failure) = &stats.first_failure {
            eprintln!("first failure of {label}: {failure}");
        }
    }

    let (counted, _) = wait_for(session, &expected, from, args.settle).await?;
    let waited = last_done.elapsed();
    println!();
    println!("In the event log (`GET /v1/events:processed`, counted page by page):");
    println!();
    println!("| stream | type | published | in the event log | repeated ids |");
    println!("| --- | --- | --- | --- | --- |");
    let mut complete = true;
    for (stream, kinds) in &expected {
        let found = &counted[stream];
        for (kind, n) in kinds {
            let got = found.by_type.get(kind).copied().unwrap_or(0);
            complete &= got == *n && found.repeated == 0;
            println!("| {stream} | {kind} | {n} | {got} | {} |", found.repeated);
        }
    }
    println!();
    println!(
        "every event in the event log {:.2} s after the last request: {}",
        waited.as_secs_f64(),
        if complete { "yes" } else { "NO" }
    );
    println!();
    ensure!(complete, "the event log does not hold exactly the events published");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_cycle_as_the_load_test_does() {
        let kinds: Vec<&str> = (0..12).map(|i| step(i, "t", "r").kind).collect();
        assert_eq!(
            kinds,
            [
                "user.created",
                "message.sent",
                "task.created",
                "system.info",
                "user.created",
                "message.sent",
                "task.created",
                "system.warn",
                "user.created",
                "message.sent",
                "task.created",
                "system.error",
            ]
        );
        assert_eq!(step(3, "t", "r").path, "/v1/logs");
        assert_eq!(step(7, "t", "r").path, "/v1/events");
        assert_eq!(step(1, "t", "room").path, "/v1/rooms/room/messages");
    }
}
