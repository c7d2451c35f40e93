//! system-upgrade-controller `Plan` resources (`upgrade.cattle.io/v1`) as kup writes and
//! reads them: pure functions from a node group's configuration to the Plan body, and from
//! a Plan, its Jobs and the nodes to kup's view of a round's progress.
//!
//! Field semantics from `rancher/system-upgrade-controller` `pkg/apis/upgrade.cattle.io/v1`
//! (summarised in ../shared/reference/PRIOR-ART.md §2.7).

use std::collections::BTreeMap;
use std::time::Duration;

use kup_engine::model::{DrainSpec, NodeGroupSpec, Toleration, UpgradeWindow};
use kup_engine::version::Version;
use serde_json::{json, Value};

use crate::kube::selector::LabelSelector;

pub const GROUP: &str = "upgrade.cattle.io";
pub const API_VERSION: &str = "upgrade.cattle.io/v1";
pub const CRD: &str = "plans.upgrade.cattle.io";
pub const CONTROLLER: &str = "system-upgrade-controller";
pub const DEFAULT_NAMESPACE: &str = "system-upgrade";
pub const DEFAULT_SERVICE_ACCOUNT: &str = "system-upgrade";
pub const CP_ROLE: &str = "node-role.kubernetes.io/control-plane";
/// Marks the Plans kup creates; Plans without it are never touched.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const KUP: &str = "kup";
pub const NODE_GROUP_LABEL: &str = "kup.dev/node-group";
pub const STARTED_AT: &str = "kup.dev/started-at";
/// The field manager of kup's server-side applies.
pub const FIELD_MANAGER: &str = "kup";
/// What the upstream docs tell users to apply when the controller is missing.
pub const INSTALL_HINT: &str = "install system-upgrade-controller first: kubectl apply -f https://github.com/rancher/system-upgrade-controller/releases/latest/download/crd.yaml -f https://github.com/rancher/system-upgrade-controller/releases/latest/download/system-upgrade-controller.yaml";

/// K3s or RKE2: which upgrade image and channel server apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dist {
    K3s,
    Rke2,
}

impl Dist {
    pub fn kind(self) -> &'static str {
        match self {
            Dist::K3s => "k3s",
            Dist::Rke2 => "rke2",
        }
    }
    pub fn image(self) -> &'static str {
        match self {
            Dist::K3s => "rancher/k3s-upgrade",
            Dist::Rke2 => "rancher/rke2-upgrade",
        }
    }
    pub fn channel_server(self) -> &'static str {
        match self {
            Dist::K3s => "https://update.k3s.io/v1-release/channels",
            Dist::Rke2 => "https://update.rke2.io/v1-release/channels",
        }
    }
    pub fn example(self) -> &'static str {
        match self {
            Dist::K3s => "v1.31.4+k3s1",
            Dist::Rke2 => "v1.31.4+rke2r1",
        }
    }
}

/// A release as K3s/RKE2 write it: `v1.31.4+k3s1`.
pub fn release(v: &Version) -> String {
    format!("v{v}")
}

/// The Plan kup uses for a node group.
pub fn plan_name(group: &str) -> String {
    format!("kup-{group}")
}

/// The selector a node group uses: its `node_selector`, or for `servers` the
/// control-plane nodes and for `agents` every other node.
pub fn group_selector(ng: &NodeGroupSpec) -> Result<String, String> {
    match (&ng.node_selector, ng.name.as_str()) {
        (Some(s), _) => Ok(s.clone()),
        (None, "servers") => Ok(format!("{CP_ROLE} in (true)")),
        (None, "agents") => Ok(format!("!{CP_ROLE}")),
        (None, other) => Err(format!(
            "node group {other} has no node_selector; only `servers` (control-plane nodes) and `agents` (the rest) have default selectors: add node_selector = \"LABEL=VALUE\""
        )),
    }
}

/// The selector of the server group when the configuration names none.
pub fn default_server_selector() -> String {
    format!("{CP_ROLE} in (true)")
}

/// A Go duration string (`600s`) for the controller's `time.ParseDuration`.
fn go_duration(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

fn drain_json(d: &DrainSpec) -> Result<Value, String> {
    let mut out = json!({
        "ignoreDaemonSets": true,
        "deleteEmptydirData": d.delete_emptydir_data,
        "force": d.force,
    });
    if let Some(t) = d.timeout {
        out["timeout"] = json!(go_duration(t));
    }
    if let Some(g) = d.grace_period {
        out["gracePeriod"] = json!(g.as_secs());
    }
    if let Some(s) = d.skip_wait_for_delete_timeout {
        out["skipWaitForDeleteTimeout"] = json!(s.as_secs());
    }
    if d.disable_eviction {
        out["disableEviction"] = json!(true);
    }
    if let Some(sel) = &d.pod_selector {
        out["podSelector"] = LabelSelector::parse(sel)?.to_json();
    }
    Ok(out)
}

fn toleration_json(t: &Toleration) -> Value {
    let mut out = json!({});
    if let Some(k) = &t.key {
        out["key"] = json!(k);
    }
    if let Some(o) = &t.operator {
        out["operator"] = json!(o);
    }
    if let Some(v) = &t.value {
        out["value"] = json!(v);
    }
    if let Some(e) = &t.effect {
        out["effect"] = json!(e);
    }
    if let Some(s) = t.toleration_seconds {
        out["tolerationSeconds"] = json!(s);
    }
    out
}

fn window_json(w: &UpgradeWindow) -> Value {
    json!({
        "days": w.days,
        "startTime": w.start,
        "endTime": w.end,
        "timeZone": w.time_zone.as_deref().unwrap_or("UTC"),
    })
}

/// Everything a Plan is made from.
pub struct PlanInput<'a> {
    pub cluster_label: &'a str,
    pub namespace: &'a str,
    pub group: &'a str,
    /// The group's configuration (`None`: the implicit server group).
    pub spec: Option<&'a NodeGroupSpec>,
    pub selector: &'a str,
    pub nodes: u32,
    pub version: &'a Version,
    pub image: &'a str,
    pub service_account: &'a str,
    /// The Plan agents wait for in their prepare step (`None` for the servers' Plan).
    pub gate: Option<&'a str>,
    pub started_at: &'a str,
}

/// The Plan body kup applies. `concurrency` is the group's `max_unavailable` against its
/// node count; without a `drain` block nodes are cordoned only (the upstream pattern).
pub fn plan_body(p: &PlanInput<'_>) -> Result<Value, String> {
    let concurrency = p
        .spec
        .map(|s| s.strategy.max_unavailable().nodes_of(p.nodes))
        .unwrap_or(1)
        .max(1);
    let mut spec = json!({
        "concurrency": concurrency,
        "cordon": true,
        "nodeSelector": LabelSelector::parse(p.selector)?.to_json(),
        "serviceAccountName": p.service_account,
        "version": release(p.version),
        "upgrade": { "image": p.image },
    });
    if let Some(s) = p.spec {
        if s.drain != DrainSpec::default() {
            spec["drain"] = drain_json(&s.drain)?;
        }
        if !s.tolerations.is_empty() {
            spec["tolerations"] = Value::Array(s.tolerations.iter().map(toleration_json).collect());
        }
        if let Some(w) = &s.window {
            spec["window"] = window_json(w);
        }
        if let Some(d) = s.batch_soak {
            spec["postCompleteDelay"] = json!(go_duration(d));
        }
    }
    if let Some(gate) = p.gate {
        spec["prepare"] = json!({ "image": p.image, "args": ["prepare", gate] });
    }
    Ok(json!({
        "apiVersion": API_VERSION,
        "kind": "Plan",
        "metadata": {
            "name": plan_name(p.group),
            "namespace": p.namespace,
            "labels": {
                MANAGED_BY: KUP,
                NODE_GROUP_LABEL: p.group,
                "kup.dev/cluster": p.cluster_label,
            },
            "annotations": { STARTED_AT: p.started_at },
        },
        "spec": spec,
    }))
}

/// Whether kup created this Plan.
pub fn is_kups(plan: &Value) -> bool {
    plan["metadata"]["labels"][MANAGED_BY].as_str() == Some(KUP)
}

/// A condition of a Plan or Job: (`status`, `reason`, `message`).
pub fn condition<'a>(obj: &'a Value, kind: &str) -> Option<(&'a str, &'a str, &'a str)> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"].as_str() == Some(kind))
        .map(|c| {
            (
                c["status"].as_str().unwrap_or(""),
                c["reason"].as_str().unwrap_or(""),
                c["message"].as_str().unwrap_or(""),
            )
        })
}

/// A node as the progress count needs it.
#[derive(Clone, Debug)]
pub struct NodeView {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub kubelet: String,
    pub ready: bool,
}

/// What one round looks like now.
#[derive(Clone, Debug, PartialEq)]
pub enum RoundState {
    /// The controller has not resolved the Plan yet.
    Resolving,
    Running {
        done: u64,
        total: u64,
        stage: Option<String>,
    },
    Done,
    Failed {
        code: String,
        message: String,
    },
}

/// The round of `plan` for `version`: done nodes carry `plan.upgrade.cattle.io/<plan>` =
/// `status.latestHash` and a kubelet at `version`; a failed Job of the round fails it.
pub fn round_state(
    plan: &Value,
    version: &Version,
    jobs: &[Value],
    nodes: &[NodeView],
) -> RoundState {
    let name = plan["metadata"]["name"].as_str().unwrap_or("");
    let want = release(version);
    if plan["spec"]["version"].as_str() != Some(want.as_str()) {
        return RoundState::Failed {
            code: "PlanChanged".into(),
            message: format!(
                "Plan {name} now asks for {} instead of {want}: it was changed behind kup's back; run `kup plan` again",
                plan["spec"]["version"].as_str().unwrap_or("no version")
            ),
        };
    }
    for kind in ["Validated", "LatestResolved"] {
        if let Some(("False", reason, message)) = condition(plan, kind) {
            return RoundState::Failed {
                code: if reason.is_empty() { kind } else { reason }.to_string(),
                message: format!("system-upgrade-controller rejected Plan {name}: {message}"),
            };
        }
    }
    let Some(hash) = plan["status"]["latestHash"]
        .as_str()
        .filter(|h| !h.is_empty())
    else {
        return RoundState::Resolving;
    };
    if plan["status"]["latestVersion"].as_str() != Some(want.as_str()) {
        return RoundState::Resolving;
    }
    let label = format!("plan.upgrade.cattle.io/{name}");
    for job in jobs {
        let labels = &job["metadata"]["labels"];
        if labels[&label].as_str() != Some(hash) {
            continue;
        }
        if let Some(("True", reason, message)) = condition(job, "Failed") {
            let node = labels["upgrade.cattle.io/node"].as_str().unwrap_or("?");
            return RoundState::Failed {
                code: if reason.is_empty() { "JobFailed" } else { reason }.to_string(),
                message: format!(
                    "the upgrade Job {} on node {node} failed: {message} (the node stays cordoned; fix the cause, then run `kup apply` again to retry)",
                    job["metadata"]["name"].as_str().unwrap_or("?")
                ),
            };
        }
    }
    let done = nodes
        .iter()
        .filter(|n| n.labels.get(&label).map(String::as_str) == Some(hash) && n.kubelet == want)
        .count() as u64;
    let total = nodes.len() as u64;
    let applying: Vec<&str> = plan["status"]["applying"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if done == total && applying.is_empty() {
        return RoundState::Done;
    }
    let stage = if !applying.is_empty() {
        Some(format!("upgrading {}", applying.join(", ")))
    } else {
        match condition(plan, "Complete") {
            Some((_, _, m)) if !m.is_empty() => Some(m.to_string()),
            _ => None,
        }
    };
    RoundState::Running { done, total, stage }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kup_engine::model::{Strategy, Unavailable};

    fn group(name: &str) -> NodeGroupSpec {
        NodeGroupSpec {
            hosts: Vec::new(),
            name: name.into(),
            version: "1.31".parse().unwrap(),
            follows_cluster: true,
            strategy: Strategy::Rolling {
                max_unavailable: Unavailable::Percent(25),
                max_surge: None,
            },
            drain: DrainSpec {
                timeout: Some(Duration::from_secs(600)),
                delete_emptydir_data: true,
                pod_selector: Some("app!=batch".into()),
                ..Default::default()
            },
            node_soak: None,
            node_selector: None,
            tolerations: vec![Toleration {
                key: Some("edge".into()),
                operator: Some("Exists".into()),
                ..Default::default()
            }],
            window: Some(UpgradeWindow {
                days: vec!["saturday".into()],
                start: "01:00".into(),
                end: "05:00".into(),
                time_zone: None,
            }),
            batch_soak: Some(Duration::from_secs(120)),
            timeout: None,
            origin: None,
            version_origin: None,
        }
    }

    #[test]
    fn agent_plan_carries_every_setting() {
        let ng = group("agents");
        let v: Version = "v1.31.4+k3s1".parse().unwrap();
        let sel = group_selector(&ng).unwrap();
        let body = plan_body(&PlanInput {
            cluster_label: "edge",
            namespace: "system-upgrade",
            group: "agents",
            spec: Some(&ng),
            selector: &sel,
            nodes: 8,
            version: &v,
            image: Dist::K3s.image(),
            service_account: DEFAULT_SERVICE_ACCOUNT,
            gate: Some("kup-servers"),
            started_at: "2026-11-23T00:00:00Z",
        })
        .unwrap();
        let s = &body["spec"];
        assert_eq!(s["concurrency"], 2);
        assert_eq!(s["version"], "v1.31.4+k3s1");
        assert_eq!(
            s["nodeSelector"],
            json!({"matchExpressions": [{"key": CP_ROLE, "operator": "DoesNotExist"}]})
        );
        assert_eq!(s["drain"]["timeout"], "600s");
        assert_eq!(s["drain"]["deleteEmptydirData"], true);
        assert_eq!(
            s["drain"]["podSelector"]["matchExpressions"][0]["operator"],
            "NotIn"
        );
        assert_eq!(s["prepare"]["args"], json!(["prepare", "kup-servers"]));
        assert_eq!(s["window"]["timeZone"], "UTC");
        assert_eq!(s["postCompleteDelay"], "120s");
        assert_eq!(s["tolerations"][0]["operator"], "Exists");
        assert!(is_kups(&body));
    }

    #[test]
    fn servers_without_drain_block_are_cordoned_only() {
        let mut ng = group("servers");
        ng.drain = DrainSpec::default();
        let v: Version = "v1.30.9+rke2r1".parse().unwrap();
        let sel = group_selector(&ng).unwrap();
        let body = plan_body(&PlanInput {
            cluster_label: "edge",
            namespace: "system-upgrade",
            group: "servers",
            spec: Some(&ng),
            selector: &sel,
            nodes: 3,
            version: &v,
            image: Dist::Rke2.image(),
            service_account: DEFAULT_SERVICE_ACCOUNT,
            gate: None,
            started_at: "x",
        })
        .unwrap();
        assert!(body["spec"]["drain"].is_null());
        assert_eq!(body["spec"]["cordon"], true);
        assert_eq!(body["spec"]["upgrade"]["image"], "rancher/rke2-upgrade");
        assert_eq!(
            body["spec"]["nodeSelector"]["matchExpressions"][0]["values"],
            json!(["true"])
        );
        assert!(group_selector(&group("gpu")).is_err());
    }

    fn node(name: &str, hash: Option<&str>, kubelet: &str) -> NodeView {
        let mut labels = BTreeMap::new();
        if let Some(h) = hash {
            labels.insert("plan.upgrade.cattle.io/kup-agents".into(), h.into());
        }
        NodeView {
            name: name.into(),
            labels,
            kubelet: kubelet.into(),
            ready: true,
        }
    }

    #[test]
    fn round_progress_failure_and_completion() {
        let v: Version = "v1.31.4+k3s1".parse().unwrap();
        let mut plan = json!({
            "metadata": {"name": "kup-agents"},
            "spec": {"version": "v1.31.4+k3s1"},
            "status": {}
        });
        assert_eq!(round_state(&plan, &v, &[], &[]), RoundState::Resolving);
        plan["status"] =
            json!({"latestHash": "abc", "latestVersion": "v1.31.4+k3s1", "applying": ["a2"]});
        let nodes = vec![
            node("a1", Some("abc"), "v1.31.4+k3s1"),
            node("a2", None, "v1.30.9+k3s1"),
        ];
        assert_eq!(
            round_state(&plan, &v, &[], &nodes),
            RoundState::Running {
                done: 1,
                total: 2,
                stage: Some("upgrading a2".into())
            }
        );
        let failed = json!({
            "metadata": {"name": "apply-kup-agents-on-a2-with-abc", "labels": {
                "plan.upgrade.cattle.io/kup-agents": "abc", "upgrade.cattle.io/node": "a2"}},
            "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "boom"}]}
        });
        match round_state(&plan, &v, std::slice::from_ref(&failed), &nodes) {
            RoundState::Failed { code, message } => {
                assert_eq!(code, "BackoffLimitExceeded");
                assert!(
                    message.contains("boom") && message.contains("a2"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        // A failed Job of an earlier round (other hash) does not count.
        let mut old = failed;
        old["metadata"]["labels"]["plan.upgrade.cattle.io/kup-agents"] = json!("old");
        plan["status"]["applying"] = json!([]);
        let nodes = vec![
            node("a1", Some("abc"), "v1.31.4+k3s1"),
            node("a2", Some("abc"), "v1.31.4+k3s1"),
        ];
        assert_eq!(round_state(&plan, &v, &[old], &nodes), RoundState::Done);
        plan["spec"]["version"] = json!("v1.32.0+k3s1");
        assert!(matches!(
            round_state(&plan, &v, &[], &nodes),
            RoundState::Failed { code, .. } if code == "PlanChanged"
        ));
    }
}
