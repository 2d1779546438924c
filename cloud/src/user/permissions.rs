//! The role → permissions table (`role_permissions`), cached in memory for the gateway's
//! authentication and re-read periodically with the signing keys (another instance may have
//! rotated them).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::UserService;
use crate::error::Result;

/// Role name → permission names, from `role_permissions`; re-read periodically.
#[derive(Default)]
pub struct PermissionCache {
    table: RwLock<HashMap<String, BTreeSet<String>>>,
}

impl PermissionCache {
    /// Reads the table from the user service's database.
    pub async fn refresh(&self, users: &UserService) -> Result<()> {
        let mut table: HashMap<String, BTreeSet<String>> = HashMap::new();
        for (role, permission) in users.role_permissions().await? {
            table.entry(role).or_default().insert(permission);
        }
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = table;
        Ok(())
    }

    /// The union of the permissions of `roles`.
    pub fn permissions(&self, roles: &[String]) -> BTreeSet<String> {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        roles.iter().filter_map(|r| table.get(r)).flatten().cloned().collect()
    }

    /// Re-reads the table, and the signing keys (another instance may have rotated them), every
    /// `every` until `shutdown`.
    pub async fn keep_fresh(self: Arc<Self>, users: Arc<UserService>, every: Duration, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            if let Err(e) = self.refresh(&users).await {
                tracing::warn!(error = %e, "cannot re-read role permissions; keeping the previous table");
            }
            if let Err(e) = users.keys.reload().await {
                tracing::warn!(error = %e, "cannot re-read the signing keys; keeping the previous ones");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_are_the_union_of_the_roles() {
        let cache = PermissionCache::default();
        cache.table.write().unwrap().insert("student".into(), ["course:read".to_owned()].into());
        cache.table.write().unwrap().insert("device".into(), ["content:sync".to_owned()].into());
        let p = cache.permissions(&["student".into(), "device".into(), "ghost".into()]);
        assert_eq!(p.into_iter().collect::<Vec<_>>(), ["content:sync", "course:read"]);
    }
}
