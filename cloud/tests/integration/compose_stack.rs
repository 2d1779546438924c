//! The campus deployment (`docker-compose.yml`, `cloud/Dockerfile`, `scripts/compose/*`,
//! `scripts/init-databases.sh`) checked against the code, since no Docker engine runs in CI: every
//! cloud role runs a real subcommand with the environment the configuration reads, the databases,
//! topics, broker ACL and limits are the code's, ports and health checks are sound and secrets only
//! come from the environment. Each failure says what is inconsistent with what.
//!
//! The checks that guard against the defects compose once had (a role missing, a role without
//! the credentials its service is started with, a health check that is not the role's own probe)
//! are functions of the parsed file, run on the file and on mutated copies that must fail them
//! (`a_mutated_compose_…`). No container runs here (no Docker engine on these machines); what runs
//! for real is the health-check command itself (`nimbus-cloud probe`) and the broker's entrypoint
//! with Mosquitto (`broker_accounts`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use nimbus_cloud::config::{CloudConfig, ENV};
use nimbus_cloud::worker::{Worker, WorkerSettings};
use nimbus_core::groups::{CONSUMER_GROUPS, group_for_service};
use nimbus_core::topics::{Environment, TOPICS};
use nimbus_sync::frame::FrameLimits;
use serde_yaml::Value;

use crate::common::compose::*;

/// Room for the MQTT fixed header, topic name and packet id around a full-size frame (the same
/// margin the configuration demands of `mqtt.max_incoming_bytes`).
const MQTT_PACKET_OVERHEAD: usize = 1024;

/// Variables every role that reads them must set in compose, because the built-in default is
/// wrong there: the variable and why.
pub(crate) const COMPOSE_MUST_SET: &[(&str, &str)] = &[
    ("NIMBUS_ENV", "it decides the replication of the topics the roles create, which must suit the compose Kafka"),
    ("DATABASE_URL", "the default server is 127.0.0.1, not the postgres service"),
    ("KAFKA_BROKERS", "the default broker is 127.0.0.1:9092, not the kafka service"),
    ("MQTT_URL", "the default broker is 127.0.0.1:1883, not the mosquitto service"),
    ("MQTT_USERNAME", "it must be the account the ACL and the password file know, so compose states it"),
    ("MQTT_PASSWORD", "it has no default and the broker refuses anonymous clients"),
    (
        "INGEST_INSTANCE",
        "the default is the host name, which in a container is its id and changes when it is re-created, losing \
         the instance's persistent MQTT session",
    ),
    ("REDIS_URL", "the default is 127.0.0.1:6379, not the redis service"),
    ("MONGODB_URI", "the default is 127.0.0.1:27017, not the mongodb service (content file bytes, GridFS)"),
    ("NIMBUS_ADMIN_PASSWORD", "without a bootstrap administrator nobody can log in to create the first users"),
    ("NIMBUS_PUBLIC_URL", "the default is loopback; the nodes download content from the manifest's URLs"),
];

/// Where every role but the api serves its probes unless NIMBUS_PROBE_BIND says otherwise (the
/// probe interface: `/health`, `/health/ready`, `/metrics`; the api serves them on its own bind).
pub(crate) const DEFAULT_PROBE_PORT: u16 = 9464;

/// Subcommands of the binary that are tools or one-shots, not long-running roles.
pub(crate) const NOT_ROLES: &[&str] = &["events", "nodes", "migrate", "probe", "all", "help"];

/// Variables no compose role may set, although a role reads them: the variable and why.
pub(crate) const COMPOSE_MUST_NOT_SET: &[(&str, &str)] = &[
    ("NIMBUS_CLOUD_CONFIG", "compose configures the roles through the environment, without a file"),
    (
        "NIMBUS_SERVICE_DB",
        "it points a worker at another, existing database and skips its migrations (staging and tests); compose \
         runs the seed's database, created and migrated by the worker",
    ),
    (
        "NIMBUS_WORKER_GROUP",
        "it is a test hook replacing the seed's consumer group id; a deployment under another id would apply every \
         event a second time",
    ),
    ("HOSTNAME", "Docker sets it; INGEST_INSTANCE replaces its use"),
    ("USER_DATABASE_URL", SERVICE_DATABASE_ELSEWHERE),
    ("CONTENT_DATABASE_URL", SERVICE_DATABASE_ELSEWHERE),
    ("NOTIFICATION_DATABASE_URL", SERVICE_DATABASE_ELSEWHERE),
    ("COURSE_DATABASE_URL", SERVICE_DATABASE_ELSEWHERE),
    ("TIMETABLE_DATABASE_URL", SERVICE_DATABASE_ELSEWHERE),
    ("ATTENDANCE_DATABASE_URL", SERVICE_DATABASE_ELSEWHERE),
    ("ANNOUNCEMENT_DATABASE_URL", SERVICE_DATABASE_ELSEWHERE),
    ("COMMUNICATION_DATABASE_URL", SERVICE_DATABASE_ELSEWHERE),
    ("ANALYTICS_DATABASE_URL", SERVICE_DATABASE_ELSEWHERE),
];

const SERVICE_DATABASE_ELSEWHERE: &str =
    "one service database elsewhere; compose runs every database on DATABASE_URL by the seed's name";

/// Whether the binary reads `name` at all.
pub(crate) fn known_variable(name: &str) -> bool {
    OUTSIDE_CONFIG.contains(&name) || ENV.iter().any(|v| v.name == name)
}

// ---------------------------------------------------------------------------------------------
// Cloud roles: commands and environment
// ---------------------------------------------------------------------------------------------

#[test]
fn every_cloud_role_runs_a_real_subcommand_of_the_binary() {
    let compose = compose();
    let available = binary_subcommands();
    for role in roles(&compose) {
        let svc = service(&compose, &role.service);
        assert!(
            svc.get("entrypoint").is_none(),
            "service {}: overrides the entrypoint; a cloud role's command is the subcommand of the image's \
             ENTRYPOINT [\"nimbus-cloud\"]",
            role.service
        );
        assert!(!role.args.is_empty(), "service {}: has no command (the nimbus-cloud subcommand)", role.service);
        let sub = role.subcommand();
        // Every role, `worker` included: it was the last to arrive in the binary, and a role
        // whose subcommand is missing would restart forever on `unrecognized subcommand`.
        assert!(
            available.contains(sub),
            "service {}: `nimbus-cloud {sub}` is not a subcommand; the binary has {available:?}",
            role.service
        );
        let argv: Vec<&str> = role.args.iter().map(String::as_str).collect();
        let out = binary_help(&argv);
        assert!(
            out.status.success(),
            "service {}: `nimbus-cloud {} --help` fails, so the command {:?} is not accepted: {}",
            role.service,
            argv.join(" "),
            role.args,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every long-running subcommand of the binary runs as a role, with a worker for every service
/// that has one (and no two for one consumer group).
fn check_every_role_is_deployed(compose: &Value) {
    let roles = roles(compose);
    role(&roles, "migrate");
    for sub in binary_subcommands().iter().filter(|s| !NOT_ROLES.contains(&s.as_str())) {
        assert!(
            roles.iter().any(|r| r.subcommand() == sub),
            "`nimbus-cloud {sub}` is a role of the binary, but no service of {COMPOSE} runs it"
        );
    }
    let settings = || WorkerSettings::new("kafka:29092", "postgres://nimbusu@postgres:5432/attendance_service_db");
    let workers: Vec<&Role> = roles.iter().filter(|r| r.subcommand() == "worker").collect();
    let mut deployed = BTreeSet::new();
    for w in &workers {
        let service = w
            .option("--service")
            .unwrap_or_else(|| panic!("service {}: `worker` without `--service <name>`", w.service));
        if let Err(e) = Worker::new(service, settings()) {
            panic!("service {}: `worker --service {service}` cannot start: {e}", w.service);
        }
        let group = group_for_service(service).expect("Worker::new accepted it").group_id;
        assert!(deployed.insert(group), "service {}: a second worker for {group}", w.service);
    }
    for group in &CONSUMER_GROUPS {
        if Worker::new(group.service, settings()).is_ok() {
            assert!(
                deployed.contains(group.group_id),
                "{} has a worker in the code but no `worker --service {}` role in {COMPOSE}",
                group.service,
                group.service.trim_end_matches("-service")
            );
        }
    }
}

#[test]
fn every_role_of_the_binary_and_a_worker_per_service_that_has_one_run_in_compose() {
    check_every_role_is_deployed(&compose());
}

#[test]
fn the_code_reads_no_environment_variable_behind_the_configurations_back() {
    let outside: BTreeSet<String> = OUTSIDE_CONFIG.iter().map(|n| n.to_string()).collect();
    let code = code_env_names();
    let unknown: Vec<&String> = code.difference(&outside).collect();
    assert!(
        unknown.is_empty(),
        "the cloud code reads {unknown:?} directly; make each a setting with a row in config::ENV, so it is loaded \
         once, validated and documented"
    );
    let stale: Vec<&String> = outside.difference(&code).collect();
    assert!(stale.is_empty(), "OUTSIDE_CONFIG lists {stale:?}, which the cloud code no longer reads");
    let table: BTreeSet<String> = ENV.iter().map(|v| v.name.to_owned()).collect();
    assert_eq!(config_env_names(), table, "CloudConfig's loader reads other variables than config::ENV's rows");
}

#[test]
fn the_compose_rules_name_only_variables_the_code_reads() {
    for (name, _) in COMPOSE_MUST_SET.iter().chain(COMPOSE_MUST_NOT_SET) {
        assert!(known_variable(name), "compose_stack.rs has a rule for {name}, which nimbus-cloud no longer reads");
    }
}

/// The variables whose defaults do not work in compose are set, and every credential a role
/// passes to a service is the one that service is started with.
fn check_role_credentials(compose: &Value) {
    for role in roles(compose) {
        for (name, why) in COMPOSE_MUST_SET.iter().filter(|(name, _)| role.uses(name)) {
            assert!(
                role.env.get(*name).is_some_and(|v| !v.trim().is_empty()),
                "service {} (`{}`) does not set {name}: {why}",
                role.service,
                role.subcommand(),
            );
        }
        let postgres = environment(service(compose, "postgres"));
        if let Some(url) = role.env.get("DATABASE_URL") {
            url_carries_account(
                &role.service,
                "DATABASE_URL",
                url,
                "postgres",
                &postgres,
                "POSTGRES_USER",
                "POSTGRES_PASSWORD",
            );
        }
        if let Some(url) = role.env.get("MONGODB_URI") {
            let mongodb = environment(service(compose, "mongodb"));
            url_carries_account(
                &role.service,
                "MONGODB_URI",
                url,
                "mongodb",
                &mongodb,
                "MONGO_INITDB_ROOT_USERNAME",
                "MONGO_INITDB_ROOT_PASSWORD",
            );
            assert!(
                url.contains("authSource=admin"),
                "service {}: MONGODB_URI ({url}) signs in as the mongodb service's root user, who lives in the admin \
                 database, without authSource=admin",
                role.service
            );
        }
    }
}

/// `url`'s user is `server`'s `user_var` and its password comes from the variables `server`'s
/// `password_var` does (when the server is started with one, it refuses anything else).
fn url_carries_account(
    role: &str,
    var: &str,
    url: &str,
    server: &str,
    server_env: &BTreeMap<String, String>,
    user_var: &str,
    password_var: &str,
) {
    let Some(server_password) = server_env.get(password_var) else { return };
    // Up to the first `:` or `@` after the scheme, when the URL carries an account at all (the
    // password is a `${VAR:?…}` reference, whose `?` and `/` rule out splitting the authority).
    let rest = url.split_once("://").map_or("", |(_, r)| r);
    let user = if rest.contains('@') { rest.split([':', '@']).next().unwrap_or_default() } else { "" };
    assert_eq!(
        Some(user),
        server_env.get(user_var).map(String::as_str),
        "service {role}: {var} ({url}) does not sign in as {server}'s {user_var}; {server} is started with an \
         account and refuses anything else"
    );
    let wanted: Vec<String> = references(server_password).into_iter().map(|(n, _)| n).collect();
    let got: Vec<String> = references(url).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        got, wanted,
        "service {role}: the password in {var} ({url}) does not come from the variable {server}'s {password_var} does"
    );
}

#[test]
fn every_role_sets_the_variables_whose_defaults_do_not_work_in_compose_and_the_credentials_it_needs() {
    check_role_credentials(&compose());
}

#[test]
fn no_role_sets_a_variable_the_code_does_not_read_or_the_role_does_not_use() {
    let compose = compose();
    for role in roles(&compose) {
        for name in role.env.keys() {
            assert!(
                known_variable(name),
                "service {} sets {name}, which nimbus-cloud never reads (a typo?); it reads config::ENV's variables \
                 and {OUTSIDE_CONFIG:?}",
                role.service
            );
            if let Some((_, why)) = COMPOSE_MUST_NOT_SET.iter().find(|(n, _)| n == name) {
                panic!("service {} sets {name}, which no compose role may set: {why}", role.service);
            }
            assert!(
                role.uses(name),
                "service {} (`{}`) sets {name}, which only {:?} read{}",
                role.service,
                role.subcommand(),
                Role::readers(name),
                if is_secret_name(name) { ": a secret the role does not need" } else { "" }
            );
        }
    }
}

#[test]
fn every_role_environment_is_a_valid_configuration() {
    let compose = compose();
    for role in roles(&compose) {
        if let Err(e) = role.config() {
            panic!("service {}: its environment is not a valid nimbus-cloud configuration: {e}", role.service);
        }
    }
}

#[test]
fn roles_reach_postgres_kafka_and_mosquitto_by_their_compose_names() {
    let compose = compose();
    let names: BTreeSet<String> = services(&compose).into_iter().map(|(n, _)| n).collect();
    let postgres = service(&compose, "postgres");
    let pg_ports: BTreeSet<u16> = ports(postgres).iter().map(|p| p.target).collect();
    let advertised: BTreeSet<String> = environment(service(&compose, "kafka"))
        .get("KAFKA_ADVERTISED_LISTENERS")
        .expect("kafka sets KAFKA_ADVERTISED_LISTENERS")
        .split(',')
        .filter_map(|l| l.split_once("://").map(|(_, a)| a.to_owned()))
        .collect();
    let listeners = mosquitto_conf().get("listener").cloned().unwrap_or_default();

    for role in roles(&compose) {
        let config = role.config().unwrap_or_else(|e| panic!("service {}: {e}", role.service));
        let url = config.registry_url();
        let (host, port) = url_host_port(&url);
        assert!(
            host == "postgres" && pg_ports.contains(&port),
            "service {}: DATABASE_URL points at {host}:{port}, not the postgres service on {pg_ports:?}",
            role.service
        );
        // Its user and password: check_role_credentials.

        if role.env.contains_key("KAFKA_BROKERS") {
            for broker in config.kafka.brokers.split(',').map(str::trim) {
                let (host, _) = host_port_of(broker);
                assert!(
                    names.contains(&host) && advertised.contains(broker),
                    "service {}: KAFKA_BROKERS names {broker}, which is not a listener the kafka service advertises \
                     to other containers ({advertised:?})",
                    role.service
                );
            }
        }
        if role.env.contains_key("MQTT_URL") {
            let (host, port) = url_host_port(&config.mqtt.url);
            assert!(
                host == "mosquitto" && listeners.contains(&port.to_string()),
                "service {}: MQTT_URL points at {host}:{port}, but the mosquitto service listens on {listeners:?} \
                 (scripts/compose/mosquitto.conf)",
                role.service
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Databases and topics
// ---------------------------------------------------------------------------------------------

#[test]
fn init_databases_creates_the_nine_seed_databases_and_every_cloud_database() {
    let compose = compose();
    let postgres = service(&compose, "postgres");
    assert!(
        volumes(postgres)
            .iter()
            .any(|(src, target)| src == "./scripts/init-databases.sh"
                && target.starts_with("/docker-entrypoint-initdb.d/")),
        "the postgres service does not mount ./scripts/init-databases.sh into /docker-entrypoint-initdb.d/"
    );
    let seed = seed_databases();
    assert_eq!(seed.len(), 9, "the seed (docs/contract) should name nine databases, found {seed:?}");
    let config = role(&roles(&compose), "migrate").config().expect("checked by every_role_environment_is_…");
    let cloud: BTreeSet<String> =
        nimbus_cloud::db::ALL.iter().map(|m| config.database_name(m.database).to_owned()).collect();
    let created = init_script_databases();
    let missing_seed: Vec<&String> = seed.difference(&created).collect();
    assert!(missing_seed.is_empty(), "scripts/init-databases.sh does not create the seed's {missing_seed:?}");
    let missing_cloud: Vec<&String> = cloud.difference(&created).collect();
    assert!(
        missing_cloud.is_empty(),
        "scripts/init-databases.sh does not create {missing_cloud:?}, which nimbus_cloud::db::ALL migrates"
    );
    let known: BTreeSet<String> = seed.union(&cloud).cloned().collect();
    let unknown: Vec<&String> = created.difference(&known).collect();
    assert!(
        unknown.is_empty(),
        "scripts/init-databases.sh creates {unknown:?}, used by neither the seed nor the cloud"
    );
}

#[test]
fn kafka_init_creates_exactly_the_seed_topics_with_their_partitions_and_retention() {
    let compose = compose();
    let (creator, script) = topic_creator(&compose);
    let created = created_topics(&script);
    let expected: BTreeMap<String, (i32, u128)> =
        TOPICS.iter().map(|s| (s.topic.name().to_owned(), (s.partitions, s.retention.as_millis()))).collect();
    for (name, (partitions, retention)) in &expected {
        match created.get(name) {
            None => panic!("{creator} does not create {name} ({partitions} partitions, retention.ms {retention})"),
            Some(got) => assert_eq!(
                got,
                &(*partitions, *retention),
                "{creator} creates {name} with (partitions, retention.ms) {got:?}; nimbus_core::topics::TOPICS says \
                 {:?}",
                (partitions, retention)
            ),
        }
    }
    let extra: Vec<&String> = created.keys().filter(|k| !expected.contains_key(*k)).collect();
    assert!(extra.is_empty(), "{creator} creates {extra:?}, which are not topics of nimbus_core::topics::TOPICS");
    let bootstrap = literals_or_words_after(&script, "--bootstrap-server");
    let advertised = environment(service(&compose, "kafka")).get("KAFKA_ADVERTISED_LISTENERS").cloned();
    for b in bootstrap {
        assert!(
            advertised.as_deref().is_some_and(|a| a.contains(&format!("://{b}"))),
            "{creator} bootstraps from {b}, which the kafka service does not advertise ({advertised:?})"
        );
    }
}

#[test]
fn topic_replication_matches_the_roles_environment_and_the_number_of_brokers() {
    let compose = compose();
    let (creator, script) = topic_creator(&compose);
    let brokers = services(&compose)
        .iter()
        .filter(|(_, svc)| {
            environment(svc).get("KAFKA_PROCESS_ROLES").is_some_and(|r| r.split(',').any(|r| r.trim() == "broker"))
        })
        .count();
    let mut environments = BTreeMap::new();
    for role in roles(&compose) {
        let config = role.config().unwrap_or_else(|e| panic!("service {}: {e}", role.service));
        environments.insert(role.service.clone(), config.environment);
    }
    let distinct: BTreeSet<String> = environments.values().map(|e| format!("{e:?}")).collect();
    assert_eq!(distinct.len(), 1, "the cloud roles run in different NIMBUS_ENV environments: {environments:?}");
    let env: Environment = *environments.values().next().expect("at least one role");
    assert!(
        usize::try_from(env.replication_factor()).unwrap_or(usize::MAX) <= brokers,
        "the roles run with NIMBUS_ENV={env:?} (replication {}), but {COMPOSE} runs {brokers} Kafka broker(s)",
        env.replication_factor()
    );
    let replication = number_after(&script, "--replication-factor");
    assert_eq!(
        replication,
        Some(env.replication_factor()),
        "{creator} creates topics with replication {replication:?}; the roles' NIMBUS_ENV={env:?} means {}",
        env.replication_factor()
    );
    let min_isr = number_after(&script, "min.insync.replicas=");
    assert_eq!(
        min_isr,
        Some(env.min_insync_replicas()),
        "{creator} sets min.insync.replicas {min_isr:?}; the roles' NIMBUS_ENV={env:?} means {}",
        env.min_insync_replicas()
    );
}

// ---------------------------------------------------------------------------------------------
// The MQTT broker
// ---------------------------------------------------------------------------------------------

#[test]
fn the_campus_acl_grants_exactly_what_the_tested_acl_grants() {
    let campus = acl_grants(&read("scripts/compose/acl"));
    let tested = acl_grants(nimbus_sync::testing::ACL);
    let missing: Vec<&String> = tested.difference(&campus).collect();
    let extra: Vec<&String> = campus.difference(&tested).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "scripts/compose/acl differs from nimbus_sync::testing::ACL: it lacks {missing:?} and adds {extra:?}"
    );
}

#[test]
fn mosquitto_requires_authentication_and_lets_a_full_frame_reach_the_ingest() {
    let compose = compose();
    let conf = mosquitto_conf();
    assert_eq!(one(&conf, "allow_anonymous"), "false", "mosquitto.conf must refuse anonymous clients");
    let mosquitto = service(&compose, "mosquitto");
    let mounts = volumes(mosquitto);
    assert!(
        mounts.iter().any(|(s, t)| s == "./scripts/compose/mosquitto.conf" && t == "/mosquitto/config/mosquitto.conf"),
        "the mosquitto service does not mount ./scripts/compose/mosquitto.conf at /mosquitto/config/mosquitto.conf"
    );
    let acl_file = one(&conf, "acl_file");
    assert!(
        mounts.iter().any(|(s, t)| s == "./scripts/compose/acl" && *t == acl_file),
        "mosquitto.conf's acl_file is {acl_file}, but the mosquitto service mounts ./scripts/compose/acl elsewhere \
         ({mounts:?})"
    );
    let password_file = one(&conf, "password_file");
    assert!(
        mount_of(&mounts, &password_file).is_some(),
        "mosquitto.conf's password_file {password_file} is on no volume of the mosquitto service ({mounts:?})"
    );
    assert_eq!(one(&conf, "persistence"), "true", "the ingest's persistent sessions need `persistence true`");
    let location = one(&conf, "persistence_location");
    assert!(
        mount_of(&mounts, location.trim_end_matches('/')).is_some(),
        "persistence_location {location} is on no volume of the mosquitto service, so sessions die with the container"
    );

    let max_packet: usize = one(&conf, "max_packet_size")
        .parse()
        .unwrap_or_else(|e| panic!("mosquitto.conf: max_packet_size is not a number: {e}"));
    let frame = FrameLimits::default().max_frame_bytes;
    assert!(
        max_packet >= frame + MQTT_PACKET_OVERHEAD,
        "mosquitto.conf's max_packet_size {max_packet} is below a full frame ({frame} bytes, \
         FrameLimits::max_frame_bytes) plus {MQTT_PACKET_OVERHEAD} bytes of MQTT header and topic"
    );
    let ingest = role(&roles(&compose), "ingest").config().expect("checked by every_role_environment_is_…");
    assert!(
        max_packet <= ingest.mqtt.max_incoming_bytes,
        "mosquitto.conf's max_packet_size {max_packet} exceeds what the ingest reads (mqtt.max_incoming_bytes {}): \
         a packet between the two would break the ingest's connection again and again",
        ingest.mqtt.max_incoming_bytes
    );
}

/// `NAME=${OVERRIDE:-default}` lines of the broker's entrypoint: its files, as it runs in compose.
pub(crate) fn entrypoint_defaults() -> BTreeMap<String, String> {
    read(BROKER_ENTRYPOINT)
        .lines()
        .filter_map(|l| {
            let (name, value) = l.trim().split_once('=')?;
            let default = value.strip_prefix("${")?.split_once(":-")?.1.strip_suffix('}')?;
            Some((name.to_owned(), default.to_owned()))
        })
        .collect()
}

pub(crate) const BROKER_ENTRYPOINT: &str = "scripts/compose/mosquitto-run.sh";

/// The file `path` of service `from` as service `to` sees it, through a volume both mount.
fn same_file_in(compose: &Value, from: &str, path: &str, to: &str) -> Option<String> {
    let from_mounts = volumes(service(compose, from));
    let (volume, dir) = mount_of(&from_mounts, path)?;
    let rest = &path[dir.trim_end_matches('/').len()..];
    volumes(service(compose, to))
        .into_iter()
        .find(|(v, _)| v == volume)
        .map(|(_, d)| format!("{}{rest}", d.trim_end_matches('/')))
}

#[test]
fn the_broker_joins_the_provisioned_cloud_account_with_the_registry_s_node_accounts() {
    let compose = compose();
    let roles = roles(&compose);
    let conf = mosquitto_conf();
    let password_file = one(&conf, "password_file");
    let mosquitto = service(&compose, "mosquitto");
    let mounts = volumes(mosquitto);

    // The entrypoint is the script, mounted, and its files are the configuration's.
    let entry = args(mosquitto.get("entrypoint"));
    let script = entry.last().cloned().unwrap_or_default();
    assert!(
        mounts.iter().any(|(s, t)| s == &format!("./{BROKER_ENTRYPOINT}") && *t == script),
        "the mosquitto service's entrypoint {entry:?} is not ./{BROKER_ENTRYPOINT} mounted into it: nothing would \
         join the nodes' accounts into the password file or reload it"
    );
    let files = entrypoint_defaults();
    let file = |name: &str| files.get(name).cloned().unwrap_or_else(|| panic!("{BROKER_ENTRYPOINT} has no {name}"));
    assert_eq!(
        file("PASSWORD_FILE"),
        password_file,
        "{BROKER_ENTRYPOINT} writes another file than mosquitto.conf's password_file"
    );
    assert!(
        mounts.iter().any(|(s, t)| s == "./scripts/compose/mosquitto.conf" && *t == file("CONFIG")),
        "{BROKER_ENTRYPOINT} starts mosquitto with {}, where compose does not mount mosquitto.conf",
        file("CONFIG")
    );
    for name in ["CLOUD_FILE", "NODES_FILE", "PASSWORD_FILE"] {
        assert!(
            mount_of(&mounts, &file(name)).is_some_and(|(v, _)| !v.starts_with('.')),
            "{BROKER_ENTRYPOINT}'s {name} {} is on no named volume of the mosquitto service",
            file(name)
        );
    }

    // The cloud's account: written by a one-shot the broker waits for, from the roles' password.
    let cloud_file = file("CLOUD_FILE");
    let (prov_name, prov) = services(&compose)
        .into_iter()
        .find(|(name, svc)| {
            name != "mosquitto"
                && command_text(svc).contains("mosquitto_passwd")
                && same_file_in(&compose, "mosquitto", &cloud_file, name)
                    .is_some_and(|f| command_text(svc).contains(&f))
        })
        .unwrap_or_else(|| {
            panic!("no service writes the cloud's account to {cloud_file} (mosquitto_passwd on its volume)")
        });
    assert_eq!(
        depends_on(mosquitto).get(&prov_name).map(String::as_str),
        Some("service_completed_successfully"),
        "mosquitto must start after {prov_name} wrote the cloud's account"
    );
    let prov_env = environment(prov);
    let acl_users: Vec<String> = read("scripts/compose/acl")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("user ").map(|u| u.trim().to_owned()))
        .collect();
    assert_eq!(
        acl_users,
        [nimbus_sync::testing::CLOUD_USER.0],
        "scripts/compose/acl should grant exactly one account, the cloud's"
    );
    for role in roles.iter().filter(|r| r.env.contains_key("MQTT_URL")) {
        let username = role.env.get("MQTT_USERNAME").expect("checked by check_role_credentials");
        assert!(
            acl_users.contains(username),
            "service {}: MQTT_USERNAME {username} is not the ACL's account",
            role.service
        );
        assert!(
            prov_env.values().any(|v| v == username),
            "service {}: {prov_name} does not provision {username}",
            role.service
        );
        let password = role.env.get("MQTT_PASSWORD").expect("checked by check_role_credentials");
        let vars = references(password);
        assert!(
            !vars.is_empty() && prov_env.values().any(|v| references(v) == vars),
            "service {}: MQTT_PASSWORD ({password}) does not come from the variable {prov_name} provisions the \
             account from ({prov_env:?})",
            role.service
        );
    }

    // The nodes' accounts: written by broker-accounts from the registry onto a volume the broker
    // reads, leaving out the cloud's own name.
    let accounts = role(&roles, "broker-accounts");
    let nodes_file = accounts.option("--nodes-file").expect("broker-accounts --nodes-file").to_owned();
    assert_eq!(
        same_file_in(&compose, &accounts.service, &nodes_file, "mosquitto"),
        Some(file("NODES_FILE")),
        "broker-accounts writes {nodes_file}, which the mosquitto service does not see as {BROKER_ENTRYPOINT}'s NODES_FILE"
    );
    assert_eq!(
        accounts.env.get("MQTT_USERNAME"),
        Some(&nimbus_sync::testing::CLOUD_USER.0.to_owned()),
        "broker-accounts must know the cloud's user name, which it never writes for a node"
    );
}

// ---------------------------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------------------------

#[test]
fn only_the_api_role_takes_the_seed_gateway_port_and_no_service_another_seed_service_port() {
    let compose = compose();
    let (seed, gateway) = seed_ports();
    assert_eq!(gateway, 8080, "the seed's API gateway port");
    let api_service = roles(&compose).into_iter().find(|r| r.subcommand() == "api").map(|r| r.service);
    let mut taken: BTreeMap<u16, String> = BTreeMap::new();
    let mut gateway_published = false;
    for (name, svc) in services(&compose) {
        for port in ports(svc) {
            let Some(published) = port.published else { continue };
            if published == gateway {
                assert_eq!(
                    Some(&name),
                    api_service.as_ref(),
                    "service {name} publishes port {gateway}, the seed's API gateway port, which is the api role's"
                );
                assert_eq!(port.target, 8080, "the api role listens on 8080 (NIMBUS_API_BIND)");
                gateway_published = true;
                taken.insert(published, name.clone());
                continue;
            }
            assert!(
                !seed.contains(&published),
                "service {name} publishes port {published}, a port of the seed's services {seed:?}"
            );
            if let Some(other) = taken.insert(published, name.clone()) {
                panic!("services {other} and {name} both publish host port {published}");
            }
        }
    }
    assert!(gateway_published, "the api role publishes the seed's gateway port {gateway}");
}

#[test]
fn infrastructure_ports_are_the_ones_the_code_defaults_to() {
    let compose = compose();
    let defaults = CloudConfig::default();
    let kafka_default = host_port_of(defaults.kafka.brokers.split(',').next().expect("a default broker"));
    let kafka_listeners = environment(service(&compose, "kafka")).get("KAFKA_LISTENERS").cloned().unwrap_or_default();
    let kafka_advertised =
        environment(service(&compose, "kafka")).get("KAFKA_ADVERTISED_LISTENERS").cloned().unwrap_or_default();
    let mqtt_listeners = mosquitto_conf().get("listener").cloned().unwrap_or_default();
    let expected: [(&str, u16, &str); 5] = [
        ("postgres", url_host_port(&defaults.database.url).1, "CloudConfig's default database.url"),
        ("kafka", kafka_default.1, "CloudConfig's default kafka.brokers"),
        ("mosquitto", url_host_port(&defaults.mqtt.url).1, "CloudConfig's default mqtt.url"),
        ("redis", services_sh_port("REDIS_PORT"), "REDIS_PORT of scripts/services.sh"),
        ("mongodb", services_sh_port("MONGO_PORT"), "MONGO_PORT of scripts/services.sh"),
    ];
    for (name, port, source) in expected {
        let published = ports(service(&compose, name));
        let Some(p) = published.iter().find(|p| p.published == Some(port)) else {
            panic!("service {name} does not publish port {port} ({source}); it publishes {published:?}")
        };
        match name {
            "kafka" => {
                assert!(
                    kafka_listeners.split(',').any(|l| l.ends_with(&format!(":{}", p.target))),
                    "kafka publishes {port} to container port {}, on which it has no listener ({kafka_listeners})",
                    p.target
                );
                assert!(
                    kafka_advertised.contains(&format!("{}:{port}", kafka_default.0)),
                    "kafka does not advertise {}:{port} ({source}) to clients on the host: {kafka_advertised}",
                    kafka_default.0
                );
            }
            "mosquitto" => assert!(
                mqtt_listeners.contains(&p.target.to_string()),
                "mosquitto publishes {port} to container port {}, on which mosquitto.conf has no listener \
                 ({mqtt_listeners:?})",
                p.target
            ),
            _ => assert_eq!(p.target, port, "service {name} publishes {port} to another container port"),
        }
        if name != "mosquitto" {
            assert_eq!(
                p.host_ip.as_deref(),
                Some("127.0.0.1"),
                "service {name} publishes {port} beyond loopback; only the MQTT broker faces the campus network"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Health, restarts, start order
// ---------------------------------------------------------------------------------------------

#[test]
fn every_long_running_service_has_a_health_check_and_a_restart_policy() {
    let compose = compose();
    let one_shot = one_shot_services(&compose);
    for (name, svc) in services(&compose) {
        let restart = svc.get("restart").and_then(scalar).unwrap_or_else(|| "no".to_owned());
        if one_shot.contains(&name) {
            assert!(
                restart == "no" || restart.starts_with("on-failure"),
                "one-shot service {name} has restart: {restart}, so it would run again and again"
            );
            continue;
        }
        assert!(healthcheck(svc).is_some(), "long-running service {name} has no health check");
        assert!(
            ["always", "unless-stopped"].contains(&restart.as_str()) || restart.starts_with("on-failure"),
            "long-running service {name} has restart: {restart}; it would stay down after a crash or reboot"
        );
    }
}

/// The port a role serves its probes on: the api's bind, otherwise `--probe-bind`,
/// NIMBUS_PROBE_BIND or the default.
pub(crate) fn probe_port(role: &Role) -> u16 {
    if role.subcommand() == "api" {
        let config = role.config().unwrap_or_else(|e| panic!("service {}: {e}", role.service));
        return host_port_of(&config.api.bind).1;
    }
    role.option("--probe-bind")
        .or(role.env.get("NIMBUS_PROBE_BIND").map(String::as_str))
        .map_or(DEFAULT_PROBE_PORT, |b| host_port_of(b).1)
}

/// Each long-running role is health-checked by its own readiness probe, run by the binary
/// itself (`nimbus-cloud probe`): a process that runs (`pidof`) may still reach nothing it needs.
fn check_role_health(compose: &Value) {
    assert!(
        binary_subcommands().contains("probe"),
        "the health checks run `nimbus-cloud probe`, which the binary lacks"
    );
    let one_shot = one_shot_services(compose);
    for role in roles(compose).iter().filter(|r| !one_shot.contains(&r.service)) {
        let svc = service(compose, &role.service);
        let check = healthcheck(svc).unwrap_or_else(|| panic!("service {} has no health check", role.service));
        let url = format!("http://127.0.0.1:{}/health/ready", probe_port(role));
        let expected = ["CMD", "nimbus-cloud", "probe", url.as_str()];
        assert_eq!(
            check, expected,
            "service {}: its health check {check:?} is not its own readiness probe {expected:?}",
            role.service
        );
        let timeout = svc.get("healthcheck").and_then(|h| h.get("timeout")).and_then(scalar).unwrap_or_default();
        let secs: u64 = timeout.trim_end_matches('s').parse().unwrap_or(0);
        assert!(
            secs > 5,
            "service {}: health check timeout {timeout:?} is not above the probe's own 5 s, so a slow answer is \
             reported as Docker's timeout instead of the probe's message",
            role.service
        );
    }
}

#[test]
fn every_long_running_role_is_health_checked_by_its_own_readiness_probe() {
    check_role_health(&compose());
}

/// `nimbus-cloud probe <url>` as the health check runs it, against a one-shot server answering
/// `answer`.
fn run_probe(answer: Option<&'static str>) -> std::process::Output {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/health/ready", listener.local_addr().expect("addr"));
    match answer {
        Some(answer) => {
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let (mut s, _) = listener.accept().expect("accept");
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(answer.as_bytes());
            });
        }
        None => drop(listener),
    }
    std::process::Command::new(env!("CARGO_BIN_EXE_nimbus-cloud"))
        .args(["probe", &url, "--timeout-secs", "5"])
        .env_remove("NIMBUS_CLOUD_CONFIG")
        .output()
        .expect("run nimbus-cloud probe")
}

#[test]
fn the_health_check_command_passes_only_when_the_probe_answers_2xx() {
    let ready = run_probe(Some("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"));
    assert!(ready.status.success(), "probe of a ready role failed: {}", String::from_utf8_lossy(&ready.stdout));
    let not_ready = run_probe(Some("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"));
    assert_eq!(not_ready.status.code(), Some(1), "a 503 must fail the health check");
    assert!(String::from_utf8_lossy(&not_ready.stdout).contains("503"), "the probe should say what it got");
    let down = run_probe(None);
    assert_eq!(down.status.code(), Some(1), "a role that does not listen must fail the health check");
}

/// Stateful infrastructure by image, and where each keeps its data.
const STATEFUL: &[(&str, &str)] = &[
    ("postgres:", "/var/lib/postgresql/data"),
    ("apache/kafka:", "/var/lib/kafka/data"),
    ("eclipse-mosquitto:", "/mosquitto/data"),
    ("redis:", "/data"),
    ("mongo:", "/data/db"),
];

#[test]
fn every_stateful_service_keeps_its_data_on_a_named_volume() {
    let compose = compose();
    let one_shot = one_shot_services(&compose);
    let declared: BTreeSet<String> = compose
        .get("volumes")
        .and_then(Value::as_mapping)
        .map(|m| m.keys().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    for (name, svc) in services(&compose) {
        let image = svc.get("image").and_then(Value::as_str).unwrap_or_default();
        let Some((_, dir)) = STATEFUL.iter().find(|(prefix, _)| image.starts_with(prefix)) else { continue };
        if one_shot.contains(&name) {
            continue;
        }
        let mounts = volumes(svc);
        let on_volume = mounts.iter().any(|(src, target)| target == dir && declared.contains(src));
        assert!(
            on_volume,
            "service {name} ({image}) keeps its data in {dir}, which is on no named volume: lost with the container"
        );
    }
    let redis = command_text(service(&compose, "redis"));
    assert!(
        redis.contains("--appendonly\nyes"),
        "redis holds the token revocation list; without --appendonly yes a restart brings revoked tokens back"
    );
}

// ---------------------------------------------------------------------------------------------
// The checks above fail on each defect compose once had
// ---------------------------------------------------------------------------------------------

/// The file with `change` applied.
fn mutated(change: impl FnOnce(&mut Value)) -> Value {
    let mut compose = compose();
    change(&mut compose);
    compose
}

/// The service `name` of a copy, to change.
fn service_mut<'a>(compose: &'a mut Value, name: &str) -> &'a mut Value {
    compose.get_mut("services").and_then(|s| s.get_mut(name)).unwrap_or_else(|| panic!("no service {name}"))
}

/// Runs `check` on `compose`, which must fail it with a message containing `expected`.
fn fails_with(check: fn(&Value), compose: &Value, expected: &str) {
    crate::common::assert_fails_with(|| check(compose), expected);
}

#[test]
fn a_mutated_compose_without_the_downlink_role_or_a_service_worker_fails() {
    let no_downlink = mutated(|c| {
        c.get_mut("services").and_then(Value::as_mapping_mut).expect("services").remove("downlink");
    });
    fails_with(check_every_role_is_deployed, &no_downlink, "`nimbus-cloud downlink` is a role of the binary");
    let no_notification = mutated(|c| {
        c.get_mut("services").and_then(Value::as_mapping_mut).expect("services").remove("worker-notification");
    });
    fails_with(check_every_role_is_deployed, &no_notification, "notification-service has a worker in the code");
}

#[test]
fn a_mutated_compose_whose_roles_lack_credentials_fails() {
    let mongo_anonymous = mutated(|c| {
        service_mut(c, "api")["environment"]["MONGODB_URI"] = "mongodb://mongodb:27017/?directConnection=true".into();
    });
    fails_with(check_role_credentials, &mongo_anonymous, "MONGODB_URI");
    let no_mqtt_password = mutated(|c| {
        service_mut(c, "ingest")["environment"].as_mapping_mut().expect("environment").remove("MQTT_PASSWORD");
    });
    fails_with(check_role_credentials, &no_mqtt_password, "does not set MQTT_PASSWORD");
    let other_pg_password = mutated(|c| {
        service_mut(c, "downlink")["environment"]["DATABASE_URL"] =
            "postgres://nimbusu:${PG_PASS:?set PG_PASS}@postgres:5432".into();
    });
    fails_with(check_role_credentials, &other_pg_password, "DATABASE_URL");
}

#[test]
fn a_mutated_compose_whose_health_check_is_not_the_role_s_probe_fails() {
    let pidof = mutated(|c| {
        service_mut(c, "worker-attendance")["healthcheck"]["test"] =
            serde_yaml::from_str("[CMD, pidof, nimbus-cloud]").expect("yaml");
    });
    fails_with(check_role_health, &pidof, "is not its own readiness probe");
    let wrong_port = mutated(|c| {
        service_mut(c, "api")["healthcheck"]["test"] =
            serde_yaml::from_str("[CMD, nimbus-cloud, probe, 'http://127.0.0.1:9464/health/ready']").expect("yaml");
    });
    fails_with(check_role_health, &wrong_port, "is not its own readiness probe");
    let none = mutated(|c| {
        service_mut(c, "downlink").as_mapping_mut().expect("service").remove("healthcheck");
    });
    fails_with(check_role_health, &none, "has no health check");
}

#[test]
fn dependencies_wait_for_health_or_successful_completion() {
    let compose = compose();
    let one_shot = one_shot_services(&compose);
    let names: BTreeSet<String> = services(&compose).into_iter().map(|(n, _)| n).collect();
    for (name, svc) in services(&compose) {
        for (dep, condition) in depends_on(svc) {
            assert!(names.contains(&dep), "service {name} depends on {dep}, which {COMPOSE} does not define");
            let wanted = if one_shot.contains(&dep) { "service_completed_successfully" } else { "service_healthy" };
            assert_eq!(condition, wanted, "service {name} waits for {dep} with {condition}, not {wanted}");
        }
    }
}

#[test]
fn roles_start_after_migrations_topics_and_the_broker_they_use() {
    let compose = compose();
    let roles = roles(&compose);
    let migrate = role(&roles, "migrate").service.clone();
    let (topic_creator, _) = topic_creator(&compose);
    for role in &roles {
        let deps = waits_for(&compose, &role.service);
        let mut need = vec![("postgres", "DATABASE_URL")];
        if role.service != migrate {
            need.push((migrate.as_str(), "its database's migrations"));
        }
        if role.env.contains_key("KAFKA_BROKERS") {
            need.push(("kafka", "KAFKA_BROKERS"));
            need.push((topic_creator.as_str(), "the topics"));
        }
        if role.env.contains_key("MQTT_URL") {
            need.push(("mosquitto", "MQTT_URL"));
        }
        for (dep, why) in need {
            assert!(deps.contains(dep), "service {} does not wait for {dep} ({why})", role.service);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

#[test]
fn secrets_come_only_from_required_environment_variables() {
    let compose = compose();
    for (name, svc) in services(&compose) {
        for (key, value) in environment(svc) {
            if is_secret_name(&key) {
                let required = matches!(pieces(&value).as_slice(), [Piece::Ref { op, .. }] if op == ":?");
                assert!(
                    required,
                    "service {name}: {key} is {value:?}; a secret must be exactly one ${{VAR:?message}} reference"
                );
            }
            // A password inside a URL (`scheme://user:password@host`) must be a reference too. The
            // URL is read with every reference masked, since `${VAR:?message}` contains `?` and `/`.
            let masked: String = pieces(&value)
                .iter()
                .map(|p| match p {
                    Piece::Text(t) => t.clone(),
                    Piece::Ref { op, .. } if op == ":?" => "\u{1}".to_owned(),
                    Piece::Ref { .. } => "\u{2}".to_owned(),
                })
                .collect();
            let Some((_, rest)) = masked.split_once("://") else { continue };
            let authority = rest.split(['/', '?']).next().unwrap_or_default();
            let password =
                authority.rsplit_once('@').and_then(|(userinfo, _)| userinfo.split_once(':')).map(|(_, p)| p);
            if let Some(password) = password {
                assert_eq!(
                    password, "\u{1}",
                    "service {name}: the password in {key} ({value:?}) is not exactly one ${{VAR:?message}} reference"
                );
            }
        }
    }
    // Every secret the file refers to is required: a missing one stops `docker compose` with its
    // message instead of starting a service with an empty password.
    for (var, op) in references(&read(COMPOSE)) {
        if is_secret_name(&var) {
            assert_eq!(op, ":?", "{COMPOSE} refers to the secret {var} without :? (required, with a message)");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The image
// ---------------------------------------------------------------------------------------------

#[test]
fn the_cloud_image_builds_the_binary_and_runs_it_as_a_non_root_entrypoint() {
    let compose = compose();
    for role in roles(&compose) {
        let build = service(&compose, &role.service).get("build").expect("roles are built");
        assert_eq!(
            build.get("context").and_then(Value::as_str),
            Some("."),
            "service {}: the build context must be the workspace root (the build needs every crate and \
             migrations/)",
            role.service
        );
    }
    let dockerfile = read(CLOUD_DOCKERFILE);
    let instructions: Vec<&str> =
        dockerfile.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    assert!(
        dockerfile.contains("cargo build --release --locked -p nimbus-cloud"),
        "{CLOUD_DOCKERFILE} does not run `cargo build --release --locked -p nimbus-cloud`"
    );
    let last_from = instructions.iter().rposition(|l| l.starts_with("FROM ")).expect("a FROM");
    let runtime = &instructions[last_from..];
    assert!(
        instructions.iter().filter(|l| l.starts_with("FROM ")).count() >= 2,
        "{CLOUD_DOCKERFILE} is not multi-stage: the runtime image would carry the toolchain"
    );
    assert!(
        runtime.iter().any(|l| l.starts_with("COPY --from=") && l.ends_with(" /usr/local/bin/nimbus-cloud")),
        "the runtime stage of {CLOUD_DOCKERFILE} does not copy the binary to /usr/local/bin/nimbus-cloud"
    );
    assert_eq!(
        runtime.iter().rev().find(|l| l.starts_with("ENTRYPOINT")).copied(),
        Some(r#"ENTRYPOINT ["nimbus-cloud"]"#),
        "the compose roles' commands are subcommands, so the image's ENTRYPOINT must be [\"nimbus-cloud\"]"
    );
    let user = runtime.iter().rev().find_map(|l| l.strip_prefix("USER ")).map(str::trim);
    assert!(
        user.is_some_and(|u| !["root", "0", "0:0", "root:root"].contains(&u)),
        "the runtime stage of {CLOUD_DOCKERFILE} runs as {user:?}; it must switch to a non-root USER"
    );
    let runtime_text = runtime.join("\n");
    for role in roles(&compose) {
        let check = healthcheck(service(&compose, &role.service)).unwrap_or_default();
        let tool = match check.first().map(String::as_str) {
            Some("CMD") => check.get(1),
            Some("CMD-SHELL") => None,
            _ => check.first(),
        };
        if let Some(tool) = tool.filter(|t| *t != "nimbus-cloud") {
            assert!(
                runtime_text.contains(tool.as_str()),
                "service {}'s health check runs {tool}, which the runtime stage of {CLOUD_DOCKERFILE} neither \
                 installs nor checks for",
                role.service
            );
        }
    }
}

#[test]
fn the_docker_build_context_contains_every_file_the_build_needs() {
    let patterns: Vec<String> = directives(&read(".dockerignore")).map(str::to_owned).collect();
    assert!(docker_ignores(&patterns, "target/release/nimbus-cloud"), ".dockerignore does not exclude target/");
    assert!(docker_ignores(&patterns, ".git/HEAD"), ".dockerignore does not exclude .git");
    let mut needed = vec!["Cargo.toml".to_owned(), "Cargo.lock".to_owned()];
    let manifest = read("Cargo.toml");
    let members = manifest.split("members").nth(1).and_then(|m| m.split(']').next()).unwrap_or_default();
    for member in members.split('"').skip(1).step_by(2) {
        needed.push(format!("{member}/Cargo.toml"));
        needed.push(format!("{member}/src"));
    }
    for dir in ["cloud/src", "core/src", "sync/src"] {
        let mut files = Vec::new();
        rust_sources(&path(dir), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).expect("source file");
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for embedded in
                literals_after(code, "include_str!(").into_iter().chain(literals_after(code, "include_bytes!("))
            {
                let abs = file.parent().expect("a directory").join(&embedded);
                let abs = abs.canonicalize().unwrap_or_else(|e| panic!("{}: {embedded}: {e}", file.display()));
                let root = Path::new(ROOT).canonicalize().expect("workspace root");
                let rel = abs.strip_prefix(&root).expect("inside the workspace").to_string_lossy().into_owned();
                needed.push(rel);
            }
        }
    }
    for rel in needed {
        assert!(!docker_ignores(&patterns, &rel), ".dockerignore excludes {rel}, which the nimbus-cloud build needs");
    }
}
