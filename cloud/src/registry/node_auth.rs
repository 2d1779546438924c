//! How a classroom node proves who it is over HTTP (the content download route): HTTP Basic
//! `node_id:password` against the registry's argon2 credential hash. The registry owns the
//! credentials, so the check lives here and other services call it.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordVerifier};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use deadpool_postgres::Pool;

use crate::error::Error;
use crate::http::AppError;

fn node_unauthorized(why: &str) -> AppError {
    tracing::info!(why, "node download refused");
    AppError::unauthorized("Node authentication required")
}

pub fn with_basic_challenge(e: AppError) -> Response {
    let mut res = e.into_response();
    if res.status() == StatusCode::UNAUTHORIZED {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"nimbus-node\""));
    }
    res
}

/// Checks HTTP Basic `node_id:password` against the registry's argon2 credential hash; returns
/// the node's id and room.
pub async fn authenticate_node(registry: &Pool, headers: &HeaderMap) -> Result<(String, String), AppError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| node_unauthorized("no credentials"))?;
    let encoded = value.strip_prefix("Basic ").ok_or_else(|| node_unauthorized("not Basic"))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| node_unauthorized("malformed Basic credentials"))?;
    let (node_id, password) =
        decoded.split_once(':').ok_or_else(|| node_unauthorized("malformed Basic credentials"))?;
    if node_id.is_empty() || node_id.len() > 128 {
        return Err(node_unauthorized("bad node id"));
    }
    let client = registry.get().await.map_err(Error::from)?;
    let row = client
        .query_opt("SELECT room_id, credential_hash FROM nodes WHERE node_id = $1", &[&node_id])
        .await
        .map_err(Error::from)?
        .ok_or_else(|| node_unauthorized("unknown node"))?;
    let (room, hash): (String, Option<String>) = (row.get(0), row.get(1));
    let hash = hash.ok_or_else(|| node_unauthorized("node has no credential"))?;
    if !hash.starts_with("$argon2") {
        // mosquitto's $7$ (PBKDF2-SHA512) and anything else: register an argon2 hash for nodes
        // that download content.
        tracing::warn!(node_id, "node credential hash is not argon2; the download route only verifies argon2");
        return Err(node_unauthorized("credential hash scheme not supported by the download route"));
    }
    let password = password.to_owned();
    let ok = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
    })
    .await
    .map_err(AppError::internal)?;
    if !ok {
        return Err(node_unauthorized("wrong password"));
    }
    Ok((node_id.to_owned(), room))
}
