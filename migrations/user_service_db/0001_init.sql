-- The user service's database: identities, roles and permissions, profiles, sessions, reset
-- tokens, activity, the token signing keys, and the outbox of user.events / auth.events.

-- Transactional outbox (see cloud/src/outbox.rs).
CREATE TABLE event_outbox (
    id         BIGSERIAL PRIMARY KEY,
    event_id   UUID NOT NULL UNIQUE,
    topic      TEXT NOT NULL,
    key        TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE roles (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE permissions (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT ''
);

CREATE TABLE role_permissions (
    role_id       UUID NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    permission_id UUID NOT NULL REFERENCES permissions (id) ON DELETE CASCADE,
    PRIMARY KEY (role_id, permission_id)
);

CREATE SEQUENCE users_register_no_seq START WITH 100001;

CREATE TABLE users (
    id                    UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    register_no           BIGINT NOT NULL UNIQUE DEFAULT nextval('users_register_no_seq'),
    -- Stored lower-case; unique.
    email                 TEXT NOT NULL UNIQUE,
    password_hash         TEXT NOT NULL,
    role_id               UUID NOT NULL REFERENCES roles (id),
    status                TEXT NOT NULL DEFAULT 'active'
                          CHECK (status IN ('active', 'inactive', 'suspended')),
    failed_login_attempts INT NOT NULL DEFAULT 0,
    locked_until          TIMESTAMPTZ,
    last_login_at         TIMESTAMPTZ,
    password_changed_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by            UUID,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX users_role_idx ON users (role_id);
CREATE INDEX users_status_idx ON users (status);

CREATE TABLE user_profiles (
    user_id    UUID PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    first_name TEXT NOT NULL DEFAULT '',
    last_name  TEXT NOT NULL DEFAULT '',
    phone      TEXT NOT NULL DEFAULT '',
    department TEXT NOT NULL DEFAULT '',
    bio        TEXT NOT NULL DEFAULT '',
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE user_activity_logs (
    id             BIGSERIAL PRIMARY KEY,
    user_id        UUID REFERENCES users (id) ON DELETE SET NULL,
    action         TEXT NOT NULL,
    ip_address     TEXT,
    correlation_id TEXT,
    details        JSONB NOT NULL DEFAULT '{}',
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX user_activity_logs_user_idx ON user_activity_logs (user_id, created_at);

-- Only the SHA-256 of a reset token is stored; the token itself goes to the user once.
CREATE TABLE password_reset_tokens (
    id         UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per login; `refresh_jti` is the only refresh token of the session still usable
-- (rotation), so presenting an older one is reuse and revokes the session.
CREATE TABLE active_sessions (
    id                UUID PRIMARY KEY,
    user_id           UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    refresh_jti       UUID NOT NULL,
    ip_address        TEXT,
    user_agent        TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_refreshed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at        TIMESTAMPTZ NOT NULL,
    revoked_at        TIMESTAMPTZ,
    revoked_reason    TEXT
);
CREATE INDEX active_sessions_user_idx ON active_sessions (user_id) WHERE revoked_at IS NULL;

-- Ed25519 token signing keys. The newest unretired key signs; retired keys still verify until
-- the tokens they signed have expired. The private key (PKCS#8 DER) never leaves this table
-- except into the API process's memory.
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    private_key BYTEA NOT NULL,
    public_key  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    retired_at  TIMESTAMPTZ
);

INSERT INTO roles (name, description) VALUES
    ('admin', 'Runs the campus: every permission'),
    ('faculty', 'Teaches courses'),
    ('student', 'Attends courses'),
    ('device', 'A classroom node');

INSERT INTO permissions (name) VALUES
    ('user:read'), ('user:write'), ('role:write'),
    ('course:read'), ('course:write'), ('enrollment:read'), ('enrollment:write'),
    ('timetable:read'), ('timetable:write'),
    ('node:read'), ('node:write'), ('card:write'),
    ('attendance:read'),
    ('dlq:read'), ('dlq:write'),
    ('content:read'), ('content:write'), ('content:publish'),
    ('content:sync');

INSERT INTO role_permissions (role_id, permission_id)
SELECT r.id, p.id FROM roles r, permissions p WHERE r.name = 'admin';

INSERT INTO role_permissions (role_id, permission_id)
SELECT r.id, p.id FROM roles r JOIN permissions p ON p.name IN (
    'course:read', 'enrollment:read', 'timetable:read', 'attendance:read',
    'content:read', 'content:write', 'content:publish')
WHERE r.name = 'faculty';

INSERT INTO role_permissions (role_id, permission_id)
SELECT r.id, p.id FROM roles r JOIN permissions p ON p.name IN ('course:read', 'timetable:read', 'content:read')
WHERE r.name = 'student';

INSERT INTO role_permissions (role_id, permission_id)
SELECT r.id, p.id FROM roles r JOIN permissions p ON p.name IN ('content:sync', 'timetable:read')
WHERE r.name = 'device';
