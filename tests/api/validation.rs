//! Field validation, table-driven: both sides of every limit, every format rule.

use participants::pb::{ParticipantContact, UpsertParticipantRequest};
use tonic::Code;

use crate::helpers::{Backend, TestApp, at_ohio, expect_failure};

type Setter = fn(&mut UpsertParticipantRequest, String);

fn contact(req: &mut UpsertParticipantRequest) -> &mut ParticipantContact {
    req.contact.get_or_insert_with(Default::default)
}

/// (name, path, setter)
fn fields() -> Vec<(&'static str, &'static str, Setter)> {
    vec![
        ("first_name", "contact.first_name", |r, v| {
            contact(r).first_name = Some(v)
        }),
        ("last_name", "contact.last_name", |r, v| {
            contact(r).last_name = Some(v)
        }),
        ("middle_name", "contact.middle_name", |r, v| {
            contact(r).middle_name = Some(v)
        }),
        ("email_address", "contact.email_address", |r, v| {
            contact(r).email_address = Some(v)
        }),
        ("phone_number", "contact.phone_number", |r, v| {
            contact(r).phone_number = Some(v)
        }),
        ("street_address1", "contact.street_address1", |r, v| {
            contact(r).street_address1 = Some(v)
        }),
        ("street_address2", "contact.street_address2", |r, v| {
            contact(r).street_address2 = Some(v)
        }),
        ("city", "contact.city", |r, v| contact(r).city = Some(v)),
        ("state", "contact.state", |r, v| contact(r).state = Some(v)),
        ("country", "contact.country", |r, v| {
            contact(r).country = Some(v)
        }),
        ("postal_code", "contact.postal_code", |r, v| {
            contact(r).postal_code = Some(v)
        }),
        ("full_dob", "contact.full_dob", |r, v| {
            contact(r).full_dob = Some(v)
        }),
        ("hospital_number", "contact.hospital_number", |r, v| {
            contact(r).hospital_number = Some(v)
        }),
        ("secondary_id", "secondary_id", |r, v| {
            r.secondary_id = Some(v)
        }),
        ("subject_key", "subject_key", |r, v| r.subject_key = v),
    ]
}

fn setter(name: &str) -> (&'static str, Setter) {
    fields()
        .into_iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, path, set)| (path, set))
        .unwrap_or_else(|| panic!("unknown field {name}"))
}

fn email_of_len(n: usize) -> String {
    // local@domain.org with the local part padded
    let domain = "@example.org";
    format!("{}{domain}", "a".repeat(n - domain.len()))
}

/// One row: a field, a value, and the expected reason (None: accepted).
struct Row {
    field: &'static str,
    value: String,
    expect: Option<&'static str>,
}

fn row(field: &'static str, value: impl Into<String>, expect: Option<&'static str>) -> Row {
    Row {
        field,
        value: value.into(),
        expect,
    }
}

fn rows() -> Vec<Row> {
    let mut rows = vec![
        // Lengths, both sides of each limit.
        row("first_name", "a".repeat(35), None),
        row("first_name", "a".repeat(36), Some("FIRST_NAME_TOO_LONG")),
        row("first_name", "Ж".repeat(35), None),
        row("first_name", "Ж".repeat(36), Some("FIRST_NAME_TOO_LONG")),
        row("last_name", "ОНІО".repeat(8) + "ОНІ", None),
        row("last_name", "b".repeat(36), Some("LAST_NAME_TOO_LONG")),
        row("middle_name", "c".repeat(35), None),
        row("middle_name", "c".repeat(36), Some("MIDDLE_NAME_TOO_LONG")),
        row("email_address", email_of_len(255), None),
        row(
            "email_address",
            email_of_len(256),
            Some("EMAIL_ADDRESS_TOO_LONG"),
        ),
        // Too long and malformed: only the length reason.
        row(
            "email_address",
            "@".repeat(256),
            Some("EMAIL_ADDRESS_TOO_LONG"),
        ),
        row("phone_number", "+1 12345678901234", None),
        row(
            "phone_number",
            "+123 1234567890123",
            Some("PHONE_NUMBER_TOO_LONG"),
        ),
        row(
            "phone_number",
            "x".repeat(18),
            Some("PHONE_NUMBER_TOO_LONG"),
        ),
        row("postal_code", "9".repeat(35), None),
        row("postal_code", "9".repeat(36), Some("POSTAL_CODE_TOO_LONG")),
        row("hospital_number", "H".repeat(35), None),
        row(
            "hospital_number",
            "H".repeat(36),
            Some("HOSPITAL_NUMBER_TOO_LONG"),
        ),
        row("secondary_id", "S".repeat(35), None),
        row(
            "secondary_id",
            "S".repeat(36),
            Some("SECONDARY_ID_TOO_LONG"),
        ),
        row(
            "secondary_id",
            "a<b",
            Some("PARTICIPANT_ID_CONTAINS_UNSUPPORTED_HTML_CHARACTER"),
        ),
        row("subject_key", "K".repeat(30), None),
        row(
            "subject_key",
            "K".repeat(31),
            Some("PARTICIPANT_ID_LONGER_THAN_30_CHARACTERS"),
        ),
        row("subject_key", format!("  {}  ", "T".repeat(30)), None),
        row(
            "subject_key",
            "<script>",
            Some("PARTICIPANT_ID_CONTAINS_UNSUPPORTED_HTML_CHARACTER"),
        ),
        row(
            "subject_key",
            "A>B",
            Some("PARTICIPANT_ID_CONTAINS_UNSUPPORTED_HTML_CHARACTER"),
        ),
        row("subject_key", "   ", Some("MISSING_PARTICIPANT_ID_DATA")),
        // Email format.
        row("email_address", "OHIOS@openclinica.com", None),
        row("email_address", "first.last+tag@sub.example.co", None),
        row(
            "email_address",
            "no-at-sign.example.org",
            Some("INVALID_EMAIL_ADDRESS"),
        ),
        row(
            "email_address",
            "two@@example.org",
            Some("INVALID_EMAIL_ADDRESS"),
        ),
        row(
            "email_address",
            "dot.@example.org",
            Some("INVALID_EMAIL_ADDRESS"),
        ),
        row(
            "email_address",
            "user@example",
            Some("INVALID_EMAIL_ADDRESS"),
        ),
        row(
            "email_address",
            "user@-example.org",
            Some("INVALID_EMAIL_ADDRESS"),
        ),
        row(
            "email_address",
            " user@example.org",
            Some("INVALID_EMAIL_ADDRESS"),
        ),
        // Phone format.
        row("phone_number", "+1 1234567890", None),
        row("phone_number", "+123 1", None),
        row("phone_number", "5551234567", Some("INVALID_PHONE_NUMBER")),
        row("phone_number", "+1-5551234", Some("INVALID_PHONE_NUMBER")),
        row("phone_number", "+1234 567", Some("INVALID_PHONE_NUMBER")),
        row("phone_number", "+1 12 34", Some("INVALID_PHONE_NUMBER")),
        row("phone_number", "+1 ", Some("INVALID_PHONE_NUMBER")),
        // Date of birth.
        row("full_dob", "1990-02-28", None),
        row("full_dob", "2000-02-29", None),
        row("full_dob", "1990-02-29", Some("INVALID_FULL_DOB")),
        row("full_dob", "1990-13-01", Some("INVALID_FULL_DOB")),
        row("full_dob", "1990-2-3", Some("INVALID_FULL_DOB")),
        row("full_dob", "28/02/1990", Some("INVALID_FULL_DOB")),
        row("full_dob", "2999-01-01", Some("INVALID_FULL_DOB")),
        row(
            "full_dob",
            chrono::Utc::now()
                .date_naive()
                .format("%Y-%m-%d")
                .to_string(),
            None,
        ),
        row(
            "full_dob",
            (chrono::Utc::now().date_naive() + chrono::Days::new(2))
                .format("%Y-%m-%d")
                .to_string(),
            Some("INVALID_FULL_DOB"),
        ),
    ];
    for (field, reason) in [
        ("street_address1", "STREET_ADDRESS1_TOO_LONG"),
        ("street_address2", "STREET_ADDRESS2_TOO_LONG"),
        ("city", "CITY_TOO_LONG"),
        ("state", "STATE_TOO_LONG"),
        ("country", "COUNTRY_TOO_LONG"),
    ] {
        rows.push(row(field, "s".repeat(155), None));
        rows.push(row(field, "s".repeat(156), Some(reason)));
    }
    // An empty value clears and is never a format error.
    for (name, _, _) in fields() {
        if name != "subject_key" {
            rows.push(row(name, "", None));
        }
    }
    rows
}

async fn every_rule_on_both_sides_of_its_limit(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut created = 0;
    for (n, r) in rows().into_iter().enumerate() {
        let (path, set) = setter(r.field);
        let mut req = at_ohio(&format!("ROW-{n}"));
        set(&mut req, r.value.clone());
        let result = app.upsert("crc.ohio", req).await;
        match r.expect {
            None => {
                result.unwrap_or_else(|e| {
                    panic!("row {n} ({} = {:?}) refused: {e:?}", r.field, r.value)
                });
                created += 1;
            }
            Some(reason) => {
                let f = expect_failure(result, Code::InvalidArgument, reason);
                assert_eq!(
                    f.violations,
                    vec![(path.to_owned(), reason.to_owned())],
                    "row {n}"
                );
                assert!(
                    f.message.contains(path),
                    "the message names the field: {}",
                    f.message
                );
                if r.value.trim().chars().count() >= 4 {
                    assert!(
                        !f.message.contains(r.value.trim()),
                        "row {n}: the message echoes the value"
                    );
                }
            }
        }
    }
    assert_eq!(app.participant_count().await, created);
}

async fn all_violations_are_reported_in_table_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let req = UpsertParticipantRequest {
        subject_key: "K".repeat(31),
        secondary_id: Some("S".repeat(36)),
        contact: Some(ParticipantContact {
            full_dob: Some("1990-02-30".into()),
            phone_number: Some("12345".into()),
            email_address: Some("bad".into()),
            last_name: Some("L".repeat(36)),
            first_name: Some("F".repeat(36)),
            city: Some("Columbus".into()),
            ..Default::default()
        }),
        ..at_ohio("")
    };
    let f = expect_failure(
        app.upsert("crc.ohio", req).await,
        Code::InvalidArgument,
        "PARTICIPANT_ID_LONGER_THAN_30_CHARACTERS",
    );
    let got: Vec<(&str, &str)> = f
        .violations
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("subject_key", "PARTICIPANT_ID_LONGER_THAN_30_CHARACTERS"),
            ("contact.first_name", "FIRST_NAME_TOO_LONG"),
            ("contact.last_name", "LAST_NAME_TOO_LONG"),
            ("contact.email_address", "INVALID_EMAIL_ADDRESS"),
            ("contact.phone_number", "INVALID_PHONE_NUMBER"),
            ("secondary_id", "SECONDARY_ID_TOO_LONG"),
            ("contact.full_dob", "INVALID_FULL_DOB"),
        ]
    );
    assert_eq!(app.participant_count().await, 0);
}

crate::on_both_backends!(
    every_rule_on_both_sides_of_its_limit,
    all_violations_are_reported_in_table_order,
);
