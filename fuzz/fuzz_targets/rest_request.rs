//! A request of the original's REST route: the path and query (route parser, percent-decoding,
//! list parameters), the Idempotency-Key and If-Match headers, and the JSON body.
//! Input: line 1 the request target, line 2 Idempotency-Key, line 3 If-Match, then the body.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use participants::fuzzing::{Route, list_input, parts, upsert_input};
use participants::service::model::ScopeRef;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap_or_else(|e| panic!("a current-thread runtime: {e}"))
});

fuzz_target!(|data: &[u8]| {
    let mut lines = data.splitn(4, |b| *b == b'\n');
    let target = lines.next().unwrap_or_default();
    let idempotency_key = lines.next().unwrap_or_default();
    let if_match = lines.next().unwrap_or_default();
    let body = lines.next().unwrap_or_default().to_vec();
    let Ok(target) = std::str::from_utf8(target) else {
        return;
    };
    let headers: [(&str, &[u8]); 3] = [
        ("content-type", b"application/json"),
        ("idempotency-key", idempotency_key),
        ("if-match", if_match),
    ];
    let Some(parts) = parts(target, &headers) else {
        return;
    };
    let scope = match Route::parse(parts.uri.path()) {
        Some(Route::Participants(scope) | Route::ParticipantByQuery(scope)) => scope,
        Some(Route::Participant(scope, key) | Route::ParticipantAudit(scope, key)) => {
            assert!(!key.is_empty());
            scope
        }
        None => ScopeRef::study("S_JUNO(PROD)"),
    };
    assert!(!scope.study_oid.is_empty());
    let _ = list_input(&parts, scope.clone());
    if let Some(input) = RUNTIME.block_on(upsert_input(&parts, body, scope)) {
        assert!(input.scope.is_some());
    }
});
