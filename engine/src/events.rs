//! What an apply reports as it goes: rendered as progress on a TTY, one line per event
//! without one, and JSON Lines with `-json` (schema in schemas/events.schema.json).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::journal::RunOutcome;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    ApplyStarted {
        plan_id: String,
        run_id: String,
        steps: usize,
        /// True when this run continues one a previous apply left unfinished.
        resumed: bool,
        already_finished: usize,
    },
    Refreshing {
        cluster: String,
    },
    StepStarted {
        step: String,
        cluster: String,
        description: String,
        estimated_secs: u64,
    },
    OperationStarted {
        step: String,
        operation_id: String,
        /// True when kup found the operation already running and waited on it.
        attached: bool,
    },
    StepProgress {
        step: String,
        status: String,
        elapsed_secs: f64,
    },
    Retrying {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<String>,
        attempt: u32,
        delay_ms: u64,
        error: String,
    },
    StepFinished {
        step: String,
        /// `done`, or `already_done` when its postcondition already held.
        outcome: String,
        elapsed_secs: f64,
    },
    StepFailed {
        step: String,
        error: String,
    },
    /// A wave may not start yet (its soak or window is ahead); apply ends here unless
    /// `-wait`, and the next apply continues.
    WaveWaiting {
        step: String,
        rollout: String,
        wave: String,
        /// RFC 3339.
        not_before: String,
    },
    /// The post-flight check of a cluster: what it proved, or what is wrong.
    PostFlight {
        step: String,
        cluster: String,
        passed: bool,
        checks: Vec<String>,
    },
    StepNotRun {
        step: String,
        reason: String,
    },
    Message {
        level: Level,
        text: String,
    },
    /// `kup rehearse`: one step of the predicted timeline, in the clusters' time.
    RehearsalStep {
        step: String,
        cluster: String,
        description: String,
        /// `cluster`, `postflight` or `wave`.
        kind: String,
        /// Seconds after the apply starts.
        start_secs: f64,
        duration_secs: f64,
        /// The planner's own estimate.
        estimated_secs: u64,
        /// `done`, `already_done`, `failed` or `not_run`.
        outcome: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// `kup rehearse`: the verdict, after every `rehearsal_step`.
    RehearsalFinished {
        /// `completed` or `failed`.
        outcome: String,
        /// Predicted duration of the whole apply, in seconds.
        total_secs: f64,
        clusters: usize,
        steps: usize,
        /// Simulated seconds per real second the rehearsal ran at.
        speed: f64,
        /// Real seconds the rehearsal took.
        rehearsal_secs: f64,
        /// Drains held up by PodDisruptionBudgets (predicted from the real clusters, and
        /// evictions the budgets refused in the rehearsal).
        blocked_drains: Vec<String>,
        /// Pods that waited for room, or never found it, in the rehearsal; batches the
        /// planner predicts will not fit.
        capacity: Vec<String>,
        /// Clusters not rehearsed, and what the copy could not reproduce exactly.
        notes: Vec<String>,
    },
    ApplyFinished {
        outcome: RunOutcome,
        done: usize,
        already_done: usize,
        failed: usize,
        not_run: usize,
        elapsed_secs: f64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Info,
    Warning,
    Error,
}

/// An event with its time, as written in JSON Lines.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventRecord {
    pub at: String,
    #[serde(flatten)]
    pub event: Event,
}
