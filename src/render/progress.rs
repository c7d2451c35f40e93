//! Apply progress: bars on a TTY (one per cluster plus a spinner per running step), one
//! plain line per event otherwise, JSON Lines with `-json`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use console::Style;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kup_engine::events::{Event, EventRecord, Level};
use kup_engine::executor::EventSink;
use kup_engine::plan::Plan;
use kup_engine::state::now_rfc3339;

use super::short_duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Json,
    Plain,
    Tty,
}

impl Mode {
    pub fn detect(json: bool) -> Mode {
        if json {
            Mode::Json
        } else if std::io::stdout().is_terminal() {
            Mode::Tty
        } else {
            Mode::Plain
        }
    }
}

/// An event sink for `mode`. `plan` sizes the per-cluster bars.
pub fn sink(mode: Mode, plan: Option<&Plan>) -> EventSink {
    match mode {
        Mode::Json => Arc::new(|e: Event| {
            let rec = EventRecord {
                at: now_rfc3339(),
                event: e,
            };
            let line = serde_json::to_string(&rec).expect("event serializes");
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(kup_engine::redact::redact(&line).as_bytes());
            let _ = out.write_all(b"\n");
            let _ = out.flush();
        }),
        Mode::Plain => {
            // Progress is printed when it changes, not on every poll.
            let last: Mutex<HashMap<String, String>> = Mutex::new(HashMap::new());
            Arc::new(move |e: Event| {
                if let Event::StepProgress { step, status, .. } = &e {
                    let mut last = last.lock().unwrap();
                    if status == "in_progress" || last.get(step) == Some(status) {
                        return;
                    }
                    last.insert(step.clone(), status.clone());
                    let t = time::OffsetDateTime::now_utc();
                    println!(
                        "[{:02}:{:02}:{:02}] {step}: {status}",
                        t.hour(),
                        t.minute(),
                        t.second()
                    );
                    return;
                }
                if let Some(line) = plain_line(&e) {
                    println!("{line}");
                }
            })
        }
        Mode::Tty => {
            let bars = Bars::new(plan);
            Arc::new(move |e: Event| bars.handle(e))
        }
    }
}

/// A sink that only shows warnings (used while planning, where progress is noise).
pub fn quiet_sink(mode: Mode) -> EventSink {
    Arc::new(move |e: Event| match (&e, mode) {
        (Event::Retrying { .. }, Mode::Json) => {}
        (Event::Retrying { error, attempt, .. }, _) if *attempt >= 3 => {
            eprintln!("retrying after a transient error (attempt {attempt}): {error}")
        }
        (Event::Message { text, .. }, Mode::Json) => {
            let _ = text;
        }
        (Event::Message { level, text }, _) if *level != Level::Info => {
            eprintln!("{} {text}", Style::new().yellow().apply_to("warning:"))
        }
        _ => {}
    })
}

fn plain_line(e: &Event) -> Option<String> {
    let t = time::OffsetDateTime::now_utc();
    let ts = format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second());
    let green = Style::new().green();
    let red = Style::new().red();
    let yellow = Style::new().yellow();
    Some(match e {
        Event::ApplyStarted {
            steps,
            resumed,
            already_finished,
            run_id,
            ..
        } => {
            if *resumed {
                format!("[{ts}] resuming apply {run_id}: {already_finished} of {steps} steps already finished")
            } else {
                format!("[{ts}] applying {steps} steps (run {run_id})")
            }
        }
        Event::Refreshing { .. }
        | Event::StepProgress { .. }
        | Event::RehearsalStep { .. }
        | Event::RehearsalFinished { .. } => return None,
        Event::StepStarted {
            step,
            description,
            estimated_secs,
            ..
        } => format!(
            "[{ts}] {step}: {description} (estimated {})",
            short_duration(Duration::from_secs(*estimated_secs))
        ),
        Event::OperationStarted {
            step,
            operation_id,
            attached,
        } => {
            if *attached {
                format!("[{ts}] {step}: waiting on operation {operation_id}, already in progress")
            } else {
                format!("[{ts}] {step}: operation {operation_id} started")
            }
        }
        Event::Retrying {
            step,
            attempt,
            delay_ms,
            error,
        } => format!(
            "[{ts}] {}retrying in {delay_ms} ms (attempt {attempt}): {error}",
            step.as_ref().map(|s| format!("{s}: ")).unwrap_or_default()
        ),
        Event::StepFinished {
            step,
            outcome,
            elapsed_secs,
        } => {
            let what = if outcome == "already_done" {
                "already done".to_string()
            } else {
                format!(
                    "done in {}",
                    short_duration(Duration::from_secs_f64(*elapsed_secs))
                )
            };
            format!("[{ts}] {step}: {}", green.apply_to(what))
        }
        Event::StepFailed { step, error } => {
            format!("[{ts}] {step}: {} {error}", red.apply_to("failed:"))
        }
        Event::StepNotRun { step, reason } => format!("[{ts}] {step}: not run: {reason}"),
        Event::WaveWaiting {
            rollout,
            wave,
            not_before,
            ..
        } => format!("[{ts}] rollout {rollout}: wave {wave} may start at {not_before}"),
        Event::PostFlight {
            cluster,
            passed,
            checks,
            ..
        } => format!(
            "[{ts}] {cluster}: post-flight {} {}",
            if *passed {
                green.apply_to("passed:")
            } else {
                red.apply_to("failed:")
            },
            checks.join("; ")
        ),
        Event::Message { level, text } => match level {
            Level::Info => format!("[{ts}] {text}"),
            Level::Warning => format!("[{ts}] {} {text}", yellow.apply_to("warning:")),
            Level::Error => format!("[{ts}] {} {text}", red.apply_to("error:")),
        },
        Event::ApplyFinished { .. } => return None,
    })
}

struct Bars {
    multi: MultiProgress,
    clusters: HashMap<String, ProgressBar>,
    steps: Mutex<HashMap<String, ProgressBar>>,
    cluster_of: HashMap<String, String>,
}

impl Bars {
    fn new(plan: Option<&Plan>) -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let mut clusters = HashMap::new();
        let mut cluster_of = HashMap::new();
        let style = ProgressStyle::with_template(
            "{prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} steps  {elapsed_precise}  eta {eta}",
        )
        .unwrap()
        .progress_chars("=> ");
        if let Some(plan) = plan {
            for c in &plan.clusters {
                let n = plan.steps.iter().filter(|s| s.cluster == c.address).count() as u64;
                if n == 0 {
                    continue;
                }
                let bar = multi.add(ProgressBar::new(n));
                bar.set_style(style.clone());
                bar.set_prefix(c.address.clone());
                clusters.insert(c.address.clone(), bar);
            }
            for s in &plan.steps {
                cluster_of.insert(s.id.clone(), s.cluster.clone());
            }
        }
        Bars {
            multi,
            clusters,
            steps: Mutex::new(HashMap::new()),
            cluster_of,
        }
    }

    fn handle(&self, e: Event) {
        let green = Style::new().green();
        let red = Style::new().red();
        match &e {
            Event::StepStarted {
                step, description, ..
            } => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("  {spinner} {msg}  {prefix:.dim}  {elapsed}")
                        .unwrap(),
                );
                bar.set_message(format!("{step}: {description}"));
                bar.enable_steady_tick(Duration::from_millis(120));
                self.steps.lock().unwrap().insert(step.clone(), bar);
            }
            Event::StepFinished {
                step,
                outcome,
                elapsed_secs,
            } => {
                if let Some(bar) = self.steps.lock().unwrap().remove(step) {
                    let what = if outcome == "already_done" {
                        "already done".to_string()
                    } else {
                        short_duration(Duration::from_secs_f64(*elapsed_secs))
                    };
                    bar.set_style(ProgressStyle::with_template("  {msg}").unwrap());
                    bar.finish_with_message(format!("{} {step} ({what})", green.apply_to("✓")));
                }
                self.advance(step);
            }
            Event::StepFailed { step, error } => {
                if let Some(bar) = self.steps.lock().unwrap().remove(step) {
                    bar.set_style(ProgressStyle::with_template("  {msg}").unwrap());
                    bar.finish_with_message(format!("{} {step}: {error}", red.apply_to("✗")));
                }
            }
            Event::OperationStarted {
                step,
                operation_id,
                attached,
            } => {
                if let Some(bar) = self.steps.lock().unwrap().get(step) {
                    let how = if *attached { "waiting on" } else { "operation" };
                    let msg = bar.message();
                    bar.set_message(format!("{msg}  [{how} {operation_id}]"));
                }
            }
            Event::StepProgress { step, status, .. } => {
                if let Some(bar) = self.steps.lock().unwrap().get(step) {
                    if status != "in_progress" {
                        bar.set_prefix(status.clone());
                    }
                }
            }
            Event::ApplyFinished { .. } => {
                for bar in self.clusters.values() {
                    bar.abandon();
                }
            }
            other => {
                if let Some(line) = plain_line(other) {
                    let _ = self.multi.println(line);
                }
            }
        }
    }

    fn advance(&self, step: &str) {
        if let Some(c) = self.cluster_of.get(step) {
            if let Some(bar) = self.clusters.get(c) {
                bar.inc(1);
            }
        }
    }
}
