//! The view of one record that the transcript template draws.

use serde_json::{Value, json};

use super::{Labels, ansi, bytes, code_spans, escape};
use crate::record::{Outcome, Record};
use crate::script::{Expect, Script, StepKind};

pub(super) fn step_view(record: &Record, script: &Script, labels: &Labels) -> Value {
    let is_file = matches!(
        script.steps[record.step].kind,
        StepKind::Write { .. } | StepKind::Edit { .. }
    );
    let ok = record.is_ok();
    let (state, status) = match &record.outcome {
        Outcome::Exited(code) => (
            if ok { "ok" } else { "failed" },
            format!("{} {code}", labels.exit),
        ),
        Outcome::TimedOut(after) => (
            "failed",
            format!(
                "{} ({})",
                labels.timed_out,
                labels.seconds(after.as_secs_f64())
            ),
        ),
        Outcome::ShellEnded => ("failed", labels.shell_ended.to_string()),
        Outcome::Waiting => (if ok { "ok" } else { "failed" }, labels.waiting.to_string()),
        Outcome::Ready(pattern) => (
            if ok { "ok" } else { "failed" },
            format!(
                "{} <code>{}</code>; {}",
                labels.ready,
                escape(pattern),
                labels.keeps_running
            ),
        ),
        Outcome::Interrupted(code) => (
            if ok { "ok" } else { "failed" },
            format!("{} ({} {code})", labels.interrupted, labels.exit),
        ),
        Outcome::Answered(code) => (if ok { "ok" } else { "failed" }, format!("HTTP {code}")),
        Outcome::Wrote(path) => (
            "file",
            format!("{}: <code>{}</code>", labels.wrote, escape(path)),
        ),
        Outcome::Edited(path) => (
            "file",
            format!("{} <code>{}</code>", labels.edited, escape(path)),
        ),
        Outcome::Skipped(reason) => (
            "skipped",
            format!("{}: {}", labels.skipped, code_spans(reason)),
        ),
        Outcome::Failed(reason) => (
            "failed",
            format!("{}: {}", labels.failed, code_spans(reason)),
        ),
    };

    let describe = |expect: Expect| match expect {
        Expect::Status(n) => n.to_string(),
        Expect::NonZero => labels.nonzero_status.to_string(),
        Expect::Any => labels.any_status.to_string(),
    };
    let expected = record
        .expect
        .filter(|e| *e != Expect::Status(0))
        .map(describe);
    // The status line already tells timeouts and refusals; a wrong exit
    // status is said in the page's language, anything else as reported.
    let problem = match (&record.outcome, record.expect) {
        _ if ok => None,
        (Outcome::Exited(code), Some(expect)) if !expect.accepts(*code) => {
            // What the session found out about the failure (the container
            // that holds a port, say) follows the expectation.
            let detail = record
                .problem
                .as_deref()
                .and_then(|p| p.split_once("; "))
                .map(|(_, d)| d);
            let expected = format!("{} {} {}", labels.expected, labels.exit, describe(expect));
            Some(match detail {
                Some(detail) => format!("{expected}; {}", code_spans(detail)),
                None => expected,
            })
        }
        (Outcome::Failed(_) | Outcome::Skipped(_), _) => None,
        _ => record.problem.as_deref().map(code_spans),
    };

    let ran = !matches!(
        record.outcome,
        Outcome::Wrote(_) | Outcome::Edited(_) | Outcome::Skipped(_) | Outcome::Failed(_)
    );
    let output = &record.output;
    let omitted = output.is_truncated().then(|| {
        format!(
            "… {}: {} ({}) …",
            labels.omitted,
            labels.count(output.omitted_lines),
            bytes(output.omitted_bytes)
        )
    });

    json!({
        "state": state,
        "file": is_file,
        "ran": ran && record.http.is_none(),
        "verified": ran,
        "screen": record.terminal.is_some(),
        "terminal": record.terminal,
        "http": record.http.as_ref().map(|r| http_view(record, r, labels)),
        "build": build_view(record, labels),
        "cwd": record.cwd,
        "command": ansi::to_html(record.command.as_bytes()),
        "head": ansi::to_html(&output.head),
        "omitted": omitted,
        "tail": ansi::to_html(&output.tail),
        "empty": ran && output.head.is_empty() && output.tail.is_empty(),
        "status": status,
        "expected": expected,
        "problem": problem,
        "duration": ran.then(|| labels.seconds(record.duration.as_secs_f64())),
        "line": record.line,
    })
}

/// A probe's answer: HTML both as a sandboxed page without scripts and as
/// escaped source, JSON pretty-printed, anything else as text.
fn http_view(record: &Record, response: &crate::session::http::Response, labels: &Labels) -> Value {
    const SHOWN: usize = 64 * 1024;
    let textual = ["text/", "json", "xml", "html", "javascript"]
        .iter()
        .any(|t| response.content_type.contains(t))
        && !response.body.contains(&0);
    let kind = if !textual {
        "binary"
    } else if response.content_type.contains("html") {
        "html"
    } else if response.content_type.contains("json") {
        "json"
    } else {
        "text"
    };
    let body =
        String::from_utf8_lossy(&response.body[..response.body.len().min(SHOWN)]).to_string();
    let mut shown = match kind {
        "binary" => format!("({}, {})", labels.binary, bytes(response.body.len() as u64)),
        "json" => serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| body.clone()),
        _ => body.clone(),
    };
    if textual && response.body.len() > SHOWN {
        shown.push_str(&format!("\n… ({})", bytes(response.body.len() as u64)));
    }
    json!({
        "request": escape(&record.command),
        "status": response.status,
        "reason": escape(&response.reason),
        "content_type": escape(&response.content_type),
        "kind": kind,
        "html": kind == "html",
        // For the frame's srcdoc attribute; the sandbox allows no scripts.
        "srcdoc": escape(&body),
        "body": ansi::to_html(shown.as_bytes()),
        "rendered_label": labels.rendered_page,
        "source_label": labels.page_source,
    })
}

/// The steps of a `docker build`, when its whole output was kept and reads
/// as either builder's.
fn build_view(record: &Record, labels: &Labels) -> Option<Value> {
    let is_build = ["docker build", "docker image build", "docker builder build"]
        .iter()
        .any(|c| record.command.contains(c));
    if !is_build || record.output.is_truncated() || record.terminal.is_some() {
        return None;
    }
    let mut build = crate::builds::parse(&ansi::to_text(&record.output.head))?;
    let arrival = crate::builds::time_legacy_steps(
        &mut build,
        &record.output.step_marks,
        record.duration.as_secs_f64(),
    );
    let steps: Vec<Value> = build
        .steps
        .iter()
        .map(|s| {
            let (class, state) = if s.failed {
                ("failed", labels.build_failed)
            } else if s.base {
                ("base", labels.base_image)
            } else if s.cached {
                ("cached", labels.from_cache)
            } else {
                ("built", labels.rebuilt)
            };
            json!({
                "index": match &s.stage {
                    Some(stage) => format!("{stage} {}", s.index),
                    None => s.index.to_string(),
                },
                "total": s.total,
                "instruction": escape(&s.instruction),
                "class": class,
                "state": state,
                "seconds": s.seconds.map(|x| labels.seconds(x)).unwrap_or_else(|| "–".to_string()),
            })
        })
        .collect();
    // A claim about the build's time, with the figures it rests on.
    let timing = record.timing.as_ref().map(|t| {
        let first = t.first.as_secs_f64();
        let share = if first > 0.0 {
            record.duration.as_secs_f64() / first * 100.0
        } else {
            0.0
        };
        format!(
            "{} {} = {share:.0} % {} ({} {}: {}); {} {:.0} %",
            labels.build_time,
            labels.seconds(record.duration.as_secs_f64()),
            labels.of_first_build,
            labels.line,
            t.first_line,
            labels.seconds(first),
            labels.at_most,
            t.at_most * 100.0
        )
    });
    Some(json!({
        "builder": builder_name(build.builder),
        "timed": build.builder == crate::builds::Builder::BuildKit || arrival,
        "arrival": arrival,
        "steps": steps,
        "timing": timing,
    }))
}

/// A builder's name as the page shows it.
pub(super) fn builder_name(builder: crate::builds::Builder) -> &'static str {
    match builder {
        crate::builds::Builder::BuildKit => "BuildKit",
        crate::builds::Builder::Legacy => "Legacy-Builder",
    }
}
