//! The Kubernetes manifests (`deploy/k8s/`: a kustomize base and the `small` and `large`
//! overlays) rendered by a small kustomize subset below (resources, namespace, images, replicas,
//! strategic-merge patches: what the overlays use), validated against Kubernetes' own schemas
//! with `kubernetes-validate` (installed by `scripts/services.sh`; its absence fails the test),
//! and checked against the code like `compose_stack` checks compose: every role of the binary
//! runs, with the variables it needs and no others, secrets from the Secret, probes on the port
//! the role serves them on, Services, autoscalers and disruption budgets pointing at real pods.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use nimbus_cloud::worker::{Worker, WorkerSettings};
use nimbus_core::groups::CONSUMER_GROUPS;
use serde::Deserialize;
use serde_yaml::Value;

use crate::common::compose::{Role, binary_subcommands, directives, is_secret_name, path, read, url_host_port};
use crate::compose_stack::{
    BROKER_ENTRYPOINT, COMPOSE_MUST_NOT_SET, COMPOSE_MUST_SET, NOT_ROLES, entrypoint_defaults, known_variable,
    probe_port,
};

const OVERLAYS: [&str; 2] = ["deploy/k8s/overlays/small", "deploy/k8s/overlays/large"];
/// The oldest Kubernetes release still commonly run and the newest the validator knows.
const K8S_VERSIONS: [&str; 2] = ["1.33.0", "1.37.0"];
const CLOUD_IMAGE: &str = "nimbusu/nimbus-cloud";
/// The Secret the manifests refer to (created by operators, docs/operations.md), its keys, and a
/// sample value of each for loading the roles' configuration.
const SECRET: &str = "nimbus-cloud-secrets";
const SECRET_SAMPLES: &[(&str, &str)] = &[
    ("database-url", "postgres://nimbusu:sample@postgres:5432"),
    ("mongodb-uri", "mongodb://nimbusu:sample@mongodb:27017/?authSource=admin"),
    ("mqtt-password", "sample-mqtt-password"),
    ("admin-password", "sample-admin-password"),
];
/// Variables that carry a password inside a URL: they must come from the Secret too.
const URL_SECRETS: &[&str] = &["DATABASE_URL", "MONGODB_URI"];

// ---------------------------------------------------------------------------------------------
// Rendering (the kustomize subset the overlays use)
// ---------------------------------------------------------------------------------------------

fn documents(file: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", file.display())))
        .filter(|v| !v.is_null())
        .collect()
}

fn kind_name(doc: &Value) -> (String, String) {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
    (text(doc.get("kind")), text(doc.get("metadata").and_then(|m| m.get("name"))))
}

/// Strategic merge as kustomize applies it to what the overlays patch: maps merge, `null`
/// deletes a key, lists of named items merge by name, other lists are replaced.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Mapping(t), Value::Mapping(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else if let Some(existing) = t.get_mut(k) {
                    merge(existing, v);
                } else {
                    t.insert(k.clone(), v.clone());
                }
            }
        }
        (Value::Sequence(t), Value::Sequence(p)) if p.iter().all(|i| i.get("name").is_some()) => {
            for item in p {
                match t.iter_mut().find(|x| x.get("name") == item.get("name")) {
                    Some(existing) => merge(existing, item),
                    None => t.push(item.clone()),
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// Every container (init containers too) of a workload's pod template (or a pod spec).
fn containers_mut(doc: &mut Value) -> Vec<&mut Value> {
    let Some(spec) = doc.get_mut("spec").and_then(|s| s.get_mut("template")).and_then(|t| t.get_mut("spec")) else {
        return Vec::new();
    };
    let Value::Mapping(spec) = spec else { return Vec::new() };
    spec.iter_mut()
        .filter(|(k, _)| k.as_str().is_some_and(|k| k == "containers" || k == "initContainers"))
        .flat_map(|(_, v)| v.as_sequence_mut().map(|s| s.iter_mut().collect::<Vec<_>>()).unwrap_or_default())
        .collect()
}

/// The resources `dir`'s kustomization.yaml produces.
fn render(dir: &Path) -> Vec<Value> {
    let k = documents(&dir.join("kustomization.yaml")).pop().expect("a kustomization");
    let known = ["apiVersion", "kind", "namespace", "resources", "patches", "images", "replicas"];
    for key in k.as_mapping().expect("kustomization").keys().filter_map(Value::as_str) {
        assert!(
            known.contains(&key),
            "{}: `{key}` is beyond this test's kustomize subset; extend render()",
            dir.display()
        );
    }
    let list = |key: &str| k.get(key).and_then(Value::as_sequence).cloned().unwrap_or_default();
    let mut docs = Vec::new();
    for r in list("resources") {
        let p = dir.join(r.as_str().expect("resource path"));
        if p.is_dir() { docs.extend(render(&p)) } else { docs.extend(documents(&p)) }
    }
    for patch in list("patches") {
        let file = dir.join(patch.get("path").and_then(Value::as_str).expect("patches: only `path:` is supported"));
        for p in documents(&file) {
            let id = kind_name(&p);
            let target = docs.iter_mut().find(|d| kind_name(d) == id);
            merge(target.unwrap_or_else(|| panic!("{}: patch for {id:?}, which no resource is", file.display())), &p);
        }
    }
    for r in list("replicas") {
        let name = r.get("name").and_then(Value::as_str).expect("replicas: name");
        let doc = docs.iter_mut().find(|d| kind_name(d).1 == name && d.get("spec").is_some());
        doc.unwrap_or_else(|| panic!("replicas: no workload {name}"))["spec"]["replicas"] = r["count"].clone();
    }
    for image in list("images") {
        let name = image.get("name").and_then(Value::as_str).expect("images: name");
        for doc in &mut docs {
            for c in containers_mut(doc) {
                let current = c.get("image").and_then(Value::as_str).unwrap_or_default().to_owned();
                let (repo, tag) = current.split_once(':').unwrap_or((&current, "latest"));
                if repo == name {
                    let repo = image.get("newName").and_then(Value::as_str).unwrap_or(repo);
                    let tag = image.get("newTag").and_then(Value::as_str).unwrap_or(tag);
                    c["image"] = format!("{repo}:{tag}").into();
                }
            }
        }
    }
    if let Some(ns) = k.get("namespace").and_then(Value::as_str) {
        for doc in docs.iter_mut().filter(|d| kind_name(d).0 != "Namespace") {
            doc["metadata"]["namespace"] = ns.into();
        }
    }
    docs
}

fn overlay(dir: &str) -> Vec<Value> {
    render(&path(dir))
}

// ---------------------------------------------------------------------------------------------
// Reading the rendered resources
// ---------------------------------------------------------------------------------------------

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| kind_name(d).0 == kind).collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    docs.iter().find(|d| kind_name(d) == (kind.to_owned(), name.to_owned()))
}

fn seq(v: Option<&Value>) -> Vec<Value> {
    v.and_then(Value::as_sequence).cloned().unwrap_or_default()
}

fn text(v: Option<&Value>) -> String {
    v.and_then(crate::common::compose::scalar).unwrap_or_default()
}

fn pod_spec(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]
}

fn pod_labels(workload: &Value) -> BTreeMap<String, String> {
    labels(&workload["spec"]["template"]["metadata"]["labels"])
}

fn labels(v: &Value) -> BTreeMap<String, String> {
    v.as_mapping().map(|m| m.iter().map(|(k, v)| (text(Some(k)), text(Some(v)))).collect()).unwrap_or_default()
}

fn selects(selector: &BTreeMap<String, String>, pod: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| pod.get(k) == Some(v))
}

/// A workload that runs pods (Deployment, StatefulSet, Job).
fn workloads(docs: &[Value]) -> Vec<&Value> {
    docs.iter().filter(|d| ["Deployment", "StatefulSet", "Job"].contains(&kind_name(d).0.as_str())).collect()
}

/// A workload's kind, name, pod labels and containers.
type Pods = (String, String, BTreeMap<String, String>, Vec<Value>);

/// A cloud role's container, with where it runs.
struct K8sRole {
    workload: String,
    kind: String,
    container: Value,
    role: Role,
}

/// A container's environment resolved the way the kubelet does, with sample secrets.
fn resolved_env(docs: &[Value], container: &Value, at: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for e in seq(container.get("env")) {
        let name = text(e.get("name"));
        let value = if let Some(v) = e.get("value") {
            text(Some(v))
        } else if let Some(r) = e.get("valueFrom").and_then(|v| v.get("configMapKeyRef")) {
            let (map, key) = (text(r.get("name")), text(r.get("key")));
            let cm = find(docs, "ConfigMap", &map)
                .unwrap_or_else(|| panic!("{at}: {name} refers to ConfigMap {map}, which is not in the manifests"));
            cm["data"]
                .get(&key)
                .map(|v| text(Some(v)))
                .unwrap_or_else(|| panic!("{at}: {name} refers to key {key}, which ConfigMap {map} lacks"))
        } else if let Some(r) = e.get("valueFrom").and_then(|v| v.get("secretKeyRef")) {
            let (secret, key) = (text(r.get("name")), text(r.get("key")));
            assert_eq!(
                secret, SECRET,
                "{at}: {name} refers to Secret {secret}; the manifests use one Secret, {SECRET}"
            );
            let sample = SECRET_SAMPLES.iter().find(|(k, _)| *k == key);
            sample.unwrap_or_else(|| panic!("{at}: {name} refers to key {key} of {SECRET}, which docs/operations.md does not tell operators to create")).1.to_owned()
        } else if let Some(r) = e.get("valueFrom").and_then(|v| v.get("fieldRef")) {
            format!("field-{}", text(r.get("fieldPath")).replace('.', "-"))
        } else {
            panic!("{at}: {name} has neither a value nor a supported valueFrom")
        };
        assert!(env.insert(name.clone(), value).is_none(), "{at}: {name} is set twice");
    }
    env
}

fn k8s_roles(docs: &[Value]) -> Vec<K8sRole> {
    let mut roles = Vec::new();
    for w in workloads(docs) {
        let (kind, name) = kind_name(w);
        for c in seq(pod_spec(w).get("containers")) {
            if !text(c.get("image")).starts_with(&format!("{CLOUD_IMAGE}:")) {
                continue;
            }
            let at = format!("{kind} {name}, container {}", text(c.get("name")));
            assert!(c.get("command").is_none(), "{at}: overrides the image's ENTRYPOINT [\"nimbus-cloud\"]; use args");
            let args: Vec<String> = seq(c.get("args")).iter().map(|a| text(Some(a))).collect();
            let env = resolved_env(docs, &c, &at);
            let role = Role { service: at.clone(), args, env };
            roles.push(K8sRole { workload: name.clone(), kind: kind.clone(), container: c, role });
        }
    }
    roles
}

/// The number of a container port given by name or number.
fn port_number(container: &Value, port: &Value) -> Option<u16> {
    let ports = seq(container.get("ports"));
    match port {
        Value::Number(n) => ports.iter().find(|p| p["containerPort"].as_u64() == n.as_u64()).and(n.as_u64()),
        Value::String(name) => {
            ports.iter().find(|p| text(p.get("name")) == *name).and_then(|p| p["containerPort"].as_u64())
        }
        _ => None,
    }
    .and_then(|n| u16::try_from(n).ok())
}

/// The replicas a workload runs with at least: its autoscaler's minimum, else `spec.replicas`.
fn min_replicas(docs: &[Value], kind: &str, name: &str) -> u64 {
    of_kind(docs, "HorizontalPodAutoscaler")
        .into_iter()
        .find(|h| {
            text(h["spec"]["scaleTargetRef"].get("kind")) == kind
                && text(h["spec"]["scaleTargetRef"].get("name")) == name
        })
        .and_then(|h| h["spec"]["minReplicas"].as_u64())
        .or_else(|| find(docs, kind, name).and_then(|w| w["spec"]["replicas"].as_u64()))
        .unwrap_or(1)
}

// ---------------------------------------------------------------------------------------------
// Schemas
// ---------------------------------------------------------------------------------------------

fn validator() -> PathBuf {
    let configured = std::env::var_os("NIMBUS_K8S_VALIDATE").map(PathBuf::from);
    let default = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".local/share/nimbus-services/k8s-validate-venv/bin/kubernetes-validate"));
    configured.or(default).filter(|p| p.exists()).unwrap_or_else(|| {
        panic!(
            "kubernetes-validate is not installed (NIMBUS_K8S_VALIDATE, or scripts/services.sh's venv): run \
             scripts/services.sh up; the manifests are never left unvalidated"
        )
    })
}

#[test]
fn every_overlay_validates_against_the_kubernetes_schemas() {
    let validator = validator();
    let dir = tempfile::tempdir().expect("temp dir");
    for o in OVERLAYS {
        let docs = overlay(o);
        let file = dir.path().join(format!("{}.yaml", o.replace('/', "_")));
        let text: Vec<String> = docs.iter().map(|d| serde_yaml::to_string(d).expect("yaml")).collect();
        std::fs::write(&file, text.join("---\n")).expect("write");
        for version in K8S_VERSIONS {
            let out = std::process::Command::new(&validator)
                .args(["--strict", "--quiet", "-k", version])
                .arg(&file)
                .output()
                .expect("run kubernetes-validate");
            assert!(
                out.status.success(),
                "{o} does not validate against Kubernetes {version}'s schemas (strict):\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn the_renderer_applies_the_overlays_patches_replicas_and_namespace() {
    let small = overlay(OVERLAYS[0]);
    let large = overlay(OVERLAYS[1]);
    let cm = |docs: &[Value], key: &str| {
        text(find(docs, "ConfigMap", "nimbus-cloud-config").expect("config")["data"].get(key))
    };
    assert_eq!(cm(&small, "NIMBUS_ENV"), "development");
    assert_eq!(cm(&large, "NIMBUS_ENV"), "production");
    assert_eq!(min_replicas(&small, "Deployment", "api"), 1);
    assert_eq!(min_replicas(&large, "Deployment", "api"), 3);
    let pdb = find(&small, "PodDisruptionBudget", "api").expect("pdb");
    assert!(pdb["spec"].get("minAvailable").is_none() && pdb["spec"]["maxUnavailable"].as_u64() == Some(1));
    assert_eq!(find(&large, "Deployment", "worker-course").expect("worker")["spec"]["replicas"].as_u64(), Some(2));
    assert!(
        small
            .iter()
            .filter(|d| kind_name(d).0 != "Namespace")
            .all(|d| text(d["metadata"].get("namespace")) == "nimbusu")
    );
    // A patched container keeps what the patch does not mention.
    let api = find(&small, "Deployment", "api").expect("api");
    let c = &seq(pod_spec(api).get("containers"))[0];
    assert_eq!(text(c["resources"]["requests"].get("cpu")), "100m");
    assert!(c.get("readinessProbe").is_some() && c.get("env").is_some());
}

// ---------------------------------------------------------------------------------------------
// Against the code
// ---------------------------------------------------------------------------------------------

/// Every long-running role of the binary runs in a Deployment or StatefulSet, a worker per
/// service that has one, the migrations in a Job.
fn check_roles_deployed(o: &str, docs: &[Value]) {
    let subcommands = binary_subcommands();
    let roles = k8s_roles(docs);
    for sub in subcommands.iter().filter(|s| !NOT_ROLES.contains(&s.as_str())) {
        assert!(
            roles.iter().any(|r| r.role.subcommand() == sub && r.kind != "Job"),
            "{o}: `nimbus-cloud {sub}` is a role of the binary, but no Deployment or StatefulSet runs it"
        );
    }
    let migrate = roles
        .iter()
        .find(|r| r.role.subcommand() == "migrate")
        .unwrap_or_else(|| panic!("{o}: no Job runs the migrations"));
    assert_eq!(migrate.kind, "Job", "{o}: `migrate` runs in a {}, not a Job", migrate.kind);
    let job = find(docs, "Job", &migrate.workload).expect("job");
    assert!(["OnFailure", "Never"].contains(&text(pod_spec(job).get("restartPolicy")).as_str()));
    let settings = || WorkerSettings::new("kafka:9092", "postgres://nimbusu@postgres:5432/attendance_service_db");
    let mut deployed = BTreeSet::new();
    for w in roles.iter().filter(|r| r.role.subcommand() == "worker") {
        let service =
            w.role.option("--service").unwrap_or_else(|| panic!("{}: worker without --service", w.role.service));
        Worker::new(service, settings())
            .unwrap_or_else(|e| panic!("{}: `worker --service {service}` cannot start: {e}", w.role.service));
        assert!(deployed.insert(service.to_owned()), "{o}: two workloads run the {service} worker");
    }
    for group in &CONSUMER_GROUPS {
        let short = group.service.trim_end_matches("-service");
        if Worker::new(group.service, settings()).is_ok() {
            assert!(
                deployed.contains(short),
                "{o}: {} has a worker in the code but no workload runs it",
                group.service
            );
        }
    }
}

#[test]
fn every_role_of_the_binary_runs_with_a_worker_per_service_and_the_migrations_as_a_job() {
    for o in OVERLAYS {
        check_roles_deployed(o, &overlay(o));
    }
}

/// Each role gets the variables it needs and only those, secrets from the Secret, a unique
/// INGEST_INSTANCE, and a configuration that loads.
fn check_role_environment(o: &str, docs: &[Value]) {
    for r in k8s_roles(docs) {
        let role = &r.role;
        for name in role.env.keys() {
            assert!(known_variable(name), "{}: sets {name}, which nimbus-cloud never reads", role.service);
            if let Some((_, why)) = COMPOSE_MUST_NOT_SET.iter().find(|(n, _)| n == name) {
                panic!("{}: sets {name}: {why}", role.service);
            }
            assert!(role.uses(name), "{}: sets {name}, which only {:?} read", role.service, Role::readers(name));
        }
        for (name, why) in COMPOSE_MUST_SET.iter().filter(|(n, _)| role.uses(n)) {
            assert!(
                role.env.get(*name).is_some_and(|v| !v.trim().is_empty()),
                "{}: does not set {name}: {why}",
                role.service
            );
        }
        for e in seq(r.container.get("env")) {
            let name = text(e.get("name"));
            if is_secret_name(&name) || URL_SECRETS.contains(&name.as_str()) {
                assert!(
                    e.get("valueFrom").and_then(|v| v.get("secretKeyRef")).is_some(),
                    "{}: {name} is not taken from the Secret {SECRET}",
                    role.service
                );
            }
        }
        if role.env.contains_key("INGEST_INSTANCE") {
            // The MQTT client id: two pods with one id would throw each other off the broker.
            assert_eq!(
                role.env["INGEST_INSTANCE"], "field-metadata-name",
                "{}: INGEST_INSTANCE must be the pod's name (fieldRef metadata.name), unique per pod",
                role.service
            );
        }
        if let Err(e) = role.config() {
            panic!("{o}: {}: its environment is not a valid nimbus-cloud configuration: {e}", role.service);
        }
    }
}

#[test]
fn every_role_gets_the_variables_it_needs_and_only_those_with_secrets_from_the_secret() {
    for o in OVERLAYS {
        check_role_environment(o, &overlay(o));
    }
}

#[test]
fn roles_reach_the_broker_through_a_service_that_selects_it() {
    for o in OVERLAYS {
        let docs = overlay(o);
        for r in k8s_roles(&docs).iter().filter(|r| r.role.env.contains_key("MQTT_URL")) {
            let (host, port) = url_host_port(&r.role.env["MQTT_URL"]);
            let svc = find(&docs, "Service", &host)
                .unwrap_or_else(|| panic!("{o}: {}: MQTT_URL names {host}, which is no Service", r.role.service));
            assert!(
                seq(svc["spec"].get("ports")).iter().any(|p| p["port"].as_u64() == Some(u64::from(port))),
                "{o}: Service {host} has no port {port} (MQTT_URL of {})",
                r.role.service
            );
        }
    }
}

/// Liveness on `/health`, readiness on `/health/ready`, both on the port the role serves them on.
fn check_role_probes(o: &str, docs: &[Value]) {
    for r in k8s_roles(docs).iter().filter(|r| r.kind != "Job") {
        let want = probe_port(&r.role);
        for (probe, path) in [("livenessProbe", "/health"), ("readinessProbe", "/health/ready")] {
            let get = r.container.get(probe).and_then(|p| p.get("httpGet"));
            let get = get.unwrap_or_else(|| panic!("{o}: {}: no {probe} over HTTP", r.role.service));
            assert_eq!(text(get.get("path")), path, "{o}: {}: {probe} asks {}", r.role.service, text(get.get("path")));
            let port = port_number(&r.container, &get["port"]);
            assert_eq!(
                port,
                Some(want),
                "{o}: {}: {probe} targets {:?}, not the role's probe port {want}",
                r.role.service,
                get["port"]
            );
        }
    }
}

#[test]
fn long_running_roles_probe_health_and_readiness_on_the_port_they_serve() {
    for o in OVERLAYS {
        check_role_probes(o, &overlay(o));
    }
}

#[test]
fn every_container_has_requests_and_limits_and_runs_without_privileges() {
    for o in OVERLAYS {
        let docs = overlay(o);
        for w in workloads(&docs) {
            let (kind, name) = kind_name(w);
            let pod = pod_spec(w);
            for c in seq(pod.get("containers")).iter().chain(seq(pod.get("initContainers")).iter()) {
                let at = format!("{o}: {kind} {name}, container {}", text(c.get("name")));
                for (what, res) in
                    [("requests", "cpu"), ("requests", "memory"), ("limits", "cpu"), ("limits", "memory")]
                {
                    assert!(c["resources"][what].get(res).is_some(), "{at}: no resources.{what}.{res}");
                }
                let sc = &c["securityContext"];
                assert_eq!(
                    sc["allowPrivilegeEscalation"].as_bool(),
                    Some(false),
                    "{at}: allowPrivilegeEscalation is not false"
                );
                let non_root = sc["runAsNonRoot"].as_bool().or(pod["securityContext"]["runAsNonRoot"].as_bool());
                assert_eq!(non_root, Some(true), "{at}: not runAsNonRoot");
            }
        }
    }
}

#[test]
fn services_autoscalers_and_disruption_budgets_point_at_real_pods() {
    for o in OVERLAYS {
        let docs = overlay(o);
        let pods: Vec<Pods> = workloads(&docs)
            .into_iter()
            .map(|w| {
                let (kind, name) = kind_name(w);
                (kind, name, pod_labels(w), seq(pod_spec(w).get("containers")))
            })
            .collect();
        for svc in of_kind(&docs, "Service") {
            let name = kind_name(svc).1;
            let selector = labels(&svc["spec"]["selector"]);
            let backing: Vec<_> = pods.iter().filter(|(k, _, l, _)| k != "Job" && selects(&selector, l)).collect();
            assert!(!backing.is_empty(), "{o}: Service {name} selects no pods ({selector:?})");
            for port in seq(svc["spec"].get("ports")) {
                let target = port.get("targetPort").cloned().unwrap_or_else(|| port["port"].clone());
                for (_, w, _, containers) in &backing {
                    assert!(
                        containers.iter().any(|c| port_number(c, &target).is_some()),
                        "{o}: Service {name} sends to port {target:?}, which pods of {w} do not expose"
                    );
                }
            }
        }
        let hpas = of_kind(&docs, "HorizontalPodAutoscaler");
        for role in ["api", "ingest"] {
            let hpa = hpas.iter().find(|h| text(h["spec"]["scaleTargetRef"].get("name")) == role);
            let hpa = hpa.unwrap_or_else(|| panic!("{o}: no HorizontalPodAutoscaler scales {role}"));
            assert!(hpa["spec"]["minReplicas"].as_u64() <= hpa["spec"]["maxReplicas"].as_u64());
        }
        for hpa in &hpas {
            let (kind, name) =
                (text(hpa["spec"]["scaleTargetRef"].get("kind")), text(hpa["spec"]["scaleTargetRef"].get("name")));
            let target = find(&docs, &kind, &name)
                .unwrap_or_else(|| panic!("{o}: an autoscaler scales {kind} {name}, which does not exist"));
            for c in seq(pod_spec(target).get("containers")) {
                assert!(
                    c["resources"]["requests"].get("cpu").is_some(),
                    "{o}: {name} scales on CPU use but requests no CPU"
                );
            }
        }
        let pdbs = of_kind(&docs, "PodDisruptionBudget");
        for (kind, name, pod, _) in pods.iter().filter(|(k, ..)| k != "Job") {
            let pdb = pdbs.iter().find(|p| selects(&labels(&p["spec"]["selector"]["matchLabels"]), pod));
            let pdb = pdb.unwrap_or_else(|| panic!("{o}: no PodDisruptionBudget covers {kind} {name}"));
            if let Some(min) = pdb["spec"]["minAvailable"].as_u64() {
                let replicas = min_replicas(&docs, kind, name);
                assert!(
                    min < replicas,
                    "{o}: {kind} {name} may run {replicas} pod(s) and its budget keeps {min} available: no node could \
                     ever be drained"
                );
            }
        }
    }
}

#[test]
fn the_broker_pod_runs_the_compose_broker_files_and_shares_the_node_accounts() {
    for o in OVERLAYS {
        let docs = overlay(o);
        let files =
            find(&docs, "ConfigMap", "nimbus-broker").unwrap_or_else(|| panic!("{o}: no ConfigMap nimbus-broker"));
        let data = |k: &str| text(files["data"].get(k));
        assert_eq!(data("acl"), read("scripts/compose/acl"), "{o}: the broker's acl differs from scripts/compose/acl");
        assert_eq!(
            data("mosquitto-run.sh"),
            read(BROKER_ENTRYPOINT),
            "{o}: mosquitto-run.sh differs from {BROKER_ENTRYPOINT}"
        );
        let conf = data("mosquitto.conf");
        let k8s_conf: BTreeSet<&str> = directives(&conf).collect();
        for line in directives(&read("scripts/compose/mosquitto.conf")) {
            assert!(
                k8s_conf.contains(line),
                "{o}: the broker's mosquitto.conf lacks `{line}` of scripts/compose/mosquitto.conf"
            );
        }
        let sts = find(&docs, "StatefulSet", "mosquitto").unwrap_or_else(|| panic!("{o}: no StatefulSet mosquitto"));
        let containers = seq(pod_spec(sts).get("containers"));
        let by_name = |n: &str| {
            containers
                .iter()
                .find(|c| text(c.get("name")) == n)
                .cloned()
                .unwrap_or_else(|| panic!("{o}: the broker pod has no {n} container"))
        };
        let (broker, accounts) = (by_name("mosquitto"), by_name("broker-accounts"));
        let mount = |c: &Value, file: &str| -> Option<(String, String)> {
            seq(c.get("volumeMounts"))
                .iter()
                .map(|m| (text(m.get("name")), text(m.get("mountPath"))))
                .find(|(_, p)| file.starts_with(&format!("{p}/")))
        };
        let defaults = entrypoint_defaults();
        let nodes_file = &defaults["NODES_FILE"];
        let args: Vec<String> = seq(accounts.get("args")).iter().map(|a| text(Some(a))).collect();
        let written = args
            .iter()
            .skip_while(|a| *a != "--nodes-file")
            .nth(1)
            .cloned()
            .unwrap_or_else(|| panic!("{o}: broker-accounts without --nodes-file"));
        let (wv, wd) =
            mount(&accounts, &written).unwrap_or_else(|| panic!("{o}: broker-accounts writes {written} on no volume"));
        let (rv, rd) =
            mount(&broker, nodes_file).unwrap_or_else(|| panic!("{o}: mosquitto reads {nodes_file} from no volume"));
        assert_eq!(
            (wv, &written[wd.len()..]),
            (rv, &nodes_file[rd.len()..]),
            "{o}: broker-accounts writes another file than the broker reads"
        );
        assert!(
            mount(&broker, &defaults["CONFIG"]).is_some(),
            "{o}: mosquitto.conf is not mounted where the entrypoint reads it"
        );
        let command: Vec<String> = seq(broker.get("command")).iter().map(|a| text(Some(a))).collect();
        assert_eq!(
            command.last().map(String::as_str),
            Some("/mosquitto/config/mosquitto-run.sh"),
            "{o}: mosquitto is not started by its entrypoint script"
        );
    }
}

#[test]
fn every_secret_key_the_manifests_use_is_one_operators_are_told_to_create() {
    let docs = read("docs/operations.md");
    for (key, _) in SECRET_SAMPLES {
        assert!(
            docs.contains(&format!("--from-literal={key}=")),
            "docs/operations.md does not show how to create {SECRET}'s {key}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The checks fail on the defects they guard against
// ---------------------------------------------------------------------------------------------

/// Runs `check` on mutated resources, which must fail it with a message containing `expected`.
fn fails_with(check: fn(&str, &[Value]), docs: &[Value], expected: &str) {
    crate::common::assert_fails_with(|| check("mutated", docs), expected);
}

/// The small overlay with `change` applied to the resource `kind`/`name`.
fn mutated(kind: &str, name: &str, change: impl FnOnce(&mut Value)) -> Vec<Value> {
    let mut docs = overlay(OVERLAYS[0]);
    let doc = docs.iter_mut().find(|d| kind_name(d) == (kind.to_owned(), name.to_owned()));
    change(doc.unwrap_or_else(|| panic!("no {kind} {name}")));
    docs
}

#[test]
fn mutated_manifests_without_a_role_with_a_literal_secret_or_a_misdirected_probe_fail_the_checks() {
    let mut no_downlink = overlay(OVERLAYS[0]);
    no_downlink.retain(|d| kind_name(d) != ("Deployment".to_owned(), "downlink".to_owned()));
    fails_with(check_roles_deployed, &no_downlink, "`nimbus-cloud downlink` is a role of the binary");

    let literal_secret = mutated("Deployment", "api", |d| {
        let env = &mut d["spec"]["template"]["spec"]["containers"][0]["env"];
        for e in env.as_sequence_mut().expect("env") {
            if e["name"] == "DATABASE_URL" {
                *e = serde_yaml::from_str("{name: DATABASE_URL, value: 'postgres://nimbusu:hunter2@postgres:5432'}")
                    .expect("yaml");
            }
        }
    });
    fails_with(check_role_environment, &literal_secret, "DATABASE_URL is not taken from the Secret");

    let shared_client_id = mutated("Deployment", "ingest", |d| {
        let env = &mut d["spec"]["template"]["spec"]["containers"][0]["env"];
        for e in env.as_sequence_mut().expect("env") {
            if e["name"] == "INGEST_INSTANCE" {
                *e = serde_yaml::from_str("{name: INGEST_INSTANCE, value: ingest-1}").expect("yaml");
            }
        }
    });
    fails_with(check_role_environment, &shared_client_id, "INGEST_INSTANCE must be the pod's name");

    let wrong_port = mutated("Deployment", "worker-course", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = 8080.into();
    });
    fails_with(check_role_probes, &wrong_port, "not the role's probe port");
}
