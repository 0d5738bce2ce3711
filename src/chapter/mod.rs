//! Parsing a chapter: front matter, VuePress containers, directives, fenced
//! blocks and screenshots, each with its place in the source.
//!
//! Parsing knows nothing of shells or Docker. It records byte ranges so that
//! rendering can splice its output into the original Markdown without ever
//! re-serialising it.

pub mod directive;
mod frontmatter;

use std::ops::Range;

use anyhow::{Result, bail};
use pulldown_cmark::{CodeBlockKind, Event, MetadataBlockKind, Options, Parser, Tag, TagEnd};

pub use directive::Directive;
pub use frontmatter::FrontMatter;

/// A parsed chapter, with its text normalised to LF line endings.
#[derive(Debug)]
pub struct Chapter {
    /// The chapter's path inside the book, for messages.
    pub name: String,
    pub text: String,
    pub front: FrontMatter,
    /// Everything found, in source order.
    pub items: Vec<Item>,
}

/// One thing found in the chapter, with its byte range and 1-based line.
#[derive(Debug)]
pub struct Item {
    pub range: Range<usize>,
    pub line: usize,
    pub kind: ItemKind,
}

#[derive(Debug)]
pub enum ItemKind {
    FrontMatter,
    Directive(Directive),
    Block(Block),
    Image(Image),
    ContainerStart {
        kind: String,
        title: Option<String>,
    },
    ContainerEnd,
    /// A `{{ $frontmatter.key }}` reference, with its resolved value.
    FrontMatterRef(String),
}

/// A fenced code block.
#[derive(Debug, Clone)]
pub struct Block {
    /// The first word of the info string, lowercased (`shell`, `dockerfile`).
    pub lang: String,
    pub content: String,
    /// The line of the block's first content line.
    pub content_line: usize,
}

/// A Markdown image.
#[derive(Debug, Clone)]
pub struct Image {
    pub alt: String,
    pub src: String,
    /// Whether the image begins its line, so a block can take its place.
    pub starts_line: bool,
}

impl Chapter {
    /// The 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        line_of(&self.text, offset)
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

/// Parses a chapter's Markdown. `name` is used in messages only.
///
/// All problems found are reported together, one per line, each prefixed
/// with `name:line:`.
pub fn parse(name: &str, markdown: &str) -> Result<Chapter> {
    let text = markdown.replace("\r\n", "\n");
    let mut items = Vec::new();
    let mut problems = Vec::new();
    let mut skip: Vec<Range<usize>> = Vec::new();
    let mut front = FrontMatter::default();

    let options = Options::ENABLE_YAML_STYLE_METADATA_BLOCKS | Options::ENABLE_TABLES;
    let mut image: Option<(usize, String, String)> = None;
    let mut html_block: Option<usize> = None;

    for (event, range) in Parser::new_ext(&text, options).into_offset_iter() {
        match event {
            Event::Start(Tag::MetadataBlock(MetadataBlockKind::YamlStyle)) => {
                let yaml = strip_fences(&text[range.clone()]);
                match frontmatter::parse(yaml) {
                    Ok(parsed) => front = parsed,
                    Err(e) => problems.push((line_of(&text, range.start), format!("{e:#}"))),
                }
                skip.push(range.clone());
                items.push(item(&text, range, ItemKind::FrontMatter));
            }
            Event::Start(Tag::CodeBlock(kind)) => {
                skip.push(range.clone());
                let CodeBlockKind::Fenced(info) = kind else {
                    continue;
                };
                match fenced_block(&text, range.clone(), &info) {
                    Ok(block) => items.push(item(&text, range, ItemKind::Block(block))),
                    Err(e) => problems.push((line_of(&text, range.start), format!("{e:#}"))),
                }
            }
            Event::Start(Tag::HtmlBlock) => html_block = Some(range.start),
            Event::End(TagEnd::HtmlBlock) => {
                let start = html_block.take().unwrap_or(range.start);
                skip.push(start..range.end);
                find_directives(&text, start..range.end, &mut items, &mut problems);
            }
            Event::InlineHtml(_) => {
                skip.push(range.clone());
                find_directives(&text, range, &mut items, &mut problems);
            }
            Event::Code(_) => skip.push(range),
            Event::Start(Tag::Image { dest_url, .. }) => {
                image = Some((range.start, dest_url.to_string(), String::new()));
            }
            Event::Text(t) if image.is_some() => {
                if let Some((_, _, alt)) = image.as_mut() {
                    alt.push_str(&t);
                }
            }
            Event::End(TagEnd::Image) => {
                if let Some((start, src, alt)) = image.take() {
                    let starts_line = text[..start]
                        .rsplit('\n')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .is_empty();
                    let kind = ItemKind::Image(Image {
                        alt,
                        src,
                        starts_line,
                    });
                    items.push(item(&text, start..range.end, kind));
                }
            }
            _ => {}
        }
    }

    if !items
        .iter()
        .any(|i| matches!(i.kind, ItemKind::FrontMatter))
        && (text.starts_with("---\n") || text == "---")
        && !text[3..].lines().skip(1).any(|l| l == "---" || l == "...")
    {
        problems.push((
            1,
            "front matter opened with `---` is never closed; end it with a `---` line".into(),
        ));
    }
    find_containers(&text, &skip, &mut items, &mut problems);
    find_frontmatter_refs(&text, &skip, &front, &mut items, &mut problems);

    if !problems.is_empty() {
        problems.sort();
        let lines: Vec<String> = problems
            .into_iter()
            .map(|(line, msg)| format!("{name}:{line}: {msg}"))
            .collect();
        bail!("{}", lines.join("\n"));
    }

    items.sort_by_key(|i| i.range.start);
    Ok(Chapter {
        name: name.to_string(),
        text,
        front,
        items,
    })
}

fn item(text: &str, range: Range<usize>, kind: ItemKind) -> Item {
    Item {
        line: line_of(text, range.start),
        range,
        kind,
    }
}

fn strip_fences(block: &str) -> &str {
    let body = block.strip_prefix("---").unwrap_or(block);
    let body = body.trim_end();
    body.strip_suffix("---")
        .or_else(|| body.strip_suffix("..."))
        .unwrap_or(body)
}

/// Reads a fenced block, and refuses one whose closing fence is missing:
/// CommonMark lets such a fence swallow the rest of the chapter silently.
fn fenced_block(text: &str, range: Range<usize>, info: &str) -> Result<Block> {
    let raw = &text[range.clone()];
    let opening = raw.lines().next().unwrap_or("").trim_start();
    let fence_char = opening.chars().next().unwrap_or('`');
    let fence_len = opening.chars().take_while(|c| *c == fence_char).count();

    let mut lines: Vec<&str> = raw.lines().collect();
    let closing = lines.last().map(|l| l.trim()).unwrap_or("");
    let closed = lines.len() >= 2
        && closing.chars().all(|c| c == fence_char)
        && closing.chars().count() >= fence_len;
    if !closed {
        bail!(
            "code fence opened here ({}) is never closed; end the block with a line of {}",
            opening.trim(),
            fence_char.to_string().repeat(fence_len)
        );
    }

    lines.remove(0);
    lines.pop();
    let indent = raw.lines().next().unwrap_or("").len() - opening.len();
    let content: Vec<&str> = lines
        .iter()
        .map(|l| {
            let cut = l.len() - l.trim_start_matches(' ').len();
            &l[cut.min(indent)..]
        })
        .collect();
    let mut content = content.join("\n");
    if !content.is_empty() {
        content.push('\n');
    }

    let lang = info
        .split([' ', '\t', ',', '{'])
        .find(|w| !w.is_empty())
        .unwrap_or("");
    Ok(Block {
        lang: lang.to_lowercase(),
        content,
        content_line: line_of(text, range.start) + 1,
    })
}

fn find_directives(
    text: &str,
    range: Range<usize>,
    items: &mut Vec<Item>,
    problems: &mut Vec<(usize, String)>,
) {
    let start_re = crate::regex!(r"<!--\s*workbook\b");
    let html = &text[range.clone()];

    for found in start_re.find_iter(html) {
        let start = range.start + found.start();
        let line = line_of(text, start);
        let after = &html[found.end()..];

        let Some(end) = after.find("-->") else {
            problems.push((line, "directive comment is never closed with `-->`".into()));
            continue;
        };
        let Some(body) = after[..end].trim_start().strip_prefix(':') else {
            problems.push((
                line,
                "a directive reads `<!-- workbook: key=value -->`: the colon is missing".into(),
            ));
            continue;
        };

        let end_offset = range.start + found.end() + end + 3;
        match directive::parse(body) {
            Ok(d) => items.push(Item {
                range: start..end_offset,
                line,
                kind: ItemKind::Directive(d),
            }),
            Err(e) => problems.push((line, format!("directive: {e:#}"))),
        }
    }
}

/// The VuePress container kinds a chapter may use.
pub const CONTAINER_KINDS: &[&str] = &[
    "tip", "warning", "danger", "caution", "info", "note", "details",
];

/// Finds VuePress `::: kind Title` and `:::` lines outside code and HTML.
fn find_containers(
    text: &str,
    skip: &[Range<usize>],
    items: &mut Vec<Item>,
    problems: &mut Vec<(usize, String)>,
) {
    let open_re = crate::regex!(r"^\s*:::\s*([A-Za-z][\w-]*)\s*(.*?)\s*$");
    let mut open: Vec<usize> = Vec::new();
    let mut offset = 0;

    for line in text.split_inclusive('\n') {
        let range = offset..offset + line.len();
        offset += line.len();
        if skip.iter().any(|s| s.contains(&range.start)) {
            continue;
        }
        let trimmed = line.trim();
        if !trimmed.starts_with(":::") {
            continue;
        }

        if trimmed.trim_start_matches(':').trim().is_empty() {
            if open.pop().is_none() {
                problems.push((
                    line_of(text, range.start),
                    "`:::` closes no open container".into(),
                ));
            }
            items.push(item(text, range, ItemKind::ContainerEnd));
        } else if let Some(caps) = open_re.captures(line.trim_end_matches('\n')) {
            let kind = caps[1].to_lowercase();
            if !CONTAINER_KINDS.contains(&kind.as_str()) {
                problems.push((
                    line_of(text, range.start),
                    format!(
                        "unknown container `::: {kind}` (known: {})",
                        CONTAINER_KINDS.join(", ")
                    ),
                ));
            }
            open.push(line_of(text, range.start));
            let title = Some(caps[2].to_string()).filter(|t| !t.is_empty());
            let kind = ItemKind::ContainerStart {
                kind: caps[1].to_lowercase(),
                title,
            };
            items.push(item(text, range, kind));
        }
    }

    for line in open {
        problems.push((
            line,
            "container `:::` is never closed; add a `:::` line after its content".into(),
        ));
    }
}

fn find_frontmatter_refs(
    text: &str,
    skip: &[Range<usize>],
    front: &FrontMatter,
    items: &mut Vec<Item>,
    problems: &mut Vec<(usize, String)>,
) {
    let re = crate::regex!(r"\{\{\s*\$frontmatter\.([\w-]+)\s*\}\}");
    for caps in re.captures_iter(text) {
        let whole = caps.get(0).expect("group 0");
        if skip.iter().any(|s| s.contains(&whole.start())) {
            continue;
        }
        match front.get(&caps[1]) {
            Some(value) => items.push(item(
                text,
                whole.range(),
                ItemKind::FrontMatterRef(value.to_string()),
            )),
            None => problems.push((
                line_of(text, whole.start()),
                format!(
                    "`{}` refers to front matter key `{}`, which the chapter does not set",
                    whole.as_str(),
                    &caps[1]
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(chapter: &Chapter) -> Vec<String> {
        chapter
            .items
            .iter()
            .map(|i| match &i.kind {
                ItemKind::FrontMatter => format!("{}:front", i.line),
                ItemKind::Directive(d) => format!("{}:directive {}", i.line, d.settings.len()),
                ItemKind::Block(b) => format!("{}:block {} {:?}", i.line, b.lang, b.content),
                ItemKind::Image(img) => format!("{}:image {} {}", i.line, img.src, img.starts_line),
                ItemKind::ContainerStart { kind, title } => {
                    format!("{}:open {kind} {title:?}", i.line)
                }
                ItemKind::ContainerEnd => format!("{}:close", i.line),
                ItemKind::FrontMatterRef(v) => format!("{}:ref {v}", i.line),
            })
            .collect()
    }

    #[test]
    fn finds_items_in_order() {
        let md = "---\ntitle: Übung\nlang: de-DE\nsidebar: auto\n---\n\n# {{ $frontmatter.title }}\n\n<!-- workbook: expect=1 -->\n``` shell\ndocker\n```\n![Bild](./img/a.png)\n\n:::tip Vorteile\n* eins\n:::\n\n`<!-- workbook: not-a-directive -->`\n";
        let chapter = parse("c.md", md).unwrap();
        assert_eq!(chapter.front.title.as_deref(), Some("Übung"));
        assert_eq!(
            kinds(&chapter),
            [
                "1:front",
                "7:ref Übung",
                "9:directive 1",
                "10:block shell \"docker\\n\"",
                "13:image ./img/a.png true",
                "15:open tip Some(\"Vorteile\")",
                "17:close",
            ]
        );
    }

    #[test]
    fn crlf_chapter_is_read_like_lf() {
        let md = "---\r\ntitle: T\r\n---\r\n<!-- workbook: timeout=5 -->\r\n```shell\r\necho one\r\n```\r\n";
        let chapter = parse("c.md", md).unwrap();
        assert_eq!(
            kinds(&chapter),
            ["1:front", "4:directive 1", "5:block shell \"echo one\\n\""]
        );
    }

    #[test]
    fn reports_bad_input_with_lines() {
        let cases = [
            (
                "<!-- workbook: tiemout=5 -->\n",
                "c.md:1: directive: unknown key `tiemout`",
            ),
            (
                "text\n\n```shell\necho\n",
                "c.md:3: code fence opened here (```shell) is never closed; end the block with a line of ```",
            ),
            ("<!-- workbook expect=1 -->\n", "c.md:1: a directive reads"),
            (
                "<!-- workbook: expect=1\n",
                "c.md:1: directive comment is never closed",
            ),
            ("::: tip\ntext\n", "c.md:1: container `:::` is never closed"),
            (
                "# {{ $frontmatter.nope }}\n",
                "c.md:1: `{{ $frontmatter.nope }}` refers to front matter key `nope`",
            ),
            ("---\ntitle: [\n---\n", "c.md:1: front matter"),
            (
                "---\ntitle: x\n\n# Text\n",
                "c.md:1: front matter opened with `---` is never closed",
            ),
            (
                "::: warnig Title\nx\n:::\n",
                "c.md:1: unknown container `::: warnig`",
            ),
        ];
        for (md, want) in cases {
            let err = parse("c.md", md).unwrap_err().to_string();
            assert!(err.contains(want), "{md:?}: {err}");
        }
    }
}
