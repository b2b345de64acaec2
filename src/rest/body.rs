//! The JSON of the route: the seed's camelCase body in, the original's answers out.

use axum::{
    body::Body,
    http::{HeaderMap, Uri, header, request::Parts},
};
use serde::Deserialize;

use super::{Answer, HttpConfig};
use crate::domain::Reason;
use crate::service::model::{
    Contact, ListInput, ParticipantPage, ParticipantStatus, ParticipantView, ParticipateStatus,
    ScopeRef, UpsertInput, UpsertOutcome,
};

/// The seed's body. Absent and `null` keep a value, `""` clears it; unknown fields are
/// ignored; a field given twice (or both `secondaryId` and its alias `identifier`) is refused.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ParticipantBody {
    subject_key: Option<String>,
    #[serde(alias = "identifier")]
    secondary_id: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    middle_name: Option<String>,
    email_address: Option<String>,
    phone_number: Option<String>,
    street_address1: Option<String>,
    street_address2: Option<String>,
    city: Option<String>,
    state: Option<String>,
    country: Option<String>,
    postal_code: Option<String>,
    full_dob: Option<String>,
    hospital_number: Option<String>,
    /// Not in the original: the reason for change recorded in the audit trail.
    reason_for_change: Option<String>,
}

fn malformed(message: impl Into<String>) -> Box<Answer> {
    Box::new(Answer::rejected(Reason::MalformedRequest, message))
}

/// The value of query parameter `name` (the first, percent-decoded).
pub fn query_param(uri: &Uri, name: &str) -> Option<String> {
    form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// One header's value as text; a header sent twice or not text is refused.
fn single_header(headers: &HeaderMap, name: &header::HeaderName) -> Result<String, Box<Answer>> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(String::new());
    };
    if values.next().is_some() {
        return Err(malformed(format!(
            "the {name} header is given more than once"
        )));
    }
    value
        .to_str()
        .map(|v| v.trim().to_owned())
        .map_err(|_| malformed(format!("the {name} header is not text")))
}

/// `If-Match: "etag"` (quotes optional) as the etag the service compares.
fn etag_of(if_match: String) -> String {
    let v = if_match.trim();
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
        .to_owned()
}

/// The UpsertInput of a POST: query `register`, headers `Idempotency-Key` and `If-Match`,
/// and the JSON body, read within the size limit and the call's deadline.
pub async fn upsert_input(
    parts: &Parts,
    body: Body,
    scope: ScopeRef,
    config: &HttpConfig,
    deadline: tokio::time::Instant,
) -> Result<UpsertInput, Box<Answer>> {
    let content_type = single_header(&parts.headers, &header::CONTENT_TYPE)?;
    let is_json = content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(malformed(
            "the body must be JSON: send Content-Type: application/json",
        ));
    }
    let bytes =
        match tokio::time::timeout_at(deadline, axum::body::to_bytes(body, config.max_body_bytes))
            .await
        {
            Err(_) => {
                return Err(Box::new(Answer::rejected(
                    Reason::RequestTimedOut,
                    "the body did not arrive in time; nothing was written",
                )));
            }
            Ok(Err(_)) => {
                return Err(Box::new(Answer::rejected(
                    Reason::MessageTooLarge,
                    format!(
                        "the body is larger than {} bytes, or could not be read",
                        config.max_body_bytes
                    ),
                )));
            }
            Ok(Ok(bytes)) => bytes,
        };
    let body: ParticipantBody = serde_json::from_slice(&bytes).map_err(|e| {
        // serde_json's own message can quote the value it choked on: only its kind and
        // position are told, never the value.
        use serde_json::error::Category;
        let what = match e.classify() {
            Category::Syntax => "is not well-formed JSON",
            Category::Eof => "ends before the JSON does",
            Category::Data => {
                "is not a participant: it must be one JSON object whose fields are strings or null, each field once"
            }
            Category::Io => "could not be read",
        };
        malformed(format!(
            "the body {what} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let register = query_param(&parts.uri, "register").is_some_and(|v| {
        let v = v.trim();
        v.eq_ignore_ascii_case("y") || v.eq_ignore_ascii_case("yes")
    });
    let request_id = single_header(
        &parts.headers,
        &header::HeaderName::from_static("idempotency-key"),
    )?;
    crate::telemetry::trace::record_request_id(&request_id);
    let etag = etag_of(single_header(&parts.headers, &header::IF_MATCH)?);
    let contact = Contact {
        first_name: body.first_name,
        last_name: body.last_name,
        middle_name: body.middle_name,
        email_address: body.email_address,
        phone_number: body.phone_number,
        street_address1: body.street_address1,
        street_address2: body.street_address2,
        city: body.city,
        state: body.state,
        country: body.country,
        postal_code: body.postal_code,
        full_dob: body.full_dob,
        hospital_number: body.hospital_number,
    };
    Ok(UpsertInput {
        scope: Some(scope),
        subject_key: body.subject_key.unwrap_or_default(),
        secondary_id: body.secondary_id,
        contact: contact.any().then_some(contact),
        register,
        request_id,
        validate_only: false,
        etag,
        reason_for_change: body.reason_for_change.unwrap_or_default(),
    })
}

/// `pageSize` of a listing's query: 0 when absent (the listing's default).
fn page_size_param(uri: &Uri) -> Result<i32, Box<Answer>> {
    match query_param(uri, "pageSize") {
        None => Ok(0),
        Some(v) => v
            .trim()
            .parse::<i32>()
            .map_err(|_| malformed("pageSize must be a whole number")),
    }
}

/// The ListInput of a GET of the collection: `pageSize`, `pageToken` and `status`
/// (`AVAILABLE`, `SIGNED` or `REMOVED`, any case) from the query.
pub fn list_input(uri: &Uri, scope: ScopeRef) -> Result<ListInput, Box<Answer>> {
    let page_size = page_size_param(uri)?;
    let status = match query_param(uri, "status") {
        None => None,
        Some(v) => Some(match v.trim().to_ascii_uppercase().as_str() {
            "AVAILABLE" => ParticipantStatus::Available,
            "SIGNED" => ParticipantStatus::Signed,
            "REMOVED" => ParticipantStatus::Removed,
            _ => return Err(malformed("status must be AVAILABLE, SIGNED or REMOVED")),
        }),
    };
    Ok(ListInput {
        scope: Some(scope),
        page_size,
        page_token: query_param(uri, "pageToken").unwrap_or_default(),
        status,
    })
}

/// The AuditQuery of a GET of a Participant's trail: `pageSize`, `pageToken`, and `startTime` /
/// `endTime` in RFC 3339.
pub fn audit_query(
    uri: &Uri,
    scope: ScopeRef,
    subject_key: String,
) -> Result<crate::domain::audit::AuditQuery, Box<Answer>> {
    let page_size = page_size_param(uri)?;
    let time = |name: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>, Box<Answer>> {
        match query_param(uri, name) {
            None => Ok(None),
            Some(v) => chrono::DateTime::parse_from_rfc3339(v.trim())
                .map(|t| Some(t.with_timezone(&chrono::Utc)))
                .map_err(|_| {
                    malformed(format!(
                        "{name} must be an RFC 3339 time, such as 2026-11-28T09:00:00Z (a '+' in a query is read as a space: send it as %2B)"
                    ))
                }),
        }
    };
    Ok(crate::domain::audit::AuditQuery {
        study_oid: scope.study_oid,
        site_oid: scope.site_oid,
        subject_key: Some(subject_key),
        start: time("startTime")?,
        end: time("endTime")?,
        page_size,
        page_token: query_param(uri, "pageToken"),
    })
}

/// A page of the trail as JSON: `events` (camelCase, as ListAuditEvents) and `nextPageToken`.
pub fn audit_page_json(page: &crate::domain::audit::AuditPage) -> serde_json::Value {
    let events: Vec<serde_json::Value> = page
        .events
        .iter()
        .map(|e| {
            serde_json::json!({
                "eventId": e.event_id,
                "studyOid": e.study_oid,
                "siteOid": e.site_oid.clone().unwrap_or_default(),
                "subjectKey": e.subject_key,
                "type": e.event_type.map_or("", |t| t.as_str()),
                "field": e.field.clone().unwrap_or_default(),
                "oldValue": e.old_value,
                "newValue": e.new_value,
                "user": e.user,
                "time": e.time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "requestId": e.request_id.clone().unwrap_or_default(),
                "reasonForChange": e.reason_for_change.clone().unwrap_or_default(),
                "hash": e.hash.clone().unwrap_or_default(),
            })
        })
        .collect();
    serde_json::json!({
        "events": events,
        "nextPageToken": page.next_page_token.clone().unwrap_or_default(),
    })
}

/// A page as JSON: `participants` (each as GET answers it) and `nextPageToken` (`""` on the
/// last page).
pub fn page_json(page: &ParticipantPage) -> serde_json::Value {
    serde_json::json!({
        "participants": page.participants.iter().map(participant_json).collect::<Vec<_>>(),
        "nextPageToken": page.next_page_token.clone().unwrap_or_default(),
    })
}

/// The field names of violations, as the body names them (`contact.first_name` → `firstName`).
pub fn json_field_name(field: &str) -> String {
    let last = field.rsplit('.').next().unwrap_or(field);
    let mut out = String::with_capacity(last.len());
    let mut upper = false;
    for c in last.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn status_name(s: ParticipantStatus) -> &'static str {
    match s {
        ParticipantStatus::Available => "AVAILABLE",
        ParticipantStatus::Signed => "SIGNED",
        ParticipantStatus::Removed => "REMOVED",
        ParticipantStatus::Unknown => "",
    }
}

fn participate_name(s: ParticipateStatus) -> &'static str {
    match s {
        ParticipateStatus::None => "",
        ParticipateStatus::Created => "Created",
        ParticipateStatus::Invited => "Invited",
        ParticipateStatus::Active => "Active",
        ParticipateStatus::Inactive => "Inactive",
    }
}

/// The original's success body: `subjectKey`, `subjectOid`, `status`, `participateStatus`, and
/// `accessCode` when the call registered.
pub fn upsert_answer(o: &UpsertOutcome) -> serde_json::Value {
    let p = &o.participant;
    let mut body = serde_json::json!({
        "subjectKey": p.subject_key,
        "subjectOid": p.subject_oid,
        "status": status_name(p.status),
        "participateStatus": participate_name(p.participate_status),
    });
    if let Some(code) = &o.access_code {
        body["accessCode"] = code.clone().into();
    }
    body
}

fn contact_json(c: &Contact) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (field, value) in c.fields() {
        if let Some(v) = value {
            out.insert(json_field_name(field.name()), v.into());
        }
    }
    out.into()
}

/// A Participant as GetParticipant answers it, in JSON (camelCase, times in RFC 3339).
pub fn participant_json(p: &ParticipantView) -> serde_json::Value {
    let mut body = serde_json::json!({
        "studyOid": p.study_oid,
        "siteOid": p.site_oid.clone().unwrap_or_default(),
        "subjectKey": p.subject_key,
        "subjectOid": p.subject_oid,
        "status": status_name(p.status),
        "participateStatus": participate_name(p.participate_status),
        "createTime": p.create_time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "updateTime": p.update_time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "etag": p.etag,
    });
    if let Some(s) = &p.secondary_id {
        body["secondaryId"] = s.clone().into();
    }
    if let Some(c) = &p.contact {
        body["contact"] = contact_json(c);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_follow_the_body() {
        assert_eq!(json_field_name("contact.first_name"), "firstName");
        assert_eq!(json_field_name("street_address1"), "streetAddress1");
        assert_eq!(json_field_name("subject_key"), "subjectKey");
    }

    #[test]
    fn if_match_takes_quoted_and_bare_etags() {
        assert_eq!(etag_of("\"abc\"".into()), "abc");
        assert_eq!(etag_of(" abc ".into()), "abc");
    }

    #[test]
    fn the_body_refuses_duplicates_and_wrong_types_and_ignores_unknown_fields() {
        let parse = |s: &str| serde_json::from_slice::<ParticipantBody>(s.as_bytes());
        assert!(parse(r#"{"firstName":5}"#).is_err());
        assert!(parse(r#"{"firstName":"a","firstName":"b"}"#).is_err());
        assert!(parse(r#"{"secondaryId":"a","identifier":"b"}"#).is_err());
        assert!(parse(r#"[]"#).is_err());
        let body =
            parse(r#"{"identifier":"X","firstName":null,"lastName":"","zzz":1}"#).expect("a body");
        assert_eq!(body.secondary_id.as_deref(), Some("X"));
        assert_eq!(body.first_name, None);
        assert_eq!(body.last_name.as_deref(), Some(""));
    }
}
