//! File bytes in MongoDB GridFS, through the official driver's bucket API.
//!
//! **Upload** ([`Store::put`]) streams: the body's first bytes are held back only until the type
//! can be sniffed ([`super::sniff`]), then every piece goes to the bucket's upload stream (which
//! writes a chunk document each time `chunk_size` bytes have arrived), through a SHA-256 and a
//! byte counter. Over the limit, a body error (client gone, body shorter than its
//! `Content-Length`) or a store error aborts the upload stream, which deletes the chunks already
//! written; the `files` document is only written by a successful close, so a partial file is
//! never visible. (If the request future is dropped instead, the driver's own drop handler
//! deletes the chunks.)
//!
//! **Reads** ([`Store::read`]) serve byte ranges: GridFS has no ranged download, so the chunk
//! documents covering the range are read directly (`<bucket>.chunks`, `{files_id, n}` — the
//! standard GridFS layout, indexed by the driver), in order, one at a time; a missing chunk is an
//! error rather than a short file.

use std::fmt::Display;

use bytes::Bytes;
use futures_util::{AsyncWriteExt, Stream, StreamExt, TryStreamExt};
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Bson, Document, doc};
use mongodb::gridfs::GridFsBucket;
use mongodb::options::GridFsBucketOptions;
use mongodb::{Collection, Database};
use sha2::{Digest, Sha256};

use super::sniff::{SNIFF_BYTES, Sniffed, sniff};
use crate::config::ContentConfig;
use crate::error::{Error, FieldError, Result};

/// Handle to the GridFS bucket holding every content version's bytes.
#[derive(Clone)]
pub struct Store {
    db: Database,
    bucket: GridFsBucket,
    files: Collection<Document>,
    chunks: Collection<Document>,
}

/// What uploads may be.
#[derive(Debug, Clone)]
pub struct UploadPolicy {
    /// Largest file in bytes.
    pub max_bytes: u64,
    /// Declarable MIME types.
    pub allowed_mime_types: Vec<String>,
}

impl From<&ContentConfig> for UploadPolicy {
    fn from(c: &ContentConfig) -> Self {
        UploadPolicy { max_bytes: c.max_bytes, allowed_mime_types: c.allowed_mime_types.clone() }
    }
}

/// A file safely in the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The GridFS file id (ObjectId hex): the events' `mongo_document_id`.
    pub id: String,
    /// Its length in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
    /// The MIME type, checked against the bytes.
    pub mime_type: String,
}

fn store_err(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::store("GridFS", e)
}

fn oid(id: &str) -> Result<ObjectId> {
    ObjectId::parse_str(id).map_err(|_| Error::store_msg(format!("{id:?} is not a GridFS file id")))
}

/// The declared type without parameters, lower-case.
fn essence(mime: &str) -> String {
    mime.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// The type to record for a file declared as `declared` whose first bytes are `sniffed`.
/// An empty or `application/octet-stream` declaration takes the sniffed type. A declared type
/// that is not on the allow-list is a 415; bytes that are not of the declared (or of any
/// allowed) type are a 422: the document lists the types a file part may declare, but no
/// schema can say that the bytes must be of that type.
pub fn resolve_mime(declared: Option<&str>, sniffed: Sniffed, allowed: &[String]) -> Result<String> {
    let declared = declared.map(essence).filter(|d| !d.is_empty() && d != "application/octet-stream");
    let is_allowed = |m: &str| allowed.iter().any(|a| a.eq_ignore_ascii_case(m));
    match declared {
        Some(mime) if !is_allowed(&mime) => {
            Err(Error::UnsupportedMedia { declared: mime, detected: sniffed.name().to_owned() })
        }
        Some(mime) if !sniffed.agrees_with(&mime) => Err(Error::Unprocessable(vec![FieldError::new(
            "file",
            format!("the bytes are not {mime} (they look like {})", sniffed.name()),
        )])),
        Some(mime) => Ok(mime),
        None if is_allowed(sniffed.name()) && sniffed.agrees_with(sniffed.name()) => Ok(sniffed.name().to_owned()),
        None => Err(Error::Unprocessable(vec![FieldError::new(
            "file",
            format!("the bytes are of no allowed type (they look like {})", sniffed.name()),
        )])),
    }
}

fn incomplete(why: impl Display) -> Error {
    Error::Validation(vec![FieldError::new("file", format!("the upload did not complete: {why}"))])
}

impl Store {
    /// Connects to `config`'s deployment (lazily: the first operation opens the connection).
    pub async fn connect(config: &ContentConfig) -> Result<Store> {
        let client = mongodb::Client::with_uri_str(&config.mongodb_uri).await.map_err(store_err)?;
        Ok(Store::new(client.database(&config.mongodb_database), &config.bucket))
    }

    /// Over bucket `bucket` of `db`.
    pub fn new(db: Database, bucket: &str) -> Store {
        let bucket_options = GridFsBucketOptions::builder().bucket_name(bucket.to_owned()).build();
        Store {
            files: db.collection(&format!("{bucket}.files")),
            chunks: db.collection(&format!("{bucket}.chunks")),
            bucket: db.gridfs_bucket(bucket_options),
            db,
        }
    }

    /// Whether the deployment answers (readiness).
    pub async fn ping(&self) -> Result<()> {
        self.db.run_command(doc! { "ping": 1 }).await.map_err(store_err)?;
        Ok(())
    }

    /// Streams `body` into a new GridFS file named `file_name`, enforcing `policy` while it
    /// streams (see the module doc). Errors: [`Error::TooLarge`], [`Error::UnsupportedMedia`]
    /// (a type not allowed), [`Error::Unprocessable`] (empty, or bytes not of the type),
    /// [`Error::Validation`] (incomplete upload), [`Error::Store`].
    pub async fn put<S, E>(
        &self,
        file_name: &str,
        declared: Option<&str>,
        policy: &UploadPolicy,
        mut body: S,
    ) -> Result<Stored>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: Display,
    {
        // Hold back only what the sniffer needs.
        let mut head: Vec<u8> = Vec::with_capacity(SNIFF_BYTES);
        let mut ended = false;
        while head.len() < SNIFF_BYTES {
            match body.next().await {
                Some(Ok(piece)) => {
                    head.extend_from_slice(&piece);
                    if head.len() as u64 > policy.max_bytes {
                        return Err(Error::TooLarge { limit: policy.max_bytes });
                    }
                }
                Some(Err(e)) => return Err(incomplete(e)),
                None => {
                    ended = true;
                    break;
                }
            }
        }
        if head.is_empty() {
            // A rule, not the shape of the request: the document cannot bound a binary part.
            return Err(Error::Unprocessable(vec![FieldError::new("file", "is empty")]));
        }
        let sniff_len = head.len().min(SNIFF_BYTES);
        let sniffed = sniff(&head[..sniff_len], ended && sniff_len == head.len());
        let mime_type = resolve_mime(declared, sniffed, &policy.allowed_mime_types)?;

        let id = ObjectId::new();
        let mut upload = self.bucket.open_upload_stream(file_name).id(Bson::ObjectId(id)).await.map_err(store_err)?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let written: Result<()> = async {
            hasher.update(&head);
            size += head.len() as u64;
            upload.write_all(&head).await.map_err(store_err)?;
            drop(head);
            while let Some(piece) = body.next().await {
                let piece = piece.map_err(incomplete)?;
                size += piece.len() as u64;
                if size > policy.max_bytes {
                    return Err(Error::TooLarge { limit: policy.max_bytes });
                }
                hasher.update(&piece);
                upload.write_all(&piece).await.map_err(store_err)?;
            }
            upload.close().await.map_err(store_err)
        }
        .await;
        if let Err(e) = written {
            if let Err(abort) = upload.abort().await {
                tracing::warn!(error = %abort, file_id = %id, "could not delete the chunks of an aborted upload");
            }
            return Err(e);
        }
        Ok(Stored { id: id.to_hex(), size, sha256: hex::encode(hasher.finalize()), mime_type })
    }

    /// The bytes `start..end` (end exclusive) of file `id`, as a stream of chunk slices.
    pub async fn read(
        &self,
        id: &str,
        start: u64,
        end: u64,
    ) -> Result<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static> {
        let oid = oid(id)?;
        let file = self
            .files
            .find_one(doc! { "_id": oid })
            .await
            .map_err(store_err)?
            .ok_or_else(|| Error::store_msg(format!("GridFS file {id} is missing")))?;
        let length = file.get("length").and_then(bson_u64).unwrap_or(0);
        let chunk_size = file.get("chunkSize").and_then(bson_u64).filter(|c| *c > 0).unwrap_or(255 * 1024);
        if start > end || end > length {
            return Err(Error::store_msg(format!("range {start}..{end} outside GridFS file {id} of {length} bytes")));
        }
        let (first, last) = (start / chunk_size, end.saturating_sub(1) / chunk_size);
        let cursor = if start == end {
            None
        } else {
            Some(
                self.chunks
                    .find(doc! { "files_id": oid, "n": { "$gte": first as i64, "$lte": last as i64 } })
                    .sort(doc! { "n": 1 })
                    .projection(doc! { "_id": 0, "n": 1, "data": 1 })
                    .await
                    .map_err(store_err)?,
            )
        };
        let state = (cursor, first);
        Ok(futures_util::stream::try_unfold(state, move |(cursor, expected)| async move {
            let Some(mut cursor) = cursor else { return Ok(None) };
            if expected > last {
                return Ok(None);
            }
            let chunk = cursor
                .try_next()
                .await
                .map_err(std::io::Error::other)?
                .ok_or_else(|| std::io::Error::other(format!("GridFS chunk {expected} is missing")))?;
            let n = chunk.get("n").and_then(bson_u64);
            if n != Some(expected) {
                return Err(std::io::Error::other(format!("GridFS chunk {expected} is missing (found {n:?})")));
            }
            let data = chunk.get_binary_generic("data").map_err(std::io::Error::other)?;
            let chunk_start = expected * chunk_size;
            let from = start.saturating_sub(chunk_start) as usize;
            let to = ((end - chunk_start) as usize).min(data.len());
            if from > to {
                return Err(std::io::Error::other(format!("GridFS chunk {expected} is short")));
            }
            Ok(Some((Bytes::copy_from_slice(&data[from..to]), (Some(cursor), expected + 1))))
        }))
    }

    /// Deletes file `id` and its chunks; a file already gone is fine.
    pub async fn delete(&self, id: &str) -> Result<()> {
        match self.bucket.delete(Bson::ObjectId(oid(id)?)).await {
            Ok(()) => Ok(()),
            Err(e) if matches!(*e.kind, mongodb::error::ErrorKind::GridFs(_)) => Ok(()),
            Err(e) => Err(store_err(e)),
        }
    }

    /// Chunk documents stored for file `id` (tests check that aborted uploads leave none).
    pub async fn chunk_count(&self, id: &str) -> Result<u64> {
        self.chunks.count_documents(doc! { "files_id": oid(id)? }).await.map_err(store_err)
    }

    /// Files in the bucket (complete uploads only).
    pub async fn file_count(&self) -> Result<u64> {
        self.files.count_documents(doc! {}).await.map_err(store_err)
    }

    /// Chunk documents in the whole bucket.
    pub async fn total_chunk_count(&self) -> Result<u64> {
        self.chunks.count_documents(doc! {}).await.map_err(store_err)
    }
}

fn bson_u64(b: &Bson) -> Option<u64> {
    match b {
        Bson::Int32(v) => u64::try_from(*v).ok(),
        Bson::Int64(v) => u64::try_from(*v).ok(),
        Bson::Double(v) if *v >= 0.0 => Some(*v as u64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        crate::config::DEFAULT_CONTENT_MIME_TYPES.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_declared_type_must_be_allowed_and_match_the_bytes() {
        assert_eq!(resolve_mime(Some("application/PDF"), Sniffed::Pdf, &allowed()).unwrap(), "application/pdf");
        assert_eq!(resolve_mime(Some("text/plain; charset=utf-8"), Sniffed::Text, &allowed()).unwrap(), "text/plain");
        assert_eq!(resolve_mime(None, Sniffed::Png, &allowed()).unwrap(), "image/png");
        assert_eq!(
            resolve_mime(Some("application/octet-stream"), Sniffed::Zip, &allowed()).unwrap(),
            "application/zip"
        );
        assert!(matches!(
            resolve_mime(Some("application/pdf"), Sniffed::Zip, &allowed()),
            Err(Error::Unprocessable(_))
        ));
        assert!(matches!(
            resolve_mime(Some("application/x-msdownload"), Sniffed::Unknown, &allowed()),
            Err(Error::UnsupportedMedia { .. })
        ));
        assert!(matches!(resolve_mime(None, Sniffed::Unknown, &allowed()), Err(Error::Unprocessable(_))));
        assert!(matches!(
            resolve_mime(Some("application/octet-stream"), Sniffed::Unknown, &allowed()),
            Err(Error::Unprocessable(_))
        ));
    }
}
