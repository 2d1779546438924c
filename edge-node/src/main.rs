//! `nimbus-edge`: the classroom appliance daemon.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use nimbus_edge::config::Config;
use tokio_util::sync::CancellationToken;

/// NimbusU Edge classroom node.
#[derive(Parser)]
#[command(name = "nimbus-edge", version)]
struct Cli {
    /// TOML configuration file (defaults apply to anything it leaves out).
    #[arg(long, short, env = "NIMBUS_EDGE_CONFIG")]
    config: Option<PathBuf>,
    /// Run with the built-in demo timetable and rosters and the simulated reader, storing data in
    /// ./nimbus-edge-data unless the config says otherwise.
    #[arg(long)]
    simulate: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = Config::load(cli.config.as_deref()).context("invalid configuration")?;
    if cli.simulate && cli.config.is_none() && std::env::var_os("NIMBUS_DATA_DIR").is_none() {
        config.data_dir = PathBuf::from("nimbus-edge-data");
        config.room_id = "demo-101".into();
        // A stand-alone demo: the outbox fills up and waits for a configured cloud.
        config.cloud.enabled = false;
    }
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| config.log.clone());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&filter).context("invalid log filter")?)
        .with_writer(std::io::stderr)
        .init();

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            signal.cancel();
        });
        nimbus_edge::node::run(config, cli.simulate, shutdown).await.context("node failed")
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
