//! The executor: walks a plan's DAG on tokio with bounded concurrency.
//!
//! Before acting on a step it refreshes the cluster: a step whose postcondition already
//! holds is skipped, one whose precondition fails stops as stale. Every start, provider
//! operation id and finish is journaled (fsynced) before the executor moves on, so a run
//! killed at any instant is resumed by replaying the journal: finished steps are skipped
//! and journaled operations are waited on instead of issued again.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::events::{Event, Level};
use crate::journal::{Journal, Record, RunOutcome, StepOutcome, UnfinishedRun};
use crate::plan::Action;
use crate::plan::{NativeUpgrade, SavedPlan, Step};
use crate::provider::{
    ClusterTarget, ErrorKind, NodeOps, OperationId, OperationStatus, Provider, ProviderError,
};
use crate::state::{now_rfc3339, random_id};

/// Tracks the health window of a soaking native blue/green upgrade.
#[derive(Default)]
struct EarlyCompletion {
    healthy_since: Option<Instant>,
    /// Asked (or gave up asking) the provider to complete: never twice.
    done: bool,
}

/// Where each cluster of the plan lives.
#[derive(Clone)]
pub struct ClusterHandle {
    pub provider: Arc<dyn Provider>,
    pub target: ClusterTarget,
    /// The cluster's Kubernetes API, when kup can reach it.
    pub node_ops: Option<Arc<dyn NodeOps>>,
    /// Simulated seconds per real second (1 against real clouds): soaks and node waits
    /// are divided by it so the simulator's accelerated time stays consistent.
    pub time_scale: f64,
    /// The provider block's `operation_timeout` (None: [`DEFAULT_OPERATION_TIMEOUT`]).
    pub operation_timeout: Option<Duration>,
}

/// How long one provider operation may run before kup stops waiting on it: longer than a
/// large node group's rolling replacement, short enough that a stuck one is noticed.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

impl ClusterHandle {
    /// The provider's view plus, when reachable, the Kubernetes API's.
    pub async fn refresh(&self) -> Result<crate::model::ActualCluster, ProviderError> {
        Ok(self.refresh_noting_kube().await?.0)
    }

    /// Like `refresh`, and says why the Kubernetes API could not be read, if it could not.
    /// An unreachable API never fails the refresh: versions come from the provider.
    pub async fn refresh_noting_kube(
        &self,
    ) -> Result<(crate::model::ActualCluster, Option<String>), ProviderError> {
        let mut actual = self.provider.refresh(&self.target).await?;
        let Some(ops) = &self.node_ops else {
            return Ok((actual, None));
        };
        let mut last = None;
        for attempt in 0..3u32 {
            match ops.snapshot().await {
                Ok(k) => {
                    actual.kube = Some(k);
                    return Ok((actual, None));
                }
                Err(e) => {
                    let transient = e.is_transient();
                    last = Some(e.to_string());
                    if !transient {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200 * (attempt as u64 + 1))).await;
                }
            }
        }
        Ok((actual, last))
    }

    /// What planning reads: `refresh_noting_kube` with retries, plus the in-cluster scan
    /// the safety checks of `spec` need, when the Kubernetes API answers. A scan that fails
    /// becomes a gap in it, so the checks say they are incomplete rather than passing.
    pub async fn refresh_for_plan(
        &self,
        spec: &crate::model::ClusterSpec,
        retry_policy: &RetryPolicy,
        events: &EventSink,
    ) -> Result<(crate::model::ActualCluster, Option<String>), ProviderError> {
        let mut call = || self.refresh_noting_kube();
        let (mut actual, note) = retry(retry_policy, events, None, &mut call).await?;
        if let (None, Some(ops)) = (&note, &self.node_ops) {
            if actual.kube.is_some() && wants_scan(spec) {
                let mut call = || ops.scan();
                actual.scan = Some(match retry(retry_policy, events, None, &mut call).await {
                    Ok(scan) => scan,
                    Err(e) => crate::kube::ClusterScan {
                        gaps: vec![format!(
                            "cannot read the cluster for the safety checks ({e}): API server health, workloads and objects at removed APIs in the cluster are not checked"
                        )],
                        ..Default::default()
                    },
                });
            }
        }
        Ok((actual, note))
    }

    fn scaled(&self, d: Duration) -> Duration {
        if self.time_scale > 1.0 {
            d.div_f64(self.time_scale)
        } else {
            d
        }
    }
}

/// `1h12m`, `9m30s`, `45s`, `0.8s`.
pub fn short_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 3600 {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    } else if secs >= 60 {
        if secs.is_multiple_of(60) {
            format!("{}m", secs / 60)
        } else {
            format!("{}m{:02}s", secs / 60, secs % 60)
        }
    } else if secs >= 10 {
        format!("{secs}s")
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Whether any check of `spec` needs the in-cluster scan.
fn wants_scan(spec: &crate::model::ClusterSpec) -> bool {
    use crate::model::CheckMode;
    spec.preflight.removed_apis != CheckMode::Off
        || spec.preflight.health != CheckMode::Off
        || spec.preflight.addons != CheckMode::Off
        || spec.postflight.enabled
}

/// `1.2s`, for reports.
pub(crate) fn short_secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts for one call that fails transiently (throttling, 5xx, timeouts).
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// How long to keep retrying when the provider says another operation holds the
    /// resource.
    pub conflict_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(20),
            conflict_wait: Duration::from_secs(30 * 60),
        }
    }
}

impl RetryPolicy {
    /// Full-jitter exponential backoff.
    fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.min(16)));
        let cap = exp.min(self.max_delay);
        let ms = cap.as_millis().max(1) as u64;
        Duration::from_millis(rand::random_range(ms / 2..=ms))
    }
}

pub type EventSink = Arc<dyn Fn(Event) + Send + Sync>;

#[derive(Clone, Debug, Default)]
pub struct ApplyReport {
    pub run_id: String,
    pub outcome: Option<RunOutcome>,
    pub done: Vec<String>,
    pub already_done: Vec<String>,
    pub failed: Vec<(String, String)>,
    pub not_run: Vec<(String, String)>,
    /// Waves that may not start yet: (gate step, rollout, wave, RFC 3339 instant they may).
    pub waiting: Vec<WaitingWave>,
    pub elapsed: Duration,
}

/// A wave whose soak or window has not come yet.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct WaitingWave {
    pub step: String,
    pub rollout: String,
    pub wave: String,
    /// RFC 3339.
    pub not_before: String,
}

impl ApplyReport {
    pub fn succeeded(&self) -> bool {
        self.outcome == Some(RunOutcome::Completed)
    }
}

pub struct Executor {
    pub clusters: BTreeMap<String, ClusterHandle>,
    pub parallelism: usize,
    pub retry: RetryPolicy,
    pub events: EventSink,
    /// Flips to true on the first Ctrl-C: no new steps start and running ones detach at
    /// their next safe point (their operations keep running at the provider).
    pub cancel: watch::Receiver<bool>,
    /// What to do at a wave whose soak or window is still ahead.
    pub wave_gates: WaveGates,
}

/// What the executor does at a wave gate that is not open yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WaveGates {
    /// End the run there (it stays resumable): `kup apply`.
    #[default]
    Stop,
    /// Wait until it opens: `kup apply -wait`.
    Wait,
    /// Pass at once: `kup rehearse`, which adds the soaks and windows to its timeline
    /// itself rather than sleeping through them.
    Open,
}

/// What a wave's gate needs to decide.
#[derive(Clone, Debug)]
struct GateContext {
    /// When the last step it follows finished (the run's start when it follows none).
    since: jiff::Timestamp,
    /// Simulated seconds per real second of the wave's clusters.
    scale: f64,
    policy: WaveGates,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Status {
    Pending,
    Running,
    Done,
    Failed,
    NotRun,
    Waiting,
}

enum StepEnd {
    Done {
        already: bool,
    },
    Failed(String),
    Interrupted,
    /// A wave's gate: not before this instant.
    Waiting(jiff::Timestamp),
}

impl Executor {
    /// Carry out `saved.plan`, continuing `resume` when it is the same plan.
    pub async fn run(
        &self,
        saved: &SavedPlan,
        journal: Journal,
        resume: Option<&UnfinishedRun>,
    ) -> io::Result<ApplyReport> {
        let started = Instant::now();
        let plan = &saved.plan;
        plan.validate().map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the plan cannot be executed: {e}"),
            )
        })?;
        let journal = Arc::new(Mutex::new(journal));
        let run_id = match resume {
            Some(r) => r.run_id.clone(),
            None => {
                let id = random_id(8);
                journal.lock().unwrap().append(&Record::RunStarted {
                    run_id: id.clone(),
                    at: now_rfc3339(),
                    saved_plan: Box::new(saved.clone()),
                })?;
                id
            }
        };
        let mut report = ApplyReport {
            run_id: run_id.clone(),
            ..ApplyReport::default()
        };
        let mut status: HashMap<&str, Status> = plan
            .steps
            .iter()
            .map(|s| (s.id.as_str(), Status::Pending))
            .collect();
        let mut already_finished = 0;
        let parse_ts = |s: &str| s.parse::<jiff::Timestamp>().ok();
        let run_started = resume
            .and_then(|r| parse_ts(&r.started_at))
            .unwrap_or_else(jiff::Timestamp::now);
        let mut finished_at: HashMap<String, jiff::Timestamp> = resume
            .map(|r| {
                r.finished_at
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), parse_ts(v)?)))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(r) = resume {
            for id in &r.finished {
                if let Some(s) = status.get_mut(id.as_str()) {
                    *s = Status::Done;
                    already_finished += 1;
                }
            }
        }
        (self.events)(Event::ApplyStarted {
            plan_id: plan.id.clone(),
            run_id: run_id.clone(),
            steps: plan.steps.len(),
            resumed: resume.is_some(),
            already_finished,
        });

        let sem = Arc::new(Semaphore::new(self.parallelism.max(1)));
        let mut tasks: JoinSet<(String, StepEnd)> = JoinSet::new();
        let mut interrupted = false;
        loop {
            let cancelled = *self.cancel.borrow();
            // Propagate failures and launch every step whose dependencies are done.
            let mut progressed = true;
            while progressed {
                progressed = false;
                for step in &plan.steps {
                    if status[step.id.as_str()] != Status::Pending {
                        continue;
                    }
                    let deps: Vec<Status> =
                        step.depends_on.iter().map(|d| status[d.as_str()]).collect();
                    if let Some(pos) = deps
                        .iter()
                        .position(|s| matches!(s, Status::Failed | Status::NotRun))
                    {
                        let reason =
                            format!("depends on {}, which did not finish", step.depends_on[pos]);
                        (self.events)(Event::StepNotRun {
                            step: step.id.clone(),
                            reason: reason.clone(),
                        });
                        report.not_run.push((step.id.clone(), reason));
                        status.insert(&step.id, Status::NotRun);
                        progressed = true;
                        continue;
                    }
                    if cancelled || deps.iter().any(|s| *s != Status::Done) {
                        continue;
                    }
                    status.insert(&step.id, Status::Running);
                    let gate = match &step.action {
                        Action::WaveGate { clusters, .. } => Some(GateContext {
                            since: step
                                .depends_on
                                .iter()
                                .filter_map(|d| finished_at.get(d).copied())
                                .max()
                                .unwrap_or(run_started),
                            scale: clusters
                                .iter()
                                .filter_map(|c| self.clusters.get(c))
                                .map(|h| h.time_scale)
                                .fold(1.0, f64::max),
                            policy: self.wave_gates,
                        }),
                        _ => None,
                    };
                    let ctx = StepContext {
                        gate,
                        step: step.clone(),
                        handle: self.clusters.get(&step.cluster).cloned(),
                        token: plan.idempotency_token(&run_id, &step.id),
                        journal: journal.clone(),
                        run_id: run_id.clone(),
                        known_operation: resume.and_then(|r| r.operations.get(&step.id).cloned()),
                        journaled_start: resume.is_some_and(|r| r.started.contains(&step.id)),
                        retry: self.retry.clone(),
                        events: self.events.clone(),
                        cancel: self.cancel.clone(),
                    };
                    let sem = sem.clone();
                    tasks.spawn(async move {
                        let _permit = sem.acquire_owned().await.expect("semaphore open");
                        let id = ctx.step.id.clone();
                        (id, ctx.run().await)
                    });
                }
            }
            if tasks.is_empty() {
                break;
            }
            let mut cancel = self.cancel.clone();
            let joined = tokio::select! {
                j = tasks.join_next() => j,
                _ = cancel.changed(), if !cancelled => continue,
            };
            let Some(joined) = joined else { break };
            let (id, end) =
                joined.map_err(|e| io::Error::other(format!("step task panicked: {e}")))?;
            let id = plan.step(&id).expect("own step").id.as_str();
            match end {
                StepEnd::Done { already } => {
                    status.insert(id, Status::Done);
                    finished_at.insert(id.to_string(), jiff::Timestamp::now());
                    if already {
                        report.already_done.push(id.to_string());
                    } else {
                        report.done.push(id.to_string());
                    }
                }
                StepEnd::Failed(msg) => {
                    status.insert(id, Status::Failed);
                    report.failed.push((id.to_string(), msg));
                }
                StepEnd::Interrupted => {
                    interrupted = true;
                    status.insert(id, Status::Pending);
                }
                StepEnd::Waiting(until) => {
                    status.insert(id, Status::Waiting);
                    if let Some(Action::WaveGate { rollout, wave, .. }) =
                        plan.step(id).map(|s| &s.action)
                    {
                        report.waiting.push(WaitingWave {
                            step: id.to_string(),
                            rollout: rollout.clone(),
                            wave: wave.clone(),
                            not_before: until.to_string(),
                        });
                    }
                }
            }
        }
        let cancelled = *self.cancel.borrow();
        let pending: Vec<&Step> = plan
            .steps
            .iter()
            .filter(|s| status[s.id.as_str()] == Status::Pending)
            .collect();
        let outcome = if !report.failed.is_empty() {
            RunOutcome::Failed
        } else if interrupted || cancelled {
            RunOutcome::Interrupted
        } else if !report.waiting.is_empty() {
            RunOutcome::Waiting
        } else if !pending.is_empty() {
            RunOutcome::Interrupted
        } else {
            RunOutcome::Completed
        };
        for s in pending {
            let why = if report.waiting.is_empty() {
                "interrupted before it started".to_string()
            } else {
                format!(
                    "waits for {}",
                    report
                        .waiting
                        .iter()
                        .map(|w| format!("wave {} (not before {})", w.wave, w.not_before))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            report.not_run.push((s.id.clone(), why));
        }
        for w in &report.waiting {
            report.not_run.push((
                w.step.clone(),
                format!("wave {} may start at {}", w.wave, w.not_before),
            ));
        }
        journal.lock().unwrap().append(&Record::RunFinished {
            run_id,
            outcome,
            at: now_rfc3339(),
        })?;
        report.outcome = Some(outcome);
        report.elapsed = started.elapsed();
        (self.events)(Event::ApplyFinished {
            outcome,
            done: report.done.len(),
            already_done: report.already_done.len() + already_finished,
            failed: report.failed.len(),
            not_run: report.not_run.len(),
            elapsed_secs: report.elapsed.as_secs_f64(),
        });
        Ok(report)
    }
}

struct StepContext {
    gate: Option<GateContext>,
    step: Step,
    handle: Option<ClusterHandle>,
    token: String,
    journal: Arc<Mutex<Journal>>,
    run_id: String,
    known_operation: Option<String>,
    journaled_start: bool,
    retry: RetryPolicy,
    events: EventSink,
    cancel: watch::Receiver<bool>,
}

impl StepContext {
    fn journal(&self, r: Record) -> Result<(), String> {
        self.journal
            .lock()
            .unwrap()
            .append(&r)
            .map_err(|e| format!("cannot write the journal: {e}"))
    }

    fn finish(&self, outcome: StepOutcome) -> Result<(), String> {
        self.journal(Record::StepFinished {
            run_id: self.run_id.clone(),
            step: self.step.id.clone(),
            outcome,
            at: now_rfc3339(),
        })
    }

    async fn run(self) -> StepEnd {
        let started = Instant::now();
        let result = self.execute(started).await;
        match result {
            Ok(end @ StepEnd::Done { already }) => {
                let outcome = if already {
                    StepOutcome::AlreadyDone
                } else {
                    StepOutcome::Done
                };
                if let Err(e) = self.finish(outcome) {
                    return self.failed(e);
                }
                (self.events)(Event::StepFinished {
                    step: self.step.id.clone(),
                    outcome: if already { "already_done" } else { "done" }.into(),
                    elapsed_secs: started.elapsed().as_secs_f64(),
                });
                end
            }
            Ok(StepEnd::Waiting(until)) => {
                if let Action::WaveGate { rollout, wave, .. } = &self.step.action {
                    (self.events)(Event::WaveWaiting {
                        step: self.step.id.clone(),
                        rollout: rollout.clone(),
                        wave: wave.clone(),
                        not_before: until.to_string(),
                    });
                }
                StepEnd::Waiting(until)
            }
            Ok(StepEnd::Interrupted) => {
                (self.events)(Event::Message {
                    level: Level::Warning,
                    text: format!(
                        "{}: stopped waiting; the operation continues at the provider and `kup apply` will resume it",
                        self.step.id
                    ),
                });
                StepEnd::Interrupted
            }
            Ok(StepEnd::Failed(msg)) | Err(msg) => {
                let _ = self.finish(StepOutcome::Failed {
                    message: msg.clone(),
                });
                self.failed(msg)
            }
        }
    }

    fn failed(&self, msg: String) -> StepEnd {
        (self.events)(Event::StepFailed {
            step: self.step.id.clone(),
            error: msg.clone(),
        });
        StepEnd::Failed(msg)
    }

    /// A gate that lets its wave start: shown as a step that started (and is done).
    fn gate_passed(&self) -> StepEnd {
        (self.events)(Event::StepStarted {
            step: self.step.id.clone(),
            cluster: self.step.cluster.clone(),
            description: self.step.action.describe(),
            estimated_secs: 0,
        });
        StepEnd::Done { already: false }
    }

    /// A wave's gate: pass when the waves it follows are done and soaked and the window
    /// is open; otherwise say when (or wait, with `-wait`).
    async fn pass_gate(&self) -> Result<StepEnd, String> {
        let Action::WaveGate {
            soak_secs, window, ..
        } = &self.step.action
        else {
            unreachable!("only gates")
        };
        let g = self
            .gate
            .as_ref()
            .expect("the executor gives gates their context");
        if g.policy == WaveGates::Open {
            return Ok(self.gate_passed());
        }
        let soak = Duration::from_secs(*soak_secs);
        let soak = if g.scale > 1.0 {
            soak.div_f64(g.scale)
        } else {
            soak
        };
        let soaked = g
            .since
            .checked_add(jiff::SignedDuration::try_from(soak).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        let due = |from: jiff::Timestamp| -> Result<jiff::Timestamp, String> {
            match window {
                Some(w) => crate::schedule::next_open(w, from),
                None => Ok(from),
            }
        };
        loop {
            let now = jiff::Timestamp::now();
            let at = due(soaked.max(now))?;
            if at <= now {
                return Ok(self.gate_passed());
            }
            if g.policy == WaveGates::Stop {
                // Whole seconds, rounded up: the time said is never before the time meant.
                let shown = if at.subsec_nanosecond() > 0 {
                    jiff::Timestamp::from_second(at.as_second() + 1).map_err(|e| e.to_string())?
                } else {
                    at
                };
                return Ok(StepEnd::Waiting(shown));
            }
            (self.events)(Event::StepProgress {
                step: self.step.id.clone(),
                status: format!("waiting until {at}"),
                elapsed_secs: 0.0,
            });
            let left = Duration::try_from(at.duration_since(now)).unwrap_or_default();
            let mut cancel = self.cancel.clone();
            tokio::select! {
                _ = tokio::time::sleep(left.min(Duration::from_secs(60))) => {}
                _ = cancel.changed() => return Ok(StepEnd::Interrupted),
            }
        }
    }

    async fn execute(&self, started: Instant) -> Result<StepEnd, String> {
        if matches!(self.step.action, Action::WaveGate { .. }) {
            return self.pass_gate().await;
        }
        let Some(handle) = &self.handle else {
            return Err(format!(
                "no provider is configured for {}; the plan does not match this configuration",
                self.step.cluster
            ));
        };
        let provider = handle.provider.as_ref();
        let target = &handle.target;
        let action = &self.step.action;
        (self.events)(Event::StepStarted {
            step: self.step.id.clone(),
            cluster: self.step.cluster.clone(),
            description: action.describe(),
            estimated_secs: self.step.estimated_secs,
        });
        if !self.journaled_start {
            self.journal(Record::StepStarted {
                run_id: self.run_id.clone(),
                step: self.step.id.clone(),
                at: now_rfc3339(),
            })?;
        }

        let op = match &self.known_operation {
            Some(op) => {
                (self.events)(Event::OperationStarted {
                    step: self.step.id.clone(),
                    operation_id: op.clone(),
                    attached: true,
                });
                OperationId(op.clone())
            }
            None => {
                let actual = self
                    .with_retry(|| handle.refresh())
                    .await
                    .map_err(|e| format!("refresh of {} failed: {e}", self.step.cluster))?;
                if self.step.postcondition.iter().all(|c| c.holds(&actual)) {
                    return Ok(StepEnd::Done { already: true });
                }
                if let Some(c) = self.step.precondition.iter().find(|c| !c.holds(&actual)) {
                    return Err(format!(
                        "the plan is stale: this step needs {c}, but {}. The cluster changed since the plan was made; run `kup plan` again",
                        c.observed(&actual)
                    ));
                }
                if *self.cancel.borrow() {
                    return Ok(StepEnd::Interrupted);
                }
                if let Action::RunHook {
                    point,
                    command,
                    timeout_secs,
                    env,
                } = action
                {
                    return self.run_hook(point, command, *timeout_secs, env).await;
                }
                if action.is_in_cluster() {
                    return self.run_in_cluster(handle).await;
                }
                let found = self
                    .with_retry(|| provider.find_in_flight(target, action))
                    .await
                    .map_err(|e| format!("cannot list running operations: {e}"))?;
                let (op, attached) = match found {
                    Some(op) => (op, true),
                    None => match self.start(handle).await {
                        Ok(Some(op)) => (op, false),
                        // An attempt whose answer was lost did the work, and it is done.
                        Ok(None) => return Ok(StepEnd::Done { already: false }),
                        // Nothing was issued: stopping here loses nothing.
                        Err(_) if *self.cancel.borrow() => return Ok(StepEnd::Interrupted),
                        Err(e) => return Err(e),
                    },
                };
                self.journal(Record::OperationStarted {
                    run_id: self.run_id.clone(),
                    step: self.step.id.clone(),
                    operation_id: op.0.clone(),
                    attached,
                    at: now_rfc3339(),
                })?;
                (self.events)(Event::OperationStarted {
                    step: self.step.id.clone(),
                    operation_id: op.0.clone(),
                    attached,
                });
                op
            }
        };

        // Wait for the operation, but not forever: one that never ends stops the step
        // naming it, and stays journaled (and running at the provider), so the next apply
        // waits on it again rather than issuing it twice.
        let interval = provider.poll_interval();
        let mut early = EarlyCompletion::default();
        let limit = handle
            .operation_timeout
            .unwrap_or(DEFAULT_OPERATION_TIMEOUT);
        let give_up = Instant::now() + handle.scaled(limit);
        loop {
            if Instant::now() >= give_up {
                return Ok(StepEnd::Failed(format!(
                    "{} operation {op} for {} ({}) did not finish within {} (operation_timeout); it may still be running there: the next apply waits on it instead of issuing it again",
                    provider.kind(),
                    self.step.id,
                    action.describe(),
                    short_duration(limit),
                )));
            }
            let status = match self.with_retry(|| provider.poll(target, action, &op)).await {
                Ok(s) => s,
                Err(e) if e.kind == ErrorKind::NotFound => {
                    // The provider forgot the operation (e.g. it expired). Decide from
                    // the cluster itself, never by issuing the action again.
                    let actual = self
                        .with_retry(|| handle.refresh())
                        .await
                        .map_err(|e| e.to_string())?;
                    if self.step.postcondition.iter().all(|c| c.holds(&actual)) {
                        return Ok(StepEnd::Done { already: false });
                    }
                    return Err(format!(
                        "operation {op} is no longer known to the provider and the step is not done ({e}); check the cluster, then run `kup plan`"
                    ));
                }
                Err(e) => return Err(format!("cannot read operation {op}: {e}")),
            };
            match status {
                OperationStatus::Succeeded => break,
                OperationStatus::Failed { code, message } => {
                    // Show the provider's text as it is; add the code only if it is absent.
                    let text = if message.starts_with(&code) {
                        message
                    } else {
                        format!("{code}: {message}")
                    };
                    let failed = format!("{} operation {op} failed: {text}", provider.kind());
                    if let Action::UpgradeNodeGroup {
                        node_group,
                        native: Some(_),
                        ..
                    } = action
                    {
                        return Ok(StepEnd::Failed(
                            self.roll_back_native(handle, node_group, failed).await,
                        ));
                    }
                    return Ok(StepEnd::Failed(failed));
                }
                OperationStatus::Cancelled { message } => {
                    return Ok(StepEnd::Failed(format!(
                        "{} operation {op} was cancelled: {message}",
                        provider.kind()
                    )))
                }
                OperationStatus::InProgress(progress) => {
                    for entry in &progress.transcript {
                        self.journal(Record::HostCommand {
                            run_id: self.run_id.clone(),
                            step: self.step.id.clone(),
                            entry: entry.clone(),
                            at: now_rfc3339(),
                        })?;
                    }
                    (self.events)(Event::StepProgress {
                        step: self.step.id.clone(),
                        status: progress.to_string(),
                        elapsed_secs: started.elapsed().as_secs_f64(),
                    });
                    if let Action::UpgradeNodeGroup {
                        node_group,
                        native:
                            Some(NativeUpgrade {
                                complete_when_healthy_secs: Some(secs),
                                ..
                            }),
                        ..
                    } = action
                    {
                        if progress.soaking && !early.done {
                            self.maybe_complete_early(
                                handle,
                                node_group,
                                Duration::from_secs(*secs),
                                &mut early,
                            )
                            .await;
                        }
                    }
                }
            }
            let mut cancel = self.cancel.clone();
            if *cancel.borrow() {
                return Ok(StepEnd::Interrupted);
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = cancel.changed() => return Ok(StepEnd::Interrupted),
            }
        }

        // Trust, but verify: the provider said done; the cluster must agree (allowing for
        // eventual consistency).
        for attempt in 0..5u32 {
            let actual = self
                .with_retry(|| handle.refresh())
                .await
                .map_err(|e| e.to_string())?;
            match self.step.postcondition.iter().find(|c| !c.holds(&actual)) {
                None | Some(crate::plan::Condition::JournalOnly) => {
                    return Ok(StepEnd::Done { already: false })
                }
                Some(c) if attempt == 4 => {
                    return Err(format!(
                        "operation {op} reported success, but {c} does not hold: {}",
                        c.observed(&actual)
                    ))
                }
                Some(_) => tokio::time::sleep(interval).await,
            }
        }
        unreachable!()
    }

    /// A native blue/green upgrade is soaking: when every node of the group has been
    /// Ready and every workload available for `window` (in the cluster's time), ask the
    /// provider to complete it. A failed check or call only delays completion: the
    /// provider ends the soak by itself anyway.
    async fn maybe_complete_early(
        &self,
        handle: &ClusterHandle,
        node_group: &str,
        window: Duration,
        early: &mut EarlyCompletion,
    ) {
        let Some(ops) = &handle.node_ops else {
            return;
        };
        let healthy = match (ops.snapshot().await, ops.unavailable_workloads().await) {
            (Ok(k), Ok(unavailable)) => {
                let mut nodes = k.nodes_of_group(node_group).peekable();
                let any = nodes.peek().is_some();
                let all_ready = nodes.filter(|n| !n.unschedulable).all(|n| n.ready);
                any && all_ready && unavailable.is_empty()
            }
            _ => false,
        };
        if !healthy {
            early.healthy_since = None;
            return;
        }
        let since = *early.healthy_since.get_or_insert_with(Instant::now);
        if since.elapsed() < handle.scaled(window) {
            return;
        }
        let provider = handle.provider.as_ref();
        match self
            .with_retry(|| provider.complete_upgrade(&handle.target, &self.step.action))
            .await
        {
            Ok(()) => {
                early.done = true;
                (self.events)(Event::Message {
                    level: Level::Info,
                    text: format!(
                        "{}: every node of {node_group} Ready and every workload available for {}; completing the blue/green upgrade without waiting out the rest of the soak",
                        self.step.id,
                        humantime::format_duration(window)
                    ),
                });
            }
            Err(e) => {
                early.done = true;
                (self.events)(Event::Message {
                    level: Level::Warning,
                    text: format!(
                        "{}: could not complete the blue/green upgrade early ({e}); the provider ends the soak by itself",
                        self.step.id
                    ),
                });
            }
        }
    }

    /// A provider-native blue/green upgrade failed: ask the provider to put the old
    /// nodes back (respecting PodDisruptionBudgets) and wait for it, so the group is left
    /// as it was rather than half replaced. Returns the step's failure message.
    async fn roll_back_native(
        &self,
        handle: &ClusterHandle,
        node_group: &str,
        failed: String,
    ) -> String {
        let provider = handle.provider.as_ref();
        let rollback = Action::RollbackNodeGroupUpgrade {
            node_group: node_group.to_string(),
        };
        (self.events)(Event::Message {
            level: Level::Warning,
            text: format!("{}: {failed}; rolling the upgrade back", self.step.id),
        });
        let token = format!("{}-rollback", self.token);
        let op = match self
            .with_retry(|| provider.start(&handle.target, &rollback, &token))
            .await
        {
            Ok(op) => op,
            Err(e) => {
                return format!(
                    "{failed}; kup could not start the rollback ({e}): run `kup apply -rollback`, or check node group {node_group} at the provider"
                )
            }
        };
        loop {
            match self
                .with_retry(|| provider.poll(&handle.target, &rollback, &op))
                .await
            {
                Ok(OperationStatus::InProgress(_)) => {}
                Ok(OperationStatus::Succeeded) => {
                    return format!(
                        "{failed}; kup rolled the upgrade back (operation {op}): node group {node_group} runs its old nodes again"
                    )
                }
                Ok(OperationStatus::Failed { message, .. })
                | Ok(OperationStatus::Cancelled { message }) => {
                    return format!(
                        "{failed}; the rollback (operation {op}) failed too: {message}. Check node group {node_group} at the provider"
                    )
                }
                Err(e) => {
                    return format!(
                        "{failed}; kup started the rollback (operation {op}) but cannot follow it ({e}); check node group {node_group} at the provider"
                    )
                }
            }
            let mut cancel = self.cancel.clone();
            if *cancel.borrow() {
                return format!(
                    "{failed}; the rollback (operation {op}) continues at the provider"
                );
            }
            tokio::select! {
                _ = tokio::time::sleep(provider.poll_interval()) => {}
                _ = cancel.changed() => return format!("{failed}; the rollback (operation {op}) continues at the provider"),
            }
        }
    }

    /// A user's hook: the command runs on this machine with the plan's environment added;
    /// a non-zero exit (or the timeout) fails the step with the command's last lines.
    async fn run_hook(
        &self,
        point: &str,
        command: &crate::model::Argv,
        timeout_secs: u64,
        env: &BTreeMap<String, String>,
    ) -> Result<StepEnd, String> {
        if !command.is_filled() {
            // A plan read from a file or the journal holds no sensitive value; the CLI
            // fills them in from the configuration before it executes.
            return Err(format!(
                "hook {point} ({command}) has sensitive arguments whose values were not given again; kup never writes them into plans or the journal. Give the sensitive variables the values they had at plan time (KUP_VAR_<name>, a kupvars file, or -var) and run `kup apply` again"
            ));
        }
        let (program, args) = command
            .args()
            .split_first()
            .ok_or_else(|| format!("hook {point} has no command"))?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            let v = if k == "KUBECONFIG" {
                crate::fsutil::expand_tilde(v)
            } else {
                v.clone()
            };
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("hook {point}: cannot run {:?}: {e}", command.shown()[0]))?;
        let mut cancel = self.cancel.clone();
        let out = tokio::select! {
            r = tokio::time::timeout(Duration::from_secs(timeout_secs.max(1)), child.wait_with_output()) => match r {
                Ok(r) => r.map_err(|e| format!("hook {point}: {e}"))?,
                Err(_) => return Err(format!("hook {point} did not finish within {timeout_secs}s; the plan stops here (raise its timeout, or fix it and run `kup apply` again)")),
            },
            _ = cancel.changed() => return Ok(StepEnd::Interrupted),
        };
        if out.status.success() {
            return Ok(StepEnd::Done { already: false });
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let mut tail = lines[lines.len().saturating_sub(15)..].join("\n");
        // The hook may print what it was given; this message goes into the journal.
        for secret in command.sensitive_values().filter(|s| !s.is_empty()) {
            tail = tail.replace(secret, crate::redact::SENSITIVE);
        }
        Err(format!(
            "hook {point} ({command}) exited with {}; the plan stops here: fix it and run `kup apply` again to resume after it\n{tail}",
            out.status.code().map_or("a signal".to_string(), |c| c.to_string())
        ))
    }

    /// Actions kup carries out itself through the Kubernetes API. They hold no provider
    /// operation id: a resumed run re-checks the postcondition and repeats what is left,
    /// which each of them tolerates (cordon and drain are idempotent, a soak restarts).
    async fn run_in_cluster(&self, handle: &ClusterHandle) -> Result<StepEnd, String> {
        let Some(ops) = &handle.node_ops else {
            return Err(format!(
                "{} needs the cluster's Kubernetes API, which kup cannot reach; set kubeconfig/context on the cluster",
                self.step.action.describe()
            ));
        };
        let step = &self.step.id;
        let group_nodes = |group: &str| {
            let group = group.to_string();
            async move {
                let k = self
                    .with_retry(|| ops.snapshot())
                    .await
                    .map_err(|e| format!("cannot read the cluster's nodes: {e}"))?;
                let mut names: Vec<String> =
                    k.nodes_of_group(&group).map(|n| n.name.clone()).collect();
                names.sort();
                Ok::<_, String>((k, names))
            }
        };
        match &self.step.action {
            Action::WaitNodesReady {
                node_group,
                count,
                minor,
            } => {
                let timeout = handle
                    .scaled(Duration::from_secs(20 * 60))
                    .max(Duration::from_secs(30));
                ops.wait_ready(node_group, *count as usize, *minor, timeout)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Action::CordonNodeGroup {
                node_group,
                uncordon,
            } => {
                let (_, nodes) = group_nodes(node_group).await?;
                for n in &nodes {
                    self.with_retry(|| ops.set_unschedulable(n, !uncordon))
                        .await
                        .map_err(|e| {
                            format!(
                                "cannot {} {n}: {e}",
                                if *uncordon { "uncordon" } else { "cordon" }
                            )
                        })?;
                }
            }
            Action::DrainNodeGroup {
                node_group,
                batch_size,
                batch_soak_secs,
                drain,
            } => {
                let (_, nodes) = group_nodes(node_group).await?;
                let mut opts = drain.clone();
                // Like EKS's managed drain, never wait forever unless told to.
                let timeout = opts.timeout.unwrap_or(Duration::from_secs(15 * 60));
                opts.timeout = Some(timeout);
                if handle.time_scale > 1.0 {
                    // A simulated cluster: the timeout and the pauses between refused
                    // evictions both run on its clock, so a drain takes the simulated
                    // time it would take a real cluster (a rehearsal's prediction rests
                    // on this). A floor leaves room for the HTTP round trips.
                    opts.retry_backoff = Some((
                        handle
                            .scaled(Duration::from_secs(1))
                            .max(Duration::from_millis(10)),
                        handle
                            .scaled(Duration::from_secs(5))
                            .max(Duration::from_millis(20)),
                    ));
                    opts.timeout = Some(handle.scaled(timeout).max(Duration::from_millis(500)));
                }
                let batches: Vec<&[String]> = nodes.chunks((*batch_size).max(1) as usize).collect();
                let total = batches.len();
                for (i, batch) in batches.into_iter().enumerate() {
                    let mut cancel = self.cancel.clone();
                    if *cancel.borrow() {
                        return Ok(StepEnd::Interrupted);
                    }
                    // Stopping mid-drain loses nothing: evictions already made stand, and
                    // a resumed apply drains what is left.
                    let results = tokio::select! {
                        r = futures::future::join_all(batch.iter().map(|n| ops.drain(n, &opts))) => r,
                        _ = cancel.changed() => return Ok(StepEnd::Interrupted),
                    };
                    for r in results {
                        r.map_err(|e| e.to_string())?;
                    }
                    (self.events)(Event::StepProgress {
                        step: step.clone(),
                        status: format!(
                            "drained batch {} of {total} ({})",
                            i + 1,
                            batch.join(", ")
                        ),
                        elapsed_secs: 0.0,
                    });
                    if i + 1 < total && *batch_soak_secs > 0 {
                        let mut cancel = self.cancel.clone();
                        tokio::select! {
                            _ = tokio::time::sleep(handle.scaled(Duration::from_secs(*batch_soak_secs))) => {}
                            _ = cancel.changed() => return Ok(StepEnd::Interrupted),
                        }
                    }
                }
            }
            Action::Soak { node_group, secs } => {
                let until = Instant::now() + handle.scaled(Duration::from_secs(*secs));
                loop {
                    let now = Instant::now();
                    if now >= until {
                        break;
                    }
                    let mut cancel = self.cancel.clone();
                    tokio::select! {
                        _ = tokio::time::sleep((until - now).min(Duration::from_secs(10))) => {}
                        _ = cancel.changed() => return Ok(StepEnd::Interrupted),
                    }
                }
                // Workloads must be healthy on green: every Deployment and StatefulSet
                // available, nothing left Pending.
                let unavailable = self
                    .with_retry(|| ops.unavailable_workloads())
                    .await
                    .map_err(|e| format!("cannot check the workloads after the soak: {e}"))?;
                if !unavailable.is_empty() {
                    return Err(format!(
                        "after the soak, workloads are not fully available: {}; the old group is kept so you can roll back with `kup apply -rollback`",
                        unavailable.join(", ")
                    ));
                }
                let (k, _) = group_nodes(node_group).await?;
                let pending: Vec<String> = k
                    .pods
                    .iter()
                    .filter(|p| p.phase == "Pending")
                    .map(|p| p.address())
                    .collect();
                if !pending.is_empty() {
                    return Err(format!(
                        "after the soak, pods are still Pending: {}; the old group is kept so you can roll back with `kup apply -rollback`",
                        pending.join(", ")
                    ));
                }
            }
            Action::PostFlight {
                node_groups,
                available_before,
                pending_before,
                smoke_pod,
                timeout_secs,
            } => {
                // Pods moved by the last drain may still be starting: wait for the
                // baseline up to the timeout, in the cluster's time.
                let timeout = Duration::from_secs(*timeout_secs);
                let deadline = Instant::now()
                    + timeout.min(handle.scaled(timeout).max(Duration::from_secs(30)));
                let interval = handle
                    .scaled(Duration::from_secs(10))
                    .max(Duration::from_millis(200));
                let passed = loop {
                    let read = futures::future::try_join(
                        self.with_retry(|| ops.snapshot()),
                        self.with_retry(|| ops.workloads()),
                    )
                    .await;
                    // The API server may be briefly away right after an upgrade: that is
                    // a reason to wait, not a verdict.
                    let verdict = match &read {
                        Ok((k, workloads)) => crate::preflight::postflight_verdict(
                            k,
                            workloads,
                            node_groups,
                            available_before,
                            pending_before,
                        ),
                        Err(e) => Err(vec![format!("cannot read the cluster: {e}")]),
                    };
                    match verdict {
                        Ok(passed) => break passed,
                        Err(problems) if Instant::now() >= deadline => {
                            (self.events)(Event::PostFlight {
                                step: step.clone(),
                                cluster: self.step.cluster.clone(),
                                passed: false,
                                checks: problems.clone(),
                            });
                            return Err(format!(
                                "post-flight check failed after {}: {}",
                                humantime::format_duration(timeout),
                                problems.join("; ")
                            ));
                        }
                        Err(problems) => {
                            (self.events)(Event::StepProgress {
                                step: step.clone(),
                                status: format!("waiting: {}", problems.join("; ")),
                                elapsed_secs: 0.0,
                            });
                        }
                    }
                    let mut cancel = self.cancel.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(interval) => {}
                        _ = cancel.changed() => return Ok(StepEnd::Interrupted),
                    }
                };
                let mut checks = passed;
                if let Some(sp) = smoke_pod {
                    // A name per plan step, so a resumed apply finds (and replaces) its
                    // own pod rather than piling up new ones.
                    let name = format!("kup-smoke-{}", &self.token[..self.token.len().min(12)]);
                    let smoke_timeout = Duration::from_secs(300);
                    let took = ops
                        .smoke_pod(
                            &sp.namespace,
                            &name,
                            &sp.image,
                            // A pod starts in seconds: a shorter floor than drains get.
                            smoke_timeout
                                .min(handle.scaled(smoke_timeout).max(Duration::from_secs(5))),
                        )
                        .await
                        .map_err(|e| {
                            (self.events)(Event::PostFlight {
                                step: step.clone(),
                                cluster: self.step.cluster.clone(),
                                passed: false,
                                checks: vec![format!("smoke pod {}/{name}: {e}", sp.namespace)],
                            });
                            format!("post-flight smoke pod {}/{name} failed: {e}", sp.namespace)
                        })?;
                    checks.push(format!(
                        "smoke pod {}/{name} ran ({}) and was removed",
                        sp.namespace,
                        crate::executor::short_secs(took)
                    ));
                }
                (self.events)(Event::PostFlight {
                    step: step.clone(),
                    cluster: self.step.cluster.clone(),
                    passed: true,
                    checks,
                });
            }
            other => {
                return Err(format!("{} is not an in-cluster action", other.describe()));
            }
        }
        // Confirm from the cluster itself.
        let actual = self
            .with_retry(|| handle.refresh())
            .await
            .map_err(|e| e.to_string())?;
        match self.step.postcondition.iter().find(|c| !c.holds(&actual)) {
            None | Some(crate::plan::Condition::JournalOnly) => {
                Ok(StepEnd::Done { already: false })
            }
            Some(c) => Err(format!(
                "{} finished, but {c} does not hold: {}",
                self.step.action.describe(),
                c.observed(&actual)
            )),
        }
    }

    /// Issue the action. Transient errors are retried by `with_retry`; a conflict (another
    /// operation holds the resource) is waited out up to `conflict_wait`.
    /// Issue the step's operation; `None` when an earlier attempt whose answer was lost
    /// (a reset, a timeout, an unreadable body) turns out to have done the step already.
    async fn start(&self, handle: &ClusterHandle) -> Result<Option<OperationId>, String> {
        let (provider, target) = (handle.provider.as_ref(), &handle.target);
        let deadline = Instant::now() + self.retry.conflict_wait;
        let mut attempt = 0;
        let sent = std::sync::atomic::AtomicBool::new(false);
        loop {
            let issue = || async {
                // A resend is a replay where the provider has request tokens (EKS) or an
                // operation to find (GKE, AKS); but an operation that already finished is
                // not running any more, and issuing it again would repeat it. Ask the
                // cluster first.
                if sent.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    let actual = handle.refresh().await?;
                    if self.step.postcondition.iter().all(|c| c.holds(&actual)) {
                        return Ok(None);
                    }
                }
                provider
                    .start(target, &self.step.action, &self.token)
                    .await
                    .map(Some)
            };
            match self.with_retry(issue).await {
                Ok(op) => return Ok(op),
                Err(e) if e.kind == ErrorKind::Conflict && Instant::now() < deadline => {
                    let delay = self.retry.delay(attempt).max(provider.poll_interval());
                    (self.events)(Event::Retrying {
                        step: Some(self.step.id.clone()),
                        attempt: attempt + 1,
                        delay_ms: delay.as_millis() as u64,
                        error: e.to_string(),
                    });
                    attempt += 1;
                    // Another operation may hold the resource for a long time: stay
                    // responsive to Ctrl-C while waiting for it.
                    let mut cancel = self.cancel.clone();
                    let interrupted =
                        "interrupted while waiting for another operation on the resource to finish";
                    if *cancel.borrow() {
                        return Err(interrupted.into());
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = cancel.changed() => return Err(interrupted.into()),
                    }
                }
                Err(e) => {
                    let code = e
                        .code
                        .as_deref()
                        .map(|c| format!("{c}: "))
                        .unwrap_or_default();
                    return Err(format!(
                        "{} refused the request: {code}{}",
                        provider.kind(),
                        e.message
                    ));
                }
            }
        }
    }

    async fn with_retry<T, F, Fut>(&self, mut call: F) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ProviderError>>,
    {
        retry(&self.retry, &self.events, Some(&self.step.id), &mut call).await
    }
}

/// Call `f`, retrying transient errors with jittered exponential backoff.
pub async fn retry<T, F, Fut>(
    policy: &RetryPolicy,
    events: &EventSink,
    step: Option<&str>,
    f: &mut F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ProviderError>>,
{
    let mut attempt = 0;
    loop {
        match f().await {
            Err(e) if e.is_transient() && attempt + 1 < policy.max_attempts => {
                let delay = policy.delay(attempt);
                events(Event::Retrying {
                    step: step.map(str::to_string),
                    attempt: attempt + 1,
                    delay_ms: delay.as_millis() as u64,
                    error: e.to_string(),
                });
                attempt += 1;
                tokio::time::sleep(delay).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests;
