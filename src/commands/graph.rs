//! `kup graph [DIR | PLANFILE]`: the plan's step DAG in Graphviz DOT (`| dot -Tsvg`).
//! From a directory it refreshes and plans first, as `kup plan` does.

use std::process::ExitCode;

use crate::cli::GraphArgs;
use crate::commands::plan::{make_plan, read_plan_file, PlanRequest};
use crate::failure::Result;
use crate::render::dot::render_dot;
use crate::render::progress::{quiet_sink, Mode};
use crate::workspace::{lock_state, store_for_dir};

pub async fn run(args: GraphArgs) -> Result<ExitCode> {
    if args.target.is_file() {
        let saved = read_plan_file(&args.target)?;
        print!("{}", render_dot(&saved.plan));
        return Ok(ExitCode::SUCCESS);
    }
    let store = store_for_dir(&args.target, args.state.state.as_deref())?;
    let lock = lock_state(&store, "graph", args.state.lock_timeout)?;
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
