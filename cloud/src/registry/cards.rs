//! Cards: which RFID card belongs to whom (the downlink sends each node the cards of its rosters),
//! and the quarantine of cards the nodes saw but could not place, which an admin maps to a user.

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::routing::{delete, get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{Error, FieldError, Result};
use crate::http::ServicesState;
use crate::http::{Access, ApiJson, ApiPath, ApiRoutes, AppError};
use crate::http::{Acting, Listing};
use crate::listing::{Filter, ListQuery, Page};

const READ: Access = Access::Permission("node:read");
const WRITE: Access = Access::Permission("card:write");

/// A card and its holder.
#[derive(Debug, Clone, Serialize)]
pub struct Card {
    /// The card's UID, upper-case hex.
    pub card_uid: String,
    /// The holder.
    pub user_id: String,
    /// `student` or `faculty`.
    pub role: String,
    /// Shown on the classroom device.
    pub display_name: String,
    /// Who mapped it.
    pub assigned_by: Option<String>,
    /// When.
    pub assigned_at: DateTime<Utc>,
}

/// An unknown card as the nodes reported it.
#[derive(Debug, Clone, Serialize)]
pub struct UnknownCard {
    /// The card's UID.
    pub card_uid: String,
    /// Where it was tapped.
    pub node_id: String,
    /// First tap.
    pub first_seen: DateTime<Utc>,
    /// Latest tap.
    pub last_seen: DateTime<Utc>,
    /// Taps so far.
    pub tap_count: i64,
}

/// The roles a card holder can have.
pub const HOLDER_ROLES: &[&str] = &["student", "faculty"];

/// A card's UID as the API takes it: 8 to 20 hexadecimal digits, any case ([`normalise_uid`]).
pub const UID_PATTERN: &str = "^[0-9A-Fa-f]{8,20}$";

/// Who a card belongs to.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "user_id": "3f2e1d0c-9b8a-4765-8432-10fedcba9876", "role": "student", "display_name": "A. Student" }))]
pub struct CardHolder {
    /// The holder's user id.
    #[schema(schema_with = user_id)]
    pub user_id: String,
    /// One of [`HOLDER_ROLES`].
    #[schema(schema_with = roles)]
    pub role: String,
    /// Shown on the classroom device (default: none; the node shows the user id).
    #[serde(default)]
    #[schema(schema_with = display_name)]
    pub display_name: String,
}

/// A new card mapping: the card and its holder.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "card_uid": "04A1B2C3D4", "user_id": "3f2e1d0c-9b8a-4765-8432-10fedcba9876", "role": "student", "display_name": "A. Student" }))]
pub struct NewCard {
    /// The card's UID (hex, any case).
    #[schema(pattern = "^[0-9A-Fa-f]{8,20}$")]
    pub card_uid: String,
    /// The holder's user id.
    #[schema(schema_with = user_id)]
    pub user_id: String,
    /// One of [`HOLDER_ROLES`].
    #[schema(schema_with = roles)]
    pub role: String,
    /// Shown on the classroom device (default: none; the node shows the user id).
    #[serde(default)]
    #[schema(schema_with = display_name)]
    pub display_name: String,
}

impl NewCard {
    fn split(self) -> (String, CardHolder) {
        (self.card_uid, CardHolder { user_id: self.user_id, role: self.role, display_name: self.display_name })
    }
}

fn user_id() -> utoipa::openapi::Object {
    crate::http::fields::text(128, false)
}

fn display_name() -> utoipa::openapi::Object {
    crate::http::fields::free_text(Some(128), false)
}

fn roles() -> utoipa::openapi::Object {
    crate::http::schema::one_of(HOLDER_ROLES)
}

fn no_nul() -> utoipa::openapi::Object {
    crate::http::fields::free_text(None, false)
}

/// Filters of the card list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CardFilter {
    /// One holder's cards.
    #[param(schema_with = no_nul)]
    pub user_id: Option<String>,
    /// Only cards of holders with this role.
    #[param(schema_with = roles)]
    pub role: Option<String>,
}

impl CardFilter {
    fn validate(&self) -> Result<()> {
        let mut errors = Vec::new();
        crate::http::fields::check_filter(&mut errors, "user_id", self.user_id.as_deref());
        if self.role.as_deref().is_some_and(|r| !HOLDER_ROLES.contains(&r)) {
            errors.push(FieldError::new("role", "must be student or faculty"));
        }
        crate::listing::finish(errors)
    }
}

impl crate::listing::Sorted for CardFilter {
    const SORT: &'static [(&'static str, &'static str)] =
        &[("card_uid", "card_uid"), ("user_id", "user_id"), ("assigned_at", "assigned_at")];
}

/// Filters of the unknown-card list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UnknownFilter {
    /// Cards tapped at one node.
    #[param(schema_with = no_nul)]
    pub node_id: Option<String>,
}

impl crate::listing::Sorted for UnknownFilter {
    const SORT: &'static [(&'static str, &'static str)] = &[
        ("last_seen", "last_seen"),
        ("first_seen", "first_seen"),
        ("tap_count", "tap_count"),
        ("card_uid", "card_uid"),
    ];
}

/// The card routes.
pub fn routes() -> ApiRoutes<ServicesState> {
    ApiRoutes::new()
        .route(Method::GET, "/api/v1/cards", READ, get(list_cards))
        .route(Method::POST, "/api/v1/cards", WRITE, post(assign_card))
        .route(Method::DELETE, "/api/v1/cards/:card_uid", WRITE, delete(remove_card))
        .route(Method::GET, "/api/v1/cards/unknown", READ, get(list_unknown))
        .route(Method::POST, "/api/v1/cards/unknown/:card_uid/map", WRITE, post(map_unknown))
}

/// The card routes' OpenAPI paths.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_cards, assign_card, remove_card, list_unknown, map_unknown))]
pub struct Doc;

/// The UID in the registry's form (upper-case hex, 8 to 20 digits), or a field error: exactly
/// [`UID_PATTERN`], nothing around it.
pub fn normalise_uid(uid: &str) -> Result<String> {
    let up = uid.to_ascii_uppercase();
    if (8..=20).contains(&up.len()) && up.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(up)
    } else {
        Err(Error::Validation(vec![FieldError::new("card_uid", "must be 8 to 20 hexadecimal digits")]))
    }
}

fn check_holder(h: &CardHolder) -> Result<()> {
    let mut errors = Vec::new();
    crate::http::fields::check_text(&mut errors, "user_id", &h.user_id, 128);
    if !HOLDER_ROLES.contains(&h.role.as_str()) {
        errors.push(FieldError::new("role", "must be student or faculty"));
    }
    if h.display_name.chars().count() > 128 {
        errors.push(FieldError::new("display_name", "must be at most 128 characters"));
    }
    crate::http::fields::check_free_text(&mut errors, "display_name", &h.display_name);
    crate::listing::finish(errors)
}

/// Maps `uid` to `holder` and lifts its quarantine, in one transaction. A card already mapped
/// to someone else is a 409: re-mapping a card is removing it first, deliberately.
pub async fn map(s: &ServicesState, uid: &str, holder: &CardHolder, by: &str) -> Result<Card> {
    let uid = normalise_uid(uid)?;
    check_holder(holder)?;
    let mut c = s.registry.get().await?;
    let tx = c.transaction().await?;
    let row = tx
        .query_opt(
            "INSERT INTO cards (card_uid, user_id, role, display_name, assigned_by) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (card_uid) DO NOTHING
             RETURNING card_uid, user_id, role, display_name, assigned_by, assigned_at",
            &[&uid, &holder.user_id, &holder.role, &holder.display_name, &by],
        )
        .await?;
    let Some(row) = row else {
        let owner: String = tx.query_one("SELECT user_id FROM cards WHERE card_uid = $1", &[&uid]).await?.get(0);
        return Err(Error::Conflict {
            message: "the card is already mapped".into(),
            details: json!({ "card_uid": uid, "user_id": owner }),
        });
    };
    tx.execute("DELETE FROM unknown_cards WHERE card_uid = $1", &[&uid]).await?;
    tx.commit().await?;
    tracing::info!(card = %uid, user = %holder.user_id, "card mapped");
    Ok(card(&row))
}

fn card(r: &tokio_postgres::Row) -> Card {
    Card {
        card_uid: r.get(0),
        user_id: r.get(1),
        role: r.get(2),
        display_name: r.get(3),
        assigned_by: r.get(4),
        assigned_at: r.get(5),
    }
}

async fn page_of<T>(
    s: &ServicesState,
    table_cols: (&str, &str),
    f: Filter,
    query: ListQuery,
    sortable: &[(&str, &'static str)],
    key: &str,
    map: fn(&tokio_postgres::Row) -> T,
) -> Result<Page<T>> {
    let (table, cols) = table_cols;
    let (limit, offset, order) = query.resolve(sortable)?;
    let order = order.replace(", id", &format!(", {key}"));
    let c = s.registry.get().await?;
    let total: i64 =
        c.query_one(&format!("SELECT count(*) FROM {table} {}", f.where_sql()), &f.params(&[])).await?.get(0);
    let n = f.len();
    let sql = format!("SELECT {cols} FROM {table} {} {order} LIMIT ${} OFFSET ${}", f.where_sql(), n + 1, n + 2);
    let rows = c.query(&sql, &f.params(&[&limit, &offset])).await?;
    Ok(Page { items: rows.iter().map(map).collect(), total, limit, offset })
}

#[utoipa::path(get, path = "/api/v1/cards", tag = "cards", params(CardFilter, crate::listing::Paging<CardFilter>), responses((status = 200, description = "A page of cards")))]
async fn list_cards(State(s): State<ServicesState>, l: Listing<CardFilter>) -> Result<Json<Page<Card>>, AppError> {
    l.filter.validate()?;
    let mut f = Filter::new();
    f.and("user_id = $?", l.filter.user_id).and("role = $?", l.filter.role);
    let cols = "card_uid, user_id, role, display_name, assigned_by, assigned_at";
    Ok(Json(
        page_of(&s, ("cards", cols), f, l.query, <CardFilter as crate::listing::Sorted>::SORT, "card_uid", card)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/cards", tag = "cards", request_body = NewCard, responses((status = 201, description = "Mapped"), (status = 409, description = "The card belongs to someone")))]
async fn assign_card(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiJson(input): ApiJson<NewCard>,
) -> Result<(StatusCode, Json<Card>), AppError> {
    let by = a.user_id.unwrap_or_default();
    let (uid, holder) = input.split();
    Ok((StatusCode::CREATED, Json(map(&s, &uid, &holder, &by).await?)))
}

#[utoipa::path(delete, path = "/api/v1/cards/{card_uid}", tag = "cards", params(("card_uid" = String, Path, pattern = "^[0-9A-Fa-f]{8,20}$")), responses((status = 204, description = "Removed; nodes stop accepting it with their next roster"), (status = 404, description = "No such card")))]
async fn remove_card(State(s): State<ServicesState>, ApiPath(uid): ApiPath<String>) -> Result<StatusCode, AppError> {
    let uid = normalise_uid(&uid)?;
    let c = s.registry.get().await.map_err(Error::from)?;
    let n = c.execute("DELETE FROM cards WHERE card_uid = $1", &[&uid]).await.map_err(Error::from)?;
    if n == 0 {
        return Err(AppError::from(Error::NotFound { what: "card", id: uid }));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/cards/unknown", tag = "cards", params(UnknownFilter, crate::listing::Paging<UnknownFilter>), responses((status = 200, description = "A page of quarantined cards")))]
async fn list_unknown(
    State(s): State<ServicesState>,
    l: Listing<UnknownFilter>,
) -> Result<Json<Page<UnknownCard>>, AppError> {
    let mut errors = Vec::new();
    crate::http::fields::check_filter(&mut errors, "node_id", l.filter.node_id.as_deref());
    crate::listing::finish(errors)?;
    let mut f = Filter::new();
    f.and("node_id = $?", l.filter.node_id);
    let cols = "card_uid, node_id, first_seen, last_seen, tap_count";
    let map = |r: &tokio_postgres::Row| UnknownCard {
        card_uid: r.get(0),
        node_id: r.get(1),
        first_seen: r.get(2),
        last_seen: r.get(3),
        tap_count: r.get(4),
    };
    Ok(Json(
        page_of(
            &s,
            ("unknown_cards", cols),
            f,
            l.query,
            <UnknownFilter as crate::listing::Sorted>::SORT,
            "card_uid, node_id",
            map,
        )
        .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/cards/unknown/{card_uid}/map", tag = "cards", params(("card_uid" = String, Path, pattern = "^[0-9A-Fa-f]{8,20}$")), request_body = CardHolder, responses((status = 201, description = "Mapped and removed from quarantine"), (status = 404, description = "Not in quarantine"), (status = 409, description = "The card belongs to someone")))]
async fn map_unknown(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiPath(uid): ApiPath<String>,
    ApiJson(holder): ApiJson<CardHolder>,
) -> Result<(StatusCode, Json<Card>), AppError> {
    let uid = normalise_uid(&uid)?;
    check_holder(&holder)?;
    let c = s.registry.get().await.map_err(Error::from)?;
    let quarantined =
        c.query_opt("SELECT 1 FROM unknown_cards WHERE card_uid = $1 LIMIT 1", &[&uid]).await.map_err(Error::from)?;
    if quarantined.is_none() {
        return Err(AppError::from(Error::NotFound { what: "unknown card", id: uid }));
    }
    drop(c);
    let by = a.user_id.unwrap_or_default();
    Ok((StatusCode::CREATED, Json(map(&s, &uid, &holder, &by).await?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_uids_are_normalised_or_refused() {
        assert_eq!(normalise_uid("04a1b2c3").unwrap(), "04A1B2C3");
        for bad in ["", "04A1B2", "ZZZZZZZZ", " 04a1b2c3 ", "04A1B2C3'; DROP TABLE cards;--", "../../etc/passwd"] {
            assert!(matches!(normalise_uid(bad), Err(Error::Validation(_))), "{bad}");
        }
    }

    #[test]
    fn the_document_states_the_uid_pattern_and_the_holder_rules() {
        use utoipa::OpenApi as _;
        let doc = serde_json::to_value(Doc::openapi()).unwrap();
        for (path, method) in [("/api/v1/cards/{card_uid}", "delete"), ("/api/v1/cards/unknown/{card_uid}/map", "post")]
        {
            assert_eq!(doc["paths"][path][method]["parameters"][0]["schema"]["pattern"], UID_PATTERN, "{path}");
        }
        let card = serde_json::to_value(<NewCard as utoipa::PartialSchema>::schema()).unwrap();
        assert_eq!(card["properties"]["card_uid"]["pattern"], UID_PATTERN);
        assert_eq!(card["properties"]["role"]["enum"], serde_json::json!(HOLDER_ROLES));
        assert_eq!(card["additionalProperties"], false);
        let required: Vec<&str> = card["required"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
        assert_eq!(required, ["card_uid", "user_id", "role"]);
    }
}
