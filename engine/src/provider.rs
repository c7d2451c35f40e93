//! The boundary between the engine and the outside world. A provider reads a cluster's
//! actual state and carries out single actions; it never decides order (the planner does).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::kube::{DrainError, DrainReport, KubeSnapshot};
use crate::model::{ActualCluster, DrainSpec};
use crate::plan::Action;
use crate::policy::ProviderPolicy;
use crate::version::Minor;

/// Which cluster at the provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterTarget {
    /// The cluster's name at the provider.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// A provider's handle on a long-running operation, journaled so a resumed apply can wait
/// on it instead of issuing the action again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationId(pub String);

impl fmt::Display for OperationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum OperationStatus {
    InProgress(Progress),
    Succeeded,
    /// The provider's own error code and text, shown to the user unchanged.
    Failed {
        code: String,
        message: String,
    },
    Cancelled {
        message: String,
    },
}

impl OperationStatus {
    /// Running, with nothing more known.
    pub fn in_progress() -> Self {
        OperationStatus::InProgress(Progress::default())
    }
    pub fn is_in_progress(&self) -> bool {
        matches!(self, OperationStatus::InProgress(_))
    }
}

/// What a provider says about a running operation beyond "not done yet".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Units (nodes) done and in all, when the provider counts them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// The provider's name for the stage it is in (GKE's blue-green phase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// A native blue/green upgrade has moved every workload and only soaks now, so
    /// completing it early is allowed.
    #[serde(default)]
    pub soaking: bool,
    /// Commands the provider ran on hosts since the last poll (kubeadm over SSH), for the
    /// journal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transcript: Vec<TranscriptEntry>,
}

/// One command a provider ran on a host, as the journal keeps it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TranscriptEntry {
    pub host: String,
    /// The command as the host's shell received it (arguments quoted).
    pub command: String,
    pub exit_code: i32,
    /// Standard output and error, trimmed to the last lines.
    pub output: String,
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let (Some(d), Some(t)) = (self.done, self.total) {
            if t > 0 {
                parts.push(format!("{d}/{t} nodes"));
            }
        }
        if let Some(s) = &self.stage {
            parts.push(s.to_lowercase().replace('_', " "));
        }
        if parts.is_empty() {
            f.write_str("in_progress")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Throttling, 5xx, timeouts, connection resets: worth retrying with backoff.
    Transient,
    /// Another operation holds the resource (EKS ResourceInUseException).
    Conflict,
    /// The provider refused the request as invalid.
    Invalid,
    NotFound,
    /// Credentials missing or refused.
    Auth,
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{message}")]
pub struct ProviderError {
    pub kind: ErrorKind,
    /// The provider's error code, e.g. `InvalidParameterException`.
    pub code: Option<String>,
    pub message: String,
}

impl ProviderError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ProviderError {
            kind,
            code: None,
            message: message.into(),
        }
    }
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }
    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }
}

#[async_trait]
pub trait Provider: Send + Sync {
    /// The provider type, e.g. `eks`.
    fn kind(&self) -> &str;

    /// Provider-specific constraints the planner must respect.
    fn policy(&self) -> ProviderPolicy;

    /// How long to wait between polls of a running operation.
    fn poll_interval(&self) -> Duration;

    /// Read the cluster's actual state.
    async fn refresh(&self, cluster: &ClusterTarget) -> Result<ActualCluster, ProviderError>;

    /// The names of the clusters this provider block can see (EKS: its region's; GKE: its
    /// project and location's; AKS: its resource group's), sorted, for `kup generate`.
    async fn list_clusters(&self) -> Result<Vec<String>, ProviderError> {
        Err(ProviderError::new(
            ErrorKind::Other,
            format!(
                "a {} provider cannot list clusters: it reaches one cluster through its kubeconfig; write that cluster's block by hand",
                self.kind()
            ),
        ))
    }

    /// End the soak of a provider-native blue/green upgrade now (GKE
    /// nodePools.completeUpgrade), because the user's health condition held. Providers
    /// without a native blue/green upgrade never get asked.
    async fn complete_upgrade(
        &self,
        cluster: &ClusterTarget,
        action: &Action,
    ) -> Result<(), ProviderError> {
        let _ = cluster;
        Err(ProviderError::new(
            ErrorKind::Invalid,
            format!(
                "provider `{}` has no native blue/green upgrade to complete ({})",
                self.kind(),
                action.describe()
            ),
        ))
    }

    /// Start `action`. `token` is stable for this plan step; providers that support
    /// idempotent requests must pass it so a re-sent request is not acted on twice.
    async fn start(
        &self,
        cluster: &ClusterTarget,
        action: &Action,
        token: &str,
    ) -> Result<OperationId, ProviderError>;

    /// An operation already running at the provider that carries out `action`, if any
    /// (used when a killed apply never journaled the id it was given).
    async fn find_in_flight(
        &self,
        cluster: &ClusterTarget,
        action: &Action,
    ) -> Result<Option<OperationId>, ProviderError>;

    /// The current status of an operation started for `action`.
    async fn poll(
        &self,
        cluster: &ClusterTarget,
        action: &Action,
        op: &OperationId,
    ) -> Result<OperationStatus, ProviderError>;

    /// Access to the cluster's Kubernetes API, when kup can reach it: from the cluster's
    /// `kubeconfig`/`context`, or from the provider itself (EKS: endpoint, CA and token
    /// from DescribeCluster). `Ok(None)` when this provider offers no way in.
    async fn node_ops(
        &self,
        cluster: &ClusterTarget,
        access: &KubeAccess,
    ) -> Result<Option<std::sync::Arc<dyn NodeOps>>, ProviderError> {
        let _ = (cluster, access);
        Ok(None)
    }
}

/// How the configuration says to reach a cluster's Kubernetes API.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubeAccess {
    /// `kubeconfig` attribute (path, `~` expanded by the provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

/// Operations kup performs itself inside a cluster, shared by every provider that must
/// move pods (blue/green on EKS, kubeadm, K3s): read nodes/pods/PDBs, cordon, drain with
/// kubectl's rules, wait for nodes.
#[async_trait]
pub trait NodeOps: Send + Sync {
    async fn snapshot(&self) -> Result<KubeSnapshot, ProviderError>;

    /// Cordon (`true`) or uncordon (`false`); idempotent.
    async fn set_unschedulable(&self, node: &str, unschedulable: bool)
        -> Result<(), ProviderError>;

    /// Evict (or with `disable_eviction`, delete) every pod kubectl's rules allow, all
    /// concurrently; retry PDB refusals (429) with backoff until `opts.timeout`; wait for
    /// the pods to be gone with watches.
    async fn drain(&self, node: &str, opts: &DrainSpec) -> Result<DrainReport, DrainError>;

    /// Deployments and StatefulSets with fewer available replicas than they ask for
    /// (`namespace/kind/name: available/wanted`), for the soak before a blue group is
    /// deleted.
    async fn unavailable_workloads(&self) -> Result<Vec<String>, ProviderError>;

    /// What the pre-flight and post-flight checks read beyond the snapshot: `/readyz`,
    /// Deployments and StatefulSets, and objects at removed APIs (last-applied
    /// configuration, managedFields, Helm release manifests).
    async fn scan(&self) -> Result<crate::kube::ClusterScan, ProviderError>;

    /// Deployments and StatefulSets with their replicas (the post-flight check polls this).
    async fn workloads(&self) -> Result<Vec<crate::kube::KubeWorkload>, ProviderError>;

    /// Create a pod running `image` in `namespace`, wait until it runs and is Ready, and
    /// delete it (also when it fails). Returns how long it took to run.
    async fn smoke_pod(
        &self,
        namespace: &str,
        name: &str,
        image: &str,
        timeout: Duration,
    ) -> Result<Duration, ProviderError>;

    /// Wait until `count` nodes of `node_group` are Ready with a kubelet at `minor`; on
    /// timeout the error names the nodes that are late.
    async fn wait_ready(
        &self,
        node_group: &str,
        count: usize,
        minor: Minor,
        timeout: Duration,
    ) -> Result<(), ProviderError>;
}
