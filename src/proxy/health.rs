//! `upstream.health: grpc`: one `grpc.health.v1.Health/Check` call to the app over the HTTP/2
//! pool, for readiness. The request is the empty `HealthCheckRequest` (service `""`: the whole
//! server); the answer counts only when the call ends with `grpc-status: 0` and its message
//! says `SERVING`. Protobuf is read by hand: the message has one field.

use std::time::Duration;

use bytes::{Buf, Bytes};
use http::header::{self, HeaderValue};
use http::uri::{Authority, Scheme};
use http::{Method, Request, Uri, Version};
use http_body_util::{BodyExt, Either, Full, Limited};

use super::multiplex::H2Pool;

const PATH: &str = "/grpc.health.v1.Health/Check";
/// `HealthCheckResponse.ServingStatus.SERVING`.
const SERVING: u64 = 1;

/// True when the app says it is serving, within `timeout`.
pub async fn check(pool: &H2Pool, authority: &Authority, timeout: Duration) -> bool {
    tokio::time::timeout(timeout, call(pool, authority))
        .await
        .unwrap_or(false)
}

async fn call(pool: &H2Pool, authority: &Authority) -> bool {
    let uri = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(authority.clone())
        .path_and_query(PATH)
        .build();
    // A gRPC message frame: not compressed, length 0 (every field of the request at default).
    let frame = Full::new(Bytes::from_static(&[0, 0, 0, 0, 0]));
    let request = uri.and_then(|uri| {
        Request::builder()
            .method(Method::POST)
            .uri(uri)
            .version(Version::HTTP_2)
            .header(header::CONTENT_TYPE, "application/grpc")
            .header(header::TE, "trailers")
            .body(Either::Right(frame))
    });
    let Ok(request) = request else { return false };
    let Ok((response, _guard)) = pool.send(request).await else {
        return false;
    };
    if !response.status().is_success() {
        return false;
    }
    let trailers_only = response.headers().get("grpc-status").cloned();
    let Ok(collected) = Limited::new(response.into_body(), 64 * 1024)
        .collect()
        .await
    else {
        return false;
    };
    let status = collected
        .trailers()
        .and_then(|t| t.get("grpc-status").cloned())
        .or(trailers_only);
    status.as_ref().map(HeaderValue::as_bytes) == Some(b"0")
        && serving_status(collected.to_bytes()) == Some(SERVING)
}

/// The `status` field (1, varint) of the one `HealthCheckResponse` in a gRPC body.
fn serving_status(mut body: Bytes) -> Option<u64> {
    if body.len() < 5 || body[0] != 0 {
        return None;
    }
    body.advance(1);
    let len = usize::try_from(body.get_u32()).ok()?;
    let mut message = body.get(..len)?;
    let mut status = None;
    while !message.is_empty() {
        let key = varint(&mut message)?;
        match key & 7 {
            0 => {
                let value = varint(&mut message)?;
                if key >> 3 == 1 {
                    status = Some(value);
                }
            }
            1 => message = message.get(8..)?,
            2 => {
                let n = usize::try_from(varint(&mut message)?).ok()?;
                message = message.get(n..)?;
            }
            5 => message = message.get(4..)?,
            _ => return None,
        }
    }
    // Absent means the default, UNKNOWN (0).
    Some(status.unwrap_or(0))
}

fn varint(input: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_serving_status() {
        let frame = |m: &[u8]| {
            let mut b = vec![0, 0, 0, 0, u8::try_from(m.len()).unwrap()];
            b.extend_from_slice(m);
            Bytes::from(b)
        };
        assert_eq!(serving_status(frame(&[0x08, 0x01])), Some(1));
        assert_eq!(serving_status(frame(&[0x08, 0x02])), Some(2));
        assert_eq!(serving_status(frame(&[])), Some(0));
        // An unknown length-delimited field before the status is skipped.
        assert_eq!(
            serving_status(frame(&[0x12, 0x01, b'x', 0x08, 0x01])),
            Some(1)
        );
        assert_eq!(serving_status(frame(&[0x08])), None);
        assert_eq!(serving_status(Bytes::from_static(&[1, 0, 0, 0, 0])), None);
    }
}
