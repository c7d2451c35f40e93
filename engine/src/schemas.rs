//! JSON Schemas of kup's files and outputs, generated from the Rust types. The checked-in
//! copies under `schemas/` are compared with these by a test, so they cannot go stale.

use std::path::Path;

use crate::events::EventRecord;
use crate::model::Desired;
use crate::plan::SavedPlan;
use crate::state::StateFile;

/// (file name, schema) for every published schema.
pub fn all() -> Vec<(&'static str, schemars::Schema)> {
    vec![
        ("config.schema.json", schemars::schema_for!(Desired)),
        ("plan.schema.json", schemars::schema_for!(SavedPlan)),
        ("state.schema.json", schemars::schema_for!(StateFile)),
        ("events.schema.json", schemars::schema_for!(EventRecord)),
    ]
}

pub fn render(schema: &schemars::Schema) -> String {
    let mut s = serde_json::to_string_pretty(schema).expect("schema serializes");
    s.push('\n');
    s
}

pub fn write_all(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, schema) in all() {
        crate::fsutil::write_atomic(&dir.join(name), render(&schema).as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails when a type changed without regenerating: run
    /// `cargo run -- schemas schemas` (or `KUP_UPDATE_SCHEMAS=1 cargo test`).
    #[test]
    fn checked_in_schemas_are_current() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
        if std::env::var_os("KUP_UPDATE_SCHEMAS").is_some() {
            write_all(&dir).unwrap();
        }
        for (name, schema) in all() {
            let path = dir.join(name);
            let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                on_disk == render(&schema),
                "{} is stale or missing; regenerate with `KUP_UPDATE_SCHEMAS=1 cargo test -p kup-engine schemas`",
                path.display()
            );
        }
    }
}
