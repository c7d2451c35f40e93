//! `kup state list`, `kup state show ADDRESS`, `kup force-unlock LOCK_ID`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use kup_engine::state::StateFile;

use crate::cli::{ForceUnlockArgs, StateCommand};
use crate::failure::{Failure, Result};
use crate::workspace::store_for_dir;

/// The state and its name in messages.
fn load(dir: &Path, state: &Option<PathBuf>) -> Result<(String, StateFile)> {
    let store = store_for_dir(dir, state.as_deref())?;
    match store.load().map_err(|e| Failure::Message(e.to_string()))? {
        Some(s) => Ok((store.describe(), s)),
        None => Err(Failure::Message(format!(
            "no state at {}: nothing has been applied from this directory yet (or pass -state PATH)",
            store.describe()
        ))),
    }
}

pub fn run(cmd: StateCommand) -> Result<ExitCode> {
    match cmd {
        StateCommand::List { dir, state } => {
            let (_, s) = load(&dir, &state)?;
            for (address, c) in &s.clusters {
                println!("{address}");
                for n in &c.observed.node_groups {
                    println!("{address}.node_group.{}", n.name);
                }
                for a in &c.observed.addons {
                    println!("{address}.addon.{}", a.name);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        StateCommand::Show {
            address,
            dir,
            state,
        } => {
            let (path, s) = load(&dir, &state)?;
            let value = find(&s, &address).ok_or_else(|| {
                Failure::Message(format!(
                    "{address} is not in the state at {path}; `kup state list` shows what is"
                ))
            })?;
            println!(
                "{}",
                serde_json::to_string_pretty(&value).expect("serializes")
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn find(s: &StateFile, address: &str) -> Option<serde_json::Value> {
    let parts: Vec<&str> = address.split('.').collect();
    let cluster = s.clusters.get(&format!("cluster.{}", parts.get(1)?))?;
    if parts.first() != Some(&"cluster") {
        return None;
    }
    match parts.as_slice() {
        [_, _] => serde_json::to_value(cluster).ok(),
        [_, _, "node_group", n] => {
            let observed = cluster.observed.node_group(n)?;
            let desired = cluster.desired.node_group(n);
            Some(serde_json::json!({ "observed": observed, "desired": desired }))
        }
        [_, _, "addon", a] => {
            let observed = cluster.observed.addon(a)?;
            let desired = cluster.desired.addons.iter().find(|x| x.name == *a);
            Some(serde_json::json!({ "observed": observed, "desired": desired }))
        }
        _ => None,
    }
}

pub fn force_unlock_cmd(args: ForceUnlockArgs) -> Result<ExitCode> {
    let store = store_for_dir(&args.dir, args.state.as_deref())?;
    let info = store
        .force_unlock(&args.lock_id)
        .map_err(|e| Failure::Message(e.to_string()))?;
    println!(
        "Removed the lock {} ({} by {} on {}, pid {}). The state is unlocked.",
        info.id, info.operation, info.who, info.host, info.pid
    );
    Ok(ExitCode::SUCCESS)
}
