//! Command-line definitions. kup follows Terraform's conventions, including single-dash
//! long flags (`-auto-approve`, `-out=FILE`); [`normalize_args`] turns those into the
//! double-dash form clap parses, so both spellings work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "kup",
    version,
    about = "Plan and apply Kubernetes cluster upgrades the way Terraform changes infrastructure",
    long_about = None,
    disable_version_flag = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check that the configuration is valid (no cloud calls)
    Validate(ValidateArgs),
    /// Rewrite configuration files to the canonical format
    Fmt(FmtArgs),
    /// Show what an apply would do
    Plan(PlanArgs),
    /// Carry out a plan (from a directory, or a saved plan file)
    Apply(ApplyArgs),
    /// Show a saved plan
    Show(ShowArgs),
    /// Print the plan's steps and their order as a Graphviz DOT graph
    Graph(GraphArgs),
    /// Write configuration for the clusters a provider can see, as they run now
    Generate(GenerateArgs),
    /// Inspect the state file
    #[command(subcommand)]
    State(StateCommand),
    /// Remove a lock left behind by a process that died
    ForceUnlock(ForceUnlockArgs),
    /// Report what differs from the configuration and what changed since the last apply
    Drift(DriftArgs),
    /// Run the upgrade safety checks (removed APIs, health, add-ons, insights, support dates)
    Check(CheckArgs),
    /// Apply the plan to a simulated copy of the clusters first: predicted durations,
    /// blocked drains, capacity shortfalls
    Rehearse(RehearseArgs),
    /// Print kup's version
    Version(VersionArgs),
    /// Run the simulated cloud
    #[command(subcommand)]
    Sim(SimCommand),
    /// Print shell completions
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the JSON Schemas of kup's files and outputs (for maintainers)
    #[command(hide = true)]
    Schemas { dir: PathBuf },
}

#[derive(Args, Debug, Clone, Default)]
pub struct VarArgs {
    /// Set a variable: -var 'name=value' (repeatable)
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Read variables from a file (repeatable)
    #[arg(long = "var-file", value_name = "FILE")]
    pub var_files: Vec<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct StateArgs {
    /// Path of the state file [default: DIR/.kup/kup.state.json]
    #[arg(long = "state", value_name = "PATH")]
    pub state: Option<PathBuf>,
    /// How long to wait for the state lock (e.g. 30s)
    #[arg(long = "lock-timeout", value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub lock_timeout: std::time::Duration,
}

#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Machine-readable JSON output
    #[arg(long)]
    pub json: bool,
    /// Disable colour
    #[arg(long = "no-color")]
    pub no_color: bool,
}

#[derive(Args, Debug)]
pub struct ValidateArgs {
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub vars: VarArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct FmtArgs {
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Do not write; exit 3 when any file is not formatted
    #[arg(long)]
    pub check: bool,
    /// Print the changes as a diff
    #[arg(long)]
    pub diff: bool,
    #[arg(long = "no-color")]
    pub no_color: bool,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Save the plan to this file for `kup apply FILE`
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 0 when there is nothing to do, 2 when there are changes, 1 on error
    #[arg(long = "detailed-exitcode")]
    pub detailed_exitcode: bool,
    /// Limit the plan to a cluster or node group: cluster.NAME[.node_group.NAME] (repeatable)
    #[arg(long = "target", value_name = "ADDRESS")]
    pub targets: Vec<String>,
    /// Only compare the recorded state with what is running; plan no upgrade
    #[arg(long = "refresh-only")]
    pub refresh_only: bool,
    /// Use the two-minor reading of the kubelet skew policy everywhere
    #[arg(long = "strict-skew")]
    pub strict_skew: bool,
    /// Clusters refreshed at once
    #[arg(long, default_value_t = 10)]
    pub parallelism: usize,
    /// Print a Markdown summary for a pull-request comment instead of the text plan
    #[arg(long)]
    pub markdown: bool,
    #[command(flatten)]
    pub vars: VarArgs,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// A configuration directory, or a plan file written by `kup plan -out`
    #[arg(default_value = ".")]
    pub target: PathBuf,
    /// Do not ask for confirmation
    #[arg(long = "auto-approve")]
    pub auto_approve: bool,
    /// Steps (and clusters) worked on at once
    #[arg(long, default_value_t = 10)]
    pub parallelism: usize,
    /// Limit to a cluster or node group: cluster.NAME[.node_group.NAME] (repeatable)
    #[arg(long = "target", value_name = "ADDRESS")]
    pub targets: Vec<String>,
    /// Only record what is running in the state; change nothing
    #[arg(long = "refresh-only")]
    pub refresh_only: bool,
    #[arg(long = "strict-skew")]
    pub strict_skew: bool,
    /// Apply even when the plan predicts a PodDisruptionBudget will block a drain
    #[arg(long = "allow-blocked-drain")]
    pub allow_blocked_drain: bool,
    /// Refuse to start while a cluster is outside its maintenance window or inside a
    /// maintenance exclusion (GKE enforces them only on its own automatic upgrades)
    #[arg(long = "respect-maintenance-window")]
    pub respect_maintenance_window: bool,
    /// Undo unfinished blue/green replacements: uncordon blue, drain and delete green
    #[arg(long)]
    pub rollback: bool,
    /// Keep running through wave soaks and windows instead of stopping at the first
    /// wave that may not start yet
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub vars: VarArgs,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    pub plan_file: PathBuf,
    /// Print a Markdown summary for a pull-request comment
    #[arg(long)]
    pub markdown: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Subcommand, Debug)]
pub enum StateCommand {
    /// List the resources in the state
    List {
        #[arg(default_value = ".")]
        dir: PathBuf,
        #[arg(long = "state", value_name = "PATH")]
        state: Option<PathBuf>,
    },
    /// Show one resource from the state
    Show {
        /// e.g. cluster.prod or cluster.prod.node_group.general
        address: String,
        #[arg(long = "dir", default_value = ".")]
        dir: PathBuf,
        #[arg(long = "state", value_name = "PATH")]
        state: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct ForceUnlockArgs {
    pub lock_id: String,
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    #[arg(long = "state", value_name = "PATH")]
    pub state: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct DriftArgs {
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    #[arg(long, default_value_t = 10)]
    pub parallelism: usize,
    #[command(flatten)]
    pub vars: VarArgs,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    #[arg(long, default_value_t = 10)]
    pub parallelism: usize,
    /// Read the skew policy the strict way (as `plan -strict-skew`)
    #[arg(long = "strict-skew")]
    pub strict_skew: bool,
    /// Also print the notes (passing insights, support dates)
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub vars: VarArgs,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// The provider to read: eks, gke, aks (every cluster they list), k3s or rke2 (the
    /// cluster of a kubeconfig)
    #[arg(long)]
    pub provider: String,
    /// EKS: the region whose clusters to read
    #[arg(long)]
    pub region: Option<String>,
    /// EKS: the AWS profile
    #[arg(long)]
    pub profile: Option<String>,
    /// GKE: the project
    #[arg(long)]
    pub project: Option<String>,
    /// GKE: the location (region or zone)
    #[arg(long)]
    pub location: Option<String>,
    /// AKS: the subscription
    #[arg(long = "subscription-id")]
    pub subscription_id: Option<String>,
    /// AKS: the resource group
    #[arg(long = "resource-group")]
    pub resource_group: Option<String>,
    /// K3s/RKE2: the cluster's kubeconfig
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// K3s/RKE2: the kubeconfig context (default: its current context)
    #[arg(long)]
    pub context: Option<String>,
    /// K3s/RKE2: the cluster's name (default: the context, else the kubeconfig's file
    /// name); with -simulate, the simulated cluster to read
    #[arg(long)]
    pub name: Option<String>,
    /// Another API URL (a private endpoint, or `kup sim serve`)
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Read kup's simulator (in-process, from -world, unless -endpoint is given)
    #[arg(long)]
    pub simulate: bool,
    /// With -simulate: the world file
    #[arg(long)]
    pub world: Option<PathBuf>,
    /// The directory to write `<provider>.kup.hcl` into
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// Overwrite the file if it exists
    #[arg(long)]
    pub force: bool,
    /// Clusters read at once
    #[arg(long, default_value_t = 10)]
    pub parallelism: usize,
}

#[derive(Args, Debug)]
pub struct GraphArgs {
    /// A configuration directory (refreshed and planned) or a saved plan file
    #[arg(default_value = ".")]
    pub target: PathBuf,
    #[arg(long, default_value_t = 10)]
    pub parallelism: usize,
    #[command(flatten)]
    pub vars: VarArgs,
    #[command(flatten)]
    pub state: StateArgs,
}

#[derive(Args, Debug)]
pub struct RehearseArgs {
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Steps run at once, as for `kup apply`
    #[arg(long, default_value_t = 10)]
    pub parallelism: usize,
    /// Simulated seconds per real second in the rehearsal (higher is faster, but coarser:
    /// kup's own pauses between polls grow with it)
    #[arg(long, default_value_t = 600.0)]
    pub speed: f64,
    /// Write the timeline as a Gantt chart: FILE.svg, or FILE.html (chart and table)
    #[arg(long, value_name = "FILE")]
    pub graph: Option<PathBuf>,
    /// Read the skew policy the strict way (as `plan -strict-skew`)
    #[arg(long = "strict-skew")]
    pub strict_skew: bool,
    #[command(flatten)]
    pub vars: VarArgs,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct VersionArgs {
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum SimCommand {
    /// Serve a simulated world over the real cloud APIs until killed
    Serve(SimServeArgs),
}

#[derive(Args, Debug)]
pub struct SimServeArgs {
    /// World file (HCL or JSON); the simulator saves its state back to it
    #[arg(long)]
    pub world: PathBuf,
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    /// Simulated seconds per real second
    #[arg(long, default_value_t = 60.0)]
    pub speed: f64,
    /// Faults to inject, e.g. "throttle=0.2,error500=0.1,latency=20ms"
    #[arg(long)]
    pub faults: Option<String>,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e}; write durations like 30s, 5m or 1h"))
}

/// Accept Terraform's single-dash long flags: `-auto-approve` → `--auto-approve`,
/// `-out=plan` → `--out=plan`. Single letters (`-h`) and values are left alone.
pub fn normalize_args<I: IntoIterator<Item = String>>(args: I) -> Vec<String> {
    let mut out = Vec::new();
    let mut after_double_dash = false;
    for (i, a) in args.into_iter().enumerate() {
        if i == 0 || after_double_dash {
            out.push(a);
            continue;
        }
        if a == "--" {
            after_double_dash = true;
            out.push(a);
            continue;
        }
        let is_single_dash_long = a.starts_with('-')
            && !a.starts_with("--")
            && a.len() > 2
            && a.as_bytes()[1].is_ascii_alphabetic();
        if is_single_dash_long {
            out.push(format!("-{a}"));
        } else {
            out.push(a);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_dash_long_flags_become_double() {
        let got = normalize_args(
            [
                "kup",
                "apply",
                "-auto-approve",
                "-out=x",
                "-var",
                "a=-1",
                "-h",
                "--json",
                "dir",
            ]
            .map(String::from),
        );
        assert_eq!(
            got,
            [
                "kup",
                "apply",
                "--auto-approve",
                "--out=x",
                "--var",
                "a=-1",
                "-h",
                "--json",
                "dir"
            ]
        );
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
