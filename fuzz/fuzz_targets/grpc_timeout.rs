//! A client's `grpc-timeout` (`gatehouse::grpc::timeout`), which bounds the wait for the app.
//! The gRPC spec's grammar: 1 to 8 ASCII digits and one unit of `H M S m u n`. Whatever is
//! accepted must match that grammar and mean the duration an independent reading gives;
//! everything else is ignored (`None`), never a panic or an overflow.
#![no_main]

use std::time::Duration;

use gatehouse::grpc::timeout;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

/// The spec's grammar, read independently: the value in nanoseconds.
fn reference(value: &[u8]) -> Option<u128> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u128, |n, d| n * 10 + u128::from(d - b'0'));
    let per: u128 = match unit[0] {
        b'H' => 3_600_000_000_000,
        b'M' => 60_000_000_000,
        b'S' => 1_000_000_000,
        b'm' => 1_000_000,
        b'u' => 1_000,
        b'n' => 1,
        _ => return None,
    };
    Some(n * per)
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert("grpc-timeout", value);
    let got = timeout(&headers).map(|d: Duration| d.as_nanos());
    assert_eq!(
        got,
        reference(data),
        "grpc-timeout {:?}",
        String::from_utf8_lossy(data)
    );
});
