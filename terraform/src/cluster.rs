//! `resource "kup_cluster"`: kup's `cluster` block as a Terraform resource. Read is kup's
//! refresh, plan is kup's planner (its steps and version timeline in `planned_steps` and
//! `version_timeline`), apply is kup's executor with its journal.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use kup_engine::model::{ActualCluster, Desired, Strategy};
use kup_engine::plan::SavedPlan;
use kup_engine::planner::PlanError;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{
    Attribute, AttributeConstraint, AttributeType, Block, Description, NestedBlock, Schema,
};
use tf_provider::value::{serde_as_vec, Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, Resource};

use crate::hcl::{path, HclWriter, Step};
use crate::provider_config::{attr, Configured};
use crate::session::{self, LoadError, PlanFailure, Session};
use crate::Shared;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AddonBlock {
    pub name: Value<String>,
    pub version: Value<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DrainBlock {
    pub timeout: Value<String>,
    pub grace_period: Value<String>,
    pub delete_emptydir_data: Value<bool>,
    pub force: Value<bool>,
    pub pod_selector: Value<String>,
    pub skip_wait_for_delete_timeout: Value<String>,
    pub disable_eviction: Value<bool>,
    pub on_blocked: Value<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BlueGreenBlock {
    pub soak: Value<String>,
    pub batch_soak: Value<String>,
    pub native: Value<bool>,
    pub complete_when_healthy_for: Value<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeGroupBlock {
    pub name: Value<String>,
    pub version: Value<String>,
    pub strategy: Value<String>,
    pub max_unavailable: Value<String>,
    pub max_surge: Value<String>,
    pub node_soak: Value<String>,
    pub timeout: Value<String>,
    #[serde(with = "serde_as_vec")]
    pub drain: Value<DrainBlock>,
    #[serde(with = "serde_as_vec")]
    pub blue_green: Value<BlueGreenBlock>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    pub id: Value<String>,
    pub name: Value<String>,
    pub kup_provider: Value<String>,
    pub region: Value<String>,
    pub version: Value<String>,
    pub kubeconfig: Value<String>,
    pub context: Value<String>,
    pub parallel_node_groups: Value<i64>,
    pub addon: Value<Vec<AddonBlock>>,
    pub node_group: Value<Vec<NodeGroupBlock>>,
    pub current_version: Value<String>,
    pub planned_steps: Value<Vec<String>>,
    pub version_timeline: Value<Vec<String>>,
}

/// Kept by Terraform between plan and apply, and after an apply that did not finish.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Private {
    /// The kup plan `terraform plan` showed (JSON): apply carries out exactly this, and
    /// kup's preconditions refuse it when the cluster changed in between.
    pub saved_plan: Option<String>,
    /// The journal of a run that did not finish (JSON Lines), so a later apply resumes it
    /// even where the journal file is gone (another machine, a fresh CI workspace).
    pub journal: Option<String>,
}

const NODE_GROUP_ATTRS: &[(&str, &str, &str)] = &[
    (
        "version",
        "string",
        "Target kubelet version (default: the cluster's).",
    ),
    (
        "strategy",
        "string",
        "\"rolling\" (default) or \"blue_green\".",
    ),
    (
        "max_unavailable",
        "string",
        "Nodes replaced at once: a count or \"N%\" (default 1).",
    ),
    (
        "max_surge",
        "string",
        "Extra nodes during a rolling upgrade: a count or \"N%\".",
    ),
    (
        "node_soak",
        "string",
        "Rolling: the provider's wait after draining each node (AKS).",
    ),
    (
        "timeout",
        "string",
        "How long the group's upgrade may take before kup fails the step.",
    ),
];
const DRAIN_ATTRS: &[(&str, &str, &str)] = &[
    (
        "timeout",
        "string",
        "How long one node's drain may take (default 15m).",
    ),
    ("grace_period", "string", "Pod termination grace period."),
    (
        "delete_emptydir_data",
        "bool",
        "Evict pods with emptyDir volumes.",
    ),
    ("force", "bool", "Delete pods no controller manages."),
    (
        "pod_selector",
        "string",
        "Only drain pods matching this label selector.",
    ),
    (
        "skip_wait_for_delete_timeout",
        "string",
        "Stop waiting for pods stuck deleting after this long.",
    ),
    (
        "disable_eviction",
        "bool",
        "Delete instead of evict (ignores PodDisruptionBudgets).",
    ),
    (
        "on_blocked",
        "string",
        "\"fail\" (apply refuses a drain the plan predicts a PDB blocks) or \"wait\".",
    ),
];
const BLUE_GREEN_ATTRS: &[(&str, &str, &str)] = &[
    (
        "soak",
        "string",
        "How long the new group soaks before the old one goes (default 15m).",
    ),
    (
        "batch_soak",
        "string",
        "Wait between drain batches (default 0s).",
    ),
    (
        "native",
        "bool",
        "Use the provider's own blue/green upgrade where it has one (GKE).",
    ),
    (
        "complete_when_healthy_for",
        "string",
        "Native only: end the soak once healthy this long.",
    ),
];

fn attrs(list: &[(&str, &str, &str)]) -> HashMap<String, Attribute> {
    list.iter()
        .map(|(n, t, d)| (n.to_string(), attr(t, d, AttributeConstraint::Optional)))
        .collect()
}

fn computed_list(description: &str) -> Attribute {
    Attribute {
        attr_type: AttributeType::List(Box::new(AttributeType::String)),
        description: Description::plain(description),
        constraint: AttributeConstraint::Computed,
        ..Default::default()
    }
}

pub fn schema() -> Schema {
    let mut ng = attrs(NODE_GROUP_ATTRS);
    ng.insert(
        "name".into(),
        attr(
            "string",
            "The node group's name at the provider.",
            AttributeConstraint::Required,
        ),
    );
    let node_group = Block {
        description: Description::plain("kup's `node_group` block."),
        attributes: ng,
        blocks: [
            (
                "drain".to_string(),
                NestedBlock::Optional(Block {
                    description: Description::plain("How kup (or the provider) drains nodes."),
                    attributes: attrs(DRAIN_ATTRS),
                    ..Default::default()
                }),
            ),
            (
                "blue_green".to_string(),
                NestedBlock::Optional(Block {
                    description: Description::plain("Only with strategy = \"blue_green\"."),
                    attributes: attrs(BLUE_GREEN_ATTRS),
                    ..Default::default()
                }),
            ),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    let addon = Block {
        description: Description::plain("kup's `addon` block."),
        attributes: [
            (
                "name".to_string(),
                attr(
                    "string",
                    "The add-on's name, e.g. coredns.",
                    AttributeConstraint::Required,
                ),
            ),
            (
                "version".to_string(),
                attr(
                    "string",
                    "\"compatible\", \"latest\" or an exact version.",
                    AttributeConstraint::Required,
                ),
            ),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    let mut attributes: HashMap<String, Attribute> = [
        ("name", "string", "The cluster's name at the provider.", AttributeConstraint::Required),
        ("version", "string", "Target control-plane version: \"1.31\" (newest patch offered), \"1.31.7\", \"latest\" or \"-\".", AttributeConstraint::Required),
        ("kup_provider", "string", "The provider block (`eks`, `eks.ALIAS`); optional when one is configured.", AttributeConstraint::Optional),
        ("region", "string", "Region override (default: the provider block's).", AttributeConstraint::Optional),
        ("kubeconfig", "string", "The cluster's Kubernetes API (EKS/GKE/AKS find it themselves).", AttributeConstraint::Optional),
        ("context", "string", "The kubeconfig context.", AttributeConstraint::Optional),
        ("parallel_node_groups", "number", "Node groups rolled at the same time (default 1).", AttributeConstraint::Optional),
    ]
    .into_iter()
    .map(|(n, t, d, c)| (n.to_string(), attr(t, d, c)))
    .collect();
    attributes.insert(
        "id".into(),
        attr("string", "`PROVIDER/NAME`.", AttributeConstraint::Computed),
    );
    attributes.insert(
        "current_version".into(),
        attr(
            "string",
            "The control-plane version running, as kup's refresh read it.",
            AttributeConstraint::Computed,
        ),
    );
    attributes.insert(
        "planned_steps".into(),
        computed_list("kup's plan: one `STEP-ID: what it does` per step, in order (empty when the cluster matches the configuration)."),
    );
    attributes.insert(
        "version_timeline".into(),
        computed_list("The versions after each step of the plan: `control_plane=1.29 general=1.28 ...`, proven legal under the skew policy."),
    );
    Schema {
        version: 1,
        block: Block {
            description: Description::plain(
                "A Kubernetes cluster kup upgrades: the arguments are those of kup's `cluster` block. Destroying it only forgets it: kup never deletes clusters.",
            ),
            attributes,
            blocks: [
                ("node_group".to_string(), NestedBlock::List(node_group)),
                ("addon".to_string(), NestedBlock::List(addon)),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        },
    }
}

fn at(steps: &[Step], name: &str) -> AttributePath {
    let mut s = steps.to_vec();
    s.push(Step::Attr(name.into()));
    path(&s)
}

/// kup labels are identifiers; a Terraform-side name like `prod-eu` keeps its dashes.
fn label_of(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl ClusterState {
    /// Every argument is known (unknown ones wait for other resources; planning waits too).
    fn is_known(&self) -> bool {
        let strings = [
            &self.name,
            &self.kup_provider,
            &self.region,
            &self.version,
            &self.kubeconfig,
            &self.context,
        ];
        strings.iter().all(|s| !s.is_unknown())
            && !self.parallel_node_groups.is_unknown()
            && !self.addon.is_unknown()
            && !self.node_group.is_unknown()
            && self
                .addon
                .iter()
                .flatten()
                .all(|a| !a.name.is_unknown() && !a.version.is_unknown())
            && self
                .node_group
                .iter()
                .flatten()
                .all(NodeGroupBlock::is_known)
    }

    /// The resource as a kup `cluster` block.
    fn write(&self, configured: &Configured) -> HclWriter {
        let mut w = HclWriter::default();
        let name = self.name.as_deref_option().unwrap_or_default();
        w.open(
            "cluster",
            Some(&label_of(name)),
            Some(AttributePath::root()),
        );
        let provider = self
            .kup_provider
            .as_deref_option()
            .map(str::to_string)
            .or_else(|| match configured.keys.as_slice() {
                [only] => Some(only.clone()),
                _ => None,
            });
        w.string(
            "provider",
            provider.as_deref(),
            AttributePath::new("kup_provider"),
        );
        for (key, v) in [
            ("name", &self.name),
            ("region", &self.region),
            ("version", &self.version),
            ("kubeconfig", &self.kubeconfig),
            ("context", &self.context),
        ] {
            w.string(key, v.as_deref_option(), AttributePath::new(key));
        }
        w.number(
            "parallel_node_groups",
            self.parallel_node_groups.as_ref_option().map(|n| *n as f64),
            AttributePath::new("parallel_node_groups"),
        );
        for (i, a) in self.addon.iter().flatten().enumerate() {
            let steps = [Step::Attr("addon".into()), Step::Index(i as i64)];
            w.open("addon", a.name.as_deref_option(), Some(path(&steps)));
            w.string(
                "version",
                a.version.as_deref_option(),
                at(&steps, "version"),
            );
            w.close();
        }
        for (i, ng) in self.node_group.iter().flatten().enumerate() {
            let steps = [Step::Attr("node_group".into()), Step::Index(i as i64)];
            ng.write(&steps, &mut w);
        }
        w.close();
        w
    }
}

impl NodeGroupBlock {
    fn is_known(&self) -> bool {
        let strings = [
            &self.name,
            &self.version,
            &self.strategy,
            &self.max_unavailable,
            &self.max_surge,
            &self.node_soak,
            &self.timeout,
        ];
        strings.iter().all(|s| !s.is_unknown())
            && !self.drain.is_unknown()
            && !self.blue_green.is_unknown()
    }

    fn write(&self, steps: &[Step], w: &mut HclWriter) {
        w.open("node_group", self.name.as_deref_option(), Some(path(steps)));
        for (key, v) in [
            ("version", &self.version),
            ("strategy", &self.strategy),
            ("node_soak", &self.node_soak),
            ("timeout", &self.timeout),
        ] {
            w.string(key, v.as_deref_option(), at(steps, key));
        }
        for (key, v) in [
            ("max_unavailable", &self.max_unavailable),
            ("max_surge", &self.max_surge),
        ] {
            w.count_or_percent(key, v.as_deref_option(), at(steps, key));
        }
        if let Value::Value(d) = &self.drain {
            let mut s = steps.to_vec();
            s.push(Step::Attr("drain".into()));
            w.open("drain", None, Some(path(&s)));
            for (key, v) in [
                ("timeout", &d.timeout),
                ("grace_period", &d.grace_period),
                ("pod_selector", &d.pod_selector),
                (
                    "skip_wait_for_delete_timeout",
                    &d.skip_wait_for_delete_timeout,
                ),
                ("on_blocked", &d.on_blocked),
            ] {
                w.string(key, v.as_deref_option(), at(&s, key));
            }
            for (key, v) in [
                ("delete_emptydir_data", &d.delete_emptydir_data),
                ("force", &d.force),
                ("disable_eviction", &d.disable_eviction),
            ] {
                w.bool(key, v.as_ref_option().copied(), at(&s, key));
            }
            w.close();
        }
        if let Value::Value(b) = &self.blue_green {
            let mut s = steps.to_vec();
            s.push(Step::Attr("blue_green".into()));
            w.open("blue_green", None, Some(path(&s)));
            for (key, v) in [
                ("soak", &b.soak),
                ("batch_soak", &b.batch_soak),
                ("complete_when_healthy_for", &b.complete_when_healthy_for),
            ] {
                w.string(key, v.as_deref_option(), at(&s, key));
            }
            w.bool(
                "native",
                b.native.as_ref_option().copied(),
                at(&s, "native"),
            );
            w.close();
        }
        w.close();
    }
}

pub struct ClusterResource {
    pub configured: Shared,
}

/// What the resource's arguments mean to kup: loaded, with the providers connected.
struct Prepared {
    session: Session,
    resource: HclWriter,
}

impl ClusterResource {
    fn configured(&self, diags: &mut Diagnostics) -> Option<Arc<Configured>> {
        let c = self.configured.read().unwrap().clone();
        if c.is_none() {
            diags.root_error(
                "The kup provider is not configured",
                "Terraform configures providers before planning; check the `provider \"kup\"` block's errors above.",
            );
        }
        c
    }

    /// Load the resource with kup's loader, reporting its findings at the resource's
    /// attributes.
    pub(crate) fn load(
        configured: &Configured,
        state: &ClusterState,
        diags: &mut Diagnostics,
    ) -> Option<(session::LoadedConfig, HclWriter)> {
        let resource = state.write(configured);
        match session::load(&configured.providers, Some(&resource)) {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    report(diags, w, false);
                }
                Some((loaded, resource))
            }
            Err(errors) => {
                for e in &errors {
                    report(diags, e, true);
                }
                None
            }
        }
    }

    async fn prepare(&self, state: &ClusterState, diags: &mut Diagnostics) -> Option<Prepared> {
        let configured = self.configured(diags)?;
        let (loaded, resource) = Self::load(&configured, state, diags)?;
        match Session::connect(&loaded.loaded).await {
            Ok(session) => Some(Prepared { session, resource }),
            Err(e) => {
                diags.error(
                    "kup cannot reach the provider",
                    e,
                    AttributePath::new("kup_provider"),
                );
                None
            }
        }
    }

    /// One journal per cluster, named after its id (`eks/prod-eu` → `eks_prod-eu.journal`).
    fn journal_path(configured: &Configured, session: &Session) -> PathBuf {
        let spec = session.cluster();
        let file: String = format!("{}/{}", spec.provider, spec.name)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        configured.state_dir.join(format!("{file}.journal"))
    }

    /// Plan the resource with kup's planner: the new state shows the steps.
    async fn plan(
        &self,
        diags: &mut Diagnostics,
        proposed: ClusterState,
        prior: Option<&ClusterState>,
        prior_private: Private,
    ) -> Option<(ClusterState, Private)> {
        let mut state = proposed;
        if !state.is_known() {
            state.planned_steps = Value::Unknown;
            state.version_timeline = Value::Unknown;
            state.current_version = Value::Unknown;
            if prior.is_none() {
                state.id = Value::Unknown;
            }
            return Some((state, prior_private));
        }
        let configured = self.configured(diags)?;
        let mut p = self.prepare(&state, diags).await?;
        let journal_path = Self::journal_path(&configured, &p.session);
        let unfinished =
            match session::unfinished_run(&journal_path, prior_private.journal.as_deref()) {
                Ok(u) => u,
                Err(e) => {
                    diags.root_error("kup cannot read its journal", e);
                    return None;
                }
            };
        if let Some(run) = unfinished {
            // An apply was killed half-way: the next apply finishes that run first, as
            // `kup apply` does. The steps it has left come from the journal, so the plan
            // stays the same until the apply, whatever the running operations do meanwhile.
            let spec = p.session.cluster();
            state.id = Value::Value(format!("{}/{}", spec.provider, spec.name));
            state.planned_steps = Value::Value(
                run.saved_plan
                    .plan
                    .steps
                    .iter()
                    .filter(|s| !run.finished.contains(&s.id))
                    .map(|s| format!("{}: {}", s.id, s.action.describe()))
                    .collect(),
            );
            state.version_timeline = Value::Value(timeline(&run.saved_plan));
            state.current_version = Value::Unknown;
            let mut detail = format!(
                "terraform apply finishes kup run {} first ({} of {} steps were finished)",
                run.run_id,
                run.finished.len(),
                run.saved_plan.plan.steps.len()
            );
            if run.saved_plan.config_hash != p.session.config_hash {
                detail.push_str(
                    ", then stops: the configuration changed since that run started, so run terraform apply again to plan the change",
                );
            }
            diags.root_warning("An apply of this cluster did not finish", detail);
            return Some((
                state,
                Private {
                    saved_plan: None,
                    journal: prior_private.journal,
                },
            ));
        }
        let (saved, actual) = match p.session.plan().await {
            Ok(x) => x,
            Err(PlanFailure::Message(m)) => {
                diags.root_error("kup cannot plan this cluster", m);
                return None;
            }
            Err(PlanFailure::Errors(errors)) => {
                for e in &errors {
                    let at = plan_error_path(e, &p.resource, &p.session.desired);
                    diags.error(
                        e.message.clone(),
                        e.hint
                            .clone()
                            .map(|h| format!("Hint: {h}"))
                            .unwrap_or_default(),
                        at,
                    );
                }
                return None;
            }
        };
        let spec = p.session.cluster();
        state.id = Value::Value(format!("{}/{}", spec.provider, spec.name));
        state.planned_steps = Value::Value(
            saved
                .plan
                .steps
                .iter()
                .map(|s| format!("{}: {}", s.id, s.action.describe()))
                .collect(),
        );
        state.version_timeline = Value::Value(timeline(&saved));
        state.current_version = if saved.plan.is_empty() {
            Value::Value(actual.version.to_string())
        } else {
            Value::Unknown
        };
        if let Some(prior) = prior {
            // Nothing to do and nothing changed: the prior state stands as it is (so
            // Terraform says "No changes").
            if saved.plan.is_empty() && same_arguments(prior, &state) {
                return Some((prior.clone(), prior_private));
            }
        }
        for cp in &saved.plan.clusters {
            for w in &cp.warnings {
                diags.root_warning(format!("kup: {w}"), String::new());
            }
            for b in &cp.blocked_drains {
                let summary = format!(
                    "A PodDisruptionBudget blocks the drain of node group {}",
                    b.node_group
                );
                let detail = format!(
                    "{} ({}); pods: {}. terraform apply refuses it, as kup apply does; drain {{ on_blocked = \"wait\" }} drains and waits instead.",
                    b.pdb,
                    b.reason,
                    b.pods.join(", ")
                );
                let at = node_group_path(&p.session.desired, &b.node_group);
                diags.warning(summary, detail, at);
            }
            // Warnings and errors the checks found that the plan's own warnings do not
            // already say (removed APIs a hop would break, unhealthy nodes, insights).
            for f in &cp.findings {
                if f.severity == kup_engine::preflight::Severity::Info
                    || cp.warnings.iter().any(|w| w.contains(&f.message))
                {
                    continue;
                }
                diags.root_warning(
                    format!("kup pre-flight ({}): {}", f.subject, f.message),
                    f.remedy.clone().unwrap_or_default(),
                );
            }
        }
        let private = Private {
            saved_plan: serde_json::to_string(&saved).ok(),
            journal: prior_private.journal,
        };
        Some((state, private))
    }

    async fn apply(
        &self,
        diags: &mut Diagnostics,
        planned: ClusterState,
        private: Private,
    ) -> Result<(ClusterState, Private), Private> {
        let Some(configured) = self.configured(diags) else {
            return Err(private);
        };
        let Some(mut p) = self.prepare(&planned, diags).await else {
            return Err(private);
        };
        let journal_path = Self::journal_path(&configured, &p.session);
        if let Some(parent) = journal_path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        // A journal Terraform kept for a run that did not finish comes back to disk, so
        // the executor resumes it.
        if let Some(j) = &private.journal {
            if std::fs::metadata(&journal_path)
                .map(|m| m.len() == 0)
                .unwrap_or(true)
            {
                if let Err(e) = std::fs::write(&journal_path, j) {
                    diags.root_error(
                        "kup cannot restore the journal of the unfinished apply",
                        format!("{}: {e}", journal_path.display()),
                    );
                    return Err(private);
                }
            }
        }
        let kept = |diags: &mut Diagnostics, summary: String, detail: String| {
            diags.root_error(summary, detail);
            Private {
                saved_plan: private.saved_plan.clone(),
                journal: std::fs::read_to_string(&journal_path).ok(),
            }
        };
        match p.session.resume(&journal_path).await {
            Ok(None) => {}
            Ok(Some((report, config_hash))) => {
                if !report.succeeded() {
                    return Err(kept(
                        diags,
                        format!("kup apply did not finish (run {})", report.run_id),
                        failures(&report),
                    ));
                }
                diags.root_warning(
                    format!(
                        "kup finished the apply that did not finish before (run {})",
                        report.run_id
                    ),
                    String::new(),
                );
                if config_hash != p.session.config_hash {
                    return Err(kept(
                        diags,
                        "The configuration changed since the unfinished apply started".into(),
                        "kup finished that apply; run terraform plan and apply again for the change.".into(),
                    ));
                }
            }
            Err(e) => return Err(kept(diags, "kup apply stopped".into(), e)),
        }
        // What `terraform plan` showed, exactly; kup's preconditions refuse it when the
        // cluster changed in between. (None: the plan was to finish an unfinished run,
        // done above; whatever is left is planned now.)
        let saved: SavedPlan = match private.saved_plan.as_deref().map(serde_json::from_str) {
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                return Err(kept(
                    diags,
                    "The plan in Terraform's private state is not a kup plan".into(),
                    e.to_string(),
                ))
            }
            None => match p.session.plan().await {
                Ok((s, _)) => s,
                Err(_) => {
                    return Err(kept(
                        diags,
                        "kup cannot plan this cluster".into(),
                        "run terraform plan to see why".into(),
                    ));
                }
            },
        };
        let blocked: Vec<String> = saved
            .plan
            .clusters
            .iter()
            .flat_map(|c| &c.blocked_drains)
            .filter(|b| b.blocking)
            .map(|b| format!("node group {}: {} ({})", b.node_group, b.pdb, b.reason))
            .collect();
        if !blocked.is_empty() {
            return Err(kept(
                diags,
                "kup will not start a plan whose drain a PodDisruptionBudget blocks".into(),
                format!(
                    "{}\nFree the budget, or set drain {{ on_blocked = \"wait\" }} on the group to drain and wait.",
                    blocked.join("\n")
                ),
            ));
        }
        if !saved.plan.is_empty() {
            match p.session.run(&saved, &journal_path).await {
                Ok(report) if report.succeeded() => {}
                Ok(report) => {
                    return Err(kept(
                        diags,
                        format!("kup apply did not finish (run {})", report.run_id),
                        failures(&report),
                    ))
                }
                Err(e) => return Err(kept(diags, "kup apply stopped".into(), e)),
            }
        }
        // The run finished: the journal holds nothing to resume.
        let _ = std::fs::remove_file(&journal_path);
        let spec = p.session.cluster().clone();
        let mut state = planned;
        let actual = match p.session.handle(&spec).await {
            Ok(h) => p.session.refresh(&h).await,
            Err(e) => Err(e),
        };
        match actual {
            Ok(actual) => state.current_version = Value::Value(actual.version.to_string()),
            Err(e) => {
                diags.root_warning("kup cannot read the cluster after the apply", e);
                state.current_version = Value::Null;
            }
        }
        Ok((state, Private::default()))
    }
}

fn failures(report: &kup_engine::executor::ApplyReport) -> String {
    let mut lines: Vec<String> = report
        .failed
        .iter()
        .map(|(step, why)| format!("{step}: {why}"))
        .collect();
    lines.extend(
        report
            .not_run
            .iter()
            .map(|(step, why)| format!("{step} (not run): {why}")),
    );
    lines.push("The journal is kept; the next terraform apply resumes or re-plans.".into());
    lines.join("\n")
}

/// The arguments (not the computed attributes) are the same.
fn same_arguments(a: &ClusterState, b: &ClusterState) -> bool {
    let strip = |s: &ClusterState| ClusterState {
        id: Value::Null,
        current_version: Value::Null,
        planned_steps: Value::Null,
        version_timeline: Value::Null,
        ..s.clone()
    };
    strip(a) == strip(b)
}

fn timeline(saved: &SavedPlan) -> Vec<String> {
    if saved.plan.is_empty() {
        return Vec::new();
    }
    saved
        .plan
        .clusters
        .iter()
        .flat_map(|c| c.timeline.iter())
        .map(|p| {
            let mut line = format!("control_plane={}", p.control_plane);
            for (ng, v) in &p.node_groups {
                line.push_str(&format!(" {ng}={v}"));
            }
            match &p.after_step {
                Some(s) => format!("after {s}: {line}"),
                None => format!("now: {line}"),
            }
        })
        .collect()
}

fn node_group_path(desired: &Desired, name: &str) -> AttributePath {
    let index = desired
        .clusters
        .first()
        .and_then(|c| c.node_groups.iter().position(|g| g.name == name));
    match index {
        Some(i) => AttributePath::new("node_group").index(i as i64),
        None => AttributePath::root(),
    }
}

/// Where a planner error belongs: the line kup's loader saw it on, else the resource it
/// names (`cluster.x.node_group.general` → `node_group[0]`).
fn plan_error_path(e: &PlanError, resource: &HclWriter, desired: &Desired) -> AttributePath {
    if let Some(p) = e
        .loc
        .as_ref()
        .filter(|l| l.file.ends_with("cluster.kup.hcl"))
        .and_then(|l| resource.path_of_line(l.line))
    {
        return p;
    }
    let parts: Vec<&str> = e.address.split('.').collect();
    match parts.as_slice() {
        ["cluster", _, "node_group", ng, ..] => node_group_path(desired, ng),
        ["cluster", _, "addon", name, ..] => {
            let index = desired
                .clusters
                .first()
                .and_then(|c| c.addons.iter().position(|a| a.name == *name));
            match index {
                Some(i) => AttributePath::new("addon").index(i as i64),
                None => AttributePath::root(),
            }
        }
        _ => AttributePath::root(),
    }
}

fn report(diags: &mut Diagnostics, e: &LoadError, error: bool) {
    let (at, summary, detail) = match e {
        LoadError::Resource(at, s, d) => (at.clone(), s.clone(), d.clone()),
        // The provider block's problems are reported where it is configured; here they
        // only explain why the resource cannot be planned.
        LoadError::Provider(_, s, d) => (None, format!("provider \"kup\": {s}"), d.clone()),
    };
    let at = at.unwrap_or_else(AttributePath::root);
    if error {
        diags.error(summary, detail, at);
    } else {
        diags.warning(summary, detail, at);
    }
}

/// Terraform's state from kup's refresh: the arguments that mirror what runs (versions,
/// max_unavailable) take the running values when they differ, so changes made outside
/// Terraform show as drift.
fn observed(state: &ClusterState, desired: &Desired, actual: &ActualCluster) -> ClusterState {
    let mut s = state.clone();
    s.current_version = Value::Value(actual.version.to_string());
    s.planned_steps = Value::Value(Vec::new());
    s.version_timeline = Value::Value(Vec::new());
    let Some(spec) = desired.clusters.first() else {
        return s;
    };
    if !spec.version.satisfied_by(&actual.version) && spec.version_alias.is_none() {
        s.version = Value::Value(actual.version.to_string());
    }
    if let Value::Value(groups) = &mut s.node_group {
        for (block, ng) in groups.iter_mut().zip(&spec.node_groups) {
            let Ok(Some(live)) = kup_engine::planner::live_group(ng, actual) else {
                continue;
            };
            if !ng.follows_cluster && ng.version.minor() != live.version.minor() {
                block.version = Value::Value(live.version.minor().to_string());
            }
            if let (Some(have), Strategy::Rolling { .. }) = (live.max_unavailable, &ng.strategy) {
                if have != ng.strategy.max_unavailable() {
                    block.max_unavailable = Value::Value(have.to_string());
                }
            }
        }
    }
    s
}

#[async_trait]
impl Resource for ClusterResource {
    type State<'a> = ClusterState;
    type PrivateState<'a> = Option<Private>;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(schema())
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: ClusterState) -> Option<()> {
        if !config.is_known() {
            return Some(());
        }
        // Before `configure`, the cluster is checked against a stand-in for its provider
        // block (`terraform validate` configures no provider).
        let configured = self.configured.read().unwrap().clone();
        let configured = match configured {
            Some(c) => c,
            None => {
                let key = config.kup_provider.as_deref_option().unwrap_or("eks");
                let (kind, alias) = key.split_once('.').unwrap_or((key, ""));
                let mut w = HclWriter::default();
                w.open("provider", Some(kind), None);
                if !alias.is_empty() {
                    w.string("alias", Some(alias), AttributePath::root());
                }
                w.close();
                Arc::new(Configured {
                    providers: w,
                    keys: vec![key.to_string()],
                    state_dir: PathBuf::new(),
                })
            }
        };
        Self::load(&configured, &config, diags);
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        state: ClusterState,
        private: Option<Private>,
        _meta: ValueEmpty,
    ) -> Option<(ClusterState, Option<Private>)> {
        let p = self.prepare(&state, diags).await?;
        let spec = p.session.cluster().clone();
        let handle = match p.session.handle(&spec).await {
            Ok(h) => h,
            Err(e) => {
                diags.root_error("kup cannot read the cluster", e);
                return None;
            }
        };
        match p.session.refresh(&handle).await {
            Ok(actual) => Some((observed(&state, &p.session.desired, &actual), private)),
            Err(e) => {
                diags.root_error(format!("kup cannot read cluster {}", spec.name), e);
                None
            }
        }
    }

    async fn plan_create<'a>(
        &self,
        diags: &mut Diagnostics,
        proposed: ClusterState,
        _config: ClusterState,
        _meta: ValueEmpty,
    ) -> Option<(ClusterState, Option<Private>)> {
        let (s, p) = self.plan(diags, proposed, None, Private::default()).await?;
        Some((s, Some(p)))
    }

    async fn plan_update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: ClusterState,
        proposed: ClusterState,
        _config: ClusterState,
        prior_private: Option<Private>,
        _meta: ValueEmpty,
    ) -> Option<(ClusterState, Option<Private>, Vec<AttributePath>)> {
        let (s, p) = self
            .plan(
                diags,
                proposed,
                Some(&prior),
                prior_private.unwrap_or_default(),
            )
            .await?;
        Some((s, Some(p), Vec::new()))
    }

    async fn plan_destroy<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: ClusterState,
        prior_private: Option<Private>,
        _meta: ValueEmpty,
    ) -> Option<Option<Private>> {
        Some(prior_private)
    }

    async fn create<'a>(
        &self,
        diags: &mut Diagnostics,
        planned: ClusterState,
        _config: ClusterState,
        private: Option<Private>,
        _meta: ValueEmpty,
    ) -> Option<(ClusterState, Option<Private>)> {
        // A create that fails leaves no resource in Terraform's state; its journal stays
        // on disk for the next apply to resume.
        self.apply(diags, planned, private.unwrap_or_default())
            .await
            .ok()
            .map(|(s, p)| (s, Some(p)))
    }

    async fn update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: ClusterState,
        planned: ClusterState,
        _config: ClusterState,
        private: Option<Private>,
        _meta: ValueEmpty,
    ) -> Option<(ClusterState, Option<Private>)> {
        match self
            .apply(diags, planned, private.unwrap_or_default())
            .await
        {
            Ok((s, p)) => Some((s, Some(p))),
            // The cluster is where the run left it: Terraform keeps the prior state and,
            // in the private state, the journal to resume.
            Err(p) => Some((prior, Some(p))),
        }
    }

    async fn destroy<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: ClusterState,
        _private: Option<Private>,
        _meta: ValueEmpty,
    ) -> Option<()> {
        Some(())
    }
}
