//! Pages of chapters that did not run now: shown from the store, or with
//! the reasons at their top.

use anyhow::Result;

use crate::chapter;
use crate::plan;
use crate::render::{self, Templates};
use crate::script;
use crate::session::Report;
use crate::store::ChapterStore;

/// The chapter shown from its store: valid records as they are, stale ones
/// marked, where they still belong to their step.
pub(super) fn shown_from_store(
    parsed: &chapter::Chapter,
    script: &script::Script,
    stored: Option<&ChapterStore>,
    plan: &plan::Plan,
    errors: Vec<String>,
    templates: &Templates,
) -> Result<(String, Vec<String>)> {
    let empty = ChapterStore {
        format: crate::store::FORMAT,
        chapter: parsed.name.clone(),
        tool: String::new(),
        engine: Default::default(),
        stand_ins: Vec::new(),
        steps: Vec::new(),
    };
    let stored = stored.unwrap_or(&empty);
    let mut report = Report {
        engine: stored.engine.clone(),
        stand_ins: stored.stand_ins.iter().cloned().collect(),
        ..Report::default()
    };
    report.missing = (0..script.steps.len()).collect();
    for (index, entry) in stored.steps.iter().enumerate() {
        let Some(step) = script.steps.get(index) else {
            break;
        };
        if index >= plan.fresh() {
            if !plan::same_step(&entry.record, step) {
                continue;
            }
            report.stale.insert(index);
        }
        report.missing.remove(&index);
        report.verified.push(entry.verified.clone());
        report.images.push(entry.images.clone());
        let mut record = entry.record.clone();
        record.step = index;
        report.records.push(record);
    }
    report.verified.sort();
    report.verified.dedup();
    if !report.stale.is_empty() || !report.missing.is_empty() {
        tracing::warn!(
            "{}: {} step(s) shown from older records, not verified again, and {} without any record",
            parsed.name,
            report.stale.len(),
            report.missing.len()
        );
    }
    let problems = errors.clone();
    for e in &errors {
        tracing::error!("{e}");
    }
    let run = render::Run {
        report: Some(&report),
        errors: &errors,
    };
    Ok((
        render::chapter(parsed, Some(script), run, templates)?,
        problems,
    ))
}

/// The chapter with the reasons it did not run at its top.
pub(super) fn not_run(
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
pub(super) fn page_with_errors(
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
