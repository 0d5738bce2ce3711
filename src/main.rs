use std::io;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use mdbook_preprocessor::Preprocessor;
use mdbook_workbook::docker;
use mdbook_workbook::preprocessor::Workbook;

/// Runs the shell blocks of an exercise sheet against a real Docker daemon
/// and puts what really happened into the book. mdBook calls it as the
/// `workbook` preprocessor.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Tells mdBook whether a renderer is supported (always: the output is Markdown).
    Supports { renderer: String },
    /// Removes Docker objects that runs of this tool left behind (after a crash or kill).
    Clean {
        /// The Docker client to use.
        #[arg(long, default_value = "docker")]
        docker: String,
    },
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MDBOOK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_target(false)
        .init();

    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mdbook-workbook: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Some(Command::Supports { renderer }) => {
            let supported = Workbook.supports_renderer(&renderer)?;
            Ok(if supported {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Some(Command::Clean { docker: client }) => {
            let removed = docker::remove_labelled(&client, docker::SESSION_LABEL, true)?;
            eprintln!("mdbook-workbook: removed {removed} Docker object(s) left by earlier runs");
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let (ctx, book) = mdbook_preprocessor::parse_input(io::stdin())
                .context("reading the book from mdBook on stdin")?;
            let book = Workbook.run(&ctx, book)?;
            serde_json::to_writer(io::stdout(), &book).context("writing the book to stdout")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
