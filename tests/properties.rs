//! Property tests of the validators (`participants::domain::validate`). Each property states a
//! rule of SPEC sections 4 and 5 (or a hardening rule the section implies) from the outside: the
//! limits, patterns and reasons below are copied from the SPEC, never from the code under test.
//!
//! - lengths count characters, not bytes: multi-byte letters, emoji and combining marks;
//! - presence: an absent field is unchanged, a present empty one is cleared, never a format error;
//! - Participant IDs are trimmed and matched case-insensitively, composed and decomposed forms
//!   are one ID, and an invisible character never makes a second ID that looks like the first;
//! - phone, email and date of birth accept exactly what the SPEC's rules describe;
//! - no input panics a validator.

use participants::domain::{
    Reason,
    validate::{
        Chars, ContactField, ContactPatch, DateOfBirth, EmailAddress, Patch, PhoneNumber,
        RequestId, SubjectKey, Text, Violation, normalize_subject_key, parse_contact_value,
        parse_reason_for_change, parse_secondary_id, plausible_oid, sort_violations,
    },
};
use proptest::{prelude::*, sample::select};

// ---------------------------------------------------------------------------------------------
// The rules, as the SPEC states them

/// SPEC section 5: each length-limited contact field, its limit in characters and its reason.
const TEXT_LIMITS: [(ContactField, usize, &str); 10] = [
    (ContactField::FirstName, 35, "FIRST_NAME_TOO_LONG"),
    (ContactField::LastName, 35, "LAST_NAME_TOO_LONG"),
    (ContactField::MiddleName, 35, "MIDDLE_NAME_TOO_LONG"),
    (
        ContactField::StreetAddress1,
        155,
        "STREET_ADDRESS1_TOO_LONG",
    ),
    (
        ContactField::StreetAddress2,
        155,
        "STREET_ADDRESS2_TOO_LONG",
    ),
    (ContactField::City, 155, "CITY_TOO_LONG"),
    (ContactField::State, 155, "STATE_TOO_LONG"),
    (ContactField::Country, 155, "COUNTRY_TOO_LONG"),
    (ContactField::PostalCode, 35, "POSTAL_CODE_TOO_LONG"),
    (ContactField::HospitalNumber, 35, "HOSPITAL_NUMBER_TOO_LONG"),
];
const SUBJECT_KEY_MAX: usize = 30;
const SECONDARY_ID_MAX: usize = 35;
const EMAIL_MAX: usize = 255;
const PHONE_MAX: usize = 17;

/// SPEC section 5, the table's order: the first violation in it is `ErrorInfo.reason`.
const SPEC_TABLE_ORDER: [&str; 36] = [
    "STUDY_NOT_EXIST",
    "STUDY_NOT_AVAILABLE",
    "SITE_NOT_EXIST",
    "SITE_NOT_AVAILABLE",
    "NO_ROLE_SET_UP",
    "NO_SUFFICIENT_PRIVILEGES",
    "PARTICIPATE_NOT_ENABLED",
    "STUDY_LEVEL_PARTICIPANT_CONTACT_NOT_ALLOWED",
    "STUDY_LEVEL_PARTICIPANT_REGISTRATION_NOT_ALLOWED",
    "MISSING_PARTICIPANT_ID_DATA",
    "PARTICIPANT_ID_CONTAINS_UNSUPPORTED_HTML_CHARACTER",
    "PARTICIPANT_ID_LONGER_THAN_30_CHARACTERS",
    "FIRST_NAME_TOO_LONG",
    "LAST_NAME_TOO_LONG",
    "MIDDLE_NAME_TOO_LONG",
    "EMAIL_ADDRESS_TOO_LONG",
    "INVALID_EMAIL_ADDRESS",
    "PHONE_NUMBER_TOO_LONG",
    "INVALID_PHONE_NUMBER",
    "STREET_ADDRESS1_TOO_LONG",
    "STREET_ADDRESS2_TOO_LONG",
    "CITY_TOO_LONG",
    "STATE_TOO_LONG",
    "COUNTRY_TOO_LONG",
    "POSTAL_CODE_TOO_LONG",
    "SECONDARY_ID_TOO_LONG",
    "HOSPITAL_NUMBER_TOO_LONG",
    "INVALID_FULL_DOB",
    "REQUEST_ID_REUSED",
    "PARTICIPANT_NOT_FOUND",
    "PARTICIPANT_ID_ALREADY_EXISTS",
    "PARTICIPANT_ID_NOT_AVAILABLE",
    "PARTICIPANTS_ENROLLMENT_CAP_REACHED",
    "ETAG_MISMATCH",
    "UNAUTHENTICATED",
    "STORAGE_UNAVAILABLE",
];

/// "Today" for the date rules: a fixed day, so a run never depends on the clock.
const TODAY: (i32, u32, u32) = (2026, 6, 15);

fn today() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(TODAY.0, TODAY.1, TODAY.2).unwrap_or_default()
}

/// The Gregorian calendar, written out: the days of a month.
fn days_in_month(year: i32, month: u32) -> u32 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn reason(v: &Violation) -> &'static str {
    v.reason.as_str()
}

fn nfd(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    s.nfd().collect()
}

// ---------------------------------------------------------------------------------------------
// Characters to build values from

/// Visible characters of names in many scripts, of 1 to 4 bytes in UTF-8, none of which a
/// normaliser composes with its neighbour: ASCII, Latin with diacritics (precomposed), Greek,
/// Cyrillic, Arabic, Hebrew, Devanagari, CJK, Hangul, and emoji outside the BMP.
const LETTERS: &[char] = &[
    'a', 'Z', 'q', '7', '-', '\'', '.', 'é', 'ñ', 'Å', 'ø', 'ł', 'ş', 'ğ', 'ß', 'Ω', 'λ', 'Ж', 'О',
    'Н', 'І', 'ї', 'ب', 'ש', 'क', '中', '日', '한', 'ệ', '😀', '🐍', '𝒜',
];

/// Letters whose canonical decomposition is two or three code points (é, ñ, Å, ệ, 한…).
const DECOMPOSABLE: &[char] = &['é', 'ñ', 'Å', 'ệ', '한', 'ǖ', 'ώ', 'Ḱ', 'ö'];

/// Characters that render as nothing, or as a plain space while being something else: format
/// characters, controls, separators, default-ignorable code points and look-alike spaces.
const HIDDEN: &[char] = &[
    '\u{0}',
    '\u{7}',
    '\u{1B}',
    '\u{7F}',
    '\u{85}',
    '\u{AD}',
    '\u{A0}',
    '\u{34F}',
    '\u{61C}',
    '\u{115F}',
    '\u{180E}',
    '\u{200B}',
    '\u{200C}',
    '\u{200D}',
    '\u{200E}',
    '\u{202A}',
    '\u{202E}',
    '\u{2028}',
    '\u{2029}',
    '\u{202F}',
    '\u{2060}',
    '\u{2066}',
    '\u{3164}',
    '\u{FE0F}',
    '\u{FEFF}',
    '\u{E0041}',
    '\u{E0100}',
    '\u{1D173}',
    '\u{2007}',
    '\u{3000}',
];

/// Characters that break naive code: case mappings that change length, dotted and dotless i,
/// final sigma, combining marks, bidirectional overrides, the BOM, `<`, `>`, quotes, NUL.
fn nasty_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => any::<char>(),
        2 => select(LETTERS),
        2 => select(HIDDEN),
        2 => select(&[
            'İ', 'ı', 'I', 'i', 'ς', 'σ', 'Σ', 'ŉ', 'ΐ', 'ﬃ', 'ẞ', 'ǅ', 'K', 'Å', '\u{301}', '\u{308}',
            '\u{345}', '\u{20DD}', '<', '>', '"', '\\', ' ', '\t', '\n', '\r', '@', '+', '0',
        ][..]),
    ]
}

fn nasty_string(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(nasty_char(), 0..max).prop_map(|v| v.into_iter().collect())
}

fn letters(range: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
    prop::collection::vec(select(LETTERS), range).prop_map(|v| v.into_iter().collect())
}

/// White space that surrounds a key pasted from a spreadsheet or a form.
fn surrounding_space() -> impl Strategy<Value = String> {
    prop::collection::vec(
        select(
            &[
                ' ', '\t', '\n', '\r', '\u{A0}', '\u{3000}', '\u{2003}', '\u{85}',
            ][..],
        ),
        0..4,
    )
    .prop_map(|v| v.into_iter().collect())
}

/// Letters of the scripts that have case (and the characters whose case mapping is special).
/// Left out: the dotless `ı`, whose upper case is `I`. The service keeps `ı` a letter of its own
/// (Unicode's default case folding, and tests/api/characters.rs), so `ı` and `I` are two IDs
/// although `I` is `ı` upper-cased: a decision of the contract, not a slip of the code.
const CASED: &[char] = &[
    'a', 'b', 'k', 'z', 'A', 'B', 'K', 'Z', 'é', 'É', 'ß', 'ẞ', 'ø', 'Ø', 'ł', 'Ł', 'ş', 'Ş', 'ğ',
    'Ğ', 'i', 'I', 'İ', 'ς', 'σ', 'Σ', 'ω', 'Ω', 'Ж', 'ж', 'І', 'і', 'Ї', 'ї', 'ǅ', 'ǆ', 'Ǆ', 'ŉ',
    'ﬃ', 'ΐ', 'ſ', 'K', 'Å', 'Ա', 'ա', 'Ꭰ', 'ꭰ', '𐐀', '𐐨', '1', '-', '_',
];

fn cased_key() -> impl Strategy<Value = String> {
    prop::collection::vec(select(CASED), 1..=10).prop_map(|v| v.into_iter().collect())
}

fn parse_text(field: ContactField, raw: &str) -> Result<Patch<String>, &'static str> {
    parse_contact_value(field, raw, today())
        .map(|p| p.map(|v| v.as_str().to_owned()))
        .map_err(|v| reason(&v))
}

// ---------------------------------------------------------------------------------------------
// Lengths count characters

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A contact text of n characters is accepted when n is at most its limit and refused with
    /// its `…_TOO_LONG` reason otherwise, whatever the bytes per character.
    #[test]
    fn contact_text_lengths_count_characters(
        (field, max, too_long) in select(&TEXT_LIMITS[..]),
        delta in -3i64..=3,
        seed in letters(200..=200),
    ) {
        let n = usize::try_from(max as i64 + delta).unwrap_or(0);
        let value: String = seed.chars().cycle().take(n).collect();
        let got = parse_text(field, &value);
        if n <= max {
            prop_assert_eq!(got, Ok(Patch::Set(value.clone())), "{} chars, {} bytes", n, value.len());
        } else {
            prop_assert_eq!(got, Err(too_long), "{} chars, {} bytes", n, value.len());
        }
    }

    /// A Participant ID of n characters after trimming: at most 30 accepted, more refused with
    /// `PARTICIPANT_ID_LONGER_THAN_30_CHARACTERS`; the surrounding white space does not count.
    #[test]
    fn subject_key_length_counts_characters_after_trimming(
        delta in -3i64..=3,
        seed in letters(40..=40),
        before in surrounding_space(),
        after in surrounding_space(),
    ) {
        let n = usize::try_from(SUBJECT_KEY_MAX as i64 + delta).unwrap_or(0);
        let key: String = seed.chars().filter(|c| !c.is_whitespace()).cycle().take(n).collect();
        let got = SubjectKey::parse(&format!("{before}{key}{after}"), "subject_key");
        if n <= SUBJECT_KEY_MAX {
            let stored = got.map(|k| k.map(|k| k.as_str().to_owned()));
            prop_assert_eq!(stored, Ok(Some(key)));
        } else {
            prop_assert_eq!(
                got.map_err(|v| reason(&v)),
                Err("PARTICIPANT_ID_LONGER_THAN_30_CHARACTERS")
            );
        }
    }

    /// `secondary_id`: at most 35 characters.
    #[test]
    fn secondary_id_length_counts_characters(delta in -3i64..=3, seed in letters(40..=40)) {
        let n = usize::try_from(SECONDARY_ID_MAX as i64 + delta).unwrap_or(0);
        let value: String = seed.chars().cycle().take(n).collect();
        let got = parse_secondary_id(Some(&value)).map(|p| p.map(|t| t.as_str().to_owned()));
        if n <= SECONDARY_ID_MAX {
            prop_assert_eq!(got, Ok(Patch::Set(value)));
        } else {
            prop_assert_eq!(got.map_err(|v| reason(&v)), Err("SECONDARY_ID_TOO_LONG"));
        }
    }

    /// Composed and decomposed spellings of one text are one text: the same verdict and the
    /// same stored value (a name of 35 Hangul syllables is 105 code points decomposed).
    #[test]
    fn decomposed_text_is_the_composed_text(
        (field, max, _) in select(&TEXT_LIMITS[..]),
        n in 1usize..40,
        seed in prop::collection::vec(select(DECOMPOSABLE), 40..=40),
    ) {
        let value: String = seed.into_iter().take(n.min(max + 2)).collect();
        prop_assert_eq!(parse_text(field, &nfd(&value)), parse_text(field, &value));
    }

    /// A too-long email or phone number reports only its `…_TOO_LONG` reason, whatever its
    /// shape; a value within the limit is never refused as too long.
    #[test]
    fn too_long_is_the_only_reason_of_a_long_email_or_phone(raw in nasty_string(300)) {
        let email = EmailAddress::parse(&raw).map_err(|v| reason(&v));
        prop_assert_eq!(
            email.is_err_and(|r| r == "EMAIL_ADDRESS_TOO_LONG"),
            chars(&raw) > EMAIL_MAX
        );
        let phone = PhoneNumber::parse(&raw).map_err(|v| reason(&v));
        prop_assert_eq!(
            phone.is_err_and(|r| r == "PHONE_NUMBER_TOO_LONG"),
            chars(&raw) > PHONE_MAX
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Presence: absent = unchanged, empty = cleared

/// What a request may hold for one contact field.
#[derive(Debug, Clone, Copy)]
enum Sent {
    Absent,
    Empty,
    Value,
}

fn valid_value(field: ContactField) -> &'static str {
    match field {
        ContactField::EmailAddress => "OHIOS@openclinica.com",
        ContactField::PhoneNumber => "+1 1234567890",
        ContactField::FullDob => "1980-02-29",
        _ => "Ожегов",
    }
}

proptest! {
    /// For every combination of absent, empty and set contact fields: absent fields are
    /// `Unchanged`, empty ones `Clear` (never a format error, whatever the field's format), and
    /// set ones `Set` to the value.
    #[test]
    fn absent_is_unchanged_and_empty_is_cleared(
        sent in prop::collection::vec(
            select(&[Sent::Absent, Sent::Empty, Sent::Value][..]),
            ContactField::ALL.len(),
        ),
    ) {
        let present = ContactField::ALL.iter().zip(&sent).map(|(&f, s)| {
            let raw = match s {
                Sent::Absent => None,
                Sent::Empty => Some(String::new()),
                Sent::Value => Some(valid_value(f).to_owned()),
            };
            (f, raw)
        });
        let mut violations = Vec::new();
        let patch = ContactPatch::parse(present, today(), &mut violations);
        prop_assert!(violations.is_empty(), "{:?}", violations);
        prop_assert_eq!(patch.is_empty(), sent.iter().all(|s| matches!(s, Sent::Absent)));
        for (&field, s) in ContactField::ALL.iter().zip(&sent) {
            let expected = match s {
                Sent::Absent => Patch::Unchanged,
                Sent::Empty => Patch::Clear,
                Sent::Value => Patch::Set(valid_value(field)),
            };
            prop_assert_eq!(patch.get(field), expected, "{}", field.path());
        }
    }

    /// Applying a patch: unchanged keeps what is stored, clear empties it, set replaces it.
    #[test]
    fn a_patch_applies_as_its_name_says(stored in prop::option::of("[a-z]{0,5}"), new in "[a-z]{1,5}") {
        prop_assert_eq!(Patch::Unchanged.apply(stored.clone()), stored.clone());
        prop_assert_eq!(Patch::<String>::Clear.apply(stored.clone()), None);
        prop_assert_eq!(Patch::Set(new.clone()).apply(stored), Some(new));
    }

    /// `secondary_id`: absent is unchanged, empty clears.
    #[test]
    fn secondary_id_presence(value in letters(1..=10)) {
        prop_assert_eq!(parse_secondary_id(None).map_err(|v| reason(&v)).map(|p| p == Patch::Unchanged), Ok(true));
        prop_assert_eq!(parse_secondary_id(Some("")).map_err(|v| reason(&v)).map(|p| p == Patch::Clear), Ok(true));
        let set = parse_secondary_id(Some(&value)).map(|p| p.map(|t| t.as_str().to_owned()));
        prop_assert_eq!(set.map_err(|v| reason(&v)), Ok(Patch::Set(value)));
    }
}

// ---------------------------------------------------------------------------------------------
// Participant IDs: trimmed, case-insensitive, one ID per visible spelling

/// The lookup form of a raw key, as the service computes it for a request: parsed (trimmed,
/// checked), then normalised; `None` when the key is refused or empty.
fn lookup(raw: &str) -> Option<String> {
    SubjectKey::parse(raw, "subject_key")
        .ok()
        .flatten()
        .map(|k| k.normalized())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Surrounding white space is not part of the ID: trimmed, it is the same ID and is stored
    /// without it.
    #[test]
    fn surrounding_white_space_is_trimmed(
        key in letters(1..=20),
        before in surrounding_space(),
        after in surrounding_space(),
    ) {
        let padded = format!("{before}{key}{after}");
        prop_assert_eq!(lookup(&padded), lookup(&key));
        prop_assert_eq!(normalize_subject_key(&padded), normalize_subject_key(&key));
        let stored = SubjectKey::parse(&padded, "subject_key").ok().flatten();
        prop_assert_eq!(stored.map(|k| k.as_str().to_owned()), Some(key));
    }

    /// Matching is case-insensitive: a key, its upper-case and its lower-case spellings are one
    /// ID (`ß`/`SS`, `Σ`/`ς`, `ǅ`/`Ǆ`…).
    #[test]
    fn upper_and_lower_case_spellings_are_one_id(key in cased_key()) {
        let upper = key.to_uppercase();
        let lower = key.to_lowercase();
        prop_assert_eq!(normalize_subject_key(&upper), normalize_subject_key(&key), "upper {}", upper);
        prop_assert_eq!(normalize_subject_key(&lower), normalize_subject_key(&key), "lower {}", lower);
        if let (Some(k), Some(u)) = (lookup(&key), lookup(&upper)) {
            prop_assert_eq!(k, u);
        }
    }

    /// A key typed in a language's case conventions is the same ID: upper-casing and
    /// lower-casing any part of it never makes a second ID.
    #[test]
    fn changing_the_case_of_part_of_a_key_keeps_the_id(
        key in cased_key(),
        from in 0usize..10,
        upper in any::<bool>(),
    ) {
        let cut = key.char_indices().nth(from).map_or(key.len(), |(i, _)| i);
        let (head, tail) = key.split_at(cut);
        let tail = if upper { tail.to_uppercase() } else { tail.to_lowercase() };
        prop_assert_eq!(normalize_subject_key(&format!("{head}{tail}")), normalize_subject_key(&key));
    }

    /// Canonically equivalent spellings (`é` and `e` + U+0301, Hangul syllables and jamo) are
    /// one ID, and the key is stored as given, up to that equivalence.
    #[test]
    fn composed_and_decomposed_keys_are_one_id(
        key in prop::collection::vec(prop_oneof![select(DECOMPOSABLE), select(LETTERS)], 1..=15)
            .prop_map(|v| v.into_iter().collect::<String>()),
    ) {
        let decomposed = nfd(&key);
        prop_assert_eq!(lookup(&decomposed), lookup(&key));
        let stored = SubjectKey::parse(&decomposed, "subject_key").ok().flatten();
        prop_assert_eq!(stored.map(|k| nfd(k.as_str())), Some(decomposed));
    }

    /// A character that hides (zero-width, format, control, bidirectional, a no-break space…)
    /// inside a key never makes a second ID that looks like the first: the key is refused, or it
    /// is the same ID as without the character.
    #[test]
    fn a_hidden_character_never_makes_a_look_alike_id(
        key in letters(2..=20),
        hidden in select(HIDDEN),
        at in 1usize..20,
    ) {
        let key: String = key.chars().filter(|c| !c.is_whitespace()).collect();
        prop_assume!(chars(&key) >= 2);
        let at = key.char_indices().nth(at.min(chars(&key) - 1)).map_or(key.len(), |(i, _)| i);
        let with = format!("{}{hidden}{}", &key[..at], &key[at..]);
        if let Some(with) = lookup(&with) {
            prop_assert_eq!(Some(with), lookup(&key), "U+{:04X} was kept", u32::from(hidden));
        }
    }

    /// `<` and `>` are refused anywhere in a key (the SPEC's HTML rule), for keys of at most 30
    /// characters.
    #[test]
    fn html_characters_are_refused_in_keys(
        key in letters(0..=20),
        c in select(&['<', '>'][..]),
        at in 0usize..21,
    ) {
        let at = key.char_indices().nth(at).map_or(key.len(), |(i, _)| i);
        let with = format!("{}{c}{}", &key[..at], &key[at..]);
        prop_assert_eq!(
            SubjectKey::parse(&with, "subject_key").map_err(|v| reason(&v)),
            Err("PARTICIPANT_ID_CONTAINS_UNSUPPORTED_HTML_CHARACTER")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Phone numbers: `+`, 1 to 3 digits, one space, 1 to 14 digits; at most 17 characters

fn digits(range: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
    prop::collection::vec(
        select(&['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'][..]),
        range,
    )
    .prop_map(|v| v.into_iter().collect())
}

/// Digits of other scripts (Arabic-Indic, Devanagari, full-width, mathematical): digits to a
/// Unicode-aware `\d`, but not the SPEC's `[0-9]`.
const OTHER_DIGITS: &[char] = &['٣', '۴', '५', '３', '𝟗', '߂'];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Every number of the SPEC's shape is accepted when it has at most 17 characters, and
    /// refused as too long otherwise.
    #[test]
    fn phone_numbers_of_the_spec_shape(cc in digits(1..=3), number in digits(1..=14)) {
        let raw = format!("+{cc} {number}");
        let got = PhoneNumber::parse(&raw).map(|p| p.as_str().to_owned()).map_err(|v| reason(&v));
        if chars(&raw) <= PHONE_MAX {
            prop_assert_eq!(got, Ok(raw));
        } else {
            prop_assert_eq!(got, Err("PHONE_NUMBER_TOO_LONG"));
        }
    }

    /// A number off the shape by one edit, within 17 characters, is `INVALID_PHONE_NUMBER`.
    #[test]
    fn phone_numbers_off_the_shape(
        cc in digits(1..=3),
        number in digits(1..=10),
        edit in 0usize..10,
        other in select(OTHER_DIGITS),
    ) {
        let broken = match edit {
            0 => format!("{cc} {number}"),                 // no +
            1 => format!("+{cc}{number}"),                 // no space
            2 => format!("+{cc}  {number}"),               // two spaces
            3 => format!("+{cc}\u{A0}{number}"),           // a no-break space
            4 => format!("+{cc} {number}\n"),              // a line feed after
            5 => format!(" +{cc} {number}"),               // a space before
            6 => format!("+{cc} {number}{other}"),         // a digit of another script
            7 => format!("+{other} {number}"),
            8 => format!("+{cc} {number}-1"),
            _ => format!("+ {number}"),                    // no country code
        };
        prop_assume!(chars(&broken) <= PHONE_MAX);
        prop_assert_eq!(
            PhoneNumber::parse(&broken).map_err(|v| reason(&v)).err(),
            Some("INVALID_PHONE_NUMBER"),
            "{:?}", broken
        );
    }

    /// 17 characters of other scripts' digits are more than 17 bytes: refused for their shape,
    /// never as too long.
    #[test]
    fn phone_length_is_in_characters(other in select(OTHER_DIGITS), n in 1usize..=14) {
        let raw = format!("+1 {}", std::iter::repeat_n(other, n).collect::<String>());
        prop_assert_eq!(
            PhoneNumber::parse(&raw).map_err(|v| reason(&v)).err(),
            Some("INVALID_PHONE_NUMBER")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Email addresses: the SPEC's grammar, at most 255 characters

/// The characters of an atom of the local part, per the SPEC's pattern.
const ATOM: &[char] = &[
    'a', 'z', 'A', 'Z', '0', '9', '!', '#', '$', '%', '&', '\'', '*', '+', '/', '=', '?', '^', '_',
    '`', '{', '|', '}', '~', '-',
];

fn atom() -> impl Strategy<Value = String> {
    prop::collection::vec(select(ATOM), 1..=8).prop_map(|v| v.into_iter().collect())
}

/// A domain label: letters and digits, inner hyphens.
fn label() -> impl Strategy<Value = String> {
    (
        select(&['a', 'Z', '0', '7'][..]),
        prop::collection::vec(select(&['a', 'q', 'Z', '5', '-'][..]), 0..=6),
        select(&['b', 'Y', '3'][..]),
        any::<bool>(),
    )
        .prop_map(|(first, inner, last, one)| {
            if one {
                first.to_string()
            } else {
                format!("{first}{}{last}", inner.into_iter().collect::<String>())
            }
        })
}

fn email() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(atom(), 1..=3),
        prop::collection::vec(label(), 2..=4),
    )
        .prop_map(|(local, domain)| format!("{}@{}", local.join("."), domain.join(".")))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Every address of the SPEC's grammar is accepted (up to 255 characters), as given.
    #[test]
    fn emails_of_the_spec_grammar(raw in email()) {
        prop_assert_eq!(
            EmailAddress::parse(&raw).map(|e| e.as_str().to_owned()).map_err(|v| reason(&v)),
            Ok(raw)
        );
    }

    /// An address of the grammar padded to n characters: accepted up to 255, too long after.
    #[test]
    fn email_length_limit(raw in email(), delta in -2i64..=2) {
        let n = usize::try_from(EMAIL_MAX as i64 + delta).unwrap_or(0);
        let pad = n.saturating_sub(chars(&raw));
        let long = format!("{}{raw}", "x".repeat(pad));
        let got = EmailAddress::parse(&long).map(|_| ()).map_err(|v| reason(&v));
        if chars(&long) <= EMAIL_MAX {
            prop_assert_eq!(got, Ok(()));
        } else {
            prop_assert_eq!(got, Err("EMAIL_ADDRESS_TOO_LONG"));
        }
    }

    /// An address broken by one edit is `INVALID_EMAIL_ADDRESS`.
    #[test]
    fn emails_off_the_grammar(
        raw in email(),
        edit in 0usize..11,
        foreign in select(&['é', 'Ж', '中', '\u{A0}', ' ', '"', ',', '(', '\u{200B}'][..]),
    ) {
        let (local, domain) = raw.split_once('@').unwrap_or((&raw, ""));
        let broken = match edit {
            0 => format!("{local}{domain}"),             // no @
            1 => format!("{local}@@{domain}"),           // two @
            2 => format!(".{raw}"),                      // local part starts with a dot
            3 => format!("{local}.@{domain}"),           // local part ends with a dot
            4 => format!("{local}@-{domain}"),           // a label starts with a hyphen
            5 => format!("{raw}-"),                      // a label ends with a hyphen
            6 => format!("{local}@{}", domain.replace('.', "")), // a domain of one label
            7 => format!("{raw}\n"),                     // a line feed after
            8 => format!("{local}{foreign}@{domain}"),   // a character outside the grammar
            9 => format!("{local}@{domain}."),           // a trailing dot
            _ => format!("{local}@{}", domain.replacen('.', "..", 1)), // an empty label
        };
        prop_assert_eq!(
            EmailAddress::parse(&broken).map_err(|v| reason(&v)).err(),
            Some("INVALID_EMAIL_ADDRESS"),
            "{:?}", broken
        );
    }
}

// ---------------------------------------------------------------------------------------------
// full_dob: YYYY-MM-DD, a real calendar date, not in the future

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// A `YYYY-MM-DD` triple is accepted exactly when it is a real date of the Gregorian
    /// calendar on or before today (and, as the service adds, not before 1900).
    #[test]
    fn dates_of_birth(year in 1900i32..=2030, month in 0u32..=13, day in 0u32..=32) {
        let raw = format!("{year:04}-{month:02}-{day:02}");
        let real = (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month);
        let past = (year, month, day) <= TODAY;
        let got = DateOfBirth::parse(&raw, today()).map(|d| d.as_str().to_owned()).map_err(|v| reason(&v));
        if real && past {
            prop_assert_eq!(got, Ok(raw));
        } else {
            prop_assert_eq!(got, Err("INVALID_FULL_DOB"));
        }
    }

    /// A real past date written any other way than `YYYY-MM-DD` is refused.
    #[test]
    fn dates_of_birth_written_otherwise(
        year in 1900i32..=2025,
        month in 1u32..=9,
        day in 1u32..=9,
        edit in 0usize..8,
    ) {
        let raw = match edit {
            0 => format!("{year}-{month}-{day:02}"),
            1 => format!("{year}-{month:02}-{day}"),
            2 => format!("{year}/{month:02}/{day:02}"),
            3 => format!(" {year}-{month:02}-{day:02}"),
            4 => format!("{year}-{month:02}-{day:02}T00:00:00"),
            5 => format!("+{year}-{month:02}-{day:02}"),
            6 => format!("{day:02}-{month:02}-{year}"),
            _ => format!("{year}-{month:02}-{day:02}")
                .chars()
                .map(|c| c.to_digit(10).and_then(|d| char::from_u32(0xFF10 + d)).unwrap_or(c))
                .collect(),
        };
        prop_assert_eq!(
            DateOfBirth::parse(&raw, today()).map_err(|v| reason(&v)).err(),
            Some("INVALID_FULL_DOB"),
            "{:?}", raw
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The order of violations, and no panic on any input

proptest! {
    /// Sorted violations put first the reason that comes first in the SPEC's table.
    #[test]
    fn the_first_violation_is_the_first_in_the_spec_table(
        picks in prop::collection::vec(0usize..SPEC_TABLE_ORDER.len(), 1..8),
    ) {
        let by_name = |name: &str| Reason::ALL.iter().copied().find(|r| r.as_str() == name);
        let mut violations: Vec<Violation> = picks
            .iter()
            .filter_map(|&i| by_name(SPEC_TABLE_ORDER[i]))
            .map(|r| Violation::new("f", r, "d"))
            .collect();
        prop_assert_eq!(violations.len(), picks.len(), "a SPEC reason is missing from Reason::ALL");
        sort_violations(&mut violations);
        let positions: Vec<usize> = violations
            .iter()
            .filter_map(|v| SPEC_TABLE_ORDER.iter().position(|n| *n == v.reason.as_str()))
            .collect();
        prop_assert!(positions.windows(2).all(|w| w[0] <= w[1]), "{:?}", positions);
        prop_assert_eq!(positions.first().copied(), picks.iter().min().copied());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// No validator panics, on any string; and none echoes the value in its message.
    #[test]
    fn no_input_panics_a_validator(raw in nasty_string(400)) {
        let mut messages = Vec::new();
        let mut keep = |r: Result<(), Violation>| {
            if let Err(v) = r {
                messages.push(v.description);
            }
        };
        keep(SubjectKey::parse(&raw, "subject_key").map(|_| ()));
        let _ = normalize_subject_key(&raw);
        keep(RequestId::parse(&raw).map(|_| ()));
        keep(parse_reason_for_change(&raw).map(|_| ()));
        keep(parse_secondary_id(Some(&raw)).map(|_| ()));
        let _ = plausible_oid(&raw);
        for chars in [Chars::Identifier, Chars::SingleLine, Chars::MultiLine] {
            keep(Text::parse_with(&raw, "f", 35, Reason::FirstNameTooLong, chars).map(|_| ()));
            let _ = chars.any_refused(&raw);
        }
        for field in ContactField::ALL {
            keep(parse_contact_value(field, &raw, today()).map(|_| ()));
        }
        let mut violations = Vec::new();
        let _ = ContactPatch::parse(
            ContactField::ALL.iter().map(|&f| (f, Some(raw.clone()))),
            today(),
            &mut violations,
        );
        messages.extend(violations.into_iter().map(|v| v.description));
        // Messages are plain ASCII English: a value with other characters must not be in one.
        let value = raw.trim();
        if chars(value) >= 4 && !value.is_ascii() {
            for m in &messages {
                prop_assert!(!m.contains(value), "a message quotes the value: {}", m);
            }
        }
    }

    /// Keys are compared by their normal form: normalising it again changes nothing, so a
    /// stored normal form always finds its participant.
    #[test]
    fn the_lookup_form_is_stable(raw in nasty_string(40)) {
        let once = normalize_subject_key(&raw);
        prop_assert_eq!(normalize_subject_key(&once), once.clone());
    }
}

/// Found by `upper_and_lower_case_spellings_are_one_id`: `İ` is the ID letter `i` (the service
/// folds it so), but its lower case outside Turkish is `i` + U+0307 (what Rust, Java, JavaScript
/// and Python give), which was a second ID: a client that lower-cases IDs before sending them
/// created a second participant instead of finding the first.
#[test]
fn dotted_capital_i_in_either_case_is_one_id() {
    let spellings = [
        "ISTANBUL-7",
        "istanbul-7",
        "İSTANBUL-7",
        "i\u{307}stanbul-7", // "İstanbul-7".to_lowercase()
        "I\u{307}STANBUL-7",
    ];
    assert_eq!("İ".to_lowercase(), "i\u{307}");
    let ids: Vec<Option<String>> = spellings.iter().map(|s| lookup(s)).collect();
    for (spelling, id) in spellings.iter().zip(&ids) {
        assert_eq!(id, &ids[0], "{spelling:?}");
    }
    // The dotless ı is its own letter (Unicode's default folding; see the note at `CASED`).
    assert_ne!(lookup("ıstanbul-7"), ids[0]);
    // The dot above stays where it sits on another letter or above another mark.
    assert_ne!(lookup("e\u{307}x"), lookup("ex"));
    assert_ne!(lookup("i\u{301}\u{307}x"), lookup("i\u{301}x"));
}

/// A text of each field that is exactly at its limit in 4-byte characters is accepted (the
/// largest byte count a limit allows), and one more character is refused.
#[test]
fn limits_hold_for_four_byte_characters() {
    for (field, max, too_long) in TEXT_LIMITS {
        let at = "😀".repeat(max);
        assert_eq!(
            parse_text(field, &at),
            Ok(Patch::Set(at.clone())),
            "{}",
            field.path()
        );
        assert_eq!(
            parse_text(field, &format!("{at}😀")),
            Err(too_long),
            "{}",
            field.path()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Identifiers the service makes (SPEC section 4)

/// SPEC section 4: the access code alphabet, without look-alike characters.
const SPEC_ACCESS_CODE_ALPHABET: &str = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// `subject_oid`: `SS_` followed by the first 8 upper-cased ASCII letters and digits of the ID.
    #[test]
    fn subject_oid_is_ss_and_the_first_eight_ascii_letters_and_digits(key in nasty_string(40)) {
        use participants::domain::id::subject_oid_base;
        let oid = subject_oid_base(&key);
        let tail = oid.strip_prefix("SS_");
        prop_assert!(tail.is_some(), "{}", oid);
        let tail = tail.unwrap_or_default();
        prop_assert!(tail.len() <= 8 && tail.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()), "{}", oid);
        // The ASCII letters and digits of the ID, in order, upper-cased, begin with the tail.
        let ascii: String = key.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_ascii_uppercase();
        prop_assert!(ascii.starts_with(tail) && tail.len() == ascii.len().min(8), "{} from {:?}", oid, key);
    }

    /// The collision suffixes `_2`, `_3`, … of one base are all different, and each names its n.
    #[test]
    fn subject_oid_suffixes_name_their_number(key in letters(0..=12), n in 1i64..1_000_000) {
        use participants::domain::id::{subject_oid_base, subject_oid_candidate, subject_oid_suffix};
        let base = subject_oid_base(&key);
        let oid = subject_oid_candidate(&base, n);
        prop_assert_eq!(subject_oid_suffix(&base, &oid), Some(n));
        prop_assert_ne!(subject_oid_candidate(&base, n + 1), oid);
    }

    /// Access codes: 9 characters of the SPEC's alphabet.
    #[test]
    fn access_codes_use_the_spec_alphabet(seed in any::<u64>()) {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let code = participants::domain::id::access_code(&mut rng);
        prop_assert_eq!(code.chars().count(), 9);
        prop_assert!(code.chars().all(|c| SPEC_ACCESS_CODE_ALPHABET.contains(c)), "{}", code);
    }
}
