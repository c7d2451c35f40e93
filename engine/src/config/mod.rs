//! The configuration layer: reads `*.kup.hcl` files and variable files, evaluates variables,
//! locals and functions, and produces a typed [`Desired`]. Every problem becomes a
//! [`Diagnostic`] with `file:line:col`, a summary and, where we can tell, a hint saying what
//! would be right.
//!
//! Files, read from one directory (not recursively):
//! - `*.kup.hcl`: configuration, read in sorted name order;
//! - `kup.kupvars` and `*.auto.kupvars`: variable values, loaded automatically;
//! - `-var-file F` and `-var k=v` from the command line, and `KUP_VAR_<name>` in the environment.
//!
//! Variable precedence, lowest first (as Terraform): the variable's default <
//! `KUP_VAR_<name>` < `kup.kupvars` < `*.auto.kupvars` (lexical order) < `-var-file` (in
//! order) < `-var` (in order). Later wins.
//!
//! Unlike Terraform, which only warns, a variables file that assigns a variable no
//! configuration file declares is an error: in a tool that changes production clusters, a
//! silently ignored value (usually a typo) is worse than a refusal.

// `format_source` returns a `Diagnostic` by value (the CLI's API); the helpers follow suit.
#![allow(clippy::result_large_err)]

mod diag;
mod eval;
mod fmt;
mod load;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use diag::{Diagnostic, Diagnostics, Severity};
pub use fmt::format_source;
pub use load::{check_host, check_selector};

use crate::model::{BackendSpec, Desired};

/// Where variable values come from besides the configuration directory.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// `-var k=v`, in command-line order. The value is parsed as an HCL expression when it
    /// parses as a literal (numbers, bools, lists, maps, quoted strings); otherwise it is
    /// taken as a string, like Terraform. For a variable of type `string` the text is
    /// always taken as is.
    pub vars: Vec<String>,
    /// `-var-file F`, in command-line order. Paths are relative to the working directory.
    /// (`-var` and `-var-file` arrive as separate lists, so every `-var-file` is applied
    /// before every `-var`.)
    pub var_files: Vec<PathBuf>,
    /// The process environment; `KUP_VAR_<name>` entries are variable values.
    pub env: Vec<(String, String)>,
}

/// A loaded, evaluated and checked configuration.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub desired: Desired,
    /// Where the state lives (`backend` block; local files by default).
    pub backend: BackendSpec,
    /// Absolute configuration directory.
    pub dir: PathBuf,
    /// sha256 (hex) over the sorted file names and bytes of every configuration and
    /// variables file read, plus the `-var` values and `KUP_VAR_*` values. It changes iff
    /// one of those inputs changes.
    pub config_hash: String,
    /// Every file read, keyed by the path shown in diagnostics.
    pub sources: Vec<(PathBuf, String)>,
    /// Warnings found while loading (the load succeeded).
    pub warnings: Vec<Diagnostic>,
}

/// Load every `*.kup.hcl` in `dir` with variables from `opts`.
pub fn load_dir(dir: &Path, opts: &LoadOptions) -> Result<Loaded, Diagnostics> {
    load::load_dir(dir, opts)
}

/// Only the `backend` block of the `*.kup.hcl` files in `dir` (its values are literals),
/// for commands that need the state but not the evaluated configuration.
pub fn load_backend(dir: &Path) -> Result<BackendSpec, Diagnostics> {
    load::load_backend(dir)
}
