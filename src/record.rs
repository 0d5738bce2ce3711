//! Records: what one step really did.
//!
//! Records are stored as YAML (see `store`), so every type here serialises
//! to a form a reviewer can read: text stays text, and only bytes that are
//! not UTF-8 are kept as base64.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::script::Expect;
use crate::session::capture::Output;

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The command exited with this status.
    Exited(i32),
    /// The command ran past its timeout and was killed.
    TimedOut(#[serde(with = "seconds")] Duration),
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
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// The step's index in the chapter's script.
    pub step: usize,
    /// 1-based line in the chapter.
    pub line: usize,
    /// The command as it ran, or the path written.
    pub command: String,
    /// The working directory before the step, as the reader sees it (`~/x`).
    pub cwd: String,
    /// The named terminal it was typed into; its output is that screen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal: Option<String>,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
    #[serde(with = "seconds")]
    pub duration: Duration,
    /// Why the step counts as failed, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    #[serde(default, skip_serializing_if = "Output::is_empty")]
    pub output: Output,
    /// A probe's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<crate::session::http::Response>,
    /// A build's time against the first build of the same image, where the
    /// chapter claims a share of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<Timing>,
}

/// A build's time against the first build of the same image and directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Timing {
    /// The share of the first build's time the chapter allows.
    pub at_most: f64,
    /// The line of the first build.
    pub first_line: usize,
    /// How long the first build took.
    #[serde(with = "seconds")]
    pub first: Duration,
}

impl Record {
    /// Whether the step did what the chapter expects.
    pub fn is_ok(&self) -> bool {
        self.problem.is_none()
    }
}

/// Durations as seconds, rounded to milliseconds.
pub mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(round(*d).as_secs_f64())
    }

    /// A duration as it is stored, so that a page shows the same figure
    /// whether it was built from a run or from the store.
    pub fn round(d: Duration) -> Duration {
        Duration::from_millis(d.as_secs_f64().mul_add(1000.0, 0.5) as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

/// Bytes as text when they are UTF-8, and as base64 otherwise, so that
/// output which is not text survives a round trip unchanged.
pub mod bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Text(String),
        Raw { base64: String },
    }

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(b) {
            Ok(text) => Repr::Text(text.to_string()),
            Err(_) => Repr::Raw {
                base64: STANDARD.encode(b),
            },
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Text(text) => Ok(text.into_bytes()),
            Repr::Raw { base64 } => STANDARD
                .decode(base64.as_bytes())
                .map_err(serde::de::Error::custom),
        }
    }
}
