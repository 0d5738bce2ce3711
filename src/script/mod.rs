//! Turning a parsed chapter into a script: steps in order, each tied to the
//! block it came from, plus which screenshot shows which steps.

mod blocks;
pub mod guard;
pub mod probe;
pub mod split;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::chapter::{Chapter, Directive, ItemKind};
use blocks::{Terminals, file_block, probe_step, shell_block};

/// Languages whose blocks are run as shell commands.
pub const SHELL_LANGS: &[&str] = &["shell", "sh", "bash", "console", "shell-session"];

/// The exit status a command must end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expect {
    Status(i32),
    NonZero,
    Any,
}

impl Expect {
    /// Whether an exit status meets the expectation.
    pub fn accepts(self, status: i32) -> bool {
        match self {
            Expect::Status(want) => status == want,
            Expect::NonZero => status != 0,
            Expect::Any => true,
        }
    }

    fn parse(value: &str) -> Result<Expect> {
        Ok(match value {
            "any" => Expect::Any,
            "nonzero" => Expect::NonZero,
            n => match n.parse::<i32>() {
                Ok(n) if (0..=255).contains(&n) => Expect::Status(n),
                _ => {
                    bail!("`expect={value}`: use an exit status from 0 to 255, `nonzero` or `any`")
                }
            },
        })
    }
}

/// A command to run on the chapter's shell.
#[derive(Debug, Clone)]
pub struct Command {
    /// The command as the sheet writes it.
    pub text: String,
    /// The command as it runs, with placeholders bound.
    pub run: String,
    pub expect: Expect,
    pub timeout: Option<Duration>,
    /// The named terminal it is typed into; the chapter's shell if none.
    pub terminal: Option<String>,
    /// A pattern that tells the command is ready; it may go on running.
    pub ready: Option<String>,
    /// Whether CTRL+C is sent once it is ready.
    pub interrupt: bool,
    /// Text the output must contain.
    pub contains: Option<String>,
    /// A pattern the output must match.
    pub matches: Option<String>,
    /// A path, relative to the chapter's shell, that must exist afterwards.
    pub file_exists: Option<String>,
    /// Build steps, by a part of their instruction, that must come from
    /// the cache (`true`) or be built anew (`false`).
    /// `*` stands for every step but `FROM`.
    pub layers: Vec<(String, bool)>,
    /// A build step, by a part of its instruction, before which every step
    /// must come from the cache.
    pub cached_before: Option<String>,
    /// The largest share of the first build of the same image in the
    /// chapter that this build may take.
    pub time_at_most: Option<f64>,
    /// Placeholders whose values come from the session when the command runs.
    pub binds: Vec<(String, Source)>,
}

impl Command {
    /// A command as written, with no directives: it must exit with 0 and is
    /// checked for nothing else.
    pub fn plain(text: String, run: String) -> Command {
        Command {
            text,
            run,
            expect: Expect::Status(0),
            timeout: None,
            terminal: None,
            ready: None,
            interrupt: false,
            contains: None,
            matches: None,
            file_exists: None,
            layers: Vec::new(),
            cached_before: None,
            time_at_most: None,
            binds: Vec::new(),
        }
    }
}

/// An HTTP request to a server the chapter started.
#[derive(Debug, Clone)]
pub struct Probe {
    pub url: String,
    pub status: Option<u16>,
    pub contains: Option<String>,
    pub timeout: Option<Duration>,
}

// A chapter has some dozens of steps, so the size of the largest variant
// costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum StepKind {
    Command(Command),
    /// An HTTP GET that waits until a server answers.
    Probe(Probe),
    /// Write a block's content to a path relative to the shell's directory.
    Write {
        path: String,
        content: String,
    },
    /// Replace one line of a file with a partial block's lines.
    Edit {
        path: String,
        replace: String,
        lines: Vec<String>,
    },
    /// A command that is not run; the reason is shown.
    Skip {
        text: String,
        reason: String,
    },
    /// A command that must not run here; shown as a failure.
    Refuse {
        text: String,
        reason: String,
    },
}

/// One executable unit.
#[derive(Debug, Clone)]
pub struct Step {
    /// The block it belongs to, as an index into [`Script::blocks`].
    pub block: usize,
    /// 1-based line in the chapter.
    pub line: usize,
    pub kind: StepKind,
}

/// A block that produced steps.
#[derive(Debug, Clone)]
pub struct BlockPlan {
    /// Index into the chapter's items.
    pub item: usize,
    pub steps: std::ops::Range<usize>,
    pub note: Option<String>,
    /// A check the reader need not see: the block and its transcript stay
    /// off the page unless a step fails.
    pub hidden: bool,
}

/// A screenshot to replace with some steps' records.
#[derive(Debug, Clone)]
pub struct Shot {
    /// Index into the chapter's items.
    pub item: usize,
    /// The block above it, if any, as an index into [`Script::blocks`].
    pub block: Option<usize>,
    /// Which steps of that block it shows (indices into [`Script::steps`]).
    pub steps: Vec<usize>,
}

/// Everything a chapter will do, in order.
#[derive(Debug, Default)]
pub struct Script {
    pub steps: Vec<Step>,
    pub blocks: Vec<BlockPlan>,
    pub shots: Vec<Shot>,
    /// Notes attached to blocks that produce no step, by item index.
    pub notes: BTreeMap<usize, String>,
    /// Missing images inside a line of text, by item index; a short notice
    /// takes their place.
    pub inline_missing: Vec<usize>,
}

/// Where a placeholder's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The workspace, which is the shell's home directory, shown as `~`.
    Workspace,
    /// The short id of the container the session created last, taken when
    /// the placeholder is first used.
    Container,
}

/// Builds the script of a chapter. Errors name the chapter and line.
///
/// `image_missing` says whether an image source is missing from the book,
/// which makes that image a screenshot to replace.
pub fn build(chapter: &Chapter, image_missing: &dyn Fn(&str) -> bool) -> Result<Script> {
    let mut script = Script::default();
    let mut problems: Vec<String> = Vec::new();
    let mut bindings: BTreeMap<String, Source> = BTreeMap::new();
    let mut terminals = Terminals::default();
    let mut pending: Option<(&Directive, usize, usize)> = None;
    let placeholder = crate::regex!(r"<[A-Z][A-Z0-9_-]*>");
    let name = &chapter.name;

    for (index, item) in chapter.items.iter().enumerate() {
        match &item.kind {
            ItemKind::Directive(d) => {
                for s in d.settings.iter().filter(|s| s.key == "bind") {
                    match parse_binding(s.value.as_deref().unwrap_or("")) {
                        Ok((token, source)) => {
                            bindings.insert(token, source);
                        }
                        Err(e) => problems.push(format!("{name}:{}: directive: {e:#}", item.line)),
                    }
                }
                if d.has("probe") {
                    if let Err(e) = probe_step(&mut script, index, item.line, d) {
                        problems.push(format!("{name}:{}: {e:#}", item.line));
                    }
                    continue;
                }
                if d.is_standalone() {
                    continue;
                }
                if let Some((_, line, _)) = pending {
                    problems.push(format!("{name}:{line}: directive is followed by another directive (line {}) before any block it could apply to", item.line));
                }
                pending = Some((d, item.line, item.range.end));
            }
            ItemKind::Block(block) => {
                let directive = pending.take();
                if let Some((_, line, end)) = directive
                    && !chapter.text[end..item.range.start].trim().is_empty()
                {
                    problems.push(format!("{name}:{line}: directive is not right above a block: only blank lines may stand between a directive and its block"));
                    continue;
                }
                let d = directive.map(|(d, _, _)| d);
                let line = directive.map_or(item.line, |(_, l, _)| l);
                let writes_file = d.is_some_and(|d| d.has("file") || d.has("edit"));
                let result = if SHELL_LANGS.contains(&block.lang.as_str()) && !writes_file {
                    shell_block(
                        &mut script,
                        index,
                        block,
                        d,
                        &bindings,
                        placeholder,
                        &mut terminals,
                    )
                } else {
                    file_block(&mut script, index, block, d)
                };
                if let Err(e) = result {
                    problems.push(format!("{name}:{line}: {e:#}"));
                }
            }
            ItemKind::Image(image) => {
                let directive = pending.take();
                if let Some((_, line, end)) = directive
                    && !chapter.text[end..item.range.start].trim().is_empty()
                {
                    problems.push(format!("{name}:{line}: directive is not right above an image or block: only blank lines may stand between them"));
                    continue;
                }
                if let Some((d, line, _)) = directive
                    && let Some(bad) = d.settings.iter().find(|s| s.key != "show")
                {
                    problems.push(format!("{name}:{line}: directive: `{}` does not apply to an image; only `show` does", bad.key));
                    continue;
                }
                if !image_missing(&image.src) {
                    continue;
                }
                if !image.starts_line {
                    script.inline_missing.push(index);
                    continue;
                }
                let show = directive.and_then(|(d, _, _)| d.get("show"));
                match claim_steps(&script, show) {
                    Ok((block, steps)) => script.shots.push(Shot {
                        item: index,
                        block,
                        steps,
                    }),
                    Err(e) => problems.push(format!("{name}:{}: {e:#}", item.line)),
                }
            }
            _ => {}
        }
    }

    if let Some((_, line, _)) = pending {
        problems.push(format!("{name}:{line}: directive applies to no block: put it right above a fenced block or an image"));
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    Ok(script)
}

pub(crate) fn is_relative_path(path: &str) -> bool {
    !path.is_empty() && !path.starts_with('/') && !path.starts_with('~') && !path.contains('$')
}

fn parse_binding(value: &str) -> Result<(String, Source)> {
    let Some((token, source)) = value.rsplit_once('=') else {
        bail!("`bind={value}`: write `bind=\"<PLACEHOLDER>=workspace\"`");
    };
    let source = match source {
        "workspace" => Source::Workspace,
        "container" => Source::Container,
        other => bail!("`bind`: unknown source `{other}` (known: workspace, container)"),
    };
    if token.is_empty() {
        bail!("`bind={value}`: the placeholder is empty");
    }
    Ok((token.to_string(), source))
}

pub(crate) fn bind(text: &str, bindings: &BTreeMap<String, Source>) -> String {
    let mut out = text.to_string();
    for (token, source) in bindings {
        if *source == Source::Workspace {
            out = replace_token(&out, token, "~");
        }
    }
    out
}

/// Replaces a placeholder where it stands as a word of its own: not inside
/// a longer word, and not as a shell variable (`$PATH`, `${PATH}`).
pub fn replace_token(text: &str, token: &str, value: &str) -> String {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(token) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + token.len()..].chars().next();
        let edge_word = token.starts_with(word) || token.ends_with(word);
        let free = !edge_word
            || (!before.is_some_and(|c| word(c) || c == '$' || c == '{')
                && !after.is_some_and(word));
        out.push_str(&rest[..at]);
        out.push_str(if free { value } else { token });
        rest = &rest[at + token.len()..];
    }
    out.push_str(rest);
    out
}

/// Chooses the steps a screenshot shows: by default the steps of the block
/// above it that no earlier screenshot showed.
fn claim_steps(script: &Script, show: Option<&str>) -> Result<(Option<usize>, Vec<usize>)> {
    let Some(block_index) = script.blocks.len().checked_sub(1) else {
        return Ok((None, Vec::new()));
    };
    let block = &script.blocks[block_index];
    let shown: Vec<usize> = script
        .shots
        .iter()
        .flat_map(|s| s.steps.iter().copied())
        .collect();

    let Some(show) = show else {
        let steps = block.steps.clone().filter(|s| !shown.contains(s)).collect();
        return Ok((Some(block_index), steps));
    };

    let count = block.steps.len();
    let (from, to) = match show.split_once('-') {
        Some((a, b)) => (
            a.trim().parse::<usize>().ok(),
            b.trim().parse::<usize>().ok(),
        ),
        None => (
            show.trim().parse::<usize>().ok(),
            show.trim().parse::<usize>().ok(),
        ),
    };
    match (from, to) {
        (Some(from), Some(to)) if 1 <= from && from <= to && to <= count => Ok((
            Some(block_index),
            (block.steps.start + from - 1..block.steps.start + to).collect(),
        )),
        _ => bail!("directive: `show={show}`: the block above has commands 1 to {count}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(md: &str) -> Result<Script> {
        let chapter = crate::chapter::parse("c.md", md)?;
        build(&chapter, &|src| src.starts_with("./img/"))
    }

    fn describe(s: &Script) -> Vec<String> {
        s.steps
            .iter()
            .map(|st| match &st.kind {
                StepKind::Probe(p) => format!("{}:probe {}", st.line, p.url),
                StepKind::Command(c) => format!("{}:run {} {:?}", st.line, c.run, c.expect),
                StepKind::Write { path, .. } => format!("{}:write {path}", st.line),
                StepKind::Edit { path, lines, .. } => format!("{}:edit {path} {lines:?}", st.line),
                StepKind::Skip { text, .. } => format!("{}:skip {text}", st.line),
                StepKind::Refuse { text, .. } => format!("{}:refuse {text}", st.line),
            })
            .collect()
    }

    #[test]
    fn builds_steps_from_blocks_and_directives() {
        let md = "<!-- workbook: expect.2=nonzero -->\n```shell\ndocker ps\ndocker-compose\n```\n\n<!-- workbook: bind=\"<REPO>=workspace\" -->\n```shell\ncd <REPO>/x\ndocker run -it ubuntu bash\n```\n<!-- workbook: edit=p.sh replace=\"make 5\" -->\n```shell\n...\nmake $1\n```\n<!-- workbook: file=Dockerfile -->\n```dockerfile\nFROM x\n```\n<!-- workbook: skip=\"later\" -->\n```sh\ntop\n```\n<!-- workbook: skip.2=x -->\n```sh\nls\nls -a\n```\n";
        let s = script(md).unwrap();
        assert_eq!(
            describe(&s),
            [
                "3:run docker ps Status(0)",
                "4:run docker-compose NonZero",
                "9:run cd ~/x Status(0)",
                "10:refuse docker run -it ubuntu bash",
                "14:edit p.sh [\"make $1\"]",
                "19:write Dockerfile",
                "23:skip top",
                "27:run ls Status(0)",
                "28:skip ls -a",
            ]
        );
    }

    #[test]
    fn screenshots_claim_steps_of_the_block_above() {
        let md = "```shell\necho 1\necho 2\necho 3\n```\n<!-- workbook: show=1 -->\n![a](./img/a.png)\ntext\n![b](./img/b.png)\n![kept](https://x/y.png)\n";
        let s = script(md).unwrap();
        let shots: Vec<Vec<usize>> = s.shots.iter().map(|s| s.steps.clone()).collect();
        assert_eq!(shots, [vec![0], vec![1, 2]]);
    }

    #[test]
    fn rejects_misplaced_directives() {
        let cases = [
            (
                "<!-- workbook: show=1 -->\n```shell\nls\n```\n",
                "c.md:1: directive: `show` does not apply to a `shell` block",
            ),
            (
                "<!-- workbook: expect=2 -->\n",
                "c.md:1: directive applies to no block",
            ),
            (
                "<!-- workbook: expect=x -->\n```shell\nls\n```\n",
                "`expect=x`: use an exit status from 0 to 255",
            ),
            (
                "<!-- workbook: cached-before=\"\" -->\n```shell\ndocker build .\n```\n",
                "c.md:1: directive: `cached-before` needs part of a build step's instruction",
            ),
            (
                "<!-- workbook: cached=\"*\" rebuilt=\"*\" -->\n```shell\ndocker build .\n```\n",
                "`*` cannot be both `cached` and `rebuilt`",
            ),
            (
                "<!-- workbook: time-at-most=150% -->\n```shell\ndocker build .\n```\n",
                "`time-at-most=150%`: use a share of the first build",
            ),
            (
                "<!-- workbook: expect.3=1 -->\n```shell\nls\n```\n",
                "`expect.3`: the block has commands 1 to 1",
            ),
            (
                "<!-- workbook: edit=f -->\n```python\nx\n```\n",
                "`edit` needs `replace",
            ),
            (
                "<!-- workbook: bind=\"<X>=moon\" -->\n",
                "unknown source `moon`",
            ),
            (
                "```shell\nls\n```\n<!-- workbook: show=4 -->\n![a](./img/a.png)\n",
                "`show=4`: the block above has commands 1 to 1",
            ),
            (
                "<!-- workbook: timeout=1 -->\n<!-- workbook: expect=1 -->\n```shell\nls\n```\n",
                "c.md:1: directive is followed by another directive (line 2)",
            ),
            (
                "<!-- workbook: timeout=1e309 -->\n```shell\nls\n```\n",
                "`timeout=1e309`: use a number of seconds up to",
            ),
            (
                "<!-- workbook: expect=300 -->\n```shell\nls\n```\n",
                "`expect=300`: use an exit status from 0 to 255",
            ),
            (
                "<!-- workbook: skip -->\n\n## Elsewhere\n\ntext\n\n```shell\nls\n```\n",
                "c.md:1: directive is not right above a block",
            ),
            (
                "<!-- workbook: file=/tmp/x -->\n```text\nx\n```\n",
                "`file=/tmp/x`: write a path relative",
            ),
            (
                "<!-- workbook: file=~/x -->\n```text\nx\n```\n",
                "`file=~/x`: write a path relative",
            ),
            (
                "<!-- workbook: ready=x -->\n```shell\nls\n```\n",
                "`ready` and `interrupt` need a terminal",
            ),
            (
                "<!-- workbook: probe=http://10.0.0.1/ -->\n",
                "only servers on this machine",
            ),
            (
                "<!-- workbook: terminal=nope -->\n```shell\nls\n```\n",
                "terminal `nope` does not exist; open it with `open=nope`",
            ),
            (
                "<!-- workbook: open=a -->\n```shell\nls\n```\n\n<!-- workbook: open=a -->\n```shell\nls\n```\n",
                "c.md:6: directive: terminal `a` is already open",
            ),
            (
                "<!-- workbook: matches=\"(\" -->\n```shell\nls\n```\n",
                "`matches`: not a valid pattern",
            ),
            (
                "<!-- workbook: contains=\"\" -->\n```shell\nls\n```\n",
                "`contains` needs the text to look for",
            ),
            (
                "<!-- workbook: open=s skip=\"later\" -->\n```shell\nbash\n```\n\n<!-- workbook: terminal=s -->\n```shell\nls\n```\n",
                "terminal `s` is opened by a command that is skipped",
            ),
        ];
        for (md, want) in cases {
            let err = script(md).unwrap_err().to_string();
            assert!(err.contains(want), "{md:?}: {err}");
        }
    }

    #[test]
    fn open_on_a_block_opens_with_its_first_command() {
        let s = script("<!-- workbook: open=t -->\n```shell\ndocker run -it x bash\nls\n```\n")
            .unwrap();
        let terminals: Vec<Option<String>> = s
            .steps
            .iter()
            .map(|st| match &st.kind {
                StepKind::Command(c) => c.terminal.clone(),
                _ => None,
            })
            .collect();
        assert_eq!(terminals, [Some("t".to_string()), Some("t".to_string())]);
    }

    #[test]
    fn placeholders_are_replaced_only_as_words() {
        let cases = [
            (
                "echo $PATH ${PATH} PATH /PATH/",
                "PATH",
                "echo $PATH ${PATH} ~ /~/",
            ),
            (
                "docker start d239; echo d2390 xd239",
                "d239",
                "docker start ~; echo d2390 xd239",
            ),
            ("cd <REPO>/x<REPO>", "<REPO>", "cd ~/x~"),
        ];
        for (text, token, want) in cases {
            assert_eq!(replace_token(text, token, "~"), want, "{text}");
        }
    }

    #[test]
    fn unbound_placeholder_is_refused_by_name() {
        let s = script("```shell\ncd <YOUR_REPO_PATH>/x\necho <b>\n```\n").unwrap();
        let StepKind::Refuse { reason, .. } = &s.steps[0].kind else {
            panic!("{:?}", s.steps[0])
        };
        assert!(
            reason.contains("`<YOUR_REPO_PATH>` is not bound"),
            "{reason}"
        );
        assert!(matches!(s.steps[1].kind, StepKind::Command(_)));
    }
}
