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

/// Generate from the simulated world, then check the round trip.
fn round_trip(args: &[&str], file: &str, from: &str, to: &str, label: &str) {
    let tmp = setup();
    let d = tmp.path().to_str().unwrap();
    let world = tmp.path().join("world.hcl");
    let mut full: Vec<&str> = vec!["generate"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-simulate", "-world", world.to_str().unwrap(), "-out", d]);
    let run = kup(&full);
    assert_eq!(run.code, 0, "{run:?}");
    check_round_trip(d, &tmp.path().join(file), from, to, label);
}

/// The generated file is formatted and valid and the first plan has nothing to do; a
/// version changed by hand in the cluster block is exactly the change the next plan
/// shows (node groups are pinned where they run).
fn check_round_trip(d: &str, path: &Path, from: &str, to: &str, label: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.starts_with("# Written by `kup generate"), "{text}");
    assert_eq!(kup(&["fmt", "-check", d]).code, 0, "{text}");
    assert_eq!(kup(&["validate", d]).code, 0, "{text}");
    let none = kup(&["plan", "-detailed-exitcode", d]);
    assert_eq!(
        none.code, 0,
        "the first plan has nothing to do:\n{text}\n{none:?}"
    );
    assert!(none.stdout.contains("No changes."), "{none:?}");

    // The cluster's own `version` line (two spaces in: not a node group's).
    let quoted = format!("\"{from}\"");
    let line = text
        .lines()
        .find(|l| l.starts_with("  version") && l.ends_with(&quoted))
        .unwrap_or_else(|| panic!("a cluster version {quoted} in\n{text}"))
        .to_string();
    let changed = text.replacen(&line, &line.replace(&quoted, &format!("\"{to}\"")), 1);
    std::fs::write(path, changed).unwrap();
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

#[cfg(feature = "k3s")]
#[test]
fn k3s_clusters_round_trip() {
    round_trip(
        &["-provider", "k3s", "-name", "edge"],
        "k3s.kup.hcl",
        "1.29.8+k3s1",
        "1.30.9+k3s1",
        "edge",
    );
}

/// kubeadm has no simulator mode of its own: kup reaches it through a kubeconfig, here
/// the one `kup sim serve` writes for its simulated kubeadm cluster.
#[cfg(feature = "kubeadm")]
#[test]
fn kubeadm_clusters_round_trip() {
    const WORLD: &str = r#"
kubeadm_cluster "lab" {
  version       = "1.29.8"
  control_plane = ["cp1", "cp2", "cp3"]
  workers       = ["w1", "w2"]
  packages = {
    "1.29" = ["1.29.8", "1.29.12"]
    "1.30" = ["1.30.5", "1.30.9"]
  }
}
"#;
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), WORLD, 600.0, None);
    let out = tmp.path().join("kup");
    let d = out.to_str().unwrap();
    let run = kup(&[
        "generate",
        "-provider",
        "kubeadm",
        "-kubeconfig",
        &sim.kubeconfigs["lab"],
        "-name",
        "lab",
        "-out",
        d,
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let path = out.join("kubeadm.kup.hcl");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("  control_plane {\n    hosts = [\"cp1\", \"cp2\", \"cp3\"]\n  }"),
        "{text}"
    );
    assert!(
        text.contains("node_selector = \"!node-role.kubernetes.io/control-plane\""),
        "{text}"
    );
    check_round_trip(d, &path, "1.29.8", "1.30.5", "lab");
    drop(sim);
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
    assert!(k3s.all().contains("give -kubeconfig FILE"), "{k3s:?}");
    let other = kup(&["generate", "-provider", "openstack", "-out", d]);
    assert_eq!(other.code, 1, "{other:?}");
    assert!(other.all().contains("eks, gke or aks"), "{other:?}");
}
