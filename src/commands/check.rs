//! `kup check`: refresh and run every safety check (removed APIs, health, add-ons,
//! provider insights, upgrade protection, support dates) without planning the steps.
//! Exit 0 when nothing is wrong, 2 when a finding would refuse the plan, 3 when there are
//! only warnings, so CI can alert on each.

use std::fmt::Write as _;
use std::process::ExitCode;

use console::Style;
use kup_engine::planner::{self, ClusterCheck, PlanInput, PlanOptions};
use kup_engine::preflight::Severity;
use serde::Serialize;

use crate::cli::CheckArgs;
use crate::failure::Result;
use crate::workspace::{observe, open_for_reading, Observed};

#[derive(Serialize)]
struct CheckReport {
    /// `ok`, `warnings` or `blocked`.
    verdict: &'static str,
    clusters: Vec<ClusterCheck>,
}

pub async fn run(args: CheckArgs) -> Result<ExitCode> {
    let opened = open_for_reading(&args.dir, &args.vars, &args.state, "check")?;
    let loaded = &opened.loaded;
    let Observed {
        desired,
        actual,
        policies,
    } = observe(loaded, args.parallelism, args.output.json).await?;
    let options = PlanOptions {
        strict_skew: args.strict_skew,
        targets: Vec::new(),
        today: Some(crate::workspace::today()?),
    };
    let checks = planner::check(&PlanInput {
        desired: &desired,
        actual: &actual,
        policies: &policies,
        options: &options,
    });
    let blocked = checks
        .iter()
        .any(|c| c.error.is_some() || c.findings.iter().any(|f| f.blocking));
    let warned = checks
        .iter()
        .any(|c| c.findings.iter().any(|f| f.severity != Severity::Info));
    let report = CheckReport {
        verdict: if blocked {
            "blocked"
        } else if warned {
            "warnings"
        } else {
            "ok"
        },
        clusters: checks,
    };
    if args.output.json {
        println!(
            "{}",
            serde_json::to_string(&report).expect("report serializes")
        );
    } else {
        print!("{}", render(&report, args.all));
    }
    Ok(match report.verdict {
        "blocked" => ExitCode::from(2),
        "warnings" => ExitCode::from(3),
        _ => ExitCode::SUCCESS,
    })
}

fn render(r: &CheckReport, all: bool) -> String {
    let red = Style::new().red().bold();
    let yellow = Style::new().yellow();
    let green = Style::new().green();
    let dim = Style::new().dim();
    let mut out = String::new();
    for c in &r.clusters {
        let _ = writeln!(
            out,
            "{} ({} {}): {} → {}",
            c.address,
            c.provider,
            c.name,
            c.from,
            c.to.as_ref()
                .map(|t| t.to_string())
                .unwrap_or_else(|| "-".into())
        );
        if let Some(e) = &c.error {
            let _ = writeln!(out, "  {} {e}", red.apply_to("cannot plan:"));
        }
        let mut shown = 0;
        for f in &c.findings {
            let tag = match (f.severity, f.blocking) {
                (Severity::Error, true) => red.apply_to("blocks:  ").to_string(),
                (Severity::Error, false) => yellow.apply_to("error:   ").to_string(),
                (Severity::Warning, _) => yellow.apply_to("warning: ").to_string(),
                (Severity::Info, _) if all => dim.apply_to("info:    ").to_string(),
                (Severity::Info, _) => continue,
            };
            shown += 1;
            let _ = writeln!(out, "  {tag}[{}] {}", f.check.as_str(), f.line());
            if let Some(r) = &f.remedy {
                let _ = writeln!(out, "           fix: {r}");
            }
        }
        if shown == 0 && c.error.is_none() {
            let _ = writeln!(out, "  {} every check passed", green.apply_to("ok:"));
        }
        let hidden = c
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Info)
            .count();
        if hidden > 0 && !all {
            let _ = writeln!(
                out,
                "  {}",
                dim.apply_to(format!("({hidden} notes; -all shows them)"))
            );
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{}",
        match r.verdict {
            "blocked" => red.apply_to("Blocked: a plan would be refused until the findings marked `blocks` are fixed.").to_string(),
            "warnings" => yellow.apply_to("Warnings only: a plan can be made.").to_string(),
            _ => green.apply_to("All checks passed.").to_string(),
        }
    );
    out
}
