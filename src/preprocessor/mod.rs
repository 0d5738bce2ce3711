//! The mdBook side: reads the book, runs each chapter, and hands the book
//! back with transcripts in place.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use mdbook_preprocessor::book::Book;
use mdbook_preprocessor::{Preprocessor, PreprocessorContext};

use crate::config::{Mode, OnFailure, Settings};
use crate::record::Record;
use crate::render::{self, Templates};
use crate::script::{self, StepKind};
use crate::session::{Report, Resume, Session};
use crate::store::key::Files;
use crate::store::normalize::{Comparator, Sanitiser};
use crate::store::{ChapterStore, Entry, Store};
use crate::{chapter, docker, drift, plan};

mod pages;
use pages::{not_run, page_with_errors, shown_from_store};

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
        let store = Store::new(&ctx.root, &src, &settings.store)?;

        let mut failures = Vec::new();
        let fatal = std::cell::RefCell::new(Vec::new());
        let mut chapters = Vec::new();
        book.for_each_chapter_mut(|ch| {
            let Some(path) = ch.source_path.clone().or_else(|| ch.path.clone()) else {
                return;
            };
            let name = path.display().to_string();
            chapters.push(name.clone());
            let dir = src.join(path.parent().unwrap_or(Path::new("")));
            let shared = Shared {
                root: &ctx.root,
                settings: &settings,
                templates: &templates,
                store: &store,
                fatal: &fatal,
            };
            match run_chapter(&name, &ch.content, &dir, &shared) {
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

        failures.extend(orphans(&store, &chapters, settings.mode));
        let fatal = fatal.into_inner();
        if !fatal.is_empty() {
            bail!(
                "{} error(s) that fail the build whatever `on-failure` says:\n{}",
                fatal.len(),
                fatal.join("\n")
            );
        }
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

/// What every chapter of a book shares.
pub struct Shared<'a> {
    pub root: &'a Path,
    pub settings: &'a Settings,
    pub templates: &'a Templates,
    pub store: &'a Store,
    /// Errors that fail the build whatever `on-failure` says: the store
    /// cannot be read or written, or a strict frozen build has no record.
    pub fatal: &'a std::cell::RefCell<Vec<String>>,
}

/// Runs one chapter, or shows it from the store, and renders it. Returns
/// the new content and the problems found, each naming the chapter and
/// line.
pub fn run_chapter(
    name: &str,
    content: &str,
    dir: &Path,
    book: &Shared<'_>,
) -> Result<(String, Vec<String>)> {
    let (settings, templates) = (book.settings, book.templates);
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

    // One build at a time reads, runs and writes a chapter's records.
    let _lock = match book.store.lock() {
        Ok(lock) => lock,
        Err(e) => {
            let why = format!("{name}: {e:#}");
            book.fatal.borrow_mut().push(why.clone());
            return not_run(&parsed, &script, vec![why], templates);
        }
    };
    let stored = match book.store.load(name) {
        Ok(stored) => stored,
        // Never run over a store that cannot be read: that would replace it.
        Err(e) => {
            book.fatal.borrow_mut().push(format!("{e:#}"));
            return not_run(&parsed, &script, vec![format!("{e:#}")], templates);
        }
    };
    // Rules added since the records were made apply to them too, on the
    // page and, where the store is written, in it.
    let sanitiser = Sanitiser::new(&settings.sanitise);
    let mut stored = stored;
    if let Some(store) = stored.as_mut() {
        let mut changed = false;
        for entry in &mut store.steps {
            changed |= sanitiser.apply(&mut entry.record);
        }
        if changed && settings.writes_store() {
            match book.store.save(store) {
                Ok(path) => tracing::info!("{name}: sanitise rules applied to {}", path.display()),
                Err(e) => book
                    .fatal
                    .borrow_mut()
                    .push(format!("{name}: the records could not be written: {e:#}")),
            }
        }
    }
    let mut files = Files::new(book.root);
    let mode = settings.mode;
    let plan = plan::plan(
        &script,
        stored.as_ref(),
        settings,
        &mut files,
        mode == Mode::Auto,
    );
    let all_fresh = plan.fresh() == script.steps.len();
    tracing::debug!(
        "{name}: {} of {} records valid",
        plan.fresh(),
        script.steps.len()
    );

    let from_store = |errors: Vec<String>| {
        shown_from_store(&parsed, &script, stored.as_ref(), &plan, errors, templates)
    };
    // A chapter that cannot run now keeps showing its records, if it has
    // any, with the reason at its top.
    let cannot_run = |errors: Vec<String>| {
        if mode == Mode::Auto && stored.is_some() {
            from_store(errors)
        } else {
            not_run(&parsed, &script, errors, templates)
        }
    };
    match mode {
        Mode::Frozen => {
            let stale = script.steps.len() - plan.fresh();
            if stale > 0 && settings.strict {
                let why = format!(
                    "{name}: {stale} step(s) from line {} on have no valid record, and the mode is frozen with strict = true; run the chapter against a daemon (mode \"auto\"), or `mdbook-workbook accept`",
                    script.steps[plan.fresh()].line
                );
                book.fatal.borrow_mut().push(why.clone());
                return from_store(vec![why]);
            }
            return from_store(Vec::new());
        }
        Mode::Auto if all_fresh && stored.is_some() => return from_store(Vec::new()),
        _ => {}
    }

    let uses_docker = script
        .steps
        .iter()
        .any(|s| matches!(&s.kind, StepKind::Command(c) if c.run.contains("docker")));
    // The daemon first: without one (a student's machine) the frozen
    // records stand, whatever else would keep the chapter from running.
    let mut errors = Vec::new();
    if uses_docker && let Err(e) = docker::probe(&settings.docker) {
        if mode == Mode::Auto && stored.is_some() {
            // Students and most CI runners have no daemon: the frozen
            // records stand, marked where they are stale.
            tracing::warn!(
                "{name}: {e:#}; showing the stored records ({} of {} still valid)",
                plan.fresh(),
                script.steps.len()
            );
            return from_store(Vec::new());
        }
        errors.push(format!("{name}: {e:#}"));
    }
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
    if !errors.is_empty() {
        return cannot_run(errors);
    }

    let checkpoints = plan::checkpoint_dir(book.root, name);
    let (mut from, restore) = match mode {
        Mode::Auto => plan::resume_point(&plan, checkpoints.as_deref()),
        _ => (0, None),
    };
    // A check writes nothing, checkpoints included.
    let saved = checkpoints
        .as_ref()
        .filter(|_| mode != Mode::Check)
        .and_then(|dir| {
            std::fs::create_dir_all(dir).ok()?;
            tempfile::Builder::new().prefix("run-").tempdir_in(dir).ok()
        });
    let save = saved.as_ref().map(|d| d.path());
    let resume = Resume {
        from,
        restore: restore.as_deref(),
        save,
    };

    tracing::info!(
        "{name}: running steps {}..{} of {}{}",
        from + 1,
        script.steps.len(),
        script.steps.len(),
        match (mode, plan.fresh()) {
            (Mode::Auto, 0) => String::new(),
            (Mode::Auto, n) => format!(" ({n} leading records valid)"),
            (Mode::Check, _) => " to compare with the store".to_string(),
            _ => " (mode \"refresh\")".to_string(),
        }
    );
    let started = std::time::Instant::now();
    let attempt = |resume: Resume<'_>| -> std::result::Result<Report, String> {
        let session = Session::start(settings, book.root, uses_docker)
            .map_err(|e| format!("{name}: the chapter's session could not start: {e:#}"))?;
        session
            .run(&script, settings, name, resume)
            .map_err(|e| format!("{name}: {e:#}"))
    };
    let mut report = match attempt(resume) {
        Ok(report) => report,
        // A checkpoint that cannot be restored costs time, not the run.
        Err(e) if from > 0 => {
            tracing::warn!("{e}; running the chapter from its first step instead");
            from = 0;
            match attempt(Resume {
                from: 0,
                restore: None,
                save,
            }) {
                Ok(report) => report,
                Err(e) => return cannot_run(vec![e]),
            }
        }
        Err(e) => return cannot_run(vec![e]),
    };
    tracing::info!(
        "{name}: ran {} steps in {:.1} s",
        report.records.len(),
        started.elapsed().as_secs_f64()
    );

    for record in &mut report.records {
        sanitiser.apply(record);
        record.duration = crate::record::seconds::round(record.duration);
        for mark in &mut record.output.step_marks {
            *mark = (*mark * 1000.0).round() / 1000.0;
        }
    }
    let kept: Vec<Entry> = stored
        .as_ref()
        .map(|s| s.steps[..from].to_vec())
        .unwrap_or_default();
    // Claims about build times compare with earlier builds, which a resumed
    // run has only as records.
    let mut all: Vec<Record> = kept.iter().map(|e| e.record.clone()).collect();
    all.append(&mut report.records);
    crate::timing::check(&script, &mut all, from);
    report.records = all.split_off(kept.len());

    let now = crate::store::utc_now();
    let new_entries = plan::entries(&plan, &script, from, &report, &mut files, &now);

    let mut problems: Vec<String> = report
        .records
        .iter()
        .filter_map(|r| {
            r.problem
                .as_ref()
                .map(|p| format!("{name}:{}: `{}`: {p}", r.line, r.command))
        })
        .collect();

    if mode == Mode::Check {
        problems.extend(drift::report(
            name,
            stored.as_ref(),
            &new_entries,
            &Comparator::new(&settings.compare),
        ));
    } else if settings.writes_store() {
        let mut stand_ins: Vec<String> = stored
            .as_ref()
            .filter(|_| from > 0)
            .map(|s| s.stand_ins.clone())
            .unwrap_or_default();
        stand_ins.extend(report.stand_ins.iter().cloned());
        stand_ins.sort();
        stand_ins.dedup();
        let mut steps = kept.clone();
        steps.extend(new_entries.iter().cloned());
        let chapter_store = ChapterStore {
            format: crate::store::FORMAT,
            chapter: name.to_string(),
            tool: format!("mdbook-workbook {}", env!("CARGO_PKG_VERSION")),
            engine: report.engine.clone(),
            stand_ins,
            steps,
        };
        match book.store.save(&chapter_store) {
            Ok(path) => tracing::info!("{name}: records written to {}", path.display()),
            Err(e) => {
                let why = format!("{name}: the records could not be written: {e:#}");
                tracing::error!("{why}");
                book.fatal.borrow_mut().push(why);
            }
        }
    } else {
        tracing::info!(
            "{name}: the store is not written (CI=true and mode \"auto\"); `mdbook-workbook accept` records the results"
        );
    }
    if let (Some(dir), Some(saved)) = (&checkpoints, &saved) {
        let chain: Vec<String> = kept
            .iter()
            .chain(new_entries.iter())
            .map(|e| e.key.clone())
            .collect();
        plan::keep_checkpoints(dir, saved.path(), &report, &new_entries, &chain);
    }

    // The page shows the valid records that were kept and the new ones.
    let mut records: Vec<Record> = kept.iter().map(|e| e.record.clone()).collect();
    let mut verified: Vec<String> = kept.iter().map(|e| e.verified.clone()).collect();
    let mut images: Vec<_> = kept.iter().map(|e| e.images.clone()).collect();
    images.append(&mut report.images);
    report.images = images;
    verified.push(now);
    records.append(&mut report.records);
    verified.sort();
    verified.dedup();
    report.records = records;
    report.verified = verified;
    let run = render::Run {
        report: Some(&report),
        errors: &[],
    };
    Ok((
        render::chapter(&parsed, Some(&script), run, templates)?,
        problems,
    ))
}

/// Store files of chapters the book no longer has: removed by `refresh`
/// (what `accept` runs), a problem for `check`, a warning otherwise.
fn orphans(store: &Store, chapters: &[String], mode: Mode) -> Vec<String> {
    let mut problems = Vec::new();
    for (file, chapter) in store.files() {
        if chapters.contains(&chapter) {
            continue;
        }
        let what = format!(
            "{}: records of `{chapter}`, which the book no longer has",
            file.display()
        );
        match mode {
            Mode::Refresh => match std::fs::remove_file(&file) {
                Ok(()) => tracing::info!("{what}: removed"),
                Err(e) => problems.push(format!("{what}; removing it failed: {e}")),
            },
            Mode::Check => {
                eprintln!("drift: {what}");
                problems.push(format!("{what}; `mdbook-workbook accept` removes it"));
            }
            Mode::Auto | Mode::Frozen => {
                tracing::warn!("{what}; `mdbook-workbook accept` removes it")
            }
        }
    }
    problems
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
