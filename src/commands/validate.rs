//! `kup validate [DIR]`: parse and check the configuration without calling any provider.

use std::process::ExitCode;

use crate::cli::ValidateArgs;
use crate::failure::Result;
use crate::workspace::load_config;

pub fn run(args: ValidateArgs) -> Result<ExitCode> {
    let loaded = load_config(&args.dir, &args.vars)?;
    if args.output.json {
        println!(
            "{}",
            serde_json::json!({
                "valid": true,
                "clusters": loaded.desired.clusters.len(),
                "warnings": loaded.warnings,
            })
        );
    } else {
        for w in &loaded.warnings {
            eprintln!("{}", w.render(&loaded.sources).trim_end());
        }
        let clusters = loaded.desired.clusters.len();
        let groups: usize = loaded
            .desired
            .clusters
            .iter()
            .map(|c| c.node_groups.len())
            .sum();
        println!(
            "Success! The configuration is valid ({clusters} cluster{}, {groups} node group{}).",
            if clusters == 1 { "" } else { "s" },
            if groups == 1 { "" } else { "s" },
        );
    }
    Ok(ExitCode::SUCCESS)
}
