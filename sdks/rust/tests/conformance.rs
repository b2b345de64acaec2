//! Rust runner of the SDK conformance suite (sdks/conformance/cases.json).
//!
//! Needs a live server: PARTICIPANTS_ADDR (host:port) and PARTICIPANTS_TOKENS_FILE ({"user": "jwt"}).
//! Optional: CONFORMANCE_CASES (path of cases.json), CONFORMANCE_OUT (JSON-lines file to which one
//! normalized outcome per case is appended, for the driver's cross-language comparison).
//! Driven by sdks/run-conformance.sh (`--include-ignored`); ignored otherwise, and passes without
//! doing anything when PARTICIPANTS_ADDR is unset.
//!
//! Requests and responses go through proto3 JSON with prost-reflect over the crate's own
//! FILE_DESCRIPTOR_SET; the calls themselves go through the typed client, its bearer token and
//! ParticipantsError, as a caller's would.

use std::{collections::BTreeMap, env, fs, io::Write, path::PathBuf};

use participants_client::{ErrorReason, ParticipantsError, v1};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use serde_json::{Map, Value, json};

const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];
const VOLATILE: [&str; 9] = [
    "createTime",
    "updateTime",
    "etag",
    "accessCode",
    "nextPageToken",
    "eventId",
    "time",
    "hash",
    "requestId",
];

fn code_name(code: tonic::Code) -> String {
    CODE_NAMES
        .get(code as usize)
        .map_or_else(|| format!("{code:?}"), |n| (*n).to_owned())
}

fn read_json(path: &PathBuf) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
#[ignore = "needs a live server (PARTICIPANTS_ADDR): sdks/run-conformance.sh runs it"]
async fn conformance() {
    let Ok(addr) = env::var("PARTICIPANTS_ADDR") else {
        eprintln!("skipped: PARTICIPANTS_ADDR not set, no live server to test against");
        return;
    };
    let cases_path = env::var("CONFORMANCE_CASES").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../conformance/cases.json"),
        PathBuf::from,
    );
    let suite = read_json(&cases_path);
    let tokens = read_json(&PathBuf::from(
        env::var("PARTICIPANTS_TOKENS_FILE").expect("PARTICIPANTS_TOKENS_FILE is not set"),
    ));
    let domain = suite["errorDomain"]
        .as_str()
        .expect("errorDomain")
        .to_owned();
    let pool = DescriptorPool::decode(participants_client::FILE_DESCRIPTOR_SET)
        .expect("the crate's descriptor set decodes");
    let mut out = env::var("CONFORMANCE_OUT").ok().map(|p| {
        fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(p)
            .expect("CONFORMANCE_OUT opens")
    });

    let cases = suite["cases"].as_array().expect("cases");
    let mut failed = Vec::new();
    for case in cases {
        let name = case["name"].as_str().expect("case name");
        let token = match (&case["token"], case["user"].as_str()) {
            (Value::String(t), _) => t.clone(),
            (_, Some(user)) => tokens[user]
                .as_str()
                .unwrap_or_else(|| panic!("no token for user {user}"))
                .to_owned(),
            _ => panic!("{name}: neither user nor token"),
        };
        let (mut outcome, problems) = run_case(&addr, token, &domain, &pool, case).await;
        outcome.insert("name".into(), json!(name));
        outcome.insert("pass".into(), json!(problems.is_empty()));
        if let Some(out) = out.as_mut() {
            writeln!(out, "{}", Value::Object(outcome)).expect("CONFORMANCE_OUT written");
        }
        if problems.is_empty() {
            println!("ok   {name}");
        } else {
            println!("FAIL {name}");
            for p in &problems {
                println!("       {p}");
            }
            failed.push(name.to_owned());
        }
    }
    println!(
        "conformance (rust): {} passed, {} failed",
        cases.len() - failed.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "failed cases: {failed:?}");
}

async fn run_case(
    addr: &str,
    token: String,
    domain: &str,
    pool: &DescriptorPool,
    case: &Value,
) -> (Map<String, Value>, Vec<String>) {
    let mut client = participants_client::connect(addr, token.clone())
        .await
        .expect("connects to PARTICIPANTS_ADDR");
    let rpc = case["rpc"].as_str().expect("rpc");
    let request = case["request"].clone();
    let message = |name: &str| {
        pool.get_message_by_name(&format!("openclinica.participants.v1.{name}"))
            .unwrap_or_else(|| panic!("no message {name}"))
    };
    let result: Result<DynamicMessage, tonic::Status> = match rpc {
        "ImportParticipants" => return run_import(&mut client, domain, pool, case).await,
        "UpsertParticipant" => {
            let req: v1::UpsertParticipantRequest =
                from_json(message("UpsertParticipantRequest"), request);
            client
                .upsert_participant(req)
                .await
                .map(|r| to_dynamic(message("UpsertParticipantResponse"), &r.into_inner()))
        }
        "GetParticipant" => {
            let req: v1::GetParticipantRequest =
                from_json(message("GetParticipantRequest"), request);
            client
                .get_participant(req)
                .await
                .map(|r| to_dynamic(message("Participant"), &r.into_inner()))
        }
        "ListParticipants" => {
            let req: v1::ListParticipantsRequest =
                from_json(message("ListParticipantsRequest"), request);
            let desc = message("ListParticipantsResponse");
            if case["pages"] == "all" {
                participants_client::list_all_participants(&mut client, req)
                    .await
                    .map(|participants| {
                        let all = v1::ListParticipantsResponse {
                            participants,
                            next_page_token: String::new(),
                        };
                        to_dynamic(desc, &all)
                    })
            } else {
                client
                    .list_participants(req)
                    .await
                    .map(|r| to_dynamic(desc, &r.into_inner()))
            }
        }
        "ListAuditEvents" => {
            let req: v1::ListAuditEventsRequest =
                from_json(message("ListAuditEventsRequest"), request);
            let desc = message("ListAuditEventsResponse");
            let mut audit = participants_client::connect_audit(addr, token)
                .await
                .expect("connects to PARTICIPANTS_ADDR");
            if case["pages"] == "all" {
                participants_client::list_all_audit_events(&mut audit, req)
                    .await
                    .map(|events| {
                        let all = v1::ListAuditEventsResponse {
                            events,
                            next_page_token: String::new(),
                        };
                        to_dynamic(desc, &all)
                    })
            } else {
                audit
                    .list_audit_events(req)
                    .await
                    .map(|r| to_dynamic(desc, &r.into_inner()))
            }
        }
        other => panic!("unknown rpc {other}"),
    };
    let expect = &case["expect"];
    match result {
        Err(status) => error_outcome(&ParticipantsError::from(&status), expect, domain),
        Ok(response) => ok_outcome(&response, expect),
    }
}

/// Streams the case's rows through `import_participants`; checks each row's answer by its index.
async fn run_import(
    client: &mut participants_client::Client,
    domain: &str,
    pool: &DescriptorPool,
    case: &Value,
) -> (Map<String, Value>, Vec<String>) {
    let message = |name: &str| {
        pool.get_message_by_name(&format!("openclinica.participants.v1.{name}"))
            .unwrap_or_else(|| panic!("no message {name}"))
    };
    let rows: Vec<v1::UpsertParticipantRequest> = case["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .map(|row| from_json(message("UpsertParticipantRequest"), row.clone()))
        .collect();
    let count = rows.len();
    let expect = &case["expect"];
    let wanted: BTreeMap<i64, &Value> = expect["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| (r["index"].as_i64().expect("results[].index"), r))
        .collect();
    let unknown = json!({"code": "?"});
    let mut outcomes: BTreeMap<i64, Value> = BTreeMap::new();
    let mut problems = Vec::new();
    let stream = participants_client::tokio_stream::iter(rows);
    let mut results = match participants_client::import_participants(client, stream).await {
        Ok(results) => results,
        Err(status) => return error_outcome(&ParticipantsError::from(status), expect, domain),
    };
    while let Some(row) = results.next().await {
        let row = match row {
            Ok(row) => row,
            Err(status) => return error_outcome(&ParticipantsError::from(status), expect, domain),
        };
        let index = row.index;
        if outcomes.contains_key(&index) || !(0..count as i64).contains(&index) {
            problems.push(format!("row {index}: answered twice or not a row"));
            continue;
        }
        let want = wanted.get(&index).copied().unwrap_or(&unknown);
        let (mut outcome, row_problems) = match &row.outcome {
            Ok(response) => ok_outcome(
                &to_dynamic(message("UpsertParticipantResponse"), response),
                want,
            ),
            Err(e) => error_outcome(e, want, domain),
        };
        outcome.insert("index".into(), json!(index));
        outcomes.insert(index, Value::Object(outcome));
        problems.extend(
            row_problems
                .into_iter()
                .map(|p| format!("row {index}: {p}")),
        );
    }
    let missing: Vec<usize> = (0..count)
        .filter(|i| !outcomes.contains_key(&(*i as i64)))
        .collect();
    if !missing.is_empty() {
        problems.push(format!("rows never answered: {missing:?}"));
    }
    let expected_code = expect["code"].as_str().unwrap_or("");
    if expected_code != "OK" {
        problems.push(format!(
            "expected the stream to fail with {expected_code}, it ended OK"
        ));
    }
    let mut outcome = Map::new();
    outcome.insert("code".into(), json!("OK"));
    outcome.insert(
        "results".into(),
        Value::Array(outcomes.into_values().collect()),
    );
    (outcome, problems)
}

/// The normalized outcome of a failed call (or refused import row) and the unmet expectations.
fn error_outcome(
    e: &ParticipantsError,
    expect: &Value,
    domain: &str,
) -> (Map<String, Value>, Vec<String>) {
    let expected_code = expect["code"].as_str().expect("expect.code");
    let mut outcome = Map::new();
    let mut violations: Vec<(String, String)> = e
        .field_violations
        .iter()
        .map(|v| (v.field.clone(), v.reason.as_str_name().to_owned()))
        .collect();
    violations.sort();
    outcome.insert("code".into(), json!(code_name(e.code)));
    outcome.insert("reason".into(), json!(e.reason.as_str_name()));
    outcome.insert("errorCode".into(), json!(e.error_code().unwrap_or("")));
    outcome.insert("metadata".into(), json!(e.metadata));
    outcome.insert(
        "fieldViolations".into(),
        json!(violations.iter().map(|(f, r)| [f, r]).collect::<Vec<_>>()),
    );
    if expected_code == "OK" {
        return (outcome, vec![format!("expected OK, got {e}")]);
    }
    (outcome, error_problems(e, expect, domain))
}

/// The normalized outcome of a successful call (or written import row) and the unmet
/// expectations.
fn ok_outcome(response: &DynamicMessage, expect: &Value) -> (Map<String, Value>, Vec<String>) {
    let expected_code = expect["code"].as_str().expect("expect.code");
    let mut outcome = Map::new();
    let actual = response
        .serialize_with_options(
            serde_json::value::Serializer,
            &SerializeOptions::new().skip_default_fields(false),
        )
        .expect("the response prints as proto3 JSON");
    outcome.insert("code".into(), json!("OK"));
    outcome.insert("response".into(), strip_volatile(&actual));
    if expected_code != "OK" {
        let reason = expect["reason"].as_str().unwrap_or("");
        return (
            outcome,
            vec![format!(
                "expected {expected_code} / {reason}, got OK: {actual}"
            )],
        );
    }
    let expected = match &expect["response"] {
        Value::Null => json!({}),
        v => v.clone(),
    };
    let mut problems = Vec::new();
    matches(&expected, Some(&actual), "response", &mut problems);
    (outcome, problems)
}

fn error_problems(e: &ParticipantsError, expect: &Value, domain: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let expected_code = expect["code"].as_str().unwrap_or("");
    if code_name(e.code) != expected_code {
        problems.push(format!(
            "code: expected {expected_code}, got {} ({})",
            code_name(e.code),
            e.message
        ));
    }
    if e.domain != domain {
        problems.push(format!(
            "ErrorInfo.domain: expected {domain}, got {:?}",
            e.domain
        ));
    }
    let reason = expect["reason"].as_str().unwrap_or("");
    if e.reason_name != reason {
        problems.push(format!(
            "ErrorInfo.reason: expected {reason}, got {:?}",
            e.reason_name
        ));
    }
    if e.reason == ErrorReason::Unspecified {
        problems.push(format!(
            "ErrorInfo.reason {:?} is not a known ErrorReason",
            e.reason_name
        ));
    }
    let error_code = expect["errorCode"].as_str().unwrap_or("");
    if e.error_code().unwrap_or("") != error_code {
        problems.push(format!(
            "errorCode: expected {error_code}, got {:?}",
            e.error_code()
        ));
    }
    if let Some(metadata) = expect["metadata"].as_object() {
        for (k, v) in metadata {
            let got = e.metadata.get(k).map(String::as_str);
            if got != v.as_str() {
                problems.push(format!("metadata.{k}: expected {v}, got {got:?}"));
            }
        }
    }
    if let Some(wanted) = expect["fieldViolations"].as_array() {
        let mut want: Vec<(String, String)> = wanted
            .iter()
            .map(|v| {
                (
                    v["field"].as_str().unwrap_or("").to_owned(),
                    v["reason"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        let mut got = Vec::new();
        for v in &e.field_violations {
            got.push((v.field.clone(), v.reason_name.clone()));
            if v.reason == ErrorReason::Unspecified {
                problems.push(format!(
                    "field violation reason {:?} is not a known ErrorReason",
                    v.reason_name
                ));
            }
            if v.description.is_empty() {
                problems.push(format!("field violation {} has no description", v.field));
            }
        }
        want.sort();
        got.sort();
        if want != got {
            problems.push(format!("field violations: expected {want:?}, got {got:?}"));
        }
    }
    for secret in expect["noEcho"].as_array().into_iter().flatten() {
        let secret = secret.as_str().unwrap_or("");
        let echoed = std::iter::once(e.message.as_str())
            .chain(e.field_violations.iter().map(|v| v.description.as_str()))
            .any(|text| text.contains(secret));
        if echoed {
            problems.push(format!("personal data {secret:?} echoed in the error"));
        }
    }
    problems
}

fn from_json<T: Message + Default>(desc: prost_reflect::MessageDescriptor, json: Value) -> T {
    let dynamic = DynamicMessage::deserialize(desc, json).expect("the request is proto3 JSON");
    dynamic.transcode_to().expect("the request transcodes")
}

fn to_dynamic<T: Message>(desc: prost_reflect::MessageDescriptor, message: &T) -> DynamicMessage {
    let mut dynamic = DynamicMessage::new(desc);
    dynamic
        .transcode_from(message)
        .expect("the response transcodes");
    dynamic
}

fn strip_volatile(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !VOLATILE.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), strip_volatile(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_volatile).collect()),
        other => other.clone(),
    }
}

/// The matcher of cases.json: objects as subsets, "$" matchers, exact scalars. `actual` is None
/// when the key is missing.
fn matches(expected: &Value, actual: Option<&Value>, path: &str, problems: &mut Vec<String>) {
    if let Some(m) = expected.as_str().filter(|s| s.starts_with('$')) {
        let text = actual.and_then(Value::as_str);
        let ok = match m {
            "$absent" => actual.is_none(),
            "$empty" => actual.is_none() || text == Some(""),
            "$nonempty" => text.is_some_and(|t| !t.is_empty()),
            re if re.starts_with("$re:") => {
                let pattern = regex::Regex::new(&re[4..]).expect("a valid $re: pattern");
                text.is_some_and(|t| pattern.is_match(t))
            }
            other => panic!("unknown matcher {other}"),
        };
        if !ok {
            problems.push(format!("{path}: expected {m}, got {actual:?}"));
        }
        return;
    }
    if let Value::Object(want) = expected {
        let empty = Map::new();
        let got = match actual {
            None => &empty,
            Some(Value::Object(got)) => got,
            Some(other) => {
                problems.push(format!("{path}: expected an object, got {other}"));
                return;
            }
        };
        let sorted: BTreeMap<_, _> = want.iter().collect();
        for (k, v) in sorted {
            matches(v, got.get(k), &format!("{path}.{k}"), problems);
        }
        return;
    }
    let Some(actual) = actual else {
        problems.push(format!("{path}: missing, expected {expected}"));
        return;
    };
    if let (Value::Array(want), Value::Array(got)) = (expected, actual)
        && want.len() == got.len()
    {
        for (i, (w, g)) in want.iter().zip(got).enumerate() {
            matches(w, Some(g), &format!("{path}[{i}]"), problems);
        }
        return;
    }
    if expected != actual {
        problems.push(format!("{path}: expected {expected}, got {actual}"));
    }
}
