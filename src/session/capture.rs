//! Bounded capture of a command's output: a head, a tail, and counts of what
//! lies between, so that 100 MB of output costs a few kilobytes.

use std::collections::VecDeque;

const HEAD_LINES: usize = 120;
const HEAD_BYTES: usize = 48 * 1024;
const TAIL_LINES: usize = 60;
const TAIL_BYTES: usize = 24 * 1024;

/// What a command wrote, bounded in size.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Output {
    #[serde(with = "crate::record::bytes")]
    pub head: Vec<u8>,
    /// The last lines, when the output was longer than the head.
    #[serde(
        default,
        with = "crate::record::bytes",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tail: Vec<u8>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted_lines: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted_bytes: u64,
    /// Seconds after the start at which lines beginning with `Step `
    /// arrived: the legacy builder prints one per Dockerfile step and no
    /// times of its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_marks: Vec<f64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Output {
    /// Output that fits in the head.
    pub fn whole(bytes: &[u8]) -> Output {
        let mut capture = Capture::default();
        capture.push(bytes);
        capture.finish()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.head.is_empty() && self.tail.is_empty() && self.omitted_bytes == 0
    }

    /// Whether the middle was cut out.
    pub fn is_truncated(&self) -> bool {
        self.omitted_bytes > 0
    }

    /// Replaces a byte string everywhere, for example a host path.
    pub fn replace(&mut self, from: &[u8], to: &[u8]) {
        self.head = replace_bytes(&self.head, from, to);
        self.tail = replace_bytes(&self.tail, from, to);
    }

    /// Whether the kept output contains a string.
    pub fn contains(&self, needle: &str) -> bool {
        let n = needle.as_bytes();
        if n.is_empty() {
            return true;
        }
        [&self.head, &self.tail]
            .iter()
            .any(|h| h.windows(n.len()).any(|w| w == n))
    }
}

fn replace_bytes(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    if from.is_empty() {
        return haystack.to_vec();
    }
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

/// At most this many step marks are kept.
const MAX_MARKS: usize = 1000;
/// What a line starts with to be marked.
const MARKED: &[u8] = b"Step ";

/// Accumulates output chunks into an [`Output`].
#[derive(Debug)]
pub struct Capture {
    head: Vec<u8>,
    head_lines: usize,
    head_full: bool,
    tail: VecDeque<u8>,
    total_bytes: u64,
    total_lines: u64,
    started: std::time::Instant,
    /// The first bytes of the current line, until there are enough to tell
    /// whether it is marked.
    line_start: Vec<u8>,
    marks: Vec<f64>,
}

impl Default for Capture {
    fn default() -> Self {
        Capture {
            head: Vec::new(),
            head_lines: 0,
            head_full: false,
            tail: VecDeque::new(),
            total_bytes: 0,
            total_lines: 0,
            started: std::time::Instant::now(),
            line_start: Vec::new(),
            marks: Vec::new(),
        }
    }
}

impl Capture {
    /// Notes when lines that start with [`MARKED`] arrive.
    fn mark(&mut self, mut chunk: &[u8]) {
        let now = self.started.elapsed().as_secs_f64();
        loop {
            let newline = chunk.iter().position(|b| *b == b'\n');
            if self.line_start.len() < MARKED.len() {
                let line = &chunk[..newline.unwrap_or(chunk.len())];
                let need = MARKED.len() - self.line_start.len();
                self.line_start
                    .extend_from_slice(&line[..line.len().min(need)]);
                if self.line_start == MARKED && self.marks.len() < MAX_MARKS {
                    self.marks.push(now);
                }
            }
            match newline {
                Some(n) => {
                    chunk = &chunk[n + 1..];
                    self.line_start.clear();
                }
                None => break,
            }
        }
    }

    /// Adds a chunk as it was read.
    pub fn push(&mut self, mut chunk: &[u8]) {
        self.mark(chunk);
        self.total_bytes += chunk.len() as u64;
        self.total_lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;

        while !self.head_full && !chunk.is_empty() {
            let room = HEAD_BYTES - self.head.len();
            let take = match chunk.iter().position(|b| *b == b'\n') {
                Some(nl) if nl < room => nl + 1,
                _ => room.min(chunk.len()),
            };
            self.head.extend_from_slice(&chunk[..take]);
            if chunk[..take].ends_with(b"\n") {
                self.head_lines += 1;
            }
            chunk = &chunk[take..];
            self.head_full = self.head_lines >= HEAD_LINES || self.head.len() >= HEAD_BYTES;
        }

        let keep = chunk.len().min(TAIL_BYTES);
        let chunk = &chunk[chunk.len() - keep..];
        let overflow = (self.tail.len() + chunk.len()).saturating_sub(TAIL_BYTES);
        self.tail.drain(..overflow);
        self.tail.extend(chunk);
    }

    /// The bounded output: the tail is cut to whole lines, and what lies
    /// between head and tail is counted.
    pub fn finish(&self) -> Output {
        let mut tail: Vec<u8> = self.tail.iter().copied().collect();
        let kept_elsewhere = self.head.len() as u64 + tail.len() as u64;
        // The tail's first line is cut off when something was dropped before it.
        if kept_elsewhere < self.total_bytes
            && let Some(nl) = tail.iter().position(|b| *b == b'\n')
        {
            tail.drain(..=nl);
        }
        let newlines = tail
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i);
        let starts: Vec<usize> = newlines.collect();
        if starts.len() > TAIL_LINES {
            let cut = starts[starts.len() - TAIL_LINES - 1] + 1;
            tail.drain(..cut);
        }

        let omitted_bytes = self.total_bytes - self.head.len() as u64 - tail.len() as u64;
        let count = |b: &[u8]| b.iter().filter(|c| **c == b'\n').count() as u64;
        let omitted_lines = self.total_lines - count(&self.head) - count(&tail);
        if omitted_bytes == 0 {
            let mut head = self.head.clone();
            head.extend_from_slice(&tail);
            return Output {
                head,
                step_marks: self.marks.clone(),
                ..Output::default()
            };
        }
        Output {
            head: self.head.clone(),
            tail,
            omitted_lines,
            omitted_bytes,
            step_marks: self.marks.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_output_is_kept_whole() {
        let cases: &[&[u8]] = &[b"", b"one\n", b"no newline", b"caf\xe9\n"];
        for case in cases {
            let out = Output::whole(case);
            assert_eq!(out.head, *case);
            assert!(!out.is_truncated());
        }
    }

    #[test]
    fn long_output_keeps_head_and_tail_with_exact_counts() {
        let mut capture = Capture::default();
        let line = b"line\n";
        for _ in 0..1000 {
            capture.push(line);
        }
        let out = capture.finish();
        assert_eq!(out.head, line.repeat(HEAD_LINES));
        assert_eq!(out.tail, line.repeat(TAIL_LINES));
        assert_eq!(out.omitted_lines, (1000 - HEAD_LINES - TAIL_LINES) as u64);
        assert_eq!(out.omitted_bytes, out.omitted_lines * 5);
    }

    #[test]
    fn one_huge_line_is_bounded() {
        let mut capture = Capture::default();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..8 {
            capture.push(&chunk);
        }
        let out = capture.finish();
        assert!(out.head.len() <= HEAD_BYTES && out.tail.len() <= TAIL_BYTES);
        assert_eq!(
            out.head.len() as u64 + out.tail.len() as u64 + out.omitted_bytes,
            8 << 20
        );
    }

    #[test]
    fn marks_when_step_lines_arrive() {
        let mut capture = Capture::default();
        capture.push(b"Sending build context\nSte");
        capture.push(b"p 1/2 : FROM x\n ---> abc\n");
        std::thread::sleep(std::time::Duration::from_millis(30));
        capture.push(b"Step 2/2 : RUN true\nnot Step 3\nStep");
        let out = capture.finish();
        assert_eq!(out.step_marks.len(), 2, "{:?}", out.step_marks);
        assert!(out.step_marks[1] - out.step_marks[0] >= 0.03);
    }

    #[test]
    fn replaces_paths() {
        let mut out = Output::whole(b"/tmp/ws/home/x and /tmp/ws/home\n");
        out.replace(b"/tmp/ws/home", b"~");
        assert_eq!(out.head, b"~/x and ~\n");
    }
}
