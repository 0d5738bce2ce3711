use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
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
    /// Runs a sheet as it stands, the way a student follows it, and reports
    /// every step that fails. Exits 1 when there are findings.
    Findings {
        /// The sheet, a Markdown file.
        sheet: std::path::PathBuf,
        /// A book whose `[preprocessor.workbook]` settings (repositories,
        /// Docker client, timeout) apply.
        #[arg(long)]
        book: Option<std::path::PathBuf>,
        /// The daemon belongs to this run alone, so "remove all" commands run.
        #[arg(long)]
        dedicated: bool,
    },
    /// Runs every step of the book afresh and compares the results with the
    /// store. Prints a diff per drifted step and exits 1 on drift; writes
    /// nothing.
    Check {
        /// The book's directory (with book.toml).
        book: std::path::PathBuf,
        /// The mdBook to build with.
        #[arg(long, default_value = "mdbook")]
        mdbook: String,
    },
    /// Runs every step of the book afresh and writes the results to the
    /// store, dropping records of steps that are gone.
    Accept {
        /// The book's directory (with book.toml).
        book: std::path::PathBuf,
        /// The mdBook to build with.
        #[arg(long, default_value = "mdbook")]
        mdbook: String,
    },
    /// Removes Docker objects that killed runs of this tool left behind; runs still going are not touched.
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

/// Keeps mdBook's stdout for the book alone: the real stream moves to a
/// private descriptor and fd 1 becomes /dev/null, so nothing a step does
/// (even writing to this process's fd 1 through /proc) can reach it.
fn take_stdout() -> Result<File> {
    // SAFETY: fcntl with F_DUPFD_CLOEXEC duplicates fd 1, which is open.
    let fd = unsafe { libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3) };
    anyhow::ensure!(
        fd >= 0,
        "duplicating stdout: {}",
        io::Error::last_os_error()
    );
    let null = OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .context("opening /dev/null")?;
    // SAFETY: both descriptors are open; dup2 replaces fd 1 atomically.
    anyhow::ensure!(
        unsafe { libc::dup2(null.as_raw_fd(), 1) } >= 0,
        "redirecting stdout: {}",
        io::Error::last_os_error()
    );
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
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
        Some(Command::Findings {
            sheet,
            book,
            dedicated,
        }) => {
            let (settings, root) = match &book {
                Some(dir) => {
                    let config =
                        mdbook_preprocessor::config::Config::from_disk(dir.join("book.toml"))
                            .with_context(|| {
                                format!("reading {}", dir.join("book.toml").display())
                            })?;
                    (
                        mdbook_workbook::config::Settings::from_book(&config)?,
                        dir.clone(),
                    )
                }
                None => (
                    mdbook_workbook::config::Settings::default(),
                    std::path::PathBuf::from("."),
                ),
            };
            let report = mdbook_workbook::findings::run(&sheet, &settings, &root, dedicated)?;
            let name = sheet.display().to_string();
            print!("{}", mdbook_workbook::findings::format(&name, &report));
            Ok(if report.findings.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Some(Command::Check { book, mdbook }) => {
            let ok = build_in_mode(&mdbook, &book, "check")?;
            eprintln!(
                "mdbook-workbook: {}",
                if ok {
                    "no drift: every step agrees with the store"
                } else {
                    "the check failed (see above): drift, failed steps, or a book that cannot be built; after drift, `mdbook-workbook accept` records the new results"
                }
            );
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Some(Command::Accept { book, mdbook }) => {
            let ok = build_in_mode(&mdbook, &book, "refresh")?;
            Ok(if ok {
                eprintln!(
                    "mdbook-workbook: recorded: the store of {} holds this run's results",
                    book.display()
                );
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "mdbook-workbook: the results are recorded, but some steps failed (see above)"
                );
                ExitCode::FAILURE
            })
        }
        Some(Command::Clean { docker: client }) => {
            let removed = docker::remove_session_objects(&client, None)?;
            eprintln!(
                "mdbook-workbook: removed {removed} Docker object(s) left by runs that ended"
            );
            Ok(ExitCode::SUCCESS)
        }
        None => {
            // If mdBook goes away (killed, or Ctrl-C), do not run a chapter
            // for nobody: end too. What the session created is then left
            // for `mdbook-workbook clean`.
            // SAFETY: prctl with PR_SET_PDEATHSIG only sets a signal number.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            }
            let out = take_stdout()?;
            // One read of the whole input: parsing from the locked stream
            // byte by byte costs more than the rest of a warm build.
            let mut input = Vec::new();
            io::stdin()
                .read_to_end(&mut input)
                .context("reading the book from mdBook on stdin")?;
            let (ctx, book) = mdbook_preprocessor::parse_input(input.as_slice())
                .context("reading the book from mdBook on stdin")?;
            let book = Workbook.run(&ctx, book)?;
            let mut out = io::BufWriter::new(out);
            serde_json::to_writer(&mut out, &book).context("writing the book to stdout")?;
            out.flush().context("writing the book to stdout")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Builds the book with the preprocessor in `mode`, into a temporary
/// directory so that the book's own output stays as it was. Returns whether
/// the build succeeded.
fn build_in_mode(mdbook: &str, book: &std::path::Path, mode: &str) -> Result<bool> {
    anyhow::ensure!(
        book.join("book.toml").is_file(),
        "{} has no book.toml; give the book's directory",
        book.display()
    );
    let dest = tempfile::Builder::new()
        .prefix("mdbook-workbook-")
        .tempdir()
        .context("creating a directory for the build")?;
    let mut command = std::process::Command::new(mdbook);
    command
        .arg("build")
        .arg(book)
        .arg("--dest-dir")
        .arg(dest.path())
        .env("WORKBOOK_MODE", mode)
        .stdin(std::process::Stdio::null());
    // The book's preprocessor is this very program, whatever PATH holds.
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(std::path::Path::to_path_buf))
    {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let joined = std::env::join_paths(std::iter::once(dir).chain(std::env::split_paths(&path)))
            .context("building PATH")?;
        command.env("PATH", joined);
    }
    // A chapter that cannot be read, a failed step or drift must show in
    // the exit status.
    command.env("WORKBOOK_ON_FAILURE", "fail");
    let status = command
        .status()
        .with_context(|| format!("running `{mdbook} build`; is mdBook installed?"))?;
    Ok(status.success())
}
