//! A stand-in for Rancher's system-upgrade-controller (SUC) on K3s / RKE2 clusters: it
//! resolves each Plan (`spec.version`, or `spec.channel` through the world's channel server),
//! selects nodes, runs one Job per node (prepare gate, cordon/drain through the PDB-enforcing
//! eviction logic, the upgrade), relabels and uncordons upgraded nodes and keeps
//! `status.{latestVersion,latestHash,applying,conditions}` as upstream does.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};

use super::ctrl;
use super::nodes::{cordon, uncordon};
use super::select::LabelSelector;
use super::util::{self, k8s_time, parse_k8s_time};
use super::{KCluster, Kind};
use crate::faults::JobFail;
use crate::k3s::{version_key, Dist, K3sCluster};

pub const SERVICE_ACCOUNT: &str = "system-upgrade";
pub const CONTROLLER: &str = "system-upgrade-controller";
/// Simulated seconds the upgrade container takes (replace the binary, restart the service).
pub const UPGRADE_SECS: f64 = 60.0;
/// Eviction retry interval after a 429 (kubectl drain's 5 s).
pub const EVICT_RETRY_SECS: f64 = 5.0;
/// Controller default `activeDeadlineSeconds` of a Job.
pub const ACTIVE_DEADLINE_SECS: f64 = 600.0;
/// Controller default `ttlSecondsAfterFinished`.
pub const TTL_SECS: f64 = 900.0;

const CP: &str = "node-role.kubernetes.io/control-plane";

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Waiting in the prepare init container (gate on another plan).
    Prepare,
    Drain,
    Upgrade,
    /// Job complete; the node stays in `applying` for `postCompleteDelay`.
    Soak,
    Failed,
}

#[derive(Debug, Clone)]
struct Run {
    job: String,
    hash: String,
    version: String,
    phase: Phase,
    /// When the node left prepare (cordon/drain/upgrade began).
    started: f64,
    phase_at: f64,
    next_evict: f64,
    finished: f64,
    fail_msg: Option<String>,
    audit: usize,
}

/// Per-cluster controller state.
pub struct Suc {
    pub ns: String,
    pub dist: Dist,
    /// plan name → node name → run.
    runs: BTreeMap<String, BTreeMap<String, Run>>,
}

impl Suc {
    pub fn new(ns: &str, dist: Dist) -> Suc {
        Suc {
            ns: ns.to_string(),
            dist,
            runs: BTreeMap::new(),
        }
    }
}

/// Per-plan audit record (`GET /_sim/kube/CLUSTER/audit` → `plans`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PlanAudit {
    /// Most nodes ever in `status.applying` at once (bounded by `spec.concurrency`).
    pub max_applying: usize,
    /// Most nodes ever past the prepare step (cordoning/draining/upgrading/failed) at once.
    pub max_in_progress: usize,
    /// Most of this plan's nodes ever cordoned at once.
    pub max_cordoned: usize,
    /// The plan named in the prepare gate (`args: ["prepare", PLAN]`).
    pub gate: Option<String>,
    /// Nodes that started while a node of the gate plan was unfinished (must stay empty).
    pub started_before_gate_complete: Vec<String>,
    /// Nodes upgraded, in completion order.
    pub completed: Vec<String>,
    /// Nodes in start order (left prepare).
    pub started: Vec<String>,
    pub jobs_failed: u64,
}

/// One SUC Job (`audit.jobs`).
#[derive(Debug, Clone, Serialize)]
pub struct JobAudit {
    pub name: String,
    pub plan: String,
    pub node: String,
    pub version: String,
    pub hash: String,
    pub created: String,
    pub started: Option<String>,
    pub finished: Option<String>,
    /// `Running`, `Complete` or `Failed`.
    pub outcome: String,
    pub message: Option<String>,
}

/// A write that changed a Plan's spec (`audit.plan_writes`).
#[derive(Debug, Clone, Serialize)]
pub struct PlanWrite {
    /// `namespace/name`.
    pub plan: String,
    /// `create`, `update` or `delete`.
    pub op: String,
    /// The Plan's `spec.version` (or `spec.channel`) after the write, before a deletion.
    pub version: Option<String>,
}

impl PlanWrite {
    pub fn of(op: &str, plan: &Value) -> PlanWrite {
        let spec = &plan["spec"];
        PlanWrite {
            plan: format!("{}/{}", util::namespace(plan), util::name(plan)),
            op: op.to_string(),
            version: spec["version"]
                .as_str()
                .or(spec["channel"].as_str())
                .map(str::to_string),
        }
    }
}

/// 56 hex characters (the length of upstream's sha224), from FNV rounds.
fn hash56(s: &str) -> String {
    format!(
        "{:016x}{:016x}{:016x}{:08x}",
        util::fnv(&format!("0{s}")),
        util::fnv(&format!("1{s}")),
        util::fnv(&format!("2{s}")),
        util::fnv(&format!("3{s}")) as u32
    )
}

/// `status.latestHash`: as upstream, over the resolved version, the service account and the
/// secrets (not over the whole spec: changing e.g. `concurrency` does not re-run a plan).
pub fn latest_hash(plan: &Value, version: &str) -> String {
    let spec = &plan["spec"];
    hash56(&format!(
        "{version}\0{}\0{}",
        spec["serviceAccountName"].as_str().unwrap_or(""),
        spec["secrets"]
    ))
}

/// Resolve a channel URL through the world's channel server: the last path element names the
/// channel (`https://update.k3s.io/v1-release/channels/stable` → `stable`).
pub fn resolve_channel(channels: &BTreeMap<String, String>, url: &str) -> Result<String, String> {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    channels.get(last).cloned().ok_or_else(|| {
        format!("Get \"{url}\": channel server returned 404 Not Found (unknown channel {last:?})")
    })
}

fn day_index(d: &str) -> Option<u32> {
    let d = d.trim().to_ascii_lowercase();
    let names = [
        "sunday",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
    ];
    names
        .iter()
        .position(|n| *n == d || (d.len() >= 2 && n.starts_with(&d)))
        .map(|i| i as u32)
}

/// Seconds since midnight of `HH:MM[:SS]` with an optional `am`/`pm` suffix.
fn parse_tod(s: &str) -> Option<u32> {
    let s = s.trim().to_ascii_lowercase();
    let (s, pm) = if let Some(x) = s.strip_suffix("pm") {
        (x.trim().to_string(), Some(true))
    } else if let Some(x) = s.strip_suffix("am") {
        (x.trim().to_string(), Some(false))
    } else {
        (s, None)
    };
    let mut it = s.split(':');
    let mut h: u32 = it.next()?.parse().ok()?;
    let m: u32 = it.next().map(|x| x.parse().ok()).unwrap_or(Some(0))?;
    let sec: u32 = it.next().map(|x| x.parse().ok()).unwrap_or(Some(0))?;
    if let Some(pm) = pm {
        if !(1..=12).contains(&h) {
            return None;
        }
        h = (h % 12) + if pm { 12 } else { 0 };
    }
    (h < 24 && m < 60 && sec < 60).then_some(h * 3600 + m * 60 + sec)
}

fn tz_offset(tz: &str) -> Option<i64> {
    match tz {
        "" | "UTC" | "Etc/UTC" | "GMT" | "Etc/GMT" | "Z" => Some(0),
        _ => {
            let sign = match tz.chars().next()? {
                '+' => 1,
                '-' => -1,
                _ => return None,
            };
            let (h, m) = tz[1..].split_once(':').unwrap_or((&tz[1..], "0"));
            Some(sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60))
        }
    }
}

/// Whether `spec.window` allows starting a Job at wall time `now` (Err = invalid window).
pub fn window_open(w: &Value, now: f64) -> Result<bool, String> {
    if w.is_null() {
        return Ok(true);
    }
    let tz = w["timeZone"].as_str().unwrap_or("");
    let off = tz_offset(tz).ok_or_else(|| {
        format!("spec.window.timeZone {tz:?} is not supported by the simulator (use UTC or a fixed offset like +02:00)")
    })?;
    let local = now as i64 + off;
    let days_since = local.div_euclid(86_400);
    let tod = local.rem_euclid(86_400) as u32;
    // 1970-01-01 was a Thursday (index 4).
    let wd = ((days_since + 4).rem_euclid(7)) as u32;
    let mut days = Vec::new();
    if let Some(a) = w["days"].as_array() {
        for d in a {
            let s = d.as_str().unwrap_or("");
            days.push(day_index(s).ok_or_else(|| format!("spec.window.days: invalid day {s:?}"))?);
        }
    }
    let start = match w["startTime"].as_str().filter(|s| !s.is_empty()) {
        Some(s) => {
            parse_tod(s).ok_or_else(|| format!("spec.window.startTime: invalid time {s:?}"))?
        }
        None => 0,
    };
    let end = match w["endTime"].as_str().filter(|s| !s.is_empty()) {
        Some(s) => {
            parse_tod(s).ok_or_else(|| format!("spec.window.endTime: invalid time {s:?}"))?
        }
        None => 86_400,
    };
    let (in_time, day) = if start <= end {
        (tod >= start && tod < end, wd)
    } else if tod >= start {
        (true, wd)
    } else {
        // After midnight of a window that started the previous day.
        (tod < end, (wd + 6) % 7)
    };
    Ok(in_time && (days.is_empty() || days.contains(&day)))
}

/// Go-style duration (`30s`, `1m30s`, `2h`) or a number of nanoseconds (IntOrString timeout).
fn duration_secs(v: &Value) -> Option<f64> {
    if let Some(n) = v.as_f64() {
        return Some(n / 1e9);
    }
    let s = v.as_str()?.trim();
    if s.is_empty() {
        return None;
    }
    let mut total = 0.0;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push(chars.next()?);
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
    }
    if !num.is_empty() {
        total += num.parse::<f64>().ok()? / 1e9;
    }
    Some(total)
}

fn selected_nodes(kc: &KCluster, plan: &Value) -> Vec<Value> {
    let sel = &plan["spec"]["nodeSelector"];
    if sel.is_null() {
        // Upstream: a nil selector selects nothing.
        return Vec::new();
    }
    let ls = LabelSelector::from_object(sel);
    kc.objs(Kind::Node)
        .values()
        .filter(|n| {
            let l = &n["metadata"]["labels"];
            l["kubernetes.io/hostname"].is_string() && ls.matches(l)
        })
        .cloned()
        .collect()
}

fn plan_label(plan: &str) -> String {
    format!("plan.upgrade.cattle.io/{plan}")
}

/// The gate plan named by a prepare container `args: ["prepare", PLAN]`.
fn gate_of(plan: &Value) -> Option<String> {
    let args = plan["spec"]["prepare"]["args"].as_array()?;
    if args.first().and_then(Value::as_str) == Some("prepare") {
        return args.get(1).and_then(Value::as_str).map(str::to_string);
    }
    None
}

/// The gate plan has completed on all its nodes: resolved, nothing applying, every selected
/// (non-disabled) node labelled with its latestHash.
fn gate_complete(kc: &KCluster, ns: &str, gate: &str) -> (bool, Vec<String>) {
    let Some(g) = kc.get(Kind::Plan, ns, gate) else {
        return (false, Vec::new());
    };
    let Some(hash) = g["status"]["latestHash"].as_str().filter(|s| !s.is_empty()) else {
        return (false, Vec::new());
    };
    let lbl = plan_label(gate);
    let unfinished: Vec<String> = selected_nodes(kc, g)
        .iter()
        .filter(|n| {
            let v = n["metadata"]["labels"][&lbl].as_str().unwrap_or("");
            v != hash && v != "disabled"
        })
        .map(|n| util::name(n).to_string())
        .collect();
    let applying = g["status"]["applying"]
        .as_array()
        .is_some_and(|a| !a.is_empty());
    (unfinished.is_empty() && !applying, unfinished)
}

fn cond(t: &str, ok: bool, reason: &str, message: &str, now: f64) -> Value {
    json!({ "type": t, "status": if ok { "True" } else { "False" }, "reason": reason,
        "message": message, "lastUpdateTime": k8s_time(now) })
}

/// Keep the old `lastUpdateTime` when a condition did not change.
fn merge_conditions(old: &Value, mut new: Vec<Value>) -> Value {
    for c in new.iter_mut() {
        if let Some(o) = old
            .as_array()
            .and_then(|a| a.iter().find(|o| o["type"] == c["type"]))
        {
            if o["status"] == c["status"]
                && o["reason"] == c["reason"]
                && o["message"] == c["message"]
            {
                c["lastUpdateTime"] = o["lastUpdateTime"].clone();
            }
        }
    }
    json!(new)
}

fn job_name(plan: &str, node: &str, hash: &str) -> String {
    let n = format!("apply-{plan}-on-{node}-with-{hash}");
    if n.len() <= 63 {
        return n;
    }
    let mut s: String = n.chars().take(57).collect();
    s = s.trim_end_matches(['-', '.']).to_string();
    format!("{s}-{}", &hash56(&n)[..5])
}

fn image_with_tag(image: &str, version: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || last.contains('@') {
        image.to_string()
    } else {
        format!("{image}:{}", version.replace('+', "-"))
    }
}

fn image_repo(image: &str) -> &str {
    let last = image.rsplit('/').next().unwrap_or(image);
    let bare = last.split(['@', ':']).next().unwrap_or(last);
    bare
}

/// Why this upgrade image cannot upgrade a node of `dist` (None = it can).
fn image_mismatch(dist: Dist, image: &str, node: &str) -> Option<String> {
    let repo = image_repo(image);
    let want = match dist {
        Dist::K3s => "k3s-upgrade",
        Dist::Rke2 => "rke2-upgrade",
    };
    if repo == want {
        return None;
    }
    let (found, bin) = match dist {
        Dist::K3s => ("K3s", "/host/usr/local/bin/k3s"),
        Dist::Rke2 => ("RKE2", "/host/usr/local/bin/rke2"),
    };
    Some(match repo {
        "k3s-upgrade" => format!(
            "[ERROR] k3s binary not found on the host (/host/usr/local/bin/k3s): node {node} runs {found} ({bin}), not K3s; use image {}",
            dist.upgrade_image()
        ),
        "rke2-upgrade" => format!(
            "[ERROR] rke2 binary not found on the host (/host/usr/local/bin/rke2): node {node} runs {found} ({bin}), not RKE2; use image {}",
            dist.upgrade_image()
        ),
        _ => format!(
            "upgrade image {image} does not upgrade {found}: node {node} kubelet unchanged; use image {}",
            dist.upgrade_image()
        ),
    })
}

fn set_job_status(kc: &mut KCluster, ns: &str, job: &str, status: Value) {
    kc.update(Kind::Job, ns, job, |j| j["status"] = status);
}

/// One drain pass. Ok(true) = nothing left to wait for; Err = kubectl drain's error.
fn drain(
    kc: &mut KCluster,
    spec: &Value,
    node: &str,
    r: &mut Run,
    now: f64,
) -> Result<bool, String> {
    let d = &spec["drain"];
    let ignore_ds = d["ignoreDaemonSets"].as_bool().unwrap_or(true);
    let delete_emptydir = d["deleteEmptydirData"]
        .as_bool()
        .or_else(|| d["deleteLocalData"].as_bool())
        .unwrap_or(true);
    let force = d["force"].as_bool().unwrap_or(false);
    let disable_eviction = d["disableEviction"].as_bool().unwrap_or(false);
    let skip_wait = d["skipWaitForDeleteTimeout"].as_f64().unwrap_or(0.0);
    let grace = d["gracePeriod"].as_i64().filter(|g| *g >= 0);
    let pod_sel = LabelSelector::from_object(&d["podSelector"]);
    let mut remaining = 0;
    let mut to_evict = Vec::new();
    let mut errors = Vec::new();
    for pod in kc.objs(Kind::Pod).values() {
        if pod["spec"]["nodeName"].as_str() != Some(node) {
            continue;
        }
        let labels = &pod["metadata"]["labels"];
        if !labels["upgrade.cattle.io/controller"].is_null() || !pod_sel.matches(labels) {
            continue;
        }
        if !pod["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_null() {
            continue;
        }
        let phase = pod["status"]["phase"].as_str().unwrap_or("");
        if phase == "Succeeded" || phase == "Failed" {
            continue;
        }
        let (ns, name) = (util::namespace(pod), util::name(pod));
        let ctl = util::controller_of(pod).map(|(k, _, _)| k);
        if ctl == Some("DaemonSet") {
            if !ignore_ds {
                errors.push(format!("cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): {ns}/{name}"));
            }
            continue;
        }
        if ctl.is_none() && !force {
            errors.push(format!("cannot delete Pods that declare no controller (use --force to override): {ns}/{name}"));
        }
        let empty_dir = pod["spec"]["volumes"]
            .as_array()
            .is_some_and(|v| v.iter().any(|v| v["emptyDir"].is_object()));
        if empty_dir && !delete_emptydir {
            errors.push(format!("cannot delete Pods with local storage (use --delete-emptydir-data to override): {ns}/{name}"));
        }
        if let Some(dt) = pod["metadata"]["deletionTimestamp"].as_str() {
            // --skip-wait-for-delete-timeout: stop waiting for pods deleted long enough ago.
            let since = parse_k8s_time(dt).map(|t| now - t).unwrap_or(0.0);
            if skip_wait > 0.0 && since >= kc.wall(skip_wait) {
                continue;
            }
            remaining += 1;
            continue;
        }
        remaining += 1;
        to_evict.push((ns.to_string(), name.to_string()));
    }
    if !errors.is_empty() {
        return Err(format!(
            "error: unable to drain node {node:?} due to error: [{}], continuing command...",
            errors.join(", ")
        ));
    }
    if remaining == 0 {
        return Ok(true);
    }
    if let Some(t) = duration_secs(&d["timeout"]).filter(|t| *t > 0.0) {
        if now - r.phase_at >= kc.wall(t) {
            return Err(format!(
                "error: unable to drain node {node:?}: drain did not complete within {}",
                util::human_duration(t)
            ));
        }
    }
    if now >= r.next_evict {
        for (ns, name) in to_evict {
            if disable_eviction {
                ctrl::delete_pod(kc, &ns, &name, grace, now, false);
            } else {
                let _ = ctrl::evict(kc, &ns, &name, grace, now);
            }
        }
        r.next_evict = now + kc.wall(EVICT_RETRY_SECS);
    }
    Ok(false)
}

#[allow(clippy::too_many_arguments)]
fn fail(
    kc: &mut KCluster,
    ns: &str,
    plan: &str,
    node: &str,
    r: &mut Run,
    reason: &str,
    msg: &str,
    now: f64,
) {
    r.phase = Phase::Failed;
    r.finished = now;
    let t = k8s_time(now);
    set_job_status(
        kc,
        ns,
        &r.job,
        json!({ "failed": 3, "startTime": k8s_time(r.started.max(r.phase_at)), "ready": 0, "terminating": 0,
            "uncountedTerminatedPods": {},
            "conditions": [
                { "type": "FailureTarget", "status": "True", "reason": reason, "message": msg, "lastProbeTime": t, "lastTransitionTime": t },
                { "type": "Failed", "status": "True", "reason": reason, "message": msg, "lastProbeTime": t, "lastTransitionTime": t }
            ] }),
    );
    if let Some(j) = kc.get(Kind::Job, ns, &r.job).cloned() {
        kc.event(&j, "Warning", reason, msg, "job-controller", now);
    }
    if let Some(a) = kc.audit.jobs.get_mut(r.audit) {
        a.outcome = "Failed".into();
        a.message = Some(msg.to_string());
        a.finished = Some(t);
    }
    let key = format!("{ns}/{plan}");
    kc.audit.plans.entry(key).or_default().jobs_failed += 1;
    let _ = node;
}

/// One controller pass. True when a node's version changed (the world must be saved).
pub fn run(kc: &mut KCluster, k: &mut K3sCluster, jobfails: &mut Vec<JobFail>, now: f64) -> bool {
    let Some(mut suc) = kc.suc.take() else {
        return false;
    };
    let changed = pass(kc, &mut suc, k, jobfails, now);
    kc.suc = Some(suc);
    changed
}

fn pass(
    kc: &mut KCluster,
    suc: &mut Suc,
    k: &mut K3sCluster,
    jobfails: &mut Vec<JobFail>,
    now: f64,
) -> bool {
    if kc.audit.agents_started_before_servers.is_none() {
        kc.audit.agents_started_before_servers = Some(Vec::new());
    }
    let ns = suc.ns.clone();
    // Plans without the CRD (deleted by a user) are not reconciled.
    if kc.get(Kind::Crd, "", "plans.upgrade.cattle.io").is_none() {
        return false;
    }
    let plans: Vec<Value> = kc
        .objs(Kind::Plan)
        .range((ns.clone(), String::new())..)
        .take_while(|((n, _), _)| *n == ns)
        .map(|(_, p)| p.clone())
        .collect();
    // Runs of deleted plans: garbage-collect their Jobs.
    let live: Vec<String> = plans.iter().map(|p| util::name(p).to_string()).collect();
    let gone: Vec<String> = suc
        .runs
        .keys()
        .filter(|p| !live.contains(p))
        .cloned()
        .collect();
    for p in gone {
        for (_, r) in suc.runs.remove(&p).unwrap_or_default() {
            kc.remove(Kind::Job, &ns, &r.job);
        }
    }
    let mut changed = false;
    for plan in plans {
        changed |= reconcile_plan(kc, suc, k, jobfails, &plan, now);
    }
    changed
}

#[allow(clippy::too_many_lines)]
fn reconcile_plan(
    kc: &mut KCluster,
    suc: &mut Suc,
    k: &mut K3sCluster,
    jobfails: &mut Vec<JobFail>,
    plan: &Value,
    now: f64,
) -> bool {
    let ns = suc.ns.clone();
    let pname = util::name(plan).to_string();
    let spec = plan["spec"].clone();
    let akey = format!("{ns}/{pname}");
    let mut changed = false;
    // Resolve the version.
    let version = spec["version"].as_str().filter(|s| !s.is_empty());
    let channel = spec["channel"].as_str().filter(|s| !s.is_empty());
    let resolved: Result<String, String> = match (version, channel) {
        (Some(v), _) => Ok(v.to_string()),
        (None, Some(c)) => resolve_channel(&k.channels, c),
        (None, None) => Err("spec.version or spec.channel is required".into()),
    };
    // Validate.
    let mut invalid: Option<String> = None;
    if spec["upgrade"]["image"].as_str().is_none_or(str::is_empty) {
        invalid = Some("spec.upgrade.image: Required value".into());
    }
    if !spec["drain"]["deleteLocalData"].is_null() && !spec["drain"]["deleteEmptydirData"].is_null()
    {
        invalid = Some(
            "spec.drain: deleteLocalData and deleteEmptydirData are mutually exclusive".into(),
        );
    }
    let window = window_open(&spec["window"], now);
    if let Err(e) = &window {
        invalid = Some(e.clone());
    }
    let concurrency = spec["concurrency"].as_i64().filter(|c| *c > 0).unwrap_or(1) as usize;
    let hash = resolved.as_ref().ok().map(|v| latest_hash(plan, v));
    let label = plan_label(&pname);
    let runs = suc.runs.entry(pname.clone()).or_default();

    // Jobs deleted (TTL or by a user) end their run; a failed node is retried.
    runs.retain(|_, r| kc.get(Kind::Job, &ns, &r.job).is_some());
    let mut done_nodes = Vec::new();
    let mut pending = Vec::new();
    let selected = if invalid.is_none() {
        selected_nodes(kc, plan)
    } else {
        Vec::new()
    };
    if let (Ok(v), Some(h)) = (&resolved, &hash) {
        if invalid.is_none() {
            // Prepare-phase runs of an older hash are replaced.
            let stale: Vec<String> = runs
                .iter()
                .filter(|(_, r)| &r.hash != h && r.phase == Phase::Prepare)
                .map(|(n, _)| n.clone())
                .collect();
            for n in stale {
                if let Some(r) = runs.remove(&n) {
                    kc.remove(Kind::Job, &ns, &r.job);
                }
            }
            for n in &selected {
                let l = n["metadata"]["labels"][&label].as_str().unwrap_or("");
                let name = util::name(n).to_string();
                if l == h {
                    done_nodes.push(name);
                } else if l != "disabled" {
                    pending.push(name);
                }
            }
            // Start Jobs up to the concurrency.
            let mut open = window.clone().unwrap_or(false);
            for node in pending.clone() {
                if runs.len() >= concurrency || !open {
                    break;
                }
                if runs.contains_key(&node) {
                    continue;
                }
                let job = job_name(&pname, &node, h);
                if kc.get(Kind::Job, &ns, &job).is_some() {
                    // A finished Job of this hash is still around (TTL): wait for it.
                    continue;
                }
                let fail_msg = jobfails
                    .iter()
                    .position(|f| f.cluster == kc.name && f.plan == pname)
                    .map(|i| {
                        jobfails
                            .remove(i)
                            .message
                            .unwrap_or_else(|| "Job has reached the specified backoff limit".into())
                    });
                let image = image_with_tag(spec["upgrade"]["image"].as_str().unwrap_or(""), v);
                let deadline = spec["jobActiveDeadlineSecs"]
                    .as_f64()
                    .unwrap_or(ACTIVE_DEADLINE_SECS);
                let mut init = Vec::new();
                if !spec["prepare"].is_null() {
                    let mut c = spec["prepare"].clone();
                    c["name"] = json!("prepare");
                    let img = image_with_tag(c["image"].as_str().unwrap_or(""), v);
                    c["image"] = json!(img);
                    init.push(c);
                }
                if !spec["drain"].is_null() {
                    init.push(json!({ "name": "drain", "image": "rancher/kubectl:v1.30.3", "args": ["drain", node, "--pod-selector", "!upgrade.cattle.io/controller", "--ignore-daemonsets", "--delete-emptydir-data"] }));
                } else if spec["cordon"] == true {
                    init.push(json!({ "name": "cordon", "image": "rancher/kubectl:v1.30.3", "args": ["cordon", node] }));
                }
                let mut upgrade = spec["upgrade"].clone();
                upgrade["name"] = json!("upgrade");
                upgrade["image"] = json!(image);
                let mut labels = json!({
                    "upgrade.cattle.io/controller": CONTROLLER,
                    "upgrade.cattle.io/node": node,
                    "upgrade.cattle.io/plan": pname,
                    "upgrade.cattle.io/version": v.replace('+', "-"),
                });
                labels[&label] = json!(h);
                let j = json!({
                    "metadata": { "name": job, "namespace": ns, "labels": labels.clone(),
                        "annotations": { "upgrade.cattle.io/ttl-seconds-after-finished": TTL_SECS.to_string() },
                        "ownerReferences": [ { "apiVersion": "upgrade.cattle.io/v1", "kind": "Plan", "name": pname, "uid": util::uid(plan), "controller": true, "blockOwnerDeletion": true } ] },
                    "spec": { "parallelism": 1, "completions": 1, "backoffLimit": 2, "activeDeadlineSeconds": deadline as i64,
                        "ttlSecondsAfterFinished": TTL_SECS as i64, "completionMode": "NonIndexed", "suspend": false,
                        "podReplacementPolicy": "TerminatingOrFailed",
                        "template": { "metadata": { "labels": labels },
                            "spec": { "serviceAccountName": spec["serviceAccountName"].as_str().unwrap_or(SERVICE_ACCOUNT),
                                "hostIPC": true, "hostPID": true, "hostNetwork": true, "restartPolicy": "Never",
                                "affinity": { "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": { "nodeSelectorTerms": [ { "matchExpressions": [ { "key": "kubernetes.io/hostname", "operator": "In", "values": [node] } ] } ] } } },
                                "tolerations": [ { "key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule" } ],
                                "initContainers": init, "containers": [upgrade] } } },
                    "status": { "active": 1, "ready": 0, "startTime": k8s_time(now), "uncountedTerminatedPods": {} }
                });
                let jo = kc.create(Kind::Job, j, now);
                let pod = format!("{job}-{}", util::random_suffix(&mut kc.rng, 5));
                kc.event(
                    &jo,
                    "Normal",
                    "SuccessfulCreate",
                    &format!("Created pod: {pod}"),
                    "job-controller",
                    now,
                );
                kc.audit.jobs.push(JobAudit {
                    name: job.clone(),
                    plan: pname.clone(),
                    node: node.clone(),
                    version: v.clone(),
                    hash: h.clone(),
                    created: k8s_time(now),
                    started: None,
                    finished: None,
                    outcome: "Running".into(),
                    message: None,
                });
                runs.insert(
                    node.clone(),
                    Run {
                        job,
                        hash: h.clone(),
                        version: v.clone(),
                        phase: Phase::Prepare,
                        started: 0.0,
                        phase_at: now,
                        next_evict: 0.0,
                        finished: 0.0,
                        fail_msg,
                        audit: kc.audit.jobs.len() - 1,
                    },
                );
                if runs.len() >= concurrency {
                    open = false;
                }
            }
        }
    }
    // Advance the runs.
    let gate = gate_of(plan);
    let nodes: Vec<String> = runs.keys().cloned().collect();
    for node in nodes {
        let mut r = runs.remove(&node).expect("listed");
        let keep = step(
            kc,
            suc.dist,
            &ns,
            &pname,
            &spec,
            gate.as_deref(),
            &node,
            &mut r,
            k,
            &mut changed,
            now,
        );
        if keep {
            runs.insert(node, r);
        }
    }
    let runs = suc.runs.get(&pname).cloned().unwrap_or_default();
    // Audit.
    let cordoned = runs
        .keys()
        .filter(|n| {
            kc.get(Kind::Node, "", n)
                .is_some_and(|o| o["spec"]["unschedulable"] == true)
        })
        .count();
    let in_progress = runs
        .values()
        .filter(|r| r.phase != Phase::Prepare && r.phase != Phase::Soak)
        .count();
    let a = kc.audit.plans.entry(akey).or_default();
    a.max_applying = a.max_applying.max(runs.len());
    a.max_in_progress = a.max_in_progress.max(in_progress);
    a.max_cordoned = a.max_cordoned.max(cordoned);
    a.gate.clone_from(&gate);
    // Status.
    let applying: Vec<String> = runs.keys().cloned().collect();
    let cur = kc
        .get(Kind::Plan, &ns, &pname)
        .cloned()
        .unwrap_or(Value::Null);
    if cur.is_null() {
        return changed;
    }
    let mut st = cur["status"].clone();
    if !st.is_object() {
        st = json!({});
    }
    let mut conds = Vec::new();
    match &resolved {
        Ok(_) => conds.push(cond(
            "LatestResolved",
            true,
            if version.is_some() {
                "Version"
            } else {
                "Channel"
            },
            "",
            now,
        )),
        Err(e) => conds.push(cond("LatestResolved", false, "Error", e, now)),
    }
    match &invalid {
        None => conds.push(cond("Validated", true, "PlanIsValid", "", now)),
        Some(e) => conds.push(cond("Validated", false, "Error", e, now)),
    }
    let failed = runs.values().any(|r| r.phase == Phase::Failed);
    if resolved.is_ok() && invalid.is_none() {
        let complete = applying.is_empty() && pending.is_empty();
        let msg = if complete {
            String::new()
        } else if failed {
            "one or more Jobs failed".to_string()
        } else if matches!(window, Ok(false)) && applying.is_empty() {
            "outside of the plan's time window".to_string()
        } else {
            String::new()
        };
        conds.push(cond(
            "Complete",
            complete,
            if complete { "Complete" } else { "" },
            &msg,
            now,
        ));
    }
    st["conditions"] = merge_conditions(&cur["status"]["conditions"], conds);
    match &resolved {
        Ok(v) => {
            st["latestVersion"] = json!(v);
            st["latestHash"] = json!(hash.clone().unwrap_or_default());
        }
        Err(_) => {
            if let Some(m) = st.as_object_mut() {
                m.remove("latestVersion");
                m.remove("latestHash");
            }
        }
    }
    if applying.is_empty() {
        if let Some(m) = st.as_object_mut() {
            m.remove("applying");
        }
    } else {
        st["applying"] = json!(applying);
    }
    if st != cur["status"] {
        kc.update(Kind::Plan, &ns, &pname, |p| p["status"] = st);
    }
    let _ = done_nodes;
    changed
}

/// Advance one node's run; false when the run ends (soak over).
#[allow(clippy::too_many_arguments)]
fn step(
    kc: &mut KCluster,
    dist: Dist,
    ns: &str,
    plan: &str,
    spec: &Value,
    gate: Option<&str>,
    node: &str,
    r: &mut Run,
    k: &mut K3sCluster,
    changed: &mut bool,
    now: f64,
) -> bool {
    let akey = format!("{ns}/{plan}");
    let drains = !spec["drain"].is_null();
    let cordons = drains || spec["cordon"] == true;
    if r.phase != Phase::Prepare && r.phase != Phase::Soak && r.phase != Phase::Failed {
        let deadline = spec["jobActiveDeadlineSecs"]
            .as_f64()
            .unwrap_or(ACTIVE_DEADLINE_SECS);
        if deadline > 0.0 && now - r.started >= kc.wall(deadline) {
            fail(
                kc,
                ns,
                plan,
                node,
                r,
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
                now,
            );
            return true;
        }
    }
    match r.phase {
        Phase::Prepare => {
            if let Some(g) = gate {
                if !gate_complete(kc, ns, g).0 {
                    return true;
                }
            }
            // Leaving prepare: the node starts.
            r.started = now;
            r.phase_at = now;
            let t = k8s_time(now);
            if let Some(a) = kc.audit.jobs.get_mut(r.audit) {
                a.started = Some(t);
            }
            let is_server = kc
                .get(Kind::Node, "", node)
                .is_some_and(|n| n["metadata"]["labels"][CP] == "true");
            if !is_server {
                let older_server = kc.objs(Kind::Node).values().any(|n| {
                    n["metadata"]["labels"][CP] == "true"
                        && version_key(
                            n["status"]["nodeInfo"]["kubeletVersion"]
                                .as_str()
                                .unwrap_or(""),
                        ) < version_key(&r.version)
                });
                if older_server {
                    kc.audit
                        .agents_started_before_servers
                        .get_or_insert_with(Vec::new)
                        .push(node.to_string());
                }
            }
            let unfinished = gate.map(|g| gate_complete(kc, ns, g)).filter(|(ok, _)| !ok);
            let a = kc.audit.plans.entry(akey).or_default();
            a.started.push(node.to_string());
            if unfinished.is_some() {
                a.started_before_gate_complete.push(node.to_string());
            }
            if cordons {
                cordon(kc, node, now);
            }
            r.phase = if drains { Phase::Drain } else { Phase::Upgrade };
            true
        }
        Phase::Drain => {
            match drain(kc, spec, node, r, now) {
                Ok(true) => {
                    r.phase = Phase::Upgrade;
                    r.phase_at = now;
                }
                Ok(false) => {}
                Err(e) => fail(kc, ns, plan, node, r, "BackoffLimitExceeded", &e, now),
            }
            true
        }
        Phase::Upgrade => {
            if now - r.phase_at < kc.wall(UPGRADE_SECS) {
                return true;
            }
            let image = spec["upgrade"]["image"].as_str().unwrap_or("");
            if let Some(m) = r.fail_msg.clone() {
                fail(kc, ns, plan, node, r, "BackoffLimitExceeded", &m, now);
                return true;
            }
            if let Some(m) = image_mismatch(dist, image, node) {
                fail(kc, ns, plan, node, r, "BackoffLimitExceeded", &m, now);
                return true;
            }
            // Upgraded: new kubelet, plan label, uncordon, Job complete.
            let v = r.version.clone();
            let label = plan_label(plan);
            let h = r.hash.clone();
            kc.update(Kind::Node, "", node, |n| {
                n["status"]["nodeInfo"]["kubeletVersion"] = json!(v);
                n["status"]["nodeInfo"]["kubeProxyVersion"] = json!(v);
                n["metadata"]["labels"][&label] = json!(h);
            });
            if let Some(wn) = k.nodes.iter_mut().find(|n| n.name == node) {
                if wn.version != r.version {
                    wn.version.clone_from(&r.version);
                    *changed = true;
                }
            }
            if cordons {
                uncordon(kc, node, now);
            }
            let t = k8s_time(now);
            set_job_status(
                kc,
                ns,
                &r.job,
                json!({ "succeeded": 1, "ready": 0, "terminating": 0, "startTime": k8s_time(r.started), "completionTime": t,
                    "uncountedTerminatedPods": {},
                    "conditions": [
                        { "type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastProbeTime": t, "lastTransitionTime": t },
                        { "type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastProbeTime": t, "lastTransitionTime": t }
                    ] }),
            );
            if let Some(j) = kc.get(Kind::Job, ns, &r.job).cloned() {
                kc.event(
                    &j,
                    "Normal",
                    "Completed",
                    "Job completed",
                    "job-controller",
                    now,
                );
            }
            if let Some(a) = kc.audit.jobs.get_mut(r.audit) {
                a.outcome = "Complete".into();
                a.finished = Some(t);
            }
            kc.audit
                .plans
                .entry(akey)
                .or_default()
                .completed
                .push(node.to_string());
            r.phase = Phase::Soak;
            r.finished = now;
            kc.dirty = true;
            true
        }
        Phase::Soak => {
            let delay = duration_secs(&spec["postCompleteDelay"]).unwrap_or(0.0);
            if now - r.finished < kc.wall(delay) {
                return true;
            }
            // TTL: the completed Job is deleted later; the run ends now.
            false
        }
        Phase::Failed => {
            // ttlSecondsAfterFinished: the failed Job is deleted, then the node is retried.
            if now - r.finished >= kc.wall(TTL_SECS) {
                kc.remove(Kind::Job, ns, &r.job);
                return false;
            }
            true
        }
    }
}

/// Delete completed Jobs after their TTL (`max(900 s, postCompleteDelay + 1m)`).
pub fn gc_jobs(kc: &mut KCluster, now: f64) {
    let Some(ns) = kc.suc.as_ref().map(|s| s.ns.clone()) else {
        return;
    };
    let expired: Vec<String> = kc
        .objs(Kind::Job)
        .range((ns.clone(), String::new())..)
        .take_while(|((n, _), _)| *n == ns)
        .filter(|(_, j)| {
            j["status"]["succeeded"].as_i64() == Some(1)
                && j["status"]["completionTime"]
                    .as_str()
                    .and_then(parse_k8s_time)
                    .is_some_and(|t| now - t >= kc.wall(TTL_SECS))
        })
        .map(|(_, j)| util::name(j).to_string())
        .collect();
    for j in expired {
        kc.remove(Kind::Job, &ns, &j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows() {
        // 2024-01-01 was a Monday; 10:00 UTC.
        let t = 1_704_103_200.0;
        let w = json!({ "days": ["monday"], "startTime": "09:00", "endTime": "11:00" });
        assert_eq!(window_open(&w, t), Ok(true));
        let w = json!({ "days": ["tu", "wednesday"], "startTime": "09:00", "endTime": "11:00" });
        assert_eq!(window_open(&w, t), Ok(false));
        let w = json!({ "startTime": "11:00", "endTime": "12:00" });
        assert_eq!(window_open(&w, t), Ok(false));
        let w = json!({ "startTime": "10:00pm", "endTime": "11:00am" });
        assert_eq!(window_open(&w, t), Ok(true));
        assert!(window_open(&json!({ "timeZone": "Europe/Berlin" }), t).is_err());
    }

    #[test]
    fn plan_writes_record_spec_changes_only() {
        let mut kc = KCluster::new("edge", 1.0);
        let plan = json!({ "metadata": { "name": "kup-servers", "namespace": "system-upgrade" },
            "spec": { "version": "v1.30.9+k3s1", "concurrency": 1 } });
        kc.create(Kind::Plan, plan, 0.0);
        // The controller's status writes are not spec changes.
        kc.update(Kind::Plan, "system-upgrade", "kup-servers", |p| {
            p["status"]["latestVersion"] = json!("v1.30.9+k3s1");
        });
        kc.update(Kind::Plan, "system-upgrade", "kup-servers", |p| {
            p["spec"]["version"] = json!("v1.31.4+k3s1");
        });
        kc.remove(Kind::Plan, "system-upgrade", "kup-servers");
        let w: Vec<(String, String, Option<String>)> = kc
            .audit
            .plan_writes
            .iter()
            .map(|w| (w.plan.clone(), w.op.clone(), w.version.clone()))
            .collect();
        let p = || "system-upgrade/kup-servers".to_string();
        assert_eq!(
            w,
            [
                (p(), "create".into(), Some("v1.30.9+k3s1".into())),
                (p(), "update".into(), Some("v1.31.4+k3s1".into())),
                (p(), "delete".into(), Some("v1.31.4+k3s1".into())),
            ]
        );
    }

    #[test]
    fn durations_and_names() {
        assert_eq!(duration_secs(&json!("1m30s")), Some(90.0));
        assert_eq!(duration_secs(&json!(30_000_000_000u64)), Some(30.0));
        assert!(job_name("server-plan", "node-1", &hash56("x")).len() <= 63);
        assert_eq!(
            image_with_tag("rancher/k3s-upgrade", "v1.30.5+k3s1"),
            "rancher/k3s-upgrade:v1.30.5-k3s1"
        );
        assert!(image_mismatch(Dist::Rke2, "rancher/k3s-upgrade:v1", "n").is_some());
        assert!(image_mismatch(Dist::K3s, "docker.io/rancher/k3s-upgrade", "n").is_none());
        let ch: BTreeMap<String, String> =
            [("stable".to_string(), "v1.30.5+k3s1".to_string())].into();
        assert_eq!(
            resolve_channel(&ch, "https://update.k3s.io/v1-release/channels/stable").as_deref(),
            Ok("v1.30.5+k3s1")
        );
        assert!(resolve_channel(&ch, "https://update.k3s.io/v1-release/channels/nope").is_err());
    }
}
