//! The admin API under test: the full app (`nimbus_cloud::api::app`) over fresh databases (one
//! per cloud database, migrated), a Redis key prefix of its own and the real Kafka producer,
//! driven in-process with `tower::ServiceExt::oneshot`. The outbox is not relayed, so tests read
//! the exact events from `event_outbox`.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use nimbus_cloud::api::ApiState;
use nimbus_cloud::config::CloudConfig;
use nimbus_cloud::http::RouteSpec;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::TestDb;

/// The bootstrap administrator's credentials in every test API.
pub const ADMIN_EMAIL: &str = "root@campus.test";
/// Its password.
pub const ADMIN_PASSWORD: &str = "admin-password-1";
/// The password of every user [`TestApi::user`] creates.
pub const USER_PASSWORD: &str = "user-password-1";

/// A running test API.
pub struct TestApi {
    pub dbs: Vec<TestDb>,
    pub state: ApiState,
    pub router: Router,
    pub specs: Vec<RouteSpec>,
}

/// An answer: status, headers, JSON body (`Null` when empty or not JSON).
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl TestApi {
    /// An API with generous rate limits.
    pub async fn start() -> TestApi {
        TestApi::start_with(|_| {}).await
    }

    /// An API whose configuration `adjust` may change (limits, lockout) before it starts.
    pub async fn start_with(adjust: impl FnOnce(&mut CloudConfig)) -> TestApi {
        let (mut config, dbs) = test_config().await;
        adjust(&mut config);
        let state =
            ApiState::connect(&config).await.expect("PostgreSQL and Redis must be reachable (scripts/services.sh)");
        let (router, specs) = nimbus_cloud::api::app(&config, &state).await.unwrap();
        TestApi { dbs, state, router, specs }
    }

    /// The user service's database.
    pub fn user_db(&self) -> &deadpool_postgres::Pool {
        &self.state.users.pool
    }

    /// Sends `method uri` with an optional bearer token and JSON body.
    pub async fn call(&self, method: Method, uri: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        self.call_with(method, uri, token, body.map(|b| b.to_string()), &[]).await
    }

    /// Sends a raw body with extra headers.
    pub async fn call_with(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() && !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(body.map(Body::from).unwrap_or_else(Body::empty)).unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        // A stream of server-sent events never ends: its head is the answer.
        if headers.get("content-type").is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream")) {
            return Answer { status, headers, body: Value::Null };
        }
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer { status, headers, body }
    }

    /// Logs in; panics unless it succeeds. Returns the token pair.
    pub async fn login(&self, email: &str, password: &str) -> Value {
        let a = self
            .call(Method::POST, "/api/v1/auth/login", None, Some(json!({ "email": email, "password": password })))
            .await;
        assert_eq!(a.status, StatusCode::OK, "login of {email}: {}", a.body);
        a.body
    }

    /// The bootstrap administrator's access token.
    pub async fn admin_token(&self) -> String {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await["access_token"].as_str().unwrap().to_owned()
    }

    /// Creates a user of `role` (as the administrator); returns `(id, email)`.
    pub async fn user(&self, admin: &str, role: &str) -> (String, String) {
        let email = format!("{role}-{}@campus.test", uuid::Uuid::new_v4().simple());
        let a = self
            .call(
                Method::POST,
                "/api/v1/users",
                Some(admin),
                Some(json!({ "email": email, "password": USER_PASSWORD, "role": role, "first_name": "Test" })),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
        (a.body["id"].as_str().unwrap().to_owned(), email)
    }

    /// A fresh user of `role` and their access token.
    pub async fn token_of(&self, admin: &str, role: &str) -> (String, String) {
        let (id, email) = self.user(admin, role).await;
        let t = self.login(&email, USER_PASSWORD).await["access_token"].as_str().unwrap().to_owned();
        (id, t)
    }

    /// The envelopes in the outbox of `event_type`, oldest first.
    pub async fn events(&self, event_type: &str) -> Vec<Value> {
        let c = self.user_db().get().await.unwrap();
        let rows = c.query("SELECT payload FROM event_outbox ORDER BY id", &[]).await.unwrap();
        rows.iter()
            .map(|r| serde_json::from_str::<Value>(r.get::<_, &str>(0)).unwrap())
            .filter(|e| e["event_type"] == event_type)
            .collect()
    }

    /// Drops the databases.
    pub async fn finish(self) {
        for db in self.dbs {
            db.drop_now().await;
        }
    }
}

/// A configuration for a test API: fresh migrated databases (returned, to drop at the end), a
/// Redis prefix of its own, the bootstrap administrator, generous rate limits and client
/// addresses from `X-Forwarded-For`.
pub async fn test_config() -> (CloudConfig, Vec<TestDb>) {
    let mut config = CloudConfig::default();
    config.kafka.brokers = super::kafka_brokers();
    config.database.url = super::database_server();
    config.database.max_connections = 8;
    let mut dbs = Vec::new();
    for m in nimbus_cloud::db::ALL {
        let db = TestDb::create().await;
        nimbus_cloud::db::migrate(&db.pool, m).await.unwrap();
        if m.database == "edge_registry_db" {
            config.database.registry_database = db.name.clone();
        }
        config.database.urls.insert(m.database.to_owned(), db.url.clone());
        dbs.push(db);
    }
    config.api.redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    config.api.redis_prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    config.api.admin_email = Some(ADMIN_EMAIL.into());
    config.api.admin_password = Some(ADMIN_PASSWORD.into());
    config.api.rate_limit_ip = 100_000;
    config.api.rate_limit_user = 100_000;
    config.api.rate_limit_login = 100_000;
    config.api.trust_forwarded_for = true;
    (config, dbs)
}

/// Every path parameter of `path` replaced by a random UUID.
pub fn fill_path(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with(':') || seg.starts_with('*') { uuid::Uuid::new_v4().to_string() } else { seg.to_owned() }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `nimbus_cloud::api::run` with `config` on a free loopback port until `stop`, for tests that
/// need real TCP (WebSockets, a browser); returns once `/health` answers.
pub async fn serve(
    config: &CloudConfig,
    stop: &tokio_util::sync::CancellationToken,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<nimbus_cloud::error::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(nimbus_cloud::api::run(config.clone(), listener, stop.clone()));
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while http.get(format!("http://{addr}/health")).send().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "the api on {addr} did not start");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    (addr, server)
}
