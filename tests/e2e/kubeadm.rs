//! kubeadm over SSH, against real `sshd`s on loopback addresses (one per host) whose PATH
//! holds the simulator's recording stand-ins for kubeadm, apt, dnf and systemctl. kup's
//! SSH path, command order and version bookkeeping are all real; the stand-ins move the
//! simulated cluster through the simulator's admin API. Skipped (with a note) when sshd is
//! not installed; `.ci/run` installs it.

use std::collections::BTreeMap;

use kup_sim::hosts::{HostOs, HostSpec, Hosts};
use serde_json::Value;

use crate::harness::*;

const WORLD: &str = r#"
kubeadm_cluster "lab" {
  version       = "1.29.8"
  control_plane = ["cp1", "cp2", "cp3"]
  workers       = ["w1", "w2", "w3"]
  packages = {
    "1.29" = ["1.29.8", "1.29.12"]
    "1.30" = ["1.30.5", "1.30.9"]
    "1.31" = ["1.31.2", "1.31.4"]
  }
  workload "web" {
    namespace = "shop"
    replicas  = 4
    cpu       = "100m"
    memory    = "128Mi"
    pdb { min_available = 3 }
  }
}
"#;

pub(crate) fn sshd_or_skip(test: &str) -> bool {
    if Hosts::sshd_available() {
        return true;
    }
    eprintln!("SKIPPED {test}: sshd is not installed (apt-get install openssh-server)");
    false
}

/// Fields drop in order: the hosts (closing their SSH connections) before the
/// simulator, and both before their directory.
pub(crate) struct Lab {
    pub(crate) hosts: Hosts,
    pub(crate) sim: Sim,
    pub(crate) dir: String,
    pub(crate) _tmp: tempfile::TempDir,
}

/// cp3 and w2 are dnf hosts (w2 with DNF5); the rest apt.
pub(crate) fn lab(faults: Option<&str>, speed: f64) -> Lab {
    lab_with(faults, speed, "")
}

/// `extra` goes into the cluster block.
fn lab_with(faults: Option<&str>, speed: f64, extra: &str) -> Lab {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), WORLD, speed, faults);
    let os = |n: &str| match n {
        "cp3" => HostOs::Fedora,
        "w2" => HostOs::Fedora5,
        _ => HostOs::Debian,
    };
    let specs: Vec<HostSpec> = ["cp1", "cp2", "cp3", "w1", "w2", "w3"]
        .iter()
        .map(|n| HostSpec::new(*n, os(n)))
        .collect();
    let hosts = Hosts::start(
        &tmp.path().join("hosts"),
        "lab",
        &sim.admin,
        "1.29.8",
        &specs,
    )
    .expect("sshd hosts start");
    let dir = tmp.path().join("config");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("main.kup.hcl"),
        format!(
            r#"provider "kubeadm" {{
  poll_interval = "20ms"
}}

cluster "lab" {{
  kubeconfig = "{}"
  version    = "1.31"
  ssh {{
    config = "{}"
  }}
  control_plane {{
    hosts = ["cp1.lab", "cp2.lab", "cp3.lab"]
  }}
  {extra}
  node_group "workers" {{
    hosts           = ["w1.lab", "w2.lab", "w3.lab"]
    max_unavailable = 2
    drain {{
      timeout = "10m"
    }}
  }}
}}
"#,
            sim.kubeconfigs["lab"],
            hosts.ssh_config().display()
        ),
    )
    .unwrap();
    Lab {
        dir: dir.to_str().unwrap().to_string(),
        _tmp: tmp,
        sim,
        hosts,
    }
}

pub(crate) fn audit(sim: &Sim) -> Value {
    sim.kube_audit("lab")
}

/// The simulator's record of kubeadm's effects, in order: (op, node, version).
pub(crate) fn effects(sim: &Sim) -> Vec<(String, String, String)> {
    audit(sim)["kubeadm"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|e| e["ok"] == true)
        .map(|e| {
            (
                e["op"].as_str().unwrap_or("").to_string(),
                e["node"].as_str().unwrap_or("").to_string(),
                e["version"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

pub(crate) fn kubelets(sim: &Sim) -> BTreeMap<String, String> {
    sim.kubelets("lab")
}

/// The lines of a host's transcript that change it, without the `sudo -n` wrappers.
fn changes(hosts: &Hosts, node: &str) -> Vec<String> {
    hosts
        .calls(node)
        .into_iter()
        .filter(|l| {
            l.starts_with("kubeadm upgrade apply")
                || l.starts_with("kubeadm upgrade node")
                || l.starts_with("systemctl restart")
        })
        .collect()
}

#[test]
fn three_control_planes_three_workers_in_the_documented_order() {
    if !sshd_or_skip("three_control_planes_three_workers_in_the_documented_order") {
        return;
    }
    let lab = lab(None, 600.0);
    let plan = kup(&["plan", &lab.dir]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(
        plan.stdout.contains("upgrade control plane 1.29.8 → 1.30"),
        "{plan:?}"
    );

    let run = kup(&["apply", "-auto-approve", &lab.dir]);
    assert_eq!(run.code, 0, "{run:?}");
    for (n, v) in kubelets(&lab.sim) {
        assert_eq!(v, "v1.31.4", "node {n}");
    }

    // Per host: the first control plane applies, the others `upgrade node`, every host
    // restarts its kubelet once per round.
    let round = |first: &str| vec![first.to_string(), "systemctl restart kubelet".to_string()];
    let mut want = round("kubeadm upgrade apply v1.30.9 --yes");
    want.extend(round("kubeadm upgrade apply v1.31.4 --yes"));
    assert_eq!(changes(&lab.hosts, "cp1"), want);
    for n in ["cp2", "cp3", "w1", "w2", "w3"] {
        let mut want = round("kubeadm upgrade node");
        want.extend(round("kubeadm upgrade node"));
        assert_eq!(changes(&lab.hosts, n), want, "{n}");
    }

    // Across hosts, per round: cp1 applies, then cp1, cp2, cp3 one at a time, then the
    // workers two at a time.
    let e = effects(&lab.sim);
    for v in ["1.30.9", "1.31.4"] {
        let round: Vec<(String, String)> = e
            .iter()
            .filter(|(_, _, ver)| ver == v || ver.is_empty())
            .map(|(op, node, _)| (op.clone(), node.clone()))
            .collect();
        let pos = |op: &str, node: &str| {
            round
                .iter()
                .position(|(o, n)| o == op && n == node)
                .unwrap_or_else(|| panic!("no {op} on {node} in round {v}: {round:?}"))
        };
        assert!(pos("upgrade-apply", "cp1") < pos("kubelet-restart", "cp1"));
        assert!(pos("kubelet-restart", "cp1") < pos("upgrade-node", "cp2"));
        assert!(pos("kubelet-restart", "cp2") < pos("upgrade-node", "cp3"));
        for w in ["w1", "w2", "w3"] {
            assert!(
                pos("kubelet-restart", "cp3") < pos("upgrade-node", w),
                "{w}"
            );
        }
        // w3 is in the second batch of max_unavailable = 2.
        assert!(pos("kubelet-restart", "w1") < pos("upgrade-node", "w3"));
        assert!(pos("kubelet-restart", "w2") < pos("upgrade-node", "w3"));
    }
    // Drains happened through the budgets; nothing was lost.
    let a = audit(&lab.sim);
    assert_eq!(a["lost_pods"], serde_json::json!([]), "{a}");
    for (name, p) in a["pdbs"].as_object().unwrap() {
        assert_eq!(p["violated"], false, "PDB {name}: {a}");
    }
    // apt and dnf hosts each used their own package manager.
    assert!(lab
        .hosts
        .calls("cp1")
        .iter()
        .any(|l| l.starts_with("apt-get install -y kubeadm=1.30.9-1.1")));
    assert!(lab
        .hosts
        .calls("cp3")
        .iter()
        .any(|l| l.starts_with("dnf install -y kubeadm-1.30.9")
            && l.ends_with("--disableexcludes=kubernetes")));
    assert!(lab
        .hosts
        .calls("w2")
        .iter()
        .any(|l| l.starts_with("dnf install -y kubeadm-1.30.9")
            && l.ends_with("--setopt=disable_excludes=kubernetes")));
    // Every command is in the journal.
    let journal = std::fs::read_to_string(journal_path(std::path::Path::new(&lab.dir))).unwrap();
    assert!(journal.contains("\"record\":\"host_command\""), "{journal}");
    assert!(
        journal.contains("kubeadm upgrade apply v1.31.4 --yes"),
        "no apply in the journal"
    );

    let again = kup(&["plan", &lab.dir]);
    assert!(again.stdout.contains("No changes."), "{again:?}");
}

#[test]
fn a_failed_upgrade_apply_stops_before_any_other_host_then_resumes() {
    if !sshd_or_skip("a_failed_upgrade_apply_stops_before_any_other_host_then_resumes") {
        return;
    }
    // The CNI command carries shell syntax that must arrive as plain arguments.
    let lab = lab_with(
        Some("kubeadmfail=lab/cp1"),
        600.0,
        r#"cni_upgrade {
    command = ["systemctl", "restart", "/etc/x; touch /tmp/kup-pwned-1", "$(touch /tmp/kup-pwned-2)", "`touch /tmp/kup-pwned-3`", "'\"; touch /tmp/kup-pwned-4"]
  }"#,
    );
    let run = kup(&["apply", "-auto-approve", &lab.dir]);
    assert_eq!(run.code, 1, "{run:?}");
    let all = run.all();
    assert!(
        all.contains("kubeadm upgrade apply failed on cp1.lab"),
        "{all}"
    );
    assert!(all.contains("no other host was touched"), "{all}");
    assert!(
        all.contains("/etc/kubernetes/tmp/kubeadm-backup-etcd-"),
        "{all}"
    );
    // The pre-check gate read every host; nothing but cp1 was changed.
    for n in ["cp2", "cp3", "w1", "w2", "w3"] {
        let changed: Vec<String> = lab
            .hosts
            .calls(n)
            .into_iter()
            .filter(|l| {
                [
                    "tee",
                    "apt-get",
                    "apt-mark",
                    "dnf install",
                    "dnf makecache",
                    "kubeadm upgrade",
                    "systemctl",
                ]
                .iter()
                .any(|c| l.starts_with(c))
            })
            .collect();
        assert!(changed.is_empty(), "{n} was changed: {changed:?}");
        assert!(!lab.hosts.calls(n).is_empty(), "{n} was not pre-checked");
    }
    assert!(kubelets(&lab.sim).values().all(|v| v == "v1.29.8"));

    let again = kup(&["apply", "-auto-approve", &lab.dir]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(kubelets(&lab.sim).values().all(|v| v == "v1.31.4"));
    // The CNI command ran after each apply with its arguments intact, none executed.
    let cni: Vec<String> = lab
        .hosts
        .calls("cp1")
        .into_iter()
        .filter(|l| l.starts_with("systemctl restart /etc/x;"))
        .collect();
    let hostile = "systemctl restart /etc/x; touch /tmp/kup-pwned-1 $(touch /tmp/kup-pwned-2) `touch /tmp/kup-pwned-3` '\"; touch /tmp/kup-pwned-4";
    assert_eq!(cni, [hostile, hostile], "{again:?}");
    for i in 1..=4 {
        assert!(
            !std::path::Path::new(&format!("/tmp/kup-pwned-{i}")).exists(),
            "argument {i} was executed"
        );
    }
}

#[test]
fn sigkill_between_worker_batches_then_resume_upgrades_no_host_twice() {
    if !sshd_or_skip("sigkill_between_worker_batches_then_resume_upgrades_no_host_twice") {
        return;
    }
    let lab = lab(None, 300.0);
    let mut child = spawn_kup(&["apply", "-auto-approve", &lab.dir]);
    // The first worker batch of the first round is done.
    wait_until("w1 and w2 restarted at 1.30.9", || {
        let e = effects(&lab.sim);
        let done = |n: &str| {
            e.iter()
                .any(|(op, node, v)| op == "kubelet-restart" && node == n && v == "1.30.9")
        };
        (done("w1") && done("w2")) || child.try_wait().map(|s| s.is_some()).unwrap_or(true)
    });
    // SAFETY: plain kill(2) of our own child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
    }
    child.wait().unwrap();
    let last = kup(&["apply", "-auto-approve", &lab.dir]);
    assert_eq!(last.code, 0, "{last:?}");
    assert!(
        last.stdout
            .contains("Resuming the apply that did not finish"),
        "{last:?}"
    );
    let mut restarts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (op, node, v) in effects(&lab.sim) {
        if op == "kubelet-restart" {
            *restarts.entry((node, v)).or_default() += 1;
        }
    }
    assert_eq!(restarts.len(), 12, "{restarts:?}");
    assert!(
        restarts.values().all(|n| *n == 1),
        "a host was upgraded twice: {restarts:?}"
    );
    assert!(kubelets(&lab.sim).values().all(|v| v == "v1.31.4"));
}

#[test]
fn a_host_key_that_does_not_match_known_hosts_is_refused() {
    if !sshd_or_skip("a_host_key_that_does_not_match_known_hosts_is_refused") {
        return;
    }
    let lab = lab(None, 600.0);
    // Replace cp1's key in known_hosts with another key.
    let other = lab.hosts.client_key().with_extension("pub");
    let other = std::fs::read_to_string(&other).unwrap();
    let other_key: Vec<&str> = other.split_whitespace().take(2).collect();
    let kh = std::fs::read_to_string(lab.hosts.known_hosts()).unwrap();
    let mut lines: Vec<String> = kh.lines().map(String::from).collect();
    let a = lab.hosts.addr("cp1");
    let addr = format!("[{}]:{}", a.ip(), a.port());
    let i = lines
        .iter()
        .position(|l| l.starts_with(&addr))
        .expect("cp1 in known_hosts");
    lines[i] = format!("{addr} {}", other_key.join(" "));
    std::fs::write(lab.hosts.known_hosts(), lines.join("\n") + "\n").unwrap();

    let run = kup(&["apply", "-auto-approve", &lab.dir]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.all()
            .contains("the host key of cp1.lab is not the one in known_hosts"),
        "{run:?}"
    );
    assert!(lab.hosts.calls("cp1").is_empty());
    assert!(kubelets(&lab.sim).values().all(|v| v == "v1.29.8"));
}

#[test]
fn the_pre_check_gate_stops_the_plan_before_any_change() {
    if !sshd_or_skip("the_pre_check_gate_stops_the_plan_before_any_change") {
        return;
    }
    let lab = lab(None, 600.0);
    // A worker with swap on: found before the control plane moves.
    std::fs::write(
        lab.hosts.root("w3").join("proc/swaps"),
        "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/swap.img                               file\t\t4194300\t\t0\t\t-2\n",
    )
    .unwrap();
    let run = kup(&["apply", "-auto-approve", &lab.dir]);
    assert_eq!(run.code, 1, "{run:?}");
    let all = run.all();
    assert!(
        all.contains("pre-checks failed on 1 host(s); nothing was changed")
            && all.contains("w3.lab: swap is on (/swap.img"),
        "{all}"
    );
    assert!(changes(&lab.hosts, "cp1").is_empty());
    assert!(kubelets(&lab.sim).values().all(|v| v == "v1.29.8"));
}
