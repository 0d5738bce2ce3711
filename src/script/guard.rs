//! Checks on a command's text before it runs: commands that would act on
//! Docker objects this run did not create, and commands that need a terminal.

/// Why a command may stop or remove objects it did not create, if it may.
///
/// This is a stopgap against sheets that say "stop all containers": such a
/// command only runs on a daemon declared dedicated.
pub fn acts_on_foreign_objects(command: &str) -> Option<String> {
    let code = strip_comment(command);
    // Global options (`docker -D rm`, `docker --host X rm`) may stand
    // between the client and its command.
    let code = &strip_global_options(code);
    let prune = crate::regex!(
        r"\bdocker(?:-compose|\s+compose)?\s+(?:(system|container|image|volume|network|builder|buildx)\s+prune|(?:volume|network)\s+(?:rm|remove)\b|down\b[^;&|]*--rmi|down\b[^;&|]*(?:\s-v\b|--volumes))"
    );
    if let Some(m) = prune.find(code) {
        return Some(format!(
            "`{}` removes objects this run did not create",
            m.as_str()
        ));
    }

    let destructive = crate::regex!(
        r"\bdocker\s+(?:(?:container|image)\s+)?(stop|rm|rmi|remove|kill|pause|restart|update)\b([^;&|]*)"
    );
    for caps in destructive.captures_iter(code) {
        let args = &caps[2];
        if args.contains('$') || args.contains('`') || args.contains("<(") {
            return Some(format!(
                "`docker {}` acts on objects named by a shell expansion, which may list objects this run did not create",
                &caps[1]
            ));
        }
    }
    let in_loop = crate::regex!(
        r"\b(?:for|while|until)\b[^;]*;[^\n]*\bdocker\s+(?:(?:container|image)\s+)?(stop|rm|rmi|remove|kill)\b"
    );
    if let Some(caps) = in_loop.captures(code) {
        return Some(format!(
            "`docker {}` in a loop acts on every object the loop lists",
            &caps[1]
        ));
    }

    let via_xargs = crate::regex!(
        r"\|\s*xargs\b[^;&|]*\bdocker\s+(?:(?:container|image)\s+)?(stop|rm|rmi|kill)\b"
    );
    if let Some(caps) = via_xargs.captures(code) {
        return Some(format!(
            "`docker {}` acts on every object piped to it",
            &caps[1]
        ));
    }
    None
}

/// The command with Docker's global options removed, so that
/// `docker -H x rm ...` reads as `docker rm ...`.
fn strip_global_options(code: &str) -> String {
    let re = crate::regex!(
        r"\bdocker((?:\s+(?:-D|--debug|--tls|--tlsverify|(?:-H|--host|-c|--context|--config|-l|--log-level|--tlscacert|--tlscert|--tlskey)(?:=|\s+)\S+|--\S+=\S+))+)\s"
    );
    re.replace_all(code, "docker ").into_owned()
}

/// Whether a command asks Docker for an interactive terminal (`-i`, `-t`).
pub fn needs_terminal(command: &str) -> bool {
    let code = strip_comment(command);
    let run = crate::regex!(r"\bdocker\s+(?:container\s+)?(run|exec|create|start)\b");

    for m in run.captures_iter(code) {
        let sub = &m[1];
        let rest = &code[m.get(0).expect("group 0").end()..];
        let end = rest.find([';', '&', '|']).unwrap_or(rest.len());
        let mut words = rest[..end].split_whitespace();
        while let Some(word) = words.next() {
            if !word.starts_with('-') {
                if takes_no_value(word) {
                    continue;
                }
                break;
            }
            if VALUE_OPTIONS.contains(&word) {
                words.next();
                continue;
            }
            let flags_tty = match word {
                "--interactive" | "--tty" | "--attach" => true,
                w if w.starts_with("--") => false,
                w => {
                    let letters = &w[1..];
                    let tty_letters = if sub == "start" { "ai" } else { "it" };
                    letters.chars().all(|c| c.is_ascii_alphabetic())
                        && letters.chars().any(|c| tty_letters.contains(c))
                }
            };
            if flags_tty {
                return true;
            }
        }
    }
    false
}

/// Options of `docker run`, `exec` and `create` that take a separate value.
const VALUE_OPTIONS: &[&str] = &[
    "--name",
    "-e",
    "--env",
    "--env-file",
    "-v",
    "--volume",
    "-p",
    "--publish",
    "-w",
    "--workdir",
    "-u",
    "--user",
    "--network",
    "--net",
    "--entrypoint",
    "-l",
    "--label",
    "--mount",
    "-h",
    "--hostname",
    "--add-host",
    "--restart",
    "-m",
    "--memory",
    "--cpus",
    "--platform",
    "--pull",
    "--log-driver",
    "--log-opt",
    "--cidfile",
    "--device",
    "--dns",
    "--ulimit",
    "--cap-add",
    "--cap-drop",
    "--security-opt",
    "--tmpfs",
    "--shm-size",
    "--stop-signal",
    "--stop-timeout",
    "--gpus",
    "--ipc",
    "--pid",
    "--link",
    "--expose",
    "--health-cmd",
    "--detach-keys",
];

/// Option values cannot be told from the image name without Docker's flag
/// table; values of common options contain `:` `=` or `/`, image names
/// rarely do, so those words are stepped over.
fn takes_no_value(word: &str) -> bool {
    word.contains([':', '=', '/', '$']) && !word.contains("://")
}

/// The command without a trailing `# comment` outside quotes.
pub fn strip_comment(command: &str) -> &str {
    let mut single = false;
    let mut double = false;
    let mut prev = ' ';
    for (i, c) in command.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev.is_whitespace() => return command[..i].trim_end(),
            _ => {}
        }
        prev = c;
    }
    command.trim_end()
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn flags_commands_on_foreign_objects() {
        let cases = [
            (
                "docker stop $(docker ps -a -q)   # Stops all containers",
                true,
            ),
            ("docker rm $(docker ps -a -q)", true),
            ("docker rmi $(docker images -aq)", true),
            ("docker image rm `docker images -q`", true),
            ("docker system prune -af", true),
            ("docker container prune", true),
            ("docker ps -aq | xargs docker rm -f", true),
            ("docker volume rm data", true),
            ("docker rm d239     # Your container ID instead", false),
            ("docker stop web && docker rm web", false),
            ("docker ps -a -q", false),
            ("docker images # docker rmi $(docker images -aq)", false),
            ("echo 'docker rm $(x)' > notes", true),
            ("ids=$(docker ps -aq); docker rm -f $ids", true),
            ("for c in $(docker ps -aq); do docker rm -f $c; done", true),
            (
                "docker ps -aq | while read c; do docker rm -f \"$c\"; done",
                true,
            ),
            ("docker -D rm -f $(docker ps -aq)", true),
            ("docker --debug system prune -af", true),
            ("docker -H unix:///x.sock rm -f $(docker ps -aq)", true),
            ("docker --log-level debug rmi -f $(docker images -q)", true),
            ("docker container remove $(docker ps -aq)", true),
            ("docker buildx prune -af", true),
            ("docker compose down --rmi all", true),
            ("docker-compose down --rmi all -v", true),
            ("docker rm -f <(docker ps -aq)", true),
            ("docker compose down", false),
        ];
        for (command, want) in cases {
            assert_eq!(
                acts_on_foreign_objects(command).is_some(),
                want,
                "{command}"
            );
        }
    }

    #[test]
    fn tells_which_commands_need_a_terminal() {
        let cases = [
            ("docker run -it ubuntu:14.04 /bin/bash", true),
            (
                "docker run -it -v ${pwd}:/mounted ubuntu:14.04 /bin/bash # mount",
                true,
            ),
            (
                "docker exec -it d239 /bin/bash   # Your container id instead",
                true,
            ),
            ("docker run --rm -ti alpine", true),
            ("docker run -v x:/y --interactive img", true),
            ("docker start -ai d239", true),
            ("docker run ubuntu:14.04 echo 'hello world'", false),
            ("docker run -p 8082:5000 python-webapp", false),
            ("docker build . -t pyramid", false),
            ("docker run -d --name web img", false),
            ("docker run pyramid ls -it", false),
            ("docker start d239", false),
            ("docker run --rm --name x -it ubuntu bash", true),
            ("docker run -e A=1 --name web -p 80:80 nginx", false),
        ];
        for (command, want) in cases {
            assert_eq!(needs_terminal(command), want, "{command}");
        }
    }
}
