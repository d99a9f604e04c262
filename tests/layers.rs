//! The module graph in docs/architecture.md is the code's, and it points down.
//!
//! Reads every file under `src/` (code only: comments and `#[cfg(test)]`
//! parts left out), collects which top-level modules each top-level module
//! names through `crate::`, and checks it against the document: the graph
//! block must be exactly the code's (the failure message prints the block to
//! paste), every module must have a layer, and an edge to a module in a
//! higher layer must be one of the listed debts, each of which must still
//! exist. A new upward import therefore fails here until it is either removed
//! or written down where the team sees it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without its tests and comment lines.
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules a piece of code names as `crate::NAME` or inside
/// `crate::{NAME::..., NAME, ...}`.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Items at depth 0 of the brace group: their leading identifiers.
            let mut depth = 0usize;
            let mut item_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_ascii_alphabetic() || c == '_') && depth == 0 => {
                        out.insert(ident_at(&group[j..]).to_string());
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident_at(rest).to_string());
        }
    }
    out
}

/// Top-level module -> the other top-level modules its code names.
fn code_graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph = Graph::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let top = first.trim_end_matches(".rs").to_string();
        if top == "main" || top == "lib" {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(&f).unwrap());
        let deps = graph.entry(top.clone()).or_default();
        for m in named_modules(&code) {
            // Macros (err!, bail!) and types (Error, Result) re-exported at
            // the crate root are not modules.
            let module = m.starts_with(|c: char| c.is_ascii_lowercase());
            if module && m != top && m != "err" && m != "bail" {
                deps.insert(m);
            }
        }
    }
    graph
}

/// The lines of the fenced block that opens with "```NAME".
fn block<'a>(doc: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("```{name}");
    let mut lines = doc.lines().skip_while(|l| l.trim() != open);
    lines
        .next()
        .unwrap_or_else(|| panic!("docs/architecture.md has no {open} block"));
    lines
        .take_while(|l| l.trim() != "```")
        .filter(|l| !l.trim().is_empty())
        .collect()
}

fn render(graph: &Graph) -> String {
    graph
        .iter()
        .map(|(m, deps)| {
            let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
            format!("{m} -> {}", deps.join(" ")).trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_documented_module_graph_is_the_codes_and_points_down_but_for_its_listed_debts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let graph = code_graph(&root.join("src"));
    let doc = std::fs::read_to_string(root.join("docs/architecture.md")).unwrap();

    let documented = block(&doc, "graph").join("\n");
    let actual = render(&graph);
    assert_eq!(
        documented.trim(),
        actual,
        "docs/architecture.md's graph block is not the code's; the code's is:\n```graph\n{actual}\n```"
    );

    let mut layer: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, line) in block(&doc, "layers").iter().enumerate() {
        for m in line.split_whitespace() {
            assert!(layer.insert(m, i).is_none(), "{m} is in two layers");
        }
    }
    let debts: BTreeSet<(String, String)> = block(&doc, "debts")
        .iter()
        .map(|l| {
            let (edge, _why) = l.split_once(':').unwrap_or((l, ""));
            let (a, b) = edge
                .split_once("->")
                .unwrap_or_else(|| panic!("debt line {l:?} is not `a -> b: why`"));
            (a.trim().to_string(), b.trim().to_string())
        })
        .collect();

    let mut upward = BTreeSet::new();
    for (m, deps) in &graph {
        let lm = *layer.get(m.as_str()).unwrap_or_else(|| {
            panic!("module {m} has no layer in docs/architecture.md's layers block")
        });
        for d in deps {
            let ld = *layer
                .get(d.as_str())
                .unwrap_or_else(|| panic!("module {d} (named by {m}) has no layer"));
            if ld > lm {
                upward.insert((m.clone(), d.clone()));
            }
        }
    }
    let undocumented: Vec<_> = upward.difference(&debts).collect();
    assert!(
        undocumented.is_empty(),
        "imports of a module in a higher layer, not listed as debts: {undocumented:?}"
    );
    let paid: Vec<_> = debts.difference(&upward).collect();
    assert!(
        paid.is_empty(),
        "debts listed in docs/architecture.md that the code no longer has (remove them): {paid:?}"
    );
}

#[test]
fn imports_are_read_from_paths_and_brace_groups_but_not_comments_or_tests() {
    let code = code_of(
        "use crate::a::X;\nuse crate::{b::Y, c, d::{e, f}};\n// crate::g\nfn x() { crate::h::k(); }\n#[cfg(test)]\nmod tests { use crate::i; }\n",
    );
    let got: Vec<String> = named_modules(&code).into_iter().collect();
    assert_eq!(got, ["a", "b", "c", "d", "h"]);
}
