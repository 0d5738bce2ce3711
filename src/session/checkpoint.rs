//! Checkpoints: the state of a session between two steps, saved so that a
//! later build can resume there instead of running the chapter from its
//! first step.
//!
//! A checkpoint is taken only where the state is files and two
//! directories: no terminal a later step uses is open, nothing runs in the
//! background, the session has no containers, volumes or networks, and the
//! shell's variables, functions and options are what they were before the
//! first step. It holds the workspace as a tar archive, the shell's
//! directory and `cd -`'s, the tags the session's builds had set, and the
//! ids of the images it pulled.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::Session;
use super::sees::slash;
use crate::docker;

/// A workspace larger than this is not saved.
const MAX_WORKSPACE_BYTES: u64 = 256 << 20;

/// What a checkpoint holds besides the workspace archive.
#[derive(Debug, Serialize, Deserialize)]
pub struct Meta {
    /// The shell's directory, relative to the workspace.
    pub cwd: String,
    /// The directory `cd -` goes back to, relative to the workspace, if
    /// the shell has one.
    pub oldpwd: Option<String>,
    /// Tags the session's builds had set, with their image ids.
    pub tags: Vec<(String, String)>,
    /// Images from outside the chapter that its steps used so far, with the
    /// id each had then, or none when the daemon did not have it.
    #[serde(default)]
    pub images: BTreeMap<String, Option<String>>,
    /// Copies of exercise files in the workspace: for each clone, where it
    /// lies, the exercise directory it came from, and the hash each file
    /// had in the exercise when the checkpoint was taken.
    pub copies: Vec<Copy>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Copy {
    pub clone: String,
    pub exercise: String,
    pub files: BTreeMap<String, String>,
}

impl Session {
    /// Whether the session's state is only files and a directory now.
    /// `objects` caches whether the session has Docker objects; `recheck`
    /// says that a command ran since it was last asked, since only a
    /// command can change that.
    /// A terminal that stays open counts only if a later step types into
    /// it, or if something still runs in it: a run that resumes here opens
    /// the terminals it needs afresh.
    pub(super) fn is_quiet(
        &mut self,
        later: &std::collections::BTreeSet<&str>,
        recheck: &mut bool,
        objects: &mut bool,
    ) -> bool {
        if !self.shell.is_idle() {
            tracing::debug!("no checkpoint: the shell has processes in the background");
            return false;
        }
        if !self.shell.cwd().starts_with(&self.home) {
            tracing::debug!("no checkpoint: the shell is outside the workspace");
            return false;
        }
        for (name, terminal) in self.terminals.iter_mut() {
            if !terminal.is_open() {
                continue;
            }
            let busy = terminal
                .pid()
                .is_none_or(|pid| !super::terminal::session_members(pid).is_empty());
            if busy || later.contains(name.as_str()) {
                tracing::debug!("no checkpoint: terminal `{name}` is in use");
                return false;
            }
        }
        if self.uses_docker && *recheck {
            *objects = self.has_docker_objects();
            *recheck = false;
        }
        if *objects {
            return false;
        }
        // Variables, functions, options: whatever the chapter's lines did to
        // the shell, a checkpoint holds only files and two directories.
        match (&self.baseline, self.shell.state()) {
            (Some(before), Some((_, now))) if *before == now => {}
            (Some(before), Some((_, now))) => {
                let changed = now
                    .lines()
                    .find(|l| !before.lines().any(|b| b == *l))
                    .or_else(|| before.lines().find(|b| !now.lines().any(|l| l == *b)))
                    .unwrap_or_default();
                tracing::debug!("no checkpoint: the shell's state changed: `{changed}`");
                return false;
            }
            _ => {
                tracing::debug!("no checkpoint: the shell cannot say what its state is");
                return false;
            }
        }
        // A file or link that names the workspace by its path would name
        // another directory after a restore.
        let session_dir = self.home.parent().unwrap_or(&self.home).to_path_buf();
        if mentions(&self.home, session_dir.to_string_lossy().as_bytes()) {
            tracing::debug!("no checkpoint: a file in the workspace names its path");
            return false;
        }
        true
    }

    /// Notes the shell's state before the first step, to tell later
    /// whether a step changed it.
    pub(super) fn take_baseline(&mut self) {
        self.baseline = self.shell.state().map(|(_, state)| state);
    }

    fn has_docker_objects(&self) -> bool {
        let filter = format!("label={}={}", docker::SESSION_LABEL, self.id);
        let t = Duration::from_secs(30);
        let lists: [&[&str]; 3] = [
            &["ps", "-aq"],
            &["volume", "ls", "-q"],
            &["network", "ls", "-q"],
        ];
        lists.iter().any(|list| {
            let mut args = list.to_vec();
            args.extend(["--filter", &filter]);
            // When the daemon cannot say, the state is unknown: no checkpoint.
            let answer = docker::query(&self.docker, &args, t);
            let some = answer.as_ref().map_or(true, |out| !out.trim().is_empty());
            if some {
                tracing::debug!("no checkpoint: `docker {}` says {answer:?}", args.join(" "));
            }
            some
        })
    }

    /// Saves the session's state as `<base>.tar` and `<base>.json`.
    pub(super) fn checkpoint(&mut self, base: &Path) -> Result<()> {
        if dir_size(&self.home) > MAX_WORKSPACE_BYTES {
            bail!(
                "the workspace is larger than {} MiB",
                MAX_WORKSPACE_BYTES >> 20
            );
        }
        if let Some(dir) = base.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        tar(&self.home, "-cf", &base.with_extension("tar")).context("archiving the workspace")?;

        let mut tags = Vec::new();
        if self.uses_docker {
            let t = Duration::from_secs(30);
            for (tag, _) in self.built_tags() {
                if tags.iter().any(|(t, _): &(String, String)| *t == tag) {
                    continue;
                }
                if let Ok(id) = docker::query(
                    &self.docker,
                    &["image", "inspect", "--format", "{{.Id}}", &tag],
                    t,
                ) {
                    tags.push((tag, id.trim().to_string()));
                }
            }
        }
        let inside = |p: &Path| p.strip_prefix(&self.home).ok().map(slash);
        let Some(cwd) = inside(self.shell.cwd()) else {
            bail!("the shell is outside the workspace");
        };
        let oldpwd = match self.shell.state() {
            Some((old, _)) if old.is_empty() => None,
            Some((old, _)) => match inside(Path::new(&old)) {
                Some(rel) => Some(rel),
                None => bail!("`cd -` would leave the workspace"),
            },
            None => bail!("the shell cannot say where `cd -` goes"),
        };
        let present = docker::image_ids(&self.used_images);
        let images = self
            .used_images
            .iter()
            .map(|r| (r.clone(), present.get(r).cloned()))
            .collect();
        let meta = Meta {
            cwd,
            oldpwd,
            images,
            tags,
            copies: self.copies(),
        };
        std::fs::write(base.with_extension("json"), serde_json::to_string(&meta)?)
            .context("writing the checkpoint")?;
        Ok(())
    }

    /// The clones in the workspace, with the hashes of their exercise
    /// files now.
    fn copies(&self) -> Vec<Copy> {
        let mut copies = Vec::new();
        let Ok(entries) = walk(&self.home, 3) else {
            return copies;
        };
        for dir in entries {
            if !dir.join(".git/config").is_file() {
                continue;
            }
            let Some((clone, exercise)) = self.clone_of(&dir) else {
                continue;
            };
            let mut files = BTreeMap::new();
            for file in files_under(&self.root.join(&exercise)) {
                let rel = file
                    .strip_prefix(self.root.join(&exercise))
                    .unwrap_or(&file);
                files.insert(slash(rel), crate::store::key::hash_path(&file));
            }
            copies.push(Copy {
                clone: clone
                    .strip_prefix(&self.home)
                    .map(slash)
                    .unwrap_or_default(),
                exercise,
                files,
            });
        }
        copies
    }

    /// Restores a checkpoint into the fresh workspace: its files, with the
    /// exercise files that changed since brought up to date where the
    /// chapter had not changed them; the shell's directory; the tags.
    pub(super) fn restore(&mut self, base: &Path) -> Result<()> {
        let meta: Meta = serde_json::from_str(
            &std::fs::read_to_string(base.with_extension("json"))
                .context("reading the checkpoint")?,
        )
        .context("reading the checkpoint")?;
        tar(&self.home, "-xf", &base.with_extension("tar")).context("unpacking the checkpoint")?;

        for copy in &meta.copies {
            self.reclone_if_changed(copy)?;
        }
        self.used_images.extend(meta.images.keys().cloned());
        // Images the chapter had pulled are pulled again if they are gone,
        // so that a later `docker run` finds what it found then.
        let t = Duration::from_secs(300);
        for (reference, id) in &meta.images {
            let Some(id) = id else { continue };
            let now = docker::image_ids(std::iter::once(reference));
            if now.get(reference) == Some(id) {
                continue;
            }
            docker::query(&self.docker, &["pull", "-q", reference], t)
                .with_context(|| format!("pulling {reference} again"))?;
            let now = docker::image_ids(std::iter::once(reference));
            if now.get(reference) != Some(id) {
                bail!("{reference} is another image now than when the checkpoint was taken");
            }
        }

        let cwd = self.home.join(&meta.cwd);
        let quote = |p: &Path| super::terminal::quote(&p.to_string_lossy());
        let line = match &meta.oldpwd {
            Some(old) => format!(
                "cd -- {} && cd -- {}",
                quote(&self.home.join(old)),
                quote(&cwd)
            ),
            None => format!("cd -- {} && unset OLDPWD", quote(&cwd)),
        };
        let ran = self.shell.run(&line, Duration::from_secs(10))?;
        if !matches!(ran.end, super::terminal::End::Exited(0)) {
            bail!("the shell could not change to the checkpoint's directory");
        }

        let t = Duration::from_secs(60);
        let mut built = String::new();
        for (tag, id) in &meta.tags {
            let before = docker::query(
                &self.docker,
                &["image", "inspect", "--format", "{{.Id}}", tag],
                t,
            )
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
            built.push_str(&format!("{tag}\t{before}\n"));
            docker::query(&self.docker, &["tag", id, tag], t)
                .with_context(|| format!("giving back the tag {tag}"))?;
        }
        if !built.is_empty() {
            use std::io::Write;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.ctl.join("built"))?
                .write_all(built.as_bytes())?;
        }
        Ok(())
    }
}

impl Session {
    /// Makes a clone in a restored workspace what a full run would have:
    /// when its exercise changed since the checkpoint, the clone is made
    /// afresh from the exercise as it is now, and the files the chapter had
    /// written, changed or removed in it are put back as they were.
    fn reclone_if_changed(&mut self, copy: &Copy) -> Result<()> {
        let exercise = self.root.join(&copy.exercise);
        let now: BTreeMap<String, String> = files_under(&exercise)
            .into_iter()
            .map(|f| {
                let rel = slash(f.strip_prefix(&exercise).unwrap_or(&f));
                (rel, crate::store::key::hash_path(&f))
            })
            .collect();
        if now == copy.files {
            return Ok(());
        }
        let clone = self.home.join(&copy.clone);
        let config = std::fs::read_to_string(clone.join(".git/config")).unwrap_or_default();
        let Some(url) = config.lines().find_map(|l| {
            let (k, v) = l.trim().split_once('=')?;
            (k.trim() == "url").then(|| v.trim().to_string())
        }) else {
            bail!("the clone {} has no remote", copy.clone);
        };

        // Only files can be carried over to a new clone: commits, staged
        // changes, branches, git settings, links and empty directories
        // cannot, and a run from the start shows them as they are.
        let before = git_state(&clone)?;
        if before.head != before.origin || before.refs.iter().any(|(_, id)| *id != before.head) {
            bail!("the chapter committed or moved a branch in {}", copy.clone);
        }
        if before.staged {
            bail!("the chapter staged changes in {}", copy.clone);
        }
        if has_links_or_empty_dirs(&clone) {
            bail!(
                "the chapter made links or empty directories in {}",
                copy.clone
            );
        }

        // What the chapter did to the clone, relative to the exercise then.
        let mut written: Vec<(String, Vec<u8>, std::fs::Permissions)> = Vec::new();
        for file in files_under(&clone) {
            let rel = slash(file.strip_prefix(&clone).unwrap_or(&file));
            if copy.files.get(&rel) != Some(&crate::store::key::hash_path(&file)) {
                let permissions = std::fs::metadata(&file)?.permissions();
                written.push((rel, std::fs::read(&file)?, permissions));
            }
        }
        let removed: Vec<&String> = copy
            .files
            .keys()
            .filter(|rel| !clone.join(rel).exists())
            .collect();

        std::fs::remove_dir_all(&clone).with_context(|| format!("removing {}", clone.display()))?;
        let quote = |s: &str| super::terminal::quote(s);
        let ran = self.shell.run(
            &format!(
                "git clone -q -- {} {}",
                quote(&url),
                quote(&clone.to_string_lossy())
            ),
            Duration::from_secs(60),
        )?;
        if ran.end != super::terminal::End::Exited(0) {
            bail!("cloning {url} again failed");
        }
        let after = git_state(&clone)?;
        let names = |state: &GitState| {
            state
                .refs
                .iter()
                .map(|(n, _)| n.clone())
                .collect::<Vec<_>>()
        };
        if names(&before) != names(&after) || before.config != after.config {
            bail!("the chapter changed branches or settings of {}", copy.clone);
        }
        for (rel, bytes, permissions) in written {
            let target = clone.join(&rel);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&target, bytes)?;
            std::fs::set_permissions(&target, permissions)?;
        }
        for rel in removed {
            let _ = std::fs::remove_file(clone.join(rel));
        }
        Ok(())
    }
}

/// Whether a file or link under `dir` contains `needle`, git's own logs
/// aside (they record where a clone came from, and nothing reads them
/// back). Reads at most 64 MiB; beyond that, the answer is yes.
fn mentions(dir: &Path, needle: &[u8]) -> bool {
    fn walk(dir: &Path, needle: &[u8], budget: &mut u64) -> bool {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        let in_git = dir.file_name().is_some_and(|n| n == ".git");
        for entry in entries.flatten() {
            if in_git && entry.file_name() == "logs" {
                continue;
            }
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_symlink() {
                if std::fs::read_link(&path).is_ok_and(|t| {
                    t.to_string_lossy()
                        .as_bytes()
                        .windows(needle.len())
                        .any(|w| w == needle)
                }) {
                    return true;
                }
            } else if kind.is_dir() {
                if walk(&path, needle, budget) {
                    return true;
                }
            } else if kind.is_file() {
                let Ok(bytes) = std::fs::read(&path) else {
                    continue;
                };
                *budget = budget.saturating_sub(bytes.len() as u64);
                if *budget == 0 || bytes.windows(needle.len()).any(|w| w == needle) {
                    return true;
                }
            }
        }
        false
    }
    !needle.is_empty() && walk(dir, needle, &mut (64 << 20))
}

/// Whether a checkpoint can be restored on the daemon as it is now: the
/// images its tags name still exist, and the images from outside the
/// chapter are there (or can be pulled) or absent as they were.
pub fn restorable(base: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(base.with_extension("json")) else {
        return false;
    };
    let Ok(meta) = serde_json::from_str::<Meta>(&text) else {
        return false;
    };
    let ids: Vec<String> = meta.tags.iter().map(|(_, id)| id.clone()).collect();
    if docker::image_ids(&ids).len() != ids.len() {
        return false;
    }
    let refs: Vec<String> = meta.images.keys().cloned().collect();
    let now = docker::image_ids(&refs);
    meta.images
        .iter()
        .all(|(reference, then)| then.is_some() || !now.contains_key(reference))
}

/// What git knows of a clone besides its files.
struct GitState {
    head: String,
    origin: String,
    /// Every branch, tag and stash, with the commit it names (remote
    /// branches aside).
    refs: Vec<(String, String)>,
    staged: bool,
    config: String,
}

fn git_state(clone: &Path) -> Result<GitState> {
    let git = |args: &[&str]| -> Result<(bool, String)> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(clone)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .context("running git")?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        ))
    };
    let (_, head) = git(&["rev-parse", "HEAD"])?;
    let (_, origin) = git(&["rev-parse", "refs/remotes/origin/HEAD"])?;
    let (_, refs) = git(&["for-each-ref", "--format=%(refname) %(objectname)"])?;
    let refs = refs
        .lines()
        .filter(|l| !l.starts_with("refs/remotes/"))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, id)| (n.to_string(), id.to_string()))
        .collect();
    let (clean, _) = git(&["diff", "--cached", "--quiet"])?;
    let config = std::fs::read_to_string(clone.join(".git/config")).unwrap_or_default();
    Ok(GitState {
        head,
        origin,
        refs,
        staged: !clean,
        config,
    })
}

/// Whether a directory holds links or empty directories, outside `.git`.
fn has_links_or_empty_dirs(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut empty = true;
    for entry in entries.flatten() {
        empty = false;
        if entry.file_name() == ".git" {
            continue;
        }
        match entry.file_type() {
            Ok(kind) if kind.is_symlink() => return true,
            Ok(kind) if kind.is_dir() && has_links_or_empty_dirs(&entry.path()) => return true,
            _ => {}
        }
    }
    empty
}

/// Runs `tar -C dir <mode> archive [.]`: `-cf` archives `dir`, `-xf`
/// unpacks into it.
fn tar(dir: &Path, mode: &str, archive: &Path) -> Result<()> {
    let mut command = std::process::Command::new("tar");
    command.arg("-C").arg(dir).arg(mode).arg(archive);
    if mode == "-cf" {
        command.arg(".");
    }
    let status = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .context("running tar")?;
    if !status.success() {
        bail!("tar {mode} {} failed", archive.display());
    }
    Ok(())
}

/// Directories under `root` down to `depth`, `root` included.
fn walk(root: &Path, depth: usize) -> std::io::Result<Vec<PathBuf>> {
    let mut out = vec![root.to_path_buf()];
    if depth == 0 {
        return Ok(out);
    }
    for entry in std::fs::read_dir(root)?.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) && entry.file_name() != ".git" {
            out.extend(walk(&entry.path(), depth - 1).unwrap_or_default());
        }
    }
    Ok(out)
}

/// Regular files under a directory, without `.git`.
fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return out;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if entry.file_name() == ".git" {
            continue;
        }
        if kind.is_dir() {
            out.extend(files_under(&entry.path()));
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    out
}

fn dir_size(root: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(root) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}
