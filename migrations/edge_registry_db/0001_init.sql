-- The cloud's registry of classroom nodes: identity, credentials, sync position, health.
CREATE TABLE nodes (
    node_id           TEXT PRIMARY KEY,
    room_id           TEXT NOT NULL,
    -- argon2 hash of the node's MQTT password; the broker's password file is generated from it.
    credential_hash   TEXT,
    -- Highest outbox sequence number of this node that is safely in Kafka.
    high_water_mark   BIGINT NOT NULL DEFAULT 0 CHECK (high_water_mark >= 0),
    last_seen_at      TIMESTAMPTZ,
    online            BOOLEAN NOT NULL DEFAULT FALSE,
    boot_id           TEXT,
    software_version  TEXT,
    backlog           BIGINT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Frames the ingest refused, counted per node and reason (corrupt, unknown version, impostor, ...).
CREATE TABLE ingest_rejections (
    node_id   TEXT NOT NULL,
    reason    TEXT NOT NULL,
    count     BIGINT NOT NULL DEFAULT 0,
    last_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (node_id, reason)
);
