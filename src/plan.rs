//! Planning a chapter's run against its store: which records are still
//! valid (their chain keys match), where a run can resume, and the new
//! store once steps have run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::Settings;
use crate::record::Record;
use crate::script::{Script, Step, StepKind};
use crate::session::Report;
use crate::store::key::{self, Files};
use crate::store::{ChapterStore, Entry};

/// What is still valid of a chapter's store.
#[derive(Debug)]
pub struct Plan {
    /// The key before the first step.
    pub seed: String,
    /// The keys of the leading steps whose records are valid.
    pub keys: Vec<String>,
}

impl Plan {
    /// How many leading steps have valid records.
    pub fn fresh(&self) -> usize {
        self.keys.len()
    }

    /// The key before step `index`.
    pub fn key_before(&self, index: usize) -> &str {
        match index {
            0 => &self.seed,
            n => &self.keys[n - 1],
        }
    }
}

/// Compares the chapter's steps with its store. `retry_failed` makes a
/// failed record stale, so that a failure is tried again.
pub fn plan(
    script: &Script,
    stored: Option<&ChapterStore>,
    settings: &Settings,
    files: &mut Files,
    retry_failed: bool,
) -> Plan {
    let seed = key::seed(settings);
    let mut keys = Vec::new();
    let Some(stored) = stored else {
        return Plan { seed, keys };
    };
    // The images' ids now, where the daemon can say; otherwise the stored
    // ids stand.
    let refs: Vec<String> = stored
        .steps
        .iter()
        .flat_map(|e| e.images.keys().cloned())
        .collect();
    let now = if refs.is_empty() {
        BTreeMap::new()
    } else {
        crate::docker::image_ids(&refs)
    };

    let mut previous = seed.clone();
    for (index, step) in script.steps.iter().enumerate() {
        let Some(entry) = stored.steps.get(index) else {
            break;
        };
        let images: BTreeMap<String, String> = entry
            .images
            .iter()
            .map(|(r, id)| (r.clone(), now.get(r).unwrap_or(id).clone()))
            .collect();
        let key = key::chain(&previous, step, &files.hashes(&entry.sees), &images);
        if key != entry.key || entry.record.step != index || (retry_failed && !entry.record.is_ok())
        {
            break;
        }
        keys.push(key.clone());
        previous = key;
    }
    Plan { seed, keys }
}

/// The new entries of a run that started at step `from`: chain keys from
/// the plan's key before `from`.
pub fn entries(
    plan: &Plan,
    script: &Script,
    from: usize,
    report: &Report,
    files: &mut Files,
    verified: &str,
) -> Vec<Entry> {
    let mut previous = plan.key_before(from).to_string();
    let mut out = Vec::new();
    for (n, record) in report.records.iter().enumerate() {
        let step = &script.steps[record.step];
        let sees = report.sees.get(n).cloned().unwrap_or_default();
        let images = report.images.get(n).cloned().unwrap_or_default();
        let key = key::chain(&previous, step, &files.hashes(&sees), &images);
        previous = key.clone();
        out.push(Entry {
            key,
            verified: verified.to_string(),
            sees,
            images,
            record: record.clone(),
        });
    }
    out
}

/// Whether a stored record belongs to this step as it is written now, so
/// that it can be shown beside it even when it is stale.
pub fn same_step(record: &Record, step: &Step) -> bool {
    match &step.kind {
        StepKind::Command(c) => !c.binds.is_empty() || record.command == c.run,
        StepKind::Probe(p) => record.command == format!("GET {}", p.url),
        StepKind::Write { path, .. } | StepKind::Edit { path, .. } => record.command == *path,
        StepKind::Skip { text, .. } | StepKind::Refuse { text, .. } => record.command == *text,
    }
}

/// Where a chapter's checkpoints are kept: in the user's cache, never in
/// the book. `WORKBOOK_CACHE` moves it.
pub fn checkpoint_dir(root: &Path, chapter: &str) -> Option<PathBuf> {
    let base = match std::env::var_os("WORKBOOK_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
            cache.join("mdbook-workbook")
        }
    };
    let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
    let book: String = Sha256::digest(root.to_string_lossy().as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let slug: String = chapter
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    // The hash keeps `a/b.md` and `a_b.md` apart.
    let unique: String = Sha256::digest(chapter.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(
        base.join("checkpoints")
            .join(book)
            .join(format!("{slug}-{unique}")),
    )
}

/// The latest checkpoint a run can start from: the state after one of the
/// valid leading steps. Returns the first step to run and the checkpoint.
pub fn resume_point(plan: &Plan, dir: Option<&Path>) -> (usize, Option<PathBuf>) {
    let Some(dir) = dir else {
        return (0, None);
    };
    for from in (1..=plan.fresh()).rev() {
        let base = dir.join(&plan.keys[from - 1]);
        if base.with_extension("tar").is_file() && crate::session::checkpoint::restorable(&base) {
            return (from, Some(base));
        }
    }
    (0, None)
}

/// Keeps the checkpoints a run saved under their steps' keys, and removes
/// those of keys no longer in the chapter's chain.
pub fn keep_checkpoints(
    dir: &Path,
    saved: &Path,
    report: &Report,
    entries: &[Entry],
    chain: &[String],
) {
    for &after in &report.checkpoints {
        let Some(entry) = entries.iter().find(|e| e.record.step == after) else {
            continue;
        };
        for ext in ["tar", "json"] {
            let from = saved.join(format!("after-{after}.{ext}"));
            let _ = std::fs::rename(&from, dir.join(format!("{}.{ext}", entry.key)));
        }
    }
    let Ok(files) = std::fs::read_dir(dir) else {
        return;
    };
    for file in files.flatten() {
        let path = file.path();
        let stem = path.file_stem().map(|s| s.to_string_lossy().to_string());
        if path.is_file() && !stem.is_some_and(|s| chain.contains(&s)) {
            let _ = std::fs::remove_file(&path);
        }
    }
}
