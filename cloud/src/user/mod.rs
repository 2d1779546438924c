//! Placeholder until the user service lands: no token keys yet.
/// The token key set (none yet).
pub async fn key_set(_p: &deadpool_postgres::Pool) -> crate::error::Result<nimbus_core::snapshot::KeysSnapshot> {
    Err(crate::error::Error::Config("the user service is not part of this build yet".into()))
}
