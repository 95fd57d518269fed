//! Why a command failed, as one line naming the cause and the fix, and the
//! exit code scripts see.

use std::process::ExitCode;

/// Exit codes scripts may rely on.
pub mod exit {
    /// Done.
    pub const SUCCESS: u8 = 0;
    /// Redis unreachable or failing, or a named job could not be acted on.
    pub const FAILURE: u8 = 1;
    /// Bad arguments, options or environment (clap uses 2 as well).
    pub const USAGE: u8 = 2;
    /// The queue, or a named job, does not exist.
    pub const NOT_FOUND: u8 = 3;
}

/// A failed command. `Display` is the one line printed after `error: `.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A bad option or environment variable.
    #[error("{0}")]
    Usage(String),
    /// Redis cannot be reached.
    #[error("cannot reach Redis at {address}: {cause}; set ATHYPER_REDIS_URL or --redis-url")]
    Unreachable { address: String, cause: String },
    /// Redis wants a password, or another one.
    #[error(
        "Redis at {address} refused the login: {cause}; put the password in ATHYPER_REDIS_URL or --redis-url (redis://:PASSWORD@HOST:PORT)"
    )]
    Login { address: String, cause: String },
    /// Redis answered with an error.
    #[error("Redis at {address} failed: {cause}")]
    Redis { address: String, cause: String },
    /// No such queue.
    #[error(
        "no queue `{queue}` in Redis at {address} (prefix `{prefix}`): no job or worker was ever seen on it; `athyper queues` lists the queues"
    )]
    NoSuchQueue {
        queue: String,
        address: String,
        prefix: String,
    },
    /// No such job.
    #[error(
        "no job `{id}` in queue `{queue}`; `athyper jobs {queue} --state STATE` lists its jobs"
    )]
    NoSuchJob { queue: String, id: String },
    /// Some of the named jobs were not acted on; the rest were.
    #[error("{summary}")]
    Partly {
        summary: String,
        /// Whether some named job does not exist.
        missing: bool,
    },
    /// Something else: a socket, the terminal.
    #[error("{0}")]
    Other(String),
    /// Standard output was closed (`athyper jobs q | head -1`): not an
    /// error, nothing more to say.
    #[error("standard output closed")]
    StdoutClosed,
}

impl CliError {
    /// The exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::StdoutClosed => exit::SUCCESS,
            CliError::Usage(_) => exit::USAGE,
            CliError::NoSuchQueue { .. } | CliError::NoSuchJob { .. } => exit::NOT_FOUND,
            CliError::Partly { missing: true, .. } => exit::NOT_FOUND,
            CliError::Unreachable { .. }
            | CliError::Login { .. }
            | CliError::Redis { .. }
            | CliError::Partly { .. }
            | CliError::Other(_) => exit::FAILURE,
        }
    }
}

impl From<CliError> for ExitCode {
    fn from(error: CliError) -> ExitCode {
        ExitCode::from(error.exit_code())
    }
}

/// Replaces every secret in `text` by `***`.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(text.to_owned(), |text, secret| {
            text.replace(secret.as_str(), "***")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_tell_missing_from_failing() {
        let missing = CliError::NoSuchJob {
            queue: "q".into(),
            id: "1".into(),
        };
        assert_eq!(missing.exit_code(), 3);
        let partly = |missing| CliError::Partly {
            summary: String::new(),
            missing,
        };
        assert_eq!(partly(true).exit_code(), 3);
        assert_eq!(partly(false).exit_code(), 1);
        assert_eq!(CliError::Usage("x".into()).exit_code(), 2);
    }

    #[test]
    fn secrets_are_scrubbed() {
        assert_eq!(
            scrub(
                "auth s3cret failed for s3cret",
                &["s3cret".into(), String::new()]
            ),
            "auth *** failed for ***"
        );
    }
}
