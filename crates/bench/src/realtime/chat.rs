//! `switchyard-bench chat`: real chat rooms end to end. Users are signed
//! up, rooms of 2–10 members created, every member connected to
//! `/v1/realtime/ws` with their own access token and subscribed to
//! `room:{id}`; messages are posted with `POST /v1/rooms/{id}/messages` (so
//! each one is stored in PostgreSQL, written to the outbox and published)
//! by senders taking turns among each room's members, at a paced rate.
//! Latency runs from just before the POST to receipt by each member (the
//! sender's own connection included); the send time is in the text.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use clap::Args;
use futures::{StreamExt as _, TryStreamExt as _};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::clients::{await_acks, chat_text, Credential, Pacer, Shared, Subscriber};
use super::{conclude, groups, open_window, row, table, Shape, Timing};
use crate::scenarios::account::Account;
use crate::scenarios::Context;

#[derive(Debug, Args)]
pub struct ChatArgs {
    /// Base URL of the service (http only).
    #[arg(long, value_name = "URL", env = "SWITCHYARD_BENCH_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Room memberships, each one WebSocket connection.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(2..=100_000))]
    clients: u64,
    /// Users the members are drawn from (at least 10: a room holds up to
    /// 10 distinct members). Each is signed up and logged in.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(10..=10_000))]
    users: u64,
    /// Concurrent HTTP senders.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1000))]
    senders: u64,
    /// Target deliveries per second, comma-separated: one step each (the
    /// message rate is the target divided by the mean room size).
    #[arg(long, value_delimiter = ',', default_value = "5000,10000")]
    rates: Vec<u64>,
    #[command(flatten)]
    timing: Timing,
    /// Worker threads of the load generator's runtime (default: one per CPU).
    #[arg(long, value_name = "N")]
    pub threads: Option<std::num::NonZeroUsize>,
}

/// A signed-in member.
#[derive(Debug, Clone)]
struct User {
    id: String,
    token: String,
}

/// A room and its members (indexes into the users).
#[derive(Debug)]
struct Room {
    id: String,
    members: Vec<usize>,
}

async fn sign_up(ctx: &Context, run: &str, n: u64) -> Result<User> {
    let (email, password) = (format!("chat-{run}-{n}@example.com"), format!("chat-password-{run}-{n}"));
    let signup = json!({"username": format!("chat-{run}-{n}"), "email": email, "password": password});
    let created: Value =
        ctx.client.post(ctx.url("/v1/auth/signup")).json(&signup).send().await?.error_for_status()?.json().await?;
    let login = Account::log_in(ctx, &email, &password).await?;
    Ok(User {
        id: created["user"]["id"].as_str().context("signup returned no user id")?.to_owned(),
        token: login.access_token,
    })
}

async fn create_room(ctx: &Context, users: &[User], index: usize, members: Vec<usize>) -> Result<Room> {
    let others: Vec<&str> = members[1..].iter().map(|&m| users[m].id.as_str()).collect();
    let created: Value = ctx
        .client
        .post(ctx.url("/v1/rooms"))
        .bearer_auth(&users[members[0]].token)
        .json(&json!({"name": format!("bench-{index}"), "member_ids": others}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(Room { id: created["id"].as_str().context("no room id")?.to_owned(), members })
}

pub async fn run(args: ChatArgs) -> Result<()> {
    switchyard::tls::install_tls_provider();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let ctx = Context::new(client, &crate::validate_url(&args.url)?, 1)?;
    let run = format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis());
    let clients = usize::try_from(args.clients)?;

    eprintln!("signing up {} users", args.users);
    let users: Vec<User> =
        futures::stream::iter(0..args.users).map(|n| sign_up(&ctx, &run, n)).buffered(4).try_collect().await?;
    // Members are consecutive users (wrapping), so a room's are distinct.
    let mut next_user = 0;
    let mut plans = Vec::new();
    for (index, size) in groups(Shape::Rooms, clients).into_iter().enumerate() {
        let members: Vec<usize> = (0..size).map(|k| (next_user + k) % users.len()).collect();
        next_user = (next_user + size) % users.len();
        plans.push((index, members));
    }
    if plans.iter().any(|(_, members)| members.len() > users.len()) {
        bail!("a room has more members than there are users");
    }
    eprintln!("creating {} rooms", plans.len());
    let rooms: Vec<Room> = futures::stream::iter(plans)
        .map(|(index, members)| create_room(&ctx, &users, index, members))
        .buffered(8)
        .try_collect()
        .await?;

    let shared = Arc::new(Shared::new(args.rates.len()));
    eprintln!("connecting {clients} members");
    let memberships: Vec<(&Room, usize)> =
        rooms.iter().flat_map(|room| room.members.iter().map(move |&m| (room, m))).collect();
    let credentials: Vec<Credential> = users.iter().map(|user| Credential::Bearer(user.token.clone())).collect();
    let mut subscribers: Vec<Subscriber> = futures::stream::iter(&memberships)
        .map(|&(_, member)| Subscriber::connect(&ctx.base_url, &credentials[member], &shared))
        .buffered(64)
        .try_collect()
        .await?;
    let mut acks = 0;
    for (subscriber, (room, _)) in subscribers.iter_mut().zip(&memberships) {
        acks += subscriber.subscribe(&format!("room:{}", room.id)).await?;
    }
    await_acks(&shared, acks, Duration::from_secs(60)).await?;

    let users = Arc::new(users);
    let rooms = Arc::new(rooms);
    let mut results = Vec::new();
    for (step, &target) in args.rates.iter().enumerate() {
        let message_rate = target as f64 * rooms.len() as f64 / clients as f64;
        open_window(args.timing, &shared, &subscribers);
        let stop = CancellationToken::new();
        let senders: Vec<_> = (0..args.senders as usize)
            .map(|offset| {
                let sender = Sender {
                    ctx: ctx.clone(),
                    users: users.clone(),
                    rooms: rooms.clone(),
                    shared: shared.clone(),
                    step,
                    rate: message_rate / args.senders as f64,
                    offset,
                    stride: args.senders as usize,
                };
                tokio::spawn(sender.run(stop.clone()))
            })
            .collect();
        tokio::time::sleep(args.timing.warmup + args.timing.duration).await;
        stop.cancel();
        for sender in senders {
            sender.await.context("a sender")??;
        }
        let result = conclude(args.timing, step, Shape::Chat, target, rooms.len(), &subscribers, &shared).await?;
        eprintln!("{}", row(&result));
        results.push(result);
    }
    println!("{}", table(&results));
    println!(
        "connections closed by the server: {}; error frames or failed posts: {}",
        shared.closed.load(Ordering::Relaxed),
        shared.errors.load(Ordering::Relaxed)
    );
    if let Some(problem) = shared.first_problem.lock().ok().and_then(|p| p.clone()) {
        println!("first problem: {problem}");
    }
    Ok(())
}

/// One HTTP sender: posts what is due every few milliseconds, one request
/// at a time, cycling through its share of the rooms; in each room the
/// members take turns.
struct Sender {
    ctx: Context,
    users: Arc<Vec<User>>,
    rooms: Arc<Vec<Room>>,
    shared: Arc<Shared>,
    step: usize,
    rate: f64,
    offset: usize,
    stride: usize,
}

impl Sender {
    async fn run(self, stop: CancellationToken) -> Result<()> {
        let mut turn = 0usize;
        let mut next = self.offset % self.rooms.len();
        let mut pacer = Pacer::new(self.rate);
        while let Some(due) = pacer.due(&stop).await {
            for _ in 0..due {
                if stop.is_cancelled() {
                    break;
                }
                let room = &self.rooms[next];
                next = (next + self.stride) % self.rooms.len();
                let member = room.members[turn % room.members.len()];
                turn += 1;
                let response = self
                    .ctx
                    .client
                    .post(self.ctx.url(&format!("/v1/rooms/{}/messages", room.id)))
                    .bearer_auth(&self.users[member].token)
                    .json(&json!({"text": chat_text(self.step)}))
                    .send()
                    .await;
                match response {
                    Ok(response) if response.status() == 201 => {
                        self.shared.published[self.step].fetch_add(1, Ordering::Relaxed);
                        self.shared.expected[self.step].fetch_add(room.members.len() as u64, Ordering::Relaxed);
                    }
                    Ok(response) => {
                        self.shared.errors.fetch_add(1, Ordering::Relaxed);
                        self.shared.problem(format!("POST message answered {}", response.status()));
                    }
                    Err(error) => {
                        self.shared.errors.fetch_add(1, Ordering::Relaxed);
                        self.shared.problem(format!("POST message failed: {error}"));
                    }
                }
            }
        }
        Ok(())
    }
}
