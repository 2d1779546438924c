//! The development reader: card taps from a socket or a script instead of an antenna, so the whole
//! node runs (and is tested end to end) on any Linux box.
//!
//! # Socket protocol ([`SimulatedReader::listen`], [`SimulatedReader::listen_unix`])
//!
//! A client sends one card UID per line, as hex (`04A1B2C3`, `04:a1:b2:c3`). For each line the
//! node gets a [`TapRequest`] and the client gets one line back once the node has decided:
//! `accepted`, `duplicate`, `unknown_card` or `error` (the snake_case [`Feedback`] name; `error`
//! also when the node dropped the tap without answering). A line that is not a UID is answered
//! `invalid <reason>` and creates no tap; blank lines are ignored. Lines (terminator included) are
//! at most [`MAX_LINE_BYTES`]; a longer one is answered `invalid ...` and the connection closed.
//!
//! Each client is served one line at a time, so its answers come in the order of its lines (a
//! client may pipeline; unread lines wait in the socket buffer). Clients are independent of each
//! other. Reads are **not** debounced: a test that sends a UID twice gets two taps.
//!
//! # Scripts ([`SimulatedReader::script`])
//!
//! A text file of `<delay_ms> <uid>` lines (`#` starts a comment): wait, then tap. Used by
//! `--simulate` demos. The script is also not debounced, because its lines are meant as deliberate
//! taps (a demo of a `duplicate` verdict taps the same card twice in quick succession). The whole
//! script is checked before the first tap, so a typo fails fast with its line number.

use std::borrow::Cow;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nimbus_core::ids::CardUid;
use nimbus_core::reader::{CardRead, Feedback, ReaderKind};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{CardReader, ReaderError, ReaderTask, TapRequest, submit_tap};

/// Longest accepted protocol line in bytes, terminator included. A UID is at most 20 hex digits
/// (29 characters with `:` separators), so this is generous while bounding what one client can
/// make the node buffer.
pub const MAX_LINE_BYTES: usize = 128;

/// Most clients served at once; further connections are closed straight away, so a runaway test
/// harness cannot exhaust file descriptors or tasks.
pub const MAX_CLIENTS: usize = 32;

/// Largest script file accepted (a script is a hand-written demo, not a data set).
pub const MAX_SCRIPT_BYTES: u64 = 1024 * 1024;

/// How long to wait after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// After refusing an oversized line: how long and how much of the client's remaining input to
/// discard, so that closing does not reset the connection before the client reads the refusal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
const DRAIN_MAX_BYTES: u64 = 64 * 1024;

/// A reader fed from a TCP socket, a Unix socket or a script; see the [module docs](self).
#[derive(Debug)]
pub struct SimulatedReader {
    source: Source,
}

#[derive(Debug)]
enum Source {
    Tcp(TcpListener),
    Unix { listener: UnixListener, path: PathBuf },
    Script(PathBuf),
}

impl SimulatedReader {
    /// Serves the line protocol on an already bound TCP listener (tests bind `127.0.0.1:0` and
    /// read the port back before handing the listener over).
    pub fn listen(listener: TcpListener) -> Self {
        SimulatedReader { source: Source::Tcp(listener) }
    }

    /// Serves the line protocol on a Unix socket bound at `path` (must be called inside a Tokio
    /// runtime). A stale socket file left by a crashed node is replaced; a live one is an
    /// `AddrInUse` error. The file is removed when the reader stops.
    pub fn listen_unix(path: impl Into<PathBuf>) -> io::Result<Self> {
        let path = path.into();
        remove_stale_socket(&path)?;
        let listener = UnixListener::bind(&path)?;
        Ok(SimulatedReader { source: Source::Unix { listener, path } })
    }

    /// Plays the script at `path` (see the [module docs](self)); the file is read and checked when
    /// the reader starts running.
    pub fn script(path: impl Into<PathBuf>) -> Self {
        SimulatedReader { source: Source::Script(path.into()) }
    }
}

impl CardReader for SimulatedReader {
    fn kind(&self) -> ReaderKind {
        ReaderKind::Simulated
    }

    fn run(self: Box<Self>, taps: mpsc::Sender<TapRequest>, shutdown: CancellationToken) -> ReaderTask {
        match self.source {
            Source::Tcp(listener) => Box::pin(serve(Listener::Tcp(listener), taps, shutdown)),
            Source::Unix { listener, path } => Box::pin(async move {
                let result = serve(Listener::Unix(listener), taps, shutdown).await;
                if let Err(e) = std::fs::remove_file(&path) {
                    debug!(path = %path.display(), error = %e, "could not remove the reader socket");
                }
                result
            }),
            Source::Script(path) => Box::pin(run_script(path, taps, shutdown)),
        }
    }
}

/// The protocol's name for a verdict: the same snake_case word serde uses for [`Feedback`].
pub const fn feedback_name(feedback: Feedback) -> &'static str {
    match feedback {
        Feedback::Accepted => "accepted",
        Feedback::Duplicate => "duplicate",
        Feedback::UnknownCard => "unknown_card",
        Feedback::Error => "error",
    }
}

/// Removes `path` only if it is a socket nobody is listening on.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;

    let Ok(meta) = std::fs::symlink_metadata(path) else { return Ok(()) };
    if !meta.file_type().is_socket() {
        return Ok(()); // not ours to delete; bind reports the conflict
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path),
        _ => Ok(()),
    }
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// Accepts clients until shutdown (or until the node stops taking taps), then closes every client
/// and returns once they are gone.
async fn serve(
    listener: Listener,
    taps: mpsc::Sender<TapRequest>,
    shutdown: CancellationToken,
) -> Result<(), ReaderError> {
    // Clients stop on shutdown and also when this loop ends for another reason.
    let stop_clients = shutdown.child_token();
    let mut clients = JoinSet::new();
    let result = loop {
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => break Ok(()),
            () = taps.closed() => break Err(ReaderError::Closed),
            Some(done) = clients.join_next(), if !clients.is_empty() => {
                if let Err(e) = done {
                    warn!(error = %e, "simulated reader client task failed");
                }
                continue;
            }
            accepted = accept(&listener) => accepted,
        };
        match accepted {
            Ok(_) if clients.len() >= MAX_CLIENTS => {
                warn!(limit = MAX_CLIENTS, "simulated reader: too many clients, closing a new connection");
            }
            Ok((Conn::Tcp(stream), peer)) => {
                clients.spawn(serve_client(stream, peer, taps.clone(), stop_clients.clone()));
            }
            Ok((Conn::Unix(stream), peer)) => {
                clients.spawn(serve_client(stream, peer, taps.clone(), stop_clients.clone()));
            }
            Err(e) => {
                warn!(error = %e, "simulated reader: accept failed");
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
            }
        }
    };
    drop(listener); // refuse new connections while the clients wind down
    stop_clients.cancel();
    while let Some(done) = clients.join_next().await {
        if let Err(e) = done {
            warn!(error = %e, "simulated reader client task failed");
        }
    }
    result
}

enum Conn {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> io::Result<(Conn, String)> {
    match listener {
        Listener::Tcp(l) => l.accept().await.map(|(s, peer)| (Conn::Tcp(s), peer.to_string())),
        Listener::Unix(l) => l.accept().await.map(|(s, _)| (Conn::Unix(s), "unix socket".to_owned())),
    }
}

async fn serve_client<S>(stream: S, peer: String, taps: mpsc::Sender<TapRequest>, stop: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    debug!(%peer, "simulated reader client connected");
    tokio::select! {
        () = stop.cancelled() => debug!(%peer, "closing simulated reader client on shutdown"),
        result = client_session(stream, &taps) => match result {
            Ok(()) => debug!(%peer, "simulated reader client disconnected"),
            Err(e) => debug!(%peer, error = %e, "simulated reader client connection failed"),
        },
    }
}

/// One client, one line at a time: parse, tap, answer.
async fn client_session<S>(stream: S, taps: &mpsc::Sender<TapRequest>) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // BufReader passes writes straight through to the stream.
    let mut stream = BufReader::with_capacity(MAX_LINE_BYTES, stream);
    let mut line = Vec::with_capacity(MAX_LINE_BYTES);
    loop {
        line.clear();
        let n = (&mut stream).take(MAX_LINE_BYTES as u64).read_until(b'\n', &mut line).await?;
        if n == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') && line.len() >= MAX_LINE_BYTES {
            let refusal = format!("invalid line longer than {MAX_LINE_BYTES} bytes\n");
            stream.write_all(refusal.as_bytes()).await?;
            stream.shutdown().await?;
            // Closing with unread input makes the kernel reset the connection, which can destroy
            // the refusal before the client reads it; swallow (a bounded amount of) the rest.
            let mut rest = (&mut stream).take(DRAIN_MAX_BYTES);
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, tokio::io::copy(&mut rest, &mut tokio::io::sink())).await;
            return Ok(());
        }
        let answer: Cow<'static, str> = match parse_line(&line) {
            Ok(None) => continue,
            Ok(Some(uid)) => match submit_tap(taps, CardRead { uid, reader: ReaderKind::Simulated }).await {
                Ok(feedback) => feedback_name(feedback).into(),
                Err(_) => {
                    // The node is shutting down: tell this client, then hang up.
                    stream.write_all(b"error\n").await?;
                    return Ok(());
                }
            },
            Err(reason) => format!("invalid {reason}").into(),
        };
        let mut out = String::with_capacity(answer.len() + 1);
        out.push_str(&answer);
        out.push('\n');
        stream.write_all(out.as_bytes()).await?;
    }
}

/// A UID, `None` for a blank line, or why the line is not a UID.
fn parse_line(line: &[u8]) -> Result<Option<CardUid>, String> {
    let text = std::str::from_utf8(line).map_err(|_| "line is not UTF-8 text".to_owned())?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|e: nimbus_core::ids::IdError| e.to_string())
}

/// One script line: wait `delay`, then tap `uid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptStep {
    /// Time to wait after the previous tap (or the start).
    pub delay: Duration,
    /// The card to tap.
    pub uid: CardUid,
}

/// A script line that could not be understood, with its 1-based line number so the author can
/// find it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ScriptError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// Parses a whole script (see the [module docs](self)); public so a node can validate a script at
/// startup, before it opens any socket.
pub fn parse_script(text: &[u8]) -> Result<Vec<ScriptStep>, ScriptError> {
    let mut steps = Vec::new();
    for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let err = |reason: String| ScriptError { line, reason };
        let raw = std::str::from_utf8(raw).map_err(|_| err("not UTF-8 text".to_owned()))?;
        let content = raw.split_once('#').map_or(raw, |(before, _)| before);
        let mut fields = content.split_whitespace();
        let (Some(delay), Some(uid), None) = (fields.next(), fields.next(), fields.next()) else {
            if content.trim().is_empty() {
                continue;
            }
            return Err(err(format!("expected `<delay_ms> <uid>`, got {:?}", content.trim())));
        };
        let delay_ms: u32 =
            delay.parse().map_err(|_| err(format!("delay must be a whole number of milliseconds, got {delay:?}")))?;
        let uid = uid.parse().map_err(|e: nimbus_core::ids::IdError| err(e.to_string()))?;
        steps.push(ScriptStep { delay: Duration::from_millis(u64::from(delay_ms)), uid });
    }
    Ok(steps)
}

async fn read_script(path: &Path) -> Result<Vec<ScriptStep>, ReaderError> {
    let context = |e: io::Error| io::Error::new(e.kind(), format!("script {}: {e}", path.display()));
    let file = tokio::fs::File::open(path).await.map_err(context)?;
    let mut text = Vec::new();
    file.take(MAX_SCRIPT_BYTES + 1).read_to_end(&mut text).await.map_err(context)?;
    if text.len() as u64 > MAX_SCRIPT_BYTES {
        let e = io::Error::new(io::ErrorKind::InvalidData, format!("larger than {MAX_SCRIPT_BYTES} bytes"));
        return Err(context(e).into());
    }
    parse_script(&text).map_err(|e| context(io::Error::new(io::ErrorKind::InvalidData, e)).into())
}

/// Plays a script, logging each verdict, then idles until shutdown.
async fn run_script(
    path: PathBuf,
    taps: mpsc::Sender<TapRequest>,
    shutdown: CancellationToken,
) -> Result<(), ReaderError> {
    let steps = read_script(&path).await?;
    info!(script = %path.display(), taps = steps.len(), "playing simulated reader script");
    for step in steps {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(step.delay) => {}
        }
        let read = CardRead { uid: step.uid, reader: ReaderKind::Simulated };
        let feedback = tokio::select! {
            biased;
            () = shutdown.cancelled() => return Ok(()),
            feedback = submit_tap(&taps, read) => feedback?,
        };
        info!(uid = %step.uid, feedback = feedback_name(feedback), "script tap");
    }
    info!(script = %path.display(), "simulated reader script finished; waiting for shutdown");
    tokio::select! {
        () = shutdown.cancelled() => Ok(()),
        () = taps.closed() => Err(ReaderError::Closed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid(s: &str) -> CardUid {
        s.parse().expect("test uid")
    }

    #[test]
    fn feedback_names_match_the_serde_names() {
        for feedback in [Feedback::Accepted, Feedback::Duplicate, Feedback::UnknownCard, Feedback::Error] {
            let serde_name = serde_json::to_value(feedback).expect("serialize");
            assert_eq!(serde_name.as_str(), Some(feedback_name(feedback)));
        }
    }

    #[test]
    fn protocol_line_is_a_uid_blank_or_invalid() {
        assert_eq!(parse_line(b"04A1B2C3\n"), Ok(Some(uid("04A1B2C3"))));
        assert_eq!(parse_line(b" 04:a1:b2:c3 \r\n"), Ok(Some(uid("04A1B2C3"))));
        assert_eq!(parse_line(b"  \r\n"), Ok(None));
        assert!(parse_line(b"hello\n").is_err());
        assert!(parse_line(b"04A1B2C\n").is_err(), "odd number of digits");
        assert!(parse_line(b"\xff\xfe\n").is_err());
    }

    #[test]
    fn script_lines_are_delay_and_uid_with_comments_and_blanks_skipped() {
        let text = b"# demo\n\n0 04A1B2C3\n  250   04:a1:b2:c3  # same card again\r\n1000 DEADBEEF";
        let steps = parse_script(text).expect("valid script");
        assert_eq!(
            steps,
            vec![
                ScriptStep { delay: Duration::ZERO, uid: uid("04A1B2C3") },
                ScriptStep { delay: Duration::from_millis(250), uid: uid("04A1B2C3") },
                ScriptStep { delay: Duration::from_secs(1), uid: uid("DEADBEEF") },
            ]
        );
    }

    #[test]
    fn script_errors_name_the_line() {
        let cases: [(&[u8], usize); 5] = [
            (b"0 04A1B2C3\n# ok\nsoon 04A1B2C3\n", 3),
            (b"0 04A1B2C3\n-5 04A1B2C3\n", 2),
            (b"10 not-hex\n", 1),
            (b"0 04A1B2C3\n\n10\n", 3),
            (b"10 04A1B2C3 extra\n", 1),
        ];
        for (text, line) in cases {
            let err = parse_script(text).expect_err("invalid script");
            assert_eq!(err.line, line, "{err}");
            assert!(err.to_string().starts_with(&format!("line {line}: ")), "{err}");
        }
    }

    #[test]
    fn script_rejects_non_utf8_lines() {
        assert_eq!(parse_script(b"0 04A1B2C3\n0 \xff\n").expect_err("invalid").line, 2);
    }
}
