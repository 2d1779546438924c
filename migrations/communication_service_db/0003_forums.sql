-- Course forums (the seed's `discussion_forums`, `forum_threads`, `forum_posts`): one forum per
-- course, created from course.events; members are the course's enrolled students and teaching
-- faculty, asked of the course service at each request.

CREATE TABLE discussion_forums (
    id         UUID PRIMARY KEY,
    course_id  TEXT NOT NULL UNIQUE,
    title      TEXT NOT NULL,
    -- A deleted or deactivated course closes its forum (readable, no new posts).
    closed_at  TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE forum_threads (
    id           UUID PRIMARY KEY,
    forum_id     UUID NOT NULL REFERENCES discussion_forums (id),
    author_id    TEXT NOT NULL,
    title        TEXT NOT NULL,
    pinned       BOOLEAN NOT NULL DEFAULT false,
    locked       BOOLEAN NOT NULL DEFAULT false,
    removed_at   TIMESTAMPTZ,
    replies      INT NOT NULL DEFAULT 0,
    last_post_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX forum_threads_listed ON forum_threads (forum_id, pinned DESC, last_post_at DESC) WHERE removed_at IS NULL;

-- A thread's first post has no parent; replies name the post they answer. A removed post keeps
-- its place without its text.
CREATE TABLE forum_posts (
    id             UUID PRIMARY KEY,
    thread_id      UUID NOT NULL REFERENCES forum_threads (id),
    parent_post_id UUID REFERENCES forum_posts (id),
    author_id      TEXT NOT NULL,
    body           TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    removed_at     TIMESTAMPTZ,
    removed_by     TEXT
);
CREATE INDEX forum_posts_by_thread ON forum_posts (thread_id, created_at);
