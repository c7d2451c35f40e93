//! Plain data: what the user declared (`Desired`) and what a provider reported (`Actual`).
//! No I/O lives here.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::version::{Minor, Version};

/// Where a value came from in the configuration, for diagnostics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SourceLoc {
    pub file: String,
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for SourceLoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// Everything the configuration declares, after variables and expressions are evaluated.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Desired {
    pub providers: Vec<ProviderSpec>,
    pub clusters: Vec<ClusterSpec>,
    /// `rollout "NAME" { wave ... }`: the order in which clusters are upgraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollouts: Vec<RolloutSpec>,
}

/// `rollout "NAME" { wave "NAME" { ... } ... }`: clusters upgraded in waves, each starting
/// when the waves it follows have finished (post-flight included) and soaked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RolloutSpec {
    pub name: String,
    /// In the order written; a wave's `after` names only waves written before it.
    pub waves: Vec<WaveSpec>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WaveSpec {
    pub name: String,
    /// Cluster labels or globs over them (`prod-*`), as written.
    pub patterns: Vec<String>,
    /// The labels of the clusters they match, in configuration order.
    pub clusters: Vec<String>,
    /// Waves that must have finished first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// How long the waves in `after` must have run at their new version first.
    #[serde(with = "duration_str")]
    #[schemars(with = "String")]
    pub soak: Duration,
    /// At most this many of the wave's clusters upgrade at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    /// The wave starts only inside this window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<UpgradeWindow>,
}

impl Desired {
    pub fn provider(&self, key: &str) -> Option<&ProviderSpec> {
        self.providers.iter().find(|p| p.key() == key)
    }
    pub fn cluster(&self, label: &str) -> Option<&ClusterSpec> {
        self.clusters.iter().find(|c| c.label == label)
    }
}

/// `provider "eks" { ... }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProviderSpec {
    /// The provider type: the block label, e.g. `eks`.
    pub kind: String,
    /// `alias = "us"` makes this provider addressable as `eks.us`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// GKE: the Google Cloud project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// GKE: the cluster's location (a region or a zone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// AKS: the Azure subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    /// AKS: the resource group the clusters are in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_group: Option<String>,
    /// AKS: the ARM api-version to speak (default: a stable one kup is tested with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// K3s/RKE2: the release channel server (default `https://update.k3s.io/v1-release/channels`
    /// or `https://update.rke2.io/v1-release/channels`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_server: Option<String>,
    /// K3s/RKE2: the releases kup may use, instead of asking the channel server (air-gapped
    /// sites): `["v1.30.9+k3s1", "v1.31.4+k3s1"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<String>,
    /// Send API calls to this URL instead of the provider's public endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Run kup's simulator in-process and point this provider at it.
    #[serde(default)]
    pub simulate: bool,
    /// With `simulate = true`: the world file that seeds the simulation (absolute path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub world: Option<String>,
    /// With `simulate = true`: how many simulated seconds pass per real second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<f64>,
    /// How often to poll long-running operations.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    #[schemars(with = "Option<String>")]
    pub poll_interval: Option<Duration>,
    /// EKS, GKE, AKS: the most API requests per second kup sends through this provider
    /// block (one account and region, project or subscription), retries included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<f64>,
    /// EKS, GKE, AKS: how long one HTTP attempt may take before it is abandoned and
    /// retried (default 30 s), so a response that never comes cannot stall an apply.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    #[schemars(with = "Option<String>")]
    pub request_timeout: Option<Duration>,
    /// How long kup waits for one provider operation (an EKS update, a GKE operation,
    /// an AKS async operation) before it stops the step naming the operation (default
    /// 6 h; simulated time for a simulated cluster). The operation stays journaled, so
    /// the next apply waits on it again instead of issuing it twice.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    #[schemars(with = "Option<String>")]
    pub operation_timeout: Option<Duration>,
    /// How the provider's API endpoint is trusted (`ca_file`, `insecure_skip_tls_verify`).
    #[serde(default, skip_serializing_if = "TlsSettings::is_default")]
    pub tls: TlsSettings,
    #[serde(skip)]
    #[schemars(skip)]
    pub origin: Option<SourceLoc>,
}

/// A provider block's TLS settings for its API endpoint. Verification is on unless
/// `insecure_skip_tls_verify` says otherwise, and then every plan warns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TlsSettings {
    /// Accept any certificate (kubeconfig's name for it). Never for production.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_tls_verify: bool,
    /// A PEM file of CA certificates trusted in addition to the system's (absolute path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

impl TlsSettings {
    pub fn is_default(&self) -> bool {
        *self == TlsSettings::default()
    }
}

impl ProviderSpec {
    /// How clusters refer to this provider: `eks` or `eks.<alias>`.
    pub fn key(&self) -> String {
        match &self.alias {
            Some(a) => format!("{}.{}", self.kind, a),
            None => self.kind.clone(),
        }
    }
}

/// `cluster "LABEL" { ... }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClusterSpec {
    /// The block label; the cluster's address is `cluster.<label>`.
    pub label: String,
    /// Key of the provider block (`eks`, `eks.us`).
    pub provider: String,
    /// The cluster's name at the provider (defaults to the label).
    pub name: String,
    /// Region override (defaults to the provider's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Target control-plane version: a minor alias (`1.31`) or an exact release. With
    /// `version_alias` set, a stand-in until [`crate::planner::resolve_version_aliases`]
    /// puts the exact version the provider offers here.
    pub version: Version,
    /// `version = "latest"` or `"-"` (the provider's default), resolved at plan time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_alias: Option<VersionAlias>,
    #[serde(default)]
    pub addons: Vec<AddonSpec>,
    #[serde(default)]
    pub node_groups: Vec<NodeGroupSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// How many node groups of this cluster may roll at the same time.
    #[serde(default = "one")]
    pub parallel_node_groups: u32,
    /// K3s/RKE2: the release channel (`stable`, `latest`, `v1.31`, or a channel URL) whose
    /// version is the target, resolved at plan time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// K3s/RKE2: the namespace system-upgrade-controller runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// K3s/RKE2: the upgrade image (default `rancher/k3s-upgrade` / `rancher/rke2-upgrade`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_image: Option<String>,
    /// K3s/RKE2: leave kup's Plans in place after the last round (pinned to the exact
    /// version) instead of removing them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_plans: bool,
    /// kubeadm: how to reach the hosts and run the upgrade on them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeadm: Option<KubeadmSpec>,
    /// `preflight { ... }`: checks before the plan may move the cluster.
    #[serde(default)]
    pub preflight: Preflight,
    /// `postflight { ... }`: checks after the cluster's last step.
    #[serde(default)]
    pub postflight: Postflight,
    /// `hook "POINT" { command = [...] }`: the user's commands at points of the upgrade.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookSpec>,
    #[serde(skip)]
    #[schemars(skip)]
    pub origin: Option<SourceLoc>,
    #[serde(skip)]
    #[schemars(skip)]
    pub version_origin: Option<SourceLoc>,
}

fn one() -> u32 {
    1
}

impl ClusterSpec {
    pub fn address(&self) -> String {
        format!("cluster.{}", self.label)
    }
    pub fn node_group(&self, name: &str) -> Option<&NodeGroupSpec> {
        self.node_groups.iter().find(|n| n.name == name)
    }
}

/// A control-plane version named by what the provider offers rather than by number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VersionAlias {
    /// `"latest"`: the newest version the provider offers.
    Latest,
    /// `"-"`: the provider's default version for new clusters (on GKE, the release
    /// channel's default when the cluster is enrolled in one).
    ProviderDefault,
}

impl fmt::Display for VersionAlias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VersionAlias::Latest => "latest",
            VersionAlias::ProviderDefault => "-",
        })
    }
}

/// `node_group "NAME" { ... }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NodeGroupSpec {
    pub name: String,
    /// Target kubelet version; defaults to the cluster's version.
    pub version: Version,
    /// No `version` was written: the group follows the cluster's (also once an alias
    /// like `latest` is resolved).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub follows_cluster: bool,
    pub strategy: Strategy,
    #[serde(default)]
    pub drain: DrainSpec,
    /// Rolling: how long the provider waits after draining each node before replacing it
    /// (AKS nodeSoakDurationInMinutes).
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub node_soak: Option<Duration>,
    /// K3s/RKE2/kubeadm: which nodes belong to the group, as a label selector in kubectl's
    /// syntax (`node-role.kubernetes.io/control-plane!=true,pool=edge`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<String>,
    /// kubeadm: the group's hosts, as kup reaches them over SSH.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// K3s/RKE2: tolerations for the upgrade Jobs, so they run on tainted nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// K3s/RKE2: when the controller may start upgrading nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<UpgradeWindow>,
    /// Rolling: wait this long after each node is upgraded before the next one starts
    /// (K3s/RKE2 `postCompleteDelay`).
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub batch_soak: Option<Duration>,
    /// How long the group's upgrade may take before kup stops waiting and fails the step.
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
    #[serde(skip)]
    #[schemars(skip)]
    pub origin: Option<SourceLoc>,
    #[serde(skip)]
    #[schemars(skip)]
    pub version_origin: Option<SourceLoc>,
}

/// Where a hook runs.
pub const HOOK_POINTS: &[&str] = &[
    "before_control_plane",
    "after_control_plane",
    "before_node_group",
    "after_node_group",
    "after_cluster",
];

/// `hook "after_control_plane" { command = ["./smoke.sh"], timeout = "5m" }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HookSpec {
    /// One of [`HOOK_POINTS`].
    pub point: String,
    /// Run as an argument list (no shell). Sensitive arguments are written as
    /// `(sensitive value)`.
    #[schemars(with = "Vec<String>")]
    pub command: Argv,
    #[serde(with = "duration_str")]
    #[schemars(with = "String")]
    pub timeout: Duration,
}

/// A command line some of whose arguments may be sensitive (derived from a `sensitive`
/// variable). Serialized, as in plan files, the journal, the state and `-json` output, it
/// is a list of strings in which every sensitive argument is `(sensitive value)`: the value
/// itself never reaches a file. Read back, its sensitive arguments are unknown until
/// [`Argv::fill`] takes them from the configuration again.
#[derive(Clone, Default)]
pub struct Argv {
    args: Vec<String>,
    sensitive: Vec<bool>,
    /// False after deserializing a command with sensitive arguments.
    filled: bool,
}

impl Argv {
    /// `args` with the sensitive ones marked (`sensitive[i]` for `args[i]`).
    pub fn new(args: Vec<String>, sensitive: Vec<bool>) -> Argv {
        assert_eq!(args.len(), sensitive.len(), "one mark per argument");
        Argv {
            args,
            sensitive,
            filled: true,
        }
    }

    /// The arguments to run: real values. Call only when [`Argv::is_filled`].
    pub fn args(&self) -> &[String] {
        &self.args
    }

    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }

    pub fn has_sensitive(&self) -> bool {
        self.sensitive.iter().any(|s| *s)
    }

    /// The real values of the sensitive arguments are known.
    pub fn is_filled(&self) -> bool {
        self.filled
    }

    /// The real values of the sensitive arguments (to keep them out of a hook's output).
    pub fn sensitive_values(&self) -> impl Iterator<Item = &str> {
        self.args
            .iter()
            .zip(&self.sensitive)
            .filter(|(_, s)| **s)
            .map(|(a, _)| a.as_str())
    }

    /// The arguments as they may be shown or written.
    pub fn shown(&self) -> Vec<&str> {
        self.args
            .iter()
            .zip(&self.sensitive)
            .map(|(a, s)| {
                if *s {
                    crate::redact::SENSITIVE
                } else {
                    a.as_str()
                }
            })
            .collect()
    }

    /// Take the sensitive values from `from` (the same command, evaluated again from the
    /// configuration). Fails when the commands differ in anything that may be shown, so a
    /// changed configuration cannot slip a different command into a saved plan.
    pub fn fill(&mut self, from: &Argv) -> Result<(), String> {
        if self.shown() != from.shown() {
            return Err(format!(
                "the configuration now says [{}], the plan says [{}]",
                from.shown().join(", "),
                self.shown().join(", ")
            ));
        }
        self.args = from.args.clone();
        self.filled = true;
        Ok(())
    }
}

impl From<Vec<String>> for Argv {
    fn from(args: Vec<String>) -> Argv {
        let n = args.len();
        Argv::new(args, vec![false; n])
    }
}

/// Debug output (logs, panics) shows what may be shown, like everything else.
impl std::fmt::Debug for Argv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.shown()).finish()
    }
}

impl std::fmt::Display for Argv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown().join(" "))
    }
}

/// Equal when they show the same: a command read back from a file equals the one the
/// configuration makes, whatever the sensitive values.
impl PartialEq for Argv {
    fn eq(&self, other: &Argv) -> bool {
        self.shown() == other.shown()
    }
}

impl Eq for Argv {}

impl Serialize for Argv {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.shown().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Argv {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Argv, D::Error> {
        let args = Vec::<String>::deserialize(d)?;
        let sensitive: Vec<bool> = args.iter().map(|a| a == crate::redact::SENSITIVE).collect();
        let filled = !sensitive.iter().any(|s| *s);
        Ok(Argv {
            args,
            sensitive,
            filled,
        })
    }
}

/// `preflight { manifests = [...], removed_apis = "block", health = "block", ... }`: what
/// each safety check found does to the plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Preflight {
    /// Folders (or files) of manifests, relative to the configuration, checked for APIs
    /// the upgrade removes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<String>,
    /// Objects (in the cluster or the manifests) at an API one of the hops removes.
    #[serde(default)]
    pub removed_apis: CheckMode,
    /// The API server not ready, nodes NotReady (pods Pending or crash-looping, cordoned
    /// nodes and single-replica workloads without a PodDisruptionBudget only warn).
    #[serde(default)]
    pub health: CheckMode,
    /// Installed add-ons the configuration does not manage that are not compatible with
    /// a minor the plan passes through (default `warn`).
    #[serde(default)]
    pub addons: CheckMode,
    /// The provider's own upgrade checks (EKS upgrade insights) that fail for a minor
    /// the plan passes through.
    #[serde(default)]
    pub insights: CheckMode,
}

impl Default for Preflight {
    fn default() -> Self {
        Preflight {
            manifests: Vec::new(),
            removed_apis: CheckMode::Block,
            health: CheckMode::Block,
            // Add-ons the configuration does not name are the team's to move; kup says
            // which will not fit a hop, and blocks only when asked to.
            addons: CheckMode::Warn,
            insights: CheckMode::Block,
        }
    }
}

/// What a failed pre-flight check does to the plan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckMode {
    /// The plan is refused until the problem is fixed.
    #[default]
    Block,
    /// The plan is made and says what is wrong.
    Warn,
    /// The check does not run.
    Off,
}

impl CheckMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckMode::Block => "block",
            CheckMode::Warn => "warn",
            CheckMode::Off => "off",
        }
    }
}

/// `postflight { ... }`: what kup proves after each cluster's last step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Postflight {
    /// Run the built-in checks (every node Ready at its planned version, every workload
    /// that was available still available, no new Pending pods).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Also start a pod, wait for it to run, and delete it.
    #[serde(default)]
    pub smoke_pod: bool,
    pub smoke_image: String,
    /// Where the smoke pod runs.
    pub namespace: String,
    /// How long workloads may take to become available again.
    #[serde(with = "duration_str")]
    #[schemars(with = "String")]
    pub timeout: Duration,
}

/// The image of the smoke pod: tiny, and always in the registry Kubernetes itself uses.
pub const SMOKE_IMAGE: &str = "registry.k8s.io/pause:3.10";

impl Default for Postflight {
    fn default() -> Self {
        Postflight {
            enabled: true,
            smoke_pod: false,
            smoke_image: SMOKE_IMAGE.into(),
            namespace: "default".into(),
            timeout: Duration::from_secs(600),
        }
    }
}

/// A kubeadm cluster's hosts and how kup upgrades them (`ssh`, `control_plane` blocks and
/// the kubeadm attributes of a cluster block).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KubeadmSpec {
    #[serde(default)]
    pub ssh: SshSpec,
    /// Control-plane hosts in upgrade order: the first runs `kubeadm upgrade apply`.
    pub control_plane_hosts: Vec<String>,
    /// Stop kube-apiserver gracefully (SIGTERM, then wait) before `kubeadm upgrade apply`
    /// moves etcd, as the kubeadm documentation suggests.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub etcd_graceful_restart: bool,
    /// `kubeadm upgrade apply --certificate-renewal` (default true).
    #[serde(default = "yes")]
    pub certificate_renewal: bool,
    /// Run after `kubeadm upgrade apply` on the first control-plane host (a CNI upgrade).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cni_upgrade: Vec<String>,
    /// `recover = "force"`: `kubeadm upgrade apply --force` on the same version.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

fn yes() -> bool {
    true
}

/// How kup reaches kubeadm hosts with the system's OpenSSH client (which also reads the
/// user's ssh config, agent and known_hosts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SshSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Run every command through `sudo -n` (default true).
    #[serde(default = "yes")]
    pub sudo: bool,
    /// An ssh_config file instead of the user's `~/.ssh/config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// A known_hosts file instead of the user's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts: Option<String>,
}

impl Default for SshSpec {
    fn default() -> Self {
        SshSpec {
            user: None,
            private_key: None,
            port: None,
            sudo: true,
            config: None,
            known_hosts: None,
        }
    }
}

/// A Kubernetes toleration (`key`, `operator` Equal|Exists, `value`, `effect`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Toleration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

/// Days and hours in which upgrades may start (kured's time-window format, which
/// system-upgrade-controller uses): `days` like `saturday`/`sat`, `start`/`end` `HH:MM`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UpgradeWindow {
    pub days: Vec<String>,
    pub start: String,
    pub end: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// How a node group's nodes are replaced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Strategy {
    /// Replace nodes in place, at most `max_unavailable` at a time.
    Rolling {
        max_unavailable: Unavailable,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_surge: Option<Unavailable>,
    },
    /// Create a new group at the target version, move pods, then delete the old one.
    BlueGreen {
        max_unavailable: Unavailable,
        #[serde(with = "duration_str")]
        #[schemars(with = "String")]
        soak: Duration,
        #[serde(with = "duration_str")]
        #[schemars(with = "String")]
        batch_soak: Duration,
        /// Use the provider's own blue/green upgrade (GKE's BLUE_GREEN) instead of kup
        /// creating and deleting groups. `None`: native where the provider has it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        native: Option<bool>,
        /// Native only: complete the upgrade (skip the rest of the soak) once every node
        /// is Ready and every workload available for this long.
        #[serde(
            default,
            with = "opt_duration",
            skip_serializing_if = "Option::is_none"
        )]
        #[schemars(with = "Option<String>")]
        complete_when_healthy_for: Option<Duration>,
    },
}

/// A provider's own blue/green node-pool upgrade settings (GKE `BLUE_GREEN`): drain
/// `batch` old nodes at a time, wait `batch_soak` between batches, keep the old pool
/// cordoned for `soak` before deleting it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NativeBlueGreen {
    pub batch: Unavailable,
    #[serde(with = "duration_str")]
    #[schemars(with = "String")]
    pub batch_soak: Duration,
    #[serde(with = "duration_str")]
    #[schemars(with = "String")]
    pub soak: Duration,
}

impl fmt::Display for NativeBlueGreen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "native blue/green (batches of {}, batch soak {}, soak {})",
            self.batch,
            humantime::format_duration(self.batch_soak),
            humantime::format_duration(self.soak)
        )
    }
}

impl Strategy {
    pub fn max_unavailable(&self) -> Unavailable {
        match self {
            Strategy::Rolling {
                max_unavailable, ..
            }
            | Strategy::BlueGreen {
                max_unavailable, ..
            } => *max_unavailable,
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Rolling { .. } => "rolling",
            Strategy::BlueGreen { .. } => "blue_green",
        }
    }

    /// The native blue/green settings this strategy asks a provider for, when the
    /// provider has its own blue/green upgrade and the user did not opt out.
    pub fn native_blue_green(&self, provider_has_native: bool) -> Option<NativeBlueGreen> {
        match self {
            Strategy::BlueGreen {
                max_unavailable,
                soak,
                batch_soak,
                native,
                ..
            } if native.unwrap_or(provider_has_native) && provider_has_native => {
                Some(NativeBlueGreen {
                    batch: *max_unavailable,
                    batch_soak: *batch_soak,
                    soak: *soak,
                })
            }
            _ => None,
        }
    }
}

/// A count of nodes or a percentage of the group (`2` or `"25%"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Unavailable {
    Count(u32),
    Percent(u32),
}

impl Unavailable {
    /// Nodes this allows out of `size` at once (a percentage rounds down, but never below 1).
    pub fn nodes_of(&self, size: u32) -> u32 {
        match *self {
            Unavailable::Count(n) => n,
            Unavailable::Percent(p) => ((size as u64 * p as u64) / 100).max(1) as u32,
        }
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unavailable::Count(n) => write!(f, "{n}"),
            Unavailable::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// `drain { ... }` inside a node group: how kup (or the provider) moves pods off a node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DrainSpec {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    #[schemars(with = "Option<String>")]
    pub grace_period: Option<Duration>,
    #[serde(default)]
    pub delete_emptydir_data: bool,
    #[serde(default)]
    pub force: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    #[schemars(with = "Option<String>")]
    pub skip_wait_for_delete_timeout: Option<Duration>,
    #[serde(default)]
    pub disable_eviction: bool,
    /// `on_blocked = "wait"`: a PodDisruptionBudget that blocks the drain at plan time does
    /// not stop apply; the drain waits (up to `timeout`) for the budget to allow it.
    #[serde(default)]
    pub on_blocked_wait: bool,
    /// The pause between refused evictions, first and longest (`None`: kubectl's 1 s
    /// doubling to 5 s). Not configuration: the executor shortens it for a simulated
    /// cluster whose clock runs faster than real time, so a retry costs the cluster the
    /// seconds it would cost a real one.
    #[serde(skip)]
    #[schemars(skip)]
    pub retry_backoff: Option<(Duration, Duration)>,
}

/// `addon "NAME" { version = ... }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AddonSpec {
    pub name: String,
    pub version: AddonVersionReq,
    #[serde(skip)]
    #[schemars(skip)]
    pub origin: Option<SourceLoc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AddonVersionReq {
    /// The provider's default version for the control plane's minor.
    Compatible,
    /// The newest version compatible with the control plane's minor.
    Latest,
    /// Exactly this version.
    Exact(String),
}

// ---------------------------------------------------------------------------------------
// What providers report
// ---------------------------------------------------------------------------------------

/// A cluster as its provider reports it now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ActualCluster {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Control-plane version; minor-only when the provider reports only minors (EKS).
    pub version: Version,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_version: Option<String>,
    pub status: String,
    /// Control-plane versions the provider offers now (a minor alias resolves against these).
    pub offered_versions: Vec<Version>,
    pub node_groups: Vec<ActualNodeGroup>,
    pub addons: Vec<ActualAddon>,
    /// Operations already running at the provider (e.g. an apply that was killed).
    #[serde(default)]
    pub in_flight: Vec<InFlightOperation>,
    /// Nodes, pods and PDBs, when kup could reach the cluster's Kubernetes API. Not part
    /// of a plan's staleness fingerprint: pods come and go all the time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube: Option<crate::kube::KubeSnapshot>,
    /// The version the provider gives new clusters (what `version = "-"` means).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_version: Option<Version>,
    /// What the provider will do to this cluster on its own, when it upgrades clusters
    /// automatically (a GKE release channel), e.g. "release channel REGULAR …".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_upgrade: Option<String>,
    /// The provider's maintenance windows and exclusions (GKE), when it has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<crate::maintenance::MaintenancePolicy>,
    /// Upgrade resources kup created in the cluster and has not removed yet (K3s/RKE2:
    /// system-upgrade-controller Plans, `NAMESPACE/NAME`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upgrade_plans: Vec<String>,
    /// Objects and the apiVersions they are written at (from the `preflight` manifests),
    /// for the removed-API check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_uses: Vec<crate::removed_apis::ApiUse>,
    /// What kup read in the cluster for the pre-flight checks (API server readiness,
    /// workloads, objects at removed APIs), when it could reach the Kubernetes API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<crate::kube::ClusterScan>,
    /// The provider's own upgrade checks (EKS upgrade insights).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub insights: Vec<crate::preflight::Insight>,
    /// The provider's override of its own upgrade protection (AKS
    /// upgradeSettings.overrideSettings), when the provider has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_protection: Option<crate::preflight::UpgradeProtection>,
    /// Support dates the provider publishes itself (EKS DescribeClusterVersions), which
    /// take precedence over kup's table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub support: Vec<crate::preflight::SupportDates>,
}

impl ActualCluster {
    pub fn node_group(&self, name: &str) -> Option<&ActualNodeGroup> {
        self.node_groups.iter().find(|n| n.name == name)
    }
    pub fn addon(&self, name: &str) -> Option<&ActualAddon> {
        self.addons.iter().find(|a| a.name == name)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ActualNodeGroup {
    pub name: String,
    pub version: Version,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_version: Option<String>,
    pub status: String,
    pub desired_size: u32,
    pub min_size: u32,
    pub max_size: u32,
    /// The provider-side limit on nodes replaced at once, when the provider has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<Unavailable>,
    /// The provider-side number of extra nodes added during an upgrade, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<Unavailable>,
    #[serde(default)]
    pub health_issues: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The provider's own blue/green upgrade settings, when the group upgrades that way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<NativeBlueGreen>,
    /// The phase of a native blue/green upgrade running now (GKE's blueGreenInfo.phase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_phase: Option<String>,
    /// How the provider's own drains treat PodDisruptionBudgets and grace (GKE's
    /// nodeDrainConfig), when it drains by itself and the group sets them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_limits: Option<DrainLimits>,
    /// The provider's wait after draining each node, when it has one.
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub node_soak: Option<Duration>,
    /// The group's nodes run the control plane (K3s/RKE2 servers): they are upgraded by
    /// the control-plane step, never rolled on their own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub control_plane: bool,
}

impl ActualNodeGroup {
    /// A group of nodes upgraded in place (K3s/RKE2, kubeadm): its size is its node count,
    /// its version the oldest kubelet, and every node not Ready is a health issue.
    pub fn of_nodes(
        name: &str,
        oldest_kubelet: Version,
        nodes: u32,
        not_ready: impl IntoIterator<Item = String>,
        control_plane: bool,
    ) -> ActualNodeGroup {
        ActualNodeGroup {
            name: name.to_string(),
            version: oldest_kubelet,
            release_version: None,
            status: "ACTIVE".into(),
            desired_size: nodes,
            min_size: nodes,
            max_size: nodes,
            max_unavailable: None,
            max_surge: None,
            health_issues: not_ready
                .into_iter()
                .map(|n| format!("node {n} is not Ready"))
                .collect(),
            labels: BTreeMap::new(),
            blue_green: None,
            upgrade_phase: None,
            drain_limits: None,
            node_soak: None,
            control_plane,
        }
    }
}

/// The limits of a provider's own node drains: how long PodDisruptionBudgets are
/// respected before the node is drained anyway, and the most grace a pod gets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DrainLimits {
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub pdb_timeout: Option<Duration>,
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub grace_termination: Option<Duration>,
}

impl DrainLimits {
    /// What a node group's `drain` block asks of a provider that drains by itself
    /// (`None` when it sets neither, so the provider's defaults stay).
    pub fn from_drain(d: &DrainSpec) -> Option<DrainLimits> {
        (d.timeout.is_some() || d.grace_period.is_some()).then_some(DrainLimits {
            pdb_timeout: d.timeout,
            grace_termination: d.grace_period,
        })
    }
}

impl fmt::Display for DrainLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |d: Option<Duration>| {
            d.map(|d| humantime::format_duration(d).to_string())
                .unwrap_or_else(|| "default".into())
        };
        write!(
            f,
            "PDB timeout {}, grace {}",
            show(self.pdb_timeout),
            show(self.grace_termination)
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ActualAddon {
    pub name: String,
    pub version: String,
    pub status: String,
    /// For each Kubernetes minor: the add-on versions the provider says are compatible,
    /// newest first, and which one is the provider's default.
    #[serde(default)]
    pub compatibility: BTreeMap<Minor, AddonCompatibility>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AddonCompatibility {
    pub versions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InFlightOperation {
    /// The provider's id for the operation (EKS update id, GKE operation name, ...).
    pub id: String,
    /// What it changes: `control_plane`, `node_group.NAME`, `addon.NAME`.
    pub resource: String,
    /// Provider-specific kind, e.g. `VersionUpdate`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

// ---------------------------------------------------------------------------------------
// serde helpers for durations written the way users write them ("15m", "1h30m")
// ---------------------------------------------------------------------------------------

pub mod duration_str {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

pub mod opt_duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.collect_str(&humantime::format_duration(*d)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_rounds_down_but_never_to_zero() {
        assert_eq!(Unavailable::Percent(25).nodes_of(10), 2);
        assert_eq!(Unavailable::Percent(25).nodes_of(3), 1);
        assert_eq!(Unavailable::Percent(100).nodes_of(7), 7);
        assert_eq!(Unavailable::Count(3).nodes_of(2), 3);
    }

    #[test]
    fn strategy_serializes_with_human_durations() {
        let s = Strategy::BlueGreen {
            max_unavailable: Unavailable::Percent(25),
            soak: Duration::from_secs(900),
            batch_soak: Duration::ZERO,
            native: None,
            complete_when_healthy_for: None,
        };
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["type"], "blue_green");
        assert_eq!(j["soak"], "15m");
        let back: Strategy = serde_json::from_value(j).unwrap();
        assert_eq!(back, s);
    }
}

/// `backend "local" { path }` or `backend "s3" { ... }`: where the state, its journal and
/// its lock live. Not part of [`Desired`]: it says where kup keeps its records, not what
/// the clusters should be, so a saved plan does not carry it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BackendSpec {
    pub kind: BackendKind,
    /// The `backend` keyword, for errors about the block (None: no block, the default).
    pub at: Option<SourceLoc>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub enum BackendKind {
    /// Files under the configuration directory; `path` as written (relative to it).
    #[default]
    Local,
    LocalAt(String),
    S3(S3Backend),
}

/// Terraform's S3 backend settings, locking through a DynamoDB table.
#[derive(Clone, Debug, PartialEq)]
pub struct S3Backend {
    pub bucket: String,
    /// The state object's key; its backup is `KEY.backup`, its journal `KEY.journal`.
    pub key: String,
    pub region: Option<String>,
    /// Another S3/DynamoDB-compatible endpoint (both services), e.g. a local test server.
    pub endpoint: Option<String>,
    /// The DynamoDB table with a string partition key `LockID`.
    pub dynamodb_table: String,
    pub profile: Option<String>,
}

impl S3Backend {
    /// `s3://BUCKET/KEY`, as messages name the state.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}
