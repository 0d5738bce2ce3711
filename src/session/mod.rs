//! Running a chapter's script in a session: a fresh workspace, one shell,
//! offline clones of the sheet's repositories, and a Docker scope that
//! labels what the session creates and removes it at the end.

pub mod capture;
pub mod checkpoint;
pub mod http;
pub mod pty;
mod sees;
mod step;
pub mod terminal;
mod workspace;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config::Settings;
use crate::docker;
use crate::record::Record;
use crate::script::{Script, StepKind};
use terminal::Shell;
use workspace::offline_repositories;

/// What a session found out besides the records.
#[derive(Debug, Default)]
pub struct Report {
    /// The records of the steps that ran, in order.
    pub records: Vec<Record>,
    /// For each record, the exercise paths (relative to the book's root)
    /// its step could see.
    pub sees: Vec<Vec<String>>,
    /// For each record, the images from outside the chapter its step used,
    /// with their ids.
    pub images: Vec<BTreeMap<String, String>>,
    /// Steps after which a checkpoint was saved.
    pub checkpoints: Vec<usize>,
    /// Steps whose records come from the store but are stale: shown, but
    /// not verified again.
    pub stale: BTreeSet<usize>,
    /// When the records were made, as `YYYY-MM-DD HH:MM UTC`.
    pub verified: Vec<String>,
    /// Steps with no record at all: shown from a store that has none valid
    /// for them.
    pub missing: BTreeSet<usize>,
    pub engine: docker::Engine,
    /// Stand-in images seen on the daemon during the run.
    pub stand_ins: BTreeSet<String>,
}

/// Where a run starts, and where it saves checkpoints.
#[derive(Debug, Default, Clone, Copy)]
pub struct Resume<'a> {
    /// The first step to run.
    pub from: usize,
    /// The checkpoint (without extension) that holds the state before
    /// `from`; required when `from` is not 0.
    pub restore: Option<&'a Path>,
    /// A directory to save checkpoints in, as `after-<step>`.
    pub save: Option<&'a Path>,
}

/// A chapter's workspace and shell.
pub struct Session {
    // The workspace is deleted when the session is dropped.
    _dir: tempfile::TempDir,
    home: PathBuf,
    ctl: PathBuf,
    shell: Shell,
    /// Named terminals, opened on first use.
    terminals: BTreeMap<String, pty::Terminal>,
    /// The environment of every shell and terminal of the session.
    env: Vec<(String, String)>,
    /// Placeholders whose values were taken from the session.
    bound: BTreeMap<String, String>,
    id: String,
    docker: String,
    /// The book's root, against which exercise paths are resolved.
    root: PathBuf,
    /// The repositories the book serves: URL to directory (relative to the
    /// book's root).
    repos: BTreeMap<String, String>,
    /// The shell's state before the first step, for checkpoints.
    baseline: Option<String>,
    /// Images from outside the chapter that its steps used so far.
    used_images: BTreeSet<String>,
    /// Whether the chapter talks to Docker at all; if not, no daemon is needed.
    uses_docker: bool,
    cleaned: bool,
}

impl Session {
    /// Creates the workspace, the offline repositories and the shell.
    /// `book_root` resolves the repository paths of the settings.
    pub fn start(settings: &Settings, book_root: &Path, uses_docker: bool) -> Result<Session> {
        let dir = tempfile::Builder::new()
            .prefix("mdbook-workbook-")
            .tempdir()
            .context("creating the workspace")?;
        let home = dir.path().join("home");
        let ctl = dir.path().join("ctl");
        let bin = dir.path().join("bin");
        for d in [&home, &ctl, &bin] {
            std::fs::create_dir(d).with_context(|| format!("creating {}", d.display()))?;
        }

        let id = dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let docker = resolve(&settings.docker).unwrap_or_else(|| settings.docker.clone());
        docker::write_wrapper(&bin, &docker, &id)?;

        let mut env = vec![
            ("HOME".to_string(), home.to_string_lossy().to_string()),
            (
                "PATH".to_string(),
                format!(
                    "{}:{}",
                    bin.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            ),
            ("TERM".to_string(), "dumb".to_string()),
            ("GIT_CONFIG_NOSYSTEM".to_string(), "1".to_string()),
            ("GIT_TERMINAL_PROMPT".to_string(), "0".to_string()),
            ("DOCKER_CLI_HINTS".to_string(), "false".to_string()),
            // BuildKit's plain progress can be read step by step; the
            // student's `docker build` stays as written.
            ("BUILDKIT_PROGRESS".to_string(), "plain".to_string()),
            (
                "WORKBOOK_BUILT".to_string(),
                ctl.join("built").to_string_lossy().to_string(),
            ),
            (
                "WORKBOOK_STEP_FILE".to_string(),
                ctl.join("step").to_string_lossy().to_string(),
            ),
        ];
        if std::env::var_os("LANG").is_none() {
            env.push(("LANG".to_string(), "C.UTF-8".to_string()));
        }
        // The student's own Docker settings (contexts, credentials) live
        // under the real home, which the workspace replaces.
        let real_config = std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker"));
        if std::env::var_os("DOCKER_CONFIG").is_none()
            && let Some(config) = real_config.filter(|c| c.is_dir())
        {
            env.push((
                "DOCKER_CONFIG".to_string(),
                config.to_string_lossy().to_string(),
            ));
        }
        env.extend(offline_repositories(
            settings,
            book_root,
            &dir.path().join("repos"),
        )?);

        let shell = Shell::start(&home, &ctl, &env)?;
        tracing::debug!(workspace = %home.display(), "session started");
        Ok(Session {
            _dir: dir,
            home,
            ctl,
            shell,
            terminals: BTreeMap::new(),
            env,
            bound: BTreeMap::new(),
            id,
            docker,
            root: book_root.to_path_buf(),
            repos: settings.repos.clone(),
            baseline: None,
            used_images: BTreeSet::new(),
            uses_docker,
            cleaned: false,
        })
    }

    /// Runs the steps in order from `resume.from` and cleans up, also after
    /// failures.
    pub fn run(
        mut self,
        script: &Script,
        settings: &Settings,
        chapter: &str,
        resume: Resume<'_>,
    ) -> Result<Report> {
        let mut report = Report::default();
        if self.uses_docker {
            report.engine = docker::probe(&self.docker).unwrap_or_default();
        }
        if resume.from > 0 {
            let Some(base) = resume.restore else {
                anyhow::bail!("a run from step {} needs a checkpoint", resume.from + 1);
            };
            self.restore(base).context("restoring the checkpoint")?;
        }
        let total = script.steps.len();
        if resume.save.is_some() {
            self.take_baseline();
        }
        let (mut objects, mut recheck) = (false, true);

        for (index, step) in script.steps.iter().enumerate().skip(resume.from) {
            crate::progress::step(chapter, index, total, step);
            let cwd = self.shell.cwd().to_path_buf();
            let record = self.run_step(index, step, settings);
            report.sees.push(self.sees(step, &cwd));
            let used = self.images_used(step, &record);
            self.used_images.extend(used.keys().cloned());
            report.images.push(used);
            match &record.problem {
                Some(problem) => {
                    tracing::error!("{chapter}:{}: `{}`: {problem}", step.line, record.command)
                }
                None => tracing::debug!(
                    "{chapter}:{}: step {}/{total} `{}` {:?}",
                    step.line,
                    index + 1,
                    record.command,
                    record.outcome
                ),
            }
            // Only a command that can bring an image can bring a stand-in.
            if self.uses_docker
                && let StepKind::Command(c) = &step.kind
                && ["pull", "run", "build", "create"]
                    .iter()
                    .any(|w| c.run.contains(w))
            {
                report.stand_ins.extend(docker::stand_ins(&self.docker));
            }
            report.records.push(record);

            recheck |= matches!(step.kind, StepKind::Command(_));
            if let Some(dir) = resume.save
                && self.is_quiet(&terminals_after(script, index), &mut recheck, &mut objects)
            {
                match self.checkpoint(&dir.join(format!("after-{index}"))) {
                    Ok(()) => report.checkpoints.push(index),
                    Err(e) => tracing::debug!("no checkpoint after step {}: {e:#}", index + 1),
                }
            }
        }
        crate::progress::done();

        self.finish();
        Ok(report)
    }

    fn display_path(&self, path: &Path) -> String {
        match path.strip_prefix(&self.home) {
            Ok(rel) if rel.as_os_str().is_empty() => "~".to_string(),
            Ok(rel) => format!("~/{}", rel.display()),
            Err(_) => path.display().to_string(),
        }
    }

    /// Ends the shell and removes what the session created.
    fn finish(mut self) {
        self.clean_up();
    }

    /// Ends the terminals and the shell and removes what the session
    /// created. It runs once: at the end of the chapter, or when the session
    /// is dropped early (a panic while it runs).
    fn clean_up(&mut self) {
        if self.cleaned {
            return;
        }
        self.cleaned = true;
        for (_, terminal) in std::mem::take(&mut self.terminals) {
            terminal.close();
        }
        self.shell.close();
        if !self.uses_docker {
            return;
        }
        match docker::remove_session_objects(&self.docker, Some(&self.id)) {
            Ok(0) => {}
            Ok(n) => tracing::debug!("removed {n} Docker objects of the session"),
            Err(e) => tracing::warn!(
                "could not remove the session's Docker objects ({e:#}); run `mdbook-workbook clean`"
            ),
        }
        let built = std::fs::read_to_string(self.ctl.join("built")).unwrap_or_default();
        match docker::restore_tags(&self.docker, &built) {
            Ok(0) => {}
            Ok(n) => tracing::debug!("removed {n} images the session built"),
            Err(e) => tracing::warn!("could not remove the images the session built ({e:#})"),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.clean_up();
    }
}

/// The terminals that steps after `index` type into.
fn terminals_after(script: &Script, index: usize) -> BTreeSet<&str> {
    script.steps[index + 1..]
        .iter()
        .filter_map(|s| match &s.kind {
            StepKind::Command(c) => c.terminal.as_deref(),
            _ => None,
        })
        .collect()
}

/// Finds a program on PATH, so the wrapper can call the real client.
fn resolve(program: &str) -> Option<String> {
    if program.contains('/') {
        return Some(program.to_string());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .map(|p| p.to_string_lossy().to_string())
}
