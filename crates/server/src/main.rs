//! The `switchyard` binary: parses the command line, loads settings, and
//! runs one command. Failures end the process with one line on stderr and a
//! non-zero exit code, never a panic backtrace.

use std::process::ExitCode;

use clap::Parser;
use secrecy::ExposeSecret;
use std::sync::Arc;
use switchyard::cli::{AdminCommand, Cli, Command};
use switchyard::config::Settings;
use switchyard::eventlog::consume::{consume, ConsumeSpec};

use switchyard::jobs::cron::CronScheduler;
use switchyard::startup::{self, Application, StartupError};
use switchyard::worker::jobs::QueueSelection;
use switchyard::{app, shutdown, telemetry, worker};

/// mimalloc: request handling allocates many small, short-lived buffers,
/// which glibc's allocator served at about a quarter of the CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "switchyard stopped");
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn username_from_email(email: &str) -> String {
    let local = email.split('@').next().unwrap_or_default();
    let cleaned: String =
        local.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')).take(32).collect();
    if cleaned.len() >= 3 {
        cleaned
    } else {
        format!("user-{cleaned}")
    }
}

fn describe_identity_error(error: switchyard::identity::service::IdentityError) -> String {
    use switchyard::identity::service::IdentityError;
    match error {
        IdentityError::Validation(errors) => {
            errors.iter().map(|e| format!("{} {}", e.field, e.message)).collect::<Vec<_>>().join("; ")
        }
        other => other.to_string(),
    }
}

async fn run(cli: Cli) -> Result<(), StartupError> {
    if let Command::Openapi = cli.command {
        let document = app::document();
        println!("{}", document.to_pretty_json().unwrap_or_default());
        return Ok(());
    }
    let settings = Settings::load(cli.config.as_deref())?;
    let to_stderr = matches!(cli.command, Command::Consume { .. });
    telemetry::logging::init_writing_to(&settings.rust_log, settings.log_format, to_stderr);
    if settings.jwt_secret_generated {
        tracing::warn!("JWT_SECRET is not set: using a random one for this run (dev profile only); tokens will not survive a restart");
    }
    let state = startup::connect(settings).await?;
    match cli.command {
        Command::Migrate => {
            startup::migrate(&state.db).await?;
            tracing::info!("migrations applied");
        }
        Command::Serve { no_migrate } => {
            if !no_migrate {
                startup::migrate(&state.db).await?;
            }
            if state.settings.analytics.cache_prewarm {
                // Beside serving, not before it: a slow warm-up must not
                // hold up readiness.
                let reports = state.reports.clone();
                tokio::spawn(async move {
                    match reports.prewarm(switchyard::analytics::reports::PREWARM_REPORTS).await {
                        Ok(warmed) => tracing::info!(warmed, "pre-warmed the most-missed usage reports"),
                        Err(error) => tracing::warn!(%error, "pre-warming usage reports failed"),
                    }
                });
            }
            let app = Application::bind(state).await?;
            tracing::info!(address = %app.local_addr(), "switchyard listening");
            app.run_until_stopped(shutdown::on_signal()).await?;
        }
        Command::Worker { queues, concurrency } => {
            let shutdown = shutdown::on_signal();
            let selection = queues.map_or(QueueSelection::All, QueueSelection::Named);
            let handlers = Arc::new(app::job_handlers(&state));
            let cron = CronScheduler::new(state.jobs.clone(), &app::cron_entries(&state.settings))
                .map_err(StartupError::Admin)?;
            let jobs = tokio::spawn(worker::jobs::run(
                state.clone(),
                handlers,
                cron,
                selection,
                concurrency,
                shutdown.clone(),
            ));
            let worker = worker::Worker::new(&state);
            let groups = tokio::spawn(worker::groups::run(state.clone(), worker.id().to_owned(), shutdown.clone()));
            worker.run(shutdown.clone()).await;
            let outcome = jobs.await;
            if let Err(error) = groups.await {
                tracing::warn!(%error, "a consumer group task failed");
            }
            state.db.close().await;
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Err(StartupError::Admin(format!("the job runner failed: {error}"))),
                Err(error) => return Err(StartupError::Admin(format!("the job runner failed: {error}"))),
            }
        }
        Command::Consume { stream, group, consumer, from } => {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
            let consumer = consumer.unwrap_or_else(|| format!("{host}-{}", std::process::id()));
            let spec = ConsumeSpec { stream, group, consumer, from };
            let redis_config = switchyard_kit::RedisConfig::new(state.settings.redis_url.expose_secret())
                .map_err(|e| StartupError::Admin(e.to_string()))?;
            let waiter = switchyard_kit::RedisConnection::connect(&redis_config)
                .await
                .map_err(|e| StartupError::Admin(format!("cannot connect to Redis: {e}")))?;
            let shutdown = shutdown::on_signal();
            let outcome =
                consume(state.redis.clone(), waiter, state.keys.clone(), &spec, std::io::stdout().lock(), shutdown)
                    .await;
            outcome.map_err(|e| StartupError::Admin(e.to_string()))?;
        }
        Command::Admin(AdminCommand::CreateUser { email, username, password_stdin: _, role }) => {
            startup::migrate(&state.db).await?;
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .map_err(|e| StartupError::Admin(format!("cannot read the password from stdin: {e}")))?;
            let password = password.trim_end_matches(['\r', '\n']);
            let username = username.unwrap_or_else(|| username_from_email(&email));
            match state.identity.create_user(&username, &email, password, role).await {
                Ok(user) => println!("created {} user {} ({})", role.as_str(), user.username, user.id),
                Err(error) => return Err(StartupError::Admin(describe_identity_error(error))),
            }
        }
        Command::Openapi => {}
    }
    Ok(())
}
