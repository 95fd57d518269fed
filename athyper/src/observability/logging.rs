//! Log lines: JSON for machines, or human-readable text in a terminal.
//!
//! A JSON line is one object with these keys, in this order; a key without
//! a value is left out. Spread out here, a job attempt's line:
//!
//! ```json
//! {
//!   "timestamp": "2026-05-04T10:11:12.345678Z",
//!   "level": "WARN",
//!   "target": "athyper::queue::worker",
//!   "message": "job attempt failed; retry scheduled",
//!   "fields": { "error": "the mail server is busy", "retry_in": "200ms" },
//!   "trace_id": "0af7651916cd43dd8448eb211c80319c",
//!   "span_id": "b7ad6b7169203331",
//!   "request_id": "2f1d0c7e-6a55-4d8e-9a43-5b8c1c1f0e21",
//!   "origin_trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
//!   "span": { "name": "job", "job.attempt": 2, "job.id": "42", "job.name": "send_welcome" }
//! }
//! ```
//!
//! | key | what |
//! |---|---|
//! | `timestamp`, `level`, `target`, `message` | when, how bad, which module, what happened |
//! | `fields` | the event's own fields |
//! | `trace_id`, `span_id` | the OpenTelemetry ids of the current span (with the `otel` feature; present whether or not traces are exported, so logs and traces correlate) |
//! | `request_id` | from the [`RequestContext`](crate::observability::RequestContext): the HTTP request the work is done for, in a job too |
//! | `origin_trace_id` | in a job attempt whose own trace is not the one that added the job (a retry: it links to the producer's trace rather than being part of it), the trace id of the add; searching for the request's trace id finds every attempt's lines by `trace_id` or `origin_trace_id` |
//! | `span` | the current span's `name`, and the fields of every span the event is in, from the root in (an inner span's field wins over an outer one of the same name) |
//!
//! `span` leaves out what another key or the trace already says:
//! `otel.*` fields (instructions to the OpenTelemetry layer: span name,
//! kind, status), the `messaging.*` attributes of the queue's own spans
//! (the same facts as `job.*`, named for trace backends) and a `request_id`
//! equal to the line's. A job attempt's line is about 400 bytes and a line
//! in an HTTP request about 350, some 190 of them the timestamp, level and
//! the three ids (with a UUID request id); `tests/json_logs.rs` measures
//! both.
//!
//! Only what an event or span records is written: athyper's own spans and
//! events never record job payloads.

use std::fmt;
use std::io::IsTerminal;
use std::str::FromStr;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer as _};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::trace;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogFormat {
    /// One JSON object per line (see [the module docs](self)).
    Json,
    /// Human-readable lines, coloured in a terminal.
    Pretty,
}

impl LogFormat {
    /// Pretty when stdout is a terminal, JSON otherwise (a container, a
    /// pipe, a file).
    pub fn detect() -> LogFormat {
        if std::io::stdout().is_terminal() {
            LogFormat::Pretty
        } else {
            LogFormat::Json
        }
    }

    /// The name `ATHYPER_LOG_FORMAT` takes.
    pub const fn as_str(self) -> &'static str {
        match self {
            LogFormat::Json => "json",
            LogFormat::Pretty => "pretty",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(LogFormat::Json),
            "pretty" => Ok(LogFormat::Pretty),
            _ => Err("expected one of `json`, `pretty`".to_owned()),
        }
    }
}

/// A [`FormatEvent`] writing each event as one JSON line with the trace
/// ids and the request id. Pair it with
/// [`JsonFields`](tracing_subscriber::fmt::format::JsonFields), so that
/// span fields are kept as JSON:
///
/// ```
/// use athyper::observability::logging::JsonFormat;
/// use tracing_subscriber::fmt::format::JsonFields;
/// use tracing_subscriber::prelude::*;
///
/// let layer = tracing_subscriber::fmt::layer()
///     .event_format(JsonFormat::new())
///     .fmt_fields(JsonFields::new());
/// let subscriber = tracing_subscriber::registry().with(layer);
/// # let _ = subscriber;
/// ```
///
/// [`telemetry::init`](crate::observability::telemetry::init) installs it
/// for the JSON format.
#[derive(Clone, Debug, Default)]
pub struct JsonFormat {
    _private: (),
}

impl JsonFormat {
    /// The formatter.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S, N> FormatEvent<S, N> for JsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let line = json_line(ctx, event).map_err(|_| fmt::Error)?;
        writer.write_str(&line)?;
        writer.write_char('\n')
    }
}

fn json_line<S, N>(
    ctx: &FmtContext<'_, S, N>,
    event: &Event<'_>,
) -> Result<String, serde_json::Error>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let meta = event.metadata();
    let mut fields = EventFields::default();
    event.record(&mut fields);

    let mut timestamp = String::with_capacity(32);
    // Formatting into a `String` cannot fail.
    let _ = SystemTime.format_time(&mut Writer::new(&mut timestamp));
    let ids =
        trace::with_current_ids(|trace_id, span_id| (trace_id.to_string(), span_id.to_string()));
    let request_id = trace::with_current(|cx| cx.request_id().to_owned());
    let trace_id = ids.as_ref().map(|(trace_id, _)| trace_id.as_str());
    let origin = trace::with_origin(|origin| (Some(origin) != trace_id).then(|| origin.to_owned()))
        .flatten();

    let mut out = Vec::with_capacity(384);
    let mut ser = serde_json::Serializer::new(&mut out);
    let mut map = ser.serialize_map(None)?;
    map.serialize_entry("timestamp", &timestamp)?;
    map.serialize_entry("level", meta.level().as_str())?;
    map.serialize_entry(
        "target",
        fields.log_target.as_deref().unwrap_or(meta.target()),
    )?;
    if let Some(message) = &fields.message {
        map.serialize_entry("message", message)?;
    }
    if !fields.fields.is_empty() {
        map.serialize_entry("fields", &fields.fields)?;
    }
    if let Some((trace_id, span_id)) = &ids {
        map.serialize_entry("trace_id", trace_id)?;
        map.serialize_entry("span_id", span_id)?;
    }
    if let Some(request_id) = &request_id {
        map.serialize_entry("request_id", request_id)?;
    }
    if let Some(origin) = &origin {
        map.serialize_entry("origin_trace_id", origin)?;
    }
    if let Some(scope) = ctx.event_scope() {
        let mut span = SpanContext::default();
        for entered in scope.from_root() {
            span.add::<S, N>(&entered, request_id.as_deref());
        }
        map.serialize_entry("span", &span)?;
    }
    map.end()?;
    // serde_json writes UTF-8 only.
    Ok(String::from_utf8(out).unwrap_or_default())
}

/// The `span` of a line: the innermost span's name and the fields of
/// every span in scope.
#[derive(Default)]
struct SpanContext {
    name: &'static str,
    fields: Vec<(String, Value)>,
}

impl SpanContext {
    /// Adds `span`, inside those added before. With `JsonFields` a span's
    /// fields are stored as a JSON object; with another field formatter
    /// their text is kept as is, as `fields`.
    fn add<S, N>(&mut self, span: &SpanRef<'_, S>, request_id: Option<&str>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
    {
        self.name = span.name();
        let queue_span = trace::is_queue_span(span.metadata());
        let extensions = span.extensions();
        let Some(stored) = extensions.get::<FormattedFields<N>>() else {
            return;
        };
        if stored.fields.is_empty() {
            return;
        }
        let fields = match serde_json::from_str::<Map<String, Value>>(&stored.fields) {
            Ok(fields) => fields,
            Err(_) => {
                self.put("fields".to_owned(), Value::from(stored.fields.as_str()));
                return;
            }
        };
        for (key, value) in fields {
            let repeated = key.starts_with("otel.")
                || (queue_span && key.starts_with("messaging."))
                || key == "name"
                || (key == "request_id" && request_id.is_some_and(|id| value == id));
            if !repeated {
                self.put(key, value);
            }
        }
    }

    fn put(&mut self, key: String, value: Value) {
        match self.fields.iter_mut().find(|(k, _)| *k == key) {
            Some(field) => field.1 = value,
            None => self.fields.push((key, value)),
        }
    }
}

impl Serialize for SpanContext {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1 + self.fields.len()))?;
        map.serialize_entry("name", self.name)?;
        for (key, value) in &self.fields {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// An event's fields: the message apart, `log` crate metadata folded in.
#[derive(Default)]
struct EventFields {
    message: Option<String>,
    log_target: Option<String>,
    fields: Map<String, Value>,
}

impl EventFields {
    fn put(&mut self, field: &Field, value: Value) {
        match field.name() {
            "message" => {
                self.message = Some(match value {
                    Value::String(s) => s,
                    other => other.to_string(),
                });
            }
            // Records bridged from the `log` crate carry their origin as
            // fields; the target replaces the bridge's own.
            "log.target" => {
                if let Value::String(s) = value {
                    self.log_target = Some(s);
                }
            }
            "log.module_path" | "log.file" | "log.line" => {}
            name => {
                let name = name.strip_prefix("r#").unwrap_or(name);
                self.fields.insert(name.to_owned(), value);
            }
        }
    }
}

impl Visit for EventFields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::fmt::format::JsonFields;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::observability::RequestContext;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Buffer {
        fn lines(&self) -> Vec<Value> {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect()
        }
    }

    fn json_layer<S>(buffer: &Buffer) -> impl tracing_subscriber::Layer<S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        tracing_subscriber::fmt::layer()
            .event_format(JsonFormat::new())
            .fmt_fields(JsonFields::new())
            .with_writer(buffer.clone())
    }

    #[test]
    fn parses_formats() {
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!(" Pretty ".parse::<LogFormat>(), Ok(LogFormat::Pretty));
        assert_eq!(
            "xml".parse::<LogFormat>(),
            Err("expected one of `json`, `pretty`".to_owned())
        );
    }

    #[test]
    fn writes_fields_spans_and_the_request_id() {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::registry().with(json_layer(&buffer));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("outside");
            let span = tracing::info_span!(
                "outer",
                route = "/x",
                n = 1,
                otel.kind = "server",
                request_id = "req-9",
                messaging.system = "kafka",
            );
            let _outer = span.enter();
            let inner = tracing::info_span!("inner", n = 2, otel.name = "inner work");
            let _inner = inner.enter();
            RequestContext::new("req-9").sync_scope(|| {
                tracing::warn!(count = 3, ok = true, who = %"ada", r#type = "t", "hello {}", "world");
            });
        });
        let lines = buffer.lines();
        assert_eq!(lines.len(), 2);
        let outside = &lines[0];
        assert_eq!(outside["message"], "outside");
        assert_eq!(outside["level"], "INFO");
        assert!(outside.get("span").is_none() && outside.get("request_id").is_none());
        assert!(outside.get("trace_id").is_none(), "no OpenTelemetry layer");

        let line = &lines[1];
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["message"], "hello world");
        assert_eq!(
            line["fields"],
            serde_json::json!({ "count": 3, "ok": true, "who": "ada", "type": "t" })
        );
        assert_eq!(line["request_id"], "req-9");
        // One object: the inner span's name, every span's fields with the
        // inner `n` winning, no `otel.*`, no second request id; `messaging.*`
        // of a span that is not the queue's own stays.
        assert_eq!(
            line["span"],
            serde_json::json!({ "name": "inner", "route": "/x", "n": 2, "messaging.system": "kafka" })
        );
        assert!(line.get("spans").is_none() && line.get("origin_trace_id").is_none());
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
        // Keys in the documented order.
        let raw = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let raw = raw.lines().nth(1).unwrap();
        let at = |key: &str| raw.find(&format!("\"{key}\":")).unwrap();
        let order = [
            "timestamp",
            "level",
            "target",
            "message",
            "fields",
            "request_id",
            "span",
        ];
        assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "{raw}");
        assert!(raw.contains(r#""span":{"name":"inner","#), "{raw}");
    }

    #[test]
    fn a_job_attempt_carries_its_producers_trace_id() {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::registry().with(json_layer(&buffer));
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        tracing::subscriber::with_default(subscriber, || {
            let trace = crate::trace::JobTrace {
                traceparent: Some(traceparent.to_owned()),
                ..Default::default()
            };
            let span = crate::trace::consumer_span("mail", "42", "send", 2, &trace);
            let _entered = span.enter();
            crate::trace::OriginTraceId::from_traceparent(traceparent)
                .unwrap()
                .sync_scope(|| tracing::warn!("job attempt failed; retry scheduled"));
        });
        let line = &buffer.lines()[0];
        // No OpenTelemetry layer, so no trace id of its own: the origin is
        // the only one.
        assert_eq!(line["origin_trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            line["span"],
            serde_json::json!({ "name": "job", "job.id": "42", "job.name": "send", "job.attempt": 2 })
        );
    }

    #[cfg(feature = "otel")]
    #[test]
    fn carries_the_opentelemetry_ids_of_the_current_span() {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt;

        // No exporter: the provider only hands out ids.
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
            .with(json_layer(&buffer));
        let other = "4bf92f3577b34da6a3ce929d0e0e4736";
        let (trace_id, span_id) = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("work");
            let _entered = span.enter();
            tracing::info!("inside");
            let cx = span.context();
            let ids = opentelemetry::trace::TraceContextExt::span(&cx)
                .span_context()
                .clone();
            let (trace_id, span_id) = (ids.trace_id().to_string(), ids.span_id().to_string());
            let origin = |trace: &str| {
                crate::trace::OriginTraceId::from_traceparent(&format!("00-{trace}-{span_id}-01"))
                    .unwrap()
            };
            origin(&trace_id).sync_scope(|| tracing::info!("first attempt"));
            origin(other).sync_scope(|| tracing::info!("retry"));
            (trace_id, span_id)
        });
        let lines = buffer.lines();
        assert_eq!(lines[0]["trace_id"], trace_id.as_str());
        assert_eq!(lines[0]["span_id"], span_id.as_str());
        assert_eq!(trace_id.len(), 32);
        // The origin only when it is not the line's own trace.
        assert!(lines[1].get("origin_trace_id").is_none(), "{}", lines[1]);
        assert_eq!(lines[2]["trace_id"], trace_id.as_str());
        assert_eq!(lines[2]["origin_trace_id"], other);
    }
}
