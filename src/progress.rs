//! Progress on stderr while steps run: the chapter, the step, its command
//! and the time it has taken. Only when stderr is a terminal, so logs and
//! CI output stay clean; the line is redrawn in place.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::script::{Step, StepKind};

struct Current {
    text: String,
    started: Instant,
}

static CURRENT: Mutex<Option<Current>> = Mutex::new(None);
static TICKER: std::sync::Once = std::sync::Once::new();

fn enabled() -> bool {
    std::io::stderr().is_terminal()
}

/// Shows that a step starts.
pub fn step(chapter: &str, index: usize, total: usize, step: &Step) {
    if !enabled() {
        return;
    }
    let what = match &step.kind {
        StepKind::Command(c) => c.text.lines().next().unwrap_or_default().to_string(),
        StepKind::Probe(p) => format!("GET {}", p.url),
        StepKind::Write { path, .. } => format!("write {path}"),
        StepKind::Edit { path, .. } => format!("edit {path}"),
        StepKind::Skip { text, .. } | StepKind::Refuse { text, .. } => text.clone(),
    };
    let what: String = what.chars().take(60).collect();
    let text = format!("{chapter}: step {}/{total} `{what}`", index + 1);
    if let Ok(mut current) = CURRENT.lock() {
        *current = Some(Current {
            text,
            started: Instant::now(),
        });
    }
    draw();
    TICKER.call_once(|| {
        std::thread::spawn(|| {
            loop {
                std::thread::sleep(Duration::from_millis(500));
                draw();
            }
        });
    });
}

/// Clears the progress line.
pub fn done() {
    if !enabled() {
        return;
    }
    if let Ok(mut current) = CURRENT.lock()
        && current.take().is_some()
    {
        let _ = write!(std::io::stderr(), "\r\x1b[K");
    }
}

fn draw() {
    let Ok(current) = CURRENT.lock() else { return };
    if let Some(c) = current.as_ref() {
        let _ = write!(
            std::io::stderr(),
            "\r\x1b[K{} {:.0} s",
            c.text,
            c.started.elapsed().as_secs_f64().floor()
        );
    }
}
