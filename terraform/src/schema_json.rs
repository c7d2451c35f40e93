//! The provider's schema as `terraform providers schema -json` prints it, for
//! `schemas/terraform-provider.schema.json`. A unit test keeps the checked-in file current;
//! an end-to-end test checks that Terraform itself prints the same document.

use std::collections::HashMap;

use serde_json::{json, Map, Value};
use tf_provider::schema::{
    Attribute, AttributeConstraint, Block, Description, NestedBlock, Schema, StringKind,
};
use tf_provider::{Diagnostics, Provider};

use crate::KupProvider;

/// The checked-in file's name under `schemas/`.
pub const FILE: &str = "terraform-provider.schema.json";

fn describe(out: &mut Map<String, Value>, d: &Description) {
    if !d.content.is_empty() {
        out.insert("description".into(), json!(d.content));
    }
    let kind = match d.kind {
        StringKind::Plain => "plain",
        StringKind::Markdown => "markdown",
    };
    out.insert("description_kind".into(), json!(kind));
}

fn attribute(a: &Attribute) -> Value {
    let mut out = Map::new();
    out.insert(
        "type".into(),
        serde_json::to_value(&a.attr_type).expect("cty type"),
    );
    describe(&mut out, &a.description);
    let (required, optional, computed) = match a.constraint {
        AttributeConstraint::Required => (true, false, false),
        AttributeConstraint::Optional => (false, true, false),
        AttributeConstraint::OptionalComputed => (false, true, true),
        AttributeConstraint::Computed => (false, false, true),
    };
    for (key, on) in [
        ("required", required),
        ("optional", optional),
        ("computed", computed),
        ("sensitive", a.sensitive),
        ("deprecated", a.deprecated),
    ] {
        if on {
            out.insert(key.into(), json!(true));
        }
    }
    Value::Object(out)
}

fn block(b: &Block) -> Value {
    let mut out = Map::new();
    let sorted = |m: &HashMap<String, Attribute>| -> Map<String, Value> {
        let mut keys: Vec<&String> = m.keys().collect();
        keys.sort();
        keys.into_iter()
            .map(|k| (k.clone(), attribute(&m[k])))
            .collect()
    };
    if !b.attributes.is_empty() {
        out.insert("attributes".into(), Value::Object(sorted(&b.attributes)));
    }
    if !b.blocks.is_empty() {
        let mut names: Vec<&String> = b.blocks.keys().collect();
        names.sort();
        let types: Map<String, Value> = names
            .into_iter()
            .map(|name| {
                // tf-provider's nesting: (mode, inner block, min_items, max_items).
                let (mode, inner, min, max) = match &b.blocks[name] {
                    NestedBlock::Single(b) => ("single", b, 1, 1),
                    NestedBlock::List(b) => ("list", b, 0, i64::MAX),
                    NestedBlock::Set(b) => ("set", b, 0, i64::MAX),
                    NestedBlock::Map(b) => ("map", b, 0, 0),
                    NestedBlock::Group(b) => ("group", b, 0, 0),
                    NestedBlock::Optional(b) => ("list", b, 0, 1),
                };
                let mut t = Map::new();
                t.insert("nesting_mode".into(), json!(mode));
                t.insert("block".into(), block(inner));
                if min != 0 {
                    t.insert("min_items".into(), json!(min));
                }
                if max != 0 {
                    t.insert("max_items".into(), json!(max));
                }
                (name.clone(), Value::Object(t))
            })
            .collect();
        out.insert("block_types".into(), Value::Object(types));
    }
    describe(&mut out, &b.description);
    if b.deprecated {
        out.insert("deprecated".into(), json!(true));
    }
    Value::Object(out)
}

fn schema(s: &Schema) -> Value {
    json!({ "version": s.version, "block": block(&s.block) })
}

/// The whole document, pretty-printed with a final newline.
pub fn providers_schema_json() -> String {
    let provider = KupProvider::default();
    let mut diags = Diagnostics::default();
    let resources = provider.get_resources(&mut diags).unwrap_or_default();
    let data_sources = provider.get_data_sources(&mut diags).unwrap_or_default();
    let named = |kind: &str, schema_of: &dyn Fn(&mut Diagnostics) -> Option<Schema>| {
        (
            format!("kup_{kind}"),
            schema(&schema_of(&mut Diagnostics::default()).expect("schema")),
        )
    };
    let resource_schemas: Map<String, Value> = resources
        .iter()
        .map(|(k, r)| named(k, &|d| r.schema(d)))
        .collect();
    let data_source_schemas: Map<String, Value> = data_sources
        .iter()
        .map(|(k, r)| named(k, &|d| r.schema(d)))
        .collect();
    let doc = json!({
        "format_version": "1.0",
        "provider_schemas": {
            crate::SOURCE: {
                "provider": schema(&Provider::schema(&provider, &mut diags).expect("schema")),
                "resource_schemas": resource_schemas,
                "data_source_schemas": data_source_schemas,
            }
        }
    });
    let mut text = serde_json::to_string_pretty(&doc).expect("schema serializes");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Fails when the schema changed without regenerating the checked-in copy
    /// (`KUP_UPDATE_SCHEMAS=1 cargo test -p kup-terraform schema` rewrites it).
    #[test]
    fn checked_in_schema_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../schemas")
            .join(super::FILE);
        let current = super::providers_schema_json();
        if std::env::var_os("KUP_UPDATE_SCHEMAS").is_some() {
            std::fs::write(&path, &current).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == current,
            "{} is stale or missing; regenerate with `KUP_UPDATE_SCHEMAS=1 cargo test -p kup-terraform schema`",
            path.display()
        );
        let v: serde_json::Value = serde_json::from_str(&on_disk).unwrap();
        let cluster = &v["provider_schemas"][crate::SOURCE]["resource_schemas"]["kup_cluster"];
        assert_eq!(
            cluster["block"]["attributes"]["planned_steps"]["type"],
            serde_json::json!(["list", "string"])
        );
    }
}
