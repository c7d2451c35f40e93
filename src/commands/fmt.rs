//! `kup fmt [-check] [-diff] [DIR]`: canonical formatting of `*.kup.hcl` and var files.

use std::process::ExitCode;

use console::Style;
use kup_engine::config::format_source;
use similar::{ChangeTag, TextDiff};

use crate::cli::FmtArgs;
use crate::failure::{Failure, Result};

pub fn run(args: FmtArgs) -> Result<ExitCode> {
    let mut files: Vec<_> = std::fs::read_dir(&args.dir)
        .map_err(|e| Failure::Message(format!("cannot read {}: {e}", args.dir.display())))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.ends_with(".kup.hcl") || n.ends_with(".kupvars")
        })
        .collect();
    files.sort();
    let mut unformatted = 0;
    let mut errors = Vec::new();
    for path in files {
        let src = std::fs::read_to_string(&path)?;
        let formatted = match format_source(&src) {
            Ok(f) => f,
            Err(mut d) => {
                if let Some(loc) = &mut d.loc {
                    loc.file = path.display().to_string();
                }
                errors.push(d.render(&[(path.clone(), src.clone())]));
                continue;
            }
        };
        if formatted == src {
            continue;
        }
        unformatted += 1;
        println!("{}", path.display());
        if args.diff {
            print_diff(&src, &formatted, &path.display().to_string());
        }
        if !args.check {
            kup_engine::fsutil::write_atomic(&path, formatted.as_bytes())?;
        }
    }
    if !errors.is_empty() {
        return Err(Failure::Diagnostics {
            rendered: errors.join("\n"),
            json: serde_json::Value::Null,
        });
    }
    Ok(if args.check && unformatted > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_diff(old: &str, new: &str, name: &str) {
    let diff = TextDiff::from_lines(old, new);
    println!("--- {name}\n+++ {name} (formatted)");
    for hunk in diff.unified_diff().context_radius(2).iter_hunks() {
        println!("{}", hunk.header());
        for change in hunk.iter_changes() {
            let (sign, style) = match change.tag() {
                ChangeTag::Delete => ("-", Style::new().red()),
                ChangeTag::Insert => ("+", Style::new().green()),
                ChangeTag::Equal => (" ", Style::new()),
            };
            print!("{}", style.apply_to(format!("{sign}{change}")));
        }
    }
}
