//! A classroom node reaching the campus broker over TLS with the broker's CA pinned
//! (`cloud.mqtt_ca_file`), against a real Mosquitto TLS listener whose certificates are made in
//! the test: with its campus CA the node connects; with another CA it refuses the broker and its
//! status (the page's and `/api/status`'s "Cannot connect") says why.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nimbus_core::ids::NodeId;
use nimbus_edge::clock::SystemClock;
use nimbus_edge::store::Store;
use nimbus_edge::sync::{SyncSettings, SyncStatus};
use nimbus_sync::sender::SenderConfig;
use nimbus_sync::testing::free_port;
use nimbus_sync::transport::MqttConfig;
use tokio_util::sync::CancellationToken;

use crate::common::tls::issue;
use crate::common::wait_until_listening;

const NODE: &str = "lab-tls-1";
const PASSWORD: &str = "node-tls-secret";

/// Mosquitto with a TLS listener only; killed on drop.
struct TlsBroker {
    child: Child,
    port: u16,
}

impl TlsBroker {
    fn start(dir: &Path, ca: &str, cert: &str, key: &str) -> TlsBroker {
        for (file, text) in [("ca.pem", ca), ("broker.pem", cert), ("broker.key", key)] {
            std::fs::write(dir.join(file), text).expect("write");
        }
        let passwd = dir.join("passwd");
        std::fs::File::create(&passwd).expect("passwd");
        let ok = Command::new("mosquitto_passwd").arg("-b").arg(&passwd).args([NODE, PASSWORD]).status();
        assert!(ok.expect("mosquitto_passwd must be installed (scripts/services.sh up)").success());
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/broker.pem\nkeyfile {d}/broker.key\n\
                 allow_anonymous false\npassword_file {d}/passwd\n",
                d = dir.display()
            ),
        )
        .expect("conf");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto must be installed");
        wait_until_listening(port, "mosquitto (TLS)");
        TlsBroker { child, port }
    }
}

impl Drop for TlsBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the node's sync task against the broker with `pinned` as its CA until `done` holds (or
/// 15 s pass); returns the status and whether `done` held.
async fn node_against(port: u16, pinned: &str, done: impl Fn(&SyncStatus) -> bool) -> (Arc<SyncStatus>, bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("node.db")).expect("store");
    let settings = SyncSettings {
        node_id: NodeId::new(NODE).expect("node id"),
        mqtt: MqttConfig::new(format!("mqtts://localhost:{port}"), NODE)
            .with_credentials(NODE, PASSWORD)
            .with_ca(pinned.as_bytes().to_vec()),
        sender: SenderConfig { ack_timeout_ms: 500, ..Default::default() },
    };
    let status = Arc::new(SyncStatus::default());
    let stop = CancellationToken::new();
    let task = tokio::spawn(nimbus_edge::sync::run(
        store,
        Arc::new(SystemClock::default()),
        settings,
        status.clone(),
        stop.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done(&status) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reached = done(&status);
    stop.cancel();
    task.await.expect("join").expect("the sync task stops cleanly");
    (status, reached)
}

#[tokio::test]
async fn a_node_with_the_campus_ca_pinned_connects_over_tls_and_refuses_a_broker_signed_by_another_ca() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (campus_ca, cert, key) = issue("campus broker CA");
    let broker = TlsBroker::start(dir.path(), &campus_ca, &cert, &key);

    let (ok, connected) = node_against(broker.port, &campus_ca, |s| s.connected()).await;
    assert!(connected, "the node did not connect with the campus CA pinned: {:?}", ok.last_error());
    assert_eq!(ok.last_error(), None);

    let (other_ca, _, _) = issue("some other CA");
    let (refused, said) = node_against(broker.port, &other_ca, |s| s.last_error().is_some()).await;
    assert!(said, "the node never said why it cannot connect");
    let why = refused.last_error().expect("the reason");
    assert!(
        why.contains("TLS refused") && why.contains("pinned in cloud.mqtt_ca_file"),
        "the status should say the broker's certificate is not signed by the pinned CA: {why}"
    );
    assert!(!refused.connected());
}

#[test]
fn a_pinned_ca_is_refused_for_a_plain_text_broker_url_and_must_be_a_certificate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, issue("CA").0).expect("write");
    let toml = |url: &str, ca: &Path| {
        format!("[cloud]\nenabled = true\nmqtt_url = \"{url}\"\nmqtt_ca_file = \"{}\"\n", ca.display())
    };
    let plain = nimbus_edge::config::Config::from_toml(&toml("mqtt://broker:1883", &ca)).expect("toml");
    let err = plain.validate().expect_err("a CA for mqtt:// is a mistake");
    assert!(err.to_string().contains("only for an mqtts://"), "{err}");
    let tls = nimbus_edge::config::Config::from_toml(&toml("mqtts://broker:8883", &ca)).expect("toml");
    tls.validate().expect("a CA file for mqtts:// is fine");
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").expect("write");
    let bad = nimbus_edge::config::Config::from_toml(&toml("mqtts://broker:8883", &not_pem)).expect("toml");
    assert!(bad.validate().expect_err("not a certificate").to_string().contains("no PEM certificate"));
}
