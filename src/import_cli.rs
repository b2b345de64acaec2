//! `participants import`: a CSV file of participants streamed through ImportParticipants
//! (SPEC section 13), with a progress bar, a results CSV and a summary line.
//!
//! Columns are matched by header, case-insensitively and ignoring spaces, `_` and `-`:
//! OpenClinica's bulk names (`ParticipantID`, `FirstName`, `EmailAddress`, `MobileNumber`,
//! `SecondaryID`, …) and the seed's camelCase names (`subjectKey`, `phoneNumber`, …). An empty
//! cell leaves the stored value unchanged (a spreadsheet's blank is not a request to erase).
//! Each row's `request_id` is made of the file's SHA-256 and the row number, so running the
//! same file again is answered from what the first run remembered and writes nothing.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use tonic::{Request, metadata::MetadataValue, transport::Channel};
use tonic_types::StatusExt;

use crate::config::ImportArgs;
use crate::pb::{
    ParticipantContact, SiteScope, StudyScope, UpsertParticipantRequest, import_result::Outcome,
    participant_service_client::ParticipantServiceClient, upsert_participant_request::Scope,
};

/// The exit code when every row was written (or validated).
pub const EXIT_OK: u8 = 0;
/// The exit code when at least one row was refused or left unanswered.
pub const EXIT_ROWS_FAILED: u8 = 1;
/// The exit code when the import could not run (file, connection, token).
pub const EXIT_NOT_RUN: u8 = 2;

/// A request field a column can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    SubjectKey,
    SecondaryId,
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
    ReasonForChange,
    Register,
    SiteOid,
}

/// Header names (folded: lower case, letters and digits only) and the field each fills.
const HEADERS: &[(&str, Column)] = &[
    ("participantid", Column::SubjectKey),
    ("subjectkey", Column::SubjectKey),
    ("studysubjectid", Column::SubjectKey),
    ("label", Column::SubjectKey),
    ("secondaryid", Column::SecondaryId),
    ("secondarylabel", Column::SecondaryId),
    ("identifier", Column::SecondaryId),
    ("firstname", Column::FirstName),
    ("lastname", Column::LastName),
    ("middlename", Column::MiddleName),
    ("emailaddress", Column::EmailAddress),
    ("email", Column::EmailAddress),
    ("mobilenumber", Column::PhoneNumber),
    ("phonenumber", Column::PhoneNumber),
    ("phone", Column::PhoneNumber),
    ("streetaddress1", Column::StreetAddress1),
    ("addressline1", Column::StreetAddress1),
    ("streetaddress2", Column::StreetAddress2),
    ("addressline2", Column::StreetAddress2),
    ("city", Column::City),
    ("state", Column::State),
    ("country", Column::Country),
    ("postalcode", Column::PostalCode),
    ("zipcode", Column::PostalCode),
    ("fulldob", Column::FullDob),
    ("dateofbirth", Column::FullDob),
    ("hospitalnumber", Column::HospitalNumber),
    ("reasonforchange", Column::ReasonForChange),
    ("register", Column::Register),
    ("siteoid", Column::SiteOid),
];

fn fold(header: &str) -> String {
    header
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Which column of the file fills which field; the headers no field has.
fn map_headers(headers: &csv::StringRecord) -> (Vec<(usize, Column)>, Vec<String>) {
    let mut columns = Vec::new();
    let mut unknown = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        let folded = fold(h.trim_start_matches('\u{feff}'));
        match HEADERS.iter().find(|(name, _)| *name == folded) {
            Some((_, column)) => columns.push((i, *column)),
            None if folded.is_empty() => {}
            None => unknown.push(h.to_owned()),
        }
    }
    (columns, unknown)
}

/// `y`, `yes`, `true`, `1` (any case) mean yes.
fn yes(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "y" | "yes" | "true" | "1"
    )
}

/// The row's request: `None` cells stay absent.
fn request(
    record: &csv::StringRecord,
    columns: &[(usize, Column)],
    study: &str,
    site: Option<&str>,
    request_id: String,
    dry_run: bool,
) -> UpsertParticipantRequest {
    let mut req = UpsertParticipantRequest {
        request_id,
        validate_only: dry_run,
        ..Default::default()
    };
    let mut contact = ParticipantContact::default();
    let mut has_contact = false;
    let mut site = site.map(str::to_owned);
    for (i, column) in columns {
        let Some(value) = record.get(*i).filter(|v| !v.is_empty()) else {
            continue;
        };
        let value = value.to_owned();
        let mut set = |field: &mut Option<String>| {
            *field = Some(value.clone());
            has_contact = true;
        };
        match column {
            Column::SubjectKey => req.subject_key = value,
            Column::SecondaryId => req.secondary_id = Some(value),
            Column::ReasonForChange => req.reason_for_change = value,
            Column::Register => req.register = yes(&value),
            Column::SiteOid => site = Some(value),
            Column::FirstName => set(&mut contact.first_name),
            Column::LastName => set(&mut contact.last_name),
            Column::MiddleName => set(&mut contact.middle_name),
            Column::EmailAddress => set(&mut contact.email_address),
            Column::PhoneNumber => set(&mut contact.phone_number),
            Column::StreetAddress1 => set(&mut contact.street_address1),
            Column::StreetAddress2 => set(&mut contact.street_address2),
            Column::City => set(&mut contact.city),
            Column::State => set(&mut contact.state),
            Column::Country => set(&mut contact.country),
            Column::PostalCode => set(&mut contact.postal_code),
            Column::FullDob => set(&mut contact.full_dob),
            Column::HospitalNumber => set(&mut contact.hospital_number),
        }
    }
    req.contact = has_contact.then_some(contact);
    req.scope = Some(match site {
        Some(site_oid) => Scope::Site(SiteScope {
            study_oid: study.to_owned(),
            site_oid,
        }),
        None => Scope::Study(StudyScope {
            study_oid: study.to_owned(),
        }),
    });
    req
}

/// The idempotency key of row `row` (1-based) of a file whose SHA-256 is `digest`: at most 64
/// characters.
pub fn row_request_id(digest: &[u8], row: u64) -> String {
    let hex = hex::encode(digest);
    format!("import-{}-{row}", &hex[..40])
}

/// One line of the results file.
#[derive(Debug, Clone, Default)]
struct RowResult {
    subject_key: String,
    outcome: &'static str,
    reason: String,
    error_code: String,
    message: String,
}

/// What the import did, for the summary line.
#[derive(Debug, Default)]
struct Counts {
    created: u64,
    updated: u64,
    validated: u64,
    failed: u64,
    unanswered: u64,
}

fn target_uri(target: &str) -> String {
    if target.starts_with("http://") || target.starts_with("https://") {
        target.to_owned()
    } else {
        format!("http://{target}")
    }
}

fn default_results(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".results.csv");
    PathBuf::from(name)
}

/// Runs `participants import`; the exit code.
pub async fn run(args: ImportArgs) -> u8 {
    match import(args).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            EXIT_NOT_RUN
        }
    }
}

async fn import(args: ImportArgs) -> Result<u8, String> {
    let bytes = std::fs::read(&args.file)
        .map_err(|e| format!("cannot read {}: {e}", args.file.display()))?;
    let digest = Sha256::digest(&bytes);
    let reader = || {
        csv::ReaderBuilder::new()
            .has_headers(true)
            // A row with more or fewer cells than the header (an unquoted comma in a name, a
            // cell lost) is refused: taking its cells in order would store values in the wrong
            // fields.
            .flexible(false)
            .from_reader(std::io::Cursor::new(bytes.clone()))
    };
    let mut first = reader();
    let headers = first
        .headers()
        .map_err(|e| {
            format!(
                "{}: the header line cannot be read: {e}",
                args.file.display()
            )
        })?
        .clone();
    let (columns, unknown) = map_headers(&headers);
    if !unknown.is_empty() {
        eprintln!("warning: columns ignored (no field has these names): {unknown:?}");
    }
    if columns.is_empty() && headers.len() == 1 && headers.iter().any(|h| h.contains(';')) {
        return Err(format!(
            "{}: the header line has no comma but has semicolons: save the file as comma-separated CSV (UTF-8)",
            args.file.display()
        ));
    }
    if columns.is_empty() {
        return Err(format!(
            "{}: no column has a known name (ParticipantID, FirstName, EmailAddress, …)",
            args.file.display()
        ));
    }
    let total = first.records().count() as u64;
    drop(first);

    let token = args
        .token
        .as_ref()
        .map(|t| t.expose_secret())
        .filter(|t| !t.is_empty())
        .ok_or("no token: give --token or set PARTICIPANTS_TOKEN")?;
    let mut bearer: MetadataValue<_> = format!("Bearer {token}")
        .parse()
        .map_err(|_| "the token is not valid header text".to_owned())?;
    // Kept out of any debug print of the request metadata.
    bearer.set_sensitive(true);
    let channel = Channel::from_shared(target_uri(&args.target))
        .map_err(|e| format!("--target {}: {e}", args.target))?
        .connect_timeout(CONNECT_TIMEOUT)
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", args.target))?;

    // Rows the CSV reader refused are answered here, and not sent.
    let mut results: Vec<Option<RowResult>> = vec![None; usize::try_from(total).unwrap_or(0)];
    let (bad_tx, bad_rx) = std::sync::mpsc::channel::<(usize, String)>();
    // Which row of the file each streamed request is (refused rows are skipped).
    let (sent_tx, sent_rx) = std::sync::mpsc::channel::<(usize, String)>();
    let study = args.study.clone();
    let site = args.site.clone();
    let dry_run = args.dry_run;
    let rows = futures_util::stream::iter(reader().into_records().enumerate()).filter_map(
        move |(i, record)| {
            let out = match record {
                Ok(record) => {
                    let row = i as u64 + 1;
                    // A dry run leaves no remembered answer: the real run after it must write.
                    let request_id = if dry_run {
                        String::new()
                    } else {
                        row_request_id(&digest, row)
                    };
                    let req = request(
                        &record,
                        &columns,
                        &study,
                        site.as_deref(),
                        request_id,
                        dry_run,
                    );
                    let size = prost::Message::encoded_len(&req);
                    if size > MAX_ROW_BYTES {
                        // The server would end the whole stream on it (MESSAGE_TOO_LARGE), and a
                        // re-run would stop at the same row: it is refused here instead.
                        let _ = bad_tx.send((
                            i,
                            format!(
                                "the row is {size} bytes, more than the {MAX_ROW_BYTES} a row may have"
                            ),
                        ));
                        return std::future::ready(None);
                    }
                    let _ = sent_tx.send((i, req.subject_key.clone()));
                    Some(req)
                }
                Err(e) => {
                    let _ = bad_tx.send((i, csv_problem(&e)));
                    None
                }
            };
            std::future::ready(out)
        },
    );

    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows  {per_sec}  ETA {eta}")
    {
        bar.set_style(style);
    }
    let started = Instant::now();
    let mut request = Request::new(rows);
    request.metadata_mut().insert("authorization", bearer);
    let mut client = ParticipantServiceClient::new(channel).max_decoding_message_size(1 << 20);
    let mut answers = client
        .import_participants(request)
        .await
        .map_err(|s| {
            let hint = match s.code() {
                tonic::Code::Unauthenticated => {
                    ": the token is missing, malformed, expired or not signed with a key the server knows; get a fresh one from your identity provider (or `participants token --user NAME` with the development secret) and pass it with --token or PARTICIPANTS_TOKEN"
                }
                _ => "",
            };
            format!("the import was refused: {}{hint}", describe(&s))
        })?
        .into_inner();

    let mut streamed: Vec<(usize, String)> = Vec::with_capacity(results.len());
    let mut counts = Counts::default();
    let mut ended: Option<tonic::Status> = None;
    loop {
        let next = match answers.message().await {
            Ok(Some(answer)) => answer,
            Ok(None) => break,
            Err(status) => {
                ended = Some(status);
                break;
            }
        };
        streamed.extend(sent_rx.try_iter());
        let Some((row, key)) = usize::try_from(next.index)
            .ok()
            .and_then(|i| streamed.get(i))
            .cloned()
        else {
            continue;
        };
        let result = match next.outcome {
            Some(Outcome::Response(r)) => {
                let outcome = if dry_run {
                    counts.validated += 1;
                    "validated"
                } else if r.created {
                    counts.created += 1;
                    "created"
                } else {
                    counts.updated += 1;
                    "updated"
                };
                RowResult {
                    subject_key: r.participant.map_or(key, |p| p.subject_key),
                    outcome,
                    ..Default::default()
                }
            }
            Some(Outcome::Error(s)) => {
                counts.failed += 1;
                let status = tonic::Status::with_details(
                    tonic::Code::from(s.code),
                    s.message.clone(),
                    prost::Message::encode_to_vec(&s).into(),
                );
                failed(key, &status)
            }
            None => continue,
        };
        if let Some(slot) = results.get_mut(row) {
            *slot = Some(result);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let took = started.elapsed();
    for (row, error) in bad_rx.try_iter() {
        counts.failed += 1;
        if let Some(slot) = results.get_mut(row) {
            *slot = Some(RowResult {
                outcome: "failed",
                reason: "CSV_ERROR".into(),
                message: error,
                ..Default::default()
            });
        }
    }
    let keys: HashMap<usize, String> = streamed.into_iter().chain(sent_rx.try_iter()).collect();
    let path = args
        .results
        .clone()
        .unwrap_or_else(|| default_results(&args.file));
    write_results(&path, &mut results, &keys, &mut counts, ended.as_ref())?;

    let answered = counts.created + counts.updated + counts.validated + counts.failed;
    let rate = answered as f64 / took.as_secs_f64().max(1e-3);
    println!(
        "{total} rows in {:.1}s ({rate:.0} rows/s): {} created, {} updated, {} validated, {} failed, {} not answered; results in {}",
        took.as_secs_f64(),
        counts.created,
        counts.updated,
        counts.validated,
        counts.failed,
        counts.unanswered,
        path.display()
    );
    if let Some(status) = &ended {
        eprintln!(
            "error: the import ended early: {}; run the same file again to finish it (rows already written are not written twice)",
            describe(status)
        );
    }
    Ok(
        if counts.failed + counts.unanswered > 0 || ended.is_some() {
            EXIT_ROWS_FAILED
        } else {
            EXIT_OK
        },
    )
}

/// What is wrong with a row the CSV reader could not take, in the terms of the file.
fn csv_problem(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!(
            "the row has {len} fields but the header has {expected_len}: quote each field that holds a comma or a line break (\"like, this\")"
        ),
        csv::ErrorKind::Utf8 { .. } => {
            "the row is not valid UTF-8: save the file as UTF-8".to_owned()
        }
        _ => format!("the row cannot be read as CSV: {e}"),
    }
}

fn describe(status: &tonic::Status) -> String {
    match status.get_details_error_info() {
        Some(info) => format!(
            "{} ({:?}: {})",
            info.reason,
            status.code(),
            status.message()
        ),
        None => format!("{:?}: {}", status.code(), status.message()),
    }
}

fn failed(subject_key: String, status: &tonic::Status) -> RowResult {
    let info = status.get_details_error_info();
    RowResult {
        subject_key,
        outcome: "failed",
        reason: info.as_ref().map(|i| i.reason.clone()).unwrap_or_default(),
        error_code: info
            .and_then(|i| i.metadata.get("errorCode").cloned())
            .unwrap_or_default(),
        message: status.message().to_owned(),
    }
}

/// Writes one line per row of the file, in file order.
fn write_results(
    path: &Path,
    results: &mut [Option<RowResult>],
    keys: &HashMap<usize, String>,
    counts: &mut Counts,
    ended: Option<&tonic::Status>,
) -> Result<(), String> {
    let mut out = csv::Writer::from_path(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let fail = |e: csv::Error| format!("cannot write {}: {e}", path.display());
    out.write_record([
        "row",
        "subjectKey",
        "outcome",
        "reason",
        "errorCode",
        "message",
    ])
    .map_err(fail)?;
    for (i, result) in results.iter_mut().enumerate() {
        let result = result.take().unwrap_or_else(|| {
            counts.unanswered += 1;
            RowResult {
                subject_key: keys.get(&i).cloned().unwrap_or_default(),
                outcome: "not_answered",
                reason: ended
                    .and_then(|s| s.get_details_error_info())
                    .map(|info| info.reason)
                    .unwrap_or_default(),
                message: ended.map(|s| s.message().to_owned()).unwrap_or_default(),
                ..Default::default()
            }
        });
        // The key comes from the file and the server: a spreadsheet must not run it.
        out.write_record([
            (i + 1).to_string().as_str(),
            &crate::csv_safe::cell(&result.subject_key),
            result.outcome,
            &result.reason,
            &result.error_code,
            &crate::csv_safe::cell(&result.message),
        ])
        .map_err(fail)?;
    }
    out.flush()
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The largest row sent: under the server's default message limit (64 KiB) with room for the
/// gRPC framing. Every field has a limit far below it, so only a hostile or broken file has
/// such a row.
const MAX_ROW_BYTES: usize = 60 * 1024;

/// How long to wait for the server before giving up on connecting.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_match_openclinica_and_seed_names_in_any_case() {
        let headers = csv::StringRecord::from(vec![
            "\u{feff}ParticipantID",
            "first name",
            "LASTNAME",
            "emailAddress",
            "Mobile_Number",
            "SecondaryID",
            "favourite colour",
        ]);
        let (columns, unknown) = map_headers(&headers);
        assert_eq!(
            columns.iter().map(|(_, c)| *c).collect::<Vec<_>>(),
            vec![
                Column::SubjectKey,
                Column::FirstName,
                Column::LastName,
                Column::EmailAddress,
                Column::PhoneNumber,
                Column::SecondaryId,
            ]
        );
        assert_eq!(unknown, vec!["favourite colour".to_owned()]);
    }

    #[test]
    fn request_ids_fit_the_limit_and_differ_by_row_and_file() {
        let a = Sha256::digest(b"file a");
        let b = Sha256::digest(b"file b");
        let id = row_request_id(&a, 10_000_000);
        assert!(id.len() <= 64, "{id}");
        assert_ne!(row_request_id(&a, 1), row_request_id(&a, 2));
        assert_ne!(row_request_id(&a, 1), row_request_id(&b, 1));
    }
}
