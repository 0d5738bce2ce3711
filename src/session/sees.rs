//! What a step can see, and what it used: the exercise files behind the
//! directory it runs in and the paths it names, and the images from outside
//! the chapter. Both go into the step's chain key (see `store::key`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Session;
use crate::docker;
use crate::record::Record;
use crate::script::{Step, StepKind};

impl Session {
    /// The exercise paths (relative to the book's root) a step can see: the
    /// directory it runs in and the paths its command names, where they lie
    /// inside a clone of a repository the book serves.
    pub(super) fn sees(&self, step: &Step, cwd: &Path) -> Vec<String> {
        let mut paths: Vec<PathBuf> = Vec::new();
        match &step.kind {
            StepKind::Command(c) if c.terminal.is_none() => {
                paths.push(cwd.to_path_buf());
                paths.extend(path_words(&c.run, cwd, &self.home));
            }
            StepKind::Edit { path, .. } => paths.push(cwd.join(path)),
            _ => {}
        }
        let mut seen: Vec<String> = paths.iter().filter_map(|p| self.exercise_of(p)).collect();
        seen.sort();
        seen.dedup();
        // A directory already covers what lies inside it.
        let all = seen.clone();
        seen.retain(|p| {
            !all.iter()
                .any(|q| q != p && Path::new(p).starts_with(Path::new(q)))
        });
        seen
    }

    /// The exercise path a workspace path is a copy of, relative to the
    /// book's root, if it lies in a clone of a repository the book serves.
    fn exercise_of(&self, path: &Path) -> Option<String> {
        let path = crate::store::lexical(path);
        let (clone, exercise) = self.clone_of(&path)?;
        let rel = path.strip_prefix(&clone).ok()?;
        let target = Path::new(&exercise).join(rel);
        self.root.join(&target).exists().then(|| slash(&target))
    }

    /// The clone that holds a path, and the exercise directory (relative to
    /// the book's root) it was cloned from.
    pub(super) fn clone_of(&self, path: &Path) -> Option<(PathBuf, String)> {
        let mut dir = path;
        loop {
            if !dir.starts_with(&self.home) {
                return None;
            }
            if let Ok(config) = std::fs::read_to_string(dir.join(".git/config")) {
                let url = config.lines().find_map(|l| {
                    let (k, v) = l.trim().split_once('=')?;
                    (k.trim() == "url").then(|| v.trim().to_string())
                })?;
                let exercise = self.repos.get(&url)?;
                return Some((dir.to_path_buf(), exercise.clone()));
            }
            dir = dir.parent()?;
        }
    }

    /// The images from outside the chapter a step used, with their ids.
    pub(super) fn images_used(&self, step: &Step, record: &Record) -> BTreeMap<String, String> {
        let StepKind::Command(c) = &step.kind else {
            return BTreeMap::new();
        };
        if !self.uses_docker || !c.run.contains("docker") {
            return BTreeMap::new();
        }
        let text = String::from_utf8_lossy(&record.output.head);
        let build = crate::builds::parse(&text);
        let built = self.built_tags();
        let refs: Vec<String> = docker::image_refs(&c.run, build.as_ref())
            .into_iter()
            .filter(|r| !built.iter().any(|(t, _)| same_ref(t, r)))
            .collect();
        docker::image_ids(&refs)
    }

    /// The tags the session's builds set, with the id each named before.
    pub(super) fn built_tags(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(self.ctl.join("built"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (tag, before) = l.split_once('\t')?;
                Some((tag.to_string(), before.to_string()))
            })
            .collect()
    }
}

/// The paths a command line names that exist, resolved against `cwd`:
/// words split at blanks and shell punctuation, quotes removed, `~`
/// expanded, and for a glob, the directory it searches.
fn path_words(command: &str, cwd: &Path, home: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for word in command.split(|c: char| c.is_whitespace() || ";|&<>()`".contains(c)) {
        let word: String = word
            .chars()
            .filter(|c| !matches!(c, '"' | '\'' | '\\'))
            .collect();
        let home_text = home.to_string_lossy();
        let word = word
            .replace("${HOME}", &home_text)
            .replace("$HOME", &home_text);
        // `-v host:container`, `--file=x`, `VAR=value`: the part before `:`
        // and the part after `=` may be paths.
        let word = word.rsplit('=').next().unwrap_or(&word);
        let word = word.split(':').next().unwrap_or(word);
        if word.is_empty() || word.starts_with('-') || word.contains('$') {
            continue;
        }
        let word = match word.strip_prefix('~') {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                format!("{}{rest}", home.display())
            }
            _ => word.to_string(),
        };
        let word = match word.find(['*', '?', '[', '{']) {
            Some(at) => match word[..at].rfind('/') {
                Some(slash) => word[..slash].to_string(),
                None => ".".to_string(),
            },
            None => word,
        };
        let candidate = cwd.join(&word);
        if candidate.exists() {
            out.push(candidate);
        }
    }
    out
}

/// Whether two image references name the same image (`x` is `x:latest`).
fn same_ref(a: &str, b: &str) -> bool {
    let full = |r: &str| {
        if r.rsplit('/').next().unwrap_or(r).contains(':') || r.contains('@') {
            r.to_string()
        } else {
            format!("{r}:latest")
        }
    };
    full(a) == full(b)
}

/// A path with forward slashes, as the store writes paths.
pub(super) fn slash(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}
