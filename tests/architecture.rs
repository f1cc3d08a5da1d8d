//! The architecture's checkable rules about files: within `actors/` and within `sim/`, files
//! import each other in one direction only (no cycles), so that each piece can be read, tested
//! and replaced (the TCP transport is one more implementation of `actors/src/transport.rs`, not
//! an edit of the leader).
//!
//! A file's dependencies are the modules it names as `crate::<module>` (in `use` items or in
//! paths), read from the source text. `.ci/run` checks the crate-level rule (`roundtable-actors`
//! does not depend on `roundtable-sim`) with `cargo tree`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module name → the crate modules its file names.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    collect(src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|(name, _)| name.clone()).collect();
    let mut graph = BTreeMap::new();
    for (name, text) in &files {
        let mut deps = BTreeSet::new();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            let module: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            // `crate::{a, b}` groups: every module named inside the braces.
            if let Some(group) = rest.strip_prefix('{') {
                let group = group.split('}').next().unwrap_or("");
                for item in group.split(',') {
                    let m = item.trim().split("::").next().unwrap_or("").trim().to_owned();
                    if modules.contains(&m) && &m != name {
                        deps.insert(m);
                    }
                }
            } else if modules.contains(&module) && &module != name {
                deps.insert(module);
            }
        }
        graph.insert(name.clone(), deps);
    }
    graph
}

/// `(module name, text)` of every `.rs` file under `dir`; `foo/mod.rs` and `foo/*.rs` count as
/// module `foo`, `lib.rs` is left out (it only declares and re-exports).
fn collect(dir: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).expect("source directory").flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("").to_owned();
        if path.is_dir() {
            let mut inner = Vec::new();
            collect(&path, &mut inner);
            let text: String = inner.into_iter().map(|(_, t)| t).collect::<Vec<_>>().join("\n");
            out.push((stem, text));
        } else if path.extension().is_some_and(|e| e == "rs") && stem != "lib" {
            out.push((stem, std::fs::read_to_string(&path).expect("readable source")));
        }
    }
}

/// A cycle in `graph`, if there is one, as the modules along it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

fn assert_acyclic(crate_dir: &str) {
    // This crate is `tests/`, beside `actors/` and `sim/`.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(crate_dir).join("src");
    let graph = module_graph(&src);
    assert!(graph.len() >= 3, "read the modules of {crate_dir}: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("{crate_dir}: files import each other in a circle: {}", cycle.join(" → "));
    }
}

#[test]
fn the_files_of_actors_import_each_other_in_one_direction() {
    assert_acyclic("actors");
}

#[test]
fn the_files_of_sim_import_each_other_in_one_direction() {
    assert_acyclic("sim");
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("leader", &["network"][..]),
        ("network", &["supervisor"][..]),
        ("supervisor", &["leader"][..]),
        ("cluster", &["leader"][..]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
    .collect();
    assert_eq!(find_cycle(&graph), Some(vec!["leader".into(), "network".into(), "supervisor".into(), "leader".into()]));
}
