-- What the downlink last sent each node, per snapshot kind: the version (a node ignores anything
-- not newer than what it holds), a digest of the body without its version (unchanged content is
-- not re-sent), and whether the broker confirmed the retained publish (an unconfirmed one is
-- re-sent with the same version).
CREATE TABLE node_snapshots (
    node_id      TEXT NOT NULL REFERENCES nodes (node_id) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('timetable', 'roster', 'keys', 'manifest')),
    version      BIGINT NOT NULL CHECK (version > 0),
    digest       TEXT NOT NULL,
    published    BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (node_id, kind)
);

-- Which card belongs to whom. Cards are an edge concept (the seed's user service has none): the
-- downlink sends each node the cards of the people on its rosters.
CREATE TABLE cards (
    card_uid     TEXT PRIMARY KEY CHECK (card_uid ~ '^[0-9A-F]{8,20}$'),
    user_id      TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('student', 'faculty')),
    display_name TEXT NOT NULL DEFAULT '',
    assigned_by  TEXT,
    assigned_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX cards_user ON cards (user_id);

-- Cards the nodes saw and could not place, waiting for an admin to map them to a user.
CREATE TABLE unknown_cards (
    card_uid     TEXT NOT NULL,
    node_id      TEXT NOT NULL,
    first_seen   TIMESTAMPTZ NOT NULL,
    last_seen    TIMESTAMPTZ NOT NULL,
    tap_count    BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (card_uid, node_id)
);
