//! The span pipeline: ended spans go into a bounded queue (a full queue drops the span and
//! counts it: a request never waits for the collector), and one task sends them in batches
//! with the OTLP/HTTP protobuf exporter, on the server's runtime and through reqwest.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter as _, SpanProcessor};
use tokio::sync::{mpsc, oneshot};

use crate::config::OtlpSettings;
use crate::telemetry;

/// Spans waiting to be sent; past this they are dropped.
const QUEUE: usize = 4096;
/// Spans per export call.
const BATCH: usize = 512;
/// The longest an ended span waits before it is sent.
const DELAY: Duration = Duration::from_secs(1);

/// The export task and the means to flush it at shutdown.
#[derive(Debug)]
pub struct Exporting {
    flush: mpsc::Sender<oneshot::Sender<()>>,
    provider: Option<SdkTracerProvider>,
}

impl Exporting {
    pub(super) fn with_provider(mut self, provider: SdkTracerProvider) -> Self {
        self.provider = Some(provider);
        self
    }

    /// Sends every span ended so far, waiting at most `limit`.
    pub async fn flush(&self, limit: Duration) -> bool {
        let (done, finished) = oneshot::channel();
        if self.flush.send(done).await.is_err() {
            return false;
        }
        tokio::time::timeout(limit, finished)
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

impl Drop for Exporting {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // Only closes the queue (see `Queue::shutdown_with_timeout`): never blocks.
            let _ = provider.shutdown();
        }
    }
}

/// Builds the exporter and starts its task.
pub(super) fn start(settings: &OtlpSettings) -> Result<(Queue, Exporting), String> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(settings.timeout)
        .timeout(settings.timeout)
        .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("the OTLP client cannot be built: {e}"))?;
    let headers: HashMap<String, String> = settings
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), value.expose().clone()))
        .collect();
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(format!("{}/v1/traces", settings.endpoint))
        .with_timeout(settings.timeout)
        .with_headers(headers)
        .build()
        .map_err(|e| format!("the OTLP exporter cannot be built: {e}"))?;
    exporter.set_resource(&super::resource());
    let (spans, queued) = mpsc::channel(QUEUE);
    let (flush, flushes) = mpsc::channel(4);
    tokio::spawn(run(exporter, queued, flushes));
    let dropped = telemetry::otlp_spans("dropped");
    Ok((
        Queue { spans, dropped },
        Exporting {
            flush,
            provider: None,
        },
    ))
}

async fn run(
    exporter: opentelemetry_otlp::SpanExporter,
    mut queued: mpsc::Receiver<SpanData>,
    mut flushes: mpsc::Receiver<oneshot::Sender<()>>,
) {
    let exported = telemetry::otlp_spans("exported");
    let failed = telemetry::otlp_spans("failed");
    let send = async |batch: &mut Vec<SpanData>| {
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        match exporter.export(std::mem::take(batch)).await {
            Ok(()) => exported.increment(n),
            Err(error) => {
                failed.increment(n);
                tracing::debug!(%error, spans = n, "OTLP export failed");
            }
        }
    };
    let mut batch = Vec::with_capacity(BATCH);
    let mut ticks = tokio::time::interval(DELAY);
    loop {
        tokio::select! {
            got = queued.recv_many(&mut batch, BATCH) => {
                if got == 0 {
                    send(&mut batch).await;
                    return;
                }
                if batch.len() >= BATCH {
                    send(&mut batch).await;
                }
            }
            _ = ticks.tick() => send(&mut batch).await,
            Some(done) = flushes.recv() => {
                while let Ok(span) = queued.try_recv() {
                    batch.push(span);
                    if batch.len() >= BATCH {
                        send(&mut batch).await;
                    }
                }
                send(&mut batch).await;
                let _ = done.send(());
            }
        }
    }
}

/// The span processor: hands ended spans to the export task, or drops them when it lags.
#[derive(Debug)]
pub struct Queue {
    spans: mpsc::Sender<SpanData>,
    dropped: metrics::Counter,
}

impl SpanProcessor for Queue {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if self.spans.try_send(span).is_err() {
            self.dropped.increment(1);
        }
    }

    /// Flushing waits on the runtime; [`Exporting::flush`] does it without blocking.
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}
