//! The Redis session ticket (`gatehouse::login::store::Ticket::parse`), the whole of what a
//! session cookie holds with `session.store: redis`. It accepts exactly `<id>.<key>` with 32
//! lower-case hex digits on each side; anything it accepts encodes back to the same text, and
//! the key it returns is the hex it was given. Never panics.
#![no_main]

use gatehouse::login::store::{Ticket, hex};
use libfuzzer_sys::fuzz_target;

fn lower_hex32(s: &str) -> bool {
    s.len() == 32 && s.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let expected = text
        .split_once('.')
        .is_some_and(|(id, key)| lower_hex32(id) && lower_hex32(key));
    match Ticket::parse(text) {
        Some(ticket) => {
            assert!(expected, "accepted {text:?}");
            assert_eq!(ticket.encode(), text);
            assert_eq!(hex(&ticket.key), text[33..]);
            assert_eq!(ticket.id, text[..32]);
        }
        None => assert!(!expected, "refused {text:?}"),
    }
});
