//! One Terraform request's use of kup's engine: load the written HCL with kup's loader,
//! build the providers, refresh, plan, and carry a plan out with the journal.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use kup_engine::config::{self, LoadOptions, Loaded, Severity};
use kup_engine::events::Event;
use kup_engine::executor::{ApplyReport, ClusterHandle, EventSink, Executor, RetryPolicy};
use kup_engine::journal::{self, Journal};
use kup_engine::model::{ActualCluster, ClusterSpec};
use kup_engine::plan::{fingerprint, SavedPlan, PLAN_FORMAT_VERSION};
use kup_engine::planner::{self, PlanError, PlanInput, PlanOptions};
use kup_engine::provider::{ClusterTarget, KubeAccess, Provider};
use kup_engine::state::now_rfc3339;
use tf_provider::AttributePath;

use crate::hcl::HclWriter;

/// Simulated seconds per real second of a `simulate = true` block that does not say
/// (the same default as `kup`'s).
const DEFAULT_SIM_SPEED: f64 = 600.0;

/// A problem kup's loader found, traced back to where it was written in Terraform.
#[derive(Debug)]
pub enum LoadError {
    /// In `provider "kup"`: the attribute path there, summary, detail.
    Provider(Option<AttributePath>, String, String),
    /// In the resource: the attribute path there, summary, detail.
    Resource(Option<AttributePath>, String, String),
}

pub struct LoadedConfig {
    pub loaded: Loaded,
    /// Warnings kup's loader gave, traced like errors.
    pub warnings: Vec<LoadError>,
    /// Kept alive while `loaded` points into it.
    _dir: tempfile::TempDir,
}

fn trace(d: &config::Diagnostic, providers: &HclWriter, resource: Option<&HclWriter>) -> LoadError {
    let mut detail = d.detail.clone().unwrap_or_default();
    if let Some(h) = &d.hint {
        if !detail.is_empty() {
            detail.push('\n');
        }
        detail.push_str(&format!("Hint: {h}"));
    }
    match &d.loc {
        Some(loc) if loc.file.ends_with("providers.kup.hcl") => {
            LoadError::Provider(providers.path_of_line(loc.line), d.summary.clone(), detail)
        }
        Some(loc) => LoadError::Resource(
            resource.and_then(|r| r.path_of_line(loc.line)),
            d.summary.clone(),
            detail,
        ),
        None => LoadError::Resource(None, d.summary.clone(), detail),
    }
}

/// Load `providers` (and `resource`, a `cluster` block) with kup's configuration loader.
pub fn load(
    providers: &HclWriter,
    resource: Option<&HclWriter>,
) -> Result<LoadedConfig, Vec<LoadError>> {
    let io = |e: std::io::Error| {
        vec![LoadError::Resource(
            None,
            "Cannot write kup's configuration to a temporary directory".into(),
            e.to_string(),
        )]
    };
    let dir = tempfile::tempdir().map_err(io)?;
    std::fs::write(dir.path().join("providers.kup.hcl"), providers.text()).map_err(io)?;
    if let Some(r) = resource {
        std::fs::write(dir.path().join("cluster.kup.hcl"), r.text()).map_err(io)?;
    }
    // Terraform variables are already evaluated; kup's own variables are not offered.
    match config::load_dir(dir.path(), &LoadOptions::default()) {
        Ok(loaded) => Ok(LoadedConfig {
            warnings: loaded
                .warnings
                .iter()
                .map(|d| trace(d, providers, resource))
                .collect(),
            loaded,
            _dir: dir,
        }),
        Err(diags) => Err(diags
            .0
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| trace(d, providers, resource))
            .collect()),
    }
}

/// The providers a configuration names, built.
pub struct Session {
    pub desired: kup_engine::model::Desired,
    pub config_hash: String,
    providers: BTreeMap<String, (Arc<dyn Provider>, f64)>,
}

impl Session {
    pub async fn connect(loaded: &Loaded) -> Result<Session, String> {
        let desired = loaded.desired.clone();
        let mut providers = BTreeMap::new();
        for spec in &desired.providers {
            if !desired.clusters.iter().any(|c| c.provider == spec.key()) {
                continue;
            }
            if spec.simulate && spec.endpoint.is_none() {
                return Err(format!(
                    "provider block {}: simulate = true needs an endpoint here: start `kup sim serve --world FILE` and set endpoint to the URL it prints",
                    spec.key()
                ));
            }
            let ctx = kup_provider::BuildContext {
                clusters: desired.clusters.clone(),
                kubeconfigs: Default::default(),
            };
            let provider = kup_provider::build_with(spec, None, &ctx)
                .await
                .map_err(|e| format!("provider block {}: {}", spec.key(), e.message))?;
            let scale = if spec.simulate {
                spec.speed.unwrap_or(DEFAULT_SIM_SPEED)
            } else {
                1.0
            };
            providers.insert(spec.key(), (provider, scale));
        }
        Ok(Session {
            desired,
            config_hash: loaded.config_hash.clone(),
            providers,
        })
    }

    pub fn cluster(&self) -> &ClusterSpec {
        &self.desired.clusters[0]
    }

    pub async fn handle(&self, spec: &ClusterSpec) -> Result<ClusterHandle, String> {
        let (provider, time_scale) = self
            .providers
            .get(&spec.provider)
            .cloned()
            .ok_or_else(|| format!("provider \"{}\" is not configured", spec.provider))?;
        let region = spec.region.clone().or_else(|| {
            self.desired
                .provider(&spec.provider)
                .and_then(|p| p.region.clone())
        });
        let target = ClusterTarget {
            name: spec.name.clone(),
            region,
        };
        let access = KubeAccess {
            kubeconfig: spec.kubeconfig.clone(),
            context: spec.context.clone(),
        };
        // No Kubernetes access is not an error: versions come from the provider.
        let node_ops = provider.node_ops(&target, &access).await.ok().flatten();
        let operation_timeout = self
            .desired
            .provider(&spec.provider)
            .and_then(|p| p.operation_timeout);
        Ok(ClusterHandle {
            provider,
            target,
            node_ops,
            time_scale,
            operation_timeout,
        })
    }

    /// kup's refresh of the cluster, with the in-cluster scan its safety checks read.
    pub async fn refresh(&self, handle: &ClusterHandle) -> Result<ActualCluster, String> {
        let (mut actual, note) = handle
            .refresh_for_plan(self.cluster(), &RetryPolicy::default(), &quiet())
            .await
            .map_err(|e| format!("cannot read the cluster: {e}"))?;
        if note.is_some() {
            // As `kup plan`: versions from the provider only.
            actual.kube = None;
        }
        Ok(actual)
    }

    pub fn policies(&self) -> BTreeMap<String, kup_engine::policy::ProviderPolicy> {
        self.providers
            .iter()
            .map(|(k, (p, _))| (k.clone(), p.policy()))
            .collect()
    }

    /// Refresh the cluster and plan it, as `kup plan` does. Version aliases in
    /// `self.desired` are resolved on the way.
    pub async fn plan(&mut self) -> Result<(SavedPlan, ActualCluster), PlanFailure> {
        let handle = self
            .handle(self.cluster())
            .await
            .map_err(PlanFailure::Message)?;
        let actual = self.refresh(&handle).await.map_err(PlanFailure::Message)?;
        let label = self.cluster().label.clone();
        let actuals: BTreeMap<String, ActualCluster> = [(label.clone(), actual.clone())].into();
        planner::resolve_version_aliases(&mut self.desired, &actuals)
            .map_err(PlanFailure::Errors)?;
        let today = std::env::var("KUP_TODAY")
            .ok()
            .and_then(|d| kup_engine::support::parse_date(&d))
            .unwrap_or_else(|| time::OffsetDateTime::now_utc().date());
        let options = PlanOptions {
            strict_skew: false,
            targets: Vec::new(),
            today: Some(today),
        };
        let policies = self.policies();
        let plan = planner::plan(&PlanInput {
            desired: &self.desired,
            actual: &actuals,
            policies: &policies,
            options: &options,
        })
        .map_err(PlanFailure::Errors)?;
        let saved = SavedPlan {
            kup_version: env!("CARGO_PKG_VERSION").to_string(),
            format_version: PLAN_FORMAT_VERSION,
            created_at: now_rfc3339(),
            config_dir: String::new(),
            config_hash: self.config_hash.clone(),
            state_fingerprints: [(format!("cluster.{label}"), fingerprint(&actual))].into(),
            desired: self.desired.clone(),
            plan,
            integrity: String::new(),
        }
        .seal();
        Ok((saved, actual))
    }

    fn executor(
        &self,
        handle: ClusterHandle,
        cancel: tokio::sync::watch::Receiver<bool>,
    ) -> Executor {
        Executor {
            clusters: [(self.cluster().address(), handle)].into(),
            parallelism: 4,
            retry: RetryPolicy::default(),
            events: logged(),
            cancel,
            wave_gates: kup_engine::executor::WaveGates::Wait,
        }
    }

    /// Finish the run the journal at `journal_path` shows unfinished (a killed apply), as
    /// `kup apply` does: its report and the configuration hash it was planned from.
    pub async fn resume(
        &self,
        journal_path: &Path,
    ) -> Result<Option<(ApplyReport, String)>, String> {
        let records = journal::read(journal_path).map_err(|e| e.to_string())?;
        let Some(run) = journal::unfinished_run(&records) else {
            return Ok(None);
        };
        let handle = self.handle(self.cluster()).await?;
        // Nothing cancels a run half-way (Terraform waits for the provider's answer); the
        // sender lives as long as the run.
        let (_cancel_tx, cancel) = tokio::sync::watch::channel(false);
        let report = self
            .executor(handle, cancel)
            .run(&run.saved_plan, open(journal_path)?, Some(&run))
            .await
            .map_err(|e| format!("apply stopped: {e}"))?;
        Ok(Some((report, run.saved_plan.config_hash.clone())))
    }

    /// Carry out `saved`, journaling to `journal_path`.
    pub async fn run(&self, saved: &SavedPlan, journal_path: &Path) -> Result<ApplyReport, String> {
        let handle = self.handle(self.cluster()).await?;
        let (_cancel_tx, cancel) = tokio::sync::watch::channel(false);
        self.executor(handle, cancel)
            .run(saved, open(journal_path)?, None)
            .await
            .map_err(|e| format!("apply stopped: {e}"))
    }
}

fn open(journal_path: &Path) -> Result<Journal, String> {
    Journal::open(journal_path)
        .map_err(|e| format!("cannot open the journal {}: {e}", journal_path.display()))
}

/// The run a journal shows unfinished: from the file, or else from the copy Terraform
/// kept in the private state.
pub fn unfinished_run(
    journal_path: &Path,
    kept: Option<&str>,
) -> Result<Option<journal::UnfinishedRun>, String> {
    let mut records = journal::read(journal_path).map_err(|e| e.to_string())?;
    if records.is_empty() {
        if let Some(text) = kept {
            records = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(serde_json::from_str)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("the journal in Terraform's private state is damaged: {e}"))?;
        }
    }
    Ok(journal::unfinished_run(&records))
}

pub enum PlanFailure {
    Message(String),
    Errors(Vec<PlanError>),
}

fn quiet() -> EventSink {
    Arc::new(|_| {})
}

/// Executor events into the provider's log (`TF_LOG_PROVIDER` / `PLUGIN_LOG_FILE`).
fn logged() -> EventSink {
    Arc::new(|e: Event| {
        if let Ok(line) = serde_json::to_string(&e) {
            tracing::info!(target: "kup", "{line}");
        }
    })
}
