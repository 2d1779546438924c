//! Hostile and broken input to the content service: oversized, mistyped and truncated uploads
//! leave nothing behind (no rows, no GridFS file, no orphan chunks); malformed metadata, path
//! traversal in ids and names, students of other courses and nodes with wrong passwords are
//! refused with the seed's error shape.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use serde_json::json;

use crate::common::content::*;

const MIB: usize = 1024 * 1024;

async fn nothing_stored(env: &ContentEnv) {
    assert_eq!(env.store.file_count().await.unwrap(), 0, "no GridFS file");
    assert_eq!(env.store.total_chunk_count().await.unwrap(), 0, "no orphan GridFS chunks");
    let c = env.pool().get().await.unwrap();
    let rows: i64 = c.query_one("SELECT count(*) FROM content_metadata", &[]).await.unwrap().get(0);
    assert_eq!(rows, 0, "no content rows");
    let events: i64 = c.query_one("SELECT count(*) FROM event_outbox", &[]).await.unwrap().get(0);
    assert_eq!(events, 0, "no events");
}

/// A body that yields `parts`, then fails as a dropped connection does.
fn failing_body(parts: Vec<Vec<u8>>) -> Body {
    let items: Vec<Result<Vec<u8>, std::io::Error>> = parts
        .into_iter()
        .map(Ok)
        .chain(std::iter::once(Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "client went away"))))
        .collect();
    Body::from_stream(futures_util::stream::iter(items))
}

#[tokio::test]
async fn an_oversized_upload_is_refused_while_streaming_and_leaves_no_chunks() {
    let env = ContentEnv::start(MIB as u64).await;
    let admin = caller("admin-1", &["admin"]);
    let file = pdf_bytes(3 * MIB);
    // No Content-Length: the limit must hold while streaming, after chunks were written.
    let body = multipart(Some(r#"{"title":"Big"}"#), "big.pdf", "application/pdf", &file);
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> = body.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let res = env
        .call(
            Some(&admin),
            upload_request("/api/v1/content", Body::from_stream(futures_util::stream::iter(pieces)), None),
        )
        .await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let err = body_json(res).await;
    assert_eq!(err["code"], "PAYLOAD_TOO_LARGE");
    nothing_stored(&env).await;

    // A declared Content-Length far beyond the limit is refused before reading anything.
    let res = env.call(Some(&admin), upload_request("/api/v1/content", Body::from(Vec::new()), Some(50 * MIB))).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    nothing_stored(&env).await;
    env.stop().await;
}

#[tokio::test]
async fn a_file_whose_type_is_not_allowed_is_415_and_one_whose_bytes_contradict_it_422() {
    let env = ContentEnv::start(64 * MIB as u64).await;
    let admin = caller("admin-1", &["admin"]);
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01".repeat(10);
    for (name, mime, bytes, status, code) in [
        ("notes.pdf", "application/pdf", png.clone(), StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR"),
        (
            "setup.exe",
            "application/x-msdownload",
            b"MZ\x90\0\x03\0\0\0\x04\0".repeat(10),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "blob.bin",
            "application/octet-stream",
            b"\0\x01\x02\x03\xfe\xff".repeat(10),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        ),
        ("empty.txt", "text/plain", Vec::new(), StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR"),
    ] {
        let body = multipart(Some(r#"{"title":"x"}"#), name, mime, &bytes);
        let res = env.call(Some(&admin), upload_request("/api/v1/content", Body::from(body), None)).await;
        assert_eq!(res.status(), status, "{name}");
        assert_eq!(body_json(res).await["code"], code, "{name}");
    }
    // Not multipart at all.
    let req = Request::post("/api/v1/content")
        .header("content-type", "application/pdf")
        .body(Body::from("%PDF-1.4"))
        .unwrap();
    assert_eq!(env.call(Some(&admin), req).await.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    nothing_stored(&env).await;
    env.stop().await;
}

#[tokio::test]
async fn a_truncated_upload_leaves_nothing_visible() {
    let env = ContentEnv::start(64 * MIB as u64).await;
    let admin = caller("admin-1", &["admin"]);
    let file = pdf_bytes(2 * MIB);
    let (head, _tail) = multipart_frame(Some(r#"{"title":"Cut"}"#), "cut.pdf", "application/pdf");
    // The connection drops after 1.5 MiB of the file (several chunks already in GridFS).
    let res = env
        .call(
            Some(&admin),
            upload_request("/api/v1/content", failing_body(vec![head.clone(), file[..3 * MIB / 2].to_vec()]), None),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(body_json(res).await["code"], "VALIDATION_ERROR");
    nothing_stored(&env).await;

    // The body simply ends inside the file (shorter than announced, no closing boundary).
    let mut short = head;
    short.extend_from_slice(&file[..MIB]);
    let res = env.call(Some(&admin), upload_request("/api/v1/content", Body::from(short), None)).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    nothing_stored(&env).await;
    env.stop().await;
}

#[tokio::test]
async fn malformed_metadata_is_refused_before_any_byte_is_stored() {
    let env = ContentEnv::start(64 * MIB as u64).await;
    let admin = caller("admin-1", &["admin"]);
    for (meta, field) in [
        ("{\"title\": ", "metadata"),
        (r#"{"title": "x", "owner": "me"}"#, "metadata"),
        (r#"{"title": 5}"#, "metadata.title"),
        (r#"{"title": "   "}"#, "title"),
        (r#"{"title": "x", "course_ids": ["../../etc"], "tags": [""]}"#, "tags[0]"),
    ] {
        let body = multipart(Some(meta), "a.pdf", "application/pdf", &pdf_bytes(1000));
        let res = env.call(Some(&admin), upload_request("/api/v1/content", Body::from(body), None)).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{meta}");
        let err = body_json(res).await;
        assert_eq!(err["code"], "VALIDATION_ERROR", "{meta}");
        assert!(err["details"].to_string().contains(field), "{meta}: {err}");
    }
    // No metadata (the file is stored, then removed again), and no file at all.
    let body = multipart(None, "a.pdf", "application/pdf", &pdf_bytes(1000));
    let res = env.call(Some(&admin), upload_request("/api/v1/content", Body::from(body), None)).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{{\"title\":\"x\"}}\r\n--{BOUNDARY}--\r\n"
    );
    let res = env.call(Some(&admin), upload_request("/api/v1/content", Body::from(body), None)).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // A student may not upload at all (the route's permission), nor publish without content:publish.
    nothing_stored(&env).await;
    env.stop().await;
}

#[tokio::test]
async fn path_traversal_in_ids_and_names_touches_nothing() {
    let env = ContentEnv::start(64 * MIB as u64).await;
    let admin = caller("admin-1", &["admin"]);
    for uri in [
        "/api/v1/content/..%2F..%2Fetc%2Fpasswd",
        "/api/v1/content/%2e%2e/download",
        "/api/v1/content/00000000-0000-0000-0000-00000000000g/versions",
        "/api/v1/content/1%20OR%201=1/download",
        "/api/v1/content/5b0f5e1c-1111-4c3b-9e7c-8d5a7c1e2f00/versions/..%2F1/download",
    ] {
        let res = env.call(Some(&admin), Request::get(uri).body(Body::empty()).unwrap()).await;
        assert!(matches!(res.status(), StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND), "{uri}: {}", res.status());
        if res.status() == StatusCode::BAD_REQUEST {
            assert_eq!(body_json(res).await["code"], "VALIDATION_ERROR");
        }
    }
    // A well-formed id that does not exist is a plain 404.
    let res = env
        .call(
            Some(&admin),
            Request::get(format!("/api/v1/content/{}", uuid::Uuid::new_v4())).body(Body::empty()).unwrap(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // A hostile file name is reduced to its last component, without control characters.
    let body = multipart(Some(r#"{"title":"t"}"#), "..\\..\\..\\windows\\win.ini", "text/plain", b"[fonts]\n");
    let res = env.call(Some(&admin), upload_request("/api/v1/content", Body::from(body), None)).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let item = body_json(res).await;
    assert_eq!(item["file_name"], "win.ini");
    env.stop().await;
}

#[tokio::test]
async fn a_student_sees_only_published_content_of_their_own_courses() {
    let env = ContentEnv::start(64 * MIB as u64).await;
    let faculty = caller("fac-1", &["faculty"]);
    let (mine, theirs) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    env.enrol("stu-1", mine).await;
    env.enrol("stu-2", theirs).await;
    let meta = json!({"title": "Mine", "course_ids": [mine.to_string()], "is_published": true}).to_string();
    let res = env
        .call(
            Some(&faculty),
            upload_request(
                "/api/v1/content",
                Body::from(multipart(Some(&meta), "m.pdf", "application/pdf", &pdf_bytes(5000))),
                None,
            ),
        )
        .await;
    let id = body_json(res).await["id"].as_str().unwrap().to_owned();
    let meta = json!({"title": "Draft", "course_ids": [mine.to_string()]}).to_string();
    let res = env
        .call(
            Some(&faculty),
            upload_request(
                "/api/v1/content",
                Body::from(multipart(Some(&meta), "d.pdf", "application/pdf", &pdf_bytes(5000))),
                None,
            ),
        )
        .await;
    let draft = body_json(res).await["id"].as_str().unwrap().to_owned();

    let stu1 = caller("stu-1", &["student"]);
    let stu2 = caller("stu-2", &["student"]);
    let get = |uri: String| Request::get(uri).body(Body::empty()).unwrap();
    assert_eq!(env.call(Some(&stu1), get(format!("/api/v1/content/{id}/download"))).await.status(), StatusCode::OK);
    assert_eq!(env.call(Some(&stu1), get(format!("/api/v1/content/{draft}"))).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(env.call(Some(&stu2), get(format!("/api/v1/content/{id}"))).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        env.call(Some(&stu2), get(format!("/api/v1/content/{id}/download"))).await.status(),
        StatusCode::NOT_FOUND
    );
    let list = body_json(env.call(Some(&stu2), get("/api/v1/content".into())).await).await;
    assert_eq!(list["total"], 0);
    let list = body_json(env.call(Some(&stu1), get("/api/v1/content".into())).await).await;
    assert_eq!(list["total"], 1);

    // A per-user grant opens it to the other student; revoking closes it again.
    let req = Request::post(format!("/api/v1/content/{id}/permissions"))
        .header("content-type", "application/json")
        .body(Body::from(r#"{"grantee_type":"user","grantee_id":"stu-2","permission":"view"}"#))
        .unwrap();
    let res = env.call(Some(&faculty), req).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let grant = body_json(res).await;
    assert_eq!(env.call(Some(&stu2), get(format!("/api/v1/content/{id}"))).await.status(), StatusCode::OK);
    let req = Request::delete(format!("/api/v1/content/{id}/permissions/{}", grant["id"].as_str().unwrap()))
        .body(Body::empty())
        .unwrap();
    assert_eq!(env.call(Some(&faculty), req).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(env.call(Some(&stu2), get(format!("/api/v1/content/{id}"))).await.status(), StatusCode::NOT_FOUND);

    // Students cannot write, publish or upload; unauthenticated callers get 401.
    let res = env
        .call(Some(&stu1), Request::post(format!("/api/v1/content/{id}/unpublish")).body(Body::empty()).unwrap())
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = env
        .call(
            Some(&stu1),
            upload_request(
                "/api/v1/content",
                Body::from(multipart(Some(r#"{"title":"x"}"#), "a.pdf", "application/pdf", &pdf_bytes(100))),
                None,
            ),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(env.call(None, get(format!("/api/v1/content/{id}"))).await.status(), StatusCode::UNAUTHORIZED);

    let events = env.outbox().await;
    let granted = events.iter().find(|e| e["event_type"] == "CONTENT_PERMISSION_GRANTED").unwrap();
    assert_eq!(
        granted["payload"],
        json!({
            "content_id": id, "permission_id": grant["id"], "grantee_type": "user", "grantee_id": "stu-2",
            "permission": "view", "changed_by": "fac-1", "changed_at": granted["payload"]["changed_at"],
        })
    );
    assert!(events.iter().any(|e| e["event_type"] == "CONTENT_PERMISSION_REVOKED"));
    env.stop().await;
}

#[tokio::test]
async fn a_node_with_a_wrong_password_or_an_unsupported_hash_gets_401() {
    let env = ContentEnv::start(64 * MIB as u64).await;
    env.register_node("node-a", "R1", "right-password").await;
    env.registry_insert("node-m", "R1", "$7$101$c2FsdA==$aGFzaA==").await;
    let id = uuid::Uuid::new_v4();
    let uri = format!("/api/v1/edge/content/{id}/versions/1");
    let basic = |cred: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(cred));
    for auth in [
        Some(basic("node-a:wrong-password")),
        Some(basic("node-x:right-password")),
        Some(basic("node-m:anything")),
        Some(basic("no-colon")),
        Some("Basic !!!not-base64".to_owned()),
        Some("Bearer abc".to_owned()),
        None,
    ] {
        let mut b = Request::get(&uri);
        if let Some(a) = &auth {
            b = b.header("authorization", a);
        }
        let res = env.call(None, b.body(Body::empty()).unwrap()).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(res.headers()["www-authenticate"], "Basic realm=\"nimbus-node\"");
        assert_eq!(body_json(res).await["code"], "UNAUTHORIZED");
    }
    // The right password but an id that is not a UUID: 400, never a path.
    let res = env
        .call(
            None,
            Request::get("/api/v1/edge/content/..%2F..%2Fetc/versions/1")
                .header("authorization", basic("node-a:right-password"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    env.stop().await;
}
