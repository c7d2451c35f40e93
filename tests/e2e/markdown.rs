//! `kup plan -markdown` / `kup show -markdown`: golden files. `KUP_UPDATE_GOLDEN=1 cargo test
//! --test e2e markdown` rewrites them after an intended change (review the diff).

use std::path::Path;

use crate::harness::*;

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("KUP_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with KUP_UPDATE_GOLDEN=1 cargo test --test e2e markdown",
            path.display()
        )
    });
    if want != actual {
        let diff = similar::TextDiff::from_lines(&want, actual)
            .unified_diff()
            .header("golden", "now")
            .to_string();
        panic!(
            "{} differs from the output (KUP_UPDATE_GOLDEN=1 rewrites it):\n{diff}",
            path.display()
        );
    }
}

/// The quickstart's plan as a pull-request comment, from the plan and from the saved plan:
/// the same bytes both ways and on every run.
#[test]
fn the_quickstart_plan_as_markdown_matches_its_golden_file() {
    let tmp = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    for f in ["main.kup.hcl", "world.hcl"] {
        std::fs::copy(examples.join(f), tmp.path().join(f)).unwrap();
    }
    let d = tmp.path().to_str().unwrap();
    let plan_file = tmp.path().join("plan.kupplan");
    let out = kup_env(
        &[("KUP_TODAY", "2026-11-23")],
        &["plan", "-markdown", "-out", plan_file.to_str().unwrap(), d],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let shown = kup(&["show", "-markdown", plan_file.to_str().unwrap()]);
    assert_eq!(shown.code, 0, "{shown:?}");
    assert_eq!(
        out.stdout, shown.stdout,
        "plan -markdown and show -markdown agree"
    );
    // The pointer to the whole plan names the file; the golden file names it `plan.kupplan`.
    let normalised = shown
        .stdout
        .replace(plan_file.to_str().unwrap(), "plan.kupplan");
    golden("quickstart-plan.md", &normalised);
    let again = kup_env(&[("KUP_TODAY", "2026-11-23")], &["plan", "-markdown", d]);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(
        again.stdout.replace(d, "DIR"),
        out.stdout.replace(plan_file.to_str().unwrap(), "DIR"),
        "the same plan twice gives the same bytes"
    );
}

#[test]
fn a_bad_kup_today_is_an_error_that_says_the_format() {
    let tmp = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    for f in ["main.kup.hcl", "world.hcl"] {
        std::fs::copy(examples.join(f), tmp.path().join(f)).unwrap();
    }
    let run = kup_env(
        &[("KUP_TODAY", "23/11/2026")],
        &["plan", tmp.path().to_str().unwrap()],
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.all().contains("KUP_TODAY=23/11/2026 is not a date"),
        "{run:?}"
    );
}
