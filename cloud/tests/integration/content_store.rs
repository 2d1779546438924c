//! The content service against real PostgreSQL and the MongoDB wire server (SecantusDB):
//! streaming uploads into GridFS, versions, ranged downloads, publication into node manifests,
//! the nodes' download route, and the events each command leaves in the outbox.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::common;
use crate::common::content::*;

const MIB: usize = 1024 * 1024;

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

async fn upload(
    env: &ContentEnv,
    who: &nimbus_cloud::http::Caller,
    meta: serde_json::Value,
    name: &str,
    bytes: &[u8],
) -> serde_json::Value {
    let body = multipart(Some(&meta.to_string()), name, "application/pdf", bytes);
    let res = env.call(Some(who), upload_request("/api/v1/content", Body::from(body), None)).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    body_json(res).await
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn get_range(uri: &str, range: &str) -> Request<Body> {
    Request::get(uri).header("range", range).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn an_upload_streams_into_gridfs_chunk_by_chunk_and_is_hashed_while_streaming() {
    let env = ContentEnv::start(512 * MIB as u64).await;
    let faculty = caller("fac-1", &["faculty"]);
    let file = pdf_bytes(6 * MIB + 123);
    let (head, tail) = multipart_frame(
        Some(&json!({"title": "Week 1 notes", "course_ids": ["c-1"], "tags": ["Week-1", "arrays"]}).to_string()),
        "week1.pdf",
        "application/pdf",
    );
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body =
        Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) }));
    let mut req = upload_request("/api/v1/content", body, None);
    req.extensions_mut().insert(faculty.clone());
    req.extensions_mut()
        .insert(nimbus_cloud::http::RequestContext { correlation_id: "req-upload-1".into(), client_ip: None });
    let router = env.router.clone();
    let call = tokio::spawn(async move { tower::ServiceExt::oneshot(router, req).await.unwrap() });

    tx.send(Ok(head)).await.unwrap();
    let half = 3 * MIB;
    for piece in file[..half].chunks(64 * 1024) {
        tx.send(Ok(piece.to_vec())).await.unwrap();
    }
    // While the rest of the body has not even been sent, GridFS already holds the first
    // 255 KiB chunks: the upload is written as it arrives, not buffered.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let chunks = env.store.total_chunk_count().await.unwrap();
        if chunks >= 10 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "only {chunks} chunks written after 3 MiB were sent");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(env.store.file_count().await.unwrap(), 0, "no file is visible before the upload completes");
    for piece in file[half..].chunks(64 * 1024) {
        tx.send(Ok(piece.to_vec())).await.unwrap();
    }
    tx.send(Ok(tail)).await.unwrap();
    drop(tx);
    let res = call.await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let item = body_json(res).await;
    assert_eq!(item["sha256"], sha(&file));
    assert_eq!(item["file_size"], file.len() as i64);
    assert_eq!(item["mime_type"], "application/pdf");
    assert_eq!(item["content_type"], "document");
    assert_eq!(item["current_version"], 1);
    assert_eq!(item["tags"], json!(["arrays", "week-1"]));
    let mongo_id = item["mongo_document_id"].as_str().unwrap().to_owned();
    assert_eq!(mongo_id.len(), 24);
    assert_eq!(env.store.file_count().await.unwrap(), 1);

    // The whole file reads back byte for byte.
    let id = item["id"].as_str().unwrap();
    let res = env.call(Some(&faculty), get(&format!("/api/v1/content/{id}/download"))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_bytes(res).await.as_ref(), &file[..]);

    let events = env.outbox().await;
    assert_eq!(events[0]["event_type"], "CONTENT_CREATED");
    assert_eq!(events[0]["service_name"], "content-service");
    assert_eq!(events[0]["correlation_id"], "req-upload-1");
    assert_eq!(
        events[0]["payload"],
        json!({
            "content_id": id,
            "mongo_document_id": mongo_id,
            "title": "Week 1 notes",
            "description": "",
            "content_type": "document",
            "mime_type": "application/pdf",
            "file_size": file.len(),
            "created_by": "fac-1",
            "course_ids": ["c-1"],
            "subject_ids": [],
            "department_id": "",
            "is_published": false,
            "tags": ["arrays", "week-1"],
        }),
        "every field of the seed's ContentCreatedPayload, the empty ones as Go writes them"
    );
    env.stop().await;
}

#[tokio::test]
async fn range_reads_cross_chunk_boundaries_and_answer_conditional_requests() {
    let env = ContentEnv::start(512 * MIB as u64).await;
    let admin = caller("admin-1", &["admin"]);
    let file = pdf_bytes(MIB);
    let item = upload(&env, &admin, json!({"title": "Slides"}), "../../evil;name%.pdf", &file).await;
    assert_eq!(item["file_name"], "evil;name%.pdf");
    let uri = format!("/api/v1/content/{}/download", item["id"].as_str().unwrap());
    let chunk = 255 * 1024;

    let res = env.call(Some(&admin), get_range(&uri, &format!("bytes={}-{}", chunk - 10, chunk + 9))).await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    let h = res.headers().clone();
    assert_eq!(h["content-range"], format!("bytes {}-{}/{}", chunk - 10, chunk + 9, file.len()));
    assert_eq!(h["content-length"], "20");
    assert_eq!(h["etag"], format!("\"{}\"", sha(&file)));
    assert_eq!(h["content-type"], "application/pdf");
    assert_eq!(h["accept-ranges"], "bytes");
    assert_eq!(
        h["content-disposition"],
        "attachment; filename=\"evil_name_.pdf\"; filename*=UTF-8''evil%3Bname%25.pdf"
    );
    assert_eq!(body_bytes(res).await.as_ref(), &file[chunk - 10..chunk + 10]);

    // Across three chunks, an open-ended resume, and a suffix.
    let res = env.call(Some(&admin), get_range(&uri, &format!("bytes=100-{}", 3 * chunk + 5))).await;
    assert_eq!(body_bytes(res).await.as_ref(), &file[100..3 * chunk + 6]);
    let res = env.call(Some(&admin), get_range(&uri, "bytes=700000-")).await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(body_bytes(res).await.as_ref(), &file[700_000..]);
    let res = env.call(Some(&admin), get_range(&uri, "bytes=-5")).await;
    assert_eq!(body_bytes(res).await.as_ref(), &file[file.len() - 5..]);

    let res = env.call(Some(&admin), get_range(&uri, &format!("bytes={}-", file.len()))).await;
    assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(res.headers()["content-range"], format!("bytes */{}", file.len()));
    assert_eq!(body_json(res).await["code"], "RANGE_NOT_SATISFIABLE");

    let req = Request::get(&uri).header("if-none-match", format!("\"{}\"", sha(&file))).body(Body::empty()).unwrap();
    assert_eq!(env.call(Some(&admin), req).await.status(), StatusCode::NOT_MODIFIED);

    // Each download is in the access log and announced.
    let c = env.pool().get().await.unwrap();
    let logged: i64 = c.query_one("SELECT count(*) FROM content_access_logs", &[]).await.unwrap().get(0);
    assert_eq!(logged, 4);
    let accessed: Vec<_> = env.outbox().await.into_iter().filter(|e| e["event_type"] == "CONTENT_ACCESSED").collect();
    assert_eq!(accessed.len(), 4);
    let p = &accessed[0]["payload"];
    assert_eq!(p["user_id"], "admin-1");
    assert_eq!(p["access_type"], "download");
    assert_eq!(p["ip_address"], "10.1.2.3");
    assert_eq!(p["content_id"], item["id"]);

    // If-Range: this version's tag keeps the range; another (a resume of other bytes) gets the
    // whole file. If-None-Match compares weakly.
    let etag = format!("\"{}\"", sha(&file));
    let ranged = |if_range: &str| {
        Request::get(&uri).header("range", "bytes=0-9").header("if-range", if_range).body(Body::empty()).unwrap()
    };
    let res = env.call(Some(&admin), ranged(&etag)).await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(body_bytes(res).await.as_ref(), &file[..10]);
    let res = env.call(Some(&admin), ranged("\"old\"")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get("content-range").is_none());
    assert_eq!(body_bytes(res).await.len(), file.len());
    let req = Request::get(&uri).header("if-none-match", format!("W/{etag}")).body(Body::empty()).unwrap();
    assert_eq!(env.call(Some(&admin), req).await.status(), StatusCode::NOT_MODIFIED);
    env.stop().await;
}

#[tokio::test]
async fn a_new_version_becomes_current_and_is_announced_with_its_checksum() {
    let env = ContentEnv::start(512 * MIB as u64).await;
    let faculty = caller("fac-1", &["faculty"]);
    let v1 = pdf_bytes(300_000);
    let item = upload(&env, &faculty, json!({"title": "Lab sheet"}), "lab.pdf", &v1).await;
    let id = item["id"].as_str().unwrap().to_owned();
    let v2 = b"Lab sheet, corrected: exercise 3 uses a queue.\n".repeat(1000);
    let body = multipart(Some(r#"{"change_notes":"fix exercise 3"}"#), "lab.txt", "text/plain; charset=utf-8", &v2);
    let res = env
        .call(Some(&faculty), upload_request(&format!("/api/v1/content/{id}/versions"), Body::from(body), None))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let version = body_json(res).await;
    assert_eq!(version["version_number"], 2);
    assert_eq!(version["sha256"], sha(&v2));

    // Another faculty member may not add versions to it.
    let other = caller("fac-2", &["faculty"]);
    let body = multipart(None, "x.txt", "text/plain", b"hello");
    let res =
        env.call(Some(&other), upload_request(&format!("/api/v1/content/{id}/versions"), Body::from(body), None)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let res = env.call(Some(&faculty), get(&format!("/api/v1/content/{id}/versions"))).await;
    let versions = body_json(res).await;
    assert_eq!(versions.as_array().unwrap().len(), 2);
    assert_eq!(versions[0]["version_number"], 2);
    assert_eq!(versions[1]["sha256"], sha(&v1));
    let res = env.call(Some(&faculty), get(&format!("/api/v1/content/{id}/download"))).await;
    assert_eq!(res.headers()["content-type"], "text/plain");
    assert_eq!(body_bytes(res).await.as_ref(), &v2[..]);
    let res = env.call(Some(&faculty), get(&format!("/api/v1/content/{id}/versions/1/download"))).await;
    assert_eq!(body_bytes(res).await.as_ref(), &v1[..]);

    let events = env.outbox().await;
    let versioned = events.iter().find(|e| e["event_type"] == "CONTENT_VERSIONED").unwrap();
    let p = &versioned["payload"];
    assert_eq!(p["content_id"], id);
    assert_eq!(p["version_number"], 2);
    assert_eq!(p["mongo_document_id"], version["mongo_document_id"]);
    assert_eq!(p["mime_type"], "text/plain");
    assert_eq!(p["file_size"], v2.len());
    assert_eq!(p["sha256"], sha(&v2));
    assert_eq!(p["change_notes"], "fix exercise 3");
    assert_eq!(p["created_by"], "fac-1");
    env.stop().await;
}

#[tokio::test]
async fn publishing_puts_content_into_its_courses_manifest_and_unpublishing_takes_it_out() {
    let env = ContentEnv::start(512 * MIB as u64).await;
    let faculty = caller("fac-1", &["faculty"]);
    let file = pdf_bytes(50_000);
    let item =
        upload(&env, &faculty, json!({"title": "Syllabus", "course_ids": ["c-1", "c-9"]}), "syllabus.pdf", &file).await;
    let id = item["id"].as_str().unwrap().to_owned();
    let courses = vec!["c-1".to_owned(), "c-2".to_owned()];
    let manifest = |env: &ContentEnv| {
        let pool = env.pool().clone();
        let courses = courses.clone();
        async move {
            let c = pool.get().await.unwrap();
            nimbus_cloud::content::manifest(&c, &courses, "http://cloud.test/").await.unwrap()
        }
    };
    assert!(manifest(&env).await.is_empty(), "unpublished content is in no manifest");

    let res = env
        .call(Some(&faculty), Request::post(format!("/api/v1/content/{id}/publish")).body(Body::empty()).unwrap())
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let items = manifest(&env).await;
    assert_eq!(items.len(), 1);
    let m = &items[0];
    assert_eq!(m.content_id, id);
    assert_eq!((m.version, m.size_bytes, m.sha256.as_str()), (1, file.len() as u64, sha(&file).as_str()));
    assert_eq!(m.course_ids, vec!["c-1".to_owned()]);
    assert_eq!(m.url, format!("http://cloud.test/api/v1/edge/content/{id}/versions/1"));
    assert_eq!(
        (m.file_name.as_str(), m.mime_type.as_str(), m.title.as_str()),
        ("syllabus.pdf", "application/pdf", "Syllabus")
    );

    // Remapping to other courses takes it out of c-1's manifest.
    let req = Request::put(format!("/api/v1/content/{id}/courses"))
        .header("content-type", "application/json")
        .body(Body::from(r#"{"course_ids":["c-7"]}"#))
        .unwrap();
    assert_eq!(env.call(Some(&faculty), req).await.status(), StatusCode::OK);
    assert!(manifest(&env).await.is_empty());
    let req = Request::put(format!("/api/v1/content/{id}/courses"))
        .header("content-type", "application/json")
        .body(Body::from(r#"{"course_ids":["c-1"]}"#))
        .unwrap();
    assert_eq!(env.call(Some(&faculty), req).await.status(), StatusCode::OK);
    assert_eq!(manifest(&env).await.len(), 1);

    let res = env
        .call(Some(&faculty), Request::post(format!("/api/v1/content/{id}/unpublish")).body(Body::empty()).unwrap())
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(manifest(&env).await.is_empty());

    let events = env.outbox().await;
    let types: Vec<&str> = events.iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["CONTENT_CREATED", "CONTENT_PUBLISHED", "CONTENT_UPDATED", "CONTENT_UPDATED", "CONTENT_UNPUBLISHED"]
    );
    let published = &events[1]["payload"];
    assert_eq!(published["content_id"], id);
    assert_eq!(published["title"], "Syllabus");
    assert_eq!(published["course_ids"], json!(["c-1", "c-9"]));
    assert_eq!(published["changed_by"], "fac-1");
    assert_eq!(
        events[2]["payload"]["changes"]["course_ids"],
        json!({"old_value": ["c-1", "c-9"], "new_value": ["c-7"]})
    );
    for e in &events {
        assert_eq!(e["correlation_id"], "req-content-test");
        assert_eq!(e["metadata"]["actor_id"], "fac-1");
    }
    env.stop().await;
}

#[tokio::test]
async fn a_node_downloads_the_content_of_its_rooms_courses_and_resumes_with_range() {
    let env = ContentEnv::start(512 * MIB as u64).await;
    let admin = caller("admin-1", &["admin"]);
    let course = uuid::Uuid::new_v4();
    env.schedule("R101", course).await;
    env.register_node("node-r101", "R101", "s3cret-node-pw").await;
    let file = pdf_bytes(700_000);
    let item = upload(
        &env,
        &admin,
        json!({"title": "Lecture 1", "course_ids": [course.to_string()], "is_published": true}),
        "l1.pdf",
        &file,
    )
    .await;
    let id = item["id"].as_str().unwrap().to_owned();
    let other = upload(
        &env,
        &admin,
        json!({"title": "Other", "course_ids": ["c-elsewhere"], "is_published": true}),
        "o.pdf",
        &file,
    )
    .await;

    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("node-r101:s3cret-node-pw"));
    let node_get = |uri: String, range: Option<&str>| {
        let mut b = Request::get(uri).header("authorization", basic.clone());
        if let Some(r) = range {
            b = b.header("range", r);
        }
        b.body(Body::empty()).unwrap()
    };
    let res = env.call(None, node_get(format!("/api/v1/edge/content/{id}/versions/1"), None)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-length"], file.len().to_string());
    assert_eq!(body_bytes(res).await.as_ref(), &file[..]);
    // Resuming after 300000 bytes, as the node's downloader does.
    let res = env.call(None, node_get(format!("/api/v1/edge/content/{id}/versions/1"), Some("bytes=300000-"))).await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert!(res.headers()["content-range"].to_str().unwrap().starts_with("bytes 300000-"));
    assert_eq!(body_bytes(res).await.as_ref(), &file[300_000..]);
    // Content of a course not on the room's timetable is not there for this node.
    let res = env
        .call(None, node_get(format!("/api/v1/edge/content/{}/versions/1", other["id"].as_str().unwrap()), None))
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = env.call(None, node_get(format!("/api/v1/edge/content/{id}/versions/7"), None)).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    let c = env.pool().get().await.unwrap();
    let rows =
        c.query("SELECT user_id, device_type, range_start FROM content_access_logs ORDER BY id", &[]).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get::<_, &str>(0), "node:node-r101");
    assert_eq!(rows[0].get::<_, Option<&str>>(1), Some("edge-node"));
    assert_eq!(rows[1].get::<_, Option<i64>>(2), Some(300_000));
    env.stop().await;
}

#[tokio::test]
async fn search_filters_by_title_tag_and_course_with_paging_and_sorting() {
    let env = ContentEnv::start(512 * MIB as u64).await;
    let faculty = caller("fac-1", &["faculty"]);
    for (title, tag, course) in
        [("Arrays intro", "week-1", "c-1"), ("Linked lists", "week-2", "c-1"), ("Graphs", "week-1", "c-2")]
    {
        upload(
            &env,
            &faculty,
            json!({"title": title, "tags": [tag], "course_ids": [course]}),
            "f.pdf",
            &pdf_bytes(1000),
        )
        .await;
    }
    let titles = |v: serde_json::Value| -> Vec<String> {
        v["items"].as_array().unwrap().iter().map(|i| i["title"].as_str().unwrap().to_owned()).collect()
    };
    async fn q(env: &ContentEnv, who: &nimbus_cloud::http::Caller, query: &str) -> serde_json::Value {
        let res = env.call(Some(who), get(&format!("/api/v1/content?{query}"))).await;
        assert_eq!(res.status(), StatusCode::OK, "{query}");
        body_json(res).await
    }
    assert_eq!(titles(q(&env, &faculty, "tag=week-1&sort=title").await), ["Arrays intro", "Graphs"]);
    assert_eq!(titles(q(&env, &faculty, "course_id=c-1&sort=-title").await), ["Linked lists", "Arrays intro"]);
    assert_eq!(titles(q(&env, &faculty, "title=LIST").await), ["Linked lists"]);
    assert_eq!(titles(q(&env, &faculty, "title=%25").await), Vec::<String>::new(), "% is matched literally");
    let page = q(&env, &faculty, "sort=title&limit=2&offset=1").await;
    assert_eq!(titles(page.clone()), ["Graphs", "Linked lists"]);
    assert_eq!(page["total"], 3);
    let res = env.call(Some(&faculty), get("/api/v1/content?sort=password")).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = env.call(Some(&faculty), get("/api/v1/content?nonsense=1")).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    env.stop().await;
}

#[tokio::test]
async fn deleting_hides_content_everywhere_and_is_announced_as_soft() {
    let env = ContentEnv::start(512 * MIB as u64).await;
    let faculty = caller("fac-1", &["faculty"]);
    let item = upload(
        &env,
        &faculty,
        json!({"title": "Old", "course_ids": ["c-1"], "is_published": true}),
        "o.pdf",
        &pdf_bytes(2000),
    )
    .await;
    let id = item["id"].as_str().unwrap().to_owned();
    let res =
        env.call(Some(&faculty), Request::delete(format!("/api/v1/content/{id}")).body(Body::empty()).unwrap()).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(env.call(Some(&faculty), get(&format!("/api/v1/content/{id}"))).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        env.call(Some(&faculty), get(&format!("/api/v1/content/{id}/download"))).await.status(),
        StatusCode::NOT_FOUND
    );
    let c = env.pool().get().await.unwrap();
    assert!(nimbus_cloud::content::manifest(&c, &["c-1".to_owned()], "http://x").await.unwrap().is_empty());
    let events = env.outbox().await;
    let deleted = events.iter().find(|e| e["event_type"] == "CONTENT_DELETED").unwrap();
    assert_eq!(deleted["payload"]["content_id"], id);
    assert_eq!(deleted["payload"]["mongo_document_id"], item["mongo_document_id"]);
    assert_eq!(deleted["payload"]["deleted_by"], "fac-1");
    assert_eq!(deleted["payload"]["is_soft_delete"], true);
    env.stop().await;
}

#[tokio::test]
async fn the_relay_publishes_content_events_to_kafka_keyed_by_content_id() {
    use rdkafka::Message;
    use rdkafka::consumer::{Consumer, StreamConsumer};
    let brokers = common::kafka_brokers();
    nimbus_cloud::kafka::ensure_topics(&brokers, nimbus_core::topics::Environment::Development)
        .await
        .expect("Kafka must be reachable (NIMBUS_TEST_KAFKA_BROKERS)");
    let group = format!("content-relay-test-{}", uuid::Uuid::new_v4().simple());
    common::prime_group(&brokers, &group, &[nimbus_core::topics::Topic::ContentEvents]).await;

    let env = ContentEnv::start(512 * MIB as u64).await;
    let item =
        upload(&env, &caller("fac-1", &["faculty"]), json!({"title": "Relayed"}), "r.pdf", &pdf_bytes(1000)).await;
    let id = item["id"].as_str().unwrap().to_owned();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let relay = nimbus_cloud::content::spawn_relay(
        env.pool().clone(),
        nimbus_cloud::kafka::producer(&brokers).unwrap(),
        shutdown.clone(),
    );

    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["content.events"]).unwrap();
    let found = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        loop {
            let m = consumer.recv().await.unwrap();
            if m.key() == Some(id.as_bytes()) {
                return serde_json::from_slice::<serde_json::Value>(m.payload().unwrap()).unwrap();
            }
        }
    })
    .await
    .expect("CONTENT_CREATED reached content.events within 60 s");
    assert_eq!(found["event_type"], "CONTENT_CREATED");
    assert_eq!(found["payload"]["content_id"], id);
    // The relay deletes what the broker confirmed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !env.outbox().await.is_empty() {
        assert!(std::time::Instant::now() < deadline, "outbox not emptied");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    relay.await.unwrap();
    env.stop().await;
}
