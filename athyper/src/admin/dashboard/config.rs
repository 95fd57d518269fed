//! How the dashboard is served, from code or from the environment.

use std::fmt;

/// Who may use the dashboard's actions (retry, remove, promote, pause,
/// resume, clean).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Writes {
    /// Nobody: the dashboard only shows. The default.
    Off,
    /// Whoever presents this token: signed in through the dashboard's
    /// sign-in page (a cookie), or as `Authorization: Bearer <token>`.
    Token(String),
    /// Every request that reaches the router: a tower layer of the
    /// application in front of it decides who that is (single sign-on, a
    /// VPN-only listener). Forms still carry their CSRF token.
    Layer,
}

impl fmt::Debug for Writes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token never reaches a log line.
        match self {
            Writes::Off => f.write_str("Off"),
            Writes::Token(_) => f.write_str("Token(..)"),
            Writes::Layer => f.write_str("Layer"),
        }
    }
}

/// How the dashboard is served.
///
/// | variable | meaning | default |
/// |---|---|---|
/// | `ATHYPER_DASHBOARD_PATH` | where its pages live, such as `/admin` or `/` | `/admin` |
/// | `ATHYPER_ADMIN_TOKEN` | turns the actions on, for whoever presents this token | unset: read-only |
/// | `ATHYPER_ADMIN_SHOW_PAYLOADS` | `false` hides job payloads, results and progress | `true` |
/// | `ATHYPER_TRACE_URL` | a link from a job to its trace, with `{trace_id}` in it | unset |
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DashboardConfig {
    /// Where its pages live, such as `/admin` (the default) or `/`.
    pub base_path: String,
    /// Who may act.
    pub writes: Writes,
    /// Whether payloads, results and progress are shown.
    pub show_payloads: bool,
    /// A link template to a job's trace, with `{trace_id}` where the id
    /// goes, such as `https://grafana.example/explore?traceId={trace_id}`.
    pub trace_url: Option<String>,
    /// How often open pages refresh their numbers, in milliseconds; 0
    /// turns live updates off.
    pub refresh_ms: u64,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            base_path: "/admin".to_owned(),
            writes: Writes::Off,
            show_payloads: true,
            trace_url: None,
            refresh_ms: 3_000,
        }
    }
}

/// A dashboard setting that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {setting} `{value}`: {reason}")]
#[non_exhaustive]
pub struct DashboardConfigError {
    /// The environment variable.
    pub setting: &'static str,
    /// The value given.
    pub value: String,
    /// What is wrong with it, and what would do.
    pub reason: String,
}

impl DashboardConfig {
    /// The settings of the table above, from the process environment.
    pub fn from_env() -> Result<DashboardConfig, DashboardConfigError> {
        Self::from_env_with(|name| std::env::var(name).ok())
    }

    /// The settings of the table above, read through `lookup`.
    pub fn from_env_with(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<DashboardConfig, DashboardConfigError> {
        let mut config = DashboardConfig::default();
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        if let Some(path) = get("ATHYPER_DASHBOARD_PATH") {
            config.base_path = checked_path("ATHYPER_DASHBOARD_PATH", &path)?;
        }
        if let Some(token) = lookup("ATHYPER_ADMIN_TOKEN") {
            config.writes = Writes::Token(checked_token("ATHYPER_ADMIN_TOKEN", &token)?);
        }
        if let Some(show) = get("ATHYPER_ADMIN_SHOW_PAYLOADS") {
            config.show_payloads = parse_bool("ATHYPER_ADMIN_SHOW_PAYLOADS", &show)?;
        }
        if let Some(url) = get("ATHYPER_TRACE_URL") {
            config.trace_url = Some(checked_trace_url("ATHYPER_TRACE_URL", &url)?);
        }
        Ok(config)
    }

    /// Serves the pages under `path` (`/` for the root).
    #[must_use]
    pub fn base_path(mut self, path: impl Into<String>) -> Self {
        let path: String = path.into();
        self.base_path = normalise_path(&path);
        self
    }

    /// Turns the actions on for whoever presents `token`.
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.writes = Writes::Token(token.into());
        self
    }

    /// Turns the actions on for every request that reaches the router: put
    /// an authenticating tower layer in front of it.
    #[must_use]
    pub fn writes_behind_layer(mut self) -> Self {
        self.writes = Writes::Layer;
        self
    }

    /// Turns the actions off.
    #[must_use]
    pub fn read_only(mut self) -> Self {
        self.writes = Writes::Off;
        self
    }

    /// Shows or hides payloads, results and progress.
    #[must_use]
    pub fn show_payloads(mut self, show: bool) -> Self {
        self.show_payloads = show;
        self
    }

    /// Links jobs to their trace: `template` with `{trace_id}` in it.
    #[must_use]
    pub fn trace_url(mut self, template: impl Into<String>) -> Self {
        self.trace_url = Some(template.into());
        self
    }

    /// Refreshes open pages every `ms` milliseconds; 0 for never.
    #[must_use]
    pub fn refresh_ms(mut self, ms: u64) -> Self {
        self.refresh_ms = ms;
        self
    }

    /// Whether any action is allowed at all.
    pub fn writes_enabled(&self) -> bool {
        !matches!(self.writes, Writes::Off)
    }

    /// The trace link of `trace_id`, if a template is set.
    pub fn trace_link(&self, trace_id: &str) -> Option<String> {
        let template = self.trace_url.as_deref()?;
        let id: String = trace_id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        Some(template.replace("{trace_id}", &id))
    }

    /// The base path without a trailing slash: empty for the root.
    pub(crate) fn prefix(&self) -> &str {
        self.base_path.trim_end_matches('/')
    }
}

fn normalise_path(path: &str) -> String {
    let inner = path.trim().trim_matches('/');
    format!("/{inner}")
}

fn checked_path(setting: &'static str, value: &str) -> Result<String, DashboardConfigError> {
    let ok = value.trim().starts_with('/')
        && value
            .trim()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-_.~".contains(c))
        && !value.contains("//")
        && !value.split('/').any(|s| s == "." || s == "..");
    if ok {
        Ok(normalise_path(value))
    } else {
        Err(DashboardConfigError {
            setting,
            value: value.to_owned(),
            reason:
                "write a path such as `/admin` or `/`, of letters, digits, `-`, `_`, `.` and `~`"
                    .to_owned(),
        })
    }
}

fn checked_token(setting: &'static str, value: &str) -> Result<String, DashboardConfigError> {
    if value.chars().count() < 16 {
        return Err(DashboardConfigError {
            setting,
            value: "(hidden)".to_owned(),
            reason: format!(
                "the token has {} characters; use at least 16 (such as the output of `openssl rand -hex 16`), or unset it for a read-only dashboard",
                value.chars().count()
            ),
        });
    }
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(DashboardConfigError {
            setting,
            value: "(hidden)".to_owned(),
            reason: "the token has spaces or control characters; use printable characters only"
                .to_owned(),
        });
    }
    Ok(value.to_owned())
}

fn checked_trace_url(setting: &'static str, value: &str) -> Result<String, DashboardConfigError> {
    let value = value.trim();
    let reason = if !(value.starts_with("https://") || value.starts_with("http://")) {
        Some("it must start with `https://` or `http://`")
    } else if !value.contains("{trace_id}") {
        Some("it must hold `{trace_id}` where the trace id goes")
    } else if value.contains(['"', '<', '>', ' ']) {
        Some("it must not hold quotes, angle brackets or spaces")
    } else {
        None
    };
    match reason {
        None => Ok(value.to_owned()),
        Some(reason) => Err(DashboardConfigError {
            setting,
            value: value.to_owned(),
            reason: format!(
                "{reason}; write a template such as `https://grafana.example/explore?traceId={{trace_id}}`"
            ),
        }),
    }
}

fn parse_bool(setting: &'static str, value: &str) -> Result<bool, DashboardConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(DashboardConfigError {
            setting,
            value: value.to_owned(),
            reason: "expected `true` or `false`".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn defaults_are_read_only_under_admin() {
        let config = DashboardConfig::from_env_with(env(&[])).unwrap();
        assert_eq!(config.base_path, "/admin");
        assert_eq!(config.writes, Writes::Off);
        assert!(config.show_payloads);
        assert_eq!(config.trace_url, None);
    }

    #[test]
    fn reads_every_setting() {
        let config = DashboardConfig::from_env_with(env(&[
            ("ATHYPER_DASHBOARD_PATH", "/ops/queues/"),
            ("ATHYPER_ADMIN_TOKEN", "0123456789abcdef"),
            ("ATHYPER_ADMIN_SHOW_PAYLOADS", "false"),
            (
                "ATHYPER_TRACE_URL",
                "https://grafana.example/explore?traceId={trace_id}",
            ),
        ]))
        .unwrap();
        assert_eq!(config.base_path, "/ops/queues");
        assert_eq!(config.writes, Writes::Token("0123456789abcdef".into()));
        assert!(!config.show_payloads);
        assert_eq!(
            config
                .trace_link("4bf92f3577b34da6a3ce929d0e0e4736")
                .unwrap(),
            "https://grafana.example/explore?traceId=4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(
            config.trace_link("\"><script>").unwrap(),
            "https://grafana.example/explore?traceId=script"
        );
    }

    #[test]
    fn bad_settings_name_the_variable_and_the_fix() {
        let err = |pairs| {
            DashboardConfig::from_env_with(env(pairs))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(&[("ATHYPER_ADMIN_SHOW_PAYLOADS", "nope")]),
            "invalid ATHYPER_ADMIN_SHOW_PAYLOADS `nope`: expected `true` or `false`"
        );
        assert_eq!(
            err(&[("ATHYPER_ADMIN_TOKEN", "short")]),
            "invalid ATHYPER_ADMIN_TOKEN `(hidden)`: the token has 5 characters; use at least 16 (such as the output of `openssl rand -hex 16`), or unset it for a read-only dashboard"
        );
        assert!(
            err(&[("ATHYPER_TRACE_URL", "https://t.example/")])
                .contains("it must hold `{trace_id}`")
        );
        assert!(
            err(&[("ATHYPER_DASHBOARD_PATH", "admin/../x")])
                .starts_with("invalid ATHYPER_DASHBOARD_PATH `admin/../x`: write a path")
        );
    }

    #[test]
    fn debug_hides_the_token() {
        let config = DashboardConfig::default().token("0123456789abcdef");
        assert!(!format!("{config:?}").contains("0123456789abcdef"));
    }
}
