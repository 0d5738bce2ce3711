//! The workspace's files: the blocks a chapter writes or edits, and the
//! offline repositories its `git clone` reads.

use std::path::Path;

use anyhow::{Context, Result};

use crate::config::Settings;

pub fn write_file(target: &Path, content: &str) -> Result<()> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(target, content).with_context(|| format!("writing {}", target.display()))
}

pub fn edit_file(target: &Path, replace: &str, lines: &[String]) -> Result<()> {
    let text = std::fs::read_to_string(target)
        .with_context(|| format!("reading {} to edit it", target.display()))?;
    let matches: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim() == replace.trim())
        .map(|(i, _)| i)
        .collect();
    let at = match matches.as_slice() {
        [one] => *one,
        [] => anyhow::bail!(
            "line `{replace}` is not in {}; the edit cannot be applied",
            target.display()
        ),
        _ => anyhow::bail!(
            "line `{replace}` is in {} {} times; make `replace` unique",
            target.display(),
            matches.len()
        ),
    };

    let mut out: Vec<&str> = text.lines().collect();
    out.splice(at..=at, lines.iter().map(String::as_str));
    let mut joined = out.join("\n");
    joined.push('\n');
    std::fs::write(target, joined).with_context(|| format!("writing {}", target.display()))
}

/// Makes a git repository of each configured directory and points git's
/// `insteadOf` at it, so the sheet's `git clone URL` really runs offline.
pub fn offline_repositories(
    settings: &Settings,
    book_root: &Path,
    repos: &Path,
) -> Result<Vec<(String, String)>> {
    let mut env = Vec::new();
    for (n, (url, source)) in settings.repos.iter().enumerate() {
        let source = book_root.join(source);
        let name = url
            .trim_end_matches('/')
            .trim_end_matches(".git")
            .rsplit('/')
            .next()
            .unwrap_or("repo");
        let target = repos.join(format!("{n}-{name}"));
        copy_dir(&source, &target).with_context(|| {
            format!(
                "copying {} for `{url}` (preprocessor.workbook.repos)",
                source.display()
            )
        })?;

        let git = |args: &[&str]| -> Result<()> {
            let status = std::process::Command::new("git")
                .args(args)
                .current_dir(&target)
                .env("GIT_AUTHOR_NAME", "mdbook-workbook")
                .env("GIT_AUTHOR_EMAIL", "workbook@localhost")
                .env("GIT_COMMITTER_NAME", "mdbook-workbook")
                .env("GIT_COMMITTER_EMAIL", "workbook@localhost")
                .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
                .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .context("running git; is it installed?")?;
            anyhow::ensure!(
                status.success(),
                "`git {}` failed in {}",
                args.join(" "),
                target.display()
            );
            Ok(())
        };
        git(&["init", "-q", "-b", "main"])?;
        git(&["add", "-A"])?;
        git(&[
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "-m",
            "exercises",
        ])?;

        env.push((
            format!("GIT_CONFIG_KEY_{n}"),
            format!("url.{}.insteadOf", target.display()),
        ));
        env.push((format!("GIT_CONFIG_VALUE_{n}"), url.clone()));
    }
    if !env.is_empty() {
        env.push((
            "GIT_CONFIG_COUNT".to_string(),
            settings.repos.len().to_string(),
        ));
    }
    Ok(env)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        if entry.file_name() == ".git" {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_replaces_exactly_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.sh");
        std::fs::write(&file, "a\nmakePyramid 5\n").unwrap();
        let lines = vec!["# old".to_string(), "makePyramid $1".to_string()];
        edit_file(&file, "makePyramid 5", &lines).unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "a\n# old\nmakePyramid $1\n"
        );

        let err = edit_file(&file, "makePyramid 5", &lines)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not in"), "{err}");
        std::fs::write(&file, "x\nx\n").unwrap();
        let err = edit_file(&file, "x", &lines).unwrap_err().to_string();
        assert!(err.contains("2 times"), "{err}");
    }
}
