//! Splitting a shell block into command lines.
//!
//! A command line ends at a newline, unless the shell would keep reading:
//! an open quote, a trailing backslash, a here-document, or an open
//! `if`/`case`/loop/`{` group. Comment-only and blank lines between commands
//! are dropped.

/// One command line of a block: its first line (0-based, within the block)
/// and its text without the final newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    pub line: usize,
    pub text: String,
}

/// Splits a shell block's content into command lines.
pub fn split(content: &str) -> Vec<CommandLine> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut first_line = 0;

    for (n, line) in content.lines().enumerate() {
        if current.is_empty() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            first_line = n;
        } else {
            current.push('\n');
        }
        current.push_str(line);

        if is_complete(&current) {
            out.push(CommandLine {
                line: first_line,
                text: std::mem::take(&mut current),
            });
        }
    }

    if !current.trim().is_empty() {
        out.push(CommandLine {
            line: first_line,
            text: current,
        });
    }
    out
}

/// Whether the shell would run `text` as it stands, without reading more.
fn is_complete(text: &str) -> bool {
    let mut lexer = Lexer::default();
    for line in text.split('\n') {
        lexer.line(line);
    }
    lexer.complete()
}

#[derive(Default)]
struct Lexer {
    single: bool,
    double: bool,
    continued: bool,
    /// Here-document delimiters still to read, with whether tabs are stripped.
    heredocs: Vec<(String, bool)>,
    in_heredoc: Option<(String, bool)>,
    depth: i32,
    subshells: i32,
}

impl Lexer {
    fn complete(&self) -> bool {
        !self.single
            && !self.double
            && !self.continued
            && self.heredocs.is_empty()
            && self.in_heredoc.is_none()
            && self.depth <= 0
            && self.subshells <= 0
    }

    fn line(&mut self, line: &str) {
        if let Some((delim, strip)) = &self.in_heredoc {
            let candidate = if *strip {
                line.trim_start_matches('\t')
            } else {
                line
            };
            if candidate == delim {
                self.in_heredoc = None;
                self.start_next_heredoc();
            }
            return;
        }

        self.continued = false;
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        let mut word = String::new();
        let mut command_position = !self.single && !self.double;

        while i < chars.len() {
            let c = chars[i];
            if self.single {
                if c == '\'' {
                    self.single = false;
                }
                i += 1;
                continue;
            }
            if c == '\\' {
                if i + 1 == chars.len() {
                    self.continued = true;
                }
                i += 2;
                continue;
            }
            if self.double {
                match c {
                    '"' => self.double = false,
                    '$' if chars.get(i + 1) == Some(&'(') => {
                        self.subshells += 1;
                        i += 1;
                    }
                    ')' if self.subshells > 0 => self.subshells -= 1,
                    _ => {}
                }
                i += 1;
                continue;
            }

            let boundary = c.is_whitespace() || ";&|()<>".contains(c);
            if boundary && !word.is_empty() {
                self.keyword(&word, command_position);
                command_position =
                    matches!(word.as_str(), "then" | "do" | "else" | "elif" | "{" | "!");
                word.clear();
            }

            match c {
                '\'' => self.single = true,
                '"' => self.double = true,
                '#' if word.is_empty() => break,
                '$' if chars.get(i + 1) == Some(&'(') => {
                    self.subshells += 1;
                    i += 1;
                }
                ')' if self.subshells > 0 => self.subshells -= 1,
                ';' | '&' | '|' | '(' => command_position = true,
                '<' if chars.get(i + 1) == Some(&'<') && chars.get(i + 2) != Some(&'<') => {
                    i = self.heredoc(&chars, i + 2);
                    continue;
                }
                _ if !boundary => word.push(c),
                _ => {}
            }
            i += 1;
        }

        if !word.is_empty() {
            self.keyword(&word, command_position);
        }
        if !self.continued {
            self.start_next_heredoc();
        }
    }

    fn keyword(&mut self, word: &str, command_position: bool) {
        if !command_position {
            return;
        }
        match word {
            "if" | "case" | "do" | "{" => self.depth += 1,
            "fi" | "esac" | "done" | "}" => self.depth -= 1,
            _ => {}
        }
    }

    /// Reads a here-document operator's delimiter; returns where to go on.
    fn heredoc(&mut self, chars: &[char], mut i: usize) -> usize {
        let strip = chars.get(i) == Some(&'-');
        if strip {
            i += 1;
        }
        while chars.get(i).is_some_and(|c| *c == ' ' || *c == '\t') {
            i += 1;
        }
        let mut delim = String::new();
        while let Some(&c) = chars.get(i) {
            if c.is_whitespace() || ";&|<>()".contains(c) {
                break;
            }
            if c != '\'' && c != '"' && c != '\\' {
                delim.push(c);
            }
            i += 1;
        }
        if !delim.is_empty() {
            self.heredocs.push((delim, strip));
        }
        i
    }

    fn start_next_heredoc(&mut self) {
        if self.in_heredoc.is_none() && !self.heredocs.is_empty() {
            self.in_heredoc = Some(self.heredocs.remove(0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_blocks_into_command_lines() {
        let cases: &[(&str, &[(usize, &str)])] = &[
            (
                "docker ps # all\ndocker ps -a\n",
                &[(0, "docker ps # all"), (1, "docker ps -a")],
            ),
            ("# only a comment\n\necho one\n", &[(2, "echo one")]),
            (
                "echo 'a\nb'\necho c\n",
                &[(0, "echo 'a\nb'"), (2, "echo c")],
            ),
            (
                "docker run \\\n  ubuntu\n",
                &[(0, "docker run \\\n  ubuntu")],
            ),
            (
                "cat <<EOF > f\nx\nEOF\necho done\n",
                &[(0, "cat <<EOF > f\nx\nEOF"), (3, "echo done")],
            ),
            (
                "cat <<-'END'\n\tx\n\tEND\n",
                &[(0, "cat <<-'END'\n\tx\n\tEND")],
            ),
            (
                "for i in 1 2; do\n  echo $i\ndone\n",
                &[(0, "for i in 1 2; do\n  echo $i\ndone")],
            ),
            (
                "if true; then\necho y\nfi\necho n\n",
                &[(0, "if true; then\necho y\nfi"), (3, "echo n")],
            ),
            ("echo if done fi\n", &[(0, "echo if done fi")]),
            (
                "docker stop $(docker ps -a -q)   # Stops all\n",
                &[(0, "docker stop $(docker ps -a -q)   # Stops all")],
            ),
            ("echo \"$(date\n)\"\n", &[(0, "echo \"$(date\n)\"")]),
            ("printf 'it''s'\n", &[(0, "printf 'it''s'")]),
            ("echo 'unclosed\n", &[(0, "echo 'unclosed")]),
        ];
        for (content, want) in cases {
            let got: Vec<(usize, String)> = split(content)
                .into_iter()
                .map(|c| (c.line, c.text))
                .collect();
            let want: Vec<(usize, String)> =
                want.iter().map(|(l, t)| (*l, t.to_string())).collect();
            assert_eq!(got, want, "content {content:?}");
        }
    }
}
