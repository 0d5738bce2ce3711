//! Terminal output to HTML: text is escaped, SGR colours become classes,
//! carriage-return rewrites keep only the last version of a line, and every
//! other escape sequence is dropped. No raw control byte reaches the page.

use vte::{Params, Parser, Perform};

/// Converts terminal output to HTML for a `<pre>`. Newlines are written as
/// `&#10;` so the fragment holds no blank line that would end a Markdown
/// HTML block. Invalid UTF-8 becomes U+FFFD.
pub fn to_html(bytes: &[u8]) -> String {
    let mut screen = Screen::default();
    let mut parser = Parser::new();
    parser.advance(&mut screen, bytes);
    screen.finish()
}

/// The text a reader sees in terminal output, without markup: what checks
/// such as `contains` compare against.
pub fn to_text(bytes: &[u8]) -> String {
    let mut screen = Screen {
        plain: true,
        ..Screen::default()
    };
    let mut parser = Parser::new();
    parser.advance(&mut screen, bytes);
    screen.finish()
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
struct Style {
    fg: Option<u8>,
    bg: Option<u8>,
    bold: bool,
    dim: bool,
    italic: bool,
    underline: bool,
}

impl Style {
    fn classes(&self) -> String {
        let mut c = Vec::new();
        if let Some(fg) = self.fg {
            c.push(format!("wb-fg{fg}"));
        }
        if let Some(bg) = self.bg {
            c.push(format!("wb-bg{bg}"));
        }
        for (on, name) in [
            (self.bold, "wb-bold"),
            (self.dim, "wb-dim"),
            (self.italic, "wb-italic"),
            (self.underline, "wb-underline"),
        ] {
            if on {
                c.push(name.to_string());
            }
        }
        c.join(" ")
    }
}

#[derive(Default)]
struct Screen {
    done: String,
    line: Vec<(Style, char)>,
    style: Style,
    pending_cr: bool,
    /// Text only: no spans, no escaping, newlines as `\n`.
    plain: bool,
}

impl Screen {
    fn flush_line(&mut self) {
        if self.plain {
            let line: String = std::mem::take(&mut self.line)
                .into_iter()
                .map(|(_, c)| c)
                .collect();
            self.done.push_str(&line);
            return;
        }
        let mut current = Style::default();
        let mut open = false;
        for (style, ch) in std::mem::take(&mut self.line) {
            if style != current || (!open && style != Style::default()) {
                if open {
                    self.done.push_str("</span>");
                    open = false;
                }
                if style != Style::default() {
                    self.done
                        .push_str(&format!("<span class=\"{}\">", style.classes()));
                    open = true;
                }
                current = style;
            }
            escape_into(&mut self.done, ch);
        }
        if open {
            self.done.push_str("</span>");
        }
    }

    fn finish(mut self) -> String {
        self.flush_line();
        self.done
    }
}

fn escape_into(out: &mut String, ch: char) {
    match ch {
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '&' => out.push_str("&amp;"),
        '"' => out.push_str("&quot;"),
        '\'' => out.push_str("&#39;"),
        '{' => out.push_str("&#123;"),
        '}' => out.push_str("&#125;"),
        c => out.push(c),
    }
}

impl Perform for Screen {
    fn print(&mut self, c: char) {
        if self.pending_cr {
            self.line.clear();
            self.pending_cr = false;
        }
        self.line.push((self.style, c));
    }

    fn execute(&mut self, byte: u8) {
        match byte {
            b'\n' => {
                self.pending_cr = false;
                self.flush_line();
                self.done.push_str(if self.plain { "\n" } else { "&#10;" });
            }
            b'\r' => self.pending_cr = true,
            b'\t' => self.print('\t'),
            0x08 => {
                self.line.pop();
            }
            _ => {}
        }
    }

    fn csi_dispatch(
        &mut self,
        params: &Params,
        _intermediates: &[u8],
        _ignore: bool,
        action: char,
    ) {
        if action != 'm' {
            return;
        }
        let mut codes = params.iter().map(|p| p.first().copied().unwrap_or(0));
        let mut any = false;
        while let Some(code) = codes.next() {
            any = true;
            let s = &mut self.style;
            match code {
                0 => *s = Style::default(),
                1 => s.bold = true,
                2 => s.dim = true,
                3 => s.italic = true,
                4 => s.underline = true,
                22 => {
                    s.bold = false;
                    s.dim = false;
                }
                23 => s.italic = false,
                24 => s.underline = false,
                30..=37 => s.fg = Some((code - 30) as u8),
                90..=97 => s.fg = Some((code - 90 + 8) as u8),
                39 => s.fg = None,
                40..=47 => s.bg = Some((code - 40) as u8),
                100..=107 => s.bg = Some((code - 100 + 8) as u8),
                49 => s.bg = None,
                // 256-colour and true-colour forms carry arguments that
                // are not colours of the 16-colour palette: skip them.
                38 | 48 => match codes.next() {
                    Some(5) => {
                        codes.next();
                    }
                    Some(2) => {
                        codes.next();
                        codes.next();
                        codes.next();
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        if !any {
            self.style = Style::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_what_the_reader_sees() {
        assert_eq!(
            to_text(b"\x1b[31mr\x1b[0mot\r\nb\r\n10%\r100%\n<a>"),
            "rot\nb\n100%\n<a>"
        );
    }

    #[test]
    fn converts_terminal_bytes() {
        let cases: &[(&[u8], &str)] = &[
            (b"plain\n", "plain&#10;"),
            (
                b"\x1b[31mred\x1b[0m plain\n",
                "<span class=\"wb-fg1\">red</span> plain&#10;",
            ),
            (
                b"\x1b[1;92mok\x1b[m",
                "<span class=\"wb-fg10 wb-bold\">ok</span>",
            ),
            (
                b"</pre></code><script>alert(1)</script>",
                "&lt;/pre&gt;&lt;/code&gt;&lt;script&gt;alert(1)&lt;/script&gt;",
            ),
            (b"caf\xe9\n", "caf\u{fffd}&#10;"),
            (b"10%\r50%\r100%\r\n", "100%&#10;"),
            (b"\x1b[?2004hprompt\x1b]0;title\x07", "prompt"),
            (b"a\n\nb", "a&#10;&#10;b"),
            (
                b"```\n{{#include x}}",
                "```&#10;&#123;&#123;#include x&#125;&#125;",
            ),
            (b"\x1b[38;5;196mx\x1b[39m", "x"),
        ];
        for (input, want) in cases {
            assert_eq!(
                to_html(input),
                *want,
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
}
