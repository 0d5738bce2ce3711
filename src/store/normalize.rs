//! Normalization in two layers. Sanitisers change what the reader sees and
//! what is stored: host paths, the user's and the machine's names. The
//! comparator applies only when a new run is compared with the store, and
//! masks what differs between two honest runs: ids, digests, durations,
//! "N seconds ago", container addresses, generated names.

use std::sync::LazyLock;

use regex::Regex;

use crate::config::Rule;
use crate::record::{Outcome, Record};

/// Rules that change what is shown and stored.
pub struct Sanitiser {
    /// Literal replacements found on this machine.
    literal: Vec<(String, String)>,
    rules: Vec<(regex::bytes::Regex, String)>,
}

impl Sanitiser {
    /// The built-in rules for this machine plus the user's.
    pub fn new(user_rules: &[Rule]) -> Sanitiser {
        let mut literal = Vec::new();
        // The real home first: it usually contains the user's name.
        if let Some(home) = std::env::var_os("HOME").map(|h| h.to_string_lossy().to_string())
            && home.len() > 1
        {
            literal.push((home, "/home/user".to_string()));
        }
        if let Some(host) = hostname().filter(|h| h.len() >= 4 && h != "localhost") {
            literal.push((host, "host".to_string()));
        }
        let rules = user_rules
            .iter()
            .filter_map(|r| {
                Some((
                    regex::bytes::Regex::new(&r.pattern).ok()?,
                    r.replace.clone(),
                ))
            })
            .collect();
        Sanitiser { literal, rules }
    }

    /// Applies the rules to what a record shows; says whether anything
    /// changed.
    pub fn apply(&self, record: &mut Record) -> bool {
        let before = (
            record.output.clone(),
            record.problem.clone(),
            record.command.clone(),
        );
        self.apply_rules(record);
        before
            != (
                record.output.clone(),
                record.problem.clone(),
                record.command.clone(),
            )
    }

    fn apply_rules(&self, record: &mut Record) {
        for (from, to) in &self.literal {
            record.output.replace(from.as_bytes(), to.as_bytes());
            if let Some(p) = record.problem.as_mut() {
                *p = p.replace(from, to);
            }
        }
        if self.rules.is_empty() {
            return;
        }
        for bytes in [&mut record.output.head, &mut record.output.tail] {
            for (re, to) in &self.rules {
                *bytes = re.replace_all(bytes, to.as_bytes()).into_owned();
            }
        }
        for (re, to) in &self.rules {
            record.command =
                String::from_utf8_lossy(&re.replace_all(record.command.as_bytes(), to.as_bytes()))
                    .into_owned();
        }
        if let Some(p) = record.problem.as_mut() {
            for (re, to) in &self.rules {
                *p = String::from_utf8_lossy(&re.replace_all(p.as_bytes(), to.as_bytes()))
                    .into_owned();
            }
        }
    }
}

/// The machine's name, from the kernel.
fn hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// Masks what may differ between two honest runs.
pub struct Comparator {
    rules: Vec<(Regex, String)>,
}

static BUILT_IN: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    let r = |p: &str| Regex::new(p).expect("static pattern");
    vec![
        (r(r"sha256:[0-9a-f]{12,64}"), "sha256:<digest>"),
        (
            r(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?( UTC)?"),
            "<date>",
        ),
        (
            r(r"\b\d{2}/[A-Z][a-z]{2}/\d{4}[ :]\d{2}:\d{2}:\d{2}"),
            "<date>",
        ),
        // `date` as it prints by default.
        (
            r(
                r"\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +\d{1,2} \d{2}:\d{2}:\d{2} (\w+ )?\d{4}\b",
            ),
            "<date>",
        ),
        (r(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}\b"), "<date>"),
        (r(r"\b\d{2}:\d{2}:\d{2}(\.\d+)?\b"), "<clock>"),
        // `ls -l`: `Dec  4 18:12`, or the year for older files.
        (
            r(
                r"\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +\d{1,2} +(\d{2}:\d{2}|\d{4})\b",
            ),
            "<date>",
        ),
        (
            r(
                r"\b(About (a|an) \w+|Less than a second|\d+ (second|minute|hour|day|week|month|year)s?) ago\b",
            ),
            "<ago>",
        ),
        (
            r(r"\bUp (About (a|an) \w+|Less than a second|\d+ (second|minute|hour|day|week)s?)\b"),
            "Up <ago>",
        ),
        (r(r"\b172\.(1[6-9]|2\d|3[01])\.\d{1,3}\.\d{1,3}\b"), "<ip>"),
        (r(r"\b\d+(\.\d+)?\s?(ms|µs|s|m|h)\b"), "<time>"),
        (r(r"\b\d+m\d+(\.\d+)?s\b"), "<time>"),
    ]
});

/// What `docker pull` (or a `run` that pulls) prints depends on what the
/// daemon already has, not on the chapter: these lines are left out of the
/// comparison.
static PULL_NOISE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?m)^(Unable to find image '[^']*' locally",
        r"|[\w.:/-]+: Pulling from .*",
        r"|<id>: (Already exists|Pull complete|Pulling fs layer|Waiting|Verifying Checksum|Download complete|Downloading.*|Extracting.*)",
        r"|Digest: sha256:\S+",
        r"|Status: (Image is up to date|Downloaded newer image) for .*)\r?\n"
    ))
    .expect("static pattern")
});

static HEX_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b[0-9a-f]{7,64}\b").expect("static pattern"));
/// A `docker ps` row ends in the container's name, which Docker makes up
/// as adjective_surname unless `--name` is given.
static PS_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)((ago|Created|Up <ago>|Exited \(\d+\) <ago>).*\s)[a-z]+_[a-z]+\d*\s*$")
        .expect("static pattern")
});

impl Comparator {
    /// The built-in rules plus the user's.
    pub fn new(user_rules: &[Rule]) -> Comparator {
        let rules = user_rules
            .iter()
            .filter_map(|r| Some((Regex::new(&r.pattern).ok()?, r.replace.clone())))
            .collect();
        Comparator { rules }
    }

    /// Text with what may differ masked.
    pub fn mask(&self, text: &str) -> String {
        // Digests first, so that the id rule below leaves them whole.
        let text = BUILT_IN[0].0.replace_all(text, BUILT_IN[0].1);
        let mut text = HEX_ID
            .replace_all(&text, |c: &regex::Captures| {
                // Ids and git hashes mix digits and letters; a number or a
                // word of letters a-f is left alone.
                // Docker's short and long ids are masked whatever digits
                // they happen to have.
                let digits = c[0].bytes().filter(u8::is_ascii_digit).count();
                let docker_id = matches!(c[0].len(), 12 | 64) && digits > 0;
                if docker_id || (digits > 0 && digits < c[0].len()) {
                    "<id>".to_string()
                } else {
                    c[0].to_string()
                }
            })
            .into_owned();
        for (re, to) in BUILT_IN.iter() {
            text = re.replace_all(&text, *to).into_owned();
        }
        text = PS_NAME.replace_all(&text, "${1}<name>").into_owned();
        text = PULL_NOISE.replace_all(&text, "").into_owned();
        // Tables pad their columns to the widest cell, and a masked cell
        // ("2 seconds ago") had its own width: padding is not compared.
        text = crate::regex!(r"[ \t]{2,}")
            .replace_all(&text, "  ")
            .into_owned();
        for (re, to) in &self.rules {
            text = re.replace_all(&text, to.as_str()).into_owned();
        }
        text
    }

    /// A record as the text that is compared: the command, what it showed,
    /// how it ended, and a probe's answer. Durations are not compared.
    pub fn view(&self, record: &Record) -> String {
        let mut out = String::new();
        // The command too: a placeholder bound to a container's id differs.
        let command = self.mask(&record.command);
        match record.terminal.as_deref() {
            Some(terminal) => out.push_str(&format!("[{terminal}]$ {command}\n")),
            None => out.push_str(&format!("$ {command}\n")),
        }
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let mut head = self.mask(&text(&record.output.head));
        // A program that is ready goes on running: what it printed after
        // the ready line depends on when the screen was read.
        if let Outcome::Ready(pattern) = &record.outcome
            && let Ok(re) = Regex::new(pattern)
            && let Some(m) = re.find(&head)
        {
            let end = head[m.end()..]
                .find('\n')
                .map_or(head.len(), |n| m.end() + n + 1);
            head.truncate(end);
        }
        out.push_str(&head);
        if record.output.is_truncated() {
            out.push_str(&format!(
                "\n… {} lines omitted …\n",
                record.output.omitted_lines
            ));
            out.push_str(&self.mask(&text(&record.output.tail)));
        }
        if !out.ends_with('\n') {
            out.push('\n');
        }
        let outcome = match &record.outcome {
            Outcome::Exited(code) => format!("exit status {code}"),
            Outcome::TimedOut(_) => "timed out".to_string(),
            Outcome::ShellEnded => "the shell ended".to_string(),
            Outcome::Waiting => "waits for input".to_string(),
            Outcome::Ready(pattern) => format!("ready (`{pattern}` showed), goes on running"),
            Outcome::Interrupted(code) => format!("ended by CTRL+C, exit status {code}"),
            Outcome::Answered(code) => format!("HTTP {code}"),
            Outcome::Wrote(path) => format!("wrote {path}"),
            Outcome::Edited(path) => format!("edited {path}"),
            Outcome::Skipped(why) => format!("skipped: {why}"),
            Outcome::Failed(why) => format!("failed: {why}"),
        };
        out.push_str(&format!("→ {}\n", self.mask(&outcome)));
        if let Some(http) = &record.http {
            out.push_str(&format!("→ HTTP {} {}\n", http.status, http.content_type));
            out.push_str(&self.mask(&text(&http.body)));
            out.push('\n');
        }
        if let Some(problem) = &record.problem {
            out.push_str(&format!("→ problem: {}\n", self.mask(problem)));
        }
        out
    }

    /// A unified diff between a stored record and a new one, or `None` when
    /// they agree after masking.
    pub fn diff(&self, stored: &Record, now: &Record) -> Option<String> {
        let (a, b) = (self.view(stored), self.view(now));
        if a == b {
            return None;
        }
        Some(
            similar::TextDiff::from_lines(&a, &b)
                .unified_diff()
                .context_radius(3)
                .header("stored", "now")
                .to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_what_differs_between_honest_runs() {
        let c = Comparator::new(&[]);
        let ps = "CONTAINER ID   IMAGE          COMMAND   CREATED          STATUS                      PORTS     NAMES\n3f2a9c1b7d4e   ubuntu:14.04   \"bash\"    12 seconds ago   Exited (0) 3 seconds ago              eager_turing\n";
        let masked = c.mask(ps);
        assert!(masked.contains("<id>  ubuntu:14.04"), "{masked}");
        assert!(masked.contains("<ago>  Exited (0) <ago>"), "{masked}");
        assert!(masked.trim_end().ends_with("<name>"), "{masked}");
        assert_eq!(
            c.mask("#8 DONE 0.4s\nSuccessfully built 9d1c2b3a4f5e\nwriting image sha256:0123456789abcdef0123"),
            "#8 DONE <time>\nSuccessfully built <id>\nwriting image sha256:<digest>"
        );
        assert_eq!(c.mask("inet 172.17.0.3/16"), "inet <ip>/16");
        assert_eq!(c.mask(" ---> 739506624196"), " ---> <id>");
        assert_eq!(c.mask("Fri Dec  4 17:36:19 UTC 2026"), "<date>");
        assert_eq!(c.mask("at 09:15:02.123"), "at <clock>");
        assert_eq!(
            c.mask("-rw-r--r-- 1 root root 6 Dec  4 18:12 a.txt\n-rw-r--r-- 1 root root 6 Jan 12  2024 b.txt"),
            "-rw-r--r-- 1 root root 6 <date> a.txt\n-rw-r--r-- 1 root root 6 <date> b.txt"
        );
        assert_eq!(
            c.mask("127.0.0.1 - - [04/Dec/2026 17:40:02] \"GET / HTTP/1.1\" 200 -"),
            "127.0.0.1 - - [<date>] \"GET / HTTP/1.1\" 200 -"
        );
        // Words and numbers that carry meaning stay.
        assert_eq!(c.mask("decade 42 Flask 0.12"), "decade 42 Flask 0.12");
        assert_eq!(
            c.mask("[master acc1bde] add; 1234567 decade"),
            "[master <id>] add; 1234567 decade"
        );
        assert_eq!(
            c.mask("-rw-r--r-- 1 root 2026-12-04 19:01 a"),
            "-rw-r--r-- 1 root <date> a"
        );
        assert_eq!(c.mask("Up 5 minutes"), "Up <ago>");
        let pulled = "Unable to find image 'ubuntu:14.04' locally\n14.04: Pulling from library/ubuntu\n0307fe18ed2a: Pull complete\nDigest: sha256:08f5a928e0e0f5ba4c96155f046216b128588e5f7605db094f3a8b76c09bca3e\nStatus: Downloaded newer image for ubuntu:14.04\nhello world\n";
        assert_eq!(c.mask(pulled), "hello world\n");
    }

    #[test]
    fn user_rules_apply() {
        let rules = [Rule {
            pattern: r"Debugger PIN: [\d-]+".into(),
            replace: "Debugger PIN: <pin>".into(),
        }];
        assert_eq!(
            Comparator::new(&rules).mask("Debugger PIN: 123-456-789"),
            "Debugger PIN: <pin>"
        );
    }
}
