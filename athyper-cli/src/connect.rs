//! Which Redis to use, connecting to it, and what its errors mean to the
//! person at the terminal.

use std::error::Error as StdError;
use std::sync::Arc;

use athyper::admin::Admin;
use athyper::queue::QueueError;
use athyper::queue::backend::{RedisBackend, RedisConfig};
use redis::IntoConnectionInfo;

use crate::error::{CliError, scrub};

/// Where Redis is when nothing says otherwise.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

/// The Redis a command works on, with what its messages may show of it.
pub struct Target {
    config: RedisConfig,
    /// `host:port` of each URL, comma-separated: never a password.
    pub address: String,
    /// The key prefix.
    pub prefix: String,
    /// Passwords in the URLs, kept out of every message.
    secrets: Vec<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("config", &self.config)
            .field("address", &self.address)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// From `--redis-url` and `--prefix` (clap has already filled them from
    /// `ATHYPER_REDIS_URL` and `ATHYPER_REDIS_PREFIX` when they were not
    /// given), with the other `ATHYPER_REDIS_*` settings read by `env`.
    pub fn new(
        url: Option<&str>,
        prefix: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Target, CliError> {
        let url = url
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .unwrap_or(DEFAULT_URL)
            .to_owned();
        let prefix = prefix.filter(|p| !p.is_empty()).map(str::to_owned);
        let mut secrets = Vec::new();
        let mut addresses = Vec::new();
        for one in url.split(',').map(str::trim) {
            // A password is whatever sits between the first `:` of the
            // user part and the `@`, before any parsing that could fail.
            if let Some(userinfo) = one
                .split_once("://")
                .and_then(|(_, rest)| rest.rsplit_once('@'))
                .map(|(userinfo, _)| userinfo)
                && let Some((_, password)) = userinfo.split_once(':')
            {
                secrets.push(password.to_owned());
            }
            let info = one.into_connection_info().map_err(|e| {
                CliError::Usage(scrub(
                    &format!(
                        "invalid Redis URL `{one}`: {e}; write it as redis://[:PASSWORD@]HOST:PORT[/DB] in ATHYPER_REDIS_URL or --redis-url"
                    ),
                    &secrets,
                ))
            })?;
            if let Some(password) = info.redis_settings().password() {
                secrets.push(password.to_owned());
            }
            addresses.push(info.addr().to_string());
        }
        let config = RedisConfig::from_env(|name| match name {
            "ATHYPER_REDIS_URL" => Some(url.clone()),
            "ATHYPER_REDIS_PREFIX" => prefix.clone(),
            other => env(other),
        })
        .map_err(|e| CliError::Usage(scrub(&e, &secrets)))?
        .ok_or_else(|| {
            CliError::Usage("no Redis URL; set ATHYPER_REDIS_URL or --redis-url".into())
        })?;
        Ok(Target {
            config,
            address: addresses.join(","),
            prefix: prefix.unwrap_or_else(|| "athyper".to_owned()),
            secrets,
        })
    }

    /// Connects, checking that Redis answers.
    pub async fn connect(&self) -> Result<Admin, CliError> {
        let backend = RedisBackend::connect(self.config.clone())
            .await
            .map_err(|e| self.error(e))?;
        Ok(Admin::new(Arc::new(backend)))
    }

    /// What a queue error means here, as one line with its fix.
    pub fn error(&self, error: QueueError) -> CliError {
        let address = self.address.clone();
        let cause = |e: &QueueError| scrub(&cause(e), &self.secrets);
        match &error {
            QueueError::NoSuchQueue { queue } => CliError::NoSuchQueue {
                queue: queue.clone(),
                address,
                prefix: self.prefix.clone(),
            },
            QueueError::NotFound { queue, id } => CliError::NoSuchJob {
                queue: queue.clone(),
                id: id.clone(),
            },
            QueueError::InvalidName { .. } | QueueError::InvalidJobId { .. } => {
                CliError::Usage(error.to_string())
            }
            _ if is_login(&error) => CliError::Login {
                address,
                cause: cause(&error),
            },
            QueueError::Unavailable { .. } => CliError::Unreachable {
                address,
                cause: cause(&error),
            },
            _ => CliError::Redis {
                address,
                cause: cause(&error),
            },
        }
    }
}

fn redis_error(error: &QueueError) -> Option<&redis::RedisError> {
    let mut source = error.source();
    while let Some(e) = source {
        if let Some(redis) = e.downcast_ref::<redis::RedisError>() {
            return Some(redis);
        }
        source = e.source();
    }
    None
}

fn is_login(error: &QueueError) -> bool {
    redis_error(error).is_some_and(|e| {
        e.kind() == redis::ErrorKind::AuthenticationFailed
            || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
    })
}

/// The root cause in a few words: `connection refused`, `timed out`, or
/// the text of Redis's or the system's error.
fn cause(error: &QueueError) -> String {
    if let Some(e) = redis_error(error) {
        if e.is_connection_refusal() {
            return "connection refused".to_owned();
        }
        if e.is_timeout() {
            return "timed out".to_owned();
        }
        if e.is_connection_dropped() {
            return "connection dropped".to_owned();
        }
        return lower_first(&e.to_string());
    }
    match error {
        // `what` reads `redis <operation>: <why>`.
        QueueError::Unavailable { what, .. } => what.trim_start_matches("redis ").to_owned(),
        QueueError::Backend { message, .. } => message.trim_start_matches("redis ").to_owned(),
        other => other.to_string(),
    }
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        // Keep acronyms (`ERR`, `WRONGPASS`) as they are.
        Some(first) if !chars.next().is_some_and(char::is_uppercase) => {
            first.to_lowercase().chain(text.chars().skip(1)).collect()
        }
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_default_is_the_local_redis() {
        let target = Target::new(None, None, no_env).unwrap();
        assert_eq!(target.address, "127.0.0.1:6379");
        assert_eq!(target.prefix, "athyper");
    }

    #[test]
    fn addresses_never_show_passwords() {
        let target =
            Target::new(Some("redis://:s3cret@10.1.2.3:6380/2"), Some("app"), no_env).unwrap();
        assert_eq!(target.address, "10.1.2.3:6380");
        assert_eq!(target.prefix, "app");
        assert!(!format!("{target:?}").contains("s3cret"), "{target:?}");
        let err = target.error(QueueError::backend("redis counts: auth s3cret"));
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn a_bad_url_is_a_usage_error_without_its_password() {
        let err = Target::new(Some("http://:s3cret@host"), None, no_env).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(
            text.starts_with("invalid Redis URL `http://:***@host`: "),
            "{text}"
        );
        assert!(
            text.ends_with("in ATHYPER_REDIS_URL or --redis-url"),
            "{text}"
        );
    }

    #[test]
    fn a_bad_setting_is_a_usage_error() {
        let err = Target::new(None, None, |name| {
            (name == "ATHYPER_REDIS_TIMEOUT").then(|| "soon".to_owned())
        })
        .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string()
                .starts_with("ATHYPER_REDIS_TIMEOUT `soon`: "),
            "{err}"
        );
    }

    #[test]
    fn several_urls_are_a_cluster() {
        let target = Target::new(Some("redis://a:7000, redis://b:7001"), None, no_env).unwrap();
        assert_eq!(target.address, "a:7000,b:7001");
    }

    #[test]
    fn causes_read_as_words() {
        assert_eq!(lower_first("Connection reset"), "connection reset");
        assert_eq!(lower_first("WRONGPASS invalid"), "WRONGPASS invalid");
        let target = Target::new(None, None, no_env).unwrap();
        let err = target.error(QueueError::Unavailable {
            what: "redis counts: no answer within 2s".into(),
            source: None,
        });
        assert_eq!(
            err.to_string(),
            "cannot reach Redis at 127.0.0.1:6379: counts: no answer within 2s; set ATHYPER_REDIS_URL or --redis-url"
        );
    }
}
