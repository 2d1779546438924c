//! mDNS/DNS-SD: the node advertises its LAN server so students' devices find it by name, not by
//! an IP address that DHCP may change. The instance is the node id under `_nimbus._tcp.local.`
//! (and, for generic browsers, `_http._tcp.local.`), with TXT `room=<room>`, `node=<id>`, `path=/`.
//! Advertising is best effort: a LAN without multicast must not keep the node from taking taps.

use mdns_sd::{ServiceDaemon, ServiceInfo};

use crate::error::{Error, Result};

/// The node's own service type.
pub const SERVICE_TYPE: &str = "_nimbus._tcp.local.";
/// The generic web service type.
pub const HTTP_SERVICE_TYPE: &str = "_http._tcp.local.";

/// A running advertisement; [`Advertiser::stop`] withdraws it (goodbye packets) and stops the
/// responder.
pub struct Advertiser {
    daemon: ServiceDaemon,
    names: Vec<String>,
}

/// The service records for one node.
pub fn service_info(service_type: &str, node_id: &str, room_id: &str, port: u16) -> Result<ServiceInfo> {
    let host = format!("{node_id}.local.");
    let props = [("room", room_id), ("node", node_id), ("path", "/")];
    ServiceInfo::new(service_type, node_id, &host, "", port, &props[..])
        .map(ServiceInfo::enable_addr_auto)
        .map_err(|e| Error::Config(format!("mdns service: {e}")))
}

impl Advertiser {
    /// Starts advertising `port` (every interface's addresses).
    pub fn start(node_id: &str, room_id: &str, port: u16, also_http: bool) -> Result<Advertiser> {
        let daemon = ServiceDaemon::new().map_err(|e| Error::Io(std::io::Error::other(format!("mdns: {e}"))))?;
        let mut names = Vec::new();
        let types: &[&str] = if also_http { &[SERVICE_TYPE, HTTP_SERVICE_TYPE] } else { &[SERVICE_TYPE] };
        for ty in types {
            let info = service_info(ty, node_id, room_id, port)?;
            names.push(info.get_fullname().to_owned());
            daemon.register(info).map_err(|e| Error::Io(std::io::Error::other(format!("mdns register: {e}"))))?;
        }
        tracing::info!(node = node_id, room = room_id, port, "advertising the LAN server over mDNS");
        Ok(Advertiser { daemon, names })
    }

    /// The full names advertised (`<node>._nimbus._tcp.local.`, …).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Withdraws the records and stops the responder.
    pub fn stop(self) {
        for name in &self.names {
            if let Ok(rx) = self.daemon.unregister(name) {
                let _ = rx.recv_timeout(std::time::Duration::from_secs(1));
            }
        }
        if let Ok(rx) = self.daemon.shutdown() {
            let _ = rx.recv_timeout(std::time::Duration::from_secs(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_records_carry_the_room_and_node() {
        let info = service_info(SERVICE_TYPE, "lab-2", "demo-101", 8480).unwrap();
        assert_eq!(info.get_fullname(), "lab-2._nimbus._tcp.local.");
        assert_eq!(info.get_property_val_str("room"), Some("demo-101"));
        assert_eq!(info.get_property_val_str("node"), Some("lab-2"));
        assert_eq!(info.get_property_val_str("path"), Some("/"));
        assert_eq!(info.get_port(), 8480);
    }
}
