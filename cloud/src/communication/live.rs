//! Live delivery: new messages, edits, read receipts and typing pushed over a WebSocket to every
//! connected participant, whichever api instance serves them.
//!
//! The instance that commits a change publishes it on one Redis pub/sub channel with the
//! conversation's current participants ([`Bus::publish`]); every api instance keeps one
//! subscription to that channel ([`Hub`]) and fans what it hears out to its sockets, each of
//! which forwards only what is addressed to its user.
//!
//! Redis pub/sub is fire-and-forget, so PostgreSQL stays the source of truth and the socket
//! repairs any loss from it: a socket remembers the last `seq` it delivered per conversation,
//! drops a push it has already delivered, and reads the missing messages from the database when
//! a push skips ahead, when its instance fell behind, or when the hub reconnected to Redis. A
//! client that reconnects sends `resume` with its last `seq` per conversation and gets the rest
//! from the database, then live: no gap, nothing twice, in order.
//!
//! Presence: while a socket is open its user counts as connected ([`Bus::online`], a sorted set
//! per user of socket ids by expiry, refreshed every [`CHECK_EVERY`]); a message alerts only the
//! recipients who are not (see [`super::messages`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message as Frame, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::messages::{self, Message, Since};
use crate::error::{Error, Result};
use crate::http::metrics::{Kind, Metric, Registry};
use crate::http::{Access, ApiRoutes, AppError, Bearer, Caller};

/// The WebSocket subprotocol a client asks for (with `bearer.<token>` when it cannot send an
/// `Authorization` header, as browsers cannot).
pub const PROTOCOL: &str = "nimbus.v1";

/// How often a socket re-checks its token (revoked or expired: closed with [`CLOSE_TOKEN`]),
/// refreshes its presence and pings its client.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);

/// A socket's presence lasts this long past its last refresh (so a crashed instance's sockets
/// stop counting soon).
const PRESENCE_TTL: Duration = Duration::from_secs(20);

/// A client silent (not even a pong) for this long is gone.
const IDLE_LIMIT: Duration = Duration::from_secs(60);

/// The close code of a socket whose token was revoked or expired.
pub const CLOSE_TOKEN: u16 = 4401;

/// The largest frame a client may send.
const MAX_FRAME: usize = 64 * 1024;

/// Pushes an instance may fall behind by before its sockets resynchronise from the database.
const BUFFER: usize = 4096;

/// How long a socket waits for the client's first frame (`resume`) before going live anyway.
pub const FIRST_FRAME: Duration = Duration::from_secs(2);

/// A typing notice per conversation per socket at most this often.
const TYPING_EVERY: Duration = Duration::from_secs(2);

/// Open sockets on this instance.
pub const LIVE_SOCKETS: Metric =
    Metric { name: "nimbus_live_sockets", help: "Open live conversation sockets", kind: Kind::Gauge };
/// Pushes written to sockets, by type.
pub const LIVE_PUSHES: Metric =
    Metric { name: "nimbus_live_pushes_total", help: "Pushes written to live sockets", kind: Kind::Counter };
/// Messages a socket read from the database to close a gap or resume.
pub const LIVE_REPAIRED: Metric = Metric {
    name: "nimbus_live_repaired_messages_total",
    help: "Messages read from the database to fill a live gap or resume",
    kind: Kind::Counter,
};

/// What a socket pushes to its client (JSON text frames, `type` first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Push {
    /// The socket is live: the messages a first `resume` asked for follow, then every push.
    Ready,
    /// A new message (each exactly once per socket, in `seq` order per conversation).
    Message {
        /// The message.
        message: Message,
    },
    /// A message edited or deleted (a tombstone): same `seq`, new content.
    MessageUpdated {
        /// The message as it is now.
        message: Message,
    },
    /// A participant's read position moved.
    Read {
        /// The conversation.
        conversation_id: Uuid,
        /// The reader.
        user_id: String,
        /// Everything up to here is read.
        seq: i64,
    },
    /// A participant is typing.
    Typing {
        /// The conversation.
        conversation_id: Uuid,
        /// Who types.
        user_id: String,
    },
    /// A client frame was refused (the socket stays open).
    Error {
        /// The seed's error code (`VALIDATION_ERROR`, `NOT_FOUND`, …).
        code: String,
        /// Why.
        message: String,
    },
}

impl Push {
    fn kind(&self) -> &'static str {
        match self {
            Push::Ready => "ready",
            Push::Message { .. } => "message",
            Push::MessageUpdated { .. } => "message_updated",
            Push::Read { .. } => "read",
            Push::Typing { .. } => "typing",
            Push::Error { .. } => "error",
        }
    }
}

/// What a client may send.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Deliver every message after these positions (conversation id → last `seq` seen), then
    /// live; a conversation not named is live from now on.
    Resume {
        /// Last `seq` per conversation.
        after: HashMap<Uuid, i64>,
    },
    /// The client's user is typing in a conversation.
    Typing {
        /// The conversation.
        conversation_id: Uuid,
    },
}

/// A push and who it is for, as published.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// The recipients (user ids).
    pub to: Vec<String>,
    /// The push.
    pub push: Push,
}

/// Publishing and presence: Redis, under the API's key prefix.
#[derive(Clone)]
pub struct Bus {
    conn: ConnectionManager,
    prefix: String,
}

impl Bus {
    /// The bus over `conn`, its keys and channel starting with `prefix`.
    pub fn new(conn: ConnectionManager, prefix: &str) -> Bus {
        Bus { conn, prefix: prefix.to_owned() }
    }

    /// The pub/sub channel.
    pub fn channel(&self) -> String {
        format!("{}communication:live", self.prefix)
    }

    fn presence_key(&self, user: &str) -> String {
        format!("{}presence:{user}", self.prefix)
    }

    /// Publishes `push` to `to`. Best effort: a lost push is repaired from the database, so a
    /// failure is logged, not returned.
    pub async fn publish(&self, to: Vec<String>, push: Push) {
        let Ok(payload) = serde_json::to_string(&Envelope { to, push }) else { return };
        let mut c = self.conn.clone();
        let sent: redis::RedisResult<i64> =
            redis::cmd("PUBLISH").arg(self.channel()).arg(payload).query_async(&mut c).await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "live: cannot publish; sockets repair from the database on the next push");
        }
    }

    /// Publishes `push` to the conversation's current participants.
    pub async fn publish_to_conversation(&self, db: &impl tokio_postgres::GenericClient, id: Uuid, push: Push) {
        match participants(db, id).await {
            Ok(to) => self.publish(to, push).await,
            Err(e) => tracing::warn!(error = %e, "live: cannot read the participants"),
        }
    }

    /// Which of `users` have a live socket open on any instance. Fails open: when Redis cannot
    /// answer, nobody counts as connected (they get a notification rather than nothing).
    pub async fn online(&self, users: &[String]) -> HashSet<String> {
        if users.is_empty() {
            return HashSet::new();
        }
        let now = now_ms();
        let mut pipe = redis::pipe();
        for u in users {
            pipe.cmd("ZCOUNT").arg(self.presence_key(u)).arg(now).arg("+inf");
        }
        let mut c = self.conn.clone();
        match pipe.query_async::<Vec<i64>>(&mut c).await {
            Ok(counts) => users.iter().zip(counts).filter(|(_, n)| *n > 0).map(|(u, _)| u.clone()).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "live: presence unavailable; everyone counts as not connected");
                HashSet::new()
            }
        }
    }

    async fn present(&self, user: &str, socket: Uuid) {
        let key = self.presence_key(user);
        let now = now_ms();
        let until = now + PRESENCE_TTL.as_millis() as i64;
        let mut c = self.conn.clone();
        let done: redis::RedisResult<()> = redis::pipe()
            .cmd("ZADD")
            .arg(&key)
            .arg(until)
            .arg(socket.to_string())
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(now)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(PRESENCE_TTL.as_millis() as i64)
            .ignore()
            .query_async(&mut c)
            .await;
        if let Err(e) = done {
            tracing::warn!(error = %e, "live: cannot record presence");
        }
    }

    async fn absent(&self, user: &str, socket: Uuid) {
        let mut c = self.conn.clone();
        let done: redis::RedisResult<i64> =
            redis::cmd("ZREM").arg(self.presence_key(user)).arg(socket.to_string()).query_async(&mut c).await;
        if let Err(e) = done {
            tracing::warn!(error = %e, "live: cannot clear presence (it expires by itself)");
        }
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The current participants of conversation `id`.
pub async fn participants(db: &impl tokio_postgres::GenericClient, id: Uuid) -> Result<Vec<String>> {
    Ok(db
        .query("SELECT user_id FROM conversation_participants WHERE conversation_id = $1 AND left_at IS NULL", &[&id])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// What the hub hands its sockets.
#[derive(Debug)]
enum Heard {
    Push(Box<Envelope>),
    /// The subscription was (re)established: pushes may have been missed meanwhile.
    Resync,
}

/// An api instance's subscription, shared by its sockets.
#[derive(Clone)]
pub struct Hub {
    sender: Arc<broadcast::Sender<Arc<Heard>>>,
    subscribed: watch::Receiver<bool>,
}

impl Hub {
    /// Subscribes to `bus`'s channel on `redis_url` in the background, resubscribing after a
    /// failure, until every handle of this hub is dropped.
    pub fn start(redis_url: String, channel: String) -> Hub {
        let sender = Arc::new(broadcast::channel(BUFFER).0);
        let (tell, subscribed) = watch::channel(false);
        tokio::spawn(subscribe(redis_url, channel, Arc::downgrade(&sender), tell));
        Hub { sender, subscribed }
    }

    /// Waits (at most `limit`) until the subscription is up.
    async fn ready(&self, limit: Duration) -> bool {
        let mut s = self.subscribed.clone();
        tokio::time::timeout(limit, s.wait_for(|up| *up)).await.is_ok_and(|r| r.is_ok())
    }
}

async fn subscribe(url: String, channel: String, sender: Weak<broadcast::Sender<Arc<Heard>>>, up: watch::Sender<bool>) {
    let mut wait = Duration::from_millis(250);
    while sender.strong_count() > 0 {
        match subscribe_once(&url, &channel, &sender, &up).await {
            Ok(()) => return,
            Err(e) => {
                let _ = up.send(false);
                tracing::warn!(error = %e, "live: Redis subscription lost; resubscribing");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// One subscription's life: `Ok` when nobody needs the hub any more.
async fn subscribe_once(
    url: &str,
    channel: &str,
    sender: &Weak<broadcast::Sender<Arc<Heard>>>,
    up: &watch::Sender<bool>,
) -> Result<()> {
    let client = redis::Client::open(url)?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    let _ = up.send(true);
    if let Some(s) = sender.upgrade() {
        let _ = s.send(Arc::new(Heard::Resync));
    }
    let mut messages = pubsub.into_on_message();
    loop {
        let check = tokio::time::sleep(Duration::from_secs(5));
        tokio::select! {
            m = messages.next() => {
                let Some(m) = m else { return Err(Error::Config("live: Redis closed the subscription".into())) };
                let Some(s) = sender.upgrade() else { return Ok(()) };
                let payload: String = m.get_payload().unwrap_or_default();
                match serde_json::from_str::<Envelope>(&payload) {
                    Ok(e) => { let _ = s.send(Arc::new(Heard::Push(Box::new(e)))); }
                    Err(e) => tracing::warn!(error = %e, "live: unreadable push"),
                }
            }
            _ = check => if sender.strong_count() == 0 { return Ok(()) },
        }
    }
}

/// What a live socket asks of the API about its token, every [`CHECK_EVERY`]: `Err` with why
/// once it is revoked or expired. The API role implements it (a service does not import roles).
pub trait Tokens: Send + Sync {
    /// `Ok` while `token` is still accepted.
    fn still_valid<'a>(
        &'a self,
        token: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = std::result::Result<(), String>> + Send + 'a>>;
}

/// The live socket's state: the token check, the metrics, the database, the bus and the hub.
#[derive(Clone)]
pub struct LiveApi {
    tokens: Arc<dyn Tokens>,
    registry: Arc<Registry>,
    db: deadpool_postgres::Pool,
    bus: Bus,
    hub: Hub,
    sockets: Arc<AtomicI64>,
    shutdown: CancellationToken,
}

/// The live route, with this instance's subscription; sockets re-check their tokens with
/// `tokens`, count into `registry` and close with 1001 when `shutdown` is cancelled (the client
/// reconnects, to another instance, and resumes).
pub async fn live_routes(
    config: &crate::config::CloudConfig,
    tokens: Arc<dyn Tokens>,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
) -> Result<ApiRoutes> {
    let client = redis::Client::open(config.api.redis_url.as_str())?;
    let bus = Bus::new(ConnectionManager::new(client).await?, &config.api.redis_prefix);
    let hub = Hub::start(config.api.redis_url.clone(), bus.channel());
    let db = crate::db::pool(&config.database_url_for(super::DATABASE), 4)?;
    let state = LiveApi { tokens, registry, db, bus, hub, sockets: Arc::default(), shutdown };
    Ok(ApiRoutes::new()
        .route(Method::GET, "/api/v1/conversations/live", Access::Authenticated, get(connect))
        .with_state(state))
}

/// Opens the caller's live socket. Authenticated at the upgrade by `Authorization: Bearer` or,
/// from a browser, the subprotocol `bearer.<token>` beside `nimbus.v1`. Pushes JSON frames
/// ([`Push`]); takes `resume` and `typing` frames ([`ClientFrame`]). Closed with 4401 when the
/// token is revoked or expires.
#[utoipa::path(get, path = "/api/v1/conversations/live", tag = "communication",
    params(
        ("Connection" = String, Header, description = "A list of tokens with `upgrade` (any case)", pattern = r"^([\t\x20-\x2b\x2d-\x7e]*,)*[\t ]*[Uu][Pp][Gg][Rr][Aa][Dd][Ee][\t ]*(,[\t\x20-\x2b\x2d-\x7e]*)*$"),
        ("Upgrade" = String, Header, description = "`websocket` (any case)", pattern = "^[Ww][Ee][Bb][Ss][Oo][Cc][Kk][Ee][Tt]$"),
        ("Sec-WebSocket-Version" = String, Header, description = "`13`", pattern = "^13$"),
        ("Sec-WebSocket-Key" = String, Header, description = "The client's nonce (RFC 6455)"),
        ("Sec-WebSocket-Protocol" = Option<String>, Header, description = "`nimbus.v1`, with `bearer.<token>` when the client cannot send `Authorization` (browsers)"),
    ),
    responses((status = 101, description = "WebSocket: pushes `ready`, `message`, `message_updated`, `read`, `typing`, `error`; takes `resume` and `typing`"),
              (status = 400, description = "Not a WebSocket upgrade: the `Connection`, `Upgrade`, `Sec-WebSocket-Version` or `Sec-WebSocket-Key` header is missing or wrong (`VALIDATION_ERROR`)"),
              (status = 401, description = "No valid token"),
              (status = 426, description = "The connection cannot be upgraded (e.g. HTTP/2): `UPGRADE_REQUIRED`")))]
async fn connect(
    State(s): State<LiveApi>,
    Extension(caller): Extension<Caller>,
    Extension(Bearer(token)): Extension<Bearer>,
    ws: std::result::Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> std::result::Result<Response, AppError> {
    let ws = ws.map_err(|r| {
        let status = r.status();
        let code = if status == StatusCode::UPGRADE_REQUIRED { "UPGRADE_REQUIRED" } else { "VALIDATION_ERROR" };
        AppError::new(status, code, "This route is a WebSocket")
            .with_details(serde_json::json!({ "problem": r.body_text() }))
    })?;
    Ok(ws
        .protocols([PROTOCOL])
        .max_message_size(MAX_FRAME)
        .on_upgrade(move |socket| async move { Socket::new(s, caller.user_id, token).run(socket).await }))
}

/// One open socket.
struct Socket {
    s: LiveApi,
    user: String,
    token: String,
    id: Uuid,
    /// The last `seq` delivered per conversation.
    seen: HashMap<Uuid, i64>,
    typed: HashMap<Uuid, Instant>,
}

/// Why a socket ends.
enum End {
    Gone,
    Token(String),
    Shutdown,
}

impl Socket {
    fn new(s: LiveApi, user: String, token: String) -> Socket {
        Socket { s, user, token, id: Uuid::new_v4(), seen: HashMap::new(), typed: HashMap::new() }
    }

    async fn run(mut self, socket: WebSocket) {
        let registry = self.s.registry.clone();
        let mut heard = self.s.hub.sender.subscribe();
        let (mut out, mut inbound) = socket.split();
        if !self.s.hub.ready(Duration::from_secs(10)).await {
            let _ = out.send(close(1011, "live delivery unavailable")).await;
            return;
        }
        let open = self.s.sockets.fetch_add(1, Ordering::Relaxed) + 1;
        registry.set(&LIVE_SOCKETS, &[], open as f64);
        self.s.bus.present(&self.user, self.id).await;
        let mut last_heard = Instant::now();
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.tick().await;
        let end = 'socket: {
            // A reconnecting client's first frame is `resume`: its positions are taken (and the
            // gap filled) before any live push, so nothing arrives out of order.
            let mut first = Vec::new();
            if let Ok(frame) = tokio::time::timeout(FIRST_FRAME, inbound.next()).await {
                match frame {
                    Some(Ok(Frame::Text(text))) => first = self.client_frame(&text).await,
                    Some(Ok(Frame::Close(_))) | None | Some(Err(_)) => break 'socket End::Gone,
                    Some(Ok(_)) => {}
                }
            }
            first.insert(0, Push::Ready);
            if self.write(&mut out, &first).await.is_err() {
                break 'socket End::Gone;
            }
            loop {
                let pushes = tokio::select! {
                    frame = inbound.next() => {
                        last_heard = Instant::now();
                        match frame {
                            Some(Ok(Frame::Text(text))) => self.client_frame(&text).await,
                            Some(Ok(Frame::Binary(_))) => vec![refused("VALIDATION_ERROR", "frames are JSON text")],
                            Some(Ok(Frame::Close(_))) | None | Some(Err(_)) => break 'socket End::Gone,
                            Some(Ok(_)) => continue,
                        }
                    }
                    h = heard.recv() => match h {
                        Ok(h) => match &*h {
                            Heard::Push(e) => self.pushed(e).await,
                            Heard::Resync => self.catch_up_all().await,
                        },
                        Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up_all().await,
                        Err(broadcast::error::RecvError::Closed) => break 'socket End::Gone,
                    },
                    _ = self.s.shutdown.cancelled() => break 'socket End::Shutdown,
                    _ = tick.tick() => {
                        if let Err(why) = self.s.tokens.still_valid(&self.token).await {
                            break 'socket End::Token(why);
                        }
                        if last_heard.elapsed() > IDLE_LIMIT {
                            break 'socket End::Gone;
                        }
                        self.s.bus.present(&self.user, self.id).await;
                        if out.send(Frame::Ping(Vec::new())).await.is_err() {
                            break 'socket End::Gone;
                        }
                        continue;
                    }
                };
                if self.write(&mut out, &pushes).await.is_err() {
                    break 'socket End::Gone;
                }
            }
        };
        match end {
            End::Token(why) => {
                let _ = out.send(close(CLOSE_TOKEN, &why)).await;
            }
            End::Shutdown => {
                let _ = out.send(close(1001, "the server is stopping; reconnect and resume")).await;
            }
            End::Gone => {}
        }
        let open = self.s.sockets.fetch_sub(1, Ordering::Relaxed) - 1;
        registry.set(&LIVE_SOCKETS, &[], open as f64);
        self.s.bus.absent(&self.user, self.id).await;
    }

    async fn write(
        &self,
        out: &mut futures_util::stream::SplitSink<WebSocket, Frame>,
        pushes: &[Push],
    ) -> std::result::Result<(), axum::Error> {
        for p in pushes {
            let text = serde_json::to_string(p).unwrap_or_default();
            out.feed(Frame::Text(text)).await?;
            self.s.registry.add(&LIVE_PUSHES, &[("type", p.kind())], 1);
        }
        if !pushes.is_empty() {
            out.flush().await?;
        }
        Ok(())
    }

    async fn client_frame(&mut self, text: &str) -> Vec<Push> {
        match serde_json::from_str::<ClientFrame>(text) {
            Err(e) => vec![refused("VALIDATION_ERROR", &format!("not a client frame: {e}"))],
            Ok(ClientFrame::Resume { after }) => {
                let mut pushes = Vec::new();
                for (conversation, seq) in after {
                    if seq < 0 {
                        pushes.push(refused("VALIDATION_ERROR", "a resume position must not be negative"));
                        continue;
                    }
                    let current = self.seen.get(&conversation).copied().unwrap_or(seq).max(seq);
                    self.seen.insert(conversation, current);
                    pushes.extend(self.catch_up(conversation).await);
                }
                pushes
            }
            Ok(ClientFrame::Typing { conversation_id }) => {
                if self.typed.get(&conversation_id).is_some_and(|at| at.elapsed() < TYPING_EVERY) {
                    return Vec::new();
                }
                self.typed.insert(conversation_id, Instant::now());
                let to = match self.s.db.get().await {
                    Ok(db) => participants(&**db, conversation_id).await,
                    Err(e) => Err(e.into()),
                };
                match to {
                    Ok(to) if to.contains(&self.user) => {
                        self.s.bus.publish(to, Push::Typing { conversation_id, user_id: self.user.clone() }).await;
                        Vec::new()
                    }
                    Ok(_) => vec![refused("NOT_FOUND", &format!("conversation {conversation_id} not found"))],
                    Err(e) => vec![refused("INTERNAL", &crate::consumer::error_summary(&e))],
                }
            }
        }
    }

    /// What a published push becomes on this socket.
    async fn pushed(&mut self, e: &Envelope) -> Vec<Push> {
        if !e.to.contains(&self.user) {
            return Vec::new();
        }
        match &e.push {
            // The typist's own sockets do not hear it.
            Push::Typing { user_id, .. } if *user_id == self.user => Vec::new(),
            Push::Message { message } => {
                let c = message.conversation_id;
                match self.seen.get(&c).copied() {
                    Some(last) if message.seq <= last => Vec::new(),
                    Some(last) if message.seq > last + 1 => self.catch_up(c).await,
                    _ => {
                        self.seen.insert(c, message.seq);
                        vec![e.push.clone()]
                    }
                }
            }
            other => vec![other.clone()],
        }
    }

    /// The messages of `conversation` after the last one delivered, from the database.
    async fn catch_up(&mut self, conversation: Uuid) -> Vec<Push> {
        let Some(mut last) = self.seen.get(&conversation).copied() else { return Vec::new() };
        let mut pushes = Vec::new();
        let mut db = match self.s.db.get().await {
            Ok(db) => db,
            Err(e) => return vec![refused("INTERNAL", &e.to_string())],
        };
        loop {
            let page = Since { after_seq: last, limit: Some(messages::MAX_PAGE) };
            match messages::since(&mut db, &self.user, conversation, &page).await {
                Ok(batch) => {
                    let full = batch.len() as i64 == messages::MAX_PAGE;
                    self.s.registry.add(&LIVE_REPAIRED, &[], batch.len() as u64);
                    for m in batch {
                        last = m.seq;
                        pushes.push(Push::Message { message: m });
                    }
                    if !full {
                        break;
                    }
                }
                Err(Error::NotFound { .. }) => {
                    self.seen.remove(&conversation);
                    pushes.push(refused("NOT_FOUND", &format!("conversation {conversation} not found")));
                    return pushes;
                }
                Err(e) => {
                    pushes.push(refused("INTERNAL", &crate::consumer::error_summary(&e)));
                    break;
                }
            }
        }
        self.seen.insert(conversation, last);
        pushes
    }

    async fn catch_up_all(&mut self) -> Vec<Push> {
        let mut pushes = Vec::new();
        let conversations: Vec<Uuid> = self.seen.keys().copied().collect();
        for c in conversations {
            pushes.extend(self.catch_up(c).await);
        }
        pushes
    }
}

fn refused(code: &str, message: &str) -> Push {
    Push::Error { code: code.to_owned(), message: message.to_owned() }
}

fn close(code: u16, reason: &str) -> Frame {
    let reason: String = reason.chars().take(100).collect();
    Frame::Close(Some(CloseFrame { code, reason: reason.into() }))
}

/// The route's OpenAPI path.
#[derive(utoipa::OpenApi)]
#[openapi(paths(connect))]
pub struct Doc;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_are_resume_or_typing_and_nothing_else() {
        let id = Uuid::new_v4();
        let resume: ClientFrame =
            serde_json::from_str(&format!(r#"{{"type":"resume","after":{{"{id}":7}}}}"#)).unwrap();
        assert_eq!(resume, ClientFrame::Resume { after: HashMap::from([(id, 7)]) });
        let typing: ClientFrame =
            serde_json::from_str(&format!(r#"{{"type":"typing","conversation_id":"{id}"}}"#)).unwrap();
        assert_eq!(typing, ClientFrame::Typing { conversation_id: id });
        for bad in [
            r#"{"type":"send","text":"x"}"#,
            r#"{"type":"typing"}"#,
            "[]",
            "typing",
            r#"{"type":"resume","after":{"x":1}}"#,
        ] {
            assert!(serde_json::from_str::<ClientFrame>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pushes_are_json_with_their_type_first() {
        let p = Push::Typing { conversation_id: Uuid::nil(), user_id: "u".into() };
        let text = serde_json::to_string(&p).unwrap();
        assert!(text.starts_with(r#"{"type":"typing""#), "{text}");
        assert_eq!(serde_json::from_str::<Push>(&text).unwrap(), p);
    }
}
