-- The content service: metadata of course material in PostgreSQL; the bytes of every version in
-- MongoDB GridFS (`mongo_document_id` is the GridFS file id, an ObjectId in hex).

CREATE TABLE content_metadata (
    id                UUID PRIMARY KEY,
    title             TEXT NOT NULL,
    description       TEXT,
    -- document, slides, spreadsheet, video, audio, image, archive, other (from the MIME type).
    content_type      TEXT NOT NULL,
    department_id     TEXT,
    subject_ids       TEXT[] NOT NULL DEFAULT '{}',
    -- The current version's file (copied from content_versions for listing without a join).
    current_version   INT NOT NULL DEFAULT 1 CHECK (current_version >= 1),
    mongo_document_id TEXT NOT NULL,
    file_name         TEXT NOT NULL,
    mime_type         TEXT NOT NULL,
    file_size         BIGINT NOT NULL CHECK (file_size >= 0),
    sha256            TEXT NOT NULL,
    is_published      BOOLEAN NOT NULL DEFAULT false,
    published_at      TIMESTAMPTZ,
    created_by        TEXT NOT NULL,
    is_deleted        BOOLEAN NOT NULL DEFAULT false,
    deleted_at        TIMESTAMPTZ,
    deleted_by        TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX content_metadata_title ON content_metadata (lower(title));
CREATE INDEX content_metadata_live ON content_metadata (is_published) WHERE NOT is_deleted;

-- Every uploaded file of a content item; never changed once written.
CREATE TABLE content_versions (
    id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    content_id        UUID NOT NULL REFERENCES content_metadata (id) ON DELETE CASCADE,
    version_number    INT NOT NULL CHECK (version_number >= 1),
    mongo_document_id TEXT NOT NULL,
    file_name         TEXT NOT NULL,
    mime_type         TEXT NOT NULL,
    file_size         BIGINT NOT NULL CHECK (file_size >= 0),
    sha256            TEXT NOT NULL,
    change_notes      TEXT,
    created_by        TEXT NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (content_id, version_number)
);

-- Which courses' students see the content (course ids of course_service_db).
CREATE TABLE content_course_mapping (
    content_id UUID NOT NULL REFERENCES content_metadata (id) ON DELETE CASCADE,
    course_id  TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (content_id, course_id)
);
CREATE INDEX content_course_mapping_course ON content_course_mapping (course_id);

-- Grants beyond the course mapping: a user, every student of a course, or a role.
CREATE TABLE content_permissions (
    id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    content_id   UUID NOT NULL REFERENCES content_metadata (id) ON DELETE CASCADE,
    grantee_type TEXT NOT NULL CHECK (grantee_type IN ('user', 'course', 'role')),
    grantee_id   TEXT NOT NULL,
    permission   TEXT NOT NULL CHECK (permission IN ('view', 'download', 'edit', 'manage')),
    granted_by   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (content_id, grantee_type, grantee_id, permission)
);
CREATE INDEX content_permissions_grantee ON content_permissions (grantee_type, grantee_id);

-- Every download (users through the API, classroom nodes through their route).
CREATE TABLE content_access_logs (
    id             BIGSERIAL PRIMARY KEY,
    content_id     UUID NOT NULL REFERENCES content_metadata (id) ON DELETE CASCADE,
    version_number INT NOT NULL,
    user_id        TEXT NOT NULL,
    access_type    TEXT NOT NULL CHECK (access_type IN ('view', 'download', 'share')),
    ip_address     TEXT,
    user_agent     TEXT,
    device_type    TEXT,
    range_start    BIGINT,
    range_end      BIGINT,
    accessed_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX content_access_logs_content ON content_access_logs (content_id, accessed_at);

CREATE TABLE content_tags (
    id         UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name       TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE content_tag_mapping (
    content_id UUID NOT NULL REFERENCES content_metadata (id) ON DELETE CASCADE,
    tag_id     UUID NOT NULL REFERENCES content_tags (id) ON DELETE CASCADE,
    PRIMARY KEY (content_id, tag_id)
);
CREATE INDEX content_tag_mapping_tag ON content_tag_mapping (tag_id);

CREATE TABLE content_folders (
    id         UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name       TEXT NOT NULL,
    parent_id  UUID REFERENCES content_folders (id) ON DELETE CASCADE,
    course_id  TEXT,
    created_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE content_folder_items (
    folder_id  UUID NOT NULL REFERENCES content_folders (id) ON DELETE CASCADE,
    content_id UUID NOT NULL REFERENCES content_metadata (id) ON DELETE CASCADE,
    added_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (folder_id, content_id)
);
CREATE INDEX content_folder_items_content ON content_folder_items (content_id);

-- Transactional outbox of content.events (see cloud/src/outbox.rs).
CREATE TABLE event_outbox (
    id         BIGSERIAL PRIMARY KEY,
    event_id   UUID NOT NULL UNIQUE,
    topic      TEXT NOT NULL,
    key        TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
