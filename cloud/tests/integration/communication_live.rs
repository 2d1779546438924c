//! Live conversations over real WebSockets: two api instances on real TCP listeners sharing
//! PostgreSQL and Redis. A message sent through one reaches the sockets on the other; a socket
//! cut off during a burst resumes, on the other instance, with every message once and in order;
//! read receipts and typing reach the others; a revoked token closes the socket; a connected
//! participant is not sent a notification while one who is not connected is.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use crate::common::TestDb;
use crate::common::api::{ADMIN_EMAIL, ADMIN_PASSWORD, USER_PASSWORD, serve, test_config};

/// Api instances sharing one set of databases and one Redis prefix.
struct Cluster {
    addrs: Vec<SocketAddr>,
    http: reqwest::Client,
    stop: CancellationToken,
    dbs: Vec<TestDb>,
    communication: deadpool_postgres::Pool,
    admin: String,
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

impl Cluster {
    async fn start(instances: usize) -> Cluster {
        let (config, dbs) = test_config().await;
        let stop = CancellationToken::new();
        let mut addrs = Vec::new();
        for _ in 0..instances {
            addrs.push(serve(&config, &stop).await.0);
        }
        let http = reqwest::Client::new();
        let communication =
            nimbus_cloud::db::pool(&config.database_url_for(nimbus_cloud::communication::DATABASE), 2).unwrap();
        let mut c = Cluster { addrs, http, stop, dbs, communication, admin: String::new() };
        c.admin = c.login(0, ADMIN_EMAIL, ADMIN_PASSWORD).await;
        c
    }

    async fn call(
        &self,
        i: usize,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self.http.request(method, format!("http://{}{path}", self.addrs[i])).bearer_auth(token);
        if let Some(b) = body {
            r = r.header("content-type", "application/json").body(b.to_string());
        }
        let res = r.send().await.unwrap();
        let status = res.status().as_u16();
        (status, serde_json::from_str(&res.text().await.unwrap()).unwrap_or(Value::Null))
    }

    async fn login(&self, i: usize, email: &str, password: &str) -> String {
        let res = self
            .http
            .post(format!("http://{}/api/v1/auth/login", self.addrs[i]))
            .header("content-type", "application/json")
            .body(json!({"email": email, "password": password}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        serde_json::from_str::<Value>(&res.text().await.unwrap()).unwrap()["access_token"].as_str().unwrap().to_owned()
    }

    /// A new student: `(id, token)`.
    async fn student(&self) -> (String, String) {
        let email = format!("live-{}@campus.test", uuid::Uuid::new_v4().simple());
        let body = json!({"email": email, "password": USER_PASSWORD, "role": "student", "first_name": "Live"});
        let (status, user) =
            self.call(0, reqwest::Method::POST, "/api/v1/users", &self.admin.clone(), Some(body)).await;
        assert_eq!(status, 201, "{user}");
        (user["id"].as_str().unwrap().to_owned(), self.login(0, &email, USER_PASSWORD).await)
    }

    async fn direct(&self, token: &str, with: &str) -> String {
        let body = json!({"conversation_type": "direct", "participant_ids": [with]});
        let (status, c) = self.call(0, reqwest::Method::POST, "/api/v1/conversations", token, Some(body)).await;
        assert!(status == 201 || status == 200, "{status} {c}");
        c["id"].as_str().unwrap().to_owned()
    }

    async fn send(&self, i: usize, token: &str, conversation: &str, text: &str) -> Value {
        let path = format!("/api/v1/conversations/{conversation}/messages");
        let (status, m) = self.call(i, reqwest::Method::POST, &path, token, Some(json!({"text": text}))).await;
        assert_eq!(status, 201, "{m}");
        m
    }

    /// A socket on instance `i`, the token in the `Authorization` header or (as a browser must)
    /// in the `bearer.<token>` subprotocol, after its first frame (`resume`) and `ready`.
    async fn socket(&self, i: usize, token: &str, as_browser: bool, after: Value) -> Socket {
        let mut req = format!("ws://{}/api/v1/conversations/live", self.addrs[i]).into_client_request().unwrap();
        if as_browser {
            req.headers_mut().insert("sec-websocket-protocol", format!("nimbus.v1, bearer.{token}").parse().unwrap());
        } else {
            req.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
            req.headers_mut().insert("sec-websocket-protocol", "nimbus.v1".parse().unwrap());
        }
        let (mut ws, res) = tokio_tungstenite::connect_async(req).await.expect("upgrade");
        assert_eq!(res.headers()["sec-websocket-protocol"], "nimbus.v1");
        ws.send(Frame::text(json!({"type": "resume", "after": after}).to_string())).await.unwrap();
        assert_eq!(next(&mut ws).await["type"], "ready");
        ws
    }

    async fn alerts_for(&self, user: &str) -> usize {
        let c = self.communication.get().await.unwrap();
        let rows = c.query("SELECT payload FROM event_outbox", &[]).await.unwrap();
        rows.iter()
            .map(|r| serde_json::from_str::<Value>(r.get::<_, &str>(0)).unwrap())
            .filter(|e| e["event_type"] == "SEND_NOTIFICATION" && e["payload"]["recipient_user_id"] == user)
            .count()
    }

    async fn finish(self) {
        self.stop.cancel();
        for db in self.dbs {
            db.drop_now().await;
        }
    }
}

/// The next push (pings and pongs skipped), within 10 s.
async fn next(ws: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a push within 10 s");
        match frame.expect("the socket is open").expect("a frame") {
            Frame::Text(t) => return serde_json::from_str(&t).unwrap(),
            Frame::Close(c) => panic!("closed: {c:?}"),
            _ => continue,
        }
    }
}

/// The code of the close frame the server sends within 15 s (after `why`).
async fn closed_with(ws: &mut Socket, why: &str) -> u16 {
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match ws.next().await {
                Some(Ok(Frame::Close(Some(f)))) => return u16::from(f.code),
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the socket is closed within 15 s of {why}"))
}

/// Pushes until one of type `kind`, which is returned (the others skipped are returned too).
async fn until(ws: &mut Socket, kind: &str) -> (Value, Vec<Value>) {
    let mut skipped = Vec::new();
    loop {
        let p = next(ws).await;
        if p["type"] == kind {
            return (p, skipped);
        }
        skipped.push(p);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_sent_through_one_instance_reaches_the_other_instances_sockets_with_receipts_and_typing() {
    let c = Cluster::start(2).await;
    let ((ana, ana_token), (ben, ben_token), (_, cem_token)) =
        (c.student().await, c.student().await, c.student().await);
    let conversation = c.direct(&ana_token, &ben).await;
    let mut ana_ws = c.socket(0, &ana_token, false, json!({})).await;
    let mut ben_ws = c.socket(1, &ben_token, true, json!({})).await;
    let mut cem_ws = c.socket(1, &cem_token, false, json!({})).await;

    let sent = c.send(0, &ana_token, &conversation, "<b>hello</b> from instance 0").await;
    let got = next(&mut ben_ws).await;
    assert_eq!(got["type"], "message", "{got}");
    assert_eq!(got["message"], sent, "the pushed message is the one the API answered");
    assert_eq!(got["message"]["text"], "<b>hello</b> from instance 0", "markup stays text");
    assert_eq!(next(&mut ana_ws).await["message"]["id"], sent["id"], "the sender's own sockets get it too");

    // Typing reaches the other participant, not the typist's own socket.
    ben_ws.send(Frame::text(json!({"type": "typing", "conversation_id": conversation}).to_string())).await.unwrap();
    let typing = next(&mut ana_ws).await;
    assert_eq!((typing["type"].as_str(), typing["user_id"].as_str()), (Some("typing"), Some(ben.as_str())));

    // A read receipt through instance 1 reaches the sender on instance 0.
    let path = format!("/api/v1/conversations/{conversation}/read");
    assert_eq!(c.call(1, reqwest::Method::POST, &path, &ben_token, Some(json!({"seq": 1}))).await.0, 204);
    let read = next(&mut ana_ws).await;
    assert_eq!(
        (read["type"].as_str(), read["user_id"].as_str(), read["seq"].as_i64()),
        (Some("read"), Some(ben.as_str()), Some(1))
    );
    let (read_on_ben, skipped) = until(&mut ben_ws, "read").await;
    assert!(skipped.is_empty(), "Ben hears no typing of his own: {skipped:?}");
    assert_eq!(read_on_ben["user_id"], ben.as_str());

    // An edit reaches both.
    let path = format!("/api/v1/conversations/{conversation}/messages/{}", sent["id"].as_str().unwrap());
    assert_eq!(
        c.call(0, reqwest::Method::PATCH, &path, &ana_token, Some(json!({"text": "hello, edited"}))).await.0,
        200
    );
    let edited = next(&mut ben_ws).await;
    assert_eq!(
        (edited["type"].as_str(), edited["message"]["text"].as_str()),
        (Some("message_updated"), Some("hello, edited"))
    );

    // Bad frames are refused, the socket stays open.
    for bad in ["not json", r#"{"type":"send","text":"x"}"#] {
        ben_ws.send(Frame::text(bad)).await.unwrap();
        let e = next(&mut ben_ws).await;
        assert_eq!((e["type"].as_str(), e["code"].as_str()), (Some("error"), Some("VALIDATION_ERROR")), "{bad}");
    }
    let stranger = json!({"type": "typing", "conversation_id": conversation}).to_string();
    cem_ws.send(Frame::text(stranger)).await.unwrap();
    let e = next(&mut cem_ws).await;
    assert_eq!(e["code"], "NOT_FOUND", "a stranger cannot tell the conversation exists: {e}");

    // Cem, no participant, heard nothing of it: the first push of his own conversation is the
    // next frame he gets after that refusal.
    let own = c.direct(&cem_token, &ana).await;
    let mine = c.send(0, &ana_token, &own, "to Cem").await;
    assert_eq!(next(&mut cem_ws).await["message"]["id"], mine["id"]);

    // Without a token the upgrade is a 401 in the seed's shape; a plain GET is told to upgrade.
    let res = c.http.get(format!("http://{}/api/v1/conversations/live", c.addrs[0])).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(serde_json::from_str::<Value>(&res.text().await.unwrap()).unwrap()["code"], "UNAUTHORIZED");
    let (status, e) = c.call(0, reqwest::Method::GET, "/api/v1/conversations/live", &ana_token, None).await;
    assert!(status == 400 || status == 426, "{status} {e}");
    assert!(e["code"].is_string() && e["message"].is_string(), "{e}");

    // The instance counts its sockets.
    let metrics = c.http.get(format!("http://{}/metrics", c.addrs[1])).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("nimbus_live_sockets 2"), "{metrics}");

    // Stopping the instances closes their sockets as "going away" (1001): reconnect and resume.
    c.stop.cancel();
    for ws in [&mut ana_ws, &mut ben_ws, &mut cem_ws] {
        assert_eq!(closed_with(ws, "the shutdown").await, 1001);
    }
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_socket_cut_off_during_a_burst_of_100_resumes_on_the_other_instance_with_all_100_in_order_none_twice() {
    let c = Cluster::start(2).await;
    let ((_, ana_token), (ben, ben_token)) = (c.student().await, c.student().await);
    let conversation = c.direct(&ana_token, &ben).await;
    let mut ws = c.socket(1, &ben_token, false, json!({})).await;

    let burst = {
        let (http, addr, token, conversation) = (c.http.clone(), c.addrs[0], ana_token.clone(), conversation.clone());
        tokio::spawn(async move {
            for n in 1..=100 {
                let res = http
                    .post(format!("http://{addr}/api/v1/conversations/{conversation}/messages"))
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(json!({"text": format!("burst {n}")}).to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 201);
            }
        })
    };
    let mut seen: Vec<i64> = Vec::new();
    while seen.len() < 20 {
        let p = next(&mut ws).await;
        assert_eq!(p["type"], "message", "{p}");
        seen.push(p["message"]["seq"].as_i64().unwrap());
    }
    drop(ws); // cut off mid-burst, without a close
    let last = *seen.last().unwrap();
    let mut ws = c.socket(0, &ben_token, false, json!({ conversation.clone(): last })).await;
    while seen.last() != Some(&100) {
        let p = next(&mut ws).await;
        assert_eq!(p["type"], "message", "{p}");
        seen.push(p["message"]["seq"].as_i64().unwrap());
    }
    burst.await.unwrap();
    assert_eq!(seen, (1..=100).collect::<Vec<_>>(), "every message once, in order");
    // And the texts match their places.
    let path = format!("/api/v1/conversations/{conversation}/messages?after_seq=99");
    let (_, tail) = c.call(0, reqwest::Method::GET, &path, &ben_token, None).await;
    assert_eq!(tail[0]["text"], "burst 100");
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_token_closes_the_socket_and_only_those_not_connected_are_notified() {
    let c = Cluster::start(1).await;
    let ((_, ana_token), (ben, ben_token)) = (c.student().await, c.student().await);
    let conversation = c.direct(&ana_token, &ben).await;

    // Connected: the message arrives live and no notification is queued for Ben.
    let mut ws = c.socket(0, &ben_token, false, json!({})).await;
    c.send(0, &ana_token, &conversation, "you are here").await;
    assert_eq!(next(&mut ws).await["type"], "message");
    assert_eq!(c.alerts_for(&ben).await, 0, "a connected participant is not notified");

    // Logging out revokes the session: the open socket is closed with 4401 within a check.
    assert_eq!(c.call(0, reqwest::Method::POST, "/api/v1/auth/logout", &ben_token, None).await.0, 204);
    assert_eq!(closed_with(&mut ws, "the revocation").await, 4401);

    // Not connected any more: the next message queues one notification.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        c.send(0, &ana_token, &conversation, "are you there?").await;
        if c.alerts_for(&ben).await == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no notification once Ben's socket closed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.finish().await;
}
