//! The `participants` binary as operators run it: start-up errors, SIGTERM drain, the token
//! command, logs without personal data, and the demo's grpcurl lines.

use std::{
    io::{BufRead, BufReader, Read},
    path::Path,
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use participants::pb::{
    ParticipantContact, SiteScope, UpsertParticipantRequest,
    participant_service_client::ParticipantServiceClient, upsert_participant_request::Scope,
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

#[path = "common/serve.rs"]
mod serve;

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use helpers::Backend;

const BIN: &str = env!("CARGO_BIN_EXE_participants");
const SECRET: &str = "cli-test-secret-cli-test-secret-0123456789";
const DATA_KEY: &str = "Y2xpLXRlc3QtZGF0YS1rZXktMzItYnl0ZXMtbG9uZyE=";
const CATALOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/catalog.toml");

fn participants(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_remove("PARTICIPANTS_DATABASE_URL")
        .env_remove("PARTICIPANTS_CATALOG")
        .env_remove("RUST_BACKTRACE")
        .env("PARTICIPANTS_JWT_HS256_SECRET", SECRET)
        .env("PARTICIPANTS_DATA_KEY", DATA_KEY)
        .env_remove("PARTICIPANTS_DATA_KEY_PREVIOUS")
        // Tests run side by side: the REST route takes a free port, not the default 8080.
        .env("PARTICIPANTS_HTTP_LISTEN", "127.0.0.1:0")
        .env("PARTICIPANTS_ADMIN_LISTEN", "127.0.0.1:0");
    cmd
}

/// Runs a command that must fail at start-up, and returns its stderr.
fn start_up_error(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run participants");
    assert!(!out.status.success(), "it should fail");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "no panic: {stderr}");
    assert!(!stderr.contains("backtrace"), "no backtrace: {stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "one clear line: {stderr}");
    assert_eq!(
        stderr
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("For more information, try"))
            .count(),
        1,
        "nothing but that line (and clap's hint to try --help): {stderr}"
    );
    errors[0].to_owned()
}

#[test]
fn bad_settings_stop_start_up_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let line =
        start_up_error(participants(dir.path()).args(["serve", "--database-url", "mysql://db/x"]));
    assert!(line.contains("mysql"), "{line}");

    let line = start_up_error(
        participants(dir.path())
            .env_remove("PARTICIPANTS_JWT_HS256_SECRET")
            .arg("serve"),
    );
    assert!(line.contains("PARTICIPANTS_JWT_HS256_SECRET"), "{line}");

    let line = start_up_error(
        participants(dir.path())
            .env("PARTICIPANTS_JWT_HS256_SECRET", "short")
            .arg("serve"),
    );
    assert!(line.contains("32 bytes"), "{line}");

    let line = start_up_error(
        participants(dir.path())
            .env_remove("PARTICIPANTS_DATA_KEY")
            .arg("serve"),
    );
    assert!(line.contains("PARTICIPANTS_DATA_KEY"), "{line}");

    let line = start_up_error(
        participants(dir.path())
            .env("PARTICIPANTS_DATA_KEY", "c2hvcnQ=")
            .arg("serve"),
    );
    assert!(
        line.contains("PARTICIPANTS_DATA_KEY") && line.contains("32 bytes"),
        "{line}"
    );

    let line = start_up_error(participants(dir.path()).args([
        "serve",
        "--catalog",
        "/no/such/catalog.toml",
    ]));
    assert!(line.contains("/no/such/catalog.toml"), "{line}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[study]]\noid = \"S_BAD\"\nstatus = \"opened\"\n").unwrap();
    let line = start_up_error(
        participants(dir.path())
            .args(["catalog", "apply"])
            .arg(&bad),
    );
    assert!(line.contains("S_BAD") && line.contains("opened"), "{line}");
    // Nothing was served, and no database was written for a refused catalog.
    assert!(!dir.path().join("participants.db").exists());

    let line =
        start_up_error(participants(dir.path()).args(["serve", "--request-timeout", "soon"]));
    assert!(
        line.contains("soon") || line.contains("request-timeout"),
        "{line}"
    );

    // A value the server could not live with is refused before anything starts (it once
    // overflowed in the gRPC edge, which left the process answering ready and deaf to SIGTERM).
    let line = start_up_error(participants(dir.path()).args([
        "serve",
        "--request-timeout",
        "300000000000years",
    ]));
    assert!(line.contains("request-timeout"), "{line}");
    let line = start_up_error(participants(dir.path()).args(["serve", "--write-batch-max", "0"]));
    assert!(
        line.contains("write-batch-max") && line.contains("between 1 and 10000"),
        "{line}"
    );
}

#[test]
fn migrate_and_catalog_apply_are_repeatable() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = participants(dir.path()).arg("migrate").output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let first = participants(dir.path())
        .args(["catalog", "apply", CATALOG])
        .output()
        .unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("6 studies"));
    let second = participants(dir.path())
        .args(["catalog", "apply", CATALOG])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&second.stdout).trim(),
        "catalog applied: 0 studies, 0 sites written, 0 sites removed, 0 roles written, 0 roles revoked"
    );
}

/// A server process with its stderr collected.
struct Server(serve::Running);

impl std::ops::Deref for Server {
    type Target = serve::Running;
    fn deref(&self) -> &serve::Running {
        &self.0
    }
}

impl Server {
    fn start(dir: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut cmd = participants(dir);
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--catalog",
            CATALOG,
        ])
        .args(extra);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let (child, log) = serve::spawn(&mut cmd);
        Self(serve::wait_until_listening(
            child,
            log,
            Duration::from_secs(30),
        ))
    }

    fn token(&self, user: &str) -> String {
        let out = Command::new(BIN)
            .args(["token", "--user", user, "--ttl", "10m"])
            .env("PARTICIPANTS_JWT_HS256_SECRET", SECRET)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.0.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop in {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        self.0.log.try_iter().collect::<Vec<_>>().join("\n")
    }
}

/// The database of a server test: SQLite in the test's folder, or a fresh PostgreSQL database.
async fn database(backend: Backend, dir: &Path) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}/cli.db?mode=rwc", dir.display()),
        Backend::Postgres => helpers::fresh_database(backend).await.url,
    }
}

async fn sigterm_turns_health_not_serving_and_exits_zero(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = database(backend, dir.path()).await;
    let mut server = Server::start(
        dir.path(),
        &["--grace-period", "2s", "--database-url", &db],
        &[],
    );
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);

    server.terminate();
    let next = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("a status change")
        .expect("stream")
        .expect("a message");
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    let status = tokio::task::spawn_blocking(move || server.wait(Duration::from_secs(15)))
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
}

async fn logs_hold_no_personal_data_or_tokens(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = database(backend, dir.path()).await;
    let server = Server::start(
        dir.path(),
        &["--database-url", &db],
        &[("PARTICIPANTS_LOG", "debug")],
    );
    let token = server.token("crc.ohio");
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ParticipantServiceClient::new(channel);
    let personal = [
        "Zebulon",
        "Quintavious",
        "zq.secret@example.org",
        "+44 7700900123",
        "221B Baker Street",
        "1961-07-04",
        "HN-99173",
    ];
    let contact = ParticipantContact {
        first_name: Some(personal[0].into()),
        last_name: Some(personal[1].into()),
        email_address: Some(personal[2].into()),
        phone_number: Some(personal[3].into()),
        street_address1: Some(personal[4].into()),
        full_dob: Some(personal[5].into()),
        hospital_number: Some(personal[6].into()),
        ..Default::default()
    };
    let scope = Some(Scope::Site(SiteScope {
        study_oid: "S_JUNO(PROD)".into(),
        site_oid: "S_OHI0(TEST)".into(),
    }));
    let call = |req: UpsertParticipantRequest| {
        let mut r = tonic::Request::new(req);
        r.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        r
    };
    let ok = UpsertParticipantRequest {
        scope: scope.clone(),
        subject_key: "LOG-1".into(),
        contact: Some(contact.clone()),
        register: true,
        ..Default::default()
    };
    let created = client
        .upsert_participant(call(ok))
        .await
        .expect("create")
        .into_inner();
    let access_code = created.access_code.clone();
    // A refused call whose every field is wrong in a way that keeps the value in view.
    let mut bad_contact = contact.clone();
    bad_contact.email_address = Some(format!("{}@", personal[2]));
    bad_contact.full_dob = Some("1961-02-30".into());
    let bad = UpsertParticipantRequest {
        scope,
        subject_key: "LOG-2".into(),
        contact: Some(bad_contact),
        ..Default::default()
    };
    let status = client.upsert_participant(call(bad)).await.unwrap_err();
    let mut bad_token = tonic::Request::new(UpsertParticipantRequest::default());
    bad_token.metadata_mut().insert(
        "authorization",
        "Bearer forged.token.value".parse().unwrap(),
    );
    client.upsert_participant(bad_token).await.unwrap_err();

    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = server.log();
    assert!(log.contains("upsert done"), "the log is captured: {log}");
    for secret in
        personal
            .iter()
            .copied()
            .chain([access_code.as_str(), token.as_str(), "forged.token.value"])
    {
        assert!(!log.contains(secret), "the log holds {secret:?}");
        assert!(
            !status.message().contains(secret),
            "the error holds {secret:?}"
        );
    }
    let details = format!("{:?}", status.details());
    for secret in personal {
        assert!(
            !details.contains(secret),
            "the error details hold {secret:?}"
        );
    }
}

#[test]
#[ignore = "needs grpcurl and curl on PATH (.ci/run installs them)"]
fn the_demo_prints_grpcurl_and_curl_lines_that_work() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = participants(dir.path())
        .env_remove("PARTICIPANTS_JWT_HS256_SECRET")
        .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The grpcurl lines, and the curl commands (continued over lines ending in `\`).
    let mut lines = Vec::new();
    let mut curls: Vec<String> = Vec::new();
    let mut continued = false;
    while lines.len() < 5 || curls.len() < 2 || continued {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("demo lines");
        if continued {
            if let Some(last) = curls.last_mut() {
                last.push_str(line.trim_end_matches('\\'));
            }
        } else if line.starts_with("grpcurl ") {
            lines.push(line.clone());
        } else if line.starts_with("curl ") {
            curls.push(line.trim_end_matches('\\').to_owned());
        } else {
            continue;
        }
        continued = line.ends_with('\\');
    }
    let run = |line: &str| {
        let out = Command::new("sh").arg("-c").arg(line).output().expect("sh");
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        out.stderr.as_slice().read_to_string(&mut text).ok();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    };
    // The original's sample call first, as printed: it creates OHIO-5 and registers it.
    let (ok, out) = run(&format!("{} -sS", curls[0]));
    assert!(
        ok && out.contains("\"subjectOid\":\"SS_OHIO5\"")
            && out.contains("\"participateStatus\":\"Created\"")
            && out.contains("\"accessCode\""),
        "{out}"
    );
    let (ok, out) = run(&format!("{} -sS", curls[1]));
    assert!(
        ok && out.contains("\"subjectKey\":\"OHIO-5\"") && out.contains("\"lastName\":\"ОНІО\""),
        "{out}"
    );
    let (ok, out) = run(&lines[0]);
    assert!(
        ok && out.contains("openclinica.participants.v1.ParticipantService"),
        "{out}"
    );
    let (ok, out) = run(&lines[1]);
    assert!(ok && out.contains("rpc UpsertParticipant"), "{out}");
    let (ok, out) = run(&lines[2]);
    assert!(ok && out.contains("SERVING"), "{out}");
    let (ok, out) = run(&lines[3]);
    assert!(
        ok && out.contains("\"subjectOid\": \"SS_OHIO5\"") && out.contains("\"accessCode\""),
        "{out}"
    );
    let (ok, out) = run(&lines[4]);
    assert!(
        ok && out.contains("\"subjectKey\": \"OHIO-5\"") && !out.contains("lastName"),
        "{out}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn logs_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    // A port already taken: the server logs its start-up lines, then stops at the bind.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let db = format!("sqlite://{}/colour.db?mode=rwc", dir.path().display());
    let out = participants(dir.path())
        .env_remove("NO_COLOR")
        .env_remove("PARTICIPANTS_LOG")
        .args(["serve", "--listen", &addr, "--log-format", "text"])
        .args(["--database-url", &db])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("personal data is encrypted at rest"),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "colour codes in {stderr:?}");
}

#[tokio::test]
async fn the_demo_prints_export_lines_and_a_token_command_that_work() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = participants(dir.path())
        .env_remove("PARTICIPANTS_JWT_HS256_SECRET")
        .args(["serve", "--demo", "--listen", "0.0.0.0:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut addr, mut token, mut command) = (None, None, None);
    while command.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("demo lines");
        if let Some(v) = line.strip_prefix("export PARTICIPANTS_ADDR=") {
            addr = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("export PARTICIPANTS_TOKEN=") {
            token = Some(v.to_owned());
        } else if line.starts_with("PARTICIPANTS_JWT_HS256_SECRET=") {
            command = Some(line);
        }
    }
    let (addr, token, command) = (addr.unwrap(), token.unwrap(), command.unwrap());
    // A wildcard listen address is printed as loopback, so the line works as pasted.
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    assert!(
        command.contains(BIN) && command.ends_with(" token --user dm.juno"),
        "{command}"
    );

    // The token command works as pasted, with nothing else in the environment.
    let out = Command::new("sh")
        .arg("-c")
        .arg(&command)
        .env_remove("PARTICIPANTS_JWT_HS256_SECRET")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dm_token = String::from_utf8(out.stdout).unwrap().trim().to_owned();

    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ParticipantServiceClient::new(channel);
    for token in [&token, &dm_token] {
        let mut request = tonic::Request::new(participants::pb::GetParticipantRequest {
            scope: Some(participants::pb::get_participant_request::Scope::Site(
                SiteScope {
                    study_oid: "S_JUNO(PROD)".into(),
                    site_oid: "S_OHI0(TEST)".into(),
                },
            )),
            subject_key: "NOBODY-1".into(),
        });
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let status = client.get_participant(request).await.unwrap_err();
        // Authenticated and allowed: the participant is simply not there.
        assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    }
    let _ = child.kill();
    let _ = child.wait();
}

on_both_backends!(
    sigterm_turns_health_not_serving_and_exits_zero,
    logs_hold_no_personal_data_or_tokens,
    audit_verify_and_export_from_the_command_line,
);

/// `audit verify` exits 0 on an intact trail and 1 naming the edited event; `audit export`
/// writes the trail as JSON lines and CSV with contact values opened.
async fn audit_verify_and_export_from_the_command_line(backend: Backend) {
    use sea_orm::ConnectionTrait;

    let dir = tempfile::tempdir().unwrap();
    let db = database(backend, dir.path()).await;
    let mut server = Server::start(dir.path(), &["--database-url", &db], &[]);
    let token = server.token("crc.ohio");
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ParticipantServiceClient::new(channel);
    for (key, name) in [("AUD-1", "Zebulon"), ("AUD-2", "O'Hara, \"Q\"")] {
        let mut request = tonic::Request::new(UpsertParticipantRequest {
            scope: Some(Scope::Site(SiteScope {
                study_oid: "S_JUNO(PROD)".into(),
                site_oid: "S_OHI0(TEST)".into(),
            })),
            subject_key: key.into(),
            contact: Some(ParticipantContact {
                last_name: Some(name.into()),
                ..Default::default()
            }),
            ..Default::default()
        });
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        client.upsert_participant(request).await.unwrap();
    }
    server.terminate();
    tokio::task::spawn_blocking(move || server.wait(Duration::from_secs(15)))
        .await
        .unwrap();

    let run = |args: &[&str]| {
        participants(dir.path())
            .args(args)
            .args(["--database-url", &db])
            .output()
            .unwrap()
    };
    let ok = run(&["audit", "verify"]);
    let stdout = String::from_utf8_lossy(&ok.stdout).into_owned();
    assert!(
        ok.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        stdout.contains("study S_JUNO(PROD): intact, 4 events"),
        "{stdout}"
    );

    let jsonl = run(&["audit", "export", "--study", "S_JUNO(PROD)"]);
    assert!(
        jsonl.status.success(),
        "{}",
        String::from_utf8_lossy(&jsonl.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&jsonl.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["type"], "PARTICIPANT_CREATED");
    assert_eq!(lines[0]["subject_key"], "AUD-1");
    assert_eq!(lines[0]["site_oid"], "S_OHI0(TEST)");
    assert_eq!(lines[1]["field"], "last_name");
    assert_eq!(lines[1]["new_value"], "Zebulon", "opened for the inspector");
    assert_eq!(lines[3]["chain_position"], 4);
    assert_eq!(lines[3]["hash"].as_str().unwrap().len(), 64);

    let csv = run(&[
        "audit",
        "export",
        "--study",
        "S_JUNO(PROD)",
        "--format",
        "csv",
    ]);
    assert!(csv.status.success());
    let csv = String::from_utf8_lossy(&csv.stdout).into_owned();
    assert!(
        csv.starts_with("event_id,study_oid,site_oid,subject_key,type,"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(csv.contains(",\"O'Hara, \"\"Q\"\"\","), "quoted: {csv}");

    // Someone with database rights lifts the guard and edits the second event.
    let conn = sea_orm::Database::connect(&db).await.unwrap();
    let guard = match backend {
        Backend::Sqlite => "DROP TRIGGER audit_events_no_update",
        Backend::Postgres => "DROP TRIGGER audit_events_append_only ON audit_events",
    };
    conn.execute_unprepared(guard).await.unwrap();
    let second = conn
        .query_one_raw(sea_orm::Statement::from_string(
            conn.get_database_backend(),
            "SELECT id FROM audit_events ORDER BY id LIMIT 1 OFFSET 1".to_owned(),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap();
    conn.execute_unprepared(&format!(
        "UPDATE audit_events SET actor = 'dm.juno' WHERE id = {second}"
    ))
    .await
    .unwrap();
    conn.close().await.unwrap();
    let broken = run(&["audit", "verify", "--study", "S_JUNO(PROD)"]);
    let stdout = String::from_utf8_lossy(&broken.stdout).into_owned();
    assert_eq!(broken.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "study S_JUNO(PROD): BROKEN at event {second}: edited"
        )),
        "{stdout}"
    );

    let unknown = run(&["audit", "verify", "--study", "S_NOPE"]);
    assert_eq!(
        unknown.status.code(),
        Some(2),
        "the check could not be made"
    );
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("S_NOPE"));
}

/// Runs `participants import` against `server` as `user` with `args`; exit code, stdout, stderr.
fn run_import(
    dir: &Path,
    server: &Server,
    user: &str,
    args: &[&str],
) -> (Option<i32>, String, String) {
    let out = participants(dir)
        .args(["import", "--target", &server.addr])
        .args(args)
        .env("PARTICIPANTS_TOKEN", server.token(user))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Counts rows with `sql` in the server's database.
async fn count(db: &str, sql: &str) -> i64 {
    use sea_orm::ConnectionTrait;
    let conn = sea_orm::Database::connect(db).await.unwrap();
    let n = conn
        .query_one_raw(sea_orm::Statement::from_string(
            conn.get_database_backend(),
            sql.to_owned(),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap();
    conn.close().await.unwrap();
    n
}

/// A CSV as spreadsheets write it: a byte order mark, OpenClinica's bulk header names in mixed
/// case, quoted fields holding commas, quotes and a line break, and rows the service refuses.
const IMPORT_CSV: &str = "\u{feff}ParticipantID,firstname,LastName,EmailAddress,MobileNumber,SecondaryID,Street Address 1,Reason For Change\r\n\
IMP-1,Ada,\"O'Hara, \"\"Jr\"\"\",ada@example.org,+44 2071234567,SEC-1,\"1 Main St, Flat 2\",\"registry extract\nof 2026\"\r\n\
IMP-2,Bob,Smith,not-an-email,,,,\r\n\
IMP-1,,Lovelace,,,,,\r\n\
,Nobody,,,,,,\r\n\
TX-9,Zed,Brown,zed@example.org,+1 5551234,,,\r\n";

async fn import_a_csv_file_and_run_it_again(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = database(backend, dir.path()).await;
    let server = Server::start(dir.path(), &["--database-url", &db], &[]);
    let file = dir.path().join("people.csv");
    std::fs::write(&file, IMPORT_CSV).unwrap();
    let file_arg = file.to_str().unwrap();
    let args = [
        "--file",
        file_arg,
        "--study",
        "S_JUNO(PROD)",
        "--site",
        "S_OHI0(TEST)",
    ];

    // Without a token nothing runs.
    let out = participants(dir.path())
        .args(["import", "--target", &server.addr])
        .args(args)
        .env_remove("PARTICIPANTS_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("token"));
    // With a token the server refuses, the refusal says what to do.
    let out = participants(dir.path())
        .args(["import", "--target", &server.addr])
        .args(args)
        .env("PARTICIPANTS_TOKEN", "not-a-token")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("UNAUTHENTICATED") && stderr.contains("participants token --user"),
        "{stderr}"
    );

    // A dry run writes nothing and has no results to fail... but two rows are invalid.
    let (code, stdout, _) = run_import(dir.path(), &server, "crc.ohio", &{
        let mut a = args.to_vec();
        a.push("--dry-run");
        a
    });
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("3 validated, 2 failed"), "{stdout}");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM participants").await, 0);

    let (code, stdout, stderr) = run_import(dir.path(), &server, "crc.ohio", &args);
    assert_eq!(code, Some(1), "a row failed: {stdout} {stderr}");
    assert!(
        stdout.contains("5 rows in")
            && stdout.contains("2 created, 1 updated, 0 validated, 2 failed, 0 not answered"),
        "{stdout}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let results = std::fs::read_to_string(dir.path().join("people.csv.results.csv")).unwrap();
    let lines: Vec<&str> = results.lines().collect();
    assert_eq!(
        lines[0], "row,subjectKey,outcome,reason,errorCode,message",
        "{results}"
    );
    assert_eq!(lines.len(), 6, "one line per row: {results}");
    assert!(lines[1].starts_with("1,IMP-1,created,,,"), "{results}");
    assert!(
        lines[2].starts_with("2,IMP-2,failed,INVALID_EMAIL_ADDRESS,errorCode.invalidEmailAddress,"),
        "{results}"
    );
    assert!(lines[3].starts_with("3,IMP-1,updated,,,"), "{results}");
    assert!(
        lines[4].starts_with(
            "4,,failed,MISSING_PARTICIPANT_ID_DATA,errorCode.missingParticipantIdData,"
        ),
        "{results}"
    );
    assert!(lines[5].starts_with("5,TX-9,created,,,"), "{results}");
    assert!(
        !results.contains("Ada") && !results.contains("not-an-email") && !results.contains("ada@"),
        "no personal data: {results}"
    );

    // The quoted fields arrived whole: the line break is kept in the audit trail's reason.
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM change_reasons WHERE reason LIKE 'registry extract%of 2026'"
        )
        .await,
        1
    );
    let stored = count(&db, "SELECT COUNT(*) FROM participants").await;
    assert_eq!(stored, 2);
    let audit = count(&db, "SELECT COUNT(*) FROM audit_events").await;

    // The same file again: every answer is a replay, nothing is written.
    let (code, stdout, _) = run_import(dir.path(), &server, "crc.ohio", &args);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("2 created, 1 updated, 0 validated, 2 failed"),
        "the same answers: {stdout}"
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM participants").await,
        stored
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM audit_events").await, audit);
    let again = std::fs::read_to_string(dir.path().join("people.csv.results.csv")).unwrap();
    assert_eq!(again, results);

    // A file with only good rows exits 0, results where asked.
    let good = dir.path().join("good.csv");
    std::fs::write(&good, "subjectKey,phoneNumber\nIMP-3,+1 5550000\n").unwrap();
    let out_path = dir.path().join("out.csv");
    let (code, stdout, _) = run_import(
        dir.path(),
        &server,
        "crc.ohio",
        &[
            "--file",
            good.to_str().unwrap(),
            "--study",
            "S_JUNO(PROD)",
            "--site",
            "S_OHI0(TEST)",
            "--results",
            out_path.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        std::fs::read_to_string(&out_path)
            .unwrap()
            .contains("1,IMP-3,created")
    );
}

/// A server killed (SIGKILL) in the middle of an import, restarted, and the file run again:
/// every row is written exactly once.
async fn an_import_cut_by_a_killed_server_completes_on_a_rerun(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = database(backend, dir.path()).await;
    let rows: i64 = 3000;
    let mut csv = String::from("ParticipantID,LastName,City\n");
    for i in 0..rows {
        csv.push_str(&format!("K-{i:05},Name{i},City{i}\n"));
    }
    let file = dir.path().join("big.csv");
    std::fs::write(&file, csv).unwrap();
    let args = |addr: &str| {
        vec![
            "import".to_owned(),
            "--target".into(),
            addr.to_owned(),
            "--file".into(),
            file.to_str().unwrap().to_owned(),
            "--study".into(),
            "S_JUNO(PROD)".into(),
            "--site".into(),
            "S_OHI0(TEST)".into(),
        ]
    };

    let mut server = Server::start(dir.path(), &["--database-url", &db], &[]);
    let import = participants(dir.path())
        .args(args(&server.addr))
        .env("PARTICIPANTS_TOKEN", server.token("crc.ohio"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let n = count(&db, "SELECT COUNT(*) FROM participants").await;
        if n >= 300 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the import ran"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.0.child.kill().unwrap();
    server.0.child.wait().unwrap();
    let cut = import.wait_with_output().unwrap();
    assert_eq!(
        cut.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&cut.stderr)
    );
    let written = count(&db, "SELECT COUNT(*) FROM participants").await;
    assert!(written < rows, "killed before the end ({written})");

    let server = Server::start(dir.path(), &["--database-url", &db], &[]);
    let out = participants(dir.path())
        .args(args(&server.addr))
        .env("PARTICIPANTS_TOKEN", server.token("crc.ohio"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM participants").await, rows);
    assert_eq!(
        count(&db, "SELECT COUNT(DISTINCT subject_key) FROM participants").await,
        rows
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM audit_events WHERE event_type = 'PARTICIPANT_CREATED'"
        )
        .await,
        rows,
        "one creation event per row"
    );
    println!("{written} rows written before the kill; {stdout}");
}

/// A row with more or fewer cells than the header is refused, not stored with its values
/// shifted into other fields; a semicolon-separated file is named as such. The server is found
/// through `PARTICIPANTS_ADDR`, as the demo's `export` line sets it.
#[test]
fn a_ragged_row_is_refused_not_shifted() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/ragged.db?mode=rwc", dir.path().display());
    let server = Server::start(dir.path(), &["--database-url", &db], &[]);
    let file = dir.path().join("ragged.csv");
    std::fs::write(
        &file,
        format!(
            "ParticipantID,LastName,FirstName,City\nSHIFT-1,Smith, Jr.,Ada,Boston\nSHORT-1,Smith\nOK-1,Smith,Ada,Boston\nHUGE-1,Smith,Ada,{}\nOK-2,Smith,Ada,Boston\n",
            "B".repeat(70_000)
        ),
    )
    .unwrap();
    let out = participants(dir.path())
        .args(["import", "--file", file.to_str().unwrap()])
        .args(["--study", "S_JUNO(PROD)", "--site", "S_OHI0(TEST)"])
        .env("PARTICIPANTS_ADDR", &server.addr)
        .env("PARTICIPANTS_TOKEN", server.token("crc.ohio"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("2 created"), "{stdout}");
    let results = std::fs::read_to_string(dir.path().join("ragged.csv.results.csv")).unwrap();
    let lines: Vec<&str> = results.lines().collect();
    assert!(lines[1].starts_with("1,,failed,CSV_ERROR,"), "{results}");
    // The message says what is wrong in the file's terms, and how to fix it.
    assert!(
        lines[1].contains("the row has 5 fields but the header has 4: quote each field"),
        "{results}"
    );
    assert!(lines[2].starts_with("2,,failed,CSV_ERROR,"), "{results}");
    assert!(lines[3].starts_with("3,OK-1,created,"), "{results}");
    // A row too large for the server is refused here: it would end the whole stream.
    assert!(lines[4].starts_with("4,,failed,CSV_ERROR,"), "{results}");
    assert!(lines[5].starts_with("5,OK-2,created,"), "{results}");
    assert!(
        !results.contains("Smith") && !results.contains("Boston"),
        "{results}"
    );

    let semi = dir.path().join("semi.csv");
    std::fs::write(&semi, "ParticipantID;LastName\nS-1;Smith\n").unwrap();
    let out = participants(dir.path())
        .args(["import", "--file", semi.to_str().unwrap()])
        .args(["--study", "S_JUNO(PROD)", "--site", "S_OHI0(TEST)"])
        .env("PARTICIPANTS_ADDR", &server.addr)
        .env("PARTICIPANTS_TOKEN", server.token("crc.ohio"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("comma-separated"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

mod import_backends {
    use super::*;
    on_both_backends!(
        import_a_csv_file_and_run_it_again,
        an_import_cut_by_a_killed_server_completes_on_a_rerun,
    );
}

/// `audit verify` and `audit export` read an existing database: a SQLite URL naming no file is
/// refused with exit 2 (1 means a broken chain), and no empty database is made on the spot.
#[test]
fn audit_commands_do_not_make_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = participants(dir.path())
        .args(["audit", "verify"])
        .env_remove("PARTICIPANTS_DATABASE_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no database at"), "{stderr}");
    let made: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(made.is_empty(), "nothing is created: {made:?}");
}
