//! The AKS provider: Azure Resource Manager's managedClusters and agentPools APIs through
//! a small typed client ([`arm`]) with `azure_identity` credentials ([`auth`]).
//!
//! * One provider block serves one `subscription_id` and `resource_group`; a cluster
//!   block's `name` is the managed cluster's name.
//! * The control plane moves alone: kup PUTs the cluster as it read it with only
//!   `kubernetesVersion` changed (every pool's `orchestratorVersion` as it was), which is
//!   what `az aks upgrade --control-plane-only` does. Pools then move one by one through
//!   their own PUT, with `upgradeSettings` (maxSurge, maxUnavailable, drain timeout).
//! * Every PUT carries the resource's eTag (`If-Match`): a change made since kup read it
//!   is a stale plan (412), not something kup overwrites.
//! * Long-running operations are followed through `Azure-AsyncOperation` (else
//!   `Location`), honouring `Retry-After`; the URL is what kup journals. ARM has no
//!   request tokens and lists no operations, so a change found running (provisioning
//!   state `Upgrading`, …) is followed through the resource itself instead of being
//!   issued again.
//! * A pool upgrade stopped by its drain timeout fails with AKS's message (naming the
//!   node and the pods or PodDisruptionBudget that blocked it); the next `kup apply`
//!   PUTs the pool again, which resumes the stopped upgrade, as AKS documents.
//! * kup-driven blue/green: the green pool is a clone of the blue one (size, zones,
//!   labels, taints, mode, max pods, OS SKU, …) at the target version, named compactly
//!   (`systemv131`) because AKS pool names are at most 12 letters and digits; a System
//!   pool's green clone is a System pool too, so deleting blue never leaves none.

mod arm;
mod auth;
mod convert;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use kup_engine::model::{ActualCluster, ProviderSpec};
use kup_engine::plan::Action;
use kup_engine::policy::ProviderPolicy;
use kup_engine::Version;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::kube::KubeNodeOps;
use crate::{
    ClusterTarget, ErrorKind, KubeAccess, NodeOps, OperationId, OperationStatus, Provider,
    ProviderError,
};
use arm::{ArmClient, ArmResponse, FixedToken, TokenSource};
pub use convert::AGENT_POOL_LABEL;
use convert::{AgentPool, AsyncOperation, KubernetesVersionList, ManagedCluster};

/// The stable api-version kup speaks by default (the newest in the reference specs).
pub const DEFAULT_API_VERSION: &str = "2026-10-01";

/// How often to poll a running operation when the provider block does not say.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(15);

/// The bearer token kup sends to its simulator (which checks only that one is present).
const SIMULATED_TOKEN: &str = "kup-simulated-aks-token";

pub struct AksProvider {
    arm: ArmClient,
    subscription: String,
    resource_group: String,
    poll_interval: Duration,
    /// The provider block's TLS settings, for the Kubernetes clients built for its clusters.
    tls: kup_engine::model::TlsSettings,
    /// kubernetesVersions per location: the same for every cluster there, read once.
    versions: Mutex<HashMap<String, Arc<KubernetesVersionList>>>,
}

fn required(value: &Option<String>, attr: &str, example: &str) -> Result<String, ProviderError> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            ProviderError::new(
                ErrorKind::Other,
                format!(
                    "aks provider: `{attr}` is required; set `{attr} = \"{example}\"` in the \
                     provider \"aks\" block"
                ),
            )
        })
}

impl AksProvider {
    /// Build the provider for a `provider "aks"` block. `endpoint_override` (kup's
    /// in-process simulator) wins over `spec.endpoint`; with `simulate` or an override a
    /// fixed token is sent, otherwise one from the Azure credential chain.
    pub async fn new(
        spec: &ProviderSpec,
        endpoint_override: Option<&str>,
    ) -> Result<AksProvider, ProviderError> {
        let subscription = required(
            &spec.subscription_id,
            "subscription_id",
            "00000000-0000-0000-0000-000000000000",
        )?;
        let resource_group = required(&spec.resource_group, "resource_group", "rg-prod")?;
        let simulated = spec.simulate || endpoint_override.is_some();
        let base = endpoint_override
            .or(spec.endpoint.as_deref())
            .unwrap_or(arm::ARM_ENDPOINT);
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ProviderError::new(
                ErrorKind::Other,
                format!(
                    "aks provider: endpoint `{base}` is not a URL; write it as \
                     \"https://host[:port]\" (or \"http://127.0.0.1:PORT\" for a local simulator)"
                ),
            ));
        }
        let tokens: Arc<dyn TokenSource> = if simulated {
            Arc::new(FixedToken(SIMULATED_TOKEN.into()))
        } else {
            Arc::new(auth::AzureTokens::from_environment()?)
        };
        let api_version = spec
            .api_version
            .clone()
            .unwrap_or_else(|| DEFAULT_API_VERSION.to_string());
        Ok(AksProvider {
            arm: ArmClient::new(base, &api_version, tokens, &spec.tls)?
                .with_rate_limit(spec.requests_per_second)
                .with_attempt_timeout(spec.request_timeout),
            subscription,
            resource_group,
            poll_interval: spec.poll_interval.unwrap_or(DEFAULT_POLL_INTERVAL),
            tls: spec.tls.clone(),
            versions: Mutex::new(HashMap::new()),
        })
    }

    fn cluster_path(&self, cluster: &str) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ContainerService/managedClusters/{cluster}",
            self.subscription, self.resource_group
        )
    }

    fn pool_path(&self, cluster: &str, pool: &str) -> String {
        format!("{}/agentPools/{pool}", self.cluster_path(cluster))
    }

    /// "AKS cluster `c` (agent pool `p`) in resource group `rg`, subscription `s`".
    fn describe(&self, cluster: &str, pool: Option<&str>) -> String {
        format!(
            "AKS cluster `{cluster}`{} in resource group `{}`, subscription `{}`",
            pool.map(|p| format!(" (agent pool `{p}`)"))
                .unwrap_or_default(),
            self.resource_group,
            self.subscription
        )
    }

    async fn get_typed<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        what: &str,
    ) -> Result<(T, ArmResponse), ProviderError> {
        let resp = self.arm.get(path, what).await?;
        let typed = serde_json::from_value(resp.body.clone()).map_err(|e| {
            ProviderError::new(
                ErrorKind::Other,
                format!("{what}: Azure's answer does not have the expected shape: {e}"),
            )
        })?;
        Ok((typed, resp))
    }

    async fn cluster(&self, cluster: &str) -> Result<(ManagedCluster, ArmResponse), ProviderError> {
        self.get_typed(&self.cluster_path(cluster), &self.describe(cluster, None))
            .await
    }

    async fn pools(&self, cluster: &str) -> Result<Vec<AgentPool>, ProviderError> {
        let what = self.describe(cluster, None);
        let mut next = Some(format!("{}/agentPools", self.cluster_path(cluster)));
        let mut pools: Vec<AgentPool> = Vec::new();
        // ARM pages lists: follow nextLink until there is none.
        while let Some(page) = next.take() {
            let resp = self.arm.get(&page, &what).await?;
            for v in resp.body["value"].as_array().into_iter().flatten() {
                pools.push(serde_json::from_value(v.clone()).map_err(|e| {
                    ProviderError::new(
                        ErrorKind::Other,
                        format!("{what}: an agent pool does not have the expected shape: {e}"),
                    )
                })?);
            }
            next = resp.body["nextLink"]
                .as_str()
                .filter(|l| !l.is_empty())
                .map(str::to_string);
        }
        pools.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(pools)
    }

    async fn versions(&self, location: &str) -> Result<Arc<KubernetesVersionList>, ProviderError> {
        let mut cache = self.versions.lock().await;
        if let Some(v) = cache.get(location) {
            return Ok(v.clone());
        }
        let path = format!(
            "/subscriptions/{}/providers/Microsoft.ContainerService/locations/{location}/kubernetesVersions",
            self.subscription
        );
        let (list, _) = self
            .get_typed::<KubernetesVersionList>(
                &path,
                &format!(
                    "AKS versions in {location} (subscription `{}`)",
                    self.subscription
                ),
            )
            .await?;
        let list = Arc::new(list);
        cache.insert(location.to_string(), list.clone());
        Ok(list)
    }

    fn etag(resp: &ArmResponse, body_etag: Option<&str>) -> Option<String> {
        body_etag.map(str::to_string).or_else(|| {
            resp.headers
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(|s| s.trim_matches('"').to_string())
        })
    }

    /// The exact version a pool should be sent for `to`.
    async fn exact_pool_version(
        &self,
        cluster: &str,
        to: &Version,
    ) -> Result<String, ProviderError> {
        let (c, _) = self.cluster(cluster).await?;
        let cp_raw = if c.properties.current_kubernetes_version.is_empty() {
            &c.properties.kubernetes_version
        } else {
            &c.properties.current_kubernetes_version
        };
        let cp: Version = cp_raw.parse().map_err(|e| {
            ProviderError::new(
                ErrorKind::Other,
                format!(
                    "{}: control plane version `{cp_raw}`: {e}",
                    self.describe(cluster, None)
                ),
            )
        })?;
        let offered = convert::offered_versions(&*self.versions(&c.location).await?);
        Ok(convert::pool_version(to, &cp, &offered))
    }

    /// The operation to follow after a mutating call: the async-operation URL (journaled
    /// relative to the endpoint), or the resource's own state when ARM gave none.
    fn operation_of(&self, resp: &ArmResponse, resource_path: &str) -> OperationId {
        match resp.operation_url() {
            Some((url, false)) => OperationId(self.arm.journal_form(&url)),
            Some((url, true)) => OperationId(format!(
                "{}{}",
                convert::LOCATION_PREFIX,
                self.arm.journal_form(&url)
            )),
            None => OperationId(convert::state_op_id(resource_path)),
        }
    }

    async fn issue(&self, cluster: &str, action: &Action) -> Result<OperationId, ProviderError> {
        match action {
            Action::UpgradeControlPlane { to, .. } => {
                let path = self.cluster_path(cluster);
                let what = self.describe(cluster, None);
                let resp = self.arm.get(&path, &what).await?;
                let etag = Self::etag(&resp, resp.body["eTag"].as_str());
                let mut body = resp.body;
                convert::strip_cluster(&mut body);
                // Only the control plane's version changes; every pool's
                // orchestratorVersion stays as read, so AKS leaves the pools alone.
                body["properties"]["kubernetesVersion"] = Value::String(to.to_string());
                let r = self.arm.put(&path, &body, etag.as_deref(), &what).await?;
                Ok(self.operation_of(&r, &path))
            }
            Action::UpgradeNodeGroup { node_group, to, .. } => {
                let exact = self.exact_pool_version(cluster, to).await?;
                let path = self.pool_path(cluster, node_group);
                let what = self.describe(cluster, Some(node_group));
                let resp = self.arm.get(&path, &what).await?;
                let etag = Self::etag(&resp, resp.body["properties"]["eTag"].as_str());
                let mut body = resp.body;
                convert::strip_pool(&mut body["properties"]);
                body["properties"]["orchestratorVersion"] = Value::String(exact);
                let r = self.arm.put(&path, &body, etag.as_deref(), &what).await?;
                Ok(self.operation_of(&r, &path))
            }
            Action::UpdateNodeGroupConfig {
                node_group,
                max_unavailable,
                max_surge,
                blue_green,
                drain_limits,
                node_soak,
                ..
            } => {
                let what = self.describe(cluster, Some(node_group));
                if let Some(d) = node_soak {
                    // nodeSoakDurationInMinutes: whole minutes, 0 to 30.
                    if d.as_secs() > 30 * 60 || d.as_secs() % 60 != 0 {
                        return Err(ProviderError::new(
                            ErrorKind::Invalid,
                            format!(
                                "{what}: node_soak = \"{}\" cannot be sent to AKS, which takes whole minutes from 0 to 30 (nodeSoakDurationInMinutes)",
                                humantime::format_duration(*d)
                            ),
                        ));
                    }
                }
                if blue_green.is_some() {
                    return Err(ProviderError::new(
                        ErrorKind::Invalid,
                        format!("{what}: AKS has no native blue/green upgrade in a stable api-version; use `native = false`"),
                    ));
                }
                let path = self.pool_path(cluster, node_group);
                let resp = self.arm.get(&path, &what).await?;
                let etag = Self::etag(&resp, resp.body["properties"]["eTag"].as_str());
                let system = resp.body["properties"]["mode"]
                    .as_str()
                    .is_some_and(|m| m.eq_ignore_ascii_case("system"));
                let mut body = resp.body;
                convert::strip_pool(&mut body["properties"]);
                let us = &mut body["properties"]["upgradeSettings"];
                if !us.is_object() {
                    *us = Value::Object(Default::default());
                }
                // AKS refuses maxUnavailable on System pools; they surge only.
                if !system {
                    us["maxUnavailable"] =
                        Value::String(convert::unavailable_string(*max_unavailable));
                }
                if let Some(s) = max_surge {
                    us["maxSurge"] = Value::String(convert::unavailable_string(*s));
                }
                if let Some(d) = node_soak {
                    us["nodeSoakDurationInMinutes"] = Value::from(d.as_secs() / 60);
                }
                if let Some(t) = drain_limits.as_ref().and_then(|l| l.pdb_timeout) {
                    // drainTimeoutInMinutes: whole minutes, 1 to 1440.
                    us["drainTimeoutInMinutes"] =
                        Value::from(t.as_secs().div_ceil(60).clamp(1, 1440));
                }
                let r = self.arm.put(&path, &body, etag.as_deref(), &what).await?;
                Ok(self.operation_of(&r, &path))
            }
            Action::CreateNodeGroup {
                node_group,
                clone_of,
                version,
            } => {
                let exact = self.exact_pool_version(cluster, version).await?;
                let blue_what = self.describe(cluster, Some(clone_of));
                let blue = self
                    .arm
                    .get(&self.pool_path(cluster, clone_of), &blue_what)
                    .await?;
                let path = self.pool_path(cluster, node_group);
                let body = convert::clone_pool(&blue.body, &exact);
                let r = self
                    .arm
                    .put(
                        &path,
                        &body,
                        None,
                        &self.describe(cluster, Some(node_group)),
                    )
                    .await?;
                Ok(self.operation_of(&r, &path))
            }
            // Without ignore-pod-disruption-budget AKS drains through PDBs; kup has
            // drained the pool already, so this only removes empty nodes.
            Action::DeleteNodeGroup { node_group } => {
                let path = self.pool_path(cluster, node_group);
                let r = self
                    .arm
                    .delete(&path, &self.describe(cluster, Some(node_group)))
                    .await?;
                Ok(self.operation_of(&r, &path))
            }
            Action::UpdateAddon { addon, .. } => Err(ProviderError::new(
                ErrorKind::Invalid,
                format!(
                    "add-on `{addon}`: AKS manages its own add-ons with the control plane; \
                     remove the `addon` block from AKS clusters"
                ),
            )),
            Action::RollbackNodeGroupUpgrade { node_group } => Err(ProviderError::new(
                ErrorKind::Invalid,
                format!(
                    "{}: AKS has no rollback of a pool upgrade in a stable api-version",
                    self.describe(cluster, Some(node_group))
                ),
            )),
            Action::WaitNodesReady { .. }
            | Action::CordonNodeGroup { .. }
            | Action::DrainNodeGroup { .. }
            | Action::Soak { .. } => Err(in_cluster(action)),
            Action::RemoveUpgradePlans
            | Action::PrecheckHosts
            | Action::RunHook { .. }
            | Action::PostFlight { .. }
            | Action::WaveGate { .. } => Err(crate::no_upgrade_plans("aks")),
        }
    }

    /// The resource an action changes, and whether its state shows that change running.
    async fn running_for(
        &self,
        cluster: &str,
        action: &Action,
    ) -> Result<Option<OperationId>, ProviderError> {
        let minor_of =
            |v: Option<&str>| v.and_then(|v| v.parse::<Version>().ok()).map(|v| v.minor());
        let (path, state, matches) = match action {
            Action::UpgradeControlPlane { to, .. } => {
                let (c, _) = match self.cluster(cluster).await {
                    Ok(c) => c,
                    Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e),
                };
                let target = minor_of(Some(&c.properties.kubernetes_version));
                (
                    self.cluster_path(cluster),
                    c.properties.provisioning_state.clone(),
                    target == Some(to.minor()),
                )
            }
            Action::UpgradeNodeGroup { node_group, .. }
            | Action::UpdateNodeGroupConfig { node_group, .. }
            | Action::CreateNodeGroup { node_group, .. }
            | Action::DeleteNodeGroup { node_group } => {
                let path = self.pool_path(cluster, node_group);
                let (p, _) = match self
                    .get_typed::<AgentPool>(&path, &self.describe(cluster, Some(node_group)))
                    .await
                {
                    Ok(p) => p,
                    Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e),
                };
                let state = p.properties.provisioning_state.to_ascii_lowercase();
                let matches = match action {
                    Action::UpgradeNodeGroup { to, .. } => {
                        state == "upgrading"
                            && minor_of(p.properties.orchestrator_version.as_deref())
                                == Some(to.minor())
                    }
                    Action::UpdateNodeGroupConfig { .. } => state == "updating",
                    Action::CreateNodeGroup { .. } => state == "creating",
                    _ => state == "deleting",
                };
                (path, p.properties.provisioning_state, matches)
            }
            _ => return Ok(None),
        };
        Ok((matches && !convert::is_terminal(&state))
            .then(|| OperationId(convert::state_op_id(&path))))
    }
}

/// The error for an action kup performs in the cluster, not through AKS.
fn in_cluster(action: &Action) -> ProviderError {
    ProviderError::new(
        ErrorKind::Invalid,
        format!(
            "`{}` runs inside the cluster through kup's node operations (NodeOps), not \
             through the aks provider",
            action.describe()
        ),
    )
}

#[async_trait]
impl Provider for AksProvider {
    fn kind(&self) -> &str {
        "aks"
    }

    fn policy(&self) -> ProviderPolicy {
        ProviderPolicy {
            bundled_addons: None,
            host_prechecks: false,
            rounds: false,
            upgrade_plans: false,
            // The API reference says pools may trail the control plane by two minors
            // (the 2025 docs say three); the stricter reading never has AKS refuse a hop.
            max_kubelet_skew: Some(2),
            nodes_must_match_before_control_plane_upgrade: false,
            // kubernetesVersion takes an exact patch.
            control_plane_minor_only: false,
            addons_track_control_plane: false,
            // maxSurge nodes come up before old ones drain.
            surges_before_drain: true,
            supports_max_surge: true,
            // maxUnavailable 0 is valid with a surge (AKS's default on User pools).
            min_max_unavailable: 0,
            supports_blue_green: true,
            native_blue_green: false,
            // drainTimeoutInMinutes bounds AKS's own drains; there is no grace cap.
            drain_limits: true,
            drain_grace_limit: false,
            compact_group_names: true,
            control_plane_upgrade_estimate: Duration::from_secs(10 * 60),
            node_batch_estimate: Duration::from_secs(5 * 60),
            addon_update_estimate: Duration::from_secs(60),
            config_update_estimate: Duration::from_secs(60),
            node_soak: true,
            max_node_soak: Some(Duration::from_secs(30 * 60)),
            // drainTimeoutInMinutes and nodeSoakDurationInMinutes are whole minutes.
            duration_unit_secs: 60,
        }
    }

    fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    async fn list_clusters(&self) -> Result<Vec<String>, ProviderError> {
        let mut path = format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ContainerService/managedClusters",
            self.subscription, self.resource_group
        );
        let what = format!(
            "the AKS clusters of resource group `{}` (subscription `{}`)",
            self.resource_group, self.subscription
        );
        let mut names = Vec::new();
        // ARM pages with `nextLink` (an absolute URL).
        loop {
            let resp = self.arm.get(&path, &what).await?;
            names.extend(
                resp.body["value"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["name"].as_str().map(str::to_string)),
            );
            match resp.body["nextLink"].as_str() {
                Some(next) if !next.is_empty() => path = next.to_string(),
                _ => break,
            }
        }
        names.sort();
        Ok(names)
    }

    async fn refresh(&self, target: &ClusterTarget) -> Result<ActualCluster, ProviderError> {
        let name = target.name.as_str();
        let ((c, _), pools) = tokio::try_join!(self.cluster(name), self.pools(name))?;
        let versions = self.versions(&c.location).await?;
        let describe = self.describe(name, None);
        let raw = if c.properties.current_kubernetes_version.is_empty() {
            &c.properties.kubernetes_version
        } else {
            &c.properties.current_kubernetes_version
        };
        let version: Version = raw.parse().map_err(|e| {
            ProviderError::new(
                ErrorKind::Other,
                format!("{describe}: AKS reported version `{raw}`, which kup cannot read: {e}"),
            )
        })?;
        let node_groups = pools
            .iter()
            .map(convert::node_group)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| ProviderError::new(ErrorKind::Other, format!("{m} ({describe})")))?;
        Ok(ActualCluster {
            scan: None,
            insights: Vec::new(),
            upgrade_protection: Some(convert::upgrade_protection(&c)),
            support: Vec::new(),
            api_uses: Vec::new(),
            upgrade_plans: Vec::new(),
            name: if c.name.is_empty() {
                name.to_string()
            } else {
                c.name.clone()
            },
            region: Some(c.location.clone()),
            version,
            platform_version: None,
            status: c.properties.provisioning_state.clone(),
            offered_versions: convert::offered_versions(&versions),
            default_version: convert::default_version(&versions),
            node_groups,
            addons: vec![],
            in_flight: convert::in_flight(&self.cluster_path(name), &c, &pools),
            kube: None,
            auto_upgrade: convert::auto_upgrade(&c),
            maintenance: None,
        })
    }

    async fn start(
        &self,
        target: &ClusterTarget,
        action: &Action,
        _token: &str,
    ) -> Result<OperationId, ProviderError> {
        if action.is_in_cluster() {
            return Err(in_cluster(action));
        }
        // No request tokens at ARM: a change of this kind already running on this
        // resource (an earlier, interrupted attempt) is the one to wait for.
        if let Some(op) = self.running_for(&target.name, action).await? {
            return Ok(op);
        }
        match self.issue(&target.name, action).await {
            // A retried PUT whose first attempt went through meets its own eTag change:
            // if the change is running now, that is this step's operation.
            Err(e) if e.code.as_deref() == Some("PreconditionFailed") => {
                match self.running_for(&target.name, action).await? {
                    Some(op) => Ok(op),
                    None => Err(e),
                }
            }
            other => other,
        }
    }

    async fn find_in_flight(
        &self,
        target: &ClusterTarget,
        action: &Action,
    ) -> Result<Option<OperationId>, ProviderError> {
        self.running_for(&target.name, action).await
    }

    async fn poll(
        &self,
        target: &ClusterTarget,
        action: &Action,
        op: &OperationId,
    ) -> Result<OperationStatus, ProviderError> {
        if action.is_in_cluster() {
            return Err(in_cluster(action));
        }
        let what = format!("{} (operation {op})", self.describe(&target.name, None));
        if let Some(path) = op.0.strip_prefix(convert::STATE_PREFIX) {
            return match self.arm.get(path, &what).await {
                Ok(r) => {
                    let state = r.body["properties"]["provisioningState"]
                        .as_str()
                        .unwrap_or("");
                    let err: Option<convert::ArmErrorBody> = serde_json::from_value(
                        r.body["properties"]["status"]["provisioningError"].clone(),
                    )
                    .ok();
                    Ok(convert::state_status(state, err.as_ref()))
                }
                // The pool is gone: that is what deleting it was for.
                Err(e)
                    if e.kind == ErrorKind::NotFound
                        && matches!(action, Action::DeleteNodeGroup { .. }) =>
                {
                    Ok(OperationStatus::Succeeded)
                }
                Err(e) => Err(e),
            };
        }
        if let Some(url) = op.0.strip_prefix(convert::LOCATION_PREFIX) {
            // A Location URL answers 202 while the operation runs, then the result; an
            // operation that failed answers an ARM error (raised by `get`).
            let r = self.arm.get(url, &what).await?;
            return Ok(if r.status == reqwest::StatusCode::ACCEPTED {
                OperationStatus::in_progress()
            } else {
                OperationStatus::Succeeded
            });
        }
        let r = self.arm.get(&op.0, &what).await?;
        let status: AsyncOperation = serde_json::from_value(r.body).map_err(|e| {
            ProviderError::new(
                ErrorKind::Other,
                format!("{what}: the operation status does not have the expected shape: {e}"),
            )
        })?;
        Ok(convert::operation_status(&status))
    }

    /// The cluster's `kubeconfig`/`context` when the configuration names one; otherwise
    /// the cluster user credential AKS hands out (listClusterUserCredential).
    async fn node_ops(
        &self,
        target: &ClusterTarget,
        access: &KubeAccess,
    ) -> Result<Option<Arc<dyn NodeOps>>, ProviderError> {
        if let Some(ops) = KubeNodeOps::from_access(access, AGENT_POOL_LABEL).await? {
            return Ok(Some(Arc::new(ops)));
        }
        let what = self.describe(&target.name, None);
        let r = self
            .arm
            .post(
                &format!(
                    "{}/listClusterUserCredential",
                    self.cluster_path(&target.name)
                ),
                &what,
            )
            .await?;
        let encoded = r.body["kubeconfigs"][0]["value"].as_str().ok_or_else(|| {
            ProviderError::new(
                ErrorKind::Other,
                format!("{what}: listClusterUserCredential returned no kubeconfig; set `kubeconfig` in the cluster block"),
            )
        })?;
        let yaml = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                ProviderError::new(
                    ErrorKind::Other,
                    format!("{what}: the cluster user kubeconfig is not base64-encoded text"),
                )
            })?;
        let ops = KubeNodeOps::from_kubeconfig_yaml(
            &yaml,
            &format!("the cluster user credential of {what}"),
            AGENT_POOL_LABEL,
            &self.tls,
        )
        .await?;
        Ok(Some(Arc::new(ops)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec() -> ProviderSpec {
        ProviderSpec {
            requests_per_second: None,
            request_timeout: None,
            operation_timeout: None,
            tls: Default::default(),
            channel_server: None,
            versions: Vec::new(),
            kind: "aks".into(),
            alias: None,
            region: None,
            profile: None,
            project: None,
            location: None,
            subscription_id: Some("00000000-0000-0000-0000-000000000001".into()),
            resource_group: Some("rg-prod".into()),
            api_version: None,
            endpoint: None,
            simulate: true,
            world: None,
            speed: None,
            poll_interval: None,
            origin: None,
        }
    }

    #[tokio::test]
    async fn subscription_and_resource_group_are_required() {
        let mut s = spec();
        s.subscription_id = None;
        let e = AksProvider::new(&s, Some("http://127.0.0.1:1"))
            .await
            .err()
            .unwrap();
        assert!(
            e.message.contains("`subscription_id` is required"),
            "{}",
            e.message
        );
        let mut s = spec();
        s.resource_group = Some("  ".into());
        let e = AksProvider::new(&s, Some("http://127.0.0.1:1"))
            .await
            .err()
            .unwrap();
        assert!(
            e.message.contains("`resource_group` is required"),
            "{}",
            e.message
        );
        let e = AksProvider::new(&spec(), Some("127.0.0.1:1"))
            .await
            .err()
            .unwrap();
        assert!(e.message.contains("is not a URL"), "{}", e.message);
    }

    #[tokio::test]
    async fn unreachable_endpoint_is_transient_and_names_the_cluster() {
        let p = AksProvider::new(&spec(), Some("http://127.0.0.1:1"))
            .await
            .unwrap();
        let e = p
            .refresh(&ClusterTarget {
                name: "prod".into(),
                region: None,
            })
            .await
            .err()
            .unwrap();
        assert_eq!(e.kind, ErrorKind::Transient);
        assert!(e.message.contains("AKS cluster `prod`"), "{}", e.message);
    }

    #[tokio::test]
    async fn policy_declares_compact_names_and_drain_timeout_only() {
        let p = AksProvider::new(&spec(), Some("http://127.0.0.1:1"))
            .await
            .unwrap();
        let pol = p.policy();
        assert!(pol.compact_group_names && pol.drain_limits && !pol.drain_grace_limit);
        assert!(pol.supports_blue_green && !pol.native_blue_green);
        assert_eq!(pol.max_kubelet_skew, Some(2));
    }
}
