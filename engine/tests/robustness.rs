//! Garbage in, diagnostics out: property tests over everything kup reads from a file a
//! person or a crash may have mangled — the configuration language, versions, saved
//! plans, the state and the journal. None of them may panic; errors must say where.
//!
//! Bounded for CI (`PROPTEST_CASES`, default 256 per property here); run longer with
//! e.g. `PROPTEST_CASES=20000 cargo test -p kup-engine --test robustness --release`.

use std::path::Path;

use kup_engine::config::{load_dir, LoadOptions};
use kup_engine::journal;
use kup_engine::plan::SavedPlan;
use kup_engine::state::StateFile;
use kup_engine::version::Version;
use proptest::prelude::*;

const FULL: &str = include_str!("../src/config/testdata/full.kup.hcl");
const WORLD: &str = include_str!("../src/config/testdata/world.hcl");

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        // Failures are reported with their input; no regression files in the tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Pieces of HCL that break parsers in interesting ways.
fn hcl_junk() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("}".to_string()),
        Just("{".to_string()),
        Just("\"".to_string()),
        Just("${".to_string()),
        Just("%{".to_string()),
        Just("<<EOF\n".to_string()),
        Just("\n".to_string()),
        Just("=".to_string()),
        Just("/*".to_string()),
        Just("#".to_string()),
        Just("[".to_string()),
        Just("é日".to_string()),
        Just("\u{0}".to_string()),
        Just("var.".to_string()),
        Just("1.".to_string()),
        "[ -~]{0,12}",
    ]
}

/// A configuration with `n` edits at random places: junk inserted, or text deleted.
fn mangled_config() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (any::<prop::sample::Index>(), hcl_junk(), any::<bool>()),
        1..6,
    )
    .prop_map(|edits| {
        let mut s = FULL.to_string();
        for (at, junk, delete) in edits {
            let boundaries: Vec<usize> =
                s.char_indices().map(|(i, _)| i).chain([s.len()]).collect();
            let i = boundaries[at.index(boundaries.len())];
            if delete {
                let end = boundaries
                    .iter()
                    .copied()
                    .find(|b| *b >= i + junk.len().max(1))
                    .unwrap_or(s.len());
                s.replace_range(i..end, "");
            } else {
                s.insert_str(i, &junk);
            }
        }
        s
    })
}

fn load(dir: &Path, text: &str) -> Result<(), kup_engine::config::Diagnostics> {
    std::fs::write(dir.join("main.kup.hcl"), text).unwrap();
    load_dir(dir, &LoadOptions::default()).map(|_| ())
}

proptest! {
    #![proptest_config(config())]

    /// A mangled configuration loads or fails with diagnostics whose locations are in
    /// the file: never a panic, never a position past its end.
    #[test]
    fn a_mangled_configuration_gives_diagnostics_not_a_panic(text in mangled_config()) {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("world.hcl"), WORLD).unwrap();
        if let Err(d) = load(tmp.path(), &text) {
            prop_assert!(!d.0.is_empty(), "an error says something");
            let lines = text.lines().count().max(1) + 1;
            for diag in &d.0 {
                prop_assert!(!diag.summary.is_empty());
                if let Some(loc) = &diag.loc {
                    if loc.file.ends_with("main.kup.hcl") {
                        prop_assert!(loc.line >= 1 && loc.line <= lines, "{diag:?} in {lines} lines");
                        prop_assert!(loc.col >= 1, "{diag:?}");
                    }
                }
            }
            let rendered = d.render(&[(tmp.path().join("main.kup.hcl"), text.clone())]);
            prop_assert!(!rendered.is_empty());
        }
        let _ = kup_engine::config::format_source(&text);
    }

    /// Any text at all, not only near-valid configuration.
    #[test]
    fn any_text_as_configuration_gives_diagnostics_not_a_panic(text in "\\PC{0,200}") {
        let tmp = tempfile::tempdir().unwrap();
        let _ = load(tmp.path(), &text);
        let _ = kup_engine::config::format_source(&text);
    }

    /// Versions: any string parses or is refused; what parses prints back to itself.
    #[test]
    fn versions_parse_or_are_refused_and_round_trip(s in "\\PC{0,24}") {
        if let Ok(v) = s.parse::<Version>() {
            let again: Version = v.to_string().parse().unwrap();
            prop_assert_eq!(v.to_string(), again.to_string());
        }
    }

    #[test]
    fn well_formed_versions_round_trip(minor in 0u32..100, patch in proptest::option::of(0u32..1000), suffix in "(-gke\\.[0-9]{1,7}|\\+k3s[0-9]|-eks-[a-f0-9]{7})?") {
        let text = match patch {
            Some(p) => format!("1.{minor}.{p}{suffix}"),
            None => format!("1.{minor}"),
        };
        let v: Version = text.parse().unwrap();
        prop_assert_eq!(v.minor, minor);
        prop_assert_eq!(v.to_string(), text);
    }

    /// The state file: any bytes load or are refused; none panics.
    #[test]
    fn any_bytes_as_state_load_or_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("kup.state.json");
        std::fs::write(&p, &bytes).unwrap();
        let _ = StateFile::load(&p);
    }

    /// A real state with bytes flipped: refused (parse or checksum) unless the edit
    /// happens to leave the content as it was.
    #[test]
    fn a_state_with_flipped_bytes_is_refused(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("kup.state.json");
        let mut s = StateFile::new();
        s.save(&p).unwrap();
        let original = std::fs::read(&p).unwrap();
        let mut bytes = original.clone();
        for (at, b) in flips {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        std::fs::write(&p, &bytes).unwrap();
        if let Ok(Some(loaded)) = StateFile::load(&p) {
            // Only whitespace or an equivalent spelling could survive.
            prop_assert_eq!(loaded.lineage, s.lineage);
            prop_assert_eq!(loaded.serial, s.serial);
        }
    }

    /// The journal: any lines replay or are refused; none panics.
    #[test]
    fn any_journal_replays_or_is_refused(lines in prop::collection::vec("\\PC{0,80}", 0..12)) {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("kup.state.json.journal");
        std::fs::write(&p, lines.join("\n")).unwrap();
        if let Ok(records) = journal::read(&p) {
            let _ = journal::unfinished_run(&records);
        }
    }

    /// A saved plan: any bytes are refused or verified; an edited plan never verifies.
    #[test]
    fn saved_plans_refuse_garbage_and_edits(bytes in prop::collection::vec(any::<u8>(), 0..300), at in any::<prop::sample::Index>(), b in any::<u8>()) {
        if let Ok(saved) = serde_json::from_slice::<SavedPlan>(&bytes) {
            let _ = saved.verify_integrity();
        }
        let plan = sample_plan();
        let mut text = serde_json::to_vec(&plan).unwrap();
        let i = at.index(text.len());
        let before = text[i];
        text[i] = b;
        if let Ok(edited) = serde_json::from_slice::<SavedPlan>(&text) {
            if before != b && serde_json::to_value(&edited).unwrap() != serde_json::to_value(&plan).unwrap() {
                prop_assert!(!edited.verify_integrity(), "an edit at byte {i} verified");
            }
        }
    }
}

/// A small sealed plan to edit.
fn sample_plan() -> SavedPlan {
    use kup_engine::plan::{Action, Plan, Step};
    let step = Step {
        id: "prod/control_plane/1.29".into(),
        cluster: "cluster.prod".into(),
        address: "cluster.prod".into(),
        action: Action::UpgradeControlPlane {
            from: "1.28".parse().unwrap(),
            to: "1.29".parse().unwrap(),
        },
        depends_on: Vec::new(),
        precondition: Vec::new(),
        postcondition: Vec::new(),
        estimated_secs: 600,
        reason: "one minor at a time".into(),
    };
    SavedPlan {
        kup_version: "0.1.0".into(),
        format_version: kup_engine::plan::PLAN_FORMAT_VERSION,
        created_at: "2026-11-23T10:00:00Z".into(),
        config_dir: "/work/infra".into(),
        config_hash: "abc".into(),
        state_fingerprints: Default::default(),
        desired: serde_json::from_value(serde_json::json!({
            "providers": [], "clusters": [], "variables": {}
        }))
        .unwrap_or_else(|e| panic!("a minimal Desired: {e}")),
        plan: Plan::new(Vec::new(), vec![step]),
        integrity: String::new(),
    }
    .seal()
}
