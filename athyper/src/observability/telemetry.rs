//! Installing the process's tracing subscriber: log lines, and with the
//! `otel` feature, OpenTelemetry traces exported over OTLP.
//!
//! ```no_run
//! use athyper::observability::telemetry::{self, TelemetryConfig};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let telemetry = telemetry::init(TelemetryConfig::from_env()?)?;
//! tracing::info!("started");
//! // ... run ...
//! telemetry.shutdown().await?; // exports the spans still buffered
//! # Ok(()) }
//! ```
//!
//! [`init`] installs, as the global default:
//!
//! - a filter from `RUST_LOG` (default `info`), which decides both which
//!   events are logged and which spans are traced;
//! - with `otel` (unless `OTEL_SDK_DISABLED=true`), a tracing-opentelemetry
//!   layer, so every span has W3C trace and span ids that logs carry and
//!   jobs propagate. Spans are exported only when an OTLP endpoint is set;
//!   without one the ids are still made, so logs still correlate;
//! - a log writer on stdout: JSON lines (see [`logging`](super::logging))
//!   or human-readable text, chosen by `ATHYPER_LOG_FORMAT` or, unset, by
//!   whether stdout is a terminal.
//!
//! # Environment
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `RUST_LOG` | [`EnvFilter`] directives | `info` (with OpenTelemetry's and the HTTP/2 stack's own chatter at `warn`) |
//! | `ATHYPER_LOG_FORMAT` | `json` or `pretty` | `pretty` in a terminal, else `json` |
//! | `OTEL_SDK_DISABLED` | `true`: no OpenTelemetry at all (no trace ids in logs) | `false` |
//! | `OTEL_TRACES_EXPORTER` | `otlp` or `none` | `otlp` |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | collector base URL; `/v1/traces` is appended for HTTP | unset: nothing exported |
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | the traces URL, used as is; wins over the above | unset |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL`, `…_TRACES_PROTOCOL` | `grpc`, `http/protobuf` or `http/json` | `http/protobuf` |
//! | `OTEL_EXPORTER_OTLP_HEADERS`, `…_TRACES_HEADERS` | `key=value,…`, values percent-encoded | none |
//! | `OTEL_EXPORTER_OTLP_TIMEOUT`, `…_TRACES_TIMEOUT` | export timeout in milliseconds | `10000` |
//! | `OTEL_SERVICE_NAME` | `service.name` | from `OTEL_RESOURCE_ATTRIBUTES`, else `unknown_service:<executable>` |
//! | `OTEL_RESOURCE_ATTRIBUTES` | `key=value,…`, values percent-encoded | none |
//! | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | `always_on`, `always_off`, `traceidratio`, `parentbased_always_on`, `parentbased_always_off`, `parentbased_traceidratio` | `parentbased_always_on` |
//!
//! The OTLP exporter itself also reads `OTEL_EXPORTER_OTLP_COMPRESSION`
//! and `OTEL_BSP_*` from the process environment, and for gRPC the headers.
//!
//! Exports run on a small Tokio runtime of their own, on a thread of their
//! own, so `init` works inside or outside a runtime and flushing never
//! waits on the application's runtime.

use std::fmt;
use std::io::IsTerminal;
use std::str::FromStr;
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::JsonFields;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::observability::logging::{JsonFormat, LogFormat};

/// The filter when `RUST_LOG` is unset: `info`, with the telemetry
/// pipeline's own chatter (export errors excepted) kept out.
pub const DEFAULT_LOG_FILTER: &str = "info,opentelemetry=warn,opentelemetry_sdk=warn,opentelemetry-otlp=warn,h2=warn,hyper=warn,tonic=warn,tower=warn";

/// How long [`TelemetryGuard::shutdown`] waits for the last export.
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The OTLP timeout when none is configured.
const DEFAULT_OTLP_TIMEOUT: Duration = Duration::from_secs(10);

/// An error configuring or installing telemetry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// A setting that cannot be used.
    #[error("invalid {setting} `{value}`: {reason}")]
    Config {
        /// The environment variable or builder method.
        setting: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A global subscriber (or `log` logger) is already installed.
    #[error(
        "a global tracing subscriber or `log` logger is already installed; call `telemetry::init` once, before anything else installs one"
    )]
    AlreadyInstalled,
    /// The OTLP exporter could not be built.
    #[error("cannot export traces to {endpoint}: {reason}")]
    Exporter {
        /// Where traces were to go.
        endpoint: String,
        /// Why not.
        reason: String,
    },
    /// Flushing or shutting down the exporter failed or timed out.
    #[error("flushing traces failed: {0}")]
    Flush(String),
}

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

    fn is_http(self) -> bool {
        !matches!(self, OtlpProtocol::Grpc)
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

/// Where spans go.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Endpoint {
    /// A collector's base URL; HTTP appends `/v1/traces`.
    Base(String),
    /// The traces URL itself.
    Traces(String),
}

/// Which traces are recorded (and exported).
#[derive(Clone, Copy, Debug, PartialEq)]
struct SamplerConfig {
    /// Follow a sampled parent's decision; apply `root` to new traces.
    parent_based: bool,
    root: RootSampler,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum RootSampler {
    AlwaysOn,
    AlwaysOff,
    Ratio(f64),
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            parent_based: true,
            root: RootSampler::AlwaysOn,
        }
    }
}

/// What [`init`] installs. Read from the environment with
/// [`from_env`](Self::from_env), then adjusted in code; [`Default`] is the
/// configuration of an empty environment.
///
/// ```
/// use athyper::observability::LogFormat;
/// use athyper::observability::telemetry::{OtlpProtocol, TelemetryConfig};
///
/// let config = TelemetryConfig::from_env_lookup(|var| match var {
///     "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://127.0.0.1:4318".to_owned()),
///     _ => None,
/// })?
/// .service_name("billing")
/// .log_format(LogFormat::Json);
/// assert_eq!(config.traces_endpoint().as_deref(), Some("http://127.0.0.1:4318/v1/traces"));
/// assert_eq!(config.exporter_protocol(), OtlpProtocol::HttpProtobuf);
/// # Ok::<(), athyper::observability::TelemetryError>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct TelemetryConfig {
    log_format: Option<LogFormat>,
    log_filter: Option<(String, &'static str)>,
    otel: bool,
    endpoint: Option<Endpoint>,
    protocol: OtlpProtocol,
    headers: Vec<(String, String)>,
    timeout: Duration,
    service_name: Option<String>,
    resource: Vec<(String, String)>,
    sampler: SamplerConfig,
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
            timeout: DEFAULT_OTLP_TIMEOUT,
            service_name: None,
            resource: Vec::new(),
            sampler: SamplerConfig::default(),
        }
    }
}

impl TelemetryConfig {
    /// Reads the variables in [the table above](self#environment) from
    /// the process environment.
    pub fn from_env() -> Result<Self, TelemetryError> {
        Self::from_env_lookup(|var| std::env::var(var).ok())
    }

    /// Reads the same variables through `lookup`: for tests, or settings
    /// kept elsewhere. An empty value counts as unset.
    pub fn from_env_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, TelemetryError> {
        let get = |var: &str| lookup(var).filter(|v| !v.trim().is_empty());
        let invalid = |setting: &'static str, value: &str, reason: String| TelemetryError::Config {
            setting,
            value: value.to_owned(),
            reason,
        };
        let mut config = TelemetryConfig::default();

        if let Some(filter) = get("RUST_LOG") {
            parse_filter(&filter, "RUST_LOG")?;
            config.log_filter = Some((filter, "RUST_LOG"));
        }
        if let Some(format) = get("ATHYPER_LOG_FORMAT") {
            config.log_format = Some(
                format
                    .parse()
                    .map_err(|r| invalid("ATHYPER_LOG_FORMAT", &format, r))?,
            );
        }
        if let Some(disabled) = get("OTEL_SDK_DISABLED") {
            config.otel = !disabled.trim().eq_ignore_ascii_case("true");
        }
        let exporting = match get("OTEL_TRACES_EXPORTER") {
            None => true,
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "otlp" => true,
                "none" => false,
                _ => {
                    return Err(invalid(
                        "OTEL_TRACES_EXPORTER",
                        &v,
                        "expected `otlp` or `none`".to_owned(),
                    ));
                }
            },
        };

        let signal = |general: &'static str, traces: &'static str| {
            get(traces)
                .map(|v| (traces, v))
                .or_else(|| get(general).map(|v| (general, v)))
        };
        if let Some((var, protocol)) = signal(
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        ) {
            config.protocol = protocol.parse().map_err(|r| invalid(var, &protocol, r))?;
        }
        if exporting {
            if let Some(url) = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
                check_url(&url, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")?;
                config.endpoint = Some(Endpoint::Traces(url.trim().to_owned()));
            } else if let Some(url) = get("OTEL_EXPORTER_OTLP_ENDPOINT") {
                check_url(&url, "OTEL_EXPORTER_OTLP_ENDPOINT")?;
                config.endpoint = Some(Endpoint::Base(url.trim().to_owned()));
            }
        }
        for var in [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        ] {
            if let Some(headers) = get(var) {
                for (key, value) in parse_pairs(&headers).map_err(|r| invalid(var, &headers, r))? {
                    config
                        .headers
                        .retain(|(k, _)| !k.eq_ignore_ascii_case(&key));
                    config.headers.push((key, value));
                }
            }
        }
        if let Some((var, ms)) = signal(
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        ) {
            let ms = ms.trim().parse::<u64>().map_err(|_| {
                invalid(
                    var,
                    &ms,
                    "expected a whole number of milliseconds".to_owned(),
                )
            })?;
            config.timeout = Duration::from_millis(ms);
        }
        if let Some(attributes) = get("OTEL_RESOURCE_ATTRIBUTES") {
            config.resource = parse_pairs(&attributes)
                .map_err(|r| invalid("OTEL_RESOURCE_ATTRIBUTES", &attributes, r))?;
        }
        config.service_name = get("OTEL_SERVICE_NAME").map(|s| s.trim().to_owned());
        if let Some(sampler) = get("OTEL_TRACES_SAMPLER") {
            let arg = get("OTEL_TRACES_SAMPLER_ARG");
            config.sampler = parse_sampler(&sampler, arg.as_deref())?;
        }
        Ok(config)
    }

    /// Writes logs in `format`, overriding `ATHYPER_LOG_FORMAT`.
    pub fn log_format(mut self, format: LogFormat) -> Self {
        self.log_format = Some(format);
        self
    }

    /// Filters events and spans with these [`EnvFilter`] directives,
    /// overriding `RUST_LOG`. Checked by [`init`].
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
    /// `service.version`, …).
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        self.resource.retain(|(k, _)| *k != key);
        self.resource.push((key, value.into()));
        self
    }

    /// Exports spans to the collector at `url` (its base URL, as in
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`), overriding the environment. Checked
    /// by [`init`].
    pub fn otlp_endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(Endpoint::Base(url.into()));
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

    /// Adds a header to every OTLP HTTP request (an API key, say).
    pub fn otlp_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(&name));
        self.headers.push((name, value.into()));
        self
    }

    /// Sets the OTLP export timeout, overriding `OTEL_EXPORTER_OTLP_TIMEOUT`.
    pub fn otlp_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Installs no OpenTelemetry layer at all, as `OTEL_SDK_DISABLED=true`
    /// does: logs carry no trace ids and jobs carry no trace context.
    pub fn without_opentelemetry(mut self) -> Self {
        self.otel = false;
        self
    }

    /// The URL spans are posted to (HTTP) or sent to (gRPC), if any.
    pub fn traces_endpoint(&self) -> Option<String> {
        if !self.otel {
            return None;
        }
        Some(match self.endpoint.as_ref()? {
            Endpoint::Traces(url) => url.clone(),
            Endpoint::Base(url) if self.protocol.is_http() => {
                format!("{}/v1/traces", url.trim_end_matches('/'))
            }
            Endpoint::Base(url) => url.clone(),
        })
    }

    /// The OTLP protocol.
    pub fn exporter_protocol(&self) -> OtlpProtocol {
        self.protocol
    }

    /// The log format, once resolved against the terminal.
    pub fn resolved_log_format(&self) -> LogFormat {
        self.log_format.unwrap_or_else(LogFormat::detect)
    }

    /// An endpoint given in code is checked as the environment's are.
    fn check_endpoint(&self) -> Result<(), TelemetryError> {
        match &self.endpoint {
            Some(Endpoint::Base(url) | Endpoint::Traces(url)) => check_url(url, "otlp_endpoint"),
            None => Ok(()),
        }
    }

    fn filter(&self) -> Result<EnvFilter, TelemetryError> {
        match &self.log_filter {
            Some((directives, setting)) => parse_filter(directives, setting),
            None => parse_filter(DEFAULT_LOG_FILTER, "log filter"),
        }
    }
}

fn parse_filter(directives: &str, setting: &'static str) -> Result<EnvFilter, TelemetryError> {
    EnvFilter::builder()
        .parse(directives)
        .map_err(|e| TelemetryError::Config {
            setting,
            value: directives.to_owned(),
            reason: format!("{e}; write directives such as `info` or `info,my_crate=debug`"),
        })
}

fn check_url(url: &str, setting: &'static str) -> Result<(), TelemetryError> {
    let url = url.trim();
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() => Ok(()),
        _ => Err(TelemetryError::Config {
            setting,
            value: url.to_owned(),
            reason: "expected an http:// or https:// URL such as `http://127.0.0.1:4318`"
                .to_owned(),
        }),
    }
}

/// `key=value,key=value` with percent-encoded values (W3C baggage octets),
/// as `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_EXPORTER_OTLP_HEADERS` take.
fn parse_pairs(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| format!("`{item}` is not `key=value`"))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("`{item}` has an empty key"));
        }
        let value = percent_decode(value.trim())
            .ok_or_else(|| format!("the value of `{key}` has a bad percent-escape"))?;
        pairs.push((key.to_owned(), value));
    }
    Ok(pairs)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn parse_sampler(name: &str, arg: Option<&str>) -> Result<SamplerConfig, TelemetryError> {
    let ratio = || -> Result<f64, TelemetryError> {
        match arg {
            None => Ok(1.0),
            Some(arg) => arg
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| TelemetryError::Config {
                    setting: "OTEL_TRACES_SAMPLER_ARG",
                    value: arg.to_owned(),
                    reason: "expected a ratio from 0 to 1, such as `0.25`".to_owned(),
                }),
        }
    };
    let (parent_based, root) = match name.trim().to_ascii_lowercase().as_str() {
        "always_on" => (false, RootSampler::AlwaysOn),
        "always_off" => (false, RootSampler::AlwaysOff),
        "traceidratio" => (false, RootSampler::Ratio(ratio()?)),
        "parentbased_always_on" => (true, RootSampler::AlwaysOn),
        "parentbased_always_off" => (true, RootSampler::AlwaysOff),
        "parentbased_traceidratio" => (true, RootSampler::Ratio(ratio()?)),
        _ => {
            return Err(TelemetryError::Config {
                setting: "OTEL_TRACES_SAMPLER",
                value: name.to_owned(),
                reason: "expected one of `always_on`, `always_off`, `traceidratio`, `parentbased_always_on`, `parentbased_always_off`, `parentbased_traceidratio`".to_owned(),
            });
        }
    };
    Ok(SamplerConfig { parent_based, root })
}

/// Installs the global subscriber described by `config`; see [the module
/// docs](self). Keep the guard, and call [`TelemetryGuard::shutdown`]
/// before the process exits so that buffered spans are exported (the
/// runtime does this at [`FLUSH_TELEMETRY`](crate::shutdown::priority::FLUSH_TELEMETRY)).
pub fn init(config: TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    config.check_endpoint()?;
    let filter = config.filter()?;
    let format = config.resolved_log_format();

    #[cfg(feature = "otel")]
    let pipeline = if config.otel {
        Some(pipeline::Pipeline::start(&config)?)
    } else {
        None
    };
    #[cfg(feature = "otel")]
    let otel_layer = pipeline.as_ref().map(|p| {
        use tracing_subscriber::Layer as _;
        /// Where the worker loop's span is made.
        const WORKER_TARGET: &str = "athyper::queue::worker";
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer())
            // busy/idle times are not OpenTelemetry attributes, and cost
            // two clock reads per poll.
            .with_tracked_inactivity(false)
            // A worker's loop lives as long as the process: as a span it
            // would be one endless trace that every loop log line joins.
            // Its lines keep the span's fields in the logs, without ids.
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                !(meta.is_span() && meta.name() == "worker" && meta.target() == WORKER_TARGET)
            }))
    });
    #[cfg(not(feature = "otel"))]
    let otel_layer: Option<tracing_subscriber::layer::Identity> = None;

    let json = (format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .event_format(JsonFormat::new())
            .fmt_fields(JsonFields::new())
            .with_writer(std::io::stdout)
    });
    let pretty = (format == LogFormat::Pretty).then(|| {
        tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stdout().is_terminal())
            .with_writer(std::io::stdout)
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(otel_layer)
        .with(json)
        .with(pretty)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;

    #[cfg(feature = "otel")]
    if let Some(pipeline) = &pipeline {
        pipeline.install_globals();
    }
    match config.traces_endpoint() {
        Some(endpoint) if cfg!(feature = "otel") => tracing::info!(
            %endpoint,
            protocol = %config.protocol,
            log_format = %format,
            "exporting traces over OTLP"
        ),
        Some(endpoint) => tracing::warn!(
            %endpoint,
            "an OTLP endpoint is set, but this build of athyper has no `otel` feature: traces are not exported"
        ),
        None => {
            tracing::debug!(log_format = %format, "no OTLP endpoint is set: traces are not exported")
        }
    }
    Ok(TelemetryGuard {
        #[cfg(feature = "otel")]
        pipeline,
    })
}

/// Keeps the telemetry pipeline; see [`init`]. Dropping it shuts the
/// exporter down too, blocking the thread for up to a few seconds; prefer
/// [`shutdown`](Self::shutdown).
#[must_use = "dropping the guard stops exporting traces"]
pub struct TelemetryGuard {
    #[cfg(feature = "otel")]
    pipeline: Option<pipeline::Pipeline>,
}

impl fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("exports_traces", &self.exports_traces())
            .finish()
    }
}

impl TelemetryGuard {
    /// Whether spans are exported over OTLP.
    pub fn exports_traces(&self) -> bool {
        #[cfg(feature = "otel")]
        if let Some(pipeline) = &self.pipeline {
            return pipeline.exports();
        }
        false
    }

    /// Exports the spans buffered so far, waiting for the export.
    pub async fn flush(&self) -> Result<(), TelemetryError> {
        #[cfg(feature = "otel")]
        if let Some(pipeline) = &self.pipeline {
            let provider = pipeline.provider();
            return off_runtime(move || provider.force_flush())
                .await
                .map_err(|e| TelemetryError::Flush(e.to_string()));
        }
        Ok(())
    }

    /// Exports the spans still buffered and stops the exporter, waiting up
    /// to five seconds. Spans ended afterwards are not exported.
    pub async fn shutdown(self) -> Result<(), TelemetryError> {
        self.shutdown_within(DEFAULT_SHUTDOWN_TIMEOUT).await
    }

    /// [`shutdown`](Self::shutdown), waiting up to `timeout`.
    pub async fn shutdown_within(mut self, timeout: Duration) -> Result<(), TelemetryError> {
        #[cfg(feature = "otel")]
        if let Some(mut pipeline) = self.pipeline.take() {
            return off_runtime(move || pipeline.shutdown(timeout))
                .await
                .map_err(TelemetryError::Flush);
        }
        let _ = (&mut self, timeout);
        Ok(())
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        #[cfg(feature = "otel")]
        if let Some(mut pipeline) = self.pipeline.take() {
            let _ = pipeline.shutdown(Duration::from_secs(2));
        }
    }
}

/// Runs a blocking SDK call on the blocking pool when inside a Tokio
/// runtime, so that a current-thread runtime keeps running meanwhile.
#[cfg(feature = "otel")]
async fn off_runtime<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => match handle.spawn_blocking(f).await {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic.into_panic()),
        },
        Err(_) => f(),
    }
}

#[cfg(feature = "otel")]
mod pipeline {
    use std::sync::Arc;
    use std::time::Duration;

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry::{InstrumentationScope, KeyValue};
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
    use opentelemetry_sdk::resource::TelemetryResourceDetector;
    use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider, SpanData, SpanExporter};
    use tracing::instrument::WithSubscriber;

    use super::{OtlpProtocol, RootSampler, SamplerConfig, TelemetryConfig, TelemetryError};

    /// The tracer provider and, when exporting, the exporter's runtime.
    pub(super) struct Pipeline {
        provider: SdkTracerProvider,
        export: Option<ExportThread>,
        done: bool,
    }

    impl Pipeline {
        pub(super) fn start(config: &TelemetryConfig) -> Result<Pipeline, TelemetryError> {
            let resource = resource(config);
            let mut builder = SdkTracerProvider::builder()
                .with_resource(resource.clone())
                .with_sampler(sampler(config.sampler));
            let mut export = None;
            if let Some(endpoint) = config.traces_endpoint() {
                let failed = |reason: String| TelemetryError::Exporter {
                    endpoint: endpoint.clone(),
                    reason,
                };
                let thread = ExportThread::start().map_err(|e| failed(e.to_string()))?;
                // gRPC channels spawn their connection task when built.
                let mut exporter = {
                    let _runtime = thread.handle.enter();
                    build_exporter(config, &endpoint).map_err(failed)?
                };
                exporter.set_resource(&resource);
                builder = builder.with_batch_exporter(OnRuntime {
                    inner: Arc::new(exporter),
                    handle: thread.handle.clone(),
                });
                export = Some(thread);
            }
            Ok(Pipeline {
                provider: builder.build(),
                export,
                done: false,
            })
        }

        pub(super) fn tracer(&self) -> SdkTracer {
            self.provider.tracer_with_scope(
                InstrumentationScope::builder("athyper")
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .build(),
            )
        }

        pub(super) fn provider(&self) -> SdkTracerProvider {
            self.provider.clone()
        }

        pub(super) fn exports(&self) -> bool {
            self.export.is_some()
        }

        /// Lets code using the `opentelemetry` API directly join in.
        pub(super) fn install_globals(&self) {
            opentelemetry::global::set_text_map_propagator(
                opentelemetry_sdk::propagation::TraceContextPropagator::new(),
            );
            opentelemetry::global::set_tracer_provider(self.provider.clone());
        }

        /// Blocks until the last batch is exported or `timeout` passes.
        pub(super) fn shutdown(&mut self, timeout: Duration) -> Result<(), String> {
            if std::mem::replace(&mut self.done, true) {
                return Ok(());
            }
            let result = self.provider.shutdown_with_timeout(timeout);
            if let Some(mut export) = self.export.take() {
                export.stop();
            }
            result.map_err(|e| e.to_string())
        }
    }

    impl Drop for Pipeline {
        fn drop(&mut self) {
            let _ = self.shutdown(Duration::from_secs(2));
        }
    }

    fn resource(config: &TelemetryConfig) -> Resource {
        let service = config
            .service_name
            .clone()
            .or_else(|| {
                config
                    .resource
                    .iter()
                    .find(|(k, _)| k == "service.name")
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_else(|| {
                let exe = std::env::current_exe()
                    .ok()
                    .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .unwrap_or_default();
                format!("unknown_service:{exe}")
            });
        Resource::builder_empty()
            .with_detector(Box::new(TelemetryResourceDetector))
            .with_attributes(
                config
                    .resource
                    .iter()
                    .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
            )
            .with_service_name(service)
            .build()
    }

    fn sampler(config: SamplerConfig) -> Sampler {
        let root = match config.root {
            RootSampler::AlwaysOn => Sampler::AlwaysOn,
            RootSampler::AlwaysOff => Sampler::AlwaysOff,
            RootSampler::Ratio(r) => Sampler::TraceIdRatioBased(r),
        };
        if config.parent_based {
            Sampler::ParentBased(Box::new(root))
        } else {
            root
        }
    }

    fn build_exporter(
        config: &TelemetryConfig,
        endpoint: &str,
    ) -> Result<opentelemetry_otlp::SpanExporter, String> {
        use opentelemetry_otlp::{Protocol, SpanExporter};

        let http = |protocol: Protocol| {
            SpanExporter::builder()
                .with_http()
                .with_protocol(protocol)
                .with_endpoint(endpoint)
                .with_timeout(config.timeout)
                .with_headers(config.headers.iter().cloned().collect())
                .build()
        };
        match config.protocol {
            OtlpProtocol::Grpc => SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .with_timeout(config.timeout)
                .build(),
            OtlpProtocol::HttpProtobuf => http(Protocol::HttpBinary),
            OtlpProtocol::HttpJson => http(Protocol::HttpJson),
        }
        .map_err(|e| e.to_string())
    }

    /// An exporter whose exports run on the export thread's runtime.
    ///
    /// The SDK's batch processor exports from a plain thread, while the
    /// OTLP clients (hyper, tonic) need a Tokio runtime; the application's
    /// runtime may be gone or blocked by the time of the last flush.
    #[derive(Debug)]
    struct OnRuntime<E> {
        inner: Arc<E>,
        handle: tokio::runtime::Handle,
    }

    impl<E: SpanExporter + 'static> SpanExporter for OnRuntime<E> {
        fn export(
            &self,
            batch: Vec<SpanData>,
        ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
            let inner = self.inner.clone();
            // Whatever the HTTP stack logs while exporting must not become
            // spans to export.
            let task = self.handle.spawn(
                async move { inner.export(batch).await }
                    .with_subscriber(tracing::subscriber::NoSubscriber::default()),
            );
            async move {
                task.await
                    .unwrap_or_else(|e| Err(OTelSdkError::InternalFailure(e.to_string())))
            }
        }

        fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
            self.inner.shutdown_with_timeout(timeout)
        }

        fn force_flush(&self) -> OTelSdkResult {
            self.inner.force_flush()
        }

        fn set_resource(&mut self, resource: &Resource) {
            if let Some(inner) = Arc::get_mut(&mut self.inner) {
                inner.set_resource(resource);
            }
        }
    }

    /// A current-thread Tokio runtime on a thread of its own.
    struct ExportThread {
        handle: tokio::runtime::Handle,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl ExportThread {
        fn start() -> std::io::Result<ExportThread> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = runtime.handle().clone();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name("athyper-otlp".to_owned())
                .spawn(move || {
                    runtime.block_on(async {
                        let _ = stopped.await;
                    });
                    runtime.shutdown_timeout(Duration::from_secs(1));
                })?;
            Ok(ExportThread {
                handle,
                stop: Some(stop),
                thread: Some(thread),
            })
        }

        fn stop(&mut self) {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }

    impl Drop for ExportThread {
        fn drop(&mut self) {
            self.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |var| pairs.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone())
    }

    #[test]
    fn an_empty_environment_exports_nothing() {
        let config = TelemetryConfig::from_env_lookup(env(&[])).unwrap();
        assert_eq!(config.traces_endpoint(), None);
        assert_eq!(config.exporter_protocol(), OtlpProtocol::HttpProtobuf);
        assert!(config.otel);
        assert_eq!(config.sampler, SamplerConfig::default());
        assert_eq!(config.timeout, DEFAULT_OTLP_TIMEOUT);
        config.filter().unwrap();
    }

    #[test]
    fn resolves_the_traces_endpoint_per_protocol() {
        let base = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")];
        let config = TelemetryConfig::from_env_lookup(env(&base)).unwrap();
        assert_eq!(
            config.traces_endpoint().as_deref(),
            Some("http://collector:4318/v1/traces")
        );

        let grpc = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ];
        let config = TelemetryConfig::from_env_lookup(env(&grpc)).unwrap();
        assert_eq!(
            config.traces_endpoint().as_deref(),
            Some("http://collector:4317")
        );

        let specific = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://traces:9999/in",
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
        ];
        let config = TelemetryConfig::from_env_lookup(env(&specific)).unwrap();
        assert_eq!(
            config.traces_endpoint().as_deref(),
            Some("http://traces:9999/in")
        );
        assert_eq!(config.exporter_protocol(), OtlpProtocol::HttpJson);

        let off = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ];
        let config = TelemetryConfig::from_env_lookup(env(&off)).unwrap();
        assert_eq!(config.traces_endpoint(), None);

        let disabled = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_SDK_DISABLED", "TRUE"),
        ];
        let config = TelemetryConfig::from_env_lookup(env(&disabled)).unwrap();
        assert_eq!(config.traces_endpoint(), None);
        assert!(!config.otel);
    }

    #[test]
    fn reads_resource_headers_timeout_and_sampler() {
        let config = TelemetryConfig::from_env_lookup(env(&[
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=from-attrs, deployment.environment.name=prod%20eu",
            ),
            ("OTEL_SERVICE_NAME", "billing"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a,x-team=core"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "API-KEY=b"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ]))
        .unwrap();
        assert_eq!(config.service_name.as_deref(), Some("billing"));
        assert_eq!(
            config.resource[1],
            (
                "deployment.environment.name".to_owned(),
                "prod eu".to_owned()
            )
        );
        assert_eq!(
            config.headers,
            [
                ("x-team".to_owned(), "core".to_owned()),
                ("API-KEY".to_owned(), "b".to_owned())
            ]
        );
        assert_eq!(config.timeout, Duration::from_millis(2500));
        assert_eq!(
            config.sampler,
            SamplerConfig {
                parent_based: true,
                root: RootSampler::Ratio(0.25)
            }
        );
    }

    #[test]
    fn bad_values_name_the_variable_and_the_fix() {
        let err = |pairs: &[(&str, &str)]| {
            TelemetryConfig::from_env_lookup(env(pairs))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(&[("ATHYPER_LOG_FORMAT", "xml")]),
            "invalid ATHYPER_LOG_FORMAT `xml`: expected one of `json`, `pretty`"
        );
        assert_eq!(
            err(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http")]),
            "invalid OTEL_EXPORTER_OTLP_PROTOCOL `http`: expected one of `grpc`, `http/protobuf`, `http/json`"
        );
        assert_eq!(
            err(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")]),
            "invalid OTEL_EXPORTER_OTLP_ENDPOINT `collector:4318`: expected an http:// or https:// URL such as `http://127.0.0.1:4318`"
        );
        assert_eq!(
            err(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "5s")]),
            "invalid OTEL_EXPORTER_OTLP_TIMEOUT `5s`: expected a whole number of milliseconds"
        );
        assert_eq!(
            err(&[("OTEL_RESOURCE_ATTRIBUTES", "team")]),
            "invalid OTEL_RESOURCE_ATTRIBUTES `team`: `team` is not `key=value`"
        );
        assert_eq!(
            err(&[
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "2")
            ]),
            "invalid OTEL_TRACES_SAMPLER_ARG `2`: expected a ratio from 0 to 1, such as `0.25`"
        );
        assert!(
            err(&[("RUST_LOG", "info,my_crate=loud")])
                .starts_with("invalid RUST_LOG `info,my_crate=loud`: "),
            "{}",
            err(&[("RUST_LOG", "info,my_crate=loud")])
        );
    }

    #[test]
    fn init_rejects_an_endpoint_without_a_scheme() {
        // Checked before anything is installed.
        let err = init(TelemetryConfig::default().otlp_endpoint("collector:4318")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid otlp_endpoint `collector:4318`: expected an http:// or https:// URL such as `http://127.0.0.1:4318`"
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Cb%3D").as_deref(), Some("a,b="));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
    }
}
