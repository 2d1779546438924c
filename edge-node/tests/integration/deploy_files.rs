//! The files operators install from `edge-node/deploy/` agree with the daemon: the default config
//! parses and validates (commented-out examples included), its stated defaults are the real ones,
//! the env example only sets variables the daemon reads, and the systemd units point at the paths
//! and port the config uses.

use std::path::PathBuf;

use nimbus_edge::config::{Config, ENV_OVERRIDES, ReaderKind};

fn deploy_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn default_config() -> Config {
    Config::from_toml(&deploy_file("nimbus-edge.toml")).expect("deploy/nimbus-edge.toml parses")
}

/// `key = value` settings of a unit file (comments and section headers dropped), in order.
fn unit_settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn unit_value<'a>(settings: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    settings.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
}

#[test]
fn the_default_config_is_for_real_hardware_and_validates() {
    let config = default_config();
    assert_eq!(config.reader.kind, ReaderKind::Mfrc522);
    assert_eq!(config.http.bind.to_string(), "0.0.0.0:8480");
    assert_eq!(config.data_dir, PathBuf::from("/var/lib/nimbus-edge"));
    assert!(config.cloud.enabled);
    assert!(config.cloud.mqtt_password.is_none(), "the password belongs in /etc/nimbus-edge/env");
    if cfg!(feature = "rpi") {
        config.validate().expect("the default config validates");
    } else {
        // Hardware readers need feature `rpi`; everything else must validate in any build.
        let mut simulated = config.clone();
        simulated.reader.kind = ReaderKind::Simulated;
        simulated.validate().expect("the default config validates");
    }
}

#[test]
fn the_default_config_states_the_built_in_defaults() {
    let file = default_config();
    let builtin = Config::default();
    assert_eq!(file.data_dir, builtin.data_dir);
    assert_eq!(file.log, builtin.log);
    assert_eq!(file.reader.simulated_bind, builtin.reader.simulated_bind);
    let (a, b) = (&file.attendance, &builtin.attendance);
    assert_eq!(
        (a.late_after_minutes, a.early_open_minutes, a.grace_minutes, a.correction_window_hours),
        (b.late_after_minutes, b.early_open_minutes, b.grace_minutes, b.correction_window_hours)
    );
    let (a, b) = (&file.cloud, &builtin.cloud);
    assert_eq!(
        (a.ack_timeout_ms, a.max_batch_events, a.outbox_budget_mb, a.disk_warn_free_mb),
        (b.ack_timeout_ms, b.max_batch_events, b.outbox_budget_mb, b.disk_warn_free_mb)
    );
}

#[cfg(feature = "rpi")]
#[test]
fn the_default_reader_wiring_is_the_drivers_default() {
    use nimbus_edge::reader::rpi::RpiReaderConfig;
    let wiring = default_config().rpi_reader().expect("[reader.rpi] is valid");
    assert_eq!(wiring, RpiReaderConfig::default());
}

#[test]
fn the_commented_out_examples_are_valid_keys() {
    // Uncomment every `# key = value` line: with unknown keys being errors, a misspelt example
    // (which an operator would uncomment as is) fails here.
    let uncommented: String = deploy_file("nimbus-edge.toml")
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest) if rest.split_once(" = ").is_some_and(|(k, _)| !k.is_empty() && !k.contains(' ')) => rest,
            _ => line,
        })
        .map(|line| format!("{line}\n"))
        .collect();
    let config = Config::from_toml(&uncommented).expect("the file with its examples uncommented parses");
    assert!(config.cloud.mqtt_password.is_some(), "mqtt_password example was uncommented");
    assert!(config.reader.script.is_some(), "script example was uncommented");
}

#[test]
fn the_env_example_sets_only_variables_the_daemon_reads() {
    let known: Vec<&str> = ENV_OVERRIDES.iter().map(|(name, _)| *name).chain(["RUST_LOG"]).collect();
    let mut seen = 0;
    for line in deploy_file("env.example").lines() {
        let line = line.trim().trim_start_matches('#');
        let Some((key, _)) = line.split_once('=') else { continue };
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
            continue; // prose, not a setting
        }
        assert!(known.contains(&key), "env.example sets {key}, which nimbus-edge does not read");
        seen += 1;
    }
    assert!(seen > 0, "env.example sets nothing");
    assert!(deploy_file("env.example").contains("\nNIMBUS_MQTT_PASSWORD="), "the password line is active");
}

#[test]
fn the_service_runs_the_installed_config_and_keeps_data_where_the_config_says() {
    let unit = unit_settings(&deploy_file("nimbus-edge.service"));
    let exec = unit_value(&unit, "ExecStart");
    assert_eq!(exec, ["/usr/local/bin/nimbus-edge --config /etc/nimbus-edge/nimbus-edge.toml"]);
    assert_eq!(unit_value(&unit, "EnvironmentFile"), ["-/etc/nimbus-edge/env"]);
    let state = unit_value(&unit, "StateDirectory");
    assert_eq!(state, ["nimbus-edge"]);
    assert_eq!(default_config().data_dir, PathBuf::from("/var/lib").join(state[0]));
    // The binary speaks sd_notify (READY, WATCHDOG while the store answers): see src/notify.rs.
    assert_eq!(unit_value(&unit, "Type"), ["notify"], "the daemon sends READY=1 (src/notify.rs)");
    assert_eq!(unit_value(&unit, "WatchdogSec"), ["30s"]);
}

#[test]
fn the_health_probe_asks_the_port_the_config_binds() {
    let unit = unit_settings(&deploy_file("nimbus-edge-health.service"));
    let port = default_config().http.bind.port();
    let env = unit_value(&unit, "Environment");
    assert_eq!(env, [format!("NIMBUS_HEALTH_URL=http://127.0.0.1:{port}/health").as_str()]);
}
