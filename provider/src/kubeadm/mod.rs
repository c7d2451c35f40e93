//! kubeadm clusters on hosts kup reaches over SSH: the upgrade procedure of the kubeadm
//! documentation ("Upgrading kubeadm clusters"), host by host, in the order it gives.
//!
//! * **Control-plane step** (one per minor, from the planner's rounds): pre-checks, the
//!   package repository switched to the minor, the newest patch found (unless the
//!   configuration names one); on the first control-plane host `kubeadm` installed and
//!   checked, `kubeadm upgrade plan` shown, `kubeadm upgrade apply vX.Y.Z --yes`, then the
//!   optional CNI command; on the other control-plane hosts, one at a time, `kubeadm upgrade
//!   node`; on every control-plane host in turn: drain, kubelet and kubectl, `systemctl
//!   daemon-reload`, `systemctl restart kubelet`, uncordon, wait Ready at the release.
//! * **Node-group step**: the same for workers, `max_unavailable` hosts at a time
//!   (`kubeadm upgrade node`, drain, kubelet, restart, uncordon, wait).
//! * Steps run as a background task; `poll` reports hosts done and hands the commands run
//!   (command, exit code, trimmed output) to the journal. A host whose kubelet already
//!   runs the release is skipped, so a resumed apply (or a re-run after a failure) starts at
//!   the host that did not finish and never upgrades a host twice.
//! * Drains, uncordons and readiness go through the Kubernetes API (the cluster's
//!   `kubeconfig`), with kubectl's drain rules.

mod pkg;
mod ssh;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kup_engine::kube::KubeSnapshot;
use kup_engine::model::{ActualCluster, ActualNodeGroup, ClusterSpec, DrainSpec, KubeadmSpec};
use kup_engine::plan::Action;
use kup_engine::policy::ProviderPolicy;
use kup_engine::provider::TranscriptEntry;
use kup_engine::version::{Minor, Version};
use serde_json::json;
use tokio::sync::Mutex;

use crate::kube::grouped::{GroupedNodeOps, NodeGrouping};
use crate::kube::selector::LabelSelector;
use crate::kube::{kube_err, list_all, retrying, KubeNodeOps};
use crate::{
    ClusterTarget, ErrorKind, KubeAccess, NodeOps, OperationId, OperationStatus, Progress,
    Provider, ProviderError,
};
use pkg::Pm;
use ssh::Ssh;

/// The node annotation kup sets while a node is drained for an upgrade, so a resumed
/// apply knows to uncordon it.
const UPGRADING: &str = "kup.dev/upgrading-to";
/// The actual node group that stands for the control-plane hosts.
pub const CONTROL_PLANE_GROUP: &str = "control-plane";
const CP_ROLE: &str = "node-role.kubernetes.io/control-plane";

fn err(kind: ErrorKind, message: impl Into<String>) -> ProviderError {
    ProviderError::new(kind, message)
}

pub struct KubeadmProvider {
    clusters: BTreeMap<String, ClusterSpec>,
    conns: Mutex<BTreeMap<String, Arc<KubeNodeOps>>>,
    tasks: StdMutex<BTreeMap<String, Arc<Task>>>,
    poll: Duration,
}

/// A step running in the background.
#[derive(Default)]
struct Task {
    state: StdMutex<TaskState>,
}

#[derive(Default)]
struct TaskState {
    done: u64,
    total: u64,
    stage: Option<String>,
    /// Commands not yet handed to the journal.
    transcript: Vec<TranscriptEntry>,
    result: Option<Result<(), (String, String)>>,
}

impl Task {
    fn stage(&self, s: String) {
        self.state.lock().unwrap().stage = Some(s);
    }
    fn record(&self, host: &str, out: &ssh::Output) {
        self.state.lock().unwrap().transcript.push(TranscriptEntry {
            host: host.to_string(),
            command: out.command.clone(),
            exit_code: out.code,
            output: out.trimmed(20),
        });
    }
}

/// Each configured node group's hosts.
type GroupHosts = BTreeMap<String, Vec<Host>>;

/// A host and the Node it runs.
#[derive(Clone, Debug)]
struct Host {
    ssh: String,
    node: String,
}

/// What a step needs, gathered once.
struct Ctx<'a> {
    spec: &'a ClusterSpec,
    kubeadm: &'a KubeadmSpec,
    ssh: Ssh,
    ops: Arc<KubeNodeOps>,
    task: Arc<Task>,
    poll: Duration,
}

/// A host's package manager and repository.
#[derive(Clone, Debug)]
struct Facts {
    pm: Pm,
    repo: String,
}

impl KubeadmProvider {
    pub fn new(
        spec: &kup_engine::model::ProviderSpec,
        clusters: &[ClusterSpec],
    ) -> Result<KubeadmProvider, ProviderError> {
        let mut by_name = BTreeMap::new();
        for c in clusters.iter().filter(|c| c.provider == spec.key()) {
            if c.kubeadm.is_none() {
                return Err(err(
                    ErrorKind::Invalid,
                    format!("cluster {} has no kubeadm settings", c.label),
                ));
            }
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
        Ok(KubeadmProvider {
            clusters: by_name,
            conns: Mutex::new(BTreeMap::new()),
            tasks: StdMutex::new(BTreeMap::new()),
            poll: spec.poll_interval.unwrap_or(Duration::from_secs(5)),
        })
    }

    fn cluster(&self, name: &str) -> Result<&ClusterSpec, ProviderError> {
        self.clusters.get(name).ok_or_else(|| {
            err(
                ErrorKind::NotFound,
                format!("cluster `{name}` is not configured for provider `kubeadm`"),
            )
        })
    }

    async fn ops(&self, name: &str) -> Result<Arc<KubeNodeOps>, ProviderError> {
        let mut conns = self.conns.lock().await;
        if let Some(o) = conns.get(name) {
            return Ok(o.clone());
        }
        let c = self.cluster(name)?;
        if c.kubeconfig.is_none() && c.context.is_none() {
            return Err(err(
                ErrorKind::Invalid,
                format!(
                    "cluster {} sets no kubeconfig; kup drains and watches kubeadm nodes through the Kubernetes API (e.g. kubeconfig = \"~/.kube/{}.conf\", a copy of /etc/kubernetes/admin.conf)",
                    c.label, c.label
                ),
            ));
        }
        let ops = Arc::new(
            KubeNodeOps::from_kubeconfig(c.kubeconfig.as_deref(), c.context.as_deref(), CP_ROLE)
                .await?,
        );
        conns.insert(name.to_string(), ops.clone());
        Ok(ops)
    }

    async fn nodes(ops: &KubeNodeOps) -> Result<Vec<Node>, ProviderError> {
        let api: Api<Node> = Api::all(ops.client().await?);
        list_all(&api, &ListParams::default())
            .await
            .map_err(|e| kube_err(e, &format!("listing nodes on {}", ops.target())))
    }

    /// The control-plane hosts and every node group's hosts, mapped to their Nodes.
    fn hosts(c: &ClusterSpec, nodes: &[Node]) -> Result<(Vec<Host>, GroupHosts), ProviderError> {
        let k = c.kubeadm.as_ref().expect("kubeadm cluster");
        let cp = k
            .control_plane_hosts
            .iter()
            .map(|h| host_of(h, nodes))
            .collect::<Result<Vec<_>, _>>()?;
        let mut groups = BTreeMap::new();
        for ng in &c.node_groups {
            let hosts = if !ng.hosts.is_empty() {
                ng.hosts
                    .iter()
                    .map(|h| host_of(h, nodes))
                    .collect::<Result<Vec<_>, _>>()?
            } else {
                let sel = ng.node_selector.as_deref().unwrap_or_default();
                let sel = LabelSelector::parse(sel)
                    .map_err(|m| err(ErrorKind::Invalid, format!("node group {}: {m}", ng.name)))?;
                let mut hs = Vec::new();
                for n in nodes {
                    let labels = n.metadata.labels.clone().unwrap_or_default();
                    if sel.matches(&labels) {
                        let name = n.metadata.name.clone().unwrap_or_default();
                        // The Node's name becomes an SSH host: it must be one.
                        kup_engine::config::check_host(&name).map_err(|why| {
                            err(
                                ErrorKind::Invalid,
                                format!("node group {}: node {name:?} cannot be reached over SSH by its name: {why}", ng.name),
                            )
                        })?;
                        hs.push(Host {
                            ssh: name.clone(),
                            node: name,
                        });
                    }
                }
                hs
            };
            groups.insert(ng.name.clone(), hosts);
        }
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for h in &cp {
            seen.insert(&h.node, "control_plane");
        }
        for (g, hs) in &groups {
            for h in hs {
                if let Some(other) = seen.insert(&h.node, g) {
                    return Err(err(
                        ErrorKind::Invalid,
                        format!(
                            "node {} is in both {other} and node group {g}; a host belongs to one place",
                            h.node
                        ),
                    ));
                }
            }
        }
        Ok((cp, groups))
    }

    fn task(&self, op: &str) -> Option<Arc<Task>> {
        self.tasks.lock().unwrap().get(op).cloned()
    }

    /// Start (or, after a restart of kup, start again) the background work of `action`.
    async fn spawn(
        &self,
        cluster: &ClusterTarget,
        action: &Action,
        op: &str,
    ) -> Result<Arc<Task>, ProviderError> {
        let c = self.cluster(&cluster.name)?.clone();
        let ops = self.ops(&cluster.name).await?;
        let task = Arc::new(Task::default());
        self.tasks
            .lock()
            .unwrap()
            .insert(op.to_string(), task.clone());
        let action = action.clone();
        let poll = self.poll;
        let t = task.clone();
        tokio::spawn(async move {
            let kubeadm = c.kubeadm.clone().expect("kubeadm cluster");
            let ctx = Ctx {
                spec: &c,
                kubeadm: &kubeadm,
                ssh: Ssh::new(kubeadm.ssh.clone()),
                ops,
                task: t.clone(),
                poll,
            };
            let r = match &action {
                Action::UpgradeControlPlane { to, .. } => ctx.control_plane(to).await,
                Action::UpgradeNodeGroup {
                    node_group,
                    to,
                    max_unavailable,
                    ..
                } => ctx.node_group(node_group, to, *max_unavailable).await,
                Action::PrecheckHosts => ctx.precheck_all().await,
                other => Err(err(ErrorKind::Invalid, other.describe())),
            };
            t.state.lock().unwrap().result = Some(r.map_err(|e| {
                (
                    e.code
                        .clone()
                        .unwrap_or_else(|| "KubeadmUpgradeFailed".into()),
                    e.message,
                )
            }));
        });
        Ok(task)
    }

    fn op_id(cluster: &str, action: &Action) -> String {
        match action {
            Action::UpgradeControlPlane { to, .. } => {
                format!("kubeadm/{cluster}/control_plane@{to}")
            }
            Action::UpgradeNodeGroup { node_group, to, .. } => {
                format!("kubeadm/{cluster}/node_group.{node_group}@{to}")
            }
            other => format!("kubeadm/{cluster}/{}", other.resource()),
        }
    }
}

/// The Node a host runs: by name, by the name's first label, or by one of the Node's
/// addresses.
fn host_of(host: &str, nodes: &[Node]) -> Result<Host, ProviderError> {
    let short = host.split('.').next().unwrap_or(host);
    let found = nodes.iter().find(|n| {
        let name = n.metadata.name.as_deref().unwrap_or("");
        name == host
            || name == short
            || n.status
                .as_ref()
                .and_then(|s| s.addresses.as_ref())
                .is_some_and(|a| a.iter().any(|a| a.address == host))
    });
    match found {
        Some(n) => Ok(Host {
            ssh: host.to_string(),
            node: n.metadata.name.clone().unwrap_or_default(),
        }),
        None => Err(err(
            ErrorKind::NotFound,
            format!(
                "host {host} matches no Node (by name, short name or address); kubeadm names nodes after their hostname: check the hosts list or the kubeconfig"
            ),
        )),
    }
}

fn kubelet_of(n: &Node) -> Option<Version> {
    n.status
        .as_ref()?
        .node_info
        .as_ref()?
        .kubelet_version
        .parse()
        .ok()
}

fn ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The release a kubelet must report: `v1.30.9` for `1.30.9`.
fn same_release(kubelet: &Version, want: &Version) -> bool {
    kubelet.major == want.major && kubelet.minor == want.minor && kubelet.patch == want.patch
}

impl Ctx<'_> {
    /// Run `argv` on `host`, journal it, fail with the transcript when it fails.
    async fn run(
        &self,
        host: &Host,
        argv: Vec<String>,
        sudo: bool,
        stdin: Option<&str>,
    ) -> Result<ssh::Output, ProviderError> {
        let out = self.ssh.run(&host.ssh, &argv, sudo, stdin).await?;
        self.task.record(&host.ssh, &out);
        if out.code != 0 {
            return Err(err(
                ErrorKind::Other,
                format!(
                    "{}: `{}` exited with {}:\n{}",
                    host.ssh,
                    out.command,
                    out.code,
                    out.trimmed(20)
                ),
            )
            .with_code("HostCommandFailed"));
        }
        Ok(out)
    }

    async fn run_args(
        &self,
        host: &Host,
        argv: &[&str],
        sudo: bool,
    ) -> Result<ssh::Output, ProviderError> {
        self.run(
            host,
            argv.iter().map(|s| s.to_string()).collect(),
            sudo,
            None,
        )
        .await
    }

    /// SSH works, sudo works, swap is off, the package manager and a pkgs.k8s.io
    /// repository are there.
    async fn precheck(&self, host: &Host) -> Result<Facts, ProviderError> {
        self.task.stage(format!("{}: pre-checks", host.ssh));
        if self.kubeadm.ssh.sudo {
            self.run_args(host, &["true"], true).await.map_err(|e| {
                err(
                    ErrorKind::Auth,
                    format!("{}: sudo does not work without a password ({}); kup runs `sudo -n`: allow the SSH user passwordless sudo, or set ssh {{ sudo = false }} to log in as root", host.ssh, e.message),
                )
            })?;
        }
        let swaps = self.run_args(host, &["cat", "/proc/swaps"], false).await?;
        let active: Vec<&str> = swaps
            .stdout
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .collect();
        if !active.is_empty() {
            return Err(err(
                ErrorKind::Invalid,
                format!(
                    "{}: swap is on ({}); the kubelet is not configured for swap on kubeadm hosts by default: turn it off (`swapoff -a` and remove it from /etc/fstab) or configure the kubelet for swap first",
                    host.ssh,
                    active.join("; ")
                ),
            ));
        }
        let os = self
            .run_args(host, &["cat", "/etc/os-release"], false)
            .await?;
        let mut pm = Pm::from_os_release(&os.stdout).ok_or_else(|| {
            err(
                ErrorKind::Invalid,
                format!("{}: kup knows apt (Debian, Ubuntu) and dnf/yum (Fedora, RHEL and its rebuilds) hosts; /etc/os-release says: {}", host.ssh, os.stdout.lines().find(|l| l.starts_with("ID=")).unwrap_or("no ID")),
            )
        })?;
        if pm == Pm::Dnf {
            let v = self.run_args(host, &["dnf", "--version"], false).await?;
            if v.stdout.contains("dnf5") {
                pm = Pm::Dnf5;
            }
        }
        let repo = self.run_args(host, &["cat", pm.repo_file()], true).await.map_err(|e| {
            err(
                ErrorKind::Invalid,
                format!("{}: no Kubernetes package repository at {} ({}); kup upgrades hosts installed from pkgs.k8s.io as the kubeadm documentation sets them up", host.ssh, pm.repo_file(), e.message),
            )
        })?;
        if pkg::repo_minor(&repo.stdout).is_none() {
            return Err(err(
                ErrorKind::Invalid,
                format!(
                    "{}: {} does not point at pkgs.k8s.io (the legacy apt.kubernetes.io / yum.kubernetes.io repositories are frozen); switch to pkgs.k8s.io first",
                    host.ssh,
                    pm.repo_file()
                ),
            ));
        }
        Ok(Facts {
            pm,
            repo: repo.stdout,
        })
    }

    /// Point the host's repository at `minor` (pkgs.k8s.io has one per minor) and refresh.
    async fn switch_repo(
        &self,
        host: &Host,
        facts: &mut Facts,
        minor: Minor,
    ) -> Result<(), ProviderError> {
        if pkg::repo_minor(&facts.repo) != Some(minor) {
            self.task
                .stage(format!("{}: package repository → v{minor}", host.ssh));
            let text = pkg::switch_repo(&facts.repo, minor).expect("checked in precheck");
            self.run(
                host,
                vec!["tee".into(), facts.pm.repo_file().into()],
                true,
                Some(&text),
            )
            .await?;
            facts.repo = text;
        }
        self.run(host, facts.pm.refresh(), true, None).await?;
        Ok(())
    }

    /// The package version of `pkg` for `want` (`want` a minor: the newest patch).
    async fn package(
        &self,
        host: &Host,
        facts: &Facts,
        pkg: &str,
        want: &Version,
    ) -> Result<(Version, String), ProviderError> {
        let out = self.run(host, facts.pm.list(pkg), true, None).await?;
        let offered = facts.pm.parse_list(pkg, &out.stdout);
        let pick = offered
            .iter()
            .filter(|(v, _)| {
                v.minor() == want.minor() && (want.patch.is_none() || v.patch == want.patch)
            })
            .max()
            .cloned();
        pick.ok_or_else(|| {
            err(
                ErrorKind::NotFound,
                format!(
                    "{}: the package repository offers no {pkg} {want} (it has: {})",
                    host.ssh,
                    if offered.is_empty() {
                        "nothing".to_string()
                    } else {
                        offered
                            .iter()
                            .map(|(v, _)| v.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            )
        })
    }

    async fn install(
        &self,
        host: &Host,
        facts: &Facts,
        pkgs: &[(&str, &str)],
    ) -> Result<(), ProviderError> {
        for argv in facts.pm.install(pkgs) {
            self.run(host, argv, true, None).await?;
        }
        Ok(())
    }

    /// kubeadm at `version` on the host, checked with `kubeadm version`.
    async fn kubeadm_at(
        &self,
        host: &Host,
        facts: &Facts,
        version: &Version,
        pkg_version: &str,
    ) -> Result<(), ProviderError> {
        let have = self
            .run_args(host, &["kubeadm", "version", "-o", "short"], true)
            .await?;
        let want = format!("v{}", version.plain());
        if have.stdout.trim() != want {
            self.task.stage(format!("{}: kubeadm {want}", host.ssh));
            self.install(host, facts, &[("kubeadm", pkg_version)])
                .await?;
            let now = self
                .run_args(host, &["kubeadm", "version", "-o", "short"], true)
                .await?;
            if now.stdout.trim() != want {
                return Err(err(
                    ErrorKind::Other,
                    format!(
                        "{}: kubeadm reports {} after installing {pkg_version}, not {want}",
                        host.ssh,
                        now.stdout.trim()
                    ),
                ));
            }
        }
        Ok(())
    }

    async fn node(&self, name: &str) -> Result<Node, ProviderError> {
        let api: Api<Node> = Api::all(self.ops.client().await?);
        retrying(|| api.get(name))
            .await
            .map_err(|e| kube_err(e, &format!("reading node {name}")))
    }

    async fn annotate(&self, node: &str, value: Option<&str>) -> Result<(), ProviderError> {
        let api: Api<Node> = Api::all(self.ops.client().await?);
        let patch = json!({ "metadata": { "annotations": { UPGRADING: value } } });
        let pp = PatchParams::default();
        let p = Patch::Merge(&patch);
        retrying(|| api.patch(node, &pp, &p))
            .await
            .map_err(|e| kube_err(e, &format!("annotating node {node}")))?;
        Ok(())
    }

    /// True when the host's kubelet already runs `version`: nothing is done to it again
    /// (its kubelet may still be coming back after a restart an interrupted run made, so
    /// kup waits for Ready, and uncordons a node it had cordoned).
    async fn already_done(&self, host: &Host, version: &Version) -> Result<bool, ProviderError> {
        let n = self.node(&host.node).await?;
        let done = kubelet_of(&n).is_some_and(|k| same_release(&k, version));
        if done {
            self.wait_ready(host, version).await?;
            let ours = n
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(UPGRADING));
            if ours {
                self.ops.set_unschedulable(&host.node, false).await?;
                self.annotate(&host.node, None).await?;
            }
        }
        Ok(done)
    }

    /// Drain, kubelet and kubectl, daemon-reload, restart, uncordon, wait Ready.
    async fn kubelet(
        &self,
        host: &Host,
        facts: &Facts,
        version: &Version,
        pkg_version: &str,
        drain: &DrainSpec,
    ) -> Result<(), ProviderError> {
        self.task.stage(format!("{}: drain", host.ssh));
        self.annotate(&host.node, Some(&version.plain())).await?;
        self.ops.set_unschedulable(&host.node, true).await?;
        self.ops.drain(&host.node, drain).await.map_err(|e| {
            err(
                ErrorKind::Other,
                format!("draining {} before its kubelet upgrade: {e}", host.node),
            )
            .with_code("DrainFailed")
        })?;
        self.task
            .stage(format!("{}: kubelet {}", host.ssh, version.plain()));
        self.install(
            host,
            facts,
            &[("kubelet", pkg_version), ("kubectl", pkg_version)],
        )
        .await?;
        self.run_args(host, &["systemctl", "daemon-reload"], true)
            .await?;
        self.run_args(host, &["systemctl", "restart", "kubelet"], true)
            .await?;
        self.wait_ready(host, version).await?;
        self.ops.set_unschedulable(&host.node, false).await?;
        self.annotate(&host.node, None).await?;
        Ok(())
    }

    /// Wait until the host's node is Ready with its kubelet at `version`.
    async fn wait_ready(&self, host: &Host, version: &Version) -> Result<(), ProviderError> {
        self.task.stage(format!(
            "{}: waiting for the node to be Ready at v{}",
            host.ssh,
            version.plain()
        ));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10 * 60);
        loop {
            let n = self.node(&host.node).await?;
            if ready(&n) && kubelet_of(&n).is_some_and(|k| same_release(&k, version)) {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(err(
                    ErrorKind::Other,
                    format!(
                        "node {} is not Ready at v{} 10 minutes after its kubelet restarted (it reports {}); check `journalctl -u kubelet` on {}",
                        host.node,
                        version.plain(),
                        kubelet_of(&n).map(|v| v.to_string()).unwrap_or_default(),
                        host.ssh
                    ),
                ));
            }
            tokio::time::sleep(self.poll.max(Duration::from_millis(100))).await;
        }
        Ok(())
    }

    /// Every node Ready before anything moves.
    async fn nodes_ready(&self) -> Result<Vec<Node>, ProviderError> {
        let nodes = KubeadmProvider::nodes(&self.ops).await?;
        let not_ready: Vec<String> = nodes
            .iter()
            .filter(|n| !ready(n))
            .filter(|n| {
                !n.metadata
                    .annotations
                    .as_ref()
                    .is_some_and(|a| a.contains_key(UPGRADING))
            })
            .map(|n| n.metadata.name.clone().unwrap_or_default())
            .collect();
        if !not_ready.is_empty() {
            return Err(err(
                ErrorKind::Invalid,
                format!(
                    "nodes not Ready: {}; kup upgrades a healthy cluster only",
                    not_ready.join(", ")
                ),
            ));
        }
        Ok(nodes)
    }

    async fn cluster_version(&self) -> Result<Version, ProviderError> {
        let info = self
            .ops
            .client()
            .await?
            .apiserver_version()
            .await
            .map_err(|e| kube_err(e, "reading the API server version"))?;
        info.git_version.parse().map_err(|e| {
            err(
                ErrorKind::Other,
                format!("the API server reports version {:?}: {e}", info.git_version),
            )
        })
    }

    /// The gate before a plan's first change: every host at once.
    async fn precheck_all(&self) -> Result<(), ProviderError> {
        let nodes = self.nodes_ready().await?;
        let (cp, groups) = KubeadmProvider::hosts(self.spec, &nodes)?;
        let all: Vec<Host> = cp
            .iter()
            .cloned()
            .chain(groups.into_values().flatten())
            .collect();
        self.task.state.lock().unwrap().total = all.len() as u64;
        let results = join_all(all.iter().map(|h| async move {
            let r = self.precheck(h).await;
            self.task.state.lock().unwrap().done += 1;
            r
        }))
        .await;
        let failures: Vec<String> = results
            .into_iter()
            .filter_map(Result::err)
            .map(|e| e.message)
            .collect();
        if !failures.is_empty() {
            return Err(err(
                ErrorKind::Invalid,
                format!(
                    "pre-checks failed on {} host(s); nothing was changed:\n{}",
                    failures.len(),
                    failures.join("\n")
                ),
            )
            .with_code("PrecheckFailed"));
        }
        if let Some(first) = cp.first() {
            self.run_args(first, &["test", "-f", "/etc/kubernetes/admin.conf"], true)
                .await
                .map_err(|_| {
                    err(
                        ErrorKind::Invalid,
                        format!("{}: /etc/kubernetes/admin.conf is missing: the first control-plane host must be the one `kubeadm init` ran on (or hold its admin.conf); reorder control_plane.hosts", first.ssh),
                    )
                })?;
        }
        Ok(())
    }

    async fn control_plane(&self, to: &Version) -> Result<(), ProviderError> {
        let nodes = self.nodes_ready().await?;
        let (cp, _) = KubeadmProvider::hosts(self.spec, &nodes)?;
        let first = cp
            .first()
            .ok_or_else(|| err(ErrorKind::Invalid, "no control-plane hosts"))?;
        self.task.state.lock().unwrap().total = cp.len() as u64;
        let mut facts = self.precheck(first).await?;
        self.run_args(first, &["test", "-f", "/etc/kubernetes/admin.conf"], true)
            .await
            .map_err(|_| {
                err(
                    ErrorKind::Invalid,
                    format!("{}: /etc/kubernetes/admin.conf is missing: the first control-plane host must be the one `kubeadm init` ran on (or hold its admin.conf); reorder control_plane.hosts", first.ssh),
                )
            })?;
        self.switch_repo(first, &mut facts, to.minor()).await?;
        let (version, pkg_version) = self.package(first, &facts, "kubeadm", to).await?;
        let current = self.cluster_version().await?;
        let applied = current.minor() > version.minor()
            || same_release(&current, &version)
            || current > version;
        if !applied {
            self.kubeadm_at(first, &facts, &version, &pkg_version)
                .await?;
            self.task
                .stage(format!("{}: kubeadm upgrade plan", first.ssh));
            let plan = self
                .run_args(first, &["kubeadm", "upgrade", "plan"], true)
                .await?;
            // kubeadm prints its preflight blockers as `[ERROR …]` lines; stop before apply.
            let blockers: Vec<&str> = plan
                .stdout
                .lines()
                .chain(plan.stderr.lines())
                .filter(|l| l.contains("[ERROR") || l.contains("FATAL"))
                .collect();
            if !blockers.is_empty() {
                return Err(err(
                    ErrorKind::Invalid,
                    format!(
                        "{}: `kubeadm upgrade plan` reports blockers, so kup did not run `kubeadm upgrade apply`:\n{}",
                        first.ssh,
                        blockers.join("\n")
                    ),
                )
                .with_code("KubeadmPlanBlocked"));
            }
            if let Some(line) = plan
                .stdout
                .lines()
                .find(|l| l.contains("kubeadm upgrade apply v"))
            {
                self.task.stage(format!(
                    "{}: kubeadm upgrade plan: {}",
                    first.ssh,
                    line.trim()
                ));
            }
            if self.kubeadm.etcd_graceful_restart {
                self.task
                    .stage(format!("{}: stopping kube-apiserver gracefully", first.ssh));
                self.run_args(first, &["killall", "-s", "SIGTERM", "kube-apiserver"], true)
                    .await?;
                tokio::time::sleep(Duration::from_secs(20).min(self.poll * 100)).await;
            }
            self.task.stage(format!(
                "{}: kubeadm upgrade apply v{}",
                first.ssh,
                version.plain()
            ));
            let mut apply = vec![
                "kubeadm".to_string(),
                "upgrade".into(),
                "apply".into(),
                format!("v{}", version.plain()),
                "--yes".into(),
            ];
            if !self.kubeadm.certificate_renewal {
                apply.push("--certificate-renewal=false".into());
            }
            if self.kubeadm.force {
                apply.push("--force".into());
            }
            if let Err(e) = self.run(first, apply, true, None).await {
                let backups: Vec<&str> = e
                    .message
                    .split(|c: char| c.is_whitespace() || c == '"' || c == '\'')
                    .filter(|w| w.starts_with("/etc/kubernetes/tmp/kubeadm-backup-"))
                    .collect();
                return Err(err(
                    ErrorKind::Other,
                    format!(
                        "kubeadm upgrade apply failed on {}; no other host was touched. {}Fix the cause and run `kup apply` again (kubeadm upgrade is idempotent; recover = \"force\" re-runs it with --force). {}",
                        first.ssh,
                        if backups.is_empty() {
                            String::new()
                        } else {
                            format!("kubeadm's backups: {}. ", backups.join(", "))
                        },
                        e.message
                    ),
                )
                .with_code("KubeadmUpgradeApplyFailed"));
            }
            if !self.kubeadm.cni_upgrade.is_empty() {
                self.task.stage(format!("{}: CNI upgrade", first.ssh));
                self.run(first, self.kubeadm.cni_upgrade.clone(), true, None)
                    .await?;
            }
        }
        let drain = DrainSpec {
            timeout: Some(Duration::from_secs(15 * 60)),
            ..DrainSpec::default()
        };
        for (i, host) in cp.iter().enumerate() {
            if self.already_done(host, &version).await? {
                self.task.state.lock().unwrap().done += 1;
                continue;
            }
            let mut f = if i == 0 {
                facts.clone()
            } else {
                self.precheck(host).await?
            };
            if i > 0 {
                self.switch_repo(host, &mut f, version.minor()).await?;
                let (_, pv) = self.package(host, &f, "kubeadm", &version).await?;
                self.kubeadm_at(host, &f, &version, &pv).await?;
                self.task
                    .stage(format!("{}: kubeadm upgrade node", host.ssh));
                self.run_args(host, &["kubeadm", "upgrade", "node"], true)
                    .await?;
            }
            let (_, pv) = self.package(host, &f, "kubelet", &version).await?;
            self.kubelet(host, &f, &version, &pv, &drain).await?;
            self.task.state.lock().unwrap().done += 1;
        }
        Ok(())
    }

    async fn node_group(
        &self,
        group: &str,
        to: &Version,
        max_unavailable: kup_engine::model::Unavailable,
    ) -> Result<(), ProviderError> {
        let nodes = self.nodes_ready().await?;
        let (_, groups) = KubeadmProvider::hosts(self.spec, &nodes)?;
        let hosts = groups.get(group).cloned().unwrap_or_default();
        // Workers follow the control plane to its exact release.
        let current = self.cluster_version().await?;
        let version = if to.patch.is_some() {
            to.clone()
        } else if current.minor() == to.minor() {
            Version::new(current.major, current.minor, current.patch)
        } else {
            return Err(err(
                ErrorKind::Invalid,
                format!(
                    "node group {group} cannot go to {to} while the control plane runs {current}"
                ),
            ));
        };
        let drain = self
            .spec
            .node_group(group)
            .map(|g| g.drain.clone())
            .unwrap_or_default();
        let per = max_unavailable.nodes_of(hosts.len() as u32).max(1) as usize;
        self.task.state.lock().unwrap().total = hosts.len() as u64;
        for batch in hosts.chunks(per) {
            let results = join_all(batch.iter().map(|h| self.worker(h, &version, &drain))).await;
            if let Some(e) = results.into_iter().find_map(Result::err) {
                return Err(e);
            }
        }
        Ok(())
    }

    async fn worker(
        &self,
        host: &Host,
        version: &Version,
        drain: &DrainSpec,
    ) -> Result<(), ProviderError> {
        if self.already_done(host, version).await? {
            self.task.state.lock().unwrap().done += 1;
            return Ok(());
        }
        let mut facts = self.precheck(host).await?;
        self.switch_repo(host, &mut facts, version.minor()).await?;
        let (_, pv) = self.package(host, &facts, "kubeadm", version).await?;
        self.kubeadm_at(host, &facts, version, &pv).await?;
        self.task
            .stage(format!("{}: kubeadm upgrade node", host.ssh));
        self.run_args(host, &["kubeadm", "upgrade", "node"], true)
            .await?;
        let (_, pv) = self.package(host, &facts, "kubelet", version).await?;
        self.kubelet(host, &facts, version, &pv, drain).await?;
        self.task.state.lock().unwrap().done += 1;
        Ok(())
    }
}

#[async_trait]
impl Provider for KubeadmProvider {
    fn kind(&self) -> &str {
        "kubeadm"
    }

    fn policy(&self) -> ProviderPolicy {
        ProviderPolicy {
            rounds: true,
            host_prechecks: true,
            bundled_addons: Some(
                "`kubeadm upgrade apply` moves CoreDNS and kube-proxy with the control plane; the CNI is not kubeadm's: check that its version supports each minor (a cni_upgrade command runs after the first control-plane host)".into(),
            ),
            supports_max_surge: false,
            min_max_unavailable: 1,
            control_plane_upgrade_estimate: Duration::from_secs(15 * 60),
            node_batch_estimate: Duration::from_secs(6 * 60),
            ..ProviderPolicy::default()
        }
    }

    fn poll_interval(&self) -> Duration {
        self.poll
    }

    async fn refresh(&self, cluster: &ClusterTarget) -> Result<ActualCluster, ProviderError> {
        let c = self.cluster(&cluster.name)?;
        let ops = self.ops(&cluster.name).await?;
        let info = ops.client().await?.apiserver_version().await.map_err(|e| {
            kube_err(
                e,
                &format!("reading the API server version on {}", ops.target()),
            )
        })?;
        let version: Version = info.git_version.parse().map_err(|e| {
            err(
                ErrorKind::Other,
                format!("the API server reports {:?}: {e}", info.git_version),
            )
        })?;
        let nodes = Self::nodes(&ops).await?;
        let (cp, groups) = Self::hosts(c, &nodes)?;
        let by_name: BTreeMap<String, &Node> = nodes
            .iter()
            .map(|n| (n.metadata.name.clone().unwrap_or_default(), n))
            .collect();
        let group = |name: &str, hosts: &[Host], control_plane: bool| -> Option<ActualNodeGroup> {
            let members: Vec<&&Node> = hosts.iter().filter_map(|h| by_name.get(&h.node)).collect();
            let oldest = members.iter().filter_map(|n| kubelet_of(n)).min()?;
            Some(ActualNodeGroup::of_nodes(
                name,
                oldest,
                members.len() as u32,
                members
                    .iter()
                    .filter(|n| !ready(n))
                    .map(|n| n.metadata.name.clone().unwrap_or_default()),
                control_plane,
            ))
        };
        let mut node_groups = Vec::new();
        node_groups.extend(group(CONTROL_PLANE_GROUP, &cp, true));
        for (name, hosts) in &groups {
            node_groups.extend(group(name, hosts, false));
        }
        // The repositories are read at apply time (pkgs.k8s.io has one per minor): every
        // minor up to the target is offered as "its newest patch", resolved then.
        let mut offered = vec![version.clone()];
        let target = c.version.minor();
        let mut m = version.minor().next();
        while m <= target {
            offered.push(Version::new(m.major, m.minor, None));
            m = m.next();
        }
        if c.version.patch.is_some() {
            offered.push(c.version.clone());
        }
        Ok(ActualCluster {
            scan: None,
            insights: Vec::new(),
            upgrade_protection: None,
            support: Vec::new(),
            api_uses: Vec::new(),
            name: cluster.name.clone(),
            region: None,
            version,
            platform_version: None,
            status: "ACTIVE".into(),
            offered_versions: offered,
            node_groups,
            addons: Vec::new(),
            in_flight: Vec::new(),
            kube: None,
            default_version: None,
            auto_upgrade: None,
            maintenance: None,
            upgrade_plans: Vec::new(),
        })
    }

    async fn start(
        &self,
        cluster: &ClusterTarget,
        action: &Action,
        _token: &str,
    ) -> Result<OperationId, ProviderError> {
        match action {
            Action::UpgradeControlPlane { .. }
            | Action::UpgradeNodeGroup { native: None, .. }
            | Action::PrecheckHosts => {
                let op = Self::op_id(&cluster.name, action);
                self.spawn(cluster, action, &op).await?;
                Ok(OperationId(op))
            }
            other => Err(err(
                ErrorKind::Invalid,
                format!(
                    "`{}`: kubeadm hosts are upgraded in place; kup cannot create, delete or reconfigure them",
                    other.describe()
                ),
            )),
        }
    }

    async fn find_in_flight(
        &self,
        _cluster: &ClusterTarget,
        _action: &Action,
    ) -> Result<Option<OperationId>, ProviderError> {
        // Nothing runs on the hosts without kup: a step that did not finish is run again
        // and skips the hosts already done.
        Ok(None)
    }

    async fn poll(
        &self,
        cluster: &ClusterTarget,
        action: &Action,
        op: &OperationId,
    ) -> Result<OperationStatus, ProviderError> {
        let task = match self.task(&op.0) {
            Some(t) => t,
            // A resumed apply: the work of the killed one goes on from the first host
            // that is not done.
            None => self.spawn(cluster, action, &op.0).await?,
        };
        let mut s = task.state.lock().unwrap();
        let transcript = std::mem::take(&mut s.transcript);
        // Hand every command to the journal before reporting the end.
        if !transcript.is_empty() || s.result.is_none() {
            return Ok(OperationStatus::InProgress(Progress {
                done: Some(s.done),
                total: Some(s.total),
                stage: s.stage.clone(),
                soaking: false,
                transcript,
            }));
        }
        let result = s.result.clone().expect("checked");
        drop(s);
        self.tasks.lock().unwrap().remove(&op.0);
        Ok(match result {
            Ok(()) => OperationStatus::Succeeded,
            Err((code, message)) => OperationStatus::Failed { code, message },
        })
    }

    async fn node_ops(
        &self,
        target: &ClusterTarget,
        _access: &KubeAccess,
    ) -> Result<Option<Arc<dyn NodeOps>>, ProviderError> {
        let c = self.cluster(&target.name)?.clone();
        let ops = self.ops(&target.name).await?;
        Ok(Some(Arc::new(GroupedNodeOps::new(ops, HostGrouping(c)))))
    }
}

/// kubeadm nodes carry no node-group label: they belong to the group (or the control
/// plane) whose hosts they are.
struct HostGrouping(ClusterSpec);

#[async_trait]
impl NodeGrouping for HostGrouping {
    async fn assign(&self, ops: &KubeNodeOps, s: &mut KubeSnapshot) -> Result<(), ProviderError> {
        let nodes = KubeadmProvider::nodes(ops).await?;
        if let Ok((cp, groups)) = KubeadmProvider::hosts(&self.0, &nodes) {
            let mut of: BTreeMap<String, String> = BTreeMap::new();
            for h in cp {
                of.insert(h.node, CONTROL_PLANE_GROUP.into());
            }
            for (g, hs) in groups {
                for h in hs {
                    of.insert(h.node, g.clone());
                }
            }
            for n in &mut s.nodes {
                n.node_group = of.get(&n.name).cloned();
            }
        }
        Ok(())
    }
}
