//! mDNS/DNS-SD: a browser on the LAN (an mdns-sd daemon in this test, as a student's device would
//! run) finds the node's advertisement, resolves it to an address and port that answer the node's
//! HTTP server, reads the room from the TXT record, and finds nothing once the node stops.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mdns_sd::{ServiceDaemon, ServiceEvent, ServiceInfo};
use nimbus_edge::attendance::{Attendance, Rules};
use nimbus_edge::clock::SystemClock;
use nimbus_edge::discovery::{Advertiser, HTTP_SERVICE_TYPE, SERVICE_TYPE};
use nimbus_edge::http::{self, AppState};
use nimbus_edge::metrics::Metrics;
use nimbus_edge::store::Store;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(15);

/// Browses `service_type` until `fullname` resolves with an IPv4 address (a resolution may first
/// carry only the IPv6 ones; the daemon reports again as more records arrive).
fn resolve(browser: &ServiceDaemon, service_type: &str, fullname: &str) -> ServiceInfo {
    let events = browser.browse(service_type).unwrap();
    let deadline = Instant::now() + WAIT;
    let mut last = None;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match events.recv_timeout(left) {
            Ok(ServiceEvent::ServiceResolved(info)) if info.get_fullname() == fullname => {
                if !info.get_addresses_v4().is_empty() {
                    let _ = browser.stop_browse(service_type);
                    return info;
                }
                last = Some(info);
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    panic!("{fullname} was not resolved with an IPv4 address within {WAIT:?}; last: {last:?}");
}

/// Whether a browser that knows nothing yet resolves `fullname` within `within`.
fn resolvable(service_type: &str, fullname: &str, within: Duration) -> bool {
    let browser = ServiceDaemon::new().unwrap();
    let events = browser.browse(service_type).unwrap();
    let deadline = Instant::now() + within;
    let mut found = false;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match events.recv_timeout(left) {
            Ok(ServiceEvent::ServiceResolved(info)) if info.get_fullname() == fullname => {
                found = true;
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let _ = browser.shutdown();
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_resolves_the_nodes_advertisement_with_its_room_and_reaches_its_server() {
    // The node's real LAN server, on every interface (mDNS hands out the LAN address).
    let store = Store::open_in_memory().unwrap();
    let rules = Rules { room_id: "lab-7".into(), ..Rules::default() };
    let attendance = Attendance::new(store, Arc::new(SystemClock::new()), rules);
    let state = AppState::new(attendance, Arc::new(Metrics::default()), None);
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    tokio::spawn(http::run(listener, state, stop));

    // Unique per run: other people's tests share this LAN segment.
    let node_id = format!("nimbus-test-{}-{}", std::process::id(), port);
    let advertiser = Advertiser::start(&node_id, "lab-7", port, true).unwrap();
    let fullname = format!("{node_id}.{SERVICE_TYPE}");
    assert!(advertiser.names().contains(&fullname), "{:?}", advertiser.names());

    let browser = ServiceDaemon::new().unwrap();
    let (b, f) = (browser.clone(), fullname.clone());
    let info = tokio::task::spawn_blocking(move || resolve(&b, SERVICE_TYPE, &f)).await.unwrap();

    assert_eq!(info.get_property_val_str("room"), Some("lab-7"));
    assert_eq!(info.get_property_val_str("node"), Some(node_id.as_str()));
    assert_eq!(info.get_property_val_str("path"), Some("/"));
    assert_eq!(info.get_port(), port);
    assert_eq!(info.get_hostname(), format!("{node_id}.local."));
    let addrs = info.get_addresses_v4();
    assert!(!addrs.is_empty(), "the advertisement carries an address");

    // The advertised address and port answer the node's server.
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let addr = addrs.iter().next().unwrap();
    let health = client.get(format!("http://{addr}:{port}/health")).send().await.unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::OK);

    // Generic browsers see it as a web server too.
    let (b, f) = (browser.clone(), format!("{node_id}.{HTTP_SERVICE_TYPE}"));
    let http_info = tokio::task::spawn_blocking(move || resolve(&b, HTTP_SERVICE_TYPE, &f)).await.unwrap();
    assert_eq!(http_info.get_property_val_str("room"), Some("lab-7"));

    let _ = browser.shutdown();

    // Once stopped, the node no longer answers: a device that starts looking now finds nothing
    // (goodbye packets also tell caching browsers, but a lost UDP packet must not fail the test).
    let f = fullname.clone();
    let found = tokio::task::spawn_blocking(move || resolvable(SERVICE_TYPE, &f, Duration::from_secs(10)));
    assert!(found.await.unwrap(), "the check below can see a running node");
    tokio::task::spawn_blocking(move || advertiser.stop()).await.unwrap();
    let gone = tokio::task::spawn_blocking(move || !resolvable(SERVICE_TYPE, &fullname, Duration::from_secs(3)));
    assert!(gone.await.unwrap(), "a stopped node is still resolvable");
}
