//! The mdBook side: reads the book, runs each chapter, and hands the book
//! back with transcripts in place.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use mdbook_preprocessor::book::Book;
use mdbook_preprocessor::{Preprocessor, PreprocessorContext};

use crate::config::{OnFailure, Settings};
use crate::render::{self, Templates};
use crate::script::{self, StepKind};
use crate::session::Session;
use crate::{chapter, docker};

/// The mdBook versions this preprocessor understands.
pub const SUPPORTED_MDBOOK: &str = ">=0.5.0, <0.6.0";

/// The `workbook` preprocessor.
pub struct Workbook;

impl Preprocessor for Workbook {
    fn name(&self) -> &str {
        "workbook"
    }

    fn run(&self, ctx: &PreprocessorContext, mut book: Book) -> Result<Book> {
        check_version(&ctx.mdbook_version)?;
        let settings = Settings::from_book(&ctx.config)?;
        let templates = Templates::load(
            settings
                .templates
                .as_ref()
                .map(|t| ctx.root.join(t))
                .as_deref(),
        )?;
        let src = ctx.root.join(&ctx.config.book.src);

        let mut failures = Vec::new();
        book.for_each_chapter_mut(|ch| {
            let Some(path) = ch.source_path.clone().or_else(|| ch.path.clone()) else {
                return;
            };
            let name = path.display().to_string();
            let dir = src.join(path.parent().unwrap_or(Path::new("")));
            match run_chapter(&name, &ch.content, &dir, &ctx.root, &settings, &templates) {
                Ok((content, mut problems)) => {
                    ch.content = content;
                    failures.append(&mut problems);
                }
                Err(e) => {
                    tracing::error!("{e:#}");
                    failures.push(format!("{e:#}"));
                }
            }
        });

        if !failures.is_empty() && settings.on_failure() == OnFailure::Fail {
            bail!(
                "{} problem(s) in the book (on-failure = \"fail\"):\n{}",
                failures.len(),
                failures.join("\n")
            );
        }
        Ok(book)
    }

    fn supports_renderer(&self, _renderer: &str) -> Result<bool> {
        Ok(true)
    }
}

/// Refuses an mdBook outside the supported range.
pub fn check_version(version: &str) -> Result<()> {
    let range = semver::VersionReq::parse(SUPPORTED_MDBOOK).expect("static version range");
    let parsed = semver::Version::parse(version);
    match parsed {
        Ok(v) if range.matches(&v) => Ok(()),
        _ => bail!(
            "mdbook-workbook supports mdBook {SUPPORTED_MDBOOK}, but this book is built by mdBook {version}; install a supported mdBook (cargo install mdbook --version '^0.5')"
        ),
    }
}

/// Runs one chapter and renders it. Returns the new content and the
/// problems found, each naming the chapter and line.
pub fn run_chapter(
    name: &str,
    content: &str,
    dir: &Path,
    root: &Path,
    settings: &Settings,
    templates: &Templates,
) -> Result<(String, Vec<String>)> {
    let parsed = match chapter::parse(name, content) {
        Ok(parsed) => parsed,
        Err(e) => return page_with_errors(name, content, e, templates),
    };
    let missing = |src: &str| is_missing_image(dir, src);
    let script = match script::build(&parsed, &missing) {
        Ok(script) => script,
        Err(e) => return page_with_errors(name, content, e, templates),
    };

    if script.steps.is_empty() {
        let run = render::Run {
            report: None,
            errors: &[],
        };
        return Ok((
            render::chapter(&parsed, Some(&script), run, templates)?,
            Vec::new(),
        ));
    }

    let mut errors = Vec::new();
    if !settings.dedicated_daemon {
        for step in &script.steps {
            // A file a block writes may be run as a script later.
            let text = match &step.kind {
                StepKind::Command(c) => c.run.clone(),
                StepKind::Write { content, .. } => content.clone(),
                StepKind::Edit { lines, .. } => lines.join("\n"),
                _ => continue,
            };
            if let Some(why) = text
                .lines()
                .find_map(script::guard::acts_on_foreign_objects)
            {
                errors.push(format!("{name}:{}: refused: {why}, so the chapter does not run. Skip this command with `<!-- workbook: skip.K=\"why\" -->` above its block, or run the chapter on a daemon that nothing else uses (CI's, or a fresh machine's): `dedicated-daemon = true` under [preprocessor.workbook] in book.toml, or WORKBOOK_DEDICATED_DAEMON=1", step.line));
            }
        }
    }
    let uses_docker = script
        .steps
        .iter()
        .any(|s| matches!(&s.kind, StepKind::Command(c) if c.run.contains("docker")));
    if errors.is_empty()
        && uses_docker
        && let Err(e) = docker::probe(&settings.docker)
    {
        errors.push(format!("{name}: {e:#}"));
    }
    if !errors.is_empty() {
        return not_run(&parsed, &script, errors, templates);
    }

    let commands = script
        .steps
        .iter()
        .filter(|s| matches!(s.kind, StepKind::Command(_)))
        .count();
    tracing::info!("{name}: running {commands} commands");
    let started = std::time::Instant::now();
    let session = match Session::start(settings, root, uses_docker) {
        Ok(session) => session,
        Err(e) => {
            let errors = vec![format!(
                "{name}: the chapter's session could not start: {e:#}"
            )];
            return not_run(&parsed, &script, errors, templates);
        }
    };
    let report = session.run(&script, settings, name);
    tracing::info!("{name}: done in {:.1} s", started.elapsed().as_secs_f64());

    let problems: Vec<String> = report
        .records
        .iter()
        .filter_map(|r| {
            r.problem
                .as_ref()
                .map(|p| format!("{name}:{}: `{}`: {p}", r.line, r.command))
        })
        .collect();
    let run = render::Run {
        report: Some(&report),
        errors: &[],
    };
    Ok((
        render::chapter(&parsed, Some(&script), run, templates)?,
        problems,
    ))
}

/// The chapter with the reasons it did not run at its top.
fn not_run(
    parsed: &chapter::Chapter,
    script: &script::Script,
    errors: Vec<String>,
    templates: &Templates,
) -> Result<(String, Vec<String>)> {
    for e in &errors {
        tracing::error!("{e}");
    }
    let run = render::Run {
        report: None,
        errors: &errors,
    };
    Ok((
        render::chapter(parsed, Some(script), run, templates)?,
        errors,
    ))
}

/// A page that shows why it could not run, followed by the original.
fn page_with_errors(
    name: &str,
    content: &str,
    error: anyhow::Error,
    templates: &Templates,
) -> Result<(String, Vec<String>)> {
    let errors: Vec<String> = format!("{error:#}").lines().map(str::to_string).collect();
    for e in &errors {
        tracing::error!("{e}");
    }
    let empty = chapter::parse(name, "")?;
    let run = render::Run {
        report: None,
        errors: &errors,
    };
    let top = render::chapter(&empty, None, run, templates)?;
    Ok((format!("{top}{content}"), errors))
}

/// Whether an image is a local file the book does not have.
fn is_missing_image(dir: &Path, src: &str) -> bool {
    if src.contains("://") || src.starts_with("data:") || src.starts_with('/') {
        return false;
    }
    let path: PathBuf = dir.join(src.split(['#', '?']).next().unwrap_or(src));
    !path.exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_range_is_enforced() {
        for ok in ["0.5.0", "0.5.4", "0.5.10-beta.1"] {
            assert!(check_version(ok).is_ok() || ok.contains('-'), "{ok}");
        }
        for bad in ["0.4.52", "0.6.0", "1.0.0", "garbage"] {
            let err = check_version(bad).unwrap_err().to_string();
            assert!(
                err.contains(">=0.5.0, <0.6.0") && err.contains(bad),
                "{err}"
            );
        }
    }
}
