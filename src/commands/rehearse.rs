//! `kup rehearse`: a dress rehearsal before anything real moves. Refresh the real
//! clusters, copy what was read into simulated worlds (one per provider block), plan and
//! apply there at high speed, and report the predicted timeline: each step's simulated
//! duration, drains budgets held up, pods that found no room, and the total with wave
//! soaks and windows put back in.
//!
//! Exit codes: 0 when the rehearsal's apply completed, 2 when it failed (the real apply
//! would most likely fail the same way), 1 when kup could not rehearse.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kup_engine::events::{Event, EventRecord, Level};
use kup_engine::executor::{EventSink, Executor, RetryPolicy, WaveGates};
use kup_engine::journal::Journal;
use kup_engine::model::{ActualCluster, CheckMode, ClusterSpec, Desired};
use kup_engine::plan::{Plan, SavedPlan, PLAN_FORMAT_VERSION};
use kup_engine::planner::{self, PlanInput, PlanOptions};
use kup_engine::state::now_rfc3339;

use crate::cli::RehearseArgs;
use crate::failure::{Failure, Result};
use crate::rehearse::gantt::{self, clock};
use crate::rehearse::world;
use crate::render::plan::render_plan_errors;
use crate::workspace::{observe, open_for_reading, Connected};
use kup_engine::timeline::{self, Measured, Outcome, Timeline};

/// Provider kinds the simulator can stand in for. kubeadm upgrades run over SSH on the
/// team's own hosts, which a copy of the API objects cannot reproduce.
const REHEARSABLE: &[&str] = &["eks", "gke", "aks", "k3s", "rke2"];

pub async fn run(args: RehearseArgs) -> Result<ExitCode> {
    if !(args.speed.is_finite() && args.speed >= 1.0) {
        return Err(Failure::Message(format!(
            "-speed must be a number of simulated seconds per real second, at least 1 (got {})",
            args.speed
        )));
    }
    let json = args.output.json;
    let opened = open_for_reading(&args.dir, &args.vars, &args.state, "rehearse")?;
    let loaded = &opened.loaded;
    let options = PlanOptions {
        strict_skew: args.strict_skew,
        targets: Vec::new(),
        today: Some(crate::workspace::today()?),
    };

    // 1. What is running, and the plan a real apply would carry out.
    let observed = observe(loaded, args.parallelism, json).await?;
    let real_plan = planner::plan(&PlanInput {
        desired: &observed.desired,
        actual: &observed.actual,
        policies: &observed.policies,
        options: &options,
    })
    .map_err(|errors| Failure::Diagnostics {
        rendered: render_plan_errors(&errors),
        json: serde_json::to_value(&errors).unwrap_or_default(),
    })?;
    if real_plan.is_empty() {
        say(json, "No changes: the clusters already match the configuration, so there is nothing to rehearse.");
        return Ok(ExitCode::SUCCESS);
    }

    // 2. The simulated copy.
    let kup_dir = std::fs::canonicalize(&loaded.dir)
        .unwrap_or_else(|_| loaded.dir.clone())
        .join(".kup");
    let root = kup_dir.join("rehearsal");
    // One rehearsal at a time per configuration: each replaces the last one's files.
    let _rehearsal_lock = kup_engine::state::StateLock::acquire(
        &kup_dir.join("rehearsal"),
        "rehearse",
        args.state.lock_timeout,
    )
    .map_err(|e| Failure::Message(e.to_string()))?;
    if root.exists() {
        std::fs::remove_dir_all(&root).map_err(|e| {
            Failure::Message(format!(
                "cannot clear the last rehearsal in {}: {e}",
                root.display()
            ))
        })?;
    }
    let (desired, mut notes) =
        rehearsal_config(&observed.desired, &observed.actual, &root, args.speed)?;
    if desired.clusters.is_empty() {
        return Err(Failure::Message(format!(
            "no cluster can be rehearsed:\n  {}",
            notes.join("\n  ")
        )));
    }
    let rehearsed: Vec<&ClusterSpec> = desired.clusters.iter().collect();
    say(
        json,
        &format!(
            "Rehearsing the plan for {} cluster(s) in a simulated copy at {}× speed (in {}).",
            rehearsed.len(),
            args.speed,
            root.display()
        ),
    );
    let started = Instant::now();
    let connected = Connected::start(&desired, &root).await?;
    let outcome = rehearse(
        &args, &root, &desired, &connected, &options, &real_plan, &mut notes,
    )
    .await;
    let audits = match &outcome {
        Ok(_) => audits(&connected, &desired).await,
        Err(_) => BTreeMap::new(),
    };
    connected.shutdown().await;
    let (plan, measured, before) = outcome?;
    let rehearsal_secs = started.elapsed().as_secs_f64();

    // 3. The predicted timeline and what held the rehearsal up.
    let timeline = timeline::compose(&plan, &measured, args.parallelism, jiff::Timestamp::now())
        .map_err(|e| Failure::Message(format!("cannot lay out the timeline: {e}")))?;
    let failed = timeline.steps.iter().any(|s| s.outcome == "failed");
    let blocked = blocked_drains(&real_plan, &audits);
    let capacity = capacity(&real_plan, &audits, &before);
    notes.extend(audit_problems(&audits));

    if let Some(path) = &args.graph {
        write_graph(path, &timeline, rehearsed.len())?;
    }
    if json {
        for s in &timeline.steps {
            emit(Event::RehearsalStep {
                step: s.id.clone(),
                cluster: s.cluster.clone(),
                description: s.description.clone(),
                kind: s.kind.to_string(),
                start_secs: s.start_secs,
                duration_secs: s.duration_secs,
                estimated_secs: s.estimated_secs,
                outcome: s.outcome.to_string(),
                error: s.error.clone(),
            });
        }
        emit(Event::RehearsalFinished {
            outcome: if failed { "failed" } else { "completed" }.into(),
            total_secs: timeline.total_secs,
            clusters: rehearsed.len(),
            steps: timeline.steps.len(),
            speed: args.speed,
            rehearsal_secs,
            blocked_drains: blocked,
            capacity,
            notes,
        });
    } else {
        print!(
            "{}",
            render(
                &timeline,
                &blocked,
                &capacity,
                &notes,
                rehearsal_secs,
                args.graph.as_deref(),
                observed.desired.clusters.len() - rehearsed.len(),
            )
        );
    }
    Ok(if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// The configuration pointed at the simulated copy: every rehearsable provider block
/// simulated from its own world file under `root`, clusters reached through the
/// simulator's kubeconfigs, and the pre-flight checks off (they ran against the real
/// clusters already; the copy holds no manifests, Helm releases or insights to check).
fn rehearsal_config(
    desired: &Desired,
    actual: &BTreeMap<String, ActualCluster>,
    root: &Path,
    speed: f64,
) -> Result<(Desired, Vec<String>)> {
    let mut notes = Vec::new();
    let mut out = desired.clone();
    out.clusters.clear();
    out.providers.clear();
    let worlds = root.join("worlds");
    std::fs::create_dir_all(&worlds)
        .map_err(|e| Failure::Message(format!("cannot create {}: {e}", worlds.display())))?;
    for spec in &desired.providers {
        let clusters: Vec<(&ClusterSpec, &ActualCluster)> = desired
            .clusters
            .iter()
            .filter(|c| c.provider == spec.key())
            .filter_map(|c| actual.get(&c.label).map(|a| (c, a)))
            .collect();
        if clusters.is_empty() {
            continue;
        }
        if !REHEARSABLE.contains(&spec.kind.as_str()) {
            for (c, _) in &clusters {
                notes.push(format!(
                    "{}: not rehearsed: {} clusters are upgraded over SSH on your own hosts, which a simulated copy cannot reproduce; the total leaves it out",
                    c.address(),
                    spec.kind
                ));
            }
            continue;
        }
        let w = world::world(&spec.kind, spec, &clusters);
        notes.extend(w.notes);
        let copied = w.copied;
        let path = worlds.join(format!("{}.json", spec.key()));
        let text = serde_json::to_string_pretty(&w.json).expect("a world serializes");
        std::fs::write(&path, text)
            .map_err(|e| Failure::Message(format!("cannot write {}: {e}", path.display())))?;
        let mut p = spec.clone();
        p.simulate = true;
        p.endpoint = None;
        p.world = Some(path.display().to_string());
        p.speed = Some(speed);
        p.poll_interval = None;
        // The simulator counts time in its own seconds; a real-time rate limit would
        // slow the rehearsal without telling anything about the real apply.
        p.requests_per_second = None;
        p.channel_server = None;
        out.providers.push(p);
        for (c, _) in clusters {
            if !copied.contains(&c.label) {
                continue;
            }
            let mut c = c.clone();
            c.kubeconfig = None;
            c.context = None;
            // Hooks are the team's own commands, which reach the real clusters: never in a
            // rehearsal.
            if !c.hooks.is_empty() {
                notes.push(format!(
                    "{}: its {} hook(s) are not run in the rehearsal (they would reach the real cluster); their time is not in the total",
                    c.address(),
                    c.hooks.len()
                ));
                c.hooks.clear();
            }
            c.preflight.manifests.clear();
            c.preflight.removed_apis = CheckMode::Off;
            c.preflight.health = CheckMode::Off;
            c.preflight.addons = CheckMode::Off;
            c.preflight.insights = CheckMode::Off;
            out.clusters.push(c);
        }
    }
    // Waves keep only the clusters the copy has.
    let kept: Vec<String> = out.clusters.iter().map(|c| c.label.clone()).collect();
    for r in &mut out.rollouts {
        for w in &mut r.waves {
            w.clusters.retain(|label| kept.contains(label));
        }
    }
    Ok((out, notes))
}

/// The copy's plan, each step's measurement, and the audits before the apply.
type Rehearsed = (
    Plan,
    BTreeMap<String, Measured>,
    BTreeMap<String, serde_json::Value>,
);

/// Per step: when it started, and when and how it ended (real time).
type StepTimes = BTreeMap<String, (Instant, Option<(Instant, Outcome)>)>;

/// Refresh the copy, plan there, and apply with wave gates open, timing every step.
async fn rehearse(
    args: &RehearseArgs,
    root: &Path,
    desired: &Desired,
    connected: &Connected,
    options: &PlanOptions,
    real_plan: &Plan,
    notes: &mut Vec<String>,
) -> Result<Rehearsed> {
    let quiet: EventSink = Arc::new(|_| {});
    let specs: Vec<&ClusterSpec> = desired.clusters.iter().collect();
    let actual = connected
        .refresh(desired, &specs, args.parallelism, &quiet)
        .await
        .map_err(|e| match e {
            Failure::Message(m) => Failure::Message(format!("the simulated copy: {m}")),
            other => other,
        })?;
    let mut desired = desired.clone();
    crate::workspace::resolve_aliases(&mut desired, &actual)?;
    let plan = planner::plan(&PlanInput {
        desired: &desired,
        actual: &actual,
        policies: &connected.policies(),
        options,
    })
    .map_err(|errors| {
        Failure::Message(format!(
            "the simulated copy cannot be planned, so it is not a faithful copy:\n{}",
            render_plan_errors(&errors)
        ))
    })?;
    notes.extend(plan_differences(real_plan, &plan, &desired));

    let mut clusters = BTreeMap::new();
    for c in &desired.clusters {
        if let Some(h) = connected.handle(c, &desired).await {
            clusters.insert(c.address(), h);
        }
    }
    let times: Arc<Mutex<StepTimes>> = Default::default();
    let events: EventSink = {
        let times = times.clone();
        let json = args.output.json;
        Arc::new(move |e: Event| {
            let mut t = times.lock().unwrap();
            match e {
                Event::StepStarted { step, .. } => {
                    t.entry(step).or_insert((Instant::now(), None));
                }
                Event::StepFinished { step, outcome, .. } => {
                    if let Some(entry) = t.get_mut(&step) {
                        let o = if outcome == "already_done" {
                            Outcome::AlreadyDone
                        } else {
                            Outcome::Done
                        };
                        entry.1 = Some((Instant::now(), o));
                    }
                }
                Event::StepFailed { step, error } => {
                    let entry = t.entry(step).or_insert((Instant::now(), None));
                    entry.1 = Some((Instant::now(), Outcome::Failed(error)));
                }
                Event::Message {
                    level: Level::Warning | Level::Error,
                    text,
                } if !json => eprintln!("rehearsal: {text}"),
                _ => {}
            }
        })
    };
    let saved = SavedPlan {
        kup_version: env!("CARGO_PKG_VERSION").to_string(),
        format_version: PLAN_FORMAT_VERSION,
        created_at: now_rfc3339(),
        config_dir: String::new(),
        config_hash: String::new(),
        state_fingerprints: Default::default(),
        desired: desired.clone(),
        plan: plan.clone(),
        integrity: String::new(),
    }
    .seal();
    let executor = Executor {
        clusters,
        parallelism: args.parallelism,
        retry: RetryPolicy::default(),
        events,
        cancel: crate::interrupt::cancelled(),
        wave_gates: WaveGates::Open,
    };
    let journal = Journal::open(&root.join("journal.jsonl"))
        .map_err(|e| Failure::Message(format!("cannot open the rehearsal's journal: {e}")))?;
    // What the copy looked like before anything moved: pods that never fitted it are
    // not the upgrade's doing.
    let before = audits(connected, &desired).await;
    // The outcome is in the step times: a failed step is measured to its failure.
    executor
        .run(&saved, journal, None)
        .await
        .map_err(|e| Failure::Message(format!("the rehearsal stopped: {e}")))?;
    if *crate::interrupt::cancelled().borrow() {
        return Err(Failure::Message("the rehearsal was interrupted".into()));
    }
    let t = times.lock().unwrap();
    let measured = t
        .iter()
        .filter_map(|(id, (start, end))| {
            let (end, outcome) = end.as_ref()?;
            Some((
                id.clone(),
                Measured {
                    secs: end.duration_since(*start).as_secs_f64() * args.speed,
                    outcome: outcome.clone(),
                },
            ))
        })
        .collect();
    Ok((plan, measured, before))
}

/// Steps the real plan has and the copy's does not, or the other way round: the copy
/// is only as good as these are few.
fn plan_differences(real: &Plan, copy: &Plan, desired: &Desired) -> Vec<String> {
    let rehearsed: Vec<String> = desired.clusters.iter().map(|c| c.address()).collect();
    // Wave gates follow the clusters; only the clusters' own steps tell.
    let ids = |p: &'_ Plan| -> Vec<String> {
        p.steps
            .iter()
            .filter(|s| !matches!(s.action, kup_engine::plan::Action::WaveGate { .. }))
            .filter(|s| rehearsed.contains(&s.cluster))
            .map(|s| s.id.clone())
            .collect()
    };
    let (real_ids, copy_ids) = (ids(real), ids(copy));
    let mut out = Vec::new();
    let missing: Vec<&str> = real_ids
        .iter()
        .filter(|id| !copy_ids.contains(id))
        .map(String::as_str)
        .collect();
    let extra: Vec<&str> = copy_ids
        .iter()
        .filter(|id| !real_ids.contains(id))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        out.push(format!(
            "the real plan has steps the simulated copy's plan does not: {}",
            missing.join(", ")
        ));
    }
    if !extra.is_empty() {
        out.push(format!(
            "the simulated copy's plan has steps the real plan does not: {}",
            extra.join(", ")
        ));
    }
    out
}

/// The Kubernetes-side audit of every simulated cluster (PDB refusals, pods that waited
/// for room), read through the simulator's admin API.
async fn audits(connected: &Connected, desired: &Desired) -> BTreeMap<String, serde_json::Value> {
    let client = reqwest::Client::new();
    let mut out = BTreeMap::new();
    for sim in &connected.sims {
        let ep = sim.endpoints();
        for c in &desired.clusters {
            // Each provider block has its own simulator (names may repeat across them):
            // its kubeconfigs are in `<provider key>.kube/` next to its world.
            let own = ep.kubeconfigs.get(&c.name).is_some_and(|p| {
                p.parent()
                    .and_then(|d| d.file_name())
                    .and_then(|n| n.to_str())
                    == Some(&format!("{}.kube", c.provider))
            });
            if !own {
                continue;
            }
            let url = format!("{}/kube/{}/audit", ep.admin, c.name);
            let body = async {
                client
                    .get(&url)
                    .send()
                    .await?
                    .error_for_status()?
                    .json::<serde_json::Value>()
                    .await
            };
            match body.await {
                Ok(v) => {
                    out.insert(c.address(), v);
                }
                Err(e) => tracing::warn!("cannot read the simulator's audit of {}: {e}", c.name),
            }
        }
    }
    out
}

/// Drains budgets will hold up: the planner's prediction from the real clusters, and
/// the evictions budgets refused in the rehearsal.
fn blocked_drains(real: &Plan, audits: &BTreeMap<String, serde_json::Value>) -> Vec<String> {
    let mut out = Vec::new();
    for c in &real.clusters {
        for b in &c.blocked_drains {
            out.push(format!(
                "{} node group {}: PodDisruptionBudget {} {} ({}){}",
                c.address,
                b.node_group,
                b.pdb,
                b.reason,
                b.pods.join(", "),
                if b.blocking {
                    "; kup apply refuses this plan unless -allow-blocked-drain"
                } else {
                    ""
                }
            ));
        }
    }
    for (cluster, a) in audits {
        if let Some(m) = a["evictions_refused_by_pdb"].as_object() {
            for (pdb, n) in m {
                out.push(format!(
                    "{cluster}: PodDisruptionBudget {pdb} refused {} eviction(s) in the rehearsal; its drains waited for replacement pods",
                    n.as_u64().unwrap_or(0)
                ));
            }
        }
    }
    out
}

/// Room for the pods: batches the planner predicts will not fit, and pods that waited
/// for a node (or never got one) in the rehearsal.
fn capacity(
    real: &Plan,
    audits: &BTreeMap<String, serde_json::Value>,
    before: &BTreeMap<String, serde_json::Value>,
) -> Vec<String> {
    let mut out = Vec::new();
    for c in &real.clusters {
        for s in &c.capacity {
            out.push(format!(
                "{} node group {}: draining {} needs {}m CPU / {} MiB more than the other nodes have free",
                c.address,
                s.node_group,
                s.nodes.join(", "),
                s.short.cpu_millis,
                s.short.memory_bytes >> 20
            ));
        }
    }
    for (cluster, a) in audits {
        let Some(all) = a["unschedulable"].as_object() else {
            continue;
        };
        let already = before
            .get(cluster)
            .and_then(|b| b["unschedulable"].as_object());
        let m: serde_json::Map<String, serde_json::Value> = all
            .iter()
            .filter(|(pod, _)| already.is_none_or(|b| !b.contains_key(*pod)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(n) = already.map(|b| b.len()).filter(|n| *n > 0) {
            out.push(format!(
                "{cluster}: {n} pod(s) did not fit the simulated copy before anything moved (its nodes may be smaller than the real ones); left out of the above"
            ));
        }
        let never: Vec<(&String, &str)> = m
            .iter()
            .filter(|(_, v)| v["waited_secs"].is_null())
            .map(|(p, v)| (p, v["message"].as_str().unwrap_or("")))
            .collect();
        let waited: Vec<f64> = m
            .values()
            .filter_map(|v| v["waited_secs"].as_f64())
            .collect();
        if !waited.is_empty() {
            let longest = waited.iter().copied().fold(0.0, f64::max);
            out.push(format!(
                "{cluster}: {} pod(s) waited for a node with room in the rehearsal (longest {})",
                waited.len(),
                clock(longest)
            ));
        }
        if let Some((pod, msg)) = never.first() {
            out.push(format!(
                "{cluster}: {} pod(s) never found a node in the rehearsal, e.g. {pod}: {msg}",
                never.len()
            ));
        }
    }
    out
}

/// What must never happen, if the simulator saw it: a budget broken, a pod lost.
fn audit_problems(audits: &BTreeMap<String, serde_json::Value>) -> Vec<String> {
    let mut out = Vec::new();
    for (cluster, a) in audits {
        if let Some(pdbs) = a["pdbs"].as_object() {
            for (name, p) in pdbs {
                if p["violated"].as_bool() == Some(true) {
                    out.push(format!(
                        "{cluster}: PodDisruptionBudget {name} was violated in the rehearsal (healthy pods fell to {})",
                        p["min_healthy_observed"]
                    ));
                }
            }
        }
        if let Some(lost) = a["lost_pods"].as_array().filter(|l| !l.is_empty()) {
            let names: Vec<&str> = lost.iter().filter_map(|p| p.as_str()).collect();
            out.push(format!(
                "{cluster}: pods were lost without an eviction in the rehearsal: {}",
                names.join(", ")
            ));
        }
    }
    out
}

fn write_graph(path: &Path, t: &Timeline, clusters: usize) -> Result<()> {
    let title = format!(
        "kup rehearse: {} cluster(s), {} steps, {} in all",
        clusters,
        t.steps.len(),
        clock(t.total_secs)
    );
    let text = match path.extension().and_then(|e| e.to_str()) {
        Some("svg") => gantt::svg(t, &title),
        Some("html") | Some("htm") => gantt::html(t, &title),
        _ => {
            return Err(Failure::Message(format!(
            "-graph {}: name an .svg file (the chart) or an .html file (the chart and the table)",
            path.display()
        )))
        }
    };
    kup_engine::fsutil::write_atomic(path, text.as_bytes())
        .map_err(|e| Failure::Message(format!("cannot write {}: {e}", path.display())))
}

fn render(
    t: &Timeline,
    blocked: &[String],
    capacity: &[String],
    notes: &[String],
    rehearsal_secs: f64,
    graph: Option<&Path>,
    not_rehearsed: usize,
) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s);
    let _ = writeln!(s, "  {:<9} {:<9} {:<9} STEP", "START", "TAKES", "ESTIMATE");
    for step in &t.steps {
        let mark = match step.outcome {
            "failed" => "✗",
            "not_run" => "-",
            _ => " ",
        };
        let _ = writeln!(
            s,
            "{mark} {:<9} {:<9} {:<9} {}: {}",
            if step.outcome == "not_run" {
                "".into()
            } else {
                clock(step.start_secs)
            },
            if step.outcome == "not_run" {
                "not run".into()
            } else {
                clock(step.duration_secs)
            },
            clock(step.estimated_secs as f64),
            step.id,
            step.description
        );
        if let Some(e) = &step.error {
            let _ = writeln!(s, "    failed: {e}");
        }
    }
    for (title, items) in [
        ("Blocked drains", blocked),
        ("Capacity", capacity),
        ("Notes", notes),
    ] {
        if items.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n{title}:");
        for i in items {
            let _ = writeln!(s, "  - {i}");
        }
    }
    let failed = t.steps.iter().any(|s| s.outcome == "failed");
    let _ = writeln!(s);
    let partial = if not_rehearsed > 0 {
        format!(
            " Partial: {} not rehearsed, so not in the total (see the notes).",
            if not_rehearsed == 1 {
                "1 cluster".to_string()
            } else {
                format!("{not_rehearsed} clusters")
            }
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        s,
        "{} Predicted apply time: {} (rehearsed in {} of real time).{partial}",
        if failed {
            "Rehearsal failed: the apply stops at the step marked ✗."
        } else {
            "Rehearsal complete."
        },
        clock(t.total_secs),
        clock(rehearsal_secs)
    );
    if let Some(g) = graph {
        let _ = writeln!(s, "Timeline written to {}.", g.display());
    }
    s
}

fn say(json: bool, text: &str) {
    if json {
        emit(Event::Message {
            level: Level::Info,
            text: text.to_string(),
        });
    } else {
        println!("{text}");
    }
}

fn emit(event: Event) {
    let rec = EventRecord {
        at: now_rfc3339(),
        event,
    };
    println!("{}", serde_json::to_string(&rec).expect("event serializes"));
}
