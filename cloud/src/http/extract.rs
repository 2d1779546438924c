//! Request extractors whose rejections are the seed's [`AppError`]: list queries split into
//! paging and filters ([`Listing`]), plain query parameters ([`Params`]), and the caller as the
//! actor of a command ([`Acting`]).

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::AppError;
use crate::listing::ListQuery;

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
