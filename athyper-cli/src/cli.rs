//! What the command line accepts: options, subcommands and their help.

use std::net::SocketAddr;
use std::time::Duration;

use athyper::queue::{Finished, JobState};
use clap::{Args, Parser, Subcommand, ValueEnum};

const MAIN_HELP: &str = "\
Examples:
  athyper queues
  athyper jobs emails --state failed
  athyper retry emails --all-failed
  ATHYPER_REDIS_URL=redis://:secret@10.0.0.5:6379 athyper watch

Environment:
  ATHYPER_REDIS_URL, ATHYPER_REDIS_PREFIX
      as --redis-url and --prefix; several comma-separated URLs mean a cluster
  ATHYPER_REDIS_CLUSTER=true
      a cluster reached through one URL
  ATHYPER_REDIS_CA_CERT=FILE
      the PEM file of the CA that signed a rediss:// server's certificate
  ATHYPER_REDIS_TIMEOUT, ATHYPER_REDIS_CONNECT_TIMEOUT
      how long an operation, a connection attempt may take (default 2s, 1s)
  NO_COLOR
      no colour, when set and not empty

Exit codes:
  0  success
  1  failure: Redis unreachable or failing, or a named job could not be acted on
  2  usage error: bad arguments, options or environment
  3  the queue, or a named job, does not exist";

const QUEUES_HELP: &str = "\
Examples:
  athyper queues
  athyper queues --json | jq '.[] | select(.failed > 0) | .name'";

const JOBS_HELP: &str = "\
Examples:
  athyper jobs emails
  athyper jobs emails --state failed --limit 50
  athyper jobs emails --state failed --name send_email --offset 50
  athyper jobs emails --state failed --json | jq -r '.jobs[].id'

A page that ends before the last job says where the next one starts
(`--offset N`); in JSON that is the field `next`.";

const JOB_HELP: &str = "\
Examples:
  athyper job emails 01J9Z3K8Q4
  athyper job emails 01J9Z3K8Q4 --json | jq .errors";

const RETRY_HELP: &str = "\
Examples:
  athyper retry emails 01J9Z3K8Q4 01J9Z3K8Q5
  athyper retry emails --all-failed
  athyper jobs emails --state failed --name send_email --json | jq -r '.jobs[].id' | xargs athyper retry emails

Only failed jobs are retried, with fresh attempts. Exit code 3 if a named job
does not exist, 1 if one is not failed; the others are retried all the same.";

const REMOVE_HELP: &str = "\
Examples:
  athyper remove emails 01J9Z3K8Q4
  athyper remove emails 01J9Z3K8Q4 01J9Z3K8Q5 --json

A running job is left alone. Exit code 3 if a named job does not exist, 1 if
one is running; the others are removed all the same.";

const CANCEL_HELP: &str = "\
Examples:
  athyper cancel exports 01J9Z3K8Q4
  athyper cancel exports 01J9Z3K8Q4 01J9Z3K8Q5 --json

A waiting or delayed job is cancelled at once. A running one has its
cancellation token fired where it runs and ends cancelled when its attempt
ends. Exit code 3 if a named job does not exist, 1 if one had already
ended; the others are cancelled all the same.";

const PROMOTE_HELP: &str = "\
Examples:
  athyper promote emails 01J9Z3K8Q4

Makes a delayed job (scheduled, or waiting out a retry's backoff) due now.";

const PAUSE_HELP: &str = "\
Examples:
  athyper pause emails

Workers finish what they run and take nothing new until `athyper resume`.";

const RESUME_HELP: &str = "\
Examples:
  athyper resume emails";

const CLEAN_HELP: &str = "\
Examples:
  athyper clean emails --state completed --older-than 1h
  athyper clean emails --state failed --older-than 7days

Durations: 30s, 15m, 1h, 7days, or combined (1h 30m).";

const WATCH_HELP: &str = "\
Examples:
  athyper watch
  athyper watch emails reports --interval 5s
  athyper watch --json --count 1

On a terminal the view is redrawn in place; in a pipe one snapshot is printed
per interval (one JSON line with --json). COMPLETED/MIN and FAILED/MIN are
from the backend's per-minute throughput over the last one to two minutes;
WAITING/S is the change of the waiting count since the previous refresh.";

const WORKERS_HELP: &str = "\
Examples:
  athyper workers emails
  athyper workers emails --json | jq '.[].running | length'";

const SCHEDULES_HELP: &str = "\
Examples:
  athyper schedules reports
  athyper schedules reports --json | jq -r '.[] | \"\\(.id) \\(.next_at)\"'

A schedule lives in Redis until removed: a handler whose `#[job(cron = ...)]`
was deleted leaves its schedule behind, listed here.";

const DASHBOARD_HELP: &str = "\
Examples:
  athyper dashboard
  athyper dashboard --bind 127.0.0.1:0
  athyper dashboard --bind 0.0.0.0:7070

Read-only unless ATHYPER_ADMIN_TOKEN is set (16 characters or more): then
signing in with it, or sending it as `Authorization: Bearer <token>`,
enables retry, remove, promote, clean, pause and resume.
ATHYPER_ADMIN_SHOW_PAYLOADS=false hides payloads and results;
ATHYPER_TRACE_URL (such as https://grafana.example/explore?traceId={trace_id})
links each job to its trace.

Prints the address it serves on, then serves until Ctrl-C (or SIGTERM).";

/// The operator's command line for athyper queues in Redis.
#[derive(Debug, Parser)]
#[command(name = "athyper", version, after_help = MAIN_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Redis to use: redis://[:PASSWORD@]HOST:PORT[/DB], rediss:// for TLS,
    /// several comma-separated URLs for a cluster [default:
    /// redis://127.0.0.1:6379]
    #[arg(
        long,
        global = true,
        env = "ATHYPER_REDIS_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub redis_url: Option<String>,

    /// The first part of every key [default: athyper]
    #[arg(
        long,
        global = true,
        env = "ATHYPER_REDIS_PREFIX",
        hide_env_values = true,
        value_name = "PREFIX"
    )]
    pub prefix: Option<String>,

    /// Print JSON for scripts instead of tables
    #[arg(long, global = true)]
    pub json: bool,

    /// When to colour the output
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = ColorChoice::Auto,
        value_name = "WHEN"
    )]
    pub color: ColorChoice,
}

/// When to colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set
    Auto,
    /// Always
    Always,
    /// Never
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every queue with its counts per state
    #[command(after_help = QUEUES_HELP)]
    Queues,

    /// A page of a queue's jobs in one state
    #[command(after_help = JOBS_HELP)]
    Jobs(JobsArgs),

    /// One job in detail: payload, every attempt's error, progress, trace id, times
    #[command(after_help = JOB_HELP)]
    Job {
        /// The queue
        queue: String,
        /// The job's id
        id: String,
    },

    /// Requeue failed jobs with fresh attempts
    #[command(after_help = RETRY_HELP)]
    Retry {
        /// The queue
        queue: String,
        /// The failed jobs' ids
        #[arg(required_unless_present = "all_failed", conflicts_with = "all_failed")]
        ids: Vec<String>,
        /// Every failed job of the queue, in steps of 1000
        #[arg(long)]
        all_failed: bool,
    },

    /// Remove jobs that are not running
    #[command(after_help = REMOVE_HELP)]
    Remove {
        /// The queue
        queue: String,
        /// The jobs' ids
        #[arg(required = true)]
        ids: Vec<String>,
    },

    /// Cancel jobs, running ones included
    #[command(after_help = CANCEL_HELP)]
    Cancel {
        /// The queue
        queue: String,
        /// The jobs' ids
        #[arg(required = true)]
        ids: Vec<String>,
    },

    /// Make a delayed job due now
    #[command(after_help = PROMOTE_HELP)]
    Promote {
        /// The queue
        queue: String,
        /// The delayed job's id
        id: String,
    },

    /// Stop handing out a queue's jobs
    #[command(after_help = PAUSE_HELP)]
    Pause {
        /// The queue
        queue: String,
    },

    /// Hand out a paused queue's jobs again
    #[command(after_help = RESUME_HELP)]
    Resume {
        /// The queue
        queue: String,
    },

    /// Remove finished jobs older than an age, in steps of 1000
    #[command(after_help = CLEAN_HELP)]
    Clean {
        /// The queue
        queue: String,
        /// Which finished jobs
        #[arg(long, value_enum, value_name = "STATE")]
        state: FinishedArg,
        /// Only jobs that finished longer ago than this (30s, 15m, 1h, 7days)
        #[arg(long, value_parser = parse_duration, value_name = "AGE")]
        older_than: Duration,
    },

    /// Live counts and rates of every queue, refreshed in place
    #[command(after_help = WATCH_HELP)]
    Watch {
        /// Only these queues [default: every queue]
        queues: Vec<String>,
        /// Time between refreshes (at least 100ms)
        #[arg(long, default_value = "2s", value_parser = parse_interval, value_name = "DURATION")]
        interval: Duration,
        /// Stop after this many refreshes [default: run until Ctrl-C]
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..), value_name = "N")]
        count: Option<u64>,
    },

    /// A queue's workers, with their leases and running jobs
    #[command(after_help = WORKERS_HELP)]
    Workers {
        /// The queue
        queue: String,
    },

    /// A queue's recurring jobs, with their next and last ticks
    #[command(after_help = SCHEDULES_HELP)]
    Schedules {
        /// The queue
        queue: String,
    },

    /// Serve the web dashboard against this Redis
    #[command(after_help = DASHBOARD_HELP)]
    Dashboard {
        /// Address to listen on; port 0 picks a free one
        #[arg(long, default_value = "127.0.0.1:7070", value_name = "ADDR")]
        bind: SocketAddr,
    },
}

#[derive(Debug, Args)]
pub struct JobsArgs {
    /// The queue
    pub queue: String,
    /// Which jobs
    #[arg(long, value_enum, default_value_t = StateArg::Waiting, value_name = "STATE")]
    pub state: StateArg,
    /// Only jobs of this handler
    #[arg(long, value_name = "HANDLER")]
    pub name: Option<String>,
    /// The most jobs to show (1 to 10000)
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000), value_name = "N")]
    pub limit: u64,
    /// Where the page starts
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub offset: usize,
}

/// A job state, as the command line spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StateArg {
    /// Due and waiting for a worker
    Waiting,
    /// Scheduled for later, or waiting out a retry's backoff
    Delayed,
    /// A flow's parent waiting for its children
    WaitingChildren,
    /// Running on a worker
    Active,
    /// Finished successfully
    Completed,
    /// Failed for good
    Failed,
    /// Cancelled
    Cancelled,
}

impl From<StateArg> for JobState {
    fn from(state: StateArg) -> JobState {
        match state {
            StateArg::Waiting => JobState::Waiting,
            StateArg::Delayed => JobState::Delayed,
            StateArg::WaitingChildren => JobState::WaitingChildren,
            StateArg::Active => JobState::Active,
            StateArg::Completed => JobState::Completed,
            StateArg::Failed => JobState::Failed,
            StateArg::Cancelled => JobState::Cancelled,
        }
    }
}

/// A finished state, as the command line spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FinishedArg {
    /// Jobs that completed
    Completed,
    /// Jobs that failed for good
    Failed,
    /// Jobs that were cancelled
    Cancelled,
}

impl From<FinishedArg> for Finished {
    fn from(state: FinishedArg) -> Finished {
        match state {
            FinishedArg::Completed => Finished::Completed,
            FinishedArg::Failed => Finished::Failed,
            FinishedArg::Cancelled => Finished::Cancelled,
        }
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{e}; write a duration such as 30s, 15m, 1h or 7days"))
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let interval = parse_duration(text)?;
    if interval < Duration::from_millis(100) {
        return Err("must be at least 100ms".to_owned());
    }
    Ok(interval)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_subcommand_has_examples() {
        for sub in Cli::command().get_subcommands() {
            let help = sub.get_after_help().map(ToString::to_string);
            assert!(
                help.is_some_and(|h| h.starts_with("Examples:\n  athyper ")),
                "`{}` has no examples",
                sub.get_name()
            );
        }
    }

    #[test]
    fn durations_name_the_fix() {
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        let err = parse_duration("soon").unwrap_err();
        assert!(
            err.ends_with("write a duration such as 30s, 15m, 1h or 7days"),
            "{err}"
        );
        assert_eq!(
            parse_interval("10ms").unwrap_err(),
            "must be at least 100ms"
        );
    }

    #[test]
    fn retry_takes_ids_or_all_failed_but_not_both() {
        assert!(Cli::try_parse_from(["athyper", "retry", "q", "a", "b"]).is_ok());
        assert!(Cli::try_parse_from(["athyper", "retry", "q", "--all-failed"]).is_ok());
        assert!(Cli::try_parse_from(["athyper", "retry", "q"]).is_err());
        assert!(Cli::try_parse_from(["athyper", "retry", "q", "a", "--all-failed"]).is_err());
    }
}
