//! A real SMTP server for one test: `scripts/smtp_sink.py` (aiosmtpd, installed by
//! `scripts/services.sh up`) on a port of its own, storing each accepted message as a file the test
//! reads back. Stopping and restarting it on the same port is an SMTP outage.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One received message, as the test needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub message_id: String,
    pub body: String,
}

pub struct SmtpSink {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

fn python() -> String {
    std::env::var("NIMBUS_SMTP_PYTHON").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.local/share/nimbus-services/smtp-venv/bin/python")
    })
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/smtp_sink.py")
}

impl SmtpSink {
    /// Starts a server that accepts everything.
    pub fn start() -> SmtpSink {
        Self::start_with(&[])
    }

    /// Starts a server with `smtp_sink.py`'s options (`--fail-first 2`).
    pub fn start_with(options: &[&str]) -> SmtpSink {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut sink = SmtpSink { port, dir: tempfile::tempdir().unwrap(), child: None };
        sink.spawn(options);
        sink
    }

    fn spawn(&mut self, options: &[&str]) {
        let mut child = Command::new(python())
            .arg(script())
            .arg(self.port.to_string())
            .arg(self.dir.path())
            .args(options)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the tests' SMTP server (aiosmtpd) must be installed: run scripts/services.sh up");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the SMTP server did not start (aiosmtpd missing? scripts/services.sh up)");
        self.child = Some(child);
    }

    /// Stops the server (an outage); mail stored so far stays readable.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // The port may linger for a moment after the kill.
            if std::net::TcpListener::bind(("127.0.0.1", self.port)).is_ok() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.spawn(&[]);
    }

    /// Every message received so far, in arrival order.
    pub fn messages(&self) -> Vec<Mail> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        files.sort();
        files.iter().map(|f| parse(&std::fs::read_to_string(f).unwrap())).collect()
    }

    /// Waits until a message to `to` with `subject` arrived; returns it.
    pub fn wait_for_mail(&self, to: &str, subject: &str, within: Duration) -> Mail {
        let deadline = Instant::now() + within;
        loop {
            if let Some(m) = self.messages().into_iter().find(|m| m.to == to && m.subject == subject) {
                return m;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {subject:?} to {to}: {:?}", self.messages());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The headers the tests read, unfolded, and the body (quoted-printable soft breaks joined).
fn parse(raw: &str) -> Mail {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
    let unfolded = head.replace("\n ", " ").replace("\n\t", " ");
    let header = |name: &str| {
        unfolded
            .lines()
            .find_map(|l| {
                l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_default()
    };
    let body = if header("Content-Transfer-Encoding").eq_ignore_ascii_case("quoted-printable") {
        body.replace("=\n", "").replace("=3D", "=")
    } else {
        body.to_owned()
    };
    Mail { to: header("To"), subject: header("Subject"), message_id: header("Message-ID"), body }
}
