//! Validation of a route's `cors` block (the keys are documented in `raw.rs`, the rules they
//! feed in `crate::cors`). Every error names the file, line and field.

use std::path::Path;

use http::{HeaderName, Method};
use serde_saphyr::Location;

use super::Validator;
use super::raw::RawCors;
use crate::cors::{Cors, OriginPattern, Origins, PreflightMode};

impl Validator {
    /// The validated block, or `None` after recording its errors. `at` is the route's name,
    /// for errors about a key that is missing.
    pub(super) fn cors(
        &mut self,
        file: &Path,
        i: usize,
        at: &Location,
        raw: RawCors,
    ) -> Option<Cors> {
        let field = |name: &str| format!("routes[{i}].cors.{name}");
        let before = self.errors.len();
        let preflight = match &raw.preflight {
            None => PreflightMode::Answer,
            Some(p) => match p.value.as_str() {
                "answer" => PreflightMode::Answer,
                "pass" => PreflightMode::Pass,
                _ => {
                    self.error(
                        file,
                        &p.referenced,
                        &field("preflight"),
                        "must be `answer` or `pass`",
                    );
                    PreflightMode::Answer
                }
            },
        };
        let credentials = raw.allow_credentials.as_ref().is_some_and(|c| c.value);
        let origins = match raw.allowed_origins {
            None if preflight == PreflightMode::Answer => {
                let where_ = raw.preflight.as_ref().map_or(*at, |p| p.referenced);
                self.error(
                    file,
                    &where_,
                    &field("allowed_origins"),
                    "`preflight: answer` needs `allowed_origins` (exact origins, `https://*.example.com` or `*`)",
                );
                Origins::List(Vec::new())
            }
            None => Origins::List(Vec::new()),
            Some(list) => {
                let star = list.iter().find(|o| o.value.trim() == "*");
                match star {
                    Some(s) if list.len() > 1 => {
                        self.error(
                            file,
                            &s.referenced,
                            &field("allowed_origins"),
                            "`*` must be the only entry: it already allows every origin",
                        );
                        Origins::Any
                    }
                    Some(s) if credentials => {
                        self.error(
                            file,
                            &s.referenced,
                            &field("allowed_origins"),
                            "`*` cannot go with `allow_credentials: true`: list the origins that may send credentials",
                        );
                        Origins::Any
                    }
                    Some(_) => Origins::Any,
                    None => {
                        let mut patterns = Vec::new();
                        for (j, o) in list.into_iter().enumerate() {
                            match OriginPattern::parse(&o.value) {
                                Ok(p) => patterns.push(p),
                                Err(message) => self.error(
                                    file,
                                    &o.referenced,
                                    &field(&format!("allowed_origins[{j}]")),
                                    message,
                                ),
                            }
                        }
                        Origins::List(patterns)
                    }
                }
            }
        };
        let mut methods = Vec::new();
        for (j, m) in raw
            .allowed_methods
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let upper = m.value.trim().to_ascii_uppercase();
            match Method::from_bytes(upper.as_bytes()) {
                Ok(method) if upper.bytes().all(|b| b.is_ascii_uppercase()) => {
                    methods.push(method);
                }
                _ => self.error(
                    file,
                    &m.referenced,
                    &field(&format!("allowed_methods[{j}]")),
                    format!("`{}` is not an HTTP method", m.value),
                ),
            }
        }
        let mut headers = Vec::new();
        for (j, h) in raw
            .allowed_headers
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let name = h.value.trim().to_ascii_lowercase();
            match HeaderName::from_bytes(name.as_bytes()) {
                Ok(_) if name != "*" => headers.push(name),
                _ => self.error(
                    file,
                    &h.referenced,
                    &field(&format!("allowed_headers[{j}]")),
                    format!(
                        "`{}` is not a header name (list each header; no `*`)",
                        h.value
                    ),
                ),
            }
        }
        (self.errors.len() == before).then(|| Cors {
            preflight,
            origins,
            methods,
            headers,
            allow_credentials: credentials,
            max_age: raw.max_age.map(|m| m.value),
        })
    }
}
