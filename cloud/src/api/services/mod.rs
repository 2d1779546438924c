//! The admin routes over the campus services: timetable ([`timetable`]), course
//! ([`course`]), edge nodes ([`nodes`]), attendance reports ([`reports`]), the dead-letter queue
//! ([`dlq`]) and the cards the nodes could not place ([`cards`]).
//!
//! Handlers are thin: they check nothing the route table does not (access is a route layer, see
//! [`super::routes`]), turn the request into the service command's input and the caller into its
//! [`crate::actor::Actor`], and map the service's [`Error`] onto the seed's `AppError`.

pub mod cards;
pub mod course;
pub mod dlq;
pub mod nodes;
pub mod reports;
pub mod timetable;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use deadpool_postgres::Pool;
use rdkafka::producer::FutureProducer;
use serde::de::DeserializeOwned;
use serde_json::json;
use utoipa::OpenApi as _;

use super::{ApiRoutes, AppError};
use crate::cli::nodes::migrate_database;
use crate::config::CloudConfig;
use crate::db;
use crate::error::{Error, Result};
use crate::listing::ListQuery;

/// What the services' handlers need: a pool per service database and Kafka (DLQ replay).
#[derive(Clone)]
pub struct ServicesState {
    /// `timetable_service_db`.
    pub timetable: Pool,
    /// `course_service_db`.
    pub course: Pool,
    /// `attendance_service_db` (reports only read it).
    pub attendance: Pool,
    /// `edge_registry_db` (nodes, cards, DLQ replay records).
    pub registry: Pool,
    /// The Kafka bootstrap servers, for reading `dlq.events`.
    pub brokers: String,
    /// Producer for replays: at-least-once is right, the consumers are idempotent on `event_id`.
    pub producer: FutureProducer,
}

impl ServicesState {
    /// Creates and migrates the databases if needed (the API may start before the workers) and
    /// connects.
    pub async fn connect(config: &CloudConfig) -> Result<Self> {
        let pool = |database: &str| -> Result<Pool> {
            db::pool(&config.database_url_for(database), config.database.max_connections)
        };
        for database in ["timetable_service_db", "course_service_db", "attendance_service_db", "edge_registry_db"] {
            let m =
                db::migrations_for(database).ok_or_else(|| Error::Config(format!("no migrations for {database}")))?;
            migrate_database(config, m).await?;
        }
        // A replay needs its target topic; the ingest usually created them already. In the
        // background: the API serves (and reports Kafka unready) while Kafka is down.
        let (brokers, env) = (config.kafka.brokers.clone(), config.environment);
        tokio::spawn(async move {
            if let Err(e) = crate::kafka::ensure_topics(&brokers, env).await {
                tracing::warn!(error = %e, "cannot create the Kafka topics; DLQ replays fail until Kafka is back");
            }
        });
        Ok(ServicesState {
            timetable: pool("timetable_service_db")?,
            course: pool("course_service_db")?,
            attendance: pool("attendance_service_db")?,
            registry: pool("edge_registry_db")?,
            brokers: config.kafka.brokers.clone(),
            producer: crate::kafka::at_least_once_producer(&config.kafka.brokers)?,
        })
    }
}

/// The services' routes, with their state built from `config`.
pub async fn routes(config: &CloudConfig) -> Result<ApiRoutes> {
    Ok(routes_with(ServicesState::connect(config).await?))
}

/// The services' routes over an existing state.
pub fn routes_with(state: ServicesState) -> ApiRoutes {
    ApiRoutes::new()
        .merge(timetable::routes())
        .merge(course::routes())
        .merge(nodes::routes())
        .merge(reports::routes())
        .merge(dlq::routes())
        .merge(cards::routes())
        .with_state(state)
}

/// The services' part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = timetable::Doc::openapi();
    doc.merge(course::Doc::openapi());
    doc.merge(nodes::Doc::openapi());
    doc.merge(reports::Doc::openapi());
    doc.merge(dlq::Doc::openapi());
    doc.merge(cards::Doc::openapi());
    doc
}

/// A list request's query string split in two: the paging/sorting keys (`limit`, `offset`,
/// `sort`) into a [`ListQuery`], every other key into the route's filter `F`. Unknown keys and
/// values of the wrong type are a `VALIDATION_ERROR` naming the problem.
pub struct Listing<F> {
    /// The filters.
    pub filter: F,
    /// Paging and sorting.
    pub query: ListQuery,
}

#[axum::async_trait]
impl<F: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Listing<F> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        let raw = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw).map_err(bad_query)?;
        let (paging, filters): (Vec<_>, Vec<_>) =
            pairs.into_iter().partition(|(k, _)| matches!(k.as_str(), "limit" | "offset" | "sort"));
        let reencode = |p: &Vec<(String, String)>| serde_urlencoded::to_string(p).unwrap_or_default();
        let query = serde_urlencoded::from_str(&reencode(&paging)).map_err(bad_query)?;
        let filter = serde_urlencoded::from_str(&reencode(&filters)).map_err(bad_query)?;
        Ok(Listing { filter, query })
    }
}

/// `?key=value` parameters of a non-list route, rejected as the seed's `AppError`.
pub struct Params<T>(pub T);

#[axum::async_trait]
impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        serde_urlencoded::from_str(parts.uri.query().unwrap_or("")).map(Params).map_err(bad_query)
    }
}

fn bad_query(e: serde_urlencoded::de::Error) -> AppError {
    AppError::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "Invalid query parameters")
        .with_details(json!({ "problem": e.to_string() }))
}

/// The caller as the actor of a command: who (from the token) within which request (the
/// correlation id). Routes that take it are never public, so a missing caller is a 401.
pub struct Acting(pub crate::actor::Actor);

#[axum::async_trait]
impl<S: Send + Sync> FromRequestParts<S> for Acting {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        let caller =
            parts.extensions.get::<super::Caller>().ok_or_else(|| AppError::unauthorized("Authentication required"))?;
        let mut actor = crate::actor::Actor::user(caller.user_id.clone(), String::new());
        actor.correlation_id = None;
        if let Some(ctx) = parts.extensions.get::<super::RequestContext>() {
            actor = caller.actor(ctx);
        }
        Ok(Acting(actor))
    }
}

/// The `AppError` of a service error (shorthand for `map_err(AppError::from)`).
pub(crate) fn app(e: Error) -> AppError {
    AppError::from(e)
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct RoomFilter {
        building: Option<String>,
        capacity_min: Option<i32>,
    }

    async fn listing(uri: &str) -> Result<Listing<RoomFilter>, AppError> {
        let (mut parts, ()) = Request::builder().uri(uri).body(()).unwrap().into_parts();
        Listing::<RoomFilter>::from_request_parts(&mut parts, &()).await
    }

    #[tokio::test]
    async fn paging_keys_and_filters_go_to_their_own_structs() {
        let l = listing("/x?building=Main%20Hall&limit=5&sort=-capacity&capacity_min=30").await.unwrap();
        assert_eq!(l.filter, RoomFilter { building: Some("Main Hall".into()), capacity_min: Some(30) });
        assert_eq!((l.query.limit, l.query.sort.as_deref()), (Some(5), Some("-capacity")));
    }

    #[tokio::test]
    async fn unknown_keys_and_wrong_types_are_validation_errors() {
        for uri in ["/x?colour=red", "/x?capacity_min=many", "/x?limit=ten"] {
            let e = listing(uri).await.err().unwrap();
            assert_eq!((e.status(), e.code()), (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"), "{uri}");
        }
    }
}
