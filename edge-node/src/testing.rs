//! Test support for the node's pages (feature `testing`): a real browser, Debian's headless
//! Chromium driven over WebDriver by its `chromedriver`, because a request with hand-set headers
//! proves nothing about what a browser sends.
//!
//! The client speaks the handful of W3C WebDriver commands the tests need over the node's own
//! HTTP client, instead of pulling a WebDriver crate (and its second HTTP stack) into the build.
//! Everything panics with context on failure: it is for tests only. `chromedriver` and
//! `chromium` come from `scripts/services.sh` (`NIMBUS_CHROMEDRIVER` / `NIMBUS_CHROMIUM`
//! override their paths); a missing browser fails the test, it never skips it.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// The WebDriver element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The screen a browser session pretends to have.
#[derive(Debug, Clone, Copy)]
pub enum Screen {
    /// A desktop window of this size.
    Desktop { width: u32, height: u32 },
    /// A phone (Chromium's mobile emulation: touch, mobile viewport, device pixel ratio 3).
    Phone { width: u32, height: u32 },
}

/// One headless Chromium session; the driver (and its browser) is killed on drop.
pub struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
    profile: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

impl Browser {
    /// Starts chromedriver and a fresh browser profile with `screen`.
    pub async fn start(screen: Screen) -> Browser {
        let driver_path = std::env::var("NIMBUS_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chromium = std::env::var("NIMBUS_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        assert!(
            Path::new(&driver_path).exists() && Path::new(&chromium).exists(),
            "browser tests need {driver_path} and {chromium}: run scripts/services.sh up"
        );
        let port = free_port();
        let mut command = Command::new(&driver_path);
        command.arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null());
        // Its own process group, so the browser it starts goes down with it.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let driver = command.spawn().unwrap_or_else(|e| panic!("start {driver_path}: {e}"));
        let profile = std::env::temp_dir().join(format!("nimbus-chromium-{}", uuid::Uuid::new_v4().simple()));
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = match http.get(format!("{base}/status")).send().await {
                Ok(r) => r.bytes().await.ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok()),
                Err(_) => None,
            };
            if ready.is_some_and(|v| v["value"]["ready"] == true) {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start on port {port}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (width, height, mobile) = match screen {
            Screen::Desktop { width, height } => (width, height, false),
            Screen::Phone { width, height } => (width, height, true),
        };
        let mut options = json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions",
                format!("--user-data-dir={}", profile.display()),
                format!("--window-size={width},{height}"),
            ],
        });
        if mobile {
            options["mobileEmulation"] = json!({
                "deviceMetrics": { "width": width, "height": height, "pixelRatio": 3.0, "touch": true, "mobile": true },
                "userAgent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) \
                              Chrome/156.0.0.0 Mobile Safari/537.36",
            });
        }
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": options,
        } } });
        let answer = call(&http, reqwest::Method::POST, &format!("{base}/session"), Some(caps)).await;
        let id = answer["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {answer}")).to_owned();
        Browser { http, session: format!("{base}/session/{id}"), driver, profile }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        call(&self.http, method, &format!("{}{path}", self.session), body).await
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url }))).await;
    }

    /// The address of the page shown now.
    pub async fn url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// The text the page shows (`document.body.innerText`).
    pub async fn text(&self) -> String {
        self.script("return document.body ? document.body.innerText : ''", json!([]))
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn element(&self, css: &str) -> String {
        let v =
            self.cmd(reqwest::Method::POST, "/element", Some(json!({ "using": "css selector", "value": css }))).await;
        v[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}: {v}")).to_owned()
    }

    /// How many elements match `css`.
    pub async fn count(&self, css: &str) -> usize {
        let v =
            self.cmd(reqwest::Method::POST, "/elements", Some(json!({ "using": "css selector", "value": css }))).await;
        v.as_array().map_or(0, Vec::len)
    }

    /// Types `text` into the field `css` (after clearing it), as a user would.
    pub async fn fill(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.cmd(reqwest::Method::POST, &format!("/element/{id}/clear"), Some(json!({}))).await;
        self.cmd(reqwest::Method::POST, &format!("/element/{id}/value"), Some(json!({ "text": text }))).await;
    }

    /// Clicks the element `css` (scrolled into view first; refused if something covers it). For a
    /// click that loads another page, [`Browser::submit`] waits for it.
    pub async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.cmd(reqwest::Method::POST, &format!("/element/{id}/click"), Some(json!({}))).await;
    }

    /// Clicks `css`, a button that submits a form or a link, and waits until the next page has
    /// loaded (WebDriver's click may return while the old page is still shown, when the server
    /// takes its time to answer).
    pub async fn submit(&self, css: &str) {
        self.script("window.__nimbusOldPage = true;", json!([])).await;
        self.click(css).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        let probe =
            json!({ "script": "return !window.__nimbusOldPage && document.readyState === 'complete';", "args": [] });
        loop {
            let url = format!("{}/execute/sync", self.session);
            // While the page changes the script may fail to run: ask again.
            if try_call(&self.http, reqwest::Method::POST, &url, Some(probe.clone())).await == Ok(Value::Bool(true)) {
                return;
            }
            assert!(Instant::now() < deadline, "clicking {css} loaded no new page");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page and returns its value.
    pub async fn script(&self, script: &str, args: Value) -> Value {
        self.cmd(reqwest::Method::POST, "/execute/sync", Some(json!({ "script": script, "args": args }))).await
    }

    /// Runs `script` with the promise's resolve function as its last argument and returns what
    /// it resolves with.
    pub async fn script_async(&self, script: &str, args: Value) -> Value {
        self.cmd(reqwest::Method::POST, "/execute/async", Some(json!({ "script": script, "args": args }))).await
    }

    /// The serious and critical accessibility violations axe-core finds on the page shown now,
    /// as `"<rule>: <help> (<targets>)"` lines. axe-core comes from `scripts/services.sh`
    /// (`NIMBUS_AXE_JS`); WebDriver injects it past the page's Content-Security-Policy.
    pub async fn accessibility_violations(&self) -> Vec<String> {
        let path = std::env::var("NIMBUS_AXE_JS").unwrap_or_else(|_| {
            let home = std::env::var("HOME").unwrap_or_default();
            format!("{home}/.local/share/nimbus-services/axe/node_modules/axe-core/axe.min.js")
        });
        let axe = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("axe-core at {path}: {e}; run scripts/services.sh up"));
        self.script(&axe, json!([])).await;
        let found = self
            .script_async(
                "var done = arguments[arguments.length - 1];\
                 axe.run(document, { resultTypes: ['violations'] }).then(function (r) {\
                   done(r.violations.filter(function (v) { return v.impact === 'serious' || v.impact === 'critical'; })\
                     .map(function (v) { return v.id + ': ' + v.help + ' (' +\
                       v.nodes.map(function (n) { return n.target.join(' '); }).join(', ') + ')'; }));\
                 }, function (e) { done(['axe failed: ' + e]); });",
                json!([]),
            )
            .await;
        found
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap_or_default().to_owned()).collect())
            .unwrap_or_default()
    }

    /// Saves a PNG of the viewport to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let v = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("screenshot is not base64: {e}"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot folder");
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Saves a screenshot named `name` into `$NIMBUS_SCREENSHOTS` when that is set (the docs'
    /// pictures are made this way); does nothing otherwise.
    pub async fn screenshot_for_docs(&self, name: &str) {
        if let Some(dir) = std::env::var_os("NIMBUS_SCREENSHOTS") {
            self.screenshot(&Path::new(&dir).join(format!("{name}.png"))).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // SAFETY: plain libc call on our own child's process group.
        unsafe {
            libc::killpg(self.driver.id() as libc::pid_t, libc::SIGKILL);
        }
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

async fn call(http: &reqwest::Client, method: reqwest::Method, url: &str, body: Option<Value>) -> Value {
    try_call(http, method.clone(), url, body).await.unwrap_or_else(|e| panic!("webdriver {method} {url}: {e}"))
}

async fn try_call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let mut req = http.request(method, url).timeout(Duration::from_secs(60));
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string());
    }
    let res = req.send().await.map_err(|e| e.to_string())?;
    let status = res.status();
    let bytes = res.bytes().await.map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&bytes)))?;
    if status.is_success() { Ok(v["value"].clone()) } else { Err(format!("{status} {}", v["value"])) }
}

/// This machine's first non-loopback IPv4 address, if it has one: pages served there are not a
/// secure context for the browser (no `Sec-Fetch-*` headers), as on a campus LAN.
pub fn lan_ipv4() -> Option<Ipv4Addr> {
    let mut found = None;
    // SAFETY: getifaddrs/freeifaddrs as documented; the list is only read between them.
    unsafe {
        let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut list) != 0 {
            return None;
        }
        let mut cur = list;
        while !cur.is_null() {
            let addr = (*cur).ifa_addr;
            if !addr.is_null() && i32::from((*addr).sa_family) == libc::AF_INET {
                let sin = &*(addr as *const libc::sockaddr_in);
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                if !ip.is_loopback() && !ip.is_unspecified() {
                    found = Some(ip);
                    break;
                }
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(list);
    }
    found
}
