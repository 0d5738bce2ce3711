//! Settings from `[preprocessor.workbook]` in `book.toml`, with overrides
//! from the environment.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// What a failed step does to the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// The page shows the failure and the build goes on.
    Continue,
    /// The page shows the failure and `mdbook build` fails.
    Fail,
}

/// When steps run, and what happens to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Run the steps whose records are stale, if a daemon answers;
    /// otherwise show the stored records and warn.
    Auto,
    /// Never run; show the stored records, marking stale ones.
    Frozen,
    /// Run every step and record the results.
    Refresh,
    /// Run every step, compare with the store, and fail on drift; the store
    /// is not written.
    Check,
}

impl Mode {
    fn parse(value: &str) -> Option<Mode> {
        Some(match value {
            "auto" => Mode::Auto,
            "frozen" => Mode::Frozen,
            "refresh" => Mode::Refresh,
            "check" => Mode::Check,
            _ => return None,
        })
    }
}

/// A user's normalization rule: a regular expression and its replacement.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub pattern: String,
    #[serde(default)]
    pub replace: String,
}

/// The preprocessor's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// Seconds a command may run before it is killed.
    #[serde(default = "default_timeout")]
    pub timeout: f64,
    /// Whether a failed step fails the build; by default it does under
    /// `CI=true` and does not elsewhere.
    pub on_failure: Option<OnFailure>,
    /// Whether the daemon belongs to the build alone, so that commands on
    /// "all containers" or "all images" may run.
    #[serde(default)]
    pub dedicated_daemon: bool,
    /// The Docker client to run.
    #[serde(default = "default_docker")]
    pub docker: String,
    /// Repositories the sheet clones, by URL, served from directories
    /// relative to the book's root.
    #[serde(default)]
    pub repos: BTreeMap<String, String>,
    /// A directory, relative to the book's root, whose `*.hbs` files replace
    /// the built-in templates of the same name.
    pub templates: Option<String>,
    /// When steps run; see [`Mode`].
    #[serde(default = "default_mode")]
    pub mode: Mode,
    /// The directory of the store, relative to the book's root; it must lie
    /// outside the book's `src`.
    #[serde(default = "default_store")]
    pub store: String,
    /// In frozen mode, a stale or missing record fails the build instead of
    /// being marked on the page.
    #[serde(default)]
    pub strict: bool,
    /// Rules that change what the reader sees, applied to every record.
    #[serde(default)]
    pub sanitise: Vec<Rule>,
    /// Rules applied only when comparing a new run with the store.
    #[serde(default)]
    pub compare: Vec<Rule>,
}

/// Keys that mdBook itself reads from every preprocessor's table.
const MDBOOK_KEYS: &[&str] = &["command", "renderers", "before", "after", "optional"];

fn default_timeout() -> f64 {
    300.0
}

fn default_docker() -> String {
    "docker".to_string()
}

fn default_mode() -> Mode {
    Mode::Auto
}

fn default_store() -> String {
    "workbook".to_string()
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            timeout: default_timeout(),
            on_failure: None,
            dedicated_daemon: false,
            docker: default_docker(),
            repos: BTreeMap::new(),
            templates: None,
            mode: default_mode(),
            store: default_store(),
            strict: false,
            sanitise: Vec::new(),
            compare: Vec::new(),
        }
    }
}

impl Settings {
    /// Reads the settings from the book's configuration and the environment:
    /// `WORKBOOK_DEDICATED_DAEMON`, `WORKBOOK_TIMEOUT`, `WORKBOOK_ON_FAILURE`,
    /// `WORKBOOK_MODE`.
    pub fn from_book(config: &mdbook_preprocessor::config::Config) -> Result<Settings> {
        let table: Option<serde_json::Value> = config
            .get("preprocessor.workbook")
            .context("reading book.toml [preprocessor.workbook]")?;
        let mut settings = match table {
            Some(serde_json::Value::Object(mut map)) => {
                for key in MDBOOK_KEYS {
                    map.remove(*key);
                }
                serde_json::from_value(serde_json::Value::Object(map)).context(
                    "book.toml [preprocessor.workbook] is not valid; the README lists its keys",
                )?
            }
            _ => Settings::default(),
        };
        settings.apply_env(|k| std::env::var(k).ok())?;
        if !valid_timeout(settings.timeout) {
            bail!(
                "book.toml [preprocessor.workbook] or WORKBOOK_TIMEOUT: `timeout` must be a number of seconds between 0 and {MAX_TIMEOUT_SECS}"
            );
        }
        Ok(settings)
    }

    fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<()> {
        if let Some(v) = var("WORKBOOK_DEDICATED_DAEMON") {
            self.dedicated_daemon = parse_bool(&v).with_context(|| {
                format!("WORKBOOK_DEDICATED_DAEMON={v}: use 1 or 0, true or false")
            })?;
        }
        if let Some(v) = var("WORKBOOK_TIMEOUT") {
            self.timeout = v
                .parse()
                .ok()
                .with_context(|| format!("WORKBOOK_TIMEOUT={v}: use a number of seconds"))?;
        }
        if let Some(v) = var("WORKBOOK_MODE") {
            self.mode = Mode::parse(&v).with_context(|| {
                format!("WORKBOOK_MODE={v}: use `auto`, `frozen`, `refresh` or `check`")
            })?;
        }
        if let Some(v) = var("WORKBOOK_ON_FAILURE") {
            self.on_failure = Some(match v.as_str() {
                "fail" => OnFailure::Fail,
                "continue" => OnFailure::Continue,
                _ => bail!("WORKBOOK_ON_FAILURE={v}: use `fail` or `continue`"),
            });
        }
        for (what, rules) in [("sanitise", &self.sanitise), ("compare", &self.compare)] {
            for rule in rules {
                if let Err(e) = regex::Regex::new(&rule.pattern) {
                    bail!(
                        "book.toml [[preprocessor.workbook.{what}]]: `{}` is not a valid regular expression: {e}",
                        rule.pattern
                    );
                }
            }
        }
        Ok(())
    }

    /// Whether runs write the store. Under CI (`CI=true`) the default mode
    /// runs what is stale but writes nothing; `refresh` always writes.
    pub fn writes_store(&self) -> bool {
        match self.mode {
            Mode::Refresh => true,
            Mode::Auto => !is_ci(),
            Mode::Frozen | Mode::Check => false,
        }
    }

    /// The timeout for commands without their own.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout)
    }

    /// What a failed step does, with the default resolved.
    pub fn on_failure(&self) -> OnFailure {
        self.on_failure.unwrap_or_else(|| {
            if is_ci() {
                OnFailure::Fail
            } else {
                OnFailure::Continue
            }
        })
    }
}

/// The longest timeout accepted: a week, far beyond any sheet.
pub const MAX_TIMEOUT_SECS: f64 = 7.0 * 24.0 * 3600.0;

/// Whether a number of seconds is a usable timeout.
pub fn valid_timeout(secs: f64) -> bool {
    secs.is_finite() && secs > 0.0 && secs <= MAX_TIMEOUT_SECS
}

/// Whether this runs under CI, as CI services announce with `CI=true`.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| parse_bool(&v).unwrap_or(false))
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_toml(toml: &str) -> Result<Settings> {
        let config: mdbook_preprocessor::config::Config = toml.parse()?;
        Settings::from_book(&config)
    }

    #[test]
    fn reads_book_toml() {
        let s = from_toml("[preprocessor.workbook]\ntimeout = 5\non-failure = \"fail\"\ndedicated-daemon = true\nafter = [\"links\"]\n[preprocessor.workbook.repos]\n\"https://x/y.git\" = \"../exercises\"\n").unwrap();
        assert_eq!(s.timeout(), Duration::from_secs(5));
        assert_eq!(s.on_failure, Some(OnFailure::Fail));
        assert!(s.dedicated_daemon);
        assert_eq!(s.repos["https://x/y.git"], "../exercises");
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        let err = format!(
            "{:#}",
            from_toml("[preprocessor.workbook]\ntiemout = 5\n").unwrap_err()
        );
        assert!(err.contains("unknown field `tiemout`"), "{err}");
        for bad in ["-1", "0", "1e300"] {
            let toml = format!("[preprocessor.workbook]\ntimeout = {bad}\n");
            let err = format!("{:#}", from_toml(&toml).unwrap_err());
            assert!(err.contains("between 0 and 604800"), "{bad}: {err}");
        }
    }

    #[test]
    fn environment_overrides() {
        let mut s = Settings::default();
        let env = |k: &str| match k {
            "WORKBOOK_DEDICATED_DAEMON" => Some("1".to_string()),
            "WORKBOOK_ON_FAILURE" => Some("continue".to_string()),
            _ => None,
        };
        s.apply_env(env).unwrap();
        assert!(s.dedicated_daemon);
        assert_eq!(s.on_failure(), OnFailure::Continue);
        let err = s
            .apply_env(|_| Some("maybe".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("WORKBOOK_DEDICATED_DAEMON=maybe"), "{err}");
    }
}
