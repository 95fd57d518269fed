//! Reading the environment: [`TelemetryConfig::from_env`].
//!
//! The OpenTelemetry SDK and the OTLP exporter read their `OTEL_*`
//! variables themselves, and skip a value they cannot use with at most a
//! warning. Here every such variable is checked first, so that a mistake
//! is an error naming the variable and the value; athyper keeps only what
//! decides what to install (the log format and filter, whether to use
//! OpenTelemetry, whether and how to export) and the resource attribute
//! values, which the SDK leaves percent-encoded.

use percent_encoding::percent_decode_str;

use super::config::{Endpoint, TelemetryConfig, check_url, parse_filter};
use super::error::TelemetryError;

/// The ratio samplers, which take `OTEL_TRACES_SAMPLER_ARG`.
const RATIO_SAMPLERS: [&str; 2] = ["traceidratio", "parentbased_traceidratio"];

/// Every sampler the SDK knows by name, as it spells them.
const SAMPLERS: [&str; 6] = [
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
];

impl TelemetryConfig {
    /// Reads and checks the variables in [the table](super#environment)
    /// from the process environment.
    pub fn from_env() -> Result<Self, TelemetryError> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    /// The same through `lookup`. An empty value counts as unset, as the
    /// SDK counts it.
    pub(super) fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, TelemetryError> {
        let get = |var: &'static str| {
            lookup(var)
                .filter(|v| !v.trim().is_empty())
                .map(|v| (var, v))
        };
        let mut config = TelemetryConfig::default();

        if let Some((var, directives)) = get("RUST_LOG") {
            parse_filter(&directives, var)?;
            config.log_filter = Some((directives, var));
        }
        if let Some((var, format)) = get("ATHYPER_LOG_FORMAT") {
            let parsed = format
                .parse()
                .map_err(|reason: String| TelemetryError::config(var, &format, reason))?;
            config.log_format = Some(parsed);
        }
        if let Some((_, disabled)) = get("OTEL_SDK_DISABLED") {
            config.otel = !disabled.trim().eq_ignore_ascii_case("true");
        }
        let exporting = match get("OTEL_TRACES_EXPORTER") {
            None => true,
            Some((_, v)) if v.trim() == "otlp" => true,
            Some((_, v)) if v.trim() == "none" => false,
            Some((var, v)) => {
                return Err(TelemetryError::config(var, &v, "expected `otlp` or `none`"));
            }
        };

        // The general variable, then the signal's own, which wins in the
        // exporter; both are checked when both are set.
        let both = |general, signal| [get(general), get(signal)].into_iter().flatten();
        for (var, url) in both(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ) {
            check_url(&url, var)?;
            if exporting {
                config.endpoint = Some(Endpoint::Env(var, url));
            }
        }
        for (var, protocol) in both(
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        ) {
            config.protocol = protocol
                .parse()
                .map_err(|reason: String| TelemetryError::config(var, &protocol, reason))?;
        }
        for (var, ms) in both(
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        ) {
            if ms.parse::<u64>().is_err() {
                return Err(TelemetryError::config(
                    var,
                    &ms,
                    "expected a whole number of milliseconds",
                ));
            }
        }
        for (var, headers) in both(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        ) {
            parse_pairs(&headers)
                .map_err(|reason| TelemetryError::config(var, &headers, reason))?;
        }
        if let Some((var, attributes)) = get("OTEL_RESOURCE_ATTRIBUTES") {
            let pairs = parse_pairs(&attributes)
                .map_err(|reason| TelemetryError::config(var, &attributes, reason))?;
            // OTEL_SERVICE_NAME wins over a `service.name` here, as in the
            // SDK, which reads both.
            let named = get("OTEL_SERVICE_NAME").is_some();
            config.resource = pairs
                .into_iter()
                .filter(|(key, _)| !(named && key == "service.name"))
                .collect();
        }
        if let Some((var, sampler)) = get("OTEL_TRACES_SAMPLER") {
            if !SAMPLERS.contains(&sampler.as_str()) {
                return Err(TelemetryError::config(
                    var,
                    &sampler,
                    "expected one of `always_on`, `always_off`, `traceidratio`, `parentbased_always_on`, `parentbased_always_off`, `parentbased_traceidratio`",
                ));
            }
            if RATIO_SAMPLERS.contains(&sampler.as_str())
                && let Some((var, arg)) = get("OTEL_TRACES_SAMPLER_ARG")
                && !arg.parse::<f64>().is_ok_and(|r| (0.0..=1.0).contains(&r))
            {
                return Err(TelemetryError::config(
                    var,
                    &arg,
                    "expected a ratio from 0 to 1, such as `0.25`",
                ));
            }
        }
        Ok(config)
    }
}

/// `key=value,key=value` with percent-encoded values, as
/// `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_EXPORTER_OTLP_HEADERS` take; the
/// values decoded.
fn parse_pairs(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| format!("`{item}` is not `key=value`"))?;
            let key = key.trim();
            if key.is_empty() {
                return Err(format!("`{item}` has an empty key"));
            }
            let value = percent_decode_str(value.trim())
                .decode_utf8()
                .map_err(|_| format!("the value of `{key}` is not UTF-8 once percent-decoded"))?;
            Ok((key.to_owned(), value.into_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observability::telemetry::OtlpProtocol;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |var| pairs.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone())
    }

    fn config(pairs: &[(&str, &str)]) -> TelemetryConfig {
        TelemetryConfig::from_lookup(env(pairs)).unwrap()
    }

    fn error(pairs: &[(&str, &str)]) -> String {
        TelemetryConfig::from_lookup(env(pairs))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn an_empty_environment_exports_nothing() {
        let config = config(&[]);
        assert!(!config.exports_traces());
        assert_eq!(config.exporter_protocol(), OtlpProtocol::HttpProtobuf);
        assert!(config.otel);
        assert!(config.resource.is_empty());
        config.filter().unwrap();
    }

    #[test]
    fn an_endpoint_turns_export_on_and_the_signal_variable_wins() {
        let general = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")];
        assert_eq!(
            config(&general).endpoint,
            Some(Endpoint::Env(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://collector:4318".to_owned()
            ))
        );

        let both = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://traces:9999/in",
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
        ]);
        assert_eq!(
            both.endpoint.as_ref().map(Endpoint::source),
            Some((
                "http://traces:9999/in",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
            ))
        );
        assert_eq!(both.exporter_protocol(), OtlpProtocol::HttpJson);

        let off = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ];
        assert!(!config(&off).exports_traces());

        let disabled = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_SDK_DISABLED", "TRUE"),
        ]);
        assert!(!disabled.exports_traces());
        assert!(!disabled.otel);
    }

    #[test]
    fn resource_attribute_values_are_percent_decoded() {
        let attributes = (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=from%20attrs, deployment.environment.name=prod%20eu%2C1",
        );
        assert_eq!(
            config(&[attributes]).resource,
            [
                ("service.name".to_owned(), "from attrs".to_owned()),
                (
                    "deployment.environment.name".to_owned(),
                    "prod eu,1".to_owned()
                )
            ]
        );
        // OTEL_SERVICE_NAME wins, so the attribute is left to the SDK.
        let named = config(&[attributes, ("OTEL_SERVICE_NAME", "billing")]);
        assert_eq!(named.resource.len(), 1);
        assert_eq!(named.resource[0].0, "deployment.environment.name");
    }

    #[test]
    fn good_headers_timeouts_and_samplers_pass() {
        let config = config(&[
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%3Db,x-team=core"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "API-KEY=b"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ]);
        // The exporter reads headers and timeouts itself.
        assert!(config.headers.is_empty());
        assert_eq!(config.timeout, None);
        // An argument is only checked for the samplers that take one.
        let unused_arg = TelemetryConfig::from_lookup(env(&[
            ("OTEL_TRACES_SAMPLER", "always_on"),
            ("OTEL_TRACES_SAMPLER_ARG", "anything"),
        ]));
        assert!(unused_arg.is_ok());
    }

    #[test]
    fn bad_values_name_the_variable_and_the_fix() {
        assert_eq!(
            error(&[("ATHYPER_LOG_FORMAT", "xml")]),
            "invalid ATHYPER_LOG_FORMAT `xml`: expected one of `json`, `pretty`"
        );
        assert_eq!(
            error(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http")]),
            "invalid OTEL_EXPORTER_OTLP_PROTOCOL `http`: expected one of `grpc`, `http/protobuf`, `http/json`"
        );
        assert_eq!(
            error(&[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "thrift")]),
            "invalid OTEL_EXPORTER_OTLP_TRACES_PROTOCOL `thrift`: expected one of `grpc`, `http/protobuf`, `http/json`"
        );
        assert_eq!(
            error(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")]),
            "invalid OTEL_EXPORTER_OTLP_ENDPOINT `collector:4318`: expected an http:// or https:// URL such as `http://127.0.0.1:4318`"
        );
        assert_eq!(
            error(&[(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                " http://collector:4318"
            )]),
            "invalid OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ` http://collector:4318`: expected an http:// or https:// URL such as `http://127.0.0.1:4318`"
        );
        assert_eq!(
            error(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "5s")]),
            "invalid OTEL_EXPORTER_OTLP_TIMEOUT `5s`: expected a whole number of milliseconds"
        );
        assert_eq!(
            error(&[("OTEL_EXPORTER_OTLP_HEADERS", "api-key")]),
            "invalid OTEL_EXPORTER_OTLP_HEADERS `api-key`: `api-key` is not `key=value`"
        );
        assert_eq!(
            error(&[("OTEL_RESOURCE_ATTRIBUTES", "team")]),
            "invalid OTEL_RESOURCE_ATTRIBUTES `team`: `team` is not `key=value`"
        );
        assert_eq!(
            error(&[("OTEL_RESOURCE_ATTRIBUTES", "team=%ff")]),
            "invalid OTEL_RESOURCE_ATTRIBUTES `team=%ff`: the value of `team` is not UTF-8 once percent-decoded"
        );
        assert_eq!(
            error(&[("OTEL_RESOURCE_ATTRIBUTES", "=x")]),
            "invalid OTEL_RESOURCE_ATTRIBUTES `=x`: `=x` has an empty key"
        );
        assert_eq!(
            error(&[("OTEL_TRACES_SAMPLER", "ALWAYS_ON")]),
            "invalid OTEL_TRACES_SAMPLER `ALWAYS_ON`: expected one of `always_on`, `always_off`, `traceidratio`, `parentbased_always_on`, `parentbased_always_off`, `parentbased_traceidratio`"
        );
        assert_eq!(
            error(&[
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "2")
            ]),
            "invalid OTEL_TRACES_SAMPLER_ARG `2`: expected a ratio from 0 to 1, such as `0.25`"
        );
        assert_eq!(
            error(&[("OTEL_TRACES_EXPORTER", "zipkin")]),
            "invalid OTEL_TRACES_EXPORTER `zipkin`: expected `otlp` or `none`"
        );
        let filter = error(&[("RUST_LOG", "info,my_crate=loud")]);
        assert!(
            filter.starts_with("invalid RUST_LOG `info,my_crate=loud`: "),
            "{filter}"
        );
    }
}
