//! Multipart upload intake for the two upload routes (`POST /api/v1/content` and
//! `POST /api/v1/content/:id/versions`): a `multipart/form-data` body whose parts are a `metadata`
//! JSON object (at most 256 KiB; required for a new item, optional for a version) and a `file`
//! part whose `Content-Type` is the declared type, in either order (metadata first spares storing
//! a file whose metadata is refused); no other part.
//!
//! The gateway's 1 MiB body limit is lifted on those two routes only, so this file bounds what it
//! reads: a declared `Content-Length` beyond `content.max_bytes` (plus framing slack) is a `413`
//! before anything is read; the metadata part is read whole up to its limit; the file part streams
//! into GridFS ([`super::store`]), which sniffs its first bytes against the declared type
//! ([`super::sniff`]), hashes it and enforces `content.max_bytes` while streaming. A body cut short
//! after the file's last byte is an incomplete upload, and a refused metadata part after the file
//! refuses the upload: either way the stored bytes are removed.

use axum::extract::Multipart;
use axum::extract::multipart::{Field, MultipartRejection};
use axum::http::{HeaderMap, StatusCode, header};
use nimbus_core::http::AppError;
use nimbus_core::http_file::safe_file_name;
use serde_json::json;

use super::state::ContentState;
use super::store::{Stored, UploadPolicy};

/// Largest `metadata` part of an upload: room for the longest metadata the document allows
/// (every list full, every character escaped or four bytes long).
const MAX_METADATA_BYTES: usize = 256 * 1024;
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
    // An object only: serde would also take a struct's fields from a JSON array.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|b| *b != b'{') {
        return Err(AppError::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "Invalid metadata JSON")
            .with_details(json!({ "field": "metadata", "problem": "must be a JSON object" })));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "metadata".to_owned() } else { format!("metadata.{path}") };
        AppError::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "Invalid metadata JSON")
            .with_details(json!({ "field": field, "problem": e.inner().to_string() }))
    })
}

/// Reads the parts of an upload, in either order: the `metadata` JSON (required when
/// `metadata_required`) and the `file`, streamed into the store. Any other part, or a part twice,
/// is refused. When the metadata follows the file, the file is already stored when the metadata
/// is checked; a refusal then deletes it again. Returns the metadata and the stored file with
/// its name.
pub(super) async fn receive<M: serde::de::DeserializeOwned + Default>(
    state: &ContentState,
    mut multipart: Multipart,
    metadata_required: bool,
    check: impl FnOnce(&mut M) -> ApiResult<()>,
) -> ApiResult<(M, String, Stored)> {
    let mut metadata: Option<M> = None;
    let mut file: Option<(String, Stored)> = None;
    let mut check = Some(check);
    let read: ApiResult<()> = async {
        while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
            match field.name() {
                Some("metadata") if metadata.is_none() => {
                    let bytes = small_part(field).await?;
                    // Optional metadata may also be sent as JSON `null`.
                    let absent = !metadata_required && bytes.trim_ascii() == b"null";
                    let mut m: M = if absent { M::default() } else { parse_json(&bytes)? };
                    if let Some(check) = check.take() {
                        check(&mut m)?;
                    }
                    metadata = Some(m);
                }
                Some("file") if file.is_none() => {
                    let file_name = safe_file_name(field.file_name().unwrap_or(""));
                    let declared = field.content_type().map(str::to_owned);
                    let stored =
                        state.store.put(&file_name, declared.as_deref(), &state.policy, Box::pin(field)).await?;
                    file = Some((file_name, stored));
                }
                Some(other) => {
                    return Err(AppError::invalid_field(
                        "multipart",
                        format!(
                            "unexpected part {:?}; expected one metadata and one file part",
                            other.chars().take(50).collect::<String>()
                        ),
                    ));
                }
                None => return Err(AppError::invalid_field("multipart", "a part has no name")),
            }
        }
        Ok(())
    }
    .await;
    let outcome = read.and_then(|()| {
        let metadata = match metadata.take() {
            Some(m) => m,
            None if metadata_required => return Err(AppError::invalid_field("metadata", "is required")),
            None => {
                let mut m = M::default();
                if let Some(check) = check.take() {
                    check(&mut m)?;
                }
                m
            }
        };
        if file.is_none() {
            return Err(AppError::invalid_field("file", "is required"));
        }
        Ok(metadata)
    });
    match (outcome, file) {
        (Ok(m), Some((file_name, stored))) => Ok((m, file_name, stored)),
        (Err(e), Some((_, stored))) => {
            if let Err(d) = state.store.delete(&stored.id).await {
                tracing::warn!(error = %d, file_id = %stored.id, "could not delete the bytes of a refused upload");
            }
            Err(e)
        }
        (Err(e), None) => Err(e),
        (Ok(_), None) => Err(AppError::invalid_field("file", "is required")),
    }
}
