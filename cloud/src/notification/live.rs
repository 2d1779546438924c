//! The live stream of a person's new in-app notifications, across every api instance.
//!
//! The sender marks an in-app row delivered and, in the same transaction, `NOTIFY`s
//! [`CHANNEL`] with the recipient and the notification ([`notify`]). PostgreSQL sends the
//! notification when (and only if) that transaction commits, to every session that `LISTEN`s:
//! each api instance keeps one such connection ([`Live::start`]) and fans what it hears out to
//! its open streams (`GET /api/v1/me/notifications/stream`, server-sent events). So a notification
//! reaches every open session of its recipient whichever instance serves it, and never one that
//! was rolled back. PostgreSQL rather than Redis pub/sub: the notification is tied to the commit,
//! and the worker needs no second store.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, NoTls, Transaction};
use uuid::Uuid;

use crate::error::Result;

/// The PostgreSQL notification channel.
pub const CHANNEL: &str = "nimbus_inbox";

/// Deliveries a slow stream may fall behind by before it is told to resynchronise.
const BUFFER: usize = 1024;

/// One in-app notification delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivered {
    /// The recipient.
    pub user_id: String,
    /// The notification.
    pub notification_id: Uuid,
}

/// Announces `delivered` to every listening api instance when `tx` commits.
pub async fn notify(tx: &Transaction<'_>, delivered: &Delivered) -> Result<()> {
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &serde_json::to_string(delivered)?]).await?;
    Ok(())
}

/// An api instance's listener, shared by its streams.
#[derive(Clone)]
pub struct Live {
    sender: Arc<broadcast::Sender<Arc<Delivered>>>,
}

impl Live {
    /// Listens on `database_url` (the notification database) in the background, reconnecting
    /// after a failure, until every handle of this `Live` is dropped.
    pub fn start(database_url: String) -> Live {
        let sender = Arc::new(broadcast::channel(BUFFER).0);
        tokio::spawn(listen(database_url, Arc::downgrade(&sender)));
        Live { sender }
    }

    /// A receiver of every delivery from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Delivered>> {
        self.sender.subscribe()
    }
}

async fn listen(url: String, sender: Weak<broadcast::Sender<Arc<Delivered>>>) {
    let mut wait = Duration::from_millis(250);
    while sender.strong_count() > 0 {
        match listen_once(&url, &sender).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %crate::consumer::error_summary(&e), "live notifications: listener lost; reconnecting");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// One connection's life: `Ok` when nobody needs the listener any more.
async fn listen_once(url: &str, sender: &Weak<broadcast::Sender<Arc<Delivered>>>) -> Result<()> {
    let (client, mut connection) = tokio_postgres::connect(url, NoTls).await?;
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    // LISTEN, then keep the client (and so the connection) alive while the messages are read.
    let listen = async move {
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        std::future::pending::<()>().await;
        Ok::<_, tokio_postgres::Error>(client)
    };
    tokio::pin!(listen);
    loop {
        let check = tokio::time::sleep(Duration::from_secs(5));
        tokio::select! {
            r = &mut listen => { r?; }
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    let Some(sender) = sender.upgrade() else { return Ok(()) };
                    match serde_json::from_str::<Delivered>(n.payload()) {
                        Ok(d) => { let _ = sender.send(Arc::new(d)); }
                        Err(e) => tracing::warn!(payload = n.payload(), error = %e, "live notifications: unreadable payload"),
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err(crate::error::Error::Config("live notifications: connection closed".into())),
            },
            _ = check => {
                if sender.strong_count() == 0 {
                    return Ok(());
                }
            }
        }
    }
}
