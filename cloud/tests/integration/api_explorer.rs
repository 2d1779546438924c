//! The pages for people, in a real browser (Debian's headless Chromium over WebDriver): `/`
//! points at the explorer; `/docs` loads the explorer bundled into the binary under its strict
//! Content-Security-Policy, lists every route of the route table, and executes an authenticated
//! call from the page with a token set in it.

use std::time::{Duration, Instant};

use nimbus_edge::testing::{Browser, Screen};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::common::api::{ADMIN_EMAIL, ADMIN_PASSWORD, serve, test_config};

/// Polls `script` in the page until it returns something truthy (at most `within`).
async fn until(browser: &Browser, what: &str, within: Duration, script: &str, args: Value) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let v = browser.script(script, args.clone()).await;
        if !(v.is_null() || v == false || v == 0 || v == "") {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explorer_lists_every_route_and_calls_the_api_with_a_token_from_the_page() {
    let (config, dbs) = test_config().await;
    let state = nimbus_cloud::api::ApiState::connect(&config).await.unwrap();
    let (_, specs) = nimbus_cloud::api::app(&config, &state).await.unwrap();
    let stop = CancellationToken::new();
    let (addr, server) = serve(&config, &stop).await;
    let http = reqwest::Client::new();
    let login = http
        .post(format!("http://{addr}/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body(json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}).to_string())
        .send()
        .await
        .unwrap();
    let token = serde_json::from_str::<Value>(&login.text().await.unwrap()).unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // A client that does not take gzip is told so, in the seed's shape.
    let plain = http.get(format!("http://{addr}{}", nimbus_cloud::api::explorer::SCRIPT_PATH)).send().await.unwrap();
    assert_eq!(plain.status(), 406);

    let browser = Browser::start(Screen::Desktop { width: 1400, height: 1000 }).await;
    // `/` points a person at the explorer.
    browser.goto(&format!("http://{addr}/")).await;
    let links =
        browser.script("return [...document.querySelectorAll('a')].map(a => a.getAttribute('href'));", json!([])).await;
    assert!(links.as_array().unwrap().contains(&json!("/docs")), "{links}");

    browser.goto(&format!("http://{addr}/docs")).await;
    // The explorer (from the binary, under the page's CSP) fetched /openapi.json and rendered it.
    let operations = until(
        &browser,
        "the explorer renders the document",
        Duration::from_secs(30),
        "const r = document.querySelector('rapi-doc');\
         if (!r || !r.resolvedSpec || !r.shadowRoot) return 0;\
         return r.resolvedSpec.tags.reduce((n, t) => n + t.paths.length, 0);",
        json!([]),
    )
    .await;
    let page = browser
        .script(
            "const r = document.querySelector('rapi-doc');\
             return { html: r.shadowRoot.innerHTML,\
                      ops: r.resolvedSpec.tags.flatMap(t => t.paths.map(p => p.method.toUpperCase() + ' ' + p.path)) };",
            json!([]),
        )
        .await;
    let (html, listed) = (page["html"].as_str().unwrap(), page["ops"].as_array().unwrap());
    let mut missing = Vec::new();
    for spec in &specs {
        let path = spec.openapi_path();
        let op = json!(format!("{} {path}", spec.method));
        if !listed.contains(&op) || !html.contains(&path) {
            missing.push(format!("{} {path}", spec.method));
        }
    }
    assert!(missing.is_empty(), "routes the explorer does not list: {missing:#?}");
    assert!(operations.as_u64().unwrap() as usize >= specs.len());

    // Paste the token into the explorer and try `GET /api/v1/me` from the page.
    let me = until(
        &browser,
        "GET /api/v1/me answered in the page",
        Duration::from_secs(30),
        "const [token] = arguments;\
         const r = document.querySelector('rapi-doc');\
         if (!window.__tried) { r.setApiKey('bearerAuth', token); r.scrollToPath('get-/api/v1/me'); }\
         const req = [...r.shadowRoot.querySelectorAll('api-request')].find(e => e.method === 'get' && e.path === '/api/v1/me');\
         if (!req || !req.shadowRoot) return null;\
         const tryIt = req.shadowRoot.querySelector('button[part~=\"btn-try\"]');\
         if (!window.__tried && tryIt) { window.__tried = true; tryIt.click(); return null; }\
         return req.responseText || null;",
        json!([token]),
    )
    .await;
    let me: Value = serde_json::from_str(me.as_str().unwrap()).unwrap_or_else(|e| panic!("{me}: {e}"));
    assert_eq!(me["email"], ADMIN_EMAIL, "the page called the API with the token: {me}");
    browser.screenshot_for_docs("api-explorer").await;
    drop(browser);

    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), server).await;
    for d in dbs {
        d.drop_now().await;
    }
}
