//! The GKE provider: reads clusters and carries out single actions through
//! `google-cloud-container-v1` (REST/JSON) with Application Default Credentials.
//!
//! * One provider block serves one `project` and `location` (a region or a zone); a
//!   cluster block's `name` is the GKE cluster's name, and a cluster-level `region` is
//!   ignored in favour of the provider's `location`.
//! * Every mutating call returns a GKE Operation; its name is the [`OperationId`] kup
//!   journals, and `operations.get` tracks it.
//! * GKE has no client request token, so a re-sent request cannot be deduplicated by the
//!   server: before issuing, [`GkeProvider::start`] adopts a running operation of the same
//!   type on the same target (the executor also asks [`Provider::find_in_flight`] first),
//!   and GKE's "one operation per cluster" refusal (`FAILED_PRECONDITION` naming the
//!   running operation) is a [`ErrorKind::Conflict`] the executor waits out.
//! * Versions are sent exact: the planner resolves a control-plane target to a version
//!   GKE offers, and a node pool's target minor is resolved here to the master's version
//!   or the newest valid node version of that minor.
//! * kup-driven blue/green: `CreateNodeGroup` is nodePools.create with the blue pool's
//!   configuration at the exact target version, `DeleteNodeGroup` is nodePools.delete
//!   (GKE ignores PDBs when deleting a pool, so the executor drains it first).
//! * Add-ons: GKE manages its own, so refresh reports none and `UpdateAddon` is refused.

mod convert;
mod errors;
pub mod token;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use google_cloud_auth::credentials::{self as gauth, AccessTokenCredentials};
use google_cloud_container_v1::client::ClusterManager;
use google_cloud_container_v1::model::node_pool::UpgradeSettings;
use google_cloud_container_v1::model::{
    Cluster, ClusterUpdate, NodePool, NodePoolUpdateStrategy, Operation, ServerConfig,
};
use google_cloud_gax::options::RequestOptionsBuilder;
use google_cloud_gax::retry_policy::{Aip194Strict, RetryPolicyExt};
use kup_engine::model::{ActualCluster, ProviderSpec};
use kup_engine::plan::Action;
use kup_engine::policy::ProviderPolicy;
use kup_engine::Version;
use tokio::sync::OnceCell;

use crate::kube::KubeNodeOps;
use crate::{
    ClusterTarget, ErrorKind, KubeAccess, NodeOps, OperationId, OperationStatus, Provider,
    ProviderError,
};
use errors::{map_error, ErrCtx, CREDENTIALS_HELP};

/// The label GKE puts on every node of a node pool.
pub const GKE_NODEPOOL_LABEL: &str = "cloud.google.com/gke-nodepool";

/// One HTTP attempt's limit unless the provider block sets `request_timeout`.
const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// How often to poll a running operation when the provider block does not say.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(15);

/// Attempts per call inside the Google client before the error reaches the executor.
const SDK_ATTEMPTS: u32 = 3;

/// The bearer token sent to a simulated cluster's Kubernetes API (it checks none).
const SIMULATED_KUBE_TOKEN: &str = "kup-simulated-gke-token";

/// kup's provider for Google Kubernetes Engine.
pub struct GkeProvider {
    client: ClusterManager,
    /// The provider block's `requests_per_second`, when it has one.
    limit: Option<crate::rate::RateLimit>,
    project: String,
    location: String,
    simulated: bool,
    poll_interval: Duration,
    /// ADC access tokens for the Kubernetes API (`None` against the simulator).
    tokens: Option<AccessTokenCredentials>,
    /// getServerConfig: the same for every cluster of this location, fetched once.
    server_config: OnceCell<Arc<ServerConfig>>,
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
                    "gke provider: `{attr}` is required; set `{attr} = \"{example}\"` in the \
                     provider \"gke\" block"
                ),
            )
        })
}

impl GkeProvider {
    /// Build the provider for a `provider "gke"` block. `endpoint_override` (kup's
    /// in-process simulator) wins over `spec.endpoint`; with `simulate` or an override the
    /// client runs on anonymous credentials, otherwise on Application Default Credentials.
    pub async fn new(
        spec: &ProviderSpec,
        endpoint_override: Option<&str>,
    ) -> Result<GkeProvider, ProviderError> {
        let project = required(&spec.project, "project", "my-project")?;
        let location = required(&spec.location, "location", "europe-west1")?;
        let simulated = spec.simulate || endpoint_override.is_some();
        let endpoint = endpoint_override.or(spec.endpoint.as_deref());
        if let Some(e) = endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(ProviderError::new(
                    ErrorKind::Other,
                    format!(
                        "gke provider: endpoint `{e}` is not a URL; write it as \
                         \"https://host[:port]\" (or \"http://127.0.0.1:PORT\" for a local simulator)"
                    ),
                ));
            }
        }
        let (credentials, tokens) = if simulated {
            (gauth::anonymous::Builder::new().build(), None)
        } else {
            let atc = gauth::Builder::default()
                .with_scopes([token::CLOUD_PLATFORM_SCOPE])
                .build_access_token_credentials()
                .map_err(|e| {
                    ProviderError::new(
                        ErrorKind::Auth,
                        format!(
                            "cannot load Google Cloud Application Default Credentials for the \
                             gke provider: {e}; {CREDENTIALS_HELP}"
                        ),
                    )
                    .with_code("CredentialsError")
                })?;
            (gauth::Credentials::from(atc.clone()), Some(atc))
        };
        // A few quick retries inside the client (Google's AIP-194 rules: UNAVAILABLE and
        // connection failures); longer waits are the executor's, which reports each retry.
        // Under a rate limit every attempt must pass the limiter, so the executor (which
        // calls through it) does the retrying.
        let attempts = if spec.requests_per_second.is_some() {
            1
        } else {
            SDK_ATTEMPTS
        };
        let mut builder = ClusterManager::builder()
            .with_credentials(credentials)
            .with_retry_policy(Aip194Strict.with_attempt_limit(attempts))
            // Without a limit an answer that never comes would hold the apply forever.
            .with_attempt_timeout(spec.request_timeout.unwrap_or(DEFAULT_ATTEMPT_TIMEOUT));
        if let Some(e) = endpoint {
            builder = builder.with_endpoint(e);
        }
        let client = builder.build().await.map_err(|e| {
            ProviderError::new(
                ErrorKind::Other,
                format!("gke provider: cannot build the GKE API client: {e}"),
            )
        })?;
        Ok(GkeProvider {
            client,
            limit: spec.requests_per_second.map(crate::rate::RateLimit::new),
            project,
            location,
            simulated,
            poll_interval: spec.poll_interval.unwrap_or(DEFAULT_POLL_INTERVAL),
            tokens,
            server_config: OnceCell::new(),
        })
    }

    /// The GKE client, once this request's turn under `requests_per_second` has come.
    async fn api(&self) -> &ClusterManager {
        if let Some(limit) = &self.limit {
            limit.acquire().await;
        }
        &self.client
    }

    fn ctx(&self, cluster: &str) -> ErrCtx {
        ErrCtx::new(&self.project, &self.location, cluster)
    }

    fn cluster_name(&self, cluster: &str) -> String {
        convert::cluster_name(&self.project, &self.location, cluster)
    }

    fn node_pool_name(&self, cluster: &str, pool: &str) -> String {
        format!("{}/nodePools/{pool}", self.cluster_name(cluster))
    }

    fn parent(&self) -> String {
        format!("projects/{}/locations/{}", self.project, self.location)
    }

    // -----------------------------------------------------------------------------------
    // Reads
    // -----------------------------------------------------------------------------------

    async fn get_cluster(&self, cluster: &str, ctx: &ErrCtx) -> Result<Cluster, ProviderError> {
        self.api()
            .await
            .get_cluster()
            .set_name(self.cluster_name(cluster))
            .send()
            .await
            .map_err(|e| map_error(e, ctx))
    }

    async fn get_node_pool(
        &self,
        cluster: &str,
        pool: &str,
        ctx: &ErrCtx,
    ) -> Result<NodePool, ProviderError> {
        self.api()
            .await
            .get_node_pool()
            .set_name(self.node_pool_name(cluster, pool))
            .send()
            .await
            .map_err(|e| map_error(e, ctx))
    }

    async fn fetch_server_config(&self, ctx: &ErrCtx) -> Result<ServerConfig, ProviderError> {
        self.api()
            .await
            .get_server_config()
            .set_name(self.parent())
            .send()
            .await
            .map_err(|e| map_error(e, ctx))
    }

    async fn cached_server_config(&self, ctx: &ErrCtx) -> Result<Arc<ServerConfig>, ProviderError> {
        self.server_config
            .get_or_try_init(|| async { self.fetch_server_config(ctx).await.map(Arc::new) })
            .await
            .cloned()
    }

    async fn operations(&self, ctx: &ErrCtx) -> Result<Vec<Operation>, ProviderError> {
        self.api()
            .await
            .list_operations()
            .set_parent(self.parent())
            .send()
            .await
            .map(|r| r.operations)
            .map_err(|e| map_error(e, ctx))
    }

    fn parse_master_version(&self, c: &Cluster, ctx: &ErrCtx) -> Result<Version, ProviderError> {
        c.current_master_version.parse::<Version>().map_err(|e| {
            ProviderError::new(
                ErrorKind::Other,
                format!(
                    "GKE reported master version `{}`, which kup cannot read ({}): {e}",
                    c.current_master_version,
                    ctx.describe()
                ),
            )
        })
    }

    // -----------------------------------------------------------------------------------
    // Writes
    // -----------------------------------------------------------------------------------

    async fn issue(
        &self,
        cluster: &str,
        action: &Action,
        ctx: &ErrCtx,
    ) -> Result<Operation, ProviderError> {
        match action {
            // clusters.update rather than updateMaster: only ClusterUpdate carries an etag,
            // so a change made since the cluster was read is a stale plan (ABORTED), not
            // something kup overwrites. Every mutation goes out with idempotency off: the
            // client would resend a PUT whose answer was lost with the same etag, which
            // its own first attempt has just made stale; the executor's resend asks the
            // cluster and the running operations first.
            Action::UpgradeControlPlane { to, .. } => {
                let c = self.get_cluster(cluster, ctx).await?;
                self.api()
                    .await
                    .update_cluster()
                    .set_name(self.cluster_name(cluster))
                    .set_update(
                        ClusterUpdate::new()
                            .set_desired_master_version(to.to_string())
                            .set_etag(c.etag.clone()),
                    )
                    .with_idempotency(false)
                    .send()
                    .await
                    .map_err(|e| map_error(e, ctx))
            }
            Action::UpgradeNodeGroup { node_group, to, .. } => {
                let (c, sc) = tokio::try_join!(
                    self.get_cluster(cluster, ctx),
                    self.fetch_server_config(ctx)
                )?;
                let version = convert::resolve_node_version(
                    to,
                    &c.current_master_version,
                    &sc.valid_node_versions,
                )
                .map_err(|m| {
                    ProviderError::new(ErrorKind::Invalid, format!("{m} [{}]", ctx.describe()))
                })?;
                // The pool's etag as just read: a change made in between makes GKE answer
                // ABORTED (a stale plan) instead of kup overwriting it.
                let etag = c
                    .node_pools
                    .iter()
                    .find(|p| p.name == *node_group)
                    .map(|p| p.etag.clone())
                    .unwrap_or_default();
                self.api()
                    .await
                    .update_node_pool()
                    .set_name(self.node_pool_name(cluster, node_group))
                    .set_node_version(version)
                    .set_etag(etag)
                    .with_idempotency(false)
                    .send()
                    .await
                    .map_err(|e| map_error(e, ctx))
            }
            Action::UpdateNodeGroupConfig {
                node_group,
                max_unavailable,
                max_surge,
                blue_green,
                drain_limits,
                ..
            } => {
                let np = self.get_node_pool(cluster, node_group, ctx).await?;
                let settings = match blue_green {
                    // BLUE_GREEN with the configured batches and soaks; surge numbers kept.
                    Some(bg) => convert::blue_green_settings(np.upgrade_settings.as_ref(), bg),
                    // SURGE with the configured maxUnavailable; maxSurge stays as GKE has
                    // it, and nodeVersion (required) is the pool's own.
                    None => {
                        let count =
                            convert::max_unavailable_count(*max_unavailable).map_err(|m| {
                                ProviderError::new(
                                    ErrorKind::Invalid,
                                    format!("{m} [{}]", ctx.describe()),
                                )
                            })?;
                        let settings = np
                            .upgrade_settings
                            .clone()
                            .unwrap_or_else(UpgradeSettings::new)
                            .set_strategy(NodePoolUpdateStrategy::Surge)
                            .set_max_unavailable(count);
                        match max_surge {
                            Some(s) => settings.set_max_surge(
                                convert::max_unavailable_count(*s).map_err(|m| {
                                    ProviderError::new(
                                        ErrorKind::Invalid,
                                        format!("max_surge: {m} [{}]", ctx.describe()),
                                    )
                                })?,
                            ),
                            None => settings,
                        }
                    }
                };
                let mut request = self
                    .api()
                    .await
                    .update_node_pool()
                    .set_name(self.node_pool_name(cluster, node_group))
                    .set_node_version(np.version.clone())
                    .set_upgrade_settings(settings);
                if let Some(limits) = drain_limits {
                    request = request.set_node_drain_config(convert::node_drain_config(limits));
                }
                request
                    // Read-modify-write: only with the etag that was read.
                    .set_etag(np.etag.clone())
                    .with_idempotency(false)
                    .send()
                    .await
                    .map_err(|e| map_error(e, ctx))
            }
            Action::UpdateAddon { addon, .. } => Err(ProviderError::new(
                ErrorKind::Invalid,
                format!(
                    "add-on `{addon}`: GKE manages its own add-ons with the control plane; \
                     remove the `addon` block from GKE clusters"
                ),
            )),
            Action::CreateNodeGroup {
                node_group,
                clone_of,
                version,
            } => {
                let blue_ctx = self.ctx(cluster).node_pool(clone_of);
                let (c, sc, blue) = tokio::try_join!(
                    self.get_cluster(cluster, ctx),
                    self.fetch_server_config(ctx),
                    self.get_node_pool(cluster, clone_of, &blue_ctx),
                )?;
                let exact = convert::resolve_node_version(
                    version,
                    &c.current_master_version,
                    &sc.valid_node_versions,
                )
                .map_err(|m| {
                    ProviderError::new(ErrorKind::Invalid, format!("{m} [{}]", ctx.describe()))
                })?;
                self.api()
                    .await
                    .create_node_pool()
                    .set_parent(self.cluster_name(cluster))
                    .set_node_pool(convert::clone_pool(&blue, node_group, &exact))
                    .with_idempotency(false)
                    .send()
                    .await
                    .map_err(|e| map_error(e, ctx))
            }
            // GKE does not respect PodDisruptionBudgets when it deletes a pool; the
            // executor drains the pool through NodeOps before this step.
            Action::DeleteNodeGroup { node_group } => self
                .api()
                .await
                .delete_node_pool()
                .set_name(self.node_pool_name(cluster, node_group))
                .with_idempotency(false)
                .send()
                .await
                .map_err(|e| map_error(e, ctx)),
            // respectPdb: the green nodes are drained through PodDisruptionBudgets, so
            // going back never costs more availability than going forward would have.
            Action::RollbackNodeGroupUpgrade { node_group } => self
                .api()
                .await
                .rollback_node_pool_upgrade()
                .set_name(self.node_pool_name(cluster, node_group))
                .set_respect_pdb(true)
                .with_idempotency(false)
                .send()
                .await
                .map_err(|e| map_error(e, ctx)),
            Action::WaitNodesReady { .. }
            | Action::CordonNodeGroup { .. }
            | Action::DrainNodeGroup { .. }
            | Action::Soak { .. } => Err(in_cluster(action)),
            Action::RemoveUpgradePlans
            | Action::PrecheckHosts
            | Action::RunHook { .. }
            | Action::PostFlight { .. }
            | Action::WaveGate { .. } => Err(crate::no_upgrade_plans("gke")),
        }
    }
}

/// The error for an action kup performs in the cluster, not through GKE.
fn in_cluster(action: &Action) -> ProviderError {
    ProviderError::new(
        ErrorKind::Invalid,
        format!(
            "`{}` runs inside the cluster through kup's node operations (NodeOps), not \
             through the gke provider",
            action.describe()
        ),
    )
}

fn node_pool_of(action: &Action) -> Option<&str> {
    match action {
        Action::UpgradeControlPlane { .. }
        | Action::UpdateAddon { .. }
        | Action::RemoveUpgradePlans
        | Action::PrecheckHosts
        | Action::RunHook { .. }
        | Action::PostFlight { .. }
        | Action::WaveGate { .. } => None,
        Action::UpdateNodeGroupConfig { node_group, .. }
        | Action::UpgradeNodeGroup { node_group, .. }
        | Action::RollbackNodeGroupUpgrade { node_group }
        | Action::CreateNodeGroup { node_group, .. }
        | Action::DeleteNodeGroup { node_group }
        | Action::WaitNodesReady { node_group, .. }
        | Action::CordonNodeGroup { node_group, .. }
        | Action::DrainNodeGroup { node_group, .. }
        | Action::Soak { node_group, .. } => Some(node_group),
    }
}

#[async_trait]
impl Provider for GkeProvider {
    fn kind(&self) -> &str {
        "gke"
    }

    fn policy(&self) -> ProviderPolicy {
        ProviderPolicy {
            bundled_addons: None,
            host_prechecks: false,
            rounds: false,
            upgrade_plans: false,
            // Two minors. PRIOR-ART §5.7 lists GKE's node-pool skew bound as unverified;
            // GKE's own docs have long said node pools may be at most two minors older than
            // the control plane, and kup's simulator refuses a master upgrade that would
            // leave a pool three behind (FAILED_PRECONDITION). The stricter bound costs at
            // most an earlier node-pool rollout; a looser one would have GKE refuse the
            // master upgrade in the middle of an apply.
            max_kubelet_skew: Some(2),
            nodes_must_match_before_control_plane_upgrade: false,
            // GKE offers exact patches (`1.30.5-gke.1014001`), and clusters.update takes one.
            control_plane_minor_only: false,
            // GKE manages its own add-ons along with the control plane.
            addons_track_control_plane: false,
            // SURGE upgrades create the surge node before draining an old one.
            surges_before_drain: true,
            supports_max_surge: true,
            // maxUnavailable = 0 is valid as long as maxSurge > 0 (GKE's default 1/0).
            min_max_unavailable: 0,
            // kup-driven blue/green (`native = false`): nodePools.create and .delete.
            supports_blue_green: true,
            // GKE's own BLUE_GREEN node-pool upgrade, with completeUpgrade and rollback.
            native_blue_green: true,
            // GKE drains surge and blue-green nodes itself, within the pool's
            // nodeDrainConfig (PDB timeout, grace termination).
            drain_limits: true,
            drain_grace_limit: true,
            // A GKE master upgrade takes tens of minutes; a surge batch a few.
            control_plane_upgrade_estimate: Duration::from_secs(15 * 60),
            node_batch_estimate: Duration::from_secs(5 * 60),
            addon_update_estimate: Duration::from_secs(60),
            config_update_estimate: Duration::from_secs(60),
            compact_group_names: false,
            node_soak: false,
            duration_unit_secs: 0,
            max_node_soak: None,
        }
    }

    fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    async fn list_clusters(&self) -> Result<Vec<String>, ProviderError> {
        let ctx = self.ctx("*");
        let resp = self
            .api()
            .await
            .list_clusters()
            .set_parent(self.parent())
            .send()
            .await
            .map_err(|e| map_error(e, &ctx))?;
        let mut names: Vec<String> = resp.clusters.into_iter().map(|c| c.name).collect();
        names.sort();
        Ok(names)
    }

    async fn refresh(&self, target: &ClusterTarget) -> Result<ActualCluster, ProviderError> {
        let name = target.name.as_str();
        let ctx = self.ctx(name);
        let (cluster, sc, ops) = tokio::try_join!(
            self.get_cluster(name, &ctx),
            self.cached_server_config(&ctx),
            self.operations(&ctx),
        )?;
        let version = self.parse_master_version(&cluster, &ctx)?;
        let mut node_groups = cluster
            .node_pools
            .iter()
            .map(convert::node_group)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| {
                ProviderError::new(ErrorKind::Other, format!("{m} ({})", ctx.describe()))
            })?;
        node_groups.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(ActualCluster {
            scan: None,
            insights: Vec::new(),
            upgrade_protection: None,
            support: Vec::new(),
            api_uses: Vec::new(),
            upgrade_plans: Vec::new(),
            name: if cluster.name.is_empty() {
                name.to_string()
            } else {
                cluster.name.clone()
            },
            region: Some(self.location.clone()),
            version,
            platform_version: None,
            status: convert::cluster_status(&cluster),
            offered_versions: convert::parse_versions(&sc.valid_master_versions),
            node_groups,
            addons: vec![],
            in_flight: convert::in_flight(&ops, name),
            kube: None,
            auto_upgrade: convert::auto_upgrade(&cluster, &sc.channels),
            default_version: convert::default_version(&cluster, &sc),
            maintenance: convert::maintenance(&cluster),
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
        let mut ctx = self.ctx(&target.name);
        if let Some(np) = node_pool_of(action) {
            ctx = ctx.node_pool(np);
        }
        if let Action::UpdateNodeGroupConfig {
            max_unavailable,
            blue_green: None,
            ..
        } = action
        {
            convert::max_unavailable_count(*max_unavailable).map_err(|m| {
                ProviderError::new(ErrorKind::Invalid, format!("{m} [{}]", ctx.describe()))
            })?;
        }
        // No request token at GKE: a running operation of this kind on this target (an
        // earlier, interrupted attempt) is the one to wait for.
        if !convert::op_types_for(action).is_empty() {
            if let Some(op) = self.find_in_flight(target, action).await? {
                return Ok(op);
            }
        }
        let op = self.issue(&target.name, action, &ctx).await?;
        if op.name.is_empty() {
            return Err(ProviderError::new(
                ErrorKind::Other,
                format!(
                    "GKE accepted `{}` but returned no operation name ({})",
                    action.describe(),
                    ctx.describe()
                ),
            ));
        }
        Ok(OperationId(convert::op_id(&op)))
    }

    async fn find_in_flight(
        &self,
        target: &ClusterTarget,
        action: &Action,
    ) -> Result<Option<OperationId>, ProviderError> {
        if convert::op_types_for(action).is_empty() {
            return Ok(None);
        }
        let ops = self.operations(&self.ctx(&target.name)).await?;
        Ok(convert::find_matching(&ops, &target.name, action)
            .map(|o| OperationId(convert::op_id(o))))
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
        let ctx = self.ctx(&target.name);
        let o = self
            .api()
            .await
            .get_operation()
            .set_name(convert::operation_name(
                &self.project,
                &self.location,
                &op.0,
            ))
            .send()
            .await
            .map_err(|e| map_error(e, &ctx))?;
        let status = convert::operation_status(&o);
        match (action, status) {
            // A blue-green upgrade: the pool's phase says whether it only soaks now.
            (
                Action::UpgradeNodeGroup {
                    node_group,
                    native: Some(_),
                    ..
                },
                OperationStatus::InProgress(_),
            ) => {
                let pool_ctx = ctx.clone().node_pool(node_group);
                let np = self
                    .get_node_pool(&target.name, node_group, &pool_ctx)
                    .await?;
                Ok(OperationStatus::InProgress(convert::progress(
                    &o,
                    Some(&np),
                )))
            }
            // Rolling back a running blue-green upgrade ends that upgrade's operation
            // ABORTED. ABORTED also means other things (a stale etag, a clash), so it
            // counts as success only when the pool has really left its blue-green upgrade.
            (
                Action::RollbackNodeGroupUpgrade { node_group },
                OperationStatus::Failed { code, message },
            ) if code == "ABORTED" => {
                let pool_ctx = ctx.clone().node_pool(node_group);
                let np = self
                    .get_node_pool(&target.name, node_group, &pool_ctx)
                    .await?;
                let upgrading = convert::node_group(&np)
                    .map(|g| g.upgrade_phase.is_some())
                    .unwrap_or(true);
                Ok(if upgrading {
                    OperationStatus::Failed { code, message }
                } else {
                    OperationStatus::Succeeded
                })
            }
            (_, status) => Ok(status),
        }
    }

    async fn complete_upgrade(
        &self,
        target: &ClusterTarget,
        action: &Action,
    ) -> Result<(), ProviderError> {
        let Action::UpgradeNodeGroup { node_group, .. } = action else {
            return Err(ProviderError::new(
                ErrorKind::Invalid,
                format!("`{}` is not a node-pool upgrade", action.describe()),
            ));
        };
        let ctx = self.ctx(&target.name).node_pool(node_group);
        self.api()
            .await
            .complete_node_pool_upgrade()
            .set_name(self.node_pool_name(&target.name, node_group))
            .with_idempotency(false)
            .send()
            .await
            .map_err(|e| map_error(e, &ctx))?;
        Ok(())
    }

    /// The cluster's `kubeconfig`/`context` when the configuration names one; otherwise
    /// the cluster's endpoint and CA from clusters.get with an access token of this
    /// provider's Application Default Credentials (what `gke-gcloud-auth-plugin` gives
    /// kubectl), so no kubeconfig is needed.
    async fn node_ops(
        &self,
        target: &ClusterTarget,
        access: &KubeAccess,
    ) -> Result<Option<Arc<dyn NodeOps>>, ProviderError> {
        if let Some(ops) = KubeNodeOps::from_access(access, GKE_NODEPOOL_LABEL).await? {
            return Ok(Some(Arc::new(ops)));
        }
        let ctx = self.ctx(&target.name);
        let cluster = self.get_cluster(&target.name, &ctx).await?;
        if cluster.endpoint.trim().is_empty() {
            return Err(ProviderError::new(
                ErrorKind::Other,
                format!(
                    "GKE reports no Kubernetes API endpoint (status {}) ({}); set \
                     `kubeconfig`/`context` in the cluster block to reach it another way",
                    convert::cluster_status(&cluster),
                    ctx.describe()
                ),
            ));
        }
        let url = convert::kube_url(&cluster.endpoint, self.simulated);
        // The CA only matters over TLS (the simulator's placeholder CA is not a real one).
        let ca = cluster
            .master_auth
            .as_ref()
            .map(|a| a.cluster_ca_certificate.as_str())
            .filter(|c| !c.trim().is_empty() && url.starts_with("https://"));
        let ops = match (&self.tokens, self.simulated) {
            (Some(credentials), false) => {
                let source = Arc::new(token::GkeTokenSource {
                    credentials: credentials.clone(),
                    cluster: target.name.clone(),
                });
                KubeNodeOps::from_token_source(
                    &url,
                    ca,
                    source,
                    GKE_NODEPOOL_LABEL,
                    &Default::default(),
                )
                .await?
            }
            _ => {
                KubeNodeOps::from_endpoint(
                    &url,
                    ca,
                    SIMULATED_KUBE_TOKEN.to_string(),
                    GKE_NODEPOOL_LABEL,
                )
                .await?
            }
        };
        Ok(Some(Arc::new(ops)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kup_engine::model::Unavailable;

    pub(crate) fn spec() -> ProviderSpec {
        ProviderSpec {
            requests_per_second: None,
            request_timeout: None,
            operation_timeout: None,
            tls: Default::default(),
            channel_server: None,
            versions: Vec::new(),
            kind: "gke".into(),
            alias: None,
            region: None,
            profile: None,
            project: Some("proj".into()),
            location: Some("europe-west1".into()),
            endpoint: Some("http://127.0.0.1:1".into()),
            simulate: true,
            world: None,
            speed: None,
            poll_interval: None,
            origin: None,
            api_version: None,
            resource_group: None,
            subscription_id: None,
        }
    }

    fn target() -> ClusterTarget {
        ClusterTarget {
            name: "prod".into(),
            region: Some("ignored".into()),
        }
    }

    #[tokio::test]
    async fn project_and_location_are_required() {
        let mut s = spec();
        s.project = None;
        let err = GkeProvider::new(&s, None).await.err().unwrap();
        assert!(
            err.message.contains("`project` is required"),
            "{}",
            err.message
        );
        let mut s = spec();
        s.location = Some("  ".into());
        let err = GkeProvider::new(&s, None).await.err().unwrap();
        assert!(
            err.message.contains("`location` is required"),
            "{}",
            err.message
        );
        let mut s = spec();
        s.endpoint = Some("127.0.0.1:8080".into());
        let err = GkeProvider::new(&s, None).await.err().unwrap();
        assert!(err.message.contains("http://"), "{}", err.message);
    }

    #[tokio::test]
    async fn policy_and_poll_interval() {
        let p = GkeProvider::new(&spec(), None).await.unwrap();
        assert_eq!(p.kind(), "gke");
        let pol = p.policy();
        assert!(!pol.control_plane_minor_only);
        assert!(!pol.addons_track_control_plane);
        assert!(pol.surges_before_drain);
        assert!(pol.supports_max_surge);
        assert_eq!(pol.min_max_unavailable, 0);
        assert_eq!(pol.max_kubelet_skew, Some(2));
        assert_eq!(pol.control_plane_upgrade_estimate, Duration::from_secs(900));
        assert_eq!(p.poll_interval(), DEFAULT_POLL_INTERVAL);
        assert_eq!(
            p.cluster_name("c"),
            "projects/proj/locations/europe-west1/clusters/c"
        );
    }

    #[tokio::test]
    async fn unreachable_endpoint_is_transient() {
        let p = GkeProvider::new(&spec(), None).await.unwrap();
        let err = p.refresh(&target()).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Transient, "{err:?}");
    }

    #[tokio::test]
    async fn unsupported_actions_are_invalid_without_a_call() {
        let p = GkeProvider::new(&spec(), None).await.unwrap();
        let soak = Action::Soak {
            node_group: "a".into(),
            secs: 1,
        };
        let err = p.start(&target(), &soak, "t").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
        assert!(err.message.contains("NodeOps"));
        assert_eq!(p.find_in_flight(&target(), &soak).await.unwrap(), None);
        let addon = Action::UpdateAddon {
            addon: "coredns".into(),
            from: "a".into(),
            to: "b".into(),
        };
        let err = p.start(&target(), &addon, "t").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
        // Percentages are refused before GKE is asked (the endpoint is unreachable, so a
        // call would be Transient).
        let cfg = Action::UpdateNodeGroupConfig {
            node_group: "a".into(),
            from: None,
            max_unavailable: Unavailable::Percent(25),
            blue_green: None,
            drain_limits: None,
            max_surge: None,
            node_soak: None,
        };
        let err = p.start(&target(), &cfg, "t").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid, "{err:?}");
        assert!(err.message.contains("25%"), "{}", err.message);
    }
}
