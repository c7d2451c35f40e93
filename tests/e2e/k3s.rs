//! K3s and RKE2 through system-upgrade-controller Plans, against the simulator's Kubernetes
//! API and its controller stand-in (built only with the `k3s` feature). The simulator's
//! audit records every Job, how many nodes each Plan had cordoned at once, whether an
//! agent started before the servers were done, and every PodDisruptionBudget breach.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::harness::*;

const PLANS: &str = "/apis/upgrade.cattle.io/v1/namespaces/system-upgrade/plans";

/// 3 servers and 5 agents at 1.29 with the controller installed, a channel server, and a
/// PDB-protected workload.
pub(crate) fn world(dist: &str, extra: &str) -> String {
    let (v, b) = if dist == "rke2" {
        ("", "rke2r")
    } else {
        ("", "k3s")
    };
    let r = |x: &str| format!("v{x}{v}+{b}1");
    format!(
        r#"
k3s_cluster "edge" {{
  distribution = "{dist}"
  version      = "{v129}"
  servers      = 3
  agents       = 5
  {extra}
  channel_server {{
    channels = {{
      "v1.30" = "{v130}"
      "v1.31" = "{v131}"
      stable  = "{v130}"
      latest  = "{v131}"
    }}
  }}
  workload "shop" {{
    namespace = "shop"
    replicas  = 4
    cpu       = "100m"
    memory    = "128Mi"
    pdb {{ min_available = 3 }}
  }}
}}
"#,
        v129 = r("1.29.8"),
        v130 = r("1.30.9"),
        v131 = r("1.31.4"),
    )
}

pub(crate) const SUC: &str = "suc { installed = true }";

pub(crate) fn config(
    root: &std::path::Path,
    sim: &Sim,
    provider: &str,
    cluster_attrs: &str,
) -> String {
    let dir = root.join("config");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("main.kup.hcl"),
        format!(
            r#"provider "{provider}" {{
  simulate      = true
  endpoint      = "{}"
  poll_interval = "20ms"
}}

cluster "edge" {{
  kubeconfig = "{}"
  {cluster_attrs}
  node_group "servers" {{
    max_unavailable = 1
  }}
  node_group "agents" {{
    max_unavailable = "40%"
    drain {{
      timeout = "10m"
    }}
  }}
}}
"#,
            sim.eks, sim.kubeconfigs["edge"]
        ),
    )
    .unwrap();
    dir.to_str().unwrap().to_string()
}

pub(crate) fn audit(sim: &Sim) -> Value {
    sim.kube_audit("edge")
}

pub(crate) fn kubelets(sim: &Sim) -> BTreeMap<String, String> {
    sim.kubelets("edge")
}

fn plans(sim: &Sim) -> Vec<Value> {
    let l: Value = sim
        .kube_request("edge", reqwest::Method::GET, PLANS)
        .json()
        .unwrap();
    l["items"].as_array().cloned().unwrap_or_default()
}

fn create_plan(sim: &Sim, body: Value) {
    let r = http()
        .post(format!("{}{PLANS}", sim.kube["edge"]))
        .json(&body)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text());
}

/// Every node at `want`, no pod lost, no budget breached, servers always first, at most
/// `concurrency` nodes of a Plan cordoned at once; returns the audit.
fn assert_upgraded_safely(sim: &Sim, want: &str) -> Value {
    for (node, v) in kubelets(sim) {
        assert_eq!(v, want, "node {node}");
    }
    let a = audit(sim);
    let text = a.to_string();
    assert_eq!(a["lost_pods"], json!([]), "{text}");
    for (name, p) in a["pdbs"].as_object().unwrap() {
        assert_eq!(p["violated"], false, "PDB {name} breached: {text}");
    }
    assert_eq!(a["agents_started_before_servers"], json!([]), "{text}");
    let servers = &a["plans"]["system-upgrade/kup-servers"];
    let agents = &a["plans"]["system-upgrade/kup-agents"];
    assert!(servers["max_cordoned"].as_u64().unwrap() <= 1, "{text}");
    assert!(agents["max_cordoned"].as_u64().unwrap() <= 2, "{text}");
    assert!(agents["max_applying"].as_u64().unwrap() <= 2, "{text}");
    assert_eq!(agents["gate"], "kup-servers", "{text}");
    assert_eq!(agents["started_before_gate_complete"], json!([]), "{text}");
    a
}

/// Jobs that completed, by (plan, node, version): each exactly once.
fn assert_each_node_upgraded_once_per_round(a: &Value, rounds: usize) {
    let mut seen: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for j in a["jobs"].as_array().unwrap() {
        if j["outcome"] == "Complete" {
            *seen
                .entry((
                    j["plan"].as_str().unwrap().into(),
                    j["node"].as_str().unwrap().into(),
                    j["version"].as_str().unwrap().into(),
                ))
                .or_default() += 1;
        }
    }
    assert_eq!(seen.len(), 8 * rounds, "{seen:#?}");
    assert!(seen.values().all(|n| *n == 1), "{seen:#?}");
}

#[test]
fn two_minor_upgrade_goes_round_by_round_servers_first() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), &world("k3s", SUC), 600.0, None);
    // A minor: the newest patch the v1.31 channel offers.
    let d = config(tmp.path(), &sim, "k3s", r#"version = "1.31""#);

    let plan = kup(&["plan", "-json", "-detailed-exitcode", &d]);
    assert_eq!(plan.code, 2, "{plan:?}");
    let saved: Value = serde_json::from_str(&plan.stdout).unwrap();
    let steps: Vec<String> = saved["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        steps,
        [
            "edge/control_plane/1.30",
            "edge/node_group/agents/1.30.9+k3s1",
            "edge/control_plane/1.31",
            "edge/node_group/agents/1.31.4+k3s1",
            "edge/postflight",
            "edge/upgrade_plans/remove"
        ]
    );

    let run = kup(&["apply", "-auto-approve", &d]);
    assert_eq!(run.code, 0, "{run:?}");
    let a = assert_upgraded_safely(&sim, "v1.31.4+k3s1");
    assert_each_node_upgraded_once_per_round(&a, 2);
    // Within every round no agent Job starts before the last server Job of the round.
    let jobs = a["jobs"].as_array().unwrap();
    for v in ["v1.30.9+k3s1", "v1.31.4+k3s1"] {
        let last_server = jobs
            .iter()
            .filter(|j| j["plan"] == "kup-servers" && j["version"] == v)
            .map(|j| j["finished"].as_str().unwrap().to_string())
            .max()
            .unwrap();
        for j in jobs
            .iter()
            .filter(|j| j["plan"] == "kup-agents" && j["version"] == v)
        {
            assert!(
                j["started"].as_str().unwrap() >= last_server.as_str(),
                "{j} started before the servers finished ({last_server})"
            );
        }
    }
    // kup's Plans are gone once the last round is done.
    assert!(plans(&sim).is_empty(), "{:#?}", plans(&sim));
    let again = kup(&["plan", &d]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("No changes."), "{again:?}");
}

#[test]
fn channel_resolution_and_unknown_channel() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), &world("k3s", SUC), 600.0, None);
    let d = config(tmp.path(), &sim, "k3s", r#"channel = "stable""#);
    let plan = kup(&["plan", "-detailed-exitcode", &d]);
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(
        plan.stdout.contains("1.29.8+k3s1 → 1.30.9+k3s1"),
        "stable resolves to v1.30.9+k3s1: {plan:?}"
    );
    let run = kup(&["apply", "-auto-approve", &d]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_upgraded_safely(&sim, "v1.30.9+k3s1");

    let d = config(tmp.path(), &sim, "k3s", r#"channel = "v1.99""#);
    let bad = kup(&["plan", &d]);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(
        bad.stderr.contains("v1.99") && bad.stderr.contains("404"),
        "{bad:?}"
    );
}

#[test]
fn a_failing_upgrade_job_stops_the_round_with_its_message_then_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(
        tmp.path(),
        &world("k3s", SUC),
        600.0,
        Some("jobfail=edge/kup-agents:no space left on device"),
    );
    let d = config(tmp.path(), &sim, "k3s", r#"version = "v1.30.9+k3s1""#);
    let run = kup(&["apply", "-auto-approve", &d]);
    assert_eq!(run.code, 1, "{run:?}");
    let all = run.all();
    assert!(
        all.contains("no space left on device") && all.contains("apply-kup-agents-on-"),
        "{all}"
    );
    // The servers' round finished; the agents' round stopped.
    let k = kubelets(&sim);
    assert!(k
        .iter()
        .filter(|(n, _)| n.contains("server"))
        .all(|(_, v)| v == "v1.30.9+k3s1"));
    assert!(k.values().any(|v| v == "v1.29.8+k3s1"), "{k:?}");

    // Once the cause is gone, apply again: the failed Job is cleared and retried.
    let again = kup(&["apply", "-auto-approve", &d]);
    assert_eq!(again.code, 0, "{again:?}");
    let a = assert_upgraded_safely(&sim, "v1.30.9+k3s1");
    assert_eq!(a["plans"]["system-upgrade/kup-agents"]["jobs_failed"], 1);
}

#[test]
fn sigkill_then_resume_keeps_waiting_on_the_same_round() {
    let tmp = tempfile::tempdir().unwrap();
    // Slow enough that kills land while Jobs run.
    let sim = Sim::start(tmp.path(), &world("k3s", SUC), 120.0, None);
    let d = config(tmp.path(), &sim, "k3s", r#"version = "v1.31.4+k3s1""#);
    let jobs = |sim: &Sim| audit(sim)["jobs"].as_array().map_or(0, Vec::len);
    for at_least in [1, 4, 9, 12] {
        let mut child = spawn_kup(&["apply", "-auto-approve", &d]);
        wait_until(&format!("{at_least} upgrade Jobs"), || {
            jobs(&sim) >= at_least || child.try_wait().map(|s| s.is_some()).unwrap_or(true)
        });
        // SAFETY: plain kill(2) of our own child.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
        }
        child.wait().unwrap();
    }
    let last = kup(&["apply", "-auto-approve", &d]);
    assert_eq!(last.code, 0, "{last:?}");
    assert!(
        last.stdout
            .contains("Resuming the apply that did not finish"),
        "{last:?}"
    );
    let journal = std::fs::read_to_string(journal_path(std::path::Path::new(&d))).unwrap();
    assert!(journal.contains("kup-servers@v1.30.9+k3s1#"), "{journal}");
    let a = assert_upgraded_safely(&sim, "v1.31.4+k3s1");
    assert_each_node_upgraded_once_per_round(&a, 2);
    assert_eq!(a["plans"]["system-upgrade/kup-agents"]["jobs_failed"], 0);
}

#[test]
fn plans_kup_did_not_create_are_never_touched() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), &world("k3s", SUC), 600.0, None);
    let d = config(tmp.path(), &sim, "k3s", r#"version = "v1.30.9+k3s1""#);
    // Someone's own Plan that waits forever on a gate that never exists: it keeps nodes
    // pending, so drift names it.
    let foreign = json!({
        "apiVersion": "upgrade.cattle.io/v1", "kind": "Plan",
        "metadata": { "name": "os-patches", "namespace": "system-upgrade" },
        "spec": {
            "concurrency": 1, "version": "v1.30.9+k3s1", "serviceAccountName": "system-upgrade",
            "nodeSelector": { "matchExpressions": [{ "key": "node-role.kubernetes.io/control-plane", "operator": "DoesNotExist" }] },
            "prepare": { "image": "rancher/k3s-upgrade", "args": ["prepare", "never-there"] },
            "upgrade": { "image": "rancher/k3s-upgrade" }
        }
    });
    create_plan(&sim, foreign);
    let drift = kup(&["drift", &d]);
    assert!(
        drift.all().contains("os-patches") && drift.all().contains("not kup's"),
        "{drift:?}"
    );
    // And one that takes kup's name: refused before anything moves.
    create_plan(
        &sim,
        json!({
            "apiVersion": "upgrade.cattle.io/v1", "kind": "Plan",
            "metadata": { "name": "kup-agents", "namespace": "system-upgrade" },
            "spec": { "concurrency": 1, "version": "v1.29.8+k3s1",
                "nodeSelector": { "matchLabels": { "nobody": "here" } },
                "upgrade": { "image": "rancher/k3s-upgrade" } }
        }),
    );
    let before: BTreeMap<String, Value> = plans(&sim)
        .into_iter()
        .map(|p| (p["metadata"]["name"].as_str().unwrap().to_string(), p))
        .collect();

    let run = kup(&["apply", "-auto-approve", &d]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.all()
            .contains("Plan system-upgrade/kup-agents exists and was not created by kup"),
        "{run:?}"
    );
    assert!(kubelets(&sim).values().all(|v| v == "v1.29.8+k3s1"));
    let after: BTreeMap<String, Value> = plans(&sim)
        .into_iter()
        .map(|p| (p["metadata"]["name"].as_str().unwrap().to_string(), p))
        .collect();
    for name in ["os-patches", "kup-agents"] {
        assert_eq!(
            before[name]["spec"], after[name]["spec"],
            "kup changed {name}"
        );
        assert!(after[name]["metadata"]["managedFields"]
            .as_array()
            .is_none_or(|m| m.iter().all(|f| f["manager"] != "kup")));
    }
}

#[test]
fn rke2_upgrades_with_the_rke2_image_and_keeps_pinned_plans() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), &world("rke2", SUC), 600.0, None);
    let d = config(
        tmp.path(),
        &sim,
        "rke2",
        "version    = \"v1.30.9+rke2r1\"\n  keep_plans = true",
    );
    let run = kup(&["apply", "-auto-approve", &d]);
    assert_eq!(run.code, 0, "{run:?}");
    // The simulated controller fails Jobs whose image is not the distribution's.
    assert_upgraded_safely(&sim, "v1.30.9+rke2r1");
    let kept = plans(&sim);
    assert_eq!(kept.len(), 2, "{kept:#?}");
    for p in &kept {
        assert_eq!(p["spec"]["upgrade"]["image"], "rancher/rke2-upgrade");
        assert_eq!(p["spec"]["version"], "v1.30.9+rke2r1");
        assert_eq!(
            p["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "kup"
        );
    }
}

#[test]
fn apply_without_the_controller_says_how_to_install_it() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), &world("k3s", ""), 600.0, None);
    let d = config(tmp.path(), &sim, "k3s", r#"version = "v1.30.9+k3s1""#);
    let run = kup(&["apply", "-auto-approve", &d]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.all()
            .contains("system-upgrade-controller is not installed")
            && run.all().contains("kubectl apply -f"),
        "{run:?}"
    );
    assert!(kubelets(&sim).values().all(|v| v == "v1.29.8+k3s1"));
}

#[test]
fn drift_names_nodes_off_the_configured_release() {
    let tmp = tempfile::tempdir().unwrap();
    // One agent joined at another release.
    let w = world("k3s", SUC).replace(
        "agents       = 5",
        "agent \"edge-agent-1\" { version = \"v1.29.9+k3s1\" }\n  agent \"edge-agent-2\" {}",
    );
    assert!(w.contains("edge-agent-1"), "{w}");
    let sim = Sim::start(tmp.path(), &w, 600.0, None);
    let d = config(tmp.path(), &sim, "k3s", r#"version = "v1.29.8+k3s1""#);
    let drift = kup(&["drift", &d]);
    assert_eq!(drift.code, 2, "{drift:?}");
    assert!(
        drift.stdout.contains(
            "cluster.edge.node_group.agents.node.edge-agent-1 kubelet: configuration says 1.29.8+k3s1, running 1.29.9+k3s1"
        ),
        "{drift:?}"
    );
    assert!(!drift.stdout.contains("edge-agent-2"), "{drift:?}");
}

#[test]
fn agents_wait_for_their_window_while_servers_go_ahead() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), &world("k3s", SUC), 600.0, None);
    // A window that opens the day after tomorrow (the controller reads the wall clock).
    let days = [
        "sunday",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
    ];
    let today = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 86400
        + 4)
        % 7;
    let day = days[((today + 2) % 7) as usize];
    let d = config(tmp.path(), &sim, "k3s", r#"version = "v1.30.9+k3s1""#);
    let path = std::path::Path::new(&d).join("main.kup.hcl");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "    drain {\n      timeout = \"10m\"\n    }",
        &format!(
            "    drain {{\n      timeout = \"10m\"\n    }}\n    window {{\n      days  = [\"{day}\"]\n      start = \"00:00\"\n      end   = \"23:59\"\n    }}"
        ),
    );
    assert!(text.contains("window"), "{text}");
    std::fs::write(&path, text).unwrap();

    let plan = kup(&["plan", &d]);
    assert!(
        plan.all().contains(&format!(
            "node group agents is upgraded only inside its window ({day} 00:00–23:59 UTC)"
        )),
        "{plan:?}"
    );
    let mut child = spawn_kup(&["apply", "-auto-approve", &d]);
    let waiting = |sim: &Sim| {
        plans(sim).iter().any(|p| {
            p["metadata"]["name"] == "kup-agents"
                && p["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter().any(|c| {
                        c["message"]
                            .as_str()
                            .is_some_and(|m| m.contains("time window"))
                    })
                })
        })
    };
    wait_until("the agents' Plan waiting for its window", || {
        waiting(&sim) || child.try_wait().map(|s| s.is_some()).unwrap_or(true)
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "apply gave up instead of waiting"
    );
    // SAFETY: plain kill(2) of our own child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
    }
    child.wait().unwrap();
    let k = kubelets(&sim);
    for (n, v) in &k {
        let want = if n.contains("server") {
            "v1.30.9+k3s1"
        } else {
            "v1.29.8+k3s1"
        };
        assert_eq!(v, want, "{n}: {k:?}");
    }
    assert!(
        audit(&sim)["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["plan"] == "kup-servers"),
        "an agent Job ran outside the window"
    );
}
