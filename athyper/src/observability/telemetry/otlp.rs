//! The OpenTelemetry pipeline: a tracer provider whose spans carry W3C ids
//! and, when an endpoint is set, go to an OTLP exporter through the SDK's
//! batch processor, running as a task on the application's Tokio runtime
//! (the exporter's HTTP and gRPC clients need one).

use std::time::Duration;

use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::runtime::Tokio;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanData};

use super::config::TelemetryConfig;
use super::error::TelemetryError;

/// The tracer provider, shut down once.
pub(super) struct Pipeline {
    provider: SdkTracerProvider,
    exports: bool,
    shut_down: bool,
}

impl Pipeline {
    pub(super) fn start(config: &TelemetryConfig) -> Result<Pipeline, TelemetryError> {
        // The sampler is the SDK's default, which reads
        // OTEL_TRACES_SAMPLER itself.
        let mut builder = SdkTracerProvider::builder().with_resource(resource(config));
        if let Some(endpoint) = &config.endpoint {
            if tokio::runtime::Handle::try_current().is_err() {
                return Err(TelemetryError::NoRuntime);
            }
            builder = builder.with_span_processor(
                BatchSpanProcessor::builder(Quiet(export::exporter(config, endpoint)?), Tokio)
                    .build(),
            );
        }
        Ok(Pipeline {
            provider: builder.build(),
            exports: config.endpoint.is_some(),
            shut_down: false,
        })
    }

    pub(super) fn tracer(&self) -> SdkTracer {
        let scope = InstrumentationScope::builder("athyper")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        self.provider.tracer_with_scope(scope)
    }

    pub(super) fn exports(&self) -> bool {
        self.exports
    }

    /// Lets code using the `opentelemetry` API directly join in.
    pub(super) fn install_globals(&self) {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        opentelemetry::global::set_tracer_provider(self.provider.clone());
    }

    /// Exports the spans buffered so far.
    pub(super) async fn flush(&self) -> Result<(), TelemetryError> {
        let provider = self.provider.clone();
        off_runtime(move || provider.force_flush(), None).await
    }

    /// Exports what is buffered and stops the exporter, waiting up to
    /// `timeout`.
    pub(super) async fn shutdown(mut self, timeout: Duration) -> Result<(), TelemetryError> {
        self.shut_down = true;
        let provider = self.provider.clone();
        off_runtime(
            move || provider.shutdown_with_timeout(timeout),
            Some(timeout),
        )
        .await
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if self.shut_down {
            return;
        }
        let provider = self.provider.clone();
        match tokio::runtime::Handle::try_current() {
            // Blocking here could stall the very runtime the export task
            // needs: shut down beside it, without waiting.
            Ok(runtime) => drop(runtime.spawn_blocking(move || provider.shutdown())),
            Err(_) => drop(provider.shutdown()),
        }
    }
}

/// Runs a blocking SDK call (it waits on the export task) on the blocking
/// pool when inside a Tokio runtime, so that a current-thread runtime
/// keeps running the export meanwhile; gives up after `timeout`.
async fn off_runtime(
    call: impl FnOnce() -> OTelSdkResult + Send + 'static,
    timeout: Option<Duration>,
) -> Result<(), TelemetryError> {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return call().map_err(|e| TelemetryError::Flush(e.into()));
    };
    let task = runtime.spawn_blocking(call);
    let joined = match timeout {
        Some(timeout) => tokio::time::timeout(timeout, task)
            .await
            .map_err(|_| TelemetryError::FlushTimeout { timeout })?,
        None => task.await,
    };
    match joined {
        Ok(result) => result.map_err(|e| TelemetryError::Flush(e.into())),
        Err(panic) => std::panic::resume_unwind(panic.into_panic()),
    }
}

/// The SDK's resource (`service.name` from `OTEL_SERVICE_NAME`, the
/// attributes of `OTEL_RESOURCE_ATTRIBUTES`, the SDK's own), with the
/// configuration's attributes over it.
fn resource(config: &TelemetryConfig) -> Resource {
    let attributes = config
        .resource
        .iter()
        .map(|(key, value)| KeyValue::new(key.clone(), value.clone()));
    let builder = Resource::builder().with_attributes(attributes);
    match &config.service_name {
        Some(name) => builder.with_service_name(name.clone()),
        None => builder,
    }
    .build()
}

/// The OTLP exporter, over the transports this build has.
#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
mod export {
    use opentelemetry_otlp::{ExporterBuildError, SpanExporter, WithExportConfig};

    use super::super::config::{Endpoint, OtlpProtocol, TelemetryConfig};
    use super::super::error::TelemetryError;

    /// The OTLP exporter for `config`. What the code did not set (the
    /// endpoint from the environment, headers, timeout, compression) the
    /// exporter reads from the environment itself.
    pub(super) fn exporter(
        config: &TelemetryConfig,
        endpoint: &Endpoint,
    ) -> Result<SpanExporter, TelemetryError> {
        let base_url = match endpoint {
            Endpoint::Code(url) => Some(url.trim_end_matches('/')),
            Endpoint::Env(..) => None,
        };
        let built = match config.protocol {
            OtlpProtocol::Grpc => grpc(config, base_url)?,
            OtlpProtocol::HttpProtobuf | OtlpProtocol::HttpJson => http(config, base_url)?,
        };
        built.map_err(|e| TelemetryError::Exporter(e.into()))
    }

    type Built = Result<SpanExporter, ExporterBuildError>;

    #[cfg(feature = "otlp-grpc")]
    fn grpc(config: &TelemetryConfig, base_url: Option<&str>) -> Result<Built, TelemetryError> {
        let builder = SpanExporter::builder().with_tonic();
        Ok(from_code(builder, base_url.map(str::to_owned), config).build())
    }

    #[cfg(not(feature = "otlp-grpc"))]
    fn grpc(_: &TelemetryConfig, _: Option<&str>) -> Result<Built, TelemetryError> {
        Err(TelemetryError::TransportNotBuilt {
            protocol: OtlpProtocol::Grpc,
            feature: "otlp-grpc",
        })
    }

    #[cfg(feature = "otlp-http")]
    fn http(config: &TelemetryConfig, base_url: Option<&str>) -> Result<Built, TelemetryError> {
        use opentelemetry_otlp::{Protocol, WithHttpConfig};
        // Set explicitly: the exporter's own default follows its enabled
        // features, not the specification's `http/protobuf`.
        let protocol = match config.protocol {
            OtlpProtocol::HttpJson => Protocol::HttpJson,
            _ => Protocol::HttpBinary,
        };
        let mut builder = SpanExporter::builder().with_http().with_protocol(protocol);
        if !config.headers.is_empty() {
            builder = builder.with_headers(config.headers.iter().cloned().collect());
        }
        // An HTTP URL given to the exporter is used as is: the path is added.
        let traces_url = base_url.map(|url| format!("{url}/v1/traces"));
        Ok(from_code(builder, traces_url, config).build())
    }

    #[cfg(not(feature = "otlp-http"))]
    fn http(config: &TelemetryConfig, _: Option<&str>) -> Result<Built, TelemetryError> {
        Err(TelemetryError::TransportNotBuilt {
            protocol: config.protocol,
            feature: "otlp-http",
        })
    }

    /// `builder` with the endpoint and timeout set in code, if they were.
    fn from_code<B: WithExportConfig>(
        mut builder: B,
        url: Option<String>,
        config: &TelemetryConfig,
    ) -> B {
        if let Some(url) = url {
            builder = builder.with_endpoint(url);
        }
        if let Some(timeout) = config.timeout {
            builder = builder.with_timeout(timeout);
        }
        builder
    }
}

/// Without an OTLP transport, an endpoint is an error that names the
/// feature to enable.
#[cfg(not(any(feature = "otlp-http", feature = "otlp-grpc")))]
mod export {
    use super::super::config::{Endpoint, OtlpProtocol, TelemetryConfig};
    use super::super::error::TelemetryError;

    pub(super) fn exporter(
        config: &TelemetryConfig,
        _: &Endpoint,
    ) -> Result<super::NoExporter, TelemetryError> {
        Err(TelemetryError::TransportNotBuilt {
            protocol: config.protocol,
            feature: match config.protocol {
                OtlpProtocol::Grpc => "otlp-grpc",
                _ => "otlp-http",
            },
        })
    }
}

/// Stands in for the exporter a build without transports cannot make.
#[cfg(not(any(feature = "otlp-http", feature = "otlp-grpc")))]
#[derive(Debug)]
enum NoExporter {}

#[cfg(not(any(feature = "otlp-http", feature = "otlp-grpc")))]
impl opentelemetry_sdk::trace::SpanExporter for NoExporter {
    async fn export(&self, _: Vec<SpanData>) -> OTelSdkResult {
        match *self {}
    }
}

/// An exporter whose exports run with telemetry suppressed, as the SDK's
/// own export thread does: spans the HTTP stack opens while exporting must
/// not become spans to export.
#[derive(Debug)]
struct Quiet<E>(E);

impl<E: opentelemetry_sdk::trace::SpanExporter> opentelemetry_sdk::trace::SpanExporter
    for Quiet<E>
{
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        self.0
            .export(batch)
            .with_context(Context::current().with_telemetry_suppressed())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource);
    }
}

#[cfg(all(test, feature = "otlp-http"))]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::http::header;
    use opentelemetry::trace::{Span as _, Tracer as _};

    use super::*;

    /// An OTLP/HTTP receiver on a free loopback port, counting the export
    /// requests it answers.
    async fn receiver() -> (String, Arc<AtomicUsize>) {
        let received = Arc::new(AtomicUsize::new(0));
        let count = received.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move || {
                count.fetch_add(1, Ordering::SeqCst);
                // An empty protobuf message: the default response.
                async {
                    (
                        [(header::CONTENT_TYPE, "application/x-protobuf")],
                        Vec::new(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, received)
    }

    #[tokio::test(flavor = "current_thread")]
    #[cfg(not(feature = "otlp-grpc"))]
    async fn grpc_without_its_feature_is_an_error_naming_it() {
        let config = TelemetryConfig::default()
            .otlp_endpoint("http://127.0.0.1:4317")
            .otlp_protocol(super::super::OtlpProtocol::Grpc);
        let error = Pipeline::start(&config)
            .err()
            .expect("gRPC is not built in");
        assert_eq!(
            error.to_string(),
            "OTLP over `grpc` is not built in: enable athyper's `otlp-grpc` feature, or choose the other protocol with OTEL_EXPORTER_OTLP_PROTOCOL"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn exports_and_shuts_down_on_a_current_thread_runtime() {
        let (url, received) = receiver().await;
        let pipeline = Pipeline::start(&TelemetryConfig::default().otlp_endpoint(url)).unwrap();
        assert!(pipeline.exports());
        pipeline.tracer().start("work").end();
        // The export task runs on this very thread while shutdown waits.
        pipeline.shutdown(Duration::from_secs(30)).await.unwrap();
        assert_eq!(received.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn exporting_needs_a_runtime_and_ids_alone_do_not() {
        let config = TelemetryConfig::default().otlp_endpoint("http://127.0.0.1:4318");
        assert!(matches!(
            Pipeline::start(&config),
            Err(TelemetryError::NoRuntime)
        ));
        let pipeline = Pipeline::start(&TelemetryConfig::default()).unwrap();
        assert!(!pipeline.exports());
        let span = pipeline.tracer().start("work");
        assert!(span.span_context().is_valid(), "trace ids are still made");
    }
}
