-- The content cache: one row per (content id, version) the node holds or is fetching.
-- A row is served only when state = 'complete' and its file exists under content/files/; bytes
-- being downloaded live in content/partial/ and are never served.
CREATE TABLE content_items (
    content_id        TEXT    NOT NULL,
    version           INTEGER NOT NULL,
    sha256            TEXT    NOT NULL,           -- lower-case hex, from the manifest
    size              INTEGER NOT NULL,
    mime              TEXT    NOT NULL,
    file_name         TEXT    NOT NULL,
    title             TEXT    NOT NULL,
    course_ids        TEXT    NOT NULL,           -- JSON array of course ids
    url               TEXT    NOT NULL,           -- where the cloud serves the bytes
    state             TEXT    NOT NULL CHECK (state IN ('pending', 'complete')),
    in_manifest       INTEGER NOT NULL DEFAULT 1, -- 0: superseded by a newer version, evicted first
    pinned            INTEGER NOT NULL DEFAULT 0, -- needed by today's timetable: never evicted
    last_access_ms    INTEGER NOT NULL DEFAULT 0, -- LRU
    verified_mtime_ms INTEGER,                    -- the file's mtime when its sha256 last matched
    completed_ms      INTEGER,                    -- Last-Modified
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms   INTEGER NOT NULL DEFAULT 0,
    last_error        TEXT,
    created_ms        INTEGER NOT NULL,
    PRIMARY KEY (content_id, version)
);
CREATE INDEX content_items_lru ON content_items (in_manifest, last_access_ms) WHERE state = 'complete';
