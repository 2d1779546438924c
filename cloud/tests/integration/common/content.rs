//! The content service under test: its four databases (content, course, timetable, registry),
//! a fresh MongoDB database for GridFS, and its router mounted behind a test layer that puts a
//! `Caller` and a `RequestContext` into each request's extensions, as the gateway's
//! authentication middleware does.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, Response};
use bytes::Bytes;
use deadpool_postgres::Pool;
use nimbus_cloud::content::{ContentState, Store, UploadPolicy};
use nimbus_cloud::http::{Caller, RequestContext};
use tower::ServiceExt;

use super::TestDb;

/// `MONGODB_URI` or the local wire-compatible server.
pub fn mongodb_uri() -> String {
    std::env::var("MONGODB_URI").unwrap_or_else(|_| "mongodb://127.0.0.1:27017/?directConnection=true".into())
}

/// The boundary of the multipart bodies the helpers build.
pub const BOUNDARY: &str = "nimbus-test-boundary-7d2f";

/// The service and everything it talks to.
pub struct ContentEnv {
    pub content: TestDb,
    pub courses: TestDb,
    pub timetable: TestDb,
    pub registry: TestDb,
    pub mongo: mongodb::Database,
    pub store: Store,
    pub router: axum::Router,
}

async fn migrated(database: &str) -> TestDb {
    let db = TestDb::create().await;
    nimbus_cloud::db::migrate(&db.pool, nimbus_cloud::db::migrations_for(database).unwrap()).await.unwrap();
    db
}

impl ContentEnv {
    /// Everything fresh, with uploads limited to `max_bytes`.
    pub async fn start(max_bytes: u64) -> ContentEnv {
        let content = migrated("content_service_db").await;
        let courses = migrated("course_service_db").await;
        let timetable = migrated("timetable_service_db").await;
        let registry = migrated("edge_registry_db").await;
        let client = mongodb::Client::with_uri_str(mongodb_uri()).await.unwrap();
        let mongo = client.database(&format!("nimbus_test_{}", uuid::Uuid::new_v4().simple()));
        // Fail loudly when the MongoDB wire server is not there.
        mongo
            .run_command(mongodb::bson::doc! { "ping": 1 })
            .await
            .expect("MongoDB (SecantusDB) must be reachable (MONGODB_URI); run scripts/services.sh up");
        let store = Store::new(mongo.clone(), "fs");
        let policy = UploadPolicy {
            max_bytes,
            allowed_mime_types: nimbus_cloud::config::DEFAULT_CONTENT_MIME_TYPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        };
        let state = ContentState {
            pool: content.pool.clone(),
            courses: courses.pool.clone(),
            timetable: timetable.pool.clone(),
            registry: registry.pool.clone(),
            store: store.clone(),
            policy,
        };
        let router = nimbus_cloud::content::router(state).into_parts().0;
        ContentEnv { content, courses, timetable, registry, mongo, store, router }
    }

    /// Sends `req` as `caller` (none: unauthenticated) through the router.
    pub async fn call(&self, caller: Option<&Caller>, mut req: Request<Body>) -> Response<Body> {
        if let Some(c) = caller {
            req.extensions_mut().insert(c.clone());
        }
        req.extensions_mut()
            .insert(RequestContext { correlation_id: "req-content-test".into(), client_ip: Some("10.1.2.3".into()) });
        self.router.clone().oneshot(req).await.unwrap()
    }

    /// Enrols `student` in `course` (course_service_db; the course row itself is not needed).
    pub async fn enrol(&self, student: &str, course: uuid::Uuid) {
        let c = self.courses.pool.get().await.unwrap();
        c.batch_execute("SET session_replication_role = replica").await.unwrap();
        c.execute(
            "INSERT INTO course_enrollments (course_id, student_id, status, enrolled_by) VALUES ($1, $2, 'enrolled', 'admin')",
            &[&course, &student],
        )
        .await
        .unwrap();
        c.batch_execute("SET session_replication_role = DEFAULT").await.unwrap();
    }

    /// Books `course` into room `room` on a published timetable.
    pub async fn schedule(&self, room: &str, course: uuid::Uuid) {
        let c = self.timetable.pool.get().await.unwrap();
        let room_id: uuid::Uuid = c
            .query_one(
                "INSERT INTO rooms (room_number, building, capacity, room_type) VALUES ($1, 'Main', 40, 'lecture') \
                 ON CONFLICT (room_number) DO UPDATE SET building = 'Main' RETURNING id",
                &[&room],
            )
            .await
            .unwrap()
            .get(0);
        let tt: uuid::Uuid = c
            .query_one(
                "INSERT INTO timetables (name, semester_id, department_id, status, created_by) \
                 VALUES ('T', 's1', 'd1', 'published', 'admin') RETURNING id",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        c.execute(
            "INSERT INTO timetable_entries (timetable_id, course_id, course_name, faculty_id, room_id, day_of_week, \
                 start_time, end_time, created_by) VALUES ($1, $2, 'Course', 'fac-1', $3, 1, '09:00', '10:00', 'admin')",
            &[&tt, &course.to_string(), &room_id],
        )
        .await
        .unwrap();
    }

    /// Registers `node` in `room` with an argon2 hash of `password`.
    pub async fn register_node(&self, node: &str, room: &str, password: &str) {
        use argon2::PasswordHasher;
        let salt = argon2::password_hash::SaltString::encode_b64(b"nimbus-test-salt").unwrap();
        let hash = argon2::Argon2::default().hash_password(password.as_bytes(), &salt).unwrap().to_string();
        self.registry_insert(node, room, &hash).await;
    }

    /// Registers `node` with `hash` as its credential hash, verbatim.
    pub async fn registry_insert(&self, node: &str, room: &str, hash: &str) {
        let c = self.registry.pool.get().await.unwrap();
        c.execute("INSERT INTO nodes (node_id, room_id, credential_hash) VALUES ($1, $2, $3)", &[&node, &room, &hash])
            .await
            .unwrap();
    }

    /// The outbox rows `(event_type, payload JSON)` in order.
    pub async fn outbox(&self) -> Vec<serde_json::Value> {
        let c = self.content.pool.get().await.unwrap();
        c.query("SELECT payload FROM event_outbox ORDER BY id", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| serde_json::from_str(r.get::<_, &str>(0)).unwrap())
            .collect()
    }

    /// Drops the databases.
    pub async fn stop(self) {
        let _ = self.mongo.drop().await;
        for db in [self.content, self.courses, self.timetable, self.registry] {
            db.drop_now().await;
        }
    }

    /// The content pool.
    pub fn pool(&self) -> &Pool {
        &self.content.pool
    }
}

/// A caller with `roles` and the permissions the seed gives them.
pub fn caller(user: &str, roles: &[&str]) -> Caller {
    let mut permissions = BTreeSet::new();
    for role in roles {
        let p: &[&str] = match *role {
            "admin" => &["content:read", "content:write", "content:publish", "course:read"],
            "faculty" => &["content:read", "content:write", "content:publish", "course:read"],
            "student" => &["content:read", "course:read"],
            _ => &[],
        };
        permissions.extend(p.iter().map(|s| s.to_string()));
    }
    Caller {
        user_id: user.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        permissions,
        session_id: "s".into(),
        token_id: "t".into(),
    }
}

/// The multipart framing around a file: (everything before the file's bytes, everything after).
pub fn multipart_frame(metadata: Option<&str>, file_name: &str, mime: &str) -> (Vec<u8>, Vec<u8>) {
    let mut head = Vec::new();
    if let Some(m) = metadata {
        head.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"metadata\"\r\nContent-Type: application/json\r\n\r\n{m}\r\n"
            )
            .as_bytes(),
        );
    }
    head.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: {mime}\r\n\r\n"
        )
        .as_bytes(),
    );
    (head, format!("\r\n--{BOUNDARY}--\r\n").into_bytes())
}

/// A whole multipart upload body in memory.
pub fn multipart(metadata: Option<&str>, file_name: &str, mime: &str, bytes: &[u8]) -> Vec<u8> {
    let (mut head, tail) = multipart_frame(metadata, file_name, mime);
    head.extend_from_slice(bytes);
    head.extend_from_slice(&tail);
    head
}

/// A `POST` of a multipart body.
pub fn upload_request(uri: &str, body: Body, content_length: Option<usize>) -> Request<Body> {
    let mut b = Request::post(uri).header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"));
    if let Some(n) = content_length {
        b = b.header("content-length", n);
    }
    b.body(body).unwrap()
}

/// The body as bytes.
pub async fn body_bytes(res: Response<Body>) -> Bytes {
    axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap()
}

/// The body as JSON.
pub async fn body_json(res: Response<Body>) -> serde_json::Value {
    serde_json::from_slice(&body_bytes(res).await).unwrap()
}

/// `n` bytes of a PDF-looking file (magic number, then a deterministic pattern).
pub fn pdf_bytes(n: usize) -> Vec<u8> {
    let mut v = b"%PDF-1.7\n".to_vec();
    v.extend((0..n.saturating_sub(9)).map(|i| (i % 251) as u8));
    v.truncate(n);
    v
}
