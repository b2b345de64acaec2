//! An UpsertParticipantRequest as it arrives on the wire: protobuf decoding, then every field
//! rule of validation (the stage before any database access), on arbitrary bytes.
//! Checks, beyond "no panic", what the parsed types promise: NFC, lengths in characters.
#![no_main]

use chrono::NaiveDate;
use libfuzzer_sys::fuzz_target;
use participants::domain::validate::{
    ContactPatch, RequestId, SUBJECT_KEY_MAX, SubjectKey, nfc, normalize_subject_key,
    parse_reason_for_change, parse_secondary_id,
};
use participants::pb;
use participants::service::model::UpsertInput;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = pb::UpsertParticipantRequest::decode(data) else {
        return;
    };
    let input = UpsertInput::from(request);
    let today = NaiveDate::from_ymd_opt(2026, 6, 15).unwrap_or_default();

    if let Ok(Some(key)) = SubjectKey::parse(&input.subject_key, "subject_key") {
        let k = key.as_str();
        assert!(!k.is_empty() && k.chars().count() <= SUBJECT_KEY_MAX);
        assert_eq!(nfc(k), k, "a Participant ID is stored composed");
        assert!(!k.contains(['<', '>']));
        let _ = key.normalized();
    }
    let _ = normalize_subject_key(&input.subject_key);
    if let Ok(patch) = parse_secondary_id(input.secondary_id.as_deref()) {
        let _ = patch.map(|t| assert_eq!(nfc(t.as_str()), t.as_str()));
    }
    let mut violations = Vec::new();
    if let Some(contact) = &input.contact {
        let patch = ContactPatch::parse(contact.fields(), today, &mut violations);
        assert!(patch.is_empty() || violations.len() < 13);
    }
    if let Ok(Some(id)) = RequestId::parse(&input.request_id) {
        assert!(!id.as_str().is_empty());
    }
    let _ = parse_reason_for_change(&input.reason_for_change);
});
