//! Directives: `<!-- workbook: key=value ... -->` comments that steer execution.
//!
//! They live in HTML comments so the sheet still reads normally on GitHub.
//! A value is a bare word or a double-quoted string with `\"` and `\\`
//! escapes. A key may carry a suffix after a dot (`expect.2=1`) that names
//! the command of a block it applies to.

use anyhow::{Result, bail};

/// Every key a directive may use, with what it does, for error messages.
pub const KNOWN_KEYS: &[(&str, &str)] = &[
    (
        "expect",
        "exit status a command must end with: a number, `nonzero` or `any`",
    ),
    ("timeout", "seconds a command may run before it is killed"),
    (
        "skip",
        "do not run the next block; the value says why, on the page",
    ),
    (
        "file",
        "write the next block to this path, relative to the current directory",
    ),
    (
        "edit",
        "apply the next partial block (with `...`) to this file",
    ),
    (
        "replace",
        "with `edit`: the line of the file that the block's lines replace",
    ),
    (
        "bind",
        "`<PLACEHOLDER>=source`: what a placeholder in later commands stands for",
    ),
    (
        "show",
        "before a screenshot: which commands of the block above it shows, as `2` or `1-3`",
    ),
    ("note", "a visible note (Hinweis) shown with the next block"),
    (
        "open",
        "open a named terminal (a pseudo-terminal) and type the command into it",
    ),
    (
        "terminal",
        "type the command into a named terminal that an earlier `open` opened",
    ),
    (
        "ready",
        "on a terminal: a pattern that shows the command is ready; it may go on running",
    ),
    (
        "interrupt",
        "with `ready`: send CTRL+C once the pattern shows",
    ),
    (
        "contains",
        "text the output (or a probe's body) must contain",
    ),
    ("matches", "a regular expression the output must match"),
    (
        "cached",
        "a `docker build` step, by part of its instruction, that must come from the cache",
    ),
    (
        "rebuilt",
        "a `docker build` step, by part of its instruction, that must be built anew",
    ),
    (
        "cached-before",
        "a `docker build` step, by part of its instruction: every step before it must come from the cache",
    ),
    (
        "time-at-most",
        "a `docker build` may take at most this share of the first build of the same image in the chapter: `50%`",
    ),
    (
        "hidden",
        "a check the reader need not see: the block shows only if it fails",
    ),
    (
        "file-exists",
        "a path, relative to the chapter's shell, that must exist after the command",
    ),
    (
        "probe",
        "an HTTP GET of a URL on this machine, repeated until it answers; shown in place of the next screenshot",
    ),
    (
        "status",
        "with `probe`: the HTTP status the answer must have",
    ),
];

/// One `key[.suffix]=value` pair of a directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub key: String,
    /// The part after a dot, as in `expect.2`.
    pub suffix: Option<String>,
    pub value: Option<String>,
}

/// A parsed directive comment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Directive {
    pub settings: Vec<Setting>,
}

impl Directive {
    /// The value of the first setting with this key and no suffix.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|s| s.key == key && s.suffix.is_none())
            .and_then(|s| s.value.as_deref())
    }

    /// Whether any setting uses this key.
    pub fn has(&self, key: &str) -> bool {
        self.settings.iter().any(|s| s.key == key)
    }

    /// Whether the directive only declares things for the rest of the chapter
    /// and so attaches to no block.
    pub fn is_standalone(&self) -> bool {
        self.settings.iter().all(|s| s.key == "bind")
    }
}

/// Parses the body of a directive comment, the text after `workbook:`.
pub fn parse(body: &str) -> Result<Directive> {
    let mut settings = Vec::new();
    let mut chars = body.trim().chars().peekable();

    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }

        let mut name = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
            name.push(c);
        }
        if name.is_empty() {
            bail!("expected a key before `=`");
        }

        let value = if chars.next_if_eq(&'=').is_some() {
            Some(read_value(&mut chars).map_err(|e| anyhow::anyhow!("key `{name}`: {e}"))?)
        } else {
            None
        };

        let (key, suffix) = match name.split_once('.') {
            Some((k, s)) => (k.to_string(), Some(s.to_string())),
            None => (name.clone(), None),
        };
        if !KNOWN_KEYS.iter().any(|(k, _)| *k == key) {
            let known: Vec<&str> = KNOWN_KEYS.iter().map(|(k, _)| *k).collect();
            bail!("unknown key `{key}` (known keys: {})", known.join(", "));
        }
        if value.is_none() && !["skip", "interrupt", "hidden"].contains(&key.as_str()) {
            bail!("key `{key}` needs a value, as in `{key}=...`");
        }
        settings.push(Setting { key, suffix, value });
    }

    if settings.is_empty() {
        bail!("the directive is empty");
    }
    Ok(Directive { settings })
}

fn read_value(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<String> {
    let mut value = String::new();

    if chars.next_if_eq(&'"').is_none() {
        while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
            value.push(c);
        }
        if value.is_empty() {
            bail!("missing value after `=`");
        }
        return Ok(value);
    }

    loop {
        match chars.next() {
            None => bail!("unclosed quote"),
            Some('"') => break,
            Some('\\') => match chars.next() {
                Some(c @ ('"' | '\\')) => value.push(c),
                Some(c) => {
                    value.push('\\');
                    value.push(c);
                }
                None => bail!("unclosed quote"),
            },
            Some(c) => value.push(c),
        }
    }
    if chars.peek().is_some_and(|c| !c.is_whitespace()) {
        bail!("expected a space after the closing quote");
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Expected<'a> = &'a [(&'a str, Option<&'a str>, Option<&'a str>)];

    #[test]
    fn parses_settings() {
        let cases: &[(&str, Expected)] = &[
            ("expect=1", &[("expect", None, Some("1"))]),
            (
                "expect.2=any timeout=5",
                &[
                    ("expect", Some("2"), Some("any")),
                    ("timeout", None, Some("5")),
                ],
            ),
            (
                r#"skip="needs a \"TTY\"""#,
                &[("skip", None, Some("needs a \"TTY\""))],
            ),
            ("skip", &[("skip", None, None)]),
            (
                "  file=Dockerfile\n ",
                &[("file", None, Some("Dockerfile"))],
            ),
            (
                r#"bind="<PATH>=workspace""#,
                &[("bind", None, Some("<PATH>=workspace"))],
            ),
        ];
        for (input, want) in cases {
            let got = parse(input).unwrap();
            let got: Vec<_> = got
                .settings
                .iter()
                .map(|s| (s.key.as_str(), s.suffix.as_deref(), s.value.as_deref()))
                .collect();
            assert_eq!(&got, want, "input {input:?}");
        }
    }

    #[test]
    fn rejects_malformed() {
        let cases = [
            (
                "tiemout=5",
                "unknown key `tiemout` (known keys: expect, timeout",
            ),
            ("expect", "key `expect` needs a value"),
            ("file=\"Docker", "unclosed quote"),
            ("expect=", "missing value"),
            ("", "empty"),
            ("=3", "expected a key"),
            ("note=\"a\"b", "expected a space"),
        ];
        for (input, want) in cases {
            let err = parse(input).unwrap_err().to_string();
            assert!(err.contains(want), "input {input:?}: {err}");
        }
    }
}
