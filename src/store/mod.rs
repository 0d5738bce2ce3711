//! The store: each chapter's records frozen as a YAML file under the book's
//! root, outside `src`, so that the book builds without Docker and a re-run
//! only does what an edit made stale.
//!
//! Writes go to a temporary file that is renamed into place, under a lock
//! that one build holds while it reads, runs and writes a chapter.

pub mod key;
pub mod normalize;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::docker::Engine;
use crate::record::Record;

/// The store format this version reads and writes.
pub const FORMAT: u32 = 1;

/// One chapter's frozen records.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ChapterStore {
    /// The store format; a newer one is refused, never guessed at.
    pub format: u32,
    /// The chapter's path inside the book's `src`.
    pub chapter: String,
    /// The tool and version that wrote the file.
    pub tool: String,
    /// The Docker Engine the newest records ran against.
    #[serde(default)]
    pub engine: Engine,
    /// Stand-in images seen during the runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stand_ins: Vec<String>,
    /// Enums are written as one-key maps (`outcome: {exited: 0}`) rather
    /// than YAML tags, so that any YAML tool reads the file.
    #[serde(with = "serde_yaml_ng::with::singleton_map_recursive")]
    pub steps: Vec<Entry>,
}

/// One step's record with what makes it valid.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Entry {
    /// The chain key the record was made under.
    pub key: String,
    /// When the step ran, as `YYYY-MM-DD HH:MM UTC`.
    pub verified: String,
    /// Exercise files and directories the step could see, relative to the
    /// book's root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sees: Vec<String>,
    /// Images from outside the chapter that the step used, with their ids.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, String>,
    pub record: Record,
}

/// The store of one book.
pub struct Store {
    dir: PathBuf,
}

/// Held while a build works on the store; released when dropped.
pub struct Lock {
    _file: File,
}

impl Store {
    /// The store of the book at `root`, in the directory `dir` relative to
    /// it. It must not lie inside `src`, where `mdbook serve` would see every
    /// write as an edit.
    pub fn new(root: &Path, src: &Path, dir: &str) -> Result<Store> {
        let dir = root.join(dir);
        let inside = |outer: &Path| resolved(&dir).starts_with(resolved(outer));
        if resolved(src).starts_with(resolved(&dir)) {
            bail!(
                "book.toml [preprocessor.workbook] store = \"{}\" holds the book's src; choose a directory of its own beside src, such as \"workbook\"",
                dir.display()
            );
        }
        if inside(src) {
            bail!(
                "book.toml [preprocessor.workbook] store = \"{}\" lies inside the book's src, where every write would start a new build under `mdbook serve`; choose a directory beside src, such as \"workbook\"",
                dir.display()
            );
        }
        Ok(Store { dir })
    }

    /// The file that holds a chapter's records: the chapter's path inside
    /// `src`, with `.yml` for `.md` (and `.yml` added to other names, so
    /// that `a.md` and `a.markdown` keep apart).
    pub fn path(&self, chapter: &str) -> PathBuf {
        let chapter = Path::new(chapter);
        match chapter.extension() {
            Some(ext) if ext == "md" => self.dir.join(chapter.with_extension("yml")),
            _ => self.dir.join(format!("{}.yml", chapter.display())),
        }
    }

    /// Every store file with the chapter it belongs to, as its `chapter:`
    /// line says.
    pub fn files(&self) -> Vec<(PathBuf, String)> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                // Links are not followed: what they point at is not the store's.
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() {
                    walk(&path, out);
                } else if kind.is_file() && path.extension().is_some_and(|e| e == "yml") {
                    out.push(path);
                }
            }
        }
        let mut files = Vec::new();
        walk(&self.dir, &mut files);
        files
            .into_iter()
            .filter_map(|file| {
                use std::io::BufRead;
                let reader = std::io::BufReader::new(File::open(&file).ok()?);
                let head: Vec<String> = reader.lines().take(20).map_while(Result::ok).collect();
                // Only files this tool wrote.
                if head.first().map(String::as_str) != HEADER.lines().next()
                    || !head.iter().any(|l| l.starts_with("format: "))
                {
                    return None;
                }
                let chapter = head
                    .iter()
                    .find_map(|l| l.strip_prefix("chapter: ").map(str::to_string))?
                    .trim()
                    .trim_matches(['\'', '"'])
                    .to_string();
                Some((file, chapter))
            })
            .collect()
    }

    /// Takes the store's lock, waiting for another build that holds it.
    pub fn lock(&self) -> Result<Lock> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating the store {}", self.dir.display()))?;
        // The lock file is the store's, but not a record: keep it out of
        // version control.
        let ignore = self.dir.join(".gitignore");
        if !ignore.exists() {
            let _ = std::fs::write(&ignore, ".lock\n");
        }
        let path = self.dir.join(".lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            tracing::info!("waiting for another build that holds {}", path.display());
            // SAFETY: as above.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
                bail!(
                    "locking {}: {}",
                    path.display(),
                    std::io::Error::last_os_error()
                );
            }
        }
        Ok(Lock { _file: file })
    }

    /// Reads a chapter's records; `None` when none were stored yet. A file
    /// that cannot be read is an error that names it and the line.
    pub fn load(&self, chapter: &str) -> Result<Option<ChapterStore>> {
        let path = self.path(chapter);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => bail!("{}: cannot be read: {e}", path.display()),
        };
        parse(&text)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{}:{e}", path.display()))
    }

    /// Writes a chapter's records atomically: a temporary file beside the
    /// target, renamed over it.
    pub fn save(&self, store: &ChapterStore) -> Result<PathBuf> {
        let path = self.path(&store.chapter);
        let dir = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let text = serde_yaml_ng::to_string(store).context("writing the records as YAML")?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".workbook-")
            .tempfile_in(dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        tmp.write_all(HEADER.as_bytes())?;
        tmp.write_all(text.as_bytes())?;
        tmp.as_file().sync_all()?;
        // A file for the repository, readable like the chapter beside it.
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
        tmp.persist(&path)
            .with_context(|| format!("replacing {}", path.display()))?;
        Ok(path)
    }
}

/// A path with `.` and `..` resolved without asking the file system.
pub(crate) fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// A path made absolute, with `..` resolved and the symlinks of its
/// longest existing ancestor followed.
fn resolved(path: &Path) -> PathBuf {
    let clean = lexical(&std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()));
    let mut existing = clean.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        let Some(name) = existing.file_name().map(|n| n.to_os_string()) else {
            break;
        };
        rest.push(name);
        existing.pop();
    }
    let mut out = std::fs::canonicalize(&existing).unwrap_or(existing);
    out.extend(rest.iter().rev());
    out
}

const HEADER: &str = "# Records of mdbook-workbook: what each step of the chapter really did.\n# Written by `mdbook build` against a Docker daemon, or by `mdbook-workbook accept`.\n# Review changes like code; do not edit by hand.\n";

/// Parses a store file. Errors carry `line:column: what`, so that with the
/// path in front they point at the place.
fn parse(text: &str) -> Result<ChapterStore, String> {
    #[derive(Deserialize)]
    struct Head {
        format: Option<u32>,
    }
    let at = |e: &serde_yaml_ng::Error| match e.location() {
        Some(l) => format!("{}:{}", l.line(), l.column()),
        None => "1".to_string(),
    };
    let hint = "fix the file, or delete it to record the chapter afresh (a build against a daemon, or `mdbook-workbook accept`)";
    let head: Head = serde_yaml_ng::from_str(text).map_err(|e| {
        format!(
            "{}: not a readable store file ({}); {hint}",
            at(&e),
            first_line(&e)
        )
    })?;
    match head.format {
        Some(FORMAT) => {}
        Some(n) if n > FORMAT => {
            return Err(format!(
                "1: written by a newer mdbook-workbook (store format {n}; this one reads format {FORMAT}); install the newer version"
            ));
        }
        Some(n) => return Err(format!("1: unknown store format {n}; {hint}")),
        None => return Err(format!("1: no `format:` line, so not a store file; {hint}")),
    }
    serde_yaml_ng::from_str(text).map_err(|e| format!("{}: {}; {hint}", at(&e), first_line(&e)))
}

fn first_line(e: &serde_yaml_ng::Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

/// The current time as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}
