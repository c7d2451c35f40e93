//! `kup apply`: from a directory (plan, confirm, execute) or from a saved plan file
//! (check it is neither tampered with nor stale, then execute exactly it). An apply that
//! was interrupted is resumed from the journal first.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use console::Style;
use kup_engine::executor::{ApplyReport, Executor, RetryPolicy};
use kup_engine::journal::{self, RunOutcome, UnfinishedRun};
use kup_engine::model::{ActualCluster, Desired};
use kup_engine::plan::{fingerprint, SavedPlan};
use kup_engine::state::{now_rfc3339, ClusterState, StateStore};

use crate::cli::ApplyArgs;
use crate::commands::drift;
use crate::commands::plan::{make_plan, read_plan_file, PlanRequest};
use crate::failure::{Failure, Result};
use crate::render::plan::render_plan;
use crate::render::progress::{quiet_sink, sink, Mode};
use crate::workspace::{config_files_hash, lock_state, store_for_dir, Connected};

pub async fn run(args: ApplyArgs) -> Result<ExitCode> {
    let mode = Mode::detect(args.output.json);
    if args.target.is_file() {
        return apply_plan_file(&args, mode).await;
    }
    let dir = args.target.clone();
    let store = store_for_dir(&dir, args.state.state.as_deref())?;
    let lock = lock_state(&store, "apply", args.state.lock_timeout)?;

    if args.rollback {
        let code = rollback(&dir, &args, &store, mode, None).await;
        drop(lock);
        return code;
    }

    if args.refresh_only {
        let code =
            drift::apply_refresh_only(&dir, &args.vars, &store, args.parallelism, args.output.json)
                .await;
        drop(lock);
        return code;
    }

    // An apply that was killed or interrupted comes first: finish what it started.
    if let Some(run) = unfinished(&store)? {
        say(mode, &format!(
            "Resuming the apply that did not finish (run {}, plan {}): {} of {} steps were finished.",
            run.run_id,
            run.saved_plan.plan.id,
            run.finished.len(),
            run.saved_plan.plan.steps.len()
        ));
        let mut saved = run.saved_plan.clone();
        fill_sensitive(&mut saved, &args.vars)?;
        if mode != Mode::Json {
            println!("Steps left from that run:");
            for s in saved
                .plan
                .steps
                .iter()
                .filter(|s| !run.finished.contains(&s.id))
            {
                println!("  - {}: {}", s.id, s.action.describe());
            }
        }
        if !args.auto_approve && !approve()? {
            drop(lock);
            say(
                mode,
                "Resume cancelled; the journal still records the unfinished run.",
            );
            return Ok(ExitCode::from(1));
        }
        let dir_of_plan = PathBuf::from(&saved.config_dir);
        let connected = Connected::start(&saved.desired, &dir_of_plan).await?;
        let report = execute(&saved, Some(&run), &connected, &store, &args, mode).await;
        connected.shutdown().await;
        let report = report?;
        if report.outcome == Some(RunOutcome::Waiting) {
            // Still soaking: the run stays unfinished for the next apply.
            drop(lock);
            return Ok(ExitCode::SUCCESS);
        }
        if !report.succeeded() {
            drop(lock);
            return Ok(ExitCode::from(1));
        }
        say(
            mode,
            "The interrupted apply is complete; planning again from the configuration.",
        );
    }

    let req = PlanRequest {
        dir: &dir,
        vars: &args.vars,
        targets: &args.targets,
        strict_skew: args.strict_skew,
        parallelism: args.parallelism,
    };
    let planned = make_plan(&req, &quiet_sink(mode)).await?;
    let saved = planned.saved.clone();
    if mode == Mode::Json {
        println!(
            "{}",
            serde_json::to_string(&saved).expect("plan serializes")
        );
    } else {
        print!("{}", render_plan(&saved.plan));
    }
    if saved.plan.is_empty() {
        record_state(&store, &saved.desired, &planned.actual, None)?;
        planned.connected.shutdown().await;
        drop(lock);
        return Ok(ExitCode::SUCCESS);
    }
    refuse_blocked_drains(&saved, &args)?;
    if args.respect_maintenance_window {
        let problems = crate::commands::plan::maintenance_problems(&saved, &planned.actual);
        if !problems.is_empty() {
            planned.connected.shutdown().await;
            drop(lock);
            return Err(Failure::Message(format!(
                "not applying (-respect-maintenance-window):\n  {}\nRun again once the window opens, or without -respect-maintenance-window to go ahead now",
                problems.join("\n  ")
            )));
        }
    }
    if !args.auto_approve && !approve()? {
        planned.connected.shutdown().await;
        drop(lock);
        say(mode, "Apply cancelled.");
        return Ok(ExitCode::from(1));
    }
    let report = execute(&saved, None, &planned.connected, &store, &args, mode).await;
    planned.connected.shutdown().await;
    let report = report?;
    // A blue/green replacement that failed before its blue group was deleted is undone
    // at once, so the cluster is never left half-switched.
    let failed_bg: Vec<String> = report
        .failed
        .iter()
        .filter(|(id, _)| {
            ["/create", "/ready", "/cordon", "/drain", "/soak"]
                .iter()
                .any(|p| id.ends_with(p))
        })
        .filter_map(|(id, _)| saved.plan.step(id).map(|s| s.cluster.clone()))
        .collect();
    if !failed_bg.is_empty() && !*crate::interrupt::cancelled().borrow() {
        say(
            mode,
            &format!(
                "A blue/green replacement failed; rolling back {}.",
                failed_bg.join(", ")
            ),
        );
        let _ = rollback(&dir, &args, &store, mode, Some(&failed_bg)).await?;
    }
    drop(lock);
    Ok(exit_code(&report))
}

/// `kup apply -rollback`: uncordon blue, drain and delete green for every blue/green
/// group caught half-way (only `clusters`, when given). An unfinished run of the
/// replacement is closed first, so a later apply does not resume it.
async fn rollback(
    dir: &Path,
    args: &ApplyArgs,
    store: &StateStore,
    mode: Mode,
    clusters: Option<&[String]>,
) -> Result<ExitCode> {
    if let Some(run) = unfinished(store)? {
        let mut j = store
            .open_journal()
            .map_err(|e| Failure::Message(format!("cannot open the journal: {e}")))?;
        j.append(&journal::Record::RunFinished {
            run_id: run.run_id,
            outcome: RunOutcome::Failed,
            at: now_rfc3339(),
        })
        .map_err(|e| Failure::Message(format!("cannot write the journal: {e}")))?;
    }
    let loaded = crate::workspace::load_config(dir, &args.vars)?;
    let mut desired = loaded.desired.clone();
    if let Some(only) = clusters {
        desired.clusters.retain(|c| only.contains(&c.address()));
    }
    let connected = Connected::start(&desired, &loaded.dir).await?;
    let specs: Vec<_> = desired.clusters.iter().collect();
    let actual = match connected
        .refresh(&desired, &specs, args.parallelism, &quiet_sink(mode))
        .await
    {
        Ok(a) => a,
        Err(e) => {
            connected.shutdown().await;
            return Err(e);
        }
    };
    let state = store.load().map_err(|e| Failure::Message(e.to_string()))?;
    let colours = |cluster: &str, base: &str| {
        state
            .as_ref()
            .and_then(|s| s.clusters.get(cluster))
            .and_then(|c| c.live_colours.get(base).cloned())
    };
    let plan = match kup_engine::planner::rollback::rollback(&desired, &actual, &colours) {
        Ok(p) => p,
        Err(errors) => {
            connected.shutdown().await;
            return Err(Failure::Diagnostics {
                rendered: crate::render::plan::render_plan_errors(&errors),
                json: serde_json::to_value(&errors).unwrap_or_default(),
            });
        }
    };
    if plan.is_empty() {
        connected.shutdown().await;
        say(
            mode,
            "Nothing to roll back: no blue/green replacement is half done.",
        );
        return Ok(ExitCode::SUCCESS);
    }
    let saved = SavedPlan {
        kup_version: env!("CARGO_PKG_VERSION").to_string(),
        format_version: kup_engine::plan::PLAN_FORMAT_VERSION,
        created_at: now_rfc3339(),
        config_dir: loaded.dir.display().to_string(),
        config_hash: String::new(),
        state_fingerprints: Default::default(),
        desired,
        plan,
        integrity: String::new(),
    }
    .seal();
    if mode != Mode::Json {
        print!("{}", render_plan(&saved.plan));
    }
    let report = execute(&saved, None, &connected, store, args, mode).await;
    connected.shutdown().await;
    Ok(exit_code(&report?))
}

async fn apply_plan_file(args: &ApplyArgs, mode: Mode) -> Result<ExitCode> {
    let mut saved = read_plan_file(&args.target)?;
    // -var and -var-file may only give back the sensitive values a plan file never holds.
    let gives_vars = !args.vars.vars.is_empty() || !args.vars.var_files.is_empty();
    if (gives_vars && !saved.needs_sensitive_values())
        || !args.targets.is_empty()
        || args.refresh_only
    {
        return Err(Failure::Message(
            "a saved plan already fixes variables and targets; -var, -var-file, -target and -refresh-only go to `kup plan`".into(),
        ));
    }
    if saved.kup_version != env!("CARGO_PKG_VERSION") {
        return Err(Failure::Message(format!(
            "plan file {} was made by kup {}, and this is kup {}: a plan is applied by the kup that made it (steps and their checks change between versions). Make the plan again with this kup: `kup plan -out {}`",
            args.target.display(),
            saved.kup_version,
            env!("CARGO_PKG_VERSION"),
            args.target.display()
        )));
    }
    let dir = PathBuf::from(&saved.config_dir);
    if !dir.is_dir() {
        return Err(Failure::Message(format!(
            "the plan was made from {}, which does not exist here, so kup cannot check that the configuration is unchanged nor find its state. Apply it where it was planned (same checkout path), or plan again here",
            dir.display()
        )));
    }
    let store = store_for_dir(&dir, args.state.state.as_deref())?;
    let lock = lock_state(&store, "apply", args.state.lock_timeout)?;
    let resume = match unfinished(&store)? {
        Some(run) if run.saved_plan.plan.id == saved.plan.id => Some(run),
        Some(run) => {
            return Err(Failure::Message(format!(
                "an earlier apply of another plan ({}) did not finish; run `kup apply {}` to resume it first, then make a new plan",
                run.saved_plan.plan.id,
                dir.display()
            )))
        }
        None => None,
    };
    if resume.is_none() {
        let now = config_files_hash(&dir)?;
        if now != saved.config_hash {
            return Err(Failure::Message(format!(
                "the saved plan is stale: the configuration in {} changed after the plan was made. Run `kup plan -out {}` again",
                dir.display(),
                args.target.display()
            )));
        }
    }
    fill_sensitive(&mut saved, &args.vars)?;
    let connected = Connected::start(&saved.desired, &dir).await?;
    if resume.is_none() {
        let clusters: Vec<_> = saved
            .desired
            .clusters
            .iter()
            .filter(|c| saved.state_fingerprints.contains_key(&c.address()))
            .collect();
        let actual = connected
            .refresh(
                &saved.desired,
                &clusters,
                args.parallelism,
                &quiet_sink(mode),
            )
            .await;
        let actual = match actual {
            Ok(a) => a,
            Err(e) => {
                connected.shutdown().await;
                return Err(e);
            }
        };
        let changed: Vec<String> = actual
            .iter()
            .filter(|(label, a)| {
                saved.state_fingerprints.get(&format!("cluster.{label}")) != Some(&fingerprint(a))
            })
            .map(|(label, _)| format!("cluster.{label}"))
            .collect();
        if !changed.is_empty() {
            connected.shutdown().await;
            return Err(Failure::Message(format!(
                "the saved plan is stale: {} changed since the plan was made (versions, node groups, add-ons or operations in progress differ). Run `kup plan -out {}` again",
                changed.join(", "),
                args.target.display()
            )));
        }
        // Windows are about when the plan runs, not when it was made: checked now.
        let problems = crate::commands::plan::maintenance_problems(&saved, &actual);
        if args.respect_maintenance_window && !problems.is_empty() {
            connected.shutdown().await;
            return Err(Failure::Message(format!(
                "not applying (-respect-maintenance-window):\n  {}\nRun again once the window opens, or without -respect-maintenance-window to go ahead now",
                problems.join("\n  ")
            )));
        }
    } else {
        say(mode, "Resuming this plan's apply from the journal.");
    }
    if mode != Mode::Json {
        print!("{}", render_plan(&saved.plan));
    }
    if resume.is_none() {
        if let Err(e) = refuse_blocked_drains(&saved, args) {
            connected.shutdown().await;
            return Err(e);
        }
    }
    let report = execute(&saved, resume.as_ref(), &connected, &store, args, mode).await;
    connected.shutdown().await;
    drop(lock);
    Ok(exit_code(&report?))
}

/// A plan read from a file or the journal holds no sensitive value (kup never writes one):
/// its hooks' sensitive arguments come from the configuration and variables again.
fn fill_sensitive(saved: &mut SavedPlan, vars: &crate::VarArgs) -> Result<()> {
    if !saved.needs_sensitive_values() {
        return Ok(());
    }
    const WHY: &str = "The plan's hooks have sensitive arguments, which kup never writes into plan files or the journal; it reads them from the configuration again";
    let dir = PathBuf::from(&saved.config_dir);
    let loaded = match crate::workspace::load_config(&dir, vars) {
        Ok(l) => l,
        Err(Failure::Diagnostics { rendered, json }) => {
            let why = format!("{WHY}, and it does not load: give the sensitive variables again (KUP_VAR_<name>, a kupvars file, or -var)");
            let mut all = vec![serde_json::json!({ "severity": "error", "summary": why })];
            all.extend(json.as_array().cloned().unwrap_or_default());
            return Err(Failure::Diagnostics {
                rendered: format!("Error: {why}.\n\n{rendered}"),
                json: serde_json::Value::Array(all),
            });
        }
        Err(e) => return Err(e),
    };
    saved
        .fill_sensitive(&loaded.desired)
        .map_err(|e| Failure::Message(format!("{WHY}: {e}")))
}

/// A drain the plan predicts a PodDisruptionBudget will block fails after its timeout and
/// leaves nodes cordoned; refuse up front unless the user accepts that.
fn refuse_blocked_drains(saved: &SavedPlan, args: &ApplyArgs) -> Result<()> {
    if args.allow_blocked_drain {
        return Ok(());
    }
    let blocked: Vec<String> = saved
        .plan
        .clusters
        .iter()
        .flat_map(|c| {
            c.blocked_drains
                .iter()
                .filter(|b| b.blocking)
                .map(move |b| {
                    format!(
                        "  {} node group {}: PodDisruptionBudget {} {} ({})",
                        c.address,
                        b.node_group,
                        b.pdb,
                        b.reason,
                        b.pods.join(", ")
                    )
                })
                .chain(c.pinned_pods.iter().map(move |p| {
                    format!(
                        "  {} node group {}: pods select it by name (nodeSelector {}) and cannot move to {} ({})",
                        c.address,
                        p.node_group,
                        p.selector,
                        p.new_group,
                        p.pods.join(", ")
                    )
                }))
        })
        .collect();
    if blocked.is_empty() {
        return Ok(());
    }
    Err(Failure::Message(format!(
        "the plan drains nodes whose pods will not leave:\n{}\nRelax those budgets (or select pinned pods by a label the new group keeps), or accept that the drain waits: `drain {{ on_blocked = \"wait\" }}` on the node group (budgets only), or `kup apply -allow-blocked-drain`",
        blocked.join("\n")
    )))
}

fn unfinished(store: &StateStore) -> Result<Option<UnfinishedRun>> {
    let records =
        journal::read(&store.journal_path()).map_err(|e| Failure::Message(e.to_string()))?;
    Ok(journal::unfinished_run(&records))
}

async fn execute(
    saved: &SavedPlan,
    resume: Option<&UnfinishedRun>,
    connected: &Connected,
    store: &StateStore,
    args: &ApplyArgs,
    mode: Mode,
) -> Result<ApplyReport> {
    let mut clusters = BTreeMap::new();
    for c in &saved.desired.clusters {
        if let Some(h) = connected.handle(c, &saved.desired).await {
            clusters.insert(c.address(), h);
        }
    }
    let shown = sink(mode, Some(&saved.plan));
    // The post-flight results also go in the summary at the end.
    let postflight: Arc<Mutex<Vec<PostFlightResult>>> = Default::default();
    let events: kup_engine::executor::EventSink = {
        let postflight = postflight.clone();
        Arc::new(move |e: kup_engine::events::Event| {
            if let kup_engine::events::Event::PostFlight {
                cluster,
                passed,
                checks,
                ..
            } = &e
            {
                postflight
                    .lock()
                    .unwrap()
                    .push((cluster.clone(), *passed, checks.clone()));
            }
            shown(e)
        })
    };
    let executor = Executor {
        clusters,
        parallelism: args.parallelism,
        retry: RetryPolicy::default(),
        events: events.clone(),
        cancel: crate::interrupt::cancelled(),
        wave_gates: if args.wait {
            kup_engine::executor::WaveGates::Wait
        } else {
            kup_engine::executor::WaveGates::Stop
        },
    };
    let journal = store
        .open_journal()
        .map_err(|e| Failure::Message(format!("cannot open the journal: {e}")))?;
    let report = executor
        .run(saved, journal, resume)
        .await
        .map_err(|e| Failure::Message(format!("apply stopped: {e}")))?;

    // Record what is running now, whatever the outcome.
    let touched: Vec<_> = saved
        .desired
        .clusters
        .iter()
        .filter(|c| saved.plan.steps.iter().any(|s| s.cluster == c.address()))
        .collect();
    match connected
        .refresh(
            &saved.desired,
            &touched,
            args.parallelism,
            &quiet_sink(mode),
        )
        .await
    {
        Ok(actual) => record_state(store, &saved.desired, &actual, Some(&saved.plan.id))?,
        Err(e) => {
            eprintln!("warning: could not refresh after apply, so the state was not updated: {e:?}")
        }
    }
    record_waiting(store, &report.waiting)?;
    if mode != Mode::Json {
        print_summary(&report, store);
        for (cluster, passed, checks) in postflight.lock().unwrap().iter() {
            println!(
                "  {} {cluster} post-flight: {}",
                if *passed { "✓" } else { "✗" },
                checks.join("; ")
            );
        }
    }
    Ok(report)
}

/// Which waves wait for their soak or window, and until when, for `kup state` and the
/// next scheduled apply to read (replacing what the last apply recorded).
fn record_waiting(store: &StateStore, waiting: &[kup_engine::executor::WaitingWave]) -> Result<()> {
    let mut state = store
        .load()
        .map_err(|e| Failure::Message(e.to_string()))?
        .unwrap_or_default();
    if state.waiting.is_empty() && waiting.is_empty() {
        return Ok(());
    }
    state.waiting = waiting.to_vec();
    store
        .save(&mut state)
        .map_err(|e| Failure::Message(format!("cannot write the state: {e}")))
}

/// Store the applied configuration and what the provider reports now.
pub fn record_state(
    store: &StateStore,
    desired: &Desired,
    actual: &BTreeMap<String, ActualCluster>,
    plan_id: Option<&str>,
) -> Result<()> {
    let mut state = store
        .load()
        .map_err(|e| Failure::Message(e.to_string()))?
        .unwrap_or_default();
    for (label, observed) in actual {
        let Some(spec) = desired.cluster(label) else {
            continue;
        };
        let address = spec.address();
        let mut live_colours = state
            .clusters
            .get(&address)
            .map(|c| c.live_colours.clone())
            .unwrap_or_default();
        // Which colour of each blue/green group serves now, so the next upgrade knows
        // which group is blue.
        for ng in &spec.node_groups {
            if let Ok(Some(live)) = kup_engine::planner::live_group(ng, observed) {
                if matches!(ng.strategy, kup_engine::model::Strategy::BlueGreen { .. }) {
                    live_colours.insert(ng.name.clone(), live.name.clone());
                }
            }
        }
        state.clusters.insert(
            address,
            ClusterState {
                desired: spec.clone(),
                observed: observed.clone(),
                applied_at: now_rfc3339(),
                plan_id: plan_id.map(str::to_string),
                live_colours,
            },
        );
    }
    store
        .save(&mut state)
        .map_err(|e| Failure::Message(e.to_string()))
}

/// A cluster's post-flight check as the summary shows it: (cluster, passed, checks).
type PostFlightResult = (String, bool, Vec<String>);

fn print_summary(r: &ApplyReport, store: &StateStore) {
    let green = Style::new().green().bold();
    let red = Style::new().red().bold();
    let yellow = Style::new().yellow().bold();
    println!();
    match r.outcome {
        Some(RunOutcome::Completed) => println!(
            "{} {} steps done, {} already done, in {}.",
            green.apply_to("Apply complete!"),
            r.done.len(),
            r.already_done.len(),
            crate::render::short_duration(r.elapsed)
        ),
        Some(RunOutcome::Failed) => {
            println!(
                "{} {} steps done, {} failed, {} not run.",
                red.apply_to("Apply failed."),
                r.done.len(),
                r.failed.len(),
                r.not_run.len()
            );
            for (step, err) in &r.failed {
                println!("  ✗ {step}: {err}");
            }
            for (step, why) in &r.not_run {
                println!("  - {step}: not run ({why})");
            }
        }
        Some(RunOutcome::Waiting) => {
            println!(
                "{} {} steps done, {} already done, in {}.",
                green.apply_to("Apply paused: everything due is done."),
                r.done.len(),
                r.already_done.len(),
                crate::render::short_duration(r.elapsed)
            );
            for w in &r.waiting {
                println!(
                    "  ⏸ rollout {} wave {} may start at {}: run `kup apply` again then (a scheduled pipeline does), or `kup apply -wait` to stay until it has",
                    w.rollout, w.wave, w.not_before
                );
            }
        }
        Some(RunOutcome::Interrupted) | None => println!(
            "{} {} steps done, {} left. Operations already started keep running at the provider; run `kup apply` again to resume (journal: {}).",
            yellow.apply_to("Apply interrupted."),
            r.done.len(),
            r.not_run.len(),
            store.describe_journal()
        ),
    }
}

fn exit_code(r: &ApplyReport) -> ExitCode {
    // A run that stops at a wave still to soak did all it could: success.
    if r.succeeded() || r.outcome == Some(RunOutcome::Waiting) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Terraform's prompt: only `yes` proceeds. Without a terminal this is an error, not a hang.
fn approve() -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Message(
            "kup apply needs approval, but there is no terminal to ask on. Run `kup apply -auto-approve`, or apply a saved plan: `kup plan -out plan.kup` then `kup apply plan.kup`".into(),
        ));
    }
    print!(
        "\nDo you want to perform these actions?\n  kup will perform the actions described above.\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: "
    );
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == "yes")
}

fn say(mode: Mode, text: &str) {
    if mode == Mode::Json {
        let rec = kup_engine::events::EventRecord {
            at: now_rfc3339(),
            event: kup_engine::events::Event::Message {
                level: kup_engine::events::Level::Info,
                text: text.to_string(),
            },
        };
        println!("{}", serde_json::to_string(&rec).expect("event serializes"));
    } else {
        println!("{text}");
    }
}
