//! Crash torture: `kup apply` killed with SIGKILL at random instants (seeded), then run
//! again until it converges, for EKS (rolling and blue/green), GKE and AKS. After every
//! seed the simulator's own records are checked:
//!
//! - the final versions are the target;
//! - no cloud mutation was accepted twice for one step (one accepted mutation per
//!   provider step of the plan; resends were replays);
//! - no pod was lost with a deleted node or node group, and no PodDisruptionBudget was
//!   ever broken (the simulator's Kubernetes audit);
//! - after every kill the state file parses and its serial never goes down;
//! - the killed run's lock never stops the next apply (the kernel drops a dead holder's
//!   `flock`; the next apply takes it over).
//!
//! 13 seeds per scenario, 52 in all, run in CI. `KUP_TORTURE_SEEDS=200` runs more;
//! `KUP_TORTURE_SEED=N` runs one (a failure prints its seed).

use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

/// A small deterministic generator (xorshift64*): the kill times of a seed repeat.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// An upgrade with PDB-protected workloads, shared with the fault matrix (`faults.rs`).
pub(crate) struct Scenario {
    pub name: &'static str,
    pub world: &'static str,
    /// The whole configuration (provider block and cluster).
    pub config: fn(&Sim) -> String,
    /// Clusters and their Kubernetes audits to check.
    pub clusters: &'static [&'static str],
    /// (cluster, target control-plane minor) checked in the final world.
    pub target: (&'static str, &'static str),
    /// Real milliseconds an uninterrupted apply takes, about: kills land within it.
    span_ms: u64,
    pub speed: f64,
}

const EKS_WORLD: &str = r#"
cluster "prod-eu" {
  region  = "eu-west-1"
  version = "1.28"
  node_group "general" {
    version         = "1.28"
    min_size        = 2
    max_size        = 6
    desired_size    = 3
    max_unavailable = 1
  }
  node_group "payments" {
    version         = "1.28"
    min_size        = 1
    max_size        = 4
    desired_size    = 2
    max_unavailable = 1
  }
  addon "kube-proxy" { version = "v1.28.4-eksbuild.1" }
  workload "web" {
    namespace = "shop"
    replicas  = 4
    cpu       = "200m"
    memory    = "256Mi"
    pdb { min_available = 3 }
  }
  workload "ledger" {
    namespace  = "pay"
    kind       = "StatefulSet"
    replicas   = 2
    cpu        = "200m"
    memory     = "256Mi"
    pdb { max_unavailable = 1 }
  }
}
"#;

fn eks_provider(sim: &Sim) -> String {
    format!(
        "provider \"eks\" {{\n  region        = \"eu-west-1\"\n  endpoint      = \"{}\"\n  simulate      = true\n  speed         = {}\n  poll_interval = \"20ms\"\n}}\n",
        sim.eks, sim.speed
    )
}

fn eks_rolling(sim: &Sim) -> String {
    format!(
        r#"{}
cluster "prod" {{
  name    = "prod-eu"
  version = "1.30"
  addon "kube-proxy" {{ version = "compatible" }}
  node_group "general" {{
    version         = "1.30"
    max_unavailable = 1
  }}
  node_group "payments" {{
    version         = "1.30"
    max_unavailable = 1
  }}
}}
"#,
        eks_provider(sim)
    )
}

fn eks_blue_green(sim: &Sim) -> String {
    format!(
        r#"{}
cluster "prod" {{
  name    = "prod-eu"
  version = "1.29"
  addon "kube-proxy" {{ version = "compatible" }}
  node_group "general" {{
    version         = "1.29"
    max_unavailable = 1
  }}
  node_group "payments" {{
    version         = "1.29"
    strategy        = "blue_green"
    max_unavailable = 1
    blue_green {{
      soak = "5m"
    }}
    drain {{
      timeout = "10m"
    }}
  }}
}}
"#,
        eks_provider(sim)
    )
}

const GKE_WORLD: &str = r#"
gke_cluster "shop" {
  project  = "shop-prod"
  location = "europe-west1-b"
  version  = "1.29.8-gke.1031000"
  node_pool "default" {
    version         = "1.29.8-gke.1031000"
    node_count      = 3
    machine_type    = "e2-standard-4"
    max_surge       = 1
    max_unavailable = 0
  }
  workload "storefront" {
    namespace = "shop"
    replicas  = 4
    cpu       = "200m"
    memory    = "256Mi"
    pdb { min_available = 3 }
  }
}
"#;

fn gke(sim: &Sim) -> String {
    format!(
        r#"provider "gke" {{
  project       = "shop-prod"
  location      = "europe-west1-b"
  endpoint      = "{}"
  simulate      = true
  speed         = {}
  poll_interval = "20ms"
}}

cluster "shop" {{
  version = "1.31"
  node_group "default" {{
    version         = "1.31"
    max_unavailable = 0
    max_surge       = 1
  }}
}}
"#,
        sim.eks, sim.speed
    )
}

const AKS_WORLD: &str = r#"
aks_cluster "checkout" {
  resource_group = "rg-prod"
  version        = "1.29.9"
  agent_pool "system" {
    mode      = "System"
    version   = "1.29.9"
    count     = 2
    max_surge = "1"
  }
  agent_pool "apps" {
    mode            = "User"
    version         = "1.29.9"
    count           = 3
    max_surge       = "1"
    max_unavailable = "0"
  }
  workload "cart" {
    namespace  = "shop"
    replicas   = 4
    cpu        = "200m"
    memory     = "256Mi"
    node_group = "apps"
    pdb { min_available = 3 }
  }
}
"#;

fn aks(sim: &Sim) -> String {
    format!(
        r#"provider "aks" {{
  subscription_id = "00000000-0000-0000-0000-000000000001"
  resource_group  = "rg-prod"
  endpoint        = "{}"
  simulate        = true
  speed           = {}
  poll_interval   = "20ms"
}}

cluster "checkout" {{
  version = "1.31"
  node_group "system" {{
    version   = "1.31"
    max_surge = 1
  }}
  node_group "apps" {{
    version         = "1.31"
    max_unavailable = 0
    max_surge       = 1
  }}
}}
"#,
        sim.eks, sim.speed
    )
}

pub(crate) const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "eks-rolling",
        world: EKS_WORLD,
        config: eks_rolling,
        clusters: &["prod-eu"],
        target: ("prod-eu", "1.30"),
        span_ms: 2500,
        speed: 1500.0,
    },
    Scenario {
        name: "eks-blue-green",
        world: EKS_WORLD,
        config: eks_blue_green,
        clusters: &["prod-eu"],
        target: ("prod-eu", "1.29"),
        span_ms: 2500,
        speed: 1500.0,
    },
    Scenario {
        name: "gke-surge",
        world: GKE_WORLD,
        config: gke,
        clusters: &["shop"],
        target: ("shop", "1.31"),
        span_ms: 2500,
        speed: 1500.0,
    },
    Scenario {
        name: "aks-surge",
        world: AKS_WORLD,
        config: aks,
        clusters: &["checkout"],
        target: ("checkout", "1.31"),
        span_ms: 2500,
        speed: 1500.0,
    },
];

fn seeds() -> Vec<u64> {
    if let Some(one) = std::env::var("KUP_TORTURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![one];
    }
    let n: u64 = std::env::var("KUP_TORTURE_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(13);
    (1..=n).collect()
}

/// The control-plane minor a world reports for `cluster`, whatever its provider.
pub(crate) fn minor_of(world: &Value, cluster: &str) -> String {
    for (section, field) in [
        ("cluster", "version"),
        ("gke_cluster", "version"),
        ("aks_cluster", "version"),
    ] {
        if let Some(v) = world[section][cluster][field].as_str() {
            let mut parts = v.split(['.', '-']);
            return format!(
                "{}.{}",
                parts.next().unwrap_or(""),
                parts.next().unwrap_or("")
            );
        }
    }
    panic!("{cluster} is not in the world: {world:#}")
}

fn state_serial(dir: &std::path::Path) -> Option<u64> {
    let p = state_path(dir);
    match kup_engine::state::StateFile::load(&p) {
        Ok(s) => s.map(|s| s.serial),
        Err(e) => panic!("the state does not load after a kill: {e}"),
    }
}

/// How many steps of the plan for the configuration in `d` are cloud operations.
pub(crate) fn provider_steps(d: &str, ctx: &str) -> usize {
    let planned = kup(&["plan", "-json", d]);
    assert_eq!(planned.code, 0, "{ctx}: {planned:?}");
    let saved: kup_engine::plan::SavedPlan =
        serde_json::from_str(planned.stdout.lines().last().unwrap()).unwrap();
    saved
        .plan
        .steps
        .iter()
        .filter(|st| !st.action.is_in_cluster())
        .count()
}

/// The target reached, one accepted cloud mutation per provider step (every resend was a
/// replay), no pod lost and no budget broken.
pub(crate) fn assert_upgraded_once_nothing_lost(
    s: &Scenario,
    sim: &Sim,
    provider_steps: usize,
    ctx: &str,
) {
    let world = sim.world_json();
    assert_eq!(minor_of(&world, s.target.0), s.target.1, "{ctx}");
    // One accepted mutation per provider step of the plan: every resend after a kill
    // was recognised as a replay.
    let mutations = sim.mutations();
    assert_eq!(
        mutations.len(),
        provider_steps,
        "{ctx}: accepted mutations {:#?}",
        mutations
            .iter()
            .map(|m| format!("{} {} {}", m["op"], m["nodegroup"], m["addon"]))
            .collect::<Vec<_>>()
    );
    for c in s.clusters {
        let audit = get_json(&format!("{}/kube/{c}/audit", sim.admin));
        assert_eq!(
            audit["lost_pods"],
            serde_json::json!([]),
            "{ctx}: pods lost: {audit:#}"
        );
        for (pdb, a) in audit["pdbs"].as_object().into_iter().flatten() {
            assert_eq!(
                a["violated"], false,
                "{ctx}: budget {pdb} broken: {audit:#}"
            );
        }
    }
}

/// Returns how many kills landed while the apply was still running.
fn torture(s: &Scenario, seed: u64) -> u64 {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), s.world, s.speed, None);
    let dir = tmp.path().join("config");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.kup.hcl"), (s.config)(&sim)).unwrap();
    let d = dir.to_str().unwrap();
    let ctx = format!("scenario {} seed {seed}", s.name);

    let provider_steps = provider_steps(d, &ctx);

    let mut rng = Rng::new(seed);
    let kills = 1 + rng.below(3);
    let mut serial = 0;
    let mut landed = 0;
    for k in 0..kills {
        let mut child = spawn_kup(&["apply", "-auto-approve", d]);
        let delay = 30 + rng.below(s.span_ms);
        let deadline = std::time::Instant::now() + Duration::from_millis(delay);
        let mut finished = false;
        while std::time::Instant::now() < deadline {
            if child.try_wait().map(|st| st.is_some()).unwrap_or(true) {
                finished = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if !finished {
            landed += 1;
            // SAFETY: plain kill(2) of our own child.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
            }
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("the state is locked"),
            "{ctx}: kill {k}: a dead holder's lock stopped the apply: {stderr}"
        );
        if let Some(now) = state_serial(&dir) {
            assert!(
                now >= serial,
                "{ctx}: the state's serial went from {serial} to {now}"
            );
            serial = now;
        }
    }

    // Then apply until it converges (a resumed run finishes what it started; the next
    // one plans what is left).
    let mut converged = false;
    for _ in 0..4 {
        let run = kup(&["apply", "-auto-approve", d]);
        assert_eq!(run.code, 0, "{ctx}: {run:?}");
        if let Some(now) = state_serial(&dir) {
            assert!(now >= serial, "{ctx}: serial {serial} → {now}");
            serial = now;
        }
        if run.stdout.contains("No changes.") {
            converged = true;
            break;
        }
    }
    assert!(converged, "{ctx}: apply did not converge");

    assert_upgraded_once_nothing_lost(s, &sim, provider_steps, &ctx);
    landed
}

/// Every seed of a scenario; most kills must land mid-apply, or the test tests nothing.
fn run_scenario(s: &Scenario, base: u64) {
    let seeds = seeds();
    let landed: u64 = seeds.iter().map(|seed| torture(s, base + seed)).sum();
    assert!(
        landed * 2 >= seeds.len() as u64,
        "{}: only {landed} kills over {} seeds landed while apply ran; lower span_ms",
        s.name,
        seeds.len()
    );
}

#[test]
fn sigkill_at_random_instants_then_converge_eks_rolling() {
    run_scenario(&SCENARIOS[0], 0);
}

#[test]
fn sigkill_at_random_instants_then_converge_eks_blue_green() {
    run_scenario(&SCENARIOS[1], 1000);
}

#[cfg(feature = "gke")]
#[test]
fn sigkill_at_random_instants_then_converge_gke() {
    run_scenario(&SCENARIOS[2], 2000);
}

#[cfg(feature = "aks")]
#[test]
fn sigkill_at_random_instants_then_converge_aks() {
    run_scenario(&SCENARIOS[3], 3000);
}
