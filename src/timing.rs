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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::record::Outcome;
    use crate::session::capture::Output;

    fn build(step: usize, line: usize, secs: f64) -> Record {
        Record {
            step,
            line,
            command: "docker build . --tag web".into(),
            cwd: "~/app".into(),
            terminal: None,
            outcome: Outcome::Exited(0),
            expect: None,
            duration: Duration::from_secs_f64(secs),
            problem: None,
            output: Output::default(),
            http: None,
            timing: None,
        }
    }

    #[test]
    fn a_build_may_take_a_share_of_the_first() {
        let chapter = crate::chapter::parse(
            "c.md",
            "```shell\ndocker build . --tag web\n```\n\n<!-- workbook: time-at-most=50% -->\n```shell\ndocker build . --tag web\ndocker build . --tag web\n```\n",
        )
        .unwrap();
        let script = crate::script::build(&chapter, &|_| false).unwrap();
        let mut records = vec![build(0, 2, 10.0), build(1, 7, 4.0), build(2, 8, 6.0)];
        check(&script, &mut records, 0);
        assert!(records[0].timing.is_none());
        assert_eq!(records[1].problem, None);
        let timing = records[1].timing.as_ref().unwrap();
        assert_eq!((timing.at_most, timing.first_line), (0.5, 2));
        let problem = records[2].problem.as_deref().unwrap();
        assert!(
            problem.contains("more than 50 % of the first build (10.00 s, line 2)"),
            "{problem}"
        );

        // Another image has no first build to compare with.
        let mut other = vec![build(0, 2, 10.0), build(1, 7, 1.0)];
        other[1].command = "docker build . --tag api".into();
        check(&script, &mut other, 0);
        assert!(
            other[1]
                .problem
                .as_deref()
                .unwrap()
                .contains("no earlier build of `api`")
        );
    }
}
