//! The store: records frozen per chapter, chain keys that re-run only what
//! an edit made stale, frozen builds without a daemon, drift checks, and a
//! store that cannot be read.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Book, mdbook_binary, steps};

const CONTINUE: &str = "on-failure = \"continue\"";

/// Settings that serve `https://example.invalid/NAME.git` from `dir`.
fn with_repo(name: &str, dir: &str) -> String {
    format!(
        "{CONTINUE}\n[preprocessor.workbook.repos]\n\"https://example.invalid/{name}.git\" = \"{dir}\"\n"
    )
}

fn chapter_of(commands: &[&str]) -> String {
    let mut text = String::from("# Chapter\n\n");
    for c in commands {
        text.push_str(&format!("```shell\n{c}\n```\n\n"));
    }
    text
}

/// The steps a build ran, from its log: `ran N steps`, or 0.
fn ran(stderr: &str) -> usize {
    let re = regex::Regex::new(r"ran (\d+) steps").unwrap();
    re.captures(stderr)
        .map(|c| c[1].parse().unwrap())
        .unwrap_or(0)
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from} not in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn an_edit_of_step_k_reruns_k_to_n_only() {
    let commands = [
        "echo one > notes.txt",
        "cat notes.txt",
        "echo two >> notes.txt",
        "cat notes.txt",
        "mkdir -p sub && cd sub && pwd",
        "ls ..",
    ];
    let book = Book::new(CONTINUE, &chapter_of(&commands));
    let first = book.build(&[]);
    assert!(first.success, "{}", first.stderr);
    assert_eq!(ran(&first.stderr), 6, "{}", first.stderr);
    let store = book.root().join("workbook/chapter.yml");
    assert!(store.is_file(), "the store is written beside src");

    // Nothing changed: nothing runs, and the page is the same.
    let again = book.build(&[]);
    assert!(again.success, "{}", again.stderr);
    assert_eq!(ran(&again.stderr), 0, "{}", again.stderr);
    assert_eq!(steps(&again.html), steps(&first.html));

    // An edit of step 3 runs steps 3..6 from the state after step 2.
    edit(
        &book.root().join("src/chapter.md"),
        "echo two",
        "echo three",
    );
    let edited = book.build(&[]);
    assert!(edited.success, "{}", edited.stderr);
    assert_eq!(ran(&edited.stderr), 4, "{}", edited.stderr);
    assert!(
        edited.stderr.contains("running steps 3..6 of 6"),
        "{}",
        edited.stderr
    );
    let shown = steps(&edited.html);
    assert!(shown[3].contains("one\nthree"), "{}", shown[3]);
    assert!(shown[4].contains("/sub"), "{}", shown[4]);
    assert!(
        shown[5].contains("notes.txt") && shown[5].contains("sub"),
        "{}",
        shown[5]
    );

    // A paragraph edit above the blocks keeps every record.
    edit(
        &book.root().join("src/chapter.md"),
        "# Chapter\n",
        "# Chapter\n\nA new paragraph.\n",
    );
    let prose = book.build(&[]);
    assert_eq!(ran(&prose.stderr), 0, "{}", prose.stderr);

    // After a `cd`, the run resumes in that directory.
    edit(&book.root().join("src/chapter.md"), "ls ..", "ls -F ..");
    let last = book.build(&[]);
    assert_eq!(ran(&last.stderr), 1, "{}", last.stderr);
    let shown = steps(&last.html);
    assert!(
        shown[5].contains("~/sub$ ls -F ..") && shown[5].contains("sub/"),
        "{}",
        shown[5]
    );
}

#[test]
fn an_exercise_edit_reruns_from_the_first_step_that_sees_it() {
    let book = Book::new(
        &with_repo("demo", "exercises"),
        &chapter_of(&[
            "git clone https://example.invalid/demo.git",
            "cat demo/notes.txt",
            "echo between",
            "cd demo/app",
            "cat server.py",
            "echo end",
        ]),
    );
    let exercises = book.root().join("exercises");
    std::fs::create_dir_all(exercises.join("app")).unwrap();
    std::fs::write(exercises.join("notes.txt"), "notes 1\n").unwrap();
    std::fs::write(exercises.join("app/server.py"), "print('v1')\n").unwrap();

    let first = book.build(&[]);
    assert!(first.success, "{}", first.stderr);
    assert_eq!(ran(&first.stderr), 6, "{}", first.stderr);

    // server.py is seen first by `cd demo/app` (step 4).
    std::fs::write(exercises.join("app/server.py"), "print('v2')\n").unwrap();
    let edited = book.build(&[]);
    assert_eq!(ran(&edited.stderr), 3, "{}", edited.stderr);
    let shown = steps(&edited.html);
    assert!(shown[4].contains("print('v2')"), "{}", shown[4]);

    // notes.txt is seen by step 2.
    std::fs::write(exercises.join("notes.txt"), "notes 2\n").unwrap();
    let notes = book.build(&[]);
    assert_eq!(ran(&notes.stderr), 5, "{}", notes.stderr);
    let shown = steps(&notes.html);
    assert!(shown[1].contains("notes 2"), "{}", shown[1]);
    assert!(shown[4].contains("print('v2')"), "{}", shown[4]);
}

#[test]
fn without_a_daemon_the_book_builds_from_the_store() {
    common::require_docker();
    let book = Book::new(
        CONTINUE,
        &chapter_of(&[
            "echo before",
            "docker run --rm ubuntu:14.04 echo hi from ubuntu",
            "echo after",
        ]),
    );
    let first = book.build(&[]);
    assert!(first.success, "{}", first.stderr);
    assert!(first.html.contains("hi from ubuntu"));

    let gone = [("DOCKER_HOST", "unix:///nonexistent/docker.sock")];
    let frozen = book.build(&gone);
    assert!(frozen.success, "{}", frozen.stderr);
    assert_eq!(ran(&frozen.stderr), 0, "{}", frozen.stderr);
    assert_eq!(steps(&frozen.html), steps(&first.html));
    assert!(
        frozen.html.contains("Verified")
            || frozen.html.contains("Geprüft")
            || frozen.html.contains("wb-provenance")
    );

    // A stale chapter and no daemon: the records stay, marked, with a warning.
    edit(
        &book.root().join("src/chapter.md"),
        "echo before",
        "echo BEFORE",
    );
    let stale = book.build(&gone);
    assert!(stale.success, "{}", stale.stderr);
    assert!(
        stale.stderr.contains("showing the stored records"),
        "{}",
        stale.stderr
    );
    assert!(stale.html.contains("hi from ubuntu"));
    assert!(
        stale.html.contains("wb-stale-note"),
        "stale records are marked"
    );
    assert!(
        stale.html.contains("wb-step wb-missing") && stale.html.contains("no valid record"),
        "the edited step has no record and says so"
    );

    // Frozen and strict: a stale record is an error.
    let strict = book.build(&[("WORKBOOK_MODE", "frozen"), ("WORKBOOK_ON_FAILURE", "fail")]);
    assert!(
        strict.success,
        "frozen without strict only marks: {}",
        strict.stderr
    );
    std::fs::write(
        book.root().join("book.toml"),
        "[book]\ntitle = \"Test\"\n\n[preprocessor.workbook]\nmode = \"frozen\"\nstrict = true\non-failure = \"fail\"\n",
    )
    .unwrap();
    let strict = book.build(&[]);
    assert!(!strict.success);
    assert!(
        strict
            .stderr
            .contains("chapter.md: 3 step(s) from line 4 on have no valid record"),
        "{}",
        strict.stderr
    );
}

#[test]
fn a_store_that_cannot_be_read_is_a_clear_error_and_stays() {
    let book = Book::new(CONTINUE, &chapter_of(&["echo hello"]));
    assert!(book.build(&[]).success);
    let store = book.root().join("workbook/chapter.yml");
    let good = std::fs::read_to_string(&store).unwrap();

    let broken = good.replacen("steps:", "steps: [", 1);
    std::fs::write(&store, &broken).unwrap();
    let built = book.build(&[]);
    assert!(
        built.stderr.contains("workbook/chapter.yml:"),
        "{}",
        built.stderr
    );
    assert!(
        built
            .stderr
            .contains("delete it to record the chapter afresh"),
        "{}",
        built.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&store).unwrap(),
        broken,
        "never replaced"
    );
    assert!(
        !built.success,
        "a store that cannot be read fails the build"
    );

    let wrong = good.replacen("exited: 0", "exited: zero", 1);
    assert_ne!(wrong, good);
    std::fs::write(&store, &wrong).unwrap();
    let built = book.build(&[]);
    let line = wrong
        .lines()
        .position(|l| l.contains("exited: zero"))
        .unwrap()
        + 1;
    assert!(
        built
            .stderr
            .contains(&format!("workbook/chapter.yml:{line}:")),
        "line {line}: {}",
        built.stderr
    );

    std::fs::write(&store, good.replacen("format: 1", "format: 7", 1)).unwrap();
    let built = book.build(&[]);
    assert!(
        built
            .stderr
            .contains("written by a newer mdbook-workbook (store format 7"),
        "{}",
        built.stderr
    );
}

#[test]
fn check_passes_after_accept_and_shows_drift_as_a_diff() {
    let book = Book::new(
        &with_repo("demo", "exercises"),
        &chapter_of(&[
            "git clone https://example.invalid/demo.git",
            "cat demo/notes.txt",
            "sleep 0.2; date; echo took $((RANDOM % 3 + 1))s",
        ]),
    );
    std::fs::create_dir_all(book.root().join("exercises")).unwrap();
    std::fs::write(
        book.root().join("exercises/notes.txt"),
        "the cache is warm\n",
    )
    .unwrap();

    let workbook = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_mdbook-workbook"))
            .args(args)
            .arg(book.root())
            .arg("--mdbook")
            .arg(mdbook_binary())
            .env("WORKBOOK_CACHE", book.root().join(".cache"))
            .env_remove("CI")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = workbook(&["accept"]);
    assert_eq!(code, Some(0), "{err}");
    let store = std::fs::read_to_string(book.root().join("workbook/chapter.yml")).unwrap();
    let (code, err) = workbook(&["check"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("no drift"), "{err}");
    assert_eq!(
        std::fs::read_to_string(book.root().join("workbook/chapter.yml")).unwrap(),
        store,
        "check writes nothing"
    );

    // One character of a command's output changes.
    std::fs::write(
        book.root().join("exercises/notes.txt"),
        "the cache is cold\n",
    )
    .unwrap();
    let (code, err) = workbook(&["check"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("-the cache is warm\n+the cache is cold"),
        "{err}"
    );
    assert!(err.contains("chapter.md:8: `cat demo/notes.txt`"), "{err}");

    // A step that is gone is reported by check and dropped by accept.
    edit(
        &book.root().join("src/chapter.md"),
        "```shell\nsleep 0.2; date; echo took $((RANDOM % 3 + 1))s\n```\n",
        "",
    );
    let (code, err) = workbook(&["check"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no longer in the chapter"), "{err}");
    let (code, err) = workbook(&["accept"]);
    assert_eq!(code, Some(0), "{err}");
    let store = std::fs::read_to_string(book.root().join("workbook/chapter.yml")).unwrap();
    assert!(!store.contains("RANDOM"), "{store}");
    let (code, err) = workbook(&["check"]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn two_builds_at_once_leave_a_readable_store() {
    let book = Book::new(CONTINUE, &chapter_of(&["sleep 1; echo one", "echo two"]));
    let a = std::thread::scope(|s| {
        let a = s.spawn(|| common::mdbook(book.root(), &[]));
        let b = s.spawn(|| common::mdbook(book.root(), &[]));
        [a.join().unwrap(), b.join().unwrap()]
    });
    for out in &a {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let runs: usize = a
        .iter()
        .map(|o| ran(&String::from_utf8_lossy(&o.stderr)))
        .sum();
    assert_eq!(
        runs, 2,
        "the second build waits for the first and finds it fresh"
    );
    let store = std::fs::read_to_string(book.root().join("workbook/chapter.yml")).unwrap();
    assert!(store.contains("echo two"));
}

#[test]
fn serve_rebuilds_once_per_edit() {
    let book = Book::new(CONTINUE, &chapter_of(&["echo served"]));
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let ours = Path::new(env!("CARGO_BIN_EXE_mdbook-workbook"))
        .parent()
        .unwrap()
        .to_path_buf();
    let log = book.root().join("serve.log");
    let mut serve = Command::new(mdbook_binary())
        .args(["serve", "-n", "127.0.0.1", "-p", &port.to_string()])
        .current_dir(book.root())
        .env(
            "PATH",
            format!(
                "{}:{}",
                ours.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("WORKBOOK_CACHE", book.root().join(".cache"))
        .env_remove("CI")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let builds = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("Book building has started")
            .count()
    };
    let wait_for = |what: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !what() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let written = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("HTML book written")
            .count()
    };
    wait_for(&|| written() >= 1);
    std::thread::sleep(Duration::from_secs(2));
    edit(
        &book.root().join("src/chapter.md"),
        "echo served",
        "echo served again",
    );
    wait_for(&|| written() >= 2);
    // Long enough for a loop to show: each build writes the store.
    std::thread::sleep(Duration::from_secs(5));
    let _ = serve.kill();
    let _ = serve.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        builds(),
        2,
        "one build at start and one for the edit:\n{text}"
    );
    assert!(text.contains("ran 1 steps"), "{text}");
    assert!(book.root().join("workbook/chapter.yml").is_file());
}

#[test]
fn a_chapter_that_could_not_run_now_keeps_its_records() {
    common::require_docker();
    // A "remove all" command that finds nothing: it runs only on a daemon
    // declared dedicated, and removes nothing anywhere.
    let chapter = "# Chapter\n\n```shell\necho first\n```\n\n<!-- workbook: expect=1 -->\n```shell\ndocker rm $(docker ps -aq --filter label=workbook-test-nothing)\n```\n";
    let book = Book::new(CONTINUE, chapter);
    let first = book.build(&[("WORKBOOK_DEDICATED_DAEMON", "1")]);
    assert!(first.success, "{}", first.stderr);
    assert!(
        first.html.contains("requires at least 1 argument"),
        "{}",
        first.html
    );

    // Stale, no daemon, not dedicated: the records stay, marked, and the
    // page carries no refusal meant for the maintainer's machine.
    edit(
        &book.root().join("src/chapter.md"),
        "echo first",
        "echo First",
    );
    let gone = [("DOCKER_HOST", "unix:///nonexistent/docker.sock")];
    let stale = book.build(&gone);
    assert!(stale.success, "{}", stale.stderr);
    assert!(stale.html.contains("requires at least 1 argument"));
    assert!(stale.html.contains("wb-stale-note"));
    assert!(!stale.html.contains("refused"), "{}", stale.html);

    // With a daemon but not dedicated, the refusal shows above the records.
    let refused = book.build(&[]);
    assert!(refused.html.contains("refused"), "{}", refused.stderr);
    assert!(refused.html.contains("requires at least 1 argument"));
}

/// The page's transcripts without their durations.
fn transcripts(html: &str) -> Vec<String> {
    let secs = regex::Regex::new(r"\d+[.,]\d+ s").unwrap();
    steps(html)
        .iter()
        .map(|s| secs.replace_all(s, "<t>").into_owned())
        .collect()
}

#[test]
fn a_resumed_run_shows_what_a_full_run_shows() {
    let scenarios: &[&[&str]] = &[
        // Variables, however they are set.
        &[
            "NAME=\"my app\"",
            "X=1 Y=2",
            "for i in 1 2 3; do :; done",
            "if true; then export MODE=prod; fi",
            "echo EDIT-v1",
            "echo \"$NAME $X $Y $i $MODE\"",
        ],
        // A directory outside the workspace, and `cd -`.
        &["cd /tmp", "echo EDIT-v1", "pwd"],
        &["mkdir -p a b", "cd a", "cd ~/b", "echo EDIT-v1", "cd -"],
        // Files and links that name the workspace by its path.
        &[
            "mkdir d",
            "pwd > where.txt",
            "ln -s ~/d lnk",
            "echo x > d/f",
            "echo EDIT-v1",
            "cat where.txt",
            "cat lnk/f",
        ],
        // Functions and the directory stack.
        &[
            "greet() { echo hi; }",
            "pushd /tmp > /dev/null",
            "echo EDIT-v1",
            "greet; dirs",
        ],
        // Positional parameters, descriptors, jobs, limits, matches.
        &[
            "set -- alpha beta gamma",
            "echo EDIT-v1",
            "echo \"$# $1 $3\"",
        ],
        &["exec 4>log.txt", "echo EDIT-v1", "echo hi >&4; cat log.txt"],
        &[
            "(exit 3) & sleep 0.3",
            "echo EDIT-v1",
            "wait $!; echo \"status $?\"",
        ],
        &["ulimit -n 77", "echo EDIT-v1", "ulimit -n"],
        &[
            "[[ v1.2 =~ ([0-9]+) ]]",
            "echo EDIT-v1",
            "echo \"${BASH_REMATCH[1]}\"",
        ],
        // A repository whose remote is the workspace's absolute path.
        &[
            "git init -q -b main repo && git -C repo -c user.name=a -c user.email=a@b commit -q --allow-empty -m x && git clone -q repo copy",
            "echo EDIT-v1",
            "cd copy && git remote -v",
        ],
    ];
    for commands in scenarios {
        let book = Book::new(CONTINUE, &chapter_of(commands));
        assert!(book.build(&[]).success);
        edit(&book.root().join("src/chapter.md"), "EDIT-v1", "EDIT-v2");
        let resumed = book.build(&[]);
        assert!(resumed.success, "{}", resumed.stderr);
        let full = book.build(&[("WORKBOOK_MODE", "refresh")]);
        assert_eq!(
            transcripts(&resumed.html),
            transcripts(&full.html),
            "{commands:?}\n{}",
            resumed.stderr
        );
    }
}

#[test]
fn a_commit_in_a_clone_is_not_carried_over_but_run_again() {
    let book = Book::new(
        &with_repo("ex", "ex"),
        &chapter_of(&[
            "git clone https://example.invalid/ex.git",
            "cd ex && git -c user.name=s -c user.email=s@x commit -q --allow-empty -m mine && cd ~",
            "cat ex/b.txt",
            "cd ex && git log --format=%s && git status --short",
        ]),
    );
    std::fs::create_dir_all(book.root().join("ex")).unwrap();
    std::fs::write(book.root().join("ex/b.txt"), "bravo\n").unwrap();
    assert!(book.build(&[]).success);
    std::fs::write(book.root().join("ex/b.txt"), "changed\n").unwrap();
    let resumed = book.build(&[]);
    assert!(resumed.success, "{}", resumed.stderr);
    let full = book.build(&[("WORKBOOK_MODE", "refresh")]);
    assert_eq!(
        transcripts(&resumed.html),
        transcripts(&full.html),
        "{}",
        resumed.stderr
    );
    assert!(transcripts(&resumed.html)[3].contains("mine"));
}

#[test]
fn a_changed_exercise_gives_the_clone_a_full_run_would_have() {
    let book = Book::new(
        &with_repo("ex", "ex"),
        &chapter_of(&[
            "git clone https://example.invalid/ex.git",
            "cat ex/b.txt",
            "echo chapter >> ex/b.txt",
            "cat ~/ex/a.txt",
            "cd ex && git status --short && git log --format=%h",
        ]),
    );
    std::fs::create_dir_all(book.root().join("ex")).unwrap();
    std::fs::write(book.root().join("ex/a.txt"), "hello\n").unwrap();
    std::fs::write(book.root().join("ex/b.txt"), "bravo\n").unwrap();
    assert!(book.build(&[]).success);

    std::fs::write(book.root().join("ex/a.txt"), "changed\n").unwrap();
    let resumed = book.build(&[]);
    assert_eq!(ran(&resumed.stderr), 2, "{}", resumed.stderr);
    let shown = transcripts(&resumed.html);
    assert!(shown[3].contains("changed"), "{}", shown[3]);
    let full = book.build(&[("WORKBOOK_MODE", "refresh")]);
    assert_eq!(shown, transcripts(&full.html));
}
