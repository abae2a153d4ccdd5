//! Counting what reached the event log through the API
//! (`GET /v1/events:processed`, every page): events per type of one
//! stream since a time, each id counted once, and how many ids came back
//! more than once (the log is idempotent by (stream, id), so none should).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use anyhow::{Context as _, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use http::{Method, StatusCode};
use tokio::time::Instant;

use super::session::{Auth, Session};

/// What the event log holds of one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counted {
    /// Distinct events per type.
    pub by_type: BTreeMap<String, u64>,
    /// Rows whose id was seen before (should stay 0).
    pub repeated: u64,
}

impl Counted {
    /// Whether at least `expected` events of each type are there.
    pub fn covers(&self, expected: &BTreeMap<String, u64>) -> bool {
        expected.iter().all(|(kind, n)| self.by_type.get(kind).copied().unwrap_or(0) >= *n)
    }
}

/// Query-string escaping of the few characters a stream name or a time may hold.
fn escape(value: &str) -> String {
    value.replace('%', "%25").replace(':', "%3A").replace('+', "%2B").replace('/', "%2F")
}

/// Counts the events of `stream` (as the caller names it: `tasks`,
/// `sys:users`) that happened at or after `from`.
pub async fn count(session: &Session, stream: &str, from: DateTime<Utc>) -> Result<Counted> {
    let from = escape(&from.to_rfc3339_opts(SecondsFormat::Millis, true));
    let mut counted = Counted::default();
    let mut seen = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/events:processed?stream={}&from={from}&limit=1000", escape(stream));
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page = session.expect(Method::GET, &path, Auth::Key, None, StatusCode::OK).await?;
        for event in page["events"].as_array().context("no events in the page")? {
            let id = event["id"].as_str().unwrap_or_default().to_owned();
            if seen.insert(id) {
                *counted.by_type.entry(event["type"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
            } else {
                counted.repeated += 1;
            }
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(counted),
        }
    }
}

/// Counts every `(stream, expected per type)` until each stream holds
/// what is expected or `settle` has passed; the last counts and how long
/// it took.
pub async fn wait_for(
    session: &Session,
    expected: &BTreeMap<String, BTreeMap<String, u64>>,
    from: DateTime<Utc>,
    settle: Duration,
) -> Result<(BTreeMap<String, Counted>, Duration)> {
    let started = Instant::now();
    loop {
        let mut all = BTreeMap::new();
        for stream in expected.keys() {
            all.insert(stream.clone(), count(session, stream, from).await?);
        }
        let done = expected.iter().all(|(stream, kinds)| all[stream].covers(kinds));
        if done || started.elapsed() >= settle {
            return Ok((all, started.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_times_are_escaped_for_the_query() {
        assert_eq!(escape("sys:users"), "sys%3Ausers");
        assert_eq!(escape("2026-12-03T10:00:00.000Z"), "2026-12-03T10%3A00%3A00.000Z");
        assert_eq!(escape("2026-12-03T10:00:00+01:00"), "2026-12-03T10%3A00%3A00%2B01%3A00");
    }

    #[test]
    fn covers_needs_every_type() {
        let counted = Counted { by_type: BTreeMap::from([("a".to_owned(), 2)]), repeated: 0 };
        assert!(counted.covers(&BTreeMap::from([("a".to_owned(), 2)])));
        assert!(!counted.covers(&BTreeMap::from([("a".to_owned(), 3)])));
        assert!(!counted.covers(&BTreeMap::from([("b".to_owned(), 1)])));
    }
}
