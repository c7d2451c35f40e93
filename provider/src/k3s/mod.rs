//! K3s and RKE2 through Rancher's system-upgrade-controller (SUC): kup writes one `Plan`
//! (`upgrade.cattle.io/v1`) per node group with server-side apply and follows it to
//! completion. There is no cloud API: everything goes through the cluster's Kubernetes API,
//! plus the distribution's release channel server for versions.
//!
//! * **Control plane** = the server nodes (`node-role.kubernetes.io/control-plane=true`): the
//!   control-plane step of every round writes the servers' Plan. Its version is the oldest
//!   server kubelet.
//! * **Node groups** are label selectors over nodes (`servers` and `agents` have defaults);
//!   agent Plans wait for the servers' Plan with the documented `prepare` step.
//! * **Versions**: the planner works in rounds (one minor each, servers then agents, all to
//!   the same exact release). Intermediate releases are the newest patch of each minor from
//!   the channel server's `v1.MINOR` channel, or the provider's `versions` list.
//! * **Operations** are `NAMESPACE/PLAN@RELEASE[#HASH]`: a resumed apply keeps waiting on the
//!   same round, and a hash that changed means someone changed the Plan.
//! * Plans kup did not create (no `app.kubernetes.io/managed-by=kup`) are never written or
//!   deleted; `kup drift` names the ones that would still change nodes.

mod suc;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::Client;
use kup_engine::kube::KubeSnapshot;
use kup_engine::model::{
    ActualCluster, ActualNodeGroup, ClusterSpec, InFlightOperation, NodeGroupSpec, ProviderSpec,
};
use kup_engine::plan::Action;
use kup_engine::version::Version;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::kube::grouped::{GroupedNodeOps, NodeGrouping};
use crate::kube::selector::LabelSelector;
use crate::kube::{kube_err, list_all, retrying, KubeNodeOps};
use crate::{
    ClusterTarget, ErrorKind, KubeAccess, NodeOps, OperationId, OperationStatus, Progress,
    Provider, ProviderError,
};
use kup_engine::policy::ProviderPolicy;
pub use suc::Dist;
use suc::{NodeView, RoundState};

/// Everything the provider needs besides the Kubernetes API.
pub struct K3sProvider {
    dist: Dist,
    simulate: bool,
    channel_server: Option<String>,
    versions: Vec<Version>,
    /// By the cluster's name.
    clusters: BTreeMap<String, ClusterSpec>,
    /// Kubeconfigs the in-process simulator wrote, by cluster name.
    sim_kubeconfigs: BTreeMap<String, PathBuf>,
    conns: Mutex<BTreeMap<String, Arc<KubeNodeOps>>>,
    http: reqwest::Client,
    poll: Duration,
}

fn err(kind: ErrorKind, message: impl Into<String>) -> ProviderError {
    ProviderError::new(kind, message)
}

/// One node group as found in the cluster.
struct Group {
    name: String,
    selector: String,
    control_plane: bool,
    nodes: Vec<NodeView>,
    spec: Option<NodeGroupSpec>,
}

impl K3sProvider {
    pub fn new(
        spec: &ProviderSpec,
        endpoint_override: Option<&str>,
        clusters: &[ClusterSpec],
        sim_kubeconfigs: &BTreeMap<String, PathBuf>,
    ) -> Result<K3sProvider, ProviderError> {
        let dist = match spec.kind.as_str() {
            "rke2" => Dist::Rke2,
            _ => Dist::K3s,
        };
        let mut versions = Vec::new();
        for v in &spec.versions {
            versions.push(v.parse::<Version>().map_err(|e| {
                err(
                    ErrorKind::Invalid,
                    format!("provider `{}`: versions: {e}", spec.key()),
                )
            })?);
        }
        let mut by_name = BTreeMap::new();
        for c in clusters.iter().filter(|c| c.provider == spec.key()) {
            if by_name.insert(c.name.clone(), c.clone()).is_some() {
                return Err(err(
                    ErrorKind::Invalid,
                    format!(
                        "two clusters of provider `{}` are named `{}`; give each its own `name`",
                        spec.key(),
                        c.name
                    ),
                ));
            }
        }
        // Without a simulator the endpoint is the channel server (the only non-Kubernetes
        // API this provider calls).
        let channel_server = spec.channel_server.clone().or_else(|| {
            (!spec.simulate)
                .then(|| spec.endpoint.clone())
                .flatten()
                .or_else(|| {
                    endpoint_override
                        .filter(|_| !spec.simulate)
                        .map(String::from)
                })
        });
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| {
                err(
                    ErrorKind::Other,
                    format!("cannot build an HTTP client: {e}"),
                )
            })?;
        Ok(K3sProvider {
            dist,
            simulate: spec.simulate,
            channel_server,
            versions,
            clusters: by_name,
            sim_kubeconfigs: sim_kubeconfigs.clone(),
            conns: Mutex::new(BTreeMap::new()),
            http,
            poll: spec.poll_interval.unwrap_or(Duration::from_secs(10)),
        })
    }

    fn cluster(&self, name: &str) -> Result<&ClusterSpec, ProviderError> {
        self.clusters.get(name).ok_or_else(|| {
            err(
                ErrorKind::NotFound,
                format!(
                    "cluster `{name}` is not configured for provider `{}`",
                    self.dist.kind()
                ),
            )
        })
    }

    fn namespace<'a>(&self, c: &'a ClusterSpec) -> &'a str {
        c.namespace.as_deref().unwrap_or(suc::DEFAULT_NAMESPACE)
    }

    fn image(&self, c: &ClusterSpec) -> String {
        c.upgrade_image
            .clone()
            .unwrap_or_else(|| self.dist.image().to_string())
    }

    async fn ops(&self, name: &str) -> Result<Arc<KubeNodeOps>, ProviderError> {
        let mut conns = self.conns.lock().await;
        if let Some(o) = conns.get(name) {
            return Ok(o.clone());
        }
        let c = self.cluster(name)?;
        let sim = self
            .sim_kubeconfigs
            .get(name)
            .map(|p| p.display().to_string());
        let path = c.kubeconfig.clone().or(sim);
        let ops = Arc::new(
            KubeNodeOps::from_kubeconfig(path.as_deref(), c.context.as_deref(), suc::CP_ROLE)
                .await?,
        );
        conns.insert(name.to_string(), ops.clone());
        Ok(ops)
    }

    async fn client(&self, name: &str) -> Result<(Client, String), ProviderError> {
        let ops = self.ops(name).await?;
        Ok((ops.client().await?, ops.target().to_string()))
    }

    fn plans(client: &Client, ns: &str) -> Api<DynamicObject> {
        let ar = ApiResource {
            group: suc::GROUP.into(),
            version: "v1".into(),
            api_version: suc::API_VERSION.into(),
            kind: "Plan".into(),
            plural: "plans".into(),
        };
        Api::namespaced_with(client.clone(), ns, &ar)
    }

    async fn nodes(client: &Client, target: &str) -> Result<Vec<NodeView>, ProviderError> {
        let api: Api<Node> = Api::all(client.clone());
        let nodes = list_all(&api, &ListParams::default())
            .await
            .map_err(|e| kube_err(e, &format!("listing nodes on {target}")))?;
        Ok(nodes
            .into_iter()
            .map(|n| {
                let ready = n
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                NodeView {
                    name: n.metadata.name.clone().unwrap_or_default(),
                    labels: n.metadata.labels.clone().unwrap_or_default(),
                    kubelet: n
                        .status
                        .as_ref()
                        .and_then(|s| s.node_info.as_ref())
                        .map(|i| i.kubelet_version.clone())
                        .unwrap_or_default(),
                    ready,
                }
            })
            .collect())
    }

    /// The configured node groups with their nodes, plus the implicit `servers` group when
    /// no configured group holds the control-plane nodes.
    fn groups(&self, c: &ClusterSpec, nodes: &[NodeView]) -> Result<Vec<Group>, ProviderError> {
        let mut out = Vec::new();
        for ng in &c.node_groups {
            let selector = suc::group_selector(ng).map_err(|m| err(ErrorKind::Invalid, m))?;
            let sel = LabelSelector::parse(&selector).map_err(|m| {
                err(
                    ErrorKind::Invalid,
                    format!("node group {}: node_selector: {m}", ng.name),
                )
            })?;
            let members: Vec<NodeView> = nodes
                .iter()
                .filter(|n| sel.matches(&n.labels))
                .cloned()
                .collect();
            let control_plane = !members.is_empty()
                && members
                    .iter()
                    .all(|n| n.labels.get(suc::CP_ROLE).map(String::as_str) == Some("true"));
            out.push(Group {
                name: ng.name.clone(),
                selector,
                control_plane,
                nodes: members,
                spec: Some(ng.clone()),
            });
        }
        let servers: Vec<&NodeView> = nodes
            .iter()
            .filter(|n| n.labels.get(suc::CP_ROLE).map(String::as_str) == Some("true"))
            .collect();
        let cp_groups: Vec<&Group> = out.iter().filter(|g| g.control_plane).collect();
        if cp_groups.len() > 1 {
            return Err(err(
                ErrorKind::Invalid,
                format!(
                    "node groups {} all select control-plane nodes; servers must be one node group (the control plane is upgraded as one)",
                    cp_groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>().join(" and ")
                ),
            ));
        }
        if cp_groups.is_empty() {
            let covered: Vec<&str> = servers
                .iter()
                .filter(|s| out.iter().any(|g| g.nodes.iter().any(|n| n.name == s.name)))
                .map(|s| s.name.as_str())
                .collect();
            if !covered.is_empty() {
                return Err(err(
                    ErrorKind::Invalid,
                    format!(
                        "control-plane nodes {} are selected together with other nodes; give the servers a node group of their own (`node_group \"servers\" {{}}` selects exactly them)",
                        covered.join(", ")
                    ),
                ));
            }
            out.push(Group {
                name: "servers".into(),
                selector: suc::default_server_selector(),
                control_plane: true,
                nodes: servers.into_iter().cloned().collect(),
                spec: None,
            });
        } else if let Some(cp) = cp_groups.first() {
            let missing: Vec<&str> = servers
                .iter()
                .filter(|s| !cp.nodes.iter().any(|n| n.name == s.name))
                .map(|s| s.name.as_str())
                .collect();
            if !missing.is_empty() {
                return Err(err(
                    ErrorKind::Invalid,
                    format!(
                        "node group {} holds the control plane but not the servers {}; every server must move with the control plane (remove its node_selector to select all of them)",
                        cp.name,
                        missing.join(", ")
                    ),
                ));
            }
        }
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for g in &out {
            for n in &g.nodes {
                if let Some(other) = seen.insert(&n.name, &g.name) {
                    return Err(err(
                        ErrorKind::Invalid,
                        format!(
                            "node {} is selected by node groups {other} and {}; a node belongs to one group (narrow their node_selector)",
                            n.name, g.name
                        ),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// The release `channel` (a name or a URL) points to now.
    async fn resolve_channel(&self, base: &str, channel: &str) -> Result<Version, ProviderError> {
        let url = if channel.contains("://") {
            channel.to_string()
        } else {
            format!("{}/{channel}", base.trim_end_matches('/'))
        };
        let hint = format!(
            "set `versions = [\"{}\", ...]` on the provider block to name releases without a channel server",
            self.dist.example()
        );
        let resp = self.http.get(&url).send().await.map_err(|e| {
            err(
                ErrorKind::Transient,
                format!("cannot reach the channel server at {url}: {e}; {hint}"),
            )
        })?;
        let status = resp.status();
        if !status.is_redirection() {
            return Err(err(
                if status.is_server_error() {
                    ErrorKind::Transient
                } else {
                    ErrorKind::NotFound
                },
                format!(
                    "channel server {url} answered {status} instead of a redirect to a release{}",
                    if status.as_u16() == 404 {
                        format!(
                            " (no channel `{}`)",
                            url.rsplit('/').next().unwrap_or(channel)
                        )
                    } else {
                        String::new()
                    }
                ),
            ));
        }
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .unwrap_or("");
        let tag = location
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("");
        let tag = tag.replace("%2B", "+").replace("%2b", "+");
        tag.parse::<Version>()
            .ok()
            .filter(|v| v.patch.is_some())
            .ok_or_else(|| {
                err(
                    ErrorKind::Other,
                    format!(
                        "channel server {url} redirected to {location:?}, which names no release"
                    ),
                )
            })
    }

    async fn channel_base(&self, name: &str) -> Result<String, ProviderError> {
        if let Some(s) = &self.channel_server {
            return Ok(s.clone());
        }
        if self.simulate {
            // The simulator serves the channel server on each cluster's API port.
            let ops = self.ops(name).await?;
            return Ok(format!("{}/v1-release/channels", ops.server_url()));
        }
        Ok(self.dist.channel_server().to_string())
    }

    /// Releases kup may step through: the configured list, else the newest patch of each
    /// minor the upgrade passes (`v1.MINOR` channels), and the configured target itself.
    async fn offered(
        &self,
        c: &ClusterSpec,
        current: &Version,
    ) -> Result<(Vec<Version>, Option<Version>), ProviderError> {
        let base = self.channel_base(&c.name).await?;
        let default = match &c.channel {
            Some(ch) => Some(self.resolve_channel(&base, ch).await?),
            None => None,
        };
        if !self.versions.is_empty() {
            return Ok((self.versions.clone(), default));
        }
        let mut offered = Vec::new();
        let want = match (&default, c.version_alias) {
            (Some(d), _) => d.minor(),
            (None, Some(_)) => current.minor().next(),
            (None, None) => c.version.minor(),
        };
        let mut m = current.minor();
        while m <= want {
            let needed = m > current.minor() && (m < want || c.version.is_minor_alias());
            if needed {
                offered.push(self.resolve_channel(&base, &format!("v{m}")).await?);
            }
            m = m.next();
        }
        if c.version_alias.is_none() && !c.version.is_minor_alias() {
            offered.push(c.version.clone());
        }
        if let Some(d) = &default {
            offered.push(d.clone());
        }
        offered.push(current.clone());
        offered.sort();
        offered.dedup();
        Ok((offered, default))
    }

    async fn list_plans(&self, client: &Client, ns: &str) -> Result<Vec<Value>, ProviderError> {
        let api = Self::plans(client, ns);
        let lp = ListParams::default();
        match retrying(|| api.list(&lp)).await {
            Ok(l) => Ok(l
                .items
                .into_iter()
                .filter_map(|p| serde_json::to_value(p).ok())
                .collect()),
            // No CRD: nothing of kup's can be there.
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(Vec::new()),
            Err(e) => Err(kube_err(e, &format!("listing Plans in namespace {ns}"))),
        }
    }

    /// Checks before writing a Plan: the CRD, the controller, its service account, and
    /// Ready nodes.
    async fn prechecks(
        &self,
        client: &Client,
        ns: &str,
        target: &str,
        group: &Group,
    ) -> Result<(), ProviderError> {
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        match retrying(|| crds.get_opt(suc::CRD)).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(err(
                    ErrorKind::Invalid,
                    format!(
                        "{target} has no CustomResourceDefinition {}: system-upgrade-controller is not installed; {}",
                        suc::CRD,
                        suc::INSTALL_HINT
                    ),
                ))
            }
            Err(e) => return Err(kube_err(e, &format!("reading CRD {} on {target}", suc::CRD))),
        }
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
        let dep = retrying(|| deployments.get_opt(suc::CONTROLLER))
            .await
            .map_err(|e| kube_err(e, &format!("reading Deployment {ns}/{}", suc::CONTROLLER)))?;
        let available = dep
            .as_ref()
            .and_then(|d| d.status.as_ref())
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        if available < 1 {
            return Err(err(
                ErrorKind::Invalid,
                match dep {
                    None => format!(
                        "there is no Deployment {ns}/{} on {target}; {} (or set `namespace` on the cluster to where it runs)",
                        suc::CONTROLLER,
                        suc::INSTALL_HINT
                    ),
                    Some(_) => format!(
                        "Deployment {ns}/{} has no available replica, so nothing would act on kup's Plans; check `kubectl -n {ns} get pods`",
                        suc::CONTROLLER
                    ),
                },
            ));
        }
        let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
        if retrying(|| sas.get_opt(suc::DEFAULT_SERVICE_ACCOUNT))
            .await
            .map_err(|e| kube_err(e, &format!("reading ServiceAccount {ns}/system-upgrade")))?
            .is_none()
        {
            return Err(err(
                ErrorKind::Invalid,
                format!(
                    "ServiceAccount {ns}/{} does not exist, so the upgrade Jobs could not run; {}",
                    suc::DEFAULT_SERVICE_ACCOUNT,
                    suc::INSTALL_HINT
                ),
            ));
        }
        let not_ready: Vec<&str> = group
            .nodes
            .iter()
            .filter(|n| !n.ready)
            .map(|n| n.name.as_str())
            .collect();
        if !not_ready.is_empty() {
            return Err(err(
                ErrorKind::Invalid,
                format!(
                    "nodes of {} are not Ready: {}; kup upgrades only healthy nodes (fix or remove them, then apply again)",
                    group.name,
                    not_ready.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// The group an upgrade action moves.
    fn action_group<'g>(groups: &'g [Group], action: &Action) -> Option<&'g Group> {
        match action {
            Action::UpgradeControlPlane { .. } => groups.iter().find(|g| g.control_plane),
            Action::UpgradeNodeGroup { node_group, .. } => {
                groups.iter().find(|g| &g.name == node_group)
            }
            _ => None,
        }
    }

    fn action_version(action: &Action) -> Option<&Version> {
        match action {
            Action::UpgradeControlPlane { to, .. } | Action::UpgradeNodeGroup { to, .. } => {
                Some(to)
            }
            _ => None,
        }
    }

    async fn jobs_of(client: &Client, ns: &str, plan: &str) -> Result<Vec<Value>, ProviderError> {
        let api: Api<Job> = Api::namespaced(client.clone(), ns);
        let lp = ListParams::default().labels(&format!("upgrade.cattle.io/plan={plan}"));
        let jobs = list_all(&api, &lp)
            .await
            .map_err(|e| kube_err(e, &format!("listing the Jobs of Plan {ns}/{plan}")))?;
        Ok(jobs
            .into_iter()
            .filter_map(|j| serde_json::to_value(j).ok())
            .collect())
    }

    fn op_id(ns: &str, plan: &str, version: &Version, hash: Option<&str>) -> OperationId {
        let mut id = format!("{ns}/{plan}@{}", suc::release(version));
        if let Some(h) = hash {
            id.push('#');
            id.push_str(h);
        }
        OperationId(id)
    }

    fn parse_op(op: &OperationId) -> Option<(&str, &str, &str, Option<&str>)> {
        let (rest, hash) = match op.0.split_once('#') {
            Some((r, h)) => (r, Some(h)),
            None => (op.0.as_str(), None),
        };
        let (path, version) = rest.split_once('@')?;
        let (ns, plan) = path.split_once('/')?;
        Some((ns, plan, version, hash))
    }

    /// How long a round may take before kup gives up: the group's `timeout`, else 20
    /// minutes per batch (the controller's 10-minute Job deadline plus a drain) plus 10.
    /// A group with a `window` and no `timeout` is waited on without limit: the controller
    /// may rightly sit until the window opens.
    fn timeout(group: &Group) -> Option<Duration> {
        if let Some(t) = group.spec.as_ref().and_then(|s| s.timeout) {
            return Some(t);
        }
        if group.spec.as_ref().is_some_and(|s| s.window.is_some()) {
            return None;
        }
        let n = group.nodes.len().max(1) as u32;
        let per = group
            .spec
            .as_ref()
            .map(|s| s.strategy.max_unavailable().nodes_of(n))
            .unwrap_or(1)
            .max(1);
        let soak = group
            .spec
            .as_ref()
            .and_then(|s| s.batch_soak)
            .unwrap_or_default();
        Some(Duration::from_secs(600) + (Duration::from_secs(1200) + soak) * n.div_ceil(per))
    }

    async fn upgrade(
        &self,
        cluster: &ClusterTarget,
        action: &Action,
    ) -> Result<OperationId, ProviderError> {
        let c = self.cluster(&cluster.name)?;
        let ns = self.namespace(c).to_string();
        let (client, target) = self.client(&cluster.name).await?;
        let nodes = Self::nodes(&client, &target).await?;
        let groups = self.groups(c, &nodes)?;
        let group = Self::action_group(&groups, action).ok_or_else(|| {
            err(
                ErrorKind::NotFound,
                format!(
                    "{}: no such node group in cluster {}",
                    action.describe(),
                    cluster.name
                ),
            )
        })?;
        let version = Self::action_version(action).expect("upgrade action");
        self.prechecks(&client, &ns, &target, group).await?;
        let name = suc::plan_name(&group.name);
        let api = Self::plans(&client, &ns);
        let existing = retrying(|| api.get_opt(&name))
            .await
            .map_err(|e| kube_err(e, &format!("reading Plan {ns}/{name}")))?
            .and_then(|p| serde_json::to_value(p).ok());
        if let Some(p) = &existing {
            if !suc::is_kups(p) {
                return Err(foreign_plan(&ns, &name, &group.name));
            }
        }
        let gate = (!group.control_plane).then(|| {
            groups
                .iter()
                .find(|g| g.control_plane)
                .map(|g| suc::plan_name(&g.name))
                .unwrap_or_else(|| suc::plan_name("servers"))
        });
        let started = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let image = self.image(c);
        let body = suc::plan_body(&suc::PlanInput {
            cluster_label: &c.label,
            namespace: &ns,
            group: &group.name,
            spec: group.spec.as_ref(),
            selector: &group.selector,
            nodes: group.nodes.len() as u32,
            version,
            image: &image,
            service_account: suc::DEFAULT_SERVICE_ACCOUNT,
            gate: gate.as_deref(),
            started_at: &started,
        })
        .map_err(|m| {
            err(
                ErrorKind::Invalid,
                format!("node group {}: {m}", group.name),
            )
        })?;
        let obj: DynamicObject = serde_json::from_value(body)
            .map_err(|e| err(ErrorKind::Other, format!("building Plan {ns}/{name}: {e}")))?;
        let pp = PatchParams::apply(suc::FIELD_MANAGER).force();
        let patch = Patch::Apply(&obj);
        retrying(|| api.patch(&name, &pp, &patch))
            .await
            .map_err(|e| kube_err(e, &format!("applying Plan {ns}/{name} on {target}")))?;
        // A retry after a failed round: the controller re-creates a Job only once the
        // failed one is gone.
        let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
        for j in Self::jobs_of(&client, &ns, &name).await? {
            if matches!(suc::condition(&j, "Failed"), Some(("True", _, _))) {
                let jn = j["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let dp = DeleteParams::background();
                match retrying(|| jobs.delete(&jn, &dp)).await {
                    Ok(_) => tracing::info!(
                        "deleted failed upgrade Job {ns}/{jn} so the controller retries it"
                    ),
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(kube_err(e, &format!("deleting failed Job {ns}/{jn}"))),
                }
            }
        }
        // Journal the hash the controller resolves for this round when it does so quickly.
        let want = suc::release(version);
        for _ in 0..20 {
            let p = retrying(|| api.get_opt(&name))
                .await
                .map_err(|e| kube_err(e, &format!("reading Plan {ns}/{name}")))?
                .and_then(|p| serde_json::to_value(p).ok());
            if let Some(p) = p {
                if p["status"]["latestVersion"].as_str() == Some(want.as_str()) {
                    if let Some(h) = p["status"]["latestHash"].as_str() {
                        return Ok(Self::op_id(&ns, &name, version, Some(h)));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self::op_id(&ns, &name, version, None))
    }

    async fn remove_plans(&self, cluster: &ClusterTarget) -> Result<OperationId, ProviderError> {
        let c = self.cluster(&cluster.name)?;
        let ns = self.namespace(c).to_string();
        let (client, target) = self.client(&cluster.name).await?;
        let api = Self::plans(&client, &ns);
        for p in self.list_plans(&client, &ns).await? {
            if !suc::is_kups(&p) {
                continue;
            }
            let name = p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let dp = DeleteParams::default();
            match retrying(|| api.delete(&name, &dp)).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    return Err(kube_err(
                        e,
                        &format!("deleting Plan {ns}/{name} on {target}"),
                    ))
                }
            }
        }
        Ok(OperationId(format!("{ns}/remove-plans")))
    }
}

#[async_trait]
impl Provider for K3sProvider {
    fn kind(&self) -> &str {
        self.dist.kind()
    }

    fn policy(&self) -> ProviderPolicy {
        ProviderPolicy {
            rounds: true,
            upgrade_plans: true,
            bundled_addons: Some(
                "CoreDNS, the CNI (Flannel or Canal), the ingress controller, metrics-server and local-path-provisioner are packaged in each release and move with the servers".into(),
            ),
            // SUC has no surge: nodes are upgraded in place, `concurrency` at a time.
            supports_max_surge: false,
            min_max_unavailable: 1,
            // One server, then the next: K3s restarts the service per node.
            control_plane_upgrade_estimate: Duration::from_secs(3 * 60),
            node_batch_estimate: Duration::from_secs(3 * 60),
            ..ProviderPolicy::default()
        }
    }

    fn poll_interval(&self) -> Duration {
        self.poll
    }

    async fn refresh(&self, cluster: &ClusterTarget) -> Result<ActualCluster, ProviderError> {
        let c = self.cluster(&cluster.name)?;
        let ns = self.namespace(c).to_string();
        let (client, target) = self.client(&cluster.name).await?;
        let nodes = Self::nodes(&client, &target).await?;
        let parse = |n: &NodeView| {
            n.kubelet.parse::<Version>().map_err(|e| {
                err(
                    ErrorKind::Other,
                    format!("node {} reports kubelet {:?}: {e}", n.name, n.kubelet),
                )
            })
        };
        let groups = self.groups(c, &nodes)?;
        let cp = groups
            .iter()
            .find(|g| g.control_plane)
            .expect("a server group");
        if cp.nodes.is_empty() {
            return Err(err(
                ErrorKind::Other,
                format!(
                    "{target} has no node labelled {}=true, so kup cannot tell the servers; is this a {} cluster?",
                    suc::CP_ROLE,
                    self.dist.kind()
                ),
            ));
        }
        let mut version: Option<Version> = None;
        for n in &cp.nodes {
            let v = parse(n)?;
            version = Some(match version {
                Some(o) if o <= v => o,
                _ => v,
            });
        }
        let version = version.expect("servers");
        let plans = self.list_plans(&client, &ns).await?;
        let mut node_groups = Vec::new();
        for g in &groups {
            let Some(oldest) = g
                .nodes
                .iter()
                .map(parse)
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .min()
            else {
                continue;
            };
            let plan = plans.iter().find(|p| {
                p["metadata"]["name"].as_str() == Some(&suc::plan_name(&g.name)) && suc::is_kups(p)
            });
            let updating = plan.is_some_and(|p| {
                p["status"]["applying"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
            });
            let mut ng = ActualNodeGroup::of_nodes(
                &g.name,
                oldest,
                g.nodes.len() as u32,
                g.nodes.iter().filter(|n| !n.ready).map(|n| n.name.clone()),
                g.control_plane,
            );
            if updating {
                ng.status = "UPDATING".into();
            }
            node_groups.push(ng);
        }
        let (offered_versions, default_version) = self.offered(c, &version).await?;
        let mut in_flight = Vec::new();
        let mut upgrade_plans = Vec::new();
        let mut foreign = Vec::new();
        for g in &groups {
            let name = suc::plan_name(&g.name);
            if plans
                .iter()
                .any(|p| p["metadata"]["name"].as_str() == Some(&name) && !suc::is_kups(p))
            {
                return Err(foreign_plan(&ns, &name, &g.name));
            }
        }
        for p in &plans {
            let name = p["metadata"]["name"].as_str().unwrap_or_default();
            let hash = p["status"]["latestHash"].as_str().unwrap_or_default();
            let label = format!("plan.upgrade.cattle.io/{name}");
            let applying = p["status"]["applying"].as_array().map_or(0, Vec::len);
            let sel = p["spec"]["nodeSelector"].clone();
            // Nodes the Plan selects that do not carry its latest hash yet.
            let pending: Vec<&str> = nodes
                .iter()
                .filter(|n| selects(&sel, &n.labels))
                .filter(|n| {
                    let l = n.labels.get(&label).map(String::as_str);
                    l != Some("disabled") && (hash.is_empty() || l != Some(hash))
                })
                .map(|n| n.name.as_str())
                .collect();
            let version = p["status"]["latestVersion"]
                .as_str()
                .or(p["spec"]["version"].as_str())
                .unwrap_or("its channel");
            if suc::is_kups(p) {
                upgrade_plans.push(format!("{ns}/{name}"));
                if applying > 0 || !pending.is_empty() {
                    let group = p["metadata"]["labels"][suc::NODE_GROUP_LABEL]
                        .as_str()
                        .unwrap_or_default();
                    let resource = if groups.iter().any(|g| g.control_plane && g.name == group) {
                        "control_plane".to_string()
                    } else {
                        format!("node_group.{group}")
                    };
                    in_flight.push(InFlightOperation {
                        id: format!("{ns}/{name}@{version}"),
                        resource,
                        kind: "Plan".into(),
                        target: Some(version.to_string()),
                    });
                }
            } else if !pending.is_empty() {
                foreign.push(format!(
                    "system-upgrade-controller Plan {ns}/{name} (not kup's) would still move nodes {} to {version}",
                    pending.join(", ")
                ));
            }
        }
        Ok(ActualCluster {
            scan: None,
            insights: Vec::new(),
            upgrade_protection: None,
            support: Vec::new(),
            api_uses: Vec::new(),
            name: cluster.name.clone(),
            region: None,
            version: version.clone(),
            platform_version: None,
            status: if in_flight.is_empty() {
                "ACTIVE"
            } else {
                "UPDATING"
            }
            .into(),
            offered_versions,
            node_groups,
            addons: Vec::new(),
            in_flight,
            kube: None,
            default_version,
            auto_upgrade: (!foreign.is_empty()).then(|| foreign.join("; ")),
            maintenance: None,
            upgrade_plans,
        })
    }

    async fn start(
        &self,
        cluster: &ClusterTarget,
        action: &Action,
        _token: &str,
    ) -> Result<OperationId, ProviderError> {
        match action {
            Action::UpgradeControlPlane { .. } | Action::UpgradeNodeGroup { native: None, .. } => {
                self.upgrade(cluster, action).await
            }
            Action::RemoveUpgradePlans => self.remove_plans(cluster).await,
            other => Err(err(
                ErrorKind::Invalid,
                format!(
                    "`{}`: {} clusters are upgraded in place through system-upgrade-controller; node groups cannot be reconfigured, cloned, deleted or rolled back by kup",
                    other.describe(),
                    self.dist.kind()
                ),
            )),
        }
    }

    async fn find_in_flight(
        &self,
        cluster: &ClusterTarget,
        action: &Action,
    ) -> Result<Option<OperationId>, ProviderError> {
        let Some(version) = Self::action_version(action) else {
            return Ok(None);
        };
        let c = self.cluster(&cluster.name)?;
        let ns = self.namespace(c).to_string();
        let (client, target) = self.client(&cluster.name).await?;
        let nodes = Self::nodes(&client, &target).await?;
        let groups = self.groups(c, &nodes)?;
        let Some(group) = Self::action_group(&groups, action) else {
            return Ok(None);
        };
        let name = suc::plan_name(&group.name);
        let api = Self::plans(&client, &ns);
        let plan = match retrying(|| api.get_opt(&name)).await {
            Ok(p) => p.and_then(|p| serde_json::to_value(p).ok()),
            Err(kube::Error::Api(s)) if s.code == 404 => None,
            Err(e) => return Err(kube_err(e, &format!("reading Plan {ns}/{name}"))),
        };
        let Some(plan) = plan.filter(suc::is_kups) else {
            return Ok(None);
        };
        if plan["spec"]["version"].as_str() != Some(suc::release(version).as_str()) {
            return Ok(None);
        }
        let jobs = Self::jobs_of(&client, &ns, &name).await?;
        // A failed round is retried through `start`, which clears the failed Jobs.
        if matches!(
            suc::round_state(&plan, version, &jobs, &group.nodes),
            RoundState::Failed { .. }
        ) {
            return Ok(None);
        }
        let hash = plan["status"]["latestHash"].as_str();
        Ok(Some(Self::op_id(&ns, &name, version, hash)))
    }

    async fn poll(
        &self,
        cluster: &ClusterTarget,
        action: &Action,
        op: &OperationId,
    ) -> Result<OperationStatus, ProviderError> {
        let c = self.cluster(&cluster.name)?;
        let (client, target) = self.client(&cluster.name).await?;
        if matches!(action, Action::RemoveUpgradePlans) {
            let ns = self.namespace(c);
            let left = self
                .list_plans(&client, ns)
                .await?
                .into_iter()
                .filter(suc::is_kups)
                .count();
            return Ok(if left == 0 {
                OperationStatus::Succeeded
            } else {
                OperationStatus::in_progress()
            });
        }
        let (ns, name, _, hash) = Self::parse_op(op).ok_or_else(|| {
            err(
                ErrorKind::Invalid,
                format!(
                    "`{op}` is not an operation id of the {} provider",
                    self.dist.kind()
                ),
            )
        })?;
        let version = Self::action_version(action).ok_or_else(|| {
            err(
                ErrorKind::Invalid,
                format!("{} is not an upgrade", action.describe()),
            )
        })?;
        let api = Self::plans(&client, ns);
        let plan = retrying(|| api.get_opt(name))
            .await
            .map_err(|e| kube_err(e, &format!("reading Plan {ns}/{name} on {target}")))?
            .and_then(|p| serde_json::to_value(p).ok());
        let Some(plan) = plan else {
            return Ok(OperationStatus::Failed {
                code: "PlanDeleted".into(),
                message: format!("Plan {ns}/{name} was deleted while kup waited on it; run `kup apply` again to write it anew"),
            });
        };
        if let (Some(h), Some(now)) = (hash, plan["status"]["latestHash"].as_str()) {
            if h != now
                && plan["status"]["latestVersion"].as_str() == Some(suc::release(version).as_str())
            {
                return Ok(OperationStatus::Failed {
                    code: "PlanChanged".into(),
                    message: format!(
                        "Plan {ns}/{name} was changed behind kup's back (hash {h} is now {now}); run `kup plan` again"
                    ),
                });
            }
        }
        let nodes = Self::nodes(&client, &target).await?;
        let groups = self.groups(c, &nodes)?;
        let group = Self::action_group(&groups, action).ok_or_else(|| {
            err(
                ErrorKind::NotFound,
                format!(
                    "{}: the node group selects no nodes any more",
                    action.describe()
                ),
            )
        })?;
        let jobs = Self::jobs_of(&client, ns, name).await?;
        let state = suc::round_state(&plan, version, &jobs, &group.nodes);
        if let RoundState::Running { .. } | RoundState::Resolving = state {
            let started = plan["metadata"]["annotations"][suc::STARTED_AT]
                .as_str()
                .and_then(|s| {
                    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                        .ok()
                });
            if let (Some(started), Some(limit)) = (started, Self::timeout(group)) {
                let elapsed = time::OffsetDateTime::now_utc() - started;
                if elapsed.whole_seconds() > limit.as_secs() as i64 {
                    return Ok(OperationStatus::Failed {
                        code: "Timeout".into(),
                        message: format!(
                            "Plan {ns}/{name} has not finished after {} ({}); raise `timeout` on node group {} if it needs longer",
                            humantime::format_duration(limit),
                            match &state {
                                RoundState::Running { done, total, stage } => format!("{done}/{total} nodes done{}", stage.as_ref().map(|s| format!(", {s}")).unwrap_or_default()),
                                _ => "the controller never resolved it".into(),
                            },
                            group.name
                        ),
                    });
                }
            }
        }
        Ok(match state {
            RoundState::Resolving => OperationStatus::InProgress(Progress {
                stage: Some("waiting for system-upgrade-controller".into()),
                ..Progress::default()
            }),
            RoundState::Running { done, total, stage } => OperationStatus::InProgress(Progress {
                transcript: Vec::new(),
                done: Some(done),
                total: Some(total),
                stage,
                soaking: false,
            }),
            RoundState::Done => OperationStatus::Succeeded,
            RoundState::Failed { code, message } => OperationStatus::Failed { code, message },
        })
    }

    async fn node_ops(
        &self,
        target: &ClusterTarget,
        access: &KubeAccess,
    ) -> Result<Option<Arc<dyn NodeOps>>, ProviderError> {
        let _ = access;
        let c = self.cluster(&target.name)?.clone();
        let ops = self.ops(&target.name).await?;
        let selectors = c
            .node_groups
            .iter()
            .filter_map(|ng| {
                let s = suc::group_selector(ng).ok()?;
                Some((ng.name.clone(), LabelSelector::parse(&s).ok()?))
            })
            .collect();
        Ok(Some(Arc::new(GroupedNodeOps::new(
            ops,
            SelectorGrouping(selectors),
        ))))
    }
}

/// A Plan with the name kup would use that someone else created.
fn foreign_plan(ns: &str, name: &str, group: &str) -> ProviderError {
    err(
        ErrorKind::Invalid,
        format!(
            "Plan {ns}/{name} exists and was not created by kup; kup never changes Plans it did not create: rename or delete it, or rename node group {group}"
        ),
    )
    .with_code("ForeignPlan")
}

/// Whether a Plan's `nodeSelector` (a LabelSelector object) selects these labels.
fn selects(sel: &Value, labels: &BTreeMap<String, String>) -> bool {
    if sel.is_null() {
        return false;
    }
    if let Some(m) = sel["matchLabels"].as_object() {
        if !m
            .iter()
            .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
        {
            return false;
        }
    }
    sel["matchExpressions"].as_array().is_none_or(|es| {
        es.iter().all(|e| {
            let key = e["key"].as_str().unwrap_or_default();
            let vals: Vec<&str> = e["values"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let have = labels.get(key).map(String::as_str);
            match e["operator"].as_str() {
                Some("In") => have.is_some_and(|h| vals.contains(&h)),
                Some("NotIn") => have.is_none_or(|h| !vals.contains(&h)),
                Some("Exists") => have.is_some(),
                Some("DoesNotExist") => have.is_none(),
                _ => false,
            }
        })
    })
}

/// K3s nodes carry no node-group label: they belong to the group whose selector matches
/// (unconfigured servers to `servers`).
struct SelectorGrouping(Vec<(String, LabelSelector)>);

#[async_trait]
impl NodeGrouping for SelectorGrouping {
    async fn assign(&self, _: &KubeNodeOps, s: &mut KubeSnapshot) -> Result<(), ProviderError> {
        for n in &mut s.nodes {
            n.node_group = match self.0.iter().find(|(_, sel)| sel.matches(&n.labels)) {
                Some((name, _)) => Some(name.clone()),
                None => (n.labels.get(suc::CP_ROLE).map(String::as_str) == Some("true"))
                    .then(|| "servers".into()),
            };
        }
        Ok(())
    }
}
