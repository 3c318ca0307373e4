//! The small HTML pages Gatehouse shows people (login errors, 403, dev pages, the demo app):
//! one escaping function and one page frame, so no page can forget either.

use http::{HeaderValue, Response, StatusCode, header};

use crate::body::{self, Body};

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A complete page: `title` is escaped here, `body_html` must already be safe. `head_extra`
/// goes into `<head>` as is (e.g. a refresh). Not cached; no scripts allowed.
pub fn page(status: StatusCode, title: &str, head_extra: &str, body_html: &str) -> Response<Body> {
    let html = format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width\">{head_extra}\
<title>{title}</title><style>body{{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}}\
h1{{font-size:1.4rem}}code{{background:#f3f3f3;padding:0 .2em}}a{{color:#0b57d0}}</style></head><body><h1>{title}</h1>{body_html}</body></html>\n",
        title = escape(title)
    );
    let mut response = Response::new(body::full(html));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        ),
    );
    response
}

/// Dev mode: the app behind Gatehouse is not answering. Says where, and retries.
pub fn app_down(address: &str, timed_out: bool) -> Response<Body> {
    let what = if timed_out {
        "did not answer in time"
    } else {
        "is not answering"
    };
    let body = format!(
        "<p>Gatehouse is running, but your app at <code>{}</code> {what}.</p>\
<p>Start it (or check the address you gave <code>--upstream</code>); this page tries again every 2 seconds.</p>",
        escape(address)
    );
    page(
        StatusCode::BAD_GATEWAY,
        "Your app is not answering",
        "<meta http-equiv=refresh content=2>",
        &body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<a href='x'>\"&"),
            "&lt;a href=&#39;x&#39;&gt;&quot;&amp;"
        );
    }

    #[test]
    fn app_down_names_the_address_and_retries() {
        let response = app_down("http://127.0.0.1:3000", false);
        assert_eq!(response.status(), 502);
    }
}
