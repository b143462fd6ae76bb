//! The import order of `src/`: the README's layout section lists the
//! top-level modules in layers, bottom first, and a module may import only
//! from layers below its own. This test reads every `crate::` path in the
//! library's non-test code and fails on one that points sideways or up, so
//! an import cycle or an upward arrow cannot come back unnoticed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const BEGIN: &str = "<!-- layers -->";
const END: &str = "<!-- /layers -->";

/// The layers as the README states them: module name -> layer (0 lowest).
fn layers() -> BTreeMap<String, usize> {
    let readme = fs::read_to_string(root().join("README.md")).expect("README.md");
    let start = readme.find(BEGIN).expect("the README marks its layers") + BEGIN.len();
    let end = readme[start..].find(END).expect("the layers block ends") + start;
    let mut out = BTreeMap::new();
    let rows = readme[start..end]
        .lines()
        .filter(|l| l.starts_with('|'))
        .skip(2); // header and separator
    for (n, row) in rows.enumerate() {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let modules = cells.get(1).copied().unwrap_or_default();
        for m in modules.split(',') {
            let m = m.trim().trim_matches('`');
            assert!(!m.is_empty(), "README layer row {n}: {row}");
            assert!(out.insert(m.to_string(), n).is_none(), "{m} listed twice");
        }
    }
    out
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).expect("readable src") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without its unit tests and comments: test modules
/// may reach anywhere.
fn code_of(path: &Path) -> String {
    let text = fs::read_to_string(path).expect("readable source");
    // The first `#[cfg(test)]` whose item (after any other attributes) is a
    // module: the unit tests, to the end of the file by convention.
    let mut end = text.len();
    let mut from = 0;
    while let Some(i) = text[from..].find("#[cfg(test)]") {
        let at = from + i;
        let item = text[at..]
            .lines()
            .skip(1)
            .map(str::trim_start)
            .find(|l| !l.starts_with("#["))
            .unwrap_or_default();
        if item.starts_with("mod ")
            || item.starts_with("pub mod ")
            || item.starts_with("pub(crate) mod ")
        {
            end = at;
            break;
        }
        from = at + 1;
    }
    let text = &text[..end];
    text.lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `crate::name` paths in `code`, as the top-level module names they reach.
/// A `use crate::{a, b::c}` group counts each.
fn reached(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `bulkhead_crate::`, not ours
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            // Top-level names in the group (the first segment of each item).
            let mut depth = 0;
            let mut item = String::new();
            for c in group[..end].chars().chain([',']) {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        let name: String = item
                            .trim()
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        if !name.is_empty() {
                            out.insert(name);
                        }
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(c);
                }
            }
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        out.insert(name);
    }
    out
}

#[test]
fn every_import_points_down_the_layers() {
    let layers = layers();
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut modules = BTreeSet::new();
    let mut wrong = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).expect("under src");
        let first = rel.components().next().expect("a component");
        let top = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if matches!(top.as_str(), "lib" | "main" | "bin") {
            continue;
        }
        if rel.file_name().is_some_and(|n| n == "tests.rs")
            || rel.components().any(|c| c.as_os_str() == "tests")
        {
            continue;
        }
        modules.insert(top.clone());
        let Some(&mine) = layers.get(&top) else {
            continue; // reported below
        };
        for to in reached(&code_of(f)) {
            if to == top || to == "self" || to == "super" {
                continue;
            }
            match layers.get(&to) {
                Some(&theirs) if theirs < mine => {}
                Some(&theirs) => wrong.push(format!(
                    "{} imports crate::{to} (layer {theirs}), not below {top} (layer {mine})",
                    rel.display()
                )),
                None => wrong.push(format!("{}: crate::{to} has no layer", rel.display())),
            }
        }
    }
    let listed: BTreeSet<String> = layers.keys().cloned().collect();
    let unlisted: Vec<_> = modules.difference(&listed).collect();
    let gone: Vec<_> = listed.difference(&modules).collect();
    assert!(
        unlisted.is_empty(),
        "modules with no layer in the README: {unlisted:?}"
    );
    assert!(
        gone.is_empty(),
        "the README lists modules src/ does not have: {gone:?}"
    );
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn reached_reads_paths_and_groups() {
    let code = "use crate::config::{self, Service};\nuse crate::{error::Code, time::Mono};\n\
                let x = crate::cgroup::write(a); let y = bulkhead_crate::z;";
    let got: Vec<String> = reached(code).into_iter().collect();
    assert_eq!(got, ["cgroup", "config", "error", "time"]);
}
