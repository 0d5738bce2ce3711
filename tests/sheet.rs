//! The sheet itself: `book/` is copied with its exercises and theme, then
//! built by the real mdbook against the real daemon, and the page is read
//! for what each section must show.
//!
//! The sheet removes all containers and images, so this test only runs when
//! the daemon is declared to belong to the tests.

mod common;

use std::path::Path;

use common::{require_docker, steps};

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "book" || from.file_name().is_some_and(|n| n != "book") {
                copy(&entry.path(), &target);
            }
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The step whose command line is exactly `command`, as text.
fn step<'a>(steps: &'a [String], command: &str) -> Vec<&'a String> {
    // The chapter's shell and the terminals both show `$` before a command.
    let needles = [format!("$ {command}\n")];
    let found: Vec<&String> = steps
        .iter()
        .filter(|s| needles.iter().any(|n| s.contains(n)))
        .collect();
    assert!(!found.is_empty(), "no transcript of `{command}`");
    found
}

fn rows_of_stars(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.trim().is_empty() && l.trim().chars().all(|c| c == '*' || c == ' '))
        .count()
}

/// Both tests remove all containers and images, so they take turns.
static DAEMON: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn require_dedicated() {
    assert_eq!(
        std::env::var("WORKBOOK_DEDICATED_DAEMON").as_deref(),
        Ok("1"),
        "this test runs the sheet's `docker rmi $(docker images -aq)`; run it only against a daemon that belongs to the tests, with WORKBOOK_DEDICATED_DAEMON=1"
    );
    require_docker();
}

#[test]
fn findings_on_the_original_sheet_name_what_a_student_hits() {
    require_dedicated();
    let _turn = DAEMON.lock().unwrap_or_else(|e| e.into_inner());
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mdbook-workbook"))
        .arg("findings")
        .arg(repo.join("tests/fixtures/06.2-docker-advanced.original.md"))
        .arg("--book")
        .arg(repo.join("book"))
        .arg("--dedicated")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");

    let at = |line: usize, text: &str| {
        let head = format!("original.md:{line}: `");
        let start = report
            .find(&head)
            .unwrap_or_else(|| panic!("no finding at line {line}:\n{report}"));
        let rest = &report[start + head.len()..];
        let end = rest.find("\ntests/").unwrap_or(rest.len());
        assert!(
            rest[..end].contains(text),
            "line {line} does not say `{text}`:\n{}",
            &rest[..end]
        );
    };
    at(101, "No such container: d239");
    at(251, "invalid spec: :/mounted");
    at(254, "cannot touch 'mounted/testfile'");
    at(323, "CTRL+C did not end the program");
    at(337, "CTRL+C did not end the program");
    for fine in [
        ":40: `docker pull",
        ":140: `git clone",
        ":170: `docker build",
        ":401: `docker build",
    ] {
        assert!(!report.contains(fine), "`{fine}` is reported:\n{report}");
    }
}

#[test]
fn sheet_renders_real_transcripts() {
    require_dedicated();
    let _turn = DAEMON.lock().unwrap_or_else(|e| e.into_inner());

    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    for part in ["book", "exercises", "theme"] {
        copy(&repo.join(part), &dir.path().join(part));
    }
    // The store was recorded on a daemon without containers or images (the
    // sheet lists them), as the last sheet run leaves it; earlier tests may
    // have left some.
    empty_the_daemon();
    // Every step runs and is compared with the committed store: the build
    // fails on drift, so this also proves the store still tells the truth.
    let out = common::mdbook(
        &dir.path().join("book"),
        &[
            ("WORKBOOK_DEDICATED_DAEMON", "1"),
            ("CI", "true"),
            ("WORKBOOK_MODE", "check"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("ran 71 steps"), "{stderr}");
    let html =
        std::fs::read_to_string(dir.path().join("book/book/06.2-docker-advanced.html")).unwrap();
    let steps = steps(&html);

    // Nothing of the VuePress source or the directives shows.
    assert!(html.contains("06.2 Arbeitsauftrag - Docker Advanced</a></h1>"));
    for raw in [":::", "workbook:", "$frontmatter", "sidebar: auto", "<img"] {
        assert!(!html.contains(raw), "`{raw}` reached the page");
    }
    let replaced = html.matches("class=\"wb-caption\"").count()
        + html.matches("class=\"wb-missing-shot\"").count();
    assert_eq!(replaced, 19, "every screenshot is replaced");

    // §01: pull through the mirror, list, run.
    let pull = step(&steps, "docker pull ubuntu:14.04")[0];
    assert!(
        pull.contains("14.04: Pulling from library/ubuntu")
            || pull.contains("Image is up to date for ubuntu:14.04"),
        "{pull}"
    );
    let images = step(&steps, "docker images")[0];
    assert!(
        images.contains("REPOSITORY")
            && images
                .lines()
                .any(|l| l.starts_with("ubuntu ") && l.contains("14.04")),
        "{images}"
    );
    assert!(
        step(&steps, "docker run ubuntu:14.04 echo 'hello world'")[0].contains("\nhello world\n")
    );
    assert!(
        step(
            &steps,
            "docker container ls -a # Lists running and stopped docker containers"
        )[0]
        .contains("\"echo 'hello world'\"")
    );

    // §04: the clone really runs, offline.
    let clone = step(
        &steps,
        "git clone https://github.com/leonardo1710/cloud-docker-exercises.git",
    )[0];
    assert!(
        clone.contains("Cloning into 'cloud-docker-exercises'..."),
        "{clone}"
    );
    assert!(steps.iter().any(|s| {
        s.contains("Datei geschrieben: ~/cloud-docker-exercises/01-dockerfile-intro/Dockerfile")
    }));

    // §05: build, run, edit, rebuild, ENTRYPOINT.
    let build = step(&steps, "docker build . --tag pyramid")[0];
    assert!(
        build.contains("Successfully tagged pyramid:latest")
            || build.contains("naming to docker.io/library/pyramid"),
        "{build}"
    );
    assert_eq!(rows_of_stars(step(&steps, "docker run pyramid")[0]), 5);
    assert!(steps.iter().any(|s| s.contains(
        "Änderung übernommen in ~/cloud-docker-exercises/01-dockerfile-intro/pyramid.sh"
    )));
    assert_eq!(
        rows_of_stars(step(&steps, "docker run pyramid bash /pyramid.sh 8")[0]),
        8
    );
    assert_eq!(rows_of_stars(step(&steps, "docker run pyramid 3")[0]), 3);

    // §09: three builds of the same Dockerfile; the later two from the cache.
    let layers = step(&steps, "docker build . --tag python-webapp");
    assert_eq!(layers.len(), 8, "builds of python-webapp");
    let cached = |s: &str| s.contains("Using cache") || s.contains("CACHED");
    assert!(
        layers[1].contains("pip install") && !cached(layers[1]),
        "the first 03-layers build ran pip: {}",
        layers[1]
    );
    assert!(
        cached(layers[2]) && cached(layers[3]),
        "the repeated builds used no cache"
    );
    assert!(
        layers[6].contains("requests"),
        "the requirements change did not reach pip: {}",
        layers[6]
    );

    // §02, §03: the interactive container, the second window, the bound id.
    let run_it = step(&steps, "docker run -it ubuntu:14.04 /bin/bash")[0];
    assert!(
        run_it.contains("Terminal „fenster1“") && run_it.contains("\nroot@"),
        "{run_it}"
    );
    assert!(
        step(&steps, "docker container ls")[0].contains("Up "),
        "the second window did not list the running container"
    );
    let ls = steps
        .iter()
        .find(|s| s.contains(":/# ls\n"))
        .expect("no `ls` inside the container");
    assert!(ls.contains("TEST"), "{ls}");
    assert!(
        !html.contains("docker start d239\n"),
        "the author's id ran instead of the real one"
    );
    assert!(
        steps
            .iter()
            .any(|s| s.contains("$ docker start ") && s.contains("Exit-Status 0"))
    );

    // §06: the mount, with the fix, and the file on the host side.
    let touch = steps
        .iter()
        .find(|s| s.contains("touch mounted/testfile"))
        .expect("no touch step");
    assert!(!touch.contains("fehlgeschlagen"), "{touch}");

    // §08, §09: servers, CTRL+C, and the answers in place of the browser.
    let flask = step(&steps, "docker run -it python-webapp")[0];
    assert!(
        flask.contains("Running on http://0.0.0.0:5000/") && flask.contains("mit CTRL+C beendet"),
        "{flask}"
    );
    let hello = steps
        .iter()
        .find(|s| s.contains("GET http://localhost:8082/"))
        .expect("no probe of 8082");
    assert!(
        hello.contains("200 OK") && hello.contains("<h1>Hello, World!</h1>"),
        "{hello}"
    );
    let books = steps
        .iter()
        .find(|s| s.contains("GET http://localhost:8084/"))
        .expect("no probe of 8084");
    assert!(
        books.contains("application/json") && books.contains("\"title\": \"Harry Potter\""),
        "{books}"
    );
    assert!(
        !html.contains("[?2004") && !html.contains('\u{1b}'),
        "escape codes reached the page"
    );
    assert!(
        !html.contains("wb-step wb-skipped"),
        "a block of the sheet did not run"
    );

    // §09: the step tables, and the two claims the sheet leaves to the reader.
    assert!(
        html.matches("class=\"wb-build\"").count() >= 8,
        "build step tables are missing"
    );
    assert_eq!(
        html.matches("Nachgeprüft</p>").count(),
        2,
        "a verified statement of §09 is missing"
    );
    assert!(
        html.contains("aria-label=\"Builds im Vergleich: python-webapp\"")
            && html.contains("aria-label=\"Builds im Vergleich: pyramid\""),
        "a build chart is missing"
    );

    // Provenance names the engine.
    assert!(
        html.contains("Docker Engine 20.") || html.contains("Docker Engine 2"),
        "no engine in the provenance"
    );
    assert!(!html.contains("wb-step wb-failed"), "a step failed");

    // Without a daemon, the committed store renders the same transcripts.
    let frozen = common::mdbook(
        &dir.path().join("book"),
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    let stderr = String::from_utf8_lossy(&frozen.stderr);
    assert!(frozen.status.success(), "{stderr}");
    assert!(!stderr.contains("ran "), "a step ran: {stderr}");
    let again =
        std::fs::read_to_string(dir.path().join("book/book/06.2-docker-advanced.html")).unwrap();
    assert_eq!(common::steps(&again).len(), steps.len());
    assert!(again.contains("Harry Potter") && again.contains("class=\"wb-build\""));
}

/// Removes every container and image of the dedicated daemon. Some
/// removals fail when an earlier one took the image along; what counts is
/// that nothing is left.
fn empty_the_daemon() {
    let run = |args: &[&str]| {
        std::process::Command::new("docker")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("running docker")
    };
    for (list, remove) in [
        (["ps", "-aq"], ["rm", "-f"]),
        (["images", "-aq"], ["rmi", "-f"]),
    ] {
        let out = String::from_utf8_lossy(&run(&list).stdout).into_owned();
        for id in out.split_whitespace() {
            run(&[remove[0], remove[1], id]);
        }
    }
    assert_eq!(
        common::docker(&["ps", "-aq"]).trim(),
        "",
        "containers are left"
    );
    assert_eq!(
        common::docker(&["images", "-aq"]).trim(),
        "",
        "images are left"
    );
}
