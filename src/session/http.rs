//! A small HTTP/1.0 GET for probes of servers the chapter started. Only
//! loopback addresses are ever asked (see `script::probe`).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::script::probe::Target;

const MAX_BODY: u64 = 1 << 20;

/// What a server answered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub content_type: String,
    #[serde(with = "crate::record::bytes")]
    pub body: Vec<u8>,
}

/// Asks the server until it answers or `timeout` passes.
pub fn get_until_answered(target: &Target, timeout: Duration) -> Result<Response> {
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    while Instant::now() < deadline {
        match get(target) {
            Ok(response) => return Ok(response),
            Err(e) => last_error = Some(e),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let why = last_error.map(|e| format!("{e:#}")).unwrap_or_default();
    bail!(
        "no answer from http://{}:{}{} within {} s ({why})",
        target.host,
        target.port,
        target.path,
        timeout.as_secs()
    )
}

fn get(target: &Target) -> Result<Response> {
    let host = target.host.trim_start_matches('[').trim_end_matches(']');
    let addr = (host, target.port)
        .to_socket_addrs()
        .context("resolving the probe's host")?
        .find(|a| a.ip().is_loopback())
        .context("the probe's host is not a loopback address")?;
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).context("connecting")?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {}:{}\r\nUser-Agent: mdbook-workbook\r\nConnection: close\r\n\r\n",
        target.path, target.host, target.port
    );
    stream
        .write_all(request.as_bytes())
        .context("sending the request")?;

    let mut raw = Vec::new();
    stream
        .take(MAX_BODY + 64 * 1024)
        .read_to_end(&mut raw)
        .map_err(read_error)?;
    parse(&raw)
}

fn read_error(e: std::io::Error) -> anyhow::Error {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            anyhow::anyhow!("the server took the request but sent no complete answer within 10 s")
        }
        _ => anyhow::Error::new(e).context("reading the answer"),
    }
}

fn parse(raw: &[u8]) -> Result<Response> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("the answer has no complete header")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        bail!("not an HTTP answer: `{status_line}`")
    };
    if !version.starts_with("HTTP/") {
        bail!("not an HTTP answer: `{status_line}`");
    }
    let status = code
        .parse()
        .with_context(|| format!("bad status in `{status_line}`"))?;
    let content_type = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let mut body = raw[split + 4..].to_vec();
    body.truncate(MAX_BODY as usize);
    Ok(Response {
        status,
        reason: parts.next().unwrap_or("").to_string(),
        content_type,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_answers() {
        let r = parse(b"HTTP/1.0 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 22\r\n\r\n<h1>Hello, World!</h1>").unwrap();
        assert_eq!(
            (r.status, r.reason.as_str(), r.content_type.as_str()),
            (200, "OK", "text/html; charset=utf-8")
        );
        assert_eq!(r.body, b"<h1>Hello, World!</h1>");
        assert!(parse(b"SSH-2.0-OpenSSH\r\n").is_err());
        assert!(parse(b"garbage\r\n\r\n").is_err());
    }

    #[test]
    fn waits_for_a_server_that_starts_late() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let server = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(600));
            let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            conn.write_all(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n[1]")
                .unwrap();
        });
        let target = Target {
            host: "127.0.0.1".into(),
            port,
            path: "/".into(),
        };
        let r = get_until_answered(&target, Duration::from_secs(10)).unwrap();
        assert_eq!(r.body, b"[1]");
        server.join().unwrap();

        let err = get_until_answered(&target, Duration::from_millis(600))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no answer from http://127.0.0.1"), "{err}");
    }
}
