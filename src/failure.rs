//! How commands fail: a message for people, and JSON for `-json`.

use std::process::ExitCode;

#[derive(Debug)]
pub enum Failure {
    /// Configuration diagnostics, already rendered with file:line:col and snippets.
    Diagnostics {
        rendered: String,
        json: serde_json::Value,
    },
    /// Any other error, one or more lines.
    Message(String),
}

impl Failure {
    pub fn report(&self, json: bool) -> ExitCode {
        if json {
            let v = match self {
                Failure::Diagnostics { json, .. } => serde_json::json!({ "diagnostics": json }),
                Failure::Message(m) => serde_json::json!({
                    "diagnostics": [{ "severity": "error", "summary": m }]
                }),
            };
            println!("{v}");
        } else {
            match self {
                Failure::Diagnostics { rendered, .. } => eprintln!("{}", rendered.trim_end()),
                Failure::Message(m) => {
                    let style = console::Style::new().red().bold().for_stderr();
                    eprintln!("{} {m}", style.apply_to("Error:"));
                }
            }
        }
        ExitCode::from(1)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Message(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Failure>;
