//! Crash torture: `kup apply` killed with SIGKILL at random instants (seeded), then run
//! again until it converges, for EKS (rolling and blue/green), GKE, AKS, K3s, RKE2 and
//! kubeadm. After every seed the simulator's own records are checked:
//!
//! - the final versions are the target;
//! - no pod was lost with a deleted node or node group, and no PodDisruptionBudget was
//!   ever broken (the simulator's Kubernetes audit);
//! - after every kill the state file parses and its serial never goes down;
//! - the killed run's lock never stops the next apply (the kernel drops a dead holder's
//!   `flock`; the next apply takes it over);
//! - and what each provider must never do twice:
//!   - cloud (EKS, GKE, AKS): one accepted mutation per provider step of the plan (every
//!     resend after a kill was recognised as a replay);
//!   - K3s/RKE2: each node upgraded by exactly one completed Job per round and no Job
//!     failed; kup's Plans written once per round (one create, one spec change per later
//!     round, one deletion at the end); servers before agents; never more nodes cordoned
//!     or applying than the Plan's concurrency;
//!   - kubeadm: `kubeadm upgrade apply` once per hop, on the first control-plane host;
//!     each host's kubelet restarted exactly once per release, and nothing run on a host
//!     for a release after its kubelet restarted at it; no skew-policy breach.
//!
//! Seeds per scenario in CI: 13 for each cloud scenario, 6 for K3s, 3 for RKE2, 3 for
//! kubeadm (which SKIPs without sshd). `KUP_TORTURE_SEEDS=40` runs that many for every
//! scenario; `KUP_TORTURE_SEED=N` runs one (a failure prints its seed).

use std::path::PathBuf;
use std::time::Duration;

use kup_engine::plan::SavedPlan;
use serde_json::{json, Value};

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

/// A running world, the configuration that upgrades it, and what must outlive the runs.
/// Fields drop in order: the hosts (holding SSH connections) before the simulator, both
/// before their directory.
pub(crate) struct Rig {
    _hosts: Option<Box<dyn std::any::Any>>,
    pub sim: Sim,
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
}

struct Scenario {
    name: &'static str,
    /// Starts the world at a speed and writes the configuration; `None`: skipped (a tool
    /// it needs is missing; it said why).
    start: fn(f64) -> Option<Rig>,
    /// The provider's own invariants, from the simulator's records after convergence.
    check: fn(&Rig, &SavedPlan, &str),
    /// Clusters whose Kubernetes audits (lost pods, budgets) are checked.
    clusters: &'static [&'static str],
    /// (cluster, target control-plane minor) checked in the final world.
    target: (&'static str, &'static str),
    /// Real milliseconds an uninterrupted apply takes, about: kills land within it.
    span_ms: u64,
    speed: f64,
    /// Seeds run in CI (`KUP_TORTURE_SEEDS` overrides).
    seeds: u64,
}

/// A cloud upgrade with PDB-protected workloads: the torture's cloud scenarios, and the
/// fault matrix's (`faults.rs`) subjects.
pub(crate) struct CloudUpgrade {
    pub name: &'static str,
    pub world: &'static str,
    /// The whole configuration (provider block and cluster).
    pub config: fn(&Sim) -> String,
    /// Clusters whose Kubernetes audits (lost pods, budgets) are checked.
    pub clusters: &'static [&'static str],
    /// (cluster, target control-plane minor) checked in the final world.
    pub target: (&'static str, &'static str),
    pub speed: f64,
}

/// The world of `c` served at `speed` with its configuration written.
fn cloud(c: &CloudUpgrade, speed: f64) -> Rig {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), c.world, speed, None);
    let dir = tmp.path().join("config");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.kup.hcl"), (c.config)(&sim)).unwrap();
    Rig {
        _hosts: None,
        sim,
        dir,
        _tmp: tmp,
    }
}

/// One accepted mutation per provider step of the plan: every resend after a kill was
/// recognised as a replay.
fn cloud_mutations_once(rig: &Rig, saved: &SavedPlan, ctx: &str) {
    assert_mutations_once(&rig.sim, provider_steps(saved), ctx);
}

/// Exactly `provider_steps` cloud mutations were accepted.
pub(crate) fn assert_mutations_once(sim: &Sim, provider_steps: usize, ctx: &str) {
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
}

/// No pod lost and no budget broken in any of `clusters` (the simulator's audit).
pub(crate) fn assert_nothing_lost(sim: &Sim, clusters: &[&str], ctx: &str) {
    for c in clusters {
        let audit = sim.kube_audit(c);
        assert_eq!(audit["lost_pods"], json!([]), "{ctx}: pods lost: {audit:#}");
        for (pdb, a) in audit["pdbs"].as_object().into_iter().flatten() {
            assert_eq!(
                a["violated"], false,
                "{ctx}: budget {pdb} broken: {audit:#}"
            );
        }
    }
}

/// The target reached, one accepted cloud mutation per provider step (every resend was a
/// replay), no pod lost and no budget broken.
pub(crate) fn assert_upgraded_once_nothing_lost(
    c: &CloudUpgrade,
    sim: &Sim,
    provider_steps: usize,
    ctx: &str,
) {
    assert_eq!(minor_of(&sim.world_json(), c.target.0), c.target.1, "{ctx}");
    assert_mutations_once(sim, provider_steps, ctx);
    assert_nothing_lost(sim, c.clusters, ctx);
}

/// How many steps of the plan for the configuration in `d` are cloud operations.
pub(crate) fn planned_provider_steps(d: &str, ctx: &str) -> usize {
    let planned = kup(&["plan", "-json", d]);
    assert_eq!(planned.code, 0, "{ctx}: {planned:?}");
    let saved: SavedPlan = serde_json::from_str(planned.stdout.lines().last().unwrap()).unwrap();
    provider_steps(&saved)
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

#[cfg(feature = "k3s")]
pub(crate) mod k3s_rig {
    use std::collections::BTreeMap;

    use super::*;

    /// 3 servers and 5 agents two minors behind (`crate::k3s`'s world): two rounds.
    pub fn start(dist: &str, speed: f64) -> Rig {
        let tmp = tempfile::tempdir().unwrap();
        let sim = Sim::start(
            tmp.path(),
            &crate::k3s::world(dist, crate::k3s::SUC),
            speed,
            None,
        );
        let dir = crate::k3s::config(tmp.path(), &sim, dist, r#"version = "1.31""#);
        Rig {
            _hosts: None,
            sim,
            dir: dir.into(),
            _tmp: tmp,
        }
    }

    /// Jobs, Plans, order and concurrency from the simulated controller's audit.
    pub fn check(rig: &Rig, suffix: &str, ctx: &str) {
        let rounds = ["v1.30.9", "v1.31.4"].map(|v| format!("{v}+{suffix}1"));
        let target = &rounds[1];
        let kubelets = rig.sim.kubelets("edge");
        assert!(
            kubelets.values().all(|v| v == target),
            "{ctx}: kubelets {kubelets:?}"
        );
        let a = rig.sim.kube_audit("edge");
        let text = a.to_string();
        // Each node upgraded by exactly one completed Job per round, none failed.
        let mut complete: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for j in a["jobs"].as_array().unwrap() {
            assert_ne!(j["outcome"], "Failed", "{ctx}: a Job failed: {j}");
            if j["outcome"] == "Complete" {
                complete
                    .entry((
                        j["node"].as_str().unwrap().into(),
                        j["version"].as_str().unwrap().into(),
                    ))
                    .or_default()
                    .push(j["name"].as_str().unwrap().into());
            }
        }
        for node in kubelets.keys() {
            for v in &rounds {
                let jobs = complete.get(&(node.clone(), v.clone()));
                assert_eq!(
                    jobs.map_or(0, Vec::len),
                    1,
                    "{ctx}: {node} at {v} was upgraded by {jobs:?}"
                );
            }
        }
        assert_eq!(
            complete.len(),
            kubelets.len() * rounds.len(),
            "{ctx}: {complete:#?}"
        );
        // Servers before agents; never more nodes cordoned or applying than concurrency.
        assert_eq!(
            a["agents_started_before_servers"],
            json!([]),
            "{ctx}: {text}"
        );
        for (plan, concurrency) in [("kup-servers", 1), ("kup-agents", 2)] {
            let p = &a["plans"][format!("system-upgrade/{plan}")];
            assert_eq!(p["jobs_failed"], 0, "{ctx}: {plan}: {text}");
            assert!(
                p["max_cordoned"].as_u64().unwrap() <= concurrency
                    && p["max_applying"].as_u64().unwrap() <= concurrency,
                "{ctx}: {plan} exceeded its concurrency {concurrency}: {p}"
            );
            assert_eq!(
                p["started_before_gate_complete"],
                json!([]),
                "{ctx}: {plan}: {text}"
            );
            // kup's Plan written once per round, and deleted once when all are done.
            let writes: Vec<(String, String)> = a["plan_writes"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|w| w["plan"] == format!("system-upgrade/{plan}"))
                .map(|w| {
                    (
                        w["op"].as_str().unwrap().to_string(),
                        w["version"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect();
            let want = [
                ("create", &rounds[0]),
                ("update", &rounds[1]),
                ("delete", &rounds[1]),
            ]
            .map(|(op, v)| (op.to_string(), v.clone()));
            assert_eq!(writes, want, "{ctx}: writes of Plan {plan}");
        }
        assert_eq!(
            a["plans"]["system-upgrade/kup-agents"]["gate"], "kup-servers",
            "{ctx}: {text}"
        );
    }
}

#[cfg(feature = "kubeadm")]
pub(crate) mod kubeadm_rig {
    use super::*;

    /// `crate::kubeadm`'s lab: 3 control-plane hosts and 3 workers behind real sshds, two
    /// minors behind.
    pub fn start(speed: f64) -> Option<Rig> {
        if !crate::kubeadm::sshd_or_skip("torture kubeadm") {
            return None;
        }
        let crate::kubeadm::Lab {
            hosts,
            sim,
            dir,
            _tmp,
        } = crate::kubeadm::lab(None, speed);
        Some(Rig {
            _hosts: Some(Box::new(hosts)),
            sim,
            dir: dir.into(),
            _tmp,
        })
    }

    /// Host operations from the simulator's record of what the hosts' kubeadm and
    /// systemctl did.
    pub fn check(rig: &Rig, ctx: &str) {
        let rounds = ["1.30.9", "1.31.4"];
        let kubelets = rig.sim.kubelets("lab");
        assert!(
            kubelets.values().all(|v| v == "v1.31.4"),
            "{ctx}: kubelets {kubelets:?}"
        );
        let effects = crate::kubeadm::effects(&rig.sim);
        let applies: Vec<(&str, &str)> = effects
            .iter()
            .filter(|(op, _, _)| op == "upgrade-apply")
            .map(|(_, node, v)| (node.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            applies,
            rounds.map(|v| ("cp1", v)),
            "{ctx}: kubeadm upgrade apply per hop: {effects:#?}"
        );
        for node in kubelets.keys() {
            for v in rounds {
                let on = |op: &str| {
                    effects
                        .iter()
                        .enumerate()
                        .filter(|(_, (o, n, ver))| o == op && n == node && ver == v)
                        .map(|(i, _)| i)
                        .collect::<Vec<_>>()
                };
                let restarts = on("kubelet-restart");
                assert_eq!(
                    restarts.len(),
                    1,
                    "{ctx}: kubelet of {node} restarted at {v} {} times: {effects:#?}",
                    restarts.len()
                );
                // Nothing moves a host again for a release once its kubelet runs it.
                let late: Vec<usize> = ["upgrade-node", "upgrade-apply"]
                    .into_iter()
                    .flat_map(on)
                    .filter(|i| *i > restarts[0])
                    .collect();
                assert!(
                    late.is_empty(),
                    "{ctx}: {node} upgraded again at {v} after its kubelet restarted: {effects:#?}"
                );
            }
        }
        let a = rig.sim.kube_audit("lab");
        assert_eq!(a["kubeadm_skew_violations"], json!(null), "{ctx}: {a}");
    }
}

pub(crate) const CLOUD: &[CloudUpgrade] = &[
    CloudUpgrade {
        name: "eks-rolling",
        world: EKS_WORLD,
        config: eks_rolling,
        clusters: &["prod-eu"],
        target: ("prod-eu", "1.30"),
        speed: 1500.0,
    },
    CloudUpgrade {
        name: "eks-blue-green",
        world: EKS_WORLD,
        config: eks_blue_green,
        clusters: &["prod-eu"],
        target: ("prod-eu", "1.29"),
        speed: 1500.0,
    },
    CloudUpgrade {
        name: "gke-surge",
        world: GKE_WORLD,
        config: gke,
        clusters: &["shop"],
        target: ("shop", "1.31"),
        speed: 1500.0,
    },
    CloudUpgrade {
        name: "aks-surge",
        world: AKS_WORLD,
        config: aks,
        clusters: &["checkout"],
        target: ("checkout", "1.31"),
        speed: 1500.0,
    },
];

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: CLOUD[0].name,
        start: |speed| Some(cloud(&CLOUD[0], speed)),
        check: cloud_mutations_once,
        clusters: CLOUD[0].clusters,
        target: CLOUD[0].target,
        span_ms: 2500,
        speed: CLOUD[0].speed,
        seeds: 13,
    },
    Scenario {
        name: CLOUD[1].name,
        start: |speed| Some(cloud(&CLOUD[1], speed)),
        check: cloud_mutations_once,
        clusters: CLOUD[1].clusters,
        target: CLOUD[1].target,
        span_ms: 2500,
        speed: CLOUD[1].speed,
        seeds: 13,
    },
    Scenario {
        name: CLOUD[2].name,
        start: |speed| Some(cloud(&CLOUD[2], speed)),
        check: cloud_mutations_once,
        clusters: CLOUD[2].clusters,
        target: CLOUD[2].target,
        span_ms: 2500,
        speed: CLOUD[2].speed,
        seeds: 13,
    },
    Scenario {
        name: CLOUD[3].name,
        start: |speed| Some(cloud(&CLOUD[3], speed)),
        check: cloud_mutations_once,
        clusters: CLOUD[3].clusters,
        target: CLOUD[3].target,
        span_ms: 2500,
        speed: CLOUD[3].speed,
        seeds: 13,
    },
    #[cfg(feature = "k3s")]
    Scenario {
        name: "k3s",
        start: |speed| Some(k3s_rig::start("k3s", speed)),
        check: |rig, _, ctx| k3s_rig::check(rig, "k3s", ctx),
        clusters: &["edge"],
        target: ("edge", "1.31"),
        span_ms: 2200,
        speed: 600.0,
        seeds: 6,
    },
    #[cfg(feature = "k3s")]
    Scenario {
        name: "rke2",
        start: |speed| Some(k3s_rig::start("rke2", speed)),
        check: |rig, _, ctx| k3s_rig::check(rig, "rke2r", ctx),
        clusters: &["edge"],
        target: ("edge", "1.31"),
        span_ms: 2200,
        speed: 600.0,
        seeds: 3,
    },
    #[cfg(feature = "kubeadm")]
    Scenario {
        name: "kubeadm",
        start: kubeadm_rig::start,
        check: |rig, _, ctx| kubeadm_rig::check(rig, ctx),
        clusters: &["lab"],
        target: ("lab", "1.31"),
        span_ms: 16000,
        speed: 600.0,
        seeds: 3,
    },
];

fn scenario(name: &str) -> &'static Scenario {
    SCENARIOS
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no scenario {name}"))
}

fn seeds(ci: u64) -> Vec<u64> {
    if let Some(one) = std::env::var("KUP_TORTURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![one];
    }
    let n: u64 = std::env::var("KUP_TORTURE_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ci);
    (1..=n).collect()
}

/// The control-plane minor a world reports for `cluster`, whatever its provider.
pub(crate) fn minor_of(world: &Value, cluster: &str) -> String {
    for section in [
        "cluster",
        "gke_cluster",
        "aks_cluster",
        "k3s_cluster",
        "kubeadm_cluster",
    ] {
        if let Some(v) = world[section][cluster]["version"].as_str() {
            let mut parts = v.trim_start_matches('v').split(['.', '-', '+']);
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

/// Returns how many kills landed while the apply was still running; `None`: skipped.
fn torture(s: &Scenario, seed: u64) -> Option<u64> {
    let rig = (s.start)(s.speed)?;
    let d = rig.dir.to_str().unwrap();
    let ctx = format!("scenario {} seed {seed}", s.name);

    let planned = kup(&["plan", "-json", d]);
    assert_eq!(planned.code, 0, "{ctx}: {planned:?}");
    let saved: SavedPlan = serde_json::from_str(planned.stdout.lines().last().unwrap()).unwrap();

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
        if let Some(now) = state_serial(&rig.dir) {
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
        if let Some(now) = state_serial(&rig.dir) {
            assert!(now >= serial, "{ctx}: serial {serial} → {now}");
            serial = now;
        }
        if run.stdout.contains("No changes.") {
            converged = true;
            break;
        }
    }
    assert!(converged, "{ctx}: apply did not converge");

    let world = rig.sim.world_json();
    assert_eq!(minor_of(&world, s.target.0), s.target.1, "{ctx}");
    (s.check)(&rig, &saved, &ctx);
    assert_nothing_lost(&rig.sim, s.clusters, &ctx);
    Some(landed)
}

/// Every seed of a scenario; most kills must land mid-apply, or the test tests nothing.
fn run_scenario(name: &str, base: u64) {
    let s = scenario(name);
    let seeds = seeds(s.seeds);
    let mut landed = 0;
    for seed in &seeds {
        match torture(s, base + seed) {
            Some(n) => landed += n,
            None => return,
        }
    }
    assert!(
        landed * 2 >= seeds.len() as u64,
        "{}: only {landed} kills over {} seeds landed while apply ran; lower span_ms",
        s.name,
        seeds.len()
    );
}

#[test]
fn sigkill_at_random_instants_then_converge_eks_rolling() {
    run_scenario("eks-rolling", 0);
}

#[test]
fn sigkill_at_random_instants_then_converge_eks_blue_green() {
    run_scenario("eks-blue-green", 1000);
}

#[cfg(feature = "gke")]
#[test]
fn sigkill_at_random_instants_then_converge_gke() {
    run_scenario("gke-surge", 2000);
}

#[cfg(feature = "aks")]
#[test]
fn sigkill_at_random_instants_then_converge_aks() {
    run_scenario("aks-surge", 3000);
}

#[cfg(feature = "k3s")]
#[test]
fn sigkill_at_random_instants_then_converge_k3s() {
    run_scenario("k3s", 4000);
}

#[cfg(feature = "k3s")]
#[test]
fn sigkill_at_random_instants_then_converge_rke2() {
    run_scenario("rke2", 5000);
}

#[cfg(feature = "kubeadm")]
#[test]
fn sigkill_at_random_instants_then_converge_kubeadm() {
    run_scenario("kubeadm", 6000);
}
