//! Claims about build times: a build may take at most a share of the first
//! build of the same image in the same directory. Only relations are
//! checked, never absolute times, which no two machines share.

use crate::record::{Outcome, Record, Timing};
use crate::script::{Script, StepKind};

/// Checks the `time-at-most` claims of the records of steps from `from` on.
/// `records` holds the chapter's records in order, older ones included, so
/// that a resumed run compares with a first build it did not run itself.
pub fn check(script: &Script, records: &mut [Record], from: usize) {
    for i in 0..records.len() {
        let record = &records[i];
        if record.step < from || !matches!(record.outcome, Outcome::Exited(0)) {
            continue;
        }
        let Some(StepKind::Command(command)) = script.steps.get(record.step).map(|s| &s.kind)
        else {
            continue;
        };
        let Some(share) = command.time_at_most else {
            continue;
        };
        let series = crate::builds::series(&record.command, &record.cwd);
        let first = series.as_ref().and_then(|series| {
            records[..i].iter().find(|r| {
                matches!(r.outcome, Outcome::Exited(0))
                    && crate::builds::series(&r.command, &r.cwd).as_ref() == Some(series)
            })
        });
        let Some(first) = first else {
            let problem = match series {
                Some((tag, cwd)) => format!(
                    "`time-at-most`: no earlier build of `{tag}` in `{cwd}` in this chapter to compare with"
                ),
                None => "`time-at-most` applies to a `docker build --tag` command".to_string(),
            };
            records[i].problem.get_or_insert(problem);
            continue;
        };
        let timing = Timing {
            at_most: share,
            first_line: first.line,
            first: first.duration,
        };
        let (took, then) = (record.duration.as_secs_f64(), first.duration.as_secs_f64());
        let record = &mut records[i];
        if took > share * then && record.problem.is_none() {
            record.problem = Some(format!(
                "took {took:.2} s, more than {:.0} % of the first build ({then:.2} s, line {})",
                share * 100.0,
                timing.first_line
            ));
        }
        record.timing = Some(timing);
    }
}
