//! The simulated world: clusters, node groups, add-ons and updates; the world-file format
//! (HCL or JSON) and the lazy, deterministic completion of in-flight operations.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::path::Path;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};

use crate::catalog::{self, parse_minor};

// ---------------------------------------------------------------------------------------------
// Runtime model
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Settings {
    pub strict_nodegroup_skew: bool,
    pub account_id: String,
    pub catalog_date: Date,
}

#[derive(Debug, Clone)]
pub struct World {
    pub settings: Settings,
    pub clusters: BTreeMap<String, Cluster>,
    /// GKE clusters (world-file `gke_cluster` blocks).
    pub gke: BTreeMap<String, crate::gke::GkeCluster>,
    /// AKS clusters (world-file `aks_cluster` blocks).
    pub aks: BTreeMap<String, crate::aks::AksCluster>,
    /// K3s / RKE2 clusters (world-file `k3s_cluster` blocks).
    pub k3s: BTreeMap<String, crate::k3s::K3sCluster>,
    /// kubeadm clusters (world-file `kubeadm_cluster` blocks).
    pub kubeadm: BTreeMap<String, crate::kubeadm::KubeadmCluster>,
}

impl World {
    /// The staging of the cluster of that name, whatever its type.
    pub fn staging(&self, name: &str) -> Option<&crate::stage::Staging> {
        if let Some(c) = self.clusters.get(name) {
            return Some(&c.staging);
        }
        if let Some(c) = self.gke.get(name) {
            return Some(&c.staging);
        }
        if let Some(c) = self.aks.get(name) {
            return Some(&c.staging);
        }
        if let Some(c) = self.k3s.get(name) {
            return Some(&c.staging);
        }
        self.kubeadm.get(name).map(|c| &c.staging)
    }

    pub fn staging_mut(&mut self, name: &str) -> Option<&mut crate::stage::Staging> {
        if let Some(c) = self.clusters.get_mut(name) {
            return Some(&mut c.staging);
        }
        if let Some(c) = self.gke.get_mut(name) {
            return Some(&mut c.staging);
        }
        if let Some(c) = self.aks.get_mut(name) {
            return Some(&mut c.staging);
        }
        if let Some(c) = self.k3s.get_mut(name) {
            return Some(&mut c.staging);
        }
        self.kubeadm.get_mut(name).map(|c| &mut c.staging)
    }
}

#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub region: String,
    pub version: u32,
    pub platform_version: String,
    pub created_at: f64,
    pub tags: BTreeMap<String, String>,
    pub node_groups: BTreeMap<String, NodeGroup>,
    pub addons: BTreeMap<String, Addon>,
    /// All updates ever started on this cluster and its node groups / add-ons, oldest first.
    pub updates: Vec<Update>,
    /// Workloads staged in the cluster's Kubernetes API (world-file `workload` blocks).
    pub workloads: Vec<Workload>,
    /// Objects, Helm releases and readiness failures staged in the Kubernetes API.
    pub staging: crate::stage::Staging,
    /// Upgrade insights staged for ListInsights / DescribeInsight (world-file `insight`).
    pub insights: Vec<crate::insights::Insight>,
    /// Kubernetes API URL of this run (not persisted; set by `Sim::start`).
    pub endpoint: Option<String>,
}

/// `minAvailable` / `maxUnavailable`: a number or a percentage string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i64),
    Str(String),
}

impl IntOrString {
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            IntOrString::Int(n) => serde_json::json!(n),
            IntOrString::Str(s) => serde_json::json!(s),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PdbFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

/// A workload staged in a cluster (see README "Kubernetes API").
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub name: String,
    pub namespace: String,
    /// Deployment | StatefulSet | DaemonSet | Pod
    pub kind: String,
    pub replicas: u32,
    pub cpu: String,
    pub memory: String,
    pub node_group: Option<String>,
    pub empty_dir: bool,
    pub termination_grace_period: i64,
    pub labels: BTreeMap<String, String>,
    pub pdb: Option<PdbFile>,
    pub image: String,
    /// Its containers exit at once: pods Running in CrashLoopBackOff, never Ready.
    pub crash_loop: bool,
}

pub const WORKLOAD_KINDS: &[&str] = &["Deployment", "StatefulSet", "DaemonSet", "Pod"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Taint {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub effect: String,
}

/// Lifecycle states of a node group that are not expressed as an `Update`.
#[derive(Debug, Clone, PartialEq)]
pub enum Lifecycle {
    Active,
    Creating { deadline: f64 },
    Deleting { deadline: f64 },
    CreateFailed,
    DeleteFailed,
}

#[derive(Debug, Clone)]
pub struct NodeGroup {
    pub name: String,
    pub version: u32,
    pub release_version: String,
    pub instance_types: Vec<String>,
    pub ami_type: String,
    pub capacity_type: String,
    pub min_size: u32,
    pub max_size: u32,
    pub desired_size: u32,
    pub max_unavailable: Option<u32>,
    pub max_unavailable_percentage: Option<u32>,
    pub update_strategy: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub tags: BTreeMap<String, String>,
    pub disk_size: u32,
    pub subnets: Vec<String>,
    pub node_role: String,
    pub created_at: f64,
    pub modified_at: f64,
    pub lifecycle: Lifecycle,
    /// Failure (ErrorCode, message) armed for the pending create/delete, or the failure the
    /// node group ended in (CREATE_FAILED / DELETE_FAILED).
    pub failure: Option<(String, String)>,
    /// clientRequestToken of the CreateNodegroup call that created it.
    pub create_token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Addon {
    pub name: String,
    pub version: String,
    pub created_at: f64,
    pub modified_at: f64,
    pub configuration_values: Option<String>,
    pub service_account_role_arn: Option<String>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateStatus {
    InProgress,
    Successful,
    Failed,
    Cancelled,
}

impl UpdateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateStatus::InProgress => "InProgress",
            UpdateStatus::Successful => "Successful",
            UpdateStatus::Failed => "Failed",
            UpdateStatus::Cancelled => "Cancelled",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "InProgress" => UpdateStatus::InProgress,
            "Successful" => UpdateStatus::Successful,
            "Failed" => UpdateStatus::Failed,
            "Cancelled" => UpdateStatus::Cancelled,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    pub error_code: String,
    pub error_message: String,
    #[serde(default)]
    pub resource_ids: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Update {
    pub id: String,
    /// The API operation that started it (used for clientRequestToken matching).
    pub operation: String,
    pub nodegroup: Option<String>,
    pub addon: Option<String>,
    pub kind: String,
    pub params: Vec<(String, String)>,
    pub created_at: f64,
    pub status: UpdateStatus,
    pub errors: Vec<ErrorDetail>,
    pub token: Option<String>,
    /// Wall-clock epoch seconds at which it completes (InProgress only).
    pub deadline: f64,
    /// Armed failure (ErrorCode, message) applied on completion.
    pub fail: Option<(String, String)>,
    /// `force` of UpdateNodegroupVersion (drain ignores PodEvictionFailure).
    pub force: bool,
}

impl Update {
    pub fn param(&self, t: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == t)
            .map(|(_, v)| v.as_str())
    }
}

impl Cluster {
    /// An in-progress cluster-level update, if any.
    pub fn cluster_update_in_progress(&self) -> Option<&Update> {
        self.updates.iter().find(|u| {
            u.status == UpdateStatus::InProgress && u.nodegroup.is_none() && u.addon.is_none()
        })
    }
    pub fn status(&self) -> &'static str {
        if self.cluster_update_in_progress().is_some() {
            "UPDATING"
        } else {
            "ACTIVE"
        }
    }
    pub fn nodegroup_update_in_progress(&self, ng: &str) -> Option<&Update> {
        self.updates
            .iter()
            .find(|u| u.status == UpdateStatus::InProgress && u.nodegroup.as_deref() == Some(ng))
    }
    pub fn addon_update_in_progress(&self, addon: &str) -> Option<&Update> {
        self.updates
            .iter()
            .find(|u| u.status == UpdateStatus::InProgress && u.addon.as_deref() == Some(addon))
    }
    pub fn nodegroup_status(&self, ng: &NodeGroup) -> &'static str {
        match ng.lifecycle {
            Lifecycle::Creating { .. } => "CREATING",
            Lifecycle::Deleting { .. } => "DELETING",
            Lifecycle::CreateFailed => "CREATE_FAILED",
            Lifecycle::DeleteFailed => "DELETE_FAILED",
            Lifecycle::Active => {
                if self.nodegroup_update_in_progress(&ng.name).is_some() {
                    "UPDATING"
                } else {
                    "ACTIVE"
                }
            }
        }
    }
    pub fn addon_status(&self, addon: &str) -> &'static str {
        if self.addon_update_in_progress(addon).is_some() {
            "UPDATING"
        } else {
            "ACTIVE"
        }
    }
}

impl NodeGroup {
    /// Nodes replaced per batch during a version update.
    pub fn batch_size(&self) -> u32 {
        let n = match (self.max_unavailable, self.max_unavailable_percentage) {
            (Some(n), _) => n,
            (None, Some(p)) => ((self.desired_size as u64 * p as u64) / 100) as u32,
            (None, None) => 1,
        };
        n.clamp(1, 100)
    }
    /// ceil(desiredSize / batch size), at least 1.
    pub fn batches(&self) -> u32 {
        self.desired_size.div_ceil(self.batch_size()).max(1)
    }
}

// ---------------------------------------------------------------------------------------------
// Completion of in-flight operations
// ---------------------------------------------------------------------------------------------

/// Decides whether the operation on (cluster, node group, add-on) must hang.
pub type HangFn<'a> = dyn Fn(&str, Option<&str>, Option<&str>) -> bool + 'a;

enum Event {
    Update(String, usize),
    NodeGroup(String, String),
}

impl World {
    /// Complete every operation whose deadline is `<= now`, in deadline order, skipping those
    /// `hung` says must hang. Returns true when anything changed.
    pub fn advance(&mut self, now: f64, hung: &HangFn<'_>) -> bool {
        let mut events: Vec<(f64, Event)> = Vec::new();
        for (cname, c) in &self.clusters {
            for (i, u) in c.updates.iter().enumerate() {
                if u.status == UpdateStatus::InProgress
                    && u.deadline <= now
                    && !hung(cname, u.nodegroup.as_deref(), u.addon.as_deref())
                {
                    events.push((u.deadline, Event::Update(cname.clone(), i)));
                }
            }
            for (nname, ng) in &c.node_groups {
                let d = match ng.lifecycle {
                    Lifecycle::Creating { deadline } | Lifecycle::Deleting { deadline } => deadline,
                    _ => continue,
                };
                if d <= now && !hung(cname, Some(nname), None) {
                    events.push((d, Event::NodeGroup(cname.clone(), nname.clone())));
                }
            }
        }
        if events.is_empty() {
            return false;
        }
        events.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (at, ev) in events {
            match ev {
                Event::Update(c, i) => {
                    let cluster = self.clusters.get_mut(&c).expect("cluster");
                    complete_update(cluster, i, at);
                }
                Event::NodeGroup(c, n) => {
                    let cluster = self.clusters.get_mut(&c).expect("cluster");
                    let ng = cluster.node_groups.get_mut(&n).expect("node group");
                    match (&ng.lifecycle, ng.failure.is_some()) {
                        (Lifecycle::Creating { .. }, false) => {
                            ng.lifecycle = Lifecycle::Active;
                            ng.modified_at = at;
                        }
                        (Lifecycle::Creating { .. }, true) => {
                            ng.lifecycle = Lifecycle::CreateFailed;
                            ng.modified_at = at;
                        }
                        (Lifecycle::Deleting { .. }, false) => {
                            cluster.node_groups.remove(&n);
                        }
                        (Lifecycle::Deleting { .. }, true) => {
                            ng.lifecycle = Lifecycle::DeleteFailed;
                            ng.modified_at = at;
                        }
                        _ => {}
                    }
                }
            }
        }
        true
    }
}

pub(crate) fn complete_update(cluster: &mut Cluster, i: usize, at: f64) {
    let u = cluster.updates[i].clone();
    if let Some((code, message)) = &u.fail {
        let resource = u
            .nodegroup
            .clone()
            .or_else(|| u.addon.clone())
            .unwrap_or_else(|| cluster.name.clone());
        let up = &mut cluster.updates[i];
        up.status = UpdateStatus::Failed;
        up.errors = vec![ErrorDetail {
            error_code: code.clone(),
            error_message: message.clone(),
            resource_ids: vec![resource],
        }];
        up.fail = None;
        return;
    }
    match (&u.nodegroup, &u.addon) {
        (None, None) => {
            if u.kind == "VersionUpdate" {
                if let Some(v) = u.param("Version").and_then(parse_minor) {
                    cluster.version = v;
                }
                if let Some(pv) = u.param("PlatformVersion") {
                    cluster.platform_version = pv.to_string();
                }
            }
        }
        (Some(n), _) => {
            if let Some(ng) = cluster.node_groups.get_mut(n) {
                apply_nodegroup_update(ng, &u);
                ng.modified_at = at;
            }
        }
        (None, Some(a)) => {
            if let Some(addon) = cluster.addons.get_mut(a) {
                if let Some(v) = u.param("AddonVersion") {
                    addon.version = v.to_string();
                }
                if let Some(v) = u.param("ConfigurationValues") {
                    addon.configuration_values = Some(v.to_string()).filter(|s| !s.is_empty());
                }
                if let Some(v) = u.param("ServiceAccountRoleArn") {
                    addon.service_account_role_arn = Some(v.to_string()).filter(|s| !s.is_empty());
                }
                addon.modified_at = at;
            }
        }
    }
    cluster.updates[i].status = UpdateStatus::Successful;
}

fn apply_nodegroup_update(ng: &mut NodeGroup, u: &Update) {
    for (k, v) in &u.params {
        match k.as_str() {
            "Version" => {
                if let Some(m) = parse_minor(v) {
                    ng.version = m;
                }
            }
            "ReleaseVersion" => ng.release_version = v.clone(),
            "MinSize" => ng.min_size = v.parse().unwrap_or(ng.min_size),
            "MaxSize" => ng.max_size = v.parse().unwrap_or(ng.max_size),
            "DesiredSize" => ng.desired_size = v.parse().unwrap_or(ng.desired_size),
            "MaxUnavailable" => {
                ng.max_unavailable = v.parse().ok();
                ng.max_unavailable_percentage = None;
            }
            "MaxUnavailablePercentage" => {
                ng.max_unavailable_percentage = v.parse().ok();
                ng.max_unavailable = None;
            }
            "UpdateStrategy" => ng.update_strategy = Some(v.clone()),
            "LabelsToAdd" => {
                if let Ok(m) = serde_json::from_str::<BTreeMap<String, String>>(v) {
                    ng.labels.extend(m);
                }
            }
            "LabelsToRemove" => {
                if let Ok(keys) = serde_json::from_str::<Vec<String>>(v) {
                    for k in keys {
                        ng.labels.remove(&k);
                    }
                }
            }
            "TaintsToAdd" => {
                if let Ok(ts) = serde_json::from_str::<Vec<Taint>>(v) {
                    for t in ts {
                        ng.taints
                            .retain(|x| !(x.key == t.key && x.effect == t.effect));
                        ng.taints.push(t);
                    }
                }
            }
            "TaintsToRemove" => {
                if let Ok(ts) = serde_json::from_str::<Vec<Taint>>(v) {
                    for t in ts {
                        ng.taints
                            .retain(|x| !(x.key == t.key && x.effect == t.effect));
                    }
                }
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// File format
// ---------------------------------------------------------------------------------------------

/// World-file format, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Hcl,
    Json,
}

impl Format {
    pub fn from_path(path: &Path) -> Result<Format, String> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("hcl") => Ok(Format::Hcl),
            Some("json") => Ok(Format::Json),
            _ => Err(format!(
                "world file {}: unknown extension (expected .hcl or .json)",
                path.display()
            )),
        }
    }
}

/// A map that keeps file order (labelled blocks / JSON object members).
#[derive(Debug, Clone, PartialEq)]
pub struct OrderedMap<T>(pub Vec<(String, T)>);

impl<T> Default for OrderedMap<T> {
    fn default() -> Self {
        OrderedMap(Vec::new())
    }
}

impl<T> OrderedMap<T> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T: Serialize> Serialize for OrderedMap<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OrderedMap<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OrderedMap<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "labelled blocks (a map keyed by name)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, T>()? {
                    if out.iter().any(|(x, _): &(String, T)| *x == k) {
                        return Err(serde::de::Error::custom(format!("duplicate name `{k}`")));
                    }
                    out.push((k, v));
                }
                Ok(OrderedMap(out))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorldFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<SettingsFile>,
    #[serde(default)]
    pub cluster: OrderedMap<ClusterFile>,
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub gke_cluster: OrderedMap<crate::gke::GkeClusterFile>,
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub aks_cluster: OrderedMap<crate::aks::AksClusterFile>,
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub k3s_cluster: OrderedMap<crate::k3s::K3sClusterFile>,
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub kubeadm_cluster: OrderedMap<crate::kubeadm::KubeadmClusterFile>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict_nodegroup_skew: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_date: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub node_group: OrderedMap<NodeGroupFile>,
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub addon: OrderedMap<AddonFile>,
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub workload: OrderedMap<WorkloadFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<Vec<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub helm_release: OrderedMap<crate::stage::HelmReleaseFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readyz_failing: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub insight: OrderedMap<crate::insights::InsightFile>,
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub update: OrderedMap<UpdateFile>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace_period: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdb: Option<PdbFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crash_loop: Option<bool>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeGroupFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ami_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable_percentage: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taints: Option<Vec<Taint>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnets: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_at: Option<String>,
    /// CREATING | DELETING | CREATE_FAILED | DELETE_FAILED (ACTIVE / UPDATING are derived).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Simulated seconds left for CREATING / DELETING.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_token: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddonFile {
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_values: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamFile {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateFile {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub operation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addon: Option<String>,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_token: Option<String>,
    #[serde(default)]
    pub params: Vec<ParamFile>,
    /// Simulated seconds left (InProgress only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_seconds: Option<f64>,
    /// Armed failure (InProgress only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ErrorDetail>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

pub fn fmt_time(t: f64) -> String {
    let nanos = (t * 1000.0).round() as i128 * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|d| d.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

pub fn parse_time(ctx: &str, s: &str) -> Result<f64, String> {
    let d = OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("{ctx}: `{s}` is not an RFC 3339 timestamp ({e})"))?;
    Ok(d.unix_timestamp_nanos() as f64 / 1e9)
}

pub fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && s.len() <= 100
}

pub const AMI_TYPES: &[&str] = &[
    "AL2_x86_64",
    "AL2_x86_64_GPU",
    "AL2_ARM_64",
    "CUSTOM",
    "BOTTLEROCKET_ARM_64",
    "BOTTLEROCKET_x86_64",
    "BOTTLEROCKET_ARM_64_FIPS",
    "BOTTLEROCKET_x86_64_FIPS",
    "BOTTLEROCKET_ARM_64_NVIDIA",
    "BOTTLEROCKET_x86_64_NVIDIA",
    "BOTTLEROCKET_ARM_64_NVIDIA_FIPS",
    "BOTTLEROCKET_x86_64_NVIDIA_FIPS",
    "WINDOWS_CORE_2019_x86_64",
    "WINDOWS_FULL_2019_x86_64",
    "WINDOWS_CORE_2022_x86_64",
    "WINDOWS_FULL_2022_x86_64",
    "WINDOWS_CORE_2025_x86_64",
    "WINDOWS_FULL_2025_x86_64",
    "AL2023_x86_64_STANDARD",
    "AL2023_ARM_64_STANDARD",
    "AL2023_x86_64_NEURON",
    "AL2023_x86_64_NVIDIA",
    "AL2023_ARM_64_NVIDIA",
];
pub const CAPACITY_TYPES: &[&str] = &["ON_DEMAND", "SPOT", "CAPACITY_BLOCK"];
pub const TAINT_EFFECTS: &[&str] = &["NO_SCHEDULE", "NO_EXECUTE", "PREFER_NO_SCHEDULE"];
pub const UPDATE_STRATEGIES: &[&str] = &["DEFAULT", "MINIMAL"];

pub fn default_ami_type(minor: u32) -> &'static str {
    if minor >= 30 {
        "AL2023_x86_64_STANDARD"
    } else {
        "AL2_x86_64"
    }
}

/// Validate scaling and update config; shared with the EKS API handlers.
pub fn check_scaling(min: u32, max: u32, desired: u32) -> Result<(), String> {
    if max < 1 {
        return Err(format!("maxSize must be at least 1 (got {max})"));
    }
    if min > max {
        return Err(format!(
            "minSize ({min}) must be less than or equal to maxSize ({max})"
        ));
    }
    if desired < min || desired > max {
        return Err(format!(
            "desiredSize ({desired}) must be between minSize ({min}) and maxSize ({max})"
        ));
    }
    Ok(())
}

pub fn check_update_config(mu: Option<u32>, mup: Option<u32>) -> Result<(), String> {
    if mu.is_some() && mup.is_some() {
        return Err(
            "updateConfig: specify either maxUnavailable or maxUnavailablePercentage, not both"
                .into(),
        );
    }
    if let Some(n) = mu {
        if !(1..=100).contains(&n) {
            return Err(format!(
                "updateConfig.maxUnavailable must be between 1 and 100 (got {n})"
            ));
        }
    }
    if let Some(n) = mup {
        if !(1..=100).contains(&n) {
            return Err(format!(
                "updateConfig.maxUnavailablePercentage must be between 1 and 100 (got {n})"
            ));
        }
    }
    Ok(())
}

/// Parse world-file text. Errors carry the file name (and line/col for syntax errors).
pub fn parse_text(path: &Path, text: &str, format: Format) -> Result<WorldFile, String> {
    let name = path.display();
    match format {
        Format::Hcl => {
            let body = hcl::parse(text).map_err(|e| match e {
                hcl::Error::Parse(pe) => {
                    let loc = pe.location();
                    format!(
                        "world file {name}:{}:{}: HCL syntax error: {}\n  {}\n",
                        loc.line(),
                        loc.column(),
                        pe.message(),
                        pe.line()
                    )
                }
                other => format!("world file {name}: {other}"),
            })?;
            hcl::from_body(body).map_err(|e| format!("world file {name}: {e}"))
        }
        Format::Json => serde_json::from_str(text).map_err(|e| format!("world file {name}: {e}")),
    }
}

/// Build the runtime world from a parsed file. `now` is wall-clock epoch seconds; `speed` turns
/// remaining simulated seconds into wall-clock deadlines.
pub fn from_file(path: &Path, f: WorldFile, now: f64, speed: f64) -> Result<World, String> {
    let name = path.display();
    let err = |ctx: &str, msg: String| format!("world file {name}: {ctx}: {msg}");
    let s = f.settings.unwrap_or_default();
    let account_id = s.account_id.unwrap_or_else(|| "123456789012".into());
    if account_id.len() != 12 || !account_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(
            "settings",
            format!("account_id `{account_id}` must be 12 digits"),
        ));
    }
    let catalog_date = match s.catalog_date {
        None => catalog::date(catalog::DEFAULT_CATALOG_DATE),
        Some(d) => Date::parse(
            &d,
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .map_err(|_| err("settings", format!("catalog_date `{d}` must be YYYY-MM-DD")))?,
    };
    let settings = Settings {
        strict_nodegroup_skew: s.strict_nodegroup_skew.unwrap_or(false),
        account_id,
        catalog_date,
    };
    let mut clusters = BTreeMap::new();
    for (cname, cf) in f.cluster.0 {
        let ctx = format!("cluster \"{cname}\"");
        if !valid_name(&cname) {
            return Err(err(&ctx, "invalid cluster name (letters, digits, - and _; must start with a letter or digit)".into()));
        }
        let version = parse_minor(&cf.version)
            .filter(|m| catalog::version(*m).is_some())
            .ok_or_else(|| {
                err(
                    &ctx,
                    format!(
                        "version `{}` is not a Kubernetes minor EKS offers (1.23 … 1.34, written like \"1.28\")",
                        cf.version
                    ),
                )
            })?;
        let kv = catalog::version(version).expect("checked");
        let platform_version = match cf.platform_version {
            Some(pv) if kv.has_platform_version(&pv) => pv,
            Some(pv) => {
                return Err(err(
                    &ctx,
                    format!(
                        "platform_version `{pv}` does not exist for 1.{version} (eks.1 … {})",
                        kv.latest_platform_version()
                    ),
                ))
            }
            None => kv.latest_platform_version(),
        };
        let created_at = match cf.created_at {
            Some(t) => parse_time(&ctx, &t).map_err(|e| err(&ctx, e))?,
            None => now,
        };
        let region = cf.region.unwrap_or_else(|| "us-east-1".into());
        if region.is_empty() {
            return Err(err(&ctx, "region must not be empty".into()));
        }
        let mut node_groups = BTreeMap::new();
        for (nname, nf) in cf.node_group.0 {
            let ctx = format!("cluster \"{cname}\" node_group \"{nname}\"");
            let ng = nodegroup_from_file(&nname, nf, version, created_at, now, speed)
                .map_err(|e| err(&ctx, e))?;
            node_groups.insert(nname, ng);
        }
        let mut addons = BTreeMap::new();
        for (aname, af) in cf.addon.0 {
            let ctx = format!("cluster \"{cname}\" addon \"{aname}\"");
            let cat = catalog::addon(&aname).ok_or_else(|| {
                err(
                    &ctx,
                    "unknown add-on (the catalog has coredns, kube-proxy, vpc-cni)".into(),
                )
            })?;
            if cat.find(&af.version).is_none() {
                let list: Vec<_> = cat.compatible(version).iter().map(|v| v.version).collect();
                return Err(err(
                    &ctx,
                    format!(
                        "version `{}` is not in the catalog; versions for 1.{version}: {}",
                        af.version,
                        list.join(", ")
                    ),
                ));
            }
            let created = match af.created_at {
                Some(t) => parse_time(&ctx, &t).map_err(|e| err(&ctx, e))?,
                None => created_at,
            };
            let modified = match af.modified_at {
                Some(t) => parse_time(&ctx, &t).map_err(|e| err(&ctx, e))?,
                None => created,
            };
            addons.insert(
                aname.clone(),
                Addon {
                    name: aname,
                    version: af.version,
                    created_at: created,
                    modified_at: modified,
                    configuration_values: af.configuration_values,
                    service_account_role_arn: af.service_account_role_arn,
                    tags: af.tags.unwrap_or_default(),
                },
            );
        }
        let mut updates = Vec::new();
        for (id, uf) in cf.update.0 {
            let ctx = format!("cluster \"{cname}\" update \"{id}\"");
            let status = UpdateStatus::parse(&uf.status).ok_or_else(|| {
                err(
                    &ctx,
                    format!(
                        "status `{}` must be InProgress, Successful, Failed or Cancelled",
                        uf.status
                    ),
                )
            })?;
            let deadline = match uf.remaining_seconds {
                Some(r) => now + r.max(0.0) / speed,
                // An in-progress update without remaining time is driven by node replacement.
                None if status == UpdateStatus::InProgress => f64::INFINITY,
                None => now,
            };
            updates.push(Update {
                id,
                operation: uf.operation,
                nodegroup: uf.node_group,
                addon: uf.addon,
                kind: uf.kind,
                params: uf.params.into_iter().map(|p| (p.kind, p.value)).collect(),
                created_at: parse_time(&ctx, &uf.created_at).map_err(|e| err(&ctx, e))?,
                status,
                errors: uf.errors,
                token: uf.client_request_token,
                deadline,
                fail: uf
                    .fail_code
                    .map(|c| (c, uf.fail_message.unwrap_or_default())),
                force: uf.force,
            });
        }
        let mut workloads = Vec::new();
        for (wname, wf) in cf.workload.0 {
            let ctx = format!("cluster \"{cname}\" workload \"{wname}\"");
            let w = workload_from_file(&wname, wf, &|g| node_groups.contains_key(g))
                .map_err(|e| err(&ctx, e))?;
            if workloads
                .iter()
                .any(|x: &Workload| x.name == w.name && x.namespace == w.namespace)
            {
                return Err(err(&ctx, "duplicate workload name in the namespace".into()));
            }
            workloads.push(w);
        }
        let staging =
            crate::stage::from_file(cf.objects, cf.helm_release, cf.readyz_failing, false, now)
                .map_err(|e| err(&ctx, e))?;
        let mut insights = Vec::new();
        for (id, f) in cf.insight.0 {
            let ctx = format!("cluster \"{cname}\" insight \"{id}\"");
            insights.push(crate::insights::from_file(&id, f, now).map_err(|e| err(&ctx, e))?);
        }
        clusters.insert(
            cname.clone(),
            Cluster {
                name: cname,
                region,
                version,
                platform_version,
                created_at,
                tags: cf.tags.unwrap_or_default(),
                node_groups,
                addons,
                updates,
                workloads,
                staging,
                insights,
                endpoint: None,
            },
        );
    }
    let mut gke = BTreeMap::new();
    for (gname, gf) in f.gke_cluster.0 {
        let ctx = format!("gke_cluster \"{gname}\"");
        if clusters.contains_key(&gname) || gke.contains_key(&gname) {
            return Err(err(
                &ctx,
                "a cluster of that name already exists (EKS and GKE cluster names share the Kubernetes API and kubeconfig namespace and must be unique)".into(),
            ));
        }
        let g = crate::gke::cluster_from_file(&gname, gf, now, speed).map_err(|e| err(&ctx, e))?;
        gke.insert(gname, g);
    }
    let mut aks = BTreeMap::new();
    for (aname, af) in f.aks_cluster.0 {
        let ctx = format!("aks_cluster \"{aname}\"");
        if clusters.contains_key(&aname) || gke.contains_key(&aname) || aks.contains_key(&aname) {
            return Err(err(
                &ctx,
                "a cluster of that name already exists (EKS, GKE and AKS cluster names share the Kubernetes API and kubeconfig namespace and must be unique)".into(),
            ));
        }
        let a = crate::aks::cluster_from_file(&aname, af, now, speed).map_err(|e| err(&ctx, e))?;
        aks.insert(aname, a);
    }
    let mut k3s = BTreeMap::new();
    for (kname, kf) in f.k3s_cluster.0 {
        let ctx = format!("k3s_cluster \"{kname}\"");
        if clusters.contains_key(&kname)
            || gke.contains_key(&kname)
            || aks.contains_key(&kname)
            || k3s.contains_key(&kname)
        {
            return Err(err(
                &ctx,
                "a cluster of that name already exists (EKS, GKE, AKS and K3s/RKE2 cluster names share the Kubernetes API and kubeconfig namespace and must be unique)".into(),
            ));
        }
        if !valid_name(&kname) {
            return Err(err(
                &ctx,
                "cluster names are letters, digits, - and _, starting with a letter or digit"
                    .into(),
            ));
        }
        let k = crate::k3s::cluster_from_file(&kname, kf, now).map_err(|e| err(&ctx, e))?;
        k3s.insert(kname, k);
    }
    let mut kubeadm = BTreeMap::new();
    for (kname, kf) in f.kubeadm_cluster.0 {
        let ctx = format!("kubeadm_cluster \"{kname}\"");
        if clusters.contains_key(&kname)
            || gke.contains_key(&kname)
            || aks.contains_key(&kname)
            || k3s.contains_key(&kname)
            || kubeadm.contains_key(&kname)
        {
            return Err(err(
                &ctx,
                "a cluster of that name already exists (EKS, GKE, AKS, K3s/RKE2 and kubeadm cluster names share the Kubernetes API and kubeconfig namespace and must be unique)".into(),
            ));
        }
        if !valid_name(&kname) {
            return Err(err(
                &ctx,
                "cluster names are letters, digits, - and _, starting with a letter or digit"
                    .into(),
            ));
        }
        let k = crate::kubeadm::cluster_from_file(&kname, kf, now).map_err(|e| err(&ctx, e))?;
        kubeadm.insert(kname, k);
    }
    Ok(World {
        settings,
        clusters,
        gke,
        aks,
        k3s,
        kubeadm,
    })
}

fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn check_int_or_percent(what: &str, v: &IntOrString) -> Result<(), String> {
    match v {
        IntOrString::Int(n) if *n >= 0 => Ok(()),
        IntOrString::Str(s)
            if s.strip_suffix('%')
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|p| p <= 100) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "pdb {what} must be a non-negative number or a percentage like \"25%\""
        )),
    }
}

pub fn workload_from_file(
    name: &str,
    wf: WorkloadFile,
    has_group: &dyn Fn(&str) -> bool,
) -> Result<Workload, String> {
    if !dns_label(name) {
        return Err("workload names must be DNS labels (lowercase letters, digits, -)".into());
    }
    let kind = wf.kind.unwrap_or_else(|| "Deployment".into());
    if !WORKLOAD_KINDS.contains(&kind.as_str()) {
        return Err(format!(
            "kind `{kind}` must be one of {}",
            WORKLOAD_KINDS.join(", ")
        ));
    }
    let namespace = wf.namespace.unwrap_or_else(|| "default".into());
    if !dns_label(&namespace) {
        return Err(format!("namespace `{namespace}` is not a DNS label"));
    }
    let cpu = wf.cpu.unwrap_or_else(|| "100m".into());
    let n = cpu.strip_suffix('m').unwrap_or(&cpu);
    if n.is_empty() || n.parse::<f64>().map_or(true, |v| v < 0.0) {
        return Err(format!(
            "cpu `{cpu}` is not a CPU quantity (e.g. \"250m\", \"1\")"
        ));
    }
    let memory = wf.memory.unwrap_or_else(|| "128Mi".into());
    let num = memory.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &memory[num.len()..];
    if num.is_empty()
        || num.parse::<f64>().is_err()
        || !["", "Ki", "Mi", "Gi", "Ti", "k", "K", "M", "G", "T"].contains(&suffix)
    {
        return Err(format!(
            "memory `{memory}` is not a memory quantity (e.g. \"256Mi\")"
        ));
    }
    if let Some(ng) = &wf.node_group {
        if !has_group(ng) {
            return Err(format!(
                "node_group `{ng}` is not a node group of this cluster"
            ));
        }
    }
    if let Some(p) = &wf.pdb {
        match (&p.min_available, &p.max_unavailable) {
            (Some(v), None) => check_int_or_percent("min_available", v)?,
            (None, Some(v)) => check_int_or_percent("max_unavailable", v)?,
            _ => return Err("pdb needs exactly one of min_available or max_unavailable".into()),
        }
    }
    let grace = wf.termination_grace_period.unwrap_or(30);
    if grace < 0 {
        return Err("termination_grace_period must not be negative".into());
    }
    let mut labels = wf.labels.unwrap_or_default();
    if labels.is_empty() {
        labels.insert("app".into(), name.to_string());
    }
    let replicas = match kind.as_str() {
        "Pod" => 1,
        _ => wf.replicas.unwrap_or(1),
    };
    Ok(Workload {
        name: name.to_string(),
        namespace,
        kind,
        replicas,
        cpu,
        memory,
        node_group: wf.node_group,
        empty_dir: wf.empty_dir.unwrap_or(false),
        termination_grace_period: grace,
        labels,
        pdb: wf.pdb,
        image: wf
            .image
            .unwrap_or_else(|| "public.ecr.aws/docker/library/nginx:1.27".into()),
        crash_loop: wf.crash_loop.unwrap_or(false),
    })
}

fn nodegroup_from_file(
    name: &str,
    nf: NodeGroupFile,
    cluster_version: u32,
    cluster_created: f64,
    now: f64,
    speed: f64,
) -> Result<NodeGroup, String> {
    if !valid_name(name) {
        return Err("invalid node group name".into());
    }
    let version = match &nf.version {
        None => cluster_version,
        Some(v) => parse_minor(v)
            .filter(|m| catalog::version(*m).is_some())
            .ok_or_else(|| {
                format!("version `{v}` is not a Kubernetes minor EKS offers (1.23 … 1.34)")
            })?,
    };
    if version > cluster_version {
        return Err(format!(
            "version 1.{version} is newer than the cluster's version 1.{cluster_version}"
        ));
    }
    let kv = catalog::version(version).expect("checked");
    let release_version = match nf.release_version {
        None => kv.latest_ami_release().to_string(),
        Some(r) if kv.ami_releases.contains(&r.as_str()) => r,
        Some(r) => {
            return Err(format!(
                "release_version `{r}` is not an AMI release for 1.{version}; known: {}",
                kv.ami_releases.join(", ")
            ))
        }
    };
    let desired = nf.desired_size.or(nf.min_size).unwrap_or(2);
    let min = nf.min_size.unwrap_or(desired.min(1));
    let max = nf.max_size.unwrap_or(desired.max(2));
    check_scaling(min, max, desired)?;
    check_update_config(nf.max_unavailable, nf.max_unavailable_percentage)?;
    let (mu, mup) = match (nf.max_unavailable, nf.max_unavailable_percentage) {
        (None, None) => (Some(1), None),
        x => x,
    };
    let ami_type = nf
        .ami_type
        .unwrap_or_else(|| default_ami_type(version).into());
    if !AMI_TYPES.contains(&ami_type.as_str()) {
        return Err(format!(
            "ami_type `{ami_type}` is not one of {}",
            AMI_TYPES.join(", ")
        ));
    }
    let capacity_type = nf.capacity_type.unwrap_or_else(|| "ON_DEMAND".into());
    if !CAPACITY_TYPES.contains(&capacity_type.as_str()) {
        return Err(format!(
            "capacity_type `{capacity_type}` is not one of {}",
            CAPACITY_TYPES.join(", ")
        ));
    }
    if let Some(s) = &nf.update_strategy {
        if !UPDATE_STRATEGIES.contains(&s.as_str()) {
            return Err(format!("update_strategy `{s}` must be DEFAULT or MINIMAL"));
        }
    }
    for t in nf.taints.iter().flatten() {
        if !TAINT_EFFECTS.contains(&t.effect.as_str()) {
            return Err(format!(
                "taint effect `{}` must be one of {}",
                t.effect,
                TAINT_EFFECTS.join(", ")
            ));
        }
    }
    let created_at = match nf.created_at {
        Some(t) => parse_time("created_at", &t)?,
        None => cluster_created,
    };
    let modified_at = match nf.modified_at {
        Some(t) => parse_time("modified_at", &t)?,
        None => created_at,
    };
    let remaining = nf.remaining_seconds.unwrap_or(0.0).max(0.0);
    let lifecycle = match nf.status.as_deref() {
        None | Some("ACTIVE") | Some("UPDATING") => Lifecycle::Active,
        Some("CREATING") => Lifecycle::Creating {
            deadline: now + remaining / speed,
        },
        Some("DELETING") => Lifecycle::Deleting {
            deadline: now + remaining / speed,
        },
        Some("CREATE_FAILED") => Lifecycle::CreateFailed,
        Some("DELETE_FAILED") => Lifecycle::DeleteFailed,
        Some(other) => {
            return Err(format!(
            "status `{other}` must be ACTIVE, CREATING, DELETING, CREATE_FAILED or DELETE_FAILED"
        ))
        }
    };
    Ok(NodeGroup {
        name: name.to_string(),
        version,
        release_version,
        instance_types: nf
            .instance_types
            .unwrap_or_else(|| vec!["t3.medium".into()]),
        ami_type,
        capacity_type,
        min_size: min,
        max_size: max,
        desired_size: desired,
        max_unavailable: mu,
        max_unavailable_percentage: mup,
        update_strategy: nf.update_strategy,
        labels: nf.labels.unwrap_or_default(),
        taints: nf.taints.unwrap_or_default(),
        tags: nf.tags.unwrap_or_default(),
        disk_size: nf.disk_size.unwrap_or(20),
        subnets: nf.subnets.unwrap_or_else(|| {
            vec![
                "subnet-0a1b2c3d4e5f60001".into(),
                "subnet-0a1b2c3d4e5f60002".into(),
            ]
        }),
        node_role: nf.node_role.unwrap_or_default(),
        created_at,
        modified_at,
        lifecycle,
        failure: nf
            .failure_code
            .map(|c| (c, nf.failure_message.unwrap_or_default())),
        create_token: nf.client_request_token,
    })
}

/// Convert the runtime world back to its file form. `now`/`speed` turn deadlines into
/// remaining simulated seconds.
pub fn to_file(w: &World, now: f64, speed: f64) -> WorldFile {
    let remaining = |deadline: f64| ((deadline - now).max(0.0) * speed * 1000.0).round() / 1000.0;
    let opt_map = |m: &BTreeMap<String, String>| (!m.is_empty()).then(|| m.clone());
    let settings = SettingsFile {
        strict_nodegroup_skew: Some(w.settings.strict_nodegroup_skew),
        account_id: Some(w.settings.account_id.clone()),
        catalog_date: Some(w.settings.catalog_date.to_string()),
    };
    let mut clusters = Vec::new();
    for c in w.clusters.values() {
        let node_group = c
            .node_groups
            .values()
            .map(|ng| {
                let (status, rem) = match ng.lifecycle {
                    Lifecycle::Active => (None, None),
                    Lifecycle::Creating { deadline } => {
                        (Some("CREATING".to_string()), Some(remaining(deadline)))
                    }
                    Lifecycle::Deleting { deadline } => {
                        (Some("DELETING".to_string()), Some(remaining(deadline)))
                    }
                    Lifecycle::CreateFailed => (Some("CREATE_FAILED".to_string()), None),
                    Lifecycle::DeleteFailed => (Some("DELETE_FAILED".to_string()), None),
                };
                (
                    ng.name.clone(),
                    NodeGroupFile {
                        version: Some(format!("1.{}", ng.version)),
                        release_version: Some(ng.release_version.clone()),
                        instance_types: Some(ng.instance_types.clone()),
                        ami_type: Some(ng.ami_type.clone()),
                        capacity_type: Some(ng.capacity_type.clone()),
                        min_size: Some(ng.min_size),
                        max_size: Some(ng.max_size),
                        desired_size: Some(ng.desired_size),
                        max_unavailable: ng.max_unavailable,
                        max_unavailable_percentage: ng.max_unavailable_percentage,
                        update_strategy: ng.update_strategy.clone(),
                        labels: opt_map(&ng.labels),
                        taints: (!ng.taints.is_empty()).then(|| ng.taints.clone()),
                        tags: opt_map(&ng.tags),
                        disk_size: Some(ng.disk_size),
                        subnets: Some(ng.subnets.clone()),
                        node_role: (!ng.node_role.is_empty()).then(|| ng.node_role.clone()),
                        created_at: Some(fmt_time(ng.created_at)),
                        modified_at: Some(fmt_time(ng.modified_at)),
                        status,
                        remaining_seconds: rem,
                        failure_code: ng.failure.as_ref().map(|f| f.0.clone()),
                        failure_message: ng.failure.as_ref().map(|f| f.1.clone()),
                        client_request_token: ng.create_token.clone(),
                    },
                )
            })
            .collect();
        let addon = c
            .addons
            .values()
            .map(|a| {
                (
                    a.name.clone(),
                    AddonFile {
                        version: a.version.clone(),
                        configuration_values: a.configuration_values.clone(),
                        service_account_role_arn: a.service_account_role_arn.clone(),
                        tags: opt_map(&a.tags),
                        created_at: Some(fmt_time(a.created_at)),
                        modified_at: Some(fmt_time(a.modified_at)),
                    },
                )
            })
            .collect();
        let update = c
            .updates
            .iter()
            .map(|u| {
                let in_progress = u.status == UpdateStatus::InProgress;
                (
                    u.id.clone(),
                    UpdateFile {
                        kind: u.kind.clone(),
                        status: u.status.as_str().into(),
                        operation: u.operation.clone(),
                        node_group: u.nodegroup.clone(),
                        addon: u.addon.clone(),
                        created_at: fmt_time(u.created_at),
                        client_request_token: u.token.clone(),
                        params: u
                            .params
                            .iter()
                            .map(|(k, v)| ParamFile {
                                kind: k.clone(),
                                value: v.clone(),
                            })
                            .collect(),
                        // Updates driven by the Kubernetes side (node replacement) have no fixed
                        // deadline: written without remaining_seconds and re-driven on load.
                        remaining_seconds: (in_progress && u.deadline.is_finite())
                            .then(|| remaining(u.deadline)),
                        fail_code: u.fail.as_ref().map(|f| f.0.clone()),
                        fail_message: u.fail.as_ref().map(|f| f.1.clone()),
                        errors: u.errors.clone(),
                        force: u.force,
                    },
                )
            })
            .collect();
        let (objects, helm_release, readyz_failing) = crate::stage::to_file(&c.staging);
        clusters.push((
            c.name.clone(),
            ClusterFile {
                region: Some(c.region.clone()),
                version: format!("1.{}", c.version),
                platform_version: Some(c.platform_version.clone()),
                created_at: Some(fmt_time(c.created_at)),
                tags: opt_map(&c.tags),
                node_group: OrderedMap(node_group),
                addon: OrderedMap(addon),
                workload: OrderedMap(
                    c.workloads
                        .iter()
                        .map(|w| (w.name.clone(), workload_to_file(w)))
                        .collect(),
                ),
                objects,
                helm_release,
                readyz_failing,
                insight: crate::insights::to_file(&c.insights),
                update: OrderedMap(update),
            },
        ));
    }
    WorldFile {
        settings: Some(settings),
        cluster: OrderedMap(clusters),
        gke_cluster: OrderedMap(
            w.gke
                .values()
                .map(|g| (g.name.clone(), crate::gke::cluster_to_file(g, now, speed)))
                .collect(),
        ),
        aks_cluster: OrderedMap(
            w.aks
                .values()
                .map(|a| (a.name.clone(), crate::aks::cluster_to_file(a, now, speed)))
                .collect(),
        ),
        k3s_cluster: OrderedMap(
            w.k3s
                .values()
                .map(|k| (k.name.clone(), crate::k3s::cluster_to_file(k)))
                .collect(),
        ),
        kubeadm_cluster: OrderedMap(
            w.kubeadm
                .values()
                .map(|k| (k.name.clone(), crate::kubeadm::cluster_to_file(k)))
                .collect(),
        ),
    }
}

/// Blocks (by attribute name) in the HCL rendering, and whether they carry a label.
const BLOCKS: &[(&str, bool)] = &[
    ("settings", false),
    ("cluster", true),
    ("node_group", true),
    ("node_pool", true),
    ("addon", true),
    ("workload", true),
    ("pdb", false),
    ("update", true),
    ("gke_cluster", true),
    ("daily_maintenance_window", false),
    ("maintenance_window", false),
    ("maintenance_exclusion", true),
    ("drain_config", false),
    ("operation", true),
    ("aks_cluster", true),
    ("agent_pool", true),
    ("k3s_cluster", true),
    ("server", true),
    ("agent", true),
    ("suc", false),
    ("channel_server", false),
    ("kubeadm_cluster", true),
    ("node", true),
    ("helm_release", true),
    ("insight", true),
    ("deprecation", false),
    ("client", false),
    ("resource", false),
    ("addon_compatibility", false),
    ("upgrade_override", false),
];

/// Is `v` written as block(s) named `k`: an object, or a list of objects for a repeatable
/// unlabelled block (`deprecation`, `client`, …)?
fn is_block(k: &str, v: &hcl::Value) -> bool {
    BLOCKS.iter().any(|(n, labelled)| {
        *n == k
            && match v {
                hcl::Value::Object(_) => true,
                hcl::Value::Array(a) => {
                    !labelled && !a.is_empty() && a.iter().all(|x| x.as_object().is_some())
                }
                _ => false,
            }
    })
}

fn value_to_body(obj: &hcl::Map<String, hcl::Value>) -> hcl::Body {
    let mut b = hcl::Body::builder();
    // Attributes first (in struct order), then blocks.
    for (k, v) in obj {
        // A block name holding a non-object (e.g. a workload's `node_group = "general"`) is
        // an attribute.
        if is_block(k, v) || v.is_null() {
            continue;
        }
        b = b.add_attribute((k.as_str(), hcl::Expression::from(v.clone())));
    }
    for (name, labelled) in BLOCKS {
        if let Some(hcl::Value::Array(items)) = obj.get(*name) {
            if is_block(name, &hcl::Value::Array(items.clone())) {
                for inner in items.iter().filter_map(hcl::Value::as_object) {
                    let body = value_to_body(inner);
                    b = b.add_block(
                        hcl::Block::builder(*name)
                            .add_structures(body.into_inner())
                            .build(),
                    );
                }
            }
            continue;
        }
        let Some(hcl::Value::Object(m)) = obj.get(*name) else {
            continue;
        };
        if *labelled {
            for (label, inner) in m {
                let hcl::Value::Object(inner) = inner else {
                    continue;
                };
                let body = value_to_body(inner);
                b = b.add_block(
                    hcl::Block::builder(*name)
                        .add_label(label.as_str())
                        .add_structures(body.into_inner())
                        .build(),
                );
            }
        } else {
            let body = value_to_body(m);
            b = b.add_block(
                hcl::Block::builder(*name)
                    .add_structures(body.into_inner())
                    .build(),
            );
        }
    }
    b.build()
}

/// Render a world file as text in `format`.
pub fn render(f: &WorldFile, format: Format) -> Result<String, String> {
    match format {
        Format::Json => serde_json::to_string_pretty(f)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string()),
        Format::Hcl => {
            let v = hcl::to_value(f).map_err(|e| e.to_string())?;
            let hcl::Value::Object(m) = v else {
                return Err("world did not serialize to an object".into());
            };
            let body = value_to_body(&m);
            let text = hcl::to_string(&body).map_err(|e| e.to_string())?;
            Ok(format!(
                "# kup sim world file (rewritten by the simulator after every change)\n{text}"
            ))
        }
    }
}

/// Write `text` to `path` atomically: temp file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "world".into());
    let tmp = dir.join(format!(
        ".{file_name}.tmp-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// The file form of a workload (defaults written out).
pub fn workload_to_file(w: &Workload) -> WorkloadFile {
    WorkloadFile {
        namespace: Some(w.namespace.clone()),
        kind: Some(w.kind.clone()),
        replicas: (w.kind != "DaemonSet" && w.kind != "Pod").then_some(w.replicas),
        cpu: Some(w.cpu.clone()),
        memory: Some(w.memory.clone()),
        node_group: w.node_group.clone(),
        empty_dir: Some(w.empty_dir),
        termination_grace_period: Some(w.termination_grace_period),
        labels: Some(w.labels.clone()),
        image: Some(w.image.clone()),
        pdb: w.pdb.clone(),
        crash_loop: w.crash_loop.then_some(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
settings {
  strict_nodegroup_skew = false
  account_id = "123456789012"
}
cluster "prod-eu" {
  region   = "eu-west-1"
  version  = "1.28"
  platform_version = "eks.5"
  node_group "general" {
    version         = "1.28"
    release_version = "1.28.5-20240307"
    instance_types  = ["m5.large"]
    ami_type        = "AL2023_x86_64_STANDARD"
    capacity_type   = "ON_DEMAND"
    min_size = 2
    max_size = 6
    desired_size = 3
    max_unavailable = 1
    labels = { team = "core" }
  }
  node_group "spot" {
    max_unavailable_percentage = 25
    desired_size = 8
    max_size = 10
  }
  addon "coredns"    { version = "v1.10.1-eksbuild.7" }
  addon "kube-proxy" { version = "v1.28.4-eksbuild.1" }
  addon "vpc-cni"    { version = "v1.16.0-eksbuild.1" }
  workload "web" {
    namespace  = "shop"
    replicas   = 6
    node_group = "general"
    pdb { max_unavailable = "25%" }
  }
}
cluster "dev" {
  version = "1.30"
}
"#;

    fn load(text: &str, format: Format) -> Result<World, String> {
        let p = Path::new("w.hcl");
        from_file(p, parse_text(p, text, format)?, 1000.0, 1.0)
    }

    #[test]
    fn parses_sample_hcl() {
        let w = load(SAMPLE, Format::Hcl).unwrap();
        assert_eq!(w.clusters.len(), 2);
        let c = &w.clusters["prod-eu"];
        assert_eq!(c.version, 28);
        assert_eq!(c.platform_version, "eks.5");
        assert_eq!(c.region, "eu-west-1");
        let g = &c.node_groups["general"];
        assert_eq!((g.min_size, g.max_size, g.desired_size), (2, 6, 3));
        assert_eq!(g.labels["team"], "core");
        assert_eq!(g.batches(), 3);
        let s = &c.node_groups["spot"];
        assert_eq!(s.version, 28);
        assert_eq!(s.release_version, "1.28.15-20250407");
        assert_eq!(s.batch_size(), 2);
        assert_eq!(s.batches(), 4);
        assert_eq!(c.addons.len(), 3);
        assert_eq!(w.clusters["dev"].platform_version, "eks.9");
    }

    #[test]
    fn kubeadm_clusters_roundtrip_and_share_the_name_space() {
        let text = r#"
kubeadm_cluster "lab" {
  version       = "1.29.8"
  control_plane = ["cp1"]
  workers       = ["w1"]
  node "w1" {
    version = "1.28.3"
    labels  = { pool = "gpu" }
  }
  packages = {
    "1.29" = ["1.29.8", "1.29.12"]
    "1.30" = ["1.30.9"]
  }
  workload "web" {
    replicas = 2
  }
}
"#;
        let w = load(text, Format::Hcl).unwrap();
        let k = &w.kubeadm["lab"];
        assert_eq!(k.nodes.len(), 2);
        for format in [Format::Hcl, Format::Json] {
            let out = render(&to_file(&w, 1000.0, 1.0), format).unwrap();
            let back = load(&out, format).unwrap_or_else(|e| panic!("{e}\n{out}"));
            let b = &back.kubeadm["lab"];
            assert_eq!(b.version, (1, 29, 8));
            assert_eq!(b.node("w1").unwrap().version, (1, 28, 3));
            assert_eq!(b.node("w1").unwrap().labels["pool"], "gpu");
            assert_eq!(b.packages, k.packages);
            assert_eq!(b.workloads.len(), 1);
        }
        let clash = format!("{text}\nk3s_cluster \"lab\" {{\n  version = \"v1.29.8+k3s1\"\n}}\n");
        let e = load(&clash, Format::Hcl).unwrap_err();
        assert!(
            e.contains("kubeadm_cluster \"lab\"") && e.contains("already exists"),
            "{e}"
        );
        let bad = text.replace("\"1.29.8\"\n  control", "\"1.29\"\n  control");
        let e = load(&bad, Format::Hcl).unwrap_err();
        assert!(
            e.contains("kubeadm_cluster \"lab\": version \"1.29\""),
            "{e}"
        );
    }

    #[test]
    fn roundtrips_hcl_and_json() {
        let mut w = load(SAMPLE, Format::Hcl).unwrap();
        w.clusters.get_mut("prod-eu").unwrap().updates.push(Update {
            id: "u1".into(),
            operation: "UpdateNodegroupVersion".into(),
            nodegroup: Some("general".into()),
            addon: None,
            kind: "VersionUpdate".into(),
            params: vec![("Version".into(), "1.28".into())],
            created_at: 1000.5,
            status: UpdateStatus::InProgress,
            errors: vec![],
            token: Some("tok".into()),
            deadline: 1010.0,
            fail: Some(("PodEvictionFailure".into(), "m".into())),
            force: false,
        });
        for format in [Format::Hcl, Format::Json] {
            let text = render(&to_file(&w, 1000.0, 2.0), format).unwrap();
            let back = load(&text, format).unwrap_or_else(|e| panic!("{e}\n{text}"));
            let c = &back.clusters["prod-eu"];
            assert_eq!(c.node_groups["general"].labels["team"], "core");
            assert_eq!(c.node_groups["spot"].max_unavailable_percentage, Some(25));
            let w = &c.workloads[0];
            assert_eq!(
                w,
                &load(SAMPLE, Format::Hcl).unwrap().clusters["prod-eu"].workloads[0]
            );
            assert_eq!(w.node_group.as_deref(), Some("general"), "{text}");
            assert_eq!(
                (w.kind.as_str(), w.replicas, w.namespace.as_str()),
                ("Deployment", 6, "shop")
            );
            assert_eq!(w.labels["app"], "web");
            assert_eq!(
                w.pdb.as_ref().unwrap().max_unavailable,
                Some(IntOrString::Str("25%".into()))
            );
            let u = &c.updates[0];
            assert_eq!(u.token.as_deref(), Some("tok"));
            // 10 wall seconds at speed 2 = 20 simulated seconds left; reloaded at speed 1.
            assert!((u.deadline - 1020.0).abs() < 1e-6, "{}", u.deadline);
            assert_eq!(u.fail.as_ref().unwrap().0, "PodEvictionFailure");
            assert!((u.created_at - 1000.5).abs() < 1e-6);
        }
    }

    #[test]
    fn staging_and_insight_blocks_roundtrip() {
        let src = r#"
cluster "c" {
  version = "1.31"
  workload "w" {
    crash_loop = true
  }
  readyz_failing = ["etcd"]
  objects = [
    { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "x", annotations = { "a.b/c" = "{\"k\": 1}" } }, data = { k = "v" } }
  ]
  helm_release "r" {
    chart         = "r"
    chart_version = "1.0.0"
    manifest      = <<EOT
kind: ConfigMap
EOT
  }
  insight "one" {
    name   = "Deprecated APIs removed in Kubernetes v1.32"
    status = "ERROR"
    deprecation {
      usage = "/apis/flowcontrol.apiserver.k8s.io/v1beta3/flowschemas"
      client {
        user_agent = "a/1"
      }
      client {
        user_agent = "b/2"
      }
    }
  }
  insight "two" {
    name   = "Custom"
    status = "WARNING"
    deprecation {
      usage = "/apis/policy/v1beta1/poddisruptionbudgets"
    }
    deprecation {
      usage = "/apis/batch/v1beta1/cronjobs"
    }
  }
}
"#;
        let w = load(src, Format::Hcl).unwrap();
        let c = &w.clusters["c"];
        assert!(c.workloads[0].crash_loop);
        assert_eq!(c.staging.readyz_failing, ["etcd"]);
        assert_eq!(
            c.staging.objects[0]["metadata"]["annotations"]["a.b/c"],
            "{\"k\": 1}"
        );
        assert_eq!(c.staging.helm[0].manifest, "kind: ConfigMap\n");
        assert_eq!(c.insights[0].deprecations[0].clients.len(), 2);
        assert_eq!(c.insights[1].deprecations.len(), 2);
        // Filled in from the removal table.
        assert_eq!(
            c.insights[1].deprecations[1]
                .stop_serving_version
                .as_deref(),
            Some("1.25")
        );
        for format in [Format::Hcl, Format::Json] {
            let text = render(&to_file(&w, 1000.0, 1.0), format).unwrap();
            let back = load(&text, format).unwrap_or_else(|e| panic!("{e}\n{text}"));
            let b = &back.clusters["c"];
            assert_eq!(b.staging, c.staging, "{text}");
            assert_eq!(b.insights, c.insights, "{text}");
            assert!(b.workloads[0].crash_loop);
            if format == Format::Hcl {
                assert_eq!(text.matches("client {").count(), 2, "{text}");
                assert_eq!(text.matches("deprecation {").count(), 3, "{text}");
            }
        }
    }

    #[test]
    fn errors_name_file_and_location() {
        let e = load("cluster \"a\" {\n  version = \n}\n", Format::Hcl).unwrap_err();
        assert!(e.contains("w.hcl"), "{e}");
        assert!(e.contains("w.hcl:2:13:"), "{e}");
        let e = load("cluster \"a\" { version = \"1.99\" }", Format::Hcl).unwrap_err();
        assert!(e.contains("cluster \"a\"") && e.contains("1.99"), "{e}");
        let e = load(
            "cluster \"a\" {\n version = \"1.28\"\n node_group \"n\" { version = \"1.29\" }\n}",
            Format::Hcl,
        )
        .unwrap_err();
        assert!(e.contains("node_group \"n\"") && e.contains("newer"), "{e}");
        let e = load(
            "cluster \"a\" {\n version = \"1.28\"\n bogus = 1\n}\n",
            Format::Hcl,
        )
        .unwrap_err();
        assert!(e.contains("bogus"), "{e}");
        for (w, needle) in [
            ("workload \"w\" { kind = \"Job\" }", "kind `Job`"),
            (
                "workload \"w\" { node_group = \"nope\" }",
                "node_group `nope`",
            ),
            ("workload \"w\" { cpu = \"lots\" }", "cpu `lots`"),
            ("workload \"w\" {\n pdb {\n }\n }", "exactly one"),
            (
                "workload \"w\" {\n pdb { min_available = \"150%\" }\n }",
                "percentage",
            ),
            ("workload \"W\" { }", "DNS labels"),
        ] {
            let e = load(
                &format!("cluster \"a\" {{\n version = \"1.28\"\n {w}\n}}\n"),
                Format::Hcl,
            )
            .unwrap_err();
            assert!(e.contains("workload \"") && e.contains(needle), "{w}: {e}");
        }
    }

    #[test]
    fn advance_applies_in_deadline_order_and_respects_hang() {
        let mut w = load(SAMPLE, Format::Hcl).unwrap();
        let c = w.clusters.get_mut("prod-eu").unwrap();
        c.updates.push(Update {
            id: "cp".into(),
            operation: "UpdateClusterVersion".into(),
            nodegroup: None,
            addon: None,
            kind: "VersionUpdate".into(),
            params: vec![
                ("Version".into(), "1.29".into()),
                ("PlatformVersion".into(), "eks.10".into()),
            ],
            created_at: 1000.0,
            status: UpdateStatus::InProgress,
            errors: vec![],
            token: None,
            deadline: 1100.0,
            fail: None,
            force: false,
        });
        assert_eq!(c.status(), "UPDATING");
        assert!(!w.advance(1099.0, &|_, _, _| false));
        assert!(!w.advance(1200.0, &|c, n, a| c == "prod-eu"
            && n.is_none()
            && a.is_none()));
        assert!(w.advance(1200.0, &|_, _, _| false));
        let c = &w.clusters["prod-eu"];
        assert_eq!(c.version, 29);
        assert_eq!(c.platform_version, "eks.10");
        assert_eq!(c.updates[0].status, UpdateStatus::Successful);
        assert_eq!(c.status(), "ACTIVE");
    }
}
