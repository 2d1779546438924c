//! The notification service's Kafka handler (`notification-service-group`): every command of
//! `notification.commands`, and the domain events people are told about.
//!
//! - `SEND_NOTIFICATION`, `SEND_EMAIL`, `SEND_SMS`, `SEND_PUSH`, `SEND_IN_APP`,
//!   `SCHEDULE_NOTIFICATION`: one recipient, queued at once ([`intake::accept`]); the typed
//!   sends use their one channel whatever `channels` says. The low-attendance alert arrives this
//!   way (the attendance service sends `SEND_NOTIFICATION`), so `LOW_ATTENDANCE_ALERT` itself is
//!   not acted on twice.
//! - `SEND_BULK`, `SEND_BULK_NOTIFICATION`: recorded as a batch; [`super::bulk`] expands it.
//! - `CANCEL_NOTIFICATION`: cancels what is still queued, and a schedule that arrives later.
//! - `PASSWORD_RESET_REQUESTED` (`auth.events`, which the seed's table does not list for this
//!   group; we subscribe to it because the reset mail is ours to send): mints the link's token
//!   through the user service and mails it, ignoring opt-outs. `ACCOUNT_LOCKED`: a security
//!   e-mail and in-app notice, also ignoring opt-outs.
//! - `USER_CREATED`: a welcome e-mail. `CONTENT_PUBLISHED`: the courses' students, in-app.
//!   Announcements are not acted on here: the announcement service resolves an urgent or high
//!   announcement's audience itself and sends `SEND_BULK` naming its people (`user_ids`).
//!
//! A command that cannot be delivered at all (unknown recipient, no usable channel, a template
//! its data does not fill, a schedule without a time) is invalid: dead-lettered at once with the
//! reason (no retry would change it), never silently dropped.

use nimbus_core::event::auth::{AccountLockedPayload, PasswordResetRequestedPayload};
use nimbus_core::event::notification::{
    BulkNotificationPayload, Channel as ChannelKind, NotificationPayload, Priority, RecipientFilter, RecipientType,
};
use nimbus_core::event::user::UserCreatedPayload;
use nimbus_core::event::{AnyEvent, AuthEvent, ContentEvent, Envelope, NotificationCommand, UserEvent};
use serde_json::{Map, Value, json};
use tokio_postgres::Transaction;

use super::bulk::{self, Batch};
use super::channels::Channels;
use super::intake::{self, Accepted, Directory, Request};
use crate::consumer::{Handler, HandlerError, Origin};
use crate::user::directory::mint_reset_token;

/// What the handler needs besides the event.
#[derive(Clone)]
pub struct NotificationHandler {
    /// Which channels this deployment has.
    pub channels: Channels,
    /// The user and course services' data.
    pub directory: Directory,
    /// The page that takes a reset token (`…/reset-password`); the link is `<this>?token=…`.
    pub reset_url: String,
}

fn rejected(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Invalid(e.to_string())
}

fn infra(e: crate::error::Error) -> HandlerError {
    match e {
        crate::error::Error::Db(db) | crate::error::Error::Pool(deadpool_postgres::PoolError::Backend(db)) => {
            HandlerError::Db(db)
        }
        other => HandlerError::Rejected(crate::consumer::error_summary(&other)),
    }
}

impl Handler for NotificationHandler {
    async fn handle(&self, tx: &Transaction<'_>, event: &AnyEvent, _origin: &Origin<'_>) -> Result<(), HandlerError> {
        match event {
            AnyEvent::NotificationCommand(env) => self.command(tx, env).await,
            AnyEvent::Auth(env) => match &env.event {
                AuthEvent::PasswordResetRequested(p) => self.password_reset(tx, p).await,
                AuthEvent::AccountLocked(p) => self.account_locked(tx, env.event_id, p).await,
                _ => Ok(()),
            },
            AnyEvent::User(env) => match &env.event {
                UserEvent::UserCreated(p) => self.welcome(tx, p).await,
                _ => Ok(()),
            },
            AnyEvent::Content(env) => match &env.event {
                ContentEvent::ContentPublished(p) if !p.course_ids.is_empty() => {
                    let spec = BulkNotificationPayload {
                        batch_id: format!("content-published:{}", env.event_id),
                        recipient_type: RecipientType::Course,
                        recipient_filter: RecipientFilter {
                            course_ids: Some(p.course_ids.clone()),
                            role_names: Some(vec!["student".into()]),
                            ..RecipientFilter::default()
                        },
                        notification_type: "content".into(),
                        title: format!("New material: {}", p.title),
                        message: format!("New course material is available: {}.", p.title),
                        channels: vec![ChannelKind::InApp],
                        priority: Priority::Normal,
                        template_id: Some("template-new-content".into()),
                        template_data: Some(object(json!({ "content_title": p.title, "content_id": p.content_id }))),
                        user_ids: None,
                        action_url: None,
                    };
                    let batch =
                        Batch { payload: spec, user_ids: None, action_url: Some(format!("/content/{}", p.content_id)) };
                    bulk::record(tx, &batch).await.map_err(infra)
                }
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }
}

impl NotificationHandler {
    async fn command(&self, tx: &Transaction<'_>, env: &Envelope<NotificationCommand>) -> Result<(), HandlerError> {
        let (payload, only) = match &env.event {
            NotificationCommand::SendNotification(p) => (p, None),
            NotificationCommand::ScheduleNotification(p) => {
                if p.scheduled_at.is_none() {
                    return Err(rejected("SCHEDULE_NOTIFICATION without scheduled_at"));
                }
                (p, None)
            }
            NotificationCommand::SendEmail(p) => (p, Some(ChannelKind::Email)),
            NotificationCommand::SendSms(p) => (p, Some(ChannelKind::Sms)),
            NotificationCommand::SendPush(p) => (p, Some(ChannelKind::Push)),
            NotificationCommand::SendInApp(p) => (p, Some(ChannelKind::InApp)),
            NotificationCommand::SendBulk(p) | NotificationCommand::SendBulkNotification(p) => {
                if p.batch_id.trim().is_empty() {
                    return Err(rejected("bulk command without batch_id"));
                }
                if p.user_ids.as_ref().is_some_and(|u| u.is_empty()) {
                    // Named recipients, none of them: nobody (never everybody).
                    return Ok(());
                }
                let batch =
                    Batch { payload: p.clone(), user_ids: p.user_ids.clone(), action_url: p.action_url.clone() };
                return bulk::record(tx, &batch).await.map_err(infra);
            }
            NotificationCommand::CancelNotification(p) => {
                if p.notification_id.trim().is_empty() {
                    return Err(rejected("CANCEL_NOTIFICATION without notification_id"));
                }
                return intake::cancel(tx, &p.notification_id, &p.cancelled_by, p.cancelled_at)
                    .await
                    .map(|_| ())
                    .map_err(infra);
            }
        };
        let mut request = single(payload, env.event_id.to_string());
        if let Some(channel) = only {
            request.channels = vec![channel];
        }
        self.accept(tx, &request).await
    }

    async fn accept(&self, tx: &Transaction<'_>, request: &Request) -> Result<(), HandlerError> {
        if request.user_id.trim().is_empty() {
            return Err(rejected("no recipient_user_id"));
        }
        let contacts = self.directory.contacts(std::slice::from_ref(&request.user_id)).await.map_err(infra)?;
        let mut templates = intake::TemplateCache::default();
        match intake::accept(tx, &self.channels, &mut templates, request, contacts.get(&request.user_id))
            .await
            .map_err(infra)?
        {
            Ok(Accepted::Queued(_) | Accepted::Duplicate | Accepted::Cancelled) => Ok(()),
            Err(refused) => Err(rejected(refused)),
        }
    }

    async fn password_reset(
        &self,
        tx: &Transaction<'_>,
        p: &PasswordResetRequestedPayload,
    ) -> Result<(), HandlerError> {
        let source_id = format!("password-reset:{}", p.reset_token_id);
        if tx
            .query_opt("SELECT 1 FROM notifications WHERE id = $1", &[&intake::notification_id(&source_id, &p.user_id)])
            .await?
            .is_some()
        {
            return Ok(());
        }
        let users = self.directory.users.get().await.map_err(|e| infra(e.into()))?;
        let Some(minted) = mint_reset_token(&**users, &p.reset_token_id).await.map_err(infra)? else {
            // Used, expired, superseded, or handed to an administrator: nothing to mail.
            return Ok(());
        };
        let minutes = (minted.expires_at - chrono::Utc::now()).num_minutes().max(1);
        let link = format!("{}?token={}", self.reset_url, minted.token);
        let request = Request {
            source_id,
            user_id: p.user_id.clone(),
            notification_type: "security".into(),
            title: "Reset your NimbusU password".into(),
            message: format!("Open this link within {minutes} minutes to choose a new password: {link}"),
            channels: vec![ChannelKind::Email],
            priority: Priority::High,
            template_id: Some("template-password-reset".into()),
            data: object(json!({ "reset_link": link, "valid_minutes": minutes })),
            expires_at: Some(minted.expires_at),
            email: Some(p.email.clone()),
            security: true,
            ..Request::default()
        };
        self.accept(tx, &request).await
    }

    async fn account_locked(
        &self,
        tx: &Transaction<'_>,
        event_id: uuid::Uuid,
        p: &AccountLockedPayload,
    ) -> Result<(), HandlerError> {
        let until = p.locked_until.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string());
        let message = format!(
            "Your NimbusU account was locked after {} failed sign-ins{}{}. If it was not you, reset your password.",
            p.failed_attempts,
            p.ip_address.as_deref().map(|ip| format!(" from {ip}")).unwrap_or_default(),
            until.map(|u| format!(" until {u}")).unwrap_or_default(),
        );
        let request = Request {
            source_id: format!("account-locked:{event_id}"),
            user_id: p.user_id.clone(),
            notification_type: "security".into(),
            title: "Your NimbusU account was locked".into(),
            message,
            channels: vec![ChannelKind::Email, ChannelKind::InApp],
            priority: Priority::High,
            security: true,
            ..Request::default()
        };
        self.accept_if_known(tx, &request).await
    }

    async fn welcome(&self, tx: &Transaction<'_>, p: &UserCreatedPayload) -> Result<(), HandlerError> {
        let request = Request {
            source_id: format!("welcome:{}", p.user_id),
            user_id: p.user_id.clone(),
            notification_type: "account".into(),
            title: "Welcome to NimbusU".into(),
            message: format!("Your account {} is ready.", p.email),
            channels: vec![ChannelKind::Email],
            priority: Priority::Normal,
            template_id: Some("template-welcome".into()),
            data: object(json!({ "email": p.email, "register_no": p.register_no })),
            ..Request::default()
        };
        self.accept_if_known(tx, &request).await
    }

    /// Queues a message the service itself decided to send about a user: one that cannot go out
    /// (the user is gone, e-mail not configured, opted out) is logged, not worth a dead letter.
    async fn accept_if_known(&self, tx: &Transaction<'_>, request: &Request) -> Result<(), HandlerError> {
        let contacts = self.directory.contacts(std::slice::from_ref(&request.user_id)).await.map_err(infra)?;
        let Some(contact) = contacts.get(&request.user_id) else {
            tracing::info!(user = %request.user_id, source = %request.source_id, "not a user (any more); nothing sent");
            return Ok(());
        };
        let mut templates = intake::TemplateCache::default();
        match intake::accept(tx, &self.channels, &mut templates, request, Some(contact)).await.map_err(infra)? {
            Ok(_) => Ok(()),
            Err(refused) => {
                tracing::info!(user = %request.user_id, source = %request.source_id, %refused, "nothing sent");
                Ok(())
            }
        }
    }
}

/// The request for a single-recipient command; `event_id` stands in for a missing
/// `notification_id`.
pub fn single(p: &NotificationPayload, event_id: String) -> Request {
    Request {
        source_id: if p.notification_id.trim().is_empty() { event_id } else { p.notification_id.clone() },
        user_id: p.recipient_user_id.clone(),
        notification_type: if p.notification_type.trim().is_empty() {
            "general".into()
        } else {
            p.notification_type.clone()
        },
        title: p.title.clone(),
        message: p.message.clone(),
        action_url: p.action_url.clone(),
        channels: p.channels.clone(),
        priority: p.priority,
        template_id: p.template_id.clone(),
        data: p.template_data.clone().unwrap_or_default(),
        batch_id: None,
        scheduled_at: p.scheduled_at,
        expires_at: p.expires_at,
        email: p.recipient_email.clone().filter(|e| !e.trim().is_empty()),
        phone: p.recipient_phone.clone().filter(|e| !e.trim().is_empty()),
        security: false,
    }
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}
