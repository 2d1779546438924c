-- Faculty classroom PINs: what a faculty member signs in with at a classroom node's page. Only
-- the argon2id hash is kept; the downlink delivers it in the roster snapshot of the nodes whose
-- rooms the faculty member teaches in (the node verifies it offline).
CREATE TABLE classroom_pins (
    user_id    UUID PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    pin_hash   TEXT NOT NULL,
    set_by     UUID,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
