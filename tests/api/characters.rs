//! Identifiers that cannot hide: control and format characters are refused, text is composed
//! (NFC), and Participant IDs are compared by Unicode canonical caseless matching — the same
//! answers on SQLite and PostgreSQL (which refuses NUL in text outright).

use participants::pb::UpsertParticipantRequest;
use sea_orm::{ConnectionTrait, Statement};
use sea_orm_migration::MigratorTrait;
use tonic::Code;

use crate::helpers::{
    Backend, JUNO, OHIO, TestApp, at_ohio, contact, expect_failure, fresh_database, get_site, site,
    study,
};

const HIDING: [(&str, &str); 8] = [
    ("NUL", "\u{0}"),
    ("ESC", "\u{1b}"),
    ("tab", "\t"),
    ("zero-width space", "\u{200B}"),
    ("right-to-left override", "\u{202E}"),
    ("byte order mark", "\u{FEFF}"),
    ("line separator", "\u{2028}"),
    ("soft hyphen", "\u{AD}"),
];

async fn hidden_characters_are_refused_in_every_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (name, ch) in HIDING {
        let cases: Vec<(&str, UpsertParticipantRequest)> = vec![
            ("subject_key", at_ohio(&format!("AB{ch}C"))),
            (
                "secondary_id",
                UpsertParticipantRequest {
                    secondary_id: Some(format!("S{ch}1")),
                    ..at_ohio("A-1")
                },
            ),
            (
                "contact.first_name",
                UpsertParticipantRequest {
                    contact: contact(|c| c.first_name = Some(format!("Ann{ch}a"))),
                    ..at_ohio("A-1")
                },
            ),
            (
                "contact.city",
                UpsertParticipantRequest {
                    contact: contact(|c| c.city = Some(format!("Col{ch}umbus"))),
                    ..at_ohio("A-1")
                },
            ),
            (
                "request_id",
                UpsertParticipantRequest {
                    request_id: format!("r{ch}1"),
                    ..at_ohio("A-1")
                },
            ),
        ];
        for (field, req) in cases {
            let f = expect_failure(
                app.upsert("crc.ohio", req).await,
                Code::InvalidArgument,
                "UNSUPPORTED_CHARACTER",
            );
            assert_eq!(
                f.violations,
                [(field.to_owned(), "UNSUPPORTED_CHARACTER".to_owned())],
                "{name} in {field}"
            );
        }
        // Email and phone have patterns of visible ASCII: refused by them, never stored.
        let req = UpsertParticipantRequest {
            contact: contact(|c| c.email_address = Some(format!("a{ch}@example.org"))),
            ..at_ohio("A-1")
        };
        expect_failure(
            app.upsert("crc.ohio", req).await,
            Code::InvalidArgument,
            "INVALID_EMAIL_ADDRESS",
        );
    }
    // An ID made only of zero-width spaces is not an ID.
    expect_failure(
        app.upsert("crc.ohio", at_ohio("\u{200B}\u{200B}")).await,
        Code::InvalidArgument,
        "UNSUPPORTED_CHARACTER",
    );
    // A reason for change may span lines, but not hold NUL or ESC.
    for (ok, reason) in [
        (true, "moved house\nnew address\tconfirmed"),
        (false, "moved\u{0}"),
        (false, "moved\u{1b}[2J"),
    ] {
        let req = UpsertParticipantRequest {
            reason_for_change: reason.into(),
            ..at_ohio("R-1")
        };
        let result = app.upsert("crc.ohio", req).await;
        if ok {
            result.expect("a multi-line reason is accepted");
        } else {
            let f = expect_failure(result, Code::InvalidArgument, "UNSUPPORTED_CHARACTER");
            assert_eq!(f.violations[0].0, "reason_for_change");
        }
    }
    // Zero-width (non-)joiners belong to Persian and Indic names: accepted in names.
    let req = UpsertParticipantRequest {
        contact: contact(|c| c.first_name = Some("مهر\u{200C}داد".into())),
        ..at_ohio("P-1")
    };
    app.upsert("crc.ohio", req).await.expect("a Persian name");
    assert_eq!(app.participant_count().await, 2, "only R-1 and P-1 exist");
}

/// Characters that draw nothing, or look like others, are refused in IDs and keys: before,
/// `Q3AB` and `Q3A` + U+FE0F + `B` were two participants.
async fn invisible_and_look_alike_characters_are_refused_in_ids(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.upsert("crc.ohio", at_ohio("Q3AB")).await.unwrap();
    for (name, id) in [
        ("variation selector", "Q3A\u{FE0F}B"),
        ("combining grapheme joiner", "Q3A\u{34F}B"),
        ("Mongolian variation selector", "Q3A\u{180B}B"),
        ("Hangul choseong filler", "Q3A\u{115F}B"),
        ("Hangul filler", "Q3A\u{3164}B"),
        ("no-break space", "Q3A\u{A0}B"),
        ("private use", "Q3A\u{E000}B"),
        ("unassigned", "Q3A\u{378}B"),
        ("tag character", "Q3A\u{E0041}B"),
        ("leading combining mark", "\u{301}Q3AB"),
    ] {
        let f = expect_failure(
            app.upsert("crc.ohio", at_ohio(id)).await,
            Code::InvalidArgument,
            "UNSUPPORTED_CHARACTER",
        );
        assert_eq!(f.violations[0].0, "subject_key", "{name}");
    }
    // Names keep what real names need: a variation selector after an emoji is drawn.
    let req = UpsertParticipantRequest {
        contact: contact(|c| c.first_name = Some("Ann\u{2764}\u{FE0F}".into())),
        ..at_ohio("Q3AB")
    };
    app.upsert("crc.ohio", req)
        .await
        .expect("an emoji with its selector");
    assert_eq!(app.participant_count().await, 1);
}

async fn nul_in_lookups_and_scopes_is_an_answer_not_an_internal_error(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.upsert("crc.ohio", at_ohio("N-1")).await.unwrap();
    expect_failure(
        app.get("crc.ohio", get_site(JUNO, OHIO, "N-1\u{0}")).await,
        Code::NotFound,
        "PARTICIPANT_NOT_FOUND",
    );
    expect_failure(
        app.get("crc.ohio", get_site(JUNO, OHIO, "\u{200B}")).await,
        Code::NotFound,
        "PARTICIPANT_NOT_FOUND",
    );
    let f = expect_failure(
        app.upsert(
            "crc.ohio",
            UpsertParticipantRequest {
                scope: site("S_JUNO\u{0}", OHIO),
                ..at_ohio("N-2")
            },
        )
        .await,
        Code::NotFound,
        "STUDY_NOT_EXIST",
    );
    assert!(!f.metadata.contains_key("studyOid"), "{f:?}");
    let f = expect_failure(
        app.upsert(
            "crc.ohio",
            UpsertParticipantRequest {
                scope: site(JUNO, "S_OHI0\u{0}"),
                ..at_ohio("N-2")
            },
        )
        .await,
        Code::NotFound,
        "SITE_NOT_EXIST",
    );
    assert!(!f.metadata.contains_key("siteOid"), "{f:?}");
    assert_eq!(app.participant_count().await, 1);
}

async fn a_huge_oid_is_refused_without_an_echo(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let huge = "S".repeat(20_000);
    let f = expect_failure(
        app.upsert(
            "crc.ohio",
            UpsertParticipantRequest {
                scope: study(&huge),
                ..at_ohio("H-1")
            },
        )
        .await,
        Code::NotFound,
        "STUDY_NOT_EXIST",
    );
    assert!(!f.metadata.contains_key("studyOid"));
    let f = expect_failure(
        app.upsert(
            "crc.ohio",
            UpsertParticipantRequest {
                scope: site(JUNO, &huge),
                ..at_ohio("H-1")
            },
        )
        .await,
        Code::NotFound,
        "SITE_NOT_EXIST",
    );
    assert_eq!(
        f.metadata.get("studyOid").map(String::as_str),
        Some(JUNO),
        "the real study is named"
    );
    assert!(!f.metadata.contains_key("siteOid"));
    // The longest OID a catalog may hold is still echoed.
    let f = expect_failure(
        app.upsert(
            "crc.ohio",
            UpsertParticipantRequest {
                scope: study(&"S".repeat(40)),
                ..at_ohio("H-1")
            },
        )
        .await,
        Code::NotFound,
        "STUDY_NOT_EXIST",
    );
    assert_eq!(f.metadata.get("studyOid").map(String::len), Some(40));
}

/// Pairs that are one Participant ID: (first created, then sent again).
const SAME_ID: [(&str, &str); 7] = [
    ("CAF\u{C9}-1", "cafe\u{301}-1"), // precomposed É, then e + combining acute
    ("STRASSE-1", "stra\u{DF}e-1"),   // SS and ß
    ("\u{130}STANBUL-1", "istanbul-1"), // capital I with dot, and i
    ("\u{3A3}\u{399}\u{3A3}-1", "\u{3C3}\u{3B9}\u{3C2}-1"), // Σ and final ς
    ("\u{212A}ELVIN-1", "kelvin-1"),  // Kelvin sign and k
    ("\u{FB00}-1", "FF-1"),           // the ligature ﬀ and FF
    ("\u{FF21}\u{FF22}-1", "ab-1"),   // full-width ＡＢ and ab
];

async fn ids_are_compared_canonically_and_caselessly(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (first, again) in SAME_ID {
        let created = app.upsert("crc.ohio", at_ohio(first)).await.unwrap();
        assert!(created.created, "{first:?}");
        let second = app.upsert("crc.ohio", at_ohio(again)).await.unwrap();
        assert!(!second.created, "{again:?} names the participant {first:?}");
        let got = app
            .get("crc.ohio", get_site(JUNO, OHIO, again))
            .await
            .unwrap();
        assert_eq!(got.subject_oid, created.participant.unwrap().subject_oid);
    }
    assert_eq!(app.participant_count().await, SAME_ID.len() as i64);
    // Stored as given, but composed: e + U+0301 is kept as É's composed form.
    let made = app
        .upsert("crc.ohio", at_ohio("Jose\u{301}-2"))
        .await
        .unwrap();
    assert_eq!(made.participant.unwrap().subject_key, "Jos\u{E9}-2");
    // Dotless ı is a different letter from i.
    assert!(
        app.upsert("crc.ohio", at_ohio("\u{131}STANBUL-1"))
            .await
            .unwrap()
            .created
    );
}

async fn dates_of_birth_have_a_sane_lower_bound(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (ok, dob) in [
        (false, "0000-01-01"),
        (false, "1899-12-31"),
        (true, "1900-01-01"),
    ] {
        let req = UpsertParticipantRequest {
            contact: contact(|c| c.full_dob = Some(dob.into())),
            ..at_ohio("D-1")
        };
        let result = app.upsert("crc.ohio", req).await;
        if ok {
            result.expect(dob);
        } else {
            expect_failure(result, Code::InvalidArgument, "INVALID_FULL_DOB");
        }
    }
}

/// Rows written before caseless matching get their comparison key recomputed by the
/// migration; of two IDs that only now match, the one already holding the new key keeps it and
/// the other keeps its old key (the unique index holds; the migration logs its row id).
async fn the_migration_recomputes_comparison_keys(backend: Backend) {
    let db = fresh_database(backend).await;
    let conn = sea_orm::Database::connect(&db.url).await.expect("connect");
    participants::store::migration::Migrator::up(&conn, Some(1))
        .await
        .expect("the first migration");
    let be = conn.get_database_backend();
    for sql in [
        "INSERT INTO studies (oid, name, status, participant_id_method, participate_enabled, next_seq) VALUES ('S_A', 'A', 'available', 'manual', false, 1)",
        "INSERT INTO participants (study_id, subject_key, subject_key_norm, subject_oid, status, participate_status, etag, create_time, update_time) VALUES (1, 'Stra\u{DF}e', 'stra\u{DF}e', 'SS_STRAE', 'available', '', 'e1', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
        "INSERT INTO participants (study_id, subject_key, subject_key_norm, subject_oid, status, participate_status, etag, create_time, update_time) VALUES (1, 'STRASSE', 'strasse', 'SS_STRASSE', 'available', '', 'e2', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
        "INSERT INTO participants (study_id, subject_key, subject_key_norm, subject_oid, status, participate_status, etag, create_time, update_time) VALUES (1, 'CAFE\u{301}', 'cafe\u{301}', 'SS_CAFE', 'available', '', 'e3', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
    ] {
        conn.execute_raw(Statement::from_string(be, sql))
            .await
            .expect(sql);
    }
    participants::store::migration::Migrator::up(&conn, None)
        .await
        .expect("the later migrations");
    let norms: Vec<String> = conn
        .query_all_raw(Statement::from_string(
            be,
            "SELECT subject_key_norm FROM participants ORDER BY id",
        ))
        .await
        .expect("query")
        .iter()
        .map(|r| r.try_get_by_index::<String>(0).expect("text"))
        .collect();
    // Straße now matches STRASSE, whose key is already "strasse": it keeps its old key.
    assert_eq!(norms, ["stra\u{DF}e", "strasse", "caf\u{E9}"]);
}

/// A key stored with `i` + U+0307 (`İ` lower-cased outside Turkish) before the comparison key
/// folded it gets the key `i…` from migration 14, so every spelling finds the participant.
async fn migration_14_folds_the_dotted_i_of_stored_keys(backend: Backend) {
    let db = fresh_database(backend).await;
    let conn = sea_orm::Database::connect(&db.url).await.expect("connect");
    participants::store::migration::Migrator::up(&conn, Some(13))
        .await
        .expect("the migrations before 14");
    let be = conn.get_database_backend();
    for sql in [
        "INSERT INTO studies (oid, name, status, participant_id_method, participate_enabled, next_seq) VALUES ('S_A', 'A', 'available', 'manual', false, 1)",
        "INSERT INTO participants (study_id, subject_key, subject_key_norm, subject_oid, status, participate_status, etag, create_time, update_time) VALUES (1, 'i\u{307}d-1', 'i\u{307}d-1', 'SS_ID1', 'available', '', 'e1', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
    ] {
        conn.execute_raw(Statement::from_string(be, sql))
            .await
            .expect(sql);
    }
    participants::store::migration::Migrator::up(&conn, None)
        .await
        .expect("migration 14");
    let norm = conn
        .query_one_raw(Statement::from_string(
            be,
            "SELECT subject_key_norm FROM participants",
        ))
        .await
        .expect("query")
        .expect("a row")
        .try_get_by_index::<String>(0)
        .expect("text");
    assert_eq!(norm, "id-1");
}

crate::on_both_backends!(
    migration_14_folds_the_dotted_i_of_stored_keys,
    hidden_characters_are_refused_in_every_field,
    invisible_and_look_alike_characters_are_refused_in_ids,
    nul_in_lookups_and_scopes_is_an_answer_not_an_internal_error,
    a_huge_oid_is_refused_without_an_echo,
    ids_are_compared_canonically_and_caselessly,
    dates_of_birth_have_a_sane_lower_bound,
    the_migration_recomputes_comparison_keys,
);
