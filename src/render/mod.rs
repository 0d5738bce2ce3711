//! Rendering records into the chapter: transcripts after their blocks or in
//! place of screenshots, admonitions for VuePress containers, and the
//! chapter's provenance. Rendering knows nothing of processes.
//!
//! Output is spliced into the original Markdown by byte range, so the rest
//! of the chapter is never re-serialised. Every fragment is a single HTML
//! block without blank lines, so Markdown never reads into it.

pub mod ansi;
mod chart;
pub mod labels;
mod step;

use step::step_view;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use handlebars::Handlebars;
use serde_json::{Value, json};

use crate::chapter::{Chapter, ItemKind};
use crate::record::{Outcome, Record};
use crate::script::Script;
use crate::session::Report;
pub use labels::Labels;

const TEMPLATES: &[(&str, &str)] = &[
    ("transcript", include_str!("../../theme/transcript.hbs")),
    (
        "chapter-error",
        include_str!("../../theme/chapter-error.hbs"),
    ),
    ("missing-shot", include_str!("../../theme/missing-shot.hbs")),
    ("note", include_str!("../../theme/note.hbs")),
    ("provenance", include_str!("../../theme/provenance.hbs")),
];

/// The handlebars templates that draw the fragments.
pub struct Templates {
    registry: Handlebars<'static>,
}

impl Templates {
    /// The built-in templates, each replaced by `<dir>/<name>.hbs` if that
    /// file exists.
    pub fn load(dir: Option<&Path>) -> Result<Templates> {
        if let Some(dir) = dir
            && !dir.is_dir()
        {
            anyhow::bail!(
                "book.toml [preprocessor.workbook]: `templates` names {}, which is not a directory",
                dir.display()
            );
        }
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        for (name, builtin) in TEMPLATES {
            let custom = dir
                .map(|d| d.join(format!("{name}.hbs")))
                .filter(|p| p.is_file());
            match custom {
                Some(path) => registry
                    .register_template_file(name, &path)
                    .with_context(|| format!("reading template {}", path.display()))?,
                None => registry
                    .register_template_string(name, *builtin)
                    .with_context(|| format!("built-in template {name}"))?,
            }
        }
        Ok(Templates { registry })
    }

    fn render(&self, name: &str, data: &Value) -> Result<String> {
        let html = self
            .registry
            .render(name, data)
            .with_context(|| format!("rendering template {name}"))?;
        Ok(compact(&html))
    }
}

/// Removes blank lines and indentation, which would end or change a
/// Markdown HTML block. Text inside `<pre>` holds no raw newline.
fn compact(html: &str) -> String {
    let lines: Vec<&str> = html
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines.join("\n")
}

/// Everything the renderer needs besides the chapter and its script.
pub struct Run<'a> {
    pub report: Option<&'a Report>,
    /// Problems that stopped the chapter from running, shown at its top.
    pub errors: &'a [String],
}

/// Renders the chapter's Markdown with transcripts spliced in.
pub fn chapter(
    chapter: &Chapter,
    script: Option<&Script>,
    run: Run<'_>,
    templates: &Templates,
) -> Result<String> {
    let labels = Labels::for_lang(chapter.front.lang.as_deref());
    // Records by step: a chapter shown from the store may lack some.
    let all: &[Record] = run.report.map(|r| r.records.as_slice()).unwrap_or_default();
    let by_step: BTreeMap<usize, &Record> = all.iter().map(|r| (r.step, r)).collect();
    let records = |s: usize| by_step.get(&s).copied();
    let stale = |r: &Record| run.report.is_some_and(|rep| rep.stale.contains(&r.step));

    let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();

    for item in &chapter.items {
        let replacement = match &item.kind {
            ItemKind::FrontMatter | ItemKind::Directive(_) => String::new(),
            ItemKind::FrontMatterRef(value) => value.clone(),
            ItemKind::ContainerStart { kind, title } => {
                container_start(kind, title.as_deref(), &labels)
            }
            ItemKind::ContainerEnd => "\n</blockquote>\n".to_string(),
            ItemKind::Block(_) | ItemKind::Image(_) => continue,
        };
        edits.push((item.range.clone(), replacement));
    }

    if let Some(script) = script {
        let view = |r: &Record| {
            let mut v = step_view(r, script, &labels);
            v["stale"] = json!(stale(r));
            v
        };
        // A step the store has no valid record for, shown as such.
        let missing = |s: usize| -> Option<Value> {
            let report = run.report?;
            if !report.missing.contains(&s) {
                return None;
            }
            let command = match &script.steps[s].kind {
                crate::script::StepKind::Command(c) => c.text.clone(),
                crate::script::StepKind::Probe(p) => format!("GET {}", p.url),
                crate::script::StepKind::Write { path, .. }
                | crate::script::StepKind::Edit { path, .. } => path.clone(),
                crate::script::StepKind::Skip { text, .. }
                | crate::script::StepKind::Refuse { text, .. } => text.clone(),
            };
            Some(json!({
                "state": "missing",
                "file": false,
                "ran": false,
                "verified": false,
                "screen": false,
                "terminal": null,
                "http": null,
                "build": null,
                "cwd": "",
                "command": escape(&command),
                "head": "",
                "omitted": null,
                "tail": "",
                "empty": false,
                "status": labels.no_record,
                "expected": null,
                "problem": null,
                "duration": null,
                "line": script.steps[s].line,
                "stale": false,
            }))
        };
        let view_of = |s: usize| records(s).map(view).or_else(|| missing(s));
        let shown: Vec<usize> = script
            .shots
            .iter()
            .flat_map(|s| s.steps.iter().copied())
            .collect();
        for block in &script.blocks {
            let item = &chapter.items[block.item];
            if block.hidden {
                // A check the reader need not see: when it passes, only its
                // note shows, as a verified statement; when it fails, all.
                let failed = block
                    .steps
                    .clone()
                    .any(|s| records(s).is_some_and(|r| !r.is_ok()));
                let ran = block.steps.clone().all(|s| records(s).is_some());
                let views: Vec<Value> = block.steps.clone().filter_map(records).map(view).collect();
                let html = if failed && !views.is_empty() {
                    format!(
                        "\n{}\n\n",
                        templates
                            .render("transcript", &transcript_view(&labels, None, None, views))?
                    )
                } else if let (true, Some(note)) = (ran, &block.note) {
                    let data = json!({ "labels": labels, "title": labels.verified_note, "html": markdown_inline(note) });
                    format!("\n{}\n\n", templates.render("note", &data)?)
                } else {
                    String::new()
                };
                edits.push((item.range.clone(), html));
                continue;
            }
            let mut html = String::new();
            if let Some(note) = &block.note {
                html.push_str(&templates.render(
                    "note",
                    &json!({ "labels": labels, "title": null, "html": markdown_inline(note) }),
                )?);
                html.push('\n');
            }
            let steps: Vec<usize> = block.steps.clone().filter(|s| !shown.contains(s)).collect();
            let views: Vec<Value> = steps.iter().filter_map(|s| view_of(*s)).collect();
            if !views.is_empty() {
                let data = transcript_view(&labels, None, None, views);
                html.push_str(&templates.render("transcript", &data)?);
            }
            if !html.is_empty() {
                edits.push((item.range.end..item.range.end, format!("\n{html}\n\n")));
            }
        }

        let ordered: Vec<&Record> = by_step.values().copied().collect();
        edits.extend(build_charts(chapter, script, &ordered, &labels));

        for (item, note) in &script.notes {
            let html = templates.render(
                "note",
                &json!({ "labels": labels, "title": null, "html": markdown_inline(note) }),
            )?;
            let at = chapter.items[*item].range.end;
            edits.push((at..at, format!("\n{html}\n\n")));
        }

        for item in &script.inline_missing {
            let item = &chapter.items[*item];
            let ItemKind::Image(image) = &item.kind else {
                continue;
            };
            let html = format!(
                "<span class=\"wb-missing-inline\">[{}: {}]</span>",
                labels.missing_shot,
                escape(&image.alt)
            );
            edits.push((item.range.clone(), html));
        }

        for shot in &script.shots {
            let item = &chapter.items[shot.item];
            let ItemKind::Image(image) = &item.kind else {
                continue;
            };
            let views: Vec<Value> = shot.steps.iter().filter_map(|s| view_of(*s)).collect();
            let html = if views.is_empty() {
                let reason = if shot.steps.is_empty() {
                    None
                } else {
                    Some(labels.not_run_chapter)
                };
                templates.render("missing-shot", &json!({ "labels": labels, "alt": image.alt, "src": image.src, "reason": reason }))?
            } else {
                let data = transcript_view(&labels, Some(&image.alt), Some(&image.src), views);
                templates.render("transcript", &data)?
            };
            edits.push((item.range.clone(), format!("\n\n{html}\n\n")));
        }
    }

    let mut top = String::new();
    if !run.errors.is_empty() {
        let html = templates.render(
            "chapter-error",
            &json!({ "labels": labels, "errors": run.errors }),
        )?;
        top = format!("{html}\n\n");
    }
    let mut bottom = String::new();
    if let Some(report) = run.report {
        bottom = format!(
            "\n\n{}\n",
            templates.render("provenance", &provenance_view(report, &labels))?
        );
    }

    Ok(format!("{top}{}{bottom}", splice(&chapter.text, edits)))
}

/// Charts for images built more than once from the same directory, each
/// after the block of the series' last build.
fn build_charts(
    chapter: &Chapter,
    script: &Script,
    records: &[&Record],
    labels: &Labels,
) -> Vec<(std::ops::Range<usize>, String)> {
    // Per image and directory: the tag, and each build's step, steps and seconds.
    type Series = (String, String, Vec<(usize, crate::builds::Build, f64)>);
    let mut series: Vec<Series> = Vec::new();
    for record in records {
        let Some((tag, _)) = crate::builds::series(&record.command, &record.cwd) else {
            continue;
        };
        if record.output.is_truncated() || record.terminal.is_some() {
            continue;
        }
        let Some(build) = crate::builds::parse(&ansi::to_text(&record.output.head)) else {
            continue;
        };
        let key = format!("{tag}@{}", record.cwd);
        let entry = (record.step, build, record.duration.as_secs_f64());
        match series.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, _, builds)) => builds.push(entry),
            None => series.push((key, tag, vec![entry])),
        }
    }

    let mut edits = Vec::new();
    for (_, tag, builds) in series.iter().filter(|(_, _, b)| b.len() >= 2) {
        let bars: Vec<chart::Bar<'_>> = builds
            .iter()
            .map(|(_, build, seconds)| chart::Bar {
                build,
                seconds: *seconds,
            })
            .collect();
        let last_step = builds.last().map(|(step, _, _)| *step).unwrap_or_default();
        let block = &script.blocks[script.steps[last_step].block];
        let at = chapter.items[block.item].range.end;
        let html = format!(
            "\n<figure class=\"wb-chart-figure\">{}</figure>\n\n",
            chart::svg(tag, &bars, labels)
        );
        edits.push((at..at, html));
    }
    edits
}

fn transcript_view(
    labels: &Labels,
    caption: Option<&str>,
    replaces: Option<&str>,
    steps: Vec<Value>,
) -> Value {
    let ran = steps.iter().any(|s| s["verified"] == true);
    let failed = steps.iter().any(|s| s["state"] == "failed");
    let only_files = steps.iter().all(|s| s["file"] == true);
    json!({
        "labels": labels,
        "caption": caption,
        "replaces": replaces,
        "caption_note": if failed { labels.check_failed } else if ran { labels.replaces } else { labels.not_verified },
        "only_files": only_files,
        "steps": steps,
    })
}

fn splice(text: &str, mut edits: Vec<(std::ops::Range<usize>, String)>) -> String {
    edits.sort_by_key(|(r, _)| (r.start, r.end));
    let mut out = String::with_capacity(text.len() * 2);
    let mut at = 0;
    for (range, replacement) in edits {
        if range.start < at {
            continue;
        }
        out.push_str(&text[at..range.start]);
        out.push_str(&replacement);
        at = range.end;
    }
    out.push_str(&text[at..]);
    out
}

fn container_start(kind: &str, title: Option<&str>, labels: &Labels) -> String {
    let (class, default_title) = match kind {
        "tip" => ("tip", labels.tip),
        "warning" => ("warning", labels.warning),
        "danger" | "caution" => ("caution", labels.danger),
        "details" => ("note", labels.details),
        _ => ("note", labels.info),
    };
    let title = escape(title.unwrap_or(default_title));
    // mdBook's own admonition classes, so every built-in theme styles them;
    // the title is the sheet's own.
    format!(
        "\n<blockquote class=\"blockquote-tag blockquote-tag-{class}\">\n<p class=\"blockquote-tag-title\">{title}</p>\n\n"
    )
}

pub(crate) fn escape(text: &str) -> String {
    ansi::to_html(text.as_bytes()).replace("&#10;", " ")
}

/// A maintainer's note, written in Markdown, as HTML.
fn markdown_inline(text: &str) -> String {
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, pulldown_cmark::Parser::new(text));
    html.replace('\n', " ")
}

/// Escapes a message and shows its `backticked` parts as code.
pub(crate) fn code_spans(text: &str) -> String {
    let escaped = escape(text);
    let mut out = String::new();
    for (i, part) in escaped.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str(&format!("<code>{part}</code>"));
        } else {
            out.push_str(part);
        }
    }
    if escaped.matches('`').count() % 2 == 1 {
        return escaped;
    }
    out
}

pub(crate) fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// When the records were made: one date, or the oldest and the newest;
/// nothing when there are none.
fn dates(verified: &[String]) -> Option<String> {
    match (verified.iter().min(), verified.iter().max()) {
        (Some(a), Some(b)) if a != b => Some(format!("{a} – {b}")),
        (Some(a), _) => Some(a.clone()),
        _ => None,
    }
}

fn provenance_view(report: &Report, labels: &Labels) -> Value {
    let count = |f: &dyn Fn(&Record) -> bool| report.records.iter().filter(|r| f(r)).count();
    let skipped = count(&|r| matches!(r.outcome, Outcome::Skipped(_)));
    let failed = count(&|r| !r.is_ok());
    let stale = count(&|r| {
        r.is_ok() && !matches!(r.outcome, Outcome::Skipped(_)) && report.stale.contains(&r.step)
    });
    // Builders as the build outputs show them, and the images from
    // outside the chapter with the ids they had, stand-ins marked.
    let mut builders: Vec<&str> = report
        .records
        .iter()
        .filter(|r| r.command.contains("build"))
        .filter_map(|r| crate::builds::parse(&ansi::to_text(&r.output.head)))
        .map(|b| step::builder_name(b.builder))
        .collect();
    builders.sort_unstable();
    builders.dedup();
    let mut images: BTreeMap<&str, &str> = BTreeMap::new();
    for map in &report.images {
        for (reference, id) in map {
            images.insert(reference, id);
        }
    }
    let images: Vec<Value> = images
        .into_iter()
        .map(|(reference, id)| {
            let short = id.trim_start_matches("sha256:").get(..12).unwrap_or(id);
            json!({ "ref": reference, "id": short, "stand_in": report.stand_ins.contains(reference) })
        })
        .collect();
    json!({
        "labels": labels,
        "date": dates(&report.verified),
        "builders": builders,
        "images": images,
        "stale": stale,
        "missing": report.missing.len(),
        "engine": report.engine.server,
        "client": report.engine.client,
        "ok": report.records.len() - skipped - failed - stale,
        "skipped": skipped,
        "failed": failed,
        "all_ok": failed == 0 && report.missing.is_empty(),
        "stand_ins": report.stand_ins.iter().collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splices_by_range() {
        let edits = vec![
            (4..5, "X".to_string()),
            (0..0, "<".to_string()),
            (9..9, ">".to_string()),
        ];
        assert_eq!(splice("abc d efg", edits), "<abc X efg>");
    }

    #[test]
    fn compacts_fragments_so_markdown_keeps_out() {
        assert_eq!(
            compact("<div>\n\n   <pre>a&#10;&#10;b</pre>\n  </div>\n"),
            "<div>\n<pre>a&#10;&#10;b</pre>\n</div>"
        );
    }
}

#[cfg(test)]
mod snapshot_tests {
    use std::time::Duration;

    use super::*;
    use crate::script::Expect;
    use crate::session::capture::Output;

    fn record(step: usize, line: usize, command: &str, output: &[u8], outcome: Outcome) -> Record {
        let problem = match &outcome {
            Outcome::Exited(0) | Outcome::Wrote(_) | Outcome::Skipped(_) => None,
            Outcome::Exited(n) => Some(format!("exited with {n}, expected 0")),
            _ => Some("failed".to_string()),
        };
        Record {
            step,
            line,
            command: command.to_string(),
            cwd: "~/demo".to_string(),
            output: Output::whole(output),
            outcome,
            expect: Some(Expect::Status(0)),
            duration: Duration::from_millis(1234),
            problem,
            terminal: None,
            http: None,
            timing: None,
        }
    }

    #[test]
    fn chapter_with_transcripts_screenshot_and_admonition() {
        let md = "---\ntitle: Demo\nlang: de-DE\n---\n# {{ $frontmatter.title }}\n\n:::tip Gut zu wissen\nText\n:::\n\n<!-- workbook: note=\"Die `Ausgabe` ist echt.\" -->\n```shell\nprintf '\\033[32mgrün\\033[0m <b>\\n'\nfalse\n```\n![Bild](./img/x.png)\n\n<!-- workbook: file=Dockerfile -->\n```dockerfile\nFROM x\n```\n\n<!-- workbook: skip=\"braucht ein Terminal\" -->\n```shell\ndocker run -it x\n```\n";
        let parsed = crate::chapter::parse("demo.md", md).unwrap();
        let script = crate::script::build(&parsed, &|src| src.starts_with("./img")).unwrap();
        let report = Report {
            records: vec![
                record(
                    0,
                    13,
                    "printf '\\033[32mgrün\\033[0m <b>\\n'",
                    b"\x1b[32mgr\xc3\xbcn\x1b[0m <b>\n",
                    Outcome::Exited(0),
                ),
                record(1, 14, "false", b"", Outcome::Exited(1)),
                record(
                    2,
                    19,
                    "Dockerfile",
                    b"",
                    Outcome::Wrote("~/demo/Dockerfile".into()),
                ),
                record(
                    3,
                    24,
                    "docker run -it x",
                    b"",
                    Outcome::Skipped("braucht ein Terminal".into()),
                ),
            ],
            engine: crate::docker::Engine {
                server: "20.10.24".into(),
                client: "28.2.2".into(),
            },
            stand_ins: ["ubuntu:14.04".to_string()].into_iter().collect(),
            verified: vec!["2026-12-04 17:40 UTC".into()],
            ..Report::default()
        };
        let templates = Templates::load(None).unwrap();
        let run = Run {
            report: Some(&report),
            errors: &[],
        };
        let html = chapter(&parsed, Some(&script), run, &templates).unwrap();
        let date = regex::Regex::new(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC").unwrap();
        insta::assert_snapshot!(date.replace_all(&html, "[date]"));
    }
}
