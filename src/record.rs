//! Records: what one step really did.

use std::time::Duration;

use crate::script::Expect;
use crate::session::capture::Output;

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The command exited with this status.
    Exited(i32),
    /// The command ran past its timeout and was killed.
    TimedOut(Duration),
    /// The shell ended during the command (an `exit`, or it had to be killed).
    ShellEnded,
    /// A program in a terminal waits for input and goes on running.
    Waiting,
    /// The ready pattern showed; the program goes on running.
    Ready(String),
    /// The ready pattern showed, CTRL+C was sent, and the program ended with
    /// this status.
    Interrupted(i32),
    /// A probe got this HTTP status.
    Answered(u16),
    /// A block's content was written to this path.
    Wrote(String),
    /// A partial block was applied to this file.
    Edited(String),
    /// The step did not run, for this reason; not a failure.
    Skipped(String),
    /// The step could not or must not run; a failure.
    Failed(String),
}

/// What one step did.
#[derive(Debug, Clone)]
pub struct Record {
    /// The step's index in the chapter's script.
    pub step: usize,
    /// 1-based line in the chapter.
    pub line: usize,
    /// The command as it ran, or the path written.
    pub command: String,
    /// The working directory before the step, as the reader sees it (`~/x`).
    pub cwd: String,
    pub output: Output,
    pub outcome: Outcome,
    pub expect: Option<Expect>,
    pub duration: Duration,
    /// Why the step counts as failed, if it does.
    pub problem: Option<String>,
    /// The named terminal it was typed into; its output is that screen.
    pub terminal: Option<String>,
    /// A probe's answer.
    pub http: Option<crate::session::http::Response>,
}

impl Record {
    /// Whether the step did what the chapter expects.
    pub fn is_ok(&self) -> bool {
        self.problem.is_none()
    }
}
