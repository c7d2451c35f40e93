//! The simulated Kubernetes API server of every cluster: an object store with resource
//! versions and watch history, a scheduler and controllers (ReplicaSet, Deployment,
//! StatefulSet, DaemonSet, disruption), nodes derived from the EKS node groups, and the
//! managed node-group rolling update (surge, cordon, drain through PDBs, terminate).
//!
//! Objects are kept as `serde_json::Value` in exactly the JSON shape the apiserver serves.

mod aks;
pub mod api;
mod ctrl;
mod gke;
mod k3s;
mod kubeadm;
mod nodes;
mod select;
mod stage;
mod suc;
mod table;
mod util;

/// FNV-1a: stable ids and etags from names, shared by every simulated API.
pub(crate) use util::fnv;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::faults::{FaultSpec, JobFail};
use crate::world::World;

pub use nodes::Proc;
pub use stage::check_staged;
pub(crate) use util::k8s_time;

/// The object kinds served.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Kind {
    Namespace,
    Node,
    Pod,
    Event,
    Pdb,
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    Job,
    ServiceAccount,
    /// `apiextensions.k8s.io/v1` CustomResourceDefinition (only SUC's Plan CRD is ever stored).
    Crd,
    /// `upgrade.cattle.io/v1` Plan (served only while its CRD is stored).
    Plan,
    /// core/v1 ConfigMap (kubeadm clusters store `kube-system/kubeadm-config`).
    ConfigMap,
    /// core/v1 Secret (Helm 3 stores its releases in them).
    Secret,
    /// networking.k8s.io/v1 Ingress.
    Ingress,
    /// batch/v1 CronJob (stored only; no Jobs are spawned).
    CronJob,
    /// autoscaling/v2 HorizontalPodAutoscaler (stored only; nothing is scaled).
    Hpa,
    /// flowcontrol.apiserver.k8s.io/v1 FlowSchema (cluster-scoped; stored only, no API
    /// priority and fairness is simulated).
    FlowSchema,
}

pub struct KindInfo {
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub namespaced: bool,
    pub short: &'static [&'static str],
    pub categories: &'static [&'static str],
}

pub const KINDS: [Kind; 19] = [
    Kind::Namespace,
    Kind::Node,
    Kind::Pod,
    Kind::Event,
    Kind::Pdb,
    Kind::Deployment,
    Kind::ReplicaSet,
    Kind::StatefulSet,
    Kind::DaemonSet,
    Kind::Job,
    Kind::ServiceAccount,
    Kind::Crd,
    Kind::Plan,
    Kind::ConfigMap,
    Kind::Secret,
    Kind::Ingress,
    Kind::CronJob,
    Kind::Hpa,
    Kind::FlowSchema,
];

impl Kind {
    pub fn info(self) -> &'static KindInfo {
        #[allow(clippy::too_many_arguments)]
        const fn k(
            kind: &'static str,
            plural: &'static str,
            singular: &'static str,
            group: &'static str,
            version: &'static str,
            namespaced: bool,
            short: &'static [&'static str],
            categories: &'static [&'static str],
        ) -> KindInfo {
            KindInfo {
                kind,
                plural,
                singular,
                group,
                version,
                namespaced,
                short,
                categories,
            }
        }
        static NS: KindInfo = k(
            "Namespace",
            "namespaces",
            "namespace",
            "",
            "v1",
            false,
            &["ns"],
            &[],
        );
        static NODE: KindInfo = k("Node", "nodes", "node", "", "v1", false, &["no"], &[]);
        static POD: KindInfo = k("Pod", "pods", "pod", "", "v1", true, &["po"], &["all"]);
        static EV: KindInfo = k("Event", "events", "event", "", "v1", true, &["ev"], &[]);
        static PDB: KindInfo = k(
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            "poddisruptionbudget",
            "policy",
            "v1",
            true,
            &["pdb"],
            &[],
        );
        static DEP: KindInfo = k(
            "Deployment",
            "deployments",
            "deployment",
            "apps",
            "v1",
            true,
            &["deploy"],
            &["all"],
        );
        static RS: KindInfo = k(
            "ReplicaSet",
            "replicasets",
            "replicaset",
            "apps",
            "v1",
            true,
            &["rs"],
            &["all"],
        );
        static STS: KindInfo = k(
            "StatefulSet",
            "statefulsets",
            "statefulset",
            "apps",
            "v1",
            true,
            &["sts"],
            &["all"],
        );
        static DS: KindInfo = k(
            "DaemonSet",
            "daemonsets",
            "daemonset",
            "apps",
            "v1",
            true,
            &["ds"],
            &["all"],
        );
        static JOB: KindInfo = k("Job", "jobs", "job", "batch", "v1", true, &[], &["all"]);
        static SA: KindInfo = k(
            "ServiceAccount",
            "serviceaccounts",
            "serviceaccount",
            "",
            "v1",
            true,
            &["sa"],
            &[],
        );
        static CRD: KindInfo = k(
            "CustomResourceDefinition",
            "customresourcedefinitions",
            "customresourcedefinition",
            "apiextensions.k8s.io",
            "v1",
            false,
            &["crd", "crds"],
            &["api-extensions"],
        );
        static PLAN: KindInfo = k(
            "Plan",
            "plans",
            "plan",
            "upgrade.cattle.io",
            "v1",
            true,
            &[],
            &[],
        );
        static CM: KindInfo = k(
            "ConfigMap",
            "configmaps",
            "configmap",
            "",
            "v1",
            true,
            &["cm"],
            &[],
        );
        static SECRET: KindInfo = k("Secret", "secrets", "secret", "", "v1", true, &[], &[]);
        static ING: KindInfo = k(
            "Ingress",
            "ingresses",
            "ingress",
            "networking.k8s.io",
            "v1",
            true,
            &["ing"],
            &[],
        );
        static CJ: KindInfo = k(
            "CronJob",
            "cronjobs",
            "cronjob",
            "batch",
            "v1",
            true,
            &["cj"],
            &["all"],
        );
        static HPA: KindInfo = k(
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            "horizontalpodautoscaler",
            "autoscaling",
            "v2",
            true,
            &["hpa"],
            &["all"],
        );
        static FS: KindInfo = k(
            "FlowSchema",
            "flowschemas",
            "flowschema",
            "flowcontrol.apiserver.k8s.io",
            "v1",
            false,
            &[],
            &[],
        );
        match self {
            Kind::FlowSchema => &FS,
            Kind::Secret => &SECRET,
            Kind::Ingress => &ING,
            Kind::CronJob => &CJ,
            Kind::Hpa => &HPA,
            Kind::ConfigMap => &CM,
            Kind::Job => &JOB,
            Kind::ServiceAccount => &SA,
            Kind::Crd => &CRD,
            Kind::Plan => &PLAN,
            Kind::Namespace => &NS,
            Kind::Node => &NODE,
            Kind::Pod => &POD,
            Kind::Event => &EV,
            Kind::Pdb => &PDB,
            Kind::Deployment => &DEP,
            Kind::ReplicaSet => &RS,
            Kind::StatefulSet => &STS,
            Kind::DaemonSet => &DS,
        }
    }

    pub fn api_version(self) -> &'static str {
        match self.info().group {
            "" => "v1",
            "policy" => "policy/v1",
            "batch" => "batch/v1",
            "apiextensions.k8s.io" => "apiextensions.k8s.io/v1",
            "upgrade.cattle.io" => "upgrade.cattle.io/v1",
            "networking.k8s.io" => "networking.k8s.io/v1",
            "autoscaling" => "autoscaling/v2",
            "flowcontrol.apiserver.k8s.io" => "flowcontrol.apiserver.k8s.io/v1",
            "apps" => "apps/v1",
            other => unreachable!("kind in group {other} without an apiVersion"),
        }
    }

    pub fn idx(self) -> usize {
        self as usize
    }
}

/// `(namespace or "", name)`.
pub type Key = (String, String);

/// One change, as watchers see it.
pub struct WEvent {
    pub rv: u64,
    pub kind: Kind,
    pub etype: &'static str,
    pub obj: Value,
    /// The object before a MODIFIED change (for selector transitions).
    pub prev: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TEv {
    PodStart,
    PodGone,
    NodeReady,
    /// The kubelet's next attempt for a pod that cannot run (crash loop or failed image pull).
    Backoff,
}

struct Timer {
    at: f64,
    seq: u64,
    ev: TEv,
    /// Pod key / node name / update id.
    a: String,
    b: String,
    /// uid the timer is for (ignored if the object changed identity).
    uid: String,
}

impl PartialEq for Timer {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Timer {
    fn cmp(&self, o: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap, we want the earliest first.
        o.at.total_cmp(&self.at).then(o.seq.cmp(&self.seq))
    }
}

/// Per-PDB audit record.
#[derive(Debug, Clone, Serialize)]
pub struct PdbAudit {
    /// Minimum healthy pods the budget allows (`desiredHealthy`).
    pub budget: i64,
    /// Lowest `currentHealthy` seen once the budget was first met (null before that).
    pub min_healthy_observed: Option<i64>,
    /// Healthy pods dropped below the budget after it was first met.
    pub violated: bool,
    #[serde(skip)]
    pub settled: bool,
}

/// A pod the scheduler could not place when it first tried.
#[derive(Debug, Clone, Serialize)]
pub struct UnschedulableAudit {
    /// Its first `FailedScheduling` message.
    pub message: String,
    /// When it was first refused (wall-clock seconds).
    #[serde(skip)]
    pub since: f64,
    /// Simulated seconds until it was placed; null while it still waits.
    pub waited_secs: Option<f64>,
}

/// The audit keeps the first this many unschedulable pods (a capacity shortfall on a big
/// cluster would otherwise grow it without bound).
pub const UNSCHEDULABLE_AUDIT_LIMIT: usize = 1000;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Audit {
    pub pdbs: BTreeMap<String, PdbAudit>,
    pub evictions: u64,
    pub evictions_refused: u64,
    /// Refused evictions by the budget that refused them (`namespace/name`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub evictions_refused_by_pdb: BTreeMap<String, u64>,
    /// Pods the scheduler could not place at some moment (`namespace/name`), at most [`UNSCHEDULABLE_AUDIT_LIMIT`] of them.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub unschedulable: BTreeMap<String, UnschedulableAudit>,
    pub lost_pods: Vec<String>,
    /// system-upgrade-controller Plans (K3s/RKE2 clusters only), by `namespace/name`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub plans: BTreeMap<String, suc::PlanAudit>,
    /// Every SUC Job created, oldest first (K3s/RKE2 clusters only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<suc::JobAudit>,
    /// Every write that changed a system-upgrade-controller Plan's spec (creations, spec
    /// changes, deletions), oldest first; the controller's status writes are not in it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub plan_writes: Vec<suc::PlanWrite>,
    /// Agent nodes whose upgrade (cordon/drain/upgrade) started while some server node's
    /// kubelet was still older than the agent's target version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agents_started_before_servers: Option<Vec<String>>,
    /// Calls to the kubeadm admin endpoints (kubeadm clusters only), oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kubeadm: Vec<crate::kubeadm::KubeadmAudit>,
    /// kubeadm clusters: version-skew violations the endpoints allowed (the official
    /// procedure permits them or `--force` skipped the check), e.g. a worker's kubelet newer
    /// than some control-plane node's kube-apiserver.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kubeadm_skew_violations: Vec<String>,
}

/// One simulated cluster's Kubernetes side.
pub struct KCluster {
    pub name: String,
    pub endpoint: String,
    pub speed: f64,
    store: Vec<BTreeMap<Key, Value>>,
    pub rv: u64,
    history: VecDeque<Arc<WEvent>>,
    /// Lowest resourceVersion a watch may resume from.
    pub oldest_rv: u64,
    pub tx: broadcast::Sender<Arc<WEvent>>,
    timers: BinaryHeap<Timer>,
    timer_seq: u64,
    pub rng: StdRng,
    ip_seq: u32,
    pub audit: Audit,
    pub procs: BTreeMap<String, Proc>,
    /// In-flight GKE node-pool upgrades (by operation name).
    gke_procs: BTreeMap<String, gke::GProc>,
    /// In-flight AKS agent-pool upgrades and deletions (by operation id).
    aks_procs: BTreeMap<String, aks::AProc>,
    /// Next VMSS instance index per AKS agent pool (node names `aks-POOL-NNNNNNNN-vmssXXXXXX`).
    aks_seq: HashMap<String, u64>,
    /// Node groups left as a failed update left them (no node-count reconciliation).
    pub hold: HashSet<String>,
    /// Node-group labels/taints last applied to its nodes.
    ng_applied: HashMap<String, (BTreeMap<String, String>, Vec<crate::world::Taint>)>,
    /// (involved uid, reason, message) → event key, for aggregation.
    event_index: HashMap<(String, String, String), Key>,
    event_order: VecDeque<Key>,
    dirty: bool,
    /// Wall time of the last controller pass (controllers run at most every 10 ms, like the
    /// asynchronous controllers of a real cluster).
    last_reconcile: f64,
    /// Wall seconds the last controller pass took.
    reconcile_cost: f64,
    /// When false, no Events are recorded (initial population).
    record_events: bool,
    /// K3s/RKE2 clusters: the system-upgrade-controller stand-in.
    suc: Option<suc::Suc>,
    /// kubeadm clusters: node → wall time its restarted kubelet reports Ready again.
    kubelet_restarts: BTreeMap<String, f64>,
    /// Workloads whose containers exit at once: `(namespace, kind, name)` of the world's
    /// `crash_loop = true` workloads.
    pub crash_loop: HashSet<(String, String, String)>,
}

const HISTORY: usize = 20_000;
const MAX_EVENTS: usize = 4_000;

impl KCluster {
    pub fn new(name: &str, speed: f64) -> Self {
        let (tx, _) = broadcast::channel(8192);
        KCluster {
            name: name.into(),
            endpoint: String::new(),
            speed,
            store: KINDS.iter().map(|_| BTreeMap::new()).collect(),
            rv: 1000,
            history: VecDeque::new(),
            oldest_rv: 1000,
            tx,
            timers: BinaryHeap::new(),
            timer_seq: 0,
            rng: StdRng::seed_from_u64(util::fnv(name)),
            ip_seq: 0,
            audit: Audit::default(),
            procs: BTreeMap::new(),
            gke_procs: BTreeMap::new(),
            aks_procs: BTreeMap::new(),
            aks_seq: HashMap::new(),
            hold: HashSet::new(),
            ng_applied: HashMap::new(),
            event_index: HashMap::new(),
            event_order: VecDeque::new(),
            dirty: true,
            last_reconcile: 0.0,
            reconcile_cost: 0.0,
            record_events: false,
            suc: None,
            kubelet_restarts: BTreeMap::new(),
            crash_loop: HashSet::new(),
        }
    }

    pub fn objs(&self, k: Kind) -> &BTreeMap<Key, Value> {
        &self.store[k.idx()]
    }

    pub fn get(&self, k: Kind, ns: &str, name: &str) -> Option<&Value> {
        self.store[k.idx()].get(&(ns.to_string(), name.to_string()))
    }

    /// History events newer than `rv` (None when `rv` is too old to resume from).
    pub fn history_since(&self, rv: u64) -> Option<Vec<Arc<WEvent>>> {
        if rv < self.oldest_rv {
            return None;
        }
        let start = self.history.partition_point(|e| e.rv <= rv);
        Some(self.history.iter().skip(start).cloned().collect())
    }

    fn emit(&mut self, kind: Kind, etype: &'static str, obj: Value, prev: Option<Value>) {
        let ev = Arc::new(WEvent {
            rv: self.rv,
            kind,
            etype,
            obj,
            prev,
        });
        self.history.push_back(ev.clone());
        while self.history.len() > HISTORY {
            if let Some(e) = self.history.pop_front() {
                self.oldest_rv = e.rv;
            }
        }
        let _ = self.tx.send(ev);
        self.dirty = true;
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// Store a new object: fills uid, resourceVersion, creationTimestamp (and generation).
    pub fn create(&mut self, k: Kind, mut obj: Value, now: f64) -> Value {
        let rv = self.next_rv();
        let info = k.info();
        let m = obj["metadata"].as_object_mut().expect("metadata");
        if m.get("uid")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        }
        m.insert("resourceVersion".into(), json!(rv.to_string()));
        m.entry("creationTimestamp")
            .or_insert_with(|| json!(k8s_time(now)));
        if !matches!(
            k,
            Kind::Pod
                | Kind::Node
                | Kind::Namespace
                | Kind::Event
                | Kind::ServiceAccount
                | Kind::ConfigMap
                | Kind::Secret
        ) {
            m.entry("generation").or_insert(json!(1));
        }
        if !info.namespaced {
            m.remove("namespace");
        }
        let o = obj.as_object_mut().expect("object");
        o.insert("apiVersion".into(), json!(k.api_version()));
        o.insert("kind".into(), json!(info.kind));
        let key = (
            util::namespace(&obj).to_string(),
            util::name(&obj).to_string(),
        );
        self.store[k.idx()].insert(key, obj.clone());
        if k == Kind::Plan {
            self.audit
                .plan_writes
                .push(suc::PlanWrite::of("create", &obj));
        }
        self.emit(k, "ADDED", obj.clone(), None);
        obj
    }

    /// Replace a stored object (bumps resourceVersion). No-op (returns false) if unchanged.
    pub fn put(&mut self, k: Kind, obj: Value) -> bool {
        let key = (
            util::namespace(&obj).to_string(),
            util::name(&obj).to_string(),
        );
        let Some(prev) = self.store[k.idx()].get(&key) else {
            return false;
        };
        let mut obj = obj;
        obj["metadata"]["resourceVersion"] = prev["metadata"]["resourceVersion"].clone();
        if *prev == obj {
            return false;
        }
        if k == Kind::Plan && prev["spec"] != obj["spec"] {
            self.audit
                .plan_writes
                .push(suc::PlanWrite::of("update", &obj));
        }
        let rv = self.next_rv();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let prev = self.store[k.idx()].insert(key, obj.clone());
        self.emit(k, "MODIFIED", obj, prev);
        true
    }

    /// Modify an object in place through `f`; returns the new object.
    pub fn update(
        &mut self,
        k: Kind,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Option<Value> {
        let mut o = self.get(k, ns, name)?.clone();
        f(&mut o);
        self.put(k, o.clone());
        self.get(k, ns, name).cloned()
    }

    pub fn remove(&mut self, k: Kind, ns: &str, name: &str) -> Option<Value> {
        let mut obj = self.store[k.idx()].remove(&(ns.to_string(), name.to_string()))?;
        if k == Kind::Plan {
            self.audit
                .plan_writes
                .push(suc::PlanWrite::of("delete", &obj));
        }
        let rv = self.next_rv();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.emit(k, "DELETED", obj.clone(), None);
        Some(obj)
    }

    fn timer(&mut self, at: f64, ev: TEv, a: &str, b: &str, uid: &str) {
        self.timer_seq += 1;
        self.timers.push(Timer {
            at,
            seq: self.timer_seq,
            ev,
            a: a.into(),
            b: b.into(),
            uid: uid.into(),
        });
    }

    /// Wall-clock seconds for `sim` simulated seconds.
    pub fn wall(&self, sim: f64) -> f64 {
        sim / self.speed
    }

    pub fn next_ip(&mut self) -> String {
        self.ip_seq += 1;
        let n = self.ip_seq;
        format!("10.0.{}.{}", 128 + (n / 250) % 120, n % 250 + 2)
    }

    /// Record a core/v1 Event about `obj` (aggregating repeats, as the event recorder does).
    pub fn event(
        &mut self,
        obj: &Value,
        etype: &str,
        reason: &str,
        message: &str,
        component: &str,
        now: f64,
    ) {
        if !self.record_events {
            return;
        }
        let kind = obj["kind"].as_str().unwrap_or("").to_string();
        let ns = match util::namespace(obj) {
            "" => "default".to_string(),
            s => s.to_string(),
        };
        let name = util::name(obj).to_string();
        // Node events use the node name as uid (kubelet convention, kubectl describe relies on it).
        let uid = if kind == "Node" {
            name.clone()
        } else {
            util::uid(obj).to_string()
        };
        let idx_key = (uid.clone(), reason.to_string(), message.to_string());
        if let Some(key) = self.event_index.get(&idx_key).cloned() {
            let t = k8s_time(now);
            if self
                .update(Kind::Event, &key.0, &key.1, |e| {
                    let c = e["count"].as_i64().unwrap_or(1);
                    e["count"] = json!(c + 1);
                    e["lastTimestamp"] = json!(t);
                })
                .is_some()
            {
                return;
            }
        }
        let ename = format!(
            "{name}.{:016x}",
            util::fnv(&format!("{uid}{reason}{message}{now}"))
        );
        let mut involved = json!({
            "kind": kind,
            "name": name,
            "uid": uid,
            "apiVersion": obj["apiVersion"],
            "resourceVersion": obj["metadata"]["resourceVersion"],
        });
        if !util::namespace(obj).is_empty() {
            involved["namespace"] = json!(util::namespace(obj));
        }
        let host = if kind == "Node" {
            Some(name.clone())
        } else {
            obj["spec"]["nodeName"].as_str().map(str::to_string)
        };
        let mut source = json!({ "component": component });
        if let Some(h) = host.filter(|_| component == "kubelet") {
            source["host"] = json!(h);
        }
        let ev = json!({
            "metadata": { "name": ename, "namespace": ns },
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "source": source,
            "firstTimestamp": k8s_time(now),
            "lastTimestamp": k8s_time(now),
            "count": 1,
            "type": etype,
            "eventTime": null,
            "reportingComponent": component,
            "reportingInstance": "",
        });
        self.create(Kind::Event, ev, now);
        let key = (ns, ename);
        self.event_index.insert(idx_key, key.clone());
        self.event_order.push_back(key);
        while self.event_order.len() > MAX_EVENTS {
            if let Some((ns, n)) = self.event_order.pop_front() {
                if let Some(e) = self.remove(Kind::Event, &ns, &n) {
                    let ik = (
                        e["involvedObject"]["uid"]
                            .as_str()
                            .unwrap_or("")
                            .to_string(),
                        e["reason"].as_str().unwrap_or("").to_string(),
                        e["message"].as_str().unwrap_or("").to_string(),
                    );
                    self.event_index.remove(&ik);
                }
            }
        }
    }
}

/// The Kubernetes side of every cluster.
pub struct Kube {
    pub clusters: BTreeMap<String, KCluster>,
}

impl Kube {
    /// Build every cluster's nodes and workloads from the world (settled: Ready, Running).
    pub fn init(world: &mut World, speed: f64, now: f64) -> Kube {
        let mut clusters = BTreeMap::new();
        // The crash-looping workloads must be known before the first pods start.
        let new = |name: &str, workloads: &[crate::world::Workload]| {
            let mut kc = KCluster::new(name, speed);
            kc.crash_loop = stage::crash_loop_set(workloads);
            kc
        };
        for c in world.clusters.values() {
            let mut kc = new(&c.name, &c.workloads);
            nodes::populate(&mut kc, c, now);
            stage::apply(&mut kc, &c.staging, now);
            clusters.insert(c.name.clone(), kc);
        }
        for g in world.gke.values() {
            let mut kc = new(&g.name, &g.workloads);
            gke::populate(&mut kc, g, now);
            stage::apply(&mut kc, &g.staging, now);
            clusters.insert(g.name.clone(), kc);
        }
        for a in world.aks.values() {
            let mut kc = new(&a.name, &a.workloads);
            aks::populate(&mut kc, a, now);
            stage::apply(&mut kc, &a.staging, now);
            clusters.insert(a.name.clone(), kc);
        }
        for k in world.k3s.values() {
            let mut kc = new(&k.name, &k.workloads);
            k3s::populate(&mut kc, k, now);
            stage::apply(&mut kc, &k.staging, now);
            clusters.insert(k.name.clone(), kc);
        }
        for k in world.kubeadm.values() {
            let mut kc = new(&k.name, &k.workloads);
            kubeadm::populate(&mut kc, k, now);
            stage::apply(&mut kc, &k.staging, now);
            clusters.insert(k.name.clone(), kc);
        }
        Kube { clusters }
    }

    /// Process due timers, node-group changes and controllers. Returns true when the EKS
    /// world changed (a rolling update finished).
    pub fn tick(
        &mut self,
        world: &mut World,
        faults: &FaultSpec,
        jobfails: &mut Vec<JobFail>,
        now: f64,
    ) -> bool {
        let mut world_changed = false;
        for (name, kc) in self.clusters.iter_mut() {
            if let Some(c) = world.clusters.get_mut(name) {
                world_changed |= nodes::tick(kc, c, faults, now);
            } else if let Some(g) = world.gke.get_mut(name) {
                world_changed |= gke::tick(kc, g, faults, now);
            } else if let Some(a) = world.aks.get_mut(name) {
                world_changed |= aks::tick(kc, a, faults, now);
            } else if let Some(k) = world.k3s.get_mut(name) {
                world_changed |= k3s::tick(kc, k, faults, jobfails, now);
            } else if let Some(k) = world.kubeadm.get_mut(name) {
                kubeadm::tick(kc, k, faults, now);
            }
        }
        world_changed
    }

    pub fn cluster_mut(&mut self, name: &str) -> Option<&mut KCluster> {
        self.clusters.get_mut(name)
    }
}

/// kubeadm: `kubeadm upgrade apply` succeeded on control-plane `node` (the cluster's version
/// and the node's static-pod version in `k` are already the new ones).
pub(crate) fn kubeadm_applied(
    kc: &mut KCluster,
    k: &crate::kubeadm::KubeadmCluster,
    node: &str,
    now: f64,
) {
    kubeadm::applied(kc, k, node, now);
}

/// kubeadm: the static pods of control-plane `node` now run its `static_version`.
pub(crate) fn kubeadm_static_pods(
    kc: &mut KCluster,
    k: &crate::kubeadm::KubeadmCluster,
    node: &str,
    now: f64,
) {
    kubeadm::static_pods(kc, k, node, now);
}

/// kubeadm: `systemctl restart kubelet` on `node` with kubelet `version` installed.
pub(crate) fn kubeadm_kubelet_restart(
    kc: &mut KCluster,
    node: &str,
    version: crate::kubeadm::Ver,
    now: f64,
) {
    kubeadm::kubelet_restart(kc, node, version, now);
}

/// JSON for `GET /_sim/kube/{cluster}/audit`.
pub fn audit_json(kc: &KCluster) -> Value {
    let mut v = serde_json::to_value(&kc.audit).unwrap_or(Value::Null);
    v["unavailable_workloads"] = json!(ctrl::unavailable_workloads(kc));
    v["pods"] = json!(kc.objs(Kind::Pod).len());
    v["nodes"] = json!(kc.objs(Kind::Node).len());
    v
}

#[cfg(test)]
mod kind_tests {
    use super::*;

    #[test]
    fn every_kind_has_its_group_and_version_as_api_version() {
        for k in KINDS {
            let i = k.info();
            let want = if i.group.is_empty() {
                i.version.to_string()
            } else {
                format!("{}/{}", i.group, i.version)
            };
            assert_eq!(k.api_version(), want, "{}", i.kind);
        }
    }
}
