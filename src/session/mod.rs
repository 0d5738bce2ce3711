//! Running a chapter's script in a session: a fresh workspace, one shell,
//! offline clones of the sheet's repositories, and a Docker scope that
//! labels what the session creates and removes it at the end.

pub mod capture;
pub mod terminal;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::config::Settings;
use crate::docker;
use crate::record::{Outcome, Record};
use crate::script::{Command, Script, StepKind};
use capture::Output;
use terminal::{End, Shell};

/// What a session found out besides the records.
#[derive(Debug, Default)]
pub struct Report {
    pub records: Vec<Record>,
    pub engine: docker::Engine,
    /// Stand-in images seen on the daemon during the run.
    pub stand_ins: BTreeSet<String>,
}

/// A chapter's workspace and shell.
pub struct Session {
    dir: tempfile::TempDir,
    home: PathBuf,
    shell: Shell,
    id: String,
    docker: String,
    /// Whether the chapter talks to Docker at all; if not, no daemon is needed.
    uses_docker: bool,
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
            (
                "WORKBOOK_BUILT".to_string(),
                ctl.join("built").to_string_lossy().to_string(),
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
            dir,
            home,
            shell,
            id,
            docker,
            uses_docker,
        })
    }

    /// Runs every step in order and cleans up, also after failures.
    pub fn run(mut self, script: &Script, settings: &Settings, chapter: &str) -> Report {
        let mut report = Report::default();
        if self.uses_docker {
            report.engine = docker::probe(&self.docker).unwrap_or_default();
        }
        let total = script.steps.len();

        for (index, step) in script.steps.iter().enumerate() {
            let record = self.run_step(index, step, settings);
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
            if self.uses_docker && matches!(step.kind, StepKind::Command(_)) {
                report.stand_ins.extend(docker::stand_ins(&self.docker));
            }
            report.records.push(record);
        }

        self.finish();
        report
    }

    fn run_step(
        &mut self,
        index: usize,
        step: &crate::script::Step,
        settings: &Settings,
    ) -> Record {
        let cwd = self.display_path(self.shell.cwd());
        let mut record = Record {
            step: index,
            line: step.line,
            command: String::new(),
            cwd,
            output: Output::default(),
            outcome: Outcome::Skipped(String::new()),
            expect: None,
            duration: Duration::ZERO,
            problem: None,
        };

        match &step.kind {
            StepKind::Command(command) => self.run_command(index, command, settings, &mut record),
            StepKind::Write { path, content } => {
                record.command = path.clone();
                let target = self.shell.cwd().join(path);
                match write_file(&target, content) {
                    Ok(()) => record.outcome = Outcome::Wrote(self.display_path(&target)),
                    Err(e) => record.problem = Some(format!("{e:#}")),
                }
            }
            StepKind::Edit {
                path,
                replace,
                lines,
            } => {
                record.command = path.clone();
                let target = self.shell.cwd().join(path);
                match edit_file(&target, replace, lines) {
                    Ok(()) => record.outcome = Outcome::Edited(self.display_path(&target)),
                    Err(e) => record.problem = Some(format!("{e:#}")),
                }
            }
            StepKind::Skip { text, reason } => {
                record.command = text.clone();
                record.outcome = Outcome::Skipped(reason.clone());
            }
            StepKind::Refuse { text, reason } => {
                record.command = text.clone();
                record.outcome = Outcome::Failed(reason.clone());
                record.problem = Some(reason.clone());
            }
        }
        if let (Outcome::Skipped(_), Some(problem)) = (&record.outcome, &record.problem) {
            record.outcome = Outcome::Failed(problem.clone());
        }
        record
    }

    fn run_command(
        &mut self,
        index: usize,
        command: &Command,
        settings: &Settings,
        record: &mut Record,
    ) {
        record.command = command.run.clone();
        record.expect = Some(command.expect);

        if !self.shell.is_alive() {
            let reason = "not run: the chapter's shell ended at an earlier step".to_string();
            record.outcome = Outcome::Failed(reason.clone());
            record.problem = Some(reason);
            return;
        }

        let timeout = command.timeout.unwrap_or(settings.timeout());
        let env = [("WORKBOOK_STEP", index.to_string())];
        let ran = match self.shell.run(&command.run, &env, timeout) {
            Ok(ran) => ran,
            Err(e) => {
                record.outcome = Outcome::Failed(format!("{e:#}"));
                record.problem = Some(format!("{e:#}"));
                return;
            }
        };

        record.output = ran.output;
        record
            .output
            .replace(self.home.to_string_lossy().as_bytes(), b"~");
        record.duration = ran.duration;
        record.outcome = match ran.end {
            End::Exited(code) => Outcome::Exited(code),
            End::TimedOut => Outcome::TimedOut(timeout),
            End::ShellEnded => Outcome::ShellEnded,
        };

        record.problem = match ran.end {
            End::Exited(code) if !command.expect.accepts(code) => Some(format!(
                "exited with {code}, expected {}",
                describe(command.expect)
            )),
            End::Exited(_) => None,
            End::TimedOut => {
                self.remove_step_objects(index);
                Some(format!(
                    "timed out after {} s and was killed; raise it with `<!-- workbook: timeout=SECONDS -->`",
                    timeout.as_secs_f64()
                ))
            }
            End::ShellEnded => Some(
                "the chapter's shell ended during this command; later commands cannot run".into(),
            ),
        };
        if record.output.contains("the input device is not a TTY") {
            record.problem = Some(
                "the command needs a terminal (`-i`/`-t`), which the chapter's shell does not have"
                    .into(),
            );
        }
    }

    /// Removes the containers a killed command left behind, so that a
    /// server that timed out does not hold its port for the rest of the run.
    fn remove_step_objects(&self, index: usize) {
        let filter = format!("{}={}", docker::STEP_LABEL, index);
        let containers = docker::query(
            &self.docker,
            &[
                "ps",
                "-aq",
                "--filter",
                &format!("label={filter}"),
                "--filter",
                &format!("label={}={}", docker::SESSION_LABEL, self.id),
            ],
            Duration::from_secs(30),
        );
        if let Ok(ids) = containers {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids);
                let _ = docker::query(&self.docker, &args, Duration::from_secs(60));
            }
        }
    }

    fn display_path(&self, path: &Path) -> String {
        match path.strip_prefix(&self.home) {
            Ok(rel) if rel.as_os_str().is_empty() => "~".to_string(),
            Ok(rel) => format!("~/{}", rel.display()),
            Err(_) => path.display().to_string(),
        }
    }

    /// Ends the shell and removes what the session created.
    fn finish(self) {
        self.shell.close();
        if !self.uses_docker {
            let _ = self.dir.close();
            return;
        }
        let label = format!("{}={}", docker::SESSION_LABEL, self.id);
        match docker::remove_labelled(&self.docker, &label, true) {
            Ok(0) => {}
            Ok(n) => tracing::debug!("removed {n} Docker objects of the session"),
            Err(e) => tracing::warn!(
                "could not remove the session's Docker objects ({e:#}); run `mdbook-workbook clean`"
            ),
        }
        let built = std::fs::read_to_string(self.dir.path().join("ctl/built")).unwrap_or_default();
        match docker::restore_tags(&self.docker, &built) {
            Ok(0) => {}
            Ok(n) => tracing::debug!("removed {n} images the session built"),
            Err(e) => tracing::warn!("could not remove the images the session built ({e:#})"),
        }
        let _ = self.dir.close();
    }
}

fn describe(expect: crate::script::Expect) -> String {
    match expect {
        crate::script::Expect::Status(n) => n.to_string(),
        crate::script::Expect::NonZero => "a non-zero status".into(),
        crate::script::Expect::Any => "any status".into(),
    }
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

fn write_file(target: &Path, content: &str) -> Result<()> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(target, content).with_context(|| format!("writing {}", target.display()))
}

fn edit_file(target: &Path, replace: &str, lines: &[String]) -> Result<()> {
    let text = std::fs::read_to_string(target)
        .with_context(|| format!("reading {} to edit it", target.display()))?;
    let matches: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim() == replace.trim())
        .map(|(i, _)| i)
        .collect();
    let at = match matches.as_slice() {
        [one] => *one,
        [] => anyhow::bail!(
            "line `{replace}` is not in {}; the edit cannot be applied",
            target.display()
        ),
        _ => anyhow::bail!(
            "line `{replace}` is in {} {} times; make `replace` unique",
            target.display(),
            matches.len()
        ),
    };

    let mut out: Vec<&str> = text.lines().collect();
    out.splice(at..=at, lines.iter().map(String::as_str));
    let mut joined = out.join("\n");
    joined.push('\n');
    std::fs::write(target, joined).with_context(|| format!("writing {}", target.display()))
}

/// Makes a git repository of each configured directory and points git's
/// `insteadOf` at it, so the sheet's `git clone URL` really runs offline.
fn offline_repositories(
    settings: &Settings,
    book_root: &Path,
    repos: &Path,
) -> Result<Vec<(String, String)>> {
    let mut env = Vec::new();
    for (n, (url, source)) in settings.repos.iter().enumerate() {
        let source = book_root.join(source);
        let name = url
            .trim_end_matches('/')
            .trim_end_matches(".git")
            .rsplit('/')
            .next()
            .unwrap_or("repo");
        let target = repos.join(format!("{n}-{name}"));
        copy_dir(&source, &target).with_context(|| {
            format!(
                "copying {} for `{url}` (preprocessor.workbook.repos)",
                source.display()
            )
        })?;

        let git = |args: &[&str]| -> Result<()> {
            let status = std::process::Command::new("git")
                .args(args)
                .current_dir(&target)
                .env("GIT_AUTHOR_NAME", "mdbook-workbook")
                .env("GIT_AUTHOR_EMAIL", "workbook@localhost")
                .env("GIT_COMMITTER_NAME", "mdbook-workbook")
                .env("GIT_COMMITTER_EMAIL", "workbook@localhost")
                .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
                .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .context("running git; is it installed?")?;
            anyhow::ensure!(
                status.success(),
                "`git {}` failed in {}",
                args.join(" "),
                target.display()
            );
            Ok(())
        };
        git(&["init", "-q", "-b", "main"])?;
        git(&["add", "-A"])?;
        git(&[
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "-m",
            "exercises",
        ])?;

        env.push((
            format!("GIT_CONFIG_KEY_{n}"),
            format!("url.{}.insteadOf", target.display()),
        ));
        env.push((format!("GIT_CONFIG_VALUE_{n}"), url.clone()));
    }
    if !env.is_empty() {
        env.push((
            "GIT_CONFIG_COUNT".to_string(),
            settings.repos.len().to_string(),
        ));
    }
    Ok(env)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        if entry.file_name() == ".git" {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_replaces_exactly_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.sh");
        std::fs::write(&file, "a\nmakePyramid 5\n").unwrap();
        let lines = vec!["# old".to_string(), "makePyramid $1".to_string()];
        edit_file(&file, "makePyramid 5", &lines).unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "a\n# old\nmakePyramid $1\n"
        );

        let err = edit_file(&file, "makePyramid 5", &lines)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not in"), "{err}");
        std::fs::write(&file, "x\nx\n").unwrap();
        let err = edit_file(&file, "x", &lines).unwrap_err().to_string();
        assert!(err.contains("2 times"), "{err}");
    }
}
