//! LAN content delivery over real HTTP on loopback: the node's server (`http::run`) over a cache
//! filled from a fake cloud, students authenticated by Ed25519 tokens verified offline against the
//! keys snapshot, authorised by the roster snapshot.
//!
//! Cast: student-a takes cs101, student-b takes ma201, faculty-1 teaches cs101 in this room,
//! student-c takes nothing here. `doc-cs` belongs to cs101, `doc-ma` to ma201.

use std::sync::Arc;
use std::time::Duration;

use nimbus_core::token::TokenType;
use nimbus_edge::attendance::{Attendance, Rules};
use nimbus_edge::clock::{Clock, ManualClock};
use nimbus_edge::content::cache;
use nimbus_edge::content::{CacheSettings, ContentCache};
use nimbus_edge::http::{self, AppState};
use nimbus_edge::metrics::Metrics;
use nimbus_edge::outbox;
use nimbus_edge::store::Store;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::common::*;

struct Node {
    base: String,
    addr: std::net::SocketAddr,
    store: Store,
    clock: ManualClock,
    signer: Signer25519,
    doc_cs: Vec<u8>,
    client: reqwest::Client,
    paths: cache::Paths,
    cache: ContentCache,
    _dir: tempfile::TempDir,
    _stop: tokio_util::sync::DropGuard,
}

const DOC_CS_LEN: usize = 256 * 1024 + 11;

async fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::start().await;
    let store = Store::open_in_memory().unwrap();
    let clock = clock();
    let signer = Signer25519::new("key-2026-11", 7);
    set_keys(&store, 1, &[&signer]);
    set_roster(&store, 1, &[("cs101", "student-a"), ("ma201", "student-b")]);
    set_timetable(&store, 1, &["cs101"]);
    let doc_cs = bytes_of(DOC_CS_LEN, 100);
    let mut cs = item(&cloud, "doc-cs", 1, &doc_cs, &["cs101"]);
    cs.file_name = "Week 1 – Trees.pdf".into();
    let ma = item(&cloud, "doc-ma", 3, &bytes_of(1000, 101), &["ma201"]);
    set_manifest(&store, 1, vec![cs, ma]);
    let settings = CacheSettings::new(dir.path().join("content"), ROOM);
    let cache = ContentCache::new(store.clone(), Arc::new(clock.clone()), settings).unwrap();
    assert_eq!(cache.sync_once().await.unwrap().completed.len(), 2);

    let rules = Rules { room_id: ROOM.into(), ..Rules::default() };
    let attendance = Attendance::new(store.clone(), Arc::new(clock.clone()), rules);
    let (routes, _writer) =
        http::content::ContentRoutes::new(store.clone(), Arc::new(clock.clone()), cache.paths().clone());
    let state = AppState::new(attendance, Arc::new(Metrics::default()), None).with_content(routes);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(http::run(listener, state, stop.clone()));
    Node {
        base: format!("http://{addr}"),
        addr,
        store,
        clock,
        signer,
        doc_cs,
        client: reqwest::Client::new(),
        paths: cache.paths().clone(),
        cache,
        _dir: dir,
        _stop: stop.drop_guard(),
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: header::HeaderName) -> &str {
        self.headers.get(&name).map(|v| v.to_str().unwrap()).unwrap_or_else(|| panic!("no {name}"))
    }

    /// Asserts the seed's AppError JSON with `code`.
    fn error(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{}", String::from_utf8_lossy(&self.body));
        let body = self.json();
        assert_eq!(body["code"], code, "{body}");
        assert!(body["message"].is_string(), "{body}");
    }
}

impl Node {
    fn now_secs(&self) -> i64 {
        self.clock.now().utc.timestamp()
    }

    fn token(&self, sub: &str) -> String {
        self.signer.access(sub, self.now_secs())
    }

    async fn get(&self, path: &str, token: Option<&str>, headers: &[(header::HeaderName, &str)]) -> Answer {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(k, *v);
        }
        let res = req.send().await.unwrap();
        Answer { status: res.status(), headers: res.headers().clone(), body: res.bytes().await.unwrap().to_vec() }
    }

    async fn as_student(&self, path: &str, headers: &[(header::HeaderName, &str)]) -> Answer {
        self.get(path, Some(&self.token("student-a")), headers).await
    }

    /// Writes `request_line` verbatim (no client-side path normalisation) and returns the status
    /// and body.
    async fn raw(&self, target: &str, token: &str) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let req = format!(
            "GET {target} HTTP/1.1\r\nHost: node\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, text)
    }

    fn content_events(&self) -> Vec<outbox::OutboxEvent> {
        self.store
            .with(|c| outbox::pending(c, 1000))
            .unwrap()
            .into_iter()
            .filter(|e| e.event_type == "CONTENT_ACCESSED")
            .collect()
    }

    async fn wait_for_events(&self, n: usize) -> Vec<outbox::OutboxEvent> {
        for _ in 0..100 {
            let events = self.content_events();
            if events.len() >= n {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("expected {n} access events, have {:?}", self.content_events());
    }
}

fn ids(list: &Value) -> Vec<String> {
    list["items"].as_array().unwrap().iter().map(|i| i["content_id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn the_list_shows_only_content_of_the_callers_courses() {
    let node = node().await;
    let a = node.as_student("/api/content", &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(ids(&a.json()), ["doc-cs"]);
    let item = &a.json()["items"][0];
    assert_eq!(item["version"], 1);
    assert_eq!(item["size_bytes"], DOC_CS_LEN);
    assert_eq!(item["sha256"], sha256_hex(&node.doc_cs));
    assert_eq!(item["url"], "/api/content/doc-cs");
    assert_eq!(item["mime_type"], "application/pdf");

    let b = node.get("/api/content", Some(&node.token("student-b")), &[]).await;
    assert_eq!(ids(&b.json()), ["doc-ma"]);
    let faculty = node.get("/api/content", Some(&node.token("faculty-1")), &[]).await;
    assert_eq!(ids(&faculty.json()), ["doc-cs"], "faculty see what they teach here");
    let stranger = node.get("/api/content", Some(&node.token("student-c")), &[]).await;
    assert_eq!(ids(&stranger.json()), Vec::<String>::new());
}

#[tokio::test]
async fn a_full_download_has_the_bytes_and_every_header() {
    let node = node().await;
    let a = node.as_student("/api/content/doc-cs", &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, node.doc_cs);
    assert!(String::from_utf8_lossy(&node.as_student("/api/content", &[]).await.body).contains("doc-cs"));
    assert_eq!(a.header(header::CONTENT_LENGTH), DOC_CS_LEN.to_string());
    assert_eq!(a.header(header::CONTENT_TYPE), "application/pdf");
    assert_eq!(a.header(header::ETAG), format!("\"{}\"", sha256_hex(&node.doc_cs)));
    assert_eq!(a.header(header::ACCEPT_RANGES), "bytes");
    assert_eq!(
        a.header(header::CONTENT_DISPOSITION),
        "attachment; filename=\"Week 1 _ Trees.pdf\"; filename*=UTF-8''Week%201%20%E2%80%93%20Trees.pdf"
    );
    assert_eq!(a.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    assert_eq!(a.header(header::CONTENT_SECURITY_POLICY), "sandbox");
    // Last-Modified is when the verified file became available (the node's clock, HTTP date).
    let lm = chrono::DateTime::parse_from_rfc2822(a.header(header::LAST_MODIFIED)).unwrap();
    assert_eq!(lm.timestamp(), node.now_secs());
    assert!(a.header(header::LAST_MODIFIED).ends_with(" GMT"));
}

#[tokio::test]
async fn byte_ranges_answer_206_with_the_right_bytes_and_416_outside_the_file() {
    let node = node().await;
    let size = DOC_CS_LEN;
    let r = node.as_student("/api/content/doc-cs", &[(header::RANGE, "bytes=1000-1999")]).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body, node.doc_cs[1000..2000]);
    assert_eq!(r.header(header::CONTENT_RANGE), format!("bytes 1000-1999/{size}"));
    assert_eq!(r.header(header::CONTENT_LENGTH), "1000");

    let suffix = node.as_student("/api/content/doc-cs", &[(header::RANGE, "bytes=-500")]).await;
    assert_eq!(suffix.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(suffix.body, node.doc_cs[size - 500..]);
    assert_eq!(suffix.header(header::CONTENT_RANGE), format!("bytes {}-{}/{size}", size - 500, size - 1));

    let open = node.as_student("/api/content/doc-cs", &[(header::RANGE, "bytes=200000-")]).await;
    assert_eq!(open.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(open.body, node.doc_cs[200_000..]);

    let past_end = node.as_student("/api/content/doc-cs", &[(header::RANGE, "bytes=0-99999999")]).await;
    assert_eq!(past_end.status, StatusCode::PARTIAL_CONTENT, "an end past the file is clamped");
    assert_eq!(past_end.body.len(), size);

    let beyond = format!("bytes={size}-");
    let bad = node.as_student("/api/content/doc-cs", &[(header::RANGE, &beyond)]).await;
    bad.error(StatusCode::RANGE_NOT_SATISFIABLE, "RANGE_NOT_SATISFIABLE");
    assert_eq!(bad.header(header::CONTENT_RANGE), format!("bytes */{size}"));
    assert_eq!(bad.json()["details"]["size"], size);

    // A stale If-Range (the client's copy is of other bytes) gets the whole new file.
    let stale =
        node.as_student("/api/content/doc-cs", &[(header::RANGE, "bytes=0-9"), (header::IF_RANGE, "\"old\"")]).await;
    assert_eq!(stale.status, StatusCode::OK);
    assert_eq!(stale.body.len(), size);
}

#[tokio::test]
async fn validators_answer_304_not_modified() {
    let node = node().await;
    let first = node.as_student("/api/content/doc-cs", &[]).await;
    let etag = first.header(header::ETAG).to_owned();
    let lm = first.header(header::LAST_MODIFIED).to_owned();

    let same = node.as_student("/api/content/doc-cs", &[(header::IF_NONE_MATCH, &etag)]).await;
    assert_eq!(same.status, StatusCode::NOT_MODIFIED);
    assert!(same.body.is_empty());
    assert_eq!(same.header(header::ETAG), etag);

    let other = node.as_student("/api/content/doc-cs", &[(header::IF_NONE_MATCH, "\"something-else\"")]).await;
    assert_eq!(other.status, StatusCode::OK);

    let since = node.as_student("/api/content/doc-cs", &[(header::IF_MODIFIED_SINCE, &lm)]).await;
    assert_eq!(since.status, StatusCode::NOT_MODIFIED);
    let before =
        node.as_student("/api/content/doc-cs", &[(header::IF_MODIFIED_SINCE, "Mon, 01 Jan 2024 00:00:00 GMT")]).await;
    assert_eq!(before.status, StatusCode::OK);
    let both = node
        .as_student(
            "/api/content/doc-cs",
            &[(header::IF_NONE_MATCH, "\"something-else\""), (header::IF_MODIFIED_SINCE, &lm)],
        )
        .await;
    assert_eq!(both.status, StatusCode::OK, "If-None-Match decides when both are sent");
}

#[tokio::test]
async fn tokens_that_do_not_verify_offline_are_refused_with_401() {
    let node = node().await;
    let now = node.now_secs();
    let path = "/api/content/doc-cs";

    node.get(path, None, &[]).await.error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    node.get("/api/content", None, &[]).await.error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    node.get(path, Some("not-a-jwt"), &[]).await.error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");

    let expired = node.signer.token("student-a", now - 7200, now - 3600, TokenType::Access);
    node.get(path, Some(&expired), &[]).await.error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    let refresh = node.signer.token("student-a", now, now + 3600, TokenType::Refresh);
    node.get(path, Some(&refresh), &[]).await.error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");

    // Signed by a key the snapshot does not have: under an unknown kid, and under the known kid.
    let stranger = Signer25519::new("key-unknown", 9);
    node.get(path, Some(&stranger.access("student-a", now)), &[]).await.error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    let forger = Signer25519::new(&node.signer.kid, 9);
    node.get(path, Some(&forger.access("student-a", now)), &[]).await.error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");

    // Right key, but another algorithm in the header, or another issuer.
    let claims = |iss: &str| {
        serde_json::json!({ "sub": "student-a", "roles": ["student"], "iss": iss, "iat": now, "exp": now + 3600,
                            "jti": "j", "sid": "s", "typ": "access" })
    };
    for alg in ["none", "HS256", "ES256"] {
        let t = node.signer.sign_with(alg, &claims("nimbus-cloud"));
        node.get(path, Some(&t), &[]).await.error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    }
    let other_issuer = node.signer.sign_with("EdDSA", &claims("someone-else"));
    node.get(path, Some(&other_issuer), &[]).await.error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    // Tampered payload under a valid signature.
    let good = node.token("student-a");
    let mut parts: Vec<&str> = good.split('.').collect();
    let forged_payload = b64url(&serde_json::to_vec(&claims("nimbus-cloud")).unwrap());
    parts[1] = &forged_payload;
    node.get(path, Some(&parts.join(".")), &[]).await.error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");

    // The sanity check: the same student with a good token gets the file.
    assert_eq!(node.get(path, Some(&good), &[]).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_key_rotated_out_of_the_snapshot_stops_verifying() {
    let node = node().await;
    let token = node.token("student-a");
    assert_eq!(node.get("/api/content", Some(&token), &[]).await.status, StatusCode::OK);
    let next = Signer25519::new("key-2026-12", 8);
    set_keys(&node.store, 2, &[&next]);
    // Parsed keys are reused for a few seconds; past that the new snapshot is in force.
    tokio::time::sleep(nimbus_edge::token::KEYS_TTL + Duration::from_millis(200)).await;
    node.get("/api/content", Some(&token), &[]).await.error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    let fresh = next.access("student-a", node.now_secs());
    assert_eq!(node.get("/api/content/doc-cs", Some(&fresh), &[]).await.status, StatusCode::OK);
}

#[tokio::test]
async fn content_of_another_course_is_forbidden_and_unknown_content_is_not_found() {
    let node = node().await;
    node.as_student("/api/content/doc-ma", &[]).await.error(StatusCode::FORBIDDEN, "FORBIDDEN");
    let b = node.get("/api/content/doc-cs", Some(&node.token("student-b")), &[]).await;
    b.error(StatusCode::FORBIDDEN, "FORBIDDEN");
    let missing = node.as_student("/api/content/no-such-doc", &[]).await;
    missing.error(StatusCode::NOT_FOUND, "NOT_FOUND");
    assert_eq!(missing.json()["details"]["content_id"], "no-such-doc");
}

#[tokio::test]
async fn path_traversal_in_the_content_id_is_refused() {
    let node = node().await;
    let token = node.token("student-a");
    for encoded in ["..%2F..%2Fetc%2Fpasswd", "doc-cs%2F..%2Fdoc-ma", "doc.cs", "%00", "doc-cs%5C.."] {
        let a = node.get(&format!("/api/content/{encoded}"), Some(&token), &[]).await;
        a.error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        assert_eq!(a.json()["details"]["field"], "content_id", "{encoded}: {}", a.json());
    }
    // Dot segments, written verbatim on the socket (a client would normalise them): no route or
    // an invalid id, nothing read.
    for target in [
        "/api/content/../../etc/passwd",
        "/api/content/..",
        "/api/content/%2E%2E",
        "/api/content/./doc-cs/../../../etc/passwd",
    ] {
        let (status, text) = node.raw(target, &token).await;
        assert!(status == 404 || status == 400, "{target}: {text}");
        assert!(!text.contains("root:"), "{target}");
        assert!(text.contains("\"code\""), "AppError JSON: {text}");
    }
}

#[tokio::test]
async fn a_content_item_still_downloading_is_neither_listed_nor_served() {
    let node = node().await;
    // A newer manifest adds cs101 content the node has not fetched (the cloud is unreachable).
    let cloud = FakeCloud::start().await;
    cloud.set_down(true);
    let mut items = vec![item(&cloud, "doc-new", 1, &bytes_of(5000, 102), &["cs101"])];
    items.extend(node.store.with(|c| nimbus_edge::content::manifest::current(c)).unwrap().unwrap().items);
    set_manifest(&node.store, 2, items);
    let dir = tempfile::tempdir().unwrap();
    let cache =
        ContentCache::new(node.store.clone(), Arc::new(node.clock.clone()), CacheSettings::new(dir.path(), ROOM))
            .unwrap();
    cache.sync_once().await.unwrap();
    assert_eq!(node.store.with(|c| cache::row_state(c, "doc-new", 1)).unwrap().as_deref(), Some("pending"));

    assert_eq!(ids(&node.as_student("/api/content", &[]).await.json()), ["doc-cs"]);
    node.as_student("/api/content/doc-new", &[]).await.error(StatusCode::NOT_FOUND, "NOT_FOUND");
}

#[tokio::test]
async fn downloads_are_logged_to_the_outbox_as_droppable_content_accessed_events() {
    let node = node().await;
    let before = node.store.with(|c| cache::servable(c, "doc-cs")).unwrap().unwrap().last_access_ms;
    node.clock.advance(Duration::from_secs(120));
    let ua = "Mozilla/5.0 (X11; Linux) test";
    assert_eq!(node.as_student("/api/content/doc-cs", &[(header::USER_AGENT, ua)]).await.status, StatusCode::OK);
    // A player seeking within the same file is not another access.
    let seek = node.as_student("/api/content/doc-cs", &[(header::RANGE, "bytes=5000-")]).await;
    assert_eq!(seek.status, StatusCode::PARTIAL_CONTENT);
    // Refusals are not accesses either.
    node.as_student("/api/content/doc-ma", &[]).await.error(StatusCode::FORBIDDEN, "FORBIDDEN");

    let events = node.wait_for_events(1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(node.content_events().len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e.topic, "content.events");
    assert_eq!(e.priority, outbox::Priority::Telemetry as i64, "droppable under disk pressure");
    let p = &e.payload;
    assert_eq!(p["content_id"], "doc-cs");
    assert_eq!(p["user_id"], "student-a");
    assert_eq!(p["access_type"], "download");
    assert_eq!(p["ip_address"], "127.0.0.1");
    assert_eq!(p["user_agent"], ua);
    let at = chrono::DateTime::parse_from_rfc3339(p["accessed_at"].as_str().unwrap()).unwrap();
    assert_eq!(at.timestamp(), node.now_secs());

    let after = node.store.with(|c| cache::servable(c, "doc-cs")).unwrap().unwrap().last_access_ms;
    assert!(after > before, "the LRU clock moved: {before} -> {after}");

    // Under outbox disk pressure the access events are the ones dropped.
    let evicted = node.store.with(|c| outbox::enforce_budget(c, 0)).unwrap();
    assert_eq!(evicted, 1);
    assert!(node.content_events().is_empty());
}

#[tokio::test]
async fn a_file_changed_on_disk_since_it_was_verified_is_not_served_until_it_is_verified_again() {
    let node = node().await;
    let file = node.paths.file("doc-cs", 1).unwrap();
    // Rewritten in place with the same size (a restore, a stray editor): unverified.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&file, &node.doc_cs).unwrap();
    let listed = node.as_student("/api/content", &[]).await;
    assert!(!String::from_utf8_lossy(&listed.body).contains("doc-cs"), "not listed either");
    node.as_student("/api/content/doc-cs", &[]).await.error(StatusCode::NOT_FOUND, "NOT_FOUND");
    assert_eq!(node.store.with(|c| cache::row_state(c, "doc-cs", 1)).unwrap().as_deref(), Some("pending"));

    // The content task's next pass re-hashes it; the bytes are right, so it is adopted as is.
    assert_eq!(node.cache.sync_once().await.unwrap().completed, ["doc-cs"]);
    let a = node.as_student("/api/content/doc-cs", &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, node.doc_cs);

    // Different bytes of the same size: not served, and replaced by a fresh download.
    std::thread::sleep(Duration::from_millis(20));
    let mut bad = node.doc_cs.clone();
    bad[0] ^= 0xFF;
    std::fs::write(&file, &bad).unwrap();
    node.as_student("/api/content/doc-cs", &[]).await.error(StatusCode::NOT_FOUND, "NOT_FOUND");
    assert_eq!(node.cache.sync_once().await.unwrap().completed, ["doc-cs"]);
    assert_eq!(node.as_student("/api/content/doc-cs", &[]).await.body, node.doc_cs);
}

#[tokio::test]
async fn head_requests_get_the_headers_without_a_body_and_are_not_logged_as_access() {
    let node = node().await;
    let res = node
        .client
        .head(format!("{}/api/content/doc-cs", node.base))
        .bearer_auth(node.token("student-a"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_LENGTH], DOC_CS_LEN.to_string().as_str());
    assert_eq!(res.headers()[header::ETAG], format!("\"{}\"", sha256_hex(&node.doc_cs)).as_str());
    assert!(res.bytes().await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(node.content_events().is_empty());
}
