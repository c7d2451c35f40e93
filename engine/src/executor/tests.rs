//! Executor logic against an in-memory provider. The wire-level behaviour is covered by
//! the end-to-end tests against the simulator; here we check ordering, resume, staleness,
//! retries and failure isolation, which need precise control over the provider.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;

use super::*;
use crate::journal::{self, Journal};
use crate::model::{ActualCluster, ActualNodeGroup, Desired, Unavailable};
use crate::plan::{Action, Condition, Plan, SavedPlan};
use crate::policy::ProviderPolicy;
use crate::version::{Minor, Version};

struct Op {
    action: Action,
    polls_left: u32,
    fail: Option<String>,
}

#[derive(Default)]
struct Memory {
    clusters: Mutex<BTreeMap<String, ActualCluster>>,
    ops: Mutex<BTreeMap<String, Op>>,
    starts: AtomicU32,
    transient_failures: AtomicU32,
    fail_next: Mutex<Option<String>>,
}

#[async_trait]
impl Provider for Memory {
    fn kind(&self) -> &str {
        "memory"
    }
    fn policy(&self) -> ProviderPolicy {
        ProviderPolicy::default()
    }
    fn poll_interval(&self) -> Duration {
        Duration::from_millis(1)
    }
    async fn refresh(&self, c: &ClusterTarget) -> Result<ActualCluster, ProviderError> {
        if self.transient_failures.load(Ordering::SeqCst) > 0 {
            self.transient_failures.fetch_sub(1, Ordering::SeqCst);
            return Err(ProviderError::new(ErrorKind::Transient, "throttled"));
        }
        self.clusters
            .lock()
            .unwrap()
            .get(&c.name)
            .cloned()
            .ok_or_else(|| ProviderError::new(ErrorKind::NotFound, "no cluster"))
    }
    async fn start(
        &self,
        c: &ClusterTarget,
        a: &Action,
        token: &str,
    ) -> Result<OperationId, ProviderError> {
        self.starts.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}-{token}", c.name);
        self.ops.lock().unwrap().insert(
            id.clone(),
            Op {
                action: a.clone(),
                polls_left: 2,
                fail: self.fail_next.lock().unwrap().take(),
            },
        );
        Ok(OperationId(id))
    }
    async fn find_in_flight(
        &self,
        _: &ClusterTarget,
        a: &Action,
    ) -> Result<Option<OperationId>, ProviderError> {
        Ok(self
            .ops
            .lock()
            .unwrap()
            .iter()
            .find(|(_, op)| &op.action == a && op.polls_left > 0)
            .map(|(id, _)| OperationId(id.clone())))
    }
    async fn poll(
        &self,
        c: &ClusterTarget,
        _: &Action,
        op: &OperationId,
    ) -> Result<OperationStatus, ProviderError> {
        let mut ops = self.ops.lock().unwrap();
        let Some(o) = ops.get_mut(&op.0) else {
            return Err(ProviderError::new(ErrorKind::NotFound, "no such op"));
        };
        if o.polls_left > 0 {
            o.polls_left -= 1;
            return Ok(OperationStatus::in_progress());
        }
        if let Some(msg) = &o.fail {
            return Ok(OperationStatus::Failed {
                code: "PodEvictionFailure".into(),
                message: msg.clone(),
            });
        }
        let mut clusters = self.clusters.lock().unwrap();
        let cl = clusters.get_mut(&c.name).unwrap();
        match &o.action {
            Action::UpgradeControlPlane { to, .. } => cl.version = to.clone(),
            Action::UpgradeNodeGroup { node_group, to, .. } => {
                cl.node_groups
                    .iter_mut()
                    .find(|n| &n.name == node_group)
                    .unwrap()
                    .version = to.clone()
            }
            _ => {}
        }
        Ok(OperationStatus::Succeeded)
    }
}

fn v(s: &str) -> Version {
    s.parse().unwrap()
}

fn cluster(name: &str, cp: &str, ng: &str) -> ActualCluster {
    ActualCluster {
        scan: None,
        insights: Vec::new(),
        upgrade_protection: None,
        support: Vec::new(),
        api_uses: Vec::new(),
        upgrade_plans: Vec::new(),
        name: name.into(),
        region: None,
        version: v(cp),
        platform_version: None,
        status: "ACTIVE".into(),
        offered_versions: vec![],
        node_groups: vec![ActualNodeGroup {
            control_plane: false,
            name: "ng".into(),
            version: v(ng),
            release_version: None,
            status: "ACTIVE".into(),
            desired_size: 2,
            min_size: 1,
            max_size: 3,
            max_unavailable: Some(Unavailable::Count(1)),
            health_issues: vec![],
            labels: Default::default(),
            blue_green: None,
            upgrade_phase: None,
            drain_limits: None,
            max_surge: None,
            node_soak: None,
        }],
        addons: vec![],
        in_flight: vec![],
        kube: None,
        auto_upgrade: None,
        default_version: None,
        maintenance: None,
    }
}

fn hop(cluster: &str, from: u32, deps: &[&str]) -> Step {
    Step {
        id: format!("{cluster}/cp/1.{}", from + 1),
        cluster: format!("cluster.{cluster}"),
        address: format!("cluster.{cluster}.control_plane"),
        action: Action::UpgradeControlPlane {
            from: v(&format!("1.{from}")),
            to: v(&format!("1.{}", from + 1)),
        },
        depends_on: deps.iter().map(|s| s.to_string()).collect(),
        precondition: vec![Condition::ControlPlaneAt {
            minor: Minor::new(1, from),
        }],
        postcondition: vec![Condition::ControlPlaneAtLeast {
            minor: Minor::new(1, from + 1),
        }],
        estimated_secs: 1,
        reason: String::new(),
    }
}

fn saved(steps: Vec<Step>) -> SavedPlan {
    SavedPlan {
        kup_version: "t".into(),
        format_version: 1,
        created_at: "t".into(),
        config_dir: "/".into(),
        config_hash: "h".into(),
        state_fingerprints: Default::default(),
        desired: Desired::default(),
        plan: Plan::new(vec![], steps),
        integrity: String::new(),
    }
    .seal()
}

struct Harness {
    provider: Arc<Memory>,
    events: Arc<Mutex<Vec<Event>>>,
    dir: tempfile::TempDir,
    cancel_tx: watch::Sender<bool>,
}

impl Harness {
    fn new(clusters: &[ActualCluster]) -> Harness {
        let provider = Arc::new(Memory::default());
        for c in clusters {
            provider
                .clusters
                .lock()
                .unwrap()
                .insert(c.name.clone(), c.clone());
        }
        let (cancel_tx, _) = watch::channel(false);
        Harness {
            provider,
            events: Arc::default(),
            dir: tempfile::tempdir().unwrap(),
            cancel_tx,
        }
    }

    fn journal_path(&self) -> std::path::PathBuf {
        self.dir.path().join("journal")
    }

    fn executor(&self, names: &[&str]) -> Executor {
        let events = self.events.clone();
        Executor {
            wave_gates: WaveGates::Stop,
            clusters: names
                .iter()
                .map(|n| {
                    (
                        format!("cluster.{n}"),
                        ClusterHandle {
                            provider: self.provider.clone() as Arc<dyn Provider>,
                            target: ClusterTarget {
                                name: n.to_string(),
                                region: None,
                            },
                            node_ops: None,
                            time_scale: 1.0,
                            operation_timeout: None,
                        },
                    )
                })
                .collect(),
            parallelism: 4,
            retry: RetryPolicy {
                base_delay: Duration::from_millis(1),
                conflict_wait: Duration::from_millis(50),
                ..RetryPolicy::default()
            },
            events: Arc::new(move |e| events.lock().unwrap().push(e)),
            cancel: self.cancel_tx.subscribe(),
        }
    }

    async fn run(&self, names: &[&str], plan: &SavedPlan) -> ApplyReport {
        let records = journal::read(&self.journal_path()).unwrap();
        let resume =
            journal::unfinished_run(&records).filter(|r| r.saved_plan.plan.id == plan.plan.id);
        let j = Journal::open(&self.journal_path()).unwrap();
        self.executor(names)
            .run(plan, j, resume.as_ref())
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn runs_a_chain_in_order_and_journals_it() {
    let h = Harness::new(&[cluster("a", "1.28", "1.28")]);
    let plan = saved(vec![hop("a", 28, &[]), hop("a", 29, &["a/cp/1.29"])]);
    let report = h.run(&["a"], &plan).await;
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.done, ["a/cp/1.29", "a/cp/1.30"]);
    assert_eq!(h.provider.starts.load(Ordering::SeqCst), 2);
    assert_eq!(h.provider.clusters.lock().unwrap()["a"].version, v("1.30"));
    // The journal's run is finished, so nothing would be replayed.
    assert!(journal::unfinished_run(&journal::read(&h.journal_path()).unwrap()).is_none());
}

#[tokio::test]
async fn resume_waits_on_journaled_operation_instead_of_issuing_again() {
    let h = Harness::new(&[cluster("a", "1.28", "1.28")]);
    let plan = saved(vec![hop("a", 28, &[]), hop("a", 29, &["a/cp/1.29"])]);
    // Simulate a run killed right after the first step's operation was journaled.
    {
        let mut j = Journal::open(&h.journal_path()).unwrap();
        j.append(&Record::RunStarted {
            run_id: "r".into(),
            at: "t".into(),
            saved_plan: Box::new(plan.clone()),
        })
        .unwrap();
        j.append(&Record::StepStarted {
            run_id: "r".into(),
            step: "a/cp/1.29".into(),
            at: "t".into(),
        })
        .unwrap();
        let op = h
            .provider
            .start(
                &ClusterTarget {
                    name: "a".into(),
                    region: None,
                },
                &plan.plan.steps[0].action,
                "tok",
            )
            .await
            .unwrap();
        j.append(&Record::OperationStarted {
            run_id: "r".into(),
            step: "a/cp/1.29".into(),
            operation_id: op.0,
            attached: false,
            at: "t".into(),
        })
        .unwrap();
    }
    let report = h.run(&["a"], &plan).await;
    assert!(report.succeeded(), "{report:?}");
    // One start from the "killed" run plus one for the second step: none repeated.
    assert_eq!(h.provider.starts.load(Ordering::SeqCst), 2);
    let events = h.events.lock().unwrap();
    assert!(events.iter().any(
        |e| matches!(e, Event::OperationStarted { attached: true, step, .. } if step == "a/cp/1.29")
    ));
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::ApplyStarted { resumed: true, .. })));
}

#[tokio::test]
async fn in_flight_operation_found_at_provider_is_adopted() {
    // Killed after the provider accepted the request but before the id was journaled.
    let h = Harness::new(&[cluster("a", "1.28", "1.28")]);
    let plan = saved(vec![hop("a", 28, &[])]);
    h.provider
        .start(
            &ClusterTarget {
                name: "a".into(),
                region: None,
            },
            &plan.plan.steps[0].action,
            "other",
        )
        .await
        .unwrap();
    let report = h.run(&["a"], &plan).await;
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(
        h.provider.starts.load(Ordering::SeqCst),
        1,
        "adopted, not re-issued"
    );
}

#[tokio::test]
async fn done_steps_are_skipped_by_postcondition() {
    let h = Harness::new(&[cluster("a", "1.29", "1.28")]);
    let plan = saved(vec![hop("a", 28, &[])]);
    let report = h.run(&["a"], &plan).await;
    assert_eq!(report.already_done, ["a/cp/1.29"]);
    assert_eq!(h.provider.starts.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn stale_precondition_stops_the_cluster_but_not_others() {
    let h = Harness::new(&[cluster("a", "1.27", "1.27"), cluster("b", "1.28", "1.28")]);
    let plan = saved(vec![
        hop("a", 28, &[]),
        hop("a", 29, &["a/cp/1.29"]),
        hop("b", 28, &[]),
    ]);
    let report = h.run(&["a", "b"], &plan).await;
    assert!(!report.succeeded());
    assert_eq!(report.failed.len(), 1);
    assert!(
        report.failed[0].1.contains("stale") && report.failed[0].1.contains("1.27"),
        "{:?}",
        report.failed
    );
    assert_eq!(
        report
            .not_run
            .iter()
            .map(|(s, _)| s.as_str())
            .collect::<Vec<_>>(),
        ["a/cp/1.30"]
    );
    assert_eq!(report.done, ["b/cp/1.29"]);
}

#[tokio::test]
async fn failed_operation_reports_provider_text() {
    let h = Harness::new(&[cluster("a", "1.28", "1.28")]);
    *h.provider.fail_next.lock().unwrap() =
        Some("Reached max retries while trying to evict pods".into());
    let plan = saved(vec![hop("a", 28, &[])]);
    let report = h.run(&["a"], &plan).await;
    assert!(
        report.failed[0]
            .1
            .contains("PodEvictionFailure: Reached max retries"),
        "{:?}",
        report.failed
    );
}

#[test]
fn plans_with_bad_dependencies_are_refused() {
    let mut bad = hop("a", 28, &["nope"]);
    assert!(saved(vec![bad.clone()])
        .plan
        .validate()
        .unwrap_err()
        .contains("nope"));
    bad.depends_on = vec![bad.id.clone()];
    assert!(saved(vec![bad])
        .plan
        .validate()
        .unwrap_err()
        .contains("cycle"));
    let twice = saved(vec![hop("a", 28, &[]), hop("a", 28, &[])]);
    assert!(twice.plan.validate().unwrap_err().contains("twice"));
}

#[tokio::test]
async fn transient_errors_are_retried() {
    let h = Harness::new(&[cluster("a", "1.28", "1.28")]);
    h.provider.transient_failures.store(3, Ordering::SeqCst);
    let plan = saved(vec![hop("a", 28, &[])]);
    let report = h.run(&["a"], &plan).await;
    assert!(report.succeeded(), "{report:?}");
    let retries = h
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Event::Retrying { .. }))
        .count();
    assert_eq!(retries, 3);
}

#[tokio::test]
async fn cancel_interrupts_and_the_run_resumes_later() {
    let h = Harness::new(&[cluster("a", "1.28", "1.28")]);
    let plan = saved(vec![hop("a", 28, &[]), hop("a", 29, &["a/cp/1.29"])]);
    h.cancel_tx.send_replace(true);
    let report = h.run(&["a"], &plan).await;
    assert_eq!(report.outcome, Some(RunOutcome::Interrupted));
    assert_eq!(h.provider.starts.load(Ordering::SeqCst), 0);
    h.cancel_tx.send_replace(false);
    let report = h.run(&["a"], &plan).await;
    assert!(report.succeeded(), "{report:?}");
    assert!(h
        .events
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, Event::ApplyStarted { resumed: true, .. })));
}
