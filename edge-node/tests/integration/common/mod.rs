//! Shared by the content tests: a small "cloud" that serves content bytes with `Range` and can cut
//! a connection mid-body or send wrong bytes on demand (faults a real service cannot produce when
//! asked), deterministic test files, manifests, and Ed25519-signed user tokens whose public key
//! goes into the node's keys snapshot.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use chrono::{FixedOffset, NaiveDate, NaiveDateTime, NaiveTime};
use ed25519_dalek::{Signer, SigningKey};
use nimbus_core::snapshot::{
    Enrollment, KeysSnapshot, ManifestItem, ManifestSnapshot, PublicKey, RosterSnapshot, TimetableEntry,
    TimetableSnapshot,
};
use nimbus_core::token::{Claims, ISSUER, TokenType};
use nimbus_edge::clock::ManualClock;
use nimbus_edge::store::Store;
use nimbus_edge::timetable;
use sha2::{Digest, Sha256};

pub const ROOM: &str = "lab-7";

/// Monday 2026-11-23 at `h:m`, local time (UTC+05:30).
pub fn monday(h: u32, m: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 11, 23).unwrap().and_hms_opt(h, m, 0).unwrap()
}

pub fn clock() -> ManualClock {
    ManualClock::at_local(monday(8, 30), FixedOffset::east_opt(19_800).unwrap())
}

/// `len` deterministic, incompressible-looking bytes that differ per `seed`.
pub fn bytes_of(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What the fake cloud saw: path and `Range` of each request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub range: Option<String>,
}

#[derive(Default)]
struct CloudState {
    files: HashMap<String, Vec<u8>>,
    /// Per path: the next requests are cut after this many body bytes (one entry per request).
    cuts: HashMap<String, Vec<u64>>,
    /// Per path: how many next requests get wrong bytes (right length).
    corrupt: HashMap<String, usize>,
    /// Answer every request with 503 (the uplink is down).
    down: bool,
    /// Per path: pause between 16 KiB chunks (a slow uplink).
    slow: HashMap<String, std::time::Duration>,
    seen: Vec<Seen>,
}

/// The cloud's node download route, as far as a node can tell: `GET /files/{name}` with
/// single-range support.
#[derive(Clone)]
pub struct FakeCloud {
    pub addr: SocketAddr,
    state: Arc<Mutex<CloudState>>,
}

impl FakeCloud {
    pub async fn start() -> FakeCloud {
        let state = Arc::new(Mutex::new(CloudState::default()));
        let app = Router::new().route("/files/:name", get(serve)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeCloud { addr, state }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CloudState> {
        self.state.lock().unwrap()
    }

    /// Publishes `bytes` under `name`; returns its URL.
    pub fn put(&self, name: &str, bytes: Vec<u8>) -> String {
        self.lock().files.insert(name.to_owned(), bytes);
        format!("http://{}/files/{name}", self.addr)
    }

    /// The next request for `name` sends `after` body bytes, then the connection drops.
    pub fn cut_next(&self, name: &str, after: u64) {
        self.lock().cuts.entry(name.to_owned()).or_default().push(after);
    }

    /// The next `n` requests for `name` get other bytes of the same length.
    pub fn corrupt_next(&self, name: &str, n: usize) {
        self.lock().corrupt.insert(name.to_owned(), n);
    }

    /// Sends `name` in 16 KiB chunks with `pause` between them.
    pub fn slow(&self, name: &str, pause: std::time::Duration) {
        self.lock().slow.insert(name.to_owned(), pause);
    }

    /// Forgets pending cuts, corruptions and slowness of `name`.
    pub fn clear_faults(&self, name: &str) {
        let mut s = self.lock();
        s.cuts.remove(name);
        s.corrupt.remove(name);
        s.slow.remove(name);
    }

    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    pub fn seen(&self, name: &str) -> Vec<Seen> {
        let path = format!("/files/{name}");
        self.lock().seen.iter().filter(|s| s.path == path).cloned().collect()
    }
}

async fn serve(State(state): State<Arc<Mutex<CloudState>>>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (mut bytes, cut, slow) = {
        let mut s = state.lock().unwrap();
        s.seen.push(Seen { path: format!("/files/{name}"), range: range.clone() });
        if s.down {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        let Some(bytes) = s.files.get(&name).cloned() else { return StatusCode::NOT_FOUND.into_response() };
        let cut = s.cuts.get_mut(&name).and_then(|c| if c.is_empty() { None } else { Some(c.remove(0)) });
        let bytes = match s.corrupt.get_mut(&name) {
            Some(n) if *n > 0 => {
                *n -= 1;
                bytes.iter().map(|b| b ^ 0x5A).collect()
            }
            _ => bytes,
        };
        (bytes, cut, s.slow.get(&name).copied())
    };
    let size = bytes.len() as u64;
    let mut status = StatusCode::OK;
    let mut start = 0u64;
    if let Some(r) = range.as_deref().and_then(|r| r.strip_prefix("bytes=")) {
        let (a, b) = r.split_once('-').unwrap();
        start = a.parse().unwrap();
        let end = if b.is_empty() { size - 1 } else { b.parse::<u64>().unwrap().min(size - 1) };
        if start >= size {
            return (StatusCode::RANGE_NOT_SATISFIABLE, [(header::CONTENT_RANGE, format!("bytes */{size}"))])
                .into_response();
        }
        bytes = bytes[start as usize..=end as usize].to_vec();
        status = StatusCode::PARTIAL_CONTENT;
    }
    let len = bytes.len() as u64;
    let mut res = Response::builder().status(status).header(header::CONTENT_LENGTH, len);
    if status == StatusCode::PARTIAL_CONTENT {
        res = res.header(header::CONTENT_RANGE, format!("bytes {start}-{}/{size}", start + len - 1));
    }
    let body = match cut {
        // Send `after` bytes in small chunks, then fail the stream: hyper drops the connection
        // with the body short of its Content-Length.
        Some(after) => {
            let head: Vec<Result<Bytes, std::io::Error>> = bytes[..(after.min(len) as usize)]
                .chunks(16 * 1024)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .chain(std::iter::once(Err(std::io::Error::other("cut"))))
                .collect();
            Body::from_stream(futures_util::stream::iter(head))
        }
        None => match slow {
            Some(pause) => {
                let chunks: Vec<Bytes> = bytes.chunks(16 * 1024).map(Bytes::copy_from_slice).collect();
                Body::from_stream(futures_util::stream::unfold(chunks.into_iter(), move |mut rest| async move {
                    let chunk = rest.next()?;
                    tokio::time::sleep(pause).await;
                    Some((Ok::<_, std::io::Error>(chunk), rest))
                }))
            }
            None => Body::from(bytes),
        },
    };
    res.body(body).unwrap()
}

/// A manifest item for `name` served by `cloud`.
pub fn item(cloud: &FakeCloud, id: &str, version: u32, bytes: &[u8], courses: &[&str]) -> ManifestItem {
    let name = format!("{id}-{version}");
    let url = cloud.put(&name, bytes.to_vec());
    ManifestItem {
        content_id: id.into(),
        version,
        title: format!("Title of {id}"),
        file_name: format!("{id} notes.pdf"),
        mime_type: "application/pdf".into(),
        size_bytes: bytes.len() as u64,
        sha256: sha256_hex(bytes),
        course_ids: courses.iter().map(|c| (*c).into()).collect(),
        url,
    }
}

/// Stores a manifest snapshot as the downlink would.
pub fn set_manifest(store: &Store, version: u64, items: Vec<ManifestItem>) {
    let body = serde_json::to_vec(&ManifestSnapshot { version, items }).unwrap();
    store.with(|c| timetable::apply_raw(c, "manifest", version, &body, 0)).unwrap();
}

/// A timetable with one class of `course` in [`ROOM`] every Monday at 09:00.
pub fn set_timetable(store: &Store, version: u64, courses: &[&str]) {
    let entries = courses
        .iter()
        .enumerate()
        .map(|(i, c)| TimetableEntry {
            entry_id: format!("e-{i}"),
            course_id: (*c).into(),
            course_name: c.to_uppercase(),
            faculty_id: "faculty-1".into(),
            room_id: ROOM.into(),
            day_of_week: 1,
            start_time: NaiveTime::from_hms_opt(9 + i as u32, 0, 0).unwrap(),
            end_time: NaiveTime::from_hms_opt(9 + i as u32, 50, 0).unwrap(),
            effective_from: None,
            effective_until: None,
        })
        .collect();
    store.with(|c| timetable::apply_timetable(c, &TimetableSnapshot { version, entries }, 0)).unwrap();
}

/// Enrollments: `(course, student)` pairs.
pub fn set_roster(store: &Store, version: u64, enrollments: &[(&str, &str)]) {
    let snap = RosterSnapshot {
        version,
        cards: vec![],
        faculty: vec![],
        enrollments: enrollments
            .iter()
            .map(|(c, s)| Enrollment { course_id: (*c).into(), student_id: (*s).into(), name: (*s).into() })
            .collect(),
        students: vec![],
    };
    store.with(|c| timetable::apply_roster(c, &snap, 0)).unwrap();
}

/// Unpadded base64url (JWT segments, JWK `x`).
pub fn b64url(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// A cloud signing key: `kid` and a deterministic Ed25519 key.
pub struct Signer25519 {
    pub kid: String,
    key: SigningKey,
}

impl Signer25519 {
    pub fn new(kid: &str, seed: u8) -> Self {
        Signer25519 { kid: kid.into(), key: SigningKey::from_bytes(&[seed; 32]) }
    }

    pub fn public(&self) -> PublicKey {
        PublicKey { kid: self.kid.clone(), alg: "EdDSA".into(), x: b64url(self.key.verifying_key().as_bytes()) }
    }

    /// A compact JWS over `claims` with header `{"alg":..,"typ":"JWT","kid":..}`.
    pub fn sign_with(&self, alg: &str, claims: &serde_json::Value) -> String {
        let header = serde_json::json!({ "alg": alg, "typ": "JWT", "kid": self.kid });
        let input = format!(
            "{}.{}",
            b64url(&serde_json::to_vec(&header).unwrap()),
            b64url(&serde_json::to_vec(claims).unwrap())
        );
        let sig = self.key.sign(input.as_bytes());
        format!("{input}.{}", b64url(&sig.to_bytes()))
    }

    /// An access token of `sub` valid from `now_secs` for an hour.
    pub fn access(&self, sub: &str, now_secs: i64) -> String {
        self.token(sub, now_secs, now_secs + 3600, TokenType::Access)
    }

    pub fn token(&self, sub: &str, iat: i64, exp: i64, typ: TokenType) -> String {
        let claims = Claims {
            sub: sub.into(),
            roles: vec!["student".into()],
            iss: ISSUER.into(),
            iat,
            exp,
            jti: format!("jti-{sub}-{iat}"),
            sid: format!("sid-{sub}"),
            typ,
        };
        self.sign_with("EdDSA", &serde_json::to_value(claims).unwrap())
    }
}

/// Stores a keys snapshot with these signers' public keys.
pub fn set_keys(store: &Store, version: u64, signers: &[&Signer25519]) {
    let snap = KeysSnapshot {
        version,
        issuer: ISSUER.into(),
        keys: signers.iter().map(|s| s.public()).collect(),
        revoked_sessions: Vec::new(),
    };
    let body = serde_json::to_vec(&snap).unwrap();
    store.with(|c| timetable::apply_raw(c, "keys", version, &body, 0)).unwrap();
}

/// Starts the real `nimbus-edge` binary with `args` and `--config <config>` (the file wins over
/// environment overrides: CI exports MQTT_URL) and waits for its ready line, which it returns
/// (`nimbus-edge ready http=… reader=…`); the rest of stdout is drained in the background.
pub fn spawn_edge(args: &[&str], config: &std::path::Path) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut command = Command::new(env!("CARGO_BIN_EXE_nimbus-edge"));
    nimbus_edge::config::without_env_overrides(&mut command);
    let mut child = command
        .args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start nimbus-edge");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.find_map(|l| l.ok().filter(|l| l.starts_with("nimbus-edge ready"))).expect("node ready line");
    std::thread::spawn(move || lines.for_each(drop));
    (child, ready)
}

/// The store's only connection, held by another thread until released: a database that does
/// not answer, for the readiness probe's tests.
pub struct StoreHold {
    release: std::sync::mpsc::Sender<()>,
    holder: std::thread::JoinHandle<()>,
}

impl StoreHold {
    /// Holds `store` once the returned value exists.
    pub fn take(store: Store) -> StoreHold {
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            store
                .with(|_| {
                    held_tx.send(()).unwrap();
                    let _ = release_rx.recv();
                    Ok(())
                })
                .unwrap()
        });
        held_rx.recv().unwrap();
        StoreHold { release, holder }
    }

    /// Lets the store go; join the handle to know it has.
    pub fn release(self) -> std::thread::JoinHandle<()> {
        drop(self.release);
        self.holder
    }
}
