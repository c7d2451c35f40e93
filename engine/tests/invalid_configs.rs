//! A corpus of invalid configurations (`tests/invalid/NAME.kup.hcl`), each with the exact
//! diagnostics kup must give (`tests/invalid/NAME.expected`: one `file:line:col: severity:
//! summary` line per diagnostic, then its hint). Run with `KUP_UPDATE_GOLDEN=1` to write
//! the expected files after an intended change, and read the diff.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use kup_engine::config::{load_dir, LoadOptions};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid")
}

/// What a case's diagnostics say, one line each.
fn describe(case: &Path) -> String {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(case, tmp.path().join("main.kup.hcl")).unwrap();
    let diags = match load_dir(tmp.path(), &LoadOptions::default()) {
        Ok(_) => return "valid (expected a diagnostic)\n".into(),
        Err(d) => d,
    };
    let mut out = String::new();
    for d in &diags.0 {
        let at = match &d.loc {
            Some(l) => format!(
                "{}:{}:{}",
                Path::new(&l.file)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                l.line,
                l.col
            ),
            None => "-".into(),
        };
        let severity = format!("{:?}", d.severity).to_lowercase();
        let _ = writeln!(out, "{at}: {severity}: {}", d.summary);
        if let Some(h) = &d.hint {
            let _ = writeln!(out, "  hint: {h}");
        }
    }
    out
}

#[test]
fn every_invalid_configuration_gives_its_exact_diagnostics() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(corpus())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".kup.hcl"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "the corpus has {} cases", cases.len());
    let update = std::env::var_os("KUP_UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy();
        let expected_path = case.with_file_name(name.replace(".kup.hcl", ".expected"));
        let got = describe(case);
        if !got.lines().next().is_some_and(|l| l.contains(": error: ")) {
            failures.push(format!("{name}: not an error:\n{got}"));
            continue;
        }
        if update {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if want != got {
            failures.push(format!("{name}:\n--- expected\n{want}--- got\n{got}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) differ (KUP_UPDATE_GOLDEN=1 rewrites the expected files):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
