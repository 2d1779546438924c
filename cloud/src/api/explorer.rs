//! Pages for people: `/` points a browser at what the API offers, `/docs` is an interactive
//! explorer of `/openapi.json` (RapiDoc, bundled into the binary: nothing comes from a CDN, a
//! campus may be offline). Signing in there is pasting an access token into the explorer's
//! authentication section; "try" then calls the API from the page with it.
//!
//! Both pages carry a strict Content-Security-Policy: scripts only from this origin (the
//! bundled file), requests only to this origin, no frames.

use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_SECURITY_POLICY, CONTENT_TYPE, VARY,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::state::ApiState;
use crate::http::{Access, ApiRoutes, AppError};

/// RapiDoc 9.3.8's `dist/rapidoc-min.js.gz`, as the npm package ships it (`cloud/assets/`).
const RAPIDOC_GZ: &[u8] = include_bytes!("../../assets/rapidoc-9.3.8-min.js.gz");

/// Where the bundled explorer script is served (versioned, so it may be cached for long).
pub const SCRIPT_PATH: &str = "/docs/rapidoc-9.3.8.js";

const LANDING_CSP: &str = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// RapiDoc renders into shadow roots with constructed and inline styles, so styles may be
/// inline; scripts may not.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                        connect-src 'self'; img-src 'self' data:; font-src 'self' data:; base-uri 'none'; \
                        form-action 'none'; frame-ancestors 'none'";

/// The pages' routes (public: the document they show is public too).
pub fn routes() -> ApiRoutes<ApiState> {
    ApiRoutes::new()
        .route(Method::GET, "/", Access::Public, get(landing))
        .route(Method::GET, "/docs", Access::Public, get(docs))
        .route(Method::GET, SCRIPT_PATH, Access::Public, get(script))
}

fn page(csp: &'static str, html: String) -> Response {
    let mut r = (StatusCode::OK, html).into_response();
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

/// A page for a browser that opens the API's address.
#[utoipa::path(get, path = "/", tag = "health", responses((status = 200, description = "HTML: where to go from here", content_type = "text/html")))]
async fn landing() -> Response {
    let version = env!("CARGO_PKG_VERSION");
    page(
        LANDING_CSP,
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>NimbusU Edge API</title></head><body><main>\
             <h1>NimbusU Edge admin API {version}</h1>\
             <ul><li><a href=\"/docs\">API explorer</a>: every route, its parameters and answers; try them with an access token</li>\
             <li><a href=\"/openapi.json\">OpenAPI document</a> (for tools)</li>\
             <li><a href=\"/health/ready\">Readiness</a> and <a href=\"/metrics\">metrics</a></li></ul>\
             </main></body></html>\n"
        ),
    )
}

/// The API explorer.
#[utoipa::path(get, path = "/docs", tag = "health", responses((status = 200, description = "HTML: the interactive API explorer", content_type = "text/html")))]
async fn docs() -> Response {
    page(
        DOCS_CSP,
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>NimbusU Edge API explorer</title>\
             <script type=\"module\" src=\"{SCRIPT_PATH}\"></script></head><body>\
             <rapi-doc spec-url=\"/openapi.json\" render-style=\"view\" layout=\"column\" theme=\"light\" \
             show-header=\"false\" allow-try=\"true\" allow-authentication=\"true\" allow-server-selection=\"false\" \
             persist-auth=\"false\" schema-expand-level=\"2\"></rapi-doc>\
             <noscript>The explorer needs JavaScript; the document itself is at /openapi.json.</noscript>\
             </body></html>\n"
        ),
    )
}

/// The bundled explorer script, gzip-encoded as shipped (every browser accepts gzip; a client
/// that does not is told so).
#[utoipa::path(get, path = "/docs/rapidoc-9.3.8.js", tag = "health", responses((status = 200, description = "JavaScript, gzip-encoded", content_type = "text/javascript"), (status = 406, description = "The client does not accept gzip")))]
async fn script(headers: HeaderMap) -> Result<Response, AppError> {
    let gzip = headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| e.trim().split(';').next().is_some_and(|n| n.trim().eq_ignore_ascii_case("gzip")));
    if !gzip {
        return Err(AppError::new(
            StatusCode::NOT_ACCEPTABLE,
            "NOT_ACCEPTABLE",
            "The explorer script is served gzip-encoded; send Accept-Encoding: gzip",
        ));
    }
    let mut r = (StatusCode::OK, RAPIDOC_GZ).into_response();
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    h.insert(VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=604800, immutable"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    Ok(r)
}

/// The pages' OpenAPI paths.
pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(landing, docs, script))]
    struct Doc;
    <Doc as utoipa::OpenApi>::openapi()
}
