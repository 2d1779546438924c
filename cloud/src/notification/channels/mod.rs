//! The delivery channels behind one trait: e-mail over SMTP ([`Email`], `lettre`), SMS through a
//! Twilio-style API ([`sms::Sms`]), push through FCM HTTP v1 ([`push::Push`]), and the in-app
//! inbox ([`InApp`], already stored in PostgreSQL when queued; delivering it announces it to the
//! recipient's open sessions). A channel only answers how a send went; [`super::sender`] decides
//! what that means for the queue row.

pub mod http;
pub mod push;
pub mod sms;

use std::future::Future;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use nimbus_core::event::notification::Channel as ChannelKind;
use uuid::Uuid;

use crate::config::Secret;
use crate::error::{Error, Result};

/// One message as a channel sends it.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The queue row; also the stable `Message-ID` of every attempt.
    pub queue_id: Uuid,
    /// The recipient's user id.
    pub user_id: String,
    /// E-mail address, phone number, device token or (in-app) the user id.
    pub address: String,
    /// Subject (e-mail) or title (push, in-app).
    pub subject: String,
    /// The rendered text.
    pub body: String,
}

/// Why a send did not go through, as the queue must treat it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// The provider could not be reached at all (connection refused, DNS, timeout before it
    /// answered). Not the message's fault: retried for as long as the message lives, without
    /// spending its attempts.
    #[error("provider unreachable: {0}")]
    Unavailable(String),
    /// The provider refused for now (SMTP 4xx, HTTP 429 or 5xx): retried per the policy,
    /// after `retry_after` when the provider said so.
    #[error("temporary failure: {reason}")]
    Transient {
        /// What the provider said.
        reason: String,
        /// The provider's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// The provider refused for good (SMTP 5xx, a malformed request): not retried.
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// The address itself is invalid or no longer registered (a push token the provider
    /// forgot): not retried, and the address is dropped.
    #[error("invalid address: {0}")]
    InvalidAddress(String),
}

/// A way to reach a person.
pub trait Channel: Send + Sync {
    /// Which channel this is.
    fn kind(&self) -> ChannelKind;

    /// Sends one message; `Ok` once the provider accepted it.
    fn send(&self, message: &Outgoing) -> impl Future<Output = Result<(), SendError>> + Send;
}

/// How to reach the SMTP server.
#[derive(Clone)]
pub struct EmailSettings {
    /// SMTP host.
    pub host: String,
    /// SMTP port.
    pub port: u16,
    /// The sender, `Name <address>` or an address.
    pub from: String,
    /// Account, when the server wants one (plain SMTP AUTH; use it only over a trusted link).
    pub username: Option<String>,
    /// Its password.
    pub password: Option<Secret>,
    /// Longest wait for the server per command.
    pub timeout: Duration,
}

impl std::fmt::Debug for EmailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("from", &self.from)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl EmailSettings {
    /// The settings of `config`, when it names an SMTP host.
    pub fn from_config(config: &crate::config::NotificationConfig) -> Option<Self> {
        Some(EmailSettings {
            host: config.smtp_host.clone()?,
            port: u16::try_from(config.smtp_port).ok()?,
            from: config.smtp_from.clone(),
            username: config.smtp_username.clone(),
            password: config.smtp_password.clone(),
            timeout: Duration::from_secs(10),
        })
    }
}

/// E-mail over SMTP.
#[derive(Clone)]
pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    domain: String,
}

impl Email {
    /// A channel for `settings`; fails on a sender that is not an address. Call it within a
    /// Tokio runtime (the connection pool runs a task).
    pub fn new(settings: &EmailSettings) -> Result<Self> {
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| Error::Config(format!("notification.email.from {:?}: {e}", settings.from)))?;
        let domain = from.email.domain().to_owned();
        // Connections are kept and reused (up to one per sender lane): a new TCP connection,
        // greeting and EHLO per message more than halved the rate into a local server.
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port)
            .timeout(Some(settings.timeout))
            .pool_config(PoolConfig::new().max_size(32).idle_timeout(Duration::from_secs(30)));
        if let (Some(user), Some(password)) = (&settings.username, &settings.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        Ok(Email { transport: builder.build(), from, domain })
    }

    /// The `Message-ID` every attempt of a queue row carries.
    pub fn message_id(&self, queue_id: Uuid) -> String {
        format!("<{queue_id}@{}>", self.domain)
    }
}

impl Channel for Email {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Email
    }

    async fn send(&self, message: &Outgoing) -> Result<(), SendError> {
        let to: Mailbox =
            message.address.parse().map_err(|e| SendError::InvalidAddress(format!("{}: {e}", message.address)))?;
        let email = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.clone())
            .message_id(Some(self.message_id(message.queue_id)))
            .header(ContentType::TEXT_PLAIN)
            .body(message.body.clone())
            .map_err(|e| SendError::Permanent(format!("cannot build the message: {e}")))?;
        match self.transport.send(email).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
            Err(e) if e.is_transient() => Err(SendError::Transient { reason: e.to_string(), retry_after: None }),
            Err(e) => Err(SendError::Unavailable(crate::consumer::error_summary(&e))),
        }
    }
}

/// The in-app inbox. The notification is visible to its recipient from the moment it is queued;
/// delivering it tells their open sessions.
#[derive(Clone, Default)]
pub struct InApp {
    live: Option<redis::aio::ConnectionManager>,
    prefix: String,
}

impl InApp {
    /// Announces deliveries on Redis (`<prefix>notifications:<user_id>`), where every api
    /// instance's live streams listen.
    pub fn with_redis(live: redis::aio::ConnectionManager, prefix: impl Into<String>) -> Self {
        InApp { live: Some(live), prefix: prefix.into() }
    }

    /// The Redis channel a user's live streams subscribe to.
    pub fn live_channel(prefix: &str, user_id: &str) -> String {
        format!("{prefix}notifications:{user_id}")
    }
}

impl Channel for InApp {
    fn kind(&self) -> ChannelKind {
        ChannelKind::InApp
    }

    async fn send(&self, message: &Outgoing) -> Result<(), SendError> {
        let Some(live) = &self.live else { return Ok(()) };
        let mut conn = live.clone();
        let payload = serde_json::json!({ "queue_id": message.queue_id, "title": message.subject }).to_string();
        redis::cmd("PUBLISH")
            .arg(Self::live_channel(&self.prefix, &message.user_id))
            .arg(payload)
            .query_async::<i64>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| SendError::Unavailable(format!("redis: {e}")))
    }
}

/// Every channel the sender may use; a channel that is not configured refuses its rows
/// permanently (the command asked for something this deployment cannot do).
#[derive(Clone, Default)]
pub struct Channels {
    /// SMTP, when configured.
    pub email: Option<Email>,
    /// The SMS provider, when configured.
    pub sms: Option<sms::Sms>,
    /// FCM, when configured.
    pub push: Option<push::Push>,
    /// The inbox (always there).
    pub in_app: InApp,
}

impl Channels {
    /// Sends `message` on `kind`.
    pub async fn send(&self, kind: ChannelKind, message: &Outgoing) -> Result<(), SendError> {
        match kind {
            ChannelKind::Email => match &self.email {
                Some(email) => email.send(message).await,
                None => Err(SendError::Permanent("e-mail is not configured".into())),
            },
            ChannelKind::Sms => match &self.sms {
                Some(sms) => sms.send(message).await,
                None => Err(SendError::Permanent("SMS is not configured".into())),
            },
            ChannelKind::Push => match &self.push {
                Some(push) => push.send(message).await,
                None => Err(SendError::Permanent("push is not configured".into())),
            },
            ChannelKind::InApp => self.in_app.send(message).await,
        }
    }

    /// Whether `kind` can be delivered by this deployment.
    pub fn has(&self, kind: ChannelKind) -> bool {
        match kind {
            ChannelKind::Email => self.email.is_some(),
            ChannelKind::Sms => self.sms.is_some(),
            ChannelKind::Push => self.push.is_some(),
            ChannelKind::InApp => true,
        }
    }
}

/// The channel's name in the database and on the wire.
pub fn channel_name(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Email => "email",
        ChannelKind::Sms => "sms",
        ChannelKind::Push => "push",
        ChannelKind::InApp => "in_app",
    }
}

/// The channel named `name`.
pub fn channel_of(name: &str) -> Option<ChannelKind> {
    Some(match name {
        "email" => ChannelKind::Email,
        "sms" => ChannelKind::Sms,
        "push" => ChannelKind::Push,
        "in_app" => ChannelKind::InApp,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_round_trip() {
        for kind in [ChannelKind::Email, ChannelKind::Sms, ChannelKind::Push, ChannelKind::InApp] {
            assert_eq!(channel_of(channel_name(kind)), Some(kind));
        }
        assert_eq!(channel_of("fax"), None);
    }

    // The pooled transport starts its pool's task: it needs a runtime.
    #[tokio::test]
    async fn every_attempt_of_a_row_has_the_same_message_id() {
        let settings = EmailSettings {
            host: "127.0.0.1".into(),
            port: 25,
            from: "NimbusU <noreply@campus.example>".into(),
            username: None,
            password: None,
            timeout: Duration::from_secs(5),
        };
        let email = Email::new(&settings).unwrap();
        let id = Uuid::new_v4();
        assert_eq!(email.message_id(id), format!("<{id}@campus.example>"));
        assert_eq!(email.message_id(id), email.message_id(id));
        let bad = EmailSettings { from: "not an address".into(), ..settings };
        assert!(Email::new(&bad).is_err());
    }
}
