//! The chapter's persistent shell.
//!
//! One `bash` runs for the whole chapter, so `cd` and variables carry over
//! from block to block as they do for a student. Each command is written to
//! a file and sourced by the shell with its output sent to a FIFO that a
//! reader thread drains into a bounded [`Capture`]; its stdin is
//! `/dev/null`. The exit status and the new working directory come back on
//! a separate pipe (fd 3), so no marker in the output can be confused with
//! what the command printed.
//!
//! The shell leads its own session. A command that times out is ended by
//! signalling every process of that session except the shell itself, which
//! is how the command's whole process tree is reached without losing the
//! shell's state.

use std::ffi::CString;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::capture::{Capture, Output};

/// How long a command's output may stay open after its status arrived,
/// which happens when it left a process running in the background.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How long processes get between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(3);

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Exited(i32),
    /// It ran past its timeout and was killed with its process tree.
    TimedOut,
    /// The shell itself ended (an `exit`, or it had to be killed).
    ShellEnded,
}

/// What one command did.
#[derive(Debug)]
pub struct Ran {
    pub output: Output,
    pub end: End,
    pub duration: Duration,
    /// The working directory before the command.
    pub cwd_before: PathBuf,
}

/// A persistent bash.
pub struct Shell {
    child: Child,
    stdin: ChildStdin,
    status: Receiver<String>,
    ctl: PathBuf,
    counter: usize,
    cwd: PathBuf,
    alive: bool,
}

impl Shell {
    /// Starts bash in `cwd`, with `env` added to the environment.
    /// `ctl` is a private directory for step files and FIFOs.
    pub fn start(cwd: &Path, ctl: &Path, env: &[(String, String)]) -> Result<Shell> {
        let (status_reader, status_writer) = std::io::pipe().context("creating the status pipe")?;
        let status_fd = status_writer.as_raw_fd();
        let log = File::create(ctl.join("shell.log")).context("creating the shell log")?;

        let mut command = std::process::Command::new("bash");
        command
            .args(["--noprofile", "--norc"])
            .current_dir(cwd)
            // `cd -` starts with nowhere to go back to, as in a new terminal.
            .env_remove("OLDPWD")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SAFETY: setsid and dup2 are async-signal-safe, and nothing else
        // runs between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if libc::setsid() < 0 || libc::dup2(status_fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .context("starting bash for the chapter's shell")?;
        drop(status_writer);

        let stdin = child.stdin.take().context("the shell has no stdin")?;
        let (tx, status) = channel();
        thread::spawn(move || {
            for line in BufReader::new(status_reader).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });

        Ok(Shell {
            child,
            stdin,
            status,
            ctl: ctl.to_path_buf(),
            counter: 0,
            cwd: cwd.to_path_buf(),
            alive: true,
        })
    }

    /// The shell's current directory.
    pub fn cwd(&self) -> &Path {
        &self.cwd
    }

    /// Whether the shell still runs.
    pub fn is_alive(&self) -> bool {
        self.alive
    }

    /// Whether the shell runs and nothing it started still runs, such as
    /// a server sent to the background.
    pub fn is_idle(&self) -> bool {
        self.alive && session_members(self.pid()).is_empty()
    }

    /// The shell's own state besides its directory: variables, functions,
    /// aliases, options, traps, umask, limits, disabled builtins, open
    /// descriptors, positional parameters, the last background job and the
    /// directory stack, with the variables bash changes
    /// by itself left out; and `OLDPWD`, which `cd -` uses. `None` when the
    /// shell cannot say.
    pub fn state(&mut self) -> Option<(String, String)> {
        let file = self.ctl.join("state");
        let command = format!(
            "{{ printf '%s\\n' \"$OLDPWD\"; {{ dirs -l -p | tail -n +2; printf 'args %s\\n' \"$#\" \"$@\"; printf 'last job %s\\n' \"$!\"; ls /proc/$$/fd | sort -n | tr '\\n' ' '; echo; ulimit -a; enable -n; declare -p; declare -f; alias; shopt -p; set +o; trap -p; umask; }} 2>&1 | grep -Ev '^declare -[^ ]* ({VOLATILE})(=|$)'; }} > {}",
            quote(&file.to_string_lossy())
        );
        let ran = self.run(&command, Duration::from_secs(10)).ok()?;
        if ran.end != End::Exited(0) {
            return None;
        }
        let text = std::fs::read_to_string(&file).ok()?;
        let _ = std::fs::remove_file(&file);
        let (oldpwd, rest) = text.split_once('\n')?;
        Some((oldpwd.to_string(), rest.to_string()))
    }

    /// The shell's process id, which is also its session id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs one command line in the shell.
    pub fn run(&mut self, command: &str, timeout: Duration) -> Result<Ran> {
        if !self.alive {
            bail!("the chapter's shell has ended, so the command cannot run");
        }
        self.counter += 1;
        let n = self.counter;
        let cwd_before = self.cwd.clone();

        let script = self.ctl.join(format!("step-{n}.sh"));
        std::fs::write(&script, format!("{command}\n")).context("writing the step file")?;
        let fifo = self.ctl.join(format!("out-{n}"));
        make_fifo(&fifo)?;

        let capture = Arc::new(Mutex::new(Capture::default()));
        let drained = spawn_reader(&fifo, Arc::clone(&capture));

        let line = format!(
            ". {} >{} 2>&1 </dev/null 3>&-; printf '%s\\t%s\\t%s\\n' {n} \"$?\" \"$PWD\" >&3\n",
            quote(&script.to_string_lossy()),
            quote(&fifo.to_string_lossy()),
        );

        let started = Instant::now();
        let mut end = match self
            .stdin
            .write_all(line.as_bytes())
            .and_then(|_| self.stdin.flush())
        {
            Ok(()) => self.wait_status(n, timeout),
            Err(_) => End::ShellEnded,
        };

        if end == End::TimedOut {
            tracing::debug!(step = n, "timed out; ending the command's processes");
            if !self.end_command(n) {
                self.kill();
            }
        }
        if end == End::ShellEnded {
            self.alive = false;
        }
        let duration = started.elapsed();

        if !self.alive {
            release_reader(&fifo);
            if end != End::TimedOut {
                end = End::ShellEnded;
            }
        }
        let _ = drained.recv_timeout(DRAIN_GRACE);
        let mut output = capture.lock().map(|c| c.finish()).unwrap_or_default();
        // bash names the sourced step file in its messages; a student's
        // shell says `bash:` there.
        output.replace(format!("{}: ", script.display()).as_bytes(), b"bash: ");
        let _ = std::fs::remove_file(&script);

        Ok(Ran {
            output,
            end,
            duration,
            cwd_before,
        })
    }

    fn wait_status(&mut self, n: usize, timeout: Duration) -> End {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.status.recv_timeout(left) {
                Ok(line) => {
                    let mut parts = line.splitn(3, '\t');
                    let (Some(id), Some(code), Some(cwd)) =
                        (parts.next(), parts.next(), parts.next())
                    else {
                        continue;
                    };
                    if id != n.to_string() {
                        continue;
                    }
                    self.cwd = PathBuf::from(cwd);
                    return End::Exited(code.parse().unwrap_or(-1));
                }
                Err(RecvTimeoutError::Timeout) => return End::TimedOut,
                Err(RecvTimeoutError::Disconnected) => return End::ShellEnded,
            }
        }
    }

    /// Ends the timed-out command's processes and waits for the shell to
    /// report. Returns false when the shell did not come back.
    fn end_command(&mut self, n: usize) -> bool {
        for signal in [libc::SIGTERM, libc::SIGKILL] {
            signal_session(self.pid(), signal);
            if matches!(self.wait_status(n, KILL_GRACE), End::Exited(_)) {
                return true;
            }
        }
        false
    }

    /// Kills the shell and everything it started.
    pub fn kill(&mut self) {
        signal_session(self.pid(), libc::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.alive = false;
    }

    /// Ends the shell: its processes get SIGTERM, then SIGKILL.
    pub fn close(&mut self) {
        if !self.alive {
            let _ = self.child.wait();
            return;
        }
        signal_session(self.pid(), libc::SIGTERM);
        let _ = self.stdin.write_all(b"exit 0\n");
        let deadline = Instant::now() + KILL_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                signal_session(self.pid(), libc::SIGKILL);
                self.alive = false;
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        if self.alive {
            self.kill();
        }
    }
}

fn make_fifo(path: &Path) -> Result<()> {
    let c = CString::new(path.as_os_str().as_bytes()).context("FIFO path contains NUL")?;
    // SAFETY: c is a valid NUL-terminated path.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("creating FIFO {}", path.display()));
    }
    Ok(())
}

/// Drains the FIFO into the capture; the returned channel fires at EOF.
/// Output after the step ended (from a background process) is read and
/// dropped, so that such a process never blocks on a full pipe.
fn spawn_reader(fifo: &Path, capture: Arc<Mutex<Capture>>) -> Receiver<()> {
    let (tx, rx) = channel();
    let fifo = fifo.to_path_buf();
    thread::spawn(move || {
        let Ok(mut file) = File::open(&fifo) else {
            let _ = tx.send(());
            return;
        };
        let _ = std::fs::remove_file(&fifo);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match file.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    tracing::trace!(bytes = %String::from_utf8_lossy(&buf[..n]), "output");
                    if let Ok(mut c) = capture.lock() {
                        c.push(&buf[..n]);
                    }
                }
            }
        }
        let _ = tx.send(());
    });
    rx
}

/// Unblocks a reader still waiting for the shell to open the FIFO.
fn release_reader(fifo: &Path) {
    let Ok(c) = CString::new(fifo.as_os_str().as_bytes()) else {
        return;
    };
    // SAFETY: c is a valid path; a non-blocking open of a FIFO for writing
    // fails at once when no reader waits, and is closed right away.
    unsafe {
        let fd = libc::open(c.as_ptr(), libc::O_WRONLY | libc::O_NONBLOCK);
        if fd >= 0 {
            libc::close(fd);
        }
    }
}

/// Signals every process of a session, its leader included.
pub fn signal_session_all(sid: u32, signal: i32) {
    signal_session(sid, signal);
    // SAFETY: plain kill(2) on the leader's pid.
    unsafe {
        libc::kill(sid as i32, signal);
    }
}

/// Signals every process of a session except its leader.
fn signal_session(sid: u32, signal: i32) {
    for pid in session_members(sid) {
        // SAFETY: plain kill(2) on a pid read from /proc.
        unsafe {
            libc::kill(pid as i32, signal);
        }
    }
}

// Limitation: processes are found through /proc, so on systems without it
// (macOS) a timed-out command is ended by killing the whole shell instead.
pub(super) fn session_members(sid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == sid {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name may contain spaces and parentheses; fields after
        // the last ')' are: state ppid pgrp session.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(3).and_then(|s| s.parse::<u32>().ok()) == Some(sid) {
            pids.push(pid);
        }
    }
    pids
}

/// Variables bash sets by itself, or that say where the shell is, which
/// the shell's state leaves out.
const VOLATILE: &str = "_|BASH_ARGC|BASH_ARGV|BASH_ARGV0|BASH_COMMAND|BASH_LINENO|BASH_SOURCE|BASH_SUBSHELL|BASH_EXECUTION_STRING|BASH_CMDS|BASHPID|LINENO|RANDOM|SRANDOM|SECONDS|EPOCHSECONDS|EPOCHREALTIME|PIPESTATUS|FUNCNAME|HISTCMD|COLUMNS|LINES|PWD|OLDPWD|SHLVL|GROUPS|PPID|DIRSTACK";

/// Quotes a string for bash.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell() -> (tempfile::TempDir, Shell) {
        let dir = tempfile::tempdir().unwrap();
        let ctl = dir.path().join("ctl");
        std::fs::create_dir(&ctl).unwrap();
        let shell = Shell::start(dir.path(), &ctl, &[]).unwrap();
        (dir, shell)
    }

    #[test]
    fn state_carries_over_and_streams_keep_their_order() {
        let (dir, mut sh) = shell();
        let t = Duration::from_secs(10);
        let ran = sh.run("mkdir sub && cd sub && X=42", t).unwrap();
        assert_eq!(ran.end, End::Exited(0));
        let ran = sh.run("echo out; echo err >&2; echo $X; pwd", t).unwrap();
        let want = format!("out\nerr\n42\n{}\n", dir.path().join("sub").display());
        assert_eq!(String::from_utf8_lossy(&ran.output.head), want);
        assert_eq!(ran.cwd_before, dir.path().join("sub"));
        assert_eq!(sh.run("exit 3", t).unwrap().end, End::ShellEnded);
        assert!(!sh.is_alive());
    }

    #[test]
    fn exit_status_and_stdin_are_the_commands_own() {
        let (_dir, mut sh) = shell();
        let t = Duration::from_secs(10);
        assert_eq!(sh.run("false", t).unwrap().end, End::Exited(1));
        let ran = sh.run("cat; echo after", t).unwrap();
        assert_eq!(ran.output.head, b"after\n");
        let ran = sh.run("if then", t).unwrap();
        assert_eq!(ran.end, End::Exited(2));
        assert_eq!(
            sh.run("echo still here", t).unwrap().output.head,
            b"still here\n"
        );
    }

    #[test]
    fn timeout_kills_the_process_tree_but_keeps_the_shell() {
        let (_dir, mut sh) = shell();
        let ran = sh
            .run(
                "cd /; echo started; sleep 30 | cat",
                Duration::from_millis(500),
            )
            .unwrap();
        assert_eq!(ran.end, End::TimedOut);
        // bash reports the killed job ("Terminated") as it would to a student.
        assert!(
            ran.output.head.starts_with(b"started\n"),
            "{:?}",
            ran.output
        );
        assert!(ran.duration < Duration::from_secs(10));
        assert!(sh.is_alive());
        assert_eq!(
            sh.run("pwd", Duration::from_secs(5)).unwrap().output.head,
            b"/\n"
        );
    }

    #[test]
    fn a_busy_builtin_loop_costs_the_shell() {
        let (_dir, mut sh) = shell();
        let ran = sh
            .run("while :; do :; done", Duration::from_millis(300))
            .unwrap();
        assert_eq!(ran.end, End::TimedOut);
        assert!(!sh.is_alive());
        assert!(sh.run("echo", Duration::from_secs(1)).is_err());
    }
}
