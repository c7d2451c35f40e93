//! `kup generate`: configuration written from what runs, for EKS, GKE and AKS in the
//! simulator. The first plan on it has nothing to do; a version changed in the file is
//! exactly the change the next plan shows.

use std::path::Path;

use serde_json::Value;

use crate::harness::*;

fn setup() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    std::fs::copy(examples.join("world.hcl"), tmp.path().join("world.hcl")).unwrap();
    tmp
}

fn plan_json(dir: &str) -> Value {
    let run = kup(&["plan", "-json", dir]);
    assert_eq!(run.code, 0, "{run:?}");
    serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap()
}

/// Generate, plan ("No changes"), then change one version and plan again.
fn round_trip(args: &[&str], file: &str, from: &str, to: &str, label: &str) {
    let tmp = setup();
    let d = tmp.path().to_str().unwrap();
    let world = tmp.path().join("world.hcl");
    let mut full: Vec<&str> = vec!["generate"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-simulate", "-world", world.to_str().unwrap(), "-out", d]);
    let run = kup(&full);
    assert_eq!(run.code, 0, "{run:?}");
    let path = tmp.path().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("# Written by `kup generate"), "{text}");
    // Formatted as kup fmt writes it, valid, and nothing to do.
    assert_eq!(kup(&["fmt", "-check", d]).code, 0, "{text}");
    assert_eq!(kup(&["validate", d]).code, 0, "{text}");
    let none = kup(&["plan", "-detailed-exitcode", d]);
    assert_eq!(
        none.code, 0,
        "{file}: the first plan has nothing to do:\n{text}\n{none:?}"
    );
    assert!(none.stdout.contains("No changes."), "{none:?}");

    // The cluster's version, changed by hand: the plan moves that cluster's control plane
    // and nothing that the file pins (node groups stay).
    let needle = format!("  version  = \"{from}\"\n");
    assert!(text.contains(&needle), "{needle:?} in\n{text}");
    std::fs::write(
        &path,
        text.replacen(&needle, &format!("  version  = \"{to}\"\n"), 1),
    )
    .unwrap();
    let p = plan_json(d);
    let changes = p["plan"]["clusters"][0]["changes"].as_array().unwrap();
    let address = format!("cluster.{label}");
    assert!(
        changes
            .iter()
            .any(|c| c["address"] == address.as_str() && c["attribute"] == "version"),
        "{changes:#?}"
    );
    assert!(
        changes
            .iter()
            .all(|c| !c["address"].as_str().unwrap().contains(".node_group.")),
        "node groups are pinned where they run: {changes:#?}"
    );
    let steps = p["plan"]["steps"].as_array().unwrap();
    assert!(!steps.is_empty());
    assert!(
        steps
            .iter()
            .any(|s| s["id"].as_str().unwrap().contains("/control_plane/")),
        "{steps:#?}"
    );
}

#[test]
fn eks_clusters_round_trip() {
    round_trip(
        &["-provider", "eks", "-region", "eu-west-1"],
        "eks.kup.hcl",
        "1.28",
        "1.29",
        "prod-eu",
    );
}

#[cfg(feature = "gke")]
#[test]
fn gke_clusters_round_trip() {
    round_trip(
        &[
            "-provider",
            "gke",
            "-project",
            "shop-prod",
            "-location",
            "europe-west1-b",
        ],
        "gke.kup.hcl",
        "1.29.8-gke.1031000",
        "1.30",
        "shop",
    );
}

#[cfg(feature = "aks")]
#[test]
fn aks_clusters_round_trip() {
    round_trip(
        &[
            "-provider",
            "aks",
            "-subscription-id",
            "00000000-0000-0000-0000-000000000001",
            "-resource-group",
            "rg-checkout",
        ],
        "aks.kup.hcl",
        "1.30.9",
        "1.31",
        "checkout",
    );
}

#[test]
fn generate_never_overwrites_without_force_and_names_what_it_cannot_list() {
    let tmp = setup();
    let d = tmp.path().to_str().unwrap();
    let world = tmp.path().join("world.hcl");
    let args = [
        "generate",
        "-provider",
        "eks",
        "-region",
        "eu-west-1",
        "-simulate",
        "-world",
        world.to_str().unwrap(),
        "-out",
        d,
    ];
    assert_eq!(kup(&args).code, 0);
    std::fs::write(tmp.path().join("eks.kup.hcl"), "# edited by hand\n").unwrap();
    let again = kup(&args);
    assert_eq!(again.code, 1, "{again:?}");
    assert!(
        again.all().contains("already exists") && again.all().contains("-force"),
        "{again:?}"
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("eks.kup.hcl")).unwrap(),
        "# edited by hand\n",
        "untouched"
    );
    let mut forced = args.to_vec();
    forced.push("-force");
    assert_eq!(kup(&forced).code, 0);

    let k3s = kup(&["generate", "-provider", "k3s", "-out", d]);
    assert_eq!(k3s.code, 1, "{k3s:?}");
    assert!(k3s.all().contains("examples/k3s/main.kup.hcl"), "{k3s:?}");
}
