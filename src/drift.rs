//! Drift: what a fresh run of a chapter shows that its store does not,
//! after masking what differs between two honest runs. Each drifted step
//! gets a unified diff on stderr; builds that became much slower than their
//! record are mentioned, but do not count as drift.

use crate::store::normalize::Comparator;
use crate::store::{ChapterStore, Entry};

/// A build this many times slower than its record, and slower by more than
/// [`SLOWER_BY_SECS`], is mentioned. Timings on shared machines vary a lot,
/// so the margin is wide.
const SLOWER_RATIO: f64 = 3.0;
const SLOWER_BY_SECS: f64 = 5.0;

/// Compares a fresh run with the store; prints the diffs and returns one
/// problem per drifted, new or vanished step.
pub fn report(
    chapter: &str,
    stored: Option<&ChapterStore>,
    fresh: &[Entry],
    comparator: &Comparator,
) -> Vec<String> {
    let mut problems = Vec::new();
    let empty = Vec::new();
    let old = stored.map(|s| &s.steps).unwrap_or(&empty);
    for entry in fresh {
        let record = &entry.record;
        let at = format!("{chapter}:{}: `{}`", record.line, record.command);
        let Some(was) = old.get(record.step) else {
            problems.push(format!(
                "{at}: not in the store; `mdbook-workbook accept` records it"
            ));
            continue;
        };
        if let Some(diff) = comparator.diff(&was.record, record) {
            eprintln!("drift in {at}:\n{diff}");
            problems.push(format!("{at}: differs from its record (diff above)"));
        }
        let (then, now) = (
            was.record.duration.as_secs_f64(),
            record.duration.as_secs_f64(),
        );
        if record.command.contains("docker build")
            && now > then * SLOWER_RATIO
            && now - then > SLOWER_BY_SECS
        {
            eprintln!(
                "info: {at} took {now:.1} s, {:.1} times its record of {then:.1} s (not counted as drift)",
                now / then.max(0.001)
            );
        }
    }
    let last = fresh.last().map(|e| e.record.step + 1).unwrap_or(0);
    for gone in old.iter().skip(last) {
        problems.push(format!(
            "{chapter}:{}: `{}`: stored, but no longer in the chapter; `mdbook-workbook accept` removes it",
            gone.record.line, gone.record.command
        ));
    }
    problems
}
