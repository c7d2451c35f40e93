//! [`KubeNodeOps`] for clusters whose nodes carry no node-group label (K3s/RKE2, kubeadm):
//! each provider says how its nodes map to node groups, and the rest is shared.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kup_engine::kube::{DrainError, DrainReport, KubeSnapshot};
use kup_engine::model::DrainSpec;
use kup_engine::Minor;

use super::KubeNodeOps;
use crate::{ErrorKind, NodeOps, ProviderError};

/// How a provider assigns the nodes of a snapshot to its node groups.
#[async_trait]
pub trait NodeGrouping: Send + Sync {
    /// Set `node_group` on every node of `snapshot` that belongs to one.
    async fn assign(
        &self,
        ops: &KubeNodeOps,
        snapshot: &mut KubeSnapshot,
    ) -> Result<(), ProviderError>;
}

pub struct GroupedNodeOps<G> {
    inner: Arc<KubeNodeOps>,
    grouping: G,
}

impl<G: NodeGrouping> GroupedNodeOps<G> {
    pub fn new(inner: Arc<KubeNodeOps>, grouping: G) -> Self {
        GroupedNodeOps { inner, grouping }
    }
}

#[async_trait]
impl<G: NodeGrouping> NodeOps for GroupedNodeOps<G> {
    async fn snapshot(&self) -> Result<KubeSnapshot, ProviderError> {
        let mut s = self.inner.read_snapshot().await?;
        self.grouping.assign(&self.inner, &mut s).await?;
        Ok(s)
    }

    async fn scan(&self) -> Result<kup_engine::kube::ClusterScan, ProviderError> {
        self.inner.read_scan().await
    }

    async fn workloads(&self) -> Result<Vec<kup_engine::kube::KubeWorkload>, ProviderError> {
        self.inner.read_workloads().await
    }

    async fn smoke_pod(
        &self,
        namespace: &str,
        name: &str,
        image: &str,
        timeout: Duration,
    ) -> Result<Duration, ProviderError> {
        self.inner
            .run_smoke_pod(namespace, name, image, timeout)
            .await
    }

    async fn set_unschedulable(
        &self,
        node: &str,
        unschedulable: bool,
    ) -> Result<(), ProviderError> {
        self.inner.set_unschedulable(node, unschedulable).await
    }

    async fn drain(&self, node: &str, opts: &DrainSpec) -> Result<DrainReport, DrainError> {
        self.inner.drain(node, opts).await
    }

    async fn unavailable_workloads(&self) -> Result<Vec<String>, ProviderError> {
        self.inner.unavailable_workloads().await
    }

    async fn wait_ready(
        &self,
        node_group: &str,
        count: usize,
        minor: Minor,
        timeout: Duration,
    ) -> Result<(), ProviderError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let s = self.snapshot().await?;
            let ready = s
                .nodes_of_group(node_group)
                .filter(|n| n.ready && n.kubelet_version.minor() == minor)
                .count();
            if ready >= count {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ProviderError::new(
                    ErrorKind::Other,
                    format!("only {ready} of {count} nodes of {node_group} are Ready at {minor}"),
                ));
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}
