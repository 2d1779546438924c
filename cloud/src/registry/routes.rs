//! Edge node routes: the registry as admins see it (room, last seen, online, software version,
//! the highest sequence safely in Kafka, what the downlink last sent, refused frames), and
//! registration with credentials the cloud generates and shows exactly once.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHasher, SaltString};
use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use nimbus_core::ids::NodeId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, FieldError};
use crate::http::Listing;
use crate::http::ServicesState;
use crate::http::{Access, ApiJson, ApiPath, ApiRoutes, AppError};
use crate::listing::{ListQuery, Page};

const READ: Access = Access::Permission("node:read");
const WRITE: Access = Access::Permission("node:write");

/// A node as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    /// The node id (also its MQTT user name).
    pub node_id: String,
    /// Its classroom.
    pub room_id: String,
    /// Whether its last status message said online.
    pub online: bool,
    /// When the cloud last heard from it.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Its software version at the last connect.
    pub software_version: Option<String>,
    /// Its boot at the last connect.
    pub boot_id: Option<String>,
    /// Highest outbox sequence number safely in Kafka (everything after it is the node's backlog).
    pub acknowledged_seq: i64,
    /// Events waiting in the node's outbox at its last heartbeat (null before the first).
    pub backlog: Option<i64>,
    /// Whether credentials were issued.
    pub has_credential: bool,
    /// Downlink snapshots last sent: kind → `{version, confirmed, at}`.
    pub snapshots: Value,
    /// Frames the ingest refused, by reason.
    pub rejected_frames: Value,
    /// Distinct unknown cards tapped at this node and not yet mapped.
    pub unknown_cards: i64,
}

/// Filters of the node list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NodeFilter {
    /// Only this room's nodes.
    #[param(schema_with = no_nul)]
    pub room_id: Option<String>,
    /// Only nodes (not) online.
    pub online: Option<bool>,
}

/// A registration.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "node_id": "room-b204", "room_id": "B-204" }))]
pub struct NewNode {
    /// The node id: lower-case letters, digits and `-`, not first, at most 64 (as the sync
    /// protocol requires).
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    pub node_id: String,
    /// The room it serves (the timetable's room number).
    #[schema(schema_with = room_id)]
    pub room_id: String,
}

fn room_id() -> utoipa::openapi::Object {
    crate::http::fields::text(64, false)
}

fn no_nul() -> utoipa::openapi::Object {
    crate::http::fields::free_text(None, false)
}

/// The node id of a path, checked as a registration's is (400 when it could never be one).
fn path_node(id: &str) -> Result<NodeId, AppError> {
    NodeId::new(id).map_err(|e| AppError::from(Error::Validation(vec![FieldError::new("node_id", e.to_string())])))
}

/// Credentials, shown once.
#[derive(Debug, Serialize)]
pub struct Credentials {
    /// The node.
    pub node_id: String,
    /// Its user name for MQTT and for the content download route.
    pub username: String,
    /// The generated password; only its argon2 hash is kept.
    pub password: String,
}

/// The node routes.
pub fn routes() -> ApiRoutes<ServicesState> {
    ApiRoutes::new()
        .route(Method::GET, "/api/v1/nodes", READ, get(list_nodes))
        .route(Method::POST, "/api/v1/nodes", WRITE, post(register_node))
        .route(Method::GET, "/api/v1/nodes/:node_id", READ, get(get_node))
        .route(Method::POST, "/api/v1/nodes/:node_id/credentials", WRITE, post(issue_credentials))
}

/// The node routes' OpenAPI paths.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_nodes, register_node, get_node, issue_credentials))]
pub struct Doc;

const VIEW_SQL: &str = "
    SELECT n.node_id, n.room_id, n.online, n.last_seen_at, n.software_version, n.boot_id,
           n.high_water_mark, n.backlog, n.credential_hash IS NOT NULL,
           COALESCE((SELECT jsonb_object_agg(kind, jsonb_build_object('version', version,
                       'confirmed', published, 'at', updated_at))
                     FROM node_snapshots s WHERE s.node_id = n.node_id), '{}'::jsonb),
           COALESCE((SELECT jsonb_object_agg(reason, count) FROM ingest_rejections r
                     WHERE r.node_id = n.node_id), '{}'::jsonb),
           (SELECT count(*) FROM unknown_cards u WHERE u.node_id = n.node_id)
    FROM nodes n";

fn view(r: &tokio_postgres::Row) -> NodeView {
    NodeView {
        node_id: r.get(0),
        room_id: r.get(1),
        online: r.get(2),
        last_seen_at: r.get(3),
        software_version: r.get(4),
        boot_id: r.get(5),
        acknowledged_seq: r.get(6),
        backlog: r.get(7),
        has_credential: r.get(8),
        snapshots: r.get(9),
        rejected_frames: r.get(10),
        unknown_cards: r.get(11),
    }
}

#[utoipa::path(get, path = "/api/v1/nodes", tag = "nodes", params(NodeFilter, crate::listing::Paging<NodeFilter>), responses((status = 200, description = "A page of nodes")))]
async fn list_nodes(State(s): State<ServicesState>, l: Listing<NodeFilter>) -> Result<Json<Page<NodeView>>, AppError> {
    Ok(Json(list(&s, l.filter, l.query).await?))
}

impl crate::listing::Sorted for NodeFilter {
    const SORT: &'static [(&'static str, &'static str)] =
        &[("node_id", "n.node_id"), ("room_id", "n.room_id"), ("last_seen_at", "n.last_seen_at")];
}

async fn list(s: &ServicesState, filter: NodeFilter, query: ListQuery) -> crate::Result<Page<NodeView>> {
    let mut e = Vec::new();
    crate::http::fields::check_filter(&mut e, "room_id", filter.room_id.as_deref());
    crate::listing::finish(e)?;
    let (limit, offset, order) = query.resolve(<NodeFilter as crate::listing::Sorted>::SORT)?;
    // `ORDER BY … , id`: the registry's key is node_id.
    let order = order.replace(", id", ", n.node_id");
    let c = s.registry.get().await?;
    let mut f = crate::listing::Filter::new();
    f.and("n.room_id = $?", filter.room_id).and("n.online = $?", filter.online);
    let total: i64 =
        c.query_one(&format!("SELECT count(*) FROM nodes n {}", f.where_sql()), &f.params(&[])).await?.get(0);
    let n = f.len();
    let sql = format!("{VIEW_SQL} {} {order} LIMIT ${} OFFSET ${}", f.where_sql(), n + 1, n + 2);
    let rows = c.query(&sql, &f.params(&[&limit, &offset])).await?;
    Ok(Page { items: rows.iter().map(view).collect(), total, limit, offset })
}

#[utoipa::path(get, path = "/api/v1/nodes/{node_id}", tag = "nodes", params(("node_id" = String, Path, pattern = "^[a-z0-9][a-z0-9-]{0,63}$")), responses((status = 200, description = "The node"), (status = 404, description = "Not registered")))]
async fn get_node(
    State(s): State<ServicesState>,
    ApiPath(node_id): ApiPath<String>,
) -> Result<Json<NodeView>, AppError> {
    path_node(&node_id)?;
    let c = s.registry.get().await.map_err(Error::from)?;
    let row = c
        .query_opt(&format!("{VIEW_SQL} WHERE n.node_id = $1"), &[&node_id])
        .await
        .map_err(Error::from)?
        .ok_or_else(|| AppError::from(Error::NotFound { what: "node", id: node_id.clone() }))?;
    Ok(Json(view(&row)))
}

/// Registers a node and issues its credentials. A node id already registered is a 409 (the one
/// registration rule, [`super::Registry::register`]); new credentials for it are
/// `POST /api/v1/nodes/{id}/credentials`, a move is the operators' `nodes register --replace`.
#[utoipa::path(post, path = "/api/v1/nodes", tag = "nodes", request_body = NewNode, responses((status = 201, description = "Registered; the password is shown only now"), (status = 409, description = "Already registered")))]
async fn register_node(
    State(s): State<ServicesState>,
    ApiJson(input): ApiJson<NewNode>,
) -> Result<(StatusCode, Json<Credentials>), AppError> {
    let mut errors = Vec::new();
    let node = NodeId::new(&input.node_id).map_err(|e| errors.push(FieldError::new("node_id", e.to_string()))).ok();
    crate::http::fields::check_text(&mut errors, "room_id", &input.room_id, 64);
    crate::listing::finish(errors)?;
    let Some(node) = node else { return Err(AppError::internal("node id checked above")) };
    let (password, hash) = new_credential()?;
    let broker_hash = super::broker::mosquitto_hash(&password)?;
    // A new credential is never "nothing new": an id already registered is a 409 (the one rule,
    // `Registry::register`); re-keying is `POST /api/v1/nodes/{id}/credentials`.
    super::Registry::new(s.registry.clone()).register(&node, input.room_id.trim(), Some(&hash), false).await?;
    // The broker's account (`broker-accounts` writes it into Mosquitto's password file). Should
    // this fail after the registration, re-issuing the credentials sets both hashes.
    let c = s.registry.get().await.map_err(Error::from)?;
    c.execute("UPDATE nodes SET broker_credential_hash = $2 WHERE node_id = $1", &[&node.as_str(), &broker_hash])
        .await
        .map_err(Error::from)?;
    tracing::info!(node = node.as_str(), room = %input.room_id, "node registered");
    let id = node.as_str().to_owned();
    Ok((StatusCode::CREATED, Json(Credentials { node_id: id.clone(), username: id, password })))
}

/// Issues new credentials; the old password stops working at once (at the broker, once
/// `broker-accounts` rewrote its file and the broker reloaded it: seconds).
#[utoipa::path(post, path = "/api/v1/nodes/{node_id}/credentials", tag = "nodes", params(("node_id" = String, Path, pattern = "^[a-z0-9][a-z0-9-]{0,63}$")), responses((status = 200, description = "New credentials, shown only now"), (status = 404, description = "Not registered")))]
async fn issue_credentials(
    State(s): State<ServicesState>,
    ApiPath(node_id): ApiPath<String>,
) -> Result<Json<Credentials>, AppError> {
    path_node(&node_id)?;
    let (password, hash) = new_credential()?;
    let broker_hash = super::broker::mosquitto_hash(&password)?;
    let c = s.registry.get().await.map_err(Error::from)?;
    let n = c
        .execute(
            "UPDATE nodes SET credential_hash = $2, broker_credential_hash = $3 WHERE node_id = $1",
            &[&node_id, &hash, &broker_hash],
        )
        .await
        .map_err(Error::from)?;
    if n == 0 {
        return Err(AppError::from(Error::NotFound { what: "node", id: node_id }));
    }
    tracing::info!(node = %node_id, "node credentials reissued");
    Ok(Json(Credentials { node_id: node_id.clone(), username: node_id, password }))
}

/// A random password (192 bits, URL-safe hex) and its argon2id PHC hash.
fn new_credential() -> Result<(String, String), AppError> {
    let mut bytes = [0u8; 24];
    OsRng.fill_bytes(&mut bytes);
    let password = hex::encode(bytes);
    let salt = SaltString::generate(&mut OsRng);
    let hash = argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| AppError::internal(format!("hashing: {e}")))?
        .to_string();
    Ok((password, hash))
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};

    use super::*;

    #[test]
    fn a_new_credential_verifies_against_its_hash_and_is_never_the_same_twice() {
        let (p1, h1) = new_credential().unwrap();
        let (p2, _) = new_credential().unwrap();
        assert_ne!(p1, p2);
        assert_eq!(p1.len(), 48);
        let parsed = PasswordHash::new(&h1).unwrap();
        assert!(argon2::Argon2::default().verify_password(p1.as_bytes(), &parsed).is_ok());
        assert!(argon2::Argon2::default().verify_password(p2.as_bytes(), &parsed).is_err());
    }
}
