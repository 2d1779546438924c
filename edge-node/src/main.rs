//! `nimbus-edge`: the classroom appliance daemon. Its reader loop, store, attendance sessions and
//! LAN server arrive with the edge-node issue; until then it only says so.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "nimbus-edge {}: the edge daemon is not built yet (see README: use `nimbus-cloud events` meanwhile)",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::from(2)
}
