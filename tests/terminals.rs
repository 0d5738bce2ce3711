//! Named terminals, servers and probes against the real daemon, each in a
//! fixture book built by the real mdbook.

mod common;

use common::{Book, docker, require_docker, steps};

const CONTINUE: &str = "on-failure = \"continue\"";

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn an_interactive_container_is_typed_into_while_a_second_window_lists_it() {
    require_docker();
    docker(&["pull", "-q", "ubuntu:14.04"]);
    let chapter = "\
<!-- workbook: open=eins -->
```shell
docker run -it ubuntu:14.04 /bin/bash
```

<!-- workbook: contains=\"Up \" -->
```shell
docker container ls
```

<!-- workbook: terminal=eins -->
```shell
echo hallo > /datei; cat /datei
```

<!-- workbook: bind=\"<ID>=container\" open=zwei contains=hallo -->
```shell
docker exec -it <ID> cat /datei
```

<!-- workbook: terminal=eins -->
```shell
exit
```
";
    let build = Book::new(CONTINUE, chapter).build(&[]);
    assert!(build.success, "{}", build.stderr);
    let steps = steps(&build.html);

    assert!(
        steps[0].contains("docker run -it ubuntu:14.04 /bin/bash\nroot@"),
        "no container prompt: {}",
        steps[0]
    );
    assert!(
        steps[1].contains("ubuntu:14.04") && steps[1].contains("Up "),
        "the second window did not see it running: {}",
        steps[1]
    );
    assert!(
        steps[2].contains("cat /datei\nhallo\nroot@"),
        "{}",
        steps[2]
    );
    let id = docker_id(&steps[3]);
    assert_eq!(id.len(), 12, "no real id in `{}`", steps[3]);
    assert!(steps[3].contains("hallo"), "{}", steps[3]);
    assert!(
        build.html.contains("&lt;ID&gt;"),
        "the copyable block lost the sheet's text"
    );
    assert!(steps[4].contains("exit"), "{}", steps[4]);
    assert!(
        !build.html.contains('\u{1b}') && !build.html.contains("[?2004"),
        "escape codes reached the page"
    );
    assert!(!build.html.contains("wb-step wb-failed"), "{steps:?}");
}

fn docker_id(step: &str) -> String {
    step.split("docker exec -it ")
        .nth(1)
        .unwrap_or("")
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect()
}

#[test]
fn a_foreground_server_is_stopped_with_ctrl_c_once_ready() {
    require_docker();
    docker(&["pull", "-q", "python:3.6"]);
    let chapter = "\
<!-- workbook: open=server ready=\"Serving HTTP\" interrupt -->
```shell
docker run -it --rm python:3.6 python3 -m http.server 8000
```
";
    let build = Book::new(CONTINUE, chapter).build(&[]);
    assert!(build.success, "{}", build.stderr);
    let step = &steps(&build.html)[0];
    assert!(step.contains("Serving HTTP on"), "{step}");
    assert!(
        step.contains("^C") && step.contains("Keyboard interrupt"),
        "{step}"
    );
    assert!(step.contains("stopped with CTRL+C"), "{step}");
}

#[test]
fn a_background_server_is_probed_and_its_answer_shown_safely() {
    require_docker();
    docker(&["pull", "-q", "python:3.6"]);
    let port = free_port();
    let chapter = format!("\
<!-- workbook: open=server ready=\"Serving HTTP\" -->
```shell
mkdir -p site && printf '<h1>Hallo</h1><script>alert(1)</script>' > site/index.html
docker run -p 127.0.0.1:{port}:8000 -v $PWD/site:/site python:3.6 python3 -u -m http.server 8000 --directory /site
```

<!-- workbook: probe=http://localhost:{port}/ contains=Hallo -->
![Browser](./img/browser.png)
");
    let build = Book::new(CONTINUE, &chapter).build(&[]);
    assert!(build.success, "{}", build.stderr);
    let steps = steps(&build.html);
    let probe = &steps[2];
    assert!(
        probe.contains(&format!("GET http://localhost:{port}/")) && probe.contains("200"),
        "{probe}"
    );
    assert!(
        probe.contains("<h1>Hallo</h1><script>alert(1)</script>"),
        "the source is not shown: {probe}"
    );
    assert!(
        build
            .html
            .contains("<iframe class=\"wb-http-page\" sandbox=\"\""),
        "no sandboxed frame"
    );
    assert!(
        !build.html.contains("<script>alert(1)"),
        "the answer's script reached the page"
    );
    assert!(
        !build.html.contains("<img"),
        "the browser screenshot is left"
    );
    let left = docker(&["ps", "-aq", "--filter", &format!("publish={port}")]);
    assert!(
        left.trim().is_empty(),
        "the server's container outlived the chapter"
    );
}

#[test]
fn bad_terminal_input_is_named() {
    let cases = [
        (
            "<!-- workbook: open=t ready=\"never shows\" timeout=2 -->\n```shell\nsleep 30\n```\n",
            "the ready pattern `never shows` did not show within 2 s",
        ),
        (
            "<!-- workbook: probe=http://localhost:9/ timeout=1 -->\n",
            "no answer from http://localhost:9/ within 1 s",
        ),
        (
            "```shell\nexit\n```\n\n```shell\necho after\n```\n",
            "the chapter's shell ended at an earlier step",
        ),
    ];
    for (chapter, want) in cases {
        let build = Book::new("on-failure = \"fail\"", chapter).build(&[]);
        assert!(!build.success, "{chapter}");
        assert!(
            build.stderr.contains("chapter.md:") && build.stderr.contains(want),
            "{chapter}: {}",
            build.stderr
        );
    }
}

#[test]
fn a_port_already_taken_is_a_rendered_failure_naming_the_container() {
    // Case 9: the second server cannot have the port.
    require_docker();
    docker(&["pull", "-q", "ubuntu:14.04"]);
    let port = free_port();
    let chapter = format!(
        "\
```shell
docker run -d --name workbook-test-first-{port} -p 127.0.0.1:{port}:80 ubuntu:14.04 sleep 60
docker run -d -p 127.0.0.1:{port}:80 ubuntu:14.04 sleep 60
```
"
    );
    assert!(
        !Book::new("on-failure = \"fail\"", &chapter)
            .build(&[])
            .success
    );
    let fail = Book::new(CONTINUE, &chapter).build(&[]);
    let steps = steps(&fail.html);
    assert!(
        steps[1].contains("port is already allocated"),
        "{}",
        steps[1]
    );
    assert!(
        fail.stderr.contains(&format!(
            "chapter.md:3: `docker run -d -p 127.0.0.1:{port}:80"
        )),
        "{}",
        fail.stderr
    );
    assert!(
        fail.stderr.contains(&format!(
            "port {port} is taken by container workbook-test-first-{port}"
        )),
        "{}",
        fail.stderr
    );
    assert!(fail.html.contains(&format!(
        "port {port} is taken by container workbook-test-first-{port}"
    )));

    let expected = Book::new(
        "on-failure = \"fail\"",
        &chapter.replace("```shell\n", "<!-- workbook: expect.2=125 -->\n```shell\n"),
    )
    .build(&[]);
    assert!(
        expected.success,
        "declared as expected, it passes: {}",
        expected.stderr
    );
}

#[test]
fn removing_nothing_exits_1_and_is_shown_honestly() {
    // Case 10, on a daemon declared dedicated: the listing is empty.
    require_docker();
    let chapter = "```shell\ndocker rmi $(docker images -q --filter reference=nothing-here)\n```\n";
    assert!(
        !Book::new("on-failure = \"fail\"\ndedicated-daemon = true", chapter)
            .build(&[])
            .success
    );
    let shown = Book::new(
        "on-failure = \"continue\"\ndedicated-daemon = true",
        chapter,
    )
    .build(&[]);
    assert!(
        steps(&shown.html)[0].contains("requires at least 1 argument"),
        "{:?}",
        steps(&shown.html)
    );
    assert!(shown.html.contains("wb-step wb-failed"));
    let ok = Book::new(
        "on-failure = \"fail\"\ndedicated-daemon = true",
        &format!("<!-- workbook: expect=1 -->\n{chapter}"),
    )
    .build(&[]);
    assert!(ok.success, "{}", ok.stderr);
    assert!(steps(&ok.html)[0].contains("requires at least 1 argument"));
}

#[test]
fn findings_run_a_sheet_as_written_and_report_what_fails() {
    require_docker();
    docker(&["pull", "-q", "ubuntu:14.04"]);
    let dir = tempfile::tempdir().unwrap();
    let sheet = dir.path().join("sheet.md");
    let md = "# Blatt\n\n```shell\ndocker run -it ubuntu:14.04 /bin/bash\n```\n\n```shell\nmkdir /TEST\nexit\n```\n\n```shell\ndocker start d239    # Your container id instead\ncd <YOUR_PATH>\n```\n\n```shell\n...\nmakePyramid $1\n```\n";
    std::fs::write(&sheet, md).unwrap();

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mdbook-workbook"))
        .arg("findings")
        .arg(&sheet)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("1 finding(s)"), "{report}");
    assert!(
        report.contains("sheet.md:13: `docker start d239")
            && report.contains("No such container: d239"),
        "{report}"
    );
    assert!(
        !report.contains("mkdir") && !report.contains("makePyramid"),
        "{report}"
    );
}

#[test]
fn typing_into_a_terminal_that_ended_is_an_error() {
    let chapter = "<!-- workbook: open=t -->\n```shell\nexit\n```\n\n<!-- workbook: terminal=t -->\n```shell\nexit\n```\n";
    let build = Book::new(CONTINUE, chapter).build(&[]);
    assert!(
        build
            .stderr
            .contains("chapter.md:8: `exit`: terminal `t` has ended"),
        "{}",
        build.stderr
    );
}

#[test]
fn hidden_checks_show_only_when_they_fail() {
    let chapter = "```shell\ntouch da\n```\n\n<!-- workbook: hidden matches=\"^da$\" -->\n```shell\nls\n```\n\n<!-- workbook: hidden file-exists=fehlt -->\n```shell\necho unsichtbar\n```\n";
    let build = Book::new(CONTINUE, chapter).build(&[]);
    assert!(build.success, "{}", build.stderr);
    let steps = steps(&build.html);
    assert_eq!(steps.len(), 2, "a passing hidden check is shown: {steps:?}");
    assert!(
        steps[1].contains("echo unsichtbar") && build.html.contains("fehlt"),
        "{steps:?}"
    );
    assert!(
        !build.html.contains("language-shell\">ls"),
        "the hidden block's code is on the page"
    );
}

#[test]
fn layer_claims_are_checked_against_the_build_output() {
    require_docker();
    docker(&["pull", "-q", "ubuntu:14.04"]);
    let tag = format!("workbook-test-layers-{}", free_port());
    let chapter = format!(
        "\
```shell
printf 'FROM ubuntu:14.04\\nRUN echo eins\\n' > Dockerfile
```

<!-- workbook: rebuilt.1=\"RUN echo eins\" cached.2=\"RUN echo eins\" -->
```shell
docker build . --tag {tag}
docker build . --tag {tag}
```

<!-- workbook: rebuilt=\"RUN echo eins\" -->
```shell
docker build . --tag {tag}
```
"
    );
    let build = Book::new(CONTINUE, &chapter).build(&[]);
    assert!(build.success, "{}", build.stderr);
    let steps = steps(&build.html);
    assert!(
        steps[1].contains("built") && steps[1].contains("RUN echo eins"),
        "no step table: {}",
        steps[1]
    );
    assert!(steps[2].contains("from the cache"), "{}", steps[2]);
    assert!(
        !steps[1].contains("failed:") && !steps[2].contains("failed:"),
        "{steps:?}"
    );
    assert!(
        build
            .stderr
            .contains("step `RUN echo eins` was from the cache, expected built anew"),
        "{}",
        build.stderr
    );
}
