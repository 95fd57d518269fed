//! [`TelemetryConfig`]: what [`init`](super::init) installs, as the code
//! decides it on top of the environment.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use tracing_subscriber::EnvFilter;

use super::error::TelemetryError;
use crate::observability::logging::LogFormat;

/// The filter when `RUST_LOG` is unset: `info`, with the telemetry
/// pipeline's own chatter (export errors excepted) kept out.
pub const DEFAULT_LOG_FILTER: &str = "info,opentelemetry=warn,opentelemetry_sdk=warn,opentelemetry-otlp=warn,h2=warn,hyper=warn,tonic=warn,tower=warn";

/// The OTLP transport and encoding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OtlpProtocol {
    /// gRPC (port 4317 by convention).
    Grpc,
    /// HTTP with protobuf bodies (port 4318 by convention), the default.
    #[default]
    HttpProtobuf,
    /// HTTP with JSON bodies.
    HttpJson,
}

impl OtlpProtocol {
    /// The name `OTEL_EXPORTER_OTLP_PROTOCOL` takes.
    pub const fn as_str(self) -> &'static str {
        match self {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::HttpProtobuf => "http/protobuf",
            OtlpProtocol::HttpJson => "http/json",
        }
    }
}

impl fmt::Display for OtlpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OtlpProtocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "grpc" => Ok(OtlpProtocol::Grpc),
            "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
            "http/json" => Ok(OtlpProtocol::HttpJson),
            _ => Err("expected one of `grpc`, `http/protobuf`, `http/json`".to_owned()),
        }
    }
}

/// Where spans go, when they are exported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Endpoint {
    /// Set in this environment variable, which the exporter reads itself.
    Env(&'static str, String),
    /// A collector's base URL given in code; HTTP appends `/v1/traces`.
    Code(String),
}

impl Endpoint {
    /// The URL and the setting it came from.
    pub(super) fn source(&self) -> (&str, &'static str) {
        match self {
            Endpoint::Env(var, url) => (url, var),
            Endpoint::Code(url) => (url, "otlp_endpoint"),
        }
    }
}

/// What [`init`](super::init) installs.
///
/// [`from_env`](Self::from_env) checks the environment, and the setters
/// adjust the result in code. The OpenTelemetry SDK and the OTLP exporter
/// read the `OTEL_*` variables they know themselves (see [the module
/// docs](super#environment)); a setter here wins over its variable
/// (headers excepted: see [`otlp_header`](Self::otlp_header)).
/// [`Default`] reads nothing and exports nothing: the SDK still applies
/// its own variables, unchecked.
///
/// ```
/// use athyper::observability::LogFormat;
/// use athyper::observability::telemetry::{OtlpProtocol, TelemetryConfig};
///
/// let config = TelemetryConfig::default()
///     .otlp_endpoint("http://127.0.0.1:4318")
///     .service_name("billing")
///     .log_format(LogFormat::Json);
/// assert!(config.exports_traces());
/// assert_eq!(config.exporter_protocol(), OtlpProtocol::HttpProtobuf);
/// assert!(!config.without_export().exports_traces());
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct TelemetryConfig {
    pub(super) log_format: Option<LogFormat>,
    /// The directives, and the setting they came from.
    pub(super) log_filter: Option<(String, &'static str)>,
    pub(super) otel: bool,
    pub(super) endpoint: Option<Endpoint>,
    pub(super) protocol: OtlpProtocol,
    pub(super) headers: Vec<(String, String)>,
    pub(super) timeout: Option<Duration>,
    pub(super) service_name: Option<String>,
    /// Applied over the SDK's resource, later ones winning.
    pub(super) resource: Vec<(String, String)>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            log_format: None,
            log_filter: None,
            otel: true,
            endpoint: None,
            protocol: OtlpProtocol::default(),
            headers: Vec::new(),
            timeout: None,
            service_name: None,
            resource: Vec::new(),
        }
    }
}

impl TelemetryConfig {
    /// Writes logs in `format`, overriding `ATHYPER_LOG_FORMAT`.
    pub fn log_format(mut self, format: LogFormat) -> Self {
        self.log_format = Some(format);
        self
    }

    /// Filters events and spans with these [`EnvFilter`] directives,
    /// overriding `RUST_LOG`. Checked by [`init`](super::init).
    pub fn log_filter(mut self, directives: impl Into<String>) -> Self {
        self.log_filter = Some((directives.into(), "log filter"));
        self
    }

    /// Sets `service.name`, overriding `OTEL_SERVICE_NAME`.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Adds a resource attribute (`deployment.environment.name`,
    /// `service.version`, …), overriding `OTEL_RESOURCE_ATTRIBUTES`.
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        self.resource.retain(|(k, _)| *k != key);
        self.resource.push((key, value.into()));
        self
    }

    /// Exports spans to the collector at `url` (its base URL, as in
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`), overriding the environment. Checked
    /// by [`init`](super::init).
    pub fn otlp_endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(Endpoint::Code(url.into()));
        self
    }

    /// Exports no spans, whatever the environment says; trace ids are still
    /// made for logs.
    pub fn without_export(mut self) -> Self {
        self.endpoint = None;
        self
    }

    /// Sets the OTLP protocol, overriding `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn otlp_protocol(mut self, protocol: OtlpProtocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Adds a header to every OTLP HTTP request (an API key, say); one of
    /// the same name in `OTEL_EXPORTER_OTLP_HEADERS` wins.
    pub fn otlp_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(&name));
        self.headers.push((name, value.into()));
        self
    }

    /// Sets the OTLP export timeout, overriding `OTEL_EXPORTER_OTLP_TIMEOUT`.
    pub fn otlp_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Installs no OpenTelemetry layer at all, as `OTEL_SDK_DISABLED=true`
    /// does: logs carry no trace ids and jobs carry no trace context.
    pub fn without_opentelemetry(mut self) -> Self {
        self.otel = false;
        self
    }

    /// Whether spans are to be exported: an OTLP endpoint is set, in the
    /// environment or in code, and OpenTelemetry is on.
    pub fn exports_traces(&self) -> bool {
        self.otel && self.endpoint.is_some()
    }

    /// The OTLP protocol.
    pub fn exporter_protocol(&self) -> OtlpProtocol {
        self.protocol
    }

    /// The log format, once resolved against the terminal.
    pub fn resolved_log_format(&self) -> LogFormat {
        self.log_format.unwrap_or_else(LogFormat::detect)
    }

    /// Checks what was set in code as the environment is checked.
    pub(super) fn check(&self) -> Result<(), TelemetryError> {
        match &self.endpoint {
            Some(Endpoint::Code(url)) => check_url(url, "otlp_endpoint"),
            _ => Ok(()),
        }
    }

    pub(super) fn filter(&self) -> Result<EnvFilter, TelemetryError> {
        match &self.log_filter {
            Some((directives, setting)) => parse_filter(directives, setting),
            None => parse_filter(DEFAULT_LOG_FILTER, "log filter"),
        }
    }
}

pub(super) fn parse_filter(
    directives: &str,
    setting: &'static str,
) -> Result<EnvFilter, TelemetryError> {
    EnvFilter::builder().parse(directives).map_err(|e| {
        TelemetryError::config(
            setting,
            directives,
            format!("{e}; write directives such as `info` or `info,my_crate=debug`"),
        )
    })
}

/// Whether `url` is one the exporter takes; spaces around it are an error
/// too, as the exporter would reject them.
pub(super) fn check_url(url: &str, setting: &'static str) -> Result<(), TelemetryError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() => Ok(()),
        _ => Err(TelemetryError::config(
            setting,
            url,
            "expected an http:// or https:// URL such as `http://127.0.0.1:4318`",
        )),
    }
}
