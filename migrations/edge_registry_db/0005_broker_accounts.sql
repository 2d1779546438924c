-- The node's MQTT password hashed the way the campus broker (Mosquitto 2) verifies it: `$7$`
-- PBKDF2-SHA512. `credential_hash` (argon2) stays the one the content download route checks.
-- `nimbus-cloud broker-accounts` writes the broker's password file from this column, so
-- registering a node through the API (or re-issuing its credentials) is all a node needs to connect.
ALTER TABLE nodes ADD COLUMN IF NOT EXISTS broker_credential_hash TEXT;
