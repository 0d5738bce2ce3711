//! Chain keys: a step's record stays valid while the key it was made under
//! is still the key the step would get now. A key hashes the previous key,
//! the step as written (with its directives), the exercise files the step
//! could see, and the ids of the images from outside the chapter it used.
//! So an edit of step k makes steps k..n stale and nothing before them,
//! like a changed line of a Dockerfile and the layers after it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::Settings;
use crate::script::Step;

/// The key before a chapter's first step: what every step of the chapter
/// depends on besides its own text.
pub fn seed(settings: &Settings) -> String {
    let mut h = Sha256::new();
    h.update(b"mdbook-workbook chain v1\0");
    h.update(settings.timeout.to_bits().to_le_bytes());
    for (url, dir) in &settings.repos {
        h.update(url.as_bytes());
        h.update(b"\0");
        h.update(dir.as_bytes());
        h.update(b"\0");
    }
    hex(&h.finalize())
}

/// The key of a step after `previous`.
///
/// `seen` pairs each exercise path the step could see with the hash of its
/// content; `images` maps image references to ids.
pub fn chain(
    previous: &str,
    step: &Step,
    seen: &[(String, String)],
    images: &BTreeMap<String, String>,
) -> String {
    let mut h = Sha256::new();
    h.update(previous.as_bytes());
    h.update(b"\0");
    // The step's kind holds its text and every directive that changes how
    // it runs or what it checks, and nothing of where it stands in the
    // file: moving a block down a line keeps its records. A new version
    // that adds a field makes the records stale, which is what it should.
    h.update(format!("{:?}", step.kind).as_bytes());
    for (path, hash) in seen {
        h.update(b"\0see\0");
        h.update(path.as_bytes());
        h.update(b"\0");
        h.update(hash.as_bytes());
    }
    for (reference, id) in images {
        h.update(b"\0image\0");
        h.update(reference.as_bytes());
        h.update(b"\0");
        h.update(id.as_bytes());
    }
    hex(&h.finalize())
}

/// Hashes of exercise paths, each computed once per build.
#[derive(Default)]
pub struct Files {
    root: PathBuf,
    hashes: HashMap<String, String>,
}

impl Files {
    /// Hashes paths relative to the book's root.
    pub fn new(root: &Path) -> Files {
        Files {
            root: root.to_path_buf(),
            hashes: HashMap::new(),
        }
    }

    /// Each path with the hash of its content now.
    pub fn hashes(&mut self, paths: &[String]) -> Vec<(String, String)> {
        paths
            .iter()
            .map(|p| {
                let root = &self.root;
                let hash = self
                    .hashes
                    .entry(p.clone())
                    .or_insert_with(|| hash_path(&root.join(p)))
                    .clone();
                (p.clone(), hash)
            })
            .collect()
    }
}

/// The hash of a file's content, or of a directory's names and contents
/// (without `.git`); `missing` for a path that does not exist.
pub fn hash_path(path: &Path) -> String {
    let mut h = Sha256::new();
    if !feed(&mut h, path, Path::new("")) {
        return "missing".to_string();
    }
    hex(&h.finalize())
}

fn feed(h: &mut Sha256, path: &Path, rel: &Path) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if meta.is_dir() {
        let Ok(entries) = std::fs::read_dir(path) else {
            return false;
        };
        let mut names: Vec<_> = entries
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n != ".git")
            .collect();
        names.sort();
        h.update(b"dir\0");
        for name in names {
            feed(h, &path.join(&name), &rel.join(&name));
        }
    } else if meta.file_type().is_symlink() {
        h.update(b"link\0");
        h.update(rel.to_string_lossy().as_bytes());
        if let Ok(target) = std::fs::read_link(path) {
            h.update(target.to_string_lossy().as_bytes());
        }
    } else {
        use std::os::unix::fs::PermissionsExt;
        h.update(b"file\0");
        h.update(rel.to_string_lossy().as_bytes());
        h.update(b"\0");
        // The executable bit matters to a script that is run.
        h.update([u8::from(meta.permissions().mode() & 0o111 != 0)]);
        h.update(std::fs::read(path).unwrap_or_default());
    }
    h.update(b"\0");
    true
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_hash_follows_content_and_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.py"), "print(1)\n").unwrap();
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join(".git/HEAD"), "x").unwrap();
        let first = hash_path(dir.path());
        std::fs::write(dir.path().join(".git/HEAD"), "y").unwrap();
        assert_eq!(hash_path(dir.path()), first, ".git is not content");
        std::fs::write(dir.path().join("a.py"), "print(2)\n").unwrap();
        let second = hash_path(dir.path());
        assert_ne!(second, first);
        std::fs::rename(dir.path().join("a.py"), dir.path().join("b.py")).unwrap();
        assert_ne!(hash_path(dir.path()), second);
        assert_eq!(hash_path(&dir.path().join("nothing")), "missing");
    }
}
