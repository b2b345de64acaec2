//! Shared by the tests that run the `participants` binary: spawn `serve`, collect its log, and
//! learn the address it listens on.
#![allow(dead_code)] // each test binary uses its own part
use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc::{self, Receiver},
    time::{Duration, Instant},
};

/// A `participants serve` process, killed when dropped.
pub struct Running {
    pub child: Child,
    pub addr: String,
    /// The admin endpoint's address, once `admin` has read it from the log.
    admin: std::sync::OnceLock<String>,
    /// The process's stderr (its log), line by line.
    pub log: Receiver<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `cmd` (a configured `participants serve --listen 127.0.0.1:0 --log-format json …`)
/// with its stderr collected, without waiting for it.
pub fn spawn(cmd: &mut Command) -> (Child, Receiver<String>) {
    let mut child = cmd
        // Servers run side by side: the REST route takes a free port, not the default 8080.
        .env("PARTICIPANTS_HTTP_LISTEN", "127.0.0.1:0")
        .env("PARTICIPANTS_ADMIN_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn participants serve");
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Waits for the `listening on ADDR` log line of a spawned server.
pub fn wait_until_listening(child: Child, log: Receiver<String>, limit: Duration) -> Running {
    let deadline = Instant::now() + limit;
    let addr = loop {
        let line = log
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the server says where it listens");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split('"').next().unwrap_or_default().to_owned();
        }
        assert!(!line.contains("\"ERROR\""), "the server failed: {line}");
    };
    Running {
        child,
        addr,
        admin: std::sync::OnceLock::new(),
        log,
    }
}

impl Running {
    /// The admin endpoint's address (`spawn` turns it on, on a free port), from the log line
    /// that follows `listening on` (JSON log format). The log lines before it are consumed.
    pub fn admin(&self) -> &str {
        self.admin.get_or_init(|| {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let line = self
                    .log
                    .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                    .expect("the server says where its admin endpoint is");
                if line.contains("serving the admin endpoint")
                    && let Some(rest) = line.split("\"addr\":\"").nth(1)
                {
                    break rest.split('"').next().unwrap_or_default().to_owned();
                }
            }
        })
    }
}
