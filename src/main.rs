//! The `kup` binary: parses the command line and hands over to a command module.

// Every line kup prints passes the redactor (kup_engine::redact): these shadow the standard
// macros in every module of the binary, so no output path can forget it.
macro_rules! print {
    ($($arg:tt)*) => {
        ::std::print!("{}", ::kup_engine::redact::redact(&::std::format!($($arg)*)))
    };
}
macro_rules! println {
    () => { ::std::println!() };
    ($($arg:tt)*) => {
        ::std::println!("{}", ::kup_engine::redact::redact(&::std::format!($($arg)*)))
    };
}
#[allow(unused_macros)]
macro_rules! eprint {
    ($($arg:tt)*) => {
        ::std::eprint!("{}", ::kup_engine::redact::redact(&::std::format!($($arg)*)))
    };
}
macro_rules! eprintln {
    () => { ::std::eprintln!() };
    ($($arg:tt)*) => {
        ::std::eprintln!("{}", ::kup_engine::redact::redact(&::std::format!($($arg)*)))
    };
}

mod cli;
mod commands;
mod failure;
mod interrupt;
mod rehearse;
mod render;
mod workspace;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

pub use cli::VarArgs;
use cli::{Cli, Command, SimCommand};

fn main() -> ExitCode {
    // aws-sdk and kube are built on one rustls; pick its crypto provider once, up front.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // Before anything can log or print: the SDKs read these credentials themselves, and
    // their debug logs (or an error) could echo one.
    let env: Vec<(String, String)> = std::env::vars().collect();
    kup_engine::redact::register_credentials(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KUP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_writer(|| RedactingWriter(std::io::stderr()))
        .init();

    let cli = Cli::parse_from(cli::normalize_args(std::env::args()));
    let json = wants_json(&cli.command);
    if no_color(&cli.command) {
        console::set_colors_enabled(false);
        console::set_colors_enabled_stderr(false);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        interrupt::install();
        run(cli.command).await
    });
    match result {
        Ok(code) => code,
        Err(f) => f.report(json),
    }
}

async fn run(command: Command) -> failure::Result<ExitCode> {
    match command {
        Command::Validate(a) => commands::validate::run(a),
        Command::Fmt(a) => commands::fmt::run(a),
        Command::Plan(a) => commands::plan::run(a).await,
        Command::Apply(a) => commands::apply::run(a).await,
        Command::Show(a) => commands::show::run(a),
        Command::Graph(a) => commands::graph::run(a).await,
        Command::Generate(a) => commands::generate::run(a).await,
        Command::State(c) => commands::state::run(c),
        Command::ForceUnlock(a) => commands::state::force_unlock_cmd(a),
        Command::Drift(a) => commands::drift::run(a).await,
        Command::Check(a) => commands::check::run(a).await,
        Command::Rehearse(a) => commands::rehearse::run(a).await,
        Command::Version(a) => {
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "kup_version": env!("CARGO_PKG_VERSION"),
                        "providers": kup_provider::compiled_kinds(),
                    })
                );
            } else {
                println!(
                    "kup v{} (providers: {})",
                    env!("CARGO_PKG_VERSION"),
                    kup_provider::compiled_kinds().join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sim(SimCommand::Serve(a)) => commands::sim::serve(a).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "kup", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Schemas { dir } => kup_engine::schemas::write_all(&dir)
            .map(|_| ExitCode::SUCCESS)
            .map_err(|e| failure::Failure::Message(e.to_string())),
    }
}

fn wants_json(c: &Command) -> bool {
    match c {
        Command::Validate(a) => a.output.json,
        Command::Plan(a) => a.output.json,
        Command::Apply(a) => a.output.json,
        Command::Show(a) => a.output.json,
        Command::Drift(a) => a.output.json,
        Command::Check(a) => a.output.json,
        Command::Rehearse(a) => a.output.json,
        _ => false,
    }
}

fn no_color(c: &Command) -> bool {
    match c {
        Command::Validate(a) => a.output.no_color,
        Command::Plan(a) => a.output.no_color,
        Command::Apply(a) => a.output.no_color,
        Command::Show(a) => a.output.no_color,
        Command::Drift(a) => a.output.no_color,
        Command::Check(a) => a.output.no_color,
        Command::Rehearse(a) => a.output.no_color,
        Command::Fmt(a) => a.no_color,
        _ => false,
    }
}

/// The log's writer: each event is formatted whole and written at once, so a secret is
/// never split across two writes and can be replaced before it reaches stderr.
struct RedactingWriter<W>(W);

impl<W: std::io::Write> std::io::Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(&kup_engine::redact::redact_bytes(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
