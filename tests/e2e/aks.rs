//! AKS through kup's ARM client against the simulator's Azure Resource Manager API
//! (built only with the `aks` feature).

use crate::harness::*;

/// A cluster at 1.29 with a System and a User pool, and a PDB-protected workload on the
/// User pool. `apps` goes into the User pool's block, `pdb` into the workload's PDB.
fn world(apps: &str, pdb: &str) -> String {
    format!(
        r#"
aks_cluster "prod" {{
  subscription_id = "00000000-0000-0000-0000-000000000001"
  resource_group  = "rg-prod"
  location        = "westeurope"
  version         = "1.29.9"
  agent_pool "system" {{
    mode      = "System"
    version   = "1.29.9"
    count     = 2
    max_surge = "1"
  }}
  agent_pool "apps" {{
    mode            = "User"
    version         = "1.29.9"
    count           = 3
    max_surge       = "1"
    max_unavailable = "0"
    {apps}
  }}
  workload "web" {{
    namespace  = "shop"
    replicas   = 4
    cpu        = "200m"
    memory     = "256Mi"
    node_group = "apps"
    pdb {{ {pdb} }}
  }}
}}
"#
    )
}

fn config(root: &std::path::Path, sim: &Sim, target: &str, apps: &str) -> std::path::PathBuf {
    config_with(
        root,
        sim,
        target,
        apps,
        "max_unavailable = 0\n    max_surge = 1",
    )
}

fn config_with(
    root: &std::path::Path,
    sim: &Sim,
    target: &str,
    apps: &str,
    system: &str,
) -> std::path::PathBuf {
    let dir = root.join("config");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("main.kup.hcl"),
        format!(
            r#"provider "aks" {{
  subscription_id = "00000000-0000-0000-0000-000000000001"
  resource_group  = "rg-prod"
  endpoint        = "{}"
  simulate        = true
  speed           = {}
  poll_interval   = "20ms"
}}

cluster "prod" {{
  version = "{target}"
  node_group "system" {{
    {system}
  }}
  node_group "apps" {{
    {apps}
  }}
}}
"#,
            sim.eks, sim.speed
        ),
    )
    .unwrap();
    dir
}

fn pools(sim: &Sim) -> serde_json::Value {
    sim.world_json()["aks_cluster"]["prod"]["agent_pool"].clone()
}

fn cluster_version(sim: &Sim) -> String {
    sim.world_json()["aks_cluster"]["prod"]["version"]
        .as_str()
        .unwrap()
        .to_string()
}

fn assert_budgets_kept(sim: &Sim) {
    let a = sim.kube_audit("prod");
    let text = a.to_string();
    assert!(a["lost_pods"].as_array().unwrap().is_empty(), "{text}");
    assert_eq!(a["pdbs"]["shop/web"]["violated"], false, "{text}");
}

fn ops(sim: &Sim, op: &str) -> usize {
    sim.mutations().iter().filter(|c| c["op"] == op).count()
}

#[test]
fn control_plane_only_hops_then_pools_with_surge_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), &world("", "min_available = 3"), 3000.0, None);
    let dir = config(
        tmp.path(),
        &sim,
        "1.31",
        "max_unavailable = 0\n    max_surge = \"34%\"\n    node_soak = \"1m\"",
    );
    let d = dir.to_str().unwrap();
    let plan = kup(&["plan", "-json", d]);
    assert_eq!(plan.code, 0, "{plan:?}");
    let saved: kup_engine::plan::SavedPlan = serde_json::from_str(&plan.stdout).unwrap();
    let ids: Vec<&str> = saved.plan.steps.iter().map(|s| s.id.as_str()).collect();
    // Pools may trail by two minors: both hops first, then each pool once.
    assert_eq!(
        ids,
        [
            "prod/node_group/apps/config",
            "prod/control_plane/1.30",
            "prod/control_plane/1.31",
            "prod/node_group/system/1.31",
            "prod/node_group/apps/1.31",
            "prod/postflight",
        ]
    );
    let apply = kup(&["apply", "-auto-approve", d]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(cluster_version(&sim).starts_with("1.31."));
    let p = pools(&sim);
    for pool in ["system", "apps"] {
        assert!(
            p[pool]["version"].as_str().unwrap().starts_with("1.31."),
            "{p:#}"
        );
    }
    assert_eq!(p["apps"]["max_surge"], "34%", "{p:#}");
    assert_eq!(p["apps"]["node_soak_minutes"].as_f64(), Some(1.0), "{p:#}");
    // Two control-plane PUTs, one settings PUT and one upgrade PUT per pool: none twice.
    assert_eq!(ops(&sim, "managedClusters.createOrUpdate"), 2);
    assert_eq!(ops(&sim, "agentPools.createOrUpdate"), 3);
    assert_budgets_kept(&sim);
    let again = kup(&["plan", d]);
    assert!(again.stdout.contains("No changes."), "{again:?}");
}

#[test]
fn a_drain_timeout_stops_the_pool_upgrade_and_the_next_apply_resumes_it() {
    let tmp = tempfile::tempdir().unwrap();
    // The PDB allows no disruption: every drain blocks until the timeout.
    let sim = Sim::start(
        tmp.path(),
        &world("drain_timeout_minutes = 5", "min_available = 4"),
        3000.0,
        None,
    );
    let dir = config(
        tmp.path(),
        &sim,
        "1.30",
        "max_unavailable = 0\n    max_surge = 1\n    drain {\n      timeout = \"5m\"\n      on_blocked = \"wait\"\n    }",
    );
    let d = dir.to_str().unwrap();
    let first = kup(&["apply", "-auto-approve", d]);
    assert_eq!(first.code, 1, "{first:?}");
    let out = format!("{}{}", first.stdout, first.stderr);
    assert!(out.contains("UpgradeFailed"), "{out}");
    assert!(
        out.contains("web"),
        "the message names what blocked the drain: {out}"
    );
    assert!(pools(&sim)["apps"]["version"]
        .as_str()
        .unwrap()
        .starts_with("1.29."));
    // The team relaxes the budget; the next apply PUTs the pool again, which resumes it.
    let r = sim.kube_request(
        "prod",
        reqwest::Method::DELETE,
        "/apis/policy/v1/namespaces/shop/poddisruptionbudgets/web",
    );
    assert!(r.status().is_success(), "{:?}", r.text());
    let second = kup(&["apply", "-auto-approve", d]);
    assert_eq!(second.code, 0, "{second:?}");
    assert!(pools(&sim)["apps"]["version"]
        .as_str()
        .unwrap()
        .starts_with("1.30."));
    let a = sim.kube_audit("prod");
    assert!(a["lost_pods"].as_array().unwrap().is_empty(), "{a}");
}

#[test]
fn kup_driven_blue_green_replaces_a_user_pool_and_a_system_pool() {
    let tmp = tempfile::tempdir().unwrap();
    // The workload is not pinned to the blue pool's name, so it can move to green.
    let w = world("", "min_available = 3").replace("    node_group = \"apps\"\n", "");
    assert!(!w.contains("node_group"));
    let sim = Sim::start(tmp.path(), &w, 3000.0, None);
    let bg = "strategy = \"blue_green\"\n    max_unavailable = 1\n    blue_green { soak = \"1m\" }";
    let dir = config_with(tmp.path(), &sim, "1.30", bg, bg);
    let d = dir.to_str().unwrap();
    let plan = kup(&["plan", "-json", d]);
    assert_eq!(plan.code, 0, "{plan:?}");
    let saved: kup_engine::plan::SavedPlan = serde_json::from_str(&plan.stdout).unwrap();
    let ids: Vec<&str> = saved.plan.steps.iter().map(|s| s.id.as_str()).collect();
    assert!(
        ids.contains(&"prod/node_group/system/1.30/create"),
        "{ids:?}"
    );
    assert!(ids.contains(&"prod/node_group/apps/1.30/delete"), "{ids:?}");
    let apply = kup(&["apply", "-auto-approve", d]);
    assert_eq!(apply.code, 0, "{apply:?}");
    let p = pools(&sim);
    let mut names: Vec<&String> = p.as_object().unwrap().keys().collect();
    names.sort();
    // AKS pool names are short and alphanumeric: the green pools are NAME130.
    assert_eq!(names, ["appsv130", "systemv130"], "{p:#}");
    assert_eq!(p["systemv130"]["mode"], "System", "{p:#}");
    assert_eq!(ops(&sim, "agentPools.delete"), 2);
    assert_budgets_kept(&sim);
    let again = kup(&["plan", d]);
    assert!(again.stdout.contains("No changes."), "{again:?}");
}

#[test]
fn sigkill_while_an_async_operation_runs_then_resume_puts_nothing_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), &world("", "min_available = 3"), 200.0, None);
    let dir = config(
        tmp.path(),
        &sim,
        "1.30",
        "max_unavailable = 0\n    max_surge = 1",
    );
    let d = dir.to_str().unwrap();
    for n in 1..3 {
        let mut child = spawn_kup(&["apply", "-auto-approve", d]);
        wait_until("an operation", || {
            sim.mutations().len() >= n || child.try_wait().map(|s| s.is_some()).unwrap_or(true)
        });
        // SAFETY: plain kill(2) of our own child.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
        }
        let _ = child.wait();
    }
    let last = kup(&["apply", "-auto-approve", d]);
    assert_eq!(last.code, 0, "{last:?}");
    assert!(cluster_version(&sim).starts_with("1.30."));
    // One control-plane PUT and one PUT per pool, however often kup was killed.
    assert_eq!(sim.mutations().len(), 3, "{:#?}", sim.mutations());
    let refused = sim
        .calls()
        .iter()
        .filter(|c| {
            c["error"]
                .as_str()
                .is_some_and(|e| e == "OperationNotAllowed")
        })
        .count();
    assert_eq!(refused, 0, "{:#?}", sim.calls());
    assert_budgets_kept(&sim);
}

#[test]
fn throttling_and_server_errors_are_survived() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(
        tmp.path(),
        &world("", "min_available = 3"),
        3000.0,
        Some("seed=5,throttle=0.2,error500=0.1"),
    );
    let dir = config(
        tmp.path(),
        &sim,
        "1.30",
        "max_unavailable = 0\n    max_surge = 1",
    );
    let apply = kup(&["apply", "-auto-approve", dir.to_str().unwrap()]);
    assert_eq!(apply.code, 0, "{apply:?}");
    let injected = get_json(&format!("{}/faults", sim.admin))["injected"]
        .as_u64()
        .unwrap();
    assert!(injected > 0, "no fault was exercised");
    assert!(cluster_version(&sim).starts_with("1.30."));
    assert_eq!(sim.mutations().len(), 3, "{:#?}", sim.mutations());
}

#[test]
fn auto_upgrade_channels_are_drift_sources() {
    let tmp = tempfile::tempdir().unwrap();
    let w = world("", "min_available = 3").replace(
        "location        = \"westeurope\"",
        "location        = \"westeurope\"\n  auto_upgrade_channel = \"stable\"",
    );
    let sim = Sim::start(tmp.path(), &w, 3000.0, None);
    let dir = config(
        tmp.path(),
        &sim,
        "1.29",
        "max_unavailable = 0\n    max_surge = 1",
    );
    let drift = kup(&["drift", dir.to_str().unwrap()]);
    assert!(
        drift.stdout.contains(
            "drift source: auto-upgrade channel stable upgrades this cluster automatically"
        ),
        "{drift:?}"
    );
}

#[test]
fn pods_pinned_to_the_blue_pool_by_name_are_refused_before_anything_moves() {
    let tmp = tempfile::tempdir().unwrap();
    // The workload selects `agentpool=apps`: a pool named appsv130 can never take it.
    let sim = Sim::start(tmp.path(), &world("", "min_available = 3"), 3000.0, None);
    let dir = config(
        tmp.path(),
        &sim,
        "1.30",
        "strategy = \"blue_green\"\n    max_unavailable = 1",
    );
    let d = dir.to_str().unwrap();
    let plan = kup(&["plan", d]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(
        plan.stdout
            .contains("pods select node group apps by name (nodeSelector"),
        "{plan:?}"
    );
    let apply = kup(&["apply", "-auto-approve", d]);
    assert_eq!(apply.code, 1, "{apply:?}");
    assert!(
        apply.stderr.contains("cannot move to appsv130"),
        "{apply:?}"
    );
    assert!(sim.mutations().is_empty(), "{:#?}", sim.mutations());
}

/// The ARM endpoint behind HTTPS with a certificate no system trusts: refused with a clear
/// error naming it; accepted with `ca_file` (no warning) or with
/// `insecure_skip_tls_verify` (a warning in the text, JSON and markdown plan).
#[test]
fn the_endpoint_certificate_is_verified_unless_the_provider_block_says_otherwise() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), &world("", "min_available = 3"), 3000.0, None);
    let front = TlsFront::start(&sim.eks);
    let dir = config(tmp.path(), &sim, "1.30", "max_unavailable = 1");
    let d = dir.to_str().unwrap();
    let main = dir.join("main.kup.hcl");
    let base = std::fs::read_to_string(&main)
        .unwrap()
        .replace(&sim.eks, &front.url);
    let with = |extra: &str| {
        std::fs::write(
            &main,
            base.replace(
                "simulate        = true",
                &format!("simulate = true\n  {extra}"),
            ),
        )
        .unwrap();
    };

    with("");
    let refused = kup(&["plan", d]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.all().contains(&front.url)
            && refused.all().contains("certificate")
            && refused.all().contains("ca_file"),
        "{refused:?}"
    );

    std::fs::write(dir.join("ca.pem"), &front.ca_pem).unwrap();
    with("ca_file = \"ca.pem\"");
    let trusted = kup(&["plan", d]);
    assert_eq!(trusted.code, 0, "{trusted:?}");
    assert!(trusted.stdout.contains("1.30"), "{trusted:?}");
    assert!(!trusted.all().contains("insecure"), "{trusted:?}");

    with("insecure_skip_tls_verify = true");
    let warning = "main.kup.hcl:1:1) has insecure_skip_tls_verify = true";
    let text = kup(&["plan", d]);
    assert_eq!(text.code, 0, "{text:?}");
    assert!(text.stdout.contains(warning), "{text:?}");
    let json = kup(&["plan", "-json", d]);
    assert_eq!(json.code, 0, "{json:?}");
    let saved: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let warnings = saved["plan"]["clusters"][0]["warnings"].to_string();
    assert!(warnings.contains(warning), "{warnings}");
    let md = kup(&["plan", "-markdown", d]);
    assert_eq!(md.code, 0, "{md:?}");
    assert!(
        md.stdout.contains("insecure_skip_tls_verify = true"),
        "{md:?}"
    );
}
