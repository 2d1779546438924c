//! The admin routes over the services, mounted without the gateway: a layer stands in for the
//! authentication middleware and puts the given caller into each request, as the gateway does
//! after validating a token.

use std::collections::BTreeSet;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request};
use nimbus_cloud::api::services::routes_with;
use nimbus_cloud::http::ServicesState;
use nimbus_cloud::http::{Caller, RequestContext};
use serde_json::Value;
use tower::ServiceExt;

use super::TestDb;

/// One database per service, migrated, and the state over them.
pub struct Services {
    pub state: ServicesState,
    pub dbs: Vec<TestDb>,
}

impl Services {
    pub async fn create() -> Services {
        let mut dbs = Vec::new();
        for name in [
            "timetable_service_db",
            "course_service_db",
            "attendance_service_db",
            "edge_registry_db",
            "notification_service_db",
            "announcement_service_db",
            "user_service_db",
            "communication_service_db",
            "content_service_db",
        ] {
            let db = TestDb::create().await;
            nimbus_cloud::db::migrate(&db.pool, nimbus_cloud::db::migrations_for(name).unwrap()).await.unwrap();
            dbs.push(db);
        }
        let brokers = super::kafka_brokers();
        nimbus_cloud::kafka::ensure_topics(&brokers, nimbus_core::topics::Environment::Development)
            .await
            .expect("Kafka must be reachable (NIMBUS_TEST_KAFKA_BROKERS)");
        let state = ServicesState {
            timetable: dbs[0].pool.clone(),
            course: dbs[1].pool.clone(),
            attendance: dbs[2].pool.clone(),
            registry: dbs[3].pool.clone(),
            notification: dbs[4].pool.clone(),
            announcement: dbs[5].pool.clone(),
            users: dbs[6].pool.clone(),
            communication: dbs[7].pool.clone(),
            content: dbs[8].pool.clone(),
            producer: nimbus_cloud::kafka::at_least_once_producer(&brokers).unwrap(),
            brokers,
            redis: (super::redis_manager().await, format!("nimbus_test_{}:", uuid::Uuid::new_v4().simple())),
        };
        Services { state, dbs }
    }

    pub async fn drop_now(self) {
        for db in self.dbs {
            db.drop_now().await;
        }
    }

    /// The routes as `caller` reaches them.
    pub fn as_caller(&self, caller: &Caller) -> Client {
        let caller = caller.clone();
        let router = routes_with(self.state.clone()).into_parts().0.layer(axum::middleware::from_fn(
            move |mut req: axum::extract::Request, next: axum::middleware::Next| {
                req.extensions_mut().insert(caller.clone());
                req.extensions_mut()
                    .insert(RequestContext { correlation_id: "corr-test".into(), client_ip: Some("127.0.0.1".into()) });
                next.run(req)
            },
        ));
        Client { router }
    }
}

/// A caller with a role's permissions as the seeded role table grants them.
pub fn caller(user_id: &str, role: &str) -> Caller {
    let permissions: &[&str] = match role {
        "admin" => &[
            "user:read",
            "user:write",
            "role:write",
            "course:read",
            "course:write",
            "enrollment:read",
            "enrollment:write",
            "timetable:read",
            "timetable:write",
            "node:read",
            "node:write",
            "card:write",
            "attendance:read",
            "dlq:read",
            "dlq:write",
            "content:read",
            "content:write",
            "content:publish",
        ],
        "faculty" => &[
            "course:read",
            "enrollment:read",
            "timetable:read",
            "attendance:read",
            "content:read",
            "content:write",
            "content:publish",
        ],
        "student" => &["course:read", "timetable:read", "content:read"],
        _ => &[],
    };
    Caller {
        user_id: user_id.into(),
        roles: vec![role.into()],
        permissions: permissions.iter().map(|p| p.to_string()).collect::<BTreeSet<_>>(),
        session_id: "session".into(),
        token_id: "token".into(),
    }
}

pub struct Client {
    router: Router,
}

/// An answer: status, headers we look at, body as JSON (or as text in `text`).
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub disposition: String,
    pub json: Value,
    pub text: String,
}

impl Client {
    pub async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> Answer {
        self.call_with(method, uri, body, &[]).await
    }

    pub async fn call_with(&self, method: Method, uri: &str, body: Option<Value>, headers: &[(&str, &str)]) -> Answer {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = match body {
            Some(b) => req.header("content-type", "application/json").body(Body::from(b.to_string())).unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        let res = self.router.clone().oneshot(req).await.unwrap();
        let header = |h| res.headers().get(h).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let (content_type, disposition) = (header("content-type"), header("content-disposition"));
        let status = res.status().as_u16();
        let bytes = axum::body::to_bytes(res.into_body(), 16 << 20).await.unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Answer { status, content_type, disposition, json: serde_json::from_str(&text).unwrap_or(Value::Null), text }
    }
}
