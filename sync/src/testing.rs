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
