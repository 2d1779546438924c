//! Registering a node through the API is all it takes for it to reach the campus broker: the API
//! stores the broker hash of the password it issues, `broker-accounts` ([`broker::run`]) writes the
//! registry's accounts to a file, and the broker's real entrypoint (`scripts/compose/mosquitto-run.sh`,
//! as compose and Kubernetes run it) joins that with the cloud's account and reloads a real
//! Mosquitto 2. Re-issued credentials replace the old password at the broker too.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::Method;
use nimbus_cloud::registry::broker::{self, BrokerAccountsMetrics, BrokerAccountsSettings};
use nimbus_sync::testing::{ACL, CLOUD_USER, free_port};
use rumqttc::{AsyncClient, ConnectionError, Event, MqttOptions, Packet};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::common::compose::path;
use crate::common::services_api::{Services, caller};

/// The broker started by its entrypoint script; SIGTERM on drop (the script stops mosquitto).
struct Broker {
    child: Child,
    port: u16,
}

impl Broker {
    fn start(dir: &Path, nodes_file: &Path) -> Broker {
        let cloud_file = dir.join("cloud.passwd");
        std::fs::File::create(&cloud_file).expect("cloud file");
        let ok = Command::new("mosquitto_passwd")
            .arg("-b")
            .arg(&cloud_file)
            .args([CLOUD_USER.0, CLOUD_USER.1])
            .status()
            .expect("mosquitto_passwd must be installed (scripts/services.sh up)");
        assert!(ok.success());
        std::fs::write(dir.join("acl"), ACL).expect("acl");
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nacl_file {}\n",
                dir.join("passwd").display(),
                dir.join("acl").display()
            ),
        )
        .expect("conf");
        let child = Command::new("sh")
            .arg(path("scripts/compose/mosquitto-run.sh"))
            .env("BROKER_CLOUD_FILE", &cloud_file)
            .env("BROKER_NODES_FILE", nodes_file)
            .env("BROKER_PASSWORD_FILE", dir.join("passwd"))
            .env("BROKER_CONFIG", &conf)
            .env("BROKER_RELOAD_INTERVAL", "0.2")
            .env("BROKER_FILE_OWNER", "")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh");
        crate::common::wait_until_listening(port, "mosquitto, started by the broker's entrypoint");
        Broker { child, port }
    }

    /// SIGTERM, then the script's exit status.
    fn stop(&mut self) -> Option<i32> {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

/// Whether the broker accepts `user`/`password` (CONNACK success), `false` when it refuses them.
async fn accepted(port: u16, user: &str, password: &str) -> bool {
    let mut options = MqttOptions::new(format!("probe-{}", uuid::Uuid::new_v4().simple()), "127.0.0.1", port);
    options.set_credentials(user, password);
    let (_client, mut eventloop) = AsyncClient::new(options, 4);
    let poll = async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return true,
                Ok(_) => {}
                Err(ConnectionError::ConnectionRefused(_)) => return false,
                Err(e) => panic!("broker on {port} unreachable: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), poll).await.expect("no CONNACK within 10 s")
}

/// Polls until the broker accepts (or refuses, `want == false`) the account, within 15 s.
async fn until(port: u16, user: &str, password: &str, want: bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while accepted(port, user, password).await != want {
        assert!(
            Instant::now() < deadline,
            "the broker still {} {user} 15 s after the registry changed",
            if want { "refuses" } else { "accepts" }
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_node_registered_through_the_api_connects_and_a_reissued_password_replaces_the_old_one() {
    crate::common::capture_logs();
    let services = Services::create().await;
    let admin = services.as_caller(&caller("admin-1", "admin"));
    let node = format!("lab-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let registered = admin.call(Method::POST, "/api/v1/nodes", Some(json!({"node_id": node, "room_id": "B204"}))).await;
    assert_eq!(registered.status, 201, "{}", registered.text);
    let password = registered.json["password"].as_str().expect("the password, shown once").to_owned();

    let dir = tempfile::tempdir().expect("temp dir");
    let nodes_file: PathBuf = dir.path().join("nodes.passwd");
    let settings = BrokerAccountsSettings {
        nodes_file: nodes_file.clone(),
        cloud_user: CLOUD_USER.0.to_owned(),
        interval: Duration::from_millis(200),
    };
    let metrics = Arc::new(BrokerAccountsMetrics::default());
    let stop = CancellationToken::new();
    let sync =
        tokio::spawn(broker::run(services.state.registry.clone(), settings.clone(), metrics.clone(), stop.clone()));
    let mut broker = Broker::start(dir.path(), &nodes_file);

    until(broker.port, &node, &password, true).await;
    assert!(!accepted(broker.port, &node, "not-the-password").await, "a wrong password must be refused");
    assert!(accepted(broker.port, CLOUD_USER.0, CLOUD_USER.1).await, "the cloud's account is kept beside the nodes'");
    assert!(metrics.ready(settings.interval), "broker-accounts is ready once it wrote the file");

    let reissued = admin.call(Method::POST, &format!("/api/v1/nodes/{node}/credentials"), None).await;
    assert_eq!(reissued.status, 200, "{}", reissued.text);
    let new_password = reissued.json["password"].as_str().expect("new password").to_owned();
    until(broker.port, &node, &new_password, true).await;
    assert!(!accepted(broker.port, &node, &password).await, "the old password must stop working");

    assert_eq!(broker.stop(), Some(0), "SIGTERM stops the broker and its entrypoint cleanly");
    stop.cancel();
    sync.await.expect("join").expect("broker-accounts stops cleanly");
    services.drop_now().await;
}

#[tokio::test]
async fn a_node_registered_under_the_cloud_s_name_gets_no_broker_account() {
    let services = Services::create().await;
    let admin = services.as_caller(&caller("admin-1", "admin"));
    let registered =
        admin.call(Method::POST, "/api/v1/nodes", Some(json!({"node_id": CLOUD_USER.0, "room_id": "B204"}))).await;
    assert_eq!(registered.status, 201, "{}", registered.text);
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = BrokerAccountsSettings {
        nodes_file: dir.path().join("nodes.passwd"),
        cloud_user: CLOUD_USER.0.to_owned(),
        interval: Duration::from_secs(1),
    };
    let metrics = BrokerAccountsMetrics::default();
    broker::sync_once(&services.state.registry, &settings, &metrics).await.expect("sync");
    let text = std::fs::read_to_string(&settings.nodes_file).expect("file");
    assert!(
        !text.lines().any(|l| l.starts_with(&format!("{}:", CLOUD_USER.0))),
        "a node named like the cloud's account would get the cloud's ACL: {text}"
    );
    services.drop_now().await;
}
