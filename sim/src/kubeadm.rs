//! kubeadm clusters (world-file `kubeadm_cluster` blocks): bare-metal clusters upgraded over SSH
//! with kubeadm and the distribution's package manager. There is no cloud API: each cluster
//! gets a simulated Kubernetes API (`kube/kubeadm.rs`) and admin endpoints under
//! `/_sim/kubeadm/CLUSTER/…` that the host stand-ins (`sim/hosts/bin/`, started by
//! [`crate::hosts`]) call when kup runs `kubeadm upgrade …`, `systemctl restart kubelet` or
//! `apt-get update` on a simulated host. The cluster version, every node's kubelet version
//! and every control-plane node's static-pod version persist in the world file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::state::{now_secs, App, Inner};
use crate::world::{self, OrderedMap, Workload, WorkloadFile};

/// `MAJOR.MINOR.PATCH` (no `v`, no pre-release).
pub type Ver = (u32, u32, u32);

/// Parse `1.29.8` (an optional leading `v` is accepted).
pub fn parse_version(s: &str) -> Option<Ver> {
    let s = s.strip_prefix('v').unwrap_or(s);
    let mut it = s.split('.');
    let mut num = || -> Option<u32> {
        let p = it.next()?;
        if p.is_empty() || p.len() > 6 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse().ok()
    };
    let v = (num()?, num()?, num()?);
    it.next().is_none().then_some(v)
}

/// Parse a minor like `1.30`.
pub fn parse_minor(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once('.')?;
    let ok = |p: &str| !p.is_empty() && p.len() <= 6 && p.bytes().all(|b| b.is_ascii_digit());
    if !ok(a) || !ok(b) {
        return None;
    }
    Some((a.parse().ok()?, b.parse().ok()?))
}

pub fn fmt_version(v: Ver) -> String {
    format!("{}.{}.{}", v.0, v.1, v.2)
}

/// `1.30` of `1.30.9`.
pub fn minor_of(v: Ver) -> String {
    format!("{}.{}", v.0, v.1)
}

/// Minor distance as a signed number (`1.31` vs `1.29` = 2).
fn minor_diff(a: Ver, b: Ver) -> i64 {
    (i64::from(a.0) - i64::from(b.0)) * 1000 + i64::from(a.1) - i64::from(b.1)
}

#[derive(Debug, Clone)]
pub struct KubeadmNode {
    pub name: String,
    pub control_plane: bool,
    /// Kubelet (and kube-proxy) version.
    pub version: Ver,
    /// Control-plane nodes: the version of this node's static pods (apiserver, controller
    /// manager, scheduler; etcd follows the minor).
    pub static_version: Option<Ver>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct KubeadmCluster {
    pub name: String,
    /// The ClusterConfiguration's `kubernetesVersion`.
    pub version: Ver,
    pub nodes: Vec<KubeadmNode>,
    /// Minor (`1.30`) → patch versions its pkgs.k8s.io repository offers, oldest first.
    pub packages: BTreeMap<String, Vec<Ver>>,
    pub workloads: Vec<Workload>,
    /// Objects, Helm releases and readiness failures staged in the Kubernetes API.
    pub staging: crate::stage::Staging,
    /// The cluster's Kubernetes API URL (set at start; not persisted).
    pub endpoint: Option<String>,
}

impl KubeadmCluster {
    pub fn node(&self, name: &str) -> Option<&KubeadmNode> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn node_mut(&mut self, name: &str) -> Option<&mut KubeadmNode> {
        self.nodes.iter_mut().find(|n| n.name == name)
    }

    /// Versions the repository of `minor` offers (oldest first), if it exists.
    pub fn offered(&self, minor: &str) -> Option<&[Ver]> {
        self.packages.get(minor).map(Vec::as_slice)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeadmNodeFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeadmClusterFile {
    pub version: String,
    #[serde(default)]
    pub control_plane: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub node: OrderedMap<KubeadmNodeFile>,
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub workload: OrderedMap<WorkloadFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<Vec<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub helm_release: OrderedMap<crate::stage::HelmReleaseFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readyz_failing: Option<Vec<String>>,
}

/// A node name that is also a usable host name: a DNS label.
pub fn valid_node_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn version_attr(ctx: &str, v: &str) -> Result<Ver, String> {
    if v.starts_with('v') {
        return Err(format!(
            "{ctx}version {v:?} must be plain MAJOR.MINOR.PATCH without \"v\" (e.g. \"1.29.8\")"
        ));
    }
    parse_version(v)
        .ok_or_else(|| format!("{ctx}version {v:?} is not MAJOR.MINOR.PATCH (e.g. \"1.29.8\")"))
}

pub fn cluster_from_file(
    name: &str,
    f: KubeadmClusterFile,
    now: f64,
) -> Result<KubeadmCluster, String> {
    let version = version_attr("", &f.version)?;
    if f.control_plane.is_empty() {
        return Err(
            "control_plane must list at least one node name (e.g. control_plane = [\"cp1\"])"
                .into(),
        );
    }
    let mut nodes: Vec<KubeadmNode> = Vec::new();
    for (list, cp) in [(&f.control_plane, true), (&f.workers, false)] {
        for n in list {
            let role = if cp { "control_plane" } else { "workers" };
            if !valid_node_name(n) {
                return Err(format!(
                    "{role}: node name {n:?} must be a DNS label (lowercase letters, digits, -)"
                ));
            }
            if nodes.iter().any(|x| &x.name == n) {
                return Err(format!("{role}: node {n:?} is listed twice"));
            }
            nodes.push(KubeadmNode {
                name: n.clone(),
                control_plane: cp,
                version,
                static_version: cp.then_some(version),
                labels: BTreeMap::new(),
            });
        }
    }
    for (n, nf) in f.node.0 {
        let ctx = format!("node \"{n}\": ");
        let Some(node) = nodes.iter_mut().find(|x| x.name == n) else {
            return Err(format!(
                "{ctx}not listed in control_plane or workers (node blocks only override listed nodes)"
            ));
        };
        if let Some(v) = nf.version {
            node.version = version_attr(&ctx, &v)?;
        }
        if let Some(v) = nf.control_plane_version {
            if !node.control_plane {
                return Err(format!(
                    "{ctx}control_plane_version is only for control-plane nodes"
                ));
            }
            node.static_version = Some(version_attr(&format!("{ctx}control_plane_"), &v)?);
        }
        node.labels = nf.labels.unwrap_or_default();
    }
    let mut packages: BTreeMap<String, Vec<Ver>> = BTreeMap::new();
    match f.packages {
        Some(p) => {
            for (minor, list) in p {
                let Some(m) = parse_minor(&minor) else {
                    return Err(format!(
                        "packages: key {minor:?} must be a minor like \"1.30\""
                    ));
                };
                let mut vs = Vec::new();
                for v in list {
                    let pv = version_attr(&format!("packages {minor:?}: "), &v)?;
                    if (pv.0, pv.1) != m {
                        return Err(format!(
                            "packages {minor:?}: version {v:?} does not belong to that minor"
                        ));
                    }
                    vs.push(pv);
                }
                vs.sort();
                vs.dedup();
                packages.insert(format!("{}.{}", m.0, m.1), vs);
            }
        }
        None => {
            packages.insert(minor_of(version), vec![version]);
        }
    }
    let mut workloads: Vec<Workload> = Vec::new();
    for (wname, wf) in f.workload.0 {
        let ctx = format!("workload \"{wname}\"");
        let w = world::workload_from_file(&wname, wf, &|_| false)
            .map_err(|e| format!("{ctx}: {e} (kubeadm clusters have no node groups)"))?;
        if workloads
            .iter()
            .any(|x| x.name == w.name && x.namespace == w.namespace)
        {
            return Err(format!("{ctx}: duplicate workload name in the namespace"));
        }
        workloads.push(w);
    }
    let staging = crate::stage::from_file(f.objects, f.helm_release, f.readyz_failing, false, now)?;
    Ok(KubeadmCluster {
        name: name.to_string(),
        version,
        nodes,
        packages,
        workloads,
        staging,
        endpoint: None,
    })
}

pub fn cluster_to_file(k: &KubeadmCluster) -> KubeadmClusterFile {
    let (objects, helm_release, readyz_failing) = crate::stage::to_file(&k.staging);
    let names = |cp: bool| {
        k.nodes
            .iter()
            .filter(|n| n.control_plane == cp)
            .map(|n| n.name.clone())
            .collect::<Vec<_>>()
    };
    KubeadmClusterFile {
        version: fmt_version(k.version),
        control_plane: names(true),
        workers: names(false),
        packages: Some(
            k.packages
                .iter()
                .map(|(m, vs)| (m.clone(), vs.iter().map(|v| fmt_version(*v)).collect()))
                .collect(),
        ),
        node: OrderedMap(
            k.nodes
                .iter()
                .map(|n| {
                    (
                        n.name.clone(),
                        KubeadmNodeFile {
                            version: Some(fmt_version(n.version)),
                            control_plane_version: n.static_version.map(fmt_version),
                            labels: (!n.labels.is_empty()).then(|| n.labels.clone()),
                        },
                    )
                })
                .collect(),
        ),
        objects,
        helm_release,
        readyz_failing,
        workload: OrderedMap(
            k.workloads
                .iter()
                .map(|w| (w.name.clone(), world::workload_to_file(w)))
                .collect(),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Versions of the add-ons kubeadm deploys
// ---------------------------------------------------------------------------------------------

/// The etcd image tag kubeadm deploys for a Kubernetes minor.
pub fn etcd_version(v: Ver) -> &'static str {
    match v.1 {
        0..=28 => "3.5.9-0",
        29 => "3.5.12-0",
        30 => "3.5.15-0",
        31 => "3.5.15-0",
        32 => "3.5.16-0",
        _ => "3.5.21-0",
    }
}

/// The CoreDNS image tag kubeadm deploys for a Kubernetes minor.
pub fn coredns_version(v: Ver) -> &'static str {
    match v.1 {
        0..=30 => "v1.11.1",
        31 | 32 => "v1.11.3",
        _ => "v1.12.0",
    }
}

// ---------------------------------------------------------------------------------------------
// Admin endpoints: /_sim/kubeadm/CLUSTER/…
// ---------------------------------------------------------------------------------------------

/// One call to a kubeadm admin endpoint (`kubeadm` array of the cluster's audit).
#[derive(Debug, Clone, Serialize)]
pub struct KubeadmAudit {
    /// RFC 3339 wall-clock time.
    pub at: String,
    pub node: Option<String>,
    /// `packages`, `upgrade-plan`, `upgrade-apply`, `upgrade-node`, `kubelet-restart`.
    pub op: String,
    /// The version the call was about (the minor for `packages`, the kubeadm binary's for
    /// `upgrade-plan` / `upgrade-node`, the requested one for `upgrade-apply` /
    /// `kubelet-restart`).
    pub version: Option<String>,
    pub ok: bool,
    /// First line of the response (the error for failures).
    pub message: String,
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    let mut body = body.into();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    crate::eks::parse_query(query)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

fn flag(query: Option<&str>, key: &str) -> bool {
    query_param(query, key).is_some_and(|v| matches!(v.as_str(), "1" | "true" | "yes" | ""))
}

/// An endpoint's outcome: status and text body.
type Out = (StatusCode, String);

fn refuse(msg: impl Into<String>) -> Out {
    (StatusCode::CONFLICT, msg.into())
}

/// Handle `/_sim/kubeadm/…`. `path` has no trailing slash.
pub(crate) fn admin(app: &Arc<App>, method: &Method, path: &str, query: Option<&str>) -> Response {
    let rest = path.strip_prefix("/_sim/kubeadm/").unwrap_or("");
    let segs: Vec<&str> = rest.split('/').collect();
    let now = now_secs();
    let mut inner = app.lock();
    let mut changed = inner.advance(now);
    let cluster = segs.first().copied().unwrap_or("");
    if !inner.world.kubeadm.contains_key(cluster) {
        drop(inner);
        return text(
            StatusCode::NOT_FOUND,
            format!("no kubeadm cluster {cluster:?} in the simulated world"),
        );
    }
    let (op, node, version, (status, body), mutated) = match (method.clone(), &segs[1..]) {
        (Method::GET, ["kubeconfig"]) => {
            let url = inner.world.kubeadm[cluster]
                .endpoint
                .clone()
                .unwrap_or_default();
            drop(inner);
            return text(StatusCode::OK, crate::kubeconfig_text(cluster, &url));
        }
        (Method::GET, ["packages", minor]) => {
            let k = &inner.world.kubeadm[cluster];
            let out = match parse_minor(minor).and_then(|m| k.offered(&format!("{}.{}", m.0, m.1)))
            {
                Some(vs) => (
                    StatusCode::OK,
                    vs.iter().map(|v| fmt_version(*v) + "\n").collect(),
                ),
                None => (
                    StatusCode::NOT_FOUND,
                    format!("404 Not Found: no package repository for minor {minor:?} (https://pkgs.k8s.io/core:/stable:/v{minor}/)"),
                ),
            };
            ("packages", None, Some(minor.to_string()), out, false)
        }
        (Method::GET, ["hosts", node, "role"]) => {
            let out = match inner.world.kubeadm[cluster].node(node) {
                Some(n) if n.control_plane => (StatusCode::OK, "control-plane".to_string()),
                Some(_) => (StatusCode::OK, "worker".to_string()),
                None => (
                    StatusCode::NOT_FOUND,
                    format!("no node {node:?} in kubeadm cluster {cluster:?}"),
                ),
            };
            drop(inner);
            return text(out.0, out.1);
        }
        (m, ["hosts", node, op]) => {
            let node = node.to_string();
            let op = op.to_string();
            if inner.world.kubeadm[cluster].node(&node).is_none() {
                drop(inner);
                return text(
                    StatusCode::NOT_FOUND,
                    format!("no node {node:?} in kubeadm cluster {cluster:?}"),
                );
            }
            let want = if op == "upgrade-plan" {
                Method::GET
            } else {
                Method::POST
            };
            if m != want
                || !matches!(
                    op.as_str(),
                    "upgrade-plan" | "upgrade-apply" | "upgrade-node" | "kubelet-restart"
                )
            {
                drop(inner);
                return text(StatusCode::NOT_FOUND, route_help(method, path));
            }
            let (version, out, mutated) = host_op(&mut inner, cluster, &node, &op, query, now);
            (
                match op.as_str() {
                    "upgrade-plan" => "upgrade-plan",
                    "upgrade-apply" => "upgrade-apply",
                    "upgrade-node" => "upgrade-node",
                    _ => "kubelet-restart",
                },
                Some(node),
                version,
                out,
                mutated,
            )
        }
        _ => {
            drop(inner);
            return text(StatusCode::NOT_FOUND, route_help(method, path));
        }
    };
    let message = if status.is_success() {
        body.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .to_string()
    } else {
        body.lines().next().unwrap_or("").to_string()
    };
    if let Some(kc) = inner.kube.cluster_mut(cluster) {
        kc.audit.kubeadm.push(KubeadmAudit {
            at: crate::eks::now_rfc3339(now),
            node,
            op: op.to_string(),
            version,
            ok: status.is_success(),
            message,
        });
    }
    changed |= mutated;
    if changed {
        app.save_logged(&inner, now);
    }
    drop(inner);
    text(status, body)
}

fn route_help(method: &Method, path: &str) -> String {
    format!(
        "no admin route {method} {path}; kubeadm routes: GET /_sim/kubeadm/CLUSTER/packages/MINOR, \
GET /_sim/kubeadm/CLUSTER/kubeconfig, GET /_sim/kubeadm/CLUSTER/hosts/NODE/role, \
GET /_sim/kubeadm/CLUSTER/hosts/NODE/upgrade-plan?kubeadm=V, \
POST /_sim/kubeadm/CLUSTER/hosts/NODE/upgrade-apply?version=V&kubeadm=V[&force=1], \
POST /_sim/kubeadm/CLUSTER/hosts/NODE/upgrade-node?kubeadm=V, \
POST /_sim/kubeadm/CLUSTER/hosts/NODE/kubelet-restart?version=V"
    )
}

/// Parse a version query parameter; `Err` is a 400 answer.
fn version_param(query: Option<&str>, key: &str) -> Result<Ver, Out> {
    match query_param(query, key) {
        None => Err((
            StatusCode::BAD_REQUEST,
            format!("missing query parameter {key}=MAJOR.MINOR.PATCH"),
        )),
        Some(v) => parse_version(&v).ok_or_else(|| {
            (
                StatusCode::BAD_REQUEST,
                format!("{key}: version {v:?} is not MAJOR.MINOR.PATCH (e.g. 1.30.9)"),
            )
        }),
    }
}

/// The per-host operations. Returns (audit version, answer, world changed).
fn host_op(
    inner: &mut Inner,
    cluster: &str,
    node: &str,
    op: &str,
    query: Option<&str>,
    now: f64,
) -> (Option<String>, Out, bool) {
    let key = match op {
        "upgrade-apply" | "kubelet-restart" => "version",
        _ => "kubeadm",
    };
    let v = match version_param(query, key) {
        Ok(v) => v,
        Err(out) => return (query_param(query, key), out, false),
    };
    let shown = Some(fmt_version(v));
    let Inner {
        world,
        kube,
        faults,
        ..
    } = inner;
    let k = world.kubeadm.get_mut(cluster).expect("checked");
    let Some(kc) = kube.cluster_mut(cluster) else {
        return (
            shown,
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the cluster has no Kubernetes API".into(),
            ),
            false,
        );
    };
    match op {
        "upgrade-plan" => (shown, plan(k, node, v), false),
        "upgrade-apply" => {
            let kubeadm = match version_param(query, "kubeadm") {
                Ok(x) => x,
                Err(out) => return (shown, out, false),
            };
            let force = flag(query, "force");
            let out = apply(k, node, v, kubeadm, force);
            let out = match out {
                Err(e) => e,
                Ok(text) => {
                    if let Some(m) = take_fault(&mut faults.kubeadmfails, cluster, node) {
                        let m = m.unwrap_or_else(|| {
                            "[upgrade/apply] FATAL: couldn't upgrade control plane. kubeadm has tried to recover everything into the earlier state. Errors faced: timed out waiting for the condition".into()
                        });
                        return (shown, (StatusCode::INTERNAL_SERVER_ERROR, m), false);
                    }
                    k.version = v;
                    if let Some(n) = k.node_mut(node) {
                        n.static_version = Some(v);
                    }
                    crate::kube::kubeadm_applied(kc, k, node, now);
                    for n in &k.nodes {
                        if let Some(sv) = n.static_version.filter(|sv| minor_diff(v, *sv) > 1) {
                            kc.audit.kubeadm_skew_violations.push(format!(
                                "upgrade-apply {} on {node}: kube-apiserver on {} is still {} (more than one minor apart)",
                                self::v(v),
                                n.name,
                                self::v(sv)
                            ));
                        }
                        if minor_diff(v, n.version) > 3 {
                            kc.audit.kubeadm_skew_violations.push(format!(
                                "upgrade-apply {} on {node}: kubelet on {} is {} (more than 3 minors behind)",
                                self::v(v),
                                n.name,
                                self::v(n.version)
                            ));
                        }
                    }
                    return (shown, (StatusCode::OK, text), true);
                }
            };
            (shown, out, false)
        }
        "upgrade-node" => {
            let out = match upgrade_node(k, node, v) {
                Err(e) => e,
                Ok(text) => {
                    let cp = k.node(node).is_some_and(|n| n.control_plane);
                    if let Some(m) = take_fault(&mut faults.kubeadmfails, cluster, node) {
                        let m = m.unwrap_or_else(|| {
                            if cp {
                                "[upgrade/node] FATAL: couldn't complete the static pod upgrade. kubeadm has tried to recover everything into the earlier state. Errors faced: timed out waiting for the condition".into()
                            } else {
                                "[upgrade/node] FATAL: failed to download the kubelet configuration: timed out waiting for the condition".into()
                            }
                        });
                        return (shown, (StatusCode::INTERNAL_SERVER_ERROR, m), false);
                    }
                    let target = k.version;
                    let changed = if cp {
                        let n = k.node_mut(node).expect("checked");
                        let changed = n.static_version != Some(target);
                        n.static_version = Some(target);
                        crate::kube::kubeadm_static_pods(kc, k, node, now);
                        changed
                    } else {
                        false
                    };
                    return (shown, (StatusCode::OK, text), changed);
                }
            };
            (shown, out, false)
        }
        _ => {
            if v > k.version {
                return (
                    shown,
                    refuse(format!(
                        "kubelet must not be newer than kube-apiserver: kubelet v{} on node {node} would be newer than the control plane v{} (Kubernetes version skew policy); the kubelet failed to start",
                        fmt_version(v),
                        fmt_version(k.version)
                    )),
                    false,
                );
            }
            let worker = !k.node(node).expect("checked").control_plane;
            if worker {
                for cp in k.nodes.iter().filter(|n| n.control_plane) {
                    if let Some(sv) = cp.static_version.filter(|sv| *sv < v) {
                        kc.audit.kubeadm_skew_violations.push(format!(
                            "kubelet-restart {} on worker {node}: kube-apiserver on {} is still {} (kubelet newer than kube-apiserver)",
                            self::v(v),
                            cp.name,
                            self::v(sv)
                        ));
                    }
                }
            }
            let n = k.node_mut(node).expect("checked");
            let changed = n.version != v;
            n.version = v;
            crate::kube::kubeadm_kubelet_restart(kc, node, v, now);
            (
                shown,
                (
                    StatusCode::OK,
                    format!(
                        "kubelet.service restarted on {node} (kubelet v{})",
                        fmt_version(v)
                    ),
                ),
                changed,
            )
        }
    }
}

/// Consume the first `kubeadmfail=` fault for (cluster, node): `Some(message)` when armed.
fn take_fault(
    fails: &mut Vec<crate::faults::KubeadmFail>,
    cluster: &str,
    node: &str,
) -> Option<Option<String>> {
    let i = fails
        .iter()
        .position(|f| f.cluster == cluster && f.node == node)?;
    Some(fails.remove(i).message)
}

const NOT_CP: &str = "[upgrade/config] FATAL: couldn't create a Kubernetes client from file \"/etc/kubernetes/admin.conf\": failed to load admin kubeconfig: open /etc/kubernetes/admin.conf: no such file or directory";

/// kubeadm's config loading: a kubeadm more than one minor newer than the cluster refuses.
fn config_check(k: &KubeadmCluster, kubeadm: Ver) -> Result<(), Out> {
    if minor_diff(kubeadm, k.version) > 1 {
        return Err(refuse(format!(
            "[upgrade/config] FATAL: this version of kubeadm only supports deploying clusters with the control plane version >= {}.{}.0. Current version: v{}",
            kubeadm.0,
            kubeadm.1.saturating_sub(1),
            fmt_version(k.version)
        )));
    }
    Ok(())
}

/// Lay out rows as kubeadm's tabwriter does (columns separated by three spaces).
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut w = vec![0; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                let _ = write!(line, "{c:<width$}   ", width = w[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn v(x: Ver) -> String {
    format!("v{}", fmt_version(x))
}

/// `kubeadm upgrade plan` run with a kubeadm binary of version `kubeadm` on `node`.
fn plan(k: &KubeadmCluster, node: &str, kubeadm: Ver) -> Out {
    if !k.node(node).is_some_and(|n| n.control_plane) {
        return refuse(NOT_CP);
    }
    if let Err(e) = config_check(k, kubeadm) {
        return e;
    }
    let cur = k.version;
    let target = k
        .offered(&minor_of(kubeadm))
        .and_then(|vs| vs.last().copied())
        .unwrap_or(kubeadm);
    let mut s = String::new();
    s.push_str("[preflight] Running pre-flight checks.\n");
    s.push_str("[upgrade/config] Reading configuration from the cluster...\n");
    s.push_str("[upgrade/config] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'\n");
    s.push_str("[upgrade] Running cluster health checks\n");
    s.push_str("[upgrade] Fetching available versions to upgrade to\n");
    let _ = writeln!(s, "[upgrade/versions] Cluster version: {}", v(cur));
    let _ = writeln!(s, "[upgrade/versions] kubeadm version: {}", v(kubeadm));
    let same_minor_latest = k
        .offered(&minor_of(cur))
        .and_then(|vs| vs.last().copied())
        .filter(|l| *l > cur);
    if target <= cur {
        if let Some(l) = same_minor_latest {
            let _ = writeln!(
                s,
                "[upgrade/versions] Latest version in the v{} series: {}",
                minor_of(cur),
                v(l)
            );
        }
        s.push_str("[upgrade/versions] Target version: ");
        s.push_str(&v(cur));
        s.push('\n');
        s.push_str("\nAwesome, you're up-to-date! Enjoy!\n");
        return (StatusCode::OK, s);
    }
    let _ = writeln!(s, "[upgrade/versions] Target version: {}", v(target));
    let _ = writeln!(
        s,
        "[upgrade/versions] Latest version in the v{} series: {}",
        minor_of(cur),
        v(same_minor_latest.unwrap_or(cur))
    );
    s.push_str("\nComponents that must be upgraded manually after you have upgraded the control plane with 'kubeadm upgrade apply':\n");
    let mut rows = vec![vec![
        "COMPONENT".to_string(),
        "NODE".into(),
        "CURRENT".into(),
        "TARGET".into(),
    ]];
    for n in &k.nodes {
        rows.push(vec![
            "kubelet".into(),
            n.name.clone(),
            v(n.version),
            v(target),
        ]);
    }
    s.push_str(&table(&rows));
    if target.1 == cur.1 && target.0 == cur.0 {
        let _ = writeln!(
            s,
            "\nUpgrade to the latest version in the v{} series:\n",
            minor_of(cur)
        );
    } else {
        s.push_str("\nUpgrade to the latest stable version:\n\n");
    }
    let mut rows = vec![vec![
        "COMPONENT".to_string(),
        "NODE".into(),
        "CURRENT".into(),
        "TARGET".into(),
    ]];
    let cps: Vec<&KubeadmNode> = k.nodes.iter().filter(|n| n.control_plane).collect();
    for comp in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        for n in &cps {
            rows.push(vec![
                comp.into(),
                n.name.clone(),
                v(n.static_version.unwrap_or(cur)),
                v(target),
            ]);
        }
    }
    rows.push(vec!["kube-proxy".into(), String::new(), v(cur), v(target)]);
    rows.push(vec![
        "CoreDNS".into(),
        String::new(),
        coredns_version(cur).into(),
        coredns_version(target).into(),
    ]);
    for n in &cps {
        rows.push(vec![
            "etcd".into(),
            n.name.clone(),
            etcd_version(n.static_version.unwrap_or(cur)).into(),
            etcd_version(target).into(),
        ]);
    }
    s.push_str(&table(&rows));
    s.push_str("\nYou can now apply the upgrade by executing the following command:\n\n");
    let _ = writeln!(s, "\tkubeadm upgrade apply {}", v(target));
    if target > kubeadm {
        let _ = writeln!(
            s,
            "\nNote: Before you can perform this upgrade, you have to update kubeadm to {}.",
            v(target)
        );
    }
    s.push_str("\n_____________________________________________________________________\n\n");
    s.push_str("The table below shows the current state of component configs as understood by this version of kubeadm.\n");
    s.push_str("Configs that have a \"yes\" mark in the \"MANUAL UPGRADE REQUIRED\" column require manual config upgrade or\n");
    s.push_str("resetting to kubeadm defaults before a successful upgrade can be performed. The version to manually\n");
    s.push_str("upgrade to is denoted in the \"PREFERRED VERSION\" column.\n\n");
    s.push_str(&table(&[
        vec![
            "API GROUP".into(),
            "CURRENT VERSION".into(),
            "PREFERRED VERSION".into(),
            "MANUAL UPGRADE REQUIRED".into(),
        ],
        vec![
            "kubeproxy.config.k8s.io".into(),
            "v1alpha1".into(),
            "v1alpha1".into(),
            "no".into(),
        ],
        vec![
            "kubelet.config.k8s.io".into(),
            "v1beta1".into(),
            "v1beta1".into(),
            "no".into(),
        ],
    ]));
    s.push_str("_____________________________________________________________________\n");
    (StatusCode::OK, s)
}

/// `kubeadm upgrade apply vVERSION` with a kubeadm binary of version `kubeadm` on `node`:
/// the success text, or the refusal.
fn apply(
    k: &KubeadmCluster,
    node: &str,
    target: Ver,
    kubeadm: Ver,
    force: bool,
) -> Result<String, Out> {
    if !k.node(node).is_some_and(|n| n.control_plane) {
        return Err(refuse(NOT_CP));
    }
    let cur = k.version;
    let (tv, kv, cv) = (v(target), v(kubeadm), v(cur));
    let mut mandatory: Vec<String> = Vec::new();
    let mut skippable: Vec<String> = Vec::new();
    if minor_diff(target, cur) > 1 {
        mandatory.push(format!(
            "Specified version to upgrade to \"{tv}\" is too high; kubeadm can upgrade only 1 minor version at a time"
        ));
    }
    if minor_diff(target, cur) < 0 {
        mandatory.push(format!(
            "Specified version to downgrade to \"{tv}\" is too low; kubeadm does not support downgrades of the control plane minor (cluster version \"{cv}\")"
        ));
    } else if target < cur {
        mandatory.push(format!(
            "Specified version to upgrade to \"{tv}\" is lower than the cluster version \"{cv}\". Downgrades are not supported"
        ));
    }
    if kubeadm < target {
        if minor_diff(target, kubeadm) > 0 {
            mandatory.push(format!(
                "Kubeadm version \"{kv}\" can only be used to upgrade to Kubernetes version \"v{}\"",
                minor_of(kubeadm)
            ));
        } else {
            skippable.push(format!(
                "Specified version to upgrade to \"{tv}\" is higher than the kubeadm version \"{kv}\". Upgrade kubeadm first using the tool you used to install kubeadm"
            ));
        }
    } else if minor_diff(kubeadm, target) > 0 {
        skippable.push(format!(
            "Kubeadm version \"{kv}\" can only be used to upgrade to Kubernetes version \"v{}\"",
            minor_of(kubeadm)
        ));
    } else if kubeadm > target {
        skippable.push(format!(
            "Specified version to upgrade to \"{tv}\" is lower than the kubeadm version \"{kv}\". Use the kubeadm of the target version"
        ));
    }
    let mut old: Vec<String> = k
        .nodes
        .iter()
        .filter(|n| minor_diff(target, n.version) > 3)
        .map(|n| v(n.version))
        .collect();
    old.sort();
    old.dedup();
    if !old.is_empty() {
        skippable.push(format!(
            "There are kubelets in this cluster that are too old that have these versions [{}]",
            old.join(" ")
        ));
    }
    if !mandatory.is_empty() {
        let mut all = mandatory;
        if !force {
            all.extend(skippable);
        }
        return Err(refuse(format!(
            "[upgrade/version] FATAL: the --version argument is invalid due to these fatal errors: - {}. Please fix the misalignments highlighted above and try upgrading again",
            all.join(" - ")
        )));
    }
    if !skippable.is_empty() && !force {
        return Err(refuse(format!(
            "[upgrade/version] FATAL: the --version argument is invalid due to these errors: - {}. Can be bypassed if you pass the --force flag",
            skippable.join(" - ")
        )));
    }
    let mut s = String::new();
    s.push_str("[preflight] Running pre-flight checks.\n");
    s.push_str("[upgrade/config] Reading configuration from the cluster...\n");
    s.push_str("[upgrade/config] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'\n");
    s.push_str("[upgrade] Running cluster health checks\n");
    let _ = writeln!(
        s,
        "[upgrade/version] You have chosen to change the cluster version to \"{tv}\""
    );
    let _ = writeln!(s, "[upgrade/versions] Cluster version: {cv}");
    let _ = writeln!(s, "[upgrade/versions] kubeadm version: {kv}");
    if !skippable.is_empty() {
        let _ = writeln!(
            s,
            "[upgrade/version] Found {} potential version compatibility errors but skipping since the --force flag is set: ",
            skippable.len()
        );
        for e in &skippable {
            let _ = writeln!(s, "\n\t- {e}");
        }
    }
    s.push_str("[upgrade/prepull] Pulling images required for setting up a Kubernetes cluster\n");
    s.push_str("[upgrade/prepull] This might take a minute or two, depending on the speed of your internet connection\n");
    s.push_str("[upgrade/prepull] You can also perform this action beforehand using 'kubeadm config images pull'\n");
    let _ = writeln!(
        s,
        "[upgrade/apply] Upgrading your Static Pod-hosted control plane to version \"{tv}\" (timeout: 5m0s)..."
    );
    static_pod_lines(&mut s, k.node(node).and_then(|n| n.static_version), target);
    s.push_str("[upload-config] Storing the configuration used in ConfigMap \"kubeadm-config\" in the \"kube-system\" Namespace\n");
    s.push_str("[kubelet] Creating a ConfigMap \"kubelet-config\" in namespace kube-system with the configuration for the kubelets in the cluster\n");
    kubelet_config_lines(&mut s);
    s.push_str(
        "[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to get nodes\n",
    );
    s.push_str("[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to post CSRs in order for nodes to get long term certificate credentials\n");
    s.push_str("[bootstrap-token] Configured RBAC rules to allow the csrapprover controller automatically approve CSRs from a Node Bootstrap Token\n");
    s.push_str("[bootstrap-token] Configured RBAC rules to allow certificate rotation for all node client certificates in the cluster\n");
    s.push_str("[addons] Applied essential addon: CoreDNS\n");
    s.push_str("[addons] Applied essential addon: kube-proxy\n");
    let _ = writeln!(
        s,
        "\n[upgrade/successful] SUCCESS! Your cluster was upgraded to \"{tv}\". Enjoy!\n"
    );
    s.push_str("[upgrade/kubelet] Now that your control plane is upgraded, please proceed with upgrading your kubelets if you haven't already done so.\n");
    Ok(s)
}

fn static_pod_lines(s: &mut String, from: Option<Ver>, to: Ver) {
    let stamp = format!(
        "{:010}",
        crate::kube::fnv(&format!("{from:?}{to:?}")) % 10_000_000_000
    );
    let _ = writeln!(
        s,
        "[upgrade/staticpods] Writing new Static Pod manifests to \"/etc/kubernetes/tmp/kubeadm-upgraded-manifests{stamp}\""
    );
    if from.is_some_and(|f| f.1 == to.1 && f.0 == to.0) {
        s.push_str(
            "[upgrade/etcd] Current and new manifests of etcd are equal, skipping upgrade\n",
        );
    } else {
        s.push_str("[upgrade/etcd] Upgrading to TLS for etcd\n");
        s.push_str("[upgrade/staticpods] Component \"etcd\" upgraded successfully!\n");
    }
    for c in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        if from == Some(to) {
            let _ = writeln!(
                s,
                "[upgrade/staticpods] Current and new manifests of {c} are equal, skipping upgrade"
            );
        } else {
            let _ = writeln!(
                s,
                "[upgrade/staticpods] Moved new manifest to \"/etc/kubernetes/manifests/{c}.yaml\" and backed up old manifest to \"/etc/kubernetes/tmp/kubeadm-backup-manifests-{stamp}/{c}.yaml\""
            );
            let _ = writeln!(
                s,
                "[upgrade/staticpods] Waiting for the kubelet to restart the component"
            );
            let _ = writeln!(
                s,
                "[upgrade/staticpods] Component \"{c}\" upgraded successfully!"
            );
        }
    }
}

fn kubelet_config_lines(s: &mut String) {
    s.push_str("[upgrade] Backing up kubelet config file to /etc/kubernetes/tmp/kubeadm-kubelet-config/config.yaml\n");
    s.push_str(
        "[kubelet-start] Writing kubelet configuration to file \"/var/lib/kubelet/config.yaml\"\n",
    );
}

/// `kubeadm upgrade node` with a kubeadm binary of version `kubeadm` on `node`.
fn upgrade_node(k: &KubeadmCluster, node: &str, kubeadm: Ver) -> Result<String, Out> {
    config_check(k, kubeadm)?;
    let n = k.node(node).expect("checked");
    let cur = k.version;
    let mut s = String::new();
    s.push_str("[upgrade] Reading configuration from the cluster...\n");
    s.push_str("[upgrade] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'\n");
    s.push_str("[preflight] Running pre-flight checks\n");
    if n.control_plane {
        if minor_diff(kubeadm, cur) != 0 {
            return Err(refuse(format!(
                "[upgrade/node] FATAL: the control plane version \"{}\" (kubeadm-config ClusterConfiguration kubernetesVersion) does not match the kubeadm version \"{}\": kubeadm upgrade node can only upgrade a control-plane instance to the cluster version of its own minor; run \"kubeadm upgrade apply\" on the first control-plane node first",
                v(cur),
                v(kubeadm)
            )));
        }
        s.push_str("[preflight] Pulling images required for setting up a Kubernetes cluster\n");
        s.push_str("[preflight] This might take a minute or two, depending on the speed of your internet connection\n");
        s.push_str("[preflight] You can also perform this action beforehand using 'kubeadm config images pull'\n");
        let _ = writeln!(
            s,
            "[upgrade] Upgrading your Static Pod-hosted control plane instance to version \"{}\"...",
            v(cur)
        );
        static_pod_lines(&mut s, n.static_version, cur);
        s.push_str(
            "[upgrade] The control plane instance for this node was successfully updated!\n",
        );
    } else {
        s.push_str("[preflight] Skipping prepull. Not a control plane node.\n");
        s.push_str("[upgrade] Skipping phase. Not a control plane node.\n");
    }
    kubelet_config_lines(&mut s);
    s.push_str("[upgrade] The configuration for this node was successfully updated!\n");
    s.push_str("[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager.\n");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(hcl_text: &str) -> Result<KubeadmCluster, String> {
        #[derive(Deserialize)]
        struct W {
            kubeadm_cluster: OrderedMap<KubeadmClusterFile>,
        }
        let w: W = hcl::from_str(hcl_text).map_err(|e| e.to_string())?;
        let (name, f) = w.kubeadm_cluster.0.into_iter().next().unwrap();
        cluster_from_file(&name, f, 0.0)
    }

    const LAB: &str = r#"
kubeadm_cluster "lab" {
  version       = "1.29.8"
  control_plane = ["cp1", "cp2"]
  workers       = ["w1", "w2"]
  node "w2" {
    version = "1.28.3"
    labels  = { pool = "gpu" }
  }
  packages = {
    "1.29" = ["1.29.12", "1.29.8"]
    "1.30" = ["1.30.5", "1.30.9"]
    "1.31" = ["1.31.2", "1.31.4"]
  }
}
"#;

    #[test]
    fn parses_and_validates() {
        let k = cluster(LAB).unwrap();
        assert_eq!(k.version, (1, 29, 8));
        assert_eq!(k.nodes.len(), 4);
        assert!(k.node("cp2").unwrap().control_plane);
        assert_eq!(k.node("w2").unwrap().version, (1, 28, 3));
        assert_eq!(k.node("w2").unwrap().labels["pool"], "gpu");
        assert_eq!(k.offered("1.29").unwrap(), &[(1, 29, 8), (1, 29, 12)]);
        for (bad, needle) in [
            (
                LAB.replace("\"1.29.8\"\n  control", "\"v1.29.8\"\n  control"),
                "without",
            ),
            (LAB.replace("[\"cp1\", \"cp2\"]", "[]"), "at least one"),
            (
                LAB.replace("[\"w1\", \"w2\"]", "[\"w1\", \"cp1\"]"),
                "twice",
            ),
            (LAB.replace("node \"w2\"", "node \"w9\""), "not listed"),
            (LAB.replace("\"1.30.5\"", "\"1.31.5\""), "does not belong"),
            (LAB.replace("\"1.31\" =", "\"131\" ="), "minor"),
            (LAB.replace("\"w1\",", "\"W_1\","), "DNS label"),
        ] {
            let e = cluster(&bad).unwrap_err();
            assert!(e.contains(needle), "{needle}: {e}");
        }
    }

    #[test]
    fn round_trips_through_the_file_form() {
        let mut k = cluster(LAB).unwrap();
        k.version = (1, 30, 9);
        k.node_mut("cp1").unwrap().static_version = Some((1, 30, 9));
        k.node_mut("cp1").unwrap().version = (1, 30, 9);
        let f = cluster_to_file(&k);
        let json = serde_json::to_string(&f).unwrap();
        let back = cluster_from_file("lab", serde_json::from_str(&json).unwrap(), 0.0).unwrap();
        assert_eq!(back.version, (1, 30, 9));
        assert_eq!(back.node("cp1").unwrap().static_version, Some((1, 30, 9)));
        assert_eq!(back.node("cp2").unwrap().static_version, Some((1, 29, 8)));
        assert_eq!(back.node("w2").unwrap().version, (1, 28, 3));
        assert_eq!(back.node("w2").unwrap().labels["pool"], "gpu");
        assert_eq!(back.packages, k.packages);
        assert!(!back.node("w1").unwrap().control_plane);
    }

    #[test]
    fn single_line_node_block() {
        let one = cluster(
            r#"
kubeadm_cluster "lab" {
  version       = "1.29.8"
  control_plane = ["cp1"]
  workers       = ["w3"]
  node "w3" { version = "1.29.8" }
}
"#,
        )
        .unwrap();
        assert_eq!(one.offered("1.29").unwrap(), &[(1, 29, 8)]);
        let two = cluster(
            r#"
kubeadm_cluster "lab" {
  version       = "1.29.8"
  control_plane = ["cp1"]
  workers       = ["w3"]
  node "w3" { version = "1.28.3", labels = { pool = "gpu" } }
}
"#,
        );
        // HCL allows a single attribute in a one-line block: two need separate lines.
        assert!(two.unwrap_err().contains("invalid block body"));
    }

    #[test]
    fn apply_rules() {
        let k = cluster(LAB).unwrap();
        let a = |t: Ver, kv: Ver, force: bool| apply(&k, "cp1", t, kv, force);
        assert!(a((1, 30, 9), (1, 30, 9), false).unwrap().contains(
            "[upgrade/successful] SUCCESS! Your cluster was upgraded to \"v1.30.9\". Enjoy!"
        ));
        let e = a((1, 31, 4), (1, 30, 9), false).unwrap_err();
        assert_eq!(e.0, StatusCode::CONFLICT);
        assert!(e.1.contains("Specified version to upgrade to \"v1.31.4\" is too high; kubeadm can upgrade only 1 minor version at a time"), "{}", e.1);
        let e = a((1, 30, 9), (1, 30, 5), false).unwrap_err();
        assert!(e.1.contains("Specified version to upgrade to \"v1.30.9\" is higher than the kubeadm version \"v1.30.5\""), "{}", e.1);
        assert!(a((1, 30, 9), (1, 30, 5), true).is_ok());
        let e = a((1, 29, 5), (1, 29, 5), true).unwrap_err();
        assert!(e.1.contains("Downgrades are not supported"), "{}", e.1);
        let e = a((1, 28, 5), (1, 28, 5), true).unwrap_err();
        assert!(e.1.contains("too low"), "{}", e.1);
        // Idempotent: the current version again.
        assert!(a((1, 29, 8), (1, 29, 8), false).is_ok());
        // Only on control-plane nodes.
        let e = apply(&k, "w1", (1, 30, 9), (1, 30, 9), false).unwrap_err();
        assert!(e.1.contains("admin.conf"), "{}", e.1);
        // Kubelets more than 3 minors behind.
        let mut k2 = k.clone();
        k2.version = (1, 31, 4);
        k2.node_mut("w2").unwrap().version = (1, 28, 3);
        let e = apply(&k2, "cp1", (1, 32, 0), (1, 32, 0), false).unwrap_err();
        assert!(
            e.1.contains("too old that have these versions [v1.28.3]"),
            "{}",
            e.1
        );
        assert!(apply(&k2, "cp1", (1, 32, 0), (1, 32, 0), true).is_ok());
    }

    #[test]
    fn plan_text() {
        let k = cluster(LAB).unwrap();
        let (st, s) = plan(&k, "cp1", (1, 30, 5));
        assert_eq!(st, StatusCode::OK);
        assert!(s.contains("kubeadm upgrade apply v1.30.9"), "{s}");
        assert!(s.contains("you have to update kubeadm to v1.30.9"), "{s}");
        assert!(
            s.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["kube-apiserver", "cp1", "v1.29.8", "v1.30.9"]),
            "{s}"
        );
        let (st, s) = plan(&k, "cp1", (1, 31, 4));
        assert_eq!(st, StatusCode::CONFLICT);
        assert!(s.contains(">= 1.30.0. Current version: v1.29.8"), "{s}");
        let (_, s) = plan(&k, "cp1", (1, 29, 8));
        assert!(s.contains("kubeadm upgrade apply v1.29.12"), "{s}");
        let mut k2 = k.clone();
        k2.version = (1, 29, 12);
        let (_, s) = plan(&k2, "cp1", (1, 29, 12));
        assert!(s.contains("Awesome, you're up-to-date! Enjoy!"), "{s}");
    }

    #[test]
    fn upgrade_node_rules() {
        let k = cluster(LAB).unwrap();
        let e = upgrade_node(&k, "cp2", (1, 30, 9)).unwrap_err();
        assert!(e.1.contains("kubeadm upgrade apply"), "{}", e.1);
        assert!(upgrade_node(&k, "w1", (1, 30, 9)).is_ok());
        assert!(upgrade_node(&k, "cp2", (1, 29, 12))
            .unwrap()
            .contains("control plane instance to version \"v1.29.8\""));
        let e = upgrade_node(&k, "w1", (1, 31, 4)).unwrap_err();
        assert!(e.1.contains("only supports deploying clusters"), "{}", e.1);
    }
}
