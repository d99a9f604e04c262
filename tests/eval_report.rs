//! The evaluation report (docs/eval.md) states what `tools/eval.py` computes
//! from the committed runs, not numbers typed by hand: rebuilding the tables
//! from each committed `runs.jsonl.gz` gives the committed `results.md` byte
//! for byte, and the report's main table is that file's.
//!
//! Needs `python3` (standard library only), as the rest of the test suite's
//! trainer steps do.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{root, scratch_dir};

/// The current evaluation's output directories (grid, stride study).
const CURRENT: [&str; 2] = ["docs/eval/eval24-s10", "docs/eval/eval24-s10/strides"];

/// `tools/eval.py --from-runs` over `dir/runs.jsonl.gz` into a scratch directory.
fn rebuild(dir: &Path, name: &str) -> PathBuf {
    let out = scratch_dir("mainstream-eval-report", name);
    let run = Command::new("python3")
        .arg(root().join("tools/eval.py"))
        .arg("--from-runs")
        .arg(dir.join("runs.jsonl.gz"))
        .arg("--out")
        .arg(&out)
        .output()
        .expect("python3 runs tools/eval.py");
    assert!(
        run.status.success(),
        "tools/eval.py --from-runs {}: {}",
        dir.display(),
        String::from_utf8_lossy(&run.stderr)
    );
    out
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn committed_results_rebuild_from_the_committed_runs() {
    for (k, dir) in CURRENT.iter().enumerate() {
        let dir = root().join(dir);
        let out = rebuild(&dir, &format!("results{k}"));
        let want = read(&dir.join("results.md"));
        let got = read(&out.join("results.md"));
        assert!(
            got == want,
            "{}/results.md is not what tools/eval.py --from-runs makes of its runs.jsonl.gz \
             (diff it against {}/results.md)",
            dir.display(),
            out.display()
        );
        let _ = std::fs::remove_dir_all(&out);
    }
}

#[test]
fn the_reports_main_table_is_the_tools_output() {
    let results = read(&root().join(CURRENT[0]).join("results.md"));
    let report = read(&root().join("docs/eval.md"));
    // The main table: header, rule and one row per (N, budget).
    let table: Vec<&str> = results
        .split("### Mainstream against the baselines")
        .nth(1)
        .expect("results.md has the main table")
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert!(table.len() > 2, "main table has rows: {table:?}");
    for row in &table {
        assert!(
            report.lines().any(|l| l == *row),
            "docs/eval.md does not state this row of {}/results.md:\n{row}",
            CURRENT[0]
        );
    }
}

/// Issue 22's harness (tools/eval_protocol.py): its units are the committed
/// draw of docs/eval-protocol.md's table, and its verdicts follow the
/// protocol's rules (tools/test_eval_protocol.py).
#[test]
fn the_protocol_harness_draws_the_registered_units_and_judges_by_the_protocols_rules() {
    let run = Command::new("python3")
        .args(["-m", "unittest", "discover", "-s"])
        .arg(root().join("tools"))
        .args(["-p", "test_eval_protocol.py"])
        .output()
        .expect("python3 runs the harness's unit tests");
    assert!(
        run.status.success(),
        "tools/test_eval_protocol.py: {}",
        String::from_utf8_lossy(&run.stderr)
    );
}
