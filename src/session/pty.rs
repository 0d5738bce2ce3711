//! Named terminals: a bash under a pseudo-terminal, for programs that need
//! one (`docker run -it`, `docker exec -it`) and for servers that run in the
//! foreground.
//!
//! Input is typed as a student would type it. What the terminal shows is
//! kept by a terminal emulator (`vt100`), so the record is the screen, never
//! raw escape sequences. The terminal's own bash reports each exit status
//! through the window title, which a person does not see on the screen.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use regex::Regex;

/// How long a new terminal must stay quiet after its first prompt before
/// anything is typed.
const PROMPT_QUIET: Duration = Duration::from_millis(200);
/// The terminal's size. It is tall, so that nothing scrolls away during a
/// chapter; programs see it as their window size.
const ROWS: u16 = 1000;
const COLS: u16 = 120;
/// How long a program must stay quiet before it is taken to wait for input.
const SETTLE: Duration = Duration::from_millis(1200);
const STATUS_TITLE: &str = "workbook-status:";
/// How long a program may take to end after CTRL+C.
const INTERRUPT_GRACE: Duration = Duration::from_secs(15);

/// How a typed step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypedEnd {
    /// The terminal's shell came back with this status.
    Exited(i32),
    /// The program in the terminal waits for input (it went quiet).
    Waiting,
    /// The ready pattern appeared; the program goes on running.
    Ready,
    /// The ready pattern appeared, CTRL+C was sent, and the shell came back.
    Interrupted(i32),
    /// CTRL+C was sent, but the program went on running.
    IgnoredInterrupt,
    TimedOut,
    /// The terminal itself ended.
    Closed,
}

/// What one typed step did.
#[derive(Debug)]
pub struct Typed {
    /// The screen lines the step produced, prompt and typed text included.
    pub screen: String,
    pub end: TypedEnd,
    pub duration: Duration,
}

/// What the step waits for.
#[derive(Debug, Clone, Default)]
pub struct Wait {
    pub ready: Option<Regex>,
    pub interrupt: bool,
}

/// Starts the emulator's screen afresh when the cursor is past half of it,
/// so a step never runs out of rows. The cursor's line (a prompt) is kept.
fn make_room(parser: &mut vt100::Parser<Titles>) {
    let (row, col) = parser.screen().cursor_position();
    if row < ROWS / 2 {
        return;
    }
    let line: String = parser
        .screen()
        .rows(0, COLS)
        .nth(row as usize)
        .unwrap_or_default();
    let line: String = format!("{line:<width$}", width = col as usize)
        .chars()
        .take(col as usize)
        .collect();
    let titles = std::mem::take(parser.callbacks_mut());
    *parser = vt100::Parser::new_with_callbacks(ROWS, COLS, 0, titles);
    parser.process(line.as_bytes());
}

#[derive(Default)]
struct Titles {
    statuses: Vec<i32>,
}

impl vt100::Callbacks for Titles {
    fn set_window_title(&mut self, _: &mut vt100::Screen, title: &[u8]) {
        let title = String::from_utf8_lossy(title);
        if let Some(code) = title.strip_prefix(STATUS_TITLE) {
            self.statuses.push(code.trim().parse().unwrap_or(-1));
        }
    }
}

struct Shared {
    parser: vt100::Parser<Titles>,
    last_output: Instant,
    /// Bytes read so far, to tell whether a step printed anything.
    bytes: u64,
    closed: bool,
}

/// A named terminal.
pub struct Terminal {
    pub name: String,
    child: Box<dyn portable_pty::Child + Send + Sync>,
    writer: Box<dyn Write + Send>,
    shared: Arc<Mutex<Shared>>,
    // Kept so the terminal's master side stays open while it is in use.
    _master: Box<dyn portable_pty::MasterPty + Send>,
}

impl Terminal {
    /// Opens a terminal running an interactive bash in `cwd`.
    /// `ctl` is a private directory for the terminal's startup file.
    pub fn open(name: &str, cwd: &Path, ctl: &Path, env: &[(String, String)]) -> Result<Terminal> {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: ROWS,
                cols: COLS,
                pixel_width: 0,
                pixel_height: 0,
            })
            .context("opening a pseudo-terminal")?;

        // Shell variables, not exported: programs started in the terminal
        // (a nested shell, say) keep their own prompt.
        let rc = ctl.join(format!("terminal-{}.rc", name.replace(['/', ' '], "_")));
        let startup = format!(
            "PS1='\\w$ '\nPROMPT_COMMAND='printf \"\\033]2;{STATUS_TITLE}%s\\007\" \"$?\"'\n"
        );
        std::fs::write(&rc, startup).with_context(|| format!("writing {}", rc.display()))?;

        let mut command = CommandBuilder::new("bash");
        command.arg("--noprofile");
        command.arg("--rcfile");
        command.arg(&rc);
        command.arg("-i");
        command.cwd(cwd);
        command.env_remove("OLDPWD");
        for (k, v) in env {
            command.env(k, v);
        }
        command.env("TERM", "xterm");
        let child = pair
            .slave
            .spawn_command(command)
            .with_context(|| format!("starting terminal `{name}`"))?;
        drop(pair.slave);

        let mut reader = pair
            .master
            .try_clone_reader()
            .context("reading the terminal")?;
        let writer = pair
            .master
            .take_writer()
            .context("writing to the terminal")?;
        let shared = Arc::new(Mutex::new(Shared {
            parser: vt100::Parser::new_with_callbacks(ROWS, COLS, 0, Titles::default()),
            last_output: Instant::now(),
            bytes: 0,
            closed: false,
        }));

        let sink = Arc::clone(&shared);
        thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                tracing::trace!(bytes = %String::from_utf8_lossy(&buf[..n]), "terminal output");
                let Ok(mut s) = sink.lock() else { break };
                s.parser.process(&buf[..n]);
                s.last_output = Instant::now();
                s.bytes += n as u64;
            }
            if let Ok(mut s) = sink.lock() {
                s.closed = true;
            }
        });

        let mut terminal = Terminal {
            name: name.to_string(),
            child,
            writer,
            shared,
            _master: pair.master,
        };
        terminal.wait_for_prompt(Duration::from_secs(10))?;
        Ok(terminal)
    }

    fn wait_for_prompt(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            // The status comes from PROMPT_COMMAND, before bash draws the
            // prompt and readline takes the line; a line typed in between
            // would be echoed twice. So the terminal must also go quiet.
            if let Ok(s) = self.shared.lock()
                && !s.parser.callbacks().statuses.is_empty()
                && s.last_output.elapsed() >= PROMPT_QUIET
            {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(20));
        }
        bail!(
            "terminal `{}` showed no prompt within {} s",
            self.name,
            timeout.as_secs()
        )
    }

    /// Whether the terminal still runs.
    pub fn is_open(&mut self) -> bool {
        let closed = self.shared.lock().map(|s| s.closed).unwrap_or(true);
        !closed && matches!(self.child.try_wait(), Ok(None))
    }

    /// The process id of the terminal's bash, which leads its own session.
    pub fn pid(&self) -> Option<u32> {
        self.child.process_id()
    }

    /// Types a line and waits as `wait` says, at most `timeout`.
    pub fn type_line(&mut self, line: &str, wait: &Wait, timeout: Duration) -> Result<Typed> {
        if !self.is_open() {
            bail!(
                "terminal `{}` has ended; nothing can be typed into it",
                self.name
            );
        }
        let (start_row, statuses_before, bytes_before) = {
            let mut s = self
                .shared
                .lock()
                .map_err(|_| anyhow::anyhow!("terminal state poisoned"))?;
            make_room(&mut s.parser);
            (
                s.parser.screen().cursor_position().0,
                s.parser.callbacks().statuses.len(),
                s.bytes,
            )
        };

        let started = Instant::now();
        self.writer
            .write_all(format!("{line}\r").as_bytes())
            .context("typing into the terminal")?;
        self.writer.flush().ok();

        let floor = bytes_before + line.len() as u64;
        let end = self.wait(start_row, statuses_before, floor, wait, started + timeout);
        let end = match end {
            // Without a ready pattern, a program that went quiet is taken
            // to be ready.
            TypedEnd::Ready | TypedEnd::Waiting if wait.interrupt => {
                // A student reads what the program printed before pressing
                // CTRL+C: let it finish starting up first.
                self.wait_quiet(Duration::from_secs(10));
                self.writer.write_all(b"\x03").ok();
                self.writer.flush().ok();
                let count = self
                    .shared
                    .lock()
                    .map(|s| s.parser.callbacks().statuses.len())
                    .unwrap_or(0);
                match self.wait_for_status(count.max(statuses_before), INTERRUPT_GRACE) {
                    Some(code) => TypedEnd::Interrupted(code),
                    None => TypedEnd::IgnoredInterrupt,
                }
            }
            other => other,
        };

        // The shell's own prompt after a command belongs to the next step; a
        // program's prompt (a container's shell) is what the student sees.
        let screen = self.screen_since(
            start_row,
            matches!(end, TypedEnd::Exited(_) | TypedEnd::Interrupted(_)),
        );
        Ok(Typed {
            screen,
            end,
            duration: started.elapsed(),
        })
    }

    /// Waits until the terminal printed nothing for a while, at most `limit`.
    fn wait_quiet(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self
                .shared
                .lock()
                .map(|s| s.last_output.elapsed() >= SETTLE)
                .unwrap_or(true)
            {
                return;
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits for the terminal's shell to come back, and only for that.
    fn wait_for_status(&mut self, seen: usize, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(s) = self.shared.lock()
                && let Some(code) = s.parser.callbacks().statuses.get(seen)
            {
                return Some(*code);
            }
            thread::sleep(Duration::from_millis(25));
        }
        None
    }

    /// Waits for the step to end. `bytes_floor` is how much output the
    /// terminal had shown once the typed line was echoed: quiet counts only
    /// after the program printed more than that.
    fn wait(
        &mut self,
        start_row: u16,
        statuses_before: usize,
        bytes_floor: u64,
        wait: &Wait,
        deadline: Instant,
    ) -> TypedEnd {
        loop {
            {
                let Ok(s) = self.shared.lock() else {
                    return TypedEnd::Closed;
                };
                let statuses = &s.parser.callbacks().statuses;
                if statuses.len() > statuses_before {
                    return TypedEnd::Exited(statuses[statuses_before]);
                }
                if let Some(ready) = &wait.ready {
                    let (row, _) = s.parser.screen().cursor_position();
                    let text = s.parser.screen().contents_between(start_row, 0, row + 1, 0);
                    if ready.is_match(&text) {
                        return TypedEnd::Ready;
                    }
                } else if s.last_output.elapsed() >= SETTLE && s.bytes > bytes_floor {
                    return TypedEnd::Waiting;
                }
                if s.closed {
                    return TypedEnd::Closed;
                }
            }
            if Instant::now() >= deadline {
                return TypedEnd::TimedOut;
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// The screen's lines from `start_row`; without the cursor's line when
    /// that line is a fresh prompt that belongs to the next step.
    fn screen_since(&self, start_row: u16, drop_prompt: bool) -> String {
        let Ok(s) = self.shared.lock() else {
            return String::new();
        };
        let screen = s.parser.screen();
        let (row, _) = screen.cursor_position();
        // A program that cleared the screen moved the cursor above the
        // step's first row; one that filled it scrolled that row away.
        let scrolled = row >= ROWS - 1;
        let start_row = if row < start_row || scrolled {
            0
        } else {
            start_row
        };
        let end = if drop_prompt && row > start_row {
            row
        } else {
            row + 1
        };

        // Rows that the terminal wrapped are one line of text.
        let mut text = String::new();
        if scrolled {
            text.push_str("…\n");
        }
        for (n, line) in screen
            .rows(0, COLS)
            .enumerate()
            .skip(start_row as usize)
            .take((end - start_row) as usize)
        {
            text.push_str(&line);
            if !screen.row_wrapped(n as u16) {
                let trimmed = text.trim_end_matches(' ').len();
                text.truncate(trimmed);
                text.push('\n');
            }
        }
        text
    }

    /// Sends CTRL+C, as a student stopping a program would.
    pub fn interrupt(&mut self) {
        self.writer.write_all(b"\x03").ok();
        self.writer.flush().ok();
    }

    /// Ends the terminal and everything it runs.
    pub fn close(mut self) {
        if let Some(pid) = self.pid() {
            super::terminal::signal_session_all(pid, libc::SIGHUP);
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            thread::sleep(Duration::from_millis(20));
        }
        if let Some(pid) = self.pid() {
            super::terminal::signal_session_all(pid, libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, Terminal) {
        let dir = tempfile::tempdir().unwrap();
        let env = vec![("HOME".to_string(), dir.path().to_string_lossy().to_string())];
        let t = Terminal::open("t", dir.path(), dir.path(), &env).unwrap();
        (dir, t)
    }

    fn prompt() -> &'static str {
        "~$ "
    }

    #[test]
    fn typed_command_shows_prompt_command_and_output_without_escapes() {
        let (_dir, mut t) = open();
        let typed = t
            .type_line(
                "printf '\\033[31mred\\033[0m\\n'",
                &Wait::default(),
                Duration::from_secs(10),
            )
            .unwrap();
        assert_eq!(typed.end, TypedEnd::Exited(0));
        assert_eq!(
            typed.screen,
            format!("{}printf '\\033[31mred\\033[0m\\n'\nred\n", prompt())
        );
        assert!(!typed.screen.contains('\u{1b}'));
        let typed = t
            .type_line("false", &Wait::default(), Duration::from_secs(10))
            .unwrap();
        assert_eq!(typed.end, TypedEnd::Exited(1));
        t.close();
    }

    #[test]
    fn a_program_waiting_for_input_settles_and_takes_typed_lines() {
        let (_dir, mut t) = open();
        let typed = t
            .type_line(
                "bash --norc --noprofile -i",
                &Wait::default(),
                Duration::from_secs(10),
            )
            .unwrap();
        assert_eq!(typed.end, TypedEnd::Waiting);
        let typed = t
            .type_line("echo inner", &Wait::default(), Duration::from_secs(10))
            .unwrap();
        assert!(
            typed.screen.contains("echo inner\ninner"),
            "{}",
            typed.screen
        );
        let typed = t
            .type_line("exit 7", &Wait::default(), Duration::from_secs(10))
            .unwrap();
        assert_eq!(typed.end, TypedEnd::Exited(7));
        t.close();
    }

    #[test]
    fn long_output_and_clear_keep_later_steps_whole() {
        let (_dir, mut t) = open();
        let inner = t
            .type_line(
                "bash --norc --noprofile -i",
                &Wait::default(),
                Duration::from_secs(10),
            )
            .unwrap();
        assert_eq!(inner.end, TypedEnd::Waiting);
        for _ in 0..3 {
            let typed = t
                .type_line("seq 1 700", &Wait::default(), Duration::from_secs(20))
                .unwrap();
            assert!(
                typed.screen.contains("\n700\n"),
                "{}",
                &typed.screen[typed.screen.len().saturating_sub(80)..]
            );
        }
        let typed = t
            .type_line("clear", &Wait::default(), Duration::from_secs(10))
            .unwrap();
        assert_eq!(typed.end, TypedEnd::Waiting);
        let typed = t
            .type_line("echo marker", &Wait::default(), Duration::from_secs(10))
            .unwrap();
        assert!(
            typed.screen.contains("echo marker\nmarker\n"),
            "{}",
            typed.screen
        );
        t.close();
    }

    #[test]
    fn a_server_is_interrupted_once_ready() {
        let (_dir, mut t) = open();
        let wait = Wait {
            ready: Some(Regex::new("Running on").unwrap()),
            interrupt: true,
        };
        let script = "bash -c 'echo \" * Running on http://0.0.0.0:5000/\"; trap \"echo stopped; exit 130\" INT; while :; do sleep 0.1; done'";
        let typed = t.type_line(script, &wait, Duration::from_secs(10)).unwrap();
        assert_eq!(typed.end, TypedEnd::Interrupted(130), "{}", typed.screen);
        assert!(
            typed.screen.contains("Running on") && typed.screen.contains("^C"),
            "{}",
            typed.screen
        );
        t.close();
    }

    #[test]
    fn ready_pattern_never_seen_times_out() {
        let (_dir, mut t) = open();
        let wait = Wait {
            ready: Some(Regex::new("never").unwrap()),
            interrupt: false,
        };
        let typed = t
            .type_line("sleep 5", &wait, Duration::from_millis(500))
            .unwrap();
        assert_eq!(typed.end, TypedEnd::TimedOut);
        t.close();
    }
}
