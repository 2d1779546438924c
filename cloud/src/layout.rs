//! The crate's shape as tests: services own their code, roles only compose them, and low floors
//! import neither; no two files import each other, however indirectly. Read from the sources, so
//! a new import that breaks the shape fails `cargo test` and names the files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The roles: they compose services.
const ROLES: &[&str] = &["api", "worker", "ingest", "downlink", "cli"];
/// The services: each owns its data and behaviour.
const SERVICES: &[&str] = &[
    "user",
    "course",
    "timetable",
    "attendance",
    "content",
    "registry",
    "dlq",
    "notification",
    "announcement",
    "communication",
];
/// The low floors everyone stands on.
const FLOORS: &[&str] =
    &["http", "consumer", "db", "kafka", "outbox", "shutdown", "config", "error", "actor", "listing", "probe", "trace"];

/// Module path (`api::gateway`, `` for lib.rs) → source without comments and test modules.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).expect("read src") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, root, out);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("main.rs") {
                continue;
            }
            let rel = path.strip_prefix(root).expect("under src").with_extension("");
            let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
                parts.pop();
            }
            let text = std::fs::read_to_string(&path).expect("read source");
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
            let code: String =
                code.lines().map(|l| l.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n");
            out.insert(parts.join("::"), code);
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    walk(&root, &root, &mut out);
    out
}

/// The identifiers of a path that starts at `at` in `code` (`a::b::{c, d}` gives `a::b::c`,
/// `a::b::d`).
fn paths_after(code: &str, at: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in code.match_indices(at) {
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[i + at.len()..];
        let path: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
        let path = path.trim_end_matches(':').to_owned();
        if let Some(group) = rest[path.len()..].strip_prefix("::{").or_else(|| rest[path.len()..].strip_prefix('{')) {
            let group = group.split('}').next().unwrap_or_default();
            for item in group.split(',') {
                let item = item.trim().split([' ', ':']).next().unwrap_or_default();
                if !item.is_empty() {
                    out.push(if path.is_empty() { item.to_owned() } else { format!("{path}::{item}") });
                }
            }
        } else if !path.is_empty() {
            out.push(path);
        }
    }
    out
}

/// Which modules each module imports (`crate::…` and `super::…`, resolved to the longest
/// existing module; a module's own children and parents do not count).
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules();
    let resolve = |path: &str| -> Option<String> {
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len()).rev().map(|n| parts[..n].join("::")).find(|m| mods.contains_key(m))
    };
    let mut graph = BTreeMap::new();
    for (name, code) in &mods {
        let parent: Vec<&str> = name.split("::").filter(|s| !s.is_empty()).collect();
        let parent = parent[..parent.len().saturating_sub(1)].join("::");
        let mut deps = BTreeSet::new();
        let candidates = paths_after(code, "crate::").into_iter().chain(
            paths_after(code, "super::")
                .into_iter()
                .map(|p| if parent.is_empty() { p } else { format!("{parent}::{p}") }),
        );
        for target in candidates.filter_map(|p| resolve(&p)) {
            let related = target == *name
                || name.starts_with(&format!("{target}::"))
                || target.starts_with(&format!("{name}::"))
                || target.is_empty();
            if !related {
                deps.insert(target);
            }
        }
        graph.insert(name.clone(), deps);
    }
    graph
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap_or_default()
}

#[test]
fn every_top_level_module_is_a_service_a_role_or_a_floor() {
    for name in modules().keys().filter(|m| !m.is_empty() && !m.contains("::")) {
        let known = [ROLES, SERVICES, FLOORS].iter().any(|group| group.contains(&name.as_str())) || name == "layout";
        assert!(known, "{name}: say in layout.rs (and lib.rs's Layout) whether it is a service, a role or a floor");
    }
}

#[test]
fn no_service_imports_a_role_and_no_floor_imports_either() {
    let mut wrong = Vec::new();
    for (from, deps) in imports() {
        for to in deps {
            let (f, t) = (top(&from), top(&to));
            if SERVICES.contains(&f) && ROLES.contains(&t) {
                wrong.push(format!("service {from} imports role {to}"));
            }
            if FLOORS.contains(&f) && (ROLES.contains(&t) || SERVICES.contains(&t)) {
                wrong.push(format!("floor {from} imports {to}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn no_two_files_import_each_other_however_indirectly() {
    let graph = imports();
    // Depth-first search for a back edge, reporting the cycle it closes.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_owned(), 1);
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = stack.iter().position(|s| s == next).unwrap_or(0);
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(next, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0
            && let Some(cycle) = visit(node, &graph, &mut state, &mut Vec::new())
        {
            panic!("import loop: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_checker_sees_imports_through_crate_and_super_paths() {
    let graph = imports();
    assert!(graph["api::gateway"].contains("http"), "{:?}", graph["api::gateway"]);
    assert!(graph["attendance::handler"].contains("consumer"), "{:?}", graph["attendance::handler"]);
    assert!(graph["course::enrollments"].contains("course::record"), "{:?}", graph["course::enrollments"]);
}
