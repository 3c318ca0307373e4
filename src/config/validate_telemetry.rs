//! Validation of `telemetry`: trace context and the OTLP exporter.

use std::time::Duration;

use super::raw;
use super::validate::Validator;
use super::{OtlpSettings, TelemetrySettings};

impl Validator<'_> {
    pub(super) fn telemetry(&mut self, raw: raw::RawTelemetry) -> TelemetrySettings {
        TelemetrySettings {
            trust_client_trace: raw.trust_client_trace.is_some_and(|t| t.value),
            otlp: raw.otlp.and_then(|o| self.otlp(o)),
        }
    }

    fn otlp(&mut self, raw: raw::RawOtlp) -> Option<OtlpSettings> {
        if let Some(protocol) = &raw.protocol
            && protocol.value != "http/protobuf"
        {
            self.error(
                &protocol.referenced,
                "telemetry.otlp.protocol",
                "must be `http/protobuf` (the only protocol supported)",
            );
        }
        let sample_ratio = match raw.sample_ratio {
            None => 0.1,
            Some(r) if (0.0..=1.0).contains(&r.value) => r.value,
            Some(r) => {
                self.error(
                    &r.referenced,
                    "telemetry.otlp.sample_ratio",
                    "must be between 0.0 and 1.0",
                );
                0.1
            }
        };
        let timeout = self.duration(
            raw.timeout,
            "telemetry.otlp.timeout",
            Duration::from_secs(10),
        );
        let mut headers = Vec::new();
        for (name, value) in raw.headers.unwrap_or_default() {
            let field = format!("telemetry.otlp.headers.{name}");
            let at = value.referenced;
            if http::HeaderName::try_from(name.as_str()).is_err() {
                self.error(&at, &field, "is not a header name");
                continue;
            }
            let Some(source) = self.text(value, &field) else {
                continue;
            };
            match source.read() {
                Ok(value) if http::HeaderValue::try_from(value.expose().as_str()).is_ok() => {
                    headers.push((name, value));
                }
                // Unreadable sources were reported by `text`.
                Ok(_) => self.error(&at, &field, "is not a valid header value"),
                Err(_) => {}
            }
        }
        let Some(endpoint) = raw.endpoint else {
            self.missing(
                "telemetry.otlp.endpoint",
                "is required: the collector's base URL, e.g. `http://127.0.0.1:4318`",
            );
            return None;
        };
        let text = endpoint.value.trim().trim_end_matches('/');
        let usable = text.parse::<http::Uri>().ok().is_some_and(|u| {
            matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
        });
        if !usable {
            self.error(
                &endpoint.referenced,
                "telemetry.otlp.endpoint",
                format!("`{text}` is not an http:// or https:// URL"),
            );
            return None;
        }
        Some(OtlpSettings {
            endpoint: text.to_owned(),
            sample_ratio,
            headers,
            timeout,
        })
    }
}
