//! `nimbus-cloud`: the cloud tier's single binary.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use nimbus_cloud::cli::{events, nodes};
use nimbus_cloud::config::CloudConfig;
use nimbus_cloud::http::probe::{self, Probes};
use nimbus_cloud::registry::Registered;
use nimbus_core::topics::{Environment, Topic};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "nimbus-cloud", version, about = "NimbusU Edge cloud tier")]
struct Cli {
    /// TOML configuration file (settings not in it come from the environment or defaults).
    #[arg(long, global = true, env = "NIMBUS_CLOUD_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with the seed's event contract.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Run the MQTT ingest: classroom nodes' batches into Kafka, acked once Kafka confirmed them.
    /// Creates missing Kafka topics and migrates the registry first; stops on SIGTERM or Ctrl-C.
    Ingest,
    /// Run one service's Kafka consumer group into its own database (effectively once: offsets are
    /// committed after the database transaction; failures go to dlq.events after the seed's
    /// retries). Creates and migrates the service database first; stops on SIGTERM or Ctrl-C.
    Worker {
        /// The service: attendance, timetable, course or notification.
        #[arg(long)]
        service: String,
    },
    /// Keep every node's retained downlink snapshots (timetable, roster, keys, manifest) in step
    /// with the services; publishes only what changed. Stops on SIGTERM or Ctrl-C.
    Downlink,
    /// Serve the admin REST API (the seed's API Gateway with the user service behind it) on
    /// NIMBUS_API_BIND (default 0.0.0.0:8080). Migrates user_service_db and creates the
    /// bootstrap administrator first; stops on SIGTERM or Ctrl-C after finishing requests.
    Api,
    /// Every role in one process, for a small campus: ingest, the attendance, timetable, course
    /// and notification workers, the downlink and the admin API. Stops on SIGTERM or Ctrl-C.
    All,
    /// Create (if missing) and migrate the cloud's databases.
    Migrate {
        /// Only these databases (e.g. edge_registry_db); all of them when none is given.
        databases: Vec<String>,
    },
    /// Keep the campus broker's node accounts in step with the registry: writes every registered
    /// node's `$7$` hash to NODES_FILE (Mosquitto password-file lines) whenever they change; the
    /// broker's entrypoint joins it with the cloud's account and reloads Mosquitto. Serves
    /// /health, /health/ready and /metrics on --probe-bind. Stops on SIGTERM or Ctrl-C.
    BrokerAccounts {
        /// The file to write (shared with the broker's container).
        #[arg(long)]
        nodes_file: PathBuf,
        /// Seconds between reads of the registry.
        #[arg(long, default_value_t = 5)]
        interval_secs: u64,
        /// Where the probes listen.
        #[arg(long, default_value = "0.0.0.0:9464")]
        probe_bind: String,
    },
    /// Health check for containers (the image has no curl): GET a URL, such as a role's
    /// http://127.0.0.1:9464/health/ready; exit 0 on a 2xx answer, 1 otherwise. An https:// URL's
    /// certificate is not checked (the probe asks its own role on loopback).
    Probe {
        /// The URL to GET.
        url: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 5)]
        timeout_secs: u64,
    },
    /// The registry of classroom nodes.
    Nodes {
        #[command(subcommand)]
        command: NodesCommand,
    },
}

#[derive(Subcommand)]
enum NodesCommand {
    /// Register a node; the ingest refuses batches of unregistered nodes. Registering an id again
    /// is refused unless nothing changes, or `--replace` moves it or replaces its credential.
    Register {
        /// The node id (its MQTT username): a-z, 0-9 and '-'.
        node_id: String,
        /// The room it serves.
        #[arg(long)]
        room: String,
        /// Hash of the node's MQTT password to keep on record ($argon2id$… or mosquitto's $7$…);
        /// this binary does not hash passwords itself.
        #[arg(long)]
        credential_hash: Option<String>,
        /// Move an already registered node to `--room` and/or replace its credential hash.
        #[arg(long)]
        replace: bool,
    },
    /// List the nodes with their high-water marks and status.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Check events (one JSON document, a JSON array or JSON lines) against the contract.
    /// Exit status 0 when every event is valid, 1 when any is not, 2 when the input cannot be read.
    Validate {
        /// File to read; `-` or nothing reads standard input.
        file: Option<PathBuf>,
        /// Require every event to belong to this topic (e.g. attendance.events, dlq.events).
        #[arg(long, value_parser = parse_topic)]
        topic: Option<Topic>,
    },
    /// Print the 13 topics with partitions, retention, replication and partition key.
    Topics {
        /// Replication settings for this environment.
        #[arg(long, value_enum, default_value_t = Env::Production)]
        env: Env,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the 9 consumer groups and their subscriptions.
    Groups,
}

#[derive(Clone, Copy, ValueEnum)]
enum Env {
    Development,
    Production,
}

fn parse_topic(s: &str) -> Result<Topic, String> {
    s.parse().map_err(|e| format!("{e}; known topics: {}", Topic::ALL.map(|t| t.name()).join(", ")))
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Ingest => {
            let config = load_config(cli.config.as_deref())?;
            runtime()?.block_on(traced(&config.clone(), "nimbus-cloud-ingest".into(), ingest(config)))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Worker { service } => {
            let config = load_config(cli.config.as_deref())?;
            let name = format!("nimbus-cloud-worker-{service}");
            runtime()?.block_on(traced(&config.clone(), name, worker(config, service)))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Downlink => {
            let config = load_config(cli.config.as_deref())?;
            runtime()?.block_on(downlink(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Api => {
            let config = load_config(cli.config.as_deref())?;
            runtime()?.block_on(traced(&config.clone(), "nimbus-cloud-api".into(), api(config)))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::All => {
            let config = load_config(cli.config.as_deref())?;
            runtime()?.block_on(traced(&config.clone(), "nimbus-cloud".into(), all(config)))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate { databases } => {
            let config = load_config(cli.config.as_deref())?;
            for (database, n) in runtime()?.block_on(nodes::migrate_all(&config, &databases))? {
                println!("{database}: {n} migration(s) applied");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::BrokerAccounts { nodes_file, interval_secs, probe_bind } => {
            let config = load_config(cli.config.as_deref())?;
            let settings = nimbus_cloud::registry::broker::BrokerAccountsSettings {
                nodes_file,
                cloud_user: config.mqtt.username.clone().unwrap_or_default(),
                interval: std::time::Duration::from_secs(interval_secs.max(1)),
            };
            runtime()?.block_on(broker_accounts(config, settings, probe_bind))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Probe { url, timeout_secs } => {
            let timeout = std::time::Duration::from_secs(timeout_secs.max(1));
            let status = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?
                .block_on(nimbus_cloud::probe::get_status(&url, timeout));
            match status {
                Ok(status) if nimbus_cloud::probe::healthy(status) => {
                    println!("{url}: {status}");
                    Ok(ExitCode::SUCCESS)
                }
                Ok(status) => {
                    println!("{url}: {status} (unhealthy)");
                    Ok(ExitCode::FAILURE)
                }
                Err(e) => {
                    println!("{e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Nodes { command } => {
            let config = load_config(cli.config.as_deref())?;
            runtime()?.block_on(nodes_command(config, command))
        }
        Command::Events { command } => match command {
            EventsCommand::Validate { file, topic } => {
                let text = match read_input(file) {
                    Ok(text) => text,
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        return Ok(ExitCode::from(2));
                    }
                };
                let verdicts = events::validate(&text, topic);
                print!("{}", events::render(&verdicts));
                Ok(if events::all_valid(&verdicts) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
            }
            EventsCommand::Topics { env, json } => {
                let env = match env {
                    Env::Development => Environment::Development,
                    Env::Production => Environment::Production,
                };
                if json {
                    println!("{}", serde_json::to_string_pretty(&events::topics_json(env))?);
                } else {
                    print!("{}", events::topics_table(env));
                }
                Ok(ExitCode::SUCCESS)
            }
            EventsCommand::Groups => {
                print!("{}", events::groups_table());
                Ok(ExitCode::SUCCESS)
            }
        },
    }
}

fn load_config(path: Option<&Path>) -> anyhow::Result<CloudConfig> {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // The configuration comes first: it says how to log (`tracing.log_format`). Loading it logs
    // nothing, and its errors reach stderr through main's error.
    let config = CloudConfig::load(path)?;
    // Each layer has its own filter: `RUST_LOG=warn` quiets the logs without turning tracing
    // off, and the OTLP layer takes the cloud's own info spans, only while `traced` has started
    // the exporter. Every other callsite is "never" for it (cached) and its level hint is INFO,
    // so library `debug!`/`trace!` calls stay as cheap as with the log filter alone.
    let logs = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,rdkafka=warn".into());
    let ours = |m: &tracing::Metadata<'_>| {
        m.is_span() && *m.level() <= tracing::Level::INFO && m.target().starts_with("nimbus_cloud")
    };
    let spans = tracing_subscriber::filter::dynamic_filter_fn(move |m, _| nimbus_cloud::trace::enabled() && ours(m))
        .with_callsite_filter(move |m| {
            if ours(m) { tracing::subscriber::Interest::sometimes() } else { tracing::subscriber::Interest::never() }
        })
        .with_max_level_hint(tracing::level_filters::LevelFilter::INFO);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if config.tracing.log_format == "json" {
        // The current span's fields (`span.trace_id` among them) on every line; not the list.
        fmt.json().with_current_span(true).with_span_list(false).with_filter(logs).boxed()
    } else {
        fmt.with_filter(logs).boxed()
    };
    tracing_subscriber::registry().with(fmt).with(nimbus_cloud::trace::OtlpLayer.with_filter(spans)).init();
    tracing::debug!(?config, "configuration");
    Ok(config)
}

/// Runs a role with tracing on when an OTLP endpoint is configured
/// (`OTEL_EXPORTER_OTLP_ENDPOINT`), then posts the spans of its last moments before returning.
async fn traced(
    config: &CloudConfig,
    service_name: String,
    role: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let exporter = nimbus_cloud::trace::start(config.tracing.otlp_endpoint.as_deref(), &service_name)?;
    let result = role.await;
    if let Some(exporter) = exporter {
        exporter.finish().await;
    }
    result
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

async fn ingest(config: CloudConfig) -> anyhow::Result<()> {
    config.require_broker_password()?;
    tracing::info!(environment = ?config.environment, brokers = %config.kafka.brokers, mqtt = %config.mqtt.url,
                   client_id = %config.ingest_client_id(), group = %config.ingest.group, "starting the ingest");
    nimbus_cloud::kafka::ensure_topics(&config.kafka.brokers, config.environment)
        .await
        .context("cannot create the Kafka topics (kafka.brokers / KAFKA_BROKERS)")?;
    let registry = nimbus_cloud::db::migrations_for("edge_registry_db").context("registry migrations")?;
    nodes::migrate_database(&config, registry).await.context("cannot migrate the registry (DATABASE_URL)")?;
    let shutdown = stop_on_signal("finishing batches in flight");
    let probes = serve_probes(&config, &shutdown).await?;
    nimbus_cloud::ingest::run_with(config, &probes, shutdown).await?;
    Ok(())
}

/// Serves `/health`, `/health/ready` and `/metrics` on `probe.bind` until `shutdown`, for the
/// roles without the API; the role adds its checks and metrics to the returned probes.
async fn serve_probes(config: &CloudConfig, shutdown: &CancellationToken) -> anyhow::Result<Probes> {
    let probes = Probes::default();
    let listener = probe::bind(&config.probe.bind).await?;
    let (p, stop) = (probes.clone(), shutdown.clone());
    tokio::spawn(async move {
        if let Err(e) = probe::serve(listener, p, stop).await {
            tracing::error!(error = %e, "the probe server stopped");
        }
    });
    Ok(probes)
}

async fn worker(config: CloudConfig, service: String) -> anyhow::Result<()> {
    nimbus_cloud::kafka::ensure_topics(&config.kafka.brokers, config.environment)
        .await
        .context("cannot create the Kafka topics (kafka.brokers / KAFKA_BROKERS)")?;
    let settings = worker_settings(&config, &service).await?;
    let shutdown = stop_on_signal("finishing the batch in hand");
    let probes = serve_probes(&config, &shutdown).await?;
    nimbus_cloud::worker::run_with(&service, settings, probes, shutdown).await?;
    Ok(())
}

/// A worker's settings, its database created and migrated. Staging and tests may point a worker
/// at another (existing) database and consumer group (`worker.database`, `worker.group`), as
/// `database.registry_database` does for the registry; production uses the seed's names.
async fn worker_settings(config: &CloudConfig, service: &str) -> anyhow::Result<nimbus_cloud::worker::WorkerSettings> {
    let database = format!("{}_service_db", service.trim_end_matches("-service"));
    let migrations = nimbus_cloud::db::migrations_for(&database).with_context(|| {
        format!("no worker for service {service:?} (known: attendance, timetable, course, notification, announcement, communication)")
    })?;
    let url = match &config.worker.database {
        Some(name) => nimbus_cloud::db::database_url(&config.database.url, name),
        None => {
            nodes::migrate_database(config, migrations).await.with_context(|| format!("cannot migrate {database}"))?;
            config.database_url_for(&database)
        }
    };
    let mut settings = nimbus_cloud::worker::WorkerSettings::new(&config.kafka.brokers, url);
    settings.group_id = config.worker.group.clone();
    settings.batch_size = usize::try_from(config.worker.batch_size).unwrap_or(500);
    // Static membership, always: the watchdog's replacement client (and, under a name the
    // operator gives, a restarted worker) takes the partitions back at once instead of waiting
    // for a rebalance the broker may never finish. Without a name, one unique to this process, so
    // two workers on one machine never share it.
    settings.membership.instance_id = Some(config.worker.instance.clone().unwrap_or_else(|| {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        format!("{}-{service}-{}-{}", config.ingest.instance, std::process::id(), &nonce[..8])
    }));
    if database == nimbus_cloud::attendance::DATABASE {
        settings.alerts.interval = Some(std::time::Duration::from_secs(config.worker.alert_interval_secs.max(1)));
        settings.alerts.thresholds.min_classes = u32::try_from(config.worker.alert_min_classes).unwrap_or(u32::MAX);
    }
    if database == nimbus_cloud::notification::DATABASE {
        let n = &mut settings.notification;
        n.users_url = config.database_url_for("user_service_db");
        n.courses_url = config.database_url_for("course_service_db");
        n.email = nimbus_cloud::notification::channels::EmailSettings::from_config(&config.notification);
        n.sms = nimbus_cloud::notification::channels::sms::SmsSettings::from_config(&config.notification);
        n.push = nimbus_cloud::notification::channels::push::PushSettings::from_config(&config.notification);
        n.reset_url = config.notification.reset_url.clone();
        n.sender.concurrency = config.notification.concurrency as usize;
    }
    if database == nimbus_cloud::announcement::DATABASE {
        let a = &mut settings.announcement;
        a.users_url = config.database_url_for("user_service_db");
        a.courses_url = config.database_url_for("course_service_db");
        a.timetable_url = config.database_url_for("timetable_service_db");
    }
    tracing::info!(%service, %database, brokers = %config.kafka.brokers, "starting the worker");
    Ok(settings)
}

async fn downlink(config: CloudConfig) -> anyhow::Result<()> {
    config.require_broker_password()?;
    let registry = nimbus_cloud::db::migrations_for("edge_registry_db").context("registry migrations")?;
    nodes::migrate_database(&config, registry).await.context("cannot migrate the registry (DATABASE_URL)")?;
    let shutdown = stop_on_signal("stopping the downlink");
    let probes = serve_probes(&config, &shutdown).await?;
    let metrics = std::sync::Arc::new(nimbus_cloud::downlink::DownlinkMetrics::default());
    let settings = nimbus_cloud::downlink::DownlinkSettings::from_config(&config);
    nimbus_cloud::downlink::run_with(settings, metrics, &probes, shutdown).await?;
    Ok(())
}

async fn api(config: CloudConfig) -> anyhow::Result<()> {
    nimbus_cloud::kafka::ensure_topics(&config.kafka.brokers, config.environment)
        .await
        .context("cannot create the Kafka topics (kafka.brokers / KAFKA_BROKERS)")?;
    let listener = tokio::net::TcpListener::bind(&config.api.bind)
        .await
        .with_context(|| format!("cannot listen on {} (api.bind / NIMBUS_API_BIND)", config.api.bind))?;
    let shutdown = stop_on_signal("finishing requests in flight");
    nimbus_cloud::api::run(config, listener, shutdown).await?;
    Ok(())
}

async fn broker_accounts(
    config: CloudConfig,
    settings: nimbus_cloud::registry::broker::BrokerAccountsSettings,
    probe_bind: String,
) -> anyhow::Result<()> {
    use nimbus_cloud::registry::broker;
    let registry = nimbus_cloud::db::migrations_for("edge_registry_db").context("registry migrations")?;
    nodes::migrate_database(&config, registry).await.context("cannot migrate the registry (DATABASE_URL)")?;
    let pool = nimbus_cloud::db::pool(&config.registry_url(), 2).context("registry pool (DATABASE_URL)")?;
    let listener = tokio::net::TcpListener::bind(&probe_bind)
        .await
        .with_context(|| format!("cannot listen on {probe_bind} (--probe-bind)"))?;
    let metrics = std::sync::Arc::new(broker::BrokerAccountsMetrics::default());
    let shutdown = stop_on_signal("stopping the broker accounts");
    let app = broker::probe_routes(metrics.clone(), settings.interval);
    let stop = shutdown.clone();
    let probes = tokio::spawn(async move {
        axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await
    });
    tracing::info!(file = %settings.nodes_file.display(), probes = %probe_bind, "starting the broker accounts");
    let result = broker::run(pool, settings, metrics, shutdown.clone()).await;
    shutdown.cancel();
    probes.await.context("probe server")?.context("probe server")?;
    Ok(result?)
}

/// Every role in one process; the first role to fail stops the others.
async fn all(config: CloudConfig) -> anyhow::Result<()> {
    config.require_broker_password()?;
    nimbus_cloud::kafka::ensure_topics(&config.kafka.brokers, config.environment)
        .await
        .context("cannot create the Kafka topics (kafka.brokers / KAFKA_BROKERS)")?;
    for (database, n) in nodes::migrate_all(&config, &[]).await? {
        tracing::info!(database, migrations = n, "database ready");
    }
    let shutdown = stop_on_signal("stopping every role");
    // One set of probes for the process, served once, on the API's address.
    let probes = Probes::default();
    let mut roles = tokio::task::JoinSet::new();
    {
        let (config, stop, probes) = (config.clone(), shutdown.clone(), probes.clone());
        roles.spawn(async move {
            ("ingest", nimbus_cloud::ingest::run_with(config, &probes, stop).await.map_err(anyhow::Error::from))
        });
    }
    for service in ["attendance", "timetable", "course", "notification", "announcement", "communication"] {
        let settings = worker_settings(&config, service).await?;
        let (stop, probes) = (shutdown.clone(), probes.clone());
        roles.spawn(async move {
            (
                service,
                nimbus_cloud::worker::run_with(service, settings, probes, stop).await.map_err(anyhow::Error::from),
            )
        });
    }
    {
        let (settings, stop) = (nimbus_cloud::downlink::DownlinkSettings::from_config(&config), shutdown.clone());
        let metrics = std::sync::Arc::new(nimbus_cloud::downlink::DownlinkMetrics::default());
        let probes = probes.clone();
        roles.spawn(async move {
            let result = nimbus_cloud::downlink::run_with(settings, metrics, &probes, stop).await;
            ("downlink", result.map_err(anyhow::Error::from))
        });
    }
    {
        let listener = tokio::net::TcpListener::bind(&config.api.bind)
            .await
            .with_context(|| format!("cannot listen on {} (api.bind / NIMBUS_API_BIND)", config.api.bind))?;
        let (config, stop) = (config.clone(), shutdown.clone());
        roles.spawn(async move {
            ("api", nimbus_cloud::api::run_with(config, listener, probes, stop).await.map_err(anyhow::Error::from))
        });
    }
    let mut failure = None;
    while let Some(done) = roles.join_next().await {
        let (role, result) = done.context("a role panicked")?;
        if let Err(e) = result {
            tracing::error!(role, error = %format!("{e:#}"), "role failed; stopping the others");
            failure.get_or_insert(e.context(format!("{role} failed")));
        }
        shutdown.cancel();
    }
    failure.map_or(Ok(()), Err)
}

/// A token cancelled by SIGTERM or Ctrl-C.
fn stop_on_signal(what: &'static str) -> CancellationToken {
    let shutdown = CancellationToken::new();
    let signals = shutdown.clone();
    tokio::spawn(async move {
        wait_for_stop_signal().await;
        tracing::info!("stop requested; {what}");
        signals.cancel();
    });
    shutdown
}

async fn wait_for_stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

async fn nodes_command(config: CloudConfig, command: NodesCommand) -> anyhow::Result<ExitCode> {
    match command {
        NodesCommand::Register { node_id, room, credential_hash, replace } => {
            let node = match nodes::check_registration(&node_id, &room, credential_hash.as_deref()) {
                Ok(node) => node,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            let registry = nodes::registry(&config).await?;
            match registry.register(&node, room.trim(), credential_hash.as_deref(), replace).await {
                Ok(outcome) => {
                    let what = match outcome {
                        Registered::Created => "registered",
                        Registered::Unchanged => "already registered (unchanged):",
                        Registered::Replaced => "re-registered",
                    };
                    println!("{what} {node} in room {}", room.trim());
                }
                Err(e @ nimbus_cloud::Error::Conflict { .. }) => {
                    eprintln!("error: {e} (use --replace)");
                    return Ok(ExitCode::from(2));
                }
                Err(e) => return Err(e.into()),
            }
        }
        NodesCommand::List { json } => {
            let list = nodes::registry(&config).await?.list().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&nodes::render_json(&list))?);
            } else {
                print!("{}", nodes::render_table(&list));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_input(file: Option<PathBuf>) -> anyhow::Result<String> {
    match file {
        Some(path) if path.as_os_str() != "-" => {
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
        }
        _ => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).context("cannot read standard input")?;
            Ok(text)
        }
    }
}
