//! The `authorization` values of a call (gRPC metadata or HTTP headers) through the one
//! function both edges use, with the HS256 verifier: header splitting, the scheme, the size
//! limit, JWT decoding and the user claim. Values are separated by a newline in the input.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use participants::auth::{JwtSettings, JwtVerifier, MAX_USER_CHARS, authenticate};

/// The secret the seeds under seeds/authorization are signed with.
const SECRET: &[u8] = b"fuzz-secret-fuzz-secret-fuzz-secret-0123456789";

static VERIFIER: LazyLock<Option<JwtVerifier>> = LazyLock::new(|| {
    JwtVerifier::new(&JwtSettings {
        hs256_secret: Some(SECRET.to_vec().into()),
        ..JwtSettings::default()
    })
    .ok()
});

fuzz_target!(|data: &[u8]| {
    let Some(verifier) = VERIFIER.as_ref() else {
        panic!("the verifier must build from a 46-byte secret");
    };
    let values: Vec<&[u8]> = data.split(|b| *b == b'\n').take(3).collect();
    if let Ok(caller) = authenticate(verifier, values) {
        let user = caller.user;
        assert!(!user.is_empty() && user.chars().count() <= MAX_USER_CHARS);
        assert!(!user.chars().any(char::is_control));
    }
});
