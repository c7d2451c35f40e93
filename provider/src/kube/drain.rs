//! Drain with `kubectl drain`'s rules (kubernetes/kubectl `pkg/drain`):
//!
//! * filters, in kubectl's order, the first that does not say "delete" deciding:
//!   pods deleted more than `skip_wait_for_delete_timeout` ago are skipped → DaemonSet pods
//!   are skipped (refused when their DaemonSet is gone, unless `force`) → mirror (static)
//!   pods are skipped → pods with emptyDir are refused unless `delete_emptydir_data` →
//!   pods with no controller are refused unless `force`; finished pods pass the last two.
//! * every removable pod is evicted (policy/v1 Eviction; with `disable_eviction`, deleted)
//!   concurrently; 429 (a PodDisruptionBudget says no) is retried with backoff from 1 s to
//!   5 s until the timeout; finished pods are deleted outright (no budget covers them).
//! * then every pod removed is waited for with a watch on the node's pods, until it is
//!   gone or replaced by a new pod of the same name (new UID).
//!
//! Unlike kubectl, `timeout = 0`/unset both mean "no deadline" (kubectl: `--timeout=0`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::pin::pin;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::join_all;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, ListParams, PostParams, Preconditions};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kup_engine::kube::{DrainError, DrainReport, KubePod};
use kup_engine::model::DrainSpec;

use super::selector::LabelSelector;
use super::{convert, is_transient, list_all, retrying, KubeNodeOps};

const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

pub(crate) const REFUSE_LOCAL_STORAGE: &str =
    "cannot delete Pods with local storage (emptyDir); set `delete_emptydir_data = true` in \
     the drain block to delete them and lose that data";
pub(crate) const REFUSE_NO_CONTROLLER: &str =
    "cannot delete Pods that declare no controller (nothing would recreate them); set \
     `force = true` in the drain block to delete them anyway";
pub(crate) const REFUSE_DS_GONE: &str =
    "cannot delete Pods whose DaemonSet no longer exists; set `force = true` in the drain \
     block to delete them anyway";

/// A pod on the node being drained, with what the rules need beyond [`KubePod`].
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub pod: KubePod,
    pub uid: String,
    /// Set when the pod has a `deletionTimestamp`: how long ago that was.
    pub deleting_for: Option<Duration>,
}

/// What the drain does with one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Evict (or with `disable_eviction`, delete) and wait for it.
    Evict,
    /// Finished (Succeeded/Failed): delete it; no budget protects it.
    DeleteFinished,
    /// Already being deleted: just wait for it.
    AwaitTerminating,
    /// Left in place (DaemonSet, mirror, deleted long ago), with the reason.
    Skip(&'static str),
    /// kubectl's rules refuse to remove it without an option.
    Refuse(&'static str),
}

/// kubectl's filters for one pod. `daemonset_exists(namespace, name)` is asked only for
/// unfinished DaemonSet pods.
pub fn classify(
    c: &Candidate,
    opts: &DrainSpec,
    daemonset_exists: &dyn Fn(&str, &str) -> bool,
) -> Verdict {
    let p = &c.pod;
    let finished = p.is_finished();
    // skipDeletedFilter
    if let (Some(age), Some(limit)) = (c.deleting_for, opts.skip_wait_for_delete_timeout) {
        if !limit.is_zero() && age > limit {
            return Verdict::Skip("deleted longer ago than skip_wait_for_delete_timeout");
        }
    }
    // daemonSetFilter
    if let Some((kind, name)) = &p.owner {
        if kind == "DaemonSet" && !finished {
            if !daemonset_exists(&p.namespace, name) {
                if !opts.force {
                    return Verdict::Refuse(REFUSE_DS_GONE);
                }
                // orphaned DaemonSet pod, removed with a warning under force
            } else {
                return Verdict::Skip("DaemonSet-managed");
            }
        }
    }
    // mirrorPodFilter
    if p.is_mirror {
        return Verdict::Skip("mirror (static) pod");
    }
    // localStorageFilter
    if p.has_empty_dir && !finished && !opts.delete_emptydir_data {
        return Verdict::Refuse(REFUSE_LOCAL_STORAGE);
    }
    // unreplicatedFilter
    if p.owner.is_none() && !finished && !opts.force {
        return Verdict::Refuse(REFUSE_NO_CONTROLLER);
    }
    if c.deleting_for.is_some() {
        Verdict::AwaitTerminating
    } else if finished {
        Verdict::DeleteFinished
    } else {
        Verdict::Evict
    }
}

/// The drain of one node, decided before anything is touched.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DrainPlan {
    pub evict: Vec<Candidate>,
    pub delete: Vec<Candidate>,
    pub await_terminating: Vec<Candidate>,
    /// (`namespace/name`, reason)
    pub skipped: Vec<(String, &'static str)>,
    /// (`namespace/name`, reason)
    pub refused: Vec<(String, &'static str)>,
}

impl DrainPlan {
    pub fn new(
        pods: Vec<Candidate>,
        opts: &DrainSpec,
        daemonset_exists: &dyn Fn(&str, &str) -> bool,
    ) -> DrainPlan {
        let mut plan = DrainPlan::default();
        for c in pods {
            match classify(&c, opts, daemonset_exists) {
                Verdict::Evict => plan.evict.push(c),
                Verdict::DeleteFinished => plan.delete.push(c),
                Verdict::AwaitTerminating => plan.await_terminating.push(c),
                Verdict::Skip(r) => plan.skipped.push((c.pod.address(), r)),
                Verdict::Refuse(r) => plan.refused.push((c.pod.address(), r)),
            }
        }
        plan
    }

    /// The error kubectl would stop with, naming every refused pod.
    pub fn refusal(&self, node: &str) -> Option<DrainError> {
        if self.refused.is_empty() {
            return None;
        }
        let reasons: BTreeSet<&str> = self.refused.iter().map(|(_, r)| *r).collect();
        let (reason, pods) = if reasons.len() == 1 {
            (
                reasons.iter().next().unwrap().to_string(),
                self.refused.iter().map(|(p, _)| p.clone()).collect(),
            )
        } else {
            (
                format!(
                    "{} pods kubectl's rules refuse to remove: {}",
                    self.refused.len(),
                    reasons.iter().copied().collect::<Vec<_>>().join("; ")
                ),
                self.refused
                    .iter()
                    .map(|(p, r)| format!("{p} ({})", short_reason(r)))
                    .collect(),
            )
        };
        Some(DrainError::Refused {
            node: node.to_string(),
            reason,
            pods,
        })
    }
}

fn short_reason(r: &str) -> &'static str {
    match r {
        REFUSE_LOCAL_STORAGE => "emptyDir",
        REFUSE_NO_CONTROLLER => "no controller",
        REFUSE_DS_GONE => "DaemonSet gone",
        _ => "refused",
    }
}

/// The budget named in a 429's causes: "The disruption budget NAME needs 2 healthy pods…"
/// or "The disruption budget NAME is still being processed by the server."
pub(crate) fn pdb_from_message(s: &str) -> Option<String> {
    let rest = &s[s.find("disruption budget ")? + "disruption budget ".len()..];
    let name: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ',' && *c != ':')
        .collect();
    (!name.is_empty()).then_some(name)
}

fn pdb_from_status(s: &kube::core::Status) -> Option<String> {
    s.details
        .iter()
        .flat_map(|d| d.causes.iter())
        .filter(|c| c.reason == "DisruptionBudget" || c.message.contains("disruption budget"))
        .find_map(|c| pdb_from_message(&c.message))
        .or_else(|| pdb_from_message(&s.message))
}

fn status_message(s: &kube::core::Status) -> String {
    let mut m = s.message.trim().to_string();
    let causes: Vec<&str> = s
        .details
        .iter()
        .flat_map(|d| d.causes.iter())
        .map(|c| c.message.trim())
        .filter(|c| !c.is_empty() && !m.contains(*c))
        .collect();
    if !causes.is_empty() {
        m = format!("{m} ({})", causes.join("; "));
    }
    if m.is_empty() {
        m = format!("HTTP {} {}", s.code, s.reason);
    }
    m
}

fn namespace_terminating(s: &kube::core::Status) -> bool {
    s.details
        .iter()
        .flat_map(|d| d.causes.iter())
        .any(|c| c.reason == "NamespaceTerminating")
}

fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `metadata.deletionTimestamp` in Unix milliseconds.
fn deletion_ms(pod: &Pod) -> Option<i64> {
    pod.metadata
        .deletion_timestamp
        .as_ref()
        .map(|t| t.0.as_millisecond())
}

fn candidate(pod: &Pod) -> Result<Candidate, String> {
    Ok(Candidate {
        pod: convert::pod_from(pod)?,
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        deleting_for: deletion_ms(pod)
            .map(|ms| Duration::from_millis(now_unix_ms().saturating_sub(ms).max(0) as u64)),
    })
}

/// What happened to one pod's eviction or deletion.
enum Outcome {
    Removed,
    /// Already gone (404, or replaced: UID precondition failed).
    Gone,
    Blocked {
        message: String,
        pdb: Option<String>,
    },
    Failed(String),
}

fn grace_seconds(opts: &DrainSpec) -> Option<i64> {
    opts.grace_period.map(|g| g.as_secs() as i64)
}

fn deadline_of(start: Instant, opts: &DrainSpec) -> Option<Instant> {
    opts.timeout.filter(|t| !t.is_zero()).map(|t| start + t)
}

/// The first pause after a refused eviction, and the longest.
fn backoff_bounds(opts: &DrainSpec) -> (Duration, Duration) {
    opts.retry_backoff.unwrap_or((BACKOFF_START, BACKOFF_MAX))
}

/// Sleep for the next backoff step, or return false when the deadline has passed.
async fn backoff_or_deadline(
    backoff: &mut Duration,
    max: Duration,
    deadline: Option<Instant>,
) -> bool {
    let now = Instant::now();
    let nap = match deadline {
        Some(d) if now >= d => return false,
        Some(d) => (*backoff).min(d - now),
        None => *backoff,
    };
    tokio::time::sleep(nap).await;
    *backoff = (*backoff * 2).min(max);
    true
}

async fn evict(
    api: &Api<Pod>,
    c: &Candidate,
    opts: &DrainSpec,
    deadline: Option<Instant>,
) -> Outcome {
    let mut delete_options = serde_json::Map::new();
    if let Some(g) = grace_seconds(opts) {
        delete_options.insert("gracePeriodSeconds".into(), g.into());
    }
    if !c.uid.is_empty() {
        delete_options.insert("preconditions".into(), serde_json::json!({ "uid": c.uid }));
    }
    let body = serde_json::json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": { "name": c.pod.name, "namespace": c.pod.namespace },
        "deleteOptions": delete_options,
    });
    let (mut backoff, backoff_max) = backoff_bounds(opts);
    let mut last: Option<(String, Option<String>)> = None;
    loop {
        let r = api
            .create_subresource::<_, serde_json::Value>(
                "eviction",
                &c.pod.name,
                &PostParams::default(),
                &body,
            )
            .await;
        match r {
            Ok(_) => return Outcome::Removed,
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => return Outcome::Gone,
            Err(kube::Error::Api(s)) if s.code == 429 => {
                last = Some((status_message(&s), pdb_from_status(&s)));
            }
            Err(kube::Error::Api(s)) if s.code == 403 && namespace_terminating(&s) => {
                last = Some((status_message(&s), None));
            }
            Err(e) if is_transient(&e) => {
                tracing::debug!(pod = %c.pod.address(), error = %e, "eviction failed, retrying");
                if last.is_none() {
                    last = Some((e.to_string(), None));
                }
            }
            Err(e) => return Outcome::Failed(format!("evicting {}: {e}", c.pod.address())),
        }
        if let Some((m, _)) = &last {
            tracing::debug!(pod = %c.pod.address(), message = %m, "eviction refused, will retry");
        }
        if !backoff_or_deadline(&mut backoff, backoff_max, deadline).await {
            let (message, pdb) = last.unwrap_or_default();
            return Outcome::Blocked { message, pdb };
        }
    }
}

async fn delete(
    api: &Api<Pod>,
    c: &Candidate,
    opts: &DrainSpec,
    deadline: Option<Instant>,
) -> Outcome {
    let dp = DeleteParams {
        grace_period_seconds: grace_seconds(opts).map(|g| g as u32),
        preconditions: (!c.uid.is_empty()).then(|| Preconditions {
            uid: Some(c.uid.clone()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let (mut backoff, backoff_max) = backoff_bounds(opts);
    loop {
        match api.delete(&c.pod.name, &dp).await {
            Ok(_) => return Outcome::Removed,
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => return Outcome::Gone,
            Err(e) if is_transient(&e) => {
                if !backoff_or_deadline(&mut backoff, backoff_max, deadline).await {
                    return Outcome::Failed(format!("deleting {}: {e}", c.pod.address()));
                }
            }
            Err(e) => return Outcome::Failed(format!("deleting {}: {e}", c.pod.address())),
        }
    }
}

/// The budget that holds `pod`, from the namespace's PDBs (when the 429 did not name it).
async fn matching_pdb(ops: &KubeNodeOps, pod: &KubePod) -> Option<String> {
    let client = ops.client().await.ok()?;
    let api: Api<PodDisruptionBudget> = Api::namespaced(client, &pod.namespace);
    let pdbs = list_all(&api, &ListParams::default()).await.ok()?;
    pdbs.iter()
        .map(convert::pdb_from)
        .find(|p| p.selects(pod))
        .map(|p| p.name)
}

pub(crate) async fn run(
    ops: &KubeNodeOps,
    node: &str,
    opts: &DrainSpec,
) -> Result<DrainReport, DrainError> {
    let start = Instant::now();
    let deadline = deadline_of(start, opts);
    let api_err = |message: String| DrainError::Api {
        node: node.to_string(),
        message,
    };
    let selector = opts
        .pod_selector
        .as_deref()
        .map(LabelSelector::parse)
        .transpose()
        .map_err(|e| api_err(format!("invalid pod_selector: {e}")))?;
    let client = ops.client().await.map_err(|e| api_err(e.message))?;

    // kubectl drain cordons first, so evicted pods are not scheduled back here.
    ops.patch_unschedulable(node, true)
        .await
        .map_err(|e| api_err(e.message))?;

    let pods_api: Api<Pod> = Api::all(client.clone());
    let mut lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
    if let Some(s) = opts
        .pod_selector
        .as_deref()
        .filter(|s| !s.trim().is_empty())
    {
        lp = lp.labels(s);
    }
    let pods = list_all(&pods_api, &lp)
        .await
        .map_err(|e| api_err(format!("listing the pods on {node}: {e}")))?;
    let mut candidates = Vec::with_capacity(pods.len());
    for p in &pods {
        if p.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(node) {
            continue;
        }
        let c = candidate(p).map_err(api_err)?;
        if selector.as_ref().is_some_and(|s| !s.matches(&c.pod.labels)) {
            continue;
        }
        candidates.push(c);
    }
    candidates.sort_by_key(|c| c.pod.address());

    // Which DaemonSets still exist (asked only for unfinished DaemonSet pods).
    let mut ds_exists: HashMap<(String, String), bool> = HashMap::new();
    for c in &candidates {
        if let Some((kind, name)) = &c.pod.owner {
            if kind == "DaemonSet" && !c.pod.is_finished() {
                let key = (c.pod.namespace.clone(), name.clone());
                if ds_exists.contains_key(&key) {
                    continue;
                }
                let api: Api<DaemonSet> = Api::namespaced(client.clone(), &key.0);
                let exists = match retrying(|| api.get_opt(&key.1)).await {
                    Ok(o) => o.is_some(),
                    Err(e) => {
                        return Err(api_err(format!(
                            "reading DaemonSet {}/{}: {e}",
                            key.0, key.1
                        )))
                    }
                };
                ds_exists.insert(key, exists);
            }
        }
    }
    let plan = DrainPlan::new(candidates, opts, &|ns, name| {
        ds_exists
            .get(&(ns.to_string(), name.to_string()))
            .copied()
            .unwrap_or(true)
    });
    if let Some(e) = plan.refusal(node) {
        return Err(e);
    }

    // Remove every pod at once, as kubectl does (one goroutine per pod).
    let by_eviction = !opts.disable_eviction;
    let evictions = plan.evict.iter().map(|c| {
        let api: Api<Pod> = Api::namespaced(client.clone(), &c.pod.namespace);
        async move {
            let o = if by_eviction {
                evict(&api, c, opts, deadline).await
            } else {
                delete(&api, c, opts, deadline).await
            };
            (c, o)
        }
    });
    let deletions = plan.delete.iter().map(|c| {
        let api: Api<Pod> = Api::namespaced(client.clone(), &c.pod.namespace);
        async move { (c, delete(&api, c, opts, deadline).await) }
    });
    let (evicted_out, deleted_out) = tokio::join!(join_all(evictions), join_all(deletions));

    let mut report = DrainReport {
        node: node.to_string(),
        skipped: plan.skipped.iter().map(|(p, _)| p.clone()).collect(),
        ..Default::default()
    };
    let mut pending: Vec<&Candidate> = plan.await_terminating.iter().collect();
    let mut blocked: Vec<(&Candidate, String, Option<String>)> = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    for (c, o) in &evicted_out {
        match o {
            Outcome::Removed => {
                if by_eviction {
                    report.evicted.push(c.pod.address());
                } else {
                    report.deleted.push(c.pod.address());
                }
                pending.push(c);
            }
            Outcome::Gone => {}
            Outcome::Blocked { message, pdb } => blocked.push((c, message.clone(), pdb.clone())),
            Outcome::Failed(m) => failed.push(m.clone()),
        }
    }
    for (c, o) in &deleted_out {
        match o {
            Outcome::Removed => {
                report.deleted.push(c.pod.address());
                pending.push(c);
            }
            Outcome::Gone => {}
            Outcome::Blocked { message, .. } | Outcome::Failed(message) => {
                failed.push(message.clone())
            }
        }
    }
    if !failed.is_empty() {
        return Err(api_err(failed.join("; ")));
    }
    if let Some((c, message, pdb)) = blocked.first() {
        let pdb = match pdb {
            Some(p) => Some(format!("{}/{p}", c.pod.namespace)),
            None => matching_pdb(ops, &c.pod)
                .await
                .map(|p| format!("{}/{p}", c.pod.namespace)),
        };
        let mut message = if message.is_empty() {
            "the eviction was refused with HTTP 429".to_string()
        } else {
            message.clone()
        };
        if blocked.len() > 1 {
            let others: Vec<String> = blocked[1..]
                .iter()
                .map(|(c, _, p)| match p {
                    Some(p) => format!("{} (budget {p})", c.pod.address()),
                    None => c.pod.address(),
                })
                .collect();
            message.push_str(&format!("; also blocked: {}", others.join(", ")));
        }
        return Err(DrainError::BlockedByPdb {
            node: node.to_string(),
            pod: c.pod.address(),
            pdb: pdb.unwrap_or_else(|| "(unknown: the API server did not name it)".into()),
            message,
            waited: start.elapsed(),
        });
    }

    wait_gone(&pods_api, node, &pending, deadline, opts)
        .await
        .map_err(|pods| match pods {
            Ok(pods) => DrainError::Timeout {
                node: node.to_string(),
                pods,
                waited: start.elapsed(),
            },
            Err(m) => api_err(m),
        })?;
    report.elapsed = start.elapsed();
    Ok(report)
}

/// Wait with a watch on the node's pods until every pod in `pending` is gone (or replaced
/// by a new UID, or deleted longer ago than `skip_wait_for_delete_timeout`). On timeout,
/// `Err(Ok(pods still there))`.
async fn wait_gone(
    api: &Api<Pod>,
    node: &str,
    pending: &[&Candidate],
    deadline: Option<Instant>,
    opts: &DrainSpec,
) -> Result<(), Result<Vec<String>, String>> {
    let mut pending: BTreeMap<(String, String), String> = pending
        .iter()
        .map(|c| ((c.pod.namespace.clone(), c.pod.name.clone()), c.uid.clone()))
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    let skip_after = opts
        .skip_wait_for_delete_timeout
        .filter(|d| !d.is_zero())
        .map(|d| d.as_millis() as i64);
    // (namespace, name) → (uid, deletionTimestamp ms)
    let mut live: HashMap<(String, String), (String, Option<i64>)> = HashMap::new();
    let mut buffer: HashMap<(String, String), (String, Option<i64>)> = HashMap::new();
    let mut ready = false;
    let key_of = |p: &Pod| {
        (
            p.metadata.namespace.clone().unwrap_or_default(),
            p.metadata.name.clone().unwrap_or_default(),
        )
    };
    let entry_of = |p: &Pod| (p.metadata.uid.clone().unwrap_or_default(), deletion_ms(p));

    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut stream = pin!(watcher::watcher(api.clone(), cfg).default_backoff());
    let far = Duration::from_secs(3600);
    loop {
        if ready {
            let now = now_unix_ms();
            pending.retain(|k, uid| match live.get(k) {
                None => false,
                Some((u, _)) if !uid.is_empty() && u != uid => false,
                Some((_, Some(del))) if skip_after.is_some_and(|s| now - del > s) => false,
                Some(_) => true,
            });
            if pending.is_empty() {
                return Ok(());
            }
        }
        // The next moment a terminating pod passes skip_wait_for_delete_timeout.
        let skip_wake = skip_after.and_then(|s| {
            let now = now_unix_ms();
            pending
                .keys()
                .filter_map(|k| live.get(k).and_then(|(_, d)| *d))
                .map(|d| (d + s - now + 1).max(0) as u64)
                .min()
                .map(|ms| Instant::now() + Duration::from_millis(ms))
        });
        let wake = skip_wake.unwrap_or_else(|| Instant::now() + far);
        let until_deadline = deadline.unwrap_or_else(|| Instant::now() + far);
        tokio::select! {
            ev = stream.next() => match ev {
                Some(Ok(Event::Init)) => buffer.clear(),
                Some(Ok(Event::InitApply(p))) => { buffer.insert(key_of(&p), entry_of(&p)); }
                Some(Ok(Event::InitDone)) => { live = std::mem::take(&mut buffer); ready = true; }
                Some(Ok(Event::Apply(p))) => { live.insert(key_of(&p), entry_of(&p)); }
                Some(Ok(Event::Delete(p))) => { live.remove(&key_of(&p)); }
                Some(Err(e)) => {
                    tracing::debug!(node, error = %e, "pod watch failed, restarting");
                }
                None => return Err(Err(format!("the watch on the pods of {node} ended"))),
            },
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = tokio::time::sleep_until(until_deadline.into()) => {
                if deadline.is_some() {
                    return Err(Ok(pending
                        .keys()
                        .map(|(ns, n)| format!("{ns}/{n}"))
                        .collect()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, owner: Option<&str>) -> Candidate {
        Candidate {
            pod: KubePod {
                waiting_reason: None,
                restarts: 0,
                unschedulable: None,
                namespace: "ns".into(),
                name: name.into(),
                node: Some("n1".into()),
                owner: owner.map(|k| (k.to_string(), format!("{name}-owner"))),
                phase: "Running".into(),
                requests: Default::default(),
                has_empty_dir: false,
                is_mirror: false,
                labels: Default::default(),
                node_selector: Default::default(),
            },
            uid: format!("uid-{name}"),
            deleting_for: None,
        }
    }

    fn with(mut c: Candidate, f: impl FnOnce(&mut Candidate)) -> Candidate {
        f(&mut c);
        c
    }

    #[test]
    fn kubectl_rules_table() {
        let none = DrainSpec::default();
        let force = DrainSpec {
            force: true,
            ..Default::default()
        };
        let emptydir = DrainSpec {
            delete_emptydir_data: true,
            ..Default::default()
        };
        let skip = DrainSpec {
            skip_wait_for_delete_timeout: Some(Duration::from_secs(30)),
            ..Default::default()
        };
        let ds_here = |_: &str, _: &str| true;
        let ds_gone = |_: &str, _: &str| false;
        let rs = pod("web", Some("ReplicaSet"));
        let ds = pod("agent", Some("DaemonSet"));
        let bare = pod("bare", None);
        let mirror = with(pod("etcd", Some("Node")), |c| c.pod.is_mirror = true);
        let bare_mirror = with(pod("static", None), |c| c.pod.is_mirror = true);
        let cache = with(pod("cache", Some("ReplicaSet")), |c| {
            c.pod.has_empty_dir = true
        });
        let bare_cache = with(pod("bc", None), |c| c.pod.has_empty_dir = true);
        let done = with(pod("job", None), |c| {
            c.pod.phase = "Succeeded".into();
            c.pod.has_empty_dir = true
        });
        let failed_ds = with(pod("fds", Some("DaemonSet")), |c| {
            c.pod.phase = "Failed".into()
        });
        let terminating = with(pod("t", Some("ReplicaSet")), |c| {
            c.deleting_for = Some(Duration::from_secs(5))
        });
        let long_gone = with(pod("old", Some("ReplicaSet")), |c| {
            c.deleting_for = Some(Duration::from_secs(60))
        });
        use Verdict::*;
        let cases: Vec<(&Candidate, &DrainSpec, bool, Verdict)> = vec![
            (&rs, &none, true, Evict),
            (&ds, &none, true, Skip("DaemonSet-managed")),
            (&ds, &none, false, Refuse(REFUSE_DS_GONE)),
            (&ds, &force, false, Evict),
            (&ds, &force, true, Skip("DaemonSet-managed")),
            (&mirror, &none, true, Skip("mirror (static) pod")),
            (&bare_mirror, &none, true, Skip("mirror (static) pod")),
            (&bare, &none, true, Refuse(REFUSE_NO_CONTROLLER)),
            (&bare, &force, true, Evict),
            (&cache, &none, true, Refuse(REFUSE_LOCAL_STORAGE)),
            (&cache, &emptydir, true, Evict),
            // emptyDir is checked before the controller: the first refusal wins.
            (&bare_cache, &none, true, Refuse(REFUSE_LOCAL_STORAGE)),
            (&bare_cache, &emptydir, true, Refuse(REFUSE_NO_CONTROLLER)),
            (&bare_cache, &force, true, Refuse(REFUSE_LOCAL_STORAGE)),
            // Finished pods pass the emptyDir and controller rules and are deleted.
            (&done, &none, true, DeleteFinished),
            (&failed_ds, &none, false, DeleteFinished),
            (&terminating, &none, true, AwaitTerminating),
            (&terminating, &skip, true, AwaitTerminating),
            (&long_gone, &none, true, AwaitTerminating),
            (
                &long_gone,
                &skip,
                true,
                Skip("deleted longer ago than skip_wait_for_delete_timeout"),
            ),
        ];
        for (c, o, ds_ok, want) in cases {
            let f: &dyn Fn(&str, &str) -> bool = if ds_ok { &ds_here } else { &ds_gone };
            assert_eq!(classify(c, o, f), want, "{} with {o:?}", c.pod.name);
        }
    }

    #[test]
    fn plan_groups_and_refusal_names_every_pod() {
        let pods = vec![
            pod("a", Some("ReplicaSet")),
            pod("b", None),
            with(pod("c", Some("StatefulSet")), |c| {
                c.pod.has_empty_dir = true
            }),
            pod("d", Some("DaemonSet")),
            with(pod("e", None), |c| c.pod.phase = "Failed".into()),
        ];
        let plan = DrainPlan::new(pods.clone(), &DrainSpec::default(), &|_, _| true);
        assert_eq!(plan.evict.len(), 1);
        assert_eq!(plan.delete.len(), 1);
        assert_eq!(
            plan.skipped,
            vec![("ns/d".to_string(), "DaemonSet-managed")]
        );
        match plan.refusal("n1").unwrap() {
            DrainError::Refused { node, reason, pods } => {
                assert_eq!(node, "n1");
                assert!(reason.starts_with("2 pods"), "{reason}");
                assert_eq!(pods, ["ns/b (no controller)", "ns/c (emptyDir)"]);
            }
            other => panic!("{other:?}"),
        }
        let plan = DrainPlan::new(
            pods,
            &DrainSpec {
                delete_emptydir_data: true,
                ..Default::default()
            },
            &|_, _| true,
        );
        match plan.refusal("n1").unwrap() {
            DrainError::Refused { reason, pods, .. } => {
                assert_eq!(reason, REFUSE_NO_CONTROLLER);
                assert_eq!(pods, ["ns/b"]);
            }
            other => panic!("{other:?}"),
        }
        let ok = DrainPlan::new(
            vec![pod("a", Some("ReplicaSet"))],
            &DrainSpec::default(),
            &|_, _| true,
        );
        assert!(ok.refusal("n1").is_none());
    }

    #[test]
    fn pdb_names_from_429_messages() {
        assert_eq!(
            pdb_from_message(
                "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"
            )
            .as_deref(),
            Some("web-pdb")
        );
        assert_eq!(
            pdb_from_message("The disruption budget db is still being processed by the server.")
                .as_deref(),
            Some("db")
        );
        assert_eq!(
            pdb_from_message("Cannot evict pod as it would violate the pod's disruption budget."),
            None
        );
        let s: kube::core::Status = serde_json::from_value(serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "Cannot evict pod as it would violate the pod's disruption budget.",
            "reason": "TooManyRequests", "code": 429,
            "details": {"causes": [{"reason": "DisruptionBudget",
                "message": "The disruption budget web needs 3 healthy pods and has 3 currently"}]}
        }))
        .unwrap();
        assert_eq!(pdb_from_status(&s).as_deref(), Some("web"));
        assert_eq!(
            status_message(&s),
            "Cannot evict pod as it would violate the pod's disruption budget. \
             (The disruption budget web needs 3 healthy pods and has 3 currently)"
        );
    }
}
