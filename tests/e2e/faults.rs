//! The fault matrix: every kind of failure a cloud API can answer with, injected into the
//! FIRST request to EVERY endpoint kup calls (`KIND=first`), for EKS, GKE and AKS. Each
//! case is a real `kup apply -auto-approve` of an upgrade with PDB-protected workloads,
//! and must end with the target reached, one accepted cloud mutation per provider step
//! (a mutation whose answer was lost was replayed, not issued again), no pod lost and no
//! budget broken — and the simulator's record showing that every endpoint kup called got
//! the fault.

use serde_json::Value;

use crate::harness::*;
use crate::torture::{
    assert_nothing_lost, assert_upgraded_once_nothing_lost, minor_of, planned_provider_steps,
    CloudUpgrade, CLOUD,
};

/// (name, fault spec). `stall` holds an answer back 5 s against a 1 s request_timeout.
const FAULTS: &[(&str, &str)] = &[
    ("429", "throttle=first"),
    ("429+Retry-After", "throttle=first,retry_after=1"),
    ("500", "error500=first"),
    ("503", "error503=first,retry_after=1"),
    ("reset", "reset=first"),
    ("truncate", "truncate=first"),
    ("garbage", "garbage=first"),
    ("stall", "stall=first,stall_for=5s"),
];

/// The scenario's configuration with a short per-attempt limit, so a stalled answer
/// costs a second rather than the default 30.
fn config_with_short_attempts(s: &CloudUpgrade, sim: &Sim) -> String {
    config_plus(s, sim, "request_timeout = \"1s\"")
}

fn one_case(s: &CloudUpgrade, fault: &str, spec: &str) {
    let ctx = format!("{} under {fault} ({spec})", s.name);
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), s.world, s.speed, None);
    let dir = tmp.path().join("config");
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = config_with_short_attempts(s, &sim);
    let kube_kind = spec.split('=').next().unwrap().strip_prefix("kube:");
    if kube_kind.is_some() {
        // A struck watch restarts after the watcher's backoff (about a second), longer
        // than a 10m drain timeout lasts at the scenario's speed: what is tested is riding
        // the faults out, not the timeout (10h is seconds here).
        assert!(config.contains("timeout = \"10m\""), "{config}");
        config = config.replace("timeout = \"10m\"", "timeout = \"10h\"");
    }
    std::fs::write(dir.join("main.kup.hcl"), config).unwrap();
    let d = dir.to_str().unwrap();
    let steps = planned_provider_steps(d, &ctx);
    // From here every endpoint's first request gets the fault.
    sim.set_faults(spec);
    let run = kup(&["apply", "-auto-approve", d]);
    assert_eq!(run.code, 0, "{ctx}: {run:?}");

    if let Some(kind) = kube_kind {
        let endpoints = assert_every_endpoint_struck(&sim.faults(), kind, true, &ctx);
        // The drain's evictions and the node reads were among the struck.
        for endpoint in [
            "kube POST /api/v1/namespaces/{namespace}/pods/{name}/eviction",
            "kube GET /api/v1/nodes",
        ] {
            assert!(
                endpoints.iter().any(|e| e == endpoint),
                "{ctx}: {endpoint} never called: {endpoints:#?}"
            );
        }
        assert_upgraded_once_nothing_lost(s, &sim, steps, &ctx);
        return;
    }
    let kind = spec.split('=').next().unwrap();
    assert_every_endpoint_struck(&sim.faults(), kind, false, &ctx);
    // The mutations themselves were struck, not only the reads.
    let calls = sim.calls();
    assert!(
        calls
            .iter()
            .any(|c| c["fault"] == kind || is_injected_refusal(c)),
        "{ctx}: no mutating call was struck: {calls:#?}"
    );
    assert_upgraded_once_nothing_lost(s, &sim, steps, &ctx);
}

/// A mutating call the simulator refused with an injected 429, 500 or 503.
fn is_injected_refusal(call: &Value) -> bool {
    matches!(
        call["error"].as_str(),
        Some(
            "ThrottlingException"
                | "ServerException"
                | "ServiceUnavailableException"
                | "RESOURCE_EXHAUSTED"
                | "INTERNAL"
                | "UNAVAILABLE"
                | "SubscriptionRequestsThrottled"
                | "InternalServerError"
                | "ServiceUnavailable"
        )
    )
}

/// Every fault for one scenario; reports every failing case, not just the first.
fn matrix(s: &CloudUpgrade) {
    run_all(FAULTS, |name, spec| one_case(s, name, spec));
}

/// The Kubernetes API kinds: the cloud ones prefixed `kube:`. A stall holds an answer 1 s
/// (kup sets no per-attempt limit on Kubernetes API requests below the client's own).
const KUBE_FAULTS: &[(&str, &str)] = &[
    ("429", "kube:throttle=first"),
    ("429+Retry-After", "kube:throttle=first,retry_after=1"),
    ("500", "kube:error500=first"),
    ("503", "kube:error503=first,retry_after=1"),
    ("reset", "kube:reset=first"),
    ("truncate", "kube:truncate=first"),
    ("garbage", "kube:garbage=first"),
    ("stall", "kube:stall=first,stall_for=1s"),
];

/// True when the simulator strikes `endpoint` with `kind` at all: `kind` is a cloud kind
/// or a `kube:` one, a watch only before its stream starts (refusals and resets), an
/// eviction never with an injected 429.
fn strikes(endpoint: &str, kind: &str, kube: bool) -> bool {
    if endpoint.starts_with("kube ") != kube {
        return false;
    }
    if endpoint.starts_with("kube WATCH ") {
        return matches!(kind, "throttle" | "error500" | "error503" | "reset");
    }
    !(endpoint.ends_with("/eviction") && kind == "throttle")
}

/// The first request of every endpoint struck by `kind` (a cloud kind, or a Kubernetes API
/// one when `kube`) got it; returns every endpoint called.
fn assert_every_endpoint_struck(report: &Value, kind: &str, kube: bool, ctx: &str) -> Vec<String> {
    let endpoints = report["endpoints"].as_object().cloned().unwrap_or_default();
    assert!(
        !endpoints.is_empty(),
        "{ctx}: no endpoint was called: {report:#}"
    );
    for (endpoint, rec) in &endpoints {
        if strikes(endpoint, kind, kube) {
            assert_eq!(
                rec["faults"][0], kind,
                "{ctx}: {endpoint} did not get the fault first: {report:#}"
            );
        }
    }
    endpoints.keys().cloned().collect()
}

/// One K3s fault case: the torture's two-round K3s upgrade (3 servers, 5 agents, a
/// PDB-protected workload) applied once under `spec`, then held to the torture's K3s
/// invariants (each node upgraded by one Job per round, no Job failed, each Plan written
/// once per round, concurrency and order kept) and to no pod lost, no budget broken.
#[cfg(feature = "k3s")]
fn one_k3s_case(fault: &str, spec: &str) {
    let ctx = format!("k3s under {fault} ({spec})");
    let rig = crate::torture::k3s_rig::start("k3s", 600.0);
    rig.sim.set_faults(spec);
    let run = kup(&["apply", "-auto-approve", rig.dir.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{ctx}: {run:?}");
    let kind = spec.split('=').next().unwrap().trim_start_matches("kube:");
    let endpoints = assert_every_endpoint_struck(&rig.sim.faults(), kind, true, &ctx);
    // The Plan writes and the node reads were among the struck.
    for endpoint in [
        "kube PATCH /apis/upgrade.cattle.io/v1/namespaces/{namespace}/plans/{name}",
        "kube GET /api/v1/nodes",
    ] {
        assert!(
            endpoints.iter().any(|e| e == endpoint),
            "{ctx}: {endpoint} never called: {endpoints:#?}"
        );
    }
    crate::torture::k3s_rig::check(&rig, "k3s", &ctx);
    assert_nothing_lost(&rig.sim, &["edge"], &ctx);
}

/// Every case of `faults` run by `case`; reports every failing case, not just the first.
fn run_all(faults: &[(&str, &str)], case: impl Fn(&str, &str) + std::panic::RefUnwindSafe) {
    let failed: Vec<String> = faults
        .iter()
        .filter_map(|(name, spec)| {
            std::panic::catch_unwind(|| case(name, spec))
                .err()
                .map(|e| {
                    e.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default()
                })
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} failing:\n{}",
        failed.len(),
        failed.join("\n\n")
    );
}

/// kubeadm over SSH with the Kubernetes API (drains, node waits) struck: fewer kinds, as
/// each case costs an upgrade of six hosts over SSH. Held to the torture's kubeadm
/// invariants (one `kubeadm upgrade apply` per hop, each kubelet restarted once per
/// release, nothing upgraded again after) and to no pod lost, no budget broken.
#[cfg(feature = "kubeadm")]
#[test]
fn a_kubeadm_upgrade_survives_kubernetes_api_faults() {
    if !crate::kubeadm::sshd_or_skip("a_kubeadm_upgrade_survives_kubernetes_api_faults") {
        return;
    }
    run_all(
        &[
            ("503", "kube:error503=first,retry_after=1"),
            ("reset", "kube:reset=first"),
            ("truncate", "kube:truncate=first"),
        ],
        |fault, spec| {
            let ctx = format!("kubeadm under {fault} ({spec})");
            let rig = crate::torture::kubeadm_rig::start(600.0).expect("sshd is installed");
            rig.sim.set_faults(spec);
            let run = kup(&["apply", "-auto-approve", rig.dir.to_str().unwrap()]);
            assert_eq!(run.code, 0, "{ctx}: {run:?}");
            let kind = spec.split('=').next().unwrap().trim_start_matches("kube:");
            let endpoints = assert_every_endpoint_struck(&rig.sim.faults(), kind, true, &ctx);
            assert!(
                endpoints
                    .iter()
                    .any(|e| e == "kube POST /api/v1/namespaces/{namespace}/pods/{name}/eviction"),
                "{ctx}: no eviction: {endpoints:#?}"
            );
            crate::torture::kubeadm_rig::check(&rig, &ctx);
            assert_nothing_lost(&rig.sim, &["lab"], &ctx);
        },
    );
}

#[cfg(feature = "k3s")]
#[test]
fn every_k3s_kubernetes_endpoint_survives_every_fault() {
    run_all(KUBE_FAULTS, one_k3s_case);
}

/// The blue/green drain of the old EKS group (evictions, pod waits, node waits) with
/// every Kubernetes API endpoint struck on its first request; the EKS API stays clean.
#[test]
fn an_eks_blue_green_drain_survives_every_kubernetes_api_fault() {
    run_all(KUBE_FAULTS, |name, spec| one_case(&CLOUD[1], name, spec));
}

#[test]
fn every_eks_endpoint_survives_every_fault() {
    matrix(&CLOUD[0]);
}

#[cfg(feature = "gke")]
#[test]
fn every_gke_endpoint_survives_every_fault() {
    matrix(&CLOUD[2]);
}

#[cfg(feature = "aks")]
#[test]
fn every_aks_endpoint_survives_every_fault() {
    matrix(&CLOUD[3]);
}

/// The scenario's configuration with `attribute` added to its provider block.
fn config_plus(s: &CloudUpgrade, sim: &Sim, attribute: &str) -> String {
    let text = (s.config)(sim);
    assert!(text.contains("  poll_interval"), "{text}");
    text.replacen(
        "  poll_interval",
        &format!("  {attribute}\n  poll_interval"),
        1,
    )
}

#[test]
fn an_operation_that_never_ends_stops_at_its_deadline_and_is_waited_on_not_reissued() {
    let s = &CLOUD[0];
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), s.world, s.speed, Some("hang=prod-eu"));
    let dir = tmp.path().join("config");
    std::fs::create_dir_all(&dir).unwrap();
    // 30 simulated minutes: about a second at the scenario's speed.
    std::fs::write(
        dir.join("main.kup.hcl"),
        config_plus(s, &sim, "operation_timeout = \"30m\""),
    )
    .unwrap();
    let d = dir.to_str().unwrap();
    let hops = |sim: &Sim| {
        sim.mutations()
            .into_iter()
            .filter(|m| m["op"] == "UpdateClusterVersion")
            .collect::<Vec<_>>()
    };

    let first = kup(&["apply", "-auto-approve", d]);
    assert_eq!(first.code, 1, "{first:?}");
    let issued = hops(&sim);
    assert_eq!(issued.len(), 1, "{issued:#?}");
    let update_id = issued[0]["update_id"].as_str().unwrap().to_string();
    let out = first.all();
    for needle in [
        update_id.as_str(),
        "prod/control_plane/1.29",
        "did not finish within 30m",
        "operation_timeout",
    ] {
        assert!(out.contains(needle), "missing {needle:?}: {first:?}");
    }
    let journal = std::fs::read_to_string(journal_path(&dir)).unwrap();
    assert!(journal.contains(&update_id), "{journal}");

    // Still stuck: the next apply waits on the same update, then stops again.
    let second = kup(&["apply", "-auto-approve", d]);
    assert_eq!(second.code, 1, "{second:?}");
    assert!(second.all().contains(&update_id), "{second:?}");
    assert!(second.stdout.contains("waiting on operation"), "{second:?}");
    assert_eq!(hops(&sim).len(), 1, "the stuck update was issued again");

    // Unstuck (it completes), the next apply finishes the plan: still one update per hop.
    sim.clear_faults();
    let third = kup(&["apply", "-auto-approve", d]);
    assert_eq!(third.code, 0, "{third:?}");
    let hops = hops(&sim);
    assert_eq!(hops.len(), 2, "{hops:#?}");
    assert_eq!(hops[0]["update_id"], update_id.as_str());
    assert_eq!(cluster_version(&sim.world_json(), "prod-eu"), "1.30");
}

#[test]
fn kubernetes_api_gone_during_a_blue_green_drain_loses_no_pod() {
    let s = &CLOUD[1];
    let tmp = tempfile::tempdir().unwrap();
    // From the first eviction, every connection to the cluster's API is dropped for 2 s.
    let sim = Sim::start(tmp.path(), s.world, s.speed, Some("kubedown=prod-eu:2s"));
    let dir = tmp.path().join("config");
    std::fs::create_dir_all(&dir).unwrap();
    // A drain timeout far beyond the outage (10 h is 24 s at this speed): what is tested
    // is riding it out, not the timeout.
    let config = (s.config)(&sim);
    assert!(config.contains("timeout = \"10m\""), "{config}");
    std::fs::write(
        dir.join("main.kup.hcl"),
        config.replace("timeout = \"10m\"", "timeout = \"10h\""),
    )
    .unwrap();
    let d = dir.to_str().unwrap();
    let steps = planned_provider_steps(d, s.name);
    let run = kup(&["apply", "-auto-approve", d]);
    assert_eq!(run.code, 0, "{run:?}");
    let report = sim.faults();
    let down = &report["kubedown"][0];
    assert!(
        down["started"].is_number(),
        "no eviction was made: {report:#}"
    );
    assert!(
        down["dropped"].as_u64().unwrap() > 0,
        "kup never met the outage: {report:#}"
    );
    assert_upgraded_once_nothing_lost(s, &sim, steps, s.name);
}

/// An operation that ends Failed stops its step with the provider's code, naming the node
/// group; once the fault is gone, the next apply finishes.
fn failed_operation_names_pool_and_code(s: &CloudUpgrade, fault: &str, pool: &str, code: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), s.world, s.speed, Some(fault));
    let dir = tmp.path().join("config");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.kup.hcl"), (s.config)(&sim)).unwrap();
    let d = dir.to_str().unwrap();
    let failed = kup(&["apply", "-auto-approve", d]);
    assert_eq!(failed.code, 1, "{failed:?}");
    let line = failed
        .stdout
        .lines()
        .find(|l| l.contains('✗'))
        .unwrap_or_else(|| panic!("no failed step: {failed:?}"));
    assert!(line.contains(pool), "{line}");
    assert!(line.contains(code), "{line}");
    sim.clear_faults();
    let again = kup(&["apply", "-auto-approve", d]);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(minor_of(&sim.world_json(), s.target.0), s.target.1);
}

#[cfg(feature = "gke")]
#[test]
fn a_failed_gke_operation_stops_naming_the_pool_and_the_code() {
    failed_operation_names_pool_and_code(
        &CLOUD[2],
        "fail=shop/default:FAILED_PRECONDITION:node pool upgrade blocked",
        "default",
        "FAILED_PRECONDITION",
    );
}

#[cfg(feature = "aks")]
#[test]
fn a_failed_aks_operation_stops_naming_the_pool_and_the_code() {
    failed_operation_names_pool_and_code(
        &CLOUD[3],
        "fail=checkout/apps:QuotaExceeded",
        "apps",
        "QuotaExceeded",
    );
}

#[test]
fn a_green_group_that_never_becomes_ready_stops_naming_it_and_loses_no_pod() {
    let s = &CLOUD[1];
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(
        tmp.path(),
        s.world,
        s.speed,
        Some("notready=prod-eu/payments-1-29"),
    );
    let dir = tmp.path().join("config");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.kup.hcl"), (s.config)(&sim)).unwrap();
    let d = dir.to_str().unwrap();
    let stuck = kup(&["apply", "-auto-approve", d]);
    assert_eq!(stuck.code, 1, "{stuck:?}");
    let line = stuck
        .stdout
        .lines()
        .find(|l| l.contains('✗'))
        .unwrap_or_else(|| panic!("no failed step: {stuck:?}"));
    assert!(line.contains("payments-1-29"), "{line}");
    // The nodes themselves are named, with what is wrong with them.
    assert!(line.contains("(NotReady)"), "{line}");
    let audit = get_json(&format!("{}/kube/prod-eu/audit", sim.admin));
    assert_eq!(audit["lost_pods"], serde_json::json!([]), "{audit:#}");
    sim.clear_faults();
    let again = kup(&["apply", "-auto-approve", d]);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(minor_of(&sim.world_json(), "prod-eu"), "1.29");
}
