//! `kup graph [DIR | PLANFILE]`: the plan's step DAG in Graphviz DOT (`| dot -Tsvg`).
//! From a directory it refreshes and plans first, as `kup plan` does.

use std::process::ExitCode;

use kup_engine::state::StateLock;

use crate::cli::GraphArgs;
use crate::commands::plan::{make_plan, read_plan_file, PlanRequest};
use crate::failure::{Failure, Result};
use crate::render::dot::render_dot;
use crate::render::progress::{quiet_sink, Mode};
use crate::workspace::default_state_path;

pub async fn run(args: GraphArgs) -> Result<ExitCode> {
    if args.target.is_file() {
        let saved = read_plan_file(&args.target)?;
        print!("{}", render_dot(&saved.plan));
        return Ok(ExitCode::SUCCESS);
    }
    let state_path = args
        .state
        .state
        .clone()
        .unwrap_or_else(|| default_state_path(&args.target));
    let lock = StateLock::acquire(&state_path, "graph", args.state.lock_timeout)
        .map_err(|e| Failure::Message(e.to_string()))?;
    crate::interrupt::hold_lock(&lock);
    let req = PlanRequest {
        dir: &args.target,
        vars: &args.vars,
        targets: &[],
        strict_skew: false,
        parallelism: args.parallelism,
    };
    let planned = make_plan(&req, &quiet_sink(Mode::Plain)).await?;
    planned.connected.shutdown().await;
    drop(lock);
    print!("{}", render_dot(&planned.saved.plan));
    Ok(ExitCode::SUCCESS)
}
