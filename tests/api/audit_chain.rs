//! The audit trail's event types and its per-study hash chain (SPEC section 14).

use participants::{domain::audit::EventType, pb::AuditEventType};

#[test]
fn event_types_match_the_proto_enum() {
    for t in EventType::ALL {
        let name = format!("AUDIT_EVENT_TYPE_{}", t.as_str());
        assert!(
            AuditEventType::from_str_name(&name).is_some(),
            "{name} is missing from the proto"
        );
    }
    // Every proto value but UNSPECIFIED is a Rust event type.
    let proto: Vec<_> = (1..64)
        .filter_map(|n| AuditEventType::try_from(n).ok())
        .collect();
    assert_eq!(proto.len(), EventType::ALL.len());
    for p in proto {
        let name = p.as_str_name().trim_start_matches("AUDIT_EVENT_TYPE_");
        assert!(EventType::parse(name).is_some(), "{name}");
    }
}
