//! Readers of the campus deployment (`docker-compose.yml`, `cloud/Dockerfile`, `scripts/compose/*`,
//! `scripts/init-databases.sh`, `.dockerignore`), compose's variable substitution, the cloud roles
//! as compose runs them, and scanners of what the cloud code reads (environment variables, embedded
//! files, subcommands): what `compose_stack` checks the deployment against the code with.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use nimbus_cloud::config::{CloudConfig, ENV};
use serde_yaml::Value;

/// The variables the binary reads outside the configuration (`config::ENV` lists every other
/// one, with the roles that read it): clap's `--config` file and the log filter. Every role reads
/// them.
pub const OUTSIDE_CONFIG: &[&str] = &["NIMBUS_CLOUD_CONFIG", "RUST_LOG"];

/// The workspace root; the paths below are relative to it.
pub const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
/// The campus deployment.
pub const COMPOSE: &str = "docker-compose.yml";
/// The image every cloud role is built from.
pub const CLOUD_DOCKERFILE: &str = "cloud/Dockerfile";

// ---------------------------------------------------------------------------------------------
// Reading the files
// ---------------------------------------------------------------------------------------------

/// `rel` (relative to the workspace root) as a path.
pub fn path(rel: &str) -> PathBuf {
    Path::new(ROOT).join(rel)
}

/// The text of `rel`; panics naming it if it cannot be read.
pub fn read(rel: &str) -> String {
    std::fs::read_to_string(path(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

/// The lines of a configuration file that say something: trimmed, without blanks and `#` comments.
pub fn directives(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// `docker-compose.yml`, parsed.
pub fn compose() -> Value {
    serde_yaml::from_str(&read(COMPOSE)).unwrap_or_else(|e| panic!("{COMPOSE} is not valid YAML: {e}"))
}

/// Every service, by name.
pub fn services(compose: &Value) -> Vec<(String, &Value)> {
    let map = compose.get("services").and_then(Value::as_mapping).expect("docker-compose.yml has no services");
    map.iter().map(|(k, v)| (k.as_str().expect("service names are strings").to_owned(), v)).collect()
}

/// The service `name`; panics if compose has none.
pub fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose.get("services").and_then(|s| s.get(name)).unwrap_or_else(|| panic!("{COMPOSE} has no service {name}"))
}

/// A string, number or boolean as text.
pub fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A command or entrypoint as its arguments (a string is split on whitespace, as compose does
/// for simple commands).
pub fn args(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Sequence(items)) => items.iter().filter_map(scalar).collect(),
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// Every text of a service's command, for scripts passed to `sh -c`.
pub fn command_text(svc: &Value) -> String {
    args(svc.get("command")).join("\n")
}

/// A service's `environment`, in map or list form; a variable without value (passed through from
/// the host) is shown as a reference to itself.
pub fn environment(svc: &Value) -> BTreeMap<String, String> {
    match svc.get("environment") {
        Some(Value::Mapping(m)) => m
            .iter()
            .map(|(k, v)| {
                let key = k.as_str().expect("environment names are strings").to_owned();
                let value = scalar(v).unwrap_or_else(|| format!("${{{key}}}"));
                (key, value)
            })
            .collect(),
        Some(Value::Sequence(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|item| match item.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (item.to_owned(), format!("${{{item}}}")),
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// `depends_on` as service → condition (the list form means `service_started`).
pub fn depends_on(svc: &Value) -> BTreeMap<String, String> {
    match svc.get("depends_on") {
        Some(Value::Sequence(items)) => {
            items.iter().filter_map(Value::as_str).map(|s| (s.to_owned(), "service_started".to_owned())).collect()
        }
        Some(Value::Mapping(m)) => m
            .iter()
            .map(|(k, v)| {
                let condition = v.get("condition").and_then(Value::as_str).unwrap_or("service_started");
                (k.as_str().expect("service names are strings").to_owned(), condition.to_owned())
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// `volumes` as (source, target) pairs.
pub fn volumes(svc: &Value) -> Vec<(String, String)> {
    let Some(Value::Sequence(items)) = svc.get("volumes") else { return Vec::new() };
    items
        .iter()
        .filter_map(|item| match item {
            Value::String(s) => {
                let mut parts = s.split(':');
                Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
            }
            Value::Mapping(_) => Some((scalar(item.get("source")?)?, scalar(item.get("target")?)?)),
            _ => None,
        })
        .collect()
}

/// One entry of a service's `ports`.
#[derive(Debug)]
pub struct Port {
    pub host_ip: Option<String>,
    pub published: Option<u16>,
    pub target: u16,
}

/// A service's `ports`, in short or long form.
pub fn ports(svc: &Value) -> Vec<Port> {
    let Some(Value::Sequence(items)) = svc.get("ports") else { return Vec::new() };
    items
        .iter()
        .map(|item| match item {
            Value::Mapping(_) => Port {
                host_ip: item.get("host_ip").and_then(scalar),
                published: item.get("published").and_then(scalar).and_then(|p| p.parse().ok()),
                target: item.get("target").and_then(scalar).and_then(|p| p.parse().ok()).expect("port target"),
            },
            other => {
                let text = scalar(other).unwrap_or_else(|| panic!("unreadable port {other:?}"));
                let text = text.split('/').next().unwrap_or_default();
                let parts: Vec<&str> = text.split(':').collect();
                let num = |s: &str| s.parse::<u16>().unwrap_or_else(|_| panic!("port {text:?}: {s:?} is not a port"));
                match parts.as_slice() {
                    [c] => Port { host_ip: None, published: None, target: num(c) },
                    [h, c] => Port { host_ip: None, published: Some(num(h)), target: num(c) },
                    [ip, h, c] => Port { host_ip: Some((*ip).to_owned()), published: Some(num(h)), target: num(c) },
                    _ => panic!("unreadable port {text:?}"),
                }
            }
        })
        .collect()
}

/// The health check's command, or `None` when there is none (or it is disabled).
pub fn healthcheck(svc: &Value) -> Option<Vec<String>> {
    let hc = svc.get("healthcheck")?;
    if hc.get("disable").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    let test = args(hc.get("test"));
    if test.is_empty() || test[0] == "NONE" { None } else { Some(test) }
}

// ---------------------------------------------------------------------------------------------
// Compose variable substitution
// ---------------------------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
pub enum Piece {
    Text(String),
    /// `${name<op>arg}` or `$name`; `op` is "", ":-", "-", ":?" or "?".
    Ref {
        name: String,
        op: String,
        arg: String,
    },
}

/// Splits `text` the way compose interpolates it (`$$` is a literal `$`).
pub fn pieces(text: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        literal.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            literal.push('$');
            rest = r;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').unwrap_or_else(|| panic!("unclosed ${{ in {text:?}"));
            let inner = &body[..end];
            let name_len = inner.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(inner.len());
            let (name, tail) = inner.split_at(name_len);
            let op = [":-", ":?", "-", "?"].into_iter().find(|op| tail.starts_with(op)).unwrap_or("");
            assert!(op.len() == tail.len() || !op.is_empty(), "unreadable reference ${{{inner}}} in {text:?}");
            out.push(Piece::Text(std::mem::take(&mut literal)));
            out.push(Piece::Ref { name: name.to_owned(), op: op.to_owned(), arg: tail[op.len()..].to_owned() });
            rest = &body[end + 1..];
        } else {
            let name_len = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            if name_len == 0 {
                literal.push('$');
            } else {
                out.push(Piece::Text(std::mem::take(&mut literal)));
                out.push(Piece::Ref { name: after[..name_len].to_owned(), op: String::new(), arg: String::new() });
            }
            rest = &after[name_len..];
        }
    }
    literal.push_str(rest);
    out.push(Piece::Text(literal));
    out.retain(|p| *p != Piece::Text(String::new()));
    out
}

/// The variables `text` refers to, with their operators.
pub fn references(text: &str) -> Vec<(String, String)> {
    pieces(text)
        .into_iter()
        .filter_map(|p| match p {
            Piece::Ref { name, op, .. } => Some((name, op)),
            Piece::Text(_) => None,
        })
        .collect()
}

/// `text` with its references replaced as compose does; `Err` names a missing required variable.
pub fn interpolate(text: &str, vars: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    for piece in pieces(text) {
        match piece {
            Piece::Text(t) => out.push_str(&t),
            Piece::Ref { name, op, arg } => {
                let value = vars(&name);
                let set = value.as_deref().is_some_and(|v| !v.is_empty());
                match op.as_str() {
                    ":-" if !set => out.push_str(&arg),
                    "-" if value.is_none() => out.push_str(&arg),
                    ":?" if !set => return Err(format!("{name} is required: {arg}")),
                    "?" if value.is_none() => return Err(format!("{name} is required: {arg}")),
                    _ => out.push_str(value.as_deref().unwrap_or_default()),
                }
            }
        }
    }
    Ok(out)
}

/// Whether a variable name says it holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["PASSWORD", "SECRET", "TOKEN"].iter().any(|s| upper.contains(s))
}

/// Required variables that are not secrets, with what an operator would set.
pub const REQUIRED_SETTINGS: &[(&str, &str)] = &[("NIMBUS_PUBLIC_URL", "http://cloud.campus.example:8080")];

/// What the operator's environment provides in these tests: a sample value for every secret and
/// for [`REQUIRED_SETTINGS`], nothing else (so optional variables take their defaults).
pub fn sample_environment(name: &str) -> Option<String> {
    if let Some((_, value)) = REQUIRED_SETTINGS.iter().find(|(n, _)| *n == name) {
        return Some((*value).to_owned());
    }
    is_secret_name(name).then(|| format!("sample-{}", name.to_ascii_lowercase().replace('_', "-")))
}

// ---------------------------------------------------------------------------------------------
// The cloud roles
// ---------------------------------------------------------------------------------------------

/// A cloud role: a compose service built from the cloud image.
pub struct Role {
    pub service: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
}

impl Role {
    /// The `nimbus-cloud` subcommand it runs.
    pub fn subcommand(&self) -> &str {
        self.args.first().map_or("", String::as_str)
    }

    /// Whether the role reads `name`: by `config::ENV`'s roles (`all` reads what any role
    /// reads), or it is read outside the configuration, by every role.
    pub fn uses(&self, name: &str) -> bool {
        self.subcommand() == "all"
            || OUTSIDE_CONFIG.contains(&name)
            || ENV.iter().any(|v| v.name == name && v.roles.iter().any(|r| r.subcommand() == self.subcommand()))
    }

    /// The roles `config::ENV` says read `name`, for messages.
    pub fn readers(name: &str) -> Vec<&'static str> {
        ENV.iter().filter(|v| v.name == name).flat_map(|v| v.roles.iter().map(|r| r.subcommand())).collect()
    }

    /// The configuration the role loads, from its compose environment with sample secrets.
    pub fn config(&self) -> Result<CloudConfig, String> {
        let mut env = BTreeMap::new();
        for (k, v) in &self.env {
            let value = interpolate(v, &sample_environment).map_err(|e| format!("{k}: {e}"))?;
            env.insert(k.clone(), value);
        }
        CloudConfig::from_sources(None, |name| env.get(name).cloned()).map_err(|e| e.to_string())
    }

    /// The value after `flag` in its command.
    pub fn option(&self, flag: &str) -> Option<&str> {
        let i = self.args.iter().position(|a| a == flag)?;
        self.args.get(i + 1).map(String::as_str)
    }
}

/// The services built from the cloud image: the cloud roles.
pub fn roles(compose: &Value) -> Vec<Role> {
    let roles: Vec<Role> = services(compose)
        .into_iter()
        .filter(|(_, svc)| {
            svc.get("build").and_then(|b| b.get("dockerfile")).and_then(Value::as_str) == Some(CLOUD_DOCKERFILE)
        })
        .map(|(name, svc)| Role { service: name, args: args(svc.get("command")), env: environment(svc) })
        .collect();
    assert!(!roles.is_empty(), "{COMPOSE}: no service is built from {CLOUD_DOCKERFILE}, so there are no cloud roles");
    roles
}

/// The role running `nimbus-cloud <subcommand>`; panics if there is none.
pub fn role<'a>(roles: &'a [Role], subcommand: &str) -> &'a Role {
    roles
        .iter()
        .find(|r| r.subcommand() == subcommand)
        .unwrap_or_else(|| panic!("{COMPOSE} has no cloud role running `nimbus-cloud {subcommand}`"))
}

/// Services some other service waits for to complete: the one-shot jobs.
pub fn one_shot_services(compose: &Value) -> BTreeSet<String> {
    services(compose)
        .iter()
        .flat_map(|(_, svc)| depends_on(svc))
        .filter(|(_, condition)| condition == "service_completed_successfully")
        .map(|(name, _)| name)
        .collect()
}

/// `host:port` of a URL (`scheme://[user[:password]@]host:port[/…]`).
pub fn url_host_port(url: &str) -> (String, u16) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    host_port_of(host_port)
}

/// `host:port` split.
pub fn host_port_of(text: &str) -> (String, u16) {
    let (host, port) = text.rsplit_once(':').unwrap_or_else(|| panic!("{text:?} has no port"));
    (host.to_owned(), port.parse().unwrap_or_else(|_| panic!("{text:?}: {port:?} is not a port")))
}

// ---------------------------------------------------------------------------------------------
// What the code reads
// ---------------------------------------------------------------------------------------------

/// The variables `CloudConfig` reads, observed through its public loader.
pub fn config_env_names() -> BTreeSet<String> {
    let seen = RefCell::new(BTreeSet::new());
    let _ = CloudConfig::from_sources(None, |name| {
        seen.borrow_mut().insert(name.to_owned());
        None
    });
    seen.into_inner()
}

/// Every `.rs` file under `dir`, appended to `out`.
pub fn rust_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = entry.expect("directory entry").path();
        if p.is_dir() {
            rust_sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// String literals right after `marker` in `text`.
pub fn literals_after(text: &str, marker: &str) -> Vec<String> {
    text.match_indices(marker)
        .filter_map(|(i, _)| {
            let rest = text[i + marker.len()..].trim_start().strip_prefix('"')?;
            Some(rest[..rest.find('"')?].to_owned())
        })
        .collect()
}

/// The variables the code reads by name, outside the configuration's loader: clap's
/// `env = "…"` arguments, direct `std::env::var` calls, and `RUST_LOG` of the log filter
/// (outside tests).
pub fn code_env_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut files = Vec::new();
    rust_sources(&path("cloud/src"), &mut files);
    for file in files {
        let text = std::fs::read_to_string(&file).expect("source file");
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for marker in ["env = ", "env::var(", "env::var_os("] {
            names.extend(literals_after(code, marker));
        }
        if code.contains("try_from_default_env") || code.contains("from_default_env") {
            names.insert("RUST_LOG".to_owned());
        }
    }
    names
}

/// `nimbus-cloud <args> --help`, without a configuration file.
pub fn binary_help(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nimbus-cloud"))
        .args(args)
        .arg("--help")
        .env_remove("NIMBUS_CLOUD_CONFIG")
        .output()
        .expect("run nimbus-cloud")
}

/// The subcommands listed by `nimbus-cloud --help`.
pub fn binary_subcommands() -> BTreeSet<String> {
    let out = binary_help(&[]);
    assert!(out.status.success(), "nimbus-cloud --help failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Databases and topics
// ---------------------------------------------------------------------------------------------

/// The databases the seed (`docs/contract`) creates.
pub fn seed_databases() -> BTreeSet<String> {
    let mut dbs = BTreeSet::new();
    for entry in std::fs::read_dir(path("docs/contract")).expect("docs/contract") {
        let p = entry.expect("directory entry").path();
        if p.extension().is_some_and(|e| e == "txt") {
            let text = std::fs::read_to_string(&p).expect("contract file");
            for line in text.lines() {
                if let Some(name) = line.trim().strip_prefix("CREATE DATABASE ") {
                    dbs.insert(name.trim().trim_end_matches(';').to_owned());
                }
            }
        }
    }
    dbs
}

/// The databases `scripts/init-databases.sh` names.
pub fn init_script_databases() -> BTreeSet<String> {
    read("scripts/init-databases.sh")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
        .filter(|w| w.ends_with("_db") && w.len() > 3)
        .map(str::to_owned)
        .collect()
}

/// The service that creates the topics (its command runs kafka-topics.sh).
pub fn topic_creator(compose: &Value) -> (String, String) {
    services(compose)
        .into_iter()
        .map(|(name, svc)| (name, command_text(svc)))
        .find(|(_, text)| text.contains("kafka-topics.sh") && text.contains("--create"))
        .unwrap_or_else(|| panic!("{COMPOSE}: no service creates the Kafka topics (kafka-topics.sh --create)"))
}

/// `create <topic> <partitions> <retention.ms>` lines of the topic creator's script.
pub fn created_topics(script: &str) -> BTreeMap<String, (i32, u128)> {
    let mut topics = BTreeMap::new();
    for line in script.lines() {
        let words: Vec<&str> = line.split('#').next().unwrap_or_default().split_whitespace().collect();
        if let ["create", topic, partitions, retention] = words.as_slice() {
            let partitions = partitions.parse().unwrap_or_else(|_| panic!("partitions of {topic}: {partitions:?}"));
            let retention = retention.parse().unwrap_or_else(|_| panic!("retention.ms of {topic}: {retention:?}"));
            assert!(topics.insert((*topic).to_owned(), (partitions, retention)).is_none(), "{topic} is created twice");
        }
    }
    topics
}

/// The number after `option` (`--replication-factor 1`, `min.insync.replicas=1`).
pub fn number_after(text: &str, option: &str) -> Option<i16> {
    let at = text.find(option)? + option.len();
    let digits: String = text[at..].trim_start().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The word (unquoted) after each `option` in `text`.
pub fn literals_or_words_after(text: &str, option: &str) -> Vec<String> {
    text.match_indices(option)
        .filter_map(|(i, _)| text[i + option.len()..].split_whitespace().next())
        .map(|w| w.trim_matches('"').to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The MQTT broker
// ---------------------------------------------------------------------------------------------

/// The grants of a mosquitto ACL, one string per grant, independent of layout and comments:
/// `pattern <access> <topic>` or `user <name>: <access> <topic>`.
pub fn acl_grants(text: &str) -> BTreeSet<String> {
    let mut user: Option<String> = None;
    let mut grants = BTreeSet::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let access_topic = |rest: &[&str]| match rest {
            [topic] => format!("readwrite {topic}"),
            [access, topic @ ..] => format!("{access} {}", topic.join(" ")),
            [] => "(nothing)".to_owned(),
        };
        match words[0] {
            "user" => user = Some(words[1..].join(" ")),
            "pattern" => {
                grants.insert(format!("pattern {}", access_topic(&words[1..])));
            }
            "topic" => {
                let who = user.as_deref().map_or("anonymous".to_owned(), |u| format!("user {u}"));
                grants.insert(format!("{who}: {}", access_topic(&words[1..])));
            }
            _ => {
                grants.insert(format!("unknown line: {line}"));
            }
        }
    }
    grants
}

/// `scripts/compose/mosquitto.conf` as key → values (a listener by its port).
pub fn mosquitto_conf() -> BTreeMap<String, Vec<String>> {
    let mut conf: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in read("scripts/compose/mosquitto.conf").lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        // `listener <port> [address]`: keep the port.
        let value = if key == "listener" { value.split_whitespace().next().unwrap_or_default() } else { value.trim() };
        conf.entry(key.to_owned()).or_default().push(value.to_owned());
    }
    conf
}

/// The single value of `key` in mosquitto.conf; panics if it is missing or repeated.
pub fn one(conf: &BTreeMap<String, Vec<String>>, key: &str) -> String {
    match conf.get(key).map(Vec::as_slice) {
        Some([value]) => value.clone(),
        Some(values) => panic!("scripts/compose/mosquitto.conf sets {key} {} times: {values:?}", values.len()),
        None => panic!("scripts/compose/mosquitto.conf does not set {key}"),
    }
}

/// Whether `file` (a path inside a container) lies in one of the service's mounts, and which.
pub fn mount_of<'a>(mounts: &'a [(String, String)], file: &str) -> Option<&'a (String, String)> {
    mounts.iter().find(|(_, target)| file == target || file.starts_with(&format!("{}/", target.trim_end_matches('/'))))
}

// ---------------------------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------------------------

/// The seed's service ports (`**Port:** N`) and the API gateway's.
pub fn seed_ports() -> (BTreeSet<u16>, u16) {
    let text = read("docs/contract/000_9b3436db226d81a0.txt");
    let ports: BTreeSet<u16> =
        text.lines().filter_map(|l| l.trim().strip_prefix("**Port:**")).filter_map(|p| p.trim().parse().ok()).collect();
    let gateway = text
        .split("API Gateway Service")
        .nth(1)
        .and_then(|section| section.lines().find_map(|l| l.trim().strip_prefix("**Port:**")))
        .and_then(|p| p.trim().parse().ok())
        .expect("the seed names the API gateway's port");
    (ports, gateway)
}

/// `NAME_PORT=N` of scripts/services.sh: the ports the development services and tests use.
pub fn services_sh_port(name: &str) -> u16 {
    read("scripts/services.sh")
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{name}=")))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("scripts/services.sh does not set {name}"))
}

// ---------------------------------------------------------------------------------------------
// Start order
// ---------------------------------------------------------------------------------------------

/// Services `name` waits for, directly or through others.
pub fn waits_for(compose: &Value, name: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![name.to_owned()];
    while let Some(n) = todo.pop() {
        for dep in depends_on(service(compose, &n)).into_keys() {
            if seen.insert(dep.clone()) {
                todo.push(dep);
            }
        }
    }
    seen
}

// ---------------------------------------------------------------------------------------------
// The image
// ---------------------------------------------------------------------------------------------

/// Whether `.dockerignore` keeps `rel` (a path relative to the workspace root) out of the build
/// context. Supports the forms used there: directory or file paths, `**/` prefixes and `*`.
pub fn docker_ignores(patterns: &[String], rel: &str) -> bool {
    fn matches_name(pattern: &str, name: &str) -> bool {
        match pattern.split_once('*') {
            None => pattern == name,
            Some((prefix, rest)) => {
                name.starts_with(prefix)
                    && (0..=name.len() - prefix.len()).any(|i| matches_name(rest, &name[prefix.len() + i..]))
            }
        }
    }
    fn matches(pattern: &[&str], path: &[&str]) -> bool {
        match (pattern.first(), path.first()) {
            (None, _) => true, // a directory pattern covers everything below it
            (Some(&"**"), _) => (0..=path.len()).any(|i| matches(&pattern[1..], &path[i..])),
            (Some(p), Some(name)) => matches_name(p, name) && matches(&pattern[1..], &path[1..]),
            (Some(_), None) => false,
        }
    }
    let path: Vec<&str> = rel.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    let mut ignored = false;
    for pattern in patterns {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern.as_str()),
        };
        let parts: Vec<&str> = pattern.trim_matches('/').split('/').collect();
        if matches(&parts, &path) {
            ignored = !negated;
        }
    }
    ignored
}
