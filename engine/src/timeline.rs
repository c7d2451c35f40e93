//! The predicted timeline of a plan (`kup rehearse`): each step's duration as measured in
//! a simulated copy (in the clusters' time), laid out the way the executor schedules steps
//! (in plan order once their dependencies are done, at most `parallelism` at once), with
//! wave gates lasting their soak and the wait for their window.
//!
//! The rehearsal passes wave gates at once instead of sleeping through days of soak; this
//! puts the soaks back, so the total is what a real apply would take. Pure: no clock, no
//! I/O, the start instant is an argument.

use std::collections::{BTreeMap, BTreeSet};

use crate::plan::{Action, Plan};
use serde::Serialize;

/// What the rehearsal saw of one step.
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    /// Simulated seconds from its start to its end.
    pub secs: f64,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    AlreadyDone,
    Failed(String),
}

/// One step on the predicted timeline.
#[derive(Clone, Debug, Serialize)]
pub struct TimedStep {
    pub id: String,
    pub cluster: String,
    pub description: String,
    /// `cluster` (a provider or Kubernetes step), `postflight` or `wave`.
    pub kind: &'static str,
    /// Seconds after the apply starts.
    pub start_secs: f64,
    pub duration_secs: f64,
    /// The planner's own estimate, for comparison.
    pub estimated_secs: u64,
    /// `done`, `already_done`, `failed` or `not_run`.
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Timeline {
    pub steps: Vec<TimedStep>,
    /// When the last step that ran ends.
    pub total_secs: f64,
}

/// Lay out `plan` with the measured durations. Steps without a measurement did not run
/// in the rehearsal (a step they depend on failed); they stay on the list as `not_run`.
pub fn compose(
    plan: &Plan,
    measured: &BTreeMap<String, Measured>,
    parallelism: usize,
    start: jiff::Timestamp,
) -> Result<Timeline, String> {
    let slots = parallelism.max(1);
    let index: BTreeMap<&str, usize> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let n = plan.steps.len();
    let mut begin: Vec<Option<f64>> = vec![None; n];
    let mut end: Vec<Option<f64>> = vec![None; n];
    let mut blocked: BTreeSet<usize> = BTreeSet::new();
    let mut durations: Vec<f64> = vec![0.0; n];
    let mut now = 0.0_f64;
    loop {
        // Steps whose dependency failed or did not run never start.
        for (i, s) in plan.steps.iter().enumerate() {
            if begin[i].is_some() || blocked.contains(&i) {
                continue;
            }
            let dep_blocked = s.depends_on.iter().any(|d| {
                index.get(d.as_str()).is_some_and(|&j| {
                    blocked.contains(&j)
                        || matches!(
                            measured.get(d).map(|m| &m.outcome),
                            Some(Outcome::Failed(_))
                        )
                })
            });
            if dep_blocked || (!is_gate(&s.action) && !measured.contains_key(&s.id)) {
                blocked.insert(i);
            }
        }
        let running = (0..n)
            .filter(|&i| begin[i].is_some() && end[i].is_some_and(|e| e > now))
            .count();
        let mut free = slots.saturating_sub(running);
        let mut started = false;
        for (i, s) in plan.steps.iter().enumerate() {
            if free == 0 {
                break;
            }
            if begin[i].is_some() || blocked.contains(&i) {
                continue;
            }
            let ready = s.depends_on.iter().all(|d| {
                index
                    .get(d.as_str())
                    .is_none_or(|&j| end[j].is_some_and(|e| e <= now))
            });
            if !ready {
                continue;
            }
            let d = match &s.action {
                // The soak runs from when the waves it follows finished, as the executor
                // counts it, even when the gate waited for a slot.
                Action::WaveGate {
                    soak_secs, window, ..
                } => {
                    let since = s
                        .depends_on
                        .iter()
                        .filter_map(|d| index.get(d.as_str()).and_then(|&j| end[j]))
                        .fold(0.0, f64::max);
                    let open = since + gate_secs(*soak_secs, window.as_ref(), start, since)?;
                    (open - now).max(0.0)
                }
                _ => measured.get(&s.id).map_or(0.0, |m| m.secs.max(0.0)),
            };
            durations[i] = d;
            begin[i] = Some(now);
            end[i] = Some(now + d);
            free -= 1;
            started = true;
        }
        if started {
            // A zero-length step frees its slot at once: look again at the same instant.
            continue;
        }
        // Move to the next instant a running step ends.
        let next = (0..n)
            .filter_map(|i| end[i].filter(|&e| e > now))
            .fold(f64::INFINITY, f64::min);
        if next.is_infinite() {
            break;
        }
        now = next;
    }
    let mut total = 0.0_f64;
    let mut steps: Vec<TimedStep> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let m = measured.get(&s.id);
            let (outcome, error) = match (begin[i], m.map(|m| &m.outcome)) {
                (None, _) => ("not_run", None),
                (Some(_), Some(Outcome::Failed(e))) => ("failed", Some(e.clone())),
                (Some(_), Some(Outcome::AlreadyDone)) => ("already_done", None),
                (Some(_), _) => ("done", None),
            };
            if let Some(e) = end[i] {
                total = total.max(e);
            }
            TimedStep {
                id: s.id.clone(),
                cluster: s.cluster.clone(),
                description: s.action.describe(),
                kind: match s.action {
                    Action::WaveGate { .. } => "wave",
                    Action::PostFlight { .. } => "postflight",
                    _ => "cluster",
                },
                start_secs: begin[i].unwrap_or(0.0),
                duration_secs: if begin[i].is_some() {
                    durations[i]
                } else {
                    0.0
                },
                estimated_secs: s.estimated_secs,
                outcome,
                error,
            }
        })
        .collect();
    // In the order they start (plan order among equals), steps that never ran last.
    steps.sort_by(|a, b| {
        (a.outcome == "not_run")
            .cmp(&(b.outcome == "not_run"))
            .then(a.start_secs.total_cmp(&b.start_secs))
            .then(index[a.id.as_str()].cmp(&index[b.id.as_str()]))
    });
    Ok(Timeline {
        steps,
        total_secs: total,
    })
}

fn is_gate(a: &Action) -> bool {
    matches!(a, Action::WaveGate { .. })
}

/// How long a wave's gate holds when it is reached `at_secs` into the apply: its soak,
/// then until its window opens.
fn gate_secs(
    soak_secs: u64,
    window: Option<&crate::model::UpgradeWindow>,
    start: jiff::Timestamp,
    at_secs: f64,
) -> Result<f64, String> {
    let reached = start
        .checked_add(jiff::SignedDuration::from_secs_f64(at_secs))
        .map_err(|e| e.to_string())?;
    let soaked = reached
        .checked_add(jiff::SignedDuration::from_secs(soak_secs as i64))
        .map_err(|e| e.to_string())?;
    let open = match window {
        Some(w) => crate::schedule::next_open(w, soaked)?,
        None => soaked,
    };
    Ok(open.duration_since(reached).as_secs_f64())
}

#[cfg(test)]
mod tests;
