//! `nimbus-cloud migrate` and `nimbus-cloud nodes register|list`: setting up the cloud's
//! databases and the registry of classroom nodes, for operators.
//!
//! A node must be registered before the ingest accepts its batches (an unregistered node's
//! frames are refused and counted). Its broker account (username = node id, password) lives in
//! the broker's password file; the registry only keeps a hash of it for the record, supplied
//! already hashed (e.g. by `mosquitto_passwd` or an argon2 tool), since this binary carries no
//! password hashing.

use std::fmt::Write as _;

use nimbus_core::ids::NodeId;
use serde_json::{Value, json};

use crate::config::CloudConfig;
use crate::db;
use crate::error::{Error, Result};
use crate::registry::{NodeRecord, Registry};

/// Creates `m`'s database if the server lacks it, then applies its pending migrations.
pub async fn migrate_database(config: &CloudConfig, m: &db::Migrations) -> Result<usize> {
    db::create_and_migrate(&config.database_target(m.database), m).await
}

/// The databases named in `only` (by their names in [`db::ALL`]), or every database the cloud
/// owns when `only` is empty, migrated; returns `(actual database name, migrations applied)`.
/// Unknown names are refused before anything is touched.
pub async fn migrate_all(config: &CloudConfig, only: &[String]) -> Result<Vec<(String, usize)>> {
    if let Some(unknown) = only.iter().find(|name| db::migrations_for(name).is_none()) {
        let known: Vec<&str> = db::ALL.iter().map(|m| m.database).collect();
        return Err(Error::Config(format!("DATABASE: unknown database {unknown:?}; known: {}", known.join(", "))));
    }
    let mut out = Vec::new();
    for m in db::ALL.iter().filter(|m| only.is_empty() || only.iter().any(|o| o == m.database)) {
        let n = migrate_database(config, m).await?;
        out.push((config.database_name(m.database).to_owned(), n));
    }
    Ok(out)
}

/// The registry of `config`, with its migrations applied, so a fresh campus needs no separate
/// `migrate` before registering its first node.
pub async fn registry(config: &CloudConfig) -> Result<Registry> {
    let m = db::migrations_for("edge_registry_db").ok_or_else(|| Error::Config("no registry migrations".into()))?;
    migrate_database(config, m).await?;
    Ok(Registry::new(db::pool(&config.registry_url(), 2)?))
}

/// Checks a node registration's inputs; the error says which argument is wrong.
pub fn check_registration(node_id: &str, room: &str, credential_hash: Option<&str>) -> Result<NodeId> {
    let node = NodeId::new(node_id).map_err(|e| Error::Config(format!("NODE_ID: {e}")))?;
    if room.trim().is_empty() || room.len() > 64 {
        return Err(Error::Config("--room: must be 1 to 64 characters".into()));
    }
    if let Some(h) = credential_hash {
        // A PHC string ($argon2id$…) or mosquitto's ($7$…): never a plain password by mistake.
        if !h.starts_with('$') || h.len() < 20 || h.chars().any(char::is_whitespace) {
            return Err(Error::Config(
                "--credential-hash: expected a password hash such as $argon2id$… or $7$…, not a password".into(),
            ));
        }
    }
    Ok(node)
}

/// The nodes as a table for a terminal.
pub fn render_table(nodes: &[NodeRecord]) -> String {
    let mut out = String::new();
    let rows: Vec<[String; 7]> = nodes
        .iter()
        .map(|n| {
            [
                n.node_id.clone(),
                n.room_id.clone(),
                n.high_water_mark.to_string(),
                if n.online { "online" } else { "offline" }.to_owned(),
                n.last_seen_at.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_else(|| "never".into()),
                n.software_version.clone().unwrap_or_else(|| "-".into()),
                if n.has_credential { "yes" } else { "no" }.to_owned(),
            ]
        })
        .collect();
    let header = ["NODE", "ROOM", "MARK", "STATUS", "LAST SEEN (UTC)", "VERSION", "CREDENTIAL"];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    let mut line = |cells: &[&str]| {
        let text: Vec<String> = cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        writeln!(out, "{}", text.join("  ").trim_end()).ok();
    };
    line(&header);
    for r in &rows {
        line(&r.each_ref().map(String::as_str));
    }
    if rows.is_empty() {
        out.push_str("(no nodes registered)\n");
    }
    out
}

/// The nodes as JSON, for scripts.
pub fn render_json(nodes: &[NodeRecord]) -> Value {
    Value::Array(
        nodes
            .iter()
            .map(|n| {
                json!({
                    "node_id": n.node_id,
                    "room_id": n.room_id,
                    "high_water_mark": n.high_water_mark,
                    "online": n.online,
                    "last_seen_at": n.last_seen_at,
                    "boot_id": n.boot_id,
                    "software_version": n.software_version,
                    "has_credential": n.has_credential,
                    "backlog": n.backlog,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_are_checked_by_argument() {
        assert!(check_registration("room-101", "101", None).is_ok());
        assert!(check_registration("Room 101", "101", None).unwrap_err().to_string().contains("NODE_ID"));
        assert!(check_registration("room-101", " ", None).unwrap_err().to_string().contains("--room"));
        let e = check_registration("room-101", "101", Some("hunter2")).unwrap_err().to_string();
        assert!(e.contains("--credential-hash"), "{e}");
        assert!(check_registration("room-101", "101", Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA")).is_ok());
    }

    #[test]
    fn the_table_lists_every_node() {
        let n = NodeRecord {
            node_id: "room-101".into(),
            room_id: "101".into(),
            high_water_mark: 42,
            online: true,
            last_seen_at: None,
            boot_id: None,
            software_version: Some("0.1.0".into()),
            has_credential: false,
            backlog: None,
        };
        let t = render_table(std::slice::from_ref(&n));
        assert!(t.starts_with("NODE"), "{t}");
        assert!(
            t.lines()
                .nth(1)
                .unwrap()
                .split_whitespace()
                .eq(["room-101", "101", "42", "online", "never", "0.1.0", "no"])
        );
        assert_eq!(render_json(&[n])[0]["high_water_mark"], 42);
        assert!(render_table(&[]).contains("no nodes"));
    }
}
