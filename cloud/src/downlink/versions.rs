//! Which snapshot version each node gets: a new version only when the content changed, the same
//! version again when the last publish was not confirmed, nothing when the node is up to date.

use deadpool_postgres::GenericClient;
use sha2::{Digest, Sha256};

use crate::error::Result;

/// What to do with a freshly computed snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The node already has this content (confirmed by the broker).
    Unchanged,
    /// Publish it with this version.
    Publish(u64),
}

/// The digest a snapshot is compared by: SHA-256 of its body serialised with version 0.
pub fn digest(body_without_version: &[u8]) -> String {
    hex::encode(Sha256::digest(body_without_version))
}

/// The next version after `previous`: strictly greater, and at least the current time in
/// milliseconds, so versions keep rising even if the registry database is restored from an old
/// backup (a node ignores versions not newer than the one it holds).
pub fn next_version(previous: Option<u64>, now_ms: u64) -> u64 {
    previous.map_or(1, |p| p + 1).max(now_ms)
}

/// Decides and records what `node` gets for `kind`; the caller publishes, then [`confirm`]s.
pub async fn decide(
    client: &impl GenericClient,
    node: &str,
    kind: &str,
    digest: &str,
    now_ms: u64,
) -> Result<Decision> {
    let row = client
        .query_opt(
            "SELECT version, digest, published FROM node_snapshots WHERE node_id = $1 AND kind = $2",
            &[&node, &kind],
        )
        .await?;
    let previous = row.as_ref().map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, String>(1), r.get::<_, bool>(2)));
    match previous {
        Some((_, d, true)) if d == digest => Ok(Decision::Unchanged),
        Some((v, d, false)) if d == digest => Ok(Decision::Publish(v)),
        other => {
            let version = next_version(other.map(|(v, _, _)| v), now_ms);
            client
                .execute(
                    "INSERT INTO node_snapshots (node_id, kind, version, digest, published, updated_at)
                     VALUES ($1, $2, $3, $4, FALSE, now())
                     ON CONFLICT (node_id, kind) DO UPDATE
                     SET version = excluded.version, digest = excluded.digest, published = FALSE,
                         updated_at = now()",
                    &[&node, &kind, &(version as i64), &digest],
                )
                .await?;
            Ok(Decision::Publish(version))
        }
    }
}

/// Records that the broker confirmed `version` of `kind` for `node` (unless a newer version was
/// decided meanwhile).
pub async fn confirm(client: &impl GenericClient, node: &str, kind: &str, version: u64) -> Result<()> {
    client
        .execute(
            "UPDATE node_snapshots SET published = TRUE, updated_at = now()
             WHERE node_id = $1 AND kind = $2 AND version = $3",
            &[&node, &kind, &(version as i64)],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_always_rise_and_follow_the_clock() {
        assert_eq!(next_version(None, 0), 1);
        assert_eq!(next_version(Some(7), 0), 8);
        assert_eq!(next_version(Some(7), 1_700_000_000_000), 1_700_000_000_000);
        assert_eq!(next_version(Some(1_800_000_000_000), 1_700_000_000_000), 1_800_000_000_001);
    }

    #[test]
    fn the_digest_depends_on_the_content() {
        assert_eq!(digest(b"a"), digest(b"a"));
        assert_ne!(digest(b"a"), digest(b"b"));
        assert_eq!(digest(b"").len(), 64);
    }
}
