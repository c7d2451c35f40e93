//! `kup show PLANFILE [-json | -markdown]`.

use std::process::ExitCode;

use crate::cli::ShowArgs;
use crate::commands::plan::read_plan_file;
use crate::failure::Result;
use crate::render::markdown::render_markdown;
use crate::render::plan::render_plan;

pub fn run(args: ShowArgs) -> Result<ExitCode> {
    let saved = read_plan_file(&args.plan_file)?;
    if args.markdown {
        print!(
            "{}",
            render_markdown(
                &saved.plan,
                &format!("kup show {}", args.plan_file.display())
            )
        );
    } else if args.output.json {
        println!(
            "{}",
            serde_json::to_string(&saved).expect("plan serializes")
        );
    } else {
        println!(
            "Plan {} made {} by kup {} from {}\n",
            saved.plan.id, saved.created_at, saved.kup_version, saved.config_dir
        );
        print!("{}", render_plan(&saved.plan));
    }
    Ok(ExitCode::SUCCESS)
}
