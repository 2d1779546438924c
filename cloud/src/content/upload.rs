//! Multipart upload intake for the two upload routes (`POST /api/v1/content` and
//! `POST /api/v1/content/:id/versions`): a `multipart/form-data` body whose parts are a `metadata`
//! JSON part (at most 64 KiB, first; required for a new item, optional for a version) and a `file`
//! part whose `Content-Type` is the declared type.
//!
//! The gateway's 1 MiB body limit is lifted on those two routes only, so this file bounds what it
//! reads: a declared `Content-Length` beyond `content.max_bytes` (plus framing slack) is a `413`
//! before anything is read; the metadata part is read whole up to its limit; the file part streams
//! into GridFS ([`super::store`]), which sniffs its first bytes against the declared type
//! ([`super::sniff`]), hashes it and enforces `content.max_bytes` while streaming. A body cut short
//! after the file's last byte is an incomplete upload and its stored bytes are removed.

use axum::extract::Multipart;
use axum::extract::multipart::{Field, MultipartRejection};
use axum::http::{HeaderMap, StatusCode, header};
use nimbus_core::http::AppError;
use nimbus_core::http_file::safe_file_name;
use serde_json::json;

use super::state::ContentState;
use super::store::{Stored, UploadPolicy};

/// Largest `metadata` part of an upload.
const MAX_METADATA_BYTES: usize = 64 * 1024;
/// Slack for multipart framing and the metadata part above `content.max_bytes`, for the early
/// `Content-Length` check.
const MULTIPART_OVERHEAD: u64 = 1024 * 1024;

type ApiResult<T> = Result<T, AppError>;

/// The multipart body of an upload, once its declared length is acceptable: `413` when the
/// `Content-Length` is beyond any acceptable upload, `415` when the request is not
/// `multipart/form-data`.
pub(super) fn intake(
    headers: &HeaderMap,
    policy: &UploadPolicy,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Multipart> {
    check_length(headers, policy)?;
    multipart.map_err(multipart_rejection)
}

fn multipart_error(e: impl std::fmt::Display) -> AppError {
    AppError::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "Invalid multipart upload")
        .with_details(json!({ "problem": e.to_string() }))
}

fn multipart_rejection(r: MultipartRejection) -> AppError {
    if r.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE || r.status() == StatusCode::BAD_REQUEST {
        AppError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "Expected a request with Content-Type: multipart/form-data",
        )
    } else {
        multipart_error(r.body_text())
    }
}

/// 413 at once when the declared body is beyond any acceptable upload.
fn check_length(headers: &HeaderMap, policy: &UploadPolicy) -> ApiResult<()> {
    let length = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if length.is_some_and(|l| l > policy.max_bytes.saturating_add(MULTIPART_OVERHEAD)) {
        return Err(AppError::payload_too_large(Some(policy.max_bytes)));
    }
    Ok(())
}

async fn small_part(field: Field<'_>) -> ApiResult<Vec<u8>> {
    let mut buf = Vec::new();
    let mut field = field;
    while let Some(piece) = field.chunk().await.map_err(multipart_error)? {
        buf.extend_from_slice(&piece);
        if buf.len() > MAX_METADATA_BYTES {
            return Err(AppError::invalid_field("metadata", format!("must be at most {MAX_METADATA_BYTES} bytes")));
        }
    }
    Ok(buf)
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "metadata".to_owned() } else { format!("metadata.{path}") };
        AppError::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "Invalid metadata JSON")
            .with_details(json!({ "field": field, "problem": e.inner().to_string() }))
    })
}

/// Reads the parts of an upload: the optional `metadata` JSON (must come first), then the
/// `file`, streamed into the store. Returns the metadata and the stored file with its name.
pub(super) async fn receive<M: serde::de::DeserializeOwned + Default>(
    state: &ContentState,
    mut multipart: Multipart,
    metadata_required: bool,
    check: impl FnOnce(&mut M) -> ApiResult<()>,
) -> ApiResult<(M, String, Stored)> {
    let mut metadata: Option<M> = None;
    let mut check = Some(check);
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("metadata") if metadata.is_none() => {
                let mut m: M = parse_json(&small_part(field).await?)?;
                if let Some(check) = check.take() {
                    check(&mut m)?;
                }
                metadata = Some(m);
            }
            Some("file") => {
                let m = match metadata.take() {
                    Some(m) => m,
                    None if metadata_required => {
                        return Err(AppError::invalid_field("metadata", "is required, before the file part"));
                    }
                    None => M::default(),
                };
                let file_name = safe_file_name(field.file_name().unwrap_or(""));
                let declared = field.content_type().map(str::to_owned);
                let stored = state.store.put(&file_name, declared.as_deref(), &state.policy, Box::pin(field)).await?;
                // Anything after the file is ignored but must be well-formed: a body cut short
                // after the file's last byte is still an incomplete upload.
                loop {
                    match multipart.next_field().await {
                        Ok(Some(_)) => continue,
                        Ok(None) => break,
                        Err(e) => {
                            let _ = state.store.delete(&stored.id).await;
                            return Err(multipart_error(e));
                        }
                    }
                }
                return Ok((m, file_name, stored));
            }
            Some(other) => {
                return Err(AppError::invalid_field(
                    "multipart",
                    format!(
                        "unexpected part {:?}; expected metadata then file",
                        other.chars().take(50).collect::<String>()
                    ),
                ));
            }
            None => return Err(AppError::invalid_field("multipart", "a part has no name")),
        }
    }
    Err(AppError::invalid_field("file", "is required"))
}
