//! The simulated reader against a fake node: the socket line protocol and the script player.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nimbus_core::ids::CardUid;
use nimbus_core::reader::{CardRead, Feedback, ReaderKind};
use nimbus_edge::reader::simulated::{MAX_LINE_BYTES, SimulatedReader};
use nimbus_edge::reader::{CardReader, ReaderError, TapRequest};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Upper bound for anything that should happen "promptly"; generous for a loaded 2-core CI box.
const PROMPTLY: Duration = Duration::from_secs(5);

/// A card the fake node drops the reply for, as if the store had crashed mid-tap.
const DROPPED: &str = "DEAD";
/// A card the fake node does not know.
const STRANGER: &str = "0BAD";
/// A card whose verdict the fake node holds back until it has answered some other tap.
const SLOW: &str = "0001";

/// Every tap the fake node received, and when by tokio's clock (virtual in paused tests).
type Seen = Arc<Mutex<Vec<(CardRead, Instant)>>>;

fn uid(s: &str) -> CardUid {
    s.parse().expect("test uid")
}

/// Answers like a node: first tap of a card accepted, later ones duplicate, plus the special
/// cards above. Records every tap it receives.
async fn fake_node(mut taps: mpsc::Receiver<TapRequest>, seen: Seen) {
    let mut counted = Vec::new();
    let mut parked: Option<oneshot::Sender<Feedback>> = None;
    while let Some(TapRequest { read, reply }) = taps.recv().await {
        seen.lock().expect("seen lock").push((read, Instant::now()));
        if read.uid == uid(DROPPED) {
            drop(reply);
            continue;
        }
        if read.uid == uid(SLOW) {
            parked = Some(reply);
            continue;
        }
        let feedback = if read.uid == uid(STRANGER) {
            Feedback::UnknownCard
        } else if counted.contains(&read.uid) {
            Feedback::Duplicate
        } else {
            counted.push(read.uid);
            Feedback::Accepted
        };
        let _ = reply.send(feedback);
        if let Some(parked) = parked.take() {
            let _ = parked.send(Feedback::Accepted);
        }
    }
}

struct Node {
    seen: Seen,
    shutdown: CancellationToken,
    reader: JoinHandle<Result<(), ReaderError>>,
}

impl Node {
    fn start(reader: SimulatedReader) -> Node {
        let (taps_tx, taps_rx) = mpsc::channel(4);
        let seen = Seen::default();
        let shutdown = CancellationToken::new();
        let reader: Box<dyn CardReader> = Box::new(reader);
        assert_eq!(reader.kind(), ReaderKind::Simulated);
        let reader = tokio::spawn(reader.run(taps_tx, shutdown.clone()));
        tokio::spawn(fake_node(taps_rx, seen.clone()));
        Node { seen, shutdown, reader }
    }

    fn taps(&self) -> Vec<CardRead> {
        self.seen.lock().expect("seen lock").iter().map(|(read, _)| *read).collect()
    }

    /// Cancels and waits (boundedly) for the reader to return.
    async fn stop(self) -> Result<(), ReaderError> {
        self.shutdown.cancel();
        tokio::time::timeout(PROMPTLY, self.reader).await.expect("reader stops promptly").expect("reader task")
    }
}

async fn start_tcp() -> (Node, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    (Node::start(SimulatedReader::listen(listener)), addr)
}

struct Client {
    lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    write: tokio::net::tcp::OwnedWriteHalf,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let (read, write) = TcpStream::connect(addr).await.expect("connect").into_split();
        Client { lines: BufReader::new(read).lines(), write }
    }

    async fn send(&mut self, text: &str) {
        self.write.write_all(text.as_bytes()).await.expect("send");
    }

    /// The next answer line, or `None` at EOF.
    async fn answer(&mut self) -> Option<String> {
        tokio::time::timeout(PROMPTLY, self.lines.next_line()).await.expect("an answer in time").expect("read")
    }
}

#[tokio::test]
async fn each_tap_is_answered_with_one_line_in_the_order_sent() {
    let (node, addr) = start_tcp().await;
    let mut client = Client::connect(addr).await;

    // Pipelined: all three lines go out before any answer is read.
    client.send("04A1B2C3\n04:a1:b2:c3\r\n0BAD\n").await;
    assert_eq!(client.answer().await.as_deref(), Some("accepted"));
    assert_eq!(client.answer().await.as_deref(), Some("duplicate"));
    assert_eq!(client.answer().await.as_deref(), Some("unknown_card"));

    let expected: Vec<CardRead> = ["04A1B2C3", "04A1B2C3", STRANGER]
        .into_iter()
        .map(|u| CardRead { uid: uid(u), reader: ReaderKind::Simulated })
        .collect();
    assert_eq!(node.taps(), expected);
    node.stop().await.expect("clean stop");
}

#[tokio::test]
async fn malformed_line_is_answered_invalid_and_creates_no_tap_while_blank_lines_are_ignored() {
    let (node, addr) = start_tcp().await;
    let mut client = Client::connect(addr).await;

    client.send("not a card\n\n   \n04A1B2C\n04A1B2C3\n").await;
    let first = client.answer().await.expect("answer");
    assert!(first.starts_with("invalid "), "{first}");
    let second = client.answer().await.expect("answer");
    assert!(second.starts_with("invalid "), "odd digit count: {second}");
    assert_eq!(client.answer().await.as_deref(), Some("accepted"), "blank lines get no answer");

    assert_eq!(node.taps(), vec![CardRead { uid: uid("04A1B2C3"), reader: ReaderKind::Simulated }]);
    node.stop().await.expect("clean stop");
}

#[tokio::test]
async fn oversized_line_is_refused_and_the_connection_closed_without_a_tap() {
    let (node, addr) = start_tcp().await;
    let mut client = Client::connect(addr).await;

    let long = "A".repeat(MAX_LINE_BYTES * 2);
    client.send(&format!("{long}\n04A1B2C3\n")).await;
    let refusal = client.answer().await.expect("a refusal before the close");
    assert!(refusal.starts_with("invalid "), "{refusal}");
    assert_eq!(client.answer().await, None, "connection closed after the refusal");

    assert!(node.taps().is_empty());
    // Other clients are unaffected.
    let mut other = Client::connect(addr).await;
    other.send("04A1B2C3\n").await;
    assert_eq!(other.answer().await.as_deref(), Some("accepted"));
    node.stop().await.expect("clean stop");
}

#[tokio::test]
async fn line_of_exactly_the_limit_is_accepted() {
    let (node, addr) = start_tcp().await;
    let mut client = Client::connect(addr).await;

    let padded = format!("{:>width$}\n", "04A1B2C3", width = MAX_LINE_BYTES - 1);
    assert_eq!(padded.len(), MAX_LINE_BYTES);
    client.send(&padded).await;
    assert_eq!(client.answer().await.as_deref(), Some("accepted"));
    node.stop().await.expect("clean stop");
}

#[tokio::test]
async fn node_dropping_the_reply_is_answered_error_and_the_client_can_go_on() {
    let (node, addr) = start_tcp().await;
    let mut client = Client::connect(addr).await;

    client.send(&format!("{DROPPED}\n04A1B2C3\n")).await;
    assert_eq!(client.answer().await.as_deref(), Some("error"));
    assert_eq!(client.answer().await.as_deref(), Some("accepted"));
    node.stop().await.expect("clean stop");
}

#[tokio::test]
async fn two_clients_are_served_concurrently_each_in_its_own_order() {
    let (node, addr) = start_tcp().await;
    let mut slow = Client::connect(addr).await;
    let mut quick = Client::connect(addr).await;

    // The node holds the slow client's verdict until it has answered another tap...
    slow.send(&format!("{SLOW}\n")).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    // ...which only arrives if the quick client is not stuck behind the slow one.
    quick.send("04A1B2C3\n04A1B2C3\n").await;
    assert_eq!(quick.answer().await.as_deref(), Some("accepted"));
    assert_eq!(slow.answer().await.as_deref(), Some("accepted"));
    assert_eq!(quick.answer().await.as_deref(), Some("duplicate"));

    slow.send("04A1B2C3\n").await;
    assert_eq!(slow.answer().await.as_deref(), Some("duplicate"));
    assert_eq!(node.taps().len(), 4);
    node.stop().await.expect("clean stop");
}

#[tokio::test]
async fn shutdown_closes_clients_and_stops_listening_promptly() {
    let (node, addr) = start_tcp().await;
    let mut client = Client::connect(addr).await;
    client.send("04A1B2C3\n").await;
    assert_eq!(client.answer().await.as_deref(), Some("accepted"));

    let started = Instant::now();
    node.stop().await.expect("shutdown is a clean stop");
    assert!(started.elapsed() < PROMPTLY);

    assert_eq!(client.answer().await, None, "connected client sees EOF");
    let refused = TcpStream::connect(addr).await;
    assert!(refused.is_err(), "listener closed, got {refused:?}");
}

#[tokio::test]
async fn shutdown_while_a_verdict_is_pending_still_ends_promptly() {
    let (node, addr) = start_tcp().await;
    let mut client = Client::connect(addr).await;
    client.send(&format!("{SLOW}\n")).await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    node.stop().await.expect("clean stop");
    assert_eq!(client.answer().await, None);
}

#[tokio::test]
async fn reader_reports_closed_when_the_node_stops_taking_taps() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (taps_tx, taps_rx) = mpsc::channel(1);
    let reader = Box::new(SimulatedReader::listen(listener)).run(taps_tx, CancellationToken::new());
    drop(taps_rx);
    let result = tokio::time::timeout(PROMPTLY, reader).await.expect("reader stops promptly");
    assert!(matches!(result, Err(ReaderError::Closed)), "{result:?}");
}

#[tokio::test]
async fn unix_socket_speaks_the_same_protocol_and_is_removed_on_shutdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("reader.sock");
    let node = Node::start(SimulatedReader::listen_unix(&path).expect("bind unix socket"));

    let stream = tokio::net::UnixStream::connect(&path).await.expect("connect");
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"04A1B2C3\nzz\n").await.expect("send");
    let mut answer = async || tokio::time::timeout(PROMPTLY, lines.next_line()).await.expect("in time").expect("read");
    assert_eq!(answer().await.as_deref(), Some("accepted"));
    assert!(answer().await.expect("answer").starts_with("invalid "));

    node.stop().await.expect("clean stop");
    assert!(!path.exists(), "socket file removed");
}

#[tokio::test]
async fn unix_socket_left_by_a_dead_node_is_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("reader.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).expect("stale socket"));
    assert!(path.exists());

    let node = Node::start(SimulatedReader::listen_unix(&path).expect("stale socket replaced"));
    node.stop().await.expect("clean stop");
}

fn script_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp script");
    file.write_all(text.as_bytes()).expect("write script");
    file
}

// The script's delays pass on tokio's paused clock, which moves on whenever every task waits.
#[tokio::test(start_paused = true)]
async fn script_taps_each_card_after_its_delay_then_waits_for_shutdown() {
    let script = script_file("# demo\n0 04A1B2C3\n\n150 04A1B2C3   # again: duplicate\n50 0BAD\n");
    let node = Node::start(SimulatedReader::script(script.path()));

    let deadline = Instant::now() + PROMPTLY;
    while node.taps().len() < 3 {
        assert!(Instant::now() < deadline, "script taps in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = node.seen.lock().expect("seen lock").clone();
    let uids: Vec<CardUid> = seen.iter().map(|(read, _)| read.uid).collect();
    assert_eq!(uids, vec![uid("04A1B2C3"), uid("04A1B2C3"), uid(STRANGER)]);
    assert!(seen.iter().all(|(read, _)| read.reader == ReaderKind::Simulated));
    assert!(seen[1].1 - seen[0].1 >= Duration::from_millis(150), "second tap waits its delay");
    assert!(seen[2].1 - seen[1].1 >= Duration::from_millis(50), "third tap waits its delay");

    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!node.reader.is_finished(), "a finished script keeps the reader alive until shutdown");
    node.stop().await.expect("clean stop");
}

#[tokio::test]
async fn script_with_a_bad_line_fails_before_any_tap_naming_the_line() {
    let script = script_file("0 04A1B2C3\n# fine\n10 04A1B2ZZ\n");
    let node = Node::start(SimulatedReader::script(script.path()));
    let result = tokio::time::timeout(PROMPTLY, node.reader).await.expect("fails fast").expect("reader task");
    let err = result.expect_err("bad script");
    assert!(matches!(err, ReaderError::Io(_)), "{err:?}");
    assert!(err.to_string().contains("line 3"), "{err}");
    assert!(node.seen.lock().expect("seen lock").is_empty(), "no tap from a script that does not parse");
}

#[tokio::test]
async fn missing_script_is_an_io_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("no-such-script.txt");
    let node = Node::start(SimulatedReader::script(&path));
    let result = tokio::time::timeout(PROMPTLY, node.reader).await.expect("fails fast").expect("reader task");
    match result {
        Err(ReaderError::Io(e)) => {
            assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
            assert!(e.to_string().contains("no-such-script.txt"), "{e}");
        }
        other => panic!("expected a NotFound I/O error, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn shutdown_interrupts_a_script_delay() {
    let script = script_file("600000 04A1B2C3\n");
    let node = Node::start(SimulatedReader::script(script.path()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let seen = node.seen.clone();
    node.stop().await.expect("clean stop");
    assert!(seen.lock().expect("seen lock").is_empty());
}
