//! Helpers for the integration tests: a fixture book in a temp dir, built by
//! the real `mdbook` binary with this crate's preprocessor on its PATH.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A book made for one test case.
pub struct Book {
    pub dir: tempfile::TempDir,
}

/// What `mdbook build` did.
pub struct Build {
    pub success: bool,
    pub stderr: String,
    /// The chapter's HTML, if it was written.
    pub html: String,
}

impl Book {
    /// A book with one chapter, `chapter.md`, and `settings` added under
    /// `[preprocessor.workbook]`.
    pub fn new(settings: &str, chapter: &str) -> Book {
        let dir = tempfile::Builder::new()
            .prefix("workbook-test-")
            .tempdir()
            .expect("temp dir");
        let root = dir.path();
        std::fs::create_dir(root.join("src")).unwrap();
        std::fs::write(
            root.join("book.toml"),
            format!("[book]\ntitle = \"Test\"\n\n[preprocessor.workbook]\n{settings}\n"),
        )
        .unwrap();
        std::fs::write(
            root.join("src/SUMMARY.md"),
            "# Summary\n\n- [Chapter](chapter.md)\n",
        )
        .unwrap();
        std::fs::write(root.join("src/chapter.md"), chapter).unwrap();
        Book { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `mdbook build` with `env` set and stdin closed.
    pub fn build(&self, env: &[(&str, &str)]) -> Build {
        let output = mdbook(self.root(), env);
        let html =
            std::fs::read_to_string(self.root().join("book/chapter.html")).unwrap_or_default();
        Build {
            success: output.status.success(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            html,
        }
    }
}

/// Runs the real mdbook binary in `root` with our preprocessor first on PATH.
pub fn mdbook(root: &Path, env: &[(&str, &str)]) -> Output {
    let ours = Path::new(env!("CARGO_BIN_EXE_mdbook-workbook"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        ours.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new(mdbook_binary());
    command
        .arg("build")
        .current_dir(root)
        .env("PATH", path)
        .env_remove("CI")
        .env_remove("WORKBOOK_MODE")
        .env("WORKBOOK_CACHE", root.join(".cache"))
        .env_remove("WORKBOOK_DEDICATED_DAEMON")
        .env_remove("WORKBOOK_ON_FAILURE")
        .env("MDBOOK_LOG", "info")
        .stdin(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("running mdbook")
}

/// The mdbook 0.5 binary: from PATH or from cargo's bin directory.
pub fn mdbook_binary() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("mdbook"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .chain(std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo/bin/mdbook")));
    for candidate in candidates {
        if !candidate.is_file() {
            continue;
        }
        let version = Command::new(&candidate)
            .arg("--version")
            .output()
            .expect("mdbook --version");
        let version = String::from_utf8_lossy(&version.stdout);
        assert!(
            version.contains(" v0.5."),
            "{} is {version}; the tests need mdBook 0.5 (cargo install mdbook --version '^0.5')",
            candidate.display()
        );
        return candidate;
    }
    panic!("mdbook 0.5 is not installed; run `cargo install mdbook --version '^0.5'`, or .ci/run");
}

/// Fails the test unless a Docker daemon answers.
pub fn require_docker() {
    let ok = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "this test needs a Docker daemon; start one (bash .ci/offline-docker does, as root)"
    );
}

/// Runs docker and returns its stdout.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The visible text of the chapter's transcripts, one step per entry, with
/// tags removed and entities decoded.
pub fn steps(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in html.split("<div class=\"wb-step ").skip(1) {
        let end = part.find("</figure>").unwrap_or(part.len());
        out.push(text(&part[..end]));
    }
    out
}

/// HTML to plain text: tags dropped, a few entities decoded.
pub fn text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&#10;", "\n")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#123;", "{")
        .replace("&#125;", "}")
        .replace("&amp;", "&")
}
