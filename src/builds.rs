//! Reading `docker build` output: which steps ran, which came from the
//! cache, and how long BuildKit says each took.
//!
//! Both builders are read: BuildKit's plain progress (`#7 [3/4] RUN …`,
//! `#7 CACHED`, `#7 DONE 1.3s`, `#7 ERROR: …`) and the legacy builder's
//! `Step 3/4 : RUN …` with `---> Using cache` or `---> Running in`. Output
//! that is neither is not parsed, and nothing is guessed.

use std::collections::BTreeMap;

/// Which builder wrote the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Builder {
    BuildKit,
    Legacy,
}

/// One instruction of the Dockerfile as the build went through it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BuildStep {
    /// 1-based position in the Dockerfile's stage.
    pub index: usize,
    pub total: usize,
    pub instruction: String,
    /// The stage of a multi-stage build, as BuildKit names it (`base`,
    /// `stage-2`); the legacy builder numbers steps across stages instead.
    pub stage: Option<String>,
    pub cached: bool,
    /// A `FROM` step: the base image is pulled or found, never built.
    pub base: bool,
    /// Seconds, where the builder says (BuildKit does, the legacy builder
    /// does not).
    pub seconds: Option<f64>,
    pub failed: bool,
}

impl BuildStep {
    /// A step as its header line names it, before its outcome is known.
    fn new(index: usize, total: usize, instruction: &str) -> BuildStep {
        BuildStep {
            index,
            total,
            instruction: instruction.to_string(),
            stage: None,
            cached: false,
            base: instruction.to_ascii_uppercase().starts_with("FROM "),
            seconds: None,
            failed: false,
        }
    }
}

/// What a build output says about its steps.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Build {
    pub builder: Builder,
    pub steps: Vec<BuildStep>,
}

/// Reads build output; `None` when it is no build output either builder
/// writes.
pub fn parse(output: &str) -> Option<Build> {
    parse_buildkit(output).or_else(|| parse_legacy(output))
}

fn parse_buildkit(output: &str) -> Option<Build> {
    let header = crate::regex!(r"^#(\d+) \[(?:([\w.-]+) )?(\d+)/(\d+)\] (.+)$");
    let done = crate::regex!(r"^#(\d+) DONE (\d+(?:\.\d+)?)s$");
    let cached = crate::regex!(r"^#(\d+) CACHED$");
    let error = crate::regex!(r"^#(\d+) ERROR");

    // Vertex numbers tie interleaved lines to their step; stages are kept
    // in the order they first show.
    let mut steps: BTreeMap<u32, BuildStep> = BTreeMap::new();
    let mut stages: Vec<String> = Vec::new();
    for line in output.lines().map(str::trim_end) {
        if let Some(c) = header.captures(line) {
            let vertex: u32 = c[1].parse().ok()?;
            let stage = c.get(2).map(|m| m.as_str().to_string());
            if let Some(stage) = &stage
                && !stages.contains(stage)
            {
                stages.push(stage.clone());
            }
            steps.entry(vertex).or_insert_with(|| {
                let mut step =
                    BuildStep::new(c[3].parse().unwrap_or(0), c[4].parse().unwrap_or(0), &c[5]);
                step.stage = stage;
                step
            });
        } else if let Some(c) = cached.captures(line) {
            if let Some(step) = steps.get_mut(&c[1].parse().ok()?) {
                step.cached = true;
            }
        } else if let Some(c) = done.captures(line) {
            if let Some(step) = steps.get_mut(&c[1].parse().ok()?) {
                step.seconds = c[2].parse().ok();
            }
        } else if let Some(c) = error.captures(line)
            && let Some(step) = steps.get_mut(&c[1].parse().ok()?)
        {
            step.failed = true;
        }
    }
    if steps.is_empty() {
        return None;
    }
    let mut steps: Vec<BuildStep> = steps.into_values().collect();
    let stage_order = |s: &BuildStep| {
        s.stage
            .as_ref()
            .and_then(|n| stages.iter().position(|m| m == n))
            .unwrap_or(0)
    };
    steps.sort_by_key(|s| (stage_order(s), s.index));
    if stages.len() < 2 {
        // One stage: its name says nothing the table needs.
        for step in &mut steps {
            step.stage = None;
        }
    }
    Some(Build {
        builder: Builder::BuildKit,
        steps,
    })
}

fn parse_legacy(output: &str) -> Option<Build> {
    let header = crate::regex!(r"^Step (\d+)/(\d+) : (.+)$");
    let mut steps: Vec<BuildStep> = Vec::new();
    for line in output.lines().map(str::trim_end) {
        if let Some(c) = header.captures(line) {
            steps.push(BuildStep::new(
                c[1].parse().ok()?,
                c[2].parse().ok()?,
                &c[3],
            ));
        } else if line.trim() == "---> Using cache" {
            steps.last_mut()?.cached = true;
        } else if line.starts_with("The command '") && line.contains("returned a non-zero code") {
            steps.last_mut()?.failed = true;
        }
    }
    (!steps.is_empty()).then_some(Build {
        builder: Builder::Legacy,
        steps,
    })
}

/// Gives the legacy builder's steps the times between the arrival of their
/// `Step` lines (`marks`, seconds after the start), the last one up to the
/// end of the build (`total`). Nothing is set when the marks do not match
/// the steps one to one.
pub fn time_legacy_steps(build: &mut Build, marks: &[f64], total: f64) -> bool {
    if build.builder != Builder::Legacy || marks.len() != build.steps.len() || marks.is_empty() {
        return false;
    }
    for (i, step) in build.steps.iter_mut().enumerate() {
        let end = marks.get(i + 1).copied().unwrap_or(total);
        step.seconds = Some((end - marks[i]).max(0.0));
    }
    true
}

/// The image a `docker build` command tags, and the directory it runs in:
/// builds of one series are compared with each other.
pub fn series(command: &str, cwd: &str) -> Option<(String, String)> {
    if !command.contains("build") {
        return None;
    }
    let tag = crate::regex!(r"(?:--tag|-t)[ =]([^\s;&|]+)").captures(command)?[1].to_string();
    Some((tag, cwd.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/builds/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Each step as `index instruction cached/run seconds failed`.
    fn describe(build: &Build) -> Vec<String> {
        build
            .steps
            .iter()
            .map(|s| {
                let secs = s.seconds.map(|x| format!(" {x}s")).unwrap_or_default();
                let state = if s.base {
                    "base"
                } else if s.cached {
                    "cached"
                } else {
                    "run"
                };
                format!(
                    "{}/{} {} {state}{secs}{}",
                    s.index,
                    s.total,
                    s.instruction,
                    if s.failed { " FAILED" } else { "" }
                )
            })
            .collect()
    }

    #[test]
    fn legacy_steps_are_timed_by_arrival() {
        let mut build = parse(&fixture("legacy-multistage-nocache.txt")).unwrap();
        let marks = [0.1, 0.3, 1.0, 1.1, 2.5, 2.6, 2.8];
        assert!(time_legacy_steps(&mut build, &marks, 3.3));
        let secs: Vec<f64> = build.steps.iter().map(|s| s.seconds.unwrap()).collect();
        let want = [0.2, 0.7, 0.1, 1.4, 0.1, 0.2, 0.5];
        assert!(
            secs.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-9),
            "{secs:?}"
        );
        // Marks that do not match the steps one to one give no times.
        let mut build = parse(&fixture("legacy-multistage-nocache.txt")).unwrap();
        assert!(!time_legacy_steps(&mut build, &marks[..3], 3.3));
        assert!(build.steps.iter().all(|s| s.seconds.is_none()));
    }

    #[test]
    fn multi_stage_builds_keep_their_stages() {
        let describe_staged = |name: &str| -> Vec<String> {
            let build = parse(&fixture(name)).unwrap();
            build
                .steps
                .iter()
                .zip(describe(&build))
                .map(|(s, d)| format!("{} {d}", s.stage.as_deref().unwrap_or("-")))
                .collect()
        };
        // BuildKit runs the stages `base` and `other` side by side, so their
        // lines interleave (`#5 ...`); the FROM both share shows once.
        assert_eq!(
            describe_staged("buildkit-multistage-nocache.txt"),
            [
                "other 1/2 FROM docker.io/library/ubuntu:14.04@sha256:08f5a928e0e0f5ba4c96155f046216b128588e5f7605db094f3a8b76c09bca3e base",
                "other 2/2 RUN echo other > /other.txt && sleep 1 run 1.4s",
                "base 2/2 RUN echo base > /base.txt run 0.5s",
                "stage-2 1/2 COPY --from=other /other.txt / run 0s",
                "stage-2 2/2 RUN cat /base.txt /other.txt run 0.3s",
            ]
        );
        let cached = parse(&fixture("buildkit-multistage-cached.txt")).unwrap();
        assert!(cached.steps.iter().all(|s| s.base || s.cached));
        // The legacy builder counts steps across stages; `--no-cache` runs all.
        assert_eq!(
            describe_staged("legacy-multistage-nocache.txt"),
            [
                "- 1/7 FROM ubuntu:14.04 AS base base",
                "- 2/7 RUN echo base > /base.txt run",
                "- 3/7 FROM ubuntu:14.04 AS other base",
                "- 4/7 RUN echo other > /other.txt && sleep 1 run",
                "- 5/7 FROM base base",
                "- 6/7 COPY --from=other /other.txt / run",
                "- 7/7 RUN cat /base.txt /other.txt run",
            ]
        );
    }

    #[test]
    fn reads_real_output_of_both_builders() {
        let cases: &[(&str, Builder, &[&str])] = &[
            (
                "buildkit-first.txt",
                Builder::BuildKit,
                &[
                    "1/4 FROM docker.io/library/ubuntu:14.04 base 0s",
                    "2/4 COPY a.txt /a.txt run 0.2s",
                    "3/4 RUN echo hello && sleep 1 run 1.3s",
                    "4/4 RUN cat /a.txt run 0.3s",
                ],
            ),
            (
                "buildkit-cached.txt",
                Builder::BuildKit,
                &[
                    "1/4 FROM docker.io/library/ubuntu:14.04 base 0s",
                    "2/4 COPY a.txt /a.txt cached",
                    "3/4 RUN echo hello && sleep 1 cached",
                    "4/4 RUN cat /a.txt cached",
                ],
            ),
            (
                "buildkit-changed.txt",
                Builder::BuildKit,
                &[
                    "1/4 FROM docker.io/library/ubuntu:14.04 base",
                    "2/4 COPY a.txt /a.txt run 0.1s",
                    "3/4 RUN echo hello && sleep 1 run 1.3s",
                    "4/4 RUN cat /a.txt run 0.3s",
                ],
            ),
            (
                "buildkit-failed.txt",
                Builder::BuildKit,
                &[
                    "1/2 FROM docker.io/library/ubuntu:14.04 base",
                    "2/2 RUN exit 3 run FAILED",
                ],
            ),
            (
                "legacy-first.txt",
                Builder::Legacy,
                &[
                    "1/5 FROM ubuntu:14.04 base",
                    "2/5 COPY a.txt /a.txt run",
                    "3/5 RUN echo hello && sleep 1 run",
                    "4/5 RUN cat /a.txt run",
                    "5/5 CMD [\"bash\"] run",
                ],
            ),
            (
                "legacy-cached.txt",
                Builder::Legacy,
                &[
                    "1/5 FROM ubuntu:14.04 base",
                    "2/5 COPY a.txt /a.txt cached",
                    "3/5 RUN echo hello && sleep 1 cached",
                    "4/5 RUN cat /a.txt cached",
                    "5/5 CMD [\"bash\"] cached",
                ],
            ),
            (
                "legacy-failed.txt",
                Builder::Legacy,
                &["1/2 FROM ubuntu:14.04 base", "2/2 RUN exit 3 run FAILED"],
            ),
        ];
        for (name, builder, want) in cases {
            let build = parse(&fixture(name)).unwrap_or_else(|| panic!("{name} not parsed"));
            assert_eq!(build.builder, *builder, "{name}");
            assert_eq!(describe(&build), *want, "{name}");
        }
    }

    #[test]
    fn other_output_is_not_parsed() {
        for text in [
            "",
            "hello world\n",
            "Step one: think\n",
            "#1 nothing here\n",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
    }
}
