//! Bad input and field cases, each in its own fixture book, built by the
//! real mdbook binary. Cases that touch Docker run against a real daemon.

mod common;

use common::{Book, docker, require_docker, steps};

const CONTINUE: &str = "on-failure = \"continue\"";
const FAIL: &str = "on-failure = \"fail\"";

#[test]
fn supports_html_and_reads_nothing_else() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mdbook-workbook"))
        .args(["supports", "html"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
}

#[test]
fn mdbook_outside_the_supported_range_is_named() {
    // Case 14: the JSON mdBook sends, claiming another version.
    let book = Book::new(CONTINUE, "# T\n");
    let config = mdbook_preprocessor::config::Config::default();
    let ctx =
        mdbook_preprocessor::PreprocessorContext::new(book.root().into(), config, "html".into());
    let mut input = serde_json::to_value((ctx, mdbook_preprocessor::book::Book::new())).unwrap();
    input[0]["mdbook_version"] = "0.4.40".into();

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mdbook-workbook"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), &input).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        out.stdout.is_empty(),
        "nothing but the book may reach stdout"
    );
    assert!(
        stderr.contains(">=0.5.0, <0.6.0") && stderr.contains("0.4.40"),
        "{stderr}"
    );
}

#[test]
fn output_that_looks_like_markup_stays_text() {
    // Cases 1 and 2: a fence and a script tag in output.
    let chapter = "# T\n\n```shell\nprintf '```\\nnot code\\n```\\n'\necho '</pre></code><script>alert(1)</script>'\n```\n\nAfter the block.\n";
    let build = Book::new(CONTINUE, chapter).build(&[]);
    assert!(build.success, "{}", build.stderr);

    let steps = steps(&build.html);
    assert!(steps[0].contains("```\nnot code\n```"), "{}", steps[0]);
    assert!(
        steps[1].contains("</pre></code><script>alert(1)</script>"),
        "{}",
        steps[1]
    );
    assert!(
        !build.html.contains("<script>alert(1)"),
        "a script element reached the page"
    );
    assert!(
        build.html.contains("<p>After the block.</p>"),
        "the rest of the page was swallowed"
    );
}

#[test]
fn colours_are_rendered_and_no_escape_byte_reaches_the_page() {
    // Case 3.
    let chapter = "```shell\nprintf '\\033[31mred\\033[0m plain\\n'\n```\n";
    let build = Book::new(CONTINUE, chapter).build(&[]);
    assert!(build.success, "{}", build.stderr);
    assert!(
        build
            .html
            .contains("<span class=\"wb-fg1\">red</span> plain"),
        "{}",
        build.html
    );
    assert!(!build.html.contains('\u{1b}'));
}

#[test]
fn crlf_chapter_runs_like_lf() {
    // Case 4.
    let chapter = "---\r\ntitle: Zeilenenden\r\nlang: de-DE\r\n---\r\n# {{ $frontmatter.title }}\r\n\r\n<!-- workbook: expect=0 -->\r\n```shell\r\necho one\r\n```\r\n";
    let build = Book::new(CONTINUE, chapter).build(&[]);
    assert!(build.success, "{}", build.stderr);
    assert_eq!(steps(&build.html).len(), 1);
    assert!(
        steps(&build.html)[0].contains("echo one\n\none\n"),
        "{:?}",
        steps(&build.html)
    );
    assert!(
        build.html.contains("Zeilenenden</a></h1>"),
        "front matter title not used"
    );
    assert!(
        build.html.contains("Exit-Status 0"),
        "German labels not used"
    );
    assert!(!build.html.contains("workbook:") && !build.html.contains("lang: de-DE"));
}

#[test]
fn invalid_utf8_is_shown_lossily() {
    // Case 5.
    let build = Book::new(CONTINUE, "```shell\nprintf 'caf\\xe9\\n'\n```\n").build(&[]);
    assert!(build.success, "{}", build.stderr);
    assert!(
        steps(&build.html)[0].contains("caf\u{fffd}"),
        "{:?}",
        steps(&build.html)
    );
}

#[test]
fn a_hundred_megabytes_of_output_is_cut_with_a_marker() {
    // Case 6.
    let build = Book::new(
        CONTINUE,
        "```shell\nyes line | head -c 100000000\necho next\n```\n",
    )
    .build(&[]);
    assert!(build.success, "{}", build.stderr);
    let steps = steps(&build.html);
    assert!(
        steps[0].contains("lines omitted"),
        "{}",
        &steps[0][..300.min(steps[0].len())]
    );
    assert!(
        steps[0].contains("lines omitted: 19,999,820"),
        "the count of omitted lines is wrong"
    );
    assert!(
        build.html.len() < 200_000,
        "page holds {} bytes",
        build.html.len()
    );
    assert!(steps[1].contains("next"));
}

#[test]
fn steps_never_touch_the_protocol_streams() {
    // Case 7: a step that reads stdin and writes to stdout and stderr.
    let chapter = "```shell\necho to-stdout; echo to-stderr >&2; cat; echo read-done\n```\n";
    let build = Book::new(CONTINUE, chapter).build(&[]);
    assert!(build.success, "{}", build.stderr);
    assert!(
        steps(&build.html)[0].contains("to-stdout\nto-stderr\nread-done"),
        "{:?}",
        steps(&build.html)
    );
}

#[test]
fn state_carries_from_block_to_block_in_a_fresh_workspace() {
    let chapter = "```shell\nmkdir -p demo && cd demo\nGREETING=hallo\n```\n\n```shell\necho \"$GREETING from $(basename \"$PWD\")\"\npwd\n```\n";
    let book = Book::new(CONTINUE, chapter);
    let build = book.build(&[]);
    assert!(build.success, "{}", build.stderr);
    let steps = steps(&build.html);
    assert!(steps[2].contains("hallo from demo"), "{}", steps[2]);
    assert!(
        steps[3].contains("~/demo"),
        "the workspace is not shown as home: {}",
        steps[3]
    );
    assert!(
        !book.root().join("src/demo").exists() && !book.root().join("demo").exists(),
        "the chapter ran in the repository"
    );
}

#[test]
fn a_command_past_its_timeout_is_killed_and_reported() {
    let chapter =
        "<!-- workbook: timeout=1 -->\n```shell\necho before; sleep 60\necho after\n```\n";
    let started = std::time::Instant::now();
    let build = Book::new(CONTINUE, chapter).build(&[]);
    assert!(build.success, "{}", build.stderr);
    assert!(started.elapsed().as_secs() < 30);
    let steps = steps(&build.html);
    assert!(
        steps[0].contains("before") && steps[0].contains("stopped: time limit exceeded (1.00 s)"),
        "{}",
        steps[0]
    );
    assert!(
        steps[1].contains("after\n"),
        "the shell did not survive: {}",
        steps[1]
    );
    assert!(
        build
            .stderr
            .contains("chapter.md:3: `echo before; sleep 60`: timed out after 1 s"),
        "{}",
        build.stderr
    );
}

#[test]
fn failure_policy_decides_the_build() {
    let chapter =
        "```shell\nfalse\n```\n\n<!-- workbook: expect=nonzero -->\n```shell\nfalse\n```\n";
    let fail = Book::new(FAIL, chapter).build(&[]);
    assert!(!fail.success);
    assert!(
        fail.stderr
            .contains("chapter.md:2: `false`: exited with 1, expected 0"),
        "{}",
        fail.stderr
    );
    assert!(
        !fail.stderr.contains("chapter.md:6"),
        "an expected failure was reported: {}",
        fail.stderr
    );

    let ci = Book::new("", chapter).build(&[("CI", "true")]);
    assert!(!ci.success, "CI=true must fail on a failed step");

    let local = Book::new("", chapter).build(&[]);
    assert!(local.success, "{}", local.stderr);
    let steps = steps(&local.html);
    assert!(
        local.html.contains("wb-step wb-failed") && steps[0].contains("expected exit status 0")
    );
    assert!(
        local.html.contains("wb-step wb-ok"),
        "the expected failure is not shown as passing"
    );
}

#[test]
fn directive_typo_names_chapter_line_and_known_keys() {
    // Case 13.
    let chapter = "# T\n\n<!-- workbook: tiemout=5 -->\n```shell\necho hi\n```\n";
    let fail = Book::new(FAIL, chapter).build(&[]);
    assert!(!fail.success);
    assert!(
        fail.stderr.contains(
            "chapter.md:3: directive: unknown key `tiemout` (known keys: expect, timeout"
        ),
        "{}",
        fail.stderr
    );

    let shown = Book::new(CONTINUE, chapter).build(&[]);
    assert!(shown.success);
    assert!(
        shown.html.contains("wb-chapter-error") && shown.html.contains("tiemout"),
        "the page hides the error"
    );
    assert!(
        shown.html.contains("echo hi"),
        "the original Markdown was lost"
    );
    assert!(
        !shown.html.contains("wb-step"),
        "a step ran despite the error"
    );
}

#[test]
fn unclosed_fence_is_an_error() {
    let fail = Book::new(FAIL, "# T\n\ntext\n\n```shell\necho hi\n").build(&[]);
    assert!(!fail.success);
    assert!(
        fail.stderr
            .contains("chapter.md:5: code fence opened here (```shell) is never closed"),
        "{}",
        fail.stderr
    );
}

#[test]
fn vuepress_containers_become_mdbook_admonitions() {
    let chapter = ":::tip Vorteile von Dockerfiles\n* explizite Dokumentation\n:::\n\n::: warning Windows Nutzer aufgepasst\nText\n:::\n";
    let build = Book::new(CONTINUE, chapter).build(&[]);
    assert!(build.success, "{}", build.stderr);
    assert!(
        build.html.contains("blockquote-tag blockquote-tag-tip"),
        "{}",
        build.html
    );
    assert!(build.html.contains("Vorteile von Dockerfiles</p>"));
    assert!(
        build.html.contains("blockquote-tag-warning")
            && build.html.contains("Windows Nutzer aufgepasst")
    );
    assert!(
        build.html.contains("<li>explizite Dokumentation</li>"),
        "container content is not Markdown"
    );
    assert!(!build.html.contains(":::"));
}

#[test]
fn missing_screenshots_are_replaced_and_none_is_left_broken() {
    let chapter = "```shell\necho eins\necho zwei\n```\n\n<!-- workbook: show=2 -->\n![Zweiter](./img/zwei.png)\n\n![Rest](./img/rest.png)\n\n![Ohne Befehl](./img/none.png)\n";
    let build = Book::new(CONTINUE, chapter).build(&[]);
    assert!(build.success, "{}", build.stderr);
    assert!(
        !build.html.contains("<img"),
        "a screenshot is left as an image"
    );
    let zweiter = build.html.find("Zweiter").unwrap();
    let rest = build.html.find("Rest").unwrap();
    assert!(
        build.html[zweiter..rest].contains("zwei\n")
            || build.html[zweiter..rest].contains("zwei&#10;")
    );
    assert!(build.html[rest..].contains("eins"));
    assert!(build.html.contains("wb-missing-shot") && build.html.contains("Ohne Befehl"));
}

#[test]
fn interactive_docker_command_needs_a_terminal() {
    // Case 8: never embeds "the input device is not a TTY" as a result.
    let chapter = "```shell\ndocker run -it ubuntu:14.04 echo hi\n```\n";
    let fail = Book::new(FAIL, chapter).build(&[]);
    assert!(!fail.success);
    assert!(
        fail.stderr.contains("chapter.md:2") && fail.stderr.contains("interactive terminal"),
        "{}",
        fail.stderr
    );
    assert!(!fail.stderr.contains("input device is not a TTY"));
}

#[test]
fn commands_on_all_objects_are_refused_without_a_dedicated_daemon() {
    require_docker();
    docker(&["pull", "-q", "ubuntu:14.04"]);
    let name = "workbook-test-maintainers-own";
    let _ = std::process::Command::new("docker")
        .args(["rm", "-f", name])
        .output();
    docker(&["create", "--name", name, "ubuntu:14.04", "true"]);

    let chapter = "```shell\necho harmless\ndocker rm $(docker ps -a -q)\n```\n";
    let fail = Book::new(FAIL, chapter).build(&[]);
    let survived = docker(&["ps", "-a", "-q", "--filter", &format!("name={name}")]);
    docker(&["rm", "-f", name]);

    assert!(!fail.success);
    assert!(
        fail.stderr.contains("chapter.md:3: refused"),
        "{}",
        fail.stderr
    );
    assert!(
        fail.stderr.contains("WORKBOOK_DEDICATED_DAEMON=1")
            && fail.stderr.contains("dedicated-daemon = true")
    );
    assert!(
        !survived.trim().is_empty(),
        "the maintainer's container was removed"
    );
    assert!(
        !fail.html.contains("harmless\n"),
        "part of a refused chapter ran"
    );
}

#[test]
fn session_objects_are_removed_and_others_survive() {
    require_docker();
    docker(&["pull", "-q", "ubuntu:14.04"]);
    let name = "workbook-test-keep-me";
    let _ = std::process::Command::new("docker")
        .args(["rm", "-f", name])
        .output();
    docker(&["create", "--name", name, "ubuntu:14.04", "true"]);

    let chapter = "```shell\ndocker run ubuntu:14.04 echo 'hello world'\ndocker run -d ubuntu:14.04 sleep 300\nprintf 'FROM ubuntu:14.04\\nRUN true\\n' > Dockerfile\ndocker build -q . --tag workbook-test-image\n```\n";
    let build = Book::new(CONTINUE, chapter).build(&[]);
    let left = docker(&["ps", "-aq", "--filter", "label=org.mdbook-workbook.session"]);
    let images = docker(&["images", "-q", "workbook-test-image"]);
    let kept = docker(&["ps", "-aq", "--filter", &format!("name={name}")]);
    docker(&["rm", "-f", name]);

    assert!(build.success, "{}", build.stderr);
    assert!(steps(&build.html)[0].contains("hello world"));
    assert!(
        left.trim().is_empty(),
        "containers of the session are left: {left}"
    );
    assert!(images.trim().is_empty(), "the session's image is left");
    assert!(
        !kept.trim().is_empty(),
        "a container the session did not create was removed"
    );
}

#[test]
fn a_tag_the_sheet_builds_goes_back_to_the_maintainers_image() {
    require_docker();
    docker(&["pull", "-q", "ubuntu:14.04"]);
    let tag = "workbook-test-mine:latest";
    let mine = "FROM ubuntu:14.04\nLABEL owner=maintainer\n";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), mine).unwrap();
    docker(&["build", "-q", "-t", tag, &dir.path().to_string_lossy()]);
    let before = docker(&["image", "inspect", "--format", "{{.Id}}", tag]);

    let chapter = "```shell\nprintf 'FROM ubuntu:14.04\\nRUN echo sheet\\n' > Dockerfile\ndocker build . --tag workbook-test-mine\ndocker run --rm workbook-test-mine echo from-the-sheet\n```\n";
    let build = Book::new(CONTINUE, chapter).build(&[]);
    let after = docker(&["image", "inspect", "--format", "{{.Id}}", tag]);
    docker(&["rmi", tag]);

    assert!(build.success, "{}", build.stderr);
    let steps = steps(&build.html);
    assert!(
        steps[1].contains("Step 2/2 : RUN echo sheet") || steps[1].contains("RUN echo sheet"),
        "{}",
        steps[1]
    );
    assert!(
        !steps[1].contains("LABEL"),
        "the transcript shows build steps the sheet does not have: {}",
        steps[1]
    );
    assert!(steps[2].contains("from-the-sheet"));
    assert_eq!(before, after, "the maintainer's tag was not given back");
}

#[test]
fn crlf_script_fails_in_the_image_as_bash_fails_unless_converted() {
    // Case 11.
    require_docker();
    let chapter = "```shell\nprintf 'echo ok\\r\\n' > s.sh\nprintf 'FROM ubuntu:14.04\\nCOPY s.sh /s.sh\\n' > Dockerfile\ndocker build -q . --tag workbook-test-crlf\n```\n\n<!-- workbook: expect=nonzero -->\n```shell\ndocker run --rm workbook-test-crlf bash -c 'cd /tmp && bash /s.sh && ls ok*'\n```\n\n<!-- workbook: file=Dockerfile -->\n```dockerfile\nFROM ubuntu:14.04\nCOPY s.sh /s.sh\nRUN sed -i 's/\\r//' /s.sh\n```\n\n```shell\ndocker build -q . --tag workbook-test-crlf\ndocker run --rm workbook-test-crlf bash /s.sh\n```\n";
    let build = Book::new(CONTINUE, chapter).build(&[]);
    assert!(build.success, "{}", build.stderr);
    let steps = steps(&build.html);
    assert!(
        steps[3].contains("ls: cannot access"),
        "bash did not fail as it does: {}",
        steps[3]
    );
    assert!(
        steps[4].contains("Dockerfile"),
        "the file was not written: {}",
        steps[4]
    );
    assert!(
        steps[6].ends_with("ok\nexit status 0 · ") || steps[6].contains("\nok\n"),
        "{}",
        steps[6]
    );
    assert!(!build.html.contains("wb-step wb-failed"), "{:?}", steps);
}

#[test]
fn a_step_writing_to_the_preprocessors_stdout_cannot_corrupt_the_book() {
    // The shell's parent is the preprocessor; its fd 1 is not mdBook's pipe.
    let chapter = "```shell\necho '{\"junk\":' > /proc/$PPID/fd/1; echo done\n```\n";
    let build = Book::new(CONTINUE, chapter).build(&[]);
    assert!(build.success, "{}", build.stderr);
    assert!(steps(&build.html)[0].contains("done"));
}

#[test]
fn missing_images_inside_text_become_notices() {
    let chapter = "Siehe ![Bild im Satz](./img/a.png) hier.\n\n- ![In der Liste](./img/b.png)\n";
    let build = Book::new(CONTINUE, chapter).build(&[]);
    assert!(build.success, "{}", build.stderr);
    assert!(
        !build.html.contains("<img"),
        "a broken image is left: {}",
        build.html
    );
    assert!(build.html.contains("wb-missing-inline") && build.html.contains("Bild im Satz"));
}

#[test]
fn a_session_that_cannot_start_is_an_error_on_the_page() {
    let settings = format!(
        "{CONTINUE}\n[preprocessor.workbook.repos]\n\"https://example.invalid/x.git\" = \"no-such-dir\"\n"
    );
    let build = Book::new(&settings, "```shell\necho hi\n```\n").build(&[]);
    assert!(build.success, "{}", build.stderr);
    assert!(
        build
            .stderr
            .contains("chapter.md: the chapter's session could not start"),
        "{}",
        build.stderr
    );
    assert!(build.html.contains("wb-chapter-error") && build.html.contains("no-such-dir"));
}

#[test]
fn file_steps_stay_inside_the_workspace() {
    let chapter = "```shell\nmkdir -p a/b && cd a/b\n```\n\n<!-- workbook: file=../../../escaped.txt -->\n```text\nx\n```\n";
    let book = Book::new(CONTINUE, chapter);
    let build = book.build(&[]);
    assert!(build.success, "{}", build.stderr);
    assert!(
        build.html.contains("lies outside the workspace"),
        "{}",
        build.html
    );
}
