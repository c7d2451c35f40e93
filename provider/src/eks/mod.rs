//! The EKS provider: reads clusters and carries out single actions through `aws-sdk-eks`.
//!
//! Every mutating call carries the step's idempotency token as `clientRequestToken`, so a
//! resumed apply that re-sends a request gets the same update back instead of a second
//! one. Updates are tracked with `DescribeUpdate` (EKS has no waiter for them) and found
//! again after a crash with `ListUpdates`.

mod config;
mod convert;
mod errors;
pub mod token;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_eks::operation::create_nodegroup::CreateNodegroupInput;
use aws_sdk_eks::types::{
    Nodegroup, NodegroupStatus, NodegroupUpdateConfig, ResolveConflicts, Update,
};
use aws_sdk_eks::Client;
use futures::future::try_join_all;
use futures::stream::{self, StreamExt, TryStreamExt};
use kup_engine::model::{
    ActualAddon, ActualCluster, ActualNodeGroup, AddonCompatibility, InFlightOperation,
    ProviderSpec, Unavailable,
};
use kup_engine::plan::Action;
use kup_engine::policy::ProviderPolicy;
use kup_engine::{Minor, Version};
use tokio::sync::OnceCell;

use crate::kube::{KubeNodeOps, EKS_NODEGROUP_LABEL};
use crate::{
    ClusterTarget, ErrorKind, KubeAccess, NodeOps, OperationId, OperationStatus, Provider,
    ProviderError,
};
use errors::{map_sdk_error, ErrCtx};

/// How often to poll a running update when the provider block does not say.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(15);

/// Region used against the simulator when nothing else names one.
const SIMULATOR_DEFAULT_REGION: &str = "us-east-1";

/// How many DescribeUpdate calls one resource's update history may have in flight at once.
const DESCRIBE_UPDATE_CONCURRENCY: usize = 8;

type Compat = Arc<BTreeMap<Minor, AddonCompatibility>>;

/// Values fetched at most once per key, even when many refreshes ask at the same time
/// (failures are not remembered, so the next caller tries again).
struct Memo<K, V>(Mutex<HashMap<K, Arc<OnceCell<V>>>>);

impl<K: std::hash::Hash + Eq, V> Memo<K, V> {
    fn new() -> Self {
        Memo(Mutex::new(HashMap::new()))
    }
    fn cell(&self, key: K) -> Arc<OnceCell<V>> {
        self.0
            .lock()
            .expect("cache poisoned")
            .entry(key)
            .or_default()
            .clone()
    }
}

/// The versions EKS offers in a region, and the one it marks default.
type OfferedVersions = (
    Vec<Version>,
    Option<Version>,
    Vec<kup_engine::preflight::SupportDates>,
);

/// kup's provider for Amazon EKS.
pub struct EksProvider {
    sdk: aws_config::SdkConfig,
    spec_region: Option<String>,
    simulated: bool,
    poll_interval: Duration,
    /// The provider block's TLS settings, for the Kubernetes clients built for its clusters.
    tls: kup_engine::model::TlsSettings,
    /// One client per region (a provider block may serve clusters in several regions).
    clients: Mutex<HashMap<String, Client>>,
    /// DescribeClusterVersions per region: the same for every cluster, fetched once.
    /// Per region: the versions EKS offers, and its default for new clusters.
    offered: Memo<String, Arc<OfferedVersions>>,
    /// DescribeAddonVersions per (region, add-on): the same for every cluster, fetched once.
    addon_catalog: Memo<(String, String), Compat>,
}

/// Which update history a ListUpdates/DescribeUpdate call is about.
#[derive(Clone, Copy, Debug)]
enum Scope<'a> {
    Cluster,
    NodeGroup(&'a str),
    Addon(&'a str),
}

impl Scope<'_> {
    fn resource(&self) -> String {
        match self {
            Scope::Cluster => "control_plane".into(),
            Scope::NodeGroup(n) => format!("node_group.{n}"),
            Scope::Addon(a) => format!("addon.{a}"),
        }
    }
    fn ctx(&self, cluster: &str, region: &str) -> ErrCtx {
        let c = ErrCtx::cluster(cluster, region);
        match self {
            Scope::Cluster => c,
            Scope::NodeGroup(n) => c.node_group(n),
            Scope::Addon(a) => c.addon(a),
        }
    }
    fn of(action: &Action) -> Scope<'_> {
        match action {
            Action::UpgradeControlPlane { .. }
            | Action::RemoveUpgradePlans
            | Action::PrecheckHosts
            | Action::RunHook { .. }
            | Action::PostFlight { .. }
            | Action::WaveGate { .. } => Scope::Cluster,
            Action::UpdateNodeGroupConfig { node_group, .. }
            | Action::UpgradeNodeGroup { node_group, .. }
            | Action::RollbackNodeGroupUpgrade { node_group } => Scope::NodeGroup(node_group),
            Action::UpdateAddon { addon, .. } => Scope::Addon(addon),
            Action::CreateNodeGroup { node_group, .. }
            | Action::DeleteNodeGroup { node_group }
            | Action::WaitNodesReady { node_group, .. }
            | Action::CordonNodeGroup { node_group, .. }
            | Action::DrainNodeGroup { node_group, .. }
            | Action::Soak { node_group, .. } => Scope::NodeGroup(node_group),
        }
    }
}

impl EksProvider {
    /// Build the provider for a `provider "eks"` block. `endpoint_override` (kup's
    /// in-process simulator) wins over `spec.endpoint`; either one, with `simulate` or an
    /// override, runs on static dummy credentials.
    pub async fn new(
        spec: &ProviderSpec,
        endpoint_override: Option<&str>,
    ) -> Result<EksProvider, ProviderError> {
        let simulated = spec.simulate || endpoint_override.is_some();
        let endpoint = endpoint_override.or(spec.endpoint.as_deref());
        if let Some(e) = endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(ProviderError::new(
                    ErrorKind::Other,
                    format!(
                        "eks provider: endpoint `{e}` is not a URL; write it as \
                         \"https://host[:port]\" (or \"http://127.0.0.1:PORT\" for a local simulator)"
                    ),
                ));
            }
        }
        let sdk = config::load(spec, endpoint, simulated).await?;
        Ok(EksProvider {
            sdk,
            spec_region: spec.region.clone(),
            simulated,
            poll_interval: spec.poll_interval.unwrap_or(DEFAULT_POLL_INTERVAL),
            tls: spec.tls.clone(),
            clients: Mutex::new(HashMap::new()),
            offered: Memo::new(),
            addon_catalog: Memo::new(),
        })
    }

    /// The region for `cluster`: the cluster's own (an override), the provider block's,
    /// the credential chain's (AWS_REGION, profile), and against the simulator a default.
    fn region_for(&self, cluster: &ClusterTarget) -> Result<String, ProviderError> {
        cluster
            .region
            .clone()
            .or_else(|| self.spec_region.clone())
            .or_else(|| self.sdk.region().map(|r| r.to_string()))
            .or_else(|| self.simulated.then(|| SIMULATOR_DEFAULT_REGION.to_string()))
            .ok_or_else(|| {
                ProviderError::new(
                    ErrorKind::Other,
                    format!(
                        "no AWS region for EKS cluster `{}`: set `region = \"...\"` in the \
                         provider \"eks\" block or the cluster block, or set AWS_REGION \
                         (or a region in your AWS profile)",
                        cluster.name
                    ),
                )
            })
    }

    /// The endpoint requests for `region` go to, for messages.
    fn endpoint_url(&self, region: &str) -> String {
        self.sdk
            .endpoint_url()
            .map(str::to_string)
            .unwrap_or_else(|| format!("https://eks.{region}.amazonaws.com"))
    }

    fn client(&self, cluster: &ClusterTarget) -> Result<(Client, String), ProviderError> {
        let region = self.region_for(cluster)?;
        let mut clients = self.clients.lock().expect("client cache poisoned");
        let client = clients
            .entry(region.clone())
            .or_insert_with(|| config::client(&self.sdk, &region))
            .clone();
        Ok((client, region))
    }

    // -----------------------------------------------------------------------------------
    // Reads
    // -----------------------------------------------------------------------------------

    async fn offered_versions(
        &self,
        c: &Client,
        region: &str,
        ctx: &ErrCtx,
    ) -> Result<Arc<OfferedVersions>, ProviderError> {
        let cell = self.offered.cell(region.to_string());
        cell.get_or_try_init(|| async {
            let infos = c
                .describe_cluster_versions()
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| map_sdk_error(e, ctx))?;
            Ok(Arc::new((
                convert::offered_versions(&infos),
                convert::default_version(&infos),
                convert::support_dates(&infos),
            )))
        })
        .await
        .cloned()
    }

    /// The cluster's upgrade-readiness insights; the failing ones described in full
    /// (recommendation, deprecated API calls and their clients). A principal without
    /// eks:ListInsights gets one UNKNOWN insight saying so rather than a failed refresh.
    async fn insights(
        &self,
        c: &Client,
        cluster: &str,
        ctx: &ErrCtx,
    ) -> Result<Vec<kup_engine::preflight::Insight>, ProviderError> {
        use aws_sdk_eks::types::{Category, InsightStatusValue, InsightsFilter};
        let summaries: Result<Vec<_>, _> = c
            .list_insights()
            .cluster_name(cluster)
            .filter(
                InsightsFilter::builder()
                    .categories(Category::UpgradeReadiness)
                    .build(),
            )
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await;
        let summaries = match summaries.map_err(|e| map_sdk_error(e, ctx)) {
            Ok(s) => s,
            Err(e) if matches!(e.kind, ErrorKind::Auth | ErrorKind::Invalid) => {
                return Ok(vec![kup_engine::preflight::Insight {
                    id: "-".into(),
                    name: "EKS upgrade insights".into(),
                    category: "UPGRADE_READINESS".into(),
                    minor: None,
                    status: "UNKNOWN".into(),
                    reason: format!("cannot be read: {e}"),
                    recommendation:
                        "allow eks:ListInsights and eks:DescribeInsight to see them in the plan"
                            .into(),
                    details: Vec::new(),
                }])
            }
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for s in summaries {
            let failing = s
                .insight_status()
                .and_then(|st| st.status())
                .is_some_and(|st| *st != InsightStatusValue::Passing);
            let full = match (failing, s.id()) {
                (true, Some(id)) => match c
                    .describe_insight()
                    .cluster_name(cluster)
                    .id(id)
                    .send()
                    .await
                    .map_err(|e| map_sdk_error(e, ctx))
                {
                    Ok(out) => out.insight,
                    // Without eks:DescribeInsight the summary is still worth showing.
                    Err(e) if matches!(e.kind, ErrorKind::Auth | ErrorKind::Invalid) => None,
                    Err(e) => return Err(e),
                },
                _ => None,
            };
            out.push(convert::insight(&s, full.as_ref()));
        }
        out.sort_by(|a, b| (&a.minor, &a.name, &a.id).cmp(&(&b.minor, &b.name, &b.id)));
        Ok(out)
    }

    async fn addon_compatibility(
        &self,
        c: &Client,
        region: &str,
        name: &str,
        ctx: &ErrCtx,
    ) -> Result<Compat, ProviderError> {
        let cell = self
            .addon_catalog
            .cell((region.to_string(), name.to_string()));
        cell.get_or_try_init(|| async {
            let infos = c
                .describe_addon_versions()
                .addon_name(name)
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| map_sdk_error(e, ctx))?;
            Ok(Arc::new(convert::addon_compatibility(name, &infos)))
        })
        .await
        .cloned()
    }

    async fn list_update_ids(
        &self,
        c: &Client,
        cluster: &str,
        scope: Scope<'_>,
        ctx: &ErrCtx,
    ) -> Result<Vec<String>, ProviderError> {
        let mut req = c.list_updates().name(cluster);
        match scope {
            Scope::Cluster => {}
            Scope::NodeGroup(n) => req = req.nodegroup_name(n),
            Scope::Addon(a) => req = req.addon_name(a),
        }
        req.into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| map_sdk_error(e, ctx))
    }

    async fn describe_update(
        &self,
        c: &Client,
        cluster: &str,
        scope: Scope<'_>,
        id: &str,
        ctx: &ErrCtx,
    ) -> Result<Update, ProviderError> {
        let mut req = c.describe_update().name(cluster).update_id(id);
        match scope {
            Scope::Cluster => {}
            Scope::NodeGroup(n) => req = req.nodegroup_name(n),
            Scope::Addon(a) => req = req.addon_name(a),
        }
        let out = req.send().await.map_err(|e| map_sdk_error(e, ctx))?;
        out.update.ok_or_else(|| {
            ProviderError::new(
                ErrorKind::Other,
                format!("EKS returned no update for id {id} ({})", ctx.describe()),
            )
        })
    }

    /// Every InProgress update of one resource.
    async fn running_updates(
        &self,
        c: &Client,
        cluster: &str,
        scope: Scope<'_>,
        ctx: &ErrCtx,
    ) -> Result<Vec<Update>, ProviderError> {
        let ids = self.list_update_ids(c, cluster, scope, ctx).await?;
        let updates: Vec<Update> = stream::iter(ids)
            .map(|id| async move { self.describe_update(c, cluster, scope, &id, ctx).await })
            .buffered(DESCRIBE_UPDATE_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(updates
            .into_iter()
            .filter(convert::is_in_progress)
            .collect())
    }

    async fn in_flight(
        &self,
        c: &Client,
        cluster: &str,
        scope: Scope<'_>,
        ctx: &ErrCtx,
    ) -> Result<Vec<InFlightOperation>, ProviderError> {
        let resource = scope.resource();
        Ok(self
            .running_updates(c, cluster, scope, ctx)
            .await?
            .iter()
            .filter_map(|u| convert::in_flight(&resource, u))
            .collect())
    }

    async fn refresh_node_group(
        &self,
        c: &Client,
        cluster: &str,
        region: &str,
        name: &str,
    ) -> Result<(ActualNodeGroup, Vec<InFlightOperation>), ProviderError> {
        let scope = Scope::NodeGroup(name);
        let ctx = scope.ctx(cluster, region);
        let describe = async {
            c.describe_nodegroup()
                .cluster_name(cluster)
                .nodegroup_name(name)
                .send()
                .await
                .map_err(|e| map_sdk_error(e, &ctx))
        };
        let (out, in_flight) = tokio::try_join!(describe, self.in_flight(c, cluster, scope, &ctx))?;
        let ng = out.nodegroup.ok_or_else(|| {
            ProviderError::new(
                ErrorKind::Other,
                format!(
                    "DescribeNodegroup returned no node group ({})",
                    ctx.describe()
                ),
            )
        })?;
        let version = parse_version(ng.version(), "node group version", &ctx)?;
        let scaling = ng.scaling_config();
        let size = |v: Option<i32>| v.unwrap_or(0).max(0) as u32;
        let max_unavailable = ng.update_config().and_then(|u| {
            u.max_unavailable()
                .map(|n| Unavailable::Count(n.max(0) as u32))
                .or_else(|| {
                    u.max_unavailable_percentage()
                        .map(|p| Unavailable::Percent(p.max(0) as u32))
                })
        });
        let health_issues = ng
            .health()
            .map(|h| {
                h.issues()
                    .iter()
                    .map(|i| {
                        format!(
                            "{}: {}",
                            i.code().map(|c| c.as_str()).unwrap_or("Unknown"),
                            i.message().unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let labels = ng
            .labels()
            .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        Ok((
            ActualNodeGroup {
                control_plane: false,
                name: ng.nodegroup_name().unwrap_or(name).to_string(),
                version,
                release_version: ng.release_version().map(str::to_string),
                status: ng
                    .status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|| "UNKNOWN".into()),
                desired_size: size(scaling.and_then(|s| s.desired_size())),
                min_size: size(scaling.and_then(|s| s.min_size())),
                max_size: size(scaling.and_then(|s| s.max_size())),
                max_unavailable,
                health_issues,
                labels,
                blue_green: None,
                upgrade_phase: None,
                drain_limits: None,
                max_surge: None,
                node_soak: None,
            },
            in_flight,
        ))
    }

    async fn refresh_addon(
        &self,
        c: &Client,
        cluster: &str,
        region: &str,
        name: &str,
    ) -> Result<(ActualAddon, Vec<InFlightOperation>), ProviderError> {
        let scope = Scope::Addon(name);
        let ctx = scope.ctx(cluster, region);
        let describe = async {
            c.describe_addon()
                .cluster_name(cluster)
                .addon_name(name)
                .send()
                .await
                .map_err(|e| map_sdk_error(e, &ctx))
        };
        let (out, compat, in_flight) = tokio::try_join!(
            describe,
            self.addon_compatibility(c, region, name, &ctx),
            self.in_flight(c, cluster, scope, &ctx)
        )?;
        let addon = out.addon.ok_or_else(|| {
            ProviderError::new(
                ErrorKind::Other,
                format!("DescribeAddon returned no add-on ({})", ctx.describe()),
            )
        })?;
        Ok((
            ActualAddon {
                name: addon.addon_name().unwrap_or(name).to_string(),
                version: addon.addon_version().unwrap_or_default().to_string(),
                status: addon
                    .status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|| "UNKNOWN".into()),
                compatibility: (*compat).clone(),
            },
            in_flight,
        ))
    }

    // -----------------------------------------------------------------------------------
    // Writes
    // -----------------------------------------------------------------------------------

    async fn issue(
        &self,
        c: &Client,
        cluster: &str,
        action: &Action,
        token: &str,
        ctx: &ErrCtx,
    ) -> Result<Option<Update>, ProviderError> {
        Ok(match action {
            Action::UpgradeControlPlane { to, .. } => {
                c.update_cluster_version()
                    .name(cluster)
                    .version(convert::minor_string(to))
                    .client_request_token(token)
                    .send()
                    .await
                    .map_err(|e| map_sdk_error(e, ctx))?
                    .update
            }
            Action::UpgradeNodeGroup { node_group, to, .. } => {
                c.update_nodegroup_version()
                    .cluster_name(cluster)
                    .nodegroup_name(node_group)
                    .version(convert::minor_string(to))
                    .client_request_token(token)
                    .send()
                    .await
                    .map_err(|e| map_sdk_error(e, ctx))?
                    .update
            }
            Action::UpdateNodeGroupConfig {
                node_group,
                max_unavailable,
                blue_green: None,
                ..
            } => {
                let cfg = match *max_unavailable {
                    Unavailable::Count(n) => {
                        NodegroupUpdateConfig::builder().max_unavailable(to_i32(n))
                    }
                    Unavailable::Percent(p) => {
                        NodegroupUpdateConfig::builder().max_unavailable_percentage(to_i32(p))
                    }
                }
                .build();
                c.update_nodegroup_config()
                    .cluster_name(cluster)
                    .nodegroup_name(node_group)
                    .update_config(cfg)
                    .client_request_token(token)
                    .send()
                    .await
                    .map_err(|e| map_sdk_error(e, ctx))?
                    .update
            }
            Action::UpdateAddon { addon, to, .. } => {
                c.update_addon()
                    .cluster_name(cluster)
                    .addon_name(addon)
                    .addon_version(to)
                    .resolve_conflicts(ResolveConflicts::Preserve)
                    .client_request_token(token)
                    .send()
                    .await
                    .map_err(|e| map_sdk_error(e, ctx))?
                    .update
            }
            Action::CreateNodeGroup { .. } | Action::DeleteNodeGroup { .. } => {
                return Err(ProviderError::new(
                    ErrorKind::Other,
                    format!(
                        "internal error: `{}` is not an EKS update",
                        action.describe()
                    ),
                ))
            }
            // EKS has no blue/green node-group upgrade of its own; the planner never asks.
            Action::UpdateNodeGroupConfig {
                blue_green: Some(_),
                ..
            }
            | Action::RollbackNodeGroupUpgrade { .. } => {
                return Err(ProviderError::new(
                    ErrorKind::Invalid,
                    format!(
                        "`{}`: EKS managed node groups have no native blue/green upgrade; use `native = false` (kup-driven blue/green)",
                        action.describe()
                    ),
                ))
            }
            Action::WaitNodesReady { .. }
            | Action::CordonNodeGroup { .. }
            | Action::DrainNodeGroup { .. }
            | Action::Soak { .. } => return Err(in_cluster(action)),
            Action::RemoveUpgradePlans
            | Action::PrecheckHosts
            | Action::RunHook { .. }
            | Action::PostFlight { .. }
            | Action::WaveGate { .. } => {
                return Err(crate::no_upgrade_plans("eks"))
            }
        })
    }

    // -----------------------------------------------------------------------------------
    // Blue/green: node groups created and deleted whole
    // -----------------------------------------------------------------------------------

    /// DescribeNodegroup, with "not found" as `None`.
    async fn nodegroup(
        &self,
        c: &Client,
        cluster: &str,
        name: &str,
        ctx: &ErrCtx,
    ) -> Result<Option<Nodegroup>, ProviderError> {
        match c
            .describe_nodegroup()
            .cluster_name(cluster)
            .nodegroup_name(name)
            .send()
            .await
        {
            Ok(out) => Ok(out.nodegroup),
            Err(e) => {
                let e = map_sdk_error(e, ctx);
                if e.kind == ErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn send_create(
        &self,
        c: &Client,
        input: CreateNodegroupInput,
        ctx: &ErrCtx,
    ) -> Result<(), ProviderError> {
        c.create_nodegroup()
            .set_cluster_name(input.cluster_name)
            .set_nodegroup_name(input.nodegroup_name)
            .set_scaling_config(input.scaling_config)
            .set_disk_size(input.disk_size)
            .set_subnets(input.subnets)
            .set_instance_types(input.instance_types)
            .set_ami_type(input.ami_type)
            .set_remote_access(input.remote_access)
            .set_node_role(input.node_role)
            .set_labels(input.labels)
            .set_taints(input.taints)
            .set_tags(input.tags)
            .set_client_request_token(input.client_request_token)
            .set_launch_template(input.launch_template)
            .set_update_config(input.update_config)
            .set_node_repair_config(input.node_repair_config)
            .set_capacity_type(input.capacity_type)
            .set_version(input.version)
            .set_release_version(input.release_version)
            .set_warm_pool_config(input.warm_pool_config)
            .send()
            .await
            .map_err(|e| map_sdk_error(e, ctx))?;
        Ok(())
    }

    /// CreateNodegroup cloning `clone_of`; an existing group of that name at the target
    /// minor (created by an earlier, interrupted apply) is the operation itself.
    #[allow(clippy::too_many_arguments)]
    async fn start_create(
        &self,
        c: &Client,
        cluster: &str,
        name: &str,
        clone_of: &str,
        version: &Version,
        token: &str,
        ctx: &ErrCtx,
    ) -> Result<OperationId, ProviderError> {
        let op = OperationId(format!("{}{name}", convert::CREATE_OP));
        if let Some(ng) = self.nodegroup(c, cluster, name, ctx).await? {
            self.check_existing_clone(&ng, name, version, ctx)?;
            return Ok(op);
        }
        let blue = self
            .nodegroup(c, cluster, clone_of, ctx)
            .await?
            .ok_or_else(|| {
                ProviderError::new(
                    ErrorKind::NotFound,
                    format!(
                        "cannot create node group `{name}` as a clone of `{clone_of}`: `{clone_of}` \
                         does not exist ({})",
                        ctx.describe()
                    ),
                )
            })?;
        let input = convert::clone_request(&blue, cluster, name, version, token)
            .map_err(|m| ProviderError::new(ErrorKind::Invalid, m))?;
        match self.send_create(c, input, ctx).await {
            Ok(()) => Ok(op),
            // Created meanwhile (a re-sent request, another kup): the same operation.
            Err(e) if e.kind == ErrorKind::Conflict => {
                match self.nodegroup(c, cluster, name, ctx).await? {
                    Some(ng) => {
                        self.check_existing_clone(&ng, name, version, ctx)?;
                        Ok(op)
                    }
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    fn check_existing_clone(
        &self,
        ng: &Nodegroup,
        name: &str,
        version: &Version,
        ctx: &ErrCtx,
    ) -> Result<(), ProviderError> {
        if matches!(
            ng.status(),
            Some(NodegroupStatus::Deleting | NodegroupStatus::DeleteFailed)
        ) {
            return Err(ProviderError::new(
                ErrorKind::Conflict,
                format!(
                    "node group `{name}` already exists and is {}; wait until it is gone, then \
                     apply again ({})",
                    ng.status().map(|s| s.as_str()).unwrap_or("?"),
                    ctx.describe()
                ),
            ));
        }
        let have = ng.version().and_then(|v| v.parse::<Minor>().ok());
        if have.is_some_and(|m| m != version.minor()) {
            return Err(ProviderError::new(
                ErrorKind::Invalid,
                format!(
                    "node group `{name}` already exists at Kubernetes {}, not {}: kup did not \
                     create it for this upgrade; rename or delete it ({})",
                    ng.version().unwrap_or("?"),
                    version.minor(),
                    ctx.describe()
                ),
            ));
        }
        Ok(())
    }

    async fn start_delete(
        &self,
        c: &Client,
        cluster: &str,
        name: &str,
        ctx: &ErrCtx,
    ) -> Result<OperationId, ProviderError> {
        let op = OperationId(format!("{}{name}", convert::DELETE_OP));
        match c
            .delete_nodegroup()
            .cluster_name(cluster)
            .nodegroup_name(name)
            .send()
            .await
        {
            Ok(_) => Ok(op),
            Err(e) => {
                let e = map_sdk_error(e, ctx);
                match e.kind {
                    // Already gone: an operation that has succeeded.
                    ErrorKind::NotFound => Ok(op),
                    ErrorKind::Conflict => match self.nodegroup(c, cluster, name, ctx).await? {
                        None => Ok(op),
                        Some(ng) if ng.status() == Some(&NodegroupStatus::Deleting) => Ok(op),
                        Some(_) => Err(e),
                    },
                    _ => Err(e),
                }
            }
        }
    }
}

/// The error for an action kup performs in the cluster, not through EKS.
fn in_cluster(action: &Action) -> ProviderError {
    ProviderError::new(
        ErrorKind::Invalid,
        format!(
            "`{}` runs inside the cluster through kup's node operations (NodeOps), not \
             through the eks provider",
            action.describe()
        ),
    )
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn parse_version(v: Option<&str>, what: &str, ctx: &ErrCtx) -> Result<Version, ProviderError> {
    let raw = v.ok_or_else(|| {
        ProviderError::new(
            ErrorKind::Other,
            format!("EKS reported no {what} ({})", ctx.describe()),
        )
    })?;
    raw.parse::<Version>().map_err(|e| {
        ProviderError::new(
            ErrorKind::Other,
            format!(
                "EKS reported {what} `{raw}`, which kup cannot read ({}): {e}",
                ctx.describe()
            ),
        )
    })
}

#[async_trait]
impl Provider for EksProvider {
    fn kind(&self) -> &str {
        "eks"
    }

    fn policy(&self) -> ProviderPolicy {
        ProviderPolicy {
            bundled_addons: None,
            host_prechecks: false,
            rounds: false,
            upgrade_plans: false,
            max_kubelet_skew: None,
            // The EKS user guide lets kubelets ≥ 1.25 trail by three minors; the API
            // reference's stricter "node groups must match" prose is a simulator option.
            nodes_must_match_before_control_plane_upgrade: false,
            control_plane_minor_only: true,
            addons_track_control_plane: true,
            // Managed node group updates launch new nodes before draining old ones.
            surges_before_drain: true,
            // No max_surge setting on managed node groups; maxUnavailable is 1..100.
            supports_max_surge: false,
            min_max_unavailable: 1,
            supports_blue_green: true,
            native_blue_green: false,
            drain_limits: false,
            control_plane_upgrade_estimate: Duration::from_secs(10 * 60),
            node_batch_estimate: Duration::from_secs(5 * 60),
            addon_update_estimate: Duration::from_secs(60),
            config_update_estimate: Duration::from_secs(30),
            compact_group_names: false,
            drain_grace_limit: false,
            node_soak: false,
            duration_unit_secs: 0,
            max_node_soak: None,
        }
    }

    fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    async fn list_clusters(&self) -> Result<Vec<String>, ProviderError> {
        let (c, region) = self.client(&ClusterTarget {
            name: String::new(),
            region: None,
        })?;
        let ctx = ErrCtx::cluster("*", &region).endpoint(self.endpoint_url(&region));
        let mut names: Vec<String> = c
            .list_clusters()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| map_sdk_error(e, &ctx))?;
        names.sort();
        Ok(names)
    }

    async fn refresh(&self, target: &ClusterTarget) -> Result<ActualCluster, ProviderError> {
        let (c, region) = self.client(target)?;
        let name = target.name.as_str();
        let ctx = ErrCtx::cluster(name, &region).endpoint(self.endpoint_url(&region));

        let describe = async {
            c.describe_cluster()
                .name(name)
                .send()
                .await
                .map_err(|e| map_sdk_error(e, &ctx))
        };
        let node_groups = async {
            c.list_nodegroups()
                .cluster_name(name)
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| map_sdk_error(e, &ctx))
        };
        let addons = async {
            c.list_addons()
                .cluster_name(name)
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| map_sdk_error(e, &ctx))
        };
        let (out, offered, mut ng_names, mut addon_names, cp_in_flight, insights) = tokio::try_join!(
            describe,
            self.offered_versions(&c, &region, &ctx),
            node_groups,
            addons,
            self.in_flight(&c, name, Scope::Cluster, &ctx),
            self.insights(&c, name, &ctx),
        )?;
        ng_names.sort();
        ng_names.dedup();
        addon_names.sort();
        addon_names.dedup();

        let cluster = out.cluster.ok_or_else(|| {
            ProviderError::new(
                ErrorKind::Other,
                format!("DescribeCluster returned no cluster ({})", ctx.describe()),
            )
        })?;
        let version = parse_version(cluster.version(), "cluster version", &ctx)?;

        let (ngs, adds) = tokio::try_join!(
            try_join_all(
                ng_names
                    .iter()
                    .map(|n| self.refresh_node_group(&c, name, &region, n))
            ),
            try_join_all(
                addon_names
                    .iter()
                    .map(|a| self.refresh_addon(&c, name, &region, a))
            ),
        )?;

        let mut in_flight = cp_in_flight;
        let mut node_groups = Vec::with_capacity(ngs.len());
        for (ng, f) in ngs {
            node_groups.push(ng);
            in_flight.extend(f);
        }
        let mut addons = Vec::with_capacity(adds.len());
        for (a, f) in adds {
            addons.push(a);
            in_flight.extend(f);
        }
        node_groups.sort_by(|a, b| a.name.cmp(&b.name));
        addons.sort_by(|a, b| a.name.cmp(&b.name));
        in_flight.sort_by(|a, b| (&a.resource, &a.id).cmp(&(&b.resource, &b.id)));

        Ok(ActualCluster {
            scan: None,
            insights,
            upgrade_protection: None,
            support: offered.2.clone(),
            api_uses: Vec::new(),
            upgrade_plans: Vec::new(),
            name: cluster.name().unwrap_or(name).to_string(),
            region: Some(region),
            version,
            platform_version: cluster.platform_version().map(str::to_string),
            status: cluster
                .status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|| "UNKNOWN".into()),
            offered_versions: offered.0.clone(),
            node_groups,
            addons,
            in_flight,
            kube: None,
            auto_upgrade: None,
            default_version: offered.1.clone(),
            maintenance: None,
        })
    }

    async fn start(
        &self,
        target: &ClusterTarget,
        action: &Action,
        token: &str,
    ) -> Result<OperationId, ProviderError> {
        if action.is_in_cluster() {
            return Err(in_cluster(action));
        }
        let (c, region) = self.client(target)?;
        let ctx = Scope::of(action).ctx(&target.name, &region);
        match action {
            Action::CreateNodeGroup {
                node_group,
                clone_of,
                version,
            } => {
                return self
                    .start_create(&c, &target.name, node_group, clone_of, version, token, &ctx)
                    .await
            }
            Action::DeleteNodeGroup { node_group } => {
                return self.start_delete(&c, &target.name, node_group, &ctx).await
            }
            _ => {}
        }
        let update = self.issue(&c, &target.name, action, token, &ctx).await?;
        update.and_then(|u| u.id).map(OperationId).ok_or_else(|| {
            ProviderError::new(
                ErrorKind::Other,
                format!(
                    "EKS accepted `{}` but returned no update id ({})",
                    action.describe(),
                    ctx.describe()
                ),
            )
        })
    }

    async fn find_in_flight(
        &self,
        target: &ClusterTarget,
        action: &Action,
    ) -> Result<Option<OperationId>, ProviderError> {
        if action.is_in_cluster() {
            return Ok(None);
        }
        let (c, region) = self.client(target)?;
        let scope = Scope::of(action);
        let ctx = scope.ctx(&target.name, &region);
        match action {
            Action::CreateNodeGroup { node_group, .. } => {
                let ng = self.nodegroup(&c, &target.name, node_group, &ctx).await?;
                return Ok(ng
                    .filter(|ng| ng.status() == Some(&NodegroupStatus::Creating))
                    .map(|_| OperationId(format!("{}{node_group}", convert::CREATE_OP))));
            }
            Action::DeleteNodeGroup { node_group } => {
                let ng = self.nodegroup(&c, &target.name, node_group, &ctx).await?;
                return Ok(ng
                    .filter(|ng| ng.status() == Some(&NodegroupStatus::Deleting))
                    .map(|_| OperationId(format!("{}{node_group}", convert::DELETE_OP))));
            }
            _ => {}
        }
        let running = self.running_updates(&c, &target.name, scope, &ctx).await?;
        let matching: Vec<Update> = running
            .into_iter()
            .filter(|u| convert::update_matches(u, action))
            .collect();
        Ok(convert::newest(matching)
            .and_then(|u| u.id)
            .map(OperationId))
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
        let (c, region) = self.client(target)?;
        let scope = Scope::of(action);
        let ctx = scope.ctx(&target.name, &region);
        match action {
            Action::CreateNodeGroup { node_group, .. } => {
                let ng = self.nodegroup(&c, &target.name, node_group, &ctx).await?;
                return Ok(convert::nodegroup_create_status(ng.as_ref(), node_group));
            }
            Action::DeleteNodeGroup { node_group } => {
                let ng = self.nodegroup(&c, &target.name, node_group, &ctx).await?;
                return Ok(convert::nodegroup_delete_status(ng.as_ref(), node_group));
            }
            _ => {}
        }
        let u = self
            .describe_update(&c, &target.name, scope, &op.0, &ctx)
            .await?;
        Ok(convert::operation_status(&u))
    }

    /// The cluster's `kubeconfig`/`context` when the configuration names one; otherwise
    /// DescribeCluster's endpoint and CA with an EKS token signed by this provider's AWS
    /// credentials (what `aws eks get-token` makes), so no kubeconfig is needed.
    async fn node_ops(
        &self,
        target: &ClusterTarget,
        access: &KubeAccess,
    ) -> Result<Option<Arc<dyn NodeOps>>, ProviderError> {
        if let Some(ops) = KubeNodeOps::from_access(access, EKS_NODEGROUP_LABEL).await? {
            return Ok(Some(Arc::new(ops)));
        }
        let (c, region) = self.client(target)?;
        let ctx = ErrCtx::cluster(&target.name, &region).endpoint(self.endpoint_url(&region));
        let out = c
            .describe_cluster()
            .name(&target.name)
            .send()
            .await
            .map_err(|e| map_sdk_error(e, &ctx))?;
        let cluster = out.cluster.ok_or_else(|| {
            ProviderError::new(
                ErrorKind::Other,
                format!("DescribeCluster returned no cluster ({})", ctx.describe()),
            )
        })?;
        let endpoint = cluster
            .endpoint()
            .filter(|e| !e.is_empty())
            .ok_or_else(|| {
                ProviderError::new(
                    ErrorKind::Other,
                    format!(
                        "EKS reports no Kubernetes API endpoint (status {}) ({}); set \
                     `kubeconfig`/`context` in the cluster block to reach it another way",
                        cluster.status().map(|s| s.as_str()).unwrap_or("unknown"),
                        ctx.describe()
                    ),
                )
            })?;
        let ca = cluster.certificate_authority().and_then(|a| a.data());
        let credentials = self.sdk.credentials_provider().ok_or_else(|| {
            ProviderError::new(
                ErrorKind::Auth,
                format!(
                    "no AWS credentials to sign a Kubernetes token for {}: {}",
                    ctx.describe(),
                    errors::CREDENTIALS_HELP
                ),
            )
        })?;
        let source = Arc::new(token::EksTokenSource {
            credentials,
            region,
            cluster: target.name.clone(),
        });
        let ops =
            KubeNodeOps::from_token_source(endpoint, ca, source, EKS_NODEGROUP_LABEL, &self.tls)
                .await?;
        Ok(Some(Arc::new(ops)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ProviderSpec {
        ProviderSpec {
            requests_per_second: None,
            request_timeout: None,
            operation_timeout: None,
            tls: Default::default(),
            channel_server: None,
            versions: Vec::new(),
            kind: "eks".into(),
            alias: None,
            region: Some("eu-west-1".into()),
            profile: None,
            project: None,
            location: None,
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

    #[tokio::test]
    async fn policy_and_poll_interval() {
        let p = EksProvider::new(&spec(), None).await.unwrap();
        assert_eq!(p.kind(), "eks");
        let pol = p.policy();
        assert!(pol.control_plane_minor_only);
        assert!(pol.addons_track_control_plane);
        assert!(!pol.nodes_must_match_before_control_plane_upgrade);
        assert_eq!(pol.control_plane_upgrade_estimate, Duration::from_secs(600));
        assert_eq!(pol.node_batch_estimate, Duration::from_secs(300));
        assert_eq!(pol.addon_update_estimate, Duration::from_secs(60));
        assert_eq!(pol.config_update_estimate, Duration::from_secs(30));
        assert_eq!(p.poll_interval(), DEFAULT_POLL_INTERVAL);
        let mut s = spec();
        s.poll_interval = Some(Duration::from_secs(2));
        let p = EksProvider::new(&s, None).await.unwrap();
        assert_eq!(p.poll_interval(), Duration::from_secs(2));
    }

    #[tokio::test]
    async fn cluster_region_overrides_provider_region() {
        let p = EksProvider::new(&spec(), None).await.unwrap();
        let t = |r: Option<&str>| ClusterTarget {
            name: "c".into(),
            region: r.map(str::to_string),
        };
        assert_eq!(p.region_for(&t(None)).unwrap(), "eu-west-1");
        assert_eq!(p.region_for(&t(Some("us-west-2"))).unwrap(), "us-west-2");
    }

    #[tokio::test]
    async fn bad_endpoint_is_rejected() {
        let mut s = spec();
        s.endpoint = Some("127.0.0.1:8080".into());
        let err = EksProvider::new(&s, None).await.err().unwrap();
        assert_eq!(err.kind, ErrorKind::Other);
        assert!(err.message.contains("http://"));
    }

    #[tokio::test]
    async fn unreachable_endpoint_is_transient() {
        // Port 1 on loopback refuses connections: a dispatch failure, worth retrying.
        let mut s = spec();
        s.poll_interval = None;
        let p = EksProvider::new(&s, None).await.unwrap();
        let err = p
            .refresh(&ClusterTarget {
                name: "c".into(),
                region: None,
            })
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Transient, "{err:?}");
    }
}
