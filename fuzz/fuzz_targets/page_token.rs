//! Page tokens as a client sends them back: base64, version, length, binding and MAC checks
//! on arbitrary text; and issue/open round trips for any cursor.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use participants::crypto::DataCipher;
use participants::service::page_token::{Binding, PageTokens};

static TOKENS: LazyLock<PageTokens> =
    LazyLock::new(|| PageTokens::new(&DataCipher::new(&[7; 32], &[])));

fn binding() -> Binding {
    Binding::new("participants")
        .part("dm.juno")
        .part("S_JUNO(PROD)")
        .opt(None)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(cursor) = TOKENS.open(text, binding())
    {
        // Only the token issued for this query and cursor opens.
        assert_eq!(TOKENS.issue(binding(), cursor), text);
    }
    if let Some(bytes) = data.first_chunk::<8>() {
        let cursor = i64::from_be_bytes(*bytes);
        let token = TOKENS.issue(binding(), cursor);
        assert_eq!(TOKENS.open(&token, binding()), Ok(cursor));
    }
});
