//! The command line: `switchyard serve | worker | consume | migrate | openapi`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// switchyard: backend infrastructure (identity, rate limiting, jobs,
/// streams, realtime, locks, caching) on Redis and PostgreSQL.
///
/// Settings come from the environment (DATABASE_URL, REDIS_URL, HOST, PORT,
/// JWT_SECRET, RUST_LOG, SWITCHYARD_ENV, ...) and optionally a TOML file;
/// the environment wins. See the README for every setting.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about, long_about)]
pub struct Cli {
    /// A TOML file with settings (keys are the lower-case variable names,
    /// e.g. `port = 8080`). Environment variables override it.
    #[arg(long, short = 'c', global = true, env = "SWITCHYARD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (applies pending migrations first).
    Serve {
        /// Do not apply pending migrations at start-up (for deployments
        /// that run `switchyard migrate` as a separate step).
        #[arg(long)]
        no_migrate: bool,
    },
    /// Run a background worker until SIGTERM/SIGINT: it works the given
    /// job queues and repairs actions whose side effects were lost.
    Worker {
        /// Comma-separated queues to work; without it, every registered
        /// queue (new ones are picked up as they appear).
        #[arg(long, value_delimiter = ',')]
        queues: Option<Vec<String>>,
        /// Jobs in flight per queue.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// Consume a stream as one consumer of a group until SIGTERM/SIGINT:
    /// prints one JSON line per event ({"stream","id","type","data",
    /// "deliveries"}) and acknowledges it once printed.
    Consume {
        /// The stream: an operator stream (`sys:users`) or an account's
        /// (`user:<id>/orders`).
        #[arg(long)]
        stream: String,
        /// The consumer group; created when missing.
        #[arg(long)]
        group: String,
        /// The consumer's name (default: `<host>-<pid>`). Events it read
        /// and did not acknowledge stay pending for this name.
        #[arg(long)]
        consumer: Option<String>,
        /// Where a group created now starts: `$` (only new events), `0`
        /// (every event kept) or an event id (the events after it). An
        /// existing group keeps its position.
        #[arg(long, default_value = "$")]
        from: String,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document (JSON) to stdout and exit.
    Openapi,
    /// Administrative tasks.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a user (e.g. the first admin). The password is read from
    /// standard input, so it never appears in the process list or history.
    CreateUser {
        /// The user's email address.
        #[arg(long)]
        email: String,
        /// The username (3-32 of [a-zA-Z0-9_.-]); defaults to the part of
        /// the email before '@', cleaned up.
        #[arg(long)]
        username: Option<String>,
        /// Read the password from standard input (required: passwords are
        /// never taken as arguments).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// The role to give.
        #[arg(long, value_enum, default_value = "user")]
        role: crate::domain::Role,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn consume_starts_new_groups_at_the_end_by_default() {
        let cli = Cli::parse_from(["switchyard", "consume", "--stream", "sys:users", "--group", "audit"]);
        assert!(matches!(cli.command, Command::Consume { ref from, consumer: None, .. } if from == "$"));
    }

    #[test]
    fn serve_accepts_no_migrate() {
        let cli = Cli::parse_from(["switchyard", "serve", "--no-migrate"]);
        assert!(matches!(cli.command, Command::Serve { no_migrate: true }));
    }
}
