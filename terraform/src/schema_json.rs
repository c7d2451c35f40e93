//! placeholder
pub fn providers_schema_json() -> String {
    String::new()
}
