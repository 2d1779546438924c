//! Course forums: one per course (created, renamed and closed from `course.events` by
//! [`super::handler`]); threads and replies by the course's members; faculty who teach the course
//! (and holders of `forum:moderate`) pin, lock and remove.
//!
//! Members are asked of the course service at every request ([`crate::course::audience`]), so a
//! student who drops the course loses access at once. For anyone else a course's forum, its
//! threads and posts answer 404 as if they did not exist.

use chrono::{DateTime, Utc};
use nimbus_core::event::CommunicationEvent;
use nimbus_core::event::communication::{ForumPostPayload, ForumReplyPayload};
use serde::{Deserialize, Serialize};
use tokio_postgres::{GenericClient, Row, Transaction};
use uuid::Uuid;

use super::conversations::{conflict, ensure_active, plain_text as text};
use super::{SERVICE, fields};
use crate::actor::Actor;
use crate::error::{Error, FieldError, Result};

/// Who is asking: their id and whether they hold `forum:moderate`.
#[derive(Debug, Clone)]
pub struct Reader {
    /// The user id.
    pub user_id: String,
    /// Holds `forum:moderate` (reads and moderates every forum).
    pub moderator: bool,
}

/// What the reader may do in one forum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    Member,
    Moderator,
}

/// A forum with its threads.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Forum {
    /// Its id.
    pub id: Uuid,
    /// The course.
    pub course_id: String,
    /// The course's name.
    pub title: String,
    /// Set when the course was deleted or deactivated (read-only).
    pub closed_at: Option<DateTime<Utc>>,
    /// Whether the reader may pin, lock and remove.
    pub moderator: bool,
    /// Threads, pinned first, then the most recently active.
    pub threads: Vec<Thread>,
}

/// A thread as listed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Thread {
    /// Its id.
    pub id: Uuid,
    /// The forum.
    pub forum_id: Uuid,
    /// Who started it.
    pub author_id: String,
    /// Its title.
    pub title: String,
    /// Shown first.
    pub pinned: bool,
    /// Takes no replies.
    pub locked: bool,
    /// Replies so far.
    pub replies: i32,
    /// The newest post's time.
    pub last_post_at: DateTime<Utc>,
    /// Started.
    pub created_at: DateTime<Utc>,
}

/// A post.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Post {
    /// Its id.
    pub id: Uuid,
    /// The post it answers (none for the thread's first post).
    pub parent_post_id: Option<Uuid>,
    /// Author.
    pub author_id: String,
    /// Text; `null` once removed.
    pub body: Option<String>,
    /// Written.
    pub created_at: DateTime<Utc>,
    /// Removed (a tombstone keeps its place).
    pub removed_at: Option<DateTime<Utc>>,
}

/// A thread with its posts, oldest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ThreadView {
    /// The thread.
    pub thread: Thread,
    /// Its posts.
    pub posts: Vec<Post>,
}

fn thread_title() -> utoipa::openapi::Object {
    fields::plain_schema(200)
}

fn post_body() -> utoipa::openapi::Object {
    fields::plain_schema(20_000)
}

/// A new thread: a title and its first post.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "title": "Lab 3, question 2", "body": "Which dataset do we use?" }))]
pub struct NewThread {
    /// 1–200 characters, plain text (no control characters but newlines and tabs).
    #[schema(schema_with = thread_title)]
    pub title: String,
    /// 1–20,000 characters, plain text.
    #[schema(schema_with = post_body)]
    pub body: String,
}

/// A reply.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "body": "The one from lab 2." }))]
pub struct NewPost {
    /// 1–20,000 characters, plain text (no control characters but newlines and tabs).
    #[schema(schema_with = post_body)]
    pub body: String,
    /// The post it answers (default: the thread's first post); a post of this thread (else 422).
    #[serde(default)]
    pub parent_post_id: Option<Uuid>,
}

/// Moderation of a thread; absent (or null) fields stay.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "pinned": true }))]
pub struct Moderation {
    /// Show it first.
    pub pinned: Option<bool>,
    /// Refuse replies.
    pub locked: Option<bool>,
}

/// The reader's standing in `course_id`'s forum, asked of the course service.
async fn standing(courses: &impl GenericClient, reader: &Reader, course_id: &str) -> Result<Option<Standing>> {
    if reader.moderator {
        return Ok(Some(Standing::Moderator));
    }
    Ok(match crate::course::audience::role_in_course(courses, &reader.user_id, course_id).await? {
        Some("faculty") => Some(Standing::Moderator),
        Some(_) => Some(Standing::Member),
        None => None,
    })
}

fn no_forum(course_id: &str) -> Error {
    Error::NotFound { what: "forum", id: course_id.to_owned() }
}

fn no_thread(id: Uuid) -> Error {
    Error::NotFound { what: "thread", id: id.to_string() }
}

const THREAD: &str =
    "t.id, t.forum_id, t.author_id, t.title, t.pinned, t.locked, t.replies, t.last_post_at, t.created_at";

fn thread(r: &Row) -> Thread {
    Thread {
        id: r.get(0),
        forum_id: r.get(1),
        author_id: r.get(2),
        title: r.get(3),
        pinned: r.get(4),
        locked: r.get(5),
        replies: r.get(6),
        last_post_at: r.get(7),
        created_at: r.get(8),
    }
}

/// A course's forum with its threads (404 for non-members and for courses without a forum).
pub async fn forum(
    db: &impl GenericClient,
    courses: &impl GenericClient,
    reader: &Reader,
    course_id: &str,
) -> Result<Forum> {
    let standing = standing(courses, reader, course_id).await?.ok_or_else(|| no_forum(course_id))?;
    let row = db
        .query_opt("SELECT id, title, closed_at FROM discussion_forums WHERE course_id = $1", &[&course_id])
        .await?
        .ok_or_else(|| no_forum(course_id))?;
    let id: Uuid = row.get(0);
    let threads = db
        .query(
            &format!(
                "SELECT {THREAD} FROM forum_threads t WHERE t.forum_id = $1 AND t.removed_at IS NULL
                 ORDER BY t.pinned DESC, t.last_post_at DESC, t.id LIMIT 200"
            ),
            &[&id],
        )
        .await?;
    Ok(Forum {
        id,
        course_id: course_id.to_owned(),
        title: row.get(1),
        closed_at: row.get(2),
        moderator: standing == Standing::Moderator,
        threads: threads.iter().map(thread).collect(),
    })
}

/// Starts a thread in a course's forum: `FORUM_POST_CREATED` with its first post.
pub async fn start_thread(
    db: &mut deadpool_postgres::Object,
    courses: &impl GenericClient,
    actor: &Actor,
    reader: &Reader,
    course_id: &str,
    n: NewThread,
) -> Result<ThreadView> {
    text("title", &n.title, 200)?;
    text("body", &n.body, 20_000)?;
    standing(courses, reader, course_id).await?.ok_or_else(|| no_forum(course_id))?;
    ensure_active(&***db, &reader.user_id).await?;
    let tx = db.transaction().await?;
    let row = tx
        .query_opt(
            "SELECT id, closed_at IS NOT NULL FROM discussion_forums WHERE course_id = $1 FOR SHARE",
            &[&course_id],
        )
        .await?
        .ok_or_else(|| no_forum(course_id))?;
    let (forum_id, closed): (Uuid, bool) = (row.get(0), row.get(1));
    if closed {
        return Err(conflict("the course's forum is closed".into()));
    }
    let (thread_id, post_id) = (Uuid::new_v4(), Uuid::new_v4());
    tx.execute(
        "INSERT INTO forum_threads (id, forum_id, author_id, title) VALUES ($1, $2, $3, $4)",
        &[&thread_id, &forum_id, &reader.user_id, &n.title.trim()],
    )
    .await?;
    let created_at: DateTime<Utc> = tx
        .query_one(
            "INSERT INTO forum_posts (id, thread_id, author_id, body) VALUES ($1, $2, $3, $4) RETURNING created_at",
            &[&post_id, &thread_id, &reader.user_id, &n.body],
        )
        .await?
        .get(0);
    let event = ForumPostPayload {
        post_id: post_id.to_string(),
        thread_id: thread_id.to_string(),
        forum_id: forum_id.to_string(),
        course_id: Some(course_id.to_owned()),
        author_id: reader.user_id.clone(),
        title: Some(n.title.trim().to_owned()),
        body: n.body,
        created_at,
    };
    crate::outbox::publish(&tx, SERVICE, actor, CommunicationEvent::ForumPostCreated(event)).await?;
    tx.commit().await?;
    view(&***db, thread_id).await
}

/// A live thread as the reader reaches it.
struct Reached {
    standing: Standing,
    forum_id: Uuid,
    closed: bool,
    locked: bool,
}

/// The thread's forum's course, checked against the reader (404 for non-members), with the
/// reader's standing; locks the thread row when `write`.
async fn thread_for(
    tx: &Transaction<'_>,
    courses: &impl GenericClient,
    reader: &Reader,
    id: Uuid,
    write: bool,
) -> Result<Reached> {
    let lock = if write { "FOR UPDATE OF t" } else { "" };
    let row = tx
        .query_opt(
            &format!(
                "SELECT f.course_id, f.id, f.closed_at IS NOT NULL, t.locked FROM forum_threads t
                 JOIN discussion_forums f ON f.id = t.forum_id WHERE t.id = $1 AND t.removed_at IS NULL {lock}"
            ),
            &[&id],
        )
        .await?
        .ok_or_else(|| no_thread(id))?;
    let course: String = row.get(0);
    let standing = standing(courses, reader, &course).await?.ok_or_else(|| no_thread(id))?;
    Ok(Reached { standing, forum_id: row.get(1), closed: row.get(2), locked: row.get(3) })
}

/// A thread with its posts.
pub async fn read_thread(
    db: &mut deadpool_postgres::Object,
    courses: &impl GenericClient,
    reader: &Reader,
    id: Uuid,
) -> Result<ThreadView> {
    let tx = db.transaction().await?;
    thread_for(&tx, courses, reader, id, false).await?;
    tx.commit().await?;
    view(&***db, id).await
}

async fn view(db: &impl GenericClient, id: Uuid) -> Result<ThreadView> {
    let t = db
        .query_opt(&format!("SELECT {THREAD} FROM forum_threads t WHERE t.id = $1"), &[&id])
        .await?
        .ok_or_else(|| no_thread(id))?;
    let posts = db
        .query(
            "SELECT id, parent_post_id, author_id, body, created_at, removed_at FROM forum_posts
             WHERE thread_id = $1 ORDER BY created_at, id",
            &[&id],
        )
        .await?;
    Ok(ThreadView {
        thread: thread(&t),
        posts: posts
            .iter()
            .map(|r| Post {
                id: r.get(0),
                parent_post_id: r.get(1),
                author_id: r.get(2),
                body: r.get(3),
                created_at: r.get(4),
                removed_at: r.get(5),
            })
            .collect(),
    })
}

/// Replies in a thread: `FORUM_REPLY_ADDED`. 409 when the thread is locked or the forum closed.
pub async fn reply(
    db: &mut deadpool_postgres::Object,
    courses: &impl GenericClient,
    actor: &Actor,
    reader: &Reader,
    id: Uuid,
    p: NewPost,
) -> Result<Post> {
    text("body", &p.body, 20_000)?;
    ensure_active(&***db, &reader.user_id).await?;
    let tx = db.transaction().await?;
    let Reached { forum_id, closed, locked, .. } = thread_for(&tx, courses, reader, id, true).await?;
    if closed {
        return Err(conflict("the course's forum is closed".into()));
    }
    if locked {
        return Err(conflict("the thread is locked".into()));
    }
    let parent: Uuid = match p.parent_post_id {
        Some(parent) => tx
            .query_opt("SELECT id FROM forum_posts WHERE id = $1 AND thread_id = $2", &[&parent, &id])
            .await?
            .map(|r| r.get(0))
            .ok_or_else(|| {
                Error::Unprocessable(vec![FieldError::new("parent_post_id", "must be a post of this thread")])
            })?,
        None => tx
            .query_one("SELECT id FROM forum_posts WHERE thread_id = $1 AND parent_post_id IS NULL", &[&id])
            .await?
            .get(0),
    };
    let post_id = Uuid::new_v4();
    let created_at: DateTime<Utc> = tx
        .query_one(
            "INSERT INTO forum_posts (id, thread_id, parent_post_id, author_id, body) VALUES ($1, $2, $3, $4, $5)
             RETURNING created_at",
            &[&post_id, &id, &parent, &reader.user_id, &p.body],
        )
        .await?
        .get(0);
    tx.execute("UPDATE forum_threads SET replies = replies + 1, last_post_at = $2 WHERE id = $1", &[&id, &created_at])
        .await?;
    let event = ForumReplyPayload {
        post_id: post_id.to_string(),
        parent_post_id: parent.to_string(),
        thread_id: id.to_string(),
        forum_id: forum_id.to_string(),
        author_id: reader.user_id.clone(),
        body: p.body.clone(),
        created_at,
    };
    crate::outbox::publish(&tx, SERVICE, actor, CommunicationEvent::ForumReplyAdded(event)).await?;
    tx.commit().await?;
    Ok(Post {
        id: post_id,
        parent_post_id: Some(parent),
        author_id: reader.user_id.clone(),
        body: Some(p.body),
        created_at,
        removed_at: None,
    })
}

/// Pins or locks a thread (moderators only; members get 403).
pub async fn moderate(
    db: &mut deadpool_postgres::Object,
    courses: &impl GenericClient,
    reader: &Reader,
    id: Uuid,
    m: Moderation,
) -> Result<Thread> {
    let tx = db.transaction().await?;
    let Reached { standing, .. } = thread_for(&tx, courses, reader, id, true).await?;
    if standing != Standing::Moderator {
        return Err(Error::Forbidden("only the course's faculty moderate its forum".into()));
    }
    let row = tx
        .query_one(
            &format!(
                "UPDATE forum_threads t SET pinned = COALESCE($2, pinned), locked = COALESCE($3, locked)
                 WHERE t.id = $1 RETURNING {THREAD}"
            ),
            &[&id, &m.pinned, &m.locked],
        )
        .await?;
    tx.commit().await?;
    Ok(thread(&row))
}

/// Removes a post (its author, or a moderator): a tombstone keeps its place. Removing a
/// thread's first post removes the thread (moderators only).
pub async fn remove_post(
    db: &mut deadpool_postgres::Object,
    courses: &impl GenericClient,
    reader: &Reader,
    post_id: Uuid,
) -> Result<()> {
    let tx = db.transaction().await?;
    let row = tx
        .query_opt("SELECT thread_id, author_id, parent_post_id IS NULL FROM forum_posts WHERE id = $1", &[&post_id])
        .await?
        .ok_or(Error::NotFound { what: "post", id: post_id.to_string() })?;
    let (thread_id, author, first): (Uuid, String, bool) = (row.get(0), row.get(1), row.get(2));
    let Reached { standing, .. } = thread_for(&tx, courses, reader, thread_id, true)
        .await
        .map_err(|_| Error::NotFound { what: "post", id: post_id.to_string() })?;
    let moderator = standing == Standing::Moderator;
    if !(moderator || (author == reader.user_id && !first)) {
        return Err(Error::Forbidden(if first {
            "only a moderator removes a thread".into()
        } else {
            "only its author or a moderator removes a post".into()
        }));
    }
    tx.execute(
        "UPDATE forum_posts SET body = NULL, removed_at = now(), removed_by = $2 WHERE id = $1 AND removed_at IS NULL",
        &[&post_id, &reader.user_id],
    )
    .await?;
    if first {
        tx.execute("UPDATE forum_threads SET removed_at = now() WHERE id = $1", &[&thread_id]).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// `course.events`: a created course gets its forum (once), a renamed one's forum follows the
/// name, a deleted or deactivated one's forum closes, a reactivated one's opens again.
pub async fn follow_course(
    tx: &Transaction<'_>,
    event: &nimbus_core::event::CourseEvent,
) -> std::result::Result<(), tokio_postgres::Error> {
    use nimbus_core::event::CourseEvent;
    match event {
        CourseEvent::CourseCreated(p) => {
            let title = if p.course_name.trim().is_empty() { p.course_code.clone() } else { p.course_name.clone() };
            tx.execute(
                "INSERT INTO discussion_forums (id, course_id, title) VALUES ($1, $2, $3)
                 ON CONFLICT (course_id) DO NOTHING",
                &[&Uuid::new_v4(), &p.course_id, &title],
            )
            .await?;
        }
        CourseEvent::CourseUpdated(p) => {
            if let Some(name) = p.changes.get("course_name").and_then(|c| c.new_value.as_str()) {
                tx.execute("UPDATE discussion_forums SET title = $2 WHERE course_id = $1", &[&p.course_id, &name])
                    .await?;
            }
        }
        CourseEvent::CourseDeleted(p) | CourseEvent::CourseDeactivated(p) => {
            tx.execute(
                "UPDATE discussion_forums SET closed_at = now() WHERE course_id = $1 AND closed_at IS NULL",
                &[&p.course_id],
            )
            .await?;
        }
        CourseEvent::CourseActivated(p) => {
            tx.execute("UPDATE discussion_forums SET closed_at = NULL WHERE course_id = $1", &[&p.course_id]).await?;
        }
        _ => {}
    }
    Ok(())
}
