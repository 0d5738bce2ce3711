//! Probe URLs: only servers on this machine may be asked.

use anyhow::{Result, bail};

/// Where a probe goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host as written (`localhost`, `127.0.0.1`, `[::1]`).
    pub host: String,
    pub port: u16,
    pub path: String,
}

/// Parses an `http://` URL on the loopback interface.
pub fn parse_url(url: &str) -> Result<Target> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("probe `{url}`: only http:// URLs can be probed");
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') => {
            let port = p
                .parse::<u16>()
                .map_err(|_| anyhow::anyhow!("probe `{url}`: `{p}` is not a port"))?;
            (h, port)
        }
        _ => (authority, 80),
    };

    let loopback = host == "localhost"
        || host == "[::1]"
        || host.starts_with("127.") && host.split('.').count() == 4;
    if !loopback {
        bail!(
            "probe `{url}`: only servers on this machine (localhost, 127.0.0.1, [::1]) are probed, never `{host}`"
        );
    }
    Ok(Target {
        host: host.to_string(),
        port,
        path: path.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_loopback_http() {
        let ok = [
            ("http://localhost:8082/", ("localhost", 8082, "/")),
            ("http://127.0.0.1:5000", ("127.0.0.1", 5000, "/")),
            ("http://[::1]:8084/books?x=1", ("[::1]", 8084, "/books?x=1")),
            ("http://localhost/", ("localhost", 80, "/")),
        ];
        for (url, (host, port, path)) in ok {
            let t = parse_url(url).unwrap();
            assert_eq!(
                (t.host.as_str(), t.port, t.path.as_str()),
                (host, port, path),
                "{url}"
            );
        }
        for bad in [
            "https://localhost/",
            "http://172.17.0.2:5000/",
            "http://example.com/",
            "http://localhost:port/",
            "http://127.0.0.1.evil:80/",
            "ftp://x",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
