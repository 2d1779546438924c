//! Test support (feature `testing`): a private Mosquitto broker on a free loopback port, with a
//! password file and the production ACL (a node may publish only under its own id), started and
//! stopped by pid. Tests of both ends use it; nothing in production does.

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The ACL every broker of NimbusU uses: nodes (username = node id) may only publish their own
/// uplink and status and read their own acks and downlink; the cloud user may do anything under
/// `nimbus/v1/nodes/`.
pub const ACL: &str = "\
pattern write nimbus/v1/nodes/%u/up
pattern write nimbus/v1/nodes/%u/status
pattern read nimbus/v1/nodes/%u/ack
pattern read nimbus/v1/nodes/%u/down/#

user nimbus-cloud
topic readwrite nimbus/v1/nodes/#
topic read $share/#
";

/// The cloud's broker account in tests.
pub const CLOUD_USER: (&str, &str) = ("nimbus-cloud", "cloud-secret");

/// A running private broker; killed on drop.
pub struct Mosquitto {
    child: Option<Child>,
    /// `mqtt://127.0.0.1:<port>`.
    pub url: String,
    /// The port.
    pub port: u16,
    dir: PathBuf,
}

impl Mosquitto {
    /// Starts a broker accepting `users` (name, password) plus [`CLOUD_USER`], with [`ACL`].
    /// Panics with a clear message if `mosquitto` cannot be started: tests need it.
    pub fn start(users: &[(&str, &str)]) -> Mosquitto {
        let dir = std::env::temp_dir().join(format!("nimbus-mosquitto-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let passwd = dir.join("passwd");
        std::fs::File::create(&passwd).expect("password file");
        for (user, pass) in users.iter().chain([&CLOUD_USER]) {
            let ok = Command::new("mosquitto_passwd")
                .args(["-b"])
                .arg(&passwd)
                .args([user, pass])
                .status()
                .expect("mosquitto_passwd must be installed (scripts/services.sh up)");
            assert!(ok.success(), "mosquitto_passwd failed for {user}");
        }
        std::fs::write(dir.join("acl"), ACL).expect("acl file");
        let port = free_port();
        let mut m = Mosquitto { child: None, url: format!("mqtt://127.0.0.1:{port}"), port, dir };
        m.spawn();
        m
    }

    fn spawn(&mut self) {
        let conf = self.dir.join("mosquitto.conf");
        let mut f = std::fs::File::create(&conf).expect("conf");
        writeln!(
            f,
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\nacl_file {acl}\n\
             persistence true\npersistence_location {dir}/\nautosave_interval 1\nmax_queued_messages 100000\n",
            port = self.port,
            passwd = self.dir.join("passwd").display(),
            acl = self.dir.join("acl").display(),
            dir = self.dir.display()
        )
        .expect("conf");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto must be installed (scripts/services.sh up)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not listen on {}", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the broker (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port with the same persistent state.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// What a [`FakeCloud`] has "stored in Kafka" and seen.
#[derive(Debug, Default)]
pub struct CloudState {
    /// Stored sequence numbers per node, in arrival order.
    pub stored: std::collections::BTreeMap<String, Vec<u64>>,
    /// Frames received on uplink topics (including ones refused).
    pub frames: u64,
    /// Frames refused (corrupt, wrong node, not a batch).
    pub rejected: u64,
    /// Batches that were entirely duplicates.
    pub duplicates: u64,
    /// Payload bytes received.
    pub bytes: u64,
}

/// A stand-in for the cloud ingest that follows the protocol's receiver rules exactly (decode,
/// classify against the per-node high-water mark, "store", ack after storing), so node-side
/// tests and benchmarks can run without Kafka. Its state survives [`FakeCloud::restart`], as a
/// real ingest's state survives in PostgreSQL.
pub struct FakeCloud {
    /// Shared state, for assertions.
    pub state: std::sync::Arc<std::sync::Mutex<CloudState>>,
    url: String,
    ack_delay_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
    subscribed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl FakeCloud {
    /// Connects to `url` as [`CLOUD_USER`] and starts receiving.
    pub fn start(url: &str) -> FakeCloud {
        let mut cloud = FakeCloud {
            state: Default::default(),
            url: url.to_owned(),
            ack_delay_ms: Default::default(),
            subscribed: Default::default(),
            task: None,
        };
        cloud.spawn();
        cloud
    }

    /// Waits (up to 10 s) until the uplink subscription is in place: a test that publishes a single
    /// frame must not race the subscription (nodes resend, so the sync tests need not wait).
    pub async fn subscribed(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !self.subscribed.load(std::sync::atomic::Ordering::Acquire) {
            assert!(tokio::time::Instant::now() < deadline, "the fake cloud never subscribed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Delays every ack by `ms` (to catch a node between publish and ack).
    pub fn set_ack_delay_ms(&self, ms: u64) {
        self.ack_delay_ms.store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// The seqs stored for `node`.
    pub fn stored(&self, node: &str) -> Vec<u64> {
        self.state.lock().map(|s| s.stored.get(node).cloned().unwrap_or_default()).unwrap_or_default()
    }

    /// Stops receiving (the process "crashes"); state is kept.
    pub fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    /// Starts again with the kept state, like an ingest restarted on its database.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn spawn(&mut self) {
        use crate::frame::FrameLimits;
        use crate::receiver::{self, Decision, ReceiverStats};
        use crate::topics::NodeTopic;
        use rumqttc::{AsyncClient, Event, Packet, QoS};

        let cfg = crate::transport::MqttConfig::new(&self.url, format!("fake-cloud-{}", uuid::Uuid::new_v4().simple()))
            .with_credentials(CLOUD_USER.0, CLOUD_USER.1);
        let Ok(options) = cfg.options() else { return };
        let (client, mut eventloop) = AsyncClient::new(options, 256);
        let state = self.state.clone();
        let delay = self.ack_delay_ms.clone();
        let subscribed = self.subscribed.clone();
        subscribed.store(false, std::sync::atomic::Ordering::Release);
        self.task = Some(tokio::spawn(async move {
            let mut stats = ReceiverStats::default();
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = client.try_subscribe("nimbus/v1/nodes/+/up", QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        subscribed.store(true, std::sync::atomic::Ordering::Release);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let Some(NodeTopic::Up(node)) = NodeTopic::parse(&p.topic) else { continue };
                        let decoded = receiver::decode_uplink(&p.payload, &node, FrameLimits::default(), &mut stats);
                        let reply = {
                            let Ok(mut s) = state.lock() else { return };
                            s.frames += 1;
                            s.bytes += p.payload.len() as u64;
                            let Ok(batch) = decoded else {
                                s.rejected += 1;
                                continue;
                            };
                            let seqs = s.stored.entry(node.to_string()).or_default();
                            let hwm = seqs.last().copied().unwrap_or(0);
                            match receiver::classify(hwm, &batch) {
                                Decision::Accept { events, upto_seq } => {
                                    seqs.extend(events.iter().map(|e| e.seq));
                                    receiver::ack_after_confirm(upto_seq)
                                }
                                other => {
                                    if matches!(other, Decision::Duplicate { .. }) {
                                        s.duplicates += 1;
                                    }
                                    match other.immediate_reply() {
                                        Some(r) => r,
                                        None => continue,
                                    }
                                }
                            }
                        };
                        let wait = delay.load(std::sync::atomic::Ordering::Relaxed);
                        let (client, ack) = (client.clone(), NodeTopic::Ack(node).name());
                        tokio::spawn(async move {
                            if wait > 0 {
                                tokio::time::sleep(Duration::from_millis(wait)).await;
                            }
                            let _ = client.publish(ack, QoS::AtLeastOnce, false, reply).await;
                        });
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        }));
    }
}

impl Drop for FakeCloud {
    fn drop(&mut self) {
        self.stop();
    }
}
