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
    let header = crate::regex!(r"^#(\d+) \[(?:[\w.-]+ )?(\d+)/(\d+)\] (.+)$");
    let done = crate::regex!(r"^#(\d+) DONE (\d+(?:\.\d+)?)s$");
    let cached = crate::regex!(r"^#(\d+) CACHED$");
    let error = crate::regex!(r"^#(\d+) ERROR");

    // Vertex numbers tie interleaved lines to their step.
    let mut steps: BTreeMap<u32, BuildStep> = BTreeMap::new();
    for line in output.lines().map(str::trim_end) {
        if let Some(c) = header.captures(line) {
            let vertex: u32 = c[1].parse().ok()?;
            steps.entry(vertex).or_insert(BuildStep::new(
                c[2].parse().ok()?,
                c[3].parse().ok()?,
                &c[4],
            ));
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
    steps.sort_by_key(|s| s.index);
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
