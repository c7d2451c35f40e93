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
