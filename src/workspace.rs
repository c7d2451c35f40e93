//! Wiring shared by plan, apply and drift: load the configuration, start in-process
//! simulators for `simulate = true` providers, build providers, refresh clusters.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use kup_engine::config::{self, Diagnostics, LoadOptions, Loaded};
use kup_engine::events::Event;
use kup_engine::executor::{ClusterHandle, EventSink, RetryPolicy};
use kup_engine::model::{
    ActualCluster, BackendKind, BackendSpec, ClusterSpec, Desired, ProviderSpec,
};
use kup_engine::plan::sha256_hex;
use kup_engine::policy::ProviderPolicy;
use kup_engine::provider::{ClusterTarget, KubeAccess, NodeOps, Provider};
use kup_engine::state::StateStore;

use crate::failure::Failure;
use crate::VarArgs;

/// The date support-date findings are judged on: today, or `KUP_TODAY=YYYY-MM-DD` so a
/// plan can be reproduced byte for byte later (reviews, audits, golden tests).
pub fn today() -> Result<time::Date, Failure> {
    match std::env::var("KUP_TODAY") {
        Ok(v) if !v.is_empty() => {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            time::Date::parse(&v, &format).map_err(|e| {
                Failure::Message(format!(
                    "KUP_TODAY={v} is not a date ({e}); write it as YYYY-MM-DD, e.g. KUP_TODAY=2026-11-23"
                ))
            })
        }
        _ => Ok(time::OffsetDateTime::now_utc().date()),
    }
}

/// Simulated seconds per real second when a provider block does not say.
pub const DEFAULT_SIM_SPEED: f64 = 600.0;

pub fn load_config(dir: &Path, vars: &VarArgs) -> Result<Loaded, Failure> {
    let opts = LoadOptions {
        vars: vars.vars.clone(),
        var_files: vars.var_files.clone(),
        env: std::env::vars().collect(),
    };
    config::load_dir(dir, &opts).map_err(|d| diagnostics_failure(&d, dir))
}

pub fn diagnostics_failure(d: &Diagnostics, dir: &Path) -> Failure {
    let sources = read_sources(dir);
    Failure::Diagnostics {
        rendered: d.render(&sources),
        json: serde_json::to_value(&d.0).unwrap_or_default(),
    }
}

fn read_sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if let Ok(text) = std::fs::read_to_string(&p) {
                out.push((p.clone(), text.clone()));
                if let Some(name) = p.file_name() {
                    out.push((dir.join(name), text));
                }
            }
        }
    }
    out
}

/// Hash of the configuration files' names and bytes: a saved plan is stale when this
/// changes. (Variable values given on the command line are baked into the saved plan's
/// evaluated configuration, so they need not match at apply time.)
pub fn config_files_hash(dir: &Path) -> std::io::Result<String> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.ends_with(".kup.hcl") || n == "kup.kupvars" || n.ends_with(".auto.kupvars")
        })
        .collect();
    names.sort();
    let mut buf = Vec::new();
    for p in names {
        buf.extend_from_slice(p.file_name().unwrap().as_encoded_bytes());
        buf.push(0);
        buf.extend_from_slice(&std::fs::read(&p)?);
        buf.push(0);
    }
    Ok(sha256_hex(&buf))
}

/// Providers ready to use, and the simulators serving them.
pub struct Connected {
    pub providers: BTreeMap<String, Arc<dyn Provider>>,
    pub sims: Vec<kup_sim::Sim>,
    /// Simulated seconds per real second, by provider key (1 for real clouds).
    time_scales: BTreeMap<String, f64>,
    /// Each cluster's Kubernetes access, built once (None: not reachable).
    node_ops: tokio::sync::Mutex<BTreeMap<String, Option<Arc<dyn NodeOps>>>>,
    /// The configuration directory (preflight manifests are relative to it).
    dir: PathBuf,
}

impl Connected {
    /// Start a simulator for every `simulate = true` provider without an endpoint, then
    /// build every provider the clusters use.
    pub async fn start(desired: &Desired, dir: &Path) -> Result<Connected, Failure> {
        let mut providers = BTreeMap::new();
        let mut sims = Vec::new();
        let mut time_scales = BTreeMap::new();
        // Seed world → the simulator's base URL and the kubeconfigs it wrote.
        let mut shared: BTreeMap<String, (String, BTreeMap<String, PathBuf>)> = BTreeMap::new();
        for spec in &desired.providers {
            if !desired.clusters.iter().any(|c| c.provider == spec.key()) {
                continue;
            }
            let mut spec = spec.clone();
            let mut endpoint = None;
            let mut kubeconfigs = BTreeMap::new();
            if spec.simulate && spec.endpoint.is_none() {
                // Providers that simulate the same world (say EKS and GKE clusters in one
                // world file) share one simulator: it serves every API on one port.
                let seed = spec.world.clone().unwrap_or_default();
                match shared.get(&seed) {
                    Some((url, kc)) => {
                        endpoint = Some(url.clone());
                        kubeconfigs = kc.clone();
                    }
                    None => {
                        let sim = start_sim(&spec, dir).await?;
                        let url = sim.endpoints().eks.clone();
                        kubeconfigs = sim.endpoints().kubeconfigs.clone();
                        shared.insert(seed, (url.clone(), kubeconfigs.clone()));
                        endpoint = Some(url);
                        sims.push(sim);
                    }
                }
                let speed = spec.speed.unwrap_or(DEFAULT_SIM_SPEED);
                if spec.poll_interval.is_none() {
                    // Poll about every 15 simulated seconds, but not in a busy loop.
                    let secs = (15.0 / speed).clamp(0.02, 15.0);
                    spec.poll_interval = Some(Duration::from_secs_f64(secs));
                }
            }
            time_scales.insert(
                spec.key(),
                if spec.simulate {
                    spec.speed.unwrap_or(DEFAULT_SIM_SPEED)
                } else {
                    1.0
                },
            );
            let ctx = kup_provider::BuildContext {
                clusters: desired.clusters.clone(),
                kubeconfigs,
            };
            let provider = kup_provider::build_with(&spec, endpoint.as_deref(), &ctx)
                .await
                .map_err(|e| {
                    Failure::Message(format!("provider \"{}\": {}", spec.key(), e.message))
                })?;
            providers.insert(spec.key(), provider);
        }
        Ok(Connected {
            providers,
            sims,
            time_scales,
            node_ops: Default::default(),
            dir: dir.to_path_buf(),
        })
    }

    pub async fn handle(&self, cluster: &ClusterSpec, desired: &Desired) -> Option<ClusterHandle> {
        let provider = self.providers.get(&cluster.provider)?.clone();
        let region = cluster.region.clone().or_else(|| {
            desired
                .provider(&cluster.provider)
                .and_then(|p| p.region.clone())
        });
        let target = ClusterTarget {
            name: cluster.name.clone(),
            region,
        };
        let node_ops = {
            let mut cache = self.node_ops.lock().await;
            match cache.get(&cluster.address()) {
                Some(ops) => ops.clone(),
                None => {
                    let access = KubeAccess {
                        kubeconfig: cluster.kubeconfig.clone(),
                        context: cluster.context.clone(),
                    };
                    let ops = match provider.node_ops(&target, &access).await {
                        Ok(ops) => ops,
                        Err(e) => {
                            tracing::warn!("{}: no Kubernetes access: {e}", cluster.address());
                            None
                        }
                    };
                    cache.insert(cluster.address(), ops.clone());
                    ops
                }
            }
        };
        Some(ClusterHandle {
            provider,
            target,
            node_ops,
            time_scale: self
                .time_scales
                .get(&cluster.provider)
                .copied()
                .unwrap_or(1.0),
            operation_timeout: desired
                .provider(&cluster.provider)
                .and_then(|p| p.operation_timeout),
        })
    }

    pub fn policies(&self) -> BTreeMap<String, ProviderPolicy> {
        self.providers
            .iter()
            .map(|(k, p)| (k.clone(), p.policy()))
            .collect()
    }

    /// Refresh `clusters` concurrently (at most `parallelism` at once), by label.
    pub async fn refresh(
        &self,
        desired: &Desired,
        clusters: &[&ClusterSpec],
        parallelism: usize,
        events: &EventSink,
    ) -> Result<BTreeMap<String, ActualCluster>, Failure> {
        let retry_policy = RetryPolicy::default();
        let results: Vec<(String, Result<ActualCluster, String>)> = stream::iter(clusters)
            .map(|spec| {
                let retry_policy = retry_policy.clone();
                async move {
                    events(Event::Refreshing {
                        cluster: spec.address(),
                    });
                    let Some(h) = self.handle(spec, desired).await else {
                        return (
                            spec.label.clone(),
                            Err(format!("provider \"{}\" is not configured", spec.provider)),
                        );
                    };
                    let r = h
                        .refresh_for_plan(spec, &retry_policy, events)
                        .await
                        .map(|(mut actual, note)| {
                            if let Some(note) = note {
                                events(Event::Message {
                                    level: kup_engine::events::Level::Warning,
                                    text: format!(
                                        "{}: cannot read the Kubernetes API ({note}); kubelet versions and drain predictions come from the provider only",
                                        spec.address()
                                    ),
                                });
                                actual.kube = None;
                            }
                            actual
                        });
                    let r = r.map_err(|e| e.to_string()).and_then(|mut actual| {
                        actual.api_uses = manifest_api_uses(&self.dir, &spec.preflight.manifests)?;
                        Ok(actual)
                    });
                    (spec.label.clone(), r)
                }
            })
            .buffer_unordered(parallelism.max(1))
            .collect()
            .await;
        let mut out = BTreeMap::new();
        let mut errors = Vec::new();
        for (label, r) in results {
            match r {
                Ok(a) => {
                    out.insert(label, a);
                }
                Err(e) => errors.push(format!("cluster.{label}: cannot read the cluster: {e}")),
            }
        }
        if !errors.is_empty() {
            errors.sort();
            return Err(Failure::Message(errors.join("\n")));
        }
        Ok(out)
    }

    /// Stop the simulators, saving their worlds.
    pub async fn shutdown(self) {
        for sim in self.sims {
            if let Err(e) = sim.shutdown().await {
                eprintln!("warning: the simulator could not save its world: {e:#}");
            }
        }
    }
}

/// What a command that only reads sees: the configuration with version aliases resolved
/// against what the providers offer, every cluster refreshed, and the providers' policies.
pub struct Observed {
    pub desired: Desired,
    pub actual: BTreeMap<String, ActualCluster>,
    pub policies: BTreeMap<String, ProviderPolicy>,
}

/// Connect to every provider of `loaded` (starting simulators), refresh every cluster,
/// and stop again.
pub async fn observe(loaded: &Loaded, parallelism: usize, json: bool) -> Result<Observed, Failure> {
    let connected = Connected::start(&loaded.desired, &loaded.dir).await?;
    let clusters: Vec<_> = loaded.desired.clusters.iter().collect();
    let mode = if json {
        crate::render::progress::Mode::Json
    } else {
        crate::render::progress::Mode::Plain
    };
    let actual = connected
        .refresh(
            &loaded.desired,
            &clusters,
            parallelism,
            &crate::render::progress::quiet_sink(mode),
        )
        .await;
    let policies = connected.policies();
    connected.shutdown().await;
    let actual = actual?;
    let mut desired = loaded.desired.clone();
    resolve_aliases(&mut desired, &actual)?;
    Ok(Observed {
        desired,
        actual,
        policies,
    })
}

/// `version = "latest"` / `"-"` as the version the provider offers now.
pub fn resolve_aliases(
    desired: &mut Desired,
    actual: &BTreeMap<String, ActualCluster>,
) -> Result<(), Failure> {
    kup_engine::planner::resolve_version_aliases(desired, actual).map_err(|errors| {
        Failure::Diagnostics {
            rendered: crate::render::plan::render_plan_errors(&errors),
            json: serde_json::to_value(&errors).unwrap_or_default(),
        }
    })
}

/// What a read-only command (`check`, `drift`, `rehearse`) starts from: where the state
/// lives, the configuration (its warnings printed) and, when a simulator runs in process,
/// the state lock.
pub struct ReadOnly {
    pub store: StateStore,
    pub loaded: Loaded,
    pub _lock: Option<kup_engine::state::StateLock>,
}

pub fn open_for_reading(
    dir: &Path,
    vars: &VarArgs,
    state: &crate::cli::StateArgs,
    what: &str,
) -> Result<ReadOnly, Failure> {
    let loaded = load_config(dir, vars)?;
    for w in &loaded.warnings {
        eprintln!("{}", w.render(&loaded.sources).trim_end());
    }
    let store = state_store(dir, &loaded.backend, state.state.as_deref())?;
    let lock = lock_for_reading(&loaded.desired, &store, what, state.lock_timeout)?;
    Ok(ReadOnly {
        store,
        loaded,
        _lock: lock,
    })
}

/// A command that only reads still takes the state lock when a simulator runs in
/// process: the simulator saves its world when it stops, and must not overwrite what a
/// concurrent apply's simulator recorded. Real clouds need no lock for reading.
pub fn lock_for_reading(
    desired: &Desired,
    store: &StateStore,
    what: &str,
    timeout: Duration,
) -> Result<Option<kup_engine::state::StateLock>, Failure> {
    if !desired
        .providers
        .iter()
        .any(|p| p.simulate && p.endpoint.is_none())
    {
        return Ok(None);
    }
    lock_state(store, what, timeout).map(Some)
}

/// Take the state lock for `what`, and release it even on an immediate exit.
pub fn lock_state(
    store: &StateStore,
    what: &str,
    timeout: Duration,
) -> Result<kup_engine::state::StateLock, Failure> {
    let lock = store
        .lock(what, timeout)
        .map_err(|e| Failure::Message(e.to_string()))?;
    crate::interrupt::hold_lock(&lock);
    Ok(lock)
}

/// Where the state of the configuration in `dir` lives: its `backend` block, or `-state
/// PATH`, or `DIR/.kup/kup.state.json`. Reads only the backend block, for commands that
/// need the state before (or without) evaluating the configuration.
pub fn store_for_dir(dir: &Path, state_flag: Option<&Path>) -> Result<StateStore, Failure> {
    let backend = config::load_backend(dir).map_err(|d| diagnostics_failure(&d, dir))?;
    state_store(dir, &backend, state_flag)
}

pub fn state_store(
    dir: &Path,
    backend: &BackendSpec,
    state_flag: Option<&Path>,
) -> Result<StateStore, Failure> {
    match (&backend.kind, state_flag) {
        (BackendKind::S3(s3), Some(flag)) => Err(Failure::Message(format!(
            "-state {} cannot be used with the backend \"s3\" block at {}: the state lives in {}. Remove -state, or remove the backend block to keep the state in a local file",
            flag.display(),
            backend
                .at
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            s3.url()
        ))),
        (_, Some(flag)) => Ok(StateStore::Local(flag.to_path_buf())),
        (BackendKind::Local, None) => Ok(StateStore::Local(default_state_path(dir))),
        (BackendKind::LocalAt(p), None) => Ok(StateStore::Local(dir.join(p))),
        (BackendKind::S3(s3), None) => {
            let store = StateStore::Remote {
                remote: Arc::new(kup_backend::S3State::connect(s3)),
                // The remote journal's working copy: the remote one counts, and replaces
                // this one whenever the lock is taken.
                journal: dir.join(".kup").join("remote.journal"),
            };
            refuse_to_orphan_local_state(dir, &store)?;
            Ok(store)
        }
    }
}

/// A configuration that moves to a remote backend leaves its local state behind; starting
/// the remote one afresh would lose what it records (blue/green colours, the drift
/// baseline) and begin a new lineage. So until the remote state exists, a local one stops
/// kup with the command that carries it over.
fn refuse_to_orphan_local_state(dir: &Path, store: &StateStore) -> Result<(), Failure> {
    let local = default_state_path(dir);
    let Ok(Some(state)) = kup_engine::state::StateFile::load(&local) else {
        return Ok(());
    };
    if store
        .load()
        .map_err(|e| Failure::Message(e.to_string()))?
        .is_some()
    {
        return Ok(());
    }
    Err(Failure::Message(format!(
        "the backend block keeps the state in {remote}, which holds none yet, but {local} holds this configuration's local state (lineage {}, serial {}). Copy it there first so its history carries over: `aws s3 cp {local} {remote}`; or move the local file away to start a new state",
        state.lineage,
        state.serial,
        remote = store.describe(),
        local = local.display(),
    )))
}

/// The objects in the `preflight { manifests = [...] }` folders and files (`*.yaml`,
/// `*.yml`, `*.json`, searched recursively, in name order), for the removed-API check.
fn manifest_api_uses(
    dir: &Path,
    manifests: &[String],
) -> Result<Vec<kup_engine::removed_apis::ApiUse>, String> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> =
                std::fs::read_dir(p)?.flatten().map(|e| e.path()).collect();
            entries.sort();
            for e in entries {
                walk(&e, out)?;
            }
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ["yaml", "yml", "json"].contains(&e))
        {
            out.push(p.to_path_buf());
        }
        Ok(())
    }
    let mut uses = Vec::new();
    for m in manifests {
        let root = dir.join(m);
        if !root.exists() {
            return Err(format!(
                "preflight manifests: {} does not exist (paths are relative to {})",
                root.display(),
                dir.display()
            ));
        }
        let mut files = Vec::new();
        walk(&root, &mut files)
            .map_err(|e| format!("preflight manifests: reading {}: {e}", root.display()))?;
        for f in files {
            let text = std::fs::read_to_string(&f)
                .map_err(|e| format!("preflight manifests: reading {}: {e}", f.display()))?;
            let shown = f.strip_prefix(dir).unwrap_or(&f).display().to_string();
            uses.extend(
                kup_engine::removed_apis::objects_in_manifest(&shown, &text)
                    .map_err(|e| format!("preflight manifests: {e}"))?,
            );
        }
    }
    Ok(uses)
}

/// The simulator's live world is a copy of the seed world under `DIR/.kup/sim/`, so the
/// example directory stays untouched and a second run sees the upgraded world.
pub async fn start_sim(spec: &ProviderSpec, dir: &Path) -> Result<kup_sim::Sim, Failure> {
    let seed = spec
        .world
        .as_ref()
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("world.hcl"));
    let live = dir.join(".kup").join("sim").join(
        seed.file_name()
            .unwrap_or(std::ffi::OsStr::new("world.hcl")),
    );
    if !live.exists() {
        std::fs::create_dir_all(live.parent().unwrap()).map_err(|e| {
            Failure::Message(format!(
                "cannot create {}: {e}",
                live.parent().unwrap().display()
            ))
        })?;
        std::fs::copy(&seed, &live).map_err(|e| {
            Failure::Message(format!(
                "provider \"{}\": cannot copy the simulated world {} to {}: {e}",
                spec.key(),
                seed.display(),
                live.display()
            ))
        })?;
    }
    kup_sim::Sim::start(kup_sim::SimConfig {
        world: live.clone(),
        listen: "127.0.0.1:0".parse().unwrap(),
        speed: spec.speed.unwrap_or(DEFAULT_SIM_SPEED),
        faults: kup_sim::FaultSpec::none(),
    })
    .await
    .map_err(|e| {
        Failure::Message(format!(
            "provider \"{}\": cannot start the simulator on {}: {e:#}",
            spec.key(),
            live.display()
        ))
    })
}

/// kup keeps everything it writes locally under `DIR/.kup/` (state, its backup, journal and
/// lock, simulated worlds), so one `.gitignore` line keeps it out of version control.
pub fn default_state_path(dir: &Path) -> PathBuf {
    dir.join(".kup").join("kup.state.json")
}
