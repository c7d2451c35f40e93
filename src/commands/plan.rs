//! `kup plan`: refresh, compute the plan, print it, optionally save it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use kup_engine::config::Loaded;
use kup_engine::executor::EventSink;
use kup_engine::model::ActualCluster;
use kup_engine::plan::{fingerprint, Plan, SavedPlan, PLAN_FORMAT_VERSION};
use kup_engine::planner::{self, PlanInput, PlanOptions, Target};
use kup_engine::state::now_rfc3339;

use crate::cli::PlanArgs;
use crate::commands::drift;
use crate::failure::{Failure, Result};
use crate::render::markdown::render_markdown;
use crate::render::plan::{render_plan, render_plan_errors};
use crate::render::progress::{quiet_sink, Mode};
use crate::workspace::{config_files_hash, load_config, lock_state, store_for_dir, Connected};
use crate::VarArgs;

/// Everything a planning run produced.
pub struct Planned {
    pub connected: Connected,
    pub actual: BTreeMap<String, ActualCluster>,
    pub saved: SavedPlan,
}

pub struct PlanRequest<'a> {
    pub dir: &'a Path,
    pub vars: &'a VarArgs,
    pub targets: &'a [String],
    pub strict_skew: bool,
    pub parallelism: usize,
}

/// Load, connect, refresh and plan. The caller owns shutting down `connected`.
pub async fn make_plan(req: &PlanRequest<'_>, events: &EventSink) -> Result<Planned> {
    let today = crate::workspace::today()?;
    let mut loaded = load_config(req.dir, req.vars)?;
    for w in &loaded.warnings {
        eprintln!("{}", w.render(&loaded.sources).trim_end());
    }
    let targets = req
        .targets
        .iter()
        .map(|t| Target::parse(t).map_err(Failure::Message))
        .collect::<Result<Vec<_>>>()?;
    let connected = Connected::start(&loaded.desired, &loaded.dir).await?;
    let clusters: Vec<_> = loaded.desired.clusters.iter().collect();
    let actual = match connected
        .refresh(&loaded.desired, &clusters, req.parallelism, events)
        .await
    {
        Ok(a) => a,
        Err(e) => {
            connected.shutdown().await;
            return Err(e);
        }
    };
    if let Err(errors) = planner::resolve_version_aliases(&mut loaded.desired, &actual) {
        connected.shutdown().await;
        return Err(Failure::Diagnostics {
            rendered: render_plan_errors(&errors),
            json: serde_json::to_value(&errors).unwrap_or_default(),
        });
    }
    let policies = connected.policies();
    let options = PlanOptions {
        strict_skew: req.strict_skew,
        targets,
        today: Some(today),
    };
    let plan = match planner::plan(&PlanInput {
        desired: &loaded.desired,
        actual: &actual,
        policies: &policies,
        options: &options,
    }) {
        Ok(p) => p,
        Err(errors) => {
            connected.shutdown().await;
            return Err(Failure::Diagnostics {
                rendered: render_plan_errors(&errors),
                json: serde_json::to_value(&errors).unwrap_or_default(),
            });
        }
    };
    let saved = seal(&loaded, &actual, plan)?;
    for problem in maintenance_problems(&saved, &actual) {
        eprintln!(
            "{} {problem}; GKE runs upgrades you start at any time, so kup goes ahead unless \
             `kup apply -respect-maintenance-window` is given",
            console::Style::new().yellow().apply_to("warning:")
        );
    }
    Ok(Planned {
        connected,
        actual,
        saved,
    })
}

fn seal(
    loaded: &Loaded,
    actual: &BTreeMap<String, ActualCluster>,
    plan: Plan,
) -> Result<SavedPlan> {
    let state_fingerprints = actual
        .iter()
        .map(|(label, a)| (format!("cluster.{label}"), fingerprint(a)))
        .collect();
    Ok(SavedPlan {
        kup_version: env!("CARGO_PKG_VERSION").to_string(),
        format_version: PLAN_FORMAT_VERSION,
        created_at: now_rfc3339(),
        config_dir: loaded.dir.display().to_string(),
        config_hash: config_files_hash(&loaded.dir)?,
        state_fingerprints,
        desired: loaded.desired.clone(),
        plan,
        integrity: String::new(),
    }
    .seal())
}

pub async fn run(args: PlanArgs) -> Result<ExitCode> {
    let mode = if args.output.json {
        Mode::Json
    } else {
        Mode::Plain
    };
    let store = store_for_dir(&args.dir, args.state.state.as_deref())?;
    let lock = lock_state(&store, "plan", args.state.lock_timeout)?;
    if args.refresh_only {
        let code = drift::refresh_only(
            &args.dir,
            &args.vars,
            &store,
            args.parallelism,
            args.output.json,
            args.detailed_exitcode,
        )
        .await;
        drop(lock);
        return code;
    }
    let req = PlanRequest {
        dir: &args.dir,
        vars: &args.vars,
        targets: &args.targets,
        strict_skew: args.strict_skew,
        parallelism: args.parallelism,
    };
    let planned = make_plan(&req, &quiet_sink(mode)).await?;
    planned.connected.shutdown().await;
    let saved = planned.saved;
    let differences = unplanned_differences(&saved, &planned.actual);
    if args.markdown {
        let whole = match &args.out {
            Some(out) => format!("kup show {}", out.display()),
            None => format!("kup plan {}", args.dir.display()),
        };
        print!("{}", render_markdown(&saved.plan, &whole));
    } else if args.output.json {
        println!(
            "{}",
            serde_json::to_string(&saved).expect("plan serializes")
        );
    } else if saved.plan.is_empty() && !differences.is_empty() {
        println!("No upgrade steps, but the clusters differ from the configuration in ways kup does not change:");
        for d in &differences {
            println!("  {d}");
        }
        println!("`kup drift` shows the details.");
    } else {
        print!("{}", render_plan(&saved.plan));
    }
    if let Some(out) = &args.out {
        write_plan_file(out, &saved)?;
        if !args.output.json && !args.markdown {
            println!(
                "\nSaved the plan to {}. To carry it out exactly: kup apply {}",
                out.display(),
                out.display()
            );
        }
    }
    drop(lock);
    Ok(
        if args.detailed_exitcode && (!saved.plan.is_empty() || !differences.is_empty()) {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        },
    )
}

/// Differences from the configuration that no step addresses (e.g. a node group that
/// exists only in the cloud), for `-detailed-exitcode`: anything that differs is a 2.
pub fn unplanned_differences(
    saved: &SavedPlan,
    actual: &BTreeMap<String, ActualCluster>,
) -> Vec<String> {
    let mut out = Vec::new();
    for spec in &saved.desired.clusters {
        let Some(a) = actual.get(&spec.label) else {
            continue;
        };
        if saved.plan.steps.iter().any(|s| s.cluster == spec.address()) {
            continue;
        }
        for d in drift::config_drift(spec, a) {
            let what = match d.kind.as_str() {
                "unmanaged" => format!("{} exists but is not in the configuration", d.address),
                "missing" => format!("{} is declared but does not exist", d.address),
                _ => format!(
                    "{} {}: configuration says {}, running {}",
                    d.address,
                    d.attribute.as_deref().unwrap_or(""),
                    d.expected.as_deref().unwrap_or(""),
                    d.actual.as_deref().unwrap_or("")
                ),
            };
            out.push(what);
        }
    }
    out
}

pub fn write_plan_file(out: &Path, saved: &SavedPlan) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(saved).expect("plan serializes");
    bytes.push(b'\n');
    kup_engine::fsutil::write_private(out, &bytes)
        .map_err(|e| Failure::Message(format!("cannot write plan file {}: {e}", out.display())))
}

/// Read a plan file and check it was not edited.
pub fn read_plan_file(path: &Path) -> Result<SavedPlan> {
    let bytes = std::fs::read(path)
        .map_err(|e| Failure::Message(format!("cannot read plan file {}: {e}", path.display())))?;
    let saved: SavedPlan = serde_json::from_slice(&bytes).map_err(|e| {
        Failure::Message(format!(
            "{} is not a kup plan file ({e}); write one with `kup plan -out FILE`",
            path.display()
        ))
    })?;
    if saved.format_version != PLAN_FORMAT_VERSION {
        return Err(Failure::Message(format!(
            "plan file {} has format version {}, but this kup reads version {PLAN_FORMAT_VERSION}; make a new plan with this kup",
            path.display(),
            saved.format_version
        )));
    }
    if !saved.verify_integrity() {
        return Err(Failure::Message(format!(
            "plan file {} was modified after kup wrote it (its integrity hash does not match), so kup will not apply it; run `kup plan -out {}` again",
            path.display(),
            path.display()
        )));
    }
    Ok(saved)
}

/// Clusters this plan changes whose maintenance window or exclusions say "not now".
pub fn maintenance_problems(
    saved: &SavedPlan,
    actual: &BTreeMap<String, ActualCluster>,
) -> Vec<String> {
    let now = time::OffsetDateTime::now_utc();
    let mut out = Vec::new();
    for spec in &saved.desired.clusters {
        let address = spec.address();
        if !saved.plan.steps.iter().any(|s| s.cluster == address) {
            continue;
        }
        let Some(policy) = actual.get(&spec.label).and_then(|a| a.maintenance.as_ref()) else {
            continue;
        };
        if let Some(p) = kup_engine::maintenance::check(policy, now).problem() {
            out.push(format!("{address}: {p}"));
        }
    }
    out
}
