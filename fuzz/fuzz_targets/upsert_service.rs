//! Arbitrary bytes as an UpsertParticipantRequest through the whole service: protobuf decoding,
//! scope, role, validation, caps and the write, on a SQLite store with the demo catalog. No
//! input may panic, and none may end in an internal error: every refusal is a rule's.
#![no_main]

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use participants::catalog::{self, Catalog, DEMO_CATALOG};
use participants::crypto::DataCipher;
use participants::domain::ServiceError;
use participants::pb;
use participants::service::{Caller, Participants};
use participants::store::{DbConfig, Store};
use prost::Message;

struct Service {
    runtime: tokio::runtime::Runtime,
    participants: Participants,
}

/// Start-up, once per process: panics here are set-up failures, not findings.
static SERVICE: LazyLock<Service> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let file = std::env::temp_dir().join(format!("participants-fuzz-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let url = format!("sqlite://{}?mode=rwc", file.display());
    let participants = runtime.block_on(async {
        let store = Store::connect(&DbConfig::new(url))
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        store
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("migrate: {e}"));
        let catalog = Catalog::parse(DEMO_CATALOG).unwrap_or_else(|e| panic!("catalog: {e}"));
        catalog::apply(&store, &catalog)
            .await
            .unwrap_or_else(|e| panic!("apply: {e}"));
        let cipher = Arc::new(DataCipher::new(&[9; 32], &[]));
        Participants::new(store, cipher)
    });
    Service {
        runtime,
        participants,
    }
});

fuzz_target!(|data: &[u8]| {
    let Ok(request) = pb::UpsertParticipantRequest::decode(data) else {
        return;
    };
    let service = &*SERVICE;
    let caller = Caller {
        user: "dm.juno".to_owned(),
        ..Default::default()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let outcome = service.runtime.block_on(service.participants.upsert(
        &caller,
        request.into(),
        deadline,
    ));
    if let Err(ServiceError::Internal(_)) = outcome {
        panic!("an upsert ended in an internal error");
    }
});
