//! Field validation: raw request strings are parsed at the edge into domain types, and every
//! broken rule is collected. No message produced here contains the submitted value.

use std::sync::LazyLock;

use chrono::NaiveDate;
use regex::Regex;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use super::reason::Reason;

/// One broken rule, reported as a `google.rpc.BadRequest.FieldViolation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Request path, e.g. `contact.first_name`.
    pub field: &'static str,
    pub reason: Reason,
    /// Plain English naming the field and the limit, never the value.
    pub description: String,
}

impl Violation {
    pub fn new(field: &'static str, reason: Reason, description: impl Into<String>) -> Self {
        Self {
            field,
            reason,
            description: description.into(),
        }
    }
}

/// Sorts violations into table order, so that the first one is `ErrorInfo.reason`.
pub fn sort_violations(violations: &mut [Violation]) {
    violations.sort_by_key(|v| v.reason);
}

/// The update rule of a field with explicit presence.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Patch<T> {
    /// Absent: leave the stored value as it is.
    #[default]
    Unchanged,
    /// Present and empty: clear the stored value.
    Clear,
    /// Present and non-empty: replace the stored value.
    Set(T),
}

impl<T> Patch<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Patch<U> {
        match self {
            Patch::Unchanged => Patch::Unchanged,
            Patch::Clear => Patch::Clear,
            Patch::Set(v) => Patch::Set(f(v)),
        }
    }

    /// The value the field has after applying this patch to `current`.
    pub fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Patch::Unchanged => current,
            Patch::Clear => None,
            Patch::Set(v) => Some(v),
        }
    }
}

fn char_len(s: &str) -> usize {
    s.chars().count()
}

/// Which characters a field may hold besides the visible ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chars {
    /// IDs, keys and OIDs: no control, format or line-separator character at all.
    Identifier,
    /// One line of text (names, address lines): as `Identifier`, except the zero-width joiner and
    /// non-joiner, which Persian and Indic names and emoji sequences need.
    SingleLine,
    /// Free text (`reason_for_change`): as `SingleLine`, plus line feed, carriage return and tab.
    MultiLine,
}

/// Unicode's Default_Ignorable_Code_Point property (DerivedCoreProperties.txt): characters
/// that render as nothing, such as variation selectors, the combining grapheme joiner, Hangul
/// fillers and tags. Listed here because none of our crates exposes the property.
const DEFAULT_IGNORABLE: [(u32, u32); 17] = [
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
];

fn default_ignorable(c: char) -> bool {
    let c = u32::from(c);
    DEFAULT_IGNORABLE
        .iter()
        .any(|&(first, last)| (first..=last).contains(&c))
}

/// What names, address lines and reasons keep of the invisible characters: the zero-width
/// non-joiner and joiner (Persian and Indic spelling, emoji sequences) and the variation
/// selectors (emoji and CJK presentation).
fn text_joiner(c: char) -> bool {
    matches!(c, '\u{200C}' | '\u{200D}' | '\u{FE00}'..='\u{FE0F}')
}

impl Chars {
    fn refuses(self, c: char) -> bool {
        use GeneralCategory as G;
        let category = c.general_category();
        let hidden = match category {
            G::Control => !(self == Chars::MultiLine && matches!(c, '\n' | '\r' | '\t')),
            G::Format => !(self != Chars::Identifier && text_joiner(c)),
            G::LineSeparator | G::ParagraphSeparator => self != Chars::MultiLine,
            G::Unassigned | G::Surrogate => true,
            _ => false,
        };
        hidden
            || (default_ignorable(c) && !(self != Chars::Identifier && text_joiner(c)))
            // In an ID, a key or an OID: nothing drawn from a private font, and no space but
            // the plain one (a no-break space looks the same and compares different), nor the
            // Braille pattern blank, a symbol that draws as a space.
            || (self == Chars::Identifier
                && (category == G::PrivateUse
                    || (category == G::SpaceSeparator && c != ' ')
                    || c == '\u{2800}'))
    }

    /// Whether `s` holds a character this kind of field refuses (NUL, ESC, a zero-width space,
    /// a bidirectional override, a BOM, a variation selector in an ID…): such characters hide
    /// what a value really is. An ID, key or OID may not start with a combining mark either.
    pub fn any_refused(self, s: &str) -> bool {
        let leading_mark = self == Chars::Identifier
            && s.chars().next().is_some_and(|c| {
                matches!(
                    c.general_category(),
                    GeneralCategory::NonspacingMark
                        | GeneralCategory::SpacingMark
                        | GeneralCategory::EnclosingMark
                )
            });
        leading_mark || s.chars().any(|c| self.refuses(c))
    }
}

fn unsupported_character(field: &'static str) -> Violation {
    Violation::new(
        field,
        Reason::UnsupportedCharacter,
        format!("{field} must not contain control characters or invisible formatting characters"),
    )
}

/// Canonical composition (NFC), so that `é` and `e` + U+0301 are one value.
pub fn nfc(s: &str) -> String {
    s.nfc().collect()
}

/// Maximum length of a Participant ID, in characters.
pub const SUBJECT_KEY_MAX: usize = 30;
/// Maximum length of a `request_id`, in characters.
pub const REQUEST_ID_MAX: usize = 64;

fn has_html_character(s: &str) -> bool {
    s.contains(['<', '>'])
}

/// A Participant ID: trimmed, 1 to 30 characters, without `<` or `>`; with its normal form,
/// computed once (a write compares it several times: with the batch's rows, its counters, and
/// the row it stores).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectKey {
    key: String,
    normalized: String,
}

impl SubjectKey {
    /// Parses a non-empty raw key; `None` when it is empty after trimming.
    pub fn parse(raw: &str, field: &'static str) -> Result<Option<Self>, Violation> {
        let key = nfc(raw.trim());
        if key.is_empty() {
            return Ok(None);
        }
        if char_len(&key) > SUBJECT_KEY_MAX {
            return Err(Violation::new(
                field,
                Reason::ParticipantIdLongerThan30Characters,
                format!("{field} must be at most {SUBJECT_KEY_MAX} characters"),
            ));
        }
        if has_html_character(&key) {
            return Err(Violation::new(
                field,
                Reason::ParticipantIdContainsUnsupportedHtmlCharacter,
                format!("{field} must not contain '<' or '>'"),
            ));
        }
        if Chars::Identifier.any_refused(&key) {
            return Err(unsupported_character(field));
        }
        let normalized = normalize_subject_key(&key);
        Ok(Some(Self { key, normalized }))
    }

    /// A key already known to be valid, such as a generated one.
    pub fn from_generated(key: String) -> Result<Self, Violation> {
        Self::parse(&key, "subject_key")?.ok_or_else(|| {
            Violation::new(
                "subject_key",
                Reason::MissingParticipantIdData,
                "the generated Participant ID is empty",
            )
        })
    }

    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// The form used for the case-insensitive unique key within a study.
    pub fn normalized(&self) -> String {
        self.normalized.clone()
    }
}

/// How Participant IDs are compared: trimmed, then Unicode compatibility caseless matching
/// (NFD, full case folding, NFKD, full case folding, NFKC), so `SS` and `ß`, `é` and `e` +
/// U+0301, or full-width `ＡＢ` and `AB` are one ID. Capital I with dot (U+0130) is `i`, as a
/// Turkish user typing the ID expects, and so is its lower case outside Turkish, `i` + U+0307
/// (what `to_lowercase` gives in Rust, Java, JavaScript and Python): a client that lower-cases
/// IDs still finds its participant. Every other character, the dotless `ı` among them, follows
/// Unicode's default full case folding. Computed here, never by the database, so SQLite and
/// PostgreSQL compare alike.
pub fn normalize_subject_key(raw: &str) -> String {
    use caseless::Caseless;
    let folded: String = raw.trim().nfd().default_case_fold().collect();
    let refolded: String = folded.nfkd().default_case_fold().collect();
    let normal: String = one_i(&refolded).nfkc().collect();
    // A compatibility character may decompose to white space (U+00A8 is a space and a combining
    // diaeresis): trimmed again, so the normal form of a normal form is itself.
    normal.trim().to_owned()
}

/// In a decomposed, case-folded string, drops a dot above (U+0307) that belongs to an `i` (no
/// other mark above between them), so `İ` (`I` + U+0307 decomposed) and `i` + U+0307 are `i`.
fn one_i(folded: &str) -> String {
    use unicode_normalization::char::canonical_combining_class;
    const ABOVE: u8 = 230;
    let mut out = String::with_capacity(folded.len());
    // Whether the current base letter is an i whose dot above may still follow.
    let mut on_i = false;
    for c in folded.chars() {
        let class = canonical_combining_class(c);
        if class == 0 {
            on_i = c == 'i';
            out.push(c);
        } else if on_i && c == '\u{307}' {
            on_i = false;
        } else {
            on_i = on_i && class != ABOVE;
            out.push(c);
        }
    }
    out
}

/// Bounded free text (names, address lines, Secondary ID, hospital number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(String);

impl Text {
    pub fn parse(
        raw: &str,
        field: &'static str,
        max: usize,
        too_long: Reason,
    ) -> Result<Self, Violation> {
        Self::parse_with(raw, field, max, too_long, Chars::SingleLine)
    }

    /// Composes the text (NFC), then checks its length in characters and its characters.
    pub fn parse_with(
        raw: &str,
        field: &'static str,
        max: usize,
        too_long: Reason,
        chars: Chars,
    ) -> Result<Self, Violation> {
        let text = nfc(raw);
        if char_len(&text) > max {
            return Err(Violation::new(
                field,
                too_long,
                format!("{field} must be at most {max} characters"),
            ));
        }
        if chars.any_refused(&text) {
            return Err(unsupported_character(field));
        }
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// OpenClinica's email pattern, whole string. The patterns are constants that the tests prove
/// compile; if one ever failed to, values would be refused, never a panic on a request.
static EMAIL_PATTERN: LazyLock<Result<Regex, regex::Error>> = LazyLock::new(|| {
    Regex::new(
        r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$",
    )
});

/// OpenClinica's phone pattern, whole string.
static PHONE_PATTERN: LazyLock<Result<Regex, regex::Error>> =
    LazyLock::new(|| Regex::new(r"^\+[0-9]{1,3} [0-9]{1,14}$"));

fn matches(pattern: &LazyLock<Result<Regex, regex::Error>>, value: &str) -> bool {
    pattern.as_ref().is_ok_and(|re| re.is_match(value))
}

pub const EMAIL_MAX: usize = 255;
pub const PHONE_MAX: usize = 17;

/// An email address of at most 255 characters matching OpenClinica's pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, Violation> {
        const FIELD: &str = "contact.email_address";
        if char_len(raw) > EMAIL_MAX {
            return Err(Violation::new(
                FIELD,
                Reason::EmailAddressTooLong,
                format!("{FIELD} must be at most {EMAIL_MAX} characters"),
            ));
        }
        if !matches(&EMAIL_PATTERN, raw) {
            return Err(Violation::new(
                FIELD,
                Reason::InvalidEmailAddress,
                format!("{FIELD} must be an email address such as name@example.org"),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A phone number of at most 17 characters: `+`, a country code, a space, the number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(raw: &str) -> Result<Self, Violation> {
        const FIELD: &str = "contact.phone_number";
        if char_len(raw) > PHONE_MAX {
            return Err(Violation::new(
                FIELD,
                Reason::PhoneNumberTooLong,
                format!("{FIELD} must be at most {PHONE_MAX} characters"),
            ));
        }
        if !matches(&PHONE_PATTERN, raw) {
            return Err(Violation::new(
                FIELD,
                Reason::InvalidPhoneNumber,
                format!(
                    "{FIELD} must be '+', a country code of 1 to 3 digits, one space, then 1 to 14 digits, such as +1 1234567890"
                ),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The earliest date of birth accepted: nobody alive was born before it, and `0000-01-01` is a
/// placeholder, not a date of birth.
pub const DOB_EARLIEST: NaiveDate = match NaiveDate::from_ymd_opt(1900, 1, 1) {
    Some(d) => d,
    None => NaiveDate::MIN,
};

/// A full date of birth: a real calendar date, `YYYY-MM-DD`, from 1900-01-01 to today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateOfBirth(String);

impl DateOfBirth {
    pub fn parse(raw: &str, today: NaiveDate) -> Result<Self, Violation> {
        const FIELD: &str = "contact.full_dob";
        let invalid = || {
            Violation::new(
                FIELD,
                Reason::InvalidFullDob,
                format!(
                    "{FIELD} must be a real date written YYYY-MM-DD, not before 1900-01-01 and not in the future"
                ),
            )
        };
        // The shape is checked first: chrono alone would accept `2020-1-5`.
        let well_formed = raw.len() == 10
            && raw.bytes().enumerate().all(|(i, b)| match i {
                4 | 7 => b == b'-',
                _ => b.is_ascii_digit(),
            });
        if !well_formed {
            return Err(invalid());
        }
        let date = NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| invalid())?;
        if date > today || date < DOB_EARLIEST {
            return Err(invalid());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An idempotency key: 1 to 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    pub fn parse(raw: &str) -> Result<Option<Self>, Violation> {
        if raw.is_empty() {
            return Ok(None);
        }
        // Composed like every text, so that a retry from a client that spells `é` as `e` and
        // U+0301 is the same call; then compared byte for byte. Nothing that hides may be in it.
        // The length is the one sent: a few characters (U+0958…) decompose under NFC.
        let composed = nfc(raw);
        if char_len(raw) > REQUEST_ID_MAX {
            return Err(Violation::new(
                "request_id",
                Reason::RequestIdTooLong,
                format!("request_id must be at most {REQUEST_ID_MAX} characters"),
            ));
        }
        if Chars::Identifier.any_refused(&composed) {
            return Err(unsupported_character("request_id"));
        }
        Ok(Some(Self(composed)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Maximum length of `reason_for_change`, in characters: it is kept for as long as the audit
/// trail, which nothing may delete.
pub const REASON_FOR_CHANGE_MAX: usize = 1000;

/// Why a change was made, recorded with its audit events; `None` when empty.
pub fn parse_reason_for_change(raw: &str) -> Result<Option<Text>, Violation> {
    if raw.is_empty() {
        return Ok(None);
    }
    Text::parse_with(
        raw,
        "reason_for_change",
        REASON_FOR_CHANGE_MAX,
        Reason::ReasonForChangeTooLong,
        Chars::MultiLine,
    )
    .map(Some)
}

/// The longest OID the catalog accepts.
pub const OID_MAX: usize = 40;

/// Whether `oid` could name a study or site at all: 1 to 40 characters, no white space, no
/// `<` or `>`, nothing that hides. Anything else is refused at the edge, never looked up or
/// echoed back.
pub fn plausible_oid(oid: &str) -> bool {
    !oid.is_empty()
        && char_len(oid) <= OID_MAX
        && !oid.chars().any(char::is_whitespace)
        && !has_html_character(oid)
        && !Chars::Identifier.any_refused(oid)
}

/// A contact field: its request path, stored column name, and rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContactField {
    FirstName,
    LastName,
    MiddleName,
    EmailAddress,
    PhoneNumber,
    StreetAddress1,
    StreetAddress2,
    City,
    State,
    Country,
    PostalCode,
    FullDob,
    HospitalNumber,
}

impl ContactField {
    pub const ALL: [ContactField; 13] = [
        ContactField::FirstName,
        ContactField::LastName,
        ContactField::MiddleName,
        ContactField::EmailAddress,
        ContactField::PhoneNumber,
        ContactField::StreetAddress1,
        ContactField::StreetAddress2,
        ContactField::City,
        ContactField::State,
        ContactField::Country,
        ContactField::PostalCode,
        ContactField::FullDob,
        ContactField::HospitalNumber,
    ];

    /// The proto field name, also the name used in audit events.
    pub fn name(self) -> &'static str {
        match self {
            ContactField::FirstName => "first_name",
            ContactField::LastName => "last_name",
            ContactField::MiddleName => "middle_name",
            ContactField::EmailAddress => "email_address",
            ContactField::PhoneNumber => "phone_number",
            ContactField::StreetAddress1 => "street_address1",
            ContactField::StreetAddress2 => "street_address2",
            ContactField::City => "city",
            ContactField::State => "state",
            ContactField::Country => "country",
            ContactField::PostalCode => "postal_code",
            ContactField::FullDob => "full_dob",
            ContactField::HospitalNumber => "hospital_number",
        }
    }

    /// The request path reported in field violations.
    pub fn path(self) -> &'static str {
        match self {
            ContactField::FirstName => "contact.first_name",
            ContactField::LastName => "contact.last_name",
            ContactField::MiddleName => "contact.middle_name",
            ContactField::EmailAddress => "contact.email_address",
            ContactField::PhoneNumber => "contact.phone_number",
            ContactField::StreetAddress1 => "contact.street_address1",
            ContactField::StreetAddress2 => "contact.street_address2",
            ContactField::City => "contact.city",
            ContactField::State => "contact.state",
            ContactField::Country => "contact.country",
            ContactField::PostalCode => "contact.postal_code",
            ContactField::FullDob => "contact.full_dob",
            ContactField::HospitalNumber => "contact.hospital_number",
        }
    }

    /// Length limit and its reason, for the plain text fields.
    fn text_limit(self) -> Option<(usize, Reason)> {
        match self {
            ContactField::FirstName => Some((35, Reason::FirstNameTooLong)),
            ContactField::LastName => Some((35, Reason::LastNameTooLong)),
            ContactField::MiddleName => Some((35, Reason::MiddleNameTooLong)),
            ContactField::StreetAddress1 => Some((155, Reason::StreetAddress1TooLong)),
            ContactField::StreetAddress2 => Some((155, Reason::StreetAddress2TooLong)),
            ContactField::City => Some((155, Reason::CityTooLong)),
            ContactField::State => Some((155, Reason::StateTooLong)),
            ContactField::Country => Some((155, Reason::CountryTooLong)),
            ContactField::PostalCode => Some((35, Reason::PostalCodeTooLong)),
            ContactField::HospitalNumber => Some((35, Reason::HospitalNumberTooLong)),
            ContactField::EmailAddress | ContactField::PhoneNumber | ContactField::FullDob => None,
        }
    }
}

/// A validated contact value of any kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactValue {
    Text(Text),
    Email(EmailAddress),
    Phone(PhoneNumber),
    Dob(DateOfBirth),
}

impl ContactValue {
    pub fn as_str(&self) -> &str {
        match self {
            ContactValue::Text(v) => v.as_str(),
            ContactValue::Email(v) => v.as_str(),
            ContactValue::Phone(v) => v.as_str(),
            ContactValue::Dob(v) => v.as_str(),
        }
    }
}

/// Parses one present contact value. An empty value clears and is never a format error.
pub fn parse_contact_value(
    field: ContactField,
    raw: &str,
    today: NaiveDate,
) -> Result<Patch<ContactValue>, Violation> {
    if raw.is_empty() {
        return Ok(Patch::Clear);
    }
    let value = match field {
        ContactField::EmailAddress => ContactValue::Email(EmailAddress::parse(raw)?),
        ContactField::PhoneNumber => ContactValue::Phone(PhoneNumber::parse(raw)?),
        ContactField::FullDob => ContactValue::Dob(DateOfBirth::parse(raw, today)?),
        other => {
            let (max, reason) = other
                .text_limit()
                .ok_or_else(|| Violation::new(other.path(), Reason::Internal, "no rule"))?;
            ContactValue::Text(Text::parse(raw, other.path(), max, reason)?)
        }
    };
    Ok(Patch::Set(value))
}

/// A validated set of contact changes, one patch per field in `ContactField::ALL` order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContactPatch {
    patches: Vec<(ContactField, Patch<ContactValue>)>,
}

impl ContactPatch {
    /// Parses the present fields; absent fields stay `Unchanged`.
    pub fn parse(
        present: impl IntoIterator<Item = (ContactField, Option<String>)>,
        today: NaiveDate,
        violations: &mut Vec<Violation>,
    ) -> Self {
        let mut patches = Vec::new();
        for (field, raw) in present {
            let Some(raw) = raw else { continue };
            match parse_contact_value(field, &raw, today) {
                Ok(patch) => patches.push((field, patch)),
                Err(v) => violations.push(v),
            }
        }
        Self { patches }
    }

    /// True when no contact field is present.
    pub fn is_empty(&self) -> bool {
        self.patches.is_empty()
    }

    /// The patch of one field.
    pub fn get(&self, field: ContactField) -> Patch<&str> {
        self.patches
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, p)| match p {
                Patch::Unchanged => Patch::Unchanged,
                Patch::Clear => Patch::Clear,
                Patch::Set(v) => Patch::Set(v.as_str()),
            })
            .unwrap_or(Patch::Unchanged)
    }
}

/// Parses `secondary_id`: bounded like the other IDs and without `<` or `>`.
pub fn parse_secondary_id(raw: Option<&str>) -> Result<Patch<Text>, Violation> {
    const FIELD: &str = "secondary_id";
    let Some(raw) = raw else {
        return Ok(Patch::Unchanged);
    };
    if raw.is_empty() {
        return Ok(Patch::Clear);
    }
    let text = Text::parse_with(
        raw,
        FIELD,
        35,
        Reason::SecondaryIdTooLong,
        Chars::Identifier,
    )?;
    if has_html_character(text.as_str()) {
        return Err(Violation::new(
            FIELD,
            Reason::ParticipantIdContainsUnsupportedHtmlCharacter,
            format!("{FIELD} must not contain '<' or '>'"),
        ));
    }
    Ok(Patch::Set(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patterns_compile() {
        assert!(EMAIL_PATTERN.is_ok());
        assert!(PHONE_PATTERN.is_ok());
        assert!(EmailAddress::parse("OHIOS@openclinica.com").is_ok());
        assert!(PhoneNumber::parse("+1 1234567890").is_ok());
    }

    #[test]
    fn a_request_id_is_composed_and_refuses_what_hides() {
        let composed = RequestId::parse("caf\u{e9}").unwrap().unwrap();
        let decomposed = RequestId::parse("cafe\u{301}").unwrap().unwrap();
        assert_eq!(composed, decomposed);
        assert_eq!(decomposed.as_str(), "caf\u{e9}");
        assert!(RequestId::parse("k\u{200B}1").is_err());
        assert!(RequestId::parse("k\u{2800}1").is_err());
        // 64 characters as sent, though NFC makes each of these two.
        assert!(RequestId::parse(&"\u{958}".repeat(64)).is_ok());
        assert!(RequestId::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn the_braille_blank_cannot_hide_in_an_id() {
        assert!(Chars::Identifier.any_refused("HIDE\u{2800}-1"));
        assert!(!Chars::Identifier.any_refused("HIDE-1"));
        // Braille itself is text like any other.
        assert!(!Chars::Identifier.any_refused("\u{2801}\u{2803}"));
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        assert_eq!(char_len("ОНІО"), 4);
        assert!(Text::parse(&"Ж".repeat(35), "f", 35, Reason::FirstNameTooLong).is_ok());
        assert!(Text::parse(&"Ж".repeat(36), "f", 35, Reason::FirstNameTooLong).is_err());
    }

    #[test]
    fn a_key_keeps_the_normal_form_of_what_it_holds() {
        // Trimmed and composed first (NFC), then normalized: the normal form is that of the
        // stored key, not of the raw input.
        let key = SubjectKey::parse("  \u{FF21}e\u{301}İ ", "subject_key")
            .unwrap()
            .unwrap();
        assert_eq!("\u{FF21}\u{E9}İ", key.as_str());
        assert_eq!(normalize_subject_key(key.as_str()), key.normalized());
        assert_eq!("aéi", key.normalized());
        let generated = SubjectKey::from_generated("SITE-0001".into()).unwrap();
        assert_eq!("site-0001", generated.normalized());
    }
}
