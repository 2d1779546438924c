//! MQTT connection settings shared by the node and the cloud, so both ends agree on QoS,
//! persistent sessions, packet limits and reconnect pacing.
//!
//! Sessions are persistent (`clean_session = false`) with a fixed client id: the broker keeps a
//! node's subscriptions and queued QoS 1 messages (acks, snapshots) while it is offline.

use std::time::Duration;

use rumqttc::MqttOptions;

use crate::frame::FrameLimits;

/// Why connection settings are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The broker URL is not `mqtt://host[:port]` or `mqtts://host[:port]`.
    #[error("broker url {0:?}: expected mqtt://host[:port] or mqtts://host[:port]")]
    Url(String),
    /// `mqtts://` was asked for, but this build has no TLS (feature `tls`).
    #[error("broker url {0:?} needs TLS, and this build was made without feature `tls`")]
    TlsUnavailable(String),
    /// A CA to pin was given for a plain-text (`mqtt://`) broker URL.
    #[error("a broker CA is pinned, but the broker url {0:?} is not mqtts://")]
    CaWithoutTls(String),
}

/// How to reach the broker as one client. `Debug` never shows the password (settings get logged).
#[derive(Clone, PartialEq, Eq)]
pub struct MqttConfig {
    /// `mqtt://host:port` or `mqtts://host:port`.
    pub url: String,
    /// The client id; a node uses its node id, so the broker ACL can tie topics to it.
    pub client_id: String,
    /// Username (a node's is its node id).
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Keep-alive interval; a dead connection is noticed within about 1.5 times this.
    pub keep_alive: Duration,
    /// PEM of the only CA whose certificates the broker may present (`mqtts://`); `None` trusts
    /// the platform's roots.
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for MqttConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttConfig")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("keep_alive", &self.keep_alive)
            .field("ca_pem", &self.ca_pem.as_ref().map(|c| format!("{} bytes", c.len())))
            .finish()
    }
}

impl MqttConfig {
    /// Settings for `client_id` at `url` without credentials.
    pub fn new(url: impl Into<String>, client_id: impl Into<String>) -> Self {
        MqttConfig {
            url: url.into(),
            client_id: client_id.into(),
            username: None,
            password: None,
            keep_alive: Duration::from_secs(15),
            ca_pem: None,
        }
    }

    /// Trusting only the CA in `pem` for the broker's certificate (pinning).
    pub fn with_ca(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// With credentials.
    pub fn with_credentials(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self.password = Some(password.into());
        self
    }

    /// The rumqttc options: persistent session, frames up to the protocol's size limit.
    pub fn options(&self) -> Result<MqttOptions, TransportError> {
        let (tls, host, port) = parse_url(&self.url)?;
        let mut o = MqttOptions::new(&self.client_id, host, port);
        o.set_clean_session(false);
        o.set_keep_alive(self.keep_alive);
        let max = FrameLimits::default().max_frame_bytes + 1024;
        o.set_max_packet_size(max, max);
        if let (Some(u), Some(p)) = (&self.username, &self.password) {
            o.set_credentials(u, p);
        }
        if tls {
            #[cfg(feature = "tls")]
            o.set_transport(match &self.ca_pem {
                Some(ca) => rumqttc::Transport::tls(ca.clone(), None, None),
                None => rumqttc::Transport::tls_with_default_config(),
            });
            #[cfg(not(feature = "tls"))]
            return Err(TransportError::TlsUnavailable(self.url.clone()));
        } else if self.ca_pem.is_some() {
            return Err(TransportError::CaWithoutTls(self.url.clone()));
        }
        Ok(o)
    }
}

/// Splits `mqtt[s]://host[:port]` into (tls, host, port).
pub fn parse_url(url: &str) -> Result<(bool, String, u16), TransportError> {
    let bad = || TransportError::Url(url.to_owned());
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtt://").or_else(|| url.strip_prefix("tcp://")) {
        (false, r)
    } else if let Some(r) = url.strip_prefix("mqtts://").or_else(|| url.strip_prefix("ssl://")) {
        (true, r)
    } else {
        return Err(bad());
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, p.parse().map_err(|_| bad())?),
        _ => (rest, if tls { 8883 } else { 1883 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains('/') {
        return Err(bad());
    }
    Ok((tls, host.to_owned(), port))
}

/// Reconnect pacing: 0.5 s doubling to 30 s, reset once a connection is acknowledged.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    const MIN: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(30);

    /// Starts at the minimum.
    pub fn new() -> Self {
        Backoff { next: Self::MIN }
    }

    /// The wait before the next attempt; each call doubles the following one.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        d
    }

    /// A connection succeeded.
    pub fn reset(&mut self) {
        self.next = Self::MIN;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_password() {
        let mut c = MqttConfig::new("mqtt://127.0.0.1:1883", "node-1");
        c.username = Some("node-1".into());
        c.password = Some("s3cret-pw".into());
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret-pw") && shown.contains("[redacted]") && shown.contains("node-1"), "{shown}");
    }

    #[test]
    fn urls_give_host_port_and_tls() {
        assert_eq!(parse_url("mqtt://127.0.0.1:1884").unwrap(), (false, "127.0.0.1".into(), 1884));
        assert_eq!(parse_url("mqtt://broker.campus").unwrap(), (false, "broker.campus".into(), 1883));
        assert_eq!(parse_url("mqtts://broker.campus/").unwrap(), (true, "broker.campus".into(), 8883));
        assert_eq!(parse_url("mqtt://[::1]:1883").unwrap(), (false, "::1".into(), 1883));
        for bad in ["http://x", "mqtt://", "mqtt://h:notaport", "broker:1883", "mqtt://a/b:1"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn options_are_persistent_sessions_with_credentials() {
        let o = MqttConfig::new("mqtt://127.0.0.1:1883", "room-101")
            .with_credentials("room-101", "s3cret")
            .options()
            .unwrap();
        assert!(!o.clean_session());
        assert_eq!(o.client_id(), "room-101");
        assert_eq!(o.credentials(), Some(("room-101".to_owned(), "s3cret".to_owned())));
        let tls = MqttConfig::new("mqtts://broker", "n").options();
        assert_eq!(tls.is_ok(), cfg!(feature = "tls"));
    }

    #[test]
    fn backoff_doubles_to_thirty_seconds_and_resets() {
        let mut b = Backoff::new();
        let waits: Vec<u64> = (0..9).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(500));
    }
}
