//! Steps from one block: shell commands with their settings, files the
//! block writes or edits, and HTTP probes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Result, bail};
use regex::Regex;

use super::{
    BlockPlan, Command, Expect, Probe, Script, Source, Step, StepKind, bind, guard,
    is_relative_path, probe, split,
};
use crate::chapter::Directive;

pub(super) fn shell_block(
    script: &mut Script,
    item: usize,
    block: &crate::chapter::Block,
    d: Option<&Directive>,
    bindings: &BTreeMap<String, Source>,
    placeholder: &Regex,
    terminals: &mut Terminals,
) -> Result<()> {
    const KEYS: &[&str] = &[
        "expect",
        "timeout",
        "skip",
        "note",
        "bind",
        "terminal",
        "ready",
        "interrupt",
        "contains",
        "matches",
        "file-exists",
        "cached",
        "rebuilt",
        "cached-before",
        "time-at-most",
        "open",
        "hidden",
    ];
    let settings = d.map(|d| d.settings.as_slice()).unwrap_or_default();
    if let Some(bad) = settings.iter().find(|s| !KEYS.contains(&s.key.as_str())) {
        bail!(
            "directive: `{}` does not apply to a `{}` block",
            bad.key,
            block.lang
        );
    }
    let lines = split::split(&block.content);
    let block_index = script.blocks.len();
    let first = script.steps.len();

    let mut per: Vec<PerCommand> = vec![PerCommand::default(); lines.len()];
    for s in settings {
        let value = s.value.as_deref().unwrap_or("");
        let targets: Vec<usize> = match &s.suffix {
            None => (0..lines.len()).collect(),
            Some(n) => vec![
                n.parse::<usize>()
                    .ok()
                    .filter(|n| (1..=lines.len()).contains(n))
                    .map(|n| n - 1)
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "directive: `{}.{n}`: the block has commands 1 to {}",
                            s.key,
                            lines.len()
                        )
                    })?,
            ],
        };
        for t in targets {
            let c = &mut per[t];
            match s.key.as_str() {
                "expect" => c.cmd.expect = Expect::parse(value)?,
                "skip" => c.skip = Some(value.to_string()),
                "timeout" => c.cmd.timeout = Some(parse_seconds("timeout", value)?),
                "terminal" => c.cmd.terminal = Some(value.to_string()),
                // `open` on a block opens the terminal with its first
                // command; the others are typed into it.
                "open" => {
                    c.cmd.terminal = Some(value.to_string());
                    c.open = s.suffix.is_some() || t == 0;
                }
                "matches" => {
                    Regex::new(value).map_err(|e| {
                        anyhow::anyhow!("directive: `matches`: not a valid pattern: {e}")
                    })?;
                    c.cmd.matches = Some(value.to_string());
                }
                "ready" => {
                    Regex::new(value).map_err(|e| {
                        anyhow::anyhow!("directive: `ready`: not a valid pattern: {e}")
                    })?;
                    c.cmd.ready = Some(value.to_string());
                }
                "interrupt" => c.cmd.interrupt = true,
                "contains" if value.is_empty() => {
                    bail!("directive: `contains` needs the text to look for")
                }
                "contains" => c.cmd.contains = Some(value.to_string()),
                "file-exists" => c.cmd.file_exists = Some(value.to_string()),
                "cached" | "rebuilt" | "cached-before" if value.trim().is_empty() => {
                    bail!(
                        "directive: `{}` needs part of a build step's instruction, or `*`",
                        s.key
                    )
                }
                "cached" | "rebuilt" => {
                    let cached = s.key == "cached";
                    if c.cmd
                        .layers
                        .iter()
                        .any(|(p, was)| p == value && *was != cached)
                    {
                        bail!("directive: `{value}` cannot be both `cached` and `rebuilt`")
                    }
                    c.cmd.layers.push((value.to_string(), cached));
                }
                "cached-before" => c.cmd.cached_before = Some(value.to_string()),
                "time-at-most" => c.cmd.time_at_most = Some(parse_share(value)?),
                _ => {}
            }
        }
    }

    for (n, line) in lines.iter().enumerate() {
        let c = &per[n];
        if c.skip.is_some()
            && c.open
            && let Some(name) = &c.cmd.terminal
        {
            terminals.skipped.insert(name.clone());
        }
        if c.skip.is_none()
            && let Some(name) = &c.cmd.terminal
        {
            let known = terminals.open.contains(name);
            if !c.open && !known && terminals.skipped.contains(name) {
                bail!(
                    "directive: terminal `{name}` is opened by a command that is skipped; skip this command too"
                );
            }
            if c.open && known {
                bail!(
                    "directive: terminal `{name}` is already open; type into it with `terminal={name}`"
                );
            }
            if !c.open && !known {
                bail!(
                    "directive: terminal `{name}` does not exist; open it with `open={name}` on the command that starts it"
                );
            }
            terminals.open.insert(name.clone());
        }
        if (c.cmd.ready.is_some() || c.cmd.interrupt) && c.cmd.terminal.is_none() {
            bail!(
                "directive: `ready` and `interrupt` need a terminal: add `open=NAME` or `terminal=NAME` for command {}",
                n + 1
            );
        }
        if c.cmd.interrupt && c.cmd.ready.is_none() {
            bail!(
                "directive: `interrupt` needs `ready=PATTERN`: CTRL+C is sent once the pattern shows"
            );
        }

        let text = line.text.clone();
        let run = bind(&text, bindings);
        let dynamic: Vec<(String, Source)> = bindings
            .iter()
            .filter(|(token, source)| **source != Source::Workspace && run.contains(token.as_str()))
            .map(|(t, s)| (t.clone(), s.clone()))
            .collect();
        let unbound = placeholder
            .find_iter(guard::strip_comment(&run))
            .find(|m| !dynamic.iter().any(|(t, _)| t == m.as_str()));

        let kind = if let Some(reason) = &c.skip {
            StepKind::Skip {
                text,
                reason: reason.clone(),
            }
        } else if let Some(token) = unbound {
            StepKind::Refuse {
                text,
                reason: format!(
                    "placeholder `{}` is not bound; add `<!-- workbook: bind=\"{}={}\" -->` above the block, or write the real value",
                    token.as_str(),
                    token.as_str(),
                    if token.as_str().contains("ID") || token.as_str().contains("CONTAINER") {
                        "container"
                    } else {
                        "workspace"
                    }
                ),
            }
        } else if c.cmd.terminal.is_none() && guard::needs_terminal(&run) {
            StepKind::Refuse {
                text,
                reason: "this command asks for an interactive terminal (`-i`/`-t`): run it on a named terminal with `<!-- workbook: open=NAME -->`, or skip it with `skip=\"why\"`".into(),
            }
        } else {
            StepKind::Command(Command {
                text,
                run,
                binds: dynamic,
                ..c.cmd.clone()
            })
        };
        script.steps.push(Step {
            block: block_index,
            line: block.content_line + line.line,
            kind,
        });
    }

    let note = d.and_then(|d| d.get("note")).map(str::to_string);
    let hidden = d.is_some_and(|d| d.has("hidden"));
    script.blocks.push(BlockPlan {
        item,
        steps: first..script.steps.len(),
        note,
        hidden,
    });
    Ok(())
}

/// The terminals a chapter opens, in the order its blocks do.
#[derive(Debug, Default)]
pub(super) struct Terminals {
    open: BTreeSet<String>,
    /// Terminals whose opening command is skipped.
    skipped: BTreeSet<String>,
}

/// Settings of one command of a block: what its command will carry, and
/// what only decides how the command becomes a step.
#[derive(Debug, Clone)]
struct PerCommand {
    /// The directives the command carries; its text is filled in last.
    cmd: Command,
    skip: Option<String>,
    open: bool,
}

/// A share as `50%` or `0.5`, above 0 and at most 1.
fn parse_share(value: &str) -> Result<f64> {
    let share = match value.trim().strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => value.trim().parse::<f64>(),
    };
    match share {
        Ok(s) if s > 0.0 && s <= 1.0 => Ok(s),
        _ => bail!(
            "directive: `time-at-most={value}`: use a share of the first build, such as `50%`"
        ),
    }
}

impl Default for PerCommand {
    fn default() -> Self {
        PerCommand {
            cmd: Command::plain(String::new(), String::new()),
            skip: None,
            open: false,
        }
    }
}

fn parse_seconds(key: &str, value: &str) -> Result<Duration> {
    let secs: f64 = value
        .parse()
        .ok()
        .filter(|s: &f64| crate::config::valid_timeout(*s))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "directive: `{key}={value}`: use a number of seconds up to {}",
                crate::config::MAX_TIMEOUT_SECS
            )
        })?;
    Ok(Duration::from_secs_f64(secs))
}

/// An HTTP probe from a directive such as `probe=http://localhost:8082/`.
pub(super) fn probe_step(
    script: &mut Script,
    item: usize,
    line: usize,
    d: &Directive,
) -> Result<()> {
    const KEYS: &[&str] = &["probe", "status", "contains", "timeout", "note"];
    if let Some(bad) = d.settings.iter().find(|s| !KEYS.contains(&s.key.as_str())) {
        bail!("directive: `{}` does not go with `probe`", bad.key);
    }
    let url = d.get("probe").unwrap_or("").to_string();
    probe::parse_url(&url)?;
    let status = match d.get("status") {
        Some(v) => Some(v.parse::<u16>().map_err(|_| {
            anyhow::anyhow!("directive: `status={v}`: use an HTTP status such as 200")
        })?),
        None => None,
    };
    let timeout = d
        .get("timeout")
        .map(|v| parse_seconds("timeout", v))
        .transpose()?;

    let kind = StepKind::Probe(Probe {
        url,
        status,
        contains: d.get("contains").map(str::to_string),
        timeout,
    });
    push_single_step(script, item, line, kind, d.get("note").map(str::to_string));
    Ok(())
}

pub(super) fn file_block(
    script: &mut Script,
    item: usize,
    block: &crate::chapter::Block,
    d: Option<&Directive>,
) -> Result<()> {
    let Some(d) = d else { return Ok(()) };
    if let Some(bad) = d.settings.iter().find(|s| {
        !matches!(
            s.key.as_str(),
            "file" | "edit" | "replace" | "note" | "bind"
        )
    }) {
        bail!(
            "directive: `{}` does not apply to a `{}` block; use `file=PATH` or `edit=PATH replace=LINE`",
            bad.key,
            block.lang
        );
    }
    let note = d.get("note").map(str::to_string);
    let kind = match (d.get("file"), d.get("edit"), d.get("replace")) {
        (Some(_), Some(_), _) => bail!("directive: use either `file` or `edit`, not both"),
        (Some(path), None, None) if !is_relative_path(path) => {
            bail!(
                "directive: `file={path}`: write a path relative to the shell's current directory, such as `Dockerfile` or `src/app.py`"
            )
        }
        (None, Some(path), _) if !is_relative_path(path) => {
            bail!(
                "directive: `edit={path}`: write a path relative to the shell's current directory"
            )
        }
        (Some(path), None, None) => StepKind::Write {
            path: path.to_string(),
            content: block.content.clone(),
        },
        (None, Some(path), Some(replace)) => {
            let lines: Vec<String> = block
                .content
                .lines()
                .filter(|l| l.trim() != "...")
                .map(str::to_string)
                .collect();
            StepKind::Edit {
                path: path.to_string(),
                replace: replace.to_string(),
                lines,
            }
        }
        (None, Some(_), None) => bail!(
            "directive: `edit` needs `replace=\"LINE\"`: the line of the file that the block's lines take the place of"
        ),
        (_, None, Some(_)) => bail!("directive: `replace` only goes with `edit`"),
        (None, None, None) => {
            if let Some(note) = note {
                script.notes.insert(item, note);
            }
            return Ok(());
        }
    };

    push_single_step(script, item, block.content_line, kind, note);
    Ok(())
}

/// Adds a block that makes exactly one step: a file written or edited, or
/// a probe.
fn push_single_step(
    script: &mut Script,
    item: usize,
    line: usize,
    kind: StepKind,
    note: Option<String>,
) {
    let first = script.steps.len();
    script.steps.push(Step {
        block: script.blocks.len(),
        line,
        kind,
    });
    script.blocks.push(BlockPlan {
        item,
        steps: first..first + 1,
        note,
        hidden: false,
    });
}
