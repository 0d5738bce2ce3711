//! Findings: a sheet run as it stands, without directives, the way a
//! student follows it, with every step that fails reported.
//!
//! Without directives the tool has to guess what a student does. It types a
//! command that asks for a terminal (`docker run -it`) into a terminal
//! window, and then types the commands that follow into that window while
//! the program in it runs, unless they are host tools (`docker`, `git`,
//! `cd`), which go to a second window. A `docker run` in the foreground runs
//! in a window of its own; if it is still running once it goes quiet, it
//! gets CTRL+C, as the sheets tell students to do.

use std::path::Path;

use anyhow::{Context, Result};

use crate::chapter::{self, ItemKind};
use crate::config::Settings;
use crate::record::{Outcome, Record};
use crate::script::{self, BlockPlan, Command, Script, Step, StepKind, guard, split};
use crate::session::Session;

/// One step a student would stumble over.
#[derive(Debug)]
pub struct Finding {
    pub line: usize,
    pub command: String,
    pub what: String,
    /// The last lines the step printed.
    pub evidence: String,
}

/// What a findings run found.
#[derive(Debug)]
pub struct Report {
    pub commands: usize,
    pub findings: Vec<Finding>,
}

/// Runs the sheet at `path` verbatim. `dedicated` allows commands that act
/// on all containers or images.
pub fn run(path: &Path, settings: &Settings, root: &Path, dedicated: bool) -> Result<Report> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let parsed = chapter::parse(&name, &text)?;
    let script = verbatim_script(&parsed, dedicated);

    let session = Session::start(settings, root, true)?;
    let report = session.run(&script, settings, &name, Default::default())?;
    let findings = report.records.iter().filter_map(finding).collect();
    Ok(Report {
        commands: script.steps.len(),
        findings,
    })
}

/// Every command of every shell block, on the window a student would use.
fn verbatim_script(parsed: &chapter::Chapter, dedicated: bool) -> Script {
    let mut script = Script::default();
    let mut windows = 0;
    // The window whose program (a container's shell) waits for input.
    let mut inside: Option<String> = None;
    // A window back at its own prompt, to be used again.
    let mut idle: Option<String> = None;
    let placeholder = crate::regex!(r"<[A-Z][A-Z0-9_-]*>");

    for (item, it) in parsed.items.iter().enumerate() {
        let ItemKind::Block(block) = &it.kind else {
            continue;
        };
        if !script::SHELL_LANGS.contains(&block.lang.as_str()) {
            continue;
        }
        let first = script.steps.len();
        // A block with `...` lines shows part of a file, not commands.
        let partial = block.content.lines().any(|l| l.trim() == "...");
        for line in split::split(&block.content) {
            let text = line.text.clone();
            if partial {
                let reason = "part of a file (`...`), not commands".to_string();
                script.steps.push(Step {
                    block: script.blocks.len(),
                    line: block.content_line + line.line,
                    kind: StepKind::Skip { text, reason },
                });
                continue;
            }
            let code = guard::strip_comment(&text).trim().to_string();
            let host_tool = ["docker", "docker-compose", "git", "cd"]
                .iter()
                .any(|t| code == *t || code.starts_with(&format!("{t} ")));

            let mut terminal = None;
            let mut interrupt = false;
            // `docker run -it IMAGE bash` starts a shell to type into;
            // `docker run -it IMAGE server` starts a program that runs.
            let starts_shell = code.split_whitespace().any(|w| {
                matches!(
                    w.rsplit('/').next().unwrap_or(w),
                    "bash" | "sh" | "zsh" | "ash" | "dash"
                )
            });
            let interactive =
                guard::needs_terminal(&code) && (starts_shell || !code.starts_with("docker run"));
            if interactive {
                let window = idle.take().unwrap_or_else(|| {
                    windows += 1;
                    format!("fenster{windows}")
                });
                inside = Some(window.clone());
                terminal = Some(window);
            } else if code.starts_with("docker run")
                && !code.contains(" -d ")
                && !code.contains("--detach")
            {
                windows += 1;
                terminal = Some(format!("fenster{windows}"));
                interrupt = true;
            } else if !host_tool && let Some(window) = &inside {
                terminal = Some(window.clone());
                if code == "exit" || code.starts_with("exit ") {
                    idle = inside.take();
                }
            }

            let kind = match guard::acts_on_foreign_objects(&code) {
                Some(why) if !dedicated => StepKind::Skip {
                    text,
                    reason: format!(
                        "{why}; run findings with --dedicated on a daemon that nothing else uses"
                    ),
                },
                _ if terminal.is_none() && (code == "exit" || code.starts_with("exit ")) => {
                    StepKind::Skip {
                        text,
                        reason: "`exit` here would close the student's only window".into(),
                    }
                }
                _ => {
                    let run = bind_workspace(&text, placeholder);
                    let binds = container_placeholders(&text, placeholder);
                    StepKind::Command(Command {
                        terminal,
                        interrupt,
                        binds,
                        ..Command::plain(text, run)
                    })
                }
            };
            script.steps.push(Step {
                block: script.blocks.len(),
                line: block.content_line + line.line,
                kind,
            });
        }
        script.blocks.push(BlockPlan {
            item,
            steps: first..script.steps.len(),
            note: None,
            hidden: false,
        });
    }
    script
}

/// A student puts their own path where the sheet writes `<..._PATH>`:
/// here that is the workspace.
fn bind_workspace(text: &str, placeholder: &regex::Regex) -> String {
    placeholder
        .replace_all(text, |c: &regex::Captures| {
            if c[0].contains("PATH") {
                "~".to_string()
            } else {
                c[0].to_string()
            }
        })
        .into_owned()
}

/// A student puts the container they just made where the sheet writes
/// `<..._ID>`.
fn container_placeholders(text: &str, placeholder: &regex::Regex) -> Vec<(String, script::Source)> {
    placeholder
        .find_iter(text)
        .filter(|m| m.as_str().contains("ID") && !m.as_str().contains("PATH"))
        .map(|m| (m.as_str().to_string(), script::Source::Container))
        .collect()
}

fn finding(record: &Record) -> Option<Finding> {
    let what = match (&record.outcome, &record.problem) {
        (Outcome::Skipped(reason), _) if reason.starts_with("part of a file") => return None,
        (Outcome::Skipped(reason), _) => format!("not run: {reason}"),
        (_, Some(problem)) => problem.clone(),
        (Outcome::Waiting, None) if record.terminal.is_some() => return None,
        _ => return None,
    };
    let text = String::from_utf8_lossy(&record.output.head).to_string()
        + &String::from_utf8_lossy(&record.output.tail);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    let evidence = lines[lines.len().saturating_sub(4)..].join("\n");
    Some(Finding {
        line: record.line,
        command: record.command.clone(),
        what,
        evidence,
    })
}

/// The report as text, one finding after the other.
pub fn format(name: &str, report: &Report) -> String {
    let mut out = format!(
        "{name}: {} commands run as written, {} finding(s)\n\
         Only shell blocks run; files the sheet asks to edit by hand are left as they are, so a step that depends on such an edit may fail for that reason.\n",
        report.commands,
        report.findings.len()
    );
    for f in &report.findings {
        out.push_str(&format!(
            "\n{name}:{}: `{}`\n  {}\n",
            f.line, f.command, f.what
        ));
        for line in f.evidence.lines() {
            out.push_str(&format!("  | {line}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_go_to_the_window_a_student_would_use() {
        let md = "```shell\ndocker pull x\n```\n```shell\ndocker run -it ubuntu bash\n```\n```shell\ndocker container ls\n```\n```shell\nmkdir /TEST\nexit\n```\n```shell\ndocker exec -it d239 bash\nls\n```\n```shell\ndocker run web\nexit\ndocker rm $(docker ps -aq)\n```\n```shell\ndocker run -it --rm -p 8000:8000 py python3 -m http.server\ncat /nope\n```\n";
        let parsed = chapter::parse("c.md", md).unwrap();
        let script = verbatim_script(&parsed, false);
        let got: Vec<String> = script
            .steps
            .iter()
            .map(|s| match &s.kind {
                StepKind::Command(c) => format!(
                    "{} {}{}",
                    c.terminal.as_deref().unwrap_or("host"),
                    c.run,
                    if c.interrupt { " ^C" } else { "" }
                ),
                StepKind::Skip { text, .. } => format!("skip {text}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            [
                "host docker pull x",
                "fenster1 docker run -it ubuntu bash",
                "host docker container ls",
                "fenster1 mkdir /TEST",
                "fenster1 exit",
                "fenster1 docker exec -it d239 bash",
                "fenster1 ls",
                "fenster2 docker run web ^C",
                "fenster1 exit",
                "skip docker rm $(docker ps -aq)",
                "fenster3 docker run -it --rm -p 8000:8000 py python3 -m http.server ^C",
                "host cat /nope",
            ]
        );
    }
}
