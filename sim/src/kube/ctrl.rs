//! Controllers: Deployment → ReplicaSet → Pod, StatefulSet, DaemonSet, the scheduler, the
//! disruption controller (PDB status), graceful deletion and the eviction subresource.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::select::LabelSelector;
use super::util::{self, k8s_time};
use super::{KCluster, Key, Kind, PdbAudit, TEv};

/// Simulated seconds from scheduling to Running/Ready.
pub const POD_START_SECS: f64 = 2.0;

/// An API error to render as a `Status`.
#[derive(Debug)]
pub struct ApiErr {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Value,
}

impl ApiErr {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiErr {
            code,
            reason,
            message: message.into(),
            details: Value::Null,
        }
    }
    pub fn not_found(kind: Kind, name: &str) -> Self {
        let info = kind.info();
        let mut e = ApiErr::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", resource_name(kind)),
        );
        e.details = json!({ "name": name, "kind": info.plural });
        if !info.group.is_empty() {
            e.details["group"] = json!(info.group);
        }
        e
    }
}

/// `pods`, `deployments.apps`, `poddisruptionbudgets.policy`: how errors name resources.
pub fn resource_name(kind: Kind) -> String {
    let i = kind.info();
    if i.group.is_empty() {
        i.plural.to_string()
    } else {
        format!("{}.{}", i.plural, i.group)
    }
}

// ---------------------------------------------------------------------------------------------
// Pod lifecycle
// ---------------------------------------------------------------------------------------------

fn is_daemon_pod(p: &Value) -> bool {
    util::controller_of(p).is_some_and(|(k, _, _)| k == "DaemonSet")
}

fn container_names(p: &Value) -> Vec<String> {
    p["spec"]["containers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Delete a pod as the apiserver does: graceful (deletionTimestamp, gone after the grace
/// period scaled by speed) unless grace is 0 or the pod never ran. `evicted` marks deletions
/// that came through the eviction subresource.
pub fn delete_pod(
    kc: &mut KCluster,
    ns: &str,
    name: &str,
    grace: Option<i64>,
    now: f64,
    evicted: bool,
) -> Option<Value> {
    let pod = kc.get(Kind::Pod, ns, name)?.clone();
    let bare = util::controller_of(&pod).is_none();
    if bare && pod["metadata"]["deletionTimestamp"].is_null() {
        let _ = evicted;
        kc.audit.lost_pods.push(format!("{ns}/{name}"));
    }
    let grace = grace
        .or_else(|| pod["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(30)
        .max(0);
    let unscheduled = pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty);
    let terminal = matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    if grace == 0 || unscheduled || terminal {
        let out = kc.remove(Kind::Pod, ns, name);
        kc.dirty = true;
        return out;
    }
    if let Some(cur) = pod["metadata"]["deletionGracePeriodSeconds"].as_i64() {
        if grace >= cur {
            return Some(pod);
        }
    }
    let uid = util::uid(&pod).to_string();
    let at = now + kc.wall(grace as f64);
    let first = pod["metadata"]["deletionTimestamp"].is_null();
    let p = kc.update(Kind::Pod, ns, name, |p| {
        p["metadata"]["deletionTimestamp"] = json!(k8s_time(now + grace as f64));
        p["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
    });
    if first {
        for c in container_names(&pod) {
            kc.event(
                &pod,
                "Normal",
                "Killing",
                &format!("Stopping container {c}"),
                "kubelet",
                now,
            );
        }
    }
    kc.timer(at, TEv::PodGone, ns, name, &uid);
    p
}

pub fn pod_gone(kc: &mut KCluster, ns: &str, name: &str, uid: &str) {
    if kc
        .get(Kind::Pod, ns, name)
        .is_some_and(|p| util::uid(p) == uid)
    {
        kc.remove(Kind::Pod, ns, name);
    }
}

pub fn pod_start(kc: &mut KCluster, ns: &str, name: &str, uid: &str, now: f64) {
    let Some(p) = kc.get(Kind::Pod, ns, name) else {
        return;
    };
    if util::uid(p) != uid || !p["metadata"]["deletionTimestamp"].is_null() {
        return;
    }
    kubelet_start(kc, ns, name, now);
}

/// Simulated seconds a failed image pull shows ErrImagePull before ImagePullBackOff.
const IMAGE_BACKOFF_SECS: f64 = 5.0;
/// The kubelet's container restart back-off: 10 s doubling up to 5 min.
const CRASH_BACKOFF_SECS: (f64, f64) = (10.0, 300.0);

/// Image references that never resolve, so tests can stage pull failures.
fn unpullable(image: &str) -> bool {
    image.contains("does-not-exist")
}

/// Is `p` a pod of a world workload with `crash_loop = true`?
fn crash_looping(kc: &KCluster, p: &Value) -> bool {
    if kc.crash_loop.is_empty() {
        return false;
    }
    let ns = util::namespace(p);
    let (kind, name) = match util::controller_of(p) {
        None => ("Pod", util::name(p)),
        Some(("ReplicaSet", rs, _)) => match kc
            .get(Kind::ReplicaSet, ns, rs)
            .and_then(util::controller_of)
        {
            Some((k, n, _)) => (k, n),
            None => ("ReplicaSet", rs),
        },
        Some((k, n, _)) => (k, n),
    };
    kc.crash_loop
        .contains(&(ns.to_string(), kind.to_string(), name.to_string()))
}

/// Back-off `n` (0-based) of a crash-looping container, in seconds.
fn crash_backoff(n: i64) -> f64 {
    (CRASH_BACKOFF_SECS.0 * 2f64.powi(n.clamp(0, 16) as i32)).min(CRASH_BACKOFF_SECS.1)
}

/// A Go `time.Duration` string for whole seconds (`10s`, `1m20s`, `5m0s`).
fn go_duration(secs: f64) -> String {
    let s = secs.round() as i64;
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{}s", s / 60, s % 60)
    }
}

/// `name_namespace(uid)`, as the kubelet's `format.Pod` names pods in messages.
fn pod_ref(p: &Value) -> String {
    format!("{}_{}({})", util::name(p), util::namespace(p), util::uid(p))
}

fn pull_error(image: &str) -> String {
    format!("rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": {image}: not found")
}

/// The kubelet starts a pod that was bound to its node: Running and Ready, or — for a
/// crash-looping workload — Running with its containers in CrashLoopBackOff, or — for an
/// image that cannot be pulled — Pending with ErrImagePull. A pod already started is left
/// alone.
pub fn kubelet_start(kc: &mut KCluster, ns: &str, name: &str, now: f64) {
    let Some(p) = kc.get(Kind::Pod, ns, name).cloned() else {
        return;
    };
    if !p["status"]["startTime"].is_null() {
        return;
    }
    let ip = if p["spec"]["hostNetwork"] == true {
        p["status"]["hostIP"].as_str().unwrap_or("").to_string()
    } else {
        kc.next_ip()
    };
    let t = k8s_time(now);
    let uid = util::uid(&p).to_string();
    let bad: Vec<String> = container_names(&p)
        .into_iter()
        .filter(|c| unpullable(&image_of(&p, c)))
        .collect();
    if !bad.is_empty() {
        let Some(p2) = kc.update(Kind::Pod, ns, name, |p| {
            set_running(p, &ip, &t);
            let mut unready = Vec::new();
            if let Some(cs) = p["status"]["containerStatuses"].as_array_mut() {
                for c in cs.iter_mut() {
                    let cname = c["name"].as_str().unwrap_or("").to_string();
                    if bad.contains(&cname) {
                        let image = c["image"].as_str().unwrap_or("").to_string();
                        c["ready"] = json!(false);
                        c["started"] = json!(false);
                        c["imageID"] = json!("");
                        c.as_object_mut().expect("status").remove("containerID");
                        c["state"] = json!({ "waiting": { "reason": "ErrImagePull", "message": pull_error(&image) } });
                        unready.push(cname);
                    }
                }
            }
            // Containers are not all running: the pod stays Pending.
            p["status"]["phase"] = json!("Pending");
            set_unready(p, &unready);
        }) else {
            return;
        };
        for c in &bad {
            let image = image_of(&p2, c);
            kc.event(
                &p2,
                "Normal",
                "Pulling",
                &format!("Pulling image \"{image}\""),
                "kubelet",
                now,
            );
            kc.event(
                &p2,
                "Warning",
                "Failed",
                &format!("Failed to pull image \"{image}\": {}", pull_error(&image)),
                "kubelet",
                now,
            );
            kc.event(
                &p2,
                "Warning",
                "Failed",
                "Error: ErrImagePull",
                "kubelet",
                now,
            );
        }
        let at = now + kc.wall(IMAGE_BACKOFF_SECS);
        kc.timer(at, TEv::Backoff, ns, name, &uid);
        return;
    }
    let crash = crash_looping(kc, &p);
    let Some(p2) = kc.update(Kind::Pod, ns, name, |p| {
        set_running(p, &ip, &t);
        if crash {
            let pref = pod_ref(p);
            let names = container_names(p);
            if let Some(cs) = p["status"]["containerStatuses"].as_array_mut() {
                for c in cs.iter_mut() {
                    crash_status(c, 0, &pref, &t);
                }
            }
            set_unready(p, &names);
        }
    }) else {
        return;
    };
    for c in container_names(&p2) {
        kc.event(
            &p2,
            "Normal",
            "Pulled",
            &format!(
                "Container image \"{}\" already present on machine",
                image_of(&p2, &c)
            ),
            "kubelet",
            now,
        );
        kc.event(
            &p2,
            "Normal",
            "Created",
            &format!("Created container {c}"),
            "kubelet",
            now,
        );
        kc.event(
            &p2,
            "Normal",
            "Started",
            &format!("Started container {c}"),
            "kubelet",
            now,
        );
        if crash {
            kc.event(
                &p2,
                "Warning",
                "BackOff",
                &format!(
                    "Back-off restarting failed container {c} in pod {}",
                    pod_ref(&p2)
                ),
                "kubelet",
                now,
            );
        }
    }
    if crash {
        let at = now + kc.wall(crash_backoff(0));
        kc.timer(at, TEv::Backoff, ns, name, &uid);
    }
}

/// A container that exited with an error `restarts` times and waits for its next restart.
fn crash_status(c: &mut Value, restarts: i64, pod_ref: &str, t: &str) {
    let cname = c["name"].as_str().unwrap_or("").to_string();
    let cid = c["containerID"].clone();
    c["ready"] = json!(false);
    c["started"] = json!(false);
    c["restartCount"] = json!(restarts);
    c["state"] = json!({ "waiting": { "reason": "CrashLoopBackOff", "message": format!(
        "back-off {} restarting failed container={cname} pod={pod_ref}", go_duration(crash_backoff(restarts))) } });
    c["lastState"] = json!({ "terminated": { "exitCode": 1, "reason": "Error", "startedAt": t,
        "finishedAt": t, "containerID": cid } });
}

/// Ready/ContainersReady False because of `containers`, as the kubelet reports it.
fn set_unready(p: &mut Value, containers: &[String]) {
    let msg = format!("containers with unready status: [{}]", containers.join(" "));
    if let Some(conds) = p["status"]["conditions"].as_array_mut() {
        for c in conds.iter_mut() {
            if c["type"] == "Ready" || c["type"] == "ContainersReady" {
                c["status"] = json!("False");
                c["reason"] = json!("ContainersNotReady");
                c["message"] = json!(msg);
            }
        }
    }
}

/// The kubelet's next attempt for a pod that cannot run: a crash-looping container restarts,
/// crashes again and backs off longer (restartCount grows); a failed pull turns into
/// ImagePullBackOff.
pub fn kubelet_backoff(kc: &mut KCluster, ns: &str, name: &str, uid: &str, now: f64) {
    let Some(p) = kc.get(Kind::Pod, ns, name).cloned() else {
        return;
    };
    if util::uid(&p) != uid || !p["metadata"]["deletionTimestamp"].is_null() {
        return;
    }
    let t = k8s_time(now);
    let pref = pod_ref(&p);
    let waiting = |reason: &str| -> Vec<String> {
        p["status"]["containerStatuses"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter(|s| s["state"]["waiting"]["reason"] == reason)
                    .filter_map(|s| s["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let crashing = waiting("CrashLoopBackOff");
    let pulling = waiting("ErrImagePull");
    let mut next = None;
    let p2 = kc.update(Kind::Pod, ns, name, |p| {
        if let Some(cs) = p["status"]["containerStatuses"].as_array_mut() {
            for c in cs.iter_mut() {
                let cname = c["name"].as_str().unwrap_or("").to_string();
                if crashing.contains(&cname) {
                    let n = c["restartCount"].as_i64().unwrap_or(0) + 1;
                    crash_status(c, n, &pref, &t);
                    next = Some(crash_backoff(n));
                } else if pulling.contains(&cname) {
                    let image = c["image"].as_str().unwrap_or("").to_string();
                    c["state"] = json!({ "waiting": { "reason": "ImagePullBackOff",
                        "message": format!("Back-off pulling image \"{image}\"") } });
                }
            }
        }
    });
    let Some(p2) = p2 else {
        return;
    };
    for c in &crashing {
        kc.event(
            &p2,
            "Normal",
            "Started",
            &format!("Started container {c}"),
            "kubelet",
            now,
        );
        kc.event(
            &p2,
            "Warning",
            "BackOff",
            &format!("Back-off restarting failed container {c} in pod {pref}"),
            "kubelet",
            now,
        );
    }
    for c in &pulling {
        let image = image_of(&p2, c);
        kc.event(
            &p2,
            "Normal",
            "BackOff",
            &format!("Back-off pulling image \"{image}\""),
            "kubelet",
            now,
        );
        kc.event(
            &p2,
            "Warning",
            "Failed",
            "Error: ImagePullBackOff",
            "kubelet",
            now,
        );
    }
    if let Some(d) = next {
        let at = now + kc.wall(d);
        kc.timer(at, TEv::Backoff, ns, name, uid);
    }
}

fn image_of(p: &Value, c: &str) -> String {
    p["spec"]["containers"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == c))
        .and_then(|x| x["image"].as_str())
        .unwrap_or("")
        .to_string()
}

/// Mark a pod Running and Ready.
pub fn set_running(p: &mut Value, ip: &str, t: &str) {
    let statuses: Vec<Value> = container_names(p)
        .iter()
        .map(|c| {
            let image = image_of(p, c);
            json!({
                "name": c, "ready": true, "started": true, "restartCount": 0,
                "image": image, "imageID": format!("{image}@sha256:{:016x}{:016x}", util::fnv(&image), util::fnv(c)),
                "containerID": format!("containerd://{:016x}{:016x}", util::fnv(ip), util::fnv(t)),
                "state": { "running": { "startedAt": t } },
                "lastState": {}
            })
        })
        .collect();
    let host = p["status"]["hostIP"].clone();
    let st = &mut p["status"];
    st["phase"] = json!("Running");
    st["podIP"] = json!(ip);
    st["podIPs"] = json!([{ "ip": ip }]);
    st["hostIPs"] = json!([{ "ip": host }]);
    st["startTime"] = json!(t);
    st["containerStatuses"] = json!(statuses);
    st["conditions"] = json!([
        { "type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": null, "lastTransitionTime": t },
        { "type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": t },
        { "type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": t },
        { "type": "ContainersReady", "status": "True", "lastProbeTime": null, "lastTransitionTime": t },
        { "type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": t }
    ]);
}

/// Remove a node and every pod bound to it (pods not already terminating and not owned by a
/// DaemonSet are recorded as lost).
pub fn remove_node(kc: &mut KCluster, node: &str, _now: f64) {
    let pods: Vec<(Key, bool)> = kc
        .objs(Kind::Pod)
        .iter()
        .filter(|(_, p)| p["spec"]["nodeName"] == node)
        .map(|(k, p)| {
            (
                k.clone(),
                !is_daemon_pod(p) && p["metadata"]["deletionTimestamp"].is_null(),
            )
        })
        .collect();
    for ((ns, name), lost) in pods {
        if lost {
            kc.audit.lost_pods.push(format!("{ns}/{name}"));
        }
        kc.remove(Kind::Pod, &ns, &name);
    }
    kc.remove(Kind::Node, "", node);
    kc.dirty = true;
}

// ---------------------------------------------------------------------------------------------
// Eviction
// ---------------------------------------------------------------------------------------------

/// The pods/eviction subresource: PDB rules exactly as the apiserver applies them.
pub fn evict(
    kc: &mut KCluster,
    ns: &str,
    name: &str,
    grace: Option<i64>,
    now: f64,
) -> Result<(), ApiErr> {
    let pod = kc
        .get(Kind::Pod, ns, name)
        .cloned()
        .ok_or_else(|| ApiErr::not_found(Kind::Pod, name))?;
    // Terminal, pending or already-terminating pods can be deleted without consulting PDBs.
    let phase = pod["status"]["phase"].as_str().unwrap_or("");
    if !pod["metadata"]["deletionTimestamp"].is_null()
        || matches!(phase, "Succeeded" | "Failed" | "Pending")
    {
        kc.audit.evictions += 1;
        delete_pod(kc, ns, name, grace, now, true);
        return Ok(());
    }
    let labels = &pod["metadata"]["labels"];
    let pdbs: Vec<Value> = kc
        .objs(Kind::Pdb)
        .range((ns.to_string(), String::new())..)
        .take_while(|((n, _), _)| n == ns)
        .filter(|(_, b)| {
            let sel = LabelSelector::from_object(&b["spec"]["selector"]);
            !sel.is_empty() && sel.matches(labels)
        })
        .map(|(_, b)| b.clone())
        .collect();
    if pdbs.len() > 1 {
        return Err(ApiErr::new(
            500,
            "InternalError",
            "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
        ));
    }
    if let Some(pdb) = pdbs.first() {
        let pname = util::name(pdb).to_string();
        let st = &pdb["status"];
        let gen = pdb["metadata"]["generation"].as_i64().unwrap_or(1);
        if st["observedGeneration"].as_i64().unwrap_or(0) < gen {
            kc.audit.evictions_refused += 1;
            return Err(too_many(format!(
                "The disruption budget {pname} is still being processed by the server."
            )));
        }
        let allowed = st["disruptionsAllowed"].as_i64().unwrap_or(0);
        let current = st["currentHealthy"].as_i64().unwrap_or(0);
        let desired = st["desiredHealthy"].as_i64().unwrap_or(0);
        let unhealthy_ok = !util::pod_ready(&pod) && current >= desired;
        if !unhealthy_ok {
            if allowed < 0 {
                return Err(ApiErr::new(
                    403,
                    "Forbidden",
                    "pdb disruptions allowed is negative",
                ));
            }
            if allowed == 0 {
                kc.audit.evictions_refused += 1;
                *kc.audit
                    .evictions_refused_by_pdb
                    .entry(format!("{ns}/{pname}"))
                    .or_default() += 1;
                return Err(too_many(format!(
                    "The disruption budget {pname} needs {desired} healthy pods and has {current} currently"
                )));
            }
            let t = k8s_time(now);
            let pod_name = name.to_string();
            kc.update(Kind::Pdb, ns, &pname, |b| {
                b["status"]["disruptionsAllowed"] = json!(allowed - 1);
                if !b["status"]["disruptedPods"].is_object() {
                    b["status"]["disruptedPods"] = json!({});
                }
                b["status"]["disruptedPods"][pod_name] = json!(t);
            });
        }
    }
    kc.audit.evictions += 1;
    delete_pod(kc, ns, name, grace, now, true);
    Ok(())
}

fn too_many(cause: String) -> ApiErr {
    let mut e = ApiErr::new(
        429,
        "TooManyRequests",
        "Cannot evict pod as it would violate the pod's disruption budget.",
    );
    e.details = json!({ "causes": [ { "reason": "DisruptionBudget", "message": cause } ] });
    e
}

// ---------------------------------------------------------------------------------------------
// Reconciliation
// ---------------------------------------------------------------------------------------------

/// Run the controllers until nothing changes (bounded).
pub fn reconcile(kc: &mut KCluster, now: f64) {
    for _ in 0..4 {
        if !kc.dirty {
            return;
        }
        kc.dirty = false;
        node_taints(kc, now);
        deployments(kc, now);
        let idx = owner_index(kc);
        let before = kc.rv;
        replicasets(kc, &idx, now);
        statefulsets(kc, &idx, now);
        daemonsets(kc, &idx, now);
        schedule(kc, now);
        let idx = if kc.rv != before {
            owner_index(kc)
        } else {
            idx
        };
        statuses(kc, &idx, now);
        pdbs(kc, now);
    }
}

fn owner_index(kc: &KCluster) -> HashMap<String, Vec<Key>> {
    let mut m: HashMap<String, Vec<Key>> = HashMap::new();
    for (k, p) in kc.objs(Kind::Pod) {
        if let Some((_, _, uid)) = util::controller_of(p) {
            m.entry(uid.to_string()).or_default().push(k.clone());
        }
    }
    m
}

fn node_taints(kc: &mut KCluster, now: f64) {
    let nodes: Vec<Value> = kc.objs(Kind::Node).values().cloned().collect();
    for n in nodes {
        let mut n2 = n.clone();
        let want_unsched = n["spec"]["unschedulable"].as_bool() == Some(true);
        let want_notready = !util::node_ready(&n);
        let mut taints: Vec<Value> = n["spec"]["taints"].as_array().cloned().unwrap_or_default();
        let fix = |taints: &mut Vec<Value>, key: &str, want: bool| {
            let has = taints
                .iter()
                .any(|t| t["key"] == key && t["effect"] == "NoSchedule");
            if want && !has {
                let mut t = json!({ "key": key, "effect": "NoSchedule" });
                if key.ends_with("unschedulable") {
                    t["timeAdded"] = json!(k8s_time(now));
                }
                taints.push(t);
            } else if !want && has {
                taints.retain(|t| !(t["key"] == key && t["effect"] == "NoSchedule"));
            }
        };
        fix(
            &mut taints,
            "node.kubernetes.io/unschedulable",
            want_unsched,
        );
        fix(&mut taints, "node.kubernetes.io/not-ready", want_notready);
        if taints.is_empty() {
            if let Some(s) = n2["spec"].as_object_mut() {
                s.remove("taints");
            }
        } else {
            n2["spec"]["taints"] = json!(taints);
        }
        if n2 != n {
            kc.put(Kind::Node, n2);
        }
    }
}

fn owner_ref(kind: Kind, o: &Value) -> Value {
    json!({
        "apiVersion": kind.api_version(), "kind": kind.info().kind, "name": util::name(o),
        "uid": util::uid(o), "controller": true, "blockOwnerDeletion": true
    })
}

fn deployments(kc: &mut KCluster, now: f64) {
    let deps: Vec<Value> = kc.objs(Kind::Deployment).values().cloned().collect();
    for d in deps {
        let ns = util::namespace(&d).to_string();
        let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let tpl = &d["spec"]["template"];
        let hash = util::safe_hash(&tpl.to_string(), 10);
        let rs_name = format!("{}-{hash}", util::name(&d));
        let dep_uid = util::uid(&d).to_string();
        // Scale down ReplicaSets of older templates.
        let others: Vec<Value> = kc
            .objs(Kind::ReplicaSet)
            .range((ns.clone(), String::new())..)
            .take_while(|((n, _), _)| *n == ns)
            .filter(|(_, r)| {
                util::controller_of(r).is_some_and(|(_, _, u)| u == dep_uid)
                    && util::name(r) != rs_name
            })
            .map(|(_, r)| r.clone())
            .collect();
        for r in others {
            kc.update(Kind::ReplicaSet, &ns, util::name(&r), |r| {
                r["spec"]["replicas"] = json!(0)
            });
        }
        match kc.get(Kind::ReplicaSet, &ns, &rs_name) {
            Some(rs) => {
                if rs["spec"]["replicas"].as_i64() != Some(replicas) {
                    kc.update(Kind::ReplicaSet, &ns, &rs_name, |r| {
                        r["spec"]["replicas"] = json!(replicas)
                    });
                }
            }
            None => {
                let mut tpl = tpl.clone();
                tpl["metadata"]["labels"]["pod-template-hash"] = json!(hash);
                let mut sel = d["spec"]["selector"].clone();
                sel["matchLabels"]["pod-template-hash"] = json!(hash);
                let labels = tpl["metadata"]["labels"].clone();
                let rs = json!({
                    "metadata": {
                        "name": rs_name, "namespace": ns, "labels": labels,
                        "annotations": {
                            "deployment.kubernetes.io/desired-replicas": replicas.to_string(),
                            "deployment.kubernetes.io/max-replicas": (replicas + (replicas as f64 * 0.25).ceil() as i64).to_string(),
                            "deployment.kubernetes.io/revision": "1"
                        },
                        "ownerReferences": [owner_ref(Kind::Deployment, &d)]
                    },
                    "spec": { "replicas": replicas, "selector": sel, "template": tpl },
                    "status": { "replicas": 0, "observedGeneration": 1 }
                });
                let rs = kc.create(Kind::ReplicaSet, rs, now);
                kc.event(
                    &d,
                    "Normal",
                    "ScalingReplicaSet",
                    &format!("Scaled up replica set {rs_name} from 0 to {replicas}"),
                    "deployment-controller",
                    now,
                );
                let _ = rs;
            }
        }
    }
}

/// A new pod from a controller's template.
fn new_pod(
    kc: &mut KCluster,
    kind: Kind,
    owner: &Value,
    name: &str,
    extra_labels: &[(&str, String)],
    node: Option<&str>,
) -> Value {
    let tpl = &owner["spec"]["template"];
    let mut labels = tpl["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    for (k, v) in extra_labels {
        labels[*k] = json!(v);
    }
    let mut spec = tpl["spec"].clone();
    pod_defaults(&mut spec);
    if let Some(n) = node {
        // The DaemonSet controller pins pods with node affinity; the scheduler binds them.
        spec["affinity"] = json!({ "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [ { "matchFields": [ { "key": "metadata.name", "operator": "In", "values": [n] } ] } ] } } });
    }
    let mut meta = json!({
        "name": name, "namespace": util::namespace(owner), "labels": labels,
        "ownerReferences": [owner_ref(kind, owner)]
    });
    if kind != Kind::StatefulSet {
        meta["generateName"] = json!(format!("{}-", util::name(owner)));
    }
    if let Some(a) = tpl["metadata"]["annotations"].as_object() {
        meta["annotations"] = json!(a);
    }
    let _ = kc;
    json!({ "metadata": meta, "spec": spec, "status": pending_status(&spec_qos(&tpl["spec"])) })
}

fn spec_qos(spec: &Value) -> String {
    let any = spec["containers"].as_array().is_some_and(|cs| {
        cs.iter().any(|c| {
            c["resources"]["requests"]
                .as_object()
                .is_some_and(|r| !r.is_empty())
        })
    });
    if any { "Burstable" } else { "BestEffort" }.to_string()
}

fn pending_status(qos: &str) -> Value {
    json!({ "phase": "Pending", "qosClass": qos })
}

/// Defaults the apiserver fills in on pod creation.
pub fn pod_defaults(spec: &mut Value) {
    let s = spec.as_object_mut().expect("pod spec");
    s.entry("restartPolicy").or_insert(json!("Always"));
    s.entry("terminationGracePeriodSeconds")
        .or_insert(json!(30));
    s.entry("dnsPolicy").or_insert(json!("ClusterFirst"));
    s.entry("schedulerName")
        .or_insert(json!("default-scheduler"));
    s.entry("serviceAccountName").or_insert(json!("default"));
    s.entry("serviceAccount").or_insert(json!("default"));
    s.entry("securityContext").or_insert(json!({}));
    s.entry("enableServiceLinks").or_insert(json!(true));
    s.entry("priority").or_insert(json!(0));
    s.entry("preemptionPolicy")
        .or_insert(json!("PreemptLowerPriority"));
    let tol = s.entry("tolerations").or_insert(json!([]));
    if let Some(a) = tol.as_array_mut() {
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            if !a.iter().any(|t| t["key"] == key) {
                a.push(json!({ "key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300 }));
            }
        }
    }
    if let Some(cs) = s.get_mut("containers").and_then(Value::as_array_mut) {
        for c in cs {
            let c = c.as_object_mut().expect("container");
            c.entry("imagePullPolicy").or_insert(json!("IfNotPresent"));
            c.entry("terminationMessagePath")
                .or_insert(json!("/dev/termination-log"));
            c.entry("terminationMessagePolicy").or_insert(json!("File"));
            c.entry("resources").or_insert(json!({}));
        }
    }
}

fn active(p: &Value) -> bool {
    p["metadata"]["deletionTimestamp"].is_null()
        && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
}

fn replicasets(kc: &mut KCluster, idx: &HashMap<String, Vec<Key>>, now: f64) {
    let sets: Vec<Value> = kc.objs(Kind::ReplicaSet).values().cloned().collect();
    for rs in sets {
        let want = rs["spec"]["replicas"].as_i64().unwrap_or(1);
        let active_keys: Vec<&Key> = idx
            .get(util::uid(&rs))
            .map(|ks| {
                ks.iter()
                    .filter(|k| kc.objs(Kind::Pod).get(*k).is_some_and(active))
                    .collect()
            })
            .unwrap_or_default();
        let have = active_keys.len() as i64;
        if have < want {
            let hash = rs["metadata"]["labels"]["pod-template-hash"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let mut created = Vec::new();
            for _ in have..want {
                let name = loop {
                    let n = format!(
                        "{}-{}",
                        util::name(&rs),
                        util::random_suffix(&mut kc.rng, 5)
                    );
                    if kc.get(Kind::Pod, util::namespace(&rs), &n).is_none() {
                        break n;
                    }
                };
                let extra = if hash.is_empty() {
                    vec![]
                } else {
                    vec![("pod-template-hash", hash.clone())]
                };
                let p = new_pod(kc, Kind::ReplicaSet, &rs, &name, &extra, None);
                kc.create(Kind::Pod, p, now);
                created.push(name);
            }
            if kc.record_events {
                for n in created {
                    kc.event(
                        &rs,
                        "Normal",
                        "SuccessfulCreate",
                        &format!("Created pod: {n}"),
                        "replicaset-controller",
                        now,
                    );
                }
            }
        } else if have > want {
            let mut victims: Vec<Value> = active_keys
                .iter()
                .filter_map(|k| kc.objs(Kind::Pod).get(*k))
                .cloned()
                .collect();
            victims.sort_by_key(|p| (util::pod_ready(p), p["spec"]["nodeName"].is_string()));
            for p in victims.iter().take((have - want) as usize) {
                let (ns, n) = (util::namespace(p).to_string(), util::name(p).to_string());
                delete_pod(kc, &ns, &n, None, now, false);
                kc.event(
                    &rs,
                    "Normal",
                    "SuccessfulDelete",
                    &format!("Deleted pod: {n}"),
                    "replicaset-controller",
                    now,
                );
            }
        }
    }
}

fn statefulsets(kc: &mut KCluster, idx: &HashMap<String, Vec<Key>>, now: f64) {
    let sets: Vec<Value> = kc.objs(Kind::StatefulSet).values().cloned().collect();
    for sts in sets {
        let want = sts["spec"]["replicas"].as_i64().unwrap_or(1);
        let ns = util::namespace(&sts).to_string();
        let sname = util::name(&sts).to_string();
        let rev = format!(
            "{sname}-{}",
            util::safe_hash(&sts["spec"]["template"].to_string(), 10)
        );
        for i in 0..want {
            let pname = format!("{sname}-{i}");
            if kc.get(Kind::Pod, &ns, &pname).is_some() {
                continue;
            }
            let extra = [
                ("controller-revision-hash", rev.clone()),
                ("statefulset.kubernetes.io/pod-name", pname.clone()),
                ("apps.kubernetes.io/pod-index", i.to_string()),
            ];
            let p = new_pod(kc, Kind::StatefulSet, &sts, &pname, &extra, None);
            let mut p = p;
            p["spec"]["hostname"] = json!(pname);
            kc.create(Kind::Pod, p, now);
            kc.event(
                &sts,
                "Normal",
                "SuccessfulCreate",
                &format!("create Pod {pname} in StatefulSet {sname} successful"),
                "statefulset-controller",
                now,
            );
        }
        // Scale down: delete ordinals >= replicas.
        let extra: Vec<String> = idx
            .get(util::uid(&sts))
            .map(|ks| {
                ks.iter()
                    .filter(|(_, n)| {
                        n.rsplit_once('-')
                            .and_then(|(_, o)| o.parse::<i64>().ok())
                            .is_some_and(|o| o >= want)
                    })
                    .map(|(_, n)| n.clone())
                    .collect()
            })
            .unwrap_or_default();
        for n in extra {
            if kc.get(Kind::Pod, &ns, &n).is_some_and(active) {
                delete_pod(kc, &ns, &n, None, now, false);
            }
        }
    }
}

/// Does `pod_spec` tolerate every NoSchedule/NoExecute taint of `node`?
fn tolerates(pod_spec: &Value, node: &Value) -> bool {
    let tols = pod_spec["tolerations"].as_array();
    node["spec"]["taints"].as_array().is_none_or(|taints| {
        taints.iter().all(|t| {
            let eff = t["effect"].as_str().unwrap_or("");
            if eff == "PreferNoSchedule" {
                return true;
            }
            tols.is_some_and(|ts| {
                ts.iter().any(|tol| {
                    let key_ok = tol["key"].as_str().is_none_or(str::is_empty)
                        && tol["operator"] == "Exists"
                        || tol["key"] == t["key"];
                    let op_ok = tol["operator"] == "Exists"
                        || tol["value"].as_str().unwrap_or("") == t["value"].as_str().unwrap_or("");
                    let eff_ok = tol["effect"]
                        .as_str()
                        .is_none_or(|e| e.is_empty() || e == eff);
                    key_ok && op_ok && eff_ok
                })
            })
        })
    })
}

fn node_selector_ok(pod_spec: &Value, node: &Value) -> bool {
    let labels = &node["metadata"]["labels"];
    let sel_ok = pod_spec["nodeSelector"]
        .as_object()
        .is_none_or(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)));
    let aff_ok = match pod_spec["affinity"]["nodeAffinity"]
        ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        .as_array()
    {
        None => true,
        Some(terms) => terms.iter().any(|term| {
            let fields_ok = term["matchFields"].as_array().is_none_or(|fs| {
                fs.iter().all(|f| {
                    f["key"] == "metadata.name"
                        && f["values"]
                            .as_array()
                            .is_some_and(|vs| vs.iter().any(|v| *v == node["metadata"]["name"]))
                })
            });
            let exprs_ok = term["matchExpressions"].as_array().is_none_or(|es| {
                es.iter().all(|e| {
                    let v = labels.get(e["key"].as_str().unwrap_or(""));
                    let vals = e["values"].as_array();
                    match e["operator"].as_str().unwrap_or("") {
                        "In" => v.is_some_and(|v| vals.is_some_and(|a| a.contains(v))),
                        "NotIn" => !v.is_some_and(|v| vals.is_some_and(|a| a.contains(v))),
                        "Exists" => v.is_some(),
                        "DoesNotExist" => v.is_none(),
                        _ => false,
                    }
                })
            });
            fields_ok && exprs_ok
        }),
    };
    sel_ok && aff_ok
}

fn daemonsets(kc: &mut KCluster, idx: &HashMap<String, Vec<Key>>, now: f64) {
    let sets: Vec<Value> = kc.objs(Kind::DaemonSet).values().cloned().collect();
    let nodes: Vec<Value> = kc.objs(Kind::Node).values().cloned().collect();
    for ds in sets {
        let ns = util::namespace(&ds).to_string();
        let mut ds_spec = ds["spec"]["template"]["spec"].clone();
        // DaemonSet pods tolerate these automatically.
        if let Some(obj) = ds_spec.as_object_mut() {
            let tols = obj.entry("tolerations").or_insert(json!([]));
            if let Some(a) = tols.as_array_mut() {
                for (k, e) in [
                    ("node.kubernetes.io/not-ready", "NoExecute"),
                    ("node.kubernetes.io/unreachable", "NoExecute"),
                    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
                    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
                    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
                    ("node.kubernetes.io/unschedulable", "NoSchedule"),
                    ("node.kubernetes.io/not-ready", "NoSchedule"),
                ] {
                    a.push(json!({ "key": k, "operator": "Exists", "effect": e }));
                }
            }
        }
        let mut on_node: HashMap<String, usize> = HashMap::new();
        if let Some(ks) = idx.get(util::uid(&ds)) {
            for k in ks {
                if let Some(p) = kc.objs(Kind::Pod).get(k) {
                    let node = p["spec"]["nodeName"]
                        .as_str()
                        .map(str::to_string)
                        .or_else(|| {
                            p["spec"]["affinity"]["nodeAffinity"]
                                ["requiredDuringSchedulingIgnoredDuringExecution"]
                                ["nodeSelectorTerms"][0]["matchFields"][0]["values"][0]
                                .as_str()
                                .map(str::to_string)
                        });
                    if let Some(n) = node {
                        *on_node.entry(n).or_default() += 1;
                    }
                }
            }
        }
        let rev = util::safe_hash(&ds["spec"]["template"].to_string(), 10);
        for n in &nodes {
            let nname = util::name(n);
            if on_node.contains_key(nname)
                || !tolerates(&ds_spec, n)
                || !node_selector_ok(&ds_spec, n)
            {
                continue;
            }
            let pname = loop {
                let x = format!(
                    "{}-{}",
                    util::name(&ds),
                    util::random_suffix(&mut kc.rng, 5)
                );
                if kc.get(Kind::Pod, &ns, &x).is_none() {
                    break x;
                }
            };
            let extra = [
                ("controller-revision-hash", rev.clone()),
                ("pod-template-generation", "1".to_string()),
            ];
            let mut p = new_pod(kc, Kind::DaemonSet, &ds, &pname, &extra, Some(nname));
            p["spec"]["tolerations"] = ds_spec["tolerations"].clone();
            kc.create(Kind::Pod, p, now);
            kc.event(
                &ds,
                "Normal",
                "SuccessfulCreate",
                &format!("Created pod: {pname}"),
                "daemonset-controller",
                now,
            );
        }
    }
}

/// Requests of a pod: (millicores, bytes).
pub fn pod_requests(p: &Value) -> (i64, i64) {
    let mut cpu = 0;
    let mut mem = 0;
    if let Some(cs) = p["spec"]["containers"].as_array() {
        for c in cs {
            let r = &c["resources"]["requests"];
            cpu += r["cpu"].as_str().map(util::cpu_milli).unwrap_or(0);
            mem += r["memory"].as_str().map(util::bytes).unwrap_or(0);
        }
    }
    (cpu, mem)
}

/// Allocatable of a node: (millicores, bytes, pods).
pub fn node_alloc(n: &Value) -> (i64, i64, i64) {
    let a = &n["status"]["allocatable"];
    (
        a["cpu"].as_str().map(util::cpu_milli).unwrap_or(0),
        a["memory"].as_str().map(util::bytes).unwrap_or(0),
        a["pods"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(110),
    )
}

/// Bind pending pods to Ready, schedulable nodes with room (least-allocated first).
fn schedule(kc: &mut KCluster, now: f64) {
    let pending: Vec<Key> = kc
        .objs(Kind::Pod)
        .iter()
        .filter(|(_, p)| {
            p["spec"]["nodeName"].as_str().is_none_or(str::is_empty)
                && p["metadata"]["deletionTimestamp"].is_null()
        })
        .map(|(k, _)| k.clone())
        .collect();
    if pending.is_empty() {
        return;
    }
    let mut used: HashMap<String, (i64, i64, i64)> = HashMap::new();
    for p in kc.objs(Kind::Pod).values() {
        if let Some(n) = p["spec"]["nodeName"].as_str() {
            if matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")) {
                continue;
            }
            let (c, m) = pod_requests(p);
            let e = used.entry(n.to_string()).or_default();
            e.0 += c;
            e.1 += m;
            e.2 += 1;
        }
    }
    let nodes: Vec<Value> = kc.objs(Kind::Node).values().cloned().collect();
    let total = nodes.len();
    let mut pending: Vec<(String, Key)> = pending
        .into_iter()
        .map(|k| {
            let ts = kc.objs(Kind::Pod)[&k]["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or("")
                .to_string();
            (ts, k)
        })
        .collect();
    pending.sort();
    for (_, (ns, name)) in pending {
        let pod = kc.objs(Kind::Pod)[&(ns.clone(), name.clone())].clone();
        let (cpu, mem) = pod_requests(&pod);
        let daemon = is_daemon_pod(&pod);
        let mut best: Option<(f64, &Value)> = None;
        let (
            mut n_unsched,
            mut n_notready,
            mut n_taint,
            mut n_sel,
            mut n_cpu,
            mut n_mem,
            mut n_pods,
        ) = (0, 0, 0, 0, 0, 0, 0);
        for n in &nodes {
            let nname = util::name(n);
            if !util::node_ready(n) && !daemon {
                n_notready += 1;
                continue;
            }
            if n["spec"]["unschedulable"].as_bool() == Some(true) && !daemon {
                n_unsched += 1;
                continue;
            }
            if !tolerates(&pod["spec"], n) {
                n_taint += 1;
                continue;
            }
            if !node_selector_ok(&pod["spec"], n) {
                n_sel += 1;
                continue;
            }
            let (ac, am, ap) = node_alloc(n);
            let u = used.get(nname).copied().unwrap_or_default();
            if u.2 + 1 > ap {
                n_pods += 1;
                continue;
            }
            if u.0 + cpu > ac {
                n_cpu += 1;
                continue;
            }
            if u.1 + mem > am {
                n_mem += 1;
                continue;
            }
            let score =
                (u.0 + cpu) as f64 / ac.max(1) as f64 + (u.1 + mem) as f64 / am.max(1) as f64;
            if best.is_none_or(|(s, _)| score < s) {
                best = Some((score, n));
            }
        }
        match best {
            Some((_, n)) => {
                let speed = kc.speed;
                if let Some(u) = kc.audit.unschedulable.get_mut(&format!("{ns}/{name}")) {
                    if u.waited_secs.is_none() {
                        u.waited_secs = Some((now - u.since).max(0.0) * speed);
                    }
                }
                let nname = util::name(n).to_string();
                let host_ip = n["status"]["addresses"][0]["address"].clone();
                let e = used.entry(nname.clone()).or_default();
                e.0 += cpu;
                e.1 += mem;
                e.2 += 1;
                let t = k8s_time(now);
                let p = kc.update(Kind::Pod, &ns, &name, |p| {
                    p["spec"]["nodeName"] = json!(nname);
                    p["status"]["hostIP"] = host_ip.clone();
                    p["status"]["hostIPs"] = json!([{ "ip": host_ip }]);
                    p["status"]["conditions"] = json!([
                        { "type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": t }
                    ]);
                    let cs: Vec<Value> = container_names(p)
                        .iter()
                        .map(|c| json!({ "name": c, "ready": false, "started": false, "restartCount": 0, "image": image_of(p, c), "imageID": "",
                            "state": { "waiting": { "reason": "ContainerCreating" } }, "lastState": {} }))
                        .collect();
                    p["status"]["containerStatuses"] = json!(cs);
                });
                if let Some(p) = p {
                    kc.event(
                        &p,
                        "Normal",
                        "Scheduled",
                        &format!("Successfully assigned {ns}/{name} to {nname}"),
                        "default-scheduler",
                        now,
                    );
                    let uid = util::uid(&p).to_string();
                    let at = now + kc.wall(POD_START_SECS);
                    kc.timer(at, TEv::PodStart, &ns, &name, &uid);
                }
            }
            None => {
                let mut parts = Vec::new();
                for (c, what) in [
                    (n_cpu, "Insufficient cpu"),
                    (n_mem, "Insufficient memory"),
                    (n_pods, "Too many pods"),
                    (n_sel, "node(s) didn't match Pod's node affinity/selector"),
                    (n_unsched, "node(s) were unschedulable"),
                    (
                        n_notready,
                        "node(s) had untolerated taint {node.kubernetes.io/not-ready: }",
                    ),
                    (n_taint, "node(s) had untolerated taint(s)"),
                ] {
                    if c > 0 {
                        parts.push(format!("{c} {what}"));
                    }
                }
                let msg = format!(
                    "0/{total} nodes are available: {}. preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling.",
                    parts.join(", ")
                );
                let already =
                    pod["status"]["conditions"][0]["message"].as_str() == Some(msg.as_str());
                let key = format!("{ns}/{name}");
                if kc.audit.unschedulable.len() < super::UNSCHEDULABLE_AUDIT_LIMIT
                    && !kc.audit.unschedulable.contains_key(&key)
                {
                    kc.audit.unschedulable.insert(
                        key,
                        super::UnschedulableAudit {
                            message: msg.clone(),
                            since: now,
                            waited_secs: None,
                        },
                    );
                }
                if !already {
                    let t = k8s_time(now);
                    let p = kc.update(Kind::Pod, &ns, &name, |p| {
                        p["status"]["conditions"] = json!([
                            { "type": "PodScheduled", "status": "False", "lastProbeTime": null, "lastTransitionTime": t, "reason": "Unschedulable", "message": msg }
                        ]);
                    });
                    if let Some(p) = p {
                        kc.event(
                            &p,
                            "Warning",
                            "FailedScheduling",
                            &msg,
                            "default-scheduler",
                            now,
                        );
                    }
                }
            }
        }
    }
}

fn cond(t: &str, ok: bool, reason: &str, message: &str, now: f64) -> Value {
    json!({ "type": t, "status": if ok { "True" } else { "False" }, "lastUpdateTime": k8s_time(now),
        "lastTransitionTime": k8s_time(now), "reason": reason, "message": message })
}

/// Keep a condition's transition time when its status did not change.
fn keep_times(old: &Value, new: &mut Value) {
    if let (Some(o), Some(n)) = (old.as_array(), new.as_array_mut()) {
        for c in n {
            if let Some(prev) = o.iter().find(|x| x["type"] == c["type"]) {
                if prev["status"] == c["status"] {
                    c["lastTransitionTime"] = prev["lastTransitionTime"].clone();
                    c["lastUpdateTime"] = prev["lastUpdateTime"].clone();
                }
            }
        }
    }
}

fn counts(kc: &KCluster, idx: &HashMap<String, Vec<Key>>, uid: &str) -> (i64, i64) {
    let mut total = 0;
    let mut ready = 0;
    if let Some(ks) = idx.get(uid) {
        for k in ks {
            if let Some(p) = kc.objs(Kind::Pod).get(k) {
                if active(p) {
                    total += 1;
                    if util::pod_ready(p) {
                        ready += 1;
                    }
                }
            }
        }
    }
    (total, ready)
}

fn set_status(kc: &mut KCluster, kind: Kind, o: &Value, status: Value) {
    if o["status"] != status {
        let mut o2 = o.clone();
        o2["status"] = status;
        kc.put(kind, o2);
    }
}

fn statuses(kc: &mut KCluster, idx: &HashMap<String, Vec<Key>>, now: f64) {
    let sets: Vec<Value> = kc.objs(Kind::ReplicaSet).values().cloned().collect();
    let mut by_dep: HashMap<String, (i64, i64)> = HashMap::new();
    for rs in &sets {
        let (total, ready) = counts(kc, idx, util::uid(rs));
        if let Some((_, _, du)) = util::controller_of(rs) {
            let e = by_dep.entry(du.to_string()).or_default();
            e.0 += total;
            e.1 += ready;
        }
        let st = json!({ "replicas": total, "fullyLabeledReplicas": total, "readyReplicas": ready,
            "availableReplicas": ready, "observedGeneration": rs["metadata"]["generation"] });
        set_status(kc, Kind::ReplicaSet, rs, st);
    }
    let deps: Vec<Value> = kc.objs(Kind::Deployment).values().cloned().collect();
    for d in deps {
        let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let (total, ready) = by_dep.get(util::uid(&d)).copied().unwrap_or_default();
        let mut conds = json!([
            cond(
                "Available",
                ready >= want - max_unavail(&d, want),
                if ready >= want - max_unavail(&d, want) {
                    "MinimumReplicasAvailable"
                } else {
                    "MinimumReplicasUnavailable"
                },
                if ready >= want - max_unavail(&d, want) {
                    "Deployment has minimum availability."
                } else {
                    "Deployment does not have minimum availability."
                },
                now
            ),
            cond(
                "Progressing",
                true,
                "NewReplicaSetAvailable",
                &format!(
                    "ReplicaSet \"{}-{}\" has successfully progressed.",
                    util::name(&d),
                    util::safe_hash(&d["spec"]["template"].to_string(), 10)
                ),
                now
            )
        ]);
        keep_times(&d["status"]["conditions"], &mut conds);
        let mut st = json!({ "observedGeneration": d["metadata"]["generation"], "replicas": total, "updatedReplicas": total,
            "readyReplicas": ready, "availableReplicas": ready, "conditions": conds });
        if total - ready > 0 {
            st["unavailableReplicas"] = json!(total - ready);
        }
        if ready == 0 {
            st.as_object_mut().expect("obj").remove("readyReplicas");
            st.as_object_mut().expect("obj").remove("availableReplicas");
        }
        set_status(kc, Kind::Deployment, &d, st);
    }
    let sets: Vec<Value> = kc.objs(Kind::StatefulSet).values().cloned().collect();
    for s in sets {
        let (total, ready) = counts(kc, idx, util::uid(&s));
        let rev = format!(
            "{}-{}",
            util::name(&s),
            util::safe_hash(&s["spec"]["template"].to_string(), 10)
        );
        let st = json!({ "observedGeneration": s["metadata"]["generation"], "replicas": total, "readyReplicas": ready,
            "currentReplicas": total, "updatedReplicas": total, "availableReplicas": ready,
            "currentRevision": rev, "updateRevision": rev, "collisionCount": 0 });
        set_status(kc, Kind::StatefulSet, &s, st);
    }
    let sets: Vec<Value> = kc.objs(Kind::DaemonSet).values().cloned().collect();
    for s in sets {
        let (total, ready) = counts(kc, idx, util::uid(&s));
        let mut st = json!({ "currentNumberScheduled": total, "desiredNumberScheduled": total, "numberMisscheduled": 0,
            "numberReady": ready, "numberAvailable": ready, "updatedNumberScheduled": total,
            "observedGeneration": s["metadata"]["generation"] });
        if total > ready {
            st["numberUnavailable"] = json!(total - ready);
        }
        set_status(kc, Kind::DaemonSet, &s, st);
    }
}

fn max_unavail(d: &Value, want: i64) -> i64 {
    let mu = &d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"];
    if mu.is_null() {
        (want as f64 * 0.25).floor() as i64
    } else {
        util::scaled(mu, want, false).unwrap_or(0)
    }
}

/// The disruption controller: recompute every PDB's status, update the audit.
fn pdbs(kc: &mut KCluster, now: f64) {
    let budgets: Vec<Value> = kc.objs(Kind::Pdb).values().cloned().collect();
    if budgets.is_empty() {
        return;
    }
    // Controller scales, by uid.
    let mut scale: HashMap<String, i64> = HashMap::new();
    for k in [Kind::ReplicaSet, Kind::StatefulSet] {
        for o in kc.objs(k).values() {
            scale.insert(
                util::uid(o).to_string(),
                o["spec"]["replicas"].as_i64().unwrap_or(1),
            );
        }
    }
    for b in budgets {
        let ns = util::namespace(&b).to_string();
        let sel = LabelSelector::from_object(&b["spec"]["selector"]);
        let mut expected_pods = 0i64;
        let mut healthy = 0i64;
        let mut controllers: HashMap<String, i64> = HashMap::new();
        if !sel.is_empty() {
            for ((_, _), p) in kc
                .objs(Kind::Pod)
                .range((ns.clone(), String::new())..)
                .take_while(|((n, _), _)| *n == ns)
            {
                if !sel.matches(&p["metadata"]["labels"]) {
                    continue;
                }
                if matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")) {
                    continue;
                }
                expected_pods += 1;
                if util::pod_healthy(p) {
                    healthy += 1;
                }
                if let Some((_, _, u)) = util::controller_of(p) {
                    if let Some(s) = scale.get(u) {
                        controllers.insert(u.to_string(), *s);
                    }
                }
            }
        }
        let min_av = &b["spec"]["minAvailable"];
        let max_un = &b["spec"]["maxUnavailable"];
        let (expected, desired) = if let (Value::Number(n), true) = (min_av, !min_av.is_null()) {
            (expected_pods, n.as_i64().unwrap_or(0))
        } else {
            let expected: i64 = controllers
                .values()
                .sum::<i64>()
                .max(if controllers.is_empty() {
                    expected_pods
                } else {
                    0
                });
            if !min_av.is_null() {
                (expected, util::scaled(min_av, expected, true).unwrap_or(0))
            } else if !max_un.is_null() {
                (
                    expected,
                    (expected - util::scaled(max_un, expected, true).unwrap_or(0)).max(0),
                )
            } else {
                (expected, expected)
            }
        };
        let allowed = (healthy - desired).max(0);
        let t = k8s_time(now);
        let mut conds = json!([{ "type": "DisruptionAllowed", "status": if allowed > 0 { "True" } else { "False" },
            "reason": if allowed > 0 { "SufficientPods" } else { "InsufficientPods" }, "message": "",
            "lastTransitionTime": t, "observedGeneration": b["metadata"]["generation"] }]);
        keep_times(&b["status"]["conditions"], &mut conds);
        let st = json!({ "observedGeneration": b["metadata"]["generation"], "disruptionsAllowed": allowed,
            "currentHealthy": healthy, "desiredHealthy": desired, "expectedPods": expected, "conditions": conds });
        set_status(kc, Kind::Pdb, &b, st);
        let key = format!("{ns}/{}", util::name(&b));
        let a = kc.audit.pdbs.entry(key).or_insert(PdbAudit {
            budget: desired,
            min_healthy_observed: None,
            violated: false,
            settled: false,
        });
        a.budget = desired;
        if healthy >= desired && expected_pods > 0 {
            a.settled = true;
        }
        if a.settled {
            a.min_healthy_observed =
                Some(a.min_healthy_observed.map_or(healthy, |m| m.min(healthy)));
            if healthy < desired {
                a.violated = true;
            }
        }
    }
}

/// Controllers whose pods are not all back and Ready.
pub fn unavailable_workloads(kc: &KCluster) -> Vec<String> {
    let mut out = Vec::new();
    for (k, f) in [
        (Kind::Deployment, "readyReplicas"),
        (Kind::StatefulSet, "readyReplicas"),
    ] {
        for o in kc.objs(k).values() {
            let want = o["spec"]["replicas"].as_i64().unwrap_or(1);
            let ready = o["status"][f].as_i64().unwrap_or(0);
            if ready < want {
                out.push(format!(
                    "{}/{}/{} ({ready}/{want} ready)",
                    k.info().kind,
                    util::namespace(o),
                    util::name(o)
                ));
            }
        }
    }
    for o in kc.objs(Kind::DaemonSet).values() {
        let want = o["status"]["desiredNumberScheduled"].as_i64().unwrap_or(0);
        let ready = o["status"]["numberReady"].as_i64().unwrap_or(0);
        if ready < want {
            out.push(format!(
                "DaemonSet/{}/{} ({ready}/{want} ready)",
                util::namespace(o),
                util::name(o)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_backoff_doubles_to_five_minutes() {
        let msgs: Vec<String> = (0..7).map(|n| go_duration(crash_backoff(n))).collect();
        assert_eq!(
            msgs,
            ["10s", "20s", "40s", "1m20s", "2m40s", "5m0s", "5m0s"]
        );
    }
}
