//! Running one step of the script: a command on the chapter's shell or on a
//! named terminal, a file write or edit, or an HTTP probe.

use std::path::Path;
use std::time::Duration;

use regex::Regex;

use super::capture::Output;
use super::pty::{self, TypedEnd};
use super::terminal::End;
use super::{Session, http, workspace};
use crate::config::Settings;
use crate::docker;
use crate::record::{Outcome, Record};
use crate::script::{Command, Expect, Probe, Source, Step, StepKind};

/// How long a probe waits for a server by default.
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

impl Session {
    pub(super) fn run_step(&mut self, index: usize, step: &Step, settings: &Settings) -> Record {
        let _ = std::fs::write(self.ctl.join("step"), index.to_string());
        let mut record = Record {
            step: index,
            line: step.line,
            command: String::new(),
            cwd: self.display_path(self.shell.cwd()),
            output: Output::default(),
            outcome: Outcome::Skipped(String::new()),
            expect: None,
            duration: Duration::ZERO,
            problem: None,
            terminal: None,
            http: None,
            timing: None,
        };

        match &step.kind {
            StepKind::Command(command) => self.run_command(index, command, settings, &mut record),
            StepKind::Probe(probe) => run_probe(probe, &mut record),
            StepKind::Write { path, content } => {
                record.command = path.clone();
                let target = match self.inside_workspace(path) {
                    Ok(target) => target,
                    Err(e) => return self.failed(record, e),
                };
                match workspace::write_file(&target, content) {
                    Ok(()) => record.outcome = Outcome::Wrote(self.display_path(&target)),
                    Err(e) => fail(&mut record, format!("{e:#}")),
                }
            }
            StepKind::Edit {
                path,
                replace,
                lines,
            } => {
                record.command = path.clone();
                let target = self.shell.cwd().join(path);
                match workspace::edit_file(&target, replace, lines) {
                    Ok(()) => record.outcome = Outcome::Edited(self.display_path(&target)),
                    Err(e) => fail(&mut record, format!("{e:#}")),
                }
            }
            StepKind::Skip { text, reason } => {
                record.command = text.clone();
                record.outcome = Outcome::Skipped(reason.clone());
            }
            StepKind::Refuse { text, reason } => {
                record.command = text.clone();
                fail(&mut record, reason.clone());
            }
        }
        self.sanitise(&mut record);
        record
    }

    fn failed(&self, mut record: Record, reason: String) -> Record {
        fail(&mut record, reason);
        self.sanitise(&mut record);
        record
    }

    /// Shows the workspace as `~` in messages, as it is in output.
    fn sanitise(&self, record: &mut Record) {
        let home = self.home.to_string_lossy().to_string();
        record.output.replace(home.as_bytes(), b"~");
        if let Some(problem) = record.problem.as_mut() {
            *problem = problem.replace(&home, "~");
        }
        if let Outcome::Failed(reason) = &mut record.outcome {
            *reason = reason.replace(&home, "~");
        }
    }

    /// The target of a file step, which must stay inside the workspace.
    fn inside_workspace(&self, path: &str) -> Result<std::path::PathBuf, String> {
        let target = crate::store::lexical(&self.shell.cwd().join(path));
        if target.starts_with(&self.home) {
            Ok(target)
        } else {
            Err(format!(
                "`{path}` lies outside the workspace; a chapter writes only inside it"
            ))
        }
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
        match self.bind(command) {
            Ok(run) => record.command = run,
            Err(e) => return fail(record, e),
        }
        let timeout = command.timeout.unwrap_or(settings.timeout());

        match &command.terminal {
            Some(name) => self.run_typed(name, command, timeout, record),
            None => self.run_on_shell(command, timeout, record),
        }
        if matches!(record.outcome, Outcome::TimedOut(_)) {
            self.remove_step_objects(index);
        }
        if record.problem.is_none() {
            record.problem = check_command(command, record, self.shell.cwd());
        } else if let Some(holder) = self.port_holder(&record.output) {
            record.problem = Some(format!(
                "{}; {holder}",
                record.problem.take().unwrap_or_default()
            ));
        }
    }

    fn run_on_shell(&mut self, command: &Command, timeout: Duration, record: &mut Record) {
        if !self.shell.is_alive() {
            return fail(
                record,
                "not run: the chapter's shell ended at an earlier step".into(),
            );
        }
        let ran = match self.shell.run(&record.command, timeout) {
            Ok(ran) => ran,
            Err(e) => return fail(record, format!("{e:#}")),
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
            End::TimedOut => Some(timed_out(timeout)),
            End::ShellEnded => Some(
                "the chapter's shell ended during this command; later commands cannot run".into(),
            ),
        };
        if record.output.contains("the input device is not a TTY") {
            record.problem = Some(
                "the command needs a terminal (`-i`/`-t`): run it on a terminal with `open=NAME`"
                    .into(),
            );
        }
    }

    fn run_typed(&mut self, name: &str, command: &Command, timeout: Duration, record: &mut Record) {
        record.terminal = Some(name.to_string());
        if !self.terminals.contains_key(name) {
            match pty::Terminal::open(name, self.shell.cwd(), &self.ctl, &self.env) {
                Ok(t) => {
                    self.terminals.insert(name.to_string(), t);
                }
                Err(e) => return fail(record, format!("{e:#}")),
            }
        }
        let Some(terminal) = self.terminals.get_mut(name) else {
            return;
        };

        let wait = pty::Wait {
            ready: command.ready.as_deref().and_then(|r| Regex::new(r).ok()),
            interrupt: command.interrupt,
        };
        let typed = match terminal.type_line(&record.command, &wait, timeout) {
            Ok(typed) => typed,
            Err(e) => return fail(record, format!("{e:#}")),
        };
        if typed.end == TypedEnd::TimedOut {
            terminal.interrupt();
        }

        record.output = Output::whole(typed.screen.as_bytes());
        record
            .output
            .replace(self.home.to_string_lossy().as_bytes(), b"~");
        record.duration = typed.duration;
        let ready = command.ready.clone().unwrap_or_default();
        (record.outcome, record.problem) = match typed.end {
            TypedEnd::Exited(code) if !command.expect.accepts(code) => (
                Outcome::Exited(code),
                Some(format!(
                    "exited with {code}, expected {}",
                    describe(command.expect)
                )),
            ),
            TypedEnd::Exited(code) => (Outcome::Exited(code), None),
            TypedEnd::Waiting => (Outcome::Waiting, None),
            TypedEnd::Ready => (Outcome::Ready(ready), None),
            TypedEnd::Interrupted(code) => (Outcome::Interrupted(code), None),
            TypedEnd::IgnoredInterrupt => (
                Outcome::Waiting,
                Some("CTRL+C did not end the program: it went on running".into()),
            ),
            TypedEnd::TimedOut if command.ready.is_some() => (
                Outcome::TimedOut(timeout),
                Some(format!(
                    "the ready pattern `{ready}` did not show within {} s",
                    timeout.as_secs_f64()
                )),
            ),
            TypedEnd::TimedOut => (Outcome::TimedOut(timeout), Some(timed_out(timeout))),
            TypedEnd::Closed => (
                Outcome::ShellEnded,
                Some(format!("terminal `{name}` ended")),
            ),
        };
    }

    /// Puts the session's values in place of the command's placeholders.
    fn bind(&mut self, command: &Command) -> Result<String, String> {
        let mut run = command.run.clone();
        for (token, source) in &command.binds {
            if !self.bound.contains_key(token) {
                let value = match source {
                    Source::Container => self.last_container()?,
                    Source::Workspace => "~".to_string(),
                };
                self.bound.insert(token.clone(), value);
            }
            run = crate::script::replace_token(&run, token, &self.bound[token]);
        }
        Ok(run)
    }

    /// Which container holds the port a failed `docker run` asked for.
    fn port_holder(&self, output: &Output) -> Option<String> {
        let text = String::from_utf8_lossy(&output.head);
        let re = crate::regex!(
            r":(\d+) failed: port is already allocated|:(\d+): bind: address already in use"
        );
        let caps = re.captures(&text)?;
        let port = caps.get(1).or(caps.get(2))?.as_str();
        let out = docker::query(
            &self.docker,
            &[
                "ps",
                "--filter",
                &format!("publish={port}"),
                "--format",
                "{{.Names}} ({{.ID}})",
            ],
            Duration::from_secs(20),
        )
        .ok()?;
        let holder = out.lines().next()?.trim().to_string();
        Some(format!("port {port} is taken by container {holder}"))
    }

    fn last_container(&self) -> Result<String, String> {
        let filter = format!("label={}={}", docker::SESSION_LABEL, self.id);
        let out = docker::query(
            &self.docker,
            &["ps", "-a", "--filter", &filter, "--format", "{{.ID}}"],
            Duration::from_secs(20),
        )
        .map_err(|e| format!("{e:#}"))?;
        out.lines()
            .next()
            .map(|id| id.trim().chars().take(12).collect())
            .ok_or_else(|| "a placeholder stands for the container created last, but the chapter has created none yet".to_string())
    }

    /// Removes the containers a killed command left behind, so that a
    /// server that timed out does not hold its port for the rest of the run.
    fn remove_step_objects(&self, index: usize) {
        let step = format!("label={}={index}", docker::STEP_LABEL);
        let session = format!("label={}={}", docker::SESSION_LABEL, self.id);
        let t = Duration::from_secs(60);
        let Ok(ids) = docker::query(
            &self.docker,
            &["ps", "-aq", "--filter", &step, "--filter", &session],
            t,
        ) else {
            return;
        };
        let mut args = vec!["rm", "-f"];
        args.extend(ids.split_whitespace());
        if args.len() > 2 {
            let _ = docker::query(&self.docker, &args, t);
        }
    }
}

fn run_probe(probe: &Probe, record: &mut Record) {
    record.command = format!("GET {}", probe.url);
    let target = match crate::script::probe::parse_url(&probe.url) {
        Ok(t) => t,
        Err(e) => return fail(record, format!("{e:#}")),
    };
    let started = std::time::Instant::now();
    let timeout = probe.timeout.unwrap_or(PROBE_TIMEOUT);
    let response = match http::get_until_answered(&target, timeout) {
        Ok(r) => r,
        Err(e) => {
            record.duration = started.elapsed();
            return fail(record, format!("{e:#}"));
        }
    };

    record.duration = started.elapsed();
    record.outcome = Outcome::Answered(response.status);
    record.output = Output::whole(&response.body);
    let status_ok = match probe.status {
        Some(want) => response.status == want,
        None => (200..400).contains(&response.status),
    };
    if !status_ok {
        let want = probe
            .status
            .map_or("2xx or 3xx".to_string(), |s| s.to_string());
        record.problem = Some(format!(
            "the server answered {}, expected {want}",
            response.status
        ));
    } else if let Some(text) = &probe.contains
        && !visible_text(&record.output).contains(text.as_str())
    {
        record.problem = Some(format!("the answer does not contain `{text}`"));
    }
    record.http = Some(response);
}

/// The checks a directive put on a command, after it ran.
fn check_command(command: &Command, record: &Record, cwd: &Path) -> Option<String> {
    // Checks compare what the reader sees: colours and `\r` rewrites
    // resolved, CRLF as LF.
    let text = visible_text(&record.output);
    if let Some(needle) = &command.contains
        && !text.contains(needle.as_str())
    {
        return Some(format!("the output does not contain `{needle}`"));
    }
    if let Some(pattern) = &command.matches {
        // `^` and `$` stand for the start and end of a line of output.
        if !Regex::new(&format!("(?m){pattern}")).is_ok_and(|re| re.is_match(&text)) {
            return Some(format!("the output does not match `{pattern}`"));
        }
    }
    if !command.layers.is_empty() || command.cached_before.is_some() {
        let Some(build) = crate::builds::parse(&text) else {
            return Some("the output is not a `docker build` whose steps could be read".into());
        };
        for (_, want_cached) in command.layers.iter().filter(|(p, _)| p == "*") {
            if let Some(step) = build
                .steps
                .iter()
                .find(|s| !s.base && s.cached != *want_cached)
            {
                let (want, got) = describe_cache(*want_cached);
                return Some(format!(
                    "step `{}` was {got}, expected every step {want}",
                    step.instruction
                ));
            }
        }
        if let Some(part) = &command.cached_before {
            let Some(at) = build
                .steps
                .iter()
                .position(|s| s.instruction.contains(part.as_str()))
            else {
                return Some(format!("the build has no step `{part}`"));
            };
            if let Some(step) = build.steps[..at].iter().find(|s| !s.base && !s.cached) {
                return Some(format!(
                    "step `{}` was built anew, expected every step before `{part}` from the cache",
                    step.instruction
                ));
            }
        }
        for (part, want_cached) in command.layers.iter().filter(|(p, _)| p != "*") {
            let Some(step) = build
                .steps
                .iter()
                .find(|s| s.instruction.contains(part.as_str()))
            else {
                return Some(format!("the build has no step `{part}`"));
            };
            if step.cached != *want_cached {
                let (want, got) = describe_cache(*want_cached);
                return Some(format!(
                    "step `{}` was {got}, expected {want}",
                    step.instruction
                ));
            }
        }
    }
    if let Some(path) = &command.file_exists
        && !cwd.join(path).exists()
    {
        return Some(format!("`{path}` does not exist afterwards"));
    }
    None
}

/// What was expected of a build step and what happened instead.
fn describe_cache(want_cached: bool) -> (&'static str, &'static str) {
    if want_cached {
        ("from the cache", "built anew")
    } else {
        ("built anew", "from the cache")
    }
}

fn visible_text(output: &Output) -> String {
    let mut text = crate::render::ansi::to_text(&output.head);
    text.push_str(&crate::render::ansi::to_text(&output.tail));
    text
}

fn fail(record: &mut Record, reason: String) {
    record.outcome = Outcome::Failed(reason.clone());
    record.problem = Some(reason);
}

fn timed_out(timeout: Duration) -> String {
    format!(
        "timed out after {} s and was killed; raise it with `<!-- workbook: timeout=SECONDS -->`",
        timeout.as_secs_f64()
    )
}

fn describe(expect: Expect) -> String {
    match expect {
        Expect::Status(n) => n.to_string(),
        Expect::NonZero => "a non-zero status".into(),
        Expect::Any => "any status".into(),
    }
}
