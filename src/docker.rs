//! What the tool itself asks of Docker: whether a daemon answers, a wrapper
//! that labels what a session creates, and clean-up by that label.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The label every object a session creates carries; its value is the
/// session's id.
pub const SESSION_LABEL: &str = "org.mdbook-workbook.session";
/// The label that carries the number of the step that created an object.
pub const STEP_LABEL: &str = "org.mdbook-workbook.step";
/// The label that carries the process id of the run that owns an object.
pub const OWNER_LABEL: &str = "org.mdbook-workbook.owner";
/// The label that marks a locally built stand-in image.
pub const STAND_IN_LABEL: &str = "org.mdbook-workbook.stand-in";

/// What the daemon said about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Engine {
    pub server: String,
    pub client: String,
}

/// Runs the docker client with a deadline and returns its stdout.
/// Its stdin is empty and its stdout never reaches ours.
pub fn query(docker: &str, args: &[&str], timeout: Duration) -> Result<String> {
    let mut child = Command::new(docker)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting `{docker}`; is the Docker client installed?"))?;

    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "`docker {}` gave no answer within {} s",
                args.join(" "),
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };

    let mut out = String::new();
    let mut err = String::new();
    child.stdout.take().map(|mut s| s.read_to_string(&mut out));
    child.stderr.take().map(|mut s| s.read_to_string(&mut err));
    if !status.success() {
        bail!("`docker {}` failed: {}", args.join(" "), err.trim());
    }
    Ok(out)
}

/// Asks the daemon for its version; fails when none answers.
pub fn probe(docker: &str) -> Result<Engine> {
    // The client pads tabs in templates, so the fields are split by `|`.
    let out = query(docker, &["version", "--format", "{{.Client.Version}}|{{.Server.Version}}"], Duration::from_secs(20))
        .context("no Docker daemon answers; start one (Docker Desktop, or `dockerd`), or point DOCKER_HOST at one")?;
    let (client, server) = out.trim().split_once('|').unwrap_or(("", ""));
    Ok(Engine {
        server: server.to_string(),
        client: client.to_string(),
    })
}

/// Images on the daemon that are stand-ins, as `name:tag`.
///
/// A stand-in's label names the reference it answers to. Images built on a
/// stand-in inherit the label, so only an image tagged with exactly that
/// reference counts.
pub fn stand_ins(docker: &str) -> Vec<String> {
    let t = Duration::from_secs(20);
    let filter = format!("label={STAND_IN_LABEL}");
    let Ok(ids) = query(docker, &["images", "-q", "--filter", &filter], t) else {
        return Vec::new();
    };
    let mut ids: Vec<&str> = ids.split_whitespace().collect();
    ids.dedup();
    if ids.is_empty() {
        return Vec::new();
    }

    let format =
        format!("{{{{index .Config.Labels \"{STAND_IN_LABEL}\"}}}}|{{{{join .RepoTags \" \"}}}}");
    let mut args = vec!["image", "inspect", "--format", &format];
    args.extend(ids);
    let Ok(out) = query(docker, &args, t) else {
        return Vec::new();
    };
    let mut found: Vec<String> = out
        .lines()
        .filter_map(|line| line.split_once('|'))
        .filter(|(stands_for, tags)| tags.split_whitespace().any(|t| t == *stands_for))
        .map(|(stands_for, _)| stands_for.to_string())
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Writes a `docker` wrapper into `bin` that adds the session's labels to
/// every container, image, volume and network the session creates, and
/// then runs the real client. The command a student types stays as written.
pub fn write_wrapper(bin: &Path, real: &str, session: &str) -> Result<()> {
    let script = format!(
        r#"#!/usr/bin/env bash
# Written by mdbook-workbook for one session: labels what the session
# creates so that it can be removed afterwards, then runs the real client.
real={real}
args=("$@")
i=0
while [ "$i" -lt "${{#args[@]}}" ]; do
  case "${{args[$i]}}" in
    -H|--host|-c|--context|--config|-l|--log-level|--tlscacert|--tlscert|--tlskey) i=$((i + 2)) ;;
    -*) i=$((i + 1)) ;;
    *) break ;;
  esac
done
at=-1
build=-1
case "${{args[$i]:-}}" in
  run|create) at=$((i + 1)) ;;
  build) build=$((i + 1)) ;;
  container) case "${{args[$((i + 1))]:-}}" in run|create) at=$((i + 2)) ;; esac ;;
  image|builder) case "${{args[$((i + 1))]:-}}" in build) build=$((i + 2)) ;; esac ;;
  volume|network) case "${{args[$((i + 1))]:-}}" in create) at=$((i + 2)) ;; esac ;;
esac
if [ "$at" -ge 0 ]; then
  args=("${{args[@]:0:$at}}" --label "{SESSION_LABEL}={session}" --label "{OWNER_LABEL}={owner}" --label "{STEP_LABEL}=$(cat "${{WORKBOOK_STEP_FILE:-/dev/null}}" 2>/dev/null)" "${{args[@]:$at}}")
fi
# A label on a build would show as extra build steps and change the cache,
# so builds stay as written: the tags they set are noted with the image
# each tag named before, to be removed and restored at the end.
if [ "$build" -ge 0 ] && [ -n "${{WORKBOOK_BUILT:-}}" ]; then
  j=$build
  while [ "$j" -lt "${{#args[@]}}" ]; do
    tag=
    case "${{args[$j]}}" in
      -t|--tag) tag=${{args[$((j + 1))]:-}}; j=$((j + 1)) ;;
      --tag=*) tag=${{args[$j]#--tag=}} ;;
      -t?*) tag=${{args[$j]#-t}} ;;
    esac
    if [ -n "$tag" ]; then
      case "${{tag##*/}}" in *:*) ;; *) tag="$tag:latest" ;; esac
      before=$("$real" image inspect --format '{{{{.Id}}}}' "$tag" 2>/dev/null || true)
      printf '%s\t%s\n' "$tag" "$before" >>"$WORKBOOK_BUILT"
    fi
    j=$((j + 1))
  done
fi
exec "$real" "${{args[@]}}"
"#,
        real = crate::session::terminal::quote(real),
        owner = std::process::id(),
    );
    let path = bin.join("docker");
    std::fs::write(&path, script).with_context(|| format!("writing {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", path.display()))?;
    Ok(())
}

/// Removes the images a session's builds tagged, and gives each tag back to
/// the image it named before the session, if any. `built` holds the lines
/// the wrapper wrote: a tag, a tab, and the image id it had before.
pub fn restore_tags(docker: &str, built: &str) -> Result<usize> {
    let t = Duration::from_secs(60);
    let mut seen = std::collections::BTreeSet::new();
    let mut removed = 0;

    for line in built.lines() {
        let (tag, before) = line.split_once('\t').unwrap_or((line, ""));
        if tag.is_empty() || !seen.insert(tag.to_string()) {
            continue;
        }
        let now = query(docker, &["image", "inspect", "--format", "{{.Id}}", tag], t).ok();
        let now = now.as_deref().map(str::trim).unwrap_or("");
        if now.is_empty() || now == before {
            continue;
        }
        query(docker, &["rmi", tag], t)?;
        removed += 1;
        if !before.is_empty() {
            query(docker, &["tag", before, tag], t)?;
        }
    }
    Ok(removed)
}

/// Removes the containers, volumes and networks of one session, or with
/// `session` unset, of every session whose process has ended (a run that
/// was killed). Returns how many objects were removed.
pub fn remove_session_objects(docker: &str, session: Option<&str>) -> Result<usize> {
    let filter = match session {
        Some(id) => format!("label={SESSION_LABEL}={id}"),
        None => format!("label={SESSION_LABEL}"),
    };
    let owner = format!("{{{{.Label \"{OWNER_LABEL}\"}}}}");
    let t = Duration::from_secs(120);
    let mut removed = 0;

    let kinds: &[(&[&str], &str, &[&str])] = &[
        (&["ps", "-a"], "{{.ID}}", &["rm", "-f", "-v"]),
        (&["volume", "ls"], "{{.Name}}", &["volume", "rm", "-f"]),
        (&["network", "ls"], "{{.ID}}", &["network", "rm"]),
    ];
    for (list, id_field, remove) in kinds {
        let format = format!("{id_field}|{owner}");
        let mut args = list.to_vec();
        args.extend(["--filter", &filter, "--format", &format]);
        let out = query(docker, &args, t)?;

        let mut ids: Vec<&str> = out
            .lines()
            .filter_map(|l| l.split_once('|'))
            .filter(|(_, pid)| session.is_some() || !process_alive(pid))
            .map(|(id, _)| id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            continue;
        }
        let mut args = remove.to_vec();
        args.extend(&ids);
        query(docker, &args, t)?;
        removed += ids.len();
    }
    Ok(removed)
}

/// Whether the process with this id (as text) still runs.
fn process_alive(pid: &str) -> bool {
    let Ok(pid) = pid.trim().parse::<i32>() else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

/// The ids the daemon has for image references, asked over the Engine API
/// socket rather than by starting a client, so that planning a build costs
/// no process. References the daemon does not have, and all of them when
/// no local socket answers (a remote `DOCKER_HOST`, no daemon), are left
/// out: their ids are not knowable here.
pub fn image_ids<'a>(
    refs: impl IntoIterator<Item = &'a String>,
) -> std::collections::BTreeMap<String, String> {
    let mut ids = std::collections::BTreeMap::new();
    let socket = match std::env::var("DOCKER_HOST") {
        Ok(host) => match host.strip_prefix("unix://") {
            Some(path) => path.to_string(),
            None => return ids,
        },
        Err(_) => "/var/run/docker.sock".to_string(),
    };
    for reference in refs {
        if let Some(id) = api_image_id(&socket, reference) {
            ids.insert(reference.clone(), id);
        }
    }
    ids
}

fn api_image_id(socket: &str, reference: &str) -> Option<String> {
    use std::io::Write;
    let mut stream = std::os::unix::net::UnixStream::connect(socket).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .ok()?;
    let path: String = reference
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b':' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    write!(
        stream,
        "GET /images/{path}/json HTTP/1.0\r\nHost: docker\r\n\r\n"
    )
    .ok()?;
    let mut answer = Vec::new();
    stream.take(4 << 20).read_to_end(&mut answer).ok()?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    json.get("Id")?.as_str().map(str::to_string)
}

/// Options of `docker run` and `docker create` that take a value.
const VALUE_OPTIONS: &[&str] = &[
    "-a",
    "-c",
    "-e",
    "-h",
    "-l",
    "-m",
    "-p",
    "-u",
    "-v",
    "-w",
    "--add-host",
    "--attach",
    "--cap-add",
    "--cap-drop",
    "--cidfile",
    "--cpus",
    "--device",
    "--dns",
    "--entrypoint",
    "--env",
    "--env-file",
    "--expose",
    "--health-cmd",
    "--hostname",
    "--ip",
    "--label",
    "--link",
    "--log-driver",
    "--log-opt",
    "--memory",
    "--mount",
    "--name",
    "--network",
    "--platform",
    "--publish",
    "--pull",
    "--restart",
    "--shm-size",
    "--stop-signal",
    "--stop-timeout",
    "--tmpfs",
    "--ulimit",
    "--user",
    "--volume",
    "--volumes-from",
    "--workdir",
];

/// The image references a command line names: the image of each
/// `docker run`, `create` and `pull`, and the `FROM` images of a build's
/// output. Stage names and references with variables are left out.
pub fn image_refs(command: &str, build: Option<&crate::builds::Build>) -> Vec<String> {
    let mut refs = Vec::new();
    let words: Vec<&str> = command
        .split(|c: char| c.is_whitespace() || matches!(c, ';' | '|' | '&' | '(' | ')'))
        .filter(|w| !w.is_empty())
        .map(|w| w.trim_matches(['"', '\'']))
        .collect();
    let mut i = 0;
    while i < words.len() {
        let is_docker = words[i] == "docker" || words[i].ends_with("/docker");
        i += 1;
        if !is_docker {
            continue;
        }
        let mut j = i;
        if matches!(words.get(j), Some(&"container") | Some(&"image")) {
            j += 1;
        }
        if !matches!(words.get(j), Some(&"run") | Some(&"create") | Some(&"pull")) {
            continue;
        }
        j += 1;
        while let Some(w) = words.get(j) {
            if w.starts_with('-') {
                let takes_value = !w.contains('=') && VALUE_OPTIONS.contains(w);
                j += if takes_value { 2 } else { 1 };
                continue;
            }
            refs.push(w.to_string());
            break;
        }
        i = j;
    }
    if let Some(build) = build {
        let mut stages = Vec::new();
        for step in build.steps.iter().filter(|s| s.base) {
            let mut parts = step
                .instruction
                .split_whitespace()
                .skip(1)
                .filter(|p| !p.starts_with("--"));
            if let Some(image) = parts.next()
                && !stages
                    .iter()
                    .any(|s: &String| s.eq_ignore_ascii_case(image))
            {
                refs.push(image.to_string());
            }
            if parts.next().is_some_and(|a| a.eq_ignore_ascii_case("as"))
                && let Some(name) = parts.next()
            {
                stages.push(name.to_string());
            }
        }
    }
    refs.retain(|r| !r.contains('$') && !r.contains('<') && r != "scratch");
    refs.sort();
    refs.dedup();
    refs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_images_a_command_uses() {
        assert_eq!(
            image_refs("docker run -it -p 8082:5000 --name web python-webapp", None),
            ["python-webapp"]
        );
        assert_eq!(
            image_refs(
                "docker pull ubuntu:14.04 && docker container run --rm=true -v \"$PWD:/m\" alpine ls",
                None
            ),
            ["alpine", "ubuntu:14.04"]
        );
        assert!(image_refs("docker ps -a; docker images", None).is_empty());
        let build = crate::builds::parse(
            "Step 1/3 : FROM python:3.6 AS base\n ---> 1a2b3c4d5e6f\nStep 2/3 : FROM base\n ---> 1a2b3c4d5e6f\nStep 3/3 : RUN true\n ---> Running in 0a1b2c3d4e5f\n",
        );
        assert_eq!(image_refs("docker build .", build.as_ref()), ["python:3.6"]);
    }
}
